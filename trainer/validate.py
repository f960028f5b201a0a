"""Validation during training: whole-image inference on a split, scored with the engine's metrics.

On a fused dataset the new classes' ground truth is their pseudo labels: their scores are marked
``"vs": "pseudo labels"`` (:func:`label_new_classes`); annotated subsets (``val_subsets``) score
them against manual annotations (:func:`evaluate_subset`).

Under DDP every rank predicts its own share of the images (``samples[rank::world]``) and the
per-image counts are gathered on rank 0, so validation is ``world`` times faster and no rank
idles at a barrier long enough to hit the process group's timeout.

An image that cannot be read (or whose annotation does not fit it) is left out, not fatal: the
result's ``images`` counts those scored and ``skipped`` lists the problems, one line each
(training warns about each once and records it in ``skipped.jsonl``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from annotations.fileio import UNREADABLE, first_line
from engine.datasets import (
    SegDataset,
    edited_masks_line,
    fused_as_corrections,
    replaced_subset_photos,
)
from engine.text import counted


def rank_samples(data: SegDataset, max_images: int = 0, rank: int = 0, world: int = 1) -> list:
    """The images rank ``rank`` of ``world`` validates: the first ``max_images`` of the split
    when > 0 (else all), then every ``world``-th from ``rank``."""
    samples = data.samples[:max_images] if max_images > 0 else data.samples
    return samples[rank::world]


def check_one_subset_per_class(subsets: list[SubsetTarget]) -> None:
    """Validation scores are logged per class ("Car vs annotated subset"): two subsets of one
    class (or one given twice) would log two rows under one name; refused, naming both."""
    seen: dict[str, Path] = {}
    for sub in subsets:
        if sub.class_name in seen:
            raise ValueError(
                f"{sub.path}: a second annotated subset of {sub.class_name} (the first: "
                f"{seen[sub.class_name]}); give one --val-subset per class"
            )
        seen[sub.class_name] = sub.path


def _readable(
    items: Iterable[Any],
    read: Callable[[Any], Any],
    skipped: list[str],
    on_image: Callable[[], None] | None,
) -> Iterator[Any]:
    """``read(item)`` of every item that can be read; the others' problems are appended to
    ``skipped``. ``on_image`` is called once per item, after the caller has used it."""
    for item in items:
        try:
            value = read(item)
        except UNREADABLE as e:
            skipped.append(first_line(e))
        else:
            yield value
        if on_image is not None:
            on_image()


@torch.no_grad()
def evaluate_counts(
    model: torch.nn.Module,
    data: SegDataset,
    size: tuple[int, int] | None = (4096, 3072),
    device: str | torch.device = "cpu",
    amp: bool = True,
    sliding_window: bool = False,
    max_images: int = 0,
    rank: int = 0,
    world: int = 1,
    on_image: Callable[[], None] | None = None,
):
    """``(SegEvaluator, skipped)``: the counts of this rank's images (:func:`rank_samples`),
    and the problems of those that could not be read and were left out, one line each. Each
    image is predicted at ``size`` = (W, H) with its aspect ratio kept and scored at its own
    resolution. ``on_image`` is called after each (a caller's own progress bar)."""
    from engine.metrics import SegEvaluator
    from trainer.inference import predict_label

    was_training = model.training
    model.eval()
    evaluator = SegEvaluator(num_classes=data.taxonomy.num_classes)
    skipped: list[str] = []
    samples = rank_samples(data, max_images, rank, world)
    try:
        for image, label in _readable(samples, data.load_pair, skipped, on_image):
            pred = predict_label(
                model, image, size=size, sliding_window=sliding_window, device=device, amp=amp
            )
            evaluator.update(pred, label)
    finally:
        model.train(was_training)
    return evaluator, skipped


def evaluate(
    model: torch.nn.Module,
    data: SegDataset,
    size: tuple[int, int] | None = (4096, 3072),
    device: str | torch.device = "cpu",
    amp: bool = True,
    sliding_window: bool = False,
    max_images: int = 0,
    distributed: bool = False,
    on_image: Callable[[], None] | None = None,
) -> dict[str, Any] | None:
    """mIoU / mBIoU (x100) and mBF1 (fraction) of ``model`` on ``data`` with per-class scores
    (``EvalResult.to_json`` without the raw counts). With ``distributed`` (an initialised
    process group), every rank must call this; rank 0 gets the result, the others ``None``."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    evaluator, skipped = evaluate_counts(
        model, data, size, device, amp, sliding_window, max_images, rank, world, on_image
    )
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, (evaluator.per_image, skipped))
        if rank != 0:
            return None
        evaluator.per_image = [c for part, _ in gathered for c in part]
        skipped = [p for _, part in gathered for p in part]
    result = evaluator.compute().to_json(data.taxonomy.names)
    result.pop("counts", None)
    if skipped:
        result["skipped"] = skipped
    return result


PSEUDO_VS = "pseudo labels"  # what a fused dataset's new classes are validated against


def label_new_classes(result: dict[str, Any], taxonomy: Any) -> dict[str, Any]:
    """Mark the new classes' entries of an :func:`evaluate` result: on a fused dataset their
    ground truth is their own pseudo labels, so ``"vs": "pseudo labels"`` says the score is
    agreement with the labeler, not quality (``--val-subset`` scores them against annotations).
    Adds ``new_classes_vs`` at the top level when the taxonomy has new classes."""
    new = {c.id for c in taxonomy if c.parent is not None}
    if not new:
        return result
    for entry in result.get("classes", []):
        if entry.get("id") in new:
            entry["vs"] = PSEUDO_VS
    result["new_classes_vs"] = PSEUDO_VS
    return result


@dataclass(frozen=True)
class SubsetTarget:
    """An annotated subset of one new class, resolved against a dataset (:func:`load_subset`)."""

    path: Path  # the subset directory
    class_name: str
    class_id: int  # the class's id in the dataset's taxonomy (the model's output)
    samples: tuple[Any, ...]  # engine.datasets.Sample of each annotated image
    masks: tuple[Path, ...]  # the subset's mask file of each sample
    split: str = ""  # the dataset split of the annotated images
    unchanged_exports: tuple[str, ...] = ()  # runs whose export it was imported from unchanged
    # pixels over its masks as subset.json counts them: (all, of the class, unannotated); None:
    # not recorded
    pixels: tuple[int, int, int] | None = None
    replaced: str | None = None  # photos replaced since the import (replaced_subset_photos)
    # the subset as read (annotations.subset.Subset), for subset_warnings to find masks edited
    # since the import: decoded there, on the main rank, once the run is not refused
    subset: Any = field(default=None, repr=False, compare=False)
    # the fuse.json of the training dataset (or of one it was fused onto) that fused this
    # subset's masks as corrections (engine fuse --corrections); None: not fused so
    fused_by: Path | None = None


def load_subset(path: str | Path, data: SegDataset) -> SubsetTarget:
    """Resolve an annotated subset (``annotations.subset``) against ``data``'s taxonomy and its
    images of the subset's split. ``ValueError``/``FileNotFoundError`` name the subset and the
    problem: unknown class, or an annotated image missing from the dataset."""
    from annotations.subset import read_subset

    sub = read_subset(path)
    taxonomy = data.taxonomy
    if sub.class_name not in taxonomy:
        raise ValueError(
            f"{sub.root}: class {sub.class_name!r} is not in the dataset's taxonomy "
            f"({taxonomy.listed()}): train on a dataset that has it (`engine fuse` its pseudo "
            "labels in), or leave this subset out of --val-subset"
        )
    # only the images are needed: the split may have no labels (a fused dataset's test split)
    split = SegDataset(dataclasses.replace(data.spec, labels=None), sub.split)
    by_stem = {s.stem: s for s in split.samples}
    missing = [s for s in sub.stems if s not in by_stem]
    if missing:
        raise FileNotFoundError(
            f"{sub.root}: {counted(len(missing), 'annotated image')} not in split {sub.split!r} of "
            f"{data.spec.root} (first: {missing[0]})"
        )
    return SubsetTarget(
        path=Path(sub.root),
        class_name=taxonomy.get(sub.class_name).name,
        class_id=taxonomy.id_of(sub.class_name),
        samples=tuple(by_stem[s] for s in sub.stems),
        masks=tuple(sub.mask_path(s) for s in sub.stems),
        split=sub.split,
        unchanged_exports=tuple(sub.info.get("unchanged_exports") or ()),
        pixels=_subset_pixels(sub.info.get("counts"), sub.stems),
        replaced=replaced_subset_photos(
            sub, {s: by_stem[s].image_path for s in sub.stems}, split.spec.image_dir(sub.split)
        ),
        fused_by=fused_as_corrections(data.spec, Path(sub.root)),
        subset=sub,
    )


def _subset_pixels(counts: Any, stems: tuple[str, ...]) -> tuple[int, int, int] | None:
    """``(all, class, unannotated)`` pixels summed over a subset's masks from its ``subset.json``
    counts, or None when a mask's counts are not recorded (nothing is decoded)."""
    if not isinstance(counts, dict) or not all(isinstance(counts.get(s), dict) for s in stems):
        return None
    try:
        rows = [counts[s] for s in stems]
        return (
            sum(int(r["height"]) * int(r["width"]) for r in rows),
            sum(int(r["class_pixels"]) for r in rows),
            sum(int(r["unannotated_pixels"]) for r in rows),
        )
    except (KeyError, TypeError, ValueError):
        return None


def subset_warnings(subsets: list[SubsetTarget], train_split: str) -> list[str]:
    """What makes an annotated subset's scores say less than they seem to: images the model
    trains on, or an annotation that is the pseudo labels themselves (``engine annotate
    import`` found it imported from an unchanged export); masks edited since the import
    (decoded here, each once: engine train asks on its main rank only, after every check that
    may refuse the run; before, every rank decoded them at every start, 4.5 s for 100 4K
    masks); PNGs put in its ``masks/`` that ``subset.json`` does not list (not scored: the line
    engine fuse and compare say; before, training passed them over without a word)."""
    from annotations.subset import edited_masks, unlisted_line, unlisted_masks

    out = []
    for sub in subsets:
        if sub.replaced:
            out.append(sub.replaced)
        if sub.subset is not None and (edited := edited_masks(sub.subset)):
            out.append(edited_masks_line(sub.subset, edited, "scored"))  # as fuse/report say
        if sub.subset is not None and (unlisted := unlisted_masks(sub.subset)):
            out.append(unlisted_line(sub.subset, unlisted))  # by hand: not scored, as fuse says
        if sub.split == train_split and sub.fused_by is not None:
            out.append(
                f"{sub.path}: the {sub.class_name} subset annotates images of the training split "
                f"{train_split!r} and was fused into the training labels as corrections "
                f"({sub.fused_by}): the model trains on these masks, so its scores there "
                "measure how it fits the human labels it learnt, not how it does on new images"
            )
        elif sub.split == train_split:
            out.append(
                f"{sub.path}: the {sub.class_name} subset annotates images of the training split "
                f"{train_split!r}: the model trains on them (on their pseudo labels), so its "
                "scores there say how it fits them, not how it does on new images"
            )
        if sub.pixels is not None and sub.pixels[0] == sub.pixels[2]:
            out.append(
                f"{sub.path}: every pixel of the {sub.class_name} subset's masks is unannotated "
                "(255): there is nothing to score it on, and each validation will say so"
            )
        elif sub.pixels is not None and sub.pixels[1] == 0:
            out.append(
                f"{sub.path}: no mask of the {sub.class_name} subset marks a {sub.class_name} "
                "pixel: its IoU can only be 0 (a false detection) or n/a"
            )
        if sub.unchanged_exports:
            out.append(
                f"{sub.path}: the {sub.class_name} subset was imported from an uncorrected export "
                f"of {', '.join(sub.unchanged_exports)}: it is those pseudo labels, and validation "
                "against it scores agreement with them, not quality"
            )
    return out


@torch.no_grad()
def evaluate_subset(
    model: torch.nn.Module,
    target: SubsetTarget,
    data: SegDataset,
    size: tuple[int, int] | None = (4096, 3072),
    device: str | torch.device = "cpu",
    amp: bool = True,
    sliding_window: bool = False,
    on_image: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """IoU / BIoU (x100) and BF1 of the model's class ``target.class_id`` against the subset's
    annotated masks (1 = the class, 0 = not, 255 = unannotated), as the Table-4 report scores it
    (``engine.metrics.ClassScorer``). ``on_image`` is called after each image. An image or
    mask that cannot be read, or a mask of another size, is left out (``skipped``)."""
    from annotations.labelmap import read_label
    from engine.metrics.binary import ClassScorer
    from trainer.inference import predict_label

    was_training = model.training
    model.eval()
    scorer = ClassScorer(class_id=1, pred_class_id=target.class_id)
    skipped: list[str] = []

    def read(pair: tuple[Any, Path]) -> tuple[Any, Any]:
        sample, mask_path = pair
        image, mask = data.load_image(sample), read_label(mask_path)
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, image "
                f"{sample.image_path} is {image.shape[1]}x{image.shape[0]}"
            )
        return image, mask

    pairs = zip(target.samples, target.masks, strict=True)
    try:
        for image, mask in _readable(pairs, read, skipped, on_image):
            pred = predict_label(
                model, image, size=size, sliding_window=sliding_window, device=device, amp=amp
            )
            scorer.update(pred, mask)
    finally:
        model.train(was_training)
    scores = scorer.compute().to_json()
    scores.pop("counts", None)
    return {
        "class": target.class_name,
        "vs": "annotated subset",
        "subset": str(target.path),
        **scores,
        **({"skipped": skipped} if skipped else {}),
    }
