"""``engine review``'s configuration and result: :class:`ReviewConfig`, :class:`ReviewResult`
and the splits it is given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.text import split_names


@dataclass
class ReviewConfig:
    run: str  # label run directory
    out: str | None = None  # gallery folder; None: RUN/review
    # splits to show (a name, a comma-separated list, or a list); None: every split of the run
    split: str | Sequence[str] | None = None
    data: str | None = None  # dataset root; None: the one run.json names
    # model predictions: <pred>/[<split>/]<stem>.png label maps; one folder or several, a
    # panel each, named from the folder's predict.json ("prediction + guided filter")
    pred: str | Sequence[str] | None = None
    pred_class_id: int | None = None  # the class's id in the predictions; None: from the
    # taxonomy next to each folder (taxonomy.json / predict.json), else they must be binary 0/1
    gt: str | None = None  # annotated subset dir (masks/<stem>.png) or a folder of 0/1/255 masks
    thumb: int = 512  # thumbnail long side in pixels
    limit: int = 300  # show at most this many images, lowest confidence first; 0: all
    quality: int = 85  # JPEG quality of thumbnails
    progress: bool = True  # progress bar on stderr
    detail: bool = True  # a second row: the same panels of the window with the densest outlines

    def __post_init__(self) -> None:
        # the CLI's bounds (--thumb, --limit) and JPEG's: a library caller's thumb=0 (1x1 px
        # thumbnails), limit=-1 or quality=101 (an OpenCV warning per thumbnail) went through
        if self.thumb < 64:
            raise ValueError(f"thumb must be >= 64 (px, the long side), got {self.thumb}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0 (0: every image), got {self.limit}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in 1..100 (JPEG), got {self.quality}")


@dataclass
class ReviewResult:
    index: Path  # the gallery's index.html
    images: int  # images shown
    with_pred: int  # of which with a model prediction
    with_gt: int  # of which with a manual annotation (and so scored)
    # images whose files could not be read, as "split/stem: problem"; each is a card that says so
    # but the last ``past_limit``, known unreadable before drawing and past --limit: no card
    failed: list[str] = field(default_factory=list)
    past_limit: int = 0
    labelled: int = 0  # images of the splits shown the run labelled; more than images: --limit cut


def split_list(split: str | Sequence[str] | None) -> list[str]:
    """``--split``'s names: ``"val,test"``, ``["val", "test"]`` or ``"val"``; [] for None."""
    texts = [split] if isinstance(split, str) else list(split or [])
    return list(dict.fromkeys(split_names(texts) or ()))
