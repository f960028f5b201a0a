"""What every format shares: the exporter's record in an exported file (:func:`export_record`,
:func:`exported_from`), an image to export (:class:`ExportImage`), one image's imported mask
(:class:`ImageMask`) and what a label means for the class (:func:`label_role`,
:func:`paint_roles`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from annotations.fileio import read_json, record_root
from annotations.instances import InstanceWindows
from annotations.taxonomy import IGNORE_NAMES, class_key

EXPORT_KEY = "mass_engine_export"  # the exporter's record: COCO's info, a LabelMe file's top level
POLYGON_KEY = "polygon_convention"  # in that record; exports made before it used pixel centres


def export_record(container: object) -> dict | None:
    """The exporter's record (:data:`EXPORT_KEY`) that ``container`` carries (COCO's ``info``,
    a LabelMe file, a Label Studio task's ``data``): a mapping, else None (none, or a value a
    hand edit left that is not a mapping)."""
    record = container.get(EXPORT_KEY) if isinstance(container, dict) else None
    return record if isinstance(record, dict) else None


def record_part(record: dict | None, key: str) -> dict:
    """``record[key]`` where it is a mapping (an export record's ``config``, ``environment``),
    else ``{}``."""
    part = (record or {}).get(key)
    return part if isinstance(part, dict) else {}


EXPORT_PARTS = ("labelme", "labelstudio")  # an export folder's subfolders of per-image files


def exported_from(record: dict, key: str, where: Any = None) -> Path | None:
    """The label run (``key`` "run") or annotated subset ("subset") an export's ``record``
    names, found from here (:func:`annotations.fileio.recorded_root`): as typed, where it was
    recorded, else, ``where`` being the export's file or folder now (``coco.json``,
    ``labelme/``, ``labelstudio/tasks.json``, the export folder), where it was beside the
    export folder (its ``config.out``: the two copied or moved together) and, when that is
    not where it was recorded, that one first. Before, an export folder copied with its project
    (``cp -r proj copy``, the original kept) compared its import with the original's run and
    ``engine info`` on it suggested importing with the original's dataset."""
    beside = None
    if where is not None:
        folder = Path(where) if Path(where).is_dir() else Path(where).parent
        folder = folder.parent if folder.name in EXPORT_PARTS else folder
        beside = (record_part(record, "config").get("out"), folder)
    return record_root(record, record[key], record.get(f"{key}_resolved"), beside)


@dataclass(frozen=True)
class ExportImage:
    """One image to export: where it is (relative path written into the files) and its instances."""

    stem: str  # file stem, the image's key across the engine
    file_name: str  # COCO's file_name: the path in the split's image folder (forward slashes)
    # the run's instances of this image, each mask inside its window: the (N, H, W) masks of
    # 70 instances of a 3840x2160 photo are 580 MB, which reading them took most of the time to
    instances: InstanceWindows
    unannotated: np.ndarray | None = None  # (H, W) bool: a subset's unannotated pixels


@dataclass
class ImageMask:
    """One imported image: its ``(H, W) uint8`` mask (0 / 1 / 255) and where it came from."""

    stem: str
    mask: np.ndarray
    source: str  # the file the annotation was read from
    # annotations (COCO) or shapes (LabelMe) of other categories on it, left out: label -> count
    others: dict[str, int] = field(default_factory=dict)
    export: dict | None = None  # the exporter's record its file carried (EXPORT_KEY), if any
    # the class's name as the file spells it (a category, label or class name that matched
    # --class case-folded); None where the file names no class (PNG masks) or not this one
    spelled: str | None = None
    # where in the file, for a file of many images' annotations that it names by more than the
    # image (Label Studio: "task 4001: annotation 9001"); None where the image says it all
    place: str | None = None

    def count_other(self, label: str) -> None:
        """One more annotation of another label on this image, left out."""
        self.others[label] = self.others.get(label, 0) + 1

    def saw(self, label: str, role: int | None) -> None:
        """A label of this image read in the ``role`` :func:`label_role` gave it: the first
        that names the class is the file's spelling of it."""
        if role == 1 and self.spelled is None:
            self.spelled = label


def as_read(mask: ImageMask) -> ImageMask:
    """What a reader keeps of each image by default (its ``each``): the mask itself."""
    return mask


def _load_json(path: Path) -> object:
    return read_json(path, "annotation file")


def label_role(name: str, class_name: str) -> int | None:
    """1 for the class's category or label (case-insensitive), 255 for the unannotated ones
    (:data:`IGNORE_NAMES`), None for any other."""
    key = class_key(name)
    if key == class_key(class_name):
        return 1
    if key in IGNORE_NAMES:
        return 255
    return None


def paint_roles(mask: np.ndarray, rles: dict[int, list[dict]]) -> None:
    """Paint the union of each role's pycocotools RLEs into ``mask``: the class (1) first, then
    the unannotated regions (255), which win over it."""
    for role in (1, 255):
        found = rles.get(role) or []
        if found:
            union = found[0] if len(found) == 1 else coco_mask.merge(found)
            mask[coco_mask.decode(union) > 0] = role
