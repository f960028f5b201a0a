"""annotations.polygons' helpers that the importers share, called directly."""

from __future__ import annotations

import numpy as np
import pytest

from annotations.polygons import outline


def test_an_outline_of_no_polygon_of_3_points_names_the_most_points_it_has():
    """COCO's segmentation ``[[1, 1, 9, 9], [4, 4]]`` is a line and a point: refused, naming
    the longer's 2 points (a mutant that named the shorter's 1, or 'got -1' for an empty
    list, passed every test). A list with one polygon of 3 points is kept as it is, lines too."""
    line, point = np.array([[1.0, 1.0], [9.0, 9.0]]), np.array([[4.0, 4.0]])
    with pytest.raises(ValueError, match=r"^ann 4: a polygon needs at least 3 points, got 2$"):
        outline([point, line, point], "ann 4")
    with pytest.raises(ValueError, match=r"^ann 5: a polygon needs at least 3 points, got 0$"):
        outline([], "ann 5")
    triangle = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]])
    kept = outline([line, triangle], "ann 6")
    assert len(kept) == 2 and kept[0] is line and kept[1] is triangle


def test_a_cvat_box_turns_about_its_centre_each_corner_rounded_to_2_decimals():
    """CVAT's ``RotatedBoxesToPolygons``: corner ``(x, y)`` goes to ``(cx + cos (x - cx) - sin
    (y - cy), cy + sin (x - cx) + cos (y - cy))`` about the centre, then 2 decimals. The box
    (0, 0)-(4, 2), centre (2, 1): at 180 degrees each corner lands on the opposite one; at 30
    degrees (0, 0) goes to (2 - 2 cos 30 + sin 30, 1 - 2 sin 30 - cos 30) = (0.77, -0.87). A
    mutant that divided ``cos`` by ``x - cx`` passed the cvat tests (their box is 2 wide, where
    the two agree), one that rounded to 1 decimal too."""
    from annotations.polygons import cvat_turned_box

    assert cvat_turned_box(0, 0, 4, 2, 0).tolist() == [[0, 0], [4, 0], [4, 2], [0, 2]]
    assert cvat_turned_box(0, 0, 4, 2, 180).tolist() == [[4, 2], [0, 2], [0, 0], [4, 0]]
    assert cvat_turned_box(0, 0, 4, 2, 90).tolist() == [[3, -1], [3, 3], [1, 3], [1, -1]]
    assert cvat_turned_box(0, 0, 4, 2, 30)[0].tolist() == [0.77, -0.87]


def test_a_point_exactly_the_image_s_size_past_its_edge_is_near_and_one_past_is_far():
    """``check_near`` refuses a point *over* an image's size past its edge: for 10x8, x = -10
    and x = 20, y = -8 and y = 16 are still read; -10.5 is refused (a mutant that refused the
    boundary itself passed every test)."""
    from annotations.polygons import check_near

    for x, y in [(-10, 0), (20, 0), (0, -8), (0, 16), (-10, 16)]:
        check_near(np.array([[x, y]], float), 8, 10, "ann 1")
    for x, y in [(-10.5, 0), (20.5, 0), (0, -8.5), (0, 16.5)]:
        with pytest.raises(ValueError, match=r"^ann 1: its point .* is far outside the 10x8 image"):
            check_near(np.array([[x, y]], float), 8, 10, "ann 1")


def test_a_flat_list_of_one_point_reads_as_one_point():
    """``[3, 4]`` is one point, (1, 2): refused later, by ``outline``, as a polygon of 1 point
    (a mutant that refused it here as 'not an even number of coordinates, got 2' passed);
    ``[3]`` is refused here."""
    from annotations.polygons import flat_to_points

    assert flat_to_points([3, 4]).tolist() == [[3.0, 4.0]]
    with pytest.raises(ValueError, match=r"^ann 2: a polygon must be .* even number .* got 1$"):
        flat_to_points([3], "ann 2")
    with pytest.raises(ValueError, match=r"needs at least 3 points, got 1$"):
        outline([flat_to_points([3, 4])], "ann 3")


def test_points_to_flat_keeps_whole_coordinates_ints_and_others_floats():
    """A COCO file's polygon: ``[1, 2.5, 3, 0.25]``, whole numbers as JSON ints, the rest as
    they are (a mutant that swapped the two, ``int(2.5)`` = 2, passed every test)."""
    from annotations.polygons import points_to_flat

    flat = points_to_flat(np.array([[1.0, 2.5], [3.0, 0.25]]))
    assert flat == [1, 2.5, 3, 0.25]
    assert [type(v) for v in flat] == [int, float, int, float]


def test_a_one_pixel_component_exported_simplified_is_its_pixel_s_square():
    """A pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)`` in COCO's plane: its outline is that
    unit square, simplified or not (a tolerance under 1 moves no corner). Checking that the
    square holds a pixel rasterises it in its own 1x1 box; a mutant that made the box 1 pixel
    smaller each way (0x0) refused the export as 'far outside the 0x0 image'."""
    from annotations.polygons import mask_to_polygons, polygons_to_mask

    mask = np.zeros((5, 6), bool)
    mask[2, 3] = True
    (poly,) = mask_to_polygons(mask, convention="coco", simplify=0.5)
    assert poly.tolist() == [[3.0, 2.0], [3.0, 3.0], [4.0, 3.0], [4.0, 2.0]]
    assert np.array_equal(polygons_to_mask([poly], 5, 6, convention="coco"), mask)


def test_drop_redundant_removes_repeated_and_straight_through_vertices_only():
    """``_drop_redundant``: a closed integer polygon without repeated vertices and without those
    its outline runs straight through; a turn, a U-turn included, stays. (0, 1) and (0, 2) lie
    on the way from (0, 0) to (0, 3); (2, 3) is repeated; the spike's tip (4, 0) turns back,
    and the way back from it runs straight through (2, 0) to the start.
    On corner outlines traced from masks no such vertex arose on 3000 random masks, so
    mutants that kept every vertex, or dropped turning ones, passed every test."""
    from annotations.polygons import _drop_redundant

    pts = np.array([[0, 0], [0, 1], [0, 2], [0, 3], [2, 3], [2, 3], [2, 0], [4, 0], [2, 0]])
    assert _drop_redundant(pts).tolist() == [[0, 0], [0, 3], [2, 3], [2, 0], [4, 0]]
