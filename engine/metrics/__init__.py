"""Exact, fast segmentation metrics: mIoU, Boundary IoU (MaSS13K) and Boundary F1 (DAVIS).

``pair_counts`` gives the integer counts of one pair for all classes at once;
``SegEvaluator`` accumulates them over a set; ``binary_class_scores`` / ``ClassScorer`` score one
class against the rest (the paper's Table 4). Definitions: DESIGN.md section 5.
"""

from engine.metrics.binary import (
    ClassScorer,
    ClassScores,
    binary_class_counts,
    binary_class_scores,
    is_binary_mask,
    to_binary,
)
from engine.metrics.counts import (
    DISK2,
    PairCounts,
    boundary_width,
    check_pair,
    pair_counts,
)
from engine.metrics.evaluator import (
    BF1_MODES,
    EvalResult,
    SegEvaluator,
    bf1_from_counts,
    per_image_bf1,
)

__all__ = [
    "BF1_MODES",
    "ClassScorer",
    "ClassScores",
    "binary_class_counts",
    "binary_class_scores",
    "is_binary_mask",
    "to_binary",
    "DISK2",
    "EvalResult",
    "PairCounts",
    "SegEvaluator",
    "bf1_from_counts",
    "boundary_width",
    "check_pair",
    "pair_counts",
    "per_image_bf1",
]
