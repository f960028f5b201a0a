"""Facts only real checkpoints would show, pinned against transformers' own pipelines.

Weights here are random, so a wrong coordinate frame or a wrong output would still give some
masks; these tests compare our path with the one transformers documents for each model instead
(facts checked against transformers 5.25, docs/labeler.md "Checked against transformers").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labeler.config import ClassSpec, LabelConfig
from labeler.merge import Detections


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from labeler.testing import save_tiny_detector, save_tiny_segmenter

    root = tmp_path_factory.mktemp("reference")
    models = {"det": save_tiny_detector(root / "det")}
    for kind in ("sam", "sam_hq", "sam2"):
        models[kind] = save_tiny_segmenter(root / kind, kind)
    return models


def _backend(tiny, kind, **kw):
    from labeler.grounded_sam import GroundedSamBackend
    from labeler.models import load_detector, load_segmenter

    cls = ClassSpec("Bicycle", prompts=("bicycle",), box_threshold=0.45, text_threshold=0.5)
    cfg = LabelConfig(
        data="unused", cls=cls, out="unused", detector=str(tiny["det"]),
        segmenter=str(tiny[kind]), device="cpu", progress=False, **kw,
    )  # fmt: skip
    backend = GroundedSamBackend(cfg, class_id=1)
    backend.setup(load_detector(str(tiny["det"])), load_segmenter(str(tiny[kind])), "cpu")
    return backend


@pytest.mark.parametrize("kind", ["sam", "sam_hq", "sam2"])
@pytest.mark.parametrize("hw", [(45, 70), (75, 33)])  # landscape and portrait: SAM pads one side
def test_segment_matches_transformers_box_pipeline(tiny, kind, hw, one_thread):
    """Boxes in absolute image XYXY, as the processor's ``input_boxes``; one mask per box
    (``multimask_output=False``, as Grounded-SAM's ``predict_torch``; SAM-HQ with
    ``hq_token_only=False``, its predictor's default); ``post_process_masks`` with the original
    and resized sizes (SAM: upsampled to the padded square, the padding cut, then resized) and
    binarised at logit 0. Our path scales the boxes itself and resamples inside windows."""
    from transformers import AutoProcessor

    backend = _backend(tiny, kind)
    h, w = hw
    img = np.random.default_rng(h).integers(0, 255, (h, w, 3), dtype=np.uint8)
    boxes = np.array(
        [[2.5, 3.0, w * 0.6, h * 0.5], [w * 0.3, h * 0.2, w - 1.5, h - 2.0], [0, 0, w, h]],
        np.float32,
    )
    dets = Detections(boxes, np.full(3, 0.5), np.zeros(3))
    masks, lows, mask_scores, _ = backend.segment([img], [dets])[0]

    proc = AutoProcessor.from_pretrained(str(tiny[kind]))
    model = backend.segmenter.model
    inputs = proc(images=img, input_boxes=[boxes.tolist()], return_tensors="pt")
    extra = {"hq_token_only": False} if kind == "sam_hq" else {}
    with torch.no_grad():
        out = model(**inputs, multimask_output=False, **extra)
    sizes = [inputs["original_sizes"]]
    if kind != "sam2":
        sizes.append(inputs["reshaped_input_sizes"])
    # the low-resolution logits themselves (SAM-HQ's read its encoder's early features too)
    np.testing.assert_allclose(lows.float().numpy(), out.pred_masks[0, :, 0].numpy(), atol=1e-4)
    ref = proc.post_process_masks(out.pred_masks, *sizes)[0][:, 0]  # binarised at 0
    assert ref.shape == (3, h, w)
    for k, m in enumerate(masks):
        got = m.to_full(h, w)
        assert (got != ref[k].numpy()).sum() == 0, f"box {k}"
    # the decoder's IoU prediction, clamped to 0..1 (random weights predict below 0)
    ref_scores = out.iou_scores[0, :, 0].clamp(0, 1).numpy()
    np.testing.assert_allclose(mask_scores, ref_scores, atol=1e-5)


@pytest.fixture(scope="module")
def released_size(tmp_path_factory):
    from labeler.testing import save_tiny_segmenter

    root = tmp_path_factory.mktemp("sam1024")
    return {k: save_tiny_segmenter(root / k, k, image_size=1024) for k in ("sam", "sam_hq")}


@pytest.mark.parametrize(
    "kind, hw", [("sam", (600, 800)), ("sam", (1000, 3000)), ("sam_hq", (600, 800))]
)
def test_segment_matches_transformers_at_the_released_size(
    tiny, released_size, kind, hw, one_thread
):
    """The comparison above in the released SAM's and SAM-HQ's frames (1024 px input, 256x256
    logits), which the 64 px tiny models never reach: a 600x800 image is upscaled to 768x1024
    (its masks come back downscaled), a 1000x3000 one resized to 341x1024 (rows and columns
    scaled apart). Boxes on the border, 0.5 px wide, 0.4 px tall and one pixel square, as the
    processor's ``input_boxes``: the same logits, the same masks pixel for pixel."""
    from transformers import AutoProcessor

    from labeler.models import load_segmenter

    backend = _backend(tiny, "sam")
    backend.segmenter = load_segmenter(str(released_size[kind]))
    h, w = hw
    img = np.random.default_rng(h).integers(0, 255, (h, w, 3), dtype=np.uint8)
    boxes = np.array(
        [[10, 20, w * 0.4, h], [w - 0.5, 0, w, h - 1], [w * 0.3, h / 2 + 0.2, w * 0.6, h / 2 + 0.6],
         [w / 2, h / 2, w / 2 + 1, h / 2 + 1], [0, 0, w, h]],
        np.float32,
    )  # fmt: skip
    dets = Detections(boxes, np.full(len(boxes), 0.5), np.zeros(len(boxes)))
    masks, lows, _, _ = backend.segment([img], [dets])[0]

    proc = AutoProcessor.from_pretrained(str(released_size[kind]))
    inputs = proc(images=img, input_boxes=[boxes.tolist()], return_tensors="pt")
    assert inputs["pixel_values"].shape[-2:] == (1024, 1024)
    extra = {"hq_token_only": False} if kind == "sam_hq" else {}
    with torch.no_grad():
        out = backend.segmenter.model(**inputs, multimask_output=False, **extra)
    assert out.pred_masks.shape[-2:] == (256, 256)
    np.testing.assert_allclose(lows.float().numpy(), out.pred_masks[0, :, 0].numpy(), atol=1e-4)
    sizes = (inputs["original_sizes"], inputs["reshaped_input_sizes"])
    ref = proc.post_process_masks(out.pred_masks, *sizes)[0][:, 0]
    for k, m in enumerate(masks):
        assert 0 < m.area < h * w  # random weights, but neither empty nor the whole image
        assert (m.to_full(h, w) != ref[k].numpy()).sum() == 0, f"box {k}"


def test_prompt_text_is_grounding_dinos_caption():
    """Lower case, each prompt ended by "." (the caption format of Grounding DINO's demos,
    ``"chair . person . dog ."``): BERT splits punctuation, so ``"bicycle. a bike."`` gives
    the same tokens, with the phrase separator "." at id 1012, which transformers hard-codes
    (``SPECIAL_TOKENS``) to keep each phrase's attention to itself."""
    from labeler.grounded_sam import prompt_text, prompt_token_positions
    from labeler.testing import TINY_VOCAB

    text, spans = prompt_text((" Bicycle ", "A BIKE", "car"))
    assert text == "bicycle. a bike. car."
    assert [text[a:b] for a, b in spans] == ["bicycle", "a bike", "car"]
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(TINY_VOCAB)}, do_lower_case=True)
    enc = tok(text, return_offsets_mapping=True)
    assert enc["input_ids"] == tok("bicycle . a bike . car .")["input_ids"]
    ids = enc["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102 and ids.count(1012) == 3 and ids[-2] == 1012
    tokens = prompt_token_positions(enc["offset_mapping"], spans)
    words = [[TINY_VOCAB[ids[t]] for t in pos] for pos in tokens]
    assert words == [["bicycle"], ["a", "bike"], ["car"]]  # never the "." or [CLS] / [SEP]


@pytest.mark.parametrize("hw", [(40, 90), (96, 37)])
def test_detect_matches_transformers_grounded_post_processing(tiny, hw, one_thread):
    """Whole-image detection equals ``post_process_grounded_object_detection(threshold=box,
    text_threshold=text, target_sizes=[(h, w)])`` (sizes as height, width; boxes normalised
    centre-x, centre-y, w, h, scaled to image pixels, clipped to the image by us), and each box
    goes to a prompt whose phrase transformers reads for it."""
    from transformers import AutoProcessor

    backend = _backend(tiny, "sam", max_boxes=0)
    h, w = hw
    img = np.random.default_rng(w).integers(0, 255, (h, w, 3), dtype=np.uint8)
    det = backend.detect([img])[0]

    proc = AutoProcessor.from_pretrained(str(tiny["det"]))
    inputs = proc(images=img, text="bicycle.", return_tensors="pt")
    assert torch.equal(inputs["input_ids"], backend.text_inputs["input_ids"])
    with torch.no_grad():
        out = backend.detector.model(**inputs)
    ref = proc.post_process_grounded_object_detection(
        out, inputs["input_ids"], threshold=0.45, text_threshold=0.5, target_sizes=[(h, w)]
    )[0]
    # a box is kept when transformers' phrase for it holds the prompt's word (its tokens above
    # text_threshold; the phrase may also hold "." and [SEP], never a prompt)
    labelled = np.array(["bicycle" in label.split(".")[0] for label in ref["text_labels"]])
    assert 0 < labelled.sum() < len(labelled) and len(det) == labelled.sum()
    order = np.argsort(-ref["scores"][labelled].numpy(), kind="stable")
    np.testing.assert_allclose(det.scores, ref["scores"][labelled].numpy()[order], atol=1e-6)
    boxes = ref["boxes"][labelled].numpy()[order].clip(0, [w, h, w, h])
    np.testing.assert_allclose(det.xyxy, boxes, atol=1e-3)


@pytest.mark.parametrize("kind", ["sam", "sam_hq", "sam2"])
def test_refiner_matches_transformers_box_pipeline(tiny, kind, one_thread):
    """``--refine``'s crops go through the same documented pipeline: box in crop pixels as the
    processor's ``input_boxes``, one mask, ``post_process_masks``; the crops of one chunk have
    different shapes (a crop at the image border is not square)."""
    from transformers import AutoProcessor

    from labeler.models import load_segmenter
    from labeler.refine import Refiner

    seg = load_segmenter(str(tiny[kind]))
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 255, s, dtype=np.uint8) for s in ((50, 50, 3), (30, 75, 3))]
    boxes = [np.array([5, 8, 40, 44], np.float32), np.array([10.5, 2, 60, 27], np.float32)]
    got = list(Refiner(seg, "cpu").segment_crops(crops, boxes))

    proc = AutoProcessor.from_pretrained(str(tiny[kind]))
    extra = {"hq_token_only": False} if kind == "sam_hq" else {}
    for (prob, iou), crop, box in zip(got, crops, boxes, strict=True):
        inputs = proc(images=crop, input_boxes=[[box.tolist()]], return_tensors="pt")
        with torch.no_grad():
            out = seg.model(**inputs, multimask_output=False, **extra)
        sizes = [inputs["original_sizes"]]
        if kind != "sam2":
            sizes.append(inputs["reshaped_input_sizes"])
        ref = proc.post_process_masks(out.pred_masks, *sizes, binarize=False)[0][0, 0]
        assert prob.shape == crop.shape[:2]
        np.testing.assert_allclose(prob, torch.sigmoid(ref).numpy(), atol=1e-5)
        assert iou == pytest.approx(float(out.iou_scores[0, 0, 0].clamp(0, 1)), abs=1e-5)


def test_setup_leaves_no_warning_filter_in_the_callers_process(tiny):
    """The real backends' setup installed ``ignore "The given NumPy array is not writable"`` for
    the process, left in a notebook's ``warnings.filters`` after the run. torch says it once
    a process: setup spends it, ignored, and leaves the filters as they were."""
    import warnings

    before = list(warnings.filters)
    _backend(tiny, "sam")
    assert warnings.filters == before
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        torch.from_numpy(np.frombuffer(b"\0\0\0", np.uint8))  # a decoded image: read-only
    assert not [w for w in said if "not writable" in str(w.message)]
