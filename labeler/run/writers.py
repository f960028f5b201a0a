"""The writer threads of a label run: the queue between the labeling thread and them, bounded in
bytes and in count, and each image's outputs merged, written and logged in ``manifest.jsonl``."""

from __future__ import annotations

import errno
import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import append_line, atomic_write_json, is_disk_error
from annotations.instances import Instances
from annotations.labelmap import write_label
from annotations.labelrun import output_paths
from labeler.backends import BackendOutput
from labeler.config import LabelConfig
from labeler.crops import CroppedInstances, semantic_from_crops
from labeler.run.summary import LabelSummary, _failure

_STOP = object()


QUEUED_PER_WRITER = 16  # outputs waiting per writer thread, at most (beside the byte bound)


class ByteQueue:
    """A FIFO bounded by the bytes of what waits in it (outputs of a 4K image vary from kB to
    hundreds of MB, so a count bound is no memory bound) and by a count (``max_items``): what
    waits is written before a stopped run exits, and on small images a byte bound alone let
    thousands wait (Ctrl-C took 30 s to stop). One item larger than the byte bound is still
    accepted when the queue is empty. ``close()`` lets getters drain it and stop."""

    def __init__(self, max_bytes: int, max_items: int | None = None) -> None:
        self.max_bytes, self.max_items = max_bytes, max_items
        self.items: deque[tuple[Any, int]] = deque()
        self.bytes = 0
        self.peak_bytes = 0  # most bytes ever waiting (tests and benchmarks read it)
        self.closed = False
        self.cond = threading.Condition()

    def put(self, item: Any, nbytes: int, timeout: float | None = None) -> bool:
        """Wait for room; False when ``timeout`` passed first."""
        with self.cond:
            ok = self.cond.wait_for(lambda: self._has_room(nbytes), timeout)
            if not ok:
                return False
            self.items.append((item, nbytes))
            self.bytes += nbytes
            self.peak_bytes = max(self.peak_bytes, self.bytes)
            self.cond.notify_all()
            return True

    def _has_room(self, nbytes: int) -> bool:
        if not self.items:
            return True
        if self.max_items is not None and len(self.items) >= self.max_items:
            return False
        return self.bytes + nbytes <= self.max_bytes

    def get(self) -> Any:
        """The next item, or ``_STOP`` once closed and empty."""
        with self.cond:
            self.cond.wait_for(lambda: self.items or self.closed)
            if not self.items:
                return _STOP
            item, nbytes = self.items.popleft()
            self.bytes -= nbytes
            self.cond.notify_all()
            return item

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def output_nbytes(result: BackendOutput | None) -> int:
    """Bytes of an output's masks and probabilities (what the writer queue is bounded by)."""
    if result is None:
        return 0
    inst = result.instances
    if isinstance(inst, CroppedInstances):
        return inst.nbytes
    return inst.masks.nbytes + (0 if result.probs is None else np.asarray(result.probs).nbytes)


def write_outputs(
    out: Path, split: str, stem: str, result: BackendOutput, uncertain: tuple[float, float],
    header: dict,
) -> tuple[CroppedInstances, float, float]:  # fmt: skip
    """Merge one output into its label and confidence and write the three files (atomically).
    Returns the instances and the merge and write seconds."""
    t0 = time.perf_counter()
    inst = result.instances
    if isinstance(inst, Instances):  # full-resolution backends (simulated): same outputs
        inst = CroppedInstances.from_instances(inst, result.probs)
    label, conf = semantic_from_crops(inst, uncertain)
    t1 = time.perf_counter()
    paths = output_paths(out, split, stem)
    write_label(paths["label"], label)
    write_label(paths["confidence"], conf)
    atomic_write_json(
        paths["instances"], inst.to_json(image=stem, split=split, **header), indent=None
    )
    return inst, t1 - t0, time.perf_counter() - t1


def _stops_the_run(error: BaseException | None) -> bool:
    """Whether writing an image's outputs failed for a reason every image after it shares: a
    full, read-only or size-limited disk (``DISK_ERRNOS``), or an output folder this user may
    not write (EACCES: a file the folder holds is replaced whatever its own permissions).
    Anything else (a name the file system refuses, a bug in the merge) is that image's alone."""
    return is_disk_error(error) or (isinstance(error, OSError) and error.errno == errno.EACCES)


class _Writers:
    """``n`` threads that merge and write outputs, then append the manifest line; the first
    error is kept for the caller (and stops further writing)."""

    def __init__(
        self,
        cfg: LabelConfig,
        out: Path,
        chash: str,
        summary: LabelSummary,
        header: dict,
        on_done,
        sizes: dict[tuple[str, str], int | None],
    ) -> None:
        self.cfg, self.out, self.chash, self.summary = cfg, out, chash, summary
        self.header, self.on_done = header, on_done
        self.sizes = sizes  # each image's file size, recorded: a resume sees it change
        self.queue = ByteQueue(cfg.writer_queue_mb * 2**20, QUEUED_PER_WRITER * cfg.writers)
        self.waited = 0.0  # seconds the labeling thread spent blocked on a full queue
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.run, name=f"label-writer-{k}", daemon=True)
            for k in range(cfg.writers)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def put(self, item: tuple) -> None:
        nbytes = output_nbytes(item[2])
        t0 = time.perf_counter()
        while True:
            if self.error is not None:
                self.raise_error()
            if self.queue.put(item, nbytes, timeout=0.2):
                self.waited += time.perf_counter() - t0
                return

    def raise_error(self) -> None:
        """Raise the writers' first error: a full or read-only disk as itself (the command
        line says so in one line), anything else wrapped, naming what failed. (An error in one
        image's merge or files is that image's failure, recorded in the manifest: only the
        disk and the manifest itself stop the writers.)"""
        error = self.error
        if _stops_the_run(error):
            raise error
        raise RuntimeError(f"writing outputs failed: {error}") from error

    def close(self) -> None:
        """Finish what is queued, then stop the threads."""
        self.queue.close()
        for t in self.threads:
            t.join()

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            if self.error is not None:
                continue  # drain without work after a failure
            try:
                self._handle(*item)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                self.error = e

    def _handle(
        self,
        split: str,
        stem: str,
        result: BackendOutput | None,
        error: tuple[str, str | None] | None,
        timings: dict,
    ) -> None:
        """Write one image's outputs and its manifest record; ``error`` is a failure's
        ``(message, cannot)`` (:func:`_failure`)."""
        s, rec = self.summary, {"split": split, "stem": stem}
        n = 0
        if result is not None:
            try:
                inst, t_merge, t_write = write_outputs(
                    self.out, split, stem, result, self.cfg.uncertain, self.header
                )
            except Exception as e:  # noqa: BLE001 - one image's merge or files: it alone fails
                if _stops_the_run(e):
                    raise  # but the disk fails every image after it: the run stops (raise_error)
                result, error = None, _failure(e)
        if result is not None:
            timings = {**timings, **result.timings, "merge": t_merge, "write": t_write}
            n = len(inst)
            h, w = inst.image_size
            rec.update(status="ok", error=None, instances=n, height=h, width=w)
            if (nbytes := self.sizes.get((split, stem))) is not None:
                rec["image_bytes"] = nbytes
        else:
            why, cannot = error or ("unknown error", None)
            # retry false: running again fails it again (older manifests lack it: retried);
            # cannot: why (CannotLabel.kind; before the fifty-fourth round, too thin alone)
            rec.update(status="failed", error=why, retry=cannot is None, instances=0)
            if cannot is not None:
                rec["cannot"] = cannot
        rec.update(
            timings={k: round(v, 4) for k, v in timings.items()},
            config_hash=self.chash,
            shard=f"{s.shard[0]}/{s.shard[1]}",
        )
        with self.lock:
            append_line(self.out / "manifest.jsonl", json.dumps(rec))  # only after the files
            for k, v in timings.items():
                s.stage_seconds[k] = s.stage_seconds.get(k, 0.0) + v
            if result is None:
                s.failed.append((split, stem, why))
                if cannot is not None:
                    s.not_retryable += 1
                    s.cannot[cannot] = s.cannot.get(cannot, 0) + 1
            else:
                s.labelled += 1
                s.instances += n
                s.without_instances += n == 0
            self.on_done(n, result is None)
