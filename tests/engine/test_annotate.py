"""Annotated test subsets: polygon convention, COCO / LabelMe / PNG round trips, errors, pick."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from annotations.interchange import EXPORT_KEY, coco_to_masks
from annotations.labelrun import LabelRun
from annotations.polygons import mask_to_polygons, polygons_to_mask
from annotations.subset import ImageStats, pick_images, read_subset, write_subset
from engine.annotate import (
    ExportConfig,
    ImportConfig,
    PickConfig,
    export_annotations,
    import_annotations,
    pick_for_annotation,
    read_stem_list,
)
from engine.runlock import LOCK_NAME
from tests.loop_helpers import damaged_swap_line, disk, make_dataset, make_run

H, W = 48, 64


# -- polygons ----------------------------------------------------------------------------------
def _blobs(seed: int, fill_holes: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = ndimage.gaussian_filter(rng.random((H, W)), 2) > 0.52
    return ndimage.binary_fill_holes(m) if fill_holes else m


CONVENTIONS = ("coco", "labelme")


def _round_trip(mask: np.ndarray, convention: str, simplify: float = 0.0) -> np.ndarray:
    polys = mask_to_polygons(mask, convention=convention, simplify=simplify)
    assert all(len(p) >= 3 for p in polys)  # valid COCO and LabelMe polygons
    return polygons_to_mask(polys, *mask.shape, convention=convention)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_polygons_empty_mask(convention):
    assert mask_to_polygons(np.zeros((H, W), bool), convention=convention) == []
    assert not polygons_to_mask([], H, W, convention=convention).any()


def test_polygon_convention_must_be_named():
    with pytest.raises(ValueError, match="polygon convention must be one of"):
        mask_to_polygons(np.ones((4, 4), bool), convention="cvat")


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("seed", range(20))
def test_polygon_round_trip_is_exact_without_holes(seed, convention):
    m = _blobs(seed)
    assert np.array_equal(_round_trip(m, convention), m)


THIN_AND_TINY = [
    np.pad(np.ones((1, 1), bool), 3),  # one pixel
    np.pad(np.ones((1, 4), bool), 3),  # one-pixel-thin line
    np.eye(8, dtype=bool),  # diagonal
    np.eye(8, dtype=bool)[::-1] | np.eye(8, dtype=bool),  # a cross of diagonals
    np.ones((5, 6), bool),  # touches the frame
]


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("mask", THIN_AND_TINY)
def test_polygon_round_trip_thin_and_tiny(mask, convention):
    assert np.array_equal(_round_trip(mask, convention), mask)


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("density", [0.15, 0.5])
def test_polygon_round_trip_of_noise_fills_exactly_the_holes(convention, density):
    """Noise is the worst case: diagonal pinches, one-pixel parts, holes inside holes."""
    rng = np.random.default_rng(int(density * 100))
    for _ in range(20):
        m = rng.random((int(rng.integers(3, 30)), int(rng.integers(3, 30)))) < density
        assert np.array_equal(_round_trip(m, convention), ndimage.binary_fill_holes(m))


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("simplify", [0.0, 1.5])
def test_polygons_of_a_window_are_the_full_mask_s(convention, simplify):
    """Export traces each instance inside its box, offset to where the box lies: the same
    vertices, in the same order, as the full-size mask's (noise, frame-touching windows)."""
    rng = np.random.default_rng(7)
    for y0, x0, h, w in [(0, 0, H, W), (5, 9, 12, 20), (H - 7, W - 11, 7, 11), (3, 0, 9, W)]:
        crop = rng.random((h, w)) < 0.4
        full = np.zeros((H, W), bool)
        full[y0 : y0 + h, x0 : x0 + w] = crop
        window = mask_to_polygons(crop, convention=convention, simplify=simplify, offset=(x0, y0))
        whole = mask_to_polygons(full, convention=convention, simplify=simplify)
        assert [p.tolist() for p in window] == [p.tolist() for p in whole]


def test_simplify_leaves_an_outline_of_three_vertices_whole():
    """Three pixels in an L: the LabelMe outline is their centres, (1, 1), (2, 1), (1, 2). A
    tolerance of 1.5 would bring it to 2 vertices (each lies 0.7 to 1 px from the line through
    the other two), a line that loses a pixel: an outline of 3 vertices is never simplified."""
    mask = np.zeros((4, 4), bool)
    mask[1, 1] = mask[1, 2] = mask[2, 1] = True
    (poly,) = mask_to_polygons(mask, convention="labelme", simplify=1.5)
    assert sorted(map(tuple, poly.tolist())) == [(1.0, 1.0), (1.0, 2.0), (2.0, 1.0)]
    assert np.array_equal(polygons_to_mask([poly], 4, 4, convention="labelme"), mask)


@pytest.mark.parametrize("tol", [1.0, 2.0])
def test_simplify_keeps_a_one_pixel_line_whole(tol):
    """A one-pixel-high line of 6 pixels: its COCO outline is the 4 corners (0, 2), (0, 3),
    (6, 3), (6, 2). Douglas-Peucker at a tolerance of 1 or more makes it 2 points, a polygon
    that encloses nothing: the line vanished from a COCO export (its annotation said area 6 of
    no pixel). An outline the tolerance would make a line stays exact."""
    mask = np.zeros((5, 8), bool)
    mask[2, 0:6] = True
    (poly,) = mask_to_polygons(mask, convention="coco", simplify=tol)
    assert poly.tolist() == [[0.0, 2.0], [0.0, 3.0], [6.0, 3.0], [6.0, 2.0]]
    assert np.array_equal(polygons_to_mask([poly], 5, 8, convention="coco"), mask)


def test_simplify_keeps_an_outline_whole_that_would_hold_no_pixel():
    """A V of 8 pixels (a review's random search found it): Douglas-Peucker at a tolerance of 1
    makes its outline a spiky self-touching polygon of area 2.5 that holds no pixel centre, and
    the object vanished from a COCO export though the guard against a line (zero area) passed.
    The outline stays exact; at 0.5 and 2 the simplified polygon keeps pixels, as before."""
    mask = np.zeros((20, 12), bool)
    for x, y in [(0, 11), (6, 11), (1, 12), (5, 12), (2, 13), (4, 13), (3, 14), (4, 15)]:
        mask[y, x] = True
    exact = mask_to_polygons(mask, convention="coco")
    assert [p.tolist() for p in mask_to_polygons(mask, convention="coco", simplify=1.0)] == [
        p.tolist() for p in exact
    ]
    assert np.array_equal(polygons_to_mask(exact, 20, 12, convention="coco"), mask)
    for tol in (0.5, 2.0):
        polys = mask_to_polygons(mask, convention="coco", simplify=tol)
        assert polygons_to_mask(polys, 20, 12, convention="coco").any()


def test_simplify_treats_the_outline_as_closed():
    """A staircase triangle of 6 rows (row i holds i + 1 pixels): its COCO outline runs
    (1, 1), (1, 7), (7, 7), then down the stairs to (2, 1). Every stair corner lies 1/sqrt(2)
    = 0.71 px from the diagonal (1, 1)-(7, 7), so at a tolerance of 1 the outline is the
    triangle. Simplified as an open curve, its last point (2, 1) would be kept as an end."""
    mask = np.zeros((8, 8), bool)
    for i in range(6):
        mask[1 + i, 1 : 2 + i] = True
    (poly,) = mask_to_polygons(mask, convention="coco", simplify=1.0)
    assert poly.tolist() == [[1.0, 1.0], [1.0, 7.0], [7.0, 7.0]]


def test_coco_polygons_are_the_ones_pycocotools_reads():
    """The COCO file's polygons, read by pycocotools as every COCO tool reads them (not by our
    rasteriser): the mask, pixel for pixel; a thin spoke survives. Pixel-centre outlines, the
    LabelMe convention, lose the bottom and right rows there and a one-pixel line entirely."""
    from pycocotools import mask as coco_mask

    def pycocotools_reads(polys, h, w):
        rle = coco_mask.merge(coco_mask.frPyObjects([p.ravel().tolist() for p in polys], h, w))
        return coco_mask.decode(rle).astype(bool)

    spoke = np.zeros((20, 30), bool)
    spoke[9, 2:27] = True
    for m in (_blobs(3), spoke, np.eye(8, dtype=bool)):
        assert np.array_equal(
            pycocotools_reads(mask_to_polygons(m, convention="coco"), *m.shape), m
        )
    assert not pycocotools_reads(mask_to_polygons(spoke, convention="labelme"), 20, 30).any()
    square = np.pad(np.ones((10, 10), bool), 5)
    centres = pycocotools_reads(mask_to_polygons(square, convention="labelme"), 20, 20)
    assert centres.sum() == 81  # 9 x 9 of the 10 x 10 pixels


def test_coco_polygon_drawn_along_pixel_edges_covers_those_pixels():
    """An annotator's polygon around an object's outer edge (CVAT, Label Studio: continuous
    coordinates, pixel (x, y) covering [x, x + 1)) holds exactly the object's pixels."""
    square = [np.array([[5, 5], [15, 5], [15, 15], [5, 15]], float)]
    m = polygons_to_mask(square, 20, 20, convention="coco")
    assert m.sum() == 100 and m[5:15, 5:15].all()
    # a polygon of 2 vertices encloses nothing (pycocotools would take 4 numbers for a box)
    line = [np.array([[2.0, 2.0], [12.0, 12.0]])]
    assert not polygons_to_mask(line, 20, 20, convention="coco").any()


def _drawn(shape: dict, hw: tuple[int, int]) -> np.ndarray:
    """One LabelMe shape alone, as the importer draws it."""
    from annotations.interchange import _draw_labelme_shape
    from annotations.polygons import LabelmeCanvas

    canvas = LabelmeCanvas(*hw)
    _draw_labelme_shape(shape, canvas, "x")
    return canvas.mask()


def test_labelme_shapes_are_drawn_as_labelme_draws_them():
    """labelme's shape_to_mask: Pillow's polygon with its outline, rectangles and circles with
    both ends included; a vertex is a pixel's centre."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for _ in range(20):  # float vertices, star-shaped: where OpenCV's fill differs from Pillow's
        ang = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 10))))
        r = rng.uniform(3, 18, ang.size)
        pts = np.stack([20 + r * np.cos(ang), 20 + r * np.sin(ang)], 1)
        ref = Image.new("L", (40, 40), 0)
        ImageDraw.Draw(ref).polygon([tuple(p) for p in pts], outline=1, fill=1)
        ours = polygons_to_mask([pts], 40, 40, convention="labelme")
        assert np.array_equal(ours, np.asarray(ref, bool))
    turned = {"shape_type": "rotation", "points": [[10, 2], [18, 10], [10, 18], [2, 10]]}
    diamond = [np.array(turned["points"], float)]
    assert np.array_equal(
        _drawn(turned, (20, 20)),
        polygons_to_mask(diamond, 20, 20, convention="labelme"),
    )
    rect = _drawn({"shape_type": "rectangle", "points": [[14.0, 14.0], [5.0, 5.0]]}, (20, 20))
    assert rect.sum() == 100 and rect[5:15, 5:15].all()
    disc = _drawn({"shape_type": "circle", "points": [[10.0, 10.0], [10.0, 14.0]]}, (21, 21))
    assert (
        disc[10, 6]
        and disc[10, 14]
        and not disc[10, 15]
        and disc.sum() == pytest.approx(np.pi * 16, rel=0.25)
    )


def test_x_anylabeling_rectangles_of_four_corners_are_read():
    """X-AnyLabeling 2.2.0 and later saves a rectangle as its four corners (top-left,
    top-right, bottom-right, bottom-left; ``rectangle_from_diagonal`` in its
    ``utils/shape.py``) and reads corners 0 and 2 as the diagonal (``custom_to_coco`` in its
    ``label_converter.py``); labelme saves two. Both are the same pixels; four were refused
    ("a rectangle needs 2 points, got 4")."""
    four = {  # a shape as X-AnyLabeling 2.4 writes it
        "label": "unannotated",
        "score": None,
        "points": [[5.0, 6.0], [14.0, 6.0], [14.0, 15.0], [5.0, 15.0]],
        "group_id": None,
        "description": "",
        "difficult": False,
        "shape_type": "rectangle",
        "flags": {},
        "attributes": {},
        "kie_linking": [],
    }
    two = {"shape_type": "rectangle", "points": [[5.0, 6.0], [14.0, 15.0]]}
    drawn = _drawn(four, (20, 20))
    assert drawn.sum() == 100 and drawn[6:16, 5:15].all()
    assert np.array_equal(drawn, _drawn(two, (20, 20)))
    with pytest.raises(ValueError, match=r"a rectangle needs 2 points \(or 4 corners\), got 3"):
        _drawn({"shape_type": "rectangle", "points": four["points"][:3]}, (20, 20))


def test_x_anylabeling_quadrilaterals_are_drawn_as_polygons():
    """X-AnyLabeling 4.x's "quadrilateral" (any four corners; ``shape_to_mask`` in its
    ``utils/shape.py`` draws it as Pillow's polygon, as a "rotation") was an unsupported
    shape_type."""
    from PIL import ImageDraw

    corners = [[3.2, 2.5], [15.7, 4.1], [13.9, 16.4], [2.1, 12.8]]
    quad = {"label": "bicycle", "points": corners, "shape_type": "quadrilateral", "flags": {}}
    ref = Image.new("L", (20, 20), 0)
    ImageDraw.Draw(ref).polygon([tuple(p) for p in corners], outline=1, fill=1)
    assert np.array_equal(_drawn(quad, (20, 20)), np.asarray(ref, bool))


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_polygon_holes_are_filled_and_only_they_differ(convention):
    ring = disk(H, W, 24, 30, 15) & ~disk(H, W, 24, 30, 6)
    assert np.array_equal(_round_trip(ring, convention), ndimage.binary_fill_holes(ring))


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("tol", [0.5, 1.0, 2.0])
def test_polygon_simplify_moves_boundary_by_about_tol(tol, convention):
    m = disk(H, W, 24, 32, 18)
    back = _round_trip(m, convention, simplify=tol)
    diff = back != m
    # every changed pixel lies within tol + 1 pixels of the true outline
    dist_in = ndimage.distance_transform_edt(m)
    dist_out = ndimage.distance_transform_edt(~m)
    dist = np.where(m, dist_in, dist_out)
    assert diff.sum() > 0 or tol < 1
    assert dist[diff].max(initial=0) <= tol + 1


# -- export / import round trips ---------------------------------------------------------------
@pytest.fixture()
def world(tmp_path):
    data = tmp_path / "data"
    make_dataset(data, "test", n=3, size=(H, W))
    wheel = disk(H, W, 24, 16, 12) & ~disk(H, W, 24, 16, 5)  # a ring: a hole
    blob = disk(H, W, 20, 48, 8)
    tiny = disk(H, W, 40, 40, 1)
    per_image = {"img000": [wheel, blob], "img001": [tiny], "img002": []}
    run = tmp_path / "run"
    make_run(run, data, per_image, (H, W), confidences={"img000": 90, "img001": 250})
    truth = {
        s: (np.any(ms, axis=0) if ms else np.zeros((H, W), bool)) for s, ms in per_image.items()
    }
    return data, run, truth


def _roundtrip(tmp_path, data, run, fmt, mask_format="rle"):
    out = tmp_path / f"export-{fmt}-{mask_format}"
    res = export_annotations(ExportConfig(run=str(run), out=str(out), mask_format=mask_format))
    src = res.coco if fmt == "coco" else out / "labelme"
    sub = import_annotations(
        ImportConfig(
            fmt, [str(src)], "bicycle", str(data), str(tmp_path / f"sub-{fmt}-{mask_format}")
        )
    )
    return res, sub


def test_coco_rle_round_trip_is_pixel_exact(tmp_path, world):
    data, run, truth = world
    res, sub = _roundtrip(tmp_path, data, run, "coco", "rle")
    assert res.images == 3 and res.instances == 3
    coco = json.loads(res.coco.read_text())
    assert coco["categories"] == [{"id": 1, "name": "Bicycle", "supercategory": "object"}]
    # COCO's file_name: the path in the split's image folder, as CVAT matches it to its frames
    assert coco["images"][0]["file_name"] == "img000.jpg"
    image_root = coco["info"]["mass_engine_export"]["image_root"]
    assert image_root == str((data / "images" / "test").resolve())
    listed = res.image_list.read_text().splitlines()  # to upload to the annotation tool's task
    assert listed == [str(Path(image_root) / f"img00{i}.jpg") for i in range(3)]
    assert sub.stems == ("img000", "img001", "img002")
    for stem, m in truth.items():
        assert np.array_equal(sub.mask(stem), m.astype(np.uint8)), stem
    again = read_subset(sub.root)
    assert again.class_name == "Bicycle" and again.info["sources"]["img000"].endswith("coco.json")


def test_a_subsets_corrected_export_inside_it_imports_back_into_it(tmp_path, world):
    """A subset exported for another pass (``--out SUB/corrected``) and imported back into SUB:
    the import's check that no export replaces its source files found its own lock on SUB and
    refused the import as being written by itself."""
    data, run, truth = world
    _, sub = _roundtrip(tmp_path, data, run, "coco", "rle")
    res = export_annotations(ExportConfig(run=str(sub.root), out=str(sub.root / "corrected")))
    again = import_annotations(
        ImportConfig("coco", [str(res.coco)], "bicycle", str(data), str(sub.root))
    )
    for stem, m in truth.items():
        assert np.array_equal(again.mask(stem), m.astype(np.uint8)), stem


@pytest.mark.parametrize("fmt,mask_format", [("coco", "polygon"), ("labelme", "rle")])
def test_polygon_round_trips_differ_only_by_filled_holes(tmp_path, world, fmt, mask_format):
    data, run, truth = world
    _, sub = _roundtrip(tmp_path, data, run, fmt, mask_format)
    total_diff = 0
    for stem, m in truth.items():
        back = sub.mask(stem).astype(bool)
        diff = back != m
        total_diff += int(diff.sum())
        # tolerance: polygons carry no holes, so exactly the hole pixels come back set
        assert np.array_equal(back, ndimage.binary_fill_holes(m) | m), stem
    hole_area = int((ndimage.binary_fill_holes(truth["img000"]) & ~truth["img000"]).sum())
    assert total_diff == hole_area > 0


@pytest.mark.parametrize("fmt,mask_format", [("coco", "polygon"), ("labelme", "rle")])
def test_the_hole_count_of_instances_of_several_blobs_is_what_the_import_gives(
    tmp_path, fmt, mask_format
):
    """The warning's count fills each instance as a whole, and the polygons fill each of its
    8-connected blobs: the same pixels, since a hole (4-connected background, as filled) is
    enclosed by one 8-connected blob, never by several together. Noise instances of many
    blobs, diagonal pinches, a checkered ring (touching diagonally only), and two half rings
    (two instances) that enclose a hole together, which the count leaves open as the import
    does."""
    data = tmp_path / "data"
    make_dataset(data, "test", n=4, size=(H, W))
    rng = np.random.default_rng(7)
    ring = disk(H, W, 24, 20, 10) & ~disk(H, W, 24, 20, 6)
    cols = np.arange(W)[None, :]
    noise = [ndimage.gaussian_filter(rng.random((H, W)), 1) > 0.55, rng.random((H, W)) < 0.4]
    per_image = {
        # a checkered ring: its pixels touch diagonally only, one 8-connected blob
        "img000": [ring & ((np.arange(H)[:, None] + cols) % 2 == 0), disk(H, W, 8, 52, 4)],
        "img001": noise,
        "img002": [ring & (cols <= 20), ring & (cols > 20)],
        "img003": [rng.random((H, W)) < 0.3],
    }
    run = tmp_path / "run"
    make_run(run, data, per_image, (H, W))
    res = export_annotations(
        ExportConfig(run=str(run), out=str(tmp_path / "e"), mask_format=mask_format)
    )
    src = res.coco if fmt == "coco" else tmp_path / "e" / "labelme"
    sub = import_annotations(
        ImportConfig(fmt, [str(src)], "bicycle", str(data), str(tmp_path / "s"))
    )
    added = sum(
        int((sub.mask(s) == 1).sum()) - int(np.any(ms, axis=0).sum()) for s, ms in per_image.items()
    )
    assert res.hole_pixels == added > 0
    assert (sub.mask("img002") == 1).sum() == ring.sum()  # the hole of two instances stays open


def test_an_export_whose_polygons_fill_holes_says_how_many_pixels(tmp_path, world, caplog):
    """LabelMe's and COCO's polygons bring a ring (a wheel between its spokes) back filled:
    at 3840x2160, two images of 70 instances with 12 spoked wheels each came back from an
    unchanged LabelMe round trip at IoU 40. The export wrote them without a word."""
    data, run, truth = world
    hole_area = int((ndimage.binary_fill_holes(truth["img000"]) & ~truth["img000"]).sum())
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "exp")))
    assert (res.hole_pixels, res.images_with_holes) == (hole_area, 1)
    said = [r.getMessage() for r in caplog.records if "carry no holes" in r.getMessage()]
    iou = 100 * res.class_pixels / (res.class_pixels + hole_area)
    assert len(said) == 1 and f"labelme/ carry no holes: {hole_area} pixels" in said[0]
    assert "of 1 image " in said[0] and f"IoU {iou:.1f} against the masks exported" in said[0]
    # the pixels said are the ones an unchanged import gives back as the class
    sub = import_annotations(
        ImportConfig(
            "labelme",
            [str(tmp_path / "exp" / "labelme")],
            "bicycle",
            str(data),
            str(tmp_path / "sub"),
        )
    )
    assert sum(int((sub.mask(s) == 1).sum() - m.sum()) for s, m in truth.items()) == hole_area
    caplog.clear()  # RLE and brushes keep the holes: nothing to say
    kept = export_annotations(
        ExportConfig(run=str(run), out=str(tmp_path / "rle"), formats=("coco", "labelstudio"))
    )
    assert kept.hole_pixels == 0 and not any("no holes" in r.getMessage() for r in caplog.records)
    export_annotations(
        ExportConfig(
            run=str(run), out=str(tmp_path / "poly"), formats=("coco",), mask_format="polygon"
        )
    )
    assert any(
        "coco.json (--mask-format polygon) carry no holes" in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize("fmt,mask_format", [("labelme", "rle"), ("coco", "polygon")])
def test_a_subsets_polygon_export_warns_what_its_unannotated_rings_take(
    tmp_path, world, caplog, fmt, mask_format
):
    """A subset exported again with an unannotated ring around class pixels: the ring's
    polygon comes back filled and unannotated wins over the class, so the import held none of
    them; the warning counted the instances' holes only (IoU 100, or none at all). A class
    ring around an unannotated disc comes back exact (the disc painted over the filled
    polygon): the warning counted the disc as class pixels lost (IoU 74.4 for 100)."""
    data, _, _ = world
    ring = disk(H, W, 24, 32, 12) & ~disk(H, W, 24, 32, 8)
    inside = disk(H, W, 24, 32, 5)
    wheel = disk(H, W, 24, 16, 12) & ~disk(H, W, 24, 16, 5)
    masks = {"img000": np.zeros((H, W), np.uint8), "img001": wheel.astype(np.uint8)}
    masks["img000"][ring] = 255
    masks["img000"][inside] = 1
    masks["img002"] = (disk(H, W, 24, 40, 12) & ~disk(H, W, 24, 40, 6)).astype(np.uint8)
    masks["img002"][disk(H, W, 24, 40, 6)] = 255
    extra = {"data": str(data), "data_resolved": str(data.resolve())}
    sub = write_subset(tmp_path / "sub", "Bicycle", "test", masks, {}, extra)
    out = tmp_path / "exp"
    res = export_annotations(
        ExportConfig(run=str(sub.root), out=str(out), formats=(fmt,), mask_format=mask_format)
    )
    src = out / "coco.json" if fmt == "coco" else out / "labelme"
    back = import_annotations(
        ImportConfig(fmt, [str(src)], "Bicycle", str(data), str(tmp_path / "back"))
    )
    sent = np.concatenate([(m == 1).ravel() for m in masks.values()])
    got = np.concatenate([(back.mask(s) == 1).ravel() for s in masks])
    iou = 100 * int((sent & got).sum()) / int((sent | got).sum())
    taken = sum(int((back.mask(s) == 255).sum() - (m == 255).sum()) for s, m in masks.items())
    assert iou < 100 * int(sent.sum()) / int((sent | got).sum()) and taken > int(inside.sum())
    assert (res.hole_pixels, res.class_pixels) == (int((got & ~sent).sum()), int(sent.sum()))
    assert (res.unannotated_pixels, res.class_pixels_lost) == (taken, int(inside.sum()))
    said = [r.getMessage() for r in caplog.records if "carry no holes" in r.getMessage()]
    assert len(said) == 1 and f"IoU {iou:.1f} against the masks exported" in said[0]
    assert "the instances of 1 image " in said[0]
    assert np.array_equal(back.mask("img002"), masks["img002"])
    assert f"{taken} pixels inside the unannotated regions ({int(inside.sum())} of them" in said[0]


def test_labelme_files_reference_images_relatively(tmp_path, world):
    data, run, _ = world
    out = tmp_path / "exp"
    res = export_annotations(
        ExportConfig(run=str(run), out=str(out), formats=("labelme",), stems=["img001"])
    )
    doc = json.loads(res.labelme[0].read_text())
    assert doc["imagePath"] == "../../data/images/test/img001.jpg"
    assert (res.labelme[0].parent / doc["imagePath"]).resolve().is_file()
    assert [s["label"] for s in doc["shapes"]] == ["Bicycle"]


def test_a_labelme_image_path_out_of_a_folder_reached_through_a_symlink_is_absolute(tmp_path):
    """LabelMe opens ``imagePath`` joined to its file's folder through the OS, where ``..`` out
    of a folder reached through a link (``runs -> ../scratch/runs``) goes up from the link's
    target: ``../../../data/a.jpg`` from ``runs/x/e`` named ``scratch/data/a.jpg``. Such a path
    is absolute; a relative one is kept where it leads to the image."""
    from engine.annotate import labelme_image_path

    (tmp_path / "scratch" / "runs" / "x" / "e").mkdir(parents=True)
    (tmp_path / "p" / "data").mkdir(parents=True)
    (tmp_path / "p" / "runs").symlink_to("../scratch/runs")
    image, folder = tmp_path / "p" / "data" / "a.jpg", tmp_path / "p" / "runs" / "x" / "e"
    image.write_bytes(b"")
    (tmp_path / "p" / "runs" / "x" / "c.jpg").write_bytes(b"")
    assert labelme_image_path(image, folder) == image.as_posix()
    assert labelme_image_path(folder.parent / "c.jpg", folder) == "../c.jpg"


def test_labelme_files_name_images_on_another_drive_absolute(tmp_path, world, monkeypatch):
    """On Windows an export (C:) of images on D: failed with ``os.path.relpath``'s "path is on
    mount 'D:', start on mount 'C:'"; the LabelMe file names the image by its absolute path
    (LabelMe joins it to the file's folder, which keeps it)."""
    data, run, _ = world
    relpath = os.path.relpath

    def ntpath_relpath(path, start=os.curdir):
        if "images" in Path(path).parts:  # the dataset's images: on D:
            raise ValueError("path is on mount 'D:', start on mount 'C:'")
        return relpath(path, start)

    monkeypatch.setattr(os.path, "relpath", ntpath_relpath)  # as engine.datasets reads it
    res = export_annotations(
        ExportConfig(
            run=str(run), out=str(tmp_path / "exp"), formats=("labelme",), stems=["img001"]
        )
    )
    doc = json.loads(res.labelme[0].read_text(encoding="utf-8"))
    assert doc["imagePath"] == (data / "images" / "test" / "img001.jpg").absolute().as_posix()
    assert res.coco is None
    # --format coco,labelme, as --split takes lists (it was "unknown export formats")
    both = export_annotations(
        ExportConfig(run=str(run), out=str(tmp_path / "e2"), formats=("COCO, labelme",))
    )
    assert both.coco is not None and both.labelme


def test_per_image_files_do_not_grow_with_the_number_of_images_exported(tmp_path, world):
    """Each LabelMe file and Label Studio task carries the exporter's record, but not the list
    of every image chosen: N copies of an N-long list made an export grow as N squared (2,000
    images: 230 MB of JSON where 20 MB hold the masks). COCO's info keeps the list, once."""
    _, run, _ = world
    sizes = {}
    for stems in (["img001"], ["img000", "img001", "img002"]):
        out = tmp_path / str(len(stems))
        formats = ("coco", "labelme", "labelstudio")
        res = export_annotations(
            ExportConfig(run=str(run), out=str(out), formats=formats, stems=stems)
        )
        doc = json.loads((out / "labelme" / "img001.json").read_text())
        assert "stems" not in doc[EXPORT_KEY]["config"]
        tasks = json.loads(res.labelstudio.read_text())
        assert all("stems" not in t["data"][EXPORT_KEY]["config"] for t in tasks)
        coco = json.loads(res.coco.read_text())
        assert coco["info"][EXPORT_KEY]["config"]["stems"] == stems
        sizes[len(stems)] = len(json.dumps(doc[EXPORT_KEY]))
    assert sizes[1] == sizes[3]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"formats": ("coco",), "simplify": 2.0}, "got 2.0 with coco \\(rle\\)"),
        (
            {"mask_format": "polygon", "simplify": -1.0},
            "tolerance in pixels \\(>= 0, under 1e\\+30\\)",
        ),
        (
            {"formats": ("labelme",), "simplify": math.nan},
            "under 1e\\+30\\) .*; got nan with labelme$",
        ),
        ({"formats": ("labelme",), "simplify": math.inf}, "; got inf with labelme$"),
        ({"formats": ("labelme",), "simplify": 1e30}, "; got 1e\\+30 with labelme$"),
        ({"formats": ("labelme",), "mask_format": "polygon"}, "LabelMe files are always polygons"),
        ({"mask_format": "poly"}, "--mask-format must be one of rle, polygon"),
    ],
)
def test_export_refuses_settings_its_formats_would_ignore(tmp_path, world, settings, message):
    """An option that shapes no file written is an error before anything is written."""
    _, run, _ = world
    out = tmp_path / "e"
    with pytest.raises(ValueError, match=message):
        export_annotations(ExportConfig(run=str(run), out=str(out), **settings))
    assert not out.exists()
    fine = ExportConfig(run=str(run), out=str(out), formats=("labelme",), simplify=1.0)
    assert export_annotations(fine).labelme  # LabelMe's polygons take the tolerance


def test_unannotated_category_becomes_255(tmp_path, world):
    data, run, truth = world
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e")))
    coco = json.loads(res.coco.read_text())
    coco["categories"].append({"id": 2, "name": "unannotated"})
    coco["annotations"].append(
        {"id": 99, "image_id": 1, "category_id": 2, "segmentation": [[0, 0, 5, 0, 5, 5, 0, 5]]}
    )
    res.coco.write_text(json.dumps(coco))
    sizes = {s: (H, W) for s in truth}
    masks = {m.stem: m.mask for m in coco_to_masks(res.coco, "Bicycle", sizes)}
    # COCO's pixel corners: the square from (0, 0) to (5, 5) covers pixels 0..4
    assert (masks["img000"][:5, :5] == 255).all()
    assert (masks["img000"][5:] != 255).all() and (masks["img000"][:, 5:] != 255).all()
    # an unannotated region drawn as a rectangle: CVAT writes its box, no segmentation
    box = {"id": 98, "image_id": 2, "category_id": 2, "segmentation": [], "bbox": [10, 20, 6, 4]}
    coco["annotations"].append(box)
    res.coco.write_text(json.dumps(coco))
    masks = {m.stem: m.mask for m in coco_to_masks(res.coco, "Bicycle", sizes)}
    region = np.zeros((H, W), bool)
    region[20:24, 10:16] = True
    assert np.array_equal(masks["img001"] == 255, region)


@pytest.mark.parametrize("made", ["with a record", "before the record"])
def test_polygons_of_an_older_engine_export_are_read_at_pixel_centres(tmp_path, world, made):
    """Exports made before the engine wrote pycocotools' corners traced pixel centres; their
    record names no convention, and they still import exactly. Those made before the engine
    wrote a record at all (info a description only) were read as COCO's, half a pixel short
    on every side: 88 of a 486-pixel bicycle's pixels came back wrong, without a word."""
    data, run, truth = world
    cfg = ExportConfig(run=str(run), out=str(tmp_path / "e"), mask_format="polygon")
    res = export_annotations(cfg)
    coco = json.loads(res.coco.read_text())
    assert coco["info"]["mass_engine_export"]["polygon_convention"] == "coco"
    del coco["info"]["mass_engine_export"]["polygon_convention"]
    if made == "before the record":  # as engine annotate export wrote info then
        coco["info"] = {"description": f"simulated pseudo labels of Bicycle from {run}"}
    label_run = LabelRun.open(run)
    instances = []  # the exported instances, in the file's order
    for img in coco["images"]:
        masks = label_run.instances("test", Path(img["file_name"]).stem)[0].masks
        instances.extend(m for m in masks if m.any())
    assert len(instances) == len(coco["annotations"])
    for ann, m in zip(coco["annotations"], instances, strict=True):  # as older engines wrote
        ann["segmentation"] = [
            p.ravel().tolist() for p in mask_to_polygons(m, convention="labelme")
        ]
    res.coco.write_text(json.dumps(coco))
    sizes = {s: (H, W) for s in truth}
    masks = {m.stem: m.mask for m in coco_to_masks(res.coco, "Bicycle", sizes)}
    for stem, m in truth.items():
        assert np.array_equal(masks[stem].astype(bool), ndimage.binary_fill_holes(m) | m), stem
    if made == "before the record":  # a tool that rewrote info: its polygons are COCO's
        coco["info"] = {"description": "corrected in a tool", "contributor": "CVAT"}
        res.coco.write_text(json.dumps(coco))
        other = {m.stem: m.mask for m in coco_to_masks(res.coco, "Bicycle", sizes)}
        assert any(not np.array_equal(other[s], masks[s]) for s in truth)
        return
    coco["info"]["mass_engine_export"]["polygon_convention"] = "banana"  # read as COCO before
    res.coco.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="polygon_convention is 'banana', not 'coco' or 'labelme'"):
        coco_to_masks(res.coco, "Bicycle", sizes)


def test_x_anylabeling_s_coco_conversion_is_read_as_it_drew_the_polygons(tmp_path, world, caplog):
    """X-AnyLabeling's ``LabelConverter.custom_to_coco`` (``label_converter.py``, 4.2.1) copies
    its shapes' vertices, pixel centres as its canvas and ``shape_to_mask`` draw them, into
    COCO's polygons; read as COCO's (pixel corners) an object lost half a pixel on every side:
    on the engine's LabelMe export run through X-AnyLabeling 4.2.1's converter, 82 pixels of a
    638-pixel ring-and-disc image differed, and a 5-pixel object came back as 2
    (docs/annotate.md)."""
    data, _, _ = world
    info = {  # as X-AnyLabeling 4.2.1's get_coco_data writes it
        "year": 2026, "version": "4.2.1", "description": "COCO Label Conversion",
        "contributor": "CVHub", "url": "https://github.com/CVHub520/X-AnyLabeling",
        "date_created": "2026-12-06",
    }  # fmt: skip
    cats = [
        {"id": 0, "name": "_background_", "supercategory": None},
        {"id": 1, "name": "Bicycle", "supercategory": None},
    ]
    image = {"license": 0, "url": None, "file_name": "img000.jpg", "height": H, "width": W,
             "date_captured": None, "id": 0}  # fmt: skip
    ann = {"id": 0, "image_id": 0, "category_id": 1, "area": 16.0, "bbox": [8.0, 2.0, 4.0, 4.0],
           "iscrowd": 0, "ignore": 0,
           "segmentation": [[8.0, 2.0, 11.0, 2.0, 11.0, 5.0, 8.0, 5.0]]}  # fmt: skip
    path = _coco_file(tmp_path, info=info, categories=cats, images=[image], annotations=[ann])
    expected = np.zeros((H, W), np.uint8)
    expected[2:6, 8:12] = 1  # the pixels whose centres the square's corners are, as drawn
    with caplog.at_level("WARNING"):
        (found,) = coco_to_masks(path, "Bicycle", {"img000": (H, W)})
    assert np.array_equal(found.mask, expected)
    assert caplog.text.count("X-AnyLabeling's COCO conversion") == 1
    from engine.annotation_files import annotation_files

    caplog.clear()
    with caplog.at_level("WARNING"):
        annotation_files(path)  # engine info reads it once per category: no warning each time
    assert not caplog.records
    path = _coco_file(tmp_path, categories=cats, images=[image], annotations=[ann])
    (found,) = coco_to_masks(path, "Bicycle", {"img000": (H, W)})  # another tool's: corners
    assert int(found.mask.sum()) == 9


def test_a_rotated_box_of_cvat_s_coco_export_is_turned(tmp_path, world):
    """CVAT's COCO 1.0 export writes a rotated rectangle as its unturned ``bbox`` and the turn
    in ``attributes.rotation`` (``anno_attr['rotation']`` in its ``dataset_manager/bindings.py``,
    which Datumaro's COCO writer keeps), and its import turns it back; an ``unannotated`` box
    drawn turned was read as the unturned one."""
    cats = [{"id": 1, "name": "Bicycle", "supercategory": ""},
            {"id": 2, "name": "unannotated", "supercategory": ""}]  # fmt: skip
    ann = {"id": 1, "image_id": 1, "category_id": 2, "segmentation": [], "area": 80.0,
           "bbox": [10.0, 20.0, 20.0, 4.0], "iscrowd": 0,
           "attributes": {"occluded": False, "rotation": 90.0}}  # fmt: skip
    path = _coco_file(tmp_path, categories=cats, annotations=[ann])
    (found,) = coco_to_masks(path, "Bicycle", {"img000": (H, W)})
    expected = np.zeros((H, W), np.uint8)
    expected[12:32, 18:22] = 255  # 20x4 about its centre (20, 22), turned upright
    assert np.array_equal(found.mask, expected)
    # 30 degrees: the direction counts. CVAT's RotatedBoxesToPolygons (its COCO and mask
    # exports' transform) turns a corner (x, y) about the centre to (cx + cos a (x - cx) -
    # sin a (y - cy), cy + sin a (x - cx) + cos a (y - cy)), clockwise on screen
    from pycocotools import mask as coco_mask

    ann["attributes"]["rotation"] = 30.0
    path = _coco_file(tmp_path, categories=cats, annotations=[ann])
    (found,) = coco_to_masks(path, "Bicycle", {"img000": (H, W)})
    a, cx, cy = math.radians(30), 20.0, 22.0
    corners = [(10, 20), (30, 20), (30, 24), (10, 24)]
    flat = [v for x, y in corners for v in (cx + math.cos(a) * (x - cx) - math.sin(a) * (y - cy),
                                            cy + math.sin(a) * (x - cx) + math.cos(a) * (y - cy))]  # fmt: skip
    cvat = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([flat], H, W)))
    assert np.array_equal(found.mask == 255, cvat == 1) and cvat[16, 12] and not cvat[28, 12]
    ann["attributes"]["rotation"] = "x"
    path = _coco_file(tmp_path, categories=cats, annotations=[ann])
    with pytest.raises(ValueError, match="annotation 1: attributes.rotation 'x' is not a number"):
        coco_to_masks(path, "Bicycle", {"img000": (H, W)})


def test_an_annotation_of_an_exif_turned_images_stored_size_says_so(tmp_path, world):
    """An annotation tool that ignores EXIF annotates the stored pixels of a turned image:
    import said only "is 64x48 in the annotation but 48x64 in the dataset"."""
    data, _, _ = world
    img = data / "images" / "test" / "img000.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # its stored 64x48 pixels are displayed turned a quarter: 48x64
    Image.open(img).save(img, exif=exif.tobytes())
    coco = _coco_file(tmp_path)  # of the image's stored size, 64x48
    with pytest.raises(ValueError) as e:
        import_annotations(
            ImportConfig("coco", [str(coco)], "Bicycle", str(data), str(tmp_path / "s"))
        )
    assert str(e.value) == (
        f"{coco}: image 'img000' is {W}x{H} in the annotation but {H}x{W} in the dataset (its "
        f"EXIF orientation 6 turns the {W}x{H} pixels it stores): annotations follow the image "
        "as displayed, as every engine command reads it, and this one fits the pixels as "
        "stored (drawn with a tool that ignores EXIF?)"
    )


# -- import errors -----------------------------------------------------------------------------
def _coco_file(tmp_path, **changes):
    doc = {
        "images": [{"id": 1, "file_name": "img000.jpg", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "Bicycle"}],
        "annotations": [],
    }
    doc.update(changes)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    "changes,message",
    [
        (
            {"images": [{"id": 1, "file_name": "nope.jpg", "width": W, "height": H}]},
            r"'nope' is not in split 'test' \(3 images\)$",
        ),
        (
            {"categories": [{"id": 3, "name": "ignore"}, {"id": 4, "name": "bike"}]},
            "no category named 'Bicycle' .*categories: 'ignore', 'bike'",
        ),
        ({"categories": [{"name": "Bicycle"}]}, "category entry .* lacks an integer id"),
        ({"images": []}, "lists no images"),
        (
            {"images": [{"id": 1, "file_name": "img000.jpg", "width": 10, "height": H}]},
            "10x48 in the annotation",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 7, "category_id": 1, "segmentation": []}]},
            "unknown image_id 7",
        ),
        (  # CVAT writes a rectangle as a box without a segmentation
            {
                "annotations": [
                    {
                        "id": 5,
                        "image_id": 1,
                        "category_id": 1,
                        "segmentation": [],
                        "bbox": [1, 2, 3, 4],
                    }
                ]
            },  # fmt: skip
            "annotation 5: no segmentation, only a box: draw the object as a polygon or mask",
        ),
    ],
)
def test_coco_import_errors_name_the_file(tmp_path, world, changes, message):
    data, _, _ = world
    path = _coco_file(tmp_path, **changes)
    with pytest.raises(ValueError, match=message) as e:
        import_annotations(
            ImportConfig("coco", [str(path)], "Bicycle", str(data), str(tmp_path / "s"))
        )
    assert str(e.value).startswith(str(path))


@pytest.mark.parametrize(
    "text,message",
    [
        ("[" * 100_000 + "]" * 100_000, "not valid JSON for this reader (nested too deeply: over"),
        ('{"images": [{"id": 1, "height": ' + "9" * 5000 + "}]}", "a number of over 4300 digits"),
        # Python's parser takes NaN and Infinity (LabelMe's json.dump writes them), and reads
        # 1e400 as infinity: int() of infinity raised OverflowError
        ("NaN", "image 'img000.jpg' has width nan, not a whole number of pixels"),
        ("Infinity", "image 'img000.jpg' has width inf, not a whole number of pixels"),
        ("1e400", "image 'img000.jpg' has width inf, not a whole number of pixels"),
    ],
    ids=["deep", "digits", "nan", "infinity", "1e400"],
)
def test_a_crafted_json_file_is_one_line_naming_it(tmp_path, world, text, message):
    """JSON from elsewhere that Python's parser fails on (a RecursionError, an integer past
    Python's digit limit) or takes beyond the standard (NaN, Infinity, a float past float64's)
    is an error naming the file, from import and from engine info, not a traceback or a
    message naming no file."""
    from typer.testing import CliRunner

    from cli import app

    data, _, _ = world
    path = _coco_file(tmp_path)
    if text in ("NaN", "Infinity", "1e400"):  # the image's width
        path.write_text(path.read_text().replace(f'"width": {W}', f'"width": {text}'))
    else:
        path.write_text(text)
    imported = ["annotate", "import", str(path), "--format", "coco", "--class", "Bicycle",
                "--data", str(data), "--split", "test", "--out", str(tmp_path / "s")]  # fmt: skip
    for args in (["info", str(path)], imported):
        res = CliRunner().invoke(app, args, env={"COLUMNS": "1000"})
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
        said = " ".join(res.output.split())
        if args == imported or res.exit_code:  # info leaves a malformed size to import
            assert res.exit_code == 2 and f"error: {path}: " in said, res.output
            assert re.search(re.escape(message) if "(" in message else message, said), said


def test_other_classes_of_a_multi_class_file_are_left_out_and_said(tmp_path, world, caplog):
    """A CVAT task or LabelMe folder annotating several classes gives one subset per class:
    the others' annotations are left out, counted in one warning and in subset.json. Files
    with other labels and none of the class's name the likely mistake: --class."""
    data, _, _ = world
    square = [[0, 0, 5, 0, 5, 5, 0, 5]]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": square},
        {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [[9, 9, 20, 9, 20, 20]]},
        {"id": 3, "image_id": 1, "category_id": 2, "segmentation": {"size": [1, 1]}},  # not read
    ]
    cats = [{"id": 1, "name": "Bicycle"}, {"id": 2, "name": "Car"}]
    path = _coco_file(tmp_path, categories=cats, annotations=anns)
    with caplog.at_level("WARNING", logger="engine.annotate"):
        sub = import_annotations(
            ImportConfig("coco", [str(path)], "Bicycle", str(data), str(tmp_path / "s"))
        )
    assert int(sub.mask("img000").sum()) == 25  # the bicycle square, no car pixel
    assert sub.info["other_labels"] == {"Car": 2}
    assert [r.getMessage() for r in caplog.records] == [
        "left out the annotations of other classes than Bicycle (a subset holds one class): "
        "'Car' (2)"
    ]
    folder = tmp_path / "lm"
    folder.mkdir()
    shape = {"label": "bike", "points": [[1, 1], [9, 1], [9, 9]], "shape_type": "polygon"}
    doc = {"shapes": [shape], "imagePath": "img000.jpg", "imageHeight": H, "imageWidth": W}
    (folder / "img000.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="no annotation of 'Bicycle' in 1 file, only of 'bike'"):
        import_annotations(
            ImportConfig("labelme", [str(folder)], "Bicycle", str(data), str(tmp_path / "s2"))
        )
    sub = import_annotations(
        ImportConfig("labelme", [str(folder)], "bike", str(data), str(tmp_path / "s3"))
    )
    assert sub.mask("img000").sum() > 0 and "other_labels" not in sub.info


def test_a_labelme_file_without_its_image_size_takes_the_dataset_image_s(tmp_path, world):
    """``imageHeight`` and ``imageWidth`` are optional to labelme's own reader
    (``LabelFile.load`` in ``labelme/_label_file.py`` reads them with ``data.get`` and takes
    the image's size); labelme before 3.x and converters leave them out. Such a file was
    refused ("lacks imageHeight/imageWidth"); one that gives them wrong still is."""
    from PIL import ImageDraw

    data, _, _ = world
    folder = tmp_path / "lm"
    folder.mkdir()
    square = [[10.0, 10.0], [30.0, 10.0], [30.0, 20.0], [10.0, 20.0]]
    doc = {  # as labelme 3.16 saved a file: colours, no image size
        "version": "3.16.7",
        "flags": {},
        "shapes": [{"label": "bicycle", "line_color": None, "fill_color": None,
                    "points": square, "shape_type": "polygon", "flags": {}}],
        "lineColor": [0, 255, 0, 128],
        "fillColor": [255, 0, 0, 128],
        "imagePath": "img000.jpg",
        "imageData": None,
    }  # fmt: skip
    (folder / "img000.json").write_text(json.dumps(doc))
    sub = import_annotations(
        ImportConfig("labelme", [str(folder)], "Bicycle", str(data), str(tmp_path / "s"))
    )
    ref = Image.new("L", (W, H), 0)
    ImageDraw.Draw(ref).polygon([tuple(p) for p in square], outline=1, fill=1)
    assert np.array_equal(sub.mask("img000"), np.asarray(ref))
    from engine.annotation_files import annotation_files

    (found,) = annotation_files(folder)  # engine info: no problem where import finds none
    assert found.problems == []
    # a mask shape too: engine info drew the file at 1x1 and called a 6x4 mask "over twice the
    # image's 1x1", which import reads; now at its shapes' extent
    import base64
    import io

    patch = io.BytesIO()
    Image.fromarray(np.full((4, 6), 255, np.uint8)).save(patch, format="PNG")
    mask = {"label": "bicycle", "shape_type": "mask", "points": [[32.0, 2.0], [37.0, 5.0]],
            "mask": base64.b64encode(patch.getvalue()).decode(), "flags": {}}  # fmt: skip
    (folder / "img000.json").write_text(json.dumps({**doc, "shapes": [*doc["shapes"], mask]}))
    (found,) = annotation_files(folder)
    assert found.problems == []
    import_annotations(
        ImportConfig("labelme", [str(folder)], "Bicycle", str(data), str(tmp_path / "s1"))
    )
    (folder / "img000.json").write_text(json.dumps({**doc, "imageHeight": 7, "imageWidth": 9}))
    with pytest.raises(ValueError, match="9x7 in the annotation"):
        import_annotations(
            ImportConfig("labelme", [str(folder)], "Bicycle", str(data), str(tmp_path / "s2"))
        )
    (folder / "img000.json").write_text(json.dumps({**doc, "imageHeight": H}))
    with pytest.raises(ValueError, match="gives one of imageHeight/imageWidth, not both"):
        import_annotations(
            ImportConfig("labelme", [str(folder)], "Bicycle", str(data), str(tmp_path / "s3"))
        )
    # read as COCO's and Label Studio's sizes: 48.0 is 48; 64.7 was read as 64 and passed
    (folder / "img000.json").write_text(json.dumps({**doc, "imageHeight": 48.0, "imageWidth": W}))
    sub = import_annotations(
        ImportConfig("labelme", [str(folder)], "Bicycle", str(data), str(tmp_path / "s4"))
    )
    assert np.array_equal(sub.mask("img000"), np.asarray(ref))
    (folder / "img000.json").write_text(json.dumps({**doc, "imageHeight": H, "imageWidth": 64.7}))
    lm = folder / "img000.json"
    with pytest.raises(ValueError) as e:
        import_annotations(
            ImportConfig("labelme", [str(folder)], "Bicycle", str(data), str(tmp_path / "s5"))
        )
    assert str(e.value) == f"{lm}: LabelMe file's imageWidth 64.7, not a whole number of pixels"


def test_empty_annotation_file_is_a_clear_error(tmp_path, world):
    data, _, _ = world
    for fmt, name in (("coco", "e.json"), ("labelme", "e.json"), ("png", "img000.png")):
        p = tmp_path / fmt / name
        p.parent.mkdir()
        p.write_bytes(b"")
        with pytest.raises(ValueError, match="the file is empty") as e:
            import_annotations(
                ImportConfig(fmt, [str(p)], "Bicycle", str(data), str(tmp_path / "s"))
            )
        assert str(e.value).startswith(str(p))


def test_import_names_every_bad_file_and_writes_nothing(tmp_path, world):
    data, _, _ = world
    folder = tmp_path / "masks"
    folder.mkdir()
    (folder / "img000.png").write_bytes(b"")
    (folder / "img001.png").write_bytes(b"\x89PNG\r\n")  # truncated
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(folder / "nosuch.png")  # no such image
    out = tmp_path / "s"
    with pytest.raises(ValueError) as e:
        import_annotations(ImportConfig("png", [str(folder)], "Bicycle", str(data), str(out)))
    message = str(e.value)
    assert message.startswith("3 of 3 annotation files cannot be read, so nothing was imported")
    assert all(str(folder / n) in message for n in ("img000.png", "img001.png", "nosuch.png"))
    assert not out.exists()


def test_missing_source_and_unknown_format(tmp_path, world):
    data, _, _ = world
    with pytest.raises(FileNotFoundError, match="annotation source not found"):
        import_annotations(
            ImportConfig("coco", [str(tmp_path / "x.json")], "B", str(data), str(tmp_path / "s"))
        )
    with pytest.raises(ValueError, match="unknown format 'voc'"):
        import_annotations(ImportConfig("voc", [], "B", str(data), str(tmp_path / "s")))


@pytest.mark.parametrize("fmt", ["coco", "labelme", "png"])
def test_an_import_holds_one_image_s_mask_array_at_a_time(tmp_path, world, monkeypatch, fmt):
    """A subset of 100 annotated 4032x3024 images is 1.2 GB of masks: an import keeps each
    image's mask as the PNG bytes it writes (:class:`engine.annotate.Imported`) as soon as it
    is read, whether the files hold one image each or many (COCO), and writes those bytes."""
    import gc
    import weakref

    from engine import annotate

    data, run, truth = world
    export = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e")))
    sources = {"coco": export.coco, "labelme": tmp_path / "e" / "labelme", "png": tmp_path / "p"}
    (tmp_path / "p").mkdir()
    for stem, m in truth.items():
        Image.fromarray(m.astype(np.uint8)).save(tmp_path / "p" / f"{stem}.png")
    made = annotate.Imported.of
    alive: list[weakref.ref] = []

    def of(m):
        gc.collect()
        assert [r for r in alive if r() is not None] == [], "an earlier image's array is held"
        alive.append(weakref.ref(m.mask))
        return made(m)

    monkeypatch.setattr(annotate.Imported, "of", of)
    cfg = ImportConfig(fmt, [str(sources[fmt])], "Bicycle", str(data), str(tmp_path / "s"))
    sub = import_annotations(cfg)
    assert len(alive) == 3 and sub.stems == ("img000", "img001", "img002")
    for stem, m in truth.items():  # holes: LabelMe's polygons bring them back filled
        want = ndimage.binary_fill_holes(m) if fmt == "labelme" else m
        assert np.array_equal(sub.mask(stem), want.astype(np.uint8)), stem
        assert sub.info["counts"][stem]["class_pixels"] == int(want.sum())


def test_a_subset_written_from_png_bytes_is_the_one_written_from_arrays(tmp_path):
    """:class:`EncodedLabel` is what the subset writes: the same bytes and counts as the array
    it was made of, and the same check of its values."""
    from annotations.labelmap import EncodedLabel
    from annotations.subset import write_subset

    m = np.zeros((H, W), np.uint8)
    m[5:20, 3:9], m[30:] = 1, 255
    arrays = write_subset(tmp_path / "a", "Bicycle", "test", {"img000": m}, {})
    encoded = write_subset(tmp_path / "b", "Bicycle", "test", {"img000": EncodedLabel.of(m)}, {})
    assert arrays.mask_path("img000").read_bytes() == encoded.mask_path("img000").read_bytes()
    assert arrays.info["counts"] == encoded.info["counts"]
    assert encoded.info["counts"]["img000"]["unannotated_pixels"] == 18 * W
    assert np.array_equal(EncodedLabel.of(m).decode(), m)
    m[0, 0] = 7
    for value in (m, EncodedLabel.of(m)):  # nothing is left behind, not even the folder
        with pytest.raises(
            ValueError, match=r"mask of 'img000': values must be 0, 1 or 255, found \[7\]"
        ):
            write_subset(tmp_path / "c", "Bicycle", "test", {"img000": value}, {})
        assert not (tmp_path / "c").exists()


def test_png_of_class_indices_points_to_png_value(tmp_path, world):
    """A class-index mask (Pascal VOC, a tool's "class index" export) without --png-value: the
    error names --png-value, not only --png-binary, which would read every class as this one."""
    data, _, _ = world
    src = tmp_path / "png"
    src.mkdir()
    m = np.zeros((H, W), np.uint8)
    m[:10], m[-5:] = 2, 7
    Image.fromarray(m).save(src / "img000.png")
    with pytest.raises(ValueError, match=r"found \[2, 7\]; for class-index masks .*--png-value N"):
        import_annotations(
            ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "s"))
        )


def test_png_import_modes(tmp_path, world):
    data, _, _ = world
    src = tmp_path / "png"
    src.mkdir()
    m = np.zeros((H, W), np.uint8)
    m[:10] = 1
    m[-5:] = 255
    Image.fromarray(m).save(src / "img000.png")
    sub = import_annotations(
        ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "s"))
    )
    assert np.array_equal(sub.mask("img000"), m)
    Image.fromarray(np.where(m == 1, 255, 0).astype(np.uint8)).save(src / "img000.png")
    with pytest.raises(ValueError, match="binary mode"):
        import_annotations(
            ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "s2"))
        )
    sub = import_annotations(
        ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "s3"), png_binary=True)
    )
    assert np.array_equal(sub.mask("img000"), (m == 1).astype(np.uint8))
    Image.fromarray(np.stack([m] * 3, -1)).save(src / "img000.png")  # grey, saved as RGB
    sub = import_annotations(
        ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "s4"))
    )
    assert np.array_equal(sub.mask("img000"), m)
    red = np.zeros((H, W, 3), np.uint8)
    red[:10, :, 0] = 255  # a colour mask: read as grey it held 76, a value never written
    Image.fromarray(red).save(src / "img000.png")
    for binary in (False, True):  # --png-binary took any colour for the class
        with pytest.raises(ValueError, match=r"img000\.png: a colour mask \(its channels differ\)"):
            import_annotations(
                ImportConfig(
                    "png", [str(src)], "Bicycle", str(data), str(tmp_path / "s5"), png_binary=binary
                )  # fmt: skip
            )


def test_a_16_bit_png_mask_keeps_its_values(tmp_path, world):
    """A 16-bit mask (a tool's class-index export of over 255 classes, or 0/65535): Pillow's
    conversion clipped every value above 255 to 255, so class 300's pixels and a 65535 mask
    were read as unannotated without a word. The values are read as they are."""
    from annotations.interchange import png_to_mask

    data, _, _ = world
    src = tmp_path / "png"
    src.mkdir()
    m = np.zeros((H, W), np.uint16)
    m[:10], m[10:12], m[-5:] = 1, 300, 255
    Image.fromarray(m).save(src / "img000.png")
    with Image.open(src / "img000.png") as img:
        assert img.mode == "I;16"
    with pytest.raises(ValueError, match=r"found \[300\]; for class-index masks"):
        import_annotations(
            ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "s"))
        )
    sub = import_annotations(
        ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "s2"), png_value=1)
    )
    want = np.where(m == 1, 1, np.where(m == 255, 255, 0)).astype(np.uint8)
    assert np.array_equal(sub.mask("img000"), want)  # class 300 is another class: 0
    assert sub.info["other_labels"] == {"value 300": 1}
    Image.fromarray(np.where(m == 1, 65535, 0).astype(np.uint16)).save(src / "img000.png")
    with pytest.raises(ValueError, match=r"found \[65535\]; .*--png-binary"):
        import_annotations(
            ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "s3"))
        )
    sub = import_annotations(
        ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "s4"), png_binary=True)
    )
    assert np.array_equal(sub.mask("img000"), (m == 1).astype(np.uint8))
    Image.fromarray(m == 1).save(src / "img000.png")  # bilevel ("1"): read as 0 and 1
    read = png_to_mask(src / "img000.png", {"img000": (H, W)}, value=2)
    assert read.others == {"value 1": 1} and read.mask.dtype == np.uint8


def test_a_png_mask_of_jpeg_data_is_refused_in_every_mode(tmp_path, world):
    """A 0/255 mask saved as JPEG under a .png name: --png-binary took the ringing JPEG leaves
    along every edge (values 1 to 20 or so) for the class, a mask grown by a pixel and
    speckled, without a word; without it, the error pointed to --png-binary."""
    data, _, _ = world
    src = tmp_path / "png"
    src.mkdir()
    m = np.zeros((H, W), np.uint8)
    m[10:30, 20:40] = 255
    Image.fromarray(m).save(src / "img000.png", format="JPEG", quality=90)
    for binary in (False, True):
        with pytest.raises(ValueError) as e:
            import_annotations(
                ImportConfig(
                    "png", [str(src)], "Bicycle", str(data), str(tmp_path / "s"), png_binary=binary
                )  # fmt: skip
            )
        assert str(e.value) == (
            f"{src / 'img000.png'}: holds JPEG data, not PNG: its lossy compression changes "
            "mask values along every edge (save masks as PNG)"
        )


def test_an_image_annotated_in_two_sources_is_refused_naming_both(tmp_path, world):
    """Two passes of corrections given at once (two folders, or a folder and a COCO file):
    which one is right is the user's call, so nothing is imported and both files are named."""
    data, _, _ = world
    m = np.zeros((H, W), np.uint8)
    m[:10] = 1
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        Image.fromarray(m).save(tmp_path / name / "img000.png")
    cfg = ImportConfig("png", [str(tmp_path / "first"), str(tmp_path / "second")], "Bicycle",
                       str(data), str(tmp_path / "s"))  # fmt: skip
    with pytest.raises(ValueError, match=r"second/img000\.png: image 'img000' is annotated twice "
                       r"\(also in .*first/img000\.png\)"):  # fmt: skip
        import_annotations(cfg)
    assert not (tmp_path / "s").exists()
    tasks = [  # two Label Studio tasks of one image ("also in" named the same file)
        {"id": k, "data": {"image": "img000.jpg"}, "annotations": [{"id": k, "result": []}]}
        for k in (1, 2)
    ]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    cfg = ImportConfig("labelstudio", [str(tmp_path / "ls.json")], "Bicycle", str(data),
                       str(tmp_path / "s"))  # fmt: skip
    with pytest.raises(ValueError) as e:
        import_annotations(cfg)
    assert str(e.value) == (
        f"{tmp_path / 'ls.json'}: image 'img000' is annotated twice in this file (task 1: "
        "annotation 1; task 2: annotation 2)"
    )


def _index_map() -> np.ndarray:
    """An index mask of many classes, as Pascal VOC's: bicycle (2) top left, car (7) below."""
    index = np.zeros((H, W), np.uint8)
    index[:10, :20] = 2
    index[20:30] = 7
    return index


def test_index_masks_of_many_classes_import_by_the_class_s_value(tmp_path, world, caplog):
    """Pascal VOC's SegmentationClass: a palette PNG whose indices are classes (bicycle 2, car
    7, void 255): --png-value 2 makes bicycle 1 and void unannotated; other classes are left
    out and said; a value no mask holds, while others are there, is an error saying so."""
    data, _, _ = world
    src = tmp_path / "SegmentationClass"
    src.mkdir()
    index = _index_map()
    index[9:11, :21] = 255  # VOC's void band along object edges
    voc = Image.fromarray(index, mode="P")
    voc.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [64] * (3 * 253))
    voc.save(src / "img000.png")
    with caplog.at_level("WARNING", logger="engine.annotate"):
        sub = import_annotations(
            ImportConfig(
                "png", [str(src)], "Bicycle", str(data), str(tmp_path / "s"), png_value=2
            )  # fmt: skip
        )
    want = np.where(index == 2, 1, np.where(index == 255, 255, 0)).astype(np.uint8)
    assert np.array_equal(sub.mask("img000"), want)
    assert sub.info["other_labels"] == {"value 7": 1}
    assert "other classes than Bicycle (a subset holds one class): 'value 7' (1)" in caplog.text
    with pytest.raises(ValueError, match=r"no annotation of 'Bicycle' in 1 file, only of 'value "
                       r"2' \(1\), 'value 7' \(1\); give --png-value the value of 'Bicycle'"):  # fmt: skip
        import_annotations(
            ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "s2"), png_value=9)
        )
    for settings, message in [
        ({"png_value": 255}, "1..254 \\(0 is background, 255 unannotated\\), not 255"),
        ({"png_value": -1}, "1..254 \\(0 is background, 255 unannotated\\), not -1"),
        ({"png_value": 2, "png_binary": True}, "exclude each other; give one"),
        ({"png_value": 2, "format": "coco"}, "--png-value reads PNG masks; the sources are coco"),
    ]:
        cfg = ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "s3"))
        with pytest.raises(ValueError, match=message):
            import_annotations(dataclasses.replace(cfg, **settings))
        assert not (tmp_path / "s3").exists()


def test_subset_json_records_how_png_masks_were_read_so_a_reimport_gives_the_same_masks(
    tmp_path, world
):
    """--png-value (and --png-binary) make other masks of the same PNGs; subset.json records
    them (``import_options``), and an import given only what the record says writes the same
    mask bytes. Before, the record named the format only: read back without --png-value the
    index masks were refused, with --png-binary every class became the new one."""
    data, _, _ = world
    src = tmp_path / "voc"
    src.mkdir()
    index = _index_map()
    Image.fromarray(index).save(src / "img000.png")
    first = import_annotations(
        ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "a"), png_value=2)
    )
    record = json.loads((tmp_path / "a" / "subset.json").read_text())
    assert record["import_options"] == {"png_binary": False, "png_value": 2}
    again = ImportConfig(
        record["import_format"],
        sorted({str(Path(p).parent) for p in record["sources"].values()}),
        record["class_name"],
        record["data"],
        str(tmp_path / "b"),
        record["split"],
        **record["import_options"],
    )
    import_annotations(again)
    assert _subset_bytes(tmp_path / "b" / "masks") == _subset_bytes(tmp_path / "a" / "masks")
    assert np.array_equal(first.mask("img000"), (index == 2).astype(np.uint8))
    binary = tmp_path / "c"
    import_annotations(ImportConfig("png", [str(src)], "Bicycle", str(data), str(binary),
                                    png_binary=True))  # fmt: skip
    assert json.loads((binary / "subset.json").read_text())["import_options"] == {
        "png_binary": True,
        "png_value": None,
    }


def _subset_bytes(root):  # the lock file records each import's start: not the subset's
    return {
        p.relative_to(root): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_import_refuses_to_change_or_remove_corrected_masks_without_force(tmp_path, world):
    """An uncorrected export imported over a corrected subset replaced the corrections without a
    word (it warned only that the import equals the pseudo labels): refused now, naming the
    subset and the masks, unless --force; the same masks again, or one image more, are not."""
    data, _, _ = world
    src = tmp_path / "png"
    src.mkdir()
    m = np.zeros((H, W), np.uint8)
    m[:10] = 1
    for stem in ("img000", "img001", "img002"):
        Image.fromarray(m).save(src / f"{stem}.png")
    out = tmp_path / "s"
    import_annotations(ImportConfig("png", [str(src)], "Bicycle", str(data), str(out)))
    before = _subset_bytes(out)
    again = import_annotations(ImportConfig("png", [str(src)], "Bicycle", str(data), str(out)))
    masks_before = {k: v for k, v in before.items() if k.name != "subset.json"}
    assert again.stems == ("img000", "img001", "img002")
    assert {k: v for k, v in _subset_bytes(out).items() if k.name != "subset.json"} == masks_before
    before = _subset_bytes(out)
    (src / "img002.png").unlink()
    m[:20] = 1  # img000 and img001 drawn otherwise, img002 left out
    for stem in ("img000", "img001"):
        Image.fromarray(m).save(src / f"{stem}.png")
    with pytest.raises(FileExistsError) as e:
        import_annotations(ImportConfig("png", [str(src)], "Bicycle", str(data), str(out)))
    assert str(e.value) == (
        f"{out}: this import would change 2 masks (img000, img001) and remove 1 mask of images "
        "not in these files (img002) of the annotated subset of Bicycle (split test, 3 images); "
        "give the files of every batch in one call, import into another folder, or replace them "
        "on purpose with --force"
    )
    assert _subset_bytes(out) == before
    forced = import_annotations(
        ImportConfig("png", [str(src)], "Bicycle", str(data), str(out), replace=True)
    )
    assert forced.stems == ("img000", "img001") and np.array_equal(forced.mask("img000"), m)


def test_import_refusal_of_a_batch_alone_says_to_give_every_batch(tmp_path, world):
    """A second batch imported alone (only masks removed): the refusal said "import into another
    folder" (a second subset of the class, which --val-subset refuses) or --force (batch 1
    gone); it says to give the files of every batch in one call, which then writes both."""
    data, _, _ = world
    m = np.zeros((H, W), np.uint8)
    m[:10] = 1
    batches = [tmp_path / "b1", tmp_path / "b2"]
    for batch, stems in zip(batches, (("img000", "img001"), ("img002",)), strict=True):
        batch.mkdir()
        for stem in stems:
            Image.fromarray(m).save(batch / f"{stem}.png")
    out = tmp_path / "s"
    import_annotations(ImportConfig("png", [str(batches[0])], "Bicycle", str(data), str(out)))
    with pytest.raises(FileExistsError) as e:
        import_annotations(ImportConfig("png", [str(batches[1])], "Bicycle", str(data), str(out)))
    assert str(e.value) == (
        f"{out}: this import would remove 2 masks of images not in these files (img000, "
        "img001) of the annotated subset of Bicycle (split test, 2 images); give the files of "
        "every batch in one call, or replace them on purpose with --force"
    )
    both = import_annotations(
        ImportConfig("png", [str(b) for b in batches], "Bicycle", str(data), str(out))
    )
    assert both.stems == ("img000", "img001", "img002")


@pytest.mark.parametrize(
    "edit",
    [{"format": "mass-engine/subset/v2"}, {"stems": "img000"}, {"stems": None}],
    ids=["other-format", "stems-not-a-list", "no-stems"],
)
def test_import_replaces_a_subset_json_it_cannot_read_without_force(tmp_path, world, edit):
    """A subset.json of another format, or with its stems missing or not a list, stopped every
    import into the folder unless --force (the error said to import again: circular); the
    import replaces it again, as write_subset always did."""
    data, _, _ = world
    src = tmp_path / "png"
    src.mkdir()
    m = np.zeros((H, W), np.uint8)
    m[:10] = 1
    Image.fromarray(m).save(src / "img000.png")
    out = tmp_path / "s"
    import_annotations(ImportConfig("png", [str(src)], "Bicycle", str(data), str(out)))
    info = json.loads((out / "subset.json").read_text())
    info.update(edit)
    if info["stems"] is None:
        del info["stems"]
    (out / "subset.json").write_text(json.dumps(info))
    m[:20] = 1
    Image.fromarray(m).save(src / "img000.png")
    again = import_annotations(ImportConfig("png", [str(src)], "Bicycle", str(data), str(out)))
    assert again.stems == ("img000",) and np.array_equal(again.mask("img000"), m)
    assert json.loads((out / "subset.json").read_text())["format"] == "mass-engine/subset/v1"


def _png_masks(tmp_path, stems):
    """``tmp_path/png`` holding the same mask (rows 0-9 the class) for each of ``stems``, as a
    tool's PNG export: the folder and the mask."""
    src = tmp_path / "png"
    src.mkdir()
    m = np.zeros((H, W), np.uint8)
    m[:10] = 1
    for stem in stems:
        Image.fromarray(m).save(src / f"{stem}.png")
    return src, m


def test_import_writes_over_a_damaged_mask_without_force(tmp_path, world):
    """A mask of the subset that cannot be read (damaged on disk) was listed as one the import
    "would change", refused without --force; writing over it loses nothing (a repair)."""
    data, _, _ = world
    src, m = _png_masks(tmp_path, ("img000", "img001"))
    out = tmp_path / "s"
    import_annotations(ImportConfig("png", [str(src)], "Bicycle", str(data), str(out)))
    (out / "masks" / "img000.png").write_bytes(b"\x89PNG damaged")
    again = import_annotations(ImportConfig("png", [str(src)], "Bicycle", str(data), str(out)))
    assert np.array_equal(again.mask("img000"), m) and again.stems == ("img000", "img001")


def test_import_into_a_subset_folder_replaces_only_its_own_class(
    tmp_path, world, monkeypatch, caplog
):
    from annotations import subset as subset_module

    data, _, _ = world
    src, m = _png_masks(tmp_path, ("img000", "img001"))
    out = tmp_path / "s"
    first = import_annotations(ImportConfig("png", [str(src)], "Bicycle", str(data), str(out)))
    assert first.stems == ("img000", "img001")
    before = _subset_bytes(out)
    # another class into the same folder: refused, the Bicycle subset untouched
    with pytest.raises(FileExistsError, match=r"already the annotated subset of Bicycle \(split"):
        import_annotations(ImportConfig("png", [str(src)], "Car", str(data), str(out)))
    with pytest.raises(FileExistsError, match="already the annotated subset of Bicycle"):
        subset_module.write_subset(out, "Bicycle", "val", {"img000": m}, {})  # another split
    assert _subset_bytes(out) == before
    # a write that fails halfway leaves the old subset whole, and no staging folder behind
    real = subset_module.atomic_write_bytes  # an import writes its masks' PNG bytes
    calls = []

    def failing(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(f"{path}: no space left on device")
        return real(path, data)

    monkeypatch.setattr(subset_module, "atomic_write_bytes", failing)
    with pytest.raises(OSError, match="no space left"):
        import_annotations(ImportConfig("png", [str(src)], "Bicycle", str(data), str(out)))
    monkeypatch.undo()
    assert _subset_bytes(out) == before and sorted(p.name for p in out.iterdir()) == [
        ".lock",
        "masks",
        "subset.json",
    ]
    # the same class again (corrected annotations, one image fewer): replaced, nothing stale
    (src / "img001.png").unlink()
    m[:20] = 1
    Image.fromarray(m).save(src / "img000.png")
    caplog.clear()
    written = []  # subset.json was written twice when the import warned (the second: warnings)
    for module in (subset_module,):  # engine.annotate.importing writes no JSON of its own
        real_json = module.atomic_write_json
        monkeypatch.setattr(
            module,
            "atomic_write_json",
            lambda path, *a, real_json=real_json, **k: (
                written.append(Path(path).name),
                real_json(path, *a, **k),
            )[1],
        )
    again = import_annotations(
        ImportConfig("png", [str(src)], "bicycle", str(data), str(out), replace=True)
    )
    monkeypatch.undo()
    assert written == ["subset.json"]
    assert again.stems == ("img000",) and np.array_equal(again.mask("img000"), m)
    # said, with what to do: a second batch imported alone lost the first without a word
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{out}: 1 image of the subset is not in these files, so its mask was removed: "
        "img001; to keep it, import the files of every batch in one call"
    ]
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["img000.png"]
    assert sorted(p.name for p in out.iterdir()) == [".lock", "masks", "subset.json"]
    # and kept in subset.json, shown by engine info: an import under nohup, its console gone,
    # left no trace of the masks it removed (before the forty-fifth round)
    kept = json.loads((out / "subset.json").read_text())["warnings"]
    assert kept == again.info["warnings"] and kept[0].startswith(f"{out}: 1 image of the subset")
    from engine.info import render_subset

    shown = [str(r) for r in render_subset(out)[0][1:]]
    assert f"warning (engine annotate import): {kept[0]}" in shown
    # on purpose: --replace writes another class over it
    car = import_annotations(
        ImportConfig("png", [str(src)], "Car", str(data), str(out), replace=True)
    )
    assert read_subset(out).class_name == "Car" and car.stems == ("img000",)


def test_import_refuses_a_folder_that_is_no_subset(tmp_path, world):
    data, _, _ = world
    src = tmp_path / "png"
    src.mkdir()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(src / "img000.png")
    with pytest.raises(FileExistsError, match="holds files but no subset.json"):
        import_annotations(ImportConfig("png", [str(src)], "Bicycle", str(data), str(data)))
    assert not (data / "subset.json").exists() and not (data / "masks").exists()
    (tmp_path / "empty").mkdir()  # an empty folder is fine
    sub = import_annotations(
        ImportConfig("png", [str(src)], "Bicycle", str(data), str(tmp_path / "empty"))
    )
    assert sub.stems == ("img000",)


def test_an_unreadable_subset_json_is_refused_whatever_the_class(tmp_path):
    # its placeholder class and split ("?") matched a subset written as class "?" of split "?",
    # which then read the record that was never read: UnboundLocalError, not the refusal
    out = tmp_path / "s"
    out.mkdir()
    (out / "subset.json").write_text("{not json")
    m = np.zeros((H, W), np.uint8)
    for name, split in (("Bicycle", "test"), ("?", "?")):
        with pytest.raises(FileExistsError, match=r"already the annotated subset of \? \(split"):
            write_subset(out, name, split, {"img000": m}, {})
    assert (out / "subset.json").read_text() == "{not json"
    sub = write_subset(out, "?", "?", {"img000": m}, {}, replace=True)  # on purpose: replaced
    assert sub.stems == ("img000",)


def test_cli_import_another_class_into_a_subset_folder(tmp_path, world):
    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    data, _, _ = world
    src = tmp_path / "png"
    src.mkdir()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(src / "img000.png")
    args = ["annotate", "import", str(src), "--format", "png", "--data", str(data)]
    out = ["--out", str(tmp_path / "s")]
    assert runner.invoke(app, [*args, "--class", "Bicycle", *out]).exit_code == 0
    res = runner.invoke(app, [*args, "--class", "Car", *out])
    assert res.exit_code == 2 and "already the annotated subset of Bicycle" in res.output
    res = runner.invoke(app, [*args, "--class", "Car", *out, "--replace"])
    assert res.exit_code == 0 and read_subset(tmp_path / "s").class_name == "Car"


def test_cli_prints_class_names_as_typed(tmp_path, world):
    """rich read `[old]` in a class name as markup (dropped) and `:car:` as an emoji code (a car
    drawn): `annotated subset of cone : ...` and `x🚗`, in every command's messages."""
    from typer.testing import CliRunner

    from cli import app

    data, _, _ = world
    src = tmp_path / "png"
    src.mkdir()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(src / "img000.png")
    for name in ("cone [old]", "x:car:"):
        args = ["annotate", "import", str(src), "--format", "png", "--data", str(data)]
        out = tmp_path / f"s{len(name)}"
        res = CliRunner().invoke(app, [*args, "--class", name, "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert f"annotated subset of {name}: 1 image" in " ".join(res.output.split())
        assert read_subset(out).class_name == name


def test_a_subset_keeps_the_class_spelled_as_its_annotation_files(tmp_path, world):
    """``--class BICYCLE`` on files exported from a run of Bicycle (or a CVAT project whose
    label is Bicycle) made a subset of BICYCLE, its report and exports titled so, where the
    spelling recorded first is the one kept everywhere else. Files that spell the class two
    ways, and PNG masks, which name none, keep ``--class`` as given."""
    data, run, _ = world
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e"), progress=False))
    for fmt, src in (("coco", res.coco), ("labelme", tmp_path / "e" / "labelme")):
        cfg = ImportConfig(fmt, [str(src)], " BICYCLE ", str(data), str(tmp_path / f"s-{fmt}"))
        sub = import_annotations(cfg)
        assert sub.class_name == read_subset(sub.root).class_name == "Bicycle", fmt
    two = tmp_path / "two"
    shutil.copytree(tmp_path / "e" / "labelme", two)
    doc = json.loads((two / "img001.json").read_text())
    for shape in doc["shapes"]:
        shape["label"] = "bicycle"
    (two / "img001.json").write_text(json.dumps(doc))
    sub = import_annotations(
        ImportConfig("labelme", [str(two)], "BICYCLE", str(data), str(two) + "s")
    )
    assert sub.class_name == "BICYCLE"
    png = tmp_path / "png"
    png.mkdir()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(png / "img000.png")
    sub = import_annotations(ImportConfig("png", [str(png)], "BICYCLE", str(data), str(png) + "s"))
    assert sub.class_name == "BICYCLE"


def test_a_subset_class_compares_case_folded(tmp_path, world):
    """``engine compare --class STRASSE`` on a subset of Straße was refused (``this subset
    annotates Straße, not STRASSE``): the subset lower-cased names where the taxonomy, which
    found the class, case-folds them. An import of STRASSE into it is the same class too."""
    from annotations.subset import check_subset_class

    data, _, _ = world
    src = tmp_path / "png"
    src.mkdir()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(src / "img000.png")
    out = str(tmp_path / "s")
    sub = import_annotations(ImportConfig("png", [str(src)], "Straße", str(data), out))
    check_subset_class(sub, "STRASSE")
    again = import_annotations(ImportConfig("png", [str(src)], " STRASSE ", str(data), out))
    assert again.class_name == "STRASSE"  # spaces around dropped, as engine label drops them
    assert read_subset(out).class_name == "STRASSE"
    with pytest.raises(ValueError, match="annotates STRASSE, not Strasse2"):
        check_subset_class(again, "Strasse2")


# -- pick --------------------------------------------------------------------------------------
def _stats(n):
    return [ImageStats(f"s{i:02d}", i / n, i % 4, int(i % 7 == 0)) for i in range(n)]


def test_pick_empty_and_zero():
    assert pick_images([], 5) == []
    assert pick_images(_stats(10), 0) == []


def test_pick_mix_is_seeded_and_distinct():
    stats = _stats(40)
    a = pick_images(stats, 10, seed=3)
    assert a == pick_images(stats, 10, seed=3)
    assert len({p.stem for p in a}) == 10
    reasons = [p.reason for p in a]
    assert reasons.count("low-confidence") == 4 and reasons.count("many-or-tiny") == 3
    assert [p.stem for p in a if p.reason == "low-confidence"] == ["s00", "s01", "s02", "s03"]
    assert {p.stem for p in pick_images(stats, 10, seed=4)} != {p.stem for p in a}


def test_pick_all_nan_confidence_falls_back_to_random():
    stats = [ImageStats(f"s{i}", math.nan, 0, 0) for i in range(6)]
    picks = pick_images(stats, 4, seed=0)
    assert len(picks) == 4 and all(p.reason == "random" for p in picks)
    assert len(pick_images(stats, 99)) == 6


def test_pick_for_annotation_writes_list(tmp_path, world):
    _, run, _ = world
    picks, out = pick_for_annotation(
        PickConfig(run=str(run), n=2, low_confidence=0.5, many_or_tiny=0.5)
    )
    assert out.read_text().split() == [p.stem for p in picks]
    assert picks[0].stem == "img000" and picks[0].reason == "low-confidence"  # confidence 90/255
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["backend"] == "simulated" and doc["picks"][0]["num_instances"] == 2
    # the mean confidence as the 0..1 fraction of its map's 0..255 values, from the map
    assert (doc["picks"][0]["confidence"], doc["picks"][0]["confidence_from"]) == (0.3529, "map")
    assert "packages" in doc["environment"]  # reproducible: versions and machine recorded


def test_a_pick_record_says_which_run_and_list_and_is_picked_again_from_it(
    tmp_path, world, monkeypatch
):
    """The record kept ``out: None`` for the default list and the run as typed (``run``): read
    from another folder it named neither. With ``out`` as written, the run resolved and its
    run.json's digest, its settings pick the same list again."""
    _, run, _ = world
    monkeypatch.chdir(tmp_path)
    _, out = pick_for_annotation(PickConfig(run="run", n=2, progress=False))
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["config"]["out"] == str(Path("run") / "pick-test.txt")
    assert doc["run_resolved"] == str(run.resolve())
    raw = (run / "run.json").read_bytes()
    assert doc["run_json_sha256"] == hashlib.sha256(raw).hexdigest()
    picked = out.read_bytes()
    monkeypatch.chdir(run)  # a colleague elsewhere, with the record alone
    cfg = {**doc["config"], "run": doc["run_resolved"], "out": str(tmp_path / "again.txt")}
    _, again = pick_for_annotation(PickConfig(**cfg, progress=False))
    assert again.read_bytes() == picked


def test_a_library_pick_config_is_held_to_the_clis_bounds(tmp_path, world):
    """``-n`` (1 at least) and ``--seed`` (0 at least) were the CLI's checks only:
    ``PickConfig(n=0)`` wrote an empty list over ``RUN/pick-test.txt``, and ``seed=-1`` failed
    in NumPy (``expected non-negative integer``), naming no setting."""
    _, run, _ = world
    pick_for_annotation(PickConfig(run=str(run), n=2))
    listed = (run / "pick-test.txt").read_text()
    for setting, said in (({"n": 0}, "n must be >= 1 (images to choose), got 0"),
                          ({"seed": -1}, "seed must be >= 0, got -1")):  # fmt: skip
        with pytest.raises(ValueError) as err:
            pick_for_annotation(PickConfig(run=str(run), **setting))
        assert str(err.value) == said
    assert (run / "pick-test.txt").read_text() == listed  # the list written before is kept


def test_the_annotate_commands_defaults_are_their_configs(tmp_path):
    """A library caller's ``PickConfig(run)``, ``ExportConfig(run, out)`` or ``ImportConfig``
    does what the command given no option does, and the bounds themselves are taken (``-n 1``,
    ``--seed 0``)."""
    import inspect

    from engine.cli import annotate as commands

    pick = inspect.signature(commands.annotate_pick).parameters
    cfg = PickConfig(str(tmp_path))
    assert pick["split"].default.default == [cfg.split]
    for name in ("n", "seed", "low_confidence", "many_or_tiny", "out", "progress"):
        assert pick[name].default.default == getattr(cfg, name), name
    assert (PickConfig(str(tmp_path), n=1, seed=0).n, cfg.tiny_fraction) == (1, 1e-3)
    export = inspect.signature(commands.annotate_export).parameters
    cfg = ExportConfig(str(tmp_path), str(tmp_path / "out"))
    assert tuple(export["fmt"].default.default) == cfg.formats
    for name in ("split", "data", "mask_format", "simplify", "image_url", "force", "progress"):
        assert export[name].default.default == getattr(cfg, name), name
    imp = inspect.signature(commands.annotate_import).parameters
    cfg = ImportConfig("auto", [], "car", str(tmp_path), str(tmp_path / "sub"))
    assert imp["split"].default.default == [cfg.split]
    for name in ("png_binary", "png_value", "replace", "progress"):
        assert imp[name].default.default == getattr(cfg, name), name


def test_pick_refuses_a_list_path_its_record_would_overwrite_or_a_folder(tmp_path, world):
    """``--out pick.json`` wrote the list, then its JSON record over it; ``--out DIR`` named a
    hidden temporary file in DIR's parent. Both are refused before the split is read."""
    _, run, _ = world
    for out, said in (
        (tmp_path / "pick.json", "the list is a text file and its record is written beside it"),
        (tmp_path, "is a folder; --out names the list file"),
    ):
        with pytest.raises(ValueError, match=said) as e:
            pick_for_annotation(PickConfig(run=str(run), n=2, out=str(out)))
        assert str(e.value).startswith(f"{out}: ")
    assert not (tmp_path / "pick.json").exists()


def test_a_pick_rerun_killed_before_its_record_leaves_no_record_of_the_earlier_list(
    tmp_path, world
):
    """``engine annotate pick`` run again over an earlier list and killed (``kill -9``) as it
    put its new record in, the new list written: the earlier ``pick.json`` stayed beside it,
    and engine info read it as the new list's ("2 images", "1 low-confidence") where the list
    held 1; its split decided the export of the new list (a pick of another split exported as
    the earlier one's, refused). The earlier record goes before the new list is written: a
    list without a record, said as one; the rerun writes both."""
    from typer.testing import CliRunner

    from cli import app
    from engine.annotate import list_split
    from tests.loop_helpers import KILLED_AT, run_killed

    _, run, _ = world
    out = tmp_path / "pick.txt"
    args = ["annotate", "pick", str(run), "--out", str(out), "--no-progress"]
    assert CliRunner().invoke(app, [*args, "-n", "2"]).exit_code == 0
    run_killed(KILLED_AT, "pick.json", *args, "-n", "1")
    assert len(out.read_text().split()) == 1  # the new list in place, its record not
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    assert f"{out}: a list of 1 image name (no pick record pick.json beside it)" in res.output
    assert list_split(out) is None
    assert CliRunner().invoke(app, [*args, "-n", "1"]).exit_code == 0
    assert len(json.loads(out.with_suffix(".json").read_text())["picks"]) == 1


def test_a_pick_rerun_that_fails_writing_its_list_keeps_the_earlier_record(
    tmp_path, world, monkeypatch
):
    """``engine annotate pick`` run again over an earlier list, its new list refused (a full
    disk): the earlier ``pick.json`` was removed before the list was written (so that a kill
    between the two leaves no record of the earlier list beside the new one), and the earlier
    list, left as it was, lost its record (its split, its reasons). Now put back."""
    import errno

    import engine.annotate.pick as annotate

    _, run, _ = world
    out = tmp_path / "pick.txt"
    pick_for_annotation(PickConfig(run=str(run), n=2, out=str(out)))
    earlier = (out.read_bytes(), out.with_suffix(".json").read_bytes())
    real = annotate.atomic_write_text

    def full(path, text):
        if Path(path) == out:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))
        return real(path, text)

    monkeypatch.setattr(annotate, "atomic_write_text", full)
    with pytest.raises(OSError, match="No space left"):
        pick_for_annotation(PickConfig(run=str(run), n=1, out=str(out)))
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == earlier

    def interrupted(path, text):  # a Ctrl-C just after the new list's rename
        real(path, text)
        if Path(path) == out:
            raise KeyboardInterrupt

    monkeypatch.setattr(annotate, "atomic_write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pick_for_annotation(PickConfig(run=str(run), n=1, out=str(out)))
    assert len(out.read_text().split()) == 1  # the new list: not the earlier record beside it
    assert not out.with_suffix(".json").exists()


def test_a_pick_list_under_a_file_is_said_so(tmp_path, world):
    """``annotate pick --out FILE/pick.txt`` (a file where a folder should be): the removal of
    an earlier record before the list said ``FILE/pick.json: Not a directory``, naming a file
    the command never meant to write; now the list's write says it, as before that removal."""
    from typer.testing import CliRunner

    from cli import app

    _, run, _ = world
    file = tmp_path / "afile"
    file.write_text("x")
    args = ["annotate", "pick", str(run), "--out", str(file / "pick.txt"), "-n", "1"]
    res = CliRunner().invoke(app, [*args, "--no-progress"])
    assert res.exit_code == 2, res.output
    assert f"error: {file}: is a file, not a folder" in res.output, res.output


@pytest.mark.parametrize(
    "where, said",
    [
        ("afile/pick.txt", "{t}/afile: is a file, not a folder"),
        ("afile/more/pick.txt", "{t}/afile: is a file, not a folder"),
        ("data/images/test/pick.txt", "{t}/data/images/test: it is a split folder of the dataset"),
        ("data/annotations/pick.txt", "{t}/data/annotations: it is the annotations/ folder of"),
        ("run/labels/test/pick.txt", "{t}/run/labels/test: it is a split folder (labels/test) of"),
    ],
)
def test_a_pick_list_out_is_checked_before_a_pseudo_label_is_read(
    tmp_path, world, monkeypatch, where, said
):
    """``annotate pick --out`` is checked first, as every command's ``--out`` is: a file where
    a folder should be was said only after the whole split's pseudo labels were read (minutes
    on a large run), and a list in a dataset's split folder or a label run's ``labels/test``
    was written there, among the split's files. Now refused before anything is read."""
    from typer.testing import CliRunner

    import engine.annotate.pick as annotate
    from cli import app

    _, run, _ = world
    (tmp_path / "afile").write_text("x")
    read = []
    monkeypatch.setattr(annotate, "image_stat", lambda *a, **k: read.append(a[2]))
    args = ["annotate", "pick", str(run), "--out", str(tmp_path / where), "--no-progress"]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()).startswith(f"error: {said.format(t=tmp_path)}"), res.output
    assert read == [] and not (tmp_path / where).exists()


def test_an_export_killed_after_its_last_rename_is_noted_by_engine_info(
    tmp_path, world, monkeypatch
):
    """An ``export --force`` killed after its last rename, before removing its staging folder,
    left ``.export.new-*/`` holding the earlier export's files it replaced: engine info showed
    the export and said nothing of it. Now a note names it, its size, and the command whose
    next run removes it (an export refused without --force too)."""
    from typer.testing import CliRunner

    import annotations.fileio.swaps as swaps
    from cli import app

    _, run, _ = world
    out = tmp_path / "e"
    args = ["annotate", "export", str(run), "--out", str(out), "--no-progress"]
    assert CliRunner().invoke(app, args).exit_code == 0
    real = swaps.shutil.rmtree
    monkeypatch.setattr(  # killed before the staging folder goes
        swaps.shutil, "rmtree", lambda p, *a, **k: None if ".export.new-" in str(p) else real(p)
    )
    assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0
    monkeypatch.setattr(swaps.shutil, "rmtree", real)
    (left,) = out.glob(".export.new-*")
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    assert re.search(
        rf"note: {left.name}/ \(\d+\.\d MB: the earlier export's files it replaced\) left by an "
        rf"export killed as it finished, its files in: the next engine annotate export into "
        rf"{re.escape(str(out))} removes it$",
        " ".join(res.output.split()),
    ), res.output
    assert CliRunner().invoke(app, args).exit_code == 2  # refused: an earlier export
    assert not left.exists()


# -- CLI ---------------------------------------------------------------------------------------
def test_cli_pick_export_import(tmp_path, world):
    from typer.testing import CliRunner

    from cli import app

    data, run, truth = world
    r = CliRunner()
    pick = ["annotate", "pick", str(run), "-n", "2", "--out", str(tmp_path / "p.txt")]
    res = r.invoke(app, [*pick, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "picked 2 images" in res.output and "fewer than" not in res.output
    picked = (tmp_path / "p.txt").read_text()
    res = r.invoke(
        app, ["annotate", "pick", str(run), "-n", "50", "--out", str(tmp_path / "a.txt")]
    )
    text = " ".join(res.output.split())  # a split smaller than asked for: said, not only counted
    assert res.exit_code == 0 and "every image of split 'test', fewer than the 50 asked for" in text
    # the run as an option, as earlier versions spelt it: the same pick
    old = ["annotate", "pick", "--run", str(run), "-n", "2", "--out", str(tmp_path / "q.txt")]
    assert r.invoke(app, old).exit_code == 0 and (tmp_path / "q.txt").read_text() == picked
    shares = "the low-confidence and many-or-tiny shares (--low-confidence, --many-or-tiny)"
    for args, error in (
        ([], "give the label run directory: engine annotate pick RUN"),
        ([str(run), "--run", str(tmp_path)], "two label runs given"),
        ([str(run), "--low-confidence", "0.8"], f"{shares} must be >= 0 and sum to <= 1 (the"),
        ([str(run), "--low-confidence", "nan"], f"{shares} must be >= 0 and sum to <= 1 (the"),
    ):
        res = r.invoke(app, ["annotate", "pick", *args])
        assert res.exit_code == 2 and res.output.startswith(f"error: {error}"), res.output
    export = ["annotate", "export", str(run), "--out", str(tmp_path / "e")]
    res = r.invoke(app, [*export, "--images", str(tmp_path / "p.txt"), "--no-progress"])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, export)  # again, every image: the first export's files are kept
    assert res.exit_code == 2 and res.output.startswith("error: ") and "--force" in res.output
    assert len(json.loads((tmp_path / "e" / "coco.json").read_text())["images"]) == 2
    res = r.invoke(app, [*export, "--images", str(tmp_path / "p.txt"), "--force"])
    assert res.exit_code == 0, res.output
    res = r.invoke(
        app,
        [
            "annotate",
            "import",
            str(tmp_path / "e" / "coco.json"),
            "--format",
            "coco",
            "--class",
            "Bicycle",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "sub"),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "read annotations" not in res.output  # --no-progress
    again = ["annotate", "import", str(tmp_path / "e" / "coco.json"), "--class", "Bicycle"]
    res = r.invoke(app, [*again, "--data", str(data), "--out", str(tmp_path / "sub3")])
    assert res.exit_code == 0, res.output  # a COCO file's images counted as they are read
    assert re.search(r"read annotations .* 2/\?", res.output), res.output
    assert re.search(r"write masks .* 2/2", res.output), res.output
    sub = read_subset(tmp_path / "sub")
    assert len(sub.stems) == 2
    for stem in sub.stems:
        assert np.array_equal(sub.mask(stem), truth[stem].astype(np.uint8))
    res = r.invoke(
        app,
        [
            "annotate",
            "import",
            str(tmp_path / "nothing.json"),
            "--format",
            "coco",
            "--class",
            "Bicycle",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "sub2"),
        ],
    )
    assert res.exit_code == 2 and "annotation source not found" in res.output


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        (["coco", "c.json"], "coco: annotation source not found (to name the format, use --format "
         "coco)"),
        (["YOLO", "c.json"], "YOLO: annotation source not found (to name the format, use --format "
         "yolo)"),
        (["--format", "coco", "c.json", "nothing.json"], "nothing.json: annotation source not "
         "found"),
        (["--format", "yolo", "coco", "c.json"], "coco: annotation source not found ('coco' is "
         "read as a source, not as the format: --format names that)"),
        (["--format", "coco", "c.json", "COCO"], "COCO: annotation source not found ('COCO' is "
         "read as a source, not as the format: --format names that)"),
    ],
)  # fmt: skip
def test_a_format_typed_as_a_source_is_told_how_to_name_it(tmp_path, monkeypatch, typed, said):
    """``engine annotate import coco c.json``, the format typed where ``--format coco`` goes:
    before, "coco: annotation source not found", naming no --format. A source that is a
    format's name (in any case) now says how to name it; another missing one is as before.
    With a --format given, "use --format coco" contradicted it: it says the name was read as a
    source."""
    from typer.testing import CliRunner

    from cli import app

    make_dataset(tmp_path / "d", "test", n=1, size=(8, 8))
    (tmp_path / "c.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    args = ["annotate", "import", *typed, "--class", "Bicycle", "--data", "d", "--out", "sub"]
    args.append("--no-progress")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and " ".join(res.output.split()) == f"error: {said}", res.output
    assert not (tmp_path / "sub").exists()


def test_a_train_split_pick_is_exported_and_imported_as_train(tmp_path):
    """A pick from another split than test: export takes the split from the pick's record, a
    --split that contradicts it is refused, and an import left at --split test names the
    split the images are in."""
    from typer.testing import CliRunner

    from cli import app

    data = tmp_path / "data"
    make_dataset(data, "test", n=2, size=(H, W))
    images = make_dataset(data, "train", n=3, size=(H, W), seed=1)
    per_image = {s: [disk(H, W, 20, 20, 6)] for s in images}
    make_run(tmp_path / "run", data, per_image, (H, W), split="train")
    r = CliRunner()
    pick = tmp_path / "run" / "pick-train.txt"
    assert (
        r.invoke(app, ["annotate", "pick", str(tmp_path / "run"), "--split", "train"]).exit_code
        == 0
    )
    export = ["annotate", "export", str(tmp_path / "run"), "--images", str(pick)]
    res = r.invoke(app, [*export, "--out", str(tmp_path / "e")])
    assert res.exit_code == 0 and "of 3 images" in " ".join(res.output.split()), res.output
    res = r.invoke(app, [*export, "--out", str(tmp_path / "e2"), "--split", "test"])
    assert res.exit_code == 2 and " ".join(res.output.split()) == (
        f"error: {pick}: the images were picked from split 'train' (pick-train.json), not "
        "'test'; drop --split or give --split train"
    )
    assert not (tmp_path / "e2").exists()
    coco = tmp_path / "e" / "coco.json"
    imp = ["annotate", "import", str(coco), "--format", "coco", "--class", "Bicycle"]
    imp += ["--data", str(data), "--out", str(tmp_path / "sub")]
    res = r.invoke(app, imp)
    assert res.exit_code == 2 and " ".join(res.output.split()).endswith(
        "is not in split 'test' (2 images); it is in split 'train': give --split train"
    )
    # a stray file in another split's labels does not hide the hint behind its own problem
    stray = data / "annotations" / "train" / "orphan.png"
    stray.write_bytes((data / "annotations" / "train" / f"{next(iter(images))}.png").read_bytes())
    res = r.invoke(app, imp)
    assert res.exit_code == 2 and " ".join(res.output.split()).endswith(
        "is not in split 'test' (2 images); it is in split 'train': give --split train"
    ), res.output
    stray.unlink()
    assert r.invoke(app, [*imp, "--split", "train"]).exit_code == 0
    assert read_subset(tmp_path / "sub").split == "train"


def test_label_run_reads_the_labelers_run_json(tmp_path, world):
    from annotations.labelrun import LabelRun

    _, run, _ = world
    from annotations.taxonomy import MASS13K
    from engine.fusion.testing import labeler_run_json

    doc = labeler_run_json(MASS13K.with_new_class("Bike"), "Bike", data="/somewhere")
    (run / "run.json").write_text(json.dumps(doc))
    r = LabelRun.open(run)
    assert (r.class_name, r.backend, str(r.data_root)) == ("Bike", "simulated", "/somewhere")
    assert r.info.class_id == 7 and r.info.parent_name == "Others"
    # a root typed relative to another folder: the absolute one recorded when labelling
    doc["config"]["data"], doc["data_resolved"] = "data", str(tmp_path / "data")
    (run / "run.json").write_text(json.dumps(doc))
    assert LabelRun.open(run).data_root == tmp_path / "data"
    (run / "run.json").unlink()
    r = LabelRun.open(run)  # run.json is read once per LabelRun: a new one for the change
    assert (r.class_name, r.backend, r.data_root) == ("Bicycle", "simulated", None)  # from headers
    with pytest.raises(ValueError, match="not a label run"):
        LabelRun.open(tmp_path / "data")


def test_an_export_imported_unchanged_is_warned_about_at_import(tmp_path, world, caplog):
    """The COCO export records where it came from (COCO's info); importing it back unchanged
    (the corrections saved elsewhere, or never made) is said at once, and recorded in
    subset.json; a corrected file, or one an annotation tool rewrote, is not."""
    import json

    data, run, _ = world
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e")))
    coco = json.loads(res.coco.read_text())
    record = coco["info"]["mass_engine_export"]
    assert record["run"] == str(run) and record["split"] == "test"
    assert record["config"]["mask_format"] == "rle" and "packages" in record["environment"]
    assert coco["info"]["contributor"] == "engine annotate export"

    def imported(source, out):
        caplog.clear()
        with caplog.at_level("WARNING", logger="engine.annotate"):
            sub = import_annotations(
                ImportConfig("coco", [str(source)], "Bicycle", str(data), str(tmp_path / out))
            )
        return sub, [r.getMessage() for r in caplog.records]

    sub, warnings = imported(res.coco, "s1")
    assert warnings == [
        f"{res.coco}: the masks imported from it equal the pseudo labels they were exported from "
        f"({run}) on all 3 images: were the corrections saved to this file? A subset of "
        "uncorrected pseudo labels scores them at 100"
    ]
    assert sub.info["unchanged_exports"] == [str(run)]
    # corrected: the blob of img000 was a false positive and is deleted
    coco["annotations"] = [a for a in coco["annotations"] if a["id"] != 2]
    corrected = tmp_path / "corrected.json"
    corrected.write_text(json.dumps(coco))
    sub, warnings = imported(corrected, "s2")
    assert warnings == [] and "unchanged_exports" not in sub.info
    # an annotation tool writes its own info: nothing to compare with
    del coco["info"]
    coco["annotations"] = json.loads(res.coco.read_text())["annotations"]
    (tmp_path / "tool.json").write_text(json.dumps(coco))
    assert imported(tmp_path / "tool.json", "s3")[1] == []
    # LabelMe files carry the record too (each file; tools that keep unknown keys keep it):
    # a folder of them imported unchanged is warned about once (img000 holds a wheel, whose
    # hole polygons cannot carry: it comes back filled and is still the export unchanged)
    lm = export_annotations(
        ExportConfig(
            run=str(run), out=str(tmp_path / "lm"), stems=["img000", "img001"], formats=("labelme",)
        )
    )
    doc = json.loads(lm.labelme[0].read_text())
    assert doc["mass_engine_export"]["run"] == str(run)
    caplog.clear()
    with caplog.at_level("WARNING", logger="engine.annotate"):
        sub = import_annotations(
            ImportConfig(
                "labelme",
                [str(tmp_path / "lm" / "labelme")],
                "Bicycle",
                str(data),
                str(tmp_path / "s4"),
            )  # fmt: skip
        )
    assert sub.info["unchanged_exports"] == [str(run)]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"{tmp_path / 'lm' / 'labelme'}: the masks imported from it equal")


def test_a_yolo_download_is_read_as_the_tool_packs_it(tmp_path, world):
    """CVAT's "Ultralytics YOLO Segmentation" download (docs.cvat.ai, format-yolo-ultralytics:
    ``data.yaml`` with ``names`` by index, ``train.txt``, ``images/train/``, ``labels/train/``)
    and Roboflow's YOLOv8 one (``data.yaml`` with a list, ``README.roboflow.txt``,
    ``<subset>/labels/``) are read as they are, zipped or unpacked; the zip was "not ... a format
    that could be told", and with --format yolo its train.txt was read as an image's labels."""
    import zipfile

    from engine.annotation_files import annotation_files

    data, _, _ = world
    square = "1 " + " ".join(
        f"{x / W:.6f} {y / H:.6f}" for x, y in [(8, 2), (12, 2), (12, 6), (8, 6)]
    )
    expected = np.zeros((H, W), np.uint8)
    expected[2:6, 8:12] = 1
    cvat = tmp_path / "cvat"
    (cvat / "labels" / "train").mkdir(parents=True)
    (cvat / "images" / "train").mkdir(parents=True)
    (cvat / "data.yaml").write_text("path: ./\ntrain: train.txt\nnames:\n  0: car\n  1: bicycle\n")
    (cvat / "train.txt").write_text("images/train/img000.jpg\nimages/train/img001.jpg\n")
    (cvat / "images" / "train" / "img000.jpg").write_bytes(b"")
    (cvat / "labels" / "train" / "img000.txt").write_text(square + "\n")
    (cvat / "labels" / "train" / "img001.txt").write_text("")
    archive = tmp_path / "task_7_dataset_ultralytics_yolo_segmentation.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(cvat.rglob("*")):
            z.write(f, f.relative_to(cvat).as_posix())
    for n, source in enumerate((archive, cvat)):
        sub = import_annotations(
            ImportConfig("auto", [str(source)], "Bicycle", str(data), str(tmp_path / f"s{n}"))
        )
        assert list(sub.stems) == ["img000", "img001"] and sub.info["import_format"] == "yolo"
        assert np.array_equal(sub.mask("img000"), expected) and not sub.mask("img001").any()
    assert sub.info["sources"]["img000"] == str(cvat / "labels" / "train" / "img000.txt")
    (found,) = annotation_files(archive)
    assert found.format == "yolo" and found.images == 2 and found.by_label == {"bicycle": 1}
    roboflow = tmp_path / "roboflow"
    for part in ("train", "valid"):
        (roboflow / part / "labels").mkdir(parents=True)
    (roboflow / "data.yaml").write_text("names: ['bicycle', 'car']\nnc: 2\n")
    (roboflow / "README.roboflow.txt").write_text("Exported via roboflow.com\n")
    name = "img000_jpg.rf.68cb3c2f0d5a4c1b9e7f6a5d4c3b2a66.txt"
    (roboflow / "train" / "labels" / name).write_text("0" + square[1:] + "\n")
    (
        roboflow / "valid" / "labels" / "img001_jpg.rf.0123456789abcdef0123456789abcdef.txt"
    ).write_text("")
    sub = import_annotations(
        ImportConfig("auto", [str(roboflow)], "Bicycle", str(data), str(tmp_path / "s3"))
    )
    assert list(sub.stems) == ["img000", "img001"] and np.array_equal(sub.mask("img000"), expected)


def test_engine_info_describes_annotation_files(tmp_path, world):
    """An export folder, its COCO file, a LabelMe folder and a tool's COCO file (no record):
    what they hold, where they came from, and the import line; a dataset stays a dataset."""
    from typer.testing import CliRunner

    from cli import app

    data, run, _ = world
    out = tmp_path / "e"
    export_annotations(ExportConfig(run=str(run), out=str(out), mask_format="polygon"))

    def info(path):
        res = CliRunner().invoke(app, ["info", str(path)], env={"COLUMNS": "300"})
        assert res.exit_code == 0, res.output
        return " ".join(res.output.split())

    text = info(out)
    assert f"COCO file {out / 'coco.json'}" in text and f"LabelMe files {out / 'labelme'}" in text
    assert "images │ 3 (1 without any annotation)" in text
    assert "Bicycle │ 3 annotations" in text and "shapes │ polygons 3" in text
    assert f"exported from │ {run} (split test, polygon masks," in text
    want = f"import: engine annotate import {out / 'coco.json'} --format coco --class Bicycle"
    assert want + f" --data {data} --split test --out SUBSET" in text
    assert f"import: engine annotate import {out / 'labelme'} --format labelme" in text
    assert info(out / "coco.json").count("COCO file") == 1
    coco = json.loads((out / "coco.json").read_text())
    del coco["info"]  # as an annotation tool saves it
    coco["categories"].append({"id": 2, "name": "unannotated"})
    coco["annotations"].append(  # a box, as CVAT writes a rectangle (none: import refuses it)
        {"id": 9, "image_id": 3, "category_id": 2, "segmentation": [], "bbox": [0, 0, 4, 4]}
    )
    (tmp_path / "cvat.json").write_text(json.dumps(coco))
    text = info(tmp_path / "cvat.json")
    assert "exported from │ not recorded (an annotation tool's file)" in text
    assert "unannotated │ 1 annotation" in text and "images │ 3 (0 without any" in text
    assert "--data DATASET --split test" in text and "--class unannotated" not in text
    coco["categories"].append({"id": 3, "name": "Parked car"})  # a multi-class file: a line each
    coco["annotations"].append({**coco["annotations"][0], "id": 10, "category_id": 3})
    (tmp_path / "cvat.json").write_text(json.dumps(coco))
    text = info(tmp_path / "cvat.json")
    assert "--class Bicycle --data" in text and "--class 'Parked car' --data" in text
    assert "Images per split" in info(data)  # a dataset root is still described as one


def test_engine_info_says_what_import_would_refuse_in_coco_and_labelme_files(tmp_path, world):
    """engine info showed a clean table, exit 0 and an import line for files that import then
    refused: an annotation of an unknown image, an image listed twice, a 2-point polygon, two
    LabelMe files of one image. It reads them as import does and lists each, exit 1."""
    from typer.testing import CliRunner

    from cli import app

    _, run, _ = world
    out = tmp_path / "e"
    export_annotations(ExportConfig(run=str(run), out=str(out), mask_format="polygon"))

    def info(path) -> tuple[int, str]:
        res = CliRunner().invoke(app, ["info", str(path)], env={"COLUMNS": "400"})
        return res.exit_code, " ".join(res.output.split())

    code, text = info(out / "coco.json")
    assert code == 0 and "problems │ none (read as import reads them" in text
    coco = json.loads((out / "coco.json").read_text())
    coco["annotations"][0]["image_id"] = 99
    coco["annotations"][1]["segmentation"] = [[1, 1, 5, 5]]
    coco["images"].append(dict(coco["images"][0], id=7))
    (tmp_path / "bad.json").write_text(json.dumps(coco))
    code, text = info(tmp_path / "bad.json")
    assert code == 1 and "problems │ 1 problem that import would refuse:" in text
    assert "is listed twice" in text  # the first the reader meets, as import says it
    del coco["images"][-1]
    (tmp_path / "bad.json").write_text(json.dumps(coco))
    code, text = info(tmp_path / "bad.json")
    assert code == 1 and "annotation 1 refers to unknown image_id 99" in text
    labelme = out / "labelme"
    first = sorted(labelme.glob("*.json"))[0]
    (labelme / "copy.json").write_text(first.read_text())
    code, text = info(labelme)
    assert code == 1 and "is annotated twice (also in" in text


def test_engine_info_checks_no_labelme_file_of_a_folder_it_will_not_check(tmp_path, monkeypatch):
    """A folder of more LabelMe files than engine info checks (2,000) had its first 2,000 drawn
    as import draws them, then the result dropped: minutes for 4K images. Checked only when
    the count allows, and then the same problems, also where other JSON files among them
    (not LabelMe) leave no more LabelMe files than that."""
    from engine import annotation_files as af

    def labelme(name: str, image: str) -> None:
        shape = {"label": "car", "points": [[1, 1], [8, 1], [4, 7]], "shape_type": "polygon"}
        doc = {"shapes": [shape], "imagePath": image, "imageHeight": 10, "imageWidth": 10}
        (tmp_path / name).write_text(json.dumps(doc))

    for i in range(3):
        labelme(f"a{i}.json", f"img{i}.jpg")
    checked = []
    real = af._labelme_problems
    monkeypatch.setattr(af, "_labelme_problems", lambda f, *a: checked.append(f) or real(f, *a))
    monkeypatch.setattr(af, "CHECK_LIMIT", 2)
    (found,) = af.annotation_files(tmp_path)
    assert found.files == 3 and found.problems is None and checked == []
    (tmp_path / "a2.json").write_text(json.dumps({"settings": 1}))  # a stray: 2 LabelMe files
    labelme("a1.json", "img0.jpg")  # annotates img0 again: a problem import refuses
    (found,) = af.annotation_files(tmp_path)
    assert found.files == 2 and len(checked) == 2
    assert len(found.problems) == 1 and "is annotated twice" in found.problems[0]


def test_engine_info_holds_one_labelme_file_at_a_time(tmp_path, world, monkeypatch):
    """A folder of LabelMe files is described one file at a time: LabelMe saves each image's
    pixels in its file, and holding every document made ``engine info`` need memory for all
    of them (400 files of 1 MB: 470 MB). The description is the same."""
    from engine import annotation_files as af

    _, run, _ = world
    out = tmp_path / "exp"
    stems = ["img000", "img001", "img002"]
    export_annotations(ExportConfig(run=str(run), out=str(out), formats=("labelme",), stems=stems))

    class Doc(dict):
        live = most = 0

        def __init__(self, doc: dict) -> None:
            super().__init__(doc)
            Doc.live += 1
            Doc.most = max(Doc.most, Doc.live)

        def __del__(self) -> None:
            Doc.live -= 1

    read = af.read_json
    monkeypatch.setattr(af, "read_json", lambda path, what: Doc(read(path, what)))
    (found,) = af.annotation_files(out / "labelme")
    assert (found.files, found.by_label, found.problems) == (3, {"Bicycle": 3}, [])
    assert found.export is not None and found.export["split"] == "test"
    assert Doc.most <= 2  # the folder's first file, told LabelMe, and the one being read


@pytest.mark.parametrize(
    "record, said",
    [
        ("edited", "exported from │ not recorded (an annotation tool's file)"),
        (["a", "list"], "exported from │ not recorded (an annotation tool's file)"),
        ({"run": "runs/label/bicycle", "split": "test", "config": "rle"}, "(split test)"),
        ({"run": ["x"], "split": "test", "environment": 3}, "exported from │ ['x'] (split test)"),
    ],
)
def test_engine_info_reads_a_hand_edited_export_record(tmp_path, world, record, said):
    """An exporter's record that a hand edit left as a string, a list, or with a ``config``
    that is not a mapping is shown as what it is, not a traceback; import reads the file."""
    from typer.testing import CliRunner

    from cli import app

    _, run, _ = world
    out = tmp_path / "with space"
    export_annotations(ExportConfig(run=str(run), out=str(out), formats=("coco", "labelme")))
    coco = json.loads((out / "coco.json").read_text())
    coco["info"]["mass_engine_export"] = record
    (out / "coco.json").write_text(json.dumps(coco))
    for page in (out / "labelme").glob("*.json"):
        doc = json.loads(page.read_text())
        page.write_text(json.dumps({**doc, "mass_engine_export": record}))
    for path in (out / "coco.json", out / "labelme"):
        res = CliRunner().invoke(app, ["info", str(path)], env={"COLUMNS": "300"})
        assert res.exit_code == 0, res.output
        text = " ".join(res.output.split())
        assert said in text
        assert f"import: engine annotate import '{path}' --format" in text  # one argument


def test_coco_file_names_are_paths_in_the_split_s_image_folder(tmp_path):
    from engine.annotate import coco_file_name

    root = tmp_path / "images" / "test"
    assert coco_file_name(root / "city" / "a.jpg", root, "a") == "city/a.jpg"
    assert coco_file_name(tmp_path / "elsewhere" / "a.png", root, "a") == "a.png"
    assert coco_file_name(None, root, "a") == "a.jpg"


def test_label_studio_s_upload_prefix_is_read_past(tmp_path, world):
    """Label Studio renames an uploaded image to uuid4()[:8] + '-' + its name and exports that
    name: the image is found by the name after the prefix; a stem that is neither stays an
    error."""
    data, _, _ = world
    image = {"id": 1, "file_name": "images/8f3a2b1c-img001.jpg", "width": W, "height": H}
    ann = {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]}
    path = _coco_file(tmp_path, images=[image], annotations=[ann])
    sub = import_annotations(
        ImportConfig("coco", [str(path)], "Bicycle", str(data), str(tmp_path / "s"))
    )
    assert sub.stems == ("img001",) and int(sub.mask("img001").sum()) == 16
    image["file_name"] = "images/8f3a2b1c-img009.jpg"
    path = _coco_file(tmp_path, images=[image], annotations=[ann])
    with pytest.raises(ValueError, match="'8f3a2b1c-img009' is not in split 'test'"):
        import_annotations(
            ImportConfig("coco", [str(path)], "Bicycle", str(data), str(tmp_path / "s2"))
        )


@pytest.mark.parametrize(
    "file_name, stem",
    [
        ("train/img001_jpg.rf.68cb444f62494b5756c4708d119a66da.jpg", "img001"),  # Roboflow
        ("img001_jpeg_jpg.rf.ffb357957a29cdef43f3fdfb2a13c417.jpg", "img001"),  # converted
        ("img001_png.rf.0123456789abcdef0123456789abcdef.png", "img001"),
        ("img001_jpg.rf.notahash.jpg", None),  # not Roboflow's: no image of that name
        ("img009_jpg.rf.68cb444f62494b5756c4708d119a66da.jpg", None),  # not in the split
    ],
)
def test_roboflow_s_export_names_are_read_past(file_name, stem):
    """Roboflow exports an image under its name with "." as "_", ".rf." and a hash; the
    dataset's image is found by the name before, only when the split holds it."""
    from annotations.interchange import dataset_stem, stem_of

    sizes = {"img000": (H, W), "img001": (H, W), "img001_jpeg_x": (H, W)}
    found = dataset_stem(stem_of(file_name), sizes)
    assert found == (stem if stem else stem_of(file_name))


def test_an_image_is_found_whichever_way_its_name_is_composed(tmp_path):
    """macOS stores ``vélo.jpg`` as e + U+0301 (NFD); CVAT, Label Studio and a COCO file written
    on Linux or Windows give it as one é (NFC). An import said ``image 'vélo' is not in split
    'test'``; each spelling finds the image now, and the mask keeps the dataset's spelling (what
    predictions of the image are named). A split holding both spellings matches only exactly."""
    import unicodedata

    from annotations.interchange import SplitSizes, dataset_stem, png_to_mask, stem_of

    nfc, nfd = unicodedata.normalize("NFC", "vélo"), unicodedata.normalize("NFD", "vélo")
    sizes = SplitSizes({nfd: (4, 5), "自行车": (4, 5)}, "test")
    assert dataset_stem(stem_of(f"/x/{nfc}.jpg"), sizes) == nfd
    assert dataset_stem(f"8f3a2b1c-{nfc}", sizes) == nfd  # past Label Studio's upload prefix
    assert dataset_stem(stem_of(f"{nfc}_jpg.rf.{'0' * 32}.jpg"), sizes) == nfd  # Roboflow's
    assert dataset_stem(nfc, {nfc: (4, 5), nfd: (4, 5)}) == nfc
    Image.fromarray(np.ones((4, 5), np.uint8)).save(tmp_path / f"{nfc}.png")
    assert png_to_mask(tmp_path / f"{nfc}.png", sizes).stem == nfd
    coco = {
        "images": [{"id": 1, "file_name": f"{nfc}.jpg", "height": 4, "width": 5}],
        "categories": [{"id": 1, "name": "Vélo"}],
        "annotations": [],
    }
    (tmp_path / "c.json").write_text(json.dumps(coco))
    assert [m.stem for m in coco_to_masks(tmp_path / "c.json", nfd, sizes)] == [nfd]


@pytest.mark.parametrize(
    "shape,message",
    [
        ("oops", "shape 0 is not an object"),
        ({"label": "Bicycle", "points": [["a", "b"], [1, 2], [3, 4]]}, "points must be a list of"),
        ({"label": "Bicycle", "points": [[1, 2, 3], [1, 2], [3, 4]]}, "points must be a list of"),
        ({"label": "Bicycle", "points": [[1, 2], [1, float("nan")], [3, 4]]}, "not a finite"),
        (
            {"label": "Bicycle", "shape_type": "mask", "points": [[0, 0], [3, 3]], "mask": "!x"},
            "'mask' is not base64 PNG data",
        ),
        (
            {"label": "Bicycle", "shape_type": "mask", "points": [[0, 0], [3, 3]], "mask": "aGk="},
            "'mask' is not base64 PNG data",
        ),
        ({"label": "Bicycle", "shape_type": "spline", "points": [[0, 0], [3, 3]]}, "unsupported"),
        # labelme's line: no area (before the 58th round "unsupported", which it is not)
        (
            {"label": "Bicycle", "shape_type": "line", "points": [[0, 0], [3, 3]]},
            "a 'line' shape has no area",
        ),
    ],
)
def test_a_malformed_labelme_shape_is_one_line_naming_file_and_shape(
    tmp_path, world, shape, message
):
    data, _, _ = world
    folder = tmp_path / "lm"
    folder.mkdir()
    doc = {"shapes": [shape], "imagePath": "img000.jpg", "imageHeight": H, "imageWidth": W}
    (folder / "img000.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message) as e:
        import_annotations(
            ImportConfig("labelme", [str(folder)], "Bicycle", str(data), str(tmp_path / "s"))
        )
    assert str(folder / "img000.json") in str(e.value) and "\n" not in str(e.value).strip()


def test_a_labelme_mask_shape_is_placed_at_its_corner_and_clipped_to_the_image():
    import base64
    import io

    patch = io.BytesIO()
    Image.fromarray(np.full((4, 6), 255, np.uint8)).save(patch, format="PNG")
    data = base64.b64encode(patch.getvalue()).decode()
    m = _drawn({"shape_type": "mask", "points": [[2, 3], [7, 6]], "mask": data}, (10, 10))
    assert m.sum() == 24 and m[3:7, 2:8].all()
    m = _drawn({"shape_type": "mask", "points": [[-2, 8], [3, 11]], "mask": data}, (10, 10))
    assert m.sum() == 4 * 2 and m[8:10, 0:4].all()  # the part inside the image
    # labelme places a mask at its first point truncated (astype(int)), not rounded
    m = _drawn({"shape_type": "mask", "points": [[2.7, 3.6], [7.7, 6.6]], "mask": data}, (10, 10))
    assert m[3:7, 2:8].all() and m.sum() == 24


def test_a_labelme_mask_far_larger_than_its_image_is_refused_before_it_is_decoded():
    """A LabelMe mask shape whose PNG says 20000x20000 on a 10x10 image (a damaged file; 400 MB
    of pixels decoded to be clipped away) is refused from its header, as CVAT's mask boxes
    are; one twice the image's size is still read and clipped."""
    import base64
    import io

    def shape(w: int, h: int) -> dict:
        patch = io.BytesIO()
        Image.new("1", (w, h), 1).save(patch, format="PNG")
        data = base64.b64encode(patch.getvalue()).decode()
        return {"shape_type": "mask", "points": [[0, 0], [w - 1, h - 1]], "mask": data}

    with pytest.raises(ValueError, match=r"its mask is 20000x20000, over twice the image's 10x10"):
        _drawn(shape(20000, 20000), (10, 10))
    assert _drawn(shape(20, 20), (10, 10)).all()


def test_labelme_6_oriented_rectangles_are_drawn_as_its_polygons():
    """labelme 6 writes rotated boxes as shape_type "oriented_rectangle", 4 points, and draws
    them as polygons (its shape_to_mask); X-AnyLabeling's "rotation" is the same."""
    corners = [[2.5, 1.0], [8.0, 3.5], [6.5, 7.0], [1.0, 4.5]]
    oriented = _drawn({"shape_type": "oriented_rectangle", "points": corners}, (10, 10))
    assert np.array_equal(oriented, _drawn({"shape_type": "polygon", "points": corners}, (10, 10)))
    assert np.array_equal(oriented, _drawn({"shape_type": "rotation", "points": corners}, (10, 10)))
    assert oriented.sum() > 20


def test_an_export_folder_with_both_copies_is_refused_saying_which_to_give(tmp_path, world):
    """The default export writes coco.json and labelme/; LabelMe saves corrections into the
    latter. Importing the folder read coco.json, the uncorrected copy, with only the generic
    'equal the pseudo labels' warning. Now it names both; either one imports. A folder of one
    copy (--format coco) still imports by its coco.json."""
    data, run, _ = world
    out = tmp_path / "e"
    export_annotations(ExportConfig(run=str(run), out=str(out)))
    with pytest.raises(ValueError) as e:
        import_annotations(
            ImportConfig("auto", [str(out)], "Bicycle", str(data), str(tmp_path / "no"))
        )
    assert str(e.value) == (
        f"{out}: an export holding its masks twice (coco.json, labelme/): give the files the "
        f"corrections were saved in: {out / 'coco.json'} or {out / 'labelme'}"
    )
    for given in (out / "coco.json", out / "labelme"):
        import_annotations(
            ImportConfig("auto", [str(given)], "Bicycle", str(data), str(tmp_path / given.name))
        )
    only = tmp_path / "only"
    export_annotations(ExportConfig(run=str(run), out=str(only), formats=("coco",)))
    import_annotations(ImportConfig("auto", [str(only)], "Bicycle", str(data), str(tmp_path / "s")))


def test_import_refuses_the_unannotated_name_as_the_class_and_reads_formats_in_any_case(
    tmp_path, world
):
    """``--class unannotated`` made a subset whose class was the unannotated regions; an empty
    name was not refused either. ``--format COCO`` was refused, while ``--class`` is matched
    in any case."""
    data, run, _ = world
    path = _coco_file(tmp_path)
    for name in ("unannotated", "Ignore", " "):
        with pytest.raises(ValueError, match=r"--class .*: give the class the files annotate"):
            import_annotations(ImportConfig("coco", [str(path)], name, str(data), str(tmp_path)))
    sub = import_annotations(
        ImportConfig("COCO", [str(path)], "Bicycle", str(data), str(tmp_path / "s"))
    )
    assert sub.info["import_format"] == "coco"
    res = export_annotations(
        ExportConfig(run=str(run), out=str(tmp_path / "e"), formats=("COCO",), mask_format="RLE")
    )
    assert res.coco is not None and res.coco.is_file()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("7", r"--class '7' is no class name: engine compare --class reads a number"),
        ("Bicycle\nX", r"--class 'Bicycle\\nX': a class name holds no control character"),
        ("Bicycle\t", None),  # a tab at the end is a space around the name: dropped
        ("Bi\tcycle", "no control character"),
        ("Bicycle,Car", r"holds no ','.*--class 'Bicycle' then --class 'Car'"),
        ("..", r"--class '\.\.' is no class name"),
    ],
)
def test_import_refuses_the_class_names_engine_label_refuses(tmp_path, world, name, message):
    """One rule for the names of a new class: ``engine annotate import --class 7`` (or with a
    newline pasted in) made a subset that no label run, which ``engine label`` refuses by
    those names, could be scored against; nothing is written."""
    from labeler.config import ClassSpec

    data, _, _ = world
    path = _coco_file(tmp_path)
    cfg = ImportConfig("coco", [str(path)], name, str(data), str(tmp_path / "s"))
    if message is None:
        assert import_annotations(cfg).class_name == ClassSpec(name).name == "Bicycle"
        return
    for refused in (lambda: import_annotations(cfg), lambda: ClassSpec(name)):
        with pytest.raises(ValueError, match=message):
            refused()
    assert not (tmp_path / "s").exists()


def test_a_malformed_coco_annotation_is_one_line_naming_the_file(tmp_path, world):
    data, _, _ = world
    for anns, message in (
        (["oops"], "annotation 0 is not an object"),
        (
            [{"id": 3, "image_id": "x", "category_id": 1}],
            "annotation 3 refers to unknown image_id x",
        ),
        (
            [{"id": 3, "image_id": [1], "category_id": 1}],
            "annotation 3: image_id must be an integer",
        ),
        ([{"id": 3, "image_id": 1, "category_id": "c"}], "string and category_id an integer"),
        (  # a line encloses nothing: refused as LabelMe's polygons are, not read as no object
            [{"id": 4, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 9, 9]]}],
            "annotation 4: a polygon needs at least 3 points, got 2",
        ),
    ):
        path = _coco_file(tmp_path, annotations=anns)
        with pytest.raises(ValueError, match=message) as e:
            import_annotations(
                ImportConfig("coco", [str(path)], "Bicycle", str(data), str(tmp_path / "s"))
            )
        assert str(e.value).startswith(str(path))


def test_an_image_list_may_name_files_or_paths(tmp_path, world):
    """`ls images/test > list.txt`, or an earlier export's images.txt, as --images: the names
    and paths are read as their stems, each once."""
    data, run, _ = world
    first = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "a")))
    listed = first.image_list.read_text().splitlines()[:2]
    again = [*listed, "img001.jpg", "img000"]
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "b"), stems=again))
    assert res.images == 2 and [p.stem for p in res.labelme] == ["img000", "img001"]
    with pytest.raises(ValueError, match=r"not in the run's 'test' split: \['nope'\]"):
        export_annotations(
            ExportConfig(run=str(run), out=str(tmp_path / "c"), stems=["x/nope.jpg"])
        )


def test_a_file_name_that_is_not_utf8_is_picked_listed_and_exported(tmp_path):
    """A dataset copied from a latin-1 system holds ``caf\\xe9.jpg``. ``annotate pick`` and
    ``annotate export`` stopped with "'utf-8' codec can't encode character '\\udce9' ...
    surrogates not allowed" writing their list (exit code 2, no list, no export). The lists
    stay UTF-8, the name escaped as the JSON records show it (``caf\\udce9``), and either list
    given back as ``--images`` names the image."""
    data, run, stem = tmp_path / "data", tmp_path / "run", os.fsdecode(b"caf\xe9")
    make_dataset(data, "test", n=1, size=(H, W))
    for folder, ext in (("images", ".jpg"), ("annotations", ".png")):
        os.rename(data / folder / "test" / f"img000{ext}", data / folder / "test" / f"{stem}{ext}")
    make_run(run, data, {stem: [disk(H, W, 20, 48, 8)]}, (H, W))
    _, picked = pick_for_annotation(PickConfig(run=str(run), n=1, progress=False))
    assert picked.read_bytes() == b"caf\\udce9\n"
    first = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "a"),
                                            stems=read_stem_list(picked)))  # fmt: skip
    listed = first.image_list.read_bytes().decode("utf-8").splitlines()
    assert listed == [f"{data}/images/test/caf\\udce9.jpg"]
    again = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "b"), stems=listed))
    assert [p.name for p in again.labelme] == [f"{stem}.json"]


def test_an_earlier_export_is_kept_unless_replaced_on_purpose(tmp_path, world):
    """LabelMe and other tools save corrections into the exported files: a second export into
    the folder is refused and leaves them as they are. With ``force`` the folder holds exactly
    the new export: no file of the earlier one stays (a LabelMe file of an image not exported
    now, a COCO file of other images)."""
    _, run, _ = world
    out = tmp_path / "e"
    first = export_annotations(ExportConfig(run=str(run), out=str(out)))
    corrected = first.labelme[0]
    corrected.write_text('{"corrected": true}')
    notes = out / "notes.txt"  # not the export's: never touched
    notes.write_text("ask about img001")
    again = ExportConfig(run=str(run), out=str(out), formats=("labelme",), stems=["img001"])
    message = (
        r"e: holds an earlier export \(coco.json, labelme/ \(3 files\), images.txt\); "
        r"annotation tools save corrections into its files: .*with --force"
    )
    with pytest.raises(FileExistsError, match=message):
        export_annotations(again)
    assert corrected.read_text() == '{"corrected": true}'
    assert json.loads(first.coco.read_text())["images"][2]["file_name"] == "img002.jpg"
    res = export_annotations(dataclasses.replace(again, force=True))
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock",
        "images.txt",
        "labelme",
        "notes.txt",
    ]
    assert (
        [p.name for p in (out / "labelme").iterdir()]
        == ["img001.json"]
        == [p.name for p in res.labelme]
    )
    assert res.image_list.read_text().splitlines() == [
        str(run.parent / "data/images/test/img001.jpg")
    ]
    assert notes.read_text() == "ask about img001"


def test_an_export_that_fails_midway_leaves_the_earlier_one(tmp_path, world):
    """An image whose instances cannot be read, after others were written: the export stops
    with the file's error and the folder holds the earlier export as it was, no part of the
    new one (it is written aside and swapped in whole)."""
    _, run, _ = world
    out = tmp_path / "e"
    export_annotations(ExportConfig(run=str(run), out=str(out), stems=["img000"]))

    # the export's files; not the folder's lock file, whose holder record names the second
    # call's start (to the second: the comparison failed when the calls straddled one)
    def files() -> dict:
        return {
            p.relative_to(out): p.read_bytes()
            for p in out.rglob("*")
            if p.is_file() and p.name != LOCK_NAME
        }

    before = files()
    bad = run / "instances" / "test" / "img002.json"
    bad.write_text("{not json")
    cfg = ExportConfig(run=str(run), out=str(out), force=True, formats=("coco", "labelme"))
    with pytest.raises(ValueError, match="img002.json"):
        export_annotations(cfg)
    assert files() == before
    assert not list(out.glob(".export*"))  # the half-written copy is gone
    # into a folder that did not exist: no folder is left behind, as a failed import leaves none
    with pytest.raises(ValueError, match="img002.json"):
        export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "new" / "e")))
    assert not (tmp_path / "new" / "e").exists()


def test_engine_info_tells_the_earlier_export_s_files_from_the_new_ones_still_hidden(
    tmp_path, world
):
    """``--force --format coco`` over a COCO + LabelMe export, killed once coco.json was in:
    the earlier export's labelme/ and images.txt, which the next export removes, were said to
    be "still in .export.new-.../" (they are in the folder), labelme without its ``/``."""
    from typer.testing import CliRunner

    from annotations.fileio import SWAP_RECORD
    from cli import app

    _, run, _ = world
    out = tmp_path / "e"
    export_annotations(ExportConfig(run=str(run), out=str(out), formats=("coco", "labelme")))
    staging = out / ".export.new-test"
    staging.mkdir()
    (staging / SWAP_RECORD).write_text('{"in":["coco.json"],"out":["labelme","images.txt"]}')
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and (
        f"{out}: an export was interrupted while putting its files in: labelme/, images.txt of "
        f"the earlier export, which it removes; the next engine annotate export into {out} "
        "finishes it first" in text
    ), text
    # a subset's import writes both of its entries (nothing to take out): killed before its
    # renames, its folder is named with its /
    staging = tmp_path / "sub" / ".masks.new-test"
    (staging / "masks").mkdir(parents=True)
    (staging / "subset.json").write_text("{}")
    (staging / SWAP_RECORD).write_text('{"in":["masks","subset.json"],"out":[]}')
    res = CliRunner().invoke(app, ["info", str(tmp_path / "sub")], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    assert (
        "was interrupted while putting its files in: masks/, subset.json still in "
        ".masks.new-test/; the next engine annotate import" in text
    ), text


def test_engine_info_s_export_table_counts_the_interrupted_swap_as_its_problem(tmp_path, world):
    """An export killed mid-swap: engine info printed the line on it and exited 1, while the
    COCO file's table above it said "problems: none". The table counts it now."""
    from typer.testing import CliRunner

    from annotations.fileio import SWAP_RECORD
    from cli import app

    _, run, _ = world
    out = tmp_path / "e"
    export_annotations(ExportConfig(run=str(run), out=str(out), formats=("coco",)))

    def rows() -> list[str]:
        res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
        return [str(res.exit_code)] + [
            " ".join(line.strip("│ ").split()) for line in res.output.splitlines()
        ]

    assert rows()[:1] + [r for r in rows() if r.startswith("problems")] == [
        "0",
        "problems │ none (read as import reads them; import also checks each image against the "
        "dataset)",
    ]
    staging = out / ".export.new-test"
    staging.mkdir()
    (staging / SWAP_RECORD).write_text('{"in":[],"out":["labelme"]}')
    (out / "labelme").mkdir()
    said = rows()
    assert said[0] == "1", said
    at = said.index("problems │ 1 problem:")
    assert said[at + 1] == "an export interrupted while putting its files in (below)"
    assert said[-1] == (
        f"{out}: an export was interrupted while putting its files in: labelme/ of the earlier "
        f"export, which it removes; the next engine annotate export into {out} finishes it "
        "first (then refuses to replace it without --force)"
    )


@pytest.mark.parametrize("held", [False, True])
def test_engine_info_names_a_conversion_killed_while_putting_its_files_in(
    tmp_path, monkeypatch, held
):
    """An ``engine convert-sam`` killed after writing its swap record, before its first rename
    (the folder holds only the hidden one), or after its first (``config.json`` in), or such a
    record damaged by hand. engine info said "no image split folders found" (exit 2), as of a
    wrong folder; it names the write and what the next conversion does, or the damaged record,
    exit 1. That conversion writes a folder holding only its staging folders (finishing the
    swap first) and refuses one holding anything else: in the fifty-second round the line said
    "once the folder is removed" of both."""
    from typer.testing import CliRunner

    from annotations.fileio import SWAP_RECORD
    from cli import app

    out = tmp_path / "new"
    staging = out / ".convert-sam.new-x"
    staging.mkdir(parents=True)
    (staging / "model.safetensors").write_text("{}")
    (staging / SWAP_RECORD).write_text('{"in":["config.json","model.safetensors"],"out":[]}')
    if held:
        (out / "config.json").write_text("{}")
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "2000"})
    removed = ", once the folder is removed," if held else ""
    assert (res.exit_code, res.output.splitlines()[-1]) == (
        1,
        f"{out}: a conversion (engine convert-sam) was interrupted while putting its files in: "
        f"model.safetensors still in .convert-sam.new-x/; the next engine convert-sam into "
        f"{out}{removed} writes the whole model",
    ), res.output
    (staging / SWAP_RECORD).write_text('{"in": 3}')
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "2000"})
    assert (res.exit_code, res.output.splitlines()[-1]) == (
        1,
        damaged_swap_line(staging),
    ), res.output
    (staging / SWAP_RECORD).write_text('{"in":["model.safetensors"],"out":[]}')
    from labeler.sam_convert import convert_sam_checkpoint

    if held:  # what the line says: refused, before the checkpoint is read
        with pytest.raises(ValueError, match=r"not empty \(config\.json\); converting would "):
            convert_sam_checkpoint(tmp_path / "unread.pth", out)
        return
    import labeler.sam_convert

    class Saved:  # the model and processor, as convert-sam saves them (no transformers here)
        def __init__(self, name: str) -> None:
            self.name = name

        def save_pretrained(self, folder: Path) -> None:
            (folder / self.name).write_text(self.name)

    def load_sam_pth(path):
        return Saved("model.safetensors"), Saved("processor_config.json")

    import contextlib

    import engine.progress

    monkeypatch.setattr(labeler.sam_convert, "load_sam_pth", load_sam_pth)
    monkeypatch.setattr(engine.progress, "no_hf_progress_bars", contextlib.nullcontext)
    (tmp_path / "sam.pth").write_bytes(b"sam")
    convert_sam_checkpoint(tmp_path / "sam.pth", out)  # the swap finished, then the model
    assert sorted(p.name for p in out.iterdir()) == [
        "convert-sam.json",
        "model.safetensors",
        "processor_config.json",
    ]
    assert (out / "model.safetensors").read_text() == "model.safetensors"  # not the swap's


def _killed_after_renames_into(out: Path, renames: int, write) -> None:
    """Run ``write()`` in a forked child that is SIGKILLed (exit 137, as the OOM killer ends
    it) once ``renames`` of its renames into ``out`` are done: a kill between a swap's renames
    (0: at the first one's start, its swap record written, nothing of it in)."""
    import annotations.fileio as fileio

    pid = os.fork()
    if pid == 0:
        real, done = os.replace, []

        def replace(a, b):
            if Path(b).parent == out and Path(a).parent != out and not renames:
                os._exit(137)  # not a lock file's replace (engine.runlock) in ``out`` itself
            real(a, b)
            if Path(b).parent == out:
                done.append(b)
                if len(done) == renames:
                    os._exit(137)

        fileio.swaps.os.replace = replace  # the child's own module: the parent's is untouched
        try:
            write()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] >> 8 == 137


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a killed process is a forked child")
def test_engine_info_names_a_first_export_killed_before_its_first_file_was_in(tmp_path, world):
    """A first export into a new folder SIGKILLed after writing its swap record, before its
    first rename: the folder holds the hidden staging folder and the lock (with its holder's
    record). engine info said the export "stopped before it wrote anything here ...: run that
    command again", which then finished the swap and refused the export as an earlier one
    without --force; it names the interrupted swap and what the next export does (checked)."""
    from typer.testing import CliRunner

    from annotations.fileio import SWAP_RECORD
    from cli import app

    _, run, _ = world
    out = tmp_path / "e"
    _killed_after_renames_into(
        out, 0, lambda: export_annotations(ExportConfig(run=str(run), out=str(out)))
    )
    (staging,) = out.glob(".export.*")
    assert sorted(p.name for p in out.iterdir()) == sorted([LOCK_NAME, staging.name])
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "2000"})
    assert (res.exit_code, res.output.splitlines()[-1]) == (
        1,
        f"{out}: an export was interrupted while putting its files in: coco.json, labelme/, "
        f"images.txt still in {staging.name}/; the next engine annotate export into {out} "
        "finishes it first (then refuses to replace it without --force)",
    ), res.output
    record = (staging / SWAP_RECORD).read_text()
    (staging / SWAP_RECORD).write_text('{"in": 3}')  # damaged by hand: the line the export says
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "2000"})
    assert (res.exit_code, res.output.splitlines()[-1]) == (
        1,
        damaged_swap_line(staging),
    ), res.output
    (staging / SWAP_RECORD).write_text(record)
    with pytest.raises(FileExistsError) as e:  # what the line says: finished, then refused
        export_annotations(ExportConfig(run=str(run), out=str(out)))
    assert str(e.value) == (
        f"{out}: holds an earlier export (coco.json, labelme/ (3 files), images.txt); annotation "
        "tools save corrections into its files: export to another folder, or replace it with "
        "--force"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        LOCK_NAME,
        "coco.json",
        "images.txt",
        "labelme",
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a killed process is a forked child")
@pytest.mark.parametrize("renamed", [1, 2])
def test_an_export_killed_between_its_renames_is_finished_by_the_next_call(
    tmp_path, world, renamed
):
    """SIGKILL (the OOM killer) between the renames that swap an export in: before the
    forty-seventh round the folder was left a ``coco.json`` without ``labelme/`` (or without
    ``images.txt``), the rest in the hidden folder, which the next call deleted; the same
    command refused the half export as an earlier one and ``engine info`` saw no problem. Now
    the next call finishes the swap: the export is whole, as if the kill came after it."""
    _, run, _ = world
    ref = tmp_path / "ref"
    export_annotations(ExportConfig(run=str(run), out=str(ref)))
    out = tmp_path / "e"
    _killed_after_renames_into(
        out, renamed, lambda: export_annotations(ExportConfig(run=str(run), out=str(out)))
    )
    assert len(list(out.glob(".export.*"))) == 1  # the rest of it, still hidden
    # engine info listed what was renamed in as a whole export, exit 0: it is a problem now,
    # named with what the next export does (of the folder, or of its COCO file)
    from typer.testing import CliRunner

    from cli import app

    staging = next(out.glob(".export.*")).name
    for given in (out, out / "coco.json"):
        res = CliRunner().invoke(app, ["info", str(given)], env={"COLUMNS": "400"})
        text = " ".join(res.output.split())
        assert res.exit_code == 1, text
        assert f"{out}: an export was interrupted while putting its files in: " in text
        assert f"still in {staging}/; the next engine annotate export into {out} finishes" in text
    with pytest.raises(FileExistsError, match=r"earlier export \(coco.json, labelme/ \(3 files\)"):
        export_annotations(ExportConfig(run=str(run), out=str(out)))
    assert not list(out.glob(".export.*"))
    assert sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) == sorted(
        p.name for p in ref.iterdir() if p.name != LOCK_NAME
    )
    for p in (ref / "labelme").iterdir():
        assert (out / "labelme" / p.name).is_file()
    assert (out / "images.txt").read_text() == (ref / "images.txt").read_text()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a killed process is a forked child")
def test_a_subset_write_killed_between_its_renames_is_finished_by_the_next_call(tmp_path):
    """SIGKILL after a first import's ``masks/`` was renamed in: before the forty-seventh round
    ``subset.json`` was written after the swap, so the folder held masks and no manifest, and
    the same import was refused ("holds files but no subset.json"). Now the manifest is
    swapped in with the masks, and the next call finishes the swap first."""
    out = tmp_path / "s"
    masks = {f"img{i}": np.full((4, 6), i % 2, np.uint8) for i in range(3)}
    _killed_after_renames_into(out, 1, lambda: write_subset(out, "Bicycle", "test", masks, {}))
    sub = write_subset(out, "Bicycle", "test", masks, {})  # the same write again: not refused
    assert not list(out.glob(".masks.*"))
    assert read_subset(out).stems == sub.stems == ("img0", "img1", "img2")
    assert sorted(p.name for p in (out / "masks").iterdir()) == [
        "img0.png",
        "img1.png",
        "img2.png",
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a killed process is a forked child")
@pytest.mark.parametrize("first", [True, False])
def test_engine_info_says_a_subset_write_was_killed_mid_swap_and_the_next_import_finishes_it(
    tmp_path, world, first
):
    """``engine annotate import`` killed between the renames of ``masks/`` and ``subset.json``:
    engine info showed a rewritten subset's old manifest over its new masks without a word
    (exit 0), and a first import's hidden staging folder as the subset, its masks "missing".
    It names the interrupted swap (exit 1) and what finishes it, which does (checked here)."""
    from typer.testing import CliRunner

    from cli import app

    data, run, _ = world
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e")))
    out = tmp_path / "s"

    def imported():
        return import_annotations(
            ImportConfig("coco", [str(res.coco)], "bicycle", str(data), str(out))
        )

    if not first:
        imported()
        (out / "masks" / "img000.png").unlink()  # the old subset: told apart below
    _killed_after_renames_into(out, 1, imported)  # killed once masks/ is renamed into ``out``
    (staging,) = out.glob(".masks.*")
    info = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    text = " ".join(info.output.split())
    assert info.exit_code == 1, text
    assert (
        f"{out}: an annotated subset's write (engine annotate import) was interrupted while "
        f"putting its files in: subset.json still in {staging.name}/; the next engine annotate "
        f"import --out {out} finishes it first" in text
    )
    assert ".masks." not in text.replace(f"{staging.name}/", ""), text  # not shown as the subset
    assert imported().stems == ("img000", "img001", "img002")  # what the line says
    assert not list(out.glob(".masks.*"))
    assert read_subset(out).stems == ("img000", "img001", "img002")
    assert (out / "masks" / "img000.png").is_file()
    info = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    assert info.exit_code == 0 and "interrupted" not in info.output, info.output


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a killed process is a forked child")
@pytest.mark.parametrize("renames", [0, 1])
def test_a_subset_rewrite_killed_mid_swap_lists_no_mask_problems_of_the_two_imports(
    tmp_path, world, renames
):
    """``engine annotate import --force`` of corrections over a subset, killed in its swap
    (crash-injection sweep, kill points 7 and 8): once the old ``masks/`` was set aside (0), or
    the new one was in beside the old ``subset.json`` (1). engine info listed, above the line on
    the interrupted swap, each mask as "missing", or the corrected one as "differs from what
    subset.json records ...: edited after the import? import the annotations again (with
    --force)": the masks of one import checked against the record of the other. Only the swap
    is the problem (exit 1); the next import finishes it."""
    import json

    from typer.testing import CliRunner

    from annotations.labelmap import read_label
    from cli import app

    data, run, _ = world
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e")))
    out = tmp_path / "s"
    import_annotations(ImportConfig("coco", [str(res.coco)], "bicycle", str(data), str(out)))
    coco = json.loads(res.coco.read_text())
    first = next(i["id"] for i in coco["images"] if Path(i["file_name"]).stem == "img000")
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != first]
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(coco))  # img000 corrected: its wheel and blob were not bicycles

    def corrected():
        cfg = ImportConfig("coco", [str(fixed)], "bicycle", str(data), str(out), replace=True)
        return import_annotations(cfg)

    _killed_after_renames_into(out, renames, corrected)
    info = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    text = " ".join(info.output.split())
    assert info.exit_code == 1, text
    assert "problem" not in text and "missing" not in text and "edited" not in text, text
    assert f"{out}: an annotated subset's write (engine annotate import) was interrupted" in text
    corrected()
    info = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    assert info.exit_code == 0 and "interrupted" not in info.output, info.output
    assert not read_label(out / "masks" / "img000.png").any()


def test_a_label_without_its_image_is_not_export_s_or_import_s_problem(tmp_path, world):
    """A precise label whose image is gone stopped export and import ("no image ... for 1
    label"), though both read the images only; the dataset's problem is engine info's."""
    import shutil

    data, run, _ = world
    copy = tmp_path / "data_copy"
    shutil.copytree(data, copy)
    label = next((copy / "annotations" / "test").glob("*.png"))
    shutil.copy(label, label.with_name("stray.png"))
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e"), data=str(copy)))
    assert res.images == 3
    sub = import_annotations(
        ImportConfig("coco", [str(res.coco)], "Bicycle", str(copy), str(tmp_path / "s"))
    )
    assert len(sub.stems) == 3


def test_an_export_into_a_run_a_subset_or_a_dataset_is_refused(tmp_path, world):
    """An export's files beside a label run's, an annotated subset's or a dataset's would mix
    with them (import reads a folder's JSON files): refused naming what the folder is, nothing
    written. A dataset is known by its images/<split>/ folders or by its spec file."""
    data, run, _ = world
    subset = write_subset(
        tmp_path / "sub", "Bicycle", "test", {"img000": np.zeros((4, 4), np.uint8)}, {}
    )
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "dataset.yaml").write_text(f"images: {data / 'images'}\n")
    for other, what in (
        (run, "a label run"),
        (subset.root, "an annotated subset"),
        (data, "a dataset's root"),
        (spec, "a dataset's root"),
    ):
        files = sorted(other.rglob("*"))
        with pytest.raises(ValueError, match=f"it is {what}.*; an export needs a folder of its"):
            export_annotations(ExportConfig(run=str(run), out=str(other), force=True))
        assert sorted(other.rglob("*")) == files


def test_an_export_holds_one_image_s_masks_at_a_time(tmp_path, world, monkeypatch):
    """At 4032x3024 an instance's mask is 12 MB: the export reads, writes and lets go of each
    image before the next (50 picked images of 10 instances would otherwise hold 6 GB). Each
    image's instances are read once, after the ones before them are freed."""
    import gc
    import weakref

    _, run, _ = world
    read = LabelRun.instance_windows  # each mask inside its box (no (N, H, W) masks at all)
    alive: list[weakref.ref] = []

    def instances(self, split, stem):
        gc.collect()
        assert [r for r in alive if r() is not None] == [], "an earlier image is still held"
        inst, header = read(self, split, stem)
        alive.append(weakref.ref(inst))
        return inst, header

    monkeypatch.setattr(LabelRun, "instance_windows", instances)
    formats = ("coco", "labelme", "labelstudio")
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e"), formats=formats))
    assert len(alive) == res.images == 3 and res.instances == 3
    coco = json.loads(res.coco.read_text())
    assert [a["image_id"] for a in coco["annotations"]] == [1, 1, 2]


def test_an_annotated_subset_exports_for_another_pass_and_imports_back_the_same(tmp_path, world):
    """A QA pass: export a subset (its class pixels, its unannotated regions as the
    'unannotated' category), import it back unchanged: the same masks, 255 included, in both
    formats."""
    from typer.testing import CliRunner

    from annotations.subset import write_subset
    from cli import app

    data, _, truth = world
    masks = {}
    for stem, m in truth.items():
        mask = ndimage.binary_fill_holes(m).astype(np.uint8)  # polygons carry no holes
        masks[stem] = mask
    masks["img001"][0:6, 50:60] = 255  # an undecided region
    extra = {"data": str(data), "data_resolved": str(data.resolve())}
    sub = write_subset(tmp_path / "sub", "Bicycle", "test", masks, {}, extra)
    out = tmp_path / "again"
    res = CliRunner().invoke(app, ["annotate", "export", str(sub.root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    coco = json.loads((out / "coco.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["Bicycle", "unannotated"]
    assert coco["info"]["mass_engine_export"]["subset"] == str(sub.root)
    shapes = json.loads((out / "labelme" / "img001.json").read_text())["shapes"]
    undecided = [s for s in shapes if s["label"] != "Bicycle"]  # LabelMe names it as COCO does
    assert [(s["label"], s["group_id"]) for s in undecided] == [("unannotated", None)]
    for fmt, src in (("coco", out / "coco.json"), ("labelme", out / "labelme")):
        back = import_annotations(
            ImportConfig(fmt, [str(src)], "Bicycle", str(data), str(tmp_path / f"b-{fmt}"))
        )
        for stem, m in masks.items():
            assert np.array_equal(back.mask(stem), m), (fmt, stem)
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "300"})
    text = " ".join(res.output.split())
    assert f"exported from │ annotated subset {sub.root} (split test" in text
    assert f"--class Bicycle --data {data.resolve()} --split test" in text
    with pytest.raises(ValueError, match="the subset annotates split 'test', not 'val'"):
        export_annotations(ExportConfig(run=str(sub.root), out=str(tmp_path / "x"), split="val"))


def test_a_subset_mask_of_one_class_pixel_exports_as_an_instance(tmp_path, world):
    """An annotated image whose class is one pixel is exported with that instance (an image
    without the class, with none) and imports back the same."""
    data, _, truth = world
    masks = {stem: np.zeros_like(m, np.uint8) for stem, m in truth.items()}
    first, *_ = masks
    masks[first][5, 7] = 1
    extra = {"data": str(data), "data_resolved": str(data.resolve())}
    sub = write_subset(tmp_path / "sub", "Bicycle", "test", masks, {}, extra)
    out = tmp_path / "again"
    res = export_annotations(ExportConfig(str(sub.root), str(out)))  # LabelMe: polygons
    assert (res.images, res.instances, res.class_pixels, res.hole_pixels) == (len(masks), 1, 1, 0)
    coco = json.loads((out / "coco.json").read_text())
    assert [a["area"] for a in coco["annotations"]] == [1]
    back = import_annotations(
        ImportConfig("coco", [str(out / "coco.json")], "Bicycle", str(data), str(tmp_path / "b"))
    )
    for stem, m in masks.items():
        assert np.array_equal(back.mask(stem), m), stem


def test_a_subset_moved_with_its_dataset_finds_it_beside_itself(tmp_path, world, monkeypatch):
    """A project folder (dataset, subset) renamed or copied elsewhere, the subset imported from
    a working directory beside both (``--data data --out "subsets/b é"``): the dataset as typed
    and as it resolved are gone, it is where it was beside the subset, which subset.json now
    records (``out``), as label runs and fused datasets record theirs. Before, export of the
    subset said ``data: dataset root not found`` and the report did not find its images."""
    from typer.testing import CliRunner

    from cli import app
    from engine.report import ReportConfig, _data_root

    data, _, truth = world
    project = tmp_path / "project"
    project.mkdir()
    shutil.move(data, project / "data")
    (project / "m").mkdir()
    for stem, m in truth.items():
        Image.fromarray(m.astype(np.uint8)).save(project / "m" / f"{stem}.png")
    monkeypatch.chdir(project)
    import_annotations(ImportConfig("png", ["m"], "Bicycle", "data", "subsets/b é", progress=False))
    assert json.loads(Path("subsets/b é/subset.json").read_text())["out"] == "subsets/b é"
    monkeypatch.chdir(tmp_path)
    project.rename(tmp_path / "moved")
    here = Path("moved/subsets/b é")
    sub = read_subset(here)
    assert sub.data_root is not None and sub.data_root.resolve() == tmp_path / "moved" / "data"
    assert _data_root(ReportConfig(str(here), "rep"), sub, None)[0] == str(sub.data_root)
    res = CliRunner().invoke(app, ["annotate", "export", str(here), "--out", "again"])
    assert res.exit_code == 0, res.output
    info = sub.info
    del info["out"]  # a subset imported before: found as typed or as resolved, as before
    (here / "subset.json").write_text(json.dumps(info))
    assert read_subset(here).data_root == Path("data")  # not found: named as typed


def test_an_export_copied_with_its_project_relates_to_the_copys_run(tmp_path, monkeypatch):
    """An export folder copied with its project (``cp -r project copy``, the original kept): its
    record names the run as typed (``run``, relative to the export's working directory) and
    where that was (``run_resolved``, the original's). Before, importing the copy's export from
    elsewhere compared it with the original's run and named it, and ``engine info`` on the
    copy's export suggested importing with the original's dataset. Now the run is looked for
    where it was beside the export (``config.out``) first: the copy's."""
    from engine.annotation_files import annotation_files

    project = tmp_path / "project"
    make_dataset(project / "data", "test", n=2, size=(H, W))
    make_run(project / "run", project / "data", {"img000": [disk(H, W, 20, 30, 9)]}, (H, W))
    doc = json.loads((project / "run" / "run.json").read_text())
    doc["config"]["data"], doc["config"]["out"] = "data", "run"
    doc["data_resolved"] = str(project / "data")
    (project / "run" / "run.json").write_text(json.dumps(doc))
    monkeypatch.chdir(project)
    export_annotations(ExportConfig(run="run", out="export", progress=False))
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    monkeypatch.chdir(tmp_path)  # neither project's root: "run" names nothing here
    for where in (copy, project):
        found = annotation_files(where / "export")
        assert found is not None and {f.format for f in found} == {"coco", "labelme"}
        for files in found:
            assert f"--data {where / 'data'} " in files.import_commands()[0]
        for fmt, read in (("coco", "coco.json"), ("labelme", "labelme")):
            out = tmp_path / f"{where.name}-{fmt}"
            source, data = str(where / "export" / read), str(where / "data")
            sub = import_annotations(ImportConfig(fmt, [source], "Bicycle", data, str(out)))
            (ran,) = sub.info["unchanged_exports"]  # imported as exported: said, naming the run
            assert Path(ran).resolve() == where / "run", ran


def _segmask_export(root, colors: dict[str, tuple[int, int, int]], painted: dict[str, np.ndarray]):
    """A CVAT 'Segmentation mask 1.1' export as its Datumaro writes it: labelmap.txt and one
    colour-coded RGB PNG per image in SegmentationClass/."""
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{name}:{','.join(map(str, rgb))}::" for name, rgb in colors.items()]
    (root / "SegmentationClass").mkdir(parents=True)
    (root / "labelmap.txt").write_text("\n".join(lines) + "\n")
    for stem, rgb in painted.items():
        Image.fromarray(rgb).save(root / "SegmentationClass" / f"{stem}.png")


def test_cvat_segmentation_mask_export_imports_by_its_label_colours(tmp_path, world, caplog):
    data, _, truth = world
    colors = {"background": (0, 0, 0), "bicycle": (128, 0, 0), "unannotated": (0, 0, 128),
              "Car": (0, 128, 0)}  # fmt: skip
    painted = {}
    for stem, m in truth.items():
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[m] = colors["bicycle"]
        painted[stem] = rgb
    painted["img001"][0:4, 0:8] = colors["unannotated"]
    painted["img002"][40:44, 0:8] = colors["Car"]
    root = tmp_path / "cvat"
    _segmask_export(root, colors, painted)
    with caplog.at_level("WARNING", logger="engine.annotate"):
        sub = import_annotations(
            ImportConfig("segmask", [str(root)], "Bicycle", str(data), str(tmp_path / "s"))
        )
    want = {s: m.astype(np.uint8) for s, m in truth.items()}
    want["img001"][0:4, 0:8] = 255
    for stem, m in want.items():
        assert np.array_equal(sub.mask(stem), m), stem
    assert sub.info["other_labels"] == {"Car": 1}  # images holding another class
    assert any("'Car' (1)" in r.getMessage() for r in caplog.records)
    from typer.testing import CliRunner

    from cli import app

    res = CliRunner().invoke(app, ["info", str(root)], env={"COLUMNS": "300"})
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert f"CVAT segmentation masks {root}" in text and "bicycle │ 2 images" in text
    assert "Car │ 1 image" in text and "unannotated │ 1 image" in text
    assert f"engine annotate import {root} --format segmask --class bicycle" in text
    painted["img000"][0, 0] = (1, 2, 3)  # a colour the label map lacks
    bad = tmp_path / "bad"
    _segmask_export(bad, colors, painted)
    with pytest.raises(ValueError, match=r"img000.png: colour \(1, 2, 3\) is not in the label map"):
        import_annotations(
            ImportConfig(
                "segmask",
                [str(bad / "SegmentationClass")],
                "Bicycle",
                str(data),
                str(tmp_path / "s2"),
            )
        )
    with pytest.raises(ValueError, match=r"no label named 'Boat' \(labels: background, bicycle"):
        import_annotations(
            ImportConfig("segmask", [str(root)], "Boat", str(data), str(tmp_path / "s3"))
        )
    with pytest.raises(FileNotFoundError, match="no labelmap.txt here"):
        import_annotations(
            ImportConfig("segmask", [str(data)], "Bicycle", str(data), str(tmp_path / "s4"))
        )


def test_a_bad_label_map_line_is_named(tmp_path):
    from annotations.interchange import read_labelmap

    path = tmp_path / "labelmap.txt"
    path.write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\nbicycle:128,0::\n")
    with pytest.raises(ValueError, match=r"labelmap.txt: line 3 is not 'label:r,g,b:...'"):
        read_labelmap(path)
    path.write_text("# only a comment\n")
    with pytest.raises(ValueError, match="no labels in the label map"):
        read_labelmap(path)
    # a label with ':' in it, as Datumaro writes it (not escaped): was 'line 2 is not ...'
    path.write_text("background:0,0,0::\nsign:stop:250,50,83::\nVélo:1,2,3\n")
    want = {"background": (0, 0, 0), "sign:stop": (250, 50, 83), "Vélo": (1, 2, 3)}
    assert read_labelmap(path) == want


def test_the_import_format_is_told_by_the_files(tmp_path, world):
    """--format auto (the default): a COCO file or export folder, a LabelMe folder, PNG masks, a
    CVAT segmentation-mask export; sources of two formats, or of none, say to give --format."""
    from engine.annotate import detect_format

    data, run, truth = world
    out = tmp_path / "e"
    export_annotations(ExportConfig(run=str(run), out=str(out)))
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for stem, m in truth.items():
        Image.fromarray(m.astype(np.uint8)).save(pngs / f"{stem}.png")
    cvat = tmp_path / "cvat"
    _segmask_export(cvat, {"background": (0, 0, 0), "Bicycle": (9, 9, 9)}, {})
    assert detect_format([str(out / "coco.json")]) == detect_format([str(out)]) == "coco"
    assert detect_format([str(out / "labelme")]) == "labelme"
    assert detect_format([str(pngs)]) == detect_format([str(pngs / "img000.png")]) == "png"
    upper = tmp_path / "UPPER"  # a camera's or Windows tool's suffixes: .PNG, .JSON
    upper.mkdir()
    (upper / "img000.PNG").write_bytes((pngs / "img000.png").read_bytes())
    assert detect_format([str(upper)]) == "png"
    (upper / "img000.PNG").unlink()
    (upper / "A.JSON").write_bytes((out / "labelme" / "img000.json").read_bytes())
    assert detect_format([str(upper)]) == "labelme"
    assert (
        detect_format([str(cvat)]) == detect_format([str(cvat / "SegmentationClass")]) == "segmask"
    )
    with pytest.raises(ValueError, match=r"different formats \(coco: .*; png: "):
        detect_format([str(out / "coco.json"), str(pngs)])
    with pytest.raises(ValueError, match="give --format"):
        detect_format([str(tmp_path / "e" / "images.txt")])
    with pytest.raises(FileNotFoundError, match="annotation source not found"):
        detect_format([str(tmp_path / "nope.json")])
    sub = import_annotations(
        ImportConfig("auto", [str(pngs)], "Bicycle", str(data), str(tmp_path / "s"))
    )
    assert sub.info["import_format"] == "png"
    for stem, m in truth.items():
        assert np.array_equal(sub.mask(stem), m.astype(np.uint8))


def test_an_annotation_tool_s_zip_download_imports_as_it_is(tmp_path, world, caplog):
    """CVAT downloads a zip (COCO: annotations/instances_default.json; segmentation masks:
    labelmap.txt + SegmentationClass/): it imports without unpacking, subset.json names its
    files as ARCHIVE!MEMBER, and an error inside names the archive, not a temporary copy."""
    import zipfile

    data, run, truth = world
    export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e"), formats=("coco",)))
    download = tmp_path / "task_1_dataset.zip"
    with zipfile.ZipFile(download, "w") as z:
        z.write(tmp_path / "e" / "coco.json", "annotations/instances_default.json")
    sub = import_annotations(
        ImportConfig("auto", [str(download)], "Bicycle", str(data), str(tmp_path / "s"))
    )
    assert sub.info["import_format"] == "coco"
    assert sub.info["sources"]["img000"] == f"{download}!annotations/instances_default.json"
    for stem, m in truth.items():
        assert np.array_equal(sub.mask(stem), m.astype(np.uint8)), stem
    # the export came back unchanged: the warning names the zip's file, not its deleted copy
    unchanged = f"{download}!annotations/instances_default.json: the masks imported from it"
    assert unchanged in caplog.text and "engine-import-" not in caplog.text, caplog.text
    cvat = tmp_path / "cvat"
    _segmask_export(
        cvat,
        {"background": (0, 0, 0), "Bicycle": (9, 9, 9)},
        {"nope": np.zeros((H, W, 3), np.uint8)},
    )
    masks_zip = tmp_path / "masks.zip"
    with zipfile.ZipFile(masks_zip, "w") as z:
        for f in cvat.rglob("*"):
            z.write(f, f"export/{f.relative_to(cvat).as_posix()}")  # one wrapping folder
    with pytest.raises(ValueError) as e:
        import_annotations(
            ImportConfig("auto", [str(masks_zip)], "Bicycle", str(data), str(tmp_path / "s2"))
        )
    assert f"{masks_zip}!export/SegmentationClass/nope.png" in str(e.value)
    assert "engine-import-" not in str(e.value)
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    with pytest.raises(ValueError, match=r"broken.zip: cannot read the archive"):
        import_annotations(
            ImportConfig(
                "coco", [str(tmp_path / "broken.zip")], "Bicycle", str(data), str(tmp_path / "s3")
            )
        )
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as z:  # a download of nothing (a folder)
        z.mkdir("annotations")
    with pytest.raises(ValueError) as e:  # it named a temporary folder that does not exist
        import_annotations(
            ImportConfig(
                "auto", [str(tmp_path / "empty.zip")], "Bicycle", str(data), str(tmp_path / "s4")
            )
        )
    assert (
        str(e.value)
        == f"{tmp_path / 'empty.zip'}: the archive is empty (no annotation files in it)"
    )
    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as z:  # --format cvat of another download
        z.writestr("readme.txt", "hello")
    with pytest.raises(FileNotFoundError) as e:  # it said "no .xml files in this folder"
        import_annotations(
            ImportConfig(
                "cvat", [str(tmp_path / "notes.zip")], "Bicycle", str(data), str(tmp_path / "s5")
            )
        )
    assert str(e.value) == f"{tmp_path / 'notes.zip'}: no .xml files in this archive"


def test_a_download_that_compresses_more_than_the_ratio_unpacks_within_the_slack(tmp_path):
    """The zip-bomb bound is 100 times the archive's size plus 1 GiB: a few MB of JSON that
    compresses a thousand times (indented, padded: 4 MB of spaces in 4 KB) unpacks as it is."""
    import zipfile

    from engine.annotate import unzip

    download = tmp_path / "download.zip"
    with zipfile.ZipFile(download, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("annotations/instances_default.json", b"{}" + b" " * (4 << 20))
    assert download.stat().st_size * 100 < 4 << 20
    into = unzip(download, tmp_path / "u")
    assert (into / "annotations" / "instances_default.json").stat().st_size == 2 + (4 << 20)


def test_a_zip_bomb_or_a_name_given_twice_is_refused_before_anything_is_unpacked(
    tmp_path, world, monkeypatch
):
    """A zip whose members declare far more than an annotation download holds (a 3 MB zip of
    3 GB of spaces filled /tmp and took 6 GB of memory), or more than the disk has free, is
    refused before a byte is written; two members unpacking to one file (the second replaced
    the first unsaid) are refused naming the name; a '../' member stays inside the copy."""
    import zipfile

    from typer.testing import CliRunner

    import engine.annotate
    from cli import app

    data, run, _ = world
    export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e"), formats=("coco",)))
    coco = (tmp_path / "e" / "coco.json").read_bytes()
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("annotations/instances_default.json", coco)
        z.writestr("annotations/zeros.json", b" " * (4 << 20))  # 4 MB in 4 KB
    monkeypatch.setattr(engine.annotate.archives, "UNZIP_SLACK", 1 << 20)  # a small bomb
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR read again
    (tmp_path / "tmp").mkdir()
    for args in (["info", str(bomb)], ["annotate", "import", str(bomb), "--class", "Bicycle",
                 "--data", str(data), "--split", "test", "--out", str(tmp_path / "s")]):  # fmt: skip
        res = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
        text = " ".join(res.output.split())
        assert res.exit_code == 2, res.output
        assert (
            f"error: {bomb}: its files would unpack to 0.0 GB from 0.0 MB (over 100 times" in text
        )
        assert not list((tmp_path / "tmp").iterdir()) and not (tmp_path / "s").exists()
    monkeypatch.setattr(engine.annotate.archives, "UNZIP_SLACK", 1 << 30)
    free = shutil.disk_usage(tmp_path)._replace(free=1000)
    monkeypatch.setattr(engine.annotate.archives.shutil, "disk_usage", lambda _: free)
    with pytest.raises(ValueError, match=r"bomb.zip: its files would unpack to 0.0 GB, but the "
                       r".* has 0.0 GB free; set TMPDIR"):  # fmt: skip
        engine.annotate.unzip(bomb, tmp_path / "tmp" / "u")
    monkeypatch.undo()
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(twice, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("annotations/instances_default.json", coco)
        z.writestr("annotations/instances_default.json", b"{}")
    with pytest.raises(ValueError) as e:
        import_annotations(
            ImportConfig("auto", [str(twice)], "Bicycle", str(data), str(tmp_path / "s"))
        )
    assert str(e.value) == (
        f"{twice}: holds 'annotations/instances_default.json' twice: which copy is meant is "
        "not known; not read"
    )
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("annotations/instances_default.json", coco)
        z.writestr("../../outside.json", b"{}")
        z.writestr("/abs.json", b"{}")
    clash = tmp_path / "clash.zip"  # a file and a folder of one name
    with zipfile.ZipFile(clash, "w") as z:
        z.writestr("annotations", b"x")
        z.writestr("annotations/instances_default.json", coco)
    with pytest.raises(ValueError) as e:
        engine.annotate.unzip(clash, tmp_path / "in" / "c")
    assert str(e.value) == (
        f"{clash}: cannot read the archive ({clash}!annotations/instances_default.json: Not a "
        "directory)"
    )
    folder = engine.annotate.unzip(slip, tmp_path / "in" / "u")
    assert not (tmp_path / "outside.json").exists() and not Path("/abs.json").exists()
    assert sorted(p.name for p in folder.rglob("*.json")) == [
        "abs.json",
        "instances_default.json",
        "outside.json",
    ]


def _cvat_download_unpacked_in_own_tmp(tmp_path, world, monkeypatch):  # noqa: ANN001, ANN202
    """``(DATA, TASK.zip)``: the world's run exported as COCO and zipped as CVAT's download
    holds it, with TMPDIR a fresh, empty ``tmp_path / "tmp"``."""
    import zipfile

    data, run, _ = world
    export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e"), formats=("coco",)))
    download = tmp_path / "task.zip"
    with zipfile.ZipFile(download, "w") as z:
        z.write(tmp_path / "e" / "coco.json", "annotations/instances_default.json")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR read again
    (tmp_path / "tmp").mkdir()
    return data, download


def test_a_full_temporary_disk_while_unpacking_a_zip_is_exit_74_naming_it(
    tmp_path, world, monkeypatch
):
    """A full or over-quota TMPDIR while a zip download is unpacked (the free-space check
    passed: a quota, or files made meanwhile) blamed the download: "ARCHIVE: cannot read the
    archive (ARCHIVE!x.json: No space left on device)", exit code 2. Now the one line of a
    full disk, naming the temporary folder, exit code 74; nothing left there."""
    import errno
    import zipfile

    from typer.testing import CliRunner

    from cli import app

    data, download = _cvat_download_unpacked_in_own_tmp(tmp_path, world, monkeypatch)

    def full(self, member, path=None, pwd=None, named=True):
        target = Path(path) / member.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"{")  # what fitted
        raise OSError(errno.ENOSPC, "No space left on device", str(target) if named else None)

    for named in (True, False):  # the file made (an inode refused), or a write refused
        monkeypatch.setattr(zipfile.ZipFile, "extract", functools.partialmethod(full, named=named))
        for args in (["info", str(download)], ["annotate", "import", str(download), "--class",
                     "Bicycle", "--data", str(data), "--split", "test", "--out", str(tmp_path / "s")]):  # fmt: skip
            res = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
            assert res.exit_code == 74, res.output
            assert " ".join(res.output.split()) == (
                f"error: {tmp_path / 'tmp'}: No space left on device while unpacking {download} "
                "into it (or set TMPDIR to a folder on another disk); make room and run the same "
                "command again"
            )
            assert not list((tmp_path / "tmp").iterdir()) and not (tmp_path / "s").exists()


@pytest.mark.parametrize("fault", ["EIO", "ESTALE", "EMFILE", "ENOSPC at mkdtemp"])
def test_a_zip_read_error_names_the_archive_not_the_temporary_folder(
    tmp_path, world, monkeypatch, fault
):
    """A read of the download failing (a failing disk, EIO; a stale NFS handle, ESTALE; no
    file named) was blamed on TMPDIR, "/tmp: Input/output error while unpacking task.zip into
    it", exit code 74: it names the archive now. The open-file limit reached while unpacking
    (EMFILE) was "cannot read the archive ([Errno 24] ...)", exit code 2: it is the ulimit's
    line, exit code 71. A TMPDIR too full to make the unpack folder in named that folder,
    never made: it names TMPDIR."""
    import errno
    import io

    from typer.testing import CliRunner

    import engine.annotate
    from cli import app

    data, download = _cvat_download_unpacked_in_own_tmp(tmp_path, world, monkeypatch)
    code, real_open = getattr(errno, fault.split()[0]), io.open

    class Failing(io.FileIO):  # the disk under the archive: its first member's bytes fail
        def readinto(self, b):
            if self.tell() == 0:  # the central directory, at the end, was read
                raise OSError(code, os.strerror(code))
            return super().readinto(b)

    def opened(path, mode="r", buffering=-1, *args, **kwargs):  # as zipfile opens a path
        if os.fspath(path) != str(download):
            return real_open(path, mode, buffering, *args, **kwargs)
        return Failing(path, mode) if buffering == 0 else io.BufferedReader(Failing(path, mode))

    if fault == "ENOSPC at mkdtemp":

        def mkdtemp(*args, **kwargs):
            raise OSError(code, os.strerror(code), str(tmp_path / "tmp" / "engine-x1y2"))

        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    else:  # zipfile opens a path with io.open; unzip opens it with open
        monkeypatch.setattr(io, "open", opened)
        monkeypatch.setattr(engine.annotate.archives, "open", opened, raising=False)
    said = {
        "EIO": f"{download}: Input/output error; check the disk",
        "ESTALE": f"{download}: Stale file handle; check that no other machine removed or "
        "replaced it (a network file system's stale file handle)",
        "EMFILE": "too many open files (ulimit -n: ",
        "ENOSPC at mkdtemp": f"{tmp_path / 'tmp'}: No space left on device while unpacking "
        f"{download} into it (or set TMPDIR to a folder on another disk); make room",
    }[fault]
    exit_code = 71 if fault == "EMFILE" else 74
    for args in (["info", str(download)], ["annotate", "import", str(download), "--class",
                 "Bicycle", "--data", str(data), "--split", "test", "--out", str(tmp_path / "s")]):  # fmt: skip
        res = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
        text = " ".join(res.output.split())
        assert res.exit_code == exit_code, res.output
        assert text.startswith(f"error: {said}"), text
        assert text.endswith(
            "or pass fewer --workers" if fault == "EMFILE" else "and run the same command again"
        )
        assert not list((tmp_path / "tmp").iterdir()) and not (tmp_path / "s").exists()


@pytest.mark.parametrize("kind", ["encrypted", "deflate64"])
def test_a_zip_zipfile_cannot_unpack_is_one_line_naming_it(tmp_path, world, kind):
    """A password-protected download, or one Windows compressed with deflate64: zipfile's
    errors named neither the archive nor the file ("That compression method is not
    supported"); said naming both, before anything is unpacked."""
    import zipfile

    data, _, _ = world
    download = tmp_path / "task.zip"
    with zipfile.ZipFile(download, "w") as z:
        z.writestr("annotations/instances_default.json", b"{}")
    raw = bytearray(download.read_bytes())
    for header, flags, method in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = raw.find(header)
        if kind == "encrypted":
            raw[at + flags] |= 1
        else:
            raw[at + method] = 9
    download.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as e:
        import_annotations(
            ImportConfig("coco", [str(download)], "Bicycle", str(data), str(tmp_path / "s"))
        )
    said = "is encrypted; download" if kind == "encrypted" else "is compressed by method 9,"
    assert str(e.value).startswith(f"{download}: 'annotations/instances_default.json' {said}")
    assert not (tmp_path / "s").exists()


def test_engine_info_describes_a_zip_download(tmp_path, world):
    """`engine info` on an annotation tool's zip reads it as import does: its files named
    ARCHIVE!MEMBER, the import line naming the zip itself; a zip of nothing it reads says so."""
    import zipfile

    from typer.testing import CliRunner

    from cli import app

    data, run, _ = world
    export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e"), formats=("coco",)))
    download = tmp_path / "task_1_dataset.zip"
    with zipfile.ZipFile(download, "w") as z:
        z.write(tmp_path / "e" / "coco.json", "annotations/instances_default.json")
    res = CliRunner().invoke(app, ["info", str(download)], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert f"COCO file {download}!annotations/instances_default.json" in text
    assert "Bicycle │ 3 annotations" in text
    assert f"import: engine annotate import {download} --format coco --class Bicycle" in text
    assert "engine-info-" not in text
    with zipfile.ZipFile(download, "a") as z:  # two files: the zip's one line, said once
        z.write(tmp_path / "e" / "coco.json", "annotations/instances_other.json")
    res = CliRunner().invoke(app, ["info", str(download)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and res.output.count("import: engine annotate import") == 1
    other = tmp_path / "notes.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("readme.txt", "hello")
    res = CliRunner().invoke(app, ["info", str(other)], env={"COLUMNS": "300"})
    assert res.exit_code == 2
    assert f"{other}: no annotation files in this archive" in " ".join(res.output.split())
    # a problem found inside the zip names it, not the deleted temporary copy it was read from
    coco = json.loads((tmp_path / "e" / "coco.json").read_text())
    coco["annotations"][0]["segmentation"] = [[1, 1, 5, 5]]  # a 2-point polygon
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("annotations/instances_default.json", json.dumps(coco))
    res = CliRunner().invoke(app, ["info", str(bad)], env={"COLUMNS": "300"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and f"{bad}!annotations/instances_default.json: " in text, text
    assert "engine-info-" not in text


def test_cvat_for_images_xml_imports_and_is_described(tmp_path, world):
    """CVAT's own export (a zip with annotations.xml): told by its file, imported with its
    polygons and masks, described by engine info with the import line."""
    import zipfile

    from typer.testing import CliRunner

    from cli import app

    data, _, truth = world
    ys, xs = np.nonzero(truth["img001"])
    top, left = int(ys.min()), int(xs.min())
    patch = truth["img001"][top : ys.max() + 1, left : xs.max() + 1].ravel()
    runs = np.diff(np.r_[0, np.flatnonzero(patch[1:] != patch[:-1]) + 1, patch.size])
    runs = np.r_[0, runs] if patch[0] else runs
    rle = ", ".join(str(int(r)) for r in runs)
    height, width = int(ys.max()) - top + 1, int(xs.max()) - left + 1
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n<version>1.1</version>\n'
        f'<image id="0" name="img000.jpg" width="{W}" height="{H}">'
        '<polygon label="Bicycle" points="2.00,2.00;10.00,2.00;10.00,6.00;2.00,6.00"></polygon>'
        '<box label="Car" xtl="0" ytl="0" xbr="5" ybr="5"></box></image>\n'
        f'<image id="1" name="img001.jpg" width="{W}" height="{H}">'
        f'<mask label="Bicycle" rle="{rle}" left="{left}" top="{top}" width="{width}" '
        f'height="{height}"></mask></image>\n'
        "</annotations>\n"
    )
    download = tmp_path / "task_7_annotations_cvat.zip"
    with zipfile.ZipFile(download, "w") as z:
        z.writestr("annotations.xml", xml)
    sub = import_annotations(
        ImportConfig("auto", [str(download)], "Bicycle", str(data), str(tmp_path / "s"))
    )
    assert sub.info["import_format"] == "cvat" and sub.stems == ("img000", "img001")
    square = np.zeros((H, W), np.uint8)
    square[2:6, 2:10] = 1
    assert np.array_equal(sub.mask("img000"), square)
    assert np.array_equal(sub.mask("img001"), truth["img001"].astype(np.uint8))
    assert sub.info["other_labels"] == {"Car": 1}
    assert sub.info["sources"]["img001"] == f"{download}!annotations.xml"
    res = CliRunner().invoke(app, ["info", str(download)], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert f"CVAT XML {download}!annotations.xml" in text
    assert "images │ 2 (0 without any annotation)" in text and "Car │ 1 shape" in text
    assert "shapes │ box 1, mask 1, polygon 1" in text
    assert f"import: engine annotate import {download} --format cvat --class Bicycle" in text


def test_label_studio_s_coco_export_imports(tmp_path, world):
    """Label Studio's COCO export, as its 1.23.2 server wrote it (docs/annotate.md): file_name is
    the task's image URL, an image without regions has no width or height, a rectangle is a
    bbox with an empty segmentation, categories count from 0."""
    data, _, _ = world
    url = "/data/local-files/?d=tmp/x/data/images/test/{}"
    coco = {
        "images": [
            {"width": W, "height": H, "id": 0, "file_name": url.format("img000.jpg")},
            {"width": None, "height": None, "id": 1, "file_name": url.format("img001.jpg")},
            {"width": None, "height": None, "id": 2, "file_name": "/data/upload/1/0a1b2c3d-img002.jpg"},
        ],
        "categories": [{"id": 0, "name": "Bicycle"}, {"id": 1, "name": "unannotated"}],
        "annotations": [
            {"id": 0, "image_id": 0, "category_id": 0, "segmentation": [[8.0, 2.0, 12.0, 2.0, 12.0, 6.0, 8.0, 6.0]],
             "bbox": [8.0, 2.0, 4.0, 4.0], "ignore": 0, "iscrowd": 0, "area": 16.0},
            {"id": 1, "image_id": 0, "category_id": 1, "segmentation": [], "bbox": [0.0, 36.0, 16.0, 12.0],
             "ignore": 0, "iscrowd": 0, "area": 192.0},
        ],
        "info": {"year": 2026, "version": "1.0", "contributor": "Label Studio"},
    }  # fmt: skip
    (tmp_path / "result.json").write_text(json.dumps(coco))
    sub = import_annotations(
        ImportConfig(
            "auto", [str(tmp_path / "result.json")], "Bicycle", str(data), str(tmp_path / "s")
        )
    )
    want = np.zeros((H, W), np.uint8)
    want[2:6, 8:12] = 1
    want[36:48, 0:16] = 255
    assert sub.stems == ("img000", "img001", "img002")
    assert np.array_equal(sub.mask("img000"), want)
    assert not sub.mask("img001").any() and not sub.mask("img002").any()
    coco["images"][1]["file_name"] = url.format("img009.jpg")  # no size, and not in the split
    (tmp_path / "result.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="image 'img009' is not in split 'test'"):
        import_annotations(
            ImportConfig(
                "coco", [str(tmp_path / "result.json")], "Bicycle", str(data), str(tmp_path / "s2")
            )
        )


def test_yolo_segmentation_labels_import_with_their_dataset_s_names(tmp_path, world, caplog):
    """A Roboflow-style YOLO export: ROOT/data.yaml, ROOT/test/labels/<renamed stem>.txt; told
    by its files, the class found by name, other classes left out."""
    data, _, _ = world
    labels = tmp_path / "yolo" / "test" / "labels"
    labels.mkdir(parents=True)
    (tmp_path / "yolo" / "data.yaml").write_text("nc: 2\nnames: ['car', 'Bicycle']\n")
    square = " ".join(f"{x / W} {y / H}" for x, y in [(2, 2), (10, 2), (10, 6), (2, 6)])
    (labels / "img000_jpg.rf.68cb444f62494b5756c4708d119a66da.txt").write_text(
        f"1 {square}\n0 {square}\n"
    )
    (labels / "img001_jpg.rf.0123456789abcdef0123456789abcdef.txt").write_text("")
    with caplog.at_level("WARNING", logger="engine.annotate"):
        sub = import_annotations(
            ImportConfig("auto", [str(labels)], "Bicycle", str(data), str(tmp_path / "s"))
        )
    assert sub.info["import_format"] == "yolo" and sub.stems == ("img000", "img001")
    from engine.annotate import detect_format

    one = labels / "img000_jpg.rf.68cb444f62494b5756c4708d119a66da.txt"
    assert detect_format([str(one)]) == "yolo"  # a label file given by name is told too
    want = np.zeros((H, W), np.uint8)
    want[2:6, 2:10] = 1
    assert np.array_equal(sub.mask("img000"), want) and not sub.mask("img001").any()
    assert sub.info["other_labels"] == {"car": 1} and "'car' (1)" in caplog.text
    from typer.testing import CliRunner

    from cli import app

    res = CliRunner().invoke(app, ["info", str(labels)], env={"COLUMNS": "300"})
    text = " ".join(res.output.split())
    assert f"YOLO labels {labels}" in text and "images │ 2 (1 without any annotation)" in text
    assert "Bicycle │ 1 object" in text and "car │ 1 object" in text
    assert f"import: engine annotate import {labels} --format yolo --class Bicycle" in text
    with pytest.raises(ValueError, match=r"data.yaml: no class named 'Person' \(classes: car, "):
        import_annotations(
            ImportConfig("yolo", [str(labels)], "Person", str(data), str(tmp_path / "s2"))
        )
    (tmp_path / "c.json").write_text("{}")  # another format given as YOLO: named, not data.yaml
    with pytest.raises(ValueError, match=r"c\.json: not YOLO labels \(a <image stem>\.txt file"):
        import_annotations(
            ImportConfig(
                "yolo", [str(tmp_path / "c.json")], "Bicycle", str(data), str(tmp_path / "s3")
            )
        )


def test_engine_info_tells_a_tool_s_download_from_a_dataset_root(tmp_path, world):
    """Label Studio's COCO zip holds an empty images/ beside result.json, CVAT's XML download
    an images/ of files: neither is a dataset root (images/<split>/), and both are described."""
    import zipfile

    from typer.testing import CliRunner

    from cli import app

    data, run, _ = world
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "e"), formats=("coco",)))
    download = tmp_path / "project-1-coco.zip"
    with zipfile.ZipFile(download, "w") as z:
        z.writestr("images/", "")
        z.write(res.coco, "result.json")
    cvat = tmp_path / "cvat"
    (cvat / "images").mkdir(parents=True)
    (cvat / "images" / "img000.jpg").write_bytes(b"")
    (cvat / "annotations.xml").write_text(
        '<annotations><version>1.1</version><image id="0" name="img000.jpg" width="64" '
        'height="48"></image></annotations>'
    )
    for path, title in ((download, f"COCO file {download}!result.json"), (cvat, "CVAT XML")):
        out = CliRunner().invoke(app, ["info", str(path)], env={"COLUMNS": "300"})
        assert out.exit_code == 0, out.output
        assert title in " ".join(out.output.split())
    assert "Images per split" in CliRunner().invoke(app, ["info", str(data)]).output


def test_an_image_list_s_split_is_its_pick_record_s_and_none_without_a_usable_one(tmp_path):
    """``list_split``: the split of the ``.json`` twin ``engine annotate pick`` writes beside
    its list; none for a list without a twin, or whose twin is no pick record or records no
    split as a name (empty, a number). ``export_split``: a given split, else the list's; a
    given split other than the list's is refused."""
    from engine.annotate import export_split, list_split

    listed = tmp_path / "pick.txt"
    listed.write_text("img000\n")
    twin = listed.with_suffix(".json")
    assert list_split(listed) is None and export_split(None, str(listed)) is None
    for doc in ({"config": {"split": 3}}, {"config": {"split": ""}}, {"config": None}, [1]):
        twin.write_text(json.dumps(doc))
        assert list_split(listed) is None, doc
    twin.write_text("not json")
    assert list_split(listed) is None
    twin.write_text(json.dumps({"config": {"split": "val"}}))
    assert list_split(listed) == "val" and export_split(None, str(listed)) == "val"
    assert export_split("val", str(listed)) == "val" and export_split("train", None) == "train"
    with pytest.raises(ValueError, match=r"pick.txt: the images were picked from split 'val' "
                       r"\(pick.json\), not 'test'; drop --split or give --split val"):  # fmt: skip
        export_split("test", str(listed))


def test_an_image_list_is_read_past_comments_and_refused_missing_or_empty(tmp_path):
    from engine.annotate import _stem_named

    path = tmp_path / "pick.txt"
    path.write_text("# picked by hand\nimg001.jpg  # the odd one\n\n/data/images/test/img002.png\n")
    lines = read_stem_list(path)  # comments: read off by the export, which knows the images
    assert lines == [
        "# picked by hand",
        "img001.jpg  # the odd one",
        "/data/images/test/img002.png",
    ]
    assert [_stem_named(s, ["img001", "img002"]) for s in lines] == [None, "img001", "img002"]
    assert _stem_named("#3 front # mine", ["#3 front"]) == "#3 front"  # a stem starting '#'
    assert _stem_named("img003 # mine", ["img001"]) == "img003"  # named in the error

    path.write_bytes("\ufeffimg001\r\nimg002\r\n".encode())  # Notepad: a BOM, CRLF
    assert read_stem_list(path) == ["img001", "img002"]
    path.write_text("# nothing yet\n\n")
    with pytest.raises(ValueError, match=r"pick\.txt: the image list is empty"):
        read_stem_list(path)
    with pytest.raises(FileNotFoundError, match=r"nope\.txt: image list not found"):
        read_stem_list(tmp_path / "nope.txt")


def test_export_finds_a_stem_typed_composed_otherwise(tmp_path, world):
    """``--stem vélo`` typed on a keyboard (one é) for an image stored as macOS names it (e and
    U+0301) was ``images not in the run's 'test' split: ['vélo']``; --images lists too."""
    import unicodedata

    data, run = world[:2]
    nfc, nfd = unicodedata.normalize("NFC", "vélo"), unicodedata.normalize("NFD", "vélo")
    (data / "images/test/img000.jpg").rename(data / f"images/test/{nfd}.jpg")
    make_run(run, data, {nfd: [disk(H, W, 20, 48, 8)]}, (H, W))
    for stems in ([nfc], [f"/somewhere/{nfc}.jpg"]):
        cfg = ExportConfig(str(run), str(tmp_path / "x"), stems=stems, force=True, progress=False)
        res = export_annotations(cfg)
        assert res.images == 1 and [p.stem for p in res.labelme] == [nfd]


def test_pick_says_when_instance_scores_stand_in_for_a_missing_confidence_map(
    tmp_path, world, caplog
):
    """An image without its confidence map is ranked by its instances' mean score, another
    scale than the maps': said in a warning naming it, and recorded per pick."""
    _, run, _ = world
    from annotations.labelrun import LabelRun

    LabelRun.open(run).confidence_path("test", "img001").unlink()
    with caplog.at_level("WARNING"):
        picks, out = pick_for_annotation(PickConfig(run=str(run), n=3))
    assert "1 image of split 'test' has no confidence map (img001)" in caplog.text
    doc = json.loads(out.with_suffix(".json").read_text())
    by_stem = {p["stem"]: p["confidence_from"] for p in doc["picks"]}
    assert by_stem == {"img000": "map", "img001": "instances", "img002": None}


def test_a_labelme_file_named_for_one_image_whose_imagepath_names_another_is_refused(
    tmp_path, world
):
    """img001.json copied from img000.json as a start keeps imagePath img000.jpg: it was
    imported as img000's annotation without a word (img001 unannotated). Refused, naming both."""
    data, _, _ = world
    folder = tmp_path / "lm"
    folder.mkdir()
    doc = {"shapes": [], "imagePath": "../images/img000.jpg", "imageHeight": H, "imageWidth": W}
    (folder / "img001.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError) as e:
        import_annotations(
            ImportConfig("labelme", [str(folder)], "Bicycle", str(data), str(tmp_path / "s"))
        )
    assert f"{folder / 'img001.json'}: named for image 'img001', but its imagePath names" in str(
        e.value
    )
    assert not (tmp_path / "s").exists()
    # a file named otherwise (not for an image of the split) is read by its imagePath, as before
    (folder / "img001.json").rename(folder / "annotation-7.json")
    sub = import_annotations(
        ImportConfig("labelme", [str(folder)], "Bicycle", str(data), str(tmp_path / "s"))
    )
    assert sub.stems == ("img000",)


def test_a_folder_of_labelme_files_with_one_stray_json_is_told_and_the_stray_named(tmp_path, world):
    """The folder's format was told by its first JSON file alone: a stray one sorted first (a
    tool's settings) made the whole folder "not COCO, LabelMe, ...: give --format"."""
    data, _, _ = world
    folder = tmp_path / "lm"
    folder.mkdir()
    doc = {"shapes": [], "imagePath": "img000.jpg", "imageHeight": H, "imageWidth": W}
    (folder / "img000.json").write_text(json.dumps(doc))
    (folder / "0-settings.json").write_text(json.dumps({"theme": "dark"}))
    from engine.annotate import detect_format

    assert detect_format([str(folder)]) == "labelme"
    with pytest.raises(ValueError) as e:
        import_annotations(
            ImportConfig("auto", [str(folder)], "Bicycle", str(data), str(tmp_path / "s"))
        )
    assert f"{folder / '0-settings.json'}: not a LabelMe file" in str(e.value)


def test_export_pick_and_review_refuse_a_label_run_being_written(tmp_path, world):
    """A label run another process is still labelling (one shard of it, here) is refused in one
    line naming the run and the process: exported, picked or reviewed now, its first images
    passed for the whole split without a word."""
    from engine.review import ReviewConfig, build_review
    from engine.runlock import FolderInUse, exclusive

    _, run, _ = world
    out = tmp_path / "export"
    with exclusive(run, "engine label", ".lock-shard1of2"):
        for command, call in (
            ("annotate export", lambda: export_annotations(ExportConfig(str(run), str(out)))),
            ("annotate pick", lambda: pick_for_annotation(PickConfig(run=str(run), n=1))),
            ("review", lambda: build_review(ReviewConfig(str(run), str(tmp_path / "review")))),
        ):
            with pytest.raises(FolderInUse) as e:
                call()
            assert str(e.value).startswith(f"{run}: engine label (pid {os.getpid()} on ")
            # a run's pseudo labels, not a subset's annotated masks
            said = f"is writing it now; engine {command} would read its pseudo labels half written"
            assert said in str(e.value) and "wait for it to finish" in str(e.value)
    assert not out.exists() and not (tmp_path / "review").exists()
    assert not (run / "pick-test.txt").exists()
    export_annotations(ExportConfig(run=str(run), out=str(out)))  # finished: exported


def test_export_and_pick_of_a_run_stopped_half_way_say_it_is_partial(tmp_path, caplog):
    """And so does a review (before the fifty-third round it drew the 2 images as the split's,
    without a word)."""
    from engine.review import ReviewConfig, build_review

    data, run = tmp_path / "data", tmp_path / "run"
    make_dataset(data, "test", n=3, size=(H, W))
    make_run(run, data, {"img000": [disk(H, W, 24, 16, 8)], "img001": []}, (H, W))  # killed
    export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "export")))
    pick_for_annotation(PickConfig(run=str(run), n=1))
    build_review(ReviewConfig(run=str(run), progress=False))
    said = [r.getMessage() for r in caplog.records if "not labelled (yet)" in r.getMessage()]
    assert len(said) == 3 and "1 image of split 'test'" in said[0]
    assert "the export has the 2 images labelled" in said[0] and "the pick has" in said[1]
    assert said[2] == (
        f"{run}: 1 image of split 'test' not labelled (yet): the review has the 2 images "
        "labelled; engine label with the same settings finishes the run"
    )


def test_pick_leaves_out_an_image_removed_from_the_dataset_since_labelled(tmp_path, caplog):
    """A photo taken out of the dataset after the run labelled it: the pick leaves it out and
    names it. Before, it was picked, and the export of the pick wrote its pseudo labels to the
    COCO file but no path to images.txt (no photo to upload)."""
    data, run = tmp_path / "data", tmp_path / "run"
    make_dataset(data, "test", n=3, size=(H, W))
    make_run(run, data, {f"img00{i}": [disk(H, W, 24, 16, 8)] for i in range(3)}, (H, W))
    (data / "images/test/img001.jpg").unlink()
    (data / "annotations/test/img001.png").unlink()
    picks, _ = pick_for_annotation(PickConfig(run=str(run), n=3))
    assert sorted(p.stem for p in picks) == ["img000", "img002"]
    assert (
        f"{run}: 1 image of split 'test' labelled here no longer in the dataset (removed since "
        "labelled), not picked: img001"
    ) in caplog.text
    for name in ("img000", "img002"):
        (data / "images/test" / f"{name}.jpg").unlink()
    with pytest.raises(ValueError) as e:  # not "no labelled images": they are labelled
        pick_for_annotation(PickConfig(run=str(run), n=3))
    assert str(e.value) == (
        f"{run}: every image labelled in split 'test' was removed from the dataset since (the "
        "warning above names them): nothing left to pick"
    )


ODD_STEMS = ("a #1?x%20y", "vélo a,b;c", "#3 plain")  # '#' and '?' end a URL's path


@pytest.fixture()
def odd_world(tmp_path):
    """The world's images renamed to stems a URL would cut, in a folder named with a '#'."""
    data = tmp_path / "data #1"
    make_dataset(data, "test", n=3, size=(H, W))
    for i, stem in enumerate(ODD_STEMS):
        for folder, ext in (("images", ".jpg"), ("annotations", ".png")):
            src = data / folder / "test" / f"img{i:03d}{ext}"
            src.rename(src.with_name(stem + ext))
    masks = [disk(H, W, 24, 16, 12), disk(H, W, 20, 48, 8), disk(H, W, 30, 30, 6)]
    run = tmp_path / "run"
    make_run(run, data, {s: [m] for s, m in zip(ODD_STEMS, masks, strict=True)}, (H, W))
    return data, run, dict(zip(ODD_STEMS, masks, strict=True))


@pytest.mark.parametrize("fmt", ["coco", "labelme"])
def test_an_export_of_images_named_with_hash_and_question_mark_imports_back(
    tmp_path, odd_world, fmt
):
    # a file name, not a URL: '?' and '#' are part of it (before, 'a #1?x%20y.jpg' was read
    # as the URL path 'a ', and import refused the engine's own export: not in split 'test')
    data, run, truth = odd_world
    res, sub = _roundtrip(tmp_path, data, run, fmt)
    assert res.images == 3
    assert sub.stems == tuple(sorted(ODD_STEMS))
    for stem, m in truth.items():
        assert np.array_equal(sub.mask(stem), m.astype(np.uint8)), stem


@pytest.mark.parametrize("fmt", ["coco", "labelme"])
def test_an_export_of_images_named_with_a_backslash_imports_back_as_those_images(tmp_path, fmt):
    # a backslash is part of a file name on Linux: the export's 'a\\b.jpg' was read as the
    # Windows path a/b.jpg, image 'b' (another image here, so its mask went to b), and 'c\\d\te'
    # as 'd\te': "image 'd\te' is not in split 'test'"; a Windows path still names its image
    stems = ("a\\b", "b", "c\\d\te")
    data = tmp_path / "data"
    make_dataset(data, "test", n=3, size=(H, W))
    for i, stem in enumerate(stems):
        for folder, ext in (("images", ".jpg"), ("annotations", ".png")):
            src = data / folder / "test" / f"img{i:03d}{ext}"
            src.rename(src.with_name(stem + ext))
    masks = [disk(H, W, 24, 16, 12), disk(H, W, 20, 48, 8), disk(H, W, 30, 30, 6)]
    make_run(tmp_path / "run", data, {s: [m] for s, m in zip(stems, masks, strict=True)}, (H, W))
    res, sub = _roundtrip(tmp_path, data, tmp_path / "run", fmt)
    assert res.images == 3 and sub.stems == tuple(sorted(stems))
    for stem, m in zip(stems, masks, strict=True):
        assert np.array_equal(sub.mask(stem), m.astype(np.uint8)), stem
    from engine.annotation_files import annotation_files

    # engine info read 'a\\b.jpg' as image b too: "image 'b' is listed twice" (LabelMe:
    # "annotated twice"), said import would refuse the export that it imports
    exported = res.coco if fmt == "coco" else res.coco.parent / "labelme"
    (described,) = annotation_files(exported)
    assert (described.images, described.problems) == (3, [])
    from annotations.interchange import split_stem

    sizes = {"b": (H, W)}
    assert split_stem("C:\\photos\\b.jpg", sizes) == split_stem("a\\b.jpg", sizes) == "b"
    assert split_stem("a\\b.jpg", {"a\\b": (H, W), "b": (H, W)}) == "a\\b"


def test_a_pick_list_and_an_export_image_list_with_hashes_export_their_images(tmp_path, odd_world):
    # '#' begins a comment at a line's start, or where the line names no image: before, a stem
    # or dataset folder with a '#' was cut there ('images not in the run's split: ['a']')
    data, run, _ = odd_world
    picked = tmp_path / "pick.txt"
    picked.write_text("# by hand\n" + "\n".join(ODD_STEMS[:2]) + "\n#3 plain  # the odd one\n")
    stems = read_stem_list(picked)
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "a"), stems=stems))
    assert res.images == 3
    listed = read_stem_list(res.image_list)  # an export's images.txt: paths in 'data #1'
    res = export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "b"), stems=listed))
    assert res.images == 3
    assert res.image_list.read_text().splitlines() == listed


def test_pick_decodes_no_instance_mask(tmp_path, world, monkeypatch):
    """pick (and review) read each image's instances for their count, scores and areas: every
    mask was decoded at full size and summed (at 4032x3024, 12 MB and ~0.1 s a mask). The areas
    come from the masks' run lengths now; the statistics and picks are the same."""
    import annotations.instances as instances
    from engine.annotate import image_stats

    _, run, _ = world
    stats = image_stats(LabelRun.open(run), "test", 0.05, False)
    want, _ = pick_for_annotation(PickConfig(run=str(run), n=3, out=str(tmp_path / "a.txt")))
    monkeypatch.setattr(instances, "rle_to_mask", lambda rle: pytest.fail("a mask decoded"))
    assert image_stats(LabelRun.open(run), "test", 0.05, False) == stats
    assert [(s.num_instances, s.num_tiny) for s in stats] == [(2, 0), (1, 1), (0, 0)]
    got, _ = pick_for_annotation(PickConfig(run=str(run), n=3, out=str(tmp_path / "b.txt")))
    assert got == want


def test_pick_and_export_of_a_split_the_run_did_not_label_name_the_splits_it_has(tmp_path, world):
    """A split with no labelled image is said as such, with the run's splits, and no list or
    export is written; not as images "removed from the dataset since"."""
    _, run, _ = world
    said = f"{run}: no labelled images in split 'val' (splits: test)"
    with pytest.raises(ValueError) as err:
        pick_for_annotation(PickConfig(run=str(run), split="val", n=2, progress=False))
    assert str(err.value) == said
    with pytest.raises(ValueError) as err:
        export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "x"), split="val"))
    assert str(err.value) == said
    assert not (run / "pick-val.txt").exists() and not (tmp_path / "x").exists()


def test_an_instance_of_exactly_the_tiny_fraction_of_its_image_is_not_tiny(world):
    """Tiny is *smaller* than ``tiny_fraction`` of the image (``PickConfig``): the 5-pixel dot
    of a 64x48 image is not tiny at 5/3072, and is at 6/3072."""
    from engine.annotate import image_stat

    _, run, _ = world
    labelled = LabelRun.open(run)
    assert image_stat(labelled, "test", "img001", 5 / (H * W)).num_tiny == 0
    assert image_stat(labelled, "test", "img001", 6 / (H * W)).num_tiny == 1


def test_coco_image_ids_that_are_strings_are_read_as_pycocotools_reads_them(tmp_path):
    """Some exporters write COCO image ids as strings (``"x7"``); pycocotools takes any key, but
    the import refused the file ("image entry ... lacks id/file_name/width/height"). A string
    id reads as an integer one does; a missing or boolean id is still refused."""
    images = [{"id": "x7", "file_name": "img000.jpg", "width": W, "height": H},
              {"id": 3, "file_name": "img001.jpg", "width": W, "height": H}]  # fmt: skip
    anns = [
        {"id": 1, "image_id": "x7", "category_id": 1, "segmentation": [[2, 3, 6, 3, 6, 8, 2, 8]]},
        {"id": 2, "image_id": 3.0, "category_id": 1, "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]]},
    ]
    path = _coco_file(tmp_path, images=images, annotations=anns)
    sizes = {"img000": (H, W), "img001": (H, W)}
    found = {m.stem: m.mask for m in coco_to_masks(path, "Bicycle", sizes)}
    assert int(found["img000"].sum()) == 20 and found["img000"][3:8, 2:6].all()
    assert int(found["img001"].sum()) == 4
    for bad in (None, True, "", 1.5):
        path = _coco_file(tmp_path, images=[{**images[0], "id": bad}], annotations=[])
        with pytest.raises(ValueError, match="lacks id/file_name/width/height"):
            coco_to_masks(path, "Bicycle", sizes)


def test_holes_filled_as_scipy_fills_them_without_its_full_size_dilation(monkeypatch):
    """An import of polygons checks whether it came back exactly as exported, holes filled:
    ``ndimage.binary_fill_holes`` on each whole label, 0.6-0.8 s an image at 3840x2160 (empty
    too), was most of a COCO polygon or LabelMe import's time. The flood fill inside the class's
    box fills the same pixels (random labels with unannotated pixels, rings on every border,
    a frame, empty and full labels), and leaves scipy's fill alone."""
    from engine.annotate import export as annotate
    from engine.annotate import imported

    rng = np.random.default_rng(0)
    labels = [np.zeros((9, 7), np.uint8), np.ones((9, 7), np.uint8)]
    for h, w in [(1, 1), (1, 6), (5, 5), (17, 23), (64, 40)]:
        for _ in range(60):
            p1, p2 = rng.random(), rng.random() * 0.3
            r = rng.random((h, w))
            labels.append(np.where(r < p1, 1, np.where(r < p1 + p2, 255, 0)).astype(np.uint8))
    frame = np.ones((12, 10), np.uint8)
    frame[1:-1, 1:-1] = 0
    frame[5, 5] = 255
    labels.append(frame)
    for cy, cx in [(0, 0), (39, 29), (20, 0), (0, 15), (20, 15)]:
        yy, xx = np.mgrid[:40, :30]
        d = (yy - cy) ** 2 + (xx - cx) ** 2
        labels.append(((d <= 64) & (d > 36)).astype(np.uint8))
    expected = [
        np.where(ndimage.binary_fill_holes(m == 1) & (m == 0), np.uint8(1), m) for m in labels
    ]

    def refused(*args, **kwargs):
        raise AssertionError("binary_fill_holes on a whole label")

    monkeypatch.setattr(annotate.ndimage, "binary_fill_holes", refused)
    for m, want in zip(labels, expected, strict=True):
        got = imported._holes_filled(m)
        assert got.dtype == np.uint8 and np.array_equal(got, want), m


def test_every_export_format_records_the_folder_its_paths_were_typed_from(tmp_path, monkeypatch):
    """An export's record names its run as typed (``run``). COCO's carried the environment's
    cwd, LabelMe's files and Label Studio's tasks none: read from another folder that held a
    ``run`` of its own, they were compared with that run, and engine info suggested importing
    them with that folder's dataset."""
    import json

    from annotations.interchange import export_record, exported_from
    from engine.annotate import ExportConfig, export_annotations
    from tests.loop_helpers import disk, make_dataset, make_run

    h, w = 48, 64
    project, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    for root, seed, (cy, cx, r) in ((project, 0, (20, 30, 9)), (elsewhere, 3, (10, 10, 5))):
        make_dataset(root / "data", "test", n=2, size=(h, w), seed=seed)
        make_run(root / "run", root / "data", {"img000": [disk(h, w, cy, cx, r)]}, (h, w))
    monkeypatch.chdir(project)
    formats = ("coco", "labelme", "labelstudio")
    export_annotations(ExportConfig(run="run", out="export", formats=formats, progress=False))
    monkeypatch.chdir(elsewhere)
    export = project / "export"
    records = {
        "coco": export_record(json.loads((export / "coco.json").read_text())["info"]),
        "labelme": export_record(json.loads(next((export / "labelme").glob("*.json")).read_text())),
        "labelstudio": export_record(
            json.loads((export / "labelstudio/tasks.json").read_text())[0]["data"]
        ),
    }
    for name, record in records.items():
        assert record["environment"]["cwd"] == str(project), name
        assert exported_from(record, "run", export) == project / "run", name


def test_a_coco_image_size_that_is_not_a_whole_number_is_refused(tmp_path):
    """int() read a width of 64.7 as 64, which matched the dataset's image: accepted silently.
    A fractional size is refused naming the file, the image and the size; 64.0 is still 64."""
    sizes = {"img000": (H, W)}
    image = {"id": 1, "file_name": "img000.jpg", "width": W, "height": H}
    for side, value in (("width", W + 0.7), ("height", H + 0.25)):
        path = _coco_file(tmp_path, images=[{**image, side: value}])
        with pytest.raises(ValueError) as e:
            coco_to_masks(path, "Bicycle", sizes)
        assert str(e.value) == (
            f"{path}: image 'img000.jpg' has {side} {value!r}, not a whole number of pixels"
        )
    path = _coco_file(tmp_path, images=[{**image, "width": float(W), "height": float(H)}])
    assert [m.mask.shape for m in coco_to_masks(path, "Bicycle", sizes)] == [(H, W)]


def test_pick_on_a_full_disk_leaves_no_new_folder(tmp_path, world, monkeypatch):
    """annotate pick --out new/p.txt on a full disk left the new, empty folder new/ behind."""
    import contextlib
    import errno

    from typer.testing import CliRunner

    import annotations.fileio
    from cli import app

    run = world[1]

    @contextlib.contextmanager
    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
        yield

    monkeypatch.setattr(annotations.fileio.atomic, "atomic_file", full)
    out = tmp_path / "new" / "p.txt"
    res = CliRunner().invoke(app, ["annotate", "pick", str(run), "-n", "2", "--out", str(out)])
    assert res.exit_code == 74, res.output
    assert res.output.splitlines()[-1] == (
        f"error: {out}: No space left on device; make room and run the same command again"
    )
    assert not (tmp_path / "new").exists()


def test_pick_and_export_refuse_an_image_name_with_a_line_break(tmp_path):
    """An image named 'img\\n001.jpg' (legal on Linux) was picked and exported as two lines of
    pick's list and images.txt; the list fed back was refused as images ['img', '001']."""
    from typer.testing import CliRunner

    from cli import app
    from engine.text import LINE_BREAK

    data, run = tmp_path / "data", tmp_path / "run"
    make_dataset(data, "test", n=2, size=(H, W))
    for sub in ("images/test/img001.jpg", "annotations/test/img001.png"):
        (data / sub).rename((data / sub).with_name("img\n001" + Path(sub).suffix))
    make_run(run, data, {"img000": [disk(H, W, 20, 20, 8)], "img\n001": []}, (H, W))
    said = f"error: {run}: image 'img\\n001': {LINE_BREAK}"
    for args in (["pick", str(run), "-n", "2", "--out", str(tmp_path / "p.txt")],
                 ["export", str(run), "--out", str(tmp_path / "exp")]):  # fmt: skip
        res = CliRunner().invoke(app, ["annotate", *args, "--no-progress"])
        assert res.exit_code == 2, res.output
        assert " ".join(res.output.split()) == " ".join(said.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run"]


def test_several_names_with_a_line_break_are_counted_after_the_first():
    """The first such name is named and the others counted; one alone is named alone."""
    from engine.annotate import check_one_line_names
    from engine.text import LINE_BREAK

    check_one_line_names(["img000", "img001"], Path("run"))  # none: nothing said
    for stems, said in (
        (["a", "b\nc"], f"run: image 'b\\nc': {LINE_BREAK}"),
        (["b\nc", "a", "d\re", "f\n"], f"run: image 'b\\nc' (2 more such): {LINE_BREAK}"),
    ):
        with pytest.raises(ValueError) as e:
            check_one_line_names(stems, Path("run"))
        assert str(e.value) == said


def _import_and_info_refuse_one_clash(
    tmp_path: Path, data: Path, fmt: str, names: tuple[str, str], record: dict | None = None
) -> None:
    """A tool's COCO file (or two LabelMe files) naming ``names``, the engine's export record
    ``record`` kept where given: import refuses the second as the first's image img000, and
    engine info says the same line."""
    from engine.annotation_files import annotation_files

    if fmt == "coco":
        src = tmp_path / "tool.json"
        images = [{"id": i, "file_name": n, "height": H, "width": W} for i, n in enumerate(names)]
        cats = [{"id": 1, "name": "bicycle"}]
        doc = {"images": images, "annotations": [], "categories": cats}
        src.write_text(json.dumps({"info": {EXPORT_KEY: record}, **doc} if record else doc))
        said = f"{src}: image 'img000' is listed twice"
    else:
        src = tmp_path / "lm"
        src.mkdir()
        for f, n in zip(("a", "b"), names, strict=True):
            doc = {"shapes": [], "imagePath": n, "imageHeight": H, "imageWidth": W}
            (src / f"{f}.json").write_text(
                json.dumps({**doc, EXPORT_KEY: record} if record else doc)
            )
        said = f"{src / 'b.json'}: image 'img000' is annotated twice (also in {src / 'a.json'})"
    with pytest.raises(ValueError) as e:
        import_annotations(ImportConfig(fmt, [str(src)], "bicycle", str(data), str(tmp_path / "s")))
    assert str(e.value) == said
    (described,) = annotation_files(src)
    assert described.problems == [said]


@pytest.mark.parametrize("fmt", ["coco", "labelme"])
def test_info_says_the_windows_paths_of_one_name_that_import_refuses(tmp_path, world, fmt):
    """Two Windows paths of one base name (C:\\a\\img000.jpg, C:\\b\\img000.jpg) in a tool's
    file: import reads both as image img000 and refuses the second; engine info read each
    backslash as part of a name (two images, no problem), since a backslash became part of a
    name where that names an image of the split. Both read names as the engine's export
    does only in its own export (the test above); a tool's backslashes are a Windows path's."""
    data, _, _ = world
    _import_and_info_refuse_one_clash(
        tmp_path, data, fmt, ("C:\\a\\img000.jpg", "C:\\b\\img000.jpg")
    )


def test_export_refuses_an_image_folder_with_a_line_break(tmp_path):
    """A dataset in a folder named 'da\\nta' (legal on Linux): the export wrote each image's
    path to images.txt as two lines ('.../da' and 'ta/images/test/img000.jpg'), which an
    upload or a later --images read as two files that are not there. Refused as a line break
    in a name is, before anything is written."""
    from typer.testing import CliRunner

    from cli import app

    data, run = tmp_path / "da\nta", tmp_path / "run"
    make_dataset(data, "test", n=2, size=(H, W))
    make_run(run, data, {"img000": [disk(H, W, 20, 20, 8)], "img001": []}, (H, W))
    res = CliRunner().invoke(
        app, ["annotate", "export", str(run), "--out", str(tmp_path / "exp"), "--no-progress"]
    )
    image = data.resolve() / "images" / "test" / "img000.jpg"
    said = (
        f"error: {run}: image 'img000' is in {str(image.parent)!r}: a line break in the "
        "folder's name, which an export's images.txt (one path a line) cannot hold; rename "
        "the folder"
    )
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == " ".join(said.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["da\nta", "run"]


@pytest.mark.parametrize("fmt", ["coco", "labelme"])
@pytest.mark.parametrize(
    "names",
    [
        ("..\\..\\data\\images\\test\\img000.jpg", "..\\b\\img000.jpg"),
        (".\\img000.jpg", "x\\.\\img000.jpg"),
        ("D:\\a\\img000.jpg", "C:\\img000.jpg"),
        ("\\\\server\\share\\img000.jpg", "\\\\?\\C:\\b\\img000.jpg"),
    ],
)
def test_info_and_import_read_windows_paths_in_an_export_resaved_on_windows(
    tmp_path, world, fmt, names
):
    """LabelMe on Windows re-saves an exported file keeping its export record, its imagePath
    rewritten with backslashes (..\\..\\data\\images\\test\\img000.jpg): import read it as
    img000 (the literal name is no image of the split) and refused the duplicate, while info
    read an export's backslashes as part of the name and said nothing. Both read a name with
    a .\\ or ..\\ part, a drive or a UNC prefix as a Windows path (interchange.windows_path)."""
    data, _, _ = world
    _import_and_info_refuse_one_clash(tmp_path, data, fmt, names, {"note": "exported"})


def test_export_names_the_linked_file_whose_name_holds_a_line_break(tmp_path):
    """An image that is a link to a file named 'im\\ng.jpg' (its folder's name has no line
    break): the export refused it as a line break "in the folder's name ...; rename the
    folder", of a folder without one. Now the file it links to is named."""
    from typer.testing import CliRunner

    from cli import app

    data, run = tmp_path / "data", tmp_path / "run"
    make_dataset(data, "test", n=2, size=(H, W))
    make_run(run, data, {"img000": [disk(H, W, 20, 20, 8)], "img001": []}, (H, W))
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "im\ng.jpg"
    image = data / "images" / "test" / "img000.jpg"
    image.replace(target)
    image.symlink_to(target)
    res = CliRunner().invoke(
        app, ["annotate", "export", str(run), "--out", str(tmp_path / "exp"), "--no-progress"]
    )
    said = (
        f"error: {run}: image 'img000' links to {str(target.resolve())!r}: a line break in the "
        "name of the file it links to, which an export's images.txt (one path a line) cannot "
        "hold; rename the file it links to"
    )
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == " ".join(said.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run", "store"]


def test_review_of_a_run_killed_before_a_split_says_the_split_not_labelled(tmp_path, caplog):
    """A run killed after test, before val (no --split: every split to label) is reviewed as
    test alone, with a warning naming val; before, without a word (warn_not_labelled covers a
    split the run had begun). A run told --split test, or a review given --split, says
    nothing."""
    from engine.review import ReviewConfig, build_review

    data, run = tmp_path / "data", tmp_path / "run"
    make_dataset(data, "test", n=2, size=(H, W))
    make_dataset(data, "val", n=2, size=(H, W))
    make_run(run, data, {"img000": [disk(H, W, 24, 16, 8)], "img001": []}, (H, W))
    build_review(ReviewConfig(run=str(run), out=str(tmp_path / "r1"), progress=False))
    said = [r.getMessage() for r in caplog.records if "not labelled (yet)" in r.getMessage()]
    assert said == [
        f"{run}: split 'val' not labelled (yet), which it was to label: the review has split "
        "'test' alone; engine label with the same settings finishes the run"
    ]
    caplog.clear()
    build_review(ReviewConfig(run=str(run), split="test", out=str(tmp_path / "r2"), progress=False))
    doc = json.loads((run / "run.json").read_text())
    doc["config"]["splits"] = ["test"]
    (run / "run.json").write_text(json.dumps(doc))
    build_review(ReviewConfig(run=str(run), out=str(tmp_path / "r3"), progress=False))
    assert not [r for r in caplog.records if "not labelled (yet)" in r.getMessage()]


def test_review_given_another_dataset_says_no_split_of_it_not_labelled(tmp_path, caplog):
    """A run (no --split) of a dataset with a test split alone, reviewed with --data another
    dataset of the same images that also has val: review warned "split 'val' not labelled
    (yet), which it was to label", though the run was to label its own dataset's splits, not
    this one's, and engine fuse does not refuse that split (engine.fusion.run.was_to_label:
    a run without --split was to label its own dataset alone). Both ask one rule now."""
    import shutil

    from engine.review import ReviewConfig, build_review

    data, other, run = tmp_path / "data", tmp_path / "other", tmp_path / "run"
    make_dataset(data, "test", n=2, size=(H, W))
    make_run(run, data, {"img000": [disk(H, W, 24, 16, 8)], "img001": []}, (H, W))
    shutil.copytree(data, other)
    make_dataset(other, "val", n=2, size=(H, W))
    build_review(
        ReviewConfig(run=str(run), data=str(other), out=str(tmp_path / "r"), progress=False)
    )
    assert not [r for r in caplog.records if "not labelled (yet)" in r.getMessage()]


def test_an_image_list_names_a_linux_image_with_a_backslash_as_import_does(tmp_path):
    """A Linux image named ``a\\b.jpg``: an export's images.txt (or a list typed with file
    names) names it as ``a\\b.jpg``, and annotate export --images reads it as image ``a\\b``, as
    import reads the same name in a COCO or LabelMe file (a backslash part of the name when that
    names an image of the split); a Windows path still names its last part. Before, the list's
    backslash was always a separator: export refused its own images.txt, "images not in the
    run's 'test' split: ['b']"."""
    from engine.annotate import read_stem_list

    data = tmp_path / "data"
    make_dataset(data, "test", n=2, size=(H, W))
    for ext, folder in ((".jpg", "images"), (".png", "annotations")):
        (data / folder / "test" / f"img001{ext}").rename(data / folder / "test" / f"a\\b{ext}")
    masks = {"img000": [disk(H, W, 20, 20, 8)], "a\\b": [disk(H, W, 20, 30, 6)]}
    make_run(tmp_path / "run", data, masks, (H, W))
    first = export_annotations(ExportConfig(str(tmp_path / "run"), str(tmp_path / "e1")))
    listed = read_stem_list(first.image_list)
    assert listed == [
        str(data / "images" / "test" / "a\\b.jpg"),
        str(data / "images" / "test" / "img000.jpg"),
    ]
    again = ExportConfig(str(tmp_path / "run"), str(tmp_path / "e2"), stems=listed)
    assert export_annotations(again).images == 2
    typed = ["a\\b.jpg", "C:\\photos\\img000.jpg"]  # a Windows path: its last part
    res = export_annotations(dataclasses.replace(again, out=str(tmp_path / "e3"), stems=typed))
    assert res.images == 2
    sub = import_annotations(
        ImportConfig("coco", [str(res.coco)], "Bicycle", str(data), str(tmp_path / "s"))
    )
    assert set(sub.stems) == {"a\\b", "img000"}
    with pytest.raises(ValueError, match=re.escape("images not in the run's 'test' split: ['b']")):
        export_annotations(dataclasses.replace(again, out=str(tmp_path / "e4"), stems=["x\\b.jpg"]))
