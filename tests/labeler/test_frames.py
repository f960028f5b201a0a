"""Coordinate frames of the model backends, with hand-computed values: a tile's normalised
boxes to image pixels (Grounding DINO and SAM 3), ``--refine``'s crop and its box in crop
pixels, the refined mask's threshold and agreement rule, and SAM's and SAM 2's input frames
at the released models' 1024 px (tiny ones use 64 and 128). The tiny random models cannot pin
these (their outputs are arbitrary, and a whole-image window starts at 0, where a crop offset
or an x/y mix-up changes nothing); fakes with known outputs do."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from labeler.backends import BackendOutput
from labeler.config import ClassSpec, LabelConfig
from labeler.dedup import MaskCrop
from labeler.merge import Detections
from labeler.refine import Refiner, _replace
from tests.labeler.test_refine import _instances


def _config(**kw) -> LabelConfig:
    cls = ClassSpec("Bicycle", prompts=("bicycle",), box_threshold=0.5, text_threshold=0.5)
    return LabelConfig(data="unused", cls=cls, out="unused", device="cpu", **kw)


class RecordingSegmenter:
    """Stands in for Refiner.segment_crops: records each crop and box, returns no mask."""

    def __init__(self) -> None:
        self.crops: list[np.ndarray] = []
        self.boxes: list[list[float]] = []

    def __call__(self, crops, boxes):
        for c, b in zip(crops, boxes, strict=True):
            self.crops.append(c)
            self.boxes.append(np.asarray(b).tolist())
            yield np.zeros(c.shape[:2], np.float32), 0.5


def test_refine_crops_the_image_rows_then_columns_and_gives_the_box_in_crop_pixels():
    """Image 200 x 300 (h x w). Box (50, 50, 110, 90): side 60 x 1.5 = 90, centre (80, 70):
    crop x 35..125, y 25..115, box in it (15, 25, 75, 65). Box (200, 100, 240, 180): side 120,
    centre (220, 140): x 160..280, y 80..200, box (40, 20, 80, 100). Box (0, 0, 10, 10): the
    32-px minimum at the corner, box unchanged."""
    h, w = 200, 300
    img = np.zeros((h, w, 3), np.int32)  # crops are only read here: any dtype
    img[..., 0] = np.arange(h)[:, None]  # row number
    img[..., 1] = np.arange(w)[None, :]  # column number
    boxes = [(50, 50, 110, 90), (200, 100, 240, 180), (0, 0, 10, 10)]
    refiner = Refiner(segmenter=None, device="cpu")  # type: ignore[arg-type]
    fake = RecordingSegmenter()
    refiner.segment_crops = fake
    refiner.refine([img], [BackendOutput(_instances(h, w, boxes), None)])
    assert fake.boxes == [[15, 25, 75, 65], [40, 20, 80, 100], [0, 0, 10, 10]]
    for crop, (x0, y0, x1, y1) in zip(
        fake.crops, [(35, 25, 125, 115), (160, 80, 280, 200), (0, 0, 32, 32)], strict=True
    ):
        assert crop.shape == (y1 - y0, x1 - x0, 3)
        assert crop[0, 0, 0] == y0 and crop[-1, 0, 0] == y1 - 1  # rows
        assert crop[0, 0, 1] == x0 and crop[0, -1, 1] == x1 - 1  # columns


def test_replace_keeps_probabilities_above_half_only_and_accepts_agreement_of_exactly_the_minimum():
    """The refined mask is probability > 0.5 (logit > 0, transformers' ``mask_threshold=0.0``):
    0.5 itself is out, 0.51 in. Coarse mask: 10 pixels of row y 5, x 10..19; crop window
    (10, 5, 20, 7) (x0, y0, x1, y1). Refined: (y 5, x 10) at 0.9, the rest of row 5 at 0.5.
    With row 6 at 0.51: new 1 + 10 px, old 10 px, overlap 1, union 20: IoU 0.05 below
    MIN_AGREEMENT 0.1, coarse kept. With row 6 at 0.5: new 1 px, union 10, IoU 1/10 = 0.1, not
    below the minimum: refined, the new window rows y 5..6, columns x 10..19."""
    coarse = MaskCrop(5, 10, np.ones((1, 10), bool))
    coarse_prob = np.full((1, 10), 0.75, np.float16)
    win = (10, 5, 20, 7)
    prob = np.full((2, 10), 0.5, np.float32)
    prob[0, 0] = 0.9
    prob[1, :] = 0.51
    mask, p, kept = _replace(coarse, coarse_prob, win, prob)
    assert not kept and mask is coarse and p is coarse_prob
    prob[1, :] = 0.5
    mask, p, kept = _replace(coarse, coarse_prob, win, prob)
    assert kept
    assert (mask.y0, mask.x0, mask.mask.shape) == (5, 10, (2, 10))
    assert mask.mask.tolist() == [[True] + [False] * 9, [False] * 10]
    assert p.dtype == np.float16 and p[0, 0] == np.float16(0.9) and p[1, 0] == np.float16(0.5)


def _grounded_sam(pred_boxes: list[list[float]], token_probs: list[list[float]]):
    """A GroundedSamBackend whose detector returns the given boxes (cx, cy, w, h of the crop)
    and token probabilities (text "bicycle." -> [CLS] bicycle . [SEP])."""
    from labeler.grounded_sam import GroundedSamBackend

    backend = GroundedSamBackend.__new__(GroundedSamBackend)
    backend.config = _config()
    backend.device, backend.dtype = "cpu", None
    backend.text_inputs = {"input_ids": torch.tensor([[101, 7, 1012, 102]])}
    backend.prompt_tokens = [np.array([1])]
    backend.negative = np.zeros(1, bool)
    p = torch.tensor(token_probs, dtype=torch.float32).clamp(1e-6, 1 - 1e-6)
    logits = torch.log(p / (1 - p))[None]  # sigmoid gives the probabilities back

    def model(pixel_values, pixel_mask, **text):
        n = len(pixel_values)
        return SimpleNamespace(
            logits=logits.expand(n, -1, -1), pred_boxes=torch.tensor([pred_boxes]).expand(n, -1, -1)
        )

    backend.detector = SimpleNamespace(model=model)
    return backend


def test_grounded_sam_tile_boxes_from_normalised_centre_size_to_image_pixels():
    """Tile window (40, 10, 100, 50): 60 wide, 40 tall. (cx, cy, w, h) = (0.5, 0.5, 0.5, 0.5)
    -> crop (15, 10, 45, 30) -> image (55, 20, 85, 40). (0.9, 0.1, 0.4, 0.4) -> crop x 0.7..1.1
    of 60 = 42..66, y -0.1..0.3 of 40 = -4..12, clipped to the crop: (42, 0, 60, 12) -> image
    (82, 10, 100, 22). A query at prompt probability 0.5 exactly is not above the threshold."""
    backend = _grounded_sam(
        [[0.5, 0.5, 0.5, 0.5], [0.9, 0.1, 0.4, 0.4], [0.5, 0.5, 0.2, 0.2]],
        [[0.1, 0.8, 0.1, 0.1], [0.1, 0.7, 0.2, 0.1], [0.1, 0.5, 0.1, 0.1]],
    )
    win = (40, 10, 100, 50)
    (det,) = backend._detect_chunk(
        [(0, win, torch.zeros(3, 8, 8), torch.ones(8, 8, dtype=torch.long))], torch
    )
    np.testing.assert_allclose(det.xyxy, [[55, 20, 85, 40], [82, 10, 100, 22]], atol=1e-4)
    np.testing.assert_allclose(det.scores, [0.8, 0.7], atol=1e-6)


def _sam3(box_threshold: float = 0.5, max_boxes: int = 100):
    from labeler.sam3 import Sam3Backend

    backend = Sam3Backend.__new__(Sam3Backend)
    cls = ClassSpec("Bicycle", prompts=("bicycle",), box_threshold=box_threshold)
    backend.config = LabelConfig(
        data="unused", cls=cls, out="unused", backend="sam3", max_boxes=max_boxes
    )
    return backend


def test_sam3_tile_candidates_in_image_pixels():
    """Tile window (40, 10, 100, 50): 60 wide, 40 tall. Box (0.25, 0.5, 0.75, 1.0) of the crop
    (XYXY) -> (15, 20, 45, 40) + (40, 10) = (55, 30, 85, 50). Mask logits 4 x 4, +10 in the
    top-left 2 x 2: bilinear (half-pixel centres) puts probability 0.5 at source coordinate
    1.5, i.e. output row (1.5 + 0.5) x 40 / 4 - 0.5 = 19.5 and column 29.5: the mask is rows
    0..19, columns 0..29 of the crop (less its far corner), at (y 10, x 40) in the image. Scores: 0.9 kept, 0.5 (the
    threshold itself) and 0.2 dropped."""
    backend = _sam3()
    logits = torch.full((3, 4, 4), -10.0)
    logits[:, :2, :2] = 10.0
    scores = np.array([0.5, 0.9, 0.2], np.float32)
    boxes = np.array([[0, 0, 1, 1], [0.25, 0.5, 0.75, 1.0], [0, 0, 1, 1]], np.float32)
    (c,) = backend._candidates((40, 10, 100, 50), 0, scores, boxes, logits)
    np.testing.assert_allclose(c.xyxy, [55, 30, 85, 50])
    assert (c.score, c.prompt, c.window) == (0.9, 0, (40, 10, 100, 50))
    assert (c.mask.y0, c.mask.x0, c.mask.mask.shape) == (10, 40, (20, 30))
    # row 19 is at source row 1.45: weight 0.55 of the inside; columns 23 and 24 at source
    # 1.067 and 1.133: 0.55 x 0.933 = 0.513 in, 0.55 x 0.867 = 0.477 out
    m = c.mask.mask
    assert m[:, 0].all() and m[0, :].all() and m[19, 23] and not m[19, 24]
    assert c.low_res.shape == (4, 4)


@pytest.mark.parametrize("max_boxes, expect", [(1, [0.9]), (2, [0.9, 0.7]), (0, [0.9, 0.7, 0.6])])
def test_sam3_max_boxes_keeps_the_best_queries_per_crop_and_prompt(max_boxes, expect):
    """``max_boxes`` best scores of a crop and prompt (0 = all), then the threshold 0.5."""
    backend = _sam3(max_boxes=max_boxes)
    logits = torch.full((4, 4, 4), 10.0)
    scores = np.array([0.6, 0.9, 0.1, 0.7], np.float32)
    boxes = np.tile(np.array([0, 0, 1, 1], np.float32), (4, 1))
    cands = backend._candidates((0, 0, 8, 6), 0, scores, boxes, logits)
    assert [c.score for c in cands] == pytest.approx(expect)
    assert all(c.mask.mask.shape == (6, 8) for c in cands)


def _ramp(h: int, w: int) -> np.ndarray:
    """An (h, w, 3) image whose channel 0 is the row and channel 1 the column number."""
    img = np.zeros((h, w, 3), np.int32)
    img[..., 0] = np.arange(h)[:, None]
    img[..., 1] = np.arange(w)[None, :]
    return img


def test_grounded_sam_crops_are_the_whole_image_then_its_tiles():
    """40 x 100 (h x w), --tiles 1x2, overlap 0.2: tile width 100 / 1.8 = 55.6, step 44.4:
    columns 0..56 and 44..100, all 40 rows; each crop is those rows and columns."""
    from labeler.grounded_sam import GroundedSamBackend

    backend = GroundedSamBackend.__new__(GroundedSamBackend)
    backend.config = _config(tiles=(1, 2), tile_overlap=0.2)
    img = _ramp(40, 100)
    crops = backend._crops(img)
    assert [win for win, _ in crops] == [(0, 0, 100, 40), (0, 0, 56, 40), (44, 0, 100, 40)]
    for (x0, y0, x1, y1), crop in crops:
        assert crop.shape == (y1 - y0, x1 - x0, 3)
        assert (crop[0, 0, 0], crop[-1, -1, 0]) == (y0, y1 - 1)
        assert (crop[0, 0, 1], crop[-1, -1, 1]) == (x0, x1 - 1)


def test_grounded_sam_leaves_out_a_tile_too_thin_for_the_detector_not_the_image():
    """2 x 4000 (h x w), --tiles 2x1, at the released Grounding DINO's resize (800 / 1333): the
    whole image becomes 1 x 1333 px, each 1-row tile 0 x 1333, so the tiles are left out and
    the whole image alone reaches the detector (a tile kept fails the image in the processor;
    an image 1 px across at the detector left out would have its first tile taken for it)."""
    from transformers import GroundingDinoImageProcessor

    from labeler.grounded_sam import GroundedSamBackend

    backend = GroundedSamBackend.__new__(GroundedSamBackend)
    backend.config = _config(tiles=(2, 1), tile_overlap=0.2)
    proc = GroundingDinoImageProcessor(size={"shortest_edge": 800, "longest_edge": 1333})
    backend.detector = SimpleNamespace(processor=SimpleNamespace(image_processor=proc))
    img = _ramp(2, 4000)
    assert [win for win, _ in backend._crops(img)] == [
        (0, 0, 4000, 2),
        (0, 0, 4000, 1),
        (0, 1, 4000, 2),
    ]
    ((win, pixels, mask),) = backend._det_inputs(img)
    assert win == (0, 0, 4000, 2) and tuple(pixels.shape) == (3, 1, 1333)
    assert tuple(mask.shape) == (1, 1333)


def test_sam3_windows_are_the_whole_image_then_square_tiles():
    """40 x 100 (h x w), --tiles 1x2, overlap 0.2: side max(40 / 1, 100 / 1.8) = 55.6, capped
    at the short side 40; columns need ceil(60 / 32) + 1 = 3 starts to keep the overlap:
    0, 30, 60."""
    backend = _sam3()
    backend.config = LabelConfig(
        data="unused", cls=backend.config.cls, out="unused", backend="sam3", tiles=(1, 2),
        tile_overlap=0.2,
    )  # fmt: skip
    assert backend.windows(40, 100) == [
        (0, 0, 100, 40), (0, 0, 40, 40), (30, 0, 70, 40), (60, 0, 100, 40),
    ]  # fmt: skip


def test_replace_pastes_the_refined_mask_on_the_crops_rows_and_columns():
    """Crop (0, 20, 10, 30): 10 x 10 at x 0..9, y 20..29 (its x1 10 below its y1 30). Coarse 3 x 3
    at (y 22, x 2); refined 0.9 on crop rows and columns 1..4: IoU 9 / 16, replaced; the mask
    is image rows 21..24, columns 1..4 in the crop's window."""
    coarse = MaskCrop(22, 2, np.ones((3, 3), bool))
    prob = np.zeros((10, 10), np.float32)
    prob[1:5, 1:5] = 0.9
    mask, p, kept = _replace(coarse, np.ones((3, 3), np.float16), (0, 20, 10, 30), prob)
    assert kept and (mask.y0, mask.x0, mask.y1, mask.x1) == (20, 0, 30, 10)
    rows, cols = np.nonzero(mask.mask)
    assert (rows.min() + 20, rows.max() + 20, cols.min(), cols.max()) == (21, 24, 1, 4)
    assert mask.area == 16 and p[1, 1] == np.float16(0.9) and p[0, 0] == 0


def test_replace_keeps_the_coarse_mask_outside_the_crop_in_the_union_window():
    """Coarse: row y 5, x 0..39 (SAM masks leave their boxes); crop (10, 0, 30, 20). Refined 0.9
    on rows 5-6, x 10..29: new 40 px, old inside 20, IoU 0.5: replaced inside the crop only. The
    window is the union (0, 0)..(40, 20): row 5 whole (coarse outside, refined inside), row 6
    x 10..29."""
    coarse = MaskCrop(5, 0, np.ones((1, 40), bool))
    prob = np.zeros((20, 20), np.float32)
    prob[5:7, :] = 0.9
    mask, p, kept = _replace(coarse, np.full((1, 40), 0.6, np.float16), (10, 0, 30, 20), prob)
    assert kept and (mask.y0, mask.x0, mask.y1, mask.x1) == (0, 0, 20, 40)
    assert mask.mask[5].all() and mask.mask[6].tolist() == [False] * 10 + [True] * 20 + [False] * 10
    assert mask.area == 60 and p[5, 0] == np.float16(0.6) and p[5, 10] == np.float16(0.9)


def test_sam3_square_tile_side_when_not_capped():
    """100 x 100, --tiles 2x2, overlap 0.2: side 100 / (2 - 0.2) = 55.6 -> 56 (under the short
    side), starts 0 and 44 on each axis."""
    from labeler.sam3 import square_windows

    assert square_windows(100, 100, 2, 2, 0.2) == [
        (0, 0, 56, 56), (44, 0, 100, 56), (0, 44, 56, 100), (44, 44, 100, 100),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "hw, grid, windows",
    [
        ((40, 100), (1, 2), [(0, 0, 100, 40), (0, 0, 40, 40), (30, 0, 70, 40), (60, 0, 100, 40)]),
        ((100, 40), (2, 1), [(0, 0, 40, 100), (0, 0, 40, 40), (0, 30, 40, 70), (0, 60, 40, 100)]),
    ],
)
def test_sam3_tile_crops_are_the_windows_rows_and_columns(hw, grid, windows):
    """The crops SAM 3's processor receives for the windows of a landscape and a portrait image
    (square side 40, starts 0, 30, 60 along the long side): rows y0..y1 and columns x0..x1 of
    each (square tiles hide a mix-up of the two in shape)."""
    backend = _sam3()
    backend.config = LabelConfig(
        data="unused", cls=backend.config.cls, out="unused", backend="sam3", tiles=grid,
        tile_overlap=0.2,
    )  # fmt: skip

    def processor(images, **_):
        return {"pixel_values": torch.from_numpy(images)[None]}

    backend.sam3 = SimpleNamespace(processor=SimpleNamespace(image_processor=processor))
    got = backend._inputs(_ramp(*hw))
    assert [w for w, _ in got] == windows
    for (x0, y0, x1, y1), crop in got:
        assert tuple(crop.shape) == (y1 - y0, x1 - x0, 3)
        assert (int(crop[0, 0, 0]), int(crop[-1, -1, 0])) == (y0, y1 - 1)
        assert (int(crop[0, 0, 1]), int(crop[-1, -1, 1])) == (x0, x1 - 1)


def test_sam3_mask_only_pass_gives_no_probability_map():
    """At ``floor == MASK_THRESHOLD`` (the candidates' pass) only the tight mask comes back, no
    float16 copy of the window; below it the probabilities come too. A constant 0.9 map upsamples
    to 0.9 everywhere: mask = the whole 3x4 window at the crop's offset (x 5, y 2)."""
    from labeler.sam3 import MASK_THRESHOLD, probs_in_windows

    low = torch.full((1, 2, 2), 0.9)
    ((mask, prob),) = probs_in_windows(low, (3, 4), (5, 2), MASK_THRESHOLD)
    assert (mask.y0, mask.x0, mask.mask.shape, bool(mask.mask.all())) == (2, 5, (3, 4), True)
    assert prob is None
    ((mask, prob),) = probs_in_windows(low, (3, 4), (5, 2))
    assert (mask.y0, mask.x0, mask.mask.shape) == (2, 5, (3, 4))
    assert prob.dtype == np.float16 and prob.tolist() == [[np.float16(0.9)] * 4] * 3


def test_refine_segment_crops_undoes_sams_resize_with_the_resized_size():
    """SAM's processor resizes a 100x50 crop to 1024x512 inside a 1024x1024 pad; the decoder's
    256x256 logits cover the pad. Logits +10 on the top half (rows 0..127, pad rows 0..511) and
    -10 below: cut to the resized 1024x512 and scaled to the crop, rows 0..49 are inside. (Cut
    to the crop's own 100x50 instead, the whole crop would be inside.)"""
    from transformers import SamImageProcessor, SamProcessor

    class Sam:
        def get_image_embeddings(self, pixels):
            assert tuple(pixels.shape) == (1, 3, 1024, 1024)
            return pixels

        def __call__(self, input_boxes, multimask_output, image_embeddings):
            low = torch.full((1, 1, 1, 256, 256), -10.0)
            low[..., :128, :] = 10.0
            return SimpleNamespace(pred_masks=low, iou_scores=torch.full((1, 1, 1), 0.75))

    proc = SamProcessor(SamImageProcessor())
    seg = SimpleNamespace(model=Sam(), processor=proc, model_type="sam")
    refiner = Refiner(seg, "cpu")
    ((prob, iou),) = refiner.segment_crops([np.zeros((100, 50, 3), np.uint8)], [[0, 0, 50, 100]])
    assert prob.shape == (100, 50) and iou == 0.75
    assert (prob[:50] > 0.5).all() and (prob[50:] < 0.5).all()


def test_sam3_mask_is_strictly_above_half_and_its_window_strictly_above_the_floor():
    """Same-size maps (the resize is the identity). A map whose best pixel is exactly 0.5 has
    an empty mask: None. With floor 0.5, pixels at exactly 0.5 are outside the window: only the
    0.9 pixel at row 0, column 1 (image y 7, x 4 + 1) remains."""
    from labeler.sam3 import MASK_THRESHOLD, probs_in_windows

    half = torch.full((1, 2, 2), 0.5)
    assert probs_in_windows(half, (2, 2)) == [None]
    low = torch.tensor([[[0.5, 0.9], [0.5, 0.5]]])
    ((mask, prob),) = probs_in_windows(low, (2, 2), (4, 7), MASK_THRESHOLD)
    assert (mask.y0, mask.x0, mask.mask.tolist(), prob) == (7, 5, [[True]], None)
    ((mask, _),) = probs_in_windows(low, (2, 2), floor=MASK_THRESHOLD)  # default offset: none
    assert (mask.y0, mask.x0) == (0, 1)
    wide = torch.zeros((1, 2, 8))  # a non-square map: its width is 8, not its height
    wide[0, 0, 7] = 0.9
    ((mask, _),) = probs_in_windows(wide, (2, 8), floor=MASK_THRESHOLD)
    assert (mask.y0, mask.x0, mask.mask.tolist()) == (0, 7, [[True]])


@pytest.mark.parametrize("cap, expect", [(0, [0.5, 0.4]), (1, [0.5]), (2, [0.5, 0.4])])
def test_sam3_max_instances_caps_the_kept_instances_and_zero_keeps_all(cap, expect):
    """Two separate candidates (scores 0.5, 0.4); ``max_instances`` 0 means no cap."""
    from labeler.sam3 import Sam3Backend
    from tests.labeler.test_sam3 import _cand

    spec = ClassSpec("Bicycle", prompts=("bicycle",), max_instances=cap)
    b = Sam3Backend(LabelConfig(data="unused", cls=spec, backend="sam3"), class_id=7)
    inst = b.instances(80, 80, [_cand(0, 0.5, 10, 10, 20, 20), _cand(0, 0.4, 50, 50, 20, 20)])
    assert inst.scores.tolist() == pytest.approx(expect)


class BoxPainter:
    """A SAM / SAM 2 stand-in at the released models' sizes (1024 px inputs, 256x256 logits):
    each box is read in the model's input frame, as the prompt encoder reads it (``input_boxes``
    in input pixels), and its logits are +10 on every 4x4-px cell the box touches and one cell
    around them (a box thinner than a pixel marks 3x3 cells: bilinear resampling leaves a lone
    cell's corners below 0), -10 elsewhere. The boxes it was given are recorded."""

    def __init__(self, sam2: bool = False) -> None:
        self.sam2, self.boxes = sam2, []

    def get_image_embeddings(self, pixels):
        assert tuple(pixels.shape[-2:]) == (1024, 1024)
        return [pixels] if self.sam2 else pixels

    def __call__(self, input_boxes, multimask_output, image_embeddings, **_):
        b, n = input_boxes.shape[:2]  # images, boxes of each
        self.boxes += input_boxes.double().reshape(-1, 4).tolist()
        low = torch.full((b, n, 1, 256, 256), -10.0)
        for i in range(b):
            for k, (x0, y0, x1, y1) in enumerate((input_boxes[i].double() / 4).tolist()):
                c0, r0 = int(np.floor(x0)), int(np.floor(y0))
                c1, r1 = max(int(np.ceil(x1)), c0 + 1), max(int(np.ceil(y1)), r0 + 1)
                low[i, k, 0, max(r0 - 1, 0) : r1 + 1, max(c0 - 1, 0) : c1 + 1] = 10.0
        return SimpleNamespace(pred_masks=low, iou_scores=torch.full((b, n, 1), 0.5))


def _painted_backend(kind: str, **processor):
    """A GroundedSamBackend whose segmenter is :class:`BoxPainter` behind transformers' default
    SAM or SAM 2 processor (the hub checkpoints' settings: 1024 px, SAM padded square)."""
    from transformers import Sam2ImageProcessor, Sam2Processor, SamImageProcessor, SamProcessor

    from labeler.grounded_sam import GroundedSamBackend

    backend = GroundedSamBackend.__new__(GroundedSamBackend)
    backend.config = _config()
    backend.device, backend.dtype = "cpu", None
    if kind == "sam2":
        proc = Sam2Processor(Sam2ImageProcessor(**processor))
    else:
        proc = SamProcessor(SamImageProcessor(**processor))
    painter = BoxPainter(sam2=kind == "sam2")
    backend.segmenter = SimpleNamespace(model=painter, processor=proc, model_type=kind)
    return backend, painter


@pytest.mark.parametrize(
    "kind, hw, boxes, expect",
    [
        # 600 x 800 (h x w), below 1024: SAM upscales it to 768 x 1024 (x 1.28), padded below.
        # A box on the bottom border, a 0.5-px box on the right border (0.64 px at 1024), a
        # box 0.4 px tall (0.512 px at 1024)
        (
            "sam", (600, 800),
            [[10, 20, 110.5, 600], [799.5, 0, 800, 599], [300, 300.2, 500, 300.6]],
            [[12.8, 25.6, 141.44, 768], [1023.36, 0, 1024, 766.72], [384, 384.256, 640, 384.768]],
        ),
        # the same turned upright: 1024 x 768, padded on the right
        (
            "sam", (800, 600),
            [[20, 10, 600, 110.5], [0, 799.5, 599, 800]],
            [[25.6, 12.8, 768, 141.44], [0, 1023.36, 766.72, 1024]],
        ),
        # 1000 x 3000: 341 x 1024 (int(341.33 + 0.5)): rows scale by 341 / 1000, columns by
        # 1024 / 3000 (one scale for both, 1024 / 3000, puts y 1000 at 341.33, off the image);
        # a box one pixel square
        (
            "sam", (1000, 3000),
            [[0, 0, 3000, 1000], [1500, 500, 1501, 501]],
            [[0, 0, 1024, 341], [512, 170.5, 512 + 1024 / 3000, 170.841]],
        ),
        # SAM 2 squashes 600 x 800 to 1024 x 1024: x 1.28, y 1024 / 600
        (
            "sam2", (600, 800),
            [[10, 20, 110.5, 600], [799.5, 0, 800, 599]],
            [[12.8, 20 * 1024 / 600, 141.44, 1024], [1023.36, 0, 1024, 599 * 1024 / 600]],
        ),
    ],
)  # fmt: skip
def test_segment_puts_boxes_in_the_input_frame_and_masks_back_on_them(kind, hw, boxes, expect):
    """The real checkpoints' frames, which the tiny models (64 and 128 px, images larger than
    their input) never reach: SAM resizes the long side to 1024, upscaling an image below it,
    pads bottom and right; SAM 2 resizes to 1024 x 1024. Each box reaches the prompt encoder
    in input pixels, rows and columns scaled by the resized size over the original (as
    ``SamProcessor`` scales ``input_boxes``), and its mask comes back on the box in the
    original image: it holds the pixel under the box's centre and its extent is the box's,
    within the painted margin (two 4-px logit cells in image pixels, and one pixel).
    A mix-up of x and y, a forgotten pad cut or one scale for both axes fails here."""
    backend, painter = _painted_backend(kind)
    h, w = hw
    dets = Detections(np.array(boxes, np.float32), np.full(len(boxes), 0.5), np.zeros(len(boxes)))
    masks, lows, _, _ = backend.segment([np.zeros((h, w, 3), np.uint8)], [dets])[0]
    np.testing.assert_allclose(painter.boxes, expect, atol=2e-3)
    assert tuple(lows.shape) == (len(boxes), 256, 256)
    rh, rw = (1024, 1024) if kind == "sam2" else (int(v * 1024 / max(hw) + 0.5) for v in hw)
    _assert_masks_on_boxes(masks, boxes, hw, (rh, rw))


def _assert_masks_on_boxes(masks, boxes, hw, resized) -> None:
    """Each :class:`BoxPainter` mask holds the pixel under its box's centre and spans the box,
    within the painted margin: two logit cells (8 px of the ``resized`` image) in image pixels,
    and one pixel."""
    (h, w), (rh, rw) = hw, resized
    sx, sy = 8 * w / rw, 8 * h / rh
    for box, m in zip(boxes, masks, strict=True):
        x0, y0, x1, y1 = box
        got = m.to_full(h, w)
        assert got[int(min((y0 + y1) / 2, h - 1)), int(min((x0 + x1) / 2, w - 1))], box
        rows, cols = np.nonzero(got)
        extent = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        np.testing.assert_array_less(np.abs(np.subtract(extent, box)), [sx + 1, sy + 1] * 2)


def test_segment_reads_sams_frame_from_the_processors_output_not_its_size_setting():
    """A SAM processor with ``do_resize`` false (a local checkpoint's processor_config.json)
    pads a 600 x 800 image to 1024 x 1024 as it is: the boxes stay in image pixels and the masks
    come back on them. (Scaled by ``longest_edge`` over the long side, 1.28, as transformers'
    ``SamProcessor`` scales ``input_boxes`` whatever ``do_resize`` says, every box would reach
    the model 28% further from the top-left corner.)"""
    backend, painter = _painted_backend("sam", do_resize=False)
    boxes = [[10, 20, 110.5, 600], [799.5, 0, 800, 599], [300, 300.2, 500, 300.6]]
    dets = Detections(np.array(boxes, np.float32), np.full(3, 0.5), np.zeros(3))
    masks, _, _, _ = backend.segment([np.zeros((600, 800, 3), np.uint8)], [dets])[0]
    np.testing.assert_allclose(painter.boxes, boxes, atol=1e-4)
    _assert_masks_on_boxes(masks, boxes, (600, 800), (600, 800))


@pytest.mark.parametrize("kind", ["sam", "sam2"])
def test_refine_puts_each_crops_box_in_its_input_frame_and_its_mask_back_on_it(kind):
    """``--refine``'s crops at the released models' sizes, two shapes in one chunk: a 600 x 800
    crop (an image smaller than its crop square, upscaled) and a 40 x 25 one (tiny, upscaled
    25.6 x by SAM, 25.6 x 41 by SAM 2). The box reaches the model in each crop's own input
    frame, the probability comes back at the crop's size and above 0.5 on the box."""
    from labeler.models import LoadedModel

    backend, painter = _painted_backend(kind)
    seg = backend.segmenter
    refiner = Refiner(LoadedModel(seg.model, seg.processor, "painter", kind, None), "cpu")
    crops = [np.zeros((600, 800, 3), np.uint8), np.zeros((40, 25, 3), np.uint8)]
    boxes = [[10, 20, 110.5, 600], [3, 0.5, 3.5, 40]]
    got = list(refiner.segment_crops(crops, [np.array(b, np.float32) for b in boxes]))
    resized = [(1024, 1024)] * 2 if kind == "sam2" else [(768, 1024), (1024, 640)]
    sizes = [c.shape[:2] for c in crops]
    expect = [
        np.multiply(b, [rw / w, rh / h] * 2)
        for b, (h, w), (rh, rw) in zip(boxes, sizes, resized, strict=True)
    ]
    np.testing.assert_allclose(painter.boxes, expect, atol=2e-3)
    for (prob, _), crop, box, size in zip(got, crops, boxes, resized, strict=True):
        assert prob.shape == crop.shape[:2]
        _assert_masks_on_boxes([MaskCrop(0, 0, prob > 0.5)], [box], crop.shape[:2], size)


@pytest.mark.parametrize("cap, expect", [(0, [0.5, 0.4]), (1, [0.5]), (2, [0.5, 0.4])])
def test_grounded_sam_max_instances_caps_the_kept_instances_and_zero_keeps_all(cap, expect):
    """Two separate boxes (scores 0.5, 0.4) through SAM's frame (:class:`BoxPainter`) and the
    mask dedup: ``max_instances`` 0 means no cap, as for SAM 3."""
    from pathlib import Path

    from labeler.backends import LoadedImage

    backend, _ = _painted_backend("sam")
    cls = ClassSpec("Bicycle", prompts=("bicycle",), max_instances=cap)
    backend.config = LabelConfig(data="unused", cls=cls, out="unused", device="cpu")
    backend.prompts, backend.class_id, backend.detector = ("bicycle",), 7, SimpleNamespace()
    boxes = [[10, 10, 100, 100], [300, 300, 400, 400]]
    backend.detect = lambda images, prepared: [Detections(boxes, [0.5, 0.4], [0, 0])]
    item = LoadedImage("train", "x", Path("x.png"), np.zeros((600, 800, 3), np.uint8))
    item.prepared["det"] = ["prepared"]  # made by prepare() in a loader thread
    (out,) = backend.label([item])
    assert out.instances.scores.tolist() == pytest.approx(expect)
    assert out.instances.class_ids.tolist() == [7] * len(expect)
