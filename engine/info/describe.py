"""``engine info`` on any path: the output or dataset a file belongs to
(:func:`output_folder`), and :func:`describe_output`, which tells what kind of engine output a
folder or file is and hands it to the module that describes that kind (None: a dataset, which
:mod:`engine.info.dataset` reads).
"""

from __future__ import annotations

import os
from pathlib import Path

from annotations.fileio import is_dataset_root
from engine.info.annotation import (
    _half_swapped_export,
    _half_swapped_subset,
    render_annotation_files,
    render_image_list,
    render_pick_list,
    render_subset,
)
from engine.info.demo import DEMO_SUMMARY, render_demo, render_unfinished_demo
from engine.info.label_run import label_run_stats, render_label_run
from engine.info.predictions import failed_images, render_predictions
from engine.info.records import _kind
from engine.info.report import _unfinished_report, render_report
from engine.info.review import _unfinished_review, render_review
from engine.info.sam import _converted_sam, _half_swapped_conversion, _staged_conversion
from engine.info.scores import render_scores
from engine.info.train_run import (
    _train_command,
    _unexported_pretrain,
    render_train_run,
    train_run_stats,
)
from engine.info.unfinished import _begun, _nothing_written_yet, _unlocked
from engine.runlock import earlier_name, writer, writers


def output_folder(path: str | os.PathLike) -> Path:
    """The engine output or dataset a file given to ``engine info`` belongs to: the folder of a
    record its command writes (``run.json``, ``predict.json``, ``report.json``, ``fuse.json``,
    ``synth.json``, ``metrics.jsonl``, ...), of any other file in an engine output (a training
    run's ``last.pt``, ``config.yaml`` or ``environment.json``, a gallery's ``index.html``, a
    report's ``report.md``, a label run's ``manifest.jsonl``, a predicted label map), or the
    demo folder of its ``report/summary.json``; ``path`` itself otherwise (a dataset spec, a
    dataset's ``dataset.yaml`` included). Such files were read as dataset specs ("unknown keys
    ...", "cannot parse YAML", "not UTF-8 text")."""
    from annotations.fileio import OUTPUT_RECORDS, SPEC_NAMES

    path = Path(path)
    if not path.is_file():
        return path
    records = {r for r, _ in OUTPUT_RECORDS} | {"synth.json", "synth.partial.json"}
    if path.name in records:
        return path.parent
    if path.name not in SPEC_NAMES and _kind(path.parent) is not None and not _own_reading(path):
        return path.parent
    demo = path.parent.parent
    if path.parent.name == DEMO_SUMMARY.parent.name and (demo / DEMO_SUMMARY).is_file():
        return demo  # report/summary.json, summary.md: the demo's
    return path


def _own_reading(path: Path) -> bool:
    """Whether the file ``path`` in an engine output is read as itself: scores written there
    (``engine evaluate --json RUN/eval.json``) or a dataset spec of its own (a second spec
    beside a fused dataset's ``dataset.yaml``), not as the output around it."""
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        return False
    if path.suffix.lower() == ".json" and render_scores(path) is not None:
        return True
    from engine.datasets import load_spec

    try:
        load_spec(path)
    except (ValueError, OSError):
        return False
    return True


def _outputs_within(folder: Path, splits: list[str] | None) -> list[tuple[str, list, int]]:
    """:func:`describe_output` of each subfolder of ``folder`` that is an engine output it
    describes (the demo's ``label/`` and ``report/``, a ``runs/predict/`` of prediction
    folders), by name; none for a dataset (its split folders are no outputs)."""
    if not folder.is_dir() or is_dataset_root(folder):  # a spec may put images anywhere
        return []
    # not a hidden one: a write's staging folder (an import killed mid-swap left its
    # subset.json there, shown before as the subset, its masks "missing")
    subs = sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and _kind(p) is not None
    )
    return [d for p in subs if (d := describe_output(p, splits)) is not None]


def describe_output(
    path: str | os.PathLike, splits: list[str] | None = None
) -> tuple[str, list, int] | None:
    """``(what it is, renderables, problems)`` for an engine output that ``engine info``
    describes instead of a dataset: a label run (``problems``: its failed images), a training
    run, an annotated subset, a folder of predictions, annotation files (COCO, LabelMe, an
    export folder); None for anything else (a dataset, a fused one included). A record whose
    values are of other types than its command writes (edited by hand: a count that is a list,
    a score that is a string) is one line naming it, not a traceback."""
    try:
        return _describe_output(path, splits)
    except (KeyError, TypeError, AttributeError, IndexError, OverflowError) as e:
        kind = _kind(path)
        again = "; run the command that wrote it again" if kind else ""
        raise ValueError(
            f"{records_read(path, kind)}: holds a value of an unexpected type or lacks one "
            f"({type(e).__name__}: {e}), edited by hand?{again}"
        ) from None


# records read beside the one that names an output (a label run's manifest beside run.json)
_READ_BESIDE = {
    "run.json": "manifest.jsonl",
    "metrics.jsonl": "config.json",
    "config.yaml": "config.json",  # a training run before its first logged step
}


def records_read(path: str | os.PathLike, kind: tuple[str, str] | None) -> str:
    """The file (or files) ``engine info`` read to describe ``path`` (``kind``: its
    :func:`output_kind`), for an error about their values: the record that names the output
    and the one read beside it, a demo's summary, or ``path`` itself (a scores record)."""
    folder = Path(path)
    if kind is None:
        return str(folder / DEMO_SUMMARY if (folder / DEMO_SUMMARY).is_file() else folder)
    beside = _READ_BESIDE.get(kind[0])
    return f"{folder / kind[0]}" + (f" or {beside} beside it" if beside else "")


def _describe_output(
    path: str | os.PathLike, splits: list[str] | None
) -> tuple[str, list, int] | None:
    kind = _kind(path)  # the record its command wrote, and what
    if kind is None:  # the folder is
        from engine.annotation_files import annotation_files

        folder = Path(path)
        if (scores := render_scores(folder)) is not None:
            return "scores (engine compare or evaluate --json)", scores, 0
        if (picked := render_pick_list(folder)) is not None:
            return "a pick list (engine annotate pick)", picked, 0
        if (folder / DEMO_SUMMARY).is_file() and not is_dataset_root(folder):
            return "a demo folder (engine demo)", render_demo(folder), 0
        # its scenes, or its summary set aside by a rerun (one stopped in its synth stage has
        # data/synth.partial.json: before, read as a folder of engine outputs, exit 0)
        marks = ("data/synth.json", f"report/{earlier_name('summary.json')}")
        if any((folder / m).is_file() for m in marks) and (folder / "label").is_dir():
            live = writers(folder)  # running now: 0; its lock probed once
            rendered = render_unfinished_demo(folder, live)
            rendered += _unlocked(folder, not live, "engine demo")
            return "a demo folder (engine demo)", rendered, not live
        if outputs := _outputs_within(folder, splits):  # runs/predict/, the demo's label/
            renderables = [r for _, rs, _ in outputs for r in [*rs, ""]][:-1]
            problems = sum(n for _, _, n in outputs)
            if (unexported := _unexported_pretrain(folder)) is not None:
                renderables, problems = [*renderables, "", unexported[0]], problems + unexported[1]
            return "a folder of engine outputs", renderables, problems

        if half := _half_swapped_subset(folder):  # masks/ in, its subset.json not yet
            return "an annotated subset not finished", [half], 1
        if unfinished := _unfinished_review(folder):
            return "a review gallery not finished", [unfinished[0]], unfinished[1]
        if unfinished := _unfinished_report(folder):
            return "a report not finished", [unfinished[0]], unfinished[1]
        if unfinished := _nothing_written_yet(folder):
            # a first export killed before its first file was in holds its lock's record too:
            # "stopped before it wrote anything here: run that command again" before, which
            # finished the swap and then refused the export as an earlier one (--force)
            if half := _half_swapped_export(folder) or _half_swapped_conversion(folder):
                return "a write not finished", [half], 1
            return "a run's folder it wrote nothing in yet", [unfinished[0]], unfinished[1]
        if begun := _begun(folder):
            return "a dataset engine synth or fuse has only begun", [begun[0]], begun[1]
        files = annotation_files(path)  # an export to correct, or corrected files
        if files:
            where = folder if folder.is_dir() else folder.parent
            half = _half_swapped_export(where)
            problems = sum(len(f.problems or []) for f in files) + (half is not None)
            rendered = render_annotation_files(files, half)
            if now := writer(where):  # an export --force into it: replaced at its end
                rendered.append(f"now: {now} is writing it again (these are the earlier files)")
            return "annotation files", rendered, problems
        # a conversion killed while putting its files in (or its swap record damaged), which
        # holds no lock file: before, "no image split folders found", exit 2, as of a wrong folder
        if half := _half_swapped_export(folder) or _half_swapped_conversion(folder):
            return "a write not finished", [half], 1
        if staged := _staged_conversion(folder):
            return "a write not finished", [staged[0]], staged[1]
        if converted := _converted_sam(folder):
            return "a SAM model (engine convert-sam)", [converted], 0
        if (listed := render_image_list(folder)) is not None:  # a pick list without its record
            return "a list of image names", listed, 0
        return None
    record, what = kind
    if record == "config.yaml":  # a training run before its first logged step
        train = train_run_stats(path)
        live = writers(path)  # its lock probed once: the lines and the exit status agree
        rendered = render_train_run(train, live)
        rendered += _unlocked(path, not live, _train_command(path, train.environment))
        return what, rendered, not live
    if record == "subset.json":
        # new masks/ beside the old subset.json, or none yet: not checked against it (each
        # "missing", or a corrected one "edited after the import? import ... again", before)
        half = _half_swapped_subset(Path(path))
        rendered, problems = render_subset(path, masks=half is None)
        if half:
            return what, [*rendered, half], problems + 1
        return what, rendered, problems
    if record == "predict.json":
        from engine.outputs import prediction_record

        meta = prediction_record(Path(path)) or {}  # read once: the table and the problems
        # a predict stopped before its last image is a problem (exit 1), as a stopped fusion's
        live = writers(path)  # its lock probed once: the lines and the exit status agree
        stopped = meta.get("status") == "running" and not live
        rendered = render_predictions(path, meta, live) + _unlocked(path, stopped, "engine predict")
        return what, rendered, len(failed_images(meta)) + stopped
    # stopped before its last image or step, no process at it now: unfinished and resumable
    # (exit 1), as a stopped predict, fusion or review; before, exit 0 as if finished
    if record == "run.json":
        stats = label_run_stats(path, splits)
        live = writers(path)  # its lock probed once: the lines and the exit status agree
        rendered = render_label_run(stats, live=live)
        if live:  # its failed images may be tried again now: not yet said
            return what, rendered, 0  # (before, exit 1 and "run again", refused)
        stopped = any(r.pending or r.missing for r in stats.splits.values())
        return what, rendered + _unlocked(path, stopped, "engine label"), stats.problems + stopped
    if record == "metrics.jsonl":
        train = train_run_stats(path)
        live = writers(path)  # its lock probed once: the lines and the exit status agree
        stopped = not train.finished and not live
        rendered = render_train_run(train, live)
        rendered += _unlocked(path, stopped, _train_command(path, train.environment))
        return what, rendered, stopped
    if record == "report.json":
        return what, render_report(path), 0
    if record == "review.json":
        return what, *render_review(path)
    if begun := _begun(Path(path)):  # a fusion killed before its dataset.yaml was in
        return what, [begun[0]], begun[1]
    return None  # a fused dataset is a dataset
