"""Where MaSSFormer inference spends its time and memory, stage by stage, for each mode.

``bench/inference.py`` gives one number per mode; this one splits a single
``trainer.inference.predict_label`` call (the real code path, after a warm-up) into stages:
host resize and copy-in, the backbone, each block of the pixel decoder, the query decoder, and
the post-processing (class maps, upsampling, argmax, copy-out). Forward hooks mark the model's
stages; the host stages are what lies before and after the model's own forward.

* time: wall clock between stage boundaries, with ``torch.cuda.synchronize()`` at every
  boundary (so each kernel is billed to its stage; the total is a little above an unhooked run);
* memory: the peak of ``torch.cuda.memory_allocated`` (CUDA) or of the process's resident
  memory (CPU, Linux) while the stage was open, above the value before the call (the weights
  are in it). Peaks are tracked through nesting: at every boundary the peak since the last one
  is folded into every open stage, then reset. On the CPU the model runs in fp32 (no
  autocast) and its CPU kernels, so CPU peaks show where memory goes, not CUDA's figures.

    python bench/inference_stages.py                                  # GPU: 4032x3024 at 4096x3072
    python bench/inference_stages.py --device cpu --image 1024x768 --test-size 512x384
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.inference import (  # noqa: E402
    _rss_mb,
    add_device_and_sizes,
    model_and_input,
    modes_arg,
    parse_wh,
    resolve_device_and_sizes,
)
from trainer.inference import MODES, predict_label  # noqa: E402

PIXEL_DECODER_BLOCKS = ("context", "cst", "rfb", "lse", "edge_head", "edge_refine", "mask_proj")
CPU_IMAGE = "1024x768"  # the default image on the CPU (at 512x384)
HOST = "host: resize, copy in, post-processing"  # the call minus the model's forward


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024


def reset_rss_peak() -> bool:
    """Reset this process's peak resident memory (VmHWM): Linux does when 5 is written to
    /proc/self/clear_refs. False where that cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class CudaMeter:
    """``torch.cuda`` allocated bytes; taking the peak synchronises, so each kernel's time is
    billed to the stage it ran in."""

    def used(self) -> int:
        return torch.cuda.memory_allocated()

    def take_peak(self) -> int:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        return peak


class RssMeter:
    """The process's resident memory (Linux; VmHWM, reset through /proc/self/clear_refs):
    tensors this large are mmap-ed by malloc and given back when freed, so resident memory
    follows them."""

    def used(self) -> int:
        return int(_rss_mb() * 2**20)

    def take_peak(self) -> int:
        peak = _peak_rss_bytes()
        reset_rss_peak()
        return peak


def meter_for(cuda: bool) -> CudaMeter | RssMeter | None:
    """The memory meter of a run on CUDA or on the CPU; None where the CPU's cannot be read."""
    if cuda:
        return CudaMeter()
    return RssMeter() if reset_rss_peak() else None


class StageClock:
    """Open/close named stages; each closed stage gets seconds and peak MB above ``base``.

    ``meter`` (``used()`` and ``take_peak()``, which also resets the peak) measures memory;
    ``None``: time only, ``peak_mb`` None. At every boundary the peak since the last one is
    folded into every open stage, so nested stages are measured together."""

    def __init__(self, meter) -> None:  # noqa: ANN001 - CudaMeter, RssMeter or alike
        self.meter = meter
        self.open: dict[str, list[float]] = {}  # name -> [t0, peak bytes]
        self.done: dict[str, dict[str, float | None]] = {}
        self.base = 0

    def used(self) -> int:
        return self.meter.used() if self.meter else 0

    def _tick(self) -> float:
        peak = self.meter.take_peak() if self.meter else 0
        for state in self.open.values():
            state[1] = max(state[1], peak)
        return time.perf_counter()

    def start(self, name: str) -> None:
        now = self._tick()
        self.open[name] = [now, self.used()]

    def stop(self, name: str) -> None:
        now = self._tick()
        t0, peak = self.open.pop(name)
        mb = (peak - self.base) / 2**20 if self.meter else None
        self.done[name] = {"seconds": now - t0, "peak_mb": mb}


def stage_modules(model: torch.nn.Module) -> list[tuple[torch.nn.Module, str]]:
    """The model's stages in the table's order and names; a pixel decoder block is indented
    under it."""
    return [
        (model, "model forward"),
        (model.backbone, "backbone"),
        (model.pixel_decoder, "pixel decoder"),
        *[(getattr(model.pixel_decoder, b), f"  {b}") for b in PIXEL_DECODER_BLOCKS],
        (model.decoder, "query decoder"),
    ]


def hook(clock: StageClock, model: torch.nn.Module) -> list[str]:
    """Open and close a stage of ``clock`` around each of :func:`stage_modules`; their names."""
    named = stage_modules(model)
    for module, name in named:
        module.register_forward_pre_hook(lambda *_, name=name: clock.start(name))
        module.register_forward_hook(lambda *_, name=name: clock.stop(name))
    return [name for _, name in named]


def profile_mode(
    mode: str, device: str, image_wh, test_wh, preset: str, channels_last: bool = False
) -> dict:
    # channels-last weights: the convolutions then produce channels-last maps (an experiment)
    model, image, size = model_and_input(preset, device, image_wh, test_wh, channels_last)
    cuda = device.startswith("cuda")
    predict_label(model, image, size=size, mode=mode)  # warm-up: kernels, allocator, cuDNN
    clock = StageClock(meter_for(cuda))
    names = hook(clock, model)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.synchronize()
    clock.base = clock.used()
    clock.start("whole call")
    predict_label(model, image, size=size, mode=mode)
    clock.stop("whole call")
    whole, fwd = clock.done["whole call"], clock.done["model forward"]
    # host side: resize on the host, copy in (before the forward), then class maps, upsampling,
    # argmax and copy-out (after it); the forward hooks bound both
    host = {"seconds": whole["seconds"] - fwd["seconds"], "peak_mb": None}
    stages = {"whole call": whole, HOST: host, **{n: clock.done[n] for n in names}}
    return {"mode": mode, "stages": stages}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_device_and_sizes(p, CPU_IMAGE)
    p.add_argument("--preset", default="massformer_r50")
    p.add_argument(
        "--modes", type=modes_arg, default=list(MODES), help=f"comma list of {', '.join(MODES)}"
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="weights in channels-last memory format (an experiment: cuDNN's bf16 kernels "
        "may copy NCHW maps to NHWC inside themselves)",
    )
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args()
    device = resolve_device_and_sizes(args, CPU_IMAGE)
    gpu = device.startswith("cuda")
    image, test = parse_wh(args.image), parse_wh(args.test_size)
    modes = args.modes
    name = torch.cuda.get_device_name() if gpu else "CPU"
    runs = []
    for mode in modes:
        runs.append(profile_mode(mode, device, image, test, args.preset, args.channels_last))
        if gpu:
            torch.cuda.empty_cache()
    layout = ", channels-last weights" if args.channels_last else ""
    print(f"device: {name}; {args.preset}, {image[0]}x{image[1]} at {test[0]}x{test[1]}{layout}")
    print("time in ms (peak MB above the value before the call, while the stage ran)")
    header = f"{'stage':<44}" + "".join(f"{m:>24}" for m in modes)
    print(header)
    for stage in runs[0]["stages"]:
        cells = []
        for run in runs:
            s = run["stages"][stage]
            mb = "" if s["peak_mb"] is None else f" ({s['peak_mb']:.0f} MB)"
            cells.append(f"{s['seconds'] * 1000:.1f}{mb}")
        print(f"{stage[:44]:<44}" + "".join(f"{c:>24}" for c in cells))
    if args.json:
        report = {"device": name, "preset": args.preset, "image": image, "test": test,
                  "channels_last": args.channels_last, "runs": runs}  # fmt: skip
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
