"""The canvas a scene is painted on: image, 7-class label map and object ownership together.

Every stroke paints the image, the label and the owner map with the same mask, so the labels are
exact by construction: a pixel belongs to whatever was painted there last. ``owner`` holds the
object id (1..) of countable objects (bicycles, cars, humans, ...); 0 is "stuff" (sky, ground).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Canvas:
    """Image ``(H, W, 3) float32``, label ``(H, W) uint8`` (MaSS13K ids), owner ``(H, W) int32``."""

    width: int
    height: int
    image: np.ndarray = field(init=False)
    label: np.ndarray = field(init=False)
    owner: np.ndarray = field(init=False)
    kinds: list[str] = field(init=False)  # kinds[k]: what object k is ("" for 0 = stuff)

    def __post_init__(self) -> None:
        self.image = np.zeros((self.height, self.width, 3), np.float32)
        self.label = np.zeros((self.height, self.width), np.uint8)
        self.owner = np.zeros((self.height, self.width), np.int32)
        self.kinds = [""]

    def new_object(self, kind: str) -> int:
        """Reserve an object id for a countable object of ``kind`` (several strokes may share it)."""
        self.kinds.append(kind)
        return len(self.kinds) - 1

    def _clip(self, mask: np.ndarray, x0: int, y0: int):
        """Slices of the canvas and of the local ``mask`` placed at ``(x0, y0)``; None if outside."""
        mh, mw = mask.shape[:2]
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + mw, self.width), min(y0 + mh, self.height)
        if cx0 >= cx1 or cy0 >= cy1:
            return None
        canvas = (slice(cy0, cy1), slice(cx0, cx1))
        local = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        return canvas, local

    def paint(
        self,
        mask: np.ndarray,
        texture: np.ndarray | Callable[[int, int], np.ndarray],
        label: int,
        x0: int = 0,
        y0: int = 0,
        obj: int = 0,
    ) -> None:
        """Paint ``texture`` where the local ``mask`` ``(h, w)`` (bool or 0/1) is set, the mask's
        top-left corner at canvas ``(x0, y0)``; parts outside the canvas are dropped.

        ``texture``: a ``(3,)`` colour, an ``(h, w, 3)`` float32 array the size of ``mask``, or
        a function ``(rows, cols) -> (rows, cols, 3)`` evaluated only over the tight bounding box
        of the visible masked pixels (so a thin part of a big object costs little at 4K).
        ``label``: MaSS13K class id written under the mask; ``obj``: owner id (0 = stuff).
        """
        clipped = self._clip(mask, x0, y0)
        if clipped is None:
            return
        (cy, cx), (ly, lx) = clipped
        m = mask[ly, lx].astype(bool)
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if not len(rows):
            return
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        m = m[r0:r1, c0:c1]
        canvas = (slice(cy.start + r0, cy.start + r1), slice(cx.start + c0, cx.start + c1))
        if callable(texture):
            tex = np.asarray(texture(r1 - r0, c1 - c0), np.float32)
        else:
            tex = np.asarray(texture, np.float32)
            if tex.ndim == 3:
                tex = tex[ly, lx][r0:r1, c0:c1]
        # copyto with where= is several times faster than boolean fancy indexing on big masks.
        np.copyto(self.image[canvas], tex, where=m[..., None])
        np.copyto(self.label[canvas], np.uint8(label), where=m)
        np.copyto(self.owner[canvas], np.int32(obj), where=m)

    def shade(self, mask: np.ndarray, factor: np.ndarray | float, x0: int = 0, y0: int = 0) -> None:
        """Darken (factor < 1) the image under ``mask`` without changing labels (cast shadows).

        ``mask``: ``(h, w)`` float32 in 0..1, a soft weight; ``factor`` the darkest multiplier.
        """
        clipped = self._clip(mask, x0, y0)
        if clipped is None:
            return
        canvas, local = clipped
        weight = mask[local].astype(np.float32)[..., None]
        self.image[canvas] *= 1.0 - weight * (1.0 - np.float32(factor))

    def instance_map(self, kind: str) -> np.ndarray:
        """``(H, W) uint16`` instance ids of the visible objects of ``kind``: 1..N in painting
        order, 0 elsewhere. Objects fully hidden by later strokes get no id."""
        ids = [k for k, kd in enumerate(self.kinds) if kd == kind]
        lut = np.zeros(len(self.kinds), np.uint16)
        if ids:
            visible = np.bincount(self.owner.ravel(), minlength=len(self.kinds))[ids] > 0
            for n, k in enumerate(np.asarray(ids)[visible], start=1):
                lut[k] = n
        return lut[self.owner]
