"""The COCO dict an export writes (annotations.interchange.CocoBuilder), field by field."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from annotations.instances import InstanceWindows, MaskWindow
from annotations.interchange import CocoBuilder, ExportImage, to_labelme

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
