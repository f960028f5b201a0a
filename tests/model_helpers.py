"""Engine checkpoints of small models, as engine train and convert-massformer write them; the
mark of tests that run a model on fake CUDA tensors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from annotations.taxonomy import MASS13K, Taxonomy
from bench.cuda_memory_model import fake_cuda_problem
from trainer.checkpoint import checkpoint_dict, save_checkpoint


def save_model(
    path: str | Path, model: torch.nn.Module, taxonomy: Taxonomy = MASS13K, step: int = 0
) -> Path:
    """Write ``model`` (a MaSSFormer) to ``path`` as an engine checkpoint; returns the path."""
    state = checkpoint_dict(
        step, model.state_dict(), dataclasses.asdict(model.config), taxonomy.to_dict()
    )
    return save_checkpoint(path, state)


def distinct_head_model(num_classes: int) -> torch.nn.Module:
    """A tiny MaSSFormer of ``num_classes`` classes (seed 0) whose class-head rows are drawn
    apart (``normal_``), so that a test sees which row went where."""
    from trainer.init import class_head_keys
    from trainer.models import create_model

    torch.manual_seed(0)
    model = create_model("tiny", num_classes)
    with torch.no_grad():
        for key in class_head_keys(model):
            model.state_dict()[key].normal_()
    return model


# torch 2.6 cannot make fake CUDA tensors without a driver (bench.cuda_memory_model)
needs_fake_cuda = pytest.mark.skipif(bool(fake_cuda_problem()), reason=str(fake_cuda_problem()))
