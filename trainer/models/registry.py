"""Build models from a :class:`ModelConfig` or a preset name."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from trainer.models.config import MODEL_PRESETS, ModelConfig
from trainer.models.massformer import MaSSFormer


def build_model(config: ModelConfig) -> MaSSFormer:
    """A randomly initialised MaSSFormer for ``config`` (backbone weights not loaded)."""
    return MaSSFormer(config)


def preset_config(name: str, **overrides: Any) -> ModelConfig:
    """The preset's config with ``overrides`` applied; unknown names list the known ones."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known: {', '.join(MODEL_PRESETS)}")
    data = dataclasses.asdict(MODEL_PRESETS[name])
    data.update(overrides)
    return ModelConfig.from_dict(data)


def create_model(
    name: str,
    num_classes: int,
    backbone_weights: str | Path | None = None,
    **overrides: Any,
) -> MaSSFormer:
    """Build preset ``name`` for ``num_classes`` classes.

    Args:
        name: ``"massformer_r50"``, ``"massformer_lite_r18"`` or ``"tiny"``.
        num_classes: K, the number of semantic classes (ids 0..K-1).
        backbone_weights: ``"torchvision"`` (ImageNet weights via torchvision, needs internet
            or torch's hub cache), a path to a ResNet state-dict file, or ``None``/``"none"``.
        overrides: any other :class:`ModelConfig` field.
    """
    model = build_model(preset_config(name, num_classes=num_classes, **overrides))
    if backbone_weights is not None and str(backbone_weights).lower() != "none":
        model.backbone.load_weights(backbone_weights)
    return model
