"""Small building blocks of the MaSSFormer pixel decoder (plain PyTorch + torchvision ops).

Every block takes and returns ``(B, C, H, W)`` float tensors unless stated otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d


class ConvBNReLU(nn.Sequential):
    """``k x k`` conv (no bias) -> BatchNorm -> ReLU, spatial size kept (stride 1)."""

    def __init__(self, in_ch: int, out_ch: int, k: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, k, padding=k // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


# Largest sampled-column tensor (elements, 512 MB in fp32) one deformable conv may build at
# inference; bigger inputs run in bands of output rows (torchvision's own column buffer would
# be 128 ch x 9 taps x 2048 x 1536 = 14 GB for the H/2 layers of a 4096x3072 input).
COLUMN_BUDGET = 2**27


class ModulatedDeformConv(nn.Module):
    """Modulated deformable convolution (DCNv2), stride 1, "same" padding.

    Like mmcv's ``ModulatedDeformConv2dPack``: a plain conv with the same kernel predicts
    ``2*k*k`` offsets and ``k*k`` modulation logits from the input; both start at zero (a regular
    conv with mask 0.5 at initialisation), then the taps are sampled bilinearly.

    Two implementations with the same values (tested): ``torchvision.ops.deform_conv2d`` (CUDA
    training, moderate sizes) and :func:`deform_conv2d_grid_sample` (CPU: its backward is ~10x
    and its forward ~1.5-2x faster there; and any device at inference when the sampled columns
    exceed ``COLUMN_BUDGET``: it then runs in bands of output rows, bounding memory).
    """

    def __init__(self, in_ch: int, out_ch: int, k: int = 3, bias: bool = False) -> None:
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, k, k))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.offset = nn.Conv2d(in_ch, 3 * k * k, k, padding=k // 2)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        om = self.offset(x)
        kk = self.k * self.k
        offset, mask = om[:, : 2 * kk], om[:, 2 * kk :].sigmoid()
        # deform_conv2d has no autocast rule: run it in the weight's dtype.
        dtype = self.weight.dtype
        x, offset, mask = x.to(dtype), offset.to(dtype), mask.to(dtype)
        b, c, h, w = x.shape
        pad = self.k // 2
        training = torch.is_grad_enabled()
        rows = max(1, COLUMN_BUDGET // (b * c * kk * w))
        if training or rows >= h:
            if x.device.type == "cpu":
                return deform_conv2d_grid_sample(x, offset, self.weight, self.bias, pad, mask)
            return deform_conv2d(x, offset, self.weight, self.bias, padding=pad, mask=mask)
        bands = [
            deform_conv2d_grid_sample(
                x,
                offset[:, :, r : r + rows],
                self.weight,
                self.bias,
                pad,
                mask[:, :, r : r + rows],
                r,
            )
            for r in range(0, h, rows)
        ]
        return torch.cat(bands, 2)


def deform_conv2d_grid_sample(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: int,
    mask: torch.Tensor,
    row0: int = 0,
) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d`` (stride 1, dilation 1, one offset group) in plain
    PyTorch: bilinear sampling with ``grid_sample`` (zeros outside, like torchvision) of the
    ``k*k`` displaced taps, modulated, then one contraction with the weight.

    Same values as torchvision up to float rounding (tested); memory ``k*k`` times the output.
    ``x`` (B, C, H, W); ``offset`` (B, 2*k*k, h, W) as (dy, dx) pairs per tap in row-major
    tap order; ``mask`` (B, k*k, h, W). The output ``(B, O, h, W)`` holds output rows
    ``row0 .. row0 + h`` (``h = H`` and ``row0 = 0`` for the whole map).
    """
    b, c, h_in, w = x.shape
    h = offset.shape[2]
    o, _, kh, kw = weight.shape
    kk = kh * kw
    dev, dt = x.device, x.dtype
    ky = torch.arange(kh, device=dev, dtype=dt).repeat_interleave(kw)
    kx = torch.arange(kw, device=dev, dtype=dt).repeat(kh)
    ys = torch.arange(row0, row0 + h, device=dev, dtype=dt) - padding
    xs = torch.arange(w, device=dev, dtype=dt) - padding
    py = ys.view(1, 1, h, 1) + ky.view(1, kk, 1, 1) + offset[:, 0::2]  # (B, kk, h, W)
    px = xs.view(1, 1, 1, w) + kx.view(1, kk, 1, 1) + offset[:, 1::2]
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h_in - 1], -1)  # align_corners=False
    cols = F.grid_sample(
        x, grid.view(b, kk * h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=False
    ).view(b, c, kk, h * w)
    cols = (cols * mask.reshape(b, 1, kk, h * w)).view(b, c * kk, h * w)
    out = torch.matmul(weight.reshape(o, c * kk), cols).view(b, o, h, w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class DCNBNReLU(nn.Sequential):
    """Modulated deformable ``k x k`` conv -> BatchNorm -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, k: int = 3) -> None:
        super().__init__(
            ModulatedDeformConv(in_ch, out_ch, k), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)
        )


class SqueezeExcite(nn.Module):
    """Channel attention: global average pool -> FC (C -> C/r) -> ReLU -> FC -> sigmoid gate."""

    def __init__(self, ch: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(ch // reduction, 4)
        self.fc1 = nn.Conv2d(ch, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean((2, 3), keepdim=True)
        return x * self.fc2(F.relu(self.fc1(w))).sigmoid()


class SEProjection(nn.Sequential):
    """Backbone level ``C_i`` -> ``S_i``: 1x1 conv-BN-ReLU to ``out_ch``, then squeeze-excitation."""

    def __init__(self, in_ch: int, out_ch: int, reduction: int = 4) -> None:
        super().__init__(ConvBNReLU(in_ch, out_ch, 1), SqueezeExcite(out_ch, reduction))


class SpatialAttention(nn.Module):
    """CBAM spatial gate: channel mean and max -> 7x7 conv -> sigmoid -> ``x * gate``."""

    def __init__(self, k: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, k, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * self.conv(pooled).sigmoid()


def sine_position_2d(
    h: int, w: int, dim: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """DETR sine positional encoding (normalised, temperature 10000) as ``(dim, h, w)``.

    ``dim`` must be divisible by 4 (half for y, half for x, each as sin/cos pairs).
    """
    npf = dim // 2
    y = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h * 2 * math.pi
    x = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w * 2 * math.pi
    t = 10000 ** (2 * (torch.arange(npf, device=device) // 2) / npf)
    py = y[:, None] / t  # (h, npf)
    px = x[:, None] / t  # (w, npf)
    py = torch.stack([py[:, 0::2].sin(), py[:, 1::2].cos()], 2).flatten(1)
    px = torch.stack([px[:, 0::2].sin(), px[:, 1::2].cos()], 2).flatten(1)
    pos = torch.cat(
        [py[:, None, :].expand(h, w, npf), px[None, :, :].expand(h, w, npf)], 2
    )  # (h, w, dim)
    return pos.permute(2, 0, 1).to(dtype)
