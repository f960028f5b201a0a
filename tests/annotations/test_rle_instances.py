"""COCO RLE codec (checked against pycocotools) and the Instances dataclass."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import annotations.rle
from annotations.instances import Instances, read_instances, write_instances
from annotations.rle import (
    checked_area,
    crop_to_rle,
    mask_to_rle,
    rle_area,
    rle_run_window,
    rle_to_mask,
    rle_to_window,
)

RNG = np.random.default_rng(0)
MASKS = {
    "random": RNG.random((9, 7)) > 0.5,
    "empty-mask": np.zeros((4, 5), bool),
    "full": np.ones((3, 4), bool),
    "starts-with-one": np.eye(6, dtype=bool),
    "zero-size": np.zeros((0, 0), bool),
    "big-runs": np.pad(np.ones((300, 200), bool), ((50, 50), (0, 100))),
}


@pytest.mark.parametrize("name", MASKS)
def test_rle_round_trip_and_area(name):
    mask = MASKS[name]
    rle = mask_to_rle(mask)
    assert rle["size"] == list(mask.shape) and isinstance(rle["counts"], str)
    np.testing.assert_array_equal(rle_to_mask(rle), mask)
    assert rle_area(rle) == int(mask.sum())


@pytest.mark.parametrize("name", [n for n in MASKS if n != "zero-size"])
def test_rle_matches_pycocotools(name):
    mask_utils = pytest.importorskip("pycocotools.mask")
    mask = MASKS[name]
    ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert mask_to_rle(mask)["counts"] == ref["counts"].decode("ascii")
    # and pycocotools decodes ours
    ours = mask_to_rle(mask)
    back = mask_utils.decode({"size": ours["size"], "counts": ours["counts"].encode()})
    np.testing.assert_array_equal(back.astype(bool), mask)


@pytest.mark.parametrize("name", MASKS)
def test_rle_to_window_is_the_tight_crop_of_the_mask(name):
    """engine fuse --min-coverage decodes each instance inside its window only."""
    mask = MASKS[name]
    size, y0, x0, crop = rle_to_window(mask_to_rle(mask))
    assert size == mask.shape
    if not mask.any():
        assert (y0, x0, crop.shape) == (0, 0, (0, 0))
        return
    ys, xs = np.nonzero(mask)
    assert (y0, x0) == (ys.min(), xs.min())
    np.testing.assert_array_equal(crop, mask[y0 : ys.max() + 1, x0 : xs.max() + 1])


def test_rle_to_window_of_counts_lists_and_bad_ones():
    # zero-length runs: the mask starts with ones, and two runs of ones touch
    assert [
        v.tolist() if hasattr(v, "tolist") else v
        for v in rle_to_window({"size": [3, 2], "counts": [0, 2, 0, 1, 3]})
    ] == [(3, 2), 0, 0, [[True], [True], [True]]]
    with pytest.raises(ValueError, match="sum to 3, expected H\\*W = 4"):
        rle_to_window({"size": [2, 2], "counts": [1, 2]})


def test_uncompressed_counts_decode():
    mask = np.array([[0, 1], [1, 1]], bool)  # column-major: 0,1,1,1
    np.testing.assert_array_equal(rle_to_mask({"size": [2, 2], "counts": [1, 3]}), mask)
    assert rle_area({"size": [2, 2], "counts": [1, 3]}) == 3


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"counts": "0"}, "must have 'size'"),
        ("abc", "must have 'size'"),
        ({"size": [2, 2], "counts": [1, 2]}, "sum to 3, expected H\\*W = 4"),
        # it said "RLE counts sum to 4, expected H*W = 4", contradicting itself
        ({"size": [2, 2], "counts": [5, -1]}, "^RLE counts hold a negative run length, -1$"),
        ({"size": [2, 2], "counts": "3"}, "sum to"),
        # int() cut 1.5 to 1, so the runs 1, 2, 1 painted a mask from counts no tool writes
        (
            {"size": [2, 2], "counts": [1.5, 2, 0.5]},
            "^RLE counts hold a run length that is not a whole number, 1.5 \\(count 1 of 3\\)$",
        ),
        (
            {"size": [2, 2], "counts": [1, float("nan"), 3]},
            "not a whole number, nan \\(count 2 of 3\\)$",
        ),
        # 'Ô' (U+00D4) was read as 'T' (its low bits): a mask from a string pycocotools never writes
        (
            {"size": [96, 128], "counts": "Ô39cl;"},
            "^RLE counts string holds 'Ô' at 0; a compressed COCO RLE holds only the characters '0' to 'o'$",
        ),
        (
            {"size": [96, 128], "counts": b"T39cl;" + b"\xff"},
            "^RLE counts string holds 'ÿ' at 6;",
        ),
        # a last character with the continuation bit (0x20: 'P' is 32) ends in the middle of a
        # count: it was an IndexError with a mutant that read past the end, which no test tried
        ({"size": [96, 128], "counts": "T39cl;P"}, "^truncated RLE counts string$"),
        ({"size": [1, 1], "counts": b"P"}, "^truncated RLE counts string$"),
    ],
)
def test_rle_validation(rle, message):
    with pytest.raises(ValueError, match=message):
        rle_to_mask(rle)
    with pytest.raises(ValueError, match=message):
        rle_run_window(rle)  # the instance files' reader checks alike


def test_whole_floats_in_counts_are_the_ints_they_spell():
    mask = np.array([[0, 1], [1, 1]], bool)  # column-major: 0,1,1,1
    np.testing.assert_array_equal(rle_to_mask({"size": [2, 2], "counts": [1.0, 3.0]}), mask)
    assert checked_area({"size": [2, 2], "counts": [1.0, 3]}) == ((2, 2), 3)
    assert rle_to_mask({"size": [96, 128], "counts": "T39cl;"}).T.reshape(-1).nonzero()[
        0
    ].tolist() == list(range(100, 109))


def test_rle_area_needs_counts():
    with pytest.raises(ValueError, match="must have 'counts'"):
        rle_area({"size": [1, 1]})
    with pytest.raises(ValueError, match="must be \\(H, W\\)"):
        mask_to_rle(np.zeros((1, 2, 3), bool))


def _instances(n: int, h: int = 6, w: int = 8) -> Instances:
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        masks[i, i : i + 2, i : i + 3] = True
    return Instances(
        xyxy=[[i, i, i + 3, i + 2] for i in range(n)] or np.zeros((0, 4)),
        masks=masks,
        scores=np.linspace(0.9, 0.5, n),
        mask_scores=np.full(n, 0.8),
        class_ids=np.full(n, 7),
        prompts=[f"p{i}" for i in range(n)],
    )


def test_instances_empty_is_zero_by_h_by_w():
    e = Instances.empty(4, 5)
    assert len(e) == 0 and e.masks.shape == (0, 4, 5) and e.image_size == (4, 5)
    assert e.areas.shape == (0,) and e[np.array([], int)].masks.shape == (0, 4, 5)


def test_instances_index_merge_areas():
    a = _instances(3)
    assert a.masks.dtype == bool and a.xyxy.dtype == np.float32 and a.class_ids.dtype == np.int64
    np.testing.assert_array_equal(a.areas, [6, 6, 6])
    sub = a[a.scores > 0.6]
    assert len(sub) == 2 and sub.prompts == ["p0", "p1"]
    assert a[1].prompts == ["p1"] and len(a[1:]) == 2
    m = Instances.merge([a, Instances.empty(6, 8), sub])
    assert len(m) == 5 and m.prompts == ["p0", "p1", "p2", "p0", "p1"]
    with pytest.raises(ValueError, match="different image sizes"):
        Instances.merge([a, Instances.empty(5, 8)])
    with pytest.raises(ValueError, match="at least one"):
        Instances.merge([])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"masks": np.zeros((6, 8), bool)}, r"masks must be \(N, H, W\), got \(6, 8\)"),
        ({"xyxy": np.zeros((2, 4))}, r"xyxy must be \(3, 4\) to match masks, got \(2, 4\)"),
        ({"scores": np.zeros(2)}, r"scores must be \(3,\) to match masks, got \(2,\)"),
        ({"class_ids": np.zeros((3, 1))}, r"class_ids must be \(3,\)"),
        ({"prompts": ["a"]}, "prompts must hold 3 strings"),
        # refine's flags, one a mask: a mutant that refused only the right shape passed
        ({"refined": [True, False]}, r"^refined must be \(3,\) to match masks, got \(2,\)$"),
    ],
)
def test_instances_validation(change, message):
    a = _instances(3)
    fields = dict(xyxy=a.xyxy, masks=a.masks, scores=a.scores, mask_scores=a.mask_scores,
                  class_ids=a.class_ids, prompts=a.prompts)  # fmt: skip
    fields.update(change)
    with pytest.raises(ValueError, match=message):
        Instances(**fields)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_instances_file_round_trip(tmp_path, n):
    a = _instances(n)
    path = write_instances(tmp_path / "i" / "x.json", a, image="x.jpg", split="val")
    b, header = read_instances(path)
    assert header["image"] == "x.jpg" and header["height"] == 6 and header["width"] == 8
    np.testing.assert_array_equal(b.masks, a.masks)
    np.testing.assert_allclose(b.xyxy, a.xyxy)
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-5)
    assert b.prompts == a.prompts and (b.class_ids == a.class_ids).all()


def test_instances_file_rounds_boxes_to_2_decimals_and_scores_to_5():
    """docs/labeler.md: an instances file holds ``box_xyxy`` to 2 decimals, ``score`` and
    ``mask_score`` to 5 (a mutant that wrote boxes to 1 decimal passed every test)."""
    a = _instances(1)
    a.xyxy[0] = [1.23456, 2.5, 3.999, 4.0]
    a.scores[0], a.mask_scores[0] = 0.123456789, 0.987654321
    (item,) = a.to_json()["instances"]
    assert item["box_xyxy"] == [1.23, 2.5, 4.0, 4.0]
    assert (item["score"], item["mask_score"]) == (0.12346, 0.98765)
    assert (item["area"], item["class_id"], item["prompt"]) == (6, 7, "p0")


def test_read_instances_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no.json: instances file not found"):
        read_instances(tmp_path / "no.json")
    p = tmp_path / "bad.json"
    p.write_text("[1]")
    with pytest.raises(ValueError, match="bad.json: expected a JSON object"):
        read_instances(p)
    p.write_text('{"height": 2}')
    with pytest.raises(ValueError, match="bad.json: not an instances file"):
        read_instances(p)
    p.write_text('{"height": 2, "width": 2, "instances": [{"segmentation": '
                 '{"size": [3, 3], "counts": [9]}, "box_xyxy": [0,0,1,1], "score": 1, '
                 '"class_id": 7}]}')  # fmt: skip
    with pytest.raises(ValueError, match=r"bad.json: masks are \(3, 3\) but the file says"):
        read_instances(p)


def test_cvat_style_coco_export_round_trips():
    """CVAT and Label Studio export COCO masks through pycocotools: a crowd annotation carries
    uncompressed ``counts`` lists, a mask annotation the compact string. Both decode to the same
    mask, and re-encoding gives pycocotools' own string back."""
    mask_utils = pytest.importorskip("pycocotools.mask")
    mask = np.zeros((48, 64), bool)
    mask[5:30, 10:22] = True  # a frame with a hole, like a wheel
    mask[12:20, 14:18] = False
    compact = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    export = {  # the shape of a CVAT "COCO 1.0" export, one image, two annotations
        "images": [{"id": 1, "width": 64, "height": 48, "file_name": "a.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 1, "iscrowd": 0,
             "segmentation": {"size": [48, 64], "counts": compact["counts"].decode("ascii")}},
            {"id": 2, "image_id": 1, "iscrowd": 1,
             "segmentation": {"size": [48, 64], "counts": _runs_of(mask)}},
        ],
    }  # fmt: skip
    for ann in export["annotations"]:
        decoded = rle_to_mask(ann["segmentation"])
        np.testing.assert_array_equal(decoded, mask)
        assert rle_area(ann["segmentation"]) == int(mask.sum()) == int(mask_utils.area(compact))
        assert mask_to_rle(decoded)["counts"] == compact["counts"].decode("ascii")


def _runs_of(mask: np.ndarray) -> list[int]:
    flat = mask.T.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change, [flat.size]))).tolist()
    return [0, *runs] if flat[0] else runs


@pytest.mark.parametrize(
    "rle",
    [
        {"size": [10, 10], "counts": "92203"},  # a 4x5 mask's string at a larger size
        {"size": [4, 5], "counts": [5, 2, 2, 2, 90]},  # a list summing past H*W
    ],
)
def test_counts_that_do_not_cover_the_image_are_refused_before_pycocotools(rle):
    # pycocotools 2.0.11 decodes the first into uninitialised memory: the sum is checked first.
    with pytest.raises(ValueError, match="expected H\\*W"):
        rle_to_mask(rle)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_instance_summary_is_what_read_instances_gives_without_decoding(tmp_path, n, monkeypatch):
    """engine annotate pick and engine review read every image's instances for their scores and
    areas only: each mask was decoded to full size (12 MB at 4032x3024) and summed. The summary
    counts the runs of ones: the same areas and scores, no mask decoded."""
    import annotations.instances as instances
    from annotations.instances import read_instance_summary

    a = _instances(n)
    a.masks[-1:, -1, -1] = True  # a run of ones that ends the column-major order
    path = write_instances(tmp_path / "x.json", a)
    full, _ = read_instances(path)
    monkeypatch.setattr(instances, "rle_to_mask", lambda rle: pytest.fail("a mask decoded"))
    s = read_instance_summary(path)
    assert s.image_size == full.image_size and len(s) == len(full) == n
    assert s.scores.dtype == np.float32 and np.array_equal(s.scores, full.scores)
    assert s.areas.dtype == np.int64 and np.array_equal(s.areas, full.areas)


@pytest.mark.parametrize(
    "text",
    [
        "[1]",
        '{"height": 2}',
        '{"height": 2, "width": 2, "instances": [{"segmentation": {"size": [3, 3], "counts": [9]},'
        ' "box_xyxy": [0,0,1,1], "score": 1, "class_id": 7}]}',
        '{"height": 2, "width": 2, "instances": [{"segmentation": {"size": [2, 2], "counts": [5]},'
        ' "box_xyxy": [0,0,1,1], "score": 1, "class_id": 7}]}',
        '{"height": 2, "width": 2, "instances": [{"segmentation": {"size": [2, 2], "counts": "x"},'
        ' "box_xyxy": [0,0,1,1], "score": 1, "class_id": 7}]}',
        '{"height": 2, "width": 2, "instances": [{"segmentation": {"size": [2, 2], "counts": [4]},'
        ' "box_xyxy": [0,0,1], "score": 1, "class_id": 7}]}',
        '{"height": 2, "width": 2, "instances": [{"segmentation": {"size": [2, 2], "counts": [4]},'
        ' "box_xyxy": [0,0,1,1], "class_id": 7}]}',
        '{"height": 2, "width": 2, "instances": [{"segmentation": {"size": [2, 2], "counts": [4]},'
        ' "box_xyxy": [0,0,1,1], "score": 1, "class_id": 7}, {"segmentation": {"size": [1, 4],'
        ' "counts": [4]}, "box_xyxy": [0,0,1,1], "score": 1, "class_id": 7}]}',
    ],
)
@pytest.mark.parametrize("reader", ["read_instance_summary", "read_instance_windows"])
def test_instance_summary_refuses_what_read_instances_refuses(tmp_path, text, reader):
    import annotations.instances as instances

    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(ValueError) as want:
        read_instances(p)
    with pytest.raises(ValueError) as got:
        getattr(instances, reader)(p)
    assert str(got.value) == str(want.value)


def test_instance_windows_scores_default_to_one_each_and_empty_is_refused():
    """``InstanceWindows.scores`` defaulted to an empty array that meant "1 each" (a drawn
    mask's), so scores emptied by mistake passed for 1 each; the default is now None, and an
    empty array beside windows is the shape error any other length is."""
    from annotations.instances import InstanceWindows, MaskWindow

    w = MaskWindow.from_full(np.ones((2, 2), bool))
    drawn = InstanceWindows((2, 2), np.ones(2, np.int64), (w, w))
    assert drawn.scores.tolist() == [1.0, 1.0] and drawn.mask_scores.dtype == np.float32
    assert drawn[:0].scores.shape == (0,) and len(InstanceWindows((2, 2), np.ones(0), ())) == 0
    with pytest.raises(ValueError, match=r"scores must be \(2,\) to match the windows, got \(0,\)"):
        InstanceWindows((2, 2), np.ones(2, np.int64), (w, w), np.zeros(0, np.float32))


def test_one_row_and_one_column_masks_decode():
    # runs go down the columns: 1 zero, then 2 ones
    want = [[False, True, True]]
    assert rle_to_mask({"size": [1, 3], "counts": [1, 2]}).tolist() == want
    assert rle_to_mask({"size": [3, 1], "counts": [1, 2]}).tolist() == [[False], [True], [True]]
    assert rle_to_mask(mask_to_rle(np.array(want))).tolist() == want


def test_empty_frames_encode_as_counts_0():
    for shape in ((0, 5), (5, 0)):
        assert mask_to_rle(np.zeros(shape, bool)) == {"size": list(shape), "counts": "0"}


def test_window_off_the_origin_and_zero_length_runs_of_ones():
    # a 4x5 mask: column 1 rows 2-3, column 3 row 2 -> window at row 2, column 1, 2x3
    m = np.zeros((4, 5), bool)
    m[2:4, 1] = True
    m[2, 3] = True
    size, y0, x0, crop = rle_to_window(mask_to_rle(m))
    assert (size, y0, x0) == ((4, 5), 2, 1)
    assert crop.tolist() == [[True, False, True], [True, False, False]]
    # a run of ones of length 0 is no pixel: it neither widens the window nor fills an empty mask
    assert rle_to_window({"size": [2, 3], "counts": [2, 0, 3, 1]})[1:3] == (1, 2)
    size, y0, x0, crop = rle_to_window({"size": [2, 3], "counts": [6, 0]})
    assert (y0, x0, crop.shape) == (0, 0, (0, 0))


def test_checked_area_sums_every_run_of_ones():
    # 0 zeros, 1 one, 1 zero, 1 one, 2 zeros -> 2 pixels
    assert checked_area({"size": [1, 5], "counts": [0, 1, 1, 1, 2]}) == ((1, 5), 2)


def test_crop_to_rle_refuses_each_side_alone():
    # a 2x2 crop fits a 4x4 frame at rows and columns 0..2: each case breaks one side only
    for y0, x0 in ((-1, 0), (0, -1), (3, 0), (0, 3)):
        with pytest.raises(ValueError, match="does not fit in 4x4"):
            crop_to_rle(np.ones((2, 2), bool), y0, x0, 4, 4)


def test_decoding_in_a_thread_keeps_a_filter_another_thread_adds(monkeypatch):
    """rle_to_mask in one thread while another adds a warnings filter: the filter stays. Before,
    rle_to_mask wrapped pycocotools' decode in ``warnings.catch_warnings``, which put back the
    list it saved on entry, dropping the filter (and one thread entering while another was
    inside kept that one's ignore-every-DeprecationWarning for good)."""
    inside, release = threading.Event(), threading.Event()
    decode = annotations.rle.coco_mask.decode

    def held(rle):
        inside.set()
        assert release.wait(5)
        return decode(rle)

    monkeypatch.setattr(annotations.rle.coco_mask, "decode", held)
    got = []
    worker = threading.Thread(target=lambda: got.append(rle_to_mask(mask_to_rle(np.eye(3)))))
    with warnings.catch_warnings():  # what this test adds is undone at its end
        worker.start()
        assert inside.wait(5)
        warnings.filterwarnings("error", "added while another thread decodes")
        release.set()
        worker.join(5)
        patterns = [f[1].pattern for f in warnings.filters if f[1] is not None]
        assert "added while another thread decodes" in patterns
    assert got[0].tolist() == np.eye(3, dtype=bool).tolist()


def test_decoding_does_not_show_a_warning_shown_once_again():
    """A warning shown once per line ("default", as ``python -X dev`` shows them) is shown once
    with masks decoded in between; before, every decode's ``catch_warnings`` reset the record
    of warnings shown, and it came again after each mask."""
    rle = mask_to_rle(np.eye(3))
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("default", UserWarning)
        for _ in range(3):
            warnings.warn("shown once for this line", UserWarning, stacklevel=1)
            rle_to_mask(rle)
    shown = [str(w.message) for w in log if w.category is UserWarning]
    assert shown == ["shown once for this line"]
