"""Label Studio's brush RLE (``@thi.ng/rle-pack``) and its JSON export, read as Label Studio
reads them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from annotations.instances import InstanceWindows, MaskWindow
from annotations.interchange import image_path
from annotations.labelstudio import (
    bitmask_to_mask,
    brush_pixel_runs,
    brush_to_mask,
    decode_rle,
    decode_runs,
    encode_rle,
    is_labelstudio,
    labelstudio_to_masks,
    mask_to_brush,
    task_image,
    tasks_of_json_min,
    to_labelstudio,
    window_to_brush,
)

H, W = 12, 16


def _stream(records: list[tuple[bool, int, list[int]]], sizes=(3, 4, 8, 16), word=8) -> list[int]:
    """A stream written field by field from the format's description: header (count, word
    size - 1, four run-field sizes - 1), then per record a flag (1 = one word repeated), a
    2-bit field index, the run length - 1, and the words."""
    count = sum(n for _, n, _ in records)
    bits = f"{count:032b}{word - 1:05b}" + "".join(f"{s - 1:04b}" for s in sizes)
    for repeat, n, words in records:
        index = next(k for k, s in enumerate(sizes) if n - 1 < 1 << s)
        bits += ("1" if repeat else "0") + f"{index:02b}" + format(n - 1, f"0{sizes[index]}b")
        bits += "".join(format(v, f"0{word}b") for v in words)
    bits += "0" * (-len(bits) % 8)
    return [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]


def test_decode_reads_repeat_and_literal_records_of_every_field_size():
    rng = np.random.default_rng(0)
    records, expected = [], []
    for repeat, n in [
        (True, 1), (False, 1), (True, 8), (True, 9), (False, 5), (True, 200),
        (False, 20), (True, 4000), (False, 300), (True, 65536),
    ]:  # fmt: skip
        words = [int(rng.integers(256))] if repeat else rng.integers(0, 256, n).tolist()
        records.append((repeat, n, words))
        expected += words * n if repeat else words
    values = decode_rle(_stream(records))
    assert values.dtype == np.uint8
    assert values.tolist() == expected


def test_decode_of_wider_words_and_other_field_sizes():
    values = decode_rle(_stream([(True, 3, [1000]), (False, 2, [7, 4095])], (2, 5, 9, 12), 12))
    assert values.tolist() == [1000, 1000, 1000, 7, 4095]
    assert values.dtype == np.uint16
    # a word of 20 bits: its size - 1 (19) takes the fifth bit of the field
    values = decode_rle(_stream([(True, 2, [(1 << 19) + 5]), (False, 1, [70000])], word=20))
    assert values.tolist() == [524293, 524293, 70000]
    assert values.dtype == np.uint32


@pytest.mark.parametrize("word, dtype", [(9, np.uint16), (16, np.uint16), (17, np.uint32)])
def test_decoded_values_are_the_least_unsigned_type_of_their_word(word, dtype):
    """Words of 9 and 16 bits are uint16, of 17 uint32: each word's largest value is kept."""
    top = (1 << word) - 1
    values = decode_rle(_stream([(True, 2, [top]), (False, 1, [1])], word=word))
    assert values.dtype == dtype
    assert values.tolist() == [top, top, 1]


@pytest.mark.parametrize(
    "rle, message",
    [
        ([1, 2, 300], "byte values"),
        ([0, 0], "shorter than its header"),
        (_stream([(True, 40, [9])])[:-2], "ends after 0 of its 40 values"),
        (_stream([(False, 3, [1, 2, 3]), (True, 9, [5])])[:-2], "ends after 3 of its 12"),
        (["a"], "byte values"),
        # its first record ends its last byte: no bit of the next record's flag and index
        (_stream([(True, 20, [9]), (True, 1, [5])])[:9], "ends after 20 of its 21 values"),
        # records of 14, 15 and 19 bits, then the fourth's flag and index and no run length
        (
            _stream([(True, 2, [1]), (True, 9, [2]), (True, 17, [3]), (True, 1, [4])])[:13],
            "ends after 28 of its 29 values",
        ),
        (_stream([(True, 2, [255])])[:8], "ends after 0 of its 2 values"),  # 5 of its word's 8 bits
        ([0, -1, 5], "byte values"),  # a negative one among bytes (its max is one)
        ([1, 2, 256], "byte values"),
    ],
)
def test_a_stream_that_is_no_rle_is_a_clear_error(rle, message):
    with pytest.raises(ValueError, match=message):
        decode_rle(rle)


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_a_stream_given_as_bytes_is_read_as_its_list(kind):
    """The stream of 40 repeats of 9 and then 7, 8 as bytes reads as the list of its bytes."""
    stream = _stream([(True, 40, [9]), (False, 2, [7, 8])])
    assert decode_rle(kind(stream)).tolist() == [9] * 40 + [7, 8]


@pytest.mark.parametrize("length", [1, 2, 8, 9, 16, 17, 256, 257, 65536, 65537, 200_000])
def test_encode_round_trips_runs_of_any_length(length):
    values, lengths = np.array([0, 255, 3]), np.array([length, 5, length])
    assert decode_rle(encode_rle(values, lengths)).tolist() == np.repeat(values, lengths).tolist()


def test_encode_writes_label_studio_s_header():
    rle = encode_rle(np.array([255]), np.array([4]))
    bits = "".join(f"{b:08b}" for b in rle)
    # 4 values, word size 8, run fields 3, 4, 8, 16 bits; one repeat record: 1 00 011 11111111
    assert bits[:53] == f"{4:032b}" + "00111" + "0010" + "0011" + "0111" + "1111"
    assert bits[53:67] == "1" + "00" + "011" + "11111111"
    assert set(bits[67:]) <= {"0"} and len(bits) % 8 == 0


def test_a_run_longer_than_the_widest_field_is_split_and_its_rest_takes_the_least_field():
    """65,537 values of 255: a record of 65,536 in the 16-bit field (index 3), then the one
    left over in the 3-bit field (index 0), each record's field the least that holds its run,
    as the rle-pack encoder picks it (a mutant that wrote the rest as 131,073 in the 16-bit
    field, whose low bits still read back as 1, decoded alike and passed)."""
    bits = "".join(f"{b:08b}" for b in encode_rle(np.array([255]), np.array([65537])))
    assert bits[:32] == f"{65537:032b}"
    first, rest = "1" + "11" + "1" * 16 + "1" * 8, "1" + "00" + "000" + "1" * 8
    assert bits[53:] == first + rest + "0" * (-(53 + len(first + rest)) % 8)


@pytest.mark.parametrize(
    "values, lengths, message",
    [
        ([256], [1], r"^brush values are bytes \(0\.\.255\)$"),  # its bits would spill into the run
        ([-1], [1], r"^brush values are bytes \(0\.\.255\)$"),
        # one value out of range among bytes: the least and the greatest are both checked
        ([7, -1], [1, 1], r"^brush values are bytes \(0\.\.255\)$"),
        ([0, 256], [1, 1], r"^brush values are bytes \(0\.\.255\)$"),
        ([0, 255], [3, 0], "^run lengths must be positive$"),
        # a 33-bit count does not fit the header's 32 bits (65,536 records of 65,536)
        ([0], [1 << 32], "^an RLE holds fewer than 2\\*\\*32 values, not 4,294,967,296$"),
    ],
)
def test_encode_refuses_what_the_stream_cannot_hold(values, lengths, message):
    with pytest.raises(ValueError, match=message):
        encode_rle(np.array(values), np.array(lengths))


def test_a_one_pixel_mask_is_one_brush_record_and_an_empty_one_none():
    """A 1x1 mask in is the stream of one repeat record of four 255s (a mutant that wrote the
    empty stream for a mask of one pixel passed); a mask of no pixel has 0 values."""
    assert mask_to_brush(np.ones((1, 1), bool)) == encode_rle(np.array([255]), np.array([4]))
    assert decode_rle(mask_to_brush(np.ones((1, 1), bool))).tolist() == [255, 255, 255, 255]
    assert decode_rle(mask_to_brush(np.zeros((0, 5), bool))).tolist() == []


def test_brush_masks_round_trip_and_hold_four_equal_channels():
    rng = np.random.default_rng(1)
    for density in (0.0, 0.1, 0.5, 1.0):
        mask = rng.random((H, W)) < density
        rle = mask_to_brush(mask)
        rgba = decode_rle(rle).reshape(H, W, 4)
        assert (rgba == (mask * 255)[..., None]).all()  # grey, alpha = coverage, as LS writes
        assert np.array_equal(brush_to_mask(rle, H, W), mask)


def test_a_brush_pixel_is_in_where_its_alpha_is_not_zero():
    """The frontend colours every pixel of non-zero alpha, and the converter's brush -> COCO
    export traces them: an antialiased stroke's faint edge is in; a coloured legacy layer's
    colour does not matter."""
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[2, 3] = (0, 0, 0, 1)  # the faintest edge pixel
    rgba[5, 5] = (255, 0, 0, 255)  # a legacy layer painted red
    rgba[7, 7] = (255, 255, 255, 0)  # colour without alpha: erased
    flat = rgba.ravel()
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    rle = encode_rle(flat[starts], np.diff(np.r_[starts, flat.size]))
    mask = brush_to_mask(rle, H, W)
    assert np.argwhere(mask).tolist() == [[2, 3], [5, 5]]
    # as runs of the row-major image: the erased pixel (colour, no alpha) is no run, not even
    # an empty one
    first, stop = brush_pixel_runs(rle, H, W)
    assert first.tolist() == [2 * W + 3, 5 * W + 5] and stop.tolist() == [2 * W + 4, 5 * W + 6]


def test_a_window_s_brush_is_the_full_mask_s_stream():
    """Export writes each instance's brush from its box: the same stream as the full-size
    mask's, where the box touches the frame, spans the image's width or holds one pixel."""
    rng = np.random.default_rng(3)
    for y0, x0, h, w in [(0, 0, H, W), (3, 0, 4, W), (0, 5, 2, 3), (H - 1, W - 1, 1, 1),
                         (4, 7, 5, 9), (0, W - 4, H, 4), (2, 0, 6, 1)]:  # fmt: skip
        for density in (0.2, 0.6, 1.0):
            crop = rng.random((h, w)) < density
            crop[0, 0] = crop[-1, -1] = True
            full = np.zeros((H, W), bool)
            full[y0 : y0 + h, x0 : x0 + w] = crop
            assert window_to_brush(crop, y0, x0, H, W) == mask_to_brush(full), (y0, x0, h, w)


def test_a_brush_of_literal_records_reads_the_alpha_of_each_pixel():
    """Import reads a brush from its runs, not its 4 H W values: a layer of literal records
    (an antialiased stroke's alphas, as the frontend packs them) and a stream whose count
    ends inside a record give the pixels the values give."""
    rng = np.random.default_rng(4)
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 3] = rng.choice([0, 0, 1, 128, 255], (H, W))
    rgba[..., :3] = rng.integers(0, 256, (H, W, 3))
    flat = rgba.ravel()
    chunks = [flat[k : k + 100].tolist() for k in range(0, flat.size, 100)]
    rle = _stream([(False, len(c), c) for c in chunks])
    assert np.array_equal(brush_to_mask(rle, H, W), rgba[..., 3] > 0)
    short = _stream([(True, 9, [255]), (False, 5, [0, 0, 0, 7, 1])])  # count 14: cut to 12
    bits = "".join(f"{b:08b}" for b in short)
    bits = f"{12:032b}" + bits[32:]
    cut = [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]
    assert decode_rle(cut).tolist() == [255] * 9 + [0, 0, 0]
    assert brush_to_mask(cut, 1, 3).tolist() == [[True, True, False]]
    # as runs, cut at the count too: the literal word 7 begins at value 12, past the count,
    # and is no run of 0 values (a mutant that kept it passed every test)
    values, lengths = decode_runs(cut)
    assert values.tolist() == [255, 0, 0, 0] and lengths.tolist() == [9, 1, 1, 1]


def test_a_brush_of_another_size_is_an_error():
    with pytest.raises(ValueError, match=r"holds 768 values, not the 1,024 of a 16x16 RGBA"):
        brush_to_mask(mask_to_brush(np.ones((H, W), bool)), 16, 16)
    with pytest.raises(ValueError, match="'rle' must be a list of byte values, got str"):
        brush_to_mask("abc", H, W)


@pytest.mark.parametrize(
    "url, path",
    [
        ("/data/local-files/?d=mass/images/test/img%20000.jpg", "mass/images/test/img 000.jpg"),
        ("/data/upload/3/8f3a2b1c-img000.jpg", "/data/upload/3/8f3a2b1c-img000.jpg"),
        ("s3://bucket/test/img000.jpg", "/test/img000.jpg"),
        ("https://host/a/img000.jpg?X-Amz-Signature=abc", "/a/img000.jpg"),
        ("img000.jpg", "img000.jpg"),
        ("data #1/bike #3?x%20y.jpg", "data #1/bike #3?x%20y.jpg"),  # a file name, not a URL
    ],
)
def test_the_image_path_is_read_from_any_url_label_studio_writes(url, path):
    assert image_path(url) == path


# -- the JSON export ---------------------------------------------------------------------------
SIZES = {"img000": (H, W), "img001": (H, W)}


def _region(kind: str, label: str = "Bicycle", **value) -> dict:
    return {
        "id": f"{kind}-{label}",
        "from_name": kind,
        "to_name": "image",
        "type": f"{kind}labels",
        "original_width": W,
        "original_height": H,
        "image_rotation": 0,
        "value": {**value, f"{kind}labels": [label]},
    }


def _task(stem: str, *results: dict, **annotation) -> dict:
    return {
        "id": int(stem[-1]) + 1,
        "data": {"image": f"/data/upload/1/0a1b2c3d-{stem}.jpg"},
        "annotations": [{"id": 7, "result": list(results), "was_cancelled": False, **annotation}],
        "predictions": [],
    }


def _read(tmp_path, tasks, class_name="Bicycle"):
    path = tmp_path / "project.json"
    path.write_text(json.dumps(tasks))
    return {m.stem: m for m in labelstudio_to_masks(path, class_name, SIZES)}


def test_a_task_left_out_is_named_with_the_backslash_in_its_name(tmp_path, caplog):
    # a backslash is part of a Linux file name: an unannotated task of 'a\\b.jpg' (as the
    # engine's export names it) was said to be image 'b', another image of the split; a Windows
    # path not in the split still names its file
    whole = _region("brush", format="rle", rle=mask_to_brush(np.ones((H, W), bool)))
    tasks = [_task("x1", whole), _task("x2"), _task("x3")]
    tasks[0]["data"]["image"] = "b.jpg"
    tasks[1]["data"]["image"] = "a\\b.jpg"
    tasks[2]["data"]["image"] = "C:\\photos\\c.jpg"
    tasks[1]["annotations"] = tasks[2]["annotations"] = []
    path = tmp_path / "project.json"
    path.write_text(json.dumps(tasks))
    sizes = {"a\\b": (H, W), "b": (H, W), "c": (H, W)}
    with caplog.at_level("WARNING"):
        found = labelstudio_to_masks(path, "Bicycle", sizes)
    assert [m.stem for m in found] == ["b"]
    assert "2 of 3 tasks have no submitted annotation (not annotated yet, or skipped), left " \
        "out: a\\b, c" in caplog.text  # fmt: skip


def _square_percent(x0, y0, x1, y1) -> list[list[float]]:
    return [[x * 100 / W, y * 100 / H] for x, y in [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]]


def test_brush_polygon_and_unannotated_regions_make_the_mask(tmp_path):
    brush = np.zeros((H, W), bool)
    brush[1:4, 1:5] = True
    found = _read(
        tmp_path,
        [
            _task(
                "img000",
                _region("brush", format="rle", rle=mask_to_brush(brush)),
                # percent of the image, pixel corners as the converter's COCO export scales
                # them: the square from (8, 2) to (12, 6) covers pixels 8..11 x 2..5
                _region("polygon", points=_square_percent(8, 2, 12, 6)),
                _region("rectangle", "unannotated", x=0, y=75, width=25, height=25),
                _region("brush", "Car", format="rle", rle=mask_to_brush(~brush)),
                {"type": "choices", "value": {"choices": ["sharp"]}, "from_name": "quality"},
                {"type": "relation", "from_id": "a", "to_id": "b", "direction": "right"},
            )
        ],
    )
    m = found["img000"]
    expected = np.zeros((H, W), np.uint8)
    expected[1:4, 1:5] = 1
    expected[2:6, 8:12] = 1
    expected[9:12, 0:4] = 255
    assert np.array_equal(m.mask, expected)
    assert m.others == {"Car": 1}


def test_a_polygon_s_percent_are_scaled_as_the_converter_s_coco_export_scales_them(tmp_path):
    """label-studio-sdk's COCO export scales a point as ``x / 100 * width``. The square drawn
    from (0.5, 1.5) to (7.5, 6.5) (Label Studio at 2x zoom puts vertices on half pixels) is
    stored as 54.1666...% of the height: ``/ 100 * 12`` gives back 6.5, while ``* (12 / 100)``,
    read here before, gave 6.4999999: a row of pixel centres on the edge fell the other way
    and row 6 went missing, 7 of the 35 pixels its COCO export gives."""
    points = _square_percent(0.5, 1.5, 7.5, 6.5)
    found = _read(tmp_path, [_task("img000", _region("polygon", points=points))])
    expected = np.zeros((H, W), np.uint8)
    expected[2:7, 1:8] = 1
    assert np.array_equal(found["img000"].mask, expected)


def test_the_class_is_spelled_as_the_file_s_first_region_of_it_spells_it(tmp_path):
    """--class bicycle matches "BICYCLE" case-folded: the import says the file's spelling."""
    points = _square_percent(8, 2, 12, 6)
    found = _read(
        tmp_path,
        [
            _task(
                "img000",
                _region("polygon", "unannotated", points=_square_percent(0, 0, 2, 2)),
                _region("polygon", "BICYCLE", points=points),
                _region("polygon", "Bicycle", points=points),
            )
        ],
        class_name="bicycle",
    )
    assert found["img000"].spelled == "BICYCLE"


def test_rotated_rectangles_and_ellipses_of_unannotated(tmp_path):
    """Rotation is clockwise on screen about the rectangle's top-left corner (Konva's), about an
    ellipse's centre."""
    found = _read(
        tmp_path,
        [
            _task(  # 8 px wide, 2 px high from (8, 2), turned 90 degrees: down from (8, 2)
                "img000",
                _region(
                    "rectangle",
                    "unannotated",
                    x=50,
                    y=100 * 2 / H,
                    width=50,
                    height=100 * 2 / H,
                    rotation=90,
                ),  # fmt: skip
            ),
            _task(
                "img001",
                _region(
                    "ellipse",
                    "ignore",
                    x=50,
                    y=50,
                    radiusX=100 * 6 / W,
                    radiusY=100 * 2 / H,
                    rotation=90,
                ),  # fmt: skip
            ),
        ],
    )
    box = np.zeros((H, W), np.uint8)
    box[2:10, 6:8] = 255  # 8 rows down, 2 columns to the left of x = 8
    assert np.array_equal(found["img000"].mask, box)
    ys, xs = np.nonzero(found["img001"].mask == 255)  # 6 px radius now vertical, 2 horizontal
    assert (ys.max() - ys.min(), xs.max() - xs.min()) in {(10, 2), (11, 3), (11, 2), (10, 3)}
    assert math.isclose(ys.mean(), 5.5, abs_tol=0.5) and math.isclose(xs.mean(), 7.5, abs_tol=0.5)


def test_a_keypoint_of_unannotated_is_passed_over_and_of_the_class_refused(tmp_path):
    """A keypoint (``KeyPointLabels``) marks a point, no area: of `unannotated` it is passed
    over and the task's other regions read, as CVAT's points and polylines are; before, the
    import stopped, saying "a keypoint of 'Bicycle' is no mask" of a point not labelled
    Bicycle. Of the class it is still refused, naming the task and the region."""
    square = _region("polygon", points=_square_percent(8, 2, 12, 6))
    point = _region("keypoint", "unannotated", x=25, y=50, width=0.5)
    found = _read(tmp_path, [_task("img000", point, square)])
    want = np.zeros((H, W), np.uint8)
    want[2:6, 8:12] = 1
    assert np.array_equal(found["img000"].mask, want)
    with pytest.raises(ValueError) as e:
        _read(tmp_path, [_task("img000", _region("keypoint", x=25, y=50, width=0.5), square)])
    assert str(e.value).startswith(
        f"{tmp_path / 'project.json'}: task 1: annotation 7: keypoint region keypoint-Bicycle: "
        "a keypoint of 'Bicycle' is no mask"
    )


@pytest.mark.parametrize("kind", ["vector", "labels"])
def test_a_region_of_unannotated_of_a_shape_not_read_names_its_own_label(tmp_path, kind):
    """A region of a kind the import does not read (a newer tag's ``vectorlabels``, or a
    ``<Labels>`` region whose fields tell no shape), labelled `unannotated`, was refused as "a
    ... of 'Bicycle' is no mask": the class, not its label."""
    region = _region(kind, "unannotated", vertices=[{"x": 1, "y": 2}])
    if kind == "labels":
        region["type"] = "labels"
        region["value"] = {"labels": ["unannotated"], "vertices": [{"x": 1, "y": 2}]}
    with pytest.raises(ValueError) as e:
        _read(tmp_path, [_task("img000", region)])
    assert f"a {kind} of 'unannotated' is no mask" in str(e.value)


def test_a_rotated_rectangle_has_the_corners_of_the_converter_s_obb_export(tmp_path):
    """label-studio-sdk's YOLO OBB export (``convert_annotation_to_yolo_obb``) turns a rectangle
    in pixels about its top-left corner, clockwise on screen: (x, y), (x + w cos, y + w sin),
    (x + w cos - h sin, y + w sin + h cos), (x - h sin, y + h cos). The import fills those
    corners as a COCO polygon, at 30 degrees as at 90 (a pivot at the centre, or the other
    direction, moves pixels here: the corner pixels asserted are in only this way)."""
    region = _region("rectangle", "unannotated", x=25, y=25, width=50, height=25, rotation=30)
    found = _read(tmp_path, [_task("img000", region)])
    x, y, w, h = 25 / 100 * W, 25 / 100 * H, 50 / 100 * W, 25 / 100 * H
    cos, sin = math.cos(math.radians(30)), math.sin(math.radians(30))
    corners = [(x, y), (x + w * cos, y + w * sin), (x + w * cos - h * sin, y + w * sin + h * cos),
               (x - h * sin, y + h * cos)]  # fmt: skip
    flat = [float(v) for p in corners for v in p]
    obb = coco_mask.decode(coco_mask.frPyObjects([flat], H, W))[:, :, 0]
    assert np.array_equal(found["img000"].mask == 255, obb == 1)
    # turned about the centre, or by -30: (2, 4) in, (8, 8) out
    assert obb[3, 4] and obb[8, 8] and not obb[2, 4]


def test_a_rectangle_s_percent_are_of_the_image_s_width_and_height(tmp_path):
    """x and width are percent of the width, y and height of the height: on a 160x120 image, a
    rectangle at (25%, 25%) of 50% x 25% covers columns 40 to 119 and rows 30 to 59, inside
    the image, so that no edge is clipped (1% off in any of the four moves an edge 1.6 px
    across or 1.2 px down, past a pixel centre; a height read as percent of the width reaches
    row 69)."""
    region = _region("rectangle", "unannotated", x=25, y=25, width=50, height=25)
    region.update(original_width=160, original_height=120)
    path = tmp_path / "project.json"
    path.write_text(json.dumps([_task("img000", region)]))
    (found,) = labelstudio_to_masks(path, "Bicycle", {"img000": (120, 160)})
    expected = np.zeros((120, 160), np.uint8)
    expected[30:60, 40:120] = 255
    assert np.array_equal(found.mask, expected)


def test_export_scores_are_rounded_to_five_decimals():
    """An instance's score is written rounded to 5 decimals on its brush region (float32
    0.123456 is 0.12345600128...: 0.12346), and the prediction's score is the mean of the
    regions', rounded alike: (0.12346 + 0.1 + 0.10001) / 3 = 0.107823..., 0.10782."""
    masks = [np.zeros((H, W), bool) for _ in range(3)]
    masks[0][2:4, 3:6] = masks[1][6, 1] = masks[2][9:11, 12:14] = True
    instances = InstanceWindows(
        (H, W),
        np.array([1, 1, 1]),
        tuple(MaskWindow.from_full(m) for m in masks),
        scores=np.array([0.123456, 0.1, 0.10001]),
    )
    (task,) = to_labelstudio([(instances, None, "img000.jpg")], "Bicycle", {}, "v1")
    (prediction,) = task["predictions"]
    assert [r["score"] for r in prediction["result"]] == [0.12346, 0.1, 0.10001]
    assert prediction["score"] == 0.10782
    region = prediction["result"][0]
    assert (region["original_width"], region["original_height"]) == (W, H)
    assert np.array_equal(brush_to_mask(region["value"]["rle"], H, W), masks[0])


def test_which_annotation_of_a_task_is_read(tmp_path, caplog):
    whole = _region("brush", format="rle", rle=mask_to_brush(np.ones((H, W), bool)))
    second = {**_task("img000", whole)["annotations"][0], "id": 8}
    tasks = [_task("img000"), _task("img001", whole, was_cancelled=True)]
    tasks[0]["annotations"].append(second)
    with pytest.raises(ValueError, match=r"task 1 \(/data/upload/1/0a1b2c3d-img000.jpg\): 2 "
                       r"submitted annotations \(ids 7, 8\); mark the one"):  # fmt: skip
        _read(tmp_path, tasks)
    second["ground_truth"] = True  # the reviewer's pick
    with caplog.at_level("WARNING"):
        found = _read(tmp_path, tasks)
    assert list(found) == ["img000"] and (found["img000"].mask == 1).all()
    assert "1 of 2 tasks have no submitted annotation (not annotated yet, or skipped), left " \
        "out: 0a1b2c3d-img001" in caplog.text  # fmt: skip
    tasks[0]["annotations"] = []
    with pytest.raises(ValueError, match="none of its 2 tasks has a submitted annotation"):
        _read(tmp_path, tasks)


def test_an_empty_annotation_is_an_image_without_the_class(tmp_path):
    found = _read(tmp_path, [_task("img001")])
    assert found["img001"].mask.shape == (H, W) and not found["img001"].mask.any()


@pytest.mark.parametrize(
    "region, message",
    [
        (
            _region("rectangle", x=0, y=0, width=10, height=10),
            "a rectangle of 'Bicycle' is no mask: draw the object with the brush, the bitmask or as a polygon",
        ),  # fmt: skip
        (_region("keypoint", x=1, y=1), "a keypoint of 'Bicycle' is no mask"),
        (_region("polygon", points=[[1, 2, 3]]), r"'points' must be \[x, y\] pairs in percent"),
        # ragged: numpy cannot make an array of it (np.zeros(-1) in its place raised numpy's own)
        (_region("polygon", points=[[1, 2], [3]]), r"'points' must be \[x, y\] pairs in percent"),
        (_region("polygon", points=[[1, 2], [3, 4]]), "a polygon needs at least 3 points, got 2"),
        (_region("brush", format="rle", rle=[1, 2]), "shorter than its header"),
        (_region("brush", format="png", rle=[]), "brush format 'png', not 'rle'"),
        ({**_region("polygon", points=[]), "image_rotation": 90}, "rotated in Label Studio"),
        # found by fuzzing: a traceback (a list) and a line naming no file (a word)
        (
            {**_region("polygon", points=[]), "image_rotation": [0]},
            r"image_rotation \[0\] is not a",
        ),
        ({**_region("polygon", points=[]), "image_rotation": "up"}, "image_rotation 'up' is not a"),
        # "inf": said to be drawn on the image rotated
        (
            {**_region("polygon", points=[]), "image_rotation": "inf"},
            "image_rotation 'inf' is not a",
        ),
        (
            {**_region("polygon", points=[]), "original_width": 20},
            r"20x12 in the annotation but "
            "16x12 in the dataset",
        ),  # fmt: skip
        (
            {"type": "polygonlabels", "value": None},
            "polygon region #0 without a 'value' object",
        ),
    ],
)
def test_a_bad_region_is_one_line_naming_file_task_and_region(tmp_path, region, message):
    with pytest.raises(ValueError, match=message) as e:
        _read(tmp_path, [_task("img000", region)])
    assert str(e.value).startswith(str(tmp_path / "project.json")) and "\n" not in str(e.value)


@pytest.mark.parametrize("turns", [360, -720])
def test_a_region_drawn_after_whole_turns_is_read_as_drawn(tmp_path, turns):
    """A rotation of whole turns leaves the image as it was: its polygon, (8, 2)-(12, 6) in
    percent of the 16x12 image, is read as drawn, pixels [2:6, 8:12]."""
    region = {**_region("polygon", points=_square_percent(8, 2, 12, 6)), "image_rotation": turns}
    expected = np.zeros((H, W), np.uint8)
    expected[2:6, 8:12] = 1
    assert np.array_equal(_read(tmp_path, [_task("img000", region)])["img000"].mask, expected)


def test_the_image_size_is_read_from_the_first_region_giving_both_sides(tmp_path):
    """A region giving one side of the image only is passed over, not read for the size (the
    other side is missing); the size is the first region's giving both: 16x12, the dataset's."""

    def without(side, region):
        return {k: v for k, v in region.items() if k != side}

    regions = [
        without("original_height", _region("polygon", points=_square_percent(0, 0, 2, 2))),
        without("original_width", _region("polygon", points=_square_percent(4, 4, 6, 6))),
        _region("polygon", points=_square_percent(8, 2, 12, 6)),
    ]
    expected = np.zeros((H, W), np.uint8)
    expected[0:2, 0:2] = expected[4:6, 4:6] = expected[2:6, 8:12] = 1
    assert np.array_equal(_read(tmp_path, [_task("img000", *regions)])["img000"].mask, expected)


@pytest.mark.parametrize("side", ["original_width", "original_height"])
def test_a_region_giving_one_side_of_another_image_is_refused(tmp_path, side):
    """A region giving one side only is passed over for the size (above), but a side other than
    the image's is refused in one line naming the file, task and region: its percents were of
    another image. Before, it was drawn on this one without a word."""
    region = _region("polygon", points=_square_percent(0, 0, 2, 2))
    other = "original_height" if side == "original_width" else "original_width"
    region = {k: v for k, v in region.items() if k != other} | {side: 40}
    with pytest.raises(ValueError) as e:
        _read(tmp_path, [_task("img000", region)])
    image = W if side == "original_width" else H
    assert str(e.value) == (
        f"{tmp_path / 'project.json'}: task 1: annotation 7: region polygon-Bicycle: {side} 40, "
        f"but the image's is {image} (and no {other} given): a region of another image, or a "
        "size edited?"
    )


def test_the_first_region_s_size_is_checked_though_a_later_one_is_the_dataset_s(tmp_path):
    first = {**_region("polygon", points=_square_percent(0, 0, 2, 2)), "original_width": 20}
    later = {**_region("polygon", points=_square_percent(4, 4, 6, 6)), "original_width": 20}
    with pytest.raises(ValueError, match="20x12 in the annotation but 16x12 in the dataset"):
        _read(tmp_path, [_task("img000", first, later)])
    # a later region of the dataset's size is of another image than the first: refused
    later = {**_region("polygon", points=_square_percent(4, 4, 6, 6)), "id": "p2"}
    with pytest.raises(ValueError, match=r"region p2 is of a 16x12 image, region polygon-Bic"):
        _read(tmp_path, [_task("img000", first, later)])


@pytest.mark.parametrize(("kind", "later_size"), [("polygon", (8, 6)), ("brush", (8.0, "6"))])
def test_a_task_s_regions_of_two_image_sizes_are_refused(tmp_path, kind, later_size):
    """Every region of a task gives its image's size; one of another size (an export mixing
    two images' regions, a hand-edited task) is refused in one line naming the task, both
    regions and both sizes. Before the fifty-third round only the first region's was read: an
    8x6 image's polygon was drawn on the 16x12 image by its percents, silently, and its brush
    was refused as "the brush RLE holds 192 values, not the 768 of a 16x12 RGBA image"."""
    first = _region("polygon", points=_square_percent(0, 0, 2, 2))
    if kind == "polygon":
        later = _region("polygon", points=[[0, 0], [50, 0], [50, 50]])
    else:
        later = _region("brush", format="rle", rle=mask_to_brush(np.ones((6, 8), bool)))
    later.update(id="b2", original_width=later_size[0], original_height=later_size[1])
    with pytest.raises(ValueError) as e:
        _read(tmp_path, [_task("img000", first, later)])
    assert str(e.value) == (
        f"{tmp_path / 'project.json'}: task 1: annotation 7: region b2 is of a 8x6 image, "
        "region polygon-Bicycle of a 16x12 one: a task's regions are of its one image (regions "
        "of two images mixed, or a size edited?)"
    )


def test_a_list_is_json_min_only_when_every_row_is_an_annotation_s():
    """JSON-MIN is a row per annotation, each with ``annotation_id`` and no ``data``; a list
    where one row is another's is no Label Studio export (a mutant that asked any row
    passed every test)."""
    row = {"image": "/data/upload/1/img000.jpg", "id": 1, "annotation_id": 7}
    assert is_labelstudio([row, {**row, "id": 2, "annotation_id": 8}])
    assert not is_labelstudio([row, {"image": "img001.jpg", "id": 2}])
    assert not is_labelstudio([row, {**row, "data": {"image": "img001.jpg"}}])
    assert is_labelstudio([{"data": {"image": "img000.jpg"}, "id": 1}])
    # a list whose later item is no object is no export (any() read task 1 as one: task.get)
    assert not is_labelstudio([{"data": {"image": "img000.jpg"}, "id": 1}, 5])


def test_a_task_s_image_is_its_data_s_one_string_besides_the_export_record():
    """Data without ``image``: its one string value is the image, numbers and lists and the
    engine's export record aside (a mutant that counted every value not the record passed)."""
    data = {"photo": "/data/upload/3/a.jpg", "n": 3, "tags": ["x"], "mass_engine_export": "r"}
    assert task_image({"data": data}, "task 1") == "/data/upload/3/a.jpg"
    assert task_image({"data": {**data, "image": "b.jpg"}}, "task 1") == "b.jpg"
    with pytest.raises(ValueError, match=r"^task 2: cannot tell the image from the task data's"):
        task_image({"data": {**data, "caption": "a bicycle"}}, "task 2")


def test_json_min_keeps_the_image_size_at_the_region_and_other_lists_as_data():
    """A JSON-MIN value's original_width and original_height move to its region, where the JSON
    export has them (the size is checked against the dataset's there); a list of the task's
    data that is not all regions (one dict ends in "labels", one is a word) stays data."""
    value = {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["Bicycle"],
             "original_width": 20, "original_height": 12}  # fmt: skip
    meta = [{"tool_labels": "a"}, "note"]
    row = {"image": "a.jpg", "id": 3, "meta": meta, "polygon": [value], "annotation_id": 5}
    assert tasks_of_json_min([row]) == [
        {
            "id": 3,
            "data": {"image": "a.jpg", "meta": meta},
            "annotations": [
                {
                    "id": 5,
                    "result": [
                        {
                            "from_name": "polygon",
                            "type": "polygonlabels",
                            "value": {
                                "points": [[0, 0], [50, 0], [50, 50]],
                                "polygonlabels": ["Bicycle"],
                            },  # fmt: skip
                            "original_width": 20,
                            "original_height": 12,
                        }
                    ],
                }
            ],
        }
    ]


def test_json_min_lists_of_no_region_values_stay_task_data():
    """A region value is an object with a labels key: a list of other objects, or of lists
    holding "labels", is the task's data."""
    row = {"id": 1, "annotation_id": 2, "image": "x.jpg", "meta": [{"a": 1}], "tags": [["labels"]]}
    assert tasks_of_json_min([row]) == [
        {
            "id": 1,
            "data": {"image": "x.jpg", "meta": [{"a": 1}], "tags": [["labels"]]},
            "annotations": [{"id": 2, "result": []}],
        }
    ]


def test_annotations_that_are_no_list_are_one_line_naming_the_task(tmp_path):
    """A task whose "annotations" is a number (an edited file) was a TypeError traceback from
    import, and from engine info (found by fuzzing)."""
    tasks = [_task("img000"), {**_task("img001"), "annotations": 1}]
    with pytest.raises(
        ValueError, match=r"project.json: task 2 \(.*\): 'annotations' is not a list"
    ):
        _read(tmp_path, tasks)
    from engine.annotation_files import annotation_files  # engine info: counted as not annotated

    (described,) = annotation_files(tmp_path / "project.json")
    assert described.images == 2 and described.waiting == 1


@pytest.mark.parametrize(
    "doc, message",
    [
        ([{"image": "a.jpg", "tag": []}], "not a Label Studio JSON export"),
        ({"images": []}, "not a Label Studio JSON export"),
        ([], "not a Label Studio JSON export"),
        (
            [{"data": {"a": "x.jpg", "b": "y.jpg"}}],
            r"cannot tell the image from the task "
            r"data's keys \['a', 'b'\]",
        ),  # fmt: skip
        (
            [{"data": {"image": "/x/img009.jpg"}, "annotations": [{"result": []}]}],
            "image 'img009' is not in the dataset split",
        ),  # fmt: skip
        (
            [{"data": {"image": "/x/img000.jpg"}}, {"id": 5, "annotations": []}],
            "task 5: a task without 'data'",
        ),
    ],
)
def test_files_that_are_no_label_studio_export_say_so(tmp_path, doc, message):
    with pytest.raises(ValueError, match=message):
        _read(tmp_path, doc)


def test_json_min_rows_read_as_the_tasks_they_flatten(tmp_path, caplog):
    """Label Studio's "JSON-MIN" export, as its 1.23.2 server wrote it (docs/annotate.md): a row
    per annotation, the task's data and the annotation's fields at the top, each control tag's
    regions as a list of values whose labels key names their type."""
    url = "/data/local-files/?d=tmp/x/data/images/test/{}.jpg"
    brush = np.zeros((H, W), bool)
    brush[1:4, 1:5] = True
    rows = [
        {"image": url.format("img000"), "id": 8,
         "polygon": [{"points": _square_percent(8, 2, 12, 6), "polygonlabels": ["Bicycle"],
                      "closed": True, "original_width": W, "original_height": H}],
         "brush": [{"format": "rle", "rle": mask_to_brush(brush), "brushlabels": ["Bicycle"],
                    "original_width": W, "original_height": H}],
         "box": [{"x": 0, "y": 75, "width": 25, "height": 25, "rotation": 0,
                  "rectanglelabels": ["unannotated"], "original_width": W, "original_height": H}],
         "annotator": 1, "annotation_id": 8, "created_at": "2026-12-05T03:15:14.562112Z",
         "updated_at": "2026-12-05T03:15:14.562148Z", "lead_time": None},
        {"image": url.format("img001"), "id": 9, "annotator": 1, "annotation_id": None,
         "created_at": None, "updated_at": None, "lead_time": None},
    ]  # fmt: skip
    with caplog.at_level("WARNING"):
        found = _read(tmp_path, rows)
    expected = np.zeros((H, W), np.uint8)
    expected[1:4, 1:5] = 1
    expected[2:6, 8:12] = 1
    expected[9:12, 0:4] = 255
    assert list(found) == ["img000"] and np.array_equal(found["img000"].mask, expected)
    assert "1 of 2 tasks have no submitted annotation" in caplog.text
    rows.append({**rows[0], "annotation_id": 12, "annotator": 2})  # a second annotator
    with pytest.raises(ValueError, match=r"task 8 \(.*img000.jpg\): 2 submitted annotations"):
        _read(tmp_path, rows)


def test_a_labels_tag_s_region_is_told_by_its_fields(tmp_path):
    """With a generic <Labels> tag beside a shape tag, a region's type is "labels": its fields
    tell the shape (rle: brush, points: polygon)."""
    region = {
        "type": "labels",
        "original_width": W,
        "original_height": H,
        "value": {"points": _square_percent(0, 0, 4, 4), "labels": ["Bicycle"]},
    }
    found = _read(tmp_path, [_task("img000", region)])
    assert int(found["img000"].mask.sum()) == 16


def test_a_labels_tag_s_keypoint_is_told_by_its_fields_and_read_as_a_keypoint(tmp_path):
    """A <KeyPoint> tool beside a generic <Labels> tag writes a region of type "labels" whose
    value is the point's ``x``, ``y`` and ``width`` (its display size, as a KeyPointLabels
    one): a keypoint, no area, passed over of `unannotated` and refused of the class as a
    keypoint. Before, its ``width`` made it a rectangle: `unannotated` stopped the import
    ("needs numbers x, y, width, height") and the class's was "a rectangle of 'Bicycle'"."""

    def point(label: str) -> dict:
        value = {"x": 25, "y": 50, "width": 0.5, "labels": [label]}
        return {"type": "labels", "original_width": W, "original_height": H, "value": value}

    square = _region("polygon", points=_square_percent(8, 2, 12, 6))
    found = _read(tmp_path, [_task("img000", point("unannotated"), square)])
    want = np.zeros((H, W), np.uint8)
    want[2:6, 8:12] = 1
    assert np.array_equal(found["img000"].mask, want)
    with pytest.raises(ValueError) as e:
        _read(tmp_path, [_task("img000", point("Bicycle"), square)])
    assert str(e.value).startswith(
        f"{tmp_path / 'project.json'}: task 1: annotation 7: keypoint region #0: a keypoint of "
        "'Bicycle' is no mask"
    ), str(e.value)
    rectangle = {"x": 25, "y": 50, "width": 10, "height": 20, "labels": ["unannotated"]}
    region = {"type": "labels", "original_width": W, "original_height": H, "value": rectangle}
    assert (_read(tmp_path, [_task("img000", region)])["img000"].mask == 255).any()


def test_an_export_of_label_studio_before_1_0_names_its_annotations_completions(tmp_path):
    task = _task("img000", _region("polygon", points=_square_percent(0, 0, 4, 4)))
    task["completions"] = task.pop("annotations")
    assert int(_read(tmp_path, [task])["img000"].mask.sum()) == 16


@pytest.mark.parametrize("url", ["/static/imgs/{}", "/data/upload/1/0a1b2c3d-{}"])
def test_an_image_url_percent_encoded_without_a_scheme_finds_its_image(tmp_path, url):
    # 'export --image-url /static/imgs/' writes each name percent-encoded ('img%20001.jpg' for
    # 'img 001.jpg'); import read it as it stands, and refused the engine's own export: not in
    # split. A name is read as it stands first ('x%20y' may be a file's own name)
    sizes = {"img 001": (H, W), "x%20y": (H, W)}
    path = tmp_path / "project.json"
    tasks = [_task("img000"), _task("img001")]
    tasks[0]["data"]["image"] = url.format("img%20001.jpg")
    tasks[1]["data"]["image"] = url.format("x%20y.jpg")
    path.write_text(json.dumps(tasks))
    assert [m.stem for m in labelstudio_to_masks(path, "Bicycle", sizes)] == ["img 001", "x%20y"]


def _bitmask(rgba: np.ndarray) -> str:
    """A layer as the frontend's ``BitmaskRegion`` serialises it: ``canvas.toDataURL("image/png")``
    of the image-sized canvas it draws black on transparent (``getImageSnapshotCanvas``)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def test_bitmask_to_mask_is_the_layer_s_pixels_of_non_zero_alpha_at_its_size():
    """The library's ``bitmask_to_mask`` (no test called it: a mutant that painted nothing, or
    made the mask as wide as high, passed): an ``(H, W)`` bool mask, in where alpha is not 0."""
    layer = np.zeros((H, W, 4), np.uint8)
    layer[0, 15, 3] = 255  # the last column of the first row
    layer[11, 0:3, 3] = 1  # the faintest alpha, in the last row
    layer[4, 7] = (255, 255, 255, 0)  # white but transparent: out
    expected = np.zeros((H, W), bool)
    expected[0, 15] = True
    expected[11, 0:3] = True
    found = bitmask_to_mask(_bitmask(layer), H, W)
    assert found.dtype == bool and found.shape == (12, 16)
    np.testing.assert_array_equal(found, expected)


def test_bitmask_regions_are_their_layers_pixels_of_non_zero_alpha(tmp_path):
    """Label Studio's BitmaskLabels tag (``web/libs/editor/src/regions/BitmaskRegion.jsx``)
    saves a region as ``value.imageDataURL``, a PNG of the image's size, black where painted and
    transparent elsewhere; it was refused ("a bitmask of 'Bicycle' is no mask"). A pixel is in
    where its alpha is not zero, as for a brush; an eraser's pixels are transparent again."""
    layer = np.zeros((H, W, 4), np.uint8)
    layer[1:4, 1:5, 3] = 255
    layer[5, 6, 3] = 40  # an antialiased edge
    layer[2, 2, 3] = 0  # erased
    skip = np.zeros((H, W, 4), np.uint8)
    skip[9:12, 0:4, 3] = 255
    region = _region("bitmask", imageDataURL=_bitmask(layer))
    found = _read(
        tmp_path,
        [_task("img000", region, _region("bitmask", "unannotated", imageDataURL=_bitmask(skip)))],
    )
    expected = np.zeros((H, W), np.uint8)
    expected[1:4, 1:5] = 1
    expected[5, 6] = 1
    expected[2, 2] = 0
    expected[9:12, 0:4] = 255
    assert np.array_equal(found["img000"].mask, expected)
    # JSON-MIN lists it under its tag, typed by its labels key; a <Labels> tag's by its field
    row = {"image": "/data/upload/1/0a1b2c3d-img000.jpg", "id": 3, "annotation_id": 4,
           "tag": [{"imageDataURL": region["value"]["imageDataURL"], "bitmasklabels": ["Bicycle"],
                    "original_width": W, "original_height": H}]}  # fmt: skip
    assert np.array_equal(_read(tmp_path, [row])["img000"].mask, expected == 1)
    labels = {**region, "type": "labels", "value": {"imageDataURL": _bitmask(layer),
                                                   "labels": ["Bicycle"]}}  # fmt: skip
    assert np.array_equal(_read(tmp_path, [_task("img000", labels)])["img000"].mask, expected == 1)


@pytest.mark.parametrize(
    "url, message",
    [
        ("iVBORw0KGgo=", "'imageDataURL' must be a base64 data URL"),
        # Pillow's "cannot identify image file <_io.BytesIO object at 0x7f...>" was the reason
        (
            "data:image/png;base64,aGVsbG8=",
            r"'imageDataURL' is not a base64 image \(not an image\)$",
        ),
        (_bitmask(np.zeros((H + 1, W, 4), np.uint8)), "the bitmask is 16x13, not the 16x12 image"),
    ],
    ids=["no data URL", "no image", "another size"],
)
def test_a_bad_bitmask_is_one_line_naming_its_region(tmp_path, url, message):
    with pytest.raises(ValueError, match=f"bitmask region bitmask-Bicycle: {message}") as e:
        _read(tmp_path, [_task("img000", _region("bitmask", imageDataURL=url))])
    assert "\n" not in str(e.value)


def test_a_bitmask_declaring_a_decompression_bomb_is_one_line(tmp_path):
    """A layer whose PNG header declares 100000x100000 pixels: Pillow's DecompressionBombError
    (no OSError or ValueError) escaped the bitmask reader as a traceback, and a layer of another
    size was decoded whole before its size was compared; now both are told from the header."""
    import base64

    from tests.engine.test_datasets import _png

    def url(w: int, h: int) -> str:  # a header declaring w x h, 4 rows stored
        data = _png(tmp_path / "layer.png", w, h).read_bytes()
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")

    with pytest.raises(ValueError, match="'imageDataURL' is not a base64 image .*decompression"):
        _read(tmp_path, [_task("img000", _region("bitmask", imageDataURL=url(100_000, 100_000)))])
    # another size, told from the header: not decoded (it would be found truncated first)
    with pytest.raises(ValueError, match="the bitmask is 5000x4000, not the 16x12 image"):
        _read(tmp_path, [_task("img000", _region("bitmask", imageDataURL=url(5000, 4000)))])


def test_a_bitmask_region_is_read_inside_its_box(tmp_path):
    """A bitmask region was decoded at the image's size (its RGBA layer as an array, 4 bytes a
    pixel, then a full-size mask and its runs in int64: 0.6 s and 220 MB a region at
    3840x2160, 19 bytes a pixel here); now its alpha is read inside the box of its painted
    pixels and its runs in int8: the mask returned, the one painted in and a box spanning the
    image painted, 5 bytes a pixel. Regions touching the image's borders, and an empty one,
    come back pixel for pixel."""
    import tracemalloc

    h, w = 600, 1000
    layers = [np.zeros((h, w, 4), np.uint8) for _ in range(3)]
    layers[0][0:5, w - 7 :, 3] = 255  # the top right corner
    layers[0][h - 1, 0, 3] = 3  # the last row's first pixel
    layers[1][100:140, :, 3] = 128  # the full width
    regions = [
        {**_region("bitmask", imageDataURL=_bitmask(layer)), "id": f"b{i}"}
        for i, layer in enumerate(layers)
    ]
    for r in regions:
        r.update(original_width=w, original_height=h)
    path = tmp_path / "project.json"
    path.write_text(json.dumps([_task("img000", *regions)]))
    tracemalloc.start()
    try:
        (found,) = labelstudio_to_masks(path, "Bicycle", {"img000": (h, w)})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected = (np.stack(layers)[..., 3] > 0).any(axis=0).astype(np.uint8)
    assert np.array_equal(found.mask, expected)
    assert peak < 6 * h * w, f"{peak:,} bytes traced"


def test_a_bitmask_png_cut_short_is_one_line():
    """Its header (the size) reads; its pixels end early: said, not an UnboundLocalError."""
    import base64

    noise = np.random.default_rng(0).integers(0, 256, (H, W, 4), dtype=np.uint8)
    data = base64.b64decode(_bitmask(noise).partition(",")[2])
    url = "data:image/png;base64," + base64.b64encode(data[: len(data) // 2]).decode("ascii")
    with pytest.raises(
        ValueError, match=r"^'imageDataURL' is not a base64 image \(image file is truncated\)$"
    ):
        bitmask_to_mask(url, H, W)


def test_a_bitmask_png_without_alpha_is_all_painted():
    """An RGB layer has no alpha: convert("RGBA") makes it 255, every pixel in."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (W, H)).save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    assert int(bitmask_to_mask(url, H, W).sum()) == H * W


def test_polygon_points_with_one_coordinate_not_finite_are_refused():
    """Every coordinate must be finite (a mutant that asked any one passed every test); finite
    percent points scale to pixels: 50% of 40 is 20."""
    from annotations.labelstudio import _percent_points

    nan = float("nan")
    with pytest.raises(ValueError) as e:
        _percent_points([[10.0, nan], [20.0, 20.0]], 40, 20, "f.json: task 1")
    assert (
        str(e.value)
        == "f.json: task 1: 'points' must be [x, y] pairs in percent, got [[10.0, nan], [20.0, 20.0]]"
    )
    assert _percent_points([[50.0, 25.0]], 40, 20, "w").tolist() == [[20.0, 5.0]]
