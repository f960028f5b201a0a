"""LabelMe (and X-AnyLabeling, which writes the same files): one JSON per image. Export writes
an image's instances as polygons (:func:`to_labelme`); import draws its shapes as labelme and
X-AnyLabeling draw them (:func:`labelme_to_mask`)."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from annotations.fileio import first_line
from annotations.interchange.names import check_size, dataset_stem, split_stem
from annotations.interchange.records import (
    ExportImage,
    ImageMask,
    _load_json,
    export_record,
    label_role,
)
from annotations.labelmap import PIL_ERRORS, from_pillow
from annotations.numbers import image_hw
from annotations.polygons import LABELME, LabelmeCanvas, mask_to_polygons
from annotations.taxonomy import IGNORE_NAMES


def to_labelme(item: ExportImage, class_name: str, image_path: str, simplify: float = 0.0) -> dict:
    """A LabelMe dict for one image; ``image_path`` relative to the JSON file's folder."""
    h, w = item.instances.image_size
    shapes = []
    for i, window in enumerate(item.instances.windows):
        offset = (window.box[1], window.box[0])
        for poly in mask_to_polygons(
            window.crop(), convention=LABELME, simplify=simplify, offset=offset
        ):
            shapes.append(
                {
                    "label": class_name,
                    "points": [[float(x), float(y)] for x, y in poly],
                    "group_id": i,
                    "shape_type": "polygon",
                    "flags": {},
                    "description": f"score {float(item.instances.scores[i]):.3f}",
                }
            )
    if item.unannotated is not None:  # a subset's unannotated regions: read back as 255
        for poly in mask_to_polygons(item.unannotated, convention=LABELME, simplify=simplify):
            shapes.append(
                {
                    "label": IGNORE_NAMES[0],
                    "points": [[float(x), float(y)] for x, y in poly],
                    "group_id": None,
                    "shape_type": "polygon",
                    "flags": {},
                    "description": "",
                }
            )
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": h,
        "imageWidth": w,
    }


def is_labelme(doc: object) -> bool:
    """Whether a parsed JSON document is a LabelMe file (an object with ``shapes``)."""
    return isinstance(doc, dict) and "shapes" in doc


def labelme_size(data: dict, path: str | os.PathLike) -> tuple[int, int] | None:
    """A LabelMe file's ``(imageHeight, imageWidth)``; None when it gives neither, as files of
    labelme before 3.x and of converters that leave them out do (optional to labelme's own
    reader, ``LabelFile.load``, which takes the image's size). ``ValueError`` naming the file
    when one is missing or is no whole number of pixels, read as COCO's and Label Studio's
    sizes are (``int()`` read 64.7 as 64: a file of a 64-pixel image passed)."""
    if data.get("imageHeight") is None and data.get("imageWidth") is None:
        return None
    if data.get("imageHeight") is None or data.get("imageWidth") is None:
        raise ValueError(f"{path}: LabelMe file gives one of imageHeight/imageWidth, not both")
    return image_hw(data, "imageWidth", "imageHeight", f"{path}: LabelMe file's ")


# labelme's and X-AnyLabeling's shapes that mark no area (labelme's canvas fills no line, line
# strip or set of points, and shows a point as a dot of its display size); labelme's own
# shape_to_mask paints a line 10 px wide and a point as a disc of radius 5, its defaults, not
# what the annotator drew, and a set of "points" as a polygon
LABELME_NO_AREA = ("line", "linestrip", "point", "points")


def check_no_area(kind: str, role: int, here: str) -> None:
    """A shape of ``kind`` that marks no area (a line, points: :data:`annotations.cvat._NO_AREA`,
    :data:`LABELME_NO_AREA`): an error naming ``here`` where it is the class's (``role`` 1);
    of the unannotated label the caller passes it over (no pixel). The shape named as the file
    names it, quoted: "a points has no area" read as a slip."""
    if role == 1:
        raise ValueError(
            f"{here}: a {kind!r} shape has no area: draw the object as a polygon or mask"
        )


def labelme_to_mask(
    path: str | os.PathLike,
    class_name: str,
    sizes: dict[str, tuple[int, int]],
    doc: object = None,
) -> ImageMask:
    """Read one LabelMe file into an ``(H, W) uint8`` mask (1 = class, 0 = not, 255 =
    unannotated); ``doc``: its parsed JSON, when the caller read it already."""
    path = Path(path)
    data = _load_json(path) if doc is None else doc
    if not is_labelme(data):
        raise ValueError(f"{path}: not a LabelMe file (expected an object with 'shapes')")
    image_path = data.get("imagePath") or path.name
    stem = split_stem(str(image_path), sizes)
    named = dataset_stem(path.stem, sizes)
    if named in sizes and named != stem:  # a file copied as another image's start, say
        raise ValueError(
            f"{path}: named for image {named!r}, but its imagePath names {image_path!r}; make "
            "imagePath name the image it annotates (or rename the file)"
        )
    # a stem not in the split fails below, naming it
    hw = labelme_size(data, path) or sizes.get(stem, (0, 0))
    check_size(path, stem, hw, sizes)
    canvases = {1: LabelmeCanvas(*hw), 255: LabelmeCanvas(*hw)}  # the class, unannotated
    others: dict[str, int] = {}
    spelled = None
    for k, shape in enumerate(data["shapes"] or []):
        if not isinstance(shape, dict):
            raise ValueError(f"{path}: shape {k} is not an object, got {shape!r:.40}")
        label = shape.get("label")
        if isinstance(label, int | float) and not isinstance(label, bool):
            label = str(label)  # a converter's class id: 0 is a label
        elif label is not None and not isinstance(label, str):
            raise ValueError(
                f"{path}: shape {k}: label must be text, got {type(label).__name__} {label!r:.40}"
            )
        label = label or ""
        if not label.strip():  # counted as a label '' and left out: an object lost unsaid
            raise ValueError(
                f"{path}: shape {k} has no label (LabelMe gives every shape one): give it the "
                "class's label or 'unannotated'"
            )
        role = label_role(label, class_name)
        if role is None:  # another class: not this subset's
            others[label] = others.get(label, 0) + 1
            continue
        spelled = label if spelled is None and role == 1 else spelled
        if shape.get("shape_type") in LABELME_NO_AREA:  # as CVAT's polylines and points
            check_no_area(shape["shape_type"], role, f"{path}: shape {k} ({label})")
            continue  # an unannotated mark without area: no pixel
        _draw_labelme_shape(shape, canvases[role], f"{path}: shape {k}")
    out = canvases[1].mask().astype(np.uint8)
    out[canvases[255].mask()] = 255  # unannotated wins over the class
    return ImageMask(stem, out, str(path), others, export_record(data), spelled)


def _points(shape: dict, where: str) -> np.ndarray:
    """A LabelMe shape's ``points`` as ``(K, 2)`` floats; a clear error for anything else."""
    try:
        pts = np.asarray(shape.get("points") or [], dtype=np.float64)
    except (TypeError, ValueError):
        pts = None
    if pts is None or (pts.size and (pts.ndim != 2 or pts.shape[1] != 2)):
        raise ValueError(f"{where}: points must be a list of [x, y] number pairs")
    if not np.isfinite(pts).all():
        raise ValueError(f"{where}: a point has a coordinate that is not a finite number")
    return pts.reshape(-1, 2)


def _mask_patch(data: object, where: str, size: tuple[int, int]) -> np.ndarray:
    """A LabelMe ``mask`` shape's base64 PNG as ``(h, w) bool``; one over twice the image's
    ``size`` (W, H) is refused before it is decoded, as CVAT's mask boxes are."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(str(data), validate=True))) as img:
            if img.width > 2 * size[0] or img.height > 2 * size[1]:
                raise ValueError(
                    f"{where}: its mask is {img.width}x{img.height}, over twice the image's "
                    f"{size[0]}x{size[1]} (no annotation tool draws one: a damaged file)"
                )
            return np.asarray(img) > 0
    except UnidentifiedImageError:
        raise ValueError(f"{where}: 'mask' is not base64 PNG data (not an image)") from None
    except PIL_ERRORS as e:  # binascii.Error is a ValueError
        if not from_pillow(e, where):
            raise
        raise ValueError(f"{where}: 'mask' is not base64 PNG data ({first_line(e)})") from None


def _draw_labelme_shape(shape: dict, canvas: LabelmeCanvas, where: str) -> None:
    kind = shape.get("shape_type") or "polygon"
    pts = _points(shape, where)
    if kind in ("polygon", "rotation", "oriented_rectangle", "quadrilateral"):
        # rotated boxes and quadrilaterals, 4 corners (X-AnyLabeling's "rotation" and
        # "quadrilateral", labelme 6's "oriented_rectangle"): drawn as polygons, as they do
        if len(pts) < 3:
            raise ValueError(f"{where}: a {kind} needs at least 3 points, got {len(pts)}")
        canvas.polygon(pts)
    elif kind == "rectangle":
        # labelme: two opposite corners; X-AnyLabeling (2.2.0 on): four, top-left, top-right,
        # bottom-right, bottom-left, of which it reads the first and third (a diagonal)
        if len(pts) not in (2, 4):
            raise ValueError(f"{where}: a rectangle needs 2 points (or 4 corners), got {len(pts)}")
        canvas.rectangle(pts[[0, len(pts) // 2]])
    elif kind == "circle":
        if len(pts) != 2:
            raise ValueError(f"{where}: a circle needs 2 points, got {len(pts)}")
        canvas.circle(pts)
    elif kind == "mask":
        if len(pts) != 2 or not shape.get("mask"):
            raise ValueError(f"{where}: a mask shape needs 2 points and base64 'mask' data")
        patch = _mask_patch(shape["mask"], where, canvas.image.size)
        if patch.ndim == 3:  # an RGB(A) PNG: any channel set
            patch = patch.any(axis=2)
        x0, y0 = (int(v) for v in pts[0])  # as labelme places it: the first point, truncated
        canvas.paste(patch, x0, y0)
    else:
        raise ValueError(
            f"{where}: unsupported shape_type {kind!r} (polygon, rotation, oriented_rectangle, "
            "quadrilateral, rectangle, circle, mask)"
        )
