"""Real-checkpoint facts the tiny test models must reproduce (issue 11, cases 1, 7, 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from labeler.models import keep_prompt_encoder_fp32, load_segmenter


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    from labeler.testing import save_tiny_detector, save_tiny_segmenter

    root = tmp_path_factory.mktemp("models11")
    return {
        "det": save_tiny_detector(root / "det"),
        "sam": save_tiny_segmenter(root / "sam", "sam"),
        "sam_hq": save_tiny_segmenter(root / "sam_hq", "sam_hq"),
        "sam2_video": save_tiny_segmenter(root / "sam2_video", "sam2_video"),
    }


def test_case1_sam2_video_checkpoint_loads_as_sam2(tiny):
    """facebook/sam2.1-hiera-* carry model_type "sam2_video"; it loads as Sam2Model with every
    image-model weight of the checkpoint."""
    from transformers import Sam2VideoModel

    assert json.loads((tiny["sam2_video"] / "config.json").read_text())["model_type"] == (
        "sam2_video"
    )
    seg = load_segmenter(str(tiny["sam2_video"]))
    assert type(seg.model).__name__ == "Sam2Model" and seg.model_type == "sam2_video"
    ref = Sam2VideoModel.from_pretrained(tiny["sam2_video"]).state_dict()
    got = seg.model.state_dict()
    assert got and all(torch.equal(v, ref[k]) for k, v in got.items())
    assert hasattr(seg.processor, "image_processor")


def test_case10_tiny_vocabulary_has_berts_separator_ids(tiny):
    """Grounding DINO masks attention per phrase at ids 101, 102, 1012 ("."), 1029: the tiny
    tokenizer must give "." id 1012 so the tests exercise that masking."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor
    from transformers.models.grounding_dino.modeling_grounding_dino import (
        generate_masks_with_special_tokens_and_transfer_map,
    )

    tok = AutoProcessor.from_pretrained(tiny["det"]).tokenizer
    ids = tok(["bicycle. bike. motorcycle."], return_tensors="pt")["input_ids"]
    assert ids[0, 0] == 101 and ids[0, -1] == 102
    assert (ids[0] == 1012).sum() == 3
    special = AutoModelForZeroShotObjectDetection.from_pretrained(tiny["det"]).model.special_tokens
    assert sorted(special.tolist()) == [101, 102, 1012, 1029]
    mask, _ = generate_masks_with_special_tokens_and_transfer_map(ids, special)
    # "bicycle" (position 1) attends to itself, not to "bike" (position 3): phrases are apart
    assert bool(mask[0, 1, 1]) and not bool(mask[0, 1, 3])


@pytest.mark.parametrize("kind", ["sam", "sam_hq"])
def test_case7_positional_encoding_stays_fp32_under_autocast(tiny, kind):
    """Under bf16 autocast the prompt encoder's Fourier features equal the fp32 ones exactly
    (CPU autocast shows the same bf16 matmul as CUDA)."""
    seg = load_segmenter(str(tiny[kind]))
    model = seg.model
    boxes = torch.tensor([[[3.3, 7.1, 40.2, 51.9], [10.0, 2.5, 60.7, 33.3]]])
    with torch.no_grad():
        ref_sparse, _ = model.prompt_encoder(
            input_points=None, input_labels=None, input_boxes=boxes, input_masks=None
        )
        ref_pos = model.get_image_wide_positional_embeddings()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lossy, _ = model.prompt_encoder(
                input_points=None, input_labels=None, input_boxes=boxes, input_masks=None
            )
        assert not torch.equal(lossy.float(), ref_sparse)  # bf16 loses precision there
        keep_prompt_encoder_fp32(model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            sparse, _ = model.prompt_encoder(
                input_points=None, input_labels=None, input_boxes=boxes, input_masks=None
            )
            pos = model.get_image_wide_positional_embeddings()
    assert sparse.dtype == torch.float32 and torch.equal(sparse, ref_sparse)
    assert torch.equal(pos, ref_pos)


@pytest.mark.gpu
def test_case7_bf16_masks_match_fp32_on_gpu():
    """A ViT-B-sized random SAM on CUDA: mask IoU between fp32 and bf16-autocast runs, with the
    positional encodings in bf16 (before) and kept fp32 (after): after is at least as close."""
    from transformers import SamConfig, SamModel

    from labeler.models import autocast

    torch.manual_seed(0)
    model = SamModel(SamConfig()).eval().cuda()
    pixels = torch.randn(1, 3, 1024, 1024, device="cuda")
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(32, 2, generator=g) * 800
    wh = 50 + torch.rand(32, 2, generator=g) * 170
    boxes = torch.cat([xy, xy + wh], 1)[None].cuda()

    def masks(dtype):
        with torch.no_grad(), autocast("cuda", dtype):
            out = model(pixel_values=pixels, input_boxes=boxes, multimask_output=False)
        return out.pred_masks[0, :, 0].float() > 0

    def iou(a, b):
        return ((a & b).sum((1, 2)).float() / (a | b).sum((1, 2)).clamp(min=1).float()).mean()

    ref = masks(None)
    before = iou(ref, masks(torch.bfloat16))
    keep_prompt_encoder_fp32(model)
    after = iou(ref, masks(torch.bfloat16))
    print(f"mask IoU fp32 vs bf16: positional encodings bf16 {before:.4f}, fp32 {after:.4f}")
    assert float(after) >= float(before) - 1e-3 and float(after) >= 0.8
