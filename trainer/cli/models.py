"""``engine convert-massformer`` and ``engine models``: the released checkpoint converted
(either way) and the model presets listed."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli.common import parse_size, stdout
from trainer.cli.app import app


@app.command("convert-massformer")
def convert_massformer_cmd(
    checkpoint: Path = typer.Argument(
        ..., help="The authors' mmseg MaSSFormer-R50 .pth (with --to-release: an engine .pt)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Engine checkpoint to write (.pt; with --to-release: the .pth)."
    ),
    to_release: bool = typer.Option(
        False,
        "--to-release",
        help="The other way: an engine massformer_r50 checkpoint into the release's format.",
    ),
) -> None:
    """Convert the released MaSSFormer-R50 checkpoint (xiechenxi99/MaSS13K) into an engine
    checkpoint (massformer_r50, MaSS13K taxonomy) for engine predict and engine train --init;
    with --to-release, an engine one back into the release's format (its test and train
    scripts)."""
    if to_release:
        from trainer.release_export import export_massformer, release_config_lines

        done = export_massformer(checkpoint, out)
        stdout.print(
            f"wrote {done.out}: the release's format, {done.num_tensors} tensors, "
            f"{done.num_classes} classes ({', '.join(done.classes)}); in the release's "
            "configs set:",
            highlight=False,
            soft_wrap=True,
        )
        for line in release_config_lines(done.classes, done.palette):
            stdout.print(f"  {line}", highlight=False, soft_wrap=True)
        return
    from trainer.convert import convert_massformer

    result = convert_massformer(checkpoint, out)
    stdout.print(
        f"wrote {result.out}: massformer_r50, {result.num_tensors} tensors, "
        f"{result.num_parameters:,} parameters, {result.num_classes} classes "
        f"({', '.join(result.classes)})",
        highlight=False,
        soft_wrap=True,
    )


@app.command("models")
def models_cmd(
    macs: str = typer.Option(
        None, "--macs", help="Also count MACs of one forward pass at this input size WxH."
    ),
    num_classes: int = typer.Option(7, "--num-classes", min=1, help="K classes (MaSS13K: 7)."),
) -> None:
    """List the model presets with their exact parameter counts (and MACs at --macs WxH)."""
    from trainer.models.summary import summarize_presets

    size = parse_size(macs, "--macs") if macs else None
    for row in summarize_presets(num_classes=num_classes, macs_size=size):
        line = (
            f"{row.name:<21} {row.params:>11,} params ({row.params / 1e6:.2f}M, "
            f"{row.trainable:,} trainable)"
        )
        if row.macs is not None:
            line += f"  {row.macs / 1e9:9.1f} GMACs @ {size[0]}x{size[1]}"
        stdout.print(line, highlight=False, soft_wrap=True)  # one line per preset
