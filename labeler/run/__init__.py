"""The resumable labeling run: list and shard images, skip those done, decode in threads, label in
batches with a backend, merge and write in writer threads (queue bounded in bytes and in count),
log every image in ``manifest.jsonl``. A failed batch is retried image by image: one bad image
fails alone.

Run directory (DESIGN.md section 3)::

    labels/<split>/<stem>.png       0 = not the class, 1 = the class, 255 = uncertain
    confidence/<split>/<stem>.png   uint8 0..255 (score x mask probability)
    instances/<split>/<stem>.json   boxes, scores, prompts, RLE masks (annotations.instances)
    run.json                        configuration, hash, taxonomy, models, environment
    manifest.jsonl                  one line per image and attempt, written after its files

One module per part, each using only those listed before it:

- :mod:`~labeler.run.summary`: :data:`STAGES`, :class:`LabelSummary`, a failed image's line;
- :mod:`~labeler.run.writers`: :class:`ByteQueue` and the writer threads
  (:func:`write_outputs`);
- :mod:`~labeler.run.folder`: the run folder's record, the same-class and settings checks,
  the shard and its lock (:func:`check_same_class`, :func:`shard_lock`);
- :mod:`~labeler.run.runner`: :func:`plan_items` and :func:`run_labeling`, the loop.

Every name callers import from ``labeler.run`` is imported here from its module.
"""

from __future__ import annotations

from labeler.run.folder import (
    _changed_settings,
    _same_run,
    check_same_class,
    clear_outputs,
    recorded_run,
    resolved_shard,
    shard_lock,
)
from labeler.run.runner import MODELS_READ, check_model_folders, plan_items, run_labeling
from labeler.run.summary import STAGES, LabelSummary
from labeler.run.writers import _STOP, QUEUED_PER_WRITER, ByteQueue, output_nbytes, write_outputs

__all__ = [
    "ByteQueue",
    "_changed_settings",
    "check_model_folders",
    "check_same_class",
    "clear_outputs",
    "LabelSummary",
    "MODELS_READ",
    "output_nbytes",
    "plan_items",
    "QUEUED_PER_WRITER",
    "recorded_run",
    "resolved_shard",
    "run_labeling",
    "_same_run",
    "shard_lock",
    "STAGES",
    "_STOP",
    "write_outputs",
]
