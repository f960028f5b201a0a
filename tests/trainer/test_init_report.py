"""``engine train --init``'s report: a class head of as many classes as the checkpoint, in
another order (its rows moved: a "rebuilt" head, which the grown and shrunk heads of
test_init.py do not reach), and lists cut exactly at their length."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from annotations.taxonomy import MASS13K
from tests.model_helpers import distinct_head_model, save_model
from trainer.init import (
    InitReport,
    architecture_differences,
    class_head_keys,
    init_from_checkpoint,
)
from trainer.models import create_model

NINE = MASS13K.with_new_class("Bicycle").with_new_class("Car")  # Bicycle 7, Car 8
SWAPPED = MASS13K.with_new_class("Car").with_new_class("Bicycle")  # Car 7, Bicycle 8


@pytest.fixture(scope="module")
def nine(tmp_path_factory):
    """A tiny 9-class model with distinct class-head rows, saved as a checkpoint."""
    model = distinct_head_model(9)
    return model, save_model(tmp_path_factory.mktemp("ck") / "nine.pt", model, NINE)


def test_reordered_classes_move_their_rows_and_say_rebuilt(nine):
    """Car and Bicycle swap ids: each takes its own row at its new id, the biases unchanged (no
    row seeds two), and the summary says "rebuilt" (a None head_change read "tensors None")."""
    old_model, path = nine
    old = old_model.state_dict()
    model = create_model("tiny", 9)
    report = init_from_checkpoint(model, path, SWAPPED)
    new = model.state_dict()
    w_key, b_key = class_head_keys(model)
    order = [0, 1, 2, 3, 4, 5, 6, 8, 7, 9]  # the checkpoint's row of each model row
    for key in (w_key, b_key):
        assert torch.equal(new[key], old[key][order]), key
    assert report.head_change == "rebuilt"
    assert [(k, a, b) for k, a, b in report.grown] == [
        (w_key, tuple(old[w_key].shape), tuple(old[w_key].shape)),
        (b_key, (10,), (10,)),
    ]
    assert report.moved == [("Car", 8, 7), ("Bicycle", 7, 8)]
    text = "\n".join(report.summary())
    assert "2 class-head tensors rebuilt" in text and f"rebuilt {b_key}: [10] -> [10]" in text
    assert len(report.loaded) == len(new) - 2 and report.dropped == []


def test_lists_of_exactly_show_items_are_not_cut():
    """Four architecture differences and five dropped keys: every one named, no "... 0 more"
    (the cut is for longer lists); one more of each is cut."""
    fields = [("backbone", "a", "b"), ("pixel_dim", 1, 2), ("window", 3, 4), ("heads", 5, 6)]
    dropped = [(f"k{i}", "not in the model") for i in range(5)]
    report = InitReport("c.pt", dropped=dropped, architecture=fields, presets=("tiny", None))
    warning = report.architecture_warning()
    assert "(backbone a vs b, pixel_dim 1 vs 2, window 3 vs 4, heads 5 vs 6): only" in warning
    assert "more" not in warning and warning.endswith("; --preset tiny would copy them all")
    lines = report.summary()
    assert lines[-1] == "  dropped: " + "; ".join(f"k{i} (not in the model)" for i in range(5))
    longer = InitReport(
        "c.pt", dropped=[*dropped, ("k5", "x")], architecture=[*fields, ("cst_heads", 7, 8)]
    )
    assert "heads 5 vs 6, ... 1 more): only" in longer.architecture_warning()
    assert longer.summary()[-1].endswith("k4 (not in the model), ... 1 more")


def test_unknown_configs_have_no_architecture_difference():
    """A checkpoint without model config (a dict handed over) or a model config that is no
    ModelConfig compares nothing: [] (None broke init.json's record), never a guess."""
    model = create_model("tiny", 7)
    assert architecture_differences(None, model.config) == []
    assert architecture_differences({}, model.config) == []
    assert architecture_differences({"backbone": "a"}, {"backbone": "b"}) == []
    assert InitReport("c.pt", architecture=architecture_differences({}, model.config)).to_dict()


def test_a_model_without_a_class_head_is_refused():
    """No Linear with K + 1 outputs named like a class embedding: a RuntimeError naming the
    model's type (not an empty list of keys, which grew no head and said nothing)."""

    class Headless(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = SimpleNamespace(num_classes=3)
            self.class_embed = torch.nn.Linear(4, 5)  # 5 outputs, not K + 1 = 4
            self.mask = torch.nn.Linear(4, 4)  # 4 outputs, not named as a class head

    with pytest.raises(RuntimeError, match="Headless has no class head"):
        class_head_keys(Headless())
