"""The fusion run: a dataset + pseudo-label runs -> a fused dataset directory.

::

    OUT/labels/<split>/<stem>.png    fused label map (precise ids 0..6, new ids 7.., 255 ignore)
    OUT/sources/<split>/<stem>.png   0 precise, 1 pseudo label, 2 set to ignore by fusion
    OUT/taxonomy.json                the dataset's classes plus the new ones (ids, parents)
    OUT/dataset.yaml                 makes OUT a dataset: images from the original dataset
    OUT/fuse.json                    settings, inputs (run.json hashes), environment, report
    OUT/manifest.jsonl               one line per fused image (config hash, input stamps, counts)

Every problem of the inputs' layout (missing runs, files, classes) is found before anything is
written. A file that turns out unreadable while fusing (a truncated PNG, label values that are no
class id, a size mismatch) fails its image alone: the others are fused, the manifest records the
failure, ``fuse.json`` says ``"status": "incomplete"`` and the command exits 1 naming each. The
run is resumable: an image whose manifest line is ``ok`` with the same configuration hash and the
same input file stamps is skipped, so a rerun after mending a file fuses only what is missing.

One module per part, each using only those listed before it:

- :mod:`~engine.fusion.run.config`: :class:`FuseConfig`, :class:`Job`, :class:`Corrections`,
  :class:`FusePlan`, :class:`FuseResult` and :data:`FUSE_FORMAT`;
- :mod:`~engine.fusion.run.classes`: the fused taxonomy and rules, and the new classes a fused
  folder holds (:func:`check_same_classes`);
- :mod:`~engine.fusion.run.labelled`: what the label runs labelled (dataset, splits, images)
  and their pseudo labels paired with the images (:func:`was_to_label`);
- :mod:`~engine.fusion.run.corrections`: the ``--corrections`` subsets, checked and attached;
- :mod:`~engine.fusion.run.vouched`: pseudo labels their run does not vouch for;
- :mod:`~engine.fusion.run.plan`: :func:`plan_fusion`, every input checked before the first
  write, and :func:`default_out_dir`;
- :mod:`~engine.fusion.run.image`: one image fused (:func:`fuse_job`), its input stamps and
  output paths;
- :mod:`~engine.fusion.run.records`: ``dataset.yaml``, ``fuse.json`` and the manifest's lines;
- :mod:`~engine.fusion.run.resume`: which images are done, earlier splits kept, orphans removed;
- :mod:`~engine.fusion.run.runner`: :func:`fuse`, the run, in this process or in workers.

Every name callers import from ``engine.fusion.run`` is imported here from its module.
"""

from __future__ import annotations

from engine.fusion.run.classes import check_same_classes, fused_classes, new_class_names
from engine.fusion.run.config import (
    FUSE_FORMAT,
    Corrections,
    FuseConfig,
    FusePlan,
    FuseResult,
    Job,
)
from engine.fusion.run.corrections import mask_size, open_corrections, with_corrections
from engine.fusion.run.image import (
    _init_worker,
    fuse_job,
    input_content,
    input_paths,
    input_stamp,
    output_paths,
)
from engine.fusion.run.labelled import (
    _images,
    labelled_dataset,
    recorded_dataset,
    warn_other_dataset,
    was_to_label,
)
from engine.fusion.run.plan import default_out_dir, plan_fusion, run_identity
from engine.fusion.run.records import ABOUT_THE_CALL
from engine.fusion.run.resume import REMOVED, earlier_splits, remove_orphans
from engine.fusion.run.runner import fuse, warn_corrections_rejected
from engine.fusion.run.vouched import changed_photos, check_vouched

__all__ = [
    "ABOUT_THE_CALL",
    "Corrections",
    "FUSE_FORMAT",
    "FuseConfig",
    "FusePlan",
    "FuseResult",
    "Job",
    "REMOVED",
    "_images",
    "_init_worker",
    "changed_photos",
    "check_same_classes",
    "check_vouched",
    "default_out_dir",
    "earlier_splits",
    "fuse",
    "fuse_job",
    "fused_classes",
    "input_content",
    "input_paths",
    "input_stamp",
    "labelled_dataset",
    "mask_size",
    "new_class_names",
    "open_corrections",
    "output_paths",
    "plan_fusion",
    "recorded_dataset",
    "remove_orphans",
    "run_identity",
    "warn_corrections_rejected",
    "warn_other_dataset",
    "was_to_label",
    "with_corrections",
]
