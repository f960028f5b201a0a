"""``engine train``: its options, the joint-training options refused where they do nothing,
and the last validation's scores printed."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli.common import (
    EXIT_IO_ERROR,
    EXIT_NO_MEMORY,
    disk_error,
    disk_remedy,
    error_text,
    interrupted,
    out_elsewhere,
    parse_size,
    process_limit,
    stderr,
    stdout,
    worker_died,
)
from engine.devices import env_int
from engine.text import counted, score_cells
from trainer.cli.app import app


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
