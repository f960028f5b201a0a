"""Wording shared by messages: counts whose noun agrees with the number."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``counted(1, "image")`` is ``"1 image"``, ``counted(3, "image")`` ``"3 images"``;
    ``plural`` for nouns that do not take an ``s``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
