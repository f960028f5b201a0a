"""Benchmark: the demo's CPU training speed by processes x torch threads, same run, optional
competitor.

Runs ``trainer.train.train`` on a fused dataset (an ``engine demo`` output's ``fused/``) with the
demo's training settings (``engine.demo.demo_train_config``: tiny MaSSFormer, crop 256, batch 4,
2,048 points; one process: one DataLoader worker; several: each loads its own share) for
``--steps`` steps per setting, each in a fresh child process, settings interleaved over
``--rounds`` rounds, and reports the median seconds per step (from ``metrics.jsonl``'s ``it_s``,
first ``--skip`` steps left out) and each setting's ratio to the first. A setting is
``PxT``: P training processes (``--processes``, DDP) with T threads each; ``PxT:glibc`` the same
with glibc's default malloc thresholds instead of training's (``ENGINE_TUNE_MALLOC=0``,
:mod:`trainer.allocator`). ``--compete N`` runs N
CPU-bound busy loops beside every measurement (DESIGN's "one other process competes"); they stop
with the measurement.

    python bench/train_cpu.py --data demo_out/fused --settings 1x1 1x2 2x1 --compete 1
    python bench/train_cpu.py --data demo_out/fused --settings 2x1:glibc 2x1 --steps 50 --rounds 4
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runs from a checkout without the package installed, as CHILD

from trainer.allocator import OPT_OUT  # noqa: E402

CHILD = """
import dataclasses, json, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from engine.demo import DemoConfig, demo_train_config
cfg = DemoConfig(processes={processes}, threads={threads}, progress=False)
t = demo_train_config(cfg, Path({data!r}), Path({out!r}))
t = dataclasses.replace(t, iters={steps}, warmup_iters=min(t.warmup_iters, {steps} - 1),
                        log_every=1, val_split=None, checkpoint_every=10**9)
from trainer.train import train
if __name__ == "__main__":  # spawned training processes import this module
    train(t)
"""


def _busy(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:  # bounded: never outlives the measurement by much
        x += 1


def measure(data: Path, setting: str, steps: int, skip: int, compete: int) -> float:
    """Median seconds per step of one child run of ``setting`` (``PxT`` or ``PxT:glibc``)."""
    shape, _, malloc = setting.lower().partition(":")
    if malloc not in ("", "glibc"):
        raise SystemExit(f"setting {setting!r}: the only suffix is :glibc")
    processes, threads = (int(v) for v in shape.split("x"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env[OPT_OUT] = "0" if malloc else "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        script = Path(tmp) / "child.py"
        script.write_text(
            CHILD.format(
                root=str(ROOT),
                processes=processes,
                threads=threads,
                data=str(data),
                out=str(out),
                steps=steps,
            )
        )
        ctx = multiprocessing.get_context("spawn")
        busy = [ctx.Process(target=_busy, args=(time.time() + 3600,)) for _ in range(compete)]
        for p in busy:
            p.start()
        try:
            subprocess.run([sys.executable, str(script)], check=True, capture_output=True, env=env)
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
    ap.add_argument(
        "--settings",
        nargs="+",
        default=["1x1", "2x1"],
        help="PxT: processes x threads each; PxT:glibc with glibc's default malloc thresholds",
    )
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--skip", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compete", type=int, default=0, help="CPU-bound busy loops beside each run")
    args = ap.parse_args()
    results: dict[str, list[float]] = {t: [] for t in args.settings}
    for _ in range(args.rounds):
        for t in args.settings:
            results[t].append(measure(args.data, t, args.steps, args.skip, args.compete))
            print(f"{t}: {results[t][-1]:.2f} s/step", flush=True)
    base = statistics.median(results[args.settings[0]])
    summary = {
        "compete": args.compete,
        "steps": args.steps,
        "s_per_step": {t: round(statistics.median(v), 3) for t, v in results.items()},
        "ratio_to_first": {t: round(statistics.median(v) / base, 2) for t, v in results.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
