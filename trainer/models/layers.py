"""Small building blocks of the MaSSFormer pixel decoder (plain PyTorch + torchvision ops).

Every block takes and returns ``(B, C, H, W)`` float tensors unless stated otherwise.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d


class ConvBNReLU(nn.Module):
    """``k x k`` conv (no bias, "same" padding) -> BatchNorm -> ReLU (release: ``ConvBNReLU``).

    Attributes ``conv`` and ``bn`` (state-dict keys ``conv.weight``, ``bn.*``)."""

    def __init__(self, in_ch: int, out_ch: int, k: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        nn.init.kaiming_normal_(self.conv.weight, a=1)  # the release's initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place: one map fewer alive at inference (BatchNorm's backward needs its input,
        # not its output, so training is unchanged; as torchvision's ResNets do)
        return F.relu(self.bn(self.conv(x)), inplace=True)


# Largest sampled-column tensor (elements, 256 MB in fp32) one deformable conv may build at
# inference; bigger inputs run in bands of output rows (torchvision's own column buffer would
# be 64 ch x 9 taps x 2048 x 1536 = 7 GB for the H/2 layers of a 4096x3072 input). Halved
# from 2**27 in the twenty-sixth round: the bands' columns were a sixth of the efficient
# mode's modelled CUDA peak (bench/cuda_memory_model.py); about 30 bands per layer at 4K.
COLUMN_BUDGET = 2**26


_RELEASE_KERNELS = contextvars.ContextVar("release_kernels", default=False)


@contextlib.contextmanager
def release_kernels() -> Iterator[None]:
    """Run the kernels the release runs, so float32 results match it bit for bit.

    Inside this context every deformable conv goes through ``torchvision.ops.deform_conv2d``
    over the whole map (the release's stand-in for mmcv's DCN; our CPU default is the faster
    grid-sample form, in row bands above ``COLUMN_BUDGET``) and every attention asks
    ``nn.MultiheadAttention`` for its weights, as mmcv's wrapper does (``need_weights=True``
    takes the unfused path). The values are the same up to summation order, but with random or
    badly calibrated weights the decoder's sigmoid < 0.5 attention masks turn last-bit
    differences into other labels (docs/model.md: 90-99.9% label agreement without this
    context, 100% with it). Costs time and memory; ``engine predict --mode full`` uses it.
    """
    token = _RELEASE_KERNELS.set(True)
    try:
        yield
    finally:
        _RELEASE_KERNELS.reset(token)


def release_kernels_active() -> bool:
    """True inside :func:`release_kernels`: whole maps, the release's kernels, bit for bit."""
    return _RELEASE_KERNELS.get()


# ``need_weights`` for ``nn.MultiheadAttention`` calls: the release's (unfused) attention path
attention_weights_path = release_kernels_active


def resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)``, at inference under
    autocast in ``x``'s own dtype.

    CUDA autocast runs the upsampling ops in float32: a bf16 map is copied to float32 and
    resized into a float32 output, and the sums made from that output stay float32 until the
    next convolution casts them back. At a 4096x3072 input that was 3.8 of the efficient
    mode's 6.0 GB peak on the H200 (docs/model.md, "The allocator's trace"). The CUDA kernel
    accumulates in float32 for bf16 too and rounds its result once, so a bf16 output holds the
    float32 result as the next bf16 op would round it. Training keeps autocast's rule: its
    numerics are not changed here."""
    device = x.device.type
    if (
        torch.is_grad_enabled()
        or not torch.amp.is_autocast_available(device)
        or not torch.is_autocast_enabled(device)
    ):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    with torch.autocast(device, enabled=False):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ModulatedDeformConv(nn.Module):
    """Modulated deformable convolution (DCNv2), stride 1, "same" padding.

    Like mmcv's ``ModulatedDeformConv2dPack``: a plain conv with the same kernel predicts
    ``2*k*k`` offsets and ``k*k`` modulation logits from the input; both start at zero (a regular
    conv with mask 0.5 at initialisation), then the taps are sampled bilinearly.

    Three implementations with the same values (tested): ``torchvision.ops.deform_conv2d`` (CUDA,
    moderate sizes), :func:`deform_conv2d_mix_first` (CPU training: channels mixed before
    sampling, about 2x faster forward plus backward than the column form at the demo's shapes)
    and :func:`deform_conv2d_grid_sample` (CPU inference, where its forward is ~1.5-2x
    torchvision's and its backward ~10x; and any device at inference when the sampled columns
    exceed ``COLUMN_BUDGET``: it then runs in bands of output rows, bounding memory).
    """

    def __init__(self, in_ch: int, out_ch: int, k: int = 3, bias: bool = False) -> None:
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, k, k))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.offset = nn.Conv2d(in_ch, 3 * k * k, k, padding=k // 2)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        om = self.offset(x)
        kk = self.k * self.k
        offset, mask = om[:, : 2 * kk], om[:, 2 * kk :].sigmoid()
        # The deformable conv computes in the weight's dtype on every path (torchvision's kernel
        # has no autocast rule; the grid-sample forms' matmul would otherwise autocast to bf16,
        # with a bf16 copy of its columns) and, under autocast, returns the autocast dtype as an
        # autocast conv does: the half-resolution maps after it stay half the bytes.
        dtype = self.weight.dtype
        device = x.device.type
        x, offset, mask = x.to(dtype), offset.to(dtype), mask.to(dtype)
        if not torch.amp.is_autocast_available(device):  # the meta device (counting MACs)
            return self._deform(x, offset, mask, dtype)
        out_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else dtype
        with torch.autocast(device, enabled=False):
            return self._deform(x, offset, mask, out_dtype)

    def _deform(
        self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, out_dtype: torch.dtype
    ) -> torch.Tensor:
        b, c, h, w = x.shape
        pad = self.k // 2
        whole = torch.is_grad_enabled() or release_kernels_active()  # training, --mode full
        rows = h if whole else max(1, COLUMN_BUDGET // (b * c * self.k * self.k * w))
        if rows < h:  # inference above the column budget: bands of output rows
            return in_row_bands(
                lambda r0, r1: deform_conv2d_grid_sample(
                    x, offset[:, :, r0:r1], self.weight, self.bias, pad, mask[:, :, r0:r1], r0
                ).to(out_dtype),
                h,
                rows,
            )
        if release_kernels_active() or x.device.type != "cpu":
            out = deform_conv2d(x, offset, self.weight, self.bias, padding=pad, mask=mask)
        elif torch.is_grad_enabled():
            out = deform_conv2d_mix_first(x, offset, self.weight, self.bias, pad, mask)
        else:
            out = deform_conv2d_grid_sample(x, offset, self.weight, self.bias, pad, mask)
        return out.to(out_dtype)


def in_row_bands(band: Callable[[int, int], torch.Tensor], h: int, rows: int) -> torch.Tensor:
    """``(B, C, h, W)`` made of ``band(r0, r1)``, the output rows ``r0:r1``, ``rows`` at a
    time, each written into one output tensor as it is made (its dtype and channels are the
    first band's): one band's temporaries alive at a time, and no concatenation of them all."""
    first = band(0, min(rows, h))
    out = first.new_empty(*first.shape[:2], h, first.shape[3])
    out[:, :, : first.shape[2]] = first
    del first
    for r in range(rows, h, rows):
        out[:, :, r : r + rows] = band(r, min(r + rows, h))
    return out


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
    grid = _tap_grid(offset, kh, kw, h_in, w, padding, row0)
    cols = _sample(x, grid.view(b, kk * h, w, 2)).view(b, c, kk, h * w)
    del grid
    m = mask.reshape(b, 1, kk, h * w)
    # without autograd in place (the same values): one column tensor alive, not two
    cols = (cols * m if torch.is_grad_enabled() else cols.mul_(m)).view(b, c * kk, h * w)
    out = torch.matmul(weight.reshape(o, c * kk), cols).view(b, o, h, w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def _tap_grid(
    offset: torch.Tensor, kh: int, kw: int, h_in: int, w: int, padding: int, row0: int
) -> torch.Tensor:
    """``grid_sample``'s normalised ``(x, y)`` of every displaced tap, ``(B, k*k, h, W, 2)``
    (``align_corners=False``); ``offset`` holds ``(dy, dx)`` per tap in row-major tap order."""
    kk = kh * kw
    h = offset.shape[2]
    dev, dt = offset.device, offset.dtype
    ky = torch.arange(kh, device=dev, dtype=dt).repeat_interleave(kw)
    kx = torch.arange(kw, device=dev, dtype=dt).repeat(kh)
    ys = torch.arange(row0, row0 + h, device=dev, dtype=dt) - padding
    xs = torch.arange(w, device=dev, dtype=dt) - padding
    py = ys.view(1, 1, h, 1) + ky.view(1, kk, 1, 1) + offset[:, 0::2]  # (B, kk, h, W)
    px = xs.view(1, 1, 1, w) + kx.view(1, kk, 1, 1) + offset[:, 1::2]
    return torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h_in - 1], -1)


def _sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``x`` at :func:`_tap_grid`'s points, zeros outside (torchvision's
    deformable conv), with the grid's ``align_corners=False`` normalisation."""
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def deform_conv2d_mix_first(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: int,
    mask: torch.Tensor,
) -> torch.Tensor:
    """:func:`deform_conv2d_grid_sample`'s values with the channels mixed before sampling.

    Bilinear sampling (zeros outside) is linear in the input, so
    ``sum_k m_k(p) sum_c W[o, c, k] x_c(p + d_k(p)) = sum_k m_k(p) y_ok(p + d_k(p))`` with
    ``y_ok = sum_c W[o, c, k] x_c``: one 1x1 convolution to ``k*k*O`` channels, then each tap
    samples its own ``O`` channels. No ``(C*k*k, H*W)`` column matrix and no transposed copy of
    it for the contraction, and the samples have ``O`` channels instead of ``C``. Forward plus
    backward of the demo's tiny model's deformable convs at its training shapes, one thread:
    245 ms in the column form, 115 ms in this one (docs/rounds.md, twenty-first round). Same
    values up to float summation order (tested against torchvision). The CPU training path;
    inference keeps the column form, whose row bands bound memory on 4K images.
    """
    b, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    kk = kh * kw
    # Tap-major rows (k*k*O, C, 1, 1). A 1x1 kernel is used as it is: through the permuted view
    # its gradient came back with the strides of that view (same values), which DDP warns about
    # on every run ("Grad strides do not match bucket view strides").
    mix = weight if kk == 1 else weight.permute(2, 3, 0, 1).reshape(kk * o, c, 1, 1)
    taps = F.conv2d(x, mix)  # (B, kk*O, H, W)
    grid = _tap_grid(offset, kh, kw, h, w, padding, 0)
    sampled = _sample(taps.view(b * kk, o, h, w), grid.view(b * kk, h, w, 2))
    out = (sampled.view(b, kk, o, h, w) * mask.view(b, kk, 1, h, w)).sum(1)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def bilinear_deconv_init_(weight: torch.Tensor) -> None:
    """The release's "bilinear" initialisation of a ``(C_in, C_out, k, k)`` transposed-conv
    weight, kept as released: only ``weight[:, 0]`` (every input channel into output channel
    0) gets the bilinear kernel; ``weight[:, 1:]`` keep their random initialisation. So at
    initialisation output channel 0 is the sum of all bilinearly upsampled channels, not a
    per-channel bilinear upsampling."""
    k = weight.shape[2]
    f = math.ceil(k / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = torch.tensor([1 - abs(i / f - c) for i in range(k)], dtype=weight.dtype)
    with torch.no_grad():
        weight[:, 0] = ramp[:, None] * ramp[None, :]


class DeformBlock(nn.Module):
    """Modulated deformable ``k x k`` conv -> BN -> ReLU, optionally followed by a learned x2
    upsampling: 4x4 stride-2 transposed conv (bilinear-initialised) -> BN -> ReLU
    (release: ``DeformLayer``).

    ``forward`` returns ``y`` (B, out_ch, H, W), or ``(y, up)`` with ``up`` (B, out_ch, 2H, 2W)
    when ``upsample``.
    """

    def __init__(self, in_ch: int, out_ch: int, k: int = 3, upsample: bool = False) -> None:
        super().__init__()
        self.dcn = ModulatedDeformConv(in_ch, out_ch, k)
        self.bn = nn.BatchNorm2d(out_ch)
        self.upsample = upsample
        if upsample:
            self.up = nn.ConvTranspose2d(out_ch, out_ch, 4, stride=2, padding=1, bias=False)
            bilinear_deconv_init_(self.up.weight)
            self.up_bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        y = F.relu(self.bn(self.dcn(x)))
        if not self.upsample:
            return y
        return y, F.relu(self.up_bn(self.up(y)))


class SqueezeExcite(nn.Module):
    """Channel re-weighting as released (``SEB``): ``w = sigmoid(sigmoid(MLP(mean_hw(x))))``,
    MLP = 1x1 conv (C -> C/ratio, no bias) -> BN -> ReLU -> 1x1 conv (-> C, no bias);
    output ``x + x * w``. The sigmoid applied twice is the release's (kept: it changes values,
    ``w`` lies in (0.5, 0.73))."""

    def __init__(self, ch: int, ratio: int = 2) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(ch, ch // ratio, 1, bias=False)
        self.bn = nn.BatchNorm2d(ch // ratio)
        self.expand = nn.Conv2d(ch // ratio, ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.expand(F.relu(self.bn(self.reduce(x.mean((2, 3), keepdim=True)))))
        return x + x * w.sigmoid().sigmoid()


def sine_position_2d(
    h: int, w: int, dim: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """DETR sine positional code as mmdet's ``SinePositionalEncoding(num_feats=dim/2,
    normalize=True)`` on an all-valid mask: position ``i`` (1-based) -> ``i / (n + 1e-6) * 2 pi``,
    temperature 10000, ``[y sin/cos interleaved, x sin/cos interleaved]``. Returns ``(dim, h, w)``.

    ``dim`` must be divisible by 4 (half for y, half for x, each as sin/cos pairs).
    """
    npf = dim // 2
    y = torch.arange(1, h + 1, device=device, dtype=torch.float32)
    x = torch.arange(1, w + 1, device=device, dtype=torch.float32)
    y = y / (y[-1:] + 1e-6) * (2 * math.pi)
    x = x / (x[-1:] + 1e-6) * (2 * math.pi)
    t = torch.arange(npf, device=device, dtype=torch.float32)
    t = 10000 ** (2 * (t // 2) / npf)
    py = y[:, None] / t  # (h, npf)
    px = x[:, None] / t  # (w, npf)
    py = torch.stack([py[:, 0::2].sin(), py[:, 1::2].cos()], 2).flatten(1)
    px = torch.stack([px[:, 0::2].sin(), px[:, 1::2].cos()], 2).flatten(1)
    pos = torch.cat(
        [py[:, None, :].expand(h, w, npf), px[None, :, :].expand(h, w, npf)], 2
    )  # (h, w, dim)
    return pos.permute(2, 0, 1).to(dtype)
