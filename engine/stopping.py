"""SIGTERM, the way schedulers stop a job, handled as Ctrl-C is.

SLURM, Kubernetes, spot instances, ``docker stop`` and ``timeout`` stop a process with SIGTERM,
then SIGKILL after a grace period (tens of seconds). Python's default is to die at once: no
``finally`` runs, the temporary file of a write stays, nothing is said, and ``engine train``
loses every step since its last checkpoint. The command line's entry point calls
:func:`install`: a SIGTERM then raises :class:`Terminated`, a ``KeyboardInterrupt``, so every
command's clean stop for Ctrl-C runs, and the command exits with :data:`EXIT_TERMINATED`.

A loop whose state is whole only between its iterations (a training step: forward, backward,
optimizer step) runs within :func:`deferred`: a SIGTERM there is recorded instead of raised,
:func:`requested` says so, and the loop stops at the end of its iteration (``engine train``
saves a checkpoint there); :func:`undeferred` marks a long stretch inside (validation) that it
may cut short. Only the first SIGTERM counts: ``timeout`` sends two (one to the process, one to
its group), and a second one would cut the clean stop short; Ctrl-C still stops at once, and
the scheduler's SIGKILL anyway.

Signal handlers run in Python's main thread; another thread's :func:`deferred` changes nothing.
Library callers get nothing of this: :func:`install` is for the command line's processes only,
and without it :func:`requested` stays False and :func:`deferred` changes nothing.

SIGHUP (the terminal gone: an ssh session dropped, a terminal window closed, without ``nohup``)
is handled as SIGTERM, with its own line and exit code (``interrupted (SIGHUP)``, 129): Python's
default killed the process at once, as SIGTERM's did. A hung-up terminal fails every write with
EIO, so stdout and stderr are pointed at the null device first where their terminal (or pipe's
reader) is gone: the clean stop then runs to its end, saying nothing, as under ``nohup``. A
SIGHUP that ``nohup`` (or a parent) set to be ignored stays ignored. The stop that a SIGTERM or
SIGHUP began is not cut short by the other one after it (a SIGHUP then a SIGTERM: the SIGTERM
is ignored, as a second SIGTERM is; Ctrl-C and ``kill -9`` still stop at once), but a SIGHUP
after a SIGTERM still points the hung-up terminal's streams at the null device.

A dropped ssh session sends SIGHUP to the whole process group: the processes the command
started get it too. A DataLoader worker and a process pool's worker of a command that handles
SIGHUP ignore it (:func:`ignore_hangups`): their parent's clean stop ends them, as its exit
does (torch's watchdog ends a DataLoader worker whose parent is gone). multiprocessing's
resource tracker starts with SIGHUP blocked (:func:`start_resource_tracker`), as it ignores
SIGINT and SIGTERM itself. Before, ``engine train --processes 2 --workers 1`` lost every step
(its ranks' loader workers died mid-step), and the tracker's death printed "resource_tracker:
process died unexpectedly" and KeyError tracebacks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

EXIT_TERMINATED = 143  # SIGTERM, as a shell reports it (128 + 15)
EXIT_HANGUP = 129  # SIGHUP, likewise (128 + 1)
_EXIT_CODES = {"SIGTERM": EXIT_TERMINATED, "SIGHUP": EXIT_HANGUP}


class Terminated(KeyboardInterrupt):
    """A SIGTERM (or a SIGHUP: its message names which), raised in the main thread where
    :func:`install` ran. ``step`` and ``checkpoint``: where a training run that stopped at a
    step's end saved it (else None). ``code``: the stop's exit code (143 for a SIGTERM, 129 for a SIGHUP; by default this
    process's, where it received one, else 0), which the processes it reaches pass on
    (:func:`passed_on`): another rank, the parent of local ranks."""

    def __init__(
        self, step: int | None = None, checkpoint: str | None = None, code: int | None = None
    ) -> None:
        if code is None:
            code = _EXIT_CODES[_State.signal_name] if _State.received else 0
        # the signal of its code (a SIGHUP's message said SIGTERM); one received by no process
        # here (a stop passed on, code 0) is a SIGTERM's, as before
        super().__init__(next((n for n, c in _EXIT_CODES.items() if c == code), "SIGTERM"))
        self.step = step
        self.checkpoint = checkpoint
        self.code = code

    def __reduce__(self) -> Any:  # through a rank's queue to its parent (trainer.spawn), and
        # the group's store to the other ranks (trainer.ranks): a SIGHUP's 129 with it
        return (Terminated, (self.step, self.checkpoint, self.code))


class _State:
    received = False  # a SIGTERM came (the exit code says so however the command stopped)
    signal_name = "SIGTERM"  # the first of SIGTERM, SIGHUP that came (passed on: SIGTERM)
    pending = False  # one came within deferred() and waits for the loop to stop
    deferring = 0  # depth of deferred() in the main thread


def reader_gone(fd: int) -> bool:
    """Whether ``fd`` is a pipe (or socket) whose reading end is closed, or a terminal hung up:
    poll says POLLERR (Linux) or POLLHUP. False where there is no poll (Windows) or ``fd`` is a
    terminal still there or a file."""
    import select

    if not hasattr(select, "poll"):
        return False
    poll = select.poll()
    try:
        poll.register(fd, select.POLLOUT)
        events = poll.poll(0)
    except (OSError, ValueError):
        return False
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in events)


def silence_gone_streams() -> list[int]:
    """Point stdout and stderr at the null device where their reader is gone (a pipe's closed,
    a terminal hung up), so that nothing more written to them fails; the descriptors pointed."""
    gone = [fd for fd in (1, 2) if reader_gone(fd)]
    if gone:
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in gone:
            os.dup2(null, fd)
        os.close(null)
    return gone


def stream_gone(e: BaseException, code: int) -> bool:
    """Whether ``e`` is an OSError of errno ``code`` where stdout's or stderr's reader is gone
    (:func:`reader_gone`); if so, those streams are pointed at the null device
    (:func:`silence_gone_streams`), so that nothing more written to them fails. What
    :func:`hung_up` (EIO) and ``engine.cli.common.broken_pipe`` (EPIPE) ask of an error."""
    return isinstance(e, OSError) and e.errno == code and bool(silence_gone_streams())


def hung_up(e: BaseException) -> bool:
    """Whether ``e`` is a write to stdout or stderr whose terminal hung up (EIO where the stream's
    reader is gone): the stop of the SIGHUP the kernel sends with the hang-up, whose handler may
    not have run yet when the write failed (a command writing its summary as the ssh session
    dropped: it ended with exit code 74, "stdout (/dev/pts/3): Input/output error", as if a disk
    had failed). If so, the gone streams are pointed at the null device and the SIGHUP is taken
    as received (exit code 129). An EIO of anything else (a failing disk) is not."""
    if not stream_gone(e, errno.EIO):
        return False
    if not _State.received:
        _State.received = True
        _State.signal_name = "SIGHUP"
    return True


def _on_sigterm(signum: int, frame: Any) -> None:
    if signal.Signals(signum).name == "SIGHUP":  # the terminal gone: its writes would fail the
        silence_gone_streams()  # clean stop, this one or the one a SIGTERM began before
    if _State.received:  # the process is stopping already: its clean stop is not cut short
        return
    _State.received = True
    _State.signal_name = signal.Signals(signum).name
    if _State.deferring:
        _State.pending = True
        return
    raise Terminated


def install() -> None:
    """Handle SIGTERM, and SIGHUP unless ignored (``nohup``), in this process as described
    above (the command line's processes only)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    hup = getattr(signal, "SIGHUP", None)  # none on Windows
    if hup is not None and signal.getsignal(hup) is not signal.SIG_IGN:
        signal.signal(hup, _on_sigterm)


def hangups_handled() -> bool:
    """Whether this process stops cleanly on SIGHUP (:func:`install` ran), or ignores it."""
    hup = getattr(signal, "SIGHUP", None)
    return hup is not None and signal.getsignal(hup) in (_on_sigterm, signal.SIG_IGN)


def ignore_hangups() -> None:
    """Ignore SIGHUP in this worker process (a DataLoader's, a process pool's), whose parent
    handles it (:func:`hangups_handled`) and ends it in its clean stop: the worker no longer
    dies mid-job with the terminal's SIGHUP to the whole process group. Nothing on Windows."""
    hup = getattr(signal, "SIGHUP", None)
    if hup is not None:
        signal.signal(hup, signal.SIG_IGN)


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker, where it is not running, with SIGHUP blocked:
    a process inherits its blocked signals, and the tracker unblocks only the SIGINT and
    SIGTERM it ignores, so the terminal's SIGHUP to the process group leaves it running (it
    ends when the last process using it does, as before). Before, it died of it; the next
    process to use it started another ("resource_tracker: process died unexpectedly,
    relaunching"), which printed a KeyError traceback for every semaphore released that it had
    never seen. Called before a command's first worker process starts; this process's own
    SIGHUP waits the moment it takes and is then delivered. Nothing where there is no SIGHUP
    (Windows)."""
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or not hasattr(signal, "pthread_sigmask"):
        return
    from multiprocessing import resource_tracker

    held = signal.pthread_sigmask(signal.SIG_BLOCK, {hup})
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def received() -> bool:
    """Whether this process got a SIGTERM or SIGHUP (under :func:`install`)."""
    return _State.received


def received_signal() -> tuple[str, int]:
    """The signal that stopped this process, by name, and the exit code that says so, as a
    shell reports a process it ended: ``("SIGTERM", 143)``, ``("SIGHUP", 129)``."""
    return _State.signal_name, _EXIT_CODES[_State.signal_name]


def requested() -> bool:
    """Whether a SIGTERM waits for the loop running within :func:`deferred` to stop."""
    return _State.pending


def requested_code() -> int:
    """The exit code of the stop that waits (:func:`requested`): 143 for a SIGTERM, 129 for a
    SIGHUP; 0 where none waits. What a DDP run's ranks pass on to each other (``engine
    train``'s step all-reduce) with the stop, for :func:`passed_on`."""
    return _EXIT_CODES[_State.signal_name] if _State.pending else 0


def passed_on(code: int = 0) -> None:
    """Count a SIGTERM that another process of the same job got as this process's: a rank of a
    DDP run that the signalled rank's stop stopped (``engine train``), or the parent of local
    ranks (:mod:`trainer.spawn`), reports ``interrupted (SIGTERM)`` and exits as that one does
    (before, with Ctrl-C's line and 130). ``code``: that one's :func:`requested_code`, where it
    is known: 129 makes it ``interrupted (SIGHUP)`` and 129, as the hung-up rank says (before
    the fifty-second round the other ranks said SIGTERM and 143). A signal this process got
    itself keeps its name."""
    by_code = {code: name for name, code in _EXIT_CODES.items()}
    if not _State.received and code in by_code:
        _State.signal_name = by_code[code]
    _State.received = True


def acknowledge() -> bool:
    """Whether a SIGTERM waits (see :func:`requested`), and forget it: the caller passed it on
    (:mod:`trainer.spawn`'s parent to its ranks, whose stop it then waits for)."""
    pending, _State.pending = _State.pending, False
    return pending


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A SIGTERM within is recorded for :func:`requested` rather than raised; the loop stops at
    a point of its choosing and raises :class:`Terminated` itself. One still pending when the
    block ends without an error is raised then."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
        pending = _State.pending and not _State.deferring
        if pending:  # raised below, or by the loop itself (the error that ends the block)
            _State.pending = False
    if pending:
        raise Terminated


@contextlib.contextmanager
def undeferred() -> Iterator[None]:
    """Within :func:`deferred`, a stretch that a SIGTERM may cut short at once (validation:
    minutes, past a scheduler's grace period); one already pending raises on entry."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    depth, _State.deferring = _State.deferring, 0
    try:
        if _State.pending:
            _State.pending = False
            raise Terminated
        yield
    finally:
        _State.deferring = depth


__all__ = [
    "EXIT_HANGUP",
    "EXIT_TERMINATED",
    "acknowledge",
    "Terminated",
    "deferred",
    "hangups_handled",
    "hung_up",
    "ignore_hangups",
    "install",
    "passed_on",
    "reader_gone",
    "received",
    "received_signal",
    "requested",
    "requested_code",
    "silence_gone_streams",
    "start_resource_tracker",
    "stream_gone",
    "undeferred",
]
