"""Hand-built pseudo-label run directories (DESIGN.md section 3), for tests and demos.

Writes exactly what fusion reads, with the ``annotations`` helpers, so tests of fusion (and of
anything downstream of it) need neither the labeler nor its models.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from annotations.fileio import append_line, atomic_write_json
from annotations.instances import Instances, write_instances
from annotations.labelmap import IGNORE, write_label
from annotations.taxonomy import MASS13K, Taxonomy


def mask_components(mask: np.ndarray) -> np.ndarray:
    """``(N, H, W) bool`` 8-connected components of an ``(H, W)`` binary mask (N may be 0)."""
    n, comp = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros((0,) + mask.shape, bool)
    return comp[None] == np.arange(1, n)[:, None, None]


def default_confidence(label: np.ndarray) -> np.ndarray:
    """``(H, W) uint8``: 200 on the class, 100 on uncertain pixels, 0 elsewhere."""
    return np.select([label == 1, label == IGNORE], [200, 100], 0).astype(np.uint8)


def labeler_run_json(
    taxonomy: Taxonomy, class_name: str, backend: str = "simulated", data: str | None = None
) -> dict:
    """The part of ``run.json`` that readers use, with the keys ``labeler/run/`` writes."""
    info = taxonomy.get(class_name)
    parent = taxonomy[info.parent].name if info.parent is not None else None
    return {
        "config": {"cls": {"name": info.name, "parent": parent}, "data": data, "backend": backend},
        "backend": {"name": backend, "identity": {}, "models": {}},
        "class_id": info.id,
        "taxonomy": taxonomy.to_dict(),
    }


def write_pseudo_run(
    run: str | Path,
    class_name: str,
    labels: Mapping[str, Mapping[str, np.ndarray]],
    parent: str = "Others",
    base: Taxonomy = MASS13K,
    confidence: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    run_json: dict | None = None,
) -> Path:
    """Write a labeler-style run directory for one new class.

    Args:
        run: the directory to write.
        class_name: the new class; it is appended to ``base`` with ``parent``.
        labels: ``{split: {stem: (H, W) uint8}}`` pseudo labels (0 / 1 / 255 = uncertain).
        confidence: the same shape of ``(H, W) uint8`` maps; missing ones get
            :func:`default_confidence`.
        run_json: replaces the default ``run.json`` content (:func:`labeler_run_json`).

    Instances are the 8-connected components of each label's class pixels, with the class's id
    in the run's taxonomy. Returns the run directory.
    """
    run = Path(run)
    taxonomy = base.with_new_class(class_name, parent)
    class_id = taxonomy.id_of(class_name)
    for split, items in labels.items():
        for stem, label in items.items():
            write_label(run / "labels" / split / f"{stem}.png", label)
            conf = (confidence or {}).get(split, {}).get(stem)
            conf = default_confidence(label) if conf is None else conf
            write_label(run / "confidence" / split / f"{stem}.png", conf)
            masks = mask_components(label == 1)
            n = len(masks)
            boxes = np.zeros((n, 4), np.float32)
            for i, m in enumerate(masks):
                ys, xs = np.nonzero(m)
                boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            inst = Instances(
                xyxy=boxes,
                masks=masks,
                scores=np.full(n, 0.8),
                mask_scores=np.full(n, 0.9),
                class_ids=np.full(n, class_id),
                prompts=[class_name.lower()] * n,
            )
            write_instances(run / "instances" / split / f"{stem}.json", inst, image=stem)
            record = {"split": split, "stem": stem, "status": "ok", "instances": n}
            append_line(run / "manifest.jsonl", json.dumps(record))
    doc = labeler_run_json(taxonomy, class_name)
    atomic_write_json(run / "run.json", doc if run_json is None else run_json)
    return run
