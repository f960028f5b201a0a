"""Training data pipeline: crop share rule, padding, sources, seeded stream, sharding."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from annotations.labelmap import write_label
from trainer.data import (
    AugmentConfig,
    StreamSampler,
    TrainSet,
    augment,
    crop_box,
    make_loader,
    photometric_distortion,
    random_resize,
    to_device,
)


def write_dataset(root, n=3, size=(40, 30), sources=False):
    rng = np.random.default_rng(0)
    w, h = size
    for split in ("train",):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        if sources:
            (root / "sources" / split).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / "images" / split / f"im{i}.png")
            lab = np.zeros((h, w), np.uint8)
            lab[:, w // 2 :] = 1 + i % 3
            write_label(root / "annotations" / split / f"im{i}.png", lab)
            if sources:
                src = np.zeros((h, w), np.uint8)
                src[:, w // 2 :] = 1
                write_label(root / "sources" / split / f"im{i}.png", src)
    return root


def test_crop_box_respects_the_class_share_rule():
    label = np.zeros((100, 100), np.uint8)
    label[:, 80:] = 1

    def share(y, x):
        counts = np.bincount(label[y : y + 40, x : x + 40].ravel())
        return counts.max() / counts.sum()

    with_rule = [share(*crop_box(label, 40, np.random.default_rng(s))) < 0.75 for s in range(200)]
    without = [
        share(*crop_box(label, 40, np.random.default_rng(s), tries=1)) < 0.75 for s in range(200)
    ]
    # one draw satisfies the rule with p = 10/61; ten draws with p ~ 0.83
    assert np.mean(with_rule) > 0.7 and np.mean(without) < 0.3

    # cat_max_ratio 1 turns the rule off (mmseg's default): the first draw, whatever it holds
    off = [crop_box(label, 40, np.random.default_rng(s), cat_max_ratio=1.0) for s in range(20)]
    assert off == [crop_box(label, 40, np.random.default_rng(s), tries=1) for s in range(20)]


def test_crop_box_share_rule_edges():
    # 8 x 10 label, 8 px crops at x = 0, 1, 2. Share exactly 0.75 (48 of 64) is rejected (mmseg:
    # max share < ratio), as are the other windows: the result is the last draw, the one a label
    # whose every window is rejected (one class) gives from the same seed
    label = np.zeros((8, 10), np.uint8)
    label[:, :2] = 1  # x = 0: 48 + 16 (share 0.75); x = 1: 56 + 8; x = 2: one class
    for s in range(30):
        rejected = crop_box(np.zeros_like(label), 8, np.random.default_rng(s))
        assert crop_box(label, 8, np.random.default_rng(s)) == rejected
    # a class of one pixel counts: at x = 0, 63 + 1 has share 63/64 < 0.99 and is kept; x = 1 is
    # one class. These seeds draw x = 0 within their ten tries (hand-checked: (1/2)^10 misses)
    label = np.zeros((8, 9), np.uint8)
    label[0, 0] = 1
    assert {crop_box(label, 8, np.random.default_rng(s), 0.99) for s in range(30)} == {(0, 0)}


def test_crop_box_share_rule_counts_labelled_pixels_only():
    # mmseg's rule drops ignore_index from the counts: 255 is no class. 10 x 120 label, 10 px
    # crops at x = 0..110: 255 in columns 0-19, Others (1) in 20-29, then Others and Bicycle (2)
    # in alternate columns. Crops at x = 13..17 hold 255 and Others only: one labelled class,
    # rejected (counted as a class, 255 would make them pass: 30-70% each). Crops from x = 26 on
    # pass, 85 of 111 positions, so ten draws miss them with p 4e-7: every kept crop holds two
    # labelled classes, none at 75% or more
    label = np.full((10, 120), 255, np.uint8)
    label[:, 20:] = 1
    label[:, 31::2] = 2

    def passes(x):
        counts = np.bincount(label[:, x : x + 10].ravel(), minlength=256)[:255]
        counts = counts[counts > 0]
        return len(counts) > 1 and counts.max() / counts.sum() < 0.75

    assert not any(passes(x) for x in range(13, 18))
    assert sum(passes(x) for x in range(111)) == 85
    kept = [crop_box(label, 10, np.random.default_rng(s)) for s in range(300)]
    assert all(y == 0 and passes(x) for y, x in kept)


@pytest.mark.parametrize("fill", [255, 3])  # all-ignore and single-class labels: last draw kept
def test_crop_box_degenerate_labels(fill):
    label = np.full((50, 60), fill, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an all-ignore crop has no share to compute: no 0 / 0
        y, x = crop_box(label, 32, np.random.default_rng(0))
    assert 0 <= y <= 18 and 0 <= x <= 28
    # every draw rejected: the last of mmseg's 10 tries (AugmentConfig's default) is kept
    tries = AugmentConfig().crop_tries
    assert (y, x) == crop_box(label, 32, np.random.default_rng(0), tries=tries)
    assert (y, x) != crop_box(label, 32, np.random.default_rng(0), tries=tries - 1)


def test_augment_pads_small_images_with_ignore_and_crops_to_size():
    cfg = AugmentConfig(crop=64, short_side_range=(20, 20), photometric=False, flip=0.0)
    img = np.full((30, 40, 3), 7, np.uint8)
    lab = np.zeros((30, 40), np.uint8)
    src = np.ones((30, 40), np.uint8)
    i, lab2, s = augment(img, lab, src, cfg, np.random.default_rng(0))
    assert i.shape == (64, 64, 3) and lab2.shape == (64, 64) and s.shape == (64, 64)
    assert (lab2 == 255).sum() == 64 * 64 - 20 * 27  # resized to 27x20, the rest padded
    assert set(np.unique(lab2)) == {0, 255}


def test_default_scale_range_follows_the_crop():
    assert AugmentConfig().short_range() == (1536, 6144) and AugmentConfig().long_cap() == 8192
    assert AugmentConfig(crop=64).short_range() == (96, 384)
    with pytest.raises(ValueError, match="short_side_range"):
        AugmentConfig(short_side_range=(10, 5))


NAN = float("nan")
_SIDES = "short_side_range must be two whole numbers of pixels, 0 < lo <= hi <= 1,000,000, got "
_IDS = " must be a list of class ids (whole numbers >= 0), got "


@pytest.mark.parametrize(
    "config, given, said",
    [
        ("augment", {"short_side_range": (100.7, 200.9)}, _SIDES + "[100.7, 200.9]"),
        ("augment", {"short_side_range": (NAN, 200)}, _SIDES + "[nan, 200]"),
        ("augment", {"short_side_range": (100,)}, _SIDES + "[100]"),
        ("augment", {"short_side_range": (True, 200)}, _SIDES + "[True, 200]"),
        ("augment", {"short_side_range": (10, 5)}, _SIDES + "[10, 5]"),
        ("augment", {"short_side_range": (8, 1_000_001)}, _SIDES + "[8, 1000001]"),
        ("augment", {"focus_classes": [1.5, NAN]}, "focus_classes" + _IDS + "[1.5, nan]"),
        ("augment", {"focus_classes": [-1]}, "focus_classes" + _IDS + "[-1]"),
        ("augment", {"focus_classes": 3}, "focus_classes" + _IDS + "3"),
        ("decoupling", {"pseudo_classes": [NAN]}, "pseudo_classes" + _IDS + "[nan]"),
        ("decoupling", {"pseudo_classes": (2, 2.5)}, "pseudo_classes" + _IDS + "[2, 2.5]"),
    ],
)
def test_a_caller_s_sizes_and_class_ids_are_whole_numbers_or_one_line(config, given, said):
    """As TrainConfig.val_size: a Python caller's (100.7, 200.9) was taken as (100, 200) by
    int(), (nan, 200) said Python's "cannot convert float NaN to integer", and class ids 1.5,
    nan or -1 were taken (no crop centred there, no class weighted)."""
    from trainer.losses import DecouplingConfig

    with pytest.raises(ValueError) as e:
        (AugmentConfig if config == "augment" else DecouplingConfig)(**given)
    assert str(e.value) == said


def test_whole_sizes_and_class_ids_given_as_floats_or_numpy_are_integers():
    from trainer.losses import DecouplingConfig

    cfg = AugmentConfig(short_side_range=(96.0, np.int64(160)), focus_classes=(np.int64(8), 7.0))
    assert (cfg.short_side_range, cfg.focus_classes) == ((96, 160), [8, 7])
    assert [type(v) for v in (*cfg.short_side_range, *cfg.focus_classes)] == [int] * 4
    assert DecouplingConfig(pseudo_classes=[8.0, 0]).pseudo_classes == [8, 0]


def test_random_resize_caps_the_long_side():
    """Short side 100 of a 50x20 image is x5 (250x100), over the 150 cap on the long side:
    x3 instead, 150x60."""
    cfg = AugmentConfig(crop=8, short_side_range=(100, 100), max_long_side=150)
    img, lab, src = (
        np.zeros((20, 50, 3), np.uint8),
        np.zeros((20, 50), np.uint8),
        np.ones((20, 50), np.uint8),
    )
    out = random_resize(img, lab, src, cfg, np.random.default_rng(0))
    assert [a.shape for a in out] == [(60, 150, 3), (60, 150), (60, 150)]
    cfg = AugmentConfig(crop=8, short_side_range=(30, 30))  # 8 x crop = 64 caps 75x30 at 64x26
    assert random_resize(img, lab, src, cfg, np.random.default_rng(0))[1].shape == (26, 64)
    thin = np.zeros((1, 200), np.uint8)  # x8 then capped at 64/200: 0.32 rows, kept as 1
    assert random_resize(thin[..., None].repeat(3, 2), thin, thin, cfg, np.random.default_rng(0))[
        1
    ].shape == (1, 64)
    tall = np.ascontiguousarray(thin.T)  # and 0.32 columns of a 200x1 one
    assert random_resize(tall[..., None].repeat(3, 2), tall, tall, cfg, np.random.default_rng(0))[
        1
    ].shape == (64, 1)


@pytest.mark.parametrize(("flip", "flipped"), [(1.0, True), (0.0, False)])
def test_flip_probability_1_always_mirrors_and_0_never(flip, flipped):
    """An 8x8 sample at crop 8 and short side 8 is neither resized nor cropped: only the flip
    moves its columns."""
    cfg = AugmentConfig(crop=8, short_side_range=(8, 8), photometric=False, flip=flip)
    lab = np.tile(np.arange(8, dtype=np.uint8), (8, 1))
    img = np.repeat(lab[..., None] * 10, 3, axis=2)
    for seed in range(5):
        i, la, s = augment(img, lab, lab.copy(), cfg, np.random.default_rng(seed))
        want = lab[:, ::-1] if flipped else lab
        assert (la == want).all() and (s == want).all() and (i[..., 0] == want * 10).all()


class _EdgeRng:
    """A generator whose ``random()`` is ``p`` and whose ranges give their upper (``uniform``)
    or lower (``integers``) end; it records the ranges asked for."""

    def __init__(self, p: float) -> None:
        self.p, self.asked = p, []

    def random(self) -> float:
        return self.p

    def uniform(self, lo, hi):
        self.asked.append(("uniform", lo, hi))
        return hi

    def integers(self, lo, hi):
        self.asked.append(("integers", lo, hi))
        return lo


@pytest.mark.parametrize(("p", "value"), [(0.49, 198), (0.5, 100), (0.51, 100)])
def test_photometric_steps_each_run_below_probability_one_half_with_mmsegs_ranges(p, value):
    """mmseg's ranges: brightness +-32, contrast and saturation x0.5..1.5, hue -18..18. Under
    0.5 every step runs (contrast first): grey 100 + 32 = 132, x1.5 = 198 (grey has no
    saturation or hue to change); above it none does."""
    rng = _EdgeRng(p)
    out = photometric_distortion(np.full((2, 3, 3), 100, np.uint8), rng)
    assert out.dtype == np.uint8 and (out == value).all()
    ranges = [("uniform", -32, 32), ("uniform", 0.5, 1.5), ("uniform", 0.5, 1.5)]
    assert rng.asked == (ranges + [("integers", -18, 19)] if p < 0.5 else [])


class _SeqRng(_EdgeRng):
    """:class:`_EdgeRng` whose ``random()`` gives ``draws`` in turn, and ``uniform`` the
    ``uniforms`` given (else its upper end)."""

    def __init__(self, draws: list[float], uniforms: list[float] | None = None) -> None:
        super().__init__(0.0)
        self.draws, self.uniforms = list(draws), uniforms

    def random(self) -> float:
        return self.draws.pop(0)

    def uniform(self, lo, hi):
        return self.uniforms.pop(0) if self.uniforms is not None else super().uniform(lo, hi)


@pytest.mark.parametrize(
    ("draws", "uniforms", "want"),
    [
        ([0.4] * 6, None, [[255, 57, 64], [255, 0, 153]]),  # contrast first
        ([0.4, 0.6, 0.4, 0.4, 0.4], None, [[255, 10, 100], [255, 0, 229]]),  # contrast last
        ([0.4, 0.4, 0.4, 0.6, 0.6], [-32, 0.5], [[84, 34, 9], [111, 0, 0]]),  # darker, no HSV
    ],
)
def test_photometric_saturation_and_hue_on_coloured_pixels_by_hand(draws, uniforms, want):
    """Saturation x1.5 and hue -18 through OpenCV's HSV (H = degrees / 2, S and V 0..255) on
    RGB (200, 100, 50) and (255, 0, 0); the grey test above cannot see either step. Contrast
    first: +32 then x1.5 gives (348, 198, 123) -> clipped (255, 198, 123) = HSV (17, 132, 255);
    S x1.5 = 198, H 17 - 18 = -1 wraps to 179 (358 deg): C = 198, min 57, B = 57 + 198 x 2/60
    = 63.6 -> (255, 57, 64). (287, 48, 48) -> (255, 48, 48) = HSV (0, 207, 255); S 310.5
    clipped to 255, H -18 -> 162 (324 deg): B = 255 x 36/60 = 153 -> (255, 0, 153). Contrast
    last: (232, 132, 82) = HSV (10, 165, 232); S 247.5 -> 247, H -8 -> 172 (344 deg): C = 224.7,
    min 7.3, B = 7.3 + 224.7 x 16/60 = 67.2 -> (232, 7, 67), x1.5 -> (255, 10, 100); (255, 32,
    32) = HSV (0, 223, 255) -> (162, 255, 255) = (255, 0, 153), x1.5 -> (255, 0, 229). -32 and
    x0.5 alone: (84, 34, 9) = HSV (10, 228, 84), back unchanged; (111.5, -16, -16) clipped at 0
    (not wrapped to uint8 240) -> (111, 0, 0)."""
    image = np.array([[[200, 100, 50], [255, 0, 0]]], np.uint8)
    rng = _SeqRng(draws, uniforms)
    out = photometric_distortion(image, rng)
    assert out.dtype == np.uint8 and out.tolist() == [want] and rng.draws == draws[5:]


def test_stream_sampler_shards_and_resumes():
    full = list(itertools.islice(iter(StreamSampler(5, seed=3)), 12))
    assert sorted(k[0] for k in full[:5]) == list(range(5))  # an epoch is a permutation
    later = list(itertools.islice(iter(StreamSampler(5, seed=3, start=7)), 5))
    assert later == full[7:12]
    r0 = [k[0] for k in itertools.islice(iter(StreamSampler(5, 3, rank=0, world=2)), 3)]
    r1 = [k[0] for k in itertools.islice(iter(StreamSampler(5, 3, rank=1, world=2)), 3)]
    assert len(set(r0) | set(r1)) == 5  # together one epoch (padded by wrapping)


def test_trainset_is_deterministic_and_reads_sources(tmp_path):
    root = write_dataset(tmp_path, sources=True)
    cfg = AugmentConfig(crop=24, short_side_range=(30, 45))
    ds = TrainSet(root, "train", cfg)
    a, b = ds[(1, (0, 0, 5))], ds[(1, (0, 0, 5))]
    c = ds[(1, (0, 0, 6))]
    assert all(torch.equal(a[k], b[k]) for k in ("image", "label", "source"))
    assert a["skipped"] == ""  # nothing unreadable
    assert not torch.equal(a["image"], c["image"])
    assert a["image"].shape == (3, 24, 24) and a["image"].dtype == torch.uint8
    # source 1 exactly where the right-half class is
    lab, src = a["label"], a["source"]
    assert torch.equal(src[lab != 255] == 1, lab[lab != 255] != 0)


def test_trainset_without_sources_is_all_precise_and_bad_sources_fail(tmp_path):
    root = write_dataset(tmp_path / "a")
    ds = TrainSet(root, "train", AugmentConfig(crop=16))
    assert int(ds[(0, (0, 0, 0))]["source"].max()) == 0
    root = write_dataset(tmp_path / "b", sources=True)
    write_label(root / "sources" / "train" / "im0.png", np.full((30, 40), 5, np.uint8))
    with pytest.raises(ValueError, match="im0.png: source values"):
        TrainSet(root, "train", AugmentConfig(crop=16)).load(0)


def test_focus_classes_that_are_no_class_id_are_refused(tmp_path):
    """augment.focus_classes: [99] trained without a word, and no crop was ever class-aware."""
    root = write_dataset(tmp_path / "a")
    with pytest.raises(
        ValueError, match=r"^augment.focus_classes: 99 is no class id of .*a \(0\.\."
    ):
        TrainSet(root, "train", AugmentConfig(crop=16, focus_classes=[1, 99]))
    assert TrainSet(root, "train", AugmentConfig(crop=16, focus_classes=[1])).focus == (1,)


def test_loader_batches_do_not_depend_on_workers(tmp_path):
    root = write_dataset(tmp_path)
    ds = TrainSet(root, "train", AugmentConfig(crop=16, short_side_range=(20, 40)))
    b0 = list(itertools.islice(iter(make_loader(ds, 2, seed=1, num_workers=0)), 3))
    b2 = list(itertools.islice(iter(make_loader(ds, 2, seed=1, num_workers=2)), 3))
    for x, y in zip(b0, b2, strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])


def test_batches_cross_as_uint8_and_convert_exactly_on_the_device(tmp_path):
    """A worker's batch crossed ``/dev/shm`` as a float32 image and two int64 maps, 28 bytes a
    pixel (470 MB for 16 1024-pixel crops; Docker's ``/dev/shm`` is 64 MB). Every augmentation
    (bilinear resize, photometric distortion) ends in uint8, so a batch now crosses as uint8 (5
    bytes a pixel) and :func:`to_device` converts it after the copy: the same float32 and int64
    tensors, value for value and in the same layout, as collating the old per-sample tensors."""
    root = write_dataset(tmp_path, sources=True)
    cfg = AugmentConfig(crop=48, short_side_range=(30, 40))  # padded: label 255 at the edges
    ds = TrainSet(root, "train", cfg)
    batch = next(iter(make_loader(ds, 3, seed=1, num_workers=1)))
    names = ("image", "label", "source")
    assert [batch[k].dtype for k in names] == [torch.uint8] * 3
    assert sum(batch[k].numel() * batch[k].element_size() for k in names) == 3 * 48 * 48 * 5
    new = to_device(batch, torch.device("cpu"))
    old = []  # the old path: each sample converted in the worker, then collated
    for index, key in itertools.islice(iter(StreamSampler(len(ds), seed=1)), 3):
        rng = np.random.default_rng(list(key))
        image, label, source = augment(*ds.load(index), cfg, rng, ds.focus)
        old.append(
            {
                "image": torch.from_numpy(image).permute(2, 0, 1).float(),
                "label": torch.from_numpy(label).long(),
                "source": torch.from_numpy(source).long(),
            }
        )
    collated = default_collate(old)
    assert int(collated["source"].max()) == 1 and int(collated["label"].max()) == 255
    for got, k in zip(new, names, strict=True):
        want = collated[k]
        assert got.dtype == want.dtype and got.stride() == want.stride()
        assert torch.equal(got, want), k


def test_loader_workers_started_by_forkserver_give_the_same_batches(tmp_path):
    """Python 3.14 starts DataLoader workers with ``forkserver`` on Linux, not ``fork``: the
    dataset and the worker seeding must survive pickling, and the batches must not change."""
    root = write_dataset(tmp_path)
    ds = TrainSet(root, "train", AugmentConfig(crop=16, short_side_range=(20, 40)))
    b0 = list(itertools.islice(iter(make_loader(ds, 2, seed=1, num_workers=0)), 3))
    loader = make_loader(ds, 2, seed=1, num_workers=1)
    loader.multiprocessing_context = "forkserver"
    b1 = list(itertools.islice(iter(loader), 3))
    for x, y in zip(b0, b1, strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
        assert torch.equal(x["source"], y["source"])


def _fused_layout(root, sources: bool):
    """A dataset whose taxonomy adds Bicycle (id 7, parent Others) via dataset.yaml."""
    from annotations.taxonomy import MASS13K

    write_dataset(root, sources=sources)
    MASS13K.with_new_class("Bicycle").save(root / "taxonomy.json")
    (root / "dataset.yaml").write_text("taxonomy: taxonomy.json\n")
    return root


def test_new_classes_without_source_maps_are_an_error_naming_the_folder(tmp_path):
    root = _fused_layout(tmp_path / "fused", sources=False)
    with pytest.raises(ValueError, match=r"sources/train: no source maps.*Bicycle.*--all-precise"):
        TrainSet(root, "train", AugmentConfig(crop=16))
    ds = TrainSet(root, "train", AugmentConfig(crop=16), all_precise=True)
    assert not ds.has_sources and int(ds[(0, (0, 0, 0))]["source"].max()) == 0
    assert ds.focus == (7,)  # new classes are the crop sampler's focus by default
    with_sources = _fused_layout(tmp_path / "ok", sources=True)
    assert TrainSet(with_sources, "train", AugmentConfig(crop=16)).has_sources
    # all_precise reads no source map even when they exist
    assert not TrainSet(with_sources, "train", AugmentConfig(crop=16), all_precise=True).has_sources


def test_a_source_map_a_killed_fusion_left_unwritten_says_to_fuse_again(tmp_path):
    """engine fuse killed between an image's label and its source map: training skipped the
    image with "label file not found" about the source map, where engine info says how to go
    on; the problem now says it too (and calls the file a source map)."""
    import json

    root = _fused_layout(tmp_path / "fused", sources=True)
    (root / "fuse.json").write_text(json.dumps({"status": "running"}))
    (root / "sources" / "train" / "im0.png").unlink()
    ds = TrainSet(root, "train", AugmentConfig(crop=16))
    with pytest.raises(FileNotFoundError) as err:
        ds.load(0)
    assert str(err.value) == (
        f"{root}/sources/train/im0.png: source map not found; its fusion did not finish "
        "(fuse.json: status running) and no process writes it now (stopped): run the same "
        "engine fuse command again to finish it (it resumes)"
    )
    assert ds[(0, (0, 0, 0))]["skipped"] == str(err.value)  # what the run warns and lists
    (root / "fuse.json").write_text(json.dumps({"status": "done"}))
    with pytest.raises(FileNotFoundError, match=r"im0.png: source map not found$"):
        ds.load(0)  # a finished fusion: nothing to add


def test_a_class_fused_onto_a_fused_dataset_before_sources_were_carried_is_refused(tmp_path):
    """Car fused onto Bicycle's fused dataset by an engine from before the fix (698e2fb) wrote
    Bicycle's pixels as precise (0) in sources/: training took its pseudo labels for precise
    ones without a word. The dataset is refused, naming the file and the fuse to run again;
    one fused since (Bicycle's pixels pseudo) trains."""
    import json

    from annotations.taxonomy import MASS13K

    def fused_onto_fused(root, bicycle_source):
        write_dataset(root, sources=True)
        MASS13K.with_new_class("Bicycle").with_new_class("Car").save(root / "taxonomy.json")
        (root / "dataset.yaml").write_text("taxonomy: taxonomy.json\n")
        inputs = {"data": "runs/fused/bicycle", "pseudo": [{"class": "Car", "path": "car"}]}
        (root / "fuse.json").write_text(json.dumps({"status": "done", "inputs": inputs}))
        lab = np.zeros((30, 40), np.uint8)
        lab[:10, :10], lab[20:, 30:] = 7, 8  # Bicycle (fused before), Car (fused now)
        src = np.zeros((30, 40), np.uint8)
        src[:10, :10], src[20:, 30:] = bicycle_source, 1
        write_label(root / "annotations" / "train" / "im1.png", lab)
        write_label(root / "sources" / "train" / "im1.png", src)
        return root

    old = fused_onto_fused(tmp_path / "old", bicycle_source=0)
    with pytest.raises(ValueError, match=r"sources/train/im1.png: .*Bicycle.*precise.*engine fuse"):
        TrainSet(old, "train", AugmentConfig(crop=16))
    assert TrainSet(old, "train", AugmentConfig(crop=16), all_precise=True)  # asked for
    new = fused_onto_fused(tmp_path / "new", bicycle_source=1)
    assert TrainSet(new, "train", AugmentConfig(crop=16)).has_sources


def _rare_label() -> np.ndarray:
    label = np.zeros((200, 300), np.uint8)
    label[100:, :] = 1
    label[150:156, 240:246] = 7  # 36 of 60,000 pixels
    label[20:24, 10:14] = 8  # 16 pixels of a second new class
    return label


def _hits(label, cls, focus, prob, n=200, crop=64):
    hits = 0
    for s in range(n):
        y, x = crop_box(label, crop, np.random.default_rng(s), 0.75, 10, focus, prob)
        assert 0 <= y <= label.shape[0] - crop and 0 <= x <= label.shape[1] - crop
        hits += bool((label[y : y + crop, x : x + crop] == cls).any())
    return hits / n


def test_class_aware_crops_centre_on_new_classes():
    label = _rare_label()
    # uniform crops rarely contain the 6x6 block (about 1%: the share rule pulls them to row 100)
    assert _hits(label, 7, (), 0.0) < 0.3
    assert _hits(label, 7, (7, 8), 0.0) < 0.3  # probability 0: the focus list changes nothing
    # always centred: each present focus class picked half the time, its block always inside
    assert _hits(label, 7, (7, 8), 1.0) > 0.4 and _hits(label, 8, (7, 8), 1.0) > 0.4
    assert _hits(label, 7, (7,), 1.0) == 1.0
    half = _hits(label, 7, (7,), 0.5)
    assert 0.35 < half < 0.65  # 200 draws of p 0.5 (+ the ~1% uniform hits)
    # a label without any focus pixel falls back to uniform crops
    assert _hits(np.zeros((100, 100), np.uint8), 7, (7,), 1.0) == 0.0


def test_class_aware_crop_is_centred_on_the_pixel_and_shifted_inside():
    # one focus pixel, the share rule off: the crop's top-left is the pixel minus crop // 2 on
    # both axes, clamped to 0..size - crop (hand-computed for a 20 px crop of 200 x 300)
    for (py, px), expected in [
        ((50, 60), (40, 50)),
        ((3, 150), (0, 140)),
        ((120, 2), (110, 0)),
        ((199, 299), (180, 280)),
        ((195, 17), (180, 7)),
    ]:
        label = np.zeros((200, 300), np.uint8)
        label[py, px] = 7
        for s in range(3):
            got = crop_box(label, 20, np.random.default_rng(s), 1.0, 10, (7,), 1.0)
            assert got == expected, (py, px)


def test_crop_box_zero_probability_and_zero_tries_draw_as_without_them():
    # focus_prob 0 draws no random number for the focus (the uniform sampler's stream, crop for
    # crop); tries 0 still makes the one draw that tries 1 makes
    label = np.zeros((100, 100), np.uint8)
    label[:, 60:] = 1
    label[10:20, 10:20] = 7
    for s in range(20):
        plain = crop_box(label, 40, np.random.default_rng(s))
        assert crop_box(label, 40, np.random.default_rng(s), focus=(7,), focus_prob=0.0) == plain
        one = crop_box(label, 40, np.random.default_rng(s), tries=1)
        assert crop_box(label, 40, np.random.default_rng(s), tries=0) == one


def test_class_aware_crops_keep_the_class_share_rule():
    # a new-class block at the corner of a one-class image: the centred crop is shifted to stay
    # inside, and the share rule still rejects crops where Others covers >= 75%
    label = np.ones((120, 120), np.uint8)
    label[:, 60:] = 0
    label[0:8, 0:8] = 7
    for s in range(50):
        y, x = crop_box(label, 48, np.random.default_rng(s), 0.75, 10, (7,), 1.0)
        counts = np.bincount(label[y : y + 48, x : x + 48].ravel())
        assert counts.max() / counts.sum() < 0.75 or (y, x) == (0, 0)


def test_class_crop_prob_is_validated():
    with pytest.raises(ValueError, match="class_crop_prob"):
        AugmentConfig(class_crop_prob=1.5)


def test_workers_and_threads_are_sized_to_the_cores(monkeypatch):
    import trainer.config as tc

    monkeypatch.setattr(tc, "cpu_cores", lambda: 2)
    assert tc.resolve_workers(-1) == 1 and tc.resolve_workers(3) == 3
    # one thread on a 2-core box whatever the workers: no OpenMP barrier waits on a busy core
    assert [tc.resolve_threads(0, w, "cpu") for w in (0, 1, 4)] == [1, 1, 1]
    assert tc.resolve_threads(2, 1, "cpu") == 2 and tc.resolve_threads(0, 1, "cuda") is None
    monkeypatch.setattr(tc, "cpu_cores", lambda: 16)
    assert tc.resolve_workers(-1) == 4 and tc.resolve_threads(0, 4, "cpu") == 12


def _truncate(path, keep=60):
    path.write_bytes(path.read_bytes()[:keep])


def test_an_unreadable_sample_is_replaced_by_the_next_with_the_same_draws(tmp_path):
    root = write_dataset(tmp_path, n=3, sources=True)
    cfg = AugmentConfig(crop=24, short_side_range=(30, 45))
    ds = TrainSet(root, "train", cfg)
    expected = augment(*ds.load(2), cfg, np.random.default_rng([0, 0, 5]), ds.focus)
    _truncate(root / "images" / "train" / "im1.png")
    got = ds[(1, (0, 0, 5))]
    assert np.array_equal(got["label"].numpy(), expected[1])
    assert np.array_equal(got["image"].permute(1, 2, 0).numpy(), expected[0].astype(np.float32))
    assert got["skipped"].startswith(str(root / "images" / "train" / "im1.png") + ": cannot decode")
    assert "\n" not in got["skipped"] and ds[(0, (0, 0, 5))]["skipped"] == ""
    # the last index wraps to the first; a label that is no class id is skipped the same way
    write_label(root / "annotations" / "train" / "im2.png", np.full((30, 40), 9, np.uint8))
    wrapped = ds[(1, (0, 0, 5))]
    assert (
        wrapped["skipped"]
        .splitlines()[1]
        .startswith(str(root / "annotations" / "train" / "im2.png"))
    )
    assert torch.equal(wrapped["image"], ds[(0, (0, 0, 5))]["image"])


def test_a_split_that_cannot_be_read_is_one_error_naming_the_first_file(tmp_path):
    from annotations.fileio import first_line

    root = write_dataset(tmp_path, n=3)
    for i in range(3):
        _truncate(root / "images" / "train" / f"im{i}.png")
    ds = TrainSet(root, "train", AugmentConfig(crop=16))
    with pytest.raises(ValueError) as err:
        ds[(1, (0, 0, 0))]
    message = str(err.value)
    assert message.startswith(str(root / "images" / "train" / "im1.png") + ": cannot decode")
    assert "the next 2 images of split 'train' cannot be read either" in message
    assert f"`engine info {root}`" in message and "\n" not in message
    # through a DataLoader worker the command still prints that line, not "Caught ValueError
    # in DataLoader worker process 0."
    with pytest.raises(ValueError) as err:
        next(iter(make_loader(ds, 2, seed=0, num_workers=1)))
    assert str(err.value).startswith("Caught ValueError in DataLoader worker process 0.")
    assert first_line(err.value).startswith(str(root / "images" / "train" / "im"))
    assert "cannot be read either" in first_line(err.value)


def test_an_empty_training_split_is_one_error_naming_its_folder(tmp_path):
    root = write_dataset(tmp_path / "ds", n=1)
    for folder in ("images", "annotations"):
        for path in (root / folder / "train").iterdir():
            path.unlink()
    with pytest.raises(ValueError, match=r"images/train: split 'train' has no images"):
        TrainSet(root, "train", AugmentConfig(crop=16))


def test_a_new_class_in_no_training_image_or_in_one_is_warned_from_the_manifest(tmp_path):
    """A fused dataset whose Bicycle claimed no pixel of any training image trained without a
    word, the model unable to learn the class; the fusion's manifest says so, nothing decoded."""
    import json

    from trainer.data import rare_new_classes

    root = _fused_layout(tmp_path / "fused", sources=True)
    ds = TrainSet(root, "train", AugmentConfig(crop=16))
    assert rare_new_classes(ds) == []  # no manifest: not judged

    def manifest(claimed, stems=("im0", "im1", "im2")):
        recs = [{"split": "val", "stem": "im0", "status": "ok",
                 "classes": {"Bicycle": {"claimed_pixels": 9}}}]  # fmt: skip
        recs += [
            {
                "split": "train",
                "stem": s,
                "status": "ok",
                "classes": {"Bicycle": {"claimed_pixels": n}},
            }  # fmt: skip
            for s, n in zip(stems, claimed, strict=True)
        ]
        (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        return rare_new_classes(ds)

    (text,) = manifest([0, 0, 0])
    assert text == (
        f"{root}/annotations/train: Bicycle has pixels in none of the 3 training images of "
        "split 'train' (manifest.jsonl): the model cannot learn it, and its scores will mean "
        "nothing"
    )
    (text,) = manifest([0, 12, 0])
    assert "Bicycle has pixels in only 1 (im1) of the 3 training images" in text
    assert "can hardly learn it" in text
    assert manifest([0, 12, 3]) == []
    assert manifest([0, 0], stems=("im0", "im1")) == []  # im2 unrecorded: not judged


def test_a_manifest_line_that_is_json_but_no_object_is_skipped(tmp_path):
    """A hand-edited manifest.jsonl with a line that is JSON but not an object (a list, a
    number), or a record whose classes are not objects, crashed training's rare-class check
    with an AttributeError; such lines are skipped, as the other readers of the file do."""
    import json

    from trainer.data import rare_new_classes

    root = _fused_layout(tmp_path / "fused", sources=True)
    ds = TrainSet(root, "train", AugmentConfig(crop=16))
    recs = [
        {"split": "train", "stem": s, "status": "ok", "classes": {"Bicycle": {"claimed_pixels": 0}}}
        for s in ("im0", "im1", "im2")
    ]
    lines = [json.dumps(r) for r in recs] + ["[1, 2]", "7", '"text"', "null"]
    lines.append(json.dumps({"split": "train", "stem": "x", "status": "ok", "classes": [1]}))
    lines.append(json.dumps({"split": "train", "stem": "y", "status": "ok",
                             "classes": {"Bicycle": 3}}))  # fmt: skip
    lines.append(json.dumps({"split": "train", "stem": "z", "status": "ok",
                             "classes": {"Bicycle": {"claimed_pixels": "many"}}}))  # fmt: skip
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (text,) = rare_new_classes(ds)
    assert "Bicycle has pixels in none of the 3 training images" in text
