"""The note ``engine info`` ends with on the temporary files that writes killed mid-write
left in a folder, or beside a single file: harmless, and which command removes them.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.info.train_run import _pretrain_folder
from engine.info.unfinished import _left_by
from engine.runlock import writer, wrote_nothing
from engine.text import counted


def leftover_note(folder: str | os.PathLike) -> str | None:
    """A line on the temporary files of atomic writes that runs killed while writing left in
    ``folder`` (:func:`engine.runlock.temporaries`), for ``engine info`` to end with; None when
    there are none, or while a process writes the folder (its own are live). Harmless, and
    removed by the next run of the command that writes the folder: not a problem (exit code
    unchanged). Of a single file given (``engine compare --json`` record), what its killed
    writes left beside it (:func:`_left_beside`). A staging folder a write killed as it
    finished left (:func:`_finished_swaps`) is a second line."""
    from engine.runlock import temporaries

    folder = Path(folder)
    if folder.is_file():
        return _left_beside(folder)
    if not folder.is_dir() or writer(folder) is not None:
        return None
    swapped = _finished_swaps(folder)
    found = temporaries(folder)
    if not found:
        return swapped
    size = sum(p.stat().st_size for p in found if p.is_file())
    from annotations.fileio import folder_is

    kind = folder_is(folder)
    written = (
        kind not in (None, "a dataset's root")
        or any((folder / r).is_file() for r in ("synth.json", "synth.partial.json"))
        or wrote_nothing(folder)  # a run killed writing its first file: its rerun removes them
        # a report or gallery killed before its record (its lock file names it): its rerun
        # removes them; before, "no engine command writes this folder: delete them"
        or any(_left_by(folder, command) for command in ("engine report", "engine review"))
        # its export's (OUT/.demo_tiny_mass7.pt.*.tmp): the same command's save removes it
        or _pretrain_folder(folder)
    )  # a plain dataset's root: no engine command writes it, nor removes them
    after = (
        f"the next run of the command that writes {folder} removes them"
        if written
        else "no engine command writes this folder: delete them"
    )
    if kind == "a label run (engine label)":  # not while another shard runs: may be live
        after += " (a shard's run too, once no other shard of it runs)"
    note = (
        f"note: {counted(len(found), 'temporary file')} ({size / 1e6:.1f} MB) left by runs killed "
        f"while writing, e.g. {found[0]}: {after}"
    )
    return note if swapped is None else f"{note}\n{swapped}"


# the writes that swap several entries of a folder in (annotations.fileio.staged), by their
# staging folders' prefix: what they write, and the command whose next run into the folder
# removes such a folder (its finish_swaps, refused or not); a SAM conversion's is said by
# engine.info.sam
_STAGED_BY = {
    ".export.": ("an export", "the earlier export's files", "engine annotate export"),
    ".masks.": ("an import", "the earlier masks and subset.json", "engine annotate import"),
}


def _finished_swaps(folder: Path) -> str | None:
    """A note on the staging folders in ``folder`` of writes killed after their last rename,
    before removing them (their swap record there, nothing left to put in or take out): the
    files they replaced are in them, taking space; harmless, and the next run of the same
    command into the folder removes them. Before, engine info did not mention them. One
    killed half way through its renames is a problem said by
    :func:`~engine.info.unfinished._half_swapped`."""
    from annotations.fileio import is_staging, unfinished_swap

    left = []
    for staging in sorted(folder.iterdir()):
        kind = next((k for p, k in _STAGED_BY.items() if staging.name.startswith(p)), None)
        if kind is None or not is_staging(staging.name) or not staging.is_dir():
            continue
        try:
            swap = unfinished_swap(staging)
        except (OSError, ValueError):  # a record the next write refuses: said as a problem
            continue
        if swap is not None and not any(swap):
            left.append((staging, kind))
    if not left:
        return None
    staging, (what, replaced, command) = left[0]
    size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file() and not p.is_symlink())
    more = f" (and {counted(len(left) - 1, 'other')})" if len(left) > 1 else ""
    return (
        f"note: {staging.name}/{more} ({size / 1e6:.1f} MB: {replaced} it replaced) left "
        f"by {what} killed as it finished, its files in: the next {command} into {folder} "
        "removes it"
    )


def _left_beside(path: Path) -> str | None:
    """:func:`leftover_note` of the single file ``path``, which no run lock guards (an ``engine
    compare --json`` or ``evaluate --json`` record): the temporary files its writes killed
    mid-write left (no process holds their lock: :func:`annotations.fileio.dead_temporaries`)
    and the earlier compare record a rerun killed as it finished left set aside, its new record
    in (:func:`engine.outputs.earlier_record`; no single step puts one in and removes the
    other). The command that wrote ``path``, run again, removes them; before the fifty-eighth
    round nothing said they were there, nor which were left (the temporaries stayed for ever)."""
    from annotations.fileio import dead_temporaries
    from engine.outputs import earlier_record

    left = dead_temporaries(path)
    if (aside := earlier_record(path)).is_file():  # path is there: its rerun put it in
        left.insert(0, aside)
    if not left:
        return None
    return (
        f"note: {counted(len(left), 'file')} beside it left by writes killed as they wrote it, "
        f"e.g. {left[0].name}: the command that wrote {path.name}, run again, removes them"
    )
