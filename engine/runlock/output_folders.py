"""The checks of a command's output folder before anything is written: not a file, not another
engine output nor a dataset's folder (:func:`check_output_folder`), and not a folder another
process is writing now (:func:`check_not_being_written`).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.runlock.holders import FolderInUse, writer


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

    ``own`` (no default, here nor in :func:`~engine.runlock.command.holds_lock`, where two defaults
    once differed) is the records ``command`` writes there (a label run's ``run.json``): a folder
    that holds none of them but is another engine output
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
