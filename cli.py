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


# --- loop (annotate, review, report) ---
annotate_app = typer.Typer(
    help="Annotated test subsets: export pseudo labels for correction, import corrected "
    "annotations, pick images worth annotating.",
    no_args_is_help=True,
)
app.add_typer(annotate_app, name="annotate")


@command(annotate_app, "export")
def annotate_export(
    run: str = typer.Argument(..., help="Label run directory (labels/, instances/, run.json)."),
    out: str = typer.Option(..., "--out", help="Output folder: coco.json and labelme/<stem>.json."),
    split: str = typer.Option("test", help="Split of the run to export."),
    images: str | None = typer.Option(
        None, "--images", help="File with one image stem per line (e.g. from `annotate pick`)."
    ),
    stem: list[str] = typer.Option([], "--stem", help="Image stem to export (repeatable)."),
    data: str | None = typer.Option(None, help="Dataset root (default: the one run.json names)."),
    fmt: list[str] = typer.Option(["coco", "labelme"], "--format", help="coco and/or labelme."),
    mask_format: str = typer.Option("rle", help="COCO segmentation: rle (exact) or polygon."),
    simplify: float = typer.Option(0.0, help="Polygon simplification tolerance in pixels."),
) -> None:
    """Write a label run's instances of chosen images as COCO JSON and LabelMe JSON."""
    from engine.annotate import ExportConfig, export_annotations, read_stem_list

    stems = list(stem) + (read_stem_list(images) if images else [])
    res = export_annotations(
        ExportConfig(run, out, split, stems or None, data, tuple(fmt), mask_format, simplify)
    )
    _stdout.print(f"exported {res.instances} instances of {res.images} images")
    if res.coco:
        _stdout.print(f"  COCO:    {res.coco}")
    if res.labelme:
        _stdout.print(f"  LabelMe: {res.labelme[0].parent}/ ({len(res.labelme)} files)")


@command(annotate_app, "import")
def annotate_import(
    sources: list[str] = typer.Argument(..., help="Annotation files or folders."),
    fmt: str = typer.Option(..., "--format", help="coco, labelme or png."),
    class_name: str = typer.Option(..., "--class", help="The class the annotations mark."),
    data: str = typer.Option(..., help="Dataset root; annotated images must exist there."),
    out: str = typer.Option(..., help="Subset directory to write (masks/ + subset.json)."),
    split: str = typer.Option("test", help="Dataset split of the annotated images."),
    png_binary: bool = typer.Option(
        False, help="png: any non-zero value is the class (0/255 masks)."
    ),
) -> None:
    """Turn corrected annotations or PNG masks into an annotated subset (1/0/255 masks)."""
    from engine.annotate import ImportConfig, import_annotations

    sub = import_annotations(ImportConfig(fmt, sources, class_name, data, out, split, png_binary))
    _stdout.print(f"annotated subset of {sub.class_name}: {len(sub.stems)} images -> {sub.root}")


@command(annotate_app, "pick")
def annotate_pick(
    run: str = typer.Option(..., "--run", help="Label run directory."),
    n: int = typer.Option(50, "-n", min=1, help="Images to choose."),
    split: str = typer.Option("test", help="Split to choose from."),
    seed: int = typer.Option(0, help="Seed of the random share."),
    low_confidence: float = typer.Option(0.4, help="Share chosen by lowest mean confidence."),
    many_or_tiny: float = typer.Option(0.3, help="Share chosen by most / tiniest instances."),
    out: str | None = typer.Option(None, help="List file (default RUN/pick-<split>.txt)."),
) -> None:
    """Choose images to annotate: low confidence, many or tiny instances, and a random share."""
    from engine.annotate import PickConfig, pick_for_annotation

    picks, path = pick_for_annotation(
        PickConfig(run, n, split, seed, low_confidence, many_or_tiny, out=out)
    )
    counts: dict[str, int] = {}
    for p in picks:
        counts[p.reason] = counts.get(p.reason, 0) + 1
    detail = ", ".join(f"{v} {k}" for k, v in counts.items())
    _stdout.print(f"picked {len(picks)} images ({detail}) -> {path}")


@command(name="review")
def review(
    run: str = typer.Argument(..., help="Label run directory."),
    out: str | None = typer.Option(None, help="Gallery folder (default RUN/review)."),
    split: str | None = typer.Option(None, help="Split to show (default: all of the run's)."),
    data: str | None = typer.Option(None, help="Dataset root (default: the one run.json names)."),
    pred: str | None = typer.Option(None, help="Model predictions: DIR/[split/]<stem>.png."),
    pred_class_id: int | None = typer.Option(None, help="Class id of the new class in --pred."),
    gt: str | None = typer.Option(None, help="Annotated subset dir or folder of 0/1/255 masks."),
    thumb: int = typer.Option(512, min=64, help="Thumbnail long side in pixels."),
    limit: int = typer.Option(
        300, min=0, help="Most images shown, lowest confidence first; 0 = all."
    ),
) -> None:
    """Static HTML gallery of pseudo labels on images (no server; open index.html)."""
    from engine.review import ReviewConfig, build_review

    res = build_review(ReviewConfig(run, out, split, data, pred, pred_class_id, gt, thumb, limit))
    _stdout.print(
        f"review of {res.images} images ({res.with_pred} with prediction, {res.with_gt} with "
        f"annotation): {res.index}"
    )


@command(name="report")
def report(
    subset: str = typer.Option(..., help="Annotated subset directory (the ground truth)."),
    out: str = typer.Option(..., help="Report folder (report.md, report.json, chart.png)."),
    pseudo: str | None = typer.Option(None, help="Label run directory (pseudo labels)."),
    fused: str | None = typer.Option(None, help="Fused labels directory."),
    pred: str | None = typer.Option(None, help="Model predictions: DIR/[split/]<stem>.png."),
    data: str | None = typer.Option(None, help="Dataset root: overlays and the per-class table."),
    taxonomy: str | None = typer.Option(None, help="taxonomy.json of the fused / predicted ids."),
    class_name: str | None = typer.Option(
        None, "--class", help="New class (default: the subset's)."
    ),
    overlays: int = typer.Option(4, min=0, help="Overlay images to write."),
    chart: bool = typer.Option(True, help="Draw chart.png (needs matplotlib)."),
) -> None:
    """Table-4 report: pseudo labels vs fused labels vs joint-trained model on the annotated subset."""
    from rich.table import Table

    from engine.report import METRICS, ReportConfig, build_report

    res = build_report(
        ReportConfig(
            subset, out, pseudo, fused, pred, data, taxonomy, class_name, "", overlays, chart
        )
    )
    table = Table(title=res.data["title"])
    for col in ("source", "IoU", "BIoU", "BF1", "ΔIoU", "ΔBIoU", "ΔBF1"):
        table.add_column(col)
    for row in res.data["table4"]:
        vals = [("n/a" if row[k] is None else f"{row[k]:.{nd}f}") for k, _, nd in METRICS]
        deltas = [
            ("n/a" if row["delta"][k] is None else f"{row['delta'][k]:+.{nd}f}")
            for k, _, nd in METRICS
        ]
        table.add_row(row["source"], *vals, *deltas)
    _stdout.print(table)
    _stdout.print(f"report: {res.markdown} (+ report.json{', chart.png' if res.chart else ''})")


# --- end loop ---


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
