"""What an import read of each image (:class:`Imported`, its mask as PNG bytes), and what it
checks against the export it answers: images left out, masks returned unchanged.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotations.interchange import POLYGON_KEY, ImageMask, exported_from
from annotations.labelmap import IGNORE, EncodedLabel
from annotations.labelrun import LabelRun
from annotations.polygons import LABELME
from engine.annotate.sources import archive_named
from engine.metrics.bootstrap import MATCH_IOU, all_match
from engine.text import counted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Imported:
    """One image's annotation as an import holds it until every file is read and checked: its
    mask as the PNG bytes the subset writes (tens of KB where the array of a 4032x3024 image is
    12 MB), and what the checks need of it."""

    stem: str
    label: EncodedLabel  # 1 = the class, 0 = not, 255 = unannotated
    source: str  # the file the annotation was read from
    others: dict[str, int]  # annotations of other labels on it, left out: label -> count
    export: dict | None  # the exporter's record its file carried, if any
    has_class: bool  # any pixel of the class
    spelled: str | None = None  # the class's name as the file spells it, if it names it
    place: str | None = None  # where in the file (a Label Studio task), if the image is not all

    @classmethod
    def of(cls, m: ImageMask) -> Imported:
        label = EncodedLabel.of(m.mask)
        has_class = bool(label.histogram[1])
        return cls(m.stem, label, m.source, m.others, m.export, has_class, m.spelled, m.place)


def spelled_as_files(found: list[Imported], class_name: str) -> str:
    """The class's name as the annotation files spell it (``Bicycle`` for ``--class BICYCLE``
    on a COCO category ``Bicycle``, the spelling of the label run it was exported from), when
    they spell it one way; else ``class_name`` as given (PNG masks name no class). What is
    written keeps the spelling recorded first, as a run does for later commands; before, the
    subset took ``--class``'s and its report was titled ``BICYCLE``."""
    spellings = {m.spelled.strip() for m in found if m.spelled is not None}
    return spellings.pop() if len(spellings) == 1 else class_name


def _imported(read: Callable[[Path], ImageMask], path: Path) -> Imported:
    return Imported.of(read(path))


def left_out(found: list[Imported], class_name: str, hint: str = "") -> dict[str, int]:
    """The annotations of other categories in the imported files (``label -> count``), said in
    one warning: a file that annotates several classes gives one subset per class. When the
    files hold other labels and not one shape of the class, the class is likely named otherwise
    there, and that is an error listing the labels."""
    counts: Counter[str] = Counter()
    for m in found:
        counts.update(m.others)
    if not counts:
        return {}
    listed = ", ".join(f"{label!r} ({n:,})" for label, n in counts.most_common())
    if not any(m.has_class for m in found):
        raise ValueError(
            f"{found[0].source}: no annotation of {class_name!r} in "
            f"{counted(len({m.source for m in found}), 'file')}, only of {listed}; "
            + (hint or "give --class the name the files use (matched case-insensitively)")
        )
    log.warning(
        "left out the annotations of other classes than %s (a subset holds one class): %s",
        class_name,
        listed,
    )
    return dict(counts.most_common())


def unchanged_exports(
    found: list[Imported], fmt: str, archives: dict[str, str] | None = None
) -> list[str]:
    """The runs whose ``engine annotate export`` was imported exactly as exported
    (:func:`unchanged_export`), from the records the files carried: per COCO or Label Studio
    file (whose tasks all carry one export's record), or once for a set of LabelMe files that
    all carry the same export's record. ``archives`` (unpacked folder -> zip download) names
    files read from a zip as ``ARCHIVE!MEMBER`` in the warning, not their deleted copies."""
    if fmt in ("coco", "labelstudio"):  # a file of many images, one export's (or tasks of several)
        files: dict[str, list[Imported]] = {}
        for m in found:
            files.setdefault(m.source, []).append(m)
        groups = [
            (
                f,
                ms[0].export if all(m.export == ms[0].export for m in ms) else None,
                {m.stem: m.label for m in ms},
            )
            for f, ms in files.items()
        ]
    else:  # LabelMe: one file per image, all from one export, compared as one folder
        records = [m.export for m in found]
        if not records or None in records or any(r != records[0] for r in records):
            return []  # a file saved by a tool that dropped our record, or several exports
        folder = str(Path(min(m.source for m in found)).parent)
        groups = [(folder, records[0], {m.stem: m.label for m in found})]
    runs = []
    for f, rec, masks in groups:
        named = archive_named(f, archives or {})
        where = f if named == f else None  # a zip's members: nothing beside their temporary copy
        if rec and (run := unchanged_export(named, masks, rec, where)):
            runs.append(run)
    return runs


def unchanged_export(
    path: str | os.PathLike,
    masks: dict[str, EncodedLabel],
    record: dict,
    where: str | os.PathLike | None,
) -> str | None:
    """The run, when the COCO file ``path`` (or a folder of LabelMe files) whose exporter's
    ``record`` it carried is an ``engine annotate export`` imported exactly as exported
    (``masks``: its images' imported masks): every mask equals the pseudo label of the run it
    was exported from (IoU >= 99.5 where either holds the class, the run's uncertain band left
    out). Logs a warning then, since such a subset scores the pseudo labels at 100: the
    corrections were saved elsewhere, or not made. None when the record names no run (a
    subset's export) or the run cannot be read from here. ``where``: the file or folder read
    (None for a zip download's member, which ``path`` names as ``ARCHIVE!MEMBER``), the run
    looked for beside it where the two were copied together (:func:`exported_from`)."""
    try:
        run = LabelRun.open(exported_from(record, "run", where))
        # polygons carry no holes: such an export comes back with its labels' holes filled
        polygons = record.get(POLYGON_KEY) == LABELME or (
            POLYGON_KEY in record and record["config"]["mask_format"] == "polygon"
        )
        ious = []
        for stem, encoded in masks.items():
            label, mask = run.label(str(record["split"]), stem), encoded.decode()
            iou = _iou(label, mask)
            if polygons and not iou >= MATCH_IOU:
                iou = _iou(_holes_filled(label), mask)
            ious.append(iou)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # not our export, or its run is gone: nothing to compare with
    if not all_match(ious):
        return None
    log.warning(
        "%s: the masks imported from it equal the pseudo labels they were exported from (%s) on "
        "%s: were the corrections saved to this file? A subset of uncorrected pseudo labels "
        "scores them at 100",
        path,
        run.root,
        f"all {len(masks):,} images" if len(masks) > 1 else "its one image",
    )
    return str(run.root)


def _holes_filled(label: np.ndarray) -> np.ndarray:
    """A pseudo label with the holes of its class filled, as its polygons bring it back: the
    pixels ``ndimage.binary_fill_holes(label == 1)`` fills (4-connected background that does
    not reach the image's edge), found inside the box of the class (a pixel outside it reaches
    the edge) by OpenCV's flood fill from a frame around the box. ``binary_fill_holes`` took
    0.6-0.8 s an image at 3840x2160, empty or not, most of a COCO polygon or LabelMe import's
    time (before the forty-eighth round); the flood fill takes 0.03 s, the same pixels."""
    import cv2

    cls = label == 1
    rows, cols = np.flatnonzero(cls.any(axis=1)), np.flatnonzero(cls.any(axis=0))
    out = label.copy()
    if not rows.size:
        return out
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    framed = np.zeros((cls[box].shape[0] + 2, cls[box].shape[1] + 2), np.uint8)
    framed[1:-1, 1:-1] = cls[box]
    cv2.floodFill(framed, None, (0, 0), 2, flags=4)  # the background that reaches the frame
    out[box][(framed[1:-1, 1:-1] == 0) & (label[box] == 0)] = 1
    return out


def _iou(label: np.ndarray, mask: np.ndarray) -> float:
    """IoU x100 of the class (1) in a pseudo label and an imported mask, their uncertain or
    unannotated pixels (255) left out; NaN where neither holds it. ``ValueError`` on sizes that
    differ (then the mask is no export of that label)."""
    if label.shape != mask.shape:
        raise ValueError("sizes differ")
    known = (label != IGNORE) & (mask != IGNORE)
    a, b = (label == 1) & known, (mask == 1) & known
    union = int((a | b).sum())
    return 100 * int((a & b).sum()) / union if union else math.nan
