"""``engine train`` then ``engine predict`` end to end on a tiny synthetic dataset (CPU)."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from annotations.labelmap import read_label
from cli import app
from engine.datasets import image_size
from engine.synth import SynthConfig, generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return generate(
        SynthConfig(out=root, train=4, val=2, test=2, size=(128, 96), seed=0), progress=False
    )


def test_train_then_predict_end_to_end(synth, tmp_path, caplog):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("log_every: 1\nloss: {num_points: 256}\n")
    run = tmp_path / "run"
    args = ["train", "--data", str(synth), "--preset", "tiny", "--config", str(cfg)]
    args += ["--out", str(run), "--iters", "3", "--batch-size", "2", "--crop", "64"]
    args += ["--device", "cpu", "--workers", "0", "--val-every", "0", "--val-size", "128x96"]
    args += ["--backbone-norm", "batch"]  # from scratch: the backbone's norms train
    res = CliRunner().invoke(app, [*args, "--no-progress"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "trained 3 steps" in text and "val: mIoU" in text
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3]
    assert "val" in lines[-1] and lines[-1]["val"]["images"] == 2
    for name in ("config.yaml", "config.json", "environment.json", "last.pt"):
        assert (run / name).is_file()
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["model_config"]["backbone_norm"] == "batch"
    # a resume needs no option the run was started with: they come from its config.json (before,
    # ten "differs": preset, crop, batch size, ... were compared with the defaults)
    resume = ["train", "--out", str(run), "--resume", "--iters", "4"]  # --data: the run's
    res = CliRunner().invoke(app, [*resume, "--workers", "0", "--no-progress"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3, 4]  # log_every 1: the file's
    res = CliRunner().invoke(app, [*resume, "--iters", "5", "--batch-size", "4"])
    assert res.exit_code == 2 and "batch_size differs (recorded 2, given 4)" in " ".join(
        res.output.split()
    )

    pred = tmp_path / "pred"
    args = [
        "predict",
        "--checkpoint",
        str(run / "last.pt"),
        "--images",
        str(synth / "images" / "test"),
    ]
    args += ["--out", str(pred), "--size", "128x96", "--device", "cpu", "--color", "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "wrote 2 label maps" in " ".join(res.output.split())
    trained_on = json.loads((pred / "predict.json").read_text())["trained_on"]
    assert trained_on == {"data": str(synth), "split": "train"}  # for the report's warning
    for img in sorted((synth / "images" / "test").iterdir()):
        label = read_label(pred / f"{img.stem}.png")
        assert (label.shape[1], label.shape[0]) == image_size(img)
        assert int(label.max()) < 7 and label.dtype == np.uint8
        assert (pred / "color" / f"{img.stem}.png").is_file()
    # a second run skips what is done
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "2 already there" in " ".join(res.output.split())
    # predicting from a run that is training now (monitoring it) is said: which step it is
    from engine.runlock import exclusive

    with caplog.at_level("WARNING", "trainer.predict"), exclusive(run, "engine train"):
        res = CliRunner().invoke(app, [*args[:6], str(tmp_path / "pred_now"), *args[7:]])
    assert res.exit_code == 0, res.output
    (said,) = [r.getMessage() for r in caplog.records if r.name == "trainer.predict.run"]
    assert said.startswith(f"{run}: engine train (pid {os.getpid()} ") and said.endswith(
        "is training it now: these predictions are of its checkpoint at step 4, not of the "
        "finished model"
    )
    # kept in predict.json and shown by engine info: read days later (a nohup run's console
    # gone), the folder said nothing of a model still training (before the forty-fourth round)
    assert json.loads((tmp_path / "pred_now" / "predict.json").read_text())["warnings"] == [said]
    res = CliRunner().invoke(app, ["info", str(tmp_path / "pred_now")], env={"COLUMNS": "400"})
    assert f"warning │ {said}" in " ".join(res.output.split()), res.output
    assert "warnings" not in json.loads((pred / "predict.json").read_text())
    # resumed, its maps kept: the first call's warnings too, marked with its time (the
    # resume's record overwrote them before the forty-fifth round)
    first = json.loads((tmp_path / "pred_now" / "predict.json").read_text())
    res = CliRunner().invoke(app, [*args[:6], str(tmp_path / "pred_now"), *args[7:]])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "pred_now" / "predict.json").read_text())
    assert "warnings" not in again and again["earlier_warnings"] == [
        {"time": first["environment"]["time"], "warnings": [said]}
    ]
    res = CliRunner().invoke(app, ["info", str(tmp_path / "pred_now")], env={"COLUMNS": "400"})
    when = first["environment"]["time"]
    assert f"warning │ (call of {when}) {said}" in " ".join(res.output.split()), res.output
    # test-time augmentation: recorded in predict.json, same sizes out
    tta = tmp_path / "pred_tta"
    args[args.index(str(pred))] = str(tta)
    res = CliRunner().invoke(app, [*args, "--scales", "0.75,1,1.25", "--flip"])
    assert res.exit_code == 0, res.output
    config = json.loads((tta / "predict.json").read_text())["config"]
    assert config["scales"] == [0.75, 1.0, 1.25] and config["flip"] is True
    for img in sorted((synth / "images" / "test").iterdir()):
        assert (
            read_label(tta / f"{img.stem}.png").shape == read_label(pred / f"{img.stem}.png").shape
        )


def test_train_help_states_the_config_s_defaults():
    """engine train --help named no default for --batch-size, --crop, --val-every, --preset
    (their options default to None, the config deciding): a user read nothing, or guessed. Each
    default it states now is TrainConfig's."""
    import re

    import typer

    from trainer.config import TrainConfig

    params = {p.name: p.help for p in typer.main.get_command(app).commands["train"].params}
    c = TrainConfig()
    stated = {
        "preset": (r"(\w+) \(default\)", c.preset),
        "batch_size": (r"\(default (\d+)\)", str(c.batch_size)),
        "crop": (r"\(default (\d+)\)", str(c.augment.crop)),
        "device": (r"(\w+) \(default\)", c.device),
        "backbone_weights": (r"(\w+) \(default", c.backbone_weights),
        "val_every": (r"\(default ([\d,]+);", f"{c.val_every:,}"),
        "processes": (r"default (\d+)\)", str(c.processes)),
        "iters": (r"\(default ([\d,]+);", f"{c.iters:,}"),
        "val_size": (r"\(default (\d+x\d+)\)", "x".join(map(str, c.val_size))),
        "val_split": (r"\(default (\w+)\)", c.val_split),
        "out": (r"\(default ([\w/]+)\)", c.out),
        "class_crop_prob": (r"\(default ([\d.]+)\)", str(c.augment.class_crop_prob)),
        "pseudo_form": (r"(\w+) \(default\)", c.loss.decoupling.pseudo_form),
        "backbone_norm": (r"(\w+) \(default", c.backbone_norm),
    }
    for name, (pattern, real) in stated.items():
        found = re.search(pattern, params[name])
        assert found and found.group(1) == real, (name, params[name], real)


def test_cli_errors_are_one_line(synth, tmp_path):
    res = CliRunner().invoke(
        app,
        [
            "predict",
            "--checkpoint",
            str(tmp_path / "none.pt"),
            "--images",
            str(synth / "images" / "test"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2 and "checkpoint not found" in " ".join(res.output.split())
    args = ["predict", "--checkpoint", "x.pt", "--images", "i", "--out", "o", "--scales", "1,-2"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "--scales must be positive numbers" in " ".join(
        res.output.split()
    )
    args = [*args[:-1], "1,big"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "comma-separated numbers" in " ".join(res.output.split())
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 1\n")
    res = CliRunner().invoke(app, ["train", "--data", str(synth), "--config", str(bad)])
    assert res.exit_code == 2 and "unknown keys ['learning_rate']" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["train", "--data", str(synth), "--backbone-norm", "group"])
    assert res.exit_code == 2 and "backbone_norm must be 'frozen' or 'batch', got 'group'" in (
        " ".join(res.output.split())
    )


@pytest.mark.parametrize("command", ["train", "predict"])
def test_a_bogus_device_names_the_option_before_any_file(synth, tmp_path, command):
    """torch's own error listed twenty device types and named no option."""
    out = tmp_path / "out"
    if command == "train":
        args = ["train", "--data", str(synth), "--out", str(out), "--iters", "1"]
    else:
        ckpt = tmp_path / "c.pt"
        ckpt.write_bytes(b"")  # never read: the device is resolved first
        args = ["predict", "--checkpoint", str(ckpt), "--images", str(synth / "images" / "test")]
        args += ["--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--device", "bogus"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "--device 'bogus' is not a device; use auto, cpu, cuda or cuda:N" in text
    assert "privateuseone" not in text and not out.exists()


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("augment: {crop: 8}", "c.yaml: augment.crop 8: the model needs at least 32 px per side"),
        # fuzzed, round 47: 1e308, a whole number to YAML's reader, was numpy's OverflowError
        (
            "augment: {crop: 1.0e+308}",
            "c.yaml: augment.crop 1e+308: at most 65536 px per side; set it to 65536 or less",
        ),
        ("device: bogus", "c.yaml: device 'bogus' is not a device; use auto, cpu, cuda or cuda:N"),
    ],
)
def test_a_config_files_bad_value_is_named_by_the_file_not_the_option(
    synth, tmp_path, setting, said
):
    """A value from the --config file was reported as if the user had typed its option
    (``--crop 8 (augment.crop)``, ``--device 'bogus'``), though the command line had none."""
    (tmp_path / "c.yaml").write_text(setting + "\n")
    out = tmp_path / "out"
    args = ["train", "--data", str(synth), "--config", str(tmp_path / "c.yaml")]
    res = CliRunner().invoke(app, [*args, "--out", str(out), "--iters", "1", "--no-progress"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert said in text and "--crop" not in text and "--device" not in text
    assert not out.exists()


def test_train_names_a_files_value_for_a_library_caller_as_for_the_cli(synth, tmp_path):
    """The CLI checked a config file's crop, device and val_size itself before calling train(),
    which checked them again naming the options: a library caller who loaded the file could not
    have it named. train(from_file=...) is now the one place, for both."""
    from trainer.config import TrainConfig
    from trainer.train import train

    base = TrainConfig(data=str(synth), out=str(tmp_path / "run"), preset="tiny", iters=1)
    base = dataclasses.replace(base, batch_size=2, device="cpu", num_workers=0, progress=False)
    crop = dataclasses.replace(base, augment=dataclasses.replace(base.augment, crop=8))
    cases = [
        (crop, "augment.crop", "my.yaml: augment.crop 8: the model needs at least 32 px"),
        (dataclasses.replace(base, device="bogus"), "device", "my.yaml: device 'bogus' is not"),
        (dataclasses.replace(base, val_size=(12, 9)), "val_size", "my.yaml: val_size 12x9: it"),
    ]
    for cfg, key, said in cases:
        with pytest.raises(ValueError, match=f"^{said}"):
            train(cfg, from_file={key: "my.yaml"})
        with pytest.raises(ValueError) as err:  # not from a file: named as the option
            train(cfg)
        assert str(err.value).split(" ")[0] in ("--crop", "--device", str(synth / "images"
            / "val" / "synth_val_0000.jpg") + ":")  # fmt: skip
        assert not (tmp_path / "run").exists()


def test_a_missing_validation_split_says_how_to_go_on(synth, tmp_path, caplog):
    """A fused dataset made from the training split alone has no val labels: the error says
    how to add them, pick another split or train without validation (--val-split none)."""
    import shutil

    fused = tmp_path / "fused"
    shutil.copytree(synth, fused)
    shutil.rmtree(fused / "annotations" / "val")
    (fused / "fuse.json").write_text("{}")  # what engine fuse writes (read as: a fused dataset)
    args = ["train", "--data", str(fused), "--preset", "tiny", "--iters", "1", "--batch-size", "2"]
    args += ["--crop", "64", "--device", "cpu", "--processes", "1", "--val-size", "128x96"]
    args += ["--no-progress"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and " ".join(res.output.split()) == (
        f"error: {fused / 'annotations' / 'val'}: label folder for split 'val' not found; "
        "validation needs split 'val' labelled (engine fuse --split val adds it): give another "
        "with --val-split, or --val-split none to train without validation"
    )
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "d"), "--val-split", "bogus"])
    text = " ".join(res.output.split())  # a split the source lacks: fusing cannot add it
    assert res.exit_code == 2 and "split 'bogus' not found" in text
    assert "engine fuse" not in text and "give another with --val-split" in text
    caplog.clear()
    with caplog.at_level("WARNING"):
        res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--val-split", "none"])
    assert res.exit_code == 0, res.output
    assert "val:" not in res.output  # trained without validation
    # --val-size is not idle: engine predict infers at the checkpoint's validation size (it
    # was said unused, and a model of 128x96 scenes then predicted at 4096x3072); any logger's
    # (before, records of "trainer.cli", a logger that does not exist: it could not fail)
    assert [m for r in caplog.records if "--val-size" in (m := r.getMessage())] == []
    saved = torch.load(tmp_path / "b" / "last.pt", weights_only=False)["config"]["val_size"]
    assert tuple(saved) == (128, 96)
    caplog.clear()
    with caplog.at_level("WARNING"):
        more = ["--val-split", "none", "--val-every", "5"]
        res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "e"), *more])
    assert res.exit_code == 0, res.output
    unused = "--val-every: not used, nothing is validated (--val-split none, no --val-subset)"
    assert [r.getMessage() for r in caplog.records if "--val-every" in r.getMessage()] == [unused]
    # kept in the run's metrics.jsonl with its other warnings: on the console only before the
    # forty-fifth round, lost with a nohup run's console
    lines = [json.loads(x) for x in (tmp_path / "e" / "metrics.jsonl").read_text().splitlines()]
    assert {"step": 0, "event": "warning", "message": unused} in lines
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "c"), "--val-split", "test"])
    assert res.exit_code == 0 and "val:" in res.output, res.output


def test_an_empty_validation_split_is_refused_before_training(synth, tmp_path):
    """A val folder without images: the run trained, warned that validation enlarged the
    images of split 'train' (it checked the training split instead) and ended with "val:
    nothing to score". It is refused at once now, writing nothing."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth, data)
    for folder in ("images", "annotations"):
        shutil.rmtree(data / folder / "val")
        (data / folder / "val").mkdir()
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--preset", "tiny", "--iters", "1", "--batch-size", "2"]
    res = CliRunner().invoke(app, [*args, "--out", str(out), "--no-progress"])
    assert res.exit_code == 2 and " ".join(res.output.split()) == (
        f"error: {data / 'images' / 'val'}: split 'val' has no images to validate on: give "
        "another with --val-split, or --val-split none to train without validation"
    )
    assert not out.exists()


@pytest.mark.slow
def test_torchrun_ddp_two_cpu_ranks_then_resume(synth, tmp_path):
    """DDP on CPU (gloo): two ranks train, only rank 0 writes, and the run resumes."""
    import os
    import subprocess
    import sys

    from tests.trainer._train_stub import SMALL_RUN_YAML

    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(SMALL_RUN_YAML)
    run = tmp_path / "run"

    def launch(*extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
        cmd += ["--master_port", "29531", "-m", "cli", "train", "--data", str(synth)]
        cmd += ["--preset", "tiny", "--config", str(cfg), "--out", str(run), "--batch-size", "4"]
        cmd += ["--device", "cpu", "--workers", "0", "--val-every", "0", "--no-progress", *extra]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)

    res = launch("--iters", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("trained 2 steps") == 1  # only rank 0 reports
    assert res.stdout.count("val: mIoU") == 1  # validation sharded over ranks, gathered on 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2]
    assert [x["val"]["images"] for x in lines if "val" in x] == [2]
    from trainer.checkpoint import load_checkpoint

    assert len(load_checkpoint(run / "last.pt")["rng_ranks"]) == 2
    res = launch("--iters", "3", "--resume")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "trained 3 steps" in res.stdout
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3]


def test_engine_train_leaves_the_process_group_when_training_ends(synth, tmp_path, monkeypatch):
    """Under torchrun, ranks that exit with the gloo group alive can abort ("terminate called
    without an active exception"): the slow suite's torchrun test lost a rank to SIGABRT 2 times
    in 14. The command leaves the group, every rank together, once training ends; train()
    itself keeps it, for a caller's own collectives after training (bench/gpu_train.py).
    Here a one-process gloo group stands in for torchrun's."""
    import torch.distributed as dist

    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun: train() takes the group given
    monkeypatch.setenv("RANK", "0")
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        args = ["train", "--data", str(synth), "--preset", "tiny", "--out", str(tmp_path / "r")]
        args += ["--iters", "1", "--batch-size", "2", "--crop", "64", "--device", "cpu"]
        args += ["--workers", "0", "--val-every", "0", "--val-size", "128x96", "--no-progress"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _bicycle_subset(synth, out, name="Bicycle"):
    """The synthetic test split's true bicycle masks as an annotated subset of class ``name``."""
    from annotations.subset import write_subset

    masks = {
        p.stem: (read_label(p) > 0).astype(np.uint8)
        for p in sorted((synth / "new_classes" / "bicycle" / "test").iterdir())
    }
    return write_subset(out, name, "test", masks, {}).root


def test_subsets_that_score_less_than_they_seem_are_warned_about(tmp_path):
    """A subset of training images, or one imported from an uncorrected export, validates
    something other than quality: train says so (a test-split subset is quiet)."""
    from trainer.validate import SubsetTarget, subset_warnings

    test = SubsetTarget(tmp_path / "test", "Bicycle", 7, (), (), split="test")
    assert subset_warnings([test], "train") == []
    root = tmp_path / "train"
    echo = SubsetTarget(root, "Bicycle", 7, (), (), "train", ("runs/label/bicycle",))
    (fit, same) = subset_warnings([echo], "train")
    assert "annotates images of the training split 'train'" in fit and str(root) in fit
    assert "imported from an uncorrected export of runs/label/bicycle" in same


def test_a_subset_with_nothing_to_score_is_warned_before_training(synth, tmp_path):
    """A subset whose masks are all 255 (or mark no pixel of its class) trained for hours, then
    printed `nothing to score` at each validation; subset.json's counts say so at the start."""
    from annotations.subset import write_subset
    from engine.datasets import SegDataset, load_spec
    from trainer.validate import load_subset, subset_warnings

    data = SegDataset(load_spec(synth), "train")
    stems = [s.stem for s in SegDataset(load_spec(synth), "test").samples]

    def warnings(value):
        masks = {s: np.full((96, 128), value, np.uint8) for s in stems}
        root = write_subset(tmp_path / f"s{value}", "Sky", "test", masks, {}).root
        return subset_warnings([load_subset(root, data)], "train")

    (text,) = warnings(255)
    assert text == (
        f"{tmp_path / 's255'}: every pixel of the Sky subset's masks is unannotated (255): "
        "there is nothing to score it on, and each validation will say so"
    )
    (text,) = warnings(0)
    assert "no mask of the Sky subset marks a Sky pixel: its IoU can only be 0" in text
    assert warnings(1) == []


def test_masks_a_subset_does_not_list_are_warned_before_training(synth, tmp_path):
    """PNGs put in a --val-subset's masks/ by hand (not in subset.json) were passed over by
    training without a word, while engine fuse and compare name them: the same line now."""
    from annotations.subset import write_subset
    from engine.datasets import SegDataset, load_spec
    from trainer.validate import load_subset, subset_warnings

    data = SegDataset(load_spec(synth), "train")
    stems = [s.stem for s in SegDataset(load_spec(synth), "test").samples]
    masks = {s: np.full((96, 128), 1, np.uint8) for s in stems[:1]}
    root = write_subset(tmp_path / "s", "Sky", "test", masks, {}).root
    assert subset_warnings([load_subset(root, data)], "train") == []
    png = (root / "masks" / f"{stems[0]}.png").read_bytes()
    for stem in ("hand_b", "hand_a"):
        (root / "masks" / f"{stem}.png").write_bytes(png)
    assert subset_warnings([load_subset(root, data)], "train") == [
        f"{root / 'masks'}: 2 masks that subset.json does not list, which no command reads "
        "(hand_a, hand_b): import them to add them"
    ]


def _recorded_bars(monkeypatch) -> dict[str, list[int]]:
    """``description -> [total, steps done]`` of the progress bars training draws."""
    import trainer.train.loop

    bars: dict[str, list[int]] = {}
    real = trainer.train.loop.make_progress

    def recording(*args, **kwargs):
        progress = real(*args, **kwargs)
        add, update, advance = progress.add_task, progress.update, progress.advance
        names: dict = {}

        def add_task(description, total=None, completed=0, **fields):
            task = add(description, total=total, completed=completed, **fields)
            names[task], bars[description] = description, [total, completed]
            return task

        def update_task(task, completed=None, **fields):
            if completed is not None:
                bars[names[task]][1] = completed
            return update(task, completed=completed, **fields)

        def advance_task(task, steps=1):
            bars[names[task]][1] += steps
            return advance(task, steps)

        progress.add_task, progress.update, progress.advance = add_task, update_task, advance_task
        return progress

    monkeypatch.setattr(trainer.train.loop, "make_progress", recording)
    return bars


def test_trains_on_a_fused_dataset_with_source_maps(synth, tmp_path, monkeypatch):
    """synth -> pseudo labels (the true bicycle masks) -> engine fuse -> train 2 steps."""
    from engine.fusion import FuseConfig, fuse
    from engine.fusion.testing import write_pseudo_run
    from trainer.checkpoint import load_checkpoint
    from trainer.config import load_config
    from trainer.data import TrainSet
    from trainer.train import train
    from trainer.validate import load_subset

    labels = {
        split: {
            p.stem: read_label(p)
            for p in sorted((synth / "new_classes" / "bicycle" / split).iterdir())
        }
        for split in ("train", "val")
    }
    run = write_pseudo_run(tmp_path / "pseudo_bicycle", "Bicycle", labels)
    fused = tmp_path / "fused"
    fuse(FuseConfig(data=synth, pseudo=(run,), out=fused, splits=("train", "val"), progress=False))
    data = TrainSet(fused, "train", load_config(None).augment)
    assert data.has_sources and data.taxonomy.num_classes == 8
    assert any((data.load(i)[2] == 1).any() for i in range(len(data)))  # pseudo pixels exist
    cfg = load_config(
        None,
        data=str(fused),
        out=str(tmp_path / "run"),
        preset="tiny",
        iters=2,
        batch_size=2,
        num_workers=0,
        device="cpu",
        progress=False,
        val_size=[128, 96],
        augment={"crop": 64},
        loss={"num_points": 256, "decoupling": {"pseudo_class_weight": 0.5}},
        val_subsets=[str(_bicycle_subset(synth, tmp_path / "subset"))],
    )
    bars = _recorded_bars(monkeypatch)
    result = train(cfg)
    assert result.step == 2 and result.val[-1]["images"] == 2
    # validation draws its own bar under the training's: 2 val images + 2 annotated, then gone
    assert bars == {"train": [2, 2], "validate (step 2)": [4, 4]}
    # the fused val split scores Bicycle against its pseudo labels, and says so
    val = result.val[-1]
    assert val["new_classes_vs"] == "pseudo labels"
    assert [c.get("vs") for c in val["classes"]] == [None] * 7 + ["pseudo labels"]
    target = load_subset(cfg.val_subsets[0], data.data)  # read from subset.json
    assert target.split == "test" and target.unchanged_exports == ()
    (sub,) = val["subsets"]  # the annotated subset scores it against annotations
    assert sub["class"] == "Bicycle" and sub["vs"] == "annotated subset" and sub["images"] == 2
    assert set(sub) >= {"iou", "biou", "bf1", "subset"}
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert logged["val"]["subsets"][0]["class"] == "Bicycle"
    assert (tmp_path / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"  # loss, lr, val
    # a subset of a class the dataset lacks fails before any training
    bad = _bicycle_subset(synth, tmp_path / "bad", name="Boat")
    said = r"'Boat' is not in the dataset's taxonomy \(.*Bicycle\): train on a dataset that has it"
    with pytest.raises(ValueError, match=said):
        train(dataclasses.replace(cfg, out=str(tmp_path / "run2"), val_subsets=[str(bad)]))
    twice = [cfg.val_subsets[0], str(_bicycle_subset(synth, tmp_path / "again"))]
    with pytest.raises(ValueError, match="a second annotated subset of Bicycle"):
        train(dataclasses.replace(cfg, out=str(tmp_path / "run3"), val_subsets=twice))
    assert not (tmp_path / "run3").exists()
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["taxonomy"]["classes"][7]["name"] == "Bicycle"
    assert ckpt["model_config"]["num_classes"] == 8


def test_cli_new_classes_without_sources_exit_2_unless_all_precise(synth, tmp_path):
    import shutil

    from annotations.taxonomy import MASS13K

    data = tmp_path / "data"
    shutil.copytree(synth / "images", data / "images")
    shutil.copytree(synth / "annotations", data / "annotations")
    MASS13K.with_new_class("Bicycle").save(data / "taxonomy.json")
    (data / "dataset.yaml").write_text("taxonomy: taxonomy.json\n")
    args = ["train", "--data", str(data), "--preset", "tiny", "--iters", "1", "--crop", "64"]
    args += ["--batch-size", "2", "--device", "cpu", "--workers", "0", "--val-every", "0"]
    args += ["--val-size", "128x96", "--no-progress"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a"), "--pseudo-form", "flat"])
    assert res.exit_code == 2, res.output
    assert "sources/train: no source maps" in " ".join(res.output.split())
    both = [*args, "--out", str(tmp_path / "c"), "--all-precise", "--pseudo-form", "flat"]
    res = CliRunner().invoke(app, both)  # no pseudo pixel left to weigh
    assert res.exit_code == 2 and "with --all-precise there are none" in res.output
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--all-precise"])
    assert res.exit_code == 0, res.output
    assert "all_precise: true" in (tmp_path / "b" / "config.yaml").read_text()


def test_a_contact_drawn_rule_that_would_do_nothing_is_refused(synth, tmp_path):
    """``loss.decoupling.drawn_rule: contact`` picks the edges only ``pseudo_form: origin``
    discounts: with another form (the file's or --pseudo-form's) or all-precise training it
    trained as ``window`` would, silently. Refused naming the key, before anything is written."""
    import shutil

    from annotations.taxonomy import MASS13K

    data = tmp_path / "data"
    shutil.copytree(synth / "images", data / "images")
    shutil.copytree(synth / "annotations", data / "annotations")
    MASS13K.with_new_class("Bicycle").save(data / "taxonomy.json")
    (data / "dataset.yaml").write_text("taxonomy: taxonomy.json\n")
    config = tmp_path / "c.yaml"
    args = ["train", "--data", str(data), "--config", str(config), "--preset", "tiny"]
    args += ["--iters", "1", "--crop", "64", "--batch-size", "2", "--device", "cpu"]
    args += ["--workers", "0", "--val-every", "0", "--val-size", "128x96", "--no-progress"]
    said = f"error: {config}: loss.decoupling.drawn_rule contact picks the edges pseudo_form origin"
    cases = [
        ("flat", [], "; pseudo_form flat discounts none by them"),
        ("origin", ["--pseudo-form", "reversed"], "; --pseudo-form reversed discounts none"),
        ("origin", ["--all-precise"], "; with --all-precise no pixel is a pseudo pixel"),
    ]
    for form, extra, why in cases:
        config.write_text(f"loss: {{decoupling: {{drawn_rule: contact, pseudo_form: {form}}}}}\n")
        out = tmp_path / "out"
        res = CliRunner().invoke(app, [*args, "--out", str(out), *extra])
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and said in text and why in text, res.output
        assert not out.exists()


def test_joint_training_options_on_a_dataset_without_new_classes_are_refused(synth, tmp_path):
    """On plain MaSS13K labels every pixel is precise and no crop has a new class to centre
    on: the options that only shape joint training would do nothing, so they are refused."""
    for extra in (["--pseudo-form", "flat"], ["--class-crop-prob", "0.9"], ["--all-precise"]):
        out = tmp_path / extra[0].strip("-")
        args = ["train", "--data", str(synth), "--out", str(out), "--preset", "tiny", *extra]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, res.output
        assert f"error: {extra[0]}: {synth} has no new class" in " ".join(res.output.split())
        assert not out.exists()
    # a form that is none is named by its option first (it said "pseudo_form must be ...")
    res = CliRunner().invoke(app, ["train", "--data", str(synth), "--pseudo-form", "bogus"])
    assert res.exit_code == 2
    assert "error: --pseudo-form bogus: not one of origin, reversed, flat, precise" in res.output


def test_last_validation_prints_undefined_scores_as_n_a(capsys):
    # a subset whose class has no boundary anywhere has BIoU null: printed "n/a", never "0.00"
    from trainer.cli import _print_val

    _print_val(
        {
            "mIoU": 61.234, "mBIoU": 40.5, "mBF1": 0.71234,
            "classes": [{"name": "Car", "vs": "pseudo labels", "iou": 80.0, "biou": None,
                         "bf1": 0.5}],
            "subsets": [{"class": "Bicycle", "images": 1, "iou": 42.0, "biou": None,
                         "bf1": None}],
        }
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "Car vs pseudo labels: IoU 80.00  BIoU n/a  BF1 0.5000" in out
    assert "Bicycle vs annotated subset (1 image): IoU 42.00  BIoU n/a  BF1 n/a" in out
    # images left out of the scores (unreadable) are said beside them
    _print_val(
        {
            "mIoU": 61.234, "mBIoU": 40.5, "mBF1": 0.71234, "skipped": ["a.jpg: cannot decode"],
            "subsets": [{"class": "Bicycle", "images": 2, "iou": 42.0, "biou": 30.0,
                         "bf1": 0.5, "skipped": ["b.jpg: cannot decode", "c.png: no file"]}],
        }
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "val: mIoU 61.23  mBIoU 40.50  mBF1 0.7123  (1 unreadable left out)" in out
    assert "Bicycle vs annotated subset (2 images, 2 unreadable left out): IoU 42.00" in out
    # --val-split none with --val-subset: the subsets alone; it said "val: nothing to score"
    # before the subset's scores
    _print_val({"subsets": [{"class": "Bicycle", "images": 2, "iou": 42.0, "biou": 30.0,
                             "bf1": 0.5}]})  # fmt: skip
    out = capsys.readouterr().out
    assert "nothing to score" not in out and "Bicycle vs annotated subset (2 images)" in out
    # a val split without a new class's pixel (nor a prediction of it): said, where it printed
    # nothing for the class, as if it had not been validated
    _print_val({"mIoU": 9.4, "mBIoU": 5.8, "mBF1": 0.0,
                "classes": [{"name": "Bicycle", "vs": "pseudo labels", "iou": None, "biou": None,
                             "bf1": None}]})  # fmt: skip
    out = " ".join(capsys.readouterr().out.split())
    assert "Bicycle vs pseudo labels: n/a (no Bicycle pixel in the validation labels nor" in out


def test_train_says_how_many_images_it_could_not_read(synth, tmp_path, monkeypatch):
    import trainer.train

    run = tmp_path / "run"

    def trained(cfg, on_init=None, from_file=None, notes=()):
        run.mkdir()
        records = [{"problem": f"im{i}.png: cannot decode image"} for i in range(2)]
        (run / "skipped.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return trainer.train.TrainResult(out=run, step=3, last_checkpoint=run / "last.pt")

    monkeypatch.setattr(trainer.train, "train", trained)
    res = CliRunner().invoke(app, ["train", "--data", str(synth), "--out", str(run)])
    assert res.exit_code == 0, res.output
    assert f"2 unreadable images left out (listed in {run}/skipped.jsonl)" in " ".join(
        res.output.split()
    )


def test_a_finished_run_resumed_says_so(synth, tmp_path, monkeypatch):
    """Not "trained 5 steps; checkpoint None", as a resume of a finished run printed."""
    import trainer.train

    run = tmp_path / "run"

    def finished(cfg, on_init=None, from_file=None, notes=()):
        return trainer.train.TrainResult(out=run, step=5, finished=True)

    monkeypatch.setattr(trainer.train, "train", finished)
    res = CliRunner().invoke(app, ["train", "--data", str(synth), "--out", str(run), "--resume"])
    assert res.exit_code == 0, res.output
    assert " ".join(res.output.split()) == (
        f"{run}: the run finished at step 5; nothing to do (a larger --iters extends it)"
    )


def test_a_resume_without_iters_continues_to_the_run_s_plan(synth, tmp_path, monkeypatch):
    """``engine train --out RUN --resume`` of a 150-step run (the quick start's) continues to
    150, the plan its config.json records; before, it took the default 80,000 and trained on.
    ``--iters`` or the config file's ``iters`` still set another length."""
    import trainer.train

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": {"iters": 150}, "config_hash": "x"}))
    seen = []

    def record(cfg, on_init=None, from_file=None, notes=()):
        seen.append(cfg.iters)
        return trainer.train.TrainResult(out=run, step=150, finished=True)

    monkeypatch.setattr(trainer.train, "train", record)
    base = ["train", "--data", str(synth), "--out", str(run), "--no-progress"]
    (tmp_path / "c.yaml").write_text("iters: 300\n")
    for extra in (
        ["--resume"],
        ["--resume", "--iters", "200"],
        ["--resume", "--config", str(tmp_path / "c.yaml")],
        [],
    ):
        res = CliRunner().invoke(app, [*base, *extra])
        assert res.exit_code == 0, res.output
    assert seen == [150, 200, 300, 80_000]  # a fresh run keeps the default
    res = CliRunner().invoke(app, ["train", "--out", str(run)])  # --data: only a resume's
    assert res.exit_code == 2 and " ".join(res.output.split()) == (
        "error: --data is required: the dataset root or spec to train on"
    )
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "typo"), "--resume"])
    assert res.exit_code == 2 and " ".join(res.output.split()) == (
        "error: --data is required: the dataset root or spec to train on (no "
        f"{tmp_path / 'typo' / 'config.json'}: is --out the run?)"
    )
    (run / "config.json").write_text(json.dumps({"iters": 150}))  # not what train writes
    res = CliRunner().invoke(app, [*base, "--resume"])
    assert res.exit_code == 2 and " ".join(res.output.split()) == (
        f"error: {run / 'config.json'}: no 'config' mapping; resume with --config FILE"
    )


def test_a_resume_finds_its_dataset_from_another_folder_or_names_the_record(
    synth, tmp_path, monkeypatch
):
    """config.json keeps --data and --out as typed, relative to where the run started: a
    resume from another working directory, or of a project folder moved or mounted elsewhere,
    finds the dataset where it was beside the run. Before, it stopped with "../data: dataset
    root not found", naming neither the record nor --data; a dataset gone says both now."""
    import shutil
    from pathlib import Path

    import trainer.train

    project = tmp_path / "old é"
    shutil.copytree(synth, project / "data 中")
    run = project / "runs" / "x 'y'"
    run.mkdir(parents=True)
    (project / "subset").mkdir()
    config = {"iters": 5, "data": "../data 中/", "out": "../runs/x 'y'/"}  # typed from old é/cwd
    config["val_subsets"] = ["../subset"]
    (run / "config.json").write_text(json.dumps({"config": config, "config_hash": "x"}))
    moved = tmp_path / "mounted" / "new é"
    moved.parent.mkdir()
    project.rename(moved)
    seen = []

    def record(cfg, on_init=None, from_file=None, notes=()):
        seen.append(Path(cfg.data).resolve())
        seen.extend(Path(s).resolve() for s in cfg.val_subsets)
        return trainer.train.TrainResult(out=Path(cfg.out), step=5, finished=True)

    monkeypatch.setattr(trainer.train, "train", record)
    monkeypatch.chdir(moved.parent)
    args = ["train", "--out", "new é/runs/x 'y'", "--resume", "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert seen == [moved / "data 中", moved / "subset"]
    shutil.rmtree(moved / "data 中")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and " ".join(res.output.split()) == (
        "error: new é/runs/x 'y'/config.json: the run's dataset ../data 中 is not found, from "
        "here nor beside the run where it was (moved?); give its root or spec with --data"
    )


def test_a_resume_from_another_folder_reads_the_data_of_the_folder_the_run_was_started_in(
    synth, tmp_path, monkeypatch
):
    """config.json holds ``data`` as typed (``data``), relative to the folder the run (or its
    last resume) ran in, which environment.json (resumes.jsonl) records. A resume from another
    folder that has a ``data`` of its own trained on that one (with two warnings of changed
    files); it reads the run's, and records it absolute."""
    import shutil
    from pathlib import Path

    import trainer.train

    project, other, elsewhere = tmp_path / "project", tmp_path / "other", tmp_path / "elsewhere"
    for folder in (project, other, elsewhere):
        shutil.copytree(synth, folder / "data")
    run = project / "runs" / "x"
    run.mkdir(parents=True)
    config = {"iters": 5, "data": "data", "out": "runs/x"}  # typed in project/
    (run / "config.json").write_text(json.dumps({"config": config, "config_hash": "x"}))
    (run / "environment.json").write_text(json.dumps({"cwd": str(project)}))
    seen = []

    def record(cfg, on_init=None, from_file=None, notes=()):
        seen.append(cfg.data)
        return trainer.train.TrainResult(out=Path(cfg.out), step=5, finished=True)

    monkeypatch.setattr(trainer.train, "train", record)
    monkeypatch.chdir(elsewhere)
    args = ["train", "--out", str(run), "--resume", "--no-progress"]
    assert CliRunner().invoke(app, args).exit_code == 0
    # resumed since from other/ with --data data: its own, not environment.json's folder's
    config = {"iters": 5, "data": "data", "out": "../project/runs/x"}
    (run / "config.json").write_text(json.dumps({"config": config, "config_hash": "x"}))
    resumed = {"step": 2, "environment": {"cwd": str(other)}}
    (run / "resumes.jsonl").write_text(json.dumps(resumed) + "\n")
    assert CliRunner().invoke(app, args).exit_code == 0
    assert seen == [str(project / "data"), str(other / "data")]


def test_a_resumed_run_copied_or_moved_with_its_project_reads_the_copys_data(
    synth, tmp_path, monkeypatch
):
    """After one resume, config.json holds the dataset absolute (as the resume found it) beside
    ``out`` typed relative from the recorded cwd. A project copied with ``cp -r`` (the original
    kept) and resumed from the copy read the original's dataset, silently; one moved could not
    be resumed ("dataset not found"): the run's place beside its root is read from the recorded
    cwd, as for a root typed relative."""
    import shutil
    from pathlib import Path

    import trainer.train

    project = tmp_path / "project"
    shutil.copytree(synth, project / "data")
    run = project / "runs" / "x"
    run.mkdir(parents=True)
    config = {"iters": 5, "data": str(project / "data"), "out": "runs/x"}  # after a resume
    (run / "config.json").write_text(json.dumps({"config": config, "config_hash": "x"}))
    resumed = {"step": 2, "environment": {"cwd": str(project)}}
    (run / "resumes.jsonl").write_text(json.dumps(resumed) + "\n")
    seen = []

    def record(cfg, on_init=None, from_file=None, notes=()):
        seen.append(Path(cfg.data))
        return trainer.train.TrainResult(out=Path(cfg.out), step=5, finished=True)

    monkeypatch.setattr(trainer.train, "train", record)
    monkeypatch.chdir(tmp_path)
    copy, moved = tmp_path / "copy", tmp_path / "moved"
    shutil.copytree(project, copy)
    args = ["train", "--out", "copy/runs/x", "--resume", "--no-progress"]
    assert CliRunner().invoke(app, args).exit_code == 0
    project.rename(moved)
    args = ["train", "--out", "moved/runs/x", "--resume", "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert [p.resolve() for p in seen] == [copy / "data", moved / "data"]


def test_a_run_recorded_before_drawn_rule_resumes_by_the_window_rule(tmp_path):
    """A run whose config.json was written before ``loss.decoupling.drawn_rule`` existed (the
    fifty-fifth round) resumes without ``--config``: the nested key it lacks is read as its
    default, ``window``, the rule that run trained by; ``contact`` given is refused, named by
    its dotted key."""
    from trainer.config import TrainConfig, config_from, plain, recorded_settings
    from trainer.train import _check_resume_config

    run = tmp_path / "run"
    run.mkdir()
    saved = plain(TrainConfig(out=str(run)).to_dict())
    del saved["loss"]["decoupling"]["drawn_rule"]  # as a fifty-fourth-round run recorded it
    (run / "config.json").write_text(json.dumps({"config": saved}))
    settings, where = recorded_settings(run)
    resumed = config_from(settings, where, out=str(run))
    assert resumed.loss.decoupling.drawn_rule == "window"
    _check_resume_config(saved, resumed, run / "last.pt")  # not refused
    resumed.loss.decoupling.drawn_rule = "contact"
    with pytest.raises(ValueError) as e:
        _check_resume_config(saved, resumed, run / "last.pt")
    assert 'loss.decoupling.drawn_rule differs (recorded "window", given "contact")' in str(e.value)


def test_a_resume_reads_init_and_backbone_weights_from_the_folder_the_run_ran_in(
    tmp_path, monkeypatch
):
    """config.json holds ``init`` and ``backbone_weights`` as typed in the run's folder. A
    resume from elsewhere kept them so, and recorded its own cwd: the record named the other
    folder's files from then on; the same files given from here were refused (backbone weights
    as another string, the start checkpoint compared with the file of that name here). Now they
    are found from the recorded folder, recorded absolute, and compared by their bytes."""
    from trainer.config import TrainConfig, plain, recorded_settings
    from trainer.train import _check_resume_config

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    run = project / "runs" / "x"
    run.mkdir(parents=True)
    elsewhere.mkdir()
    for folder, body in ((project, b"the run's "), (elsewhere, b"another ")):
        (folder / "r18.pth").write_bytes(body + b"weights")
        (folder / "init.pt").write_bytes(body + b"start")
    saved = plain(TrainConfig(out="runs/x", init="init.pt", backbone_weights="r18.pth").to_dict())
    (run / "config.json").write_text(json.dumps({"config": saved}))
    (run / "environment.json").write_text(json.dumps({"cwd": str(project)}))
    monkeypatch.chdir(elsewhere)
    settings, _ = recorded_settings(run)
    assert (settings["init"], settings["backbone_weights"]) == (
        str(project / "init.pt"),
        str(project / "r18.pth"),
    )
    given = TrainConfig(out=str(run), init=str(project / "init.pt"))
    for weights in (settings["backbone_weights"], "../project/r18.pth"):  # the same file
        same = dataclasses.replace(given, backbone_weights=weights)
        _check_resume_config(saved, same, run / "last.pt")
    other = dataclasses.replace(given, backbone_weights=str(elsewhere / "r18.pth"))
    with pytest.raises(ValueError) as e:  # other bytes: refused as before
        _check_resume_config(saved, other, run / "last.pt")
    assert str(e.value) == (  # where "r18.pth" is: not the ./r18.pth of the folder given from
        f"{run / 'last.pt'}: the checkpoint was trained with another config: backbone_weights "
        f'differs (recorded "r18.pth" ({project / "r18.pth"}), given '
        f'"{elsewhere / "r18.pth"}"); resume with the recorded settings or start a new --out'
    )
    # gone: where it was typed, absolute (a resume builds from last.pt), and accepted so. Kept
    # "r18.pth", the resume recorded its cwd (elsewhere) and the next found elsewhere's file
    (project / "r18.pth").unlink()
    settings = recorded_settings(run)[0]
    gone = str(project / "r18.pth")
    assert (settings["init"], settings["backbone_weights"]) == (str(project / "init.pt"), gone)
    _check_resume_config(saved, dataclasses.replace(given, backbone_weights=gone), run / "last.pt")
    with pytest.raises(ValueError) as e:  # not the file that was there: refused
        _check_resume_config(saved, other, run / "last.pt")
    assert f'differs (recorded "r18.pth" ({gone}, not found), given "{elsewhere / "r18.pth"}")' in (
        str(e.value)
    )
    resumed = {**saved, "backbone_weights": gone, "init": str(project / "init.pt")}
    (run / "config.json").write_text(json.dumps({"config": resumed}))
    (run / "resumes.jsonl").write_text(
        json.dumps({"step": 3, "environment": {"cwd": str(elsewhere)}})
    )
    assert recorded_settings(run)[0]["backbone_weights"] == gone  # not elsewhere's r18.pth
    (run / "config.json").write_text(json.dumps({"config": {**saved, "init": None}}))
    assert recorded_settings(run)[0]["init"] is None


def test_ctrl_c_says_how_to_continue(synth, tmp_path, monkeypatch):
    """Interrupted training: ``--resume`` continues from the last checkpoint when there is one."""
    import trainer.train

    run = tmp_path / "run"
    saved = {"last": False}

    def interrupted(cfg, on_init=None, from_file=None, notes=()):
        if saved["last"]:
            run.mkdir(exist_ok=True)
            (run / "last.pt").write_bytes(b"a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.train, "train", interrupted)
    args = ["train", "--data", str(synth), "--out", str(run), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 130
    assert " ".join(res.output.split()) == (
        "interrupted: no checkpoint was saved yet; run the same command again to start over"
    )
    saved["last"] = True
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 130
    assert (
        " ".join(res.output.split()) == f"interrupted: add --resume to continue from {run}/last.pt"
    )


def test_a_sigterm_says_the_step_resume_continues_from(synth, tmp_path, monkeypatch):
    """A scheduler's SIGTERM (engine.stopping): the run saved the step it stopped at, and says
    which; exit code 143, as a shell reports a process stopped by SIGTERM."""
    import trainer.train
    from engine import stopping

    run = tmp_path / "run"

    def terminated(cfg, on_init=None, from_file=None, notes=()):
        raise stopping.Terminated(1234, str(run / "last.pt"))

    monkeypatch.setattr(trainer.train, "train", terminated)
    monkeypatch.setattr(stopping._State, "received", True)
    args = ["train", "--data", str(synth), "--out", str(run), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 143
    assert " ".join(res.output.split()) == (
        f"interrupted (SIGTERM): add --resume to continue from {run}/last.pt (step 1,234)"
    )


def _long_run(synth, tmp_path, workers: str, processes: str, *more: str):  # noqa: ANN001, ANN202
    """``(RUN, engine train's arguments)`` of a run far longer than a test waits for (5,000
    steps, each logged, checkpoints 1,000 apart): a test stops it after a few steps."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("log_every: 1\ncheckpoint_every: 1000\nloss: {num_points: 256}\n")
    run = tmp_path / "run"
    args = ["train", "--data", str(synth), "--preset", "tiny", "--config", str(cfg),
            "--out", str(run), "--iters", "5000", "--batch-size", "4", "--crop", "64",
            "--device", "cpu", "--workers", workers, "--processes", processes,
            "--val-split", "none", *more]  # fmt: skip
    return run, args


def _resumes_one_more_step(run, step: int) -> None:  # noqa: ANN001
    """``engine train --out RUN --resume`` to ``step + 1`` goes on from the stopped ``step``."""
    import subprocess
    import sys
    from pathlib import Path

    res = subprocess.run(
        [sys.executable, "-m", "cli", "train", "--out", str(run), "--resume", "--iters",
         str(step + 1), "--workers", "0", "--processes", "1", "--no-progress"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"trained {step + 1:,} steps" in res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("processes, workers", [("1", "0"), ("2", "0")])
def test_a_scheduler_s_sigterm_to_a_real_training_saves_its_step(
    synth, tmp_path, processes, workers
):
    """SIGTERM to the whole process group, as SLURM, ``timeout`` or a container's stop send it:
    the training (with --processes 2 its ranks too) stops at the end of a step, saves it
    though checkpoints are 1,000 steps apart, says which step ``--resume`` continues from, and
    exits with 143; the resume continues. Before, every process died at once and the run had
    no checkpoint. (With loader workers the group's SIGTERM ends them mid-step: the run stops
    with the last checkpoint, as the docs say.)"""
    import re
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    run, args = _long_run(synth, tmp_path, workers, processes, "--no-progress")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        cwd=root,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    log = run / "metrics.jsonl"
    while proc.poll() is None and time.monotonic() < deadline:
        if log.is_file() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err.decode()
    said = re.fullmatch(
        rf"interrupted \(SIGTERM\): add --resume to continue from {run}/last.pt \(step (\d+)\)\n",
        err.decode(),
    )
    assert said, err.decode()
    step = int(said[1])
    assert torch.load(run / "last.pt", weights_only=True)["step"] == step
    _resumes_one_more_step(run, step)


@pytest.mark.slow
def test_a_dropped_ssh_session_saves_the_training_s_step(synth, tmp_path):
    """``engine train`` in an ssh session that drops, without ``nohup``: the terminal hangs up
    and the kernel sends SIGHUP. Before, the process died at once and the run had no checkpoint
    (every step since the last one lost). Now it stops as on a SIGTERM: at a step's end, saved
    in ``last.pt``, exit code 129, and ``--resume`` continues from that step."""
    from tests.test_cli import on_a_terminal_hung_up

    run, args = _long_run(synth, tmp_path, "0", "1")
    log = run / "metrics.jsonl"
    code, shown = on_a_terminal_hung_up(
        args, lambda: log.is_file() and len(log.read_text().splitlines()) >= 2, timeout=300
    )
    assert code == 129, shown[-500:].decode(errors="replace")
    step = torch.load(run / "last.pt", weights_only=True)["step"]
    assert step >= 2 and json.loads(log.read_text().splitlines()[-1])["step"] == step
    _resumes_one_more_step(run, step)


@pytest.mark.slow
def test_a_dropped_ssh_session_saves_the_step_of_ranks_with_loader_workers(synth, tmp_path):
    """The same with ``--processes 2 --workers 1`` (the CPU default's shape), SIGHUP sent to
    the whole process group as the session's shell sends it to its jobs. Before, the ranks'
    DataLoader workers died of it mid-step ("interrupted (SIGHUP), which also ended the data
    loader: no checkpoint was saved yet"), and so did multiprocessing's resource tracker
    ("resource_tracker: process died unexpectedly" and KeyError tracebacks on stderr). Now the
    workers and the tracker ignore it: the ranks stop at a step's end, saved in ``last.pt``,
    and stderr (a file here) has the one line."""
    from tests.test_cli import on_a_terminal_hung_up

    run, args = _long_run(synth, tmp_path, "1", "2", "--no-progress")
    log = run / "metrics.jsonl"

    def logged() -> list[int]:
        lines = log.read_text().splitlines() if log.is_file() else []
        return [json.loads(line)["step"] for line in lines if '"loss"' in line]

    with open(tmp_path / "err.txt", "wb") as err:
        code, shown = on_a_terminal_hung_up(
            args, lambda: len(logged()) >= 2, timeout=300, stderr=err, group=True
        )
    said = (tmp_path / "err.txt").read_text()
    assert code == 129, said + shown[-500:].decode(errors="replace")
    step = torch.load(run / "last.pt", weights_only=True)["step"]
    assert step >= 2 and logged()[-1] == step
    resume = f"add --resume to continue from {run / 'last.pt'} (step {step})"
    assert said == f"interrupted (SIGHUP): {resume}\n"


def test_a_loader_worker_or_rank_killed_says_how_to_resume(synth, tmp_path, monkeypatch):
    """A DataLoader worker or a --processes rank the kernel's out-of-memory killer (or
    ``kill -9``) ended: one line naming it and how it died, what to do and how to continue,
    exit code 71. Before, torch's "DataLoader worker (pid 12) is killed by signal: Killed."
    alone, exit code 2 (a bad input), no word of --resume."""
    import trainer.train
    from engine.parallel import WorkerDied

    run = tmp_path / "run"
    raised: list[BaseException] = []

    def killed(cfg, on_init=None, from_file=None, notes=()):
        raise raised[0]

    monkeypatch.setattr(trainer.train, "train", killed)
    args = ["train", "--data", str(synth), "--out", str(run), "--no-progress"]
    raised[:] = [RuntimeError("DataLoader worker (pid 12) is killed by signal: Killed. ")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 71, res.output
    assert " ".join(res.output.split()) == (
        "error: DataLoader worker (pid 12) is killed by signal: Killed (most likely the kernel's "
        "out-of-memory killer; dmesg names it); free memory or pass fewer --workers, then run "
        "the same command again to start over (no checkpoint was saved yet)"
    )
    run.mkdir()
    (run / "last.pt").write_bytes(b"a checkpoint")
    raised[:] = [WorkerDied("training process 1 (pid 13) died: killed by SIGSEGV", "--processes")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 71, res.output
    assert " ".join(res.output.split()) == (
        "error: training process 1 (pid 13) died: killed by SIGSEGV; free memory or pass fewer "
        f"--processes, then add --resume to continue from {run}/last.pt"
    )


def test_a_full_disk_stops_training_with_how_to_resume(synth, tmp_path, monkeypatch):
    import errno

    import trainer.train

    run = tmp_path / "run"

    def full(cfg, on_init=None, from_file=None, notes=()):
        run.mkdir(exist_ok=True)
        (run / "last.pt").write_bytes(b"a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device", str(run / "step_100.pt"))

    monkeypatch.setattr(trainer.train, "train", full)
    res = CliRunner().invoke(app, ["train", "--data", str(synth), "--out", str(run)])
    assert res.exit_code == 74
    assert " ".join(res.output.split()) == (
        f"error: {run}/step_100.pt: No space left on device; make room, then add --resume to "
        f"continue from {run}/last.pt"
    )
    # before its first checkpoint, on a read-only file system: said as one sentence (it was
    # "make room, then no checkpoint was saved yet; run the same command again to start over")
    (run / "last.pt").unlink()

    def read_only(cfg, on_init=None, from_file=None, notes=()):
        raise OSError(errno.EROFS, "Read-only file system", str(run / "metrics.jsonl"))

    monkeypatch.setattr(trainer.train, "train", read_only)
    res = CliRunner().invoke(app, ["train", "--data", str(synth), "--out", str(run)])
    assert res.exit_code == 74
    assert " ".join(res.output.split()) == (
        f"error: {run}/metrics.jsonl: Read-only file system; make the file system writable and "
        "run the same command again to start over (no checkpoint was saved yet)"
    )


def test_a_finished_run_whose_curves_the_full_disk_stopped_draws_them_on_resume(
    synth, tmp_path, monkeypatch
):
    """The disk filled as the run's end drew curves.png: the error advised --resume, which found
    the run finished and drew nothing, so the run never got its figure."""
    import errno

    import trainer.curves

    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    args = ["train", "--data", str(synth), "--preset", "tiny", "--out", str(run), "--iters", "1"]
    args += ["--batch-size", "2", "--crop", "64", "--device", "cpu", "--workers", "0"]
    args += ["--val-split", "none", "--no-progress"]

    def full(metrics, out):
        raise OSError(errno.ENOSPC, "No space left on device", str(out))

    with monkeypatch.context() as m:
        m.setattr(trainer.curves, "plot_curves", full)
        res = CliRunner().invoke(app, args)
    assert res.exit_code == 74 and "add --resume" in res.output, res.output
    assert not (run / "curves.png").exists()
    # killed or out of disk as it drew them: finished, and engine info names the missing figure
    # and the command that draws it (before, "1 of 1 (finished)" alone)
    res = CliRunner().invoke(app, ["info", str(run)], env={"COLUMNS": "250"})
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "step │ 1 of 1 (finished)" in text, res.output
    assert (
        "curves │ no curves.png (stopped as the run's end drew it, or no matplotlib then): "
        f"engine train --out {run} --resume draws it" in text
    ), res.output
    resume = ["train", "--out", str(run), "--resume", "--workers", "0", "--no-progress"]
    res = CliRunner().invoke(app, resume)
    assert res.exit_code == 0, res.output
    assert " ".join(res.output.split()) == (
        f"{run}: the run finished at step 1; drew its missing curves.png, nothing else to do "
        "(a larger --iters extends it)"
    )
    assert (run / "curves.png").is_file()
    res = CliRunner().invoke(app, ["info", str(run)], env={"COLUMNS": "250"})
    assert res.exit_code == 0 and "curves │" not in res.output, res.output
    res = CliRunner().invoke(app, resume)  # drawn: nothing to do again
    assert "finished at step 1; nothing to do" in " ".join(res.output.split())


def test_validating_far_above_the_images_size_is_warned(synth):
    """The 4096x3072 default enlarges small images 32x: one line naming the first image, the
    factor and the --val-size that validates at their own scale; 2x or more warns, less not."""
    from engine.datasets import SegDataset, load_spec
    from trainer.train import validation_upscale

    val = SegDataset(load_spec(synth), "val")
    text = validation_upscale(val, (4096, 3072))
    assert text.startswith(f"{val.samples[0].image_path}: ") and "\n" not in text
    assert "128x96 images of split 'val' to 4096x3072 (32.0x" in text
    assert "pass --val-size 128x96" in text
    assert "(2.0x" in validation_upscale(val, (256, 192))
    assert validation_upscale(val, (200, 150)) is None
    assert validation_upscale(val, None) is None


def test_a_val_size_too_small_for_the_model_is_refused_before_the_first_step(synth, tmp_path):
    """--val-size 12x9 trained every step, then failed at the validation without naming the
    option, leaving a last.pt that engine info read as a finished run."""
    run = tmp_path / "run"
    args = ["train", "--data", str(synth), "--preset", "tiny", "--out", str(run), "--iters", "2"]
    args += ["--batch-size", "2", "--device", "cpu", "--workers", "0", "--no-progress"]
    res = CliRunner().invoke(app, [*args, "--val-size", "12x9"])
    assert res.exit_code == 2
    image = synth / "images" / "val" / "synth_val_0000.jpg"
    assert " ".join(res.output.split()) == (
        f"error: {image}: --val-size 12x9 resizes the 128x96 images of split 'val' to 12x9; "
        "the model needs at least 32 px per side: give a larger --val-size (--val-size "
        "128x96: their own size)"
    )
    assert not run.exists()
    # the short side decides: 40x30 keeps 128x96's aspect at 40x30
    res = CliRunner().invoke(app, [*args, "--val-size", "40x30"])
    assert res.exit_code == 2 and "to 40x30; the model needs at least 32" in res.output


def test_a_config_file_s_val_size_too_small_is_named_by_the_file(synth, tmp_path):
    """A config file's ``val_size: 12x9`` was refused as ``--val-size 12x9 resizes ...``, an
    option no one typed; it is named by the file and its key, as a file's crop and device are."""
    run = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text("val_size: 12x9\n")
    args = ["train", "--data", str(synth), "--preset", "tiny", "--out", str(run), "--iters", "2"]
    args += ["--batch-size", "2", "--device", "cpu", "--workers", "0", "--no-progress"]
    res = CliRunner().invoke(app, [*args, "--config", str(config)])
    assert res.exit_code == 2 and not run.exists()
    image = synth / "images" / "val" / "synth_val_0000.jpg"
    assert " ".join(res.output.split()) == (
        f"error: {config}: val_size 12x9: it resizes the 128x96 images of split 'val' ({image}) "
        "to 12x9; the model needs at least 32 px per side: set a larger one (128x96: their own "
        "size)"
    )
    res = CliRunner().invoke(app, [*args, "--config", str(config), "--val-size", "16x12"])
    assert res.exit_code == 2 and "--val-size 16x12 resizes" in res.output  # the option's
    # and by local processes, each of which checks it (before, they named --val-size)
    two = [*args[:9], "--batch-size", "4", "--processes", "2", *args[11:]]
    res = CliRunner().invoke(app, [*two, "--config", str(config)])
    assert res.exit_code == 2 and not run.exists(), res.output
    assert f"error: {config}: val_size 12x9: it resizes" in " ".join(res.output.split())


def test_a_crop_too_small_for_the_model_is_refused_before_any_file(synth, tmp_path):
    """A crop under 32 px (--crop allowed 8) failed at the first step with the model's "images
    must be at least 32x32", after config.yaml and environment.json were written."""
    run = tmp_path / "run"
    args = ["train", "--data", str(synth), "--preset", "tiny", "--out", str(run), "--iters", "1"]
    args += ["--batch-size", "2", "--device", "cpu", "--workers", "0", "--no-progress"]
    res = CliRunner().invoke(app, [*args, "--crop", "16"])
    assert res.exit_code == 2 and "--crop" in res.output and not run.exists()
    config = tmp_path / "c.yaml"
    config.write_text("augment: {crop: 16}\n")
    res = CliRunner().invoke(app, [*args, "--config", str(config)])
    assert res.exit_code == 2 and not run.exists()
    assert " ".join(res.output.split()) == (  # named by the file, where the value is
        f"error: {config}: augment.crop 16: the model needs at least 32 px per side; "
        "set it to 32 or more"
    )


def test_a_dataset_another_process_still_writes_is_refused_before_any_file(synth, tmp_path):
    """Training on a fused dataset engine fuse still writes read its labels so far (or, under
    --force, old and new ones mixed); a missing label said "unless it is running now" at best."""
    import os

    from engine.runlock import exclusive

    run = tmp_path / "run"
    args = ["train", "--data", str(synth), "--preset", "tiny", "--out", str(run), "--iters", "1"]
    with exclusive(synth, "engine fuse"):
        res = CliRunner().invoke(app, [*args, "--device", "cpu", "--no-progress"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and not run.exists()
    assert text.startswith(f"error: {synth}: engine fuse (pid {os.getpid()} on ")
    assert "engine train would read its labels half written: wait for it" in text


@pytest.fixture
def stopped_train(monkeypatch) -> list:
    """``trainer.train.train`` stopped before any work with ``ValueError("stopped")``: the
    list of the configs the command line resolved and passed to it."""
    import trainer.train

    seen: list = []

    def stop(cfg, **_):
        seen.append(cfg)
        raise ValueError("stopped")

    monkeypatch.setattr(trainer.train, "train", stop)
    return seen


def test_precedence_command_line_then_config_file_then_defaults(synth, tmp_path, stopped_train):
    """An option given wins over the config file even at its default value; one left out keeps
    the file's. ``progress: false`` in the file was always overridden by --progress's default,
    so a file could not turn the bar off."""
    seen = stopped_train
    config = tmp_path / "c.yaml"
    config.write_text("progress: false\nbatch_size: 4\niters: 7\nval_split: none\n")
    base = ["train", "--data", str(synth), "--config", str(config), "--out", str(tmp_path / "r")]
    for extra, want in [
        ([], (False, 4, 7)),
        (["--progress", "--batch-size", "16", "--iters", "80000"], (True, 16, 80000)),
        (["--no-progress"], (False, 4, 7)),
    ]:
        res = CliRunner().invoke(app, [*base, *extra])
        assert res.exit_code == 2 and "stopped" in res.output, res.output
        assert (seen[-1].progress, seen[-1].batch_size, seen[-1].iters) == want, extra
    res = CliRunner().invoke(app, [*base[:3], *base[5:], "--val-split", "none"])
    assert "stopped" in res.output and seen[-1].progress is True  # neither: the default


def test_a_resumed_runs_recorded_config_starts_a_new_run(synth, tmp_path, stopped_train):
    """A resumed run's config.yaml records ``resume: true``; given back with --config to
    reproduce the run (docs/trainer.md) it was refused: NEW/last.pt: checkpoint not found."""
    seen = stopped_train
    config = tmp_path / "config.yaml"
    config.write_text("iters: 3\nval_split: none\nresume: true\n")
    args = ["train", "--data", str(synth), "--config", str(config), "--out", str(tmp_path / "new")]
    res = CliRunner().invoke(app, args)
    assert "stopped" in res.output and seen[-1].resume is False, res.output
    res = CliRunner().invoke(app, [*args, "--resume"])  # --resume is still this call's to give
    assert seen[-1].resume is True


def test_a_time_sliced_run_s_recorded_config_reproduces_the_whole_run(synth, tmp_path):
    """``max_steps_this_run`` limits a call, not the run: recorded in config.yaml, the file fed
    back with --config to reproduce the run stopped where the first slice did, and the call
    said only "trained 1 step", as a whole run does."""
    import yaml

    config = tmp_path / "slice.yaml"
    config.write_text("max_steps_this_run: 1\nval_split: null\nloss: {num_points: 256}\n")
    run = tmp_path / "run"
    args = ["--preset", "tiny", "--iters", "2", "--batch-size", "2", "--crop", "64"]
    args += ["--device", "cpu", "--workers", "0", "--no-progress"]
    res = CliRunner().invoke(
        app, ["train", "--data", str(synth), "--config", str(config), "--out", str(run), *args]
    )
    assert res.exit_code == 0, res.output
    assert " ".join(res.output.split()) == (
        f"trained 1 step; checkpoint {run}/last.pt stopped at step 1 of 2 (max_steps_this_run "
        f"1): add --resume to continue from {run}/last.pt"
    )
    assert yaml.safe_load((run / "config.yaml").read_text())["max_steps_this_run"] == 0
    again = tmp_path / "again"
    res = CliRunner().invoke(
        app, ["train", "--config", str(run / "config.yaml"), "--out", str(again), *args[-3:]]
    )
    assert res.exit_code == 0, res.output
    assert "trained 2 steps" in res.output and "stopped" not in res.output


def test_images_under_the_model_s_32_px_are_pointed_to_a_val_size_it_takes(tmp_path):
    """24x20 images: the upscale warning said `pass --val-size 24x20`, and the refusal of that
    size offered nothing; both now name the smallest size the model takes at their aspect."""
    from engine.datasets import SegDataset, load_spec
    from trainer.inference import smallest_size
    from trainer.train import check_val_size, validation_upscale

    from ._train_stub import write_dataset

    val = SegDataset(load_spec(write_dataset(tmp_path, n=1, size=(24, 20), splits=("val",))), "val")
    assert "pass --val-size 39x32 to validate as near their scale as" in validation_upscale(
        val, (128, 96)
    )
    with pytest.raises(ValueError, match=r"\(--val-size 39x32: the smallest the model takes at"):
        check_val_size(val, (24, 20))
    check_val_size(val, (39, 32))  # taken
    assert smallest_size(20, 24) == (32, 39) and smallest_size(4000, 200) == (640, 32)


def test_a_full_dev_shm_is_one_line_naming_it_and_the_fix(synth, tmp_path, monkeypatch):
    """DataLoader workers pass batches through /dev/shm, 64 MB in a Docker container by default
    (a default 16 x 1024-pixel batch is 84 MB): the worker's allocation fails there. Before:
    torch's "unable to allocate shared memory(shm) ..." as a bad input (exit 2), naming neither
    /dev/shm nor what to do. The workers are forked: the patched allocation fails in them."""

    def full(cls, size):
        raise RuntimeError(
            "unable to allocate shared memory(shm) for file </torch_1_2_0>: "
            "No space left on device (28)"
        )

    monkeypatch.setattr(torch.UntypedStorage, "_new_using_fd_cpu", classmethod(full))
    args = ["train", "--data", str(synth), "--preset", "tiny", "--out", str(tmp_path / "run")]
    args += ["--iters", "1", "--batch-size", "2", "--crop", "64", "--device", "cpu"]
    args += ["--workers", "1", "--val-split", "none", "--no-progress"]
    res = CliRunner().invoke(app, args)
    text = " ".join(res.output.split())
    assert res.exit_code == 71, res.output
    assert text.startswith(
        "error: out of shared memory: unable to allocate shared memory(shm) for file "
        "</torch_1_2_0>: No space left on device (28); the data loader's worker processes pass "
        "batches through /dev/shm"
    )
    assert "--shm-size" in text and "--workers 0" in text and len(res.output.splitlines()) == 1


def test_a_rank_without_a_world_is_refused_before_the_run_folder(synth, tmp_path, monkeypatch):
    """``RANK=1`` exported by hand without ``WORLD_SIZE``: before, the rank was checked only
    with a world of several, so one process trained the whole run without its lock (not rank
    0: owns_run() False), printed nothing and exited 0."""
    for name in ("WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "1")
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--data", str(synth), "--out", str(run)])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        "error: environment variables RANK=1 and WORLD_SIZE=1 (unset): the rank must be below "
        "the world size"
    )
    assert not run.exists()


def test_rank_written_00_is_rank_0_and_reports(synth, tmp_path, monkeypatch):
    """The final report is rank 0's: ``RANK=00`` (read as 0 everywhere else) trained as rank 0
    and printed nothing, the CLI comparing the text with "0"."""
    import trainer.train

    run = tmp_path / "run"

    def trained(cfg, on_init=None, from_file=None, notes=()):
        return trainer.train.TrainResult(out=run, step=3, last_checkpoint=run / "last.pt")

    monkeypatch.setattr(trainer.train, "train", trained)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("RANK", "00")
    args = ["train", "--data", str(synth), "--out", str(run), "--iters", "3"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert " ".join(res.output.split()) == f"trained 3 steps; checkpoint {run}/last.pt"
