"""COCO run-length encoding of binary masks, compatible with pycocotools.

A mask is encoded in column-major (Fortran) order as alternating run lengths starting with a
run of zeros. ``counts`` is either a list of ints ("uncompressed RLE") or pycocotools' compact
string (LEB128-like, 5 bits per character, each count after the second stored as the difference
from the count two places earlier). Both decode; encoding produces the compact string, which is
what COCO JSON files and annotation tools (CVAT, Label Studio) exchange.
"""

from __future__ import annotations

import numpy as np


def mask_to_rle(mask: np.ndarray) -> dict:
    """``(H, W)`` bool/0-1 mask -> ``{"size": [H, W], "counts": str}`` (compressed COCO RLE)."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got {mask.shape}")
    h, w = mask.shape
    return {"size": [int(h), int(w)], "counts": _compress(_runs(mask))}


def rle_to_mask(rle: dict) -> np.ndarray:
    """COCO RLE (compressed string or list of counts) -> ``(H, W)`` bool mask."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"an RLE must have 'size' [H, W] and 'counts', got {_short(rle)}"
        ) from None
    runs = _decompress(counts) if isinstance(counts, (str, bytes)) else [int(c) for c in counts]
    if sum(runs) != h * w or any(c < 0 for c in runs):
        raise ValueError(f"RLE counts sum to {sum(runs)}, expected H*W = {h * w}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape(w, h).T.copy()


def rle_area(rle: dict) -> int:
    """Number of foreground pixels without decoding the mask."""
    try:
        counts = rle["counts"]
    except (KeyError, TypeError):
        raise ValueError(f"an RLE must have 'counts', got {_short(rle)}") from None
    runs = _decompress(counts) if isinstance(counts, (str, bytes)) else list(counts)
    return int(sum(runs[1::2]))


def _runs(mask: np.ndarray) -> list[int]:
    flat = np.asarray(mask, dtype=bool).T.ravel()  # column-major
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0] + runs  # counts always start with a run of zeros
    return runs


def _compress(runs: list[int]) -> str:
    out: list[str] = []
    for i, value in enumerate(runs):
        x = value - runs[i - 2] if i > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (c & 0x10 and x != -1) or (not c & 0x10 and x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _decompress(counts: str | bytes) -> list[int]:
    text = counts.decode("ascii") if isinstance(counts, bytes) else counts
    runs: list[int] = []
    p = 0
    while p < len(text):
        x = 0
        k = 0
        more = True
        while more:
            if p >= len(text):
                raise ValueError("truncated RLE counts string")
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def _short(obj: object) -> str:
    text = repr(obj)
    return text if len(text) < 80 else text[:77] + "..."
