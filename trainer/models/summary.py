"""Parameter and MAC counts of the model presets (``engine models``).

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no
memory, no compute), halved (FLOPs = 2 x MACs). Counted: convolutions and transposed
convolutions, linear layers and matmuls/einsums (``mm``, ``addmm``, ``bmm``, ``baddbmm``),
scaled-dot-product attention, and modulated deformable convolutions
(``torchvision::deform_conv2d``, registered here as ``out_pixels x C_out x C_in/groups x k x k``,
the same as a dense conv of that shape; the bilinear sampling itself is not counted). Not
counted: element-wise ops, normalisation, pooling, interpolation, softmax, sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from trainer.models.config import MODEL_PRESETS
from trainer.models.registry import create_model


@dataclass
class ModelSummary:
    """One preset's size."""

    name: str  # preset name
    params: int  # number of parameters, the frozen backbone-BN affine weights included
    trainable: int  # parameters with requires_grad (all but the frozen backbone-BN affine)
    macs: int | None  # multiply-accumulates of one forward pass at the size asked for, or None


def _deform_conv2d_flops(
    input_shape, weight_shape, offset_shape, *args, out_shape=None, **kwargs
) -> int:  # noqa: ANN001, ANN002, ANN003
    b, c_out, h, w = out_shape
    _, c_in_per_group, kh, kw = weight_shape
    return 2 * b * c_out * h * w * c_in_per_group * kh * kw


def count_macs(model: torch.nn.Module, width: int, height: int) -> int:
    """MACs of one ``model(images, aux=False)`` pass on a ``1 x 3 x height x width`` input.

    The model must live on the meta device (build it under ``torch.device("meta")``), so that
    even 4096x3072 costs nothing."""
    mapping = {torch.ops.torchvision.deform_conv2d.default: _deform_conv2d_flops}
    x = torch.empty(1, 3, height, width, device="meta")
    # grad mode stays on: under no_grad, views of parameters trip FlopCounterMode's module tracker
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(x, aux=False)
    return counter.get_total_flops() // 2


def summarize_presets(
    num_classes: int = 7, macs_size: tuple[int, int] | None = None
) -> list[ModelSummary]:
    """Parameter count (and MACs at ``macs_size`` = ``(W, H)``) of every preset, built on the
    meta device without weights."""
    rows = []
    for name in MODEL_PRESETS:
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes)
        model.eval()
        params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        macs = count_macs(model, *macs_size) if macs_size else None
        rows.append(ModelSummary(name, params, trainable, macs))
    return rows
