"""Property-based tests of the merge of a class's instances into its pseudo label
(docs/labeler.md, "Merge to semantic"): the window-by-window merge equals the full-resolution
``instances_to_semantic`` bit for bit, the result does not depend on the instances' order, and
labels and confidence stay in their ranges.

Deterministic (``derandomize``); ``HYPOTHESIS_PROFILE=thorough`` runs more examples
(tests/conftest.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from annotations.instances import Instances
from labeler.crops import CroppedInstances, semantic_from_crops
from labeler.merge import box_iou, instances_to_semantic, tile_windows

BANDS = [(0.15, 0.25), (0.0, 0.25), (0.0, 0.0), (0.3, 0.1), (0.5, 1.0), (-0.1, 0.2)]


@st.composite
def instances(draw):
    h, w = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    n = draw(st.integers(0, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        y0, x0 = rng.integers(h), rng.integers(w)
        y1, x1 = rng.integers(y0, h) + 1, rng.integers(x0, w) + 1
        masks[i, y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.8
    scores = rng.choice([0.0, 0.2, 0.5, 1.0, rng.random()], size=n).astype(np.float32)
    probs = None
    if draw(st.booleans()):
        dtype = draw(st.sampled_from([np.float16, np.float32]))
        # probabilities near the masks (a soft edge), 0 far from them
        probs = np.where(masks, rng.random((n, h, w)) * 0.5 + 0.5, 0.0)
        soft = rng.random((n, h, w)) < 0.1
        probs = np.where(soft & ~masks, rng.random((n, h, w)) * 0.5, probs).astype(dtype)
    return masks, scores, probs


def _cropped(masks, scores, probs) -> CroppedInstances:
    n = masks.shape[0]
    inst = Instances(np.zeros((n, 4), np.float32), masks, scores, scores, np.zeros(n), ["x"] * n)
    return CroppedInstances.from_instances(inst, probs)


@given(instances(), st.sampled_from(BANDS))
def test_window_merge_equals_the_full_resolution_merge(case, band) -> None:
    masks, scores, probs = case
    want = instances_to_semantic(masks, scores, probs, band)
    got = semantic_from_crops(_cropped(masks, scores, probs), band)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@given(instances(), st.sampled_from(BANDS), st.randoms(use_true_random=False))
def test_merge_ignores_the_order_of_the_instances(case, band, rnd) -> None:
    masks, scores, probs = case
    order = list(range(masks.shape[0]))
    rnd.shuffle(order)
    a = instances_to_semantic(masks, scores, probs, band)
    b = instances_to_semantic(
        masks[order], scores[order], None if probs is None else probs[order], band
    )
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@given(instances(), st.sampled_from(BANDS))
def test_merge_values_stay_in_range(case, band) -> None:
    masks, scores, probs = case
    label, conf = instances_to_semantic(masks, scores, probs, band)
    assert set(np.unique(label).tolist()) <= {0, 1, 255}
    union = masks.any(axis=0)
    assert not (label == 1)[~union].any()  # 1 only on the union of the masks
    if band[0] >= band[1]:  # no band: exactly the union
        np.testing.assert_array_equal(label == 1, union)
    if probs is None:  # certain masks: confidence is the best score of a mask there
        best = np.max(np.where(masks, scores[:, None, None], 0), axis=0, initial=0.0)
        np.testing.assert_array_equal(conf, np.round(best * 255).astype(np.uint8))


@given(st.integers(1, 60), st.integers(1, 60), st.integers(1, 6), st.integers(1, 6),
       st.floats(0, 0.95))  # fmt: skip
def test_tiles_cover_the_image_and_stay_inside(height, width, rows, cols, overlap) -> None:
    tiles = tile_windows(height, width, rows, cols, overlap)
    if rows == cols == 1:
        assert tiles == []
        return
    covered = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in tiles:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert len(tiles) <= rows * cols


@given(st.integers(0, 6), st.integers(0, 6), st.integers(0, 2**32 - 1))
def test_box_iou_is_symmetric_and_bounded(n, m, seed) -> None:
    rng = np.random.default_rng(seed)

    def boxes(k):
        xy = rng.integers(0, 20, size=(k, 2, 2)).astype(np.float32)
        return np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)  # some of zero area

    a, b = boxes(n), boxes(m)
    iou = box_iou(a, b)
    assert iou.shape == (n, m)
    np.testing.assert_allclose(iou, box_iou(b, a).T)
    assert ((iou >= 0) & (iou <= 1)).all()
    positive = (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
    np.testing.assert_allclose(np.diag(box_iou(a, a))[positive], 1.0, rtol=1e-6)
