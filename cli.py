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
from enum import Enum
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


# --- fusion ---
class UncertainMode(str, Enum):
    ignore = "ignore"
    keep_parent = "keep-parent"


def _names(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeatable and/or comma-separated option values -> a tuple, None when not given."""
    if not values:
        return None
    return tuple(v.strip() for text in values for v in text.split(",") if v.strip())


@command(name="fuse")
def fuse_command(
    data: Path = typer.Option(
        ..., "--data", help="Dataset root (or spec file) with the precise labels."
    ),
    pseudo: list[Path] = typer.Option(
        ..., "--pseudo", help="Pseudo-label run directory of one new class (repeat for several)."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Output directory [default: runs/fused/<class>[+<class>...]]."
    ),
    split: list[str] | None = typer.Option(
        None, "--split", help="Splits to fuse, e.g. train,val [default: all the runs labelled]."
    ),
    parent: list[str] | None = typer.Option(
        None,
        "--parent",
        help="Precise classes a new class may claim, e.g. Others,Ground [default: its own parent].",
    ),
    parent_constraint: bool = typer.Option(
        True,
        "--parent-constraint/--no-parent-constraint",
        help="Let new classes claim only their parents' pixels (off: any precise pixel but 255).",
    ),
    uncertain: UncertainMode = typer.Option(
        UncertainMode.ignore, "--uncertain", help="Uncertain pseudo pixels on parent pixels."
    ),
    min_coverage: float | None = typer.Option(
        None,
        "--min-coverage",
        min=0.0,
        max=1.0,
        help="Drop instances with a smaller share of their mask on parent pixels.",
    ),
    priority: list[str] | None = typer.Option(
        None, "--priority", help="New classes in priority order for overlaps, e.g. Car,Bicycle."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
    force: bool = typer.Option(False, "--force", help="Redo images already fused."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Fuse new-class pseudo labels with the precise labels into joint-training labels."""
    from engine.fusion import FuseConfig, default_out_dir, fuse, report_table

    config = FuseConfig(
        data=data,
        pseudo=tuple(pseudo),
        out=out_dir if out_dir is not None else default_out_dir(pseudo),
        splits=_names(split),
        parents=_names(parent),
        parent_constraint=parent_constraint,
        uncertain=uncertain.value,
        min_coverage=min_coverage,
        priority=_names(priority) or (),
        workers=workers,
        force=force,
        progress=progress,
    )
    result = fuse(config)
    _stdout.print(report_table(result))
    _stdout.print(
        f"fused {result.fused} images, skipped {result.skipped} already done, "
        f"in {result.seconds:.1f} s -> {result.out} (open it as a dataset: engine info {result.out})"
    )


# --- end fusion ---


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
