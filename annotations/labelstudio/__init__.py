"""Label Studio's JSON: brush masks in its RLE, polygons and boxes in percent of the image.

Import reads the project export Label Studio calls "JSON": a list of tasks, each with ``data``
(the image's URL) and ``annotations`` (each a ``result`` list of regions). Export writes tasks
whose ``predictions`` hold the pseudo labels as brush masks (pre-annotations that Label Studio
shows for correction) and the labeling config they fit (:func:`label_config`).

Label Studio's own readers set what the pixels mean, and are matched here (read in
``label_studio_sdk/converter``, ``brush.py`` and ``converter.py``, and in the frontend's
``utils/canvas.js``):

* A brush region is its layer's RGBA pixels, row-major, packed with ``@thi.ng/rle-pack``
  (:func:`decode_rle`). A pixel belongs to the region where its alpha is non-zero: the frontend
  colours exactly those pixels, and the converter's brush -> COCO export traces them.
* A bitmask region (the ``BitmaskLabels`` tag, ``web/libs/editor/src/regions/BitmaskRegion.jsx``)
  is ``value.imageDataURL``, a PNG of the image's size painted black on transparent: a pixel
  belongs to it where its alpha is non-zero, as for a brush.
* A polygon's points are ``[x, y]`` in percent of the image's width and height; the converter's
  COCO export scales them to pixels (``x / 100 * width``) without a half-pixel shift, which is
  pycocotools' pixel-corner convention: the polygon is filled as a COCO polygon is.
* A rectangle is ``x, y, width, height`` in percent, its top-left corner, rotated by
  ``rotation`` degrees clockwise about that corner (Konva's rotation); an ellipse is its centre,
  ``radiusX``, ``radiusY`` and ``rotation`` about the centre. Neither draws an object's shape:
  like CVAT's rectangles they are read for the unannotated regions only. Label Studio's
  converter writes no pixels of an ellipse (its COCO export passes ellipses over), so an
  ellipse is traced as a 72-vertex polygon and filled as a COCO polygon.
* A keypoint marks no area: of the class it is refused, of the unannotated label passed over.

The modules, lowest first (each imports only those above it in this list):

* :mod:`~annotations.labelstudio.brush`: brush RLE and bitmask PNGs to and from masks;
* :mod:`~annotations.labelstudio.exporting`: tasks with brush predictions, image URLs and the
  labeling config;
* :mod:`~annotations.labelstudio.importing`: a project's export read into per-image masks.

Every name is importable from ``annotations.labelstudio`` as before.
"""

from __future__ import annotations

from annotations.labelstudio.brush import (
    bitmask_pixel_runs,
    bitmask_to_mask,
    brush_pixel_runs,
    brush_to_mask,
    decode_rle,
    decode_runs,
    encode_rle,
    mask_runs,
    mask_to_brush,
    paint_brush,
    window_to_brush,
)
from annotations.labelstudio.exporting import (
    BRUSH,
    IMAGE,
    LOCAL_FILES,
    POLYGON,
    image_url,
    label_config,
    to_labelstudio,
)
from annotations.labelstudio.importing import (
    _percent_points,
    annotations_of,
    is_labelstudio,
    labelstudio_tasks,
    labelstudio_to_masks,
    region_labels,
    submitted_annotation,
    task_image,
    tasks_of_json_min,
)

__all__ = [
    "BRUSH",
    "IMAGE",
    "LOCAL_FILES",
    "POLYGON",
    "_percent_points",
    "annotations_of",
    "bitmask_pixel_runs",
    "bitmask_to_mask",
    "brush_pixel_runs",
    "brush_to_mask",
    "decode_rle",
    "decode_runs",
    "encode_rle",
    "image_url",
    "is_labelstudio",
    "label_config",
    "labelstudio_tasks",
    "labelstudio_to_masks",
    "mask_runs",
    "mask_to_brush",
    "paint_brush",
    "region_labels",
    "submitted_annotation",
    "task_image",
    "tasks_of_json_min",
    "to_labelstudio",
    "window_to_brush",
]
