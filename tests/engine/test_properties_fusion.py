"""Property-based tests of ``engine.fusion.fuse_image`` against a per-pixel reference written
from docs/fusion.md's rules 2-6 (parent constraint, certain claims by priority band then
confidence, ties and uncertain pixels, precise 255 never changed, corrections), on random
small images with up to four new classes; and invariance to the order of the pseudo labels.

Deterministic (``derandomize``); ``HYPOTHESIS_PROFILE=thorough`` runs more examples
(tests/conftest.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from annotations.instances import Instances
from annotations.rle import mask_to_rle, rle_run_window
from engine.fusion.rules import (
    FusionRules,
    PseudoLabel,
    _allowed_lut,
    allowed_pixels,
    fuse_image,
    instance_coverage,
    window_coverage,
)

NUM_PRECISE = 7
SOURCE_PRECISE, SOURCE_PSEUDO, SOURCE_IGNORED = 0, 1, 2


@st.composite
def fusion_case(draw):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    precise = rng.choice(list(range(NUM_PRECISE)) + [255], size=(h, w)).astype(np.uint8)
    n = draw(st.integers(1, 4))
    ids = draw(st.permutations(range(NUM_PRECISE, NUM_PRECISE + n)))
    levels = draw(st.sampled_from([[0, 255], [0, 1, 2, 255], list(range(256))]))  # ties or not
    pseudos, parents = [], {}
    # mostly uncertain labels too: rule 4's "two uncertain, no claim" pixels were rarely drawn
    values = draw(st.sampled_from([[0, 0, 1, 1, 255], [0, 255, 255, 255]]))
    for c in ids:
        label = rng.choice(values, size=(h, w)).astype(np.uint8)
        confidence = rng.choice(levels, size=(h, w)).astype(np.uint8)
        corrected = None
        if draw(st.booleans()) and draw(st.booleans()):
            corrected = rng.choice([0, 1, 255], size=(h, w)).astype(np.uint8)
        pseudos.append(PseudoLabel(c, label, confidence, corrected=corrected))
        parents[c] = tuple(
            draw(st.lists(st.integers(0, NUM_PRECISE - 1), min_size=1, max_size=3, unique=True))
        )
    priority = tuple(draw(st.lists(st.sampled_from(sorted(ids)), unique=True, max_size=n)))
    rules = FusionRules(
        parents=parents,
        parent_constraint=draw(st.booleans()),
        uncertain=draw(st.sampled_from(["ignore", "keep-parent"])),
        priority=priority,
    )
    return precise, pseudos, rules


def reference(precise, pseudos, rules):
    """docs/fusion.md, rules 2-6, one pixel at a time."""
    label, source = precise.copy(), np.zeros_like(precise)
    rank = {c: len(rules.priority) - i for i, c in enumerate(rules.priority)}
    for y, x in np.ndindex(precise.shape):
        pre = int(precise[y, x])
        if pre == 255:
            continue  # rule 5: never changed
        claims, uncertain = [], 0
        for p in pseudos:
            allowed = pre in rules.parents[p.class_id] if rules.parent_constraint else True
            if not allowed:
                continue
            value = int(p.label[y, x])
            human = p.corrected is not None and p.corrected[y, x] != 255
            if human:
                value = int(p.corrected[y, x])
            if value == 1:  # rule 3; a corrected 1 is above every pseudo pixel of its band
                conf = 256 if human else int(p.confidence[y, x])
                claims.append(((rank.get(p.class_id, 0), conf), p.class_id, human))
            elif value == 255:
                uncertain += 1
        if claims:
            top = max(k for k, _, _ in claims)
            best = [(c, human) for k, c, human in claims if k == top]
            if len(best) == 1:
                label[y, x] = best[0][0]
                source[y, x] = SOURCE_PRECISE if best[0][1] else SOURCE_PSEUDO
            else:
                label[y, x], source[y, x] = 255, SOURCE_IGNORED
        elif uncertain >= (1 if rules.uncertain == "ignore" else 2):  # rule 4
            label[y, x], source[y, x] = 255, SOURCE_IGNORED
    return label, source


@given(fusion_case())
def test_fuse_image_follows_the_documented_rules(case) -> None:
    precise, pseudos, rules = case
    got = fuse_image(precise, pseudos, rules, NUM_PRECISE)
    want_label, want_source = reference(precise, pseudos, rules)
    np.testing.assert_array_equal(got.label, want_label)
    np.testing.assert_array_equal(got.source, want_source)
    for c, st_ in got.stats.items():
        assert st_.claimed_pixels == int(np.count_nonzero(got.label == c))
        assert 0 <= st_.rejected_pixels <= st_.pseudo_pixels


@given(fusion_case(), st.randoms(use_true_random=False))
def test_the_order_of_the_pseudo_labels_does_not_matter(case, rnd) -> None:
    precise, pseudos, rules = case
    shuffled = list(pseudos)
    rnd.shuffle(shuffled)
    a = fuse_image(precise, pseudos, rules, NUM_PRECISE)
    b = fuse_image(precise, shuffled, rules, NUM_PRECISE)
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(a.source, b.source)
    assert a.stats == b.stats


@given(fusion_case())
def test_fusing_again_changes_nothing_when_nothing_is_claimed(case) -> None:
    """Pseudo labels that claim nothing (all 0) leave the precise label as it is, source 0."""
    precise, pseudos, rules = case
    empty = [PseudoLabel(p.class_id, np.zeros_like(p.label), p.confidence) for p in pseudos]
    got = fuse_image(precise, empty, rules, NUM_PRECISE)
    np.testing.assert_array_equal(got.label, precise)
    assert not got.source.any()


@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 4), st.integers(0, 2**32 - 1),
       st.lists(st.integers(0, NUM_PRECISE - 1), min_size=1, max_size=3, unique=True))  # fmt: skip
def test_window_coverage_equals_the_full_size_coverage(h, w, n, seed, parents) -> None:
    """Rule 1's shares, computed window by window from the instances' RLE runs (what engine
    fuse does) and on full-size masks: the same floats."""
    rng = np.random.default_rng(seed)
    precise = rng.choice([*range(NUM_PRECISE), 255], size=(h, w)).astype(np.uint8)
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        y0, x0 = rng.integers(h), rng.integers(w)
        masks[i, y0 : rng.integers(y0, h) + 1, x0 : rng.integers(x0, w) + 1] = rng.random() < 0.9
    lut = _allowed_lut(tuple(parents))
    full = instance_coverage(masks, allowed_pixels(precise, parents, True), precise != 255)
    windows = [rle_run_window(mask_to_rle(m)) for m in masks]
    np.testing.assert_array_equal(window_coverage(windows, precise, lut), full)
    assert ((full >= 0) & (full <= 1)).all()


@given(fusion_case(), st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.3, 0.5, 1.0]))
def test_coverage_drop_follows_rule_1(case, seed, threshold) -> None:
    """docs/fusion.md rule 1: an instance whose share of known mask pixels on parent pixels is
    below the threshold is dropped; pixels no kept instance covers become 0 (uncertain ones
    too); then rules 2-6 as without the drop."""
    precise, pseudos, rules = case
    rng = np.random.default_rng(seed)
    h, w = precise.shape
    with_instances, dropped = [], []
    for p in pseudos:
        n = int(rng.integers(0, 4))
        masks = np.zeros((n, h, w), bool)
        for i in range(n):
            y0, x0 = rng.integers(h), rng.integers(w)
            masks[i, y0 : rng.integers(y0, h) + 1, x0 : rng.integers(x0, w) + 1] = True
        inst = Instances(np.zeros((n, 4)), masks, np.ones(n), np.ones(n), np.zeros(n), ["x"] * n)
        with_instances.append(
            PseudoLabel(p.class_id, p.label, p.confidence, inst, corrected=p.corrected)
        )
        # the reference: shares from the definition (on parent pixels, the constraint on or
        # off), then the drop
        allowed = np.isin(precise, rules.parents[p.class_id])
        known = precise != 255
        drop = np.array(
            [
                np.count_nonzero(m & known) > 0
                and np.count_nonzero(m & allowed) / np.count_nonzero(m & known) < threshold
                for m in masks
            ],
            bool,
        )
        kept = masks[~drop].any(axis=0) if n else np.zeros((h, w), bool)
        gone = masks[drop].any(axis=0) & ~kept if n else np.zeros((h, w), bool)
        dropped.append(
            PseudoLabel(
                p.class_id, np.where(gone, 0, p.label).astype(np.uint8), p.confidence,
                corrected=p.corrected,
            )
        )  # fmt: skip
    coverage = FusionRules(
        parents=rules.parents,
        parent_constraint=rules.parent_constraint,
        uncertain=rules.uncertain,
        priority=rules.priority,
        min_coverage=threshold,
    )
    got = fuse_image(precise, with_instances, coverage, NUM_PRECISE)
    want_label, want_source = reference(precise, dropped, rules)
    np.testing.assert_array_equal(got.label, want_label)
    np.testing.assert_array_equal(got.source, want_source)
