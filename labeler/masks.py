"""Exact window-local bilinear upsampling of low-resolution instance masks: numpy in, numpy out.

A low-resolution mask (SAM 3: 288x288 over a 1008x1008 input) upsampled to a 4032x3024 photo is
about 12 MB per instance as bool and 24 MB as float16; most of it is zeros. Bilinear resizing is
separable, ``out = Ry @ P @ Rx.T`` with ``Ry (H, h)`` and ``Rx (W, w)`` the interpolation
weights, so the rows and columns of the output that can be non-zero are computed alone, with
exactly the values :func:`torch.nn.functional.interpolate` (``bilinear``,
``align_corners=False``) gives there.
"""

from __future__ import annotations

import numpy as np

from labeler.dedup import MaskCrop


def bilinear_weights(out_size: int, in_size: int) -> np.ndarray:
    """``(out_size, in_size) float32`` weights of 1-D bilinear resizing with
    ``align_corners=False`` (half-pixel centres, source index clamped at 0), as torch computes
    it when the output size (not a scale factor) is given."""
    if out_size < 1 or in_size < 1:
        raise ValueError(f"sizes must be >= 1, got out {out_size}, in {in_size}")
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = (src - i0).astype(np.float32)
    r = np.zeros((out_size, in_size), np.float32)
    rows = np.arange(out_size)
    np.add.at(r, (rows, i0), 1.0 - w1)
    np.add.at(r, (rows, i1), w1)
    return r


def upsample_local(
    prob: np.ndarray,
    out_hw: tuple[int, int],
    offset: tuple[int, int] = (0, 0),
    threshold: float = 0.5,
    grow: int = 1,
) -> tuple[MaskCrop, np.ndarray] | None:
    """Bilinear-upsample a low-resolution probability map to ``out_hw`` only where it can matter.

    Args:
        prob: ``(h, w) float`` probabilities 0..1 over a crop.
        out_hw: ``(H, W)`` pixel size of the crop.
        offset: ``(x, y)`` of the crop's top-left corner in the full image.
        threshold: the mask is ``upsampled > threshold``.
        grow: low-resolution cells added around those above ``threshold`` (keeps the soft edge of
            the probability; the mask itself is exact with any ``grow >= 0``, since bilinear
            values between cells at or below ``threshold`` stay at or below it).

    Returns:
        ``(mask, prob)``: the mask as a :class:`labeler.dedup.MaskCrop` in full-image pixels
        (decided in float32) and ``prob``, the ``(h, w) float16`` probability on the same
        window; None when no cell is above ``threshold``.
    """
    prob = np.asarray(prob, np.float32)
    rows, cols = (
        np.flatnonzero((prob > threshold).any(1)),
        np.flatnonzero((prob > threshold).any(0)),
    )
    if len(rows) == 0:
        return None
    h, w = prob.shape
    ry, rx = bilinear_weights(out_hw[0], h), bilinear_weights(out_hw[1], w)
    a, b = max(rows[0] - grow, 0), min(rows[-1] + grow + 1, h)
    c, d = max(cols[0] - grow, 0), min(cols[-1] + grow + 1, w)
    ys = np.flatnonzero(ry[:, a:b].any(1))
    xs = np.flatnonzero(rx[:, c:d].any(1))
    y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    local = ry[y0:y1] @ prob @ rx[x0:x1].T
    ox, oy = offset
    return MaskCrop(y0 + oy, x0 + ox, local > threshold), np.clip(local, 0, 1).astype(np.float16)
