"""Time `engine fuse` on generated full-size label maps (default 4032x3024, two new classes).

    python bench/fusion.py --images 8 --workers 1 2

Writes a throwaway dataset (blocky precise labels, grey JPEG images) and two hand-built pseudo
runs (discs spilling over several classes, with uncertain rims and overlaps) into a temp folder,
then fuses them once per worker count and prints seconds per image. Reading and writing the
PNGs is included: it is most of the time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotations.labelmap import write_label  # noqa: E402
from engine.fusion import FuseConfig, fuse  # noqa: E402
from engine.fusion.testing import write_pseudo_run  # noqa: E402


def make_inputs(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    w, h = size
    rng = np.random.default_rng(seed)
    pseudo: list[dict[str, np.ndarray]] = [{}, {}]
    for i in range(n):
        stem = f"img{i:04d}"
        precise = np.zeros((h, w), np.uint8)
        precise[: h // 3] = 5  # sky
        precise[2 * h // 3 :] = 4  # ground
        for _ in range(12):
            x, y = rng.integers(0, w), rng.integers(0, h)
            cv2.rectangle(
                precise,
                (int(x), int(y)),
                (int(x) + w // 8, int(y) + h // 6),
                int(rng.integers(0, 7)),
                -1,
            )
        precise[rng.random((h, w)) < 0.001] = 255
        img = root / "data" / "images" / "train" / f"{stem}.jpg"
        img.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(img), np.full((h, w, 3), 128, np.uint8))
        write_label(root / "data" / "annotations" / "train" / f"{stem}.png", precise)
        for k in range(2):
            lab = np.zeros((h, w), np.uint8)
            for _ in range(3):
                c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                r = int(rng.integers(h // 20, h // 6))
                cv2.circle(lab, c, r + 6, 255, -1)
                cv2.circle(lab, c, r, 1, -1)
            pseudo[k][stem] = lab
    return [
        write_pseudo_run(root / "runs" / name, name, {"train": p})
        for name, p in zip(("Bicycle", "Car"), pseudo, strict=True)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", default="4032x3024", help="WxH")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--min-coverage", type=float, default=None)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        runs = make_inputs(root, args.images, size)
        print(
            f"inputs: {args.images} images {args.size}, 2 classes ({time.perf_counter() - t0:.1f} s)"
        )
        for workers in args.workers:
            cfg = FuseConfig(
                data=root / "data",
                pseudo=tuple(runs),
                out=root / f"fused{workers}",
                workers=workers,
                min_coverage=args.min_coverage,
                progress=False,
            )
            t0 = time.perf_counter()
            result = fuse(cfg)
            dt = time.perf_counter() - t0
            print(
                f"workers {workers}: {dt:.2f} s, {dt / result.fused:.3f} s/image, "
                f"{result.fused / dt:.2f} images/s"
            )


if __name__ == "__main__":
    main()
