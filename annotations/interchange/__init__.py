"""COCO and LabelMe files <-> instance masks of one class, for annotation tools.

Export turns a label run's :class:`Instances` into files CVAT, Label Studio, X-AnyLabeling
and LabelMe open; import turns corrected files back into per-image binary masks.

* COCO: one JSON for many images; ``segmentation`` is compressed RLE (exact) or polygons in
  pycocotools' pixel-corner convention (:mod:`annotations.polygons`); category id 1 is the
  class.
* LabelMe (and X-AnyLabeling, which writes the same files): one JSON per image, ``shapes`` of
  type ``polygon`` (export), and ``polygon``, ``rotation``, ``oriented_rectangle``,
  ``quadrilateral``, ``rectangle`` (two corners, or X-AnyLabeling's four), ``circle`` or
  ``mask`` on import, drawn as labelme and X-AnyLabeling draw them (pixel centres); ``line``,
  ``linestrip``, ``point`` and ``points`` have no area (an error for the class, passed over
  for the unannotated label, as CVAT's polylines and points).

Import maps the class's category/label (case-insensitive) to 1 and the categories named in
:data:`IGNORE_NAMES` to 255 ("unannotated", drawn by the annotator around regions they could
not decide). ``iscrowd`` is not an ignore flag here: CVAT writes every RLE mask with
``iscrowd: 1``. Other categories (a file annotating several classes) are left out, counted
per image (:attr:`ImageMask.others`) for the importer to report.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as coco_mask

from annotations.fileio import first_line, read_json, read_text, record_root
from annotations.instances import InstanceWindows, MaskWindow
from annotations.labelmap import LOSSY_FORMATS, PIL_ERRORS, from_pillow
from annotations.numbers import image_hw
from annotations.polygons import (
    COCO,
    LABELME,
    LabelmeCanvas,
    check_near,
    coco_polygons_rle,
    cvat_turned_box,
    flat_to_points,
    mask_to_polygons,
    outline,
    points_to_flat,
    polygons_to_mask,
)
from annotations.rle import RunWindow, checked_rle, crop_to_rle
from annotations.taxonomy import IGNORE_NAMES, class_key

log = logging.getLogger(__name__)

EXPORT_KEY = "mass_engine_export"  # the exporter's record: COCO's info, a LabelMe file's top level
POLYGON_KEY = "polygon_convention"  # in that record; exports made before it used pixel centres
MASK_FORMATS = ("rle", "polygon")


def export_record(container: object) -> dict | None:
    """The exporter's record (:data:`EXPORT_KEY`) that ``container`` carries (COCO's ``info``,
    a LabelMe file, a Label Studio task's ``data``): a mapping, else None (none, or a value a
    hand edit left that is not a mapping)."""
    record = container.get(EXPORT_KEY) if isinstance(container, dict) else None
    return record if isinstance(record, dict) else None


def record_part(record: dict | None, key: str) -> dict:
    """``record[key]`` where it is a mapping (an export record's ``config``, ``environment``),
    else ``{}``."""
    part = (record or {}).get(key)
    return part if isinstance(part, dict) else {}


EXPORT_PARTS = ("labelme", "labelstudio")  # an export folder's subfolders of per-image files


def exported_from(record: dict, key: str, where: Any = None) -> Path | None:
    """The label run (``key`` "run") or annotated subset ("subset") an export's ``record``
    names, found from here (:func:`annotations.fileio.recorded_root`): as typed, where it was
    recorded, else, ``where`` being the export's file or folder now (``coco.json``,
    ``labelme/``, ``labelstudio/tasks.json``, the export folder), where it was beside the
    export folder (its ``config.out``: the two copied or moved together) and, when that is
    not where it was recorded, that one first. Before, an export folder copied with its project
    (``cp -r proj copy``, the original kept) compared its import with the original's run and
    ``engine info`` on it suggested importing with the original's dataset."""
    beside = None
    if where is not None:
        folder = Path(where) if Path(where).is_dir() else Path(where).parent
        folder = folder.parent if folder.name in EXPORT_PARTS else folder
        beside = (record_part(record, "config").get("out"), folder)
    return record_root(record, record[key], record.get(f"{key}_resolved"), beside)


@dataclass(frozen=True)
class ExportImage:
    """One image to export: where it is (relative path written into the files) and its instances."""

    stem: str  # file stem, the image's key across the engine
    file_name: str  # COCO's file_name: the path in the split's image folder (forward slashes)
    # the run's instances of this image, each mask inside its window: the (N, H, W) masks of
    # 70 instances of a 3840x2160 photo are 580 MB, which reading them took most of the time to
    instances: InstanceWindows
    unannotated: np.ndarray | None = None  # (H, W) bool: a subset's unannotated pixels


@dataclass
class ImageMask:
    """One imported image: its ``(H, W) uint8`` mask (0 / 1 / 255) and where it came from."""

    stem: str
    mask: np.ndarray
    source: str  # the file the annotation was read from
    # annotations (COCO) or shapes (LabelMe) of other categories on it, left out: label -> count
    others: dict[str, int] = field(default_factory=dict)
    export: dict | None = None  # the exporter's record its file carried (EXPORT_KEY), if any
    # the class's name as the file spells it (a category, label or class name that matched
    # --class case-folded); None where the file names no class (PNG masks) or not this one
    spelled: str | None = None
    # where in the file, for a file of many images' annotations that it names by more than the
    # image (Label Studio: "task 4001: annotation 9001"); None where the image says it all
    place: str | None = None

    def count_other(self, label: str) -> None:
        """One more annotation of another label on this image, left out."""
        self.others[label] = self.others.get(label, 0) + 1

    def saw(self, label: str, role: int | None) -> None:
        """A label of this image read in the ``role`` :func:`label_role` gave it: the first
        that names the class is the file's spelling of it."""
        if role == 1 and self.spelled is None:
            self.spelled = label


def as_read(mask: ImageMask) -> ImageMask:
    """What a reader keeps of each image by default (its ``each``): the mask itself."""
    return mask


# -- export ------------------------------------------------------------------------------------
class CocoBuilder:
    """A COCO instance-segmentation dict with one category (id 1 = ``class_name``), built one
    image at a time: an export holds one image's masks (inside their boxes) at a time, and
    what it keeps of the others is their compressed segmentations.

    ``mask_format``: "rle" (compressed COCO RLE, exact) or "polygon" (outer outlines; holes
    are filled, see :mod:`annotations.polygons`). Instance ``score`` and ``mask_score`` are
    kept as extra fields (tools ignore them). An image's ``unannotated`` pixels (a subset's)
    are one annotation of category 2, ``unannotated``, which import reads back as 255.
    """

    def __init__(self, class_name: str, mask_format: str = "rle", simplify: float = 0.0):
        if mask_format not in MASK_FORMATS:
            raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
        self.class_name, self.mask_format, self.simplify = class_name, mask_format, simplify
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, item: ExportImage) -> None:
        """One image and its instances (and unannotated pixels)."""
        image_id = len(self.images) + 1
        h, w = item.instances.image_size
        self.images.append({"id": image_id, "file_name": item.file_name, "width": w, "height": h})
        inst = item.instances
        for window, score, mask_score in zip(
            inst.windows, inst.scores, inst.mask_scores, strict=True
        ):
            self._annotate(
                image_id,
                1,
                window,
                (h, w),
                score=round(float(score), 5),
                mask_score=round(float(mask_score), 5),
            )
        if item.unannotated is not None:
            self._annotate(image_id, 2, MaskWindow.from_full(item.unannotated), (h, w))

    def _annotate(
        self,
        image_id: int,
        category: int,
        window: MaskWindow | RunWindow,
        size: tuple[int, int],
        **extra: float,
    ) -> None:
        """One mask, read inside its window (an empty one is no annotation): its RLE or
        polygons are those of the full-size mask, which is never made."""
        crop = window.crop()
        if not crop.any():
            return
        y0, x0 = window.box[:2]
        ys, xs = np.flatnonzero(crop.any(1)), np.flatnonzero(crop.any(0))
        if self.mask_format == "rle":
            seg: object = crop_to_rle(crop, y0, x0, *size)
        else:
            polygons = mask_to_polygons(
                crop, convention=COCO, simplify=self.simplify, offset=(x0, y0)
            )
            seg = [points_to_flat(p) for p in polygons]
        self.annotations.append(
            {
                "id": len(self.annotations) + 1,
                "image_id": image_id,
                "category_id": category,
                "segmentation": seg,
                "area": int(np.count_nonzero(crop)),
                "bbox": [
                    x0 + int(xs[0]),
                    y0 + int(ys[0]),
                    int(xs[-1] - xs[0]) + 1,
                    int(ys[-1] - ys[0]) + 1,
                ],
                "iscrowd": 0,
                **extra,
            }
        )

    def result(self, description: str, info: dict) -> dict:
        """The COCO dict; ``info``: more fields of COCO's ``info``, the export record that names
        the polygon convention among them (an ``info`` of the description alone is read as an
        export older than the record, whose polygons traced pixel centres)."""
        categories = [{"id": 1, "name": self.class_name, "supercategory": "object"}]
        if any(a["category_id"] == 2 for a in self.annotations):
            categories.append({"id": 2, "name": IGNORE_NAMES[0], "supercategory": "object"})
        description = description or f"pseudo labels of {self.class_name}"
        return {
            "info": {"description": description, **(info or {})},
            "images": self.images,
            "categories": categories,
            "annotations": self.annotations,
        }


def to_labelme(item: ExportImage, class_name: str, image_path: str, simplify: float = 0.0) -> dict:
    """A LabelMe dict for one image; ``image_path`` relative to the JSON file's folder."""
    h, w = item.instances.image_size
    shapes = []
    for i, window in enumerate(item.instances.windows):
        offset = (window.box[1], window.box[0])
        for poly in mask_to_polygons(
            window.crop(), convention=LABELME, simplify=simplify, offset=offset
        ):
            shapes.append(
                {
                    "label": class_name,
                    "points": [[float(x), float(y)] for x, y in poly],
                    "group_id": i,
                    "shape_type": "polygon",
                    "flags": {},
                    "description": f"score {float(item.instances.scores[i]):.3f}",
                }
            )
    if item.unannotated is not None:  # a subset's unannotated regions: read back as 255
        for poly in mask_to_polygons(item.unannotated, convention=LABELME, simplify=simplify):
            shapes.append(
                {
                    "label": IGNORE_NAMES[0],
                    "points": [[float(x), float(y)] for x, y in poly],
                    "group_id": None,
                    "shape_type": "polygon",
                    "flags": {},
                    "description": "",
                }
            )
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": h,
        "imageWidth": w,
    }


# -- import ------------------------------------------------------------------------------------
def _load_json(path: Path) -> object:
    return read_json(path, "annotation file")


def label_role(name: str, class_name: str) -> int | None:
    """1 for the class's category or label (case-insensitive), 255 for the unannotated ones
    (:data:`IGNORE_NAMES`), None for any other."""
    key = class_key(name)
    if key == class_key(class_name):
        return 1
    if key in IGNORE_NAMES:
        return 255
    return None


class SplitSizes(dict):
    """``stem -> (H, W)`` of a dataset split's images, knowing the split's name and, asked only
    when an annotation names an image the split lacks, which other split holds it
    (``elsewhere``), so that the error says which ``--split`` the image belongs to."""

    def __init__(
        self,
        sizes: dict[str, tuple[int, int]],
        split: str,
        elsewhere: Callable[[str], str | None] | None = None,
        turned: Callable[[str, tuple[int, int]], str] | None = None,
    ) -> None:
        super().__init__(sizes)
        self.split = split
        # an image file's own stem -> the dataset's, where a spec's image_suffix cuts more
        # (Cityscapes' a_leftImg8bit.png is a): the name an annotation tool knows it by
        self.named: dict[str, str] = {}
        self.elsewhere = elsewhere or (lambda stem: None)
        # asked only for an annotation of an image's size turned a quarter: the end of the
        # error when the image's EXIF orientation turns it so, else ""
        self.turned = turned or (lambda stem, hw: "")
        self.composed: dict[str, str] | None = None  # NFC -> stem, made when first asked


def unescaped(text: str) -> str:
    """A name as text files write it (:func:`annotations.fileio.atomic_write_text`) read back:
    ``caf\\udce9`` (a line of a pick list or an export's ``images.txt``) is ``caf\\xe9`` again.
    Only ``\\udc80`` to ``\\udcff``, the surrogates of undecodable bytes, are read back; any
    other backslash is left as it is."""
    if "\\udc" not in text:
        return text
    return re.sub(r"\\udc([89a-fA-F][0-9a-fA-F])", lambda m: chr(0xDC00 + int(m[1], 16)), text)


def composed_stems(sizes: dict[str, tuple[int, int]]) -> dict[str, str]:
    """``NFC form -> stem`` of the split's stems that only one stem composes to (a split that
    holds both spellings of a name has no one image for it)."""
    found = getattr(sizes, "composed", None)
    if found is None:
        seen: dict[str, list[str]] = {}
        for stem in sizes:
            seen.setdefault(unicodedata.normalize("NFC", stem), []).append(stem)
        found = {nfc: stems[0] for nfc, stems in seen.items() if len(stems) == 1}
        if isinstance(sizes, SplitSizes):
            sizes.composed = found
    return found


def _in_split(name: str, sizes: dict[str, tuple[int, int]]) -> str | None:
    """The split's stem spelled ``name``, or composed alike (Unicode NFC): ``vélo`` as a tool
    writes it (é) for a file stored as macOS names it (e + U+0301), and the other way round."""
    if name in sizes:
        return name
    if name.isascii():
        return None
    return composed_stems(sizes).get(unicodedata.normalize("NFC", name))


def check_size(
    path: str | os.PathLike, stem: str, hw: tuple[int, int], sizes: dict[str, tuple[int, int]]
) -> None:
    """``ValueError`` starting ``path`` (a file, or a place in it: "tasks.json: task 7") unless
    the image ``stem`` is in the split at size ``hw``."""
    if stem not in sizes:
        split = getattr(sizes, "split", None)  # a plain dict: the split is not named
        other = sizes.elsewhere(stem) if isinstance(sizes, SplitSizes) else None
        raise ValueError(
            f"{path}: image {stem!r} is not in "
            + (f"split {split!r}" if split else "the dataset split")
            + f" ({len(sizes)} image{'' if len(sizes) == 1 else 's'})"
            + (f"; it is in split {other!r}: give --split {other}" if other else "")
        )
    want = sizes[stem]
    if tuple(hw) != tuple(want):
        turned = tuple(hw) == tuple(want)[::-1] and isinstance(sizes, SplitSizes)
        raise ValueError(
            f"{path}: image {stem!r} is {hw[1]}x{hw[0]} in the annotation but "
            f"{want[1]}x{want[0]} in the dataset"
            + (sizes.turned(stem, (hw[1], hw[0])) if turned else "")
        )


# Label Studio stores an uploaded image as uuid4()[:8] + "-" + its name, and writes that name
# into its exports (data_import/models.py, upload_name_generator)
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")


# Roboflow renames every image it exports: its name with "." as "_", then ".rf." and a 32-digit
# hash (2056.jpg -> 2056_jpg.rf.68cb444f62494b5756c4708d119a66da.jpg)
_ROBOFLOW_NAME = re.compile(r"^(.+)\.rf\.[0-9a-f]{32}$")
_IMAGE_SUFFIX = re.compile(r"_(jpe?g|png|bmp|tiff?|webp)$", re.IGNORECASE)


def dataset_stem(stem: str, sizes: dict[str, tuple[int, int]]) -> str:
    """The dataset's stem for an annotation's image: ``stem`` itself, or, when only that is in
    the split, the name an annotation tool renamed it from: without Label Studio's upload prefix
    (``8f3a2b1c-img000`` -> ``img000``), or Roboflow's export name (``img000_jpg.rf.<hash>`` ->
    ``img000``; a converted ``IMG_1_jpeg_jpg.rf.<hash>`` -> ``IMG_1``), each spelled as in the
    split or composed alike (Unicode NFC: a tool on Linux or Windows writes ``vélo`` with one
    é where macOS stored the file as e + U+0301, and an import said ``image 'vélo' is not in
    split 'test'``; the subset keeps the dataset's spelling). Each is tried as it
    stands, then percent-decoded: a URL without a scheme (``export --image-url /static/``, an
    upload) encodes ``img 001`` as ``img%20001``, and a file may be named ``x%20y`` itself."""
    for name in dict.fromkeys((stem, unquote(stem, errors="surrogateescape"))):
        if (found := _renamed_stem(name, sizes)) is not None:
            return found
    return stem


def _renamed_stem(stem: str, sizes: dict[str, tuple[int, int]]) -> str | None:
    """:func:`dataset_stem` of one spelling of the stem; None: no image of the split."""
    named = getattr(sizes, "named", {})

    def known(name: str) -> str | None:
        if (found := _in_split(name, sizes)) is not None:  # composed alike too (NFC)
            return found
        return named.get(name)

    if (found := known(stem)) is not None:
        return found
    if (m := _UPLOAD_PREFIX.match(stem)) and (found := known(m.group(1))) is not None:
        return found
    if m := _ROBOFLOW_NAME.match(stem):
        name = m.group(1)
        while known(name) is None and _IMAGE_SUFFIX.search(name):
            name = _IMAGE_SUFFIX.sub("", name)
        return known(name)
    return None


_LOCAL_FILES = re.compile(r"[^?#]*local-files/?\?")  # Label Studio's local-files storage URL


def image_path(name: str) -> str:
    """The file path in an image reference that may be a URL, as Label Studio writes them into
    its JSON and COCO exports: a local-files storage's ``?d=`` path, else the URL's path
    (``s3://bucket/img000.jpg``, ``https://host/img000.jpg?signature``), percent-decoded. A
    plain path (no ``://``, not local-files storage's ``/data/local-files/?d=``) is itself, a
    Windows one included, and so is a file name with ``?``, ``#`` or ``%`` in it
    (``a #1?x%20y.jpg``: before, read as a URL whose path was ``a ``). A byte that is not
    UTF-8 (``caf%E9.jpg``, as ``annotate export`` writes a latin-1 name) is the file name's own
    byte (a surrogate, as Python reads ``caf\\xe9.jpg``): it was read as U+FFFD, and the
    import said ``image 'caf\ufffd' is not in split``."""
    if "://" not in name and not _LOCAL_FILES.match(name):
        return name
    parsed = urlparse(name)
    d = parse_qs(parsed.query, errors="surrogateescape").get("d")
    return d[0] if d else unquote(parsed.path or name, errors="surrogateescape")


def stem_of(file_name: str) -> str:
    """Stem of an image path or URL (:func:`image_path`) written with / or \\ separators."""
    return PurePath(image_path(file_name).replace("\\", "/")).stem


def split_stem(file_name: str, sizes: dict[str, tuple[int, int]]) -> str:
    """:func:`dataset_stem` of an annotation's image path or URL: read with / separators first,
    a backslash part of the name (``a\\b.jpg``, legal on Linux, as ``annotate export`` writes
    it), when that names an image of the split; else with \\ separators too (a Windows path).
    Before, an exported ``a\\b.jpg`` came back as image ``b``, not in the split."""
    return dataset_stem(name_stem(file_name, sizes), sizes)


def literal_stem(file_name: str) -> str:
    """Stem of an image path or URL read with / separators only: a backslash is part of the
    name (``a\\b.jpg``, as ``annotate export`` writes a Linux file named so)."""
    return PurePosixPath(image_path(file_name)).stem


_RELATIVE_PART = re.compile(r"(?:^|[\\/])\.{1,2}\\")  # a .\ or ..\ component


def windows_path(file_name: str) -> bool:
    r"""Whether an image path (:func:`image_path`) reads as a Windows path, whose backslashes
    are separators whatever else the file says: a ``.\`` or ``..\`` component (LabelMe on
    Windows saves ``imagePath`` relative to the file, ``..\..\data\images\test\x.jpg``, in
    a file it re-saves with the engine's export record kept), a drive (``C:\``, ``C:x.jpg``)
    or a UNC prefix (``\\server\share\``, ``\\?\``)."""
    path = image_path(file_name)
    if "\\" not in path:
        return False  # read alike either way
    return bool(
        _RELATIVE_PART.search(path) or PureWindowsPath(path).drive or path.startswith("\\\\")
    )


def name_stem(file_name: str, sizes: dict[str, tuple[int, int]]) -> str:
    """The image's stem as the annotation spells it (:func:`split_stem` before the dataset's
    renames): :func:`literal_stem` when that names an image of the split and the name is no
    :func:`windows_path`, else :func:`stem_of` (a Windows path)."""
    if windows_path(file_name):
        return stem_of(file_name)
    literal = literal_stem(file_name)
    return literal if dataset_stem(literal, sizes) in sizes else stem_of(file_name)


def stem_without_split(file_name: str, exported: bool) -> str:
    """:func:`name_stem` where no split is at hand (``engine info`` on annotation files, saying
    what import would refuse): a backslash is part of the name in the engine's own export
    (``exported``: it carries an export record, and wrote each image's file name as it is:
    ``a\\b.jpg`` of a Linux file named so), else a Windows path's separator, as import reads
    it against any split without an image named ``C:\\a\\x``. Before, info read every
    backslash as part of a name, and two tool paths of one base name (``C:\\a\\x.jpg``,
    ``C:\\b\\x.jpg``), which import refuses as one image listed twice, were no problem. A
    :func:`windows_path` is one in an export too (:func:`name_stem`, as import reads it): an
    export re-saved by LabelMe on Windows keeps the record, with ``..\\`` paths in it."""
    return name_stem(file_name, {literal_stem(file_name): (0, 0)} if exported else {})


def coco_to_masks(
    path: str | os.PathLike,
    class_name: str,
    sizes: dict[str, tuple[int, int]],
    doc: object = None,
    each: Callable[[ImageMask], Any] = as_read,
    paint: bool = True,
) -> list[Any]:
    """Read a COCO file: one mask per listed image (listed images count as fully annotated).

    Args:
        sizes: ``stem -> (H, W)`` of the dataset split's images; every COCO image must be one
            of them, at that size.
        doc: the file's parsed JSON, when the caller read it already.
        each: what to keep of each image, made of it as soon as its mask is painted (the
            masks of the file's other images are not held meanwhile).
        paint: False checks the file as import reads it and leaves every mask 0: ``engine
            info`` reads a 13K-image file without decoding its masks.
    Returns:
        ``(H, W) uint8`` masks: 1 = class, 0 = not, 255 = an "unannotated" category region
        (or what ``each`` made of them), in the file's order.
    """
    path = Path(path)
    data = _load_json(path) if doc is None else doc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{path}: not a COCO file (expected an object with an 'images' list)")
    if not data["images"]:
        raise ValueError(f"{path}: the COCO file lists no images")
    roles: dict[int, int] = {}  # category id -> 1 (the class), 255 (unannotated), 0 (other)
    names: dict[int, str] = {}
    for cat in data.get("categories") or []:
        try:
            cat_id, name = int(cat["id"]), str(cat.get("name", ""))
        except (KeyError, TypeError, ValueError, OverflowError):
            raise ValueError(f"{path}: category entry {cat!r} lacks an integer id") from None
        role = label_role(name, class_name) or 0
        # the later one won: a class imported as another; two other categories both are 0
        if names.get(cat_id, name) != name and roles[cat_id] != role:
            raise ValueError(
                f"{path}: category id {cat_id} is given to {names[cat_id]!r} and {name!r}: "
                "annotations name their category by id; give each category its own"
            )
        roles[cat_id], names[cat_id] = role, name
    if 1 not in roles.values():
        raise ValueError(
            f"{path}: no category named {class_name!r} (class names are matched "
            f"case-insensitively; categories: {', '.join(map(repr, names.values())) or 'none'})"
        )
    record = export_record(data.get("info"))
    spelled = next(names[c] for c, role in roles.items() if role == 1)  # the file's category
    convention = _coco_polygon_convention(path, record, data.get("info"), say=paint)
    masks: dict[int, ImageMask] = {}
    stems: set[str] = set()  # the images listed so far: a set, not a scan of masks per image
    for img in data["images"]:
        try:
            stem = split_stem(str(img["file_name"]), sizes)
            image_id = _coco_image_id(img["id"])
            if img.get("width") is None and img.get("height") is None:
                # Label Studio's COCO export gives an image without regions no size: the
                # dataset's (an image the split lacks is still named by check_size)
                hw = sizes.get(stem, (0, 0))
            elif img.get("width") is None or img.get("height") is None:
                raise KeyError("width")  # one of the two: a damaged entry
            else:
                hw = None
        except (KeyError, TypeError, ValueError, OverflowError):
            raise ValueError(
                f"{path}: image entry {img!r} lacks id/file_name/width/height"
            ) from None
        if hw is None:  # int() read 12.7 as 12 and 1e300 as a 300-digit size, said of no file
            hw = image_hw(img, "width", "height", f"{path}: image {img['file_name']!r} has ")
        check_size(path, stem, hw, sizes)
        if stem in stems:  # before, a scan of every image listed so far: 13,000 images, 84M
            raise ValueError(f"{path}: image {stem!r} is listed twice")
        if image_id in masks:  # the first was dropped, its annotations painted on this one
            raise ValueError(
                f"{path}: image id {image_id!r} is given to {masks[image_id].stem!r} and "
                f"{stem!r}: annotations name their image by id; give each image its own"
            )
        mask = np.zeros(hw, np.uint8)
        masks[image_id] = ImageMask(stem, mask, str(path), export=record, spelled=spelled)
        stems.add(stem)
    rles: dict[int, dict[int, list[dict]]] = {}  # image -> 1 or 255 -> its annotations' RLEs
    for k, ann in enumerate(data.get("annotations") or []):
        if not isinstance(ann, dict):
            raise ValueError(f"{path}: annotation {k} is not an object, got {ann!r:.40}")
        try:
            image_id = _coco_image_id(ann.get("image_id"))
            cat = int(ann["category_id"]) if "category_id" in ann else None
        except (TypeError, ValueError, OverflowError):
            raise ValueError(
                f"{path}: annotation {ann.get('id')}: image_id must be an integer or a string and "
                "category_id an integer"
            ) from None
        if image_id not in masks:
            raise ValueError(
                f"{path}: annotation {ann.get('id')} refers to unknown image_id {image_id}"
            )
        if cat is None or cat not in roles:  # None: none given (a category -1 is a real id)
            raise ValueError(
                f"{path}: annotation {ann.get('id')} has "
                + (f"unknown category_id {cat}" if "category_id" in ann else "no category_id")
            )
        target = masks[image_id]
        if roles[cat] == 0:  # another class of a multi-class file: not this subset's
            target.count_other(names[cat])
            continue
        where = f"{path}: annotation {ann.get('id')}"
        seg = ann.get("segmentation")
        hw = target.mask.shape
        if not seg or seg == [[]]:  # a box without a mask (CVAT writes rectangles so)
            rle = _box_region(ann.get("bbox"), hw, where, roles[cat] == 1, ann.get("attributes"))
        else:
            rle = _segmentation_rle(seg, hw, where, convention)
        if rle is not None and paint:  # not painted: checked (above), then let go
            rles.setdefault(image_id, {}).setdefault(roles[cat], []).append(rle)
    target = None  # the loop above's last image: not held while the others are painted
    found = []
    for image_id in list(masks):  # painted one at a time: untouched zeros take no memory
        image = masks.pop(image_id)
        paint_roles(image.mask, rles.pop(image_id, {}))
        found.append(each(image))
        del image  # not held while the next image is painted
    return found


def _coco_image_id(value: object) -> int | str:
    """A COCO image id (or an annotation's ``image_id``) as a key: an integer, or a string as
    some exporters write (``"x7"``), which pycocotools takes as it takes any key (before, such a
    file was refused: "image entry ... lacks id/file_name/width/height"). A string of digits is
    the integer, as before. ``TypeError`` for anything else (none, a list, a boolean)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"not an image id: {value!r}")
    try:
        return int(value)
    except ValueError:
        if value.strip():
            return value
        raise TypeError(f"not an image id: {value!r}") from None


def paint_roles(mask: np.ndarray, rles: dict[int, list[dict]]) -> None:
    """Paint the union of each role's pycocotools RLEs into ``mask``: the class (1) first, then
    the unannotated regions (255), which win over it."""
    for role in (1, 255):
        found = rles.get(role) or []
        if found:
            union = found[0] if len(found) == 1 else coco_mask.merge(found)
            mask[coco_mask.decode(union) > 0] = role


def _box_region(
    box: object, hw: tuple[int, int], where: str, is_class: bool, attributes: object = None
) -> dict | None:
    """An annotation without a segmentation: its ``bbox`` is a region (an RLE) only for the
    unannotated categories (a box drawn around what the annotator could not decide); for the
    class it is no mask, and an error says so rather than import an object as nothing.
    CVAT's COCO export keeps a rotated box's turn in ``attributes.rotation`` (degrees,
    clockwise about its centre, beside the unturned ``bbox``), and its COCO import turns it
    back: so is it read here, rounded as CVAT holds the turned box (:func:`cvat_turned_box`)."""
    h, w = hw
    valid = isinstance(box, list) and len(box) == 4
    if is_class:
        raise ValueError(
            f"{where}: no segmentation"
            + (", only a box" if valid else "")
            + ": draw the object as a polygon or mask (boxes are read for unannotated regions only)"
        )
    if not valid:
        raise ValueError(f"{where}: neither a segmentation nor a bbox [x, y, width, height]")
    try:
        x, y, bw, bh = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: bbox must be 4 numbers, got {box!r}") from None
    corners = np.array([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]])
    degrees = attributes.get("rotation") if isinstance(attributes, dict) else None
    try:
        degrees = float(degrees or 0)
    except (TypeError, ValueError):
        degrees = math.nan
    if not math.isfinite(degrees):
        raise ValueError(f"{where}: attributes.rotation {attributes['rotation']!r} is not a number")
    if degrees % 360:  # as CVAT's import holds the box (Datumaro's Bbox, 2 decimals) and turns it
        check_near(corners, h, w, where)  # before rounding makes 1e307 inf
        corners = cvat_turned_box(*np.around([x, y, x + bw, y + bh], 2), degrees)
    return coco_polygons_rle([corners], h, w, where)


def _coco_polygon_convention(
    path: Path, record: dict | None, info: object = None, say: bool = True
) -> str:
    """pycocotools' pixel corners, the COCO convention; pixel centres for the polygons of an
    ``engine annotate export`` made before the engine wrote corners (its ``record``, which a
    tool that rewrites COCO's ``info`` drops, names no convention; or, made before the engine
    wrote a record, ``info`` its description alone: :func:`_recordless_export`), and for
    X-AnyLabeling's conversion of its own files (:func:`_x_anylabeling_conversion`). ``say``:
    warn where the polygons are read otherwise than as COCO's (not for ``engine info``'s
    check of the file, which reads it once per class and paints nothing)."""
    if record is not None and record.get(POLYGON_KEY, COCO) not in (COCO, LABELME):
        raise ValueError(
            f"{path}: {EXPORT_KEY}.{POLYGON_KEY} is {record[POLYGON_KEY]!r}, not {COCO!r} or "
            f"{LABELME!r}: was the file edited?"
        )
    if record is None and (description := _recordless_export(info)):
        (log.warning if say else log.debug)(
            "%s: an engine export from before its export record (info: %r): its polygons are "
            "read in the pixel-centre convention it was written in",
            path,
            description,
        )
        return LABELME
    if record is None and _x_anylabeling_conversion(info):
        (log.warning if say else log.debug)(
            "%s: X-AnyLabeling's COCO conversion of its LabelMe-style files: its polygons are "
            "read at pixel centres, as X-AnyLabeling drew them (read as COCO's, pixel corners, "
            "each object would lose half a pixel on every side)",
            path,
        )
        return LABELME
    if record is None or POLYGON_KEY in record:
        return COCO
    if record_part(record, "config").get("mask_format") != "polygon":
        return COCO
    log.info("%s: polygons of an older engine export, read in its pixel-centre convention", path)
    return LABELME


def _x_anylabeling_conversion(info: object) -> bool:
    """Whether a COCO file's ``info`` is the one X-AnyLabeling's ``LabelConverter.get_coco_data``
    writes (``contributor`` CVHub, ``url`` its repository): its ``custom_to_coco`` copies the
    vertices of its shapes, pixel centres (labelme's convention, which its canvas and
    ``shape_to_mask`` draw), into COCO's polygons unchanged."""
    return isinstance(info, dict) and "x-anylabeling" in str(info.get("url") or "").lower()


def _recordless_export(info: object) -> str | None:
    """The description of a COCO file's ``info`` when it is the one ``engine annotate export``
    wrote before it recorded its run and settings: a description alone, ``pseudo labels of
    CLASS`` (``from RUN``, after the backend's name, when the command wrote it); else None.
    Its polygons traced pixel centres; a tool that rewrites the file writes an ``info`` of its
    own."""
    if not isinstance(info, dict) or set(info) != {"description"}:
        return None
    text = info["description"]
    return text if isinstance(text, str) and re.search(r"(^|\s)pseudo labels of \S", text) else None


def _segmentation_rle(
    seg: object, hw: tuple[int, int], where: str, convention: str = COCO
) -> dict | None:
    """An annotation's segmentation as pycocotools' RLE (None: polygons that enclose nothing)."""
    h, w = hw
    if isinstance(seg, dict):
        if isinstance(seg.get("size"), list) and list(seg["size"]) != [h, w]:
            raise ValueError(f"{where}: RLE size {seg['size']} differs from the image's {[h, w]}")
        try:
            return checked_rle(seg)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    if isinstance(seg, list):
        polys = outline([flat_to_points(p, where) for p in seg], where)
        if convention == COCO:
            return coco_polygons_rle(polys, h, w, where)
        mask = polygons_to_mask(polys, h, w, convention=convention)  # an older engine export
        return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    raise ValueError(f"{where}: segmentation must be an RLE object or a list of polygons")


def is_labelme(doc: object) -> bool:
    """Whether a parsed JSON document is a LabelMe file (an object with ``shapes``)."""
    return isinstance(doc, dict) and "shapes" in doc


def labelme_size(data: dict, path: str | os.PathLike) -> tuple[int, int] | None:
    """A LabelMe file's ``(imageHeight, imageWidth)``; None when it gives neither, as files of
    labelme before 3.x and of converters that leave them out do (optional to labelme's own
    reader, ``LabelFile.load``, which takes the image's size). ``ValueError`` naming the file
    when one is missing or is no whole number of pixels, read as COCO's and Label Studio's
    sizes are (``int()`` read 64.7 as 64: a file of a 64-pixel image passed)."""
    if data.get("imageHeight") is None and data.get("imageWidth") is None:
        return None
    if data.get("imageHeight") is None or data.get("imageWidth") is None:
        raise ValueError(f"{path}: LabelMe file gives one of imageHeight/imageWidth, not both")
    return image_hw(data, "imageWidth", "imageHeight", f"{path}: LabelMe file's ")


# labelme's and X-AnyLabeling's shapes that mark no area (labelme's canvas fills no line, line
# strip or set of points, and shows a point as a dot of its display size); labelme's own
# shape_to_mask paints a line 10 px wide and a point as a disc of radius 5, its defaults, not
# what the annotator drew, and a set of "points" as a polygon
LABELME_NO_AREA = ("line", "linestrip", "point", "points")


def check_no_area(kind: str, role: int, here: str) -> None:
    """A shape of ``kind`` that marks no area (a line, points: :data:`annotations.cvat._NO_AREA`,
    :data:`LABELME_NO_AREA`): an error naming ``here`` where it is the class's (``role`` 1);
    of the unannotated label the caller passes it over (no pixel)."""
    if role == 1:
        raise ValueError(f"{here}: a {kind} has no area: draw the object as a polygon or mask")


def labelme_to_mask(
    path: str | os.PathLike,
    class_name: str,
    sizes: dict[str, tuple[int, int]],
    doc: object = None,
) -> ImageMask:
    """Read one LabelMe file into an ``(H, W) uint8`` mask (1 = class, 0 = not, 255 =
    unannotated); ``doc``: its parsed JSON, when the caller read it already."""
    path = Path(path)
    data = _load_json(path) if doc is None else doc
    if not is_labelme(data):
        raise ValueError(f"{path}: not a LabelMe file (expected an object with 'shapes')")
    image_path = data.get("imagePath") or path.name
    stem = split_stem(str(image_path), sizes)
    named = dataset_stem(path.stem, sizes)
    if named in sizes and named != stem:  # a file copied as another image's start, say
        raise ValueError(
            f"{path}: named for image {named!r}, but its imagePath names {image_path!r}; make "
            "imagePath name the image it annotates (or rename the file)"
        )
    # a stem not in the split fails below, naming it
    hw = labelme_size(data, path) or sizes.get(stem, (0, 0))
    check_size(path, stem, hw, sizes)
    canvases = {1: LabelmeCanvas(*hw), 255: LabelmeCanvas(*hw)}  # the class, unannotated
    others: dict[str, int] = {}
    spelled = None
    for k, shape in enumerate(data["shapes"] or []):
        if not isinstance(shape, dict):
            raise ValueError(f"{path}: shape {k} is not an object, got {shape!r:.40}")
        label = shape.get("label")
        if isinstance(label, int | float) and not isinstance(label, bool):
            label = str(label)  # a converter's class id: 0 is a label
        elif label is not None and not isinstance(label, str):
            raise ValueError(
                f"{path}: shape {k}: label must be text, got {type(label).__name__} {label!r:.40}"
            )
        label = label or ""
        if not label.strip():  # counted as a label '' and left out: an object lost unsaid
            raise ValueError(
                f"{path}: shape {k} has no label (LabelMe gives every shape one): give it the "
                "class's label or 'unannotated'"
            )
        role = label_role(label, class_name)
        if role is None:  # another class: not this subset's
            others[label] = others.get(label, 0) + 1
            continue
        spelled = label if spelled is None and role == 1 else spelled
        if shape.get("shape_type") in LABELME_NO_AREA:  # as CVAT's polylines and points
            check_no_area(shape["shape_type"], role, f"{path}: shape {k} ({label})")
            continue  # an unannotated mark without area: no pixel
        _draw_labelme_shape(shape, canvases[role], f"{path}: shape {k}")
    out = canvases[1].mask().astype(np.uint8)
    out[canvases[255].mask()] = 255  # unannotated wins over the class
    return ImageMask(stem, out, str(path), others, export_record(data), spelled)


def _points(shape: dict, where: str) -> np.ndarray:
    """A LabelMe shape's ``points`` as ``(K, 2)`` floats; a clear error for anything else."""
    try:
        pts = np.asarray(shape.get("points") or [], dtype=np.float64)
    except (TypeError, ValueError):
        pts = None
    if pts is None or (pts.size and (pts.ndim != 2 or pts.shape[1] != 2)):
        raise ValueError(f"{where}: points must be a list of [x, y] number pairs")
    if not np.isfinite(pts).all():
        raise ValueError(f"{where}: a point has a coordinate that is not a finite number")
    return pts.reshape(-1, 2)


def _mask_patch(data: object, where: str, size: tuple[int, int]) -> np.ndarray:
    """A LabelMe ``mask`` shape's base64 PNG as ``(h, w) bool``; one over twice the image's
    ``size`` (W, H) is refused before it is decoded, as CVAT's mask boxes are."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(str(data), validate=True))) as img:
            if img.width > 2 * size[0] or img.height > 2 * size[1]:
                raise ValueError(
                    f"{where}: its mask is {img.width}x{img.height}, over twice the image's "
                    f"{size[0]}x{size[1]} (no annotation tool draws one: a damaged file)"
                )
            return np.asarray(img) > 0
    except UnidentifiedImageError:
        raise ValueError(f"{where}: 'mask' is not base64 PNG data (not an image)") from None
    except PIL_ERRORS as e:  # binascii.Error is a ValueError
        if not from_pillow(e, where):
            raise
        raise ValueError(f"{where}: 'mask' is not base64 PNG data ({first_line(e)})") from None


def _draw_labelme_shape(shape: dict, canvas: LabelmeCanvas, where: str) -> None:
    kind = shape.get("shape_type") or "polygon"
    pts = _points(shape, where)
    if kind in ("polygon", "rotation", "oriented_rectangle", "quadrilateral"):
        # rotated boxes and quadrilaterals, 4 corners (X-AnyLabeling's "rotation" and
        # "quadrilateral", labelme 6's "oriented_rectangle"): drawn as polygons, as they do
        if len(pts) < 3:
            raise ValueError(f"{where}: a {kind} needs at least 3 points, got {len(pts)}")
        canvas.polygon(pts)
    elif kind == "rectangle":
        # labelme: two opposite corners; X-AnyLabeling (2.2.0 on): four, top-left, top-right,
        # bottom-right, bottom-left, of which it reads the first and third (a diagonal)
        if len(pts) not in (2, 4):
            raise ValueError(f"{where}: a rectangle needs 2 points (or 4 corners), got {len(pts)}")
        canvas.rectangle(pts[[0, len(pts) // 2]])
    elif kind == "circle":
        if len(pts) != 2:
            raise ValueError(f"{where}: a circle needs 2 points, got {len(pts)}")
        canvas.circle(pts)
    elif kind == "mask":
        if len(pts) != 2 or not shape.get("mask"):
            raise ValueError(f"{where}: a mask shape needs 2 points and base64 'mask' data")
        patch = _mask_patch(shape["mask"], where, canvas.image.size)
        if patch.ndim == 3:  # an RGB(A) PNG: any channel set
            patch = patch.any(axis=2)
        x0, y0 = (int(v) for v in pts[0])  # as labelme places it: the first point, truncated
        canvas.paste(patch, x0, y0)
    else:
        raise ValueError(
            f"{where}: unsupported shape_type {kind!r} (polygon, rotation, oriented_rectangle, "
            "quadrilateral, rectangle, circle, mask)"
        )


def png_to_mask(
    path: str | os.PathLike,
    sizes: dict[str, tuple[int, int]],
    binary: bool = False,
    value: int | None = None,
) -> ImageMask:
    """Read a PNG mask named after its image's stem.

    By default values must be 0, 1 or 255 (the subset's own format). ``binary=True``: any
    non-zero value is the class (for 0/255 masks from other tools; no unannotated pixels).
    ``value``: an index mask of many classes (Pascal VOC's ``SegmentationClass``, a palette
    PNG read as its indices): ``value`` is the class, 255 stays unannotated (VOC's void), any
    other value is 0, and the other non-zero values are counted as other labels
    (``value 7``: one per image).
    """
    path = Path(path)
    stem = _in_split(path.stem, sizes) or path.stem  # composed as the image is named (NFC/NFD)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: mask file not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty (expected a PNG mask)")
    try:
        with Image.open(path) as img:
            if img.format in LOSSY_FORMATS:  # binary mode took its ringing for the class
                raise ValueError(
                    f"{path}: holds {img.format} data, not PNG: its lossy compression changes "
                    "mask values along every edge (save masks as PNG)"
                )
            check_size(path, stem, (img.height, img.width), sizes)  # before decoding it
            if img.mode in ("L", "P", "1"):
                arr = np.asarray(img).astype(np.uint8, copy=False)  # "1": bool, as 0 and 1
            elif img.mode.startswith("I"):  # 16 or 32 bits: the values themselves (Pillow's
                arr = np.asarray(img)  # convert("RGB") clipped them at 255, "unannotated")
            else:  # a grey mask saved as RGB(A): one channel's values
                rgb = np.asarray(img.convert("RGB"))
                if (rgb[..., 1:] != rgb[..., :1]).any():  # read as grey: values never written
                    raise ValueError(
                        f"{path}: a colour mask (its channels differ); give one-channel PNGs, "
                        "or a CVAT segmentation-mask export with --format segmask"
                    )
                arr = rgb[..., 0]
    except PIL_ERRORS as e:
        if not from_pillow(e, path):
            raise
        raise ValueError(f"{path}: cannot read PNG ({e})") from None
    if binary:
        return ImageMask(stem, (arr > 0).astype(np.uint8), str(path))
    if value is not None:
        mask = np.where(arr == value, np.uint8(1), np.where(arr == 255, np.uint8(255), np.uint8(0)))
        others = {f"value {v}": 1 for v in np.unique(arr).tolist() if v not in (0, value, 255)}
        return ImageMask(stem, mask, str(path), others)
    bad = np.setdiff1d(np.unique(arr), [0, 1, 255])
    if bad.size:
        raise ValueError(
            f"{path}: mask values must be 0, 1 or 255 (unannotated), found {bad[:5].tolist()}; "
            "for class-index masks give the class's value (--png-value N: other values become "
            "0), for masks whose every non-zero value is the class pass binary mode (--png-binary)"
        )
    if (arr == 255).any() and not (arr == 1).any():
        raise ValueError(
            f"{path}: mask has 255 but no 1 pixels, which looks like a 0/255 binary mask; "
            "pass binary mode (--png-binary) if 255 means the class"
        )
    return ImageMask(stem, arr.astype(np.uint8), str(path))


# -- CVAT "Segmentation mask" (Pascal VOC layout) -----------------------------------------------
LABELMAP = "labelmap.txt"  # label:r,g,b:parts:actions per line, as CVAT's Datumaro writes it
SEGMENTATION_DIR = "SegmentationClass"  # one colour-coded PNG per image


def read_labelmap(
    path: str | os.PathLike, class_name: str | None = None
) -> dict[str, tuple[int, int, int]]:
    """``label -> (r, g, b)`` of a CVAT / Pascal VOC ``labelmap.txt`` (``#`` lines skipped).
    Two labels of one colour are a ``ValueError`` where importing ``class_name`` gives them
    different roles (:func:`label_role`: one of them the class or ``unannotated``), whose
    pixels cannot be told apart; two other labels (``road`` and ``sidewalk``) both become 0,
    as before the forty-eighth round, when such a label map was refused whatever the class.
    No ``class_name`` (a description of the files): none is refused."""
    path = Path(path)
    colors: dict[str, tuple[int, int, int]] = {}
    for n, line in enumerate(read_text(path, "label map").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # the label is all before the first field that is a colour: a label with ':' in it
        # (`a:b:250,50,83::`, as Datumaro writes it, unescaped) keeps its ':'
        fields = line.split(":")
        at = next((i for i in range(1, len(fields)) if _rgb(fields[i]) is not None), None)
        if at is None:
            raise ValueError(f"{path}: line {n} is not 'label:r,g,b:...' ({line.strip()[:60]!r})")
        label, rgb = ":".join(fields[:at]).strip(), _rgb(fields[at])
        same = next(
            (
                other
                for other, c in colors.items()
                if c == rgb
                and other != label
                and class_name is not None
                and label_role(other, class_name) != label_role(label, class_name)
            ),
            None,
        )
        if same is not None:  # one label's pixels were read as the other's
            raise ValueError(
                f"{path}: {same!r} and {label!r} have one colour, {rgb}, so their pixels cannot "
                "be told apart; give each label its own colour in CVAT and export again"
            )
        colors[label] = rgb  # type: ignore[assignment]
    if not colors:
        raise ValueError(f"{path}: no labels in the label map")
    return colors


def _rgb(text: str) -> tuple[int, int, int] | None:
    """``(r, g, b)`` of a label map's colour field ``r,g,b``, else None."""
    try:
        rgb = tuple(int(v) for v in text.split(","))
    except ValueError:
        return None
    return rgb if len(rgb) == 3 and all(0 <= v <= 255 for v in rgb) else None  # type: ignore[return-value]


def labelmap_codes(colors: dict[str, tuple[int, int, int]]) -> dict[int, str]:
    """``0xRRGGBB -> label`` of a label map (:func:`read_labelmap`)."""
    return {(r << 16) | (g << 8) | b: name for name, (r, g, b) in colors.items()}


def read_color_codes(path: str | os.PathLike) -> np.ndarray:
    """A colour-coded PNG as ``(H, W) int32`` codes ``0xRRGGBB`` (:func:`labelmap_codes`);
    ``ValueError`` naming the file when it cannot be read."""
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB")).astype(np.int32)
    except PIL_ERRORS as e:
        raise ValueError(f"{path}: cannot read PNG ({first_line(e)})") from None
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def segmentation_mask_to_mask(
    path: str | os.PathLike,
    class_name: str,
    colors: dict[str, tuple[int, int, int]],
    sizes: dict[str, tuple[int, int]],
) -> ImageMask:
    """One colour-coded PNG of a CVAT "Segmentation mask" export: the class's colour -> 1, the
    unannotated label's -> 255, every other label's (the background included) -> 0. A colour the
    label map lacks is an error naming the file and the colour."""
    path = Path(path)
    code = read_color_codes(path)
    stem = dataset_stem(path.stem, sizes)
    check_size(path, stem, code.shape, sizes)
    values, inverse = np.unique(code, return_inverse=True)
    by_code = labelmap_codes(colors)
    table = np.zeros(len(values), np.uint8)
    others: dict[str, int] = {}
    spelled = next((name for name in colors if label_role(name, class_name) == 1), None)
    for i, v in enumerate(values.tolist()):
        name = by_code.get(v)
        if name is None:
            color = ((v >> 16) & 255, (v >> 8) & 255, v & 255)
            raise ValueError(f"{path}: colour {color} is not in the label map ({LABELMAP})")
        role = label_role(name, class_name)
        table[i] = role or 0
        if role is None and name.strip().casefold() != "background":
            others[name] = 1
    out = table[inverse.reshape(code.shape)]
    return ImageMask(stem, out, str(path), others, spelled=spelled)
