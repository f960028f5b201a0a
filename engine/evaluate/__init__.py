"""``engine evaluate``: score a folder of predicted label maps against a folder of ground truth,
or against a split of a dataset (its own label maps, where its spec says they are).

Files are paired by stem (``PRED_DIR/x.png`` with ``GT_DIR/x.png``, or with the label map of the
dataset's image ``x``, as ``engine predict --data`` names its output; a stem composed otherwise,
Unicode NFC or NFD, pairs too). Per image the counts come
from :func:`engine.metrics.pair_counts`, optionally in several worker processes (counts are
integers, so the sum does not depend on how images are spread over workers).

One module per part, each using only those listed before it:

- :mod:`~engine.evaluate.listing`: a folder's label maps by stem (:func:`list_labels`);
- :mod:`~engine.evaluate.truth`: the ground truth (:class:`Truth`, :func:`ground_truth`,
  :func:`dataset_spec`) and its taxonomy;
- :mod:`~engine.evaluate.pairs`: prediction and truth paired by stem (:func:`pair_files`),
  digested (:func:`maps_digest`), read and fitted (:func:`fit_to_truth`);
- :mod:`~engine.evaluate.scoring`: :class:`EvaluateConfig`, the fold and
  :func:`evaluate`.

Every name callers import from ``engine.evaluate`` is imported here from its module.
"""

from __future__ import annotations

from engine.evaluate.listing import LABEL_EXTS, NO_LABEL_MAPS, check_not_subset_masks, list_labels
from engine.evaluate.pairs import (
    _composed_as,
    fit_to_truth,
    load_pair,
    maps_changed,
    maps_digest,
    pair_files,
)
from engine.evaluate.scoring import (
    RESIZE_MODES,
    EvaluateConfig,
    EvaluateReport,
    Fold,
    count_device,
    describe_fold,
    evaluate,
)
from engine.evaluate.truth import (
    LOAD,
    ByName,
    Truth,
    dataset_of,
    dataset_spec,
    generic_taxonomy,
    ground_truth,
    named_as_images,
    recorded_classes,
    resolve_taxonomy,
    split_required,
)

__all__ = [
    "ByName",
    "check_not_subset_masks",
    "_composed_as",
    "count_device",
    "dataset_of",
    "dataset_spec",
    "describe_fold",
    "evaluate",
    "EvaluateConfig",
    "EvaluateReport",
    "fit_to_truth",
    "Fold",
    "generic_taxonomy",
    "ground_truth",
    "LABEL_EXTS",
    "list_labels",
    "LOAD",
    "load_pair",
    "maps_changed",
    "maps_digest",
    "named_as_images",
    "NO_LABEL_MAPS",
    "pair_files",
    "recorded_classes",
    "RESIZE_MODES",
    "resolve_taxonomy",
    "split_required",
    "Truth",
]
