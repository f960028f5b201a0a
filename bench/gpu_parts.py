"""The parts of ``bench/gpu.py``: each measures one group of DESIGN.md section 7 figures and
returns table rows. Every part runs in its own process (``bench/gpu.py --part NAME``), so a
crash, an out-of-memory or a hang costs only that part's rows.

The library calls the parts depend on are wrapped in the "adapters" section below, in one
place, so that API changes on other branches (inference modes, labeling backends) are fixed
here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_images  # noqa: E402

Row = dict[str, Any]  # {"part", "figure", "value", "target", "ok", "raw"}


@dataclass(frozen=True)
class Sizes:
    """Every size the parts use: the real ones (GPU) or toy ones (``--small``, CPU)."""

    label_images: int  # JPEGs labelled by both pipelines
    label_wh: tuple[int, int]  # their width x height
    label_boxes: int  # boxes kept per image (random detectors give arbitrary boxes)
    label_batch: int  # the engine's batch size
    real_labeler: bool  # Swin-B Grounding DINO + SAM ViT-H; False: labeler.testing's tiny models
    infer_preset: str  # MaSSFormer preset of the inference part
    infer_image: tuple[int, int]  # input image width x height
    infer_test: tuple[int, int]  # test resolution width x height
    infer_big: tuple[int, int]  # the "does 64 MP fit" image
    infer_repeats: int  # timed runs after the warm-up (fastest kept)
    train_preset: str  # MaSSFormer preset of the training parts
    train_image: tuple[int, int]  # synthetic training images, width x height
    train_crop: int  # square crop
    train_batch: int  # images per step
    train_steps: int  # steps run (the first log_every are warm-up)
    train_workers: int  # DataLoader workers
    ddp_crop: int  # crop of the DDP steps
    ddp_steps: int  # DDP optimizer steps
    metrics_wh: tuple[int, int]  # label map pair width x height
    metrics_repeats: int  # timed runs (fastest kept)


GPU_SIZES = Sizes(
    label_images=8, label_wh=(4032, 3024), label_boxes=16, label_batch=4, real_labeler=True,
    infer_preset="massformer_r50", infer_image=(4032, 3024), infer_test=(4096, 3072),
    infer_big=(9248, 6936), infer_repeats=3,
    train_preset="massformer_r50", train_image=(1536, 1152), train_crop=1024, train_batch=4,
    train_steps=12, train_workers=6, ddp_crop=512, ddp_steps=4,
    metrics_wh=(4032, 3024), metrics_repeats=5,
)  # fmt: skip
SMALL_SIZES = Sizes(
    label_images=3, label_wh=(160, 120), label_boxes=3, label_batch=2, real_labeler=False,
    infer_preset="tiny", infer_image=(160, 120), infer_test=(128, 96), infer_big=(320, 240),
    infer_repeats=1,
    train_preset="tiny", train_image=(128, 96), train_crop=64, train_batch=2, train_steps=4,
    train_workers=0, ddp_crop=64, ddp_steps=2, metrics_wh=(400, 300), metrics_repeats=1,
)  # fmt: skip
NUM_CLASSES = 8  # MaSS13K's 7 classes + one new class


# ---- adapters: today's library APIs, in one place -------------------------------------------
def inference_modes() -> tuple[str, ...]:
    """MaSSFormer inference modes (``predict --mode``)."""
    from trainer.inference import MODES

    return tuple(MODES)


def labeler_models(sizes: Sizes, device: str, tmp: Path):
    """``(detector, segmenter)`` LoadedModels with random weights: Grounding DINO Swin-B +
    SAM ViT-H at their real input sizes (800 px short side, 1024 px), or the tiny test models
    saved and loaded back through the library's loaders."""
    from bench.labeler import build_models

    if sizes.real_labeler:
        return build_models(800, 1024, device, swin="base", sam_vit="vit_h")
    from labeler.models import load_detector, load_segmenter

    det_dir, sam_dir = tiny_model_dirs(tmp)
    return load_detector(str(det_dir), device=device), load_segmenter(str(sam_dir), device=device)


def tiny_model_dirs(tmp: Path) -> tuple[Path, Path]:
    from labeler.testing import save_tiny_detector, save_tiny_segmenter

    return save_tiny_detector(tmp / "tiny-det"), save_tiny_segmenter(tmp / "tiny-sam")


def sam3_backend_name() -> str | None:
    """The registered SAM 3 labeling backend's name, if any branch has added one."""
    from labeler.backends import BACKENDS, LAZY_BACKENDS

    names = sorted(
        n for n in set(BACKENDS) | set(LAZY_BACKENDS) if "sam3" in n.replace("-", "").lower()
    )
    return names[0] if names else None


def sam3_backend(cfg, sizes: Sizes, device: str, tmp: Path):
    """A ready SAM 3 backend with random weights, written against issue 12's interface
    (``labeler.sam3.Sam3Backend``, ``LabelConfig.model``): at real size the architecture of
    ``Sam3Config()`` at its 1008 px input (``bench/labeler_backends.build_sam3``); at
    ``--small`` the tiny test checkpoint loaded through the backend's own ``load``."""
    import dataclasses

    from labeler.backends import create_backend

    if not sizes.real_labeler:
        from labeler.testing_sam3 import save_tiny_sam3

        cfg = dataclasses.replace(cfg, model=str(save_tiny_sam3(tmp / "tiny-sam3")))
        return cfg, None
    from bench.labeler_backends import build_sam3

    backend = create_backend(cfg.backend, cfg, 7)
    backend.setup(build_sam3(1008, device), device)
    backend.load = lambda: {"bench": "Sam3Config() random"}
    return cfg, backend


def train_config(
    data: Path, out: Path, device: str, sizes: Sizes, amp: bool, crop: int, steps: int, batch: int
):
    from trainer.config import load_config

    return load_config(
        None,
        data=str(data),
        out=str(out),
        preset=sizes.train_preset,
        backbone_weights="none",
        iters=steps,
        batch_size=batch,
        val_split="",
        num_workers=sizes.train_workers,
        device=device,
        progress=False,
        amp=amp,
        log_every=max(1, steps // 3),
        checkpoint_every=10**6,
        max_steps_this_run=0,
        augment={"crop": crop, "short_side_range": [crop, crop * 3 // 2]},
    )


def label_config(tmp: Path, name: str, det: Path, sam: Path, device: str):
    from labeler.config import ClassSpec, LabelConfig

    cls = ClassSpec("Bicycle", prompts=("bicycle",), box_threshold=0.3, text_threshold=0.25)
    # batch 1 in both runs: each image's computation is then the same whatever its shard
    return LabelConfig(
        data=str(tmp / "ldata"),
        cls=cls,
        out=str(tmp / name),
        detector=str(det),
        segmenter=str(sam),
        batch_size=1,
        workers=1,
        device=device,
        progress=False,
        local_files_only=True,
    )


# ---- helpers ------------------------------------------------------------------------------------
def row(
    part: str, figure: str, value: Any, target: str = "", ok: bool | None = None, raw=None
) -> Row:
    return {"part": part, "figure": figure, "value": value, "target": target, "ok": ok, "raw": raw}


_T0 = time.perf_counter()


def step(part: str, what: str) -> None:
    """One progress line in the part's log: a part that times out is a row naming the last
    step it reached (its log's last line), not "no output"."""
    print(f"[{part} {time.perf_counter() - _T0:.1f} s] {what}", flush=True)


def judged(small: bool, ok: bool) -> bool | None:
    """Speed and memory figures are judged only at real sizes on the GPU."""
    return None if small else bool(ok)


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mb(device: str) -> float:
    """Peak GPU memory allocated since the last reset, or (CPU) the process's peak RSS."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mem_label(device: str) -> str:
    return "peak GPU MB" if device.startswith("cuda") else "peak host RSS MB"


def class_iou(dir_a: Path, dir_b: Path, cls: int = 1) -> tuple[float, float, int]:
    """Over the label PNGs of ``dir_a`` with a namesake in ``dir_b``: IoU of pixels == ``cls``,
    fraction of identical pixels, and number of files compared."""
    from annotations.labelmap import read_label

    inter = union = same = total = n = 0
    for p in sorted(dir_a.glob("*.png")):
        a, b = read_label(p), read_label(dir_b / p.name)
        inter += int(np.count_nonzero((a == cls) & (b == cls)))
        union += int(np.count_nonzero((a == cls) | (b == cls)))
        same += int(np.count_nonzero(a == b))
        total += a.size
        n += 1
    return (inter / union if union else 1.0), (same / total if total else 1.0), n


# ---- labeling -----------------------------------------------------------------------------------
def stage_row(part: str, figure: str, stage_s: dict[str, float], images: int) -> Row:
    """``{stage: seconds}`` over ``images`` -> a row of seconds per image by stage: "decode
    0.09, detect 1.89, ..." as its value, the dict as its raw figure."""
    per_image = {k: v / max(images, 1) for k, v in stage_s.items()}
    text = ", ".join(f"{k} {v:.2f}" for k, v in per_image.items())
    return row(part, figure, text, raw=per_image)


def part_labeling(device: str, sizes: Sizes, small: bool, tmp: Path) -> list[Row]:
    """Engine (batched, autocast, overlapped) vs the per-image fp32 demo loop, same images and
    models; peak memory of each; fp32 vs engine-precision labels (mask IoU); SAM 3 if present."""
    from bench import labeler as bench_labeler

    bench_labeler._imports()  # that benchmark imports the engine late (its memory child)
    baseline, make_backend = bench_labeler.baseline, bench_labeler.make_backend
    from engine.datasets import load_image
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import run_labeling

    w, h = sizes.label_wh
    step("labeling", f"writing {sizes.label_images} images {w}x{h}")
    paths = write_images(tmp / "data" / "images" / "train", sizes.label_images, w, h)
    step("labeling", "building the detector and the segmenter")
    t0 = time.perf_counter()
    det, sam = labeler_models(sizes, device, tmp)
    build_s = time.perf_counter() - t0
    reset_peak(device)
    models_mb = peak_mb(device)
    cls = ClassSpec("Bicycle", prompts=("bicycle", "bike"), box_threshold=0.0, text_threshold=0.0)
    common = dict(data=str(tmp / "data"), cls=cls, device=device, progress=False, tiles=(2, 2))
    base_cfg = LabelConfig(
        out=str(tmp / "base"), batch_size=1, workers=1, precision="fp32", **common
    )
    eng_cfg = LabelConfig(out=str(tmp / "engine"), batch_size=sizes.label_batch, **common)
    wb = make_backend(base_cfg, det, sam, sizes.label_boxes)
    step("labeling", "per-image pipeline: warm-up")
    first = [load_image(paths[0])]
    wb.segment(first, wb.detect(first))  # warm-up, not timed
    step("labeling", "per-image pipeline: timed run")
    reset_peak(device)
    base = baseline(base_cfg, wb, paths, tmp / "base")
    base_mb = peak_mb(device)
    reset_peak(device)
    eb = make_backend(eng_cfg, det, sam, sizes.label_boxes)
    # the engine's precision and batch shapes get their warm-up too
    step("labeling", "engine: warm-up")
    warm = [load_image(q) for q in paths[: sizes.label_batch]]
    eb.segment(warm, eb.detect(warm))
    del warm
    reset_peak(device)
    step("labeling", "engine: timed run")
    s = run_labeling(eng_cfg, backend=eb)
    eng_mb = peak_mb(device)
    if s.failed:
        raise RuntimeError(f"engine labeling failed: {s.failed[0]}")
    eng_ips = s.labelled / s.wall_seconds
    speedup = eng_ips / base["images_per_s"]
    # the same engine run with twice the writer threads: does writing hold the engine back?
    writers = 2 * eng_cfg.writers
    step("labeling", f"engine with {writers} writer threads: timed run")
    more = run_labeling(
        dataclasses.replace(eng_cfg, out=str(tmp / "engine-writers"), writers=writers),
        backend=eb,
    )
    if more.failed:
        raise RuntimeError(f"engine labeling failed: {more.failed[0]}")
    iou, same, n = class_iou(tmp / "base" / "labels" / "train", tmp / "engine" / "labels" / "train")
    p = "labeling"
    arch = "GDINO Swin-B + SAM ViT-H" if sizes.real_labeler else "tiny GDINO + tiny SAM"
    prec = eb.dtype and str(eb.dtype).replace("torch.", "") or "fp32"
    note = f"{sizes.label_images} x {w}x{h}, tiles 2x2, {sizes.label_boxes} boxes/img, {arch}"
    rows = [
        row(p, f"per-image fp32 pipeline, img/s ({note})", f"{base['images_per_s']:.3f}"),
        row(p, f"engine batch {sizes.label_batch} {prec}, overlapped, img/s", f"{eng_ips:.3f}"),
        row(
            p,
            "engine speed-up over per-image",
            f"{speedup:.2f}x",
            ">= 3x (same GPU)",
            judged(small, speedup >= 3),
            speedup,
        ),
        row(
            p,
            f"per-image pipeline {mem_label(device)} (models alone {models_mb:.0f})",
            f"{base_mb:.0f}",
        ),
        row(p, f"engine {mem_label(device)} (models alone {models_mb:.0f})", f"{eng_mb:.0f}"),
        row(
            p,
            f"labels fp32 vs {prec}: mask IoU (identical pixels)",
            f"{iou:.4f} ({same:.4%})",
            "report (random weights)",
            None,
            iou,
        ),
        row(
            p,
            f"engine with {writers} writer threads (not {eng_cfg.writers}), img/s",
            f"{more.labelled / more.wall_seconds:.3f}",
        ),
        row(p, "model build s (random init on device)", f"{build_s:.1f}"),
        stage_row(p, "per-image pipeline, s/img by stage", base["stage_s"], sizes.label_images),
        stage_row(
            p,
            "engine, s/img by stage (decode, merge and write run in threads beside the models; "
            "wait: the model thread idle)",
            s.stage_seconds,
            s.labelled,
        ),
    ]
    if n != sizes.label_images:
        rows.append(row(p, "label files compared", n, str(sizes.label_images), False))
    return rows


def part_sam3(device: str, sizes: Sizes, small: bool, tmp: Path) -> list[Row]:
    """The SAM 3 backend on the labeling part's images, when a branch has registered one."""
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import run_labeling

    name = sam3_backend_name()
    if name is None:
        return [row("sam3", "SAM 3 backend", "not available (not in labeler.backends)")]
    w, h = sizes.label_wh
    step("sam3", f"writing {sizes.label_images} images {w}x{h}")
    write_images(tmp / "data" / "images" / "train", sizes.label_images, w, h)
    cls = ClassSpec("Bicycle", prompts=("bicycle",), box_threshold=0.0, text_threshold=0.0)
    cfg = LabelConfig(
        data=str(tmp / "data"),
        cls=cls,
        out=str(tmp / "sam3-run"),
        backend=name,
        batch_size=sizes.label_batch,
        device=device,
        progress=False,
        tiles=(2, 2),
        # the labeling part's 16 boxes: with random weights and threshold 0 every query is kept
        # (200 per crop), each a mask over most of the photo; on an H200 8 images took > 75 s
        max_boxes=sizes.label_boxes,
        local_files_only=True,
    )
    step("sam3", "building the model")
    cfg, backend = sam3_backend(cfg, sizes, device, tmp)
    reset_peak(device)
    step("sam3", "labeling")
    s = run_labeling(cfg, backend=backend)
    if s.failed:
        raise RuntimeError(f"SAM 3 labeling failed: {s.failed[0]}")
    what = f"{sizes.label_images} x {w}x{h}, tiles 2x2, {sizes.label_boxes} masks/crop"
    return [
        row(
            "sam3", f"SAM 3 backend {name!r} ({what}), img/s", f"{s.labelled / s.wall_seconds:.3f}"
        ),
        row("sam3", f"SAM 3 {mem_label(device)}", f"{peak_mb(device):.0f}"),
    ]


# ---- MaSSFormer inference -----------------------------------------------------------------------
def part_inference(device: str, sizes: Sizes, small: bool, tmp: Path) -> list[Row]:
    """Seconds per image after warm-up and peak memory per inference mode; the big image."""
    import torch

    from bench.inference import run_mode

    p, rows, res = "inference", [], {}
    iw, ih = sizes.infer_image
    tw, th = sizes.infer_test
    for mode in inference_modes():
        r = run_mode(
            mode,
            device,
            sizes.infer_image,
            sizes.infer_test,
            sizes.infer_repeats,
            sizes.infer_preset,
        )
        res[mode] = r
        s = f"{r['seconds']:.3f}" if r["seconds"] else "out of memory"
        rows.append(row(p, f"{sizes.infer_preset} {iw}x{ih} at {tw}x{th}, {mode}: s/img", s))
        # CPU: ru_maxrss is one high-water mark for the process, not comparable across modes
        cpu_note = (
            "" if device.startswith("cuda") else " (CPU: growth of one shared high-water mark)"
        )
        rows.append(row(p, f"{mode}: {mem_label(device)}{cpu_note}", f"{r['peak_mb']:.0f}"))
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    eff, full = res.get("efficient"), res.get("full")
    if eff and full and eff["seconds"]:
        speed = full["seconds"] / eff["seconds"] if full["seconds"] else float("inf")
        mem = eff["peak_mb"] / full["peak_mb"]
        rows.append(
            row(
                p,
                "efficient vs full: speed-up",
                f"{speed:.2f}x",
                ">= 2x",
                judged(small, speed >= 2),
                speed,
            )
        )
        rows.append(
            row(
                p,
                "efficient vs full: peak memory",
                f"{mem:.2f}x",
                "<= 0.33x",
                judged(small, mem <= 1 / 3),
                mem,
            )
        )
    bw, bh = sizes.infer_big
    for mode in inference_modes():
        # as the published test pipeline: the model runs at the test size, the labels come out
        # at the image's full size (where the published code runs out of memory)
        r = run_mode(mode, device, sizes.infer_big, sizes.infer_test, 1, sizes.infer_preset)
        fits = r["fits"] and r["seconds"] is not None
        value = f"fits, {r['seconds']:.2f} s, {r['peak_mb']:.0f} MB" if fits else "out of memory"
        target = "runs" if mode == "efficient" else "(reference: OOM in published code)"
        rows.append(
            row(
                p,
                f"{bw}x{bh} ({bw * bh / 1e6:.1f} MP) image, labels at full size, {mode}",
                value,
                target,
                (fits if mode == "efficient" else None),
            )
        )
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


# ---- metrics' torch path ------------------------------------------------------------------------
def part_metrics(device: str, sizes: Sizes, small: bool, tmp: Path) -> list[Row]:
    """Counts of the torch path on ``device`` vs the CPU (OpenCV) path on the same pairs, and
    time per pair of each."""
    import torch

    from bench.metrics import make_pair
    from engine.metrics import pair_counts
    from engine.metrics.evaluator import JSON_COUNTS
    from engine.metrics.torch_counts import pair_counts_torch

    w, h = sizes.metrics_wh
    rng = np.random.default_rng(0)
    pred, gt = make_pair(rng, h, w, NUM_CLASSES)
    cuda = device.startswith("cuda")

    def timed(fn) -> tuple[Any, float]:
        best, out = float("inf"), None
        for _ in range(sizes.metrics_repeats):
            t = time.perf_counter()
            out = fn()
            if cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        return out, best

    pair_counts_torch(pred, gt, NUM_CLASSES, device)  # warm-up (CUDA context, kernels)
    got, t_dev = timed(lambda: pair_counts_torch(pred, gt, NUM_CLASSES, device))
    want, t_cpu = timed(lambda: pair_counts(pred, gt, NUM_CLASSES))
    differ = [f for f in JSON_COUNTS if not np.array_equal(getattr(got, f), getattr(want, f))]
    p = "metrics"
    return [
        row(
            p,
            f"torch path on {device}: counts vs CPU path ({w}x{h}, {NUM_CLASSES} classes)",
            "identical" if not differ else f"differ: {', '.join(differ)}",
            "identical",
            not differ,
        ),
        row(
            p,
            f"torch path on {device}: s/pair (3 metrics)",
            f"{t_dev:.4f}",
            "<= 0.2 s",
            judged(small, t_dev <= 0.2),
            t_dev,
        ),
        row(p, "CPU (OpenCV) path, same run: s/pair", f"{t_cpu:.4f}", "", None, t_cpu),
    ]
