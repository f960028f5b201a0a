"""The COCO dict an export writes (annotations.interchange.CocoBuilder), field by field."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from annotations.instances import InstanceWindows, MaskWindow
from annotations.interchange import (
    CocoBuilder,
    ExportImage,
    check_size,
    coco_to_masks,
    labelme_to_mask,
    png_to_mask,
    to_labelme,
)

H, W = 12, 16


@pytest.mark.parametrize("mask_format", ["polygon", "rle"])
def test_coco_annotations_of_an_instance_and_unannotated_pixels(mask_format):
    """An instance of 4 pixels, row 2 columns 5-6 and row 3 columns 6-7: bbox [x, y, width,
    height] = [5, 2, 3, 2], area 4; its polygon runs along pixel corners (5, 2), (5, 3), (6, 3),
    (6, 4), (8, 4), (8, 3), (7, 3), (7, 2). The unannotated 3x3 corner at rows 9-11 is category
    2, bbox [0, 9, 3, 3]. Scores are rounded to 5 decimals; the image is 16 wide, 12 high."""
    mask = np.zeros((H, W), bool)
    mask[2, 5:7] = mask[3, 6:8] = True
    unannotated = np.zeros((H, W), bool)
    unannotated[9:12, 0:3] = True
    instances = InstanceWindows(
        (H, W),
        np.array([1]),
        (MaskWindow.from_full(mask),),
        scores=np.array([0.123456]),
        mask_scores=np.array([0.5]),
    )
    coco = CocoBuilder("Bicycle", mask_format)
    coco.add(ExportImage("img000", "img000.jpg", instances, unannotated))
    doc = coco.result("", {})
    assert doc["images"] == [{"id": 1, "file_name": "img000.jpg", "width": W, "height": H}]
    assert [c["name"] for c in doc["categories"]] == ["Bicycle", "unannotated"]
    one, two = doc["annotations"]
    assert {k: one[k] for k in ("id", "category_id", "area", "bbox", "score", "mask_score")} == {
        "id": 1,
        "category_id": 1,
        "area": 4,
        "bbox": [5, 2, 3, 2],
        "score": 0.12346,
        "mask_score": 0.5,
    }
    assert {k: two[k] for k in ("id", "category_id", "area", "bbox")} == {
        "id": 2,
        "category_id": 2,
        "area": 9,
        "bbox": [0, 9, 3, 3],
    }
    if mask_format == "polygon":
        assert one["segmentation"] == [[5, 2, 5, 3, 6, 3, 6, 4, 8, 4, 8, 3, 7, 3, 7, 2]]
        assert two["segmentation"] == [[0, 9, 0, 12, 3, 12, 3, 9]]
    else:
        assert np.array_equal(coco_mask.decode(one["segmentation"]), mask)
        assert np.array_equal(coco_mask.decode(two["segmentation"]), unannotated)


def test_a_coco_bbox_is_the_mask_s_extent_in_a_window_wider_than_it():
    """COCO's bbox is the object's [x, y, width, height] in the image, whatever window holds
    its mask: a window at row 1, column 3 whose mask sets rows 2-3, columns 4-6 of it (rows 3-4,
    columns 7-9 of the image, an L of 4 pixels) is bbox [7, 3, 3, 2] (the tight windows of the
    test above hid mutants that subtracted the offsets inside the window or added the extents)."""
    crop = np.zeros((6, 8), bool)
    crop[2, 4:7] = crop[3, 4] = True
    instances = InstanceWindows(
        (H, W), np.array([1]), (MaskWindow(1, 3, crop),), scores=np.array([0.9]),
        mask_scores=np.array([0.8]),
    )  # fmt: skip
    coco = CocoBuilder("Bicycle", "rle")
    coco.add(ExportImage("img000", "img000.jpg", instances))
    doc = coco.result("", {})
    (one,) = doc["annotations"]
    assert one["bbox"] == [7, 3, 3, 2] and one["area"] == 4
    # no unannotated pixels: no unannotated category (a mutant listed it for any other one)
    assert doc["categories"] == [{"id": 1, "name": "Bicycle", "supercategory": "object"}]
    full = np.zeros((H, W), bool)
    full[3, 7:10] = full[4, 7] = True
    assert np.array_equal(coco_mask.decode(one["segmentation"]), full)


def test_a_size_turned_a_quarter_against_a_plain_dict_of_sizes_is_the_size_error():
    """A library caller's ``sizes`` is a plain dict, which knows no EXIF turn: an annotation
    of the image turned a quarter (16x12 for a 12x16 image) is the size error, not an
    AttributeError from asking the dict why (a mutant that asked for any size passed)."""
    with pytest.raises(ValueError) as e:
        check_size("a.json", "img000", (W, H), {"img000": (H, W)})
    assert str(e.value) == (
        f"a.json: image 'img000' is {H}x{W} in the annotation but {W}x{H} in the dataset"
    )


def test_to_labelme_keeps_every_outline_corner_unless_told_to_simplify():
    """A 7x3 block (columns 2-8, rows 3-5) with one pixel above column 5: LabelMe's polygon
    runs through the outline's pixel centres, 7 corners, when ``simplify`` is not given (a
    mutant whose default was 1.0 px passed: it cut the bump's two foot corners)."""
    mask = np.zeros((H, W), bool)
    mask[3:6, 2:9] = True
    mask[2, 5] = True
    instances = InstanceWindows(
        (H, W), np.array([1]), (MaskWindow.from_full(mask),), scores=np.array([0.5])
    )
    doc = to_labelme(ExportImage("img000", "img000.jpg", instances), "Bicycle", "img000.jpg")
    (shape,) = doc["shapes"]
    assert shape["points"] == [[5, 2], [4, 3], [2, 3], [2, 5], [8, 5], [8, 3], [6, 3]]
    assert (doc["imageHeight"], doc["imageWidth"], shape["group_id"]) == (12, 16, 0)


def test_a_labelme_mask_up_to_twice_the_image_s_size_is_read_one_pixel_more_refused():
    """The bound is twice the 16x12 image on each side: a 32x24 patch is read, 33 wide or 25
    high is refused (a mutant that allowed three times the height passed every test)."""
    import base64
    import io

    from PIL import Image

    from annotations.interchange import _mask_patch

    def png(w, h):
        buf = io.BytesIO()
        Image.new("L", (w, h), 1).save(buf, "PNG")
        return base64.b64encode(buf.getvalue()).decode("ascii")

    assert _mask_patch(png(32, 24), "shape 0", (W, H)).shape == (24, 32)
    for w, h in ((33, 1), (1, 25)):
        with pytest.raises(ValueError, match=rf"^shape 0: its mask is {w}x{h}, over twice the"):
            _mask_patch(png(w, h), "shape 0", (W, H))


def _coco(images: list[dict], annotations: list[dict], categories=None) -> dict:
    cats = categories or [{"id": 1, "name": "Bicycle"}]
    return {"images": images, "annotations": annotations, "categories": cats}


def test_coco_image_sizes_written_as_text_are_read_as_integers():
    """Sizes as text ("12", a converter's) are read as int() reads them: a 16x12 image."""
    doc = _coco([{"id": 1, "file_name": "img000.jpg", "height": "12", "width": "16"}], [])
    (found,) = coco_to_masks("c.json", "Bicycle", {"img000": (H, W)}, doc=doc)
    assert found.stem == "img000" and found.mask.shape == (H, W) and not found.mask.any()


def _box_rle() -> tuple[np.ndarray, dict]:
    """A mask of rows 2..4 x columns 5..8 and its COCO RLE, counts as text (as in a JSON file)."""
    want = np.zeros((H, W), np.uint8)
    want[2:5, 5:9] = 1
    rle = coco_mask.encode(np.asfortranarray(want))
    rle["counts"] = rle["counts"].decode()
    return want, rle


def test_coco_category_ids_written_as_text_are_read_as_integers():
    """A category id "3" and an annotation's category_id "3" (text, as a converter writes
    sizes) are read as int() reads them, so the annotation is of the class: its RLE's pixels,
    rows 2..4 x columns 5..8, are 1 and no other is (round() in the place of either int()
    refused the text)."""
    want, rle = _box_rle()
    doc = _coco(
        [{"id": 1, "file_name": "img000.jpg", "height": H, "width": W}],
        [{"id": 5, "image_id": 1, "category_id": "3", "segmentation": rle}],
        [{"id": "3", "name": "Bicycle"}],
    )
    (found,) = coco_to_masks("c.json", "Bicycle", {"img000": (H, W)}, doc=doc)
    np.testing.assert_array_equal(found.mask, want)


def test_coco_masks_read_without_paint_are_all_zero():
    """paint=False (``engine info``'s reading) checks the file and leaves each mask 0: the
    class's 3x4 RLE and a box of unannotated are not painted."""
    want, rle = _box_rle()
    doc = _coco(
        [{"id": 1, "file_name": "img000.jpg", "height": H, "width": W}],
        [
            {"id": 5, "image_id": 1, "category_id": 1, "segmentation": rle},
            {"id": 6, "image_id": 1, "category_id": 2, "bbox": [0, 0, 4, 3]},
        ],
        [{"id": 1, "name": "Bicycle"}, {"id": 2, "name": "unannotated"}],
    )
    (found,) = coco_to_masks("c.json", "Bicycle", {"img000": (H, W)}, doc=doc, paint=False)
    assert found.mask.shape == (H, W) and found.mask.dtype == np.uint8
    assert not found.mask.any()
    (painted,) = coco_to_masks("c.json", "Bicycle", {"img000": (H, W)}, doc=doc)
    assert int((painted.mask == 1).sum()) == 12 and int((painted.mask == 255).sum()) == 12


@pytest.mark.parametrize("cat_id", [0, -1])
def test_a_coco_annotation_without_category_id_is_of_no_category_even_where_one_is_0(cat_id):
    """A category of id 0 (or -1) is the class; an annotation that names none is not of it, and
    the error says it names none (it said "unknown category_id -1", a number the file lacks;
    with a category -1, the marker of none, it was painted as the class without a word)."""
    doc = _coco(
        [{"id": 1, "file_name": "img000.jpg", "height": H, "width": W}],
        [{"id": 5, "image_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]}],
        [{"id": cat_id, "name": "Bicycle"}, {"id": 2, "name": "Car"}],
    )
    with pytest.raises(ValueError, match=r"^c.json: annotation 5 has no category_id$"):
        coco_to_masks("c.json", "Bicycle", {"img000": (H, W)}, doc=doc)


def test_an_unturned_coco_box_of_unannotated_is_its_pixels_exactly():
    """A box [x, y, width, height] = [10, 5, 60, 40] without attributes.rotation covers columns
    10..69 and rows 5..44 (pixel corners); a turn of even 1 degree would move its corners by
    over half a pixel."""
    doc = _coco(
        [{"id": 1, "file_name": "img000.jpg", "height": 50, "width": 80}],
        [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]},
            {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [], "bbox": [10, 5, 60, 40]},
        ],
        [{"id": 1, "name": "Bicycle"}, {"id": 2, "name": "unannotated"}],
    )
    (found,) = coco_to_masks("c.json", "Bicycle", {"img000": (50, 80)}, doc=doc)
    expected = np.zeros((50, 80), np.uint8)
    expected[0:2, 0:2] = 1
    expected[5:45, 10:70] = 255
    assert np.array_equal(found.mask, expected)


def _box_of_unannotated(rotation: float) -> np.ndarray:
    doc = _coco(
        [{"id": 1, "file_name": "img000.jpg", "height": 50, "width": 80}],
        [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]},
            {
                "id": 2,
                "image_id": 1,
                "category_id": 2,
                "bbox": [10, 5, 60, 40],
                "attributes": {"rotation": rotation},
            },
        ],  # fmt: skip
        [{"id": 1, "name": "Bicycle"}, {"id": 2, "name": "unannotated"}],
    )
    (found,) = coco_to_masks("c.json", "Bicycle", {"img000": (50, 80)}, doc=doc)
    return found.mask


@pytest.mark.parametrize("rotation, same_as", [(361, 1), (359, -1)])
def test_a_coco_box_turned_past_a_full_turn_is_turned_by_the_rest(rotation, same_as):
    """CVAT's rotation 361 is a turn of 1 degree and 359 of -1: the same pixels, and not the
    unturned box's columns 10..69 x rows 5..44 (a turn is skipped only at whole turns)."""
    unturned = np.zeros((50, 80), np.uint8)
    unturned[0:2, 0:2] = 1
    unturned[5:45, 10:70] = 255
    mask = _box_of_unannotated(rotation)
    np.testing.assert_array_equal(mask, _box_of_unannotated(same_as))
    assert not np.array_equal(mask, unturned)
    np.testing.assert_array_equal(_box_of_unannotated(720), unturned)


def test_a_png_mask_that_is_not_there_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"img000.png: mask file not found$"):
        png_to_mask(tmp_path / "img000.png", {"img000": (H, W)})


@pytest.mark.parametrize(
    ("width", "said"),
    [
        (float("inf"), "inf, not a whole number of pixels"),  # was "lacks id/file_name/..."
        ("16.5", "'16.5', not a whole number of pixels"),
        (1e300, "1e+300, beyond the largest image side (1,000,000 pixels)"),  # 300 digits
        (10**40, "100000000000... (41 characters), beyond the largest image side (1,000,000 pi"),
        (-16, "-16, a negative size"),
        (True, "True, not a number"),  # int(True) read as a width of 1
        ("w", "'w', not a number"),
    ],
)
def test_a_coco_image_size_is_checked_before_it_is_read_as_an_integer(width, said):
    """int() came first: ``"64.0"`` was "lacks id/file_name/width/height" while ``"64"`` was
    read, infinity was "lacks ...", and 1e300 a 300-digit size in the size mismatch line."""
    doc = _coco([{"id": 1, "file_name": "img000.jpg", "width": width, "height": H}], [])
    with pytest.raises(ValueError) as e:
        coco_to_masks("c.json", "Bicycle", {"img000": (H, W)}, doc=doc)
    assert str(e.value).startswith(f"c.json: image 'img000.jpg' has width {said}")
    for given in (str(W), f"{W}.0", float(W)):  # whole numbers, written as text too: read
        doc = _coco([{"id": 1, "file_name": "img000.jpg", "width": given, "height": H}], [])
        assert [
            m.mask.shape for m in coco_to_masks("c.json", "Bicycle", {"img000": (H, W)}, doc=doc)
        ] == [(H, W)]


def test_a_label_studio_size_is_checked_as_coco_s(tmp_path):
    """One helper for both readers: Label Studio's int() read 64.7 as 64 (imported silently)
    and a region size of ``"16.0"`` was "size is not integers"."""
    from annotations.labelstudio import labelstudio_to_masks

    def tasks(width):
        region = {"type": "polygonlabels", "original_width": width, "original_height": H,
                  "from_name": "l", "to_name": "image", "id": "r0",
                  "value": {"points": [[10, 10], [50, 10], [50, 50]], "polygonlabels": ["Bicycle"]}}  # fmt: skip
        task = {"id": 1, "data": {"image": "/data/upload/1/img000.jpg"},
                "annotations": [{"id": 101, "result": [region]}]}  # fmt: skip
        path = tmp_path / "tasks.json"
        path.write_text(json.dumps([task]))
        return path

    for width, said in ((W + 0.7, f"{W + 0.7!r}, not a whole number of pixels"),
                        (1e300, "1e+300, beyond the largest image side (1,000,000 pixels)")):  # fmt: skip
        path = tasks(width)
        with pytest.raises(ValueError) as e:
            labelstudio_to_masks(path, "Bicycle", {"img000": (H, W)})
        assert str(e.value) == f"{path}: task 1: annotation 101: region r0: original_width {said}"
    got = labelstudio_to_masks(tasks(f"{W}.0"), "Bicycle", {"img000": (H, W)})
    assert [m.mask.shape for m in got] == [(H, W)]


@pytest.mark.parametrize("given", [{"height": H}, {"width": W}])
def test_a_coco_image_with_one_of_its_sizes_is_refused(given):
    """Neither size: the dataset's (Label Studio's export of an image without regions); one of
    the two is a damaged entry, not the dataset's size."""
    doc = _coco([{"id": 1, "file_name": "img000.jpg", **given}], [])
    with pytest.raises(
        ValueError, match="^c.json: image entry .* lacks id/file_name/width/height$"
    ):
        coco_to_masks("c.json", "Bicycle", {"img000": (H, W)}, doc=doc)


def _labelme(*shapes: dict) -> dict:
    return {"shapes": list(shapes), "imagePath": "img000.jpg", "imageHeight": 6, "imageWidth": 8}


@pytest.mark.parametrize("points", [[[2, 1], [5, 3]], [[2, 1], [5, 1], [5, 3], [2, 3]]])
def test_a_labelme_rectangle_is_its_two_corners_or_x_anylabeling_s_diagonal(points):
    """labelme's two corners (2, 1) and (5, 3), or X-AnyLabeling's four of which the first and
    third: pixel centres, so columns 2..5 and rows 1..3."""
    shape = {"label": "Bicycle", "points": points, "shape_type": "rectangle"}
    found = labelme_to_mask("img000.json", "Bicycle", {"img000": (6, 8)}, doc=_labelme(shape))
    expected = np.zeros((6, 8), np.uint8)
    expected[1:4, 2:6] = 1
    assert np.array_equal(found.mask, expected)


def test_a_labelme_mask_of_colour_channels_is_its_pixels_of_any_channel_set():
    """A mask shape's PNG saved in colour (RGB): a pixel is in where any of its channels is
    set, red alone or blue alone, a pixel of none is out, and the 2x5 patch is pasted at its
    first point, (1, 2) (mutants that took any channel along a row, or every pixel of the
    patch, passed every test: the other tests' patches are all set)."""
    import base64
    import io

    from PIL import Image

    rgb = np.zeros((2, 5, 3), np.uint8)
    rgb[0, 1, 0] = 255  # red only
    rgb[1, 4, 2] = 9  # faint blue only
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG")
    shape = {"label": "Bicycle", "points": [[1, 2], [5, 3]], "shape_type": "mask",
             "mask": base64.b64encode(buf.getvalue()).decode("ascii")}  # fmt: skip
    found = labelme_to_mask("img000.json", "Bicycle", {"img000": (6, 8)}, doc=_labelme(shape))
    assert np.argwhere(found.mask).tolist() == [[2, 2], [3, 5]]


def test_a_labelme_polygon_of_two_points_is_refused():
    shape = {"label": "Bicycle", "points": [[1, 1], [4, 4]], "shape_type": "polygon"}
    with pytest.raises(
        ValueError, match=r"^img000.json: shape 0: a polygon needs at least 3 points, got 2$"
    ):
        labelme_to_mask("img000.json", "Bicycle", {"img000": (6, 8)}, doc=_labelme(shape))


def test_a_voc_palette_png_is_read_as_its_indices(tmp_path):
    """Pascal VOC's SegmentationClass: indices 0, 1 (the class, drawn dark red), 7 and 255
    (void, cream); read as indices, never as the palette's colours."""
    from PIL import Image

    img = Image.fromarray(np.array([[0, 1, 255], [1, 7, 0]], np.uint8), "P")
    palette = [0] * 768
    palette[3:6], palette[21:24], palette[765:768] = [128, 0, 0], [128, 128, 128], [224, 224, 192]
    img.putpalette(palette)
    img.save(tmp_path / "img000.png")
    found = png_to_mask(tmp_path / "img000.png", {"img000": (2, 3)}, value=1)
    assert found.mask.tolist() == [[0, 1, 255], [1, 0, 0]] and found.others == {"value 7": 1}


def test_a_segmentation_mask_png_is_read_by_its_label_map_s_colours(tmp_path):
    """CVAT's "Segmentation mask" export, one colour-coded PNG: the class's colour is 1, the
    unannotated label's 255, the background's and another label's 0, the other label counted
    (the background not); the class keeps the label map's spelling, "bicycle" for --class
    Bicycle (a mutant that took another label's name, or none, passed every test)."""
    from PIL import Image

    from annotations.interchange import segmentation_mask_to_mask

    colors = {"background": (0, 0, 0), "bicycle": (128, 0, 0), "unannotated": (0, 0, 128),
              "Car": (0, 128, 0)}  # fmt: skip
    rgb = np.array([[colors["background"], colors["bicycle"], colors["unannotated"]],
                    [colors["Car"], colors["bicycle"], colors["background"]]], np.uint8)  # fmt: skip
    path, sizes = tmp_path / "img000.png", {"img000": (2, 3)}
    Image.fromarray(rgb, "RGB").save(path)
    found = segmentation_mask_to_mask(path, "Bicycle", colors, sizes)
    assert found.stem == "img000" and found.mask.tolist() == [[0, 1, 255], [0, 1, 0]]
    assert found.others == {"Car": 1} and found.spelled == "bicycle"
    rgb[1, 2] = (7, 9, 11)  # a colour the label map lacks, named channel by channel
    Image.fromarray(rgb, "RGB").save(path)
    with pytest.raises(ValueError) as e:
        segmentation_mask_to_mask(path, "Bicycle", colors, sizes)
    assert str(e.value) == f"{path}: colour (7, 9, 11) is not in the label map (labelmap.txt)"


def test_a_labelme_circle_is_its_centre_and_a_point_on_it():
    """Centre (3, 2) through (4, 2): radius 1, the pixel centres within 1 of (3, 2), a plus of
    five (labelme draws it so); a third point is refused."""
    shape = {"label": "Bicycle", "points": [[3, 2], [4, 2]], "shape_type": "circle"}
    found = labelme_to_mask("img000.json", "Bicycle", {"img000": (6, 8)}, doc=_labelme(shape))
    assert np.argwhere(found.mask).tolist() == [[1, 3], [2, 2], [2, 3], [2, 4], [3, 3]]
    shape["points"].append([5, 2])
    with pytest.raises(ValueError, match=r"^img000.json: shape 0: a circle needs 2 points, got 3$"):
        labelme_to_mask("img000.json", "Bicycle", {"img000": (6, 8)}, doc=_labelme(shape))


def test_coco_builder_refuses_a_mask_format_it_cannot_write():
    """A library caller's ``mask_format`` other than "rle" or "polygon" is refused at once (no
    test reached the check: the CLI's own choice list refuses it first)."""
    with pytest.raises(ValueError) as e:
        CocoBuilder("Bicycle", mask_format="bitmap")
    assert str(e.value) == "mask_format must be one of ('rle', 'polygon'), got 'bitmap'"


def test_an_export_without_its_record_is_told_by_a_description_in_text_only():
    """``info`` of an engine export from before its record: the description alone, naming
    "pseudo labels of"; a description that is no text is no such export (not a TypeError)."""
    from annotations.interchange import _recordless_export

    text = "simulated pseudo labels of Bicycle from runs/bicycle"
    assert _recordless_export({"description": text}) == text
    assert _recordless_export({"description": 5}) is None
    assert _recordless_export({"description": "labels of Bicycle"}) is None
    assert _recordless_export({"description": text, "url": ""}) is None


def test_a_turned_coco_box_is_rounded_as_cvat_holds_its_polygon():
    """CVAT's COCO import holds the box [2, 2, 2, 1] as Datumaro's ``Bbox``, and its mask export
    turns it into a ``Polygon`` whose points Datumaro rounds to 2 decimals
    (``RotatedBoxesToPolygons``): turned 37 degrees its top corner (2.5023, 1.4989) is held as
    (2.50, 1.50), the very centre of pixel (2, 1), which pycocotools then leaves out. Before,
    the corners were filled unrounded and that pixel was in."""
    doc = _coco(
        [{"id": 1, "file_name": "img000.jpg", "height": 12, "width": 16}],
        [{"id": 2, "image_id": 1, "category_id": 2, "bbox": [2, 2, 2, 1],
          "attributes": {"rotation": 37}}],
        [{"id": 1, "name": "Bicycle"}, {"id": 2, "name": "unannotated"}],
    )  # fmt: skip
    (found,) = coco_to_masks("c.json", "Bicycle", {"img000": (12, 16)}, doc=doc)
    a, cx, cy = math.radians(37), 3.0, 2.5
    corners = [(2, 2), (4, 2), (4, 3), (2, 3)]
    flat = [v for x, y in corners for v in (cx + math.cos(a) * (x - cx) - math.sin(a) * (y - cy),
                                            cy + math.sin(a) * (x - cx) + math.cos(a) * (y - cy))]  # fmt: skip
    cvat = coco_mask.decode(coco_mask.frPyObjects([np.around(flat, 2).tolist()], 12, 16))[:, :, 0]
    assert np.array_equal(found.mask == 255, cvat == 1)
    assert found.mask[1, 2] == 0 and found.mask[2, 3] == 255


@pytest.mark.parametrize(
    "kind, points",
    [
        ("line", [[1, 1], [6, 4]]),
        ("linestrip", [[1, 1], [6, 4], [2, 5]]),
        ("point", [[3, 2]]),
        ("points", [[1, 1], [6, 4], [2, 5]]),  # labelme's set of points: shape_to_mask fills it
    ],
)
def test_a_labelme_shape_without_area_is_refused_for_the_class_and_passed_over_for_unannotated(
    kind, points
):
    """labelme's lines, line strips, points and sets of points (X-AnyLabeling's too) mark no
    area (its canvas fills no line, line strip or set of points): for the class an error naming
    the file and the shape, for `unannotated` nothing, the file's other shapes read, as CVAT's
    polylines and points are. labelme's own ``shape_to_mask`` paints them 10 px wide or as a
    disc of radius 5 (a set of points as a polygon), its defaults, not what the annotator drew.
    Before, each was "unsupported shape_type", and so stopped the import even as an
    unannotated mark."""
    sizes = {"img000": (6, 8)}
    shape = {"label": "Bicycle", "points": points, "shape_type": kind}
    with pytest.raises(ValueError) as e:
        labelme_to_mask("img000.json", "Bicycle", sizes, doc=_labelme(shape))
    assert str(e.value) == (
        f"img000.json: shape 0 (Bicycle): a {kind!r} shape has no area: draw the object as a "
        "polygon or mask"
    )
    square = {"label": "Bicycle", "points": [[4, 1], [6, 3]], "shape_type": "rectangle"}
    found = labelme_to_mask(
        "img000.json", "Bicycle", sizes, doc=_labelme({**shape, "label": "unannotated"}, square)
    )
    expected = np.zeros((6, 8), np.uint8)
    expected[1:4, 4:7] = 1
    assert np.array_equal(found.mask, expected)
