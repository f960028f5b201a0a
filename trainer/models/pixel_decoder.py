"""MaSSFormer's high-resolution pixel decoder, block for block as released
(xiechenxi99/MaSS13K ``mmseg/models/decode_heads/mass_decoder.py``, ``HR_Pixel_Decoder``).

Shapes below are for an input padded to ``(Hp, Wp)`` (multiples of the model's size
divisibility); ``dim`` is the internal width (128 in the release). The release's class names
are given in each docstring; docs/model.md maps every parameter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.layers import (
    ConvBNReLU,
    DeformBlock,
    SqueezeExcite,
    attention_weights_path,
    in_row_bands,
    release_kernels_active,
    resize_bilinear,
    sine_position_2d,
)


class FFN(nn.Module):
    """Token MLP with identity: ``x + Linear(ReLU(Linear(x)))`` on ``(..., dim)`` (mmcv ``FFN``
    with its defaults: ReLU, two layers). ``layers`` = [Linear, ReLU, Linear]."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def to_windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B * H/w * W/w, w*w, C)``: windows in row-major order per image,
    tokens row-major inside a window."""
    b, c, h, wd = x.shape
    x = x.view(b, c, h // w, w, wd // w, w).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, w * w, c)


def from_windows(x: torch.Tensor, w: int, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`to_windows` back to ``shape`` = ``(B, C, H, W)``. (The release's
    ``window_reverse`` permutes ``(B, nH, nW, r, c, C)`` to ``(B, C, nH, r, nW, c)``: the exact
    inverse of its partition, so there is no axis-order quirk to keep; tested.)"""
    b, c, h, wd = shape
    x = x.view(b, h // w, wd // w, w, w, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, h, wd)


class WindowCrossSelfAttention(nn.Module):
    """CST's windowed transformer (release: ``CSAttn``): in every ``window x window`` window,
    cross attention (queries from ``x``, keys/values from ``kv``), FFN, self attention, FFN.
    Residuals, no LayerNorm; the same sine position code (per window) is added to queries and
    keys, never to values (mmcv ``MultiheadAttention`` semantics).

    ``x`` and ``kv`` are ``(B, dim, H, W)`` with H, W multiples of ``window``.
    """

    def __init__(self, dim: int, heads: int, window: int, ffn_dim: int) -> None:
        super().__init__()
        self.window = window
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn1 = FFN(dim, ffn_dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn2 = FFN(dim, ffn_dim)

    def forward(self, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        w = self.window
        shape = x.shape
        q = to_windows(x, w)
        k = to_windows(kv, w)
        pos = sine_position_2d(w, w, shape[1], x.device, q.dtype).flatten(1).t()[None]
        q = q + self.cross_attn(q + pos, k + pos, k, need_weights=attention_weights_path())[0]
        q = self.ffn1(q)
        qp = q + pos
        q = q + self.self_attn(qp, qp, q, need_weights=attention_weights_path())[0]
        q = self.ffn2(q)
        return from_windows(q, w, shape)


class CST(nn.Module):
    """Cross-semantic transition (release: ``CST``).

    ``d4, up16 = DeformBlock(S4 + context)`` (up16 at 1/16 by the 4x4 deconv);
    ``d3, up8 = DeformBlock(WindowAttention(up16, S3))``. Returns ``(D4 (1/32), D3 (1/16),
    up8 (1/8))``, all ``dim`` channels.
    """

    def __init__(self, dim: int, heads: int, window: int, ffn_dim: int) -> None:
        super().__init__()
        self.dcn_in = DeformBlock(dim, dim, 3, upsample=True)
        self.dcn_out = DeformBlock(dim, dim, 3, upsample=True)
        self.attn = WindowCrossSelfAttention(dim, heads, window, ffn_dim)

    def forward(
        self, context: torch.Tensor, s4: torch.Tensor, s3: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d4, up16 = self.dcn_in(s4 + context)
        d3, up8 = self.dcn_out(self.attn(up16, s3))
        return d4, d3, up8


class RFB(nn.Module):
    """Receptive-field broadening (release: ``RFB``): four deformable branches (k = 1, 3, 5, 7;
    ``dim/4`` channels each) -> concat -> 1x1 conv (bias) -> BN -> ReLU = D2 (1/8); then x2
    bilinear -> 3x3 conv (bias) -> BN -> ReLU = the 1/4 feature. No residual, no S1."""

    def __init__(self, dim: int, kernels: tuple[int, ...] = (1, 3, 5, 7)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(DeformBlock(dim, dim // len(kernels), k) for k in kernels)
        self.fuse = nn.Conv2d(dim // len(kernels) * len(kernels), dim, 1)
        self.fuse_bn = nn.BatchNorm2d(dim)
        self.up_conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.up_bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.cat([b(x) for b in self.branches], 1)
        y = F.relu(self.fuse_bn(self.fuse(y)))
        h, w = y.shape[-2:]
        up = resize_bilinear(y, (2 * h, 2 * w))
        return y, F.relu(self.up_bn(self.up_conv(up)))


class LSE(nn.Module):
    """Low-level structure extraction at H/2 (release: ``LSE``).

    S1 and the normalised image are resized (bilinear) to ``(Hp//2, Wp//2)``; S1 is split into
    two halves, each concatenated after the image: half 1 -> 1x1 ConvBNReLU, half 2 -> 3x3
    DeformBlock. Each gets a spatial gate ``a = conv7x7(sigmoid(cat[mean_c, max_c]))`` (the
    sigmoid *before* the conv and none after: released) applied as ``x * a + x``; concat ->
    1x1 ConvBNReLU = S_detail ``(B, dim, Hp/2, Wp/2)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        self.conv_branch = ConvBNReLU(half + 3, half, 1)
        self.dcn_branch = DeformBlock(half + 3, half, 3)
        self.gate_conv = nn.Conv2d(2, 1, 7, padding=3)
        self.gate_dcn = nn.Conv2d(2, 1, 7, padding=3)
        self.fuse = ConvBNReLU(2 * half, 2 * half, 1)

    @staticmethod
    def _gated(x: torch.Tensor, gate: nn.Conv2d) -> torch.Tensor:
        stats = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * gate(stats.sigmoid()) + x

    def forward(self, image: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        size = (image.shape[2] // 2, image.shape[3] // 2)
        image = resize_bilinear(image, size)

        def half(i: int) -> torch.Tensor:
            # the image, then S1's i-th half at H/2: each half is resized on its own (bilinear
            # is per channel: the same values), so that its H/2 copy is freed after its branch
            c = s1.shape[1] // 2
            x = resize_bilinear(s1[:, i * c : (i + 1) * c], size)
            return torch.cat([image, x], 1)

        a = self._gated(self.conv_branch(half(0)), self.gate_conv)
        b = self._gated(self.dcn_branch(half(1)), self.gate_dcn)
        ab = torch.cat([a, b], 1)
        del a, b
        return rows_apply(self.fuse, ab)


class EdgeRefinement(nn.Module):
    """Edge-guided fusion's refinement (release: ``ERM``):
    ``BN(expand(DeformBlock(reduce(sigmoid(detail) * up)))) + up``; reduce/expand are 1x1
    convs with bias, ``dim -> dim/2 -> dim``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(dim, dim // 2, 1)
        self.dcn = DeformBlock(dim // 2, dim // 2, 3)
        self.expand = nn.Conv2d(dim // 2, dim, 1)
        self.bn = nn.BatchNorm2d(dim)

    def gate(self, detail: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """``reduce(sigmoid(detail) * up)``: the deformable conv's input, (B, dim/2, H, W)."""
        return self.reduce(detail.sigmoid() * up)

    def forward(self, gated: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """``gated`` = :meth:`gate` ``(detail, up)``, split off so that the caller can free
        ``detail`` (a full-width H/2 map) before the deformable conv runs."""
        return self.bn(self.expand(self.dcn(gated))) + up


class PixelDecoder(nn.Module):
    """Backbone features + image -> mask features D1, memories [D4, D3, D2], edge logits
    (release: ``HR_Pixel_Decoder``).

    Args:
        in_channels: channels of C2..C5 (release: 256, 512, 1024, 2048).
        dim: internal width (release 128).
        mask_dim: channels of D1, the mask features (release 256 = 2 x dim).
        memory_dim: channels of the three memories = the transformer-decoder width (release
            256; its decoder input projections are identities).
        window: CST window side in tokens at 1/16 (release 16: 256 px at the input).
        heads: attention heads in CST (release 8).
        cst_ffn_dim: hidden width of CST's two FFNs (release 1024, mmcv's default).
        edge_hidden_dim: hidden width of the edge head (release 16).
        se_ratio: squeeze-excitation reduction ratio (release 2).
    """

    def __init__(
        self,
        in_channels: tuple[int, int, int, int],
        dim: int,
        mask_dim: int,
        memory_dim: int,
        window: int,
        heads: int,
        cst_ffn_dim: int,
        edge_hidden_dim: int,
        se_ratio: int,
    ) -> None:
        super().__init__()
        if dim % 8:
            raise ValueError(f"pixel decoder width must be a multiple of 8, got {dim}")
        self.proj = nn.ModuleList(ConvBNReLU(c, dim, 1) for c in in_channels)
        self.se = nn.ModuleList(SqueezeExcite(dim, se_ratio) for _ in in_channels)
        self.context = ConvBNReLU(in_channels[3], dim, 1)
        self.cst = CST(dim, heads, window, cst_ffn_dim)
        self.rfb = RFB(dim)
        self.lse = LSE(dim)
        self.edge_head = nn.Sequential(
            ConvBNReLU(dim, edge_hidden_dim, 1), nn.Conv2d(edge_hidden_dim, 1, 1)
        )
        self.edge_refine = EdgeRefinement(dim)
        self.mask_proj = ConvBNReLU(dim, mask_dim, 1)
        self.memory_proj = nn.ModuleList(ConvBNReLU(dim, memory_dim, 1) for _ in range(3))

    def forward(
        self, feats: list[torch.Tensor], image: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Args: ``feats`` = [C2..C5] (Hp/4..Hp/32), ``image`` the normalised ``(B, 3, Hp, Wp)``.
        ``feats`` is emptied once projected, so that at inference the backbone's maps are freed
        before the half-resolution blocks run (MaSSFormer passes a list of its own).

        Returns ``(D1 (B, mask_dim, Hp/2, Wp/2), [D4 (1/32), D3 (1/16), D2 (1/8)] each
        (B, memory_dim, ., .), edge logits (B, 1, Hp/2, Wp/2))``.
        """
        # The release applies its SE blocks in the order 1/32, 1/16, 1/8, 1/4 (SEB[0..3]);
        # each is independent, so the order only matters for the checkpoint mapping.
        s1, s2, s3, s4 = (
            se(proj(f)) for proj, se, f in zip(self.proj, self.se, feats, strict=True)
        )
        context = self.context(feats[3].mean((2, 3), keepdim=True))
        feats.clear()  # C2 alone is 384 MB at a 4096x3072 input in bf16
        d4, d3, up8 = self.cst(context, s4, s3)
        d2, quarter = self.rfb(up8 + s2)
        detail = self.lse(image, s1)
        size = (image.shape[2] // 2, image.shape[3] // 2)
        up = resize_bilinear(quarter, size)
        edge = self.edge_head(up + detail)
        gated = self.edge_refine.gate(detail, up)
        del detail  # H/2 maps are freed as soon as they are used: at inference the peak is here
        refined = self.edge_refine(gated, up)
        del gated, up
        d1 = rows_apply(self.mask_proj, refined)
        memories = [proj(m) for proj, m in zip(self.memory_proj, (d4, d3, d2), strict=True)]
        return d1, memories, edge


# Largest map (elements) a half-resolution 1x1 projection (LSE's fuse, the mask projection)
# writes in one piece at inference; above it, the projection runs in bands of rows into its
# output, so that its convolution and BatchNorm outputs never exist side by side at full size
# (2 x 1.6 GB for the mask projection at a 4096x3072 input in bf16).
ROWS_BUDGET = 2**27


def rows_apply(layer: ConvBNReLU, x: torch.Tensor, budget: int | None = None) -> torch.Tensor:
    """``layer(x)`` for a 1x1 :class:`ConvBNReLU`; at inference (outside
    :func:`~trainer.models.layers.release_kernels`), when the output would exceed ``budget``
    elements, computed in bands of rows written into one output tensor. Each pixel's value is
    the same computation as the whole map's (tested)."""
    budget = ROWS_BUDGET if budget is None else budget
    b, _, h, w = x.shape
    channels = layer.conv.out_channels
    # the release's kernels (--mode full) run whole maps, as the release does: bit for bit
    if torch.is_grad_enabled() or release_kernels_active() or b * channels * h * w <= budget:
        return layer(x)
    rows = max(1, budget // (b * channels * w))
    return in_row_bands(lambda r0, r1: layer(x[:, :, r0:r1]), h, rows)


__all__ = ["PixelDecoder", "rows_apply"]
