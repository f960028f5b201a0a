"""Test-only helpers for the trainer: a tiny synthetic dataset writer and a stand-in model with
MaSSFormer's output contract (used where the real tiny preset would only cost time)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from annotations.labelmap import write_label

# A few-step tiny-preset run on 128x96 synthetic images (the DDP tests: torchrun and --processes)
SMALL_RUN_YAML = (
    "val_size: [128, 96]\nlog_every: 1\nloss: {num_points: 256}\n"
    "augment: {crop: 64, short_side_range: [96, 160]}\n"
)


def write_dataset(root, n=3, size=(40, 30), sources=False, splits=("train",)):
    """MaSS13K layout: left half class 0, right half class 1..3 (by image), with colours that
    tell the classes apart; optional source maps marking the right half pseudo."""
    rng = np.random.default_rng(0)
    w, h = size
    colours = np.array([[40, 40, 40], [200, 30, 30], [30, 200, 30], [30, 30, 200]], np.uint8)
    for split in splits:
        for d in ("images", "annotations") + (("sources",) if sources else ()):
            (root / d / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            lab = np.zeros((h, w), np.uint8)
            lab[:, w // 2 :] = 1 + i % 3
            img = colours[lab] + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / "images" / split / f"im{i}.png")
            write_label(root / "annotations" / split / f"im{i}.png", lab)
            if sources:
                src = np.zeros((h, w), np.uint8)
                src[:, w // 2 :] = 1
                write_label(root / "sources" / split / f"im{i}.png", src)
    return root


@dataclass
class StubConfig:
    num_classes: int
    num_queries: int = 4


class StubModel(nn.Module):
    """Produces ``pred_logits (B,Q,K+1)``, ``pred_masks`` at H/2, 6 ``aux_outputs`` at H/4 and
    ``edge_logits`` at H/2, like MaSSFormer; a few convolutions, nothing more."""

    def __init__(self, num_classes: int, num_queries: int = 4, nan_after: int = 0) -> None:
        super().__init__()
        self.config = StubConfig(num_classes, num_queries)
        self.backbone = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.query_feat = nn.Embedding(num_queries, 8)
        self.mask_embed = nn.Linear(8, 8)
        self.cls = nn.Linear(8, num_classes + 1)
        self.edge = nn.Conv2d(8, 1, 1)
        self.nan_after = nan_after  # forward returns NaN from call nan_after + 1 on (0: never)
        self.calls = 0

    def forward(self, images: torch.Tensor) -> dict:
        self.calls += 1
        x = F.relu(self.backbone(images / 127.5 - 1.0))
        f2 = F.avg_pool2d(x, 2, ceil_mode=True)
        f4 = F.avg_pool2d(x, 4, ceil_mode=True)
        q = self.norm(self.query_feat.weight[None] + x.mean((2, 3))[:, None])
        emb = self.mask_embed(q)
        logits = self.cls(q)
        scale = float("nan") if self.nan_after and self.calls > self.nan_after else 1.0

        def pred(f):
            return {
                "pred_logits": logits * scale,
                "pred_masks": torch.einsum("bqc,bchw->bqhw", emb, f) * scale,
            }

        out = pred(f2)
        out["aux_outputs"] = [pred(f4) for _ in range(6)]
        out["edge_logits"] = self.edge(f2)
        return out


def sleeping_rank(cfg, on_init=None):  # noqa: ANN001, ARG001 - train()'s signature
    """A spawned rank's target that records its pid in ``cfg.out`` and then waits (the orphan test)."""
    import os
    import time
    from pathlib import Path

    (Path(cfg.out) / f"rank{os.environ['RANK']}.pid").write_text(str(os.getpid()))
    time.sleep(120)
