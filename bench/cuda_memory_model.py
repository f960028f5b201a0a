"""CUDA memory of inference, predicted without a GPU.

The model runs on *fake* CUDA tensors (``torch._subclasses.FakeTensorMode``: shapes, dtypes
and devices, no data), with CUDA's bf16 autocast switched on as ``predict_scores`` does on a
GPU (autocast's dtype rules are the same C++ code with or without a GPU). A dispatch mode adds
up the bytes of every tensor storage the call creates and subtracts them when the last tensor
on a storage dies; ``bench/inference_stages.py``'s stage clock folds its peaks into stages.
It runs ``massformer_r50`` at 4096x3072 in both modes in about 12 s on a CPU.

What it cannot see: the caching allocator's rounding, cuDNN's and cuBLAS' workspaces and
buffers that a kernel allocates inside itself, except torchvision's deformable conv, whose
column buffer and two output-sized buffers are added from their known sizes (the ``full``
mode's whole-map convs). Autocast's float32 rule for ``F.interpolate``, which fake tensors
skip, is applied by :class:`AutocastResize`; the float input on the device is counted, as
the measurement counts it. Calibration (docs/model.md, "The allocator's trace"): against the
H200's stage measurements at 3fbc474 the model gives the whole call exactly in both modes
(``full`` 13,368 MB, ``efficient`` 6,030 against 6,031) and every stage within 48 MB, except
the backbone (96-192 MB), full's query decoder (192) and efficient's RFB in one of two runs.
Since b9b5ada ``efficient`` resizes in bf16 and the model predicts 3,924 MB, 0.29x of
``full`` (not yet measured on a GPU).

    python bench/cuda_memory_model.py                       # massformer_r50, 4096x3072
    python bench/cuda_memory_model.py --test-size 2048x1536 --json out.json
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import sys
import weakref
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from bench.inference import add_call_args, modes_arg, parse_wh  # noqa: E402
from bench.inference_stages import StageClock, hook  # noqa: E402
from trainer.inference import MODES, _full, semantic_inference, upsample_argmax  # noqa: E402
from trainer.models import create_model  # noqa: E402

MB = 2**20


class AutocastResize(TorchFunctionMode):
    """CUDA autocast's float32 rule for ``F.interpolate``, which fake tensors under
    ``inference_mode`` skip: on a GPU the composite ``upsample_*.vec`` op decomposes at the
    CUDA key into the base op, which autocast runs in float32 (the H200's allocator trace
    showed the float32 copy); fake tensors decompose it where autocast no longer applies. So a
    lower-precision input is copied to float32 here, as CUDA does, while autocast is on."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if func is F.interpolate and torch.is_autocast_enabled("cuda"):
            x = args[0]
            if x.is_floating_point() and x.dtype != torch.float32:
                args = (x.float(), *args[1:])
        return func(*args, **(kwargs or {}))


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages of the CUDA tensors created under it that are still referenced;
    ``peak`` is their maximum since the last :meth:`take_peak`. A meter for
    :class:`bench.inference_stages.StageClock`."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._size: dict[int, int] = {}
        self._holders: dict[int, set[int]] = collections.defaultdict(set)

    def used(self) -> int:
        return self.live

    def take_peak(self) -> int:
        peak, self.peak = self.peak, self.live
        return peak

    def _release(self, storage: int, holder: int) -> None:
        holders = self._holders.get(storage)
        if holders is None:
            return
        holders.discard(holder)
        if not holders:
            self.live -= self._size.pop(storage)
            del self._holders[storage]

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()._cdata
        if storage not in self._size:
            self._size[storage] = t.untyped_storage().nbytes()
            self.live += self._size[storage]
            self.peak = max(self.peak, self.live)
        if id(t) not in self._holders[storage]:
            self._holders[storage].add(id(t))
            weakref.finalize(t, self._release, storage, id(t))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.device.type == "cuda":
                self._track(t)
        if func is torch.ops.torchvision.deform_conv2d.default:
            self.peak = max(self.peak, self.live + deform_kernel_bytes(args[0], args[1], out))
        return out


def deform_kernel_bytes(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> int:
    """What torchvision's CUDA ``deform_conv2d`` allocates inside the kernel, where no dispatch
    mode sees it, alive together when it returns ``out + bias`` (the tensor the mode tracks):
    the column buffer ``(C * kh * kw, n * H_out * W_out)`` in the input's dtype, for ``n``
    images at a time, the largest divisor of the batch up to 32 (``kMaxParallelImgs``), and two
    output-sized buffers, ``out`` and ``out_buf`` (the matmuls write into ``out_buf``, which
    is transposed and copied into ``out``) (torchvision/csrc/ops/cuda/deform_conv2d_kernel.cu).
    """
    _, c, kh, kw = weight.shape
    n = next(k for k in range(min(x.shape[0], 32), 0, -1) if x.shape[0] % k == 0)
    columns = c * kh * kw * n * out.shape[2] * out.shape[3] * x.element_size()
    return columns + 2 * out.numel() * out.element_size()


def model_memory(
    preset: str = "massformer_r50",
    test_hw: tuple[int, int] = (3072, 4096),
    out_hw: tuple[int, int] = (3024, 4032),
    mode: str = "efficient",
    classes: int = 8,
) -> dict[str, float]:
    """Peak MB of live tensors per stage of one ``predict_label`` call on a resized image of
    ``test_hw`` labelled at ``out_hw``, above the weights, with the float input on the device
    as ``predict_label`` makes it: ``efficient`` (bf16 autocast; class maps at mask
    resolution, upsampled one at a time) or ``full`` (the release's procedure in fp32; its
    whole-map deformable convs' column buffers added at their kernel's peak)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    with FakeTensorMode():
        with torch.device("cuda"):
            model = create_model(preset, classes).eval()
        mem = LiveBytes()
        clock = StageClock(mem)
        names = hook(clock, model)
        previous = torch.get_autocast_dtype("cuda"), torch.is_autocast_enabled("cuda")
        # torch.autocast("cuda") turns itself off without a GPU; the switches do not
        torch.set_autocast_dtype("cuda", torch.bfloat16)
        try:
            with torch.inference_mode(), mem, AutocastResize():
                clock.start("whole call")
                # predict_label's float copy of the image on the device (trainer.inference.
                # _to_tensor): alive through the call, as the measurement counts it
                images = torch.empty(1, 3, *test_hw, device="cuda")
                try:
                    if mode == "full":
                        _full(model, images, out_hw)
                    else:
                        # predict_scores' two steps (its torch.autocast would switch off)
                        torch.set_autocast_enabled("cuda", True)
                        out = model(images, aux=False)
                        torch.set_autocast_enabled("cuda", False)
                        scores = semantic_inference(out["pred_logits"], out["pred_masks"])
                        del out
                        upsample_argmax(scores, out_hw)
                except RuntimeError as e:  # the labels' copy to numpy: fake tensors hold no data
                    if "numpy" not in str(e):
                        raise
                clock.stop("whole call")
        finally:
            torch.set_autocast_dtype("cuda", previous[0])
            torch.set_autocast_enabled("cuda", previous[1])
    return {n: clock.done[n]["peak_mb"] for n in ("whole call", *names)}


@functools.cache  # the machine and the torch do not change within a process
def fake_cuda_problem() -> str | None:
    """Why this torch cannot run the model on fake CUDA tensors here, or None when it can.
    torch 2.6 (2.14 does not) initialises CUDA on a view of a fake CUDA tensor, which fails
    without a working driver."""
    try:
        with FakeTensorMode():
            torch.empty(4, device="cuda")[:2]
    except RuntimeError as e:
        return (
            f"torch {torch.__version__} cannot make fake CUDA tensors on this machine "
            f"({str(e).splitlines()[0]}); run it where CUDA works, or with a newer torch"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_call_args(parser)
    parser.add_argument("--modes", type=modes_arg, default=list(MODES), help="comma list")
    parser.add_argument("--json", type=Path, help="also write the stages as JSON")
    args = parser.parse_args(argv)
    (w, h), (iw, ih) = parse_wh(args.test_size), parse_wh(args.image)
    problem = fake_cuda_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    modes = args.modes
    runs = {mode: model_memory(args.preset, (h, w), (ih, iw), mode) for mode in modes}
    print(f"{args.preset}, {iw}x{ih} at {w}x{h} (fake CUDA tensors: a model, not a measurement)")
    print("peak MB of live tensors above the weights (the input counted), while the stage ran")
    print(f"{'stage':24s}" + "".join(f"{m:>12s}" for m in modes))
    for name in runs[modes[0]]:
        print(f"{name:24s}" + "".join(f"{runs[m].get(name, 0):12.0f}" for m in modes))
    if args.json:
        record = {"preset": args.preset, "image": [iw, ih], "test": [w, h], "runs": runs}
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
