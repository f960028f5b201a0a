"""Process pools that are safe to start from a process that already runs threads.

The default ``fork`` start method copies a process whose other threads (OpenCV's and torch's
thread pools, the labeler's loader threads, a test runner's) may hold locks at that instant; the
child then waits forever on a lock nobody will release. ``spawn`` starts clean interpreters, at
the cost of importing the worker module once per process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any

from annotations.fileio import UNREADABLE, first_line

log = logging.getLogger(__name__)


def in_process_workers(workers: int) -> int:
    """``workers`` of a library config or call, as the command line's ``--workers`` reads it:
    0 and 1 both run in this process (0 is taken as 1, as ``engine train`` loads in the training
    process with ``--workers 0``); below 0 is refused. Before, ``EvaluateConfig(workers=0)``
    and the other library configs refused 0, which the command line maps to 1."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0 or 1: in this process), got {workers}")
    return max(1, workers)


def process_pool(
    workers: int,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` spawned (not forked) processes, each starting
    with ``initializer(*initargs)``. Where this process stops cleanly on SIGHUP (the command
    line's, :mod:`engine.stopping`), its workers ignore it: a dropped ssh session's SIGHUP to
    the process group no longer kills them mid-job (the pool broke: ``worker process 12 died:
    killed by SIGHUP``, exit code 71, not the stop's 129); the stop's end of the pool ends
    them. A library caller's workers keep SIGHUP's default: they die with their caller, whose
    pool would otherwise leave them waiting for work forever."""
    from engine import stopping

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    stopping.start_resource_tracker()
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(stopping.hangups_handled(), initializer, initargs),
    )


def _start_worker(
    ignore_hangups: bool, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
) -> None:
    """A pool worker's start (:func:`process_pool`)."""
    if ignore_hangups:
        from engine import stopping

        stopping.ignore_hangups()
    if initializer is not None:
        initializer(*initargs)


def exit_with_parent(parent: int) -> None:
    """Start a daemon thread that ends this process once ``parent`` is gone: no longer its
    parent (it died and the process was re-parented) and no longer a live process (a
    ``forkserver`` child's parent is the fork server, while ``parent`` lives on). It looks once
    a second, the first time at once, for a process started as ``parent`` was killed (a rank of
    :mod:`trainer.spawn`; a rank's DataLoader worker, :func:`trainer.data.seed_worker`)."""

    def watch() -> None:
        while True:
            if os.getppid() != parent and process_gone(parent):
                os._exit(1)  # no cleanup to wait for: the run's files are written atomically
            time.sleep(1.0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has ended: no such process, or a zombie no one reaped yet (a
    container's init may never reap one); where ``/proc`` cannot tell, whether a signal 0
    reaches it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[:1] in ([b"Z"], [b"X"])
    except FileNotFoundError:
        return True
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's: alive
        return False
    return False


class WorkerDied(RuntimeError):
    """A worker process (a pool's, a training rank) ended without a word: killed (the kernel's
    out-of-memory killer sends SIGKILL, as ``kill -9`` does) or crashed. ``str()`` is one line
    naming the process and how it ended; the command line adds what to do (exit code 71),
    naming ``option``, the one that sets how many such processes run."""

    def __init__(self, message: str, option: str = "--workers") -> None:
        super().__init__(message)
        self.option = option


OOM_KILLER = " (most likely the kernel's out-of-memory killer; dmesg names it)"  # after SIGKILL


def how_it_ended(exitcode: int | None) -> str:
    """A process's end as words: ``killed by SIGKILL`` (with the out-of-memory killer named,
    which sends it), ``killed by SIGSEGV``, ``exited with code 1``."""
    if exitcode is None or exitcode >= 0:
        return "ended" if exitcode is None else f"exited with code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    return f"killed by {name}" + (OOM_KILLER if -exitcode == getattr(signal, "SIGKILL", 9) else "")


def first_killed(processes: Iterable[Any], signals_only: bool = False) -> Any | None:
    """The first of ``processes`` that ended by anything but SIGTERM (the stop the others are
    sent), with ``signals_only`` by a signal only (a training rank's exit code is its own: it
    sent its error back); None when none did."""
    for p in processes:
        code = p.exitcode
        if code is not None and code != -signal.SIGTERM and (code < 0 or not signals_only):
            return p
    return None


def dead_worker(pool: ProcessPoolExecutor) -> WorkerDied:
    """The error for ``pool`` broken by a worker that died (``BrokenProcessPool`` says only "A
    process in the process pool was terminated abruptly"): the first worker found ended by
    anything but the SIGTERM the pool then sends the others."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    # the pool fails its futures as soon as a worker's pipe closes, which can be a moment before
    # the kernel lets the dead process be waited for (its exit code still None): wait a little
    deadline = time.monotonic() + 2.0
    while True:
        ended = [p for p in processes if p.exitcode is not None]
        found = first_killed(ended)
        if found is not None or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    found = found if found is not None else next(iter(ended), None)  # else one SIGTERM stopped
    if found is None:
        return WorkerDied("a worker process died")
    return WorkerDied(f"worker process {found.pid} died: {how_it_ended(found.exitcode)}")


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core; this is the worker's own OpenCV


def map_in_order(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    workers: int,
    description: str,
    progress: bool,
) -> Iterator[Any]:
    """``fn(job)`` for every job, in order, here (``workers`` 1) or in ``workers`` spawned
    processes (``fn`` and the jobs picklable), under a progress bar of images."""
    from engine.progress import make_progress

    workers = in_process_workers(workers)
    with make_progress("img", enabled=progress) as bar:
        task = bar.add_task(description, total=len(jobs))
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                yield fn(job)
                bar.advance(task)
            return
        # a worker's warnings come back with its result and are logged here, where the
        # console prints them and the command's record keeps them (engine.runinfo.warned_call)
        from engine.runinfo import say_again, warned_call

        with process_pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
            try:
                for result, said in pool.map(partial(warned_call, fn), jobs, chunksize=1):
                    say_again(said, log)
                    yield result
                    bar.advance(task)
            except BrokenProcessPool as e:  # a worker killed (out of memory?) or crashed
                raise dead_worker(pool) from e


class BadItems(ValueError):
    """Several items of one run have bad input. ``str()`` is one line: ``headline``, the first
    ``shown`` problems and how many more. ``problems`` holds every one, so a caller can name them
    all (the command line prints one line per problem)."""

    def __init__(self, headline: str, problems: Sequence[str], shown: int = 3) -> None:
        self.headline = headline
        self.problems = list(problems)
        more = f"; and {len(problems) - shown} more" if len(problems) > shown else ""
        super().__init__(f"{headline}: " + "; ".join(self.problems[:shown]) + more)


class ItemError(str):
    """What :func:`map_every_item` sends back for a job whose input could not be read: the
    error's one-line message (it names the file)."""


def _capture(fn: Callable[[Any], Any], job: Any) -> Any:
    try:
        return fn(job)
    except UNREADABLE as e:  # bad input; any other exception is a bug: it stops all
        return ItemError(first_line(e))


def map_every_item(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    workers: int,
    description: str,
    progress: bool,
    what: str = "pairs",
    outcome: str = "so none were scored",
    shown: int = 3,
) -> list[Any]:
    """Every ``fn(job)``, in order, as :func:`map_in_order` runs them; a job whose input is bad
    (``fn`` raises :data:`annotations.fileio.UNREADABLE`) does not stop the others. One failure raises
    its own message; several raise one :class:`BadItems` that counts them, shows the first
    ``shown`` and says the ``outcome`` in its message, and holds every problem: scores or a
    subset made of the rest would mislead, so nothing is returned, but one run names every bad
    file."""
    results: list[Any] = []
    errors: list[str] = []
    for out in map_in_order(partial(_capture, fn), jobs, workers, description, progress):
        (errors if isinstance(out, ItemError) else results).append(out)
    if len(errors) == 1:
        raise ValueError(errors[0])  # the file's own one-line message
    if errors:
        headline = f"{len(errors)} of {len(jobs)} {what} cannot be read, {outcome}"
        raise BadItems(headline, errors, shown)
    return results
