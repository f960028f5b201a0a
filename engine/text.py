"""Wording shared by messages: counts whose noun agrees with the number, scores as tables print them."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``counted(1, "image")`` is ``"1 image"``, ``counted(3, "image")`` ``"3 images"``;
    ``plural`` for nouns that do not take an ``s``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def format_score(v: float | None, nd: int, sign: bool = False) -> str:
    """A score (or with ``sign`` a difference) as tables print it: ``nd`` digits, "n/a" for None
    (an undefined score, written as null)."""
    if v is None:
        return "n/a"
    return f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"
