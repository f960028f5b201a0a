"""A label run's folder as earlier calls left it: its record read, the same class and settings
checked before resuming, its outputs cleared, the shard a call labels and the lock it takes."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from annotations.fileio import atomic_write_json, first_line
from annotations.labelrun import RUN_FOLDERS, RunInfo, read_run_info
from annotations.taxonomy import class_key
from engine.runlock import LOCK_NAME
from labeler.config import LabelConfig, default_out_dir, shard_from_env

log = logging.getLogger(__name__)


def resolved_shard(cfg: LabelConfig) -> tuple[int, int]:
    """``(index, count)`` of the images this process labels: ``--shard``, else torchrun's
    environment, else all of them."""
    return cfg.shard or shard_from_env() or (0, 1)


def check_same_class(out: Path, cfg: LabelConfig) -> tuple[LabelConfig, str | None, dict | None]:
    """A folder holds one class's label run: labeling another class into it (a changed
    threshold re-labels, but a changed class is another run) is a ``ValueError`` naming the
    class it holds, unless ``cfg.force``. Fused datasets, subsets picked from the run and its
    review all read these labels as that class. An unreadable ``run.json`` is a ``ValueError``
    naming it, unless ``cfg.force``: the run's class and settings are unknown, so none of its
    images may count as done (with ``force`` every image is labelled again and the record
    rewritten).

    Returns ``cfg`` with the class spelled as the run records it (``--class bicycle`` on a
    Bicycle run is the same class, so the same settings and hash, not a reason to label every
    image again), its model folders too unless ``--force`` (:meth:`LabelConfig.spelled_as`: a
    run from before they were normalised), the other class whose run this ``--force`` run
    replaces, or None, and the ``run.json`` read (None: none, or unreadable). Its
    files go in every split (:func:`clear_outputs`), not only in the splits labelled now: a
    folder holds one class, and labels of the other class left in it would be read as this
    one. A sharded run cannot replace one: each shard would clear what the others wrote."""
    try:
        info = recorded_run(out)
    except ValueError as e:
        if not cfg.force:
            raise ValueError(
                f"{e}; the run's class and settings are unknown, so none of its images can "
                "count as done: give --force to label every image again (and rewrite run.json), "
                "or another --out"
            ) from None
        log.warning("%s; --force: every image is labelled again", e)
        return cfg, None, None
    if info is None:
        return cfg, None, None
    held = info.class_name
    if class_key(held) == class_key(cfg.cls.name):
        same = (
            cfg
            if held == cfg.cls.name
            else dataclasses.replace(cfg, cls=dataclasses.replace(cfg.cls, name=held))
        )
        recorded = info.record.get("config")
        if not cfg.force and isinstance(recorded, dict):
            same = same.spelled_as(recorded)
        return same, None, info.record
    if not cfg.force:
        default = default_out_dir(cfg.cls.name)
        other = f" (by default {default})" if default.absolute() != out.absolute() else ""
        raise ValueError(
            f"{out}: a label run of {held}; labeling {cfg.cls.name} here would replace its "
            f"labels (read as {held} by what was made from them): give another --out{other}, "
            "or --force to replace the run"
        )
    if resolved_shard(cfg)[1] > 1:
        raise ValueError(
            f"{out}: a label run of {held}; --force replaces it with {cfg.cls.name}, which a "
            "sharded run cannot do (each shard would clear the folder): run once without "
            "--shard, or give another --out"
        )
    return cfg, held, info.record


def recorded_run(out: Path) -> RunInfo | None:
    """The label run in ``out`` (its ``run.json``), or None when there is none; a
    ``ValueError`` naming the file when it cannot be read."""
    path = out / "run.json"
    if not path.is_file():
        return None
    try:
        return read_run_info(path)
    except (OSError, ValueError) as e:
        raise ValueError(first_line(e)) from None


def clear_outputs(out: Path) -> int:
    """Remove a replaced run's labels, confidence maps, instances and manifest (every split);
    returns how many label maps there were."""
    images = sum(1 for _ in (out / "labels").glob("*/*.png"))
    for sub in RUN_FOLDERS:
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
    (out / "manifest.jsonl").unlink(missing_ok=True)
    return images


def _changed_settings(recorded: dict | None, cfg: LabelConfig) -> str:
    """What differs between the settings ``recorded`` (the run's ``run.json``, as read; None:
    none, or unreadable) and ``cfg``'s, as ``"box_threshold 0.35 -> 0.4"`` phrases (nested
    settings dotted: ``cls.prompts``); the backend's identity (models, revisions, autocast)
    when the settings are the same."""
    before = recorded.get("config") if isinstance(recorded, dict) else None
    if not isinstance(before, dict):
        return "settings unknown"
    now = json.loads(json.dumps(cfg.to_dict()))  # tuples as lists, as run.json holds them

    def changes(a: dict, b: dict, prefix: str = "") -> list[str]:
        out_ = []
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            if isinstance(x, dict) and isinstance(y, dict):
                out_ += changes(x, y, f"{prefix}{key}.")
            elif x != y:  # an unset text option ("") reads "none"
                out_.append(
                    f"{prefix}{key} {'none' if x == '' else x} -> {'none' if y == '' else y}"
                )
        return out_

    ignored = {"out", "force", "progress", "batch_size", "workers", "writers", "writer_queue_mb"}
    ignored |= {"shard", "device", "data", "splits", "local_files_only"}  # none changes a label
    found = changes({k: v for k, v in before.items() if k not in ignored},
                    {k: v for k, v in now.items() if k not in ignored})  # fmt: skip
    return ", ".join(found[:4]) + (", ..." if len(found) > 4 else "") or "backend or models"


def _lock_name(cfg: LabelConfig) -> str:
    """The run folder's lock: one per shard (shards of one run label one folder together)."""
    index, count = resolved_shard(cfg)
    return LOCK_NAME if count == 1 else shard_lock(f"{index}/{count}")


def shard_lock(shard: str) -> str:
    """The lock file of the run's shard ``shard`` (``"0/2"``, as ``--shard`` takes it), which
    ``engine info`` asks to tell a running shard's images from the others'."""
    index, count = shard.split("/")
    return f"{LOCK_NAME}-shard{index}of{count}"


def _record_data_moved(out: Path, cfg: LabelConfig, meta: dict) -> None:
    """A rerun with nothing left to label, given the dataset at another path (moved or copied
    since): ``run.json`` (``meta``, as read) is told where it is now, as a run that labels
    writes it (fuse, review and info read the dataset from there); its models' record stays,
    as no model loads. A run.json from before ``data_resolved`` was recorded is kept while its
    ``config.data`` names the same folder: rewritten, its hash changed and the next fuse fused
    every image again."""
    path = out / "run.json"
    resolved = str(Path(cfg.data).resolve())
    config = meta.get("config") if isinstance(meta.get("config"), dict) else None
    if config is None:
        return
    before = meta["data_resolved"] if "data_resolved" in meta else _resolved(config.get("data"))
    if before == resolved:  # resolved only when not recorded (a filesystem call)
        return
    log.info("%s: the dataset is now %s (was %s)", path, resolved, meta.get("data_resolved"))
    # a relative path as typed would start from this call's folder, not from the environment's
    # cwd (the labelling call's, which the record keeps): written resolved then
    data = cfg.data if Path(cfg.data).is_absolute() else resolved
    atomic_write_json(path, {**meta, "config": {**config, "data": data}, "data_resolved": resolved})


def _resolved(path: Any) -> str | None:
    """``path`` (a recorded ``config.data``) resolved, None when it is no path."""
    return str(Path(path).resolve()) if isinstance(path, str) and path else None


def _same_run(recorded: dict | None, chash: str) -> dict | None:
    """The run.json a call writes over (``recorded``) when the labels its calls made are still
    this run's (the same settings' hash; not after ``--force``, which leaves none), for their
    warnings to be kept beside this call's (:func:`engine.runinfo.warnings_entry`)."""
    return recorded if recorded is not None and recorded.get("config_hash") == chash else None
