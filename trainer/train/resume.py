"""What a resume checks and says before it trains on: the checkpoint's state, config,
classes and plan against the run's, the training files since changed, a finished run,
and the one line of a damaged training state."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from annotations.fileio import file_bytes, read_jsonl, typed_from
from annotations.taxonomy import Taxonomy, class_key
from engine.runinfo import config_cwd, file_sha256
from engine.text import few
from trainer.checkpoint import caller_rng, set_rng_state
from trainer.config import TrainConfig, lr_factor, plain
from trainer.data import TrainSet

# a GPU's own errors, RuntimeErrors too: never taken for a damaged checkpoint on resume
DEVICE_ERRORS = (torch.OutOfMemoryError, *filter(None, [getattr(torch, "AcceleratorError", None)]))


# Fields that may differ between a run and its resume (they do not change what is computed).
RESUMABLE_CHANGES = {
    "iters", "out", "data", "resume", "progress", "num_workers", "threads", "processes", "device",
    "val_every",
    "val_subsets",
    "val_max_images", "checkpoint_every", "keep_every", "log_every", "max_steps_this_run",
}  # fmt: skip


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
