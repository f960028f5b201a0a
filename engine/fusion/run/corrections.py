"""``--corrections``: the annotated subsets opened and checked against the fusion before
anything is written (:func:`open_corrections`), and their masks attached to the images they
correct (:func:`with_corrections`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path

from annotations.subset import edited_since_import, read_subset, unlisted_line, unlisted_masks
from annotations.taxonomy import Taxonomy, class_key
from engine.datasets import (
    DatasetSpec,
    SegDataset,
    edited_masks_line,
    image_size,
    replaced_subset_photos,
)
from engine.fusion.pseudo import PseudoRun
from engine.fusion.run.config import Corrections, FuseConfig, Job
from engine.runlock import check_not_being_written
from engine.text import counted, few

log = logging.getLogger(__name__)


def open_corrections(
    config: FuseConfig,
    spec: DatasetSpec,
    taxonomy: Taxonomy,
    runs: list[PseudoRun],
    splits: list[str],
) -> list[Corrections]:
    """The ``--corrections`` subsets, each checked against the fusion before anything is
    written (one-line errors naming the subset and what to give): a subset of one of the new
    classes fused here, on a split fused here, whose images are the dataset's, whose masks
    are the images' size and whose photos were not replaced since the import; no image
    corrected twice for one class."""
    found: list[Corrections] = []
    seen: dict[tuple[str, str, str], Path] = {}
    new = [r.class_name for r in runs]
    for path in config.corrections:
        check_not_being_written(path, "engine fuse", "its annotated masks")
        sub = read_subset(path)
        json_path = path / "subset.json"
        if class_key(sub.class_name) not in {class_key(n) for n in new}:
            raise ValueError(
                f"{json_path}: a subset of {sub.class_name}, which this fusion does not add "
                f"(new classes: {', '.join(new)}): give --corrections a subset of one of them, "
                "or the --pseudo run of its class"
            )
        name = taxonomy.get(sub.class_name).name
        if sub.split not in splits:
            raise ValueError(
                f"{json_path}: a subset of split {sub.split!r}, which this fusion does not fuse "
                f"({', '.join(splits)}): give --split {sub.split} too (its images need pseudo "
                f"labels of every class), or leave this subset out"
            )
        data = SegDataset(spec, sub.split)
        by_stem = {s.stem: s for s in data.samples}
        absent = [s for s in sub.stems if s not in by_stem]
        if absent:
            raise ValueError(
                f"{json_path}: {counted(len(absent), 'image')} of the subset not in "
                f"{spec.image_dir(sub.split)}: {few(absent, total=True)} (a subset of another "
                "dataset? give --corrections a subset imported with --data of this one)"
            )
        edited = []
        for stem in sub.stems:
            key = (class_key(name), sub.split, stem)
            if key in seen:
                raise ValueError(
                    f"{seen[key]} and {path}: both correct {name} on image {sub.split}/{stem}; "
                    "give one subset per image and class (import them as one)"
                )
            seen[key] = path
            w, h = image_size(by_stem[stem].image_path)
            mask, histogram = sub.mask_and_histogram(stem)
            shape = mask.shape
            if edited_since_import(sub, stem, shape, histogram):
                edited.append(stem)
            if shape != (h, w):
                raise ValueError(
                    mask_size(sub.mask_path(stem), shape, by_stem[stem].image_path, w, h)
                )
        replaced = replaced_subset_photos(
            sub, {s: by_stem[s].image_path for s in sub.stems}, spec.image_dir(sub.split)
        )
        if replaced:
            raise ValueError(f"{replaced}; fused as corrections, they would train on them")
        if edited:  # used as they are now
            log.warning("%s", edited_masks_line(sub, edited, "fused"))
        if unlisted := unlisted_masks(sub):  # put in masks/ by hand: not the subset's
            log.warning("%s", unlisted_line(sub, unlisted))
        digest = hashlib.sha256(json_path.read_bytes()).hexdigest()
        found.append(Corrections(path, name, sub.split, sub.stems, digest))
    return found


def mask_size(mask: Path, shape: tuple[int, ...], image: Path, w: int, h: int) -> str:
    """The error of a corrected mask of another size than its image."""
    return (
        f"{mask}: corrected mask is {shape[1]}x{shape[0]} but its image {image} is {w}x{h}: "
        "import the annotations of this image again (engine annotate import --data with the "
        "dataset fused here), or leave the subset out of --corrections"
    )


def with_corrections(
    jobs: list[Job], corrections: list[Corrections], taxonomy: Taxonomy
) -> list[Job]:
    """``jobs`` with each image's corrected masks (class id, mask path) attached."""
    if not corrections:
        return jobs
    masks: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for c in corrections:
        for stem in c.stems:
            masks.setdefault((c.split, stem), []).append(
                (taxonomy.id_of(c.class_name), c.path / "masks" / f"{stem}.png")
            )
    return [
        replace(j, corrections=tuple(sorted(masks[(j.split, j.stem)])))
        if (j.split, j.stem) in masks
        else j
        for j in jobs
    ]
