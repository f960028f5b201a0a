"""The model's side of a run: the backbone weights it starts from, its AdamW parameter
groups, BatchNorm statistics frozen, and a caller's model checked to be float32."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainer.config import TrainConfig

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: backbone (lr x backbone_lr_mult) or not, times decay or not. Parameters of
    norm layers, embeddings and anything named like a query or level embedding get no decay;
    frozen parameters are left out."""
    no_decay: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, NORM_TYPES + (nn.Embedding,)):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
        if any(k in name.split(".")[-1] for k in ("query", "level_embed")):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        leaf = name.split(".")[-1]
        decay = id(p) not in no_decay and "query" not in leaf and "level_embed" not in leaf
        groups.setdefault((name.startswith("backbone."), decay), []).append(p)
    out = []
    for (backbone, decay), params in sorted(groups.items()):
        base = cfg.lr * (cfg.backbone_lr_mult if backbone else 1.0)
        out.append(
            {
                "params": params,
                "lr": base,
                "base_lr": base,
                "weight_decay": cfg.weight_decay if decay else 0.0,
                "name": f"{'backbone' if backbone else 'head'}_{'decay' if decay else 'no_decay'}",
            }
        )
    return out


def freeze_batchnorm_statistics(model: nn.Module) -> int:
    """From now on every BatchNorm of ``model`` runs in eval mode, whatever ``model.train()``
    says: it normalises with its running statistics and never updates them; its affine weights
    still train. A forward pre-hook re-applies it, so validation's train/eval switches cannot
    undo it. Returns the number of BatchNorm layers."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def keep_eval(_module: nn.Module, _args: Any) -> None:
        for norm in norms:
            norm.eval()

    model.register_forward_pre_hook(keep_eval)
    keep_eval(model, ())
    return len(norms)


def _backbone_weights(cfg: TrainConfig) -> str | None:
    if cfg.backbone_weights == "auto":
        # with init the checkpoint's backbone replaces ImageNet's: no download
        return None if cfg.preset == "tiny" or cfg.init else "torchvision"
    return None if cfg.backbone_weights.lower() == "none" else cfg.backbone_weights


def check_float32(model: nn.Module) -> None:
    """``ValueError`` naming the first parameter (or floating-point buffer) of a caller's
    ``model`` that is not float32, the dtype a run computes in (:func:`torch_defaults`): one
    built under ``torch.set_default_dtype(torch.float64)`` stopped in its loss with torch's
    "Index put requires the source and destination dtypes match"."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for name, t in tensors:
        if t.is_floating_point() and t.dtype != torch.float32:
            raise ValueError(
                f"model: parameter {name} is {t.dtype}; train computes in float32: build the "
                "model under torch's default dtype float32, or pass model.float()"
            )
