"""The label data model: taxonomy, label-map PNG I/O and atomic file writes.

This package is the lowest layer: it depends only on numpy, Pillow, OpenCV and PyYAML, and every other
package (labeler, trainer, engine) builds on it.
"""

from annotations.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from annotations.labelmap import (
    IGNORE,
    label_to_rgb,
    read_label,
    rgb_to_label,
    validate_label,
    write_color_preview,
    write_label,
)
from annotations.taxonomy import MASS13K, ClassInfo, Taxonomy

__all__ = [
    "IGNORE",
    "MASS13K",
    "ClassInfo",
    "Taxonomy",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "label_to_rgb",
    "read_label",
    "rgb_to_label",
    "validate_label",
    "write_color_preview",
    "write_label",
]
