"""Read-only view of a label run directory (DESIGN.md section 3), for export, pick and review.

A label run of one new class holds::

    labels/<split>/<stem>.png        0 = not the class, 1 = the class, 255 = uncertain
    confidence/<split>/<stem>.png    uint8 0..255
    instances/<split>/<stem>.json    Instances + header (image, split, class_name, backend, ...)
    run.json                         the resolved configuration
    manifest.jsonl                   one line per image

The labeler writes these; this module only reads them, with no torch and no model code.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotations.fileio import (
    folder_is,
    in_the_output,
    not_this_output,
    outputs_around,
    parse_json,
    read_bytes,
    read_jsonl,
    record_root,
    split_key,
)
from annotations.instances import (
    Instances,
    InstanceSummary,
    InstanceWindows,
    read_instance_summary,
    read_instances,
    read_windows,
)
from annotations.labelmap import read_label
from annotations.taxonomy import Taxonomy


@dataclass(frozen=True)
class RunInfo:
    """What a label run's ``run.json`` says, read with the keys the labeler writes
    (``labeler/run/``)::

        {"config": {"cls": {"name": ..., "parent": ..., ...}, "data": ..., ...},
         "backend": {"name": ..., "identity": ..., "models": ...},
         "class_id": 7, "taxonomy": {...}, "config_hash": ..., "environment": ...}
    """

    class_name: str  # the new class (``taxonomy[class_id]``)
    class_id: int  # its id in the run's taxonomy: the instances' ``class_id``
    parent_name: str  # the class it is carved out of
    taxonomy: Taxonomy  # the run's taxonomy, the new class appended
    backend: str  # "grounded-sam", "simulated", ...
    data_root: Path | None  # the dataset the run labelled (``config.data``)
    sha256: str  # hash of run.json's bytes: which labeling run this was
    record: dict = field(default_factory=dict, compare=False, repr=False)  # the whole run.json


def read_run_info(path: str | os.PathLike) -> RunInfo:
    """Parse a label run's ``run.json``; every error names the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        hint = not_this_output(path.parent, "a label run", "run.json")
        raise FileNotFoundError(
            f"{path}: not found"
            + (hint or f"; is {path.parent} a label run directory (engine label --out)?")
        )
    raw = read_bytes(path, "label run record")
    doc = parse_json(raw, path)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    if not isinstance(doc.get("taxonomy"), dict) or not isinstance(doc.get("class_id"), int):
        raise ValueError(
            f"{path}: expected the labeler's 'taxonomy' and 'class_id' (written by engine label)"
        )
    taxonomy = Taxonomy.from_dict(doc["taxonomy"], source=f"{path}: taxonomy")
    class_id = doc["class_id"]
    if not 0 <= class_id < len(taxonomy):
        raise ValueError(f"{path}: class_id {class_id} is not in its taxonomy ({len(taxonomy)})")
    info = taxonomy[class_id]
    named = (config.get("cls") or {}).get("name") if isinstance(config.get("cls"), dict) else None
    if named is not None and str(named) != info.name:
        raise ValueError(
            f"{path}: config.cls.name {named!r} but class_id {class_id} is {info.name!r}"
        )
    if info.parent is None:
        raise ValueError(
            f"{path}: class {info.name!r} has no parent in the run's taxonomy; "
            "a new class must name the class it is carved out of"
        )
    backend = doc.get("backend")
    backend = backend.get("name") if isinstance(backend, dict) else backend
    data = config.get("data")  # as typed; data_resolved: absolute, when labelled
    return RunInfo(
        class_name=info.name,
        class_id=class_id,
        parent_name=taxonomy[info.parent].name,
        taxonomy=taxonomy,
        backend=str(backend or config.get("backend") or "unknown"),
        data_root=record_root(
            doc, data, doc.get("data_resolved"), (config.get("out"), path.parent)
        ),
        sha256=hashlib.sha256(raw).hexdigest(),
        record=doc,
    )


def latest_records(root: str | os.PathLike) -> dict[tuple[str, str], dict]:
    """Each image's latest ``manifest.jsonl`` record in the label run at ``root``:
    ``(split, stem) -> record``; none without a manifest. A line that names no image (no split
    and stem as text: a note or a line edited by hand) is about none: it made ``engine info``
    and the labeler's resume stop with a TypeError."""
    return {
        (r["split"], r["stem"]): r
        for r in read_jsonl(Path(root) / "manifest.jsonl")
        if isinstance(r, dict)
        and isinstance(r.get("split"), str)
        and isinstance(r.get("stem"), str)
    }


# The folders engine label writes by split (labeler.run.clear_outputs removes them when a run
# is replaced; engine.runlock refuses them as --out); any other folder in a run's folder is the
# user's (RUN/car_manual, RUN/review).
RUN_FOLDERS = ("labels", "confidence", "instances")


def run_folder_of(folder: str | os.PathLike) -> tuple[Path, str] | None:
    """``(root, name)`` where ``folder`` is a label run (``name`` ``""``) or lies in one of its
    :data:`RUN_FOLDERS` (``RUN/confidence/test``: ``"confidence"``), the nearest engine output
    around it being that run; None otherwise (``RUN/car_manual``, a user's own masks)."""
    folder = Path(folder)
    near = next(iter(outputs_around(folder)), None)
    if near is None or near[1] != "run.json":
        return None
    root = near[0]
    name = folder.relative_to(root).parts[0] if folder != root else ""
    return (root, name) if name == "" or name in RUN_FOLDERS else None


def output_paths(out: Path, split: str, stem: str) -> dict[str, Path]:
    """The files engine label writes for an image of the label run at ``out``."""
    return {
        "label": out / "labels" / split / f"{stem}.png",
        "confidence": out / "confidence" / split / f"{stem}.png",
        "instances": out / "instances" / split / f"{stem}.json",
    }


def done_keys(
    out: Path, chash: str, latest: dict[tuple[str, str], dict] | None = None
) -> set[tuple[str, str]]:
    """(split, stem) whose latest manifest record is ok with this hash and whose files exist:
    the images engine label skips, and engine info counts as done (here, beside the run's
    records, so that it needs not import the labeler and its models' packages)."""
    done = set()
    for (split, stem), rec in (latest_records(out) if latest is None else latest).items():
        if (
            rec.get("status") == "ok"
            and rec.get("config_hash") == chash
            and all(p.is_file() for p in output_paths(out, split, stem).values())
        ):
            done.add((split, stem))
    return done


def changed_images(
    latest: dict[tuple[str, str], dict],
    done: set[tuple[str, str]],
    sizes: dict[tuple[str, str], int | None],
) -> set[tuple[str, str]]:
    """The images of ``done`` whose file (``sizes``: bytes now, of the images labelled now) is
    not the size its latest manifest record (``image_bytes``) says it was labelled at: a photo
    replaced under the same name, whose labels are of the old one. Records written before the
    size was recorded are trusted. The size, not the modification time, so that a dataset
    copied or moved elsewhere is the same dataset."""
    return {
        key
        for key in done
        if key in sizes
        and (was := latest[key].get("image_bytes")) is not None
        and was != sizes[key]
    }


@dataclass(frozen=True)
class LabelRun:
    """A label run directory. Cheap to construct: nothing is read until asked for, and
    ``run.json`` is read once."""

    root: Path  # the run directory

    @classmethod
    def open(cls, root: str | os.PathLike) -> LabelRun:
        root = Path(root)
        if root.is_file():  # its run.json, a pick list
            raise FileNotFoundError(
                f"{root}: not a label run's folder{in_the_output(root, 'run.json')}"
            )
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: label run directory not found")
        if not (root / "labels").is_dir() and not (root / "instances").is_dir():
            if (root / "run.json").is_file():
                return cls(root)  # nothing labelled yet (every image failed): callers say so
            what = folder_is(root)
            raise ValueError(
                f"{root}: not a label run (expected labels/<split>/ and instances/<split>/ "
                "folders)" + (f"; it is {what}" if what else in_the_output(root, "run.json"))
            )
        return cls(root)

    # -- metadata ------------------------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @functools.cached_property
    def info(self) -> RunInfo:
        """``run.json``, parsed once; FileNotFoundError / ValueError naming it when absent or
        not the labeler's."""
        return read_run_info(self.run_json)

    @functools.cached_property
    def _header(self) -> dict:
        """The first instances file's header (class_name, backend), for runs without run.json."""
        for split in self.splits():
            for stem in self.stems(split):
                p = self.instances_path(split, stem)
                if p.is_file():
                    return read_instances(p)[1]
        return {}

    @property
    def class_name(self) -> str:
        """The run's new class, from run.json or else the first instances header."""
        if self.run_json.is_file():
            return self.info.class_name
        name = self._header.get("class_name")
        if not name:
            raise ValueError(
                f"{self.run_json}: not found, and no instances header names a class"
                + not_this_output(self.root, "a label run", "run.json")
            )
        return str(name)

    @property
    def backend(self) -> str:
        """The labeling backend ("grounded-sam", "simulated", ...), or "unknown"."""
        if self.run_json.is_file():
            return self.info.backend
        return str(self._header.get("backend") or "unknown")

    @property
    def data_root(self) -> Path | None:
        """The dataset the run labelled (run.json ``config.data``), when recorded."""
        return self.info.data_root if self.run_json.is_file() else None

    # -- listing -------------------------------------------------------------------------------
    def splits(self) -> list[str]:
        found: set[str] = set()
        for sub in ("labels", "instances"):
            d = self.root / sub
            if d.is_dir():
                found |= {p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")}
        return sorted(found, key=split_key)

    def stems(self, split: str) -> list[str]:
        """Stems labelled in ``split`` (those with a label map or an instances file)."""
        stems: set[str] = set()
        for sub, ext in (("labels", ".png"), ("instances", ".json")):
            d = self.root / sub / split
            if d.is_dir():
                stems |= {
                    p.stem for p in d.iterdir() if p.suffix == ext and not p.name.startswith(".")
                }
        return sorted(stems)

    # -- per image -----------------------------------------------------------------------------
    def label_dir(self, split: str) -> Path:
        return self.root / "labels" / split

    def label_path(self, split: str, stem: str) -> Path:
        return self.label_dir(split) / f"{stem}.png"

    def confidence_path(self, split: str, stem: str) -> Path:
        return self.root / "confidence" / split / f"{stem}.png"

    def instances_path(self, split: str, stem: str) -> Path:
        return self.root / "instances" / split / f"{stem}.json"

    def label(self, split: str, stem: str) -> np.ndarray:
        """``(H, W) uint8`` pseudo label: 0, 1 or 255."""
        return read_label(self.label_path(split, stem))

    def confidence(self, split: str, stem: str) -> np.ndarray | None:
        """``(H, W) uint8`` confidence 0..255, or None when the run wrote none."""
        p = self.confidence_path(split, stem)
        return read_label(p) if p.is_file() else None

    def instances(self, split: str, stem: str) -> tuple[Instances, dict]:
        """``(instances, header)`` of one image."""
        return read_instances(self.instances_path(split, stem))

    def instance_windows(self, split: str, stem: str) -> tuple[InstanceWindows, dict]:
        """``(instances, header)`` of one image, each mask read inside its window only."""
        return read_windows(self.instances_path(split, stem))

    def instance_summary(self, split: str, stem: str) -> InstanceSummary:
        """One image's instance scores and areas, its masks not decoded."""
        return read_instance_summary(self.instances_path(split, stem))
