"""What a folder is: a dataset (its spec file), an engine command's output (the record it
writes, :data:`OUTPUT_RECORDS`) or a demo's, and how an error names a folder given in the
wrong place (:func:`not_this_output`); the order of split names (:func:`split_key`)."""

from __future__ import annotations

import os
from pathlib import Path

# The record each engine command writes into its output folder, and what the folder then is:
# how an error says what a folder given in the wrong place is.
FUSE_RECORD = "fuse.json"  # what marks a fused dataset, read by training, labeling and scoring
OUTPUT_RECORDS = (
    ("run.json", "a label run (engine label)"),
    ("subset.json", "an annotated subset (engine annotate import)"),
    ("predict.json", "a folder of predictions (engine predict)"),
    (FUSE_RECORD, "a fused dataset (engine fuse)"),
    ("report.json", "a report (engine report)"),
    ("review.json", "a review gallery (engine review)"),
    ("metrics.jsonl", "a training run (engine train)"),
)


def split_key(split: str) -> tuple[int, str]:
    """Sort key of split names, the folders of datasets and of every engine output: train, val,
    test first, then the others by name."""
    return ({"train": 0, "val": 1, "test": 2}.get(split, 3), split)


SPEC_NAMES = ("dataset.yaml", "dataset.yml", "dataset.json")  # a dataset spec's file names


def is_dataset_root(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a dataset's root: it holds ``images/<split>/`` folders or a dataset
    spec (:data:`SPEC_NAMES`). An annotation tool's download may hold an ``images/`` folder of
    files, or an empty one (Label Studio's COCO export): that is no dataset."""
    path = Path(path)
    images = path / "images"
    if images.is_dir() and any(p.is_dir() for p in images.iterdir()):
        return True
    return spec_file(path) is not None


def spec_file(root: str | os.PathLike) -> Path | None:
    """The dataset spec file in the folder ``root`` (the first of :data:`SPEC_NAMES` there), or
    None: a dataset of the MaSS13K layout."""
    return next((Path(root) / n for n in SPEC_NAMES if (Path(root) / n).is_file()), None)


def outputs_around(folder: str | os.PathLike) -> list[tuple[Path, str]]:
    """``(folder, record)`` of the engine outputs that ``folder`` is or lies in, itself and up to
    two levels above (a run's ``labels/<split>``), nearest first (:func:`output_kind`)."""
    folder = Path(folder)
    found = ((f, output_kind(f)) for f in (folder, folder.parent, folder.parent.parent))
    return [(f, kind[0]) for f, kind in found if kind is not None]


def output_kind(folder: str | os.PathLike) -> tuple[str, str] | None:
    """``(record, description)`` of the engine output ``folder`` is, by the record its command
    writes there (:data:`OUTPUT_RECORDS`); None for anything else."""
    folder = Path(folder)
    return next(((r, what) for r, what in OUTPUT_RECORDS if (folder / r).is_file()), None)


# What marks a demo folder (engine demo), finished or stopped after its scenes were labelled;
# engine info reads them so too (engine/info/).
DEMO_RECORDS = ("report/summary.json", "data/synth.json")
# its summary as a rerun sets it aside while its stages run (engine.runlock.set_aside_as: not
# imported here, engine's base is above this package)
DEMO_SUMMARY_ASIDE = "report/.summary.json.earlier"


def is_demo_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a demo's folder (``engine demo --out``): its summary, or its scenes
    or its summary set aside by a rerun (:data:`DEMO_SUMMARY_ASIDE`), and label runs (a demo
    stopped before its summary). Before, a rerun stopped in its synth stage (its scenes' record
    then ``synth.partial.json``) left a folder that other commands called "a folder of engine
    outputs" (``give another --out, e.g. a new folder in it``)."""
    path = Path(path)
    summary, scenes = (path / r for r in DEMO_RECORDS)
    begun = scenes.is_file() or (path / DEMO_SUMMARY_ASIDE).is_file()
    return summary.is_file() or (begun and (path / "label").is_dir())


def folder_is(path: str | os.PathLike) -> str | None:
    """What ``path`` is, for an error refusing it: the engine output it is
    (:func:`output_kind`'s description), a demo's folder, ``"a dataset's root"``, or None."""
    kind = output_kind(path)
    if kind:
        return kind[1]
    if is_demo_folder(path):  # engine report --out DEMO_OUT: engine info showed the report
        return "a demo folder (engine demo)"
    return "a dataset's root" if is_dataset_root(path) else None


def outputs_inside(path: str | os.PathLike) -> str | None:
    """What the engine outputs right inside the folder ``path`` are (``"bicycle: a label run
    (engine label), car: ..."``, three named at most), for an error refusing ``path`` as a
    command's own folder: a ``runs/label/`` of label runs, given as ``--out``, took the new run's
    files beside them (and ``engine info runs/label`` then showed that run, not theirs); None
    when there is none, or ``path`` is an engine output or a dataset's root itself."""
    path = Path(path)
    if not path.is_dir() or folder_is(path) is not None:
        return None
    with os.scandir(path) as entries:
        subs = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    found = [(name, kind[1]) for name in subs if (kind := output_kind(path / name)) is not None]
    if not found:
        return None
    more = f", and {len(found) - 3} more" if len(found) > 3 else ""
    return ", ".join(f"{name}: {what}" for name, what in found[:3]) + more


def in_the_output(path: str | os.PathLike, record: str) -> str:
    """``"; it is a file in RUN, a label run (engine label): give RUN"`` for the end of an
    error about ``path`` given where the engine output that writes ``record`` is wanted, when
    it is a file or folder inside such an output (its ``run.json``, its ``labels/``), up to two
    levels down; ``"; it is a file, not a folder"`` for another file; ``""`` otherwise. Before,
    a run's own ``run.json`` was "label run directory not found"."""
    path = Path(path)
    found = [f for f, r in outputs_around(path) if r == record and f != path]
    if found:
        kind = "a file" if path.is_file() else "a folder"
        return f"; it is {kind} in {found[0]}, {output_kind(found[0])[1]}: give {found[0]}"  # type: ignore[index]
    return "; it is a file, not a folder" if path.is_file() else ""


def not_this_output(folder: str | os.PathLike, wanted: str, record: str | None = None) -> str:
    """``"; FOLDER is a label run (engine label), not WANTED"`` for the end of an error about a
    folder that is another engine output than the one expected (whose ``record`` it would hold);
    ``""`` when it is no engine output or the expected one."""
    kind = output_kind(folder)
    if kind is None or kind[0] == record:
        return ""
    return f"; {folder} is {kind[1]}, not {wanted}"
