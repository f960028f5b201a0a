"""``engine predict``: its options (``--size auto``, ``original`` or ``WxH``) and the
summary of what it labelled."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli.common import (
    EXIT_SOME_FAILED,
    SizeFormError,
    one_split,
    parse_scales,
    parse_size,
    stderr,
    stdout,
)
from engine.text import counted
from trainer.cli.app import app


def parse_predict_size(text: str) -> tuple[int, int] | None | str:
    """``engine predict --size``: ``"auto"`` (kept as is, resolved from the checkpoint),
    ``"original"`` (None: each image's own size) or ``WxH``; a clear error otherwise."""
    word = text.strip().lower()
    if word in ("auto", "original"):
        return None if word == "original" else word
    try:
        size = parse_size(text)
    except SizeFormError:  # no WxH at all; a WxH out of range is said as parse_size says it
        raise ValueError(
            f"--size must be auto, original or WxH like 512x384, got {text!r}"
        ) from None
    return size  # one too small for the model: refused by predict_dir, for library callers too


@app.command("predict")
def predict_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint from engine train."),
    images: Path | None = typer.Option(
        None, "--images", help="Folder of images to label (or one image file)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for label PNGs (original sizes)."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Instead of --images: a dataset root or spec file (a fused dataset too); labels "
        "the images of --split.",
    ),
    split: list[str] = typer.Option(["test"], "--split", help="With --data: the split to label."),
    size: str = typer.Option(
        "auto",
        "--size",
        help="Inference size WxH (aspect kept); original: each image's own; auto: the size the "
        "checkpoint's training validated at (engine train --val-size), else the release's "
        "4096x3072.",
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    mode: str = typer.Option(
        "efficient",
        "--mode",
        help="efficient (class maps at mask resolution, low memory) | full (the release's "
        "inference exactly, fp32; Q masks at the resized size).",
    ),
    sliding_window: bool = typer.Option(
        False, "--sliding-window", help="Tiled inference for images too large for memory."
    ),
    scales: str = typer.Option(
        "1",
        "--scales",
        help="Test-time scales relative to --size, comma-separated, e.g. 0.75,1,1.25 "
        "(score maps averaged; 1: single scale, as released).",
    ),
    flip: bool = typer.Option(
        False, "--flip", help="Also average the left-right mirrored image's scores."
    ),
    guided_filter: bool = typer.Option(
        False,
        "--guided-filter",
        help="Refine the class maps along the image's edges (fast guided filter, the image as "
        "guide; efficient mode; not part of the release's inference).",
    ),
    gf_radius: int = typer.Option(
        0, "--gf-radius", min=0, help="Guided filter radius in px; 0: 8 x the upsampling factor."
    ),
    gf_eps: float = typer.Option(1e-4, "--gf-eps", help="Guided filter regulariser (> 0)."),
    gf_guide: str = typer.Option(
        "rgb", "--gf-guide", help="Guided filter guide: rgb (the colour image) or grey."
    ),
    gf_subsample: int = typer.Option(
        0,
        "--gf-subsample",
        min=0,
        help="Guided filter fits at 1/N of the output size; 0: 2 x the upsampling factor; "
        "1: exact, at full size.",
    ),
    color: bool = typer.Option(False, "--color", help="Also write colour previews to OUT/color."),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        "--force",  # label's and fuse's name for the same: redo what is done
        help="Redo images already labelled; replace a prediction of other settings in --out "
        "(--force: the same, as in label and fuse).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Label every image of a folder (or of a dataset's split) with a trained model; label maps
    at each image's own size."""
    from trainer.predict import PredictConfig, predict_dir

    todo = "run it once per split, each with its own --out"
    one = one_split(
        split, "test", "engine predict", todo, "--out holds one split's <stem>.png maps"
    )
    if one != "test" and data is None:
        raise ValueError("--split chooses a split of --data; give --data ROOT")
    cfg = PredictConfig(
        checkpoint=str(checkpoint),
        images=None if images is None else str(images),
        out=str(out),
        data=None if data is None else str(data),
        split=one,
        size=parse_predict_size(size),
        device=device,
        mode=mode,
        sliding_window=sliding_window,
        scales=parse_scales(scales),
        flip=flip,
        guided_filter=guided_filter,
        gf_radius=gf_radius,
        gf_eps=gf_eps,
        gf_guide=gf_guide,
        gf_subsample=gf_subsample,
        color=color,
        overwrite=overwrite,
        progress=progress,
    )
    result = predict_dir(cfg)
    at = "each image's own size" if result.size is None else "x".join(map(str, result.size))
    stdout.print(
        f"wrote {counted(len(result.written), 'label map')} to {result.out} in {result.seconds:.1f} s"
        + (f" ({result.skipped} already there, skipped" if result.skipped else "")
        + (f"; {counted(result.previews, 'colour preview')} added" if result.previews else "")
        + (")" if result.skipped else "")
        + f"; inference at {at}"
        + (f" ({result.size_source})" if result.size_source != "given" else "")
        # said, as the size is: neither the filter nor the previews' folder was named
        + (", then the guided filter" if cfg.guided_filter else "")
        + (f"; colour previews in {result.out / 'color'}/" if cfg.color else ""),
        highlight=False,
    )
    if result.left_out:
        from trainer.predict import left_out_note

        stdout.print(left_out_note(result.left_out, cfg.images), highlight=False, soft_wrap=True)
    if result.failed:  # errors: on stderr, as engine label's (not in `> out.txt` alone)
        stderr.print(f"{counted(len(result.failed), 'image')} failed:", highlight=False)
        from engine.text import first_lines

        reasons = [reason for _, reason in result.failed]
        for line in first_lines(reasons, result.out / "predict.json"):
            stderr.print(f"  {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_SOME_FAILED)
