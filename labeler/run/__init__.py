"""The resumable labeling run: list and shard images, skip those done, decode in threads, label in
batches with a backend, merge and write in writer threads (queue bounded in bytes and in count),
log every image in ``manifest.jsonl``. A failed batch is retried image by image: one bad image
fails alone.

Run directory (DESIGN.md section 3)::

    labels/<split>/<stem>.png       0 = not the class, 1 = the class, 255 = uncertain
    confidence/<split>/<stem>.png   uint8 0..255 (score x mask probability)
    instances/<split>/<stem>.json   boxes, scores, prompts, RLE masks (annotations.instances)
    run.json                        configuration, hash, taxonomy, models, environment
    manifest.jsonl                  one line per image and attempt, written after its files
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import re
import shutil
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import (
    FUSE_RECORD,
    NAME_MAX,
    append_line,
    atomic_write_json,
    compact_manifest,
    file_bytes,
    first_line,
    is_disk_error,
    split_key,
    type_and_first_line,
)
from annotations.instances import Instances
from annotations.labelmap import write_label
from annotations.labelrun import (
    RUN_FOLDERS,
    RunInfo,
    changed_images,
    done_keys,
    latest_records,
    output_paths,
    read_run_info,
)
from annotations.taxonomy import Taxonomy, class_key
from engine.datasets import Sample, SegDataset, load_image, load_spec
from engine.devices import env_int
from engine.progress import make_progress
from engine.runinfo import config_hash, environment, kept_warnings, warnings_entry
from engine.runlock import LOCK_NAME, check_alone, holds_lock, others_writing
from engine.text import counted, few
from labeler.backends import BackendOutput, LabelBackend, LoadedImage, create_backend
from labeler.config import LabelConfig, default_out_dir, shard_from_env
from labeler.crops import CroppedInstances, semantic_from_crops
from labeler.models import CannotLabel, check_model_folder
from labeler.refine import with_refinement

log = logging.getLogger(__name__)

STAGES = ("decode", "detect", "segment", "merge", "write")
_STOP = object()


@dataclass
class LabelSummary:
    """What a run did (this process's shard)."""

    out_dir: Path  # the run directory
    config_hash: str  # hash of the settings that change labels
    shard: tuple[int, int]  # (index, count) of this process
    images: int = 0  # images in this shard
    skipped: int = 0  # already done with the same configuration
    labelled: int = 0  # labelled now
    instances: int = 0  # instances found now
    without_instances: int = 0  # images labelled now with no instance
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (split, stem, error)
    not_retryable: int = 0  # of failed, images failing on every run (CannotLabel): no retry
    cannot: dict[str, int] = field(default_factory=dict)  # of those, by kind (CannotLabel.kind)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # stage -> seconds, summed
    wall_seconds: float = 0.0  # wall time of the whole run
    load_seconds: float = 0.0  # of which loading the models (before the first image)
    interrupted: bool = False  # stopped by Ctrl-C

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


def plan_items(cfg: LabelConfig) -> tuple[list[tuple[str, Sample]], Taxonomy]:
    """Every ``(split, sample)`` of the run in a fixed order, and the taxonomy with the new class."""
    spec = load_spec(cfg.data)
    spec.check_finished("engine label")  # engine synth writing it, or stopped half way
    splits = list(cfg.splits) or spec.require_splits()
    items = [(s, smp) for s in splits for smp in SegDataset(spec, s, require_labels=False).samples]
    for _, smp in items:  # instances/<split>/<stem>.json, the run's longest name of an image
        if len(os.fsencode(smp.stem + ".json")) > NAME_MAX:  # failed each run again, its label
            raise ValueError(  # and confidence maps written (File name too long)
                f"{smp.image_path}: its stem is {len(os.fsencode(smp.stem))} bytes, too long "
                f"for the label run's <stem>.json (a file name is at most {NAME_MAX} bytes): "
                f"rename the image to a stem of at most {NAME_MAX - 5} bytes"
            )
    try:
        taxonomy = spec.taxonomy.with_new_class(cfg.cls.name, parent=cfg.cls.parent)
    except ValueError as e:
        fused = (spec.root / FUSE_RECORD).is_file() and cfg.cls.name in spec.taxonomy
        hint = (  # a fused dataset holds the class already: its pseudo labels, fused
            "; it is a fused dataset (engine fuse), which holds the class's fused pseudo labels: "
            "label the dataset it was fused from (engine info "
            f"{cfg.data} names it)"
            if fused
            else ""
        )
        raise ValueError(f"dataset {cfg.data}: {e}{hint}") from None
    return items, taxonomy


def resolved_shard(cfg: LabelConfig) -> tuple[int, int]:
    """``(index, count)`` of the images this process labels: ``--shard``, else torchrun's
    environment, else all of them."""
    return cfg.shard or shard_from_env() or (0, 1)


def check_same_class(out: Path, cfg: LabelConfig) -> tuple[LabelConfig, str | None, dict | None]:
    """A folder holds one class's label run: labeling another class into it (a changed
    threshold re-labels, but a changed class is another run) is a ``ValueError`` naming the
    class it holds, unless ``cfg.force``. Fused datasets, subsets picked from the run and its
    review all read these labels as that class. An unreadable ``run.json`` is a ``ValueError``
    naming it, unless ``cfg.force``: the run's class and settings are unknown, so none of its
    images may count as done (with ``force`` every image is labelled again and the record
    rewritten).

    Returns ``cfg`` with the class spelled as the run records it (``--class bicycle`` on a
    Bicycle run is the same class, so the same settings and hash, not a reason to label every
    image again), its model folders too unless ``--force`` (:meth:`LabelConfig.spelled_as`: a
    run from before they were normalised), the other class whose run this ``--force`` run
    replaces, or None, and the ``run.json`` read (None: none, or unreadable). Its
    files go in every split (:func:`clear_outputs`), not only in the splits labelled now: a
    folder holds one class, and labels of the other class left in it would be read as this
    one. A sharded run cannot replace one: each shard would clear what the others wrote."""
    try:
        info = recorded_run(out)
    except ValueError as e:
        if not cfg.force:
            raise ValueError(
                f"{e}; the run's class and settings are unknown, so none of its images can "
                "count as done: give --force to label every image again (and rewrite run.json), "
                "or another --out"
            ) from None
        log.warning("%s; --force: every image is labelled again", e)
        return cfg, None, None
    if info is None:
        return cfg, None, None
    held = info.class_name
    if class_key(held) == class_key(cfg.cls.name):
        same = (
            cfg
            if held == cfg.cls.name
            else dataclasses.replace(cfg, cls=dataclasses.replace(cfg.cls, name=held))
        )
        recorded = info.record.get("config")
        if not cfg.force and isinstance(recorded, dict):
            same = same.spelled_as(recorded)
        return same, None, info.record
    if not cfg.force:
        default = default_out_dir(cfg.cls.name)
        other = f" (by default {default})" if default.absolute() != out.absolute() else ""
        raise ValueError(
            f"{out}: a label run of {held}; labeling {cfg.cls.name} here would replace its "
            f"labels (read as {held} by what was made from them): give another --out{other}, "
            "or --force to replace the run"
        )
    if resolved_shard(cfg)[1] > 1:
        raise ValueError(
            f"{out}: a label run of {held}; --force replaces it with {cfg.cls.name}, which a "
            "sharded run cannot do (each shard would clear the folder): run once without "
            "--shard, or give another --out"
        )
    return cfg, held, info.record


def recorded_run(out: Path) -> RunInfo | None:
    """The label run in ``out`` (its ``run.json``), or None when there is none; a
    ``ValueError`` naming the file when it cannot be read."""
    path = out / "run.json"
    if not path.is_file():
        return None
    try:
        return read_run_info(path)
    except (OSError, ValueError) as e:
        raise ValueError(first_line(e)) from None


def clear_outputs(out: Path) -> int:
    """Remove a replaced run's labels, confidence maps, instances and manifest (every split);
    returns how many label maps there were."""
    images = sum(1 for _ in (out / "labels").glob("*/*.png"))
    for sub in RUN_FOLDERS:
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
    (out / "manifest.jsonl").unlink(missing_ok=True)
    return images


def _changed_settings(recorded: dict | None, cfg: LabelConfig) -> str:
    """What differs between the settings ``recorded`` (the run's ``run.json``, as read; None:
    none, or unreadable) and ``cfg``'s, as ``"box_threshold 0.35 -> 0.4"`` phrases (nested
    settings dotted: ``cls.prompts``); the backend's identity (models, revisions, autocast)
    when the settings are the same."""
    before = recorded.get("config") if isinstance(recorded, dict) else None
    if not isinstance(before, dict):
        return "settings unknown"
    now = json.loads(json.dumps(cfg.to_dict()))  # tuples as lists, as run.json holds them

    def changes(a: dict, b: dict, prefix: str = "") -> list[str]:
        out_ = []
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            if isinstance(x, dict) and isinstance(y, dict):
                out_ += changes(x, y, f"{prefix}{key}.")
            elif x != y:  # an unset text option ("") reads "none"
                out_.append(
                    f"{prefix}{key} {'none' if x == '' else x} -> {'none' if y == '' else y}"
                )
        return out_

    ignored = {"out", "force", "progress", "batch_size", "workers", "writers", "writer_queue_mb"}
    ignored |= {"shard", "device", "data", "splits", "local_files_only"}  # none changes a label
    found = changes({k: v for k, v in before.items() if k not in ignored},
                    {k: v for k, v in now.items() if k not in ignored})  # fmt: skip
    return ", ".join(found[:4]) + (", ..." if len(found) > 4 else "") or "backend or models"


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


def _decode(
    split: str, sample: Sample, prepare=None
) -> tuple[str, str, LoadedImage | None, tuple[str, bool] | None, float]:
    """Decode (and let the backend pre-process) one image in a loader thread."""
    t = time.perf_counter()
    try:
        img = LoadedImage(split, sample.stem, sample.image_path, load_image(sample.image_path))
        if prepare is not None:
            prepare(img)
        return split, sample.stem, img, None, time.perf_counter() - t
    except Exception as e:  # noqa: BLE001 - any decode failure is recorded, not fatal
        return split, sample.stem, None, _failure(e, typed=False), time.perf_counter() - t


def _failure(e: BaseException, typed: bool = True) -> tuple[str, str | None]:
    """``(message, cannot)`` of one image's failure, told where it is caught: a
    :class:`CannotLabel` (an image too thin for a model's resize, one larger than the pad size
    of a segmenter that does not resize) fails on every run (``cannot``: its kind; not retried)
    and reads as its own one line wherever it is raised (the detector's refusal in a loader
    thread, the segmenter's in the batch); any other error is retried (``cannot`` None), its
    message after its type name when ``typed`` (decode errors name the file). Before, the
    closing lines told them apart by the words "too thin to label" in the message, which a path
    could hold or a line break in the path cut off."""
    if isinstance(e, CannotLabel):
        return first_line(e), e.kind
    return (type_and_first_line(e) if typed else first_line(e)), None


def _lock_name(cfg: LabelConfig) -> str:
    """The run folder's lock: one per shard (shards of one run label one folder together)."""
    index, count = resolved_shard(cfg)
    return LOCK_NAME if count == 1 else shard_lock(f"{index}/{count}")


def shard_lock(shard: str) -> str:
    """The lock file of the run's shard ``shard`` (``"0/2"``, as ``--shard`` takes it), which
    ``engine info`` asks to tell a running shard's images from the others'."""
    index, count = shard.split("/")
    return f"{LOCK_NAME}-shard{index}of{count}"


def _record_data_moved(out: Path, cfg: LabelConfig, meta: dict) -> None:
    """A rerun with nothing left to label, given the dataset at another path (moved or copied
    since): ``run.json`` (``meta``, as read) is told where it is now, as a run that labels
    writes it (fuse, review and info read the dataset from there); its models' record stays,
    as no model loads. A run.json from before ``data_resolved`` was recorded is kept while its
    ``config.data`` names the same folder: rewritten, its hash changed and the next fuse fused
    every image again."""
    path = out / "run.json"
    resolved = str(Path(cfg.data).resolve())
    config = meta.get("config") if isinstance(meta.get("config"), dict) else None
    if config is None:
        return
    before = meta["data_resolved"] if "data_resolved" in meta else _resolved(config.get("data"))
    if before == resolved:  # resolved only when not recorded (a filesystem call)
        return
    log.info("%s: the dataset is now %s (was %s)", path, resolved, meta.get("data_resolved"))
    # a relative path as typed would start from this call's folder, not from the environment's
    # cwd (the labelling call's, which the record keeps): written resolved then
    data = cfg.data if Path(cfg.data).is_absolute() else resolved
    atomic_write_json(path, {**meta, "config": {**config, "data": data}, "data_resolved": resolved})


def _resolved(path: Any) -> str | None:
    """``path`` (a recorded ``config.data``) resolved, None when it is no path."""
    return str(Path(path).resolve()) if isinstance(path, str) and path else None


def _same_run(recorded: dict | None, chash: str) -> dict | None:
    """The run.json a call writes over (``recorded``) when the labels its calls made are still
    this run's (the same settings' hash; not after ``--force``, which leaves none), for their
    warnings to be kept beside this call's (:func:`engine.runinfo.warnings_entry`)."""
    return recorded if recorded is not None and recorded.get("config_hash") == chash else None


@holds_lock("engine label", lambda c: c.out_dir, _lock_name, own=("run.json",))
def run_labeling(cfg: LabelConfig, backend: LabelBackend | None = None) -> LabelSummary:
    """Label every image of the configured splits that is not already done; see the module doc.
    The warnings said before the labelling starts (the hub not reached, images labelled again,
    a prompt without a Latin letter, a run replaced) are kept in ``run.json``'s ``warnings``."""
    count = resolved_shard(cfg)[1]
    # the run's other shards label it beside this one (its own lock is this one's); any other
    # engine label would label the same images (a run without --shard, a shard of another count)
    shards = tuple(shard_lock(f"{i}/{count}") for i in range(count)) if count > 1 else ()
    check_alone(cfg.out_dir, _lock_name(cfg), shards)
    with kept_warnings() as said:
        return _run_labeling(cfg, backend, said)


# the model settings each backend of this package loads (--refine: any backend's; sam3 checks
# its --model as typed itself, with its gated-weights help)
MODELS_READ = {"grounded-sam": ("detector", "segmenter")}


def check_model_folders(cfg: LabelConfig) -> None:
    """A model folder the backend loads, typed as a path and not there, named as engine label
    names it (``looked in the local path ...``) before anything is read: a library caller's
    ``detector="./models/gdino"``, recorded as ``models/gdino``, was asked of the hub."""
    for key in (*MODELS_READ.get(cfg.backend, ()), "refine"):
        if getattr(cfg, key):
            check_model_folder("segmenter" if key == "refine" else key, cfg.typed(key), f"--{key}")


def _run_labeling(cfg: LabelConfig, backend: LabelBackend | None, said: list[str]) -> LabelSummary:
    t_start = time.perf_counter()
    check_model_folders(cfg)
    shard = resolved_shard(cfg)
    if cfg.device == "auto" and shard[1] > 1 and "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():
            local = env_int("LOCAL_RANK", 0)
            cfg = dataclasses.replace(cfg, device=f"cuda:{local}")
    cfg, replaced, recorded = check_same_class(cfg.out_dir, cfg)
    items, taxonomy = plan_items(cfg)
    class_id = taxonomy.id_of(cfg.cls.name)
    if backend is None:
        backend = create_backend(cfg.backend, cfg, class_id)
    backend = with_refinement(backend, cfg)  # --refine: crop-zoom re-segmentation (labeler.refine)
    chash = config_hash(
        {
            "labels": cfg.result_fields(),
            "backend": backend.identity(),
            "taxonomy": taxonomy.to_dict(),
        }
    )
    out = cfg.out_dir
    summary = LabelSummary(out_dir=out, config_hash=chash, shard=shard)
    items = items[shard[0] :: shard[1]]
    summary.images = len(items)
    if not others_writing(out, _lock_name(cfg)):  # no other shard appends to the manifest now
        compact_manifest(out / "manifest.jsonl")
    latest = latest_records(out)
    sizes = {(s, smp.stem): file_bytes(smp.image_path) for s, smp in items}
    done = set() if cfg.force else done_keys(out, chash, latest)
    changed = changed_images(latest, done, sizes)
    done -= changed
    todo = [(s, smp) for s, smp in items if (s, smp.stem) not in done]
    summary.skipped = len(items) - len(todo)
    other = sum(
        1
        for s, smp in todo
        if (rec := latest.get((s, smp.stem))) is not None
        and rec.get("status") == "ok"
        and rec.get("config_hash") != chash
    )
    if other and not cfg.force:  # documented, but hours of GPU work should not go unannounced
        log.warning(
            "%s: %s labelled with other settings (%s) will be labelled again; give another "
            "--out to keep them",
            out,
            counted(other, "image"),
            _changed_settings(recorded, cfg),
        )
    if changed:  # new photos under the old names: their labels are of the old ones
        log.warning(
            "%s: %s changed since labelled (%s: another file size) will be labelled again",
            out,
            counted(len(changed), "image"),
            few([f"{s}/{t}" for s, t in sorted(changed, key=lambda k: (split_key(k[0]), k[1]))]),
        )
    if not todo and (out / "run.json").is_file():
        if recorded is not None:  # else unreadable, and --force: nothing known to update
            _record_data_moved(out, cfg, recorded)
        summary.wall_seconds = time.perf_counter() - t_start
        return summary
    if not todo:  # a run.json deleted after the last image: the models load to record them
        log.warning("%s: run.json is missing; written again (every image is done)", out)

    foreign = [p for p in cfg.cls.all_prompts if not re.search("[a-z]", p.lower())]
    if foreign and cfg.backend != "simulated":  # which reads no prompt
        log.warning(  # the default prompt is the class name: '自行车' went to the detector
            "%s: %s %s no Latin letter: Grounding DINO's and SAM 3's text encoders were "
            "trained on English phrases and find little with it; give English prompts "
            "(--prompt bicycle: the class keeps its name %r)",
            out,
            "prompt" if len(foreign) == 1 else "prompts",
            ", ".join(map(repr, foreign)) + (" has" if len(foreign) == 1 else " have"),
            cfg.cls.name,
        )
    lo, hi = cfg.uncertain
    if lo <= 0 < hi:  # documented, but an image without instances comes out all ignored
        log.warning(
            "%s: --uncertain %s,%s starts at 0: every pixel away from all masks (confidence 0) "
            "becomes 255 (ignored), and an image without instances all 255; give a band above "
            "0 (the default 0.15,0.25) unless that is meant",
            out,
            f"{lo:g}",
            f"{hi:g}",
        )
    t_load = time.perf_counter()
    models = backend.load()
    summary.load_seconds = time.perf_counter() - t_load
    if replaced is not None:  # only now: a model that fails to load leaves the old run whole
        log.warning(
            "%s: the label run of %s is replaced by one of %s (--force): its %s are removed "
            "in every split",
            out,
            replaced,
            cfg.cls.name,
            counted(clear_outputs(out), "label map"),
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "run.json",
        {
            "config": cfg.to_dict(),
            "config_hash": chash,
            "data_resolved": str(Path(cfg.data).resolve()),  # readable from another folder
            "backend": {"name": backend.name, "identity": backend.identity(), "models": models},
            "class_id": class_id,
            "taxonomy": taxonomy.to_dict(),
            # torch's facts where the labeler computed with torch, not where torch happened to be
            # imported (the simulated labeler's run.json from a notebook or the demo had them)
            "environment": environment(torch_used=getattr(backend, "uses_torch", True)),
            # what this call printed before labelling: the console of a nohup run is gone;
            # and what the calls before it printed, whose labels of these settings are kept
            **warnings_entry(said, _same_run(None if cfg.force else recorded, chash)),
        },
    )
    header = {
        "class_name": cfg.cls.name,
        "class_id": class_id,
        "backend": backend.name,
        "config_hash": chash,
    }

    progress = make_progress(
        "img", "{task.fields[inst]} inst, {task.fields[fail]} failed", cfg.progress
    )
    task = progress.add_task(f"label {cfg.cls.name}", total=len(todo), inst=0, fail=0)
    counts = {"inst": 0, "fail": 0}

    def on_done(n: int, failed: bool) -> None:
        counts["inst"] += n
        counts["fail"] += failed
        progress.update(task, advance=1, **counts)

    writer = _Writers(cfg, out, chash, summary, header, on_done, sizes)
    pool = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="label-decode")
    pending: deque[Future] = deque()
    source = iter(todo)
    prepare = getattr(backend, "prepare", None)
    window = 2 * cfg.batch_size + cfg.workers

    def refill() -> None:
        while len(pending) < window:
            nxt = next(source, None)
            if nxt is None:
                return
            pending.append(pool.submit(_decode, *nxt, prepare))

    def label_checked(batch: list[tuple[LoadedImage, float]]) -> list[BackendOutput]:
        results = backend.label([b[0] for b in batch])
        if len(results) != len(batch):
            raise RuntimeError(
                f"backend {backend.name} returned {counted(len(results), 'result')} "
                f"for {counted(len(batch), 'image')}"
            )
        for (img, _), res in zip(batch, results, strict=True):
            got, want = res.instances.image_size, img.image.shape[:2]
            if tuple(got) != tuple(want):
                raise ValueError(
                    f"{img.path}: output is {got[1]}x{got[0]} but the image is {want[1]}x{want[0]}"
                )
            inst = res.instances  # the instances file cannot hold NaN: say which value it was
            for name in ("xyxy", "scores", "mask_scores"):
                values = np.asarray(getattr(inst, name))
                bad = np.flatnonzero(~np.isfinite(values).all(axis=tuple(range(1, values.ndim))))
                if len(bad):
                    raise ValueError(
                        f"{img.path}: backend {backend.name} gave instance {int(bad[0])} of "
                        f"{len(inst)} a non-finite value in {name} ({values[bad[0]]})"
                    )
        return results

    def run_batch(batch: list[tuple[LoadedImage, float]]) -> None:
        try:
            results = label_checked(batch)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - retried image by image below
            if len(batch) == 1:
                img, dt = batch[0]
                writer.put((img.split, img.stem, None, _failure(e), {"decode": dt}))
                return
            # One bad image (an unreadable truth file, a model error on it) must not fail its
            # batch mates: retry alone, so only the images that fail on their own are recorded.
            for one in batch:
                run_batch([one])
            return
        for (img, dt), res in zip(batch, results, strict=True):
            writer.put((img.split, img.stem, res, None, {"decode": dt}))

    decode_wait = 0.0  # seconds the labeling thread waited for a decoded image
    writer.start()
    try:
        with progress:
            refill()
            batch: list[tuple[LoadedImage, float]] = []
            while pending:
                t0 = time.perf_counter()
                split, stem, img, error, dt = pending.popleft().result()
                decode_wait += time.perf_counter() - t0
                refill()
                if img is None:
                    writer.put((split, stem, None, error, {"decode": dt}))
                    continue
                batch.append((img, dt))
                if len(batch) == cfg.batch_size:
                    run_batch(batch)
                    batch = []
            if batch:
                run_batch(batch)
            writer.close()  # here too: the bar counts the last images written
    except KeyboardInterrupt:
        summary.interrupted = True
        for f in pending:
            f.cancel()  # the writers finish what is already computed (below), then stop
    finally:
        try:
            pool.shutdown(cancel_futures=True)  # and waits: no decoding outlives the call
        finally:  # a second Ctrl-C during that wait still closes the writers
            # however the loop ended: the writers finish what is queued and stop before the
            # call returns or raises (before, an error left them waiting, one pair per failed
            # call, and still writing into the folder whose lock the call had let go)
            writer.close()
    if writer.error is not None and not summary.interrupted:
        writer.raise_error()
    # where the thread that drives the models stood idle: it is the run's pace-setter, so these
    # say whether decoding (--workers) or writing (--writers) held it back
    summary.stage_seconds["wait for decode"] = decode_wait
    summary.stage_seconds["wait for writers"] = writer.waited
    summary.wall_seconds = time.perf_counter() - t_start
    return summary
