"""Ultralytics YOLO segmentation labels: one ``<image stem>.txt`` per image, a line per object.

A line is a class index and a polygon, ``c x1 y1 x2 y2 ...``, its coordinates normalised by the
image's width and height (Roboflow, CVAT, X-AnyLabeling and Ultralytics' own ``convert_coco``
write them so); a line of 4 coordinates is a detection box ``c cx cy w h``. The class names
are in the dataset's ``data.yaml`` (``names``: a list, or a dict of index to name) or a
``classes.txt`` beside the labels.

Ultralytics' ``convert_coco`` divides COCO polygon coordinates by the image size, so a vertex
``(x, y)`` here is the COCO vertex ``(x * W, y * H)``: the polygon is filled as COCO polygons
are (pycocotools, pixel corners). Boxes are read for unannotated regions only, as COCO boxes are.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from annotations.fileio import read_text, read_yaml
from annotations.interchange import ImageMask, check_size, dataset_stem, label_role, paint_roles
from annotations.polygons import coco_polygons_rle

NAME_FILES = ("data.yaml", "dataset.yaml", "classes.txt", "obj.names")


MAX_CLASSES = 100_000  # a data.yaml's names by index: far more than any dataset has


def looks_like_yolo(path: Path) -> bool:
    """Whether a ``.txt`` file reads as YOLO labels: every line (of the first 20) a class index
    and numbers; an empty file too (an image without objects). Not a names file."""
    if path.name in NAME_FILES:
        return False
    try:  # as import reads it: a byte-order mark (Notepad) or UTF-16 (PowerShell) too
        lines = [line.split() for line in read_text(path, "label file").splitlines()[:20]]
    except (OSError, ValueError):
        return False
    for values in (v for v in lines if v):
        try:
            [float(x) for x in values[1:]]
        except ValueError:
            return False
        if not values[0].isdigit():
            return False
    return True


def yolo_label_folders(root: Path) -> list[Path]:
    """The label folders of a YOLO dataset given by its root (a ``data.yaml`` or other names
    file there), as annotation tools download one: Ultralytics' and CVAT's ``labels/`` or
    ``labels/<subset>/`` (CVAT's "Ultralytics YOLO" zip: ``data.yaml``, ``train.txt``,
    ``images/train/``, ``labels/train/``), Roboflow's ``<subset>/labels/``. Empty for any other
    folder."""
    if not root.is_dir() or not any((root / name).is_file() for name in NAME_FILES):
        return []
    labels = root / "labels"
    candidates = [labels, *sorted(labels.glob("*")), *sorted(root.glob("*/labels"))]
    return list(
        dict.fromkeys(
            d
            for d in candidates
            if d.is_dir()
            and not d.name.startswith((".", "__MACOSX"))
            and any(f.suffix.lower() == ".txt" and f.is_file() for f in d.iterdir())
        )
    )


def find_class_names(labels: Path) -> tuple[Path, list[str]]:
    """The class names for YOLO labels in the folder ``labels``: from a ``data.yaml`` (or
    ``dataset.yaml``, ``classes.txt``, ``obj.names``) in it or up to three folders above it
    (Ultralytics: ``ROOT/labels/test``; Roboflow: ``ROOT/test/labels``). ``FileNotFoundError``
    naming the folders searched when there is none."""
    folders = [labels, *list(labels.resolve().parents)[:3]]
    for folder in folders:
        for name in NAME_FILES:
            if (folder / name).is_file():
                return folder / name, read_class_names(folder / name)
    raise FileNotFoundError(
        f"{labels}: no data.yaml or classes.txt naming the classes here or in the 3 folders "
        "above; put the dataset's data.yaml beside the labels"
    )


def read_class_names(path: Path) -> list[str]:
    """``names`` of a data.yaml (a list, or a dict of index to name), or one name a line of a
    classes.txt / obj.names."""
    if path.suffix in (".yaml", ".yml"):
        doc = read_yaml(path, "class names file")
        names = doc.get("names") if isinstance(doc, dict) else None
        if isinstance(names, dict):
            try:
                indexed = {int(k): str(v) for k, v in names.items()}
            except (TypeError, ValueError):
                raise ValueError(f"{path}: 'names' keys must be class indices") from None
            wrong = [
                i for i in indexed if not 0 <= i < MAX_CLASSES
            ]  # gaps are filled in: no 10**10
            if wrong:
                raise ValueError(
                    f"{path}: 'names' key {wrong[0]} is not a class index (0 to {MAX_CLASSES - 1})"
                )
            return [indexed.get(i, f"class {i}") for i in range(max(indexed, default=-1) + 1)]
        if not isinstance(names, list):
            raise ValueError(f"{path}: no 'names' list or dict of the classes")
        return [str(n) for n in names]
    return [
        line.strip() for line in read_text(path, "class names file").splitlines() if line.strip()
    ]


def yolo_to_mask(
    path: str | os.PathLike,
    class_name: str,
    names: list[str],
    sizes: dict[str, tuple[int, int]],
) -> ImageMask:
    """One YOLO label file as an ``(H, W) uint8`` mask (1 = class, 0 = not, 255 = unannotated);
    objects of other classes are counted as left out. The image's size is the dataset's."""
    path = Path(path)
    stem = dataset_stem(path.stem, sizes)
    check_size(path, stem, sizes.get(stem, (0, 0)), sizes)  # an image the split lacks: named
    h, w = sizes[stem]
    image = ImageMask(stem, np.zeros((h, w), np.uint8), str(path))
    rles: dict[int, list[dict]] = {1: [], 255: []}
    for k, line in enumerate(read_text(path, "label file").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {k}"
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            raise ValueError(f"{where}: not numbers: {line.strip()!r:.60}") from None
        index = values[0]
        if not 0 <= index < len(names) or index != int(index):  # NaN, inf: named too
            raise ValueError(f"{where}: class {values[0]:g} is not one of the {len(names)} named")
        name = names[int(index)]
        role = label_role(name, class_name)
        if role is None:
            image.count_other(name)
            continue
        image.saw(name, role)
        coords = np.asarray(values[1:], np.float64)
        outside = coords[~((coords >= 0) & (coords <= 1))]  # NaN included
        if outside.size:  # pixels, or a file of another format: Ultralytics refuses it too
            raise ValueError(
                f"{where}: coordinate {outside[0]:g} is not in 0..1: YOLO labels are normalised "
                "by the image's width and height"
            )
        if coords.size == 4:  # a detection box: cx, cy, width, height
            if role == 1:
                raise ValueError(
                    f"{where}: a box of {name!r} is no mask: label the object as a polygon "
                    "(boxes are read for unannotated regions only)"
                )
            cx, cy, bw, bh = coords * [w, h, w, h]
            points = np.array([[cx - bw / 2, cy - bh / 2], [cx + bw / 2, cy - bh / 2],
                               [cx + bw / 2, cy + bh / 2], [cx - bw / 2, cy + bh / 2]])  # fmt: skip
        elif coords.size >= 6 and coords.size % 2 == 0 and np.isfinite(coords).all():
            points = coords.reshape(-1, 2) * [w, h]
        else:
            raise ValueError(
                f"{where}: {coords.size} coordinates: a polygon has an even number, at least 6 "
                "(x y pairs), a box 4"
            )
        rle = coco_polygons_rle([points], h, w)
        if rle is not None:
            rles[role].append(rle)
    paint_roles(image.mask, rles)
    return image
