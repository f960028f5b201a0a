"""The SAM 3 backend: a tiny random ``Sam3Model`` saved locally and loaded through
``from_pretrained(dir)``; square tiles; exact window-local mask upsampling; the labeler's mask
dedup on SAM 3 instances; one clear line for missing or gated weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from annotations.fileio import read_jsonl
from annotations.instances import read_instances
from annotations.labelmap import read_label
from cli import app
from labeler.config import ClassSpec, LabelConfig
from labeler.dedup import MaskCrop
from labeler.sam3 import (
    PROB_FLOOR,
    Candidate,
    Sam3Backend,
    load_sam3,
    probs_in_windows,
    scores_of,
    square_windows,
)

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from labeler.testing import save_tiny_segmenter
    from labeler.testing_sam3 import save_tiny_sam3

    root = tmp_path_factory.mktemp("sam3_models")
    return {"sam3": save_tiny_sam3(root / "sam3"), "sam": save_tiny_segmenter(root / "sam")}


def write_dataset(root: Path, counts: dict[str, int], size=(96, 70)) -> Path:
    """Images with a red square (the 'object') at a per-image place."""
    w, h = size
    for split, n in counts.items():
        d = root / "images" / split
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = np.full((h, w, 3), 40, np.uint8)
            img[5 + 3 * i : 25 + 3 * i, 8 + 5 * i : 40 + 5 * i] = (250, 10, 10)
            Image.fromarray(img).save(d / f"{split}{i:02d}.png")
    return root


def label_args(data, out, model, *extra) -> list[str]:
    return [
        "label", "--class", "Bicycle", "--data", str(data), "--out", str(out),
        "--backend", "sam3", "--model", str(model),
        "--prompt", "bicycle", "--prompt", "bike", "--negative", "motorcycle",
        "--box-threshold", "0", "--max-instances", "5", "--batch-size", "2",
        "--device", "cpu", "--no-progress", *extra,
    ]  # fmt: skip


# -- square tiles ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "h, w, grid, overlap, n",
    [
        (3024, 4032, (2, 2), 0.2, 4),  # 4:3 photo: 2240-px squares, rows overlap more
        (4032, 3024, (2, 2), 0.2, 4),  # portrait
        (100, 1000, (1, 2), 0.2, 13),  # side capped at the short side: more columns
        (64, 64, (3, 3), 0.5, 9),
    ],
)
def test_square_windows_are_square_cover_and_overlap(h, w, grid, overlap, n):
    wins = square_windows(h, w, *grid, overlap)
    assert len(wins) == n
    cover = np.zeros((h, w), np.int32)
    for x0, y0, x1, y1 in wins:
        assert x1 - x0 == y1 - y0 and 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        cover[y0:y1, x0:x1] += 1
    assert cover.min() >= 1
    side = wins[0][2] - wins[0][0]
    xs = sorted({x0 for x0, *_ in wins})
    for a, b in zip(xs, xs[1:], strict=False):  # neighbours overlap by at least the request
        assert side - (b - a) >= overlap * side - 1


def test_square_windows_whole_image_only_and_bad_grid():
    assert square_windows(30, 40, 1, 1, 0.2) == []
    with pytest.raises(ValueError, match="at least 1x1"):
        square_windows(30, 40, 0, 2, 0.2)


# -- window-local upsampling ---------------------------------------------------------------------
@pytest.mark.parametrize("lo, out", [((16, 16), (70, 96)), ((16, 16), (7, 9)), ((5, 7), (100, 33))])
def test_probs_in_windows_equal_full_bilinear(lo, out):
    """Mask and probability == transformers' resize of the probabilities, inside the window;
    outside it the full-frame probability is below the floor (confidence rounds to 0)."""
    import torch

    rng = np.random.default_rng(0)
    p = np.full(lo, 1e-6, np.float32)
    p[1:4, 1:4] = rng.random((3, 3)) * 0.4
    p[2:4, 1:3] = 0.9
    full = torch.nn.functional.interpolate(
        torch.tensor(p)[None, None], size=out, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    empty = np.full(lo, 0.4, np.float32)
    (crop, prob), none = probs_in_windows(torch.tensor(np.stack([p, empty])), out, (3, 2))
    assert none is None  # nothing above 0.5: no mask
    mask = crop.to_full(out[0] + 2, out[1] + 3)[2:, 3:]
    assert np.array_equal(mask, full > 0.5)
    ys, xs = slice(crop.y0 - 2, crop.y1 - 2), slice(crop.x0 - 3, crop.x1 - 3)
    np.testing.assert_allclose(prob.astype(np.float32), full[ys, xs], atol=1e-3)
    outside = np.ones(out, bool)
    outside[ys, xs] = False
    assert (full[outside] <= PROB_FLOOR).all()


# -- model path -----------------------------------------------------------------------------------
def _backend(model_dir, **cls) -> Sam3Backend:
    spec = ClassSpec("Bicycle", **{"prompts": ("bicycle",), "box_threshold": 0.0, **cls})
    cfg = LabelConfig(data="unused", cls=spec, backend="sam3", model=str(model_dir), device="cpu")
    b = Sam3Backend(cfg, class_id=7)
    b.load()
    return b


def test_reused_embeddings_match_transformers_post_processing(models):
    """Text embedded once + vision once, our scores, boxes and masks == one plain forward of
    transformers (pixels and input_ids) through post_process_instance_segmentation."""
    import torch
    from transformers import Sam3Model, Sam3Processor

    b = _backend(models["sam3"], max_instances=0)
    img = np.random.default_rng(0).integers(0, 255, (70, 96, 3), np.uint8)
    proc = Sam3Processor.from_pretrained(models["sam3"])
    model = Sam3Model.from_pretrained(models["sam3"]).eval()
    with torch.no_grad():
        ref_out = model(**proc(images=img, text="bicycle", return_tensors="pt"))
    s = np.sort(scores_of(ref_out.pred_logits, ref_out.presence_logits)[0].numpy())[::-1]
    thr = float(s[5] + s[6]) / 2  # between two scores: 6 instances pass
    ref = proc.post_process_instance_segmentation(ref_out, thr, 0.5, target_sizes=[(70, 96)])[0]
    b.config = dataclasses.replace(b.config, cls=ClassSpec("Bicycle", box_threshold=thr))
    (cands,) = b.detect([img])
    order = np.argsort(-ref["scores"].numpy(), kind="stable")
    assert len(cands) == len(order) == 6
    np.testing.assert_allclose([c.score for c in cands], ref["scores"].numpy()[order], atol=1e-5)
    boxes = np.clip(ref["boxes"].numpy()[order], 0, [96, 70, 96, 70])
    np.testing.assert_allclose([c.xyxy for c in cands], boxes, atol=1e-3)
    for c, m in zip(cands, ref["masks"].numpy()[order], strict=True):
        assert (c.mask.to_full(70, 96) != m.astype(bool)).sum() <= 2  # float rounding at 0.5
    # the score rule is the processor's: sigmoid(detection) x sigmoid(presence)
    s = scores_of(ref_out.pred_logits, ref_out.presence_logits)[0]
    expect = ref_out.pred_logits[0].sigmoid() * ref_out.presence_logits[0].sigmoid()
    assert torch.allclose(s, expect)


def test_text_embedded_once_per_run_and_vision_once_per_crop(models, tmp_path, monkeypatch):
    from transformers import Sam3Model

    calls = {"text": 0, "vision": 0}
    text_fn, vision_fn = Sam3Model.get_text_features, Sam3Model.get_vision_features

    def count_text(self, *a, **k):
        calls["text"] += 1
        return text_fn(self, *a, **k)

    def count_vision(self, *a, **k):
        calls["vision"] += 1
        return vision_fn(self, *a, **k)

    monkeypatch.setattr(Sam3Model, "get_text_features", count_text)
    monkeypatch.setattr(Sam3Model, "get_vision_features", count_vision)
    data = write_dataset(tmp_path / "data", {"train": 3})
    res = runner.invoke(app, label_args(data, tmp_path / "run", models["sam3"], "--tiles", "1x2"))
    assert res.exit_code == 0, res.output
    assert calls["text"] == 3  # bicycle, bike, motorcycle: once per run, not per image
    # 3 images x (whole + 2 square tiles) = 9 crops in batches of 2 crops
    assert calls["vision"] == 5


def test_cli_outputs_resume_and_shards(models, tmp_path):
    data = write_dataset(tmp_path / "data", {"train": 3, "val": 2})
    out = tmp_path / "run"
    res = runner.invoke(app, label_args(data, out, models["sam3"], "--tiles", "2x2"))
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["backend"]["name"] == "sam3" and run["class_id"] == 7
    assert run["backend"]["models"]["model"]["class"] == "Sam3Model"
    assert run["backend"]["identity"]["model"] == str(models["sam3"])
    assert run["config"]["detector"].startswith("none (sam3")
    manifest = read_jsonl(out / "manifest.jsonl")
    assert len(manifest) == 5
    for rec in manifest:
        assert rec["status"] == "ok" and {"detect", "segment"} <= set(rec["timings"])
        label = read_label(out / "labels" / rec["split"] / f"{rec['stem']}.png")
        conf = np.array(Image.open(out / "confidence" / rec["split"] / f"{rec['stem']}.png"))
        inst, header = read_instances(out / "instances" / rec["split"] / f"{rec['stem']}.json")
        assert label.shape == conf.shape == (70, 96) and set(np.unique(label)) <= {0, 1, 255}
        assert 0 < len(inst) == rec["instances"] <= 5 and header["backend"] == "sam3"
        assert set(inst.prompts) <= {"bicycle", "bike"} and (inst.class_ids == 7).all()
        assert np.all(np.diff(inst.scores) <= 0) and ((inst.scores > 0) & (inst.scores < 1)).all()
        assert np.all(label[inst.masks.any(0)] != 0)
    # resume: nothing left to do
    res = runner.invoke(app, label_args(data, out, models["sam3"], "--tiles", "2x2"))
    assert res.exit_code == 0 and len(read_jsonl(out / "manifest.jsonl")) == 5
    # shards 0/2 and 1/2 into another directory give the same files as the single run
    sharded = tmp_path / "sharded"
    for s in ("0/2", "1/2"):
        args = label_args(data, sharded, models["sam3"], "--tiles", "2x2", "--shard", s)
        assert runner.invoke(app, args).exit_code == 0
    for rec in manifest:
        for sub, ext in (("labels", "png"), ("confidence", "png")):
            a = np.array(Image.open(out / sub / rec["split"] / f"{rec['stem']}.{ext}"))
            b = np.array(Image.open(sharded / sub / rec["split"] / f"{rec['stem']}.{ext}"))
            assert np.array_equal(a, b)


def test_tiles_change_the_hash_and_add_instances_from_crops(models, tmp_path):
    data = write_dataset(tmp_path / "data", {"train": 1})
    whole = runner.invoke(app, label_args(data, tmp_path / "a", models["sam3"]))
    tiled = runner.invoke(app, label_args(data, tmp_path / "b", models["sam3"], "--tiles", "2x2"))
    assert whole.exit_code == tiled.exit_code == 0
    ha = json.loads((tmp_path / "a" / "run.json").read_text())["config_hash"]
    hb = json.loads((tmp_path / "b" / "run.json").read_text())["config_hash"]
    assert ha != hb
    ia, _ = read_instances(tmp_path / "a" / "instances" / "train" / "train00.json")
    ib, _ = read_instances(tmp_path / "b" / "instances" / "train" / "train00.json")
    assert not np.array_equal(ia.masks.any(0), ib.masks.any(0))


def _cand(prompt: int, score: float, y0: int, x0: int, h: int, w: int, crop=None) -> Candidate:
    """A rectangular mask, made as the backend makes it: a low-resolution probability of 0.9
    over a crop; ``crop`` (default: exactly the rectangle) is the window the model saw."""
    box = (x0, y0, x0 + w, y0 + h)
    win = crop or box
    low = np.zeros((win[3] - win[1], win[2] - win[0]), np.float32)
    low[y0 - win[1] : y0 - win[1] + h, x0 - win[0] : x0 - win[0] + w] = 0.9
    mask = MaskCrop(y0, x0, np.ones((h, w), bool))
    return Candidate(np.array(box, np.float32), score, prompt, mask, low, win)


def test_whole_image_instance_beats_its_cut_tile_instance():
    """Tile 0..40 x 0..80 cuts a 50-px wide object at x = 40; the cut instance scores higher (it
    looks larger in the tile) but the whole-image one is kept, as Grounded-SAM's tile rule."""
    spec = ClassSpec("Bicycle", prompts=("bicycle",))
    b = Sam3Backend(LabelConfig(data="unused", cls=spec, backend="sam3"), class_id=7)
    whole = (0, 0, 80, 80)
    cands = [
        _cand(0, 0.40, 10, 10, 30, 50, crop=whole),
        _cand(0, 0.60, 10, 10, 30, 30, crop=(0, 0, 40, 80)),  # cut at the tile's right edge
        _cand(0, 0.50, 60, 5, 10, 10, crop=(0, 0, 40, 80)),  # only in the tile: kept
    ]
    inst = b.instances(80, 80, cands)
    assert inst.scores.tolist() == pytest.approx([0.5, 0.4])
    assert [m.mask.shape for m in inst.masks] == [(10, 10), (30, 50)]


def test_negatives_and_duplicates_by_mask():
    """Prompts: 0 bicycle, 1 bike, 2 motorcycle (negative). The labeler's dedup rules apply."""
    spec = ClassSpec("Bicycle", prompts=("bicycle", "bike"), negatives=("motorcycle",))
    b = Sam3Backend(LabelConfig(data="unused", cls=spec, backend="sam3"), class_id=7)
    cands = [
        _cand(0, 0.50, 10, 10, 20, 20),  # a bicycle ...
        _cand(1, 0.45, 10, 11, 20, 20),  # ... and its synonym's duplicate (IoU 0.9)
        _cand(0, 0.40, 10, 40, 20, 20),  # a second bicycle beside it
        _cand(2, 0.70, 10, 40, 20, 20),  # explained by a stronger motorcycle: dropped
        _cand(0, 0.30, 50, 10, 10, 10),  # covered by a motorcycle that is only a near tie: kept
        _cand(2, 0.35, 50, 10, 10, 10),
    ]
    inst = b.instances(80, 80, cands)
    assert inst.scores.tolist() == pytest.approx([0.5, 0.3])
    assert inst.prompts == ["bicycle", "bicycle"]
    assert [(m.y0, m.x0, m.mask.shape) for m in inst.masks] == [
        (10, 10, (20, 20)),
        (50, 10, (10, 10)),
    ]
    assert all(
        p.shape == m.mask.shape and (p > 0.89).all()
        for p, m in zip(inst.probs, inst.masks, strict=True)
    )
    assert b.instances(80, 80, []).image_size == (80, 80)


# -- weights ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model, expect",
    [
        ("{tmp}/nowhere", "model weights not found: looked in the local path"),
        ("facebook/sam3", "the hub was not contacted (HF_HUB_OFFLINE is set)"),
    ],
)
def test_missing_or_gated_weights_is_one_clear_line(tmp_path, monkeypatch, model, expect):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)  # else both are named
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    data = write_dataset(tmp_path / "data", {"train": 1})
    res = runner.invoke(app, label_args(data, tmp_path / "run", model.format(tmp=tmp_path)))
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert expect in text and "SAM License" in text and "hf auth login" in text
    assert "--model DIR" in text and "Traceback" not in text


def test_a_sam_checkpoint_is_not_a_sam3_one(models):
    with pytest.raises(ValueError, match="needs a SAM 3 checkpoint"):
        load_sam3(str(models["sam"]))


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--backend", "grounded-sam", "--model", "x"], "--model is the SAM 3 checkpoint"),
        (["--backend", "sam3", "--detector", "x"], "takes its checkpoint with --model"),
        (["--backend", "sam3", "--detector-revision", "v1"], "(sam3: --model-revision)"),
        (["--backend", "simulated", "--segmenter-revision", "v1"], "are for --backend grounded"),
        (["--backend", "grounded-sam", "--model-revision", "v1"], "is for --backend sam3"),
    ],
)
def test_model_options_belong_to_their_backend(tmp_path, args, expect):
    base = ["label", "--class", "Bicycle", "--data", str(tmp_path), "--no-progress"]
    res = runner.invoke(app, base + args)
    assert res.exit_code == 2 and expect in " ".join(res.output.split())


@pytest.mark.parametrize(
    "args",
    [
        ["--detector", "{tmp}", "--detector-revision", "v1"],
        ["--segmenter", "./sam_vit_b_01ec64.pth", "--segmenter-revision", "v1"],
        ["--backend", "sam3", "--model", "{tmp}", "--model-revision", "v1"],
    ],
)
def test_a_revision_of_a_local_model_is_refused(tmp_path, args):
    """docs/labeler.md's "reproduce a run" line with the "offline" line's local folders: the
    revision pinned nothing (a folder is read as it is), yet run.json recorded it and adding
    it relabelled every image."""
    base = ["label", "--class", "Bicycle", "--data", str(tmp_path), "--no-progress"]
    res = runner.invoke(app, base + [a.format(tmp=tmp_path) for a in args])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "is a local path, read as it is" in text, res.output


def test_batch_size_does_not_change_labels(models, tmp_path):
    """Every crop is resized to the model's square input alone (no padding), so batching crops
    of different images together leaves the outputs bit-identical (at a fixed thread count)."""
    data = write_dataset(tmp_path / "data", {"train": 3}, size=(96, 70))
    for bs in ("1", "3"):
        args = label_args(data, tmp_path / bs, models["sam3"], "--tiles", "2x2")
        args[args.index("--batch-size") + 1] = bs
        assert runner.invoke(app, args).exit_code == 0
    for sub in ("labels", "confidence", "instances"):
        for f in sorted((tmp_path / "1" / sub / "train").iterdir()):
            assert f.read_bytes() == (tmp_path / "3" / sub / "train" / f.name).read_bytes()


def test_per_class_threshold_from_the_spec_file(models, tmp_path):
    """box_threshold of the spec file is SAM 3's score threshold (detection x presence)."""
    data = write_dataset(tmp_path / "data", {"train": 1})
    spec = tmp_path / "classes.yaml"
    counts = {}
    for thr in (0.0, 0.99):
        spec.write_text(f"Bicycle:\n  prompts: [bicycle]\n  box_threshold: {thr}\n")
        out = tmp_path / f"run{thr}"
        args = ["label", "--class", "Bicycle", "--data", str(data), "--out", str(out)]
        args += ["--backend", "sam3", "--model", str(models["sam3"]), "--spec", str(spec)]
        res = runner.invoke(app, [*args, "--device", "cpu", "--no-progress"])
        assert res.exit_code == 0, res.output
        counts[thr] = read_jsonl(out / "manifest.jsonl")[0]["instances"]
    assert counts[0.0] > 0 and counts[0.99] == 0


def test_images_a_few_pixels_tall_are_labelled_at_their_own_size(models, tmp_path):
    """SAM 3's processor is told the array is (H, W, 3): 1-, 3- and 4-pixel-tall images were
    read as channels-first (resized transposed: labels from the wrong pixels)."""
    d = tmp_path / "data" / "images" / "train"
    d.mkdir(parents=True)
    shapes = {"h1": (1, 50), "h3": (3, 50), "h4": (4, 60)}
    for stem, (h, w) in shapes.items():
        Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(d / f"{stem}.png")
    out = tmp_path / "run"
    res = runner.invoke(app, label_args(tmp_path / "data", out, models["sam3"]))
    assert res.exit_code == 0, res.output
    recs = {r["stem"]: r for r in read_jsonl(out / "manifest.jsonl")}
    for stem, shape in shapes.items():
        assert recs[stem]["status"] == "ok", recs[stem]
        assert read_label(out / "labels" / "train" / f"{stem}.png").shape == shape
    # the crop is not transposed: red on the left, blue on the right stays left and right
    img = np.zeros((3, 50, 3), np.uint8)
    img[:, :25, 0] = img[:, 25:, 2] = 255
    pv = _backend(models["sam3"])._inputs(img)[0][1]  # (3, S, S), the whole image
    red_minus_blue = (pv[0] - pv[2]).mean(dim=0)  # per column
    assert red_minus_blue[:5].min() > 0 > red_minus_blue[-5:].max()


def test_a_sam3_folder_without_its_tokenizer_files_is_refused(models, tmp_path):
    """Without tokenizer.json and its vocabulary, transformers loads an empty CLIP tokenizer
    and every prompt became <|endoftext|>: refused in one line instead of labelling with it."""
    import shutil

    folder = tmp_path / "sam3"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "processor_config.json"):
        shutil.copy(models["sam3"] / name, folder / name)
    with pytest.raises(ValueError, match=r"sam3: the tokenizer knows no word of prompts \['bi"):
        _backend(folder)


def test_a_prompt_longer_than_sam3_reads_is_refused(models):
    """SAM 3 reads 32 text tokens: a longer prompt was cut to its first 32 without a word (the
    run labelled with the start of the description)."""
    long = " ".join(["bicycle"] * 40)
    with pytest.raises(ValueError) as e:
        _backend(models["sam3"], prompts=(long,))
    assert "text tokens, SAM 3 reads at most 32: give shorter prompts" in str(e.value)


def test_a_model_folder_typed_as_a_path_is_recorded_in_one_spelling(models, tmp_path, monkeypatch):
    """``--model ./models/sam3/`` was loaded as typed, so run.json spelled one folder two ways:
    ``config.model`` ``models/sam3`` and ``backend.models.model.source`` ``./models/sam3/``. The
    folder is checked as typed (a missing one is named as a folder, not asked of the hub) and
    loaded and recorded as the config spells it, as grounded-sam's models are."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "sam3").symlink_to(models["sam3"], target_is_directory=True)
    data = write_dataset(tmp_path / "data", {"train": 1})
    res = runner.invoke(app, label_args(data, tmp_path / "run", "./models/sam3/"))
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["model"] == run["backend"]["models"]["model"]["source"] == "models/sam3"
    assert run["backend"]["identity"]["model"] == "models/sam3"
    res = runner.invoke(app, label_args(data, tmp_path / "run2", "./models/gone/"))
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "./models/gone/" in text and "looked in the local path" in text
    assert "SAM License" in text and "Traceback" not in text


def test_a_sam3_folder_whose_processor_is_not_its_models_size_is_refused_at_load(models, tmp_path):
    """processor_config.json of another size than the ViT's ``image_size`` (28 for a 56 px
    model): refused at load in one line naming the folder and both sizes. Before, it loaded
    and every image failed in the detector ("The size of tensor a (4) must match the size of
    tensor b (16) at non-singleton dimension 2")."""
    import shutil

    from labeler.sam3 import load_sam3

    folder = tmp_path / "sam3"
    shutil.copytree(models["sam3"], folder)
    path = folder / "processor_config.json"
    doc = json.loads(path.read_text())
    doc["image_processor"]["size"] = {"height": 28, "width": 28}
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError) as err:
        load_sam3(str(folder))
    said = str(err.value)
    assert said.startswith(f"{folder}: its processor makes 28x28 px inputs and its model "), said
    assert "reads 56x56 px" in said and "\n" not in said, said


def test_the_run_record_says_fp32_and_labelling_needs_a_load(models):
    """On a CPU with precision auto: no autocast, recorded as null (not the string "None") by
    both the resume identity and the loaded model's record; ``label`` before ``load`` is a
    RuntimeError saying so, not an AttributeError of a missing model."""
    spec = ClassSpec("Bicycle", prompts=("bicycle",))
    cfg = LabelConfig(data="unused", cls=spec, backend="sam3", model=str(models["sam3"]))
    b = Sam3Backend(cfg, class_id=7)
    assert b.identity()["autocast"] is None
    with pytest.raises(RuntimeError, match=r"label called before load\(\)"):
        b.label([])
    info = b.load()
    assert info["autocast"] is None and info["device"] == "cpu" and info["image_size"] == 56


def test_each_crop_is_its_windows_pixels(models):
    """What reaches the model for each window (the whole image, then the square tiles) is that
    window's pixels through the processor, on a portrait image too (rows from y0 to y1)."""
    import torch

    from labeler.models import preprocess

    spec = ClassSpec("Bicycle", prompts=("bicycle",))
    cfg = LabelConfig(
        data="unused", cls=spec, backend="sam3", model=str(models["sam3"]), tiles=(2, 1)
    )
    b = Sam3Backend(cfg, class_id=7)
    b.load()
    img = np.random.default_rng(0).integers(0, 255, (96, 70, 3), np.uint8)
    got = b._inputs(img)
    assert [win for win, _ in got] == [(0, 0, 70, 96), (0, 0, 70, 70), (0, 26, 70, 96)]
    proc = b.sam3.processor.image_processor
    for (x0, y0, x1, y1), pixels in got:
        assert torch.equal(pixels, preprocess(proc, img[y0:y1, x0:x1])["pixel_values"][0])


def test_a_crop_keeps_its_best_boxes_above_the_threshold():
    """A candidate is kept when its score is above the class's ``box_threshold``, as
    transformers' ``post_process_instance_segmentation`` keeps ``score > threshold``, and at
    most ``max_boxes`` of them per crop and prompt, best first."""
    import torch

    spec = ClassSpec("Bicycle", prompts=("bicycle",), box_threshold=0.5)
    scores = np.array([0.5, 0.75, 0.9], np.float32)
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.6, 0.6], [0, 0, 1, 1]], np.float32)
    logits = torch.full((3, 8, 8), 5.0)
    for max_boxes, kept in ((0, [0.9, 0.75]), (1, [0.9])):
        cfg = LabelConfig(data="unused", cls=spec, backend="sam3", max_boxes=max_boxes)
        got = Sam3Backend(cfg, class_id=7)._candidates((0, 0, 16, 16), 0, scores, boxes, logits)
        assert [c.score for c in got] == kept
