"""What killed writers leave: :func:`~annotations.fileio.atomic.atomic_file`'s temporary files
(``.NAME.*.tmp``, :func:`is_temporary`) and :func:`~annotations.fileio.swaps.staged`'s hidden
staging folders (:func:`is_staging`); which temporaries are dead (no writer holds their lock)
and their removal."""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

from annotations.fileio.atomic import TMP_SUFFIX, _temp_prefix, fcntl_module, same_file, try_lock

log = logging.getLogger(__name__)


TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(TMP_SUFFIX), re.S)  # a stem with \n too


def is_temporary(name: str) -> bool:
    """Whether the file name ``name`` is one of :func:`~annotations.fileio.atomic.atomic_file`'s
    temporary files."""
    return TEMPORARY.fullmatch(name) is not None


def remove_dead_temporaries(path: str | os.PathLike) -> int:
    """Remove the temporary files of ``path`` (``.NAME.*.tmp`` beside it, :func:`is_temporary`)
    that writes killed while writing it left: those whose lock no process holds
    (:func:`~annotations.fileio.atomic._locked_as_writers`); a live write's is left to it. For the
    outputs of one file that no run lock guards (``engine compare --json``, ``--markdown``,
    ``--plot``, ``evaluate --json``, ``info --plot``, ``annotate pick``'s list): before, each
    ``kill -9`` during such a write left one beside the output for ever, as nothing told a killed
    writer's from a live one's. Where there are no locks (Windows, ENOLCK) none is removed, as
    before. One that cannot be removed (another user's in a sticky folder: EPERM) stays, and the
    write goes on: before, the refusal failed the write, naming the temporary file. Returns how
    many."""
    removed = 0
    for tmp in _temporaries_of(Path(path)):
        try:
            removed += remove_if_dead(tmp)
        except OSError as e:  # left, as before the fifty-eighth round; engine info names it
            log.debug("%s: cannot remove this killed write's temporary file (%s)", tmp, e.strerror)
    return removed


def dead_temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporary files of ``path`` beside it that :func:`remove_dead_temporaries` would
    remove now (no process holds their lock), for ``engine info`` to name; sorted."""
    return sorted(Path(tmp) for tmp in _temporaries_of(Path(path)) if _lock_free(tmp))


def _temporaries_of(path: Path) -> list[str]:
    """The temporary files of ``path`` beside it (``.NAME.`` + 8 characters + ``.tmp``: not
    another file's, ``.NAME.bak.*.tmp``); none where there are no locks to tell a killed
    write's from a live one's (Windows, where no probe could be made), or no folder to list."""
    if fcntl_module() is None:
        return []
    own = re.compile(re.escape(_temp_prefix(path)) + r"[a-z0-9_]{8}" + re.escape(TMP_SUFFIX), re.S)
    try:
        with os.scandir(path.parent) as entries:
            return [e.path for e in entries if own.fullmatch(e.name)]
    except OSError:  # no folder yet, or one that cannot be listed: nothing known
        return []


# how a temporary file is opened to probe its lock: not through a link, nor blocked on a FIFO
_PROBE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def _lock_free(tmp: str) -> bool:
    """Whether the regular file ``tmp`` is there and no process holds its lock (a probe taken
    and dropped at once, as :func:`remove_if_dead` takes it); False where that is not known."""
    try:
        fd = os.open(tmp, _PROBE)
    except OSError:
        return False
    try:
        return _probe(fd) is True
    finally:
        os.close(fd)


def _probe(fd: int) -> bool | None:
    """Take a shared ``flock`` on the temporary file open at ``fd`` (held until ``fd`` closes):
    True where no process holds its lock, False where one does (its writer lives), None where
    that is not known (not a regular file, no locks here: ENOLCK)."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return None
    return try_lock(fd)


def remove_if_dead(tmp: str | os.PathLike, unknown: bool = False) -> bool:
    """Remove the temporary file ``tmp`` unless a process holds its lock (its writer lives:
    :func:`~annotations.fileio.atomic._locked_as_writers`); whether it did. The probe's shared lock
    is held through the removal: a writer that made the file just now and locks it after finds it
    gone, or held, and makes another. ``unknown``: whether to remove one whose lock cannot be probed
    (not readable, a link or not a file, a file system refusing locks), as a run holding its
    folder's lock did before the fifty-eighth round (:func:`engine.runlock.remove_temporaries`);
    a single file's next write leaves it (:func:`remove_dead_temporaries`)."""
    if fcntl_module() is None:  # Windows: no lock to probe
        return unknown and _removed(tmp)
    try:
        fd = os.open(tmp, _PROBE)
    except FileNotFoundError:  # gone meanwhile (renamed into place)
        return False
    except OSError:  # a link, not readable
        return unknown and _removed(tmp)
    try:
        if (free := _probe(fd)) is None:  # not a file, or no locks here (ENOLCK)
            return unknown and _removed(tmp)
        # not where it was renamed into place before it was locked: the output now
        return free and same_file(fd, tmp) and _removed(tmp)
    finally:
        os.close(fd)  # releases the probe's lock


def _removed(path: str | os.PathLike) -> bool:
    """Remove ``path``; whether it was there to remove."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


STAGING = re.compile(r"\..+\.new-[a-z0-9_]{8}", re.S)  # mkdtemp(prefix=PREFIX + "new-")


def is_staging(name: str) -> bool:
    """Whether the folder name ``name`` is one of :func:`~annotations.fileio.swaps.staged`'s hidden
    staging folders."""
    return STAGING.fullmatch(name) is not None
