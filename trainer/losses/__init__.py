"""MaSSFormer losses: targets from label maps, Hungarian matching, the set criterion."""

from trainer.losses.criterion import LossConfig, SetCriterion
from trainer.losses.matcher import HungarianMatcher
from trainer.losses.targets import (
    DecouplingConfig,
    ImageTargets,
    boundary_weight,
    build_targets,
    edge_target,
    pixel_weights,
)

__all__ = [
    "DecouplingConfig",
    "HungarianMatcher",
    "ImageTargets",
    "LossConfig",
    "SetCriterion",
    "boundary_weight",
    "build_targets",
    "edge_target",
    "pixel_weights",
]
