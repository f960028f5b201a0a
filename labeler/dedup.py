"""Mask dedup after segmentation: one instance per object across prompts, tiles and queries.

Box NMS before SAM drops real neighbours (two bicycles in a rack, box IoU 0.57) and lets a
negative box swallow an overlapping positive one (a rider's "person" box over the bicycle).
Masks tell objects apart much better, so every backend segments first and deduplicates here.

Pure numpy, no model code: instances in, kept indices out. Masks travel as :class:`MaskCrop`
(a bool mask inside its window of the image), so a 4032x3024 photo with 100 instances never
holds 100 full-resolution arrays; full ``(N, H, W)`` masks are accepted too.

Rules (:class:`DedupRules`, documented in docs/labeler.md):

1. **Negatives.** A positive instance ``i`` is removed when some negative instance ``j``
   explains its mask, ``|m_i & m_j| / |m_i| >= negative_cover``, and its score is lower by the
   margin, ``score_i <= score_j - negative_margin`` (to within ``MARGIN_SLACK``). A negative never removes a positive whose
   mask it does not cover (a rider over a bicycle), nor a near tie (bike 0.48 vs motorcycle 0.50).
2. **Duplicates.** The remaining positives are visited best score first (ties: lower index
   first); an instance is dropped when it matches an already kept one by mask IoU
   ``> iou`` or by intersection over the smaller mask ``>= ios`` (a synonym's mask, the same
   object from a tile, a part of a kept object).
3. Masks with fewer than ``min_area`` pixels (and empty masks) are dropped first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskCrop:
    """A binary mask stored inside its window of the image.

    Attributes:
        y0, x0: top-left pixel of the window in the full image (row, column).
        mask: ``(h, w) bool``; the window covers rows ``y0:y0+h``, columns ``x0:x0+w``.
            Pixels outside the window are background.
    """

    y0: int
    x0: int
    mask: np.ndarray

    @property
    def y1(self) -> int:
        return self.y0 + int(self.mask.shape[0])

    @property
    def x1(self) -> int:
        return self.x0 + int(self.mask.shape[1])

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    @classmethod
    def from_full(cls, mask: np.ndarray) -> MaskCrop:
        """The tight crop of an ``(H, W)`` mask (an empty mask gives a 0x0 window at 0, 0)."""
        mask = np.asarray(mask, bool)
        if mask.ndim != 2:
            raise ValueError(f"mask must be (H, W), got {mask.shape}")
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows) == 0:
            return cls(0, 0, np.zeros((0, 0), bool))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        return cls(y0, x0, mask[y0:y1, x0:x1].copy())

    def to_full(self, height: int, width: int) -> np.ndarray:
        """The ``(height, width) bool`` mask (for tests and small images)."""
        out = np.zeros((height, width), bool)
        out[self.y0 : self.y1, self.x0 : self.x1] = self.mask
        return out


# Slack on the negative margin: scores arrive as float32 (Grounding DINO's prompt scores), where
# 0.7 and 0.6 are 0.09999996 apart; both margin rules (here and labeler.merge.select_queries)
# read such a pair as 0.1 apart, as the scores read when written (5 decimals).
MARGIN_SLACK = 1e-6


@dataclass(frozen=True)
class DedupRules:
    """Thresholds of :func:`dedup_instances` (see the module doc)."""

    iou: float = 0.7  # drop an instance whose mask IoU with a kept one is above this
    ios: float = 0.8  # ... or whose intersection over the smaller mask is at least this
    negative_cover: float = 0.8  # a negative explains a positive when it covers this much of it
    negative_margin: float = 0.1  # ... and the positive's score is lower by at least this
    min_area: int = 1  # masks with fewer pixels are dropped


def _as_crops(masks: Sequence[MaskCrop] | np.ndarray) -> list[MaskCrop]:
    if isinstance(masks, np.ndarray):
        if masks.ndim != 3:
            raise ValueError(f"masks must be (N, H, W) or a list of MaskCrop, got {masks.shape}")
        return [MaskCrop.from_full(m) for m in masks]
    out = list(masks)
    for k, m in enumerate(out):
        if not isinstance(m, MaskCrop):
            raise ValueError(f"masks[{k}] must be a MaskCrop, got {type(m).__name__}")
    return out


def intersection(a: MaskCrop, b: MaskCrop) -> int:
    """Pixels set in both masks (computed on the overlap of their windows only)."""
    y0, y1 = max(a.y0, b.y0), min(a.y1, b.y1)
    x0, x1 = max(a.x0, b.x0), min(a.x1, b.x1)
    if y0 >= y1 or x0 >= x1:
        return 0
    pa = a.mask[y0 - a.y0 : y1 - a.y0, x0 - a.x0 : x1 - a.x0]
    pb = b.mask[y0 - b.y0 : y1 - b.y0, x0 - b.x0 : x1 - b.x0]
    return int(np.count_nonzero(pa & pb))


def dedup_instances(
    masks: Sequence[MaskCrop] | np.ndarray,
    scores: np.ndarray,
    negative: np.ndarray | None = None,
    rules: DedupRules | None = None,
) -> np.ndarray:
    """Indices of the positive instances to keep, best score first.

    Args:
        masks: ``N`` :class:`MaskCrop` in one image's pixel frame, or ``(N, H, W) bool``.
        scores: ``(N,) float`` in 0..1: a positive instance's best positive-prompt score, a
            negative instance's best negative-prompt score.
        negative: ``(N,) bool``, True for instances of a negative prompt; None: all positive.
        rules: thresholds; :class:`DedupRules` defaults when None.

    Returns:
        ``(K,) int64`` indices into ``masks`` of kept positive instances, best score first
        (ties: lower index first). Negative instances are never returned.
    """
    rules = rules or DedupRules()
    crops = _as_crops(masks)
    n = len(crops)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if scores.shape != (n,):
        raise ValueError(f"scores must be ({n},) to match masks, got {scores.shape}")
    neg = np.zeros(n, bool) if negative is None else np.asarray(negative, bool).reshape(-1)
    if neg.shape != (n,):
        raise ValueError(f"negative must be ({n},) to match masks, got {neg.shape}")
    areas = np.array([c.area for c in crops], np.int64)
    valid = areas >= max(rules.min_area, 1)
    order = np.argsort(-scores, kind="stable")
    negatives = [j for j in order if neg[j] and valid[j]]
    kept: list[int] = []
    for i in order:
        if neg[i] or not valid[i]:
            continue
        explained = any(
            scores[j] - scores[i] >= rules.negative_margin - MARGIN_SLACK
            and intersection(crops[i], crops[j]) >= rules.negative_cover * areas[i]
            for j in negatives
        )
        if explained:
            continue
        duplicate = False
        for k in kept:
            inter = intersection(crops[i], crops[k])
            if inter == 0:
                continue
            union = areas[i] + areas[k] - inter
            if inter > rules.iou * union or inter >= rules.ios * min(areas[i], areas[k]):
                duplicate = True
                break
        if not duplicate:
            kept.append(int(i))
    return np.array(kept, np.int64)
