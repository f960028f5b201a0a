"""Time what the content hash of `engine fuse`'s manifest costs: per image, and after a copy.

    python bench/fusion_content.py --images 6 --size 4032x3024 [--noisy-confidence]

Writes bench/fusion.py's generated inputs (blocky precise labels, two pseudo runs) into a temp
folder; with ``--noisy-confidence`` each confidence map gets per-pixel noise (a model's softmax
rather than three values: about 9 MB a PNG at 4032x3024, the worst case for hashing). Then, per
image, the median of ``--repeat`` rounds of: ``input_content`` (reading and hashing the input
files), reading their bytes alone (what decoding from the hashed bytes would save), and a whole
``fuse_job``. Then it fuses the folder, copies it with ``cp -r`` (new modification times, same
bytes) and fuses the copy again: nothing is fused, every image's content is checked in the main
process; prints that call's seconds and the part spent hashing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fusion import make_inputs  # noqa: E402
from engine.fusion import FuseConfig, fuse  # noqa: E402
from engine.fusion import run as fusion_run  # noqa: E402
from engine.fusion.run import image as fusion_image  # noqa: E402
from engine.fusion.run import resume as fusion_resume  # noqa: E402


def add_noise(root: Path, seed: int = 1) -> None:
    """Rewrite every confidence map under ``root/runs`` with per-pixel noise."""
    rng = np.random.default_rng(seed)
    for conf in sorted(root.glob("runs/*/confidence/*/*.png")):
        label = cv2.imread(str(conf.parents[2] / "labels" / conf.parent.name / conf.name), 0)
        base = np.select([label == 1, label == 255], [200, 100], 10).astype(np.uint8)
        cv2.imwrite(str(conf), base + rng.integers(0, 40, label.shape, dtype=np.uint8))


def config(root: Path) -> FuseConfig:
    runs = tuple(sorted((root / "runs").iterdir()))
    return FuseConfig(data=root / "data", pseudo=runs, out=root / "fused", progress=False)


def per_image(root: Path, repeat: int) -> None:
    plan = fusion_run.plan_fusion(config(root))
    fusion_run._init_worker(plan, root / "timed")
    times: dict[str, list[float]] = {"input_content": [], "reading alone": [], "fuse_job": []}
    for _ in range(repeat):
        for job in plan.jobs:
            t0 = time.perf_counter()
            fusion_run.input_content(plan, job)
            t1 = time.perf_counter()
            for p in fusion_run.input_paths(plan, job):
                p.read_bytes()
            t2 = time.perf_counter()
            fusion_run.fuse_job(job)
            t3 = time.perf_counter()
            for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                times[key].append(dt)
    size = sum(p.stat().st_size for p in fusion_run.input_paths(plan, plan.jobs[0]))
    job = statistics.median(times["fuse_job"])
    print(f"per image ({size / 1e6:.2f} MB of input files), median of {repeat}:")
    for key, values in times.items():
        dt = statistics.median(values)
        print(f"  {key:14s} {dt * 1000:8.1f} ms  {dt / job * 100:5.1f}% of fuse_job")


def after_copy(root: Path) -> None:
    t0 = time.perf_counter()
    first = fuse(config(root))
    fused = time.perf_counter() - t0
    copy = root.with_name(root.name + "-copy")
    subprocess.run(["cp", "-r", str(root), str(copy)], check=True)
    spent = [0.0]
    real = fusion_run.input_content

    def timed(plan, job):
        t = time.perf_counter()
        try:
            return real(plan, job)
        finally:
            spent[0] += time.perf_counter() - t

    callers = (fusion_resume, fusion_image)  # the modules that call it: _done, fuse_job
    for module in callers:
        module.input_content = timed
    try:
        t0 = time.perf_counter()
        again = fuse(config(copy))
        dt = time.perf_counter() - t0
    finally:
        for module in callers:
            module.input_content = real
        shutil.rmtree(copy)
    n = first.fused
    print(
        f"fused {n} images in {fused:.2f} s ({fused / n * 1000:.1f} ms/image); the copy, fused again: "
        f"{again.skipped} skipped in {dt:.3f} s ({dt / n * 1000:.2f} ms/image), "
        f"{spent[0]:.3f} s of it hashing ({spent[0] / dt * 100:.0f}%)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--size", default="4032x3024", help="WxH")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--noisy-confidence", action="store_true")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        make_inputs(root, args.images, size)
        if args.noisy_confidence:
            add_noise(root)
        print(f"{args.images} images {args.size}, 2 classes")
        per_image(root, args.repeat)
        after_copy(root)


if __name__ == "__main__":
    main()
