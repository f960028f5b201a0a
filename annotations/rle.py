"""COCO run-length encoding of binary masks, through pycocotools.

A mask is encoded in column-major (Fortran) order as alternating run lengths starting with a
run of zeros. ``counts`` is either a list of ints ("uncompressed RLE") or pycocotools' compact
string (LEB128-like, 5 bits per character, each count after the second stored as the difference
from the count two places earlier). Both decode; encoding produces the compact string, which is
what COCO JSON files and annotation tools (CVAT, Label Studio, X-AnyLabeling) exchange.

Encoding, decoding and areas are pycocotools' (C). One check stays ours: pycocotools decodes a
counts string whose runs sum to less than H*W into uninitialised memory (measured with 2.0.11:
a 4x5 mask's counts decoded at size 10x10 gave garbage pixels) and fails a list that sums to
more with a bare "Invalid RLE mask representation". So the run lengths are parsed and their sum
checked against the size before pycocotools sees them, and the error says what is wrong.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as coco_mask


# pycocotools 2.0.11's decode calls ``np.array(masks, copy=False)`` on its own object, whose
# ``__array__`` predates NumPy 2's ``copy`` keyword: a DeprecationWarning from inside it at every
# decode, nothing a caller can change. Ignored for the process here, at import, that message
# from that module only, as engine.datasets does for Pillow's: before, each rle_to_mask call
# wrapped decode in ``warnings.catch_warnings`` with every DeprecationWarning ignored, which is
# not thread-safe (it restores the list it saved on entry: a filter another thread added
# meanwhile was dropped, or its ignore-all kept for good) and re-armed every once-shown warning.
def ignore_decode_warning() -> None:
    """Put the filter for pycocotools' own warning in front of the others (at import; the test
    suite again in each test, whose warning filters pytest sets up after the imports)."""
    warnings.filterwarnings(
        "ignore",
        r"__array__ implementation doesn't accept a copy keyword",
        DeprecationWarning,
        r"pycocotools\.mask",
    )


ignore_decode_warning()


def mask_to_rle(mask: np.ndarray) -> dict:
    """``(H, W)`` bool/0-1 mask -> ``{"size": [H, W], "counts": str}`` (compressed COCO RLE)."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got {mask.shape}")
    h, w = mask.shape
    if h == 0 or w == 0:
        return {"size": [int(h), int(w)], "counts": "0"}
    rle = coco_mask.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")}


def crop_to_rle(crop: np.ndarray, y0: int, x0: int, height: int, width: int) -> dict:
    """The compressed COCO RLE of an ``(height, width)`` mask that is zero outside the window
    ``crop (h, w)`` placed at row ``y0``, column ``x0``; equals ``mask_to_rle`` of the full mask
    without building it (a 4032x3024 mask is 12 MB; its object's window is usually far smaller).

    Only the window's columns are laid out, at full height and in column-major order, so every
    run is one change in that strip and the columns left and right of it add to the first and
    last runs. pycocotools' ``encode`` needs the full mask; this costs one pass over the strip.
    """
    crop = np.asarray(crop, dtype=bool)
    if crop.ndim != 2:
        raise ValueError(f"crop must be (h, w), got {crop.shape}")
    h, w = crop.shape
    if y0 < 0 or x0 < 0 or y0 + h > height or x0 + w > width:
        raise ValueError(f"crop {w}x{h} at ({x0}, {y0}) does not fit in {width}x{height}")
    total = height * width
    if total == 0:
        return {"size": [int(height), int(width)], "counts": "0"}  # as mask_to_rle
    if crop.any():
        # image columns x0 .. x0 + w - 1, top to bottom, between two zeros: a run starts or
        # ends wherever two neighbours differ, the strip's first and last pixel included
        strip = np.zeros(w * height + 2, np.uint8)
        strip[1:-1].reshape(w, height)[:, y0 : y0 + h] = crop.T
        changes = np.flatnonzero(strip[1:] != strip[:-1])
        runs = np.diff(np.concatenate(([0], changes + x0 * height, [total]))).tolist()
        if runs[-1] == 0:
            runs.pop()  # the mask ends with a foreground run
    else:
        runs = [total]
    rle = coco_mask.frPyObjects({"counts": runs, "size": [int(height), int(width)]}, height, width)
    return {"size": [int(height), int(width)], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict) -> np.ndarray:
    """COCO RLE (compressed string or list of counts) -> ``(H, W)`` bool mask."""
    h, w, compact = _checked(rle)
    if h == 0 or w == 0:
        return np.zeros((h, w), dtype=bool)
    return coco_mask.decode({"size": [h, w], "counts": compact}).astype(bool)


@dataclass(frozen=True)
class RunWindow:
    """A COCO RLE's runs of ones cut at the column ends into pieces (runs go down the columns),
    and the tight window of the mask: the mask inside it is painted on demand (:meth:`crop`),
    so a reader can hold many masks' pieces (a few bytes a run and a column) and one window.

    Attributes:
        size: ``(H, W)`` of the mask.
        box: ``(y0, x0, y1, x1)``, the tight window; ``(0, 0, 0, 0)`` for an empty mask.
        col, top, bottom: ``(P,) int32``: piece ``p`` covers rows ``top[p]:bottom[p]`` of
            column ``col[p]``.
    """

    size: tuple[int, int]
    box: tuple[int, int, int, int]
    col: np.ndarray
    top: np.ndarray
    bottom: np.ndarray

    def crop(self) -> np.ndarray:
        """``(y1 - y0, x1 - x0) bool``: the mask inside :attr:`box`."""
        y0, x0, y1, x1 = self.box
        steps = np.zeros((x1 - x0, y1 - y0 + 1), np.int8)
        # +1 at a piece's first row and -1 past its last, summed down each column. One run's
        # start can be the end of the run before (a zero-length gap): two assignments, each of
        # unique positions, so neither step is lost.
        steps[self.col - x0, self.top - y0] += 1
        steps[self.col - x0, self.bottom - y0] -= 1
        return np.ascontiguousarray((np.cumsum(steps[:, :-1], axis=1, dtype=np.int8) > 0).T)


def rle_run_window(rle: dict) -> RunWindow:
    """A COCO RLE's :class:`RunWindow`, checked as :func:`rle_to_mask` checks it (the same
    errors), without building the ``(H, W)`` mask (a 4032x3024 mask is 12 MB; its object's
    window is usually far smaller)."""
    h, w, runs, _ = _checked_runs(rle)
    lengths = np.asarray(runs, np.int64)
    ends = np.cumsum(lengths)
    s, e = (ends - lengths)[1::2], ends[1::2]
    s, e = s[e > s], e[e > s]
    if s.size == 0:
        none = np.zeros(0, np.int32)
        return RunWindow((h, w), (0, 0, 0, 0), none, none, none)
    c0, c1 = s // h, (e - 1) // h
    k = c1 - c0 + 1  # columns each run touches
    run = np.repeat(np.arange(s.size), k)
    col = c0[run] + np.arange(run.size) - np.repeat(np.cumsum(k) - k, k)
    top = np.maximum(s[run] - col * h, 0)
    bottom = np.minimum(e[run] - col * h, h)
    box = (int(top.min()), int(c0[0]), int(bottom.max()), int(c1[-1]) + 1)  # runs come in order
    return RunWindow(
        (h, w), box, col.astype(np.int32), top.astype(np.int32), bottom.astype(np.int32)
    )


def rle_to_window(rle: dict) -> tuple[tuple[int, int], int, int, np.ndarray]:
    """``((H, W), y0, x0, crop)``: a COCO RLE's size and its mask inside its tight window at row
    ``y0``, column ``x0`` (``crop`` ``(h, w) bool``; an empty mask gives a 0x0 window at 0, 0),
    checked as :func:`rle_to_mask` checks it (:func:`rle_run_window`)."""
    win = rle_run_window(rle)
    return win.size, win.box[0], win.box[1], win.crop()


def checked_rle(rle: dict) -> dict:
    """A valid COCO RLE (compressed string or list of counts) as pycocotools' own object
    (``{"size": [H, W], "counts": bytes}``), to merge with others before one decode;
    ``ValueError`` saying what is wrong otherwise."""
    h, w, compact = _checked(rle)
    return {"size": [h, w], "counts": compact}


def rle_area(rle: dict) -> int:
    """Number of foreground pixels without decoding the mask."""
    try:
        counts = rle["counts"]
    except (KeyError, TypeError):
        raise ValueError(f"an RLE must have 'counts', got {_short(rle)}") from None
    return int(sum(_runs(counts)[1::2]))


def checked_area(rle: dict) -> tuple[tuple[int, int], int]:
    """``((H, W), foreground pixels)`` of a valid RLE, checked as :func:`rle_to_mask` checks it
    (the same errors), without decoding the mask: the sum of its runs of ones."""
    h, w, runs, _ = _checked_runs(rle)
    return (h, w), int(sum(runs[1::2]))


def _checked(rle: dict) -> tuple[int, int, bytes]:
    """``(H, W, compact counts)`` of a valid RLE; ValueError saying what is wrong otherwise."""
    h, w, runs, counts = _checked_runs(rle)
    if h == 0 or w == 0:
        return h, w, b""
    if isinstance(counts, str):
        return h, w, counts.encode("ascii")
    if isinstance(counts, bytes):
        return h, w, counts
    return h, w, coco_mask.frPyObjects({"size": [h, w], "counts": runs}, h, w)["counts"]


def _checked_runs(rle: dict) -> tuple[int, int, list[int], object]:
    """``(H, W, run lengths, counts as given)`` of a valid RLE; ValueError otherwise."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"an RLE must have 'size' [H, W] and 'counts', got {_short(rle)}"
        ) from None
    runs = _runs(counts)
    if any(c < 0 for c in runs):  # a compressed string's differences can give one too
        raise ValueError(f"RLE counts hold a negative run length, {min(runs)}")
    if sum(runs) != h * w:
        raise ValueError(f"RLE counts sum to {sum(runs)}, expected H*W = {h * w}")
    return h, w, runs, counts


def _runs(counts: object) -> list[int]:
    """The run lengths of ``counts``: a compressed string, or a list of whole numbers (an
    integral float, ``3.0``, as a JSON writer may spell 3, is one; ``2.5`` is refused: ``int``
    would cut it to 2 and paint the runs after it one pixel off)."""
    if isinstance(counts, (str, bytes)):
        return _decompress(counts)
    bad = ValueError(f"RLE counts must be a string or a list of ints, got {_short(counts)}")
    try:
        items = list(counts)  # type: ignore[call-overload]
    except TypeError:
        raise bad from None
    for k, c in enumerate(items):
        if isinstance(c, float) and not c.is_integer():  # nan and inf too
            raise ValueError(
                f"RLE counts hold a run length that is not a whole number, {c!r} "
                f"(count {k + 1} of {len(items)})"
            )
    try:
        return [int(c) for c in items]
    except (TypeError, ValueError):
        raise bad from None


def _decompress(counts: str | bytes) -> list[int]:
    text = counts.decode("latin-1") if isinstance(counts, bytes) else counts
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
            if not 0 <= c <= 63:
                raise ValueError(
                    f"RLE counts string holds {text[p]!r} at {p}; a compressed COCO RLE holds "
                    "only the characters '0' to 'o'"
                )
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
