"""Append-only logs such as ``manifest.jsonl``: lines appended under a lock after cutting a
torn last line (:func:`append_lines`) and compacted (:func:`compact_manifest`); a log that is a
link made the folder's own file first (:func:`own_file`), under the folder's lock
(:func:`folder_locked`)."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annotations.fileio.atomic import atomic_file, fcntl_module, same_file, sync
from annotations.fileio.errors import is_disk_error, naming

log = logging.getLogger(__name__)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log such as ``manifest.jsonl`` and fsync it (:func:`append_lines`)."""
    append_lines(path, [line])


def append_lines(path: str | os.PathLike, lines: list[str]) -> None:
    """Append lines to a log such as ``manifest.jsonl`` in one write and fsync them once: a
    fused dataset copied with its inputs (``cp -r``) has every image's record refreshed, one
    fsync each took longer than checking the images' bytes.

    A single ``write`` of a short line in append mode is not torn by a kill on POSIX local file
    systems in practice, but a crash or a network file system can leave a last line without its
    newline. Readers skip such a torn last line (:func:`~annotations.fileio.reads.read_jsonl`); here
    it is cut off before the next line goes in, which would otherwise be glued to it and make a
    middle line that no reader can skip (a long write torn leaves its whole lines and one torn last
    line). The log is locked (``flock``) meanwhile, so processes sharing it (label
    shards) never cut each other's lines.

    A log with other hard links (a project copied with ``cp -al``, an ``rsync --link-dest``
    snapshot), or that is a symbolic link to a file (a project copied as a tree of links with
    ``cp -rs`` or ``lndir``), is first replaced by a copy of its own, as every other output is
    replaced by a rename: appending in place wrote the copy's lines into the original's log too.
    """
    if any("\n" in line for line in lines):
        raise ValueError("append_lines takes one line per item, without newlines")
    if not lines:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if os.path.islink(path) and not os.path.exists(path):
            own_file(path)  # a link to nothing: opened, it made the file in another folder
        for _ in range(8):  # reopened when another writer replaced the file meanwhile
            with open(path, "a+b") as f, _locked(f):  # a+: read the end; writes still append
                if not _is_own(f, path):
                    continue
                _cut_torn_line(f)
                f.write("".join(line + "\n" for line in lines).encode("utf-8"))
                f.flush()
                sync(f.fileno())
                return
        raise OSError(errno.EBUSY, "replaced by another process while appending", str(path))
    except OSError as e:  # a full disk's write names no file
        if e.filename is None:
            raise naming(e, path) from None
        raise


def own_file(path: Path, keep: bool = True) -> None:
    """Replace the symbolic link ``path`` (a project copied as a tree of links, ``cp -rs``) by a
    file of its folder's own: a copy of the file it leads to with ``keep``, else (or where it
    leads nowhere: the original was moved or removed) an empty one. Opened as it was, a link
    that led nowhere made the file in the original's folder, or failed with "No such file or
    directory" once that folder was gone. Done under a lock on the folder and checked again
    there, so processes doing it at once make one file, not one each. Nothing to do where
    ``path`` is no link (any more)."""
    if not os.path.islink(path):
        return
    with folder_locked(path.parent):
        if not os.path.islink(path):
            return  # another process made it its file meanwhile
        with atomic_file(path) as f:
            if keep:
                with contextlib.suppress(FileNotFoundError), open(path, "rb") as linked:
                    shutil.copyfileobj(linked, f)


# how long folder_locked waits for another process's lock on the folder: an engine run holds it
# for a check or a walk (under a second); longer is another program's (flock(1) on the folder)
FOLDER_LOCK_WAIT_S = 10.0


@contextlib.contextmanager
def folder_locked(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` itself while the block runs; none where there are no
    locks (Windows, some network file systems), as for the logs (:func:`_locked`). For a
    check-then-replace of a file there that another process may do at once (:func:`own_file`,
    :func:`engine.runlock.exclusive` parting a lock file shared by hard links), and for the
    walk removing killed runs' temporaries there, which every run passes once it holds its lock
    (:func:`engine.runlock.exclusive`: a shard starting meanwhile waits for it). Another
    process holding it past :data:`FOLDER_LOCK_WAIT_S` is another program's, not a brief hold
    of an engine run's (util-linux ``flock runs/x engine label --out runs/x`` holds it around
    the command itself): said, and the block runs without it, as where there are no locks.
    Before, it was waited for with no timeout, and such a command waited for its own wrapper
    for ever, saying nothing."""
    fd = None
    if fcntl_module() is not None:  # Windows: no flock
        with contextlib.suppress(OSError):
            fd = os.open(folder, os.O_RDONLY)
    try:
        if fd is not None:
            _lock_a_while(fd, folder)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _lock_a_while(fd: int, folder: Path) -> None:
    """:func:`folder_locked`'s ``flock`` on ``fd`` (``folder``), waited for up to
    :data:`FOLDER_LOCK_WAIT_S`; not taken where the file system refuses it."""
    fcntl = fcntl_module()

    deadline = time.monotonic() + FOLDER_LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        except OSError:  # no locks there: ENOLCK; EBADF on NFS, whose exclusive flock needs a
            return  # file open for writing, which a folder cannot be
    log.warning(
        "%s: another process holds a lock on the folder itself (past %g s, longer than an "
        "engine run holds it: flock(1) on the folder?); going on without it",
        folder,
        FOLDER_LOCK_WAIT_S,
    )


def _is_own(f: Any, path: Path) -> bool:
    """Whether the open, locked log ``f`` is still the file at ``path`` and has no other hard
    link, nor is reached by a symbolic link. One with other links, or a link, is replaced by a
    copy (False: open it again); so is one that
    another writer replaced while this one waited for the lock."""
    if not same_file(f.fileno(), path):
        return False
    st = os.fstat(f.fileno())
    linked = os.path.islink(path)  # a tree of links (cp -rs, lndir): the log is the original's
    if (st.st_nlink <= 1 and not linked) or not stat.S_ISREG(st.st_mode) or os.name == "nt":
        return True  # Windows: an open file cannot be renamed onto (and links are rare there)
    f.seek(0)
    with atomic_file(path) as copy:  # under the old file's lock: no line lost meanwhile
        shutil.copyfileobj(f, copy)
    return False


@contextlib.contextmanager
def _locked(f: Any) -> Any:
    """An exclusive ``flock`` on the open file ``f`` while the block runs (none on Windows)."""
    if (fcntl := fcntl_module()) is None:  # Windows: logs are written by one process there
        yield
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    except OSError:  # a file system without locks (some FUSE mounts): append unlocked, as before
        yield
        return
    try:
        yield
    finally:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _cut_torn_line(f: Any) -> None:
    """Truncate the binary file ``f`` (opened ``a+b``) after its last newline when it does not
    end with one (looked for 64 KiB at a time from the end)."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return
    f.seek(end - 1)
    if f.read(1) == b"\n":
        return
    while end > 0:
        start = max(0, end - (1 << 16))
        f.seek(start)
        at = f.read(end - start).rfind(b"\n")
        if at >= 0:
            f.truncate(start + at + 1)
            return
        end = start
    f.truncate(0)  # one torn line and nothing before it


# A manifest is compacted once it holds this many times as many lines as it needs
COMPACT_FACTOR = 4


def compact_manifest(path: str | os.PathLike, factor: int = COMPACT_FACTOR) -> int:
    """Rewrite a ``manifest.jsonl`` with the lines its readers use, once it holds more than
    ``factor`` times as many; returns how many lines went (0: left as it is).

    A label run's or a fusion's manifest gets a line per image each time the image is done again
    (relabelled with other settings, retried, fused again, its stamps refreshed after a copy),
    and every reader reads it whole. Kept, in their order, byte for byte: each image's
    (``split``, ``stem``) latest line and its latest ``ok`` line, and every line that names no
    image; what every reader takes from the file (the latest line per image; the latest ``ok``
    one) is unchanged, and an engine of before reads the kept lines as it read them. A manifest
    with a line that is not JSON before its last is left alone (the readers name that line).

    The caller holds the folder's lock, which no other writer of the manifest holds beside it
    (a label run's shards append to one manifest under their own locks: compact only when no
    other is running). The rewrite also holds the manifest's own lock (:func:`append_line`'s),
    and an append waiting for it goes to the new file (:func:`_is_own`)."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, "rb") as f, _locked(f):
        if not _is_own(f, path):  # replaced meanwhile, or another copy's: leave it to the next
            return 0
        f.seek(0)
        lines = [line + b"\n" for line in f.read().split(b"\n")]
        lines.pop()  # b"\n" after the last newline; or a torn last line, cut by the next append
        latest: dict[tuple[str, str], int] = {}
        keep = set()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:  # not JSON, not UTF-8: the readers say which line
                return 0
            if not isinstance(rec, dict) or "split" not in rec or "stem" not in rec:
                keep.add(i)
                continue
            key = json.dumps([rec["split"], rec["stem"]])  # as the readers key it, hashable
            latest[key, "latest"] = i
            if rec.get("status") == "ok":
                latest[key, "ok"] = i
        keep |= set(latest.values())
        if len(lines) <= factor * max(len(keep), 1):
            return 0
        try:
            with atomic_file(path) as new:
                new.writelines(lines[i] for i in sorted(keep))
        except OSError as e:  # a full disk: a call with nothing to write must still not fail
            if not is_disk_error(e):
                raise
            return 0  # the file as it was (the rewrite is atomic); a later call compacts it
        return len(lines) - len(keep)
