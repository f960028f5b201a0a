"""MaSSFormer model tests: shapes, gradients, frozen BN, parameter counts, registry, rebuild."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision.models import resnet
from torchvision.ops import deform_conv2d

from tests.model_helpers import needs_fake_cuda
from trainer.models import MODEL_PRESETS, ModelConfig, build_model, create_model, semantic_inference
from trainer.models.backbone import FrozenBatchNorm
from trainer.models.layers import (
    deform_conv2d_grid_sample,
    deform_conv2d_mix_first,
    resize_bilinear,
)


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("tiny", num_classes=8).eval()


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@pytest.mark.parametrize(
    ("batch", "h", "w"),
    [(2, 64, 64), (1, 32, 32), (1, 65, 97), (1, 100, 36), (2, 128, 96)],
)
def test_forward_shapes_and_finite(tiny: torch.nn.Module, batch: int, h: int, w: int) -> None:
    cfg = tiny.config
    with torch.no_grad():
        out = tiny(torch.rand(batch, 3, h, w) * 255)
    q, k = cfg.num_queries, cfg.num_classes
    assert out["pred_logits"].shape == (batch, q, k + 1)
    assert out["pred_masks"].shape == (batch, q, _ceil(h, 2), _ceil(w, 2))
    assert out["edge_logits"].shape == (batch, 1, _ceil(h, 2), _ceil(w, 2))
    assert len(out["aux_outputs"]) == cfg.dec_layers  # initial + after layers 1..L-1
    for a in out["aux_outputs"]:
        assert a["pred_logits"].shape == (batch, q, k + 1)
        assert a["pred_masks"].shape == (batch, q, _ceil(h, 4), _ceil(w, 4))
    tensors = [out["pred_logits"], out["pred_masks"], out["edge_logits"]]
    tensors += [t for a in out["aux_outputs"] for t in a.values()]
    assert all(torch.isfinite(t).all() for t in tensors)


@pytest.mark.parametrize("name", ["massformer_r50", "massformer_lite_r18"])
def test_real_presets_forward(name: str) -> None:
    """The published structure end to end on CPU: 16x16 windows need padding to 256."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=8).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 200, 260) * 255)
    assert out["pred_logits"].shape == (1, 100, 9)
    assert out["pred_masks"].shape == (1, 100, 100, 130)
    assert out["edge_logits"].shape == (1, 1, 100, 130)
    assert len(out["aux_outputs"]) == 6
    assert all(a["pred_masks"].shape == (1, 100, 50, 65) for a in out["aux_outputs"])
    assert torch.isfinite(out["pred_masks"]).all() and torch.isfinite(out["pred_logits"]).all()


def test_six_layers_give_six_aux_predictions() -> None:
    model = create_model("tiny", num_classes=3, dec_layers=6).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64) * 255)
    assert len(out["aux_outputs"]) == 6  # 7 supervised predictions with the final one


def test_padding_and_cropping_are_aligned(tiny: torch.nn.Module) -> None:
    """The model pads the normalised image with zeros (= the mean colour) at the bottom/right,
    so a 61x63 input must give exactly the top-left crop of the 64x64 image whose extra
    rows/columns hold the mean colour."""
    tiny.eval()
    full = torch.rand(1, 3, 64, 64) * 255
    full[..., 61:, :] = tiny.pixel_mean.view(1, 3, 1, 1)
    full[..., :, 63:] = tiny.pixel_mean.view(1, 3, 1, 1)
    with torch.no_grad():
        a = tiny(full)
        b = tiny(full[..., :61, :63])
    assert b["pred_masks"].shape[-2:] == (31, 32)
    assert b["aux_outputs"][0]["pred_masks"].shape[-2:] == (16, 16)
    torch.testing.assert_close(
        b["pred_masks"], a["pred_masks"][..., :31, :32], atol=1e-4, rtol=1e-4
    )
    torch.testing.assert_close(
        b["edge_logits"], a["edge_logits"][..., :31, :32], atol=1e-4, rtol=1e-4
    )
    torch.testing.assert_close(b["pred_logits"], a["pred_logits"], atol=1e-4, rtol=1e-4)


def test_aux_flag_keeps_final_prediction(tiny: torch.nn.Module) -> None:
    tiny.eval()
    x = torch.rand(1, 3, 96, 64) * 255
    with torch.no_grad():
        a, b = tiny(x), tiny(x, aux=False)
    assert b["aux_outputs"] == []
    torch.testing.assert_close(a["pred_logits"], b["pred_logits"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a["pred_masks"], b["pred_masks"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("shape", [(1, 3, 31, 64), (1, 1, 64, 64), (3, 64, 64)])
def test_bad_input_shapes(tiny: torch.nn.Module, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="images must"):
        tiny(torch.zeros(shape))


def test_backward_reaches_every_trainable_parameter() -> None:
    torch.manual_seed(1)
    model = create_model("tiny", num_classes=5)
    model.train()
    out = model(torch.rand(2, 3, 64, 96) * 255)
    tensors = [out["pred_logits"], out["pred_masks"], out["edge_logits"]]
    tensors += [t for a in out["aux_outputs"] for t in a.values()]
    g = torch.Generator().manual_seed(0)
    loss = sum((t * torch.randn(t.shape, generator=g)).sum() for t in tensors)
    loss.backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_backbone_batchnorm_is_frozen() -> None:
    model = create_model("tiny", num_classes=3)
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(isinstance(m, FrozenBatchNorm) for m in norms)
    # affine weights are parameters (as in the release's state dict) that never train
    assert all(not p.requires_grad for m in norms for p in m.parameters(recurse=False))
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    assert not any(m.training for m in norms)  # statistics never update either
    out = model(torch.rand(2, 3, 64, 64) * 255)
    (out["pred_masks"].mean() + out["pred_logits"].mean()).backward()
    opt.step()
    after = model.backbone.state_dict()
    norm_keys = [k for k in before if "bn" in k or "stem.1" in k or "downsample.1" in k]
    assert norm_keys and all(torch.equal(before[k], after[k]) for k in norm_keys)


def test_backbone_batch_norm_trains_from_scratch_and_loads_into_frozen() -> None:
    # from scratch, frozen norms stay identities (mean 0, var 1, weight 1, bias 0); "batch" norms
    # learn both their statistics and their affine weights
    model = create_model("tiny", num_classes=3, backbone_norm="batch")
    assert model.config.backbone_norm == "batch"
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(isinstance(m, FrozenBatchNorm) for m in norms)
    assert all(p.requires_grad for m in norms for p in m.parameters(recurse=False))
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    out = model(torch.rand(2, 3, 64, 64) * 255)
    (out["pred_masks"].mean() + out["pred_logits"].mean()).backward()
    opt.step()
    after = model.backbone.state_dict()
    assert not torch.equal(before["stem.1.running_mean"], after["stem.1.running_mean"])
    assert not torch.equal(before["stem.1.weight"], after["stem.1.weight"])
    # the same tensors as the frozen kind: what the backbone learnt loads into a frozen one,
    # which then predicts exactly the same in eval mode and keeps it while training
    frozen = create_model("tiny", num_classes=3)
    assert frozen.config.backbone_norm == "frozen"
    frozen.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        a, b = model.eval()(x), frozen.eval()(x)
    assert torch.equal(a["pred_masks"], b["pred_masks"])
    # rebuilt from its stored config (what a checkpoint keeps), the kind survives
    cfg = dataclasses.asdict(model.config)
    assert build_model(ModelConfig.from_dict(cfg)).config.backbone_norm == "batch"


def test_backbone_norm_is_checked() -> None:
    with pytest.raises(ValueError, match="backbone_norm must be 'frozen' or 'batch', got 'group'"):
        ModelConfig(backbone_norm="group")


def test_training_needs_two_images() -> None:
    model = create_model("tiny", num_classes=3).train()
    with pytest.raises(ValueError, match="at least 2 images"):
        model(torch.rand(1, 3, 64, 64) * 255)


def test_r50_parameter_count_is_the_releases() -> None:
    """Counts measured on the release's own model (DESIGN.md section 4)."""
    with torch.device("meta"):
        model = create_model("massformer_r50", num_classes=7)

    def count(prefix: str = "", trainable: bool = False) -> int:
        return sum(
            p.numel()
            for n, p in model.named_parameters()
            if n.startswith(prefix) and (p.requires_grad or not trainable)
        )

    assert count() == 37_578_176
    assert count(trainable=True) == 37_525_056
    assert count("backbone.") == 23_508_032
    assert count("pixel_decoder.") == 4_345_720
    assert count("decoder.") == 9_473_024 + 251_400  # layers + queries/levels/heads
    state = model.state_dict()
    assert len(state) == 660
    groups = {}
    for key in state:
        if key.startswith("pixel_decoder."):
            groups[key.split(".")[1]] = groups.get(key.split(".")[1], 0) + 1
    # the release's groups: in_projections 24, out 24, conv_avg 6, SEB 28, LSE 24, CST 44,
    # edge_conv 8, edge_rec 17, RFB 46 (out = our mask_proj 6 + memory_proj 18)
    assert groups == {
        "proj": 24,
        "mask_proj": 6,
        "memory_proj": 18,
        "context": 6,
        "se": 28,
        "lse": 24,
        "cst": 44,
        "edge_head": 8,
        "edge_refine": 17,
        "rfb": 46,
    }


def test_r50_real_structure() -> None:
    cfg = MODEL_PRESETS["massformer_r50"]
    assert (cfg.num_queries, cfg.dec_layers, cfg.hidden_dim, cfg.num_heads, cfg.ffn_dim) == (
        100,
        6,
        256,
        8,
        2048,
    )
    assert (cfg.pixel_dim, cfg.mask_dim, cfg.window, cfg.cst_ffn_dim) == (128, 256, 16, 1024)
    assert (cfg.se_reduction, cfg.edge_hidden_dim, cfg.cst_heads) == (2, 16, 8)
    assert (
        cfg.backbone == "resnet50" and MODEL_PRESETS["massformer_lite_r18"].backbone == "resnet18"
    )
    with torch.device("meta"):
        assert build_model(cfg).size_divisibility == 256


def test_unknown_preset_lists_known() -> None:
    with pytest.raises(ValueError, match="massformer_r50.*massformer_lite_r18.*tiny"):
        create_model("massformer_r101", num_classes=7)


def test_unknown_config_key_and_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown model config keys \\['depth'\\]"):
        ModelConfig.from_dict({"depth": 3})
    with pytest.raises(ValueError, match="num_classes"):
        ModelConfig(num_classes=0)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model(ModelConfig(backbone="vgg16"))


def test_checkpoint_rebuild_loads_strictly(tiny: torch.nn.Module) -> None:
    # the config travels through JSON in a checkpoint: tuples come back as lists
    data = json.loads(json.dumps(dataclasses.asdict(tiny.config)))
    rebuilt = build_model(ModelConfig(**data))
    rebuilt.load_state_dict(tiny.state_dict(), strict=True)
    assert rebuilt.config == tiny.config
    tiny.eval()
    rebuilt.eval()
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        torch.testing.assert_close(tiny(x)["pred_masks"], rebuilt(x)["pred_masks"])


def test_param_groups_partition_parameters(tiny: torch.nn.Module) -> None:
    groups = tiny.param_groups(lr=3e-4, weight_decay=0.05, backbone_lr_mult=0.1)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len([p for p in tiny.parameters() if p.requires_grad])
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"backbone", "decoder", "decoder_no_decay"}  # frozen BN: no bb norms
    assert by_name["backbone"]["lr"] == pytest.approx(3e-5)
    assert by_name["decoder_no_decay"]["weight_decay"] == 0.0
    kinds = tiny.parameter_kinds()
    for name in (
        "decoder.query_feat.weight",
        "decoder.query_embed.weight",
        "decoder.level_embed.weight",
    ):
        assert kinds[name] == (False, True)
    assert kinds["decoder.post_norm.weight"] == (False, True)
    assert kinds["pixel_decoder.cst.dcn_in.bn.weight"] == (False, True)  # BN after the DCN
    assert kinds["decoder.class_embed.weight"] == (False, False)
    assert kinds["backbone.layer1.0.conv1.weight"] == (True, False)


def test_backbone_weights_from_file(tmp_path) -> None:  # noqa: ANN001
    ref = resnet.resnet18(weights=None)
    for m in ref.modules():  # non-trivial statistics so the copy is checked
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    model = create_model("massformer_lite_r18", num_classes=7, backbone_weights=str(path))
    torch.testing.assert_close(model.backbone.stem[0].weight, ref.conv1.weight)
    torch.testing.assert_close(model.backbone.stem[1].running_mean, ref.bn1.running_mean)
    torch.testing.assert_close(model.backbone.layer4[1].bn2.weight, ref.layer4[1].bn2.weight)


def test_backbone_weights_errors(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        create_model("tiny", num_classes=3, backbone_weights=missing)
    wrong = tmp_path / "tiny.pth"
    torch.save(create_model("tiny", num_classes=3).backbone.state_dict(), wrong)
    with pytest.raises(ValueError, match=f"{wrong}: not a resnet18 state dict"):
        create_model("massformer_lite_r18", num_classes=3, backbone_weights=wrong)
    with pytest.raises(ValueError, match="no torchvision ImageNet weights"):
        create_model("tiny", num_classes=3, backbone_weights="torchvision")
    text = tmp_path / "notes.pth"  # was torch's multi-line UnpicklingError, a traceback in the CLI
    text.write_text("not weights")
    with pytest.raises(ValueError, match=f"^{text}: not a readable backbone weights file: not a"):
        create_model("tiny", num_classes=3, backbone_weights=text)

    def offline(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError("network is unreachable")

    monkeypatch.setattr(resnet.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(
        RuntimeError, match="could not fetch torchvision resnet18.*--backbone-weights"
    ):
        create_model("massformer_lite_r18", num_classes=3, backbone_weights="torchvision")


@pytest.mark.parametrize("form", ["columns", "mix_first"])
@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_grid_sample_dcn_matches_torchvision(k: int, form: str) -> None:
    """Values and every gradient, offsets reaching past the border (zeros outside), more output
    than input channels and fewer."""
    g = torch.Generator().manual_seed(k)
    kw = {"dtype": torch.float64, "generator": g}
    x = torch.randn(2, 4, 9, 11, **kw).requires_grad_()
    off = (torch.randn(2, 2 * k * k, 9, 11, **kw) * 3).requires_grad_()
    mask = torch.rand(2, k * k, 9, 11, **kw).requires_grad_()
    weight = torch.randn(5 if k < 5 else 3, 4, k, k, **kw).requires_grad_()
    bias = torch.randn(weight.shape[0], **kw)
    ref = deform_conv2d(x, off, weight, bias, padding=k // 2, mask=mask)
    if form == "columns":
        ours = deform_conv2d_grid_sample(x, off, weight, bias, k // 2, mask)
    else:
        ours = deform_conv2d_mix_first(x, off, weight, bias, k // 2, mask)
    torch.testing.assert_close(ours, ref)
    gout = torch.randn(ref.shape, **kw)
    grads_ref = torch.autograd.grad(ref, (x, off, mask, weight), gout)
    grads = torch.autograd.grad(ours, (x, off, mask, weight), gout)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b)


def test_semantic_inference_hand_made() -> None:
    # one query: softmax([ln 2, 0, 0]) = [.5, .25, .25]; no-object dropped; sigmoid(0) = .5
    logits = torch.tensor([[[torch.log(torch.tensor(2.0)), 0.0, 0.0]]])
    masks = torch.zeros(1, 1, 2, 3)
    masks[..., 0, 0] = 100.0  # sigmoid -> 1
    out = semantic_inference(logits, masks)
    assert out.shape == (1, 2, 2, 3)
    torch.testing.assert_close(out[0, :, 1, 1], torch.tensor([0.25, 0.125]))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.5, 0.25]))
    # all queries certain of "no object": every class score is ~0
    empty = semantic_inference(torch.tensor([[[0.0, 0.0, 50.0]] * 3]), torch.zeros(1, 3, 2, 2))
    assert empty.abs().max() < 1e-6


def test_dcn_bands_match_whole_map(monkeypatch) -> None:  # noqa: ANN001
    """At inference a large deformable conv runs in bands of output rows (bounded memory);
    sampling still reads the whole input, so the result is the same."""
    from trainer.models import layers

    torch.manual_seed(0)
    conv = layers.ModulatedDeformConv(4, 6, 3)
    with torch.no_grad():
        conv.offset.weight.normal_(0, 0.5)  # non-trivial offsets, several pixels
    x = torch.randn(2, 4, 23, 17)
    with torch.no_grad():
        whole = conv(x)
        monkeypatch.setattr(layers, "COLUMN_BUDGET", 2 * 4 * 9 * 17 * 5)  # 5 rows per band
        banded = conv(x)
        # under autocast (CUDA inference runs in bf16) the deformable conv computes in float32
        # on every path and returns bf16 on every path: the bands' matmul was bf16, the
        # whole-map kernel's output float32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast, om16 = conv(x), conv.offset(x)
    torch.testing.assert_close(banded, whole)
    assert autocast.dtype == torch.bfloat16
    # the offsets come from a bf16 conv; given them, the result is torchvision's in float32
    offset16, mask16 = om16[:, :18].float(), om16[:, 18:].sigmoid().float()
    ref16 = deform_conv2d(x, offset16, conv.weight, None, padding=1, mask=mask16)
    torch.testing.assert_close(autocast.float(), ref16.detach(), atol=1e-5, rtol=2**-8)
    om = conv.offset(x)
    ref = deform_conv2d(x, om[:, :18], conv.weight, None, padding=1, mask=om[:, 18:].sigmoid())
    torch.testing.assert_close(banded, ref.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_tiny_forward_backward_is_fast() -> None:
    """The trainer's CPU learning test and the demo rely on this (measured ~0.65-0.7 s on one
    thread of the 2-core dev box under load; the bound leaves room for a busy machine)."""
    import time

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = create_model("tiny", num_classes=8)
        x = torch.rand(2, 3, 256, 256) * 255
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            out = model(x)
            (
                out["pred_masks"].mean() + sum(a["pred_masks"].mean() for a in out["aux_outputs"])
            ).backward()
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert best < 1.5, f"{best:.2f} s"


def test_cpu_training_mixes_channels_first_and_inference_samples_columns(monkeypatch) -> None:
    """The two CPU forms of the deformable conv: training (grad enabled) the mix-first one,
    inference the column one (row bands for 4K maps); both give the module's same values."""
    from trainer.models import layers

    calls: list[str] = []
    for name in ("deform_conv2d_mix_first", "deform_conv2d_grid_sample"):
        real = getattr(layers, name)
        monkeypatch.setattr(
            layers, name, lambda *a, _r=real, _n=name, **k: calls.append(_n) or _r(*a, **k)
        )
    torch.manual_seed(0)
    conv = layers.ModulatedDeformConv(5, 3, 3)
    with torch.no_grad():
        conv.offset.weight.normal_(0, 0.5)
    x = torch.randn(2, 5, 12, 10)
    trained = conv(x)
    with torch.no_grad():
        inferred = conv(x)
    assert calls == ["deform_conv2d_mix_first", "deform_conv2d_grid_sample"]
    torch.testing.assert_close(trained.detach(), inferred, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("k", [1, 3])
def test_training_gradients_keep_the_parameters_strides(k: int) -> None:
    """DDP's bucket views have each parameter's strides; a gradient with others (a (4, 16, 1, 1)
    weight of strides (16, 1, 1, 1) whose gradient came back through a permuted view with
    (16, 1, 64, 64)) made every multi-process training run print "Grad strides do not match
    bucket view strides"."""
    from trainer.models import layers

    torch.manual_seed(0)
    conv = layers.ModulatedDeformConv(16, 4, k)
    conv(torch.randn(2, 16, 8, 8)).sum().backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and p.grad.stride() == p.stride(), name


def test_lse_resizes_each_half_of_s1_as_the_release_resizes_the_whole() -> None:
    """LSE resizes S1's two halves separately (each H/2 copy is freed after its branch);
    bilinear resizing is per channel, so the output is the release's to the last bit."""
    import torch.nn.functional as F

    from trainer.models.pixel_decoder import LSE

    torch.manual_seed(0)
    lse = LSE(16).eval()
    with torch.no_grad():
        lse.dcn_branch.dcn.offset.weight.normal_(0, 0.3)
    image, s1 = torch.randn(1, 3, 64, 96), torch.randn(1, 16, 16, 24)

    def release(image, s1):  # noqa: ANN001, ANN202 - the formula of the class docstring
        size = (32, 48)
        s1 = F.interpolate(s1, size=size, mode="bilinear", align_corners=False)
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        a, b = s1.chunk(2, 1)
        a = lse._gated(lse.conv_branch(torch.cat([image, a], 1)), lse.gate_conv)
        b = lse._gated(lse.dcn_branch(torch.cat([image, b], 1)), lse.gate_dcn)
        return lse.fuse(torch.cat([a, b], 1))

    with torch.no_grad():
        assert torch.equal(lse(image, s1), release(image, s1))
    lse.train()
    s1.requires_grad_(True)
    ours = lse(image, s1)
    (grad,) = torch.autograd.grad(ours.square().sum(), s1)
    (ref,) = torch.autograd.grad(release(image, s1).square().sum(), s1)
    assert torch.equal(grad, ref)


def test_inference_in_row_bands_gives_the_whole_maps_outputs(monkeypatch) -> None:  # noqa: ANN001
    """Above a size budget, inference runs the half-resolution 1x1 projections and the
    deformable convs in bands of rows (bounded memory on 4K inputs); the outputs are the
    whole maps' ones. Training and the release's kernels always run the whole map."""
    from trainer.models import layers, pixel_decoder

    torch.manual_seed(0)
    model = create_model("tiny", num_classes=5).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, layers.ModulatedDeformConv):
                m.offset.weight.normal_(0, 0.05)
    x = torch.rand(1, 3, 96, 128) * 255
    with torch.no_grad():
        whole = model(x, aux=False)
    calls: list[int] = []
    real = layers.ConvBNReLU.forward
    monkeypatch.setattr(
        layers.ConvBNReLU, "forward", lambda self, t: calls.append(t.shape[2]) or real(self, t)
    )
    width = model.pixel_decoder.mask_proj.conv.out_channels
    monkeypatch.setattr(pixel_decoder, "ROWS_BUDGET", width * 7 * 64)  # mask_proj: 7 rows a band
    monkeypatch.setattr(layers, "COLUMN_BUDGET", 2**12)
    with torch.no_grad():
        banded = model(x, aux=False)
    assert 7 in calls  # the bands ran
    for key in ("pred_logits", "pred_masks", "edge_logits"):
        torch.testing.assert_close(banded[key], whole[key], atol=1e-4, rtol=1e-4)
    calls.clear()
    with torch.no_grad(), layers.release_kernels():
        model(x, aux=False)
    assert 7 not in calls  # --mode full, the release's procedure: whole maps
    model.train()
    model(torch.rand(2, 3, 96, 128) * 255)
    assert 7 not in calls  # training: whole maps


def test_pixel_decoder_releases_the_backbone_maps() -> None:
    """At inference nothing keeps C2..C5 alive after their projection (MaSSFormer's list is
    emptied), so a 4K input's half-resolution blocks run without them."""
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=5).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.backbone(x)
        d1, memories, edge = model.pixel_decoder(feats, x)
    assert feats == [] and d1.shape[-2:] == (32, 32)


def _cuda_autocast(enabled: bool) -> None:
    """CUDA's bf16 autocast switched on or off without a GPU (``torch.autocast("cuda")``
    turns itself off there; the switches do not): its dtype rules run on fake CUDA tensors."""
    torch.set_autocast_dtype("cuda", torch.bfloat16)
    torch.set_autocast_enabled("cuda", enabled)


def test_resize_bilinear_keeps_bf16_under_cuda_autocast_at_inference() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(1, 4, 8, 6, device="cuda", dtype=torch.bfloat16)
        _cuda_autocast(True)
        try:
            with torch.no_grad():
                # the fact the helper answers: CUDA autocast resizes in float32
                plain = F.interpolate(x, size=(16, 12), mode="bilinear", align_corners=False)
                assert plain.dtype == torch.float32
                assert resize_bilinear(x, (16, 12)).dtype == torch.bfloat16
            assert resize_bilinear(x, (16, 12)).dtype == torch.float32  # training: autocast's
        finally:
            _cuda_autocast(False)
    y = torch.randn(1, 3, 5, 7, dtype=torch.bfloat16)  # outside autocast: F.interpolate itself
    want = F.interpolate(y, size=(10, 14), mode="bilinear", align_corners=False)
    assert torch.equal(resize_bilinear(y, (10, 14)), want)


class _Resizes(TorchDispatchMode):
    """(input dtype, output dtype) of every bilinear resize dispatched under it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.dtype, torch.dtype]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket is torch.ops.aten.upsample_bilinear2d:
            self.seen.append((args[0].dtype, out.dtype))
        return out


@needs_fake_cuda
def test_efficient_inference_never_resizes_a_bf16_map_in_float32() -> None:
    # the efficient mode's forward under CUDA's bf16 autocast, on fake CUDA tensors: no
    # resize (pixel decoder, mask features, attention masks) turns bf16 into float32
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        with torch.device("cuda"):
            model = create_model("tiny", 9).eval()
        images = torch.empty(1, 3, 256, 320, device="cuda")
        _cuda_autocast(True)
        try:
            with torch.no_grad(), _Resizes() as resizes:
                model(images, aux=False)
        finally:
            _cuda_autocast(False)
    assert len(resizes.seen) >= 6, resizes.seen
    assert (torch.bfloat16, torch.float32) not in resizes.seen, resizes.seen
    assert (torch.bfloat16, torch.bfloat16) in resizes.seen


def test_attention_masks_threshold_bf16_logits_in_float32() -> None:
    # a bf16 sigmoid of a logit within ~0.004 of 0 is exactly 0.5: "< 0.5" would let the
    # query attend there, where the release (float32) masks it
    decoder = create_model("tiny", 5).decoder
    masks = torch.full((1, 2, 4, 4), -0.002, dtype=torch.bfloat16)
    masks[0, 0, 0, 0] = 1.0  # query 0 sees one pixel; query 1 none (then attends everywhere)
    with torch.no_grad():
        additive = decoder._attn_mask(masks, (4, 4))
    assert additive.dtype == torch.bfloat16 and additive.shape == (decoder.heads * 1, 2, 16)
    q0 = additive[0, 0]
    assert q0[0] == 0 and torch.isinf(q0[1:]).all()
    assert (additive[:, 1] == 0).all()


def test_normalisation_is_the_releases_rgb_imagenet_one(tiny: torch.nn.Module) -> None:
    """The release's data_preprocessor (massformer_r50_8xb2-90k_mass13k-1024x1024.py): mean
    123.675 / 116.28 / 103.53, std 58.395 / 57.12 / 57.375 on 0..255 RGB (``bgr_to_rgb=True``
    after mmcv's BGR reading): a converted release checkpoint sees its own input statistics
    only with these, in this order."""
    assert tiny.pixel_mean.flatten().tolist() == pytest.approx([123.675, 116.28, 103.53])
    assert tiny.pixel_std.flatten().tolist() == pytest.approx([58.395, 57.12, 57.375])


def test_backbone_weights_that_are_not_finite_are_refused(tmp_path) -> None:  # noqa: ANN001
    """A --backbone-weights file holding a NaN loaded without a word (checkpoints were checked,
    trainer/checkpoint.py) and trained until the first non-finite loss."""
    ref = resnet.resnet18(weights=None)
    state = ref.state_dict()
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    with pytest.raises(
        ValueError, match=f"^{path}: backbone tensor layer2.0.conv1.weight holds NaN values; "
    ):
        create_model("massformer_lite_r18", num_classes=3, backbone_weights=str(path))
