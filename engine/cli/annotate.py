"""``engine annotate pick|export|import``: annotated test subsets."""

from __future__ import annotations

import typer

from engine.cli.common import one_split, stdout
from engine.text import counted

app = typer.Typer(
    help="Annotated test subsets: pick images worth annotating, export their pseudo labels for "
    "correction, import the corrected annotations.",
    no_args_is_help=True,
)


@app.command("export")
def annotate_export(
    run: str = typer.Argument(
        ...,
        help="Label run directory (labels/, instances/, run.json), or an annotated subset "
        "(another pass of corrections).",
    ),
    out: str = typer.Option(
        ...,
        "--out",
        help="Output folder: coco.json, labelme/<stem>.json, labelstudio/{tasks.json,config.xml}, "
        "images.txt.",
    ),
    split: list[str] | None = typer.Option(
        None,
        "--split",
        help="Split to export (default: the one --images was picked from, a subset's own, "
        "else test).",
    ),
    images: str | None = typer.Option(
        None,
        "--images",
        help="File with one image a line: stems, file names or paths (e.g. from `annotate pick`).",
    ),
    stem: list[str] = typer.Option(
        [], "--stem", help="Image stem to export (repeatable; with --images, both are exported)."
    ),
    data: str | None = typer.Option(
        None, help="Dataset root (default: the one run.json or subset.json names)."
    ),
    fmt: list[str] = typer.Option(
        ["coco", "labelme"],
        "--format",
        help="coco, labelme and/or labelstudio (tasks with the pseudo labels as brush "
        "pre-annotations, and the project's labeling config); repeatable or comma-separated.",
    ),
    mask_format: str = typer.Option(
        "rle",
        help="COCO segmentation: rle (exact) or polygon (pixel corners, as pycocotools reads).",
    ),
    simplify: float = typer.Option(0.0, help="Polygon simplification tolerance in pixels."),
    image_url: str | None = typer.Option(
        None,
        help="labelstudio: URL prefix Label Studio loads the split's images from, e.g. "
        "'/data/local-files/?d=mass/images/test/' (default: each image's absolute path through "
        "local-files storage with document root /).",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Replace an earlier export in --out; corrections saved into its files are lost.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Write a label run's instances of chosen images (or an annotated subset's masks, to
    correct them again) as COCO JSON, LabelMe JSON or Label Studio tasks."""
    from engine.annotate import ExportConfig, export_annotations, export_split, read_stem_list

    stems = list(stem) + (read_stem_list(images) if images else [])
    todo, why = "export each into its own --out", "an export holds one split's images"
    split = export_split(one_split(split, None, "engine annotate export", todo, why), images)
    res = export_annotations(
        ExportConfig(
            run,
            out,
            split,
            stems or None,
            data,
            tuple(fmt),
            mask_format,
            simplify,
            image_url,
            force,
            progress,
        )
    )
    stdout.print(f"exported {counted(res.instances, 'instance')} of {counted(res.images, 'image')}")
    if res.coco:
        stdout.print(f"  COCO:         {res.coco}")
    if res.labelme:
        stdout.print(
            f"  LabelMe:      {res.labelme[0].parent}/ ({counted(len(res.labelme), 'file')})"
        )
    if res.labelstudio:
        stdout.print(
            f"  Label Studio: {res.labelstudio} (labeling config: {res.labelstudio.parent}/config.xml)"
        )
    if res.image_list:
        stdout.print(
            f"  images:       {res.image_list} (their paths, to upload to the annotation tool)"
        )


@app.command("import")
def annotate_import(
    sources: list[str] = typer.Argument(..., help="Annotation files or folders."),
    fmt: str = typer.Option(
        "auto",
        "--format",
        help="coco, cvat (CVAT for images 1.1: annotations.xml), labelme, labelstudio (Label "
        "Studio's JSON export), png, segmask (a CVAT 'Segmentation mask' export folder: "
        "labelmap.txt + SegmentationClass/), yolo (Ultralytics segmentation labels, <stem>.txt, "
        "names from data.yaml), or auto: told by the files.",
    ),
    class_name: str = typer.Option(
        ...,
        "--class",
        help="The class the annotations mark (case-insensitive); other classes in the files are "
        "left out, with a warning.",
    ),
    data: str = typer.Option(..., help="Dataset root; annotated images must exist there."),
    out: str = typer.Option(..., help="Subset directory to write (masks/ + subset.json)."),
    split: list[str] = typer.Option(
        ["test"], "--split", help="Dataset split of the annotated images."
    ),
    png_binary: bool = typer.Option(
        False, help="png: any non-zero value is the class (0/255 masks)."
    ),
    png_value: int | None = typer.Option(
        None,
        help="png: the class's value in index masks of many classes (Pascal VOC: bicycle 2, "
        "car 7); 255 stays unannotated, other values are 0.",
    ),
    replace: bool = typer.Option(
        False,
        "--replace",
        "--force",  # what label, fuse and annotate export call replacing what --out holds
        help="Write over the subset of another class or split that --out holds (one folder "
        "holds one class's subset), or change or remove masks of its subset of the same class "
        "and split (corrections are lost; the same masks again, or more images, need neither); "
        "--force: the same, as in export.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Turn corrected annotations or PNG masks into an annotated subset (1/0/255 masks).

    Importing again into the same folder adds to the subset of that class and split; changing
    or removing its masks needs --force."""
    from engine.annotate import ImportConfig, import_annotations

    todo, why = "import each into its own --out", "a subset holds one split's masks"
    cfg = ImportConfig(
        fmt,
        sources,
        class_name,
        data,
        out,
        one_split(split, "test", "engine annotate import", todo, why),
        png_binary,
        replace,
        png_value,
        progress,
    )
    sub = import_annotations(cfg)
    stdout.print(
        f"annotated subset of {sub.class_name}: {counted(len(sub.stems), 'image')} -> {sub.root}"
    )


@app.command("pick")
def annotate_pick(
    run: str | None = typer.Argument(None, help="Label run directory."),
    run_option: str | None = typer.Option(
        None, "--run", hidden=True, help="The run as an option (earlier versions' spelling)."
    ),
    n: int = typer.Option(50, "-n", min=1, help="Images to choose."),
    split: list[str] = typer.Option(["test"], "--split", help="Split to choose from."),
    seed: int = typer.Option(0, min=0, help="Seed of the random share."),
    low_confidence: float = typer.Option(0.4, help="Share chosen by lowest mean confidence."),
    many_or_tiny: float = typer.Option(0.3, help="Share chosen by most / tiniest instances."),
    out: str | None = typer.Option(None, help="List file (default RUN/pick-<split>.txt)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Choose images to annotate: low confidence, many or tiny instances, and a random share."""
    from engine.annotate import PickConfig, pick_for_annotation

    if run is not None and run_option is not None and run != run_option:
        raise ValueError(f"two label runs given: {run} and --run {run_option}; give one")
    run = run or run_option
    one = one_split(split, "test", "engine annotate pick", "run it once per split")
    if run is None:
        raise ValueError("give the label run directory: engine annotate pick RUN")
    picks, path = pick_for_annotation(
        PickConfig(run, n, one, seed, low_confidence, many_or_tiny, out=out, progress=progress)
    )
    counts: dict[str, int] = {}
    for p in picks:
        counts[p.reason] = counts.get(p.reason, 0) + 1
    detail = ", ".join(f"{v} {k}" for k, v in counts.items())
    if len(picks) < n:  # the split is smaller than asked for: say so, not just a smaller count
        detail += f"; every image of split {one!r}, fewer than the {n} asked for"
    stdout.print(f"picked {counted(len(picks), 'image')} ({detail}) -> {path}")


# engine annotate --help lists them in the order a user runs them (registration order: export,
# import, pick, was the order shown)
_ORDER = ("pick", "export", "import")
app.registered_commands.sort(
    key=lambda c: _ORDER.index(c.name) if c.name in _ORDER else len(_ORDER)
)
