"""The MaSSFormer training loss: matched class CE, point-sampled weighted BCE and dice over all
seven predictions, plus the edge loss.

Normalisation (Mask2Former's): class CE is the weighted mean over all queries of the batch
(unmatched queries weigh ``no_object_weight``, matched queries their class's whole-class weight);
mask BCE of one matched mask is ``sum_p w_p * bce_p / #valid points`` (so the boundary weight
raises the loss rather than being normalised away); dice is computed over the valid points;
both are summed over matched masks, each scaled by its class weight, and divided by the number
of target masks in the batch (averaged over DDP ranks). The edge loss is the mean BCE over the
pixels where the edge target is defined, with the edge logits bilinearly upsampled to the
label's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from annotations.numbers import check_numbers
from trainer.losses.matcher import HungarianMatcher
from trainer.losses.points import importance_points, point_pixels, point_sample
from trainer.losses.targets import DecouplingConfig, ImageTargets

MAX_POINTS = 1 << 20  # points sampled a mask: a 1024 px mask's every pixel


@dataclass
class LossConfig:
    """Weights and sampling of the loss (defaults: the published MaSSFormer/Mask2Former values)."""

    class_weight: float = 2.0  # class cross-entropy weight (also the matcher's class cost)
    mask_weight: float = 5.0  # point-sampled mask BCE weight (also the matcher's BCE cost)
    dice_weight: float = 5.0  # dice weight (also the matcher's dice cost)
    edge_weight: float = 10.0  # edge BCE weight
    no_object_weight: float = 0.1  # CE weight of queries matched to nothing
    num_points: int = 12544  # points sampled per mask (112 x 112)
    oversample: float = 3.0  # candidates per kept point for importance sampling
    importance: float = 0.75  # share of points picked by importance (rest uniform)
    boundary_bias: float = 1.0  # weight of the boundary W in the importance score
    deep_supervision: bool = True  # supervise the 6 intermediate predictions too
    decoupling: DecouplingConfig = field(default_factory=DecouplingConfig)  # label decoupling

    def __post_init__(self) -> None:
        check_numbers(self)  # a Python caller's nan or inf (a file's is refused as it is read)
        if isinstance(self.decoupling, dict):
            self.decoupling = DecouplingConfig(**self.decoupling)
        if self.num_points < 1 or not 0.0 <= self.importance <= 1.0 or self.oversample < 1:
            raise ValueError("num_points >= 1, oversample >= 1 and importance in [0, 1] required")
        if self.num_points * self.oversample > MAX_POINTS:  # 2**63: torch's overflow, a traceback
            raise ValueError(
                f"num_points x oversample must be at most {MAX_POINTS:,} (1024 x 1024), "
                f"got {self.num_points} x {self.oversample}"
            )


def _num_masks(targets: list[ImageTargets], device: torch.device) -> float:
    n = torch.tensor(float(sum(len(t.labels) for t in targets)), device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(n)
        n = n / dist.get_world_size()
    return max(float(n), 1.0)


class SetCriterion(nn.Module):
    """Computes the named, already weighted loss terms; their sum is the training loss."""

    def __init__(self, num_classes: int, cfg: LossConfig | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cfg = cfg or LossConfig()
        self.matcher = HungarianMatcher(
            self.cfg.class_weight, self.cfg.mask_weight, self.cfg.dice_weight, self.cfg.num_points
        )

    def class_loss(
        self, logits: torch.Tensor, matches: list[tuple[torch.Tensor, torch.Tensor]], targets
    ) -> torch.Tensor:
        """Weighted CE over ``(B, Q, K+1)`` logits; unmatched queries target no-object (id K)."""
        b, q, _ = logits.shape
        tgt = torch.full((b, q), self.num_classes, dtype=torch.long, device=logits.device)
        w = torch.full((b, q), self.cfg.no_object_weight, device=logits.device)
        for i, ((qi, ti), t) in enumerate(zip(matches, targets, strict=True)):
            qi, ti = qi.to(logits.device), ti.to(logits.device)
            tgt[i, qi] = t.labels[ti]
            w[i, qi] = t.class_weight[ti]
        ce = F.cross_entropy(logits.float().flatten(0, 1), tgt.flatten(), reduction="none")
        return (ce * w.flatten()).sum() / w.sum().clamp_min(1e-12)

    def mask_losses(
        self,
        masks: torch.Tensor,
        matches: list[tuple[torch.Tensor, torch.Tensor]],
        targets: list[ImageTargets],
        num_masks: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(bce, dice)`` of matched ``(B, Q, h, w)`` mask logits, point sampled."""
        cfg = self.cfg
        rows = [
            (masks[i, qi.to(masks.device)], ti.to(t.masks.device), t)
            for i, ((qi, ti), t) in enumerate(zip(matches, targets, strict=True))
            if len(qi)
        ]
        if not rows:
            zero = masks.sum() * 0.0
            return zero, zero
        src_t = torch.cat([src for src, _, _ in rows])[:, None].float()
        coords = importance_points(
            src_t,
            torch.cat([t.boundary[ti] for _, ti, t in rows])[:, None],
            cfg.num_points,
            cfg.oversample,
            cfg.importance,
            cfg.boundary_bias,
            torch.cat([t.valid[None].expand(len(ti), -1, -1) for _, ti, t in rows])[:, None],
        )
        logit = point_sample(src_t, coords)[:, 0]
        # with `valid` every point lies inside a pixel, off its borders: the targets are read at
        # those pixels rather than stacked at full resolution and sampled (the same values)
        h, w = targets[0].valid.shape
        flat = point_pixels(coords, h, w).split([len(ti) for _, ti, _ in rows])
        labs, wgts, vals = [], [], []
        for (_, ti, t), f in zip(rows, flat, strict=True):
            labs.append(t.masks.flatten(1)[ti[:, None], f])
            wgts.append(t.weights.flatten(1)[ti[:, None], f])
            vals.append(t.valid.flatten()[f])
        lab, wgt, val = torch.cat(labs), torch.cat(wgts), torch.cat(vals).float()
        classw = torch.cat([t.class_weight[ti] for _, ti, t in rows])
        bce = F.binary_cross_entropy_with_logits(logit, lab, reduction="none")
        bce = (bce * wgt).sum(1) / val.sum(1).clamp_min(1.0)
        p = torch.sigmoid(logit) * val
        tl = lab * val
        dice = 1.0 - (2.0 * (p * tl).sum(1) + 1.0) / (p.sum(1) + tl.sum(1) + 1.0)
        return (bce * classw).sum() / num_masks, (dice * classw).sum() / num_masks

    def edge_loss(self, edge_logits: torch.Tensor, targets: list[ImageTargets]) -> torch.Tensor:
        """Mean BCE of ``(B, 1, h, w)`` edge logits against the 2-pixel edge maps."""
        total = edge_logits.sum() * 0.0
        count = 0.0
        for i, t in enumerate(targets):
            up = F.interpolate(
                edge_logits[i : i + 1].float(),
                size=t.edge.shape,
                mode="bilinear",
                align_corners=False,
            )[0, 0]
            bce = F.binary_cross_entropy_with_logits(up, t.edge, reduction="none")
            total = total + (bce * t.edge_valid).sum()
            count += float(t.edge_valid.sum())
        return total / max(count, 1.0)

    def layer_losses(
        self, out: dict, targets: list[ImageTargets], num_masks: float
    ) -> dict[str, torch.Tensor]:
        logits, masks = out["pred_logits"], out["pred_masks"]
        matches = [
            self.matcher.match(logits[i], masks[i], t.labels, t.masks, t.valid)
            for i, t in enumerate(targets)
        ]
        bce, dice = self.mask_losses(masks, matches, targets, num_masks)
        return {
            "loss_ce": self.cfg.class_weight * self.class_loss(logits, matches, targets),
            "loss_mask": self.cfg.mask_weight * bce,
            "loss_dice": self.cfg.dice_weight * dice,
        }

    def forward(self, outputs: dict, targets: list[ImageTargets]) -> dict[str, torch.Tensor]:
        """Named weighted losses: ``loss_ce/mask/dice`` (final), ``..._0`` to ``..._5``
        (intermediate predictions) and ``loss_edge``. The training loss is their sum."""
        num_masks = _num_masks(targets, outputs["pred_logits"].device)
        losses = self.layer_losses(outputs, targets, num_masks)
        if self.cfg.deep_supervision:
            for i, aux in enumerate(outputs.get("aux_outputs", [])):
                for k, v in self.layer_losses(aux, targets, num_masks).items():
                    losses[f"{k}_{i}"] = v
        if "edge_logits" in outputs and self.cfg.edge_weight > 0:
            losses["loss_edge"] = self.cfg.edge_weight * self.edge_loss(
                outputs["edge_logits"], targets
            )
        return losses
