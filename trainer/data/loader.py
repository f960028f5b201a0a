"""The seeded stream of samples (:class:`StreamSampler`) and the DataLoader over it: its
workers seeded, and the shared memory (``/dev/shm``) they need checked before a run."""

from __future__ import annotations

import functools
import math
import os
import random
import shutil
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from engine.runinfo import SHM_ADVICE
from trainer.data.dataset import TrainSet

# Batches each loader worker prepares ahead (torch's default, passed explicitly so that
# :func:`shm_shortfall` estimates what the loader really keeps in ``/dev/shm``).
PREFETCH_FACTOR = 2


class StreamSampler(Sampler):
    """An endless, seeded stream of ``(index, (seed, epoch, position))`` keys for one rank.

    Epoch ``e`` is a permutation drawn from ``(seed, e)``; rank ``r`` of ``world`` takes every
    ``world``-th element from ``r`` (the list is padded by wrapping, as DistributedSampler does),
    so ranks see disjoint shards. ``start`` skips that many keys of this rank's stream (resume).
    """

    def __init__(
        self, n: int, seed: int = 0, rank: int = 0, world: int = 1, start: int = 0
    ) -> None:
        if n < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.n, self.seed, self.rank, self.world, self.start = n, seed, rank, world, start
        self.per_rank = math.ceil(n / world)

    def epoch_indices(self, epoch: int) -> list[int]:
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n).tolist()
        total = self.per_rank * self.world
        perm = (perm * math.ceil(total / self.n))[:total]
        return perm[self.rank :: self.world]

    def __iter__(self) -> Iterator[tuple[int, tuple[int, int, int]]]:
        pos = self.start
        while True:
            epoch, offset = divmod(pos, self.per_rank)
            indices = self.epoch_indices(epoch)
            for i in range(offset, self.per_rank):
                yield indices[i], (self.seed, epoch, self.rank * self.per_rank + i)
            pos = (epoch + 1) * self.per_rank


def seed_worker(worker_id: int, parent: int | None = None) -> None:
    """DataLoader ``worker_init_fn``: seed Python, NumPy and torch per worker from torch's seed.
    With ``parent`` (the pid of the process that made the loader, :func:`make_loader`), the
    worker ends once that process is gone (:func:`engine.parallel.exit_with_parent`; under
    ``forkserver`` its parent is the fork server): a worker a rank spawns (seconds of imports)
    as the rank is killed (its peer failed: the parent ends the others with SIGKILL) recorded
    its new parent, init, as its loader's, and torch's watchdog never ended it: it kept the
    command's output open, and a caller reading that waited for ever (crash-injection sweep
    of ``--processes 2 --workers 1``).
    A worker keeps torch's SIGTERM handling (its parent's SIGTERM ends it quietly, anyone
    else's kills it): one that ignored SIGTERM outlived its parent's exit, which ends it with
    SIGTERM, and the exit hung. A scheduler's SIGTERM to the whole process group so ends the
    workers mid-step; ``engine train`` says so (:mod:`engine.stopping`). SIGHUP, which a
    dropped ssh session sends to the whole process group, is ignored: ``engine train`` stops
    at the step's end and saves it, then ends its workers (a parent gone otherwise: torch's
    watchdog ends them within seconds). Before, they died of it mid-step, and the run of
    ``--processes 2 --workers 1`` stopped with no checkpoint saved."""
    from engine import stopping

    stopping.ignore_hangups()
    if parent is not None:
        from engine.parallel import exit_with_parent

        exit_with_parent(parent)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(
    dataset: TrainSet,
    batch_size: int,
    seed: int,
    num_workers: int = 0,
    rank: int = 0,
    world: int = 1,
    start: int = 0,
    pin_memory: bool | None = None,
) -> DataLoader:
    """An endless DataLoader over ``dataset`` starting ``start`` samples into this rank's stream.
    ``pin_memory``: page-locked batches for a copy to the GPU (None: when CUDA is available);
    CPU training passes False, so its processes do not start CUDA on a GPU machine."""
    sampler = StreamSampler(len(dataset), seed, rank, world, start)
    if num_workers > 0:  # the workers' queues use it: started here, so SIGHUP leaves it running
        from engine import stopping

        stopping.start_resource_tracker()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=functools.partial(seed_worker, parent=os.getpid()),
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
        prefetch_factor=PREFETCH_FACTOR if num_workers > 0 else None,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=True,
    )


def shm_shortfall(
    batch_size: int, crop: int, num_workers: int, processes: int = 1, shm: str = "/dev/shm"
) -> str | None:
    """A warning when the loader workers' batches will not fit in the free space of ``shm``
    (Docker's default is 64 MB): with too little, training failed only at its first batch,
    out of shared memory. The estimate: ``processes`` ranks x ``num_workers`` x
    :data:`PREFETCH_FACTOR` batches of ``batch_size`` crops of 5 bytes a pixel (uint8 image,
    label and source map); generous (torch may free a batch before the next is made), so a
    warning, not an error. None with no workers, or without ``shm`` (not Linux)."""
    if num_workers <= 0:
        return None
    try:
        free = shutil.disk_usage(shm).free
    except OSError:  # no /dev/shm: macOS, Windows
        return None
    need = processes * num_workers * PREFETCH_FACTOR * batch_size * crop * crop * 5
    if need <= free:
        return None
    workers = f"{num_workers} loader worker{'s' if num_workers != 1 else ''}"
    ranks = f" x {processes} processes" if processes > 1 else ""
    return (
        f"{shm}: {free / 1e6:,.0f} MB free, but {workers}{ranks} may keep about "
        f"{need / 1e6:,.0f} MB of batches there ({PREFETCH_FACTOR} ahead each, {batch_size} "
        f"crops of {crop} px, 5 bytes a pixel): training may fail at its first batch, out of "
        "shared memory (exit code 71); " + SHM_ADVICE.format(mounted="")
    )
