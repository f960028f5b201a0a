"""Wording shared by messages: counts whose noun agrees with the number, scores as tables print them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

# The report's sources and metrics (engine.report), here so that light modules (the CLI, the
# demo) print and name them without importing the report's scoring stack.
SOURCES = ("pseudo labels", "fused labels", "joint-trained model")
METRICS = (("iou", "IoU", 2), ("biou", "BIoU", 2), ("bf1", "BF1", 4))  # key, title, decimals


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``counted(1, "image")`` is ``"1 image"``, ``counted(3, "image")`` ``"3 images"``,
    ``counted(21000, "shape")`` ``"21,000 shapes"`` (thousands separated, as tables print
    counts: ``engine info`` showed ``car │ 21000 shapes`` above ``polygon 21,000``); ``plural``
    for nouns that do not take an ``s``."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def joined(names: Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def few(names: list[str] | list[PurePath], n: int = 3, total: bool = False) -> str:
    """The first ``n`` of ``names`` (a path by its file name), ``...`` for the rest; with
    ``total``, ``... (N in all)``."""
    shown = [p.name if isinstance(p, PurePath) else p for p in names[:n]]
    more = ", ..." + (f" ({len(names)} in all)" if total else "")
    return ", ".join(shown) + (more if len(names) > n else "")


def format_score(v: float | None, nd: int, sign: bool = False) -> str:
    """A score (or with ``sign`` a difference) as tables print it: ``nd`` digits, "n/a" for None
    (an undefined score, written as null)."""
    if v is None:
        return "n/a"
    return f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"


def score_cells(scores: Mapping[str, Any], sign: bool = False) -> list[str]:
    """IoU, BIoU and BF1 of a Table-4 row (or with ``sign`` its deltas) as tables print them."""
    return [format_score(scores.get(key), nd, sign) for key, _, nd in METRICS]


def md_cell(text: str) -> str:
    """``text`` as a Markdown table cell: a ``|`` (in a class or source name, ``a|b``) is
    escaped, which otherwise starts another column and shifts the row's scores."""
    return str(text).replace("|", "\\|")


def split_names(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeatable and/or comma-separated option values -> a tuple, None when not given."""
    if not values:
        return None
    return tuple(v.strip() for text in values for v in text.split(",") if v.strip())
