"""``predict.json`` and what a rerun compares with it: the settings that differ (refused,
or replaced with ``overwrite``), the split, the images replaced since, the failures that
still hold, and the warnings kept."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection
from dataclasses import asdict
from pathlib import Path
from typing import Any

from annotations.fileio import file_bytes, moved_with, typed_together
from engine.datasets import DatasetSpec
from engine.outputs import LABEL_SETTINGS
from engine.runinfo import warnings_entry
from engine.text import counted, few
from trainer.predict.config import PredictConfig
from trainer.predict.inputs import stem_of

log = logging.getLogger(__name__)


def trained_on(ckpt: dict) -> dict[str, str] | None:
    """The dataset and split an ``engine train`` checkpoint was trained on (its config); None
    for a checkpoint without one (converted from the release)."""
    config = ckpt.get("config")
    if not isinstance(config, dict) or not config.get("train_split"):
        return None
    return {"data": str(config.get("data")), "split": str(config["train_split"])}


def resume_refused(meta_path: Path, diffs: list[str]) -> ValueError:
    """The error of :func:`~trainer.predict.run.predict_dir` refusing to add label maps to a folder
    whose ``predict.json`` (``meta_path``) records other settings: one line naming the file and
    every difference ``diffs`` (:func:`differences`)."""
    return ValueError(
        f"{meta_path}: the label maps here were made with other settings "
        f"({'; '.join(diffs)}); rerun with those, give a new --out, or add --overwrite"
    )


def differences(meta: dict | None, cfg: PredictConfig, step: int, weights: str = "") -> list[str]:
    """How the settings a ``predict.json`` record (``meta``, as
    :func:`engine.outputs.prediction_record` reads it) holds differ from ``cfg``'s, one phrase
    each (``size original, not 64x48``); none without a record."""
    if meta is None:
        return []  # no record (nothing was predicted here yet): nothing to hold to
    old = meta["config"]
    new = json.loads(json.dumps(asdict(cfg)))  # tuples as the record's lists

    def shown(key: str, v: Any) -> str:
        if key == "size":
            return "original" if v is None else "x".join(map(str, v))
        return json.dumps(v)

    diffs = [
        f"{k} {shown(k, old[k])}, not {shown(k, new[k])}"
        for k in LABEL_SETTINGS  # a folder is resumed with the same ones only
        if k in old and old[k] != new[k]
    ]
    # the same weights at another path (the run folder moved, the package installed elsewhere)
    same_weights = bool(weights) and meta.get("weights_sha256") == weights
    if (
        "checkpoint" in old
        and not same_weights
        and os.path.realpath(cfg.checkpoint) not in _recorded_places(old["checkpoint"], meta, cfg)
    ):
        diffs.insert(0, f"checkpoint {old['checkpoint']}, not {cfg.checkpoint}")
    elif meta.get("checkpoint_step", step) != step:
        diffs.insert(0, f"checkpoint step {meta['checkpoint_step']}, not {step}")
    elif weights and meta.get("weights_sha256", weights) != weights:
        diffs.insert(
            0,
            f"checkpoint weights {meta['weights_sha256']}, not {weights}: the same file and "
            "step, trained again",
        )
    return diffs


def _recorded_places(path: str, meta: dict, cfg: PredictConfig) -> set[str]:
    """Where the checkpoint a ``predict.json`` record (``meta``) names is now: where it was
    (:func:`_recorded_path`), and where it was beside the predictions' folder, for a project
    moved or copied with both (``cp -r proj copy``: the record's absolute places are the
    original's). Before the forty-sixth round the copy's checkpoint, trained on in the copy,
    was refused as another file: ``checkpoint runs/train/x/last.pt, not runs/train/x/last.pt``,
    one path twice, instead of its new weights."""
    places = {_recorded_path(path, meta)}
    if (moved := moved_with(*typed_together(path, meta), cfg.out)) is not None:
        places.add(os.path.realpath(moved))
    return places


def _recorded_path(path: str, meta: dict) -> str:
    """``path`` as a ``predict.json`` record (``meta``) holds it, typed, resolved from the folder
    its command ran in (its ``environment``'s ``cwd``) where it is relative and that was
    recorded: the same checkpoint typed from another folder (``run/m.pt``, then ``m.pt`` in
    ``run/``) is the same file. Before, a retrained checkpoint predicted from another folder
    was refused as another checkpoint, naming one file twice instead of its new weights."""
    env = meta.get("environment")
    cwd = env.get("cwd") if isinstance(env, dict) else None
    if isinstance(cwd, str) and not os.path.isabs(path):
        path = os.path.join(cwd, path)
    return os.path.realpath(path)


def check_same_split(meta: dict | None, cfg: PredictConfig, out: Path) -> None:
    """Refuse ``--data D --split S`` into a folder whose ``predict.json`` records the label maps
    there as another split's (of ``--data`` too): a folder holds one split's predictions, and
    ``engine evaluate --split S`` on one that mixed two scored the maps of both splits' stems
    it found. Before the forty-fifth round the second split's maps were added beside the first's
    under a record naming the second alone. ``--overwrite`` too: the other split's maps would
    stay beside this run's (as with other settings, :func:`replaced_files`)."""
    old = (meta or {}).get("config") or {}
    held = old.get("split")
    if cfg.images is not None or old.get("images") is not None or not old.get("data"):
        return  # a folder of images given (no split), here or there
    if held is None or held == cfg.split:
        return
    maps = [p for p in out.glob("*.png") if p.is_file()]
    if maps:
        raise ValueError(
            f"{out / 'predict.json'}: the {counted(len(maps), 'label map')} here "
            f"{'is' if len(maps) == 1 else 'are'} of split "
            f"{held!r} of {old.get('data')}, not {cfg.split!r}: a folder holds one split's "
            f"predictions; give split {cfg.split!r} its own --out (or --split {held} to resume "
            "this one)"
        )


def replaced_files(
    out: Path, images: list[Path], diffs: list[str], spec: DatasetSpec | None = None
) -> list[Path]:
    """With ``overwrite`` under other settings (``diffs``) than ``out``'s ``predict.json``
    records: the label maps and previews of ``images`` there, which the run removes before it
    writes its record (an interrupted run then leaves no map of the other settings that a
    resume would take for its own). Refused, in one line naming the record, the differences
    and the files, when ``out`` also holds maps (or previews) of other images: they would stay
    beside this run's under a record that names this run's settings."""
    names = {f"{stem_of(p, spec)}.png" for p in images}
    maps = [p for p in out.glob("*.png") if p.is_file()]
    previews = [p for p in out.glob("color/*.png") if p.is_file()]
    stale = sorted(p.name for p in maps if p.name not in names)
    stale += sorted(f"color/{p.name}" for p in previews if p.name not in names)
    if stale:
        raise ValueError(
            f"{out / 'predict.json'}: the label maps here were made with other settings "
            f"({'; '.join(diffs)}), and {counted(len(stale), 'file')} "
            f"({few(stale)}) "
            f"{'is' if len(stale) == 1 else 'are'} of images this run does not label, which "
            "--overwrite would leave beside its own under its record: give a new --out, or "
            "delete the folder (or those files) first"
        )
    return maps + previews


def _warnings(
    said: list[str], left_out: list[Path], cfg: PredictConfig, earlier: dict | None = None
) -> dict[str, Any]:
    """``predict.json``'s ``warnings``: what the call printed, the files of ``--images`` it left
    out (not images) with them; no key when there is none. ``earlier``: the record of the calls
    whose label maps this one keeps (a resume), whose warnings are kept too."""
    note = [left_out_note(left_out, cfg.images)] if left_out else []  # printed after the run
    return warnings_entry([*said, *note], earlier)


def left_out_note(left_out: list[Path], images: str | os.PathLike | None) -> str:
    """``left out 2 files of DIR that are not .jpg/.jpeg/.png: a.txt, b.tif``: the note the
    command prints after the run, and ``predict.json`` keeps."""
    return (
        f"left out {counted(len(left_out), 'file')} of {images} that "
        f"{'is' if len(left_out) == 1 else 'are'} not .jpg/.jpeg/.png: {few(left_out)}"
    )


def image_sizes(images: list[Path], spec: DatasetSpec | None = None) -> dict[str, int | None]:
    """Each image's file size in bytes, by stem (None: not readable now; it fails alone)."""
    return {stem_of(p, spec): file_bytes(p) for p in images}


def recorded_sizes(meta: dict | None) -> dict[str, int | None]:
    """The image sizes ``out``'s ``predict.json`` record ``meta`` holds (``image_bytes``); none
    in a record of an older engine."""
    sizes = (meta or {}).get("image_bytes")
    return sizes if isinstance(sizes, dict) else {}


def changed_images(meta: dict | None, out: Path, sizes: dict[str, int | None]) -> list[Path]:
    """The label maps (and previews) in ``out`` of images whose file is no longer the size
    ``meta`` records (``sizes``: bytes now, by stem): a photo replaced under the same name, whose
    map is of the old one. They are removed before the run's record is written, and the images
    predicted again, after a warning naming them; before, the resume skipped them and kept the
    old photo's maps. The size, not the modification time (as ``engine label`` does), so that
    images copied or moved elsewhere are the same images; sizes missing from the record (an
    older engine's) are trusted."""
    was = recorded_sizes(meta)
    changed = sorted(
        stem
        for stem, size in sizes.items()
        if size is not None
        and stem in was
        and was[stem] != size
        and (out / f"{stem}.png").is_file()
    )
    if changed:
        log.warning(
            "%s: %s changed since predicted (%s: another file size) will be predicted again",
            out,
            counted(len(changed), "image"),
            few(changed),
        )
    return [p for stem in changed for p in (out / f"{stem}.png", out / "color" / f"{stem}.png")]


def earlier_failures(
    meta: dict | None, out: Path, tried: Collection[str], spec: DatasetSpec | None = None
) -> list[dict[str, str]]:
    """The failures ``out``'s ``predict.json`` record ``meta`` holds (``{"image", "reason"}``)
    that still hold: of images this run does not try again (``tried``: their stems, as
    :func:`image_sizes` keys them), with no label map since. An image
    is known by its label map's stem, not its path as typed: a folder resumed from another
    working directory or after its project moved (``cp -r``, ``mv``) names its images by other
    paths, and before the forty-sixth round an image that failed again was then listed twice,
    under its old path and its new one."""
    return [
        f
        for f in (meta or {}).get("failed") or []
        if isinstance(f, dict)
        and isinstance(f.get("image"), str)
        and (stem := stem_of(Path(f["image"]), spec)) not in tried
        and not (out / f"{stem}.png").exists()
    ]
