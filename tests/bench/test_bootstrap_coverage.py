"""``bench/bootstrap_coverage.py``: its demo population is the demo's images (the README's
intervals from its counts), and a short run measures without changing the engine's rule."""

from __future__ import annotations

import numpy as np

import engine.metrics.bootstrap as bootstrap
from bench.bootstrap_coverage import DEMO, main
from engine.metrics.bootstrap import interval_record


def test_the_demo_counts_give_the_readmes_intervals():
    bicycle = interval_record(*(np.array(c) for c in DEMO["bicycle"]))
    car = interval_record(*(np.array(c) for c in DEMO["car"]))
    assert [bicycle[k] for k in ("iou", "biou", "bf1")] == [
        [-8.63, 14.88], [6.12, 22.13], [0.1523, 0.5032]
    ]  # fmt: skip
    assert [car[k] for k in ("iou", "biou", "bf1")] == [
        [-13.13, -2.07], [-7.13, 2.31], [-0.2358, -0.0483]
    ]  # fmt: skip


def test_a_short_run_measures_from_two_images_and_leaves_the_rule():
    rule = bootstrap.min_images
    res = main(["--trials", "3", "--images", "2,4"])
    assert bootstrap.min_images is rule and rule() == 4
    cell = res["demo-bicycle-scale0.0"]["by_images"]
    assert cell[2]["iou"]["formed"] >= 1 and 0 <= cell[4]["biou"]["coverage"] <= 1
    assert res["null"]["truth"] == [0.0, 0.0, 0.0] and 3.2 < res["parametric"]["truth"][0] < 3.3
