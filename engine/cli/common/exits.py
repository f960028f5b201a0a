"""The exit codes every command shares (``EXIT_*``) and the end of a command stopped early:
:func:`interrupted` (Ctrl-C, SIGTERM, SIGHUP) and :func:`stopped`.
"""

from __future__ import annotations

from typing import NoReturn

from engine.cli.common.consoles import stderr

EXIT_SOME_FAILED = 1  # the command ran, but some items failed (their reasons are reported)
EXIT_BAD_INPUT = 2  # bad input or wrong call order: one line on stderr, nothing done
EXIT_NO_MEMORY = 71  # the machine ran out of memory (sysexits' EX_OSERR): one line on stderr
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
