"""The release converter's edges that the release's exact layout (test_convert.py) does not
reach: a state dict without its class head or with a non-tensor value, a file holding no dict,
an --out holding something else, the meta of a training checkpoint read through the stub
reader, and the lists the errors cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainer.test_convert import ForeignLoggerState, _convert_error, _write, release_state
from trainer.convert import _plain, check_convert_out, convert_massformer
from trainer.release_file import first_keys, read_release_checkpoint


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return release_state(seed=1)


def test_first_keys_cuts_after_n():
    assert first_keys(["a", "b", "c"]) == "a, b, c"  # exactly n: nothing cut, no "(+0 more)"
    assert first_keys(["a", "b", "c", "d", "e"]) == "a, b, c (+2 more)"
    assert first_keys(["a", "b"], n=1) == "a (+1 more)" and first_keys([]) == ""


@pytest.mark.parametrize("head", [None, torch.zeros(8)])  # absent; a vector, not a Linear's
def test_a_state_dict_without_a_class_head_is_named(tmp_path: Path, state: dict, head) -> None:
    bad = {k: v for k, v in state.items() if k != "decode_head.cls_embed.weight"}
    if head is not None:
        bad["decode_head.cls_embed.weight"] = head
    src = _write(tmp_path / "r.pth", bad)
    _convert_error(tmp_path, src, r"r\.pth: no class head decode_head\.cls_embed\.weight")


def test_a_value_that_is_no_tensor_is_a_mismatch(tmp_path: Path, state: dict) -> None:
    src = _write(tmp_path / "r.pth", {**state, "backbone.conv1.weight": 3})
    match = r"1 shape mismatches: backbone\.conv1\.weight int vs backbone\.stem\.0\.weight"
    _convert_error(tmp_path, src, match)


@pytest.mark.parametrize("held", [[1, 2], torch.zeros(3), {}])
def test_a_file_holding_no_dict_of_tensors_is_named(tmp_path: Path, held: object) -> None:
    src = tmp_path / "r.pth"
    torch.save(held, src)
    with pytest.raises(ValueError, match=r"r\.pth: no mmseg state dict \(expected a dict with"):
        read_release_checkpoint(src)


def test_an_out_holding_another_file_is_refused(tmp_path: Path) -> None:
    """Not a torch file, or a torch file of someone else's: refused, untouched."""
    src = tmp_path / "release.pth"
    notes, other = tmp_path / "notes.pt", tmp_path / "other.pt"
    notes.write_text("notes\n")
    torch.save({"weights": torch.zeros(1)}, other)
    for out in (notes, other):
        before = out.read_bytes()
        with pytest.raises(ValueError, match="exists .not a checkpoint engine convert-massformer"):
            check_convert_out(src, out)
        assert out.read_bytes() == before


def test_a_training_checkpoints_meta_keeps_its_numpy_values(tmp_path: Path, state: dict) -> None:
    """mmengine's training checkpoint is read by the stub reader (its foreign objects run
    nothing), which still rebuilds numpy values: the meta's numpy scalars are kept as builtins
    (not dropped as stubs); the conversion is a checkpoint at step 0."""
    src = tmp_path / "iter.pth"
    meta = {"seed": 7, "lr": np.float64(0.5), "classes": (np.str_("background"),)}
    torch.save({"state_dict": state, "meta": meta, "hub": ForeignLoggerState()}, src)
    convert_massformer(src, tmp_path / "ours.pt")
    ckpt = torch.load(tmp_path / "ours.pt", weights_only=True)
    assert ckpt["converted_from"]["meta"] == {"seed": 7, "lr": 0.5, "classes": ["background"]}
    assert ckpt["step"] == 0


def test_plain_meta_keeps_none_and_drops_lists_of_objects():
    meta = {"note": None, "hooks": [object()], "mixed": [1, object()], "ids": (1, 2)}
    assert _plain(meta) == {"note": None, "ids": [1, 2]}


def test_a_release_meta_keeps_small_numpy_arrays_and_names_the_keys_it_leaves_out(
    tmp_path: Path, state: dict
) -> None:
    """A palette saved as ``np.ndarray`` was dropped from the conversion's meta, and nothing
    said which keys were left out (a missing one read as absent from the release). Arrays of
    at most 4,096 elements are kept as lists; the dotted names of the keys left out (objects,
    bigger arrays) are recorded, and the checkpoint stays loadable with ``weights_only``."""
    palette = np.array([[0, 0, 0], [220, 20, 60]], np.uint8)
    meta = {
        "dataset_meta": {"palette": palette, "hooks": object(), "scale": np.float32(0.5)},
        "mask": np.zeros(4097, np.uint8),  # one past MAX_ARRAY_ELEMENTS
        "ids": np.arange(3),
        "one": np.array(7),
    }
    src = tmp_path / "release.pth"
    torch.save({"state_dict": state, "meta": meta}, src)
    convert_massformer(src, tmp_path / "ours.pt")
    made = torch.load(tmp_path / "ours.pt", weights_only=True)["converted_from"]
    assert made["meta"] == {
        "dataset_meta": {"palette": [[0, 0, 0], [220, 20, 60]], "scale": 0.5},
        "ids": [0, 1, 2],
        "one": 7,
    }
    assert made["meta_left_out"] == ["dataset_meta.hooks", "mask"]
    assert type(made["meta"]["dataset_meta"]["palette"][1][1]) is int
