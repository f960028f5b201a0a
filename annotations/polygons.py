"""Binary masks <-> polygons, with one documented pixel convention used both ways.

Convention (the one LabelMe and OpenCV use): a vertex ``(x, y)`` is the *centre* of pixel
column ``x``, row ``y``; pixel ``(x, y)`` covers ``[x - 0.5, x + 0.5) x [y - 0.5, y + 0.5)``.

* Export (:func:`mask_to_polygons`) traces the outer boundary of each connected component
  with ``cv2.findContours`` (8-connected, ``RETR_EXTERNAL``). Vertices are the centres of the
  component's boundary pixels; ``CHAIN_APPROX_SIMPLE`` keeps only the corners of straight
  horizontal, vertical and diagonal runs, which loses nothing.
* Import (:func:`polygons_to_mask`) rasterises with ``cv2.fillPoly`` (8-connected edges,
  sub-pixel vertices at 1/16 pixel): a pixel is set when its centre is inside the polygon or
  on its outline.

With these two, a hole-free mask survives export and import pixel-exactly. Polygons cannot
carry holes (COCO and LabelMe have no hole syntax), so a component's holes come back filled;
``simplify > 0`` (Douglas-Peucker tolerance in pixels) trades exactness for smaller files and
moves the boundary by at most about ``simplify`` pixels.

Tools that use corner coordinates (pycocotools' ``annToMask``, CVAT) read these polygons
shifted by half a pixel: the boundary moves by at most one pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4  # fillPoly fixed-point bits: vertices are rounded to 1/16 pixel


def mask_to_polygons(mask: np.ndarray, simplify: float = 0.0) -> list[np.ndarray]:
    """Outer outlines of a binary mask.

    Args:
        mask: ``(H, W)`` bool or 0/1 array.
        simplify: Douglas-Peucker tolerance in pixels; 0 keeps the exact outline.

    Returns:
        One ``(K, 2) float64`` array of ``(x, y)`` pixel-centre vertices per connected
        component, ``K >= 3`` (a one- or two-pixel component repeats its vertices so that
        every polygon is valid COCO, which needs at least 3 points). Empty mask: ``[]``.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got {mask.shape}")
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    if not m.any():
        return []
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys: list[np.ndarray] = []
    for c in contours:
        if simplify > 0 and len(c) > 3:
            c = cv2.approxPolyDP(c, float(simplify), True)
        pts = c.reshape(-1, 2).astype(np.float64)
        while len(pts) < 3:
            pts = np.concatenate([pts, pts[-1:]])
        polys.append(pts)
    return polys


def polygons_to_mask(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterise polygons (pixel-centre ``(x, y)`` vertices, any float) into ``(H, W) bool``.

    Overlapping polygons are united. An empty list gives an all-False mask.
    """
    out = np.zeros((height, width), np.uint8)
    scale = 1 << _SHIFT
    for poly in polygons:
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            continue
        fixed = np.round(pts * scale).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(out, [fixed], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return out.astype(bool)


def flat_to_points(flat: list[float], source: str = "polygon") -> np.ndarray:
    """COCO's ``[x1, y1, x2, y2, ...]`` -> ``(K, 2)`` float array."""
    arr = np.asarray(flat, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2 or arr.size % 2:
        raise ValueError(
            f"{source}: a polygon must be a flat list of an even number of coordinates, got {arr.size}"
        )
    return arr.reshape(-1, 2)


def points_to_flat(points: np.ndarray) -> list[float]:
    """``(K, 2)`` -> COCO's flat ``[x1, y1, ...]`` list (ints stay ints in the JSON)."""
    return [float(v) if v != int(v) else int(v) for v in np.asarray(points).ravel()]
