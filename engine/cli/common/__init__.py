"""What every command module shares: the consoles, exit codes and small option parsers.

One module per part, each using only those listed before it:

- :mod:`~engine.cli.common.consoles`: :data:`stdout`, :data:`stderr`, the console's log handler
  (:func:`log_to_console`), :func:`broken_pipe`, :func:`write_stdout`, :func:`rich_help_cuts`;
- :mod:`~engine.cli.common.exits`: the ``EXIT_*`` codes, :func:`interrupted` and :func:`stopped`;
- :mod:`~engine.cli.common.errors`: an error's one line (:func:`error_text`, :func:`grouped`),
  the disk's errors and an ``--out`` that cannot be written or made;
- :mod:`~engine.cli.common.limits`: out of memory and the other limits of the machine,
  container or shell (:func:`out_of_memory_line`, :func:`process_limit`);
- :mod:`~engine.cli.common.options`: :func:`parse_size`, :func:`parse_scales`,
  :func:`workers_option`, :func:`one_split`, ``-`` for stdout, and ``split_names``.

Every name callers import from ``engine.cli.common`` is imported here from its module.
"""

from __future__ import annotations

from engine.cli.common.consoles import (
    LOGGED_PACKAGES,
    ConsoleLogHandler,
    broken_pipe,
    log_to_console,
    raise_broken_pipes,
    rich_help_cuts,
    stderr,
    stdout,
    write_stdout,
)
from engine.cli.common.errors import (
    NOT_WRITABLE,
    disk_error,
    disk_remedy,
    error_text,
    grouped,
    lead,
    out_elsewhere,
    out_not_made,
)
from engine.cli.common.exits import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_IO_ERROR,
    EXIT_NO_MEMORY,
    EXIT_SOME_FAILED,
    INTERRUPTED,
    interrupted,
    stopped,
)
from engine.cli.common.limits import (
    library_not_mapped,
    limit_hit,
    memory_in_use,
    memory_limits,
    out_of_memory,
    out_of_memory_line,
    process_limit,
    requested_bytes,
    shared_memory_full,
    worker_died,
)
from engine.cli.common.options import (
    MAX_SCALE,
    SizeFormError,
    is_stdout,
    one_split,
    parse_scales,
    parse_size,
    refuse_plot_to_stdout,
    split_names,
    workers_option,
)

__all__ = [
    "ConsoleLogHandler",
    "EXIT_BAD_INPUT",
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_IO_ERROR",
    "EXIT_NO_MEMORY",
    "EXIT_SOME_FAILED",
    "INTERRUPTED",
    "LOGGED_PACKAGES",
    "MAX_SCALE",
    "NOT_WRITABLE",
    "SizeFormError",
    "broken_pipe",
    "disk_error",
    "disk_remedy",
    "error_text",
    "grouped",
    "interrupted",
    "is_stdout",
    "lead",
    "library_not_mapped",
    "limit_hit",
    "log_to_console",
    "memory_in_use",
    "memory_limits",
    "one_split",
    "out_elsewhere",
    "out_not_made",
    "out_of_memory",
    "out_of_memory_line",
    "parse_scales",
    "parse_size",
    "process_limit",
    "raise_broken_pipes",
    "refuse_plot_to_stdout",
    "requested_bytes",
    "rich_help_cuts",
    "shared_memory_full",
    "split_names",
    "stderr",
    "stdout",
    "stopped",
    "worker_died",
    "workers_option",
    "write_stdout",
]
