"""The limits of the process's machine, container or shell that fail a command (exit code 71, not
a bad input): out of memory, with the ``ulimit -v`` / ``-d`` limit that failed it
(:func:`out_of_memory`, :func:`out_of_memory_line`), and shared memory, open files and worker
processes killed (:func:`process_limit`).
"""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text

from engine.cli.common.errors import error_text, lead
from engine.runinfo import SHM_ADVICE, too_many_open_files

try:  # imported before any command: a library that failed to map under ulimit -d can leave no
    import resource  # room to load resource's own (its import then fails the same way)
except ImportError:  # Windows
    resource = None


def out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is the machine running out of memory: numpy's ``MemoryError`` ("Unable to
    allocate 112. GiB for an array ..."), torch's CPU allocator (a ``RuntimeError``: "can't
    allocate memory"), CUDA's ``OutOfMemoryError`` or OpenCV's allocator (a ``cv2.error``,
    "(-4:Insufficient memory) Failed to allocate ..."); not a bad input, so not exit code 2."""
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return True
    if library_not_mapped(e):  # under ulimit -v or -d
        return True
    if type(e).__module__ == "cv2" and "(-4:Insufficient memory)" in str(e):
        return True
    return isinstance(e, RuntimeError) and "can't allocate memory" in str(e)


# each memory limit a process can have set, how it is named and what it counts (the field of
# /proc/self/status the kernel compares a request with): ``ulimit -v`` every mapping, ``ulimit
# -d`` (Linux 4.7 on) the private writable ones, torch's libraries' data segments among them
_MEMORY_LIMITS = (
    ("RLIMIT_AS", "address-space", "ulimit -v", "VmSize"),
    ("RLIMIT_DATA", "data-segment", "ulimit -d", "VmData"),
)
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


def memory_limits() -> list[tuple[str, str, str, int]]:
    """This process's memory limits in effect, smallest first, each as (what it is, its
    ``ulimit`` option, its field of /proc/self/status, bytes): the address-space limit
    (``ulimit -v``; a cluster's ``h_vmem``) and the data-segment limit (``ulimit -d``); none
    where neither is set (or no ``resource`` module: Windows)."""
    if resource is None:
        return []
    found = []
    for name, what, option, field in _MEMORY_LIMITS:
        try:
            soft = resource.getrlimit(getattr(resource, name))[0]
        except (AttributeError, OSError, ValueError):
            continue
        if soft != resource.RLIM_INFINITY:
            found.append((what, option, field, soft))
    return sorted(found, key=lambda limit: limit[3])


def memory_in_use() -> dict[str, int]:
    """This process's Vm fields of /proc/self/status in bytes (VmSize, VmData among them; empty
    where unreadable: not Linux)."""
    try:
        text = Path("/proc/self/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return {}
    return {k: int(n) * 1024 for k, n in re.findall(r"^(Vm\w+):\s+(\d+) kB$", text, re.M)}


def requested_bytes(e: BaseException) -> int | None:
    """The size of the request that failed, where the error says it: numpy's "Unable to
    allocate 112. GiB", torch's "you tried to allocate 4718592 bytes", OpenCV's "Failed to
    allocate 150994944 bytes"; else None."""
    found = re.search(r"allocate (\d+(?:\.\d*)?) (bytes|[KMGTP]iB)\b", str(e))
    return None if found is None else int(float(found[1]) * _UNITS[found[2]])


def library_not_mapped(e: BaseException) -> bool:
    """Whether ``e`` is a shared library (torch's, OpenBLAS's) that could not be loaded under an
    address-space or data-segment limit: the loader's mmap fails with ENOMEM, which it words
    "failed to map segment from shared object" with no reason (a noexec mount adds ": Operation
    not permitted"). Before, a traceback: torch does not load under ``ulimit -v 3000000`` or
    ``ulimit -d 300000``."""
    text = str(e)
    return (
        isinstance(e, ImportError)
        and text.endswith("failed to map segment from shared object")
        and bool(memory_limits())
    )


def limit_hit(e: BaseException, limits: list) -> tuple[str, str, str, int] | None:
    """Which of ``limits`` (:func:`memory_limits`) is shown to have failed ``e``: a library that
    could not be mapped, or a request whose size the error gives and which, on top of what the
    process holds, is over the limit. None otherwise: a limit of 500 GiB does not fail a request
    of 112 GiB that the kernel refused for want of memory."""
    if not limits:
        return None
    if library_not_mapped(e):
        return limits[0]
    if (need := requested_bytes(e)) is None:
        return None
    used = memory_in_use()
    return next((lim for lim in limits if used.get(lim[2], 0) + need > lim[3]), None)


def out_of_memory_line(e: BaseException, resumable: bool) -> Text:
    """The line for :func:`out_of_memory`: a memory limit that failed it (``ulimit -v``, ``ulimit
    -d``; :func:`limit_hit`) is named as what to raise (before, "free memory" sent a cluster user
    whose job had a ``ulimit -v`` to a machine with memory to spare); one set but not shown to be
    hit is named beside "free memory"; CUDA's out of memory names none."""
    again = "run the same command again" + " to resume" * resumable
    limits = [] if type(e).__name__ == "OutOfMemoryError" else memory_limits()  # a GPU's: none
    if (hit := limit_hit(e, limits)) is not None:
        fix = f"the {hit[0]} limit ({hit[1]}) is {hit[3] / 2**30:.1f} GiB: raise it and {again}"
    elif limits:
        what, option, _, size = limits[0]
        fix = (
            f"free memory (or raise the {what} limit, {option}: {size / 2**30:.1f} GiB) and {again}"
        )
    else:
        fix = f"free memory and {again}"
    if not library_not_mapped(e):  # loading a library: nothing asked for is too large
        fix += ", or ask for less (smaller images, --size, --batch-size or --crop)"
    return error_text(e, "out of memory: ") + "; " + fix


def shared_memory_full(e: BaseException) -> bool:
    """Whether ``e`` is torch's DataLoader workers running out of shared memory: they pass each
    batch through ``/dev/shm``, 64 MB in a Docker container unless ``--shm-size`` says more
    (a 16-image batch of 1024-pixel crops is 84 MB, in uint8). A full ``/dev/shm`` fails the worker's
    allocation ("unable to allocate shared memory(shm) ...: No space left on device"); an
    overcommitted one kills it with a bus error, which torch reports as "... out of shared
    memory"."""
    text = str(e).lower()
    return isinstance(e, RuntimeError) and (
        "unable to allocate shared memory" in text or "out of shared memory" in text
    )


def worker_died(e: BaseException) -> str | None:
    """Which of this command's worker processes died and how, where ``e`` says one ended
    without a word (killed: the kernel's out-of-memory killer sends SIGKILL, as ``kill -9``
    does; or crashed): a process pool's worker or a training rank
    (``engine.parallel.WorkerDied``), or torch's DataLoader reporting its worker ("DataLoader
    worker (pid 12) is killed by signal: Killed."); None for any other error."""
    from engine.parallel import OOM_KILLER, WorkerDied  # here: the module imports OpenCV

    if isinstance(e, WorkerDied):
        return str(e)
    text = str(e)
    loader = isinstance(e, RuntimeError) and text.startswith("DataLoader worker (pid")
    if not (loader and ("is killed by signal" in text or "exited unexpectedly" in text)):
        return None
    died = text.split(". ")[0].strip().rstrip(".")  # torch's advice after it is for bugs
    if died.endswith("signal: Killed"):  # SIGKILL
        died += OOM_KILLER
    return died


def process_limit(e: BaseException, then: str = "run the same command again") -> Text | None:
    """The one line for ``e`` where it is a limit of this process's machine, container or
    shell (exit code 71, not a bad input, not a traceback), naming the limit and what raises
    it: :func:`shared_memory_full`, :func:`too_many_open_files`, a worker process killed
    (:func:`worker_died`; ``then`` says how to go on: what was finished is kept); None for any
    other error."""
    if shared_memory_full(e):
        return error_text(e, "out of shared memory: ") + (
            "; the data loader's worker processes pass batches through /dev/shm (64 MB in a "
            "Docker container by default): " + SHM_ADVICE.format(mounted=" mounted at /dev/shm")
        )
    if too_many_open_files(e):
        try:
            import resource

            limit = f" (ulimit -n: {resource.getrlimit(resource.RLIMIT_NOFILE)[0]:,})"
        except (ImportError, OSError, ValueError):  # no resource module on Windows
            limit = ""
        return (
            Text("error: ", style="bold red")
            + lead(e)
            + (
                f"too many open files{limit}; raise the limit (ulimit -n 4096; docker run --ulimit "
                "nofile=4096) or pass fewer --workers"
            )
        )
    if (died := worker_died(e)) is not None:  # before, exit code 2, "bad input"
        fewer = getattr(e, "option", "--workers")  # a DataLoader's worker: --workers
        return (
            Text("error: ", style="bold red")
            + lead(e)
            + (f"{died}; free memory or pass fewer {fewer}, then {then}")
        )
    return None
