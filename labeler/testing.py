"""Tiny random Grounding DINO and SAM / SAM-HQ checkpoints for tests and smoke runs.

They are saved with ``save_pretrained`` (model, tokenizer, image processors) so that code under
test loads them through the same ``from_pretrained(local_dir)`` path a user's hub checkpoint
takes. Weights are random: boxes and masks are arbitrary, only shapes and plumbing are real.
"""

from __future__ import annotations

import os
from pathlib import Path

# Word pieces at the ids of the real BERT (bert-base-uncased) vocabulary, which Grounding DINO
# hard-codes: [CLS] 101, [SEP] 102 and "." 1012 (also "?" 1029) split the text into phrases, and
# each phrase attends only to itself (transformers' SPECIAL_TOKENS). A vocabulary with "." at
# another id would never exercise that phrase-level masking. The tests' prompt words follow;
# every other id is an unused placeholder. Unknown words map to [UNK].
BERT_IDS = {
    "[PAD]": 0,
    "[UNK]": 100,
    "[CLS]": 101,
    "[SEP]": 102,
    "[MASK]": 103,
    ".": 1012,
    ",": 1010,
    "?": 1029,
}
PROMPT_WORDS = ("a", "bicycle", "bike", "motorcycle", "car", "person", "thing")


def tiny_vocab() -> list[str]:
    """The tests' vocabulary: BERT's special and separator ids, then the prompt words."""
    size = max(BERT_IDS.values()) + 1 + len(PROMPT_WORDS)
    vocab = [f"[unused{i}]" for i in range(size)]
    for word, i in BERT_IDS.items():
        vocab[i] = word
    for k, word in enumerate(PROMPT_WORDS):
        vocab[max(BERT_IDS.values()) + 1 + k] = word
    return vocab


TINY_VOCAB = tuple(tiny_vocab())


def spread_text_scores(model):
    """Random weights saturate Grounding DINO's text-box logits (every probability 1.0):
    shrinking the text projection keeps probabilities spread around 0.5, so thresholds act as
    they do on real models. Returns ``model``."""
    import torch

    with torch.no_grad():
        for layer_norm in (model.model.decoder.layer_norm, model.model.enc_output_norm):
            layer_norm.weight.mul_(0.05)
            layer_norm.bias.zero_()
    return model


def save_tiny_detector(path: str | os.PathLike, seed: int = 0) -> Path:
    """Save a tiny random Grounding DINO (Swin embed 8, BERT hidden 8, d_model 32) to ``path``."""
    import torch
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(
        vocab={w: i for i, w in enumerate(TINY_VOCAB)}, do_lower_case=True
    )
    backbone = SwinConfig(
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=4,
        image_size=64,
        out_features=["stage2", "stage3", "stage4"],
    )
    text = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=16,
        max_position_embeddings=64,
    )
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=12,
        max_text_len=32,
        num_feature_levels=4,
    )
    torch.manual_seed(seed)
    model = spread_text_scores(GroundingDinoForObjectDetection(config).eval())
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def save_tiny_segmenter(
    path: str | os.PathLike, kind: str = "sam", seed: int = 0, image_size: int = 64
) -> Path:
    """Save a tiny random SAM (``kind="sam"``), SAM-HQ (``"sam_hq"``) with 64 px inputs, or
    SAM 2 (``"sam2"``, Hiera, 128 px inputs), or SAM 2 saved as the hub's SAM 2 / 2.1 repos are
    (``"sam2_video"``: ``Sam2VideoModel``, ``model_type: "sam2_video"``, ``Sam2VideoProcessor``).

    ``image_size`` 1024 gives a SAM / SAM-HQ in the released models' frames (1024 px input,
    16 px patches, 256x256 mask logits, the processor's 1024 px resize and pad), still 16
    channels wide: about a second an image on a CPU."""
    import torch

    from labeler.sam_convert import sam_processor

    if image_size not in (64, 1024) or (image_size == 1024 and kind not in ("sam", "sam_hq")):
        raise ValueError(
            f"image_size {image_size}: a tiny SAM or SAM-HQ takes 64 or 1024, SAM 2 its own 128"
        )
    patch = 8 if image_size == 64 else 16  # 8x8 or the released models' 64x64 patches
    hidden = 16
    vision = dict(
        hidden_size=16,
        output_channels=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
        window_size=4 if image_size == 64 else 8,
        global_attn_indexes=[1],
        num_pos_feats=hidden // 2,
        mlp_dim=32,
    )
    prompt = dict(hidden_size=hidden, image_size=image_size, patch_size=patch)
    decoder = dict(hidden_size=hidden, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16)
    if kind == "sam":
        from transformers import SamConfig, SamModel

        config = SamConfig(
            vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder
        )
        model_cls = SamModel
    elif kind == "sam_hq":
        from transformers import SamHQConfig, SamHQModel

        config = SamHQConfig(
            vision_config=vision,
            prompt_encoder_config=prompt,
            mask_decoder_config={**decoder, "vit_dim": 16},
        )
        model_cls = SamHQModel
    elif kind in ("sam2", "sam2_video"):
        return _save_tiny_sam2(Path(path), seed, video=kind == "sam2_video")
    else:
        raise ValueError(
            f"unknown tiny segmenter kind {kind!r}; expected sam, sam_hq, sam2 or sam2_video"
        )
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    path = Path(path)
    model.save_pretrained(path)
    sam_processor(image_size).save_pretrained(path)
    return path


def copy_without_resize(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the saved SAM ``src`` (:func:`save_tiny_segmenter`) to ``dst`` with its processor's
    ``do_resize`` false in ``processor_config.json``, as a local checkpoint may say: it pads
    every image (or ``--refine`` crop) to its pad size, 64x64 px for the tiny SAM."""
    import json
    import shutil

    dst = Path(dst)
    shutil.copytree(src, dst)
    path = dst / "processor_config.json"
    doc = json.loads(path.read_text())
    doc["image_processor"]["do_resize"] = False
    path.write_text(json.dumps(doc))
    return dst


def _save_tiny_sam2(path: Path, seed: int, video: bool = False) -> Path:
    import torch
    from transformers import (
        Sam2Config,
        Sam2ImageProcessor,
        Sam2Model,
        Sam2Processor,
        Sam2VideoConfig,
        Sam2VideoMaskDecoderConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoPromptEncoderConfig,
        Sam2VideoVideoProcessor,
    )

    backbone = dict(
        model_type="sam2_hiera_det_model",
        image_size=[128, 128],
        hidden_size=8,
        embed_dim_per_stage=[8, 16, 32, 64],
        blocks_per_stage=[1, 1, 2, 1],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[4, 4, 4, 4],
        # a global block must not open a stage (its window size 0 is divided by the query stride)
        global_attention_blocks=[3],
        window_positional_embedding_background_size=[2, 2],
    )
    sub = dict(
        vision_config=dict(
            backbone_config=backbone,
            backbone_channel_list=[64, 32, 16, 8],
            backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]],
            fpn_hidden_size=32,
        ),
        prompt_encoder_config=dict(hidden_size=32, image_size=128, patch_size=16),
        mask_decoder_config=dict(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )
    torch.manual_seed(seed)
    image_processor = Sam2ImageProcessor(
        size={"height": 128, "width": 128}, mask_size={"height": 32, "width": 32}
    )
    if video:
        # sub-configs as objects: transformers 5.17's Sam2VideoConfig builds a mask decoder
        # given as a dict with the prompt encoder's class (fixed in later 5.x releases)
        config = Sam2VideoConfig(
            vision_config=sub["vision_config"],
            prompt_encoder_config=Sam2VideoPromptEncoderConfig(**sub["prompt_encoder_config"]),
            mask_decoder_config=Sam2VideoMaskDecoderConfig(**sub["mask_decoder_config"]),
            image_size=128,
        )
        Sam2VideoModel(config).eval().save_pretrained(path)
        processor = Sam2VideoProcessor(
            image_processor=image_processor,
            video_processor=Sam2VideoVideoProcessor(size={"height": 128, "width": 128}),
        )
    else:
        Sam2Model(Sam2Config(**sub)).eval().save_pretrained(path)
        processor = Sam2Processor(image_processor=image_processor)
    processor.save_pretrained(path)
    return path
