"""CVAT's "CVAT for images 1.1" XML, read as CVAT itself turns it into COCO or masks."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from annotations.cvat import cvat_xml_to_masks, is_cvat_xml

H, W = 12, 16
SIZES = {"img000": (H, W), "img001": (H, W)}


def _xml(*images: str) -> str:
    """An annotations.xml as CVAT writes it: version, meta, images with their shapes."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
        "  <meta><task><name>bicycles</name></task></meta>\n"
        + "\n".join(images)
        + "\n</annotations>\n"
    )


def _image(name: str, *shapes: str, width: int = W, height: int = H) -> str:
    return (
        f'  <image id="0" name="{name}" width="{width}" height="{height}">\n'
        + "\n".join(f"    {s}" for s in shapes)
        + "\n  </image>"
    )


def _polygon(label: str, points: list[tuple[float, float]]) -> str:
    text = ";".join(f"{x:.2f},{y:.2f}" for x, y in points)
    return f'<polygon label="{label}" source="manual" occluded="0" points="{text}" z_order="0"></polygon>'


def _cvat_rle(patch: np.ndarray) -> str:
    """CVAT's mask runs: row-major over the box, a run of 0 first (empty when it starts set)."""
    flat = patch.ravel()
    runs = np.diff(np.r_[0, np.flatnonzero(flat[1:] != flat[:-1]) + 1, flat.size])
    if flat[0]:
        runs = np.r_[0, runs]
    return ", ".join(str(int(r)) for r in runs)


def _read(tmp_path, text: str, class_name: str = "Bicycle"):
    path = tmp_path / "annotations.xml"
    path.write_text(text)
    return {m.stem: m for m in cvat_xml_to_masks(path, class_name, SIZES)}


def test_cvat_rle_helper_matches_cvat_s_decoder():
    """CVAT's decoder (CVATRleToCOCORle): values alternate from 0 over the box, row-major."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        patch = rng.random((3, 5)) < 0.5
        runs = [int(v) for v in _cvat_rle(patch).split(", ")]
        assert sum(runs) == patch.size
        decoded = np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(3, 5)
        assert np.array_equal(decoded, patch)


def test_polygons_masks_and_unannotated_regions_make_the_mask(tmp_path):
    patch = np.zeros((3, 4), bool)
    patch[0, :] = patch[:, 0] = True  # an L in the box at (1, 1)
    found = _read(
        tmp_path,
        _xml(
            _image(
                "folder/img000.jpg",
                # pixel corners: the square from (8, 2) to (12, 6) covers columns 8..11, rows 2..5
                _polygon("Bicycle", [(8, 2), (12, 2), (12, 6), (8, 6)]),
                f'<mask label="bicycle" source="manual" occluded="0" rle="{_cvat_rle(patch)}" '
                'left="1" top="1" width="4" height="3" z_order="0"></mask>',
                '<box label="unannotated" source="manual" occluded="0" xtl="0.00" ytl="9.00" '
                'xbr="4.00" ybr="12.00" z_order="0"></box>',
                _polygon("Car", [(0, 0), (5, 0), (5, 5)]),
                '<polyline label="Car" points="0.00,0.00;3.00,3.00"></polyline>',
                '<tag label="sunny" source="manual"></tag>',
                '<tag label="Bicycle" source="manual"></tag>',  # "has a bicycle": not a shape
            ),
            _image("img001.jpg"),
        ),
    )
    expected = np.zeros((H, W), np.uint8)
    expected[2:6, 8:12] = 1
    expected[1:4, 1:5][patch] = 1
    expected[9:12, 0:4] = 255
    assert np.array_equal(found["img000"].mask, expected)
    assert found["img000"].others == {"Car": 2}  # an image-level tag is no region
    assert not found["img001"].mask.any()  # a listed image without shapes: annotated, empty


def test_a_mask_s_box_is_left_top_width_height_and_the_class_keeps_the_file_s_spelling(tmp_path):
    """rle "0, 2, 2, 2" over a box 3 wide, 2 high at left 5, top 2: row 2 holds columns 5 and
    6, row 3 columns 6 and 7. Read for --class BICYCLE, the class is spelled as the file's first
    label of it, "Bicycle" (a subset keeps that spelling)."""
    found = _read(
        tmp_path,
        _xml(
            _image(
                "img000.jpg",
                '<mask label="Bicycle" source="manual" occluded="0" rle="0, 2, 2, 2" left="5" '
                'top="2" width="3" height="2" z_order="0"></mask>',
                _polygon("bicycle", [(0, 8), (2, 8), (2, 10), (0, 10)]),
            )
        ),
        class_name="BICYCLE",
    )
    expected = np.zeros((H, W), np.uint8)
    expected[2, 5:7] = expected[3, 6:8] = 1
    expected[8:10, 0:2] = 1
    assert np.array_equal(found["img000"].mask, expected)
    assert found["img000"].spelled == "Bicycle"


def test_the_polygon_fill_is_pycocotools_as_cvat_s_coco_export_hands_it_on(tmp_path):
    rng = np.random.default_rng(1)
    points = rng.uniform([0, 0], [W, H], (7, 2))
    found = _read(tmp_path, _xml(_image("img000.jpg", _polygon("Bicycle", points))))
    rounded = np.round(points, 2)  # CVAT writes two decimals
    want = coco_mask.decode(
        coco_mask.merge(coco_mask.frPyObjects([rounded.ravel().tolist()], H, W))
    )
    assert np.array_equal(found["img000"].mask, want)


def test_rotated_boxes_and_ellipses_of_unannotated_turn_about_their_centre(tmp_path):
    found = _read(
        tmp_path,
        _xml(
            _image(  # 8 wide, 2 high about (12, 3), turned 90 degrees: 2 wide, 8 high
                "img000.jpg",
                '<box label="ignore" xtl="8.00" ytl="2.00" xbr="16.00" ybr="4.00" rotation="90.0"></box>',
            ),
            _image(
                "img001.jpg",
                '<ellipse label="unannotated" cx="8.00" cy="6.00" rx="5.00" ry="2.00" rotation="90.0"></ellipse>',
            ),
        ),
    )
    box = np.zeros((H, W), np.uint8)
    box[0:7, 11:13] = 255  # rows -1..6 clipped at the top, columns 11..12
    assert np.array_equal(found["img000"].mask, box)
    ys, xs = np.nonzero(found["img001"].mask == 255)  # 5 px radius now vertical, 2 horizontal
    assert ys.max() - ys.min() >= 8 and xs.max() - xs.min() <= 4
    # about the centre pixel (8, 6) itself, as CVAT's OpenCV fill (the 58th round; before, about
    # the pixel corner (8, 6), 5.5 and 7.5: tests below)
    assert abs(ys.mean() - 6) <= 0.5 and abs(xs.mean() - 8) <= 0.5


def test_a_mask_past_the_image_s_edge_is_clipped(tmp_path):
    found = _read(
        tmp_path,
        _xml(
            _image(
                "img000.jpg",
                '<mask label="Bicycle" rle="0, 6" left="14" top="10" width="3" height="2"></mask>',
            )
        ),
    )
    expected = np.zeros((H, W), np.uint8)
    expected[10:12, 14:16] = 1
    assert np.array_equal(found["img000"].mask, expected)


def test_a_mask_box_far_larger_than_its_image_is_refused_before_it_is_decoded(tmp_path):
    """200 bytes of XML declaring a 60000x50000 mask box of one run took 3 GB of memory and
    14 s to be clipped to a 64x64 image (10 GB for 100000x100000): a box over twice the
    image's size is a damaged or crafted file, refused naming the shape."""
    mask = '<mask label="Bicycle" rle="0, {n}" left="0" top="0" width="{w}" height="{h}"></mask>'
    with pytest.raises(ValueError) as e:
        _read(tmp_path, _xml(_image("img000.jpg", mask.format(n=3 * 10**9, w=60000, h=50000))))
    assert str(e.value).endswith(
        f"mask 0 (Bicycle): its box is 60000x50000, over twice the image's {W}x{H} (no "
        "annotation tool draws one: a damaged file)"
    )
    edge = mask.format(n=2 * W * 2 * H, w=2 * W, h=2 * H)  # twice the image: still read
    assert _read(tmp_path, _xml(_image("img000.jpg", edge)))["img000"].mask.all()


@pytest.mark.parametrize(
    "shape, message",
    [
        (
            '<box label="Bicycle" xtl="0" ytl="0" xbr="4" ybr="4"></box>',
            r"box 0 \(Bicycle\): a box "
            "is no object's outline: draw the object as a polygon or mask",
        ),  # fmt: skip
        (
            '<polyline label="Bicycle" points="0,0;3,3"></polyline>',
            "a 'polyline' shape has no area",
        ),
        (
            '<mask label="Bicycle" rle="1, 2" left="0" top="0" width="2" height="2"></mask>',
            "its runs cover 3 pixels, not the 2x2 of its box",
        ),  # fmt: skip
        (  # a negative run: "its runs cover 4 pixels, not the 2x2 of its box" was no reason
            '<mask label="Bicycle" rle="1, -1, 4" left="0" top="0" width="2" height="2"></mask>',
            "'rle' has a negative run length, -1",
        ),  # fmt: skip
        (  # a box of no width or no height (runs of 0 pixels) is no mask: was read as empty
            '<mask label="Bicycle" rle="0" left="0" top="0" width="0" height="2"></mask>',
            "its runs cover 0 pixels, not the 0x2 of its box",
        ),  # fmt: skip
        (
            '<mask label="Bicycle" rle="" left="0" top="0" width="2" height="0"></mask>',
            "its runs cover 0 pixels, not the 2x0 of its box",
        ),  # fmt: skip
        (  # one side over twice the image's is enough: a 1-pixel-high line of any width was read
            '<mask label="Bicycle" rle="0, 33" left="0" top="0" width="33" height="1"></mask>',
            r"its box is 33x1, over twice the image's 16x12",
        ),  # fmt: skip
        (
            '<mask label="Bicycle" rle="0, 25" left="0" top="0" width="1" height="25"></mask>',
            r"its box is 1x25, over twice the image's 16x12",
        ),  # fmt: skip
        (
            '<mask label="Bicycle" rle="1, x" left="0" top="0" width="2" height="2"></mask>',
            "'rle' must be comma-separated run lengths",
        ),  # fmt: skip
        (
            '<mask label="Bicycle" rle="4" top="0" width="2" height="2"></mask>',
            "lacks the attribute 'left'",
        ),  # fmt: skip
        (
            '<box label="unannotated" xtl="a" ytl="0" xbr="4" ybr="4"></box>',
            "xtl='a' is not a number",
        ),
        (
            '<polygon label="Bicycle" points="0,0;1;2,2"></polygon>',
            "points must be 'x,y' number pairs",
        ),
        (
            '<polygon label="Bicycle" points="0,0;3,3"></polygon>',
            r"polygon 0 \(Bicycle\): a polygon needs at least 3 points, got 2",
        ),
        (  # OpenCV, which CVAT fills an ellipse with, asserts; it was read as its mirror image
            '<ellipse label="unannotated" cx="4" cy="4" rx="-2" ry="1"></ellipse>',
            r"ellipse 0 \(unannotated\): a radius is negative \(rx=-2, ry=1\)$",
        ),
    ],
)
def test_a_bad_shape_is_one_line_naming_file_image_and_shape(tmp_path, shape, message):
    with pytest.raises(ValueError, match=message) as e:
        _read(tmp_path, _xml(_image("img000.jpg", shape)))
    text = str(e.value)
    assert (
        text.startswith(f"{tmp_path / 'annotations.xml'}: image 'img000.jpg'") and "\n" not in text
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("<annotations><image", "not valid XML"),
        ("<dataset></dataset>", r"not a CVAT XML export \(its root is <dataset>\)"),
        (
            '<annotations><track id="0" label="Bicycle"></track></annotations>',
            "CVAT's video export",
        ),
        (_xml(), "lists no images"),
        (_xml(_image("img000.jpg", width=20)), "'img000' is 20x12 in the annotation but 16x12"),
        (
            _xml(_image("img000.jpg"), _image("b/img000.png")),
            r"listed twice \(also as 'img000.jpg'\)",
        ),
        (_xml(_image("img009.jpg")), "image 'img009' is not in the dataset split"),
    ],
)
def test_files_that_are_no_cvat_export_of_these_images_say_so(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        _read(tmp_path, text)


def test_coordinates_are_held_as_datumaro_holds_them(tmp_path):
    """A polygon from the scratch check against Datumaro (docs/annotate.md): its vertex 101.42,
    60.30 puts pixel (57, 102) inside in float64 and outside in float32, Datumaro's precision,
    which is what CVAT's exports rasterise."""
    points = [(113.19, 56.58), (98.86, 70.04), (97.16, 52.41), (104.98, 51.56), (101.42, 60.30)]
    sizes = {"img000": (120, 160)}
    path = tmp_path / "annotations.xml"
    path.write_text(_xml(_image("img000.jpg", _polygon("Bicycle", points), width=160, height=120)))
    (mask,) = cvat_xml_to_masks(path, "Bicycle", sizes)
    in64 = coco_mask.decode(coco_mask.frPyObjects([np.ravel(points).tolist()], 120, 160))[:, :, 0]
    assert in64[57, 102] == 1 and mask.mask[57, 102] == 0
    assert int((mask.mask != in64).sum()) == 1


def test_a_path_that_cannot_be_read_is_no_cvat_export(tmp_path):
    """A folder named like the file, or a missing file, is no CVAT export (told by its
    start, which cannot be read); the file itself is."""
    (tmp_path / "annotations.xml").mkdir()
    assert not is_cvat_xml(tmp_path / "annotations.xml")
    assert not is_cvat_xml(tmp_path / "gone.xml")
    (tmp_path / "real.xml").write_text(_xml(_image("img000.jpg")))
    assert is_cvat_xml(tmp_path / "real.xml")


def test_an_xml_file_is_a_cvat_export_by_its_annotations_and_version_or_meta(tmp_path):
    """CVAT's XML starts ``<annotations>`` then ``<version>`` or ``<meta>``; an HTML page with a
    ``<meta>`` tag, or another tool's ``<annotations>`` with neither, is no CVAT export (a
    mutant that took either half alone passed every test)."""
    files = {
        "cvat_version.xml": "<?xml version='1.0'?><annotations><version>1.1</version></annotations>",
        "cvat_meta.xml": "<annotations><meta><task/></meta></annotations>",
        "page.xml": "<html><head><meta charset='utf-8'/></head><version>2</version></html>",
        "other.xml": "<annotations><image name='a.jpg'/></annotations>",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    found = {name: is_cvat_xml(tmp_path / name) for name in files}
    assert found == {"cvat_version.xml": True, "cvat_meta.xml": True, "page.xml": False,
                     "other.xml": False}  # fmt: skip


def test_image_sides_are_read_as_coco_and_label_studio_read_them(tmp_path):
    """A size written "16.0" (a converter's float) was refused as "lacks integer width and
    height" where COCO and Label Studio take it (annotations.numbers.image_hw); "16.5" is named by
    the file, the image and the attribute, and a missing one still says it lacks them."""
    points = [(2.0, 2.0), (10.0, 2.0), (10.0, 8.0), (2.0, 8.0)]
    whole = _read(tmp_path, _xml(_image("img000.jpg", _polygon("Bicycle", points), width="16.0")))
    assert whole["img000"].mask.shape == (H, W) and int(whole["img000"].mask.sum()) == 48
    path = tmp_path / "annotations.xml"
    for width, said in (
        ("16.5", "'16.5', not a whole number of pixels"),
        ("1e300", "'1e300', beyond the largest image side (1,000,000 pixels)"),
        ("sixteen", "'sixteen', not a number"),
    ):
        with pytest.raises(ValueError) as e:
            _read(tmp_path, _xml(_image("img000.jpg", width=width)))
        assert str(e.value) == f"{path}: image 'img000.jpg' has width {said}"
    with pytest.raises(ValueError) as e:
        _read(tmp_path, _xml(_image("img000.jpg").replace(' height="12"', "")))
    assert str(e.value) == f"{path}: image 'img000.jpg' lacks integer width and height"


def _cvat_ellipse_mask(cx: str, cy: str, rx: str, ry: str, rotation: str, hw=(H, W)):
    """CVAT's own pixels of an ``<ellipse>``, transcribed from its source, not from the
    importer: ``load_anno`` (``dataset_manager/formats/cvat.py``) holds it as its centre and the
    point (cx + rx, cy - ry) written to 2 decimals; ``EllipsesToMasks.convert_ellipse``
    (``formats/transformations.py``), which its COCO and mask exports both go through
    (``bindings.py``), takes the radii back as differences, rounds centre and radii with
    Python's ``round`` and fills ``cv2.ellipse`` at the angle ``rotation``."""
    import cv2

    points = [float(cx), float(cy)]
    points += [float(f"{float(cx) + float(rx):.2f}")]
    points += [float(f"{float(cy) - float(ry):.2f}")]
    x, y, right, top = points
    mat = np.zeros(hw, np.uint8)
    axes = (round(right - x), round(y - top))
    cv2.ellipse(mat, (round(x), round(y)), axes, float(rotation), 0, 360, 255, thickness=-1)
    return mat > 0


def _ellipse(cx: str, cy: str, rx: str, ry: str, rotation="0.00", label="unannotated") -> str:
    return (
        f'<ellipse label="{label}" source="manual" occluded="0" cx="{cx}" cy="{cy}" '
        f'rx="{rx}" ry="{ry}" rotation="{rotation}" z_order="0"></ellipse>'
    )


def test_an_ellipse_is_the_pixels_cvat_s_own_exports_make_of_it(tmp_path):
    """CVAT's COCO and mask exports rasterise an ellipse with OpenCV about the centre rounded to
    a pixel (its centre pixel's centre, not a pixel corner): (7, 5) of radii 5 and 2 covers
    rows 3..7 about row 5, 11 columns at its middle row about column 7. Before, it was traced as
    a 72-vertex polygon filled by pycocotools at pixel corners, half a pixel up and left of
    CVAT's (rows 3..6, 32 pixels where CVAT's are 41): 13 pixels differed."""
    found = _read(tmp_path, _xml(_image("img000.jpg", _ellipse("7.00", "5.00", "5.00", "2.00"))))
    want = np.zeros((H, W), np.uint8)
    want[3, 5:11] = want[7, 5:11] = 255
    want[4, 3:12] = want[6, 3:12] = 255
    want[5, 2:13] = 255
    assert np.array_equal(found["img000"].mask, want)
    assert np.array_equal(want == 255, _cvat_ellipse_mask("7.00", "5.00", "5.00", "2.00", "0"))


@pytest.mark.parametrize(
    "cx, cy, rx, ry, rotation",
    [
        ("8.00", "6.00", "5.00", "2.00", "90.00"),  # clockwise, as CVAT turns it: upright
        ("7.00", "5.00", "5.00", "2.00", "30.00"),  # its right end down, to the lower right
        ("7.50", "4.50", "3.00", "2.00", "0.00"),  # round(): 7.5 -> 8, 4.5 -> 4 (to even)
        ("3.10", "5.00", "3.50", "2.50", "0.00"),  # rx 6.60 - 3.10 = 3.4999999999999996 -> 3
        ("14.25", "1.00", "4.00", "3.00", "145.50"),  # over the image's edge: clipped
        ("6.00", "6.00", "0.00", "0.00", "0.00"),  # no radius: the centre pixel
        ("8.00", "6.00", "20.00", "15.00", "10.00"),  # over every edge: every pixel
        ("-10.00", "5.00", "3.00", "2.00", "0.00"),  # wholly left of the image: no pixel
    ],
)
def test_an_ellipse_is_rounded_and_turned_as_cvat_rounds_and_turns_it(
    tmp_path, cx, cy, rx, ry, rotation
):
    """Centre and radii are rounded as CVAT rounds them (Python's ``round``, after its 2-decimal
    hold of the ellipse's corner), and ``rotation`` is OpenCV's angle, clockwise on screen."""
    found = _read(tmp_path, _xml(_image("img000.jpg", _ellipse(cx, cy, rx, ry, rotation))))
    assert np.array_equal(found["img000"].mask == 255, _cvat_ellipse_mask(cx, cy, rx, ry, rotation))


def test_an_ellipse_of_the_class_is_read_as_cvat_s_coco_export_writes_it(tmp_path):
    """CVAT's COCO export writes an ellipse of any label as a mask of that label (its
    ``bindings.py`` turns every ellipse into an ``RleMask``), and its mask export paints it: so a
    wheel drawn as an ellipse of the class is the class's pixels, and the unannotated ellipse
    over it wins, as for polygons. Before, it was refused ("an ellipse is no object's outline"),
    where the same task exported as COCO imported it. A box of the class is still refused: CVAT's
    COCO export writes it as a bbox, no mask."""
    wheel = _ellipse("7.00", "5.00", "5.00", "2.00", label="Bicycle")
    hub = _ellipse("7.00", "5.00", "1.00", "1.00")
    found = _read(tmp_path, _xml(_image("img000.jpg", wheel, hub)))
    want = np.where(_cvat_ellipse_mask("7.00", "5.00", "5.00", "2.00", "0"), 1, 0)
    want[_cvat_ellipse_mask("7.00", "5.00", "1.00", "1.00", "0")] = 255
    assert np.array_equal(found["img000"].mask, want.astype(np.uint8))
    assert found["img000"].mask[5, 2] == 1 and found["img000"].mask[5, 7] == 255


def test_a_rotated_box_is_the_polygon_cvat_s_mask_export_fills(tmp_path):
    """CVAT's mask export turns a rotated box into a Datumaro polygon (``RotatedBoxesToPolygons``)
    and Datumaro holds a polygon's points rounded to 2 decimals (``_Shape``'s converter), which
    pycocotools then fills: the box (2, 2)-(4, 3) turned 37 degrees has its top corner at
    (2.5023, 1.4989), held as (2.50, 1.50), so that pixel (2, 1), whose centre is that tip, is
    outside. Before, the corners were filled unrounded and it was in (on 300 random rotated
    boxes 42 masks differed from CVAT's, 97 of 57,410 pixels; none now)."""
    import math

    box = '<box label="unannotated" xtl="2.00" ytl="2.00" xbr="4.00" ybr="3.00" rotation="37.00"></box>'
    found = _read(tmp_path, _xml(_image("img000.jpg", box)))
    a, cx, cy = math.radians(37.0), 3.0, 2.5
    corners = [(2.0, 2.0), (4.0, 2.0), (4.0, 3.0), (2.0, 3.0)]
    flat = [v for x, y in corners for v in (cx + math.cos(a) * (x - cx) - math.sin(a) * (y - cy),
                                            cy + math.sin(a) * (x - cx) + math.cos(a) * (y - cy))]  # fmt: skip
    held = np.around(flat, 2).tolist()  # Datumaro's Polygon(points)
    cvat = coco_mask.decode(coco_mask.frPyObjects([held], H, W))[:, :, 0]
    assert np.array_equal(found["img000"].mask == 255, cvat == 1)
    assert found["img000"].mask[1, 2] == 0 and cvat[2, 3] == 1


@pytest.mark.parametrize(
    "shape",
    [
        '<polyline label="{}" points="1.00,1.00;5.00,5.00;9.00,2.00"></polyline>',
        '<points label="{}" points="3.00,3.00;6.00,4.00"></points>',
        '<cuboid label="{}" xtl1="1" ytl1="1" xbl1="1" ybl1="4" xtr1="4" ytr1="1" xbr1="4" '
        'ybr1="4" xtl2="2" ytl2="0" xbl2="2" ybl2="3" xtr2="5" ytr2="0" xbr2="5" ybr2="3"></cuboid>',
        '<skeleton label="{}"><points label="hub" points="4.00,4.00"></points></skeleton>',
    ],
)
def test_a_shape_without_area_is_refused_for_the_class_and_passed_over_for_unannotated(
    tmp_path, shape
):
    """Polylines, points, cuboids and skeletons (the skeleton's own points within it) draw no
    area: for the class an error naming the file, the image and the shape, for `unannotated`
    nothing (the image's other shapes are read), as before."""
    tag = shape[1 : shape.index(" ")]
    with pytest.raises(ValueError) as e:
        _read(tmp_path, _xml(_image("img000.jpg", shape.format("Bicycle"))))
    assert str(e.value) == (
        f"{tmp_path / 'annotations.xml'}: image 'img000.jpg': {tag} 0 (Bicycle): a {tag!r} shape "
        "has no area: draw the object as a polygon or mask"
    )
    square = _polygon("Bicycle", [(8, 2), (12, 2), (12, 6), (8, 6)])
    found = _read(tmp_path, _xml(_image("img000.jpg", shape.format("unannotated"), square)))
    want = np.zeros((H, W), np.uint8)
    want[2:6, 8:12] = 1
    assert np.array_equal(found["img000"].mask, want)
