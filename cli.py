"""The ``engine`` command line: parse options, build a config, call one library function.

Heavy libraries (torch, transformers, OpenCV) are imported inside the commands that need them,
so ``engine --help`` answers at once. Bad input raises ``ValueError`` / ``FileNotFoundError``
(or ``RuntimeError`` for wrong call order) in the library; :func:`_guard` turns those into one
line on stderr and exit code 2 instead of a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="engine",
    help="MaSS data engine: pseudo-label a new class with Grounded-SAM, fuse it with precise "
    "labels, train MaSSFormer jointly, and score it all with mIoU / Boundary IoU / Boundary F1.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

EXIT_BAD_INPUT = 2


def _guard(fn: F) -> F:
    """Turn the library's input errors into one clear line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (
            ValueError,
            FileNotFoundError,
            NotADirectoryError,
            FileExistsError,
            RuntimeError,
        ) as e:
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            err.print(Text("error: ", style="bold red") + Text(message))
            raise typer.Exit(EXIT_BAD_INPUT) from None

    return wrapper  # type: ignore[return-value]


def command(target: typer.Typer = app, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """``@command()``: register a guarded command on ``target``."""

    def decorator(fn: F) -> F:
        target.command(name, **kwargs)(_guard(fn))
        return fn

    return decorator


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


# ---------------------------------------------------------------------------------------------
# Commands are added below, one block per area.
# ---------------------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
