"""``report.md`` from the ``report.json`` dict (:func:`render_markdown`), and the lines that say how
sure each delta is (:func:`interval_lines`).
"""

from __future__ import annotations

from pathlib import Path

from engine.metrics.bootstrap import (
    interval_line,
)
from engine.table4 import Table4
from engine.text import (
    counted,
    md_cell,
    md_code,
    md_link,
    md_text,
    score_cells,
)


def interval_lines(rows: list[dict]) -> list[str]:
    """One line per source with a delta interval: how sure each delta against the pseudo labels
    is, and whether it is sure of its sign (the interval excludes 0)."""
    return [
        interval_line(f"the {row['kind']}", "the pseudo labels", row["delta_interval"])
        for row in rows
        if row.get("delta_interval")
    ]


def render_markdown(data: dict) -> str:
    """``report.md`` from the ``report.json`` dict (so both hold the same numbers)."""
    lines = [f"# {md_text(data['title'])}", ""]
    if data.get("backend") == "simulated":
        lines += [
            "> **Simulated pseudo labels**: the labeler was the `simulated` backend (true masks with "
            "simulated Grounded-SAM errors), not a detector. These numbers demonstrate the engine; "
            "they are not Grounded-SAM results.",
            "",
        ]
    refinements = (data.get("prediction") or {}).get("refinements")
    if refinements:
        lines += [
            f"> **Model predictions refined at inference**: {', '.join(refinements)}; not the "
            "release's whole-image, single-scale inference.",
            "",
        ]
    lines += [
        f"New class **{md_text(data['class_name'])}**, annotated subset {md_code(data['subset'])} "
        f"({counted(data['subset_images'], 'image')}, split `{data['split']}`). IoU and BIoU in %, BF1 as a "
        "fraction; binary scores of the class against everything else; deltas vs pseudo labels.",
        "",
        "| source | IoU | BIoU | BF1 | ΔIoU | ΔBIoU | ΔBF1 | images |",
        "|---|---|---|---|---|---|---|---|",
    ]
    # the terminal's cells (deltas blank on the row they are against), with the image counts
    for row, cells in zip(data["table4"], Table4.of_report(data).rows, strict=True):
        lines.append(f"| {' | '.join(cells)} | {row['images']} |")
    intervals = interval_lines(data["table4"])
    if intervals:
        lines += ["", *intervals]
    for warning in data.get("warnings") or []:
        lines += ["", f"> **Warning**: {warning}"]
    pc = data.get("per_class")
    if pc:
        lines += [
            "",
            f"## Joint-trained model, per class ({pc['split']} split, {counted(pc['images'], 'image')})",
            "",
            "| class | IoU | BIoU | BF1 |",
            "|---|---|---|---|",
        ]
        for c in pc["classes"]:
            lines.append(f"| {md_cell(c['name'])} | {' | '.join(score_cells(c))} |")
        lines.append(f"| **mean** | {' | '.join(score_cells(pc['mean']))} |")
        if pc.get("as_parent"):
            folded = ", ".join(f"{n} counts as {p}" for n, p in pc["as_parent"].items())
            lines += ["", f"Without truth here, {folded}, as in the 7-class labels."]
    if data["files"].get("chart"):
        lines += ["", f"![scores]({md_link(data['files']['chart'])})"]
    if data["files"].get("overlays"):
        lines += [
            "",
            "## Examples",
            "",
            "Left to right: "
            + ", ".join(data["overlay_panels"])
            + "."
            + (
                " Below, the same panels of the white box, enlarged: where the annotation's"
                " outlines are densest."
                if data.get("overlay_details")
                else ""
            ),
            "",
        ]
        lines += [f"![{md_text(Path(p).stem)}]({md_link(p)})" for p in data["files"]["overlays"]]
    return "\n".join(lines) + "\n"
