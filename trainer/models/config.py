"""``ModelConfig``: everything that defines a MaSSFormer architecture, and the named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# the backbone's norm layers: FrozenBatchNorm (as released) | trainable BatchNorm2d (from scratch)
BACKBONE_NORMS = ("frozen", "batch")


def check_backbone_norm(value: str, name: str = "backbone_norm") -> None:
    """``ValueError`` naming ``name`` unless ``value`` is one of :data:`BACKBONE_NORMS`."""
    if value not in BACKBONE_NORMS:
        known = " or ".join(repr(n) for n in BACKBONE_NORMS)
        raise ValueError(f"{name} must be {known}, got {value!r}")


@dataclass
class ModelConfig:
    """A MaSSFormer architecture. ``build_model(ModelConfig(**asdict(cfg)))`` rebuilds it exactly."""

    num_classes: int = 7  # K semantic classes (MaSS13K: 7); the class head has K + 1 outputs
    backbone: str = "resnet50"  # "resnet50" | "resnet18" | "tiny_resnet" (CPU tests)
    backbone_widths: tuple[int, int, int, int] = (
        16,
        32,
        64,
        128,
    )  # C2..C5 widths, tiny_resnet only
    backbone_norm: str = "frozen"  # "frozen" (FrozenBatchNorm, as released) | "batch" (trainable BatchNorm: a backbone trained from scratch)
    pixel_dim: int = (
        128  # pixel-decoder internal width (S1..S4, D2..D4 before projection); released 128
    )
    se_reduction: int = 2  # squeeze-excitation reduction ratio of S1..S4; released 2
    window: int = (
        16  # CST window side in 1/16-scale tokens (16 -> inputs padded to 256); released 16
    )
    cst_heads: int = 8  # attention heads of CST's windowed cross/self attention; released 8
    cst_ffn_dim: int = 1024  # hidden width of CST's two FFNs; released 1024 (mmcv FFN default)
    edge_hidden_dim: int = 16  # hidden width of the edge head (1x1 ConvBNReLU -> 1x1); released 16
    mask_dim: int = 256  # channels of D1, the H/2 mask features; released 256
    hidden_dim: int = 256  # transformer-decoder width = memory width; released 256
    num_queries: int = 100  # object queries; released 100
    num_heads: int = 8  # transformer-decoder attention heads; released 8
    ffn_dim: int = 2048  # transformer-decoder FFN hidden width (GELU); released 2048
    dec_layers: int = 6  # masked-attention decoder layers (7 supervised predictions); released 6

    def __post_init__(self) -> None:
        self.backbone_widths = tuple(int(v) for v in self.backbone_widths)  # lists from YAML/JSON
        if len(self.backbone_widths) != 4:
            raise ValueError(f"backbone_widths must have 4 entries, got {self.backbone_widths}")
        check_backbone_norm(self.backbone_norm, "ModelConfig.backbone_norm")
        for name in (
            "num_classes",
            "pixel_dim",
            "window",
            "mask_dim",
            "hidden_dim",
            "num_queries",
            "dec_layers",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_dim % 4 or self.pixel_dim % 8:
            raise ValueError(
                f"hidden_dim must be a multiple of 4 (sine position code) and pixel_dim of 8 "
                f"(RFB's four branches of pixel_dim/4, halves in LSE and SE), "
                f"got {self.hidden_dim}, {self.pixel_dim}"
            )
        if self.hidden_dim % self.num_heads or self.pixel_dim % self.cst_heads:
            raise ValueError("hidden_dim / pixel_dim must be divisible by num_heads / cst_heads")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Strict constructor: unknown keys raise ``ValueError`` naming them and the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known: {sorted(known)}")
        return cls(**data)


MODEL_PRESETS: dict[str, ModelConfig] = {
    # The released MaSSFormer (xiechenxi99/MaSS13K at 1afadb9), every width as released:
    # ResNet-50; pixel decoder 128 (SE ratio 2, CST 16x16 windows, 8 heads, FFN 1024, edge head
    # 16); D1 and memories 256; decoder 6 x 256, 8 heads, FFN 2048 (GELU), 100 queries.
    # 37,578,176 parameters at K = 7 (docs/model.md relates this to the published 37.42M).
    "massformer_r50": ModelConfig(backbone="resnet50"),
    # MaSSFormer-Lite: no released code or config. Ours: the released blocks on a ResNet-18
    # (the release's own commented-out in_channels [64, 128, 256, 512]), narrowed to the
    # published size: pixel decoder and D1 64 (the H/2 layers hold most of the MACs),
    # decoder 6 x 128 with FFN 1024. 15,068,384 parameters at K = 7 (published 15.07M) and
    # 810.8 GMACs at 4096x3072 (published 771); the release's widths on a ResNet-18 would
    # be 24.68M and 1509 GMACs (docs/model.md).
    "massformer_lite_r18": ModelConfig(
        backbone="resnet18", pixel_dim=64, mask_dim=64, hidden_dim=128, ffn_dim=1024
    ),
    # CPU tests and demo: the same blocks at tiny widths: 4-stage ResNet (BasicBlock x1,
    # widths 16..128); pixel-decoder width 16 and D1 32, because the H/2 layers dominate CPU
    # time; the cheap low-resolution transformer decoder keeps width 96 (3 layers, 16
    # queries); window 4 (pad to 64).
    "tiny": ModelConfig(
        backbone="tiny_resnet",
        backbone_widths=(16, 32, 64, 128),
        pixel_dim=16,
        window=4,
        cst_heads=4,
        cst_ffn_dim=64,
        edge_hidden_dim=8,
        mask_dim=32,
        hidden_dim=96,
        num_queries=16,
        num_heads=4,
        ffn_dim=384,
        dec_layers=3,
    ),
}
