"""The report's settings (:class:`ReportConfig`), what it returns (:class:`ReportResult`), and how
it rounds a score (:func:`round_score`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ReportConfig:
    subset: str  # annotated subset directory (masks/ + subset.json): the ground truth
    out: str  # report folder
    pseudo: str | None = None  # label run directory (labels/<split>/<stem>.png)
    fused: str | None = None  # fused labels: DIR/[labels/]<split>/<stem>.png (+ taxonomy.json)
    pred: str | None = None  # model predictions: DIR/[<split>/]<stem>.png label maps
    data: str | None = None  # dataset root: images for overlays, labels for the per-class table
    taxonomy: str | None = (
        None  # taxonomy.json of fused/pred ids; None: found near them or MaSS13K + class
    )
    class_name: str | None = None  # the new class, checked against the subset's; None: the subset's
    title: str = ""  # report title; "" -> "<class>: pseudo labels vs joint training"
    overlays: int = 4  # overlay images to write
    chart: bool = True  # draw chart.png (needs matplotlib)
    progress: bool = True  # progress bars on stderr


@dataclass
class ReportResult:
    markdown: Path
    json: Path
    chart: Path | None
    overlays: list[Path]
    data: dict  # the report.json content


def round_score(x: float | None, nd: int) -> float | None:
    """A score as reports write it: rounded to ``nd`` digits; None where undefined (NaN)."""
    if x is None or math.isnan(x := float(x)):
        return None
    return round(x, nd)
