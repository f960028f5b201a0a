"""Benchmark: engine.metrics against a straightforward per-class implementation, same run.

Generates realistic 4032x3024 label-map pairs with 8 classes (smooth regions from the argmax of
upsampled random fields, 1-3 px poles and wires, a prediction whose boundaries move by a few
pixels and which misses some thin parts, an ignore region), checks that both implementations
give identical counts, and prints absolute times, the ratio and the machine. One thread unless
``--threads`` says otherwise.

    python bench/metrics.py [--pairs 3] [--repeat 3] [--size 4032x3024] [--classes 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.metrics import pair_counts  # noqa: E402
from engine.metrics.counts import boundary_width  # noqa: E402
from engine.metrics.evaluator import JSON_COUNTS as FIELDS  # noqa: E402


def make_pair(rng: np.random.Generator, h: int, w: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A (pred, gt) pair of (H, W) uint8 label maps with realistic structure."""
    gh, gw = max(2, h // 96), max(2, w // 96)
    fields = rng.standard_normal((k, gh, gw)).astype(np.float32)
    jitter = 0.15 * rng.standard_normal((k, gh * 4, gw * 4)).astype(np.float32)
    gt = np.zeros((h, w), np.uint8)
    pred = np.zeros((h, w), np.uint8)
    best_g = np.full((h, w), -np.inf, np.float32)
    best_p = np.full((h, w), -np.inf, np.float32)
    for c in range(k):
        f = cv2.resize(fields[c], (w, h), interpolation=cv2.INTER_CUBIC)
        j = cv2.resize(jitter[c], (w, h), interpolation=cv2.INTER_CUBIC)
        m = f > best_g
        gt[m], best_g[m] = c, f[m]
        fp = f + j
        m = fp > best_p
        pred[m], best_p[m] = c, fp[m]
    for _ in range(20):  # poles and wires 1-3 px wide; the prediction gets only some of them
        c = int(rng.integers(0, k))
        t = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            x = int(rng.integers(0, w - t))
            y0, y1 = sorted(rng.integers(0, h, 2))
            gt[y0:y1, x : x + t] = c
            if rng.random() < 0.6:
                pred[y0:y1, x : x + t + 1] = c
        else:
            y = int(rng.integers(0, h - t))
            cv2.line(gt, (0, y), (w - 1, y + int(rng.integers(-300, 300))), c, t)
            if rng.random() < 0.6:
                cv2.line(pred, (0, y + 1), (w - 1, y + 1), c, t)
    y, x = int(rng.integers(0, h - 200)), int(rng.integers(0, w - 300))
    gt[y : y + 200, x : x + 300] = 255  # ignore region
    return pred, gt


def reference_counts(pred: np.ndarray, gt: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The plain way: one binary mask per class, full-image passes (OpenCV morphology)."""
    h, w = gt.shape
    d = boundary_width(h, w)
    # the 13-pixel disk of radius 2 (OpenCV's 5x5 MORPH_ELLIPSE has 17 pixels: not this)
    yy, xx = np.mgrid[-2:3, -2:3]
    disk = (yy * yy + xx * xx <= 4).astype(np.uint8)
    square = np.ones((3, 3), np.uint8)
    valid = gt != 255
    out = {f: np.zeros(k, np.int64) for f in FIELDS}

    def band(m: np.ndarray) -> np.ndarray:  # MaSS13K release: pad 1 with 0, erode 3x3 d times
        p = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        e = cv2.erode(p, square, iterations=d)[1 : h + 1, 1 : w + 1]
        return m > e

    def seg2bmap(seg: np.ndarray) -> np.ndarray:  # DAVIS
        e = np.zeros_like(seg)
        s = np.zeros_like(seg)
        se = np.zeros_like(seg)
        e[:, :-1] = seg[:, 1:]
        s[:-1, :] = seg[1:, :]
        se[:-1, :-1] = seg[1:, 1:]
        b = seg ^ e | seg ^ s | seg ^ se
        b[-1, :] = seg[-1, :] ^ e[-1, :]
        b[:, -1] = seg[:, -1] ^ s[:, -1]
        b[-1, -1] = 0
        return b

    for c in range(k):
        p, g = pred == c, gt == c
        out["iou_intersection"][c] = np.count_nonzero(p & g & valid)
        out["iou_union"][c] = np.count_nonzero((p | g) & valid)
        bp, bg = band(p.view(np.uint8)), band(g.view(np.uint8))
        out["biou_intersection"][c] = np.count_nonzero(bp & bg)
        out["biou_union"][c] = np.count_nonzero(bp | bg)
        sp, sg = seg2bmap(p & valid), seg2bmap(g & valid)
        dp = cv2.dilate(sp.view(np.uint8), disk).view(bool)
        dg = cv2.dilate(sg.view(np.uint8), disk).view(bool)
        out["bf1_pred_boundary"][c] = np.count_nonzero(sp)
        out["bf1_pred_matched"][c] = np.count_nonzero(sp & dg)
        out["bf1_gt_boundary"][c] = np.count_nonzero(sg)
        out["bf1_gt_matched"][c] = np.count_nonzero(sg & dp)
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"{cpu}, {os.cpu_count()} logical cores, load average {load[0]:.2f}; "
        f"python {platform.python_version()}, numpy {np.__version__}, opencv {cv2.__version__}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pairs", type=int, default=3, help="generated pairs")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed runs per pair (fastest kept: least disturbed by other jobs)",
    )
    ap.add_argument("--size", default="4032x3024", help="WxH")
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(0)
    print(f"machine: {machine()}")
    print(f"pairs: {args.pairs} x {w}x{h}, {args.classes} classes, OpenCV threads {args.threads}")
    engine_t, ref_t = [], []
    for i in range(args.pairs):
        pred, gt = make_pair(rng, h, w, args.classes)
        te, tr = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            got = pair_counts(pred, gt, args.classes)
            te.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            want = reference_counts(pred, gt, args.classes)
            tr.append(time.perf_counter() - t0)
        for f in FIELDS:
            if not np.array_equal(getattr(got, f), want[f]):
                raise SystemExit(
                    f"pair {i}: {f} differs: engine {getattr(got, f)} reference {want[f]}"
                )
        engine_t.append(min(te))
        ref_t.append(min(tr))
        print(
            f"pair {i}: engine {engine_t[-1] * 1000:7.1f} ms   reference {ref_t[-1] * 1000:7.1f} ms   "
            f"x{ref_t[-1] / engine_t[-1]:.2f}   (counts identical)"
        )
    e, r = statistics.mean(engine_t), statistics.mean(ref_t)
    print(f"mean: engine {e * 1000:.1f} ms, reference {r * 1000:.1f} ms, speed-up x{r / e:.2f}")
    print(f"target <= 200 ms per pair: {'met' if e <= 0.2 else 'NOT met'}")


if __name__ == "__main__":
    main()
