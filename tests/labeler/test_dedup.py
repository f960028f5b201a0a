"""Mask dedup after SAM (issue 11, cases 2 and 3): the issue's numbers are the test cases."""

from __future__ import annotations

import numpy as np
import pytest

from labeler.dedup import DedupRules, MaskCrop, dedup_instances, intersection


def _box_mask(h, w, x0, y0, x1, y1) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _ellipse(h, w, x0, y0, x1, y1) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
    return ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1


def test_mask_crop_round_trip_and_intersection():
    full = _box_mask(20, 30, 5, 3, 12, 9)
    c = MaskCrop.from_full(full)
    assert (c.y0, c.x0, c.y1, c.x1, c.area) == (3, 5, 9, 12, 42)
    np.testing.assert_array_equal(c.to_full(20, 30), full)
    other = MaskCrop.from_full(_box_mask(20, 30, 10, 0, 20, 20))
    assert intersection(c, other) == 2 * 6 and intersection(other, c) == 12
    assert intersection(c, MaskCrop.from_full(_box_mask(20, 30, 25, 15, 30, 20))) == 0
    empty = MaskCrop.from_full(np.zeros((20, 30), bool))
    assert empty.area == 0 and intersection(c, empty) == 0


def test_empty_input():
    assert dedup_instances([], np.zeros(0)).tolist() == []
    assert dedup_instances(np.zeros((0, 4, 4), bool), np.zeros(0)).tolist() == []


def test_case3_two_bicycles_in_a_rack_both_kept():
    # Issue case 3 at 1/10 scale: boxes [1000,1500,1600,1900] and [1150,1480,1750,1910] have
    # box IoU 0.57 (box NMS at 0.5 dropped the second); their masks are two objects.
    h, w = 200, 200
    a = _ellipse(h, w, 100, 150, 160, 190)
    b = _ellipse(h, w, 115, 148, 175, 191)
    keep = dedup_instances(np.stack([a, b]), np.array([0.6, 0.5]))
    assert keep.tolist() == [0, 1]


def test_case3_cyclist_negative_person_keeps_the_bicycle():
    # person box [120,150,300,520] (negative prompt, 0.55), bicycle box [100,280,320,540]
    # (0.45): the person's mask covers little of the bicycle's, so the bicycle stays.
    h, w = 560, 340
    person = _ellipse(h, w, 150, 150, 270, 450)
    bicycle = _ellipse(h, w, 100, 380, 320, 540) | _box_mask(h, w, 180, 280, 240, 400)
    keep = dedup_instances(
        np.stack([person, bicycle]), np.array([0.55, 0.45]), np.array([True, False])
    )
    assert keep.tolist() == [1]


@pytest.mark.parametrize(
    "pos_score, neg_score, expect",
    [
        (0.45, 0.70, []),  # the negative explains the mask and wins by >= 0.1: removed
        (0.48, 0.50, [0]),  # near tie (bike 0.48 vs motorcycle 0.50): kept
        (0.60, 0.70, []),  # exactly the margin: removed
        (0.65, 0.70, [0]),  # inside the margin: kept
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_negative_needs_cover_and_margin(pos_score, neg_score, expect, dtype):
    # float32: the backends' prompt scores, where 0.7 - 0.6 is 0.09999996; before, the margin's
    # slack (1e-9) was a float64 one and such a pair was read as inside the margin, while the
    # query selection (labeler.merge.select_queries) read the same pair as 0.1 apart
    h, w = 40, 40
    moto = _box_mask(h, w, 5, 5, 35, 30)
    bike = _box_mask(h, w, 6, 6, 34, 29)  # inside the motorcycle's mask
    keep = dedup_instances(
        np.stack([bike, moto]), np.array([pos_score, neg_score], dtype), np.array([False, True])
    )
    assert keep.tolist() == expect


def test_negative_that_does_not_cover_removes_nothing():
    h, w = 40, 40
    bike = _box_mask(h, w, 0, 0, 20, 20)
    moto = _box_mask(h, w, 10, 10, 40, 40)  # covers 25% of the bike
    keep = dedup_instances(np.stack([bike, moto]), np.array([0.3, 0.9]), np.array([False, True]))
    assert keep.tolist() == [0]


def test_case2_tile_part_is_a_duplicate_of_the_whole_object():
    # Issue case 2 at 1/10 scale: the whole-image box [150,100,270,160] and the left tile's box
    # cut at x=224. The cut box's mask is part of the whole mask (intersection over the
    # smaller mask 1.0): one instance, whichever scored higher.
    h, w = 302, 403
    whole = _box_mask(h, w, 150, 100, 270, 160)
    part = _box_mask(h, w, 150, 100, 224, 160)
    keep = dedup_instances([MaskCrop.from_full(whole), MaskCrop.from_full(part)], [0.45, 0.60])
    assert keep.tolist() == [1]  # the higher score stays; box merging upstream prefers whole


def test_synonym_duplicate_by_iou_and_min_area():
    h, w = 30, 30
    a = _box_mask(h, w, 0, 0, 10, 10)
    b = _box_mask(h, w, 1, 0, 11, 10)  # IoU 0.82 with a
    c = _box_mask(h, w, 20, 20, 22, 22)  # 4 px
    scores = np.array([0.6, 0.9, 0.99])
    assert dedup_instances(np.stack([a, b, c]), scores).tolist() == [2, 1]
    rules = DedupRules(min_area=5)
    assert dedup_instances(np.stack([a, b, c]), scores, rules=rules).tolist() == [1]


def test_ties_keep_lower_index_and_results_are_order_free():
    h, w = 30, 30
    masks = np.stack([_box_mask(h, w, 0, 0, 10, 10), _box_mask(h, w, 0, 0, 10, 10)])
    assert dedup_instances(masks, np.array([0.5, 0.5])).tolist() == [0]


def test_bad_shapes():
    with pytest.raises(ValueError, match="scores"):
        dedup_instances(np.zeros((2, 3, 3), bool), np.zeros(1))
    with pytest.raises(ValueError, match="negative"):
        dedup_instances(np.zeros((2, 3, 3), bool), np.zeros(2), np.zeros(3, bool))
    with pytest.raises(ValueError, match="MaskCrop"):
        dedup_instances([np.zeros((3, 3), bool)], np.zeros(1))
    # one (H, W) mask in place of a stack: named as the stack's shape, not as a row of it
    with pytest.raises(ValueError, match=r"masks must be \(N, H, W\).*\(3, 3\)"):
        dedup_instances(np.zeros((3, 3), bool), np.zeros(3))
    with pytest.raises(ValueError, match=r"mask must be \(H, W\), got \(2, 3, 3\)"):
        MaskCrop.from_full(np.ones((2, 3, 3), bool))


def _pixels(h, w, *cells) -> np.ndarray:
    m = np.zeros((h, w), bool)
    for y, x in cells:
        m[y, x] = True
    return m


def test_empty_mask_crop_is_a_0x0_window_at_the_origin():
    c = MaskCrop.from_full(np.zeros((6, 7), bool))
    assert (c.y0, c.x0, c.mask.shape) == (0, 0, (0, 0))


def test_thresholds_at_their_edges():
    row = [(0, x) for x in range(5)]  # a 1x5 mask, 5 px
    five = _pixels(4, 10, *row)
    four = _pixels(4, 10, *row[:4])  # 4 of the 5 px, a 1x4 mask
    one = _pixels(4, 10, (0, 2))
    # intersection over the smaller mask exactly ios = 0.8 (4 of 5): a duplicate
    shifted = _pixels(4, 10, *[(0, x) for x in range(1, 6)])  # 5 px, 4 shared with `five`
    assert dedup_instances(np.stack([five, shifted]), [0.9, 0.5]).tolist() == [0]
    # a 1-pixel mask inside a kept one (intersection 1, ios 1): a duplicate
    assert dedup_instances(np.stack([five, one]), [0.9, 0.5]).tolist() == [0]
    # a 1-pixel mask alone is kept at min_area 1, and a 4-pixel one at min_area 4
    assert dedup_instances(one[None], [0.5]).tolist() == [0]
    assert dedup_instances(four[None], [0.5], rules=DedupRules(min_area=4)).tolist() == [0]
    # min_area 0 still drops an empty mask
    empty = np.zeros((4, 10), bool)
    assert dedup_instances(
        np.stack([empty, one]), [0.9, 0.5], rules=DedupRules(min_area=0)
    ).tolist() == [1]
    # a negative covering exactly negative_cover = 0.8 of a positive (4 of 5) explains it
    keep = dedup_instances(np.stack([five, four]), [0.5, 0.9], np.array([False, True]))
    assert keep.tolist() == []


def test_iou_rule_on_its_own():
    # ios switched off: IoU alone decides. 10 px each; 7 shared: union 13, IoU 0.54 > 0.5
    a = _pixels(2, 20, *[(0, x) for x in range(10)])
    b = _pixels(2, 20, *[(0, x) for x in range(3, 13)])
    rules = DedupRules(iou=0.5, ios=1.01)
    assert dedup_instances(np.stack([a, b]), [0.9, 0.5], rules=rules).tolist() == [0]
    # 9 px each, 6 shared: union 12, IoU exactly 0.5 is not above 0.5: both kept
    a = _pixels(2, 20, *[(0, x) for x in range(9)])
    b = _pixels(2, 20, *[(0, x) for x in range(3, 12)])
    assert dedup_instances(np.stack([a, b]), [0.9, 0.5], rules=rules).tolist() == [0, 1]


def test_a_positive_removed_by_a_negative_explains_nothing_itself():
    # negative N (0.9) covers positive A (0.7); A covers positive B (0.5), N does not cover B.
    # A goes; B is no duplicate of anything kept and no negative explains it: B stays
    b = _pixels(4, 10, (3, 8), (3, 9))
    a = b | _pixels(4, 10, *[(0, x) for x in range(10)])
    n = a & ~b
    n[1, :] = True  # N covers 10 of A's 12 px (0.83), none of B's
    keep = dedup_instances(np.stack([n, a, b]), [0.9, 0.7, 0.5], np.array([True, False, False]))
    assert keep.tolist() == [2]


def test_intersection_of_windows_apart_on_one_axis_only_is_zero():
    # windows that share columns but not rows (a tall mask below a short one), and the same
    # transposed: no shared pixel, whatever the masks' sizes (a 20-row window 7 rows below a
    # 3-row one must not be read with the negative offsets of the gap)
    short = MaskCrop(0, 0, np.ones((3, 6), bool))
    tall = MaskCrop(10, 2, np.ones((20, 6), bool))
    assert intersection(short, tall) == 0 and intersection(tall, short) == 0
    narrow = MaskCrop(0, 0, np.ones((6, 3), bool))
    wide = MaskCrop(2, 10, np.ones((6, 20), bool))
    assert intersection(narrow, wide) == 0 and intersection(wide, narrow) == 0
    # ... and in dedup: neither is a duplicate of the other
    masks = [short, tall, narrow, wide]
    assert dedup_instances(masks[:2], [0.9, 0.5]).tolist() == [0, 1]
    assert dedup_instances(masks[2:], [0.9, 0.5]).tolist() == [0, 1]
