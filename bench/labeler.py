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
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotations.instances import Instances, write_instances  # noqa: E402
from annotations.labelmap import write_label  # noqa: E402
from bench.common import cpu_name, write_images  # noqa: E402
from engine.datasets import load_image  # noqa: E402
from labeler.config import ClassSpec, LabelConfig  # noqa: E402
from labeler.grounded_sam import GroundedSamBackend  # noqa: E402
from labeler.merge import filter_instances, instances_to_semantic  # noqa: E402
from labeler.models import LoadedModel, resolve_device  # noqa: E402
from labeler.run import STAGES, run_labeling  # noqa: E402

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "bicycle", "bike", "motorcycle"]


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
        SamImageProcessor,
        SamModel,
        SamProcessor,
        SwinConfig,
    )

    torch.manual_seed(0)
    det_cfg = GroundingDinoConfig(backbone_config=SwinConfig(**SWIN[swin]) if SWIN[swin] else None)
    with torch.device(device):  # initialise on the device: a random ViT-H is slow on a CPU
        det = GroundingDinoForObjectDetection(det_cfg).eval()
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)})
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
    with torch.device(device):
        sam = SamModel(sam_cfg).eval()
    sproc = SamProcessor(
        image_processor=SamImageProcessor(
            size={"longest_edge": sam_size},
            pad_size={"height": sam_size, "width": sam_size},
            mask_size={"longest_edge": sam_size // 4},
            mask_pad_size={"height": sam_size // 4, "width": sam_size // 4},
        )
    )
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

    t = dict.fromkeys(STAGES, 0.0)
    start = time.perf_counter()
    for p in paths:
        t0 = time.perf_counter()
        img = load_image(p)
        t1 = time.perf_counter()
        det = backend.detect([img])
        sync(backend.device, torch)
        t2 = time.perf_counter()
        masks, probs, mscores = backend.segment([img], det)[0]
        sync(backend.device, torch)
        t3 = time.perf_counter()
        keep = filter_instances(masks, det[0].scores, 0, 100, cfg.mask_nms_iou)
        inst = Instances(
            det[0].xyxy[keep], masks[keep], det[0].scores[keep], mscores[keep],
            np.full(len(keep), 7), ["bicycle"] * len(keep),
        )  # fmt: skip
        label, conf = instances_to_semantic(inst.masks, inst.scores, probs[keep], cfg.uncertain)
        t4 = time.perf_counter()
        write_label(out / "labels" / f"{p.stem}.png", label)
        write_label(out / "confidence" / f"{p.stem}.png", conf)
        write_instances(out / "instances" / f"{p.stem}.json", inst, image=p.stem)
        t5 = time.perf_counter()
        for k, a, b in zip(STAGES, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5), strict=True):
            t[k] += b - a
    wall = time.perf_counter() - start
    return {"wall_s": wall, "images_per_s": len(paths) / wall, "stage_s": t}


def sync(device: str, torch) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--image-size", default="640x480", help="WxH of the synthetic JPEGs")
    ap.add_argument("--det-size", type=int, default=256, help="detector short side (800 real)")
    ap.add_argument("--sam-size", type=int, default=256, help="SAM input size (1024 real)")
    ap.add_argument("--boxes", type=int, default=4, help="boxes kept per image")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default="", help="also write the figures to this file")
    args = ap.parse_args()

    import warnings

    import torch

    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    w, h = (int(v) for v in args.image_size.split("x"))
    device = resolve_device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="labeler-bench-"))
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
