""":func:`predict_label`, one image in, its label map out, in the efficient mode (the
scores' per-class running argmax at the image's size) or the release's full one
(:func:`_full`); and labels from a model's raw predictions."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from trainer.inference.guided import GuidedFilter, ImageGuide, check_guided_filter
from trainer.inference.resize import _to_tensor, resized_shape, size_refusal, upsample_cells
from trainer.inference.scores import check_tta, tta_scores
from trainer.models.layers import release_kernels
from trainer.models.massformer import MaSSFormer, semantic_inference

MODES = ("efficient", "full")


def check_sliding_window(sliding_window: bool, mode: str) -> None:
    """``ValueError`` for a sliding window outside the efficient mode."""
    if sliding_window and mode != "efficient":
        raise ValueError("--sliding-window needs --mode efficient, not full")


def autocast_dtype(amp: bool, device_type: str, mode: str) -> str | None:
    """The autocast :func:`predict_label` runs under: ``"bfloat16"`` on CUDA with ``amp`` in
    the efficient mode; None on a CPU and in the full mode, which runs in fp32 whatever ``amp``
    says (``predict.json`` records it: before, a full-mode run on a GPU said bfloat16)."""
    return "bfloat16" if amp and device_type == "cuda" and mode == "efficient" else None


def predict_label(
    model: MaSSFormer,
    image: np.ndarray,
    size: tuple[int, int] | None = (4096, 3072),
    mode: str = "efficient",
    sliding_window: bool = False,
    device: str | torch.device | None = None,
    amp: bool = True,
    tile: int = 2048,
    overlap: int = 512,
    scales: tuple[float, ...] = (1.0,),
    flip: bool = False,
    guided_filter: GuidedFilter | None = None,
) -> np.ndarray:
    """Label one image at its original size.

    Args:
        model: a MaSSFormer (put in eval mode for the call, restored afterwards).
        image: ``(H, W, 3)`` uint8 RGB.
        size: ``(long, short)`` test resolution, e.g. ``(4096, 3072)``; aspect ratio kept
            (see :func:`resized_shape`); ``None`` runs at the original size.
        mode: ``"efficient"`` (class maps at mask resolution, K channels upsampled) or
            ``"full"`` (the release's inference exactly, fp32; see the module docstring).
        sliding_window: tile the resized image (``tile`` px crops, ``overlap`` px shared);
            efficient mode only.
        device: where to run; ``None`` = the model's device (the model is moved otherwise).
        amp: bf16 autocast on CUDA in efficient mode (ignored on CPU and in full mode).
        scales, flip: test-time augmentation (mmseg's multi-scale and flip test), efficient
            mode only: the resized image is run again at each scale (relative to ``size``) and,
            with ``flip``, mirrored left-right; the score maps are brought back to the
            unaugmented mask resolution and averaged before the argmax (:func:`tta_scores`;
            on an odd width the flipped runs' are mirrored at the output's resolution).
            The defaults, ``(1.0,)`` and no flip, are the release's single-scale inference.
        guided_filter: refine each upsampled class map with the image as guide before the
            argmax (:class:`GuidedFilter`), efficient mode only; None: the release's maps.

    Returns ``(H, W)`` uint8 class ids 0..K-1.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if mode not in MODES:
        raise ValueError(f"unknown inference mode {mode!r}; known: {', '.join(MODES)}")
    check_sliding_window(sliding_window, mode)
    scales = check_tta(scales, flip, mode)
    check_guided_filter(guided_filter, mode)
    if model.config.num_classes > 255:
        raise ValueError(
            f"uint8 labels hold at most 255 classes, model has {model.config.num_classes}"
        )
    dev = next(model.parameters()).device
    if device is not None and not _is_on(dev, torch.device(device)):
        model.to(device)  # once: moving (or setting eval mode) walks every module, ~10 ms
        dev = next(model.parameters()).device
    height, width = image.shape[:2]
    if refusal := size_refusal(width, height, size):
        raise ValueError(refusal)
    nh, nw = resized_shape(height, width, size)
    original = image
    was_training = model.training
    switch = any(m.training for m in model.modules())  # not when already in eval mode
    if switch:
        model.eval()
    try:
        with torch.inference_mode():
            if (nh, nw) != (height, width):
                # uint8 bilinear on the host, as mmseg's Resize (cv2) does: a 64 MP input never
                # becomes a 770 MB float tensor or crosses to the GPU at full size.
                image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
            if mode == "full":
                return _full(model, _to_tensor(image, dev), (height, width))
            scores, mirrored = tta_scores(
                model, image, scales, flip, dev, sliding_window, tile, overlap, amp
            )
            guide, cells = None, (nh / 2, nw / 2)
            if guided_filter is not None:
                guide = guided_filter.image_guide(original, cells, scores.device)
            return upsample_argmax(scores, (height, width), guide, cells, mirrored)
    finally:
        if switch:
            model.train(was_training)


def _is_on(dev: torch.device, want: torch.device) -> bool:
    """Whether a model on ``dev`` is on ``want`` (``cuda`` without an index: any GPU's)."""
    return dev.type == want.type and (want.index is None or want.index == dev.index)


def upsample_argmax(
    scores: torch.Tensor,
    out_hw: tuple[int, int],
    guide: ImageGuide | None = None,
    cells: tuple[float, float] | None = None,
    mirrored: torch.Tensor | None = None,
) -> np.ndarray:
    """``(1, K, h, w)`` -> ``(H, W)`` uint8 argmax of the bilinear upsampled scores (or of the
    scores guided-filtered with ``guide``), one class at a time (peak memory a few H x W float
    maps, not K); ties go to the lower id like argmax. ``cells``: how many cells of the score
    grid the image spans (:func:`upsample_cells`; None: all of them), for the plain resize
    and the guided filter's alike. ``mirrored``: scores of the mirrored image to add, the same
    shape (:func:`tta_scores`' flipped runs on an odd width), upsampled as the image's and
    mirrored at the output's resolution.

    The ids are set with ``masked_fill_`` through one reused bool mask: indexing with the mask
    (``best_id[better] = k``) made an int64 index of every pixel that changed class, up to
    16 bytes a pixel (201 MB for a 4096x3072 output), more than the float maps themselves."""
    best = best_id = better = None
    for k in range(scores.shape[1]):
        other = None if mirrored is None else mirrored[:, k : k + 1]
        if guide is None:
            up = upsample_cells(scores[:, k : k + 1], out_hw, cells)[0, 0]
            if other is not None:  # the same sums for the image and its mirror image
                up.add_(upsample_cells(other, out_hw, cells)[0, 0].flip(-1))
        else:
            up = guide.filter(scores[:, k : k + 1], cells, other)[0, 0]
        if best is None:
            best, best_id = up, torch.zeros(out_hw, dtype=torch.uint8, device=up.device)
            better = torch.empty(out_hw, dtype=torch.bool, device=up.device)
        else:
            torch.gt(up, best, out=better)
            best_id.masked_fill_(better, k)
            torch.maximum(best, up, out=best)
        del up
    return best_id.cpu().numpy()


def _full(model: MaSSFormer, x: torch.Tensor, out_hw: tuple[int, int]) -> np.ndarray:
    """The release's inference (mmseg ``EncoderDecoder`` whole mode, ``MaSSFormerHead.predict``,
    ``postprocess_result``) on the resized image ``x`` (1, 3, h, w) float 0..255, in fp32.

    The model normalises and zero-pads to its size divisibility (256: the release pads to 32
    and needs multiples of 256 anyway, so for every size the release runs, the padding is the
    same)."""
    h, w = x.shape[-2:]
    d = model.size_divisibility
    pad_h, pad_w = -h % d, -w % d
    if h <= pad_h or w <= pad_w:  # the release's crop of its padding would leave no pixels
        raise ValueError(
            f"--mode full cannot run at {w}x{h}: the release's procedure pads to a multiple of "
            f"{d} and crops the padding from the stretched masks, which leaves nothing at this "
            f"size; use a size above {d // 2} px per side or --mode efficient"
        )
    with release_kernels():  # the release's DCN and attention kernels: bit-exact fp32
        out = model(x, aux=False, crop=False)  # final masks of the padded image (1, Q, Hp/2, Wp/2)
    masks = F.interpolate(
        out["pred_masks"].float(), size=(h, w), mode="bilinear", align_corners=False
    )
    scores = semantic_inference(out["pred_logits"].float(), masks)  # (1, K, h, w)
    scores = scores[..., : h - pad_h, : w - pad_w]  # the padding cropped again, as released
    scores = F.interpolate(scores, size=out_hw, mode="bilinear", align_corners=False)
    return scores.argmax(1)[0].to(torch.uint8).cpu().numpy()


def labels_from_predictions(
    pred_logits: torch.Tensor, pred_masks: torch.Tensor, out_hw: tuple[int, int], mode: str
) -> np.ndarray:
    """``(1, Q, K+1)`` class logits and ``(1, Q, h, w)`` mask logits -> ``(H, W)`` uint8 ids.

    ``"efficient"``: per-class scores at ``(h, w)``, then the K class maps upsampled (bilinear)
    one at a time with a running argmax. ``"full"``: the Q mask logits upsampled to ``(H, W)``
    in fp32, sigmoid, combined, argmax (the release's combination, without its resize steps).
    """
    if mode == "efficient":
        return upsample_argmax(semantic_inference(pred_logits, pred_masks), out_hw)
    if mode != "full":
        raise ValueError(f"unknown inference mode {mode!r}; known: {', '.join(MODES)}")
    masks = F.interpolate(pred_masks.float(), size=out_hw, mode="bilinear", align_corners=False)
    scores = semantic_inference(pred_logits.float(), masks)
    return scores.argmax(1)[0].to(torch.uint8).cpu().numpy()
