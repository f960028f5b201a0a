"""``engine compare``: one class's IoU / BIoU / BF1 for several prediction sets, side by side
(the MaSS13K paper's Table 4: Grounded-SAM pseudo labels vs the jointly trained model).

Every source is paired with the annotated ground truth by file stem, as in ``engine evaluate``.
Files may be binary masks (0/1/255) or full label maps holding the class's id; see
:func:`resolve_input`. Deltas are against the first source.

The ground truth may also be an annotated subset (``engine annotate import``): its masks are
scored, its class must be the one compared, and a source folder may then be a label run or a
prediction folder holding the subset's split (``RUN/labels/<split>``, ``DIR/<split>``). Or a
dataset's root or spec with ``split``: that split's label maps, as ``engine evaluate --gt DATASET
--split S`` reads them.

One module per part, each using only those listed before it:

- :mod:`~engine.compare.config`: :class:`CompareConfig` and its sources
  (:func:`parse_sources`);
- :mod:`~engine.compare.inputs`: binary masks or label maps, per folder
  (:func:`resolve_input`);
- :mod:`~engine.compare.classes`: the class compared, looked up and checked against what
  each folder holds (:func:`class_by_name`, :func:`check_not_0_255`);
- :mod:`~engine.compare.results`: :class:`SourceScores`, :class:`CompareReport` and its
  chart (:func:`write_plot`);
- :mod:`~engine.compare.scoring`: :func:`compare`.

Every name callers import from ``engine.compare`` is imported here from its module.
"""

from __future__ import annotations

from engine.compare.classes import (
    check_held_class,
    check_not_0_255,
    class_by_name,
    dataset_split,
    folder_classes,
    source_folder,
)
from engine.compare.config import INPUT_MODES, CompareConfig, parse_source, parse_sources
from engine.compare.inputs import (
    BINARY_RECORDS,
    binary_output,
    children_outside,
    resolve_class,
    resolve_input,
)
from engine.compare.results import CompareReport, SourceScores, write_plot
from engine.compare.scoring import compare

__all__ = [
    "binary_output",
    "BINARY_RECORDS",
    "check_held_class",
    "check_not_0_255",
    "children_outside",
    "class_by_name",
    "compare",
    "CompareConfig",
    "CompareReport",
    "dataset_split",
    "folder_classes",
    "INPUT_MODES",
    "parse_source",
    "parse_sources",
    "resolve_class",
    "resolve_input",
    "source_folder",
    "SourceScores",
    "write_plot",
]
