"""engine.metrics: bit-exact counts against per-class references, hand-computed cases, modes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.metrics import PairCounts, SegEvaluator, boundary_width, pair_counts
from tests.engine.metrics_reference import FIELDS, reference_counts, release_d


def assert_exact(pred: np.ndarray, gt: np.ndarray, k: int, release_band: bool = False) -> None:
    got = pair_counts(pred, gt, k)
    want = reference_counts(pred, gt, k, release_band=release_band)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(got, f), want[f], err_msg=f)


# -- d: the release's rounding ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("h", "w", "d"),
    [
        (3024, 4032, 5),  # 5.04
        (4032, 3024, 5),
        (2160, 3840, 4),  # 4.41
        (1500, 2000, 2),  # exactly 2.5: Python's round gives 2 (half to even), not 3
        (2100, 2800, 4),  # exactly 3.5: rounds to 4 (even)
        (900, 1200, 2),  # exactly 1.5: rounds to 2
        (300, 400, 1),  # 0.5 rounds to 0, floored to 1
        (1, 1, 1),
        (0, 0, 1),
    ],
)
def test_boundary_width_matches_release_rounding(h: int, w: int, d: int) -> None:
    assert boundary_width(h, w) == d == release_d(h, w)


def test_boundary_width_agrees_with_release_line_everywhere() -> None:
    for h in range(1, 4200, 37):
        for w in range(1, 4200, 41):
            assert boundary_width(h, w) == release_d(h, w), (h, w)


# -- hand-computed cases ------------------------------------------------------------------------


def test_hand_iou_and_biou() -> None:
    # 6x6, d = 1 (0.001 * 8.49 rounds to 0, floored to 1); 3x3 windows.
    # GT: cols 0-2 = class 0, cols 3-5 = class 1.  Pred: cols 0-3 = 0, cols 4-5 = 1.
    gt = np.zeros((6, 6), np.uint8)
    gt[:, 3:] = 1
    pred = np.zeros((6, 6), np.uint8)
    pred[:, 4:] = 1
    c = pair_counts(pred, gt, 2)
    # IoU: class 0: I = 18 (GT cols 0-2), U = 24 (pred cols 0-3); class 1: I = 12, U = 18.
    np.testing.assert_array_equal(c.iou_intersection, [18, 12])
    np.testing.assert_array_equal(c.iou_union, [24, 18])
    # Bands. GT class 0: all 18 pixels but the interior col 1, rows 1-4 -> 14.
    #   GT class 1: cols 3-5 but the interior col 4, rows 1-4 -> 14.
    #   Pred class 0: cols 0-3 but the interior cols 1-2, rows 1-4 -> 16 (col 3 sees col 4).
    #   Pred class 1: cols 4-5, all at the frame or next to col 3 -> 12.
    # Intersections: class 0: col 0 (6) + col 1 rows 0,5 (2) + col 2 rows 0,5 (2) = 10,
    #   union 14 + 16 - 10 = 20;  class 1: col 4 rows 0,5 (2) + col 5 (6) = 8, union 14+12-8 = 18.
    np.testing.assert_array_equal(c.biou_intersection, [10, 8])
    np.testing.assert_array_equal(c.biou_union, [20, 18])
    r = SegEvaluator(2).update(pred, gt).compute()
    np.testing.assert_allclose(r.iou, [75.0, 200 / 3])
    np.testing.assert_allclose(r.biou, [50.0, 800 / 18])
    assert r.miou == pytest.approx((75 + 200 / 3) / 2)
    assert r.mbiou == pytest.approx((50 + 800 / 18) / 2)


def _bf1_case() -> tuple[np.ndarray, np.ndarray]:
    # 4x10. GT: cols 0-4 = 0, cols 5-9 = 1.  Pred: rows 0-1 cols 0-6 = 0, rows 2-3 cols 0-7 = 0,
    # the rest 1 (a staircase 2-3 pixels right of the GT edge).
    gt = np.zeros((4, 10), np.uint8)
    gt[:, 5:] = 1
    pred = np.ones((4, 10), np.uint8)
    pred[:2, :7] = 0
    pred[2:, :8] = 0
    return pred, gt


def test_hand_bf1() -> None:
    pred, gt = _bf1_case()
    c = pair_counts(pred, gt, 2)
    # seg2bmap marks a pixel differing from E, S or SE; a mask and its complement share it.
    # GT boundary (both classes): col 4, rows 0-3 -> 4 px.
    # Pred boundary: (0,6), (1,6) [E differs], (1,7) [S differs], (2,7), (3,7) [E differs] -> 5.
    # Pred matched (GT boundary within distance 2): (0,6)-(0,4) and (1,6)-(1,4) at distance 2;
    #   (1,7), (2,7), (3,7) are 3 columns away -> 2 of 5.
    # GT matched: (0,4), (1,4) -> 2 of 4 ((2,4)-(1,6) is sqrt(5) > 2).
    # P = 0.4, R = 0.5, F = 2 * 0.2 / 0.9 = 4/9 for both classes.
    np.testing.assert_array_equal(c.bf1_pred_boundary, [5, 5])
    np.testing.assert_array_equal(c.bf1_pred_matched, [2, 2])
    np.testing.assert_array_equal(c.bf1_gt_boundary, [4, 4])
    np.testing.assert_array_equal(c.bf1_gt_matched, [2, 2])
    for mode in ("dataset", "image"):
        r = SegEvaluator(2, bf1_mode=mode).update(pred, gt).compute()
        np.testing.assert_allclose(r.bf1, [4 / 9, 4 / 9])
        assert r.mbf1 == pytest.approx(4 / 9)


def test_hand_bf1_with_ignore_column() -> None:
    pred, gt = _bf1_case()
    gt[:, 9] = 255  # zeroed in both masks: class 1 now ends at col 8 in both
    c = pair_counts(pred, gt, 2)
    # Class 0 is unchanged (never at col 9). Class 1 gains col 8 (E neighbour zeroed):
    # GT boundary col 4 + col 8 = 8 px; pred boundary the 5 above + col 8 = 9 px.
    # Pred matched: (0,6), (1,6) as before; (1,7), (2,7), (3,7) are 1 px from col 8; col 8 -> 9/9.
    # GT matched: (0,4), (1,4) + col 8 -> 6/8. P = 1, R = 0.75, F = 1.5 / 1.75 = 6/7.
    np.testing.assert_array_equal(c.bf1_pred_boundary, [5, 9])
    np.testing.assert_array_equal(c.bf1_pred_matched, [2, 9])
    np.testing.assert_array_equal(c.bf1_gt_boundary, [4, 8])
    np.testing.assert_array_equal(c.bf1_gt_matched, [2, 6])
    r = SegEvaluator(2).update(pred, gt).compute()
    np.testing.assert_allclose(r.bf1, [4 / 9, 6 / 7])
    assert r.mbf1 == pytest.approx((4 / 9 + 6 / 7) / 2)
    # IoU excludes col 9: GT class 1 = cols 5-8 (16 px); pred class 1 = rows 0-1 cols 7-8 and
    # rows 2-3 col 8 (6 px), all inside it -> I = 6, U = 16.
    assert (c.iou_intersection[1], c.iou_union[1]) == (6, 16)


# -- bit-exact against the references on random and adversarial maps ----------------------------


def _blobs(rng: np.random.Generator, h: int, w: int, k: int, cell: int) -> np.ndarray:
    small = rng.integers(0, k, (h // cell + 2, w // cell + 2)).astype(np.uint8)
    import cv2

    big = cv2.resize(
        small, ((w // cell + 2) * cell, (h // cell + 2) * cell), interpolation=cv2.INTER_NEAREST
    )
    oy, ox = rng.integers(0, cell, 2)
    return np.ascontiguousarray(big[oy : oy + h, ox : ox + w])


def _adversarial(rng: np.random.Generator, h: int, w: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    gt = _blobs(rng, h, w, k, max(2, min(h, w) // 4))
    pred = gt.copy()
    # 1-pixel lines of random classes, horizontal, vertical and diagonal
    for _ in range(3):
        c = rng.integers(0, k)
        gt[rng.integers(0, h), :] = c
        pred[:, rng.integers(0, w)] = c
        n = min(h, w)
        pred[np.arange(n), np.arange(n)] = rng.integers(0, k)
    # objects thinner than 2d, touching the frame
    pred[: max(1, h // 5), : min(w, 3)] = rng.integers(0, k)
    gt[-2:, rng.integers(0, w) :] = rng.integers(0, k)
    # ignore regions in GT, "uncertain" 255 in pred, salt noise
    y, x = rng.integers(0, h), rng.integers(0, w)
    gt[y : y + 7, x : x + 5] = 255
    pred[rng.random((h, w)) < 0.02] = 255
    noise = rng.random((h, w)) < 0.05
    pred[noise] = rng.integers(0, k, noise.sum())
    return pred, gt


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("h", "w"), [(37, 53), (64, 29), (9, 120), (130, 17)])
def test_exact_on_adversarial_maps(seed: int, h: int, w: int) -> None:
    rng = np.random.default_rng(seed * 1000 + h * w)
    k = int(rng.integers(2, 9))
    pred, gt = _adversarial(rng, h, w, k)
    assert_exact(pred, gt, k)


@pytest.mark.parametrize("seed", range(4))
def test_exact_on_uniform_noise_with_release_band(seed: int) -> None:
    # dense boundaries everywhere; also check the band against the release's own procedure
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 40, 2)
    k = int(rng.integers(1, 6))
    values = np.array(list(range(k)) + [255], np.uint8)
    pred = values[rng.integers(0, k + 1, (h, w))]
    gt = values[rng.integers(0, k + 1, (h, w))]
    assert_exact(pred, gt, k)
    assert_exact(pred, gt, k, release_band=True)


@pytest.mark.parametrize(
    ("h", "w"), [(1, 1), (1, 2), (2, 1), (2, 2), (1, 17), (23, 1), (3, 3), (5, 2)]
)
def test_exact_on_tiny_maps(h: int, w: int) -> None:
    rng = np.random.default_rng(h * 31 + w)
    for _ in range(20):
        pred = rng.choice(np.array([0, 1, 2, 255], np.uint8), (h, w))
        gt = rng.choice(np.array([0, 1, 2, 255], np.uint8), (h, w))
        assert_exact(pred, gt, 3)


def test_exact_with_thick_band_medium_image() -> None:
    # 1500x2000: d = 2 (the half-to-even case); 2100x2800 would be d = 4
    rng = np.random.default_rng(7)
    pred, gt = _adversarial(rng, 300, 400, 5)
    import cv2

    big = lambda a: cv2.resize(a, (2000, 1500), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    assert_exact(big(pred), big(gt), 5)


@pytest.mark.parametrize("k", [9, 16, 17, 40, 70, 255])
def test_exact_with_many_classes(k: int) -> None:
    # wider bit words (uint16/32/64) and more than 64 classes (several words)
    rng = np.random.default_rng(k)
    h, w = 41, 37
    pred = rng.integers(0, k, (h, w)).astype(np.uint8)
    gt = _blobs(rng, h, w, k, 3)
    gt[:4, :4] = 255
    got = pair_counts(pred, gt, k)
    want = reference_counts(pred, gt, k)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(got, f), want[f], err_msg=f)


def test_class_absent_from_one_or_both_maps() -> None:
    rng = np.random.default_rng(3)
    gt = _blobs(rng, 40, 50, 2, 8)  # classes 0, 1 only
    pred = gt.copy()
    pred[10:20, 10:30] = 2  # class 2 only in pred; class 3 in neither
    assert_exact(pred, gt, 4)
    r = SegEvaluator(4).update(pred, gt).compute()
    assert r.iou[2] == 0 and r.biou[2] == 0 and r.bf1[2] == 0  # false positive class scores 0
    assert math.isnan(r.iou[3]) and math.isnan(r.biou[3]) and math.isnan(r.bf1[3])
    assert r.miou == pytest.approx(np.mean(r.iou[:3]))
    assert r.mbf1 == pytest.approx(np.mean(r.bf1[:3]))


def test_empty_and_all_ignore() -> None:
    empty = np.zeros((0, 0), np.uint8)
    c = pair_counts(empty, empty, 3)
    assert c.as_array().sum() == 0
    r = SegEvaluator(3).compute()  # no images
    assert r.images == 0 and math.isnan(r.miou) and math.isnan(r.mbiou) and math.isnan(r.mbf1)

    gt = np.full((20, 30), 255, np.uint8)
    pred = np.zeros((20, 30), np.uint8)
    pred[5:10, 5:10] = 1
    assert_exact(pred, gt, 3)
    for mode in ("dataset", "image"):
        r = SegEvaluator(3, bf1_mode=mode).update(pred, gt).compute()
        assert np.isnan(r.iou).all() and math.isnan(r.miou)  # nothing valid to score
        assert np.isnan(r.bf1).all() and math.isnan(r.mbf1)  # every mask zeroed: no boundary
        # Boundary IoU has no ignore masking: the predicted bands face empty GT bands -> 0
        np.testing.assert_array_equal(r.biou, [0.0, 0.0, np.nan])


def test_class_absent_from_both_never_scores_one() -> None:
    gt = np.zeros((10, 12), np.uint8)
    gt[:, 6:] = 1
    r = SegEvaluator(3, bf1_mode="image").update(gt.copy(), gt).compute()
    assert math.isnan(r.bf1[2]) and r.mbf1 == 1.0


@pytest.mark.parametrize("mode", ["dataset", "image"])
def test_counts_of_one_pixel_score(mode: str) -> None:
    # a 1 x 2 map [0, 1], predicted exactly: every class has union 1, band union 1 (d = 1, both
    # windows pass the frame) and one seg2bmap boundary pixel (the left one: it differs from its
    # east neighbour; the right one has no neighbour), matched: a count of one is a score
    gt = np.array([[0, 1]], np.uint8)
    r = SegEvaluator(2, bf1_mode=mode).update(gt.copy(), gt).compute()
    assert r.counts.iou_union.tolist() == [1, 1] and r.counts.biou_union.tolist() == [1, 1]
    assert r.counts.bf1_pred_boundary.tolist() == [1, 1]
    assert r.counts.bf1_gt_boundary.tolist() == [1, 1]
    assert r.iou.tolist() == [100.0, 100.0] and r.biou.tolist() == [100.0, 100.0]
    assert r.bf1.tolist() == [1.0, 1.0]
    assert (r.miou, r.mbiou, r.mbf1) == (100.0, 100.0, 1.0)
    # the prediction swapped: IoU 0 (not NaN), boundary pixels still matched (the same pixel)
    r = SegEvaluator(2, bf1_mode=mode).update(gt[:, ::-1].copy(), gt).compute()
    assert r.iou.tolist() == [0.0, 0.0] and r.miou == 0.0
    # class 1 in one map only (one pixel): it is present, scored F = 0 (not skipped as absent)
    zero = np.zeros_like(gt)
    for pred, truth in ((zero, gt), (gt, zero)):
        r = SegEvaluator(2, bf1_mode=mode).update(pred, truth).compute()
        assert r.bf1.tolist() == [0.0, 0.0] and r.mbf1 == 0.0
    # image mode: a class is averaged over the images where it is present (class 1 is in the
    # first of two; the second, all 0, scores class 0 as a whole-frame match, F = 1)
    r = SegEvaluator(2, bf1_mode="image").update(gt.copy(), gt).update(zero, zero).compute()
    assert r.bf1.tolist() == [1.0, 1.0] and r.mbf1 == 1.0


def test_evaluator_class_count_bounds() -> None:
    # 1..255 classes (255 is the ignore value): both ends accepted, one past either refused
    assert SegEvaluator(1).num_classes == 1 and SegEvaluator(255).num_classes == 255
    for k in (0, 256):
        with pytest.raises(ValueError, match="num_classes"):
            SegEvaluator(k)


def test_whole_frame_class_per_image_mode() -> None:
    # no boundary anywhere: dataset mode has nothing to score; image mode scores the present
    # class 1 if both maps are all that class and 0 otherwise
    gt = np.full((8, 8), 2, np.uint8)
    r = SegEvaluator(3).update(gt.copy(), gt).compute()
    assert math.isnan(r.mbf1)
    r = SegEvaluator(3, bf1_mode="image").update(gt.copy(), gt).compute()
    assert r.mbf1 == 1.0 and r.bf1[2] == 1.0
    r = SegEvaluator(3, bf1_mode="image").update(np.ones_like(gt), gt).compute()
    assert r.mbf1 == 0.0 and r.bf1[1] == 0.0 and r.bf1[2] == 0.0


def test_dataset_and_image_modes() -> None:
    rng = np.random.default_rng(11)
    pairs = [_adversarial(rng, 40, 60, 4) for _ in range(3)]
    # one image: the two modes agree when every present class has a boundary pixel
    for pred, gt in pairs:
        a = SegEvaluator(4).update(pred, gt).compute()
        b = SegEvaluator(4, bf1_mode="image").update(pred, gt).compute()
        np.testing.assert_allclose(a.bf1, b.bf1)
        assert a.mbf1 == pytest.approx(b.mbf1)
    # several images: image mode is the mean over images of the per-image means
    ev = SegEvaluator(4, bf1_mode="image")
    means = []
    for pred, gt in pairs:
        ev.update(pred, gt)
        means.append(SegEvaluator(4).update(pred, gt).compute().mbf1)
    r = ev.compute()
    assert r.mbf1 == pytest.approx(np.mean(means))
    # counts (and so mIoU, mBIoU) are the same in both modes and sum over images
    d = SegEvaluator(4)
    for pred, gt in pairs:
        d.update(pred, gt)
    np.testing.assert_array_equal(d.compute().counts.as_array(), r.counts.as_array())
    assert d.compute().miou == r.miou


def test_merge_is_exact() -> None:
    rng = np.random.default_rng(5)
    pairs = [_adversarial(rng, 30, 30, 3) for _ in range(4)]
    whole = SegEvaluator(3)
    a, b = SegEvaluator(3), SegEvaluator(3)
    for i, (pred, gt) in enumerate(pairs):
        whole.update(pred, gt)
        (a if i % 2 else b).add_counts(pair_counts(pred, gt, 3))
    merged = a.merge(b).compute()
    ref = whole.compute()
    np.testing.assert_array_equal(merged.counts.as_array(), ref.counts.as_array())
    assert merged.miou == ref.miou and merged.images == 4


def test_to_json_shape() -> None:
    pred, gt = _bf1_case()
    j = SegEvaluator(3).update(pred, gt).compute().to_json(["a", "b", "c"])
    assert j["images"] == 1
    assert set(j) >= {"images", "mIoU", "mBIoU", "mBF1", "classes", "counts"}
    assert j["classes"][2] == {"id": 2, "name": "c", "iou": None, "biou": None, "bf1": None}
    assert j["classes"][0]["bf1"] == pytest.approx(4 / 9)
    assert j["counts"]["bf1_gt_boundary"] == [4, 4, 0]
    assert all(isinstance(v, int) for vs in j["counts"].values() for v in vs)
    assert len(j["counts"]) == 8
    with pytest.raises(ValueError, match="expected 3 names"):
        SegEvaluator(3).compute().to_json(["a"])


@pytest.mark.parametrize(
    ("pred", "gt", "match"),
    [
        (np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), "differs"),
        (np.zeros((2, 2), np.int32), np.zeros((2, 2), np.uint8), "uint8"),
        (np.full((2, 2), 7, np.uint8), np.zeros((2, 2), np.uint8), r"pred: label values \[7\]"),
        (np.zeros((2, 2), np.uint8), np.full((2, 2), 254, np.uint8), r"gt: label values \[254\]"),
    ],
)
def test_bad_input(pred: np.ndarray, gt: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pair_counts(pred, gt, 3)
    with pytest.raises(ValueError, match="bf1_mode"):
        SegEvaluator(3, bf1_mode="pixel")


def test_paircounts_roundtrip() -> None:
    c = PairCounts.zeros(3)
    c.iou_union[1] = 5
    assert (PairCounts.from_array(c.as_array()) + c).iou_union[1] == 10


@pytest.mark.slow
def test_exact_full_size_pair() -> None:
    rng = np.random.default_rng(0)
    import cv2

    pred, gt = _adversarial(rng, 378, 504, 8)
    up = lambda a: cv2.resize(a, (4032, 3024), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    pred, gt = up(pred), up(gt)
    # thin structures at full resolution too
    pred[100, :] = 3
    gt[:, 2000] = 4
    gt[1000:1010, 1000:3000] = 255
    assert_exact(pred, gt, 8)


@pytest.mark.parametrize("strip", [1, 40, 97, 300])
def test_exact_across_strip_boundaries(strip: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # strips of a few rows: every band / boundary context crosses strip edges
    import engine.metrics.counts as counts

    monkeypatch.setattr(counts, "_STRIP_PIXELS", strip)
    rng = np.random.default_rng(strip)
    pred, gt = _adversarial(rng, 45, 40, 5)
    assert_exact(pred, gt, 5)
    import cv2

    big = lambda a: cv2.resize(a, (2000, 1500), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    monkeypatch.setattr(counts, "_STRIP_PIXELS", strip * 100)
    assert_exact(big(pred), big(gt), 5)  # d = 2


@pytest.mark.parametrize("k", [15, 16, 20, 60, 200, 254, 255])
def test_many_classes_exact_across_strip_boundaries(k: int, monkeypatch) -> None:
    """Both sides of the 15-class switch (calcHist / bincount) and several 64-class words, in
    strips of a few rows, as a large photo of a 20- or 254-class taxonomy is counted."""
    import engine.metrics.counts as counts

    monkeypatch.setattr(counts, "_STRIP_PIXELS", 300)
    rng = np.random.default_rng(k)
    gt = _blobs(rng, 60, 50, k, 4)
    pred = np.roll(gt, 2, axis=1)
    pred[rng.random(gt.shape) < 0.05] = rng.integers(0, k)
    gt[10:13, :] = 255
    assert_exact(pred, gt, k)


def test_disk_is_the_13_pixel_euclidean_disk() -> None:
    from engine.metrics.counts import DISK2

    want = {(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if dy * dy + dx * dx <= 4}
    assert set(DISK2) == want and len(DISK2) == 13


# -- torch path ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_torch_path_identical_on_cpu(seed: int) -> None:
    pytest.importorskip("torch")
    from engine.metrics.torch_counts import pair_counts_torch

    rng = np.random.default_rng(seed)
    for h, w, k in [(37, 53, 5), (1, 1, 3), (2, 9, 2), (64, 29, 9), (30, 41, 20), (33, 40, 255)]:
        pred, gt = (
            _adversarial(rng, h, w, k)
            if h > 8
            else (
                rng.choice(np.array([0, 1, 255], np.uint8), (h, w)),
                rng.choice(np.array([0, 1, 255], np.uint8), (h, w)),
            )
        )
        got = pair_counts_torch(pred, gt, k, device="cpu")
        np.testing.assert_array_equal(got.as_array(), pair_counts(pred, gt, k).as_array())


@pytest.mark.gpu
def test_torch_path_identical_on_gpu() -> None:
    from engine.metrics.torch_counts import pair_counts_torch

    rng = np.random.default_rng(0)
    import cv2

    pred, gt = _adversarial(rng, 378, 504, 8)
    up = lambda a: cv2.resize(a, (4032, 3024), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    pred, gt = up(pred), up(gt)
    got = pair_counts_torch(pred, gt, 8, device="cuda")
    np.testing.assert_array_equal(got.as_array(), pair_counts(pred, gt, 8).as_array())


# -- scale: MaSS13K's 13,000 photos of 12.2 MP --------------------------------------------------


def test_counts_past_float32_and_int32_stay_exact() -> None:
    """cv2.calcHist counts in float32 (2^24 + 1 pixels of one value read 2^24): strips and
    boundary-pixel sets of 2^24 or more go to np.bincount, exact; and 13,000 images of
    4032x3024 (1.6e11 pixels, past int32 and float32's integers) sum exactly, down to the JSON."""
    import cv2

    from engine.metrics.counts import _count_bits, _joint_hist

    n = (1 << 24) + 1
    zeros = np.zeros((1, n), np.uint8)
    assert cv2.calcHist([zeros], [0], None, [256], [0, 256]).ravel()[0] == 1 << 24  # the trap
    assert _joint_hist(zeros, zeros, 7)[0, 0] == n
    assert _count_bits(np.ones(n, np.uint8))[0] == n

    k, images, px = 7, 13_000, 4032 * 3024
    area = np.random.default_rng(0).multinomial(px, np.full(k, 1 / k), images)  # (N, K)
    ev = SegEvaluator(k)
    for a in area:
        ev.add_counts(PairCounts(a - a // 10, a + a // 10, *[a // 7] * 6, a, a))
    total = ev.compute()
    union = [int(v) for v in (area + area // 10).sum(axis=0)]
    inter = [int(v) for v in (area - area // 10).sum(axis=0)]
    assert sum(union) > images * px > 2**37  # int32 wrapped, float32 rounded
    assert total.to_json()["counts"]["iou_union"] == union
    assert total.to_json()["counts"]["iou_intersection"] == inter
    np.testing.assert_array_equal(
        total.iou, [i / u * 100 for i, u in zip(inter, union, strict=True)]
    )
