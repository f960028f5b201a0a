"""engine.info: per-split counts, sizes, class pixel shares and problems in one pass."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotations.labelmap import write_label
from engine.info import dataset_stats, render_stats
from engine.outputs import prediction_settings


def _pair(root: Path, split: str, stem: str, label: np.ndarray) -> None:
    h, w = label.shape
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / "images" / split / f"{stem}.png")
    write_label(root / "annotations" / split / f"{stem}.png", label)


def _info(args: list[str], columns: str = "400"):
    """``engine ARGS`` in a terminal ``columns`` wide: its result and its output on one line."""
    from typer.testing import CliRunner

    from cli import app

    res = CliRunner().invoke(app, args, env={"COLUMNS": columns})
    return res, " ".join(res.output.split())


def test_counts_sizes_and_shares(tmp_path: Path):
    a = np.zeros((4, 5), np.uint8)
    a[:2] = 5  # 10 Sky, 10 Others
    b = np.full((2, 5), 255, np.uint8)
    b[0] = 4  # 5 Ground, 5 ignore
    _pair(tmp_path, "train", "a", a)
    _pair(tmp_path, "train", "b", b)
    _pair(tmp_path, "val", "c", np.full((3, 3), 255, np.uint8))  # all ignore
    stats = dataset_stats(tmp_path, progress=False)
    train, val = stats.splits
    assert (train.split, train.images, train.labelled) == ("train", 2, 2)
    assert train.sizes == {(5, 4): 1, (5, 2): 1}
    np.testing.assert_array_equal(train.class_pixels, [10, 0, 0, 0, 5, 10, 0])
    assert train.ignore_pixels == 5
    np.testing.assert_allclose(train.class_shares, [0.4, 0, 0, 0, 0.2, 0.4, 0])
    assert val.ignore_pixels == 9 and (val.class_shares == 0).all()  # no division by zero
    assert stats.problems == [] and stats.has_labels and train.new_classes == {}
    bike = np.zeros((4, 5), np.uint8)
    bike[3, :3] = 1
    write_label(tmp_path / "new_classes/bicycle/train/a.png", bike)
    (tmp_path / "new_classes/bicycle/train/zz.png").write_bytes(b"junk")  # not a sample: skipped
    assert dataset_stats(tmp_path, progress=False).splits[0].new_classes == {"bicycle": (1, 3)}
    only_val = dataset_stats(tmp_path, splits=["val"], decode=False, progress=False)
    assert [s.split for s in only_val.splits] == ["val"]


def test_dataset_stats_decodes_every_image_unless_told_not_to(tmp_path: Path):
    """A library call without ``decode`` decodes each image as training does (engine info's
    default); ``decode=False`` reads headers only (--no-decode). No test called it with its
    default on an image only decoding tells: headers-only by default passed."""
    _pair(tmp_path, "train", "a", np.zeros((48, 64), np.uint8))
    image = tmp_path / "images" / "train" / "a.png"
    pixels = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    Image.fromarray(pixels).save(image)
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    assert [(p.stem, p.message) for p in dataset_stats(tmp_path, progress=False).problems] == [
        ("a", f"{image}: cannot decode image (image file is truncated)")
    ]
    headers = dataset_stats(tmp_path, decode=False, progress=False).problems
    assert [p.message for p in headers] == [
        f"{image}: cannot read image header (image file is truncated)"
    ]


def test_problems_are_collected_not_raised(tmp_path: Path):
    _pair(tmp_path, "train", "a", np.zeros((2, 2), np.uint8))
    _pair(tmp_path, "train", "b", np.full((2, 2), 9, np.uint8))
    (tmp_path / "images/train/c.png").write_bytes(b"junk")
    write_label(tmp_path / "annotations/train/c.png", np.zeros((2, 2), np.uint8))
    write_label(tmp_path / "annotations/train/orphan.png", np.zeros((2, 2), np.uint8))
    stats = dataset_stats(tmp_path, progress=False)
    (train,) = stats.splits
    assert train.images == 3 and train.labelled == 2  # c's label is fine, b's is not
    msgs = [p.message for p in stats.problems]
    assert len(msgs) == 3
    assert "for 1 label: " in msgs[0] and "label values 9" in msgs[1]
    assert msgs[2].startswith(str(tmp_path / "images/train/c.png"))


def test_workers_give_the_same_report(tmp_path: Path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 5), ("val", 2)):
        for i in range(n):
            _pair(tmp_path, split, f"s{i}", rng.integers(0, 7, (6, 8)).astype(np.uint8))
    _pair(tmp_path, "train", "bad", np.full((6, 8), 9, np.uint8))
    image = tmp_path / "images/train/s3.png"
    data = image.read_bytes()
    image.write_bytes(data[: max(40, len(data) // 2)])  # truncated: found by decoding only
    one = dataset_stats(tmp_path, progress=False)
    two = dataset_stats(tmp_path, progress=False, workers=2)
    for a, b in zip(one.splits, two.splits, strict=True):
        assert (a.split, a.images, a.labelled, a.sizes) == (b.split, b.images, b.labelled, b.sizes)
        np.testing.assert_array_equal(a.class_pixels, b.class_pixels)
        assert a.ignore_pixels == b.ignore_pixels
    assert [p.message for p in one.problems] == [p.message for p in two.problems]
    assert [p.stem for p in one.problems] == ["bad", "s3"]
    assert "cannot decode image" in one.problems[1].message
    zero = dataset_stats(tmp_path, progress=False, workers=0)  # as --workers 0: in this process
    assert [p.message for p in zero.problems] == [p.message for p in one.problems]
    with pytest.raises(ValueError, match="workers must be >= 0"):
        dataset_stats(tmp_path, progress=False, workers=-1)


def test_a_label_that_cannot_be_opened_is_a_problem_not_a_crash(tmp_path: Path, monkeypatch):
    import engine.datasets.samples

    rng = np.random.default_rng(1)
    for i in range(2):
        _pair(tmp_path, "train", f"s{i}", rng.integers(0, 7, (6, 8)).astype(np.uint8))
    read = engine.datasets.samples.read_label
    locked = tmp_path / "annotations/train/s0.png"

    def read_label(path, taxonomy=None):
        if Path(path) == locked:  # chmod 000 does not stop root: the OSError open() raises
            raise PermissionError(13, "Permission denied", str(path))
        return read(path, taxonomy)

    monkeypatch.setattr(engine.datasets.samples, "read_label", read_label)
    stats = dataset_stats(tmp_path, progress=False)
    assert [(p.stem, p.message) for p in stats.problems] == [("s0", f"{locked}: Permission denied")]
    assert stats.splits[0].labelled == 1  # its neighbour is counted


def test_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        dataset_stats(tmp_path / "no", progress=False)
    (tmp_path / "runs" / "bicycle").mkdir(parents=True)  # a typo: its near miss is named
    with pytest.raises(FileNotFoundError) as e:
        dataset_stats(tmp_path / "runs" / "bicyle", progress=False)
    assert str(e.value) == (
        f"{tmp_path / 'runs' / 'bicyle'}: dataset root not found; did you mean "
        f"{tmp_path / 'runs' / 'bicycle'}?"
    )
    shutil.rmtree(tmp_path / "runs")
    with pytest.raises(FileNotFoundError) as e:
        dataset_stats(tmp_path, progress=False)
    assert str(e.value) == (
        f"{tmp_path}: no image split folders found (expected images/{{split}}, e.g. images/train)"
        "; the folder is empty"
    )
    _pair(tmp_path, "train", "a", np.zeros((2, 2), np.uint8))
    with pytest.raises(FileNotFoundError, match="available splits: train"):
        dataset_stats(tmp_path, splits=["test"], progress=False)
    deep = tmp_path / "images" / "train"
    with pytest.raises(FileNotFoundError) as e:  # pointed at ROOT/images/train
        dataset_stats(deep, progress=False)
    assert str(e.value) == (
        f"{deep}: no image split folders found (expected images/{{split}}, e.g. images/train); "
        f"is the dataset root {tmp_path}?"
    )


@pytest.mark.parametrize(
    "record, content, said",
    [
        ("run.json", {"config": {"data": "/data/MaSS13K"}},
         "is a label run (engine label), not a dataset (its dataset: /data/MaSS13K)"),
        ("subset.json", {"data": "/d"}, "is an annotated subset (engine annotate import)"),
        ("predict.json", {"config": {}}, "is a folder of predictions (engine predict), not a"),
        ("run.json", ["not", "an", "object"], "is a label run (engine label), not a dataset"),
    ],
)  # fmt: skip
def test_an_engine_output_given_as_a_dataset_is_named(tmp_path: Path, record, content, said):
    import json

    (tmp_path / record).write_text(json.dumps(content))
    with pytest.raises(FileNotFoundError) as e:
        dataset_stats(tmp_path, progress=False)
    assert str(e.value).startswith(f"{tmp_path}: no image split folders found")
    assert f"{tmp_path} {said}" in str(e.value)


def test_an_engine_outputs_dataset_is_named_as_found_from_here(tmp_path: Path, monkeypatch):
    """A label run records ``data`` as typed in the folder it ran in; given as a dataset from
    another folder, the hint named it as typed ("its dataset: data", no dataset from here). It
    is read from the recorded cwd, as other hints read it."""
    import json

    project, run = tmp_path / "project", tmp_path / "project" / "runs" / "x"
    run.mkdir(parents=True)
    (project / "data").mkdir()
    record = {"config": {"data": "data", "out": "runs/x"}, "environment": {"cwd": str(project)}}
    (run / "run.json").write_text(json.dumps(record))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        dataset_stats(Path("project/runs/x"), progress=False)
    assert str(e.value).endswith(
        "project/runs/x is a label run (engine label), not a dataset (its dataset: "
        f"{project / 'data'})"
    )


@pytest.mark.parametrize(
    "record, typed, what",
    [
        ("run.json", {"config": {"data": "data"}}, "a label run (engine label)"),
        ("subset.json", {"data": "data"}, "an annotated subset (engine annotate import)"),
    ],
)
def test_an_engine_outputs_dataset_is_named_where_it_resolved(
    tmp_path, monkeypatch, record, typed, what
):
    """A record of no cwd nor out (written before they were) holds ``data`` as typed and
    ``data_resolved``: from another folder the hint named "its dataset: data", none from here,
    where read_run_info and Subset.data_root read the resolved one."""
    import json

    project, run = tmp_path / "project", tmp_path / "project" / "runs" / "x"
    run.mkdir(parents=True)
    (project / "data").mkdir()
    (run / record).write_text(json.dumps({**typed, "data_resolved": str(project / "data")}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        dataset_stats(Path("project/runs/x"), progress=False)
    assert str(e.value).endswith(
        f"project/runs/x is {what}, not a dataset (its dataset: {project / 'data'})"
    )


def test_image_only_spec(tmp_path: Path):
    for i, (w, h) in enumerate([(4, 3), (4, 3), (3, 4)]):
        (tmp_path / "photos").mkdir(exist_ok=True)
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp_path / f"photos/{i}.jpg")
    (tmp_path / "dataset.yaml").write_text("images: photos\nlabels: null\n")
    stats = dataset_stats(tmp_path, progress=False)
    (only,) = stats.splits
    assert not stats.has_labels and only.split == "all" and only.images == 3
    assert only.labelled == 0 and only.sizes == {(4, 3): 2, (3, 4): 1}
    text = [str(getattr(r, "title", r)) for r in render_stats(stats)]
    assert "No problems found." in text and not any("Pixel share" in t for t in text)


def test_a_spec_file_is_named_in_the_heading(tmp_path: Path):
    """Two spec files in one folder (``specs/a.yaml``, ``specs/b.yaml``) were each headed
    ``Dataset specs``, their folder: which one was read could not be told."""
    _pair(tmp_path / "data", "test", "a", np.zeros((2, 2), np.uint8))
    (tmp_path / "specs").mkdir()
    for name in ("a", "b"):
        spec = tmp_path / "specs" / f"{name}.yaml"
        spec.write_text("images: ../data/images/{split}\nlabels: ../data/annotations/{split}\n")
        stats = dataset_stats(spec, progress=False)
        assert str(render_stats(stats)[0]) == f"Dataset {spec}"
    assert str(render_stats(dataset_stats(tmp_path / "data", progress=False))[0]) == (
        f"Dataset {tmp_path / 'data'}"
    )


def test_the_release_layout_is_read_and_said_where_its_images_are(tmp_path: Path):
    """The MaSS13K release keeps train and val images in images_pad/ (its configs), images/
    holding test: before, engine info showed the test split alone and "No problems found"."""
    from rich.console import Console

    root = tmp_path / "msem"
    _pair(root, "test", "s", np.zeros((3, 4), np.uint8))
    (root / "images_pad").mkdir()
    for split in ("train", "val"):
        _pair(root, split, "x", np.full((3, 4), 5, np.uint8))
        (root / "images" / split).rename(root / "images_pad" / split)
    stats = dataset_stats(root, progress=False)
    assert [(s.split, s.images, s.labelled) for s in stats.splits] == [
        ("train", 1, 1), ("val", 1, 1), ("test", 1, 1)
    ]  # fmt: skip
    console = Console(width=200, record=True)
    for part in render_stats(stats):
        console.print(part)
    assert (
        "images of train from images_pad/train, val from images_pad/val (the MaSS13K release's "
        "folders; no images/train, images/val here)"
    ) in console.export_text()
    (root / "dataset.yaml").write_text("images: {train: images_pad/train, test: images/test}\n")
    assert not dataset_stats(root, progress=False).release_images  # what the spec says: no note


def test_a_split_of_labels_without_images_is_a_problem_not_left_out(tmp_path: Path):
    """An archive of a download not extracted (the release's val images): its labels were
    there, its split was not listed, and engine info said "No problems found", exit 0."""
    root = tmp_path / "msem"
    _pair(root, "train", "a", np.zeros((3, 4), np.uint8))
    _pair(root, "val", "b", np.zeros((3, 4), np.uint8))
    _pair(root, "test", "c", np.zeros((3, 4), np.uint8))
    shutil.rmtree(root / "images" / "val")
    stats = dataset_stats(root, progress=False)
    assert [(s.split, s.images) for s in stats.splits] == [("train", 1), ("val", 0), ("test", 1)]
    assert [str(p) for p in stats.problems] == [
        f"{root / 'annotations/val'}: 1 label map but no images for split 'val' (no "
        f"{root / 'images/val'}, {root / 'images_pad/val'} or {root / 'images_copy/val'})"
    ]
    assert [s.split for s in dataset_stats(root, ["test"], progress=False).splits] == ["test"]
    (root / "dataset.yaml").write_text("images: pics/{split}\nsplits: [test, val, train]\n")
    (root / "images").rename(root / "pics")
    stats = dataset_stats(root, progress=False)  # a spec's order kept, its template named
    assert [s.split for s in stats.splits] == ["test", "val", "train"]
    assert str(stats.problems[0]).endswith(f"(no {root / 'pics/val'})")


def _fused(root: Path) -> None:
    """A fused-layout dataset: MaSS13K + Bicycle (parent Others), labels/ and sources/."""
    from annotations.taxonomy import MASS13K

    MASS13K.with_new_class("Bicycle").save(root / "taxonomy.json")
    (root / "dataset.yaml").write_text(
        "images: images/{split}\nlabels: labels/{split}\ntaxonomy: taxonomy.json\n"
    )
    for split, stems in (("train", "abc"), ("val", "d")):
        for stem in stems:
            label = np.zeros((4, 5), np.uint8)
            label[:2] = 7  # 10 Bicycle pixels, 10 Others
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(root / f"images/{split}/{stem}.png")
            write_label(root / f"labels/{split}/{stem}.png", label)
            source = np.zeros((4, 5), np.uint8)
            source[:2] = 1  # the Bicycle pixels are pseudo
            source[3, 0] = 2
            write_label(root / f"sources/{split}/{stem}.png", source)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_fused_datasets_source_maps_are_counted_and_checked(tmp_path: Path, workers: int):
    """Source maps are read as training reads them: a missing, resized or out-of-range one is
    a problem naming the file (training would skip its image); a split without any is one
    problem; their pixels are counted per source and shown."""
    from rich.console import Console

    _fused(tmp_path)
    stats = dataset_stats(tmp_path, progress=False, workers=workers)
    train, val = stats.splits
    assert stats.problems == []
    np.testing.assert_array_equal(train.source_pixels, [27, 30, 3])  # 3 images of 20 px
    np.testing.assert_array_equal(val.source_pixels, [9, 10, 1])
    console = Console(width=120, record=True)
    for part in render_stats(stats):
        console.print(part)
    text = console.export_text()
    assert "Pixel sources" in text and "pseudo" in text and "50.00" in text and "5.00" in text
    (tmp_path / "sources/train/a.png").unlink()
    write_label(tmp_path / "sources/train/b.png", np.zeros((2, 5), np.uint8))
    write_label(tmp_path / "sources/train/c.png", np.full((4, 5), 3, np.uint8))
    for path in (tmp_path / "sources/val").iterdir():
        path.unlink()
    (tmp_path / "sources/val").rmdir()
    stats = dataset_stats(tmp_path, progress=False, workers=workers)
    msgs = [p.message for p in stats.problems]
    assert msgs[0].startswith(str(tmp_path / "sources/train/a.png"))
    assert msgs[1] == f"{tmp_path / 'sources/train/b.png'}: source map is 5x2, label is 5x4"
    assert (
        msgs[2] == f"{tmp_path / 'sources/train/c.png'}: source values must be 0, 1 or 2, found 3"
    )
    assert msgs[3].startswith(f"{tmp_path / 'sources/val'}: no source maps, but the taxonomy")
    assert len(msgs) == 4 and stats.splits[1].source_pixels is None
    np.testing.assert_array_equal(stats.splits[0].source_pixels, [0, 0, 0])  # none readable


def test_info_plots_the_class_shares(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a "--plot -" would be written
    from typer.testing import CliRunner

    from cli import app

    _fused(tmp_path / "data")
    out = tmp_path / "shares.png"
    res = CliRunner().invoke(
        app, ["info", str(tmp_path / "data"), "--plot", str(out), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert f"class shares: {out}" in res.output
    with Image.open(out) as img:  # a real PNG, sized for 9 classes
        assert img.format == "PNG" and img.size[1] > img.size[0] * 0.6
    (tmp_path / "img").mkdir()
    (tmp_path / "img/images.yaml").write_text("images: pics/{split}\nlabels: null\n")
    (tmp_path / "img/pics/all").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "img/pics/all/a.png")
    res = CliRunner().invoke(
        app, ["info", str(tmp_path / "img/images.yaml"), "--plot", str(out), "--no-progress"]
    )
    assert res.exit_code == 2 and "has no label maps: no class shares to plot" in res.output
    # --plot - wrote a PNG named "-" in the working directory: refused before the images are read
    res = CliRunner().invoke(app, ["info", str(tmp_path / "data"), "--plot", "-"])
    assert res.exit_code == 2 and "--plot -: the chart is a PNG image" in res.output
    # a class named with two '$' is no mathtext: it failed the chart (ValueError, exit 2)
    for stem in "abc":
        mask = np.ones((4, 5), np.uint8)
        write_label(tmp_path / f"data/new_classes/x$^$y/train/{stem}.png", mask)
    res = CliRunner().invoke(
        app, ["info", str(tmp_path / "data"), "--plot", str(out), "--no-progress"]
    )
    assert res.exit_code == 0 and "x$^$y" in res.output, res.output


def test_info_takes_comma_separated_splits(tmp_path: Path):
    """``engine info DATA --split val,test``, as label, fuse and review take their splits
    (docs/loop.md); it read one split named 'val,test' and stopped: not found."""
    from typer.testing import CliRunner

    from cli import app
    from engine.synth import SynthConfig, generate

    root = generate(SynthConfig(out=tmp_path / "d", train=1, val=1, test=1, size=(64, 64)), False)
    res = CliRunner().invoke(
        app, ["info", str(root), "--split", "val,test", "--no-progress"], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.output
    rows = [line.split()[1] for line in res.output.splitlines() if line.startswith("│ ")]
    assert rows[:2] == ["val", "test"] and "train" not in rows


def test_engine_info_on_a_training_run_shows_where_it_stands(tmp_path):
    """engine info RUN on engine train's --out: its step of the planned iterations (stopped:
    how to continue), recipe, last loss and the last validation, from the files the run
    writes (config.json, metrics.jsonl, resumes.jsonl), without loading a checkpoint."""
    import json

    from typer.testing import CliRunner

    from cli import app
    from engine.info import train_run_stats

    run = tmp_path / "train"
    run.mkdir()
    config = {"preset": "tiny", "data": "runs/fused/bicycle", "iters": 100, "batch_size": 4,
              "lr": 0.003, "init": "", "augment": {"crop": 256, "class_crop_prob": 0.5},
              "seed": 3}  # fmt: skip
    (run / "config.json").write_text(json.dumps({"config": config, "config_hash": "x"}))
    # what a rerun needs besides config.yaml: the commit, versions, kernels and threads
    env = {"git_commit": "abc123", "python": "3.11.7", "cpu_capability": "AVX512",
           "torch_threads": 1, "packages": {"torch": "2.14.1", "numpy": "2.4.6"}}  # fmt: skip
    (run / "environment.json").write_text(json.dumps(env))
    classes = [{"id": 0, "name": "Others", "iou": 17.3, "biou": 8.3, "bf1": 0.367},
               {"id": 7, "name": "Bicycle", "iou": None, "biou": None, "bf1": None,
                "vs": "pseudo labels"}]  # fmt: skip
    lines = [
        {"step": 20, "lr": 0.001, "loss": 20.5, "it_s": 2.0},
        {"step": 40, "lr": 0.002, "loss": 15.25, "it_s": 2.5},
        {"step": 40, "val": {"images": 2, "mIoU": 17.3, "mBIoU": 8.3, "mBF1": 0.367,
                             "classes": classes,
                             "subsets": [{"class": "Bicycle", "images": 8, "iou": 39.4,
                                          "biou": 22.6, "bf1": 0.666}]}},
    ]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run / "resumes.jsonl").write_text('{"step": 20}\n')
    (run / "last.pt").write_bytes(b"")
    stats = train_run_stats(run)
    assert (stats.step, stats.finished, stats.resumes) == (40, False, 1)
    assert stats.last["loss"] == 15.25 and stats.val["step"] == 40
    res = CliRunner().invoke(app, ["info", str(run)], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output  # stopped: unfinished and resumable
    # the run's own folder: a bare --resume continues the default --out, runs/train/run
    assert f"step │ 40 of 100 (stopped: engine train --out {run} --resume continues it)" in text
    assert "last loss │ 15.2500 (step 40, 2.50 it/s)" in text and "resumed │ 1 time" in text
    assert "class crops 0.5, seed 3 │" in text  # the default decoupling: nothing more
    # killed (-9) after step 40 was logged, last.pt at step 30: a --resume goes on from 30,
    # which saved_step.json (written with the checkpoint) says without torch
    from engine.runinfo import record_saved_step

    record_saved_step(run / "last.pt", 30)
    res = CliRunner().invoke(app, ["info", str(run)], env={"COLUMNS": "200"})
    step_line = (
        f"step │ 40 of 100 (stopped: engine train --out {run} --resume continues it from step "
        "30 (last.pt's))"
    )
    assert step_line in " ".join(res.output.split()), res.output
    # a record of the checkpoint before (killed between the two writes): no step claimed, from
    # the time alone (consecutive checkpoints of a run are of one size)
    last = run / "last.pt"
    last.write_bytes(b"x" * 40)
    record_saved_step(last, 30)
    t = last.stat().st_mtime_ns
    last.write_bytes(b"y" * 40)
    os.utime(last, ns=(t, t + 1_000_000))
    res = CliRunner().invoke(app, ["info", str(run)], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    assert f"step │ 40 of 100 (stopped: engine train --out {run} --resume continues it)" in text
    assert (
        "code │ commit abc123; Python 3.11.7, torch 2.14.1, numpy 2.4.6; AVX512 kernels, 1 torch "
        "thread" in text
    )
    assert "│ Bicycle │ n/a │ n/a │ n/a │ pseudo labels │" in text
    assert "│ Bicycle │ 39.40 │ 22.60 │ 0.6660 │ annotated subset (8 images) │" in text
    assert "classes │ not recorded (a run before the forty-third round" in text
    # the classes it learns by id, new ones with their parents (config.json, as train writes it)
    from annotations.taxonomy import MASS13K

    tax = MASS13K.with_new_class("Car").with_new_class("Bicycle").to_dict()
    (run / "config.json").write_text(json.dumps({"config": config, "taxonomy": tax}))
    res = CliRunner().invoke(app, ["info", str(run)], env={"COLUMNS": "200"})
    assert (
        "classes │ 0 Others, 1 Human, 2 Building, 3 Vegetation, 4 Ground, 5 Sky, 6 Water, 7 Car "
        "(new, of Others), 8 Bicycle (new, of Others)" in " ".join(res.output.split())
    )
    (run / "environment.json").unlink()  # a run from before it was written: said, not a crash
    res = CliRunner().invoke(app, ["info", str(run)])
    assert res.exit_code == 1 and "code │ not recorded" in " ".join(res.output.split())
    (run / "config.yaml").write_text("preset: tiny\niters: 100\n")
    (run / "curves.png").write_bytes(b"\x89PNG\r\n")
    # read as dataset specs before: "unknown keys", "not UTF-8 text" (exit 2)
    for inside in ("metrics.jsonl", "last.pt", "config.yaml", "config.json", "curves.png"):
        res = CliRunner().invoke(app, ["info", str(run / inside)])
        assert res.exit_code == 1 and f"Training run {run}" in " ".join(res.output.split())


def test_engine_info_shows_a_training_run_s_decoupling_where_it_is_not_the_default(tmp_path):
    """A run trained with ``pseudo_form: flat``, ``drawn_rule: contact`` or ``all_precise``
    says so on its recipe line; before, it read as a default run's (only batch, crop, lr, class
    crops, seed)."""
    import json

    from typer.testing import CliRunner

    from cli import app

    run = tmp_path / "train"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 5, "loss": 1.5}) + "\n")
    config = {"preset": "tiny", "data": "d", "iters": 10, "batch_size": 2, "lr": 0.003,
              "augment": {"crop": 64, "class_crop_prob": 0.5},
              "loss": {"decoupling": {"pseudo_form": "origin", "drawn_rule": "contact"}}}  # fmt: skip

    def recipe() -> str:
        (run / "config.json").write_text(json.dumps({"config": config}))
        res = CliRunner().invoke(app, ["info", str(run)], env={"COLUMNS": "200"})
        line = [x for x in res.output.splitlines() if "recipe" in x]
        assert line, res.output
        return " ".join(line[0].split())

    assert recipe().endswith("class crops 0.5, drawn rule contact │")
    config["loss"]["decoupling"] = {"pseudo_form": "flat", "drawn_rule": "window"}
    assert recipe().endswith("class crops 0.5, pseudo form flat │")
    config["loss"] = {"decoupling": {}}  # a record before the keys existed: the defaults
    assert recipe().endswith("class crops 0.5 │")
    # every pixel trained as precise (--all-precise): before, it read as a joint run's recipe
    config["all_precise"] = True
    assert recipe().endswith("class crops 0.5, all precise │")
    config["all_precise"] = False
    assert recipe().endswith("class crops 0.5 │")


def test_engine_info_on_a_path_not_found_names_it_not_as_a_dataset_root(tmp_path):
    """``engine info`` takes a dataset, a run, an output or a file one wrote: a path not found
    is said as the path given, with its near miss; before, every one was "dataset root not
    found", a training run's folder and a missing record file too."""
    (tmp_path / "runs" / "train" / "bicycle").mkdir(parents=True)
    for given, hint in (
        (tmp_path / "runs" / "train" / "bicyle", f"; did you mean {tmp_path}/runs/train/bicycle?"),
        (tmp_path / "runs" / "train" / "bicycle" / "last.pt", ""),
        (tmp_path / "scores.json", ""),
    ):
        res, said = _info(["info", str(given)], "300")
        assert res.exit_code == 2 and said == f"error: {given}: not found{hint}", res.output


def test_engine_info_on_a_pick_list_says_it_is_one_and_what_takes_it(tmp_path):
    """``engine info pick.txt`` (engine annotate pick --out, outside its run) or its ``.json``
    record: what was picked, from which split and run, and the export that takes it; before,
    the list was read as a dataset spec: "a dataset spec must be a mapping"."""
    import json

    from typer.testing import CliRunner

    from cli import app

    listed = tmp_path / "pick.txt"
    listed.write_text("a\nb\nc\n")
    record = {"config": {"run": "runs/label/bicycle", "n": 3, "split": "test", "out": str(listed)},
              "class_name": "Bicycle",
              "picks": [{"stem": "a", "reason": "low-confidence"},
                        {"stem": "b", "reason": "low-confidence"},
                        {"stem": "c", "reason": "random"}]}  # fmt: skip
    (tmp_path / "pick.json").write_text(json.dumps(record))
    for given in (listed, tmp_path / "pick.json"):
        res = CliRunner().invoke(app, ["info", str(given)], env={"COLUMNS": "300"})
        text = " ".join(res.output.split())
        assert res.exit_code == 0, res.output
        assert (
            f"{listed}: a pick list (engine annotate pick): 3 images of split 'test' of label run "
            "runs/label/bicycle (Bicycle), 2 low-confidence, 1 random" in text
        ), text
        assert f"next: engine annotate export runs/label/bicycle --images {listed} --out" in text
    # a list without its record (copied alone, written by hand): a list of image names, and
    # the command that takes it; before, read as a dataset spec ("must be a mapping"), exit 2
    (tmp_path / "pick.json").unlink()
    listed.write_text("a\n# the next two by hand\nb.jpg\nimages/test/c.jpg\n")
    res = CliRunner().invoke(app, ["info", str(listed)], env={"COLUMNS": "300"})
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "pick list" not in text and "spec" not in text, res.output
    assert f"{listed}: a list of 3 image names (no pick record pick.json beside it)" in text, text
    assert f"next: engine annotate export RUN --images {listed} --out OUT" in text, text
    # a spec named .txt is still read as a spec, and says what is wrong with it
    listed.write_text("images: images\nsplits: [test]\ncolour: red\n")
    res = CliRunner().invoke(app, ["info", str(listed)], env={"COLUMNS": "300"})
    assert res.exit_code == 2 and "unknown keys ['colour']" in res.output, res.output


def test_engine_info_reads_an_image_list_once(tmp_path, monkeypatch):
    """``engine info list.txt`` tells a list of image names from a dataset spec named ``.txt``
    by reading the file once, as YAML and as lines: before, it read it twice (as YAML, then as
    a list), so a list written between the reads was read two ways."""
    from annotations import fileio
    from engine.info import render_image_list

    listed = tmp_path / "list.txt"
    listed.write_text("a\nb.jpg\n")
    reads: list[Path] = []
    real = fileio.reads.read_bytes

    def counted(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        reads.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fileio.reads, "read_bytes", counted)
    said = render_image_list(listed)
    assert said is not None and said[0].startswith(f"{listed}: a list of 2 image names"), said
    assert reads == [listed]


def test_a_training_run_killed_after_logging_its_last_step_is_not_finished(tmp_path):
    """Killed (-9) after logging its last step (40 of 40) but before last.pt held it (it holds
    step 30), or once it did but during the last validation: engine info said "finished",
    exit 0, and offered engine predict on a last.pt of step 30; a --resume goes on from 30
    (or validates), as trainer.train._finished decides."""
    import json

    from typer.testing import CliRunner

    from cli import app
    from engine.info import train_run_stats
    from engine.runinfo import record_saved_step

    run = tmp_path / "train"
    run.mkdir()
    config = {"preset": "tiny", "data": "d", "iters": 40, "val_split": "val", "augment": {}}
    (run / "config.json").write_text(json.dumps({"config": config}))
    val = {"step": 30, "val": {"images": 1, "mIoU": 1.0, "classes": []}}
    lines = [{"step": 30, "loss": 2.0}, val, {"step": 40, "loss": 1.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run / "last.pt").write_bytes(b"x")
    record_saved_step(run / "last.pt", 30)

    def info() -> tuple[int, str]:
        res = CliRunner().invoke(app, ["info", str(run)], env={"COLUMNS": "200"})
        return res.exit_code, " ".join(res.output.split())

    def stopped() -> str:  # what info says of a run it reads as stopped: exit 1, no "next"
        code, text = info()
        assert code == 1 and "next: engine predict" not in text, text
        return text

    text = stopped()
    assert (
        f"step │ 40 of 40 (stopped: engine train --out {run} --resume continues it from step "
        "30 (last.pt's))" in text
    ), text
    assert (train_run_stats(run).finished, train_run_stats(run).pending) == (False, "checkpoint")
    # last.pt written at step 40, killed during the validation that ends the run
    record_saved_step(run / "last.pt", 40)
    text = stopped()
    assert (
        f"step │ 40 of 40 (stopped during its last validation: engine train --out {run} "
        "--resume validates it)" in text
    ), text
    assert train_run_stats(run).pending == "validation"
    # last.pt's step not known (no saved_step.json: a run before the fiftieth round, a copy):
    # it may hold step 30, so no "validates it" (said in the fifty-first round)
    (run / "saved_step.json").unlink()
    text = stopped()
    assert f"step │ 40 of 40 (stopped: engine train --out {run} --resume continues it) " in text
    record_saved_step(run / "last.pt", 40)
    # its validation logged: finished, exit 0; without validation (--val-split none) too
    val["step"] = 40
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines + [val]))
    code, text = info()
    assert code == 0 and "step │ 40 of 40 (finished)" in text and "next: engine predict" in text
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    config["val_split"] = ""
    (run / "config.json").write_text(json.dumps({"config": config}))
    assert info()[0] == 0 and train_run_stats(run).finished


def test_a_training_run_killed_before_its_first_logged_step_is_a_training_run(tmp_path):
    """engine train writes config.yaml, config.json and environment.json first, metrics.jsonl
    at its first logged step: killed in between (data loading, the model's build), engine
    info said "no image split folders found" (exit 2), as of a wrong folder. It is the run,
    started and stopped with no step logged (exit 1; 0 while it runs), and since there is no
    last.pt to --resume from, the way on is its own config."""
    from typer.testing import CliRunner

    from annotations.taxonomy import MASS13K
    from cli import app
    from engine.runlock import exclusive
    from trainer.config import TrainConfig
    from trainer.train import _write_run_files

    run = tmp_path / "train"
    run.mkdir()
    cfg = TrainConfig(data="runs/fused/bicycle", out=str(run), preset="tiny", iters=50)
    _write_run_files(run, cfg, 0, MASS13K.with_new_class("Bicycle"))
    assert sorted(p.name for p in run.iterdir()) == [
        "config.json",
        "config.yaml",
        "environment.json",
    ]

    def info(*args):
        res = CliRunner().invoke(app, ["info", *args], env={"COLUMNS": "400"})
        return res.exit_code, " ".join(res.output.split())

    code, text = info(str(run))
    assert code == 1 and f"Training run {run}" in text, text
    assert (
        f"step │ 0 of 50 (started, no step logged; stopped before its first checkpoint: engine "
        f"train --config {run / 'config.yaml'} --out {run} --data "
        f"{os.path.join(os.getcwd(), 'runs/fused/bicycle')} starts it again)" in text
    )
    assert "7 Bicycle (new, of Others)" in text and "no image split folders" not in text
    assert info(str(run / "config.yaml"))[1] == text  # a file of it names the run
    with exclusive(run, "engine train"):
        code, text = info(str(run))
    assert code == 0 and "(started, no step logged; running now: engine train" in text
    model = tmp_path / "gdino"  # a model folder's config.json alone is no training run
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "grounding-dino"}')
    assert "Training run" not in info(str(model))[1]
    (model / "config.yaml").write_text("a: 1\n")  # nor beside a config.yaml: no "config" in it
    assert info(str(model)) == (
        2,
        f"error: {model}: no image split folders found (expected images/{{split}}, e.g. "
        "images/train)",
    )


def test_engine_info_on_a_subset_and_on_predictions(tmp_path):
    """engine info on an annotated subset: class, split, images, pixels, where the annotations
    came from (a warning when imported as exported); on a prediction folder: the checkpoint,
    step and weights, size, inference and label maps, from predict.json."""
    import json
    import shutil

    import numpy as np
    from typer.testing import CliRunner

    from annotations.labelmap import write_label
    from annotations.subset import write_subset
    from cli import app

    masks = {"a": np.zeros((10, 20), np.uint8), "b": np.zeros((10, 20), np.uint8)}
    masks["a"][2:4, 2:7] = 1  # 10 of the 400 pixels
    masks["b"][0, :4] = 255
    extra = {"import_format": "coco", "data": "data", "unchanged_exports": ["runs/label/bicycle"]}
    write_subset(tmp_path / "sub", "Bicycle", "test", masks, dict.fromkeys(masks, "c.json"), extra)
    res = CliRunner().invoke(app, ["info", str(tmp_path / "sub")])
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "images │ 2 (1 with Bicycle)" in text and "Bicycle pixels │ 10 (2.50%)" in text
    assert "unannotated pixels │ 4 (1.00%)" in text and "annotations from │ c.json" in text
    assert "warning: imported exactly as exported from runs/label/bicycle" in text
    # PNG masks read by one value: the import that made them says so (subset.json records it)
    options = {"import_format": "png", "import_options": {"png_binary": False, "png_value": 2}}
    write_subset(tmp_path / "voc", "Bicycle", "test", masks, dict.fromkeys(masks, "v"), options)
    res = CliRunner().invoke(app, ["info", str(tmp_path / "voc")], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "(png, --png-value 2)" in res.output, res.output
    shutil.rmtree(tmp_path / "voc")  # the folder's listing below shows the others
    # every mask is read: one edited after the import, one truncated, one missing are listed
    # (exit 1); the subset's table was shown clean, or a missing mask was the only error
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "sub", bad)
    edited = masks["a"].copy()
    edited[5, 5] = 1
    write_label(bad / "masks" / "a.png", edited)
    res = CliRunner().invoke(app, ["info", str(bad)], env={"COLUMNS": "300"})
    assert res.exit_code == 1, res.output
    assert "1 problem found:" in res.output
    assert f"{bad / 'masks' / 'a.png'}: differs from what subset.json records (size 20x10, 11 " in (
        res.output
    )
    (bad / "masks" / "a.png").write_bytes((tmp_path / "sub/masks/a.png").read_bytes()[:40])
    (bad / "masks" / "b.png").unlink()
    res = CliRunner().invoke(app, ["info", str(bad)], env={"COLUMNS": "300"})
    assert res.exit_code == 1 and "2 problems found:" in res.output, res.output
    assert f"{bad / 'masks' / 'b.png'}: mask listed in subset.json is missing" in res.output
    assert f"{bad / 'masks' / 'a.png'}: cannot read label image" in res.output
    pred = tmp_path / "pred"
    write_label(pred / "a.png", np.zeros((10, 20), np.uint8))
    write_label(pred / "color" / "a.png", np.zeros((10, 20), np.uint8))  # a preview: not counted
    config = {"checkpoint": "runs/train/x/last.pt", "size": [512, 384], "mode": "efficient",
              "scales": [1.0], "flip": True}  # fmt: skip
    record = {"config": config, "checkpoint_step": 1000, "weights_sha256": "ab12cd34",
              "trained_on": {"data": "runs/fused", "split": "train"},
              "size_source": "the checkpoint's validation size",
              "taxonomy": {"classes": [{"id": 0, "name": "Others"}]}}  # fmt: skip
    (pred / "predict.json").write_text(json.dumps(record))
    res = CliRunner().invoke(app, ["info", str(pred)])
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "checkpoint │ runs/train/x/last.pt (step 1,000, weights ab12cd34)" in text
    assert "size │ 512x384 (the checkpoint's validation size)" in text
    assert "trained on │ split train of runs/fused" in text
    assert "inference │ flip" in text and "label maps │ 1" in text
    assert "mode │ efficient │" in text  # an older record: no device said
    # what --device auto and --amp came to, shown and carried into a report's prediction record
    ran = {**record, "device_used": "cuda:0", "autocast": "bfloat16"}
    (pred / "predict.json").write_text(json.dumps(ran))
    res = CliRunner().invoke(app, ["info", str(pred)])
    assert "mode │ efficient, on cuda:0 with bfloat16 autocast" in " ".join(res.output.split())
    settings = prediction_settings(pred)
    assert (settings["device_used"], settings["autocast"]) == ("cuda:0", "bfloat16")
    # a folder of engine outputs (runs/predict/, the demo's label/): each one described, the
    # problems of all counted in the exit code; it was "no image split folders found"
    (pred / "predict.json").write_text(json.dumps({**record, "failed": [{"image": "c.jpg"}]}))
    write_subset(tmp_path / "sub2", "Car", "test", masks, dict.fromkeys(masks, "c.json"))
    res = CliRunner().invoke(app, ["info", str(tmp_path)])
    assert res.exit_code == 1, res.output
    heads = [line for line in res.output.splitlines() if line.startswith(("Pred", "Annot"))]
    assert heads == [f"Annotated subset {bad}", f"Predictions {pred}",
                     f"Annotated subset {tmp_path / 'sub'}",
                     f"Annotated subset {tmp_path / 'sub2'}"]  # fmt: skip


def test_a_dataset_whose_spec_puts_images_elsewhere_is_a_dataset_beside_its_outputs(tmp_path):
    """A root with a spec (images in photos/) holding a prediction folder was shown as "a
    folder of engine outputs": only images/ made a folder a dataset."""
    import json

    from typer.testing import CliRunner

    from cli import app

    _pair(tmp_path, "test", "a", np.zeros((4, 5), np.uint8))
    (tmp_path / "images").rename(tmp_path / "photos")
    (tmp_path / "dataset.yaml").write_text("images: photos/{split}\nlabels: annotations/{split}\n")
    write_label(tmp_path / "pred" / "a.png", np.zeros((4, 5), np.uint8))
    record = {"config": {"checkpoint": "x.pt"}, "taxonomy": {"classes": [{"id": 0, "name": "O"}]}}
    (tmp_path / "pred" / "predict.json").write_text(json.dumps(record))
    res = CliRunner().invoke(app, ["info", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert f"Dataset {tmp_path}" in res.output and "Predictions" not in res.output


# -- a label run -------------------------------------------------------------------------------
def _label_run(tmp_path: Path, records: list[dict]) -> tuple[Path, Path]:
    """A dataset with splits train, val, test (one image each) and a label run of it whose
    manifest holds ``records``, with their pseudo labels for those that are ok."""
    import json

    from tests.loop_helpers import make_run

    data, run = tmp_path / "data", tmp_path / "run"
    for split in ("train", "val", "test"):
        _pair(data, split, f"{split}0", np.zeros((4, 5), np.uint8))
    for rec in records:
        if rec["status"] == "ok":
            make_run(run, data, {rec["stem"]: []}, (4, 5), split=rec["split"])
    run.mkdir(exist_ok=True)
    make_run(run, data, {}, (4, 5))  # run.json only, where nothing was labelled
    (run / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return data, run


def _train_run(folder: Path, iters: int, step: int) -> Path:
    """A training run's folder of ``iters`` steps, its metrics logged up to ``step``."""
    import json

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"config": {"iters": iters}}))
    (folder / "metrics.jsonl").write_text(json.dumps({"step": step, "loss": 1.0}) + "\n")
    return folder


def test_a_label_run_names_which_files_hold_what(tmp_path: Path):
    """``engine info RUN`` names the run's files and what each holds, the confidence map among
    them as a file of its own that the instances cannot rebuild (docs/labeler.md, "Outputs"):
    before, it named none, and a user who kept ``instances/`` alone lost the confidence."""
    from engine.info import LABEL_RUN_FILES

    done = [{"split": "train", "stem": "train0", "status": "ok", "config_hash": ""}]
    _, run = _label_run(tmp_path, done)
    res, said = _info(["info", str(run), "--no-progress"], "500")
    assert f"│ files │ {LABEL_RUN_FILES}" in said, said
    for part in ("labels/SPLIT/STEM.png: the pseudo label", "instances/SPLIT/STEM.json: each "
                 "instance's box, scores, prompt and binary mask", "confidence/SPLIT/STEM.png: "
                 "each pixel's confidence (0..255), which the instances cannot rebuild"):  # fmt: skip
        assert part in LABEL_RUN_FILES


def test_a_label_run_where_every_image_failed_is_shown_with_the_reasons(tmp_path: Path):
    """Before: "not a label run (expected labels/<split>/ ...); it is a label run", exit 2."""
    import json

    from typer.testing import CliRunner

    from cli import app

    bad = {"split": "train", "stem": "train0", "status": "failed", "error": "x.jpg: truncated"}
    _, run = _label_run(tmp_path, [bad])
    assert not (run / "labels").exists()
    record = json.loads((run / "run.json").read_text())
    record["environment"] = {"git_commit": "abc123", "packages": {"torch": "2.14.1"}}
    (run / "run.json").write_text(json.dumps(record))
    res = CliRunner().invoke(app, ["info", str(run), "--no-progress"], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "code │ commit abc123; torch 2.14.1" in text  # what a rerun needs: the commit
    assert (
        "1 image failed: train/train0: x.jpg: truncated "
        "1 image failed; run the same command again to retry exactly those images not labelled"
    ) in text


def test_a_label_run_offers_no_retry_for_images_too_thin_to_label(tmp_path: Path):
    """engine info RUN_DIR closes as engine label's summary does (one helper): an image whose
    record says ``retry`` false (too thin for a model's resize) fails on every run. Before, it
    said "run the same command again to retry" for it; a record without the field (an older
    run's) is retried."""
    from typer.testing import CliRunner

    from cli import app

    thin = "x.png is 1x3000 px (HxW), too thin to label: the detector's processor ..."
    records = [
        {"split": "train", "stem": "train0", "status": "failed", "error": "x.jpg: truncated"},
        {"split": "val", "stem": "val0", "status": "failed", "error": thin, "retry": False},
    ]
    _, run = _label_run(tmp_path, records)
    res = CliRunner().invoke(app, ["info", str(run), "--no-progress"], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert (
        f"2 images failed: train/train0: x.jpg: truncated val/val0: {thin} "
        "1 image failed; run the same command again to retry exactly those "
        "1 image cannot be labelled by this backend (too thin to label: a model would resize it "
        "to 0 px across); running again fails it again images not labelled yet"
    ) in text, text


def test_a_label_run_shows_every_split_it_is_to_label(tmp_path: Path):
    """A sharded run that labelled nothing of val yet: val's row (1 not yet) was left out."""
    from engine.info import label_run_stats

    done = [
        {"split": s, "stem": f"{s}0", "status": "ok", "config_hash": ""} for s in ("train", "test")
    ]
    _, run = _label_run(tmp_path, done)
    stats = label_run_stats(run)
    assert list(stats.splits) == ["train", "val", "test"]
    assert [(r.labelled, r.pending) for r in stats.splits.values()] == [(1, 0), (0, 1), (1, 0)]


def test_a_label_run_says_which_photos_were_replaced_since_labelled(tmp_path: Path):
    """A dataset downloaded again (same names, new bytes): the labeler's resume labels such
    images again, but engine info counted them labelled and said nothing of it."""
    import json

    from engine.info import label_run_stats, render_label_run

    done = [
        {"split": s, "stem": f"{s}0", "status": "ok", "config_hash": "", "image_bytes": 0}
        for s in ("train", "val", "test")
    ]
    data, run = _label_run(tmp_path, done)
    sizes = {
        s: (data / "images" / s / f"{s}0.png").stat().st_size for s in ("train", "val", "test")
    }
    done = [{**r, "image_bytes": sizes[r["split"]] + (r["split"] == "val")} for r in done]
    (run / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in done))
    stats = label_run_stats(run)
    assert stats.changed == ["val/val0"]
    assert (
        "note: 1 image changed since labelled (val/val0: another file size; a photo replaced?): "
        "their pseudo labels are the old photos'; the same engine label command labels them again"
    ) in [str(x) for x in render_label_run(stats)]


def test_a_label_run_shows_the_settings_it_was_run_with_and_leaves_out_unset_ones(tmp_path: Path):
    """Each setting recorded in run.json is a row of its table; a setting not set (None, an
    empty list, "", min_area 0, refine off) is no row, and a simulated run shows its simulation
    instead of the detector's settings. No test looked at these rows: all of them left out (or
    every unset one shown) passed."""
    import json

    from typer.testing import CliRunner

    from cli import app
    from engine.info import label_run_stats

    ok = [
        {"split": s, "stem": f"{s}0", "status": "ok", "config_hash": ""}
        for s in ("train", "val", "test")
    ]
    _, run = _label_run(tmp_path, ok)
    record = json.loads((run / "run.json").read_text())
    record["backend"] = {"name": "grounded_sam", "identity": {}, "models": {}}
    record["config"]["cls"].update(
        prompts=["bicycle", "bike"], negatives=[], box_threshold=0.3, text_threshold=0.25,
        min_area=0, max_instances=None,
    )  # fmt: skip
    record["config"].update(tiles=[2, 3], uncertain=0.5, max_boxes=20, refine=False)
    (run / "run.json").write_text(json.dumps(record))
    assert label_run_stats(run).settings == {
        "prompts": ["bicycle", "bike"],
        "box_threshold": 0.3,
        "text_threshold": 0.25,
        "tiles": "2x3",
        "uncertain": 0.5,
        "max_boxes": 20,
    }
    res = CliRunner().invoke(app, ["info", str(run), "--no-progress"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    rows = [" ".join(line.strip("│ ").split()) for line in res.output.splitlines()]
    assert "prompts │ bicycle, bike" in rows and "tiles │ 2x3" in rows
    assert not [r for r in rows if r.startswith(("negatives", "min_area", "refine", "max_inst"))]
    record["backend"] = {"name": "simulated", "identity": {}, "models": {}}
    record["backend"]["models"]["simulation"] = {"miss": 0.1, "seed": 3}
    record["config"]["cls"].update(negatives=["motorcycle"], min_area=5)
    (run / "run.json").write_text(json.dumps(record))
    assert label_run_stats(run).settings == {
        "simulation": "miss 0.1, seed 3",
        "negatives": ["motorcycle"],
        "uncertain": 0.5,
        "min_area": 5,
    }


def test_a_finished_label_or_training_run_says_what_comes_next(tmp_path: Path):
    """A finished label run or training run ended with its tables: the command the loop runs
    next (review and fuse; predict) had to be looked up in the README."""
    from typer.testing import CliRunner

    from cli import app

    def text(path: Path) -> str:
        res = CliRunner().invoke(app, ["info", str(path)], env={"COLUMNS": "400"})
        assert res.exit_code == 0, res.output
        return " ".join(res.output.split())

    done = [{"split": s, "stem": f"{s}0", "status": "ok", "config_hash": ""}
            for s in ("train", "val", "test")]  # fmt: skip
    data, run = _label_run(tmp_path, done)
    assert text(run).endswith(
        f"next: engine review {run} (look at them), engine fuse --data {data} --pseudo {run} "
        "--out FUSED (joint-training labels)"
    )
    train = _train_run(tmp_path / "train", iters=4, step=4)
    (train / "last.pt").write_bytes(b"")
    assert text(train).endswith(
        f"next: engine predict --checkpoint {train / 'last.pt'} --data DATA --split test --out "
        "PRED (then engine report or compare against an annotated subset)"
    )


def test_a_stopped_label_or_training_run_or_demo_exits_1_as_unfinished(tmp_path: Path):
    """A label run with images not labelled yet, a training run short of its iterations and a
    demo without its summary, no process at them now, exited 0 as if finished, where a stopped
    predict, fusion or review exits 1: unfinished and resumable is 1 (0 while one runs)."""
    import json

    from typer.testing import CliRunner

    from cli import app
    from engine.runlock import exclusive

    def code(path: Path) -> int:
        return CliRunner().invoke(app, ["info", str(path), "--no-progress"]).exit_code

    done = [{"split": s, "stem": f"{s}0", "status": "ok", "config_hash": ""} for s in ("train",)]
    _, run = _label_run(tmp_path, done)
    assert code(run) == 1
    with exclusive(run, "engine label"):
        assert code(run) == 0  # labelling the rest now
    train = _train_run(tmp_path / "train", iters=10, step=4)
    assert code(train) == 1
    with exclusive(train, "engine train"):
        assert code(train) == 0
    (train / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 1.0}) + "\n")
    assert code(train) == 0  # finished
    demo = tmp_path / "demo"
    (demo / "data" / "synth.json").parent.mkdir(parents=True)
    (demo / "data" / "synth.json").write_text("{}")
    (demo / "label").mkdir()
    assert code(demo) == 1
    with exclusive(demo, "engine demo"):
        res = CliRunner().invoke(app, ["info", str(demo)])
        assert res.exit_code == 0 and "running now: engine demo (pid " in res.output


@pytest.mark.parametrize("lock", [".lock", ".lock-shard1of2"])
def test_a_labelled_run_a_live_label_run_writes_again_is_not_said_finished(tmp_path, lock):
    """Every image labelled with run.json's settings, while an engine label into the run (new
    settings or --force, before it rewrites run.json; a shard of one) holds its lock: engine
    info ended with "next: engine review ..., engine fuse ..." as of a finished run. Now the
    unfinished line of a live writer, exit 0; the lock free, the next step as before."""
    from engine.runlock import exclusive

    done = [{"split": s, "stem": f"{s}0", "status": "ok", "config_hash": ""}
            for s in ("train", "val", "test")]  # fmt: skip
    _, run = _label_run(tmp_path, done)
    args = ["info", str(run), "--no-progress"]
    with exclusive(run, "engine label", lock):
        res, text = _info(args)
    assert res.exit_code == 0, res.output
    assert re.search(
        r"unfinished: engine label \(pid \d+ on [^)]*\) is writing it now: wait for it to "
        r"finish \(it may label these images again, or more\)$",
        text,
    ), text
    assert "next: " not in text
    res, text = _info(args)
    assert res.exit_code == 0 and "unfinished" not in text and "next: engine review" in text


def test_a_finished_training_run_a_live_train_writes_again_is_not_said_finished(tmp_path):
    """A training run at its last step, last.pt written, while an engine train --resume
    --iters MORE holds its lock (building its data and model, before it rewrites config.json):
    engine info said "finished" and "next: engine predict --checkpoint RUN/last.pt", a
    checkpoint about to be replaced. Now "running now", exit 0; the lock free, as before."""
    from engine.runlock import exclusive

    train = _train_run(tmp_path / "train", iters=4, step=4)
    (train / "last.pt").write_bytes(b"")
    args = ["info", str(train), "--no-progress"]
    with exclusive(train, "engine train"):
        res, text = _info(args, "300")
    assert res.exit_code == 0, res.output
    assert re.search(r"step │ 4 of 4 \(running now: engine train \(pid \d+ on ", text), text
    assert "(finished)" not in text and "next: " not in text
    res, text = _info(args, "300")
    assert (
        res.exit_code == 0 and "step │ 4 of 4 (finished)" in text and "next: engine predict" in text
    )


def test_a_subset_a_live_import_writes_again_is_said_to_be_the_earlier_one(tmp_path: Path):
    """An annotated subset while engine annotate import --out SUBSET holds its lock (reading
    and checking the new annotations, then swapping them in): engine info showed the old subset
    as the subset, without a word, where a review gallery drawn again says so. Now a row says
    which import writes it and that this is the earlier subset, exit 0; the lock free, none."""
    from annotations.subset import write_subset
    from engine.runlock import exclusive

    masks = {"a": np.zeros((10, 20), np.uint8)}
    sub = tmp_path / "sub"
    write_subset(sub, "Bicycle", "test", masks, {"a": "c.json"}, {"import_format": "coco"})
    args = ["info", str(sub)]
    with exclusive(sub, "engine annotate import"):
        res, text = _info(args, "300")
    assert res.exit_code == 0, res.output
    assert re.search(
        r"now │ engine annotate import \(pid \d+ on [^)]*\) is importing into it again \(this "
        r"is the earlier subset\)",
        text,
    ), text
    res, text = _info(args, "300")
    assert res.exit_code == 0 and "now │" not in text, res.output


def test_a_report_or_demo_a_live_run_writes_again_is_said_to_be_the_earlier_one(tmp_path):
    """A report folder while engine report --out REPORT holds its lock (scoring again), a demo
    folder with its summary while engine demo --out DEMO runs again: engine info showed the
    earlier report's table and the earlier demo's effect ("under 15 minutes: yes") without a
    word, where a review gallery drawn again says so. Now a line names the process and says
    this is the earlier one, exit 0; the lock free, none."""
    import json

    from engine.runlock import exclusive

    report = tmp_path / "rep"
    report.mkdir()
    row = {"source": "pseudo labels", "iou": 50.0, "biou": 20.0, "bf1": 0.3}
    record = {"class_name": "Bicycle", "subset": "s", "split": "test", "table4": [row]}
    (report / "report.json").write_text(json.dumps(record))
    demo = tmp_path / "demo"
    (demo / "report").mkdir(parents=True)
    summary = {"classes": {"Bicycle": [{**row, "source": "fused labels"}]}}
    (demo / "report" / "summary.json").write_text(json.dumps(summary))
    for folder, command, said in (
        (report, "engine report", "is writing it again (this is the earlier report)"),
        (demo, "engine demo", "is running it again (this is the earlier demo's summary)"),
    ):
        with exclusive(folder, command):
            res, text = _info(["info", str(folder)], "300")
        assert res.exit_code == 0, res.output
        assert re.search(rf"now: {command} \(pid \d+ on [^)]*\) {re.escape(said)}", text), text
        res, text = _info(["info", str(folder)], "300")
        assert res.exit_code == 0 and "now: " not in res.output, res.output


def test_an_export_a_live_export_writes_again_is_said_to_be_the_earlier_one(tmp_path: Path):
    """A COCO export folder (or its coco.json) while engine annotate export --force into it
    holds its lock: engine info said "problems: none" and gave the import line of files about
    to be replaced. Now a line names the export and says these are the earlier files, exit 0;
    the lock free, none."""
    import json

    from engine.runlock import exclusive

    out = tmp_path / "e"
    out.mkdir()
    polygon = {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4]]}
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}],
        "categories": [{"id": 1, "name": "Bicycle"}],
        "annotations": [{**polygon, "bbox": [0, 0, 4, 4], "area": 8, "iscrowd": 0}],
    }
    (out / "coco.json").write_text(json.dumps(coco))
    for given in (out, out / "coco.json"):
        with exclusive(out, "engine annotate export"):
            res, text = _info(["info", str(given)], "300")
        assert res.exit_code == 0, res.output
        assert re.search(
            r"now: engine annotate export \(pid \d+ on [^)]*\) is writing it again \(these "
            r"are the earlier files\)$",
            text,
        ), text
        res, text = _info(["info", str(given)], "300")
        assert res.exit_code == 0 and "now: " not in res.output, res.output


def test_a_run_with_failed_images_a_live_label_run_writes_is_not_told_to_run_again(tmp_path):
    """A label run with a failed image while an engine label into it holds its lock: engine
    info exited 1 and said "run the same command again to retry exactly those", a command its
    lock refuses now. Now the unfinished line of a live writer, which may try it again, exit 0;
    the lock free, the retry advice and exit 1 as before."""
    from engine.runlock import exclusive

    bad = {"split": "train", "stem": "train0", "status": "failed", "error": "x.jpg: truncated"}
    done = [{"split": s, "stem": f"{s}0", "status": "ok", "config_hash": ""} for s in ("val", "test")]  # fmt: skip
    _, run = _label_run(tmp_path, [bad, *done])
    args = ["info", str(run), "--no-progress"]
    with exclusive(run, "engine label"):
        res, text = _info(args)
    assert res.exit_code == 0, res.output
    assert re.search(
        r"1 image failed: train/train0: x\.jpg: truncated unfinished: engine label \(pid \d+ on "
        r"[^)]*\) is writing it now: wait for it to finish \(it may try this image again\)$",
        text,
    ), text
    assert "run the same command again" not in text
    res, text = _info(args)
    assert res.exit_code == 1 and text.endswith(
        "1 image failed; run the same command again to retry exactly those"
    ), res.output


def test_a_sharded_run_with_failed_images_tells_a_live_shards_from_the_others(tmp_path):
    """A run labelled with --shard i/2 (run.json), train0 (shard 0/2's, run.json's plan
    dealt out as engine label deals it) and val0 (shard 1/2's) failed, shard 1/2 running: its
    image it may try again; shard 0/2's is retried by engine label --shard 0/2, which its
    lock does not refuse (both running: both may be tried again). Before, "run the same command again to retry exactly those" of
    both, exit 1."""
    import json

    from engine.info import label_run_stats, render_label_run
    from engine.runlock import exclusive

    bad = [{"split": s, "stem": f"{s}0", "status": "failed", "error": "bad"} for s in ("train", "val")]  # fmt: skip
    ok = {"split": "test", "stem": "test0", "status": "ok", "config_hash": ""}
    _, run = _label_run(tmp_path, [*bad, ok])
    doc = json.loads((run / "run.json").read_text())
    doc["config"].update(shard=[1, 2], splits=["train", "val", "test"])
    (run / "run.json").write_text(json.dumps(doc))
    with exclusive(run, "engine label", ".lock-shard1of2"):
        said = render_label_run(label_run_stats(run))[2].splitlines()
    assert re.fullmatch(
        r"unfinished: engine label \(pid \d+ on [^)]*\) is writing it now: wait for it to "
        r"finish \(it may try 1 image of these again: its shard's\)",
        said[-2],
    ), said
    assert said[-1] == (
        "failed in shards not running now (shard 0/2: 1 image): run engine label again with "
        "--shard 0/2 to retry them (it resumes)"
    )
    with exclusive(run, "engine label", ".lock-shard0of2"), exclusive(run, "engine label", ".lock-shard1of2"):  # fmt: skip
        said = render_label_run(label_run_stats(run))[2].splitlines()
    assert said[-1].endswith("(it may try 2 images of these again: the running shards')"), said
    # a shard's lock and another (an engine label of the whole run into it): which images it
    # may try again is not known, nor whether shard 0/2's are left for its --shard
    with exclusive(run, "engine label"), exclusive(run, "engine label", ".lock-shard1of2"):
        said = render_label_run(label_run_stats(run))[2].splitlines()
    assert said[-1].endswith("is writing it now: wait for it to finish (it may try these images again)"), said  # fmt: skip
    assert "run the same command again" in render_label_run(label_run_stats(run))[2]


def test_a_pairing_problem_of_the_runs_dataset_is_a_note(tmp_path: Path):
    """A label of the dataset without its image stopped engine info RUN with the dataset's
    error (exit 2); the run is shown, the problem a note."""
    from engine.info import label_run_stats, render_label_run

    done = [{"split": "train", "stem": "train0", "status": "ok", "config_hash": ""}]
    data, run = _label_run(tmp_path, done)
    write_label(data / "annotations" / "train" / "stray.png", np.zeros((4, 5), np.uint8))
    stats = label_run_stats(run)
    assert stats.splits["train"].labelled == 1 and stats.problems == 0
    assert stats.notes == [
        f"{data / 'annotations/train'}: no image in {data / 'images/train'} for 1 label: stray"
    ]
    assert f"note: its dataset: {stats.notes[0]} (engine info {data} lists its problems)" in (
        render_label_run(stats)
    )


def test_a_moved_fused_dataset_names_its_source_and_images_entry(tmp_path: Path):
    """A fused dataset whose source is no longer where ``images:`` points was told ``is the
    dataset root PARENT?``, a folder two levels up that the relative entry happened to reach."""
    import json

    _pair(tmp_path / "data", "train", "a", np.zeros((2, 2), np.uint8))
    fused = tmp_path / "moved" / "deeper" / "fused"
    write_label(fused / "labels" / "train" / "a.png", np.zeros((2, 2), np.uint8))
    (fused / "dataset.yaml").write_text(
        "images: ../../data/images/{split}\nlabels: labels/{split}\n"
    )
    source = {"data": "/was/data", "images": "/was/data/images/{split}"}
    (fused / "fuse.json").write_text(json.dumps({"inputs": source}))
    with pytest.raises(FileNotFoundError) as e:
        dataset_stats(fused, progress=False)
    assert "is the dataset root" not in str(e.value)
    assert str(e.value).endswith(
        "; it is a fused dataset (engine fuse) of /was/data (its fuse.json), whose images it "
        "reads through the images: entry of dataset.yaml, relative to this folder; if either "
        "was moved, set that entry to /was/data/images/{split}"
    )


def test_info_says_which_process_is_writing_a_run_now(tmp_path: Path):
    """A training run engine train was still writing was shown "stopped: engine train --resume
    continues it", a label run still labelling "run engine label again to finish", and a
    prediction folder still being filled gave its count of maps so far as the count."""
    import json
    import os

    from typer.testing import CliRunner

    from cli import app
    from engine.info import label_run_stats, render_label_run
    from engine.runlock import exclusive

    me = f"(pid {os.getpid()} on "
    done = [{"split": s, "stem": f"{s}0", "status": "ok", "config_hash": ""} for s in ("train",)]
    _, run = _label_run(tmp_path, done)
    with exclusive(run, "engine label", ".lock-shard1of2"):
        lines = render_label_run(label_run_stats(run))
    assert f"images not labelled yet: engine label {me}" in lines[-1]
    assert "run engine label again" in render_label_run(label_run_stats(run))[-1]  # killed

    train = tmp_path / "train"
    train.mkdir()
    config = {"preset": "tiny", "data": "d", "iters": 100, "augment": {}}
    (train / "config.json").write_text(json.dumps({"config": config}))
    (train / "metrics.jsonl").write_text('{"step": 40, "loss": 1.5, "it_s": 2.0}\n')
    pred = tmp_path / "pred"
    write_label(pred / "a.png", np.zeros((4, 5), np.uint8))
    (pred / "predict.json").write_text(json.dumps({"config": {"checkpoint": "x.pt"}}))
    for folder, command, said in (
        (train, "engine train", f"step │ 40 of 100 (running now: engine train {me}"),
        (pred, "engine predict", f"label maps │ 1 so far: engine predict {me}"),
    ):
        with exclusive(folder, command):
            text = " ".join(
                CliRunner()
                .invoke(app, ["info", str(folder)], env={"COLUMNS": "300"})
                .output.split()
            )
        assert said in text, text
    wide = {"COLUMNS": "300"}
    text = " ".join(CliRunner().invoke(app, ["info", str(train)], env=wide).output.split())
    # killed before its first last.pt, no config.yaml: "--resume continues it" before, which
    # failed with "checkpoint not found"; the command that started it starts it again
    assert "--resume continues it" not in text, text
    assert (
        "(stopped before its first checkpoint: run the command that started it again (no "
        f"last.pt to --resume from; its settings: {train / 'config.json'}))" in text
    )
    (train / "last.pt").write_bytes(b"")
    text = " ".join(CliRunner().invoke(app, ["info", str(train)], env=wide).output.split())
    assert "(stopped: engine train --out" in text and "--resume continues it)" in text
    (train / "last.pt").unlink()  # the loss blew up before the first checkpoint: no resume
    with (train / "metrics.jsonl").open("a") as f:
        f.write('{"step": 41, "event": "non_finite", "terms": {"loss_ce": NaN}}\n')
    text = " ".join(CliRunner().invoke(app, ["info", str(train)], env=wide).output.split())
    assert "check the data, then run the command that started it again (no last.pt" in text


@pytest.mark.parametrize("decoy", [False, True])
def test_a_run_stopped_before_its_checkpoint_is_started_again_from_another_folder(
    tmp_path, monkeypatch, decoy
):
    """config.yaml holds ``out`` and ``data`` as typed, relative to where the run started:
    ``engine train --config RUN/config.yaml``, which engine info suggested, failed from another
    working directory (``data: dataset root not found``) or trained into another folder. The
    command it suggests now names the run and its dataset as found from here, and runs.
    ``decoy``: the folder it is shown in has a ``data`` of its own, which the command named
    (``--data data``) before it read the run's from the folder environment.json records."""
    import shlex

    from typer.testing import CliRunner

    import trainer.train
    from annotations.taxonomy import MASS13K
    from cli import app
    from tests.loop_helpers import make_dataset
    from trainer.config import TrainConfig
    from trainer.train import _write_run_files

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    make_dataset(project / "data", "train", n=2, size=(32, 32))
    (project / "runs").mkdir(parents=True)
    elsewhere.mkdir()
    if decoy:
        make_dataset(elsewhere / "data", "train", n=1, size=(32, 32))
    monkeypatch.chdir(project)  # started here, with paths relative to it
    cfg = TrainConfig(data="data", out="runs/t", preset="tiny", iters=1, val_split=None)
    (project / "runs/t").mkdir()
    _write_run_files(Path("runs/t"), cfg, 0, MASS13K.with_new_class("Bicycle"))
    monkeypatch.chdir(elsewhere)
    run = Path("../project/runs/t")
    res = CliRunner().invoke(app, ["info", str(run)], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    said = re.search(r"first checkpoint: (engine train .*?) starts it again", text)
    assert res.exit_code == 1 and said, text
    started = []

    def train(cfg, *args, **kwargs):  # what it would train: its settings, no torch
        started.append(cfg)
        raise SystemExit(0)

    monkeypatch.setattr(trainer.train, "train", train)
    res = CliRunner().invoke(app, shlex.split(said.group(1))[1:])
    assert res.exit_code == 0 and len(started) == 1, res.output
    assert Path(started[0].out).resolve() == (project / "runs/t").resolve()
    assert Path(started[0].data).resolve() == (project / "data").resolve()
    assert (started[0].preset, started[0].iters) == ("tiny", 1)
    assert f"--data {project / 'data'}" in said.group(1)  # absolute: it says where


def test_a_resumed_run_copied_with_its_project_is_started_again_on_the_copys_data(
    tmp_path, monkeypatch
):
    """A resume records the dataset it found absolute. The command engine info suggested for
    such a run, copied with its project (``cp -r``, the original kept), held no --data: its
    config.yaml's absolute path, the original's dataset, trained. It names the copy's now."""
    import shlex
    import shutil

    from typer.testing import CliRunner

    import trainer.train
    from annotations.taxonomy import MASS13K
    from cli import app
    from tests.loop_helpers import make_dataset
    from trainer.config import TrainConfig
    from trainer.train import _write_run_files

    project, copy = tmp_path / "project", tmp_path / "copy"
    make_dataset(project / "data", "train", n=2, size=(32, 32))
    (project / "runs/t").mkdir(parents=True)
    monkeypatch.chdir(project)
    cfg = TrainConfig(data=str(project / "data"), out="runs/t", preset="tiny", iters=1)
    _write_run_files(Path("runs/t"), cfg, 0, MASS13K.with_new_class("Bicycle"))
    shutil.copytree(project, copy)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["info", "copy/runs/t"], env={"COLUMNS": "400"})
    said = re.search(
        r"first checkpoint: (engine train .*?) starts it again", " ".join(res.output.split())
    )
    assert said, res.output
    words = shlex.split(said.group(1))
    assert Path(words[words.index("--data") + 1]).resolve() == copy / "data"
    started = []

    def train(cfg, *args, **kwargs):
        started.append(cfg)
        raise SystemExit(0)

    monkeypatch.setattr(trainer.train, "train", train)
    assert CliRunner().invoke(app, shlex.split(said.group(1))[1:]).exit_code == 0
    assert Path(started[0].data).resolve() == (copy / "data").resolve()
    # the original, shown from its own place, keeps config.yaml's path: no --data added
    res = CliRunner().invoke(app, ["info", "project/runs/t"], env={"COLUMNS": "400"})
    said = re.search(
        r"first checkpoint: (engine train .*?) starts it again", " ".join(res.output.split())
    )
    assert said and "--data" not in said.group(1), res.output


def test_a_folder_a_run_was_killed_in_before_writing_anything_names_that_run(tmp_path):
    """``kill -9`` of a predict, demo or import before its first file left a folder holding
    only its lock file (and a hidden staged copy): engine info said "no image split folders
    found", as of a wrong folder. It names the run from its lock record, and says whether it
    still runs (exit 0) or was stopped (exit 1: run it again)."""
    from typer.testing import CliRunner

    from cli import app
    from engine.runlock import exclusive

    folder = tmp_path / "pred"
    (folder / ".masks.new-x1").mkdir(parents=True)  # an interrupted staged write's leftover
    with exclusive(folder, "engine predict"):
        res = CliRunner().invoke(app, ["info", str(folder)], env={"COLUMNS": "400"})
        assert res.exit_code == 0, res.output
        assert f"{folder}: engine predict (pid {os.getpid()} on " in res.output
        assert "is writing it now and has written nothing here yet" in res.output
    res = CliRunner().invoke(app, ["info", str(folder)], env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output
    assert "stopped before it wrote anything here (no process writes it now): run that " in (
        res.output
    )

    # a run refused in a folder that was there (its input, before any work) wrote nothing and
    # said why itself: not "stopped ... run that command again", as of a run killed half way
    refused = tmp_path / "refused"
    refused.mkdir()
    res = CliRunner().invoke(
        app, ["fuse", "--data", str(tmp_path / "nodata"), "--pseudo", str(tmp_path / "no"),
              "--out", str(refused)],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    res = CliRunner().invoke(app, ["info", str(refused)], env={"COLUMNS": "400"})
    assert "stopped before it wrote anything" not in res.output
    # Ctrl-C before the first file keeps the record: that run was stopped, and is named
    with pytest.raises(KeyboardInterrupt), exclusive(refused, "engine predict"):
        raise KeyboardInterrupt
    res = CliRunner().invoke(app, ["info", str(refused)], env={"COLUMNS": "400"})
    assert res.exit_code == 1 and "stopped before it wrote anything" in res.output


def test_a_folder_a_run_was_killed_in_as_it_took_its_lock_is_told_stopped(tmp_path):
    """A run killed between making its folder's ``.lock`` and writing its record there (a
    ``kill -9`` in the crash-injection rounds, 1 of about 40 kills of ``engine synth``) left the
    folder holding an empty lock file: engine info said "no image split folders found" (exit
    2), as of a wrong folder. It says a run stopped there before writing anything (exit 1),
    and the same command run again takes the folder."""
    import subprocess
    import sys

    folder = tmp_path / "data"
    root = Path(__file__).resolve().parents[2]
    # the kill at that point: the record's write ends the process, as SIGKILL would
    kill = (
        "import os, sys; from engine import runlock; "
        "os.pwrite = lambda *a: os._exit(137); "
        "runlock.exclusive(sys.argv[1], 'engine synth').__enter__()"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    ended = subprocess.run([sys.executable, "-c", kill, str(folder)], cwd=root, env=env)
    assert ended.returncode == 137
    assert [p.name for p in folder.iterdir()] == [".lock"]
    assert (folder / ".lock").stat().st_size == 0
    res, said = _info(["info", str(folder)])
    assert res.exit_code == 1, res.output
    assert f"{folder}: a run (its lock file holds no record: killed as it took the folder) " in said
    assert "stopped before it wrote anything here (no process writes it now): run that " in said
    res, _ = _info(["synth", "--out", str(folder), "--train", "1", "--val", "0", "--test", "0",
                    "--size", "64x64", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (folder / "synth.json").is_file()


def test_a_run_going_on_unlocked_is_not_told_killed_where_the_file_system_takes_no_locks(
    tmp_path, monkeypatch
):
    """On a file system without locks (ENOLCK: an NFS without lockd) a run goes on unlocked,
    its ``.lock`` empty until it ends: engine info told one still in progress "killed as it
    took the folder" (stopped, run it again, beside the running one). Nothing there tells a
    running one from a killed one: info says it cannot tell, and when to run it again."""
    from engine.runlock import exclusive
    from tests.loop_helpers import no_locks

    no_locks(monkeypatch)
    folder = tmp_path / "data"
    with exclusive(folder, "engine synth"):  # in progress, nothing written yet
        assert [p.name for p in folder.iterdir()] == [".lock"]
        res, said = _info(["info", str(folder)])
    assert res.exit_code == 1, res.output
    assert "killed as it took" not in said
    assert f"{folder}: a run that could not lock it (its lock file holds no record) is " in said
    assert "is writing it now or stopped before it wrote anything here, which engine info " in said


@pytest.mark.parametrize(
    "command, drawn", [("engine report", "overlays/a.jpg"), ("engine review", "thumbs/a.jpg")]
)
def test_a_gallery_or_report_drawn_unlocked_is_not_told_stopped(
    tmp_path, monkeypatch, command, drawn
):
    """On a file system without locks (ENOLCK) an ``engine report`` or ``engine review`` goes
    on unlocked, its ``.lock`` empty: engine info told one still drawing "stopped ... and no
    process writes it now". It says it cannot tell, and when to run it again."""
    from engine.runlock import exclusive
    from tests.loop_helpers import no_locks

    no_locks(monkeypatch)
    folder = tmp_path / "out"
    with exclusive(folder, command):  # in progress: its first image drawn
        (folder / drawn).parent.mkdir()
        (folder / drawn).write_bytes(b"jpeg")
        res, said = _info(["info", str(folder)])
    assert res.exit_code == 1, res.output
    assert "no process writes it now" not in said
    assert f"{folder}: not finished: {command} is writing it (1 " in said or (
        f"{folder}: not finished: {command} is drawing it (1 " in said
    )
    assert "which engine info cannot tell on a file system without locks: once no engine " in said


@pytest.mark.parametrize(
    "command, drawn, now",
    [
        ("engine report", "overlays/a.jpg", "is writing this report now (1 overlay"),
        ("engine review", "thumbs/a.jpg", "is drawing this review gallery now (1 thumbnail"),
    ],
)
def test_a_gallery_or_report_being_drawn_is_exit_0_and_1_once_stopped(
    tmp_path, command, drawn, now
):
    """Where locks work, a report or gallery its run is drawing now is no problem (exit 0,
    docs/foundation.md's exit codes: one known to be at it), and stopped it is (exit 1: run
    the same command again)."""
    from engine.runlock import exclusive

    folder = tmp_path / "out"
    with exclusive(folder, command):  # in progress: its first image drawn
        (folder / drawn).parent.mkdir()
        (folder / drawn).write_bytes(b"jpeg")
        res, said = _info(["info", str(folder)])
        assert res.exit_code == 0 and f"{command} (pid {os.getpid()} " in said, res.output
        assert now in said, said
    res, said = _info(["info", str(folder)])
    assert res.exit_code == 1 and "no process writes it now" in said, res.output


def test_a_label_or_training_run_going_on_unlocked_is_not_told_stopped(tmp_path, monkeypatch):
    """On a file system without locks (ENOLCK) a label or training run (one before its first
    logged step too, or a demo) goes on unlocked, and engine info told one in progress stopped
    ("run engine label again to finish", a second run beside the first, which nothing there
    refuses). As of a folder it wrote nothing in yet, it says it cannot tell, with exit 1
    (unfinished, docs/foundation.md's exit codes), not 0 (a run known to be at it); a finished
    run gets no such line."""
    import json

    from annotations.taxonomy import MASS13K
    from engine.runlock import exclusive
    from tests.loop_helpers import no_locks
    from trainer.config import TrainConfig
    from trainer.train import _write_run_files

    done = [{"split": s, "stem": f"{s}0", "status": "ok", "config_hash": ""} for s in ("train",)]
    _, run = _label_run(tmp_path, done)
    train = _train_run(tmp_path / "train", iters=10, step=4)
    started = tmp_path / "started"  # a training run before its first logged step
    started.mkdir()
    cfg = TrainConfig(data="runs/fused/bicycle", out=str(started), preset="tiny", iters=50)
    _write_run_files(started, cfg, 0, MASS13K.with_new_class("Bicycle"))
    demo = tmp_path / "demo"  # a demo's stages begun, its summary not yet in
    (demo / "data").mkdir(parents=True)
    (demo / "data" / "synth.json").write_text("{}")
    (demo / "label").mkdir()

    no_locks(monkeypatch)
    note = "a run is writing it now or was stopped, which engine info cannot tell on a file"
    commands = ((run, "engine label"), (train, "engine train"), (started, "engine train"),
                (demo, "engine demo"))  # fmt: skip
    for folder, command in commands:
        with exclusive(folder, command):  # going on, unlocked: its .lock empty
            res, said = _info(["info", str(folder), "--no-progress"])
        assert res.exit_code == 1, res.output
        assert (
            f"note: {folder}: {note} system without locks: once no engine command runs on "
            f"it, run the same {command} command again" in said
        ), said
    (train / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 1.0}) + "\n")
    with exclusive(train, "engine train"):
        res, said = _info(["info", str(train), "--no-progress"])
    assert res.exit_code == 0 and note not in said, res.output


def test_a_shard_going_on_unlocked_is_not_told_stopped(tmp_path, monkeypatch):
    """A shard of a label run (``--shard 1/2``) on a file system without locks goes on
    unlocked, its lock file ``.lock-shard1of2`` empty, and no ``.lock`` there: engine info
    looked for ``.lock`` alone to tell such a file system, so it told the shard going on
    stopped ("run engine label again to finish", a second run beside it), exit 1 without the
    note that it cannot tell. It says it cannot tell, as of a run without ``--shard``."""
    from engine.runlock import LOCK_NAME, exclusive
    from tests.loop_helpers import no_locks

    done = [{"split": "train", "stem": "train0", "status": "ok", "config_hash": ""}]
    _, run = _label_run(tmp_path, done)

    no_locks(monkeypatch)
    with exclusive(run, "engine label", ".lock-shard1of2", own=("run.json",)):
        assert (run / ".lock-shard1of2").is_file() and not (run / LOCK_NAME).exists()
        res, said = _info(["info", str(run), "--no-progress"])
    assert res.exit_code == 1, res.output
    assert f"note: {run}: a run is writing it now or was stopped, which engine info cannot" in said


NO_LOCKS_TAIL = re.compile(
    r", which engine info cannot tell on a file system without locks: once no engine command "
    r"runs on it, run (that|the same engine (label|train|report|review)) command again$"
)


@pytest.mark.parametrize(
    "kind", ["label run", "training run", "shard", "shards starting", "report", "review"]
)
def test_every_cannot_tell_line_ends_in_one_wording_where_the_file_system_takes_no_locks(
    tmp_path, monkeypatch, kind
):
    """On a file system without locks (ENOLCK) engine info ends the line saying it cannot tell
    a run going on from one stopped in one wording for every kind of output, naming the
    command to run again where it knows it. Before, runs ("the file system takes no locks, so
    engine info cannot tell whether ..."), shards starting ("... cannot tell without locks")
    and galleries and reports ("... cannot tell on a file system without locks") each had
    words of their own."""
    from engine.runlock import exclusive
    from tests.loop_helpers import no_locks

    done = [{"split": "train", "stem": "train0", "status": "ok", "config_hash": ""}]
    folder, command, name = {
        "label run": (lambda: _label_run(tmp_path, done)[1], "engine label", ".lock"),
        "training run": (lambda: _train_run(tmp_path / "t", iters=10, step=4), "engine train",
                         ".lock"),
        "shard": (lambda: _label_run(tmp_path, done)[1], "engine label", ".lock-shard1of2"),
        "shards starting": (lambda: tmp_path / "label", "engine label", ".lock-shard0of2"),
        "report": (lambda: tmp_path / "report", "engine report", ".lock"),
        "review": (lambda: tmp_path / "review", "engine review", ".lock"),
    }[kind]  # fmt: skip
    folder = folder()
    no_locks(monkeypatch)
    with exclusive(folder, command, name):
        drawn = {"report": "overlays/a.jpg", "review": "thumbs/a.jpg"}.get(kind)
        if drawn:
            (folder / drawn).parent.mkdir()
            (folder / drawn).write_bytes(b"jpeg")
        res, _ = _info(["info", str(folder), "--no-progress"], columns="1000")
    assert res.exit_code == 1, res.output
    lines = [line.strip() for line in res.output.splitlines() if "cannot tell" in line]
    assert len(lines) == 1 and NO_LOCKS_TAIL.search(lines[0]), res.output
    again = "that" if kind == "shards starting" else f"the same {command}"
    assert lines[0].endswith(f"run {again} command again"), lines


def test_a_label_run_whose_shards_wrote_nothing_yet_names_them(tmp_path):
    """Shards of one label run (``--shard i/n``, each holding its own ``.lock-shardIofN``)
    starting, or all killed before their first file (crash-injection, second pass: engine info
    right after a kill of one of three shards starting together): engine info said "no image
    split folders found; label is a label run (engine label), not a dataset", exit 2. It names
    the shards and says they write the folder now (exit 0), or stopped (exit 1: run again)."""
    from engine.runlock import exclusive

    run = tmp_path / "label"
    with (
        exclusive(run, "engine label", name=".lock-shard0of2"),
        exclusive(run, "engine label", name=".lock-shard1of2"),
    ):
        res, said = _info(["info", str(run)])
        assert res.exit_code == 0, res.output
        assert "is writing it now and has written nothing here yet" in said, said
    res, said = _info(["info", str(run)])
    assert res.exit_code == 1, res.output
    assert f"{run}: engine label (pid {os.getpid()} on " in said, said
    assert (
        " as shard 0/2, engine label (pid " in said and " as shard 1/2 stopped before it " in said
    )
    assert "stopped before it wrote anything here (no process writes it now): run that " in said


def test_a_run_killed_writing_its_first_file_leaves_a_note_its_rerun_keeps(tmp_path):
    """``engine label`` killed as it put its first file in (``run.json``: crash-injection
    sweep, kill point 1) left ``.run.json.*.tmp`` beside its lock file alone: engine info's
    note said "no engine command writes this folder: delete them", though the same command,
    run again, takes the folder and removes it."""
    from engine.info import leftover_note
    from engine.runlock import exclusive

    run = tmp_path / "label"
    with exclusive(run, "engine label"):
        (run / ".run.json.abcd1234.tmp").write_text("{")
        assert leftover_note(run) is None  # its run goes on: the file may be its live one
    res, text = _info(["info", str(run)])
    assert res.exit_code == 1 and "stopped before it wrote anything here" in text, res.output
    assert text.endswith(f"the next run of the command that writes {run} removes them"), text


def test_a_demo_pretrain_export_killed_leaves_a_note_its_rerun_keeps(tmp_path):
    """``engine demo-pretrain`` killed as it put its exported checkpoint in left
    ``OUT/.demo_tiny_mass7.pt.*.tmp`` (crash-injection pass 58), which the same command, run
    again, removes (its save removes its own name's killed temporaries): engine info's note
    said "no engine command writes this folder: delete them". Another training's folder, with
    the same file, is still told so."""
    from engine.info import leftover_note

    for argv, promised in ((["engine", "demo-pretrain"], True), (["engine", "train"], False)):
        out = tmp_path / argv[1]
        (out / "train").mkdir(parents=True)
        (out / "train" / "environment.json").write_text(json.dumps({"argv": argv}))
        (out / ".demo_tiny_mass7.pt.abcd1234.tmp").write_bytes(b"x")
        note = leftover_note(out)
        assert note is not None and note.endswith(
            f"the next run of the command that writes {out} removes them"
            if promised
            else "no engine command writes this folder: delete them"
        ), note


def test_a_demo_pretrain_going_on_unlocked_is_not_told_stopped(tmp_path, monkeypatch):
    """On a file system without locks (ENOLCK) ``engine demo-pretrain`` trains unlocked: engine
    info told its folder "not finished ... run the same engine demo-pretrain command again" (a
    second run beside the first) and its training "run the same engine train command again",
    which exports nothing. Now it says it cannot tell, both naming engine demo-pretrain."""
    from engine.runlock import exclusive
    from tests.loop_helpers import no_locks

    out = tmp_path / "pre"
    out.mkdir()
    _train_run(out / "train", iters=10, step=4)
    argv = ["engine", "demo-pretrain", "--out", str(out)]
    (out / "train" / "environment.json").write_text(json.dumps({"argv": argv}))
    no_locks(monkeypatch)
    with exclusive(out / "train", "engine demo-pretrain"):  # going on, unlocked
        res, said = _info(["info", str(out), "--no-progress"])
    assert res.exit_code == 1, res.output
    assert "engine train command" not in said, said
    tail = (
        "which engine info cannot tell on a file system without locks: once no engine command "
        "runs on it, run the same engine demo-pretrain command again"
    )
    assert f"note: {out / 'train'}: a run is writing it now or was stopped, {tail}" in said, said
    assert said.endswith(
        f"{out}: not finished: engine demo-pretrain is training it (its checkpoint "
        f"{out / 'demo_tiny_mass7.pt'} not exported) now, or was stopped, {tail}"
    ), said


def test_a_training_run_s_argv_edited_by_hand_does_not_stop_engine_info(tmp_path):
    """A training run's ``environment.json`` whose ``argv`` is no list (edited by hand): engine
    info of the folder above it, asking whether engine demo-pretrain started it, stopped with
    "holds a value of an unexpected type" (exit 2), its runs not shown."""
    out = tmp_path / "pre"
    out.mkdir()
    _train_run(out / "train", iters=10, step=4)
    (out / "train" / "environment.json").write_text(json.dumps({"argv": {"0": "engine"}}))
    res, said = _info(["info", str(out), "--no-progress"])
    assert res.exit_code == 1 and "unexpected type" not in said, res.output
    assert "4 of 10" in said and "demo-pretrain" not in said, said


def test_a_demo_pretrain_training_stopped_names_demo_pretrain_to_go_on(tmp_path):
    """``engine demo-pretrain`` killed mid-training, its ``train/last.pt`` written: its training
    run's line said "stopped: engine train --out OUT/train --resume continues it", which
    exports nothing, beside the folder's "run the same engine demo-pretrain command again"."""
    out = tmp_path / "pre"
    out.mkdir()
    _train_run(out / "train", iters=10, step=4)
    (out / "train" / "last.pt").write_bytes(b"x")
    argv = ["engine", "demo-pretrain", "--out", str(out)]
    (out / "train" / "environment.json").write_text(json.dumps({"argv": argv}))
    for given in (out, out / "train"):
        res, said = _info(["info", str(given), "--no-progress"])
        assert res.exit_code == 1, res.output
        assert "engine train " not in said, said
        assert "stopped: run the same engine demo-pretrain command again (it goes on, then " in said


def test_engine_info_reads_a_demo_pretrain_training_s_environment_once(tmp_path, monkeypatch):
    """engine info of ``engine demo-pretrain``'s folder read its training's
    ``environment.json`` three times (its stats, then twice asking which command started it);
    now once, and once more only where the folder's checkpoint is missing (a question about
    the folder above it)."""
    import engine.info.train_run as train_run

    out = tmp_path / "pre"
    out.mkdir()
    _train_run(out / "train", iters=10, step=10)
    (out / "train" / "last.pt").write_bytes(b"x")
    argv = ["engine", "demo-pretrain", "--out", str(out)]
    (out / "train" / "environment.json").write_text(json.dumps({"argv": argv}))
    (out / "demo_tiny_mass7.pt").write_bytes(b"x")
    reads, real = [], train_run._environment
    monkeypatch.setattr(train_run, "_environment", lambda p: reads.append(p) or real(p))
    for given in (out, out / "train"):
        reads.clear()
        res, said = _info(["info", str(given), "--no-progress"])
        assert res.exit_code == 0 and "finished" in said, res.output
        assert reads == [out / "train" / "environment.json"], reads
    (out / "demo_tiny_mass7.pt").unlink()  # not exported: the folder asks too
    reads.clear()
    res, said = _info(["info", str(out), "--no-progress"])
    assert res.exit_code == 1 and "not exported" in said, res.output
    assert len(reads) == 2, reads


def test_a_folder_of_a_chart_or_overlays_no_report_wrote_is_no_unfinished_report(tmp_path):
    """A report killed among its chart and overlays is told unfinished (its folder holds its
    lock file, with its record): a folder of the user's that holds a ``chart.png`` or an
    ``overlays/`` and no lock file (``engine compare --plot figs/chart.png``) was told so too,
    "engine report stopped before writing report.json: run the same engine report command
    again", of a command never run there (exit 1); as another folder now, and as by a folder
    a run of another command stopped in."""
    from typer.testing import CliRunner

    from cli import app
    from engine.runlock import exclusive

    for made in ("chart.png", "overlays"):
        figs = tmp_path / made.split(".")[0]
        figs.mkdir()
        if made == "overlays":
            (figs / made).mkdir()
        else:
            (figs / made).write_bytes(b"a figure")
        res = CliRunner().invoke(app, ["info", str(figs)], env={"COLUMNS": "400"})
        said = res.output.replace(str(figs), "FIGS")  # a --basetemp of pytest's naming a report
        assert res.exit_code == 2 and "report" not in said, res.output
        with exclusive(figs, "engine predict"):  # a predict stopped in it: not a report
            pass
        res = CliRunner().invoke(app, ["info", str(figs)], env={"COLUMNS": "400"})
        assert "report" not in res.output.replace(str(figs), "FIGS"), res.output
    with exclusive(tmp_path / "rep", "engine report"):  # one a report wrote: unfinished
        (tmp_path / "rep" / "chart.png").write_bytes(b"a chart")
    res = CliRunner().invoke(app, ["info", str(tmp_path / "rep")], env={"COLUMNS": "400"})
    assert res.exit_code == 1 and "a report not finished: engine report (pid" in res.output


def test_a_folder_of_thumbnails_no_review_drew_is_no_unfinished_review(tmp_path):
    """A review gallery killed before its page is told unfinished beside its lock file: a
    folder of the user's holding a ``thumbs/`` alone (a photo gallery's) and no lock file was
    told "engine review stopped before writing its page: run the same engine review command
    again" (exit 1), of a command never run there; as another folder now."""
    from typer.testing import CliRunner

    from cli import app
    from engine.runlock import exclusive

    (tmp_path / "gallery" / "thumbs").mkdir(parents=True)
    (tmp_path / "gallery" / "thumbs" / "a.jpg").write_bytes(b"a photo")
    res = CliRunner().invoke(app, ["info", str(tmp_path / "gallery")], env={"COLUMNS": "400"})
    said = res.output.replace(str(tmp_path / "gallery"), "GALLERY")  # a --basetemp naming one
    assert res.exit_code == 2 and "review" not in said, res.output
    with exclusive(tmp_path / "rev", "engine review"):  # one a review drew: unfinished
        (tmp_path / "rev" / "thumbs").mkdir()
    res = CliRunner().invoke(app, ["info", str(tmp_path / "rev")], env={"COLUMNS": "400"})
    assert res.exit_code == 1 and "a review gallery not finished: engine review (pid" in res.output


def test_a_first_export_killed_in_its_staging_folder_leaves_a_note_its_rerun_keeps(tmp_path):
    """A first ``engine annotate export`` killed while writing its first file into its hidden
    staging folder (``.export.new-*``, the engine's own) left a temporary file there: the next
    export removes that folder, and the note says so, as of a folder holding nothing but hidden
    files; not "delete them" (a hidden folder of the user's, ``.git``, is not walked into)."""
    from typer.testing import CliRunner

    from cli import app
    from engine.runlock import exclusive, wrote_nothing

    out = tmp_path / "export"
    with exclusive(out, "engine annotate export"):
        (out / ".export.new-k2_9ab01").mkdir()
        (out / ".export.new-k2_9ab01" / ".coco.json.abcd1234.tmp").write_text("{")
    assert wrote_nothing(out)
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    assert text.endswith(f"the next run of the command that writes {out} removes them"), text
    (out / ".git").mkdir()
    assert not wrote_nothing(out)


def test_a_subset_write_killed_after_its_last_rename_is_noted(tmp_path):
    """An annotated subset's write killed after its last rename (its masks/ and subset.json
    in) left ``.masks.new-*/`` with the earlier masks set aside: noted, as an export's is
    (tests/engine/test_annotate.py), with the command that removes it; one killed half way
    (an entry still to put in) is no such note (engine info says it as a problem)."""
    from engine.info import leftover_note

    sub = tmp_path / "sub"
    staging = sub / ".masks.new-ab12cd34"
    (staging / ".replaced" / "masks").mkdir(parents=True)
    (staging / ".replaced" / "masks" / "a.png").write_bytes(b"x" * 2000)
    (staging / ".swap.json").write_text(json.dumps({"in": ["masks", "subset.json"], "out": []}))
    assert leftover_note(sub) == (
        "note: .masks.new-ab12cd34/ (0.0 MB: the earlier masks and subset.json it replaced) left "
        f"by an import killed as it finished, its files in: the next engine annotate import "
        f"into {sub} removes it"
    )
    (staging / "subset.json").write_text("{}")  # still to put in: not finished
    assert leftover_note(sub) is None


def test_a_fusion_stopped_before_a_split_is_told_as_one_stopped_within_it(tmp_path: Path):
    """``engine info`` on a fusion killed before its val split was begun exited 2 with "label
    folder for split 'val' not found" as its error; killed within val it exited 1, listing the
    images without labels. Both are one state, a fusion stopped: the same exit code (1) and the
    same advice, and a split's source folder not yet written is said so too (not "training
    refuses this split")."""
    import json

    from typer.testing import CliRunner

    from cli import app

    _fused(tmp_path)
    (tmp_path / "fuse.json").write_text(json.dumps({"status": "running"}))
    shutil.rmtree(tmp_path / "labels/val")
    shutil.rmtree(tmp_path / "sources/val")
    (tmp_path / "sources/train/c.png").unlink()
    (tmp_path / "labels/train/c.png").unlink()
    res = CliRunner().invoke(app, ["info", str(tmp_path), "--no-progress"], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    advice = "no process writes it now (stopped): run the same engine fuse command again"
    assert res.exit_code == 1, res.output
    assert f"no label in {tmp_path / 'labels/train'} for 1 image: c; its fusion did not" in text
    assert f"no label in {tmp_path / 'labels/val'} for 1 image: d; its fusion did not" in text
    assert text.count(advice) == 2 and "training refuses" not in text
    shutil.rmtree(tmp_path / "sources/train")
    res = CliRunner().invoke(app, ["info", str(tmp_path), "--no-progress"], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "training refuses" not in text
    assert f"{tmp_path / 'sources/train'}: source map folder not found; its fusion did not" in text


def test_labels_a_live_fusion_has_not_written_yet_are_no_problems(tmp_path: Path):
    """``engine info`` while ``engine fuse`` writes the dataset (its lock held) exited 1 with
    each missing label a problem ending "engine fuse (pid ...) is writing it now"; a live
    writer is no problem (as for label runs and engine synth): those lines are shown under the
    unfinished line, exit 0. A killed fusion (its lock free) still counts them, and a problem
    of a file the fusion wrote counts while it runs."""
    import json

    from typer.testing import CliRunner

    from cli import app
    from engine.runlock import exclusive

    _fused(tmp_path)
    (tmp_path / "fuse.json").write_text(json.dumps({"status": "running"}))
    shutil.rmtree(tmp_path / "labels/val")
    (tmp_path / "labels/train/c.png").unlink()
    (tmp_path / "sources/train/c.png").unlink()
    args = ["info", str(tmp_path), "--no-progress"]
    with exclusive(tmp_path, "engine fuse"):
        res = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
        text = " ".join(res.output.split())
        assert res.exit_code == 0, res.output
        holder = text.split("unfinished: ")[1].split(" is writing it now: wait for it to finish")[0]
        assert holder.startswith("engine fuse (pid ")
        live = f"its fusion did not finish (fuse.json: status running): {holder} is writing it now"
        assert text.endswith(
            f"unfinished: {holder} is writing it now: wait for it to finish "
            f"{tmp_path / 'images/train'}: no label in {tmp_path / 'labels/train'} for 1 image: c; "
            f"{live}: wait for it to finish "
            f"{tmp_path / 'images/val'}: no label in {tmp_path / 'labels/val'} for 1 image: d; "
            f"{live}: wait for it to finish"
        )
        assert "problem" not in text
        write_label(tmp_path / "sources/train/a.png", np.zeros((2, 5), np.uint8))
        res = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
        text = " ".join(res.output.split())
        assert res.exit_code == 1 and "1 problem found: " in text, res.output
        assert f"{tmp_path / 'sources/train/a.png'}" in text.split("1 problem found: ")[1]
    (tmp_path / "sources/train/a.png").unlink()
    res = CliRunner().invoke(app, args, env={"COLUMNS": "400"})  # the lock free: a killed fusion
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "unfinished" not in text and "3 problems found: " in text
    assert text.count("no process writes it now (stopped): run the same engine fuse") == 3


def test_a_fused_dataset_a_live_fusion_writes_again_is_not_said_finished(tmp_path: Path):
    """``engine fuse`` into a fused dataset whose fuse.json says complete holds its lock while
    it plans, removes orphans and (with nothing to fuse) throughout, before fuse.json says
    running, if ever: ``engine info`` said "No problems found." and "next: engine train" while
    it wrote. Now the unfinished line of a live fusion, exit 0; the lock free, as before."""
    import json

    from engine.runlock import exclusive

    _fused(tmp_path)
    (tmp_path / "fuse.json").write_text(json.dumps({"status": "complete"}))
    args = ["info", str(tmp_path), "--no-progress"]
    with exclusive(tmp_path, "engine fuse"):
        res, text = _info(args)
    assert res.exit_code == 0, res.output
    assert re.search(
        r"unfinished: engine fuse \(pid \d+ on .*\) is writing it now: wait for it to finish$",
        text,
    ), text
    assert "No problems found" not in text and "next: engine train" not in text
    res, text = _info(args)
    assert res.exit_code == 0 and "unfinished" not in text
    assert text.endswith(
        f"No problems found. next: engine train --data {tmp_path} --out RUN (jointly)"
    )


def test_info_reads_a_fusions_state_once(tmp_path: Path, monkeypatch):
    """``engine info`` asked a fusion's state three ways (the "no label" hint, whether a
    process writes it, whether it stopped): five reads of ``fuse.json`` and three probes of
    its lock, each free to see another state (a fusion ending between them). One read each
    now, and the same lines: a fusion killed after its last label is said stopped, and one
    writing is said live."""
    import json

    import engine.datasets
    import engine.runlock
    from engine.runlock import exclusive

    _fused(tmp_path)
    (tmp_path / "fuse.json").write_text(json.dumps({"status": "running"}))
    reads, probes = [], []
    record, writer = engine.datasets.DatasetSpec.fuse_record, engine.runlock.writer
    monkeypatch.setattr(
        engine.datasets.DatasetSpec, "fuse_record", lambda s: reads.append(1) or record(s)
    )
    monkeypatch.setattr(engine.runlock, "writer", lambda *a: probes.append(1) or writer(*a))
    stats = dataset_stats(tmp_path, progress=False)
    assert (len(reads), len(probes)) == (1, 1)
    assert stats.unfinished is not None and stats.unfinished[2] and not stats.problems
    assert stats.fused == {"status": "running"}
    reads.clear(), probes.clear()
    with exclusive(tmp_path, "engine fuse"):
        stats = dataset_stats(tmp_path, progress=False)
    assert (len(reads), len(probes)) == (1, 1)
    assert stats.unfinished is not None and not stats.unfinished[2]
    assert "engine fuse (pid " in stats.unfinished[0]


def _lock_probes(monkeypatch) -> list:
    """Each lock probe (engine.runlock's ``writer``, ``writers``) that engine info's modules
    make, recorded as it is made: each module of engine/info/ imports those it calls, so each
    is patched where it calls them."""
    import importlib
    import pkgutil

    import engine.info
    from engine.runlock import writer, writers

    probes: list = []
    for part in pkgutil.iter_modules(engine.info.__path__):
        module = importlib.import_module(f"engine.info.{part.name}")
        if hasattr(module, "writer"):
            monkeypatch.setattr(module, "writer", lambda *a: probes.append(a) or writer(*a))
        if hasattr(module, "writers"):
            monkeypatch.setattr(module, "writers", lambda *a: probes.append(a) or writers(*a))
    return probes


def test_info_probes_a_label_runs_lock_once(tmp_path: Path, monkeypatch):
    """``engine info RUN`` asked a label run's lock twice: once for its exit status, once for
    its lines, each free to see another state (the engine label ending between them). One
    probe now, and the same answer: a run written now exits 0, one stopped exits 1."""
    from engine.info import describe_output
    from engine.runlock import exclusive

    bad = {"split": "train", "stem": "train0", "status": "failed", "error": "bad"}
    _, run = _label_run(tmp_path, [bad])
    probes = _lock_probes(monkeypatch)
    with exclusive(run, "engine label"):
        said = describe_output(run)
    assert len(probes) == 1 and said[2] == 0
    assert "is writing it now" in " ".join(map(str, said[1]))
    probes.clear()
    said = describe_output(run)
    assert len(probes) == 1 and said[2] >= 1


def test_info_probes_a_training_runs_lock_once(tmp_path: Path, monkeypatch):
    """As a label run's: ``engine info RUN`` of a training run not finished asked its lock
    once for its lines and again for its exit status. Once now: written now, exit 0 and
    "running now"; stopped, exit 1."""
    import json

    from rich.console import Console

    from engine.info import describe_output
    from engine.runlock import exclusive

    config = {"preset": "tiny", "data": "d", "iters": 100, "augment": {}}
    (tmp_path / "config.json").write_text(json.dumps({"config": config}))
    (tmp_path / "metrics.jsonl").write_text('{"step": 40, "loss": 1.5, "it_s": 2.0}\n')
    probes = _lock_probes(monkeypatch)
    with exclusive(tmp_path, "engine train"):
        said = describe_output(tmp_path)
    assert len(probes) == 1 and said[2] == 0
    console = Console(width=200, record=True)
    for part in said[1]:
        console.print(part)
    assert "running now: engine train" in console.export_text()
    probes.clear()
    said = describe_output(tmp_path)
    assert len(probes) == 1 and said[2] == 1


@pytest.mark.parametrize("what", ["predictions", "demo"])
def test_info_probes_a_predictions_or_demo_folders_lock_once(tmp_path: Path, monkeypatch, what):
    """As a label run's: ``engine info`` of a folder of predictions predict.json says running,
    or of a demo not finished, asked its lock once for its lines and again for its exit
    status. Once now: written now, exit 0 and the process named; stopped, exit 1."""
    import json

    from rich.console import Console

    from engine.info import describe_output
    from engine.runlock import exclusive

    if what == "predictions":
        write_label(tmp_path / "a.png", np.zeros((4, 5), np.uint8))
        record = {"config": {"checkpoint": "x.pt"}, "status": "running"}
        (tmp_path / "predict.json").write_text(json.dumps(record))
    else:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "synth.json").write_text("{}")
        (tmp_path / "label").mkdir()
    command = f"engine {'predict' if what == 'predictions' else 'demo'}"
    probes = _lock_probes(monkeypatch)
    with exclusive(tmp_path, command):
        said = describe_output(tmp_path)
    assert len(probes) == 1 and said[2] == 0
    console = Console(width=200, record=True)
    for part in said[1]:
        console.print(part)
    assert f"{command} (pid " in console.export_text()
    probes.clear()
    said = describe_output(tmp_path)
    assert len(probes) == 1 and said[2] == 1


def test_info_plot_s_legend_names_every_split_as_typed(tmp_path: Path, monkeypatch):
    # a split is a folder's name: 't$^$x' was read as mathtext in the legend and failed the
    # chart ('error: ^'), and '_tr' was left out of it (matplotlib drops labels starting '_')
    pytest.importorskip("matplotlib")
    import engine.outputs
    from engine.info import plot_shares
    from tests.loop_helpers import make_dataset, saved_figures

    for split in ("_tr", "t$^$x"):
        make_dataset(tmp_path / "data", split, n=1, size=(8, 8))
    figures = saved_figures(monkeypatch, engine.outputs)
    plot_shares(dataset_stats(tmp_path / "data", progress=False), tmp_path / "shares.png")
    legend = figures[0].axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["_tr", "t$^$x"]


def test_info_plot_draws_no_boxes_for_cjk_names(tmp_path: Path, monkeypatch):
    # a dataset in '数据集', a split '测试' and a class '自行车': DejaVu Sans has no CJK glyph,
    # so each was drawn as boxes with a "Glyph ... missing" warning; code points now
    pytest.importorskip("matplotlib")
    import warnings

    import engine.outputs
    from engine.info import plot_shares
    from engine.outputs import figure_text
    from tests.loop_helpers import make_dataset, saved_figures

    make_dataset(tmp_path / "数据集", "测试", n=1, size=(8, 8))
    write_label(tmp_path / "数据集/new_classes/自行车/测试/img000.png", np.ones((8, 8), np.uint8))
    figures = saved_figures(monkeypatch, engine.outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_shares(dataset_stats(tmp_path / "数据集", progress=False), tmp_path / "shares.png")
    ax = figures[0].axes[0]
    assert ax.get_yticklabels()[-1].get_text() == f"{figure_text('自行车')} (truth)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [figure_text("测试")]
    assert figure_text("数据集") in ax.get_title()


def test_info_plot_s_title_holds_a_long_dataset_path_whole(tmp_path: Path, monkeypatch):
    """A dataset under a long path (144 characters) titled the chart in one line wider than
    the figure, cut at both edges: "Pixel share per class:" and the dataset's own name lost."""
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    import engine.outputs
    from engine.info import plot_shares
    from tests.loop_helpers import make_dataset, saved_figures

    root = tmp_path / ("a_long_project_folder_name_" * 2) / ("nested_" * 8) / "my_dataset_v2"
    make_dataset(root, "train", n=1, size=(8, 8))
    figures = saved_figures(monkeypatch, engine.outputs)
    plot_shares(dataset_stats(root, progress=False), tmp_path / "shares.png")
    fig = figures[0]
    title = fig.axes[0].title
    assert title.get_text().replace("\n", "") == f"Pixel share per class: {root}"
    box = title.get_window_extent(FigureCanvasAgg(fig).get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, box


def test_engine_info_shows_what_compare_and_evaluate_wrote(tmp_path: Path):
    """``engine compare --json`` and ``engine evaluate --json`` files given to ``engine info``
    were read as dataset specs: "unknown keys ['class', 'class_id', 'config', ...]", exit 2.
    info shows their table and what was scored against what."""
    from typer.testing import CliRunner

    from cli import app

    truth = np.zeros((8, 8), np.uint8)
    truth[2:6, 2:6] = 1
    pred = np.roll(truth, 1, axis=1)
    for folder, mask in (("gt", truth), ("a", truth), ("b", pred)):
        write_label(tmp_path / folder / "x.png", mask)
    run = CliRunner().invoke
    args = ["--gt", str(tmp_path / "gt"), "--no-progress"]
    assert run(app, ["compare", "--class", "Bicycle", "--source", f"a={tmp_path / 'a'}",
                     "--source", f"b={tmp_path / 'b'}", "--json", str(tmp_path / "c.json"),
                     *args]).exit_code == 0  # fmt: skip
    assert run(app, ["evaluate", "--pred", str(tmp_path / "b"), "--num-classes", "2",
                     "--json", str(tmp_path / "e.json"), *args]).exit_code == 0  # fmt: skip
    res = run(app, ["info", str(tmp_path / "c.json")], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert f"Bicycle: 1 annotated image (engine compare, {tmp_path / 'c.json'})" in text
    assert "│ a │ 100.00 │ 100.00 │ 1.0000 │" in text and "│ b │ 60.00 │" in text
    assert f"ground truth: {tmp_path / 'gt'}" in text and f"b: {tmp_path / 'b'}" in text
    res = run(app, ["info", str(tmp_path / "e.json")], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "Scores (engine evaluate," in text and "1 image, BF1 aggregated per dataset" in text
    assert "│ 1 │ 1 │ 60.00 │" in text and "│ │ mean │" in text
    assert f"predictions: {tmp_path / 'b'}" in text

    # written inside an engine output (a label run's folder), the scores are still the file's:
    # they showed the label run; and a second spec beside a fused dataset's is read as itself
    import shutil

    from tests.loop_helpers import make_dataset, make_run

    make_dataset(tmp_path / "data", "test", n=1, size=(8, 8))
    make_run(tmp_path / "run", tmp_path / "data", {"img000": [truth.astype(bool)]}, (8, 8))
    shutil.copy(tmp_path / "e.json", tmp_path / "run" / "eval.json")
    res = run(app, ["info", str(tmp_path / "run" / "eval.json")], env={"COLUMNS": "200"})
    assert "Scores (engine evaluate," in " ".join(res.output.split()), res.output
    fused = tmp_path / "fused"
    _fused(fused)
    (fused / "fuse.json").write_text("{}")  # an engine output: its record
    (fused / "val_only.yaml").write_text(
        "images: images/{split}\nlabels: labels/{split}\ntaxonomy: taxonomy.json\nsplits: [val]\n"
    )
    res = run(app, ["info", str(fused / "val_only.yaml")], env={"COLUMNS": "200"})
    text = " ".join(res.output.split())
    assert f"Dataset {fused / 'val_only.yaml'}" in text, res.output
    assert "│ val │" in text and "│ train │" not in text, res.output


def test_a_file_or_folder_that_is_no_dataset_is_named_for_what_it_is(tmp_path: Path):
    """An image, a label map or a checkpoint given to ``engine info`` said "not UTF-8 text
    (invalid byte at offset 0)" (read as a YAML spec), and a folder inside an engine output (a
    run's ``labels/``, a subset's ``masks/``) or an empty one only "no image split folders
    found": each is now named, with the root meant where there is one (exit 2 all the same)."""
    import json

    from typer.testing import CliRunner

    from cli import app

    _pair(tmp_path / "data", "test", "a", np.zeros((4, 4), np.uint8))
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04")
    write_label(tmp_path / "subset" / "masks" / "a.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "subset" / "subset.json").write_text(json.dumps({"data": "d"}))
    (tmp_path / "empty").mkdir()

    def error(path: Path) -> str:
        res = CliRunner().invoke(app, ["info", str(path)], env={"COLUMNS": "400"})
        assert res.exit_code == 2, res.output
        return " ".join(res.output.split())

    image = tmp_path / "data" / "images" / "test" / "a.png"
    assert error(image) == (
        f"error: {image}: an image file, not a dataset's root or spec: give its dataset's root, "
        f"{tmp_path / 'data'}"
    )
    label = tmp_path / "data" / "annotations" / "test" / "a.png"
    assert error(label).endswith(
        f"not a dataset's root or spec: give its dataset's root, {tmp_path / 'data'}"
    )
    assert error(tmp_path / "model.pt").endswith(
        "model.pt: a checkpoint (for engine predict and engine train --init), not a dataset's "
        "root or spec"
    )
    (tmp_path / "cmp.md").write_text("| source | IoU |\n|---|---|\n| pseudo | 36.94 |\n")
    assert error(tmp_path / "cmp.md").endswith(  # before: "cannot parse YAML (expected ..."
        "cmp.md: a Markdown file, not a dataset's root or spec (a YAML or JSON file)"
    )
    (tmp_path / "index.html").write_text("<html></html>")
    assert error(tmp_path / "index.html").endswith(
        "index.html: an HTML file, not a dataset's root or spec (a YAML or JSON file)"
    )
    masks = tmp_path / "subset" / "masks"
    assert error(masks).endswith(
        f"; {masks} is a folder inside {tmp_path / 'subset'}, an annotated subset (engine annotate "
        "import)"
    )
    assert error(tmp_path / "empty").endswith("; the folder is empty")


def test_a_fused_dataset_says_what_it_was_fused_from_and_what_comes_next(tmp_path: Path):
    """A fused dataset was headed ``Dataset ROOT`` like any other: what it was fused from, and
    that it is what ``engine train --data`` takes next, was in its fuse.json only."""
    import json

    _fused(tmp_path)
    inputs = {
        "data": "/data/MaSS13K",
        "pseudo": [{"path": "runs/label/bicycle", "class": "Bicycle"}],
    }
    (tmp_path / "fuse.json").write_text(json.dumps({"status": "complete", "inputs": inputs}))
    text = [str(r) for r in render_stats(dataset_stats(tmp_path, progress=False))]
    assert text[1] == (
        "a fused dataset (engine fuse): the labels of /data/MaSS13K (not found there: moved?) "
        "with Bicycle from runs/label/bicycle"
    )
    assert text[-2:] == [
        "No problems found.",
        f"next: engine train --data {tmp_path} --out RUN (jointly)",
    ]


def test_a_moved_fused_dataset_names_its_dataset_where_it_is_now(tmp_path: Path, monkeypatch):
    """A project moved (``mv proj proj2``): the fused dataset's line named the dataset at the
    absolute path its fuse.json records, which no longer exists; now it names the dataset where
    it was beside the fused one (moved together), as review and report find it."""
    import json

    fused = tmp_path / "proj2" / "runs" / "fused" / "bicycle"
    _fused(fused)
    (tmp_path / "proj2" / "data").mkdir()
    doc = {
        "status": "complete",
        "config": {"data": "data", "out": "runs/fused/bicycle"},
        "inputs": {"data": str(tmp_path / "proj" / "data"), "pseudo": []},
    }
    (fused / "fuse.json").write_text(json.dumps(doc))
    monkeypatch.chdir(tmp_path)
    text = [str(r) for r in render_stats(dataset_stats(fused, progress=False))]
    assert text[1].startswith(
        f"a fused dataset (engine fuse): the labels of {tmp_path}/proj2/data "
    )


@pytest.mark.parametrize("typed", ["relative", "absolute"])
def test_a_copied_fused_dataset_names_the_copys_label_run_and_subset(
    tmp_path: Path, monkeypatch, typed
):
    """A project copied (``cp -r proj copy``, the original kept), ``engine info`` on the copy's
    fused dataset from elsewhere: its line named the label run and corrections subset as typed
    in the original, the original's when typed absolute, nothing from here when relative. Now
    each is named where it is beside the fused dataset, as its dataset is."""
    import json

    at = f"{tmp_path}/proj/" if typed == "absolute" else ""
    for project in ("proj", "copy"):
        for folder in ("data", "runs/label/bicycle", "subsets/bicycle-train"):
            (tmp_path / project / folder).mkdir(parents=True)
    fused = tmp_path / "copy" / "runs" / "fused" / "bicycle"
    _fused(fused)
    inputs = {
        "data": str(tmp_path / "proj" / "data"),
        "pseudo": [{"path": f"{at}runs/label/bicycle", "class": "Bicycle"}],
        "corrections": [{"path": f"{at}subsets/bicycle-train", "class": "Bicycle",
                         "images": 1, "split": "train"}],
    }  # fmt: skip
    doc = {
        "status": "complete",
        "config": {"data": "data", "out": "runs/fused/bicycle"},  # --out typed relative
        "inputs": inputs,
        "environment": {"cwd": str(tmp_path / "proj")},
    }
    (fused / "fuse.json").write_text(json.dumps(doc))
    monkeypatch.chdir(tmp_path)
    text = [str(r) for r in render_stats(dataset_stats(fused, progress=False))]
    assert text[1] == (
        f"a fused dataset (engine fuse): the labels of {tmp_path}/copy/data with Bicycle from "
        f"{tmp_path}/copy/runs/label/bicycle; Bicycle corrected by "
        f"{tmp_path}/copy/subsets/bicycle-train (1 image of train)"
    ), text[1]


def test_temporary_files_in_a_plain_dataset_are_not_promised_to_a_next_run(tmp_path: Path):
    """The note on temporary files said "the next run of the command that writes DATA removes
    them" of a plain dataset's root, which no engine command writes."""
    from typer.testing import CliRunner

    from cli import app

    _pair(tmp_path / "data", "train", "a", np.zeros((2, 2), np.uint8))
    (tmp_path / "data" / "annotations" / "train" / ".a.png.abcd1234.tmp").write_bytes(b"x")
    res = CliRunner().invoke(app, ["info", str(tmp_path / "data")], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    assert "note: 1 temporary file (0.0 MB) left by runs killed while writing" in text, text
    assert text.endswith("no engine command writes this folder: delete them"), text


def test_temporary_files_in_a_label_run_are_left_to_its_next_run_or_shard(tmp_path: Path):
    """A label run's temporary files are removed by its next run, a shard's too once no other
    shard runs (one may still be writing them); a note, not a problem: a finished run still
    exits 0. No test saw the shard's part of the line (left out, it passed)."""
    from typer.testing import CliRunner

    from cli import app

    ok = [
        {"split": s, "stem": f"{s}0", "status": "ok", "config_hash": ""}
        for s in ("train", "val", "test")
    ]
    _, run = _label_run(tmp_path, ok)
    (run / "labels" / "test" / ".test0.png.abcd1234.tmp").write_bytes(b"xy")
    res = CliRunner().invoke(app, ["info", str(run), "--no-progress"], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert text.endswith(
        f"note: 1 temporary file (0.0 MB) left by runs killed while writing, e.g. "
        f"{run / 'labels' / 'test' / '.test0.png.abcd1234.tmp'}: the next run of the command "
        f"that writes {run} removes them (a shard's run too, once no other shard of it runs)"
    ), text


def test_the_code_row_names_the_engine_version_of_an_installed_copy():
    """An installed copy (``pip install``, not ``-e``) records no git commit; the code row named
    nothing of the engine then ("commit not recorded") though its version is recorded."""
    from engine.info import made_with

    env = {"git_commit": None, "python": "3.11.7",
           "packages": {"mass-engine": "0.1.0", "torch": "2.14.1", "numpy": "2.4.6"}}  # fmt: skip
    assert (
        made_with(env)
        == "mass-engine 0.1.0 (no git commit); Python 3.11.7, torch 2.14.1, numpy 2.4.6"
    )
    env["git_commit"] = "abc123"  # a checkout: the commit says more than the version
    assert made_with(env).startswith("commit abc123; Python 3.11.7")
    assert made_with({"python": "3.11.7"}) == "commit not recorded; Python 3.11.7"


def test_the_code_row_names_the_ranks_a_ddp_run_trained_on():
    """A DDP run's result depends on its world size (each rank's share of a batch, summed in
    its order); environment.json recorded rank 0's host only, and the code row said nothing."""
    from engine.info import made_with

    env = {"git_commit": "abc123", "cpu_capability": "AVX2", "torch_threads": 1,
           "distributed": {"launcher": "torchrun", "world_size": 16, "nodes": 2}}  # fmt: skip
    assert made_with(env) == (
        "commit abc123; AVX2 kernels, 1 torch thread; 16 ranks (torchrun) on 2 machines"
    )
    env["distributed"] = {"launcher": "processes", "world_size": 2, "nodes": 1}
    assert made_with(env).endswith("; 2 ranks (--processes) on 1 machine")


def test_engine_info_shows_the_command_that_made_an_output(tmp_path, monkeypatch):
    """Every record keeps ``argv`` and ``cwd``, but ``engine info`` showed neither: a user back
    at a run started under nohup had no console to see how it was started. A ``command`` row
    gives the line and its folder; a library call's argv (its script's) gives none."""
    from typer.testing import CliRunner

    from cli import app
    from engine.info import ran_as
    from engine.synth import SynthConfig, generate

    data = generate(SynthConfig(out=tmp_path / "my data", train=1, val=0, test=0, size=(96, 64)),
                    progress=False)  # fmt: skip
    monkeypatch.chdir(tmp_path)
    args = ["label", "--class", "Bicycle", "--data", "my data", "--backend", "simulated",
            "--out", "run", "--no-progress"]  # fmt: skip
    monkeypatch.setattr("sys.argv", ["/venv/bin/engine", *args])
    assert CliRunner().invoke(app, args).exit_code == 0
    res = CliRunner().invoke(app, ["info", "run"], env={"COLUMNS": "300"})
    line = f"engine label --class Bicycle --data 'my data' --backend simulated --out run --no-progress (in {tmp_path})"
    assert re.search(r"│ command +│ " + re.escape(line), res.output), res.output
    assert data.is_dir()
    assert ran_as({"argv": ["/usr/bin/pytest", "tests"], "cwd": "/w"}) is None
    assert ran_as({"argv": ["/w/cli.py", "info", "x"]}) == "engine info x"


def test_engine_info_on_a_record_edited_into_other_types_names_it(tmp_path):
    """A subset.json or an evaluate --json record whose values were edited into other types (a
    count that is a list or a word, an image's counts a number, a score a list) is one line naming
    the file (exit 2) or a problem listed (exit 1), never a traceback. Found by fuzzing."""
    import json

    from typer.testing import CliRunner

    from annotations.subset import write_subset
    from cli import app

    masks = {"a": np.zeros((10, 20), np.uint8)}
    masks["a"][2:4, 2:7] = 1
    write_subset(tmp_path / "sub", "Bicycle", "test", masks, {"a": "c.json"}, {})
    record = tmp_path / "sub" / "subset.json"
    written = json.loads(record.read_text())
    for edit, code in (([], 1), ("aaa", 1), (1.5, 2)):
        info = json.loads(json.dumps(written))
        if isinstance(edit, float):
            info["counts"]["a"] = edit
        else:
            info["counts"]["a"]["height"] = edit
        record.write_text(json.dumps(info))
        res = CliRunner().invoke(app, ["info", str(tmp_path / "sub")], env={"COLUMNS": "300"})
        assert res.exit_code == code, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
        if code == 2:
            said = f"error: {record}: holds a value of an unexpected type or lacks one ("
            assert said in res.output, res.output
    scores = tmp_path / "eval.json"
    classes = [{"name": "sky", "iou": 90.0, "biou": [], "bf1": 0.5}]
    scores.write_text(json.dumps({"mIoU": 1.0, "images": 1, "classes": classes, "config": {}}))
    res = CliRunner().invoke(app, ["info", str(scores)], env={"COLUMNS": "300"})
    assert res.exit_code == 2 and f"error: {scores}: holds a value" in res.output, res.output
    # the files read, not the folder: a label run's manifest (a line's instance count a list)
    # named with the run.json beside it
    done = [{"split": "train", "stem": "train0", "status": "ok", "config_hash": "",
             "instances": [1]}]  # fmt: skip
    _, run = _label_run(tmp_path / "l", done)
    res = CliRunner().invoke(app, ["info", str(run)], env={"COLUMNS": "300"})
    said = f"error: {run / 'run.json'} or manifest.jsonl beside it: holds a value"
    assert res.exit_code == 2 and said in " ".join(res.output.split()), res.output


def test_a_record_with_an_object_of_the_wrong_type_is_one_line_naming_the_file(tmp_path: Path):
    """A hand-edited record whose ``config`` (or ``config.cls``, ``config.augment``) is a list
    or a string: ``error: FILE: 'config' is not an object, got [1, 2]``, exit 2. Before, an
    AttributeError traceback; a label run's ``backend`` given as its name alone (as older
    records and LabelRun read it) likewise."""
    import json

    from typer.testing import CliRunner

    from cli import app

    def info(path: Path):
        return CliRunner().invoke(app, ["info", str(path), "--no-progress"])

    done = [{"split": "train", "stem": "train0", "status": "ok", "config_hash": ""}]
    _, run = _label_run(tmp_path, done)
    good = json.loads((run / "run.json").read_text())
    for edit, said in [
        ({"config": [1, 2]}, "'config' is not an object, got [1, 2]"),
        ({"config": "x"}, "'config' is not an object, got 'x'"),
        ({"config": {**good["config"], "cls": [1]}}, "'config.cls' is not an object, got [1]"),
    ]:
        (run / "run.json").write_text(json.dumps({**good, **edit}))
        res = info(run)
        assert (res.exit_code, res.output) == (2, f"error: {run / 'run.json'}: {said}\n")
    (run / "run.json").write_text(json.dumps({**good, "backend": "simulated"}))
    res = info(run)  # shown (exit 1: splits not labelled yet), not an AttributeError
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception
    train = tmp_path / "train"
    train.mkdir()
    (train / "metrics.jsonl").write_text(json.dumps({"step": 4, "loss": 1.0}) + "\n")
    for config, said in [
        (["iters"], "'config' is not an object, got ['iters']"),
        ({"iters": 10, "augment": "crop"}, "'config.augment' is not an object, got 'crop'"),
    ]:
        (train / "config.json").write_text(json.dumps({"config": config}))
        res = info(train)
        assert (res.exit_code, res.output) == (2, f"error: {train / 'config.json'}: {said}\n")
    demo = tmp_path / "demo" / "report"
    demo.mkdir(parents=True)
    row = {"source": "fused labels", "iou": 70.0, "biou": 60.0, "bf1": 0.8}
    summary = {"classes": {"Bicycle": [1, row]}, "base_classes": {"start checkpoint": [1]},
               "calls": 3, "simulated_labeler": True}  # fmt: skip
    (demo / "summary.json").write_text(json.dumps(summary))
    res = info(demo.parent)  # what is not an object is passed over, as rows of another type were
    assert res.exit_code == 0, res.output
    assert "fused labels" in res.output and "base classes" not in res.output
    (demo / "summary.json").write_text(json.dumps({**summary, "base_classes": [1]}))
    res = info(demo.parent)
    said = f"error: {demo / 'summary.json'}: 'base_classes' is not an object, got [1]\n"
    assert (res.exit_code, res.output) == (2, said)


def test_a_record_with_a_scalar_or_list_of_the_wrong_type_is_shown_or_named(tmp_path: Path):
    """predict.json's ``failed``, ``size``, ``scales`` or ``taxonomy.classes`` given as a
    number, its ``checkpoint_step`` as a list (hand edits): what is not of its type is passed
    over, as an entry of another type in those lists was; a training run's ``config.iters``
    that is no number is one line naming the file. Before, a TypeError traceback each."""
    import json

    from typer.testing import CliRunner

    from cli import app

    pred = tmp_path / "pred"
    pred.mkdir()
    config = {"checkpoint": "runs/train/run/last.pt", "size": 3, "scales": 3, "mode": "id"}
    meta = {"config": config, "checkpoint_step": [1, 2], "failed": 3,
            "taxonomy": {"classes": 3}}  # fmt: skip
    (pred / "predict.json").write_text(json.dumps(meta))
    res = CliRunner().invoke(app, ["info", str(pred), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "runs/train/run/last.pt" in res.output
    train = tmp_path / "train"
    train.mkdir()
    (train / "metrics.jsonl").write_text(json.dumps({"step": 4, "loss": 1.0}) + "\n")
    (train / "config.json").write_text(json.dumps({"config": {"iters": [100]}}))
    res = CliRunner().invoke(app, ["info", str(train), "--no-progress"])
    said = f"error: {train / 'config.json'}: 'config.iters' is not a number, got [100]\n"
    assert (res.exit_code, res.output) == (2, said)


def test_scored_maps_are_read_from_the_folder_the_scoring_ran_in(tmp_path, monkeypatch):
    """An evaluate record's ``pred`` typed relative is read from its ``environment.cwd``: shown
    from a folder with a ``pred`` of its own, engine info said the scored maps had changed
    (and would have said nothing of a real change)."""
    import json

    from engine.evaluate import _composed_as, list_labels, maps_digest
    from engine.info import render_scores

    project, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    for root, value in ((project, 1), (elsewhere, 2)):
        (root / "pred").mkdir(parents=True)
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(root / "pred" / "img0.png")
    found = _composed_as(list_labels(project / "pred", "prediction"), {"img0"})
    record = {
        "config": {"pred": "pred", "gt": "data"},
        "mIoU": 50.0,
        "classes": [],
        "images": 1,
        "stems": ["img0"],
        "maps_sha256": maps_digest(found[s] for s in ["img0"]),
        "environment": {"cwd": str(project)},
    }
    (project / "eval.json").write_text(json.dumps(record))

    def warnings_from(folder: Path) -> list[str]:
        monkeypatch.chdir(folder)
        shown = render_scores(project / "eval.json")
        return [x for x in shown if isinstance(x, str) and x.startswith("warning")]

    assert warnings_from(project) == []
    assert warnings_from(elsewhere) == []
    Image.fromarray(np.full((8, 8), 3, np.uint8)).save(project / "pred" / "img0.png")
    assert warnings_from(elsewhere) == [
        f"warning: {project / 'pred'}: the label maps scored changed since (their bytes differ): "
        "these scores describe the maps as they were; score them again"
    ]


@pytest.mark.parametrize("typed", ["{p}/data", "{p}/data/", "{p}/./data"])
def test_the_restart_command_adds_no_data_for_the_recorded_folder_spelled_otherwise(
    tmp_path, typed
):
    """config.yaml's absolute ``data`` as typed (a trailing ``/``): the same folder as the one
    found, so no ``--data`` is added (a string comparison added one)."""
    import json

    from engine.info import _start_again

    project = tmp_path / "proj"
    (project / "data").mkdir(parents=True)
    run = project / "runs/x"
    run.mkdir(parents=True)
    (run / "environment.json").write_text(json.dumps({"cwd": str(project)}))
    (run / "config.yaml").write_text(f"data: {typed.format(p=project)}\nout: runs/x\n")
    assert _start_again(run) == f"engine train --config {run}/config.yaml --out {run}"


def test_a_folder_listing_names_a_training_run_stopped_before_its_first_step(tmp_path, monkeypatch):
    """``engine info PROJECT`` lists the engine outputs in it: a training run killed before its
    first logged step (config.yaml and config.json only) was described when named itself but
    left out of its folder's listing."""
    from typer.testing import CliRunner

    from annotations.taxonomy import MASS13K
    from cli import app
    from tests.loop_helpers import make_dataset
    from trainer.config import TrainConfig
    from trainer.train import _write_run_files

    make_dataset(tmp_path / "data", "train", n=2, size=(32, 32))
    monkeypatch.chdir(tmp_path)
    for name in ("runA", "runB"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        cfg = TrainConfig(data="data", out=f"runs/{name}", preset="tiny", iters=1, val_split=None)
        _write_run_files(Path("runs") / name, cfg, 0, MASS13K.with_new_class("Bicycle"))
    res = CliRunner().invoke(app, ["info", "runs"], env={"COLUMNS": "400"})
    assert "runs/runA" in res.output and "runs/runB" in res.output, res.output


def test_info_plot_on_a_full_disk_leaves_no_new_folder(tmp_path: Path, monkeypatch):
    """--plot new/shares.png on a full disk left the new, empty folder new/ behind."""
    import contextlib
    import errno

    from typer.testing import CliRunner

    import annotations.fileio
    from cli import app

    _fused(tmp_path / "data")

    @contextlib.contextmanager
    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
        yield

    monkeypatch.setattr(annotations.fileio.atomic, "atomic_file", full)
    out = tmp_path / "new" / "shares.png"
    res = CliRunner().invoke(
        app, ["info", str(tmp_path / "data"), "--plot", str(out), "--no-progress"]
    )
    assert res.exit_code == 74, res.output
    assert res.output.splitlines()[-1] == (
        f"error: {out}: No space left on device; make room and run the same command again"
    )
    assert not (tmp_path / "new").exists()


def test_info_reports_an_image_name_with_a_line_break(tmp_path: Path):
    """'img\\n001.jpg' is legal on Linux, but no one-name-per-line list can hold it: engine info
    said "No problems found." for it."""
    from typer.testing import CliRunner

    from cli import app
    from engine.text import LINE_BREAK
    from tests.loop_helpers import make_dataset

    data = tmp_path / "data"
    make_dataset(data, "test", n=2, size=(8, 8))
    for sub in ("images/test/img001.jpg", "annotations/test/img001.png"):
        (data / sub).rename((data / sub).with_name("img\n001" + Path(sub).suffix))
    res = CliRunner().invoke(app, ["info", str(data), "--no-progress"])
    assert res.exit_code == 1, res.output
    image = repr(str(data / "images/test/img\n001.jpg"))
    assert " ".join(res.output.split()).endswith(f"1 problem found: {image}: {LINE_BREAK}")
