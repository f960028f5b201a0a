"""Benchmark: what a kept training checkpoint costs, serialised twice or copied.

A step that ``keep_every`` keeps writes ``last.pt`` and ``step_NNNNNNN.pt`` holding the same
state. ``twice`` is the code before this benchmark's round: ``save_checkpoint`` (``torch.save``
to a temporary file, fsync, rename) for each file. ``copied``: ``save_checkpoint`` for
``last.pt``, then :func:`annotations.fileio.atomic_copy` of its bytes (``os.sendfile``, fsync,
rename). ``one`` is ``last.pt`` alone, the floor. The state is what training saves of a preset
(model, AdamW after one step, the demo's 8-class head) into a temporary folder of ``--dir``;
each preset's three ways run interleaved ``--rounds`` times, medians reported with the ratio
``copied / twice``, and the two files' bytes compared.

    python bench/checkpoint_save.py [--presets tiny massformer_lite_r18 massformer_r50]
                                    [--rounds 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runs from a checkout without the package installed

import torch  # noqa: E402

from annotations.fileio import atomic_copy  # noqa: E402
from annotations.taxonomy import MASS13K  # noqa: E402
from bench.common import cpu_name, scratch  # noqa: E402
from trainer.checkpoint import checkpoint_dict, save_checkpoint  # noqa: E402
from trainer.models import build_model, preset_config  # noqa: E402


def training_state(preset: str) -> dict:
    """What a training checkpoint of ``preset`` holds that weighs anything: the weights and
    AdamW's two moments (after one step, as from the first save on)."""
    torch.manual_seed(0)
    model = build_model(preset_config(preset, num_classes=8))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    config = dataclasses.asdict(model.config)
    return checkpoint_dict(
        2, model.state_dict(), config, MASS13K.to_dict(), optimizer=optimizer.state_dict()
    )


def saving_ways(state: dict, last: Path, kept: Path) -> dict[str, Callable[[], object]]:
    """The three ways of a kept step's save, timed against each other."""
    return {
        "twice": lambda: (save_checkpoint(last, state), save_checkpoint(kept, state)),
        "copied": lambda: (save_checkpoint(last, state), atomic_copy(last, kept)),
        "one": lambda: save_checkpoint(last, state),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--presets", nargs="+", default=["tiny", "massformer_lite_r18", "massformer_r50"]
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None, help="folder for the files (default: the temp folder)")
    args = ap.parse_args()
    print(f"{cpu_name()}, torch {torch.__version__}, {args.rounds} rounds, medians")
    folder = scratch("checkpoint_save_", args.dir)
    for preset in args.presets:
        state = training_state(preset)
        last, kept = folder / "last.pt", folder / "step_0000002.pt"
        ways = saving_ways(state, last, kept)
        times: dict[str, list[float]] = {name: [] for name in ways}
        same = True
        for _ in range(args.rounds):
            for name, way in ways.items():
                start = time.perf_counter()
                way()
                times[name].append(time.perf_counter() - start)
                if name != "one":
                    same = same and last.read_bytes() == kept.read_bytes()
                    kept.unlink()
        med = {name: statistics.median(t) for name, t in times.items()}
        print(
            f"{preset:20s} {last.stat().st_size / 1e6:7.1f} MB  "
            + "  ".join(f"{name} {med[name]:.3f} s" for name in ways)
            + f"  copied/twice {med['copied'] / med['twice']:.2f}  same bytes {same}"
        )


if __name__ == "__main__":
    main()
