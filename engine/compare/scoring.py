"""``engine compare`` itself: every source paired with the ground truth, scored per image (in
worker processes where asked) and written as one report."""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path

import numpy as np

from annotations.fileio import atomic_write_json, atomic_write_text, check_report_file
from annotations.labelmap import byte_histogram, read_label, validate_label
from annotations.subset import (
    check_mask_values,
    check_subset_class,
    edited_since_import,
    subset_at,
    unlisted_line,
    unlisted_masks,
)
from engine.compare.classes import (
    _check_recorded_class,
    _class_in,
    _lacks,
    check_held_class,
    check_not_0_255,
    class_by_name,
    dataset_split,
    folder_classes,
    source_folder,
)
from engine.compare.config import CompareConfig
from engine.compare.inputs import (
    _folder_mode,
    _Reading,
    children_outside,
    resolve_class,
    resolve_input,
)
from engine.compare.results import CompareReport, SourceScores, write_plot
from engine.datasets import (
    check_folder_finished,
    check_fused_finished,
    edited_masks_line,
    replaced_subset_photos,
)
from engine.evaluate import Truth, dataset_spec, fit_to_truth, pair_files
from engine.metrics import ClassScorer, PairCounts, binary_class_counts, is_binary_mask
from engine.metrics.bootstrap import class_counts, interval_record, matches_truth
from engine.outputs import earlier_record
from engine.parallel import map_every_item
from engine.runlock import check_not_being_written, folders_removed_on_failure, record_set_aside
from engine.text import METRICS

log = logging.getLogger(__name__)


def _score_one(
    args: tuple[Path, Path, _Reading, _Reading, str | None, list[int], bool],
) -> tuple[np.ndarray, tuple[tuple[int, ...], np.ndarray] | None]:
    """The counts of one pair, and with ``counted`` the ground truth's shape and value
    histogram (an annotated subset's mask, for :func:`annotations.subset.edited_since_import`:
    counted as it is read, not decoded a second time; one holding values other than 0, 1 and
    255 is refused naming it, as engine report refuses it)."""
    pred_path, gt_path, pred_reading, gt_reading, resize, children, counted = args
    pred_cid, pred_tax = pred_reading.class_id, pred_reading.taxonomy
    gt_cid, gt_tax = gt_reading.class_id, gt_reading.taxonomy
    gt = read_label(gt_path)
    read = (gt.shape, byte_histogram(gt)) if counted else None
    if read is not None:  # a subset's mask: 0/1/255 only, as engine report reads it
        check_mask_values(gt_path, read[1])
    pred = read_label(pred_path)
    gt_id = resolve_input(gt, gt_path, gt_cid, gt_reading.mode, gt_reading.lacks)
    pred_id = resolve_input(pred, pred_path, pred_cid, pred_reading.mode, pred_reading.lacks)
    for label, path, cid, tax in (
        (gt, gt_path, gt_id, gt_tax),
        (pred, pred_path, pred_id, pred_tax),
    ):
        if cid != 1 or not is_binary_mask(label):
            validate_label(label, tax, source=str(path))
    if children and pred_id == pred_cid:  # a full label map: its new classes as the class
        pred = np.where(np.isin(pred, children), np.uint8(pred_id), pred)
    pred = fit_to_truth(pred, pred_path, gt, gt_path, resize)
    return binary_class_counts(pred, gt, class_id=gt_id, pred_class_id=pred_id).as_array(), read


def compare(cfg: CompareConfig) -> CompareReport:
    """Score every source against ``cfg.gt`` for one class; write the requested outputs.

    Each folder's class ids come from its own recorded taxonomy (:func:`folder_classes`), so a
    joint-trained model's predictions (the class at id 7) and a fused dataset with two new
    classes (the class at id 8) compare without ``--taxonomy``."""
    for path in (cfg.json_out, cfg.markdown_out, cfg.plot_out):  # "~/m.md": a folder named ~
        check_report_file(path, "engine compare")  # (before, refused by the CLI only)
    # a subset being imported: its new masks swapped in before its subset.json names them
    check_not_being_written(cfg.gt, "engine compare", "its annotated masks")
    spec = dataset_spec(Path(cfg.gt))  # loaded once (before, again by ground_truth)
    if spec is None:  # a dataset (D/dataset.yaml): ground_truth asks it, naming it as
        # evaluate does; a folder by itself: D/new_classes/bicycle/test, F/labels/val
        check_folder_finished(cfg.gt, "engine compare")
    subset = subset_at(cfg.gt)  # its masks and split, or a plain folder with no split known
    gt, split = (subset.root / "masks", subset.split) if subset else (Path(cfg.gt), None)
    truth = dataset_split(cfg, subset, spec)  # --gt DATASET --split S: that split's label maps
    if truth is not None:
        gt, split = Path(truth.dataset["labels"]), cfg.split
    gt_tax, gt_source = folder_classes(cfg, gt, gt.parent, Path(cfg.gt))
    if truth is not None and truth.record is not None and cfg.taxonomy is None:
        gt_tax, gt_source = truth.record[0], str(truth.record[1])  # the spec's, as evaluate
    named = class_by_name(cfg.class_name, gt_tax, gt_source, subset and subset.class_name)
    if subset is not None:
        check_subset_class(subset, named)
        if replaced := replaced_subset_photos(subset):
            log.warning(replaced)
    listed = None  # a subset's masks: those subset.json lists (others in masks/ are no one's)
    if subset is not None and truth is None:
        if unlisted := unlisted_masks(subset):  # put in masks/ by hand, as engine fuse says
            log.warning("%s", unlisted_line(subset, unlisted))
        listed = Truth({s: subset.mask_path(s) for s in subset.stems}, str(gt), None)
    else:
        check_held_class(named, "--gt", gt)  # a label run's labels/<split> as the truth
    gt_cid = _class_in(cfg, named, gt_tax, gt_source, f"the ground truth {gt}")
    gt_reading = _Reading(
        gt_cid, gt_tax, _lacks(named, gt_tax, gt_source), _folder_mode(cfg, gt_source, gt)
    )
    class_name = resolve_class(named, gt_tax)[0]
    if subset is not None and named not in gt_tax:  # the subset's spelling, not --class's
        class_name = subset.class_name
    rows: list[SourceScores] = []
    per_image: list[np.ndarray] = []  # each source's (8, N) counts of the class, for intervals
    images = 0
    for name, given in cfg.sources:  # all before the first is scored
        check_not_being_written(given, "engine compare", "its label maps")
        check_fused_finished(given, "engine compare")  # F/labels of a fusion stopped too
        _check_recorded_class(cfg, named, name, given, split)
        check_held_class(named, f"source {name!r}", source_folder(given, split))
    for name, given in cfg.sources:
        folder = source_folder(given, split)
        tax, tax_source = folder_classes(cfg, Path(given), folder, folder.parent)
        cid = _class_in(cfg, named, tax, tax_source, f"source {name!r}")
        children = children_outside(tax, cid, gt_tax)
        pairs = pair_files(folder, truth or listed or gt, extra_ok=split is not None)  # some images
        mode = _folder_mode(cfg, tax_source, folder)
        reading = _Reading(cid, tax, _lacks(named, tax, tax_source), mode)
        # the subset's masks, with the first source: each one's counts as subset.json records
        counted = subset is not None and truth is None and not rows
        jobs = [
            (p, g, reading, gt_reading, cfg.resize_pred, children, counted) for _, p, g in pairs
        ]
        scorer = ClassScorer(bf1_mode=cfg.bf1_mode)
        edited = []
        for job, (array, read) in zip(
            jobs, map_every_item(_score_one, jobs, cfg.workers, name, cfg.progress), strict=True
        ):
            scorer.add_counts(PairCounts.from_array(array))
            if read is not None and edited_since_import(subset, Path(job[1]).stem, *read):
                edited.append(Path(job[1]).stem)
        if edited:  # used as they are now, as engine fuse --corrections says
            log.warning("%s", edited_masks_line(subset, edited, "scored"))
        counts = class_counts(scorer.per_image, class_id=1)  # the gt's stems, sorted
        row = SourceScores(name, str(folder), scorer.compute(), {}, cid, tax_source)
        row.matches_truth = matches_truth(counts)
        row.folded = [tax[c].name for c in children]
        row.files = [p for _, p, _ in pairs]
        rows.append(row)
        per_image.append(counts)
        images = len(pairs)
    # a plain folder without the class anywhere (a mask with any class pixel has a boundary):
    # 0/255 masks?
    if split is None and not rows[0].scores.counts["bf1_gt_boundary"]:
        check_not_0_255(gt)
    first = rows[0].scores
    # the bootstrap rescores summed counts: Boundary F1's per-image mode has no interval
    skip = ("bf1",) if cfg.bf1_mode != "dataset" else ()
    for i, r in enumerate(rows):
        r.delta = {
            key: (None if math.isnan(d) else d)
            for key, _, _ in METRICS
            for d in [getattr(r.scores, key) - getattr(first, key)]
        }
        if i:
            r.delta_interval = interval_record(per_image[0], per_image[i], skip)
    ids = {gt_cid, *(r.class_id for r in rows)}
    report = CompareReport(class_name, ids.pop() if len(ids) == 1 else None, rows, images, str(gt))
    report.stems = [s for s, _, _ in pairs]
    for warning in report.warnings():
        log.warning(warning)
    # the record last, the earlier one set aside before the first new file goes in: a rerun
    # killed after its record left the earlier run's Markdown and chart beside it, which
    # engine info read as one comparison (exit 0); now no record until all are written. The
    # set-aside is report's and review's (record_set_aside), watching the two files: one that
    # fails before changing either (no matplotlib for --plot, a full disk) puts it back
    # (before the fifty-eighth round it stayed aside, read as a comparison not finished)
    figures = tuple(Path(p) for p in (cfg.markdown_out, cfg.plot_out) if p is not None)
    json_out = Path(cfg.json_out) if cfg.json_out is not None else None
    with (
        record_set_aside(json_out.parent, json_out.name, figures)
        if json_out is not None and figures
        else contextlib.nullcontext()
    ):
        # a write that fails (a full disk) leaves no new, empty folder made for its file behind
        if cfg.markdown_out is not None:
            with folders_removed_on_failure(cfg.markdown_out):
                atomic_write_text(cfg.markdown_out, report.to_markdown())
        if cfg.plot_out is not None:
            with folders_removed_on_failure(cfg.plot_out):
                write_plot(report, cfg.plot_out)
        if json_out is not None:
            with folders_removed_on_failure(json_out):
                atomic_write_json(json_out, report.to_json(cfg))
            # a killed rerun's, set aside: removed by a run without figures too (none set aside)
            earlier_record(json_out).unlink(missing_ok=True)
    return report
