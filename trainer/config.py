"""The training run's typed configuration, its strict YAML loading, and the learning-rate schedule."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotations.fileio import (
    YAML11_BOOLS,
    did_you_mean,
    read_json,
    read_yaml,
    recorded_root,
    typed_from,
)
from annotations.numbers import MAX_IMAGE_SIDE, check_numbers, is_whole
from engine.runinfo import (
    config_cwd,
    cpu_cores,  # noqa: F401 - sizes processes, threads, workers here
)
from trainer.data import AugmentConfig
from trainer.losses import DecouplingConfig, LossConfig
from trainer.models.config import check_backbone_norm


@dataclass
class TrainConfig:
    """One training run. Defaults are the published MaSSFormer recipe (DESIGN section 4)."""

    data: str = ""  # dataset root or spec file (MaSS13K layout or a fused dataset)
    out: str = "runs/train/run"  # run directory (config, metrics.jsonl, checkpoints)
    preset: str = "massformer_r50"  # model preset: massformer_r50 | massformer_lite_r18 | tiny
    backbone_weights: str = "auto"  # "auto" (torchvision for ResNet presets, none for tiny and with init) | "torchvision" | PATH | "none"
    backbone_norm: str = "frozen"  # backbone BatchNorms: "frozen" (statistics and affine kept, as released: from ImageNet or the init checkpoint) | "batch" (trainable: a backbone trained from scratch)
    init: str | None = None  # start from this checkpoint (ours/converted); see trainer.init
    train_split: str = "train"  # split trained on
    all_precise: bool = False  # read no source maps: every pixel trains as precise (a dataset with new classes must otherwise have sources/<split>/)
    val_split: str | None = "val"  # split validated on; None or "" disables validation
    iters: int = 80000  # optimizer steps in the whole run
    batch_size: int = 16  # images per optimizer step over all ranks and accumulation steps (published: 4 GPUs x 4)
    accum_steps: int = 1  # gradient accumulation: micro-batches per optimizer step
    lr: float = 3e-4  # AdamW base learning rate
    backbone_lr_mult: float = 0.1  # backbone learning rate = lr x this
    freeze_bn_stats: bool = False  # BatchNorms outside the backbone normalise with their running statistics and keep them (eval mode) while training: fine-tuning a trained model on a few images per process (the backbone's are always frozen)
    weight_decay: float = 0.05  # AdamW weight decay (0 on norm layers, embeddings and queries)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    grad_clip: float = (
        0.01  # max total gradient L2 norm (the published Mask2Former/MaSSFormer value); 0: off
    )
    warmup_iters: int = 0  # linear warmup steps before the cosine decay
    min_lr_ratio: float = 0.0  # the cosine decays to lr x this
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)
    seed: int = 0  # seeds model init, the data stream and the loss's point sampling
    num_workers: int = -1  # DataLoader worker processes per rank; -1: min(4, CPU cores - 1)
    threads: int = 0  # torch CPU threads while training; 0: on CPU, cores - max(1, workers) (>= 1)
    processes: int = 1  # CPU only: local DDP ranks splitting each batch (trainer.spawn), one thread each by default; 0: one per core
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # data augmentation
    loss: LossConfig = field(default_factory=LossConfig)  # loss weights, sampling, label decoupling
    val_every: int = 5000  # validate every N steps and at the end; 0: only at the end
    val_size: tuple[int, int] | None = (
        4096,
        3072,
    )  # validation inference size (W, H), aspect kept; None: original size
    val_sliding_window: bool = False  # validate with sliding-window inference
    val_max_images: int = 0  # validate on the first N images only; 0: all
    val_subsets: list[str] = field(
        default_factory=list
    )  # annotated subset dirs (engine annotate): their new class scored against the annotations
    checkpoint_every: int = 1000  # refresh last.pt every N steps (and at the end)
    keep_every: int = 10000  # also keep step_NNNNNNN.pt every N steps (and last.pt); 0: never
    log_every: int = 20  # write a metrics.jsonl line every N steps
    progress: bool = True  # rich progress bar (rank 0 only)
    resume: bool = False  # continue from <out>/last.pt
    max_steps_this_run: int = (
        0  # stop after this many steps in this call (0: run to iters); resume later
    )
    ddp_find_unused: bool = False  # DistributedDataParallel(find_unused_parameters=...)

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = from_dict(AugmentConfig, self.augment, "augment")
        if isinstance(self.loss, dict):
            self.loss = from_dict(LossConfig, self.loss, "loss")
        if self.val_size is not None:
            # as --val-size's bound: a config's 9223372036854775808x64 failed in numpy; a
            # caller's [nan, 1] said Python's "cannot convert float NaN to integer", and
            # [2.5, 64] was taken as 2x64
            sides = list(self.val_size)
            if len(sides) != 2 or not all(is_whole(v) and 1 <= v <= MAX_IMAGE_SIDE for v in sides):
                raise ValueError(
                    "val_size must be WxH with both sides 1 to "
                    f"{MAX_IMAGE_SIDE:,} pixels, got {'x'.join(map(str, sides))}"
                )
            self.val_size = tuple(int(v) for v in sides)  # type: ignore[assignment]
        if isinstance(self.val_split, str) and self.val_split.strip().lower() == "none":
            self.val_split = ""  # as --val-split none: a config's "val_split: none" was a split
        self.betas = tuple(float(v) for v in self.betas)  # type: ignore[assignment]
        check_backbone_norm(self.backbone_norm)
        if len(self.betas) != 2:  # one was an IndexError traceback from torch's AdamW
            raise ValueError(f"betas must be two numbers, got {list(self.betas)}")
        if not all(0.0 <= b < 1.0 for b in self.betas):  # torch's words named no file
            raise ValueError(f"betas must be in [0, 1), got {list(self.betas)}")
        # a file's .inf is refused by _typed; a caller's (engine demo-pretrain --lr inf) wrote
        # the scenes, then failed as "not JSON compliant". By value, not by the field's type
        # string ("float", not "float | None"): TrainConfig(log_every=nan) logged nothing
        check_numbers(self)
        # a nested config's too, where the caller changed one after building it
        check_numbers(self.augment, "augment: ")
        check_numbers(self.loss, "loss: ")
        check_numbers(self.loss.decoupling, "loss.decoupling: ")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.processes < 0:
            raise ValueError(f"processes must be >= 0 (0: one per CPU core), got {self.processes}")
        for name in ("iters", "batch_size", "accum_steps"):  # which one, and its value
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.accum_steps:
            raise ValueError(
                f"batch_size {self.batch_size} is not divisible by accum_steps {self.accum_steps}"
            )
        if not 0 <= self.warmup_iters < self.iters:
            raise ValueError(f"warmup_iters must be in 0..iters-1, got {self.warmup_iters}")
        for name, low in _LOWEST.items():  # e.g. log_every 0 divided by zero mid-run
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in 0..1, got {self.min_lr_ratio}")
        if self.seed > 2**32 - 1:  # numpy's generators: "Seed must be between 0 and 2**32 - 1"
            raise ValueError(f"seed must be <= 4294967295 (2**32 - 1), got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def plain(value: Any) -> Any:
    """Tuples -> lists, as the value reads back from a checkpoint or YAML (``config.json``):
    a config compared with a recorded one is compared in that form."""
    return json.loads(json.dumps(value))


# the smallest value of TrainConfig's counts (-1: num_workers' "auto"; 0: threads' "auto",
# "never" or "all" for the others)
_LOWEST = {
    "num_workers": -1,
    "threads": 0,
    "val_every": 0,
    "val_max_images": 0,
    "checkpoint_every": 1,
    "keep_every": 0,
    "log_every": 1,
    "max_steps_this_run": 0,
    "grad_clip": 0,
    "weight_decay": 0,
    "backbone_lr_mult": 0,
    "seed": 0,  # numpy's generators take 0..2**32-1: -1 failed after the run's files were written
}


def _typed(kind: Any, value: Any, name: str, where: str) -> Any:
    """``value`` checked against the field type ``kind`` (bool, int, float, str, an optional
    one, a tuple or list of them), so that a mistyped value is an error naming its key where it
    failed deep in the run with Python's words (``'>' not supported between 'str' and 'int'``,
    a traceback for ``augment: 64``). A number written ``3e-3`` (a string to YAML 1.1, whose
    floats need a dot) is read as the number, ``yes``/``no``/``on``/``off`` (YAML 1.1's
    booleans) as booleans, and ``val_size`` takes ``WxH`` as
    ``--val-size`` does."""
    args = typing.get_args(kind)
    if type(None) in args:  # X | None
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
        args = typing.get_args(kind)
    origin = typing.get_origin(kind)
    if name == "val_size" and isinstance(value, str) and re.fullmatch(r"\d+x\d+", value):
        value = [int(v) for v in value.split("x")]
    if origin in (tuple, list):
        n = len(args) if origin is tuple else None
        if not isinstance(value, list | tuple) or (n is not None and len(value) != n):
            size = f"{n} " if n else ""
            raise ValueError(f"{where}: {name} must be a list of {size}values, got {value!r}")
        return origin(_typed(args[0], v, name, where) for v in value)
    if kind is bool and isinstance(value, bool) or kind is str and isinstance(value, str):
        return value
    if kind is bool and isinstance(value, str) and value.lower() in YAML11_BOOLS:
        return YAML11_BOOLS[value.lower()]  # `amp: yes`: strings to our YAML 1.2 reading
    if kind in (int, float) and not isinstance(value, bool):
        number = value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)
        if kind is float and isinstance(number, int | float):
            if not math.isfinite(number):  # .inf / .nan: "weight_decay: .nan" passed every check
                raise ValueError(f"{where}: {name} must be a finite number, got {value!r}")
            return number
        if kind is int and isinstance(number, int | float) and float(number).is_integer():
            return int(number)
    want = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    raise ValueError(f"{where}: {name} must be {want.get(kind, kind)}, got {value!r}")


def from_dict(cls: type, data: dict[str, Any] | None, where: str = "config") -> Any:
    """Build dataclass ``cls`` from ``data``, recursing into nested config dataclasses; unknown
    keys raise ``ValueError`` naming them and the known ones, a value of another type
    (:func:`_typed`) one naming its key."""
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of keys, got {data!r}")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        hint = did_you_mean(unknown, known)
        raise ValueError(f"{where}: unknown keys {unknown}{hint}; known: {sorted(known)}")
    for name, value in data.items():
        kind = hints.get(name)
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, kind):
                data[name] = from_dict(kind, value, f"{where}.{name}")
        else:
            data[name] = _typed(kind, value, name, where)
    try:
        return cls(**data)
    except (TypeError, ValueError) as e:  # unknown argument types, or a value __post_init__ refuses
        raise ValueError(f"{where}: {e}") from None


# dataclasses nested in TrainConfig, resolvable by typing.get_type_hints
__all__ = ["AugmentConfig", "DecouplingConfig", "LossConfig", "TrainConfig"]


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The settings of a YAML training config file: a mapping (an empty file: none)."""
    loaded = read_yaml(Path(path), "config file")
    if loaded is not None and not isinstance(loaded, dict):
        raise ValueError(f"{Path(path)}: a training config must be a mapping")
    return loaded or {}


def load_config(path: str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file (strict) with top-level ``overrides`` on top
    (values ``None`` are skipped, so CLI options left unset keep the file's values)."""
    if path is None:
        return config_from({}, "config", **overrides)
    return config_from(read_config_file(path), str(Path(path)), **overrides)


def config_from(file: dict[str, Any], where: str, **overrides: Any) -> TrainConfig:
    """:func:`load_config` of a config file's settings already read (``file``, named ``where``
    in errors)."""
    data = {**file, **{k: v for k, v in overrides.items() if v is not None}}
    return from_dict(TrainConfig, data, where)


# What a resume takes from this call rather than from the run's record: where and how this
# machine runs it, and this call's own bookkeeping.
THIS_CALL = ("out", "resume", "progress", "device", "num_workers", "threads", "processes",
             "max_steps_this_run")  # fmt: skip


def recorded_settings(out: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """The settings ``engine train --resume`` without ``--config`` starts from, and their file:
    the run's resolved config (``config.json``) but :data:`THIS_CALL`'s, so that a resume needs
    no option but ``--out`` and ``--resume`` (an option given still wins, ``--data`` for a
    moved dataset, and one that changes training is refused as before). Before, every option the run was started with
    had to be given again: a ``--preset tiny --crop 256`` run resumed without them was refused
    with ten "differs" (the defaults'). No record (a run folder made by hand): none."""
    path = Path(out) / "config.json"
    try:
        recorded = read_json(path, "config.json")["config"]
    except FileNotFoundError:
        return {}, str(path)
    except (KeyError, TypeError):
        raise ValueError(f"{path}: no 'config' mapping; resume with --config FILE") from None
    if not isinstance(recorded, dict):
        raise ValueError(f"{path}: 'config' is not a mapping; resume with --config FILE")
    settings = {k: v for k, v in recorded.items() if k not in THIS_CALL}
    beside = (recorded.get("out"), out)  # typed relative to where the run started, maybe not here
    cwd = config_cwd(out)  # where that was: "data" is the one there, not one here
    if isinstance(data := settings.get("data"), str) and data:
        settings["data"] = str(recorded_root(data, None, beside, cwd))
    for key in ("init", "backbone_weights"):  # a file read at step 0: absolute where it is
        if (found := recorded_file(value := settings.get(key), beside, cwd)) is not None:
            settings[key] = found
        elif names_file(value):  # gone: where it was typed, not a same-named file here
            settings[key] = typed_from(cwd, value)
    if isinstance(subsets := settings.get("val_subsets"), list):  # --val-subset: the same
        settings["val_subsets"] = [
            str(recorded_root(s, None, beside, cwd)) if isinstance(s, str) and s else s
            for s in subsets
        ]
    return settings, str(path)


def recorded_file(value: Any, beside: Any, cwd: str | None) -> str | None:
    """A run's ``init`` or ``backbone_weights`` file as :func:`recorded_root` finds it from
    here (typed from ``cwd``, else beside the run moved or copied), absolute; None where the
    value names no file (``auto``, ``torchvision``, ``none``, a file gone: :func:`recorded_settings`
    then takes it as typed from ``cwd``, absolute; kept relative, a second resume from another
    folder found that folder's same-named file, another one, and recorded it).
    Before the fiftieth round they stayed as typed while a resume from another folder recorded
    its own cwd, so the record named another file (or none) from then on, and a resume given the
    same file under another name was refused (``backbone_weights differs``)."""
    if not names_file(value):
        return None
    found = recorded_root(value, None, beside, cwd)
    return str(found) if found is not None and found.is_file() else None


def names_file(value: Any) -> bool:
    """Whether an ``init`` or ``backbone_weights`` value is a file's path, not a word
    (``auto``, ``torchvision``, ``none``) nor empty."""
    return (
        isinstance(value, str)
        and bool(value)
        and value.lower() not in ("auto", "torchvision", "none")
    )


def resumed_iters(cfg: TrainConfig, named: bool) -> int:
    """The ``iters`` a resume continues to: the one given (``named``: by ``--iters``, or by the
    config file), else the run's own plan, which its ``config.json`` records. Before, a resume
    that named none took the default, 80,000, and a finished 150-step run trained on towards
    it."""
    if not cfg.resume or named:
        return cfg.iters
    try:
        recorded = read_json(Path(cfg.out) / "config.json", "config.json")["config"]["iters"]
    except (OSError, ValueError, KeyError, TypeError):  # no record: train() decides as before
        return cfg.iters
    return recorded if isinstance(recorded, int) and recorded >= 1 else cfg.iters


def check_drawn_rule(
    cfg: TrainConfig, where: str | None = None, pseudo_form: bool = False, all_precise: bool = False
) -> None:
    """Refuse ``loss.decoupling.drawn_rule: contact`` where it would do nothing: it picks the
    drawn edges only ``pseudo_form: origin`` discounts, between pseudo and precise pixels, so
    another form or all-precise training (no source maps) trains as under ``window``; before,
    silently. ``where``: the config file that set it, named first; ``pseudo_form`` and
    ``all_precise``: given as ``--pseudo-form`` and ``--all-precise``, named so. Made by
    :func:`trainer.train.train` on a fresh run (a run recorded before resumes as it was) and by
    ``engine train`` before it; before the fifty-sixth round by the CLI only, and a library
    caller's ``contact`` with ``flat`` trained as ``window``."""
    d = cfg.loss.decoupling
    if d.drawn_rule != "contact":
        return
    rule = "loss.decoupling.drawn_rule contact picks the edges pseudo_form origin discounts"
    rule = rule if where is None else f"{where}: {rule}"
    if d.pseudo_form != "origin":
        said = f"--pseudo-form {d.pseudo_form}" if pseudo_form else f"pseudo_form {d.pseudo_form}"
        raise ValueError(f"{rule}; {said} discounts none by them (drop drawn_rule or use origin)")
    if cfg.all_precise:
        said = "--all-precise" if all_precise else "all_precise: true"
        raise ValueError(f"{rule}; with {said} no pixel is a pseudo pixel (drop drawn_rule)")


def resolve_workers(num_workers: int) -> int:
    """DataLoader workers: ``num_workers`` when >= 0, else ``min(4, cores - 1)`` (1 on a 2-core
    machine, where 4 workers oversubscribe the CPU and torch's DataLoader warns)."""
    return num_workers if num_workers >= 0 else min(4, cpu_cores() - 1)


def resolve_threads(threads: int, workers: int, device_type: str) -> int | None:
    """Torch intra-op threads for training: ``threads`` when > 0; on CPU ``cores - max(1,
    workers)`` (at least 1), so the compute threads, the loader processes and one core's worth of
    anything else do not compete (torch's OpenMP threads spin at barriers: with one core taken
    by another process, 2 threads on 2 cores ran a tiny-model step 5-10x slower than 1 thread);
    None: leave torch's."""
    if threads > 0:
        return threads
    if device_type != "cpu":
        return None
    return max(1, cpu_cores() - max(1, workers))


def lr_factor(step: int, iters: int, warmup_iters: int = 0, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based).

    Linear warmup ``(step + 1) / warmup_iters`` for the first ``warmup_iters`` steps, then a
    cosine from 1 at ``warmup_iters`` down toward ``min_lr_ratio`` at ``iters``.
    """
    if step < warmup_iters:
        return (step + 1) / warmup_iters
    span = max(1, iters - warmup_iters)
    t = min(1.0, (step - warmup_iters) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
