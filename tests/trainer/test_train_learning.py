"""The learning test: the tiny preset, trained for a bounded number of CPU steps on a few
synthetic images, segments them clearly better than at initialisation.

Measured on the 2-core dev box (torch 1 thread, seed 0, 4 synth images 128x96, crop 64,
batch 4, lr 3e-3, grad clip 1.0): mIoU on the training images 2.80 at init, 24.51 after 30
steps (~20 s); 51.54 after 150 steps (~45-55 s, slow-marked). The asserted margins (10 and
20 points) are about half / 40% of the measured gains, so float differences across machines
do not flip the test.
The published recipe's lr 3e-4 / clip 0.01 is tuned for 80k steps, not a 30-step smoke test.
"""

from __future__ import annotations

import pytest
import torch

from engine.datasets import open_split
from engine.synth import SynthConfig, generate
from trainer.config import load_config
from trainer.models import create_model
from trainer.train import train
from trainer.validate import evaluate


def _learn(tmp_path, iters: int) -> tuple[float, float]:
    root = generate(
        SynthConfig(out=tmp_path / "synth", train=4, val=0, test=0, size=(128, 96), seed=0),
        progress=False,
    )
    cfg = load_config(
        None,
        data=str(root),
        out=str(tmp_path / "run"),
        preset="tiny",
        iters=iters,
        batch_size=4,
        lr=3e-3,
        grad_clip=1.0,
        val_split="",
        num_workers=0,
        device="cpu",
        progress=False,
        checkpoint_every=10**6,
        augment={"crop": 64, "short_side_range": [96, 160]},
        loss={"num_points": 1024},
    )
    torch.manual_seed(0)
    model = create_model("tiny", 7)
    data = open_split(root, "train")
    before = evaluate(model, data, (128, 96))["mIoU"]
    train(cfg, model=model)
    after = evaluate(model, data, (128, 96))["mIoU"]
    return before, after


def test_tiny_model_learns_in_30_cpu_steps(tmp_path, one_thread):
    before, after = _learn(tmp_path, 30)
    assert after - before >= 10.0, (before, after)  # measured: 2.80 -> 24.51


@pytest.mark.slow
def test_tiny_model_learns_more_in_150_cpu_steps(tmp_path, one_thread):
    before, after = _learn(tmp_path, 150)
    assert after - before >= 20.0, (before, after)  # measured: 2.80 -> 51.54
