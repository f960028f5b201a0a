"""``engine train`` then ``engine predict`` end to end on a tiny synthetic dataset (CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
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


def test_train_then_predict_end_to_end(synth, tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("val_size: [128, 96]\nlog_every: 1\nloss: {num_points: 256}\n")
    run = tmp_path / "run"
    args = ["train", "--data", str(synth), "--preset", "tiny", "--config", str(cfg)]
    args += ["--out", str(run), "--iters", "3", "--batch-size", "2", "--crop", "64"]
    args += ["--device", "cpu", "--workers", "0", "--val-every", "0", "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "trained 3 steps" in text and "val: mIoU" in text
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3]
    assert "val" in lines[-1] and lines[-1]["val"]["images"] == 2
    for name in ("config.yaml", "config.json", "environment.json", "last.pt"):
        assert (run / name).is_file()

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
    for img in sorted((synth / "images" / "test").iterdir()):
        label = read_label(pred / f"{img.stem}.png")
        assert (label.shape[1], label.shape[0]) == image_size(img)
        assert int(label.max()) < 7 and label.dtype == np.uint8
        assert (pred / "color" / f"{img.stem}.png").is_file()
    # a second run skips what is done
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "2 already there" in " ".join(res.output.split())


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
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 1\n")
    res = CliRunner().invoke(app, ["train", "--data", str(synth), "--config", str(bad)])
    assert res.exit_code == 2 and "unknown keys ['learning_rate']" in " ".join(res.output.split())
