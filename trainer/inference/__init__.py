"""Whole-image MaSSFormer inference: one uint8 RGB image in, one uint8 label map out.

Two modes:

* ``"full"`` reproduces the release's inference step for step (mmseg ``Resize(scale=(4096,
  3072), keep_ratio=True)`` with cv2 bilinear on uint8; ImageNet normalisation; zero padding
  of the normalised image; one whole-image fp32 forward; the Q final masks of the *padded*
  image bilinearly resized to the *unpadded* resized size; softmax without no-object x
  sigmoid, summed over queries; the padding cropped again (the release's quirk: with padding,
  the maps are stretched then cropped); bilinear resize to the original size; argmax). Its
  memory grows with Q x H' x W' (5 GB at 4096x3072).
* ``"efficient"`` (default): the per-class map is formed at mask resolution (H'/2) of the
  unpadded image, and only the K class channels are upsampled to the original size, one class
  at a time with a running argmax (bf16 autocast on CUDA). It differs from ``"full"`` in where
  the mask sigmoid sits relative to the upsampling and, with padding, in the crop (efficient
  crops the padding exactly). Labels differ along class boundaries only (docs/model.md).

Optional in the efficient mode: :class:`GuidedFilter`, an edge-aware refinement of each class
map guided by the colour image (He et al., "Guided Image Filtering", TPAMI 2013; computed at a
reduced resolution as in He & Sun, "Fast Guided Filter", 2015), so that label boundaries follow
the image's edges rather than the bilinear ramps of the H'/2 maps. Not part of the release's
inference; off by default (docs/trainer.md, ``engine predict``).

The package's modules, from the entry point down: ``label`` (:func:`predict_label`, the
two modes, the per-class running argmax), ``scores`` (the per-class scores: one forward, a
sliding window, test-time augmentation), ``guided`` (the guided filter) and ``resize`` (the
size an image is run at, its tensor, the resize of mask-resolution maps to the image).
"""

from engine.text import MAX_TTA_SCALE  # imported from here before the split
from trainer.inference.guided import GUIDES, GuidedFilter, ImageGuide, box_mean, check_guided_filter
from trainer.inference.label import (
    MODES,
    _full,
    _is_on,
    autocast_dtype,
    check_sliding_window,
    labels_from_predictions,
    predict_label,
    upsample_argmax,
)
from trainer.inference.resize import (
    own_or_smallest_size,
    resized_shape,
    size_refusal,
    smallest_size,
    upsample_cells,
)
from trainer.inference.scores import _spans, check_tta, predict_scores, tta_scores
from trainer.models.massformer import semantic_inference

__all__ = [
    "GUIDES",
    "GuidedFilter",
    "ImageGuide",
    "MAX_TTA_SCALE",
    "MODES",
    "_full",
    "_is_on",
    "_spans",
    "autocast_dtype",
    "box_mean",
    "check_guided_filter",
    "check_sliding_window",
    "check_tta",
    "labels_from_predictions",
    "own_or_smallest_size",
    "predict_label",
    "predict_scores",
    "resized_shape",
    "semantic_inference",
    "size_refusal",
    "smallest_size",
    "tta_scores",
    "upsample_argmax",
    "upsample_cells",
]
