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


# --- labeler ---
EXIT_SOME_FAILED = 1


@command(name="label")
def label_cmd(
    class_name: str = typer.Option(..., "--class", help="New class to label, e.g. Bicycle."),
    data: str = typer.Option(..., "--data", help="Dataset root or dataset spec file."),
    split: str = typer.Option("", help="Comma-separated splits (default: all the dataset has)."),
    out: str = typer.Option("", help="Run directory (default runs/label/<class lower-case>)."),
    prompt: list[str] = typer.Option([], help="Text prompt (repeatable, synonyms)."),
    negative: list[str] = typer.Option(
        [], help="Negative prompt whose boxes are dropped (repeatable)."
    ),
    spec: str = typer.Option(
        "", "--spec", help="YAML class spec file (prompts, thresholds, negatives)."
    ),
    detector: str = typer.Option("", help="Grounding DINO hub id or local directory."),
    segmenter: str = typer.Option(
        "", help="SAM / SAM-HQ hub id, local directory or SAM .pth file."
    ),
    backend: str = typer.Option("grounded-sam", help="Labeling backend."),
    backend_opt: list[str] = typer.Option(
        [], "--backend-opt", help="KEY=VALUE option for the backend (repeatable; hashed)."
    ),
    box_threshold: float = typer.Option(None, help="Box threshold (default 0.35)."),
    text_threshold: float = typer.Option(None, help="Text threshold (default 0.25)."),
    min_area: int = typer.Option(None, help="Minimum instance area in pixels (default 0)."),
    max_instances: int = typer.Option(None, help="Maximum instances per image (default 100)."),
    uncertain: str = typer.Option("0.15,0.25", help="Confidence band lo,hi that becomes 255."),
    batch_size: int = typer.Option(4, min=1, help="Images per model batch."),
    workers: int = typer.Option(2, min=1, help="Image decoding threads."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N."),
    precision: str = typer.Option("auto", help="auto | fp32 | fp16 | bf16."),
    tiles: str = typer.Option("1x1", help="Detection tiles RxC in addition to the whole image."),
    overlap: float = typer.Option(0.2, help="Tile overlap (fraction of a tile)."),
    shard: str = typer.Option(
        "", help="i/n: label every n-th image from i (default RANK/WORLD_SIZE)."
    ),
    force: bool = typer.Option(False, "--force", help="Relabel images already done."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Pseudo-label a new class over a dataset with Grounded-SAM (resumable)."""
    from labeler.cli_support import build_label_config, print_label_summary
    from labeler.run import run_labeling

    cfg = build_label_config(
        class_name=class_name, data=data, split=split, out=out, prompt=prompt, negative=negative,
        spec=spec, detector=detector, segmenter=segmenter, backend=backend, backend_opt=backend_opt,
        box_threshold=box_threshold, text_threshold=text_threshold, min_area=min_area,
        max_instances=max_instances, uncertain=uncertain, batch_size=batch_size, workers=workers,
        device=device, precision=precision, tiles=tiles, overlap=overlap, shard=shard,
        force=force, progress=progress,
    )  # fmt: skip
    summary = run_labeling(cfg)
    print_label_summary(summary)
    # SystemExit, not typer.Exit: the guard turns typer.Exit (a RuntimeError) into exit code 2.
    if summary.interrupted:
        raise SystemExit(130)
    if summary.failed:
        raise SystemExit(EXIT_SOME_FAILED)


@command(name="convert-sam")
def convert_sam_cmd(
    checkpoint: str = typer.Argument(..., help="Original segment-anything .pth checkpoint."),
    out_dir: str = typer.Argument(..., help="Directory to save the transformers SamModel in."),
) -> None:
    """Convert an original SAM checkpoint (sam_vit_b/l/h) to a transformers directory, once."""
    from labeler.sam_convert import convert_sam_checkpoint

    path = convert_sam_checkpoint(checkpoint, out_dir)
    out.print(f"saved transformers SAM to {path}")


# --- end labeler ---

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


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
