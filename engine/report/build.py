"""``engine report`` (:func:`build_report`): the scores, warnings, files and record of one report,
written under the folder's lock; the files an earlier report listed that a rerun no longer writes
are removed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from annotations.fileio import (
    atomic_write_json,
    atomic_write_text,
    read_json,
)
from annotations.labelrun import LabelRun
from annotations.subset import check_subset_class, read_subset
from engine.datasets import (
    check_fused_finished,
    replaced_subset_photos,
)
from engine.outputs import (
    matplotlib_for,
    prediction_settings,
    subset_taxonomy,
)
from engine.report.config import ReportConfig, ReportResult
from engine.report.figures import _overlays, plot_chart
from engine.report.inputs import (
    _data_root,
    _fused_by,
    _split_data,
    check_data_sizes,
    match_warnings,
    other_data_warnings,
    training_image_warnings,
)
from engine.report.markdown import render_markdown
from engine.report.scoring import (
    check_data_classes,
    per_class_table,
    score_class,
    source_dirs,
    source_taxonomies,
    unscored_warnings,
)
from engine.runinfo import environment
from engine.runlock import check_not_being_written, earlier_name, holds_lock, record_set_aside

log = logging.getLogger(__name__)


# a report written into a dataset root or another output hid it from engine info
# (check_output_folder); two reports into one folder mixed their overlays, and the second
# removed the first's chart as an earlier report's. chart.png and overlays/ come before
# report.json: a report killed among them is its own too (its rerun removes their temporaries),
# but a folder holding a chart.png is not a report's for that (a dataset root with a figure)
@holds_lock("engine report", lambda c: c.out, own=("report.json",), begun=("chart.png", "overlays"))
def build_report(cfg: ReportConfig) -> ReportResult:
    """Score, write ``report.json``, ``report.md``, ``chart.png`` and overlays; return them."""
    # a subset being imported: its new masks swapped in before its subset.json names them
    check_not_being_written(cfg.subset, "engine report", "its annotated masks")
    subset = read_subset(cfg.subset)
    if cfg.class_name:  # else another class's masks would be read as this one's
        check_subset_class(subset, cfg.class_name)
    class_name = subset.class_name
    run = LabelRun.open(cfg.pseudo) if cfg.pseudo else None
    if run is not None:
        check_subset_class(subset, run.class_name, f"{cfg.pseudo}/run.json")
    if not (cfg.pseudo or cfg.fused or cfg.pred):
        raise ValueError(
            "nothing to report: give pseudo labels (--pseudo), fused labels (--fused) or "
            "predictions (--pred)"
        )
    if cfg.chart:  # else it fails after the scoring, minutes at MaSS13K's size
        matplotlib_for("the report's chart", " (or turn the chart off with --no-chart)")
    fusions = {}  # each given folder's fusion state (a fused dataset's), read once
    for given in (cfg.pseudo, cfg.fused, cfg.pred):  # scored now, a part passed for the whole
        if given:
            check_not_being_written(given, "engine report", "its label maps")
            # F/labels of a fusion stopped too (check_folder_finished)
            fusions[given] = check_fused_finished(given, "engine report")
    taxonomies = source_taxonomies(cfg, class_name)
    # the per-class table's classes: the predictions'
    taxonomy = next(
        (taxonomies[n][0] for n in ("joint-trained model", "fused labels") if n in taxonomies),
        subset_taxonomy(class_name)[0],
    )
    class_name = taxonomy.get(class_name).name
    out = Path(cfg.out)
    backend = run.backend if run is not None else None
    # before the scoring, so that a bad file, dataset root or label folder fails before minutes
    # of work: the split is listed once, with its labels when the per-class table needs them
    prediction = prediction_settings(cfg.pred)
    data_root, data_source = _data_root(cfg, subset, run)
    other_data = other_data_warnings(cfg, subset, data_root)
    for warning in other_data:
        log.warning(warning)
    cfg = dataclasses.replace(cfg, data=data_root)
    split_ds = _split_data(cfg.data, subset.split, bool(cfg.pred))
    if split_ds is not None:
        check_data_sizes(subset, split_ds, data_source)
        if cfg.pred and split_ds.spec.labels is not None:
            check_data_classes(split_ds, taxonomy, taxonomies.get("joint-trained model"))
    images = {s.stem: s.image_path for s in split_ds.samples} if split_ds is not None else {}
    # the photos of the split in use (--data, or the dataset found), listed once above
    where = split_ds.spec.image_dir(subset.split) if split_ds is not None else None
    if replaced := replaced_subset_photos(subset, images or None, where):
        log.warning(replaced)
    dirs = source_dirs(cfg, class_name, taxonomies)
    rows, class_pixels = score_class(cfg, subset, class_name, dirs, backend)
    unscored = unscored_warnings(dirs, rows, subset)  # fused labels of other splits only
    if not rows:  # an empty table and exit 0 said nothing
        raise FileNotFoundError(unscored[0] + "; nothing to report")
    for warning in unscored:
        log.warning(warning)
    for row in rows:  # which id each row read, and from where
        row["class_id"] = dirs[row["kind"]][1]
        row["taxonomy_source"] = taxonomies[row["kind"]][1] if row["kind"] in taxonomies else None
    warnings = match_warnings(rows, subset.root, _fused_by(cfg, subset, fusions.get(cfg.fused))) + (
        training_image_warnings(prediction, subset)
    )
    for warning in warnings:
        log.warning(warning)
    warnings = other_data + unscored + warnings
    title = cfg.title or f"{class_name}: pseudo labels vs joint training"
    if backend == "simulated" and "simulated" not in title.lower():
        title += " (simulated labeler)"
    data: dict[str, Any] = {
        "title": title,
        "class_name": class_name,
        "backend": backend,
        "split": subset.split,
        "subset": str(subset.root),
        "subset_images": len(subset.stems),
        "metrics": {"iou": "IoU x100", "biou": "Boundary IoU x100", "bf1": "Boundary F1 (0..1)"},
        "table4": rows,
        "warnings": warnings,
        "per_class": (  # needs the split's 7-class labels (a spec may have none: labels null)
            per_class_table(cfg, subset, class_name, taxonomy, split_ds)
            if cfg.pred and split_ds is not None and split_ds.spec.labels is not None
            else None
        ),
        "taxonomy": taxonomy.to_dict(),
        "data_source": data_source,  # where the dataset root (cfg.data) came from
        "prediction": prediction,
        "files": {},
    }
    # the earlier report's record set aside before its first file is replaced (runlock's
    # record_set_aside: a rerun killed among its chart, overlays and report.md is not read as
    # a finished report, a mix of two runs). The files it listed are kept (a killed rerun's
    # too), for the end to remove those this report does not list
    earlier = _report_files(out / EARLIER) | _report_files(out / "report.json")
    with record_set_aside(out, "report.json"):
        chart = plot_chart(rows, out / "chart.png", class_name) if cfg.chart and rows else None
        if chart:
            data["files"]["chart"] = "chart.png"
        overlays, panels, details = _overlays(cfg, subset, dirs, class_pixels, images, out)
        data["files"]["overlays"] = [os.path.relpath(p, out).replace(os.sep, "/") for p in overlays]
        data["overlay_panels"] = panels
        data["overlay_details"] = details
        data["config"] = dataclasses.asdict(cfg)
        data["environment"] = environment(torch_used=False)
        # report.json last: a report killed before it holds none, and is not read as finished
        # (before, one killed between the two was, without its report.md)
        md_path = atomic_write_text(out / "report.md", render_markdown(data))
        json_path = atomic_write_json(out / "report.json", data)
        for name in earlier - _listed(data["files"]):  # an earlier report's, which this one is not
            (out / name).unlink(missing_ok=True)
    return ReportResult(md_path, json_path, chart, overlays, data)


# the earlier report.json while a rerun writes its files (engine info: a report not finished)
EARLIER = earlier_name("report.json")


def _report_files(record: Path) -> set[str]:
    """The chart and overlays that the report record ``record`` (``report.json``, or one set
    aside, :data:`EARLIER`) lists (relative paths); none without one. A rerun with
    ``--no-chart`` or fewer ``--overlays`` removes the earlier report's others, which
    report.md no longer shows; no other file is touched."""
    try:
        return _listed(read_json(record, "report").get("files") or {})
    except (OSError, ValueError, AttributeError):
        return set()


def _listed(files: dict) -> set[str]:
    """The chart and overlays a report's ``files`` record lists, as paths inside its folder."""
    listed = [files.get("chart"), *(files.get("overlays") or [])]
    return {
        p
        for p in listed
        if isinstance(p, str) and p and not Path(p).is_absolute() and ".." not in Path(p).parts
    }
