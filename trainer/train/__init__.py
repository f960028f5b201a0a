"""The MaSSFormer training loop (``engine train``): AdamW + cosine, bf16 on CUDA, gradient
accumulation, DDP under torchrun, atomic checkpoints with exact resume, periodic validation.

Run directory (written by rank 0 only)::

    config.yaml, config.json   resolved TrainConfig (+ config_hash in config.json)
    environment.json           engine.runinfo.environment() of the first start; under DDP its
                               "distributed": the ranks and machines (trainer.ranks.layout)
    resumes.jsonl              one line per resume: step and environment
    init.json                  with --init: what was loaded, grown and dropped
    metrics.jsonl              {"step", "lr", "loss", "loss_ce", ...} every log_every steps;
                               {"step", "val": {...}} after each validation;
                               {"step", "event": "warning", "message"} for each warning printed
                               (engine info RUN shows them: a nohup run's console is gone)
    curves.png                 loss, learning rate and validation curves (trainer.curves)
    skipped.jsonl              images the run could not read (SkippedLog)
    last.pt, step_NNNNNNN.pt   checkpoints (trainer.checkpoint)
    saved_step.json            last.pt's step, size and time (engine.runinfo.record_saved_step)
    tensorboard/               event files when the tensorboard package is installed

The records (all but the checkpoints and tensorboard/) are engine.runinfo.TRAIN_RUN_RECORDS:
given as a checkpoint, trainer.checkpoint.load_checkpoint names last.pt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn

from annotations.fileio import (
    FUSE_RECORD,
    append_line,
    atomic_copy,
    atomic_write_json,
    atomic_write_text,
    file_bytes,
    first_line,
    json_text,
    read_jsonl,
    typed_from,
)
from annotations.taxonomy import IGNORE_ID, Taxonomy, class_key
from engine import devices, stopping
from engine.datasets import DatasetSpec, SegDataset, image_size, load_spec
from engine.devices import bf16_autocast, env_int, rank_and_world
from engine.progress import make_progress
from engine.runinfo import (
    config_cwd,
    config_hash,
    environment,
    file_sha256,
    record_saved_step,
)
from engine.text import counted, few
from trainer.checkpoint import (
    caller_rng,
    checkpoint_dict,
    load_checkpoint,
    load_weights,
    model_config_of,
    rng_state,
    save_checkpoint,
    set_rng_state,
    torch_defaults,
)
from trainer.config import (
    TrainConfig,
    check_drawn_rule,
    lr_factor,
    plain,
    resolve_threads,
    resolve_workers,
)
from trainer.data import TrainSet, make_loader, rare_new_classes, shm_shortfall, to_device
from trainer.losses import SetCriterion, build_targets
from trainer.models.massformer import MIN_SIDE
from trainer.ranks import RUN_LOCKED_BY_PARENT, layout, peers_error, tell_others
from trainer.ranks import node as _node
from trainer.validate import check_one_subset_per_class, load_subset, subset_warnings

log = logging.getLogger(__name__)

UPSCALE_WARNING = 2.0  # validation resizing images up by this factor or more is warned about


def validation_split(cfg: TrainConfig, spec: DatasetSpec) -> SegDataset:
    """The labelled split ``cfg.val_split`` of the training data (``spec``, read from
    ``cfg.data``), or ``FileNotFoundError`` that says how to go on: a fused dataset made from
    the training split alone has no val labels (its images are the source dataset's, so only
    the labels are missing)."""
    how = ": give another with --val-split, or --val-split none to train without validation"
    try:
        data = SegDataset(spec, cfg.val_split)
    except FileNotFoundError as e:
        # fusing the split adds its labels where the source has its images, not a split it lacks
        folder = spec.image_dir(cfg.val_split)
        fused = (spec.root / FUSE_RECORD).is_file() and folder.is_dir() and any(folder.iterdir())
        raise FileNotFoundError(
            f"{first_line(e)}; validation needs split {cfg.val_split!r} labelled"
            + (f" (engine fuse --split {cfg.val_split} adds it)" if fused else "")
            + how
        ) from e
    if not data.samples:  # validated on nothing, and the run's scores said only so at the end
        raise ValueError(
            f"{spec.image_dir(cfg.val_split)}: split {cfg.val_split!r} has no images to "
            f"validate on{how}"
        )
    return data


def check_val_size(
    data: SegDataset, size: tuple[int, int] | None, where: str | None = None
) -> None:
    """``ValueError`` naming ``--val-size`` when validating at ``size`` makes the split's
    (first) image smaller than the model's :data:`MIN_SIDE` px a side: checked before the
    first step, where it only failed at the first validation, after the training (its
    ``last.pt`` already written, so ``engine info`` read the run as finished). ``where``: the
    config file the value came from, named with its key instead of the option (before, a
    file's ``val_size: 12x9`` read as if ``--val-size 12x9`` had been typed)."""
    if size is None or not data.samples:
        return
    from trainer.inference import own_or_smallest_size, resized_shape

    path = data.samples[0].image_path
    w, h = image_size(path)
    rh, rw = resized_shape(h, w, size)
    if min(rh, rw) >= MIN_SIDE:
        return
    fit = own_or_smallest_size(w, h)
    what = "their own size" if fit == (w, h) else f"the smallest the model takes at {w}x{h}"
    shrinks = f"the {w}x{h} images of split {data.split!r}"
    if where is not None:
        own = f" ({fit[0]}x{fit[1]}: {what})"
        raise ValueError(
            f"{where}: val_size {size[0]}x{size[1]}: it resizes {shrinks} ({path}) to "
            f"{rw}x{rh}; the model needs at least {MIN_SIDE} px per side: set a larger one{own}"
        )
    own = f" (--val-size {fit[0]}x{fit[1]}: {what})"
    raise ValueError(
        f"{path}: --val-size {size[0]}x{size[1]} resizes {shrinks} to {rw}x{rh}; "
        f"the model needs at least {MIN_SIDE} px per side: give a larger --val-size{own}"
    )


# a GPU's own errors, RuntimeErrors too: never taken for a damaged checkpoint on resume
DEVICE_ERRORS = (torch.OutOfMemoryError, *filter(None, [getattr(torch, "AcceleratorError", None)]))
MAX_CROP = 65536  # px a side: a crop's pixels, 4 bytes a channel, already 48 GB of floats


def check_crop(crop: int, where: str | None = None) -> None:
    """``ValueError`` naming ``--crop`` when the training crop is smaller than the model's
    :data:`MIN_SIDE` px a side: checked before any file is written, where the first step failed
    with the model's "images must be at least 32x32" after ``config.yaml`` was written.
    ``where``: the config file the value came from, named with its key instead of the option
    (before, a file's ``augment: {crop: 8}`` read as if ``--crop 8`` had been typed)."""
    if crop < MIN_SIDE:
        given, fix = f"--crop {crop} (augment.crop)", f"give --crop {MIN_SIDE} or more"
        if where is not None:
            given, fix = f"{where}: augment.crop {crop}", f"set it to {MIN_SIDE} or more"
        raise ValueError(f"{given}: the model needs at least {MIN_SIDE} px per side; {fix}")
    if crop > MAX_CROP:  # 1e308 read as a whole number: numpy's OverflowError, a traceback
        shown = f"{crop:.3g}" if crop > 1e9 else f"{crop:g}"
        given, fix = f"--crop {shown} (augment.crop)", f"give --crop {MAX_CROP} or less"
        if where is not None:
            given, fix = f"{where}: augment.crop {shown}", f"set it to {MAX_CROP} or less"
        raise ValueError(f"{given}: at most {MAX_CROP} px per side; {fix}")


def validation_upscale(data: SegDataset, size: tuple[int, int] | None) -> str | None:
    """A one-line warning when validating at ``size`` enlarges the split's (first) image by
    :data:`UPSCALE_WARNING` or more, as the 4096x3072 default does to small images; else None."""
    if size is None or not data.samples:
        return None
    from trainer.inference import own_or_smallest_size, resized_shape

    path = data.samples[0].image_path
    w, h = image_size(path)  # the header only, EXIF orientation applied
    rh, rw = resized_shape(h, w, size)
    if rw < UPSCALE_WARNING * w:
        return None
    fw, fh = own_or_smallest_size(w, h)
    own = "at their own scale" if (fw, fh) == (w, h) else "as near their scale as the model takes"
    return (
        f"{path}: validation resizes the {w}x{h} images of split {data.split!r} to {rw}x{rh} "
        f"({rw / w:.1f}x, --val-size {size[0]}x{size[1]}); pass --val-size {fw}x{fh} to validate "
        f"{own} (engine predict then uses it too)"
    )


if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from trainer.init import InitReport

# Fields that may differ between a run and its resume (they do not change what is computed).
RESUMABLE_CHANGES = {
    "iters", "out", "data", "resume", "progress", "num_workers", "threads", "processes", "device",
    "val_every",
    "val_subsets",
    "val_max_images", "checkpoint_every", "keep_every", "log_every", "max_steps_this_run",
}  # fmt: skip
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


SKIPPED_LOG = "skipped.jsonl"  # images a run could not read, in its run directory


class SkippedLog:
    """Images this rank could not read (:data:`annotations.fileio.UNREADABLE`), each warned about
    once and recorded in ``<out>/skipped.jsonl`` as ``{"step", "rank", "during", "problem"}``;
    a resumed run does not warn again about those already recorded. Training replaces such an
    image with the next readable one (:meth:`trainer.data.TrainSet.__getitem__`), validation
    leaves it out (:mod:`trainer.validate`)."""

    def __init__(self, out: Path, rank: int) -> None:
        self.path, self.rank = out / SKIPPED_LOG, rank
        self.seen = {str(r.get("problem")) for r in read_jsonl(self.path)}

    def note(self, problems: Iterable[str], step: int, during: str) -> None:
        for problem in problems:
            if not problem or problem in self.seen:
                continue
            self.seen.add(problem)
            log.warning("skipped in %s: %s (listed in %s)", during, problem, self.path)
            record = {"step": step, "rank": self.rank, "during": during, "problem": problem}
            append_line(self.path, json.dumps(record))

    def batches(self, loader: Iterable[dict[str, Any]], step: Callable[[], int]) -> Iterator:
        """``loader``'s batches without their ``"skipped"`` entries, noted at ``step()``."""
        for batch in loader:
            texts = batch.pop("skipped")
            self.note((p for text in texts for p in text.split("\n")), step(), "training")
            yield batch


NO_LABEL_BATCHES = 20  # training batches in a row, from a call's first, that warn when unlabelled


def warn_unlabelled(
    batches: Iterable[dict[str, Any]],
    limit: int,
    where: str,
    warn: Callable[[str], None],
) -> Iterator[dict[str, Any]]:
    """``batches`` as they are, with one warning (through ``warn``) when the first ``limit`` of
    them hold no labelled pixel (every label 255, ignore): a model trained on them learns
    nothing, yet the run went on without a word (a dataset whose labels were all 255 trained to
    the end). The labels are looked at on the CPU, before they go to the device."""
    unlabelled = 0
    for batch in batches:
        if 0 <= unlabelled < limit:
            unlabelled = unlabelled + 1 if not bool((batch["label"] != IGNORE_ID).any()) else -1
            if unlabelled == limit:
                warn(
                    f"{where}: the first {counted(limit, 'training batch', 'training batches')} "
                    "of this run hold no labelled pixel (every label is 255, ignore): the model "
                    "learns nothing from them; check the labels"
                )
        yield batch


class RunWarnings:
    """The warnings a training call prints, each also kept in the run's ``metrics.jsonl`` as
    ``{"step", "event": "warning", "message"}``: a run started under nohup or a scheduler, its
    console gone, still says what it warned about (``engine info RUN``). Before, only the
    unreadable images (``skipped.jsonl``) were kept. Warnings said before the run folder is set
    up (a fresh run's stale logs removed, a resume's log cut back to its checkpoint) wait for
    :meth:`open`. The main process's only: the other ranks say none."""

    def __init__(self, out: Path) -> None:
        self.path = out / "metrics.jsonl"
        self.waiting: list[tuple[int, str]] | None = []

    def warn(self, message: str, step: int) -> None:
        log.warning("%s", message)
        if self.waiting is not None:
            self.waiting.append((step, message))
        else:
            self._keep(step, message)

    def open(self) -> None:
        """The run folder is ready: the waiting warnings are written, later ones at once."""
        waiting, self.waiting = self.waiting or [], None
        for step, message in waiting:
            self._keep(step, message)

    def _keep(self, step: int, message: str) -> None:
        record = {"step": step, "event": "warning", "message": message}  # read by engine info
        # json_text: a folder named on a latin-1 system (caf\xe9) escaped, \udce9; as it was
        # (ensure_ascii=False) it had no UTF-8, and a warning naming it stopped the run, exit 2
        append_line(self.path, json_text(record, indent=None))


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient became NaN/inf; the run stopped without writing a checkpoint."""


@dataclass
class TrainResult:
    """What a call to :func:`train` did."""

    out: Path  # run directory
    step: int  # optimizer steps completed in total (including before a resume)
    losses: list[float] = field(default_factory=list)  # total loss of each step run in this call
    last_checkpoint: Path | None = None  # the newest last.pt written
    val: list[dict[str, Any]] = field(default_factory=list)  # validation results, in order
    init: InitReport | None = (
        None  # what --init loaded, grew and dropped (None: no init, or a resume)
    )
    finished: bool = False  # a resume of a run already finished: nothing done, nothing written
    redrawn: bool = False  # ... but its missing curves.png, drawn again


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: backbone (lr x backbone_lr_mult) or not, times decay or not. Parameters of
    norm layers, embeddings and anything named like a query or level embedding get no decay;
    frozen parameters are left out."""
    no_decay: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, NORM_TYPES + (nn.Embedding,)):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
        if any(k in name.split(".")[-1] for k in ("query", "level_embed")):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        leaf = name.split(".")[-1]
        decay = id(p) not in no_decay and "query" not in leaf and "level_embed" not in leaf
        groups.setdefault((name.startswith("backbone."), decay), []).append(p)
    out = []
    for (backbone, decay), params in sorted(groups.items()):
        base = cfg.lr * (cfg.backbone_lr_mult if backbone else 1.0)
        out.append(
            {
                "params": params,
                "lr": base,
                "base_lr": base,
                "weight_decay": cfg.weight_decay if decay else 0.0,
                "name": f"{'backbone' if backbone else 'head'}_{'decay' if decay else 'no_decay'}",
            }
        )
    return out


def _distributed(device_type: str) -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``; initialises the process group under torchrun (and
    ``--processes``): NCCL when the run trains on CUDA, gloo on the CPU, also on a machine that
    has a GPU (NCCL cannot reduce CPU tensors: CPU ranks on a GPU machine failed there)."""
    _, world = rank_and_world()
    local_rank = env_int("LOCAL_RANK", 0)
    if world <= 1:
        return 0, 1, 0
    env_int("LOCAL_WORLD_SIZE", 1, 1)  # read after the group starts (shm, ranks.layout)
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def check_run_folder_shared(last: Path, resume: bool, world: int) -> None:
    """Under DDP every rank reads ``RUN/last.pt`` on a resume, and rank 0 alone writes the run
    folder. Across machines with ``--out`` on each machine's own disk, the ranks of the other
    machines found no checkpoint (``checkpoint not found`` there, a gloo "Connection closed by
    peer" on rank 0) or an old one of their own: every rank now tells the others what it sees,
    one collective, and every rank raises the same one line where they differ. A fresh run is
    decided by rank 0's folder alone (a stale ``last.pt`` on another machine's disk is not
    written over: only rank 0 writes). One process (``world`` 1) is the same check on its own
    view, no collective. Checkpoints are compared by their bytes' hash as well as their size: an
    older checkpoint of the same run has the same size, and ranks resumed from different steps
    would wait on each other's collectives."""
    seen = last.stat().st_size if last.exists() else None
    digest = file_sha256(last) if resume and world > 1 and last.is_file() else None
    views: list[Any] = [(seen, digest, _node())]
    if world > 1:
        views = [None] * world
        dist.all_gather_object(views, (seen, digest, _node()))
    first, first_digest = views[0][0], views[0][1]
    if not resume:
        if first is not None:
            raise FileExistsError(
                f"{last}: a run already exists here; pass --resume or another --out"
            )
        return
    for rank, (size, sha, node) in enumerate(views):
        if (size, sha) == (first, first_digest):
            continue
        what = (
            "does not see it"
            if size is None
            else f"sees one ({size:,} bytes) where rank 0 sees none"
            if first is None
            else f"sees another one ({size:,} bytes, rank 0's {first:,})"
            if size != first
            else "sees another one (other bytes of the same size: another step?)"
        )
        raise FileNotFoundError(
            f"{last}: rank {rank} on {node} {what}; every rank resumes from the run folder, so "
            "under torchrun on several machines --out must be on a filesystem they all share "
            "(the same path on each), or a copy of the run folder on each machine"
        )


def node_shm_shortfalls(
    micro: int, crop: int, workers: int, world: int, local_rank: int
) -> list[str]:
    """:func:`trainer.data.shm_shortfall` of every machine of the run, for rank 0 to warn of:
    each machine's ranks share its ``/dev/shm`` (torchrun and ``--processes`` say how many,
    ``LOCAL_WORLD_SIZE``), so each machine's local rank 0 checks its own, and the others' lines
    name their machine. Before the forty-sixth round rank 0 checked only its own machine: a
    second machine with Docker's 64 MB failed at its first batch, the first with a gloo line."""
    if world <= 1:
        return [w] if (w := shm_shortfall(micro, crop, workers)) else []
    mine = None
    if local_rank == 0:
        local = env_int("LOCAL_WORLD_SIZE", 1, 1)
        mine = shm_shortfall(micro, crop, workers, local)
    found: list[Any] = [None] * world
    dist.all_gather_object(found, (mine, _node()))
    nodes = {node for _, node in found}
    return [w if len(nodes) == 1 else f"{node}: {w}" for w, node in found if w]


def resolve_device(name: str, local_rank: int = 0, where: str | None = None) -> torch.device:
    """``auto`` -> CUDA when available else CPU; under torchrun, CUDA devices are per local rank.
    ``where``: the config file ``name`` came from, named in errors with its key instead of
    ``--device``."""
    given = "--device" if where is None else f"{where}: device"
    # checked there first: before, mps, xpu and meta got as far as torch's errors
    name = devices.resolve_device(name, given)
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


def check_gpu_per_rank(name: str, where: str | None = None) -> None:
    """Training under torchrun with several processes a machine takes ``cuda:LOCAL_RANK``
    (``--device cuda`` or ``auto``): a GPU named by index (``name`` as given) put every rank of
    the machine on that one GPU, which NCCL refuses at the first collective ("Duplicate GPU
    detected"). One ValueError line instead; with one process a machine the index is used as
    given."""
    ranks = env_int("LOCAL_WORLD_SIZE", 1, 1)  # bad text said here, not passed over
    if not name.startswith("cuda:") or ranks < 2:
        return
    given = "--device" if where is None else f"{where}: device"
    raise ValueError(
        f"{given} {name}: this process is one of {ranks} torchrun processes on this machine, "
        f"and each trains on the GPU of its local rank: give {given} cuda (or auto), and "
        f"choose the GPUs with CUDA_VISIBLE_DEVICES"
    )


def freeze_batchnorm_statistics(model: nn.Module) -> int:
    """From now on every BatchNorm of ``model`` runs in eval mode, whatever ``model.train()``
    says: it normalises with its running statistics and never updates them; its affine weights
    still train. A forward pre-hook re-applies it, so validation's train/eval switches cannot
    undo it. Returns the number of BatchNorm layers."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def keep_eval(_module: nn.Module, _args: Any) -> None:
        for norm in norms:
            norm.eval()

    model.register_forward_pre_hook(keep_eval)
    keep_eval(model, ())
    return len(norms)


def _backbone_weights(cfg: TrainConfig) -> str | None:
    if cfg.backbone_weights == "auto":
        # with init the checkpoint's backbone replaces ImageNet's: no download
        return None if cfg.preset == "tiny" or cfg.init else "torchvision"
    return None if cfg.backbone_weights.lower() == "none" else cfg.backbone_weights


SAME_BYTES = ("init", "backbone_weights")  # files read at step 0: the same bytes are the same


def _same_init(saved: Any, now: Any, out: Path, key: str = "init", typed_out: Any = None) -> bool:
    """Whether a resumed run's ``init`` (or ``backbone_weights``) names the file it started
    from, at another path (a moved or reinstalled project: the demo's built-in start lives in
    the package; the same file typed from another folder): the same bytes as the saved path's,
    read from the folder the run recorded (:func:`trainer.config.recorded_file`; from here
    before the fiftieth round, where another file or none could be), or, that file gone, the
    SHA-256 ``init.json`` recorded."""
    from trainer.config import recorded_file

    if (
        isinstance(saved, str)
        and isinstance(now, str)
        and _same_path(typed_from(config_cwd(out), saved), now)
    ):  # a file gone, taken as typed from where the run recorded it (recorded_settings)
        return True
    if not (isinstance(saved, str) and isinstance(now, str) and Path(now).is_file()):
        return False
    if (found := recorded_file(saved, (typed_out, out), config_cwd(out))) is not None:
        return file_sha256(found) == file_sha256(now)
    if key != "init":
        return False
    try:
        recorded = json.loads((out / "init.json").read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return False
    return recorded == file_sha256(now)


def _same_path(a: str, b: str) -> bool:
    """Whether two paths, both absolute, are one, spelled alike but for ``..`` and slashes."""
    same = os.path.normcase(os.path.normpath(a)) == os.path.normcase(os.path.normpath(b))
    return os.path.isabs(a) and os.path.isabs(b) and same


def _changed_split(ckpt: dict[str, Any], dataset: TrainSet, cfg: TrainConfig) -> str | None:
    """A warning when the training split has another number of images than when the run was
    checkpointed: the resume still works, but the sample stream (a permutation of the split per
    epoch) is no longer the one an uninterrupted run draws. None when unchanged or unknown."""
    then = ckpt.get("train_images")
    if then is None or then == len(dataset):
        return None
    return (
        f"{dataset.data.spec.image_dir(cfg.train_split)}: split {cfg.train_split!r} has "
        f"{len(dataset)} images, {then} when the run was checkpointed; the resumed run draws "
        "other samples than an uninterrupted run would"
    )


def file_sizes(dataset: TrainSet) -> dict[str, list[int]]:
    """Each training image's file sizes by stem: image, label and source map (-1: none), which
    a resume compares (:func:`_changed_files`). Sizes, not modification times, so that a dataset
    copied or moved elsewhere is the same; one ``stat`` per file, nothing read."""
    sources = dataset.sources if dataset.has_sources else None
    return {
        s.stem: [
            -1 if (n := file_bytes(path)) is None else n
            for path in (s.image_path, s.label_path, sources and sources / f"{s.stem}.png")
        ]
        for s in dataset.data.samples
    }


def _changed_files(
    ckpt: dict[str, Any], now: dict[str, list[int]], dataset: TrainSet, cfg: TrainConfig
) -> str | None:
    """A warning when training images, labels or source maps that the checkpointed run trained
    on are no longer the size they were (a dataset fused again with other settings, a label
    edited, a photo replaced): the resumed run trains on them as they are now, after steps on
    the earlier ones. Before, only a changed image count was said, and a resume on a dataset
    whose every label had been fused again went on without a word. None when unchanged or
    unknown (a checkpoint of an older engine). ``now``: :func:`file_sizes` of ``dataset``."""
    then = ckpt.get("train_files")
    if not isinstance(then, dict):
        return None
    changed = sorted(stem for stem, sizes in now.items() if stem in then and then[stem] != sizes)
    if not changed:
        return None
    return (
        f"{dataset.data.spec.label_dir(cfg.train_split)}: {len(changed):,} of "
        f"{len(now):,} training images have another image, label or source map file (another "
        f"size) than when the run was checkpointed ({few(changed, total=True)}): fused again or "
        "edited since? the resumed run trains on them as they are now"
    )


def _planned(ckpt: dict[str, Any], cfg: TrainConfig) -> int:
    """The ``iters`` the checkpointed run was planned for (its schedule's length)."""
    return int((ckpt.get("scheduler") or {}).get("iters", cfg.iters))


def _check_resume_iters(ckpt: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    """Refuse an ``iters`` that leaves nothing to train: at or below the run's step, unless it
    is the run's own plan (a finished run, :func:`_finished`). It used to go on, validate
    again and write ``iters`` into config.yaml (engine info then read "step 5 of 3")."""
    step, planned = int(ckpt["step"]), _planned(ckpt, cfg)
    if cfg.iters > step or cfg.iters == step == planned:
        return
    go_on = (
        f"give --iters {planned} (its plan) or another above {step}"
        if planned > step
        else f"it is finished; give --iters above {step} to extend it"
    )
    raise ValueError(  # the values after --iters as typed: "--iters 80,000" is refused
        f"{path}: the run is at step {step:,} of {planned:,}; --iters {cfg.iters} leaves "
        f"nothing to train: {go_on}"
    )


def _finished(
    ckpt: dict[str, Any], cfg: TrainConfig, out: Path, world: int = 1, rank: int = 0
) -> bool:
    """Whether a resume finds the run finished as planned, with its last validation logged (a
    run stopped during that validation is not finished: its resume validates). Under DDP rank
    0's log decides for every rank, one collective where the plan is done (the same checkpoint
    on every rank): a copy of the run folder on each machine may lack the last val line that
    rank 0 alone wrote, and a rank that went on to train waited on the ranks that returned."""
    step = int(ckpt["step"])
    if not cfg.iters == step == _planned(ckpt, cfg):
        return False
    if not (cfg.val_split or cfg.val_subsets):
        return True
    logged = rank == 0 and _validated(out / "metrics.jsonl", step)
    if world > 1:
        said: list[Any] = [None] * world
        dist.all_gather_object(said, logged)
        logged = bool(said[0])
    return logged


def _validated(metrics: Path, step: int) -> bool:
    """Whether ``metrics`` (a run's metrics.jsonl) holds a validation of ``step``."""
    try:
        lines = read_jsonl(metrics)
    except (OSError, ValueError):  # a damaged log: validate again, which appends a good line
        return False
    return any(isinstance(r, dict) and "val" in r and r.get("step") == step for r in lines)


def _changed_schedule(ckpt: dict[str, Any], cfg: TrainConfig) -> str | None:
    """A warning when a run is resumed with another ``iters`` than it was planned for: the
    cosine schedule is recomputed over the new length, so the learning rate jumps at the resume
    (up when the run is extended: a warm restart). None when the plan is unchanged (an
    ``iters`` that leaves nothing to train is refused first, :func:`_check_resume_iters`)."""
    step = int(ckpt["step"])
    planned = _planned(ckpt, cfg)
    if planned == cfg.iters:
        return None
    was = cfg.lr * lr_factor(step, planned, cfg.warmup_iters, cfg.min_lr_ratio)
    now = cfg.lr * lr_factor(step, cfg.iters, cfg.warmup_iters, cfg.min_lr_ratio)
    return (
        f"the run was planned for {planned:,} iterations and continues to {cfg.iters:,}: the "
        f"cosine schedule is recomputed over {cfg.iters:,}, so the learning rate at step {step:,} "
        f"is {now:.3g} (it was {was:.3g}); the losses and scores are no longer those of a run "
        f"planned for {cfg.iters:,} from the start"
    )


def _check_resume_classes(
    ckpt: dict[str, Any], cfg: TrainConfig, here: Taxonomy, path: Path
) -> None:
    """Refuse a resume on a dataset whose classes (``here``: names, their order, their parents)
    are not the checkpoint's: each class trains the class-head row of its id, so a reordered
    dataset (Car and Bicycle swapped) would go on training Bicycle's row as Car without any
    error."""
    there = Taxonomy.from_dict(ckpt["taxonomy"], source=f"{path}: taxonomy")

    def key(tax: Taxonomy, i: int) -> tuple[str, str | None] | None:
        if i >= len(tax):
            return None
        c = tax[i]
        return class_key(c.name), None if c.parent is None else class_key(tax[c.parent].name)

    def shown(tax: Taxonomy, i: int, parent: bool) -> str:
        if i >= len(tax):
            return "none"
        c = tax[i]
        return c.name + (f" (from {tax[c.parent].name})" if parent and c.parent is not None else "")

    diffs = []
    for i in range(max(len(here), len(there))):
        a, b = key(here, i), key(there, i)
        if a != b:
            parent = a is not None and b is not None and a[0] == b[0]  # only the parents differ
            diffs.append(
                f"id {i}: {shown(here, i, parent)} here, {shown(there, i, parent)} in the checkpoint"
            )
    if diffs:
        raise ValueError(
            f"{cfg.data}: its classes differ from those of the run's checkpoint {path} "
            f"({'; '.join(diffs)}); a resume trains each class on the class-head row of its id: "
            f"resume on the dataset the run trained on, or start a new --out with --init {path} "
            "(its rows then follow the class names)"
        )


def _whole(n: Any) -> bool:
    """Whether ``n`` is a whole number: an int, or a float of one (``TrainConfig(iters=8e4)``
    from Python trains and records 80000.0)."""
    return type(n) is int or (type(n) is float and n.is_integer())


# what a damaged last.pt's line says to do: the run keeps step_NNNNNNN.pt every keep_every steps
DAMAGED_FIX = (
    "copy a good checkpoint over it (a step_NNNNNNN.pt of this run, or a backup) and resume again"
)


def damaged_state(path: Path, entry: str, problem: str) -> ValueError:
    """The one line of a damaged training state, in one form: the file, the entry and what is
    wrong with it, what to do. Before the forty-eighth round each check worded it its own way,
    and only one said what to do. Runs of whitespace in ``entry`` and ``problem`` are one
    space: a value's repr (a 2-D tensor's) spans several lines."""
    entry, problem = " ".join(entry.split()), " ".join(problem.split())
    return ValueError(f"{path}: damaged training state: {entry} {problem}; {DAMAGED_FIX}")


def _check_resume_state(ckpt: dict[str, Any], path: Path) -> None:
    """Refuse a ``last.pt`` whose training state a resume reads is damaged (edited, or written
    by something else), one line naming it and the entry (:func:`damaged_state`), before
    anything is built or written; before, Python's words (``cannot convert float infinity to
    integer``, a traceback)."""
    step, scheduler = ckpt["step"], ckpt.get("scheduler")
    iters = scheduler.get("iters", 1) if isinstance(scheduler, dict) else 1
    not_mappings = [
        k for k in ("config", "optimizer", "rng") if not isinstance(ckpt.get(k, {}), dict)
    ]
    if type(step) is not int or step < 0:
        raise damaged_state(path, f"step {step!r}", "is not a step count")
    if scheduler is not None and not isinstance(scheduler, dict):
        raise damaged_state(path, f"scheduler {scheduler!r:.60}", "is not a mapping")
    if not _whole(iters) or iters < 1:
        raise damaged_state(path, f"scheduler.iters {iters!r}", "is not a step count")
    if not_mappings:
        k = not_mappings[0]
        raise damaged_state(path, f"{k} {ckpt[k]!r:.60}", "is not a mapping")
    groups = (ckpt.get("optimizer") or {}).get("param_groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise damaged_state(
            path, f"optimizer.param_groups {groups!r:.60}", "is not a list of mappings"
        )
    ranks = ckpt.get("rng_ranks") or []
    if not isinstance(ranks, list):
        raise damaged_state(path, f"rng_ranks {ranks!r:.60}", "is not a list")
    for rng in [ckpt["rng"], *ranks] if "rng" in ckpt else ranks:  # on the caller's generators
        try:
            with caller_rng():
                set_rng_state(rng, cuda=False)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as e:
            raise damaged_state(path, "rng", f"cannot be restored ({e!r:.200})") from None


def _resumed_config(ckpt: dict[str, Any], cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the run's recorded ``init`` when none is given: the start checkpoint only
    matters at step 0, so a resume no longer needs ``--init`` again (it was refused with
    ``init differ``, without saying which path to give)."""
    saved = (ckpt.get("config") or {}).get("init")
    if cfg.init is None and saved is not None:
        return dataclasses.replace(cfg, init=saved)
    return cfg


def _config_differences(
    saved: dict[str, Any], now: dict[str, Any], default: dict[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """``(key, recorded, given)`` for each setting that differs, nested ones by their dotted
    key (``augment.crop``); a key the checkpoint lacks (added since) counts as its default."""
    out = []
    for k in sorted(set(saved) | set(now)):
        if not prefix and k in RESUMABLE_CHANGES:
            continue
        a, b = saved.get(k, default.get(k)), now.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            nested = default.get(k) if isinstance(default.get(k), dict) else {}
            out += _config_differences(a, b, nested, f"{prefix}{k}.")
        else:
            out.append((prefix + k, a, b))
    return out


def _shown(value: Any, key: str = "") -> str:
    """A recorded or given setting as a refused resume names it; a ``val_split`` of "" (no
    validation) as ``none``, the word ``--val-split`` takes (it read ``recorded ""``)."""
    if value is None or (key == "val_split" and value == ""):
        return "none"
    return json.dumps(value)


def _found_at(value: Any, key: str, saved: dict[str, Any], out: Path) -> str:
    """Where a refused resume's recorded ``init`` or ``backbone_weights``, typed relative, is
    (`` (/project/r18.pth)``; `` (/project/r18.pth, not found)`` where it is gone), read from
    the folder the run recorded; "" for any other setting. Before, ``recorded "r18.pth"`` read
    to a user in another folder as their own ``./r18.pth``."""
    from trainer.config import names_file, recorded_file

    if key not in SAME_BYTES or not names_file(value) or os.path.isabs(value):
        return ""
    cwd = config_cwd(out)
    if (found := recorded_file(value, (saved.get("out"), out), cwd)) is not None:
        return f" ({found})"
    typed = typed_from(cwd, value)
    return f" ({typed}, not found)" if os.path.isabs(typed) else ""


def _check_resume_config(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    now = plain(cfg.to_dict())
    default = plain(TrainConfig().to_dict())  # a setting added since the checkpoint: its default
    changed = _config_differences(saved, now, default)
    changed = [
        c
        for c in changed
        if c[0] not in SAME_BYTES or not _same_init(c[1], c[2], path.parent, c[0], saved.get("out"))
    ]
    if changed:
        shown = "; ".join(
            f"{k} differs (recorded {_shown(a, k)}{_found_at(a, k, saved, path.parent)}, "
            f"given {_shown(b, k)})"
            for k, a, b in changed
        )
        raise ValueError(
            f"{path}: the checkpoint was trained with another config: {shown}; resume with the "
            "recorded settings or start a new --out"
        )


def _drop_lines_after(path: Path, step: int) -> None:
    """Rewrite the log ``path`` (atomically) without its lines of steps after ``step``: what a
    run logged after its last checkpoint (stopped by Ctrl-C between two) is trained again by
    the resume and logged again, so keeping it listed those steps twice (curves.png and engine
    info read one line per step). A torn last line goes too; the file is untouched when there
    is nothing to drop."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return
    kept = []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            if i < len(lines) - 1:  # a damaged middle line stays for its reader to report
                kept.append(line)
            continue
        has_step = isinstance(record, dict) and isinstance(record.get("step"), int)
        if has_step and record["step"] > step:
            continue
        kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        atomic_write_text(path, "".join(kept))


def _write_run_files(
    out: Path,
    cfg: TrainConfig,
    start: int,
    taxonomy: Taxonomy,
    ranks: dict[str, Any] | None = None,
) -> None:
    """``config.yaml``, ``config.json``, and ``environment.json`` (a fresh run) or a line of
    ``resumes.jsonl``; under DDP the environment's ``distributed`` is ``ranks``
    (:func:`trainer.ranks.layout`: the launcher, world size and each machine's ranks), which a
    run on another layout does not reproduce (one process's records have none)."""
    data = plain(cfg.to_dict())
    # max_steps_this_run limits this call, not the run: recorded, a run's config.yaml fed back
    # with --config to reproduce it stopped where the first time slice did, without a word
    data["max_steps_this_run"] = 0
    # allow_unicode: a path or class as typed ('runs/fused/自行车'), not "\u81EA\u884C\u8F66",
    # in the file a user copies to edit and pass back with --config
    atomic_write_text(
        out / "config.yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    )
    # the classes the model learns, by id (as its checkpoints hold them): engine info lists them
    # without loading a checkpoint (a model of classes added one after another: which id is which)
    record = {"config": data, "config_hash": config_hash(data), "taxonomy": taxonomy.to_dict()}
    atomic_write_json(out / "config.json", record)
    env = environment()
    if ranks is not None:
        env["distributed"] = ranks
    if start == 0:
        atomic_write_json(out / "environment.json", env)
    else:
        append_line(out / "resumes.jsonl", json.dumps({"step": start, "environment": env}))


def _tensorboard(out: Path, start: int):
    """The run's tensorboard writer, or None without the (optional) tensorboard package. A
    resume from the checkpoint of step ``start`` purges the scalars logged after it (the steps
    a Ctrl-C between two checkpoints left, which the resume trains and logs again), as
    ``_drop_lines_after`` does for metrics.jsonl; before, tensorboard drew those steps twice."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the tensorboard package is optional
        return None
    return SummaryWriter(str(out / "tensorboard"), purge_step=start + 1 if start else None)


def _step_checks(value: torch.Tensor, stop: int, world: int) -> tuple[bool, int]:
    """Whether ``value`` (the step's loss and gradient norm) is finite on every rank, and
    whether any rank was asked to stop (a SIGTERM or SIGHUP, :mod:`engine.stopping`; ``stop``:
    this rank's :func:`engine.stopping.requested_code`): one all-reduce, so every rank stops at
    the same step, no rank is left waiting in a collective, and each knows the stop's code (the
    highest of the ranks': a SIGTERM's 143 over a SIGHUP's 129), 0 where none."""
    flags = torch.stack([torch.isfinite(value).all(), value.new_tensor(-float(stop))]).float()
    if world > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    finite, code = flags.tolist()
    return finite > 0, int(-code)


def _agree_to_stop(world: int, device: torch.device) -> int:
    """Whether any rank was asked to stop (before a validation, which a stop would cut short):
    the stop's code, as :func:`_step_checks` gives it, 0 where none."""
    if world == 1:
        return stopping.requested_code()
    flag = torch.tensor([float(stopping.requested_code())], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def owns_run() -> bool:
    """Whether this process owns the run and holds its lock (:func:`train`): not a rank that
    :func:`trainer.spawn.train_processes` started, nor one but rank 0 under torchrun."""
    rank, _ = rank_and_world()
    return not os.environ.get(RUN_LOCKED_BY_PARENT) and rank == 0


def check_float32(model: nn.Module) -> None:
    """``ValueError`` naming the first parameter (or floating-point buffer) of a caller's
    ``model`` that is not float32, the dtype a run computes in (:func:`torch_defaults`): one
    built under ``torch.set_default_dtype(torch.float64)`` stopped in its loss with torch's
    "Index put requires the source and destination dtypes match"."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for name, t in tensors:
        if t.is_floating_point() and t.dtype != torch.float32:
            raise ValueError(
                f"model: parameter {name} is {t.dtype}; train computes in float32: build the "
                "model under torch's default dtype float32, or pass model.float()"
            )


def train(
    cfg: TrainConfig,
    model: nn.Module | None = None,
    on_init: Callable[[InitReport], None] | None = None,
    from_file: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> TrainResult:
    """Train (or resume) one run as configured; see :func:`_train`. Torch's CPU thread count is
    set for the run (:func:`trainer.config.resolve_threads`) and restored afterwards; on CPU,
    glibc's malloc keeps freed memory for the process's life (:mod:`trainer.allocator`). The
    caller's random generators are as they were when the call returns (:func:`caller_rng`), and
    it trains in float32 with autograd on whatever the caller set (:func:`torch_defaults`).

    On CPU with ``cfg.processes`` > 1 (0: one per core) and no launcher around, the batch is
    split over that many local processes (:func:`trainer.spawn.train_processes`); a ``model``
    passed in (tests) always trains in this process.

    The process that owns the run (not a rank that :func:`trainer.spawn.train_processes`
    started, and rank 0 under torchrun) holds ``cfg.out``'s lock for the whole run
    (:func:`engine.runlock.exclusive`): a second ``engine train`` into the same folder stops at
    once instead of writing over this one's checkpoints.

    ``from_file``: the keys among ``augment.crop``, ``device`` and ``val_size`` whose values a
    config file set -> that file (``engine train --config``), named in their errors with the
    key instead of the option (``c.yaml: augment.crop 8``, not ``--crop 8``). The checks are
    made here only: before, the CLI made them too, with another wording than a library
    caller got.

    ``notes``: warnings the caller has about its options (``engine train``'s ``--val-every: not
    used``), printed and kept in ``metrics.jsonl`` with the run's own once every check passed
    (before the forty-fifth round the CLI printed them itself, and the record had none)."""
    if not cfg.resume:  # a run started before the check resumes as it was recorded
        check_drawn_rule(cfg)  # as engine train says it; before, a library caller's went unsaid
    if model is not None:
        check_float32(model)
    if not owns_run():
        with caller_rng(), torch_defaults(training=True):
            return _start(cfg, model, on_init, from_file, notes)
    from engine.runlock import check_not_being_written, check_output_folder, exclusive

    check_output_folder(cfg.out, ("metrics.jsonl",), "engine train")
    # a fused dataset engine fuse still writes: its labels so far, or old and new ones mixed
    check_not_being_written(cfg.data, "engine train", "its labels")
    # engine synth (or fuse) stopped half way: refused before exclusive and a fresh run's
    # unlinking of the last run's logs (before, a refused train left OUT holding its .lock alone)
    load_spec(cfg.data).check_not_stopped("engine train")
    for subset in cfg.val_subsets or ():  # being imported: new masks, the old subset.json
        check_not_being_written(subset, "engine train", "its annotated masks")
    with (
        exclusive(cfg.out, "engine train", own=("metrics.jsonl", "config.yaml")),
        caller_rng(),
        torch_defaults(training=True),
    ):
        return _start(cfg, model, on_init, from_file, notes)


def _start(
    cfg: TrainConfig,
    model: nn.Module | None = None,
    on_init: Callable[[InitReport], None] | None = None,
    from_file: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> TrainResult:
    """:func:`train` once the run is this process's: spawn the local ranks, or train here."""
    where = dict(from_file or {})
    rank = env_int("LOCAL_RANK", 0)
    device = resolve_device(cfg.device, rank, where=where.get("device"))
    check_gpu_per_rank(cfg.device, where.get("device"))
    if model is None:  # a model passed in (tests' stubs) may take smaller crops
        check_crop(cfg.augment.crop, where.get("augment.crop"))
    if model is None and "WORLD_SIZE" not in os.environ:
        from trainer.spawn import resolve_processes, train_processes

        processes = resolve_processes(cfg.processes, device.type)
        if processes > 1:
            if device.type != "cpu":
                raise ValueError(
                    f"processes {processes}: local processes are for CPU training; on GPUs "
                    "start one process per GPU with torchrun"
                )
            micro_batch(cfg, processes)  # a batch that cannot be split fails before any start
            # so does a run folder that holds a run (or no checkpoint to resume): the ranks all
            # see this folder, and before the forty-eighth round they took 10-20 s to start and
            # raise it; the same line as one process gives
            last = Path(cfg.out) / "last.pt"
            check_run_folder_shared(last, cfg.resume, 1)
            if cfg.resume and not last.is_file():
                load_checkpoint(last)  # raises its "checkpoint not found" without reading
            # each rank checks the data again: a config file's values still named by the file
            ranks = functools.partial(train, from_file=where, notes=tuple(notes))
            return train_processes(ranks, cfg, processes, on_init)
    if device.type == "cpu":
        from trainer.allocator import tune_malloc

        tune_malloc()  # freed step tensors kept for the next step: no page faults per step
    threads = resolve_threads(cfg.threads, resolve_workers(cfg.num_workers), device.type)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _train(cfg, model, on_init, where.get("val_size"), notes)
    except BaseException as e:
        # under DDP: this rank's error for the ranks its stop leaves waiting, or, where another
        # rank's stop ended this one's collective, that rank's error (trainer.ranks)
        tell_others(e)
        told = peers_error(e)
        if told is e:
            raise
        raise told from None
    finally:
        torch.set_num_threads(before)


def micro_batch(cfg: TrainConfig, world: int) -> int:
    """Images per rank and micro-step: ``batch_size / accum_steps / world``; ``ValueError`` when
    that does not divide or is below 2."""
    per_rank = cfg.batch_size // cfg.accum_steps
    if per_rank % world:
        raise ValueError(
            f"batch_size {cfg.batch_size} / accum_steps {cfg.accum_steps} = {per_rank} images per "
            f"micro-step cannot be split over {world} ranks"
        )
    micro = per_rank // world
    if micro < 2:
        raise ValueError(
            f"batch_size {cfg.batch_size} / accum_steps {cfg.accum_steps} / {world} ranks = "
            f"{micro} image per micro-step; MaSSFormer needs at least 2 (the released "
            f"pixel decoder has BatchNorms on globally pooled features)"
        )
    return micro


def _train(
    cfg: TrainConfig,
    model: nn.Module | None = None,
    on_init: Callable[[InitReport], None] | None = None,
    val_size_from: str | None = None,
    notes: Sequence[str] = (),
) -> TrainResult:
    """Train (or resume) one run as configured. ``model``: an already built model (tests);
    by default ``create_model(cfg.preset, K)`` with the configured backbone weights.
    ``cfg.init``: a fresh run starts from that checkpoint's weights (:mod:`trainer.init`);
    ``on_init`` receives the report on rank 0 before the first step (the CLI prints it), and
    the run directory keeps it as ``init.json``.

    Raises:
        FileExistsError: ``<out>/last.pt`` exists and ``resume`` is off.
        FileNotFoundError: ``resume`` is on and there is no ``<out>/last.pt``.
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
    """
    rank, world, local_rank = _distributed(resolve_device(cfg.device).type)
    init_report: InitReport | None = None
    is_main = rank == 0
    device = resolve_device(cfg.device, local_rank)
    out = Path(cfg.out)
    last = out / "last.pt"
    ckpt = spec = None
    check_run_folder_shared(last, cfg.resume, world)
    if cfg.resume:
        ckpt = load_checkpoint(last)
        _check_resume_state(ckpt, last)
        cfg = _resumed_config(ckpt, cfg)
        _check_resume_config(ckpt["config"], cfg, last)
        spec = load_spec(cfg.data)  # read once: the classes here, the training and val splits
        _check_resume_classes(ckpt, cfg, spec.taxonomy, last)
        _check_resume_iters(ckpt, cfg, last)
        if _finished(ckpt, cfg, out, world, rank):  # nothing to do: no validation, no file touched
            # but its curves.png, when the disk filled as the end of the run drew it: before,
            # the resume its error advised found the run finished and drew nothing
            drawn = is_main and _draw_missing_curves(out)
            return TrainResult(out=out, step=int(ckpt["step"]), finished=True, redrawn=drawn)
    elif is_main:
        # A fresh run's logs start empty (a run that died before its first checkpoint leaves
        # them behind); before DDP's first collective, so no other rank has written yet.
        for name in ("metrics.jsonl", "resumes.jsonl", SKIPPED_LOG):
            (out / name).unlink(missing_ok=True)
    micro = micro_batch(cfg, world)

    spec = spec or load_spec(cfg.data)
    if not owns_run():  # a rank (torchrun's, --processes'); the run's owner checked it in train()
        spec.check_finished("engine train")
    dataset = TrainSet(spec, cfg.train_split, cfg.augment, cfg.all_precise, given=cfg.data)
    val_data = validation_split(cfg, spec) if cfg.val_split else None
    # the validation split and annotated subsets, resolved before the model is built (and its
    # backbone weights fetched), so a missing split or a bad path fails at once
    subset_data = val_data or dataset.data
    subsets = [load_subset(p, subset_data) for p in cfg.val_subsets]
    check_one_subset_per_class(subsets)
    validates = val_data is not None or bool(subsets)
    if validates:  # named by the config file that set it (val_size_from), else as --val-size
        check_val_size(subset_data, cfg.val_size, val_size_from)
    # warnings only once every check passed: a refused run prints its error alone
    # the files' sizes this call trains on: stat'ed once (3 files an image), not at every
    # checkpoint; recorded in each, compared on a resume
    train_files = file_sizes(dataset) if is_main else {}
    start = int(ckpt["step"]) if ckpt is not None else 0
    said = RunWarnings(out)
    for note in notes if is_main else ():  # the caller's, about its options
        said.warn(note, start)
    if is_main and ckpt is not None:
        for warning in (
            _changed_split(ckpt, dataset, cfg),
            _changed_files(ckpt, train_files, dataset, cfg),
            _changed_schedule(ckpt, cfg),
        ):
            if warning:
                said.warn(warning, start)
    for warning in subset_warnings(subsets, cfg.train_split) if is_main else ():
        said.warn(warning, start)
    if is_main and validates and (warning := validation_upscale(subset_data, cfg.val_size)):
        said.warn(warning, start)
    for warning in rare_new_classes(dataset) if is_main else ():
        said.warn(warning, start)
    workers = resolve_workers(cfg.num_workers)
    for warning in node_shm_shortfalls(micro, cfg.augment.crop, workers, world, local_rank):
        if is_main:
            said.warn(warning, start)
    taxonomy = dataset.taxonomy
    k = taxonomy.num_classes
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    if model is None and ckpt is not None:
        # the network the run trained, as its checkpoint records it: a preset whose widths
        # changed since (massformer_lite_r18, thirty-first round) still resumes
        from trainer.models import build_model

        model = build_model(model_config_of(ckpt, str(last)))
    elif model is None:
        from trainer.models import create_model

        model = create_model(
            cfg.preset, k, backbone_weights=_backbone_weights(cfg), backbone_norm=cfg.backbone_norm
        )
    if model.config.num_classes != k:
        raise ValueError(
            f"{cfg.data}: the dataset has {k} classes but the model predicts {model.config.num_classes}"
        )
    if ckpt is not None:
        load_weights(model, ckpt["model"], str(last))
    elif cfg.init:
        from trainer.init import init_from_checkpoint

        init_report = init_from_checkpoint(model, cfg.init, taxonomy)
        if is_main and (warning := init_report.architecture_warning()):
            said.warn(warning, start)
    model.to(device).train()
    if cfg.freeze_bn_stats:
        freeze_batchnorm_statistics(model)
    dec = cfg.loss.decoupling
    pseudo: frozenset[int] = frozenset(
        dec.pseudo_classes
        if dec.pseudo_classes is not None
        else (c.id for c in taxonomy if c.parent is not None)
    )
    # the origin form's drawn edges: a new class against the class it was carved out of
    parents = {c.id: (c.parent,) for c in taxonomy if c.parent is not None and c.id in pseudo}
    criterion = SetCriterion(k, cfg.loss)
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )
    if ckpt is not None:
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except DEVICE_ERRORS:  # the device's (its memory full), not the file's
            raise
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
            raise damaged_state(last, "optimizer", f"cannot be restored ({e!r:.200})") from None
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.ddp_find_unused,
        )
    loader = make_loader(
        dataset,
        micro,
        cfg.seed,
        workers,
        rank,
        world,
        start * micro * cfg.accum_steps,
        pin_memory=device.type == "cuda",
    )
    amp = bf16_autocast(cfg.amp, device)
    if cfg.amp and device.type == "cuda" and not amp and is_main:
        # a T4's or V100's bf16 is emulated (slower than fp32, no cuDNN bf16 convolutions), and
        # fp16 would need a gradient scaler this loop does not have: fp32, said and kept
        said.warn(f"{device} has no native bf16 (compute capability below 8.0): training in "
                  "float32; amp is on for GPUs from the A100 on", start)  # fmt: skip
    result = TrainResult(out=out, step=start)
    writer = None
    ranks = layout(world)  # a collective: the processes and machines the run trains on
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        if ckpt is not None:
            _drop_lines_after(out / "metrics.jsonl", start)
        _write_run_files(out, cfg, start, taxonomy, ranks)
        said.open()
        writer = _tensorboard(out, start)
        if init_report is not None:
            result.init = init_report
            # with the start's hash: a resume from a moved copy of it is recognised
            record = {**init_report.to_dict(), "sha256": file_sha256(cfg.init)}
            atomic_write_json(out / "init.json", record)
            if on_init is not None:
                on_init(init_report)
    if ckpt is not None:
        try:
            rng_ranks = ckpt.get("rng_ranks") or []
            # last: everything above may draw random numbers
            rng = rng_ranks[rank] if len(rng_ranks) == world else ckpt["rng"]
            set_rng_state(rng, device.type == "cuda")
        except DEVICE_ERRORS:
            raise
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as e:
            raise damaged_state(last, "rng", f"cannot be restored ({e!r:.200})") from None

    def checkpoint_state(step: int, rngs: list[dict[str, Any]]) -> dict[str, Any]:
        return checkpoint_dict(
            step,
            model.state_dict(),
            plain(dataclasses.asdict(model.config)),
            taxonomy.to_dict(),
            optimizer=optimizer.state_dict(),
            scheduler={
                "name": "cosine",
                "step": step,
                "iters": cfg.iters,
                "warmup_iters": cfg.warmup_iters,
                "min_lr_ratio": cfg.min_lr_ratio,
            },
            rng=rngs[0],
            rng_ranks=rngs,  # every rank's generators, so a DDP resume is exact on all ranks
            config=plain(cfg.to_dict()),
            train_images=len(dataset),  # a resume on another number draws another stream
            train_files=train_files,  # a resume on files changed since says so
        )

    def validate(step: int) -> None:
        if val_data is None and not subsets:
            return
        from trainer.validate import evaluate, evaluate_subset, label_new_classes, rank_samples

        # a bar of its own under the training's (rank 0's images and the subsets), removed
        # when done: at the release's 4096x3072 a CPU takes seconds an image
        images = len(rank_samples(val_data, cfg.val_max_images, rank, world)) if val_data else 0
        images += sum(len(t.samples) for t in subsets) if is_main else 0
        val_task = progress.add_task(f"validate (step {step})", total=images, info="")
        advance = functools.partial(progress.advance, val_task)

        res: dict[str, Any] | None = {}
        if val_data is not None:
            res = evaluate(
                model,
                val_data,
                cfg.val_size,
                device,
                amp,
                cfg.val_sliding_window,
                cfg.val_max_images,
                distributed=world > 1,
                on_image=advance,
            )
            if res is not None:
                label_new_classes(res, taxonomy)
        if is_main and res is not None and subsets:
            res["subsets"] = [
                evaluate_subset(
                    model,
                    t,
                    subset_data,
                    cfg.val_size,
                    device,
                    amp,
                    cfg.val_sliding_window,
                    on_image=advance,
                )
                for t in subsets
            ]
        progress.remove_task(val_task)
        if is_main and res is not None:
            found = [
                *res.get("skipped", ()),
                *(p for t in res.get("subsets", ()) for p in t.get("skipped", ())),
            ]
            skipped.note(found, step, "validation")
            result.val.append({"step": step, **res})
            append_line(out / "metrics.jsonl", json.dumps({"step": step, "val": res}))
            if writer is not None:
                for key in ("mIoU", "mBIoU", "mBF1"):
                    if res.get(key) is not None:
                        writer.add_scalar(f"val/{key}", res[key], step)
            if step != cfg.iters:  # the last is drawn when the call ends
                _draw_curves(out)

    params = [p for p in model.parameters() if p.requires_grad]
    skipped = SkippedLog(out, rank)
    data_iter = iter(skipped.batches(loader, lambda: result.step + 1))
    stop = (
        cfg.iters if cfg.max_steps_this_run <= 0 else min(cfg.iters, start + cfg.max_steps_this_run)
    )
    if is_main:
        where = str(dataset.data.spec.label_dir(dataset.data.split))
        limit = min(NO_LABEL_BATCHES, (stop - start) * cfg.accum_steps)
        data_iter = warn_unlabelled(
            data_iter, limit, where, lambda w: said.warn(w, result.step + 1)
        )
    t_last, n_last = time.perf_counter(), start
    progress = make_progress("it", "{task.fields[info]}", cfg.progress and is_main)
    with progress:
        task = progress.add_task("train", total=cfg.iters, completed=start, info="loss -  lr -")
        with stopping.deferred():  # a SIGTERM: the loop stops at a step's end (halt, below)
            for step in range(start, stop):
                total_t, terms, grad_norm = _forward_backward(
                    net,
                    criterion,
                    data_iter,
                    optimizer,
                    params,
                    cfg,
                    device,
                    amp,
                    world,
                    pseudo,
                    parents,
                )
                # one all-reduce: finite on every rank, and whether any rank got a SIGTERM
                finite, halt = _step_checks(
                    torch.stack([total_t, grad_norm]), stopping.requested_code(), world
                )
                if not finite:
                    bad = {n: v for n, v in terms.items() if not np.isfinite(v)}
                    bad = bad or {"grad_norm": float(grad_norm)}
                    if is_main:
                        event = {"step": step + 1, "event": "non_finite", "terms": bad}
                        append_line(out / "metrics.jsonl", json.dumps(event))
                    raise NonFiniteLossError(_non_finite_message(step + 1, bad, last))
                factor = lr_factor(step, cfg.iters, cfg.warmup_iters, cfg.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * factor
                optimizer.step()
                done = step + 1
                total = float(total_t)
                result.losses.append(total)
                result.step = done
                lr_now = cfg.lr * factor
                progress.update(task, completed=done, info=f"loss {total:.4f}  lr {lr_now:.2e}")
                # a slice's end too (max_steps_this_run): its last.pt is logged, so engine info names it
                if is_main and (done % cfg.log_every == 0 or done in (cfg.iters, stop)):
                    now = time.perf_counter()
                    rate = (done - n_last) / max(now - t_last, 1e-9)
                    t_last, n_last = now, done
                    _log_step(out, writer, done, lr_now, total, float(grad_norm), rate, terms)
                if cfg.val_every > 0 and done % cfg.val_every == 0 and done != cfg.iters:
                    halt = halt or _agree_to_stop(world, device)
                    if not halt:
                        try:
                            with stopping.undeferred():  # minutes: a SIGTERM stops it at once
                                validate(done)
                        except stopping.Terminated:
                            if world > 1:  # ranks cut at different points cannot agree to save
                                raise
                            # the step is whole (validation draws no random numbers): save it,
                            # as a SIGTERM at a step's end does, instead of losing every step
                            # since the last checkpoint
                            halt = True
                # a kept step is a checkpoint too: kept only where last.pt was refreshed, a
                # keep_every of 500 under checkpoint_every 1,000 kept every other file promised
                keep = cfg.keep_every > 0 and done % cfg.keep_every == 0
                if halt or keep or done % cfg.checkpoint_every == 0 or done in (cfg.iters, stop):
                    # a collective: every rank takes part
                    rngs = _gather_rng_states(world, device.type == "cuda")
                    if is_main:
                        state = checkpoint_state(done, rngs)
                        result.last_checkpoint = save_checkpoint(last, state)
                        record_saved_step(last, done)  # engine info reads it without torch
                        if keep:  # last.pt's bytes: torch.save's again, at a fraction of
                            # its cost (docs/trainer.md, "What a save costs")
                            atomic_copy(last, out / f"step_{done:07d}.pt")
                if halt:  # every rank together, the step checkpointed: --resume goes on here
                    if is_main and n_last != done:  # the step saved is logged, so engine info
                        # names it (before: "step 0 of N, no step logged", last.pt at step 3)
                        rate = (done - n_last) / max(time.perf_counter() - t_last, 1e-9)
                        _log_step(out, writer, done, lr_now, total, float(grad_norm), rate, terms)
                    stopping.passed_on(halt)  # a rank's SIGTERM or SIGHUP stops each as it
                    # stops that one: named as that one names it (a SIGHUP's 129 not 143)
                    raise stopping.Terminated(done, str(last))
        if result.step == cfg.iters:
            validate(result.step)
    if writer is not None:
        writer.close()
    if is_main:
        _draw_curves(out)
    return result


def _log_step(
    out: Path,
    writer: Any,
    step: int,
    lr: float,
    loss: float,
    grad_norm: float,
    it_s: float,
    terms: dict[str, float],
) -> None:
    """One step's line of ``metrics.jsonl`` (and tensorboard's scalars, with a writer)."""
    line = {"step": step, "lr": lr, "loss": loss, "grad_norm": grad_norm, "it_s": it_s, **terms}
    append_line(out / "metrics.jsonl", json.dumps(line))
    if writer is not None:
        writer.add_scalar("train/loss", loss, step)
        writer.add_scalar("train/lr", lr, step)


def _draw_missing_curves(out: Path) -> bool:
    """Draw ``out/curves.png`` if it is missing (:func:`_draw_curves`); whether it now is."""
    from trainer.curves import CURVES

    if (out / CURVES).is_file():
        return False
    _draw_curves(out)
    return (out / CURVES).is_file()


def _draw_curves(out: Path) -> None:
    """``out/curves.png`` from ``out/metrics.jsonl`` (:mod:`trainer.curves`); without
    matplotlib (or with a damaged log), a note in the log instead: a figure never stops a
    training run."""
    from trainer.curves import CURVES, plot_curves

    if not (out / "metrics.jsonl").is_file():
        return
    try:
        plot_curves(out / "metrics.jsonl", out / CURVES)
    except (RuntimeError, ValueError) as e:  # no matplotlib; a log line damaged mid-file
        log.info("%s", e)


def _forward_backward(
    net: nn.Module,
    criterion: SetCriterion,
    data_iter,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    cfg: TrainConfig,
    device: torch.device,
    amp: bool,
    world: int,
    pseudo: frozenset[int],
    parents: dict[int, tuple[int, ...]] | None = None,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """One optimizer step's gradients over ``accum_steps`` micro-batches, clipped.

    Returns ``(total loss (0-d tensor), {term: value}, grad norm before clipping (0-d tensor))``;
    the optimizer has not stepped yet.
    """
    optimizer.zero_grad(set_to_none=True)
    k = criterion.num_classes
    dec = cfg.loss.decoupling
    total = torch.zeros((), device=device)
    sums: torch.Tensor | None = None
    names: list[str] = []
    for m in range(cfg.accum_steps):
        batch = next(data_iter)
        images, labels, sources = to_device(batch, device)  # uint8 until on the device
        targets = [
            build_targets(labels[i], sources[i], k, dec, pseudo, parents)
            for i in range(len(images))
        ]
        # DDP all-reduces gradients only on the last micro-batch
        sync = world == 1 or m == cfg.accum_steps - 1
        with contextlib.nullcontext() if sync else net.no_sync():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                outputs = net(images)
            losses = criterion(outputs, targets)  # fp32
            loss = sum(losses.values())
            (loss / cfg.accum_steps).backward()
        total = total + loss.detach() / cfg.accum_steps
        values = torch.stack([v.detach() for v in losses.values()]) / cfg.accum_steps
        sums = values if sums is None else sums + values
        names = list(losses)
    assert sums is not None
    terms = dict(zip(names, sums.tolist(), strict=True))  # one device sync for all terms
    # max_norm inf measures without clipping (torch >= 2.4, unlike get_total_norm)
    grad_norm = torch.nn.utils.clip_grad_norm_(
        params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
    )
    return total, terms, grad_norm.to(device).float()


def _non_finite_message(step: int, bad: dict[str, float], last: Path) -> str:
    where = (
        f"the last good checkpoint is {last} (step {_saved_step(last)})"
        if last.exists()
        else "no checkpoint had been written yet"
    )
    shown = ", ".join(f"{n}={v}" for n, v in list(bad.items())[:6])
    return (
        f"step {step}: non-finite loss ({shown}); training stopped, {where}. "
        "Lower the learning rate or check the data."
    )


def _gather_rng_states(world: int, cuda: bool) -> list[dict[str, Any]]:
    """Every rank's generator states, in rank order (rank 0's alone without DDP); the CUDA
    generators only when the run trains on CUDA."""
    if world == 1:
        return [rng_state(cuda)]
    states: list[Any] = [None] * world
    dist.all_gather_object(states, rng_state(cuda))
    return states


def _saved_step(path: Path) -> int | str:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:
        return "?"
