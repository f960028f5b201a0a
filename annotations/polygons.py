"""Binary masks <-> polygons, in the pixel convention of the tool that reads each file.

Two conventions are in use, and a polygon read in the other one moves its outline by half a
pixel, which deletes thin parts (a one-pixel spoke) outright:

* ``"coco"``: COCO polygons as pycocotools rasterises them (``frPyObjects``), and with it
  every tool that reads COCO polygons through it (CVAT's Datumaro, detectron2, mmdetection).
  A vertex ``(x, y)`` is a point of the continuous image plane in which pixel ``(x, y)`` covers
  ``[x, x + 1) x [y, y + 1)``; a pixel belongs to a polygon when its centre is inside.
  Export traces each connected component's outline along pixel *corners* (integer vertices).
* ``"labelme"``: LabelMe shapes as labelme's own ``shape_to_mask`` (and X-AnyLabeling's)
  rasterises them, with Pillow's ``ImageDraw.polygon(outline=1, fill=1)``: a vertex ``(x, y)``
  is the *centre* of pixel ``(x, y)`` and the pixels on the outline are set. Export traces
  the centres of each component's boundary pixels (``cv2.findContours``).

Import in each convention is the reading tool's own rasteriser, so a file scores as the
annotation tool and the trainers that read it see it. Export in each is exact under it: a
hole-free mask comes back pixel for pixel (tested on blobs, one-pixel lines, diagonals, single
pixels, noise and masks touching the frame). Polygons cannot carry holes (neither format has
hole syntax), so a component's holes come back filled; ``simplify > 0`` (Douglas-Peucker
tolerance in pixels) trades exactness for smaller files and moves the outline by at most about
``simplify`` pixels, except that an outline it would make a line (no area: a component as thin
as the tolerance) stays exact.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as coco_mask

import annotations.rle  # noqa: F401 - its filter for pycocotools' own warning at every decode

COCO = "coco"
LABELME = "labelme"
CONVENTIONS = (COCO, LABELME)
# the largest Douglas-Peucker tolerance (pixels) OpenCV takes: approxPolyDP raises "Epsilon not
# valid" from 1e30 on (and for nan); any tolerance over an outline's size leaves it exact
MAX_SIMPLIFY = 1e30


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"polygon convention must be one of {CONVENTIONS}, got {convention!r}")


def mask_to_polygons(
    mask: np.ndarray,
    *,
    convention: str,
    simplify: float = 0.0,
    offset: tuple[int, int] = (0, 0),
) -> list[np.ndarray]:
    """Outer outlines of a binary mask, one polygon per connected component (8-connected).

    Args:
        mask: ``(H, W)`` bool or 0/1 array.
        convention: ``"coco"`` (pixel-corner vertices) or ``"labelme"`` (pixel centres).
        simplify: Douglas-Peucker tolerance in pixels; 0 keeps the exact outline.
        offset: ``(x0, y0)``, where ``mask`` lies in the image when it is a window of it
            (zero around it): the outlines are the image's, the same vertices as those of the
            full-size mask, without it.

    Returns:
        One ``(K, 2) float64`` array of ``(x, y)`` vertices per component, ``K >= 3`` (a
        LabelMe outline of a one- or two-pixel component repeats its vertices so that every
        polygon is valid COCO and LabelMe, which need at least 3 points). Empty mask: ``[]``.
    """
    _check_convention(convention)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got {mask.shape}")
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    if not m.any():
        return []
    offset = (int(offset[0]), int(offset[1]))
    if convention == COCO:
        outlines = _corner_outlines(m, offset)
    else:
        found = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=offset)
        outlines = [c.reshape(-1, 2) for c in found[0]]
    polys: list[np.ndarray] = []
    for pts in outlines:
        if simplify > 0:
            fewer = cv2.approxPolyDP(pts.astype(np.int32).reshape(-1, 1, 2), float(simplify), True)
            fewer = fewer.reshape(-1, 2)
            # a line (zero area) thins the object (LabelMe) or makes it vanish (COCO); a spiky
            # self-touching outline can have area yet hold no pixel centre: both kept exact
            if cv2.contourArea(fewer) > 0 and (convention != COCO or _holds_a_pixel(fewer)):
                pts = fewer
        pts = pts.astype(np.float64)
        while len(pts) < 3:
            pts = np.concatenate([pts, pts[-1:]])
        polys.append(pts)
    return polys


def _holds_a_pixel(pts: np.ndarray) -> bool:
    """Whether pycocotools fills at least one pixel of the COCO outline ``pts`` (integer
    vertices), rasterised in its own box (an integer shift moves the pixels with it)."""
    shifted = pts - pts.min(axis=0)
    w, h = (shifted.max(axis=0) + 1).tolist()
    rle = coco_polygons_rle([shifted], int(h), int(w))
    return rle is not None and int(coco_mask.area(rle)) > 0  # from the runs: no decode


def _corner_outlines(m: np.ndarray, offset: tuple[int, int] = (0, 0)) -> list[np.ndarray]:
    """Outlines along pixel corners: ``cv2.findContours`` on the mask at twice the size, each
    vertex (a centre of the doubled mask's boundary pixels, ``u``) moved to the pixel corner
    it lies a quarter pixel inside of, ``floor((u + 1) / 2)``. pycocotools fills such an
    outline with exactly the mask's pixels (holes filled); only the bounding box is doubled."""
    x0, y0, w, h = cv2.boundingRect(m)  # of the non-zero pixels
    doubled = cv2.resize(
        m[y0 : y0 + h, x0 : x0 + w], (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST
    )
    contours, _ = cv2.findContours(doubled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        pts = (c.reshape(-1, 2) + 1) // 2 + np.array([x0 + offset[0], y0 + offset[1]])
        out.append(_drop_redundant(pts))
    return out


def _drop_redundant(pts: np.ndarray) -> np.ndarray:
    """A closed integer polygon without repeated and collinear (straight-through) vertices."""
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
    pts = pts[keep] if keep.any() else pts[:1]
    if len(pts) < 3:
        return pts
    prev, nxt = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
    a, b = pts - prev, nxt - pts
    straight = (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0] == 0) & ((a * b).sum(axis=1) > 0)
    return pts[~straight]


def polygons_to_mask(
    polygons: list[np.ndarray], height: int, width: int, *, convention: str
) -> np.ndarray:
    """Rasterise polygons (``(K, 2)`` ``(x, y)`` vertices, any float) into ``(H, W) bool`` as
    the convention's own tool does: pycocotools for ``"coco"``, Pillow as labelme for
    ``"labelme"``. Overlapping polygons are united; an empty list gives an all-False mask. A
    COCO polygon of fewer than 3 vertices encloses no pixel (pycocotools would read one of 2
    vertices as a box, so it is not passed to it)."""
    _check_convention(convention)
    pts_list = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    if convention == COCO:
        rle = coco_polygons_rle(pts_list, height, width)
        return np.zeros((height, width), bool) if rle is None else coco_mask.decode(rle) > 0
    canvas = LabelmeCanvas(height, width)
    for p in pts_list:
        canvas.polygon(p)
    return canvas.mask()


def turned(points: np.ndarray, degrees: float, about: np.ndarray) -> np.ndarray:
    """``(K, 2)`` points turned ``degrees`` clockwise on screen (y points down) about ``about``,
    as Label Studio's Konva rotates rectangles and ellipses (CVAT's boxes are turned in its own
    order of operations: :func:`cvat_turned_box`)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    with np.errstate(invalid="ignore", over="ignore"):  # inf or NaN: refused by the caller
        return (np.asarray(points, np.float64) - about) @ np.array([[c, s], [-s, c]]) + about


def cvat_turned_box(x0: float, y0: float, x1: float, y1: float, degrees: float) -> np.ndarray:
    """A box's ``(4, 2)`` corners as CVAT turns a rotated box into the polygon its mask export
    fills (``RotatedBoxesToPolygons``, ``cvat/apps/dataset_manager/formats/transformations.py``):
    ``degrees`` clockwise on screen about the centre ``(x0 + (x1 - x0) / 2, ...)``, in its own
    order of operations, each coordinate then rounded to 2 decimals as Datumaro's ``Polygon``
    holds its points. Unrounded, 42 of 300 random rotated boxes had pixels other than CVAT's
    (a turned corner near a fifth of a pixel: pycocotools rounds 5x each coordinate)."""
    a = math.radians(degrees)
    cos, sin = math.cos(a), math.sin(a)
    cx, cy = x0 + (x1 - x0) / 2, y0 + (y1 - y0) / 2
    corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    out = [
        (cx + cos * (x - cx) - sin * (y - cy), cy + sin * (x - cx) + cos * (y - cy))
        for x, y in corners
    ]
    return np.around(np.array(out, np.float64), 2)


def ellipse_outline(
    cx: float, cy: float, rx: float, ry: float, degrees: float = 0.0, vertices: int = 72
) -> np.ndarray:
    """An ellipse's outline, ``vertices`` points, turned ``degrees`` clockwise about its centre."""
    t = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    centre = np.array([cx, cy])
    return turned(centre + np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1), degrees, centre)


def outline(polygons: list[np.ndarray], where: str) -> list[np.ndarray]:
    """``polygons`` (each ``(K, 2)``), unless none has 3 points: a line or a point encloses
    nothing, which is a ``ValueError`` naming ``where``, as LabelMe refuses such a polygon
    (:func:`coco_polygons_rle` would read it as no object)."""
    if all(len(p) < 3 for p in polygons):
        most = max((len(p) for p in polygons), default=0)
        raise ValueError(f"{where}: a polygon needs at least 3 points, got {most}")
    return polygons


def coco_polygons_rle(
    polygons: list[np.ndarray], height: int, width: int, where: str = "a polygon"
) -> dict | None:
    """COCO polygons as pycocotools' RLE (their union), to merge with more before one decode;
    None when no polygon has 3 vertices. ``ValueError`` naming ``where`` for a point that is
    not finite or lies over an image's size beyond its edge: pycocotools walks every edge in
    steps of a fifth of a pixel, and a vertex at 1e300 (a damaged file) crashed the process
    (a segmentation fault), one at 1e30 took all memory."""
    flat = [np.asarray(p, np.float64).reshape(-1, 2) for p in polygons if len(p) >= 3]
    if not flat:
        return None
    check_near(np.concatenate(flat), height, width, where)
    flat = [p.ravel().tolist() for p in flat]
    return coco_mask.merge(coco_mask.frPyObjects(flat, height, width))


def check_near(points: np.ndarray, height: int, width: int, where: str) -> None:
    """``ValueError`` naming ``where`` when one of the ``(K, 2)`` points is not finite or lies
    over the image's size past its edge (:func:`coco_polygons_rle`)."""
    if not np.isfinite(points).all():
        raise ValueError(f"{where}: a point has a coordinate that is not a finite number")
    far = (np.abs(points - [width / 2, height / 2]) > [1.5 * width, 1.5 * height]).any(axis=1)
    if far.any():
        x, y = points[far][0]
        raise ValueError(
            f"{where}: its point ({x:g}, {y:g}) is far outside the {width}x{height} image (over "
            "its size past its edge; no annotation tool draws one: a damaged file)"
        )


class LabelmeCanvas:
    """An ``(H, W)`` mask that LabelMe shapes are drawn onto as labelme's ``shape_to_mask``
    draws each (Pillow, pixel centres, outline included). Many shapes on one canvas cost one
    image, not one each: a LabelMe file of 100 polygons at 4032x3024 reads in 0.05 s instead
    of 0.32 s with a canvas per shape, the same pixels (2-core AMD EPYC, best of 3)."""

    def __init__(self, height: int, width: int) -> None:
        self.image = Image.new("L", (width, height), 0)
        self.draw = ImageDraw.Draw(self.image)

    def polygon(self, points: np.ndarray) -> None:
        if len(points):
            self.draw.polygon([(float(x), float(y)) for x, y in points], outline=1, fill=1)

    def rectangle(self, corners: np.ndarray) -> None:
        """Two opposite corners, any order: the pixels from one to the other, both included."""
        (x0, y0), (x1, y1) = np.min(corners, axis=0), np.max(corners, axis=0)
        self.draw.rectangle([float(x0), float(y0), float(x1), float(y1)], outline=1, fill=1)

    def circle(self, points: np.ndarray) -> None:
        """Its centre, then a point on it."""
        (cx, cy), (px, py) = points
        r = float(np.hypot(cx - px, cy - py))
        self.draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)

    def paste(self, patch: np.ndarray, x0: int, y0: int) -> None:
        """A ``(h, w)`` bool patch with its top-left pixel at ``(x0, y0)``; the part inside."""
        w, h = self.image.size
        ys, xs = (
            slice(max(0, y0), min(h, y0 + patch.shape[0])),
            slice(max(0, x0), min(w, x0 + patch.shape[1])),
        )
        if ys.start < ys.stop and xs.start < xs.stop:
            part = patch[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
            stencil = Image.fromarray(part.astype(np.uint8) * 255)
            self.image.paste(1, (xs.start, ys.start), stencil)

    def mask(self) -> np.ndarray:
        return np.asarray(self.image, dtype=bool)


def flat_to_points(flat: list[float], source: str = "polygon") -> np.ndarray:
    """COCO's ``[x1, y1, x2, y2, ...]`` -> ``(K, 2)`` float array."""
    try:
        arr = np.asarray(flat, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: a polygon must be a flat list of numbers") from None
    if arr.ndim != 1 or arr.size < 2 or arr.size % 2:
        raise ValueError(
            f"{source}: a polygon must be a flat list of an even number of coordinates, got {arr.size}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{source}: a polygon has a coordinate that is not a finite number")
    return arr.reshape(-1, 2)


def points_to_flat(points: np.ndarray) -> list[float]:
    """``(K, 2)`` -> COCO's flat ``[x1, y1, ...]`` list (ints stay ints in the JSON)."""
    return [float(v) if v != int(v) else int(v) for v in np.asarray(points).ravel()]
