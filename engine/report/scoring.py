"""The scores of the report: each source's label maps found and read with its own taxonomy
(:func:`source_dirs`), the new class's IoU, Boundary IoU and Boundary F1 of each on the annotated
subset with the deltas' intervals (:func:`score_class`), and the model's per-class table on the
test split (:func:`per_class_table`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import (
    split_key,
)
from annotations.labelmap import IGNORE, read_label, validate_label
from annotations.subset import Subset, edited_since_import
from annotations.taxonomy import Taxonomy, class_key
from engine.datasets import (
    SegDataset,
    edited_masks_line,
    new_class_truth,
)
from engine.metrics import ClassScorer, ClassScores, SegEvaluator
from engine.metrics.bootstrap import (
    class_counts,
    interval_record,
    matches_truth,
)
from engine.outputs import (
    check_size,
    find_png,
    png_folders,
    prediction_record,
    subset_taxonomy,
    taxonomy_record,
    unfinished_prediction,
)
from engine.progress import track
from engine.report.config import ReportConfig, round_score
from engine.text import (
    METRICS,
    SOURCES,
    counted,
    joined,
)

log = logging.getLogger(__name__)


def _load_taxonomy(cfg: ReportConfig, folder: str, class_name: str) -> tuple[Taxonomy, str]:
    """The taxonomy of one folder's ids (the fused labels' or the predictions') and the file it
    came from: ``--taxonomy``, else the one the folder records (a fused dataset's
    ``taxonomy.json``, ``engine predict``'s ``predict.json``, in it or its parent), else MaSS13K
    and the subset's class. Each folder is read in its own: a fused dataset may put the class
    at another id than the model's predictions."""
    if cfg.taxonomy:
        return Taxonomy.load(cfg.taxonomy), str(cfg.taxonomy)
    found = taxonomy_record(folder, Path(folder).parent)
    if found is not None:
        return found[0], str(found[1])
    return subset_taxonomy(class_name)


def source_taxonomies(cfg: ReportConfig, class_name: str) -> dict[str, tuple[Taxonomy, str]]:
    """``name -> (taxonomy, where it came from)`` of the sources of full label maps given (the
    fused labels, the predictions; the pseudo labels are binary masks). A taxonomy without the
    class is an error naming its file."""
    given = (("fused labels", cfg.fused), ("joint-trained model", cfg.pred))
    found = {name: _load_taxonomy(cfg, d, class_name) for name, d in given if d is not None}
    for name, (taxonomy, source) in found.items():
        if class_name not in taxonomy:
            raise ValueError(
                f"class {class_name!r} is not in the taxonomy of {source} "
                f"({taxonomy.listed()}): {name} without it"
            )
    return found


def _check_size(path: Path, arr: np.ndarray, shape: tuple[int, int]) -> None:
    check_size(
        path, arr, shape, "the annotation", "scores are computed at the annotation's resolution"
    )


def source_dirs(
    cfg: ReportConfig, class_name: str, taxonomies: dict[str, tuple[Taxonomy, str]]
) -> dict[str, tuple[Path, int]]:
    """The sources given, in Table-4 order: ``name -> (folder of label maps, the class's id in
    them)``, each id from that source's own taxonomy (``taxonomies``:
    :func:`source_taxonomies`). A folder that does not exist is an error."""
    given = (
        ("pseudo labels", Path(cfg.pseudo) / "labels" if cfg.pseudo else None),
        ("fused labels", cfg.fused),
        ("joint-trained model", cfg.pred),
    )
    dirs = {
        name: (Path(d), taxonomies[name][0].id_of(class_name) if name in taxonomies else 1)
        for name, d in given
        if d is not None
    }
    for name, (d, _) in dirs.items():
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: folder of {name} not found")
    return dirs


def score_class(
    cfg: ReportConfig,
    subset: Subset,
    class_name: str,
    dirs: dict[str, tuple[Path, int]],
    backend: str | None = None,
) -> tuple[list[dict], dict[str, int]]:
    """Table-4 rows for the sources present (``dirs``: :func:`source_dirs`), and the class's
    annotated pixels per image (the overlays show the images with the most).
    ``backend``: the pseudo-label run's labeling backend, named in the pseudo row."""
    split = subset.split
    evals = {name: ClassScorer(class_id=1, pred_class_id=pid) for name, (_, pid) in dirs.items()}
    class_pixels: dict[str, int] = {}
    found = dict.fromkeys(evals, 0)
    scored: dict[str, list[str]] = {name: [] for name in evals}  # stems, in the scorers' order
    edited: list[str] = []  # masks edited after the import: scored as they are now
    for stem in track(
        subset.stems, f"{class_name}: annotated {split} subset", enabled=cfg.progress
    ):
        gt, histogram = subset.mask_and_histogram(stem)
        class_pixels[stem] = int(histogram[1])
        if edited_since_import(subset, stem, gt.shape, histogram):
            edited.append(stem)
        for name, (d, _) in dirs.items():
            p = find_png(d, split, stem)
            if p is None:
                if name == "fused labels":
                    continue  # fusion usually covers the training split only
                raise FileNotFoundError(
                    f"{d}: no {name} for annotated image {stem!r} ({split}){held_elsewhere(d, split)}"
                    + unfinished_prediction(d)
                )
            label = read_label(p)
            _check_size(p, label, gt.shape)
            evals[name].update(label, gt)  # the class (class_id) vs the rest; GT 255 ignored
            found[name] += 1
            scored[name].append(stem)
    if edited:
        log.warning("%s", edited_masks_line(subset, edited, "scored"))
    rows, exact = [], {}  # exact: each source's unrounded scores
    for name in SOURCES:
        if name not in evals or found[name] == 0:
            continue
        res = evals[name].compute()
        row: dict[str, Any] = {
            "source": name + (f" ({backend})" if name == "pseudo labels" and backend else ""),
            "kind": name,
            "images": found[name],
        }
        for key, _, nd in METRICS:
            row[key] = round_score(getattr(res, key), nd)
        row["matches_annotation"] = matches_truth(class_counts(evals[name].per_image, 1))
        rows.append(row)
        exact[name] = res
    base = exact.get("pseudo labels")
    for row in rows:
        res, against = exact[row["kind"]], base
        if base is not None and scored[row["kind"]] != scored["pseudo labels"]:
            # fused labels of some of the images: the pseudo labels' scores on those images,
            # so that the delta is the paired one its interval is of
            against = scores_on(
                evals["pseudo labels"], scored["pseudo labels"], scored[row["kind"]]
            )
        # the difference of the scores, then rounded (as engine compare): not of rounded scores
        row["delta"] = {
            key: round_score(getattr(res, key) - getattr(against, key), nd)
            if against is not None
            else None
            for key, _, nd in METRICS
        }
        if base is not None and res is not base:
            row["delta_interval"] = delta_interval(evals, scored, "pseudo labels", row["kind"])
    return rows, class_pixels


def unscored_warnings(
    dirs: dict[str, tuple[Path, int]], rows: list[dict], subset: Subset
) -> list[str]:
    """A line per source given that holds none of the annotated images (fused labels of the
    training split only; the other sources fail on a missing image): its row is left out of
    the table, and without the line nothing said why."""
    scored = {row["kind"] for row in rows}
    return [
        f"{d}: no {name} for any of the {counted(len(subset.stems), 'annotated image')} "
        f"(split {subset.split!r}){held_elsewhere(d, subset.split)}: the table has no {name} row"
        for name, (d, _) in dirs.items()
        if name not in scored
    ]


def held_elsewhere(folder: Path, split: str) -> str:
    """What a source folder without an annotated image's label map holds instead, to end the
    error or warning that says so: the split its ``predict.json`` records, the split folders
    it has, or its own label maps; ``""`` when none of them points elsewhere (one image
    missing from the subset's split)."""
    try:
        recorded = ((prediction_record(folder) or {}).get("config") or {}).get("split")
    except (OSError, ValueError):
        recorded = None
    if isinstance(recorded, str) and recorded and recorded != split:
        return (
            f"; it holds predictions of split {recorded!r} ({folder / 'predict.json'}), not of "
            f"the subset's {split!r}"
        )
    splits = {
        p.name
        for base in (folder, folder / "labels")
        if base.is_dir()
        for p in base.iterdir()
        if p.is_dir() and p.name != split and any(p.glob("*.png"))
    }
    if splits and not (folder / split).is_dir() and not (folder / "labels" / split).is_dir():
        return (
            f"; it holds split {joined(sorted(splits, key=split_key))}, not the subset's {split!r}"
        )
    own = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if own and not any(p.is_dir() for p in png_folders(folder, split)[:3]):
        return f"; it holds {counted(len(own), 'other label map')} ({own[0].name}, ...)"
    return ""


def scores_on(scorer: ClassScorer, scored: list[str], stems: list[str]) -> ClassScores:
    """``scorer``'s scores over ``stems`` only, some of the images it ``scored`` (in its order):
    the pseudo labels on the images a source of fewer images holds. Their scores on every image
    made that source's delta a difference over other images than its interval's."""
    at = {stem: i for i, stem in enumerate(scored)}
    sub = ClassScorer()
    for stem in stems:
        sub.add_counts(scorer.per_image[at[stem]])
    return sub.compute()


def delta_interval(
    evals: dict[str, ClassScorer], scored: dict[str, list[str]], base: str, other: str
) -> dict[str, Any]:
    """The 95% paired-bootstrap interval of ``other``'s scores minus ``base``'s over the images
    both scored (:func:`engine.metrics.bootstrap.paired_delta_interval`): how much of a delta the
    annotated images' luck could make."""
    common = sorted(set(scored[base]) & set(scored[other]))
    counts = []
    for name in (base, other):
        at = {stem: i for i, stem in enumerate(scored[name])}
        per_image = evals[name].per_image
        counts.append(class_counts([per_image[at[s]] for s in common], class_id=1))
    return interval_record(*counts)


def check_data_classes(
    ds: SegDataset, taxonomy: Taxonomy, source: tuple[Taxonomy, str] | None
) -> None:
    """``ValueError`` before any scoring when the dataset's classes are not the first classes of
    the predictions' taxonomy (the per-class table scores its labels with the predictions'
    ids): a 20-class dataset's Extra 7 was scored as the model's Bicycle, and its ids above
    the model's failed as 'not class ids' after the subset was scored."""
    data = ds.spec.taxonomy
    for c in data:
        if c.id >= len(taxonomy) or class_key(taxonomy[c.id].name) != class_key(c.name):
            theirs = repr(taxonomy[c.id].name) if c.id < len(taxonomy) else "no class"
            where = f" ({source[1]})" if source is not None else ""
            raise ValueError(
                f"{ds.spec.root}: the dataset's class {c.id} is {c.name!r}, the predictions'"
                f"{where} {theirs}: the per-class table would score its labels as other classes "
                f"(dataset: {counted(len(data), 'class', 'classes')}, predictions: "
                f"{len(taxonomy)}); give the dataset the model was trained on as --data, or the "
                "predictions' taxonomy.json as --taxonomy"
            )


def per_class_table(
    cfg: ReportConfig, subset: Subset, class_name: str, taxonomy: Taxonomy, ds: SegDataset
) -> dict:
    """The model's per-class scores on the dataset's split ``ds`` (labelled, the subset's split):
    7-class labels with the new class carved in from the annotated subset (or the dataset's
    ``new_classes`` truth); on images with neither, predictions of the new class count as its
    parent class."""
    cid = taxonomy.id_of(class_name)
    parent = taxonomy[cid].parent if taxonomy[cid].parent is not None else 0
    # Other new classes have no ground truth here: their predictions count as their parent
    # class (as the 7-class labels do), and they are left out of the table.
    lut = np.arange(256, dtype=np.uint8)
    untruthed = {c.id for c in taxonomy if c.parent is not None and c.id != cid}
    for c in untruthed:
        lut[c] = taxonomy[c].parent
    split = subset.split
    root = Path(ds.spec.root)
    truth_dir = new_class_truth(root, class_name, split)
    ev = SegEvaluator(len(taxonomy))
    for sample in track(ds.samples, f"per-class scores: {split} split", enabled=cfg.progress):
        p = find_png(Path(cfg.pred), split, sample.stem)
        if p is None:
            continue
        gt = read_label(sample.label_path)
        validate_label(gt, taxonomy, str(sample.label_path))
        raw = read_label(p)
        try:  # the scorer's own error named neither the file nor the likely cause
            validate_label(raw, taxonomy, str(p))
        except ValueError as e:
            raise ValueError(
                f"{e}: {cfg.pred} holds more classes than the taxonomy read for it; give its "
                "taxonomy.json as --taxonomy"
            ) from None
        pred = lut[raw]
        check_size(p, pred, gt.shape, f"its label {sample.label_path}")
        truth = truth_dir / f"{sample.stem}.png"
        if sample.stem in subset.stems:
            m = subset.mask(sample.stem)
            gt = gt.copy()
            gt[m == 1] = cid
            gt[(m == IGNORE) & (gt == parent)] = IGNORE
        elif truth.is_file():
            gt = gt.copy()
            gt[read_label(truth) == 1] = cid
        else:
            pred = np.where(pred == cid, parent, pred).astype(np.uint8)
        ev.update(pred, gt)
    if not ev.per_image:
        raise FileNotFoundError(f"{cfg.pred}: no prediction for any image of split {split!r}")
    res = ev.compute()
    return {
        "split": split,
        "images": int(res.images),
        "classes": [
            {
                "id": c.id,
                "name": c.name,
                **{k: round_score(getattr(res, k)[c.id], nd) for k, _, nd in METRICS},
            }
            for c in taxonomy
            if c.id not in untruthed
        ],
        "mean": {k: round_score(getattr(res, f"m{k}"), nd) for k, _, nd in METRICS},
        # new classes without truth in this report, scored as their parent class
        "as_parent": {
            taxonomy[c].name: taxonomy[taxonomy[c].parent].name for c in sorted(untruthed)
        },
    }
