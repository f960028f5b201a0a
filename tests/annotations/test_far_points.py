"""A vertex far outside its image, or not finite, in an annotation tool's file: pycocotools
walks every polygon edge in steps of a fifth of a pixel, and a point at 1e300 crashed the
import with a segmentation fault (COCO, CVAT and Label Studio polygons, CVAT ellipses), one at
1e30 or a rectangle of width "inf" took all memory until the process was killed. Each is now
one line naming the file and the shape, before pycocotools sees it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotations.cvat import cvat_xml_to_masks
from annotations.interchange import coco_to_masks
from annotations.labelstudio import labelstudio_to_masks
from annotations.polygons import coco_polygons_rle

H, W = 12, 16
SIZES = {"img000": (H, W)}


@pytest.fixture(autouse=True)
def _pycocotools_never_sees_a_far_point(monkeypatch):
    """Should the guard regress, fail here rather than let pycocotools take the test process
    down with it (a segmentation fault at 1e300, all memory at 1e30)."""
    from pycocotools import mask as coco_mask

    real = coco_mask.frPyObjects

    def guarded(polygons, height, width):
        points = np.concatenate([np.asarray(p, float).ravel() for p in polygons])
        if not np.isfinite(points).all() or np.abs(points).max() > 10 * max(height, width):
            pytest.fail(f"a point far outside the {width}x{height} image reached pycocotools")
        return real(polygons, height, width)

    monkeypatch.setattr(coco_mask, "frPyObjects", guarded)


FAR = "is far outside the 16x12 image (over its size past its edge; no annotation tool draws"


def _coco(tmp_path, polygon: list[float]) -> str:
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "img000.jpg", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "Bicycle"}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "segmentation": [polygon]}],
    }))  # fmt: skip
    with pytest.raises(ValueError) as e:
        coco_to_masks(path, "Bicycle", SIZES)
    return str(e.value)


def _cvat(tmp_path, shape: str) -> str:
    path = tmp_path / "annotations.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
        f'<image id="0" name="img000.jpg" width="{W}" height="{H}">{shape}</image></annotations>'
    )
    with pytest.raises(ValueError) as e:
        cvat_xml_to_masks(path, "Bicycle", SIZES)
    return str(e.value)


def _labelstudio(tmp_path, kind: str, label: str, **value) -> str:
    region = {"id": "r1", "type": f"{kind}labels", "original_width": W, "original_height": H,
              "value": {**value, f"{kind}labels": [label]}}  # fmt: skip
    task = {"id": 1, "data": {"image": "/data/upload/1/img000.jpg"},
            "annotations": [{"id": 7, "result": [region]}]}  # fmt: skip
    path = tmp_path / "project.json"
    path.write_text(json.dumps([task]))
    with pytest.raises(ValueError) as e:
        labelstudio_to_masks(path, "Bicycle", SIZES)
    return str(e.value)


def test_a_coco_polygon_far_outside_its_image_is_refused(tmp_path):
    text = _coco(tmp_path, [1, 2, 1e300, 4, 5, 6])
    assert (
        text
        == f"{tmp_path / 'coco.json'}: annotation 5: its point (1e+300, 4) {FAR} one: a damaged file)"
    )
    assert f"annotation 5: its point (1e+30, 4) {FAR}" in _coco(tmp_path, [1, 2, 1e30, 4, 5, 6])


def test_a_cvat_polygon_or_ellipse_far_outside_its_image_is_refused(tmp_path):
    polygon = '<polygon label="Bicycle" points="1,2;1e300,4;5,6"></polygon>'
    assert f"image 'img000.jpg': polygon 0 (Bicycle): its point (1e+300, 4) {FAR}" in _cvat(
        tmp_path, polygon
    )  # not "not a finite number": float32, as Datumaro holds points, makes 1e300 inf
    ellipse = '<ellipse label="unannotated" cx="1" cy="2" rx="1e300" ry="4"></ellipse>'
    assert f"ellipse 0 (unannotated): its point (1e+300, 2) {FAR}" in _cvat(tmp_path, ellipse)


def test_a_label_studio_region_far_outside_or_not_finite_is_refused(tmp_path):
    text = _labelstudio(tmp_path, "polygon", "Bicycle", points=[[1, 2], [1e300, 4], [5, 6]])
    assert f"task 1: annotation 7: polygon region r1: its point (1.6e+299, 0.48) {FAR}" in text
    text = _labelstudio(tmp_path, "rectangle", "unannotated", x=1, y=2, width="inf", height=4)
    assert text.endswith(
        "rectangle region r1: a point has a coordinate that is not a finite number"
    )
    text = _labelstudio(
        tmp_path, "rectangle", "unannotated", x=1, y=2, width=3, height=4, rotation="nan"
    )  # was read: NaN corners went to pycocotools as they were
    assert text.endswith(
        "rectangle region r1: a point has a coordinate that is not a finite number"
    )


def test_a_point_past_the_edge_by_less_than_the_image_s_size_is_read():
    """Tools let a polygon cross the image's edge; the part inside is the mask, as before."""
    square = np.array(
        [[-W + 1, -H + 1], [2 * W - 1, -H + 1], [2 * W - 1, 2 * H - 1], [-W + 1, 2 * H - 1]]
    )
    from pycocotools import mask as coco_mask

    assert coco_mask.decode(coco_polygons_rle([square], H, W)).all()
