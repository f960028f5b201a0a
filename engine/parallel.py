"""Process pools that are safe to start from a process that already runs threads.

The default ``fork`` start method copies a process whose other threads (OpenCV's and torch's
thread pools, the labeler's loader threads, a test runner's) may hold locks at that instant; the
child then waits forever on a lock nobody will release. ``spawn`` starts clean interpreters, at
the cost of importing the worker module once per process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def process_pool(
    workers: int,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` spawned (not forked) processes."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=initializer,
        initargs=initargs,
    )
