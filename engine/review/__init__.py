"""Review gallery of a label run: one static ``index.html`` plus a ``thumbs/`` folder.

The page needs no server and no external asset (it opens from ``file://``): overlays of the
pseudo labels on the images, sorted by confidence (lowest first; buttons re-sort), with per-image
instance counts and scores, and, where given, the model's predictions (one folder or several,
such as the release's inference and the guided filter's) and the manual annotation side by side.
Where an image is annotated, every panel is scored against the annotation (that image's IoU,
Boundary IoU and Boundary F1, :func:`engine.metrics.binary_class_scores`, the functions the
report sums over a subset) and a button sorts by the pseudo label's IoU, worst first.
Thumbnails are JPEGs with the long side at ``thumb`` pixels (512 by default: a 4032x3024 photo
becomes 512x384, about 30-60 kB), downscaled with area averaging so that thin structures stay
visible as partial tint.

One module per part, each using only those listed before it:

- :mod:`~engine.review.config`: :class:`ReviewConfig`, :class:`ReviewResult`,
  :func:`split_list`;
- :mod:`~engine.review.inputs`: the images by split (:func:`warn_not_reached`), the
  predictions, the annotation folder (:func:`check_annotation_folder`), each panel's mask
  and scores;
- :mod:`~engine.review.page`: the cards, CSS, script and JSON of ``index.html``;
- :mod:`~engine.review.gallery`: :func:`build_review`, the thumbnails and the page written.

Every name callers import from ``engine.review`` is imported here from its module.
"""

from __future__ import annotations

from engine.outputs import PSEUDO_COLOR, overlay
from engine.review.config import ReviewConfig, ReviewResult, split_list
from engine.review.gallery import THUMB_NAME, build_review
from engine.review.inputs import (
    NO_SCORE,
    MissingClassIdError,
    Panel,
    check_annotation_folder,
    warn_not_reached,
)
from engine.review.page import _image_url

__all__ = [
    "build_review",
    "check_annotation_folder",
    "_image_url",
    "MissingClassIdError",
    "NO_SCORE",
    "overlay",
    "Panel",
    "PSEUDO_COLOR",
    "ReviewConfig",
    "ReviewResult",
    "split_list",
    "THUMB_NAME",
    "warn_not_reached",
]
