"""``bench/label_ceiling.py``: the half-resolution reading of a label map, and its scores agreeing
with ``engine report``'s on a small demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from annotations.subset import read_subset
from bench.label_ceiling import read_at, score_class
from cli import app

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--train", "3", "--val", "1", "--test", "2", "--size", "128x96", "--iters", "4",
         "--crop", "64", "--batch-size", "2", "--no-progress"]  # fmt: skip


def background(h: int = 12, w: int = 16) -> np.ndarray:
    return np.full((h, w), 4, np.uint8)  # Ground


def test_a_one_pixel_spoke_is_lost_at_half_resolution_a_two_pixel_aligned_bar_kept():
    spoke = background()
    spoke[:, 5] = 7
    assert (read_at(spoke, 2, 9) == 4).all()  # half a pixel of bicycle loses the tie to Ground
    bar = background()
    bar[:, 4:6] = 7  # fills whole cells of the 2x2 grid
    assert np.array_equal(read_at(bar, 2, 9), bar)


def test_factor_one_is_the_map_itself_and_other_sizes_keep_their_shape():
    label = np.random.default_rng(0).integers(0, 9, (7, 11)).astype(np.uint8)
    assert np.array_equal(read_at(label, 1, 9), label)
    big = background(13, 17)
    big[4:12, 6:14] = 8  # a car block, odd frame
    out = read_at(big, 2, 9)
    assert out.shape == (13, 17)
    assert (out[6:10, 8:12] == 8).all() and (out[:2] == 4).all()


def test_ignored_pixels_take_the_nearest_label():
    label = background()
    label[:, 8:] = 8
    label[:, 7:9] = 255
    out = read_at(label, 2, 9)
    assert set(np.unique(out)) == {4, 8}
    assert (out[:, :6] == 4).all() and (out[:, 10:] == 8).all()


def _ceiling(demo: Path) -> dict[str, dict[str, dict]]:
    """The script run as a user runs it (factor 2), its JSON by class and source."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "label_ceiling.py"), str(demo)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    ceiling = json.loads((demo / "label_ceiling.json").read_text())
    assert ceiling["factor"] == 2
    return {c: {r["source"]: r for r in rows} for c, rows in ceiling["classes"].items()}


def test_scores_agree_with_the_report_of_a_small_demo(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), *SMALL])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "report" / "summary.json").read_text())
    half = _ceiling(out)
    full = {  # factor 1 in-process: the same scoring, without a second interpreter
        sub.class_name: {r["source"]: r for r in score_class(out, sub, 1)}
        for sub in (read_subset(p.parent) for p in (out / "annotated").glob("*/subset.json"))
    }
    keys = ("iou", "biou", "bf1")
    for name in ("Bicycle", "Car"):
        ours = half[name]
        theirs = {r["kind"]: r for r in summary["classes"][name]}
        for kind in ("pseudo labels", "fused labels"):
            assert {k: ours[kind][k] for k in keys} == {k: theirs[kind][k] for k in keys}
        # at the labels' own resolution the reading changes nothing: the fused labels score as
        # the report scores them and the annotation scores perfectly
        same = full[name]
        assert {k: same["fused labels at 1/1"][k] for k in keys} == {
            k: theirs["fused labels"][k] for k in keys
        }
        assert {k: same["annotation at 1/1"][k] for k in keys} == {
            "iou": 100.0, "biou": 100.0, "bf1": 1.0
        }  # fmt: skip
        # at half resolution the annotation loses some of its pixels, Bicycle's thin parts most
        assert 0.0 < ours["annotation at 1/2"]["iou"] < 100.0
    assert half["Bicycle"]["annotation at 1/2"]["iou"] < half["Car"]["annotation at 1/2"]["iou"]
