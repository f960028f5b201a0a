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


# --- metrics ---


class _BF1Mode(str, Enum):
    dataset = "dataset"
    image = "image"


class _Resize(str, Enum):
    nearest = "nearest"


class _Input(str, Enum):
    auto = "auto"
    binary = "binary"
    labels = "labels"


def _metric_cell(value: float, digits: int) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN != NaN


@command(name="evaluate")
def evaluate_cmd(
    pred: Path = typer.Option(..., "--pred", help="Folder of predicted label PNGs (<stem>.png)."),
    gt: Path = typer.Option(..., "--gt", help="Folder of ground-truth label PNGs (255 = ignore)."),
    num_classes: int | None = typer.Option(
        None, "--num-classes", min=1, max=255, help="Classes 0..N-1 (instead of a taxonomy)."
    ),
    taxonomy: Path | None = typer.Option(
        None, "--taxonomy", help="Taxonomy JSON (default: MaSS13K, 7 classes)."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON here."),
    bf1_mode: _BF1Mode = typer.Option(
        _BF1Mode.dataset,
        "--bf1-mode",
        help="Boundary F1 aggregation: counts summed over the set, or mean of per-image scores.",
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
    resize_pred: _Resize | None = typer.Option(
        None,
        "--resize-pred",
        help="Resize predictions of another size to the GT's (nearest neighbour); otherwise a size mismatch is an error.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
    device: str | None = typer.Option(
        None,
        "--device",
        help="Compute the counts with torch on this device (e.g. cuda); identical counts. Default: numpy/OpenCV on the CPU.",
    ),
) -> None:
    """Score predicted label maps against ground truth: per-class IoU, Boundary IoU, Boundary F1."""
    from rich.table import Table

    from engine.evaluate import EvaluateConfig, evaluate

    cfg = EvaluateConfig(
        pred=pred,
        gt=gt,
        num_classes=num_classes,
        taxonomy=taxonomy,
        bf1_mode=bf1_mode.value,
        workers=workers,
        resize_pred=resize_pred.value if resize_pred else None,
        json_out=json_out,
        progress=progress,
        device=device,
    )
    report = evaluate(cfg)
    r = report.result
    table = Table(
        title=f"{r.images} images, BF1 aggregated per {'image' if r.bf1_mode == 'image' else 'dataset'}"
    )
    table.add_column("id", justify="right")
    table.add_column("class")
    for name in ("IoU", "BIoU", "BF1"):
        table.add_column(name, justify="right")
    for c in report.taxonomy:
        table.add_row(
            str(c.id),
            c.name,
            _metric_cell(r.iou[c.id], 2),
            _metric_cell(r.biou[c.id], 2),
            _metric_cell(r.bf1[c.id], 4),
        )
    table.add_section()
    table.add_row(
        "",
        "mean",
        _metric_cell(r.miou, 2),
        _metric_cell(r.mbiou, 2),
        _metric_cell(r.mbf1, 4),
        style="bold",
    )
    out.print(table)
    if json_out is not None:
        err.print(f"wrote {json_out}")


@command(name="compare")
def compare_cmd(
    class_name: str = typer.Option(
        ...,
        "--class",
        help="The class to score: a name in the taxonomy or an id (binary masks need none).",
    ),
    gt: Path = typer.Option(
        ...,
        "--gt",
        help="Folder of annotated ground truth (binary 0/1/255 masks or full label maps).",
    ),
    source: list[str] = typer.Option(
        ...,
        "--source",
        help="'NAME=DIR' of a prediction set; repeat; deltas are against the first.",
    ),
    taxonomy: Path | None = typer.Option(
        None, "--taxonomy", help="Taxonomy JSON naming the class (default: MaSS13K)."
    ),
    input_mode: _Input = typer.Option(
        _Input.auto,
        "--input",
        help="How to read files: auto (only 0/1/255 = binary mask), binary, or labels.",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the comparison as JSON here."),
    markdown_out: Path | None = typer.Option(
        None, "--markdown", help="Write a Markdown table here."
    ),
    plot_out: Path | None = typer.Option(
        None, "--plot", help="Write a bar chart PNG here (needs matplotlib)."
    ),
    bf1_mode: _BF1Mode = typer.Option(
        _BF1Mode.dataset, "--bf1-mode", help="Boundary F1 aggregation."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
    resize_pred: _Resize | None = typer.Option(
        None, "--resize-pred", help="Resize predictions of another size (nearest neighbour)."
    ),
    progress: bool = typer.Option(
        True, "--progress/--no-progress", help="Progress bars on stderr."
    ),
) -> None:
    """Score one class (vs the rest) for several prediction sets side by side (paper Table 4)."""
    from rich.table import Table

    from engine.compare import CompareConfig, compare, fmt, parse_source

    cfg = CompareConfig(
        class_name=class_name,
        gt=gt,
        sources=tuple(parse_source(s) for s in source),
        taxonomy=taxonomy,
        input=input_mode.value,
        bf1_mode=bf1_mode.value,
        resize_pred=resize_pred.value if resize_pred else None,
        workers=workers,
        json_out=json_out,
        markdown_out=markdown_out,
        plot_out=plot_out,
        progress=progress,
    )
    report = compare(cfg)
    table = Table(title=f"{report.class_name}: {report.images} annotated images")
    table.add_column("source")
    for name in ("IoU", "BIoU", "BF1", "dIoU", "dBIoU", "dBF1"):
        table.add_column(name, justify="right")
    for i, row in enumerate(report.rows):
        s = row.scores
        deltas = [fmt(row.delta[k], k, signed=True) if i else "" for k in ("iou", "biou", "bf1")]
        table.add_row(row.name, fmt(s.iou, "iou"), fmt(s.biou, "biou"), fmt(s.bf1, "bf1"), *deltas)
    out.print(table)
    for path in (json_out, markdown_out, plot_out):
        if path is not None:
            err.print(f"wrote {path}")


# --- end metrics ---


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
