"""Export to Label Studio: a task per image whose ``predictions`` hold the pseudo labels as brush
regions (:func:`to_labelstudio`), the image's URL in the task (:func:`image_url`) and the
labeling config they fit (:func:`label_config`, whose tag names import reads too)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from annotations.instances import InstanceWindows, MaskWindow
from annotations.interchange import EXPORT_KEY, IGNORE_NAMES
from annotations.labelstudio.brush import window_to_brush

BRUSH, POLYGON = "brush", "polygon"  # from_name of the tags in :func:`label_config`
IMAGE = "image"  # the Image tag's name, and the task data's key for its URL
LOCAL_FILES = "/data/local-files/?d="  # Label Studio's route for its local-files storage


def image_url(image: Path | None, file_name: str, prefix: str | None) -> str:
    """The URL Label Studio loads an exported image from: ``prefix`` + its path in the split's
    image folder (``file_name``), or by default its absolute path through Label Studio's
    local-files storage with the document root ``/`` (``/data/local-files/?d=data/images/...``).
    Percent-encoded either way; a name that is not UTF-8 (``caf\\xe9.jpg`` from a latin-1
    system) as its own bytes, ``caf%E9.jpg``: it raised UnicodeEncodeError, and ``annotate
    export --format labelstudio`` wrote nothing."""
    if prefix is not None:
        if prefix and not prefix.endswith(("/", "=")):  # a folder's URL given without its "/"
            prefix += "/"
        return prefix + quote(file_name, errors="surrogateescape")
    if image is None:
        raise ValueError(
            f"image {file_name!r} is not in the dataset: give --image-url, the URL prefix "
            "Label Studio loads the split's images from"
        )
    return LOCAL_FILES + quote(image.resolve().as_posix().lstrip("/"), errors="surrogateescape")


def to_labelstudio(
    items: list[tuple[InstanceWindows, np.ndarray | None, str]],
    class_name: str,
    record: dict,
    model_version: str,
) -> list[dict]:
    """Label Studio tasks, one per image: ``data`` holds the image's URL and the exporter's
    record; ``predictions`` one pre-annotation whose regions are the instances as brush masks
    of ``class_name`` (with their scores) and the unannotated pixels as one brush region of
    ``unannotated``. Label Studio imports them into a project with :func:`label_config`.

    Args:
        items: per image, its instances, its unannotated pixels (a subset's) or None, its URL.
    """
    tasks = []
    for instances, unannotated, url in items:
        height, width = instances.image_size
        brushes = [
            (window, class_name, float(score))
            for window, score in zip(instances.windows, instances.scores, strict=True)
        ]
        if unannotated is not None:
            brushes.append((MaskWindow.from_full(unannotated), IGNORE_NAMES[0], None))
        regions = []
        for window, label, score in brushes:
            crop = window.crop()
            if crop.any():
                y0, x0 = window.box[:2]
                rle = window_to_brush(crop, y0, x0, height, width)
                regions.append(
                    _brush_region(f"r{len(regions)}", rle, (height, width), label, score)
                )
        prediction: dict = {"model_version": model_version, "result": regions}
        scores = [r["score"] for r in regions if "score" in r]
        if scores:
            prediction["score"] = round(float(np.mean(scores)), 5)
        tasks.append({"data": {IMAGE: url, EXPORT_KEY: record}, "predictions": [prediction]})
    return tasks


def _brush_region(
    region_id: str, rle: list[int], size: tuple[int, int], label: str, score: float | None
) -> dict:
    h, w = size
    region = {
        "id": region_id,
        "from_name": BRUSH,
        "to_name": IMAGE,
        "type": "brushlabels",
        "original_width": w,
        "original_height": h,
        "image_rotation": 0,
        "value": {"format": "rle", "rle": rle, "brushlabels": [label]},
    }
    if score is not None:
        region["score"] = round(score, 5)
    return region


def label_config(class_name: str) -> str:
    """The labeling config (XML) of a Label Studio project for these tasks: the image, a brush
    and a polygon tool, each with the class and ``unannotated`` (for what cannot be decided),
    and rectangles of ``unannotated``."""
    labels = "".join(
        f"\n    <Label value={quoteattr(name)} background={quoteattr(color)}/>"
        for name, color in ((class_name, "#e6194b"), (IGNORE_NAMES[0], "#808080"))
    )
    return (
        "<View>\n"
        f'  <Image name="{IMAGE}" value="${IMAGE}" zoom="true" zoomControl="true"/>\n'
        f'  <BrushLabels name="{BRUSH}" toName="{IMAGE}">{labels}\n  </BrushLabels>\n'
        f'  <PolygonLabels name="{POLYGON}" toName="{IMAGE}">{labels}\n  </PolygonLabels>\n'
        f'  <RectangleLabels name="box" toName="{IMAGE}">\n'
        f'    <Label value={quoteattr(IGNORE_NAMES[0])} background="#808080"/>\n'
        "  </RectangleLabels>\n"
        "</View>\n"
    )
