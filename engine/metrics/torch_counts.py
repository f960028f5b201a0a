"""The same counts as :func:`engine.metrics.pair_counts`, computed with torch on any device.

Meant for a GPU (``device="cuda"``); on the CPU the OpenCV path is faster. Every step mirrors the
definitions (DESIGN.md section 5) with exact integer arithmetic, so the counts are identical
(tested on CPU tensors):

- IoU and the Boundary IoU band histogram: ``torch.bincount`` of joint codes;
- the band: a ``(2d+1)^2`` max pool of the label map and of its negation (the frame padded so
  windows past it always differ), band iff min != max;
- Boundary F1: per class, the seg2bmap boundary from the 2x2 block (replicate padding clips it
  at the frame), dilated with the radius-2 disk as two 3-pixel crosses (max pools).
"""

from __future__ import annotations

import numpy as np

from engine.metrics.counts import IGNORE, PairCounts, boundary_width, check_pair


def _as_tensor(a, device):
    import torch

    if isinstance(a, np.ndarray):
        a = torch.from_numpy(np.ascontiguousarray(a))
    return a.to(device=device)


def _joint(a, b, k: int):
    import torch

    n = k + 1
    code = a.clamp(max=k).long() * n + b.clamp(max=k).long()
    return torch.bincount(code.flatten(), minlength=n * n).view(n, n)


def _band_labels(label, d: int):
    import torch
    import torch.nn.functional as F

    x = label.float()[None, None]
    size = 2 * d + 1
    hi = F.max_pool2d(F.pad(x, (d, d, d, d), value=float(IGNORE)), size, stride=1)
    lo = -F.max_pool2d(F.pad(-x, (d, d, d, d), value=0.0), size, stride=1)
    return torch.where((lo == hi)[0, 0], torch.full_like(label, IGNORE), label)


def _cross(x):
    import torch
    import torch.nn.functional as F

    h = F.max_pool2d(x, (1, 3), stride=1, padding=(0, 1))
    v = F.max_pool2d(x, (3, 1), stride=1, padding=(1, 0))
    return torch.maximum(h, v)


def _boundary_blocks(label):
    import torch.nn.functional as F

    x = F.pad(label.float()[None, None], (0, 1, 0, 1), mode="replicate")[0, 0]
    a, e, s, se = x[:-1, :-1], x[:-1, 1:], x[1:, :-1], x[1:, 1:]
    edge = (a != e) | (a != s) | (a != se)
    return edge, (a, e, s, se)


def pair_counts_torch(pred, gt, num_classes: int, device: str = "cuda") -> PairCounts:
    """All counts for one pair, computed with torch on ``device``.

    Args:
        pred, gt: ``(H, W) uint8`` numpy arrays or tensors (as for ``pair_counts``).
        num_classes: ``K``.
        device: a torch device string ("cuda", "cuda:1", "cpu").
    """
    import torch

    if isinstance(pred, np.ndarray) and isinstance(gt, np.ndarray):
        check_pair(pred, gt, num_classes)
    k = num_classes
    p = _as_tensor(pred, device)
    g = _as_tensor(gt, device)
    if p.dtype != torch.uint8 or g.dtype != torch.uint8 or p.ndim != 2 or p.shape != g.shape:
        raise ValueError(
            f"pred and gt must be same-size (H, W) uint8, got {p.shape} {p.dtype} and {g.shape} {g.dtype}"
        )
    h, w = g.shape
    if g.numel() == 0:
        return PairCounts.zeros(k)
    with torch.no_grad():
        joint = _joint(g, p, k)
        inter = torch.diagonal(joint)[:k]
        gt_area = joint[:k, :].sum(1)
        pred_area = joint[:k, :k].sum(0)
        d = boundary_width(h, w)
        band = _joint(_band_labels(g, d), _band_labels(p, d), k)
        b_inter = torch.diagonal(band)[:k]
        b_union = band[:k, :].sum(1) + band[:, :k].sum(0) - b_inter

        pz = torch.where(g == IGNORE, torch.full_like(p, IGNORE), p)
        p_edge, p_blk = _boundary_blocks(pz)
        g_edge, g_blk = _boundary_blocks(g)
        rows = []
        for c in range(k):
            bp = p_edge & ((p_blk[0] == c) | (p_blk[1] == c) | (p_blk[2] == c) | (p_blk[3] == c))
            bg = g_edge & ((g_blk[0] == c) | (g_blk[1] == c) | (g_blk[2] == c) | (g_blk[3] == c))
            dp = _cross(_cross(bp.float()[None, None]))[0, 0] > 0
            dg = _cross(_cross(bg.float()[None, None]))[0, 0] > 0
            rows.append(torch.stack([bp.sum(), (bp & dg).sum(), bg.sum(), (bg & dp).sum()]))
        bf1 = torch.stack(rows, 1)  # (4, K)
        out = torch.stack(
            [inter, gt_area + pred_area - inter, b_inter, b_union, *bf1, gt_area, pred_area]
        )
    return PairCounts.from_array(out.cpu().numpy().astype(np.int64))
