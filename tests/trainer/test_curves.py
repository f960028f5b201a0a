"""``curves.png`` from a run's ``metrics.jsonl`` (trainer/curves.py)."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from tests.loop_helpers import saved_figures
from trainer.curves import plot_curves, read_metrics, running_mean


def _log(path, records, extra_lines=()):
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def _val(step, miou, subset_iou=None):
    val = {"images": 2, "mIoU": miou, "mBIoU": miou / 3, "mBF1": miou / 100}
    if subset_iou is not None:
        val["subsets"] = [{"class": "Bicycle", "iou": subset_iou}]
    return {"step": step, "val": val}


def test_read_metrics_keeps_one_validation_per_step_and_skips_cut_lines(tmp_path):
    log = _log(
        tmp_path / "metrics.jsonl",
        [
            {"step": 2, "lr": 0.1, "loss": 3.0},
            {"step": 4, "lr": 0.1, "loss": 2.0},
            _val(4, 10.0),
            {"step": 4, "event": "non_finite", "terms": {}},  # an event: neither
            _val(4, 12.0),  # a resume that had nothing left to train validated again
        ],
        extra_lines=['{"step": 6, "loss"'],  # cut by a crash
    )
    train, val = read_metrics(log)
    assert [r["step"] for r in train] == [2, 4]
    assert val == [{"step": 4, "images": 2, "mIoU": 12.0, "mBIoU": 4.0, "mBF1": 0.12}]


def test_running_mean():
    assert running_mean([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert running_mean([2.0], 5) == [2.0]


def test_plot_curves_writes_a_png_or_nothing_without_training_steps(tmp_path):
    pytest.importorskip("matplotlib")
    records = [{"step": s, "lr": 1e-3, "loss": 10.0 / s} for s in range(1, 21)]
    log = _log(tmp_path / "metrics.jsonl", [*records, _val(10, 30.0, 5.0), _val(20, 40.0, None)])
    out = plot_curves(log, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_curves(_log(tmp_path / "empty.jsonl", [_val(1, 1.0)]), tmp_path / "e.png") is None
    assert not (tmp_path / "e.png").exists()


def test_without_matplotlib_training_logs_a_note(tmp_path, monkeypatch, caplog):
    from trainer.train import _draw_curves

    _log(tmp_path / "metrics.jsonl", [{"step": 1, "lr": 1e-3, "loss": 1.0}])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(RuntimeError, match="curves.png needs matplotlib"):
        plot_curves(tmp_path / "metrics.jsonl", tmp_path / "c.png")
    with caplog.at_level(logging.INFO):
        _draw_curves(tmp_path)  # a figure never stops a training run
    assert "curves.png needs matplotlib" in caplog.text
    assert not (tmp_path / "curves.png").exists()


def test_validations_that_scored_nothing_draw_no_empty_legend(tmp_path):
    """Validations with no score (every class absent from the val split) drew an empty legend,
    and matplotlib's "No artists with labels found" warning reached the training's output."""
    pytest.importorskip("matplotlib")
    import warnings

    records = [{"step": s, "lr": 1e-3, "loss": 1.0} for s in (1, 2)]
    empty = {"step": 2, "val": {"images": 0, "mIoU": None, "mBIoU": None, "mBF1": None}}
    log = _log(tmp_path / "metrics.jsonl", [*records, empty])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_curves(log, tmp_path / "curves.png").is_file()


def test_charts_leave_the_callers_matplotlib_backend_and_figures_alone(tmp_path):
    """Called from a notebook or a program with its own plots: a chart switched matplotlib to
    Agg (``matplotlib.use``), which took a notebook off its inline backend and closed the
    caller's open figures."""
    pytest.importorskip("matplotlib")
    import matplotlib
    import matplotlib.pyplot as plt

    from engine.report import plot_chart

    before = matplotlib.get_backend()
    plt.switch_backend("svg")  # stands in for a notebook's or a GUI's backend
    try:
        mine = plt.figure()
        log = _log(
            tmp_path / "metrics.jsonl", [{"step": s, "lr": 1e-3, "loss": 1.0} for s in (1, 2)]
        )
        assert plot_curves(log, tmp_path / "curves.png").is_file()
        row = {"iou": 50.0, "biou": 20.0, "bf1": 0.5, "kind": "pseudo labels", "source": "pseudo"}
        assert plot_chart([row], tmp_path / "chart.png", "Bicycle").is_file()
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == [mine.number]  # the caller's figure, and no chart of ours
    finally:
        plt.close("all")
        plt.switch_backend(before)


def _drawn(tmp_path, monkeypatch, records):
    """The figure plot_curves draws from ``records`` (saved as usual)."""
    import trainer.curves

    figures = saved_figures(monkeypatch, trainer.curves)
    assert plot_curves(_log(tmp_path / "metrics.jsonl", records), tmp_path / "c.png").is_file()
    return figures[0]


def test_a_one_step_run_draws_its_point_and_whole_steps(tmp_path, monkeypatch):
    """A run of one logged step drew empty loss and learning-rate panels (a line of one point
    draws nothing) under ticks at 0.96 .. 1.04 of a step."""
    pytest.importorskip("matplotlib")
    fig = _drawn(tmp_path, monkeypatch, [{"step": 1, "lr": 3e-4, "loss": 50.0}, _val(1, 5.0)])
    for ax in fig.axes:
        drawn = [ln for ln in ax.get_lines() if ln.get_marker() not in (None, "None", "")]
        assert drawn, ax.get_title()  # the point shows
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert 1 in ticks and all(float(t).is_integer() for t in ticks), ticks
        assert ax.get_xlabel() == "step" and ax.get_ylabel()


def test_validations_before_the_first_logged_step_are_in_the_panel(tmp_path, monkeypatch):
    """--val-every 10 with losses logged from step 20: the validation at step 10 lay left of
    the panel's steps (20 .. 30), cut off."""
    pytest.importorskip("matplotlib")
    records = [{"step": s, "lr": 1e-3, "loss": 10.0 / s} for s in (20, 30)]
    fig = _drawn(tmp_path, monkeypatch, [*records, _val(10, 4.0), _val(20, 3.0), _val(30, 2.0)])
    for ax in fig.axes:  # every panel the same steps, the validation's included
        lo, hi = ax.get_xlim()
        assert lo <= 10 and hi >= 30, (ax.get_title(), lo, hi)


def test_validations_that_scored_nothing_leave_the_steps_as_the_training_s(tmp_path, monkeypatch):
    """Losses at steps 1000..2000 and one validation whose scores are all None (every image
    skipped): the empty panel's limits, matplotlib's (0, 1), pulled every panel back to step 0,
    the training curve squeezed into its right half."""
    pytest.importorskip("matplotlib")
    records = [{"step": s, "lr": 1e-3, "loss": 1.0} for s in range(1000, 2001, 100)]
    empty = {"step": 1500, "val": {"mIoU": None, "mBIoU": None, "mBF1": None}}
    fig = _drawn(tmp_path, monkeypatch, [*records, empty])
    for ax in fig.axes:
        assert ax.get_xlim()[0] > 900, (ax.get_title(), ax.get_xlim())


def test_read_metrics_skips_records_without_a_whole_step(tmp_path):
    """Only JSON objects with an integer ``step`` are steps or validations: a list, a record
    without a step or with a step of another type (a log written by hand) is passed over."""
    log = _log(
        tmp_path / "metrics.jsonl",
        [
            [1, 2],
            {"loss": 1.0},
            {"step": "3", "loss": 1.0},
            {"step": 2.0, "val": {"mIoU": 1.0}},
            {"step": 5, "loss": 2.0},
            _val(5, 10.0),
        ],  # fmt: skip
    )
    train, val = read_metrics(log)
    assert [r["step"] for r in train] == [5] and [v["step"] for v in val] == [5]


def test_the_validation_panel_draws_each_score_on_its_scale_and_each_subset_alone(
    tmp_path, monkeypatch
):
    """mIoU and mBIoU as logged (percent), mBF1 (a fraction) times 100 so the three share an
    axis, and one dashed line per annotated subset's class, with that class's IoUs only (a
    subset without an IoU at a step is no point there)."""
    pytest.importorskip("matplotlib")
    records = [{"step": s, "lr": 1e-3, "loss": 1.0} for s in range(1, 21)]
    vals = [_val(10, 30.0), _val(20, 60.0)]
    vals[0]["val"]["subsets"] = [{"class": "Car", "iou": 70.0}, {"class": "Bicycle", "iou": 5.0}]
    vals[1]["val"]["subsets"] = [{"class": "Bicycle", "iou": 9.0}, {"class": "Car", "iou": None}]
    fig = _drawn(tmp_path, monkeypatch, [*records, *vals])
    lines = {ln.get_label(): ln for ln in fig.axes[2].get_lines()}
    assert sorted(lines) == ["Bicycle IoU (annotated)", "Car IoU (annotated)", "mBF1", "mBIoU",
                             "mIoU"]  # fmt: skip
    for key, ys in (("mIoU", [30.0, 60.0]), ("mBIoU", [10.0, 20.0]), ("mBF1", [30.0, 60.0])):
        assert list(lines[key].get_xdata()) == [10, 20]
        assert list(lines[key].get_ydata()) == pytest.approx(ys), key
    bicycle, car = lines["Bicycle IoU (annotated)"], lines["Car IoU (annotated)"]
    assert (list(bicycle.get_xdata()), list(bicycle.get_ydata())) == ([10, 20], [5.0, 9.0])
    assert (list(car.get_xdata()), list(car.get_ydata())) == ([10], [70.0])
    assert fig.axes[2].get_title() == "validation (mBF1 x100)"


def test_the_loss_panel_draws_the_logged_losses_and_their_running_mean(tmp_path, monkeypatch):
    """The total loss per logged step, and its running mean over the last tenth of the points
    (20 points: a window of 2)."""
    pytest.importorskip("matplotlib")
    losses = [float(s % 3) for s in range(1, 21)]  # 1, 2, 0, 1, 2, 0, ...
    records = [{"step": 10 * s, "lr": 1e-3 / s, "loss": losses[s - 1]} for s in range(1, 21)]
    fig = _drawn(tmp_path, monkeypatch, records)
    logged, mean = fig.axes[0].get_lines()
    assert list(logged.get_xdata()) == list(mean.get_xdata()) == list(range(10, 201, 10))
    assert list(logged.get_ydata()) == losses
    assert list(mean.get_ydata())[:5] == [1.0, 1.5, 1.0, 0.5, 1.5]
    (lr,) = fig.axes[1].get_lines()
    assert list(lr.get_ydata()) == pytest.approx([1e-3 / s for s in range(1, 21)])


def test_a_validation_after_the_last_logged_step_is_in_the_panel(tmp_path, monkeypatch):
    """The panels span the logged losses' steps and the validations': a last validation at
    step 35 (a run of 35 steps logging every 10) lies inside every panel."""
    pytest.importorskip("matplotlib")
    records = [{"step": s, "lr": 1e-3, "loss": 10.0 / s} for s in (10, 20, 30)]
    fig = _drawn(tmp_path, monkeypatch, [*records, _val(20, 3.0), _val(35, 2.0)])
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        assert lo <= 10 and hi >= 35, (ax.get_title(), lo, hi)
