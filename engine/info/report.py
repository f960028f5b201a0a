"""What ``engine info REPORT`` says of an ``engine report`` folder: the Table 4 of its
``report.json``, or a report not finished.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.info.unfinished import _unfinished_drawn
from engine.runlock import writer
from engine.text import counted


def render_report(root: str | os.PathLike) -> list:
    """Rich renderables for ``engine info REPORT``: the Table 4 of an ``engine report`` folder
    (its ``report.json``): each source's scores, its deltas against the pseudo labels with
    their 95% intervals (``*``: the interval excludes 0), the warnings, and the files."""
    from annotations.fileio import read_json
    from engine.table4 import Table4

    root = Path(root)
    data = read_json(root / "report.json", "report")
    if not isinstance(data, dict) or not isinstance(data.get("table4"), list):
        raise ValueError(f"{root / 'report.json'}: not an engine report (no 'table4' list)")
    table = Table4.of_report({"title": str(root), **data}, marks=True)
    out: list = [
        f"{data.get('class_name')}: annotated subset {data.get('subset')} "
        f"({counted(int(data.get('subset_images') or 0), 'image')}, split {data.get('split')})",
        table,
        "Δ: against the pseudo labels; *: its 95% interval over the images excludes 0",
    ]
    refinements = (data.get("prediction") or {}).get("refinements")
    if refinements:
        out.append(f"predictions refined at inference: {', '.join(refinements)}")
    out += [f"warning: {w}" for w in data.get("warnings") or []]
    out.append(f"report: {root / 'report.md'}")
    if holder := writer(root):  # engine report into it again: its files are replaced at the end
        out.append(f"now: {holder} is writing it again (this is the earlier report)")
    return out


def _unfinished_report(folder: Path) -> tuple[str, int] | None:
    """What ``engine info`` says of a report's folder without its ``report.json`` (written
    after ``chart.png``, the overlays and ``report.md``): those and nothing else but hidden
    files (:func:`_unfinished_drawn`). Before, "no image split folders found" (exit 2), as of a
    wrong folder."""
    return _unfinished_drawn(
        folder, "engine report", ("chart.png", "overlays", "report.md"), "overlay", "writing",
        "this report", "a report not finished: {who} stopped before writing report.json "
        "({drawn} drawn)",
    )  # fmt: skip
