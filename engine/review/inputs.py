"""What a review reads besides the label run: its images by split (and the warning on those a run
has not reached), the predictions' folders, the annotation folder checked, and each panel's
binary mask scored against the annotation."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from annotations.fileio import is_dataset_root, output_kind, outputs_around
from annotations.labelmap import read_label
from annotations.labelrun import LabelRun, latest_records, run_folder_of
from engine.annotate import dataset_images, splits_said
from engine.datasets import SegDataset, load_spec
from engine.metrics import binary_class_scores
from engine.text import METRICS, counted

log = logging.getLogger(__name__)

# A panel of a card: its caption, thumbnail path (relative to the gallery), thumbnail, and its
# scores against the image's annotation (None where the image has none)
Panel = tuple[str, str, np.ndarray, dict[str, float | None] | None]


NO_SCORE = 101.0  # the IoU sort key of images without an annotation or a score: after all others


class MissingClassIdError(ValueError):
    """Predictions with several class ids and no ``--pred-class-id``: the command's usage, not
    one image's file, so it stops the gallery."""


def _binary_mask(path: Path, class_id: int | None, seen: set[int] | None = None) -> np.ndarray:
    """The label map at ``path`` as 1 = ``class_id``, 255 = 255, 0 = the rest; ``None``: a
    map that must already be binary (0/1/255). ``seen``: the ids its folder's maps held so far,
    added to until one holds ``class_id`` (:func:`warn_class_id_absent`)."""
    label = read_label(path)
    if seen is not None and class_id not in seen:
        seen.update(np.flatnonzero(np.bincount(label.ravel())).tolist())
    if class_id is None:
        extra = np.setdiff1d(np.unique(label), [0, 1, 255])
        if extra.size:
            raise MissingClassIdError(
                f"{path}: prediction has class ids {extra[:5].tolist()} besides 0/1; "
                "say which id is the new class (--pred-class-id)"
            )
        return label
    return np.where(label == 255, 255, (label == class_id).astype(np.uint8)).astype(np.uint8)


def warn_class_id_absent(folder: Path, class_id: int, seen: set[int]) -> None:
    """Warn when no map of the ``--pred`` ``folder`` drawn held ``class_id`` (``--pred-class-id``)
    while they held other ids than 0 and 255 (``seen``): one id is given for every folder, and
    a 0/1 folder given 7 drew its panels empty and scored IoU 0.00 without a word. A folder
    without any such id (all 0) says nothing: a model may find no object there."""
    others = sorted(seen - {0, 255, class_id})
    if class_id not in seen and others:
        log.warning(
            "%s: no prediction map shown holds --pred-class-id %d, but they hold %s %s: is the "
            "new class another id there? Its panels show none of it and score IoU 0.00",
            folder,
            class_id,
            "id" if len(others) == 1 else "ids",
            ", ".join(map(str, others[:8])) + (", ..." if len(others) > 8 else ""),
        )


def _pred_dirs(pred: str | Sequence[str] | None) -> list[Path]:
    if pred is None:
        return []
    return [Path(pred)] if isinstance(pred, str | os.PathLike) else [Path(d) for d in pred]


def _image_scores(mask: np.ndarray, gt: np.ndarray) -> dict[str, float | None]:
    """IoU and BIoU (x100) and BF1 of the class (1) in ``mask`` against ``gt`` (0/1/255), both
    of the image's size; None where a score is undefined (no class pixel in either)."""
    res = binary_class_scores(mask, gt)
    return {key: None if math.isnan(v := getattr(res, key)) else v for key, _, _ in METRICS}


def _nothing_labelled(run: LabelRun, splits: list[str], chosen: bool) -> str:
    """The error of a run with no pseudo label in ``splits`` (``chosen`` with ``--split``,
    else the run's own): how many images failed there (every one, when the run has none at
    all), pointing at ``engine info RUN``, which lists why; else the run's splits."""
    latest = latest_records(run.root)
    failed = sum(
        1
        for (s, _), rec in latest.items()
        if rec.get("status") != "ok" and (not chosen or s in splits)
    )
    which = ""
    if chosen:
        which = f" in split{'s' if len(splits) > 1 else ''} {', '.join(map(repr, splits))}"
    if failed:
        return (
            f"{run.root}: no labelled image yet{which}: {counted(failed, 'image')} failed "
            f"(see engine info {shlex.quote(str(run.root))})"
        )
    return f"{run.root}: no labelled images to review{which} {splits_said(run)}"


def warn_not_reached(data: str | None, run: LabelRun, splits: Sequence[str]) -> None:
    """Warn of the splits of the dataset the run was to label (run.json's ``config.splits``,
    else every split of the dataset it labelled), holding images, that it has no labels of
    (``splits``: those it has): a run killed after train, before val, was reviewed as train
    alone without a word, while :func:`warn_not_labelled` said a split it had begun. ``engine
    fuse`` refuses such a split by the same rule (:func:`engine.fusion.run.was_to_label`;
    before, restated here without its "this dataset": a review given ``--data`` another
    dataset warned of that one's splits)."""
    from engine.fusion.pseudo import open_pseudo_run
    from engine.fusion.run import was_to_label

    root = Path(data) if data else run.data_root
    if root is None or not run.run_json.is_file():
        return
    try:
        spec, pseudo = load_spec(root), open_pseudo_run(run.root)
        told = list(pseudo.splits) or spec.available_splits()
        to_label = [s for s in told if was_to_label(pseudo, s, root, spec)]
    except (OSError, ValueError):  # the dataset unreadable: the splits' own errors say it
        return
    left = []
    for split in (s for s in to_label if s not in splits):
        with contextlib.suppress(OSError, ValueError):  # no such split: nothing to label
            if SegDataset(spec, split, require_labels=False, lenient=True).samples:
                left.append(split)
    if left:
        log.warning(
            "%s: %s not labelled (yet), which it was to label: the review has %s alone; engine "
            "label with the same settings finishes the run",
            run.root,
            f"split {left[0]!r}" if len(left) == 1 else f"splits {', '.join(left)}",
            f"split {splits[0]!r}" if len(splits) == 1 else f"splits {', '.join(splits)}",
        )


def _split_images(
    data: str | None, run: LabelRun, split: str
) -> tuple[dict[str, Path], Path | None]:
    """``stem -> image path`` of the split (:func:`engine.annotate.dataset_images`, which
    leaves a label without its image to ``engine info``) and the split's image folder (None:
    no dataset known)."""
    images = dataset_images(data, run, split, "engine review")
    root = Path(data) if data else run.data_root
    return images, None if root is None else load_spec(root).image_dir(split)


def check_annotation_folder(gt: Path, class_name: str) -> None:
    """Refuse as ``--gt`` a folder that holds no annotation of one class: an engine output other
    than an annotated subset, or a folder in one (a label run's ``labels/``), and a dataset's
    root or its ``annotations/`` folder. Each was read as 0/1/255 masks of the class: a label
    run's own pseudo labels scored 100 against themselves, and the label maps of a fused dataset
    or a dataset (every class's id) scored whatever class id 1 is, in a gallery that looked
    right. Only the nearest output counts, and in a label run only the folders engine label
    writes (:data:`annotations.labelrun.RUN_FOLDERS`: its labels, confidence maps and
    instances): a user's own masks kept in ``RUN/car_manual`` were refused as "a folder inside
    RUN, a label run", and its confidence maps must not be scored as masks."""
    fix = (
        "give --gt an annotated subset (engine annotate import) or a folder of 0/1/255 masks "
        f"of {class_name}"
    )
    around = outputs_around(gt)
    if around and around[0][1] == "run.json" and run_folder_of(gt) is None:
        return  # a user's own masks kept in a run's folder (RUN/car_manual): not its outputs
    if around and around[0][1] != "subset.json":
        folder = around[0][0]
        what = output_kind(folder)[1]  # type: ignore[index]  # found by it
        inside = "" if folder == gt else f"a folder inside {folder}, "
        raise ValueError(f"{gt}: it is {inside}{what}, not annotated ground truth; {fix}")
    if around:  # a subset's folder, or one in it
        return
    for root in (gt, gt.parent, gt.parent.parent):
        if (root == gt or gt.relative_to(root).parts[0] == "annotations") and is_dataset_root(root):
            held = "a dataset's root" if root == gt else f"a folder of the dataset {root}"
            raise ValueError(
                f"{gt}: it is {held}, whose label maps hold every class's id, not masks of "
                f"{class_name}; {fix} (engine annotate import --format png --png-value ID)"
            )
