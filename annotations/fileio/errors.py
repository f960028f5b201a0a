"""What a command says of a failure, in one line naming the file: :func:`first_line` of any
exception, :func:`naming` for an ``OSError`` that names no file or a hidden temporary one, the
machine's disk errors (:data:`DISK_ERRNOS`, :func:`is_disk_error`), what reading one bad item
raises (:data:`UNREADABLE`), an unreadable torch file and a "did you mean"."""

from __future__ import annotations

import errno
import os
import pickle
import re
from pathlib import Path
from typing import Any


def naming(e: OSError, path: str | os.PathLike) -> OSError:
    """``e``'s errno (and so its type: ``PermissionError`` for EACCES) naming ``path``: a full
    disk's ``write`` names no file ("[Errno 28] No space left on device"), and a refused
    temporary file (:func:`~annotations.fileio.atomic._new_temporary`) names that hidden file, where
    the one line of the command line is to name the file it writes."""
    if e.errno is None:
        return e
    return OSError(e.errno, e.strerror or os.strerror(e.errno), os.fspath(path))


# What reading one item's file raises when the file is bad (undecodable or truncated data,
# values that are no class id, a size mismatch: a ValueError naming it) or gone or unreadable
# (an OSError). Commands that go on past one bad item (training, fusion, the review gallery)
# catch these, and nothing else: any other exception is a bug and stops them.
UNREADABLE = (ValueError, OSError)

# Operating-system errors of the machine rather than of the input or the code: out of space,
# over quota, over the file size limit (``ulimit -f``, a FAT32 disk's 4 GB), a read-only file
# system, a failing disk or a lost network file system. No item is to blame, so a run stops on
# them (what it finished is whole: every write is atomic) and the command line says so in one
# line naming the file (exit code 74).
DISK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EIO", "ESTALE")
    if hasattr(errno, name)
)


def is_disk_error(error: BaseException | None) -> bool:
    """Whether ``error`` is the machine's disk refusing a write (:data:`DISK_ERRNOS`: full, over
    quota, size-limited, read-only): every write after it fails the same way, so a command
    stops at it rather than failing its remaining items one by one."""
    return isinstance(error, OSError) and error.errno in DISK_ERRNOS


def did_you_mean(unknown: Any, known: Any) -> str:
    """`` (did you mean 'iters'?)`` for the first of the ``unknown`` keys of a settings file that
    is a near miss of one of the ``known`` ones (a typo, ``-`` for ``_``), else ``""``: the hint
    an ``unknown keys`` error puts before its list of every allowed key, where ``itres`` had to
    be looked for among forty."""
    import difflib

    names = {str(k).replace("-", "_").lower(): str(k) for k in unknown}
    for typed in sorted(names):
        close = difflib.get_close_matches(typed, [str(k) for k in known], n=1, cutoff=0.75)
        if close:
            return f" (did you mean {close[0]!r}?)"
    return ""


def first_line(e: BaseException) -> str:
    """The first non-blank line of ``e``'s message, or its type name when the message is blank:
    the one line a command prints for an error (torch, PIL and YAML messages span several).
    An operating-system error reads as ``PATH: reason`` ("/dev/null/x: Not a directory"), the
    project's own style, rather than Python's ``[Errno 20] Not a directory: '/dev/null/x'``."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    if (inner := _worker_error(e)) is not None:
        return inner
    for line in str(e).splitlines():
        if line.strip():
            return line.strip()
    return type(e).__name__


def _worker_error(e: BaseException) -> str | None:
    """The original message of an exception re-raised by a torch DataLoader worker, whose own
    first line only says where it was caught ("Caught ValueError in DataLoader worker process
    0.") and whose last lines are the original traceback's ``ValueError: PATH: problem``."""
    text = str(e)
    head = f"Caught {type(e).__name__} in "
    if not text.startswith(head) or "\nOriginal Traceback" not in text:
        return None
    prefix = f"{type(e).__name__}: "
    for line in reversed(text.splitlines()):
        if line.startswith(prefix) and line[len(prefix) :].strip():
            return line[len(prefix) :].strip()
    return None


def type_and_first_line(e: BaseException) -> str:
    """``"ValueError: first line"``, or the type name alone when the message is blank: a failure
    recorded where the exception's type is not otherwise known (a manifest, a checkpoint error)."""
    line = first_line(e)
    return line if not str(e).strip() else f"{type(e).__name__}: {line}"


def torch_magic(path: Path) -> bool:
    """Whether ``path`` starts like something ``torch.load`` reads: a zip archive (``PK``, what
    ``torch.save`` writes) or a pickle (protocol opcode ``0x80``); True if it cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return True
    return head == b"PK" or head[:1] == b"\x80"


def unreadable_torch_file(path: Path, e: BaseException, what: str = "checkpoint") -> ValueError:
    """One line for a file ``torch.load`` cannot read, saying what is wrong with it rather than
    repeating torch's multi-line internals (a truncated zip, a text file, a foreign pickle)."""
    text = str(e).strip()
    if "central directory" in text or isinstance(e, EOFError) or "unexpected EOF" in text:
        why = "truncated or corrupted (its zip archive is incomplete)"
    elif not torch_magic(path) or (
        isinstance(e, (KeyError, pickle.UnpicklingError)) and "weights_only" not in text
    ):
        why = "not a PyTorch file (neither a torch zip archive nor a pickle)"
    elif "Weights only load failed" in text:  # torch's 6-line advice to load it unsafely
        found = re.search(r"GLOBAL (\S+)", text)  # posix.system; or a bare pickle's opcode
        why = (
            "it holds Python objects besides tensors and plain data"
            + (f" ({found.group(1)})" if found else "")
            + ", which could run code and are not loaded"
        )
    else:
        why = type_and_first_line(e)[:200]
    return ValueError(f"{path}: not a readable {what}: {why}")
