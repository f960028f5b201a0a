"""What runs killed mid-write leave in a folder: the temporary files of atomic writes
(:func:`temporaries`), and their removal by the run that locks the folder next
(:func:`remove_temporaries`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from engine.runlock.holders import LOCK_NAME, others_writing

log = logging.getLogger(__name__)


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
    output, a demo's stage): the walk of :func:`temporaries` and
    :func:`~engine.runlock.records.record_set_aside`."""
    from annotations.fileio import is_staging

    for here, dirs, files in os.walk(folder):
        dirs[:] = [
            d
            for d in dirs
            if (not d.startswith(".") or is_staging(d))
            and (others_outputs or not any(Path(here, d).glob(f"{LOCK_NAME}*")))
        ]
        yield here, files


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
    shard was rerun to the end kept them. :func:`~engine.runlock.lock.exclusive` calls it under a
    brief lock on the folder (:func:`annotations.fileio.folder_locked`) that every run passes once
    it holds its lock, before it writes: a shard whose lock was taken after the check above waits
    (up to :data:`annotations.fileio.FOLDER_LOCK_WAIT_S`, past which the holder is taken for another
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
