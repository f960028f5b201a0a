"""An option of one name means and takes the same thing in every command: what a user learnt in
one command (``--split val,test``) works in the next, or is refused with a line saying what
that command takes and why."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import cli

runner = CliRunner()


def _options(name: str) -> list[tuple[str, object]]:
    """(command path, option) for every command's option ``name``, sub-commands included."""
    found: list[tuple[str, object]] = []

    def walk(cmd: object, path: str) -> None:
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {sub_name}".strip())
        for p in getattr(cmd, "params", []):
            if name in getattr(p, "opts", []):
                found.append((path, p))

    walk(typer.main.get_command(cli.app), "")
    return found


def test_every_split_option_is_repeatable_and_takes_commas():
    """engine label --split val --split test labelled test only (the second replaced the first)
    where info, review and fuse took both; predict and annotate did the same silently."""
    options = _options("--split")
    assert len(options) >= 8
    for command, option in options:
        assert option.multiple, f"engine {command} --split is not repeatable"


@pytest.mark.parametrize("split", [["--split", "val,test"], ["--split", "val", "--split", "test"]])
@pytest.mark.parametrize(
    "command", ["predict", "annotate pick", "annotate import", "annotate export"]
)
def test_a_command_taking_one_split_says_so_for_two(tmp_path: Path, command: str, split):
    """engine predict --split val,test said "split 'val,test' not found"; --split val --split
    test predicted test alone, without a word."""
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    args = {
        "predict": ["predict", "--checkpoint", str(ckpt), "--data", str(tmp_path)],
        "annotate pick": ["annotate", "pick", str(tmp_path)],
        "annotate import": ["annotate", "import", str(ckpt), "--class", "Car", "--data",
                            str(tmp_path)],
        "annotate export": ["annotate", "export", str(tmp_path)],
    }[command]  # fmt: skip
    res = runner.invoke(cli.app, [*args, "--out", str(tmp_path / "out"), *split])
    assert res.exit_code == 2, res.output
    assert f"--split val,test: engine {command} takes one split" in " ".join(res.output.split())
    assert not (tmp_path / "out").exists()


def test_label_takes_both_of_two_split_options(monkeypatch):
    import labeler.cli_support

    seen = {}

    def build(**kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(labeler.cli_support, "build_label_config", build)
    args = ["label", "--class", "Car", "--data", "d", "--split", "val", "--split", "test,train"]
    res = runner.invoke(cli.app, args)
    assert res.exit_code == 2, res.output
    assert seen["split"] == "val,test,train"
