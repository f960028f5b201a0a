"""One class against the rest (the paper's Table 4): IoU, Boundary IoU and Boundary F1 of a
single class, from binary masks or from full label maps.

Inputs may be binary masks (0 = not the class, 1 = the class, 255 = ignore in GT / uncertain
in a prediction) or full label maps where the class has its own id. Both become the same binary
map: the class -> 1, everything else -> 0, and in the ground truth 255 stays 255 (ignore). A
prediction's 255 (an uncertain pseudo label) is "not the class": for the class's own three
scores that is the same as any other non-class value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotations.labelmap import holds_only
from engine.metrics.counts import IGNORE, PairCounts, pair_counts
from engine.metrics.evaluator import JSON_COUNTS, SegEvaluator


def to_binary(label: np.ndarray, class_id: int, keep_ignore: bool) -> np.ndarray:
    """``(H, W) uint8`` -> ``(H, W) uint8`` with 1 where ``label == class_id``, 0 elsewhere, and
    255 where ``label == 255`` when ``keep_ignore`` (ground truth)."""
    if not 0 <= class_id < IGNORE:
        raise ValueError(f"class_id must be in 0..254, got {class_id}")
    out = (label == class_id).view(np.uint8)
    if keep_ignore:
        out = out.copy()
        out[label == IGNORE] = IGNORE
    return np.ascontiguousarray(out)


def is_binary_mask(label: np.ndarray) -> bool:
    """True when ``label`` holds only 0, 1 and 255."""
    return holds_only(label, (0, 1, IGNORE))


@dataclass
class ClassScores:
    """Scores of one class against the rest: IoU and BIoU x100, BF1 a fraction; NaN when there
    is nothing to score (the class absent from both maps everywhere)."""

    iou: float  # IoU x100
    biou: float  # Boundary IoU x100
    bf1: float  # Boundary F1 (dataset or per-image aggregation)
    images: int  # image pairs scored
    counts: dict[str, int]  # the eight counts of the class, keys as in the --json "counts"

    def to_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "images": self.images,
            "iou": num(self.iou),
            "biou": num(self.biou),
            "bf1": num(self.bf1),
            "counts": dict(self.counts),
        }


@dataclass
class ClassScorer:
    """Accumulates one class's scores over image pairs (``update(pred, gt) -> self``)."""

    class_id: int = 1  # the class's value in the ground truth (1 for binary masks)
    pred_class_id: int | None = None  # its value in predictions; None: same as class_id
    bf1_mode: str = "dataset"  # Boundary F1 aggregation: "dataset" or "image"
    _ev: SegEvaluator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ev = SegEvaluator(num_classes=2, bf1_mode=self.bf1_mode)

    def binarize(self, pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pid = self.class_id if self.pred_class_id is None else self.pred_class_id
        return to_binary(pred, pid, keep_ignore=False), to_binary(
            gt, self.class_id, keep_ignore=True
        )

    def update(self, pred: np.ndarray, gt: np.ndarray) -> ClassScorer:
        """Add one pair of ``(H, W) uint8`` maps (binary masks or full label maps)."""
        self._ev.update(*self.binarize(pred, gt))
        return self

    @property
    def per_image(self) -> list[PairCounts]:
        """The 2-class counts of each pair added, in order (class 1 is the class)."""
        return self._ev.per_image

    def add_counts(self, counts: PairCounts) -> ClassScorer:
        """Add the 2-class counts of one binarized pair computed elsewhere."""
        self._ev.add_counts(counts)
        return self

    def compute(self) -> ClassScores:
        r = self._ev.compute()
        return ClassScores(
            iou=float(r.iou[1]),
            biou=float(r.biou[1]),
            bf1=float(r.bf1[1]),
            images=r.images,
            counts={n: int(getattr(r.counts, n)[1]) for n in JSON_COUNTS},
        )


def binary_class_counts(
    pred: np.ndarray, gt: np.ndarray, class_id: int = 1, pred_class_id: int | None = None
) -> PairCounts:
    """2-class counts (0 = rest, 1 = the class) of one pair; see :class:`ClassScorer`."""
    pb, gb = ClassScorer(class_id, pred_class_id).binarize(pred, gt)
    return pair_counts(pb, gb, 2)


def binary_class_scores(
    pred: np.ndarray,
    gt: np.ndarray,
    class_id: int = 1,
    pred_class_id: int | None = None,
) -> ClassScores:
    """IoU / BIoU / BF1 of one class against the rest for one pair.

    Args:
        pred: ``(H, W) uint8`` binary mask (0/1/255) or full label map.
        gt: ``(H, W) uint8`` binary mask (0/1/255 = ignore) or full label map (255 = ignore).
        class_id: the class's value in ``gt`` (1 for a binary mask).
        pred_class_id: its value in ``pred``; None: ``class_id``.
    """
    return ClassScorer(class_id, pred_class_id).update(pred, gt).compute()
