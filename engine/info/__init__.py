"""``engine info``: what a folder or file the engine reads or writes holds, and its problems.

``engine info`` describes any folder or file the engine reads or writes; one module per kind:

- ``describe``: what a path is (:func:`describe_output`, :func:`output_folder`), handed to the
  module of its kind;
- ``dataset``: a dataset's statistics (counts, image sizes, class pixel shares) and
  problems, checked in one pass, in worker processes with ``workers`` > 1, and ``--plot``;
- ``label_run``, ``train_run``: a label run, a training run (and demo-pretrain's folder);
- ``predictions``, ``review``, ``report``, ``scores``, ``demo``: a folder of predictions, a
  review gallery, an ``engine report`` folder, a compare or evaluate ``--json`` record, a demo;
- ``annotation``: pick lists, image lists, annotation files and annotated subsets;
- ``sam``: ``engine convert-sam``'s folder;
- ``unfinished``: outputs a command stopped (or is) writing, of any kind; ``leftovers``: the
  temporary files killed writes left;
- ``records``: what every kind shares: reading a record's parts, wording its warnings, code and
  command.
"""

from engine.info.annotation import (
    render_annotation_files,
    render_image_list,
    render_pick_list,
    render_subset,
)
from engine.info.dataset import DatasetStats, SplitStats, dataset_stats, plot_shares, render_stats
from engine.info.demo import DEMO_SUMMARY, render_demo, render_unfinished_demo
from engine.info.describe import describe_output, output_folder, records_read
from engine.info.label_run import (
    LABEL_RUN_FILES,
    LabelRunStats,
    RunSplit,
    label_run_stats,
    render_label_run,
)
from engine.info.leftovers import leftover_note
from engine.info.predictions import failed_images, render_predictions
from engine.info.records import add_made_with, latest, made_with, ran_as, record_object, said_by
from engine.info.report import render_report
from engine.info.review import render_review
from engine.info.scores import render_scores, scored_maps_changed, stopped_compare
from engine.info.train_run import TrainRunStats, _start_again, render_train_run, train_run_stats

__all__ = [
    "DEMO_SUMMARY",
    "DatasetStats",
    "LABEL_RUN_FILES",
    "LabelRunStats",
    "RunSplit",
    "SplitStats",
    "TrainRunStats",
    "_start_again",
    "add_made_with",
    "dataset_stats",
    "describe_output",
    "failed_images",
    "label_run_stats",
    "latest",
    "leftover_note",
    "made_with",
    "output_folder",
    "plot_shares",
    "ran_as",
    "record_object",
    "records_read",
    "render_annotation_files",
    "render_demo",
    "render_image_list",
    "render_label_run",
    "render_pick_list",
    "render_predictions",
    "render_report",
    "render_review",
    "render_scores",
    "render_stats",
    "render_subset",
    "render_train_run",
    "render_unfinished_demo",
    "said_by",
    "scored_maps_changed",
    "stopped_compare",
    "train_run_stats",
]
