"""MaSSFormer's high-resolution pixel decoder: SE projections, CST, RFB, LSE and EGF.

Shapes below are for an input padded to ``(Hp, Wp)`` (multiples of the model's size
divisibility); ``dim`` is the internal width (128 in the published model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.layers import (
    ConvBNReLU,
    DCNBNReLU,
    ModulatedDeformConv,
    SEProjection,
    SpatialAttention,
    sine_position_2d,
)


class FFN(nn.Sequential):
    """Token MLP ``dim -> hidden -> dim`` with ReLU (applied to ``(..., dim)``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))


def _to_windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B * H/w * W/w, w*w, C)`` non-overlapping windows."""
    b, c, h, wd = x.shape
    x = x.view(b, c, h // w, w, wd // w, w).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, w * w, c)


def _from_windows(x: torch.Tensor, w: int, shape: torch.Size) -> torch.Tensor:
    b, c, h, wd = shape
    x = x.view(b, h // w, wd // w, w, w, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, h, wd)


class WindowCrossSelfBlock(nn.Module):
    """CST's windowed transformer: cross attention (keys/values from ``kv``), FFN, self
    attention, FFN; post-norm residuals; a sine position code inside each window.

    ``x`` and ``kv`` are ``(B, dim, H, W)`` with H, W multiples of ``window``.
    """

    def __init__(self, dim: int, heads: int, window: int, ffn_dim: int) -> None:
        super().__init__()
        self.window = window
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn1 = FFN(dim, ffn_dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn2 = FFN(dim, ffn_dim)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4))

    def forward(self, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        w = self.window
        shape = x.shape
        q = _to_windows(x, w)
        k = _to_windows(kv, w)
        pos = sine_position_2d(w, w, shape[1], x.device, q.dtype).flatten(1).t()[None]
        n1, n2, n3, n4 = self.norms
        q = n1(q + self.cross(q + pos, k + pos, k, need_weights=False)[0])
        q = n2(q + self.ffn1(q))
        qp = q + pos
        q = n3(q + self.self_attn(qp, qp, q, need_weights=False)[0])
        q = n4(q + self.ffn2(q))
        return _from_windows(q, w, shape)


class PixelDecoder(nn.Module):
    """Backbone features + image -> mask features D1, memories [D4, D3, D2], edge logits.

    Args:
        in_channels: channels of C2..C5.
        dim: internal width (128 published).
        mask_dim: channels of D1, the mask features (256 published).
        window: CST window side in tokens at 1/16 (16 published: 256 px at the input).
        heads: attention heads in CST.
        cst_ffn_dim: hidden width of CST's two FFNs.
        rfb_branch_dim: channels of each of RFB's four deformable branches (32 published).
        edge_hidden_dim: hidden width of the EGF edge head.
        se_reduction: squeeze-excitation reduction ratio.

    Choices the paper leaves open, taken here: the C5 context is a 1x1 conv + ReLU of the
    globally pooled C5 added to S4; every deformable conv is followed by BN + ReLU; CST's
    attention is post-norm with a sine position code shared by all windows; RFB adds its input
    back (residual) after the 1x1 fusion; the 1/4 feature is a 3x3 conv-BN-ReLU of
    up(D2) + S1; the image enters LSE as the 2x2 average of the normalised input; D1 =
    DCN-BN-ReLU(sigmoid(S_detail) * U) + 1x1(U), U the 1/4 feature upsampled to H/2.
    """

    def __init__(
        self,
        in_channels: tuple[int, int, int, int],
        dim: int,
        mask_dim: int,
        window: int,
        heads: int,
        cst_ffn_dim: int,
        rfb_branch_dim: int,
        edge_hidden_dim: int,
        se_reduction: int,
    ) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"pixel decoder width must be even (LSE splits S1), got {dim}")
        self.proj = nn.ModuleList(SEProjection(c, dim, se_reduction) for c in in_channels)
        # CST: global C5 context, deformable D4, learned x2 upsampling, windowed attention, D3.
        self.context = nn.Sequential(nn.Conv2d(in_channels[3], dim, 1), nn.ReLU(inplace=True))
        self.cst_in = DCNBNReLU(dim, dim, 3)
        self.cst_up = nn.ConvTranspose2d(dim, dim, 2, stride=2)
        self.cst_attn = WindowCrossSelfBlock(dim, heads, window, cst_ffn_dim)
        self.cst_out = DCNBNReLU(dim, dim, 3)
        # RFB: four modulated deformable branches (k = 1, 3, 5, 7), concat, 1x1 -> D2.
        self.rfb = nn.ModuleList(DCNBNReLU(dim, rfb_branch_dim, k) for k in (1, 3, 5, 7))
        self.rfb_fuse = ConvBNReLU(4 * rfb_branch_dim, dim, 1)
        self.quarter = ConvBNReLU(dim, dim, 3)  # up(D2) + S1 -> the 1/4 feature
        # LSE at H/2: two halves of S1, each with the RGB image; 1x1 conv / deformable 3x3.
        half = dim // 2
        self.lse_conv = ConvBNReLU(half + 3, half, 1)
        self.lse_dcn = DCNBNReLU(half + 3, half, 3)
        self.lse_sa = nn.ModuleList([SpatialAttention(7), SpatialAttention(7)])
        # EGF: edge head on S_detail + up(1/4 feature); gated deformable refinement -> D1.
        self.edge_head = nn.Sequential(
            ConvBNReLU(dim, edge_hidden_dim, 3), nn.Conv2d(edge_hidden_dim, 1, 1)
        )
        self.egf_refine = DCNBNReLU(dim, mask_dim, 3)
        self.egf_residual = nn.Conv2d(dim, mask_dim, 1)

    def forward(
        self, feats: list[torch.Tensor], image: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Args: ``feats`` = [C2..C5] (H/4..H/32), ``image`` the normalised ``(B, 3, Hp, Wp)``.

        Returns ``(D1 (B, mask_dim, Hp/2, Wp/2), [D4 (1/32), D3 (1/16), D2 (1/8)] each
        (B, dim, ., .), edge logits (B, 1, Hp/2, Wp/2))``.
        """
        s1, s2, s3, s4 = (p(f) for p, f in zip(self.proj, feats, strict=True))
        ctx = self.context(feats[3].mean((2, 3), keepdim=True))
        d4 = self.cst_in(s4 + ctx)
        d3 = self.cst_out(self.cst_attn(self.cst_up(d4), s3))
        x = _up(d3, s2) + s2
        d2 = self.rfb_fuse(torch.cat([b(x) for b in self.rfb], 1)) + x
        quarter = self.quarter(_up(d2, s1) + s1)
        # LSE
        img2 = F.avg_pool2d(image, 2)
        s1_up = F.interpolate(s1, size=img2.shape[-2:], mode="bilinear", align_corners=False)
        a, b = s1_up.chunk(2, 1)
        detail = torch.cat(
            [
                self.lse_sa[0](self.lse_conv(torch.cat([a, img2], 1))),
                self.lse_sa[1](self.lse_dcn(torch.cat([b, img2], 1))),
            ],
            1,
        )
        # EGF
        up = _up(quarter, detail)
        edge = self.edge_head(detail + up)
        d1 = self.egf_refine(detail.sigmoid() * up) + self.egf_residual(up)
        return d1, [d4, d3, d2], edge


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


__all__ = ["PixelDecoder", "ModulatedDeformConv"]
