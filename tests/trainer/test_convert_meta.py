"""The converter keeps the release's ``meta`` as builtin values only (weights_only-loadable)."""

from __future__ import annotations

import numpy as np
import torch

from trainer.convert import _plain


def test_meta_scalar_subclasses_become_builtins(tmp_path):
    meta = {
        "torch_version": torch.__version__,  # a TorchVersion (str subclass)
        "score": np.float64(0.5),
        "name": np.str_("mass13k"),
        "flag": True,
        "dataset_meta": {"classes": (np.str_("background"), "person"), "palette": [[0, 0, 0]]},
        "dropped": object(),
    }
    plain = _plain(meta)
    assert type(plain["torch_version"]) is str and type(plain["score"]) is float
    assert type(plain["name"]) is str and plain["flag"] is True
    assert [type(c) for c in plain["dataset_meta"]["classes"]] == [str, str]
    assert "dropped" not in plain
    path = tmp_path / "m.pt"
    torch.save({"meta": plain}, path)
    assert torch.load(path, weights_only=True)["meta"]["torch_version"] == str(torch.__version__)


def test_meta_numpy_integers_bools_and_the_palette_are_kept(tmp_path):
    # before: np.int64 is no int, np.bool_ no bool: both were dropped silently, and so was the
    # release palette (a list of lists)
    meta = {
        "iter": np.int64(80000),
        "epoch": np.uint8(3),
        "fp16": np.bool_(True),
        "dataset_meta": {
            "classes": ("background", "person"),
            "palette": [[0, 0, 0], [np.int64(255), np.int32(0), 0]],
        },
        "hooks": [object()],
    }
    plain = _plain(meta)
    assert plain == {
        "iter": 80000,
        "epoch": 3,
        "fp16": True,
        "dataset_meta": {"classes": ["background", "person"], "palette": [[0, 0, 0], [255, 0, 0]]},
    }
    assert type(plain["iter"]) is int and type(plain["epoch"]) is int and plain["fp16"] is True
    assert type(plain["dataset_meta"]["palette"][1][0]) is int
    path = tmp_path / "m.pt"
    torch.save({"meta": plain}, path)
    assert torch.load(path, weights_only=True)["meta"] == plain


def test_meta_numpy_arrays_and_dicts_in_lists_are_kept(tmp_path):
    # before: a palette held as a numpy array (as np.array(PALETTE) in a config) and a list of
    # dicts (hook records) were dropped silently, though numpy's numbers and nested lists were kept
    meta = {
        "dataset_meta": {"palette": np.array([[0, 0, 0], [255, 0, 0]], np.uint8)},
        "scale": np.float32(0.5) * np.ones(2, np.float32),
        "seed": np.array(7),
        "hooks": [{"type": "CheckpointHook", "interval": np.int64(2)}, {"type": "LoggerHook"}],
        "dropped": [np.array([object()]), 1],
    }
    plain = _plain(meta)
    assert plain == {
        "dataset_meta": {"palette": [[0, 0, 0], [255, 0, 0]]},
        "scale": [0.5, 0.5],
        "seed": 7,
        "hooks": [{"type": "CheckpointHook", "interval": 2}, {"type": "LoggerHook"}],
    }
    assert type(plain["dataset_meta"]["palette"][1][0]) is int
    path = tmp_path / "m.pt"
    torch.save({"meta": plain}, path)
    assert torch.load(path, weights_only=True)["meta"] == plain
