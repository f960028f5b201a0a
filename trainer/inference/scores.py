"""Per-class scores at mask resolution: one forward (whole or a sliding window's tiles)
and test-time augmentation's mean over scales and flips."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from engine.text import MAX_TTA_SCALE
from trainer.inference.resize import _to_tensor, upsample_cells
from trainer.models.massformer import MIN_SIDE, MaSSFormer, semantic_inference


@torch.inference_mode()
def predict_scores(
    model: MaSSFormer,
    images: torch.Tensor,
    sliding_window: bool = False,
    tile: int = 2048,
    overlap: int = 512,
    amp: bool = True,
) -> torch.Tensor:
    """Per-class scores at mask resolution: ``(B, 3, h, w)`` float RGB 0..255 on the model's
    device -> ``(B, K, ceil(h/2), ceil(w/2))`` float32 (softmax x sigmoid summed over queries).

    ``sliding_window`` runs ``tile x tile`` crops (``overlap`` pixels shared, both even) and
    averages the score maps where crops overlap; memory is then bounded by the tile size.
    bf16 autocast is used on CUDA when ``amp``, where the GPU computes in bf16
    (:func:`engine.devices.bf16_autocast`: fp32 on a T4 or V100, whose bf16 is emulated).
    """
    from engine.devices import bf16_autocast

    device = images.device
    use_amp = bf16_autocast(amp, device)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(x, aux=False)
        return semantic_inference(out["pred_logits"], out["pred_masks"])

    b, _, h, w = images.shape
    if not sliding_window or (h <= tile and w <= tile):
        return run(images)
    if tile % 2 or overlap % 2 or not 0 <= overlap < tile or tile < 32:
        raise ValueError(
            f"sliding window needs even tile >= 32 > even overlap >= 0, got {tile}, {overlap}"
        )
    k = model.config.num_classes
    h2, w2 = -(-h // 2), -(-w // 2)
    acc = torch.zeros(b, k, h2, w2, device=device)
    count = torch.zeros(1, 1, h2, w2, device=device)
    for y0, y1 in _spans(h, tile, tile - overlap):
        for x0, x1 in _spans(w, tile, tile - overlap):
            crop = images[..., y0:y1, x0:x1]
            s = run(crop)
            ys, xs = slice(y0 // 2, y0 // 2 + s.shape[-2]), slice(x0 // 2, x0 // 2 + s.shape[-1])
            acc[..., ys, xs] += s
            count[..., ys, xs] += 1
    return acc.div_(count)


def _spans(length: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` rows (or columns) of the tiles covering ``[0, length)``: even
    starts (the H/2 mask grid of a tile is the image's), ``tile`` long, the last one ending at
    the end. Where ``length - tile`` is odd, the last tile starts one row later and is one row
    short; a 32 px tile, the model's smallest side (:data:`MIN_SIDE`), starts one row earlier
    and is one row long instead (before, the library's 32 px tile failed there: "images must be
    at least 32x32, got 32x31"). Rounding the start down without lengthening the tile would
    leave the last row out."""
    if length <= tile:
        return [(0, length)]
    stops = {start: start + tile for start in range(0, length - tile, stride)}
    last = length - tile
    if last % 2 == 0:
        stops[last] = length
    elif tile - 1 >= MIN_SIDE:
        stops[last + 1] = length
    else:  # over a tile that started there already (a stride of 2)
        stops[last - 1] = length
    return sorted(stops.items())


def check_tta(scales: tuple[float, ...] | list[float], flip: bool, mode: str) -> tuple[float, ...]:
    """The test-time scales as a tuple of positive floats; ``ValueError`` for any other scale,
    or for augmentation (a scale other than 1, or flip) outside the efficient mode."""
    out = tuple(float(s) for s in scales)
    if not out or any(not (s > 0 and np.isfinite(s)) for s in out):
        raise ValueError(f"test-time scales must be positive numbers, got {list(scales)}")
    if max(out) > MAX_TTA_SCALE:
        raise ValueError(f"test-time scales must be at most {MAX_TTA_SCALE:g}, got {list(scales)}")
    if (flip or out != (1.0,)) and mode != "efficient":
        raise ValueError(
            "test-time augmentation (a scale other than 1, or flip) needs mode 'efficient', "
            "not 'full'"
        )
    return out


@torch.inference_mode()  # sums in place into predict_scores' inference tensors
def tta_scores(
    model: MaSSFormer,
    image: np.ndarray,
    scales: tuple[float, ...],
    flip: bool,
    device: torch.device,
    sliding_window: bool = False,
    tile: int = 2048,
    overlap: int = 512,
    amp: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean per-class scores over scales x (flip): ``(H, W, 3)`` uint8 RGB (already at the
    test size) -> ``(scores, mirrored)``, each ``(1, K, ceil(H/2), ceil(W/2))`` or None, as
    mmseg's aug test averages them. With ``(1.0,)`` and no flip this is one
    :func:`predict_scores` run, the release's inference, and ``mirrored`` is None.

    Each scale resizes the uint8 image with cv2 bilinear (as mmseg's ``Resize``, sides rounded
    half up, at least 32 px); every map is resized bilinearly to the unaugmented mask
    resolution before the mean, as the image each spans (:func:`upsample_cells`: an odd side's
    half-padded cell is not stretched over, before the fifty-sixth round it was). A flipped
    run's scores are mirrored back where their grid mirrors the image's: on an even width they
    are flipped on the grid (as ever), on an odd width at a scale of an even ``W`` after the
    resize. On an odd ``W`` no grid of ceil(W/2) cells is the mirror of another (the
    half-padded cell changes sides): the flipped runs' share of the mean is ``mirrored``, in
    the mirrored frame, and :func:`~trainer.inference.label.upsample_argmax` mirrors it at the
    output's resolution, as mmseg mirrors the logits at the image's size; an image and its mirror
    image then get mirrored labels. Before the fifty-seventh round an odd width's flipped grid was
    mirrored back on the grid and averaged half a cell off the unflipped one."""
    h, w = image.shape[:2]
    out_hw = (-(-h // 2), -(-w // 2))
    total = apart = None  # apart: the flipped runs' sum on an odd width, in the mirrored frame
    runs = 0
    for scale in scales:
        sh, sw = max(32, int(h * scale + 0.5)), max(32, int(w * scale + 0.5))
        scaled = image if (sh, sw) == (h, w) else cv2.resize(image, (sw, sh), cv2.INTER_LINEAR)
        x = _to_tensor(scaled, device)
        for mirrored in (False, True) if flip else (False,):
            s = predict_scores(
                model, x.flip(-1) if mirrored else x, sliding_window, tile, overlap, amp
            )
            back = mirrored and w % 2 == 0  # flipped back here; on an odd w, at the output
            if back and sw % 2 == 0:  # an even grid mirrors the image: the same bytes as ever
                s = s.flip(-1)
            if (sh, sw) != (h, w):  # the image spans sh / 2 cells of s, h / 2 of out_hw
                s = upsample_cells(s, out_hw, (sh / 2, sw / 2), (h / 2, w / 2))
            if back and sw % 2:  # resized in the mirrored frame: out_hw's w / 2 cells mirror
                s = s.flip(-1)
            if mirrored and not back:
                apart = s if apart is None else apart.add_(s)
            else:
                total = s if total is None else total.add_(s)  # in place: the same sums
            runs += 1
    assert total is not None
    if runs == 1:
        return total, None
    return total.div_(runs), None if apart is None else apart.div_(runs)
