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

from dataclasses import dataclass, fields

import cv2
import numpy as np

IGNORE = 255

# Offsets (dy, dx) of the disk of radius 2: every integer offset with dy^2 + dx^2 <= 4 (13 pixels,
# skimage.morphology.disk(2) in the DAVIS code).
DISK2 = tuple((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dy * dy + dx * dx <= 4)
# The histogram fast path needs (K + 1)^2 codes to fit into uint8.
_HIST_MAX_CLASSES = 15
# OpenCV's arithmetic takes tiny arrays such as (1, 1) for scalars: numpy handles small maps.
_CV_MIN_SIZE = 256
# cv2.calcHist counts in float32: exact below 2^24, so larger images are counted in row chunks.
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


def check_pair(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> None:
    """Raise ``ValueError`` unless ``pred`` and ``gt`` are same-size ``(H, W) uint8`` label maps
    holding only class ids ``0..num_classes-1`` or 255."""
    if not 1 <= num_classes <= IGNORE:
        raise ValueError(f"num_classes must be in 1..255, got {num_classes}")
    for name, a in (("pred", pred), ("gt", gt)):
        if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype != np.uint8:
            got = f"{a.shape} {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{name}: label map must be (H, W) uint8, got {got}")
    if pred.shape != gt.shape:
        raise ValueError(f"pred: size {pred.shape} differs from gt size {gt.shape} (H, W)")
    if num_classes < IGNORE:
        for name, a in (("pred", pred), ("gt", gt)):
            if a.size < _CV_MIN_SIZE:
                outside = bool(np.any((a >= num_classes) & (a != IGNORE)))
            else:
                outside = cv2.countNonZero(cv2.inRange(a, num_classes, IGNORE - 1)) > 0
            if outside:
                bad = np.unique(a[(a >= num_classes) & (a != IGNORE)])[:10].tolist()
                raise ValueError(
                    f"{name}: label values {bad} are not class ids "
                    f"(expected 0..{num_classes - 1} or 255 = ignore)"
                )


def _joint_hist(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """``(k+1, k+1) int64`` joint histogram of ``min(a, k)`` and ``min(b, k)``."""
    n = k + 1
    if k <= _HIST_MAX_CLASSES and a.size >= _CV_MIN_SIZE:
        a8 = cv2.min(a, k)
        b8 = cv2.min(b, k)
        code = cv2.add(cv2.multiply(a8, n, dtype=cv2.CV_8U), b8)
        hist = np.zeros(256, np.int64)
        step = max(1, _HIST_EXACT // max(1, code.shape[1]) - 1)
        for r in range(0, code.shape[0], step):
            h = cv2.calcHist([code[r : r + step]], [0], None, [256], [0, 256])
            hist += h.ravel().astype(np.int64)
        return hist[: n * n].reshape(n, n)
    code = np.minimum(a, k).astype(np.int64) * n + np.minimum(b, k)
    return np.bincount(code.ravel(), minlength=n * n).reshape(n, n)


def _band_labels(label: np.ndarray, d: int) -> np.ndarray:
    """``label`` where the pixel is in its class's Boundary IoU band, 255 elsewhere."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * d + 1, 2 * d + 1))
    lo = cv2.erode(label, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    hi = cv2.dilate(label, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=IGNORE)
    if label.size < _CV_MIN_SIZE:
        return np.where(lo == hi, np.uint8(IGNORE), label)
    interior = cv2.compare(lo, hi, cv2.CMP_EQ)  # 255 where the window is uniform
    return cv2.bitwise_or(label, interior)


def _flat_nonzero(mask: np.ndarray) -> np.ndarray:
    """Flat indices of the non-zero pixels of a C-contiguous uint8 mask, fast when sparse."""
    flat = mask.reshape(-1)
    n8 = flat.size // 8 * 8
    words = flat[:n8].view(np.uint64)
    hit = np.flatnonzero(words)
    if hit.size * 4 > words.size:  # dense: the byte-wise scan is cheaper
        return np.flatnonzero(flat)
    rows, cols = np.nonzero(flat[:n8].reshape(-1, 8)[hit])
    idx = hit[rows] * 8 + cols
    if n8 < flat.size:
        idx = np.concatenate([idx, np.flatnonzero(flat[n8:]) + n8])
    return idx


def _bit_dtype(nbits: int) -> type[np.unsignedinteger]:
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if nbits <= np.dtype(dt).itemsize * 8:
            return dt
    raise AssertionError(nbits)


_BYTE_BITS = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.int64)


def _count_bits(bits: np.ndarray, nbits: int) -> np.ndarray:
    """``(nbits,) int64``: how many entries of ``bits`` have each bit set."""
    if bits.size == 0:
        return np.zeros(nbits, np.int64)
    raw = bits.astype(bits.dtype.newbyteorder("<"), copy=False).view(np.uint8)
    raw = raw.reshape(bits.size, bits.dtype.itemsize)
    out = np.concatenate(
        [np.bincount(raw[:, j], minlength=256) @ _BYTE_BITS for j in range(raw.shape[1])]
    )
    return out[:nbits]


def _boundary_pixels(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """seg2bmap boundary pixels of every value of ``label``.

    Returns the flat indices of pixels whose 2x2 block (self, E, S, SE, clipped at the frame) is
    not uniform, and the ``(N, 4)`` block values at those pixels.
    """
    h, w = label.shape
    padded = cv2.copyMakeBorder(label, 0, 1, 0, 1, cv2.BORDER_REPLICATE)
    k2 = np.ones((2, 2), np.uint8)
    lo = cv2.erode(padded, k2, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[:h, :w]
    hi = cv2.dilate(padded, k2, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[:h, :w]
    if label.size < _CV_MIN_SIZE:
        idx = np.flatnonzero(lo != hi)
    else:
        idx = _flat_nonzero(cv2.compare(lo, hi, cv2.CMP_NE))
    r, c = np.divmod(idx, w)
    p = r * (w + 1) + c
    flat = padded.reshape(-1)
    block = np.stack([flat[p], flat[p + 1], flat[p + w + 1], flat[p + w + 2]], axis=1)
    return idx, block


def _matched(src_idx, src_bits, dst_idx, shape, dtype) -> np.ndarray:
    """For each pixel of ``dst_idx``: the OR of ``src_bits`` over the radius-2 disk around it."""
    h, w = shape
    wp = w + 4
    grid = np.zeros((h + 4) * wp, dtype)
    r, c = np.divmod(src_idx, w)
    grid[(r + 2) * wp + c + 2] = src_bits
    r, c = np.divmod(dst_idx, w)
    q = (r + 2) * wp + c + 2
    acc = np.zeros(dst_idx.size, dtype)
    for dy, dx in DISK2:
        acc |= grid[q + (dy * wp + dx)]
    return acc


def _bf1_counts(pred_b, gt_b, shape, k: int) -> tuple[np.ndarray, ...]:
    (pi, pblock), (gi, gblock) = pred_b, gt_b
    out = [np.zeros(k, np.int64) for _ in range(4)]
    for start in range(0, k, 64):  # one group of up to 64 classes per bit word
        nb = min(64, k - start)
        dtype = _bit_dtype(nb)
        lut = np.zeros(256, dtype)
        lut[start : start + nb] = np.left_shift(1, np.arange(nb, dtype=np.uint64)).astype(dtype)
        pbits = np.bitwise_or.reduce(lut[pblock], axis=1) if pi.size else np.zeros(0, dtype)
        gbits = np.bitwise_or.reduce(lut[gblock], axis=1) if gi.size else np.zeros(0, dtype)
        pm = pbits & _matched(gi, gbits, pi, shape, dtype)
        gm = gbits & _matched(pi, pbits, gi, shape, dtype)
        for o, bits in zip(out, (pbits, pm, gbits, gm), strict=True):
            o[start : start + nb] = _count_bits(bits, nb)
    return tuple(out)


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
        check_pair(pred, gt, num_classes)
    k = num_classes
    pred = np.ascontiguousarray(pred)
    gt = np.ascontiguousarray(gt)
    h, w = gt.shape
    if gt.size == 0:
        return PairCounts.zeros(k)

    # IoU: joint histogram of (gt, pred); row K holds gt == 255, column K pred values >= K.
    joint = _joint_hist(gt, pred, k)
    inter = np.diag(joint)[:k].copy()
    gt_area = joint[:k, :].sum(axis=1)
    pred_area = joint[:k, :k].sum(axis=0)
    union = gt_area + pred_area - inter

    # Boundary IoU: labels kept in the band only; one joint histogram gives both bands and
    # their intersection (pixels of c in the band of c in both maps).
    d = boundary_width(h, w)
    band = _joint_hist(_band_labels(gt, d), _band_labels(pred, d), k)
    b_inter = np.diag(band)[:k].copy()
    b_union = band[:k, :].sum(axis=1) + band[:, :k].sum(axis=0) - b_inter

    # Boundary F1: ground-truth-255 pixels become 255 (no class) in the prediction too.
    if gt.size < _CV_MIN_SIZE:
        pred_z = np.where(gt == IGNORE, np.uint8(IGNORE), pred)
    else:
        pred_z = cv2.bitwise_or(pred, cv2.compare(gt, IGNORE, cv2.CMP_EQ))
    pb, pm, gb, gm = _bf1_counts(_boundary_pixels(pred_z), _boundary_pixels(gt), (h, w), k)
    return PairCounts(inter, union, b_inter, b_union, pb, pm, gb, gm, gt_area, pred_area)
