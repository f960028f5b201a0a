"""Rich progress bars with rate and ETA, shared by every long-running command.

Library code never prints; it takes a ``progress: bool`` and draws on stderr through these
helpers, so a caller (or a test) can switch them off.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

T = TypeVar("T")

# As engine.cli.common.stdout: what is printed (a class name, a path) is shown as typed
stderr_console = Console(stderr=True, markup=False, emoji=False)


class RateColumn(ProgressColumn):
    """Items per second (or seconds per item when slower than one per second)."""

    def __init__(self, unit: str = "it") -> None:
        super().__init__(table_column=_unwrapped())
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text(f"-- {self.unit}/s", style="progress.data.speed")
        if speed >= 1:
            return Text(f"{speed:.2f} {self.unit}/s", style="progress.data.speed")
        return Text(f"{1 / speed:.2f} s/{self.unit}", style="progress.data.speed")


def make_progress(unit: str = "img", extra: str | None = None, enabled: bool = True) -> Progress:
    """A Progress with description, bar, N/M, rate, elapsed and ETA; ``extra`` is a field template
    such as ``"{task.fields[loss]}"`` shown after the bar."""
    columns: list[ProgressColumn] = [
        SpinnerColumn(),
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
    return Progress(*columns, console=stderr_console, disable=not enabled, transient=False)


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
