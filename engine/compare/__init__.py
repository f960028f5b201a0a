"""``engine compare``: one class's IoU / BIoU / BF1 for several prediction sets, side by side
(the MaSS13K paper's Table 4: Grounded-SAM pseudo labels vs the jointly trained model).

Every source is paired with the annotated ground truth by file stem, as in ``engine evaluate``.
Files may be binary masks (0/1/255) or full label maps holding the class's id; see
:func:`resolve_input`. Deltas are against the first source.

The ground truth may also be an annotated subset (``engine annotate import``): its masks are
scored, its class must be the one compared, and a source folder may then be a label run or a
prediction folder holding the subset's split (``RUN/labels/<split>``, ``DIR/<split>``). Or a
dataset's root or spec with ``split``: that split's label maps, as ``engine evaluate --gt DATASET
--split S`` reads them.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import (
    atomic_write_json,
    atomic_write_text,
    check_report_file,
    outputs_around,
)
from annotations.labelmap import byte_histogram, read_label, validate_label
from annotations.labelrun import read_run_info, run_folder_of
from annotations.subset import (
    check_mask_values,
    check_subset_class,
    edited_since_import,
    read_subset,
    subset_at,
    unlisted_line,
    unlisted_masks,
)
from annotations.taxonomy import MASS13K, Taxonomy, class_key
from engine.datasets import (
    DatasetSpec,
    check_folder_finished,
    check_fused_finished,
    edited_masks_line,
    replaced_subset_photos,
)
from engine.evaluate import (
    RESIZE_MODES,
    Truth,
    dataset_spec,
    fit_to_truth,
    ground_truth,
    maps_digest,
    pair_files,
    split_required,
)
from engine.metrics import (
    BF1_MODES,
    ClassScorer,
    ClassScores,
    PairCounts,
    binary_class_counts,
    is_binary_mask,
)
from engine.metrics.bootstrap import (
    class_counts,
    interval_line,
    interval_record,
    matches_truth,
    measures_nothing,
)
from engine.outputs import (
    DEFAULT_TAXONOMY,
    earlier_record,
    figure_text,
    matplotlib_for,
    png_folders,
    save_figure,
    subplots,
    subset_taxonomy,
    taxonomy_record,
)
from engine.parallel import in_process_workers, map_every_item
from engine.runinfo import config_hash, environment
from engine.runlock import (
    check_not_being_written,
    folders_removed_on_failure,
    record_set_aside,
)
from engine.text import METRICS, counted, format_score, joined, md_cell, md_text, score_cells

log = logging.getLogger(__name__)

INPUT_MODES = ("auto", "binary", "labels")


@dataclass(frozen=True)
class CompareConfig:
    """What ``engine compare`` scores and how."""

    class_name: str  # the class: a name in the taxonomy (case-insensitive) or an integer id
    gt: Path  # folder of annotated ground truth (binary masks or full label maps; 255 = ignore),
    # an annotated subset, or a dataset's root or spec (with ``split``)
    sources: tuple[tuple[str, Path], ...]  # (display name, folder) per prediction set, in order
    taxonomy: Path | None = None  # taxonomy JSON naming the class for every folder; None: each
    # folder's recorded one (predict.json, a fused dataset's taxonomy.json), else MaSS13K
    input: str = "auto"  # "binary", "labels", or "auto": a file holding only 0/1/255 is binary
    bf1_mode: str = "dataset"  # Boundary F1 aggregation: "dataset" or "image"
    resize_pred: str | None = None  # None: a size mismatch is an error; "nearest": resize preds
    workers: int = 1  # worker processes
    json_out: Path | None = None  # JSON report
    markdown_out: Path | None = None  # Markdown table
    plot_out: Path | None = None  # bar chart PNG (needs matplotlib)
    progress: bool = True  # progress bars on stderr
    # the split of the dataset given as ``gt`` (its root or spec) to score, as engine evaluate
    # --split; None: ``gt`` is a subset (which names its split) or a folder of label maps
    split: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "workers", in_process_workers(self.workers))  # 0: as 1
        if not self.sources:
            raise ValueError("give at least one --source NAME=DIR")
        repeated = _repeated_names(n for n, _ in self.sources)
        if repeated:  # the caller named each: parse_sources hints bare DIRs
            raise ValueError(f"--source names must be unique, got {repeated}; give each source "
                             "its own name")  # fmt: skip
        if self.input not in INPUT_MODES:
            raise ValueError(f"input must be one of {INPUT_MODES}, got {self.input!r}")
        if self.bf1_mode not in BF1_MODES:
            raise ValueError(f"bf1_mode must be one of {BF1_MODES}, got {self.bf1_mode!r}")
        if self.resize_pred is not None and self.resize_pred not in RESIZE_MODES:
            raise ValueError(f"resize_pred must be one of {RESIZE_MODES} or None")


def parse_source(text: str) -> tuple[str, Path]:
    """``"NAME=DIR"`` -> ``(NAME, Path(DIR))``; a bare ``DIR`` is named after the folder."""
    if "=" in text:
        name, _, folder = text.rpartition("=")
        name = name.strip()
        if not name or not folder:
            raise ValueError(f"--source must look like 'NAME=DIR', got {text!r}")
        return name, Path(folder)
    return Path(text).name, Path(text)


def parse_sources(texts: Sequence[str]) -> tuple[tuple[str, Path], ...]:
    """:func:`parse_source` of each text; a name given more than once is an error whose hint
    tells a bare ``DIR`` (named after its folder: ``run1/pred`` and ``run2/pred`` are both
    ``pred``) from a typed ``NAME=DIR`` (``pred=run1/pred`` twice names ``pred`` twice)."""
    sources = tuple(parse_source(t) for t in texts)
    repeated = _repeated_names(n for n, _ in sources)
    if repeated:
        names = [n for n, _ in sources]
        bare = any(
            "=" not in t and names.count(n) > 1 for t, (n, _) in zip(texts, sources, strict=True)
        )
        hint = (
            " (a bare DIR is named after its folder); name each with --source NAME=DIR"
            if bare
            else "; give each source its own name"
        )
        raise ValueError(f"--source names must be unique, got {repeated}{hint}")
    return sources


def _repeated_names(names: Iterable[str]) -> str:
    """``"A 3 times and B twice"`` for the names given more than once ('' for none)."""
    counts = Counter(names)
    said = [
        f"{n} {'twice' if k == 2 else f'{k} times'}" for n, k in sorted(counts.items()) if k > 1
    ]
    return joined(said) if said else ""


def resolve_class(name: str, taxonomy: Taxonomy) -> tuple[str, int | None]:
    """The class's display name and id in ``taxonomy`` (None when it is not there: only binary
    masks can then be scored)."""
    if name in taxonomy:  # an id given was made a name by class_by_name
        c = taxonomy.get(name)
        return c.name, c.id
    return name.strip(), None


def resolve_input(
    label: np.ndarray,
    path: Path,
    class_id: int | None,
    mode: str,
    missing: str = "the class is not in the taxonomy",
) -> int:
    """The value that marks the class in this file: 1 for a binary mask, else the class id.

    ``auto`` reads a file holding only 0, 1 and 255 as a binary mask. (When the class id is 1
    both readings coincide; for another id, a full label map containing only classes 0 and 1
    would be misread: a folder an engine output records is read as ``labels``,
    :func:`_folder_mode`.) ``missing`` says which taxonomy lacks the class, for a full label map
    when ``class_id`` is None.
    """
    binary = mode == "binary" or (mode == "auto" and is_binary_mask(label))
    if binary:
        if mode == "binary" and not is_binary_mask(label):
            bad = sorted(set(np.unique(label).tolist()) - {0, 1, 255})[:10]
            raise ValueError(f"{path}: expected a binary mask (0/1/255), found values {bad}")
        return 1
    if class_id is None:
        raise ValueError(
            f"{path}: a full label map (values beyond 0/1/255), but {missing}; pass --taxonomy "
            "with the class, or binary masks"
        )
    return class_id


def children_outside(taxonomy: Taxonomy, class_id: int | None, other: Taxonomy) -> list[int]:
    """The classes of ``taxonomy`` carved out of ``class_id`` (directly or through another new
    class) that ``other`` does not have: a joint model's Bicycle and Car, when Others is scored
    against precise labels of the base classes, where a bicycle is Others."""
    if class_id is None:
        return []
    return [c.id for c in taxonomy if class_id in taxonomy.ancestors(c.id) and c.name not in other]


@dataclass(frozen=True)
class _Reading:
    """How one folder's files are read: the class's id in its taxonomy (None: not there, so
    only binary masks can be scored), the taxonomy, what an error says it lacks, and the
    ``--input`` mode its files are read in (:func:`_folder_mode`)."""

    class_id: int | None
    taxonomy: Taxonomy
    lacks: str
    mode: str


# engine outputs whose label maps are binary masks (0/1/255): an annotated subset, a label run
BINARY_RECORDS = ("subset.json", "run.json")


def binary_output(folder: Path) -> tuple[Path, str] | None:
    """``(root, record)`` of the label run or annotated subset whose masks ``folder`` holds: the
    nearest engine output around it (:func:`outputs_around`) when ``folder`` is a run, its
    ``labels`` or ``labels/<split>``, or a subset's root or ``masks``; None otherwise. Any
    folder lying in one was taken for its masks: predictions written to ``RUN/pred`` (engine
    predict allows it, predict.json nearer) and a user's own masks kept in ``RUN/car_manual``
    were refused as the run's class and read as binary masks."""
    folder = Path(folder)
    near = next(iter(outputs_around(folder)), None)
    if near is None or near[1] not in BINARY_RECORDS:
        return None
    root, record = near
    if record == "subset.json":
        return near if folder in (root, root / "masks") else None
    return near if root / "labels" in (folder, folder.parent) or folder == root else None


def _folder_mode(cfg: CompareConfig, source: str, folder: Path) -> str:
    """``--input`` for one folder: ``auto`` is ``labels`` where an engine output records the
    folder's taxonomy (:func:`folder_classes`: predictions, a fused dataset's labels), which
    writes full label maps only; read file by file, a prediction holding only Others and Human
    (0 and 1) was taken for a binary mask and its Human pixels scored as the class. A subset's
    masks or a label run's labels stay ``auto`` (binary) wherever they are (a subset imported
    into a fused dataset's folder finds its taxonomy above)."""
    recorded = cfg.taxonomy is None and source != DEFAULT_TAXONOMY
    binary = binary_output(folder) is not None
    return "labels" if cfg.input == "auto" and recorded and not binary else cfg.input


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


@dataclass
class SourceScores:
    """One row of the comparison."""

    name: str  # display name of the source
    folder: str  # its folder
    scores: ClassScores  # the class's IoU / BIoU (x100) and BF1
    delta: dict[str, float | None] = field(default_factory=dict)  # vs the first source
    class_id: int | None = None  # the class's id in its full label maps (None: not in its taxonomy)
    taxonomy_source: str = ""  # where its taxonomy came from (:func:`folder_classes`)
    # the delta's 95% paired-bootstrap interval (engine.metrics.bootstrap.interval_record);
    # None for the first source
    delta_interval: dict[str, Any] | None = None
    # equal to the ground truth on every image (engine.metrics.bootstrap.matches_truth): the
    # row measures nothing
    matches_truth: bool = False
    # its new classes counted as the class (children_outside): not in the ground truth's classes
    folded: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # the maps scored, in the stems' order

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "folder": self.folder,
            "class_id": self.class_id,
            "taxonomy_source": self.taxonomy_source,
            **self.scores.to_json(),
            "delta": self.delta,
            "delta_interval": self.delta_interval,
            "matches_truth": self.matches_truth,
            "folded": self.folded,
        }


@dataclass
class CompareReport:
    """The whole comparison."""

    class_name: str  # display name of the class
    class_id: int | None  # its id, where every folder's taxonomy agrees (else per source)
    rows: list[SourceScores]  # one per source, in the given order
    images: int  # annotated images
    gt: str = ""  # the ground-truth folder
    stems: list[str] = field(default_factory=list)  # the annotated images scored, in order

    def warnings(self, name: Callable[[str], str] = str) -> list[str]:
        """One line per source equal to the ground truth on every image; ``name`` writes a
        source's quoted name (Markdown: :func:`md_text`)."""
        return [
            f"{r.folder}: source {name(repr(r.name))} equals the ground truth {self.gt} "
            + measures_nothing(
                self.images,
                "its",
                "is it the ground truth itself, or were these annotations imported uncorrected "
                "from it?",
            )
            for r in self.rows
            if r.matches_truth
        ]

    def to_json(self, config: CompareConfig | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "class": self.class_name,
            "class_id": self.class_id,
            "images": self.images,
            "sources": [r.to_json() for r in self.rows],
            "warnings": self.warnings(),
        }
        if config is not None:
            cfg = asdict(config)
            cfg = {k: _jsonable(v) for k, v in cfg.items()}
            if cfg["split"] is None:  # no --split: the config (and hash) as before it
                del cfg["split"]
            data["config"] = cfg
            data["config_hash"] = config_hash(cfg)
            data["environment"] = environment(torch_used=False)
            # what each source's maps were: engine info of the record says if they changed
            data["stems"] = self.stems
            for row, scored in zip(data["sources"], self.rows, strict=True):
                row["maps_sha256"] = maps_digest(scored.files) if scored.files else None
        return data

    def to_markdown(self) -> str:
        """A Markdown table in the layout of the paper's Table 4, deltas in parentheses."""
        lines = [
            f"**{md_text(self.class_name)}** ({counted(self.images, 'annotated image')})",
            "",
            "| source | IoU | BIoU | BF1 |",
            "|---|---:|---:|---:|",
        ]
        for i, r in enumerate(self.rows):
            cells = score_cells(r.scores.to_json())
            if i > 0:
                deltas = score_cells(r.delta, sign=True)
                cells = [
                    f"{cell} ({d})" if r.delta.get(key) is not None else cell
                    for cell, d, (key, _, _) in zip(cells, deltas, METRICS, strict=True)
                ]
            lines.append(f"| {md_cell(r.name)} | " + " | ".join(cells) + " |")
        intervals = self.interval_lines(md_text)  # names as typed, as in the table
        if intervals:
            lines += ["", *intervals]
        for warning in self.warnings(md_text):  # names as typed, as in the table
            lines += ["", f"> **Warning**: {warning}"]
        return "\n".join(lines) + "\n"

    def interval_lines(self, name: Callable[[str], str] = str) -> list[str]:
        """How sure each source's delta against the first is, one line per source; ``name``
        writes a source's name (Markdown: :func:`md_text`)."""
        first = name(self.rows[0].name)
        return [
            interval_line(name(r.name), first, r.delta_interval)
            for r in self.rows[1:]
            if r.delta_interval
        ]


def check_not_0_255(gt: Path) -> None:
    """``ValueError`` when a folder of binary ground truth without a single class pixel holds
    255: masks saved as 0/255 (a common export), whose 255 would be read as "unannotated", so
    every score would be measured on nothing. One pass, which stops at the first file that
    marks the class (1)."""
    with_255 = None
    for path in sorted(gt.glob("*.png")):
        label = read_label(path)
        if (label == 1).any():
            return
        if with_255 is None and (label == 255).any():
            with_255 = path
    if with_255 is not None:
        raise ValueError(
            f"{gt}: no ground-truth file marks the class (1), and {with_255.name} holds 255, "
            "which reads as unannotated: are these 0/255 masks? Import them as an annotated "
            "subset (engine annotate import --format png --png-binary) and give that as --gt"
        )


def _jsonable(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    return v


def class_by_name(
    given: str, taxonomy: Taxonomy, source: str, subset_class: str | None = None
) -> str:
    """The name of the class compared. An id (``--class 7``) is resolved once, in the ground
    truth's taxonomy (``taxonomy``, read from ``source``; for an annotated subset, whose folder
    records none, MaSS13K and its class, as ``engine report`` reads it); every folder then
    finds that name in its own taxonomy, since a fused dataset may hold the class at another
    id than the model's predictions."""
    text = given.strip()
    if not text.isdecimal():  # '٣' (Arabic-Indic) is 3 as int reads it; '²' is a name, not a number
        return text
    if subset_class is not None and source == DEFAULT_TAXONOMY and subset_class not in taxonomy:
        taxonomy, source = subset_taxonomy(subset_class)
    if int(text) >= len(taxonomy):
        raise ValueError(
            f"--class {text}: no class has that id in the ground truth's taxonomy ({source}: "
            f"{taxonomy.listed()}); give the class by name"
        )
    return taxonomy[int(text)].name


def source_folder(folder: Path, split: str | None) -> Path:
    """The folder of a source's PNGs: ``folder`` itself, or with the subset's ``split`` known,
    the first of :func:`engine.outputs.png_folders` holding PNGs (as the report finds them)."""
    folder = Path(folder)
    if split is None:
        if (folder / "run.json").is_file():  # its PNGs are under labels/<split>: which one?
            raise ValueError(
                f"{folder}: a label run; give its labels/<split> folder, or an annotated "
                "subset (engine annotate import) as --gt, which names the split"
            )
        return folder
    return next((d for d in png_folders(folder, split) if any(d.glob("*.png"))), folder)


def folder_classes(cfg: CompareConfig, *folders: Path) -> tuple[Taxonomy, str]:
    """The taxonomy of a folder's label maps and where it came from: ``cfg.taxonomy`` when
    given, else the first recorded at ``folders`` (:func:`engine.outputs.taxonomy_record`:
    engine predict's predict.json, a fused dataset's taxonomy.json), else MaSS13K."""
    if cfg.taxonomy is not None:
        return Taxonomy.load(cfg.taxonomy), str(cfg.taxonomy)
    found = taxonomy_record(*folders)
    return (found[0], str(found[1])) if found else (MASS13K, DEFAULT_TAXONOMY)


def _lacks(class_name: str, taxonomy: Taxonomy, source: str) -> str:
    """What a file's error says when its taxonomy has no such class."""
    return f"its taxonomy ({source}: {taxonomy.listed()}) has no class {class_name!r}"


def _class_in(
    cfg: CompareConfig, class_name: str, taxonomy: Taxonomy, source: str, what: str
) -> int | None:
    """The id of ``class_name`` in ``taxonomy`` (None: binary masks only), refused for full
    label maps."""
    _, class_id = resolve_class(class_name, taxonomy)
    if class_id is None and cfg.input == "labels":
        raise ValueError(
            f"class {class_name!r} is not in the taxonomy of {what} ({source}: "
            f"{taxonomy.listed()}); pass --taxonomy with it"
        )
    return class_id


def _check_recorded_class(
    cfg: CompareConfig, named: str, name: str, given: Path, split: str | None
) -> None:
    """Refuse a source whose recorded taxonomy (a model's ``predict.json``, a fused dataset's
    ``taxonomy.json``) lacks the class: made before the class was added (the 8-class model's
    predictions, for Car), its maps hold none of it. Before, each file failed alone with
    advice to pass --taxonomy, which would misnumber the recorded classes."""
    folder = source_folder(given, split)
    tax, tax_source = folder_classes(cfg, Path(given), folder, folder.parent)
    recorded = cfg.taxonomy is None and tax_source != DEFAULT_TAXONOMY
    if (
        recorded
        and resolve_class(named, tax)[1] is None
        and _folder_mode(cfg, tax_source, folder) == "labels"
    ):
        raise ValueError(
            f"source {name!r}: {_lacks(named, tax, tax_source)}: it was made before "
            f"{named} was added, so it predicts none; leave it out of --source, or compare a "
            "class it has"
        )


def check_held_class(named: str, what: str, folder: Path) -> None:
    """Refuse a folder of binary masks that an engine output records as another class's: a
    label run's (``run.json``) or an annotated subset's (``subset.json``), the nearest one the
    folder is or lies in. Its 1s are that class, whatever ``--class`` says; before, a label run
    of Bicycle given as a source of ``--class Car`` was scored as Car without a word. A
    folder of a run's confidence maps or instances (``RUN/confidence/test``) is no masks at all:
    refused, where its 0..255 values were scored as a class."""
    inside = run_folder_of(folder)
    if inside is not None and inside[1] not in ("", "labels"):
        root, name = inside
        raise ValueError(
            f"{what}: {folder} is in the {name} folder of the label run {root}, not masks of a "
            f"class; give its labels ({root / 'labels'}/<split>)"
        )
    if (found := binary_output(folder)) is None:
        return
    root, record = found
    run = record == "run.json"
    held = read_run_info(root / record).class_name if run else read_subset(root).class_name
    if class_key(held) != class_key(named):
        raise ValueError(
            f"{what}: {root / record} holds {held}, not {named}: its masks are {held}'s; "
            f"give the {named} ones, or --class {held}"
        )


def dataset_split(cfg: CompareConfig, subset: Any, spec: DatasetSpec | None) -> Truth | None:
    """The label maps of ``cfg.split`` of the dataset ``cfg.gt`` (its root or spec), read as
    ``engine evaluate --gt DATASET --split S`` reads them; None without ``--split``. A subset's
    own split may be given (the same); another is refused, as is ``--split`` for a folder, and a
    dataset without it (evaluate's line: give --split, naming its splits). ``spec``: ``cfg.gt``'s
    :func:`engine.evaluate.dataset_spec`, loaded once by the caller."""
    if cfg.split is None:
        if subset is None and spec is not None:
            raise split_required(Path(cfg.gt), spec)  # a dataset, not a folder of label maps
        return None
    if subset is not None:
        if cfg.split != subset.split:
            raise ValueError(
                f"--split {cfg.split}: {cfg.gt} is an annotated subset of split {subset.split}; "
                "leave --split out (the subset names its split)"
            )
        return None
    return ground_truth(Path(cfg.gt), cfg.split, "engine compare", spec)


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


def write_plot(report: CompareReport, path: Path) -> Path:
    """A bar chart PNG: one panel per metric, one bar per source. Needs matplotlib."""
    mpl = matplotlib_for("--plot")
    fig, axes = subplots(1, 3, figsize=(10, 3.6))
    names = [figure_text(r.name) for r in report.rows]  # no boxes for glyphs no font has
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, label, digits) in zip(axes, METRICS, strict=True):
        values = [getattr(r.scores, key) for r in report.rows]
        shown = [0.0 if math.isnan(v) else v for v in values]
        bars = ax.bar(
            range(len(names)), shown, color=[colors[i % len(colors)] for i in range(len(names))]
        )
        for b, v in zip(bars, values, strict=True):
            ax.annotate(
                format_score(None if math.isnan(v) else v, digits),
                (b.get_x() + b.get_width() / 2, b.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_title(label + (" (x100)" if key != "bf1" else ""))
        ax.set_xticks(
            range(len(names)), names, rotation=20, ha="right", fontsize=8, parse_math=False
        )
        ax.set_ylim(0, (100 if key != "bf1" else 1) * 1.08)  # room for a perfect score's value
    title = f"{figure_text(report.class_name)}: {counted(report.images, 'annotated image')}"
    fig.suptitle(title, parse_math=False)  # names as typed: two '$' are no mathtext
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)
