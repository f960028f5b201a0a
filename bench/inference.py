"""Benchmark: memory-efficient vs straightforward MaSSFormer inference, same run.

Times ``trainer.inference.predict_label`` on ``massformer_r50`` (random weights; speed and
memory do not depend on them) for both modes, one image of ``--image`` size run at the test
resolution ``--test-size``, and reports the peak memory of each:

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, same process.
* CPU: peak resident memory of a child process per mode (``ru_maxrss``) minus that child's
  resident memory after building the model, so the modes do not share a high-water mark.

``--check-64mp`` then runs each mode on a 9248x6936 (64 MP) image and reports whether it fits
(CUDA out-of-memory is caught; on CPU the full mode is only estimated: 100 query masks x 64 MP
x 4 bytes = 25.6 GB would swap this machine).

    python bench/inference.py                       # GPU if present: 4032x3024 at 4096x3072
    python bench/inference.py --device cpu --image 2016x1512 --test-size 512x384 --check-64mp
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from trainer.inference import MODES, predict_label  # noqa: E402
from trainer.models import create_model  # noqa: E402

NUM_CLASSES = 8  # MaSS13K's 7 classes + one new class


def parse_wh(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(W, H)``; ``ValueError`` on anything else (``size_arg`` checks options)."""
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


CPU_IMAGE = "2016x1512"  # the default image on the CPU (at 512x384): 3 MP labels


def size_arg(text: str) -> str:
    """argparse ``type`` for a ``WxH`` option: the text, checked, so a typo is one usage line."""
    try:
        w, h = parse_wh(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WxH, e.g. 4032x3024") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be positive")
    return text


def modes_arg(text: str) -> list[str]:
    """argparse ``type`` for a comma list of inference modes, checked against
    ``trainer.inference.MODES``, so an unknown one is one usage line."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if unknown := sorted(set(modes) - set(MODES)):
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; known: {', '.join(MODES)}")
    return modes


def _image(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (height // 64 + 1, width // 64 + 1, 3), dtype=np.uint8)
    return np.kron(small, np.ones((64, 64, 1), np.uint8))[:height, :width]  # blocky, not noise


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def model_and_input(
    preset: str, device: str, image_wh, test_wh, channels_last: bool = False
) -> tuple[torch.nn.Module, np.ndarray, tuple[int, int]]:
    """What every inference benchmark calls ``predict_label`` with: the seeded random
    ``preset`` in eval mode on ``device`` (weights in channels-last memory format with
    ``channels_last``), the blocky test image of ``image_wh`` and the long and short side of
    ``test_wh``."""
    torch.manual_seed(0)
    model = create_model(preset, num_classes=NUM_CLASSES).to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, _image(*image_wh), (max(test_wh), min(test_wh))


def add_call_args(p: argparse.ArgumentParser) -> None:
    """``--preset``, ``--image`` and ``--test-size`` at the GPU's sizes (the scripts that model or
    trace one CUDA call, whatever machine they run on)."""
    p.add_argument("--preset", default="massformer_r50")
    p.add_argument("--image", type=size_arg, default="4032x3024", help="WxH labelled")
    p.add_argument("--test-size", type=size_arg, default="4096x3072", help="WxH run")


def run_mode(
    mode: str, device: str, image_wh, test_wh, repeats: int, preset: str = "massformer_r50"
) -> dict:
    """Time one mode in this process; returns seconds per image and peak memory in MB."""
    model, image, size = model_and_input(preset, device, image_wh, test_wh)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _rss_mb()
    times = []
    result = {"mode": mode, "fits": True}
    try:
        predict_label(model, image, size=size, mode=mode)  # warm-up (cuDNN, allocator)
        for _ in range(repeats):
            t = time.perf_counter()
            predict_label(model, image, size=size, mode=mode)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    except torch.cuda.OutOfMemoryError:
        result["fits"] = False
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
        result.update(peak_mb=peak, model_mb=base)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result.update(peak_mb=peak - base, model_mb=base)  # CPU: growth above the loaded model
    result["seconds"] = min(times) if times else None
    return result


def _child(mode: str, args: argparse.Namespace, image: str) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--device", "cpu", "--image", image]
    cmd += ["--test-size", args.test_size, "--repeats", "1"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def add_device_and_sizes(p: argparse.ArgumentParser, cpu_image: str) -> None:
    """``--device``, ``--image`` and ``--test-size`` (both WxH, checked; None: the defaults by
    device, 4032x3024 at 4096x3072 on a GPU, ``cpu_image`` at 512x384 on the CPU)."""
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument(
        "--image",
        type=size_arg,
        default=None,
        help=f"input image WxH (default 4032x3024 GPU, {cpu_image} CPU)",
    )
    p.add_argument(
        "--test-size",
        type=size_arg,
        default=None,
        help="model resolution WxH (default 4096x3072 GPU, 512x384 CPU)",
    )


def resolve_device_and_sizes(args: argparse.Namespace, cpu_image: str) -> str:
    """:func:`add_device_and_sizes`' defaults filled in: ``auto`` -> ``cuda`` where there is a
    GPU, else ``cpu``; ``args.image`` / ``args.test_size`` (WxH text) by that device. Returns
    the device."""
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = device.startswith("cuda")
    args.image = args.image or ("4032x3024" if gpu else cpu_image)
    args.test_size = args.test_size or ("4096x3072" if gpu else "512x384")
    return device


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_device_and_sizes(p, CPU_IMAGE)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--check-64mp", action="store_true", help="also try a 9248x6936 image")
    p.add_argument("--json", default=None, help="write the results here too")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    device = resolve_device_and_sizes(args, CPU_IMAGE)
    gpu = device.startswith("cuda")
    if args.child:
        print(
            json.dumps(
                run_mode(
                    args.child, "cpu", parse_wh(args.image), parse_wh(args.test_size), args.repeats
                )
            )
        )
        return
    name = (
        torch.cuda.get_device_name()
        if gpu
        else f"CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    )
    report = {"device": name, "image": args.image, "test_size": args.test_size, "runs": []}
    images = [args.image] + (["9248x6936"] if args.check_64mp else [])
    for image in images:
        results: dict[str, dict] = {}
        if gpu:
            for mode in ("efficient", "full"):
                results[mode] = run_mode(
                    mode, device, parse_wh(image), parse_wh(args.test_size), args.repeats
                )
                torch.cuda.empty_cache()
        else:
            # CPU timings on a shared machine are noisy: alternate the modes, one child process
            # per run, and keep each mode's fastest run and highest peak.
            for _ in range(args.repeats if image == args.image else 1):
                for mode in ("efficient", "full"):
                    if image == "9248x6936" and mode == "full":
                        results[mode] = {
                            "mode": mode,
                            "fits": None,
                            "seconds": None,
                            "peak_mb": 100 * 9248 * 6936 * 4 / 2**20,
                            "note": "not run on CPU: the Q=100 fp32 full-size masks alone need this",
                        }
                        continue
                    r = _child(mode, args, image)
                    if mode in results:
                        r["seconds"] = min(r["seconds"], results[mode]["seconds"])
                        r["peak_mb"] = max(r["peak_mb"], results[mode]["peak_mb"])
                    results[mode] = r
        for mode in ("efficient", "full"):
            results[mode]["image"] = image
            report["runs"].append(results[mode])
    print(f"device: {name}; model massformer_r50 (K={NUM_CLASSES}) at test size {args.test_size}")
    print(f"{'image':>10} {'mode':>9} {'s/image':>8} {'peak MB':>9} fits")
    for r in report["runs"]:
        s = f"{r['seconds']:.2f}" if r["seconds"] else "-"
        print(f"{r['image']:>10} {r['mode']:>9} {s:>8} {r['peak_mb']:>9.0f} {r['fits']}")
    for image in images:
        eff, full = (r for r in report["runs"] if r["image"] == image)
        if eff["seconds"] and full["seconds"]:
            print(
                f"{image}: efficient is {full['seconds'] / eff['seconds']:.2f}x faster, "
                f"{eff['peak_mb'] / full['peak_mb']:.2f}x the peak memory of full"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
