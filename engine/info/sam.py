"""What ``engine info`` says of ``engine convert-sam``'s folder: a SAM model written whole, one
being written, or a conversion stopped before or while putting its model's files in.
"""

from __future__ import annotations

import os
from pathlib import Path

from annotations.fileio import try_lock
from engine.info.unfinished import _half_swapped


def _half_swapped_conversion(folder: Path) -> str | None:
    """The same line for a SAM conversion (``engine convert-sam``,
    :func:`labeler.sam_convert.convert_sam_checkpoint`) killed while putting its model's files
    in: the next conversion refuses a folder that holds anything but its staging folders ("not
    empty"), and writes one that holds only them (before, "once the folder is removed" there
    too)."""
    from labeler.sam_convert import STAGING

    held = folder.is_dir() and any(not p.name.startswith(STAGING) for p in folder.iterdir())
    return _half_swapped(
        folder,
        STAGING,
        "a conversion (engine convert-sam)",
        "engine convert-sam into {folder}"
        + (", once the folder is removed," if held else "")
        + " writes the whole model",
        "earlier conversion",
    )


def _converted_sam(folder: Path) -> str | None:
    """What ``engine info`` says of a folder ``engine convert-sam`` wrote whole (its record
    ``convert-sam.json`` with the model's files), and of its staging folder left by one killed
    as it removed it, the conversion done; None for any other folder. Before, "no image split
    folders found" (exit 2), as of a wrong folder, also after a finished conversion."""
    from annotations.fileio import read_json
    from labeler.sam_convert import CONVERT_RECORD, STAGING

    if not all((folder / n).is_file() for n in (CONVERT_RECORD, "config.json")):
        return None
    try:
        record = read_json(folder / CONVERT_RECORD, "conversion record")
    except ValueError:
        return None
    source = record.get("source") if isinstance(record, dict) else None
    left = sorted(p.name for p in folder.glob(STAGING + "*") if p.is_dir())
    note = f" ({left[0]}/, left by the conversion killed as it finished: delete it)" if left else ""
    return (
        f"{folder}: a SAM model engine convert-sam converted"
        + (f" from {source}" if isinstance(source, str) else "")
        + f": give it to engine label as --segmenter {folder}{note}"
    )


def _staged_conversion(folder: Path) -> tuple[str, int] | None:
    """A folder holding nothing but a SAM conversion's staging folders, none with a swap record:
    ``engine convert-sam`` writing its model there now (its lock on the folder itself held,
    :func:`labeler.sam_convert._converting`: problems 0), or killed before it put a file in (1:
    the same command writes the whole model, removing them). Before, "no image split folders
    found" (exit 2), as of a wrong folder."""
    from labeler.sam_convert import STAGING

    entries = list(folder.iterdir()) if folder.is_dir() else []
    if not entries or any(not (p.name.startswith(STAGING) and p.is_dir()) for p in entries):
        return None
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not to be opened (Windows, a folder): cannot tell
        fd = None
    if fd is not None:
        try:  # no locks here (Windows, ENOLCK): told as stopped, as below
            if try_lock(fd) is False:
                return f"{folder}: engine convert-sam is writing a model into it now", 0
        finally:
            os.close(fd)  # the probe's lock with it
    return (
        f"{folder}: a conversion (engine convert-sam) stopped before it put its model's files "
        f"in (only its staging folder is here): engine convert-sam into {folder} writes the whole "
        "model",
        1,
    )
