"""Reading a labeler run directory (DESIGN.md section 3): one new class's pseudo labels.

::

    RUN/run.json                      class name, parent, the run's taxonomy (new class appended)
    RUN/labels/<split>/<stem>.png     0 = not the class, 1 = the class, 255 = uncertain
    RUN/confidence/<split>/<stem>.png uint8 0..255
    RUN/instances/<split>/<stem>.json instances (COCO RLE masks), class ids in the run's taxonomy
    RUN/manifest.jsonl                one line per image

``run.json`` is read by :class:`annotations.labelrun.LabelRun` (the labeler's keys: ``class_id``
into ``taxonomy``, ``config.cls``).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import folder_is, in_the_output
from annotations.instances import InstanceWindows, read_instance_windows
from annotations.interchange import record_part
from annotations.labelmap import byte_histogram, holds_only, read_label
from annotations.labelrun import LabelRun, latest_records
from annotations.taxonomy import Taxonomy


@dataclass(frozen=True)
class PseudoRun:
    """A labeler run directory for one new class."""

    path: Path  # the run directory
    class_name: str  # the new class's name
    parent_name: str  # its parent class's name (in the run's taxonomy)
    color: tuple[int, int, int] | None  # its colour in the run's taxonomy (None: none given)
    run_class_id: int | None  # its id in the run's taxonomy (its instances' class_id); None: any
    taxonomy: Taxonomy | None  # the run's taxonomy, when run.json has one
    run_json_sha256: str  # hash of run.json's bytes: which labeling run this was
    config_hash: str | None = None  # run.json's settings hash (None: a run that records none)
    argv: tuple[str, ...] = ()  # the command that last wrote run.json (environment.argv)
    data: str | None = None  # the dataset it labelled: config.data, as typed
    data_resolved: str | None = None  # ... and its absolute path then (data_resolved)
    # ... and where it is found from here (LabelRun's data_root): beside the run where the two
    # moved or were copied together (a copy's, not the original's)
    data_found: str | None = None
    # the splits its engine label was told to label (config.splits); () for every split of its
    # dataset: a split among them without pseudo labels is one the run stopped before
    splits: tuple[str, ...] = ()

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def files(self) -> LabelRun:
        """The run directory's file layout (shared with export, pick, review and report)."""
        return LabelRun(self.path)

    def label_dir(self, split: str) -> Path:
        return self.files.label_dir(split)

    def label_path(self, split: str, stem: str) -> Path:
        return self.files.label_path(split, stem)

    def confidence_path(self, split: str, stem: str) -> Path:
        return self.files.confidence_path(split, stem)

    def instances_path(self, split: str, stem: str) -> Path:
        return self.files.instances_path(split, stem)

    def has_split(self, split: str) -> bool:
        return self.label_dir(split).is_dir()

    def stems(self, split: str) -> set[str]:
        """Stems of the split's pseudo labels; FileNotFoundError naming the folder if none."""
        folder = self.label_dir(split)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: this pseudo run has no labels for split {split!r}")
        return {
            p.stem
            for p in folder.iterdir()
            if p.is_file() and p.suffix == ".png" and not p.name.startswith(".")
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "class": self.class_name,
            "parent": self.parent_name,
            "run_class_id": self.run_class_id,
            "run_json_sha256": self.run_json_sha256,
        }


def open_pseudo_run(path: str | os.PathLike) -> PseudoRun:
    """A label run's class, parent and taxonomy from its ``run.json`` (read by
    :class:`annotations.labelrun.LabelRun`, the one reader of that file); errors name the file
    and what is missing."""
    path = Path(path)
    # its run.json or labels/ given, or a dataset: named as engine review and pick name them
    if path.is_file() or (path.is_dir() and not (path / "run.json").is_file()):
        kind = None if path.is_file() else folder_is(path)
        if what := in_the_output(path, "run.json") or (f"; it is {kind}" if kind else ""):
            raise ValueError(f"{path}: not a label run's folder{what}")
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: pseudo-label run directory not found")
    info = LabelRun(path).info
    env, config = record_part(info.record, "environment"), record_part(info.record, "config")
    return PseudoRun(
        path=path,
        class_name=info.class_name,
        parent_name=info.parent_name,
        color=info.taxonomy[info.class_id].color,
        run_class_id=info.class_id,
        taxonomy=info.taxonomy,
        run_json_sha256=info.sha256,
        config_hash=str(info.record["config_hash"]) if info.record.get("config_hash") else None,
        argv=tuple(map(str, argv)) if isinstance(argv := env.get("argv"), list) else (),
        data=str(data) if (data := config.get("data")) else None,
        data_resolved=str(resolved) if (resolved := info.record.get("data_resolved")) else None,
        data_found=str(info.data_root) if info.data_root is not None else None,
        splits=tuple(map(str, told)) if isinstance(told := config.get("splits"), list) else (),
    )


def unvouched_images(
    run: PseudoRun,
    keys: Iterable[tuple[str, str]],
    latest: dict[tuple[str, str], dict] | None = None,
) -> dict[tuple[str, str], str]:
    """The images of ``keys`` (``(split, stem)``) whose pseudo labels the run no longer vouches
    for, with why: the latest line of ``manifest.jsonl`` for the image is ``ok`` with another
    settings hash than ``run.json``'s (labelled with other settings: ``--split val`` at another
    threshold leaves train as it was), failed (its files are from an attempt before), or absent.
    Nothing for a run whose ``run.json`` records no hash or that has no manifest (hand-made).
    ``latest``: the run's manifest records, where the caller has read them."""
    manifest = run.path / "manifest.jsonl"
    if run.config_hash is None or not manifest.is_file():
        return {}
    if latest is None:
        latest = latest_records(run.path)
    found = {}
    for key in keys:
        rec = latest.get(key)
        if rec is None:
            found[key] = "no manifest record"
        elif rec.get("status") != "ok":
            found[key] = "its latest labeling failed"
        elif rec.get("config_hash") != run.config_hash:
            found[key] = "labelled with other settings"
    return found


def labelled_class(run: PseudoRun, split: str, stem: str) -> str | None:
    """The class an image's instances file says it was labelled as (its header's
    ``class_name``), or None when the file or the name is not there."""
    try:
        doc = json.loads(run.instances_path(split, stem).read_bytes())
    except (OSError, ValueError):
        return None
    name = doc.get("class_name") if isinstance(doc, dict) else None
    return str(name) if name else None


def relabel_command(run: PseudoRun, splits: Iterable[str]) -> str:
    """The ``engine label`` command that labels ``splits`` of ``run`` again with its current
    settings: the command that wrote its ``run.json`` (without its ``--split``, ``--force`` and
    ``--shard``) with ``--split``, or a sketch naming run.json when that command is not recorded.
    Without ``--shard``: the images missing may be another shard's, and the recorded shard's
    command, run again, skipped them all (before the forty-third round)."""
    split = ",".join(splits)
    args = list(run.argv[1:])
    if not args or args[0] != "label":
        return (
            f"engine label --class {shlex.quote(run.class_name)} --out {shlex.quote(str(run.path))}"
            f" --split {split} with the settings in {run.run_json}"
        )
    kept, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("--split", "--force", "--shard"):
            skip = a != "--force"
        elif not a.startswith(("--split=", "--shard=")):
            kept.append(a)
    return shlex.join(["engine", *kept, "--split", split])


def read_pseudo(
    run: PseudoRun,
    split: str,
    stem: str,
    shape: tuple[int, int],
    with_instances: bool,
    reference: str = "the precise label",
) -> tuple[np.ndarray, np.ndarray, InstanceWindows | None]:
    """One image's ``(label, confidence, instances or None)`` from a run.

    Instances come as their masks' windows (what the coverage drop reads), each decoded only
    inside its window: full-size masks took 12 MB an instance at 4032x3024.

    Sizes are checked against ``shape`` ``(H, W)``, the size of ``reference`` (the precise label
    file); errors name the offending file, the reference and both sizes. Instances are those of
    the run's class only. Label: ``(H, W) uint8`` in {0, 1, 255}; confidence ``(H, W) uint8``.
    """
    label_path, conf_path = run.label_path(split, stem), run.confidence_path(split, stem)
    label, confidence = read_label(label_path), read_label(conf_path)
    sizes = [(label_path, label.shape), (conf_path, confidence.shape)]
    instances = None
    if with_instances:
        inst_path = run.instances_path(split, stem)
        inst = read_instance_windows(inst_path)
        if run.run_class_id is not None and len(inst):
            keep = inst.class_ids == run.run_class_id
            if not keep.all():
                inst = inst[keep]
        instances = inst
        sizes.append((inst_path, inst.image_size))
    for p, size in sizes:
        if size != shape:
            raise ValueError(
                f"{p}: size {size[1]}x{size[0]} does not match {reference} ({shape[1]}x{shape[0]})"
            )
    if holds_only(label, (0, 1, 255)):
        return label, confidence, instances
    values = byte_histogram(label)  # only a bad label is counted, for the values it names
    values[[0, 1, 255]] = 0
    if values.any():
        vals = np.flatnonzero(values)[:5].tolist()
        raise ValueError(f"{label_path}: pseudo label values must be 0, 1 or 255, found {vals}")
    return label, confidence, instances
