"""The fusion report as a rich table (the CLI prints it; fuse.json holds the same numbers)."""

from __future__ import annotations

from rich.table import Table

from engine.fusion.run import FuseResult


def report_table(result: FuseResult) -> Table:
    """The per-class report as a rich table (the CLI prints it)."""
    table = Table(title=f"fusion report: {result.images} images ({', '.join(result.splits)})")
    for name, justify in [
        ("class", "left"),
        ("id", "right"),
        ("parent", "left"),
        ("pseudo px", "right"),
        ("claimed px", "right"),
        ("rejected by parent", "right"),
        ("uncertain -> ignore", "right"),
        ("lost in overlaps", "right"),
        ("instances dropped", "right"),
        ("images with none", "right"),
    ]:
        table.add_column(name, justify=justify)
    tax = result.taxonomy
    for name, s in result.report.items():
        info = tax.get(name)
        share = (
            "-" if s.rejected_share is None else f"{s.rejected_pixels:,} ({s.rejected_share:.1%})"
        )
        dropped = f"{s.instances_dropped} / {s.instances}" if s.instances else "-"
        table.add_row(
            info.name,
            str(info.id),
            tax[info.parent].name if info.parent is not None else "-",
            f"{s.pseudo_pixels:,}",
            f"{s.claimed_pixels:,}",
            share,
            f"{s.uncertain_ignored:,}",
            f"{s.overlap_lost:,}",
            dropped,
            f"{s.images_with_none} / {s.images}",
        )
    return table
