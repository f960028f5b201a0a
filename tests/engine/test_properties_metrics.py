"""Property-based tests of engine.metrics: ``pair_counts`` against the slow per-class reference
(tests/engine/metrics_reference.py, written from docs/metrics.md) on random small maps, strips
made small so that the strip logic splits them, plus additivity and relabelling.

Deterministic (``derandomize``); ``HYPOTHESIS_PROFILE=thorough`` runs more examples
(tests/conftest.py)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import engine.metrics.counts as counts_mod
from engine.metrics import PairCounts, SegEvaluator, binary_class_counts, pair_counts
from engine.metrics.torch_counts import pair_counts_torch
from tests.engine.metrics_reference import FIELDS, reference_counts


@contextmanager
def strip_pixels(n: int):
    """Strips of about ``n`` pixels (a few rows on these small maps), restored afterwards."""
    old = counts_mod._STRIP_PIXELS
    counts_mod._STRIP_PIXELS = n
    try:
        yield
    finally:
        counts_mod._STRIP_PIXELS = old


@st.composite
def label_pair(draw, max_side: int = 40):
    """``(pred, gt, k)``: same-size uint8 maps of ``k`` classes, 255 possibly in both, drawn as
    blocky regions (so that bands and boundaries are not everywhere) or noise."""
    k = draw(st.integers(1, 20))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = list(range(k)) + ([255] if draw(st.booleans()) else [])

    def one() -> np.ndarray:
        cell = draw(st.sampled_from([1, 2, 3, 5, 8]))
        small = rng.choice(values, size=(-(-h // cell), -(-w // cell)))
        m = np.repeat(np.repeat(small, cell, 0), cell, 1)[:h, :w]
        return np.ascontiguousarray(m.astype(np.uint8))

    gt = one()
    pred = one() if draw(st.booleans()) else gt.copy()
    if draw(st.booleans()):  # a prediction that is the GT with a few pixels changed
        flip = rng.random((h, w)) < 0.05
        pred = np.where(flip, rng.choice(values, size=(h, w)).astype(np.uint8), gt)
    return pred, gt, k


def _assert_counts(got: PairCounts, want: dict) -> None:
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(got, f), want[f], err_msg=f)


@given(label_pair(), st.sampled_from([1, 7, 40, 300, 1 << 18]))
def test_pair_counts_equal_the_reference(pair, strip) -> None:
    pred, gt, k = pair
    with strip_pixels(strip):
        got = pair_counts(pred, gt, k)
    _assert_counts(got, reference_counts(pred, gt, k))


@given(label_pair(max_side=12), st.integers(1, 12))
def test_line_maps_equal_the_reference(pair, n) -> None:
    """1xN and Nx1 maps (no south or no east neighbour anywhere)."""
    pred, gt, k = pair
    for p, g in ((pred[:1, :], gt[:1, :]), (pred[:, :1], gt[:, :1])):
        p, g = np.ascontiguousarray(p), np.ascontiguousarray(g)
        with strip_pixels(n):
            _assert_counts(pair_counts(p, g, k), reference_counts(p, g, k))


@given(label_pair(max_side=24), st.integers(0, 2**32 - 1))
def test_relabelling_classes_permutes_the_counts(pair, seed) -> None:
    pred, gt, k = pair
    perm = np.random.default_rng(seed).permutation(k)
    table = np.full(256, 255, np.uint8)
    table[:k] = perm
    got = pair_counts(table[pred], table[gt], k).as_array()
    want = pair_counts(pred, gt, k).as_array()
    np.testing.assert_array_equal(got[:, perm], want)


@given(label_pair(max_side=24), label_pair(max_side=24))
def test_counts_of_two_images_add(a, b) -> None:
    """A set's counts are the sum of its images' counts, whichever order they are summed in."""
    k = max(a[2], b[2])
    ca, cb = pair_counts(a[0], a[1], k), pair_counts(b[0], b[1], k)
    np.testing.assert_array_equal((ca + cb).as_array(), (cb + ca).as_array())
    np.testing.assert_array_equal((ca + cb).as_array(), ca.as_array() + cb.as_array())
    assert ((ca + cb).as_array() >= 0).all()


@given(label_pair(max_side=24))
def test_counts_are_bounded_and_symmetric(pair) -> None:
    """Intersections never exceed unions or boundaries; with the GT free of 255, swapping pred
    and GT swaps the BF1 sides and keeps IoU and Boundary IoU."""
    pred, gt, k = pair
    c = pair_counts(pred, gt, k)
    assert (c.iou_intersection <= c.iou_union).all()
    assert (c.biou_intersection <= c.biou_union).all()
    assert (c.bf1_pred_matched <= c.bf1_pred_boundary).all()
    assert (c.bf1_gt_matched <= c.bf1_gt_boundary).all()
    assert (c.iou_union == c.gt_area + c.pred_area - c.iou_intersection).all()
    if not (gt == 255).any() and not (pred == 255).any():
        s = pair_counts(gt, pred, k)
        for a, b in (("iou_intersection",) * 2, ("iou_union",) * 2, ("biou_union",) * 2):
            np.testing.assert_array_equal(getattr(c, a), getattr(s, b))
        np.testing.assert_array_equal(c.bf1_pred_matched, s.bf1_gt_matched)
        np.testing.assert_array_equal(c.bf1_gt_boundary, s.bf1_pred_boundary)


@given(label_pair(max_side=24), st.integers(0, 19))
def test_one_class_against_the_rest_is_its_row(pair, c) -> None:
    """docs/metrics.md: the new-class scores (the binary map "class vs everything else") equal
    that class's row of the multi-class evaluation."""
    pred, gt, k = pair
    c %= k
    row = pair_counts(pred, gt, k).as_array()[:, c]
    np.testing.assert_array_equal(binary_class_counts(pred, gt, c).as_array()[:, 1], row)


@given(label_pair(max_side=20))
def test_torch_counts_equal_the_numpy_counts(pair) -> None:
    """The ``--device`` path (engine/metrics/torch_counts.py) gives the same integers, on CPU."""
    pred, gt, k = pair
    got = pair_counts_torch(pred, gt, k, device="cpu")
    np.testing.assert_array_equal(got.as_array(), pair_counts(pred, gt, k).as_array())


@given(label_pair(max_side=24))
def test_bf1_modes_agree_on_one_image_when_every_class_has_a_boundary(pair) -> None:
    """docs/metrics.md: on a single image the two modes agree whenever every present class has
    a boundary pixel."""
    pred, gt, k = pair
    c = pair_counts(pred, gt, k)
    present = (c.gt_area > 0) | (c.pred_area > 0)
    edged = (c.bf1_pred_boundary > 0) | (c.bf1_gt_boundary > 0)
    results = [SegEvaluator(k, bf1_mode=m).update(pred, gt).compute() for m in ("dataset", "image")]
    if (edged == present).all():
        assert results[0].mbf1 == pytest.approx(results[1].mbf1, nan_ok=True)
    np.testing.assert_array_equal(np.isnan(results[1].bf1), ~present)
