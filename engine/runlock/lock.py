"""Holding a run folder's lock (:func:`exclusive`): taking it, writing the holder's record, and
leaving the folder as it was when the run fails before changing it; the parent folders a one-file
write makes, removed when it fails (:func:`folders_removed_on_failure`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from engine.runlock.holders import (
    _HELD,
    LOCK_NAME,
    FolderInUse,
    _another_folders,
    _folder_id,
    _holder,
    _in_use,
    others_writing,
)
from engine.runlock.leftovers import remove_temporaries, wrote_nothing

log = logging.getLogger(__name__)


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
    from annotations.fileio import fcntl_module

    folder = Path(folder)
    fcntl = fcntl_module()  # None on Windows: no flock
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
    from annotations.fileio import fcntl_module, folder_locked, same_file

    fcntl = fcntl_module()  # there: the caller holds a lock on fd

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
