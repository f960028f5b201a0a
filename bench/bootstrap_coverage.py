"""Coverage of the delta intervals (engine.metrics.bootstrap): how often the "95%" interval holds
the true delta, on test sets of N images drawn from populations where that delta is known.

Populations (docs/metrics.md, "How sure the intervals are"):

- ``demo-<class>-scale<s>``: the demo's 8 test images of the class (seed 0, the joint-trained
  model against the pseudo labels: their per-image counts, below), each drawn image's counts as
  they are (s = 0) or scaled by a lognormal(0, s) size; the truth is the 8 images' delta, and
  IoU, BIoU and BF1 are each measured;
- ``parametric``: 2 million images, class pixels lognormal(8, 1.2), 10% without the class; the
  second source finds 5 points more of each image's pixels on average (IoU only);
- ``null``: the same, the two sources swapped on a random half of the images: true delta 0, and
  "excludes 0" should be 5% of the test sets.

``--method percentile`` is the engine's interval, measured from 2 images (the engine forms none
below ``min_images``); ``expanded`` widens its level to Hesterberg's expanded percentile
(``sqrt(n / (n - 1)) t_{n-1}``), for comparison.

    python bench/bootstrap_coverage.py [--trials 1000] [--images 2,3,4,5,8,16,32]
                                       [--method percentile] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine.metrics.bootstrap as bootstrap  # noqa: E402
from engine.metrics.bootstrap import SCORES, paired_delta_interval, scores_from_sums  # noqa: E402

# The demo's per-image counts (seed 0, engine.metrics.evaluator.JSON_COUNTS rows, 8 test images
# in stem order): the pseudo labels ("base") and the joint-trained model ("other"), as
# engine report's delta_interval reads them (README: Bicycle IoU [-8.63, +14.88]).
DEMO = {
    "bicycle": (
        [[3621, 9307, 0, 1250, 1277, 3407, 7852, 8948],
         [11155, 23842, 0, 3263, 4390, 8285, 23790, 21816],
         [333, 451, 0, 189, 197, 384, 715, 366],
         [3391, 7077, 0, 1066, 1645, 2596, 7282, 6327],
         [864, 1348, 0, 300, 844, 713, 1961, 1056],
         [832, 1196, 0, 297, 532, 637, 1738, 930],
         [4227, 8125, 0, 1293, 1407, 2773, 8148, 7034],
         [1059, 1235, 0, 306, 555, 609, 1982, 932]],
        [[2958, 5442, 0, 941, 859, 1570, 4303, 6529],
         [5319, 13306, 147, 1642, 6957, 5190, 14848, 9948],
         [1344, 1933, 0, 439, 380, 646, 1959, 2634],
         [4089, 9483, 135, 1295, 4361, 3448, 10051, 7378],
         [2873, 5718, 205, 899, 4016, 2224, 6548, 4469],
         [2286, 5050, 0, 616, 774, 1270, 4192, 4245],
         [4227, 8125, 0, 1293, 1407, 2773, 8148, 7034],
         [2979, 6191, 0, 721, 971, 1499, 5347, 5281]],
    ),
    "car": (
        [[1738, 28499, 15223, 28235, 0, 14479, 19347, 0],
         [2385, 31967, 15840, 28853, 0, 19298, 23456, 181],
         [73, 728, 412, 476, 0, 410, 498, 0],
         [417, 3752, 1442, 1578, 0, 2687, 4345, 69],
         [174, 1468, 968, 1031, 0, 1027, 1239, 74],
         [170, 1404, 942, 921, 0, 901, 1178, 0],
         [238, 2964, 912, 897, 0, 2160, 3877, 0],
         [162, 1333, 885, 878, 0, 881, 1257, 0]],
        [[1957, 24851, 14764, 28226, 0, 13593, 14902, 0],
         [3238, 32640, 15450, 28706, 389, 20322, 21650, 9],
         [148, 499, 399, 615, 0, 230, 437, 0],
         [748, 4180, 1486, 1380, 94, 3344, 4917, 9],
         [633, 1681, 1004, 998, 98, 1531, 1753, 18],
         [161, 800, 887, 904, 0, 746, 1188, 0],
         [238, 2964, 912, 897, 0, 2160, 3877, 0],
         [156, 784, 883, 878, 0, 678, 1301, 0]],
    ),
}  # fmt: skip

Draw = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def demo_population(name: str, sigma: float) -> tuple[Draw, np.ndarray]:
    """Draws of the demo's images of class ``name`` (scaled by a lognormal(0, sigma) size); the
    truth is their delta (a common scale leaves each ratio of expected sums as it is)."""
    base, other = (np.array(c, np.int64) for c in DEMO[name])

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, base.shape[1], n)
        if sigma == 0:
            return base[:, idx], other[:, idx]
        k = rng.lognormal(0, sigma, n)
        return (np.rint(c[:, idx] * k).astype(np.int64) for c in (base, other))  # type: ignore[return-value]

    return draw, scores_from_sums(other.sum(1)) - scores_from_sums(base.sum(1))


def parametric(swap: bool) -> tuple[Draw, np.ndarray]:
    """Images of lognormal class sizes, 10% without the class; the second source finds 5 points
    more of the pixels on average, with per-image noise; ``swap``: true delta 0."""

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        g = np.rint(rng.lognormal(8, 1.2, n)).astype(np.int64)
        g[rng.random(n) < 0.1] = 0
        ha, fa = rng.beta(4, 4, n), rng.gamma(2, 0.25, n)  # found share, false positives / G
        hb = np.clip(ha + 0.05 + rng.normal(0, 0.12, n), 0, 1)
        fb = np.clip(fa + rng.normal(0, 0.1, n), 0, None)
        stray = np.rint(rng.lognormal(5, 1, n)).astype(np.int64) * (g == 0)

        def counts(h: np.ndarray, f: np.ndarray) -> np.ndarray:
            i = np.rint(g * h).astype(np.int64)
            u = np.maximum(g + np.rint(g * f).astype(np.int64) + stray * (rng.random(n) < 0.5), i)
            return np.stack([i, u, i // 4, u // 4, u, i, u, i])  # IoU is what is measured

        a, b = counts(ha, fa), counts(hb, fb)
        if swap:
            s = rng.random(n) < 0.5
            a, b = np.where(s, b, a), np.where(s, a, b)
        return a, b

    if swap:
        return draw, np.zeros(len(SCORES))
    a, b = draw(np.random.default_rng(12345), 2_000_000)
    return draw, scores_from_sums(b.sum(1)) - scores_from_sums(a.sum(1))


def interval(a: np.ndarray, b: np.ndarray, method: str) -> dict:
    if method == "percentile":
        return paired_delta_interval(a, b)
    from scipy import stats

    n = a.shape[1]
    z = np.sqrt(n / (n - 1)) * stats.t.ppf(0.975, n - 1)
    return paired_delta_interval(a, b, level=float(1 - 2 * stats.norm.sf(z)))


def measure(draw: Draw, truth: np.ndarray, keys, sizes, trials, method, seed) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for n in sizes:
        held = {k: [] for k in keys}
        sure = {k: [] for k in keys}
        for _ in range(trials):
            ci = interval(*draw(rng, n), method)
            for j, key in enumerate(SCORES):
                if key in keys and ci[key] is not None:
                    lo, hi = ci[key]
                    held[key].append(lo <= truth[j] <= hi)
                    sure[key].append(lo > 0 or hi < 0)
        out[n] = {
            k: {
                "formed": len(held[k]),
                "coverage": float(np.mean(held[k])) if held[k] else None,
                "excludes0": float(np.mean(sure[k])) if sure[k] else None,
            }
            for k in keys
        }
        cells = {k: v["coverage"] for k, v in out[n].items()}
        print(f"  {n:>3} images: coverage {cells}", flush=True)
    return {"truth": [float(t) for t in truth], "by_images": out}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000, help="test sets per cell")
    ap.add_argument("--images", default="2,3,4,5,8,16,32", help="test-set sizes")
    ap.add_argument("--method", choices=("percentile", "expanded"), default="percentile")
    ap.add_argument("--json", default=None, help="write the measurements here")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.images.split(",")]
    if args.method == "expanded":
        sizes = [n for n in sizes if n >= 5]  # below, its tails hold under 2 of the 2,000 draws
    t0 = time.perf_counter()
    populations = {
        f"demo-{name}-scale{sigma}": (*demo_population(name, sigma), SCORES, 1)
        for name in DEMO
        for sigma in (0.0, 0.5)
    }
    populations["parametric"] = (*parametric(False), ("iou",), 2)
    populations["null"] = (*parametric(True), ("iou",), 2)
    res: dict = {}
    engine_min = bootstrap.min_images
    bootstrap.min_images = lambda level=bootstrap.LEVEL: 2  # the percentile interval itself
    try:
        for name, (draw, truth, keys, seed) in populations.items():
            print(f"{name} (truth {np.round(truth, 4).tolist()}):", flush=True)
            res[name] = measure(draw, truth, keys, sizes, args.trials, args.method, seed)
    finally:
        bootstrap.min_images = engine_min
    res["config"] = vars(args)
    res["machine"] = f"{platform.processor() or platform.machine()}, numpy {np.__version__}"
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{res['machine']}; {res['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
