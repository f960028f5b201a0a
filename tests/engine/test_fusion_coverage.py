"""The coverage drop window by window (``engine fuse --min-coverage``): the same bytes and counts
as the full-size masks it replaced, in a fraction of the memory."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

import engine.fusion.rules as rules_module
from annotations.instances import (
    Instances,
    InstanceWindows,
    read_instance_windows,
    read_instances,
    write_instances,
)
from annotations.labelmap import IGNORE
from engine.fusion import FusionRules, PseudoLabel, fuse_image, open_pseudo_run, read_pseudo
from engine.fusion.rules import ClassStats, allowed_pixels, instance_coverage
from engine.fusion.testing import write_pseudo_run


def full_size_drop(precise, p, rules, st):
    """The coverage drop before the forty-third round, on ``(N, H, W)`` masks: the reference."""
    if rules.min_coverage is None or p.instances is None:
        return p.label
    inst = p.instances
    allowed = allowed_pixels(precise, rules.parents[p.class_id], True)  # parents, constraint or not
    cov = instance_coverage(inst.masks, allowed, precise != IGNORE)
    drop = cov < rules.min_coverage
    st.instances = len(inst)
    st.instances_dropped = int(drop.sum())
    if not drop.any():
        return p.label
    removed = inst.masks[drop].any(axis=0)
    if (~drop).any():
        removed &= ~inst.masks[~drop].any(axis=0)
    st.dropped_pixels = int(np.count_nonzero(removed & (p.label == 1)))
    return np.where(removed, np.uint8(0), p.label)


def random_image(rng, classes):
    """A precise label with 255s and, per new class, instances (overlapping, on the edges, some
    empty) and a pseudo label made of them, with uncertain pixels and stray ones."""
    h, w = (int(v) for v in rng.integers(1, 40, 2))
    precise = rng.choice(np.array([0, 1, 4, 5, IGNORE], np.uint8), (h, w))
    if rng.random() < 0.5:  # blocks, as real labels have
        precise = np.repeat(np.repeat(precise[: h // 4 + 1, : w // 4 + 1], 4, 0), 4, 1)[:h, :w]
        precise = np.ascontiguousarray(precise)
    pseudos = []
    for c in classes:
        masks = []
        for _ in range(int(rng.integers(0, 7))):
            m = np.zeros((h, w), bool)
            if rng.random() > 0.15:  # else an empty mask
                y0, x0 = (int(v) for v in rng.integers(-3, (h, w)))
                y1, x1 = y0 + int(rng.integers(1, h + 4)), x0 + int(rng.integers(1, w + 4))
                m[max(y0, 0) : y1, max(x0, 0) : x1] = True
                m &= rng.random((h, w)) < rng.uniform(0.5, 1.0)  # holes
            masks.append(m)
        masks = np.array(masks, bool).reshape(-1, h, w)
        label = masks.any(axis=0).astype(np.uint8)
        label[rng.random((h, w)) < 0.05] = 1  # pixels no instance holds
        label[rng.random((h, w)) < 0.1] = IGNORE
        n = len(masks)
        inst = Instances(np.zeros((n, 4)), masks, np.ones(n), np.ones(n), np.full(n, c), ["x"] * n)
        conf = rng.integers(0, 256, (h, w), dtype=np.uint8)
        pseudos.append(PseudoLabel(c, label, conf, inst))
    return precise, pseudos


@pytest.mark.parametrize("seed", range(300))
def test_window_drop_gives_the_full_size_bytes_and_counts(seed, tmp_path, monkeypatch):
    rng = np.random.default_rng(seed)
    classes = [7 + k for k in range(int(rng.integers(1, 4)))]
    precise, pseudos = random_image(rng, classes)
    rules = FusionRules(
        parents={c: tuple(rng.choice([0, 1, 4, 5], int(rng.integers(1, 3)))) for c in classes},
        parent_constraint=bool(rng.random() < 0.8),
        uncertain=str(rng.choice(["ignore", "keep-parent"])),
        min_coverage=float(rng.choice([0.0, 0.3, 0.5, 0.75, 1.0, rng.random()])),
        priority=tuple(int(c) for c in rng.permutation(classes)[: int(rng.integers(0, 3))]),
    )
    # the windows as engine fuse reads them: through an instances file
    from_file = []
    for p in pseudos:
        path = write_instances(tmp_path / f"{p.class_id}.json", p.instances)
        windows = read_instance_windows(path)
        for win, mask in zip(windows.windows, read_instances(path)[0].masks, strict=True):
            y0, x0, y1, x1 = win.box
            full = np.zeros(windows.image_size, bool)
            full[y0:y1, x0:x1] = win.crop()
            np.testing.assert_array_equal(full, mask)
        from_file.append(PseudoLabel(p.class_id, p.label, p.confidence, windows))
    new = fuse_image(precise, from_file, rules)
    new_full = fuse_image(precise, pseudos, rules)  # Instances given: cropped to windows
    monkeypatch.setattr(rules_module, "_drop_instances", full_size_drop)
    old = fuse_image(precise, pseudos, rules)
    for got in (new, new_full):
        assert got.label.tobytes() == old.label.tobytes()
        assert got.source.tobytes() == old.source.tobytes()
        assert got.stats == old.stats


def test_instance_windows_select_and_come_from_instances():
    masks = np.zeros((3, 4, 5), bool)
    masks[0, 1:3, 2:4] = masks[2, 3, 4] = True  # instance 1 empty
    inst = Instances(np.zeros((3, 4)), masks, np.ones(3), np.ones(3), [7, 8, 7], ["x"] * 3)
    win = InstanceWindows.from_instances(inst)
    assert [w.box for w in win.windows] == [(1, 2, 3, 4), (0, 0, 0, 0), (3, 4, 4, 5)]
    assert [w.crop().shape for w in win.windows] == [(2, 2), (0, 0), (1, 1)]
    picked = win[win.class_ids == 7]
    assert len(picked) == 2 and picked.image_size == (4, 5)
    assert picked.windows == (win.windows[0], win.windows[2])


def small_objects(h, w, rng):
    """40 discs: small windows."""
    masks = np.zeros((40, h, w), np.uint8)
    for k, m in enumerate(masks):
        center = (40 + 200 * (k % 8), 100 + 220 * (k // 8))
        cv2.circle(m, center, int(rng.integers(15, 60)), 1, -1)
    return masks.astype(bool)


def wide_windows(h, w, rng):
    """40 instances of two blobs each, one at the left edge and one at the right: every window
    is nearly the whole image."""
    masks = np.zeros((40, h, w), np.uint8)
    for k, m in enumerate(masks):
        y = 30 + 28 * k
        cv2.circle(m, (10, y), 8, 1, -1)
        cv2.circle(m, (w - 10 - k, h - y), 8 + k % 3, 1, -1)
    return masks.astype(bool)


@pytest.mark.parametrize("make", [small_objects, wide_windows])
def test_coverage_drop_memory_is_one_window_not_full_size_masks(tmp_path, make):
    """40 instances on a 1600x1200 image: full-size masks held 40 x 1.9 MB (77 MB, and more while
    stacking; 158 MB peak measured); now the label, confidence and precise maps, the map of kept
    instances and one window (16 MB measured), however large the windows."""
    h, w = 1200, 1600
    rng = np.random.default_rng(0)
    masks = make(h, w, rng)
    label = masks.any(axis=0).astype(np.uint8)
    label[(label == 1) & (rng.random((h, w)) < 0.05)] = IGNORE
    run = write_pseudo_run(tmp_path / "run", "Bicycle", {"train": {"a": label}})
    n = len(masks)
    inst = Instances(np.zeros((n, 4)), masks, np.ones(n), np.ones(n), np.full(n, 7), ["x"] * n)
    write_instances(run / "instances" / "train" / "a.json", inst)
    del masks, inst
    precise = np.full((h, w), 4, np.uint8)  # Ground; Others on the left
    precise[:, : w // 2] = 0
    precise[rng.random((h, w)) < 0.01] = IGNORE
    rules = FusionRules(parents={7: (0,)}, min_coverage=0.5)
    pseudo_run = open_pseudo_run(run)
    tracemalloc.start()
    try:
        lab, conf, inst = read_pseudo(pseudo_run, "train", "a", (h, w), True)
        fused = fuse_image(precise, [PseudoLabel(7, lab, conf, inst)], rules)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    s = fused.stats[7]
    assert s.instances == 40 and 0 < s.instances_dropped < 40 and s.dropped_pixels > 0
    assert peak < 20 * h * w, f"{peak / 1e6:.0f} MB for 40 instances (full size: 1.9 MB each)"


def test_stats_of_a_drop_count_a_pixel_two_dropped_instances_share_once():
    precise = np.array([[4, 4, 4, 0]], np.uint8)
    masks = np.array([[[1, 1, 0, 0]], [[0, 1, 1, 0]], [[0, 0, 0, 1]]], bool)
    inst = Instances(np.zeros((3, 4)), masks, np.ones(3), np.ones(3), [7] * 3, ["x"] * 3)
    label = np.array([[1, 1, 255, 1]], np.uint8)
    p = PseudoLabel(7, label, np.full((1, 4), 200, np.uint8), inst)
    st = ClassStats()
    out = rules_module._drop_instances(
        precise, p, FusionRules(parents={7: (0,)}, min_coverage=0.5), st
    )
    np.testing.assert_array_equal(out, [[0, 0, 0, 1]])
    assert (st.instances, st.instances_dropped, st.dropped_pixels) == (3, 2, 2)
