"""Deterministic post-processing with hand-made detector / segmenter outputs."""

from __future__ import annotations

import numpy as np
import pytest

from labeler.merge import (
    Detections,
    box_iou,
    filter_instances,
    instances_to_semantic,
    mask_iou,
    mask_nms,
    merge_detections,
    nms,
    select_queries,
    shift_detections,
    tile_windows,
)


def _rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


# -- query selection: thresholds and best prompt ---------------------------------------------------
# tokens: 0=[CLS] 1=bicycle 2=. 3=bike 4=. 5=motorcycle 6=. 7=[SEP]
PROMPTS = [np.array([1]), np.array([3]), np.array([5])]


@pytest.mark.parametrize(
    "probs, box_thr, text_thr, expect_prompts",
    [
        ([0.1, 0.9, 0, 0.2, 0, 0.1, 0, 0], 0.35, 0.25, [0]),  # bicycle wins
        ([0.1, 0.2, 0, 0.6, 0, 0.5, 0, 0], 0.35, 0.25, [1]),  # bike wins over motorcycle
        ([0.1, 0.3, 0, 0.2, 0, 0.1, 0, 0], 0.35, 0.25, []),  # below box threshold
        ([0.5, 0.2, 0, 0.2, 0, 0.1, 0, 0], 0.35, 0.25, []),  # box ok via [CLS], text too low
        ([0.1, 0.9, 0, 0.2, 0, 0.1, 0, 0], 0.95, 0.25, []),  # high threshold: empty
    ],
)
def test_select_queries_table(probs, box_thr, text_thr, expect_prompts):
    det = select_queries(np.array([probs]), np.array([[0, 0, 5, 5]]), PROMPTS, box_thr, text_thr)
    assert det.prompt_idx.tolist() == expect_prompts
    if expect_prompts:
        assert det.scores[0] == pytest.approx(max(probs))


def test_select_queries_empty():
    det = select_queries(np.zeros((0, 8)), np.zeros((0, 4)), PROMPTS, 0.3, 0.2)
    assert len(det) == 0


# -- box and mask NMS --------------------------------------------------------------------------
def test_box_iou_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]])
    np.testing.assert_allclose(box_iou(a, b)[0], [1.0, 50 / 150, 0.0, 0.0])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


def test_nms_keeps_best_of_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]])
    keep = nms(boxes, np.array([0.5, 0.9, 0.4]), 0.5)
    assert keep.tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_mask_iou_and_nms_dedupe_synonyms():
    a = _rect(20, 20, 0, 10, 0, 10)
    b = _rect(20, 20, 0, 10, 1, 10)  # 90 of 100 px: bike duplicate of bicycle
    c = _rect(20, 20, 12, 20, 12, 20)
    empty = np.zeros((20, 20), bool)
    iou = mask_iou(np.stack([a, b, c, empty]))
    assert iou[0, 1] == pytest.approx(0.9)
    assert iou[0, 2] == 0 and iou[3, 3] == 0 and iou[3, 0] == 0
    keep = mask_nms(np.stack([a, b, c]), np.array([0.6, 0.8, 0.5]), 0.7)
    assert keep.tolist() == [1, 2]
    assert mask_nms(np.zeros((0, 20, 20), bool), np.zeros(0), 0.7).tolist() == []


# -- negative prompts and tiling merge -----------------------------------------------------------
def test_merge_detections_drops_negative_and_its_duplicates():
    whole = Detections([[0, 0, 10, 10], [40, 40, 60, 60]], [0.8, 0.6], [2, 0])  # 2 = motorcycle
    tile = Detections([[0, 0, 10, 11], [100, 100, 110, 110]], [0.5, 0.7], [0, 1])
    negative = np.array([False, False, True])
    det = merge_detections([whole, tile], negative, 0.5)
    # the bicycle box on the motorcycle (iou 0.91 with it) goes with it
    assert det.xyxy.tolist() == [[100, 100, 110, 110], [40, 40, 60, 60]]
    assert det.prompt_idx.tolist() == [1, 0]
    assert len(merge_detections([], negative, 0.5)) == 0


@pytest.mark.parametrize(
    "h, w, rows, cols, overlap, expect",
    [
        (100, 100, 1, 1, 0.2, []),
        (100, 200, 1, 2, 0.0, [(0, 0, 100, 100), (100, 0, 200, 100)]),
        (100, 100, 2, 1, 0.5, [(0, 0, 100, 67), (0, 33, 100, 100)]),
    ],
)
def test_tile_windows(h, w, rows, cols, overlap, expect):
    assert tile_windows(h, w, rows, cols, overlap) == expect


def test_tile_windows_cover_with_overlap():
    wins = tile_windows(3024, 4032, 2, 3, 0.2)
    assert len(wins) == 6
    cover = np.zeros((3024, 4032), np.uint8)
    for x0, y0, x1, y1 in wins:
        cover[y0:y1, x0:x1] += 1
    assert cover.min() == 1 and cover.max() == 4
    with pytest.raises(ValueError, match="overlap"):
        tile_windows(10, 10, 2, 2, 1.0)


def test_shift_detections_to_full_image():
    det = shift_detections(Detections([[5, 5, 200, 20]], [0.5], [0]), (100, 50, 150, 90))
    assert det.xyxy.tolist() == [[105, 55, 150, 70]]


# -- instance filtering ---------------------------------------------------------------------------
def test_filter_instances_area_nms_and_max():
    masks = np.stack(
        [
            _rect(20, 20, 0, 10, 0, 10),  # 100 px, score .6
            _rect(20, 20, 0, 10, 0, 9),  # duplicate, score .9
            _rect(20, 20, 15, 17, 15, 17),  # 4 px: below min area
            _rect(20, 20, 10, 20, 10, 20),  # 100 px, score .3
        ]
    )
    scores = np.array([0.6, 0.9, 0.99, 0.3])
    assert filter_instances(masks, scores, 5, 0, 0.7).tolist() == [1, 3]
    assert filter_instances(masks, scores, 5, 1, 0.7).tolist() == [1]
    assert filter_instances(masks[:0], scores[:0], 5, 1, 0.7).tolist() == []


# -- instance-to-semantic merge ---------------------------------------------------------------------
def test_semantic_empty_is_all_zero():
    label, conf = instances_to_semantic(np.zeros((0, 4, 5), bool), np.zeros(0))
    assert label.shape == (4, 5) and label.dtype == np.uint8 and not label.any()
    assert conf.dtype == np.uint8 and not conf.any()


def test_semantic_union_confidence_and_band():
    m1 = _rect(4, 6, 0, 4, 0, 3)
    m2 = _rect(4, 6, 0, 2, 2, 6)
    probs = np.stack([m1 * 0.9 + 0.05, m2 * 0.5 + 0.3]).astype(np.float32)
    probs[0, 3, 0] = 0.55  # a soft pixel inside m1
    label, conf = instances_to_semantic(
        np.stack([m1, m2]), np.array([1.0, 0.4]), probs, (0.15, 0.6)
    )
    c = np.maximum(1.0 * probs[0], 0.4 * probs[1])
    np.testing.assert_array_equal(conf, np.round(c * 255).astype(np.uint8))
    expect = np.zeros((4, 6), np.uint8)
    expect[m1 | m2] = 1
    expect[(c >= 0.15) & (c < 0.6)] = 255
    np.testing.assert_array_equal(label, expect)
    assert label[3, 0] == 255  # soft interior pixel (0.55) falls in the band
    assert label[0, 0] == 1 and label[0, 4] == 255 and label[3, 5] == 0


def test_semantic_band_disabled_and_certain_masks():
    m = _rect(3, 3, 0, 2, 0, 2)
    label, conf = instances_to_semantic(m[None], np.array([0.5]), None, (0.0, 0.0))
    assert label.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert conf.max() == 128 and conf[2, 2] == 0  # round(0.5 * 255)


def test_semantic_rejects_bad_shapes():
    with pytest.raises(ValueError, match="scores"):
        instances_to_semantic(np.zeros((2, 3, 3), bool), np.zeros(1))
    with pytest.raises(ValueError, match="probs"):
        instances_to_semantic(np.zeros((1, 3, 3), bool), np.zeros(1), np.zeros((1, 3, 4)))
