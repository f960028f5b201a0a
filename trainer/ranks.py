"""What the ranks of a DDP run (``torchrun``, ``engine train --processes``) tell each other
beyond the training's own collectives: why one stopped, and the layout the run trained on.

A rank that stops with an error (an image only it reads, an OOM on its GPU) leaves the others
waiting in their next collective, which gloo ends with its own line on each of them
(``Connection closed by peer [127.0.0.1]:12207 ... GLHF``): rank 0's terminal, the one a user
watches, said nothing of which rank stopped or why, and exited with 2 whatever the error. Each
rank now puts its error in the process group's key-value store before it raises it
(:func:`tell_others`); a rank whose collective a stopped peer ended raises that peer's error
instead, as itself (the exit code a single-process run gives), led by the peer's rank and machine
(:func:`peers_error`). A rank killed without a word (SIGKILL, the kernel's OOM killer) leaves
nothing in the store: the others say so, naming no rank.
"""

from __future__ import annotations

import os
import pickle
import socket
import time
from typing import Any

import torch.distributed as dist

from engine import stopping
from engine.devices import env_int

# the store's key of rank N's error (the group's store: torchrun's agent, or rank 0's process)
FAILED = "mass_engine/failed/"
# how long a rank whose collective ended waits for the stopped rank's error to reach the store
# (it is written before that rank's process exits, so before its connections close)
WAIT_S = 3.0
# set by trainer/spawn.py for the ranks it starts (--processes), which hold no lock of their own
RUN_LOCKED_BY_PARENT = "MASS_ENGINE_RUN_LOCKED_BY_PARENT"


def node() -> str:
    """This process's machine as errors and warnings name it: torchrun's node rank
    (``GROUP_RANK``) and the host name."""
    group = os.environ.get("GROUP_RANK")
    return f"node {group} ({socket.gethostname()})" if group else socket.gethostname()


def _store() -> Any:
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 - no group, or a torch without it: nothing to tell
        return None


def collective_failed(e: BaseException) -> bool:
    """Whether ``e`` is a collective that ended because another rank is gone (gloo's
    ``Connection closed by peer``, ``Connection reset by peer``, a broken pipe)."""
    if isinstance(e, dist.DistError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and (
        "gloo" in text or "by peer" in text or "Broken pipe" in text
    )


def tell_others(e: BaseException) -> None:
    """Put this rank's error in the group's store for the ranks its stop leaves waiting: not
    one that a collective raised (another rank's stop, told already), nor Ctrl-C's."""
    if not dist.is_initialized() or dist.get_world_size() < 2 or collective_failed(e):
        return
    if isinstance(e, KeyboardInterrupt) and not isinstance(e, stopping.Terminated):
        return  # Ctrl-C reaches every rank of the terminal itself
    rank = dist.get_rank()
    told = pickle.dumps((node(), portable(e)))
    store = _store()
    try:
        if store is not None:
            store.set(f"{FAILED}{rank}", told)
    except Exception:  # noqa: BLE001 - the store's host is gone too: the others say so
        pass


def portable(e: BaseException) -> BaseException:
    """``e`` where another process can get it through pickle, else its type's name and text as
    a ``RuntimeError``: one that cannot be pickled, or pickled but not unpickled (an
    ``__init__`` of its own arguments), which the other process read as no error at all."""
    try:
        pickle.loads(pickle.dumps(e))
    except Exception:  # noqa: BLE001 - whatever pickle fails on: its text
        return RuntimeError(f"{type(e).__name__}: {e}")
    return e


def peers_error(e: BaseException, wait: float = WAIT_S) -> BaseException:
    """The error to raise for ``e``: where it is a collective that another rank's stop ended,
    that rank's error (its first line led by ``rank R of W on HOST: ``; a SIGTERM's stop as
    itself, counted as this process's); else ``e``."""
    if not dist.is_initialized() or not collective_failed(e):
        return e
    me, world = dist.get_rank(), dist.get_world_size()
    # torchrun's SIGTERM, once the stopped rank exited, would cut the wait short
    with stopping.deferred():
        told = _told(me, world, wait)
        stopping.acknowledge()  # a stop under way already: the SIGTERM is neither raised nor left
    if told is None:
        return _named(
            e,
            f"rank {me} of {world}: another rank stopped without a word (killed? out of "
            "memory?); its own output or its machine's log says why: ",
        )
    rank, where, error = told
    if isinstance(error, KeyboardInterrupt):  # a SIGTERM or SIGHUP there, during a validation
        stopping.passed_on(getattr(error, "code", 0))  # named as that rank names it
        return error
    return _named(error, f"rank {rank} of {world} on {where}: ")


def _told(me: int, world: int, wait: float) -> tuple[int, str, BaseException] | None:
    """The first other rank's error in the store (rank, machine, error), waited for up to
    ``wait`` seconds; None where there is none, or the store went with the stopped rank."""
    store = _store()
    keys = [f"{FAILED}{r}" for r in range(world) if r != me]
    deadline = time.monotonic() + wait
    while store is not None:
        try:
            for key in keys:
                if store.check([key]):
                    where, error = pickle.loads(store.get(key))
                    return int(key.removeprefix(FAILED)), where, error
        except Exception:  # noqa: BLE001 - the store's host was the stopped rank (rank 0)
            return None
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)
    return None


def _named(e: BaseException, prefix: str) -> BaseException:
    """``e`` with ``prefix`` to lead the line the command line prints for it
    (``engine.cli.common.error_text`` reads ``rank_lead``). Its message and file name stay as
    they are: the command line tells a killed loader worker, a full /dev/shm or an unwritable
    ``--out`` from them (a rewritten message made a peer's killed loader worker a traceback)."""
    e.rank_lead = prefix  # type: ignore[attr-defined]
    return e


def layout(world: int) -> dict[str, Any] | None:
    """The processes the run trains in, for its records (``environment.json``): the launcher,
    the world size, the ranks of each machine and its host. A collective: every rank calls it.
    None in one process (whose records stay as they were)."""
    if world <= 1:
        return None
    mine = (os.environ.get("GROUP_RANK"), socket.gethostname())
    seen: list[Any] = [None] * world
    dist.all_gather_object(seen, mine)
    nodes: dict[tuple[str | None, str], list[int]] = {}
    for rank, where in enumerate(seen):
        nodes.setdefault(tuple(where), []).append(rank)
    if os.environ.get(RUN_LOCKED_BY_PARENT):  # --processes: trainer/spawn.py starts the ranks
        launcher = "processes"
    else:
        launcher = "torchrun" if "TORCHELASTIC_RUN_ID" in os.environ else "environment"
    return {
        "launcher": launcher,
        "backend": str(dist.get_backend()),
        "world_size": world,
        "nodes": len(nodes),
        "local_world_size": env_int("LOCAL_WORLD_SIZE", 0) or None,
        "hosts": [
            {"node": None if group is None else int(group), "host": host, "ranks": ranks}
            for (group, host), ranks in nodes.items()
        ],
    }


__all__ = ["collective_failed", "layout", "node", "peers_error", "portable", "tell_others"]
