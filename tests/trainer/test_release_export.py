"""The way back to the release: an engine massformer_r50 checkpoint exported in the release's
format gives every tensor back both ways, loads as plain data, and names its classes."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import re
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from annotations.taxonomy import MASS13K
from cli import app
from tests.trainer.test_convert import TABLE, _write, release_state
from trainer.checkpoint import checkpoint_dict, load_checkpoint, save_checkpoint
from trainer.convert import KEY_RULES, Renumbered, convert_massformer
from trainer.models import build_model, preset_config
from trainer.release_export import _invert, export_massformer, release_key


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return release_state(seed=3)


def _engine_checkpoint(path: Path, preset: str, taxonomy=MASS13K, step: int = 7) -> Path:
    """An engine checkpoint of ``preset`` with random weights (BN statistics too)."""
    config = preset_config(preset, num_classes=taxonomy.num_classes)
    g = torch.Generator().manual_seed(5)
    model = {}
    with torch.device("meta"):  # names, shapes and dtypes only
        shapes = build_model(config).state_dict()
    for key, value in shapes.items():
        if value.is_floating_point():
            model[key] = torch.rand(value.shape, generator=g) + 0.5
        else:
            model[key] = torch.randint(0, 1000, value.shape, generator=g)
    ckpt = checkpoint_dict(step, model, dataclasses.asdict(config), taxonomy.to_dict())
    return save_checkpoint(path, ckpt)


def test_release_convert_export_gives_every_key_back(tmp_path: Path, state: dict) -> None:
    converted = convert_massformer(_write(tmp_path / "release.pth", state), tmp_path / "ours.pt")
    result = export_massformer(converted.out, tmp_path / "back.pth")
    assert (result.num_tensors, result.num_classes) == (660, 7)
    back = torch.load(result.out, map_location="cpu", weights_only=True)["state_dict"]
    table = json.loads(TABLE.read_text())
    assert set(back) == set(state)
    for key, value in state.items():
        assert str(back[key].dtype).removeprefix("torch.") == table["dtypes"][key], key
        assert back[key].dtype == value.dtype and back[key].shape == value.shape, key
        assert torch.equal(back[key], value), key


def test_engine_export_convert_gives_every_tensor_back(tmp_path: Path) -> None:
    taxonomy = MASS13K.with_new_class("Bicycle")  # K = 8: the release's head grows to 9 outputs
    src = _engine_checkpoint(tmp_path / "last.pt", "massformer_r50", taxonomy)
    result = export_massformer(src, tmp_path / "release.pth")
    file = torch.load(result.out, map_location="cpu", weights_only=True)
    assert file["state_dict"]["decode_head.cls_embed.weight"].shape == (9, 256)
    meta = file["meta"]
    assert meta["dataset_meta"]["classes"] == tuple(taxonomy.names) == meta["CLASSES"]
    assert meta["dataset_meta"]["palette"] == [list(c.color) for c in taxonomy] == meta["PALETTE"]
    assert meta["iter"] == 7 and meta["exported_from"]["step"] == 7
    again = convert_massformer(result.out, tmp_path / "again.pt", taxonomy=taxonomy)
    ours, theirs = load_checkpoint(src)["model"], load_checkpoint(again.out)["model"]
    assert set(ours) == set(theirs)
    for key, value in ours.items():
        assert theirs[key].dtype == value.dtype and torch.equal(theirs[key], value), key


def test_export_is_plain_data(tmp_path: Path, state: dict) -> None:
    """mmengine's loader is a plain torch.load: nothing of the engine may be pickled in."""
    converted = convert_massformer(_write(tmp_path / "release.pth", state), tmp_path / "ours.pt")
    out = export_massformer(converted.out, tmp_path / "back.pth").out
    torch.load(out, map_location="cpu", weights_only=True)  # torch's allowlist: plain data
    found = set()

    class Inert:  # stands in for every global: the whole pickle is walked, nothing runs
        def __init__(self, *args: object) -> None:
            pass

        def __setitem__(self, key: object, value: object) -> None:
            pass

        def __setstate__(self, state: object) -> None:
            pass

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            found.add(module)
            return Inert

        def persistent_load(self, pid: object) -> None:  # tensor storages: not read here
            return None

    with zipfile.ZipFile(out) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    Recorder(io.BytesIO(pkl)).load()
    assert found and all(m.split(".")[0] in ("torch", "collections") for m in found), found


def test_cli_to_release_names_the_config_lines(tmp_path: Path) -> None:
    src = _engine_checkpoint(tmp_path / "last.pt", "massformer_r50", MASS13K.with_new_class("Car"))
    out = tmp_path / "r.pth"
    r = CliRunner().invoke(app, ["convert-massformer", str(src), "--to-release", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "660 tensors, 8 classes" in r.output and "num_classes = 8" in r.output
    assert "'Car'" in r.output and out.is_file()
    # a rerun replaces its own earlier export; anything else is refused, untouched
    again = CliRunner().invoke(
        app, ["convert-massformer", str(src), "--to-release", "--out", str(out)]
    )
    assert again.exit_code == 0, again.output
    for other in (src, tmp_path):
        before = src.read_bytes()
        r = CliRunner().invoke(
            app, ["convert-massformer", str(src), "--to-release", "--out", str(other)]
        )
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert src.read_bytes() == before


def test_a_conversion_killed_writing_leaves_a_temporary_file_its_rerun_removes(
    tmp_path: Path,
) -> None:
    """``kill -9`` of ``engine convert-massformer --to-release`` as it put its written file in
    (crash-injection pass 58): the hidden ``.r.pth.*.tmp`` beside ``--out``, as big as the
    checkpoint, stayed after every rerun (no run folder's lock covers a folder of the user's).
    The rerun removes its own name's killed temporaries; another file's, and one being written
    (its lock held), stay."""
    import fcntl

    from tests.loop_helpers import KILLED_AT, run_killed

    src = _engine_checkpoint(tmp_path / "last.pt", "massformer_r50", MASS13K)
    out = tmp_path / "r.pth"
    args = ["convert-massformer", str(src), "--to-release", "--out", str(out)]
    run_killed(KILLED_AT, "r.pth", *args)
    (killed,) = tmp_path.glob(".r.pth.*.tmp")
    assert not out.exists() and killed.stat().st_size > 100_000_000
    other = tmp_path / ".r.pth.bak.0123abcd.tmp"  # r.pth.bak's, not r.pth's
    other.write_bytes(b"x")
    live = tmp_path / ".r.pth.live0000.tmp"  # a conversion writing it now
    live.write_bytes(b"y")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["last.pt", "r.pth", other.name, live.name]
    )
    assert set(torch.load(out, weights_only=True)) == {"state_dict", "meta"}


def test_other_presets_are_refused_in_one_line(tmp_path: Path) -> None:
    src = _engine_checkpoint(tmp_path / "tiny.pt", "tiny")
    out = tmp_path / "r.pth"
    r = CliRunner().invoke(app, ["convert-massformer", str(src), "--to-release", "--out", str(out)])
    assert r.exit_code == 2 and "not the massformer_r50 preset" in r.output, r.output
    assert "MaSSFormer-R50 only" in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_a_release_file_is_named_as_such(tmp_path: Path, state: dict) -> None:
    src = _write(tmp_path / "release.pth", state)
    out = tmp_path / "r.pth"
    r = CliRunner().invoke(app, ["convert-massformer", str(src), "--to-release", "--out", str(out)])
    assert r.exit_code == 2 and "already in the release's (mmseg) format" in r.output, r.output
    assert not out.exists()


def test_release_key_is_the_inverse_of_every_rule() -> None:
    table = json.loads(TABLE.read_text())
    with torch.device("meta"):
        target = build_model(preset_config("massformer_r50", num_classes=7)).state_dict()
    theirs = {release_key(k) for k in target}
    assert theirs == set(table["shapes"])


def test_renumbered_rules_are_inverted_from_key_rules() -> None:
    """The inverse of each renumbered KEY_RULES entry (trainer.convert.Renumbered) is derived,
    not restated: an index is numbered back, and one outside the release's range has no
    release key (the rule's range on our side). A rule added to a copy of KEY_RULES gets its
    inverse from _invert, as the module derives them; a function as a rule has none and is
    refused, naming its pattern."""
    added = [
        (r"head\.blocks\.([0-2])\.(conv|bn)\.(.+)", Renumbered(r"blocks.\1.\2.\3", 1, 2, True)),
        (r"head\.(up|down)\.([1-3])\.weight", Renumbered(r"sides.\1.\2.weight", 2, -1)),
    ]
    inverse = [_invert(p, r) for p, r in [*KEY_RULES, *added]][len(KEY_RULES) :]
    for (pattern, rule), (back, to_release), (release, ours) in zip(
        added,
        inverse,
        [("head.blocks.0.bn.running_mean", "blocks.2.bn.running_mean"),
         ("head.down.3.weight", "sides.down.2.weight")],
        strict=True,
    ):  # fmt: skip
        assert rule(re.fullmatch(pattern, release)) == ours
        assert to_release(back.fullmatch(ours)) == release
    assert inverse[0][0].fullmatch("blocks.3.bn.weight") is None  # 2 - i of 0..2 only
    assert inverse[1][0].fullmatch("sides.up.3.weight") is None  # i - 1 of 1..3 only
    with pytest.raises(TypeError, match=r"head\\\.x: give a renumbered rule as a Renumbered"):
        _invert(r"head\.x", lambda m: "x")
    assert release_key("pixel_decoder.se.0.bn.running_mean") == (
        "decode_head.pixel_decoder.pixel_decoder.SEB.3.mlp.0.mlp.1.running_mean"
    )
    assert release_key("pixel_decoder.memory_proj.0.conv.weight") == (
        "decode_head.pixel_decoder.pixel_decoder.out.1.conv.weight"
    )
    assert release_key("decoder.layers.8.norm3.bias") == (
        "decode_head.transformer_decoder.layers.8.norms.2.bias"
    )
    for outside in (
        "pixel_decoder.se.4.reduce.weight",
        "pixel_decoder.memory_proj.3.conv.weight",
        "decoder.layers.0.norm0.weight",
        "decoder.layers.0.norm4.weight",
    ):
        assert release_key(outside) is None, outside
