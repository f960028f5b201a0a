"""IDEA-Research/grounding-dino-tiny as released: what its processor decides.

Random weights cannot show whether an image reaches the detector in the frame its boxes come
back in, or whether the prompts reach it as the phrases it was trained on: the released
processor files decide both. They are recorded here (no network; sources in docs/labeler.md,
"Checked against the released configs"), rebuilt into a folder of the released layout (the
released config's structure at tiny widths, a tiny vocabulary at bert-base-uncased's own ids)
and loaded through the labeler's own path (``load_detector``, ``GroundedSamBackend.setup``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from labeler.config import ClassSpec, LabelConfig

# IDEA-Research/grounding-dino-tiny at the hub repository's last commit (2024-05-12), from the
# GitHub copy of that repository's history isaackogan/grounding-dino-tiny, commit a2bb814
# (Niels Rogge's "Update config.json" c254d1f of 2024-04-09 and "Upload processor" 478dad0 of
# 2024-02-05 before it): config.json, written by transformers 4.40.0.dev0.
RELEASED_CONFIG = {
    "activation_dropout": 0.0,
    "activation_function": "relu",
    "architectures": ["GroundingDinoForObjectDetection"],
    "attention_dropout": 0.0,
    "auxiliary_loss": False,
    "backbone": None,
    "backbone_config": {
        "depths": [2, 2, 6, 2],
        "model_type": "swin",
        "num_heads": [3, 6, 12, 24],
        "out_features": ["stage2", "stage3", "stage4"],
        "out_indices": [2, 3, 4],
    },
    "backbone_kwargs": None,
    "bbox_cost": 5.0,
    "bbox_loss_coefficient": 5.0,
    "class_cost": 1.0,
    "d_model": 256,
    "decoder_attention_heads": 8,
    "decoder_bbox_embed_share": True,
    "decoder_ffn_dim": 2048,
    "decoder_layers": 6,
    "decoder_n_points": 4,
    "disable_custom_kernels": False,
    "dropout": 0.1,
    "embedding_init_target": True,
    "encoder_attention_heads": 8,
    "encoder_ffn_dim": 2048,
    "encoder_layers": 6,
    "encoder_n_points": 4,
    "focal_alpha": 0.25,
    "fusion_dropout": 0.0,
    "fusion_droppath": 0.1,
    "giou_cost": 2.0,
    "giou_loss_coefficient": 2.0,
    "init_std": 0.02,
    "is_encoder_decoder": True,
    "layer_norm_eps": 1e-05,
    "max_text_len": 256,
    "model_type": "grounding-dino",
    "num_feature_levels": 4,
    "num_queries": 900,
    "position_embedding_type": "sine",
    "positional_embedding_temperature": 20,
    "query_dim": 4,
    "text_config": {"model_type": "bert"},
    "text_enhancer_dropout": 0.0,
    "torch_dtype": "float32",
    "transformers_version": "4.40.0.dev0",
    "two_stage": True,
    "two_stage_bbox_embed_share": False,
    "use_pretrained_backbone": False,
    "use_timm_backbone": False,
}
# The same commit's processor files (bert-base-uncased's tokenizer saved in a
# GroundingDinoProcessor by convert_grounding_dino_to_hf.py).
RELEASED_PREPROCESSOR = {
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "format": "coco_detection",
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "GroundingDinoImageProcessor",
    "image_std": [0.229, 0.224, 0.225],
    "processor_class": "GroundingDinoProcessor",
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"longest_edge": 1333, "shortest_edge": 800},
}
_SPECIAL = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
_ADDED = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
RELEASED_TOKENIZER_CONFIG = {
    "added_tokens_decoder": {
        str(i): {"content": t, **_ADDED, "special": True} for t, i in _SPECIAL.items()
    },
    "clean_up_tokenization_spaces": True,
    "cls_token": "[CLS]",
    "do_lower_case": True,
    "mask_token": "[MASK]",
    "model_max_length": 512,
    "pad_token": "[PAD]",
    "processor_class": "GroundingDinoProcessor",
    "sep_token": "[SEP]",
    "strip_accents": None,
    "tokenize_chinese_chars": True,
    "tokenizer_class": "BertTokenizer",
    "unk_token": "[UNK]",
}
RELEASED_SPECIAL_TOKENS_MAP = {
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
    "pad_token": "[PAD]",
    "sep_token": "[SEP]",
    "unk_token": "[UNK]",
}
RELEASED_ADDED_TOKENS = {"[CLS]": 101, "[MASK]": 103, "[PAD]": 0, "[SEP]": 102, "[UNK]": 100}
# tokenizer.json without its vocabulary (30522 word pieces, the same as vocab.txt)
RELEASED_TOKENIZER_JSON = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [
        {
            "id": i,
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for t, i in _SPECIAL.items()
    ],  # fmt: skip
    "normalizer": {
        "type": "BertNormalizer",
        "clean_text": True,
        "handle_chinese_chars": True,
        "strip_accents": None,
        "lowercase": True,
    },
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
        ],
        "pair": [
            {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
            {"Sequence": {"id": "B", "type_id": 1}},
            {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
        ],
        "special_tokens": {
            "[CLS]": {"id": "[CLS]", "ids": [101], "tokens": ["[CLS]"]},
            "[SEP]": {"id": "[SEP]", "ids": [102], "tokens": ["[SEP]"]},
        },
    },
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
    "model": {
        "type": "WordPiece",
        "unk_token": "[UNK]",
        "continuing_subword_prefix": "##",
        "max_input_chars_per_word": 100,
    },
}
# The released vocab.txt's ids (line number - 1) of the tests' words; the model hard-codes
# [CLS], [SEP], "." and "?" (transformers' SPECIAL_TOKENS).
RELEASED_IDS = {
    **_SPECIAL, "-": 1011, ".": 1012, "?": 1029, "a": 1037, "light": 2422, "car": 2482, "traffic": 4026,
    "bike": 7997, "bicycle": 10165,
}  # fmt: skip
# Tiny where the released sizes are big (Swin-T, BERT-base, 6+6 layers of 256); the rest,
# num_queries 900, max_text_len 256 and four feature levels included, as released.
TINY = {
    "backbone_config": {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1],
                        "window_size": 4},
    "text_config": {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
                    "intermediate_size": 16},
    "d_model": 32, "encoder_layers": 1, "decoder_layers": 2, "encoder_ffn_dim": 32,
    "decoder_ffn_dim": 32, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
}  # fmt: skip


def _write(folder: Path, name: str, doc: dict) -> None:
    (folder / name).write_text(json.dumps(doc, indent=2), encoding="utf-8")


def _write_tokenizer(folder: Path, ids: dict[str, int]) -> None:
    """The released tokenizer's files, its vocab.txt and tokenizer.json holding ``ids`` (word
    -> id; other ids unused)."""
    _write(folder, "tokenizer_config.json", RELEASED_TOKENIZER_CONFIG)
    _write(folder, "special_tokens_map.json", RELEASED_SPECIAL_TOKENS_MAP)
    _write(folder, "added_tokens.json", RELEASED_ADDED_TOKENS)
    vocab = [f"[unused{i}]" for i in range(max(ids.values()) + 1)]
    for word, i in ids.items():
        vocab[i] = word
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    doc = json.loads(json.dumps(RELEASED_TOKENIZER_JSON))
    doc["model"] = {**doc["model"], "vocab": {w: i for i, w in enumerate(vocab)}}
    _write(folder, "tokenizer.json", doc)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, Path]:
    """The released grounding-dino-tiny layout (no processor_config.json: the tokenizer files,
    preprocessor_config.json and a transformers 4.40 config.json) at tiny widths, and a tiny
    SAM for the backend."""
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection

    from labeler.testing import save_tiny_segmenter, spread_text_scores

    root = tmp_path_factory.mktemp("gdino")
    folder = root / "grounding-dino-tiny"
    config = json.loads(json.dumps(RELEASED_CONFIG))
    for key, value in TINY.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    config["text_config"]["vocab_size"] = max(RELEASED_IDS.values()) + 1
    meta = ("architectures", "model_type", "torch_dtype", "transformers_version")
    torch.manual_seed(0)
    model = GroundingDinoForObjectDetection(
        GroundingDinoConfig(**{k: v for k, v in config.items() if k not in meta})
    )
    spread_text_scores(model.eval()).save_pretrained(folder)
    _write(folder, "config.json", config)  # as released, not as transformers 5 writes it
    _write(folder, "preprocessor_config.json", RELEASED_PREPROCESSOR)
    _write_tokenizer(folder, RELEASED_IDS)
    return {"det": folder, "sam": save_tiny_segmenter(root / "sam", "sam")}


def _backend(released, spec: ClassSpec, det: Path | None = None):
    from labeler.grounded_sam import GroundedSamBackend
    from labeler.models import load_detector, load_segmenter

    det = det or released["det"]
    cfg = LabelConfig(
        data="unused", cls=spec, detector=str(det), segmenter=str(released["sam"]),
        device="cpu", progress=False, max_boxes=0,
    )  # fmt: skip
    backend = GroundedSamBackend(cfg, class_id=7)
    backend.setup(load_detector(str(det)), load_segmenter(str(released["sam"])), "cpu")
    return backend


def test_the_released_folder_loads_as_grounding_dinos_processor(released):
    """The 4.40 layout (preprocessor_config.json beside tokenizer_config.json,
    special_tokens_map.json, added_tokens.json, vocab.txt and tokenizer.json) loads in
    transformers 5 as the released processor: 800/1333 resize, a fast lower-casing BERT
    tokenizer (offsets, which the prompt spans need) at bert-base-uncased's ids, and the
    released text limits (max_text_len 256, 900 queries)."""
    from transformers import GroundingDinoImageProcessor, GroundingDinoProcessor

    from labeler.models import load_detector

    det = load_detector(str(released["det"]))
    assert type(det.processor) is GroundingDinoProcessor
    proc = det.processor.image_processor
    assert isinstance(proc, GroundingDinoImageProcessor)
    assert (proc.size.shortest_edge, proc.size.longest_edge) == (800, 1333)
    assert (det.model.config.max_text_len, det.model.config.num_queries) == (256, 900)
    assert det.model.model.special_tokens.tolist() == [101, 102, 1012, 1029]
    enc = det.processor.tokenizer("Traffic Light. BICYCLE.", return_offsets_mapping=True)
    assert enc["input_ids"] == [101, 4026, 2422, 1012, 10165, 1012, 102]
    assert enc["offset_mapping"][1:3] == [(0, 7), (8, 13)]


def test_prompts_reach_the_detector_as_its_processor_joins_them(released):
    """Lower case, ". " between prompts and a trailing "." (the processor's own join of a list
    of labels, the model card's "VERY important: text queries need to be lowercased + end with a
    dot"): the same ids as ``processor(text=[...])``. Each prompt, "traffic light" two words,
    is then a phrase of its own in the model's text attention, its positions restarting at 0;
    without the trailing "." the last prompt would attend to itself alone."""
    from transformers.models.grounding_dino.modeling_grounding_dino import (
        generate_masks_with_special_tokens_and_transfer_map as phrase_masks,
    )

    spec = ClassSpec("Traffic light", prompts=("Traffic Light", "bicycle"), negatives=("car",))
    backend = _backend(released, spec)
    assert backend.text == "traffic light. bicycle. car."
    ids = backend.text_inputs["input_ids"]
    theirs = backend.detector.processor(text=["Traffic Light", "bicycle", "car"])["input_ids"]
    assert ids[0].tolist() == theirs == [101, 4026, 2422, 1012, 10165, 1012, 2482, 1012, 102]
    assert [t.tolist() for t in backend.prompt_tokens] == [[1, 2], [4], [6]]
    special = backend.detector.model.model.special_tokens
    attends, positions = phrase_masks(ids, special)
    for tokens in backend.prompt_tokens:
        phrase = [*tokens.tolist(), int(tokens.max()) + 1]  # its words and its "."
        for t in tokens:
            assert attends[0, t].nonzero().flatten().tolist() == phrase
        assert positions[0, tokens].tolist() == list(range(len(tokens)))
    no_dot = backend.detector.processor.tokenizer(
        ["traffic light. bicycle. car"], return_tensors="pt"
    )
    attends, _ = phrase_masks(no_dot["input_ids"], special)
    assert attends[0, 6].nonzero().flatten().tolist() == [6]


def test_detection_at_the_released_frame_matches_transformers(released, one_thread):
    """A 45x32 px image reaches the detector at 1125x800 px (short side 800); boxes come back
    in the image's pixels as ``post_process_grounded_object_detection(target_sizes=[(h, w)])``
    gives them (height, width), clipped to the image, and a box is kept when its best token
    passes ``box_threshold`` and one of a prompt's tokens ("traffic" or "light" for "traffic
    light") passes ``text_threshold``, the phrase transformers and the Grounded-SAM demo read."""
    h, w = 45, 32
    img = np.random.default_rng(3).integers(0, 255, (h, w, 3), dtype=np.uint8)
    prompts = ("traffic light", "bicycle")
    spec = ClassSpec("Traffic light", prompts=prompts, negatives=("car",))
    backend = _backend(released, spec)
    pixels = backend._det_inputs(img)[0][1]
    assert tuple(pixels.shape) == (3, 1125, 800)

    proc = backend.detector.processor
    inputs = proc(images=img, text=[*prompts, "car"], return_tensors="pt")
    assert torch.equal(inputs["pixel_values"][0], pixels)
    with torch.no_grad():
        out = backend.detector.model(**inputs)
    probs = torch.sigmoid(out.logits[0, :, :9]).numpy()
    box_t = float(np.quantile(probs.max(1), 0.5))  # half the queries pass the box threshold
    words = probs[:, [1, 2, 4, 6]]  # traffic, light, bicycle, car
    text_t = float(np.quantile(words.max(1), 0.7))  # some boxes hold no prompt word above it
    ref = proc.post_process_grounded_object_detection(
        out, inputs["input_ids"], threshold=box_t, text_threshold=text_t, target_sizes=[(h, w)]
    )[0]
    passed = probs.max(1) > box_t
    worded = (words[passed] > text_t).any(1)
    assert 0 < worded.sum() < len(worded)
    spec = ClassSpec(
        "Traffic light", prompts=prompts, negatives=("car",), box_threshold=box_t,
        text_threshold=text_t,
    )  # fmt: skip
    det = _backend(released, spec).detect([img])[0]
    scores = ref["scores"].numpy()[worded]
    order = np.argsort(-scores, kind="stable")
    np.testing.assert_allclose(det.scores, scores[order], atol=1e-6)
    boxes = ref["boxes"].numpy()[worded][order].clip(0, [w, h, w, h])
    np.testing.assert_allclose(det.xyxy, boxes, atol=1e-3)
    # each box goes to a prompt one of whose tokens passed: "light" alone gives "traffic light"
    kept = words[passed][worded][order]
    per_prompt = np.stack([kept[:, :2].max(1), kept[:, 2], kept[:, 3]], 1)
    assert (per_prompt[np.arange(len(det)), det.prompt_idx] > text_t).all()
    light = (kept[:, 1] > text_t) & (kept[:, [0, 2, 3]] <= text_t).all(1)
    assert light.any() and (det.prompt_idx[light] == 0).all()


def test_the_released_text_limit_is_256_tokens(released):
    """max_text_len 256: [CLS], [SEP] and 127 one-word prompts each ended by "." are 256
    tokens, read whole; one more word is refused in one line before any image (transformers
    would cut the text and every image fail)."""
    fits = ClassSpec("Bicycle", prompts=("bike",) * 126 + ("bicycle",))
    assert _backend(released, fits).text_inputs["input_ids"].shape[1] == 256
    over = ClassSpec("Bicycle", prompts=("bike",) * 126 + ("a bicycle",))
    with pytest.raises(ValueError, match=r"make 257 text tokens, the detector reads at most 256"):
        _backend(released, over)


def test_a_tokenizer_whose_separators_are_not_the_models_is_refused(released, tmp_path):
    """Tokenizer files of another vocabulary ("." at another id than bert-base-uncased's 1012,
    as a BERT vocabulary built in order gives it): the model finds no separator, and reads the
    prompts as one text, every word at position 0. Refused at setup in one line; before, it
    labelled with that text without a word."""
    folder = tmp_path / "det"
    shutil.copytree(released["det"], folder)
    ids = {**RELEASED_IDS, ".": 1010}  # "," in bert-base-uncased
    _write_tokenizer(folder, ids)
    spec = ClassSpec("Bicycle", prompts=("bicycle", "bike"))
    with pytest.raises(ValueError) as err:
        _backend(released, spec, folder)
    said = str(err.value)
    assert said.startswith(
        f"{folder}: its tokenizer gives [CLS], '.' and [SEP] the ids 101, 1010, 102, and the "
        "model separates prompts by the ids 101, 102, 1012, 1029"
    ), said
    assert "\n" not in said


def test_a_word_read_partly_as_unk_is_named_with_its_characters(tmp_path, caplog):
    """BERT's tokenizer reads each Chinese, Japanese or Korean character on its own: a CJK word
    some of whose characters are outside the vocabulary (``自行車`` where ``車`` is not in it)
    is read partly as [UNK], and the model looks for the rest alone. Warned of naming the
    characters and their word, as a word read whole as [UNK] is; before, only whole-[UNK] words
    were named, and ``自行車 bike`` went unsaid."""
    import logging

    from transformers import AutoTokenizer

    from labeler.models import check_prompt_vocabulary

    folder = tmp_path / "tok"
    folder.mkdir()
    _write_tokenizer(folder, {**RELEASED_IDS, "自": 5632, "行": 6121})  # 車 left out
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer("自行車", add_special_tokens=False)["input_ids"] == [5632, 6121, 100]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="labeler"):
        check_prompt_vocabulary("det", tokenizer, ("bicycle", "自行車 bike", "bike🚲 car"))
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == [
        "det: the tokenizer reads '車' of '自行車' of prompt '自行車 bike'; 'bike🚲' of prompt "
        "'bike🚲 car' as [UNK] (a word holding a character outside its vocabulary, an emoji or "
        "a symbol, is read whole as that; a Chinese, Japanese or Korean character on its own): "
        "the model looks for the rest of the prompt alone; reword it"
    ], said
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="labeler"):  # every character known: none
        check_prompt_vocabulary("det", tokenizer, ("自行 bike",))
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_a_prompt_word_outside_the_vocabulary_is_named(released, caplog):
    """bert-base-uncased's WordPiece reads a word holding a character outside its vocabulary
    whole as [UNK] (``bike🚲``, an emoji joined to a word). A prompt of such words alone is
    refused, saying so; one with other words is warned of, naming the word. Before, the first
    was refused as if the tokenizer files were missing (they are all there), and
    ``traffic-light🚦`` labelled as ``traffic - [UNK]`` without a word (the word as the
    tokenizer splits it: at spaces and punctuation)."""
    import logging

    with pytest.raises(ValueError) as err:
        _backend(released, ClassSpec("Bicycle", prompts=("bicycle", "bike🚲")))
    said = str(err.value)
    assert said.startswith(
        f"{released['det']}: the tokenizer (10166 tokens) reads every word of prompts "
        "['bike🚲'] as [UNK] (a word holding a character outside its vocabulary"
    ), said
    assert "missing" not in said and "\n" not in said
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="labeler"):
        backend = _backend(released, ClassSpec("Traffic light", prompts=("traffic-light🚦",)))
    assert backend.text_inputs["input_ids"][0].tolist() == [101, 4026, 1011, 100, 1012, 102]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == [
        f"{released['det']}: the tokenizer reads 'light🚦' of prompt 'traffic-light🚦' as "
        "[UNK] (a word holding a character outside its vocabulary, an emoji or a symbol, is "
        "read whole as that): the model looks for the rest of the prompt alone; reword it"
    ]
