"""Sizes and resizes between an image and the model's mask grid: the size an image is run
at (its aspect ratio kept), the smallest the model takes and the one line refusing a
smaller one, the image's float tensor, and the bilinear resize of mask-resolution maps
to the cells the image spans."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from trainer.models.massformer import MIN_SIDE


def resized_shape(height: int, width: int, size: tuple[int, int] | None) -> tuple[int, int]:
    """``(h, w)`` after resizing keeping the aspect ratio into ``size`` = ``(long, short)``
    as mmseg's ``Resize(scale=size, keep_ratio=True)`` (mmcv ``rescale_size``): the scale is
    the smaller of long/max(h, w) and short/min(h, w), so a landscape or portrait image both
    fit 4096x3072 (or 3072x4096); sides are rounded half up (``int(x * scale + 0.5)``).
    ``None`` keeps the size."""
    if size is None:
        return height, width
    long_side, short_side = max(size), min(size)
    scale = min(long_side / max(height, width), short_side / min(height, width))
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def smallest_size(w: int, h: int) -> tuple[int, int]:
    """The smallest ``(W, H)`` inference size the model takes for a ``w x h`` image: the one that
    brings its short side to :data:`MIN_SIDE` px, its aspect kept (a refused image names it;
    ``engine train`` suggests it as ``--val-size`` for images under :data:`MIN_SIDE` px)."""
    long_side = math.ceil(max(w, h) * MIN_SIDE / min(w, h))
    return (long_side, MIN_SIDE) if w >= h else (MIN_SIDE, long_side)


def size_refusal(
    width: int, height: int, size: tuple[int, int] | None, option: str | None = None
) -> str | None:
    """Why a ``width x height`` image cannot be predicted at ``size`` (the model needs
    :data:`MIN_SIDE` px a side after resizing); None: it can be. ``option`` names the size in
    the words the user gave it (``engine predict``: ``--size original``, ``--size auto (the
    checkpoint's validation size: 64x32)``) and the fix as ``--size WxH``; None names them as
    :func:`~trainer.inference.label.predict_label`'s argument (``size=None``). The one check of
    both: before, each had its own, worded apart ("resized to 64x13 for size=(64, 32)", "... at
    --size 64x32"); at ``size=None`` nothing is resized ("resized to 5x7 for size=None" before the
    53rd round)."""
    nh, nw = resized_shape(height, width, size)
    if min(nh, nw) >= MIN_SIDE:
        return None
    named = option or f"size={size}"
    done = f"at {named}" if (nh, nw) == (height, width) else f"resized to {nw}x{nh} at {named}"
    w, h = smallest_size(width, height)
    fix = f"--size {w}x{h} or larger (at" if option else f"a larger size ({w}x{h} or more at"
    return (
        f"image {width}x{height} {done}: the model needs at least {MIN_SIDE} px per side; "
        f"use {fix} its aspect)"
    )


def own_or_smallest_size(w: int, h: int) -> tuple[int, int]:
    """``(w, h)`` where the model takes images of that size, else :func:`smallest_size`: the
    validation size ``engine train`` suggests for images of ``w x h``."""
    return (w, h) if min(w, h) >= MIN_SIDE else smallest_size(w, h)


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float 0..255 on ``device``."""
    # torch refuses read-only arrays (decoded images are); copy only then.
    host = np.require(image, requirements=["C_CONTIGUOUS", "WRITEABLE"])
    return torch.from_numpy(host).to(device).permute(2, 0, 1)[None].float()


def upsample_cells(
    x: torch.Tensor,
    out_hw: tuple[int, int],
    cells: tuple[float, float] | None = None,
    spans: tuple[float, float] | None = None,
    antialias: bool = False,
) -> torch.Tensor:
    """Bilinear resize of ``(N, C, h, w)`` mask-resolution maps to ``out_hw``, where the image
    spans ``cells`` = ``(h' / 2, w' / 2)`` of the grid (``h' x w'`` the resized image; None: the
    whole grid) and ``spans`` pixels of the output (None: all of them; the test-time scales'
    unaugmented grid: ``h / 2`` of ``ceil(h / 2)``). On an odd side the last cell is half
    padding (the model's masks are ``ceil(h' / 2)``): resizing the whole grid onto the image
    stretched it by half a cell, and boundaries moved toward the far edge by up to one resized
    pixel (before the fifty-sixth round). Even sides take the same call as ever (the same
    bytes); an odd one maps output pixel ``y`` to grid coordinate ``(y + 0.5) * cells / spans
    - 0.5``. ``antialias``: as ``F.interpolate``'s (the guided filter shrinks the maps)."""
    h, w = x.shape[-2:]
    spans = out_hw if spans is None else spans
    if cells is None or (tuple(cells) == (h, w) and tuple(spans) == tuple(out_hw)):
        return F.interpolate(
            x, size=out_hw, mode="bilinear", align_corners=False, antialias=antialias
        )
    factors = []
    for out, span, cell, n in zip(out_hw, spans, cells, (h, w), strict=True):
        f = span / cell
        # 88399a9d's factors, the same bytes: its F.interpolate(scale_factor=) sized the output
        # floor(n * f), which n * (out / n) may round below out
        while span == out and math.floor(n * f) < out:
            f = math.nextafter(f, math.inf)
        factors.append(f)
    # aten's op takes the output size and the scales both (F.interpolate takes one): rows past
    # the grid's last centre repeat it, as bilinear does at the border
    op = torch.ops.aten._upsample_bilinear2d_aa if antialias else torch.ops.aten.upsample_bilinear2d
    return op(x, list(out_hw), False, *factors)
