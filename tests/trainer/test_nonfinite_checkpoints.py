"""A checkpoint whose weights hold NaN or Inf is refused as it loads, one line naming the file
and the first tensor: before the forty-eighth round ``engine predict`` wrote a map of class 0
for every image from it and ``engine train --resume`` / ``--init`` ran until the first
non-finite loss."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from annotations.taxonomy import MASS13K
from cli import app
from tests.model_helpers import save_model
from tests.trainer.test_init import NINE, _nine_class_dataset
from trainer.checkpoint import load_checkpoint, model_from_checkpoint
from trainer.init import init_from_checkpoint
from trainer.models import create_model

KEY = "backbone.stem.1.running_mean"  # a buffer: load_state_dict takes it as it is


@pytest.fixture(scope="module")
def seven(tmp_path_factory):
    """A tiny 7-class model's checkpoint, and a copy with one NaN (``KEY``) and one Inf."""
    torch.manual_seed(0)
    model = create_model("tiny", 7)
    folder = tmp_path_factory.mktemp("ck")
    good = save_model(folder / "good.pt", model)
    state = model.state_dict()
    state[KEY].view(-1)[1] = float("nan")
    last = list(state)[-1]
    state[last].view(-1)[0] = float("inf")
    return good, save_model(folder / "bad.pt", model), last


def test_load_checkpoint_names_the_file_and_the_first_bad_tensor(seven):
    good, bad, last = seven
    assert load_checkpoint(good)["step"] == 0
    with pytest.raises(ValueError) as e:
        load_checkpoint(bad)
    assert str(e.value).startswith(
        f"{bad}: model tensor {KEY} holds NaN values (and 1 more tensor); "
    )
    assert "\n" not in str(e.value)
    ckpt = torch.load(bad, weights_only=True)
    with pytest.raises(ValueError, match=f"^checkpoint: model tensor {KEY} holds NaN"):
        model_from_checkpoint(ckpt)  # a loaded dict too (a library caller's)
    ckpt["model"] = {last: ckpt["model"][last]}
    with pytest.raises(ValueError, match=f"^checkpoint: model tensor {last} holds Inf values;"):
        init_from_checkpoint(create_model("tiny", 9), ckpt, NINE)


def test_predict_writes_nothing_from_a_non_finite_checkpoint(seven, tmp_path):
    _, bad, _ = seven
    images = tmp_path / "images"
    images.mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(images / "a.png")
    out = tmp_path / "pred"
    args = ["predict", "--checkpoint", str(bad), "--images", str(images), "--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--size", "96x64", "--device", "cpu"])
    assert res.exit_code == 2, res.output
    assert f"model tensor {KEY} holds NaN" in " ".join(res.output.split())
    assert not out.exists() or not any(out.iterdir())


def test_train_init_and_resume_refuse_a_non_finite_checkpoint(seven, tmp_path):
    from trainer.config import load_config
    from trainer.train import train

    good, bad, _ = seven
    spec = _nine_class_dataset(tmp_path)
    run = tmp_path / "run"
    cfg = load_config(
        None, data=str(spec), preset="tiny", out=str(run), iters=2, batch_size=2, device="cpu",
        num_workers=0, progress=False, init=str(bad), all_precise=True, val_split="",
        loss={"num_points": 64}, augment={"crop": 64}, max_steps_this_run=1,
    )  # fmt: skip
    with pytest.raises(ValueError, match=f"^{bad}: model tensor {KEY} holds NaN"):
        train(cfg)
    assert not (run / "last.pt").exists()
    cfg = dataclasses.replace(cfg, init=str(good))
    train(cfg)
    last = run / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["model"][KEY].fill_(float("-inf"))
    torch.save(ckpt, last)
    before = last.read_bytes()
    with pytest.raises(ValueError, match=f"^{last}: model tensor {KEY} holds Inf values;"):
        train(dataclasses.replace(cfg, resume=True))
    assert last.read_bytes() == before


def test_convert_refuses_a_non_finite_release_file(tmp_path):
    from tests.trainer.test_convert import release_state
    from trainer.convert import convert_massformer

    state = release_state(seed=1)
    key = "decode_head.cls_embed.weight"
    state[key][0, 0] = float("nan")
    src = tmp_path / "release.pth"
    torch.save({"state_dict": state, "meta": {}}, src)
    out = tmp_path / "ours.pt"
    with pytest.raises(ValueError, match=f"^{src}: model tensor {key} holds NaN values;"):
        convert_massformer(src, out, MASS13K)
    assert not out.exists()


def test_weights_whose_sum_overflows_are_finite():
    """The check sums each tensor; a sum can overflow where every value is finite (fp16's
    largest is 65504, float32's 3.4e38): those tensors are looked at value by value, not
    refused. And three bad tensors are "2 more tensors", one "1 more tensor"."""
    from trainer.finite import check_finite

    state = {
        "half": torch.full((10,), 60000.0, dtype=torch.float16),  # sums to inf in fp16
        "single": torch.full((4,), 3e38),  # sums to inf in float32
        "ids": torch.arange(3),  # not floating: not checked
    }
    assert not torch.isfinite(state["half"].sum()) and not torch.isfinite(state["single"].sum())
    check_finite(state, "ok.pt")
    for n, more in ((2, " (and 1 more tensor);"), (3, " (and 2 more tensors);")):
        bad = {f"w{i}": torch.tensor([float("nan")]) for i in range(n)}
        with pytest.raises(ValueError) as e:
            check_finite(bad, "bad.pt")
        assert str(e.value).startswith(f"bad.pt: model tensor w0 holds NaN values{more}")
