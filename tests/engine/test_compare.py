"""engine compare's pieces without a folder of label maps: the config's refusals, how one file's
class value is read (engine/compare/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.compare import CompareConfig, resolve_input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input": "mask"}, "input must be one of ('auto', 'binary', 'labels'), got 'mask'"),
        ({"bf1_mode": "pixel"}, "bf1_mode must be one of ('dataset', 'image'), got 'pixel'"),
        ({"resize_pred": "bilinear"}, "resize_pred must be one of ('nearest',) or None"),
    ],
)
def test_a_config_of_an_unknown_mode_is_refused_naming_it(kwargs, message) -> None:  # noqa: ANN001
    with pytest.raises(ValueError) as e:
        CompareConfig("Car", Path("gt"), (("p", Path("p")),), **kwargs)
    assert str(e.value) == message


def test_a_file_read_as_a_binary_mask_names_every_value_it_should_not_hold() -> None:
    label = np.array([[0, 1, 2], [3, 255, 7]], np.uint8)
    with pytest.raises(ValueError) as e:
        resolve_input(label, Path("m.png"), 7, "binary")
    assert str(e.value) == "m.png: expected a binary mask (0/1/255), found values [2, 3, 7]"
    assert resolve_input(label, Path("m.png"), 7, "auto") == 7  # a full label map: the class id
    assert resolve_input(label, Path("m.png"), 7, "labels") == 7
    binary = np.array([[0, 1, 255]], np.uint8)
    assert resolve_input(binary, Path("m.png"), 7, "auto") == 1
    assert resolve_input(binary, Path("m.png"), None, "binary") == 1
    assert resolve_input(binary, Path("m.png"), 7, "labels") == 7


def test_the_json_records_config_holds_the_sources_as_typed() -> None:
    """The record's ``config`` (and its hash) says which folders were scored, as plain JSON."""
    import json

    from engine.compare import CompareReport

    cfg = CompareConfig(
        "Car", Path("gt"), (("p", Path("runs/p")), ("q", Path("q"))), json_out=Path("c.json")
    )
    got = CompareReport("Car", 8, [], 0).to_json(cfg)["config"]
    assert got["sources"] == [["p", "runs/p"], ["q", "q"]]
    assert got["gt"] == "gt" and got["json_out"] == "c.json" and got["taxonomy"] is None
    assert "split" not in got and json.loads(json.dumps(got)) == got


def test_a_class_id_reads_a_subsets_class_after_mass13ks() -> None:
    """An annotated subset records no taxonomy: ``--class 7`` is read in MaSS13K and the
    subset's class (id 7 when it is new, its own id when MaSS13K has it)."""
    from annotations.taxonomy import MASS13K
    from engine.compare import class_by_name
    from engine.outputs import DEFAULT_TAXONOMY

    assert class_by_name("7", MASS13K, DEFAULT_TAXONOMY, "Bicycle") == "Bicycle"
    assert class_by_name("1", MASS13K, DEFAULT_TAXONOMY, "Human") == "Human"
    assert class_by_name(" Car ", MASS13K, DEFAULT_TAXONOMY, "Car") == "Car"
    with pytest.raises(ValueError, match=r"--class 8: .*\(MaSS13K and the subset's class: "):
        class_by_name("8", MASS13K, DEFAULT_TAXONOMY, "Bicycle")


def test_a_split_other_than_the_subsets_is_refused_before_any_source_is_read(tmp_path) -> None:
    from annotations.subset import write_subset
    from engine.compare import compare

    sub = write_subset(tmp_path / "sub", "Bicycle", "test", {"a": np.ones((4, 4), np.uint8)}, {})
    cfg = CompareConfig("Bicycle", sub.root, (("p", tmp_path / "none"),), split="val")
    with pytest.raises(ValueError) as e:
        compare(cfg)
    assert str(e.value) == (
        f"--split val: {sub.root} is an annotated subset of split test; leave --split out (the "
        "subset names its split)"
    )


def test_a_datasets_split_is_read_in_the_taxonomy_its_spec_names(tmp_path) -> None:
    """--gt DATASET --split S: the split's label maps hold the classes of the taxonomy the
    dataset's spec names (here in meta/, where no folder around the labels records it)."""
    from annotations.labelmap import write_label
    from annotations.taxonomy import MASS13K
    from engine.compare import compare

    root = tmp_path / "data"
    gt = np.zeros((8, 8), np.uint8)
    gt[:, :4] = 7  # Bicycle, the dataset's new class
    write_label(root / "annotations" / "test" / "a.png", gt)
    write_label(root / "images" / "test" / "a.png", gt * 0)
    (root / "meta").mkdir()
    MASS13K.with_new_class("Bicycle").save(root / "meta" / "joint.json")
    (root / "dataset.yaml").write_text(
        "images: images/{split}\nlabels: annotations/{split}\ntaxonomy: meta/joint.json\n"
    )
    write_label(tmp_path / "pred" / "a.png", (gt == 7).astype(np.uint8))  # a binary mask
    rep = compare(
        CompareConfig("Bicycle", root, (("p", tmp_path / "pred"),), split="test", progress=False)
    )
    assert rep.class_name == "Bicycle" and rep.rows[0].scores.iou == 100.0
