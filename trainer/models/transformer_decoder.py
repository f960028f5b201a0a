"""Masked-attention transformer decoder as released: mmdet's Mask2Former decoder layers
(``Mask2FormerTransformerDecoderLayer``: cross attention -> LN -> self attention -> LN ->
FFN -> LN, GELU FFN in the MaSSFormer config) driven by the release's
``MaSSFormerHead.forward`` (intermediate masks from D1 resized to H/4, the final one from D1
at H/2)."""

from __future__ import annotations

import torch
from torch import nn

from trainer.models.layers import attention_weights_path, resize_bilinear, sine_position_2d


class DecoderLayer(nn.Module):
    """One post-norm Mask2Former layer. Positions are added to queries and keys, never to
    values; ``attn_mask`` (B * heads, Q, HW) additive, ``-inf`` = may not attend."""

    def __init__(self, d: int, heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, d))
        self.norm3 = nn.LayerNorm(d)

    def forward(
        self,
        q: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        query_pos: torch.Tensor,
        attn_mask: torch.Tensor,
    ) -> torch.Tensor:
        out = self.cross_attn(
            q + query_pos,
            memory + memory_pos,
            memory,
            attn_mask=attn_mask,
            need_weights=attention_weights_path(),
        )[0]
        q = self.norm1(q + out)
        qp = q + query_pos
        q = self.norm2(q + self.self_attn(qp, qp, q, need_weights=attention_weights_path())[0])
        return self.norm3(q + self.ffn(q))


class MaskedAttentionDecoder(nn.Module):
    """Queries attend to memory level ``i mod 3`` (1/32, 1/16, 1/8) under the previous
    prediction's mask (bilinear to the memory size, sigmoid < 0.5 masked; a fully masked row is
    unmasked). Every prediction: ``post_norm`` -> class head and mask embedding -> einsum with
    the mask features.

    Args:
        num_classes: K (the class head has K + 1 outputs, last = no-object).
        hidden_dim: query and memory width (256 released). Must be divisible by 4 (sine code).
        mask_dim: channels of the mask features D1 (256 released).
        num_queries, heads, ffn_dim, num_layers: as named (100, 8, 2048, 6 released).
    """

    def __init__(
        self,
        num_classes: int,
        hidden_dim: int,
        mask_dim: int,
        num_queries: int,
        heads: int,
        ffn_dim: int,
        num_layers: int,
        num_levels: int = 3,
    ) -> None:
        super().__init__()
        self.num_levels, self.heads = num_levels, heads
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(num_levels, hidden_dim)
        self.layers = nn.ModuleList(
            DecoderLayer(hidden_dim, heads, ffn_dim) for _ in range(num_layers)
        )
        self.post_norm = nn.LayerNorm(hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, mask_dim),
        )
        for layer in self.layers:  # mmdet's Mask2FormerHead.init_weights
            for p in layer.parameters():
                if p.dim() > 1:
                    nn.init.xavier_normal_(p)

    def forward(
        self, memories: list[torch.Tensor], mask_features: torch.Tensor, aux: bool = True
    ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        """Args: ``memories`` [(B, hidden_dim, h_i, w_i)] coarse to fine; ``mask_features`` D1
        ``(B, mask_dim, H2, W2)``. Returns the final prediction ``{"pred_logits" (B, Q, K+1),
        "pred_masks" (B, Q, H2, W2)}`` and, with ``aux``, the ``num_layers`` earlier
        predictions with masks at ``(H2 // 2, W2 // 2)`` (computed either way: they make the
        attention masks; ``aux=False`` only does not keep them)."""
        b = mask_features.shape[0]
        src, pos, sizes = [], [], []
        for i in range(self.num_levels):
            m = memories[i]
            h, w = m.shape[-2:]
            sizes.append((h, w))
            pe = sine_position_2d(h, w, m.shape[1], m.device, m.dtype)
            pos.append(pe.flatten(1).t()[None])
            src.append(m.flatten(2).transpose(1, 2) + self.level_embed.weight[i])
        query_pos = self.query_embed.weight[None].expand(b, -1, -1)
        q = self.query_feat.weight[None].expand(b, -1, -1)
        h2, w2 = mask_features.shape[-2:]
        # the release resizes D1 bilinearly (not by pooling) for the intermediate predictions
        low = resize_bilinear(mask_features, (h2 // 2, w2 // 2))
        aux_outputs: list[dict[str, torch.Tensor]] = []
        pred = self._predict(q, low)
        attn_mask = self._attn_mask(pred["pred_masks"], sizes[0])
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            if aux:
                aux_outputs.append(pred)
            lvl = i % self.num_levels
            q = layer(q, src[lvl], pos[lvl], query_pos, attn_mask)
            pred = self._predict(q, mask_features if i == n - 1 else low)
            if i < n - 1:
                attn_mask = self._attn_mask(pred["pred_masks"], sizes[(i + 1) % self.num_levels])
        return pred, aux_outputs

    def _predict(self, q: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        normed = self.post_norm(q)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(normed), features)
        return {"pred_logits": self.class_embed(normed), "pred_masks": masks}

    def _attn_mask(self, masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(B * heads, Q, h * w)`` additive mask, ``-inf`` = masked, in the masks' dtype (the
        attention's: autocast's, or float32). ``nn.MultiheadAttention`` turns a bool mask into
        exactly this, but in float32 first and then again in autocast's dtype for its attention
        kernel: 0.9 GB more at the 1/8 level of a 4096x3072 input."""
        small = resize_bilinear(masks, size)
        # the threshold in float32, as released: a bf16 sigmoid rounds to exactly 0.5 for
        # logits within about 0.004 of 0, which would let those queries attend
        attn = (small.float().sigmoid().flatten(2) < 0.5).detach()
        del small
        attn[attn.all(-1)] = False  # a query masked everywhere attends everywhere
        additive = torch.zeros_like(attn, dtype=masks.dtype).masked_fill_(attn, float("-inf"))
        del attn
        return additive.repeat_interleave(self.heads, 0)
