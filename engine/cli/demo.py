"""``engine demo``: the whole loop on built-in synthetic data."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.text import Text

from engine.cli.common import parse_size, stderr, stdout
from engine.demo import (
    DEMO_CROP,
    EFFECT_TITLE,
    DemoConfig,
    base_line,
    effect_lines,
    format_duration,
    scores_table,
)
from engine.pretrain import PretrainConfig

app = typer.Typer()
_D = DemoConfig()  # the options' defaults are the config's
_P = PretrainConfig()


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("demo_out"), help="Folder for everything the demo writes."),
    class_name: list[str] = typer.Option(
        ["Bicycle", "Car"], "--class", help="New class (repeatable): Bicycle and/or Car."
    ),
    size: str = typer.Option("x".join(map(str, _D.size)), help="Synthetic image size WxH."),
    train: int = typer.Option(_D.train, min=1, help="Synthetic training images."),
    val: int = typer.Option(_D.val, min=0, help="Synthetic validation images."),
    test: int = typer.Option(_D.test, min=1, help="Synthetic test images (the annotated subset)."),
    iters: int = typer.Option(_D.iters, min=1, help="Training steps of the tiny MaSSFormer."),
    batch_size: int = typer.Option(
        _D.batch_size, min=1, help="Images per training step; 2 per training process at least."
    ),
    crop: int | None = typer.Option(
        None,
        min=32,
        show_default=False,
        help=f"Training crop side in pixels (default: {DEMO_CROP}, or the scenes' long side x 5/4 "
        "where smaller); at most that side (training resizes the scenes up to it).",
    ),
    seed: int = typer.Option(
        _D.seed, min=0, help="Seed of scenes, simulated labeler and training."
    ),
    detector: str = typer.Option(
        "", help="Grounding DINO id or directory: label with real models instead of SIMULATED."
    ),
    segmenter: str = typer.Option("", help="SAM id, directory or .pth (with --detector)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N."),
    pseudo_form: str = typer.Option(
        _D.pseudo_form, help="Pseudo-pixel weighting: origin | reversed | flat | precise."
    ),
    class_crop_prob: float = typer.Option(
        _D.class_crop_prob,
        min=0.0,
        max=1.0,
        help="Share of training crops centred on a new-class pixel.",
    ),
    init: str = typer.Option(
        _D.init,
        help="Start training from: builtin (the 7-class stand-in for the released model, "
        "engine demo-pretrain), none (from scratch) or a checkpoint path.",
    ),
    processes: int = typer.Option(
        _D.processes, min=0, help="Training processes splitting each batch (CPU); 0: one per core."
    ),
    threads: int = typer.Option(
        _D.threads, min=0, help="Torch CPU threads per training process; 0: sized to the cores."
    ),
    guided_filter: bool = typer.Option(
        _D.guided_filter,
        "--guided-filter",
        help="Also predict with the guided filter (engine predict --guided-filter; not the "
        "release's inference) and add its model row to each class's table.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """The whole loop on built-in synthetic data: synth -> label (SIMULATED Grounded-SAM unless
    --detector/--segmenter) -> fuse -> train -> predict -> compare -> report."""
    from engine.demo import run_demo

    cfg = DemoConfig(  # crop None: DemoConfig sizes it to the scenes, as for a library caller
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
        pseudo_form=pseudo_form,
        class_crop_prob=class_crop_prob,
        init=init,
        processes=processes,
        threads=threads,
        guided_filter=guided_filter,
        progress=progress,
    )
    result = run_demo(
        cfg,
        log=lambda line: stderr.print(Text(line, style="bold")),
        note=lambda line: stderr.print(Text(f"note: {line}.", style="yellow")),
    )
    _print_demo(result, cfg.simulated)


def _print_demo(result, simulated: bool) -> None:
    classes = {name: result.rows(name) for name in result.reports}
    title = "New-class scores on the annotated test subset"
    stdout.print(scores_table(classes, title, simulated))
    from engine.demo import MODEL
    from engine.report import interval_lines

    for name in result.reports:  # how sure the model's deltas are, over so few images
        model = [r for r in result.reports[name]["table4"] if r["kind"] == MODEL]
        for line in interval_lines(model):
            stdout.print(f"{name}: {line}", highlight=False, soft_wrap=True)
    if result.base_classes:  # what joint training kept of the base classes
        stdout.print(base_line(result.base_classes), highlight=False, soft_wrap=True)
    if result.effect:  # the targets, as summary.json answers them
        stdout.print(f"{EFFECT_TITLE}:", highlight=False)
        for line in effect_lines(result.effect):
            stdout.print(line, highlight=False, soft_wrap=True)
    width = max([20, *(len(key) + 1 for key in result.paths)])
    for key, path in result.paths.items():
        stdout.print(f"  {key:<{width}} {path}", soft_wrap=True)
    stdout.print(f"  {'wall time':<{width}} {format_duration(result.wall_seconds)}")


@app.command("demo-pretrain")
def demo_pretrain_cmd(
    out: Path = typer.Option(Path("demo_pretrain"), help="Folder for scenes, run and checkpoint."),
    images: int = typer.Option(_P.images, min=1, help="Synthetic training scenes (7 classes)."),
    size: str = typer.Option("x".join(map(str, _P.size)), help="Scene size WxH."),
    seed: int = typer.Option(_P.seed, min=0, help="Seed of the scenes and the training."),
    iters: int = typer.Option(_P.iters, min=1, help="Training steps."),
    batch_size: int = typer.Option(
        _P.batch_size, min=1, help="Images per training step; 2 per training process at least."
    ),
    lr: float = typer.Option(_P.lr, help="AdamW base learning rate (> 0)."),
    backbone_norm: str = typer.Option(
        _P.backbone_norm,
        help="Backbone BatchNorms: frozen (identities from scratch) | batch (trainable; keep the "
        "lr at most 1e-3, docs/model.md).",
    ),
    processes: int = typer.Option(
        _P.processes, min=0, help="Training processes splitting each batch (CPU); 0: one per core."
    ),
    threads: int = typer.Option(
        _P.threads, min=0, help="Torch CPU threads per training process; 0: sized to the cores."
    ),
    device: str = typer.Option(_P.device, help="auto | cpu | cuda | cuda:N."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Rebuild the demo's built-in start checkpoint: the tiny MaSSFormer trained on the 7 MaSS13K
    classes of synthetic scenes (the demo's stand-in for the released model; no new-class label
    is read). Resumable; about 90 minutes on 2 CPU cores with the defaults."""
    from engine.pretrain import pretrain

    cfg = PretrainConfig(
        out=out,
        images=images,
        size=parse_size(size),
        seed=seed,
        iters=iters,
        batch_size=batch_size,
        lr=lr,
        backbone_norm=backbone_norm,
        processes=processes,
        threads=threads,
        device=device,
        progress=progress,
    )
    path = pretrain(cfg)
    stdout.print(
        f"wrote {path}: use it with engine demo --init {shlex.quote(str(path))}", soft_wrap=True
    )
