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
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as coco_mask

from annotations.fileio import first_line, read_json
from annotations.instances import InstanceWindows, MaskWindow
from annotations.interchange import (
    EXPORT_KEY,
    IGNORE_NAMES,
    ImageMask,
    as_read,
    check_size,
    export_record,
    label_role,
    name_stem,
    split_stem,
)
from annotations.labelmap import PIL_ERRORS
from annotations.numbers import image_hw, image_side
from annotations.polygons import coco_polygons_rle, ellipse_outline, outline, turned

log = logging.getLogger(__name__)

# the fields of a ``@thi.ng/rle-pack`` stream: 32-bit value count, word size - 1 (5 bits), four
# run-length field sizes - 1 (4 bits each); Label Studio's frontend and converter use 8 / 3,4,8,16
_WORD = 8
_RUN_BITS = (3, 4, 8, 16)
_HEADER_BITS = 32 + 5 + 4 * 4
_TO_ASCII = bytes.maketrans(b"\x00\x01", b"01")

BRUSH, POLYGON = "brush", "polygon"  # from_name of the tags in :func:`label_config`
IMAGE = "image"  # the Image tag's name, and the task data's key for its URL
LOCAL_FILES = "/data/local-files/?d="  # Label Studio's route for its local-files storage
# result types that are regions
_SHAPE_TYPES = ("brush", "bitmask", "polygon", "rectangle", "ellipse")


# -- the RLE of brush masks --------------------------------------------------------------------
def decode_rle(rle: Sequence[int] | bytes | np.ndarray) -> np.ndarray:
    """A ``@thi.ng/rle-pack`` stream (Label Studio's ``value.rle``, a list of byte values) ->
    its values, ``(n,)`` unsigned integers of its word size (``uint8`` in Label Studio's).
    ``ValueError`` on a stream that is not one: a value outside 0..255, or a stream that ends
    before its count of values.

    The stream is a header (value count, word size, four run-length field sizes) and records:
    a flag bit, a 2-bit index into the field sizes, a run length - 1 in that many bits, then
    one word repeated (flag 1) or that many words (flag 0). The converter's ``decode_rle``
    reads it bit by bit in Python; this reads each field with ``int(bits, 2)`` from a bit
    string numpy makes and builds the values with one ``np.repeat``: the same values, in a
    seventh of the time at 4032x3024 (docs/annotate.md, the Label Studio section).
    """
    values, lengths = decode_runs(rle)
    return np.repeat(values, lengths)


def decode_runs(rle: Sequence[int] | bytes | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A ``@thi.ng/rle-pack`` stream's values as runs, ``(values, lengths)``, whose
    ``np.repeat`` is :func:`decode_rle`'s values (the same errors): a brush of a 3840x2160
    image is 33 M values, where its runs are a few per row of its object."""
    raw = np.frombuffer(rle, np.uint8) if isinstance(rle, bytes | bytearray) else np.asarray(rle)
    if raw.ndim != 1 or (
        raw.size and (raw.dtype.kind not in "iu" or raw.min() < 0 or raw.max() > 255)
    ):
        raise ValueError("an RLE is a list of byte values (0..255)")
    bits = np.unpackbits(raw.astype(np.uint8)).tobytes().translate(_TO_ASCII)
    if len(bits) < _HEADER_BITS:
        raise ValueError(f"an RLE of {raw.size} bytes is shorter than its header")
    num = int(bits[:32], 2)
    word = int(bits[32:37], 2) + 1
    sizes = [int(bits[37 + 4 * k : 41 + 4 * k], 2) + 1 for k in range(4)]
    values: list[int] = []
    lengths: list[int] = []
    i, p = 0, _HEADER_BITS

    def need(upto: int) -> None:
        if upto > len(bits):
            raise ValueError(f"the RLE ends after {i:,} of its {num:,} values")

    while i < num:
        need(p + 3)
        size = sizes[int(bits[p + 1 : p + 3], 2)]
        need(p + 3 + size)
        n = int(bits[p + 3 : p + 3 + size], 2) + 1
        repeat = bits[p] == 49  # b"1"
        p += 3 + size
        need(p + (1 if repeat else n) * word)
        if repeat:
            values.append(int(bits[p : p + word], 2))
            lengths.append(n)
            p += word
        else:  # n literal words (many: at once through numpy)
            if n < 16:
                values.extend(int(bits[q : q + word], 2) for q in range(p, p + n * word, word))
            else:
                digits = np.frombuffer(bits[p : p + n * word], np.uint8).reshape(n, word) - 48
                values.extend((digits @ (1 << np.arange(word - 1, -1, -1))).tolist())
            lengths.extend([1] * n)
            p += n * word
        i += n
    dtype = np.uint8 if word <= 8 else np.uint16 if word <= 16 else np.uint32
    # the last record may run past the count (a repeat, or literal words): cut the runs there
    counts = np.asarray(lengths, np.int64)
    begins = np.cumsum(counts) - counts
    keep = begins < num
    counts = counts[keep]
    if counts.size:
        counts[-1] = num - begins[keep][-1]
    return np.asarray(values, dtype)[keep], counts


def encode_rle(values: np.ndarray, lengths: np.ndarray) -> list[int]:
    """Runs of byte ``values`` (each ``lengths`` long) -> a ``@thi.ng/rle-pack`` stream as
    Label Studio stores it (word size 8, run fields of 3, 4, 8 and 16 bits), one repeat record
    per run (runs over 65,536 split)."""
    values = np.asarray(values, np.int64)
    lengths = np.asarray(lengths, np.int64)
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError("brush values are bytes (0..255)")
    if lengths.size and lengths.min() < 1:
        raise ValueError("run lengths must be positive")
    cap = 1 << _RUN_BITS[-1]
    chunks = -(-lengths // cap)  # a run longer than a 16-bit field: full records, then the rest
    values = np.repeat(values, chunks)
    runs = np.full(int(chunks.sum()), cap, np.int64)
    runs[np.cumsum(chunks) - 1] = lengths - (chunks - 1) * cap
    total = int(lengths.sum())
    if total >= 1 << 32:
        raise ValueError(f"an RLE holds fewer than 2**32 values, not {total:,}")
    index = np.searchsorted(1 << np.asarray(_RUN_BITS[:3]), runs - 1, side="right")
    field = np.asarray(_RUN_BITS)[index]
    code = (1 << (2 + field + _WORD)) | (index << (field + _WORD)) | ((runs - 1) << _WORD) | values
    width = 3 + field + _WORD  # flag, index, run length, word
    bits = np.unpackbits(code.astype(">u4").view(np.uint8)).reshape(-1, 32)
    body = bits[np.arange(32) >= (32 - width)[:, None]]  # each record's own bits, in order
    header = f"{total:032b}{_WORD - 1:05b}" + "".join(f"{b - 1:04b}" for b in _RUN_BITS)
    stream = np.concatenate([np.frombuffer(header.encode(), np.uint8) - 48, body])
    return np.packbits(stream).tolist()  # zero bits pad the last byte


def mask_to_brush(mask: np.ndarray) -> list[int]:
    """``(H, W)`` bool mask -> a brush region's ``rle``: its RGBA pixels, all four channels 255
    inside and 0 outside, as Label Studio's brush exporter writes them (grey, alpha = coverage).
    Built from the mask's runs (each four values long), never the 4x larger pixel array."""
    flat = np.asarray(mask, bool).ravel()
    if flat.size == 0:
        return encode_rle(np.zeros(0), np.zeros(0))
    return _runs_to_brush(*mask_runs(flat), flat.size)


def window_to_brush(crop: np.ndarray, y0: int, x0: int, height: int, width: int) -> list[int]:
    """:func:`mask_to_brush` of an ``(height, width)`` mask that is zero outside the window
    ``crop (h, w)`` at row ``y0``, column ``x0``, without the full-size mask: the same stream."""
    crop = np.asarray(crop, bool)
    h, w = crop.shape
    if height * width == 0:
        return encode_rle(np.zeros(0), np.zeros(0))
    # the window's runs, cut at its rows' ends: rows that meet in the window do not in the
    # image, unless the window spans its width
    first, stop = _cut_at_rows(*mask_runs(crop.ravel()), w)
    rows, cols = np.divmod(first, w)
    starts = (y0 + rows) * width + x0 + cols
    stops = starts + (stop - first)
    joined = np.flatnonzero(starts[1:] == stops[:-1])  # a full-width window's rows meet
    return _runs_to_brush(np.delete(starts, joined + 1), np.delete(stops, joined), height * width)


def _cut_at_rows(first: np.ndarray, stop: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major runs ``first``..``stop`` of an image ``width`` wide, cut where a row ends."""
    row_first, row_last = first // width, (stop - 1) // width
    if not (row_last > row_first).any():
        return first, stop
    k = row_last - row_first + 1  # rows each run touches
    run = np.repeat(np.arange(first.size), k)
    row = row_first[run] + np.arange(run.size) - np.repeat(np.cumsum(k) - k, k)
    return np.maximum(first[run], row * width), np.minimum(stop[run], (row + 1) * width)


def mask_runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A flat bool array's runs of ones, ``(starts, stops)``. The array is padded with a zero
    at each end in int8: ``np.diff(..., prepend=0, append=0)`` padded it with int64 zeros, so it
    made two int64 copies, 16 bytes a pixel (a full-size bitmask's runs at 3840x2160: 130 MB)."""
    padded = np.zeros(flat.size + 2, np.int8)
    padded[1:-1] = flat
    edges = np.flatnonzero(np.diff(padded))
    return edges[::2], edges[1::2]


def _runs_to_brush(starts: np.ndarray, stops: np.ndarray, size: int) -> list[int]:
    """The brush stream of ``size`` pixels whose runs of ones are ``starts``..``stops``."""
    edges = np.stack([starts, stops], axis=1).ravel()
    bounds = np.concatenate(([0], edges, [size]))
    lengths = np.diff(bounds)
    values = np.tile([0, 255], starts.size + 1)[: lengths.size]
    keep = lengths > 0  # a mask that starts or ends with its class
    return encode_rle(values[keep], lengths[keep] * 4)


def brush_to_mask(rle: object, height: int, width: int) -> np.ndarray:
    """A brush region's ``rle`` -> ``(H, W)`` bool: the pixels of non-zero alpha.
    ``ValueError`` when it is no RLE of an image of that size."""
    mask = np.zeros((height, width), bool)
    paint_brush(mask, brush_pixel_runs(rle, height, width))
    return mask


def brush_pixel_runs(rle: object, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A brush region's ``rle`` -> its pixels of non-zero alpha as runs of the row-major
    image, ``(starts, stops)``, read from the stream's runs without its ``4 H W`` values.
    ``ValueError`` when it is no RLE of an image of that size."""
    if not isinstance(rle, list | bytes | bytearray):
        raise ValueError(f"'rle' must be a list of byte values, got {type(rle).__name__}")
    values, lengths = decode_runs(rle)
    if (total := int(lengths.sum())) != height * width * 4:
        raise ValueError(
            f"the brush RLE holds {total:,} values, not the {height * width * 4:,} of a "
            f"{width}x{height} RGBA image"
        )
    ends = np.cumsum(lengths)
    starts = ends - lengths
    on = values > 0
    # the alpha of pixel p is value 4 p + 3: a run [s, e) of non-zero values holds the alphas
    # of pixels ceil((s - 3) / 4) .. ceil((e - 3) / 4) - 1
    first, stop = -((3 - starts[on]) // 4), -((3 - ends[on]) // 4)
    keep = stop > first
    first, stop = first[keep], stop[keep]
    joined = np.flatnonzero(first[1:] == stop[:-1])  # runs that meet are one
    return np.delete(first, joined + 1), np.delete(stop, joined)


def paint_brush(mask: np.ndarray, runs: tuple[np.ndarray, np.ndarray]) -> None:
    """Set the ``(H, W)`` bool ``mask``'s pixels in ``runs`` (:func:`brush_pixel_runs`), inside
    the box they span only."""
    first, stop = runs
    if not first.size:
        return
    width = mask.shape[1]
    first, stop = _cut_at_rows(first, stop, width)
    rows = first // width
    start, end = first - rows * width, stop - rows * width  # columns, end excluded
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(start.min()), int(end.max())
    steps = np.zeros((y1 - y0, x1 - x0 + 1), np.int8)
    # +1 where a run starts, -1 past its end, summed along each row: in a row, starts are
    # distinct and so are ends (runs that meet were joined), so no step is lost
    steps[rows - y0, start - x0] += 1
    steps[rows - y0, end - x0] -= 1
    mask[y0:y1, x0:x1] |= np.cumsum(steps[:, :-1], axis=1, dtype=np.int8) > 0


def bitmask_to_mask(data_url: object, height: int, width: int) -> np.ndarray:
    """A bitmask region's ``imageDataURL`` (``data:image/png;base64,...``, the layer the
    frontend's ``BitmaskRegion`` draws black on transparent, at the image's size) ->
    ``(H, W)`` bool: the pixels of non-zero alpha, as it colours them. ``ValueError`` when it
    is no PNG data URL of an image of that size."""
    mask = np.zeros((height, width), bool)
    paint_brush(mask, bitmask_pixel_runs(data_url, height, width))
    return mask


def bitmask_pixel_runs(data_url: object, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bitmask_to_mask`'s pixels as runs of the row-major image, ``(starts, stops)``
    (:func:`paint_brush` takes them), read inside the box of the layer's non-zero alpha: its
    alpha band alone is taken from the decoded layer, and no full-size mask is made."""
    text = data_url if isinstance(data_url, str) else ""
    head, _, body = text.partition(",")
    if not (head.startswith("data:image/") and head.endswith(";base64")):
        raise ValueError(f"'imageDataURL' must be a base64 data URL, got {data_url!r:.40}")

    def refused(e: BaseException) -> ValueError:  # binascii.Error is a ValueError
        return ValueError(f"'imageDataURL' is not a base64 image ({first_line(e)})")

    try:
        img = Image.open(io.BytesIO(base64.b64decode(body, validate=True)))
    except UnidentifiedImageError:  # Pillow's reason names the BytesIO object's address
        raise ValueError("'imageDataURL' is not a base64 image (not an image)") from None
    except PIL_ERRORS as e:  # a decompression bomb's header too
        raise refused(e) from None
    with img:  # the size from the header: a bitmask of another size is not decoded
        if img.size != (width, height):
            raise ValueError(
                f"the bitmask is {img.size[0]}x{img.size[1]}, not the {width}x{height} image"
            )
        try:  # the alpha as convert("RGBA") makes it (a palette's transparency, 255 for RGB)
            alpha = (img if img.mode == "RGBA" else img.convert("RGBA")).getchannel("A")
        except PIL_ERRORS as e:
            raise refused(e) from None
    box = alpha.getbbox()
    if box is None:  # nothing painted
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    x0, y0, x1, y1 = box
    crop = np.asarray(alpha.crop(box)) > 0
    # the box's runs, cut at its rows' ends: rows that meet in the box do not in the image,
    # unless the box spans its width (paint_brush cuts them at rows again)
    first, stop = _cut_at_rows(*mask_runs(crop.ravel()), x1 - x0)
    rows, cols = np.divmod(first, x1 - x0)
    starts = (y0 + rows) * width + x0 + cols
    return starts, starts + (stop - first)


# -- import ------------------------------------------------------------------------------------
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


# -- export ------------------------------------------------------------------------------------
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
