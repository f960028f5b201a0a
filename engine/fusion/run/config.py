"""The settings, plan and result of a fusion run: :class:`FuseConfig` (``engine fuse``'s
options), :class:`Job` (one image to fuse), :class:`Corrections` (an annotated subset fused as
corrections), :class:`FusePlan` (everything checked and resolved before the first write) and
:class:`FuseResult` (what a run did); :data:`FUSE_FORMAT`, the format ``fuse.json`` records.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from annotations.fileio import did_you_mean
from annotations.taxonomy import Taxonomy
from engine.datasets import DatasetSpec
from engine.fusion.pseudo import PseudoRun
from engine.fusion.rules import ClassStats, FusionRules, check_uncertain_and_coverage
from engine.parallel import in_process_workers

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
