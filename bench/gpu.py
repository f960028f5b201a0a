"""Every GPU figure of DESIGN.md section 7 in one command: one table, ``gpu.json`` and ``gpu.md``.

Parts (each in its own process with its own time limit, so a crash, an out-of-memory or a hang
is one line of the table and the other parts still run; see ``bench/gpu_parts.py``):

* ``labeling``: Grounding DINO Swin-B + SAM ViT-H (random weights) on 4032x3024 JPEGs with 2x2
  tiles, the engine (batched, bf16, overlapped) vs the per-image fp32 demo loop; peak memory;
  fp32 vs bf16 labels (mask IoU);
* ``sam3``: the SAM 3 backend when one is registered in ``labeler.backends``;
* ``inference``: MaSSFormer-R50 at 4096x3072 per inference mode, and a 64 MP image;
* ``train-bf16`` / ``train-fp32``: training steps at 1024x1024 crops, batch 4;
* ``ddp``: ``torchrun --nproc-per-node <all GPUs>``: DDP steps (NCCL) and a sharded label run,
  compared with a single process;
* ``metrics``: the torch (CUDA) path of the metrics vs the CPU path, time per 4032x3024 pair.

On a CUDA machine (the time limits add up to under 8 minutes)::

    python bench/gpu.py --out runs/gpu

On a CPU, every code path at toy sizes (the test suite runs this; figures are not judged)::

    python bench/gpu.py --device cpu --small --out /tmp/gpu-smoke
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# Part name -> "module:function(device, sizes, small, tmp) -> rows"; imported only in the part's
# own process, so the orchestrator stays light and one part's import error is that part's row.
PARTS = {
    "labeling": "bench.gpu_parts:part_labeling",
    "sam3": "bench.gpu_parts:part_sam3",
    "inference": "bench.gpu_parts:part_inference",
    "train-bf16": "bench.gpu_train:part_train_bf16",
    "train-fp32": "bench.gpu_train:part_train_fp32",
    "ddp": "bench.gpu_train:part_ddp",
    "metrics": "bench.gpu_parts:part_metrics",
}
# Seconds each part may take on the GPU; the sum stays under 8 minutes.
TIMEOUTS = {
    "labeling": 120,
    "sam3": 90,  # about 850M parameters initialised on the GPU, then 8 4K images
    "inference": 50,  # 14 s on an H200 (2026-12-04)
    "train-bf16": 55,
    "train-fp32": 55,
    "ddp": 70,
    "metrics": 30,
}


def run_part(name: str, device: str, small: bool, result: Path, tmp: Path) -> None:
    """Run one part in this process with scratch folder ``tmp`` and write its rows to
    ``result`` (JSON)."""
    import importlib

    from bench.gpu_parts import GPU_SIZES, SMALL_SIZES

    module, func = PARTS[name].split(":")
    part = getattr(importlib.import_module(module), func)
    rows = part(device, SMALL_SIZES if small else GPU_SIZES, small, tmp)
    from annotations.fileio import atomic_write_text

    atomic_write_text(result, json.dumps(rows, indent=1, default=float))


def machine(device: str) -> str:
    import torch

    from bench.common import cpu_name

    cpu = f"CPU {cpu_name()}, {os.cpu_count()} cores"
    if device.startswith("cuda"):
        gpus = torch.cuda.device_count()
        name = torch.cuda.get_device_name(0)
        return f"{gpus} x {name} (CUDA {torch.version.cuda}), {cpu}; torch {torch.__version__}"
    return f"{cpu}; torch {torch.__version__}, python {platform.python_version()}"


def run_parts(
    names: list[str], device: str, small: bool, out: Path, timeout_scale: float
) -> tuple[list[dict], dict[str, dict]]:
    """Run each part in a child process; returns every row, with one failure row per part that
    crashed, ran out of time or wrote nothing, and each part's status and wall time."""
    rows, parts, logs = [], {}, out / "logs"
    # every model is built here or saved locally: nothing may wait on a model hub
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if device == "cpu":  # one thread per process: faster and steadier on a shared CPU
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    logs.mkdir(parents=True, exist_ok=True)
    for name in names:
        result = out / "parts" / f"{name}.json"
        result.parent.mkdir(exist_ok=True)
        result.unlink(missing_ok=True)
        limit = TIMEOUTS[name] * timeout_scale
        cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--device", device]
        cmd += ["--result", str(result)] + (["--small"] if small else [])
        t0 = time.perf_counter()
        # the scratch folder is this process's: a part killed at its limit leaves nothing behind
        with (
            tempfile.TemporaryDirectory(prefix=f"gpu-bench-{name}-") as tmp,
            open(logs / f"{name}.log", "w") as log,
        ):
            cmd += ["--tmp", tmp]
            # own session: a timeout ends the part and whatever it started (torchrun ranks)
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT, env=env
            )
            try:
                rc = proc.wait(timeout=limit)
                status = "ok" if rc == 0 else f"crashed (exit {rc})"
            except subprocess.TimeoutExpired:
                kill_part(proc)
                status = f"timed out after {limit:.0f} s"
            except BaseException:  # stopped itself (Ctrl-C, SIGTERM): the part goes with it
                kill_part(proc)
                raise
        wall = time.perf_counter() - t0
        part_rows = json.loads(result.read_text()) if status == "ok" and result.is_file() else []
        if not part_rows:
            if status == "ok":
                status = "wrote no result"
            rows.append(
                {
                    "part": name,
                    "figure": "part failed",
                    "value": f"{status}: {last_line(logs / f'{name}.log')}",
                    "target": "runs",
                    "ok": False,
                    "raw": None,
                }
            )
        rows.extend(part_rows)
        parts[name] = {"status": status, "wall_s": round(wall, 1), "limit_s": limit}
        print(f"[{name}] {status} in {wall:.1f} s (limit {limit:.0f} s)", flush=True)
    return rows + derived_rows(rows, small), parts


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux ``/proc``; none elsewhere), whatever its session:
    torchrun starts each rank in a process group of its own."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def kill_part(proc: subprocess.Popen) -> None:
    """SIGKILL a part, its process group and every process below it: killing the group alone
    left torchrun's ranks running (and holding the GPU) after the part's limit."""
    below = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def last_line(log: Path) -> str:
    """The log's last line that says something (the exception, usually)."""
    lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    return lines[-1][:200] if lines else "no output"


def derived_rows(rows: list[dict], small: bool) -> list[dict]:
    """Figures that compare two parts (bf16 vs fp32 training)."""
    it_s = {
        r["part"]: r["raw"]
        for r in rows
        if r["part"].startswith("train-") and r["figure"].endswith("it/s")
    }
    if "train-bf16" in it_s and "train-fp32" in it_s and it_s["train-fp32"]:
        ratio = it_s["train-bf16"] / it_s["train-fp32"]
        return [
            {
                "part": "train",
                "figure": "bf16 vs fp32 training speed",
                "value": f"{ratio:.2f}x",
                "target": "> 1x",
                "ok": None if small else ratio > 1,
                "raw": ratio,
            }
        ]
    return []


def table(rows: list[dict]) -> str:
    """Markdown table: part, figure, value, target, pass."""
    mark = {True: "pass", False: "FAIL", None: "-"}
    lines = ["| part | figure | value | target | pass |", "|---|---|---|---|---|"]
    for r in rows:
        cells = (r["part"], r["figure"], r["value"], r["target"] or "-", mark[r["ok"]])
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="runs/gpu", help="folder for gpu.json, gpu.md, logs/")
    ap.add_argument("--device", default="cuda", help="cuda | cpu")
    ap.add_argument("--small", action="store_true", help="toy sizes (CPU smoke run)")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    ap.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every part's limit")
    ap.add_argument("--part", help=argparse.SUPPRESS)  # internal: run one part here
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one torchrun rank
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = [n.strip() for n in args.parts.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PARTS))
    if unknown:
        ap.exit(2, f"error: unknown parts {unknown}; known: {', '.join(PARTS)}\n")
    if args.device not in ("cpu", "cuda"):
        ap.exit(2, f"error: --device must be cpu or cuda, got {args.device!r}\n")

    if args.worker:
        from bench.gpu_parts import GPU_SIZES, SMALL_SIZES
        from bench.gpu_train import ddp_worker

        ddp_worker(args.device, SMALL_SIZES if args.small else GPU_SIZES, Path(args.tmp))
        return
    if args.part:
        run_part(args.part, args.device, args.small, Path(args.result), Path(args.tmp))
        return

    import torch

    from annotations.fileio import atomic_write_text
    from engine.runinfo import environment

    # a SIGTERM (gpu_session.sh's `timeout`) unwinds as SystemExit, so the running part, in a
    # session of its own, is killed too and does not hold the GPU through the next step
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.exit(2, "error: --device cuda but CUDA is not available (use --device cpu --small)\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows, parts = run_parts(names, args.device, args.small, out, args.timeout_scale)
    wall = time.perf_counter() - t0
    env = environment()
    head = f"machine: {machine(args.device)}\ncode: git {env.get('git_commit')}\nmode: " + (
        "--small (toy sizes: a smoke run of every code path, not GPU figures)"
        if args.small
        else "real sizes"
    )
    times = ", ".join(f"{k} {v['wall_s']:.0f} s" for k, v in parts.items())
    text = f"{head}\nwall time: {wall:.0f} s ({times})\n\n{table(rows)}\n"
    print("\n" + text)
    report = {
        "machine": machine(args.device),
        "device": args.device,
        "small": args.small,
        "wall_s": wall,
        "environment": env,
        "parts": parts,
        "rows": rows,
    }
    atomic_write_text(out / "gpu.json", json.dumps(report, indent=2, default=float))
    atomic_write_text(out / "gpu.md", f"# GPU figures\n\n{text}")
    failed = [r for r in rows if r["ok"] is False]
    if failed:
        print(f"{len(failed)} figure(s) FAIL", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
