"""Property-based round trips of the mask codecs on random masks (empty, full, one pixel,
touching the frame, noise, blocks): COCO RLE (compressed and list counts, windows, areas),
Label Studio's brush RLE (rle-pack streams, windows), and polygons in both conventions.

Deterministic (``derandomize``); ``HYPOTHESIS_PROFILE=thorough`` runs more examples
(tests/conftest.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from annotations.cvat import _mask_rle
from annotations.labelstudio import (
    brush_to_mask,
    decode_rle,
    decode_runs,
    encode_rle,
    mask_to_brush,
    window_to_brush,
)
from annotations.polygons import CONVENTIONS, mask_to_polygons, polygons_to_mask
from annotations.rle import (
    checked_area,
    crop_to_rle,
    mask_to_rle,
    rle_area,
    rle_run_window,
    rle_to_mask,
    rle_to_window,
)


@st.composite
def masks(draw, max_side: int = 24, min_side: int = 1):
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    kind = draw(st.sampled_from(["empty", "full", "pixel", "noise", "blocks", "frame"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m = np.zeros((h, w), bool)
    if m.size == 0:
        return m
    if kind == "full":
        m[:] = True
    elif kind == "pixel":
        m[rng.integers(h), rng.integers(w)] = True
    elif kind == "noise":
        m = rng.random((h, w)) < draw(st.sampled_from([0.1, 0.5, 0.9]))
    elif kind == "blocks":
        cell = draw(st.integers(2, 6))
        small = rng.random((-(-h // cell), -(-w // cell))) < 0.5
        m = np.repeat(np.repeat(small, cell, 0), cell, 1)[:h, :w]
    elif kind == "frame":  # a border row or column, or a corner pixel
        side = draw(st.sampled_from(["top", "bottom", "left", "right", "corner"]))
        if side == "top":
            m[0] = True
        elif side == "bottom":
            m[-1] = True
        elif side == "left":
            m[:, 0] = True
        elif side == "right":
            m[:, -1] = True
        else:
            m[-1, -1] = True
    return np.ascontiguousarray(m)


def _window(m: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The tight window of ``m`` (a 0x0 one at 0, 0 when it is empty)."""
    if not m.any():
        return np.zeros((0, 0), bool), 0, 0
    ys, xs = np.nonzero(m)
    y0, x0 = ys.min(), xs.min()
    return m[y0 : ys.max() + 1, x0 : xs.max() + 1], int(y0), int(x0)


# -- COCO RLE -----------------------------------------------------------------------------------


@given(masks(min_side=0))
def test_coco_rle_round_trips(m) -> None:
    rle = mask_to_rle(m)
    assert rle["size"] == list(m.shape)
    np.testing.assert_array_equal(rle_to_mask(rle), m)
    assert rle_area(rle) == int(m.sum())
    assert checked_area(rle) == (m.shape, int(m.sum()))


@given(masks())
def test_coco_list_counts_decode_as_the_string(m) -> None:
    """Uncompressed counts (column-major runs, zeros first) read as the compressed string."""
    flat = np.concatenate(([False], m.T.ravel(), [False]))
    edges = np.flatnonzero(flat[1:] != flat[:-1])
    runs = np.diff(np.concatenate(([0], edges, [m.size]))).tolist()
    if runs and runs[-1] == 0:
        runs.pop()
    rle = {"size": list(m.shape), "counts": runs}
    np.testing.assert_array_equal(rle_to_mask(rle), m)
    assert rle_area(rle) == checked_area(rle)[1] == int(m.sum())


@given(masks(), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5))
def test_coco_window_encodes_and_decodes_as_the_full_mask(m, top, left, bottom, right) -> None:
    full = np.pad(m, ((top, bottom), (left, right)))
    crop, y0, x0 = _window(full)
    if crop.size:  # any window holding the object gives the full mask's RLE
        assert crop_to_rle(crop, y0, x0, *full.shape) == mask_to_rle(full)
    assert crop_to_rle(m, top, left, *full.shape) == mask_to_rle(full)
    size, wy, wx, wcrop = rle_to_window(mask_to_rle(full))
    assert size == full.shape and (wy, wx) == (y0, x0)
    np.testing.assert_array_equal(wcrop, crop)
    assert rle_run_window(mask_to_rle(full)).box[2:] == (
        (y0 + crop.shape[0], x0 + crop.shape[1]) if crop.size else (0, 0)
    )


# -- Label Studio brush RLE ---------------------------------------------------------------------


@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.sampled_from([1, 2, 7, 8, 9, 16, 17, 255, 256, 257])),
        max_size=30,
    )
)
def test_rle_pack_stream_round_trips(runs) -> None:
    values = np.array([v for v, _ in runs], np.int64)
    lengths = np.array([n for _, n in runs], np.int64)
    stream = encode_rle(values, lengths)
    assert all(0 <= b <= 255 for b in stream)
    np.testing.assert_array_equal(decode_rle(stream), np.repeat(values, lengths).astype(np.uint8))
    got_values, got_lengths = decode_runs(stream)
    np.testing.assert_array_equal(np.repeat(got_values, got_lengths), np.repeat(values, lengths))


@given(masks())
def test_brush_round_trips(m) -> None:
    h, w = m.shape
    stream = mask_to_brush(m)
    np.testing.assert_array_equal(brush_to_mask(stream, h, w), m)
    rgba = decode_rle(stream).reshape(h, w, 4)
    np.testing.assert_array_equal(rgba, np.repeat(m[..., None] * np.uint8(255), 4, axis=2))


@given(masks(), st.integers(0, 4), st.integers(0, 4), st.integers(0, 4), st.integers(0, 4))
def test_brush_window_is_the_full_masks_stream(m, top, left, bottom, right) -> None:
    full = np.pad(m, ((top, bottom), (left, right)))
    assert window_to_brush(m, top, left, *full.shape) == mask_to_brush(full)


# -- polygons -----------------------------------------------------------------------------------


@given(masks(max_side=20), st.sampled_from(CONVENTIONS))
def test_polygons_round_trip_with_holes_filled(m, convention) -> None:
    """Documented (annotations/polygons.py): exact for hole-free masks; holes come back filled.
    Components are 8-connected, so holes are the background's 4-connected pockets."""
    h, w = m.shape
    polys = mask_to_polygons(m, convention=convention)
    assert all(len(p) >= 3 for p in polys)
    back = polygons_to_mask(polys, h, w, convention=convention)
    np.testing.assert_array_equal(back, ndimage.binary_fill_holes(m))


@given(masks(max_side=16), st.integers(0, 4), st.integers(0, 4), st.sampled_from(CONVENTIONS))
def test_polygons_of_a_window_are_the_full_masks(m, top, left, convention) -> None:
    full = np.pad(m, ((top, 2), (left, 3)))
    got = mask_to_polygons(m, convention=convention, offset=(left, top))
    want = mask_to_polygons(full, convention=convention)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


# -- CVAT masks ---------------------------------------------------------------------------------


@given(masks(max_side=12), st.integers(-6, 14), st.integers(-6, 14), st.integers(1, 16),
       st.integers(1, 16))  # fmt: skip
def test_cvat_mask_runs_place_the_box_in_the_image(patch, left, top, h, w) -> None:
    """CVAT's mask: row-major runs over its box, a run of 0 first; the part of the box past the
    image's edge is dropped (annotations/cvat.py)."""
    bh, bw = patch.shape
    h, w = max(h, -(-bh // 2)), max(w, -(-bw // 2))  # a box over twice the image is refused
    flat = np.concatenate(([False], patch.ravel()))
    edges = np.flatnonzero(flat[1:] != flat[:-1])
    runs = np.diff(np.concatenate(([0], edges, [patch.size]))).tolist()
    shape = ET.Element(
        "mask",
        {"left": str(left), "top": str(top), "width": str(bw), "height": str(bh),
         "rle": ", ".join(map(str, runs))},
    )  # fmt: skip
    got = rle_to_mask(_mask_rle(shape, h, w, "x"))
    canvas = np.zeros((h + 64, w + 64), bool)  # room for the box past every edge
    canvas[32 + top : 32 + top + bh, 32 + left : 32 + left + bw] = patch
    np.testing.assert_array_equal(got, canvas[32 : 32 + h, 32 : 32 + w])


@given(st.integers(1, 8), st.integers(1, 8), st.lists(st.integers(0, 9), max_size=20))
def test_coco_runs_with_empty_runs_read_alike(h, w, runs) -> None:
    """List counts as other tools write them, runs of length 0 included: the decoded mask, its
    window and its area agree."""
    runs = list(runs)
    total = sum(runs)
    if total > h * w:
        return
    runs.append(h * w - total)
    rle = {"size": [h, w], "counts": runs}
    m = rle_to_mask(rle)
    want = np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(w, h).T
    np.testing.assert_array_equal(m, want)
    crop, y0, x0 = _window(m)
    size, wy, wx, wcrop = rle_to_window(rle)
    assert size == (h, w) and (wy, wx) == (y0, x0)
    np.testing.assert_array_equal(wcrop, crop)
    assert checked_area(rle) == ((h, w), int(m.sum())) and rle_area(rle) == int(m.sum())


@st.composite
def rle_pack_streams(draw):
    """``(stream, values)``: a ``@thi.ng/rle-pack`` stream written bit by bit from its
    definition (annotations/labelstudio/brush.py), with repeat and literal records, any word size
    and run-field sizes, and a last record that may run past the value count."""
    word = draw(st.integers(1, 16))
    sizes = [draw(st.integers(1, 16)) for _ in range(4)]
    bits, values = [], []
    records = draw(st.integers(0, 6))
    for _ in range(records):
        index = draw(st.integers(0, 3))
        n = draw(st.integers(1, min(1 << sizes[index], 40)))
        repeat = draw(st.booleans())
        bits.append(f"{int(repeat)}{index:02b}{n - 1:0{sizes[index]}b}")
        words = (
            [draw(st.integers(0, (1 << word) - 1))] * n
            if repeat
            else [draw(st.integers(0, (1 << word) - 1)) for _ in range(n)]
        )
        if repeat:
            bits.append(f"{words[0]:0{word}b}")
        else:
            bits.extend(f"{v:0{word}b}" for v in words)
        values.extend(words)
    num = draw(st.integers(max(0, len(values) - 39), len(values))) if values else 0
    header = f"{num:032b}{word - 1:05b}" + "".join(f"{s - 1:04b}" for s in sizes)
    text = header + "".join(bits)
    text += "0" * (-len(text) % 8)
    stream = [int(text[i : i + 8], 2) for i in range(0, len(text), 8)]
    return stream, values[:num]


@given(rle_pack_streams())
def test_rle_pack_streams_of_any_encoder_decode(case) -> None:
    stream, values = case
    got = decode_rle(stream)
    assert got.tolist() == values
    v, n = decode_runs(stream)
    assert np.repeat(v, n).tolist() == values
