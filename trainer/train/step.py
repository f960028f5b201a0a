"""One optimizer step's gradients over its micro-batches, and the stop of a run whose
loss or gradient became NaN/inf."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from trainer.config import TrainConfig
from trainer.data import to_device
from trainer.losses import SetCriterion, build_targets


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient became NaN/inf; the run stopped without writing a checkpoint."""


def _forward_backward(
    net: nn.Module,
    criterion: SetCriterion,
    data_iter,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    cfg: TrainConfig,
    device: torch.device,
    amp: bool,
    world: int,
    pseudo: frozenset[int],
    parents: dict[int, tuple[int, ...]] | None = None,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """One optimizer step's gradients over ``accum_steps`` micro-batches, clipped.

    Returns ``(total loss (0-d tensor), {term: value}, grad norm before clipping (0-d tensor))``;
    the optimizer has not stepped yet.
    """
    optimizer.zero_grad(set_to_none=True)
    k = criterion.num_classes
    dec = cfg.loss.decoupling
    total = torch.zeros((), device=device)
    sums: torch.Tensor | None = None
    names: list[str] = []
    for m in range(cfg.accum_steps):
        batch = next(data_iter)
        images, labels, sources = to_device(batch, device)  # uint8 until on the device
        targets = [
            build_targets(labels[i], sources[i], k, dec, pseudo, parents)
            for i in range(len(images))
        ]
        # DDP all-reduces gradients only on the last micro-batch
        sync = world == 1 or m == cfg.accum_steps - 1
        with contextlib.nullcontext() if sync else net.no_sync():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                outputs = net(images)
            losses = criterion(outputs, targets)  # fp32
            loss = sum(losses.values())
            (loss / cfg.accum_steps).backward()
        total = total + loss.detach() / cfg.accum_steps
        values = torch.stack([v.detach() for v in losses.values()]) / cfg.accum_steps
        sums = values if sums is None else sums + values
        names = list(losses)
    assert sums is not None
    terms = dict(zip(names, sums.tolist(), strict=True))  # one device sync for all terms
    # max_norm inf measures without clipping (torch >= 2.4, unlike get_total_norm)
    grad_norm = torch.nn.utils.clip_grad_norm_(
        params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
    )
    return total, terms, grad_norm.to(device).float()


def _non_finite_message(step: int, bad: dict[str, float], last: Path) -> str:
    where = (
        f"the last good checkpoint is {last} (step {_saved_step(last)})"
        if last.exists()
        else "no checkpoint had been written yet"
    )
    shown = ", ".join(f"{n}={v}" for n, v in list(bad.items())[:6])
    return (
        f"step {step}: non-finite loss ({shown}); training stopped, {where}. "
        "Lower the learning rate or check the data."
    )


def _saved_step(path: Path) -> int | str:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:
        return "?"
