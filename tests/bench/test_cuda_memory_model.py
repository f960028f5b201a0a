"""bench/cuda_memory_model.py: live-tensor accounting on fake CUDA tensors, no GPU needed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from bench.cuda_memory_model import (
    MB,
    AutocastResize,
    LiveBytes,
    deform_kernel_bytes,
    main,
    model_memory,
)
from tests.model_helpers import needs_fake_cuda


@needs_fake_cuda
def test_live_bytes_follow_storages_not_tensors() -> None:
    with FakeTensorMode():
        mem = LiveBytes()
        with mem:
            a = torch.empty(1024, 1024, device="cuda")  # 4 MB
            view = a[:10]  # shares a's storage: no new bytes
            b = torch.empty(256, 1024, device="cuda", dtype=torch.bfloat16)  # 0.5 MB
            assert mem.live == 4 * MB + MB // 2
            del a
            assert mem.live == 4 * MB + MB // 2  # the view keeps the storage
            del view
            assert mem.live == MB // 2
            del b
            assert mem.live == 0 and mem.peak == 4 * MB + MB // 2


@needs_fake_cuda
def test_model_memory_runs_every_stage_of_both_modes(capsys) -> None:  # noqa: ANN001
    from trainer.models import create_model

    d1 = create_model("tiny", 5).pixel_decoder.mask_proj.conv.out_channels * 48 * 64  # elements
    for mode, size in (("efficient", 2), ("full", 4)):  # bf16 autocast, or the release's fp32
        stages = model_memory("tiny", (96, 128), (90, 120), mode, classes=5)
        for name in ("whole call", "backbone", "  lse", "  mask_proj", "query decoder"):
            assert stages[name] > 0, (mode, name)
        assert stages["whole call"] == max(stages.values())
        assert stages["  mask_proj"] >= d1 * size / MB, mode  # D1 is made there
        assert not torch.is_autocast_enabled("cuda")  # the switches are restored
    assert main(["--preset", "tiny", "--test-size", "128x96", "--image", "120x90"]) == 0
    out = capsys.readouterr().out
    assert "fake CUDA tensors" in out and "efficient" in out and "full" in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--modes", "fast"], "unknown fast; known: efficient, full"),
        (["--test-size", "abc"], "WxH"),
    ],
)
def test_bad_options_are_one_usage_error(argv, says, capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as e:
        main(argv)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and "error:" in last and says in last


def test_torchvisions_hidden_buffers_are_counted() -> None:
    x, w = torch.empty(4, 6, 10, 12), torch.empty(8, 6, 3, 3)
    out = torch.empty(4, 8, 10, 12)
    two_outputs = 2 * 4 * 8 * 10 * 12 * 4  # out and out_buf, beside the returned out + bias
    # batch 4 runs as one group of 4 images: columns (6 * 9, 4 * 10 * 12) float32
    assert deform_kernel_bytes(x, w, out) == 6 * 9 * 4 * 10 * 12 * 4 + two_outputs
    out33 = torch.empty(33, 8, 10, 12)
    assert deform_kernel_bytes(torch.empty(33, 6, 10, 12), w, out33) == (
        6 * 9 * 11 * 120 * 4 + 2 * out33.numel() * 4
    )


def test_cuda_autocasts_float32_resize_is_modelled() -> None:
    # on a GPU, F.interpolate of a bf16 map under autocast copies it to float32 and returns
    # float32 (the H200's allocator trace); fake tensors under inference_mode do not, so the
    # model applies the rule itself, and resize_bilinear (autocast off) stays bf16
    from trainer.models.layers import resize_bilinear

    with FakeTensorMode():
        x = torch.empty(1, 8, 256, 256, device="cuda", dtype=torch.bfloat16)  # 1 MB
        torch.set_autocast_dtype("cuda", torch.bfloat16)
        torch.set_autocast_enabled("cuda", True)
        try:
            for resize, dtype, peak in (
                (lambda t: F.interpolate(t, size=(512, 512), mode="bilinear"), torch.float32, 10),
                (lambda t: resize_bilinear(t, (512, 512)), torch.bfloat16, 4),
            ):
                mem = LiveBytes()
                with torch.inference_mode(), mem, AutocastResize():
                    out = resize(x)
                assert out.dtype == dtype
                assert mem.peak == peak * MB  # float32 copy 2 MB + output 8 MB, or output 4 MB
                del out
        finally:
            torch.set_autocast_enabled("cuda", False)
        with torch.inference_mode(), AutocastResize():  # autocast off: nothing changes
            assert F.interpolate(x, scale_factor=2.0).dtype == torch.bfloat16


def test_a_torch_that_cannot_fake_cuda_is_one_error_line(monkeypatch, capsys) -> None:  # noqa: ANN001
    import bench.cuda_memory_model as cmm

    monkeypatch.setattr(cmm, "fake_cuda_problem", lambda: "torch 2.6.0 cannot make fake CUDA")
    assert main(["--image", "64x48", "--test-size", "64x48"]) == 2
    err = capsys.readouterr().err
    assert err == "error: torch 2.6.0 cannot make fake CUDA\n"
