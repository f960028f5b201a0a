"""Benchmark: the demo's CPU training speed by torch thread count, same run, optional competitor.

Runs ``trainer.train.train`` on a fused dataset (an ``engine demo`` output's ``fused/``) with the
demo's training settings (``engine.demo.demo_train_config``: tiny MaSSFormer, crop 256, batch 4,
2,048 points, one DataLoader worker) for ``--steps`` steps per setting, each in a fresh child
process, settings interleaved over ``--rounds`` rounds, and reports the median seconds per step
(from ``metrics.jsonl``'s ``it_s``, first ``--skip`` steps left out) and each setting's ratio to
the first. ``--compete N`` runs N CPU-bound busy loops beside every measurement (DESIGN's "one
other process competes"); they stop with the measurement.

    python bench/train_cpu.py --data demo_out/fused --threads 2 1 --compete 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from engine.demo import DemoConfig, demo_train_config
cfg = DemoConfig(threads={threads}, progress=False)
t = demo_train_config(cfg, Path({data!r}), Path({out!r}))
t.iters, t.log_every, t.val_split, t.checkpoint_every = {steps}, 1, None, 10**9
from trainer.train import train
train(t)
"""


def _busy(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:  # bounded: never outlives the measurement by much
        x += 1


def measure(data: Path, threads: int, steps: int, skip: int, compete: int) -> float:
    """Median seconds per step of one child run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        code = CHILD.format(
            root=str(ROOT), threads=threads, data=str(data), out=str(out), steps=steps
        )
        ctx = multiprocessing.get_context("spawn")
        busy = [ctx.Process(target=_busy, args=(time.time() + 3600,)) for _ in range(compete)]
        for p in busy:
            p.start()
        try:
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        finally:
            for p in busy:
                p.terminate()
                p.join()
        rates = [
            json.loads(line)["it_s"]
            for line in (out / "metrics.jsonl").read_text().splitlines()
            if '"it_s"' in line
        ]
    per_step = [1.0 / r for r in rates[skip:] if r > 0]
    return statistics.median(per_step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="fused dataset (demo_out/fused)")
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--skip", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compete", type=int, default=0, help="CPU-bound busy loops beside each run")
    args = ap.parse_args()
    results: dict[int, list[float]] = {t: [] for t in args.threads}
    for _ in range(args.rounds):
        for t in args.threads:
            results[t].append(measure(args.data, t, args.steps, args.skip, args.compete))
            print(f"threads {t}: {results[t][-1]:.2f} s/step", flush=True)
    base = statistics.median(results[args.threads[0]])
    summary = {
        "compete": args.compete,
        "steps": args.steps,
        "s_per_step": {t: round(statistics.median(v), 3) for t, v in results.items()},
        "ratio_to_first": {t: round(statistics.median(v) / base, 2) for t, v in results.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
