"""Which allocations make the CUDA peak of one inference call, named by source line (GPU only).

``bench/inference_stages.py`` says in which stage the peak lies and ``bench/cuda_memory_model.py``
what the Python code's tensors add up to; on the H200 (docs/model.md, twenty-eighth round)
``efficient`` peaked 2.1-2.6 GB above that model from the edge head on, memory allocated inside
kernels. This names it: one ``predict_label`` call (after a warm-up) runs under the caching
allocator's history recorder (``torch.cuda.memory._record_memory_history``, Python and C++
stacks), the trace is replayed to the moment the call's own allocations peak, and the blocks
alive then are listed by the innermost line of this repository that allocated them, with the
innermost C++ frames below it (a cuDNN workspace shows its convolution's frames; a tensor
shows the op that made it).

    python bench/cuda_memory_trace.py                               # efficient, 4032x3024 at 4096x3072
    python bench/cuda_memory_trace.py --modes efficient,full --stacks python --json trace.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.inference import add_call_args, model_and_input, modes_arg, parse_wh  # noqa: E402
from trainer.inference import MODES, predict_label  # noqa: E402

MB = 2**20
# C++ frames of the allocator and of the recorder itself, left out of an allocation's
# "made by" frames (the recorder's names as torch.cuda._memory_viz leaves them out)
NOT_THE_MAKER = (
    "c10::", "CachingAllocator", "std::", "allocate", "at::empty", "empty_", "at::detail::",
    "unwind::", "CapturedTraceback", "gather_with_cpp", "torch::unwind", "PyEval_", "PyObject_",
)  # fmt: skip


def live_at_peak(trace: list[dict]) -> tuple[int, list[dict]]:
    """Replay one device's allocator trace (``torch.cuda.memory._snapshot()["device_traces"]
    [i]``): the peak of the bytes its own ``alloc`` events hold (a block counts until its
    ``free_requested``, as ``torch.cuda.memory_allocated`` does), and the ``alloc`` entries
    alive at the first moment of that peak, largest first."""
    total = peak = 0
    peak_at = -1
    sizes: dict[int, int] = {}
    for k, e in enumerate(trace):
        if e["action"] == "alloc":
            sizes[e["addr"]] = e["size"]
            total += e["size"]
            if total > peak:
                peak, peak_at = total, k
        elif e["action"] in ("free_requested", "free_completed") and e["addr"] in sizes:
            total -= sizes.pop(e["addr"])
    live: dict[int, dict] = {}
    for e in trace[: peak_at + 1]:
        if e["action"] == "alloc":
            live[e["addr"]] = e
        elif e["action"] in ("free_requested", "free_completed"):
            live.pop(e["addr"], None)
    return peak, sorted(live.values(), key=lambda e: -e["size"])


def origin(frames: list[dict], root: Path = ROOT) -> str:
    """``path:line function`` of the innermost frame in ``root`` (this repository), else of the
    innermost Python frame, else ``?``."""
    python = [f for f in frames if str(f.get("filename", "")).endswith(".py")]
    ours = [f for f in python if str(f["filename"]).startswith(str(root))]
    for f in ours or python:
        name = Path(f["filename"])
        shown = name.relative_to(root) if ours else name.name
        return f"{shown}:{f['line']} {f['name']}"
    return "?"


def made_by(frames: list[dict], n: int = 4) -> list[str]:
    """The innermost ``n`` C++ frame names between the allocator's own and the innermost Python
    frame, innermost first, each cut to 100 characters: what asked for the block."""
    cpp = []
    for f in frames:  # innermost first: the C++ frames below the innermost Python one
        if str(f.get("filename", "")).endswith(".py"):
            break
        cpp.append(str(f.get("name", "")))
    named = [c for c in cpp if c and not any(a in c for a in NOT_THE_MAKER)]
    return [c[:100] for c in named[:n]]


def group(alive: list[dict], root: Path = ROOT) -> list[dict]:
    """The blocks alive at the peak by :func:`origin` and :func:`made_by`: MB, count and the
    largest block of each group, largest group first."""
    groups: dict[tuple, list[int]] = collections.defaultdict(list)
    for e in alive:
        frames = e.get("frames") or []
        groups[(origin(frames, root), tuple(made_by(frames)))].append(e["size"])
    rows = [
        {
            "origin": o,
            "made_by": list(m),
            "mb": sum(s) / MB,
            "blocks": len(s),
            "largest_mb": max(s) / MB,
        }
        for (o, m), s in groups.items()
    ]
    return sorted(rows, key=lambda r: -r["mb"])


def trace_call(mode: str, image_wh, test_wh, preset: str, stacks: str) -> dict:
    """One ``predict_label`` call of ``mode`` on CUDA under the history recorder, after a
    warm-up; its peak above the memory before it (as the allocator counts it and as the
    trace's replay does) and the groups alive at the peak."""
    model, image, size = model_and_input(preset, "cuda", image_wh, test_wh)
    predict_label(model, image, size=size, mode=mode)  # warm-up: kernels, allocator, cuDNN
    torch.cuda.empty_cache()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.memory._record_memory_history(enabled="all", context="all", stacks=stacks)
    try:
        predict_label(model, image, size=size, mode=mode)
        torch.cuda.synchronize()
        snapshot = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    measured = (torch.cuda.max_memory_allocated() - base) / MB
    trace = snapshot["device_traces"][torch.cuda.current_device()]
    peak, alive = live_at_peak(trace)
    del model
    torch.cuda.empty_cache()
    return {
        "mode": mode,
        "peak_mb_allocator": measured,
        "peak_mb_replayed": peak / MB,
        "events": len(trace),
        "groups": group(alive),
        "largest_blocks": [
            {"mb": e["size"] / MB, "frames": (e.get("frames") or [])[:40]} for e in alive[:12]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_call_args(p)
    p.add_argument(
        "--modes", type=modes_arg, default=["efficient"], help=f"comma list of {', '.join(MODES)}"
    )
    p.add_argument(
        "--stacks", choices=("all", "python"), default="all", help="C++ frames too, or Python only"
    )
    p.add_argument("--top", type=int, default=20, help="groups printed per mode")
    p.add_argument(
        "--json", type=Path, help="also write every group and the largest blocks' frames"
    )
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        p.error("needs a CUDA GPU: the allocator's history exists only on CUDA")
    image, test = parse_wh(args.image), parse_wh(args.test_size)
    runs = []
    for mode in args.modes:
        run = trace_call(mode, image, test, args.preset, args.stacks)
        runs.append(run)
        print(
            f"== {mode}: {args.preset}, {image[0]}x{image[1]} at {test[0]}x{test[1]} on "
            f"{torch.cuda.get_device_name()}; peak above the call's start {run['peak_mb_allocator']:.0f} MB "
            f"(replayed from {run['events']} trace events: {run['peak_mb_replayed']:.0f} MB)"
        )
        print(f"{'MB':>8} {'blocks':>6} {'largest':>8}  allocated at / by")
        for g in run["groups"][: args.top]:
            print(f"{g['mb']:8.0f} {g['blocks']:6d} {g['largest_mb']:8.0f}  {g['origin']}")
            for name in g["made_by"]:
                print(f"{'':26}  <- {name}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"preset": args.preset, "image": image, "test": test, "runs": runs}, indent=1
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
