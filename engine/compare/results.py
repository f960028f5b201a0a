"""What ``engine compare`` reports: each source's scores (:class:`SourceScores`), the
:class:`CompareReport` as JSON and Markdown, and its bar chart."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.compare.config import CompareConfig
from engine.evaluate import maps_digest
from engine.metrics import ClassScores
from engine.metrics.bootstrap import interval_line, measures_nothing
from engine.outputs import figure_text, matplotlib_for, save_figure, subplots
from engine.runinfo import config_hash, environment
from engine.text import METRICS, counted, format_score, md_cell, md_text, score_cells


@dataclass
class SourceScores:
    """One row of the comparison."""

    name: str  # display name of the source
    folder: str  # its folder
    scores: ClassScores  # the class's IoU / BIoU (x100) and BF1
    delta: dict[str, float | None] = field(default_factory=dict)  # vs the first source
    class_id: int | None = None  # the class's id in its full label maps (None: not in its taxonomy)
    # where its taxonomy came from (:func:`~engine.compare.classes.folder_classes`)
    taxonomy_source: str = ""
    # the delta's 95% paired-bootstrap interval (engine.metrics.bootstrap.interval_record);
    # None for the first source
    delta_interval: dict[str, Any] | None = None
    # equal to the ground truth on every image (engine.metrics.bootstrap.matches_truth): the
    # row measures nothing
    matches_truth: bool = False
    # its new classes counted as the class (children_outside): not in the ground truth's classes
    folded: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # the maps scored, in the stems' order

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "folder": self.folder,
            "class_id": self.class_id,
            "taxonomy_source": self.taxonomy_source,
            **self.scores.to_json(),
            "delta": self.delta,
            "delta_interval": self.delta_interval,
            "matches_truth": self.matches_truth,
            "folded": self.folded,
        }


@dataclass
class CompareReport:
    """The whole comparison."""

    class_name: str  # display name of the class
    class_id: int | None  # its id, where every folder's taxonomy agrees (else per source)
    rows: list[SourceScores]  # one per source, in the given order
    images: int  # annotated images
    gt: str = ""  # the ground-truth folder
    stems: list[str] = field(default_factory=list)  # the annotated images scored, in order

    def warnings(self, name: Callable[[str], str] = str) -> list[str]:
        """One line per source equal to the ground truth on every image; ``name`` writes a
        source's quoted name (Markdown: :func:`md_text`)."""
        return [
            f"{r.folder}: source {name(repr(r.name))} equals the ground truth {self.gt} "
            + measures_nothing(
                self.images,
                "its",
                "is it the ground truth itself, or were these annotations imported uncorrected "
                "from it?",
            )
            for r in self.rows
            if r.matches_truth
        ]

    def to_json(self, config: CompareConfig | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "class": self.class_name,
            "class_id": self.class_id,
            "images": self.images,
            "sources": [r.to_json() for r in self.rows],
            "warnings": self.warnings(),
        }
        if config is not None:
            cfg = asdict(config)
            cfg = {k: _jsonable(v) for k, v in cfg.items()}
            if cfg["split"] is None:  # no --split: the config (and hash) as before it
                del cfg["split"]
            data["config"] = cfg
            data["config_hash"] = config_hash(cfg)
            data["environment"] = environment(torch_used=False)
            # what each source's maps were: engine info of the record says if they changed
            data["stems"] = self.stems
            for row, scored in zip(data["sources"], self.rows, strict=True):
                row["maps_sha256"] = maps_digest(scored.files) if scored.files else None
        return data

    def to_markdown(self) -> str:
        """A Markdown table in the layout of the paper's Table 4, deltas in parentheses."""
        lines = [
            f"**{md_text(self.class_name)}** ({counted(self.images, 'annotated image')})",
            "",
            "| source | IoU | BIoU | BF1 |",
            "|---|---:|---:|---:|",
        ]
        for i, r in enumerate(self.rows):
            cells = score_cells(r.scores.to_json())
            if i > 0:
                deltas = score_cells(r.delta, sign=True)
                cells = [
                    f"{cell} ({d})" if r.delta.get(key) is not None else cell
                    for cell, d, (key, _, _) in zip(cells, deltas, METRICS, strict=True)
                ]
            lines.append(f"| {md_cell(r.name)} | " + " | ".join(cells) + " |")
        intervals = self.interval_lines(md_text)  # names as typed, as in the table
        if intervals:
            lines += ["", *intervals]
        for warning in self.warnings(md_text):  # names as typed, as in the table
            lines += ["", f"> **Warning**: {warning}"]
        return "\n".join(lines) + "\n"

    def interval_lines(self, name: Callable[[str], str] = str) -> list[str]:
        """How sure each source's delta against the first is, one line per source; ``name``
        writes a source's name (Markdown: :func:`md_text`)."""
        first = name(self.rows[0].name)
        return [
            interval_line(name(r.name), first, r.delta_interval)
            for r in self.rows[1:]
            if r.delta_interval
        ]


def _jsonable(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    return v


def write_plot(report: CompareReport, path: Path) -> Path:
    """A bar chart PNG: one panel per metric, one bar per source. Needs matplotlib."""
    mpl = matplotlib_for("--plot")
    fig, axes = subplots(1, 3, figsize=(10, 3.6))
    names = [figure_text(r.name) for r in report.rows]  # no boxes for glyphs no font has
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, label, digits) in zip(axes, METRICS, strict=True):
        values = [getattr(r.scores, key) for r in report.rows]
        shown = [0.0 if math.isnan(v) else v for v in values]
        bars = ax.bar(
            range(len(names)), shown, color=[colors[i % len(colors)] for i in range(len(names))]
        )
        for b, v in zip(bars, values, strict=True):
            ax.annotate(
                format_score(None if math.isnan(v) else v, digits),
                (b.get_x() + b.get_width() / 2, b.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_title(label + (" (x100)" if key != "bf1" else ""))
        ax.set_xticks(
            range(len(names)), names, rotation=20, ha="right", fontsize=8, parse_math=False
        )
        ax.set_ylim(0, (100 if key != "bf1" else 1) * 1.08)  # room for a perfect score's value
    title = f"{figure_text(report.class_name)}: {counted(report.images, 'annotated image')}"
    fig.suptitle(title, parse_math=False)  # names as typed: two '$' are no mathtext
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)
