"""An evaluator that accumulates per-image counts and turns them into scores.

State is the list of per-image :class:`PairCounts` (a few integers per class and image), so
evaluators filled in different processes merge exactly by concatenation, and both Boundary F1
aggregations (dataset and per-image) come from the same state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.metrics.counts import PairCounts, pair_counts

BF1_MODES = ("dataset", "image")

# Count names as they appear under "counts" in the JSON report (issue 3), in PairCounts order.
JSON_COUNTS = (
    "iou_intersection",
    "iou_union",
    "biou_intersection",
    "biou_union",
    "bf1_pred_boundary",
    "bf1_pred_matched",
    "bf1_gt_boundary",
    "bf1_gt_matched",
)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as float64, NaN where ``den == 0``."""
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def bf1_from_counts(
    pred_boundary: np.ndarray,
    pred_matched: np.ndarray,
    gt_boundary: np.ndarray,
    gt_matched: np.ndarray,
) -> np.ndarray:
    """Per-class Boundary F from the four counts; NaN where neither map has a boundary pixel.

    One side without boundary pixels while the other has some gives F = 0 (DAVIS: precision 1
    and recall 0, or the reverse); no matches at all gives F = 0.
    """
    pb, pm, gb, gm = (
        np.asarray(a, np.float64) for a in (pred_boundary, pred_matched, gt_boundary, gt_matched)
    )
    precision = np.divide(pm, pb, out=np.zeros_like(pb), where=pb > 0)
    recall = np.divide(gm, gb, out=np.zeros_like(gb), where=gb > 0)
    s = precision + recall
    f = np.divide(2 * precision * recall, s, out=np.zeros_like(s), where=s > 0)
    f[(pb == 0) & (gb == 0)] = np.nan
    return f


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else math.nan


def per_image_bf1(c: PairCounts) -> np.ndarray:
    """Per-class Boundary F of one image for the per-image mode; NaN for classes absent from
    both maps (after zeroing GT-255 pixels).

    A class present in either map but without a boundary pixel in either fills the whole frame
    in one or both maps: F = 1 when it fills both (a perfect prediction), 0 otherwise.
    """
    f = bf1_from_counts(
        c.bf1_pred_boundary, c.bf1_pred_matched, c.bf1_gt_boundary, c.bf1_gt_matched
    )
    present = (c.gt_area > 0) | (c.pred_area > 0)
    flat = present & np.isnan(f)
    f[flat] = (c.gt_area[flat] == c.pred_area[flat]).astype(np.float64)
    f[~present] = np.nan
    return f


@dataclass
class EvalResult:
    """Scores of a set of images. IoU and BIoU are percentages (x100), BF1 a fraction (0..1),
    as in the MaSS13K paper's tables. Per-class arrays are ``(K,) float64`` with NaN where a
    class has nothing to score (zero union / no boundary pixel / absent); means skip NaN."""

    iou: np.ndarray  # per-class IoU x100
    biou: np.ndarray  # per-class Boundary IoU x100
    bf1: np.ndarray  # per-class Boundary F1 (dataset mode: from summed counts; image mode: mean over images where present)
    miou: float  # mean IoU x100 over classes with non-zero union
    mbiou: float  # mean Boundary IoU x100 over classes with non-zero band union
    mbf1: float  # mean Boundary F1 (see bf1_mode)
    images: int  # number of image pairs
    bf1_mode: str  # "dataset" or "image"
    counts: PairCounts  # counts summed over the set

    def to_json(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """The issue's ``--json`` shape: NaN becomes None, counts integer lists by class id."""
        k = len(self.iou)
        names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
        if len(names) != k:
            raise ValueError(f"class_names: expected {k} names, got {len(names)}")

        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "images": int(self.images),
            "mIoU": num(self.miou),
            "mBIoU": num(self.mbiou),
            "mBF1": num(self.mbf1),
            "bf1_mode": self.bf1_mode,
            "classes": [
                {
                    "id": i,
                    "name": names[i],
                    "iou": num(self.iou[i]),
                    "biou": num(self.biou[i]),
                    "bf1": num(self.bf1[i]),
                }
                for i in range(k)
            ],
            "counts": {n: [int(v) for v in getattr(self.counts, n)] for n in JSON_COUNTS},
        }


@dataclass
class SegEvaluator:
    """Accumulates mIoU / Boundary IoU / Boundary F1 counts over image pairs.

    ``SegEvaluator(num_classes=K).update(pred, gt).update(...).compute()``.
    """

    num_classes: (
        int  # K: class ids are 0..K-1; 255 = ignore in ground truth, no class in predictions
    )
    bf1_mode: str = "dataset"  # Boundary F1 aggregation: "dataset" (summed counts) or "image"
    per_image: list[PairCounts] = field(default_factory=list, repr=False)  # one entry per pair

    def __post_init__(self) -> None:
        if self.bf1_mode not in BF1_MODES:
            raise ValueError(f"bf1_mode must be one of {BF1_MODES}, got {self.bf1_mode!r}")
        if not 1 <= self.num_classes <= 255:
            raise ValueError(f"num_classes must be in 1..255, got {self.num_classes}")

    def reset(self) -> SegEvaluator:
        self.per_image.clear()
        return self

    def update(self, pred: np.ndarray, gt: np.ndarray) -> SegEvaluator:
        """Add one pair of ``(H, W) uint8`` label maps (GT 255 = ignore)."""
        self.per_image.append(pair_counts(pred, gt, self.num_classes))
        return self

    def add_counts(self, counts: PairCounts) -> SegEvaluator:
        """Add the counts of one pair computed elsewhere (e.g. in a worker process)."""
        if len(counts.iou_union) != self.num_classes:
            raise ValueError(
                f"counts have {len(counts.iou_union)} classes, evaluator has {self.num_classes}"
            )
        self.per_image.append(counts)
        return self

    def merge(self, other: SegEvaluator) -> SegEvaluator:
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self.per_image.extend(other.per_image)
        return self

    def compute(self) -> EvalResult:
        """Scores over every pair added so far (an empty evaluator gives NaN everywhere)."""
        k = self.num_classes
        total = PairCounts.zeros(k)
        for c in self.per_image:
            total = total + c
        iou = ratio(total.iou_intersection, total.iou_union) * 100
        biou = ratio(total.biou_intersection, total.biou_union) * 100
        if self.bf1_mode == "dataset":
            bf1 = bf1_from_counts(
                total.bf1_pred_boundary,
                total.bf1_pred_matched,
                total.bf1_gt_boundary,
                total.bf1_gt_matched,
            )
            mbf1 = _nanmean(bf1)
        else:
            per = np.array([per_image_bf1(c) for c in self.per_image]).reshape(-1, k)
            with np.errstate(invalid="ignore"):
                scored = ~np.isnan(per)
                bf1 = np.where(
                    scored.any(axis=0),
                    np.nansum(per, axis=0) / np.maximum(scored.sum(axis=0), 1),
                    np.nan,
                )
            mbf1 = _nanmean([_nanmean(row) for row in per]) if len(per) else math.nan
        return EvalResult(
            iou=iou,
            biou=biou,
            bf1=bf1,
            miou=_nanmean(iou),
            mbiou=_nanmean(biou),
            mbf1=mbf1,
            images=len(self.per_image),
            bf1_mode=self.bf1_mode,
            counts=total,
        )
