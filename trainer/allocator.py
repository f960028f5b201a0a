"""glibc's malloc set to keep freed memory for the next training step (CPU training).

A CPU training step allocates and frees the same large tensors every step: at the demo's 256 px
crop, the grid_sample deformable convolutions' 9-tap columns and their gradients are 13 MB
each. With glibc's default thresholds such blocks go back to the kernel when they are freed
(unmapped, or trimmed off the top of the heap), and the next step takes them back one
zero-filled page at a time: 667,000 minor page faults in 30 steps of one rank on the 2-core dev
machine; a multiply of that size took 3.7 ms into fresh memory and 1.0 ms into reused memory.
Fixed thresholds (the ``mmap`` threshold at 32 MiB, glibc's 64-bit maximum, and a 1 GiB trim
threshold) keep the freed blocks in the heap, where the next step reuses them: 79,000 faults,
and the demo's two-process training 1.14x faster (docs/rounds.md, tenth round). The arithmetic
is untouched, so a run's numbers do not change.

These are glibc's documented tunables (``mallopt(3)``): the environment variables
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set them for a whole process from its
start, ``mallopt`` from the moment it is called. :func:`tune_malloc` calls ``mallopt`` for each
the user has not set in the environment, and sets the variable itself, so processes started
from this one (training ranks, loader workers) begin with the same setting and the run
directory's ``environment.json`` records it. ``ENGINE_TUNE_MALLOC=0`` turns it off. Without
glibc (macOS, musl) nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

from engine.runinfo import MALLOC_OPT_OUT as OPT_OUT  # ``=0``: no tuning

# mallopt(3) parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# (environment variable, mallopt parameter, value)
SETTINGS = (
    ("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, 32 << 20),  # glibc's maximum on 64-bit
    ("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, 1 << 30),
)


def glibc_mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None where this process does not run on glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this process runs on
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version"):  # musl has a mallopt stub that does nothing
        return None
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt


def tune_malloc() -> dict[str, int]:
    """Apply :data:`SETTINGS` to this process; the settings this call applied (empty when off,
    not on glibc, or every variable was already set: by the user, or by an earlier call)."""
    mallopt = None if os.environ.get(OPT_OUT, "1") == "0" else glibc_mallopt()
    if mallopt is None:
        return {}
    applied: dict[str, int] = {}
    for name, param, value in SETTINGS:
        if name in os.environ:
            continue  # glibc applied it when this process started
        if mallopt(param, value) != 1:  # 1: success
            break
        os.environ[name] = str(value)
        applied[name] = value
    return applied
