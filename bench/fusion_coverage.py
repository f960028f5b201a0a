"""Time and trace the memory of the coverage drop (`engine fuse --min-coverage`) on one photo.

    python bench/fusion_coverage.py --instances 100 --size 4032x3024

Writes a blocky precise label (Ground, Others, Sky, ...; 0.1% of it 255) and a pseudo run of
one class with ``--instances`` ellipses (10 to 400 px half-axes, overlapping, some cut by the
image edge; 2% of their pixels uncertain) into a temp folder, then reads the image's pseudo
label and instances as `engine fuse` does (``read_pseudo``) and fuses it with
``--min-coverage 0.5`` (parents Ground and Others). Prints the best of ``--repeat`` runs: seconds
to read, seconds to fuse, the tracemalloc peak, an md5 of the fused label and source maps and
the counts. It uses only the public API, so the script copied into a checkout of another commit
measures that commit (the forty-third round's before and after: docs/fusion.md, Speed).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotations.fileio import atomic_write_json  # noqa: E402
from annotations.labelmap import read_label, write_label  # noqa: E402
from annotations.rle import mask_to_rle  # noqa: E402
from annotations.taxonomy import MASS13K  # noqa: E402
from engine.fusion import (  # noqa: E402
    FusionRules,
    PseudoLabel,
    fuse_image,
    open_pseudo_run,
    read_pseudo,
)
from engine.fusion.testing import labeler_run_json  # noqa: E402


def make_inputs(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> None:
    w, h = size
    rng = np.random.default_rng(seed)
    precise = np.zeros((h, w), np.uint8)
    precise[: h // 3] = 5  # sky
    precise[2 * h // 3 :] = 4  # ground
    for _ in range(12):
        x, y = rng.integers(0, w), rng.integers(0, h)
        corner = (int(x) + w // 8, int(y) + h // 6)
        cv2.rectangle(precise, (int(x), int(y)), corner, int(rng.integers(0, 7)), -1)
    precise[rng.random((h, w)) < 0.001] = 255
    write_label(root / "precise.png", precise)
    taxonomy = MASS13K.with_new_class("Bicycle", "Others")
    class_id = taxonomy.id_of("Bicycle")
    label = np.zeros((h, w), np.uint8)
    items = []
    for _ in range(n):
        m = np.zeros((h, w), np.uint8)
        center = (int(rng.integers(-50, w + 50)), int(rng.integers(-50, h + 50)))
        axes = (int(rng.integers(10, 400)), int(rng.integers(10, 300)))
        cv2.ellipse(m, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        ys, xs = np.nonzero(m)
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 0, 0]
        label[m == 1] = 1
        items.append(
            {
                "box_xyxy": [float(v) for v in box],
                "score": 0.8,
                "mask_score": 0.9,
                "area": int(m.sum()),
                "class_id": class_id,
                "prompt": "bicycle",
                "segmentation": mask_to_rle(m),
            }
        )
    label[(rng.random((h, w)) < 0.02) & (label == 1)] = 255
    run = root / "run"
    write_label(run / "labels" / "train" / "a.png", label)
    write_label(
        run / "confidence" / "train" / "a.png", np.where(label > 0, 200, 0).astype(np.uint8)
    )
    doc = {"format": "mass-engine/instances/v1", "height": h, "width": w, "instances": items}
    atomic_write_json(run / "instances" / "train" / "a.json", doc)
    atomic_write_json(run / "run.json", labeler_run_json(taxonomy, "Bicycle"))


def measure(root: Path, repeat: int) -> str:
    precise = read_label(root / "precise.png")
    run = open_pseudo_run(root / "run")
    rules = FusionRules(parents={7: (4, 6)}, min_coverage=0.5)
    best = None
    for _ in range(repeat):
        tracemalloc.start()
        try:
            t0 = time.perf_counter()
            label, conf, inst = read_pseudo(run, "train", "a", precise.shape, True)
            t1 = time.perf_counter()
            fused = fuse_image(precise, [PseudoLabel(7, label, conf, inst)], rules)
            t2 = time.perf_counter()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        del label, conf, inst
        if best is None or t2 - t0 < best[0] + best[1]:
            best = (t1 - t0, t2 - t1, peak)
    md5 = hashlib.md5(fused.label.tobytes() + fused.source.tobytes()).hexdigest()
    s = fused.stats[7]
    read, fuse, peak = best
    return (
        f"read {read:.2f} s, fuse_image {fuse:.2f} s, total {read + fuse:.2f} s, tracemalloc peak "
        f"{peak / 2**20:.0f} MiB; maps md5 {md5}; instances {s.instances}, dropped "
        f"{s.instances_dropped}, dropped_pixels {s.dropped_pixels}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--size", default="4032x3024", help="WxH")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        make_inputs(Path(tmp), args.instances, size)
        print(measure(Path(tmp), args.repeat))


if __name__ == "__main__":
    main()
