"""Numbers as files and configs give them: a config's fields (finite, whole where an ``int`` is
wanted) and an annotation file's image sizes, checked by the standard library alone.

Here, in the lowest layer (README, "Layout"), because every layer reads them: the annotation
readers (COCO, Label Studio), the simulated labeler's and training's configs, the synthetic
scenes and the CLI's ``--size`` options. The package's ``__init__`` loads OpenCV, so the CLI
imports this module where it checks a size, not at ``engine --help``.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import typing
from collections.abc import Mapping
from typing import Any

MAX_IMAGE_SIDE = 1_000_000
"""libpng's largest image side (``PNG_USER_WIDTH_MAX``, ``..._HEIGHT_MAX``), beyond which OpenCV
writes no PNG (label maps, confidence maps): an image side above it is a typo. One bound for the
CLI's ``--size`` options, the configs' sizes and the annotation readers alike
(``9223372036854775808x64`` failed in numpy as "Maximum allowed dimension exceeded", naming
nothing)."""


def image_side(value: Any) -> int:
    """A width or height as an annotation file gives it (COCO's ``width``, Label Studio's
    ``original_width``): a number, or text of one, that is a whole number of pixels from 0 to
    :data:`MAX_IMAGE_SIDE`. Otherwise ValueError ``"<value>, <why>"`` for the reader to prefix
    with the file and the field: ``int()`` read 64.7 as 64 silently, ``"64.0"`` and infinity
    as a damaged entry, and ``1e300`` as a 300-digit size."""
    number = value
    if isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise ValueError(f"{value!r:.40}, not a number")
    if isinstance(number, float) and (not math.isfinite(number) or not number.is_integer()):
        raise ValueError(f"{value!r:.40}, not a whole number of pixels")
    if number < 0:
        raise ValueError(f"{value!r:.40}, a negative size")
    if number > MAX_IMAGE_SIDE:
        text = repr(value)
        shown = text if len(text) <= 24 else f"{text[:12]}... ({len(text)} characters)"
        raise ValueError(f"{shown}, beyond the largest image side ({MAX_IMAGE_SIDE:,} pixels)")
    return int(number)


def image_hw(entry: Mapping[str, Any], width: str, height: str, where: str) -> tuple[int, int]:
    """``(height, width)`` of an annotation file's image entry (COCO's ``width``/``height``,
    Label Studio's ``original_width``/``original_height``), each read by :func:`image_side`;
    a ValueError says ``"<where><key> <value>, <why>"``."""
    sides = {}
    for key in (width, height):
        try:
            sides[key] = image_side(entry[key])
        except ValueError as e:
            raise ValueError(f"{where}{key} {e}") from None
    return sides[height], sides[width]


def check_numbers(config: Any, where: str = "") -> None:
    """Refuse, in one line naming the field, a float value of a dataclass ``config`` that is
    no finite number (whatever the field's type), and one given to an ``int`` field that is no
    whole number (as a file's or the command line's is): ``log_every=2.5`` or ``nan`` from a
    Python caller was taken, and ``log_every % 2.5`` never 0 logged nothing."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if not isinstance(v, float):
            continue
        if not math.isfinite(v):
            raise ValueError(f"{where}{f.name} must be a finite number, got {v}")
        kinds = (hints.get(f.name), *typing.get_args(hints.get(f.name)))
        if int in kinds and float not in kinds and not v.is_integer():
            raise ValueError(f"{where}{f.name} must be a whole number, got {v}")


def is_whole(v: Any) -> bool:
    """Whether ``v`` is a whole number: an integer (numpy's too; not a bool), or a finite float
    without a fraction (a file's ``4096.0``)."""
    if isinstance(v, float):
        return math.isfinite(v) and v.is_integer()
    try:
        operator.index(v)
    except TypeError:
        return False
    return not isinstance(v, bool)


def class_ids(values: Any, name: str) -> list[int]:
    """A config's list of class ids (``augment.focus_classes``, ``loss.decoupling.
    pseudo_classes``) as integers; ValueError naming the field ``name`` where it is no list of
    whole numbers >= 0. A file's are checked as it is read; a Python caller's ``[1.5, nan]`` was
    taken (1.5 centred no crop, nan was no class; a negative id weighted none) before the
    fifty-first round's mend."""
    ok = isinstance(values, (list, tuple)) and all(is_whole(v) and v >= 0 for v in values)
    if not ok:
        shown = list(values) if isinstance(values, tuple) else values
        raise ValueError(
            f"{name} must be a list of class ids (whole numbers >= 0), got {shown!r:.80}"
        )
    return [int(v) for v in values]
