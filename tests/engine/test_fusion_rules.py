"""The per-image fusion rules on small hand-made label maps whose correct result is known."""

from __future__ import annotations

import numpy as np
import pytest

from annotations.instances import Instances
from engine.fusion.rules import (
    ClassStats,
    FusionRules,
    PseudoLabel,
    fuse_image,
    instance_coverage,
)

U = 255  # uncertain in a pseudo label, ignore in a label map
O, H, G = 0, 1, 4  # noqa: E741  (Others, Human, Ground)
BIKE, CAR = 7, 8


def a(rows) -> np.ndarray:
    return np.array(rows, np.uint8)


def pl(class_id, label, conf=None, instances=None) -> PseudoLabel:
    label = a(label)
    conf = np.full(label.shape, 200, np.uint8) if conf is None else a(conf)
    return PseudoLabel(class_id, label, conf, instances)


def rules(**kw) -> FusionRules:
    kw.setdefault("parents", {BIKE: (O,), CAR: (O,)})
    return FusionRules(**kw)


# precise label, pseudo labels, rules -> expected fused label and source map
CASES = {
    "parent constraint: spill onto Ground stays Ground": (
        [[O, O, G], [O, G, G]],
        [pl(BIKE, [[1, 1, 1], [1, 1, 1]])],
        rules(),
        [[BIKE, BIKE, G], [BIKE, G, G]],
        [[1, 1, 0], [1, 0, 0]],
    ),
    "configurable parent list: Others and Ground": (
        [[O, O, G], [O, H, G]],
        [pl(BIKE, [[1, 1, 1], [1, 1, 1]])],
        rules(parents={BIKE: (O, G)}),
        [[BIKE, BIKE, BIKE], [BIKE, H, BIKE]],
        [[1, 1, 1], [1, 0, 1]],
    ),
    "a certain claim of confidence 0 is still a claim": (
        [[O, O], [O, G]],
        [pl(BIKE, [[1, 0], [1, 1]], [[0, 0], [7, 0]])],
        rules(),
        [[BIKE, O], [BIKE, G]],
        [[1, 0], [1, 0]],
    ),
    "parent constraint off: everything but 255": (
        [[O, H, U], [G, G, G]],
        [pl(BIKE, [[1, 1, 1], [1, 0, 1]])],
        rules(parent_constraint=False),
        [[BIKE, BIKE, U], [BIKE, G, BIKE]],
        [[1, 1, 0], [1, 0, 1]],
    ),
    "uncertain on parent -> ignore; on other classes unchanged": (
        [[O, O, G], [O, O, H]],
        [pl(BIKE, [[U, 1, U], [0, U, U]])],
        rules(),
        [[U, BIKE, G], [O, U, H]],
        [[2, 1, 0], [0, 2, 0]],
    ),
    "uncertain keep-parent": (
        [[O, O, G], [O, O, H]],
        [pl(BIKE, [[U, 1, U], [0, U, U]])],
        rules(uncertain="keep-parent"),
        [[O, BIKE, G], [O, O, H]],
        [[0, 1, 0], [0, 0, 0]],
    ),
    "precise 255 never changes": (
        [[U, U], [O, U]],
        [pl(BIKE, [[1, U], [1, 1]])],
        rules(parent_constraint=False),
        [[U, U], [BIKE, U]],
        [[0, 0], [1, 0]],
    ),
    "overlap: higher confidence wins, tie -> 255": (
        [[O, O, O]],
        [pl(BIKE, [[1, 1, 1]], [[200, 100, 150]]), pl(CAR, [[1, 1, 1]], [[100, 200, 150]])],
        rules(),
        [[BIKE, CAR, U]],
        [[1, 1, 2]],
    ),
    "overlap: priority beats confidence": (
        [[O, O, O]],
        [pl(BIKE, [[1, 1, 0]], [[200, 100, 150]]), pl(CAR, [[1, 1, 1]], [[100, 200, 150]])],
        rules(priority=(BIKE,)),
        [[BIKE, BIKE, CAR]],
        [[1, 1, 1]],
    ),
    "overlap of three: a partial priority ranks the unlisted below, tied by confidence": (
        [[O, O, O, O]],
        [
            pl(BIKE, [[1, 1, 1, 0]], [[200, 100, 150, 0]]),
            pl(CAR, [[1, 0, 1, 1]], [[10, 0, 150, 90]]),
            pl(9, [[0, 1, 1, 1]], [[0, 200, 150, 90]]),
        ],
        rules(parents={BIKE: (O,), CAR: (O,), 9: (O,)}, priority=(CAR,)),
        [[CAR, 9, CAR, CAR]],
        [[1, 1, 1, 1]],
    ),
    "overlap of three, no priority: the most confident, a tie of the best two -> 255": (
        [[O, O, O]],
        [
            pl(BIKE, [[1, 1, 1]], [[200, 150, 150]]),
            pl(CAR, [[1, 1, 1]], [[100, 150, 140]]),
            pl(9, [[1, 1, 1]], [[199, 10, 150]]),
        ],
        rules(parents={BIKE: (O,), CAR: (O,), 9: (O,)}),
        [[BIKE, U, U]],
        [[1, 2, 2]],
    ),
    "overlap: certain beats uncertain; both uncertain -> 255 even in keep-parent": (
        [[O, O, O, O]],
        [pl(BIKE, [[1, U, U, 0]], [[10, 250, 250, 0]]), pl(CAR, [[U, 1, U, U]], [[250, 10, 9, 9]])],
        rules(uncertain="keep-parent"),
        [[BIKE, CAR, U, O]],
        [[1, 1, 2, 0]],
    ),
    "each class its own parent": (
        [[O, G, G]],
        [pl(BIKE, [[1, 1, 0]]), pl(CAR, [[0, 0, 1]])],
        rules(parents={BIKE: (O,), CAR: (G,)}),
        [[BIKE, G, CAR]],
        [[1, 0, 1]],
    ),
    "class absent: nothing changes": (
        [[O, G], [H, U]],
        [pl(BIKE, [[0, 0], [0, 0]])],
        rules(),
        [[O, G], [H, U]],
        [[0, 0], [0, 0]],
    ),
    "all-ignore precise label": (
        [[U, U], [U, U]],
        [pl(BIKE, [[1, U], [1, 0]])],
        rules(),
        [[U, U], [U, U]],
        [[0, 0], [0, 0]],
    ),
    "no pseudo labels": ([[O, G]], [], rules(), [[O, G]], [[0, 0]]),
    "empty image": (np.zeros((0, 3), np.uint8), [pl(BIKE, np.zeros((0, 3)))], rules(), [], []),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rules(name):
    precise, pseudos, r, want_label, want_source = CASES[name]
    precise = a(precise)
    before = precise.copy()
    fused = fuse_image(precise, pseudos, r)
    np.testing.assert_array_equal(fused.label, a(want_label).reshape(precise.shape))
    np.testing.assert_array_equal(fused.source, a(want_source).reshape(precise.shape))
    np.testing.assert_array_equal(precise, before)  # the input is not modified
    # Pixels fusion did not touch (source 0) are exactly the precise label.
    keep = fused.source == 0
    np.testing.assert_array_equal(fused.label[keep], precise[keep])


def test_stats_parent_constraint():
    fused = fuse_image(a([[O, O, G], [O, G, G]]), [pl(BIKE, [[1, 1, 1], [1, 1, 0]])], rules())
    s = fused.stats[BIKE]
    assert (s.pseudo_pixels, s.claimed_pixels, s.rejected_pixels) == (5, 3, 2)
    assert s.rejected_share == pytest.approx(0.4)
    assert (s.images, s.images_with_none, s.images_without_pseudo) == (1, 0, 0)


def test_stats_class_absent_and_all_rejected():
    absent = fuse_image(a([[O, G]]), [pl(BIKE, [[0, 0]])], rules()).stats[BIKE]
    assert (absent.pseudo_pixels, absent.images_with_none, absent.images_without_pseudo) == (
        0,
        1,
        1,
    )
    assert absent.rejected_share is None
    spilled = fuse_image(a([[G, G]]), [pl(BIKE, [[1, 1]])], rules()).stats[BIKE]
    assert (spilled.images_with_none, spilled.images_without_pseudo) == (1, 0)
    assert spilled.rejected_share == 1.0


def test_stats_uncertain_and_overlap():
    fused = fuse_image(
        a([[O, O, O, O]]),
        [pl(BIKE, [[1, 1, U, U]], [[9, 5, 0, 0]]), pl(CAR, [[0, 1, 0, 0]], [[0, 5, 0, 0]])],
        rules(),
    )
    bike, car = fused.stats[BIKE], fused.stats[CAR]
    assert (bike.claimed_pixels, bike.overlap_lost, bike.uncertain_ignored) == (1, 1, 2)
    assert (car.claimed_pixels, car.overlap_lost, car.images_with_none) == (0, 1, 1)


def test_stats_a_rejected_pixel_is_not_an_overlap_lost():
    """A pseudo pixel on a non-parent (Ground) is rejected, not lost to another class: Car's
    claim there was counted as lost when every 1 counted as a claim, allowed or not."""
    fused = fuse_image(
        a([[O, G, O]]),
        [pl(BIKE, [[1, 1, 1]], [[9, 9, 5]]), pl(CAR, [[0, 1, 1]], [[0, 9, 9]])],
        rules(),
    )
    bike, car = fused.stats[BIKE], fused.stats[CAR]
    assert fused.label.tolist() == [[BIKE, G, CAR]]
    assert (bike.claimed_pixels, bike.rejected_pixels, bike.overlap_lost) == (1, 1, 1)
    assert (car.claimed_pixels, car.rejected_pixels, car.overlap_lost) == (1, 1, 0)


def test_stats_sum_and_round_trip():
    s = ClassStats(images=1, pseudo_pixels=4, rejected_pixels=1) + ClassStats(
        images=1, pseudo_pixels=6, rejected_pixels=4
    )
    assert (s.images, s.pseudo_pixels, s.rejected_share) == (2, 10, 0.5)
    assert ClassStats.from_dict(s.to_dict()) == s
    assert ClassStats().rejected_share is None  # empty pseudo mask: no share, not 0/0
    # the zero a fusion's totals start from: every count 0
    assert set(ClassStats().counts().values()) == {0} and len(ClassStats().counts()) == 15


def inst(*masks) -> Instances:
    masks = np.stack([a(m).astype(bool) for m in masks])
    n = len(masks)
    return Instances(
        xyxy=np.zeros((n, 4)),
        masks=masks,
        scores=np.ones(n),
        mask_scores=np.ones(n),
        class_ids=np.full(n, BIKE),
        prompts=["bicycle"] * n,
    )


def test_instance_coverage():
    allowed = a([[1, 1, 0, 0]]).astype(bool)
    known = a([[1, 1, 1, 0]]).astype(bool)
    masks = np.stack([a(m).astype(bool) for m in ([[1, 1, 0, 0]], [[0, 1, 1, 1]], [[0, 0, 0, 1]])])
    # 2/2 on parent; 1 of 2 known pixels (the 255 one does not count); no known pixel -> 1.
    np.testing.assert_allclose(instance_coverage(masks, allowed, known), [1.0, 0.5, 1.0])
    assert instance_coverage(np.zeros((0, 1, 4), bool), allowed, known).shape == (0,)


def test_coverage_drop_removes_the_whole_instance():
    precise = a([[O, O, O, G, G, G]])
    # instance 0: all on Others; instance 1: 2 of 5 pixels on Others (coverage 0.4), and it
    # overlaps instance 0 on pixel 1 (kept, since instance 0 covers it).
    instances = inst([[1, 1, 0, 0, 0, 0]], [[0, 1, 1, 1, 1, 1]])
    pseudo = [[1, 1, 1, 1, 1, 1]]
    clipped = fuse_image(precise, [pl(BIKE, pseudo, instances=instances)], rules())
    np.testing.assert_array_equal(clipped.label, a([[BIKE, BIKE, BIKE, G, G, G]]))
    assert clipped.stats[BIKE].instances_dropped == 0
    dropped = fuse_image(precise, [pl(BIKE, pseudo, instances=instances)], rules(min_coverage=0.5))
    np.testing.assert_array_equal(dropped.label, a([[BIKE, BIKE, O, G, G, G]]))
    np.testing.assert_array_equal(dropped.source, a([[1, 1, 0, 0, 0, 0]]))
    s = dropped.stats[BIKE]
    assert (s.instances, s.instances_dropped, s.dropped_pixels) == (2, 1, 4)
    assert (s.pseudo_pixels, s.rejected_pixels, s.claimed_pixels) == (6, 0, 2)
    # A threshold at the instance's exact coverage keeps it.
    kept = fuse_image(precise, [pl(BIKE, pseudo, instances=instances)], rules(min_coverage=0.4))
    assert kept.stats[BIKE].instances_dropped == 0


def test_coverage_drop_measures_parent_pixels_with_the_parent_constraint_off_too():
    # --no-parent-constraint --min-coverage 0.5: instance 0 lies 2 of 6 on Others, its parent,
    # so it is dropped; instance 1 lies 1 of 2 on Others (0.5, kept), and its spill onto Ground
    # is claimed, the constraint being off. Before, the
    # coverage counted every pixel the class may claim (all but 255), so with the constraint
    # off every instance had coverage 1 and --min-coverage dropped nothing, without a word.
    precise = a([[O, O, G, G, G, G, O, G]])
    instances = inst([[1, 1, 1, 1, 1, 1, 0, 0]], [[0, 0, 0, 0, 0, 0, 1, 1]])
    pseudo = [[1, 1, 1, 1, 1, 1, 1, 1]]
    fused = fuse_image(
        precise,
        [pl(BIKE, pseudo, instances=instances)],
        rules(parent_constraint=False, min_coverage=0.5),
    )
    np.testing.assert_array_equal(fused.label, a([[O, O, G, G, G, G, BIKE, BIKE]]))
    np.testing.assert_array_equal(fused.source, a([[0, 0, 0, 0, 0, 0, 1, 1]]))
    s = fused.stats[BIKE]
    assert (s.instances, s.instances_dropped, s.dropped_pixels) == (2, 1, 6)
    assert (s.pseudo_pixels, s.rejected_pixels, s.claimed_pixels) == (8, 0, 2)


def test_coverage_drop_also_clears_uncertain_pixels_of_the_instance():
    precise = a([[O, O, G, G]])
    instances = inst([[1, 1, 1, 1]])
    fused = fuse_image(
        precise, [pl(BIKE, [[U, 1, 1, 1]], instances=instances)], rules(min_coverage=0.6)
    )
    np.testing.assert_array_equal(fused.label, precise)
    assert fused.stats[BIKE].instances_dropped == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"uncertain": "maybe"}, "uncertain must be one of"),
        ({"min_coverage": 1.5}, "min_coverage must be in 0..1"),
        ({"min_coverage": -0.5}, r"^min_coverage must be in 0\.\.1, got -0\.5$"),
        ({"priority": (BIKE, BIKE)}, "priority lists a class twice"),
    ],
)
def test_bad_rules(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rules(**kwargs)


def test_bad_inputs():
    precise = a([[O, O]])
    with pytest.raises(ValueError, match=r"must be \(1, 2\) uint8"):
        fuse_image(precise, [pl(BIKE, [[1, 1, 1]])], rules())
    with pytest.raises(ValueError, match="values must be 0, 1 or 255"):
        fuse_image(precise, [pl(BIKE, [[1, 2]])], rules())
    with pytest.raises(ValueError, match="same class id"):
        fuse_image(precise, [pl(BIKE, [[1, 1]]), pl(BIKE, [[1, 1]])], rules())
    with pytest.raises(ValueError, match="no entry for classes"):
        fuse_image(precise, [pl(9, [[1, 1]])], rules())
    with pytest.raises(ValueError, match="new class id must be >= 7"):
        fuse_image(precise, [pl(3, [[1, 1]])], rules(parents={3: (O,)}))


def test_a_pseudo_label_or_instances_of_another_size_than_the_precise_label_are_refused():
    precise = a([[O, O]])
    # the label alone of another size (its confidence map is the precise label's size)
    wide = PseudoLabel(BIKE, a([[1, 1, 1]]), a([[200, 200]]))
    with pytest.raises(
        ValueError,
        match=r"^class 7: pseudo label must be \(1, 2\) uint8 like the precise label, got "
        r"\(1, 3\) uint8$",
    ):
        fuse_image(precise, [wide], rules())
    with pytest.raises(
        ValueError, match=r"^class 7: instance masks are \(1, 3\), label is \(1, 2\)$"
    ):
        fuse_image(precise, [pl(BIKE, [[1, 1]], instances=inst([[1, 1, 1]]))], rules())


@pytest.mark.parametrize(
    "precise, got",
    [
        (np.zeros((1, 2, 3), np.uint8), r"\(1, 2, 3\) uint8"),  # (H, W, 3): the right dtype
        (np.zeros((1, 2), np.int32), r"\(1, 2\) int32"),  # (H, W): the wrong dtype
    ],
)
def test_a_precise_label_of_another_shape_or_dtype_is_refused(precise, got):
    """Either fault alone is refused (an ``and`` of the two checks let each pass)."""
    with pytest.raises(ValueError, match=rf"^precise label must be \(H, W\) uint8, got {got}$"):
        fuse_image(precise, [pl(BIKE, [[1, 1]])], rules())


@pytest.mark.parametrize("seed", range(6))
def test_invariants_on_random_maps(seed):
    """Whatever the inputs: untouched pixels are precise, precise 255s and non-parent classes
    never change, pseudo pixels come from a certain claim on a parent, ignores are 255."""
    rng = np.random.default_rng(seed)
    shape = (17, 23)
    precise = rng.choice([O, H, G, 5, U], size=shape).astype(np.uint8)
    pseudos = [
        pl(c, rng.choice([0, 1, U], size=shape), rng.integers(0, 4, size=shape) * 60)
        for c in (BIKE, CAR)
    ]
    parents = {BIKE: (O,), CAR: (O, G)}
    for r in (
        rules(parents=parents),
        rules(parents=parents, uncertain="keep-parent", priority=(CAR,)),
    ):
        fused = fuse_image(precise, pseudos, r)
        label, source = fused.label, fused.source
        assert set(np.unique(source)) <= {0, 1, 2}
        np.testing.assert_array_equal(label[source == 0], precise[source == 0])
        assert (label[source == 2] == U).all()
        assert ((precise == U) <= (source == 0)).all()
        for p in pseudos:
            mine = source == 1
            mine &= label == p.class_id
            assert (p.label[mine] == 1).all()
            assert np.isin(precise[mine], parents[p.class_id]).all()
        changed = source != 0
        assert np.isin(precise[changed], (O, G)).all()  # only parents ever change
        claimed = {c: int((label == c).sum()) for c in (BIKE, CAR)}
        assert {c: s.claimed_pixels for c, s in fused.stats.items()} == claimed


def test_248_new_classes_the_most_uint8_ids_hold_overlap_exactly():
    """The per-pixel counters are uint8: 248 classes (ids 7..254) claiming one pixel still
    count, tie and win exactly."""
    ids = range(7, 255)
    pseudos = [PseudoLabel(c, a([[1, 1, U]]), a([[100, 9 + (c == 254), 0]]), None) for c in ids]
    fused = fuse_image(a([[O, O, O]]), pseudos, FusionRules(parents={c: (O,) for c in ids}))
    assert fused.label.tolist() == [[U, 254, U]]  # a 248-way tie; 254 most confident; uncertain
    assert fused.source.tolist() == [[2, 1, 2]]
    assert sum(s.overlap_lost for s in fused.stats.values()) == 248 + 247


def test_a_129_way_tie_is_a_tie():
    """Each class that ties the best adds exactly one to the pixel's uint8 tie count: counted
    by twos, a 129-way tie wrapped to 1 (257 % 256) and the first class won the pixel."""
    ids = range(7, 255)
    pseudos = [PseudoLabel(c, a([[int(c < 136)]]), a([[50]]), None) for c in ids]
    fused = fuse_image(a([[O]]), pseudos, FusionRules(parents={c: (O,) for c in ids}))
    assert fused.label.tolist() == [[U]]
    assert fused.source.tolist() == [[2]]
    assert sum(s.overlap_lost for s in fused.stats.values()) == 129


def corrected(class_id, label, mask, conf=None) -> PseudoLabel:
    p = pl(class_id, label, conf)
    return PseudoLabel(p.class_id, p.label, p.confidence, None, a(mask))


def test_a_corrected_mask_replaces_the_pseudo_label_where_it_is_annotated():
    # 1 -> the class, precise (source 0); 0 -> not the class, the precise label kept (a pseudo
    # 1 and an uncertain pixel dropped); 255 -> the pseudo label as it is
    precise = a([[O, O, O, O, O, O]])
    fused = fuse_image(
        precise, [corrected(BIKE, [[0, 1, U, 1, 0, U]], [[1, 0, 0, U, U, U]])], rules()
    )
    np.testing.assert_array_equal(fused.label, a([[BIKE, O, O, BIKE, O, U]]))
    np.testing.assert_array_equal(fused.source, a([[0, 0, 0, 1, 0, 2]]))
    np.testing.assert_array_equal(fused.corrected, np.array([[1, 0, 0, 0, 0, 0]], bool))
    s = fused.stats[BIKE]
    assert (s.pseudo_pixels, s.claimed_pixels, s.uncertain_ignored) == (2, 2, 1)
    assert (s.corrected_images, s.corrected_pixels, s.corrected_claimed) == (1, 3, 1)


def test_an_all_unannotated_correction_fuses_as_no_correction():
    precise = a([[O, O, G], [O, O, H]])
    label = [[1, U, 1], [0, 1, 0]]
    plain = fuse_image(precise, [pl(BIKE, label)], rules())
    masked = fuse_image(precise, [corrected(BIKE, label, [[U] * 3] * 2)], rules())
    np.testing.assert_array_equal(masked.label, plain.label)
    np.testing.assert_array_equal(masked.source, plain.source)
    assert masked.stats[BIKE].corrected_pixels == 0


def test_the_parent_constraint_holds_for_corrections_unless_turned_off():
    # a corrected 1 on Ground (not Bicycle's parent) keeps Ground, counted; without the
    # constraint the human wins, but never over a precise 255
    precise = a([[O, G, U]])
    fused = fuse_image(precise, [corrected(BIKE, [[0, 0, 0]], [[1, 1, 1]])], rules())
    np.testing.assert_array_equal(fused.label, a([[BIKE, G, U]]))
    np.testing.assert_array_equal(fused.source, a([[0, 0, 0]]))
    s = fused.stats[BIKE]
    assert (s.corrected_claimed, s.corrected_rejected, s.rejected_pixels) == (1, 1, 0)
    free = fuse_image(
        precise, [corrected(BIKE, [[0, 0, 0]], [[1, 1, 1]])], rules(parent_constraint=False)
    )
    np.testing.assert_array_equal(free.label, a([[BIKE, BIKE, U]]))
    np.testing.assert_array_equal(free.source, a([[0, 0, 0]]))


def test_a_correction_of_one_class_leaves_another_class_s_pseudo_pixels():
    # Bicycle corrected to 0 where Car's pseudo label claims: Car keeps its pixel (pseudo);
    # a corrected Bicycle pixel beats Car's most confident pseudo pixel, but not a Car that
    # --priority ranks first
    precise = a([[O, O, O]])
    bike = corrected(BIKE, [[1, 1, 0]], [[0, 1, U]], [[250, 10, 0]])
    car = pl(CAR, [[1, 1, 1]], [[100, 255, 50]])
    fused = fuse_image(precise, [bike, car], rules())
    np.testing.assert_array_equal(fused.label, a([[CAR, BIKE, CAR]]))
    np.testing.assert_array_equal(fused.source, a([[1, 0, 1]]))
    assert fused.stats[CAR].overlap_lost == 1
    ranked = fuse_image(precise, [bike, car], rules(priority=(CAR,)))
    np.testing.assert_array_equal(ranked.label, a([[CAR, CAR, CAR]]))
    np.testing.assert_array_equal(ranked.source, a([[1, 1, 1]]))
    assert ranked.stats[BIKE].corrected_claimed == 0
    # ... even Car's least confident pseudo pixel (0): a corrected pixel's 256 stays below the
    # next priority band (a band is 257 wide), not a tie sent to ignore
    faint = fuse_image(precise, [bike, pl(CAR, [[1, 1, 1]], [[0, 0, 0]])], rules(priority=(CAR,)))
    np.testing.assert_array_equal(faint.label, a([[CAR, CAR, CAR]]))


def test_a_corrected_mask_of_bad_values_or_size_is_refused():
    with pytest.raises(
        ValueError, match="corrected mask values must be 0, 1 or 255, found \\[2\\]"
    ):
        fuse_image(a([[O, O]]), [corrected(BIKE, [[0, 0]], [[2, 1]])], rules())
    with pytest.raises(ValueError, match="corrected mask must be \\(1, 2\\) uint8"):
        fuse_image(a([[O, O]]), [corrected(BIKE, [[0, 0]], [[1, 1, 1]])], rules())


def test_stats_without_corrections_are_recorded_as_before():
    s = ClassStats(images=1, corrected_pixels=3)
    assert "corrected_pixels" not in s.to_dict(corrections=False)
    assert "corrected_pixels" not in s.counts(corrections=False)
    assert s.counts()["corrected_pixels"] == 3  # by default with the corrections' counts
    # a record without them (a fusion without corrections) reads them as 0
    assert ClassStats.from_dict(s.counts(corrections=False)) == ClassStats(images=1)
    assert ClassStats.from_dict(s.to_dict()) == s
