"""Hungarian matching of predicted queries to target masks (scipy's linear_sum_assignment).

Cost of assigning query ``q`` to target ``t`` (Mask2Former):
``cost_class * (-p_q(class_t)) + cost_mask * BCE(q, t) + cost_dice * dice(q, t)``, where BCE and
dice are computed on ``num_points`` uniformly sampled points shared by all queries and targets;
points on ignored pixels are left out of both.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from trainer.losses.points import point_sample


def pair_bce_cost(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean BCE of every (query, target) pair over the valid points.

    Args:
        logits: ``(Q, P)`` mask logits; targets: ``(T, P)`` {0, 1}; valid: ``(P,)`` bool.
    Returns:
        ``(Q, T)``.
    """
    v = valid.to(logits.dtype)
    n = v.sum().clamp_min(1.0)
    pos = torch.nn.functional.softplus(-logits) * v  # -log sigmoid(x)
    neg = torch.nn.functional.softplus(logits) * v  # -log (1 - sigmoid(x))
    return (pos @ targets.T + neg @ (1.0 - targets).T) / n


def pair_dice_cost(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Dice loss ``1 - (2|P∩T| + 1) / (|P| + |T| + 1)`` of every pair over the valid points.

    Args as :func:`pair_bce_cost`. Returns ``(Q, T)``.
    """
    v = valid.to(logits.dtype)
    p = torch.sigmoid(logits) * v
    t = targets * v
    num = 2.0 * p @ t.T
    den = p.sum(-1)[:, None] + t.sum(-1)[None, :]
    return 1.0 - (num + 1.0) / (den + 1.0)


class HungarianMatcher:
    """One-to-one assignment of queries to the targets of each image."""

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_mask: float = 5.0,
        cost_dice: float = 5.0,
        num_points: int = 12544,
    ) -> None:
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    def cost_matrix(
        self,
        class_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        labels: torch.Tensor,
        masks: torch.Tensor,
        valid: torch.Tensor,
        coords: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(Q, T)`` cost of one image.

        Args:
            class_logits: ``(Q, K+1)``; mask_logits: ``(Q, h, w)``; labels: ``(T,)`` class ids;
            masks: ``(T, H, W)`` {0, 1}; valid: ``(H, W)`` bool;
            coords: ``(P, 2)`` sampling points in [0, 1] (default: ``num_points`` uniform).
        """
        if coords is None:
            coords = torch.rand(self.num_points, 2, device=mask_logits.device)
        prob = class_logits.float().softmax(-1)
        cost_class = -prob[:, labels]
        q, t = mask_logits.shape[0], masks.shape[0]
        pts = coords[None]
        pl = point_sample(mask_logits[None].float(), pts)[0]  # (Q, P)
        tm = point_sample(masks[None].float(), pts, mode="nearest")[0]  # (T, P)
        tv = point_sample(valid[None, None].float(), pts, mode="nearest")[0, 0] > 0.5
        assert pl.shape[0] == q and tm.shape[0] == t
        return (
            self.cost_class * cost_class
            + self.cost_mask * pair_bce_cost(pl, tm, tv)
            + self.cost_dice * pair_dice_cost(pl, tm, tv)
        )

    @torch.no_grad()
    def match(
        self,
        class_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        labels: torch.Tensor,
        masks: torch.Tensor,
        valid: torch.Tensor,
        coords: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(query indices, target indices)``, int64 of length ``min(Q, T)``, sorted by query."""
        if labels.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty
        cost = self.cost_matrix(class_logits, mask_logits, labels, masks, valid, coords)
        cost = torch.nan_to_num(cost.cpu(), nan=1e6, posinf=1e6, neginf=-1e6)
        rows, cols = linear_sum_assignment(cost.numpy())
        return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(
            np.asarray(cols), dtype=torch.long
        )
