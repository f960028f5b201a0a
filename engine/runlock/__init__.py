"""One process writes a run folder at a time.

Two processes writing one output folder interleave their files and logs: two ``engine train``
with the same ``--out`` overwrite each other's checkpoints and append to one ``metrics.jsonl``;
two ``engine label`` runs append to one manifest and label the same images twice. It happens
when a command is started twice by mistake, or when a cluster requeues a job whose first copy
is still running. Each command that writes a run folder holds an advisory lock on
``FOLDER/.lock`` (``fcntl.flock``) while it works, and a second process stops at once with one
line naming the folder and the process that holds it.

The operating system releases the lock when its process ends, however it ends, so a killed run
leaves no stale lock: the next run takes it. A process forked during the run (a DataLoader
worker) closes its copy of the lock at once, so it never holds a folder past its run; one
spawned to write the run (``engine train --processes``' ranks) holds it too, until it ends
(:func:`passed_locks`). The file
itself stays after a run that changed the folder; it holds the holder's pid, host, command and
start time, for the message, and the folder it locked (a hard-linked copy's is told apart).
Where ``flock`` does not exist (Windows) or the file system refuses it, the run goes on
unlocked, as before (the lock file it made then, which locks nothing and holds no record, is
removed when it ends). A folder the run created and left empty (it refused its
input before writing anything) is removed again. A run that failed (an exception, not Ctrl-C or
SIGTERM) having changed nothing but new empty folders (a full disk at a review's first
thumbnail: its ``thumbs/``) removes those folders, unless another shard's lock file there is
held; one that wrote a file keeps every folder. A run that fails before changing a folder that
was there removes the lock file it made, or puts back the lock record of the run before it (a
process that opened the file just before it was removed finds, once it holds the lock, that the
name leads elsewhere, and locks what it leads to). A run that locks a folder it wrote before, or
one holding nothing but hidden files (:func:`wrote_nothing`), removes the temporary files its
killed runs left there (:func:`remove_temporaries`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import functools
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
T = TypeVar("T")

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
    """The lock files this process holds (:func:`exclusive`), to pass in the arguments of a
    process it spawns to write the same run (``engine train --processes``' ranks), which
    holds them with :func:`hold_passed`: the run's folder stays locked until the last of them
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


@contextlib.contextmanager
def exclusive(
    folder: str | os.PathLike, command: str, name: str = LOCK_NAME, own: tuple[str, ...] = ()
) -> Iterator[Path]:
    """Hold ``folder/name`` locked while the ``with`` block runs (``folder`` is created); yields
    the folder. Raises :class:`FolderInUse` naming the folder and the holder when another
    process (or another ``exclusive`` of this one) holds it. Where ``folder`` holds one of
    ``own`` (the records ``command`` writes there: an output it wrote before), or nothing but
    hidden entries (:func:`wrote_nothing`: a run killed before its first file was in), the
    temporary files its earlier runs left when killed are removed (:func:`remove_temporaries`)."""
    folder = Path(folder)
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        fcntl = None
    if os.path.lexists(folder) and not folder.is_dir():
        yield folder  # a file (or a link to no folder) given: the command's own check names it
        return
    created = missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # no lock, but the folder is made all the same (and removed if left empty;
        # not the empty folders a failed run made in it: no lock tells whether another run is
        # making them, docs/foundation.md "Windows and macOS")
        try:
            yield folder
        finally:
            with contextlib.suppress(OSError):  # rmdir refuses a folder something went into
                for made in created:
                    made.rmdir()
        return
    from annotations.fileio import folder_locked, own_file, same_file  # not at import: OpenCV

    path = folder / name
    # a link (a copy made with cp -rs) becomes the folder's own file before it is locked: the
    # original's run held it (the copy's run was refused, naming a process of another folder),
    # and one leading nowhere made the lock file in the original's folder, or failed. A copy of
    # the record it leads to, as cp -al and cp -r copies keep theirs: a refused run puts it back
    # (before the fifty-third round an empty file, put back empty: the finished run's record lost)
    own_file(path, keep=True)
    fd, made_lock = _open_lock(path)  # whether this run made it: a refused run removes it again
    locked = failed = unlockable = False
    before = b""  # the record of the run before this one, put back if this one fails
    found: list | None = None  # the folder as locked (_listing), to tell a refusal's
    try:
        for _ in range(8):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                if not _another_folders(fd, folder):
                    raise FolderInUse(_in_use(folder, _holder(fd))) from None
                # a copy's lock file held by its original's run: its own, as below (before,
                # refused, "in use" by a run of another folder)
                before = os.pread(fd, 4096, 0)
                if (parted := _own_lock(fd, path)) == fd:  # cannot make its own: refused
                    raise FolderInUse(_in_use(folder, _holder(fd))) from None
                if parted is not None:
                    fd, locked = parted, True
                    break
                before = b""  # parted meanwhile by another run of this folder: lock its file
            except OSError as e:  # e.g. ENOLCK on a network file system without locking
                log.warning("%s: cannot lock it (%s); running without the lock", path, e.strerror)
                locked, unlockable = False, True
                break
            if locked and same_file(fd, path):
                if os.fstat(fd).st_nlink < 2:  # the folder's own (a symbolic link: own_file)
                    break
                # shared by hard links: read before _own_lock, whose new file is empty (a
                # hard-linked copy's refusal put back nothing: an empty .lock)
                with contextlib.suppress(OSError):
                    before = os.pread(fd, 4096, 0)
                if (parted := _own_lock(fd, path)) is not None:
                    fd = parted
                    break
                before = b""  # parted meanwhile by another run of this folder: lock its file
            # the file was replaced after it was opened here, by a run that made the folder's
            # own lock (_own_lock) and holds it now: lock the file the name points to
            os.close(fd)
            fd, made_lock = _open_lock(path)  # made it: the run before removed the old one
            locked = False
        if locked and not before:  # the record of the run before, to put back if this one fails
            with contextlib.suppress(OSError):
                before = os.pread(fd, 4096, 0)
        if locked:
            record = {
                "command": command,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
                "folder": _folder_id(folder),  # a hard-linked copy's lock told apart
            }
            # who holds it, for the error of a second run; a disk too full for these few bytes
            # leaves it empty ("another process") rather than stopping a run that may have
            # nothing to write (a finished one), or whose first output names the full disk
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
            _HELD.add(fd)
            # under a brief lock on the folder, which every run holding its lock passes before
            # it writes: a shard taking its lock just after this one found no other held would
            # otherwise write beside the removal, which listed its new temporary files and
            # removed them under it (two shards starting at one instant)
            with folder_locked(folder):
                if any((folder / r).exists() for r in own) or wrote_nothing(folder):
                    remove_temporaries(folder, name)
            with contextlib.suppress(OSError):
                found = _listing(folder, name)
        try:
            yield folder
        except Exception:
            failed = True
            raise
    finally:
        with contextlib.suppress(OSError):  # the folder may be gone (moved or deleted)
            if locked and failed and found is not None:  # a full disk at the first thumbnail
                _remove_new_empty_folders(folder, found, name)  # left thumbs/ (overlays/)
            if locked and created and [p.name for p in folder.iterdir()] == [name]:
                # a run that wrote nothing (refused its input) leaves no folder behind, nor the
                # parents it made for it (runs/label of runs/label/car), while they are empty
                path.unlink()
                for made in created:
                    made.rmdir()
            elif locked and failed and found is not None and _listing(folder, name) == found:
                # refused (or failed) before changing the folder: it stays as it was given.
                # A lock file this run made is removed (before, an empty one was left in an
                # empty folder, or one holding only the user's files); else the record of the
                # run before is put back, so that a refusal leaves a finished output's files
                # as they were (engine info took a folder holding only the refused run's
                # record for a run killed before its first file: last_writer). A run that
                # failed after changing the folder (a review that wrote some thumbnails), or
                # was stopped (Ctrl-C, SIGTERM), keeps its own record, for engine info to name.
                # Until the close below, a run refused here is told the folder is in use by the
                # run before (its record, put back), a process that may have ended: microseconds
                # in which the message is wrong, never the guard (the lock is this run's)
                if made_lock:
                    path.unlink()
                else:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, before, 0)
            elif unlockable:  # ran unlocked (ENOLCK): the lock file it made holds no record
                # and locks nothing, and the folders it made are as the run left them: removed
                # as where there is no flock (before, an empty .lock stayed, in a folder made
                # for a run that wrote nothing)
                if made_lock:
                    path.unlink()
                for made in created:
                    made.rmdir()  # refused (OSError) once one is not empty: the rest stay
        _HELD.discard(fd)
        os.close(fd)  # releases the lock


def _remove_new_empty_folders(folder: Path, found: list[tuple[str, int, int]], own: str) -> None:
    """Remove the new empty folders in ``folder`` (those it did not hold when locked, ``found``:
    :func:`_listing`, holding nothing but empty folders; deepest first) when they are all the
    run changed: those a run that failed made for files it never wrote (the thumbnails'
    ``thumbs/`` of a review the disk had no room for), so that it counts as one that changed
    nothing. A run that changed anything else (wrote a file) keeps every new folder, an empty
    one too (a folder the user made in ``--out`` meanwhile), and so does one beside a held lock
    file of another name (:func:`others_writing`: another shard of a label run, whose folder
    made just now, its file not yet in, was removed under it). Not run after a Ctrl-C or
    SIGTERM (``exclusive`` calls it only on an ``Exception``)."""
    if others_writing(folder, own):
        return
    held = {name for name, _, _ in found}
    new = [
        entry.path
        for entry in os.scandir(folder)
        if entry.name not in held
        and entry.is_dir(follow_symlinks=False)
        and _only_folders(entry.path)
    ]
    gone = {os.path.basename(p) for p in new}
    if not new or [e for e in _listing(folder, own) if e[0] not in gone] != found:
        return  # nothing to remove, or the run changed more than made empty folders
    for path in new:
        for here, _, _ in os.walk(path, topdown=False):
            with contextlib.suppress(OSError):  # not empty: something went into it
                os.rmdir(here)


def _only_folders(path: str) -> bool:
    """Whether ``path`` (a folder) holds nothing but folders, down to the last (no file, no
    link: a link to a folder, a link's target, is kept)."""
    for here, dirs, files in os.walk(path):
        if files or any(os.path.islink(os.path.join(here, d)) for d in dirs):
            return False
    return True


def _folder_refusing(e: OSError, path: Path) -> OSError:
    """``e``, raised making the file ``path`` (new, or replacing one), naming ``path``'s folder
    where that folder is there and takes no new file (no write permission, a read-only file
    system): the folder is what the user has to change. ``e`` as it is otherwise: ``path``
    there in a folder that takes new files (that file refused), or no regular file (a device).
    A file already there counts too: an atomic write replaces it by a new file made beside it,
    and another user's run folder holds their ``.lock``; before, a rerun's ``--json F`` was
    ``error: F: Permission denied`` of a file the user may write, and such a ``--out``
    ``error: OUT/.lock: Permission denied``."""
    if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS) or not path.parent.is_dir():
        return e
    if os.path.lexists(path) and (not path.is_file() or os.access(path.parent, os.W_OK)):
        return e
    return OSError(e.errno, e.strerror, str(path.parent))


def _open_lock(path: Path) -> tuple[int, bool]:
    """``path`` opened for locking, and whether this call made the file. A folder that takes
    no new file (no write permission, a read-only file system) is named itself, as where it
    cannot be made: before the fifty-fourth round an existing ``--out`` without write
    permission was ``error: OUT/.lock: Permission denied``, a hidden file the user never
    named (and ``runs/label/car/.lock`` for a default one, where a new one reads
    ``runs/label/car``)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), True
    except FileExistsError:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666), False
    except OSError as e:
        raise _folder_refusing(e, path) from None


def _listing(folder: Path, lock: str) -> list[tuple[str, int, int]]:
    """What ``folder`` holds but its lock file ``lock``: each entry's name, size and
    modification time (a file rewritten in place changes them)."""
    entries = []
    for entry in os.scandir(folder):
        if entry.name != lock:
            st = entry.stat(follow_symlinks=False)
            entries.append((entry.name, st.st_size, st.st_mtime_ns))
    return sorted(entries)


def _own_lock(fd: int, path: Path) -> int | None:
    """A lock file of this folder's own in place of ``path``, locked (``fd``, locked, is closed):
    one shared by hard links with another folder (a project copied with ``cp -al``, an
    ``rsync --link-dest`` snapshot) held both: a run in one copy refused the other's, and wrote
    its record into the other's lock file (a symbolic link, ``cp -rs``, is replaced before the
    lock is taken: :func:`annotations.fileio.own_file`). The new file is locked before it takes
    the name, so no run of this folder can take it meanwhile. ``fd`` where the new file cannot
    be made (the shared one kept, as before); None, ``fd`` kept, where ``path`` no longer leads
    to ``fd``'s file: another run of this folder made its own meanwhile (the caller locks that
    one). Checked and replaced under a lock on the folder, as :func:`~annotations.fileio.own_file`
    does: of two runs of a copy parting it at once (one holding the shared file, the other
    finding it held, its record naming the original), both made their own, the second's
    replaced by the first's, and both went on."""
    import fcntl

    from annotations.fileio import folder_locked, same_file

    new = path.with_name(f"{path.name}.{os.getpid()}.new")
    with folder_locked(path.parent):
        if not same_file(fd, path):
            return None
        try:
            nfd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError:  # cannot make it: keep the shared one, as before
            return fd
        try:
            fcntl.flock(nfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(new, path)
        except OSError:
            os.close(nfd)
            with contextlib.suppress(OSError):
                new.unlink()
            return fd
    os.close(fd)
    return nfd


def _in_use(folder: Path, holder: str) -> str:
    return (
        f"{folder}: in use by {holder}; two runs writing one folder would mix their outputs: "
        "wait for it, stop it, or give another output folder"
    )


def check_not_in_use(folder: str | os.PathLike) -> None:
    """Refuse ``folder`` as :func:`exclusive` would, before the command reads what it holds:
    a ``--resume`` of a run whose first process has written no record yet (a requeued job
    while the first copy starts) was told the run records no dataset, as of a wrong folder."""
    if (holder := writer(folder)) is not None:
        raise FolderInUse(_in_use(Path(folder), holder))


def check_alone(folder: str | os.PathLike, own: str, beside: tuple[str, ...] = ()) -> None:
    """Refuse ``folder``, whose lock file ``own`` this process holds, while a lock file of another
    name there is held, but for those of ``beside`` (the other shards of a sharded label run,
    which label the folder together): one line naming the folder and each live writer, as
    :func:`exclusive` names the holder of ``own``. Before the fifty-fourth round an ``engine
    label`` without ``--shard`` into a run a shard of it was labelling (and a shard beside a run
    without ``--shard``) took its own lock file and went on: two processes labelled the same
    images into one manifest. Called once ``own`` is held, so two starting at once refuse each
    other rather than both going on."""
    held = {name: who for name, who in writers(folder).items() if name not in (own, *beside)}
    if held:
        names = ", ".join(f"{who}{as_shard(name)}" for name, who in held.items())
        raise FolderInUse(_in_use(Path(folder), names))


def as_shard(name: str) -> str:
    """`` as shard 1/2`` for a shard's lock file (``.lock-shard1of2``), else nothing: how
    :func:`check_alone` names a live shard and ``engine info`` a shard's last writer."""
    index, sep, count = name.removeprefix(f"{LOCK_NAME}-shard").partition("of")
    return f" as shard {index}/{count}" if sep and index.isdigit() and count.isdigit() else ""


def temporaries(folder: str | os.PathLike) -> list[Path]:
    """The temporary files of atomic writes (:func:`annotations.fileio.is_temporary`,
    ``.NAME.*.tmp``) in ``folder`` and its subfolders, but for subfolders with lock files of
    their own (another run's output, a demo's stage: that run's to remove), sorted: what runs
    killed while writing left, for ``engine info`` to count. Hidden subfolders are not walked
    but for the engine's own staging folders (:func:`annotations.fileio.is_staging`), as in
    :func:`wrote_nothing`: an output that is also a git or DVC repository (a synth dataset
    under version control) had its ``.git``, ``.dvc`` and ``.venv`` walked, slow on a big
    ``.git``, and a file there named like a temporary file (another tool's) removed."""
    from annotations.fileio import is_temporary

    found = []
    for here, files in _walk(folder, others_outputs=False):
        found += [Path(here, f) for f in files if is_temporary(f)]
    return sorted(found)


def _walk(folder: str | os.PathLike, others_outputs: bool = True) -> Iterator[tuple[str, list]]:
    """``(folder, file names)`` of ``folder`` and its subfolders, as :func:`os.walk`, but not
    into hidden subfolders other than the engine's own staging folders
    (:func:`annotations.fileio.is_staging`: a user's ``.git``, ``.dvc``, ``.venv``), nor, with
    ``others_outputs`` False, into subfolders with lock files of their own (another run's
    output, a demo's stage): the walk of :func:`temporaries` and :func:`record_set_aside`."""
    from annotations.fileio import is_staging

    for here, dirs, files in os.walk(folder):
        dirs[:] = [
            d
            for d in dirs
            if (not d.startswith(".") or is_staging(d))
            and (others_outputs or not any(Path(here, d).glob(f"{LOCK_NAME}*")))
        ]
        yield here, files


def others_writing(folder: str | os.PathLike, own: str = LOCK_NAME) -> bool:
    """Whether another process may be writing ``folder`` beside the one holding its lock file
    ``own``: a lock file of another name there is held (a shard of a label run, or the run
    beside a shard), or there are no locks to tell (Windows)."""
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return True
    return any(_held_by(p) for p in Path(folder).glob(f"{LOCK_NAME}*") if p.name != own)


def wrote_nothing(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but hidden files (lock files, temporary files): the
    run before was killed before its first file was in, and left its temporaries beside no
    record of its own. Before, the rerun kept them (``engine synth`` killed while writing
    ``synth.partial.json``: its ``.synth.partial.json.*.tmp`` stayed in the finished dataset).
    Not where one is a folder but a staging folder of the engine's own
    (:func:`annotations.fileio.is_staging`: a first export killed writing into it): ``.git``,
    ``.venv``, a folder of the user's given as ``--out``, which :func:`remove_temporaries` would
    walk into. False where the folder cannot be listed (``chmod 333``, a drop box): unknown,
    nothing removed."""
    from annotations.fileio import is_staging

    try:
        with os.scandir(folder) as entries:
            return all(
                e.name.startswith(".")
                and (not e.is_dir(follow_symlinks=False) or is_staging(e.name))
                for e in entries
            )
    except OSError:
        return False


def remove_temporaries(folder: Path, own: str = LOCK_NAME) -> int:
    """Remove :func:`temporaries` of ``folder``, whose lock file ``own`` this process holds, but
    those a live write holds (:func:`annotations.fileio.remove_if_dead`), and none while a
    lock file of another name there is held (another shard of a label run, or the run
    beside a shard, writing it too: its temporaries are live): each run killed mid-write left
    one per file it was writing, and no rerun removed them (a 13K-image run killed and resumed
    again and again piled them up). A shard removes them too while no other shard runs: before
    the forty-seventh round only a run without ``--shard`` did, so a sharded run whose killed
    shard was rerun to the end kept them. :func:`exclusive` calls it under a brief lock on the
    folder (:func:`annotations.fileio.folder_locked`) that every run passes once it holds its
    lock, before it writes: a shard whose lock was taken after the check above waits (up to
    :data:`annotations.fileio.FOLDER_LOCK_WAIT_S`, past which the holder is taken for another
    program's). Returns how many."""
    from annotations.fileio import remove_if_dead

    if others_writing(folder, own):
        return 0
    # not one a live write holds (its writer's lock: annotations.fileio.atomic_file), as of
    # engine compare --json or evaluate --json into a run's folder: before the fifty-eighth
    # round such a file being written as the run started there was removed under it
    removed = sum(remove_if_dead(path, unknown=True) for path in temporaries(folder))
    if removed:
        log.info("%s: removed %d temporary files of a run killed while writing", folder, removed)
    return removed


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
    (:func:`exclusive`), its lock file empty, and :func:`writer` cannot find it: an empty lock
    file is a run going on or one killed, which no probe tells apart. Before the fifty-seventh
    round's review ``.lock`` alone was probed, so a shard going on there was told stopped."""
    from annotations.fileio import try_lock

    try:
        import fcntl  # noqa: F401 - only whether it exists
    except ImportError:  # Windows: no flock, and exclusive makes no lock file
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


def missing_folders(folder: Path) -> list[Path]:
    """The folders ``folder.mkdir(parents=True)`` makes: ``folder`` and its missing parents,
    deepest first."""
    missing = []
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    return missing


@contextlib.contextmanager
def folders_removed_on_failure(file: str | os.PathLike) -> Iterator[None]:
    """For a command writing one file (``--json F``, ``--plot F``, ``annotate pick --out F``):
    the parent folders the write makes for ``file`` (:func:`missing_folders`) are removed again
    when the block fails (a full disk at the first write left a new, empty folder behind); the
    temporary files that writes of ``file`` killed mid-write left beside it are removed first
    (:func:`annotations.fileio.remove_dead_temporaries`: no run lock guards such a file, and
    before the fifty-eighth round no rerun removed them). A
    new ``file`` refused by a folder that takes no new file (no write permission) names that
    folder (:func:`_folder_refusing`): before the fifty-fourth round ``pick --out F`` said
    ``--out F: the folder cannot be created: FOLDER takes no new folders`` of a file in a folder
    that was there.
    Only empty ones go (rmdir); not in ``atomic_write_bytes``, whose writer threads share
    folders (one thread's rmdir would race another's file going in)."""
    from annotations.fileio import remove_dead_temporaries

    created = missing_folders(Path(file).parent)
    remove_dead_temporaries(file)
    try:
        yield
    except BaseException as e:
        with contextlib.suppress(OSError):  # rmdir refuses a folder something went into
            for made in created:
                made.rmdir()
        if (
            isinstance(e, OSError)
            and isinstance(e.filename, str)
            and Path(e.filename) == Path(file)
        ):
            raise _folder_refusing(e, Path(file)) from None
        raise


def earlier_name(record: str) -> str:
    """The name :func:`record_set_aside` gives ``record`` while a rerun writes:
    ``.report.json.earlier``, ``.review.json.earlier``."""
    return f".{record}.earlier"


def set_aside_as(record: str) -> str:
    """Where :func:`record_set_aside` puts ``record`` (a path relative to its folder, ``/``
    separated): ``report/summary.json`` -> ``report/.summary.json.earlier``."""
    head, _, name = record.rpartition("/")
    return f"{head}/{earlier_name(name)}" if head else earlier_name(name)


@contextlib.contextmanager
def record_set_aside(
    folder: str | os.PathLike, record: str, files: tuple[str | os.PathLike, ...] | None = None
) -> Iterator[None]:
    """For a command that writes its ``record`` last, after files an earlier run's record lists
    (``engine report``'s ``report.json`` after its chart, overlays and ``report.md``;
    ``engine review``'s ``review.json`` after its thumbnails): entered just before the first of
    them is replaced, it sets the earlier ``folder/record`` aside (:func:`earlier_name`), so
    that a rerun killed among its new files leaves no record, and ``engine info`` says the
    output did not finish (before, the earlier record stayed beside the new files, and info
    read a finished output, a mix of two runs). Once the block has put the new record in, the
    set-aside one is removed. A block that ends without it (an error, Ctrl-C, SIGTERM) having
    changed no file in the folder (a full disk at the first thumbnail) puts the earlier record
    back: before the fifty-seventh round such a rerun left a finished output read as "not
    finished". One that changed a file leaves it aside (the folder is no longer that run's),
    and so does one that found it aside already (a killed rerun's: the folder holds its files).
    ``engine demo`` sets its ``report/summary.json`` aside as it takes its folder (its stages
    rewrite the reports the summary sums up). ``files``: the files the block writes, where they
    are single files among other things rather than a folder of their own (``engine compare``'s
    ``--markdown`` and ``--plot`` beside its ``--json`` record): those alone tell whether it
    changed one; by default every file under ``folder`` does."""
    folder = Path(folder)
    path = folder / record  # in a subfolder too: a demo's report/summary.json
    aside = path.with_name(earlier_name(path.name))
    skip = (os.path.relpath(path, folder), os.path.relpath(aside, folder))
    # listed before the record moves: Ctrl-C while a large folder is listed (thousands of
    # thumbnails, a network share) left it aside, a finished output read as not finished
    before = _files(folder, skip, files) if path.is_file() else None
    moved = False
    try:
        if before is not None:
            os.replace(path, aside)
            moved = True
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.exists():
                aside.unlink(missing_ok=True)
            elif moved and _files(folder, skip, files) == before:
                os.replace(aside, path)


def _files(
    folder: Path, skip: tuple[str, ...], files: tuple[str | os.PathLike, ...] | None = None
) -> dict[str, tuple[int, int, int]]:
    """Each file under ``folder`` (relative path), or each of ``files`` that is there (as
    given), with its size, modification time and inode number, for :func:`record_set_aside`
    to tell whether a run changed one: not its lock files, the temporary files of atomic
    writes (a failed write removes its own), nor ``skip`` (the record and its set-aside name,
    relative paths); not in hidden folders (:func:`temporaries`' rule). The inode tells a file
    an atomic write replaced within one tick of a coarse clock (FAT: 2 s), the same size:
    before, read as unchanged, and the earlier record put back."""
    from annotations.fileio import is_temporary

    listed = []  # (key, path)
    if files is not None:  # as given: another folder's (another drive's) have no relative path
        listed = [(os.fspath(f), os.fspath(f)) for f in files]
    else:
        for here, names in _walk(folder):
            for name in names:
                if not name.startswith(LOCK_NAME) and not is_temporary(name):
                    full = os.path.join(here, name)
                    listed.append((os.path.relpath(full, folder), full))
    found = {}
    for rel, full in listed:
        if rel in skip:
            continue
        with contextlib.suppress(OSError):  # removed meanwhile (or not there)
            st = os.lstat(full)
            found[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return found


def writer(folder: str | os.PathLike) -> str | None:
    """The process writing ``folder`` now, as its :func:`exclusive` recorded it (``engine label
    (pid 12 on host, since ...)``; a sharded label run holds a lock file per shard, and each
    running shard is named), for a command that reads the folder; None when no process holds
    one of its lock files (the run finished, or was killed: the OS freed its lock), or where
    ``flock`` does not exist.

    The probe takes a shared lock and drops it at once: a run starting at that instant would be
    told the folder is in use, and its rerun starts it."""
    return ", ".join(writers(folder).values()) or None


def writers(folder: str | os.PathLike) -> dict[str, str]:
    """:func:`writer`'s processes by the lock file each holds (``.lock``, a label run's shard's
    ``.lock-shard0of2``): ``engine info`` tells the running shards of a run from the others."""
    try:
        import fcntl  # noqa: F401 - only whether it exists
    except ImportError:  # Windows: no flock, no lock to find
        return {}
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.name: h for p in sorted(folder.glob(f"{LOCK_NAME}*")) if (h := _held_by(p))}


def last_writer(folder: str | os.PathLike, name: str = LOCK_NAME) -> str | None:
    """The process that last held ``folder``'s lock (``name``: a label run's shard's
    ``.lock-shard0of2``), as its :func:`exclusive` recorded it (``engine predict (pid 12 on
    host, since ...)``), held now or not; None without a record. A folder that holds nothing
    else was left by a run stopped (or killed) before it wrote anything: ``engine info`` names
    that run rather than "no image split folders found"."""
    try:
        fd = os.open(Path(folder) / name, os.O_RDONLY)
    except OSError:
        return None
    try:
        holder = _holder(fd)
    finally:
        os.close(fd)
    return None if holder == "another process" else holder


def check_not_being_written(folder: str | os.PathLike, command: str, what: str) -> None:
    """Refuse to read ``folder`` (``what`` it holds: "its pseudo labels") while another process
    writes it (:func:`writer`): one line naming the folder, the writer and what to do. Read now,
    the command would take a half-written output for the whole (a label run's first images, a
    prediction folder whose maps are being replaced) and say nothing."""
    if (holder := writer(_output_holding(Path(folder)))) is not None:
        raise FolderInUse(
            f"{folder}: {holder} is writing it now; {command} would read {what} half written: "
            f"wait for it to finish, then run {command} again"
        )


def _output_holding(folder: Path) -> Path:
    """``folder``, or the engine output it lies in (a label run's ``labels/<split>``, a fused
    dataset's), whose lock files a writer holds: given a run's split folder, as ``engine
    compare`` asks for, a run being labelled was read half written. Two levels up at most, and
    only an output with its record (a demo's folder holds none: its stages read its subfolders
    while it holds its own lock)."""
    from annotations.fileio import outputs_around

    return next((f for f, _ in outputs_around(folder)), folder)


def check_output_folder(folder: str | os.PathLike, own: tuple[str, ...], command: str = "") -> None:
    """A command's output folder (``--out``) that exists as a file is refused in one line naming
    it, the same for every command, before anything is written.

    ``own`` (no default, here nor in :func:`holds_lock`, where two defaults once differed) is
    the records ``command`` writes there (a label run's ``run.json``): a folder that holds none
    of them but is another engine output
    (:func:`annotations.fileio.output_kind`) or a dataset's root is refused too: the command's
    files would mix with that folder's, and its ``--force`` would replace what it holds (a
    fusion into a label run wrote its label maps over the pseudo labels)."""
    from annotations.fileio import check_expanded, check_not_a_file, folder_is, outputs_inside

    path = Path(folder)
    check_not_a_file(folder)
    check_expanded(folder, command)
    check_not_in_dataset(path, command)
    check_not_in_output(path, command)
    if not path.is_dir() or any((path / r).is_file() for r in own):
        return
    if what := folder_is(path):
        raise ValueError(
            f"{folder}: it is {what}; {command} needs a folder of its own: give another --out"
        )
    if inside := outputs_inside(path):  # runs/label for runs/label/car
        raise ValueError(
            f"{folder}: it holds engine outputs ({inside}); {command} needs a folder of its own: "
            "give another --out, e.g. a new folder in it"
        )


def check_not_in_dataset(path: Path, command: str) -> None:
    """Refuse an output folder that is a dataset's ``images/`` or ``annotations/`` folder, or a
    folder right in one (a split's): what the command writes there would be read as the
    dataset's splits, or as a split's images or labels (``engine synth --out D/images`` made
    splits named ``images`` and ``annotations`` of D). A folder deeper in is none of them. The
    folder is checked as given and as its symbolic links lead (:func:`places`)."""
    from annotations.fileio import is_dataset_root

    for here, via in places(path):
        for holder in (here, here.parent):
            root = holder.parent
            if holder.name in ("images", "annotations") and is_dataset_root(root):
                what = (
                    f"the {holder.name}/ folder of the dataset {root}, whose folders are its splits"
                    if holder == here
                    else f"a split folder of the dataset {root} ({holder.name}/{here.name}), "
                    "whose files are the split's"
                )
                raise ValueError(
                    f"{path}: it is{via} {what}; {command} needs a folder of its own: give "
                    "another --out"
                )


def places(path: Path) -> list[tuple[Path, str]]:
    """``path`` as given (absolute) and, where its symbolic links lead elsewhere, where they
    lead (the part that exists followed), each with the words that say how it was reached.
    Before, an ``--out`` that was a link to a dataset's split folder (``runs/test ->
    data/images/test``) was taken for a folder of its own: ``engine fuse`` wrote a fused
    dataset in among the split's images. A path whose ``..`` lead where the OS takes them,
    without links (``data/images/test/..``), is one place, named as reached directly."""
    here = path.absolute()
    real = Path(os.path.realpath(here))
    if real == Path(os.path.normpath(here)):  # no link on the way ('..' folded as the OS does)
        return [(real, "")]
    return [(here, ""), (real, ", through symbolic links,")]


def split_folders(record: str) -> tuple[str, ...]:
    """The folders of an engine output (named by its ``record``) that hold its files by split:
    an output written there reads as more of its splits (engine info listed a label run's
    splits "labels" and "sources" after engine fuse --out RUN/labels). A label run's are
    :data:`annotations.labelrun.RUN_FOLDERS`, imported here (the package loads OpenCV, which
    ``engine --help`` must not)."""
    from annotations.labelrun import RUN_FOLDERS

    return {
        "run.json": RUN_FOLDERS,
        "fuse.json": ("labels", "sources"),
        "subset.json": ("masks",),
    }.get(record, ())


def check_not_in_output(path: Path, command: str) -> None:
    """Refuse an output folder that is one of :func:`split_folders` of an engine output, or a
    folder right in one (a split's). A folder elsewhere in an output (``RUN/review``, the
    review's default) is allowed. The folder is checked as given and as its symbolic links lead
    (:func:`places`)."""
    from annotations.fileio import output_kind

    for here, via in places(path):
        for holder in (here, here.parent):
            kind = output_kind(holder.parent)
            if kind is not None and holder.name in split_folders(kind[0]):
                given = path.parent if holder == here else path.parent.parent  # as typed
                typed = here == path.absolute()  # not through links, nor '..' folded
                output = f"{given if typed else holder.parent}, {kind[1]}"
                what = (
                    f"the {holder.name}/ folder of {output}, whose folders are its splits"
                    if holder == here
                    else f"a split folder ({holder.name}/{here.name}) of {output}, whose files "
                    "are the split's"
                )
                raise ValueError(
                    f"{path}: it is{via} {what}; {command} needs a folder of its own: give "
                    "another --out"
                )


def holds_lock(
    command: str,
    folder: Callable[[Any], Any],
    name: Callable[[Any], str] | None = None,
    *,
    own: tuple[str, ...],
    begun: tuple[str, ...] = (),
    aside: str | None = None,
):
    """Decorator: ``fn(cfg, ...)`` runs holding :func:`exclusive` on ``folder(cfg)`` (lock file
    ``name(cfg)``, default :data:`LOCK_NAME`), once :func:`check_output_folder` has passed it
    (``own``: the records the command writes there, given as there, and to :func:`exclusive`).
    ``begun``: what the command writes before its record (a report's ``chart.png``), to
    :func:`exclusive` only (a run killed among them is its own), as ``engine review`` gives
    ``thumbs``: not to :func:`check_output_folder`, where a file of that name (a user's figure
    in a dataset's root) let the folder pass as the command's own. ``aside``: a record set
    aside while the command runs (:func:`record_set_aside`: a demo's summary); set aside, it is
    one of ``own`` (a rerun stopped with it aside is the command's own folder)."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def run(cfg: Any, *args: Any, **kwargs: Any) -> T:
            # the record set aside marks the folder as the command's own too: a demo rerun
            # stopped in its synth stage (no summary, data/synth.partial.json) was refused as
            # a folder holding other engine outputs (its fused/, train/), not resumable there
            ours = (*own, set_aside_as(aside)) if aside else own
            check_output_folder(folder(cfg), ours, command)
            lock = LOCK_NAME if name is None else name(cfg)
            with (
                exclusive(folder(cfg), command, lock, ours + begun),
                record_set_aside(folder(cfg), aside) if aside else contextlib.nullcontext(),
            ):
                return fn(cfg, *args, **kwargs)

        return run

    return wrap
