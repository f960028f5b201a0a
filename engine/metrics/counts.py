"""Per-image counts of mIoU, Boundary IoU and Boundary F1 for all classes at once.

The definitions (DESIGN.md section 5) are implemented exactly; every count is an integer, so
summing counts over images, processes or machines is exact.

- **IoU** (mmsegmentation): pixels whose ground truth is 255 are excluded; per class, the
  intersection ``pred == gt == c`` and the union ``pred == c or gt == c``.
- **Boundary IoU** (MaSS13K release, ``generate_binary_mask`` in its ``iou_metric.py``): the band
  of class ``c`` in a label map is the set of pixels of class ``c`` whose ``(2d+1) x (2d+1)``
  window holds another value or reaches past the frame, ``d = max(1, int(round(0.001 *
  sqrt(H**2 + W**2))))``; no ignore masking (255 belongs to no class). One min filter and one max
  filter over the label map give the bands of every class: a pixel is in the band of its own
  class when the window's minimum and maximum differ (the frame is padded with 0 for the minimum
  and 255 for the maximum, so windows past the frame always differ).
- **Boundary F1** (DAVIS ``seg2bmap``, tolerance 2 px): the boundary of ``M = (label == c)``
  marks a pixel when ``M`` differs from its east, south or south-east neighbour (neighbours past
  the frame are not compared); ground-truth-255 pixels are zeroed in both masks first. For all
  classes at once: a pixel is on the boundary of class ``c`` exactly when ``c`` is one of the
  values of its 2x2 block (itself, E, S, SE; the block is clipped at the frame) and the block is
  not uniform. Boundary pixels carry one bit per class; matching ORs the other map's bits over
  the 13-pixel disk of radius 2 (Euclidean distance <= 2) at the boundary pixels only.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, fields

import cv2
import numpy as np

from annotations.labelmap import IGNORE  # the label maps' "unknown" value

# Offsets (dy, dx) of the disk of radius 2: every integer offset with dy^2 + dx^2 <= 4 (13 pixels,
# skimage.morphology.disk(2) in the DAVIS code).
DISK2 = tuple((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy * dy + dx * dx <= 4)
# The histogram fast path needs (K + 1)^2 codes to fit into uint8.
_HIST_MAX_CLASSES = 15
# OpenCV's arithmetic takes tiny arrays such as (1, 1) for scalars: numpy handles small maps.
_CV_MIN_SIZE = 256
# Rows are processed in strips of about this many pixels (cache-sized).
_STRIP_PIXELS = 1 << 18
# cv2.calcHist counts in float32: exact below 2^24 pixels (strips are far smaller; a strip of a
# wider image goes to np.bincount).
_HIST_EXACT = 1 << 24


def boundary_width(height: int, width: int, ratio: float = 0.001) -> int:
    """Boundary IoU band half-width ``d`` of an image, exactly as the MaSS13K release computes it.

    ``max(1, int(round(ratio * sqrt(H**2 + W**2))))`` with Python's ``round`` (half to even):
    5 at 4032x3024 (5.04), 4 at 3840x2160 (4.41), but 2 (not 3) at 2000x1500 (exactly 2.5) and
    1 at 400x300 (0.5 rounds to 0, then the floor of 1 applies).
    """
    diag = float(np.sqrt(float(height) ** 2 + float(width) ** 2))
    return max(1, int(round(ratio * diag)))


@dataclass
class PairCounts:
    """Integer counts of one or more (pred, gt) pairs; every field is ``(K,) int64`` by class id."""

    iou_intersection: np.ndarray  # pixels with pred == gt == c (gt != 255)
    iou_union: np.ndarray  # pixels with pred == c or gt == c (gt != 255)
    biou_intersection: np.ndarray  # pixels in the band of c in both maps
    biou_union: np.ndarray  # pixels in the band of c in either map
    bf1_pred_boundary: np.ndarray  # boundary pixels of c in the prediction
    bf1_pred_matched: np.ndarray  # of those, within distance 2 of a GT boundary pixel of c
    bf1_gt_boundary: np.ndarray  # boundary pixels of c in the ground truth
    bf1_gt_matched: np.ndarray  # of those, within distance 2 of a predicted boundary pixel of c
    gt_area: np.ndarray  # pixels with gt == c
    pred_area: np.ndarray  # pixels with pred == c where gt != 255

    @classmethod
    def zeros(cls, num_classes: int) -> PairCounts:
        return cls(*(np.zeros(num_classes, np.int64) for _ in fields(cls)))

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def as_array(self) -> np.ndarray:
        """``(10, K) int64``, rows in field order."""
        return np.stack([getattr(self, n) for n in self.names()])

    @classmethod
    def from_array(cls, array: np.ndarray) -> PairCounts:
        return cls(*(np.asarray(row, dtype=np.int64) for row in array))

    def __add__(self, other: PairCounts) -> PairCounts:
        return PairCounts.from_array(self.as_array() + other.as_array())


# -- helpers ------------------------------------------------------------------------------------


def check_pair(pred: np.ndarray, gt: np.ndarray, num_classes: int, values: bool = True) -> None:
    """Raise ``ValueError`` unless ``pred`` and ``gt`` are same-size ``(H, W) uint8`` label maps
    holding only class ids ``0..num_classes-1`` or 255 (values checked when ``values``)."""
    if not 1 <= num_classes <= IGNORE:
        raise ValueError(f"num_classes must be in 1..255, got {num_classes}")
    for name, a in (("pred", pred), ("gt", gt)):
        if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype != np.uint8:
            got = f"{a.shape} {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{name}: label map must be (H, W) uint8, got {got}")
    if pred.shape != gt.shape:
        raise ValueError(f"pred: size {pred.shape} differs from gt size {gt.shape} (H, W)")
    if values:
        _check_values(pred, "pred", num_classes)
        _check_values(gt, "gt", num_classes)


def _check_values(a: np.ndarray, name: str, k: int) -> None:
    if k >= IGNORE or a.size == 0:
        return
    if a.size < _CV_MIN_SIZE:
        outside = bool(np.any((a >= k) & (a != IGNORE)))
    else:
        outside = cv2.countNonZero(cv2.inRange(a, k, IGNORE - 1)) > 0
    if outside:
        bad = np.unique(a[(a >= k) & (a != IGNORE)])[:10].tolist()
        raise ValueError(
            f"{name}: label values {bad} are not class ids (expected 0..{k - 1} or 255 = ignore)"
        )


@functools.lru_cache(maxsize=8)
def _lanes(rows: int, width: int, copies: int, ncodes: int) -> np.ndarray:
    """``(rows, width) uint8``: ``(x % copies) * ncodes``, added to histogram codes so that
    neighbouring pixels of a uniform region hit different counters (calcHist's increments of one
    counter serialise); the copies are summed afterwards."""
    row = ((np.arange(width) % copies) * ncodes).astype(np.uint8)
    out = np.ascontiguousarray(np.broadcast_to(row, (rows, width)))
    out.flags.writeable = False
    return out


def _joint_hist(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """``(k+1, k+1) int64`` joint histogram of ``min(a, k)`` and ``min(b, k)``."""
    n = k + 1
    if k <= _HIST_MAX_CLASSES and a.size >= _CV_MIN_SIZE and a.size < _HIST_EXACT:
        code = cv2.min(a, k)
        code *= n  # at most k * (k + 1) < 256
        code += cv2.min(b, k)
        copies = 256 // (n * n)
        if copies > 1:
            code = cv2.add(code, _lanes(code.shape[0], code.shape[1], copies, n * n))
        hist = cv2.calcHist([code], [0], None, [256], [0, 256]).ravel().astype(np.int64)
        return hist[: copies * n * n].reshape(copies, n * n).sum(axis=0).reshape(n, n)
    code = np.minimum(a, k).astype(np.int64) * n + np.minimum(b, k)
    return np.bincount(code.ravel(), minlength=n * n).reshape(n, n)


def _band_labels(rows: np.ndarray, d: int, keep: slice) -> np.ndarray:
    """Rows ``keep`` of ``rows`` where the pixel is in its class's Boundary IoU band, 255
    elsewhere. ``rows`` holds ``d`` rows of context above and below ``keep`` (fewer only at the
    image's top and bottom, where the constant border stands for the frame)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * d + 1, 2 * d + 1))
    lo = cv2.erode(rows, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)[keep]
    hi = cv2.dilate(rows, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=IGNORE)[keep]
    label = rows[keep]
    if label.size < _CV_MIN_SIZE:
        return np.where(lo == hi, np.uint8(IGNORE), label)
    interior = cv2.compare(lo, hi, cv2.CMP_EQ)  # 255 where the window is uniform
    return cv2.bitwise_or(label, interior)


_K2 = np.ones((2, 2), np.uint8)
_BYTE_BITS = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.int64)


def _lut(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[values]`` for uint8 arrays (OpenCV's LUT unless tiny)."""
    if values.size < _CV_MIN_SIZE:
        return table[values]
    return cv2.LUT(values, table).reshape(values.shape)


def _boundary_blocks(rows: np.ndarray, n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """seg2bmap boundary pixels of every value in the first ``n`` rows of ``rows``.

    ``rows`` holds those rows plus the image row below them when there is one. Returns the flat
    indices, plus ``offset``, on a canvas of width ``W + 4`` (the image placed at row 2, column
    2) of the pixels whose 2x2 block (self, E, S, SE; clipped at the frame by replicating the
    last row and column) is not uniform, and the ``(N, 4) uint8`` block values there.
    """
    wc = rows.shape[1] + 4
    canvas = cv2.copyMakeBorder(rows, 0, 1, 2, 2, cv2.BORDER_REPLICATE)
    lo = cv2.erode(canvas, _K2, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[:n]
    hi = cv2.dilate(canvas, _K2, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[:n]
    edge = lo != hi
    edge[:, :2] = False
    edge[:, -2:] = False
    idx = np.flatnonzero(edge)
    flat = canvas.reshape(-1)
    block = np.empty((idx.size, 4), np.uint8)
    block[:, 0] = flat[idx]
    block[:, 1] = flat[1:][idx]  # east
    block[:, 2] = flat[wc:][idx]  # south
    block[:, 3] = flat[wc + 1 :][idx]  # south-east
    return idx + offset, block


def _block_bits(block: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``(N,) uint8``: OR over each block row of ``table[value]``."""
    if block.shape[0] == 0:
        return np.zeros(0, np.uint8)
    words = _lut(block, table).view(np.uint32).reshape(-1)
    words = words | (words >> 16)
    return ((words | (words >> 8)) & 0xFF).astype(np.uint8)


def _count_bits(bits: np.ndarray) -> np.ndarray:
    """``(8,) int64``: how many entries of the uint8 ``bits`` have each bit set."""
    if _CV_MIN_SIZE <= bits.size < _HIST_EXACT:
        hist = cv2.calcHist([bits.reshape(-1, 1)], [0], None, [256], [0, 256]).ravel()
        return hist.astype(np.int64) @ _BYTE_BITS
    return np.bincount(bits, minlength=256) @ _BYTE_BITS


def _disk_or(grid: np.ndarray, idx: np.ndarray, wc: int) -> np.ndarray:
    """OR of ``grid`` (flat uint8 canvas of width ``wc``) over the radius-2 disk around each
    canvas index ``idx``: one gather per disk offset, from shifted views (no index arrays)."""
    lowest = -2 * wc - 2
    base = idx + lowest  # >= 0: boundary pixels are never on the canvas's 2-pixel ring
    acc = np.zeros(idx.size, np.uint8)
    for dy, dx in DISK2:
        acc |= grid[dy * wc + dx - lowest :][base]
    return acc


def _bf1_counts(pred_b, gt_b, shape, k: int) -> tuple[np.ndarray, ...]:
    """Boundary F1 counts from the boundary blocks of the (zeroed) prediction and GT."""
    (pi, pblock), (gi, gblock) = pred_b, gt_b
    h, w = shape
    wc = w + 4
    out = [np.zeros(k, np.int64) for _ in range(4)]
    grid = _zero_grid((h + 4) * wc)
    try:
        _match_planes(pi, pblock, gi, gblock, grid, wc, k, out)
    except BaseException:
        grid[:] = 0  # keep the cached canvas all zeros
        raise
    return tuple(out)


_local = threading.local()


def _zero_grid(size: int) -> np.ndarray:
    """An all-zero flat uint8 canvas, reused between calls of one thread (a fresh 12 MB array
    costs page faults on every use); callers must leave it all zeros."""
    buf = getattr(_local, "grid", None)
    if buf is None or buf.size < size:
        buf = np.zeros(size, np.uint8)
        _local.grid = buf
    return buf[:size]


def _match_planes(pi, pblock, gi, gblock, grid, wc: int, k: int, out) -> None:
    for start in range(0, k, 8):  # one bit plane per 8 classes
        nb = min(8, k - start)
        table = np.zeros(256, np.uint8)
        table[start : start + nb] = (1 << np.arange(nb)).astype(np.uint8)
        pbits = _block_bits(pblock, table)
        gbits = _block_bits(gblock, table)
        grid[gi] = gbits
        pm = pbits & _disk_or(grid, pi, wc)
        grid[gi] = 0
        grid[pi] = pbits
        gm = gbits & _disk_or(grid, gi, wc)
        grid[pi] = 0
        for o, bits in zip(out, (pbits, pm, gbits, gm), strict=True):
            o[start : start + nb] = _count_bits(bits)[:nb]


# -- the public function ------------------------------------------------------------------------


def pair_counts(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, validate: bool = True
) -> PairCounts:
    """All counts of the three metrics for one pair of label maps.

    Args:
        pred: ``(H, W) uint8`` predicted label map, values ``0..K-1``; 255 (e.g. an uncertain
            pseudo label) is no class.
        gt: ``(H, W) uint8`` ground truth, values ``0..K-1`` or 255 = ignore.
        num_classes: ``K``.
        validate: check shapes, dtypes and values (``ValueError`` otherwise).

    Returns:
        :class:`PairCounts`, every field ``(K,) int64``.
    """
    if validate:
        check_pair(pred, gt, num_classes, values=False)  # values: strip by strip below
    k = num_classes
    pred = np.ascontiguousarray(pred)
    gt = np.ascontiguousarray(gt)
    h, w = gt.shape
    if gt.size == 0:
        return PairCounts.zeros(k)

    # Work in strips of rows (plus the context rows each metric needs) so that intermediate
    # arrays stay in cache; counts of strips add up exactly.
    d = boundary_width(h, w)
    step = max(1, _STRIP_PIXELS // w)
    joint = np.zeros((k + 1, k + 1), np.int64)
    band = np.zeros((k + 1, k + 1), np.int64)
    pred_edges, gt_edges = [], []
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        if validate:
            _check_values(pred[r0:r1], "pred", k)
            _check_values(gt[r0:r1], "gt", k)
        # IoU: joint histogram of (gt, pred); row K holds gt == 255, column K pred 255.
        joint += _joint_hist(gt[r0:r1], pred[r0:r1], k)
        # Boundary IoU: labels kept in the band only; one joint histogram gives both bands and
        # their intersection (pixels of c in the band of c in both maps).
        c0, c1 = max(0, r0 - d), min(h, r1 + d)
        keep = slice(r0 - c0, r1 - c0)
        band += _joint_hist(_band_labels(gt[c0:c1], d, keep), _band_labels(pred[c0:c1], d, keep), k)
        # Boundary F1: GT-255 pixels become 255 (no class) in the prediction too.
        e1 = min(h, r1 + 1)
        g, p = gt[r0:e1], pred[r0:e1]
        if g.size < _CV_MIN_SIZE:
            p = np.where(g == IGNORE, np.uint8(IGNORE), p)
        else:
            p = cv2.bitwise_or(p, cv2.compare(g, IGNORE, cv2.CMP_EQ))
        offset = (r0 + 2) * (w + 4)
        pred_edges.append(_boundary_blocks(p, r1 - r0, offset))
        gt_edges.append(_boundary_blocks(g, r1 - r0, offset))

    inter = np.diag(joint)[:k].copy()
    gt_area = joint[:k, :].sum(axis=1)
    pred_area = joint[:k, :k].sum(axis=0)
    union = gt_area + pred_area - inter
    b_inter = np.diag(band)[:k].copy()
    b_union = band[:k, :].sum(axis=1) + band[:, :k].sum(axis=0) - b_inter

    def cat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate([i for i, _ in parts]), np.concatenate([b for _, b in parts])

    pb, pm, gb, gm = _bf1_counts(cat(pred_edges), cat(gt_edges), (h, w), k)
    return PairCounts(inter, union, b_inter, b_union, pb, pm, gb, gm, gt_area, pred_area)
