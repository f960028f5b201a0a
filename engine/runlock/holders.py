"""The lock files and who holds them: their name (:data:`LOCK_NAME`), the locks this process holds
(closed in a forked child, passed to a spawned rank: :func:`passed_locks`), the record a holder
writes in its lock file, and the probes that name the process holding a folder's lock
(:func:`writer`, :func:`check_alone`, :func:`lockless`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any

LOCK_NAME = ".lock"

# The lock files this process holds. A forked child (a DataLoader worker, which lives until its
# loader is collected) gets a copy of each descriptor, and flock's lock lasts while any copy is
# open: the child closes its copies at once, so a folder is free when its run ends.
_HELD: set[int] = set()


def _close_held() -> None:
    for fd in _HELD:
        os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork (and no flock)
    os.register_at_fork(after_in_child=_close_held)


class _Passed:
    """A lock file this process holds, in the arguments of a process it spawns: pickled as the
    child is spawned, its descriptor among those the child gets (as multiprocessing passes a
    pipe), and unpickled there as that descriptor (:func:`passed_locks`)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple:
        from multiprocessing import reduction

        return _received, (reduction.DupFd(self.fd),)


def _received(dup: Any) -> int:
    return dup.detach()


def passed_locks() -> list:
    """The lock files this process holds (:func:`~engine.runlock.lock.exclusive`), to pass in the
    arguments of a process it spawns to write the same run (``engine train --processes``' ranks),
    which holds them with :func:`hold_passed`: the run's folder stays locked until the last of them
    ends. Before, a rank (spawned: none of the parent's descriptors) wrote on for up to a
    second after its parent's SIGKILL, until its watchdog ended it, while a rerun took the
    free lock and started beside it. Empty where nothing is held (Windows: no flock)."""
    return [_Passed(fd) for fd in sorted(_HELD)]


def hold_passed(fds: list) -> None:
    """Hold the lock files :func:`passed_locks` passed to this spawned process (their
    descriptors, unpickled) until it ends: closed in a child forked from it (a DataLoader
    worker) as this process's own are, and not inherited by a program it runs, as the
    parent's are not (``os.open``'s); multiprocessing passes them inheritable, and before, a
    command a rank started without closing them (``os.system``) kept the folder locked."""
    for fd in fds:
        os.set_inheritable(fd, False)
    _HELD.update(fds)


class FolderInUse(RuntimeError):
    """Another process holds the run folder's lock."""


def _record(fd: int) -> dict:
    """The lock record in the file open at ``fd``; ``{}`` where there is none yet."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it: ``engine train (pid 12 on host, since ...)``.
    A holder of this host that has ended holds it through the processes it spawned to write
    the run (:func:`passed_locks`: the ranks of ``engine train --processes``, which end within
    seconds of it, :func:`engine.parallel.exit_with_parent`): named by their pids where this
    machine shows them (:func:`_open_here`), as spawned by it. Before, a rerun after the
    parent's SIGKILL was told the folder was in use by the dead parent. Where none shows (a
    process of another pid namespace, a container sharing the host's name), or one that shows
    is the holder itself, numbered by a pid namespace of its own (:func:`_own_pid`), as its
    record says."""
    info = _record(fd)
    try:
        who = f"{info['command']} (pid {info['pid']} on {info['host']}, since {info['started']})"
    except KeyError:
        return "another process"  # it has not written its record yet
    from engine.parallel import process_gone  # not at import: it loads annotations.fileio

    if info["host"] != socket.gethostname() or not isinstance(info["pid"], int):
        return who
    if not process_gone(info["pid"]) or not (pids := _open_here(fd)):
        return who
    if info["pid"] in map(_own_pid, pids):  # the run itself, of a pid namespace of its own
        return who
    return (
        f"{'process' if len(pids) == 1 else 'processes'} {', '.join(map(str, pids))}, spawned by "
        f"{who} to write it (ranks of engine train --processes: that run has ended, and its "
        "ranks end within seconds of it)"
    )


def _own_pid(pid: int) -> int | None:
    """Process ``pid``'s number in its own pid namespace (the last of ``NSpid`` in
    ``/proc/PID/status``): the pid it writes in a lock record. A run in a container that shares
    the host's name (``docker --network host``) records the number its namespace gives it,
    which on the host may be free, while the host's ``/proc`` shows that run holding its lock:
    before, a rerun on the host was told that run had ended and its ranks held the folder.
    None where it cannot be read (ended, another user's, Linux before 4.1)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _open_here(fd: int) -> list[int]:
    """The other processes of this machine (``/proc``) that hold the lock on the file open at
    ``fd`` (:func:`_locks`), through a descriptor of that file. Empty where ``/proc``
    does not show them (macOS, another pid namespace, another user's). A descriptor is told by
    its link's text (``/proc/PID/fd/N``: read without touching the file it names), and only
    one naming the lock file is stat'ed: before, every open file of every process was, and a
    stat of one on a hung NFS mount blocks (a process of another mount namespace, which names
    the file otherwise, is not found: as its record says)."""
    try:
        st = os.fstat(fd)
        named = os.readlink(f"/proc/self/fd/{fd}")
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    except OSError:
        return []
    found = []
    for pid in sorted(pids):
        # ended meanwhile, or another user's; the listing closed at the holder's descriptor too
        with contextlib.suppress(OSError), os.scandir(f"/proc/{pid}/fd") as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if os.readlink(entry.path) != named:  # a socket, a pipe, another file
                        continue
                    there = os.stat(entry.path)
                    if (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino) and _locks(
                        pid, entry.name
                    ):
                        found.append(pid)
                        break
    return found


def _locks(pid: int, fd: str) -> bool:
    """Whether descriptor ``fd`` of process ``pid`` holds a lock on its file (its
    ``/proc/PID/fdinfo/FD`` names one: a flock lock is its open file's, so a command that
    opened the lock file only to probe it, ``engine info`` or a second rerun, holds none).
    Before, such a process was named among a killed run's ranks."""
    with open(f"/proc/{pid}/fdinfo/{fd}", encoding="utf-8") as f:
        return any(line.startswith("lock:") for line in f)


def _folder_id(folder: Path) -> list[int] | None:
    """``[device, inode]`` of ``folder``, which a lock record names (``folder``): one folder
    however reached (a symbolic link, a bind mount), and not a copy of it. None: not there."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return [st.st_dev, st.st_ino]


def _another_folders(fd: int, folder: Path) -> bool:
    """Whether the lock file open at ``fd``, held, is held for another folder than ``folder``:
    shared by hard links (``cp -al`` of a folder while its run goes on, an ``rsync
    --link-dest`` snapshot of it), its record naming the folder its run locked. A record
    without one (a run of before the fifty-fifth round) is taken as ``folder``'s. The inodes
    alone are compared: folders sharing a hard link lie on one file system, whose device each
    client of a network one numbers its own way (a run requeued on another node, beside a
    snapshot of its folder, took the folder for another one and went on beside the first)."""
    if os.fstat(fd).st_nlink < 2:
        return False
    locked, here = _record(fd).get("folder"), _folder_id(folder)
    return (
        isinstance(locked, list) and len(locked) == 2 and here is not None and locked[1] != here[1]
    )


def _in_use(folder: Path, holder: str) -> str:
    return (
        f"{folder}: in use by {holder}; two runs writing one folder would mix their outputs: "
        "wait for it, stop it, or give another output folder"
    )


def check_not_in_use(folder: str | os.PathLike) -> None:
    """Refuse ``folder`` as :func:`~engine.runlock.lock.exclusive` would, before the command reads
    what it holds: a ``--resume`` of a run whose first process has written no record yet (a requeued
    job while the first copy starts) was told the run records no dataset, as of a wrong folder."""
    if (holder := writer(folder)) is not None:
        raise FolderInUse(_in_use(Path(folder), holder))


def check_alone(folder: str | os.PathLike, own: str, beside: tuple[str, ...] = ()) -> None:
    """Refuse ``folder``, whose lock file ``own`` this process holds, while a lock file of another
    name there is held, but for those of ``beside`` (the other shards of a sharded label run,
    which label the folder together): one line naming the folder and each live writer, as
    :func:`~engine.runlock.lock.exclusive` names the holder of ``own``. Before the fifty-fourth
    round an ``engine label`` without ``--shard`` into a run a shard of it was labelling (and a
    shard beside a run without ``--shard``) took its own lock file and went on: two processes
    labelled the same images into one manifest. Called once ``own`` is held, so two starting at once
    refuse each other rather than both going on."""
    held = {name: who for name, who in writers(folder).items() if name not in (own, *beside)}
    if held:
        names = ", ".join(f"{who}{as_shard(name)}" for name, who in held.items())
        raise FolderInUse(_in_use(Path(folder), names))


def as_shard(name: str) -> str:
    """`` as shard 1/2`` for a shard's lock file (``.lock-shard1of2``), else nothing: how
    :func:`check_alone` names a live shard and ``engine info`` a shard's last writer."""
    index, sep, count = name.removeprefix(f"{LOCK_NAME}-shard").partition("of")
    return f" as shard {index}/{count}" if sep and index.isdigit() and count.isdigit() else ""


def others_writing(folder: str | os.PathLike, own: str = LOCK_NAME) -> bool:
    """Whether another process may be writing ``folder`` beside the one holding its lock file
    ``own``: a lock file of another name there is held (a shard of a label run, or the run
    beside a shard), or there are no locks to tell (Windows)."""
    from annotations.fileio import fcntl_module

    if fcntl_module() is None:  # Windows: no flock, no lock to tell
        return True
    return any(_held_by(p) for p in Path(folder).glob(f"{LOCK_NAME}*") if p.name != own)


def _held_by(path: Path) -> str | None:
    """Who holds the lock file ``path`` (:func:`_holder`), None when no process does (or a file
    system without locks: nothing to learn)."""
    from annotations.fileio import try_lock

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if try_lock(fd) is not False:
            return None
        # a copy's lock file held by its original's run: not this one's
        return None if _another_folders(fd, path.parent) else _holder(fd)
    finally:
        os.close(fd)  # releases the probe's lock


def lockless(folder: str | os.PathLike) -> bool:
    """Whether ``folder``'s lock files (``.lock``, a label run's shard's ``.lock-shard0of2``)
    are there and cannot be locked (``flock`` fails but for another process holding it: ENOLCK
    on a network file system without locking). A run there goes on unlocked
    (:func:`~engine.runlock.lock.exclusive`), its lock file empty, and :func:`writer` cannot find
    it: an empty lock file is a run going on or one killed, which no probe tells apart. Before the
    fifty-seventh round's review ``.lock`` alone was probed, so a shard going on there was told
    stopped."""
    from annotations.fileio import fcntl_module, try_lock

    if fcntl_module() is None:  # Windows: no flock, and exclusive makes no lock file
        return False
    for path in sorted(Path(folder).glob(f"{LOCK_NAME}*")):  # one file system: one probe
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            return try_lock(fd) is None  # taken or held: locks work here
        finally:
            os.close(fd)  # releases the probe's lock
    return False


def writer(folder: str | os.PathLike) -> str | None:
    """The process writing ``folder`` now, as its :func:`~engine.runlock.lock.exclusive` recorded it
    (``engine label (pid 12 on host, since ...)``; a sharded label run holds a lock file per shard,
    and each running shard is named), for a command that reads the folder; None when no process
    holds one of its lock files (the run finished, or was killed: the OS freed its lock), or where
    ``flock`` does not exist.

    The probe takes a shared lock and drops it at once: a run starting at that instant would be
    told the folder is in use, and its rerun starts it."""
    return ", ".join(writers(folder).values()) or None


def writers(folder: str | os.PathLike) -> dict[str, str]:
    """:func:`writer`'s processes by the lock file each holds (``.lock``, a label run's shard's
    ``.lock-shard0of2``): ``engine info`` tells the running shards of a run from the others."""
    from annotations.fileio import fcntl_module

    if fcntl_module() is None:  # Windows: no flock, no lock to find
        return {}
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.name: h for p in sorted(folder.glob(f"{LOCK_NAME}*")) if (h := _held_by(p))}


def last_writer(folder: str | os.PathLike, name: str = LOCK_NAME) -> str | None:
    """The process that last held ``folder``'s lock (``name``: a label run's shard's
    ``.lock-shard0of2``), as its :func:`~engine.runlock.lock.exclusive` recorded it
    (``engine predict (pid 12 on host, since ...)``), held now or not; None without a record. A
    folder that holds nothing else was left by a run stopped (or killed) before it wrote anything:
    ``engine info`` names that run rather than "no image split folders found"."""
    try:
        fd = os.open(Path(folder) / name, os.O_RDONLY)
    except OSError:
        return None
    try:
        holder = _holder(fd)
    finally:
        os.close(fd)
    return None if holder == "another process" else holder
