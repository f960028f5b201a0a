"""Names and paths a command is given for its outputs, checked before anything is written: a
name Windows refuses (:func:`check_windows_name`), a ``~`` the shell left as it is
(:func:`check_expanded`), an output folder that is a file (:func:`check_not_a_file`) and a
report file named ``-`` (:func:`check_report_file`)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

# What Windows refuses in a file or folder name (its naming rules; NTFS itself takes more):
# one of these characters (":" also names an NTFS stream), or a device name, bare or with a
# suffix (``con``, ``aux.png``, ``com1``)
WINDOWS_CHARS = '<>:"|?*'
WINDOWS_DEVICES = re.compile(
    r"(con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3])", re.I
)


def windows_refuses(name: str) -> str | None:
    """Why Windows cannot make a file or folder named ``name`` (:data:`WINDOWS_CHARS`, a
    device name), or None where it can."""
    if found := sorted(set(name) & set(WINDOWS_CHARS)):
        return f"it holds {' '.join(found)}"
    if WINDOWS_DEVICES.fullmatch(name.split(".")[0].rstrip(" ")):
        return f"{name.split('.')[0].rstrip(' ')} is a device name there"
    return None


def check_windows_name(path: Path, origin: str) -> Path:
    """``path``, a folder the engine named after user input (``origin``: ``--class 'Car:
    sedan'``), or on Windows, where it cannot be made, ``ValueError`` naming it: before, the
    command failed later with Windows' own words for it ("The filename, directory name, or
    volume label syntax is incorrect"), or a name with ``:`` went to an NTFS stream."""
    if sys.platform == "win32" and (why := windows_refuses(path.name)):
        raise ValueError(
            f"{path}: Windows makes no folder of that name ({why}), the default --out for "
            f"{origin}: give --out"
        )
    return path


def unexpanded(path: Path) -> str:
    """What to say of a path that starts with a ``~`` the shell left as it is."""
    return (
        "the shell expands ~ only at the start of a word, not in quotes nor after --opt=: "
        f"give {path.expanduser()}"
    )


def check_expanded(path: str | os.PathLike | None, command: str) -> None:
    """Refuse an output ``path`` that starts with a ``~`` the shell left as it is
    (``--out=~/runs``, or quoted) while no folder named ~ is here: the command would make one
    in the working directory (and a later ``rm -rf ~`` meant for it takes the home folder)."""
    if path is not None and Path(path).parts[:1] == ("~",) and not Path("~").exists():
        raise ValueError(
            f"{path}: {command} would make a folder named ~ here; {unexpanded(Path(path))}"
        )


def check_not_a_file(folder: str | os.PathLike) -> None:
    """An output folder (``--out``) that exists as a file is refused in one line naming it, the
    same for every command (``engine.runlock.check_output_folder``, an annotated subset's,
    ``engine demo-pretrain``'s), before anything is written; so is a symbolic link to a folder
    that is not there (moved, its disk not mounted), naming where it leads: before, the first
    mkdir's "OUT: File exists"."""
    path = Path(folder)
    if path.is_symlink() and not path.exists():
        raise NotADirectoryError(
            f"{folder}: output is a symbolic link to {os.readlink(path)}, which is not there: "
            "create that folder or give another --out"
        )
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{folder}: output exists and is not a folder")


def check_report_file(path: str | os.PathLike | None, command: str) -> None:
    """:func:`check_expanded` for a report file a library caller names, and ``-``: the command
    line's ``--json -`` is stdout, but a config's ``json_out="-"`` wrote a file named ``-`` in
    the working directory, where no one looks for it."""
    check_expanded(path, command)
    if path is not None and str(path) == "-":
        raise ValueError(
            f"-: {command} writes stdout for '-' on the command line only (--json, --markdown); "
            "from Python, give a file path or use the returned report"
        )
