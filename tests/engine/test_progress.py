"""The progress bars every long command draws (engine.progress)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from engine import progress as progress_module


@pytest.mark.parametrize("width", [80, 100])
def test_a_bar_with_extra_fields_stays_on_one_line_at_80_columns(monkeypatch, width):
    """rich folds every foldable column a little where a line is too wide: the label bar's
    rate read ``74.60`` with ``img/s`` on a line of its own, and training's count ``1000/10…``
    at 80 columns. The figures do not fold; the bar gives way."""
    out = io.StringIO()
    monkeypatch.setattr(progress_module, "stderr_console", Console(file=out, width=width))
    clock = [0.0]
    bars = (  # as engine label, engine train and engine predict draw them, at their rates
        ("label Bicycle", "img", 34, "63 inst, 0 failed", 1 / 74.6),
        ("train", "it", 1000, "loss 12.8095  lr 8.20e-09", 1 / 3.59),
        ("predict", "img", 8, None, 1 / 7.07),
    )
    for description, unit, total, info, step in bars:
        bar = progress_module.make_progress(unit, "{task.fields[info]}" if info else None)
        bar.get_time = lambda: clock[0]
        with bar:
            task = bar.add_task(description, total=total, info=info)
            for _ in range(total):
                clock[0] += step
                bar.advance(task)
    lines = [line for line in out.getvalue().splitlines() if "━" in line]
    assert len(lines) == 3, out.getvalue()
    logged = [line for line in out.getvalue().splitlines() if line.strip() and "━" not in line]
    # not a terminal: training's 278 s also wrote where it stood once a minute (LOG_EVERY_S)
    assert [line.split()[:2] for line in logged] == [
        ["train", f"{n}/1000"] for n in (217, 433, 649, 865)
    ]
    assert all("3.59 it/s" in line and "ETA" in line for line in logged)
    assert "34/34 74.60 img/s 0:00:00 ETA 0:00:00 63 inst, 0 failed" in lines[0]
    assert "1000/1000 3.59 it/s 0:04:38 ETA 0:00:00 loss 12.8095  lr 8.20e-09" in lines[1]
    assert "8/8 7.07 img/s 0:00:01 ETA 0:00:00" in lines[2]
    assert all(len(line) <= width and "━" in line for line in lines)


def test_a_description_is_shown_as_typed(monkeypatch):
    """A class name in a bar's description (``label cone [old]``, ``x:car:``) lost its ``[old]``
    to rich markup and had ``:car:`` drawn as an emoji."""
    out = io.StringIO()
    monkeypatch.setattr(progress_module, "stderr_console", Console(file=out, width=100))
    bar = progress_module.make_progress("img")
    with bar:
        bar.add_task("label cone [old] x:car:", total=1)
    assert "label cone [old] x:car:" in out.getvalue()


def test_a_one_image_bar_shows_its_rate_not_dashes(monkeypatch):
    """rich makes a rate from two advances or more: a one-image bar (engine predict on one
    photo) ended ``1/1 -- img/s``; the image done over the time elapsed is its rate (one taking
    2.5 s: 2.50 s/img). A bar with nothing done still says ``--``."""
    out = io.StringIO()
    monkeypatch.setattr(progress_module, "stderr_console", Console(file=out, width=100))
    clock = [0.0]
    for total, steps in ((1, [2.5]), (1, [0.25]), (2, [])):
        bar = progress_module.make_progress("img")
        bar.get_time = lambda: clock[0]
        with bar:
            task = bar.add_task("predict", total=total)
            for step in steps:
                clock[0] += step
                bar.advance(task)
            clock[0] += 1.0
    lines = [" ".join(line.split()[-6:]) for line in out.getvalue().splitlines()]
    assert lines == [
        "1/1 2.50 s/img 0:00:02 ETA 0:00:00",
        "1/1 4.00 img/s 0:00:00 ETA 0:00:00",
        "0/2 -- img/s 0:00:01 ETA -:--:--",  # an empty bar is drawn blank without colour
    ]


def test_a_bar_that_starts_part_done_rates_only_what_it_did(monkeypatch):
    """A bar added with ``completed`` (training resumed at step 9000, a fuse of which every
    image was done before) made its one-advance rate from every item done, those before it
    too: ``9000.00 it/s`` before its second step, ``26000 img/s`` for a fuse with nothing
    left. Only the bar's own items count; ``--`` while it has done none."""
    out = io.StringIO()
    monkeypatch.setattr(progress_module, "stderr_console", Console(file=out, width=100))
    clock = [0.0]
    for total, start, steps in ((10000, 9000, [0.5]), (26, 26, []), (10000, 9000, [])):
        bar = progress_module.make_progress("it")
        bar.get_time = lambda: clock[0]
        with bar:
            task = bar.add_task("train", total=total, completed=start)
            for step in steps:
                clock[0] += step
                bar.advance(task)
            clock[0] += 1.0
    lines = [" ".join(line.split()[-5:-3]) for line in out.getvalue().splitlines()]
    assert lines == ["1.50 s/it", "-- it/s", "-- it/s"]
