"""Point sampling of mask logits and targets (Mask2Former / PointRend style).

Coordinates are ``(x, y)`` in [0, 1] relative to the map, so predictions at H/2 or H/4 and
targets at full resolution are sampled at the same physical points.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def point_sample(maps: torch.Tensor, coords: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``maps`` at ``coords``.

    Args:
        maps: ``(N, C, H, W)`` float.
        coords: ``(N, P, 2)`` float ``(x, y)`` in [0, 1].
        mode: ``"bilinear"`` for logits, ``"nearest"`` for targets (keeps ids and weights exact).
    Returns:
        ``(N, C, P)``.
    """
    grid = (2.0 * coords - 1.0)[:, :, None, :].to(maps.dtype)
    out = F.grid_sample(maps, grid, mode=mode, padding_mode="border", align_corners=False)
    return out[..., 0]


def point_pixels(coords: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(N, P)`` flat index ``y * width + x`` of the pixel of a ``height x width`` map that
    each of the ``(N, P, 2)`` points lies in: what ``point_sample(..., mode="nearest")`` reads
    for a point off the pixels' borders, as every point of :func:`importance_points` with
    ``valid`` is. Gathering targets by these indices reads only the sampled pixels, where
    ``point_sample`` needs the maps stacked into one ``(N, C, H, W)`` tensor."""
    x = (coords[..., 0] * width).long().clamp_(0, width - 1)
    y = (coords[..., 1] * height).long().clamp_(0, height - 1)
    return y * width + x


def importance_points(
    logits: torch.Tensor,
    boundary: torch.Tensor,
    num_points: int,
    oversample: float,
    importance: float,
    boundary_bias: float = 1.0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Boundary-biased importance sampling of ``num_points`` points per mask.

    ``oversample * num_points`` uniform candidates (uniform over the ``valid`` pixels when
    given) are scored by
    ``uncertainty + boundary_bias * W`` where ``uncertainty = 1 - |2 sigmoid(logit) - 1|`` (1 at
    logit 0) and ``W`` is the target's boundary weight at the candidate; the
    ``importance * num_points`` best are kept and the rest are drawn uniformly.

    Args:
        logits: ``(N, 1, h, w)`` mask logits (detached inside).
        boundary: ``(N, 1, H, W)`` boundary weight of the matched targets.
        valid: ``(N, 1, H, W)`` bool at the targets' resolution: the pixels that count. Every
            point (candidates and the uniform share) then lies on one of them, so no point is
            spent on an ignored pixel; a mask with no valid pixel samples the whole map.
    Returns:
        ``(N, num_points, 2)`` coordinates in [0, 1].
    """
    n = logits.shape[0]
    device = logits.device
    num_sampled = max(int(num_points * oversample), num_points)
    num_important = int(importance * num_points)
    num_random = num_points - num_important
    cand = _uniform(n, num_sampled, valid, device)
    with torch.no_grad():
        p = point_sample(logits.detach().float(), cand)[:, 0]
        score = 1.0 - (2.0 * torch.sigmoid(p) - 1.0).abs()
        score = score + boundary_bias * point_sample(boundary.float(), cand, mode="nearest")[:, 0]
        idx = score.topk(num_important, dim=1).indices
    picked = torch.gather(cand, 1, idx[..., None].expand(-1, -1, 2))
    if num_random > 0:
        picked = torch.cat([picked, _uniform(n, num_random, valid, device)], dim=1)
    return picked


def _uniform(n: int, count: int, valid: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """``(n, count, 2)`` points uniform over the map, or over the ``valid`` pixels of each row."""
    if valid is None:
        return torch.rand(n, count, 2, device=device)
    h, w = valid.shape[-2:]
    idx = valid_indices(valid.reshape(n, h * w), count)
    # a point inside its pixel, kept off the pixel's border so nearest sampling returns that pixel
    jitter = 0.02 + 0.96 * torch.rand(n, count, 2, device=valid.device)
    x = ((idx % w).to(jitter.dtype) + jitter[..., 0]) / w
    y = ((idx // w).to(jitter.dtype) + jitter[..., 1]) / h
    return torch.stack([x, y], dim=-1).to(device)


def valid_indices(flat: torch.Tensor, count: int) -> torch.Tensor:
    """``(n, count)`` indices per row of the ``(n, L)`` bool ``flat``, drawn uniformly with
    replacement among the row's True entries (among all entries for a row without one).

    By rejection: uniform draws over the row, the first ``count`` that land on a True entry
    kept, which is exactly uniform over those entries. Rows where too few landed (far less than
    one in 10^6 at the usual share of ignored pixels) fall back to ``torch.multinomial``, and so
    does every row of a batch where any row is under 5% valid: exact too, but on CPU 5x slower at
    a 256 x 256 crop (it draws from a cumulative table over every pixel of every row): 10% of a
    demo training step.
    Off the CPU it is ``torch.multinomial`` throughout: fast there, and without the host syncs
    that sizing the rejection draws takes.
    """
    if flat.device.type != "cpu":
        return _multinomial(flat, count)
    n, length = flat.shape
    valid = flat.sum(1, dtype=torch.int32)  # 3x faster than the default int64 counts
    empty = valid == 0
    if bool(empty.any()):
        flat = flat | empty[:, None]  # nothing valid: the whole row
    # the smallest valid share, in float32 as before: the same draws, the same random stream
    low = float((torch.where(empty, length, valid).float() / length).min()) if n else 1.0
    if low >= 0.05:
        m = int(count / low * 1.25) + 32
        cand = torch.randint(0, length, (n, m), device=flat.device)
        ok = flat.gather(1, cand)
        # the first `count` draws of each row that landed on a True entry, in draw order (a
        # running count rather than a stable sort of every draw: the same picks, 2x faster)
        keep = ok & (ok.cumsum(1) <= count)
        short = keep.sum(1) < count
        if not bool(short.any()):
            return cand[keep].view(n, count)
        idx = torch.zeros(n, count, dtype=torch.long, device=flat.device)
        idx[~short] = cand[~short][keep[~short]].view(-1, count)
    else:
        idx = torch.zeros(n, count, dtype=torch.long, device=flat.device)
        short = torch.ones(n, dtype=torch.bool, device=flat.device)
    idx[short] = _multinomial(flat[short], count)
    return idx


# torch.multinomial refuses more categories than this ("number of categories cannot exceed
# 2^24"): a map of over 16.8 M pixels, a --crop above 4096, a 64 MP image's mask.
MULTINOMIAL_MAX = 1 << 24


def _multinomial(flat: torch.Tensor, count: int) -> torch.Tensor:
    """:func:`valid_indices` by ``torch.multinomial`` (a row without a True entry: all entries).
    Rows longer than :data:`MULTINOMIAL_MAX` draw uniform positions among the row's True
    entries instead (exactly uniform too, another random stream)."""
    flat = flat | ~flat.any(1, keepdim=True)
    if flat.shape[1] <= MULTINOMIAL_MAX:
        return torch.multinomial(flat.float(), count, replacement=True)
    rows = []
    for row in flat:
        where = row.nonzero()[:, 0]
        rows.append(where[torch.randint(0, where.numel(), (count,), device=row.device)])
    return (
        torch.stack(rows) if rows else torch.zeros(0, count, dtype=torch.long, device=flat.device)
    )
