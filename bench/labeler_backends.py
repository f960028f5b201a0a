"""Compare labeling backends in one run: grounded-sam, sam3, sam3 + refine (and grounded-sam +
refine): seconds per image and peak memory, with real-size random-weight models.

Models are the real architectures from transformers' default configs, random weights, no
download: Grounding DINO Swin-T + BERT-base (grounding-dino-tiny's architecture), SAM ViT-B
(``SamConfig()``), SAM 3 (``Sam3Config()``: ViT 1024 x 32 layers, CLIP text 1024 x 24 layers,
about 0.84 B parameters). On CPU the inputs are reduced (``--det-size``, ``--sam-size``,
``--sam3-size``; the real ones are 800, 1024, 1008): widths and depths stay real, so the relative
cost of the backends is kept, not their absolute time at full input.

Random weights make detections arbitrary, so each backend gets the same load: score threshold 0
and the best ``--instances`` instances per image (grounded-sam: ``max_boxes``; sam3:
``max_boxes`` queries per prompt and crop; both: ``max_instances``). Quality is not measured:
random weights say nothing about it.

Each backend runs in its own process (spawned one after the other) so its peak memory is its own:
``peak_rss_mb`` is the process's high-water mark (VmHWM), ``above_models_mb`` the part above the
resident size right after the models were built. ``ratio`` is seconds per image against
grounded-sam measured in the same run (absolute times move with the load on a shared machine).

    OMP_NUM_THREADS=2 python bench/labeler_backends.py --images 2
    OMP_NUM_THREADS=2 python bench/labeler.py --part backends --images 2 --batch-size 2   # same
    python bench/labeler_backends.py --device cuda --images 16 --image-size 4032x3024 \\
        --det-size 800 --sam-size 1024 --sam3-size 1008
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import scratch  # noqa: E402

CONFIGS = ("grounded-sam", "sam3", "sam3+refine", "grounded-sam+refine")


def rss_mb(field: str = "VmRSS") -> float:
    """Resident (VmRSS) or peak resident (VmHWM) memory of this process in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_sam(size: int, device: str):
    from transformers import SamConfig, SamModel

    from labeler.models import LoadedModel
    from labeler.sam_convert import sam_processor

    cfg = SamConfig(vision_config={"image_size": size}, prompt_encoder_config={"image_size": size})
    model = SamModel(cfg).eval().to(device)
    return LoadedModel(model, sam_processor(size), "SamConfig() ViT-B", "sam", None)


def build_gdino(size: int, device: str):
    from transformers import (
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    from labeler.models import LoadedModel
    from labeler.testing import TINY_VOCAB  # BERT's ids for [CLS], [SEP] and "."

    model = GroundingDinoForObjectDetection(GroundingDinoConfig()).eval().to(device)
    proc = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(
            size={"shortest_edge": size, "longest_edge": int(size * 1333 / 800)}
        ),
        tokenizer=BertTokenizerFast(vocab={w: i for i, w in enumerate(TINY_VOCAB)}),
    )
    return LoadedModel(model, proc, "GroundingDinoConfig() Swin-T", "grounding-dino", None)


def build_sam3(size: int, device: str):
    """``Sam3Config()`` at its real widths and depths, input ``size`` (a multiple of 14 whose
    patch grid is a multiple of the 24-patch attention window)."""
    from transformers import CLIPTokenizer, Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    from labeler.models import LoadedModel
    from labeler.testing_sam3 import TINY_CLIP_VOCAB

    grid = size // 14
    if size % 14 or grid % 24:
        raise SystemExit(f"--sam3-size must be 14 x a multiple of 24 (336, 672, 1008), got {size}")
    cfg = Sam3Config(
        vision_config={
            "backbone_config": {"model_type": "sam3_vit_model", "image_size": size},
            "backbone_feature_sizes": [[4 * grid] * 2, [2 * grid] * 2, [grid] * 2],
        }
    )
    tok = CLIPTokenizer(vocab={t: i for i, t in enumerate(TINY_CLIP_VOCAB)}, merges=[])
    proc = Sam3Processor(
        image_processor=Sam3ImageProcessor(
            size={"height": size, "width": size},
            mask_size={"height": 4 * grid, "width": 4 * grid},
        ),
        tokenizer=tok,
    )
    from bench.labeler import built_on

    model = built_on(device, Sam3Model, cfg)  # about 850M random parameters
    return LoadedModel(model, proc, "Sam3Config()", "sam3", None)


def tiny_models(base: str, refine: bool, root: Path, queries: int):
    """Tiny random checkpoints (labeler.testing*), saved and loaded as a user's would be: model
    cost about 0, so what is measured is the post-processing at the given image size."""
    from labeler.models import load_detector, load_segmenter
    from labeler.sam3 import load_sam3
    from labeler.testing import save_tiny_detector, save_tiny_segmenter
    from labeler.testing_sam3 import save_tiny_sam3

    if base == "sam3":
        models = [load_sam3(str(save_tiny_sam3(root / "sam3", queries=queries)))]
    else:
        models = [
            load_detector(str(save_tiny_detector(root / "det"))),
            load_segmenter(str(save_tiny_segmenter(root / "sam"))),
        ]
    refiner = load_segmenter(str(save_tiny_segmenter(root / "ref"))) if refine else None
    return models, refiner


def run_one(name: str, args: argparse.Namespace, data: str, out: str, queue) -> None:
    """One backend configuration in this (spawned) process; puts its figures on ``queue``."""
    import torch

    from labeler.config import ClassSpec, LabelConfig
    from labeler.grounded_sam import GroundedSamBackend
    from labeler.models import resolve_device
    from labeler.refine import RefinedBackend
    from labeler.run import run_labeling
    from labeler.sam3 import Sam3Backend

    torch.manual_seed(0)
    device = resolve_device(args.device)
    k = args.instances
    cls = ClassSpec("Bicycle", prompts=("bicycle",), box_threshold=0.0, text_threshold=0.0)
    base, _, refine = name.partition("+")
    cfg = LabelConfig(
        data=data, cls=ClassSpec(**{**cls.__dict__, "max_instances": k}), out=out,
        backend=base, batch_size=args.batch_size, device=device, progress=False, max_boxes=k,
        refine="SamConfig() ViT-B" if refine else "",
    )  # fmt: skip
    rss0 = rss_mb()
    t0 = time.perf_counter()
    if args.tiny:
        models, refiner = tiny_models(base, bool(refine), Path(out + "-models"), args.instances)
    elif base == "sam3":
        models = [build_sam3(args.sam3_size, device)]
        refiner = build_sam(args.sam_size, device) if refine else None
    else:
        models = [build_gdino(args.det_size, device), build_sam(args.sam_size, device)]
        refiner = build_sam(args.sam_size, device) if refine else None
    if base == "sam3":
        backend = Sam3Backend(cfg, 7)
        backend.setup(models[0], device)
    else:
        backend = GroundedSamBackend(cfg, 7)
        backend.setup(*models, device)
    if refiner is not None:
        models.append(refiner)
        backend = RefinedBackend(backend, cfg)
        backend.setup(refiner, device)
    backend.load = lambda: {"bench": name}
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for m in models for p in m.model.parameters())
    models_mb = rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    s = run_labeling(cfg, backend=backend)
    if s.failed:
        raise SystemExit(f"{name}: {s.failed[0]}")
    queue.put(
        {
            "config": name,
            "parameters_m": round(params / 1e6, 1),
            "build_s": round(build_s, 1),
            "s_per_image": s.wall_seconds / s.labelled,
            "stage_s_per_image": {k2: v / s.labelled for k2, v in s.stage_seconds.items()},
            "instances_per_image": s.instances / s.labelled,
            # one segmenter encoder pass per refined instance: the cost that scales
            "refine_s_per_instance": s.stage_seconds.get("refine", 0.0) / max(s.instances, 1),
            "rss_before_models_mb": round(rss0),
            "rss_with_models_mb": round(models_mb),
            "peak_rss_mb": round(rss_mb("VmHWM")),
            "above_models_mb": round(rss_mb("VmHWM") - models_mb),
            "cuda_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20)
            if device.startswith("cuda")
            else None,
        }
    )


def add_arguments(ap: argparse.ArgumentParser, shared: bool = True) -> None:
    """This benchmark's options (``shared=False``: only those ``bench/labeler.py`` lacks)."""
    if shared:
        ap.add_argument("--images", type=int, default=2)
        ap.add_argument("--image-size", default="640x480", help="WxH of the synthetic JPEGs")
        ap.add_argument("--det-size", type=int, default=256, help="Grounding DINO short side (800)")
        ap.add_argument("--sam-size", type=int, default=256, help="SAM input (1024 real)")
        ap.add_argument("--batch-size", type=int, default=2)
        ap.add_argument("--device", default="auto")
        ap.add_argument("--json", default="", help="also write the figures to this file")
    ap.add_argument("--sam3-size", type=int, default=336, help="SAM 3 input (1008 real)")
    ap.add_argument("--instances", type=int, default=4, help="instances per image, all backends")
    ap.add_argument("--configs", default=",".join(CONFIGS[:3]), help=f"from {CONFIGS}")
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="tiny random checkpoints (labeler.testing*): measures the post-processing memory "
        "at large --image-size and many --instances, not model speed",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    compare(ap.parse_args())


def compare(args: argparse.Namespace) -> dict:
    """Run every configuration of ``args.configs`` (one process each), print the table and
    return the figures."""
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(names) - set(CONFIGS)
    if unknown:
        raise SystemExit(f"unknown --configs {sorted(unknown)}; known: {', '.join(CONFIGS)}")

    from PIL import Image

    w, h = (int(v) for v in args.image_size.split("x"))
    tmp = scratch("labeler-backends-")
    img_dir = tmp / "data" / "images" / "train"
    img_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(args.images):  # smooth noise compresses like a photo, not like white noise
        small = rng.integers(0, 255, (max(h // 16, 1), max(w // 16, 1), 3), dtype=np.uint8)
        Image.fromarray(small).resize((w, h), Image.BILINEAR).save(img_dir / f"img{i:03d}.jpg")

    ctx = mp.get_context("spawn")
    rows = []
    for name in names:
        queue = ctx.Queue()
        p = ctx.Process(
            target=run_one, args=(name, args, str(tmp / "data"), str(tmp / name), queue)
        )
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"{name} failed (exit {p.exitcode})")
        rows.append(queue.get())
    ref = next((r for r in rows if r["config"] == "grounded-sam"), rows[0])
    for r in rows:
        r["ratio"] = r["s_per_image"] / ref["s_per_image"]
    machine = f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}"
    print(
        f"{args.images} images {args.image_size}; inputs: detector {args.det_size}, SAM "
        f"{args.sam_size}, SAM 3 {args.sam3_size}; {args.instances} instances/image; {machine}"
    )
    head = f"{'config':<20}{'params M':>9}{'s/img':>8}{'x ' + ref['config']:>17}"
    print(head + f"{'peak MB':>9}{'above models':>14}{'inst/img':>10}{'refine s/inst':>15}")
    for r in rows:
        print(
            f"{r['config']:<20}{r['parameters_m']:>9.0f}{r['s_per_image']:>8.2f}"
            f"{r['ratio']:>17.2f}{r['peak_rss_mb']:>9}{r['above_models_mb']:>14}"
            f"{r['instances_per_image']:>10.1f}{r['refine_s_per_instance']:>15.2f}"
        )
    result = {"args": vars(args), "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
