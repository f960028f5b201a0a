"""What every command module shares: the consoles, exit codes and small option parsers."""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any, NoReturn

from rich.console import Console
from rich.text import Text

from engine.progress import SafeConsole, encodable, stderr_console, stream_error
from engine.runinfo import KEPT_PACKAGES, SHM_ADVICE, too_many_open_files
from engine.stopping import stream_gone
from engine.text import (
    MAX_TTA_SCALE,
    split_names,  # noqa: F401 - the option parsers' home for the CLI
)

try:  # imported before any command: a library that failed to map under ulimit -d can leave no
    import resource  # room to load resource's own (its import then fails the same way)
except ImportError:  # Windows
    resource = None

# Class names, stems and paths are printed as typed: no rich markup (`cone [old]` lost its
# `[old]`) and no emoji codes (`x:car:` became a car emoji)
stdout = SafeConsole(markup=False, emoji=False)  # results
# Notes, warnings and errors share the progress bars' console, so a line printed while a bar is
# drawn lands above the bar instead of through it.
stderr = stderr_console

EXIT_SOME_FAILED = 1  # the command ran, but some items failed (their reasons are reported)
EXIT_BAD_INPUT = 2  # bad input or wrong call order: one line on stderr, nothing done
EXIT_NO_MEMORY = 71  # the machine ran out of memory (sysexits' EX_OSERR): one line on stderr
# what a folder that cannot be written to fails a write with: a read-only mount, a folder
# without write permission (out_elsewhere)
NOT_WRITABLE = frozenset((errno.EROFS, errno.EACCES, errno.EPERM))
EXIT_IO_ERROR = 74  # the disk is full or read-only (sysexits' EX_IOERR): one line on stderr
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it (128 + SIGINT)
# stdout's reader gone (`engine info ... | head -1`): what a shell reports of a process SIGPIPE
# ended (128 + 13), as git and coreutils end, quietly
EXIT_BROKEN_PIPE = 141
INTERRUPTED = "interrupted"  # what stderr says then; a resumable command adds how to resume


def interrupted() -> tuple[str, int]:
    """What stderr says and the exit code of a command that stopped early: Ctrl-C's
    ``interrupted`` and 130, or for a scheduler's SIGTERM (:mod:`engine.stopping`)
    ``interrupted (SIGTERM)`` and 143, for a hang-up's SIGHUP ``interrupted (SIGHUP)`` and 129."""
    from engine.stopping import received, received_signal

    if received():
        name, code = received_signal()
        return f"{INTERRUPTED} ({name})", code
    return INTERRUPTED, EXIT_INTERRUPTED


def stopped(resume: str = "") -> NoReturn:
    """End a command that stopped early: :func:`interrupted`'s line on stderr (and ``resume``,
    how to go on) and its exit code."""
    import typer

    text, code = interrupted()
    stderr.print(text + resume, soft_wrap=True)
    raise typer.Exit(code)


# The packages whose log records the command line shows (transformers and huggingface_hub keep
# their own handlers and verbosity).
LOGGED_PACKAGES = KEPT_PACKAGES  # the packages whose warnings the console shows (and records keep)


class ConsoleLogHandler(logging.Handler):
    """A log record as one ``warning: ...`` line on :data:`stderr`, in the style of the
    command line's notes and errors. Without a handler Python prints records bare, and through a
    progress bar being drawn."""

    STYLES = {"warning": "yellow", "error": "bold red", "critical": "bold red"}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = record.levelname.lower()
            head = Text(f"{level}: ", style=self.STYLES.get(level, ""))
            stderr.print(head + Text(self.format(record)), soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging must never take the command down
            self.handleError(record)


def broken_pipe(e: BaseException) -> bool:
    """Whether ``e`` is a write to stdout or stderr whose reader has gone (``engine info ... |
    head -1``); if so, both are pointed at the null device, so that nothing more is said (nor
    Python's "Exception ignored ... BrokenPipeError" at exit). An EPIPE of anything else (a
    socket of torch.distributed, a worker's pipe) is not: it stays an error. SIGPIPE is left
    ignored, as Python sets it, for those sockets' sake: no SIG_DFL process-wide."""
    return stream_gone(e, errno.EPIPE)


def raise_broken_pipes() -> None:
    """Every rich console of the command line's process, typer's help among them, raises a
    broken pipe as :class:`SafeConsole` does (for :func:`broken_pipe`), instead of rich's exit
    code 1 (``engine --help | head -1``). In ``cli.main`` only: a library caller's own consoles
    are left as they are."""
    Console.on_broken_pipe = SafeConsole.on_broken_pipe  # type: ignore[method-assign]


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


def log_to_console(level: int = logging.WARNING) -> None:
    """Show the engine's own log records at ``level`` and above on the console (once per
    process: a second call changes nothing)."""
    for name in LOGGED_PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(h, ConsoleLogHandler) for h in logger.handlers):
            logger.addHandler(ConsoleLogHandler())


class SizeFormError(ValueError):
    """:func:`parse_size`'s text that is no ``WxH`` at all (a size out of range is a plain
    ValueError): ``engine predict --size`` takes words too and says so for this one only."""


# why a side is bounded, per option: --size writes images and label maps; the others write none
_SIZE_BOUND = {"--size": "the largest PNG written"}


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """``"WxH"`` -> ``(W, H)``, each 1..:data:`annotations.numbers.MAX_IMAGE_SIDE`; a clear error otherwise
    (:class:`SizeFormError` where the text is no ``WxH``)."""
    from annotations.numbers import MAX_IMAGE_SIDE  # here: annotations loads OpenCV, --help not

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SizeFormError(
            f"{option} must look like 512x384 (width x height), got {text!r}"
        ) from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{option} must be positive, got {text!r}")
    if max(w, h) > MAX_IMAGE_SIDE:
        why = _SIZE_BOUND.get(option, "the largest side of a PNG image")
        raise ValueError(
            f"{option} must be at most {MAX_IMAGE_SIDE} pixels a side ({why}), got {text!r}"
        )
    return w, h


def _in_process(workers: int) -> int:
    """``--workers``' callback: the library's reading of it (0 and 1: in this process),
    imported when a command runs, not for ``engine --help`` (engine.parallel imports cv2)."""
    from engine.parallel import in_process_workers

    return in_process_workers(workers)


def workers_option(what: str = "Worker processes") -> Any:
    """``--workers`` of a command that works in processes (fuse, evaluate, compare, info): 1,
    the default, runs in this process, and 0 means the same, as ``engine train --workers 0``
    loads in the training process."""
    import typer

    return typer.Option(
        1, "--workers", min=0, callback=_in_process, help=f"{what}; 0 or 1: in this process."
    )


def one_split(
    values: list[str] | None, default: str | None, command: str, todo: str, why: str = ""
) -> str | None:
    """The one split of a command that takes one: ``--split val``, as the commands taking
    several spell theirs (repeatable, comma-separated), but more than one name is refused:
    ``"--split val,test: COMMAND takes one split (WHY): TODO"`` (before, a second ``--split``
    silently replaced the first and ``val,test`` was looked for as a split of that name)."""
    names = tuple(dict.fromkeys(split_names(values) or (default,)))
    if len(names) > 1:
        held = f" ({why})" if why else ""
        raise ValueError(f"--split {','.join(names)}: {command} takes one split{held}: {todo}")
    return names[0]


MAX_SCALE = MAX_TTA_SCALE  # engine.text's, which trainer.inference checks too


def parse_scales(text: str, option: str = "--scales") -> tuple[float, ...]:
    """``"0.75,1,1.25"`` -> ``(0.75, 1.0, 1.25)``; a clear error otherwise, also for a scale
    above :data:`MAX_SCALE` (``1e3`` failed in OpenCV's allocator, ``1e308`` in ``int()``)."""
    try:
        scales = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"{option} must be comma-separated numbers like 0.75,1,1.25, got {text!r}"
        ) from None
    if not scales or any(not 0 < s < float("inf") for s in scales):
        raise ValueError(f"{option} must be positive numbers, got {text!r}")
    if max(scales) > MAX_SCALE:
        raise ValueError(
            f"{option} must be at most {MAX_SCALE:g} (the size times {MAX_SCALE:g} on each side), "
            f"got {text!r}"
        )
    return scales


def rich_help_cuts(format_help: Callable[[], None]) -> bool | None:
    """Whether typer's rich help, as ``format_help`` draws it at this terminal's width, cuts
    text short with "…". Its options table gives every column an equal share once the widest
    ones no longer fit, so on an 80-column terminal (or a pipe, read as 80) long option names
    such as ``--detector-revision`` came out as ``--detector-revi…``. The help is drawn into a
    buffer at the width the real one would have; nothing is shown. None: this typer drew it
    without the console it draws through since 0.16, so it is shown already."""
    from typer import rich_utils

    real = getattr(rich_utils, "_get_rich_console", None)
    if real is None:  # a typer that draws otherwise: its own layout, as it is
        return False
    buffer = io.StringIO()

    def into_buffer(stderr: bool = False) -> Console:
        console = real(stderr)
        console.width = console.width  # the terminal's (or COLUMNS'), fixed before the swap
        console.file = buffer
        return console

    rich_utils._get_rich_console = into_buffer
    try:
        format_help()
    finally:
        rich_utils._get_rich_console = real
    if not buffer.getvalue():
        return None
    return "\u2026" in buffer.getvalue()


def is_stdout(path: object) -> bool:
    """``--json -`` (or ``--markdown -``): the output goes to stdout alone (tables and notes to
    stderr), for a script to read; before, a file named ``-`` was written in the working
    directory."""
    return path is not None and str(path) == "-"


def write_stdout(text: str) -> None:
    """``--json -`` / ``--markdown -``: ``text`` on stdout as the UTF-8 bytes ``--json FILE``
    would hold, whatever the stream's encoding (under ``PYTHONIOENCODING=ascii`` the markdown's
    "ΔIoU" raised UnicodeEncodeError; a script reading the output gets the file's bytes). A
    file name that is not UTF-8 (``caf\\xe9``) escaped, ``caf\\udce9``, as the file holds it
    (``atomic_write_text``): under ``PYTHONIOENCODING=utf-8`` it raised UnicodeEncodeError."""
    import sys

    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # no lone surrogate left
    buffer = getattr(sys.stdout, "buffer", None)
    try:
        if buffer is None or encodable(text, sys.stdout.encoding or "utf-8"):
            sys.stdout.write(text)
            sys.stdout.flush()  # a full disk says so here, within the command's guard
            return
        sys.stdout.flush()
        buffer.write(text.encode("utf-8"))
        buffer.flush()
    except OSError as e:
        raise stream_error(e, sys.stdout, "stdout") from None


def refuse_plot_to_stdout(plot: object) -> None:
    """``--plot -``: a chart is a PNG, not for the terminal (it wrote a file named ``-``)."""
    if is_stdout(plot):
        raise ValueError("--plot -: the chart is a PNG image, not for the terminal; give its file")
