"""Ultralytics YOLO segmentation labels: normalised polygons filled as COCO polygons."""

from __future__ import annotations

import numpy as np
import pytest

from annotations.yolo import find_class_names, yolo_to_mask

H, W = 12, 16
SIZES = {"img000": (H, W), "img001": (H, W)}
NAMES = ["car", "Bicycle", "unannotated"]


def _label(tmp_path, *lines: str, name: str = "img000.txt"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return yolo_to_mask(path, "Bicycle", NAMES, SIZES)


def _polygon(cls: int, points: list[tuple[float, float]]) -> str:
    return f"{cls} " + " ".join(f"{x / W:.6f} {y / H:.6f}" for x, y in points)


def test_polygons_and_unannotated_boxes_make_the_mask(tmp_path):
    found = _label(
        tmp_path,
        # pixel corners: the square from (8, 2) to (12, 6) covers columns 8..11, rows 2..5
        _polygon(1, [(8, 2), (12, 2), (12, 6), (8, 6)]),
        _polygon(0, [(0, 0), (5, 0), (5, 5)]),  # a car: left out, counted
        f"2 {2 / W} {10.5 / H} {4 / W} {3 / H}",  # an unannotated box, centre (2, 10.5), 4x3
        "",
    )
    expected = np.zeros((H, W), np.uint8)
    expected[2:6, 8:12] = 1
    expected[9:12, 0:4] = 255
    assert np.array_equal(found.mask, expected)
    assert found.others == {"car": 1} and found.stem == "img000"


def test_an_unannotated_box_inside_the_image_is_its_centre_and_size(tmp_path):
    """Ultralytics' box line is ``c cx cy w h``, normalised: centre (8, 6), 6 wide, 2 high
    spans columns 5..10 and rows 5..6, clear of every edge (the box above lies on the image's
    left edge, where a corner moved further left changed nothing)."""
    found = _label(tmp_path, f"2 {8 / W} {6 / H} {6 / W} {2 / H}")
    expected = np.zeros((H, W), np.uint8)
    expected[5:7, 5:11] = 255
    assert np.array_equal(found.mask, expected)


def test_a_triangle_and_the_frame_s_coordinates_0_and_1(tmp_path):
    """6 coordinates make a polygon; 0 and 1 are the frame. The triangle (0, 0), (6, 0),
    (0, 3) holds the pixel centres (x + 0.5, y + 0.5) with x + 2 y < 4.5: 5 + 3 + 1 pixels."""
    found = _label(tmp_path, _polygon(1, [(0, 0), (6, 0), (0, 3)]))
    expected = np.zeros((H, W), np.uint8)
    expected[0, 0:5] = expected[1, 0:3] = expected[2, 0] = 1
    assert np.array_equal(found.mask, expected)
    whole = _label(tmp_path, "1 0 0 1 0 1 1 0 1", name="img001.txt")  # the whole frame
    assert (whole.mask == 1).all()


def test_an_empty_label_file_is_an_image_without_the_class(tmp_path):
    found = _label(tmp_path, "", name="img001.txt")
    assert found.stem == "img001" and not found.mask.any()


@pytest.mark.parametrize(
    "line, message",
    [
        (f"1 {0.5} {0.5} {0.2} {0.2}", "line 1: a box of 'Bicycle' is no mask"),
        ("1 0.1 0.1 0.5", "3 coordinates: a polygon has an even number, at least 6"),
        ("7 0.1 0.1 0.5 0.5 0.2 0.9", "class 7 is not one of the 3 named"),
        ("3 0.1 0.1 0.5 0.5 0.2 0.9", "class 3 is not one of the 3 named"),  # ids 0..2
        ("1 0.1 0.1 0.5 0.5 0.2", "5 coordinates: a polygon has an even number"),
        ("1 0.1 0.1 0.5 0.5 0.2 0.9 0.3", "7 coordinates: a polygon has an even number"),
        ("1.5 0.1 0.1 0.5 0.5 0.2 0.9", "class 1.5 is not one of the 3 named"),
        ("1 a b c d e f", "not numbers"),
        ("1 10 10 200 10 200 200", "coordinate 10 is not in 0..1: YOLO labels are normalised"),
        ("1 0.1 -0.1 0.5 0.5 0.2 0.9", "coordinate -0.1 is not in 0..1"),
        ("1 0.1 nan 0.5 0.5 0.2 0.9", "coordinate nan is not in 0..1"),
        # a class index of nan or inf: Python's "cannot convert float NaN to integer", no file
        ("nan 0.1 0.1 0.5 0.5 0.2 0.9", "class nan is not one of the 3 named"),
        ("inf 0.1 0.1 0.5 0.5 0.2 0.9", "class inf is not one of the 3 named"),
    ],
)
def test_a_bad_line_is_one_line_naming_file_and_line(tmp_path, line, message):
    with pytest.raises(ValueError, match=message) as e:
        _label(tmp_path, line)
    assert str(e.value).startswith(str(tmp_path / "img000.txt")) and "\n" not in str(e.value)


def test_a_label_file_of_an_image_the_split_lacks_is_named(tmp_path):
    with pytest.raises(ValueError, match="image 'img009' is not in the dataset split"):
        _label(tmp_path, _polygon(1, [(0, 0), (4, 0), (4, 4)]), name="img009.txt")


@pytest.mark.parametrize(
    "layout, file, text, names",
    [  # Ultralytics: ROOT/data.yaml, ROOT/labels/test/; names as a dict
        (
            "labels/test",
            "data.yaml",
            "path: .\nnames:\n  0: car\n  1: Bicycle\n",
            ["car", "Bicycle"],
        ),
        # Roboflow: ROOT/data.yaml, ROOT/test/labels/; names as a list
        ("test/labels", "data.yaml", "nc: 2\nnames: ['car', 'Bicycle']\n", ["car", "Bicycle"]),
        ("labels", "classes.txt", "car\nBicycle\n", ["car", "Bicycle"]),  # beside, one a line
    ],
)
def test_class_names_are_found_where_yolo_datasets_keep_them(tmp_path, layout, file, text, names):
    labels = tmp_path / layout
    labels.mkdir(parents=True)
    (labels if file == "classes.txt" else tmp_path).joinpath(file).write_text(text)
    path, found = find_class_names(labels)
    assert found == names and path.name == file


def test_missing_or_unreadable_class_names_say_so(tmp_path):
    labels = tmp_path / "a" / "b" / "c" / "d" / "labels"
    labels.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no data.yaml or classes.txt naming the classes"):
        find_class_names(labels)
    (labels / "data.yaml").write_text("nc: 2\n")
    with pytest.raises(ValueError, match="no 'names' list or dict of the classes"):
        find_class_names(labels)


def test_label_files_are_told_from_other_text_files(tmp_path):
    from annotations.yolo import looks_like_yolo

    cases = {
        "img000.txt": ("1 0.1 0.2 0.3 0.4 0.5 0.6\n0 0.5 0.5 0.2 0.2\n", True),
        "img001.txt": ("", True),  # an image without objects
        "README.txt": ("labels made in Roboflow\n", False),
        "classes.txt": ("car\nBicycle\n", False),
        "scores.txt": ("1 0.1 x\n", False),
        "img002.txt": ("\ufeff0 0.5 0.5 0.2 0.2\r\n", True),  # edited in Notepad: a BOM, CRLF
    }
    for name, (text, want) in cases.items():
        (tmp_path / name).write_text(text)
        assert looks_like_yolo(tmp_path / name) is want, name
    # PowerShell's `>` writes UTF-16 with a byte-order mark, which import reads: told as labels
    (tmp_path / "img003.txt").write_text("0 0.5 0.5 0.2 0.2\r\n", encoding="utf-16")
    assert looks_like_yolo(tmp_path / "img003.txt")


def test_a_huge_names_index_is_refused_not_filled_in(tmp_path):
    """A data.yaml's ``names: {0: car, 9999999999: x}`` had its gap filled with "class i" names,
    ten billion of them: ``engine annotate import`` ran until killed (fuzzed, round 47)."""
    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text("names:\n  0: car\n  9999999999: x\n")
    with pytest.raises(ValueError, match=r"data.yaml: 'names' key 9999999999 is not a class index"):
        find_class_names(tmp_path / "labels")
    (tmp_path / "data.yaml").write_text("names:\n  -1: car\n")
    with pytest.raises(ValueError, match=r"'names' key -1 is not a class index \(0 to 99999\)"):
        find_class_names(tmp_path / "labels")


def test_label_folders_are_those_holding_label_files_not_ultralytics_caches(tmp_path):
    """Ultralytics caches a label folder's reading beside it (``labels/train.cache``, next to
    ``labels/train/``): a folder holding only that file is no label folder, and the folder of
    ``.txt`` files is one (a mutant that took any file but a ``.txt`` passed every test)."""
    from annotations.yolo import yolo_label_folders

    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "data.yaml").write_text("names: ['car', 'Bicycle']\n")
    (tmp_path / "labels" / "train" / "img000.txt").write_text("")
    (tmp_path / "labels" / "train.cache").write_bytes(b"\x80\x04")
    assert yolo_label_folders(tmp_path) == [tmp_path / "labels" / "train"]


def test_class_names_are_looked_for_up_to_three_folders_above_the_labels(tmp_path):
    """The labels' folder, then three above it, as the docstring says: a data.yaml at
    ROOT, labels at ROOT/a/b/labels, is found (its third folder above); at ROOT/a/b/c/labels
    it is not."""
    (tmp_path / "data.yaml").write_text("names: ['car', 'Bicycle']\n")
    (tmp_path / "a" / "b" / "c" / "labels").mkdir(parents=True)
    path, names = find_class_names(tmp_path / "a" / "b" / "labels")
    assert path == tmp_path / "data.yaml" and names == ["car", "Bicycle"]
    with pytest.raises(FileNotFoundError, match="no data.yaml or classes.txt"):
        find_class_names(tmp_path / "a" / "b" / "c" / "labels")


def test_the_largest_names_index_is_one_below_the_limit(tmp_path):
    """Keys 0 to MAX_CLASSES - 1 are class indices (the error says "0 to 99999"): 99999 is
    read, its gap filled in; 100000 is refused."""
    from annotations.yolo import MAX_CLASSES

    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text(f"names:\n  0: car\n  {MAX_CLASSES - 1}: x\n")
    _, names = find_class_names(tmp_path / "labels")
    assert len(names) == MAX_CLASSES and names[0] == "car" and names[-1] == "x"
    assert names[1] == "class 1"
    (tmp_path / "data.yaml").write_text(f"names:\n  0: car\n  {MAX_CLASSES}: x\n")
    with pytest.raises(ValueError, match=rf"'names' key {MAX_CLASSES} is not a class index"):
        find_class_names(tmp_path / "labels")
