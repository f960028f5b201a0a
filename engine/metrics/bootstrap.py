"""How sure a difference of scores is: a paired bootstrap over the annotated images.

Table 4 compares sources (pseudo labels, the joint-trained model) on one annotated subset. With
tens of images, or the demo's 8, a difference of a few points may be the images' luck rather
than the method's. :func:`paired_delta_interval` resamples the images with replacement, the same
draw for both sources, recomputes each source's scores from its per-image counts exactly as the
dataset-level scores are computed (sums of counts, then ratios; Boundary F1 in its dataset
mode), and returns the percentile interval of the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.metrics.counts import PairCounts
from engine.metrics.evaluator import JSON_COUNTS, bf1_from_counts, ratio
from engine.text import METRICS, counted

SCORES = tuple(key for key, _, _ in METRICS)  # iou, biou, bf1: the rows scores_from_sums gives
RESAMPLES = 2000
LEVEL = 0.95
SEED = 0  # of numpy's default_rng (PCG64): the reports' intervals, recorded with them
GENERATOR = "numpy.random.default_rng (PCG64)"
# Draw counts held at once (resamples x images, int64): the resamples are drawn in chunks of at
# most this many entries, 32 MB, the same draws (numpy draws a multinomial's rows in turn).
# All 2,000 at once held 16 KB an image: 200 MB over 13,000 images, 760 MB over 50,000.
DRAWS_AT_ONCE = 1 << 22


def class_counts(per_image: Sequence[PairCounts], class_id: int) -> np.ndarray:
    """``(8, N) int64``: the class's counts of each image (``JSON_COUNTS`` order)."""
    return np.array(
        [[int(getattr(c, name)[class_id]) for c in per_image] for name in JSON_COUNTS], np.int64
    ).reshape(len(JSON_COUNTS), len(per_image))


def scores_from_sums(sums: np.ndarray) -> np.ndarray:
    """``(3, ...)`` IoU x100, BIoU x100 and BF1 from ``(8, ...)`` summed counts (NaN where a
    score has nothing to score), as :class:`engine.metrics.SegEvaluator` computes them."""
    sums = np.asarray(sums, np.float64)
    iou = ratio(sums[0], sums[1]) * 100
    biou = ratio(sums[2], sums[3]) * 100
    return np.stack([iou, biou, bf1_from_counts(*sums[4:8])])


MATCH_IOU = 99.5  # per-image IoU x100 from which a source "matches" the annotation


def matches_truth(counts: np.ndarray, level: float = MATCH_IOU) -> bool:
    """Whether a source agrees with the annotation on every image, ``(8, N)`` per-image counts
    (:func:`class_counts`): :func:`all_match` of their IoUs. Real annotations never agree this
    well with pseudo labels or a model: the annotation is that source (pseudo labels exported
    and imported uncorrected, or the same folder given twice), and a table scoring it measures
    nothing."""
    return all_match(scores_from_sums(np.asarray(counts, np.int64))[0], level)


def measures_nothing(images: int, whose: str, cause: str) -> str:
    """The end of the warning about a source that :func:`matches_truth`: ``"on every image (IoU
    >= 99.5 on each of N images), so WHOSE row measures nothing: CAUSE"``."""
    return (
        f"on every image (IoU >= {MATCH_IOU:g} on each of {counted(images, 'image')}), so "
        f"{whose} row measures nothing: {cause}"
    )


def all_match(ious: np.ndarray, level: float = MATCH_IOU) -> bool:
    """Per-image IoUs (x100; NaN where the class is in neither map) that say "the same masks":
    ``level`` or more wherever either holds the class, and at least one image does."""
    ious = np.asarray(ious, np.float64)
    defined = ious[~np.isnan(ious)]
    return defined.size > 0 and bool((defined >= level).all())


def min_images(level: float = LEVEL) -> int:
    """The fewest images holding the class that form an interval at ``level``: with n images,
    a draw of one image n times is ``n**-n`` of the draws, and while that fills a tail
    (``(1 - level) / 2``) each bound is an image's own delta. At 95% that is up to 3 images
    (1/27 = 3.7% of the draws), so an interval "excluded 0" whenever every image agreed in
    sign (one image: a point interval; 2 or 3: it held the true delta in 31-70% of test sets,
    docs/metrics.md); 4 images' bounds mix images (1/256 of the draws)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = 1
    while float(n) ** -n >= (1 - level) / 2:
        n += 1
    return n


def images_holding(base: np.ndarray, other: np.ndarray) -> int:
    """How many of the images hold the class, in the truth or either source (``(8, N)`` counts
    as :func:`paired_delta_interval` takes them): the images an interval is formed from."""
    union = JSON_COUNTS.index("iou_union")  # > 0: the class is in the truth or the source
    return int(((np.asarray(base)[union] > 0) | (np.asarray(other)[union] > 0)).sum())


def paired_delta_interval(
    base: np.ndarray,
    other: np.ndarray,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = SEED,
) -> dict[str, tuple[float, float] | None]:
    """Interval (``level``) of ``score(other) - score(base)`` for IoU, BIoU and BF1 by a paired
    percentile bootstrap over images: ``base`` and ``other`` are ``(8, N)`` per-image counts of
    the same N images (:func:`class_counts`). Each resample draws N images with replacement
    (the same draw for both sources) and scores their summed counts. A resample in which a score
    is undefined (only images without the class) is left out of that score's interval. None
    where no interval can be formed: fewer than :func:`min_images` images holding the class (in
    the truth or either source; an image where neither has it adds nothing to either score), or
    too few defined resamples.

    Why not ``scipy.stats.bootstrap``: it cannot leave out resamples whose statistic is
    undefined, and any such resample turns its interval into NaN; small annotated subsets with
    images that lack the class make them often (3 images, one of them empty: 4% of draws)."""
    base, other = np.asarray(base, np.int64), np.asarray(other, np.int64)
    if base.shape != other.shape or base.ndim != 2 or base.shape[0] != len(JSON_COUNTS):
        raise ValueError(
            f"counts must be (8, N) of the same images, got {base.shape} and {other.shape}"
        )
    n = base.shape[1]
    out: dict[str, tuple[float, float] | None] = dict.fromkeys(SCORES)
    if images_holding(base, other) < min_images(level):
        return out
    rng = np.random.default_rng(seed)
    pvals = np.full(n, 1.0 / n)
    delta = np.empty((len(SCORES), resamples))  # (3, R)
    chunk = max(1, DRAWS_AT_ONCE // n)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        weights = rng.multinomial(n, pvals, size=size).T  # (N, size): times drawn
        delta[:, start : start + size] = scores_from_sums(other @ weights) - scores_from_sums(
            base @ weights
        )
    tail = 100 * (1 - level) / 2
    for key, values in zip(SCORES, delta, strict=True):
        defined = values[~np.isnan(values)]
        if defined.size >= max(20, resamples // 2):  # most draws define it
            lo, hi = np.percentile(defined, [tail, 100 - tail])
            out[key] = (float(lo), float(hi))
    return out


def interval_record(
    base: np.ndarray, other: np.ndarray, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """:func:`paired_delta_interval` as a report stores it (``delta_interval``): each score's
    ``[low, high]`` rounded as the report's scores (``engine.text.METRICS``), None where there is
    none or the score is in ``skip``; with the images, level, resamples, seed, generator and
    method: ``paired_delta_interval(base, other, resamples, level, seed)`` draws it again
    (before the forty-ninth round the seed was not recorded)."""
    interval = paired_delta_interval(base, other, RESAMPLES, LEVEL, SEED)
    return {
        **{
            key: None
            if interval[key] is None or key in skip
            else [round(v, digits) for v in interval[key]]
            for key, _, digits in METRICS
        },
        "images": int(np.asarray(base).shape[1]),
        "holding": images_holding(base, other),
        "level": LEVEL,
        "resamples": RESAMPLES,
        "seed": SEED,
        "generator": GENERATOR,
        "method": "paired percentile bootstrap over images",
    }


def excludes_zero(interval: Sequence[float] | None) -> bool:
    """Whether a delta's ``[low, high]`` interval is sure of its sign; False without one."""
    return interval is not None and (interval[0] > 0 or interval[1] < 0)


def interval_line(what: str, against: str, record: dict[str, Any]) -> str:
    """One line saying how sure the delta of ``what`` against ``against`` is, from an
    :func:`interval_record`; ``(excludes 0)`` marks a score sure of its sign. Too few images
    to form one say so, rather than a dash per score."""
    head = (
        f"Δ of {what} vs {against}, {record['level']:.0%} interval over the "
        f"{counted(record['images'], 'annotated image')} (paired bootstrap): "
    )
    fewest, holding = min_images(record["level"]), record.get("holding", record["images"])
    if holding < fewest and all(record.get(key) is None for key, _, _ in METRICS):
        # (a record written before min_images held bounds from 2 or 3 images: printed as such)
        # what is counted: images whose annotation or either source holds the class (before,
        # "the class is in 3 of them" read as the annotation alone)
        where = f"the annotation, {what} or {against}"
        return head + f"none: {holding} of them have the class in {where} (it takes {fewest})"
    cells = []
    for key, title, digits in METRICS:
        if record.get(key) is None:
            cells.append(f"{title} -")
            continue
        # a bound that rounds to zero prints +0.00, not -0.00 (round gives -0.0 below zero)
        lo, hi = (round(v, digits) + 0.0 for v in record[key])
        sure = " (excludes 0)" if excludes_zero(record[key]) else ""
        cells.append(f"{title} [{lo:+.{digits}f}, {hi:+.{digits}f}]{sure}")
    return head + ", ".join(cells)
