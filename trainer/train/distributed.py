"""What the ranks of a run share: the process group, the run folder they all must see,
each machine's shared memory, the step's agreement to go on or stop, every rank's
generators, and which process owns the run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from engine import stopping
from engine.devices import env_int, rank_and_world
from engine.runinfo import file_sha256
from trainer.checkpoint import rng_state
from trainer.data import shm_shortfall
from trainer.ranks import RUN_LOCKED_BY_PARENT
from trainer.ranks import node as _node


def _distributed(device_type: str) -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``; initialises the process group under torchrun (and
    ``--processes``): NCCL when the run trains on CUDA, gloo on the CPU, also on a machine that
    has a GPU (NCCL cannot reduce CPU tensors: CPU ranks on a GPU machine failed there)."""
    _, world = rank_and_world()
    local_rank = env_int("LOCAL_RANK", 0)
    if world <= 1:
        return 0, 1, 0
    env_int("LOCAL_WORLD_SIZE", 1, 1)  # read after the group starts (shm, ranks.layout)
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def check_run_folder_shared(last: Path, resume: bool, world: int) -> None:
    """Under DDP every rank reads ``RUN/last.pt`` on a resume, and rank 0 alone writes the run
    folder. Across machines with ``--out`` on each machine's own disk, the ranks of the other
    machines found no checkpoint (``checkpoint not found`` there, a gloo "Connection closed by
    peer" on rank 0) or an old one of their own: every rank now tells the others what it sees,
    one collective, and every rank raises the same one line where they differ. A fresh run is
    decided by rank 0's folder alone (a stale ``last.pt`` on another machine's disk is not
    written over: only rank 0 writes). One process (``world`` 1) is the same check on its own
    view, no collective. Checkpoints are compared by their bytes' hash as well as their size: an
    older checkpoint of the same run has the same size, and ranks resumed from different steps
    would wait on each other's collectives."""
    seen = last.stat().st_size if last.exists() else None
    digest = file_sha256(last) if resume and world > 1 and last.is_file() else None
    views: list[Any] = [(seen, digest, _node())]
    if world > 1:
        views = [None] * world
        dist.all_gather_object(views, (seen, digest, _node()))
    first, first_digest = views[0][0], views[0][1]
    if not resume:
        if first is not None:
            raise FileExistsError(
                f"{last}: a run already exists here; pass --resume or another --out"
            )
        return
    for rank, (size, sha, node) in enumerate(views):
        if (size, sha) == (first, first_digest):
            continue
        what = (
            "does not see it"
            if size is None
            else f"sees one ({size:,} bytes) where rank 0 sees none"
            if first is None
            else f"sees another one ({size:,} bytes, rank 0's {first:,})"
            if size != first
            else "sees another one (other bytes of the same size: another step?)"
        )
        raise FileNotFoundError(
            f"{last}: rank {rank} on {node} {what}; every rank resumes from the run folder, so "
            "under torchrun on several machines --out must be on a filesystem they all share "
            "(the same path on each), or a copy of the run folder on each machine"
        )


def node_shm_shortfalls(
    micro: int, crop: int, workers: int, world: int, local_rank: int
) -> list[str]:
    """:func:`trainer.data.shm_shortfall` of every machine of the run, for rank 0 to warn of:
    each machine's ranks share its ``/dev/shm`` (torchrun and ``--processes`` say how many,
    ``LOCAL_WORLD_SIZE``), so each machine's local rank 0 checks its own, and the others' lines
    name their machine. Before the forty-sixth round rank 0 checked only its own machine: a
    second machine with Docker's 64 MB failed at its first batch, the first with a gloo line."""
    if world <= 1:
        return [w] if (w := shm_shortfall(micro, crop, workers)) else []
    mine = None
    if local_rank == 0:
        local = env_int("LOCAL_WORLD_SIZE", 1, 1)
        mine = shm_shortfall(micro, crop, workers, local)
    found: list[Any] = [None] * world
    dist.all_gather_object(found, (mine, _node()))
    nodes = {node for _, node in found}
    return [w if len(nodes) == 1 else f"{node}: {w}" for w, node in found if w]


def _step_checks(value: torch.Tensor, stop: int, world: int) -> tuple[bool, int]:
    """Whether ``value`` (the step's loss and gradient norm) is finite on every rank, and
    whether any rank was asked to stop (a SIGTERM or SIGHUP, :mod:`engine.stopping`; ``stop``:
    this rank's :func:`engine.stopping.requested_code`): one all-reduce, so every rank stops at
    the same step, no rank is left waiting in a collective, and each knows the stop's code (the
    highest of the ranks': a SIGTERM's 143 over a SIGHUP's 129), 0 where none."""
    flags = torch.stack([torch.isfinite(value).all(), value.new_tensor(-float(stop))]).float()
    if world > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    finite, code = flags.tolist()
    return finite > 0, int(-code)


def _agree_to_stop(world: int, device: torch.device) -> int:
    """Whether any rank was asked to stop (before a validation, which a stop would cut short):
    the stop's code, as :func:`_step_checks` gives it, 0 where none."""
    if world == 1:
        return stopping.requested_code()
    flag = torch.tensor([float(stopping.requested_code())], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def owns_run() -> bool:
    """Whether this process owns the run and holds its lock (:func:`~trainer.train.run.train`): not
    a rank that :func:`trainer.spawn.train_processes` started, nor one but rank 0 under torchrun."""
    rank, _ = rank_and_world()
    return not os.environ.get(RUN_LOCKED_BY_PARENT) and rank == 0


def _gather_rng_states(world: int, cuda: bool) -> list[dict[str, Any]]:
    """Every rank's generator states, in rank order (rank 0's alone without DDP); the CUDA
    generators only when the run trains on CUDA."""
    if world == 1:
        return [rng_state(cuda)]
    states: list[Any] = [None] * world
    dist.all_gather_object(states, rng_state(cuda))
    return states
