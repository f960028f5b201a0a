"""``engine evaluate``: score a folder of predicted label maps against a folder of ground truth,
or against a split of a dataset (its own label maps, where its spec says they are).

Files are paired by stem (``PRED_DIR/x.png`` with ``GT_DIR/x.png``, or with the label map of the
dataset's image ``x``, as ``engine predict --data`` names its output; a stem composed otherwise,
Unicode NFC or NFD, pairs too). Per image the counts come
from :func:`engine.metrics.pair_counts`, optionally in several worker processes (counts are
integers, so the sum does not depend on how images are spread over workers).
"""

from __future__ import annotations

import hashlib
import shlex
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotations.fileio import (
    FUSE_RECORD,
    atomic_write_json,
    check_report_file,
    first_line,
    not_this_output,
    output_kind,
    spec_file,
)
from annotations.labelmap import read_label
from annotations.subset import subset_at
from annotations.taxonomy import MASS13K, ClassInfo, Taxonomy, class_key
from engine.datasets import DatasetSpec, SegDataset, check_folder_finished, load_spec
from engine.devices import resolve_device
from engine.metrics import BF1_MODES, EvalResult, PairCounts, SegEvaluator, pair_counts
from engine.outputs import DEFAULT_TAXONOMY, taxonomy_record, unfinished_prediction
from engine.parallel import in_process_workers, map_every_item
from engine.runinfo import config_hash, environment, file_sha256
from engine.runlock import check_not_being_written, folders_removed_on_failure
from engine.text import joined

LABEL_EXTS = (".png",)
RESIZE_MODES = ("nearest",)


@dataclass(frozen=True)
class EvaluateConfig:
    """What ``engine evaluate`` scores and how."""

    pred: Path  # folder of predicted label PNGs
    gt: Path  # folder of ground-truth label PNGs (255 = ignore), or a dataset's root or spec
    split: str | None = None  # the split of the dataset ``gt`` whose label maps are scored
    num_classes: int | None = None  # classes 0..N-1; None: from the taxonomy
    taxonomy: Path | None = None  # taxonomy JSON; None (and no num_classes): MaSS13K's 7 classes
    bf1_mode: str = "dataset"  # Boundary F1 aggregation: "dataset" or "image"
    workers: int = 1  # worker processes (1: in this process)
    resize_pred: str | None = None  # None: a size mismatch is an error; "nearest": resize preds
    json_out: Path | None = None  # where to write the JSON report, if anywhere
    progress: bool = True  # draw a progress bar on stderr
    device: str | None = None  # None: numpy/OpenCV; a torch device ("cuda") for the torch path
    # new classes (a parent in the taxonomy) scored as their parents: None when the ground truth
    # marks none of them (precise base-class labels), True always, False never
    fold_new_classes: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "workers", in_process_workers(self.workers))  # 0: as 1
        if self.device not in (None, "auto") and self.workers > 1:
            raise ValueError(  # --device cpu too: the torch path counts in this one process
                f"--device {self.device} and --workers {self.workers} do not combine: the torch "
                "path counts in one process; give --workers 1, or leave out --device"
            )
        if self.bf1_mode not in BF1_MODES:
            raise ValueError(f"bf1_mode must be one of {BF1_MODES}, got {self.bf1_mode!r}")
        if self.resize_pred is not None and self.resize_pred not in RESIZE_MODES:
            raise ValueError(
                f"resize_pred must be one of {RESIZE_MODES} or None, got {self.resize_pred!r}"
            )
        if self.num_classes is not None and self.taxonomy is not None:
            raise ValueError(
                "--num-classes and --taxonomy do not combine: give one (classes 0..N-1, or a "
                "taxonomy's named classes)"
            )
        if self.num_classes is not None and not 1 <= self.num_classes <= 255:
            raise ValueError(f"num_classes must be in 1..255, got {self.num_classes}")


def generic_taxonomy(num_classes: int) -> Taxonomy:
    """Classes ``0..N-1`` named ``"0"``, ``"1"``, ...; used with ``--num-classes``."""
    return Taxonomy(tuple(ClassInfo(i, str(i), (0, 0, 0)) for i in range(num_classes)))


@dataclass(frozen=True)
class Truth:
    """The ground truth scored: a folder of ``<stem>.png`` label maps, or a split of a dataset,
    whose label maps its spec finds (Cityscapes' ``gtFine/val/<city>/<stem>_gtFine_labelTrainIds
    .png``, Pascal VOC's listed stems), each under its image's stem."""

    files: dict[str, Path]  # stem -> label map
    where: str  # how messages name it: the folder, or "ROOT (split val)"
    record: tuple[Taxonomy, Path] | None  # the taxonomy it records, and the file
    dataset: dict[str, str] | None = None  # a dataset's split: its root, split and label folder
    image_suffix: str | None = None  # the dataset's spec's (Cityscapes' _leftImg8bit.png)


# ground_truth's ``spec`` when the caller has not loaded it (None: loaded, and no dataset)
LOAD: Any = object()


def dataset_spec(gt: Path) -> DatasetSpec | None:
    """The spec of the dataset ``gt`` names, loaded once (a spec file, a folder holding one:
    ``dataset.yaml``, Cityscapes, a fused dataset; or a folder without label maps of its own
    where the MaSS13K layout finds splits: ``data/`` with ``images/<split>``); None where ``gt``
    is no dataset but a folder of label maps (or nothing). A spec file's errors raise."""
    gt = Path(gt)
    if gt.is_file():
        return None if gt.suffix.lower() in LABEL_EXTS else load_spec(gt)
    if not gt.is_dir():
        return None
    if spec_file(gt) is not None:
        return load_spec(gt)
    if _holds_label_maps(gt):
        return None
    try:
        spec = load_spec(gt)
        return spec if spec.available_splits() else None
    except (OSError, ValueError):
        return None


def _holds_label_maps(folder: Path) -> bool:
    """Whether ``folder`` holds label map files of its own (a folder of label maps, not a
    dataset's root)."""
    return folder.is_dir() and any(
        p.suffix.lower() in LABEL_EXTS and p.is_file() for p in folder.iterdir()
    )


def dataset_of(folder: Path) -> str:
    """``"; it holds the label maps of the dataset ROOT: give --gt ROOT --split S"`` for the end
    of an error about ``folder`` given as a folder of label maps where a dataset spec up to three
    folders above reads a split's label maps from it (Cityscapes' ``gtFine/val``, whose maps are
    in city folders, COCO-Stuff's ``annotations/val2017`` with two maps an image, Pascal VOC's
    ``SegmentationClass`` of every split); else ``""``."""
    folder = Path(folder)
    for up in list(folder.parents)[:3]:
        if spec_file(up) is None:
            continue
        try:
            spec = load_spec(up)
            splits = [
                s
                for s in spec.available_splits()
                if (d := spec.label_dir(s)) is not None and d.resolve() == folder.resolve()
            ]
        except (OSError, ValueError):
            continue
        if splits:
            which = splits[0] if len(splits) == 1 else "S (" + ", ".join(splits) + ")"
            return (
                f"; it holds the label maps of the dataset {up}, whose spec names them: "
                f"give --gt {shlex.quote(str(up))} --split {which}"
            )
    return ""


def split_required(gt: Path, spec: DatasetSpec) -> ValueError:
    """The error for a dataset given as ``--gt`` without ``--split`` (evaluate, compare)."""
    return ValueError(
        f"{gt}: a dataset, not a folder of label maps: give --split, one of "
        + ", ".join(spec.require_splits())
    )


def ground_truth(
    gt: Path, split: str | None, command: str = "engine evaluate", spec: Any = LOAD
) -> Truth:
    """The label maps ``engine evaluate --gt GT [--split S]`` scores against: the folder ``gt``,
    or, where ``gt`` is a dataset, its split ``split`` (required then). A dataset's taxonomy is
    its spec's; a folder's, or a spec's that names none, the one recorded around its labels.
    ``command`` is named in a refusal (``engine compare --gt`` reads it too; before, a stopped
    synth refused compare as "engine evaluate would read part of the dataset"). ``spec``:
    :func:`dataset_spec` of ``gt`` where the caller loaded it (``engine compare``), else loaded
    here."""
    gt = Path(gt)
    spec = dataset_spec(gt) if spec is LOAD else spec
    if spec is None and (split is None or gt.exists()):
        if split is not None:
            labels = _holds_label_maps(gt)
            what = "a folder of label maps" if labels else "no dataset spec and no images/<split>"
            raise ValueError(
                f"{gt}: {what}, not a dataset: --split picks a split of a dataset given as --gt "
                "(its root or spec); leave --split out"
                + ("" if labels else " for a folder of label maps")
            )
        check_folder_finished(gt, command)  # D/annotations/test, F/labels/test: D, F stopped
        # a prediction folder or label run written now, as --pred is asked (before, scored)
        check_not_being_written(gt, command, "its label maps")
        files = list_labels(gt, "ground-truth", dataset_of)
        return Truth(files, str(gt), taxonomy_record(gt, gt.parent))
    spec = spec or load_spec(gt)  # no such root: load_spec's "dataset root not found"
    spec.check_finished(command)  # engine synth writing it, or stopped half way
    if split is None:
        raise split_required(gt, spec)
    spec.require_labels(command)
    data = SegDataset(spec, split)
    labels = spec.label_dir(split)
    record = (
        (spec.taxonomy, spec.taxonomy_file)
        if spec.taxonomy_file is not None
        else taxonomy_record(labels, labels.parent)
    )
    where = {"root": str(spec.root), "split": split, "labels": str(labels)}
    files = {s.stem: s.label_path for s in data.samples}
    return Truth(files, f"{gt} (split {split})", record, where, spec.image_suffix)


def named_as_images(pred: Path, truth: Truth) -> str:
    """``"; PRED's maps are named after the image files ..."`` for the end of a pairing error
    when predictions of a dataset whose spec cuts an ``image_suffix`` are named after the whole
    image file names (``engine predict --images`` of Cityscapes' city folders writes
    ``a_leftImg8bit.png``, while ``--data ROOT --split`` writes ``a.png``, as the split names
    the image); else ``""``."""
    if truth.dataset is None or not truth.image_suffix:
        return ""
    tail = truth.image_suffix[: -len(Path(truth.image_suffix).suffix) or None]
    try:
        stems = list_labels(pred, "prediction")
    except (OSError, ValueError):
        return ""
    named = [s for s in stems if s.endswith(tail) and s[: -len(tail)] in truth.files]
    if not tail or not named:
        return ""
    d = truth.dataset
    return (
        f"; {pred}'s maps are named after the image files ({named[0]}.png), as engine predict "
        f"--images names them: predict with --data {shlex.quote(d['root'])} --split "
        f"{d['split']}, which names them as the dataset names its images ({named[0][: -len(tail)]}"
        ".png)"
    )


def resolve_taxonomy(
    num_classes: int | None,
    taxonomy: Path | None,
    pred: Path,
    gt: Truth,
    fold: bool = True,
) -> tuple[Taxonomy, str, ByName | None]:
    """The classes to score, where they came from, and how one side's ids map onto them by
    name (None: read as they are): ``taxonomy``, else ``num_classes``, else the taxonomies
    recorded beside the predictions and the ground truth (:func:`recorded_classes`)."""
    if taxonomy is not None:
        return Taxonomy.load(taxonomy), str(taxonomy), None
    if num_classes is not None:
        return generic_taxonomy(num_classes), f"--num-classes {num_classes}", None
    return recorded_classes(pred, gt, fold)


@dataclass(frozen=True)
class ByName:
    """One side's label maps (the ground truth or the predictions) read in the taxonomy that
    side records and mapped onto the scored classes by name: a fused dataset that put Car at 7
    and Bicycle at 8, scored against a model's predictions with Bicycle at 7 and Car at 8.
    Scored by id, each would count as the other."""

    side: str  # "ground truth" or "predictions"
    taxonomy: Taxonomy  # its own classes, which its files are checked against
    source: str  # the file they were read from
    lut: np.ndarray  # (256,) uint8: its id -> the scored id; 255 stays
    moved: dict[str, tuple[int, int]]  # class -> (its id, the scored id), where they differ
    # its classes the scored ones lack, scored as their nearest ancestor there (class -> it)
    folded: dict[str, str] = field(default_factory=dict)

    @classmethod
    def onto(cls, side: str, own: Taxonomy, source: str, scored: Taxonomy) -> ByName:
        lut = np.arange(256, dtype=np.uint8)
        moved, folded = {}, {}
        for c in own:
            if c.name not in scored:  # a class added after the scored ones: as its ancestor
                up = next(own[a].name for a in own.ancestors(c.id) if own[a].name in scored)
                folded[c.name] = scored.get(up).name
                lut[c.id] = scored.id_of(up)
                continue
            lut[c.id] = to = scored.id_of(c.name)
            if to != c.id:
                moved[c.name] = (c.id, to)
        return cls(side, own, source, lut, moved, folded)

    def describe(self) -> str:
        """``the ground truth's ids (F/taxonomy.json) mapped by name: Car 7 -> 8, ...``."""
        whose = "the ground truth's" if self.side == "ground truth" else "the predictions'"
        ids = ", ".join(f"{n} {a} -> {b}" for n, (a, b) in self.moved.items())
        return f"{whose} ids ({self.source}) mapped by name: {ids}"


def recorded_classes(
    pred: Path, gt: Truth, fold: bool = True
) -> tuple[Taxonomy, str, ByName | None]:
    """The classes recorded beside the predictions (``engine predict``'s ``predict.json``, a
    fused dataset's ``taxonomy.json``) or the ground truth, each up to two folders above its
    files (a fused dataset's ``labels/<split>``), else
    MaSS13K's 7 classes; and where both folders record one, how one side's ids map onto the
    other's by class name: the predictions' classes are scored when
    they hold every class of the ground truth (the ground truth mapped onto them), else the
    ground truth's when they hold every predicted class (a 7-class model against fused labels).
    Predicted classes the ground truth's lacks that were carved out of one it has (a 9-class
    model's Car against the 8-class fused labels made before Car was added) are scored as that
    class, in the ground truth's classes, unless ``fold`` is False (--no-fold-new-classes).
    Taxonomies of which neither holds the other are refused, naming both files: which of their
    classes a pixel is would be a guess."""
    p = taxonomy_record(pred, Path(pred).parent)  # a fused dataset's labels/<split> too
    g = gt.record
    if p is None or g is None:
        found = p or g
        return (found[0], str(found[1]), None) if found else (MASS13K, DEFAULT_TAXONOMY, None)
    (pt, ps), (gt_tax, gs) = p, g
    if [class_key(n) for n in pt.names] == [class_key(n) for n in gt_tax.names]:
        return pt, str(ps), None
    if all(n in pt for n in gt_tax.names):
        later = [c for c in pt if c.name not in gt_tax]
        if (
            fold
            and later
            and all(any(pt[a].name in gt_tax for a in pt.ancestors(c.id)) for c in later)
        ):
            # a model trained after classes were added (Car), against labels made before, where
            # a car is its parent (Others): scored in the ground truth's classes, Car as Others
            return gt_tax, str(gs), ByName.onto("predictions", pt, str(ps), gt_tax)
        return pt, str(ps), ByName.onto("ground truth", gt_tax, str(gs), pt)
    if all(n in gt_tax for n in pt.names):
        return gt_tax, str(gs), ByName.onto("predictions", pt, str(ps), gt_tax)
    only_p = [n for n in pt.names if n not in gt_tax]
    only_g = [n for n in gt_tax.names if n not in pt]
    raise ValueError(
        f"{ps} and {gs}: the predictions' taxonomy has {joined(only_p)}, the ground truth's "
        f"{joined(only_g)}, which the other lacks; pass --taxonomy with the classes of both "
        "folders' ids"
    )


# Engine outputs whose PNG files are charts, not label maps: read as label maps, a training
# run's curves.png was "1 prediction(s) missing for ground truth in runs/train: curves.png"
NO_LABEL_MAPS = {
    "metrics.jsonl": " (its curves.png is a chart)",
    "report.json": "",
    "review.json": "",
}


def list_labels(
    folder: Path, what: str, where_else: Callable[[Path], str] | None = None
) -> dict[str, Path]:
    """``{stem: path}`` of the label PNGs in ``folder``; where it holds none, the error ends
    with ``where_else(folder)`` when that says where they are, else with what is inside."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: {what} folder not found")
    if (kind := output_kind(folder)) is not None and kind[0] in NO_LABEL_MAPS:
        raise ValueError(
            f"{folder}: it is {kind[1]}, not a folder of {what} label maps" + NO_LABEL_MAPS[kind[0]]
        )
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in LABEL_EXTS and not p.name.startswith("."):
            if p.stem in files:
                raise ValueError(f"{folder}: two files share the stem {p.stem!r}")
            files[p.stem] = p
    if not files:
        raise ValueError(
            f"{folder}: no {what} PNG files found (expected <stem>.png)"
            + (
                (where_else and where_else(folder))
                or not_this_output(folder, "a folder of label maps", "predict.json")
                + _labels_inside(folder)
            )
        )
    return files


def _labels_inside(folder: Path) -> str:
    """Where the label maps of an engine output given as a folder of label maps are, for the
    end of the error: a label run's or fused dataset's ``labels/<split>``; for an annotated
    subset, the command that scores it."""
    kind = output_kind(folder)
    if kind is None:  # a folder of prediction folders (demo_out/predict) or a dataset's root
        inside = [
            d
            for base in (folder, folder / "annotations")
            if base.is_dir()
            for d in sorted(base.iterdir())
            if d.is_dir() and any(d.glob("*.png")) and not _charts(d)
        ]
        if not inside:
            return ""
        shown = ", ".join(str(d) for d in inside[:4]) + (" ..." if len(inside) > 4 else "")
        return f" (folders of label maps inside: {shown}; give one)"
    if kind[0] == "subset.json":
        gt = shlex.quote(str(folder))
        return f" (score its class with engine compare --gt {gt} or engine report --subset)"
    labels = folder / "labels"
    splits = sorted(d.name for d in labels.iterdir() if d.is_dir()) if labels.is_dir() else []
    if kind[0] in ("run.json", FUSE_RECORD) and splits:
        return f" (its label maps are in {labels}/ by split: {', '.join(splits)})"
    return ""


def _charts(folder: Path) -> bool:
    """Whether ``folder`` is an engine output whose PNGs are no label maps (a training run)."""
    kind = output_kind(folder)
    return kind is not None and kind[0] in NO_LABEL_MAPS


def check_not_subset_masks(folder: Path, what: str) -> None:
    """``ValueError`` for an annotated subset's ``masks/`` folder given as label maps: its 0/1
    masks would be read as class ids (0 = Others, 1 = Human) and scored as such, as the subset
    folder itself is refused (:func:`list_labels`)."""
    folder = Path(folder)
    subset = subset_at(folder) if folder.name == "masks" else None
    if subset is None:
        return
    raise ValueError(
        f"{folder}: the masks of an annotated subset (engine annotate import: 1 = "
        f"{subset.class_name}, 0 = anything else), not a folder of {what} label maps (score its "
        f"class with engine compare --gt {shlex.quote(str(folder.parent))} or engine report --subset)"
    )


def _names(stems: Sequence[str]) -> str:
    """The first five of ``stems``, then ``and N more``."""
    shown = ", ".join(stems[:5])
    return shown + (f" and {len(stems) - 5} more" if len(stems) > 5 else "")


def _composed_as(pred: dict[str, Path], gt: dict[str, Path]) -> dict[str, Path]:
    """``pred`` with each stem the ground truth lacks named as the ground truth's stem that is
    the same name composed otherwise (Unicode NFC: ``vélo`` with one é from a tool on Linux or
    Windows, e + U+0301 as macOS names files), where each side has one such stem: such a
    prediction was "missing" beside an "extra" one that looked the same in the error."""
    extra = [s for s in pred if s not in gt and not s.isascii()]
    if not extra:
        return pred
    nfc = Counter(unicodedata.normalize("NFC", s) for s in [*extra, *gt])
    truth = {unicodedata.normalize("NFC", s): s for s in gt if s not in pred}
    renamed = dict(pred)
    for s in extra:
        key = unicodedata.normalize("NFC", s)
        if nfc[key] == 2 and key in truth:  # this prediction and one truth compose alike
            renamed[truth[key]] = renamed.pop(s)
    return renamed


def pair_files(
    pred_dir: Path, gt_dir: Path | Truth, extra_ok: bool = False
) -> list[tuple[str, Path, Path]]:
    """``(stem, pred_path, gt_path)`` for every ground-truth file, sorted by stem.

    Raises ``ValueError`` naming the files when a prediction is missing or (unless ``extra_ok``:
    the ground truth annotates a subset of the images) has no ground truth.
    """
    if isinstance(gt_dir, Truth):  # a dataset's split: its label maps by their images' stems
        gt, gt_dir = gt_dir.files, gt_dir.where
    else:
        gt = list_labels(gt_dir, "ground-truth")
    pred = _composed_as(list_labels(pred_dir, "prediction"), gt)
    missing = sorted(set(gt) - set(pred))
    extra = sorted(set(pred) - set(gt))
    if missing:  # with the extra ones beside them, which may be the same images renamed
        raise ValueError(
            f"{pred_dir}: {len(missing)} prediction(s) missing for ground truth in {gt_dir}: "
            f"{_names([m + '.png' for m in missing])}"
            + unfinished_prediction(pred_dir)
            + (
                f"; {len(extra)} prediction(s) there have no ground truth: "
                f"{_names([e + '.png' for e in extra])}"
                if extra and not extra_ok
                else ""
            )
        )
    if extra and not extra_ok:
        raise ValueError(
            f"{pred_dir}: {len(extra)} prediction(s) have no ground truth in {gt_dir}: "
            f"{_names([e + '.png' for e in extra])}"
        )
    return [(s, pred[s], gt[s]) for s in sorted(gt)]


def maps_digest(paths: Iterable[Path]) -> str:
    """A short hash of the bytes of the label maps scored, in their stems' order: recorded by
    ``engine evaluate --json`` and ``engine compare --json`` (``maps_sha256``) so that ``engine
    info`` of the record can tell whether they changed since (:func:`maps_changed`)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(file_sha256(p).encode())
    return h.hexdigest()[:16]


def maps_changed(folder: Any, stems: Any, recorded: Any) -> str | None:
    """Why the maps of ``stems`` in ``folder`` are no longer those a record scored (its
    ``maps_sha256``: ``recorded``), or None where they are the same or the record has no
    digest (one written before the forty-sixth round)."""
    if not isinstance(recorded, str) or not isinstance(stems, list) or not folder:
        return None
    if not Path(folder).is_absolute() and not Path(folder).is_dir():
        return None  # named from the folder the command ran in: cannot tell from here
    try:
        found = _composed_as(list_labels(Path(folder), "prediction"), set(stems))
        gone = [s for s in stems if s not in found]
        if gone:
            are = "is" if len(gone) == 1 else "are"
            return (
                f"{folder}: {len(gone)} of the {len(stems)} maps scored {are} gone ({_names(gone)})"
            )
        if maps_digest(found[s] for s in stems) != recorded:
            return f"{folder}: the label maps scored changed since (their bytes differ)"
    except (OSError, ValueError) as e:
        return f"{folder}: the label maps scored cannot be read now ({first_line(e)})"
    return None


def load_pair(
    pred_path: Path,
    gt_path: Path,
    taxonomy: Taxonomy | None,
    resize_pred: str | None = None,
    gt_taxonomy: Taxonomy | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a (pred, gt) pair of label maps, validated against ``taxonomy`` when given (the
    ground truth against ``gt_taxonomy`` when that is given: its own recorded classes).

    A prediction of another size raises ``ValueError`` unless ``resize_pred == "nearest"``
    (nearest neighbour, OpenCV ``INTER_NEAREST_EXACT``, the same pixels as Pillow's NEAREST).
    """
    gt = read_label(gt_path, gt_taxonomy or taxonomy)
    pred = read_label(pred_path, taxonomy)
    return fit_to_truth(pred, pred_path, gt, gt_path, resize_pred), gt


def fit_to_truth(
    pred: np.ndarray, pred_path: Path, gt: np.ndarray, gt_path: Path, resize_pred: str | None
) -> np.ndarray:
    """``pred`` at the ground truth's size: as it is, resized (``resize_pred == "nearest"``),
    or else ``ValueError``. The message's reason names the ground truth by its folder, not its
    path: the same for every file of one size, so a folder of them is one line on the command
    line (:func:`engine.cli.common.grouped`), not one per file."""
    if pred.shape == gt.shape:
        return pred
    if resize_pred != "nearest":
        turned = pred.shape == gt.shape[::-1]  # a quarter turn: resizing would not mend it
        # a dataset's label map may be named otherwise (Cityscapes' <stem>_gtFine_labelTrainIds)
        same = Path(gt_path).stem == Path(pred_path).stem
        raise ValueError(
            f"{pred_path}: size {pred.shape[1]}x{pred.shape[0]} differs from the ground truth's "
            f"{gt.shape[1]}x{gt.shape[0]} ({'the file of the same name' if same else 'its map'} "
            f"in {Path(gt_path).parent}); "
            + (
                "its width and height swapped: a map turned a quarter (of an image whose EXIF "
                "orientation its predictor ignored?), which resizing would not turn back"
                if turned
                else "pass --resize-pred nearest to resize"
            )
        )
    return cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)


@dataclass(frozen=True)
class Fold:
    """The new classes of a taxonomy scored as the base classes they were carved out of: a
    jointly trained model's predictions against precise labels of the base classes, where its
    Bicycle pixels are Others."""

    base: Taxonomy  # the classes scored: the taxonomy's classes before the first new one
    lut: np.ndarray  # (256,) uint8: each label value to the class it is scored as; 255 stays
    folded: dict[str, str]  # new class name -> the base class it is scored as

    @classmethod
    def of(cls, taxonomy: Taxonomy) -> Fold | None:
        """The fold of ``taxonomy``'s new classes; None when it has none, or when a base class
        follows a new one (ids could not stay those of the label maps)."""
        new = [c for c in taxonomy if c.parent is not None]
        k = taxonomy.num_classes - len(new)
        if not new or any(c.parent is not None for c in taxonomy.classes[:k]):
            return None
        lut = np.arange(256, dtype=np.uint8)
        folded = {}
        for c in new:  # a class carved out of a new class: to its base
            base = taxonomy.base_of(c.id)
            lut[c.id] = base.id
            folded[c.name] = base.name
        return cls(Taxonomy(taxonomy.classes[:k]), lut, folded)


def describe_fold(folded: dict[str, str]) -> str:
    """``Bicycle and Car scored as Others``; ``Bicycle as Others, Pole as Ground``."""
    parents = set(folded.values())
    if len(parents) == 1:
        return f"{joined(folded)} scored as {parents.pop()}"
    return "scored as their parents: " + ", ".join(f"{n} as {p}" for n, p in folded.items())


def _then(first: np.ndarray | None, then: np.ndarray | None) -> np.ndarray | None:
    """The lookup table applying ``first``, then ``then`` (None: no table), in one pass."""
    if first is None or then is None:
        return then if first is None else first
    return then[first]


def _score_one(
    args: tuple[Path, Path, Taxonomy, Fold | None, str | None, str | None, ByName | None],
) -> np.ndarray:
    pred_path, gt_path, taxonomy, fold, resize, device, by_name = args
    on_gt = by_name is not None and by_name.side == "ground truth"  # read in its own classes
    on_pred = by_name is not None and not on_gt
    pred, gt = load_pair(
        pred_path,
        gt_path,
        by_name.taxonomy if on_pred else taxonomy,
        resize,
        by_name.taxonomy if on_gt else taxonomy,
    )
    moved = by_name.lut if by_name is not None and (by_name.moved or by_name.folded) else None
    folded = fold.lut if fold is not None else None  # the new classes as their parents
    # each map through one table: that side's ids onto the scored ones, then the fold
    gt_lut = _then(moved if on_gt else None, folded)
    pred_lut = _then(moved if on_pred else None, folded)
    if gt_lut is not None:
        gt = gt_lut[gt]
    if pred_lut is not None:
        pred = pred_lut[pred]
    num_classes = fold.base.num_classes if fold is not None else taxonomy.num_classes
    if device is not None:
        from engine.metrics.torch_counts import pair_counts_torch

        return pair_counts_torch(pred, gt, num_classes, device=device).as_array()
    return pair_counts(pred, gt, num_classes, validate=False).as_array()


@dataclass
class EvaluateReport:
    """What ``engine evaluate`` computed."""

    result: EvalResult  # the scores and summed counts
    taxonomy: Taxonomy  # the classes scored
    stems: list[str]  # image stems, in order
    taxonomy_source: str = ""  # where the classes came from (resolve_taxonomy)
    folded: dict[str, str] | None = None  # new class -> the base class it was scored as
    fold_why: str = ""  # why they were folded: the option, or the ground truth marking none
    # one side's ids mapped onto the scored classes by name (recorded_classes), where any moved
    by_name: ByName | None = None
    dataset: dict[str, str] | None = None  # the dataset split scored (Truth.dataset), if one
    pred_files: list[Path] = field(default_factory=list)  # the maps scored, in stem order

    def to_json(self, config: EvaluateConfig | None = None) -> dict[str, Any]:
        data = self.result.to_json(self.taxonomy.names)
        data["stems"] = self.stems
        data["taxonomy_source"] = self.taxonomy_source
        data["folded"] = self.folded
        data["fold_why"] = self.fold_why or None
        data["dataset"] = self.dataset
        data["mapped_by_name"] = (
            {
                "side": self.by_name.side,
                "taxonomy_source": self.by_name.source,
                "ids": {n: list(ids) for n, ids in self.by_name.moved.items()},
            }
            if self.by_name is not None and self.by_name.moved
            else None
        )
        if config is not None:
            cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
            if cfg["split"] is None:  # a folder as --gt: the config (and hash) as before --split
                del cfg["split"]
            data["config"] = cfg
            data["config_hash"] = config_hash(cfg)
            # what the counts ran on: the CLI's `--json -` passes the command line's config,
            # where "auto" on a machine without CUDA meant numpy/OpenCV, not torch
            used = count_device(config.device, config.workers) is not None
            data["environment"] = environment(torch_used=used)
            if self.pred_files:  # the record, not the demo's in-memory scores: hashed here only
                data["maps_sha256"] = maps_digest(self.pred_files)
        return data


def count_device(name: str | None, workers: int = 1) -> str | None:
    """``--device`` as the other commands take it (auto, cpu, cuda, cuda:N) -> the torch device
    the counts are computed on, or None for numpy/OpenCV. ``auto``: CUDA when there is one (and
    one process), else numpy/OpenCV (the same counts). Before, ``auto`` (engine label, train and
    predict's default) failed with torch's list of twenty device types, and ``cuda`` on a machine
    without one with torch's driver message instead of naming the option."""
    if name is None or (name == "auto" and workers != 1):
        return None
    device = resolve_device(name)
    return None if name == "auto" and device == "cpu" else device


def evaluate(cfg: EvaluateConfig) -> EvaluateReport:
    """Score every prediction in ``cfg.pred`` against ``cfg.gt``; write ``cfg.json_out`` if set.

    New classes (a parent in the taxonomy: a jointly trained model's Bicycle) are scored as
    their parents with ``cfg.fold_new_classes``, or, when it is None, when the ground truth
    marks no pixel of any of them while the predictions do, and no taxonomy recorded beside
    it has them: the ground truth is then the precise labels of the base classes, where a
    bicycle is Others, and scoring Bicycle apart would count every bicycle pixel against
    Others. That takes a second pass over the files."""
    # a json_out of "~/r.json" (no shell expands it here) made a folder named ~: refused first,
    # for the CLI and a library caller alike (before, the CLI's check only)
    check_report_file(cfg.json_out, "engine evaluate")
    cfg = replace(cfg, device=count_device(cfg.device, cfg.workers))
    check_not_subset_masks(cfg.gt, "ground-truth")
    check_not_subset_masks(cfg.pred, "prediction")
    check_not_being_written(cfg.pred, "engine evaluate", "its label maps")
    check_folder_finished(cfg.pred, "engine evaluate")
    truth = ground_truth(cfg.gt, cfg.split)
    taxonomy, taxonomy_source, by_name = resolve_taxonomy(
        cfg.num_classes, cfg.taxonomy, cfg.pred, truth, cfg.fold_new_classes is not False
    )
    try:
        pairs = pair_files(cfg.pred, truth)
    except ValueError as e:  # a dataset's label folder as --gt: say how to score the dataset
        hint = dataset_of(cfg.gt) if truth.dataset is None else named_as_images(cfg.pred, truth)
        raise ValueError(f"{e}{hint}") from None
    fold = None if cfg.fold_new_classes is False else Fold.of(taxonomy)
    # the predictions' classes the ground truth lacks, folded while mapped onto its classes
    folded_by_name = by_name is not None and bool(by_name.folded)
    if cfg.fold_new_classes and fold is None and folded_by_name:
        result, why = _count(cfg, pairs, taxonomy, None, by_name), ""
    elif cfg.fold_new_classes:
        if fold is None:
            raise ValueError(
                f"{taxonomy_source}: no new class to score as its parent (--fold-new-classes): "
                "no class has a parent, or a base class follows a new one"
            )
        result, why = _count(cfg, pairs, taxonomy, fold, by_name), "--fold-new-classes"
    else:
        result, why = _count(cfg, pairs, taxonomy, None, by_name), ""
        new = [taxonomy.id_of(name) for name in fold.folded] if _may_fold(truth, fold) else []
        if new and not result.counts.gt_area[new].any() and result.counts.pred_area[new].any():
            why = f"the ground truth marks no pixel of {joined(fold.folded)}"
            name = "evaluate (new classes as parents)"
            result = _count(cfg, pairs, taxonomy, fold, by_name, name)
    folded = fold.folded if why else None
    scored = fold.base if why else taxonomy
    if folded_by_name:  # classes added after the ground truth's
        lacks = f"not among the ground truth's classes, {taxonomy_source}"
        folded, why = {**by_name.folded, **(folded or {})}, "; ".join(filter(None, (lacks, why)))
    report = EvaluateReport(  # why: set only where fold was applied
        result,
        scored,
        [s for s, _, _ in pairs],
        taxonomy_source,
        folded,
        why,
        by_name,
        truth.dataset,
        [p for _, p, _ in pairs],
    )
    if cfg.json_out is not None:
        with folders_removed_on_failure(cfg.json_out):  # a full disk: no new, empty folder left
            atomic_write_json(cfg.json_out, report.to_json(cfg))
    return report


def _may_fold(truth: Truth, fold: Fold | None) -> bool:
    """Whether the ground truth may be of the base classes only: not when its own taxonomy
    record (a fused dataset's ``taxonomy.json``) has the new classes, where a set without a
    bicycle is just that."""
    if fold is None:
        return False
    found = truth.record
    return found is None or not all(name in found[0] for name in fold.folded)


def _count(
    cfg: EvaluateConfig,
    pairs: list[tuple[str, Path, Path]],
    taxonomy: Taxonomy,
    fold: Fold | None,
    by_name: ByName | None = None,
    name: str = "evaluate",
) -> EvalResult:
    """The scores of every pair, with ``fold``'s new classes as their parents when given, and
    one side's ids mapped by name (``by_name``) when given."""
    jobs = [(p, g, taxonomy, fold, cfg.resize_pred, cfg.device, by_name) for _, p, g in pairs]
    k = fold.base.num_classes if fold is not None else taxonomy.num_classes
    ev = SegEvaluator(k, bf1_mode=cfg.bf1_mode)
    for counts in map_every_item(_score_one, jobs, cfg.workers, name, cfg.progress):
        ev.add_counts(PairCounts.from_array(counts))
    return ev.compute()
