"""The true masks the simulated labeler starts from: a dataset's instance-id maps, or connected
components of its binary masks where it has none."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from annotations.labelmap import imread_unchanged, read_label
from annotations.taxonomy import class_folder


# -- truth files of a dataset ------------------------------------------------------------------
def read_instance_ids(path: str | os.PathLike) -> np.ndarray:
    """``(H, W) int32`` instance ids from a uint16 (or uint8) PNG; 0 = none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: true instance map not found")
    arr = imread_unchanged(path)  # any file name (cv2.imread crashed on one not UTF-8)
    if arr is None or arr.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel instance-id PNG")
    return arr.astype(np.int32)


def truth_paths(root: Path, class_name: str, split: str, stem: str) -> tuple[Path, Path]:
    """``(instance ids, binary mask)`` truth paths of a class, trying the name, then lower case,
    then any folder naming the same class (``Traffic light/`` for ``traffic light``, as
    ``engine report`` finds the truth it scores: :func:`annotations.taxonomy.class_folder`)."""
    for name in dict.fromkeys((class_name, class_name.lower())):
        inst = root / "new_class_instances" / name / split / f"{stem}.png"
        sem = root / "new_classes" / name / split / f"{stem}.png"
        if inst.is_file() or sem.is_file():
            return inst, sem
    inst_base, sem_base = root / "new_class_instances", root / "new_classes"
    return (
        inst_base / class_folder(inst_base, class_name) / split / f"{stem}.png",
        sem_base / class_folder(sem_base, class_name) / split / f"{stem}.png",
    )


def load_truth(root: Path, class_name: str, split: str, stem: str) -> np.ndarray:
    """True instance ids of one image: the instance map, or connected components of the
    binary truth mask when there is no instance map."""
    inst, sem = truth_paths(root, class_name, split, stem)
    if inst.is_file():
        return read_instance_ids(inst)
    if sem.is_file():
        comp, _ = ndimage.label(read_label(sem) == 1, structure=np.ones((3, 3)))
        return comp.astype(np.int32)
    raise FileNotFoundError(
        f"{inst}: the simulated labeler needs the true masks of {class_name!r} "
        f"(new_class_instances/ or new_classes/ in the dataset, as `engine synth` writes)"
    )
