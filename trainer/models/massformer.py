"""MaSSFormer: ResNet backbone -> high-resolution pixel decoder -> masked-attention decoder."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.backbone import ResNetBackbone
from trainer.models.config import ModelConfig
from trainer.models.pixel_decoder import PixelDecoder
from trainer.models.transformer_decoder import MaskedAttentionDecoder

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, 0..255 scale
IMAGENET_STD = (58.395, 57.12, 57.375)
MIN_SIDE = 32  # the smallest input side the model takes (its stride-32 backbone)


class MaSSFormer(nn.Module):
    """The full model. Built from a :class:`ModelConfig` (kept as ``self.config``)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.backbone = ResNetBackbone(c.backbone, c.backbone_widths, c.backbone_norm)
        self.pixel_decoder = PixelDecoder(
            self.backbone.channels,
            dim=c.pixel_dim,
            mask_dim=c.mask_dim,
            memory_dim=c.hidden_dim,
            window=c.window,
            heads=c.cst_heads,
            cst_ffn_dim=c.cst_ffn_dim,
            edge_hidden_dim=c.edge_hidden_dim,
            se_ratio=c.se_reduction,
        )
        self.decoder = MaskedAttentionDecoder(
            num_classes=c.num_classes,
            hidden_dim=c.hidden_dim,
            mask_dim=c.mask_dim,
            num_queries=c.num_queries,
            heads=c.num_heads,
            ffn_dim=c.ffn_dim,
            num_layers=c.dec_layers,
        )
        self.register_buffer(
            "pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False
        )

    @property
    def size_divisibility(self) -> int:
        """Inputs are padded to multiples of this: the backbone stride 32 and CST windows
        (``window`` tokens at 1/16, i.e. 256 px for the published window of 16)."""
        return math.lcm(32, 16 * self.config.window)

    def forward(self, images: torch.Tensor, aux: bool = True, crop: bool = True) -> dict:
        """Args:
            images: ``(B, 3, H, W)`` float RGB in 0..255 (normalised here with the release's
                ImageNet mean/std, then zero-padded bottom/right to ``size_divisibility``), H,
                W >= 32. In training mode B >= 2 (the release's BatchNorms on globally pooled
                features need more than one value per channel).
            aux: also return the intermediate predictions (needed for training only).
            crop: crop the outputs to the unpadded image (``False``: outputs of the padded
                image, ``Hp/2 x Wp/2``, as the release's inference uses them).

        Returns a dict: ``pred_logits`` (B, Q, K+1) (last = no-object); ``pred_masks``
        (B, Q, ceil(H/2), ceil(W/2)) mask logits; ``aux_outputs`` a list of 6 dicts with
        ``pred_logits`` and ``pred_masks`` (B, Q, ceil(H/4), ceil(W/4)) (empty without
        ``aux``); ``edge_logits`` (B, 1, ceil(H/2), ceil(W/2)).
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h < MIN_SIDE or w < MIN_SIDE:
            raise ValueError(f"images must be at least {MIN_SIDE}x{MIN_SIDE}, got {h}x{w}")
        if self.training and images.shape[0] < 2:
            raise ValueError(
                "training needs at least 2 images per forward pass (BatchNorm on globally "
                "pooled features, as released); got 1"
            )
        x = (images - self.pixel_mean) / self.pixel_std
        d = self.size_divisibility
        ph, pw = -h % d, -w % d
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        feats = self.backbone(x)
        d1, memories, edge = self.pixel_decoder(feats, x)  # empties feats: freed at inference
        del x, feats
        final, aux_outputs = self.decoder(memories, d1, aux=aux)
        if not crop:
            return {**final, "aux_outputs": aux_outputs, "edge_logits": edge}
        h2, w2, h4, w4 = -(-h // 2), -(-w // 2), -(-h // 4), -(-w // 4)
        return {
            "pred_logits": final["pred_logits"],
            "pred_masks": final["pred_masks"][..., :h2, :w2],
            "aux_outputs": [
                {"pred_logits": a["pred_logits"], "pred_masks": a["pred_masks"][..., :h4, :w4]}
                for a in aux_outputs
            ],
            "edge_logits": edge[..., :h2, :w2],
        }

    def parameter_kinds(self) -> dict[str, tuple[bool, bool]]:
        """``name -> (is_backbone, no_weight_decay)`` for every trainable parameter.

        No decay: all normalisation weights/biases (BatchNorm, LayerNorm) and the query,
        query-position and level embeddings (as Mask2Former)."""
        no_decay_modules = (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.Embedding)
        kinds: dict[str, tuple[bool, bool]] = {}
        for mname, module in self.named_modules():
            for pname, p in module.named_parameters(recurse=False):
                if not p.requires_grad:
                    continue
                name = f"{mname}.{pname}" if mname else pname
                kinds[name] = (name.startswith("backbone."), isinstance(module, no_decay_modules))
        return kinds

    def param_groups(
        self, lr: float, weight_decay: float, backbone_lr_mult: float = 0.1
    ) -> list[dict]:
        """Optimizer groups (for ``torch.optim.AdamW(model.param_groups(...))``): backbone
        at ``lr * backbone_lr_mult``, no weight decay on norms and embeddings. Each group has
        a ``"name"`` (``backbone``/``backbone_no_decay``/``decoder``/``decoder_no_decay``)."""
        params = dict(self.named_parameters())
        groups: dict[tuple[bool, bool], list[torch.Tensor]] = {}
        for name, key in self.parameter_kinds().items():
            groups.setdefault(key, []).append(params[name])
        out = []
        for (is_bb, no_decay), ps in sorted(groups.items()):
            out.append(
                {
                    "name": ("backbone" if is_bb else "decoder")
                    + ("_no_decay" if no_decay else ""),
                    "params": ps,
                    "lr": lr * (backbone_lr_mult if is_bb else 1.0),
                    "weight_decay": 0.0 if no_decay else weight_decay,
                }
            )
        return out


def semantic_inference(pred_logits: torch.Tensor, pred_masks: torch.Tensor) -> torch.Tensor:
    """Per-class scores: softmax over classes (no-object dropped) x sigmoid masks, summed over
    queries. ``(B, Q, K+1)``, ``(B, Q, h, w)`` logits -> ``(B, K, h, w)`` float in [0, Q]."""
    cls = pred_logits.float().softmax(-1)[..., :-1]
    return torch.einsum("bqk,bqhw->bkhw", cls, pred_masks.float().sigmoid())
