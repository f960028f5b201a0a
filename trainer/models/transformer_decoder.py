"""Mask2Former-style masked-attention transformer decoder (6 layers, 3 memory levels)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.layers import sine_position_2d


class _CrossAttention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        attn_mask: torch.Tensor,
        pos: torch.Tensor,
        query_pos: torch.Tensor,
    ) -> torch.Tensor:
        out = self.attn(
            tgt + query_pos, memory + pos, memory, attn_mask=attn_mask, need_weights=False
        )[0]
        return self.norm(tgt + out)


class _SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        q = tgt + query_pos
        return self.norm(tgt + self.attn(q, q, tgt, need_weights=False)[0])


class _FFN(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.fc2(F.relu(self.fc1(x))))


class MaskedAttentionDecoder(nn.Module):
    """Queries attend to memory level ``i mod 3`` (1/32, 1/16, 1/8) under the previous
    prediction's mask (sigmoid < 0.5 masked; a fully masked row is unmasked); then self
    attention and FFN (post-norm, as Mask2Former).

    Args:
        num_classes: K (the class head has K + 1 outputs, last = no-object).
        in_dim: channels of the pixel-decoder memories (projected 1x1 to ``hidden_dim``).
        hidden_dim: query width (256 published). Must be divisible by 4 (sine code).
        mask_dim: channels of the mask features D1.
        num_queries, heads, ffn_dim, num_layers: as named (100, 8, 2048, 6 published).
    """

    def __init__(
        self,
        num_classes: int,
        in_dim: int,
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
        self.input_proj = nn.ModuleList(nn.Conv2d(in_dim, hidden_dim, 1) for _ in range(num_levels))
        self.level_embed = nn.Embedding(num_levels, hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.cross = nn.ModuleList(_CrossAttention(hidden_dim, heads) for _ in range(num_layers))
        self.self_attn = nn.ModuleList(_SelfAttention(hidden_dim, heads) for _ in range(num_layers))
        self.ffn = nn.ModuleList(_FFN(hidden_dim, ffn_dim) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, mask_dim),
        )

    def forward(
        self, memories: list[torch.Tensor], mask_features: torch.Tensor, aux: bool = True
    ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        """Args: ``memories`` [(B, in_dim, h_i, w_i)] coarse to fine; ``mask_features`` D1
        ``(B, mask_dim, H2, W2)``. Returns the final prediction ``{"pred_logits" (B, Q, K+1),
        "pred_masks" (B, Q, H2, W2)}`` and, with ``aux``, the 6 earlier predictions at
        ``(H2/2, W2/2)``. Without ``aux`` the earlier masks are computed only at the memory
        sizes the attention masks need (same values, bilinear resizing being linear)."""
        b = mask_features.shape[0]
        src, pos, sizes = [], [], []
        for i in range(self.num_levels):
            m = memories[i]
            h, w = m.shape[-2:]
            sizes.append((h, w))
            pe = sine_position_2d(h, w, self.level_embed.embedding_dim, m.device, m.dtype)
            pos.append(pe.flatten(1).t()[None])
            src.append(
                self.input_proj[i](m).flatten(2).transpose(1, 2) + self.level_embed.weight[i]
            )
        query_pos = self.query_embed.weight[None].expand(b, -1, -1)
        out = self.query_feat.weight[None].expand(b, -1, -1)
        low = F.avg_pool2d(mask_features, 2)
        # without aux, the masks are needed only at the memory sizes: resize D1/4 there once
        small_feats = (
            None
            if aux
            else {
                size: F.interpolate(low, size=size, mode="bilinear", align_corners=False)
                for size in set(sizes)
            }
        )
        aux_outputs: list[dict[str, torch.Tensor]] = []
        attn_mask = self._predict(out, low, small_feats, sizes[0], aux_outputs)
        n = len(self.cross)
        for i in range(n):
            lvl = i % self.num_levels
            out = self.cross[i](out, src[lvl], attn_mask, pos[lvl], query_pos)
            out = self.self_attn[i](out, query_pos)
            out = self.ffn[i](out)
            if i < n - 1:
                nxt = sizes[(i + 1) % self.num_levels]
                attn_mask = self._predict(out, low, small_feats, nxt, aux_outputs)
        normed = self.decoder_norm(out)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(normed), mask_features)
        return {"pred_logits": self.class_embed(normed), "pred_masks": masks}, aux_outputs

    def _predict(
        self,
        out: torch.Tensor,
        low: torch.Tensor,
        small_feats: dict[tuple[int, int], torch.Tensor] | None,
        size: tuple[int, int],
        aux_outputs: list[dict[str, torch.Tensor]],
    ) -> torch.Tensor:
        """Record an intermediate prediction from D1/4 ``low`` (when ``small_feats`` is None)
        and return the next attention mask ``(B * heads, Q, h * w)`` bool (True = masked)."""
        normed = self.decoder_norm(out)
        emb = self.mask_embed(normed)
        if small_feats is None:
            masks = torch.einsum("bqc,bchw->bqhw", emb, low)
            aux_outputs.append({"pred_logits": self.class_embed(normed), "pred_masks": masks})
            small = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
        else:
            small = torch.einsum("bqc,bchw->bqhw", emb, small_feats[size])
        attn = (small.sigmoid().flatten(2) < 0.5).detach()
        attn[attn.all(-1)] = False  # a query masked everywhere attends everywhere
        return attn.repeat_interleave(self.heads, 0)
