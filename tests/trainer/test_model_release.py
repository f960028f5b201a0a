"""The release's value-changing details, each checked directly on our blocks
(xiechenxi99/MaSS13K at 1afadb9, docs/model.md "Quirks kept")."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainer.models import create_model
from trainer.models.layers import DeformBlock, SqueezeExcite, sine_position_2d
from trainer.models.pixel_decoder import LSE, from_windows, to_windows


def test_deconv_bilinear_init_fills_only_output_channel_zero() -> None:
    torch.manual_seed(0)
    block = DeformBlock(6, 6, 3, upsample=True)
    w = block.up.weight  # (C_in, C_out, 4, 4)
    assert w.shape == (6, 6, 4, 4) and block.up.stride == (2, 2) and block.up.padding == (1, 1)
    ramp = torch.tensor([0.25, 0.75, 0.75, 0.25])
    for c in range(6):
        torch.testing.assert_close(w[c, 0], ramp[:, None] * ramp[None, :])
    assert not torch.allclose(w[:, 1:], (ramp[:, None] * ramp[None, :]).expand(6, 5, 4, 4))
    assert isinstance(block.up_bn, nn.BatchNorm2d) and block.up.bias is None


def test_window_partition_round_trip_and_order() -> None:
    x = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).view(2, 3, 8, 12)
    win = to_windows(x, 4)
    assert win.shape == (2 * 2 * 3, 16, 3)
    # window 1 of image 0 is rows 0..3, columns 4..7; its token 5 is row 1, column 1 there
    torch.testing.assert_close(win[1, 5], x[0, :, 1, 5])
    torch.testing.assert_close(from_windows(win, 4, x.shape), x)


def test_squeeze_excite_applies_the_sigmoid_twice() -> None:
    se = SqueezeExcite(8, ratio=2).eval()
    assert se.reduce.weight.shape == (4, 8, 1, 1) and se.reduce.bias is None
    nn.init.zeros_(se.expand.weight)  # MLP output 0: the gate is sigmoid(sigmoid(0))
    x = torch.randn(2, 8, 5, 5)
    gate = 1 / (1 + math.exp(-0.5))  # sigmoid(0.5) = 0.6225, not sigmoid(0) = 0.5
    torch.testing.assert_close(se(x), x * (1 + gate))


def test_lse_gate_is_sigmoid_then_conv_without_sigmoid_after() -> None:
    conv = nn.Conv2d(2, 1, 7, padding=3)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    with torch.no_grad():
        conv.weight[0, 0, 3, 3] = 1.0  # picks sigmoid(channel mean) at the same pixel
    x = torch.randn(1, 4, 6, 6)
    expected = x * torch.sigmoid(x.mean(1, keepdim=True)) + x
    torch.testing.assert_close(LSE._gated(x, conv), expected)


def test_sine_position_is_mmdets_normalised_code() -> None:
    h, w, dim = 5, 7, 16
    pos = sine_position_2d(h, w, dim, torch.device("cpu"), torch.float32)
    assert pos.shape == (dim, h, w)
    y = 2 * math.pi * 3 / (h + 1e-6)  # row 2 is the 3rd position (1-based cumsum)
    x = 2 * math.pi * 5 / (w + 1e-6)
    t = 10000 ** (2 / (dim // 2))  # channels 2, 3 of each half share temperature^(2*1/npf)
    expected = [math.sin(y), math.cos(y), math.sin(y / t), math.cos(y / t)]
    torch.testing.assert_close(pos[:4, 2, 4], torch.tensor(expected))
    torch.testing.assert_close(pos[8:10, 2, 4], torch.tensor([math.sin(x), math.cos(x)]))


def test_dcn_offsets_use_mmcvs_layout() -> None:
    """The offset conv's first 2k^2 channels are (dy, dx) per tap, the last k^2 the mask
    logits: offsets dy = 1 everywhere with masks ~1 equal a plain conv one row further down."""
    torch.manual_seed(0)
    block = DeformBlock(3, 4, 3).eval()
    off = block.dcn.offset
    with torch.no_grad():
        off.weight.zero_()
        off.bias.zero_()
        off.bias[0:18:2] = 1.0  # dy of every tap
        off.bias[18:] = 30.0  # mask sigmoid(30) = 1
    x = torch.randn(1, 3, 9, 9)
    got = block.dcn(x)
    padded = F.pad(x, (1, 1, 1, 2))  # zeros outside, one more row at the bottom
    torch.testing.assert_close(got, F.conv2d(padded[:, :, 1:], block.dcn.weight))


def test_release_structure_details() -> None:
    with torch.device("meta"):
        model = create_model("massformer_r50", num_classes=7)
    pd = model.pixel_decoder
    assert not any(isinstance(m, nn.LayerNorm) for m in pd.modules())  # CST has no norms
    assert pd.cst.attn.ffn1.layers[0].out_features == 1024  # mmcv FFN default
    assert [b.dcn.weight.shape[-1] for b in pd.rfb.branches] == [1, 3, 5, 7]
    assert pd.edge_head[1].in_channels == 16 and pd.edge_refine.dcn.dcn.weight.shape[:2] == (
        64,
        64,
    )
    assert all(isinstance(layer.ffn[1], nn.GELU) for layer in model.decoder.layers)
    assert [p.conv.out_channels for p in pd.memory_proj] == [256, 256, 256]


@pytest.mark.parametrize("hw", [(64, 64), (128, 192)])
def test_intermediate_masks_at_quarter_final_at_half(hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *hw) * 255)
    assert out["pred_masks"].shape[-2:] == (hw[0] // 2, hw[1] // 2)
    assert [a["pred_masks"].shape[-2:] for a in out["aux_outputs"]] == [
        (hw[0] // 4, hw[1] // 4)
    ] * 3


def test_release_kernels_route_dcn_and_attention_as_the_release_does(monkeypatch) -> None:
    """Inside ``release_kernels`` (predict --mode full) every DCN runs torchvision's kernel over
    the whole map and every attention takes nn.MultiheadAttention's weights path, as mmcv does;
    outside, the fast paths run. Same values up to summation order either way."""
    import trainer.models.layers as layers

    calls = {"tv": 0, "grid": 0, "weights": [], "fast": []}
    tv, grid = layers.deform_conv2d, layers.deform_conv2d_grid_sample

    def spy_tv(*a, **k):
        calls["tv"] += 1
        return tv(*a, **k)

    def spy_grid(*a, **k):
        calls["grid"] += 1
        return grid(*a, **k)

    real_mha = nn.MultiheadAttention.forward

    def spy_mha(self, *a, need_weights=True, **k):
        calls["weights" if need_weights else "fast"].append(1)
        return real_mha(self, *a, need_weights=need_weights, **k)

    monkeypatch.setattr(layers, "deform_conv2d", spy_tv)
    monkeypatch.setattr(layers, "deform_conv2d_grid_sample", spy_grid)
    monkeypatch.setattr(nn.MultiheadAttention, "forward", spy_mha)
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=3).eval()
    x = torch.rand(1, 3, 256, 256) * 255
    with torch.inference_mode():
        fast = model(x, aux=False)["pred_masks"]
        assert calls["grid"] > 0 and calls["tv"] == 0 and calls["fast"] and not calls["weights"]
        calls.update(tv=0, grid=0, weights=[], fast=[])
        with layers.release_kernels():
            exact = model(x, aux=False)["pred_masks"]
        assert calls["tv"] > 0 and calls["grid"] == 0 and calls["weights"] and not calls["fast"]
    assert not layers.attention_weights_path()  # the context is left cleanly
    torch.testing.assert_close(exact, fast, rtol=1e-3, atol=1e-3)
