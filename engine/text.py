"""Wording shared by messages: counts whose noun agrees with the number, scores as tables print them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# The report's sources and metrics (engine.report), here so that light modules (the CLI, the
# demo) print and name them without importing the report's scoring stack.
SOURCES = ("pseudo labels", "fused labels", "joint-trained model")
METRICS = (("iou", "IoU", 2), ("biou", "BIoU", 2), ("bf1", "BF1", 4))  # key, title, decimals


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``counted(1, "image")`` is ``"1 image"``, ``counted(3, "image")`` ``"3 images"``;
    ``plural`` for nouns that do not take an ``s``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def joined(names: Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def format_score(v: float | None, nd: int, sign: bool = False) -> str:
    """A score (or with ``sign`` a difference) as tables print it: ``nd`` digits, "n/a" for None
    (an undefined score, written as null)."""
    if v is None:
        return "n/a"
    return f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"


def score_cells(scores: Mapping[str, Any], sign: bool = False) -> list[str]:
    """IoU, BIoU and BF1 of a Table-4 row (or with ``sign`` its deltas) as tables print them."""
    return [format_score(scores.get(key), nd, sign) for key, _, nd in METRICS]


class Table4:
    """Table 4 (source, IoU, BIoU, BF1 and the deltas against the pseudo labels) as a rich
    renderable: boxed like the engine's other tables where it fits the terminal, else without
    borders, so that at 80 columns no row folds. ``marks`` puts ``*`` on a delta whose 95%
    interval over the images excludes 0."""

    COLUMNS = ("source", "IoU", "BIoU", "BF1", "ΔIoU", "ΔBIoU", "ΔBF1")

    def __init__(self, title: str, rows: Iterable[Mapping[str, Any]], marks: bool = False):
        from engine.metrics.bootstrap import excludes_zero

        self.title = title
        self.rows = []
        for row in rows:
            deltas = score_cells(row.get("delta") or {}, sign=True)
            if marks:
                interval = row.get("delta_interval") or {}
                sure = [excludes_zero(interval.get(key)) for key, _, _ in METRICS]
                deltas = [d + "*" if s else d for d, s in zip(deltas, sure, strict=True)]
            self.rows.append([str(row.get("source")), *score_cells(row), *deltas])

    def table(self, boxed: bool = True) -> Any:
        from rich import box
        from rich.table import Table

        kw = {} if boxed else dict(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0, 0, 1))
        table = Table(title=self.title, **kw)
        for name in self.COLUMNS:
            left = name == "source"  # only a source folds, where even the borderless is too wide
            table.add_column(name, justify="left" if left else "right", no_wrap=not left)
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
