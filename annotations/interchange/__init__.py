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

The modules, lowest first (each imports only those above it in this list):

* :mod:`~annotations.interchange.records`: the exporter's record, :class:`ExportImage`,
  :class:`ImageMask` and a label's role, which every format shares;
* :mod:`~annotations.interchange.names`: an annotation file's image names to dataset stems,
  and the split's image sizes;
* :mod:`~annotations.interchange.coco`: COCO export (:class:`CocoBuilder`) and import;
* :mod:`~annotations.interchange.labelme`: LabelMe / X-AnyLabeling export and import;
* :mod:`~annotations.interchange.png`: PNG masks and CVAT's "Segmentation mask" folders.

Every name is importable from ``annotations.interchange`` as before.
"""

from __future__ import annotations

from annotations.interchange.coco import (
    MASK_FORMATS,
    CocoBuilder,
    _recordless_export,
    coco_to_masks,
)
from annotations.interchange.labelme import (
    LABELME_NO_AREA,
    _draw_labelme_shape,
    _mask_patch,
    check_no_area,
    is_labelme,
    labelme_size,
    labelme_to_mask,
    to_labelme,
)
from annotations.interchange.names import (
    SplitSizes,
    check_size,
    composed_stems,
    dataset_stem,
    image_path,
    literal_stem,
    name_stem,
    split_stem,
    stem_of,
    stem_without_split,
    unescaped,
    windows_path,
)
from annotations.interchange.png import (
    LABELMAP,
    SEGMENTATION_DIR,
    labelmap_codes,
    png_to_mask,
    read_color_codes,
    read_labelmap,
    segmentation_mask_to_mask,
)
from annotations.interchange.records import (
    EXPORT_KEY,
    EXPORT_PARTS,
    POLYGON_KEY,
    ExportImage,
    ImageMask,
    as_read,
    export_record,
    exported_from,
    label_role,
    paint_roles,
    record_part,
)
from annotations.taxonomy import IGNORE_NAMES

__all__ = [
    "CocoBuilder",
    "EXPORT_KEY",
    "EXPORT_PARTS",
    "ExportImage",
    "IGNORE_NAMES",
    "ImageMask",
    "LABELMAP",
    "LABELME_NO_AREA",
    "MASK_FORMATS",
    "POLYGON_KEY",
    "SEGMENTATION_DIR",
    "SplitSizes",
    "_draw_labelme_shape",
    "_mask_patch",
    "_recordless_export",
    "as_read",
    "check_no_area",
    "check_size",
    "coco_to_masks",
    "composed_stems",
    "dataset_stem",
    "export_record",
    "exported_from",
    "image_path",
    "is_labelme",
    "label_role",
    "labelmap_codes",
    "labelme_size",
    "labelme_to_mask",
    "literal_stem",
    "name_stem",
    "paint_roles",
    "png_to_mask",
    "read_color_codes",
    "read_labelmap",
    "record_part",
    "segmentation_mask_to_mask",
    "split_stem",
    "stem_of",
    "stem_without_split",
    "to_labelme",
    "unescaped",
    "windows_path",
]
