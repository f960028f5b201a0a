"""Rich progress bars with rate and ETA, shared by every long-running command.

Library code never prints; it takes a ``progress: bool`` and draws on stderr through these
helpers, so a caller (or a test) can switch them off. Where stderr is not an interactive
terminal (a log file, a pipe, ``TERM=dumb``), the bar is not redrawn: a plain line says where
the run stands every :data:`LOG_EVERY_S` seconds, and the bar is drawn once when it ends.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console, ConsoleOptions, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.segment import Segment
from rich.table import Column
from rich.text import Text

T = TypeVar("T")

# What a console that cannot encode a character (PYTHONIOENCODING=ascii, a latin-1 locale, a
# log collector reading ASCII) shows instead: the symbols the engine's messages and rich's tables
# use, in ASCII, one character for one where a table's column widths count on it ("ΔIoU" as
# "dIoU", rich's "…" as "."); any other character (a file name's "é") as "?".
ASCII_SYMBOLS = str.maketrans(
    {"\u0394": "d", "\u2026": ".", "\u2265": ">=", "\u2264": "<=", "\u00b1": "+/-",
     "\u2192": "->", "\u2014": "-", "\u2013": "-", "\u00d7": "x"}
)  # fmt: skip


# What a write to a stream that is gone fails with: a terminal hung up (EIO), a closed
# descriptor (EBADF), a device or socket no longer there (ENXIO, ENODEV, ECONNRESET, ENOTCONN).
# A broken pipe (EPIPE) is the reader gone, which ends the command (exit code 141).
STREAM_GONE = frozenset(
    (errno.EIO, errno.EBADF, errno.ENXIO, errno.ENODEV, errno.ECONNRESET, errno.ENOTCONN)
)


class SafeConsole(Console):
    """A rich Console that never fails on its stream's encoding. rich draws ASCII boxes and
    bars where the encoding is not UTF-8, but writes the text it is given as it is: under
    ``PYTHONIOENCODING=ascii`` the "ΔIoU" heading of Table 4 raised UnicodeEncodeError, so
    ``engine compare``, ``engine report`` and ``engine info REPORT`` stopped with ``error:
    'ascii' codec can't encode character``; and on a UTF-8 stream a file name that is not
    UTF-8 did (``engine info`` listing ``caf\\xe9.jpg``: ``surrogates not allowed``)."""

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kw: Any) -> None:
        """Lines of text are not broken at the console's width (80 in a pipe or a log file):
        the terminal wraps a long line itself, a log keeps it whole, and a path or command in it
        can be copied and grepped. Before, "-> PATH (open it as a dataset: engine info PATH)"
        came out over three lines, and a path longer than the width in two pieces. Tables and
        other renderables fit the width as before."""
        if soft_wrap is None:
            soft_wrap = all(isinstance(o, str | Text) for o in objects)
        try:
            super().print(*objects, soft_wrap=soft_wrap, **kw)
        except OSError as e:  # the stream's own file refused the write (a full disk)
            raise stream_error(e, self.file, "stderr" if self.stderr else "stdout") from None

    def _check_buffer(self) -> None:
        """Where stderr itself refuses a write (``2> log`` on a full disk, ``2>/dev/full``, a
        closed descriptor, a terminal hung up), what it refused goes unsaid, and the command
        goes on: its work, results on stdout and exit code are what they would be. Before, the
        refused write ended the command with a traceback nothing could show and exit code 1,
        whatever happened: a progress line stopped a training, an error line's exit code 2
        became 1. A stream that is gone (:data:`STREAM_GONE`: a closed descriptor, a terminal
        hung up) is not written to again; one that refused for a moment (a full disk that an
        atomic write's temporary file filled, a non-blocking pipe full: EAGAIN) is, so the
        command's last ``error: ...`` line still arrives (it was kept quiet for good). stdout's
        refusal is raised (a result is lost: exit 74), and so is a broken pipe (exit 141,
        :meth:`on_broken_pipe`)."""
        try:
            super()._check_buffer()
        except OSError as e:
            if not self.stderr or e.errno == errno.EPIPE:
                raise
            self.quiet = e.errno in STREAM_GONE
            del self._buffer[:]

    def on_broken_pipe(self) -> None:
        """The stream's reader has gone (``engine info ... | head -1``): raise the
        ``BrokenPipeError``, for the caller to end as it ends (the command line: exit code 141,
        quietly, :func:`engine.cli.common.broken_pipe`). rich's own ended the process with
        ``SystemExit(1)``, which ``engine info`` says for problems found."""
        self.quiet = True  # nothing more to this stream
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        encoding = self.encoding
        # surrogateescape writes a file name's own bytes; backslashreplace ("\u2026") and the
        # like are no better than the ASCII symbols
        errors = (
            "surrogateescape"
            if getattr(self.file, "errors", None) == "surrogateescape"
            else "strict"
        )
        for segment in super().render(renderable, options):
            text = segment.text
            if not text.isascii() and not encodable(text, encoding, errors):
                text = text.translate(ASCII_SYMBOLS).encode(encoding, "replace")
                segment = Segment(text.decode(encoding), segment.style, segment.control)
            yield segment


def stream_error(e: OSError, stream: Any, name: str) -> OSError:
    """``e``, raised writing the standard stream ``stream`` (``name``: ``stdout``), naming it as
    its file: ``stdout (/dev/full): No space left on device``, what it is redirected to where the
    system says (``/proc/self/fd``). Before, ``engine info > FILE`` on a full disk, or ``--json
    -`` into a full pipe, ended with ``error: [Errno 28] No space left on device``, no file
    named, as if an output of the command had failed. An error that names its file is left as
    it is."""
    if e.filename is not None or e.errno is None:
        return e
    try:
        target = os.readlink(f"/proc/self/fd/{stream.fileno()}")
    except (OSError, ValueError, AttributeError):  # no descriptor (a test's buffer), no /proc
        target = ""
    return type(e)(e.errno, e.strerror, f"{name} ({target})" if target.startswith("/") else name)


def encodable(text: str, encoding: str, errors: str = "strict") -> bool:
    """Whether ``text`` can be written to a stream of ``encoding`` (and ``errors``) as it is. A
    file name that is not UTF-8 (``caf\\xe9.jpg`` from a latin-1 system) is read with a
    surrogate for the byte: a UTF-8 stream writes it only with ``surrogateescape`` (Python's
    choice under ``LANG=C.UTF-8``; under ``en_US.UTF-8`` it is ``strict``)."""
    try:
        text.encode(encoding, errors)
    except UnicodeEncodeError:
        return False
    return True


# As engine.cli.common.stdout: what is printed (a class name, a path) is shown as typed
stderr_console = SafeConsole(stderr=True, markup=False, emoji=False)


class RateColumn(ProgressColumn):
    """Items per second (or seconds per item when slower than one per second). Where rich has
    no rate, which it makes from two advances or more, it is the items done over the time
    elapsed: a one-image bar said ``-- img/s`` when it ended, and a bar whose first image took
    its time said it until the second came; ``--`` is left for a bar that has done nothing.
    Only what this bar did counts: a bar that starts part done (a resumed training, a fuse of
    which every image was done before) said ``9000.00 it/s`` from the steps done before it."""

    def __init__(self, unit: str = "it") -> None:
        super().__init__(table_column=_unwrapped())
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        elapsed = task.finished_time if task.finished else task.elapsed
        done = task.completed - task.fields.get(DONE_BEFORE, 0)
        if not speed and done > 0 and elapsed:
            speed = done / elapsed
        if not speed:
            return Text(f"-- {self.unit}/s", style="progress.data.speed")
        if speed >= 1:
            return Text(f"{speed:.2f} {self.unit}/s", style="progress.data.speed")
        return Text(f"{1 / speed:.2f} s/{self.unit}", style="progress.data.speed")


# The field LoggedProgress.add_task keeps a task's ``completed`` at its start in (work done
# before the bar: a resumed run), for RateColumn to leave out
DONE_BEFORE = "done_before"


# How often a bar that is not redrawn (stderr not an interactive terminal) writes where it
# stands, in seconds: a SLURM or nohup log of a day-long run gets a line a minute.
LOG_EVERY_S = 60.0


class LoggedProgress(Progress):
    """rich's Progress, which also writes a plain line now and then (description, N/M, rate,
    elapsed, ETA and the extra fields; no bar, no escape codes) where the console is not an
    interactive terminal. There rich draws nothing until the bar stops: the log of an ``engine
    train`` under SLURM or ``nohup`` said nothing of its progress for the whole run."""

    def __init__(self, *columns: ProgressColumn, every: float | None = None, **kw: Any) -> None:
        super().__init__(*columns, **kw)
        self.every = LOG_EVERY_S if every is None else every
        self.logged_at: float | None = None  # the first advance starts the clock
        # read once: is_interactive asks isatty and the environment, and advance() is per image
        self.logs = not (self.disable or self.console.is_interactive)

    def add_task(
        self,
        description: str,
        start: bool = True,
        total: float | None = 100.0,
        completed: int = 0,
        visible: bool = True,
        **fields: Any,
    ) -> TaskID:
        """rich's add_task, which also keeps ``completed`` (done before the bar) in the task's
        fields (:data:`DONE_BEFORE`), for the rate to count only what the bar does."""
        fields.setdefault(DONE_BEFORE, completed)
        return super().add_task(description, start, total, completed, visible, **fields)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self.log_now_and_then()

    def update(self, task_id: TaskID, **kw: Any) -> None:
        super().update(task_id, **kw)
        self.log_now_and_then()

    def log_now_and_then(self) -> None:
        """One line per unfinished task, when :attr:`every` seconds have passed since the last."""
        if not self.logs:
            return
        now = self.get_time()
        with self._lock:  # the labeler's writer threads update the bar too: one line, not two
            if self.logged_at is None:
                self.logged_at = now
            if now - self.logged_at < self.every:
                return
            self.logged_at = now
        for task in self.tasks:
            if task.visible and not task.finished:
                self.console.print(self.log_line(task), soft_wrap=True, highlight=False)

    def log_line(self, task: Task) -> Text:
        cells = [column(task) for column in self.columns if not isinstance(column, BarColumn)]
        return Text(" ").join(c for c in cells if isinstance(c, Text) and c.plain.strip())


def make_progress(unit: str = "img", extra: str | None = None, enabled: bool = True) -> Progress:
    """A Progress with description, bar, N/M, rate, elapsed and ETA; ``extra`` is a field template
    such as ``"{task.fields[loss]}"`` shown after the bar. The spinner only where it spins (an
    interactive terminal; in a log its one frame was a stray "⠋")."""
    spinner = [SpinnerColumn()] if stderr_console.is_interactive else []
    columns: list[ProgressColumn] = [
        *spinner,
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        MofNCompleteColumn(table_column=_unwrapped()),
        RateColumn(unit),
        TimeElapsedColumn(table_column=_unwrapped()),
        TextColumn("ETA", table_column=_unwrapped()),
        TimeRemainingColumn(table_column=_unwrapped()),
    ]
    if extra:
        columns.append(TextColumn(extra, table_column=_unwrapped()))
    return LoggedProgress(*columns, console=stderr_console, disable=not enabled, transient=False)


def _unwrapped() -> Column:
    """A column rich does not fold: where a line is too wide, rich folds every foldable column a
    little (``74.60 img/s`` over two lines at 80 columns) rather than shorten the bar."""
    return Column(no_wrap=True)


def track(
    items: Iterable[T],
    description: str,
    total: int | None = None,
    unit: str = "img",
    enabled: bool = True,
) -> Iterator[T]:
    """Iterate ``items`` under a progress bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress(unit, enabled=enabled) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            del item  # not held while the next is made: items may be large
            progress.advance(task)


@contextlib.contextmanager
def no_hf_progress_bars() -> Iterator[None]:
    """transformers' progress bars (loading weights, writing shards) off while the block runs,
    and as they were afterwards: the command's own bar is the only one. Before the forty-eighth
    round they stayed off for the process's life, so a notebook's own ``from_pretrained`` after
    a label run showed no download or loading bar."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
