"""How a source's files are read: binary masks (0/1/255) or full label maps holding the class's
id, chosen per folder, and the class's children a label map counts in it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotations.fileio import outputs_around
from annotations.taxonomy import Taxonomy
from engine.compare.config import CompareConfig
from engine.metrics import is_binary_mask
from engine.outputs import DEFAULT_TAXONOMY


def resolve_class(name: str, taxonomy: Taxonomy) -> tuple[str, int | None]:
    """The class's display name and id in ``taxonomy`` (None when it is not there: only binary
    masks can then be scored)."""
    if name in taxonomy:  # an id given was made a name by class_by_name
        c = taxonomy.get(name)
        return c.name, c.id
    return name.strip(), None


def resolve_input(
    label: np.ndarray,
    path: Path,
    class_id: int | None,
    mode: str,
    missing: str = "the class is not in the taxonomy",
) -> int:
    """The value that marks the class in this file: 1 for a binary mask, else the class id.

    ``auto`` reads a file holding only 0, 1 and 255 as a binary mask. (When the class id is 1
    both readings coincide; for another id, a full label map containing only classes 0 and 1
    would be misread: a folder an engine output records is read as ``labels``,
    :func:`_folder_mode`.) ``missing`` says which taxonomy lacks the class, for a full label map
    when ``class_id`` is None.
    """
    binary = mode == "binary" or (mode == "auto" and is_binary_mask(label))
    if binary:
        if mode == "binary" and not is_binary_mask(label):
            bad = sorted(set(np.unique(label).tolist()) - {0, 1, 255})[:10]
            raise ValueError(f"{path}: expected a binary mask (0/1/255), found values {bad}")
        return 1
    if class_id is None:
        raise ValueError(
            f"{path}: a full label map (values beyond 0/1/255), but {missing}; pass --taxonomy "
            "with the class, or binary masks"
        )
    return class_id


def children_outside(taxonomy: Taxonomy, class_id: int | None, other: Taxonomy) -> list[int]:
    """The classes of ``taxonomy`` carved out of ``class_id`` (directly or through another new
    class) that ``other`` does not have: a joint model's Bicycle and Car, when Others is scored
    against precise labels of the base classes, where a bicycle is Others."""
    if class_id is None:
        return []
    return [c.id for c in taxonomy if class_id in taxonomy.ancestors(c.id) and c.name not in other]


@dataclass(frozen=True)
class _Reading:
    """How one folder's files are read: the class's id in its taxonomy (None: not there, so
    only binary masks can be scored), the taxonomy, what an error says it lacks, and the
    ``--input`` mode its files are read in (:func:`_folder_mode`)."""

    class_id: int | None
    taxonomy: Taxonomy
    lacks: str
    mode: str


# engine outputs whose label maps are binary masks (0/1/255): an annotated subset, a label run
BINARY_RECORDS = ("subset.json", "run.json")


def binary_output(folder: Path) -> tuple[Path, str] | None:
    """``(root, record)`` of the label run or annotated subset whose masks ``folder`` holds: the
    nearest engine output around it (:func:`outputs_around`) when ``folder`` is a run, its
    ``labels`` or ``labels/<split>``, or a subset's root or ``masks``; None otherwise. Any
    folder lying in one was taken for its masks: predictions written to ``RUN/pred`` (engine
    predict allows it, predict.json nearer) and a user's own masks kept in ``RUN/car_manual``
    were refused as the run's class and read as binary masks."""
    folder = Path(folder)
    near = next(iter(outputs_around(folder)), None)
    if near is None or near[1] not in BINARY_RECORDS:
        return None
    root, record = near
    if record == "subset.json":
        return near if folder in (root, root / "masks") else None
    return near if root / "labels" in (folder, folder.parent) or folder == root else None


def _folder_mode(cfg: CompareConfig, source: str, folder: Path) -> str:
    """``--input`` for one folder: ``auto`` is ``labels`` where an engine output records the
    folder's taxonomy (:func:`~engine.compare.classes.folder_classes`: predictions, a fused
    dataset's labels), which writes full label maps only; read file by file, a prediction holding
    only Others and Human (0 and 1) was taken for a binary mask and its Human pixels scored as the
    class. A subset's masks or a label run's labels stay ``auto`` (binary) wherever they are (a
    subset imported into a fused dataset's folder finds its taxonomy above)."""
    recorded = cfg.taxonomy is None and source != DEFAULT_TAXONOMY
    binary = binary_output(folder) is not None
    return "labels" if cfg.input == "auto" and recorded and not binary else cfg.input
