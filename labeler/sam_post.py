"""SAM mask post-processing inside each instance's window, never at full resolution per box.

transformers' ``post_process_masks`` upsamples every box's low-resolution logits to the whole
image (4032x3024 fp32 is 48.8 MB per box, plus its sigmoid and copies). Here the same bilinear
resampling (``align_corners=False``, as ``F.interpolate``) is evaluated only on the window where
the logits can exceed :data:`LOGIT_FLOOR`; outside it every logit is below the floor (bilinear
interpolation is a convex combination), its probability below ``sigmoid(-8) = 3.4e-4``, which
rounds to confidence 0 in the uint8 outputs: the label and confidence PNGs are unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from labeler.dedup import MaskCrop

LOGIT_FLOOR = -8.0  # logits at or below this are stored as probability 0 (outside the window)
LOGIT_BOUND = 1e4  # non-finite logits are read as this (inf) or minus this (-inf, NaN)


def finite_logits(x: Any) -> Any:
    """Mask logits with NaN read as no object and +-inf as certain, as finite numbers: bilinear
    resampling multiplies by weights of 0 (``inf * 0`` is NaN), so an infinite logit made NaN
    pixels around it, and NaN pixels became holes in the mask and a NaN confidence (written as
    an arbitrary uint8). fp16 decoders overflow to inf on real photos now and then."""
    import torch

    return torch.nan_to_num(x.float(), nan=-LOGIT_BOUND, posinf=LOGIT_BOUND, neginf=-LOGIT_BOUND)


def finite_scores(x: Any) -> Any:
    """Predicted mask-quality scores in 0..1, NaN read as 0 (``clamp`` keeps NaN, which the
    instances file cannot hold: the image failed with 'Out of range float values')."""
    import torch

    return torch.nan_to_num(x.float(), nan=0.0).clamp(0, 1)


def _source_index(torch, out_idx: Any, in_size: int, out_size: int):
    """PyTorch's bilinear source index (align_corners=False): ``(i0, i1, l0, l1)``."""
    scale = in_size / out_size
    src = ((out_idx.to(torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    l1 = src - i0.to(torch.float32)
    return i0, i1, 1 - l1, l1


def resize_window(x: Any, out_size: tuple[int, int], window: tuple[int, int, int, int]) -> Any:
    """Rows ``y0:y1`` and columns ``x0:x1`` of ``F.interpolate(x, out_size, "bilinear")``.

    Args:
        x: ``(n, h, w)`` float tensor.
        out_size: ``(H, W)`` of the full resampled map.
        window: ``(y0, y1, x0, x1)`` in the ``(H, W)`` frame.

    Returns:
        ``(n, y1 - y0, x1 - x0)`` float32 tensor on ``x``'s device.
    """
    import torch

    y0, y1, x0, x1 = window
    n, h, w = x.shape
    dev = x.device
    iy0, iy1, ly0, ly1 = _source_index(torch, torch.arange(y0, y1, device=dev), h, out_size[0])
    ix0, ix1, lx0, lx1 = _source_index(torch, torch.arange(x0, x1, device=dev), w, out_size[1])
    x = x.float()
    rows = x[:, :, ix0] * lx0 + x[:, :, ix1] * lx1  # (n, h, x1 - x0): along x first, as PyTorch
    return rows[:, iy0, :] * ly0[:, None] + rows[:, iy1, :] * ly1[:, None]


def active_window(active: Any, in_size: tuple[int, int], out_size: tuple[int, int]):
    """Output window ``(y0, y1, x0, x1)`` holding every output pixel that interpolates from an
    active input cell (``active (h, w) bool``), or None when no cell is active."""
    rows = active.any(dim=1).nonzero()
    if len(rows) == 0:
        return None
    cols = active.any(dim=0).nonzero()
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    sy, sx = out_size[0] / in_size[0], out_size[1] / in_size[1]
    # output pixel y reads source rows floor(src), floor(src)+1 with src = (y+0.5)/sy - 0.5:
    # it can read a row in [r0, r1) only if (r0 - 1 - 0.5 ... r1 + 0.5) * sy; two pixels spare
    y0 = max(0, math.floor((r0 - 1) * sy) - 2)
    y1 = min(out_size[0], math.ceil((r1 + 1) * sy) + 2)
    x0 = max(0, math.floor((c0 - 1) * sx) - 2)
    x1 = min(out_size[1], math.ceil((c1 + 1) * sx) + 2)
    return y0, y1, x0, x1


def masks_in_windows(
    low_res: Any,
    original_size: tuple[int, int],
    reshaped_size: tuple[int, int] | None = None,
    pad_size: tuple[int, int] | None = None,
    floor: float = LOGIT_FLOOR,
) -> list[tuple[MaskCrop, np.ndarray | None]]:
    """SAM low-resolution logits -> per box ``(mask crop, float16 probability crop)`` at the
    original image resolution, each inside its own window.

    Args:
        low_res: ``(n, h, w)`` float logits from the mask decoder (256x256 for SAM and SAM 2).
        original_size: ``(H, W)`` of the image.
        reshaped_size: SAM / SAM-HQ: ``(h, w)`` of the resized image inside the padded input;
            the logits are first upsampled to ``pad_size``, cropped to it, then resized to
            ``original_size`` (as ``SamProcessor.post_process_masks``). None (SAM 2): resized
            straight to ``original_size`` (as ``Sam2Processor.post_process_masks``).
        pad_size: ``(h, w)`` of SAM's padded input (1024x1024 for the released models).
        floor: :data:`LOGIT_FLOOR`; 0 or more for the tight masks alone (no probabilities:
            the dedup needs only masks, and an image-wide probability per box is 2 bytes a
            pixel, 66 MB at 8K).

    Returns:
        Per box a :class:`MaskCrop` (``logit > 0``) and its ``(h, w) float16`` sigmoid, on the
        window where the logit exceeds ``floor`` (0x0 when it never does); None instead of the
        sigmoid when ``floor >= 0``.
    """
    import torch
    import torch.nn.functional as F

    if reshaped_size is not None and pad_size is None:
        raise ValueError("SAM post-processing needs pad_size with reshaped_size")
    out: list[tuple[MaskCrop, np.ndarray | None]] = []
    empty = np.zeros((0, 0), np.float16) if floor < 0 else None
    for k in range(len(low_res)):
        x = finite_logits(low_res[k : k + 1])  # one box at a time: a 1024x1024 map is 4 MB
        if reshaped_size is not None:
            x = F.interpolate(x[:, None], pad_size, mode="bilinear", align_corners=False)[:, 0]
            x = x[:, : reshaped_size[0], : reshaped_size[1]]
        in_size = (int(x.shape[1]), int(x.shape[2]))
        win = active_window(x[0] > floor, in_size, original_size)
        if win is None:
            out.append((MaskCrop(0, 0, np.zeros((0, 0), bool)), empty))
            continue
        logits = resize_window(x, original_size, win)[0]
        keep = logits > floor  # shrink the window to where the logits really exceed it
        rows, cols = keep.any(dim=1).nonzero(), keep.any(dim=0).nonzero()
        if len(rows) == 0:
            out.append((MaskCrop(0, 0, np.zeros((0, 0), bool)), empty))
            continue
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        logits = logits[r0:r1, c0:c1]
        mask = (logits > 0).cpu().numpy()
        prob = torch.sigmoid(logits).half().cpu().numpy() if floor < 0 else None
        out.append((MaskCrop(win[0] + r0, win[2] + c0, mask), prob))
    return out
