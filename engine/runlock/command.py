"""The decorator that runs a command holding its output folder (:func:`holds_lock`): the folder's
checks, its lock and the record set aside, in that order.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from engine.runlock.holders import LOCK_NAME
from engine.runlock.lock import exclusive
from engine.runlock.output_folders import check_output_folder
from engine.runlock.records import record_set_aside, set_aside_as

T = TypeVar("T")


def holds_lock(
    command: str,
    folder: Callable[[Any], Any],
    name: Callable[[Any], str] | None = None,
    *,
    own: tuple[str, ...],
    begun: tuple[str, ...] = (),
    aside: str | None = None,
):
    """Decorator: ``fn(cfg, ...)`` runs holding :func:`exclusive` on ``folder(cfg)`` (lock file
    ``name(cfg)``, default :data:`LOCK_NAME`), once :func:`check_output_folder` has passed it
    (``own``: the records the command writes there, given as there, and to :func:`exclusive`).
    ``begun``: what the command writes before its record (a report's ``chart.png``), to
    :func:`exclusive` only (a run killed among them is its own), as ``engine review`` gives
    ``thumbs``: not to :func:`check_output_folder`, where a file of that name (a user's figure
    in a dataset's root) let the folder pass as the command's own. ``aside``: a record set
    aside while the command runs (:func:`record_set_aside`: a demo's summary); set aside, it is
    one of ``own`` (a rerun stopped with it aside is the command's own folder)."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def run(cfg: Any, *args: Any, **kwargs: Any) -> T:
            # the record set aside marks the folder as the command's own too: a demo rerun
            # stopped in its synth stage (no summary, data/synth.partial.json) was refused as
            # a folder holding other engine outputs (its fused/, train/), not resumable there
            ours = (*own, set_aside_as(aside)) if aside else own
            check_output_folder(folder(cfg), ours, command)
            lock = LOCK_NAME if name is None else name(cfg)
            with (
                exclusive(folder(cfg), command, lock, ours + begun),
                record_set_aside(folder(cfg), aside) if aside else contextlib.nullcontext(),
            ):
                return fn(cfg, *args, **kwargs)

        return run

    return wrap
