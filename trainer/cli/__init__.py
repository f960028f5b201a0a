"""``engine models``, ``engine train`` and ``engine predict``: the model's commands."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli.common import (
    EXIT_IO_ERROR,
    EXIT_NO_MEMORY,
    EXIT_SOME_FAILED,
    SizeFormError,
    disk_error,
    disk_remedy,
    error_text,
    interrupted,
    one_split,
    out_elsewhere,
    parse_scales,
    parse_size,
    process_limit,
    stderr,
    stdout,
    worker_died,
)
from engine.devices import env_int
from engine.text import counted, score_cells

app = typer.Typer()


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


def _check_joint_options(
    data: str, pseudo_form: str | None, class_crop_prob: float | None, all_precise: bool
) -> None:
    """Refuse joint-training options where they would do nothing: on a dataset without new
    classes (every pixel is precise, no crop has a new class to centre on), and
    ``--pseudo-form`` with ``--all-precise`` (no pixel is a pseudo pixel); a ``--pseudo-form``
    that is none, by its option's name (the config's error named ``pseudo_form``)."""
    if pseudo_form is not None:
        from trainer.losses.targets import PSEUDO_FORMS

        if pseudo_form not in PSEUDO_FORMS:
            raise ValueError(f"--pseudo-form {pseudo_form}: not one of {', '.join(PSEUDO_FORMS)}")
    given = [
        option
        for option, value in (
            ("--pseudo-form", pseudo_form),
            ("--class-crop-prob", class_crop_prob),
            ("--all-precise", all_precise or None),
        )
        if value is not None
    ]
    if not given:
        return
    from engine.datasets import load_spec

    if not any(c.parent is not None for c in load_spec(data).taxonomy):
        raise ValueError(
            f"{', '.join(given)}: {data} has no new class (not an engine fuse output), so "
            "every pixel trains as precise and no crop has a new class to centre on"
        )
    if all_precise and pseudo_form is not None:
        raise ValueError("--pseudo-form weighs pseudo pixels; with --all-precise there are none")


@app.command("train")
def train_cmd(
    data: Path = typer.Option(
        None,
        "--data",
        help="Dataset root or spec (MaSS13K layout or fused); required unless --resume (the "
        "run's).",
    ),
    preset: str = typer.Option(
        None,
        "--preset",
        help="Model preset: massformer_r50 (default) | massformer_lite_r18 | tiny.",
    ),
    config: Path = typer.Option(None, "--config", help="Training config YAML (strict keys)."),
    out: Path = typer.Option(None, "--out", help="Run directory (default runs/train/run)."),
    iters: int = typer.Option(
        None,
        "--iters",
        min=1,
        help="Optimizer steps (default 80,000; a resume: the run's own plan).",
    ),
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        min=1,
        help="Images per step over all GPUs and accumulation (default 16).",
    ),
    crop: int = typer.Option(
        None, "--crop", min=32, help="Square training crop side (default 1024)."
    ),
    device: str = typer.Option(None, "--device", help="auto (default) | cpu | cuda | cuda:N."),
    backbone_weights: str = typer.Option(
        None,
        "--backbone-weights",
        help="auto (default: torchvision for the ResNet presets, none for tiny or with --init) "
        "| torchvision | PATH | none.",
    ),
    backbone_norm: str = typer.Option(
        None,
        "--backbone-norm",
        help="Backbone BatchNorms: frozen (default, as released) | batch (trainable: from "
        "scratch; keep the config's lr at most 1e-3, docs/model.md).",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/last.pt exactly."),
    init: Path = typer.Option(
        None,
        "--init",
        help="Start from this checkpoint (ours or converted); the class head grows for new classes.",
    ),
    val_every: int = typer.Option(
        None,
        "--val-every",
        min=0,
        help="Validate every N steps and at the end (default 5,000; 0: only at the end).",
    ),
    val_split: str = typer.Option(
        None, "--val-split", help="Labelled split validated on (default val); none: no validation."
    ),
    val_size: str = typer.Option(
        None, "--val-size", help="Validation inference size WxH (default 4096x3072)."
    ),
    num_workers: int = typer.Option(
        None, "--workers", min=0, help="DataLoader workers per rank (default min(4, cores - 1))."
    ),
    threads: int = typer.Option(
        None,
        "--threads",
        min=1,
        help="Torch CPU threads (default on CPU: cores - max(1, workers)).",
    ),
    processes: int = typer.Option(
        None,
        "--processes",
        min=0,
        help="CPU: local processes splitting each batch (DDP, 1 thread each; default 1); 0: one "
        "per core.",
    ),
    pseudo_form: str = typer.Option(
        None,
        "--pseudo-form",
        help="Pseudo-pixel weighting: origin (default) | reversed | flat | precise.",
    ),
    class_crop_prob: float = typer.Option(
        None,
        "--class-crop-prob",
        min=0.0,
        max=1.0,
        help="Share of crops centred on a new-class pixel (default 0.5).",
    ),
    all_precise: bool = typer.Option(
        False, "--all-precise", help="Read no source maps: train every pixel as precise."
    ),
    val_subset: list[Path] = typer.Option(
        None,
        "--val-subset",
        help="Annotated subset dir (engine annotate) scoring its new class; repeatable.",
    ),
    progress: bool = typer.Option(
        None, "--progress/--no-progress", help="Show a progress bar (default on)."
    ),
) -> None:
    """Train MaSSFormer (jointly on fused labels, or on plain MaSS13K). Under torchrun: DDP.

    An option left out takes the --config file's value, else the default its help names; a
    --resume without --config, the run's own (config.json)."""

    from annotations.fileio import read_jsonl
    from engine.runlock import check_not_in_use
    from trainer.config import (
        TrainConfig,
        check_drawn_rule,
        config_from,
        read_config_file,
        recorded_settings,
        resumed_iters,
    )
    from trainer.spawn import leave_process_group
    from trainer.train import SKIPPED_LOG, owns_run, train

    if config is not None:
        # resume is this call's (--resume): a resumed run's config.yaml records "resume: true",
        # and fed back to reproduce the run it looked for NEW/last.pt ("checkpoint not found")
        file, where = read_config_file(config), str(config)
        file.pop("resume", None)
    elif resume:  # the run's own settings: --resume needs no other option
        if owns_run():  # a run still starting holds no record yet: "--data is required" misled
            check_not_in_use(TrainConfig.out if out is None else out)
        file, where = recorded_settings(TrainConfig.out if out is None else out)
    else:
        file, where = {}, "config"
    cfg = config_from(
        file,
        where,
        data=None if data is None else str(data),
        preset=preset,
        out=None if out is None else str(out),
        iters=iters,
        batch_size=batch_size,
        device=device,
        backbone_weights=backbone_weights,
        backbone_norm=backbone_norm,
        init=None if init is None else str(init),
        resume=resume or None,
        val_every=val_every,
        val_split=None if val_split is None else ("" if val_split.lower() == "none" else val_split),
        val_size=None if val_size is None else parse_size(val_size, "--val-size"),
        num_workers=num_workers,
        threads=threads,
        processes=processes,
        all_precise=all_precise or None,
        val_subsets=[str(p) for p in val_subset] if val_subset else None,
        progress=progress,
    )
    if not cfg.data:
        why = ""
        if resume and config is None:
            found = Path(where).is_file()
            why = f" ({where} records none)" if found else f" (no {where}: is --out the run?)"
        raise ValueError(f"--data is required: the dataset root or spec to train on{why}")
    if resume and config is None and data is None and not Path(cfg.data).exists():
        raise FileNotFoundError(
            f"{where}: the run's dataset {cfg.data} is not found, from here nor beside the run "
            "where it was (moved?); give its root or spec with --data"
        )
    cfg.iters = resumed_iters(cfg, iters is not None or "iters" in file)
    # an option that would shape nothing; not --val-size, the size engine predict infers at
    # from the checkpoint (said unused before, and a 256x192 model then predicted at 4096x3072)
    notes = []  # said by train() once every check passed, and kept in metrics.jsonl
    if not cfg.val_split and not cfg.val_subsets and val_every:
        # said, not refused: "--val-split none" is what a missing split's error offers
        notes.append(
            "--val-every: not used, nothing is validated (--val-split none, no --val-subset)"
        )
    _check_joint_options(cfg.data, pseudo_form, class_crop_prob, all_precise)
    if crop is not None:
        cfg.augment.crop = crop
    if class_crop_prob is not None:
        cfg.augment.class_crop_prob = class_crop_prob
    if pseudo_form is not None:
        from trainer.losses import DecouplingConfig

        d = cfg.loss.decoupling
        cfg.loss.decoupling = DecouplingConfig(**{**d.__dict__, "pseudo_form": pseudo_form})
    if not cfg.resume:  # a run started before this check resumes as it was recorded
        check_drawn_rule(cfg, where, pseudo_form is not None, all_precise)
    # a value the config file set is named by its file and key, not as the option it can also
    # be given as (before, a file's "augment: {crop: 8}" read "--crop 8 (augment.crop)"); train()
    # checks them (a plain --resume's record is not the user's file: --val-size is named then)
    set_by_file = {
        "augment.crop": crop is None and "crop" in (file.get("augment") or {}),
        "device": device is None and "device" in file,
        "val_size": val_size is None and "val_size" in file and config is not None,
    }
    from_file = {key: where for key, given in set_by_file.items() if given}

    def show_init(report) -> None:
        for line in report.summary():
            stdout.print(line, highlight=False, soft_wrap=True)

    start_over = "run the same command again to start over (no checkpoint was saved yet)"

    def resume_hint(step: int | None = None) -> str:
        last = Path(cfg.out) / "last.pt"
        if step is not None:  # a SIGTERM: the run saved the step it stopped at
            return f"add --resume to continue from {last} (step {step:,})"
        if last.is_file():
            return f"add --resume to continue from {last}"
        return "no checkpoint was saved yet; run the same command again to start over"

    try:
        result = train(cfg, on_init=show_init, from_file=from_file, notes=notes)
    except KeyboardInterrupt as e:
        text, code = interrupted()
        stderr.print(f"{text}: {resume_hint(getattr(e, 'step', None))}", soft_wrap=True)
        raise typer.Exit(code) from None
    except RuntimeError as e:
        from engine import stopping

        if stopping.received() and "DataLoader worker" in str(e):
            # a SIGTERM to the whole process group ended the loader's workers mid-step: the
            # step in progress is not saved (the model may be half updated), the last one is
            text, code = interrupted()
            stderr.print(
                f"{text}, which also ended the data loader: {resume_hint()}", soft_wrap=True
            )
            raise typer.Exit(code) from None
        if worker_died(e) is None:
            raise
        # a loader worker or a rank killed (out of memory?): the last checkpoint is whole
        then = resume_hint() if (Path(cfg.out) / "last.pt").is_file() else start_over
        stderr.print(process_limit(e, then), soft_wrap=True)
        raise typer.Exit(EXIT_NO_MEMORY) from None
    except OSError as e:  # a full or read-only disk: the last checkpoint written is whole
        if not disk_error(e):
            raise
        if (Path(cfg.out) / "last.pt").is_file():
            then = f", then {resume_hint()}"
        else:  # "make room, then no checkpoint was saved yet; ..." was no sentence
            then = f" and {start_over}"
        stderr.print(
            error_text(e) + f"; {disk_remedy(e)}{then}{out_elsewhere(e, {'out': out})}",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_IO_ERROR) from None
    leave_process_group()  # under torchrun: every rank together, before its process exits
    if env_int("RANK", 0) != 0:  # under torchrun only rank 0 reports (RANK=00 is rank 0)
        return
    if result.finished:
        drew = "drew its missing curves.png, nothing else to do" if result.redrawn else ""
        stdout.print(
            f"{cfg.out}: the run finished at step {result.step:,}; {drew or 'nothing to do'} "
            "(a larger --iters extends it)",
            highlight=False,
            soft_wrap=True,
        )
        return
    stdout.print(f"trained {counted(result.step, 'step')}; checkpoint {result.last_checkpoint}")
    if result.step < cfg.iters:  # max_steps_this_run: before, a short call read as a whole run
        stdout.print(
            f"stopped at step {result.step:,} of {cfg.iters:,} (max_steps_this_run "
            f"{cfg.max_steps_this_run:,}): {resume_hint()}",
            highlight=False,
            soft_wrap=True,
        )
    skipped = Path(cfg.out) / SKIPPED_LOG
    if records := read_jsonl(skipped):
        stdout.print(
            f"{counted(len(records), 'unreadable image')} left out (listed in {skipped})",
            highlight=False,
            soft_wrap=True,
        )
    if result.val:
        v = result.val[-1]
        _print_val(v)


def _print_val(v: dict) -> None:
    """The last validation: the split's means (new classes marked as scored against their pseudo
    labels on a fused dataset), then each annotated subset's class."""
    if "mIoU" not in v:  # no validation split (--val-split none): the subsets alone
        pass
    elif v["mIoU"] is None:
        stdout.print("val: nothing to score")
    else:
        miou, mbiou, mbf1 = score_cells({"iou": v["mIoU"], "biou": v["mBIoU"], "bf1": v["mBF1"]})
        left_out = f"  ({len(v['skipped'])} unreadable left out)" if v.get("skipped") else ""
        stdout.print(f"val: mIoU {miou}  mBIoU {mbiou}  mBF1 {mbf1}{left_out}")
    for c in v.get("classes", []):
        if c.get("vs") and c.get("iou") is None and v.get("mIoU") is not None:
            # said, not left out: a val split without the new class (silent before)
            stdout.print(
                f"  {c['name']} vs {c['vs']}: n/a (no {c['name']} pixel in the validation "
                "labels nor in the predictions)"
            )
        elif c.get("vs") and c.get("iou") is not None:
            iou, biou, bf1 = score_cells(c)
            stdout.print(
                f"  {c['name']} vs {c['vs']}: IoU {iou}  BIoU {biou}  BF1 {bf1} "
                "(agreement with the labeler, not quality)"
            )
    for sub in v.get("subsets", []):
        if sub.get("iou") is None:
            stdout.print(f"  {sub['class']} vs annotated subset: nothing to score")
            continue
        iou, biou, bf1 = score_cells(sub)
        left_out = f", {len(sub['skipped'])} unreadable left out" if sub.get("skipped") else ""
        stdout.print(
            f"  {sub['class']} vs annotated subset ({counted(sub['images'], 'image')}{left_out}): "
            f"IoU {iou}  BIoU {biou}  BF1 {bf1}"
        )


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
