"""The ``engine`` command line: assembles the per-area command modules in workflow order.

Each area keeps its commands beside its package (``labeler/cli.py``, ``trainer/cli/``,
``engine/cli/*.py``); a command parses options, builds a config and calls one library function.
This file only decides where each command appears in ``engine --help`` and adds the shared error
handling: the library raises ``ValueError`` / ``FileNotFoundError`` (or ``RuntimeError`` for wrong
call order) on bad input, and :func:`guard` turns that into one line on stderr and exit code 2
instead of a traceback; a full or read-only disk likewise, with exit code 74, and running out of
memory with 71. Heavy libraries
(torch, transformers, OpenCV) are imported inside the commands that need them, so
``engine --help`` answers at once.
"""

from __future__ import annotations

import copy
import errno
import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from engine import stopping
from engine.cli import annotate, data, demo, fusion, review, scores
from engine.cli.command import Command, Group, docstring, root_options
from engine.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_IO_ERROR,
    EXIT_NO_MEMORY,
    disk_error,
    disk_remedy,
    error_text,
    interrupted,
    log_to_console,
    out_elsewhere,
    out_not_made,
    out_of_memory,
    out_of_memory_line,
    parse_size,
    process_limit,
    raise_broken_pipes,
    stderr,
    stopped,
)
from engine.runinfo import follow_cpu_quota
from labeler import cli as labeler_cli
from trainer import cli as trainer_cli

__all__ = ["app", "main", "parse_size", "WORKFLOW"]

F = TypeVar("F", bound=Callable[..., Any])

# The help lists commands in the order a user runs them, one panel per stage.
WORKFLOW: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Data", ("synth", "info")),
    ("Pseudo labels", ("label", "convert-sam", "review")),
    ("Annotated subsets", ("annotate",)),
    ("Fusion", ("fuse",)),
    ("Model", ("models", "train", "predict", "convert-massformer")),
    ("Scores", ("evaluate", "compare", "report")),
    ("Demo", ("demo", "demo-pretrain")),
)
_AREAS = (data, labeler_cli, review, fusion, trainer_cli, scores, demo)
_GROUPS = {"annotate": annotate.app}

# What a command raises for bad input or wrong call order (click's Exit and Abort are
# RuntimeErrors too, and pass through untouched).
_INPUT_ERRORS = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    FileExistsError,
    PermissionError,
    RuntimeError,
)


class _Group(Group):
    def list_commands(self, ctx: typer.Context) -> list[str]:
        """Workflow order (groups such as ``annotate`` in their place, not after the rest)."""
        rank = {name: i for i, name in enumerate(n for _, names in WORKFLOW for n in names)}
        return sorted(self.commands, key=lambda name: rank.get(name, len(rank)))


# Commands whose rerun continues where an interrupted run stopped (engine label also says so
# when its loop stops; engine train names the checkpoint --resume continues from).
RESUMABLE = frozenset({"synth", "label", "fuse", "predict", "demo", "demo-pretrain"})


def guard(fn: F, resumable: bool = False) -> F:
    """Turn the library's input errors into one clear line and exit code 2, and Ctrl-C into
    ``interrupted`` (with how to resume) and exit code 130 (typer would end it silently); a
    SIGTERM likewise, with 143, and a SIGHUP (the terminal gone) with 129."""
    resume = ": run the same command again to resume" if resumable else ""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, RecursionError, NotImplementedError):
            raise  # the last two are RuntimeErrors but a fault of the code: their traceback
        except KeyboardInterrupt:
            stopped(resume)
        except Exception as e:  # OpenCV's allocator raises a cv2.error: out of memory too
            if stopping.hung_up(e):  # a write to the terminal that hung up: its SIGHUP's stop
                stopped(resume)
            if not isinstance(e, (*_INPUT_ERRORS, MemoryError, OSError)) and not out_of_memory(e):
                raise
            if out_of_memory(e):  # the machine's limit, not a bad input: no traceback, no 2
                stderr.print(out_of_memory_line(e, resumable), soft_wrap=True)
                raise typer.Exit(EXIT_NO_MEMORY) from None
            # a container's /dev/shm, ulimit -n; a worker process killed (out of memory?)
            again = "run the same command again" + " to resume" * resumable
            if (line := process_limit(e, again)) is not None:
                stderr.print(line, soft_wrap=True)
                raise typer.Exit(EXIT_NO_MEMORY) from None
            # a bad input, or a long --class that made the default --out's name too long
            if isinstance(e, _INPUT_ERRORS) or e.errno == errno.ENAMETOOLONG:
                line = out_not_made(e, kwargs) or error_text(e) + out_elsewhere(e, kwargs, "; ")
                stderr.print(line, soft_wrap=True)
                raise typer.Exit(EXIT_BAD_INPUT) from None
            if not disk_error(e):  # a full or read-only disk: the machine's problem, one line
                raise
            again = f"; {disk_remedy(e)} and run the same command again" + " to resume" * resumable
            stderr.print(error_text(e) + again + out_elsewhere(e, kwargs), soft_wrap=True)
            raise typer.Exit(EXIT_IO_ERROR) from None

    return wrapper  # type: ignore[return-value]


def _guarded(info: Any, panel: str | None = None) -> Any:
    """A copy of a registered command with the guard around it (the area's own app is left as
    it is), placed in ``panel`` of the help."""
    info = copy.copy(info)
    info.callback = guard(info.callback, resumable=info.name in RESUMABLE)
    info.cls = Command
    info.help = info.help or docstring(info.callback)  # under python -OO too (no __doc__)
    if info.short_help is None:  # typer's rich list keeps a docstring's line breaks: join them
        doc = inspect.cleandoc(info.help or "")
        info.short_help = " ".join(doc.split("\n\n")[0].split())
    if panel is not None:
        info.rich_help_panel = panel
    return info


def build_app() -> typer.Typer:
    """The ``engine`` app: every area's commands, in :data:`WORKFLOW` order."""
    root = typer.Typer(
        name="engine",
        help="MaSS data engine: pseudo-label a new class with Grounded-SAM, fuse it with precise "
        "labels, train MaSSFormer jointly, and score it all with mIoU / Boundary IoU / "
        "Boundary F1.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        cls=_Group,
    )
    root.callback()(root_options)  # engine --version
    commands = {info.name: info for area in _AREAS for info in area.app.registered_commands}
    placed = {name for _, names in WORKFLOW for name in names}
    stray = sorted(set(commands) - placed)
    if stray:  # a new command must be given its place in the workflow
        raise RuntimeError(f"commands without a place in cli.WORKFLOW: {', '.join(stray)}")
    for panel, names in WORKFLOW:
        for name in names:
            if name in _GROUPS:
                group = copy.copy(_GROUPS[name])
                group.registered_commands = [_guarded(c) for c in group.registered_commands]
                root.add_typer(group, name=name, rich_help_panel=panel, cls=_Group)
            elif name in commands:  # absent: not built in this version (e.g. a converter)
                root.registered_commands.append(_guarded(commands[name], panel))
    return root


app = build_app()


def main() -> None:
    """Console-script entry point: a SIGTERM (a scheduler's stop, exit code 143) and a SIGHUP
    (the terminal gone, 129) are handled as Ctrl-C (:mod:`engine.stopping`; here only,
    library callers keep their own signal handling)."""
    log_to_console()
    raise_broken_pipes()  # `engine ... | head -1`: exit code 141, quietly (engine.cli.command)
    stopping.install()
    follow_cpu_quota()  # torch's default threads: a container's CPU quota, not the host's cores
    try:
        app(prog_name="engine")  # as `python -m cli` too (its usage and errors said cli.py)
    except KeyboardInterrupt:  # before a command started (typer turns it into exit 130 after)
        text, code = interrupted()
        stderr.print(text, soft_wrap=True)
        sys.exit(code)


if __name__ == "__main__":
    main()
