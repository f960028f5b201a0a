"""Table 4 on the terminal: the one rich table that ``engine report``, ``engine compare`` and
``engine info REPORT`` print."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.metrics.bootstrap import excludes_zero
from engine.text import METRICS, score_cells


class Table4:
    """Table 4 (source, IoU, BIoU, BF1 and the deltas against one of the rows) as a rich
    renderable, for every command that prints one: boxed like the engine's other tables where it
    fits the terminal, else without borders, so that at 80 columns no row folds.

    ``rows`` are mappings with ``source``, the scores, ``delta`` and optionally
    ``delta_interval`` (as ``report.json`` and ``engine compare --json`` hold them); the row at
    index ``against`` is what the deltas are taken against, its delta cells left blank.
    ``marks`` puts ``*`` on a delta whose 95% interval over the images excludes 0."""

    COLUMNS = ("source", "IoU", "BIoU", "BF1", "ΔIoU", "ΔBIoU", "ΔBF1")

    def __init__(
        self,
        title: str,
        rows: Iterable[Mapping[str, Any]],
        against: int | None = 0,
        marks: bool = False,
    ):
        self.title = title
        self.rows = []
        for i, row in enumerate(rows):
            deltas = score_cells(row.get("delta") or {}, sign=True)
            if i == against:
                deltas = ["", "", ""]
            elif marks:
                interval = row.get("delta_interval") or {}
                sure = [excludes_zero(interval.get(key)) for key, _, _ in METRICS]
                deltas = [d + "*" if s else d for d, s in zip(deltas, sure, strict=True)]
            self.rows.append([str(row.get("source")), *score_cells(row), *deltas])

    @classmethod
    def of_report(cls, data: Mapping[str, Any], marks: bool = False) -> Table4:
        """The table of an ``engine report`` (its ``report.json`` dict): deltas against the
        pseudo labels' row (none without one)."""
        rows = list(data["table4"])
        kinds = [row.get("kind") for row in rows]
        against = kinds.index("pseudo labels") if "pseudo labels" in kinds else None
        return cls(str(data.get("title", "")), rows, against, marks)

    def table(self, boxed: bool = True) -> Any:
        from rich import box
        from rich.table import Table

        kw = {} if boxed else dict(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0, 0, 1))
        table = Table(title=self.title, **kw)
        for name in self.COLUMNS:
            left = name == "source"  # only a source folds, where even the borderless is too wide
            table.add_column(
                name,
                justify="left" if left else "right",
                no_wrap=not left,
                overflow="fold" if left else "ellipsis",  # a word of it too: never cut with "…"
            )
        for cells in self.rows:
            table.add_row(*cells)
        return table

    def __rich_console__(self, console: Any, options: Any) -> Iterable[Any]:
        from rich.measure import Measurement

        table = self.table()
        unbounded = options.update_width(10_000)  # a measurement is clamped to the width asked
        if Measurement.get(console, unbounded, table).maximum > options.max_width:
            table = self.table(boxed=False)
        yield table


def class_scores_table(title: str, scores: Mapping[str, Any]) -> Any:
    """Per-class IoU, BIoU and BF1 with their means as a rich table, from what ``engine evaluate
    --json`` writes (``classes`` and ``mIoU``/``mBIoU``/``mBF1``): the one table ``engine
    evaluate`` prints and ``engine info`` prints of its file (before, each built its own, and
    an undefined score was ``-`` in one and ``n/a`` in the other)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("id", justify="right")
    table.add_column("class", overflow="fold")  # a CJK name has no space to wrap at: never "…"
    for _, name, _ in METRICS:
        table.add_column(name, justify="right")
    for c in scores.get("classes") or ():
        if isinstance(c, Mapping):
            table.add_row(str(c.get("id")), str(c.get("name")), *score_cells(c))
    table.add_section()
    means = {"iou": scores.get("mIoU"), "biou": scores.get("mBIoU"), "bf1": scores.get("mBF1")}
    table.add_row("", "mean", *score_cells(means), style="bold")
    return table
