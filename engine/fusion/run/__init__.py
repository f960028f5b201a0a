"""The fusion run: a dataset + pseudo-label runs -> a fused dataset directory.

::

    OUT/labels/<split>/<stem>.png    fused label map (precise ids 0..6, new ids 7.., 255 ignore)
    OUT/sources/<split>/<stem>.png   0 precise, 1 pseudo label, 2 set to ignore by fusion
    OUT/taxonomy.json                the dataset's classes plus the new ones (ids, parents)
    OUT/dataset.yaml                 makes OUT a dataset: images from the original dataset
    OUT/fuse.json                    settings, inputs (run.json hashes), environment, report
    OUT/manifest.jsonl               one line per fused image (config hash, input stamps, counts)

Every problem of the inputs' layout (missing runs, files, classes) is found before anything is
written. A file that turns out unreadable while fusing (a truncated PNG, label values that are no
class id, a size mismatch) fails its image alone: the others are fused, the manifest records the
failure, ``fuse.json`` says ``"status": "incomplete"`` and the command exits 1 naming each. The
run is resumable: an image whose manifest line is ``ok`` with the same configuration hash and the
same input file stamps is skipped, so a rerun after mending a file fuses only what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from annotations.fileio import (
    FUSE_RECORD,
    UNREADABLE,
    append_line,
    append_lines,
    atomic_write_json,
    atomic_write_text,
    check_windows_name,
    compact_manifest,
    did_you_mean,
    file_bytes,
    first_line,
    fused_input,
    fused_source,
    json_text,
    read_json,
)
from annotations.labelmap import read_label, write_label
from annotations.labelrun import changed_images, latest_records
from annotations.subset import edited_since_import, read_subset, unlisted_line, unlisted_masks
from annotations.taxonomy import IGNORE_ID, Taxonomy, class_key
from engine.datasets import (
    FUSION_CHAIN_LIMIT,
    SOURCE_PRECISE,
    DatasetSpec,
    SegDataset,
    edited_masks_line,
    image_size,
    load_spec,
    read_source_map,
    relative_ref,
    replaced_subset_photos,
    size_mismatch,
    source_dir,
)
from engine.fusion.pseudo import (
    PseudoRun,
    labelled_class,
    open_pseudo_run,
    read_pseudo,
    relabel_command,
    unvouched_images,
)
from engine.fusion.rules import (
    ClassStats,
    FusionRules,
    PseudoLabel,
    check_uncertain_and_coverage,
    fuse_image,
)
from engine.parallel import dead_worker, in_process_workers, process_pool
from engine.progress import make_progress
from engine.runinfo import (
    config_hash,
    environment,
    file_sha256,
    kept_warnings,
    say_again,
    warned_call,
    warnings_entry,
)
from engine.runlock import check_not_being_written, holds_lock, others_writing
from engine.text import counted, few

log = logging.getLogger(__name__)

FUSE_FORMAT = "mass-engine/fuse/v1"


@dataclass(frozen=True)
class FuseConfig:
    """Settings of one fusion run (``engine fuse``)."""

    data: Path  # dataset root folder or spec file holding the precise labels
    pseudo: tuple[
        Path, ...
    ]  # labeler run directories, one per new class; new ids follow this order
    out: Path  # output directory; becomes a dataset of its own (dataset.yaml)
    splits: tuple[str, ...] | None = None  # None: every dataset split that all pseudo runs labelled
    parents: tuple[str, ...] | None = None  # classes new classes may claim; None: each one's parent
    parent_constraint: bool = True  # False: new classes may overwrite any precise class but 255
    uncertain: str = "ignore"  # uncertain pseudo pixels on parent pixels: "ignore" or "keep-parent"
    min_coverage: float | None = (
        None  # drop instances with less of their mask on parents; None: off
    )
    priority: tuple[str, ...] = ()  # new class names; an earlier one wins overlaps outright
    workers: int = 1  # worker processes (1: fuse in this process)
    force: bool = False  # redo every image, even those already fused with the same settings
    progress: bool = True  # draw a progress bar on stderr
    # annotated subsets (engine annotate import) whose masks replace their class's pseudo
    # labels on their images: human corrections trained on as precise labels
    corrections: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "pseudo", tuple(Path(p) for p in self.pseudo))
        object.__setattr__(self, "corrections", tuple(Path(p) for p in self.corrections))
        object.__setattr__(self, "workers", in_process_workers(self.workers))  # 0: as 1
        for name in ("splits", "parents"):
            value = getattr(self, name)
            if value is not None:  # in order, once each (a split given twice is fused once)
                object.__setattr__(self, name, tuple(dict.fromkeys(str(v) for v in value)))
        object.__setattr__(self, "priority", tuple(str(v) for v in self.priority))
        for name, option, default in (
            ("splits", "--split", "every split the runs labelled"),
            ("parents", "--parent", "each class's own parent"),
        ):  # given but empty (--split "" from an unset variable): nothing fused, or claimed
            if getattr(self, name) == ():
                raise ValueError(f"{option} names no class or split; leave it out for {default}")
        check_uncertain_and_coverage(self.uncertain, self.min_coverage)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "fuse config") -> FuseConfig:
        """Build from a dict (e.g. a YAML file); unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            hint = did_you_mean(unknown, known)
            raise ValueError(
                f"{source}: unknown keys {sorted(unknown)}{hint}; allowed: {sorted(known)}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data"], d["out"] = str(self.data), str(self.out)
        d["pseudo"] = [str(p) for p in self.pseudo]
        for key in ("splits", "parents", "priority"):
            d[key] = None if d[key] is None else list(d[key])
        d["corrections"] = [str(p) for p in self.corrections]
        if not self.corrections:  # recorded as before corrections existed
            del d["corrections"]
        return d


@dataclass(frozen=True)
class Job:
    """One image to fuse."""

    split: str
    stem: str
    precise_path: Path
    image_path: Path
    # the input's source map when --data is itself a fused dataset: its pseudo pixels stay pseudo
    source_path: Path | None = None
    # (new class id, corrected mask) of each --corrections subset that annotates this image
    corrections: tuple[tuple[int, Path], ...] = ()


@dataclass(frozen=True)
class Corrections:
    """An annotated subset fused as corrections (``--corrections``): its masks replace the
    pseudo labels of its class on its images."""

    path: Path  # the subset directory
    class_name: str  # the new class its masks mark
    split: str  # the split of its images
    stems: tuple[str, ...]  # its images
    subset_json_sha256: str  # hash of subset.json's bytes: which import this was

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "path_resolved": os.path.abspath(self.path),
            "class": self.class_name,
            "split": self.split,
            "images": len(self.stems),
            "subset_json_sha256": self.subset_json_sha256,
        }


@dataclass(frozen=True)
class FusePlan:
    """Everything checked and resolved before the first write."""

    spec: DatasetSpec  # the precise dataset
    runs: tuple[PseudoRun, ...]  # one per new class, in id order
    taxonomy: Taxonomy  # the fused taxonomy: the dataset's classes plus the new ones
    rules: FusionRules  # the resolved rules (class ids)
    splits: tuple[str, ...]  # splits fused
    jobs: tuple[Job, ...]  # every image of those splits
    config_hash: str  # hash of everything that decides the fused pixels
    # images fused from pseudo labels their run no longer vouches for: (run, split, stem, why)
    unvouched: tuple[tuple[str, str, str, str], ...] = ()
    corrections: tuple[Corrections, ...] = ()  # the --corrections subsets, as given
    # the hash as engines before the forty-fifth round computed it (each run.json's bytes):
    # their records still count as done while the runs' run.json files are as they were
    legacy_hash: str = ""

    def same_settings(self, record: dict) -> bool:
        """Whether a manifest line (or ``fuse.json``) was written with this plan's settings, as
        this engine hashes them or as engines before the forty-fifth round did."""
        return record.get("config_hash") in (self.config_hash, self.legacy_hash)

    @property
    def new_ids(self) -> list[int]:
        return [self.taxonomy.id_of(r.class_name) for r in self.runs]

    def settings(self) -> dict[str, Any]:
        """The resolved rules, by class name, as stored in fuse.json and hashed."""
        tax = self.taxonomy
        return {
            "parents": {
                tax[c].name: [tax[p].name for p in ps] for c, ps in self.rules.parents.items()
            },
            "parent_constraint": self.rules.parent_constraint,
            "uncertain": self.rules.uncertain,
            "min_coverage": self.rules.min_coverage,
            "priority": [tax[c].name for c in self.rules.priority],
        }


@dataclass
class FuseResult:
    """What a fusion run did."""

    out: Path  # the output directory
    taxonomy: Taxonomy  # the fused taxonomy
    splits: tuple[str, ...]  # splits fused
    images: int  # images in those splits
    fused: int  # images fused by this call
    skipped: int  # images already fused with the same settings and inputs
    report: dict[str, ClassStats] = field(default_factory=dict)  # per new class name, all images
    seconds: float = 0.0  # wall time of this call
    config_hash: str = ""  # the settings' hash (manifest lines carry it)
    # images whose inputs could not be read: (split, stem, problem); not fused, not in ``report``
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    corrected: bool = False  # fused with --corrections (the report's rows on them)


def _fused_before(spec: DatasetSpec, run: PseudoRun) -> str:
    """For the error of a class fused into a dataset that has it: where it came from and the
    one call that fuses it anew, when the dataset was fused (``fuse.json``) with the class
    from a label run: the dataset the first fusion read, and every run of the chain in its
    order (the class's new run in its old one's place, so no id moves). Empty otherwise."""
    chain: list[tuple[str, str, Path]] = []  # (class, run path, its fuse.json), in id order
    record, data, where = spec.fuse_record(), None, spec.root / FUSE_RECORD
    # Car fused onto runs/fused/bicycle: two records, read back to front
    for _ in range(FUSION_CHAIN_LIMIT):
        inputs = (record or {}).get("inputs")
        if not isinstance(inputs, dict) or not isinstance(inputs.get("pseudo"), list):
            break
        pseudo = [r for r in inputs["pseudo"] if isinstance(r, dict)]
        # each run where it is now (beside the fused dataset in a moved or copied project)
        added = [
            (str(r.get("class")), str(fused_input(record, where.parent, r.get("path"))), where)
            for r in pseudo
        ]
        # the dataset it was fused from where it is now (beside it in a moved or copied
        # project; before the forty-sixth round the absolute path recorded, the original's)
        chain, data = added + chain, fused_source(record, where.parent)
        if data is None:
            break
        where = data / FUSE_RECORD
        # the dataset it was fused from, itself fused? (a record that is no JSON object: not)
        record = DatasetSpec(root=data).fuse_record()
        if record is None:
            break
    key = class_key(run.class_name)
    before = [(path, where) for name, path, where in chain if class_key(name) == key]
    if not before or data is None:
        return ""
    (path, where), again = before[0], f"engine fuse --data {shlex.quote(str(data))} --out NEW"
    for name, other, _ in chain:  # quoted: a line to paste
        again += f" --pseudo {shlex.quote(str(run.path if class_key(name) == key else other))}"
    if Path(path).resolve() == run.path.resolve():
        return (
            f": it was fused from this run already ({where}), so train on "
            f"{spec.root} as it is; to fuse it again with other settings: {again}"
        )
    return (
        f": it was fused from {path} ({where}); to fuse this run in its "
        f"place, fuse every new class anew onto the dataset they were fused from: {again}"
    )


def _resolve_taxonomy(spec: DatasetSpec, runs: list[PseudoRun], data: Path) -> Taxonomy:
    base = spec.taxonomy
    seen: dict[str, PseudoRun] = {}
    for run in runs:
        key = class_key(run.class_name)
        if key in seen and seen[key].path.resolve() == run.path.resolve():  # pasted twice
            raise ValueError(f"{run.path}: given twice (--pseudo); give each run once")
        if key in seen:
            raise ValueError(
                f"{seen[key].run_json} and {run.run_json}: two pseudo runs for class "
                f"{run.class_name!r}; give one run per new class"
            )
        seen[key] = run
        if run.class_name in base:
            raise ValueError(
                f"{run.run_json}: class {run.class_name!r} is already in the taxonomy of "
                f"dataset {data} ({base.listed()}); a pseudo run must add a new class"
                + _fused_before(spec, run)
            )
    room = IGNORE_ID - base.num_classes  # new ids up to 254; 255 is ignore in uint8 labels
    if len(runs) > room:
        raise ValueError(
            f"{runs[room].run_json}: no class id left for class {runs[room].class_name!r}: "
            f"dataset {data} has {counted(base.num_classes, 'class', 'classes')}, so uint8 "
            f"label maps (ids 0..{IGNORE_ID - 1}, {IGNORE_ID} is ignore) have room for "
            f"{counted(room, 'new class', 'new classes')}, not {len(runs)}"
        )
    fused = base
    for run in runs:
        if run.parent_name not in base:
            raise ValueError(
                f"{run.run_json}: parent {run.parent_name!r} of class {run.class_name!r} is not "
                f"a class of dataset {data} ({base.listed()})"
            )
        used = {c.color for c in fused}
        color = run.color if run.color not in used else None
        fused = fused.with_new_class(run.class_name, parent=run.parent_name, color=color)
    return fused


def _resolve_rules(config: FuseConfig, taxonomy: Taxonomy, runs: list[PseudoRun], n: int):
    new_ids = [taxonomy.id_of(r.class_name) for r in runs]
    base_names = taxonomy.names[:n]
    parents: dict[int, tuple[int, ...]] = {}
    for c in new_ids:
        if config.parents is None:
            parents[c] = (taxonomy[c].parent,)
            continue
        ids = []
        for name in config.parents:
            if name not in taxonomy or taxonomy.id_of(name) >= n:
                raise ValueError(
                    f"--parent {name!r}: not a precise class of the dataset; "
                    f"known: {few(base_names, 20, total=True)}"
                )
            ids.append(taxonomy.id_of(name))
        parents[c] = tuple(dict.fromkeys(ids))
    priority = []
    new_names = [taxonomy[c].name for c in new_ids]
    for name in config.priority:
        if name not in taxonomy or taxonomy.id_of(name) not in new_ids:
            raise ValueError(
                f"--priority {name!r}: not a new class of these pseudo runs; "
                f"new classes: {few(new_names, 20, total=True)}"
            )
        if taxonomy.id_of(name) in priority:  # named, not by id as FusionRules would
            raise ValueError(
                f"--priority lists {taxonomy.get(name).name} twice: {', '.join(config.priority)}"
            )
        priority.append(taxonomy.id_of(name))
    return FusionRules(
        parents=parents,
        parent_constraint=config.parent_constraint,
        uncertain=config.uncertain,
        min_coverage=config.min_coverage,
        priority=tuple(priority),
    )


def _check_stems(run: PseudoRun, dataset: SegDataset, labelled_here: bool = False) -> None:
    """Pseudo labels and images must pair. Pseudo labels of images no longer in the dataset
    are left out after a warning when the run labelled this dataset (``labelled_here``:
    :func:`labelled_dataset`; the images were removed since); otherwise (a run of another
    dataset) they stop the fusion, as do images without pseudo labels."""
    images = {s.stem for s in dataset.samples}
    labelled = run.stems(dataset.split)
    folder = run.label_dir(dataset.split)
    image_dir = dataset.spec.image_dir(dataset.split)
    extra, missing = labelled - images, images - labelled
    if labelled and not labelled & images:
        raise ValueError(
            f"{folder}: no image of {image_dir} matches its "
            f"{counted(len(labelled), 'pseudo label')} "
            f"(pseudo: {few(sorted(labelled), total=True)}; "
            f"images: {few(sorted(images), total=True)}): a pseudo run for another dataset?"
        )
    if extra and labelled_here:
        log.warning(
            "%s: the pseudo labels of %s no longer in %s (removed from the dataset since "
            "labelled) are left out: %s",
            folder,
            counted(len(extra), "image"),
            image_dir,
            few(sorted(extra), total=True),
        )
    elif extra:
        raise ValueError(
            f"{folder}: no image in {image_dir} for {counted(len(extra), 'pseudo label')}: "
            f"{few(sorted(extra), total=True)} (a pseudo run for another dataset?)"
        )
    if missing:
        raise ValueError(
            f"{folder}: no pseudo label for {counted(len(missing), 'image')} of {image_dir}: "
            f"{few(sorted(missing), total=True)} ({_why_unlabelled(run, {dataset.split: missing})})"
        )


def _check_not_stopped_before(
    runs: list[PseudoRun], spec: DatasetSpec, data: Path, have: list[str], splits: list[str]
) -> None:
    """Refuse a split of the dataset (``have``) left out of a fusion without ``--split`` (not
    in ``splits``: a run holds no pseudo labels of it) that every run lacking it was to label
    (its ``--split``, else every split of this dataset) and that has images: an ``engine
    label`` stopped (killed, Ctrl-C) before reaching it. Before, it was left out without a
    word: a run killed after train was fused train alone, while a split it had begun was
    refused (:func:`_check_stems`)."""
    left = [s for s in have if s not in splits]
    images = {s: SegDataset(spec, s, require_labels=False, lenient=True).samples for s in left}
    for run in runs:
        stopped = {
            s: {x.stem for x in images[s]}
            for s in left
            if not run.has_split(s)
            and all(was_to_label(r, s, data, spec) for r in runs if not r.has_split(s))
            and images[s]
        }
        if stopped:
            names = list(stopped)
            said = f"split {names[0]!r}" if len(names) == 1 else f"splits {', '.join(names)}"
            alone = f", or fuse the others alone: --split {','.join(splits)}" if splits else ""
            raise ValueError(
                f"{run.path}: no pseudo labels of {said}, which it was to label "
                f"({run.run_json}): {_why_unlabelled(run, stopped)}{alone}"
            )


def was_to_label(run: PseudoRun, split: str, data: Path, spec: DatasetSpec) -> bool:
    """Whether ``run``'s ``engine label`` was to label ``split`` of the dataset ``data``: its
    ``--split`` names it, or it had none and labelled this dataset (every split). The one
    rule of ``engine fuse`` and ``engine review`` (:func:`engine.review.warn_not_reached`)."""
    return split in run.splits if run.splits else labelled_dataset(data, spec, run)


def _why_unlabelled(run: PseudoRun, missing: dict[str, set[str]]) -> str:
    """What to do about images without a pseudo label (``missing``: each split's stems): label
    them (the run stopped before them, or they were added to the dataset since it ran: "finish
    the labeling run first" was false of a run that had finished), or, when its manifest says
    the labeler failed on them (an unreadable image, a truth mask of another size), mend them
    and label again; "finish the labeling run" was no help there. A whole split missing
    (:func:`_check_not_stopped_before`) is told the same: before, it was always blamed on a
    stopped run, when the labeler had failed on every image of it or it was added since."""
    latest = latest_records(run.path)
    failed = [
        (stem, rec)
        for split, stems in missing.items()
        for stem in sorted(stems)
        if (rec := latest.get((split, stem)) or {}).get("status") == "failed"
    ]
    if not failed:
        return (
            "not labelled yet: the labeling run stopped before them, or they were added to the "
            f"dataset since it ran; label them first: {relabel_command(run, missing)}"
        )
    stem, rec = failed[0]
    return (
        f"the labeling run failed on {len(failed)} of them, {stem}: "
        f"{rec.get('error')}; mend them and run engine label again, or take them out of the "
        "dataset"
    )


def _roots(path: Path) -> set[Path]:
    """``path`` resolved, and the root of the dataset it names when it is a spec file."""
    found = {path.resolve()}
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):  # not a spec: compared as it is
            found.add(load_spec(path).root.resolve())
    return found


def _images(spec: DatasetSpec) -> tuple:
    """The folder template of the dataset's images and each split's own folder, resolved: a
    fused dataset's are its source dataset's (``images: ../data/images/{split}``)."""
    own = tuple((s, (spec.root / f).resolve()) for s, f in spec.split_images)
    return (spec.root / spec.images).resolve(), own


def _same_images(recorded: Path, spec: DatasetSpec) -> bool:
    """Whether the dataset a run labelled has the images of ``spec``: a fused dataset (Car
    fused onto runs/fused/bicycle) is its source dataset's images with other labels."""
    try:
        return _images(load_spec(recorded)) == _images(spec)
    except (OSError, ValueError):  # gone or unreadable: compared by path only
        return False


def warn_other_dataset(data: Path, spec: DatasetSpec, runs: Iterable[PseudoRun]) -> None:
    """A warning for each run whose ``run.json`` records another dataset than ``data`` (by
    resolved path; a spec file counts as its root; a fused dataset of it, whose images are its,
    is the same): its pseudo labels may be of other images with the same file names. Only a
    warning: a dataset moved or reached by another mount
    after labeling is the same dataset."""
    for run in runs:
        recorded = recorded_dataset(run)
        if recorded is None or labelled_dataset(data, spec, run):
            continue
        log.warning(
            "%s: the run labelled dataset %s, but --data is %s: a pseudo run for another "
            "dataset? (If the dataset was moved since, ignore this.)",
            run.run_json,
            recorded,
            data,
        )


def recorded_dataset(run: PseudoRun) -> Path | None:
    """The dataset ``run``'s ``run.json`` says it labelled (None: not recorded), where it is
    found from here: beside the run where the two moved or were copied together. Before the
    forty-sixth round the absolute path recorded: ``engine fuse`` in a ``cp -r`` copy of the
    project warned that the run labelled another dataset, the original's."""
    if run.data_found and Path(run.data_found).exists():
        return Path(run.data_found)
    if run.data_resolved:  # where the labeler found it; the path as typed was relative to it
        return Path(run.data_resolved)
    return Path(run.data) if run.data else None


def labelled_dataset(data: Path, spec: DatasetSpec, run: PseudoRun) -> bool:
    """Whether ``run`` records labelling the dataset ``data`` (``spec``, read): the same root
    by resolved path, a spec file counting as its root, or a fused dataset of it, whose images
    are its."""
    recorded = recorded_dataset(run)
    here = {Path(data).resolve(), spec.root.resolve()}  # the spec given is read already
    return recorded is not None and bool(_roots(recorded) & here or _same_images(recorded, spec))


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


def open_corrections(
    config: FuseConfig,
    spec: DatasetSpec,
    taxonomy: Taxonomy,
    runs: list[PseudoRun],
    splits: list[str],
) -> list[Corrections]:
    """The ``--corrections`` subsets, each checked against the fusion before anything is
    written (one-line errors naming the subset and what to give): a subset of one of the new
    classes fused here, on a split fused here, whose images are the dataset's, whose masks
    are the images' size and whose photos were not replaced since the import; no image
    corrected twice for one class."""
    found: list[Corrections] = []
    seen: dict[tuple[str, str, str], Path] = {}
    new = [r.class_name for r in runs]
    for path in config.corrections:
        check_not_being_written(path, "engine fuse", "its annotated masks")
        sub = read_subset(path)
        json_path = path / "subset.json"
        if class_key(sub.class_name) not in {class_key(n) for n in new}:
            raise ValueError(
                f"{json_path}: a subset of {sub.class_name}, which this fusion does not add "
                f"(new classes: {', '.join(new)}): give --corrections a subset of one of them, "
                "or the --pseudo run of its class"
            )
        name = taxonomy.get(sub.class_name).name
        if sub.split not in splits:
            raise ValueError(
                f"{json_path}: a subset of split {sub.split!r}, which this fusion does not fuse "
                f"({', '.join(splits)}): give --split {sub.split} too (its images need pseudo "
                f"labels of every class), or leave this subset out"
            )
        data = SegDataset(spec, sub.split)
        by_stem = {s.stem: s for s in data.samples}
        absent = [s for s in sub.stems if s not in by_stem]
        if absent:
            raise ValueError(
                f"{json_path}: {counted(len(absent), 'image')} of the subset not in "
                f"{spec.image_dir(sub.split)}: {few(absent, total=True)} (a subset of another "
                "dataset? give --corrections a subset imported with --data of this one)"
            )
        edited = []
        for stem in sub.stems:
            key = (class_key(name), sub.split, stem)
            if key in seen:
                raise ValueError(
                    f"{seen[key]} and {path}: both correct {name} on image {sub.split}/{stem}; "
                    "give one subset per image and class (import them as one)"
                )
            seen[key] = path
            w, h = image_size(by_stem[stem].image_path)
            mask, histogram = sub.mask_and_histogram(stem)
            shape = mask.shape
            if edited_since_import(sub, stem, shape, histogram):
                edited.append(stem)
            if shape != (h, w):
                raise ValueError(
                    mask_size(sub.mask_path(stem), shape, by_stem[stem].image_path, w, h)
                )
        replaced = replaced_subset_photos(
            sub, {s: by_stem[s].image_path for s in sub.stems}, spec.image_dir(sub.split)
        )
        if replaced:
            raise ValueError(f"{replaced}; fused as corrections, they would train on them")
        if edited:  # used as they are now
            log.warning("%s", edited_masks_line(sub, edited, "fused"))
        if unlisted := unlisted_masks(sub):  # put in masks/ by hand: not the subset's
            log.warning("%s", unlisted_line(sub, unlisted))
        digest = hashlib.sha256(json_path.read_bytes()).hexdigest()
        found.append(Corrections(path, name, sub.split, sub.stems, digest))
    return found


def mask_size(mask: Path, shape: tuple[int, ...], image: Path, w: int, h: int) -> str:
    """The error of a corrected mask of another size than its image."""
    return (
        f"{mask}: corrected mask is {shape[1]}x{shape[0]} but its image {image} is {w}x{h}: "
        "import the annotations of this image again (engine annotate import --data with the "
        "dataset fused here), or leave the subset out of --corrections"
    )


def with_corrections(
    jobs: list[Job], corrections: list[Corrections], taxonomy: Taxonomy
) -> list[Job]:
    """``jobs`` with each image's corrected masks (class id, mask path) attached."""
    if not corrections:
        return jobs
    masks: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for c in corrections:
        for stem in c.stems:
            masks.setdefault((c.split, stem), []).append(
                (taxonomy.id_of(c.class_name), c.path / "masks" / f"{stem}.png")
            )
    return [
        replace(j, corrections=tuple(sorted(masks[(j.split, j.stem)])))
        if (j.split, j.stem) in masks
        else j
        for j in jobs
    ]


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


def check_vouched(runs: Iterable[PseudoRun], jobs: list[Job]) -> tuple[tuple[str, ...], ...]:
    """Each run's images that its manifest does not vouch for with its ``run.json``'s settings
    (:func:`engine.fusion.pseudo.unvouched_images`). Pseudo labels of another class (a run
    relabelled as Car with ``--split val`` kept Bicycle's train) are a ``ValueError`` naming
    them; labels made with other settings are fused, after a warning with the count and the
    command that labels them again, and ``fuse.json`` lists them (``unvouched``)."""
    found: list[tuple[str, ...]] = []
    keys = [(j.split, j.stem) for j in jobs]
    sizes: dict[tuple[str, str], int] | None = None  # the images' bytes now, for every run
    for run in runs:
        latest = latest_records(run.path) if (run.path / "manifest.jsonl").is_file() else {}
        stale = unvouched_images(run, keys, latest)
        if latest:
            if sizes is None:
                sizes = {
                    (j.split, j.stem): n
                    for j in jobs
                    if (n := file_bytes(j.image_path)) is not None
                }
            found += changed_photos(run, jobs, latest, sizes, stale)
        if not stale:
            continue
        splits = list(dict.fromkeys(split for split, _ in stale))
        for split, stem in stale:
            held = labelled_class(run, split, stem)
            if held is not None and class_key(held) != class_key(run.class_name):
                raise ValueError(
                    f"{run.instances_path(split, stem)}: pseudo labels of {held}, but "
                    f"{run.run_json} says the run labels {run.class_name} "
                    f"({counted(len(stale), 'image')} not labelled with its settings, in "
                    f"{', '.join(splits)}): label them again first: "
                    f"{relabel_command(run, splits)}"
                )
        per_split = ", ".join(f"{split} {sum(s == split for s, _ in stale)}" for split in splits)
        log.warning(
            "%s: %s (%s) not labelled with the settings its run.json records (other settings, "
            "a failed attempt or no manifest record) are fused as they are, listed in fuse.json; "
            "to label them again first: %s",
            run.path,
            counted(len(stale), "image"),
            per_split,
            relabel_command(run, splits),
        )
        found += [(str(run.path), split, stem, why) for (split, stem), why in stale.items()]
    return tuple(found)


def changed_photos(
    run: PseudoRun,
    jobs: list[Job],
    latest: dict[tuple[str, str], dict],
    sizes: dict[tuple[str, str], int],
    stale: Iterable[tuple[str, str]],
) -> list[tuple[str, ...]]:
    """The images of ``jobs`` (not ``stale``) whose file is another size than when ``run``
    labelled them (its manifest's ``image_bytes``, ``latest``; ``sizes``: bytes now: a photo
    replaced or downloaded again under the same name, :func:`changed_images`), as
    ``check_vouched`` lists them, after a warning with the command that labels them again
    (``engine label`` resumed labels exactly these). Before, the old photo's pseudo labels were
    fused without a word, and ``fuse.json`` vouched for them."""
    done = {k for k, rec in latest.items() if rec.get("status") == "ok"} - set(stale)
    hit = changed_images(latest, done, sizes)
    changed = [j for j in jobs if (j.split, j.stem) in hit]
    if not changed:
        return []
    splits = list(dict.fromkeys(j.split for j in changed))
    log.warning(
        "%s: %s changed since labelled (%s: another file size; a photo replaced?): their pseudo "
        "labels are the old photos' and are fused as they are, listed in fuse.json; to label "
        "them again first: %s",
        run.path,
        counted(len(changed), "image"),
        few([f"{j.split}/{j.stem}" for j in changed]),
        relabel_command(run, splits),
    )
    why = "its image changed since labelled (another file size)"
    return [(str(run.path), j.split, j.stem, why) for j in changed]


# -- per image (runs in worker processes) ------------------------------------------------------
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


REMOVED = "removed"  # a manifest line's status: the image left the dataset, its maps removed


# -- the run -----------------------------------------------------------------------------------
def earlier_splits(latest: dict, plan: FusePlan, out: Path) -> list[str]:
    """Splits fused into ``out`` by earlier calls (``engine fuse --split train``, then ``--split
    val``) that still belong to this dataset: every image's latest record is ok with this
    configuration's hash and its files exist. They stay in ``dataset.yaml`` beside this call's
    splits (:func:`_dataset_yaml` orders them); a split fused with other settings (or with
    failed images) is left out, with a warning saying how to bring it back."""
    by_split: dict[str, list[tuple[str, dict]]] = {}
    for (split, stem), rec in latest.items():
        if split not in plan.splits and rec.get("status") != REMOVED:
            by_split.setdefault(split, []).append((stem, rec))
    kept = []
    for split, records in by_split.items():
        if all(
            rec.get("status") == "ok"
            and plan.same_settings(rec)
            and all(p.is_file() for p in output_paths(out, split, stem))
            for stem, rec in records
        ):
            kept.append(split)
        else:
            log.warning(
                "%s: split %r was fused with other settings (or has failed or missing images) "
                "and is left out of dataset.yaml; fuse it again with these settings and --split %s",
                out,
                split,
                split,
            )
    return kept


def _dataset_yaml(plan: FusePlan, out: Path, earlier: Iterable[str] = ()) -> str:
    """The fused dataset's spec: this call's splits and ``earlier`` ones (:func:`earlier_splits`)
    in the source dataset's order."""
    spec = plan.spec
    order = {s: i for i, s in enumerate(spec.available_splits())}
    splits = sorted({*plan.splits, *earlier}, key=lambda s: (order.get(s, len(order)), s))
    images = spec.images_entry(relative_to=out)
    if isinstance(images, dict):  # each split's folder (the release's images_pad/train)
        images = {s: images[s] for s in splits if s in images}
    doc = {
        "images": images,
        "labels": "labels/{split}",
        "taxonomy": "taxonomy.json",
        "splits": splits,
        "image_exts": list(spec.image_exts),
    }
    # the source's own ways of naming its images; the fused labels are <stem>.png in labels/
    if spec.image_suffix is not None:
        del doc["image_exts"]
        doc["image_suffix"] = spec.image_suffix
    if spec.recursive:
        doc["recursive"] = True
    if spec.split_list is not None:
        doc["split_list"] = relative_ref(spec.root / spec.split_list, out)
    return (
        "# Written by `engine fuse`: the fused labels over the original images.\n"
        + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)  # paths as typed, no \\u
    )


def _fuse_json(plan: FusePlan, config: FuseConfig, status: str, extra: dict) -> dict[str, Any]:
    return {
        "format": FUSE_FORMAT,
        "status": status,
        "config": config.to_dict(),
        "config_hash": plan.config_hash,
        "settings": plan.settings(),
        "inputs": {
            # normalised: "cwd/../data" stops resolving once cwd is gone
            "data": os.path.abspath(config.data),
            "images": plan.spec.images_entry(),
            "pseudo": [r.to_dict() for r in plan.runs],
            **(
                {"corrections": [c.to_dict() for c in plan.corrections]} if plan.corrections else {}
            ),
        },
        "taxonomy": plan.taxonomy.to_dict(),
        "splits": {s: sum(j.split == s for j in plan.jobs) for s in plan.splits},
        **(
            {
                "unvouched": [
                    {"run": r, "split": a, "stem": b, "why": why} for r, a, b, why in plan.unvouched
                ]
            }
            if plan.unvouched
            else {}
        ),
        "environment": environment(torch_used=False),
        **extra,
    }


def _done(record: dict | None, plan: FusePlan, job: Job, out: Path) -> dict | None:
    """The record that says ``job`` is done (the one given, or the same with this call's hash
    and input stamp, when it was fused with settings that hash otherwise now or from inputs
    with other modification times but the same bytes: a copied folder), else None."""
    if record is None or record.get("status") != "ok":
        return None
    if not plan.same_settings(record):
        return None
    if not all(p.is_file() for p in output_paths(out, job.split, job.stem)):
        return None
    stamp = input_stamp(plan, job)
    if record.get("inputs") != stamp and (
        not record.get("content") or record["content"] != input_content(plan, job)
    ):
        return None
    return {**record, "config_hash": plan.config_hash, "inputs": stamp}


def new_class_names(taxonomy: Taxonomy) -> list[str]:
    """The classes carved out of a parent (the new classes), in id order."""
    return [c.name for c in taxonomy if c.parent is not None]


def fused_classes(out: Path) -> list[str] | None:
    """The new classes the fused dataset in ``out`` holds (its ``taxonomy.json``), in id order;
    None when there is none yet, or its record is unreadable (fusion rewrites it)."""
    path = out / "taxonomy.json"
    if not path.is_file():
        return None
    try:
        return new_class_names(Taxonomy.load(path))
    except (OSError, ValueError):
        return None


def check_same_classes(out: Path, plan: FusePlan, force: bool) -> None:
    """A fused dataset's folder holds one set of new classes: fusing others into it (a changed
    setting re-fuses, but other classes are another dataset, with other class ids) is a
    ``ValueError`` naming the classes it holds, unless ``force``. Training runs and predictions
    made from it read its labels with its taxonomy."""
    held = None if force else fused_classes(out)
    wanted = new_class_names(plan.taxonomy)
    if held is not None and held != wanted:
        raise ValueError(
            f"{out}: a fused dataset of {' + '.join(held) or 'no new class'}; fusing "
            f"{' + '.join(wanted)} here would replace its labels and class ids: give another "
            "--out, or --force to replace it"
        )


def _warn_fused_again(latest: dict, plan: FusePlan, out: Path, todo: list[Job]) -> None:
    """A warning when images fused before with other settings or inputs are fused again (as
    the labeler warns): hours of work on MaSS13K should not be replaced unannounced."""
    again = sum(
        1
        for j in todo
        if (rec := latest.get((j.split, j.stem)))
        and rec.get("status") == "ok"
        and (not plan.same_settings(rec) or rec.get("inputs") != input_stamp(plan, j))
    )
    if again:
        log.warning(
            "%s: %s fused with other settings or inputs will be fused again; give another "
            "--out to keep them",
            out,
            counted(again, "image"),
        )


@holds_lock("engine fuse", lambda c: c.out, own=(FUSE_RECORD,))
def fuse(config: FuseConfig) -> FuseResult:
    """Fuse the pseudo labels of ``config.pseudo`` into the precise labels of ``config.data``.

    Checks every input first (errors name the files), then fuses each image of the chosen
    splits, skipping those already done with the same settings and inputs, with
    ``config.workers`` processes. Returns per-class counts summed over all images.
    The warnings this call printed are kept in ``fuse.json`` (``warnings``): a fusion run under
    nohup or a scheduler says from its folder alone what it warned about (``engine info OUT``).
    """
    with kept_warnings() as said:
        return _fuse(config, said)


def _fuse(config: FuseConfig, said: list[str]) -> FuseResult:
    t0 = time.perf_counter()
    plan = plan_fusion(config)
    out = config.out
    check_same_classes(out, plan, config.force)
    earlier = None if config.force else _earlier_record(out, plan)  # before this call writes
    remove_orphans(out, plan)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.jsonl"
    if not others_writing(out):  # compacted under the folder's lock (no other writer)
        compact_manifest(manifest)
    latest = latest_records(out)  # each image's latest line; a line naming none is about none
    todo, refreshed = [], []
    for j in plan.jobs:
        rec = latest.get((j.split, j.stem))
        done = None if config.force else _done(rec, plan, j, out)
        if done is None:
            todo.append(j)
        elif done != rec:
            refreshed.append(done)
    if not config.force:
        _warn_fused_again(latest, plan, out, todo)
    kept_splits = earlier_splits(latest, plan, out)
    if todo:  # with nothing to fuse, nothing is half done at any moment
        # first the unfinished mark, then taxonomy.json and dataset.yaml: a fusion killed
        # between them left a folder of neither kind (engine info: "no image split folders
        # found"), whose rerun kept the killed write's temporary file for good
        atomic_write_json(
            out / FUSE_RECORD, _fuse_json(plan, config, "running", warnings_entry(said, earlier))
        )
    plan.taxonomy.save(out / "taxonomy.json")
    refreshed += [  # an earlier split's records, as fused by an engine of before the hash
        {**rec, "config_hash": plan.config_hash}
        for (split, _), rec in latest.items()
        if split in kept_splits
        and rec.get("status") == "ok"
        and rec.get("config_hash") != plan.config_hash
    ]
    for rec in refreshed:  # so that the next call skips them at one stat per file
        latest[(rec["split"], rec["stem"])] = rec
    # in one write and one fsync: after a copy (cp -r) every image's line is refreshed
    append_lines(manifest, [_json_line(rec) for rec in refreshed])
    atomic_write_text(out / "dataset.yaml", _dataset_yaml(plan, out, kept_splits))

    def record(rec: dict) -> None:
        latest[(rec["split"], rec["stem"])] = rec
        append_line(manifest, _json_line(rec))

    with make_progress("img", enabled=config.progress) as progress:
        task = progress.add_task("fuse", total=len(plan.jobs), completed=len(plan.jobs) - len(todo))
        if config.workers <= 1 or len(todo) <= 1:
            _init_worker(plan, out)
            for job in todo:
                record(fuse_job(job))
                progress.advance(task)
        else:
            _run_pool(
                plan,
                out,
                todo,
                min(config.workers, len(todo)),  # a process per image at most: none idle
                lambda r: (record(r), progress.advance(task)),
            )

    report = {r.class_name: ClassStats() for r in plan.runs}
    failed: list[tuple[str, str, str]] = []
    for job in plan.jobs:
        rec = latest[(job.split, job.stem)]
        if rec.get("status") != "ok":
            failed.append((job.split, job.stem, str(rec.get("error"))))
            continue
        for name, counts in rec["classes"].items():
            report[name] = report[name] + ClassStats.from_dict(counts)
    warn_corrections_rejected(report, plan)
    result = FuseResult(
        out=out,
        taxonomy=plan.taxonomy,
        splits=plan.splits,
        images=len(plan.jobs),
        fused=len(todo) - len(failed),  # a failed image is never done: always in todo
        skipped=len(plan.jobs) - len(todo),
        report=report,
        seconds=time.perf_counter() - t0,
        config_hash=plan.config_hash,
        failed=failed,
        corrected=bool(plan.corrections),
    )
    extra = {
        "images": {
            "total": result.images,
            "fused": result.fused,
            "skipped": result.skipped,
            "failed": len(failed),
        },
        "seconds": round(result.seconds, 3),
        "report": {name: s.to_dict(bool(plan.corrections)) for name, s in report.items()},
        **(
            {"failed": [{"split": a, "stem": b, "error": c} for a, b, c in failed]}
            if failed
            else {}
        ),
        **warnings_entry(said, earlier),
    }
    status = "incomplete" if failed else "complete"
    final = _fuse_json(plan, config, status, extra)
    if todo or not _same_record(out / FUSE_RECORD, final):
        atomic_write_json(out / FUSE_RECORD, final)
    return result


def warn_corrections_rejected(report: dict[str, ClassStats], plan: FusePlan) -> None:
    """A warning naming the corrected pixels of a class that the parent constraint kept precise
    (a corrected mask's 1s on a precise class that is not the class's parent): the precise
    labels win there, as over pseudo labels; ``--no-parent-constraint`` lets the human win."""
    named: set[str] = set()
    for c in plan.corrections:  # once a class, its count summed over its subsets
        st = report.get(c.class_name)
        if st is None or not st.corrected_rejected or c.class_name in named:
            continue
        named.add(c.class_name)
        log.warning(
            "%s: %s pixels its masks mark %s lie on precise classes that are not its parents "
            "(%s) and keep their precise labels (the parent constraint); to let the "
            "corrections win there: --no-parent-constraint (or --parent with those classes)",
            c.path,
            f"{st.corrected_rejected:,}",
            c.class_name,
            ", ".join(plan.settings()["parents"][c.class_name]),
        )


def remove_orphans(out: Path, plan: FusePlan) -> None:
    """Remove the label and source maps that earlier fusions wrote into ``out`` for images no
    longer in the dataset (in the splits fused now), after a warning naming them: the fused
    dataset pairs every label with an image, and ``engine train`` and ``engine info`` refused
    it for them (``no image in ... for 1 label``). Before, they stayed, and the user had to
    find and delete them by hand."""
    fused = {(j.split, j.stem) for j in plan.jobs}
    orphans = [
        p
        for split in plan.splits
        for kind in ("labels", "sources")
        for p in sorted((out / kind / split).glob("*.png"))
        if (split, p.stem) not in fused and p.is_file()
    ]
    if not orphans:
        return
    names = sorted({f"{p.parent.name}/{p.stem}" for p in orphans})
    log.warning(
        "%s: the label and source maps of %s no longer in the dataset (removed since fused) "
        "are removed: %s",
        out,
        counted(len(names), "image"),
        few(names, total=True),
    )
    for p in orphans:
        p.unlink(missing_ok=True)
    # said in the manifest too: its ok lines for them would otherwise make a later call for
    # another split (--split val) find their files missing and leave this split out of
    # dataset.yaml as "fused with other settings"
    removed = [name.split("/", 1) for name in names]
    append_lines(
        out / "manifest.jsonl",
        [_json_line({"split": split, "stem": stem, "status": REMOVED}) for split, stem in removed],
    )


# What a fusion's record says of the call that wrote it rather than of the fused dataset
ABOUT_THE_CALL = ("environment", "images", "seconds")


def _earlier_record(out: Path, plan: FusePlan) -> dict | None:
    """``out``'s fuse.json when the images it records fused are still this dataset's (the same
    settings: an incremental fusion, another split), for its warnings to be kept beside this
    call's (:func:`engine.runinfo.warnings_entry`); None for a new or replaced dataset."""
    old = DatasetSpec(root=out).fuse_record()
    return old if old is not None and plan.same_settings(old) else None


def _same_record(path: Path, record: dict) -> bool:
    """Whether the record at ``path`` says what ``record`` says of the fused dataset (they
    differ at most in :data:`ABOUT_THE_CALL`): a rerun that fused nothing keeps it as it is,
    the record of the call that fused its images. It rewrote it, so on a full disk a rerun with
    nothing to do failed."""
    try:
        old = read_json(path, "fusion record")
    except (ValueError, OSError):
        return False
    new = json.loads(json_text(record))  # as it reads back: tuples as lists, paths as text
    return isinstance(old, dict) and all(
        old.get(k) == new.get(k) for k in {*old, *new} if k not in ABOUT_THE_CALL
    )


def _run_pool(plan: FusePlan, out: Path, todo: list[Job], workers: int, done) -> None:
    """Fuse ``todo`` in ``workers`` processes, at most 2 jobs in flight per worker; the first
    error cancels the rest and is raised here. A worker's warnings come back with its record and
    are logged here (:func:`engine.runinfo.warned_call`), so fuse.json keeps them too."""
    with process_pool(workers, initializer=_init_worker, initargs=(plan, out)) as pool:
        pending: set[Future] = set()
        it = iter(todo)
        try:
            while True:
                while len(pending) < 2 * workers:
                    job = next(it, None)
                    if job is None:
                        break
                    pending.add(pool.submit(warned_call, fuse_job, job))
                if not pending:
                    return
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    try:
                        rec, said = f.result()
                    except BrokenProcessPool as e:  # a worker killed (out of memory?), crashed
                        raise dead_worker(pool) from e
                    say_again(said, log)  # printed here and kept in fuse.json
                    done(rec)
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _json_line(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":"), sort_keys=False)
