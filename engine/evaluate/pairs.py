"""A prediction's label maps paired with the ground truth's by stem (composed as either side),
digested to tell a changed folder, read, and fitted to the truth's size."""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotations.fileio import first_line
from annotations.labelmap import read_label
from annotations.taxonomy import Taxonomy
from engine.evaluate.listing import list_labels
from engine.evaluate.truth import Truth
from engine.outputs import unfinished_prediction
from engine.runinfo import file_sha256


def _names(stems: Sequence[str]) -> str:
    """The first five of ``stems``, then ``and N more``."""
    shown = ", ".join(stems[:5])
    return shown + (f" and {len(stems) - 5} more" if len(stems) > 5 else "")


def _composed_as(pred: dict[str, Path], gt: dict[str, Path]) -> dict[str, Path]:
    """``pred`` with each stem the ground truth lacks named as the ground truth's stem that is
    the same name composed otherwise (Unicode NFC: ``vélo`` with one é from a tool on Linux or
    Windows, e + U+0301 as macOS names files), where each side has one such stem: such a
    prediction was "missing" beside an "extra" one that looked the same in the error."""
    extra = [s for s in pred if s not in gt and not s.isascii()]
    if not extra:
        return pred
    nfc = Counter(unicodedata.normalize("NFC", s) for s in [*extra, *gt])
    truth = {unicodedata.normalize("NFC", s): s for s in gt if s not in pred}
    renamed = dict(pred)
    for s in extra:
        key = unicodedata.normalize("NFC", s)
        if nfc[key] == 2 and key in truth:  # this prediction and one truth compose alike
            renamed[truth[key]] = renamed.pop(s)
    return renamed


def pair_files(
    pred_dir: Path, gt_dir: Path | Truth, extra_ok: bool = False
) -> list[tuple[str, Path, Path]]:
    """``(stem, pred_path, gt_path)`` for every ground-truth file, sorted by stem.

    Raises ``ValueError`` naming the files when a prediction is missing or (unless ``extra_ok``:
    the ground truth annotates a subset of the images) has no ground truth.
    """
    if isinstance(gt_dir, Truth):  # a dataset's split: its label maps by their images' stems
        gt, gt_dir = gt_dir.files, gt_dir.where
    else:
        gt = list_labels(gt_dir, "ground-truth")
    pred = _composed_as(list_labels(pred_dir, "prediction"), gt)
    missing = sorted(set(gt) - set(pred))
    extra = sorted(set(pred) - set(gt))
    if missing:  # with the extra ones beside them, which may be the same images renamed
        raise ValueError(
            f"{pred_dir}: {len(missing)} prediction(s) missing for ground truth in {gt_dir}: "
            f"{_names([m + '.png' for m in missing])}"
            + unfinished_prediction(pred_dir)
            + (
                f"; {len(extra)} prediction(s) there have no ground truth: "
                f"{_names([e + '.png' for e in extra])}"
                if extra and not extra_ok
                else ""
            )
        )
    if extra and not extra_ok:
        raise ValueError(
            f"{pred_dir}: {len(extra)} prediction(s) have no ground truth in {gt_dir}: "
            f"{_names([e + '.png' for e in extra])}"
        )
    return [(s, pred[s], gt[s]) for s in sorted(gt)]


def maps_digest(paths: Iterable[Path]) -> str:
    """A short hash of the bytes of the label maps scored, in their stems' order: recorded by
    ``engine evaluate --json`` and ``engine compare --json`` (``maps_sha256``) so that ``engine
    info`` of the record can tell whether they changed since (:func:`maps_changed`)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(file_sha256(p).encode())
    return h.hexdigest()[:16]


def maps_changed(folder: Any, stems: Any, recorded: Any) -> str | None:
    """Why the maps of ``stems`` in ``folder`` are no longer those a record scored (its
    ``maps_sha256``: ``recorded``), or None where they are the same or the record has no
    digest (one written before the forty-sixth round)."""
    if not isinstance(recorded, str) or not isinstance(stems, list) or not folder:
        return None
    if not Path(folder).is_absolute() and not Path(folder).is_dir():
        return None  # named from the folder the command ran in: cannot tell from here
    try:
        found = _composed_as(list_labels(Path(folder), "prediction"), set(stems))
        gone = [s for s in stems if s not in found]
        if gone:
            are = "is" if len(gone) == 1 else "are"
            return (
                f"{folder}: {len(gone)} of the {len(stems)} maps scored {are} gone ({_names(gone)})"
            )
        if maps_digest(found[s] for s in stems) != recorded:
            return f"{folder}: the label maps scored changed since (their bytes differ)"
    except (OSError, ValueError) as e:
        return f"{folder}: the label maps scored cannot be read now ({first_line(e)})"
    return None


def load_pair(
    pred_path: Path,
    gt_path: Path,
    taxonomy: Taxonomy | None,
    resize_pred: str | None = None,
    gt_taxonomy: Taxonomy | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a (pred, gt) pair of label maps, validated against ``taxonomy`` when given (the
    ground truth against ``gt_taxonomy`` when that is given: its own recorded classes).

    A prediction of another size raises ``ValueError`` unless ``resize_pred == "nearest"``
    (nearest neighbour, OpenCV ``INTER_NEAREST_EXACT``, the same pixels as Pillow's NEAREST).
    """
    gt = read_label(gt_path, gt_taxonomy or taxonomy)
    pred = read_label(pred_path, taxonomy)
    return fit_to_truth(pred, pred_path, gt, gt_path, resize_pred), gt


def fit_to_truth(
    pred: np.ndarray, pred_path: Path, gt: np.ndarray, gt_path: Path, resize_pred: str | None
) -> np.ndarray:
    """``pred`` at the ground truth's size: as it is, resized (``resize_pred == "nearest"``),
    or else ``ValueError``. The message's reason names the ground truth by its folder, not its
    path: the same for every file of one size, so a folder of them is one line on the command
    line (:func:`engine.cli.common.grouped`), not one per file."""
    if pred.shape == gt.shape:
        return pred
    if resize_pred != "nearest":
        turned = pred.shape == gt.shape[::-1]  # a quarter turn: resizing would not mend it
        # a dataset's label map may be named otherwise (Cityscapes' <stem>_gtFine_labelTrainIds)
        same = Path(gt_path).stem == Path(pred_path).stem
        raise ValueError(
            f"{pred_path}: size {pred.shape[1]}x{pred.shape[0]} differs from the ground truth's "
            f"{gt.shape[1]}x{gt.shape[0]} ({'the file of the same name' if same else 'its map'} "
            f"in {Path(gt_path).parent}); "
            + (
                "its width and height swapped: a map turned a quarter (of an image whose EXIF "
                "orientation its predictor ignored?), which resizing would not turn back"
                if turned
                else "pass --resize-pred nearest to resize"
            )
        )
    return cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
