"""docs/trainer.md's table of config keys stays true to ``TrainConfig``: every key (nested ones
dotted), its default as ``config.yaml`` records it, and the ``engine train`` option that sets it.
Before, the keys were documented only as comments in trainer/config.py."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import typer
import yaml

from cli import app
from trainer.config import TrainConfig, plain

DOC = Path(__file__).resolve().parents[2] / "docs" / "trainer.md"


def _keys(cls: type, prefix: str = "") -> dict[str, typing.Any]:
    """``{dotted key: default}`` of dataclass ``cls``, nested config dataclasses flattened."""
    hints, out = typing.get_type_hints(cls), {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(_keys(hints[f.name], f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = plain(default)
    return out


def _table() -> list[tuple[str, str, str]]:
    """``(key, option, default)`` of each row of the section's table."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Config keys", 1)[1].split("\n#", 1)[0]
    rows = []
    for line in section.splitlines():
        if m := re.fullmatch(r"\| `([\w.]+)` \| (`[-\w]+`|-) \| `([^`]*)` \| .+ \|", line):
            rows.append((m[1], m[2].strip("`"), m[3]))
    return rows


def test_the_table_lists_every_key_with_its_default():
    rows = _table()
    keys = [key for key, _, _ in rows]
    assert len(keys) == len(set(keys)), "a key listed twice"
    expected = _keys(TrainConfig)
    assert keys == list(expected)  # every key, none stale, in the dataclasses' order
    for key, _, default in rows:
        assert yaml.safe_load(default) == expected[key], key


def test_the_table_names_every_option_of_engine_train():
    command = typer.main.get_command(app).commands["train"]
    options = {opt for p in command.params for opt in p.opts} - {"--config"}
    named = {option for _, option, _ in _table() if option != "-"}
    assert named == options


# the options whose parameter is not named as the key it sets (docs/trainer.md says so)
RENAMED = {
    "workers": "num_workers",
    "crop": "augment.crop",
    "class_crop_prob": "augment.class_crop_prob",
    "pseudo_form": "loss.decoupling.pseudo_form",
    "val_subset": "val_subsets",
}


def test_each_option_sits_on_the_row_of_the_key_it_sets():
    """The set of options alone would pass with two options swapped between rows."""
    command = typer.main.get_command(app).commands["train"]
    sets = {opt: RENAMED.get(p.name, p.name) for p in command.params for opt in p.opts}
    wrong = [(key, option) for key, option, _ in _table() if option != "-" and sets[option] != key]
    assert wrong == []
