"""The demo's training and prediction sized for the machine: its :class:`trainer.config.TrainConfig`
(:func:`demo_train_config`), its processes and threads, and what ``auto`` and ``0`` came to
(:func:`demo_resolved`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.demo.config import DemoConfig


def demo_threads(cfg: DemoConfig) -> int:
    """Torch CPU threads of the demo's prediction: ``cfg.threads`` or cores - 1 (torch's OpenMP
    threads collapse when a core is taken by anything else: docs/trainer.md, CPU threads)."""
    from trainer.config import cpu_cores

    return cfg.threads if cfg.threads > 0 else max(1, cpu_cores() - 1)


def demo_processes(cfg: DemoConfig) -> int:
    """Training processes: ``cfg.processes``, or on a CPU one per core (each with one thread and
    its own share of the batch: 1.9x the steps per second of one process on 2 cores,
    docs/trainer.md), as many as the batch allows (2 images each at least)."""
    from trainer.spawn import resolve_processes
    from trainer.train import resolve_device

    if cfg.processes > 0:
        return cfg.processes
    n = resolve_processes(0, resolve_device(cfg.device).type)
    return max(1, min(n, cfg.batch_size // 2))


def demo_train_config(cfg: DemoConfig, fused: Path, train_out: Path) -> Any:
    """The demo's :class:`trainer.config.TrainConfig`: the ``tiny`` MaSSFormer on the fused
    labels, with the schedule, crop and sampling sized for a 2-core CPU."""
    from trainer.config import TrainConfig
    from trainer.data import AugmentConfig
    from trainer.losses import DecouplingConfig, LossConfig

    processes = demo_processes(cfg)
    return TrainConfig(
        data=str(fused),
        out=str(train_out),
        preset="tiny",
        backbone_weights="none",
        init=None if cfg.init_checkpoint is None else str(cfg.init_checkpoint),
        # from a trained start, keep its BatchNorm statistics rather than re-estimate them from
        # the 2 images each of the 2 processes sees (docs/rounds.md, fifth round)
        freeze_bn_stats=cfg.init_checkpoint is not None,
        iters=cfg.iters,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        grad_clip=cfg.grad_clip,
        loss=LossConfig(
            num_points=cfg.num_points, decoupling=DecouplingConfig(pseudo_form=cfg.pseudo_form)
        ),
        warmup_iters=min(50, cfg.iters - 1),
        val_split="val" if cfg.val else None,
        val_every=0,
        val_size=cfg.size,
        checkpoint_every=max(50, cfg.iters // 10),
        keep_every=0,
        device=cfg.device,
        seed=cfg.seed,
        # one process: a loader worker on the second core; several: each loads its own share
        # (about 10 ms a sample, against 0.3 s of compute)
        processes=processes,
        num_workers=1 if processes == 1 else 0,
        threads=cfg.threads if processes > 1 else demo_threads(cfg),
        augment=AugmentConfig(
            crop=cfg.crop,
            short_side_range=(min(cfg.size) * 3 // 4, cfg.resized_to()[0]),
            class_crop_prob=cfg.class_crop_prob,
        ),
        progress=cfg.progress,
        resume=(train_out / "last.pt").exists(),
    )


def demo_resolved(cfg: DemoConfig) -> dict[str, Any]:
    """What the demo's machine-sized settings came to (``--device auto``, ``--processes 0``,
    ``--threads 0``): another machine sizes them otherwise, and another count of processes or
    threads sums in another order (docs/trainer.md), so a rerun elsewhere needs them given."""
    from trainer.config import resolve_threads
    from trainer.spawn import rank_threads
    from trainer.train import resolve_device

    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    train = demo_train_config(cfg, out / "fused", out / "train")
    if train.processes > 1:
        threads = rank_threads(train.threads, train.num_workers, train.processes)
    else:
        threads = resolve_threads(train.threads, train.num_workers, device.type)
    return {
        "device": str(device),
        "processes": train.processes,
        "train_threads": threads,  # per training process; None: torch's own (a GPU)
        "predict_threads": demo_threads(cfg),
    }


def _with_threads(threads: int, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run with torch's CPU thread count set to ``threads`` (restored afterwards)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return run
