"""The permissions the tests expect of an output where no default ACL says otherwise: those
``open()`` gives a new file (the engine creates its outputs so, ``annotations.fileio``)."""

from __future__ import annotations

import contextlib
import os


def file_mode() -> int:
    """0666 less the process's umask now. Linux shows it in ``/proc/self/status`` (since 4.7),
    read without changing it (a training test's threads may create files meanwhile); elsewhere
    ``os.umask`` sets it to read it."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii", errors="replace") as f,
    ):
        for line in f:
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
