"""The release checkpoint converter: every key of the release's exact layout lands, and every
bad input is one clear error with nothing written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from annotations.taxonomy import MASS13K
from cli import app
from engine.runinfo import versions
from trainer.checkpoint import model_from_checkpoint
from trainer.convert import convert_massformer, map_release_key

TABLE = Path(__file__).parent / "data" / "massformer_r50_release_keys.json"


def release_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with exactly the release's names, shapes and dtypes, random values."""
    table = json.loads(TABLE.read_text())
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in table["shapes"].items():
        if table["dtypes"][key] == "int64":
            state[key] = torch.randint(0, 1000, shape, generator=g)
        elif key.endswith("running_var"):  # a variance: positive, so the model runs
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1
    return state


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return release_state()


def _write(path: Path, state: dict, **extra: object) -> Path:
    meta = {"mmseg_version": "1.2.2", "dataset_meta": {"classes": ["background", "person"]}}
    torch.save({"state_dict": state, "meta": meta, **extra}, path)
    return path


def test_table_is_the_releases() -> None:
    table = json.loads(TABLE.read_text())
    assert table["num_entries"] == len(table["shapes"]) == 660
    assert table["source"]["release_commit"] == "1afadb9"


def test_round_trip_every_tensor_lands(tmp_path: Path, state: dict) -> None:
    """Converted under a caller's float64 default dtype, too: the tensors written are the
    release's dtypes, and the caller's default is back (before, a float64 checkpoint of 287 MiB,
    not 143)."""
    src = _write(tmp_path / "release.pth", state)
    torch.set_default_dtype(torch.float64)
    try:
        result = convert_massformer(src, tmp_path / "ours.pt")
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
    written = torch.load(result.out, weights_only=True)["model"]
    assert {k: v.dtype for k, v in written.items()} == {
        map_release_key(k): v.dtype for k, v in state.items()
    }
    assert (result.num_tensors, result.num_parameters, result.num_classes) == (660, 37578176, 7)
    model, taxonomy, ckpt = model_from_checkpoint(result.out)
    assert taxonomy.names == MASS13K.names
    assert ckpt["converted_from"]["meta"]["mmseg_version"] == "1.2.2"
    # which release file, not only the path as typed (forty-second round)
    made = ckpt["converted_from"]
    assert made["path_resolved"] == str(src.resolve()) and made["bytes"] == src.stat().st_size
    assert made["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert made["versions"]["git_commit"] == versions()["git_commit"]
    ours = model.state_dict()
    landed = {map_release_key(k) for k in state}
    assert landed == set(ours)  # a bijection: 660 distinct targets
    for key, value in state.items():
        assert torch.equal(ours[map_release_key(key)], value), key


@pytest.mark.parametrize(
    ("key", "ours"),
    [
        # the release's SEB[0] re-weights the 1/32 map (our level 3); out[1..3] are D4, D3, D2
        ("decode_head.pixel_decoder.pixel_decoder.SEB.0.mlp.0.mlp.0.weight", "se.3.reduce"),
        ("decode_head.pixel_decoder.pixel_decoder.SEB.3.mlp.0.mlp.3.weight", "se.0.expand"),
        ("decode_head.pixel_decoder.pixel_decoder.out.0.conv.weight", "mask_proj.conv"),
        ("decode_head.pixel_decoder.pixel_decoder.out.1.bn.bias", "memory_proj.0.bn"),
        ("decode_head.pixel_decoder.pixel_decoder.CST.dcn1.dcn_offset.bias", "cst.dcn_in.dcn"),
        ("decode_head.pixel_decoder.pixel_decoder.LSE.conv2.weight", "lse.gate_dcn.weight"),
        ("decode_head.transformer_decoder.layers.5.norms.2.bias", "layers.5.norm3.bias"),
        ("decode_head.transformer_decoder.layers.0.ffn.layers.1.weight", "layers.0.ffn.2."),
        ("backbone.bn1.num_batches_tracked", "backbone.stem.1.num_batches_tracked"),
    ],
)
def test_key_mapping_examples(key: str, ours: str) -> None:
    assert ours in map_release_key(key)


def _convert_error(tmp_path: Path, src: Path, match: str) -> None:
    out = tmp_path / "out.pt"
    with pytest.raises(ValueError, match=match):
        convert_massformer(src, out)
    assert not out.exists() and not list(tmp_path.glob(".out.pt.*"))  # nothing written


def test_unknown_key(tmp_path: Path, state: dict) -> None:
    bad = {**state, "decode_head.conv_seg.weight": torch.zeros(3)}
    src = _write(tmp_path / "r.pth", bad)
    _convert_error(tmp_path, src, r"r\.pth: .*1 unknown keys: decode_head\.conv_seg\.weight")


def test_missing_key(tmp_path: Path, state: dict) -> None:
    key = "decode_head.pixel_decoder.pixel_decoder.RFB.bn2.running_var"
    src = _write(tmp_path / "r.pth", {k: v for k, v in state.items() if k != key})
    _convert_error(tmp_path, src, r"1 missing keys: pixel_decoder\.rfb\.up_bn\.running_var")


def test_shape_mismatch(tmp_path: Path, state: dict) -> None:
    key = "decode_head.transformer_decoder.layers.2.ffn.layers.0.0.weight"
    src = _write(tmp_path / "r.pth", {**state, key: torch.zeros(1024, 256)})
    _convert_error(tmp_path, src, r"1 shape mismatches: .*layers\.0\.0\.weight \(1024, 256\)")


def test_truncated_file(tmp_path: Path, state: dict) -> None:
    src = _write(tmp_path / "r.pth", state)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    _convert_error(tmp_path, src, r"r\.pth: not a readable PyTorch checkpoint")


def test_not_a_torch_file(tmp_path: Path) -> None:
    src = tmp_path / "notes.pth"
    src.write_text("this is not a checkpoint\n")
    _convert_error(tmp_path, src, r"notes\.pth: not a readable PyTorch checkpoint")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        convert_massformer(tmp_path / "nope.pth", tmp_path / "out.pt")


def test_out_is_never_a_training_checkpoint_or_the_source(tmp_path: Path) -> None:
    """--out replaced whatever it named: a training run's last.pt (the trained model lost) or
    the release file given as both; now refused before the release is read, nothing touched.
    A folder says which file to give; an earlier conversion is still replaced (a rerun)."""
    from trainer.convert import check_convert_out

    src = tmp_path / "release.pth"
    src.write_bytes(b"release bytes")  # never read: the check comes first
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": 1, "step": 1000, "model": {}}, run / "last.pt")
    trained = (run / "last.pt").read_bytes()
    for out, match in (
        (run / "last.pt", r"last\.pt: exists \(a training checkpoint at step 1000\); conv"),
        (src, r"release\.pth: exists \(the checkpoint being converted\)"),
        (run, r"run: a folder; give the checkpoint file to write, e\.g\. --out .*run/mass"),
    ):
        with pytest.raises(ValueError, match=match):
            convert_massformer(src, out)
    assert (run / "last.pt").read_bytes() == trained
    assert src.read_bytes() == b"release bytes"
    torch.save({"converted_from": {"path": "old.pth"}, "model": {}}, tmp_path / "ours.pt")
    check_convert_out(src, tmp_path / "ours.pt")  # an earlier conversion: replaced


def test_not_a_state_dict(tmp_path: Path) -> None:
    src = tmp_path / "r.pth"
    torch.save({"epoch": 3}, src)
    _convert_error(tmp_path, src, "no mmseg state dict")


def test_class_count_must_fit_the_taxonomy(tmp_path: Path, state: dict) -> None:
    grown = dict(state)
    grown["decode_head.cls_embed.weight"] = torch.zeros(10, 256)
    grown["decode_head.cls_embed.bias"] = torch.zeros(10)
    _convert_error(tmp_path, _write(tmp_path / "r.pth", grown), "class head has 9 classes")


class ForeignLoggerState:
    """Stands in for mmengine's objects in a training checkpoint (``message_hub``)."""

    def __init__(self) -> None:
        self.scalars = [1.0, 2.0]  # non-empty state: unpickling it calls __setstate__

    def __setstate__(self, state: object) -> None:
        raise AssertionError("foreign code must not run while reading a checkpoint")


def test_training_checkpoint_with_foreign_objects(tmp_path: Path, state: dict) -> None:
    hub = {"log": ForeignLoggerState(), "lr": np.float64(3e-4), "loss": np.zeros(3)}
    src = _write(tmp_path / "iter.pth", state, message_hub=hub)
    with pytest.raises(Exception, match="weights_only"):  # what the stub reader is for
        torch.load(src, weights_only=True)
    result = convert_massformer(src, tmp_path / "ours.pt")
    assert result.num_tensors == 660


def test_predict_names_an_unconverted_release_checkpoint(tmp_path: Path, state: dict) -> None:
    """engine predict --checkpoint iter_80000.pth (the release, not converted) said "not an
    engine training checkpoint (missing [...])", or, holding mmengine objects, "not a readable
    PyTorch checkpoint"; now the line engine train --init gives: convert it first."""
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((40, 60, 3), np.uint8))
    hub = {"log": ForeignLoggerState()}
    for src in (_write(tmp_path / "r.pth", state), _write(tmp_path / "i.pth", state, h=hub)):
        args = ["predict", "--checkpoint", str(src), "--images", str(images)]
        res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "pred")])
        assert res.exit_code == 2, res.output
        assert f"{src.name}: an mmseg checkpoint (the release's format); convert it first: " in (
            res.output.replace("\n", "")
        )
        assert not (tmp_path / "pred").exists()


def test_every_checkpoint_loader_names_an_unconverted_release_checkpoint(
    tmp_path: Path, state: dict
) -> None:
    """Only predict and --init said "convert it first" (through a wrapper each had to call);
    the demo's --init FILE and a resume listed the keys an engine checkpoint lacks. Now
    trainer.checkpoint.load_checkpoint, which they all read through, names it."""
    from trainer.checkpoint import load_checkpoint

    hub = {"log": ForeignLoggerState()}
    for src in (_write(tmp_path / "r.pth", state), _write(tmp_path / "i.pth", state, h=hub)):
        with pytest.raises(ValueError, match=r"an mmseg checkpoint \(the release's format\)"):
            load_checkpoint(src)
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pt")  # anything else: as before
    with pytest.raises(ValueError, match=r"not an engine training checkpoint \(missing"):
        load_checkpoint(tmp_path / "other.pt")
    run = tmp_path / "run"
    run.mkdir()
    _write(run / "last.pt", state)  # a resume of a folder holding the release's file
    res = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--out", str(run), "--resume"])
    assert res.exit_code == 2 and "convert it first: engine convert-massformer" in res.output


def _cli_convert(tmp_path: Path, state: dict) -> Path:
    src = _write(tmp_path / "release.pth", state)
    out = tmp_path / "ours.pt"
    res = CliRunner().invoke(app, ["convert-massformer", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "660 tensors, 37,578,176 parameters, 7 classes" in res.output
    return out


def test_cli_convert(tmp_path: Path, state: dict) -> None:
    assert _cli_convert(tmp_path, state).is_file()


@pytest.mark.slow
def test_cli_convert_then_predict_full(tmp_path: Path, state: dict) -> None:
    """The converted release model labels an image with the release's procedure (~60 s on the
    2-core box: a ResNet-50 MaSSFormer on CPU)."""
    out = _cli_convert(tmp_path, state)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(images / "a.png"), rng.integers(0, 256, (200, 300, 3), dtype=np.uint8))
    args = ["predict", "--checkpoint", str(out), "--images", str(images), "--size", "256x256"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "pred"), "--mode", "full"])
    assert res.exit_code == 0, res.output
    label = cv2.imread(str(tmp_path / "pred" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert label.shape == (200, 300) and label.max() < 7


def test_cli_predict_rejects_unknown_mode(tmp_path: Path) -> None:
    args = [
        "predict",
        "--checkpoint",
        "x.pt",
        "--images",
        str(tmp_path),
        "--out",
        str(tmp_path / "p"),
    ]
    res = CliRunner().invoke(app, [*args, "--mode", "fast"])
    assert res.exit_code == 2 and "unknown inference mode 'fast'" in res.output


def test_cli_convert_errors_exit_2_one_line(tmp_path: Path, state: dict) -> None:
    src = _write(tmp_path / "release.pth", state)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 3])
    out = tmp_path / "ours.pt"
    res = CliRunner().invoke(app, ["convert-massformer", str(src), "--out", str(out)])
    assert res.exit_code == 2
    assert "not a readable PyTorch checkpoint" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not out.exists()
