"""The ground truth a prediction is scored against: a folder of label maps or a dataset's split,
its taxonomy (given, recorded beside the predictions, or generic) and the class names matched
between them."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import spec_file
from annotations.taxonomy import MASS13K, ClassInfo, Taxonomy, class_key
from engine.datasets import DatasetSpec, SegDataset, check_folder_finished, load_spec
from engine.evaluate.listing import LABEL_EXTS, list_labels
from engine.outputs import DEFAULT_TAXONOMY, taxonomy_record
from engine.runlock import check_not_being_written
from engine.text import joined


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
