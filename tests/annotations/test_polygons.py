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
