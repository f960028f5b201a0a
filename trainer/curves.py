"""``curves.png``: a training run's loss, learning rate and validation scores, drawn from its
``metrics.jsonl`` (the log is the only input, so a finished, running or resumed run can be
redrawn at any time: :func:`plot_curves`).

Panels: the total loss per logged step with a running mean over the last tenth of the points
(single logged losses are noisy), the learning rate, and each validation's mIoU / mBIoU (x100)
and mBF1 (x100, so that the three share an axis), with one dashed line per annotated subset's
new class (``engine train --val-subset``); the three panels span the same steps (the logged
losses' and the validations'), in whole steps. Needs matplotlib (``pip install 'mass-engine[plot]'``);
training writes the figure only where it is installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from annotations.fileio import read_jsonl
from engine.outputs import matplotlib_for, save_figure, subplots

CURVES = "curves.png"


def read_metrics(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train, val)`` records of a ``metrics.jsonl``: the logged steps (with ``loss``), and
    the validations as ``{"step", **val}``. A validation logged twice for one step (a resumed
    run that had nothing left to train validates again) counts once, the last; a last line cut
    by a crash is skipped (``annotations.fileio.read_jsonl``)."""
    train: dict[int, dict[str, Any]] = {}
    val: dict[int, dict[str, Any]] = {}
    for record in read_jsonl(path):
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            continue
        if isinstance(record.get("val"), dict):
            val[record["step"]] = {"step": record["step"], **record["val"]}
        elif isinstance(record.get("loss"), int | float):
            train[record["step"]] = record
    return [train[s] for s in sorted(train)], [val[s] for s in sorted(val)]


def running_mean(values: list[float], window: int) -> list[float]:
    """The mean of each value and the ``window - 1`` before it (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_curves(metrics: str | os.PathLike, out: str | os.PathLike) -> Path | None:
    """Draw ``out`` (PNG) from ``metrics``; None when the log has no training step yet.
    ``RuntimeError`` without matplotlib."""
    matplotlib_for("curves.png")
    from matplotlib.ticker import MaxNLocator

    train, val = read_metrics(metrics)
    if not train:
        return None
    steps = [r["step"] for r in train]
    loss = [float(r["loss"]) for r in train]
    # a run of one logged step is a point: a line of one point draws nothing (before, the loss
    # and learning-rate panels of a 1-step run were empty)
    dot = "o" if len(steps) == 1 else None
    fig, axes = subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    ax.plot(steps, loss, color="0.75", linewidth=0.8, label="logged")
    mean = running_mean(loss, max(1, len(loss) // 10))
    ax.plot(steps, mean, color="C0", marker=dot, label="running mean")
    ax.set_title("training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("total loss")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(steps, [float(r.get("lr", float("nan"))) for r in train], color="C1", marker=dot)
    ax.set_title("learning rate")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax = axes[2]
    if val:
        vsteps = [v["step"] for v in val]
        for key, scale, color in (("mIoU", 1, "C0"), ("mBIoU", 1, "C2"), ("mBF1", 100, "C3")):
            ys = [v.get(key) for v in val]
            if any(y is not None for y in ys):
                shown = [float("nan") if y is None else y * scale for y in ys]
                ax.plot(vsteps, shown, marker="o", color=color, label=key)
        subsets = sorted({s["class"] for v in val for s in v.get("subsets") or []})
        for i, name in enumerate(subsets):
            points = [
                (v["step"], s["iou"])
                for v in val
                for s in v.get("subsets") or []
                if s["class"] == name and s.get("iou") is not None
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, "--s", color=f"C{4 + i}", label=f"{name} IoU (annotated)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:  # none yet, or validations that scored nothing: said, not an empty legend's warning
        said = "no validation scores" if val else "no validation yet"
        ax.text(0.5, 0.5, said, ha="center", va="center", transform=ax.transAxes)
    ax.set_title("validation (mBF1 x100)")
    ax.set_xlabel("step")
    ax.set_ylabel("score (x100)")
    # every panel spans the same steps: the training's, and validations before its first logged
    # step (--val-every below the logging interval; before, they were cut off the panel)
    lo, hi = axes[0].get_xlim()
    if axes[2].lines:  # only what was drawn: an empty panel's limits are matplotlib's (0, 1)
        lo, hi = min(lo, axes[2].get_xlim()[0]), max(hi, axes[2].get_xlim()[1])
    if hi - lo < 2:  # one step: a step either side, so that the ticks are whole steps
        lo, hi = (lo + hi) / 2 - 1, (lo + hi) / 2 + 1
    for ax in axes:
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
    fig.tight_layout()
    return save_figure(fig, out, dpi=100)
