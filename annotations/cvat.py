"""CVAT's own export, "CVAT for images 1.1": one ``annotations.xml`` of images and their shapes.

Each ``<image name width height>`` holds shapes with a ``label``: ``<polygon points="x,y;...">``,
``<box xtl ytl xbr ybr rotation>``, ``<mask rle left top width height>``, ``<ellipse cx cy rx ry
rotation>``, and others (polylines, points, cuboids, skeletons) that draw no area; ``<tag>``
elements label the whole image and are no region. What
the pixels are is what CVAT itself makes of them when it exports the same task as COCO or as
segmentation masks (read in ``cvat/apps/dataset_manager``):

* polygon and box coordinates are points of the continuous image plane, written to COCO as they
  are, so they are filled as COCO polygons are (pycocotools, pixel corners), with the
  precision Datumaro (CVAT's dataset library, which reads this XML and writes CVAT's COCO and
  masks) holds them in: float32, rounded to 2 decimals;
* a mask is a run-length list over its box, row-major, starting with a run of 0, its box
  ``width`` x ``height`` pixels from ``left``, ``top`` (CVAT's ``CVATRleToCOCORle``);
* a box's and an ellipse's ``rotation`` turns them clockwise, in degrees, about their centre;
  a turned box is the polygon CVAT's mask export fills (its corners rounded to 2 decimals, as
  Datumaro holds a polygon), an ellipse the pixels OpenCV's ``cv2.ellipse`` fills about its
  centre and radii rounded to whole pixels (CVAT's ``EllipsesToMasks``, which its COCO and mask
  exports both apply);
* polylines, points, cuboids and skeletons have no area: for the class an error naming them,
  for the unannotated label passed over.

Boxes are read for the unannotated regions only, as COCO boxes are: drawn for the class, they
are an error naming them (an object is drawn as a polygon or a mask; CVAT's COCO export writes
a box as a bbox, no mask). An ellipse is read for either, as CVAT's COCO export writes it: a
mask of its label.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from annotations.fileio import read_bytes
from annotations.interchange import (
    ImageMask,
    as_read,
    check_no_area,
    check_size,
    label_role,
    paint_roles,
    split_stem,
)
from annotations.numbers import image_hw
from annotations.polygons import (
    check_near,
    coco_polygons_rle,
    cvat_turned_box,
    ellipse_outline,
    outline,
)
from annotations.rle import crop_to_rle

CVAT_XML = "annotations.xml"  # the file in CVAT's "CVAT for images 1.1" download
_NO_AREA = ("polyline", "points", "cuboid", "skeleton")


def parse_cvat_xml(path: str | os.PathLike) -> ET.Element:
    """The root ``<annotations>`` of a CVAT XML file; ``ValueError`` naming the file when it is
    no XML, or not CVAT's."""
    path = Path(path)
    try:
        root = ET.fromstring(read_bytes(path, "annotation file"))
    except ET.ParseError as e:
        raise ValueError(f"{path}: not valid XML ({e})") from None
    if root.tag != "annotations":
        raise ValueError(f"{path}: not a CVAT XML export (its root is <{root.tag}>)")
    if root.find("track") is not None and root.find("image") is None:
        raise ValueError(
            f"{path}: CVAT's video export (tracks); export the task as 'CVAT for images 1.1'"
        )
    return root


def is_cvat_xml(path: Path) -> bool:
    """Whether ``path`` is a CVAT XML export, by its root element (read cheaply: the start)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"<annotations" in head and (b"<version>" in head or b"<meta" in head)


def cvat_xml_to_masks(
    path: str | os.PathLike,
    class_name: str,
    sizes: dict[str, tuple[int, int]],
    each: Callable[[ImageMask], Any] = as_read,
) -> list[Any]:
    """Read a "CVAT for images 1.1" ``annotations.xml``: one mask per image it lists (every
    listed image counts as annotated, as a COCO file's do). 1 = the class, 255 = an unannotated
    label (over the class), 0 = not; shapes of other labels are left out and counted.

    Args:
        sizes: ``stem -> (H, W)`` of the dataset split's images; every image must be one of
            them, at that size.
        each: what to keep of each image, made of it as soon as its mask is painted (the
            masks of the other images are not held meanwhile).
    """
    path = Path(path)
    found: list[Any] = []
    seen: dict[str, str] = {}
    for image in parse_cvat_xml(path).iter("image"):
        name = image.get("name", "")
        where = f"{path}: image {name!r}"
        if image.get("width") is None or image.get("height") is None:
            raise ValueError(f"{where} lacks integer width and height")
        # as COCO's and Label Studio's sides: "128.0" is 128 (int() refused it as no integer),
        # "128.5" is named with its attribute
        hw = image_hw(image.attrib, "width", "height", f"{where} has ")
        stem = split_stem(name, sizes)
        check_size(path, stem, hw, sizes)
        if stem in seen:
            raise ValueError(f"{where}: listed twice (also as {seen[stem]!r})")
        seen[stem] = name
        mask = _image_mask(image, stem, hw, class_name, str(path), where)
        found.append(each(mask))
        del mask
    if not found:
        raise ValueError(f"{path}: the CVAT export lists no images")
    return found


def _image_mask(
    image: ET.Element, stem: str, hw: tuple[int, int], class_name: str, source: str, where: str
) -> ImageMask:
    h, w = hw
    result = ImageMask(stem, np.zeros(hw, np.uint8), source)
    rles: dict[int, list[dict]] = {1: [], 255: []}
    for k, shape in enumerate(image):
        if shape.tag == "tag":  # an image-level tag, of any label: no region
            continue
        label = shape.get("label", "")
        if not label.strip():  # counted as a label '' and left out: an object lost unsaid
            raise ValueError(
                f"{where}: {shape.tag} {k} has no label (CVAT writes one on every shape): give it "
                "the class's label or 'unannotated'"
            )
        role = label_role(label, class_name)
        if role is None:
            result.count_other(label)
            continue
        result.saw(label, role)
        here = f"{where}: {shape.tag} {k} ({label})"
        if shape.tag in _NO_AREA:
            check_no_area(shape.tag, role, here)
            continue
        rle = _shape_rle(shape, h, w, role, here)
        if rle is not None:
            rles[role].append(rle)
    paint_roles(result.mask, rles)
    return result


def _attribute(shape: ET.Element, name: str, here: str) -> str:
    if name not in shape.attrib:
        raise ValueError(f"{here}: lacks the attribute {name!r}")
    return shape.attrib[name]


def _number(shape: ET.Element, name: str, here: str) -> float:
    text = _attribute(shape, name, here)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{here}: {name}={text!r} is not a number")
    return value


def _shape_rle(shape: ET.Element, h: int, w: int, role: int, here: str) -> dict | None:
    """A shape's pixels as pycocotools' RLE (None: a polygon that encloses nothing)."""
    if shape.tag == "polygon":
        pairs = [p.split(",") for p in _attribute(shape, "points", here).split(";") if p.strip()]
        try:
            points = np.array(pairs, np.float64)
        except ValueError:
            points = np.zeros((0, 3))
        if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
            raise ValueError(f"{here}: points must be 'x,y' number pairs separated by ';'")
        check_near(points, h, w, here)  # before float32 makes 1e300 inf
        return coco_polygons_rle(outline([as_datumaro_holds(points)], here), h, w, here)
    if shape.tag == "mask":
        return _mask_rle(shape, h, w, here)
    if shape.tag == "ellipse":  # a mask of any label in CVAT's own COCO and mask exports
        return _ellipse_rle(shape, h, w, here)
    if shape.tag == "box":
        if role == 1:  # CVAT's COCO export writes it as a bbox, no mask
            raise ValueError(
                f"{here}: a box is no object's outline: draw the object as a polygon or mask "
                "(boxes are read for unannotated regions only)"
            )
        return coco_polygons_rle([_box_outline(shape, here)], h, w, here)
    raise ValueError(
        f"{here}: unknown shape <{shape.tag}>, not one that CVAT for images 1.1 writes (polygon, "
        "mask, box, ellipse, polyline, points, cuboid, skeleton, tag)"
    )


def _mask_rle(shape: ET.Element, h: int, w: int, here: str) -> dict:
    """CVAT's mask: run lengths over its box (row-major, a run of 0 first), placed in the
    image; the part of the box past the image's edge is dropped."""
    left, top = int(_number(shape, "left", here)), int(_number(shape, "top", here))
    bw, bh = int(_number(shape, "width", here)), int(_number(shape, "height", here))
    text = _attribute(shape, "rle", here)
    try:
        runs = np.array([int(v) for v in text.split(",") if v.strip()], np.int64)
    except ValueError:
        raise ValueError(f"{here}: 'rle' must be comma-separated run lengths") from None
    if bw > 2 * w or bh > 2 * h:  # decoded whole: 200 bytes of XML took 3 GB and 14 s
        raise ValueError(
            f"{here}: its box is {bw}x{bh}, over twice the image's {w}x{h} (no annotation tool "
            "draws one: a damaged file)"
        )
    if (runs < 0).any():  # else told as runs covering the box's pixels, which they may
        raise ValueError(f"{here}: 'rle' has a negative run length, {runs[runs < 0][0]}")
    if bw <= 0 or bh <= 0 or runs.sum() != bw * bh:
        raise ValueError(
            f"{here}: its runs cover {int(runs.sum()):,} pixels, not the {bw}x{bh} of its box"
        )
    patch = np.repeat(np.arange(runs.size) % 2 == 1, runs).reshape(bh, bw)
    full = np.zeros((h, w), np.uint8)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + bh, h), min(left + bw, w)
    if y1 > y0 and x1 > x0:
        full[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]
    return coco_mask.encode(np.asfortranarray(full))


def as_datumaro_holds(points: np.ndarray) -> np.ndarray:
    """Coordinates as Datumaro's shapes hold them (``np.float32``, rounded to 2 decimals), so
    that pycocotools fills them as CVAT's own exports do: its rasteriser rounds 5x the
    coordinate, and a 2-decimal value such as 97.16 lands on the other side of a rounding edge
    in float64 than in float32 (measured on 20 images of random polygons: 16 of 8,634 pixels
    differed from Datumaro's reading of the same XML, none after this)."""
    return np.asarray(points, np.float32).round(2).astype(np.float64)


def _rotation(shape: ET.Element, here: str) -> float:
    return _number(shape, "rotation", here) if "rotation" in shape.attrib else 0.0


def _box_outline(shape: ET.Element, here: str) -> np.ndarray:
    """A box's corners; turned by ``rotation`` (degrees clockwise about its centre) as CVAT
    turns it into the polygon its mask export fills, rounded as Datumaro holds that polygon."""
    x0, y0, x1, y1 = as_datumaro_holds(
        np.array([_number(shape, k, here) for k in ("xtl", "ytl", "xbr", "ybr")])
    )
    degrees = _rotation(shape, here)
    if degrees:  # CVAT turns a box whose rotation is not 0 (RotatedBoxesToPolygons)
        return cvat_turned_box(x0, y0, x1, y1, degrees)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def _ellipse_rle(shape: ET.Element, h: int, w: int, here: str) -> dict:
    """An ellipse's pixels as CVAT's COCO and mask exports make them (``EllipsesToMasks`` in
    ``formats/transformations.py``, which ``bindings.py`` applies to every ellipse): OpenCV's
    filled ``cv2.ellipse`` about the centre rounded to a pixel (the pixel's centre), with the
    radii rounded, turned by ``rotation`` (OpenCV's angle: clockwise on screen). CVAT holds an
    ellipse as its centre and the corner (cx + rx, cy - ry) written to 2 decimals
    (``load_anno`` in ``formats/cvat.py``) and takes the radii back as differences: rx 3.50 at
    cx 3.10 is 6.60 - 3.10 = 3.4999999999999996, rounded to 3. Rounding is Python's ``round``
    (halves to even), as CVAT's."""
    cx, cy, rx, ry = (_number(shape, k, here) for k in ("cx", "cy", "rx", "ry"))
    degrees = _rotation(shape, here)
    if rx < 0 or ry < 0:  # OpenCV's own assertion, else
        raise ValueError(f"{here}: a radius is negative (rx={rx:g}, ry={ry:g})")
    check_near(ellipse_outline(cx, cy, rx, ry, degrees), h, w, here)  # before round() and OpenCV
    right, top = float(f"{cx + rx:.2f}"), float(f"{cy - ry:.2f}")
    (x, y), axes = (round(cx), round(cy)), (round(right - cx), round(cy - top))
    # drawn in the window that holds it, moved by whole pixels (the same pixels: a 4032x3024
    # canvas and its encoding cost 67 ms an ellipse); degrees % 360: the same angle to OpenCV
    # (it rounds it to whole degrees, halves to even, and 360 is even), and no loop of whole
    # turns for a damaged 1e300
    reach = max(axes) + 1
    x0, y0 = min(max(x - reach, 0), w), min(max(y - reach, 0), h)
    x1, y1 = max(min(x + reach + 1, w), x0), max(min(y + reach + 1, h), y0)
    window = np.zeros((y1 - y0, x1 - x0), np.uint8)
    if window.size:  # else wholly outside the image
        cv2.ellipse(window, (x - x0, y - y0), axes, degrees % 360, 0, 360, 1, thickness=-1)
    return crop_to_rle(window, y0, x0, h, w)
