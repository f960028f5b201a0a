"""Straightforward per-class reference implementations of the three metrics (tests and bench).

Written from the definitions (DESIGN.md section 5), one class and one binary mask at a time,
independently of ``engine.metrics``: scipy morphology for the band and the matching, the DAVIS
``seg2bmap`` transcribed literally, and the MaSS13K release's band (padding + iterated 3x3
erosion) as a second band reference.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

FIELDS = (
    "iou_intersection",
    "iou_union",
    "biou_intersection",
    "biou_union",
    "bf1_pred_boundary",
    "bf1_pred_matched",
    "bf1_gt_boundary",
    "bf1_gt_matched",
    "gt_area",
    "pred_area",
)

# Euclidean disk of radius 2 (skimage.morphology.disk(2)): 13 pixels.
DISK = np.array(
    [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ],
    dtype=bool,
)


def release_d(h: int, w: int) -> int:
    """The MaSS13K release's line: ``int(round(0.001 * np.sqrt(h**2 + w**2)))``, floor 1."""
    img_diag = np.sqrt(h**2 + w**2)
    dilation = int(round(0.001 * img_diag))
    return max(dilation, 1)


def band_scipy(mask: np.ndarray, d: int) -> np.ndarray:
    """Pixels of ``mask`` whose (2d+1)^2 window holds a 0 or reaches past the frame."""
    eroded = ndimage.binary_erosion(mask, structure=np.ones((2 * d + 1, 2 * d + 1)), border_value=0)
    return mask & ~eroded


def band_release(mask: np.ndarray, d: int) -> np.ndarray:
    """The release's ``generate_binary_mask``: 1-pixel zero padding, 3x3 erosion d times."""
    h, w = mask.shape
    m = mask.astype(np.uint8)
    padded = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1 : h + 1, 1 : w + 1]
    return (m.astype(np.int16) - eroded) > 0


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """DAVIS ``seg2bmap`` at the mask's own size."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def reference_counts(pred: np.ndarray, gt: np.ndarray, k: int, release_band: bool = False) -> dict:
    """All counts, per class, from the definitions. Returns ``{field: (k,) int64}``."""
    h, w = gt.shape
    out = {f: np.zeros(k, np.int64) for f in FIELDS}
    if gt.size == 0:
        return out
    valid = gt != 255
    d = release_d(h, w)
    band = band_release if release_band else band_scipy
    for c in range(k):
        p, g = pred == c, gt == c
        out["iou_intersection"][c] = np.sum(p & g & valid)
        out["iou_union"][c] = np.sum((p | g) & valid)
        out["gt_area"][c] = np.sum(g)
        out["pred_area"][c] = np.sum(p & valid)
        bp, bg = band(p, d), band(g, d)
        out["biou_intersection"][c] = np.sum(bp & bg)
        out["biou_union"][c] = np.sum(bp | bg)
        sp, sg = seg2bmap(p & valid), seg2bmap(g & valid)
        dil_p = ndimage.binary_dilation(sp, structure=DISK)
        dil_g = ndimage.binary_dilation(sg, structure=DISK)
        out["bf1_pred_boundary"][c] = sp.sum()
        out["bf1_pred_matched"][c] = np.sum(sp & dil_g)
        out["bf1_gt_boundary"][c] = sg.sum()
        out["bf1_gt_matched"][c] = np.sum(sg & dil_p)
    return out
