"""Validation during training: whole-image inference on a split, scored with the engine's metrics."""

from __future__ import annotations

from typing import Any

import torch

from engine.datasets import SegDataset
from engine.progress import track


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: SegDataset,
    size: tuple[int, int] = (4096, 3072),
    device: str | torch.device = "cpu",
    amp: bool = True,
    sliding_window: bool = False,
    max_images: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """mIoU / mBIoU (x100) and mBF1 (fraction) of ``model`` on ``data``, with per-class scores.

    Each image is predicted at ``size`` = (W, H) keeping its aspect ratio and scored at its own
    resolution (DESIGN section 5). Returns ``EvalResult.to_json`` without the raw counts.
    """
    from engine.metrics import SegEvaluator

    from trainer.inference import predict_label

    was_training = model.training
    model.eval()
    evaluator = SegEvaluator(num_classes=data.taxonomy.num_classes)
    samples = data.samples[:max_images] if max_images > 0 else data.samples
    try:
        for sample in track(samples, "validate", enabled=progress):
            image, label = data.load_pair(sample)
            pred = predict_label(
                model, image, size=size, sliding_window=sliding_window, device=device, amp=amp
            )
            evaluator.update(pred, label)
    finally:
        model.train(was_training)
    result = evaluator.compute().to_json(data.taxonomy.names)
    result.pop("counts", None)
    return result
