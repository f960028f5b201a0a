"""``engine evaluate`` itself: its config, the class fold, each pair's counts (in worker processes
where asked) summed into an :class:`EvaluateReport`, written with its record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import atomic_write_json, check_report_file
from annotations.taxonomy import Taxonomy
from engine.datasets import check_folder_finished
from engine.devices import resolve_device
from engine.evaluate.listing import check_not_subset_masks
from engine.evaluate.pairs import load_pair, maps_digest, pair_files
from engine.evaluate.truth import (
    ByName,
    Truth,
    dataset_of,
    ground_truth,
    named_as_images,
    resolve_taxonomy,
)
from engine.metrics import BF1_MODES, EvalResult, PairCounts, SegEvaluator, pair_counts
from engine.parallel import in_process_workers, map_every_item
from engine.runinfo import config_hash, environment
from engine.runlock import check_not_being_written, folders_removed_on_failure
from engine.text import joined

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
