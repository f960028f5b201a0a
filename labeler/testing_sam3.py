"""A tiny random SAM 3 checkpoint for tests and smoke runs (see :mod:`labeler.testing`).

Saved with ``save_pretrained`` (model, CLIP tokenizer, image processor) and loaded back through
``from_pretrained(dir)``, the path a user's ``facebook/sam3`` takes. Weights are random: scores
sit near 0.25-0.3 (presence near 0.5), so tests use threshold 0; boxes may leave [0, 1].

Constraints found while building it (transformers 5.24): the processor's image size must equal
the ViT ``image_size``; the FPN width and the geometry / DETR encoder / DETR decoder / mask
decoder hidden sizes must be equal and divisible by 8 and by their head counts; the processor
pads text to 32 tokens, so the CLIP text model needs ``max_position_embeddings >= 32``.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

# Character-level byte-level BPE: every lower-case letter, digit, '-' and "'", with and without
# CLIP's end-of-word suffix, and no merges. Prompts tokenise to one token per character.
_CHARS = list(string.ascii_lowercase + string.digits + "-'")
TINY_CLIP_VOCAB = ["<|startoftext|>", "<|endoftext|>", *_CHARS, *(c + "</w>" for c in _CHARS)]


def save_tiny_sam3(
    path: str | os.PathLike, seed: int = 0, image_size: int = 56, queries: int = 20
) -> Path:
    """Save a tiny random ``Sam3Model`` (ViT 2 layers width 32, patch 14, ``image_size`` px
    input, hidden 32 everywhere, ``queries`` DETR queries, masks at ``image_size * 2 / 7``) to
    ``path``; ``image_size`` must be a multiple of 14."""
    import torch
    from transformers import (
        CLIPTokenizer,
        Sam3Config,
        Sam3ImageProcessor,
        Sam3Model,
        Sam3Processor,
    )

    if image_size % 14:
        raise ValueError(f"image_size must be a multiple of the patch size 14, got {image_size}")
    grid = image_size // 14
    hidden = 32
    layers = dict(hidden_size=hidden, num_attention_heads=2, intermediate_size=64)
    config = Sam3Config(
        vision_config=dict(
            backbone_config=dict(
                model_type="sam3_vit_model",
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=image_size,
                pretrain_image_size=image_size,
                patch_size=14,
                window_size=2,
                global_attn_indexes=[1],
            ),
            fpn_hidden_size=hidden,
            backbone_feature_sizes=[[4 * grid] * 2, [2 * grid] * 2, [grid] * 2],
        ),
        text_config=dict(
            vocab_size=len(TINY_CLIP_VOCAB),
            hidden_size=32,
            intermediate_size=64,
            projection_dim=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        geometry_encoder_config=dict(num_layers=1, **layers),
        detr_encoder_config=dict(num_layers=1, **layers),
        detr_decoder_config=dict(num_layers=1, num_queries=queries, **layers),
        mask_decoder_config=dict(hidden_size=hidden, num_attention_heads=2),
    )
    torch.manual_seed(seed)
    model = Sam3Model(config).eval()
    tokenizer = CLIPTokenizer(vocab={t: i for i, t in enumerate(TINY_CLIP_VOCAB)}, merges=[])
    image_processor = Sam3ImageProcessor(
        size={"height": image_size, "width": image_size},
        mask_size={"height": 4 * grid, "width": 4 * grid},
    )
    path = Path(path)
    model.save_pretrained(path)
    Sam3Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path
