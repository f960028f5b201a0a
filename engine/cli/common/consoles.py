"""The command line's consoles: :data:`stdout` (results) and :data:`stderr` (notes, warnings,
errors, progress bars), log records shown on the console (:func:`log_to_console`), a reader of
stdout gone (:func:`broken_pipe`), ``--json -``'s bytes (:func:`write_stdout`) and typer's help
drawn at the terminal's width (:func:`rich_help_cuts`).
"""

from __future__ import annotations

import errno
import io
import logging
from collections.abc import Callable

from rich.console import Console
from rich.text import Text

from engine.progress import SafeConsole, encodable, stderr_console, stream_error
from engine.runinfo import KEPT_PACKAGES
from engine.stopping import stream_gone

# Class names, stems and paths are printed as typed: no rich markup (`cone [old]` lost its
# `[old]`) and no emoji codes (`x:car:` became a car emoji)
stdout = SafeConsole(markup=False, emoji=False)  # results
# Notes, warnings and errors share the progress bars' console, so a line printed while a bar is
# drawn lands above the bar instead of through it.
stderr = stderr_console
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


def log_to_console(level: int = logging.WARNING) -> None:
    """Show the engine's own log records at ``level`` and above on the console (once per
    process: a second call changes nothing)."""
    for name in LOGGED_PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(h, ConsoleLogHandler) for h in logger.handlers):
            logger.addHandler(ConsoleLogHandler())


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
