"""A command's record set aside while a rerun rewrites the files it lists
(:func:`record_set_aside`), and the name it is set aside as (:func:`earlier_name`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from engine.runlock.holders import LOCK_NAME
from engine.runlock.leftovers import _walk


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
    relative paths); not in hidden folders (:func:`~engine.runlock.leftovers.temporaries`' rule).
    The inode tells a file an atomic write replaced within one tick of a coarse clock (FAT: 2 s),
    the same size: before, read as unchanged, and the earlier record put back."""
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
