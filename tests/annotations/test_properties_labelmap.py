"""Property-based tests of the label-map helpers (annotations/labelmap.py): the blockwise byte
histogram equals ``np.bincount``, ``holds_only`` is set inclusion for any shape and dtype, and
colour-coded labels round-trip through the palette.

Deterministic (``derandomize``); ``HYPOTHESIS_PROFILE=thorough`` runs more examples
(tests/conftest.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import annotations.labelmap as labelmap
from annotations.labelmap import byte_histogram, holds_only, label_to_rgb, rgb_to_label
from annotations.taxonomy import Taxonomy


@st.composite
def arrays(draw):
    shape = tuple(draw(st.lists(st.integers(0, 7), min_size=1, max_size=3)))
    dtype = draw(st.sampled_from([np.uint8, np.uint8, np.int64, np.uint16]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = draw(st.lists(st.integers(0, 255), min_size=1, max_size=4))
    a = rng.choice(values, size=shape).astype(dtype)
    if a.ndim == 2 and draw(st.booleans()):
        a = a.T  # not contiguous
    return a


@given(arrays(), st.sampled_from([1, 3, 64, 1 << 22]))
def test_byte_histogram_is_bincount(a, block) -> None:
    if a.dtype != np.uint8:
        a = a.astype(np.uint8)
    old = labelmap.HISTOGRAM_BLOCK
    labelmap.HISTOGRAM_BLOCK = block
    try:
        got = byte_histogram(a)
    finally:
        labelmap.HISTOGRAM_BLOCK = old
    np.testing.assert_array_equal(got, np.bincount(a.ravel(), minlength=256))


@given(arrays(), st.lists(st.integers(-3, 300), max_size=5))
def test_holds_only_is_set_inclusion(a, allowed) -> None:
    assert holds_only(a, allowed) == (set(np.unique(a).tolist()) <= set(allowed))


@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 4), st.integers(0, 2**32 - 1))
def test_colour_labels_round_trip(h, w, extra, seed) -> None:
    taxonomy = Taxonomy.mass13k()
    for i in range(extra):
        taxonomy = taxonomy.with_new_class(f"New {i}")
    rng = np.random.default_rng(seed)
    label = rng.choice([*range(taxonomy.num_classes), 255], size=(h, w)).astype(np.uint8)
    np.testing.assert_array_equal(rgb_to_label(label_to_rgb(label, taxonomy), taxonomy), label)


def test_holds_only_takes_a_uint8_array_of_any_last_axis() -> None:
    """A uint8 array of any shape is looked up as one row: OpenCV reads the last axis of a 3-D
    array as channels, at most 512, and its LUT refused a (2, 1, 600) array (a mutant that
    flattened only 2-D arrays, passing the others to OpenCV as they stand, passed the property
    above, whose axes are at most 7 long)."""
    block = np.zeros((2, 1, 600), np.uint8)
    assert holds_only(block, {0, 255})
    block[1, 0, 599] = 3
    assert not holds_only(block, {0, 255})
