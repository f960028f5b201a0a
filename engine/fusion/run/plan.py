"""The plan of a fusion run (:func:`plan_fusion`): every input opened and checked, every image's
job listed and the settings hashed, before the first write; and the default output folder
(:func:`default_out_dir`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from annotations.fileio import FUSE_RECORD, check_windows_name
from annotations.taxonomy import Taxonomy
from engine.datasets import DatasetSpec, SegDataset, load_spec, source_dir
from engine.fusion.pseudo import PseudoRun, open_pseudo_run
from engine.fusion.run.classes import _resolve_rules, _resolve_taxonomy, new_class_names
from engine.fusion.run.config import FUSE_FORMAT, FuseConfig, FusePlan, Job
from engine.fusion.run.corrections import open_corrections, with_corrections
from engine.fusion.run.labelled import (
    _check_not_stopped_before,
    _check_stems,
    labelled_dataset,
    warn_other_dataset,
)
from engine.fusion.run.vouched import check_vouched
from engine.runinfo import config_hash
from engine.runlock import check_not_being_written


def default_out_dir(
    pseudo: Iterable[str | os.PathLike],
    base: str = "runs/fused",
    data: str | os.PathLike | None = None,
) -> Path:
    """``runs/fused/<class>[+<class>...]`` from the pseudo runs' class names (lower case; spaces
    and path separators as ``_``, so that ``Bike/Rack`` is one folder), after the new classes
    of ``data`` where it is a fused dataset: Car fused onto runs/fused/bicycle goes to
    ``runs/fused/bicycle+car``, the classes it holds (it went to ``runs/fused/car`` before)."""
    names = [open_pseudo_run(p).class_name for p in pseudo]
    root = Path(data) if data is not None else None
    root = root.parent if root is not None and root.is_file() else root  # a spec file
    if root is not None and (root / FUSE_RECORD).is_file():
        with contextlib.suppress(OSError, ValueError):  # unreadable: plan_fusion says why
            names = [
                c.name for c in Taxonomy.load(root / "taxonomy.json") if c.parent is not None
            ] + names
    out = Path(base) / "+".join(re.sub(r"[\s/\\]", "_", n.lower()) for n in names)
    return check_windows_name(out, f"the classes {', '.join(names)}")


def plan_fusion(config: FuseConfig) -> FusePlan:
    """Open and check every input; raises ``ValueError`` / ``FileNotFoundError`` naming files."""
    spec = load_spec(config.data)
    spec.check_finished("engine fuse")  # engine synth (or fuse) writing it, or stopped half way
    if not config.pseudo:
        raise ValueError("no pseudo-label run given (--pseudo RUN_DIR, once per new class)")
    runs = [open_pseudo_run(p) for p in config.pseudo]
    for run in runs:  # labelled so far, it would pass for the run (the splits it has, too)
        check_not_being_written(run.path, "engine fuse", "its pseudo labels")
    out = config.out.resolve()
    for p in [spec.root, *[r.path for r in runs]]:
        if out == p.resolve():
            raise ValueError(f"{config.out}: the output directory must not be an input ({p})")
    warn_other_dataset(config.data, spec, runs)
    n = spec.taxonomy.num_classes
    taxonomy = _resolve_taxonomy(spec, runs, config.data)
    rules = _resolve_rules(config, taxonomy, runs, n)
    if config.splits is not None:
        splits = list(config.splits)
    else:
        have = spec.require_splits()
        splits = [s for s in have if all(r.has_split(s) for r in runs)]
        _check_not_stopped_before(runs, spec, config.data, have, splits)
        if not splits:
            raise ValueError(
                f"{config.data}: no split of the dataset ({', '.join(have)}) has pseudo "
                f"labels in every run ({', '.join(str(r.path / 'labels') for r in runs)})"
            )
    spec.require_labels("fusion")  # the precise labels are what the pseudo labels fuse into
    jobs: list[Job] = []
    for split in splits:
        dataset = SegDataset(spec, split)
        for run in runs:
            _check_stems(run, dataset, labelled_dataset(config.data, spec, run))
        sources = _carried_sources(spec, split, config.data)
        jobs += [
            Job(split, s.stem, s.label_path, s.image_path, sources and sources / f"{s.stem}.png")
            for s in dataset.samples
        ]
    corrections = open_corrections(config, spec, taxonomy, runs, splits)
    jobs = with_corrections(jobs, corrections, taxonomy)
    unvouched = check_vouched(runs, jobs)
    plan = FusePlan(spec, tuple(runs), taxonomy, rules, tuple(splits), tuple(jobs), "")
    hashed = {
        "format": FUSE_FORMAT,
        "rules": plan.settings(),
        "taxonomy": taxonomy.to_dict(),
        "runs": [run_identity(r) for r in runs],
    }
    if corrections:  # hashed as before corrections existed when there are none
        # what a subset decides (its class, split and images), not subset.json's bytes, which
        # hold the import's time: the same masks imported again refuse only their own images
        # (their masks' times are in each one's input stamp), not every image of the dataset
        hashed["corrections"] = [
            {"class": c.class_name, "split": c.split, "images": list(c.stems)} for c in corrections
        ]
    if rules.min_coverage and not rules.parent_constraint:
        # before the fifty-fifth round coverage was measured on every pixel the class may claim,
        # all but 255 with the constraint off, and dropped nothing: fused again, not kept (a
        # --min-coverage of 0 drops nothing either way: kept)
        hashed["coverage_of"] = "parents"
    digest = config_hash(hashed)
    legacy = config_hash({**hashed, "runs": [r.run_json_sha256 for r in runs]})
    return FusePlan(
        spec,
        tuple(runs),
        taxonomy,
        rules,
        tuple(splits),
        tuple(jobs),
        digest,
        unvouched,
        tuple(corrections),
        legacy,
    )


def run_identity(run: PseudoRun) -> Any:
    """What of a label run decides its pseudo labels, for the fusion's hash: the run's own
    settings hash (which covers every setting that changes labels and no path), its class and
    id. Not run.json's bytes: ``engine label`` rewrites run.json when it labels an image again
    (a photo replaced) or is given its dataset at a new path (a project moved or copied), and
    every image of a fused dataset was then fused again; the pseudo labels it rewrites are in
    their images' input stamps. A run.json without a settings hash counts by its bytes."""
    if run.config_hash is None:
        return run.run_json_sha256
    return {"config_hash": run.config_hash, "class": run.class_name, "id": run.run_class_id}


def _carried_sources(spec: DatasetSpec, split: str, data: Path) -> Path | None:
    """The source-map folder of ``split`` when the dataset is itself a fused one (a new class
    fused onto Bicycle's fused dataset): fusion keeps its pseudo and ignored pixels as such in
    the new source maps, else Bicycle's pseudo pixels would train as precise ones. None for a
    dataset without new classes."""
    new = new_class_names(spec.taxonomy)
    if not new:
        return None
    folder = source_dir(spec, split)
    if not folder.is_dir():
        raise ValueError(
            f"{folder}: {data} holds new classes ({', '.join(new)}) but no source maps for "
            f"split {split!r}, so their pseudo pixels would be fused as precise ones; fuse "
            "every new class from the source dataset instead (--pseudo once per class)"
        )
    return folder
