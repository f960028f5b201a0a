"""Reading a labeler run directory (DESIGN.md section 3): one new class's pseudo labels.

::

    RUN/run.json                      class name, parent, the run's taxonomy (new class appended)
    RUN/labels/<split>/<stem>.png     0 = not the class, 1 = the class, 255 = uncertain
    RUN/confidence/<split>/<stem>.png uint8 0..255
    RUN/instances/<split>/<stem>.json instances (COCO RLE masks), class ids in the run's taxonomy
    RUN/manifest.jsonl                one line per image

``run.json`` is read tolerantly: the taxonomy may sit at the top level or under ``config``; the
class is named by ``class`` / ``class_name`` / ``new_class`` / ``cls`` (a string or an object
with ``name`` and ``parent``), or by a top-level ``class_id`` into the taxonomy, or failing those
is the taxonomy's last class (the labeler appends it). Without a taxonomy, a class and a
``parent`` given by name suffice.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annotations.instances import Instances, read_instances
from annotations.labelmap import read_label
from annotations.labelrun import LabelRun
from annotations.taxonomy import ClassInfo, Taxonomy

_CLASS_KEYS = ("class", "class_name", "new_class", "cls")


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


def _find(data: dict, keys: tuple[str, ...]) -> Any:
    for where in (data, data.get("config") if isinstance(data.get("config"), dict) else {}):
        for key in keys:
            if where.get(key) is not None:
                return where[key]
    return None


def open_pseudo_run(path: str | os.PathLike) -> PseudoRun:
    """Read a pseudo-label run's ``run.json``; errors name the file and what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: pseudo-label run directory not found")
    run_json = path / "run.json"
    if not run_json.is_file():
        raise FileNotFoundError(
            f"{run_json}: not found; is {path} a labeler run directory (engine label --out)?"
        )
    raw = run_json.read_bytes()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{run_json}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{run_json}: expected a JSON object, got {type(data).__name__}")
    named = _find(data, _CLASS_KEYS)
    parent = named.get("parent") if isinstance(named, dict) else _find(data, ("parent",))
    if isinstance(named, dict):
        named = named.get("name")
    tax_data = _find(data, ("taxonomy",))
    if tax_data is None:
        # No taxonomy: the class and its parent by name suffice (instances are then not
        # filtered by class id, and the class gets a free colour).
        if named is None or parent is None:
            raise ValueError(
                f"{run_json}: no 'taxonomy' (the run's classes with the new class appended), "
                "nor a 'class' and 'parent' by name"
            )
        return PseudoRun(
            path=path,
            class_name=str(named),
            parent_name=str(parent),
            color=None,
            run_class_id=None,
            taxonomy=None,
            run_json_sha256=hashlib.sha256(raw).hexdigest(),
        )
    taxonomy = Taxonomy.from_dict(tax_data, source=f"{run_json}: taxonomy")
    class_id = data.get("class_id")
    if named is not None:
        try:
            info: ClassInfo = taxonomy.get(str(named))
        except ValueError as e:
            raise ValueError(f"{run_json}: class {named!r} is not in its taxonomy ({e})") from None
    elif isinstance(class_id, int) and 0 <= class_id < len(taxonomy):
        info = taxonomy[class_id]
    else:
        info = taxonomy.classes[-1]  # the labeler appends the new class
    if info.parent is None:
        raise ValueError(
            f"{run_json}: class {info.name!r} has no parent in the run's taxonomy; "
            "a new class must name the class it is carved out of"
        )
    return PseudoRun(
        path=path,
        class_name=info.name,
        parent_name=taxonomy[info.parent].name,
        color=info.color,
        run_class_id=info.id,
        taxonomy=taxonomy,
        run_json_sha256=hashlib.sha256(raw).hexdigest(),
    )


def read_pseudo(
    run: PseudoRun,
    split: str,
    stem: str,
    shape: tuple[int, int],
    with_instances: bool,
    reference: str = "the precise label",
) -> tuple[np.ndarray, np.ndarray, Instances | None]:
    """One image's ``(label, confidence, instances or None)`` from a run.

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
        inst, _ = read_instances(inst_path)
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
    values = np.bincount(label.ravel(), minlength=256)
    values[[0, 1, 255]] = 0
    if values.any():
        vals = np.flatnonzero(values)[:5].tolist()
        raise ValueError(f"{label_path}: pseudo label values must be 0, 1 or 255, found {vals}")
    return label, confidence, instances
