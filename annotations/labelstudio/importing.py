"""Import from Label Studio: a project's "JSON" (or "JSON-MIN") export read into per-image masks
of the class (:func:`labelstudio_to_masks`): each task's image and submitted annotation, and
its regions (brush, bitmask, polygon, rectangle, ellipse) drawn as Label Studio's readers
draw them."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from annotations.fileio import read_json
from annotations.interchange import (
    EXPORT_KEY,
    ImageMask,
    as_read,
    check_size,
    export_record,
    label_role,
    name_stem,
    split_stem,
)
from annotations.labelstudio.brush import bitmask_pixel_runs, brush_pixel_runs, paint_brush
from annotations.labelstudio.exporting import IMAGE
from annotations.numbers import image_hw, image_side
from annotations.polygons import coco_polygons_rle, ellipse_outline, outline, turned

log = logging.getLogger(__name__)
# result types that are regions
_SHAPE_TYPES = ("brush", "bitmask", "polygon", "rectangle", "ellipse")


def is_labelstudio(doc: object) -> bool:
    """Whether a parsed JSON document is Label Studio's "JSON" export (a list of tasks, objects
    with ``data``) or its "JSON-MIN" one (a row per annotation, with ``annotation_id``)."""
    return (
        isinstance(doc, list)
        and bool(doc)
        and all(isinstance(t, dict) for t in doc)
        and (isinstance(doc[0].get("data"), dict) or _is_json_min(doc))
    )


def _is_json_min(doc: list[dict]) -> bool:
    return all("annotation_id" in row and "data" not in row for row in doc)


# what a JSON-MIN row holds besides the task's data and its regions (the converter's
# ``convert_to_json_min``: the task id, then the annotation's own fields)
_JSON_MIN_FIELDS = ("id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time",
                    "agreement", "history", "was_cancelled")  # fmt: skip


def tasks_of_json_min(rows: list[dict]) -> list[dict]:
    """Label Studio's "JSON-MIN" export as the tasks of its "JSON" export. A row is a task's
    data, its id, one annotation's fields, and per control tag (``from_name``) the list of that
    annotation's region values, each with its labels key (``brushlabels``, ...), which names the
    region's type, and the image's size. A task annotated twice is two rows; a task without an
    annotation is a row whose ``annotation_id`` is null."""
    tasks: dict[object, dict] = {}
    for k, row in enumerate(rows):
        data, result = {}, []
        for key, value in row.items():
            if key in _JSON_MIN_FIELDS:
                continue
            if isinstance(value, list) and value and all(_is_min_region(v) for v in value):
                result += [_min_region(key, v) for v in value]
            else:
                data[key] = value
        task_id = row.get("id", f"row {k}")
        task = tasks.setdefault(task_id, {"id": task_id, "data": data, "annotations": []})
        if row.get("annotation_id") is not None:
            task["annotations"].append({"id": row["annotation_id"], "result": result})
    return list(tasks.values())


def labelstudio_tasks(doc: list[dict]) -> list[dict]:
    """The tasks of a Label Studio export: its own list, or JSON-MIN's rows as tasks."""
    return tasks_of_json_min(doc) if _is_json_min(doc) else doc


def annotations_of(task: dict) -> list:
    """A task's annotations ("completions" in exports of Label Studio before 1.0, as its
    converter still reads them)."""
    return task.get("annotations") or task.get("completions") or []


def _is_min_region(value: object) -> bool:
    return isinstance(value, dict) and any(str(k).endswith("labels") for k in value)


def _min_region(from_name: str, value: dict) -> dict:
    rtype = next(k for k in value if str(k).endswith("labels"))
    sizes = {k: value[k] for k in ("original_width", "original_height") if k in value}
    inner = {k: v for k, v in value.items() if k not in sizes}
    return {"from_name": from_name, "type": rtype, "value": inner, **sizes}


def labelstudio_to_masks(
    path: str | os.PathLike,
    class_name: str,
    sizes: dict[str, tuple[int, int]],
    doc: object = None,
    each: Callable[[ImageMask], Any] = as_read,
) -> list[Any]:
    """Read Label Studio's "JSON" export (or its "JSON-MIN" one, :func:`tasks_of_json_min`):
    one mask per task that has a submitted annotation.

    A task's annotation is its one submitted (not skipped) annotation, or the one marked ground
    truth where there are several; a task with none is left out, in a warning (not annotated
    yet: an empty result list is an annotation, of an image without the class). Regions of the
    class become 1, of the unannotated labels 255 (over the class), of other labels are left out
    and counted; the image's stem is read from its URL (a local-files ``?d=`` path, an upload
    with its prefix, any URL's path).

    Args:
        sizes: ``stem -> (H, W)`` of the dataset split's images; every task's image must be one
            of them, at that size.
        doc: the file's parsed JSON, when the caller read it already.
        each: what to keep of each image, made of it as soon as its mask is painted (the
            masks of the other tasks are not held meanwhile).
    """
    path = Path(path)
    doc = read_json(path, "annotation file") if doc is None else doc
    if not is_labelstudio(doc):
        raise ValueError(
            f"{path}: not a Label Studio JSON export (a list of tasks with 'data' and "
            "'annotations', or JSON-MIN's rows with 'annotation_id')"
        )
    doc = labelstudio_tasks(doc)
    found: list[Any] = []
    waiting: list[str] = []
    for k, task in enumerate(doc):
        place = f"task {task.get('id', k)}"
        where = f"{path}: {place}"
        url = task_image(task, where)
        annotation = submitted_annotation(task, f"{where} ({url})")
        if annotation is None:
            waiting.append(name_stem(url, sizes))
            continue
        stem = split_stem(url, sizes)
        if annotation.get("id") is not None:  # what Label Studio shows beside the task's id
            place = f"{place}: annotation {annotation['id']}"
        mask = _annotation_mask(annotation, stem, class_name, sizes, path, f"{path}: {place}")
        mask.place = place  # among hundreds of tasks, the one to open
        mask.export = export_record(task["data"])
        found.append(each(mask))
        del mask
    if not found:
        raise ValueError(
            f"{path}: none of its {len(doc)} tasks has a submitted annotation (predictions are "
            "pre-annotations, not corrections): submit the corrected tasks, then export again"
        )
    if waiting:
        log.warning(
            "%s: %d of %d tasks have no submitted annotation (not annotated yet, or skipped), "
            "left out: %s%s",
            path,
            len(waiting),
            len(doc),
            ", ".join(waiting[:5]),
            ", ..." if len(waiting) > 5 else "",
        )
    return found


def task_image(task: dict, where: str) -> str:
    """The URL of a task's image: ``data["image"]``, or the one string value of its data."""
    data = task.get("data")
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a task without 'data' (its image's URL)")
    if isinstance(data.get(IMAGE), str):
        return data[IMAGE]
    strings = [v for key, v in data.items() if isinstance(v, str) and key != EXPORT_KEY]
    if len(strings) != 1:
        raise ValueError(
            f"{where}: cannot tell the image from the task data's keys {sorted(data)}; "
            "name it 'image'"
        )
    return strings[0]


def submitted_annotation(task: dict, where: str) -> dict | None:
    """The task's annotation to import: its one submitted (not skipped) annotation, or the one
    marked ground truth among several (``ValueError`` naming ``where`` otherwise); None when it
    has none."""
    listed = annotations_of(task)
    if not isinstance(listed, list):  # an edited file's "annotations": 1 was a traceback
        raise ValueError(f"{where}: 'annotations' is not a list, got {listed!r:.40}")
    annotations = [
        a
        for a in listed
        if isinstance(a, dict) and not (a.get("was_cancelled") or a.get("skipped"))
    ]
    if len(annotations) > 1:
        truth = [a for a in annotations if a.get("ground_truth")]
        if len(truth) != 1:
            ids = ", ".join(str(a.get("id")) for a in annotations)
            raise ValueError(
                f"{where}: {len(annotations)} submitted annotations (ids {ids}); mark the one "
                "to import as ground truth in Label Studio, or delete the others"
            )
        annotations = truth
    return annotations[0] if annotations else None


def _check_one_side(results: list, hw: tuple[int, int], where: str) -> None:
    """A region giving one side of its image only (``original_width`` without
    ``original_height``, or the other way: Label Studio writes both; an export edited or cut)
    is not read for the size, but the side it gives must be the image's: one of another width
    was drawn on another image, and its percents were drawn on this one without a word."""
    for k, r in enumerate(results):
        given = [s for s in ("original_height", "original_width") if isinstance(r, dict) and s in r]
        if len(given) != 1:
            continue
        side = given[0]
        where_r = f"{where}: region {_region_name(r, k)}: {side}"
        try:
            said = image_side(r[side])
        except ValueError as e:
            raise ValueError(f"{where_r} {e}") from None
        if said != (image := hw[side == "original_width"]):
            other = "original_height" if side == "original_width" else "original_width"
            raise ValueError(
                f"{where_r} {said}, but the image's is {image} (and no {other} given): a region "
                "of another image, or a size edited?"
            )


def _annotation_mask(
    annotation: dict,
    stem: str,
    class_name: str,
    sizes: dict[str, tuple[int, int]],
    path: Path,
    where: str,
) -> ImageMask:
    results = annotation.get("result") or []
    if not isinstance(results, list):
        raise ValueError(f"{where}: 'result' is not a list")
    hw = first = None
    for k, r in enumerate(results):  # every region carries the image's size: one size
        if isinstance(r, dict) and "original_width" in r and "original_height" in r:
            where_r = f"{where}: region {_region_name(r, k)}: "  # int() read 64.7 as 64
            said = image_hw(r, "original_width", "original_height", where_r)
            if hw is None:
                hw, first = said, _region_name(r, k)
            elif said != hw:  # before the 53rd round only the first was read: drawn at its scale
                raise ValueError(
                    f"{where}: region {_region_name(r, k)} is of a {said[1]}x{said[0]} image, "
                    f"region {first} of a {hw[1]}x{hw[0]} one: a task's regions are of its one "
                    "image (regions of two images mixed, or a size edited?)"
                )
    hw = hw or sizes.get(stem, (0, 0))  # no region says: the dataset's (a stem not there fails)
    check_size(where, stem, hw, sizes)  # among hundreds of tasks, the one to open
    _check_one_side(results, hw, where)
    h, w = hw
    image = ImageMask(stem, np.zeros(hw, np.uint8), str(path))
    rles: dict[int, list[dict]] = {1: [], 255: []}
    brushes: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {1: [], 255: []}
    for k, r in enumerate(results):
        if not isinstance(r, dict):
            raise ValueError(f"{where}: a result that is not an object, got {r!r:.40}")
        kind, labels = region_labels(r)
        if kind is None:
            continue  # choices, text areas, ratings, relations: not regions
        value = r.get("value")
        if not isinstance(value, dict):
            raise ValueError(
                f"{where}: {kind} region {_region_name(r, k)} without a 'value' object"
            )
        role = _role(labels, class_name)
        here = f"{where}: {kind} region {_region_name(r, k)}"
        if role == 0:
            for label in labels or ["(no label)"]:
                image.count_other(str(label))
            continue
        for label in labels:
            image.saw(str(label), label_role(str(label), class_name))
        try:
            rotation = float(r.get("image_rotation") or 0)
            if not math.isfinite(rotation):  # 'inf' was said to be drawn on a rotated image
                raise ValueError(rotation)
        except (TypeError, ValueError):  # a list or a word: a traceback, or a line naming no file
            raise ValueError(
                f"{here}: image_rotation {r.get('image_rotation')!r:.40} is not a number"
            ) from None
        if rotation % 360:
            raise ValueError(f"{here}: drawn on the image rotated in Label Studio; not read")
        if kind == "brush":
            if value.get("format", "rle") != "rle":
                raise ValueError(f"{here}: brush format {value.get('format')!r}, not 'rle'")
            try:
                brushes[role].append(brush_pixel_runs(value.get("rle"), h, w))
            except ValueError as e:
                raise ValueError(f"{here}: {e}") from None
        elif kind == "bitmask":
            try:
                brushes[role].append(bitmask_pixel_runs(value.get("imageDataURL"), h, w))
            except ValueError as e:
                raise ValueError(f"{here}: {e}") from None
        elif kind == "polygon":
            points = _percent_points(value.get("points"), w, h, here)
            rles[role].append(coco_polygons_rle(outline([points], here), h, w, here))
        elif kind in ("rectangle", "ellipse") and role == 255:
            rles[role].append(
                coco_polygons_rle([_region_outline(kind, value, w, h, here)], h, w, here)
            )
        elif kind == "keypoint" and role == 255:
            continue  # a point marks no area: passed over, as CVAT's points of unannotated are
        else:
            named = class_name if role == 1 else _unannotated_label(labels, class_name)
            raise ValueError(
                f"{here}: a {kind} of {named!r} is no mask: draw the object with the brush, "
                "the bitmask or as a polygon (rectangles and ellipses are read for unannotated "
                "regions only)"
            )
    # not paint_roles: a brush is painted from its runs over the rows it spans, where encoding
    # it for pycocotools' merge would cost ~10 ms a region at 4032x3024 (and decoding its 4 H W
    # values, 33 M at 3840x2160, 0.4 s)
    for role in (1, 255):  # the class first: 255 wins over it
        inside = np.zeros(hw, bool)
        if rles[role]:
            inside |= coco_mask.decode(coco_mask.merge(rles[role])) > 0
        for runs in brushes[role]:
            paint_brush(inside, runs)
        image.mask[inside] = role
    return image


def _region_name(result: dict, index: int) -> str:
    """A region as an error names it: its id, else its place in the result list."""
    return str(result["id"]) if result.get("id") is not None else f"#{index}"


def region_labels(result: dict) -> tuple[str | None, list]:
    """A result's region kind (``brush``, ``polygon``, ``rectangle``, ``keypoint``, ...) and
    labels; kind None for results that are no region (choices, text, ratings, relations)."""
    rtype = str(result.get("type", "")).lower()
    if not (rtype.endswith("labels") or rtype in _SHAPE_TYPES):
        return None, []
    value = result.get("value") if isinstance(result.get("value"), dict) else {}
    labels = value.get(rtype) or value.get("labels") or []
    kind = rtype.removesuffix("labels")
    if not kind:  # a <Labels> tag's result: the region's fields tell its shape
        fields = (
            ("rle", "brush"),
            ("imageDataURL", "bitmask"),
            ("points", "polygon"),
            ("radiusX", "ellipse"),
            ("height", "rectangle"),
            ("width", "keypoint"),  # x, y and its display size (before, told a rectangle)
        )
        kind = next((shape for key, shape in fields if key in value), "labels")
    return kind, labels if isinstance(labels, list) else [labels]


def _role(labels: list, class_name: str) -> int:
    """1 when a region's labels (:func:`region_labels`, a list) name the class, else 255 when
    they name an unannotated one, else 0 (another class's, or unlabelled)."""
    roles = {label_role(str(label), class_name) for label in labels}
    return 1 if 1 in roles else 255 if 255 in roles else 0


def _unannotated_label(labels: list, class_name: str) -> str:
    """The label by which a region of role 255 (:func:`_role`) is unannotated, as written."""
    return next(str(v) for v in labels if label_role(str(v), class_name) == 255)


def _percent_points(points: object, width: int, height: int, where: str) -> np.ndarray:
    try:
        xy = np.asarray(points, np.float64)
    except (TypeError, ValueError):
        xy = np.zeros(0)
    if xy.ndim != 2 or xy.shape[1] != 2 or not np.isfinite(xy).all():
        raise ValueError(f"{where}: 'points' must be [x, y] pairs in percent, got {points!r:.60}")
    return xy / 100 * [width, height]  # the converter's x / 100 * width, to the last bit


def _region_outline(kind: str, value: dict, width: int, height: int, where: str) -> np.ndarray:
    """A rectangle's corners (turned about its top-left corner) or an ellipse's outline (about
    its centre), in pixels."""
    keys = (
        ("x", "y", "width", "height") if kind == "rectangle" else ("x", "y", "radiusX", "radiusY")
    )
    try:
        x, y, a, b = (float(value[k]) for k in keys)
        degrees = float(value.get("rotation") or 0)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: needs numbers {', '.join(keys)} (percent)") from None
    x, a = x * width / 100, a * width / 100
    y, b = y * height / 100, b * height / 100
    if kind == "ellipse":
        return ellipse_outline(x, y, a, b, degrees)
    corners = np.array([[x, y], [x + a, y], [x + a, y + b], [x, y + b]])
    return turned(corners, degrees, np.array([x, y]))
