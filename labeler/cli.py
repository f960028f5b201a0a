"""``engine label`` and ``engine convert-sam``: the labeler's commands."""

from __future__ import annotations

import typer

from engine.cli.common import EXIT_SOME_FAILED, interrupted, stdout

app = typer.Typer()


@app.command("label")
def label_cmd(
    class_name: str = typer.Option(..., "--class", help="New class to label, e.g. Bicycle."),
    data: str = typer.Option(..., "--data", help="Dataset root or dataset spec file."),
    split: list[str] = typer.Option(
        [],
        "--split",
        help="Splits to label, e.g. val,test (repeatable; default: all the dataset has).",
    ),
    out: str = typer.Option("", help="Run directory (default runs/label/<class lower-case>)."),
    prompt: list[str] = typer.Option([], help="Text prompt (repeatable, synonyms)."),
    negative: list[str] = typer.Option(
        [],
        help="Negative prompt (repeatable): removes an instance whose mask it covers when it "
        "scores higher by the margin (docs/labeler.md).",
    ),
    spec: str = typer.Option(
        "", "--spec", help="YAML class spec file (prompts, thresholds, negatives)."
    ),
    detector: str = typer.Option("", help="Grounding DINO hub id or local directory."),
    segmenter: str = typer.Option(
        "", help="SAM / SAM-HQ / SAM 2 hub id, local directory or SAM .pth file."
    ),
    detector_revision: str = typer.Option(
        "", help="Hub revision of --detector: branch, tag or commit (run.json records the commit)."
    ),
    segmenter_revision: str = typer.Option("", help="Hub revision of --segmenter."),
    backend: str = typer.Option(
        "grounded-sam",
        help="Labeling backend: grounded-sam (real models), sam3 (SAM 3: text -> every "
        "instance's mask) or simulated (SIMULATED pseudo labels made from the dataset's true "
        "masks with Grounded-SAM-like errors, for demos; no model).",
    ),
    model: str = typer.Option(
        "", help="--backend sam3: SAM 3 hub id or local directory (default facebook/sam3, gated)."
    ),
    model_revision: str = typer.Option("", help="Hub revision of --model."),
    refine: str = typer.Option(
        "",
        help="Re-segment each instance on a full-resolution crop around its box with this SAM / "
        "SAM-HQ / SAM 2 id, directory or .pth (any backend).",
    ),
    backend_option: list[str] = typer.Option(
        [],
        help="Backend option KEY=VALUE (repeatable). simulated: seed, miss_area, miss_max, "
        "fill_radius, fill_holes, boundary_shift, false_positive_rate, min_area.",
    ),
    box_threshold: float = typer.Option(None, help="Box threshold (default 0.35)."),
    text_threshold: float = typer.Option(
        None, help="Text threshold (default 0.25; grounded-sam: SAM 3 has none)."
    ),
    min_area: int = typer.Option(None, help="Minimum instance area in pixels (default 0)."),
    max_instances: int = typer.Option(
        None, min=0, help="Instances kept per image, best first (default 100; 0: all)."
    ),
    max_boxes: int = typer.Option(
        100,
        min=0,
        help="Boxes per image that reach SAM, best box score first (sam3: instances per crop "
        "and prompt; 0: all).",
    ),
    uncertain: str = typer.Option(
        "0.15,0.25", help="Confidence band lo,hi that becomes 255 (lo = hi: none)."
    ),
    batch_size: int = typer.Option(4, min=1, help="Images per model batch."),
    workers: int = typer.Option(2, min=1, help="Image decoding threads."),
    writers: int = typer.Option(2, min=1, help="Output writing threads."),
    writer_queue_mb: int = typer.Option(
        1024, min=1, help="Outputs waiting for the writers, at most this many MB."
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N."),
    precision: str = typer.Option("auto", help="auto | fp32 | fp16 | bf16."),
    tiles: str = typer.Option("1x1", help="Detection tiles RxC in addition to the whole image."),
    overlap: float = typer.Option(0.2, help="Tile overlap (fraction of a tile)."),
    shard: str = typer.Option(
        "", help="i/n: label every n-th image from i (default RANK/WORLD_SIZE)."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Relabel images already done; replace a run of another class in --out.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Pseudo-label a new class over a dataset with Grounded-SAM or SAM 3, or simulated ones
    (resumable)."""
    from labeler.cli_support import build_label_config, print_label_summary
    from labeler.run import run_labeling

    cfg = build_label_config(
        class_name=class_name, data=data, split=",".join(split), out=out, prompt=prompt, negative=negative,
        spec=spec, detector=detector, segmenter=segmenter, backend=backend, model=model,
        refine=refine, detector_revision=detector_revision,
        segmenter_revision=segmenter_revision, model_revision=model_revision,
        box_threshold=box_threshold, text_threshold=text_threshold, min_area=min_area,
        max_instances=max_instances, uncertain=uncertain, batch_size=batch_size, workers=workers,
        device=device, precision=precision, tiles=tiles, overlap=overlap, shard=shard,
        force=force, progress=progress, backend_option=backend_option, max_boxes=max_boxes,
        writers=writers, writer_queue_mb=writer_queue_mb,
    )  # fmt: skip
    summary = run_labeling(cfg)  # names a model folder typed as a path and not there first
    print_label_summary(summary, cfg.backend)
    if summary.interrupted:
        raise typer.Exit(interrupted()[1])
    if summary.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command("convert-sam")
def convert_sam_cmd(
    checkpoint: str = typer.Argument(..., help="Original segment-anything .pth checkpoint."),
    out_dir: str = typer.Argument(..., help="Directory to save the transformers SamModel in."),
) -> None:
    """Convert an original SAM checkpoint (sam_vit_b/l/h) to a transformers directory, once."""
    from labeler.sam_convert import convert_sam_checkpoint

    path = convert_sam_checkpoint(checkpoint, out_dir)
    stdout.print(f"saved transformers SAM to {path}")
