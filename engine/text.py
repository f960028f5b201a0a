"""Wording shared by messages: counts whose noun agrees with the number, scores as tables print them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

MAX_TTA_SCALE = 4.0
"""The largest test-time scale: twice the literature's 2.0 (mmseg's aug test uses 0.5-1.75), a
4096x3072 test size run at 16384x12288. Above it a scale is a typo (``1e3`` failed in OpenCV's
allocator, ``1e308`` overflowed ``int()``)."""

# The report's sources and metrics (engine.report), here so that light modules (the CLI, the
# demo) print and name them without importing the report's scoring stack.
SOURCES = ("pseudo labels", "fused labels", "joint-trained model")
METRICS = (("iou", "IoU", 2), ("biou", "BIoU", 2), ("bf1", "BF1", 4))  # key, title, decimals
# a file name with a newline (legal on Linux) in a one-name-per-line list is two lines: refused
# by annotate pick and export, a problem for engine info
LINE_BREAK = (
    "a line break in the file name, which a one-name-per-line list (annotate pick's list, an "
    "export's images.txt) cannot hold; rename the image (and its label map)"
)

# the same in a folder of an image's path: an export's images.txt holds each image's full path
LINE_BREAK_FOLDER = (
    "a line break in the folder's name, which an export's images.txt (one path a line) cannot "
    "hold; rename the folder"
)

# the same in the file name an image's link leads to: images.txt writes the resolved path
LINE_BREAK_TARGET = (
    "a line break in the name of the file it links to, which an export's images.txt (one path "
    "a line) cannot hold; rename the file it links to"
)


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


# how many lines of a long list (failed images, cards not drawn) a command prints before
# "... and N more (see FILE)": a terminal's screen, where 2,000 failures were 2,000 lines
LINES_SHOWN = 20


def first_lines(
    lines: Sequence[str], where: str | os.PathLike, shown: int | None = None
) -> list[str]:
    """The first ``shown`` of ``lines`` (default :data:`LINES_SHOWN`), then ``... and N more (see
    WHERE)`` where there are more: ``where`` is the file that lists every one."""
    shown = LINES_SHOWN if shown is None else shown
    more = len(lines) - shown
    return list(lines[:shown]) + ([f"... and {more:,} more (see {where})"] if more > 0 else [])


def format_score(v: float | None, nd: int, sign: bool = False) -> str:
    """A score (or with ``sign`` a difference) as tables print it: ``nd`` digits, "n/a" for None
    (an undefined score, written as null)."""
    if v is None:
        return "n/a"
    return f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"


def score_cells(scores: Mapping[str, Any], sign: bool = False) -> list[str]:
    """IoU, BIoU and BF1 of a Table-4 row (or with ``sign`` its deltas) as tables print them."""
    return [format_score(scores.get(key), nd, sign) for key, _, nd in METRICS]


# Markdown's signs in running text: inline code, emphasis, links, raw HTML and entities, a
# table's columns, GitHub's strikethrough ("~x~", "~~x~~"). "_" only at a word's edge: inside a
# word (synth_test_0001) it is no emphasis, and names written as before keep their bytes.
_MD_SIGNS = re.compile(r"[\\`*\[\]<>&|~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def md_text(text: str) -> str:
    """``text`` (a class, source, subset or image name) as Markdown that renders as typed: its
    signs backslash-escaped (before, ``Bi<b>x`` rendered ``Bix`` and ``*x*`` in italics), a line
    break a space (it would end a table row)."""
    return _MD_SIGNS.sub(lambda m: "\\" + m.group(0), " ".join(str(text).splitlines()))


def md_cell(text: str) -> str:
    """``text`` as a Markdown table cell: :func:`md_text`, whose escaped ``|`` (in a class or
    source name, ``a|b``) otherwise starts another column and shifts the row's scores."""
    return md_text(text)


def md_code(text: str) -> str:
    """``text`` (a path) as inline code: fenced by more backticks than it holds in a row, and
    padded with a space where Markdown strips one from each end (a backtick there, or a space
    at both ends: `` ` a ` `` rendered ``a``)."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    spaced = text.startswith(" ") and text.endswith(" ") and text.strip(" ") != ""
    pad = " " if "`" in text or spaced else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_link(path: str) -> str:
    """A relative file path as a Markdown link's destination: percent-encoded, so that a space,
    ``#``, ``?``, ``%`` or ``)`` in a file name does not end or change it. A name that is not
    UTF-8 (``caf\\xe9.jpg``) as its own bytes, ``caf%E9.jpg`` (as ``engine review``'s links):
    it raised UnicodeEncodeError, and ``engine report`` wrote no ``report.md``."""
    return quote(str(path).replace("\\", "/"), errors="surrogateescape")


def split_names(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeatable and/or comma-separated option values -> a tuple, None when not given."""
    if not values:
        return None
    return tuple(v.strip() for text in values for v in text.split(",") if v.strip())
