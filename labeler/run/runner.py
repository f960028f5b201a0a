"""The labeling loop: plan the images, skip those done, decode in threads, label in batches with
a backend (a failed batch retried image by image), hand the outputs to the writers, and sum
the call up."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from annotations.fileio import (
    FUSE_RECORD,
    NAME_MAX,
    atomic_write_json,
    compact_manifest,
    file_bytes,
    split_key,
)
from annotations.labelrun import changed_images, done_keys, latest_records
from annotations.taxonomy import Taxonomy
from engine.datasets import Sample, SegDataset, load_image, load_spec
from engine.devices import env_int
from engine.progress import make_progress
from engine.runinfo import config_hash, environment, kept_warnings, warnings_entry
from engine.runlock import check_alone, holds_lock, others_writing
from engine.text import counted, few
from labeler.backends import BackendOutput, LabelBackend, LoadedImage, create_backend
from labeler.config import LabelConfig
from labeler.models import check_model_folder
from labeler.refine import with_refinement
from labeler.run.folder import (
    _changed_settings,
    _lock_name,
    _record_data_moved,
    _same_run,
    check_same_class,
    clear_outputs,
    resolved_shard,
    shard_lock,
)
from labeler.run.summary import LabelSummary, _failure
from labeler.run.writers import _Writers

log = logging.getLogger(__name__)


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
