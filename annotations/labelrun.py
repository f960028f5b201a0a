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

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annotations.instances import Instances, read_instances
from annotations.labelmap import read_label


def _find_key(obj: Any, keys: tuple[str, ...], depth: int = 3) -> Any:
    """The first value stored under one of ``keys`` in a nested dict (breadth first)."""
    level = [obj]
    for _ in range(depth):
        nxt = []
        for d in level:
            if not isinstance(d, dict):
                continue
            for k in keys:
                if d.get(k) not in (None, ""):
                    return d[k]
            nxt.extend(v for v in d.values() if isinstance(v, dict))
        level = nxt
    return None


@dataclass(frozen=True)
class LabelRun:
    """A label run directory. Cheap to construct: nothing is decoded until asked for."""

    root: Path  # the run directory

    @classmethod
    def open(cls, root: str | os.PathLike) -> LabelRun:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: label run directory not found")
        if not (root / "labels").is_dir() and not (root / "instances").is_dir():
            raise ValueError(
                f"{root}: not a label run (expected labels/<split>/ and instances/<split>/ folders)"
            )
        return cls(root)

    # -- metadata ------------------------------------------------------------------------------
    @property
    def config(self) -> dict:
        """``run.json`` as a dict (empty when the file is absent)."""
        path = self.root / "run.json"
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg})") from None
        return data if isinstance(data, dict) else {}

    def _first_header(self) -> dict:
        for split in self.splits():
            for stem in self.stems(split):
                p = self.instances_path(split, stem)
                if p.is_file():
                    return read_instances(p)[1]
        return {}

    @property
    def class_name(self) -> str:
        """The run's new class, from run.json or else the first instances header."""
        name = _find_key(self.config, ("class_name", "class", "new_class", "cls"))
        if isinstance(name, dict):
            name = name.get("name")
        if not name:
            name = self._first_header().get("class_name")
        if not name:
            raise ValueError(
                f"{self.root}: cannot tell the run's class (no class_name in run.json)"
            )
        return str(name)

    @property
    def backend(self) -> str:
        """The labeling backend ("grounded-sam", "simulated", ...), or "unknown"."""
        name = _find_key(self.config, ("backend",))
        if isinstance(name, dict):
            name = name.get("name")
        if not name:
            name = self._first_header().get("backend")
        return str(name) if name else "unknown"

    @property
    def data_root(self) -> Path | None:
        """The dataset the run labelled (run.json ``data``/``dataset``), when recorded."""
        value = _find_key(self.config, ("data", "data_root", "dataset", "dataset_root"))
        if isinstance(value, dict):
            value = value.get("root")
        return Path(value) if isinstance(value, str) and value else None

    # -- listing -------------------------------------------------------------------------------
    def splits(self) -> list[str]:
        found: set[str] = set()
        for sub in ("labels", "instances"):
            d = self.root / sub
            if d.is_dir():
                found |= {p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")}
        order = {"train": 0, "val": 1, "test": 2}
        return sorted(found, key=lambda s: (order.get(s, 3), s))

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
