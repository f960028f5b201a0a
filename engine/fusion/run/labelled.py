"""What the label runs labelled: the dataset each run records (:func:`labelled_dataset`,
:func:`warn_other_dataset`), the splits it was to label (:func:`was_to_label`, a split left out
because ``engine label`` stopped before it), and its pseudo labels paired with the dataset's
images, with what to do about images that have none.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path

from annotations.labelrun import latest_records
from engine.datasets import DatasetSpec, SegDataset, load_spec
from engine.fusion.pseudo import PseudoRun, relabel_command
from engine.text import counted, few

log = logging.getLogger(__name__)


def _check_stems(run: PseudoRun, dataset: SegDataset, labelled_here: bool = False) -> None:
    """Pseudo labels and images must pair. Pseudo labels of images no longer in the dataset
    are left out after a warning when the run labelled this dataset (``labelled_here``:
    :func:`labelled_dataset`; the images were removed since); otherwise (a run of another
    dataset) they stop the fusion, as do images without pseudo labels."""
    images = {s.stem for s in dataset.samples}
    labelled = run.stems(dataset.split)
    folder = run.label_dir(dataset.split)
    image_dir = dataset.spec.image_dir(dataset.split)
    extra, missing = labelled - images, images - labelled
    if labelled and not labelled & images:
        raise ValueError(
            f"{folder}: no image of {image_dir} matches its "
            f"{counted(len(labelled), 'pseudo label')} "
            f"(pseudo: {few(sorted(labelled), total=True)}; "
            f"images: {few(sorted(images), total=True)}): a pseudo run for another dataset?"
        )
    if extra and labelled_here:
        log.warning(
            "%s: the pseudo labels of %s no longer in %s (removed from the dataset since "
            "labelled) are left out: %s",
            folder,
            counted(len(extra), "image"),
            image_dir,
            few(sorted(extra), total=True),
        )
    elif extra:
        raise ValueError(
            f"{folder}: no image in {image_dir} for {counted(len(extra), 'pseudo label')}: "
            f"{few(sorted(extra), total=True)} (a pseudo run for another dataset?)"
        )
    if missing:
        raise ValueError(
            f"{folder}: no pseudo label for {counted(len(missing), 'image')} of {image_dir}: "
            f"{few(sorted(missing), total=True)} ({_why_unlabelled(run, {dataset.split: missing})})"
        )


def _check_not_stopped_before(
    runs: list[PseudoRun], spec: DatasetSpec, data: Path, have: list[str], splits: list[str]
) -> None:
    """Refuse a split of the dataset (``have``) left out of a fusion without ``--split`` (not
    in ``splits``: a run holds no pseudo labels of it) that every run lacking it was to label
    (its ``--split``, else every split of this dataset) and that has images: an ``engine
    label`` stopped (killed, Ctrl-C) before reaching it. Before, it was left out without a
    word: a run killed after train was fused train alone, while a split it had begun was
    refused (:func:`_check_stems`)."""
    left = [s for s in have if s not in splits]
    images = {s: SegDataset(spec, s, require_labels=False, lenient=True).samples for s in left}
    for run in runs:
        stopped = {
            s: {x.stem for x in images[s]}
            for s in left
            if not run.has_split(s)
            and all(was_to_label(r, s, data, spec) for r in runs if not r.has_split(s))
            and images[s]
        }
        if stopped:
            names = list(stopped)
            said = f"split {names[0]!r}" if len(names) == 1 else f"splits {', '.join(names)}"
            alone = f", or fuse the others alone: --split {','.join(splits)}" if splits else ""
            raise ValueError(
                f"{run.path}: no pseudo labels of {said}, which it was to label "
                f"({run.run_json}): {_why_unlabelled(run, stopped)}{alone}"
            )


def was_to_label(run: PseudoRun, split: str, data: Path, spec: DatasetSpec) -> bool:
    """Whether ``run``'s ``engine label`` was to label ``split`` of the dataset ``data``: its
    ``--split`` names it, or it had none and labelled this dataset (every split). The one
    rule of ``engine fuse`` and ``engine review`` (:func:`engine.review.warn_not_reached`)."""
    return split in run.splits if run.splits else labelled_dataset(data, spec, run)


def _why_unlabelled(run: PseudoRun, missing: dict[str, set[str]]) -> str:
    """What to do about images without a pseudo label (``missing``: each split's stems): label
    them (the run stopped before them, or they were added to the dataset since it ran: "finish
    the labeling run first" was false of a run that had finished), or, when its manifest says
    the labeler failed on them (an unreadable image, a truth mask of another size), mend them
    and label again; "finish the labeling run" was no help there. A whole split missing
    (:func:`_check_not_stopped_before`) is told the same: before, it was always blamed on a
    stopped run, when the labeler had failed on every image of it or it was added since."""
    latest = latest_records(run.path)
    failed = [
        (stem, rec)
        for split, stems in missing.items()
        for stem in sorted(stems)
        if (rec := latest.get((split, stem)) or {}).get("status") == "failed"
    ]
    if not failed:
        return (
            "not labelled yet: the labeling run stopped before them, or they were added to the "
            f"dataset since it ran; label them first: {relabel_command(run, missing)}"
        )
    stem, rec = failed[0]
    return (
        f"the labeling run failed on {len(failed)} of them, {stem}: "
        f"{rec.get('error')}; mend them and run engine label again, or take them out of the "
        "dataset"
    )


def _roots(path: Path) -> set[Path]:
    """``path`` resolved, and the root of the dataset it names when it is a spec file."""
    found = {path.resolve()}
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):  # not a spec: compared as it is
            found.add(load_spec(path).root.resolve())
    return found


def _images(spec: DatasetSpec) -> tuple:
    """The folder template of the dataset's images and each split's own folder, resolved: a
    fused dataset's are its source dataset's (``images: ../data/images/{split}``)."""
    own = tuple((s, (spec.root / f).resolve()) for s, f in spec.split_images)
    return (spec.root / spec.images).resolve(), own


def _same_images(recorded: Path, spec: DatasetSpec) -> bool:
    """Whether the dataset a run labelled has the images of ``spec``: a fused dataset (Car
    fused onto runs/fused/bicycle) is its source dataset's images with other labels."""
    try:
        return _images(load_spec(recorded)) == _images(spec)
    except (OSError, ValueError):  # gone or unreadable: compared by path only
        return False


def warn_other_dataset(data: Path, spec: DatasetSpec, runs: Iterable[PseudoRun]) -> None:
    """A warning for each run whose ``run.json`` records another dataset than ``data`` (by
    resolved path; a spec file counts as its root; a fused dataset of it, whose images are its,
    is the same): its pseudo labels may be of other images with the same file names. Only a
    warning: a dataset moved or reached by another mount
    after labeling is the same dataset."""
    for run in runs:
        recorded = recorded_dataset(run)
        if recorded is None or labelled_dataset(data, spec, run):
            continue
        log.warning(
            "%s: the run labelled dataset %s, but --data is %s: a pseudo run for another "
            "dataset? (If the dataset was moved since, ignore this.)",
            run.run_json,
            recorded,
            data,
        )


def recorded_dataset(run: PseudoRun) -> Path | None:
    """The dataset ``run``'s ``run.json`` says it labelled (None: not recorded), where it is
    found from here: beside the run where the two moved or were copied together. Before the
    forty-sixth round the absolute path recorded: ``engine fuse`` in a ``cp -r`` copy of the
    project warned that the run labelled another dataset, the original's."""
    if run.data_found and Path(run.data_found).exists():
        return Path(run.data_found)
    if run.data_resolved:  # where the labeler found it; the path as typed was relative to it
        return Path(run.data_resolved)
    return Path(run.data) if run.data else None


def labelled_dataset(data: Path, spec: DatasetSpec, run: PseudoRun) -> bool:
    """Whether ``run`` records labelling the dataset ``data`` (``spec``, read): the same root
    by resolved path, a spec file counting as its root, or a fused dataset of it, whose images
    are its."""
    recorded = recorded_dataset(run)
    here = {Path(data).resolve(), spec.root.resolve()}  # the spec given is read already
    return recorded is not None and bool(_roots(recorded) & here or _same_images(recorded, spec))
