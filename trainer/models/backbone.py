"""ResNet backbones returning C2..C5 (strides 4, 8, 16, 32) with frozen BatchNorm (by default).

The release's backbone (``ResNet_m``, depth 50, ``norm_cfg=SyncBN(requires_grad=False)``) is
mmseg's ResNet-50 v1b ("pytorch" style: stride on the 3x3 conv), the same layers and key
names as torchvision's. Its BN affine weights are parameters that never train; its running
statistics keep updating in train mode (mmseg's ``norm_eval=False``). Ours: :class:`FrozenBatchNorm`
keeps the affine weights as non-trainable parameters (the same state dict and parameter count
as the release) and never updates the statistics either: a deliberate training-only
difference (fine-tuning batches of 2-4 images give noisy statistics); inference is identical.

A backbone trained **from scratch** (no ImageNet weights: the ``tiny`` model of the demo's
stand-in) has no statistics to freeze: frozen at their initialisation (mean 0, variance 1,
weight 1, bias 0) its norms are identities. ``norm="batch"`` builds plain trainable
``BatchNorm2d`` layers instead. The state dict is the same either way (``FrozenBatchNorm`` is a
``BatchNorm2d``), so a backbone trained with ``"batch"`` loads into a ``"frozen"`` one, which
then keeps what it learnt, as a fine-tune from ImageNet keeps ImageNet's statistics.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet

from annotations.fileio import unreadable_torch_file
from trainer.finite import check_finite
from trainer.models.config import check_backbone_norm

BACKBONES = ("resnet50", "resnet18", "tiny_resnet")


class FrozenBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose affine weights are parameters with ``requires_grad=False`` and which
    always normalises with its running statistics (stays in eval mode under ``.train()``)."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenBatchNorm:  # noqa: ARG002 - always eval
        return super().train(False)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet trunk (stem + layer1..layer4), no pooling head, no classifier.

    Args:
        name: ``"resnet50"``, ``"resnet18"`` (torchvision architectures) or ``"tiny_resnet"``
            (BasicBlock, one block per stage, widths ``tiny_widths``; for CPU tests only).
        tiny_widths: stage widths of ``tiny_resnet``.
        norm: ``"frozen"`` (:class:`FrozenBatchNorm`, as released) or ``"batch"`` (trainable
            ``BatchNorm2d``, for a backbone trained from scratch).
    """

    def __init__(
        self,
        name: str,
        tiny_widths: tuple[int, int, int, int] = (16, 32, 64, 128),
        norm: str = "frozen",
    ) -> None:
        super().__init__()
        check_backbone_norm(norm, "backbone norm")
        norm_layer = FrozenBatchNorm if norm == "frozen" else nn.BatchNorm2d
        if name == "resnet50":
            net = resnet.resnet50(weights=None, norm_layer=norm_layer)
            self.channels = (256, 512, 1024, 2048)
        elif name == "resnet18":
            net = resnet.resnet18(weights=None, norm_layer=norm_layer)
            self.channels = (64, 128, 256, 512)
        elif name == "tiny_resnet":
            net = _tiny_resnet(tiny_widths, norm_layer)
            self.channels = tuple(tiny_widths)
        else:
            raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
        self.name = name
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2 = net.layer1, net.layer2
        self.layer3, self.layer4 = net.layer3, net.layer4

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` normalised image -> ``[C2, C3, C4, C5]`` at H/4 .. H/32."""
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]

    def load_weights(self, source: str | Path) -> None:
        """Load ImageNet weights: ``"torchvision"`` (torchvision's weights API) or a state-dict file.

        A file may hold a plain ResNet state dict (torchvision key names, ``fc.*`` ignored) or
        a dict with a ``"state_dict"``/``"model"`` entry. Raises ``FileNotFoundError`` for a
        missing file, ``ValueError`` for incompatible keys or shapes, ``RuntimeError`` when the
        torchvision download fails (e.g. no internet).
        """
        if str(source) == "torchvision":
            state = _torchvision_state(self.name)
            where = f"torchvision {self.name} ImageNet weights"
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: backbone weights file not found (expected a ResNet state dict "
                    f"saved with torch.save; or use --backbone-weights torchvision|none)"
                )
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - pickle / zip errors of many kinds
                raise unreadable_torch_file(path, e, "backbone weights file") from None
            for key in ("state_dict", "model"):
                if isinstance(state, dict) and isinstance(state.get(key), dict):
                    state = state[key]
            if not isinstance(state, dict):
                raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
            # as checkpoints are: a NaN here trained until the first non-finite loss
            check_finite(state, path, "backbone tensor")
            where = str(path)
        _load_resnet_state(self, state, where)


def _tiny_resnet(
    widths: tuple[int, int, int, int], norm_layer: type[nn.BatchNorm2d] = FrozenBatchNorm
) -> nn.Module:
    """A ResNet with BasicBlocks, one per stage, custom widths (same module names as torchvision)."""
    net = nn.Module()
    w0 = widths[0]
    net.conv1 = nn.Conv2d(3, w0, 7, stride=2, padding=3, bias=False)
    net.bn1 = norm_layer(w0)
    net.relu = nn.ReLU(inplace=True)
    net.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    inplanes = w0
    for i, w in enumerate(widths):
        stride = 1 if i == 0 else 2
        down = None
        if stride != 1 or inplanes != w:
            down = nn.Sequential(
                nn.Conv2d(inplanes, w, 1, stride=stride, bias=False), norm_layer(w)
            )
        block = resnet.BasicBlock(inplanes, w, stride, down, norm_layer=norm_layer)
        setattr(net, f"layer{i + 1}", nn.Sequential(block))
        inplanes = w
    return net


def _torchvision_state(name: str) -> dict[str, torch.Tensor]:
    weights = {
        "resnet50": resnet.ResNet50_Weights.IMAGENET1K_V1,
        "resnet18": resnet.ResNet18_Weights.IMAGENET1K_V1,
    }.get(name)
    if weights is None:
        raise ValueError(
            f"backbone {name!r} has no torchvision ImageNet weights; use --backbone-weights none"
        )
    try:
        return weights.get_state_dict(progress=False)
    except Exception as e:  # network errors come in many types (URLError, OSError, ...)
        raise RuntimeError(
            f"could not fetch torchvision {name} ImageNet weights ({type(e).__name__}: {e}); "
            f"without internet, pass a local state-dict file (--backbone-weights PATH, e.g. "
            f"{weights.url.rsplit('/', 1)[-1]} copied into torch's hub cache or anywhere) or "
            f"--backbone-weights none"
        ) from e


def _load_resnet_state(backbone: ResNetBackbone, state: dict, where: str) -> None:
    """Map torchvision ResNet keys (conv1., bn1., layerN.) onto the backbone and load strictly."""
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        if key.startswith("conv1."):
            key = "stem.0." + key[len("conv1.") :]
        elif key.startswith("bn1."):
            key = "stem.1." + key[len("bn1.") :]
        mapped[key] = value
    own = backbone.state_dict()
    for key in own:  # counters that torchvision files may lack change no value
        if key.endswith("num_batches_tracked") and key not in mapped:
            mapped[key] = own[key]
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    bad = [k for k in own if k in mapped and own[k].shape != mapped[k].shape]
    if missing or unexpected or bad:
        detail = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
            if unexpected
            else f"shape mismatch at {bad[0]}: expected {tuple(own[bad[0]].shape)}, "
            f"found {tuple(mapped[bad[0]].shape)}"
        )
        raise ValueError(
            f"{where}: not a {backbone.name} state dict ({detail}; "
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(bad)} mis-shaped keys)"
        )
    backbone.load_state_dict(mapped, strict=True)
