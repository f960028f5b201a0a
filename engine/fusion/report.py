"""The fusion report as a rich table (the CLI prints it; fuse.json holds the same numbers).

One column per new class and one row per figure, so the table stays narrow at 4K pixel counts;
more classes than fit an 80-column terminal are shown three to a table, one table under another.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from engine.fusion.rules import ClassStats
from engine.fusion.run import FuseResult
from engine.text import counted


def _rows(s: ClassStats, corrections: bool = False) -> dict[str, str]:
    share = "-" if s.rejected_share is None else f"{s.rejected_pixels:,} ({s.rejected_share:.1%})"
    checked = {  # with --corrections only: the table is as it was without
        "corrected images (annotated subset)": f"{s.corrected_images} of {s.images}",
        "corrected pixels claimed (of corrected 1s and 0s)": (
            f"{s.corrected_claimed:,} of {s.corrected_pixels:,}"
        ),
        "corrected 1s kept precise (parent constraint)": f"{s.corrected_rejected:,}",
    }
    return {
        "pseudo pixels": f"{s.pseudo_pixels:,}",
        "claimed pixels": f"{s.claimed_pixels:,}",
        "rejected by parent constraint (share of pseudo)": share,
        "uncertain on parent -> ignore": f"{s.uncertain_ignored:,}",
        "lost in overlaps (other class or tie)": f"{s.overlap_lost:,}",
        "instances dropped by coverage": (
            f"{s.instances_dropped} of {s.instances}" if s.instances else "- (coverage off)"
        ),
        "images with no pseudo pixel": f"{s.images_without_pseudo} of {s.images}",
        "images with none claimed": f"{s.images_with_none} of {s.images}",
        **(checked if corrections else {}),
    }


# Class columns per table: three fit 80 columns beside the figures' names at 4K pixel counts
# (nine in one table cut every name and share to a few letters: "reject…", "(51.3…").
CLASSES_PER_TABLE = 3


def report_table(result: FuseResult) -> Table | Group:
    """The per-class report of a fusion run as a rich table (the CLI prints it); with more than
    :data:`CLASSES_PER_TABLE` new classes, a group of such tables, that many classes each."""
    title = f"fusion report: {counted(result.images, 'image')} ({', '.join(result.splits)})"
    items = list(result.report.items())
    n = CLASSES_PER_TABLE
    if len(items) <= n:
        return _table(result, items, title)
    return Group(
        *[
            _table(
                result,
                items[i : i + n],
                f"{title}, new classes {i + 1}-{min(i + n, len(items))} of {len(items)}",
            )  # fmt: skip
            for i in range(0, len(items), n)
        ]
    )


def _table(result: FuseResult, items: list[tuple[str, ClassStats]], title: str) -> Table:
    table = Table(title=title)
    table.add_column("", justify="left")
    tax = result.taxonomy
    columns = []
    for name, stats in items:
        info = tax.get(name)
        parent = tax[info.parent].name if info.parent is not None else "-"
        # fold: a CJK name (no space to wrap at) was cut to "电动自行车和摩托车以及其他…"
        table.add_column(
            f"{info.name} ({info.id})\nparent {parent}", justify="right", overflow="fold"
        )
        columns.append(_rows(stats, result.corrected))
    for key in _rows(ClassStats(), result.corrected):
        table.add_row(key, *[c[key] for c in columns])
    return table
