"""The demo's start checkpoint: `engine demo-pretrain` and the built-in stand-in it made."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from annotations.taxonomy import MASS13K
from cli import app
from engine.demo import DemoConfig, start_checkpoint
from engine.pretrain import BUILTIN, PRETRAIN_SEED, PretrainConfig, pretrain_train_config
from tests.model_helpers import save_model
from trainer.checkpoint import load_checkpoint
from trainer.models import create_model

SMALL = ["--images", "2", "--size", "128x96", "--iters", "2", "--batch-size", "2",
         "--processes", "1", "--no-progress"]  # fmt: skip


def test_demo_pretrain_writes_a_7_class_checkpoint_with_its_provenance(tmp_path):
    out = tmp_path / "pre"
    res = CliRunner().invoke(app, ["demo-pretrain", "--out", str(out), *SMALL])
    assert res.exit_code == 0, res.output
    path = out / "demo_tiny_mass7.pt"
    ckpt = load_checkpoint(path)
    assert "optimizer" not in ckpt and "rng" not in ckpt  # weights only: what --init needs
    assert [c["name"] for c in ckpt["taxonomy"]["classes"]] == MASS13K.names
    prov = ckpt["provenance"]
    assert prov["scenes"] == {"seed": PRETRAIN_SEED, "split": "train", "images": 2,
                              "size": [128, 96]}  # fmt: skip
    assert prov["steps"] == 2 and prov["environment"]["packages"]["torch"]
    # the environment the training started with, not the export's (the commit can move on)
    assert prov["environment"] == json.loads((out / "train" / "environment.json").read_text())
    assert prov["resumes"] == [] and prov["exported"]["time"] >= prov["environment"]["time"]
    # only training scenes of its own seed, and never a new-class label in what it trained on
    assert sorted(p.name for p in (out / "data" / "images").iterdir()) == ["train"]
    saved = json.loads((out / "train" / "config.json").read_text())["config"]
    assert saved["augment"]["class_crop_prob"] == 0 and saved["init"] is None
    # the recipe that made the built-in stand-in: frozen backbone norms (docs/model.md)
    assert saved["backbone_norm"] == "frozen" == ckpt["model_config"]["backbone_norm"]
    # the same command again resumes: scenes kept, nothing retrained
    before = (out / "data" / "images" / "train" / "synth_train_0000.jpg").stat().st_mtime_ns
    again = CliRunner().invoke(app, ["demo-pretrain", "--out", str(out), *SMALL])
    assert again.exit_code == 0, again.output
    assert (out / "data" / "images" / "train" / "synth_train_0000.jpg").stat().st_mtime_ns == before
    assert load_checkpoint(path)["step"] == 2
    # a finished run is not resumed (engine train: nothing to do), so no resume is recorded
    assert load_checkpoint(path)["provenance"]["resumes"] == []
    # other scenes in the same folder would mix two datasets in one resumed run
    other = [a if a != "2" else "3" for a in SMALL]  # --images 3 (and --iters 3)
    res = CliRunner().invoke(app, ["demo-pretrain", "--out", str(out), *other])
    assert res.exit_code == 2 and "a run on other scenes" in res.output


# ``python -c KILLED_AS_TYPED NAME ARGS...``: ``engine ARGS`` with the argv a shell gives it (the
# one environment.json records), killed (SIGKILL) as it renames a file it wrote onto NAME
KILLED_AS_TYPED = """
import os, signal, sys
name = sys.argv.pop(1)
real = os.replace
def replace(src, dst):
    if os.path.basename(dst) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
os.replace = replace
sys.argv[0] = "engine"
from cli import app
app(sys.argv[1:])
"""


def test_a_run_killed_before_its_export_is_not_finished_and_its_rerun_exports(tmp_path):
    """``kill -9`` of ``engine demo-pretrain`` as it put its exported checkpoint in, its
    training finished (crash-injection pass 58): engine info read the folder as a finished
    training run (exit 0, "next: engine predict --checkpoint OUT/train/last.pt"), the command's
    own checkpoint missing. Now it says the command did not finish and that running it again
    exports it (exit 1); the rerun does."""
    from tests.loop_helpers import run_killed

    out = tmp_path / "pre"
    args = ["demo-pretrain", "--out", str(out), *SMALL]
    run_killed(KILLED_AS_TYPED, "demo_tiny_mass7.pt", *args)
    assert (out / "train" / "last.pt").is_file() and not (out / "demo_tiny_mass7.pt").exists()
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output
    assert (
        f"{out}: engine demo-pretrain not finished: its checkpoint {out / 'demo_tiny_mass7.pt'} "
        "not exported yet; run the same engine demo-pretrain command again"
    ) in " ".join(res.output.split())
    assert CliRunner().invoke(app, args).exit_code == 0
    assert CliRunner().invoke(app, ["info", str(out)]).exit_code == 0


def test_pretraining_is_the_demo_recipe_without_new_classes(tmp_path):
    demo = DemoConfig(init="none")
    train = pretrain_train_config(PretrainConfig(out=tmp_path))
    assert train.init is None and train.val_split is None
    assert train.augment.class_crop_prob == 0.0
    assert not train.freeze_bn_stats  # from scratch: the statistics must be learnt
    assert train.backbone_norm == "frozen"  # as the built-in stand-in was made
    assert (train.lr, train.batch_size, train.augment.crop) == (demo.lr, demo.batch_size, demo.crop)
    assert train.preset == "tiny" and train.data == str(tmp_path / "data")


def test_demo_pretrain_takes_the_lr_and_backbone_norm_and_refuses_bad_ones(tmp_path):
    cfg = pretrain_train_config(PretrainConfig(out=tmp_path, lr=1e-3, backbone_norm="batch"))
    assert (cfg.lr, cfg.backbone_norm) == (1e-3, "batch")
    for args, msg in (
        (["--lr", "0"], "error: lr must be > 0, got 0.0"),
        (["--lr", "inf"], "error: lr must be a finite number, got inf"),
        (
            ["--backbone-norm", "group"],
            "error: backbone_norm must be 'frozen' or 'batch', got 'group'",
        ),
    ):
        res = CliRunner().invoke(app, ["demo-pretrain", "--out", str(tmp_path / "p"), *args])
        assert res.exit_code == 2 and res.output.strip() == msg, res.output
        assert not (tmp_path / "p").exists()  # refused before any scene is rendered


def test_builtin_start_checkpoint_is_a_7_class_tiny_model_from_scenes_of_its_own_seed():
    ckpt = load_checkpoint(BUILTIN)
    assert [c["name"] for c in ckpt["taxonomy"]["classes"]] == MASS13K.names  # no new class
    prov = ckpt["provenance"]
    assert prov["scenes"]["split"] == "train" and prov["scenes"]["seed"] == PRETRAIN_SEED
    assert PRETRAIN_SEED not in (0, 1) and DemoConfig().seed != PRETRAIN_SEED
    assert prov["steps"] == PretrainConfig().iters == ckpt["step"]
    assert prov["scenes"]["images"] == PretrainConfig().images
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_builtin_checkpoint_loads_fully_into_the_demos_model():
    """Every tensor of the demo's model comes from the checkpoint; only the class head grows
    (Bicycle and Car start as Others)."""
    from trainer.init import init_from_checkpoint
    from trainer.models import create_model

    taxonomy = MASS13K.with_new_class("Bicycle").with_new_class("Car")
    model = create_model("tiny", len(taxonomy))
    report = init_from_checkpoint(model, BUILTIN, taxonomy)
    assert not report.dropped and not report.not_in_checkpoint
    assert {(n, s) for n, s, how in report.class_rows if how == "parent"} == {
        ("Bicycle", "Others"),
        ("Car", "Others"),
    }


def test_demo_start_checkpoint_errors_are_one_line_before_any_work(tmp_path, monkeypatch):
    assert start_checkpoint(DemoConfig(init="none")) is None
    start = start_checkpoint(DemoConfig())
    assert start["path"] == str(BUILTIN) and start["classes"] == MASS13K.names
    other = tmp_path / "wide.pt"
    wide = create_model("tiny", 7, pixel_dim=32)
    save_model(other, wide)
    with pytest.raises(ValueError, match=r"wide.pt: not a tiny MaSSFormer \(pixel_dim 32"):
        start_checkpoint(DemoConfig(init=str(other)))
    # a start whose backbone trained its norms is a tiny model all the same (same tensors)
    batch = create_model("tiny", 7, backbone_norm="batch")
    save_model(other, batch)
    assert start_checkpoint(DemoConfig(init=str(other)))["path"] == str(other)
    missing = tmp_path / "nope.pt"
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "--init", str(missing)])
    assert res.exit_code == 2 and "nope.pt: checkpoint not found" in res.output
    assert "SIMULATED" not in res.output  # the error is the only line: no notice before it
    assert not (tmp_path / "d").exists()  # nothing written
    import engine.demo.config

    monkeypatch.setattr(engine.demo.config, "BUILTIN", missing)
    with pytest.raises(FileNotFoundError, match="built-in start checkpoint is missing"):
        start_checkpoint(DemoConfig(init="builtin"))


def test_builtin_stand_in_segments_the_7_classes_of_the_demos_test_scenes(tmp_path):
    """The shipped weights are a trained model, not an initialisation: on test scenes of the
    demo's default seed (never trained on), where bicycles and cars are Others, it segments
    the 7 classes (the shipped stand-in: mIoU 80-83 on the 8 test images of seeds 0 and 1)."""
    from engine.datasets import SegDataset, load_spec
    from engine.synth import SynthConfig, generate
    from trainer.checkpoint import model_from_checkpoint
    from trainer.validate import evaluate

    data = generate(SynthConfig(out=tmp_path, train=0, val=0, test=3, seed=0), progress=False)
    model, _, _ = model_from_checkpoint(BUILTIN)
    scores = evaluate(model, SegDataset(load_spec(data), "test"), size=(512, 384))
    assert scores["mIoU"] > 65, scores["classes"]
    others = scores["classes"][MASS13K.names.index("Others")][
        "iou"
    ]  # bicycles and cars are Others here
    assert others > 55, scores["classes"]


def test_a_library_pretrain_config_is_held_to_the_clis_bounds(tmp_path):
    """processes=-1 (the CLI's ``min=0``) was refused by the DemoConfig pretraining builds,
    naming ``val``, a setting demo-pretrain does not have."""
    for field in ("seed", "processes", "threads"):
        with pytest.raises(ValueError, match="^seed, processes and threads must be >= 0$"):
            PretrainConfig(out=tmp_path, **{field: -1})
