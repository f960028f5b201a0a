"""Property-based tests of the crop sampler and the label-decoupling targets (trainer/data/augment.py,
trainer/losses/targets.py) on random small label and source maps: crops inside the label,
W against a direct reference (the mean of G over the window's labelled pixels), the target
masks partitioning the labelled pixels, weights finite, non-negative and 0 where ignored, the
edge map against its definition (no edge beside 255).

Deterministic (``derandomize``); ``HYPOTHESIS_PROFILE=thorough`` runs more examples
(tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from trainer.data import crop_box
from trainer.losses.targets import PSEUDO_FORMS, DecouplingConfig, build_targets


@st.composite
def label_maps(draw, max_side: int = 14):
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    k = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = list(range(k)) + ([255] if draw(st.booleans()) else [])
    cell = draw(st.sampled_from([1, 2, 3]))
    small = rng.choice(values, size=(-(-h // cell), -(-w // cell)))
    label = np.repeat(np.repeat(small, cell, 0), cell, 1)[:h, :w].astype(np.uint8)
    source = rng.choice([0, 0, 1, 2], size=(h, w)).astype(np.uint8)
    return label, source, k


@given(label_maps(max_side=30), st.integers(1, 30), st.integers(0, 2**31),
       st.sampled_from([0.5, 0.75, 1.0]), st.booleans())  # fmt: skip
def test_crops_lie_inside_the_label(case, crop, seed, ratio, focus) -> None:
    label, _, k = case
    crop = min(crop, *label.shape)
    kw = {"focus": (k - 1,), "focus_prob": 1.0} if focus else {}
    y, x = crop_box(label, crop, np.random.default_rng(seed), cat_max_ratio=ratio, **kw)
    assert 0 <= y <= label.shape[0] - crop and 0 <= x <= label.shape[1] - crop
    again = crop_box(label, crop, np.random.default_rng(seed), cat_max_ratio=ratio, **kw)
    assert again == (y, x)


def _reference_w(masks: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """|mean of G over the labelled pixels of the 5x5 window (clipped at the frame) - G|, 0 where
    not labelled."""
    n, h, w = masks.shape
    out = np.zeros((n, h, w))
    for y, x in np.ndindex(h, w):
        if not valid[y, x]:
            continue
        ys, xs = slice(max(0, y - 2), y + 3), slice(max(0, x - 2), x + 3)
        v = valid[ys, xs]
        for i in range(n):
            out[i, y, x] = abs(masks[i, ys, xs][v].mean() - masks[i, y, x])
    return out


def _reference_edges(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = label.shape
    edge = np.zeros((h, w), bool)
    defined = label != 255
    for y, x in np.ndindex(h, w):
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            yy, xx = y + dy, x + dx
            if not (0 <= yy < h and 0 <= xx < w):
                continue  # the frame is no edge
            if label[yy, xx] == 255:
                defined[y, x] = False
            elif label[y, x] != 255 and label[yy, xx] != label[y, x]:
                edge[y, x] = True
    return edge, defined


@given(label_maps(), st.sampled_from(PSEUDO_FORMS), st.booleans(),
       st.sampled_from([0.0, 1.0, 5.0]), st.sampled_from([0.0, 1.0, 3.0]))  # fmt: skip
def test_targets_follow_their_definitions(case, form, with_source, gain, scale) -> None:
    label, source, k = case
    cfg = DecouplingConfig(boundary_gain=gain, pseudo_form=form, pseudo_scale=scale)
    src = torch.from_numpy(source) if with_source else None
    t = build_targets(
        torch.from_numpy(label), src, k, cfg, pseudo_classes={k - 1}, parents={k - 1: (0,)}
    )
    effective = label.copy()
    if with_source:
        effective[source == 2] = 255
    valid = effective != 255
    np.testing.assert_array_equal(t.valid.numpy(), valid)
    masks = t.masks.numpy()
    np.testing.assert_array_equal(t.labels.numpy(), np.unique(effective[valid]))
    np.testing.assert_array_equal(masks.sum(axis=0), valid)  # one class per labelled pixel
    owned = (effective[None] == t.labels.numpy()[:, None, None]) & valid  # each its own class's
    np.testing.assert_array_equal(masks.astype(bool), owned)
    np.testing.assert_allclose(t.boundary.numpy(), _reference_w(masks, valid), atol=1e-6)
    assert ((t.boundary >= 0) & (t.boundary < 1)).all()
    weights = t.weights.numpy()
    assert np.isfinite(weights).all() and (weights >= 0).all()
    assert not weights[:, ~valid].any()
    if form == "precise" or not with_source:  # no decoupling, or no pseudo pixel: 1 + gain W
        want = (1 + gain * t.boundary.numpy()) * valid
        np.testing.assert_allclose(weights, want, rtol=1e-6)
    edge, defined = _reference_edges(effective)
    np.testing.assert_array_equal(t.edge.numpy().astype(bool), edge)
    np.testing.assert_array_equal(t.edge_valid.numpy(), defined)
