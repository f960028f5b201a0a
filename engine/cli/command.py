"""The click classes every ``engine`` command is built on: help that shows each option in full,
and usage errors (a bad value, an unknown or missing option, an unknown command) as the one line
``error: ...`` every other error of the command line is, instead of typer's boxed panel."""

from __future__ import annotations

import ast
import contextlib
import errno
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import typer
import typer.core
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from engine.cli.common import EXIT_BROKEN_PIPE, broken_pipe, rich_help_cuts, stderr

if hasattr(typer.core, "_click"):  # typer >= 0.24 carries its own copy of click
    UsageError = typer.core._click.exceptions.UsageError
else:  # pragma: no cover - older typer, on click
    from click import UsageError


def quiet_flags(command: TyperCommand | TyperGroup, ctx: typer.Context) -> None:
    """An on/off flag takes no value: show no ``<bool>`` type beside it in the help. A
    repeatable option takes one value each time: ``--pseudo <Path>``, not typer's
    ``<list[Path]>``, which read as a list in one value (the docs say "repeatable")."""
    for param in [*command.params, command.get_help_option(ctx)]:
        if param is None or not hasattr(param, "is_flag") or param.metavar is not None:
            continue  # arguments (SOURCES... says it repeats), options naming their metavar
        shown = param.display_type(ctx) if hasattr(param, "display_type") else None
        if param.is_flag or shown == "<bool>":
            param.metavar = ""
        elif param.multiple and isinstance(shown, str) and shown.startswith("<list["):
            param.metavar = f"<{shown[len('<list[') : -len(']>')]}>"


def option_value(args: list[str], option: str) -> str | None:
    """The last value ``args`` give ``option`` (``--crop 512`` or ``--crop=512``), if any."""
    found = None
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(option + "="):
            found = arg[len(option) + 1 :]
    return found


def square_crop(e: UsageError, args: list[str]) -> str | None:
    """For ``--crop 512x384``: that crops are square and to give one number (typer said the
    value was not a valid integer, which did not say why a size was refused)."""
    if getattr(getattr(e, "param", None), "name", None) != "crop":
        return None
    value = (option_value(args, "--crop") or "").strip()
    if not re.fullmatch(r"\d+[xX]\d+", value):
        return None
    side = max(int(v) for v in re.split("[xX]", value))
    return f"--crop {value}: training crops are square: give one number, the side in pixels (e.g. --crop {side})"


def usage_error(e: UsageError, args: list[str] | None = None) -> NoReturn:
    """``e`` as one line on stderr, with the help to read, and click's exit code (2)."""
    if type(e).__name__ == "NoArgsIsHelpError":  # no error: the help, which typer shows
        raise e
    line = square_crop(e, args or []) or e.format_message().strip().rstrip(".")
    if e.ctx is not None:  # "Did you mean 'train'?" ends a sentence of its own
        line += f"{' S' if line.endswith('?') else '; s'}ee {e.ctx.command_path} --help"
    stderr.print(Text("error: ", style="bold red") + Text(line), soft_wrap=True)
    raise typer.Exit(e.exit_code)


class _OneLineUsageErrors:
    """Parsing a command's or a group's options: click's usage errors as :func:`usage_error`."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        given = list(args)  # click consumes args as it parses them
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except UsageError as e:
            usage_error(e, given)


class Command(_OneLineUsageErrors, TyperCommand):
    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        """Typer's rich panels, or click's plain list where the panels would cut option names
        or values short at this terminal's width (every name in full, help wrapped beside)."""
        quiet_flags(self, ctx)
        cuts = self.rich_markup_mode is not None and rich_help_cuts(
            lambda: super(Command, self).format_help(ctx, formatter)
        )
        if cuts is None:  # shown already
            return
        markup = self.rich_markup_mode
        self.rich_markup_mode = None if cuts else markup
        try:
            super().format_help(ctx, formatter)
        finally:
            self.rich_markup_mode = markup


@contextlib.contextmanager
def _output_closed_quietly() -> Iterator[None]:
    """Exit code 141, quietly, when the reader of stdout or stderr has gone; a broken pipe of
    anything else (a socket of torch.distributed, a worker's pipe) is an error with its
    traceback: click ended it with exit code 1 and nothing said."""
    try:
        yield
    except OSError as e:
        if broken_pipe(e):
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        if e.errno == errno.EPIPE:
            raise RuntimeError(f"broken pipe, not the command's output: {e}") from e
        raise


class Group(_OneLineUsageErrors, TyperGroup):
    """A reader that closes the pipe early (``engine info ... | head -1``, ``engine --help |
    head -1``) ends any command quietly with exit code 141, as git's and coreutils' do (the
    shell's code for a process SIGPIPE ended); click made it exit code 1, which ``engine info``
    says for problems found."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _output_closed_quietly():  # the options parsed here: --help, --version
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: typer.Context) -> Any:
        with _output_closed_quietly():  # the command (its own --help too)
            try:
                return super().invoke(ctx)
            finally:
                if sys.stdout is not None:  # what print() left in the buffer, said here
                    sys.stdout.flush()

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        quiet_flags(self, ctx)
        super().format_help(ctx, formatter)

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except UsageError as e:
            usage_error(e)


def docstring(fn: Callable[..., Any]) -> str | None:
    """``fn``'s docstring, read from its source where ``python -OO`` (``PYTHONOPTIMIZE=2``)
    stripped ``__doc__``: typer builds a command's help from it, and every command's description
    was gone from ``engine --help`` and from its own ``--help``. None where no source is found
    (an install of ``.pyc`` files only)."""
    if fn.__doc__ is not None or sys.flags.optimize < 2:
        return fn.__doc__
    try:
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
        node = ast.parse(source).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    return ast.get_docstring(node, clean=False)


def show_version(value: bool) -> None:
    """``engine --version``: the installed distribution's version (a wheel has no git checkout
    to ask), or that none is installed (``python -m cli`` from a checkout never installed)."""
    if not value:
        return
    from engine.runinfo import package_versions

    version = package_versions(("mass-engine",))["mass-engine"]
    typer.echo(f"mass-engine {version or '(not installed: run from a source tree)'}")
    raise typer.Exit()


def root_options(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=show_version, help="Print the version and exit."
    ),
) -> None:
    pass
