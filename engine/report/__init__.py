"""The comparison report in the shape of the paper's Table 4: Markdown + JSON + PNG.

For one new class, on its annotated test subset, the class's own IoU, Boundary IoU and
Boundary F1 (:class:`engine.metrics.ClassScorer`: the class vs everything else; subset pixels 255 are
unannotated) of:

* "pseudo labels": the label run's ``labels/<split>/<stem>.png`` (labeler output);
* "fused labels": the fusion output for the same images, where it has them;
* "joint-trained model": the model's predictions.

with deltas against the pseudo labels; then the model's per-class table on the test split
(MaSS13K classes plus the new class, like the paper's Tables 2-3), a bar chart and a few
overlay images. Every score comes from :mod:`engine.metrics`; ``report.json`` holds every
number printed in ``report.md`` (rounded the same way).

Files: ``OUT/report.md``, ``OUT/report.json``, ``OUT/chart.png``, ``OUT/overlays/<stem>.jpg``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import (
    FUSE_RECORD,
    UNREADABLE,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    first_line,
    fused_source,
    read_json,
    split_key,
)
from annotations.labelmap import IGNORE, read_label, validate_label
from annotations.labelrun import LabelRun
from annotations.subset import Subset, check_subset_class, edited_since_import, read_subset
from annotations.taxonomy import Taxonomy, class_key
from engine.datasets import (
    DatasetSpec,
    FusionState,
    SegDataset,
    check_fused_finished,
    edited_masks_line,
    fused_as_corrections,
    load_spec,
    new_class_truth,
    replaced_subset_photos,
)
from engine.metrics import ClassScorer, ClassScores, SegEvaluator, to_binary
from engine.metrics.bootstrap import (
    class_counts,
    interval_line,
    interval_record,
    matches_truth,
    measures_nothing,
)
from engine.outputs import (
    SOURCE_COLORS,
    check_size,
    detail_overlays,
    figure_text,
    find_png,
    jpeg_bytes,
    matplotlib_for,
    overlay,
    png_folders,
    prediction_record,
    prediction_settings,
    save_figure,
    subplots,
    subset_taxonomy,
    taxonomy_record,
    unfinished_prediction,
)
from engine.progress import track
from engine.runinfo import environment
from engine.runlock import check_not_being_written, earlier_name, holds_lock, record_set_aside
from engine.table4 import Table4
from engine.text import (
    METRICS,
    SOURCES,
    counted,
    joined,
    md_cell,
    md_code,
    md_link,
    md_text,
    score_cells,
)

log = logging.getLogger(__name__)


@dataclass
class ReportConfig:
    subset: str  # annotated subset directory (masks/ + subset.json): the ground truth
    out: str  # report folder
    pseudo: str | None = None  # label run directory (labels/<split>/<stem>.png)
    fused: str | None = None  # fused labels: DIR/[labels/]<split>/<stem>.png (+ taxonomy.json)
    pred: str | None = None  # model predictions: DIR/[<split>/]<stem>.png label maps
    data: str | None = None  # dataset root: images for overlays, labels for the per-class table
    taxonomy: str | None = (
        None  # taxonomy.json of fused/pred ids; None: found near them or MaSS13K + class
    )
    class_name: str | None = None  # the new class, checked against the subset's; None: the subset's
    title: str = ""  # report title; "" -> "<class>: pseudo labels vs joint training"
    overlays: int = 4  # overlay images to write
    chart: bool = True  # draw chart.png (needs matplotlib)
    progress: bool = True  # progress bars on stderr


@dataclass
class ReportResult:
    markdown: Path
    json: Path
    chart: Path | None
    overlays: list[Path]
    data: dict  # the report.json content


def round_score(x: float | None, nd: int) -> float | None:
    """A score as reports write it: rounded to ``nd`` digits; None where undefined (NaN)."""
    if x is None or math.isnan(x := float(x)):
        return None
    return round(x, nd)


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


def match_warnings(rows: list[dict], subset: str | Path, fused_by: Path | None = None) -> list[str]:
    """One line per source that agrees with the annotated subset on every image
    (:func:`engine.metrics.bootstrap.matches_truth`): its row measures nothing, and the line says
    the likely cause (``fused_by``: the ``fuse.json`` of the fused labels that fused this subset
    as corrections, :func:`engine.datasets.fused_as_corrections`)."""
    lines = []
    for row in rows:
        if not row.get("matches_annotation"):
            continue
        if row["kind"] == "fused labels" and fused_by is not None:
            cause = (
                f"they were fused with this subset as corrections ({fused_by}: engine fuse "
                "--corrections), so they are its masks; score fusion on a subset it was not "
                "given (a test split)"
            )
        elif row["kind"] == "pseudo labels":
            cause = (
                "were the pseudo labels exported by engine annotate export imported without "
                "being corrected?"
            )
        else:
            cause = "is that folder the annotations themselves?"
        lines.append(
            f"{subset}: the annotated masks equal the {row['kind']} "
            + measures_nothing(row["images"], "their", cause)
        )
    return lines


def _fused_by(cfg: ReportConfig, subset: Subset, fusion: FusionState | None = None) -> Path | None:
    """The ``fuse.json`` of ``--fused`` (its folder, or its ``labels/``) that fused ``subset``
    as corrections; None when it did not, or there is none. ``fusion``: the state of the fused
    dataset ``--fused`` is, read already (:func:`engine.datasets.check_fused_finished`)."""
    if not cfg.fused:
        return None
    root = Path(cfg.fused)
    if root.name == "labels":  # its labels/: the state read was of that folder
        root, fusion = root.parent, None
    return fused_as_corrections(DatasetSpec(root=root), Path(subset.root), fusion)


def training_image_warnings(prediction: dict | None, subset: Subset) -> list[str]:
    """A line when the annotated images are of the split the predicting model was trained on
    (``predict.json``'s ``trained_on``): its row then scores images it learnt."""
    trained = (prediction or {}).get("trained_on") or {}
    if trained.get("split") != subset.split:
        return []
    return [
        f"{subset.root}: the annotated images are of split {subset.split!r}, the split the "
        f"model was trained on (on {trained.get('data')}): the prediction row scores images it "
        "learnt (their pseudo labels), not new ones; annotate images of a held-out split"
    ]


def interval_lines(rows: list[dict]) -> list[str]:
    """One line per source with a delta interval: how sure each delta against the pseudo labels
    is, and whether it is sure of its sign (the interval excludes 0)."""
    return [
        interval_line(f"the {row['kind']}", "the pseudo labels", row["delta_interval"])
        for row in rows
        if row.get("delta_interval")
    ]


def render_markdown(data: dict) -> str:
    """``report.md`` from the ``report.json`` dict (so both hold the same numbers)."""
    lines = [f"# {md_text(data['title'])}", ""]
    if data.get("backend") == "simulated":
        lines += [
            "> **Simulated pseudo labels**: the labeler was the `simulated` backend (true masks with "
            "simulated Grounded-SAM errors), not a detector. These numbers demonstrate the engine; "
            "they are not Grounded-SAM results.",
            "",
        ]
    refinements = (data.get("prediction") or {}).get("refinements")
    if refinements:
        lines += [
            f"> **Model predictions refined at inference**: {', '.join(refinements)}; not the "
            "release's whole-image, single-scale inference.",
            "",
        ]
    lines += [
        f"New class **{md_text(data['class_name'])}**, annotated subset {md_code(data['subset'])} "
        f"({counted(data['subset_images'], 'image')}, split `{data['split']}`). IoU and BIoU in %, BF1 as a "
        "fraction; binary scores of the class against everything else; deltas vs pseudo labels.",
        "",
        "| source | IoU | BIoU | BF1 | ΔIoU | ΔBIoU | ΔBF1 | images |",
        "|---|---|---|---|---|---|---|---|",
    ]
    # the terminal's cells (deltas blank on the row they are against), with the image counts
    for row, cells in zip(data["table4"], Table4.of_report(data).rows, strict=True):
        lines.append(f"| {' | '.join(cells)} | {row['images']} |")
    intervals = interval_lines(data["table4"])
    if intervals:
        lines += ["", *intervals]
    for warning in data.get("warnings") or []:
        lines += ["", f"> **Warning**: {warning}"]
    pc = data.get("per_class")
    if pc:
        lines += [
            "",
            f"## Joint-trained model, per class ({pc['split']} split, {counted(pc['images'], 'image')})",
            "",
            "| class | IoU | BIoU | BF1 |",
            "|---|---|---|---|",
        ]
        for c in pc["classes"]:
            lines.append(f"| {md_cell(c['name'])} | {' | '.join(score_cells(c))} |")
        lines.append(f"| **mean** | {' | '.join(score_cells(pc['mean']))} |")
        if pc.get("as_parent"):
            folded = ", ".join(f"{n} counts as {p}" for n, p in pc["as_parent"].items())
            lines += ["", f"Without truth here, {folded}, as in the 7-class labels."]
    if data["files"].get("chart"):
        lines += ["", f"![scores]({md_link(data['files']['chart'])})"]
    if data["files"].get("overlays"):
        lines += [
            "",
            "## Examples",
            "",
            "Left to right: "
            + ", ".join(data["overlay_panels"])
            + "."
            + (
                " Below, the same panels of the white box, enlarged: where the annotation's"
                " outlines are densest."
                if data.get("overlay_details")
                else ""
            ),
            "",
        ]
        lines += [f"![{md_text(Path(p).stem)}]({md_link(p)})" for p in data["files"]["overlays"]]
    return "\n".join(lines) + "\n"


def plot_chart(rows: list[dict], path: Path, class_name: str) -> Path:
    """Grouped bars: one panel per metric, one bar per source."""
    matplotlib_for("the report's chart", " (or turn the chart off with --no-chart)")
    fig, axes = subplots(1, 3, figsize=(10, 3.4))
    colors = {kind: "#{:02x}{:02x}{:02x}".format(*rgb) for kind, rgb in SOURCE_COLORS.items()}
    for ax, (key, title, _) in zip(axes, METRICS, strict=True):
        vals = [r[key] if r[key] is not None else 0 for r in rows]
        ax.bar(range(len(rows)), vals, color=[colors[r["kind"]] for r in rows])
        ax.set_xticks(
            range(len(rows)),
            [r["source"].replace(" ", "\n", 1) for r in rows],
            fontsize=8,
            parse_math=False,
        )
        ax.set_title(title)
        for i, v in enumerate(vals):
            ax.text(
                i,
                v,
                f"{v:.2f}" if key != "bf1" else f"{v:.3f}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_ylim(0, (100 if key != "bf1" else 1) * 1.08)
    # parse_math off: a class named with two '$' (x$^$y) was mathtext, which failed the command
    fig.suptitle(f"{figure_text(class_name)}: annotated subset", parse_math=False)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def _overlays(
    cfg: ReportConfig,
    subset: Subset,
    dirs: dict[str, tuple[Path, int]],
    class_pixels: dict[str, int],
    images: dict[str, Path],
    out: Path,
) -> tuple[list[Path], list[str], int]:
    """Side-by-side overlays of the subset images with the most class pixels (``images``:
    stem -> image path of the split). Their maps are read again here: holding every image's
    maps from the scoring would cost 4 bytes a pixel per image (33 MB at 4K) for the few drawn."""
    if cfg.overlays <= 0 or not images:
        return [], [], 0
    split = subset.split

    from engine.datasets import load_image

    ranked = sorted(class_pixels, key=lambda s: (-class_pixels[s], s))
    written, panels, details = [], [], 0
    for stem in ranked:
        if len(written) == cfg.overlays:
            break
        if stem not in images:
            continue
        try:
            image = load_image(images[stem])
        except UNREADABLE as e:  # scored without it: only its picture is lost
            log.warning("%s; no overlay for it, the next image is drawn", first_line(e))
            continue
        maps = {"annotation": subset.mask(stem)}
        for name, (d, class_id) in dirs.items():
            p = find_png(d, split, stem)
            if p is not None:  # fused labels may lack a test image; the others were checked
                maps[name] = to_binary(read_label(p), class_id, keep_ignore=True)
        panels = [n for n in ("annotation", *SOURCES) if n in maps]
        thumbs = [overlay(image, maps[n], SOURCE_COLORS[n], 384) for n in panels]
        # a panel with 255 pixels (unannotated, uncertain, ignored) says what its magenta is;
        # before, nothing in the report did
        captions = [f"{n}; magenta: 255" if (maps[n] == IGNORE).any() else n for n in panels]
        rows = [list(zip(thumbs, captions, strict=True))]
        layers = [(maps[n], SOURCE_COLORS[n]) for n in panels]
        detail = detail_overlays(image, maps["annotation"], layers, thumbs)
        if detail is not None:  # the densest outlines enlarged, boxed in the row above
            enlarged, zoom = detail
            captions = [f"{zoom:.2g}x the image's pixels"] + [""] * (len(panels) - 1)
            rows.append(list(zip(enlarged, captions, strict=True)))
            details += 1
        row = _grid(rows)
        written.append(atomic_write_bytes(out / "overlays" / f"{stem}.jpg", jpeg_bytes(row, 88)))
    return written, panels, details


def _caption_size(caption: str) -> tuple[int, int]:
    """The black box a caption is written in: ``(width, height)`` in pixels."""
    import cv2

    (tw, th), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    return tw + 10, th + 12


def _tile(t: np.ndarray, caption: str) -> np.ndarray:
    """An overlay thumbnail with its caption in its top-left corner (none when empty)."""
    import cv2

    t = t.copy()
    if caption:
        bw, bh = _caption_size(caption)
        th = bh - 12
        t[:bh, :bw] = 0  # the box's bw x bh pixels (cv2.rectangle draws its corner inclusive)
        cv2.putText(
            t, caption, (5, th + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA
        )
    return t


def _grid(rows: list[list[tuple[np.ndarray, str]]]) -> np.ndarray:
    """Rows of ``(thumbnail, caption)`` as one picture, 4 white pixels apart. Each caption is
    written in its thumbnail's top-left corner where every caption fits there (its box no wider
    than the thumbnail, no taller than a third of it); else each goes in a band above its
    thumbnail, and each column is as wide as its widest caption or thumbnail (white beside it),
    so that the panels of a very wide or tall photo (a 384x19 or 19x384 thumbnail) are named:
    before, the box covered a 384x19 thumbnail and "annotation" read "an" on a 19-px one."""
    boxes = {c: _caption_size(c) for row in rows for _, c in row if c}
    if all(
        boxes[c][0] <= t.shape[1] and 3 * boxes[c][1] <= t.shape[0]
        for row in rows
        for t, c in row
        if c
    ):
        rows_drawn = [_row([_tile(t, c) for t, c in row]) for row in rows]
    else:
        band = max(h for _, h in boxes.values())
        widths = [
            max(max(t.shape[1], boxes[c][0] if c else 0) for t, c in column)
            for column in zip(*rows, strict=True)
        ]
        rows_drawn = []
        for row in rows:
            cells = []
            for (t, c), width in zip(row, widths, strict=True):
                cell = np.full((band + t.shape[0], width, 3), 255, np.uint8)
                cell[band:, : t.shape[1]] = t
                cells.append(_tile(cell, c))
            rows_drawn.append(_row(cells))
    return np.concatenate(
        [np.pad(r, ((0, 4), (0, 0), (0, 0)), constant_values=255) for r in rows_drawn]
    )[:-4]


def _row(tiles: list[np.ndarray]) -> np.ndarray:
    """Thumbnails side by side, 4 white pixels apart."""
    return np.concatenate(
        [np.pad(t, ((0, 0), (0, 4), (0, 0)), constant_values=255) for t in tiles], axis=1
    )


def _split_data(data: Path | None, split: str, labels: bool) -> SegDataset | None:
    """The split of the dataset the report reads its photos (and, with ``--pred``, labels)
    from; None without one. A dataset ``engine synth`` draws now or stopped half way is
    refused (:meth:`DatasetSpec.check_finished`); before, its scenes so far passed for it."""
    if not data:
        return None
    spec = load_spec(data)
    spec.check_not_stopped("engine report")
    return SegDataset(spec, split, require_labels=labels)


def _data_root(
    cfg: ReportConfig, subset: Subset, run: LabelRun | None
) -> tuple[str | None, str | None]:
    """The dataset root (images for the overlays, labels for the per-class table) and where it
    came from: ``--data``, else the root the subset was imported against or the label run
    ``run`` labelled, where that folder still exists; ``(None, None)`` without one."""
    if cfg.data:
        return _precise_root(cfg.data, "--data")
    recorded = [(subset.data_root, f"{subset.root / 'subset.json'}")]
    if run is not None:
        recorded.append((run.data_root, f"{Path(cfg.pseudo) / 'run.json'}"))
    for root, source in recorded:
        if root and Path(root).is_dir():
            return _precise_root(str(root), source)
    return None, None


def _fused_source(root: str | os.PathLike) -> Path | None | bool:
    """For a fused dataset (``engine fuse``'s output), the source dataset its record names
    (None when it names none); False for any other folder."""
    record = Path(root) / FUSE_RECORD
    if not record.is_file():
        return False
    try:
        doc = read_json(record, FUSE_RECORD)
    except ValueError:
        doc = None
    return fused_source(doc, root)


def _precise_root(root: str, source: str) -> tuple[str, str]:
    """``(root, source)``, or for a fused dataset (``engine fuse``'s output) its source dataset:
    the fused labels hold pseudo labels, which the per-class table would score the model
    against as if they were true. ``FileNotFoundError`` when the source cannot be found."""
    original = _fused_source(root)
    if original is False:
        return root, source
    if original is None or not original.is_dir():
        raise FileNotFoundError(
            f"{root}: a fused dataset (engine fuse), whose labels hold pseudo labels, and its "
            f"source dataset ({original or 'not recorded'}) is not found from here; give the "
            "source dataset as --data"
        )
    log.warning(
        "%s is a fused dataset: its labels hold pseudo labels, so the report reads images and "
        "precise labels from its source dataset %s",
        root,
        original,
    )
    return str(original), f"{Path(root) / FUSE_RECORD}: the source of the fused dataset ({source})"


def other_data_warnings(cfg: ReportConfig, subset: Subset, root: str | None) -> list[str]:
    """A line when ``--data`` (read from ``root``, a fused dataset's source already put in its
    place) is another folder than the dataset the subset records (``engine annotate import
    --data``, as typed and as resolved) where that still exists: its labels and images would be
    read for the subset's stems, which another dataset of the same layout also has. Paths are
    compared resolved; a copy of the dataset elsewhere is warned about too."""
    if not cfg.data or root is None:
        return []
    recorded = subset.data_root
    if recorded is None or not recorded.is_dir():
        return []
    same = {recorded.resolve()}
    source = _fused_source(recorded)  # recorded at import as a fused dataset: its source
    if isinstance(source, Path):
        same.add(source.resolve())
    if Path(root).resolve() in same:
        return []
    return [
        f"{subset.root / 'subset.json'}: the subset was annotated on the images of {recorded}, "
        f"but --data is {cfg.data}: the per-class table and the overlays read that dataset's "
        "labels and images for the annotated images; unless it is a copy of the same dataset, "
        "leave --data out or give the recorded one"
    ]


def check_data_sizes(subset: Subset, ds: SegDataset, data_source: str | None) -> None:
    """``ValueError`` before any scoring when an image or label of the dataset the report
    reads (``ds``: the subset's split) is not the size of the annotated mask of the same stem:
    the dataset is not the one the subset was annotated on (a ``--data`` of another resolution
    with the same stems). The error names the dataset's file, not the prediction or the mask
    that the scoring would have blamed. Sizes come from the files' headers; a file that cannot
    be read is left to the step that reads it."""
    from engine.datasets import image_size, label_size

    for sample in ds.samples:
        if sample.stem not in subset.stems:
            continue
        try:
            want = label_size(subset.mask_path(sample.stem))
        except ValueError:
            continue
        # a label map is of its stored size, an image of its displayed one (EXIF orientation):
        # a label PNG holding its photo's EXIF block was turned here, and refused
        for path, size_of in ((sample.image_path, image_size), (sample.label_path, label_size)):
            if path is None:
                continue
            try:
                size = size_of(path)
            except ValueError:
                continue
            if size != want:
                raise ValueError(
                    f"{path}: is {size[0]}x{size[1]} but the annotated mask "
                    f"{subset.mask_path(sample.stem)} is {want[0]}x{want[1]}: is the dataset "
                    f"({data_source}) the one the subset was annotated on?"
                )


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
