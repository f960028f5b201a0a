"""``engine predict``: label every image of a folder (or of a dataset's split) with a trained
checkpoint.

Output folder::

    <stem>.png          (H, W) uint8 label map at the image's original size
    color/<stem>.png    colour preview blended over the image (with ``color=True``)
    predict.json        the resolved config, checkpoint step, taxonomy and environment, and
                        the images that failed (``failed``: image and reason); ``status``
                        is ``running`` until every image was tried (then ``finished``),
                        ``image_count`` how many images the run labels, ``image_bytes``
                        each image's file size by stem, ``warnings`` what the latest call
                        printed (absent when none)

The inference size defaults to ``"auto"``: the size the checkpoint's training validated at
(``engine train --val-size``, in the checkpoint's ``config``), else the release's 4096x3072 (a
converted release checkpoint records no training). A model trained on small images is then
not run on them upsampled to 4K; predict.json records the size used and where it came from.

Images whose label PNG already exists are skipped (resumable), unless ``overwrite`` or the
image's file is no longer the size ``predict.json`` records (``image_bytes``: replaced under the
same name since, :func:`changed_images`); resuming
with other settings than the folder's predict.json records (checkpoint, size, inference mode,
test-time augmentation, guided filter) is refused before anything is written, so one folder
never mixes label maps made two ways; ``overwrite`` with other settings replaces the earlier
label maps, and is refused where some would stay (:func:`replaced_files`). ``out`` must be a folder of predictions (or new): the
images' own folder and a folder of PNG files without ``predict.json`` are refused
(:func:`check_out`). One bad
image (unreadable, smaller than the model's 32 px minimum, out of memory) fails alone: it is
listed in :attr:`PredictResult.failed` with a one-line reason and its neighbours are labelled.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from annotations.fileio import (
    atomic_write_json,
    file_bytes,
    first_line,
    is_disk_error,
    moved_with,
    typed_together,
)
from annotations.labelmap import read_label, write_color_preview, write_label
from engine.datasets import (
    IMAGE_EXTS,
    DatasetSpec,
    SegDataset,
    check_folder_finished,
    listed_file,
    load_image,
    load_spec,
)
from engine.outputs import LABEL_SETTINGS, prediction_record
from engine.progress import track
from engine.runinfo import environment, kept_warnings, warnings_entry
from engine.runlock import check_output_folder, holds_lock, writer
from engine.text import counted, few, joined

log = logging.getLogger(__name__)

AUTO = "auto"
RELEASE_SIZE = (4096, 3072)  # the release's test size for MaSS13K's 4K photos


def inference_size(ckpt: dict[str, Any]) -> tuple[tuple[int, int] | None, str]:
    """The size ``size="auto"`` predicts at, and where it comes from: the validation size of
    the training that wrote ``ckpt`` (``config.val_size``; None: the images' own size), else
    :data:`RELEASE_SIZE` (converted release checkpoints and others without a training config)."""
    config = ckpt.get("config")
    if isinstance(config, dict) and "val_size" in config:
        v = config["val_size"]
        return (None if v is None else (int(v[0]), int(v[1]))), "the checkpoint's validation size"
    return RELEASE_SIZE, "the release's test size (the checkpoint records no training)"


@dataclass
class PredictConfig:
    """One prediction run."""

    checkpoint: str  # a checkpoint written by engine train (last.pt / step_*.pt)
    images: str | None  # folder of images (.jpg/.jpeg/.png), not recursive, or one image;
    # None: the images of ``split`` of the dataset ``data``
    out: str  # output folder for label PNGs
    # inference size (long, short) with aspect kept; None: each image's original size; "auto":
    # the size the checkpoint's training validated at, else RELEASE_SIZE (inference_size)
    size: tuple[int, int] | None | str = AUTO
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    mode: str = "efficient"  # "efficient" | "full" (the release's inference exactly)
    sliding_window: bool = False  # tile the resized image (for images too large for memory)
    amp: bool = True  # bf16 autocast on CUDA
    scales: tuple[float, ...] = (1.0,)  # test-time scales relative to size (mmseg aug test)
    flip: bool = False  # also average the left-right mirrored run (test-time augmentation)
    guided_filter: bool = False  # refine the class maps along the image's edges (not released)
    gf_radius: int = 0  # guided filter window radius in output px; 0: 8 x the upsampling factor
    gf_eps: float = 1e-4  # guided filter regulariser (guide values in 0..1)
    gf_guide: str = "rgb"  # guided filter guide: "rgb" (colour image) | "grey"
    gf_subsample: int = 0  # guided filter fits at 1/N of the output size; 0: 2 x the upsampling
    # factor; 1: the exact filter at full resolution
    color: bool = False  # also write colour previews to <out>/color/
    overwrite: bool = False  # redo images whose label already exists
    progress: bool = True  # progress bar on stderr
    data: str | None = None  # dataset root or spec file (fused datasets too), instead of images
    split: str = "test"  # with ``data``: the split whose images are labelled


@dataclass
class PredictResult:
    """What :func:`predict_dir` did."""

    out: Path  # output folder
    written: list[Path] = field(default_factory=list)  # label PNGs written
    skipped: int = 0  # images whose label already existed
    previews: int = 0  # colour previews added beside label maps that existed (``color``)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (image, one line naming it)
    left_out: list[Path] = field(default_factory=list)  # other files in the images' folder
    seconds: float = 0.0  # wall time of the predictions
    size: tuple[int, int] | None = None  # the inference size used (None: each image's own)
    size_source: str = "given"  # where it came from: "given", or inference_size's reason


def trained_on(ckpt: dict) -> dict[str, str] | None:
    """The dataset and split an ``engine train`` checkpoint was trained on (its config); None
    for a checkpoint without one (converted from the release)."""
    config = ckpt.get("config")
    if not isinstance(config, dict) or not config.get("train_split"):
        return None
    return {"data": str(config.get("data")), "split": str(config["train_split"])}


def resume_refused(meta_path: Path, diffs: list[str]) -> ValueError:
    """The error of :func:`predict_dir` refusing to add label maps to a folder whose
    ``predict.json`` (``meta_path``) records other settings: one line naming the file and
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


def list_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """Image files directly in ``folder``, sorted by name, or ``folder`` itself, one image; and
    the files of the folder that are left out (:func:`other_files`), from one listing. Hidden
    files are left out, as a dataset's listing leaves them out: macOS copies put a ``._a.jpg``
    (AppleDouble metadata, no image) beside each ``a.jpg``."""
    if folder.is_file():
        if folder.suffix.lower() not in IMAGE_EXTS:
            raise ValueError(f"{folder}: not an image ({', '.join(IMAGE_EXTS)})")
        return [folder], []
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    entries = sorted(folder.iterdir())
    # as a dataset's listing: a broken link fails naming it, rather than vanish from the output
    files = [p for p in entries if listed_file(p, IMAGE_EXTS)]
    others = other_files(entries)
    if not files:
        raise ValueError(
            f"{folder}: no images ({', '.join(IMAGE_EXTS)}) found"
            + (f" ({counted(len(others), 'other file')}: {few(others)})" if others else "")
        )
    return files, others


def other_files(entries: list[Path]) -> list[Path]:
    """The files of ``entries`` (a folder's listing) that :func:`list_images` leaves out (not
    ``.jpg/.jpeg/.png``: a ``.tif``, ``.webp``, notes); hidden files are not counted."""
    return [
        p
        for p in entries
        if p.is_file() and p.suffix.lower() not in IMAGE_EXTS and not p.name.startswith(".")
    ]


def input_images(cfg: PredictConfig, spec: DatasetSpec | None) -> tuple[list[Path], list[Path]]:
    """The images ``cfg`` names, and the other files of their folder (:func:`list_images`):
    ``cfg.images`` (a folder or one file), or the images of ``cfg.split`` of the dataset
    ``cfg.data`` (``spec``, read from it by :func:`predict_dir`), found as every command finds
    a split's images (a fused dataset's spec points to the original photos)."""
    if (cfg.images is None) == (cfg.data is None):
        raise ValueError(
            "give the images to label as --images FOLDER, or as --data ROOT with --split SPLIT"
            + (", not both" if cfg.data is not None else "")
        )
    if cfg.data is None:
        images, others = list_images(Path(cfg.images))
        return check_stems(images), others
    samples = SegDataset(spec, cfg.split, require_labels=False).samples
    if not samples:
        raise ValueError(f"{cfg.data}: split {cfg.split!r} has no images")
    return [s.image_path for s in samples], []  # a split's listing refuses a stem twice already


def stem_of(path: Path, spec: DatasetSpec | None) -> str:
    """The stem of ``path``'s label map: its dataset's where a spec's ``image_suffix`` names its
    images (Cityscapes' ``a_leftImg8bit.png`` is ``a``, the name of its ground truth in a fused
    dataset's ``labels/``; before, its map was ``a_leftImg8bit.png`` and ``engine evaluate``
    found no prediction for ``a.png``), else the file's own."""
    if spec is None or spec.image_suffix is None:
        return path.stem
    return spec.image_stem(path.name) or path.stem


def check_stems(images: list[Path]) -> list[Path]:
    """``images``, unless two share a stem (``a.jpg``, ``a.png``): their label maps would be one
    file ``a.png``, the second image skipped as already labelled (or, with ``overwrite``, the
    first one's map replaced). Refused naming the files, before anything is written. Stems that
    differ in case only (``IMG_1.JPG``, ``img_1.png``) clash too: ``IMG_1.png`` and
    ``img_1.png`` are one file where names ignore case (macOS, Windows), and a copy of the
    folder made on Linux keeps one of them there."""
    by_stem: dict[str, list[Path]] = {}
    for p in images:
        by_stem.setdefault(p.stem.casefold(), []).append(p)
    clashes = [ps for ps in by_stem.values() if len(ps) > 1]
    if clashes:
        first = clashes[0]
        one_folder = len({p.parent for p in first}) == 1
        names = [p.name if one_folder else str(p) for p in first]
        more = len(clashes) - 1
        stems = list(dict.fromkeys(p.stem for p in first))
        shared = (
            f"share the stem {first[0].stem!r}, so their label maps would be one file, "
            f"{first[0].stem}.png"
            if len(stems) == 1
            else f"have stems that differ in case only, so their label maps "
            f"({joined([f'{s}.png' for s in stems])}) would be one file on macOS and Windows"
        )
        raise ValueError(
            (f"{first[0].parent}: " if one_folder else "")
            + f"{joined(names)} {shared}"
            + (f" ({counted(more, 'other stem')} likewise)" if more else "")
            + "; rename or move all but one image of each stem"
        )
    return images


def predict_dir(cfg: PredictConfig) -> PredictResult:
    """Predict every image of ``cfg.images`` into ``cfg.out``; see the module docstring. An
    output folder that is no place for predictions (:func:`check_out`) is refused before it is
    locked: nothing is written there, not even the lock file."""
    spec = None
    if cfg.images is None and cfg.data is not None:
        spec = load_spec(cfg.data)  # read once: the folder checked here, the images listed
        spec.check_finished("engine predict")  # engine synth writing it, or stopped half way
    elif cfg.images is not None:  # D/images/test of such a dataset, given by itself
        check_folder_finished(cfg.images, "engine predict")
    check_out(Path(cfg.out), given_folders(cfg, spec))
    from trainer.checkpoint import caller_rng, torch_defaults

    # building the network draws from torch's rng; the warnings it prints are kept in
    # predict.json too: a run under nohup keeps what it said
    with caller_rng(), torch_defaults(), kept_warnings() as said:
        return _predict(cfg, spec, said)


def given_folders(cfg: PredictConfig, spec: DatasetSpec | None) -> list[Path]:
    """The folder of the images ``cfg`` names, known before any is listed: ``--images`` (or
    its file's folder), or the image folder of ``--data``'s split from its spec (``spec``; a
    split whose images lie in subfolders is checked again once they are listed)."""
    if cfg.images is not None:
        given = Path(cfg.images)
        return [given.parent if given.is_file() else given]
    return [] if spec is None else [spec.image_dir(cfg.split)]


def check_out(out: Path, folders: Iterable[Path]) -> None:
    """Refuse an output folder that is not one for predictions, in one line naming it: another
    engine output or a dataset's root (:func:`engine.runlock.check_output_folder`), one of
    ``folders``, those of the images to label (their label maps would go beside them, and with
    ``overwrite`` over PNG images), or a folder of PNG files without ``predict.json``
    (ground-truth labels or images: they would be taken for label maps already made and their
    images skipped)."""
    check_not_image_folder(out, folders)  # said first
    check_output_folder(out, ("predict.json",), "engine predict")
    if not out.is_dir():
        return
    if (out / "predict.json").exists():
        return
    pngs = sorted(p.name for p in out.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if pngs:
        raise ValueError(
            f"{out}: holds {counted(len(pngs), 'PNG file')} ({few(pngs)}) and no predict.json: "
            "no predictions of engine predict (labels or images?), yet they would be taken for "
            "label maps already made, or replaced with --overwrite; give an empty or new --out"
        )


def check_not_image_folder(out: Path, folders: Iterable[Path]) -> None:
    """Refuse ``out`` when it is one of ``folders``, those of the images to label."""
    here = os.path.realpath(out)
    if out.is_dir() and any(os.path.realpath(p) == here for p in folders):
        raise ValueError(
            f"{out}: it holds the images to label; their label maps would go beside them (and "
            "over PNG images): give another --out"
        )


@holds_lock("engine predict", lambda c: c.out, own=("predict.json",))
def _predict(cfg: PredictConfig, spec: DatasetSpec | None, said: list[str]) -> PredictResult:
    """:func:`predict_dir`, holding the output folder's lock (``spec``: ``cfg.data``'s, read;
    ``said``: the warnings printed so far, :func:`engine.runinfo.kept_warnings`)."""
    from engine.devices import bf16_autocast
    from trainer.checkpoint import model_from_checkpoint, weights_digest
    from trainer.inference import (
        MODES,
        GuidedFilter,
        autocast_dtype,
        check_guided_filter,
        check_sliding_window,
        check_tta,
    )
    from trainer.models.massformer import MIN_SIDE
    from trainer.train import resolve_device

    if isinstance(cfg.size, str) and cfg.size != AUTO:
        raise ValueError(f"size must be (W, H), None or {AUTO!r}, got {cfg.size!r}")
    if isinstance(cfg.size, tuple | list) and min(cfg.size) < MIN_SIDE:
        # every image would fail alone, one line each, with the same reason (before, the CLI's
        # check only: a library caller's size=(10, 10) wrote nothing, every image "failed")
        shown = "x".join(map(str, cfg.size))
        raise ValueError(f"--size {shown}: the model needs at least {MIN_SIDE} px per side")
    if cfg.mode not in MODES:
        raise ValueError(f"unknown inference mode {cfg.mode!r}; known: {', '.join(MODES)}")
    check_tta(cfg.scales, cfg.flip, cfg.mode)  # before the model loads or anything is written
    check_sliding_window(cfg.sliding_window, cfg.mode)
    gf = {
        "radius": cfg.gf_radius,
        "eps": cfg.gf_eps,
        "guide": cfg.gf_guide,
        "subsample": cfg.gf_subsample,
    }
    guided = GuidedFilter(**gf) if cfg.guided_filter else None
    if guided is None and gf != asdict(GuidedFilter()):
        # named as the command line spells them (the config field is gf_<name>)
        given = [f"--gf-{k} {v}" for k, v in gf.items() if v != asdict(GuidedFilter())[k]]
        raise ValueError(
            f"{', '.join(given)} only set{'s' if len(given) == 1 else ''} the guided filter, "
            "which is off: add --guided-filter"
        )
    check_guided_filter(guided, cfg.mode)
    images, left_out = input_images(cfg, spec)
    if cfg.images is None:  # --data's images, now listed (their folder: predict_dir checked)
        check_not_image_folder(Path(cfg.out), {p.parent for p in images})
    meta = prediction_record(cfg.out)  # read once: the split, settings and failures it records
    check_same_split(meta, cfg, Path(cfg.out))  # before the model loads
    device = resolve_device(cfg.device)
    # bf16 autocast where the GPU computes in bf16 (compute capability 8.0 on); a T4's or
    # V100's is emulated, slower than fp32: fp32 there, and predict.json's autocast says null
    amp = bf16_autocast(cfg.amp, device)
    model, taxonomy, ckpt = model_from_checkpoint(cfg.checkpoint, device)
    size_source = "given"
    if cfg.size == AUTO:
        size, size_source = inference_size(ckpt)
        cfg = replace(cfg, size=size)
    weights = weights_digest(ckpt["model"])
    out = Path(cfg.out)
    step = int(ckpt["step"])
    run = Path(cfg.checkpoint) if Path(cfg.checkpoint).is_dir() else Path(cfg.checkpoint).parent
    if (training := writer(run)) is not None:  # monitoring a run: a normal use, but said
        log.warning(
            "%s: %s is training it now: these predictions are of its checkpoint at step %s, "
            "not of the finished model",
            run,
            training,
            f"{step:,}",
        )
    earlier: list[Path] = []  # the label maps of other settings that this run replaces
    if diffs := differences(meta, cfg, step, weights):
        if cfg.overwrite:
            earlier = replaced_files(out, images, diffs, spec)
        elif any(p.is_file() for p in out.glob("*.png")):  # of these images or others
            raise resume_refused(out / "predict.json", diffs)
    sizes = image_sizes(images, spec)
    # the failures of other settings are not kept
    kept = [] if diffs else earlier_failures(meta, out, sizes.keys(), spec)
    if not diffs and not cfg.overwrite:
        earlier = changed_images(meta, out, sizes)
    # the calls before this one whose label maps stay (the same settings, no --overwrite):
    # their warnings are kept beside this call's
    earlier_record = meta if not diffs and not cfg.overwrite else None
    out.mkdir(parents=True, exist_ok=True)
    if earlier and meta is not None and meta.get("status") != "running":
        # the earlier record says its folder is not whole before a map goes: a run killed
        # among the removals left it finished, and engine info read 1 label map of 2 as done
        atomic_write_json(out / "predict.json", {**meta, "status": "running"})
    for p in earlier:  # before the record names this run: none passes for this run's later
        p.unlink(missing_ok=True)
    record = {
        "config": asdict(cfg),
        "size_source": size_source,
        # what --device auto and cfg.amp came to here: on a GPU the maps are of bf16 arithmetic
        # (before the forty-second round the record said "auto" only)
        "device_used": str(device),
        "autocast": autocast_dtype(amp, device.type, cfg.mode),
        "checkpoint_step": step,
        "weights_sha256": weights,  # which weights made these label maps
        "model_config": ckpt["model_config"],
        "trained_on": trained_on(ckpt),  # what a report on training images warns about
        "taxonomy": taxonomy.to_dict(),
        "environment": environment(),
        # "running" until every image was tried: a run killed half way keeps it, so that
        # engine info and the scoring commands can say its folder is partial, and why
        "status": "running",
        "image_count": len(images),  # the images this run labels (those already there too)
        "failed": kept,  # the images without a label map, each with its reason
        # each image's file size by stem: a rerun predicts again an image replaced since
        "image_bytes": {**recorded_sizes(meta), **sizes},
        # what this call printed (a checkpoint still training, images predicted again, files
        # of other kinds left out): the console of a nohup run is gone
        **_warnings(said, left_out, cfg, earlier_record),
    }
    atomic_write_json(out / "predict.json", record)
    result = PredictResult(out=out, size=cfg.size, size_source=size_source, left_out=left_out)
    finished = False
    try:
        _label(cfg, images, model, taxonomy, device, guided, result, spec)
        finished = True
    finally:  # an interrupted run records the failures it met too
        failed = [
            {"image": str(p), "reason": r}
            for p, r in result.failed
            if not (
                out / f"{stem_of(p, spec)}.png"
            ).exists()  # a preview's failure: the map is there
        ]
        if failed or finished:
            status = "finished" if finished else "running"
            # warnings: those said since the first record too (``said`` only grows)
            record = {**record, "status": status, "failed": kept + failed}
            record.update(_warnings(said, left_out, cfg, earlier_record))
            atomic_write_json(out / "predict.json", record)
    return result


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


def size_refusal(
    width: int, height: int, size: tuple[int, int] | None, source: str = "given"
) -> str | None:
    """:func:`trainer.inference.size_refusal` in the words of the ``--size`` the user gave:
    ``given`` (``source``, :attr:`PredictResult.size_source`) names ``--size original`` or
    ``--size WxH``, otherwise ``--size auto`` and the size it came to."""
    from trainer.inference import size_refusal

    shown = "original" if size is None else "x".join(map(str, size))
    option = f"--size {shown}" if source == "given" else f"--size auto ({source}: {shown})"
    return size_refusal(width, height, size, option)


def _label(
    cfg: PredictConfig,
    images: list[Path],
    model: torch.nn.Module,
    taxonomy: Any,
    device: torch.device,
    guided: Any,
    result: PredictResult,
    spec: DatasetSpec | None = None,
) -> None:
    """Label ``images`` into ``result.out`` (the loop of :func:`predict_dir`), filling
    ``result``."""
    from trainer.inference import predict_label

    out = result.out
    start = time.perf_counter()
    for path in track(images, "predict", enabled=cfg.progress):
        target = out / f"{stem_of(path, spec)}.png"
        preview = out / "color" / f"{stem_of(path, spec)}.png"
        if target.exists() and not cfg.overwrite:
            result.skipped += 1
            if cfg.color and not preview.exists():  # labelled by a run without --color
                try:
                    write_color_preview(preview, read_label(target), taxonomy, load_image(path))
                    result.previews += 1
                except (OSError, ValueError) as e:
                    if is_disk_error(e):
                        raise  # every preview after it would fail the same way
                    result.failed.append((path, f"{preview}: {first_line(e)}"))
            continue
        try:
            image = load_image(path)
            too_small = size_refusal(image.shape[1], image.shape[0], cfg.size, result.size_source)
            if too_small:
                raise ValueError(too_small)
            label = predict_label(
                model,
                image,
                size=cfg.size,
                mode=cfg.mode,
                sliding_window=cfg.sliding_window,
                device=device,
                amp=cfg.amp,  # bf16 where the GPU computes in it (predict_scores)
                scales=cfg.scales,
                flip=cfg.flip,
                guided_filter=guided,
            )
        except (OSError, ValueError, RuntimeError) as e:  # this image only (torch OOM included)
            message = first_line(e)
            reason = message if str(path) in message else f"{path}: {message}"
            result.failed.append((path, reason))
            continue
        write_label(target, label)
        if cfg.color:
            write_color_preview(preview, label, taxonomy, image)
        result.written.append(target)
    if device.type == "cuda":
        torch.cuda.synchronize()
    result.seconds = time.perf_counter() - start
