"""What ``engine info`` says of an output a command stopped (or is) writing before it
can be read as one, whatever its kind: a write killed among the renames that put its files in
(:func:`_half_swapped`), a folder a run wrote nothing in yet, a dataset ``engine synth`` or
``engine fuse`` has only begun, a gallery or report without its record
(:func:`_unfinished_drawn`), and the words for a file system that takes no locks, where a run
going on is not told from one stopped.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.datasets import SegDataset, load_spec
from engine.runlock import lockless, writer
from engine.text import counted


def _half_swapped(folder: Path, prefix: str, what: str, then: str, earlier: str) -> str | None:
    """A line on a write of ``what`` killed during its :func:`annotations.fileio.swap_in` into
    ``folder`` (its staging folders ``prefix*``; no process writes the folder now), with
    ``then``: the command whose next run finishes the swap, and ``earlier``: what the entries it
    takes out are of (the old write's, which the new one lacks: "labelme/ of the earlier
    export"). A swap record the next write refuses (edited by hand, in a folder of another
    user's) is the line that write stops with; before the fifty-first round's mend it was
    passed over, as no record, and a subset folder was "no image split folders found"."""
    from annotations.fileio import first_line, unfinished_swap

    if not folder.is_dir() or writer(folder) is not None:  # a write at it now: live staging
        return None
    for staging in sorted(folder.glob(prefix + "*")):
        try:
            swap = unfinished_swap(staging)
        except (OSError, ValueError) as e:  # what the next write into the folder stops with
            return first_line(e)
        if swap is None or not any(swap):
            continue
        pending, stale = swap  # the new files still hidden; the old write's, which it removes

        def names(entries: list[str], where: Path) -> str:
            return ", ".join(n + ("/" if (where / n).is_dir() else "") for n in entries)

        said = [f"{names(pending, staging)} still in {staging.name}/"] if pending else []
        if stale:  # before the forty-eighth round's mend: said "still in" the staging folder
            said.append(f"{names(stale, folder)} of the {earlier}, which it removes")
        return (
            f"{folder}: {what} was interrupted while putting its files in: "
            f"{'; '.join(said)}; the next " + then.format(folder=folder)
        )
    return None


def _nothing_written_yet(folder: Path) -> tuple[str, int] | None:
    """What ``engine info`` says of a folder that holds nothing but hidden files (its lock, a
    staged copy) and a lock record (:func:`engine.runlock.last_writer`), or a lock file that
    holds none: a run killed or stopped before it wrote anything (problems 1: run it again),
    or one that has not yet (0). Before, it said "no image split folders found", as of a
    wrong folder."""
    from engine.runlock import LOCK_NAME, as_shard, last_writer

    # hidden folders too (a staged write's leftover): not wrote_nothing, whose narrower test keeps
    # the temporaries' removal out of a user's hidden folders (.git, .venv)
    if not folder.is_dir() or any(not p.name.startswith(".") for p in folder.iterdir()):
        return None
    # a sharded label run's shards hold a lock file each (.lock-shard0of2): before, a folder
    # holding only theirs (shards starting, or all killed before their first file) said "no
    # image split folders found", exit 2
    locks = sorted(p.name for p in folder.glob(f"{LOCK_NAME}*") if p.is_file())
    records = [f"{who}{as_shard(name)}" for name in locks if (who := last_writer(folder, name))]
    if not (last := ", ".join(records)):
        if not locks:
            return None
        if lockless(folder):  # a run there goes on unlocked, its lock file empty (ENOLCK): before,
            # one in progress was told "killed as it took the folder"
            return (
                f"{folder}: a run that could not lock it (its lock file holds no record) is "
                f"writing it now or stopped before it wrote anything here, {_no_locks_tail()}",
                1,
            )
        # killed between making its lock file and writing its record there (or on a disk too
        # full for the record): an empty .lock; before, "no image split folders found", exit 2
        last = "a run (its lock file holds no record: killed as it took the folder)"
    if (now := writer(folder)) is not None:
        return f"{folder}: {now} is writing it now and has written nothing here yet", 0
    return (
        f"{folder}: {last} stopped before it wrote anything here (no process writes it now): "
        "run that command again",
        1,
    )


def _begun(folder: Path) -> tuple[str, int] | None:
    """What ``engine info`` says of a dataset ``engine synth`` or ``engine fuse`` was stopped
    (or is) writing before a split of it could be read (``synth.partial.json`` or ``fuse.json``
    running, and no split folder yet, a first image without its label, or no ``dataset.yaml``
    yet): unfinished, resumable (problems 1), or being written now (0). Before, "no image split
    folders found" or "label folder for split 'train' not found", exit 2, as of a wrong folder.
    None where it is not one, or reads as a dataset (whose table says it is unfinished)."""
    from engine.datasets import datasets_above

    above = (a.unfinished for a in datasets_above(folder) if a.where == "" and a.unfinished)
    if (unfinished := next(above, None)) is None:
        return None
    try:
        spec = load_spec(folder)
        for split in spec.require_splits():
            SegDataset(spec, split, require_labels=spec.labels is not None, lenient=True)
    except (OSError, ValueError):
        state, remedy, halted = unfinished
        line = f"unfinished: {folder}: {state}, before a split of it could be read: {remedy}"
        return line, int(halted)
    return None


def _left_by(folder: Path, command: str) -> str | None:
    """The run of ``command`` whose lock file ``folder`` holds, as its record names it
    (``engine report (pid 12 on host, since ...)``; ``command`` where the record is empty:
    killed as it took the folder), for a folder a run of it stopped in; None where ``folder``
    holds no lock file or another command's record. Such a run always holds its folder's lock
    file: before the fifty-sixth round's review, a folder of the user's holding a ``chart.png``
    or a ``thumbs/`` was told a report or review gallery not finished, of a command never run
    there (exit 1)."""
    from engine.runlock import LOCK_NAME, last_writer

    if not (folder / LOCK_NAME).is_file():
        return None
    if (who := last_writer(folder)) is None:
        return command
    return who if who.startswith(f"{command} ") else None


def _unfinished_drawn(
    folder: Path, command: str, parts: tuple[str, ...], image: str, verb: str, this: str,
    stopped: str,
) -> tuple[str, int] | None:  # fmt: skip
    """What ``engine info`` says of the folder of ``command`` (``engine report``) without its
    record (``report.json``, written last): begun (one of ``parts`` but the last, the page
    written just before the record; the images of the last of those, ``{image}s`` drawn so
    far) and nothing else but hidden files. Written now (its lock held: problems 0) or stopped
    (problems 1: the same command writes it again; ``stopped`` with ``{who}`` and
    ``{drawn}``). None without the command's lock file (:func:`_left_by`): a user's
    ``thumbs/``, a ``compare --plot figs/chart.png``."""
    record = f"{command.split()[-1]}.json"
    if (folder / record).exists() or not any((folder / p).exists() for p in parts[:-1]):
        return None
    if any(p.name not in parts and not p.name.startswith(".") for p in folder.iterdir()):
        return None
    if (who := _left_by(folder, command)) is None:
        return None
    drawn = counted(sum(1 for _ in (folder / parts[-2]).glob("*.jpg")), image)
    if (now := writer(folder)) is not None:
        return f"{folder}: {now} is {verb} {this} now ({drawn} so far)", 0
    if lockless(folder):
        return _cannot_tell(folder, f"{who} is {verb} it ({drawn} so far)", command)
    return (
        f"{folder}: {stopped.format(who=who, drawn=drawn)} and no process writes it now: run "
        f"the same {command} command again",
        1,
    )


def _cannot_tell(folder: Path, doing: str, command: str) -> tuple[str, int]:
    """What ``engine info`` says of a gallery or report ``doing`` (``engine report is writing it
    (2 overlays so far)``) in a folder whose file system takes no locks (ENOLCK,
    :func:`engine.runlock.lockless`): its run goes on unlocked, its lock file empty, and one
    going on is not told from one stopped (problems 1). Before, one in progress was told
    stopped, "no process writes it now"."""
    return f"{folder}: not finished: {doing} now, or was stopped, {_no_locks_tail(command)}", 1


def _no_locks_tail(command: str | None = None) -> str:
    """How every ``engine info`` line on an output of a file system that takes no locks
    (ENOLCK) ends: that it cannot tell a run going on from one stopped, and when to run
    ``command`` (``engine report``; "that command" where no record names it) again. Before,
    runs, shards and galleries each ended in words of their own."""
    again = f"the same {command} command" if command else "that command"
    return (
        "which engine info cannot tell on a file system without locks: once no engine command "
        f"runs on it, run {again} again"
    )


def _unlocked(folder: str | os.PathLike, stopped: bool, command: str) -> list[str]:
    """The line ``engine info`` adds to an output of ``command`` (``engine label``) it tells
    stopped (``stopped``: no process holds its lock) on a file system that takes no locks
    (ENOLCK, :func:`engine.runlock.lockless`), where a run goes on unlocked and no lock tells
    it from one stopped: unfinished either way (exit 1), and run again only once none runs.
    Before, a label or training run going on there was told stopped, "run engine label
    again", a second run beside the first."""
    if not stopped or not lockless(folder):
        return []
    return [f"note: {folder}: a run is writing it now or was stopped, {_no_locks_tail(command)}"]
