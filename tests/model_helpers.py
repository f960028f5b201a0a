"""Engine checkpoints of small models, as engine train and convert-massformer write them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from annotations.taxonomy import MASS13K, Taxonomy
from trainer.checkpoint import checkpoint_dict, save_checkpoint


def save_model(
    path: str | Path, model: torch.nn.Module, taxonomy: Taxonomy = MASS13K, step: int = 0
) -> Path:
    """Write ``model`` (a MaSSFormer) to ``path`` as an engine checkpoint; returns the path."""
    state = checkpoint_dict(
        step, model.state_dict(), dataclasses.asdict(model.config), taxonomy.to_dict()
    )
    return save_checkpoint(path, state)
