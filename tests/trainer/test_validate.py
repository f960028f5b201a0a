"""Validation during training (trainer/validate.py) without a model run: which images each rank
validates, how the ranks' counts come together on rank 0, what is left out and said."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch

from annotations.taxonomy import MASS13K, Taxonomy


class _Split:
    """What evaluate reads of a SegDataset: its samples, taxonomy and load_pair. A sample is
    ``(name, pred, gt)``; one named ``bad*`` cannot be read."""

    def __init__(self, samples: list, taxonomy: Taxonomy = MASS13K) -> None:
        self.samples, self.taxonomy = samples, taxonomy

    def load_pair(self, sample):  # noqa: ANN001, ANN201
        name, pred, gt = sample
        if name.startswith("bad"):
            raise OSError(f"{name}: cannot read")
        return pred, gt


@pytest.fixture
def label_is_image(monkeypatch):  # noqa: ANN201
    """predict_label stubbed: the "image" a sample loads is its prediction (no model run)."""
    import trainer.inference

    monkeypatch.setattr(trainer.inference, "predict_label", lambda model, image, **kw: image)


def _sample(name: str, value: int) -> tuple:
    gt = np.zeros((8, 8), np.uint8)
    gt[:, 4:] = 1
    return name, np.full((8, 8), value, np.uint8), gt


def test_each_rank_validates_every_world_th_of_the_first_max_images() -> None:
    from trainer.validate import rank_samples

    data = _Split(list(range(7)))
    assert rank_samples(data) == list(range(7))
    assert rank_samples(data, max_images=1) == [0]  # one image: not all of them
    assert rank_samples(data, max_images=5, rank=1, world=2) == [1, 3]
    assert rank_samples(data, max_images=0, rank=2, world=3) == [2, 5]


def test_unreadable_images_are_left_out_named_and_still_advance_the_bar(label_is_image):
    from trainer.validate import evaluate

    data = _Split([_sample("a", 1), _sample("bad1", 1), _sample("c", 0)])
    model = torch.nn.Linear(1, 1)
    model.train()
    ticks = []
    res = evaluate(model, data, on_image=lambda: ticks.append(1))
    assert res["images"] == 2 and res["skipped"] == ["bad1: cannot read"] and len(ticks) == 3
    assert model.training  # put back as it was
    assert "counts" not in res
    assert "skipped" not in evaluate(model, _Split([_sample("a", 1)]))


def test_rank_0_gathers_every_ranks_images_and_problems_the_others_get_none(
    label_is_image, monkeypatch
):
    """Under DDP each rank scores its share; rank 0 scores the counts of all of them and lists
    the problems of all of them, in rank order."""
    import trainer.validate

    images = [_sample("a", 1), _sample("bad1", 1), _sample("bad2", 0), _sample("c", 0)]
    data = _Split(images)
    model = torch.nn.Linear(1, 1)
    # what each rank computes on its own share, as rank 0 then gathers it
    shares = [trainer.validate.evaluate_counts(model, data, rank=r, world=2) for r in (0, 1)]

    def world(rank: int):  # noqa: ANN202
        def all_gather_object(out: list, obj) -> None:  # noqa: ANN001
            assert len(obj[0]) == len(shares[rank][0].per_image) and obj[1] == shares[rank][1]
            out[:] = [(ev.per_image, skipped) for ev, skipped in shares]

        return types.SimpleNamespace(
            get_rank=lambda: rank, get_world_size=lambda: 2, all_gather_object=all_gather_object
        )

    monkeypatch.setattr(trainer.validate, "dist", world(1))
    assert trainer.validate.evaluate(model, data, distributed=True) is None
    monkeypatch.setattr(trainer.validate, "dist", world(0))
    res = trainer.validate.evaluate(model, data, distributed=True)
    alone = trainer.validate.evaluate(model, data)  # one process: the same scores
    # rank 0's share is a and bad2, rank 1's bad1 and c
    assert res["images"] == 2 and res["skipped"] == ["bad2: cannot read", "bad1: cannot read"]
    assert res == {**alone, "skipped": res["skipped"]}
    assert res["classes"][1]["iou"] == pytest.approx(100 / 3)  # 32 of 96 pixels


def test_new_classes_are_marked_as_scored_against_their_pseudo_labels() -> None:
    from trainer.validate import PSEUDO_VS, label_new_classes

    res = {"classes": [{"id": 0}, {"id": 1}]}
    assert label_new_classes(res, MASS13K) == {"classes": [{"id": 0}, {"id": 1}]}  # none new
    joint = MASS13K.with_new_class("Bicycle")  # id 7
    res = {"classes": [{"id": 0}, {"id": 7}]}
    assert label_new_classes(res, joint) == {
        "classes": [{"id": 0}, {"id": 7, "vs": PSEUDO_VS}],
        "new_classes_vs": PSEUDO_VS,
    }


def test_a_subset_mask_of_another_size_is_left_out_naming_both(label_is_image, tmp_path):
    from annotations.labelmap import write_label
    from trainer.validate import SubsetTarget, evaluate_subset

    class Images:
        def load_image(self, sample):  # noqa: ANN001, ANN202
            return np.full((8, 8), 7, np.uint8)  # (the prediction) the class everywhere

    masks = [tmp_path / "a.png", tmp_path / "b.png"]
    write_label(masks[0], np.ones((8, 8), np.uint8))
    write_label(masks[1], np.ones((8, 6), np.uint8))
    photos = tuple(types.SimpleNamespace(image_path=tmp_path / n) for n in ("a.jpg", "b.jpg"))
    target = SubsetTarget(tmp_path, "Bicycle", 7, photos, tuple(masks))
    model = torch.nn.Linear(1, 1)
    model.train()
    res = evaluate_subset(model, target, Images())
    assert res["skipped"] == [f"{masks[1]}: mask is 6x8, image {tmp_path / 'b.jpg'} is 8x8"]
    assert res["images"] == 1 and res["iou"] == 100.0 and model.training
    assert res["class"] == "Bicycle" and res["vs"] == "annotated subset"
    assert res["subset"] == str(tmp_path) and "counts" not in res


def test_subset_pixels_sum_recorded_counts_and_none_where_a_mask_has_none() -> None:
    from trainer.validate import _subset_pixels

    row = {"height": 2, "width": 3, "class_pixels": 1, "unannotated_pixels": 2}
    assert _subset_pixels({"a": row, "b": row}, ("a", "b")) == (12, 2, 4)
    assert _subset_pixels({"a": row}, ("a", "b")) is None
    assert _subset_pixels(None, ("a",)) is None
    assert _subset_pixels({"a": {"height": 2}}, ("a",)) is None


def test_subset_warnings_each_said_alone(tmp_path: Path) -> None:
    from trainer.validate import SubsetTarget, subset_warnings

    def said(**kw) -> list[str]:  # noqa: ANN003
        return subset_warnings([SubsetTarget(tmp_path, "Car", 8, (), (), "test", **kw)], "train")

    assert said(pixels=(10, 2, 3)) == []
    (empty,) = said(pixels=(10, 0, 10))
    assert "every pixel of the Car subset's masks is unannotated" in empty
    (none,) = said(pixels=(10, 0, 3))
    assert "no mask of the Car subset marks a Car pixel" in none
    assert said(replaced="photos replaced") == ["photos replaced"]
    fused = subset_warnings(
        [SubsetTarget(tmp_path, "Car", 8, (), (), "train", fused_by=tmp_path / "fuse.json")],
        "train",
    )
    assert len(fused) == 1 and "fused into the training labels as corrections" in fused[0]
