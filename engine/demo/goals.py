"""What the demo is built to show, as ``summary.json``'s ``effect``: whether the joint-trained model
beats its pseudo labels and reaches a share of the fused labels' IoU, within the wall-time limit
(:func:`effect`, :func:`effect_lines`).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from engine.text import METRICS, SOURCES


def call_seconds(call: dict[str, Any]) -> float:
    """A recorded call's ``wall_seconds``; 0 where it is not a finite number (a null, a string,
    true: an edited ``summary.json`` or ``unfinished_calls.jsonl``), whose time is lost, not
    the summary: ``format_duration(None)`` failed the demo at its very end. A negative time
    is 0 too (shown "-1 min 55 s" before), and so is an integer too large for a float (it
    failed the summary with an OverflowError)."""
    value = _finite(call.get("wall_seconds"))
    return 0.0 if value is None else max(value, 0.0)


# What the demo is built to show (its issue's test): the joint-trained model beats its pseudo
# labels and reaches this share of the fused labels' IoU, in this many seconds at most
FUSED_SHARE, WALL_LIMIT = 0.85, 15 * 60
EFFECT_TITLE = "What the demo is built to show"


def _finite(score: Any) -> float | None:
    """A row's score as a number, or None where it is undefined: None ("n/a"), or a NaN or
    infinity a hand-edited ``summary.json`` holds (``json`` reads ``NaN``), or an integer too
    large for a float (``math.isfinite`` raised OverflowError on it)."""
    if not isinstance(score, int | float) or isinstance(score, bool):
        return None
    try:
        return float(score) if math.isfinite(score) else None
    except OverflowError:
        return None


def fused_share(iou: float, whole: float) -> tuple[float, bool]:
    """The model's IoU as a share of the fused labels' ``whole``, cut (not rounded) to 4 digits,
    and whether it reaches ``FUSED_SHARE``, worked out on the two scores as decimals (exact):
    67.50 of 79.44 (0.849698) is 0.8496, a "no"; 8.61 of 10.13 (0.849951) is 0.8499, a "no"
    (rounded, it was recorded 0.85 and answered "yes": 85% asked, not reached); 68 of 80 is
    0.85, a "yes". Cut, a share shown "85.00%" has reached 85% and one under it has not."""
    exact = Fraction(str(iou)) / Fraction(str(whole))
    return math.floor(exact * 10_000) / 10_000, exact >= Fraction(str(FUSED_SHARE))


def effect(classes: dict[str, list[dict]], calls: list[dict]) -> dict[str, Any]:
    """``summary.json``'s ``effect``: per new class, whether the joint-trained model beats its
    pseudo labels on each score and reaches ``FUSED_SHARE`` of the fused labels' IoU, and
    whether the demo (``calls``: every call into its folder) took under ``WALL_LIMIT`` seconds.
    Read from the rows as printed (rounded), so a reader of the table finds the same answers;
    the share is compared exactly (:func:`fused_share`) and recorded cut, not rounded, to 4
    digits, so the share shown and the answer agree; a score that is undefined (None, shown
    "n/a") answers None. A class whose table lacks one of the three rows (fused labels of
    the training split only hold none of the annotated images: the report leaves their row out)
    is not compared: ``not_compared`` names the rows it lacks (before the fifty-first round it
    was left out unsaid)."""
    checks: dict[str, Any] = {}
    missing: dict[str, list[str]] = {}  # a class not compared: the rows its table lacks
    for name, rows in classes.items():
        kind = {row.get("kind"): row for row in rows}
        pseudo, fused, model = (kind.get(k) for k in SOURCES)
        if pseudo is None or fused is None or model is None:
            missing[name] = [k for k in SOURCES if k not in kind]
            continue
        beats = {
            k: None if model.get(k) is None or pseudo.get(k) is None else model[k] > pseudo[k]
            for k, _, _ in METRICS
        }
        iou, whole = _finite(model.get("iou")), _finite(fused.get("iou"))
        share, reaches = fused_share(iou, whole) if iou is not None and whole else (None, None)
        checks[name] = {
            "beats_pseudo": beats,
            "iou_of_fused": share,
            "reaches_fused_share": reaches,
        }
    wall = sum(call_seconds(c) for c in calls if isinstance(c, dict))
    # only where a class was not compared: a whole demo's summary.json is as it was
    compared = {"not_compared": missing} if missing else {}
    return {
        "fused_share": FUSED_SHARE,
        "classes": checks,
        **compared,
        "wall_limit_seconds": WALL_LIMIT,
        "under_wall_limit": wall < WALL_LIMIT,
    }


def effect_lines(found: dict[str, Any]) -> list[str]:
    """:func:`effect` for ``summary.md``: one line per class and one for the time."""
    yes = {True: "yes", False: "no", None: "n/a"}
    lines = []
    for name, c in found["classes"].items():
        beats = ", ".join(f"{title} {yes[c['beats_pseudo'][k]]}" for k, title, _ in METRICS)
        share = "-" if c["iou_of_fused"] is None else f"{100 * c['iou_of_fused']:.2f}%"
        lines.append(
            f"- {name}: the model beats the pseudo labels on {beats}; its IoU is {share} of the "
            f"fused labels' ({100 * found['fused_share']:.0f}% asked): "
            f"{yes[c['reaches_fused_share']]}"
        )
    for name, rows in (found.get("not_compared") or {}).items():
        lines.append(f"- {name}: not compared (its table has no {' and no '.join(rows)} row)")
    lines.append(
        f"- under {found['wall_limit_seconds'] // 60} minutes: {yes[found['under_wall_limit']]}"
    )
    return lines
