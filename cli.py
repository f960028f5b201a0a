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
        except (typer.Exit, typer.Abort):
            raise  # click's Exit and Abort subclass RuntimeError: let them through untouched
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
    backend: str = typer.Option(
        "grounded-sam",
        help="Labeling backend: grounded-sam (real models) or simulated (SIMULATED pseudo labels "
        "made from the dataset's true masks with Grounded-SAM-like errors, for demos; no model).",
    ),
    backend_option: list[str] = typer.Option(
        [],
        help="Backend option KEY=VALUE (repeatable). simulated: seed, miss_area, miss_max, "
        "fill_radius, fill_holes, boundary_shift, false_positive_rate, min_area.",
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
    """Pseudo-label a new class over a dataset with Grounded-SAM, or simulated ones (resumable)."""
    from labeler.cli_support import build_label_config, print_label_summary
    from labeler.run import run_labeling

    cfg = build_label_config(
        class_name=class_name, data=data, split=split, out=out, prompt=prompt, negative=negative,
        spec=spec, detector=detector, segmenter=segmenter, backend=backend,
        box_threshold=box_threshold, text_threshold=text_threshold, min_area=min_area,
        max_instances=max_instances, uncertain=uncertain, batch_size=batch_size, workers=workers,
        device=device, precision=precision, tiles=tiles, overlap=overlap, shard=shard,
        force=force, progress=progress, backend_option=backend_option,
    )  # fmt: skip
    summary = run_labeling(cfg)
    print_label_summary(summary, cfg.backend)
    if summary.interrupted:
        raise typer.Exit(130)
    if summary.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


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
        f"to {root}",
        soft_wrap=True,
    )
    _stdout.print(f"  new-class truth: {root / 'new_classes'} (bicycle, car)", soft_wrap=True)


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
        _stdout.print(renderable, soft_wrap=True)
    if stats.problems:
        raise typer.Exit(1)


# --- end foundation ---
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


# --- train ---


@command(name="train")
def train_cmd(
    data: Path = typer.Option(
        ..., "--data", help="Dataset root or spec (MaSS13K layout or fused)."
    ),
    preset: str = typer.Option(
        None, "--preset", help="Model preset: massformer_r50 | massformer_lite_r18 | tiny."
    ),
    config: Path = typer.Option(None, "--config", help="Training config YAML (strict keys)."),
    out: Path = typer.Option(None, "--out", help="Run directory (default runs/train/run)."),
    iters: int = typer.Option(None, "--iters", min=1, help="Optimizer steps."),
    batch_size: int = typer.Option(
        None, "--batch-size", min=1, help="Images per step over all GPUs and accumulation."
    ),
    crop: int = typer.Option(None, "--crop", min=8, help="Square training crop side."),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N."),
    backbone_weights: str = typer.Option(
        None, "--backbone-weights", help="auto | torchvision | PATH | none."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/last.pt exactly."),
    val_every: int = typer.Option(None, "--val-every", min=0, help="Validate every N steps."),
    val_size: str = typer.Option(
        None, "--val-size", help="Validation inference size WxH (default 4096x3072)."
    ),
    num_workers: int = typer.Option(None, "--workers", min=0, help="DataLoader workers per GPU."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train MaSSFormer (jointly on fused labels, or on plain MaSS13K). Under torchrun: DDP."""
    import os

    from trainer.config import load_config
    from trainer.train import train

    cfg = load_config(
        config,
        data=str(data),
        preset=preset,
        out=None if out is None else str(out),
        iters=iters,
        batch_size=batch_size,
        device=device,
        backbone_weights=backbone_weights,
        resume=resume or None,
        val_every=val_every,
        val_size=None if val_size is None else parse_size(val_size, "--val-size"),
        num_workers=num_workers,
        progress=progress,
    )
    if crop is not None:
        cfg.augment.crop = crop
    result = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        _stdout.print(f"trained {result.step} steps; checkpoint {result.last_checkpoint}")
        if result.val:
            v = result.val[-1]
            _stdout.print(
                f"val: mIoU {v['mIoU']:.2f}  mBIoU {v['mBIoU']:.2f}  mBF1 {v['mBF1']:.4f}"
                if v["mIoU"] is not None
                else "val: nothing to score"
            )


@command(name="predict")
def predict_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint from engine train."),
    images: Path = typer.Option(..., "--images", help="Folder of images to label."),
    out: Path = typer.Option(..., "--out", help="Folder for label PNGs (original sizes)."),
    size: str = typer.Option("4096x3072", "--size", help="Inference size WxH (aspect kept)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    sliding_window: bool = typer.Option(
        False, "--sliding-window", help="Tiled inference for images too large for memory."
    ),
    color: bool = typer.Option(False, "--color", help="Also write colour previews to OUT/color."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo images already labelled."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Label every image of a folder with a trained model, at each image's original size."""
    from trainer.predict import PredictConfig, predict_dir

    cfg = PredictConfig(
        checkpoint=str(checkpoint),
        images=str(images),
        out=str(out),
        size=parse_size(size),
        device=device,
        sliding_window=sliding_window,
        color=color,
        overwrite=overwrite,
        progress=progress,
    )
    result = predict_dir(cfg)
    _stdout.print(
        f"wrote {len(result.written)} label maps to {result.out} in {result.seconds:.1f} s"
        + (f" ({result.skipped} already there, skipped)" if result.skipped else "")
    )


# --- end train ---


# --- demo ---


@command(name="demo")
def demo_cmd(
    out: Path = typer.Option(Path("demo_out"), help="Folder for everything the demo writes."),
    class_name: list[str] = typer.Option(
        ["Bicycle", "Car"], "--class", help="New class (repeatable): Bicycle and/or Car."
    ),
    size: str = typer.Option("512x384", help="Synthetic image size WxH."),
    train: int = typer.Option(24, min=1, help="Synthetic training images."),
    val: int = typer.Option(2, min=0, help="Synthetic validation images."),
    test: int = typer.Option(8, min=1, help="Synthetic test images (the annotated subset)."),
    iters: int = typer.Option(600, min=1, help="Training steps of the tiny MaSSFormer."),
    batch_size: int = typer.Option(4, min=1, help="Images per training step."),
    crop: int = typer.Option(256, min=32, help="Training crop side in pixels."),
    seed: int = typer.Option(0, help="Seed of scenes, simulated labeler and training."),
    detector: str = typer.Option(
        "", help="Grounding DINO id or directory: label with real models instead of SIMULATED."
    ),
    segmenter: str = typer.Option("", help="SAM id, directory or .pth (with --detector)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """The whole loop on built-in synthetic data: synth -> label (SIMULATED Grounded-SAM unless
    --detector/--segmenter) -> fuse -> train -> predict -> compare -> report."""
    from engine.demo import SIMULATED_NOTE, DemoConfig, run_demo

    cfg = DemoConfig(
        out=out,
        classes=tuple(class_name),
        size=parse_size(size),
        train=train,
        val=val,
        test=test,
        iters=iters,
        batch_size=batch_size,
        crop=crop,
        seed=seed,
        detector=detector,
        segmenter=segmenter,
        device=device,
        progress=progress,
    )
    if cfg.simulated:
        err.print(Text(f"note: {SIMULATED_NOTE}.", style="yellow"))
    result = run_demo(cfg, log=lambda line: err.print(Text(line, style="bold")))
    _print_demo(result, cfg.simulated)


def _print_demo(result, simulated: bool) -> None:
    from rich.table import Table

    title = "New-class scores on the annotated test subset"
    table = Table(title=title + (" (SIMULATED labeler)" if simulated else ""))
    for col in ("new class", "source", "IoU", "BIoU", "BF1"):
        table.add_column(col, justify="left" if col in ("new class", "source") else "right")
    for name, data in result.reports.items():
        for row in data["table4"]:
            cells = [row.get(k) for k in ("iou", "biou", "bf1")]
            table.add_row(
                name,
                row["source"],
                *(
                    "n/a" if v is None else f"{v:.{nd}f}"
                    for v, nd in zip(cells, (2, 2, 4), strict=True)
                ),
            )
    out.print(table)
    for key, path in result.paths.items():
        out.print(f"  {key:<20} {path}", soft_wrap=True)


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
