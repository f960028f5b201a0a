"""What every command module shares: the consoles, exit codes and small option parsers."""

from __future__ import annotations

import typer
from rich.console import Console

stdout = Console()  # results
stderr = Console(stderr=True)  # notes, progress, errors

EXIT_SOME_FAILED = 1  # the command ran, but some items failed (their reasons are reported)
EXIT_BAD_INPUT = 2  # bad input or wrong call order: one line on stderr, nothing done
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it (128 + SIGINT)
INTERRUPTED = "interrupted"  # what stderr says then; a resumable command adds how to resume


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """``"WxH"`` -> ``(W, H)``; a clear error otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(
            f"{option} must look like 512x384 (width x height), got {text!r}"
        ) from None
    if w <= 0 or h <= 0:
        raise typer.BadParameter(f"{option} must be positive, got {text!r}")
    return w, h


def parse_scales(text: str, option: str = "--scales") -> tuple[float, ...]:
    """``"0.75,1,1.25"`` -> ``(0.75, 1.0, 1.25)``; a clear error otherwise."""
    try:
        scales = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{option} must be comma-separated numbers like 0.75,1,1.25, got {text!r}"
        ) from None
    if not scales or any(not 0 < s < float("inf") for s in scales):
        raise typer.BadParameter(f"{option} must be positive numbers, got {text!r}")
    return scales


def split_names(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeatable and/or comma-separated option values -> a tuple, None when not given."""
    if not values:
        return None
    return tuple(v.strip() for text in values for v in text.split(",") if v.strip())
