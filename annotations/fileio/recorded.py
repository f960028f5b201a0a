"""Paths that run records hold, found from here: a recorded root or input as typed, from the
command's working directory, or moved together with the output that records it; and a file's
size, which tells a file replaced under its name (:func:`file_bytes`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def file_bytes(path: str | os.PathLike | None) -> int | None:
    """The size of the file ``path`` in bytes; None when there is none or it cannot be read.
    What ``engine label``, ``predict`` and ``train --resume`` compare to tell a file replaced
    under the same name: the size, not the modification time, so that a dataset copied or moved
    elsewhere is the same; one ``stat``, nothing read."""
    if path is None:
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def recorded_root(
    given: Any, resolved: Any = None, beside: Any = None, cwd: Any = None
) -> Path | None:
    """A dataset root an output recorded, for reading it from here: ``given`` (as it was
    typed, so relative to the working directory) when that is here (a folder, or a spec file),
    else ``resolved`` (the absolute path it had when it was recorded) when that is, else, with
    ``beside`` = ``(out, folder)`` (the output's own path as the same command line typed it,
    and where the output is now), the place the root had beside the output, seen from where
    the output is now (:func:`moved_with`), when that is, else ``given`` as it is, for an error
    to name; None when nothing was recorded. Before ``beside``, a dataset moved or mounted elsewhere together
    with its runs (a project folder renamed, copied to another machine) was not found, nor one
    typed relative to a working directory that is gone.

    An output that is no longer where it was recorded (the place the root had beside it is not
    the absolute path recorded: ``resolved``, else ``given`` when typed absolute) moved or was
    copied with its dataset, and the dataset beside it, where there is one, comes first. Before,
    in a project copied with ``cp -r`` or ``cp -a`` while the original still existed, the
    copy's outputs read the original's dataset (its absolute path still existed): ``engine info``
    suggested fusing it, and review and report read its images, not the copy's.

    ``cwd``: the folder the recording command ran in (its ``environment``'s ``cwd``), from which
    a relative ``given`` (and ``beside``'s ``out``) was typed: they are read from there, not from
    here, and the root found is absolute (or beside the output moved). Before, a training run's
    ``data`` typed ``data`` and resumed from another folder that held a ``data`` of its own
    trained on that one."""
    there = isinstance(cwd, str) and os.path.isabs(cwd)
    given = typed_from(cwd, given)
    # the output typed from there too, whether or not ``given`` was: a resume records the root
    # it found absolute beside an ``out`` typed relative, and a project copied or moved after it
    # must still find the root beside the run, not the original's (or none)
    if there and beside is not None and isinstance(beside[0], str | os.PathLike) and str(beside[0]):
        beside = (os.path.join(cwd, beside[0]), beside[1])
    given = Path(given) if isinstance(given, str) and given else None
    resolved = Path(resolved) if isinstance(resolved, str) and resolved else None
    moved = moved_with(given, *beside) if beside is not None and given is not None else None
    recorded = resolved or (given if given is not None and given.is_absolute() else None)
    # the output is not where it was recorded when the root's place beside it is another
    if (
        moved is not None
        and recorded is not None
        and moved.exists()
        and _real(moved) != _real(recorded)
    ):
        typed_here = given is not None and given.exists() and _real(given) == _real(moved)
        return given if typed_here else moved  # as typed, where that names it from here
    for root in (given, resolved, moved):
        if root is not None and root.exists():  # a folder, or a dataset's spec file
            return root
    return given or resolved


def typed_from(cwd: Any, path: Any) -> Any:
    """``path`` as a command that ran in ``cwd`` (an absolute folder, else ignored) typed it:
    joined to ``cwd`` where it is text typed relative (not ``~``, which no shell expanded
    there), else as it is."""
    if not (isinstance(cwd, str) and os.path.isabs(cwd)):
        return path
    relative = isinstance(path, str) and path and not os.path.isabs(path) and path[0] != "~"
    return os.path.join(cwd, path) if relative else path


def _real(path: Path) -> str:
    """``path`` with its symbolic links followed, for telling two names of one folder (a project
    reached through a symlinked folder) from two folders."""
    return os.path.normcase(os.path.realpath(path))


def fused_source(record: Any, root: Any) -> Path | None:
    """The dataset a fused dataset at ``root`` was fused from, as its record (``fuse.json``'s
    document) names it and :func:`recorded_root` finds it from here: typed, absolute, or where
    it was beside the fused dataset (the two moved or copied together); None when it names
    none."""
    doc = record if isinstance(record, dict) else {}
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    inputs = doc.get("inputs") if isinstance(doc.get("inputs"), dict) else {}
    return record_root(doc, config.get("data"), inputs.get("data"), (config.get("out"), root))


def record_root(record: Any, given: Any, resolved: Any = None, beside: Any = None) -> Path | None:
    """:func:`recorded_root` of a path that ``record`` holds, read from the folder its command
    ran in (:func:`record_cwd`); as typed where that names the same from here (run in that
    folder, as the command was), or where it is found nowhere (for an error to name, as
    before). Before, ``engine info``, ``review`` and ``report`` run from another folder that
    held a ``data`` of its own read that one, not the project's."""
    found = recorded_root(given, resolved, beside, record_cwd(record))
    if not isinstance(given, str) or not given or os.path.isabs(given) or found is None:
        return found
    if not found.exists() or (Path(given).exists() and _real(Path(given)) == _real(found)):
        return Path(given)
    return found


def record_cwd(record: Any) -> str | None:
    """The folder the command that wrote ``record`` (a ``run.json``, ``fuse.json``,
    ``subset.json``, an export's record) ran in, its ``environment``'s ``cwd``, from which the
    paths it holds as typed were typed: :func:`recorded_root` reads them from there. None for
    a record without one (written before it was recorded, or by hand): read from here, as
    before."""
    env = record.get("environment") if isinstance(record, dict) else None
    cwd = env.get("cwd") if isinstance(env, dict) else None
    return cwd if isinstance(cwd, str) and os.path.isabs(cwd) else None


def fused_input(record: Any, root: Any, path: Any) -> Path | None:
    """A label run or subset a fused dataset at ``root`` was fused from, as its record
    (``fuse.json``'s document) names it (``path``: its ``inputs``' path, as typed), where
    :func:`recorded_root` finds it from here: as typed, else where it was beside the fused
    dataset (the two moved or copied together), that first when the fused dataset is not where
    it was fused. The command's working directory (``environment.cwd``) relates a path typed
    absolute to an ``--out`` typed relative, or the other way round. ``path`` as recorded where
    it is nowhere (for a line to name); None for no path."""
    if not isinstance(path, str) or not path:
        return None
    config = record.get("config") if isinstance(record, dict) else None
    out = config.get("out") if isinstance(config, dict) else None
    found = record_root(record, path, None, (out, root))  # both read from where it ran
    return found if found is not None and found.exists() else Path(path)


def typed_together(path: str, record: Any) -> tuple[str, Any]:
    """``path`` and the ``--out`` of the run whose record (a ``run.json``-like document with
    ``config.out`` and ``environment.cwd``) names it, as one command line would type them, for
    :func:`moved_with`: where one is absolute and the other relative, both joined to the
    command's working directory."""
    doc = record if isinstance(record, dict) else {}
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    env = doc.get("environment") if isinstance(doc.get("environment"), dict) else {}
    out, cwd = config.get("out"), env.get("cwd")
    if isinstance(out, str) and isinstance(cwd, str) and os.path.isabs(path) != os.path.isabs(out):
        return os.path.join(cwd, path), os.path.join(cwd, out)
    return path, out


def moved_with(path: Any, out: Any, folder: Any) -> Path | None:
    """Where ``path`` is now if it kept its place beside an output that recorded it with its
    own path ``out`` (both as one command line typed them, both relative to its working
    directory or both absolute) and is now at ``folder``: ``../data`` of a run typed as
    ``runs/x`` is ``folder/../../data``, normalised (relative where ``folder`` is, so that a
    resume records the two as one command line again). None when the two cannot be related
    (one relative and one absolute, another drive)."""
    if not (isinstance(out, str | os.PathLike) and str(out) and folder is not None):
        return None
    path, out = Path(path), Path(out)
    if path.is_absolute() != out.is_absolute():
        return None
    try:
        return Path(os.path.normpath(Path(folder) / os.path.relpath(path, out)))
    except ValueError:  # another drive on Windows
        return None
