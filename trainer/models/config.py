"""``ModelConfig``: everything that defines a MaSSFormer architecture, and the named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


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
    pixel_dim: int = 128  # pixel-decoder internal width (S1..S4, D2..D4); published 128
    se_reduction: int = 4  # squeeze-excitation reduction ratio of the C_i -> S_i projections
    window: int = 16  # CST window side in 1/16-scale tokens (16 -> inputs padded to 256)
    cst_heads: int = 8  # attention heads of CST's windowed cross/self attention
    cst_ffn_dim: int = (
        1170  # hidden width of CST's two FFNs (unpublished; tuned to the total count)
    )
    rfb_branch_dim: int = (
        32  # channels of each RFB deformable branch (k = 1, 3, 5, 7); published 32
    )
    edge_hidden_dim: int = 64  # hidden width of the EGF edge head (3x3 conv-BN-ReLU -> 1x1)
    mask_dim: int = 256  # channels of D1, the H/2 mask features; published 256
    hidden_dim: int = 256  # transformer-decoder width (queries, memories); published 256
    num_queries: int = 100  # object queries; published 100
    num_heads: int = 8  # transformer-decoder attention heads; published 8
    ffn_dim: int = 2048  # transformer-decoder FFN hidden width; published 2048
    dec_layers: int = 6  # masked-attention decoder layers (7 supervised predictions); published 6

    def __post_init__(self) -> None:
        self.backbone_widths = tuple(int(v) for v in self.backbone_widths)  # lists from YAML/JSON
        if len(self.backbone_widths) != 4:
            raise ValueError(f"backbone_widths must have 4 entries, got {self.backbone_widths}")
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
        if self.hidden_dim % 4 or self.pixel_dim % 4:
            raise ValueError(
                f"hidden_dim and pixel_dim must be multiples of 4 (sine position code), "
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
    # The published MaSSFormer: ResNet-50, pixel-decoder width 128, D1 256, decoder 6 x 256
    # (FFN 2048, 100 queries). Unpublished free choices: SE reduction 4, edge-head width 64, and
    # the hidden width of CST's two FFNs, set to 1170 so the total at K = 7 is 37.42M
    # (23.46M backbone + 4.14M pixel decoder + 9.82M transformer decoder).
    "massformer_r50": ModelConfig(backbone="resnet50", cst_ffn_dim=1170),
    # MaSSFormer-Lite (published 15.07M, 771 GMACs; the release gives no decoder config).
    # Every published structure is kept (SE/CST/RFB/LSE/EGF, 6 masked-attention layers, 100
    # queries, 3 memory levels, D1 at H/2); the widths are slimmed where the parameters and
    # the compute are: transformer decoder 128 wide with FFN 512 (its FFNs are most of the
    # R50 decoder's 9.8M), D1 128 channels and pixel-decoder width 96 (the H/2 layers
    # dominate the MACs, and 771 vs 2036 GMACs says the Lite decoder is far cheaper than the
    # R50 one). CST FFN 588 brings the total at K = 7 to 15.07M
    # (11.17M backbone + 2.20M pixel decoder + 1.70M transformer decoder).
    "massformer_lite_r18": ModelConfig(
        backbone="resnet18",
        pixel_dim=96,
        cst_ffn_dim=588,
        mask_dim=128,
        hidden_dim=128,
        ffn_dim=512,
    ),
    # CPU tests and demo (~0.8M params): 4-stage ResNet (BasicBlock x1, widths 16..128);
    # pixel-decoder width 16 and D1 32, because the two deformable convs at H/2 dominate CPU
    # time (2x3x256x256 forward+backward ~0.65 s on one core); the cheap low-resolution
    # transformer decoder keeps width 96 (3 layers, 16 queries); window 4 (pad to 64).
    "tiny": ModelConfig(
        backbone="tiny_resnet",
        backbone_widths=(16, 32, 64, 128),
        pixel_dim=16,
        se_reduction=4,
        window=4,
        cst_heads=4,
        cst_ffn_dim=64,
        rfb_branch_dim=8,
        edge_hidden_dim=16,
        mask_dim=32,
        hidden_dim=96,
        num_queries=16,
        num_heads=4,
        ffn_dim=384,
        dec_layers=3,
    ),
}
