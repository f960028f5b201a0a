"""Label-map PNG I/O and atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import annotations.fileio as fileio
from annotations.fileio import append_line, atomic_write_bytes, atomic_write_json, read_jsonl
from annotations.labelmap import (
    IGNORE,
    label_to_rgb,
    read_label,
    rgb_to_label,
    validate_label,
    write_color_preview,
    write_label,
)
from annotations.taxonomy import MASS13K

RNG = np.random.default_rng(0)
LABEL = RNG.integers(0, 7, (13, 17)).astype(np.uint8)
LABEL[0, :5] = IGNORE

CASES = {
    "mixed": LABEL,
    "empty": np.zeros((0, 0), np.uint8),
    "all-ignore": np.full((4, 6), IGNORE, np.uint8),
    "one-class": np.full((5, 3), 4, np.uint8),
}


@pytest.mark.parametrize("name", CASES)
def test_write_read_round_trip_single_channel(tmp_path, name):
    label = CASES[name]
    if label.size == 0:
        with pytest.raises(ValueError, match=r"a.png: cannot write an empty \(0, 0\) image"):
            write_label(tmp_path / "a.png", label)
        return
    path = write_label(tmp_path / "sub" / "a.png", label)
    with Image.open(path) as img:  # closed: a file left to the collector is a ResourceWarning
        assert img.mode == "L"
    back = read_label(path, MASS13K)
    assert back.dtype == np.uint8 and back.shape == label.shape
    np.testing.assert_array_equal(back, label)


def test_palette_png_reads_as_indices(tmp_path):
    img = Image.fromarray(LABEL, mode="L").convert("P")
    img.putpalette(MASS13K.palette().ravel().tolist())
    img.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as img:
        assert img.mode == "P"
    np.testing.assert_array_equal(read_label(tmp_path / "p.png", MASS13K), LABEL)


def test_bilevel_png_reads_as_zero_one(tmp_path):
    Image.fromarray(LABEL > 3).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_label(tmp_path / "b.png"), (LABEL > 3).astype(np.uint8))


def test_rgb_conversion_both_ways(tmp_path):
    rgb = label_to_rgb(LABEL, MASS13K)
    assert rgb.shape == (*LABEL.shape, 3) and tuple(rgb[0, 0]) == (255, 255, 255)
    assert tuple(rgb[LABEL == 3][0]) == (0, 255, 0)
    np.testing.assert_array_equal(rgb_to_label(rgb, MASS13K), LABEL)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_label(tmp_path / "rgb.png", MASS13K), LABEL)
    with pytest.raises(
        ValueError, match=r"rgb.png: expected a single-channel .* \(pass a taxonomy"
    ):
        read_label(tmp_path / "rgb.png")
    bad = rgb.copy()
    bad[2, 2] = (1, 2, 3)
    with pytest.raises(ValueError, match=r"x.png: colours \(1, 2, 3\) are not in the taxonomy"):
        rgb_to_label(bad, MASS13K, source="x.png")
    new = MASS13K.with_new_class("Car")
    lab = np.array([[7, 0]], np.uint8)
    np.testing.assert_array_equal(rgb_to_label(label_to_rgb(lab, new), new), lab)


def test_values_outside_taxonomy_name_file_and_values(tmp_path):
    bad = LABEL.copy()
    bad[1, 1], bad[2, 2] = 7, 200
    path = write_label(tmp_path / "bad.png", bad)
    with pytest.raises(ValueError) as e:
        read_label(path, MASS13K)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "7, 200" in msg and "0..6 or 255" in msg
    np.testing.assert_array_equal(read_label(path), bad)  # no taxonomy: no validation
    with pytest.raises(ValueError, match=r"^x: label values 200 are not class ids"):
        validate_label(bad, MASS13K.with_new_class("Car"), source="x")  # 7 is now a class
    with pytest.raises(ValueError, match="must be .H, W. uint8"):
        validate_label(bad.astype(np.int32), MASS13K)


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png: label file not found"):
        read_label(tmp_path / "nope.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="junk.png: cannot read label image"):
        read_label(tmp_path / "junk.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.png: the file is empty \(expected a PNG label"):
        read_label(tmp_path / "empty.png")
    good = write_label(tmp_path / "t.png", LABEL).read_bytes()
    (tmp_path / "trunc.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="trunc.png"):
        read_label(tmp_path / "trunc.png")
    Image.fromarray(np.zeros((3, 3, 2), np.uint8)[..., 0], "L").convert("LA").save(
        tmp_path / "la.png"
    )
    with pytest.raises(ValueError, match="la.png: expected a single-channel or palette PNG"):
        read_label(tmp_path / "la.png")


def test_a_label_map_of_jpeg_data_is_refused_saying_so(tmp_path):
    """A label map saved as JPEG (under a .png name) was read with JPEG's changed values along
    every edge: read unchecked (a mask, the simulated labeler's parent pixels), or checked
    against a taxonomy whose class count its values stayed under, without a word; else
    "label values 7, 8 are not class ids", without the reason."""
    label = np.zeros((32, 32), np.uint8)
    label[8:24, 8:24] = 4
    path = tmp_path / "a.png"
    Image.fromarray(label).save(path, format="JPEG", quality=90)
    for taxonomy in (None, MASS13K):
        with pytest.raises(ValueError) as e:
            read_label(path, taxonomy)
        assert str(e.value) == (
            f"{path}: holds JPEG data, not PNG: its lossy compression changes label values "
            "along every edge (save label maps as PNG)"
        )
    Image.fromarray(label).save(path, format="BMP")  # lossless: read as before
    assert np.array_equal(read_label(path, MASS13K), label)


def test_write_refuses_wrong_arrays(tmp_path):
    for arr in (LABEL.astype(np.int64), np.zeros((2, 2, 3), np.uint8)):
        with pytest.raises(ValueError, match=r"a.png: label map must be \(H, W\) uint8"):
            write_label(tmp_path / "a.png", arr)
    assert not (tmp_path / "a.png").exists()


def test_color_preview(tmp_path):
    path = write_color_preview(tmp_path / "c.png", LABEL, MASS13K)
    np.testing.assert_array_equal(np.array(Image.open(path)), label_to_rgb(LABEL, MASS13K))
    image = np.full((*LABEL.shape, 3), 100, np.uint8)
    blend = np.array(Image.open(write_color_preview(tmp_path / "d.png", LABEL, MASS13K, image)))
    assert tuple(blend[LABEL == 0][0]) == (50, 50, 50)
    with pytest.raises(ValueError, match="differ in size"):
        write_color_preview(tmp_path / "e.png", LABEL, MASS13K, image[:3])


# --- atomic writes ---------------------------------------------------------------------------


def test_atomic_write_leaves_no_temp_file_and_usual_permissions(tmp_path):
    path = write_label(tmp_path / "a.png", LABEL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failing_write_keeps_the_old_file_intact(tmp_path, monkeypatch):
    path = write_label(tmp_path / "a.png", LABEL)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_label(path, np.zeros((2, 2), np.uint8))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # temp file removed


def test_interrupted_write_removes_temp(tmp_path, monkeypatch):
    monkeypatch.setattr(
        fileio.atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "x.bin", b"abc")
    assert list(tmp_path.iterdir()) == []


def test_json_and_jsonl(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": [1, 2]})
    assert (tmp_path / "a.json").read_text() == '{\n  "x": [\n    1,\n    2\n  ]\n}\n'
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "n.json", {"x": float("nan")})
    log = tmp_path / "m.jsonl"
    assert read_jsonl(log) == []
    append_line(log, '{"a": 1}')
    append_line(log, '{"a": 2}')
    with open(log, "a") as f:
        f.write('{"a": ')  # torn last line of a killed writer
    assert read_jsonl(log) == [{"a": 1}, {"a": 2}]
    with pytest.raises(ValueError, match="one line"):
        append_line(log, "a\nb")
    log.write_text('{"a": 1}\nbroken\n{"a": 3}\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_jsonl(log)


def test_class_ids_saved_as_an_rgb_image_are_named_so(tmp_path):
    """A label map of ids saved with three equal channels (an editor's or OpenCV's colour save)
    was "colours (1, 1, 1) ... are not in the taxonomy's palette", or "pass a taxonomy", with no
    word on what had happened."""
    ids = np.array([[0, 1], [2, 255]], np.uint8)
    Image.fromarray(np.stack([ids] * 3, axis=-1)).save(tmp_path / "grey.png")
    hint = "its three channels are equal everywhere: class ids saved as an RGB image?"
    for taxonomy in (MASS13K, None):
        with pytest.raises(ValueError) as e:
            read_label(tmp_path / "grey.png", taxonomy)
        assert str(e.value).startswith(str(tmp_path / "grey.png")) and hint in str(e.value)
    # a colour-coded label keeps its own message
    Image.fromarray(label_to_rgb(LABEL, MASS13K)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match=r"\(pass a taxonomy") as e:
        read_label(tmp_path / "rgb.png")
    assert hint not in str(e.value)


def test_value_counts_of_a_4k_label_map_take_no_int64_copy_of_it(tmp_path):
    """np.bincount converts a uint8 map to int64: 97 MB beside a 12 MB 4032x3024 label map,
    wherever a label's values were counted (its check against a taxonomy, an annotated
    subset's mask, the metrics' binary-mask check, fusion, engine info). byte_histogram counts
    the same a block at a time."""
    import tracemalloc

    from annotations.labelmap import byte_histogram, validate_label

    rng = np.random.default_rng(0)
    label = rng.integers(0, 7, (3024, 4032), dtype=np.uint8)
    label[:100] = 255
    want = np.bincount(label.ravel(), minlength=256)
    tracemalloc.start()
    try:
        got = byte_histogram(label)
        validate_label(label, MASS13K)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.dtype == np.int64 and np.array_equal(got, want)
    assert peak < 20e6, f"{peak / 1e6:.0f} MB to count 12 MB of pixels"
    # a view that is not contiguous, an empty map and other dtypes: as np.bincount
    assert np.array_equal(
        byte_histogram(label[::3, 1::2]), np.bincount(label[::3, 1::2].ravel(), minlength=256)
    )
    assert np.array_equal(byte_histogram(np.zeros((0, 4), np.uint8)), np.zeros(256, np.int64))
    ints = np.array([[1, 300]], np.int32)
    assert np.array_equal(byte_histogram(ints), np.bincount(ints.ravel(), minlength=256))


def test_checking_a_valid_label_map_counts_no_values(monkeypatch):
    """validate_label ran on every label read with a taxonomy (engine evaluate, fuse, info) and
    counted all 256 values of it, 0.12 s a 4032x3024 map on a 2-core Xeon: a table lookup finds
    whether any value is bad; only a bad map is counted, for the values its message names."""
    import annotations.labelmap as labelmap

    counted = []
    real = labelmap.byte_histogram
    monkeypatch.setattr(labelmap, "byte_histogram", lambda a: counted.append(1) or real(a))
    label = RNG.integers(0, 7, (300, 400)).astype(np.uint8)
    label[::7] = IGNORE
    labelmap.validate_label(label, MASS13K)
    labelmap.validate_label(label[::3, 1::2], MASS13K)  # a view that is not contiguous
    labelmap.validate_label(np.zeros((0, 5), np.uint8), MASS13K)
    assert counted == []
    # every value that is neither a class id nor 255 is still found, and named
    for bad in (7, 8, 100, 254):
        wrong = label.copy()
        wrong[-1, -1] = bad
        with pytest.raises(ValueError, match=f"label values {bad} are not class ids"):
            labelmap.validate_label(wrong, MASS13K)


def test_value_counts_are_exact_and_need_no_bincount(monkeypatch):
    """byte_histogram counted with np.bincount a million pixels at a time (each block converted
    to int64); cv2.calcHist counts uint8 as it stands, about twice as fast, exactly (float32
    counts below 2^24 a block; blocks of 2^22)."""
    import annotations.labelmap as labelmap

    label = np.full((3024, 4032), 3, np.uint8)  # one value: each block's count near 2^22
    label[:, :7] = np.arange(7, dtype=np.uint8)
    label[-1, -1] = 255
    want = np.bincount(label.ravel(), minlength=256)
    calls = []
    real = np.bincount
    monkeypatch.setattr(np, "bincount", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = labelmap.byte_histogram(label)
    assert calls == []
    assert got.dtype == np.int64 and np.array_equal(got, want)
    odd = label[:, ::2][: 2**11 + 1]  # not contiguous, not a whole number of blocks
    assert np.array_equal(labelmap.byte_histogram(odd), real(odd.ravel(), minlength=256))


def test_a_16_bit_label_png_reads_as_its_values_up_to_255(tmp_path):
    """A 16-bit greyscale PNG (mode ``I;16``, as some tools save class ids) reads as the uint8
    map of its values when all are 0..255, 255 (ignore) and 0 included; a value of 256 is
    refused naming the file and the largest value. No test read a 16-bit label: mutants that
    refused 0 or 255, or every 16-bit map, passed."""
    values = np.array([[0, 1, 255], [7, 254, 3]], np.uint16)
    Image.fromarray(values).save(tmp_path / "ids16.png")
    label = read_label(tmp_path / "ids16.png")
    assert label.dtype == np.uint8 and label.tolist() == values.tolist()
    values[0, 0] = 256
    Image.fromarray(values).save(tmp_path / "over.png")
    with pytest.raises(
        ValueError, match=r"over.png: 16-bit label with values above 255 \(max 256\)$"
    ):
        read_label(tmp_path / "over.png")


def test_a_label_of_many_bad_values_names_the_first_10_and_says_more_only_past_10():
    """``validate_label`` names up to 10 values that are no class id, with " ..." only when
    there are more (a mutant that added it after exactly 10 passed)."""
    ten = np.arange(7, 17, dtype=np.uint8).reshape(2, 5)  # 7..16, none a MaSS13K class
    with pytest.raises(
        ValueError, match=r"^x: label values 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 are"
    ):
        validate_label(ten, MASS13K, source="x")
    eleven = np.concatenate([ten.ravel(), [17, 0, 255]]).astype(np.uint8).reshape(1, -1)
    with pytest.raises(ValueError, match=r"^x: label values 7, .*, 16 \.\.\. are not class ids"):
        validate_label(eleven, MASS13K, source="x")
