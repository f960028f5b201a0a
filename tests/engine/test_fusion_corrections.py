"""The data engine's loop closed: an annotated subset's corrected masks fused into the training
labels (``engine fuse --corrections``), on a tiny synthetic dataset through the CLI."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from annotations.labelmap import read_label, write_label
from cli import app

runner = CliRunner()
STEM = "synth_train_0001"  # the train image with the most Bicycle pixels (507 at 128x96)


def invoke(*args: str):
    return runner.invoke(app, [*args, "--no-progress"])


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> Path:
    """synth, label Bicycle and Car (simulated), and a corrected mask of a train image imported
    as an annotated subset: the truth on its left 100 columns, unannotated (255) on the rest,
    plus 1s on 5 Ground pixels (not Bicycle's parent)."""
    root = tmp_path_factory.mktemp("loop")
    cwd = Path.cwd()
    import os

    os.chdir(root)
    try:
        steps = [
            ("synth", "--out", "data", "--train", "3", "--val", "1", "--test", "1",
             "--size", "128x96"),
            ("label", "--class", "Bicycle", "--data", "data", "--backend", "simulated"),
            ("label", "--class", "Car", "--data", "data", "--backend", "simulated"),
        ]  # fmt: skip
        for step in steps:
            res = invoke(*step)
            assert res.exit_code == 0, res.output
        mask = read_label(Path(f"data/new_classes/bicycle/train/{STEM}.png")).copy()
        precise = read_label(Path(f"data/annotations/train/{STEM}.png"))
        ground = np.argwhere((precise == 4)[:, :100])[:5]
        mask[ground[:, 0], ground[:, 1]] = 1
        mask[:, 100:] = 255
        Path("ann").mkdir()
        write_label(Path(f"ann/{STEM}.png"), mask)
        res = invoke(
            "annotate", "import", "ann", "--format", "png", "--class", "Bicycle", "--data",
            "data", "--split", "train", "--out", "subsets/bicycle-train",
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        res = invoke("fuse", "--data", "data", "--pseudo", "runs/label/bicycle", "--pseudo",
                     "runs/label/car", "--out", "runs/fused/plain")  # fmt: skip
        assert res.exit_code == 0, res.output
    finally:
        os.chdir(cwd)
    return root


def fuse_corrected(out: str) -> None:
    """``engine fuse`` of the Bicycle run with the module's subset as corrections, into ``out``
    (in the loop's folder)."""
    res = invoke("fuse", "--data", "data", "--pseudo", "runs/label/bicycle", "--corrections",
                 "subsets/bicycle-train", "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.output


def test_fuse_corrections_trains_on_the_corrected_mask(loop: Path, monkeypatch, caplog):
    monkeypatch.chdir(loop)
    with caplog.at_level("WARNING", logger="engine.fusion.run"):
        res = invoke(
            "fuse", "--data", "data", "--pseudo", "runs/label/bicycle", "--pseudo",
            "runs/label/car", "--corrections", "subsets/bicycle-train", "--out", "runs/fused/corr",
        )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (
        "subsets/bicycle-train: 5 pixels its masks mark Bicycle lie on precise classes "
        "that are not its parents (Others) and keep their precise labels"
    ) in caplog.text
    assert "corrected images (annotated subset)" in res.output
    fused, plain = Path("runs/fused/corr"), Path("runs/fused/plain")
    truth = read_label(Path(f"data/new_classes/bicycle/train/{STEM}.png"))
    precise = read_label(Path(f"data/annotations/train/{STEM}.png"))
    label = read_label(fused / f"labels/train/{STEM}.png")
    source = read_label(fused / f"sources/train/{STEM}.png")
    left = np.zeros(truth.shape, bool)
    left[:, :100] = True
    car = label == 8  # Car's pseudo pixels stay where Bicycle was corrected to 0
    np.testing.assert_array_equal((label == 7)[left], (truth == 1)[left])
    # on the annotated columns Bicycle is the human's (source 0) and the rest its precise label,
    # but where Car's pseudo label claims (source 1) or is uncertain (255, source 2)
    car_unsure = read_label(Path(f"runs/label/car/labels/train/{STEM}.png")) == 255
    ignored = label == 255
    assert not (ignored & left & ~car_unsure).any() and (source[left & ignored] == 2).all()
    decided = left & ~car & ~ignored
    assert (source[decided] == 0).all() and (source[left & car] == 1).all()
    other = decided & (label != 7)
    np.testing.assert_array_equal(label[other], precise[other])
    # unannotated columns: the pseudo labels, as without corrections
    plain_label = read_label(plain / f"labels/train/{STEM}.png")
    np.testing.assert_array_equal(label[~left], plain_label[~left])
    for kind in ("labels", "sources"):  # every other image: the same bytes
        for path in (plain / kind).rglob("*.png"):
            if path.stem != STEM:
                assert path.read_bytes() == (fused / path.relative_to(plain)).read_bytes(), path
    record = json.loads((fused / "fuse.json").read_text())
    (entry,) = record["inputs"]["corrections"]
    assert (entry["path"], entry["class"], entry["split"], entry["images"]) == (
        "subsets/bicycle-train", "Bicycle", "train", 1,
    )  # fmt: skip
    assert record["config"]["corrections"] == ["subsets/bicycle-train"]
    assert record["report"]["Bicycle"]["corrected_rejected"] == 5
    assert "corrections" not in json.loads((plain / "fuse.json").read_text())["config"]
    assert "corrected_pixels" not in (plain / "manifest.jsonl").read_text()
    # resumed: nothing to do; the subset imported again: fused again, as a changed run is
    res = invoke(
        "fuse", "--data", "data", "--pseudo", "runs/label/bicycle", "--pseudo", "runs/label/car",
        "--corrections", "subsets/bicycle-train", "--out", "runs/fused/corr",
    )  # fmt: skip
    assert "fused 0 images, skipped 5" in res.output, res.output
    caplog.clear()
    with caplog.at_level("WARNING", logger="engine.fusion.run"):
        res = invoke(
            "fuse", "--data", "data", "--pseudo", "runs/label/bicycle", "--pseudo",
            "runs/label/car", "--out", "runs/fused/corr",
        )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "5 images fused with other settings or inputs will be fused again" in caplog.text


def test_a_training_validated_on_the_fused_subset_says_it_trained_on_it(loop: Path, monkeypatch):
    from engine.datasets import SegDataset, load_spec
    from trainer.validate import load_subset, subset_warnings

    monkeypatch.chdir(loop)
    fuse_corrected("runs/fused/trained")
    for fused, said in (
        ("runs/fused/trained", "was fused into the training labels as corrections"),
        ("runs/fused/plain", "on their pseudo labels"),
    ):
        target = load_subset("subsets/bicycle-train", SegDataset(load_spec(fused), "train"))
        (warning,) = subset_warnings([target], "train")
        assert said in warning, warning


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            ("--pseudo", "runs/label/car", "--corrections", "subsets/bicycle-train"),
            "error: subsets/bicycle-train/subset.json: a subset of Bicycle, which this fusion "
            "does not add (new classes: Car): give --corrections a subset of one of them, or "
            "the --pseudo run of its class",
        ),
        (
            (
                "--pseudo",
                "runs/label/bicycle",
                "--split",
                "val",
                "--corrections",
                "subsets/bicycle-train",
            ),
            "error: subsets/bicycle-train/subset.json: a subset of split 'train', which this "
            "fusion does not fuse (val): give --split train too",
        ),  # fmt: skip
    ],
)
def test_a_subset_of_another_class_or_split_is_one_line(loop, monkeypatch, extra, error):
    monkeypatch.chdir(loop)
    res = invoke("fuse", "--data", "data", "--out", "runs/fused/refused", *extra)
    assert res.exit_code == 2 and " ".join(res.output.split()).startswith(error), res.output
    assert not Path("runs/fused/refused").exists()


def test_a_corrected_mask_of_another_size_is_one_line_naming_both(loop, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(loop)
    sub = tmp_path / "sub"
    shutil.copytree("subsets/bicycle-train", sub)
    write_label(sub / f"masks/{STEM}.png", np.zeros((10, 12), np.uint8))
    res = invoke("fuse", "--data", "data", "--pseudo", "runs/label/bicycle", "--corrections",
                 str(sub), "--out", str(tmp_path / "out"))  # fmt: skip
    said = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert said.startswith(
        f"error: {sub}/masks/{STEM}.png: corrected mask is 12x10 but its image "
        f"data/images/train/{STEM}.jpg is 128x96: import the annotations of this image again"
    ), said
    assert not (tmp_path / "out").exists()


def test_a_subset_edited_after_its_import_is_fused_as_it_is_now_and_said(
    loop, tmp_path, monkeypatch, caplog
):
    """A corrected mask edited by hand after the import (its Bicycle pixels set to 0: none
    there) is fused as edited, and fuse now says so, as engine info SUBSET calls it
    a problem; a mask put in masks/ by hand, which subset.json does not list, is read by no
    command, and both now say that too (before: both silent, fuse without a word)."""
    import shutil

    monkeypatch.chdir(loop)
    sub = tmp_path / "sub"
    shutil.copytree("subsets/bicycle-train", sub)
    mask = read_label(sub / f"masks/{STEM}.png").copy()
    assert (mask == 1).sum() == 512  # the truth's 507 and 5 on Ground
    mask[mask == 1] = 0
    write_label(sub / f"masks/{STEM}.png", mask)
    write_label(sub / "masks/synth_train_0000.png", np.zeros((96, 128), np.uint8))
    with caplog.at_level("WARNING", logger="engine.fusion.run"):
        res = invoke("fuse", "--data", "data", "--pseudo", "runs/label/bicycle", "--corrections",
                     str(sub), "--out", str(tmp_path / "out"))  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (read_label(tmp_path / f"out/labels/train/{STEM}.png")[:, :100] == 7).sum() == 0
    said = [r.getMessage() for r in caplog.records]
    unlisted = (
        f"{sub / 'masks'}: 1 mask that subset.json does not list, which no command reads "
        "(synth_train_0000): import them to add them"
    )
    assert said[:2] == [
        f"{sub}: 1 mask edited after the import (other pixel counts than subset.json records: "
        f"{STEM}): fused as it is now",
        unlisted,
    ]
    res = invoke("info", str(sub))
    assert res.exit_code == 1, res.output
    assert " ".join(res.output.split()).endswith(
        f"2 problems found: {sub}/masks/{STEM}.png: differs from what subset.json records "
        "(size 128x96, 0 class and 2,688 unannotated pixels; recorded 128x96, 512 and 2688): "
        f"edited after the import? import the annotations again (with --force) {unlisted}"
    )


def test_a_mask_edited_to_the_same_size_and_time_is_fused_again(loop, tmp_path, monkeypatch):
    """A corrected mask edited after a fusion to a PNG of the same byte size, its modification
    time restored (``cp -p``, ``rsync -t``, ``touch -r``): the next fuse skipped the image
    (one ``stat`` said its inputs were as they were), while it said the mask was "fused as it
    is now". A mask's stamp is its bytes now: the image is fused again, the pixel no longer
    Bicycle."""
    import os
    import shutil

    monkeypatch.chdir(loop)
    sub, out = tmp_path / "sub", tmp_path / "out"
    shutil.copytree("subsets/bicycle-train", sub)
    args = ("fuse", "--data", "data", "--pseudo", "runs/label/bicycle", "--corrections",
            str(sub), "--out", str(out))  # fmt: skip
    assert invoke(*args).exit_code == 0
    assert read_label(out / f"labels/train/{STEM}.png")[54, 19] == 7
    path = sub / f"masks/{STEM}.png"
    before = path.stat()
    mask = read_label(path).copy()
    assert mask[54, 19] == 1
    mask[54, 19] = 0  # a Bicycle pixel erased: the PNG is 717 bytes as before
    write_label(path, mask)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (
        (path.stat().st_size, path.stat().st_mtime_ns)
        == (717, before.st_mtime_ns)
        == (
            before.st_size,
            before.st_mtime_ns,
        )
    )
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert "fused 1 image, skipped 4 already done, in" in " ".join(res.output.split())
    precise = read_label(Path(f"data/annotations/train/{STEM}.png"))[54, 19]
    assert read_label(out / f"labels/train/{STEM}.png")[54, 19] == precise != 7


def test_a_moved_chain_of_fused_datasets_still_finds_the_subset_fused_as_corrections(tmp_path):
    """Car fused onto Bicycle's fused dataset, which was fused with a subset as corrections, the
    project then moved (``mv proj moved``): the chain was followed through the absolute path
    ``fuse.json`` records, gone, and the report's fused row lost its "fused with this subset as
    corrections" reason. The dataset each was fused from is found beside it, as info finds it."""
    import json

    from engine.datasets import DatasetSpec, fused_as_corrections

    proj = tmp_path / "proj"
    subset = proj / "subsets" / "s"
    subset.mkdir(parents=True)
    (subset / "subset.json").write_text("{}")
    digest = hashlib.sha256(b"{}").hexdigest()
    records = {
        "bicycle": {"config": {"data": "data", "out": "runs/fused/bicycle"},
                    "inputs": {"data": str(proj / "data"), "corrections": [
                        {"path_resolved": str(subset), "subset_json_sha256": digest}]}},
        "car": {"config": {"data": "runs/fused/bicycle", "out": "runs/fused/car"},
                "inputs": {"data": str(proj / "runs" / "fused" / "bicycle")}},
    }  # fmt: skip
    for name, record in records.items():
        (proj / "runs" / "fused" / name).mkdir(parents=True)
        (proj / "runs" / "fused" / name / "fuse.json").write_text(json.dumps(record))
    car = DatasetSpec(root=proj / "runs" / "fused" / "car")
    assert fused_as_corrections(car, subset) == proj / "runs" / "fused" / "bicycle" / "fuse.json"
    moved = tmp_path / "moved"
    proj.rename(moved)
    car = DatasetSpec(root=moved / "runs" / "fused" / "car")
    found = fused_as_corrections(car, moved / "subsets" / "s")
    assert found == moved / "runs" / "fused" / "bicycle" / "fuse.json", found


def test_a_report_of_fused_labels_that_are_the_subset_says_why(loop: Path, monkeypatch):
    """The fused row equals a subset fused as corrections: the report's "measures nothing"
    warning names the fusion, not "is that folder the annotations themselves?"."""
    from engine.datasets import DatasetSpec, fused_as_corrections
    from engine.report import match_warnings

    monkeypatch.chdir(loop)
    fuse_corrected("runs/fused/reported")
    subset = Path("subsets/bicycle-train")
    fused_by = fused_as_corrections(DatasetSpec(root=Path("runs/fused/reported")), subset)
    assert fused_by == Path("runs/fused/reported/fuse.json")
    assert fused_as_corrections(DatasetSpec(root=Path("runs/fused/plain")), subset) is None
    row = {"kind": "fused labels", "matches_annotation": True, "images": 1}
    (line,) = match_warnings([row], subset, fused_by)
    assert "they were fused with this subset as corrections (runs/fused/reported/fuse.json" in line


def test_a_subset_imported_again_unchanged_fuses_only_its_images_again(loop: Path, monkeypatch):
    """The fusion's settings hash covered subset.json's bytes, which hold the import's time:
    importing the same masks again (a routine re-export from the tool) fused every image of
    the dataset again, not only the ones the subset corrects (their masks are written anew).
    Since the forty-fifth round masks written anew with the same bytes are the same inputs:
    none is fused again."""
    monkeypatch.chdir(loop)
    imported = ("annotate", "import", "ann", "--format", "png", "--class", "Bicycle", "--data",
                "data", "--split", "train", "--out", "subsets/again")  # fmt: skip
    fused = ("fuse", "--data", "data", "--pseudo", "runs/label/bicycle", "--corrections",
             "subsets/again", "--out", "runs/fused/again")  # fmt: skip
    for args in (imported, fused):
        assert invoke(*args).exit_code == 0
    first = Path("runs/fused/again/labels/train", f"{STEM}.png").read_bytes()
    time.sleep(1.1)  # subset.json's time is to the second
    assert invoke(*imported).exit_code == 0
    res = invoke(*fused)
    assert "fused 0 images, skipped 5 already done" in res.output, res.output
    assert Path("runs/fused/again/labels/train", f"{STEM}.png").read_bytes() == first


def test_engine_info_of_the_fused_dataset_names_its_corrections(loop: Path, monkeypatch):
    """``engine info FUSED`` said where each new class came from but not that a subset's human
    masks replaced its pseudo labels on some images."""
    monkeypatch.chdir(loop)
    fuse_corrected("runs/fused/info")
    res = runner.invoke(app, ["info", "runs/fused/info", "--no-progress"], env={"COLUMNS": "300"})
    assert (
        "with Bicycle from runs/label/bicycle; Bicycle corrected by subsets/bicycle-train "
        "(1 image of train)" in res.output
    ), res.output
