"""``engine train --init``: start from a checkpoint, growing the class head for new classes."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import yaml
from typer.testing import CliRunner

from annotations.taxonomy import MASS13K, ClassInfo, Taxonomy
from cli import app
from tests.model_helpers import distinct_head_model, save_model
from trainer.init import class_head_keys, class_row_sources, init_from_checkpoint
from trainer.models import create_model

NINE = MASS13K.with_new_class("Bicycle").with_new_class("Car")  # ids 7, 8 under Others (0)


def _ours(model, taxonomy, path):
    """An engine checkpoint of ``model`` (as engine train / convert-massformer write them)."""
    return save_model(path, model, taxonomy)


@pytest.fixture(scope="module")
def seven(tmp_path_factory):
    """A tiny 7-class model with non-trivial class-head rows, saved as a checkpoint."""
    model = distinct_head_model(7)
    return model, _ours(model, MASS13K, tmp_path_factory.mktemp("ck") / "seven.pt")


class Foreign:
    """Stands for mmengine's objects in a training checkpoint."""


def _tax(*classes):
    return Taxonomy(tuple(ClassInfo(i, n, (i, i, i), p) for i, (n, p) in enumerate(classes)))


@pytest.mark.parametrize(
    "src, dst, expected",
    [
        (MASS13K, MASS13K, [(i, "same") for i in range(7)]),
        (MASS13K, NINE, [(i, "same") for i in range(7)] + [(0, "parent"), (0, "parent")]),
        # reordered and renamed by case: rows follow the names
        (
            _tax(("A", None), ("B", None)),
            _tax(("b", None), ("a", None)),
            [(1, "same"), (0, "same")],
        ),
        # a child of a new class reaches the nearest known ancestor
        (
            _tax(("A", None), ("B", None)),
            _tax(("A", None), ("B", None), ("C", 1), ("D", 2)),
            [(0, "same"), (1, "same"), (1, "parent"), (1, "parent")],
        ),
        # a class without parent the checkpoint does not know: fresh row
        (_tax(("A", None)), _tax(("A", None), ("Z", None)), [(0, "same"), (None, "new")]),
        (_tax(("A", None)), _tax(("Q", None)), [(None, "new")]),
    ],
)
def test_class_row_sources(src, dst, expected):
    assert class_row_sources(src, dst) == expected


def test_seven_to_nine_rows_copied_from_others_no_object_last(seven):
    old_model, path = seven
    old = old_model.state_dict()
    torch.manual_seed(1)
    model = create_model("tiny", 9)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from_checkpoint(model, path, NINE)
    new = model.state_dict()
    w_key, b_key = class_head_keys(model)
    w_old, w_new, b_old, b_new = old[w_key], new[w_key], old[b_key], new[b_key]
    assert w_new.shape == (10, w_old.shape[1]) and b_new.shape == (10,)
    assert torch.equal(w_new[:7], w_old[:7])
    assert torch.equal(w_new[7], w_old[0]) and torch.equal(w_new[8], w_old[0])
    assert torch.equal(w_new[9], w_old[7]) and torch.equal(b_new[9], b_old[7])  # no-object last
    assert torch.equal(b_new[1:7], b_old[1:7])
    for i in (0, 7, 8):  # Others shares its mass with its two children
        assert b_new[i].item() == pytest.approx(b_old[0].item() - math.log(3), abs=1e-6)
    # every other tensor is the checkpoint's, none stayed at the fresh initialisation
    for key in new:
        if key not in (w_key, b_key):
            assert torch.equal(new[key], old[key]), key
    assert not torch.equal(new[w_key][:7], fresh[w_key][:7])
    assert {k for k, _, _ in report.grown} == {w_key, b_key}
    assert report.dropped == [] and report.not_in_checkpoint == []
    assert len(report.loaded) == len(new) - 2
    text = "\n".join(report.summary())
    assert "Bicycle <- Others (parent)" in text and "Car <- Others (parent)" in text
    assert f"grown {w_key}: [8, {w_old.shape[1]}] -> [10, {w_old.shape[1]}]" in text


def test_grown_head_keeps_every_probability_of_the_checkpoint(seven):
    """softmax over the grown head: Others + Bicycle + Car = the old Others; every other class
    and no-object unchanged (so the initial model predicts the released map, children merged)."""
    old_model, path = seven
    model = create_model("tiny", 9)
    init_from_checkpoint(model, path, NINE)
    w_key, b_key = class_head_keys(model)
    h = torch.randn(50, model.state_dict()[w_key].shape[1])
    p_old = torch.softmax(h @ old_model.state_dict()[w_key].T + old_model.state_dict()[b_key], -1)
    p_new = torch.softmax(h @ model.state_dict()[w_key].T + model.state_dict()[b_key], -1)
    torch.testing.assert_close(p_new[:, 0] + p_new[:, 7] + p_new[:, 8], p_old[:, 0])
    torch.testing.assert_close(p_new[:, 1:7], p_old[:, 1:7])
    torch.testing.assert_close(p_new[:, 9], p_old[:, 7])


def test_classes_missing_from_the_taxonomy_are_reported(seven):
    _, path = seven
    six = Taxonomy(MASS13K.classes[:6])  # no Water
    report = init_from_checkpoint(create_model("tiny", 6), path, six)
    assert report.unused_classes == ["Water"]
    assert "checkpoint classes not in the taxonomy (rows dropped): Water" in report.summary()[-1]
    # the head lost a row: said so (it read "grown")
    text = "\n".join(report.summary())
    assert "2 class-head tensors shrunk" in text and "grown" not in text
    assert "shrunk decoder.class_embed.bias: [8] -> [7]" in text


def test_a_checkpoint_of_another_preset_is_warned_about(seven):
    """A tiny checkpoint into massformer_lite_r18 copies a few tensors and drops most: the
    counts alone ("55 loaded, 305 dropped") did not say that the networks differ."""
    _, path = seven
    report = init_from_checkpoint(create_model("massformer_lite_r18", 7), path, MASS13K)
    assert ("backbone", "tiny_resnet", "resnet18") in report.architecture
    assert report.presets == ("tiny", "massformer_lite_r18")
    assert report.architecture_warning() == (
        f"{path}: the checkpoint is a tiny network, the model a massformer_lite_r18 network "
        "(backbone tiny_resnet vs resnet18, pixel_dim 16 vs 64, window 4 vs 16, cst_heads 4 "
        f"vs 8, ... 8 more): only tensors of the same name and shape are copied "
        f"({len(report.loaded)} loaded, {len(report.dropped)} dropped); --preset tiny would "
        "copy them all"
    )
    assert json.loads(json.dumps(report.to_dict()))["architecture"][0] == {
        "field": "backbone", "checkpoint": "tiny_resnet", "model": "resnet18"
    }  # fmt: skip
    # the same network (another class count or backbone norm aside): no warning
    same = init_from_checkpoint(create_model("tiny", 9, backbone_norm="batch"), path, NINE)
    assert same.architecture == [] and same.architecture_warning() is None


def test_same_taxonomy_loads_everything_unchanged(seven):
    old_model, path = seven
    model = create_model("tiny", 7)
    report = init_from_checkpoint(model, path, MASS13K)
    assert report.grown == [] and report.dropped == [] and report.not_in_checkpoint == []
    for k, v in model.state_dict().items():
        assert torch.equal(v, old_model.state_dict()[k])


def test_shape_mismatch_extra_and_missing_keys_are_reported(seven, tmp_path):
    old_model, _ = seven
    sd = dict(old_model.state_dict())
    victim = next(k for k, v in sd.items() if v.ndim == 4 and not k.startswith("decoder"))
    sd[victim] = torch.zeros(3, 3, 1, 1)
    sd["something.else"] = torch.zeros(2)
    gone = next(k for k in sd if k.endswith("running_var"))
    del sd[gone]
    state = {
        "format": 1,
        "step": 0,
        "model": sd,
        "model_config": dataclasses.asdict(old_model.config),
        "taxonomy": MASS13K.to_dict(),
    }
    torch.manual_seed(2)
    model = create_model("tiny", 9)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from_checkpoint(model, state, NINE)
    dropped = dict(report.dropped)
    assert dropped[victim].startswith("shape [3, 3, 1, 1] in the checkpoint")
    assert dropped["something.else"] == "not in the model"
    assert report.not_in_checkpoint == [gone]
    assert torch.equal(model.state_dict()[victim], fresh[victim])  # kept its initialisation
    text = "\n".join(report.summary())
    assert f"dropped: {victim} (shape" in text and "something.else (not in the model)" in text
    assert f"not in the checkpoint: {gone}" in text


def test_bad_checkpoints_are_clear_errors(seven, tmp_path):
    _, path = seven
    model = create_model("tiny", 9)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        init_from_checkpoint(model, tmp_path / "none.pt", NINE)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="cut.pt: not a readable checkpoint"):
        init_from_checkpoint(model, cut, NINE)
    mmseg = tmp_path / "release.pth"
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(1)}, "meta": {}}, mmseg)
    with pytest.raises(ValueError, match="mmseg checkpoint.*engine convert-massformer"):
        init_from_checkpoint(model, mmseg, NINE)
    # a training checkpoint of mmengine (foreign objects that weights_only refuses)
    state = {"state_dict": {"decode_head.cls_embed.weight": torch.zeros(1)}, "hub": Foreign()}
    torch.save(state, mmseg)
    with pytest.raises(ValueError, match="mmseg checkpoint.*engine convert-massformer"):
        init_from_checkpoint(model, mmseg, NINE)
    other = {"format": 1, "step": 0, "model": {"x": torch.zeros(1)}, "model_config": {}}
    with pytest.raises(ValueError, match="no tensor of the checkpoint matches"):
        init_from_checkpoint(model, {**other, "taxonomy": MASS13K.to_dict()}, NINE)
    with pytest.raises(ValueError, match="taxonomy has 7 classes, the model 9"):
        init_from_checkpoint(model, path, MASS13K)


def _nine_class_dataset(tmp_path):
    """Two synthetic 64x64 training scenes under the nine-class taxonomy: a dataset spec."""
    from engine.synth import SynthConfig, generate

    root = generate(
        SynthConfig(out=tmp_path / "synth", train=2, val=0, test=0, size=(64, 64)), progress=False
    )
    NINE.save(root / "nine.json")
    spec = root / "dataset.yaml"
    spec.write_text(yaml.safe_dump({"taxonomy": "nine.json", "splits": ["train"]}))
    return spec


def test_engine_train_init_grows_and_prints(seven, tmp_path):
    """A 7-class checkpoint fine-tuned on a 9-class dataset through the CLI."""
    _, path = seven
    spec = _nine_class_dataset(tmp_path)
    cfg = tmp_path / "train.yaml"
    cfg.write_text("loss: {num_points: 64}\nval_split: ''\n")
    run = tmp_path / "run"
    args = ["train", "--data", str(spec), "--preset", "tiny", "--config", str(cfg)]
    args += ["--all-precise"]  # a plain 9-class dataset: no fusion, so no source maps
    args += ["--out", str(run), "--iters", "1", "--batch-size", "2", "--crop", "64"]
    args += ["--device", "cpu", "--workers", "0", "--init", str(path), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert f"init from {path}" in text and "2 class-head tensors grown" in text
    assert "Bicycle <- Others (parent), Car <- Others (parent)" in text and "0 dropped" in text
    record = json.loads((run / "init.json").read_text())
    assert record["dropped"] == [] and len(record["grown"]) == 2
    args[args.index(str(run))] = str(tmp_path / "run2")
    res = CliRunner().invoke(app, [*args[:-3], "--init", str(tmp_path / "none.pt")])
    assert res.exit_code == 2 and "checkpoint not found" in res.output


def test_resume_recognises_the_start_checkpoint_at_another_path(seven, tmp_path):
    """The demo's built-in start lives in the installed package: a reinstalled or moved project
    names it at another path. A resume accepts the same bytes there (or, the old file gone,
    the SHA-256 init.json recorded) and refuses another checkpoint."""
    import shutil

    from trainer.config import load_config
    from trainer.train import file_sha256, train

    model, path = seven
    spec = _nine_class_dataset(tmp_path)
    start = tmp_path / "old" / "start.pt"
    start.parent.mkdir()
    shutil.copy(path, start)
    run = tmp_path / "run"
    cfg = load_config(
        None, data=str(spec), preset="tiny", out=str(run), iters=3, batch_size=2, device="cpu",
        num_workers=0, progress=False, init=str(start), all_precise=True, val_split="",
        loss={"num_points": 64}, augment={"crop": 64}, max_steps_this_run=1,
    )  # fmt: skip
    train(cfg)
    assert json.loads((run / "init.json").read_text())["sha256"] == file_sha256(start)
    moved = tmp_path / "new" / "start.pt"
    moved.parent.mkdir()
    shutil.copy(start, moved)
    assert train(dataclasses.replace(cfg, init=str(moved), resume=True)).step == 2  # same bytes
    start.unlink()  # the old install is gone: init.json's hash decides
    assert train(dataclasses.replace(cfg, init=str(moved), resume=True)).step == 3
    other = save_model(tmp_path / "other.pt", model, MASS13K, step=5)  # other bytes
    with pytest.raises(ValueError) as e:
        train(dataclasses.replace(cfg, init=str(other), resume=True, iters=4))
    assert str(e.value) == (
        f"{run / 'last.pt'}: the checkpoint was trained with another config: init differs "
        f'(recorded "{moved}", given "{other}"); resume with the recorded settings or start a '
        "new --out"
    )
    # without --init the resume takes the recorded start (it only matters at step 0): it was
    # refused with "init differ", not saying which path to give
    assert train(dataclasses.replace(cfg, init=None, resume=True, iters=4)).step == 4
    assert yaml.safe_load((run / "config.yaml").read_text())["init"] == str(moved)


def test_init_from_a_converted_release_checkpoint(tmp_path):
    """The release's exact layout (key/shape table) -> engine convert -> --init into a 9-class
    massformer_r50: every tensor but the class head loaded, the head grown from Others."""
    from tests.trainer.test_convert import release_state
    from trainer.convert import convert_massformer

    state = release_state(seed=3)
    src = tmp_path / "release.pth"
    torch.save({"state_dict": state, "meta": {"mmseg_version": "1.2.2"}}, src)
    dst = convert_massformer(src, tmp_path / "released.pt").out
    model = create_model("massformer_r50", 9)
    report = init_from_checkpoint(model, dst, NINE)
    assert len(report.loaded) == 658 and len(report.grown) == 2
    assert report.dropped == [] and report.not_in_checkpoint == []
    w = model.state_dict()["decoder.class_embed.weight"]
    cls = state["decode_head.cls_embed.weight"]
    assert torch.equal(w[7], cls[0]) and torch.equal(w[8], cls[0]) and torch.equal(w[9], cls[7])
    first = "decode_head.pixel_decoder.pixel_decoder.LSE.conv1.weight"
    assert torch.equal(model.state_dict()["pixel_decoder.lse.gate_conv.weight"], state[first])


def test_a_class_at_another_id_is_reported_as_moved(tmp_path):
    """Classes added one after another: the 8-class model (Bicycle 7) started on a dataset that
    fused Car first (Car 7, Bicycle 8), and the 9-class model started on Car alone (Car 8 -> 7,
    Bicycle dropped). Bicycle keeps its own row at its new id; the summary and init.json say
    which ids moved (before, only the new rows were named, and nothing said that the two
    models' label maps number Bicycle apart)."""
    eight = MASS13K.with_new_class("Bicycle")
    torch.manual_seed(0)
    path = _ours(create_model("tiny", 8), eight, tmp_path / "eight.pt")
    cb = MASS13K.with_new_class("Car").with_new_class("Bicycle")
    report = init_from_checkpoint(create_model("tiny", 9), path, cb)
    assert report.moved == [("Bicycle", 7, 8)]
    text = "\n".join(report.summary())
    assert "class ids moved (own rows kept): Bicycle 7 -> 8" in text
    assert report.to_dict()["moved"] == [{"class": "Bicycle", "from": 7, "to": 8}]
    nine = _ours(create_model("tiny", 9), NINE, tmp_path / "nine.pt")
    report = init_from_checkpoint(create_model("tiny", 8), nine, MASS13K.with_new_class("Car"))
    assert report.moved == [("Car", 8, 7)] and report.unused_classes == ["Bicycle"]
    same = init_from_checkpoint(create_model("tiny", 9), nine, NINE)
    assert same.moved == [] and "moved" not in "\n".join(same.summary())
