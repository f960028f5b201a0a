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
from pathlib import Path
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
_stdout = out  # for commands whose --out option shadows ``out``

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
            IsADirectoryError,
            FileExistsError,
            PermissionError,
            RuntimeError,
        ) as e:
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
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


# --- foundation ---


@command(name="synth")
def synth_cmd(
    out: Path = typer.Option(..., "--out", help="Dataset root to write (MaSS13K layout)."),
    train: int = typer.Option(8, "--train", min=0, help="Training images."),
    val: int = typer.Option(2, "--val", min=0, help="Validation images."),
    test: int = typer.Option(4, "--test", min=0, help="Test images."),
    size: str = typer.Option("512x384", "--size", help="Image size WxH, e.g. 4032x3024."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed: same seed, same bytes."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Write a synthetic MaSS-style dataset with bicycle and car ground truth."""
    from engine.synth import SynthConfig, generate

    cfg = SynthConfig(out=out, train=train, val=val, test=test, size=parse_size(size), seed=seed)
    root = generate(cfg, progress=progress)
    n = train + val + test
    _stdout.print(
        f"wrote {n} images ({train} train, {val} val, {test} test) at {cfg.size[0]}x{cfg.size[1]} "
        f"to {root}"
    )
    _stdout.print(f"  new-class truth: {root / 'new_classes'} (bicycle, car)")


@command(name="info")
def info_cmd(
    data: Path = typer.Argument(..., help="Dataset root (MaSS13K layout) or dataset spec file."),
    split: list[str] = typer.Option(None, "--split", "-s", help="Split(s) to show; default all."),
    decode: bool = typer.Option(
        True, "--decode/--headers-only", help="Decode every image (finds truncated files)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Image counts, sizes and class pixel shares per split; every problem found.

    Exit code 0 when the dataset is clean, 1 when problems were found, 2 on bad input.
    """
    from engine.info import dataset_stats, render_stats

    stats = dataset_stats(data, splits=split or None, decode=decode, progress=progress)
    for renderable in render_stats(stats):
        _stdout.print(renderable)
    if stats.problems:
        raise typer.Exit(1)


# --- end foundation ---


# --- model ---


@command(name="models")
def models_cmd(
    macs: str = typer.Option(
        None, "--macs", help="Also count MACs of one forward pass at this input size WxH."
    ),
    num_classes: int = typer.Option(7, "--num-classes", min=1, help="K classes (MaSS13K: 7)."),
) -> None:
    """List the model presets with their parameter counts (and MACs at --macs WxH)."""
    from trainer.models.summary import summarize_presets

    size = parse_size(macs, "--macs") if macs else None
    for row in summarize_presets(num_classes=num_classes, macs_size=size):
        line = f"{row.name:<21} {row.params / 1e6:6.2f}M"
        if row.macs is not None:
            line += f"  {row.macs / 1e9:9.1f} GMACs @ {size[0]}x{size[1]}"
        _stdout.print(line, highlight=False)


# --- end model ---


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
