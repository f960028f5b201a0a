"""MaSSFormer in plain PyTorch: config, presets, builders, semantic inference."""

from trainer.models.config import MODEL_PRESETS, ModelConfig
from trainer.models.massformer import MaSSFormer, semantic_inference
from trainer.models.registry import build_model, create_model, preset_config

__all__ = [
    "MODEL_PRESETS",
    "MaSSFormer",
    "ModelConfig",
    "build_model",
    "create_model",
    "preset_config",
    "semantic_inference",
]
