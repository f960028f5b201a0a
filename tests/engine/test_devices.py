"""What the engine computes in on GPUs other than the H100/H200 it was measured on, simulated:
a T4 or V100 (compute capability 7.x) has no native bf16."""

from __future__ import annotations

import pytest
import torch

from engine.devices import bf16_autocast, native_bf16


@pytest.fixture
def gpu(monkeypatch):
    """A simulated CUDA machine whose GPU has the compute capability set on the returned dict;
    ``torch.cuda.is_bf16_supported`` answers as torch's source does: True at 8.0 and later, and
    also below it unless ``including_emulation=False`` (a bf16 tensor can be made on a T4)."""
    machine = {"capability": (7, 5)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(
        torch.cuda, "get_device_capability", lambda device=None: machine["capability"]
    )

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return machine["capability"][0] >= 8 or including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    return machine


@pytest.mark.parametrize(("capability", "native"), [((7, 0), False), ((7, 5), False),
                                                     ((8, 0), True), ((9, 0), True)])  # fmt: skip
def test_native_bf16_from_the_compute_capability(gpu, capability, native):
    gpu["capability"] = capability
    assert native_bf16(torch.device("cuda:0")) is native
    assert bf16_autocast(True, torch.device("cuda:0")) is native
    assert bf16_autocast(False, torch.device("cuda:0")) is False
    assert bf16_autocast(True, torch.device("cpu")) is False


def test_no_cuda_is_no_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_bf16() is False and bf16_autocast(True, torch.device("cpu")) is False


@pytest.mark.parametrize(("capability", "dtype"), [((7, 5), torch.float16),
                                                   ((8, 6), torch.bfloat16)])  # fmt: skip
def test_label_precision_auto_is_fp16_on_a_t4(gpu, capability, dtype):
    """docs/labeler.md: --precision auto is bf16, else fp16. On a T4 it was bf16: torch's
    is_bf16_supported() counts emulated bf16, which is slower there than fp32."""
    from labeler.models import autocast_name, resolve_dtype

    gpu["capability"] = capability
    assert resolve_dtype("auto", "cuda") is dtype
    assert autocast_name("auto", "auto") == str(dtype).replace("torch.", "")


def test_the_given_gpu_decides_on_a_machine_of_two_kinds(gpu, monkeypatch):
    """A T4 as cuda:0 beside an A100 as cuda:1: --device cuda:1 labels in bf16 and cuda:0 in
    fp16 (the capability of the device given, not of the current one); prediction and training
    likewise (bf16_autocast of their device)."""
    from labeler.models import resolve_dtype

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    kinds = {0: (7, 5), 1: (8, 0)}

    def capability(device=None):
        index = 0 if device is None else torch.device(device).index or 0
        return kinds[index]

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    assert resolve_dtype("auto", "cuda:0") is torch.float16
    assert resolve_dtype("auto", "cuda:1") is torch.bfloat16
    assert bf16_autocast(True, torch.device("cuda:1")) is True
    assert bf16_autocast(True, torch.device("cuda:0")) is False


def test_a_gpu_named_by_index_under_torchrun_with_several_local_ranks_is_refused(
    gpu, monkeypatch, tmp_path
):
    """Under torchrun every local rank trains on cuda:LOCAL_RANK; ``--device cuda:1`` put every
    rank of the machine on one GPU (NCCL's "Duplicate GPU detected" at the first collective).
    Prediction takes the index as given (a script sharding images over GPUs)."""
    from trainer.config import TrainConfig
    from trainer.train import train

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    cfg = TrainConfig(data="unused", out=str(tmp_path / "run"), device="cuda:1")
    with pytest.raises(ValueError) as e:
        train(cfg)
    assert str(e.value) == (
        "--device cuda:1: this process is one of 2 torchrun processes on this machine, and each "
        "trains on the GPU of its local rank: give --device cuda (or auto), and choose the GPUs "
        "with CUDA_VISIBLE_DEVICES"
    )
    assert not (tmp_path / "run").exists()
    # prediction under torchrun (a script sharding images over GPUs) takes the index as given
    from trainer.train import resolve_device

    assert resolve_device("cuda:1", 1) == torch.device("cuda:1")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOCAL_RANK": "x"}, "environment variable LOCAL_RANK='x': not a whole number"),
        ({"LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "four"}, "environment variable LOCAL_WORLD_SIZE"),
        ({"LOCAL_WORLD_SIZE": "0"}, "environment variable LOCAL_WORLD_SIZE='0': must be >= 1"),
    ],
)
def test_local_rank_variables_that_are_no_numbers_are_one_line(monkeypatch, env, message):
    """check_local_rank passed over text that was no whole number (``.isdigit()``), and took
    cuda:0 for a LOCAL_RANK=x; now env_int's line, as the trainer's."""
    from engine.devices import check_local_rank

    for name in ("LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as e:
        check_local_rank(2, "--device cuda")
    assert str(e.value).startswith(message)


def test_a_local_world_size_that_is_no_number_is_said_with_a_gpu_by_index(monkeypatch):
    """check_gpu_per_rank passed over LOCAL_WORLD_SIZE=two, and every rank took cuda:1."""
    from trainer.train import check_gpu_per_rank

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "two")
    with pytest.raises(ValueError) as e:
        check_gpu_per_rank("cuda:1")
    assert str(e.value) == (
        "environment variable LOCAL_WORLD_SIZE='two': not a whole number (torchrun sets it; "
        "unset it to run one process)"
    )
