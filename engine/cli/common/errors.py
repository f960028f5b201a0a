"""An error as the command line shows it in one line: :func:`error_text` (a several-item error's
problems :func:`grouped`), the disk's errors (:func:`disk_error`, :func:`disk_remedy`) and an
output folder that cannot be written or made (:func:`out_elsewhere`, :func:`out_not_made`).
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path, PurePath
from typing import Any

from rich.text import Text

# what a folder that cannot be written to fails a write with: a read-only mount, a folder
# without write permission (out_elsewhere)
NOT_WRITABLE = frozenset((errno.EROFS, errno.EACCES, errno.EPERM))


def lead(e: BaseException) -> str:
    """What leads ``e``'s line: ``rank 1 of 2 on node 0 (host): `` for another rank's error
    raised on rank 0 (``trainer.ranks``), else nothing."""
    return str(getattr(e, "rank_lead", "") or "")


def error_text(e: BaseException, what: str = "") -> Text:
    """An input error as the command line shows it: ``error: ``, ``what`` and the message's
    first line.
    An error that holds several items' problems (``engine.parallel.BadItems``: one run that
    read every file) shows its headline, then each problem on a line of its own."""
    from annotations.fileio import first_line  # here: the package imports OpenCV

    head = Text("error: ", style="bold red") + lead(e) + what
    # not imported for the check: under ulimit -d a library that failed to map (torch's) can
    # leave no room for multiprocessing's, and a BadItems was made where it was imported
    parallel = sys.modules.get("engine.parallel")
    if parallel is None or not isinstance(e, parallel.BadItems):
        return head + Text(first_line(e))
    lines = [
        f"{e.headline}:",
        *(f"  {line}" for line in grouped([first_line(p) for p in e.problems])),
    ]
    return head + Text("\n".join(lines))


def grouped(problems: list[str], alone: int = 3) -> list[str]:
    """One line per problem (``PATH: reason``), in order, except that problems of one reason,
    more than ``alone`` of them, are one line where the first is, naming its file and how many
    more: a folder of 13K predictions from a model without the class is one line, not 13K.
    Reasons that differ only where they name the problem's own file (its path, or its name in
    another folder: ``cannot identify image file 'PATH'``) are one reason; the line shows the
    first's."""
    from collections import Counter
    from pathlib import PurePath

    def reason(problem: str) -> str:
        """The reason with its own file's path and name left out: what problems share."""
        path, _, why = problem.partition(": ")
        name = PurePath(path).name if path else ""
        return why.replace(path, "\0").replace(name, "\0") if name else why

    counts = Counter(reason(p) for p in problems if ": " in p)
    lines, shown = [], set()
    for problem in problems:
        key = reason(problem)
        if counts.get(key, 0) <= alone:
            lines.append(problem)
        elif key not in shown:
            shown.add(key)
            path, _, why = problem.partition(": ")
            lines.append(f"{path} and {counts[key] - 1} more files: {why}")
    return lines


def disk_error(e: OSError) -> bool:
    """Whether ``e`` is the machine's disk failing the command (full, over quota, read-only:
    :data:`annotations.fileio.DISK_ERRNOS`), which it reports in one line with exit 74."""
    from annotations.fileio import is_disk_error  # here: the package imports OpenCV

    return is_disk_error(e)


def disk_remedy(e: OSError) -> str:
    """What to do about the disk error ``e`` (:func:`disk_error`) before running again: "make
    room" said of a read-only file system or a file size limit sent the user to delete files."""
    fix = {
        errno.EFBIG: "raise the file size limit (ulimit -f)",
        errno.EROFS: "make the file system writable",
        errno.ENOSPC: "make room",
        getattr(errno, "EDQUOT", errno.ENOSPC): "make room",
        # NFS: the file or folder was removed or replaced on the server or by another client
        # while this run held it; "check the disk" sent the user to a disk that was fine
        getattr(errno, "ESTALE", errno.EIO): (
            "check that no other machine removed or replaced it (a network file system's stale "
            "file handle)"
        ),
    }
    return fix.get(e.errno, "check the disk")


def out_elsewhere(e: BaseException, options: dict[str, Any], lead: str = ", or ") -> str:
    """``lead`` + "give --out in a folder you can write to" where ``e`` is a write refused
    (read-only file system, permission denied) on the default output folder of the command that
    ``options`` are the arguments of (its ``--out``, ``out`` or ``out_dir``, not given: None or
    empty; the default under ``runs/`` in the working directory): before, a read-only working
    directory's line said to make the file system writable as the only fix. ``""`` otherwise
    (an ``--out`` given is the user's own choice, and the error names it)."""
    name = getattr(e, "filename", None)
    if not isinstance(name, str) or getattr(e, "errno", None) not in NOT_WRITABLE:
        return ""
    if not any(key in options and not options[key] for key in ("out", "out_dir")):
        return ""  # given, or a command without --out
    if PurePath(name).parts[:1] != ("runs",):
        return ""  # not the output folder: a cache, a temporary file
    return f"{lead}give --out in a folder you can write to"


def out_not_made(e: BaseException, options: dict[str, Any]) -> Text | None:
    """One line for an ``--out`` folder (``options``' ``out`` or ``out_dir``, given) that ``e``
    says cannot be created, naming the option, the folder and why; ``None`` for any other error.
    Before, ``engine demo --out /proc/x`` said ``/proc/x: No such file or directory`` (the
    kernel's word for a folder that takes no new ones), which read as a missing input."""
    name, code = getattr(e, "filename", None), getattr(e, "errno", None)
    if not isinstance(name, str) or code not in (errno.ENOENT, errno.ENOTDIR, *NOT_WRITABLE):
        return None
    given = next((options[k] for k in ("out", "out_dir") if options.get(k)), None)
    if given is None or getattr(e, "strerror", None) != os.strerror(code):
        return None  # no --out given, or the library's own message
    out, failed = Path(os.path.abspath(given)), Path(os.path.abspath(name))
    if (failed != out and failed not in out.parents) or failed.exists():
        return None  # a file in it, or a folder there: another problem than making it
    holder = next((p for p in failed.parents if p.exists()), None)
    if holder is None or os.path.isdir(holder):
        why = f"{holder or failed.anchor} takes no new folders ({e.strerror})"
    else:
        why = f"{holder} is a file"
    return Text("error: ", style="bold red") + Text(
        f"--out {given}: the folder cannot be created: {why}"
    )
