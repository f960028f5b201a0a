"""What the demo refuses before any stage runs: a folder made with other scenes, classes, labeler or
training options (:func:`check_same_data`, :func:`check_same_training`), a batch its processes
cannot split, and a start checkpoint that is missing or not a tiny MaSSFormer
(:func:`start_checkpoint`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.demo.config import BUILTIN, DemoConfig
from engine.text import counted

# Nothing heavy at import time: the CLI reads DemoConfig's defaults when `engine` starts.
if TYPE_CHECKING:
    from engine.synth import SynthConfig


def check_same_data(synth: SynthConfig) -> None:
    """Refuse to resume a demo folder whose scenes were made with other settings
    (``synth.json``, or an interrupted run's ``synth.partial.json``): rendering new scenes over
    them would leave the old scenes' pseudo labels, fused labels and model beside the new
    images."""
    from engine.synth import differences, recorded

    found = recorded(synth.out)
    if found is None:
        return
    path, record = found
    differ = differences(record.get("config") or {}, synth)
    if differ:
        raise ValueError(
            f"{path}: this demo folder was made with other data settings ({'; '.join(differ)}); "
            "rerun with those or give a new --out"
        )


def check_same_classes(fused: Path, classes: Sequence[str]) -> None:
    """Refuse to resume a demo folder whose fused dataset holds other new classes (or the same
    in another order, which gives them other ids): its model and reports are of those classes,
    and fusion would refuse to replace them halfway through the demo."""
    from engine.fusion.run import fused_classes

    held = fused_classes(fused)
    if held is not None and [c.lower() for c in held] != [c.lower() for c in classes]:
        flags = " ".join(f"--class {c}" for c in held)
        raise ValueError(
            f"{fused / 'taxonomy.json'}: this demo folder was made for {' + '.join(held)}, not "
            f"{' + '.join(classes)}; rerun with {flags} or give a new --out"
        )


def check_same_labeler(label: Path, cfg: DemoConfig) -> None:
    """Refuse to resume a demo folder whose pseudo labels were made by the other labeler
    (SIMULATED, or Grounded-SAM with ``--detector``/``--segmenter``; each class's ``run.json``):
    the label stage would label every image again in place, after which the fused labels,
    model and reports made from the old ones no longer match them."""
    from annotations.labelrun import read_run_info

    want = "simulated" if cfg.simulated else "grounded-sam"
    for name in cfg.classes:
        path = label / name.lower() / "run.json"
        try:
            info = read_run_info(path) if path.is_file() else None
        except (OSError, ValueError):
            continue  # the labeler names what is wrong with its run
        if info is None or info.backend in (want, "unknown"):
            continue
        was, config = info.backend, info.record.get("config") or {}
        if was == "simulated":
            made, rerun = "the SIMULATED labeler", "without --detector and --segmenter"
        else:
            models = f"--detector {config.get('detector')} --segmenter {config.get('segmenter')}"
            made, rerun = f"{was} ({models})", f"with {models}"
        now = (
            "the SIMULATED labeler"
            if cfg.simulated
            else f"{want} (--detector {cfg.detector} --segmenter {cfg.segmenter})"
        )
        raise ValueError(
            f"{path}: this demo folder's pseudo labels were made by "
            f"{made}, not {now}; rerun {rerun} or give a new --out"
        )


# The demo's options that its training run records (train/config.json), by the trainer's key
TRAINING_OPTIONS = (
    ("--iters", "iters"),
    ("--batch-size", "batch_size"),
    ("--crop", "augment.crop"),
    ("--class-crop-prob", "augment.class_crop_prob"),
    ("--pseudo-form", "loss.decoupling.pseudo_form"),
    ("--init", "init"),
)


def check_same_training(train_cfg: Any) -> None:
    """Refuse to resume a demo folder whose model was trained with other options, before any
    stage runs, naming the demo's options: the trainer refused only after the stages before
    it, naming settings the demo derives (``warmup_iters`` for ``--iters``,
    ``freeze_bn_stats`` for ``--init``). Nothing is checked without a checkpoint to resume
    (``train_cfg.resume``); what this does not cover (two start checkpoints, which the trainer
    compares by their bytes where the built-in one moved with the install) is left to the
    trainer's own check."""
    out = Path(train_cfg.out)
    if not train_cfg.resume:
        return
    from annotations.fileio import read_json
    from trainer.config import plain

    try:
        recorded = read_json(out / "config.json", "config.json")["config"]
        now = plain(train_cfg.to_dict())
    except (OSError, ValueError, KeyError, TypeError):
        return  # the trainer names what is wrong with the run

    def at(config: Any, key: str) -> Any:
        for part in key.split("."):
            config = config.get(part) if isinstance(config, dict) else None
        return config

    def shown(option: str, value: Any) -> str:
        if option != "--init":
            return str(value)
        if value is None:
            return "none"
        return "builtin" if Path(value).resolve() == BUILTIN.resolve() else str(value)

    differ = []
    for option, key in TRAINING_OPTIONS:
        was, given = at(recorded, key), at(now, key)
        if option == "--init" and was is not None and given is not None:
            continue  # a start checkpoint both: the trainer knows one moved with its install
        if was != given:
            differ.append(f"{option} {shown(option, was)}, not {shown(option, given)}")
    if differ:
        raise ValueError(
            f"{out / 'config.json'}: this demo folder's model was trained with other options "
            f"({'; '.join(differ)}); rerun with those or give a new --out"
        )


def check_batch(cfg: DemoConfig, train_cfg: Any, micro_batch: Callable[..., int]) -> None:
    """Refuse a ``--batch-size`` the training processes cannot split into 2 images each at
    least (``trainer.train.micro_batch``), naming the demo's options: the trainer's own line
    named ``accum_steps`` and ranks, which the demo has no option for."""
    n = train_cfg.processes
    try:
        micro_batch(train_cfg, n)
    except ValueError:
        pass
    else:
        return
    over = f"--processes {n}" if cfg.processes else counted(n, "training process", "processes")
    if cfg.batch_size % n:
        raise ValueError(
            f"--batch-size {cfg.batch_size} cannot be split evenly over {over}: give a multiple "
            f"of {n} from {2 * n} up (--batch-size {2 * n}), or other --processes"
        ) from None
    raise ValueError(
        f"--batch-size {cfg.batch_size} over {over} is {cfg.batch_size // n} image per "
        "process; MaSSFormer needs 2 at least (its pixel decoder has BatchNorms on globally "
        f"pooled features): give --batch-size {2 * n} or more"
    ) from None


def start_checkpoint(cfg: DemoConfig) -> dict[str, Any] | None:
    """What the demo's training starts from: None (from scratch) or ``{"name", "path",
    "classes", "provenance"}`` of the checkpoint, read now so that a missing or foreign file is
    one clear error before any stage runs."""
    path = cfg.init_checkpoint
    if path is None:
        return None
    from trainer.checkpoint import load_checkpoint

    if cfg.init == "builtin" and not path.is_file():
        raise FileNotFoundError(
            f"{path}: the built-in start checkpoint is missing from this install; reinstall, "
            "rebuild it with `engine demo-pretrain`, or pass --init none"
        )
    ckpt = load_checkpoint(path)
    _check_tiny(path, ckpt["model_config"])
    return {
        "name": "the built-in 7-class stand-in" if cfg.init == "builtin" else str(path),
        "path": str(path),
        "classes": [c["name"] for c in ckpt["taxonomy"]["classes"]],
        "provenance": ckpt.get("provenance"),
    }


def _origin(start: dict[str, Any] | None) -> str:
    """Where training starts, for the log and the summary."""
    return "from scratch" if start is None else f"from {start['name']}"


def _check_tiny(path: Path, model_config: dict[str, Any]) -> None:
    """The demo trains the ``tiny`` preset: a checkpoint of another architecture would load only
    in part, so it is refused, naming the first field that differs. The backbone's norm type is
    not compared: both kinds have the same tensors, and the fine-tune keeps the start's norms."""
    from trainer.models import ModelConfig, preset_config

    tiny = dataclasses.asdict(preset_config("tiny"))
    theirs = dataclasses.asdict(ModelConfig.from_dict(model_config))
    for key, want in tiny.items():
        if key not in ("num_classes", "backbone_norm") and theirs[key] != want:
            raise ValueError(
                f"{path}: not a tiny MaSSFormer ({key} {theirs[key]!r}, tiny has {want!r}); "
                "the demo trains the tiny preset"
            )
