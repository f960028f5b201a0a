"""One image fused (:func:`fuse_job`, in this process or in a worker's, set up by
:func:`_init_worker`): its inputs read and checked against its image's size, fused by the rules,
its label and source maps written; and its input files' stamps and content hashes (what makes it
done) and output paths.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import UNREADABLE, first_line
from annotations.labelmap import read_label, write_label
from engine.datasets import SOURCE_PRECISE, image_size, read_source_map, size_mismatch
from engine.fusion.pseudo import read_pseudo
from engine.fusion.rules import PseudoLabel, fuse_image
from engine.fusion.run.config import FusePlan, Job
from engine.fusion.run.corrections import mask_size
from engine.runinfo import file_sha256

_PLAN: FusePlan | None = None
_OUT: Path | None = None


def _init_worker(plan: FusePlan, out: Path) -> None:
    global _PLAN, _OUT
    _PLAN, _OUT = plan, out


def input_paths(plan: FusePlan, job: Job) -> list[Path]:
    """One image's input files: its precise label (and source map), corrected masks, and each
    run's pseudo label, confidence map and, with coverage on, instances file."""
    paths = [job.precise_path] + ([job.source_path] if job.source_path else [])
    paths += [mask for _, mask in job.corrections]  # none without --corrections: as before
    for run in plan.runs:
        paths += [run.label_path(job.split, job.stem), run.confidence_path(job.split, job.stem)]
        if plan.rules.min_coverage is not None:
            paths.append(run.instances_path(job.split, job.stem))
    return paths


def input_content(plan: FusePlan, job: Job) -> str:
    """A short hash of the bytes of one image's input files: the same files copied (``cp -r``,
    a download, which give them new modification times) are the same inputs."""
    h = hashlib.sha256()
    for p in input_paths(plan, job):
        try:
            h.update(file_sha256(p).encode())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()[:16]


def input_stamp(plan: FusePlan, job: Job) -> str:
    """A short hash of the sizes and modification times of one image's input files (not their
    paths: the same files reached by another path are the same inputs), and of the bytes of
    its corrected masks: edited by hand, one edited to the same size with its time restored
    (``cp -p``, ``rsync -t``, ``touch -r``) was skipped before the fiftieth round, while fuse
    said it was "fused as it is now". A mask's digest costs about 2 ms (a 4K mask of 67 KB),
    beside the decode of every mask that :func:`check_corrections` does on each call."""
    parts = []
    masks = {mask for _, mask in job.corrections}
    for p in input_paths(plan, job):
        try:
            if p in masks:
                parts.append(file_sha256(p))
                continue
            st = p.stat()
            parts.append(f"{st.st_size}|{st.st_mtime_ns}")
        except OSError:
            parts.append("missing")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def output_paths(out: Path, split: str, stem: str) -> tuple[Path, Path]:
    """``(fused label, source map)`` paths of one image under a fusion output directory."""
    return out / "labels" / split / f"{stem}.png", out / "sources" / split / f"{stem}.png"


def fuse_job(job: Job) -> dict[str, Any]:
    """Fuse one image and write its outputs; returns its manifest record (``"status": "failed"``
    with the problem when an input cannot be read: nothing is written for it)."""
    plan, out = _PLAN, _OUT
    if plan is None or out is None:
        raise RuntimeError("fuse_job called before _init_worker")
    t0 = time.perf_counter()
    record = {"split": job.split, "stem": job.stem, "status": "ok"}
    stamps = {
        "config_hash": plan.config_hash,
        "inputs": input_stamp(plan, job),
        "content": input_content(plan, job),
    }
    try:
        precise, pseudos, carried = _read_inputs(plan, job)
    except UNREADABLE as e:  # a bad or vanished file, named in the message
        return {**record, "status": "failed", "error": first_line(e), **stamps}
    fused = fuse_image(precise, pseudos, plan.rules, num_precise=plan.spec.taxonomy.num_classes)
    source = fused.source
    if carried is not None:  # pixels fusion left as they were keep the input's source
        kept = source == SOURCE_PRECISE
        if fused.corrected is not None:  # a human-checked pixel of the class is precise
            kept &= ~fused.corrected
        np.copyto(source, carried, where=kept)  # a fresh map: in place
    label_path, source_path = output_paths(out, job.split, job.stem)
    write_label(label_path, fused.label)
    write_label(source_path, source)
    return {
        **record,
        **stamps,
        "classes": {
            plan.taxonomy[c].name: s.counts(bool(plan.corrections)) for c, s in fused.stats.items()
        },
        "seconds": round(time.perf_counter() - t0, 4),
    }


def _read_inputs(plan: FusePlan, job: Job) -> tuple[Any, list[PseudoLabel], Any]:
    """One image's precise label, its pseudo labels, checked against the image's size, and the
    input's source map when the input is a fused dataset (else None)."""
    precise = read_label(job.precise_path, plan.spec.taxonomy)
    w, h = image_size(job.image_path)
    if precise.shape != (h, w):
        raise ValueError(size_mismatch(job.precise_path, precise.shape, job.image_path, (w, h)))
    with_instances = plan.rules.min_coverage is not None
    corrected = {}
    for class_id, mask_path in job.corrections:
        mask = read_label(mask_path)
        if mask.shape != precise.shape:
            raise ValueError(mask_size(mask_path, mask.shape, job.image_path, w, h))
        corrected[class_id] = mask
    pseudos = []
    for run, class_id in zip(plan.runs, plan.new_ids, strict=True):
        label, conf, inst = read_pseudo(
            run, job.split, job.stem, precise.shape, with_instances, str(job.precise_path)
        )
        pseudos.append(PseudoLabel(class_id, label, conf, inst, corrected.get(class_id)))
    carried = None if job.source_path is None else read_source_map(job.source_path, precise.shape)
    return precise, pseudos, carried
