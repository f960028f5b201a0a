"""Annotated test subsets: export pseudo labels for correction, import corrections, pick images.

The file formats live in :mod:`annotations.interchange` and :mod:`annotations.subset`; this
package ties them to a label run and a dataset (image paths and sizes). One module a part,
lowest first:

- ``common``: the formats and an export's file names, a split's images, the one-line name
  checks, the warning of a run not labelled to the end (what the subcommands share);
- ``sources``: an import's sources found, expanded and their format told (``detect_format``);
- ``archives``: archives given to an import, checked and unpacked (``unzip``);
- ``imported``: what an import read of each image (``Imported``), images left out, masks
  returned unchanged from the export;
- ``export``: ``engine annotate export`` (``export_annotations``);
- ``importing``: ``engine annotate import`` (``import_annotations``);
- ``pick``: ``engine annotate pick`` (``pick_for_annotation``) and its image lists.
"""

from engine.annotate.archives import UNZIP_RATIO, UNZIP_SLACK, archive_root, unpacking_folder, unzip
from engine.annotate.common import (
    COCO_FILE,
    EXPORT_FILES,
    EXPORT_FORMATS,
    IMAGE_LIST,
    IMPORT_FORMATS,
    check_one_line_names,
    check_one_line_paths,
    coco_file_name,
    dataset_images,
    other_splits,
    splits_said,
    warn_not_labelled,
)
from engine.annotate.export import (
    ExportConfig,
    ExportResult,
    Items,
    _stem_named,
    earlier_export,
    export_annotations,
    hole_pixels,
    labelme_image_path,
    polygon_files,
)
from engine.annotate.imported import (
    Imported,
    left_out,
    spelled_as_files,
    unchanged_export,
    unchanged_exports,
)
from engine.annotate.importing import ImportConfig, import_annotations
from engine.annotate.pick import (
    PickConfig,
    export_split,
    image_stat,
    image_stats,
    list_split,
    pick_for_annotation,
    read_stem_list,
    stem_lines,
)
from engine.annotate.sources import archive_named, detect_format, read_sources, source_not_found

__all__ = [
    "COCO_FILE",
    "EXPORT_FILES",
    "EXPORT_FORMATS",
    "ExportConfig",
    "ExportResult",
    "IMAGE_LIST",
    "IMPORT_FORMATS",
    "ImportConfig",
    "Imported",
    "Items",
    "PickConfig",
    "UNZIP_RATIO",
    "UNZIP_SLACK",
    "_stem_named",
    "archive_named",
    "archive_root",
    "check_one_line_names",
    "check_one_line_paths",
    "coco_file_name",
    "dataset_images",
    "detect_format",
    "earlier_export",
    "export_annotations",
    "export_split",
    "hole_pixels",
    "image_stat",
    "image_stats",
    "import_annotations",
    "labelme_image_path",
    "left_out",
    "list_split",
    "other_splits",
    "pick_for_annotation",
    "polygon_files",
    "read_sources",
    "read_stem_list",
    "source_not_found",
    "spelled_as_files",
    "splits_said",
    "stem_lines",
    "unchanged_export",
    "unchanged_exports",
    "unpacking_folder",
    "unzip",
    "warn_not_labelled",
]
