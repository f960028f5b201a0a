"""COCO: one JSON for many images. Export builds it (:class:`CocoBuilder`, masks as compressed
RLE or polygons); import reads it back into per-image masks (:func:`coco_to_masks`), with the
polygon convention its exporter used."""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from annotations.instances import MaskWindow
from annotations.interchange.names import check_size, split_stem
from annotations.interchange.records import (
    EXPORT_KEY,
    POLYGON_KEY,
    ExportImage,
    ImageMask,
    _load_json,
    as_read,
    export_record,
    label_role,
    paint_roles,
    record_part,
)
from annotations.numbers import image_hw
from annotations.polygons import (
    COCO,
    LABELME,
    check_near,
    coco_polygons_rle,
    cvat_turned_box,
    flat_to_points,
    mask_to_polygons,
    outline,
    points_to_flat,
    polygons_to_mask,
)
from annotations.rle import RunWindow, checked_rle, crop_to_rle
from annotations.taxonomy import IGNORE_NAMES

log = logging.getLogger(__name__)
MASK_FORMATS = ("rle", "polygon")


class CocoBuilder:
    """A COCO instance-segmentation dict with one category (id 1 = ``class_name``), built one
    image at a time: an export holds one image's masks (inside their boxes) at a time, and
    what it keeps of the others is their compressed segmentations.

    ``mask_format``: "rle" (compressed COCO RLE, exact) or "polygon" (outer outlines; holes
    are filled, see :mod:`annotations.polygons`). Instance ``score`` and ``mask_score`` are
    kept as extra fields (tools ignore them). An image's ``unannotated`` pixels (a subset's)
    are one annotation of category 2, ``unannotated``, which import reads back as 255.
    """

    def __init__(self, class_name: str, mask_format: str = "rle", simplify: float = 0.0):
        if mask_format not in MASK_FORMATS:
            raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
        self.class_name, self.mask_format, self.simplify = class_name, mask_format, simplify
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, item: ExportImage) -> None:
        """One image and its instances (and unannotated pixels)."""
        image_id = len(self.images) + 1
        h, w = item.instances.image_size
        self.images.append({"id": image_id, "file_name": item.file_name, "width": w, "height": h})
        inst = item.instances
        for window, score, mask_score in zip(
            inst.windows, inst.scores, inst.mask_scores, strict=True
        ):
            self._annotate(
                image_id,
                1,
                window,
                (h, w),
                score=round(float(score), 5),
                mask_score=round(float(mask_score), 5),
            )
        if item.unannotated is not None:
            self._annotate(image_id, 2, MaskWindow.from_full(item.unannotated), (h, w))

    def _annotate(
        self,
        image_id: int,
        category: int,
        window: MaskWindow | RunWindow,
        size: tuple[int, int],
        **extra: float,
    ) -> None:
        """One mask, read inside its window (an empty one is no annotation): its RLE or
        polygons are those of the full-size mask, which is never made."""
        crop = window.crop()
        if not crop.any():
            return
        y0, x0 = window.box[:2]
        ys, xs = np.flatnonzero(crop.any(1)), np.flatnonzero(crop.any(0))
        if self.mask_format == "rle":
            seg: object = crop_to_rle(crop, y0, x0, *size)
        else:
            polygons = mask_to_polygons(
                crop, convention=COCO, simplify=self.simplify, offset=(x0, y0)
            )
            seg = [points_to_flat(p) for p in polygons]
        self.annotations.append(
            {
                "id": len(self.annotations) + 1,
                "image_id": image_id,
                "category_id": category,
                "segmentation": seg,
                "area": int(np.count_nonzero(crop)),
                "bbox": [
                    x0 + int(xs[0]),
                    y0 + int(ys[0]),
                    int(xs[-1] - xs[0]) + 1,
                    int(ys[-1] - ys[0]) + 1,
                ],
                "iscrowd": 0,
                **extra,
            }
        )

    def result(self, description: str, info: dict) -> dict:
        """The COCO dict; ``info``: more fields of COCO's ``info``, the export record that names
        the polygon convention among them (an ``info`` of the description alone is read as an
        export older than the record, whose polygons traced pixel centres)."""
        categories = [{"id": 1, "name": self.class_name, "supercategory": "object"}]
        if any(a["category_id"] == 2 for a in self.annotations):
            categories.append({"id": 2, "name": IGNORE_NAMES[0], "supercategory": "object"})
        description = description or f"pseudo labels of {self.class_name}"
        return {
            "info": {"description": description, **(info or {})},
            "images": self.images,
            "categories": categories,
            "annotations": self.annotations,
        }


def coco_to_masks(
    path: str | os.PathLike,
    class_name: str,
    sizes: dict[str, tuple[int, int]],
    doc: object = None,
    each: Callable[[ImageMask], Any] = as_read,
    paint: bool = True,
) -> list[Any]:
    """Read a COCO file: one mask per listed image (listed images count as fully annotated).

    Args:
        sizes: ``stem -> (H, W)`` of the dataset split's images; every COCO image must be one
            of them, at that size.
        doc: the file's parsed JSON, when the caller read it already.
        each: what to keep of each image, made of it as soon as its mask is painted (the
            masks of the file's other images are not held meanwhile).
        paint: False checks the file as import reads it and leaves every mask 0: ``engine
            info`` reads a 13K-image file without decoding its masks.
    Returns:
        ``(H, W) uint8`` masks: 1 = class, 0 = not, 255 = an "unannotated" category region
        (or what ``each`` made of them), in the file's order.
    """
    path = Path(path)
    data = _load_json(path) if doc is None else doc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{path}: not a COCO file (expected an object with an 'images' list)")
    if not data["images"]:
        raise ValueError(f"{path}: the COCO file lists no images")
    roles: dict[int, int] = {}  # category id -> 1 (the class), 255 (unannotated), 0 (other)
    names: dict[int, str] = {}
    for cat in data.get("categories") or []:
        try:
            cat_id, name = int(cat["id"]), str(cat.get("name", ""))
        except (KeyError, TypeError, ValueError, OverflowError):
            raise ValueError(f"{path}: category entry {cat!r} lacks an integer id") from None
        role = label_role(name, class_name) or 0
        # the later one won: a class imported as another; two other categories both are 0
        if names.get(cat_id, name) != name and roles[cat_id] != role:
            raise ValueError(
                f"{path}: category id {cat_id} is given to {names[cat_id]!r} and {name!r}: "
                "annotations name their category by id; give each category its own"
            )
        roles[cat_id], names[cat_id] = role, name
    if 1 not in roles.values():
        raise ValueError(
            f"{path}: no category named {class_name!r} (class names are matched "
            f"case-insensitively; categories: {', '.join(map(repr, names.values())) or 'none'})"
        )
    record = export_record(data.get("info"))
    spelled = next(names[c] for c, role in roles.items() if role == 1)  # the file's category
    convention = _coco_polygon_convention(path, record, data.get("info"), say=paint)
    masks: dict[int, ImageMask] = {}
    stems: set[str] = set()  # the images listed so far: a set, not a scan of masks per image
    for img in data["images"]:
        try:
            stem = split_stem(str(img["file_name"]), sizes)
            image_id = _coco_image_id(img["id"])
            if img.get("width") is None and img.get("height") is None:
                # Label Studio's COCO export gives an image without regions no size: the
                # dataset's (an image the split lacks is still named by check_size)
                hw = sizes.get(stem, (0, 0))
            elif img.get("width") is None or img.get("height") is None:
                raise KeyError("width")  # one of the two: a damaged entry
            else:
                hw = None
        except (KeyError, TypeError, ValueError, OverflowError):
            raise ValueError(
                f"{path}: image entry {img!r} lacks id/file_name/width/height"
            ) from None
        if hw is None:  # int() read 12.7 as 12 and 1e300 as a 300-digit size, said of no file
            hw = image_hw(img, "width", "height", f"{path}: image {img['file_name']!r} has ")
        check_size(path, stem, hw, sizes)
        if stem in stems:  # before, a scan of every image listed so far: 13,000 images, 84M
            raise ValueError(f"{path}: image {stem!r} is listed twice")
        if image_id in masks:  # the first was dropped, its annotations painted on this one
            raise ValueError(
                f"{path}: image id {image_id!r} is given to {masks[image_id].stem!r} and "
                f"{stem!r}: annotations name their image by id; give each image its own"
            )
        mask = np.zeros(hw, np.uint8)
        masks[image_id] = ImageMask(stem, mask, str(path), export=record, spelled=spelled)
        stems.add(stem)
    rles: dict[int, dict[int, list[dict]]] = {}  # image -> 1 or 255 -> its annotations' RLEs
    for k, ann in enumerate(data.get("annotations") or []):
        if not isinstance(ann, dict):
            raise ValueError(f"{path}: annotation {k} is not an object, got {ann!r:.40}")
        try:
            image_id = _coco_image_id(ann.get("image_id"))
            cat = int(ann["category_id"]) if "category_id" in ann else None
        except (TypeError, ValueError, OverflowError):
            raise ValueError(
                f"{path}: annotation {ann.get('id')}: image_id must be an integer or a string and "
                "category_id an integer"
            ) from None
        if image_id not in masks:
            raise ValueError(
                f"{path}: annotation {ann.get('id')} refers to unknown image_id {image_id}"
            )
        if cat is None or cat not in roles:  # None: none given (a category -1 is a real id)
            raise ValueError(
                f"{path}: annotation {ann.get('id')} has "
                + (f"unknown category_id {cat}" if "category_id" in ann else "no category_id")
            )
        target = masks[image_id]
        if roles[cat] == 0:  # another class of a multi-class file: not this subset's
            target.count_other(names[cat])
            continue
        where = f"{path}: annotation {ann.get('id')}"
        seg = ann.get("segmentation")
        hw = target.mask.shape
        if not seg or seg == [[]]:  # a box without a mask (CVAT writes rectangles so)
            rle = _box_region(ann.get("bbox"), hw, where, roles[cat] == 1, ann.get("attributes"))
        else:
            rle = _segmentation_rle(seg, hw, where, convention)
        if rle is not None and paint:  # not painted: checked (above), then let go
            rles.setdefault(image_id, {}).setdefault(roles[cat], []).append(rle)
    target = None  # the loop above's last image: not held while the others are painted
    found = []
    for image_id in list(masks):  # painted one at a time: untouched zeros take no memory
        image = masks.pop(image_id)
        paint_roles(image.mask, rles.pop(image_id, {}))
        found.append(each(image))
        del image  # not held while the next image is painted
    return found


def _coco_image_id(value: object) -> int | str:
    """A COCO image id (or an annotation's ``image_id``) as a key: an integer, or a string as
    some exporters write (``"x7"``), which pycocotools takes as it takes any key (before, such a
    file was refused: "image entry ... lacks id/file_name/width/height"). A string of digits is
    the integer, as before. ``TypeError`` for anything else (none, a list, a boolean)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"not an image id: {value!r}")
    try:
        return int(value)
    except ValueError:
        if value.strip():
            return value
        raise TypeError(f"not an image id: {value!r}") from None


def _box_region(
    box: object, hw: tuple[int, int], where: str, is_class: bool, attributes: object = None
) -> dict | None:
    """An annotation without a segmentation: its ``bbox`` is a region (an RLE) only for the
    unannotated categories (a box drawn around what the annotator could not decide); for the
    class it is no mask, and an error says so rather than import an object as nothing.
    CVAT's COCO export keeps a rotated box's turn in ``attributes.rotation`` (degrees,
    clockwise about its centre, beside the unturned ``bbox``), and its COCO import turns it
    back: so is it read here, rounded as CVAT holds the turned box (:func:`cvat_turned_box`)."""
    h, w = hw
    valid = isinstance(box, list) and len(box) == 4
    if is_class:
        raise ValueError(
            f"{where}: no segmentation"
            + (", only a box" if valid else "")
            + ": draw the object as a polygon or mask (boxes are read for unannotated regions only)"
        )
    if not valid:
        raise ValueError(f"{where}: neither a segmentation nor a bbox [x, y, width, height]")
    try:
        x, y, bw, bh = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: bbox must be 4 numbers, got {box!r}") from None
    corners = np.array([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]])
    degrees = attributes.get("rotation") if isinstance(attributes, dict) else None
    try:
        degrees = float(degrees or 0)
    except (TypeError, ValueError):
        degrees = math.nan
    if not math.isfinite(degrees):
        raise ValueError(f"{where}: attributes.rotation {attributes['rotation']!r} is not a number")
    if degrees % 360:  # as CVAT's import holds the box (Datumaro's Bbox, 2 decimals) and turns it
        check_near(corners, h, w, where)  # before rounding makes 1e307 inf
        corners = cvat_turned_box(*np.around([x, y, x + bw, y + bh], 2), degrees)
    return coco_polygons_rle([corners], h, w, where)


def _coco_polygon_convention(
    path: Path, record: dict | None, info: object = None, say: bool = True
) -> str:
    """pycocotools' pixel corners, the COCO convention; pixel centres for the polygons of an
    ``engine annotate export`` made before the engine wrote corners (its ``record``, which a
    tool that rewrites COCO's ``info`` drops, names no convention; or, made before the engine
    wrote a record, ``info`` its description alone: :func:`_recordless_export`), and for
    X-AnyLabeling's conversion of its own files (:func:`_x_anylabeling_conversion`). ``say``:
    warn where the polygons are read otherwise than as COCO's (not for ``engine info``'s
    check of the file, which reads it once per class and paints nothing)."""
    if record is not None and record.get(POLYGON_KEY, COCO) not in (COCO, LABELME):
        raise ValueError(
            f"{path}: {EXPORT_KEY}.{POLYGON_KEY} is {record[POLYGON_KEY]!r}, not {COCO!r} or "
            f"{LABELME!r}: was the file edited?"
        )
    if record is None and (description := _recordless_export(info)):
        (log.warning if say else log.debug)(
            "%s: an engine export from before its export record (info: %r): its polygons are "
            "read in the pixel-centre convention it was written in",
            path,
            description,
        )
        return LABELME
    if record is None and _x_anylabeling_conversion(info):
        (log.warning if say else log.debug)(
            "%s: X-AnyLabeling's COCO conversion of its LabelMe-style files: its polygons are "
            "read at pixel centres, as X-AnyLabeling drew them (read as COCO's, pixel corners, "
            "each object would lose half a pixel on every side)",
            path,
        )
        return LABELME
    if record is None or POLYGON_KEY in record:
        return COCO
    if record_part(record, "config").get("mask_format") != "polygon":
        return COCO
    log.info("%s: polygons of an older engine export, read in its pixel-centre convention", path)
    return LABELME


def _x_anylabeling_conversion(info: object) -> bool:
    """Whether a COCO file's ``info`` is the one X-AnyLabeling's ``LabelConverter.get_coco_data``
    writes (``contributor`` CVHub, ``url`` its repository): its ``custom_to_coco`` copies the
    vertices of its shapes, pixel centres (labelme's convention, which its canvas and
    ``shape_to_mask`` draw), into COCO's polygons unchanged."""
    return isinstance(info, dict) and "x-anylabeling" in str(info.get("url") or "").lower()


def _recordless_export(info: object) -> str | None:
    """The description of a COCO file's ``info`` when it is the one ``engine annotate export``
    wrote before it recorded its run and settings: a description alone, ``pseudo labels of
    CLASS`` (``from RUN``, after the backend's name, when the command wrote it); else None.
    Its polygons traced pixel centres; a tool that rewrites the file writes an ``info`` of its
    own."""
    if not isinstance(info, dict) or set(info) != {"description"}:
        return None
    text = info["description"]
    return text if isinstance(text, str) and re.search(r"(^|\s)pseudo labels of \S", text) else None


def _segmentation_rle(
    seg: object, hw: tuple[int, int], where: str, convention: str = COCO
) -> dict | None:
    """An annotation's segmentation as pycocotools' RLE (None: polygons that enclose nothing)."""
    h, w = hw
    if isinstance(seg, dict):
        if isinstance(seg.get("size"), list) and list(seg["size"]) != [h, w]:
            raise ValueError(f"{where}: RLE size {seg['size']} differs from the image's {[h, w]}")
        try:
            return checked_rle(seg)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    if isinstance(seg, list):
        polys = outline([flat_to_points(p, where) for p in seg], where)
        if convention == COCO:
            return coco_polygons_rle(polys, h, w, where)
        mask = polygons_to_mask(polys, h, w, convention=convention)  # an older engine export
        return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    raise ValueError(f"{where}: segmentation must be an RLE object or a list of polygons")
