"""The images a call labels (a folder, a file, a dataset's split; their label maps'
stems) and the output folder checked to be one for predictions."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from engine.datasets import IMAGE_EXTS, DatasetSpec, SegDataset, listed_file
from engine.runlock import check_output_folder
from engine.text import counted, few, joined
from trainer.predict.config import PredictConfig


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
    ``cfg.data`` (``spec``, read from it by :func:`~trainer.predict.run.predict_dir`), found as
    every command finds a split's images (a fused dataset's spec points to the original photos)."""
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
