""":func:`train`, the entry point: the run's lock, its local processes or this one, the
threads and the caller's generators and defaults kept."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from engine.datasets import load_spec
from engine.devices import env_int
from trainer.checkpoint import caller_rng, load_checkpoint, torch_defaults
from trainer.config import TrainConfig, check_drawn_rule, resolve_threads, resolve_workers
from trainer.ranks import peers_error, tell_others
from trainer.train.checks import check_crop, check_gpu_per_rank, micro_batch, resolve_device
from trainer.train.distributed import check_run_folder_shared, owns_run
from trainer.train.loop import TrainResult, _train
from trainer.train.model import check_float32

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from trainer.init import InitReport


def train(
    cfg: TrainConfig,
    model: nn.Module | None = None,
    on_init: Callable[[InitReport], None] | None = None,
    from_file: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> TrainResult:
    """Train (or resume) one run as configured; see :func:`_train`. Torch's CPU thread count is
    set for the run (:func:`trainer.config.resolve_threads`) and restored afterwards; on CPU,
    glibc's malloc keeps freed memory for the process's life (:mod:`trainer.allocator`). The
    caller's random generators are as they were when the call returns (:func:`caller_rng`), and
    it trains in float32 with autograd on whatever the caller set (:func:`torch_defaults`).

    On CPU with ``cfg.processes`` > 1 (0: one per core) and no launcher around, the batch is
    split over that many local processes (:func:`trainer.spawn.train_processes`); a ``model``
    passed in (tests) always trains in this process.

    The process that owns the run (not a rank that :func:`trainer.spawn.train_processes`
    started, and rank 0 under torchrun) holds ``cfg.out``'s lock for the whole run
    (:func:`engine.runlock.exclusive`): a second ``engine train`` into the same folder stops at
    once instead of writing over this one's checkpoints.

    ``from_file``: the keys among ``augment.crop``, ``device`` and ``val_size`` whose values a
    config file set -> that file (``engine train --config``), named in their errors with the
    key instead of the option (``c.yaml: augment.crop 8``, not ``--crop 8``). The checks are
    made here only: before, the CLI made them too, with another wording than a library
    caller got.

    ``notes``: warnings the caller has about its options (``engine train``'s ``--val-every: not
    used``), printed and kept in ``metrics.jsonl`` with the run's own once every check passed
    (before the forty-fifth round the CLI printed them itself, and the record had none)."""
    if not cfg.resume:  # a run started before the check resumes as it was recorded
        check_drawn_rule(cfg)  # as engine train says it; before, a library caller's went unsaid
    if model is not None:
        check_float32(model)
    if not owns_run():
        with caller_rng(), torch_defaults(training=True):
            return _start(cfg, model, on_init, from_file, notes)
    from engine.runlock import check_not_being_written, check_output_folder, exclusive

    check_output_folder(cfg.out, ("metrics.jsonl",), "engine train")
    # a fused dataset engine fuse still writes: its labels so far, or old and new ones mixed
    check_not_being_written(cfg.data, "engine train", "its labels")
    # engine synth (or fuse) stopped half way: refused before exclusive and a fresh run's
    # unlinking of the last run's logs (before, a refused train left OUT holding its .lock alone)
    load_spec(cfg.data).check_not_stopped("engine train")
    for subset in cfg.val_subsets or ():  # being imported: new masks, the old subset.json
        check_not_being_written(subset, "engine train", "its annotated masks")
    with (
        exclusive(cfg.out, "engine train", own=("metrics.jsonl", "config.yaml")),
        caller_rng(),
        torch_defaults(training=True),
    ):
        return _start(cfg, model, on_init, from_file, notes)


def _start(
    cfg: TrainConfig,
    model: nn.Module | None = None,
    on_init: Callable[[InitReport], None] | None = None,
    from_file: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> TrainResult:
    """:func:`train` once the run is this process's: spawn the local ranks, or train here."""
    where = dict(from_file or {})
    rank = env_int("LOCAL_RANK", 0)
    device = resolve_device(cfg.device, rank, where=where.get("device"))
    check_gpu_per_rank(cfg.device, where.get("device"))
    if model is None:  # a model passed in (tests' stubs) may take smaller crops
        check_crop(cfg.augment.crop, where.get("augment.crop"))
    if model is None and "WORLD_SIZE" not in os.environ:
        from trainer.spawn import resolve_processes, train_processes

        processes = resolve_processes(cfg.processes, device.type)
        if processes > 1:
            if device.type != "cpu":
                raise ValueError(
                    f"processes {processes}: local processes are for CPU training; on GPUs "
                    "start one process per GPU with torchrun"
                )
            micro_batch(cfg, processes)  # a batch that cannot be split fails before any start
            # so does a run folder that holds a run (or no checkpoint to resume): the ranks all
            # see this folder, and before the forty-eighth round they took 10-20 s to start and
            # raise it; the same line as one process gives
            last = Path(cfg.out) / "last.pt"
            check_run_folder_shared(last, cfg.resume, 1)
            if cfg.resume and not last.is_file():
                load_checkpoint(last)  # raises its "checkpoint not found" without reading
            # each rank checks the data again: a config file's values still named by the file
            ranks = functools.partial(train, from_file=where, notes=tuple(notes))
            return train_processes(ranks, cfg, processes, on_init)
    if device.type == "cpu":
        from trainer.allocator import tune_malloc

        tune_malloc()  # freed step tensors kept for the next step: no page faults per step
    threads = resolve_threads(cfg.threads, resolve_workers(cfg.num_workers), device.type)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _train(cfg, model, on_init, where.get("val_size"), notes)
    except BaseException as e:
        # under DDP: this rank's error for the ranks its stop leaves waiting, or, where another
        # rank's stop ended this one's collective, that rank's error (trainer.ranks)
        tell_others(e)
        told = peers_error(e)
        if told is e:
            raise
        raise told from None
    finally:
        torch.set_num_threads(before)
