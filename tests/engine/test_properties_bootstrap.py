"""Property-based tests of the paired bootstrap (engine/metrics/bootstrap.py): scores are ratios
of summed counts as SegEvaluator computes them, intervals are deterministic for a seed, do not
depend on how many draws are held at once, flip sign when the sources swap, and are 0 for a
source against itself.

Deterministic (``derandomize``); ``HYPOTHESIS_PROFILE=thorough`` runs more examples
(tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import engine.metrics.bootstrap as boot
from engine.metrics import SegEvaluator, pair_counts


@st.composite
def per_image(draw, max_images: int = 10):
    """``(truth maps, base counts, other counts)``: per-image ``PairCounts`` of two sources
    against the same binary truths (class 1 vs the rest), some images without the class."""
    n = draw(st.integers(1, max_images))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base, other = [], []
    for _ in range(n):
        h, w = rng.integers(4, 12, size=2)
        empty = rng.random() < 0.3
        gt = np.zeros((h, w), np.uint8) if empty else (rng.random((h, w)) < 0.4).astype(np.uint8)
        maps = []
        for _ in range(2):
            flip = rng.random((h, w)) < rng.choice([0.0, 0.1, 0.3])
            maps.append(np.where(flip, 1 - gt, gt).astype(np.uint8))
        base.append(pair_counts(maps[0], gt, 2))
        other.append(pair_counts(maps[1], gt, 2))
    return base, other


@given(per_image())
def test_scores_are_the_evaluators_ratios_of_sums(pair) -> None:
    base, _ = pair
    ev = SegEvaluator(2)
    for c in base:
        ev.add_counts(c)
    res = ev.compute()
    got = boot.scores_from_sums(boot.class_counts(base, 1).sum(axis=1))
    want = np.array([res.iou[1], res.biou[1], res.bf1[1]])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=0, atol=1e-12)


@given(per_image(), st.integers(0, 2**31), st.sampled_from([1, 7, 64]))
def test_intervals_are_deterministic_and_independent_of_the_chunking(pair, seed, draws) -> None:
    base, other = (boot.class_counts(x, 1) for x in pair)
    kw = {"resamples": 200, "seed": seed}
    a = boot.paired_delta_interval(base, other, **kw)
    assert a == boot.paired_delta_interval(base, other, **kw)
    old = boot.DRAWS_AT_ONCE
    boot.DRAWS_AT_ONCE = draws * base.shape[1]  # a few resamples a chunk
    try:
        b = boot.paired_delta_interval(base, other, **kw)
    finally:
        boot.DRAWS_AT_ONCE = old
    assert a == b
    for v in a.values():
        assert v is None or v[0] <= v[1]


@given(per_image(), st.integers(0, 2**31))
def test_swapping_the_sources_negates_the_interval(pair, seed) -> None:
    base, other = (boot.class_counts(x, 1) for x in pair)
    a = boot.paired_delta_interval(base, other, resamples=200, seed=seed)
    b = boot.paired_delta_interval(other, base, resamples=200, seed=seed)
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] is None) == (b[key] is None)
        if a[key] is not None:
            assert a[key] == pytest.approx((-b[key][1], -b[key][0]), abs=1e-9)


@given(per_image())
def test_a_source_against_itself_is_zero(pair) -> None:
    base, _ = pair
    counts = boot.class_counts(base, 1)
    for v in boot.paired_delta_interval(counts, counts, resamples=100).values():
        assert v is None or v == (0.0, 0.0)
