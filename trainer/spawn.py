"""Local data-parallel training on CPU: ``engine train --processes N``.

A tiny model's step is thousands of small ops; torch's intra-op threads split each op and wait
for each other after every one, so a second thread buys little (docs/trainer.md, CPU threads).
Splitting the *batch* instead scales: N processes, one thread each, each computing its share of
the batch, with DistributedDataParallel (gloo) averaging the gradients. This is the same DDP
path ``torchrun`` takes (:func:`trainer.train._distributed` reads the same environment
variables), started from inside the process, so ``engine demo`` and ``engine train`` need no
launcher.

The parent waits; rank 0 sends back the init report (as soon as it exists) and the result. An
exception in any rank stops every rank and is raised again in the parent as itself, so callers
see the same one-line errors as in a single-process run. A SIGTERM to the parent (under the
command line, :mod:`engine.stopping`) is passed on: the ranks stop together at a step's end and
save it. A rank whose parent is gone (killed with SIGKILL, or with SIGTERM where nothing handles
it: it could not stop its ranks itself) exits within a second instead of training on as an
orphan: torch's own guard sends the ranks SIGINT, which a command started in
the background by a script (`cmd &` without job control) ignores, and its ranks with it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

from engine.parallel import WorkerDied, exit_with_parent, first_killed, how_it_ended
from trainer.config import TrainConfig, cpu_cores
from trainer.ranks import RUN_LOCKED_BY_PARENT, portable

if TYPE_CHECKING:
    from collections.abc import Callable

    from trainer.init import InitReport


def resolve_processes(processes: int, device_type: str) -> int:
    """Local training processes: ``processes`` when > 0, else one per CPU core on CPU and 1
    elsewhere (GPUs are run with torchrun, one process per GPU)."""
    if processes > 0:
        return processes
    return cpu_cores() if device_type == "cpu" else 1


def rank_threads(threads: int, workers: int, processes: int) -> int:
    """Torch threads of each of ``processes`` local ranks: ``threads`` when > 0, else the cores
    left after every rank's loader workers, shared out (at least 1)."""
    if threads > 0:
        return threads
    return max(1, (cpu_cores() - processes * workers) // processes)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(
    rank: int,
    target: Callable[..., Any],
    cfg: TrainConfig,
    world: int,
    port: int,
    messages: Any,
    parent: int,
    locks: list | None = None,
) -> None:
    """One spawned rank: the torchrun environment, then ``target(cfg, on_init=...)``
    (:func:`trainer.train.train`, passed in so this module does not import it). A SIGTERM
    (the scheduler's to the whole process group, or the parent's passed on) stops every rank at
    the same step's end, checkpointed, as in one process (:mod:`engine.stopping`); the rank is
    this engine's own process, so the handler is no library caller's business. ``locks``: the
    run folder's lock files the parent holds (:func:`engine.runlock.passed_locks`), held here
    too, so that a rank orphaned by its parent's SIGKILL keeps a rerun out until it exits."""
    from engine import runlock, stopping

    runlock.hold_passed(locks or [])
    stopping.install()
    exit_with_parent(parent)
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        **{RUN_LOCKED_BY_PARENT: "1"},  # the parent holds the run folder's lock
    )
    try:
        result = target(cfg, on_init=lambda report: messages.put(("init", report)))
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
        messages.put(("error", portable(e)))  # one pickle cannot carry: its text
        return
    if rank == 0:
        messages.put(("result", result))
    leave_process_group()  # a target that left it already: nothing to do


def leave_process_group() -> None:
    """All ranks leave the process group together before their process exits. Exiting with the
    group alive tears gloo's threads down while another rank may still be using it, which can
    abort the process ("terminate called without an active exception", seen under load; a
    torchrun rank then dies of SIGABRT). Nothing to do without a group."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _rank_died(index: int, pid: int | None, exitcode: int | None) -> WorkerDied:
    """The error for rank ``index`` (process ``pid``) that ended without a word (the kernel's
    out-of-memory killer's SIGKILL, ``kill -9``, a crash)."""
    return WorkerDied(
        f"training process {index} (pid {pid}) died: {how_it_ended(exitcode)}",
        option="--processes",
    )


def _stopped_with_parent(exitcode: int | None) -> bool:
    """Whether a rank that ended by ``exitcode`` was stopped with this process: by a SIGHUP or
    SIGTERM while this process received one (a hang-up's SIGHUP to the process group reaches a
    rank starting up, before it handles it; the SIGTERM passed on, likewise). Before, the
    command said the rank died, "killed by SIGHUP; free memory or pass fewer --processes",
    with exit code 71 where a hang-up's is 129.

    ``exitcode`` is one rank's, the one :func:`engine.parallel.first_killed` names (the first
    in rank order): where it was stopped with this process, another rank's death is not looked
    at, so a stop can hide another rank's kill by the out-of-memory killer (SIGKILL) in the same
    moment; the command says `interrupted (SIGHUP)`, not that the rank died."""
    from engine import stopping

    ends = (-signal.SIGTERM, -getattr(signal, "SIGHUP", signal.SIGTERM))  # Windows: no SIGHUP
    return stopping.received() and exitcode in ends


def train_processes(
    target: Callable[..., Any],
    cfg: TrainConfig,
    processes: int,
    on_init: Callable[[InitReport], None] | None = None,
) -> Any:
    """``target(cfg)`` (:func:`trainer.train.train`) in ``processes`` local CPU ranks (DDP over
    gloo); rank 0's result (a :class:`trainer.train.TrainResult`).

    ``cfg.batch_size`` stays the images per optimizer step over all ranks (each rank takes
    ``batch_size / processes``, at least 2); every other setting means what it means in one
    process. Raises the first exception any rank raised."""
    import torch.multiprocessing as mp

    from engine import runlock, stopping

    if processes < 2:
        raise ValueError("train_processes needs at least 2 processes; call train() for one")
    rank_cfg = dataclasses.replace(  # ranks see WORLD_SIZE, so they train rather than spawn
        cfg,
        processes=processes,
        threads=rank_threads(cfg.threads, max(0, cfg.num_workers), processes),
        num_workers=max(0, cfg.num_workers),
    )
    stopping.start_resource_tracker()  # before the ranks, which share it: SIGHUP spares it
    ctx = mp.get_context("spawn")  # fork would copy torch's OpenMP pool into the children
    messages = ctx.SimpleQueue()
    locks = runlock.passed_locks()  # the run folder's: held by the ranks too, till they end
    procs = mp.start_processes(
        _rank_main,
        args=(target, rank_cfg, processes, _free_port(), messages, os.getpid(), locks),
        nprocs=processes,
        join=False,
        start_method="spawn",
    )
    result: Any = None
    error: BaseException | None = None

    def drain() -> None:
        nonlocal result, error
        while not messages.empty():
            kind, value = messages.get()
            if kind == "init" and on_init is not None:
                on_init(value)
            elif kind == "result":
                result = value
            elif kind == "error" and error is None:
                error = value

    try:
        # a SIGTERM here (where the command line handles it) is passed on to the ranks, which
        # stop together at a step's end, checkpointed, and raise it back: waited for, as their
        # result, so the queue is never left half read
        with stopping.deferred():
            while True:
                if stopping.acknowledge():
                    for p in procs.processes:
                        if p.is_alive():
                            p.terminate()  # SIGTERM, which the ranks handle (_rank_main)
                drain()
                if error is not None:
                    break
                try:
                    if procs.join(timeout=0.2):
                        break
                except mp.ProcessExitedException as e:  # a rank died without a word (killed)
                    drain()
                    if error is None and _stopped_with_parent(e.exit_code):
                        error = stopping.Terminated()  # this process's SIGTERM or SIGHUP
                    elif error is None:
                        error = _rank_died(e.error_index, e.error_pid, e.exit_code)
                    break
            drain()
            # a rank a signal killed (not the SIGTERM that stops ranks): its peers fail at once
            # on a closed connection ("Connection closed by peer"), an error that may reach here
            # first and named no rank, nor memory
            killed = first_killed(procs.processes, signals_only=True)
            if (
                killed is not None
                and not isinstance(error, stopping.Terminated)
                and not _stopped_with_parent(killed.exitcode)
            ):
                error = _rank_died(procs.processes.index(killed), killed.pid, killed.exitcode)
            if isinstance(error, stopping.Terminated):  # a SIGTERM to one rank: the parent's
                stopping.passed_on(error.code)  # line and exit code say so, as for its own
                # (143; a SIGHUP's 129)
            if result is not None and error is None:  # a SIGTERM after the ranks finished:
                stopping.acknowledge()  # nothing left to stop (it discarded the finished run)
    finally:
        # ranks stopped together by a SIGTERM exit by themselves (their loader workers and
        # semaphores cleaned up) once their checkpoint is written
        grace = time.monotonic() + (5.0 if isinstance(error, stopping.Terminated) else 0.0)
        for p in procs.processes:
            p.join(timeout=max(0.0, grace - time.monotonic()))
        for p in procs.processes:  # a rank left waiting on a dead peer's collective
            if p.is_alive():
                p.kill()  # not SIGTERM, which a rank turns into a stop at its next step's end
        for p in procs.processes:
            p.join()
            p.close()  # its sentinel pipe: a library caller's process kept 6 descriptors a call
        messages.close()
    if error is not None:
        raise error
    if result is None:
        raise RuntimeError("training processes ended without a result")
    return result


__all__ = ["rank_threads", "resolve_processes", "train_processes"]
