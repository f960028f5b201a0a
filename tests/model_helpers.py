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


# torch 2.6 cannot make fake CUDA tensors without a driver (bench.cuda_memory_model)
needs_fake_cuda = pytest.mark.skipif(bool(fake_cuda_problem()), reason=str(fake_cuda_problem()))
