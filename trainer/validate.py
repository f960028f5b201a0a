"""Validation during training: whole-image inference on a split, scored with the engine's metrics.

Under DDP every rank predicts its own share of the images (``samples[rank::world]``) and the
per-image counts are gathered on rank 0, so validation is ``world`` times faster and no rank
idles at a barrier long enough to hit the process group's timeout.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from engine.datasets import SegDataset
from engine.progress import track


@torch.no_grad()
def evaluate_counts(
    model: torch.nn.Module,
    data: SegDataset,
    size: tuple[int, int] | None = (4096, 3072),
    device: str | torch.device = "cpu",
    amp: bool = True,
    sliding_window: bool = False,
    max_images: int = 0,
    rank: int = 0,
    world: int = 1,
    progress: bool = False,
):
    """A ``SegEvaluator`` holding the counts of this rank's images (the first ``max_images`` of
    the split when > 0, then every ``world``-th from ``rank``). Each image is predicted at
    ``size`` = (W, H) with its aspect ratio kept and scored at its own resolution."""
    from engine.metrics import SegEvaluator
    from trainer.inference import predict_label

    was_training = model.training
    model.eval()
    evaluator = SegEvaluator(num_classes=data.taxonomy.num_classes)
    samples = data.samples[:max_images] if max_images > 0 else data.samples
    try:
        for sample in track(samples[rank::world], "validate", enabled=progress):
            image, label = data.load_pair(sample)
            pred = predict_label(
                model, image, size=size, sliding_window=sliding_window, device=device, amp=amp
            )
            evaluator.update(pred, label)
    finally:
        model.train(was_training)
    return evaluator


def evaluate(
    model: torch.nn.Module,
    data: SegDataset,
    size: tuple[int, int] | None = (4096, 3072),
    device: str | torch.device = "cpu",
    amp: bool = True,
    sliding_window: bool = False,
    max_images: int = 0,
    progress: bool = False,
    distributed: bool = False,
) -> dict[str, Any] | None:
    """mIoU / mBIoU (x100) and mBF1 (fraction) of ``model`` on ``data`` with per-class scores
    (``EvalResult.to_json`` without the raw counts). With ``distributed`` (an initialised
    process group), every rank must call this; rank 0 gets the result, the others ``None``."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    evaluator = evaluate_counts(
        model, data, size, device, amp, sliding_window, max_images, rank, world, progress
    )
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, evaluator.per_image)
        if rank != 0:
            return None
        evaluator.per_image = [c for part in gathered for c in part]
    result = evaluator.compute().to_json(data.taxonomy.names)
    result.pop("counts", None)
    return result
