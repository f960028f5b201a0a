"""Fusion: joint-training labels from precise labels and new-class pseudo labels.

``rules`` holds the per-image rules (pure numpy), ``pseudo`` reads labeler run directories,
``run`` is the resumable, multi-process run behind ``engine fuse``.
"""

from engine.datasets import SOURCE_IGNORED, SOURCE_PRECISE, SOURCE_PSEUDO
from engine.fusion.pseudo import PseudoRun, open_pseudo_run, read_pseudo
from engine.fusion.report import report_table
from engine.fusion.rules import (
    ClassStats,
    FusedImage,
    FusionRules,
    PseudoLabel,
    fuse_image,
    instance_coverage,
)
from engine.fusion.run import (
    FuseConfig,
    FusePlan,
    FuseResult,
    default_out_dir,
    fuse,
    output_paths,
    plan_fusion,
)

__all__ = [
    "SOURCE_IGNORED",
    "SOURCE_PRECISE",
    "SOURCE_PSEUDO",
    "ClassStats",
    "FuseConfig",
    "FusePlan",
    "FuseResult",
    "FusedImage",
    "FusionRules",
    "PseudoLabel",
    "PseudoRun",
    "default_out_dir",
    "fuse",
    "fuse_image",
    "instance_coverage",
    "open_pseudo_run",
    "output_paths",
    "plan_fusion",
    "read_pseudo",
    "report_table",
]
