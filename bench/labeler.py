"""Benchmark the labeling pipeline: batched + overlapped (engine) vs per-image unbatched fp32.

Models are the real architectures built from transformers' default configs with random
weights (no download): Grounding DINO with the Swin-T backbone and BERT-base text encoder
(grounding-dino-tiny's architecture) and SAM ViT-B. Random detectors give arbitrary boxes, so
each image keeps its ``--boxes`` best boxes in both pipelines (the SAM decoder load is equal).

Both pipelines run in the same process on the same images:

* baseline: one image at a time, decode -> detect -> segment -> merge -> write, fp32, no threads
  (the reference Grounded-SAM demo loop);
* engine: ``labeler.run.run_labeling`` with batches of ``--batch-size`` through both models,
  decoding threads, a writer thread, and bf16/fp16 autocast on CUDA.

CPU runs are slow: keep them bounded (defaults: 4 images of 640x480, detector input 256 px
short side, SAM input 256 px). Example::

    OMP_NUM_THREADS=2 python bench/labeler.py --images 4
    python bench/labeler.py --device cuda --images 32 --image-size 4032x3024 --det-size 800 --sam-size 1024
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_name, scratch, write_images  # noqa: E402


def _imports():
    """The engine modules, imported late: the memory child puts another checkout first."""
    global Instances, write_instances, write_label, load_image, ClassSpec, LabelConfig
    global GroundedSamBackend, instances_to_semantic, LoadedModel, resolve_device
    global STAGES, run_labeling
    from annotations.instances import Instances, write_instances
    from annotations.labelmap import write_label
    from engine.datasets import load_image
    from labeler.config import ClassSpec, LabelConfig
    from labeler.grounded_sam import GroundedSamBackend
    from labeler.merge import instances_to_semantic
    from labeler.models import LoadedModel, resolve_device
    from labeler.run import STAGES, run_labeling


# Architectures by name: transformers' defaults are Swin-T (grounding-dino-tiny) and ViT-B;
# "base" / "vit_h" are the sizes of IDEA-Research/grounding-dino-base and facebook/sam-vit-huge.
SWIN = {
    "tiny": {},
    "base": dict(
        embed_dim=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        window_size=12,
        image_size=384,
        out_features=["stage2", "stage3", "stage4"],
    ),
}
SAM_VIT = {
    "vit_b": {},
    "vit_h": dict(
        hidden_size=1280,
        num_hidden_layers=32,
        num_attention_heads=16,
        global_attn_indexes=[7, 15, 23, 31],
    ),
}


def built_on(device: str, model_class, config):
    """``model_class(config)`` in eval mode, initialised on ``device`` (a random ViT-H is slow on
    a CPU) and moved there as well: a parameter made by a legacy constructor (Grounding DINO's
    ``level_embed`` is ``nn.Parameter(torch.Tensor(...))``) ignores the default device."""
    import torch

    with torch.device(device):
        return model_class(config).to(device).eval()


def build_models(
    det_size: int, sam_size: int, device: str, swin: str = "tiny", sam_vit: str = "vit_b"
) -> tuple[LoadedModel, LoadedModel]:
    """Random-weight Grounding DINO (Swin ``swin``, BERT-base text) and SAM (``sam_vit``) built
    directly on ``device``; ``det_size`` is the detector's short side, ``sam_size`` SAM's input."""
    import torch
    from transformers import (
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SamConfig,
        SamModel,
        SwinConfig,
    )

    from labeler.models import LoadedModel
    from labeler.sam_convert import sam_processor
    from labeler.testing import TINY_VOCAB  # BERT's ids for [CLS], [SEP] and "."

    torch.manual_seed(0)
    det_cfg = GroundingDinoConfig(backbone_config=SwinConfig(**SWIN[swin]) if SWIN[swin] else None)
    det = built_on(device, GroundingDinoForObjectDetection, det_cfg)
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(TINY_VOCAB)})
    dproc = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(
            size={"shortest_edge": det_size, "longest_edge": int(det_size * 1333 / 800)}
        ),
        tokenizer=tok,
    )
    sam_cfg = SamConfig(  # input size reduced on CPU
        vision_config={"image_size": sam_size, **SAM_VIT[sam_vit]},
        prompt_encoder_config={"image_size": sam_size},
    )
    sam = built_on(device, SamModel, sam_cfg)
    sproc = sam_processor(sam_size)
    return (
        LoadedModel(
            det, dproc, f"GroundingDinoConfig() Swin-{swin} random", "grounding-dino", None
        ),
        LoadedModel(sam, sproc, f"SamConfig() {sam_vit} random", "sam", None),
    )


def make_backend(
    cfg: LabelConfig, det: LoadedModel, sam: LoadedModel, boxes: int
) -> GroundedSamBackend:
    """A Grounded-SAM backend around prebuilt models, keeping the ``boxes`` best boxes per image."""
    b = GroundedSamBackend(cfg, class_id=7)
    b.setup(det, sam, resolve_device(cfg.device))
    detect = b.detect

    def top_k(images, prepared=None):
        out = detect(images, prepared)
        return [d[np.argsort(-d.scores, kind="stable")[:boxes]] if len(d) else d for d in out]

    b.detect = top_k
    b.load = lambda: {"bench": True}
    return b


def baseline(cfg: LabelConfig, backend: GroundedSamBackend, paths: list[Path], out: Path) -> dict:
    """The demo loop: one image at a time through every stage, nothing overlapped."""
    import torch

    from labeler.backends import LoadedImage
    from labeler.run import write_outputs

    t = dict.fromkeys(STAGES, 0.0)
    start = time.perf_counter()
    for p in paths:
        t0 = time.perf_counter()
        img = load_image(p)
        t1 = time.perf_counter()
        res = backend.label([LoadedImage("train", p.stem, p, img)])[0]
        sync(backend.device, torch)
        _, merge_s, write_s = write_outputs(out, "train", p.stem, res, cfg.uncertain, {})
        t["decode"] += t1 - t0
        for k in ("detect", "segment"):
            t[k] += res.timings[k]
        t["merge"] += merge_s
        t["write"] += write_s
    wall = time.perf_counter() - start
    return {"wall_s": wall, "images_per_s": len(paths) / wall, "stage_s": t}


# -- memory and writer (issue 11) ------------------------------------------------------------
BASELINE_REV = "96d5479"  # the labeler before issue 11 ("today's code" of the issue)
SIZE_4K = (3024, 4032)  # (H, W)


def random_boxes(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 4)`` XYXY boxes of 150-800 x 150-700 px spread over a 4032x3024 image."""
    rng = np.random.default_rng(seed)
    wh = np.stack([rng.uniform(150, 800, n), rng.uniform(150, 700, n)], 1)
    xy = rng.uniform(0, 1, (n, 2)) * (np.array([SIZE_4K[1], SIZE_4K[0]]) - wh)
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


class FakeSam:
    """Stands in for SAM's networks, whose cost does not depend on the code under test: an
    object-shaped logit map per box (an ellipse filling the box, +10 at its centre, falling
    linearly and clamped at -20 outside), IoU score 0.9. Everything after the decoder (mask
    post-processing, dedup, merge, RLE, PNGs) is the real code of the checkout measured."""

    def __init__(self, mask_size: int = 256, input_size: int = 1024) -> None:
        self.mask_size, self.input_size = mask_size, input_size

    def get_image_embeddings(self, pixels):
        import torch

        return torch.zeros(len(pixels), 1)

    def parameters(self):
        return iter(())

    def __call__(self, input_boxes, multimask_output=False, **_):
        from types import SimpleNamespace

        import torch

        b = input_boxes[0].float() * (self.mask_size / self.input_size)  # (n, 4) in mask cells
        c = (torch.arange(self.mask_size, dtype=torch.float32) + 0.5)[None]
        cx, cy = (b[:, 0:1] + b[:, 2:3]) / 2, (b[:, 1:2] + b[:, 3:4]) / 2
        rx, ry = (b[:, 2:3] - b[:, 0:1]) / 2, (b[:, 3:4] - b[:, 1:2]) / 2
        dx, dy = ((c - cx) / rx) ** 2, ((c - cy) / ry) ** 2  # (n, S) each
        d = (dy[:, :, None] + dx[:, None, :]).sqrt()
        logits = (10 * (1 - d) * 3).clamp(-20, 10)
        n = len(b)
        return SimpleNamespace(
            pred_masks=logits[None, :, None], iou_scores=torch.full((1, n, 1), 0.9)
        )


def memory_child(code: str, boxes: int) -> dict:
    """Peak host memory of labeling one 4032x3024 image with ``boxes`` boxes, with the labeler
    of checkout ``code`` (run in a fresh process: ``ru_maxrss`` is the process peak)."""
    import resource
    import warnings

    sys.path.insert(0, code)
    _imports()
    from transformers import SamImageProcessor, SamProcessor

    from labeler.backends import LoadedImage
    from labeler.merge import Detections
    from labeler.testing import save_tiny_detector

    warnings.filterwarnings("ignore")
    tmp = scratch("labeler-mem-")
    det = save_tiny_detector(tmp / "det")
    from labeler.models import load_detector

    sam = LoadedModel(FakeSam(), SamProcessor(image_processor=SamImageProcessor()), "fake",
                      "sam", None)  # fmt: skip
    cfg = LabelConfig(data=str(tmp), cls=ClassSpec("Bicycle"), device="cpu", progress=False)
    backend = GroundedSamBackend(cfg, class_id=7)
    backend.setup(load_detector(str(det)), sam, "cpu")
    xyxy = random_boxes(boxes)
    dets = [Detections(xyxy, np.linspace(0.9, 0.4, boxes), np.zeros(boxes))]
    backend.detect = lambda images, prepared=None: dets
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (SIZE_4K[0] // 16, SIZE_4K[1] // 16, 3), dtype=np.uint8)
    image = np.ascontiguousarray(np.repeat(np.repeat(small, 16, 0), 16, 1))

    def label_and_write(img: np.ndarray, out: Path) -> int:
        item = LoadedImage("train", "img", tmp / "img.jpg", img)
        res = backend.label([item])[0]
        try:
            from labeler.run import write_outputs

            inst = write_outputs(out, "train", "img", res, cfg.uncertain, {})[0]
        except ImportError:  # the labeler before issue 11: its writer's steps
            inst = res.instances
            label, conf = instances_to_semantic(inst.masks, inst.scores, res.probs, cfg.uncertain)
            write_label(out / "labels.png", label)
            write_label(out / "confidence.png", conf)
            write_instances(out / "instances.json", inst, image="img")
        return len(inst)

    def rss() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGESIZE")

    label_and_write(image[:300, :400].copy(), tmp / "warm")  # lazy imports, allocator
    before = rss()
    t = time.perf_counter()
    kept = label_and_write(image, tmp / "out")
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"boxes": boxes, "instances": kept, "peak_above_models_mb": (peak - before) / 2**20,
            "seconds": seconds}  # fmt: skip


def checkout(rev: str) -> str:
    """A copy of the repository at ``rev`` (what the labeler imports from) in a temp folder."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    dest = scratch(f"labeler-{rev}-")
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", rev], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return str(dest)


def memory(args) -> dict:
    """Today's labeler (``--baseline-rev``) and this checkout, each in its own process."""
    import subprocess

    here = str(Path(__file__).resolve().parent.parent)
    old = checkout(args.baseline_rev)
    rows = []
    for label, code, counts in (
        ("before", old, args.baseline_boxes),
        ("now", here, args.mem_boxes),
    ):
        for n in counts:
            cmd = [
                sys.executable,
                __file__,
                "--part",
                "memory-child",
                "--code",
                code,
                "--boxes",
                str(n),
            ]
            res = subprocess.run(
                cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": code}
            )
            if res.returncode:
                raise SystemExit(f"memory child failed ({label}, {n} boxes):\n{res.stderr[-2000:]}")
            row = {"code": label, **json.loads(res.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(f"{label:<7}{n:>5} boxes: peak +{row['peak_above_models_mb']:8.0f} MB, "
                  f"{row['instances']} instances, {row['seconds']:.1f} s")  # fmt: skip
    return {"baseline_rev": args.baseline_rev, "rows": rows}


def writer_inputs(images: int, per_image: int, seed: int = 0):
    """The issue's writer case: ``per_image`` instances of about 600x400 on 4032x3024 images,
    as today's backend handed them (full-resolution masks, float16 probabilities) and as the
    cropped backend does (the same values inside each instance's window)."""
    from labeler.crops import CroppedInstances

    rng = np.random.default_rng(seed)
    h, w = SIZE_4K
    full, cropped = [], []
    for _ in range(images):
        masks = np.zeros((per_image, h, w), bool)
        probs = np.zeros((per_image, h, w), np.float16)
        boxes = []
        for k in range(per_image):
            x0, y0 = int(rng.integers(0, w - 640)), int(rng.integers(0, h - 440))
            yy, xx = np.mgrid[0:440, 0:640]
            d = np.sqrt(((yy - 220) / 200) ** 2 + ((xx - 320) / 300) ** 2)
            p = 1 / (1 + np.exp(np.clip((d - 1) * 40, -40, 40)))
            probs[k, y0 : y0 + 440, x0 : x0 + 640] = p
            masks[k] = probs[k] > 0.5
            boxes.append([x0 + 20, y0 + 20, x0 + 620, y0 + 420])
        inst = Instances(np.array(boxes, np.float32), masks, rng.uniform(0.4, 0.9, per_image),
                         np.full(per_image, 0.9), np.full(per_image, 7), ["bicycle"] * per_image)  # fmt: skip
        full.append((inst, probs))
        cropped.append(CroppedInstances.from_instances(inst, probs))
    return full, cropped


def writer(args) -> dict:
    """Writer throughput: today's single-thread full-resolution steps vs the cropped writer with
    ``--writers`` threads, on the same instances; the files must be identical."""
    from concurrent.futures import ThreadPoolExecutor

    from labeler.backends import BackendOutput
    from labeler.run import write_outputs

    full, cropped = writer_inputs(args.writer_images, args.writer_instances)
    tmp = scratch("labeler-writer-")
    band = (0.15, 0.25)
    t = time.perf_counter()
    for k, (inst, probs) in enumerate(full):  # today's _Writer._handle, one thread
        label, conf = instances_to_semantic(inst.masks, inst.scores, probs, band)
        write_label(tmp / "old" / "labels" / "train" / f"i{k}.png", label)
        write_label(tmp / "old" / "confidence" / "train" / f"i{k}.png", conf)
        write_instances(tmp / "old" / "instances" / "train" / f"i{k}.json", inst, image=f"i{k}",
                        split="train")  # fmt: skip
    old_s = time.perf_counter() - t
    t = time.perf_counter()
    with ThreadPoolExecutor(args.writers) as pool:
        list(pool.map(lambda kc: write_outputs(tmp / "new", "train", f"i{kc[0]}",
                                               BackendOutput(kc[1]), band, {}),
                      enumerate(cropped)))  # fmt: skip
    new_s = time.perf_counter() - t
    same = all(
        (tmp / "old" / p.relative_to(tmp / "new")).read_bytes() == p.read_bytes()
        for p in (tmp / "new").rglob("*") if p.is_file()
    )  # fmt: skip
    n = args.writer_images
    print(f"writer: {n} images x {args.writer_instances} instances of 600x400 at 4032x3024: "
          f"today {n / old_s:.2f} img/s, now {n / new_s:.2f} img/s with {args.writers} writers "
          f"({old_s / new_s:.1f}x); identical files: {same}")  # fmt: skip
    return {"images": n, "instances_per_image": args.writer_instances, "writers": args.writers,
            "before_images_per_s": n / old_s, "now_images_per_s": n / new_s,
            "speedup": old_s / new_s, "identical_files": same}  # fmt: skip


def sync(device: str, torch) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--part",
        default="pipeline",
        choices=["pipeline", "memory", "writer", "memory-child", "backends"],
        help="backends: grounded-sam vs sam3 vs sam3 + refine (bench/labeler_backends.py)",
    )
    ap.add_argument("--code", default="", help="memory-child: checkout whose labeler to import")
    ap.add_argument("--baseline-rev", default=BASELINE_REV, help="today's code for memory")
    ap.add_argument("--baseline-boxes", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--mem-boxes", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--writer-images", type=int, default=4)
    ap.add_argument("--writer-instances", type=int, default=10)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--image-size", default="640x480", help="WxH of the synthetic JPEGs")
    ap.add_argument("--det-size", type=int, default=256, help="detector short side (800 real)")
    ap.add_argument("--sam-size", type=int, default=256, help="SAM input size (1024 real)")
    ap.add_argument("--boxes", type=int, default=4, help="boxes kept per image")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default="", help="also write the figures to this file")
    import labeler_backends  # bench/ is on sys.path when this file runs as a script

    labeler_backends.add_arguments(ap, shared=False)
    args = ap.parse_args()
    if args.part == "backends":
        labeler_backends.compare(args)
        return
    if args.part == "memory-child":
        print(json.dumps(memory_child(args.code, args.boxes)))
        return
    _imports()
    if args.part in ("memory", "writer"):
        result = memory(args) if args.part == "memory" else writer(args)
        result["machine"] = f"CPU {cpu_name()}, {os.cpu_count()} cores"
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2, default=float))
        return

    import warnings

    import torch

    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    w, h = (int(v) for v in args.image_size.split("x"))
    device = resolve_device(args.device)
    tmp = scratch("labeler-bench-")
    paths = write_images(tmp / "data" / "images" / "train", args.images, w, h)

    t0 = time.perf_counter()
    det, sam = build_models(args.det_size, args.sam_size, device)
    build_s = time.perf_counter() - t0
    cls = ClassSpec("Bicycle", prompts=("bicycle", "bike"), box_threshold=0.0, text_threshold=0.0)
    common = dict(data=str(tmp / "data"), cls=cls, device=device, progress=False)
    base_cfg = LabelConfig(
        out=str(tmp / "base"), batch_size=1, workers=1, precision="fp32", **common
    )
    eng_cfg = LabelConfig(out=str(tmp / "engine"), batch_size=args.batch_size, workers=2, **common)

    # warm-up (first-call kernel selection, allocator) on one image, not timed
    wb = make_backend(base_cfg, det, sam, args.boxes)
    img0 = load_image(paths[0])
    wb.segment([img0], wb.detect([img0]))

    base = baseline(base_cfg, wb, paths, tmp / "base")
    eb = make_backend(eng_cfg, det, sam, args.boxes)
    s = run_labeling(eng_cfg, backend=eb)
    if s.failed:
        raise SystemExit(f"engine run failed: {s.failed[0]}")
    eng = {
        "wall_s": s.wall_seconds,
        "images_per_s": s.labelled / s.wall_seconds,
        "stage_s": s.stage_seconds,
    }

    machine = (
        torch.cuda.get_device_name(0)
        if device.startswith("cuda")
        else f"CPU {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    )
    result = {
        "machine": machine,
        "device": device,
        "images": args.images,
        "image_size": args.image_size,
        "det_input_short_side": args.det_size,
        "sam_input": args.sam_size,
        "boxes_per_image": args.boxes,
        "batch_size": args.batch_size,
        "model_build_s": round(build_s, 1),
        "baseline": base,
        "engine": eng,
        "speedup": base["wall_s"] / eng["wall_s"],
    }
    print(
        f"machine: {machine}; {args.images} images {args.image_size}, detector {args.det_size} px, SAM {args.sam_size} px"
    )
    print(f"{'stage (s/img)':<14}{'baseline':>10}{'engine':>10}")
    for k in STAGES:
        print(
            f"{k:<14}{base['stage_s'][k] / args.images:>10.3f}{eng['stage_s'].get(k, 0) / args.images:>10.3f}"
        )
    print(f"{'images/s':<14}{base['images_per_s']:>10.3f}{eng['images_per_s']:>10.3f}")
    print(f"speedup (wall): {result['speedup']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
