"""What a label run reports: its stages, the :class:`LabelSummary` of a call, and each failed
image's one line (and whether running again fails it again)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotations.fileio import first_line, type_and_first_line
from labeler.models import CannotLabel

STAGES = ("decode", "detect", "segment", "merge", "write")


@dataclass
class LabelSummary:
    """What a run did (this process's shard)."""

    out_dir: Path  # the run directory
    config_hash: str  # hash of the settings that change labels
    shard: tuple[int, int]  # (index, count) of this process
    images: int = 0  # images in this shard
    skipped: int = 0  # already done with the same configuration
    labelled: int = 0  # labelled now
    instances: int = 0  # instances found now
    without_instances: int = 0  # images labelled now with no instance
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (split, stem, error)
    not_retryable: int = 0  # of failed, images failing on every run (CannotLabel): no retry
    cannot: dict[str, int] = field(default_factory=dict)  # of those, by kind (CannotLabel.kind)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # stage -> seconds, summed
    wall_seconds: float = 0.0  # wall time of the whole run
    load_seconds: float = 0.0  # of which loading the models (before the first image)
    interrupted: bool = False  # stopped by Ctrl-C

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


def _failure(e: BaseException, typed: bool = True) -> tuple[str, str | None]:
    """``(message, cannot)`` of one image's failure, told where it is caught: a
    :class:`CannotLabel` (an image too thin for a model's resize, one larger than the pad size
    of a segmenter that does not resize) fails on every run (``cannot``: its kind; not retried)
    and reads as its own one line wherever it is raised (the detector's refusal in a loader
    thread, the segmenter's in the batch); any other error is retried (``cannot`` None), its
    message after its type name when ``typed`` (decode errors name the file). Before, the
    closing lines told them apart by the words "too thin to label" in the message, which a path
    could hold or a line break in the path cut off."""
    if isinstance(e, CannotLabel):
        return first_line(e), e.kind
    return (type_and_first_line(e) if typed else first_line(e)), None
