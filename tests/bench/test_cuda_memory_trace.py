"""bench/cuda_memory_trace.py: the replay of an allocator trace and the naming of its blocks
(synthetic traces: the recorder itself needs a GPU)."""

from __future__ import annotations

import pytest
import torch

from bench.cuda_memory_trace import MB, ROOT, group, live_at_peak, made_by, main, origin


def alloc(addr: int, mb: int, frames: list[dict] | None = None) -> dict:
    return {"action": "alloc", "addr": addr, "size": mb * MB, "frames": frames or []}


def free(addr: int, action: str = "free_requested") -> dict:
    return {"action": action, "addr": addr, "size": 0}


def test_replay_finds_the_first_peak_and_what_is_alive_then() -> None:
    trace = [
        alloc(1, 100),
        alloc(2, 50),  # 150
        free(1),
        free(1, "free_completed"),  # completes an earlier request: counted once
        alloc(3, 120),  # 170: the peak
        {"action": "segment_alloc", "addr": 9, "size": 999 * MB},  # reserved, not allocated
        free(2),
        alloc(1, 170),  # 120 + 170 = 290: a higher peak
        free(1),
        free(3),
        alloc(4, 10),
    ]
    peak, alive = live_at_peak(trace)
    assert peak == 290 * MB
    assert [(e["addr"], e["size"] // MB) for e in alive] == [(1, 170), (3, 120)]
    peak, alive = live_at_peak(trace[:7])
    assert peak == 170 * MB and [e["addr"] for e in alive] == [3, 2]
    assert live_at_peak([]) == (0, [])


def test_blocks_are_named_by_our_innermost_line_and_the_cpp_frames_below_the_allocator() -> None:
    ours = str(ROOT / "trainer" / "models" / "layers.py")
    frames = [
        {"filename": "", "line": 0, "name": "torch::CapturedTraceback::gather(bool, bool, bool)"},
        {"filename": "CUDACachingAllocator.cpp", "line": 0, "name": "c10::cuda::CUDACachingAllocator::malloc"},
        {"filename": "", "line": 0, "name": "at::native::empty_cuda"},
        {"filename": "Conv_v8.cpp", "line": 0, "name": "at::native::cudnn_convolution_forward"},
        {"filename": "", "line": 0, "name": "at::native::cudnn_convolution"},
        {"filename": "/usr/lib/python3/torch/nn/modules/conv.py", "line": 548, "name": "_conv_forward"},
        {"filename": ours, "line": 123, "name": "forward"},
        {"filename": str(ROOT / "trainer" / "inference.py"), "line": 200, "name": "predict_scores"},
        {"filename": "ceval.c", "line": 0, "name": "_PyEval_EvalFrameDefault"},  # the interpreter
    ]  # fmt: skip
    assert origin(frames) == "trainer/models/layers.py:123 forward"
    assert made_by(frames) == [
        "at::native::cudnn_convolution_forward",
        "at::native::cudnn_convolution",
    ]
    # no frame of ours: the innermost Python frame; no Python frame at all: "?"
    assert origin(frames[:6]) == "conv.py:548 _conv_forward"
    assert origin(frames[:5]) == "?" and made_by([]) == []
    rows = group([alloc(1, 30, frames), alloc(2, 10, frames), alloc(3, 50, frames[5:])])
    assert [(r["origin"], r["blocks"], r["mb"], r["largest_mb"]) for r in rows] == [
        ("trainer/models/layers.py:123 forward", 1, 50, 50),  # frames[5:] has no C++ frame
        ("trainer/models/layers.py:123 forward", 2, 40, 30),
    ]
    assert rows[1]["made_by"][0] == "at::native::cudnn_convolution_forward"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU path runs in bench/gpu_session.sh")
def test_without_a_gpu_it_is_one_usage_error(capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2 and "needs a CUDA GPU" in capsys.readouterr().err.splitlines()[-1]


def test_bad_mode_is_one_usage_error(capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as e:
        main(["--modes", "fast"])
    assert e.value.code == 2 and "unknown fast" in capsys.readouterr().err.splitlines()[-1]
