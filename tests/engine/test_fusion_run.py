"""The fusion run (`engine fuse`): outputs, fused dataset, resume, workers, report and errors.

Pseudo-label run directories are written by hand (DESIGN.md section 3 format) with
``engine.fusion.testing.write_pseudo_run``, which uses only the ``annotations`` helpers, so these
tests do not depend on the labeler's code.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotations.labelmap import read_label, write_label
from annotations.taxonomy import MASS13K, ClassInfo, Taxonomy
from engine.datasets import SegDataset, load_spec
from engine.fusion import FuseConfig, default_out_dir, fuse, open_pseudo_run, plan_fusion
from engine.fusion.run import FUSE_FORMAT, run_identity
from engine.fusion.testing import write_pseudo_run
from engine.runinfo import config_hash

O, G, U = 0, 4, 255  # noqa: E741  (Others, Ground, ignore/uncertain)


# -- fixture builders ------------------------------------------------------------------------
def write_dataset(
    root: Path, labels: dict[str, dict[str, np.ndarray]], taxonomy: Taxonomy | None = None
) -> Path:
    """A MaSS13K-layout dataset: a grey PNG image per label map. With ``taxonomy``, a
    dataset.yaml naming it."""
    for split, items in labels.items():
        for stem, label in items.items():
            img_path = root / "images" / split / f"{stem}.png"
            img_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full(label.shape + (3,), 128, np.uint8)).save(img_path)
            write_label(root / "annotations" / split / f"{stem}.png", label)
    if taxonomy is not None:
        taxonomy.save(root / "taxonomy.json")
        (root / "dataset.yaml").write_text("taxonomy: taxonomy.json\n")
    return root


# Two 4x6 images per split. Others = left half, Ground = right half, a 255 corner.
def precise_map() -> np.ndarray:
    lab = np.full((4, 6), O, np.uint8)
    lab[:, 3:] = G
    lab[0, 0] = U
    return lab


def bike_map(shift: int = 0) -> np.ndarray:
    lab = np.zeros((4, 6), np.uint8)
    lab[1:3, 1 + shift : 5 + shift] = 1  # spills from Others onto Ground
    lab[3, 1] = U
    return lab


def car_map() -> np.ndarray:
    lab = np.zeros((4, 6), np.uint8)
    lab[0:2, 0:3] = 1
    return lab


STEMS = ("a", "b")


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    data = write_dataset(
        tmp_path / "data",
        {s: {stem: precise_map() for stem in STEMS} for s in ("train", "val")},
    )
    bike = write_pseudo_run(
        tmp_path / "runs" / "bicycle",
        "Bicycle",
        {s: {"a": bike_map(0), "b": bike_map(1)} for s in ("train", "val")},
    )
    car = write_pseudo_run(
        tmp_path / "runs" / "car",
        "Car",
        {s: {k: car_map() for k in STEMS} for s in ("train", "val")},
    )
    return {"data": data, "bike": bike, "car": car, "out": tmp_path / "fused"}


def cfg(world, **kw) -> FuseConfig:
    kw.setdefault("pseudo", (world["bike"], world["car"]))
    return FuseConfig(data=world["data"], out=world["out"], progress=False, **kw)


def outputs(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for sub in ("labels", "sources")
        for p in sorted((out / sub).rglob("*.png"))
    }


# -- the run ---------------------------------------------------------------------------------
def test_fuse_writes_labels_sources_taxonomy_and_report(world):
    result = fuse(cfg(world))
    out = world["out"]
    assert (result.images, result.fused, result.skipped) == (4, 4, 0)
    assert result.splits == ("train", "val")
    tax = Taxonomy.load(out / "taxonomy.json")
    assert tax.names == MASS13K.names + ["Bicycle", "Car"]
    assert (tax.get("Bicycle").id, tax.get("Bicycle").parent) == (7, 0)
    assert (tax.get("Car").id, tax.get("Car").parent) == (8, 0)

    label = read_label(out / "labels" / "train" / "a.png")
    source = read_label(out / "sources" / "train" / "a.png")
    # Car (conf 200) and Bicycle (conf 200) tie on row 1, cols 1-2 -> 255 (source 2).
    want = np.array(
        [
            [U, 8, 8, G, G, G],
            [8, U, U, G, G, G],
            [0, 7, 7, G, G, G],
            [0, U, 0, G, G, G],
        ],
        np.uint8,
    )
    want_source = np.array(
        [[0, 1, 1, 0, 0, 0], [1, 2, 2, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 2, 0, 0, 0, 0]], np.uint8
    )
    np.testing.assert_array_equal(label, want)
    np.testing.assert_array_equal(source, want_source)

    doc = json.loads((out / "fuse.json").read_text())
    assert doc["status"] == "complete"
    assert doc["settings"]["parents"] == {"Bicycle": ["Others"], "Car": ["Others"]}
    assert [p["class"] for p in doc["inputs"]["pseudo"]] == ["Bicycle", "Car"]
    assert (
        doc["inputs"]["pseudo"][0]["run_json_sha256"]
        == open_pseudo_run(world["bike"]).run_json_sha256
    )
    assert "packages" in doc["environment"]
    # fusion computes nothing with torch: no kernel set or GPUs recorded, loaded or not
    assert "cpu_capability" not in doc["environment"] and "gpus" not in doc["environment"]
    bike = doc["report"]["Bicycle"]
    # a: 8 pseudo px, 4 on Ground (rejected), 2 tied with Car, 2 claimed, 1 uncertain -> 255.
    # b (shifted right): 8 px, 6 on Ground, 1 tied with Car, 1 claimed, 1 uncertain -> 255.
    # Both splits hold the same two images.
    assert (bike["images"], bike["pseudo_pixels"], bike["rejected_pixels"]) == (4, 32, 20)
    assert bike["rejected_share"] == pytest.approx(20 / 32)
    assert (bike["claimed_pixels"], bike["overlap_lost"], bike["uncertain_ignored"]) == (6, 6, 4)
    assert doc["report"]["Car"]["images_with_none"] == 0
    assert result.report["Bicycle"].claimed_pixels == 6
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(
        json.loads(x)["config_hash"] == result.config_hash for x in lines
    )


def test_a_split_given_twice_is_fused_once(world):
    result = fuse(cfg(world, splits=("val", "train", "val")))
    assert result.splits == ("val", "train") and result.images == 4


def test_fused_output_is_a_dataset_for_the_trainer(world):
    fuse(cfg(world, splits=("train",)))
    spec = load_spec(world["out"])
    assert spec.taxonomy.names[-2:] == ["Bicycle", "Car"]
    assert spec.available_splits() == ["train"]
    ds = SegDataset(spec, "train")
    assert [s.stem for s in ds] == list(STEMS)
    assert ds[0].image_path.resolve() == (world["data"] / "images/train/a.png").resolve()
    image, label = ds.load_pair(ds[0])
    assert image.shape == (4, 6, 3) and label.max() == U and 8 in label
    assert not ds.check()


def test_a_fused_dataset_in_a_symlinked_runs_folder_reads_its_images(world, tmp_path):
    """``runs`` a symbolic link to a scratch disk (``runs -> scratch/runs``): the fused dataset
    in ``runs/fused`` wrote ``images: ../../data/images/{split}``, which goes up from the link's
    target (``scratch/data``, nothing there): every command on it said "no image split folders
    found". An entry whose relative path leads elsewhere is written absolute; one that leads
    where it should stays relative (the project moves as a whole)."""
    (tmp_path / "scratch/runs").mkdir(parents=True)
    (tmp_path / "linked").symlink_to("scratch/runs")
    out = tmp_path / "linked/fused"
    fuse(cfg({**world, "out": out}, splits=("train",)))
    assert "images: " + str(world["data"] / "images") + "/{split}\n" in (
        (out / "dataset.yaml").read_text()
    )
    ds = SegDataset(load_spec(out), "train")
    assert [s.image_path for s in ds] == [world["data"] / f"images/train/{s}.png" for s in STEMS]
    fuse(cfg({**world, "out": tmp_path / "plain"}, splits=("train",)))
    assert "images: ../data/images/{split}\n" in (tmp_path / "plain/dataset.yaml").read_text()


@pytest.mark.parametrize("absolute", [False, True])
def test_dataset_spec_images_outside_its_root(tmp_path, absolute):
    data = write_dataset(
        tmp_path / "data", {"train": {"x": precise_map()}, "val": {"y": precise_map()}}
    )
    root = tmp_path / "elsewhere" / "fused"
    write_dataset(root, {"train": {"x": precise_map()}})
    images = (data / "images").absolute() if absolute else Path("../../data/images")
    (root / "dataset.yaml").write_text(
        f"images: {images.as_posix()}/{{split}}\nlabels: annotations/{{split}}\n"
    )
    spec = load_spec(root)
    assert spec.available_splits() == ["train", "val"]  # the image folders that exist
    ds = SegDataset(spec, "train")
    assert ds[0].image_path.resolve() == (data / "images/train/x.png").resolve()
    assert ds.load_pair(ds[0])[1].shape == (4, 6)


def test_the_records_of_a_dataset_named_in_cjk_hold_its_name(world, tmp_path):
    """A dataset in '数据集' and a class '自行车': dataset.yaml held "../\\u6570\\u636E\\u96C6/
    images/{split}" and fuse.json and taxonomy.json "\\u81ea\\u884c\\u8f66", all a user opening
    them saw of the names; written as typed now (UTF-8), and read back the same."""
    data = world["data"].rename(tmp_path / "数据集")
    bike = write_pseudo_run(
        tmp_path / "runs/自行车", "自行车", {"train": {k: bike_map(0) for k in STEMS}}
    )
    out = world["out"]
    fuse(FuseConfig(data=data, pseudo=(bike,), out=out, splits=("train",), progress=False))
    assert "images: ../数据集/images/{split}\n" in (out / "dataset.yaml").read_text(
        encoding="utf-8"
    )
    for name in ("fuse.json", "taxonomy.json"):
        text = (out / name).read_text(encoding="utf-8")
        assert "自行车" in text and "\\u" not in text, name
    assert Taxonomy.load(out / "taxonomy.json").names[-1] == "自行车"
    assert SegDataset(load_spec(out), "train")[0].image_path.parent == data / "images/train"


def test_the_release_layout_fuses_and_its_fused_dataset_reads_images_pad(world):
    """The MaSS13K release's train and val images lie in images_pad/ (images/ holds test):
    the fused dataset names each split's folder. Before, the root had no train or val split."""
    data = world["data"]
    (data / "images").rename(data / "images_pad")
    fuse(cfg(world))
    text = (world["out"] / "dataset.yaml").read_text()
    assert "images:\n  train: ../data/images_pad/train\n  val: ../data/images_pad/val\n" in text
    spec = load_spec(world["out"])
    assert spec.available_splits() == ["train", "val"]
    ds = SegDataset(spec, "val")
    assert ds[0].image_path.resolve() == (data / "images_pad/val/a.png").resolve()
    assert not ds.check()
    record = json.loads((world["out"] / "fuse.json").read_text())["inputs"]["images"]
    assert record == {s: str((data / "images_pad" / s).absolute()) for s in ("train", "val")}
    fuse(cfg(world))  # a rerun finds the same dataset: nothing refused
    (data / "images_pad").rename(data / "moved")  # the images moved: the entry to set
    with pytest.raises(
        FileNotFoundError,
        match=r"set that entry to \{train: .*images_pad/train, val: .*images_pad/val\}",
    ):
        SegDataset(load_spec(world["out"]), "val")


def test_resume_skips_done_images_and_redoes_changed_ones(world, caplog):
    first = fuse(cfg(world))
    before = outputs(world["out"])
    again = fuse(cfg(world))
    assert (again.fused, again.skipped) == (0, 4)
    assert outputs(world["out"]) == before
    assert again.report == first.report  # the report covers skipped images too

    # One pseudo label rewritten -> only that image is fused again.
    write_label(world["bike"] / "labels/val/b.png", bike_map(0))
    write_label(
        world["bike"] / "confidence/val/b.png",
        np.where(bike_map(0) == 1, 200, 100).astype(np.uint8),
    )
    with caplog.at_level("WARNING", logger="engine.fusion.run"):
        changed = fuse(cfg(world))
    assert (changed.fused, changed.skipped) == (1, 3)
    assert [r.getMessage() for r in caplog.records] == [
        f"{world['out']}: 1 image fused with other settings or inputs will be fused again; "
        "give another --out to keep them"
    ]
    np.testing.assert_array_equal(
        read_label(world["out"] / "labels/val/b.png"), read_label(world["out"] / "labels/val/a.png")
    )
    # Another setting -> every image again; --force too.
    assert fuse(cfg(world, uncertain="keep-parent")).fused == 4
    assert fuse(cfg(world, uncertain="keep-parent", force=True)).fused == 4
    # A deleted output is redone.
    (world["out"] / "sources/train/a.png").unlink()
    assert fuse(cfg(world, uncertain="keep-parent")).fused == 1


def test_manifest_lines_that_name_no_image_are_about_none(world):
    """A fused dataset's manifest read as a label run's (annotations.labelrun.latest_records):
    a line without a split and stem as text (a note, a line edited by hand) is about no image.
    Before, fuse keyed its own reading by any "split" and "stem": a JSON string holding both
    words stopped it with a TypeError."""
    fuse(cfg(world))
    with open(world["out"] / "manifest.jsonl", "a") as f:
        f.write('{"note": "refused"}\n[1]\n"split stem"\n{"split": "train", "stem": 5}\n')
    again = fuse(cfg(world))
    assert (again.fused, again.skipped) == (0, 4)


def _set_input_mtimes(world, mtime_ns) -> None:
    """Every input file's modification time set to ``mtime_ns(its mtime_ns)``."""
    import os

    for name in ("data", "bike", "car"):
        for p in world[name].rglob("*"):
            if p.is_file():
                st = p.stat()
                os.utime(p, ns=(st.st_atime_ns, mtime_ns(st.st_mtime_ns)))


def test_inputs_moved_by_tar_or_to_fat_are_not_fused_again(world, caplog):
    """A fused dataset moved with its inputs by ``tar`` (mtimes in whole seconds) or copied to
    a FAT stick (even seconds), zip or a network file system lost its mtimes' nanoseconds, and
    every image was fused again (after a warning that its inputs had changed). Inputs of the
    same bytes are the same inputs now; a file with other bytes is still fused again."""
    _set_input_mtimes(world, lambda _: 1_790_000_001_234_567_891)  # an odd second, with ns
    assert fuse(cfg(world)).fused == 4
    _set_input_mtimes(world, lambda ns: ns // 10**9 * 10**9)  # tar
    with caplog.at_level("WARNING", logger="engine.fusion.run"):
        assert (fuse(cfg(world)).fused, caplog.records) == (0, [])
    _set_input_mtimes(world, lambda ns: ns // (2 * 10**9) * 2 * 10**9)  # FAT, zip
    assert fuse(cfg(world)).fused == 0
    write_label(world["bike"] / "labels/val/b.png", bike_map(0))  # other bytes
    _set_input_mtimes(world, lambda ns: ns // (2 * 10**9) * 2 * 10**9)
    assert fuse(cfg(world)).fused == 1


def test_a_project_copied_again_and_again_keeps_its_manifest_small(world, monkeypatch):
    """Each copy of a project (new modification times) appends a refreshed line per image: a
    project copied or fused again over months held 30 lines an image, which every fuse and
    training read whole (13,000 images: 157 MB, fuse with nothing to do 19 s instead of 3 s),
    and the 13,000 lines went in one locked, fsynced append each (10 s). The lines of a call go
    in at once now, and fuse compacts the manifest to the latest lines once it holds over 4
    times as many."""
    import annotations.fileio as fileio
    from annotations.fileio import read_jsonl

    fuse(cfg(world))
    manifest = world["out"] / "manifest.jsonl"
    latest = {(r["split"], r["stem"]): r["content"] for r in read_jsonl(manifest)}
    appends = []
    cut = fileio.appends._cut_torn_line
    monkeypatch.setattr(fileio.appends, "_cut_torn_line", lambda f: appends.append(1) or cut(f))
    for copy in range(1, 7):
        _set_input_mtimes(world, lambda ns, copy=copy: 1_790_000_000_000_000_000 + copy * 10**9)
        appends.clear()
        assert fuse(cfg(world)).skipped == 4
        assert len(appends) == 1  # the 4 refreshed lines, in one append
    lines = read_jsonl(manifest)
    assert len(lines) == 12  # compacted to 4 when it held 20, then refreshed twice more
    assert {(r["split"], r["stem"]): r["content"] for r in lines} == latest
    assert fuse(cfg(world)).skipped == 4 and len(read_jsonl(manifest)) == 12


def test_a_project_copied_with_new_modification_times_is_still_fused(world, tmp_path, caplog):
    """``cp -r`` (or a download, ``rsync`` without ``-t``) gives every file a new modification
    time. The input stamps held them, so the copy's fused dataset fused every image again,
    after a warning that they had other settings or inputs; now inputs with the bytes they
    had are the same inputs, and the next call skips them at one stat per file again."""
    fuse(cfg(world))
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path, copy, copy_function=shutil.copy, ignore=lambda d, n: ["copy"])
    copied = {k: copy / v.relative_to(tmp_path) for k, v in world.items()}
    before = outputs(copied["out"])
    with caplog.at_level("WARNING", logger="engine.fusion.run"):
        again = fuse(cfg(copied, pseudo=(copied["bike"], copied["car"])))
    assert (again.fused, again.skipped) == (0, 4)
    assert "fused again" not in caplog.text
    assert outputs(copied["out"]) == before
    lines = (copied["out"] / "manifest.jsonl").read_text().splitlines()
    assert fuse(cfg(copied, pseudo=(copied["bike"], copied["car"]))).skipped == 4
    assert (copied["out"] / "manifest.jsonl").read_text().splitlines() == lines  # refreshed once
    # a pseudo label with other bytes is still another input
    write_label(copied["bike"] / "labels/val/b.png", bike_map(0))
    assert fuse(cfg(copied, pseudo=(copied["bike"], copied["car"]))).fused == 1


def test_a_copied_projects_refreshed_records_are_synced_once(world, tmp_path, monkeypatch):
    """After ``cp -r`` every image's record is refreshed (new input stamps). Each was appended
    to manifest.jsonl with an fsync of its own: on 300 small images the fsyncs took longer than
    checking the images' bytes (docs/fusion.md, Speed); now they go in one write."""
    fuse(cfg(world))
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path, copy, copy_function=shutil.copy, ignore=lambda d, n: ["copy"])
    copied = {k: copy / v.relative_to(tmp_path) for k, v in world.items()}
    manifest = copied["out"] / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    synced, real = [], os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    again = fuse(cfg(copied, pseudo=(copied["bike"], copied["car"])))
    assert (again.fused, again.skipped) == (0, 4)
    assert synced.count(manifest.stat().st_ino) == 1
    added = [json.loads(line) for line in manifest.read_text().splitlines()[len(lines) :]]
    assert sorted((r["split"], r["stem"]) for r in added) == sorted(
        (r["split"], r["stem"]) for r in map(json.loads, lines)
    )


def test_run_json_rewritten_by_the_labeler_does_not_refuse_every_image(world, caplog):
    """``engine label`` rewrites run.json when it labels an image again (a photo replaced) or
    is given its dataset at a new path (a project moved or copied to another machine). The
    fusion hashed run.json's bytes, so every image was fused again; now the run's settings
    hash counts, and only the images whose pseudo labels were rewritten are fused again."""
    bike = world["bike"]
    doc = json.loads((bike / "run.json").read_text())
    doc["config_hash"] = "221e08c7837854d0"
    (bike / "run.json").write_text(json.dumps(doc))
    fuse(cfg(world))
    doc["config"]["data"] = doc["data_resolved"] = "/elsewhere/data"
    doc["environment"] = {"time": "2027-01-01T00:00:00", "host": "gpu-07"}
    (bike / "run.json").write_text(json.dumps(doc))
    write_label(bike / "labels/val/b.png", bike_map(0))  # the one image labelled again
    with caplog.at_level("WARNING", logger="engine.fusion.run"):
        again = fuse(cfg(world))
    assert (again.fused, again.skipped) == (1, 3)
    assert "1 image fused with other settings or inputs" in caplog.text
    doc["config_hash"] = "0123456789abcdef"  # another setting: every image
    (bike / "run.json").write_text(json.dumps(doc))
    assert fuse(cfg(world)).fused == 4


def test_records_of_the_previous_hash_stay_done(world):
    """A fused dataset of an engine that hashed run.json's bytes is not fused again after the
    upgrade (its records are rewritten with the new hash, so engine info agrees), as long as
    the runs' run.json files are as they were."""
    fuse(cfg(world, splits=("train",)))
    fuse(cfg(world, splits=("val",)))
    plan = plan_fusion(cfg(world))
    manifest = world["out"] / "manifest.jsonl"
    old = [
        {**r, "config_hash": plan.legacy_hash}
        for r in map(json.loads, manifest.read_text().splitlines())
    ]
    for r in old:
        r.pop("content")  # nor did they hash the inputs' bytes
    manifest.write_text("".join(json.dumps(r) + "\n" for r in old))
    again = fuse(cfg(world, splits=("val",)))
    assert (again.fused, again.skipped) == (0, 2)
    latest = {
        (r["split"], r["stem"]): r for r in map(json.loads, manifest.read_text().splitlines())
    }
    assert {r["config_hash"] for r in latest.values()} == {plan.config_hash}  # train's too
    assert load_spec(world["out"]).available_splits() == ["train", "val"]


def test_a_rerun_with_nothing_to_do_writes_nothing_and_runs_on_a_full_disk(world, monkeypatch):
    """``engine fuse`` run again over a fused dataset with nothing left to do rewrote
    ``taxonomy.json``, ``dataset.yaml`` and ``fuse.json`` (the same bytes but for the record's
    times and counts): on a full disk it failed, and every record's time changed. It writes
    nothing now: each file keeps its bytes and times, and a disk refusing every write is no
    error. Once an image is fused again, ``fuse.json`` is the new call's record."""
    import errno
    import os

    first = fuse(cfg(world))
    out = world["out"]

    def stamps() -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != ".lock"
        }

    before, record = stamps(), (out / "fuse.json").read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_open = os.open

    def no_new_file(name, *args, **kwargs):  # an output's temporary file cannot be created
        if str(name).endswith(".tmp"):
            full()
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_new_file)
    monkeypatch.setattr(os, "fsync", full)
    again = fuse(cfg(world))
    assert (again.fused, again.skipped, again.report) == (0, 4, first.report)
    assert stamps() == before and (out / "fuse.json").read_bytes() == record
    monkeypatch.undo()
    (out / "sources/train/a.png").unlink()
    assert fuse(cfg(world)).fused == 1
    assert json.loads((out / "fuse.json").read_text())["images"]["fused"] == 1


def test_other_new_classes_do_not_replace_a_fused_dataset(world):
    """A fused dataset's folder holds one set of new classes: fusing another set (or the same
    in another order: other ids) into it is refused before anything is written, naming what it
    holds; --force replaces it."""
    fuse(cfg(world))
    before = outputs(world["out"])
    for pseudo, wanted in (
        ((world["car"],), "Car"),
        ((world["car"], world["bike"]), "Car + Bicycle"),
    ):
        with pytest.raises(ValueError) as e:
            fuse(cfg(world, pseudo=pseudo))
        assert str(e.value) == (
            f"{world['out']}: a fused dataset of Bicycle + Car; fusing {wanted} here would "
            "replace its labels and class ids: give another --out, or --force to replace it"
        )
    assert outputs(world["out"]) == before
    assert Taxonomy.load(world["out"] / "taxonomy.json").names[-2:] == ["Bicycle", "Car"]
    replaced = fuse(cfg(world, pseudo=(world["car"],), force=True))
    assert replaced.fused == 4 and Taxonomy.load(world["out"] / "taxonomy.json").names[-1] == "Car"


def test_splits_fused_one_call_at_a_time_stay_in_the_dataset(world, caplog):
    """engine fuse --split train, then --split val into the same OUT: dataset.yaml lists both
    (it used to list the latest call's only, hiding train from training); a split fused with
    other settings is left out, with a warning that says how to bring it back."""
    fuse(cfg(world, splits=("train",)))
    fuse(cfg(world, splits=("val",)))
    assert load_spec(world["out"]).splits == ("train", "val")
    assert len(SegDataset(load_spec(world["out"]), "train")) == 2
    with caplog.at_level("WARNING", logger="engine.fusion.run"):
        fuse(cfg(world, splits=("val",), uncertain="keep-parent"))
    assert load_spec(world["out"]).splits == ("val",)
    assert (
        f"{world['out']}: split 'train' was fused with other settings (or has failed or missing "
        "images) and is left out of dataset.yaml; fuse it again with these settings and --split "
        "train"
    ) in [r.getMessage() for r in caplog.records]
    # kept in fuse.json, as printed, and shown by engine info: a fusion run under nohup, its
    # console gone, lost a split from its dataset without a word (before the forty-fourth round)
    from typer.testing import CliRunner

    from cli import app

    left_out = json.loads((world["out"] / "fuse.json").read_text())
    kept = left_out["warnings"]
    assert kept == [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    res = CliRunner().invoke(app, ["info", str(world["out"])], env={"COLUMNS": "400"})
    assert f"warning (engine fuse): {world['out']}: split 'train' was fused" in res.output
    fuse(cfg(world, splits=("train",), uncertain="keep-parent"))
    assert load_spec(world["out"]).splits == ("train", "val")
    # the latest call's warnings: train fused again, no split left out any more
    record = json.loads((world["out"] / "fuse.json").read_text())
    (again,) = record["warnings"]
    assert again.endswith("2 images fused with other settings or inputs will be fused again; "
                          "give another --out to keep them")  # fmt: skip
    # and the earlier call's, whose val split is still there, marked with its time: the
    # latest call's overwrote them before the forty-fifth round
    first = {"time": left_out["environment"]["time"], "warnings": kept}
    assert record["earlier_warnings"] == [first]
    res = CliRunner().invoke(app, ["info", str(world["out"])], env={"COLUMNS": "400"})
    assert f"warning (engine fuse, call of {first['time']}): {kept[0]}" in res.output
    assert f"warning (engine fuse): {again}" in res.output
    fuse(cfg(world, splits=("train",), uncertain="keep-parent"))  # nothing to say: no key
    record = json.loads((world["out"] / "fuse.json").read_text())
    assert "warnings" not in record and [c["warnings"] for c in record["earlier_warnings"]] == [
        kept,
        [again],
    ]
    fuse(cfg(world, splits=("train",), force=True))  # made anew: nothing earlier is left
    assert "earlier_warnings" not in json.loads((world["out"] / "fuse.json").read_text())


def test_workers_give_the_same_outputs(world, tmp_path):
    fuse(cfg(world))
    serial = outputs(world["out"])
    world["out"] = tmp_path / "fused2"
    result = fuse(cfg(world, workers=2))
    assert result.fused == 4
    assert outputs(world["out"]) == serial


def test_a_workers_warnings_are_kept_in_fuse_json(world, tmp_path, monkeypatch):
    """A warning logged in one of --workers' processes is printed and kept in fuse.json like
    the main process's: before, a spawned worker printed it bare and fuse.json left it out."""
    import engine.fusion.run as run
    import engine.fusion.run.runner as runner  # the module that hands fuse_job to the workers

    (tmp_path / "warning_worker.py").write_text(
        "import logging\n"
        "from engine.fusion import run\n"
        "def fuse_job(job):\n"
        "    logging.getLogger('engine.fusion.run').warning('%s: said in a worker', job.stem)\n"
        "    return run.fuse_job(job)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers import it from there
    import warning_worker

    monkeypatch.setattr(runner, "fuse_job", warning_worker.fuse_job)
    assert fuse(cfg(world, workers=2)).fused == 4
    kept = json.loads((world["out"] / "fuse.json").read_text())["warnings"]
    assert sorted(kept) == sorted(
        f"{j.stem}: said in a worker" for j in run.plan_fusion(cfg(world)).jobs
    )


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_a_worker_killed_stops_fuse_naming_it_and_a_rerun_resumes(world, tmp_path, monkeypatch):
    """A --workers process the kernel's out-of-memory killer (or ``kill -9``) ends: fuse stops
    at once with an error naming the process and its SIGKILL (before: ``BrokenProcessPool``'s
    "A process in the process pool was terminated abruptly ...", exit code 2, a bad input);
    what was fused is kept, and a rerun fuses the rest."""
    import engine.fusion.run as run
    import engine.fusion.run.runner as runner  # the module that hands fuse_job to the workers
    from engine.parallel import WorkerDied

    victim = run.plan_fusion(cfg(world)).jobs[-1].stem
    (tmp_path / "killed_worker.py").write_text(
        "import os, signal\n"
        "from engine.fusion import run\n"
        "def fuse_job(job):\n"
        f"    if job.stem == {victim!r}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return run.fuse_job(job)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers import it from there
    import killed_worker

    monkeypatch.setattr(runner, "fuse_job", killed_worker.fuse_job)
    with pytest.raises(WorkerDied, match=r"^worker process \d+ died: killed by SIGKILL"):
        fuse(cfg(world, workers=2))
    monkeypatch.undo()
    result = fuse(cfg(world, workers=2))
    assert result.fused + result.skipped == 4 and result.fused >= 1


def test_no_more_worker_processes_than_images(world, monkeypatch):
    """--workers 64 on 4 images started 64 processes, 60 of them idle (4.6 s, not 0.2 s)."""
    import engine.fusion.run.runner as run  # the module that calls _run_pool

    started = []
    real = run._run_pool
    monkeypatch.setattr(
        run, "_run_pool", lambda p, o, t, w, d: started.append(w) or real(p, o, t, w, d)
    )
    assert fuse(cfg(world, workers=64)).fused == 4
    assert started == [4]
    (world["out"] / "labels" / "train" / "a.png").unlink()  # one image left to fuse again
    assert fuse(cfg(world, workers=64)).fused == 1
    assert started == [4]  # fused in this process: no pool started for one image


def test_min_coverage_drops_and_reports(world):
    result = fuse(cfg(world, pseudo=(world["bike"],), min_coverage=0.4))
    s = result.report["Bicycle"]
    # a: 4 of 8 instance pixels on Others (0.5) kept; b: 2 of 8 (0.25) dropped, in both splits.
    assert (s.instances, s.instances_dropped) == (4, 2)
    label_b = read_label(world["out"] / "labels/train/b.png")
    assert 7 not in label_b
    doc = json.loads((world["out"] / "fuse.json").read_text())
    assert doc["report"]["Bicycle"]["instances_dropped"] == 2
    assert doc["report"]["Bicycle"]["images_with_none"] == 2
    assert doc["report"]["Bicycle"]["images_without_pseudo"] == 0


def test_min_coverage_with_the_parent_constraint_off_drops_and_redoes_older_fusions(world):
    """Coverage is the share on the parents' pixels with the constraint off too; a dataset
    fused with both by an engine that measured it on every pixel the class may claim (so
    dropped nothing) is fused again, not kept as done."""

    def older_hash(plan):  # the hash such an engine gave the settings
        hashed = {"format": FUSE_FORMAT, "rules": plan.settings()}
        hashed["taxonomy"] = plan.taxonomy.to_dict()
        return config_hash({**hashed, "runs": [run_identity(r) for r in plan.runs]})

    config = cfg(world, pseudo=(world["bike"],), parent_constraint=False, min_coverage=0.4)
    first = fuse(config)
    assert (first.report["Bicycle"].instances, first.report["Bicycle"].instances_dropped) == (4, 2)
    assert 7 not in read_label(world["out"] / "labels/train/b.png")  # 2 of 8 on Others
    assert (read_label(world["out"] / "labels/train/a.png")[1:3, 1:5] == 7).all()  # kept, spills
    plan = plan_fusion(config)
    assert older_hash(plan) != plan.config_hash
    manifest = world["out"] / "manifest.jsonl"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text(
        "".join(json.dumps({**r, "config_hash": older_hash(plan)}) + "\n" for r in lines)
    )
    assert fuse(config).fused == 4
    # without the constraint, or without coverage, the hash is as before; so with a
    # --min-coverage of 0, which drops nothing on either measure (nothing to fuse again)
    kws = ({"parent_constraint": False}, {"min_coverage": 0.4})
    for kw in (*kws, {"parent_constraint": False, "min_coverage": 0.0}):
        p = plan_fusion(cfg(world, pseudo=(world["bike"],), **kw))
        assert p.config_hash == older_hash(p)


def test_parent_list_and_priority(world):
    result = fuse(cfg(world, parents=("Others", "Ground"), priority=("Bicycle",)))
    label = read_label(world["out"] / "labels/train/a.png")
    assert (label[1, 1:5] == 7).all()  # Bicycle claims Ground too, and beats Car by priority
    assert result.report["Bicycle"].rejected_pixels == 0


# -- errors: one clear line naming the files -------------------------------------------------
def test_error_pseudo_run_for_another_dataset(world, tmp_path):
    other = write_pseudo_run(
        tmp_path / "other", "Bicycle", {"train": {"x": bike_map()}, "val": {"y": bike_map()}}
    )
    with pytest.raises(
        ValueError,
        match=r"other/labels/train: no image of .* matches its 1 pseudo label .* another dataset",
    ):
        fuse(cfg(world, pseudo=(other,)))


def test_error_data_folder_too_deep_names_the_dataset_root(world):
    deep = world["data"] / "images"
    with pytest.raises(FileNotFoundError) as e:
        fuse(FuseConfig(data=deep, out=world["out"], pseudo=(world["bike"],), progress=False))
    assert str(e.value) == (
        f"{deep}: no image split folders found (expected images/{{split}}, e.g. images/train); "
        f"is the dataset root {world['data']}?"
    )
    assert not world["out"].exists()


def test_error_a_dataset_without_labels(world):
    """A spec with labels: null lists images only: fusion (and training) name the dataset
    instead of failing on a missing label path inside the run."""
    (world["data"] / "dataset.yaml").write_text("labels: null\n")
    with pytest.raises(ValueError) as e:
        fuse(cfg(world))
    assert str(e.value) == (
        f"{world['data']}: the dataset has no label maps (its spec sets labels: null); "
        "fusion needs them"
    )
    assert not world["out"].exists()
    from trainer.config import AugmentConfig
    from trainer.data import TrainSet

    with pytest.raises(ValueError, match=r"labels: null\); training needs them"):
        TrainSet(world["data"], "train", AugmentConfig())


def test_error_pseudo_labels_missing_or_extra(world, tmp_path):
    partial = write_pseudo_run(tmp_path / "partial", "Bicycle", {"train": {"a": bike_map()}})
    with pytest.raises(
        ValueError, match=r"partial/labels/train: no pseudo label for 1 image of .*: b \(not "
    ) as e:
        fuse(cfg(world, pseudo=(partial,), splits=("train",)))
    # the run may have finished before b was added to the dataset: "finish the labeling run
    # first" was false there; the command labels b (a resume labels only what is missing)
    assert str(e.value).endswith(
        ": b (not labelled yet: the labeling run stopped before them, or they were added to the "
        "dataset since it ran; label them first: engine label --class Bicycle --out "
        f"{partial} --split train with the settings in {partial / 'run.json'})"
    )
    # the labeler failed on b: "finish the labeling run first" was no help, the run had ended
    failure = {"split": "train", "stem": "b", "status": "failed", "error": "ValueError: b.jpg: bad"}
    (partial / "manifest.jsonl").write_text(json.dumps(failure) + "\n")
    with pytest.raises(ValueError) as e:
        fuse(cfg(world, pseudo=(partial,), splits=("train",)))
    assert str(e.value).endswith(
        ": b (the labeling run failed on 1 of them, b: ValueError: b.jpg: bad; mend them and run "
        "engine label again, or take them out of the dataset)"
    )
    extra = write_pseudo_run(
        tmp_path / "extra", "Bicycle", {"train": {k: bike_map() for k in ("a", "b", "zz")}}
    )
    with pytest.raises(
        ValueError, match=r"extra/labels/train: no image in .* for 1 pseudo label: zz"
    ):
        fuse(cfg(world, pseudo=(extra,), splits=("train",)))
    with pytest.raises(FileNotFoundError, match=r"extra/labels/val: this pseudo run has no labels"):
        fuse(cfg(world, pseudo=(extra,), splits=("val",)))
    # no split given: the splits every run labelled; none in common is one line naming the runs
    with pytest.raises(
        ValueError, match=r"data: no split of the dataset \(train, val\) has pseudo labels in every"
    ):
        fuse(cfg(world, pseudo=(partial, write_pseudo_run(tmp_path / "v", "Car", {"val": {}}))))


def test_a_label_run_still_being_written_is_refused_naming_its_process(world, tmp_path):
    """A label run one of whose shards still labels (here it has done train, not val yet) was
    fused as if finished: only train, the split it had, without a word."""
    import os

    from engine.runlock import FolderInUse, exclusive

    going = write_pseudo_run(
        tmp_path / "going", "Bicycle", {"train": {k: bike_map() for k in STEMS}}
    )
    with exclusive(going, "engine label", ".lock-shard1of2"), pytest.raises(FolderInUse) as e:
        fuse(cfg(world, pseudo=(going, world["car"])))
    assert str(e.value).startswith(f"{going}: engine label (pid {os.getpid()} on ")
    assert "engine fuse would read its pseudo labels half written: wait for it" in str(e.value)
    assert not world["out"].exists()
    assert fuse(cfg(world, pseudo=(going, world["car"]))).splits == ("train",)  # finished


def test_error_class_already_in_taxonomy(tmp_path):
    fused_tax = MASS13K.with_new_class("Bicycle")
    data = write_dataset(tmp_path / "data", {"train": {"a": precise_map()}}, taxonomy=fused_tax)
    run = write_pseudo_run(tmp_path / "run", "Bicycle", {"train": {"a": bike_map()}})
    with pytest.raises(
        ValueError, match=r"run/run.json: class 'Bicycle' is already in the taxonomy"
    ):
        plan_fusion(FuseConfig(data=data, pseudo=(run,), out=tmp_path / "o"))


def test_a_class_fused_again_says_where_it_came_from_and_the_call_that_refuses_it(world, tmp_path):
    """Classes added one after another: Bicycle fused, Car fused onto it, then Bicycle (the same
    run by mistake, or relabelled) fused onto either. Refused as before, and the error now says
    which run the class was fused from (which fuse.json) and the one engine fuse call, onto the
    original dataset with every run in its order, that fuses it anew; before, only 'a pseudo
    run must add a new class'."""
    bike = fuse(FuseConfig(world["data"], (world["bike"],), tmp_path / "b", progress=False)).out
    both = fuse(FuseConfig(bike, (world["car"],), tmp_path / "bc", progress=False)).out
    with pytest.raises(ValueError, match="a pseudo run must add a new class") as e:
        plan_fusion(FuseConfig(data=bike, pseudo=(world["bike"],), out=tmp_path / "o"))
    assert f": it was fused from this run already ({bike / 'fuse.json'}), so train on" in str(
        e.value
    )
    assert f"engine fuse --data {world['data'].resolve()} --out NEW --pseudo " in str(e.value)
    again = shutil.copytree(world["bike"], tmp_path / "relabelled")
    with pytest.raises(ValueError, match="a pseudo run must add a new class") as e:
        plan_fusion(FuseConfig(data=both, pseudo=(again,), out=tmp_path / "o"))
    said = str(e.value)
    assert f"it was fused from {world['bike'].resolve()} ({bike / 'fuse.json'})" in said
    assert said.endswith(
        f"--out NEW --pseudo {again} --pseudo {world['car'].resolve()}"
    )  # Bicycle's new run in its old one's place: no id moves
    assert not (tmp_path / "o").exists()
    # a fuse.json up the chain that is no JSON object (a damaged copy): the refusal as before,
    # without the chain; before, 'list' object has no attribute 'get' while building it
    (world["data"] / "fuse.json").write_text("[1]")
    with pytest.raises(ValueError, match="a pseudo run must add a new class"):
        plan_fusion(FuseConfig(data=both, pseudo=(again,), out=tmp_path / "o"))


def test_in_a_copied_project_fuse_names_the_copys_dataset(tmp_path, monkeypatch, caplog):
    """A project copied (``cp -r proj copy``, the original kept): ``engine fuse`` of the copy's
    run onto the copy's dataset warned that the run labelled another dataset, the original's
    (run.json's data_resolved), and the refusal of a class fused again suggested fusing anew
    onto the original's dataset (fuse.json's inputs.data) with the chain's other runs as typed
    in the original (``runs/car``: nothing from here). All now name the copy's, found beside
    its run and fused datasets."""
    from engine.fusion.testing import labeler_run_json

    proj = tmp_path / "proj"
    write_dataset(proj / "data", {"train": {"a": precise_map()}})
    doc = labeler_run_json(MASS13K.with_new_class("Bicycle"), "Bicycle", data="data")
    doc["config"]["out"], doc["data_resolved"] = "runs/bicycle", str(proj / "data")
    write_pseudo_run(proj / "runs" / "bicycle", "Bicycle", {"train": {"a": bike_map()}},
                     run_json=doc)  # fmt: skip
    write_pseudo_run(proj / "runs" / "car", "Car", {"train": {"a": car_map()}})
    monkeypatch.chdir(proj)
    fuse(FuseConfig(Path("data"), (Path("runs/bicycle"),), Path("fused"), progress=False))
    fuse(FuseConfig(Path("fused"), (Path("runs/car"),), Path("both"), progress=False))
    shutil.copytree(proj, tmp_path / "copy", symlinks=True)
    monkeypatch.chdir(tmp_path)  # neither project's root: "data" names nothing here
    copy = Path("copy")
    with caplog.at_level("WARNING"):
        res = fuse(FuseConfig(copy / "data", (copy / "runs/bicycle",), copy / "f2", progress=False))
    assert res.fused == 1
    assert "labelled dataset" not in caplog.text, caplog.text
    with pytest.raises(ValueError, match="a pseudo run must add a new class") as e:
        plan_fusion(FuseConfig(copy / "fused", (copy / "runs/bicycle",), copy / "o"))
    assert "engine fuse --data copy/data --out NEW --pseudo copy/runs/bicycle" in str(e.value)
    with pytest.raises(ValueError, match="a pseudo run must add a new class") as e:
        plan_fusion(FuseConfig(copy / "both", (copy / "runs/bicycle",), copy / "o"))
    said = str(e.value)  # each run of the chain where it is beside the copy's fused datasets
    assert said.endswith(
        "--data copy/data --out NEW --pseudo copy/runs/bicycle --pseudo copy/runs/car"
    )


def _taxonomy_of(n: int) -> Taxonomy:
    """MaSS13K's 7 classes and ``n - 7`` more base classes: ``n`` in all."""
    extra = tuple(ClassInfo(i, f"Extra {i}", (i, 0, 0)) for i in range(7, n))
    return Taxonomy(MASS13K.classes + extra)


def test_more_new_classes_than_uint8_ids_hold_are_refused_before_writing(tmp_path):
    """Two runs onto a 254-class dataset need ids 254 and 255 (ignore): the error was
    'class id must be in 0..254, got 255 for 'Car'', naming neither the run nor the dataset."""
    tax = _taxonomy_of(254)
    data = write_dataset(tmp_path / "data", {"train": {"a": precise_map()}}, taxonomy=tax)
    bike = write_pseudo_run(tmp_path / "bike", "Bicycle", {"train": {"a": bike_map()}}, base=tax)
    car = write_pseudo_run(tmp_path / "car", "Car", {"train": {"a": bike_map()}}, base=tax)
    with pytest.raises(ValueError) as e:
        plan_fusion(FuseConfig(data=data, pseudo=(bike, car), out=tmp_path / "o"))
    assert str(e.value) == (
        f"{car / 'run.json'}: no class id left for class 'Car': dataset {data} has 254 "
        "classes, so uint8 label maps (ids 0..254, 255 is ignore) have room for 1 new class, "
        "not 2"
    )
    assert not (tmp_path / "o").exists()
    fused = fuse(FuseConfig(data=data, pseudo=(bike,), out=tmp_path / "o", progress=False))
    assert Taxonomy.load(fused.out / "taxonomy.json")[254].name == "Bicycle"  # the last id
    assert (read_label(fused.out / "labels" / "train" / "a.png") == 254).sum() == 4


def test_an_unknown_parent_names_20_classes_of_a_large_dataset(tmp_path):
    """--parent Nope listed all 254 classes of the dataset (a 4 KB line)."""
    tax = _taxonomy_of(254)
    data = write_dataset(tmp_path / "data", {"train": {"a": precise_map()}}, taxonomy=tax)
    bike = write_pseudo_run(tmp_path / "bike", "Bicycle", {"train": {"a": bike_map()}}, base=tax)
    with pytest.raises(ValueError) as e:
        plan_fusion(FuseConfig(data=data, pseudo=(bike,), out=tmp_path / "o", parents=("Nope",)))
    assert str(e.value) == (
        "--parent 'Nope': not a precise class of the dataset; known: "
        f"{', '.join(tax.names[:20])}, ... (254 in all)"
    )


def test_a_class_fused_onto_a_fused_dataset_keeps_its_pseudo_pixels(world, tmp_path):
    """Car fused onto Bicycle's fused dataset: Bicycle's pseudo (and ignored) pixels keep their
    source, as in one fusion of both; they were written as precise, so they trained as such."""
    bike = FuseConfig(data=world["data"], pseudo=(world["bike"],), out=tmp_path / "bike")
    first = fuse(replace(bike, progress=False)).out
    fuse(FuseConfig(data=first, pseudo=(world["car"],), out=tmp_path / "both", progress=False))
    for split in ("train", "val"):
        for stem in STEMS:
            before = read_label(first / "sources" / split / f"{stem}.png")
            after = read_label(tmp_path / "both" / "sources" / split / f"{stem}.png")
            kept = read_label(first / "labels" / split / f"{stem}.png") == read_label(
                tmp_path / "both" / "labels" / split / f"{stem}.png"
            )
            assert (before[kept] == after[kept]).all() and (before == 1).any()
    shutil.rmtree(first / "sources" / "val")
    with pytest.raises(ValueError, match=r"bike/sources/val: .* no source maps for split 'val'"):
        plan_fusion(FuseConfig(data=first, pseudo=(world["car"],), out=tmp_path / "o"))


def test_error_two_runs_for_one_class(world, tmp_path):
    again = write_pseudo_run(
        tmp_path / "again", "bicycle", {s: {k: bike_map() for k in STEMS} for s in ("train", "val")}
    )
    with pytest.raises(ValueError, match=r"bicycle/run.json and .*again/run.json: two pseudo runs"):
        plan_fusion(cfg(world, pseudo=(world["bike"], again)))


def test_a_bad_pseudo_label_fails_its_image_alone_and_a_rerun_fuses_it(world):
    write_label(world["bike"] / "labels/val/a.png", np.zeros((5, 6), np.uint8))
    truncated = world["car"] / "labels/train/b.png"
    good = truncated.read_bytes()
    truncated.write_bytes(good[:40])
    result = fuse(cfg(world))
    assert (result.fused, result.skipped) == (2, 0)
    assert [(split, stem) for split, stem, _ in result.failed] == [("train", "b"), ("val", "a")]
    assert result.failed[0][2].startswith(str(truncated) + ": ")
    assert re.search(
        r"bicycle/labels/val/a.png: size 6x5 does not match .*annotations/val/a.png \(6x4\)",
        result.failed[1][2],
    )
    assert sorted(outputs(world["out"])) == [
        "labels/train/a.png", "labels/val/b.png", "sources/train/a.png", "sources/val/b.png"
    ]  # fmt: skip
    doc = json.loads((world["out"] / "fuse.json").read_text())
    assert doc["status"] == "incomplete" and doc["images"]["failed"] == 2
    assert [f["stem"] for f in doc["failed"]] == ["b", "a"]
    manifest = [json.loads(x) for x in (world["out"] / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in manifest) == ["failed", "failed", "ok", "ok"]
    assert result.report["Car"].images == 2  # the report counts the fused images only
    # mended, a rerun fuses only the two that failed
    write_label(world["bike"] / "labels/val/a.png", bike_map(0))
    truncated.write_bytes(good)
    mended = fuse(cfg(world))
    assert (mended.fused, mended.skipped, mended.failed) == (2, 2, [])
    assert json.loads((world["out"] / "fuse.json").read_text())["status"] == "complete"
    assert len(outputs(world["out"])) == 8


@pytest.mark.parametrize(
    "doc, message",
    [
        (None, r"run.json: not found"),
        ({"class": "Bicycle", "parent": "Others"}, r"run.json: expected the labeler's 'taxonomy'"),
        (
            {"class_id": 9, "taxonomy": MASS13K.with_new_class("Bicycle").to_dict()},
            r"run.json: class_id 9 is not in its taxonomy",
        ),
        (
            {"config": {"cls": {"name": "Boat"}}, "class_id": 7,
             "taxonomy": MASS13K.with_new_class("Bicycle").to_dict()},
            r"run.json: config.cls.name 'Boat' but class_id 7 is 'Bicycle'",
        ),
        ({"class_id": 6, "taxonomy": MASS13K.to_dict()}, r"run.json: class 'Water' has no parent"),
    ],
)  # fmt: skip
def test_error_bad_run_json(world, doc, message):
    path = world["bike"] / "run.json"
    if doc is None:
        path.unlink()
    else:
        path.write_text(json.dumps(doc))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        plan_fusion(cfg(world))


def test_run_json_read_with_the_labelers_keys(world):
    tax = MASS13K.with_new_class("Bicycle").to_dict()
    labeler_style = {  # what labeler/run/ writes
        "config": {"cls": {"name": "Bicycle", "prompts": ["bicycle"], "parent": "Others"}},
        "backend": {"name": "grounded-sam", "identity": {}, "models": {}},
        "class_id": 7,
        "taxonomy": tax,
    }
    for doc in (labeler_style, {"class_id": 7, "taxonomy": tax}):
        (world["bike"] / "run.json").write_text(json.dumps(doc))
        run = open_pseudo_run(world["bike"])
        assert (run.class_name, run.parent_name, run.run_class_id) == ("Bicycle", "Others", 7)
    result = fuse(cfg(world, pseudo=(world["bike"],), min_coverage=0.4))
    assert result.report["Bicycle"].instances_dropped == 2


def test_a_run_made_on_another_dataset_is_warned_about(world, caplog, monkeypatch):
    """run.json records the dataset the run labelled; another --data (the same file names in
    another dataset: the stems match) is fused after a warning naming both."""
    bike = world["bike"]

    def labelled(data, resolved=None):
        doc = json.loads((bike / "run.json").read_text())
        doc["config"]["data"] = str(data)
        doc.pop("data_resolved", None)
        if resolved is not None:
            doc["data_resolved"] = str(resolved)
        (bike / "run.json").write_text(json.dumps(doc))
        caplog.clear()
        plan_fusion(cfg(world, pseudo=(bike,)))
        return caplog.text

    other = world["data"].parent / "other"
    text = labelled(other, other)
    assert f"{bike / 'run.json'}: the run labelled dataset {other}, but --data is" in text
    assert "a pseudo run for another dataset?" in text
    assert labelled(world["data"]) == ""
    monkeypatch.chdir(world["data"].parent)  # typed relative there; the absolute one decides
    assert labelled("data", world["data"].absolute()) == ""
    (world["data"] / "spec.yaml").write_text("images: images/{split}\n")  # a spec file: its root
    assert labelled(world["data"] / "spec.yaml") == ""
    # a spec file of the root whose images are elsewhere: still its root, by the root alone
    (world["data"] / "photos.yaml").write_text("images: photos/{split}\n")
    assert labelled(world["data"] / "photos.yaml") == ""


def test_a_run_fused_onto_a_fused_dataset_of_its_dataset_is_not_warned_about(world, caplog):
    """Car labelled on the dataset, fused onto the dataset's fused Bicycle (the documented way
    to add a class later): the fused dataset's images are the run's dataset's, so nothing is
    said. Before, it warned "a pseudo run for another dataset?" at every such fusion. Another
    dataset of the same layout still gets the warning."""
    doc = json.loads((world["car"] / "run.json").read_text())
    doc["data_resolved"] = str(world["data"])
    (world["car"] / "run.json").write_text(json.dumps(doc))
    fuse(cfg(world, pseudo=(world["bike"],)))
    caplog.clear()
    plan_fusion(
        FuseConfig(data=world["out"], pseudo=(world["car"],), out=world["out"].parent / "bc")
    )
    assert "another dataset" not in caplog.text
    other = world["data"].parent / "copy"
    shutil.copytree(world["data"], other)
    plan_fusion(FuseConfig(data=other, pseudo=(world["car"],), out=world["out"].parent / "c"))
    assert "a pseudo run for another dataset?" in caplog.text


def _vouched_by(run: Path, hashes: dict[str, str], argv: list[str]) -> None:
    """Make a hand-made run look the labeler's: run.json records settings hash "now" and the
    command that wrote it, and each split's manifest lines carry ``hashes[split]``."""
    doc = json.loads((run / "run.json").read_text())
    doc.update(config_hash="now", environment={"argv": argv})
    (run / "run.json").write_text(json.dumps(doc))
    lines = [json.loads(x) for x in (run / "manifest.jsonl").read_text().splitlines()]
    (run / "manifest.jsonl").write_text(
        "".join(json.dumps({**r, "config_hash": hashes[r["split"]]}) + "\n" for r in lines)
    )


def test_pseudo_labels_the_run_no_longer_vouches_for(world, caplog):
    """Images whose latest manifest line has another settings hash than run.json's (train
    labelled at one threshold, val relabelled at another) are fused after a warning naming how
    many and the command that labels them again, and listed in fuse.json; pseudo labels of
    another class (a run relabelled as Car with --split val kept Bicycle's train) are refused."""
    bike = world["bike"]
    argv = ["/bin/engine", "label", "--class", "Bicycle", "--data", "D", "--split", "val"]
    _vouched_by(bike, {"train": "before", "val": "now"}, argv)
    result = fuse(cfg(world, pseudo=(bike,)))
    assert result.fused == 4
    assert (
        f"{bike}: 2 images (train 2) not labelled with the settings its run.json records"
        in caplog.text
    )
    assert "engine label --class Bicycle --data D --split train" in caplog.text
    record = json.loads((world["out"] / "fuse.json").read_text())
    assert [(u["split"], u["stem"], u["why"]) for u in record["unvouched"]] == [
        ("train", "a", "labelled with other settings"),
        ("train", "b", "labelled with other settings"),
    ]
    # the train images' instances say Bicycle, run.json Car: refused before anything is written
    for stem in STEMS:
        path = world["car"] / "instances" / "train" / f"{stem}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "class_name": "Bicycle"}))
    _vouched_by(world["car"], {"train": "before", "val": "now"}, argv)
    out = world["out"].parent / "car_fused"
    with pytest.raises(ValueError, match=r"train/a.json: pseudo labels of Bicycle, but .*car/run"
                       r".json says the run labels Car \(2 images not labelled with its settings, "
                       r"in train\): label them again first: engine label"):  # fmt: skip
        fuse(FuseConfig(data=world["data"], pseudo=(world["car"],), out=out, progress=False))
    assert not out.exists()


def test_a_photo_replaced_since_labelled_is_warned_about_and_listed(world, caplog):
    """A dataset whose images were downloaded again (same names, new bytes) or one photo
    replaced: ``engine label`` resumed labels it again, but ``engine fuse`` fused the old
    photo's pseudo labels without a word and fuse.json vouched for them."""
    bike = world["bike"]
    argv = ["/bin/engine", "label", "--class", "Bicycle", "--data", "D"]
    _vouched_by(bike, {"train": "now", "val": "now"}, argv)
    lines = [json.loads(x) for x in (bike / "manifest.jsonl").read_text().splitlines()]
    sizes = {
        (r["split"], r["stem"]): (world["data"] / "images" / r["split"] / f"{r['stem']}.png")
        .stat()
        .st_size
        for r in lines
    }
    (bike / "manifest.jsonl").write_text(
        "".join(
            json.dumps({**r, "image_bytes": sizes[r["split"], r["stem"]]}) + "\n" for r in lines
        )
    )
    assert fuse(cfg(world, pseudo=(bike,))).fused == 4
    assert "changed since labelled" not in caplog.text
    photo = world["data"] / "images" / "val" / "b.png"
    Image.fromarray(np.arange(72, dtype=np.uint8).reshape(4, 6, 3)).save(photo)  # another photo
    caplog.clear()
    again = fuse(cfg(world, pseudo=(bike,)))
    assert again.skipped == 4  # its inputs are as they were: only the warning says
    assert (
        f"{bike}: 1 image changed since labelled (val/b: another file size; a photo replaced?): "
        "their pseudo labels are the old photos' and are fused as they are, listed in fuse.json; "
        "to label them again first: engine label --class Bicycle --data D --split val"
    ) in caplog.text
    record = json.loads((world["out"] / "fuse.json").read_text())
    assert [(u["split"], u["stem"], u["why"]) for u in record["unvouched"]] == [
        ("val", "b", "its image changed since labelled (another file size)")
    ]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"parents": ("Sofa",)}, r"--parent 'Sofa': not a precise class"),
        ({"priority": ("Ground",)}, r"--priority 'Ground': not a new class"),
        ({"priority": ("Car", "car")}, r"^--priority lists Car twice: Car, car$"),
        ({"pseudo": ()}, "no pseudo-label run given"),
        ({"splits": ("test",)}, r"data/images/test: split 'test' not found"),
    ],
)
def test_error_bad_settings(world, kw, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        plan_fusion(cfg(world, **kw))


def test_error_output_is_an_input(world):
    with pytest.raises(ValueError, match="must not be an input"):
        plan_fusion(FuseConfig(data=world["data"], pseudo=(world["bike"],), out=world["bike"]))


def test_config_is_strict():
    with pytest.raises(ValueError, match=r"unknown keys \['parnets'\]"):
        FuseConfig.from_dict({"data": "d", "pseudo": [], "out": "o", "parnets": ["Others"]})
    with pytest.raises(ValueError, match="workers must be >= 0"):  # 0: in this process, as 1
        FuseConfig(data="d", pseudo=(), out="o", workers=-1)


# -- CLI -------------------------------------------------------------------------------------
def invoke(args: list[str]):
    import typer
    from click.testing import CliRunner

    from cli import app

    # get_group: `fuse` stays a subcommand even while it is the only registered command.
    return CliRunner().invoke(typer.main.get_group(app), args)


def test_cli_fuse(world):
    args = ["fuse", "--data", str(world["data"]), "--pseudo", str(world["bike"])]
    args += ["--pseudo", str(world["car"]), "--out", str(world["out"]), "--split", "train"]
    args += ["--uncertain", "keep-parent", "--priority", "Car", "--no-progress", "--workers", "2"]
    res = invoke(args)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # rich wraps at 80 columns
    assert "Bicycle (7)" in text and "Car (8)" in text and "fused 2 images" in text
    assert "rejected by parent constraint" in text
    doc = json.loads((world["out"] / "fuse.json").read_text())
    assert doc["settings"]["uncertain"] == "keep-parent"
    assert doc["settings"]["priority"] == ["Car"]
    assert doc["config"]["splits"] == ["train"] and doc["config"]["workers"] == 2
    label = read_label(world["out"] / "labels/train/a.png")
    assert label[1, 1] == 8 and label[3, 1] == O  # Car by priority; uncertain kept as Others
    again = invoke(args)
    assert again.exit_code == 0 and "skipped 2 already done" in " ".join(again.output.split())


def test_cli_report_of_many_new_classes_stays_readable_in_80_columns(world, tmp_path):
    """Nine new classes made one table of nine columns: at 80 columns every figure's name and
    share was cut to a few letters ('reject…', '(51.3…'). Now three classes to a table."""
    labels = {s: {k: bike_map(0) for k in STEMS} for s in ("train", "val")}
    runs = [write_pseudo_run(tmp_path / f"t{i}", f"Thing{i}", labels) for i in range(1, 8)]
    args = ["fuse", "--data", str(world["data"]), "--out", str(world["out"]), "--no-progress"]
    res = invoke(args + [a for r in runs for a in ("--pseudo", str(r))])
    assert res.exit_code == 0, res.output
    assert "…" not in res.output
    for first, last in ((1, 3), (4, 6), (7, 7)):
        assert f"new classes {first}-{last} of 7" in res.output
    text = " ".join(res.output.split())
    assert all(f"Thing{i} ({i + 6})" in text for i in range(1, 8))
    assert text.count("pseudo pixels") == 3


def test_cli_paths_are_whole_lines_in_a_narrow_terminal_or_a_log(world):
    """The results' lines are not broken at the console's width (80 in a pipe or a log file,
    COLUMNS in a terminal): "-> PATH (open it as a dataset: engine info PATH)" came out over
    three lines, and a path longer than the width was cut in two, so neither the path nor the
    command could be copied or grepped. The terminal wraps a long line itself."""
    import typer
    from click.testing import CliRunner

    from cli import app

    out = world["out"] / "a folder whose path is longer than the terminal is wide"
    args = ["fuse", "--data", str(world["data"]), "--pseudo", str(world["bike"]), "--out", str(out)]
    res = CliRunner().invoke(typer.main.get_group(app), args, env={"COLUMNS": "40"})
    assert res.exit_code == 0, res.output
    assert f"-> {out} (open it as a dataset: engine info {shlex.quote(str(out))})\n" in res.output


def test_cli_default_out_and_parent_list(world, monkeypatch):
    monkeypatch.chdir(world["data"].parent)
    res = invoke(
        ["fuse", "--data", "data", "--pseudo", str(world["bike"]), "--pseudo", str(world["car"])]
        + ["--parent", "Others,Ground", "--min-coverage", "0.5", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(Path("runs/fused/bicycle+car/fuse.json").read_text())
    assert doc["settings"]["parents"]["Car"] == ["Others", "Ground"]
    assert doc["settings"]["min_coverage"] == 0.5
    assert load_spec("runs/fused/bicycle+car").taxonomy.num_classes == 9
    rack = write_pseudo_run(Path("runs/rack"), "Bike/Rack", {"train": {"a": car_map()}})
    assert default_out_dir([rack]).as_posix() == "runs/fused/bike_rack"  # one folder


def test_cli_default_out_of_a_class_fused_onto_a_fused_dataset_names_every_class(
    world, monkeypatch
):
    """Car fused onto runs/fused/bicycle (classes added one after another) went by default to
    runs/fused/car, a name that hides Bicycle and that a later fusion of Car alone was refused
    in; it goes to runs/fused/bicycle+car, the classes it holds, as one fusion of both names
    them."""
    monkeypatch.chdir(world["data"].parent)
    res = invoke(["fuse", "--data", "data", "--pseudo", str(world["bike"]), "--no-progress"])
    assert res.exit_code == 0, res.output
    args = ["fuse", "--pseudo", str(world["car"]), "--no-progress"]
    res = invoke([*args, "--data", "runs/fused/bicycle"])
    assert res.exit_code == 0, res.output
    assert load_spec("runs/fused/bicycle+car").taxonomy.names[7:] == ["Bicycle", "Car"]
    assert not Path("runs/fused/car").exists()
    spec = "runs/fused/bicycle/dataset.yaml"  # the fused dataset's spec file: the same
    assert default_out_dir([world["car"]], data=spec).as_posix() == "runs/fused/bicycle+car"
    assert default_out_dir([world["car"]], data="data").as_posix() == "runs/fused/car"


def test_cli_error_is_one_line(world, tmp_path):
    other = write_pseudo_run(tmp_path / "other", "Bicycle", {"train": {"x": bike_map()}})
    res = invoke(["fuse", "--data", str(world["data"]), "--pseudo", str(other), "--split", "train"])
    assert res.exit_code == 2
    text = " ".join(res.output.split())  # one message; rich wraps it at 80 columns
    assert text.startswith("error: ") and text.count("error:") == 1
    assert "other/labels/train: no image of" in text and "matches its 1 pseudo label " in text
    assert "another dataset" in text
    assert "Traceback" not in res.output


def test_cli_an_empty_split_or_parent_list_is_refused(world):
    """--split "" fused no image and wrote a dataset of no split; --parent "" gave every new
    class no parent, so it claimed no pixel: both without a word."""
    args = ["fuse", "--data", str(world["data"]), "--pseudo", str(world["bike"])]
    args += ["--out", str(world["out"])]
    for option, text in (("--split", ","), ("--parent", "")):
        res = invoke([*args, option, text])
        assert res.exit_code == 2 and not world["out"].exists()
        assert " ".join(res.output.split()).startswith(f"error: {option} names no class or split")


def test_cli_an_image_that_fails_in_a_worker_process_is_one_line(world):
    write_label(world["car"] / "labels/train/b.png", np.zeros((4, 7), np.uint8))
    res = invoke(
        ["fuse", "--data", str(world["data"]), "--pseudo", str(world["car"])]
        + ["--out", str(world["out"]), "--workers", "2", "--no-progress"]
    )
    assert res.exit_code == 1  # the others are fused
    text = " ".join(res.output.split())
    assert "fused 3 images" in text and "1 image failed (mend the files" in text
    assert "car/labels/train/b.png: size 7x4 does not match" in text
    assert "Traceback" not in res.output
    # errors on stderr, results on stdout: `engine fuse ... > fuse.txt` still shows what failed
    assert "b.png" in res.stderr and "failed" not in res.stdout and "fused 3 images" in res.stdout


KILLED_AFTER = """
import os, signal, sys
import engine.fusion.run.image as run  # the module whose fuse_job writes the maps
real, calls = run.write_label, []
def write_label(*args, **kwargs):
    real(*args, **kwargs)
    calls.append(1)
    if len(calls) == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
run.write_label = write_label
from cli import app
app(sys.argv[2:])
"""


@pytest.mark.slow
@pytest.mark.parametrize("maps", [1, 3, 7])
def test_a_fusion_killed_at_any_map_resumes_to_the_same_bytes(world, tmp_path, maps):
    """``kill -9`` of ``engine fuse`` after its ``maps``-th label or source map (one image's
    label written and its source not, at 1, 3 and 7): ``engine info`` says the fusion was
    stopped and to run it again (it said "unless it is running now"), and the rerun, given the
    same command, writes what one uninterrupted fusion writes, byte for byte."""
    from typer.testing import CliRunner

    from cli import app
    from tests.loop_helpers import run_killed

    args = ["fuse", "--data", str(world["data"]), "--pseudo", str(world["bike"]), "--no-progress"]
    whole = tmp_path / "whole"
    assert CliRunner().invoke(app, [*args, "--out", str(whole)]).exit_code == 0
    out = world["out"]
    run_killed(KILLED_AFTER, str(maps), *args, "--out", str(out))
    assert json.loads((out / "fuse.json").read_text())["status"] == "running"
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output  # a split not begun too: it was 2 (folder not found)
    assert "no process writes it now (stopped): run the same engine fuse command again" in (
        " ".join(res.output.split())
    )
    res = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"skipped {maps // 2} already done" in " ".join(res.output.split())
    assert outputs(out) == outputs(whole)
    for name in ("dataset.yaml", "taxonomy.json"):
        assert (out / name).read_bytes() == (whole / name).read_bytes()
    assert json.loads((out / "fuse.json").read_text())["status"] == "complete"


KILLED_WRITING = """
import os, signal, sys
real, calls = os.replace, []
def replace(src, dst):
    if str(src).endswith(".tmp") and "labels" in str(dst):
        calls.append(1)
        if len(calls) == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)  # the label map written, not yet renamed
    real(src, dst)
os.replace = replace
from cli import app
app(sys.argv[2:])
"""


@pytest.mark.slow
def test_temporary_files_of_killed_fusions_are_counted_and_removed_by_the_rerun(world, tmp_path):
    """``kill -9`` of ``engine fuse`` while it writes a label map, twice: each kill left the
    map's temporary file (``labels/train/.a.png.*.tmp``), and no rerun removed them. Each run
    removes those of the runs before it (the second kill leaves its own alone), ``engine
    info`` notes what is left (exit code unchanged), the rerun that finishes removes it, and
    the fused files are those of one uninterrupted fusion."""
    from typer.testing import CliRunner

    from cli import app
    from tests.loop_helpers import run_killed

    args = ["fuse", "--data", str(world["data"]), "--pseudo", str(world["bike"]), "--no-progress"]
    out = world["out"]
    whole = tmp_path / "whole"
    assert CliRunner().invoke(app, [*args, "--out", str(whole)]).exit_code == 0
    for maps in (1, 2):  # the second run resumes at the map the first was writing
        run_killed(KILLED_WRITING, str(maps), *args, "--out", str(out))
    left = sorted(out.rglob("*.tmp"))
    assert [p.parent for p in left] == [out / "labels/train"]  # the second kill's only
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output  # the fusion is stopped: that, not the files
    assert "note: 1 temporary file (0.0 MB) left by runs killed while writing, e.g. " in text
    assert text.endswith(f"the next run of the command that writes {out} removes them")
    assert CliRunner().invoke(app, [*args, "--out", str(out)]).exit_code == 0
    assert sorted(out.rglob("*.tmp")) == [] and outputs(out) == outputs(whole)
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 0 and "temporary file" not in res.output


@pytest.mark.slow
@pytest.mark.parametrize("record", ["taxonomy.json", "dataset.yaml"])
def test_a_fusion_killed_before_its_dataset_yaml_is_said_unfinished(world, tmp_path, record):
    """``kill -9`` of a first ``engine fuse`` as it put ``taxonomy.json`` or ``dataset.yaml``
    in (crash-injection sweep, kill points 1 and 2): they came before ``fuse.json``, so the
    folder held no record; engine info said "no image split folders found" (exit 2), and the
    rerun kept the killed write's temporary file. ``fuse.json`` (running) goes first: engine
    info says the fusion did not finish and what finishes it (exit 1), and the rerun leaves
    the files of one uninterrupted fusion, no temporary file."""
    from typer.testing import CliRunner

    from cli import app
    from tests.loop_helpers import KILLED_AT, run_killed

    args = ["fuse", "--data", str(world["data"]), "--pseudo", str(world["bike"]), "--no-progress"]
    out = world["out"]
    whole = tmp_path / "whole"
    assert CliRunner().invoke(app, [*args, "--out", str(whole)]).exit_code == 0
    run_killed(KILLED_AT, record, *args, "--out", str(out))
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "its fusion did not finish (fuse.json: status running) and no process writes it " in text
    assert "run the same engine fuse command again to finish it (it resumes)" in text
    assert CliRunner().invoke(app, [*args, "--out", str(out)]).exit_code == 0
    assert sorted(out.rglob("*.tmp")) == [] and outputs(out) == outputs(whole)


def test_an_image_removed_from_the_dataset_since_is_left_out_and_its_fused_maps_removed(
    world, caplog
):
    """An image taken out of the dataset after it was labelled and fused (a bad photo): the
    rerun fuses the others, leaves its pseudo labels out and removes its fused maps, a warning
    naming it each. Before, the fusion stopped with "no image ... for 1 pseudo label: b (a
    pseudo run for another dataset?)", and the fused dataset kept b's maps, for which engine
    train refused it (no image for 1 label)."""
    for run in (world["bike"], world["car"]):
        doc = json.loads((run / "run.json").read_text())
        doc["data_resolved"] = str(world["data"])  # as engine label records it
        (run / "run.json").write_text(json.dumps(doc))
    fuse(cfg(world))
    assert (world["out"] / "labels/train/b.png").is_file()
    (world["data"] / "images/train/b.png").unlink()
    (world["data"] / "annotations/train/b.png").unlink()
    caplog.clear()
    result = fuse(cfg(world))
    assert result.images == 3 and result.skipped == 3
    record = json.loads((world["out"] / "fuse.json").read_text())
    assert record["splits"] == {"train": 1, "val": 2}  # each split's images: b left val only
    bike_labels = world["bike"] / "labels/train"
    assert (
        f"{bike_labels}: the pseudo labels of 1 image no longer in "
        f"{world['data'] / 'images/train'} (removed from the dataset since labelled) are left "
        "out: b"
    ) in caplog.text
    assert (
        f"{world['out']}: the label and source maps of 1 image no longer in the dataset "
        "(removed since fused) are removed: train/b"
    ) in caplog.text
    assert not (world["out"] / "labels/train/b.png").exists()
    assert not (world["out"] / "sources/train/b.png").exists()
    assert [s.stem for s in SegDataset(load_spec(world["out"]), "train")] == ["a"]
    assert (bike_labels / "b.png").is_file()  # the run's files are its own: not touched
    # a later call for another split keeps train in dataset.yaml: the manifest says b was
    # removed (before, its ok line with no files left made train "fused with other settings")
    caplog.clear()
    fuse(cfg(world, splits=("val",)))
    assert load_spec(world["out"]).splits == ("train", "val")
    assert "fused with other settings" not in caplog.text


def test_pseudo_labels_are_checked_without_counting_their_values(world, monkeypatch):
    """Each pseudo label's values (0, 1, 255 only) were checked by counting all 256 of them:
    0.06-0.12 s a 4K map, one per class and image. A table lookup answers; only a bad label is
    counted, for the values its error names. The fused files are the same bytes."""
    import engine.fusion.pseudo as pseudo

    fuse(cfg(world))
    want = outputs(world["out"])
    real = pseudo.byte_histogram
    counted = []
    monkeypatch.setattr(pseudo, "byte_histogram", lambda a: counted.append(1) or real(a))
    fuse(cfg(world, force=True))
    assert counted == [] and outputs(world["out"]) == want
    bad = bike_map(0)
    bad[0, 0] = 7
    write_label(world["bike"] / "labels" / "train" / "a.png", bad)
    failed = fuse(cfg(world, force=True)).failed
    assert [(split, stem) for split, stem, _ in failed] == [("train", "a")]
    assert re.search(r"a.png: pseudo label values must be 0, 1 or 255, found \[7\]", failed[0][2])
    assert counted


def test_cli_many_failed_images_show_the_first_then_where_the_rest_are(world, monkeypatch):
    """2,000 unreadable pseudo labels printed 2,000 lines; now the first LINES_SHOWN, then how
    many more and the file that lists every one (fuse.json)."""
    import engine.text

    for split in ("train", "val"):
        for stem in STEMS:
            (world["car"] / "labels" / split / f"{stem}.png").write_bytes(b"x")
    monkeypatch.setattr(engine.text, "LINES_SHOWN", 2)
    res = invoke(
        ["fuse", "--data", str(world["data"]), "--pseudo", str(world["car"])]
        + ["--out", str(world["out"]), "--no-progress"]
    )
    text = " ".join(res.output.split())
    assert res.exit_code == 1
    assert f"{2 * len(STEMS)} images failed (mend the files" in text
    assert text.count("cannot read label image") == 2
    assert f"... and {2 * len(STEMS) - 2} more (see {world['out'] / 'fuse.json'})" in text
    record = json.loads((world["out"] / "fuse.json").read_text())
    assert len(record["failed"]) == 2 * len(STEMS)  # where the rest are


def test_a_run_s_run_json_or_labels_given_as_pseudo_names_the_run_to_give(world):
    """``engine fuse --pseudo RUN/run.json`` (tab completion's file) said "pseudo-label run
    directory not found" of a file that is there; it names the run folder to give, as review
    and pick do. A path that does not exist is still "not found"."""
    bike = world["bike"]
    for given in (bike / "run.json", bike / "labels"):
        with pytest.raises(ValueError) as e:
            fuse(cfg(world, pseudo=(given, world["car"])))
        assert str(e.value).startswith(f"{given}: not a label run's folder; it is a ")
        assert str(e.value).endswith(f"in {bike}, a label run (engine label): give {bike}")
    with pytest.raises(FileNotFoundError, match="pseudo-label run directory not found"):
        fuse(cfg(world, pseudo=(bike.parent / "nope", world["car"])))
    # the dataset itself, or a fused dataset, given as a run: said what it is
    # (before: "DATA/run.json: not found; is DATA a label run directory")
    with pytest.raises(ValueError) as e:
        fuse(cfg(world, pseudo=(world["data"], world["car"])))
    assert str(e.value) == f"{world['data']}: not a label run's folder; it is a dataset's root"
    assert not world["out"].exists()


def test_an_images_inputs_hold_the_instances_files_with_coverage_on_only(world):
    """With ``--min-coverage`` the instances files decide what is kept: an edited one is a
    changed input (the image fuses again); without it they are read by no one."""
    from engine.fusion.run import input_paths

    for cov in (None, 0.4):
        plan = plan_fusion(cfg(world, pseudo=(world["bike"],), min_coverage=cov))
        job, run = plan.jobs[0], plan.runs[0]
        assert job.precise_path == world["data"] / "annotations" / job.split / f"{job.stem}.png"
        own = [run.label_path(job.split, job.stem), run.confidence_path(job.split, job.stem)]
        extra = [] if cov is None else [run.instances_path(job.split, job.stem)]
        assert input_paths(plan, job) == [job.precise_path, *own, *extra]


def test_earlier_splits_keep_a_split_only_when_every_image_is_ok_with_these_settings(
    tmp_path: Path, caplog
):
    """One failed image (or one fused with other settings) leaves its whole split out of
    dataset.yaml: a split of two images, one ok, was kept when any ok image sufficed."""
    from types import SimpleNamespace

    from engine.fusion.run import earlier_splits, output_paths

    latest = {
        ("val", "a"): {"status": "ok", "config_hash": "h"},
        ("val", "b"): {"status": "failed", "config_hash": "h"},
        ("test", "c"): {"status": "ok", "config_hash": "h"},
        ("test", "d"): {"status": "ok", "config_hash": "h"},
        ("extra", "e"): {"status": "ok", "config_hash": "h"},
        ("extra", "f"): {"status": "ok", "config_hash": "other"},
    }
    for split, stem in latest:
        for p in output_paths(tmp_path, split, stem):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"")
    plan = SimpleNamespace(splits=("train",), same_settings=lambda r: r["config_hash"] == "h")
    with caplog.at_level("WARNING", logger="engine.fusion.run"):
        assert earlier_splits(latest, plan, tmp_path) == ["test"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path}: split {s!r} was fused with other settings (or has failed or missing images) "
        f"and is left out of dataset.yaml; fuse it again with these settings and --split {s}"
        for s in ("val", "extra")
    ]


def test_corrections_rejected_are_said_once_a_class_for_all_its_subsets(caplog):
    """Two subsets correcting Bicycle: one warning, naming the first, with the summed count."""
    from types import SimpleNamespace

    from engine.fusion.rules import ClassStats
    from engine.fusion.run import warn_corrections_rejected

    plan = SimpleNamespace(
        corrections=[
            SimpleNamespace(class_name="Bicycle", path=Path("subsets/a")),
            SimpleNamespace(class_name="Bicycle", path=Path("subsets/b")),
        ],
        settings=lambda: {"parents": {"Bicycle": ["Others", "Ground"]}},
    )
    with caplog.at_level("WARNING", logger="engine.fusion.run"):
        warn_corrections_rejected({"Bicycle": ClassStats(corrected_rejected=1234)}, plan)
    assert [r.getMessage() for r in caplog.records] == [
        f"{Path('subsets/a')}: 1,234 pixels its masks mark Bicycle lie on precise classes that "
        "are not its parents (Others, Ground) and keep their precise labels (the parent "
        "constraint); to let the corrections win there: --no-parent-constraint (or --parent "
        "with those classes)"
    ]


def test_a_release_layouts_images_compare_by_each_splits_own_folder(tmp_path: Path):
    """``_images`` of a dataset whose splits have their own image folders (images_pad/<split>):
    the template and each split's folder, resolved under the root."""
    from engine.datasets import DatasetSpec
    from engine.fusion.run import _images

    root = tmp_path / "MaSS13K"
    spec = DatasetSpec(root, split_images=(("train", "images_pad/train"), ("val", "pad/val")))
    assert _images(spec) == (
        (root / "images/{split}").resolve(),
        (("train", (root / "images_pad/train").resolve()), ("val", (root / "pad/val").resolve())),
    )


def test_an_images_inputs_with_coverage_on_name_each_runs_instances_file_of_that_image():
    """What ``input_stamp``/``input_content`` hash: with coverage on, the instances file of the
    image (``instances/<split>/<stem>.json``), so an edited one fuses the image again."""
    from types import SimpleNamespace

    from engine.fusion.pseudo import PseudoRun
    from engine.fusion.rules import FusionRules
    from engine.fusion.run import Job, input_paths

    run = PseudoRun(Path("runs/bike"), "Bicycle", "Others", None, None, None, "")
    job = Job("val", "a", Path("data/annotations/val/a.png"), Path("data/images/val/a.jpg"))
    job = replace(job, corrections=((7, Path("subsets/s/masks/a.png")),))
    plan = SimpleNamespace(runs=[run], rules=FusionRules(parents={7: (0,)}, min_coverage=0.5))
    assert input_paths(plan, job) == [
        Path("data/annotations/val/a.png"),
        Path("subsets/s/masks/a.png"),
        Path("runs/bike/labels/val/a.png"),
        Path("runs/bike/confidence/val/a.png"),
        Path("runs/bike/instances/val/a.json"),
    ]
    plan.rules = FusionRules(parents={7: (0,)})  # coverage off: no instances file read
    assert input_paths(plan, job)[-1] == Path("runs/bike/confidence/val/a.png")


def test_a_split_the_label_run_stopped_before_is_refused_not_left_out(world, tmp_path):
    """A label run killed after train, before val (every split to label: no --split) is
    refused by a fusion without --split, naming the split and the command that finishes it;
    before, val was left out without a word (a split it had begun was refused). A run told
    --split train (beside the killed one too), or a fusion given --split train, fuses train
    alone, as before."""
    from engine.fusion.testing import labeler_run_json

    doc = labeler_run_json(MASS13K.with_new_class("Bicycle"), "Bicycle", data=str(world["data"]))
    train = {"train": {"a": bike_map(0), "b": bike_map(1)}}
    killed = write_pseudo_run(tmp_path / "killed", "Bicycle", train, run_json=doc)
    with pytest.raises(ValueError) as e:
        fuse(cfg(world, pseudo=(killed,)))
    assert str(e.value) == (
        f"{killed}: no pseudo labels of split 'val', which it was to label ({killed}/run.json): "
        "not labelled yet: the labeling run stopped before them, or they were added to the "
        f"dataset since it ran; label them first: engine label --class Bicycle --out {killed} "
        f"--split val with the settings in {killed}/run.json, or fuse the others alone: "
        "--split train"
    )
    assert not world["out"].exists()
    fuse(cfg(world, pseudo=(killed,), splits=("train",)))
    assert load_spec(world["out"]).splits == ("train",)
    told = {**doc, "config": {**doc["config"], "splits": ["train"]}}
    only = write_pseudo_run(tmp_path / "only", "Bicycle", train, run_json=told)
    fuse(cfg(world, pseudo=(only,), force=True))
    assert load_spec(world["out"]).splits == ("train",)
    car_doc = labeler_run_json(MASS13K.with_new_class("Car"), "Car", data=str(world["data"]))
    car_doc["config"]["splits"] = ["train"]
    car_train = {"train": {k: car_map() for k in STEMS}}
    car = write_pseudo_run(tmp_path / "car", "Car", car_train, run_json=car_doc)
    fuse(cfg(world, pseudo=(killed, car), force=True))
    assert load_spec(world["out"]).splits == ("train",)


def test_a_fusion_killed_after_its_last_label_is_unfinished_for_info_and_train(world):
    """Killed after its last label, before fuse.json was rewritten: every label is there, the
    record says running, the lock is free. engine info said "No problems found." and "next:
    engine train", and train read it, though the labels may be part an earlier fusion's; now
    info says it is unfinished (exit 1) and train refuses it, as other stopped fusions; the
    same fuse finishes it at once (no image fused again)."""
    from typer.testing import CliRunner

    from annotations.subset import write_subset
    from cli import app
    from engine.compare import CompareConfig, compare
    from engine.datasets import check_fused_finished
    from engine.report import ReportConfig, build_report

    first = fuse(cfg(world))
    record = json.loads((world["out"] / "fuse.json").read_text())
    assert record["status"] == "complete"
    (world["out"] / "fuse.json").write_text(json.dumps({**record, "status": "running"}))
    res = CliRunner().invoke(app, ["info", str(world["out"]), "--no-progress"])
    text = " ".join(res.output.split())
    stopped = "its fusion did not finish (fuse.json: status running) and no process writes it now"
    assert res.exit_code == 1, res.output
    assert text.endswith(
        f"unfinished: {stopped} (stopped): run the same engine fuse command again to finish it "
        "(it resumes)"
    )
    assert "No problems found" not in text and "next: engine train" not in text
    with pytest.raises(ValueError) as e:
        load_spec(world["out"]).check_finished("engine train")
    assert str(e.value) == (
        f"{world['out']}: {stopped} (stopped); engine train would read a dataset fused part way: "
        "run the same engine fuse command again to finish it (it resumes), then run engine "
        "train again"
    )
    with pytest.raises(ValueError) as e:  # fused again: which fuse command is which
        load_spec(world["out"]).check_finished("engine fuse")
    assert str(e.value) == (
        f"{world['out']}: {stopped} (stopped); engine fuse would read a dataset fused part way: "
        "run the engine fuse command that wrote it again to finish it (it resumes), then run "
        "this one again"
    )
    # compare and report scored it (review E): refused as train refuses it, before any score
    subset = write_subset(world["data"].parent / "subset", "Bicycle", "val",
                          {k: np.zeros((4, 6), np.uint8) for k in STEMS}, dict.fromkeys(STEMS, "hand"))  # fmt: skip
    for command, call in (
        (
            "engine compare",
            lambda: compare(
                CompareConfig("Bicycle", subset.root, (("fused", world["out"]),), progress=False)
            ),
        ),  # fmt: skip
        (
            "engine report",
            lambda: build_report(
                ReportConfig(
                    str(subset.root),
                    str(world["data"].parent / "rep"),
                    fused=str(world["out"]),
                    chart=False,
                )
            ),
        ),  # fmt: skip
    ):
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == (
            f"{world['out']}: {stopped} (stopped); {command} would read a dataset fused part "
            f"way: run the same engine fuse command again to finish it (it resumes), then run "
            f"{command} again"
        )
    assert not (world["data"].parent / "rep").exists()
    again = fuse(cfg(world))
    assert (again.fused, again.skipped) == (0, first.images)
    assert json.loads((world["out"] / "fuse.json").read_text())["status"] == "complete"
    res = CliRunner().invoke(app, ["info", str(world["out"]), "--no-progress"])
    assert res.exit_code == 0 and "No problems found." in res.output, res.output
    load_spec(world["out"]).check_finished("engine train")
    check_fused_finished(world["out"], "engine compare")  # finished: no refusal


STOPPED_FUSION = (
    "its fusion did not finish (fuse.json: status running) and no process writes it now (stopped)"
)
FINISH_FUSION = "run the same engine fuse command again to finish it (it resumes)"


def _stopped_fusion(world) -> tuple[Path, Path]:
    """The world's fusion, killed after its last label (``fuse.json`` says running, no lock
    held), and an annotated subset of its val split (compare's and report's ground truth)."""
    from annotations.subset import write_subset

    fuse(cfg(world))
    record = json.loads((world["out"] / "fuse.json").read_text())
    (world["out"] / "fuse.json").write_text(json.dumps({**record, "status": "running"}))
    masks = {k: np.zeros((4, 6), np.uint8) for k in STEMS}
    subset = write_subset(world["data"].parent / "subset", "Bicycle", "val", masks,
                          dict.fromkeys(STEMS, "hand"))  # fmt: skip
    return world["out"], subset.root


def _refused_inside(fused: Path, readers: dict[str, tuple[str, str, list[str]]]) -> None:
    """Each ``engine COMMAND ARGS`` refuses ``FOLDER`` in one line naming the fused dataset it
    lies in (``fused``, reached ``VIA``), exit 2."""
    from typer.testing import CliRunner

    from cli import app

    for key, (folder, via, args) in readers.items():
        command = key.split()[0]
        res = CliRunner().invoke(app, [command, *args])
        assert res.exit_code == 2, (key, res.output)
        assert " ".join(res.output.split()) == (
            f"error: {folder}: it lies{via} in the fused dataset {fused}: {STOPPED_FUSION}; "
            f"engine {command} would read a dataset fused part way: {FINISH_FUSION}, then run "
            f"engine {command} again"
        ), key


def test_a_folder_inside_a_stopped_fusion_given_by_itself_is_refused(world):
    """A split's label folder of a fused dataset whose fusion did not finish, given by itself
    (evaluate --gt/--pred, compare --gt/--source, report --fused/--pred, predict --images,
    review --pred), is refused in one line naming the fused dataset and the fuse command that
    finishes it, writing nothing, as the dataset given as one is; before, the labels fused so
    far (part maybe an earlier fusion's) were scored (predicted on, drawn as predictions)
    without a word. engine review --gt refuses it
    as no ground truth first, as it did. Finished, it is read."""
    from typer.testing import CliRunner

    from cli import app

    fused, subset = _stopped_fusion(world)
    val, labels, precise = fused / "labels/val", fused / "labels", world["data"] / "annotations/val"
    tmp = world["data"].parent
    checkpoint = Path(__file__).resolve().parents[2] / "engine/assets/demo_tiny_mass7.pt"
    report = ["--subset", str(subset), "--out", str(tmp / "rep"), "--no-chart"]
    classes = ["--class", "Bicycle", "--taxonomy", str(fused / "taxonomy.json")]
    readers = {
        "evaluate --gt": (val, "", ["--gt", str(val), "--pred", str(precise)]),
        "evaluate --pred": (val, "", ["--gt", str(precise), "--pred", str(val)]),
        "compare --gt": (val, "", ["--gt", str(val), *classes, "--source", f"a={precise}"]),
        "compare --source": (val, "", ["--gt", str(subset), "--class", "Bicycle", "--source", f"a={val}"]),
        "report --fused": (labels, "", [*report, "--fused", str(labels)]),
        "report --pred": (val, "", [*report, "--pred", str(val)]),
        "predict --images": (val, "", ["--checkpoint", str(checkpoint), "--images", str(val), "--out", str(tmp / "pred")]),
        "review --pred": (val, "", [str(world["bike"]), "--data", str(world["data"]), "--pred", str(val), "--out", str(tmp / "rev")]),
    }  # fmt: skip
    _refused_inside(fused, readers)
    # review: a fused dataset's labels are no ground truth, finished or not: said so, not
    # "finish the fusion" (whose rerun was refused for that)
    review = [str(world["bike"]), "--data", str(world["data"]), "--gt", str(val), "--out", str(tmp / "rev")]  # fmt: skip
    res = CliRunner().invoke(app, ["review", *review])
    assert res.exit_code == 2 and " ".join(res.output.split()).startswith(
        f"error: {val}: it is a folder inside {fused}, a fused dataset (engine fuse), not "
        "annotated ground truth; "
    ), res.output
    # annotate import --format png reads label maps too (before, the part fused was imported;
    # 7: Bicycle's id in the fused taxonomy)
    imports = ["annotate", "import", str(val), "--format", "png", "--class", "Bicycle", "--split",
               "val", "--png-value", "7", "--data", str(world["data"]), "--out", str(tmp / "sub"),
               "--no-progress"]  # fmt: skip
    res = CliRunner().invoke(app, imports)
    assert res.exit_code == 2 and " ".join(res.output.split()) == (
        f"error: {val}: it lies in the fused dataset {fused}: {STOPPED_FUSION}; engine annotate "
        f"import would read a dataset fused part way: {FINISH_FUSION}, then run engine annotate "
        "import again"
    ), res.output
    assert not any((tmp / name).exists() for name in ("rep", "rev", "pred", "sub"))
    (fused / "fuse.json").write_text(
        json.dumps({**json.loads((fused / "fuse.json").read_text()), "status": "complete"})
    )
    res = CliRunner().invoke(app, imports)  # finished: imported
    assert res.exit_code == 0 and (tmp / "sub/subset.json").is_file(), res.output
    for args in (["evaluate", "--gt", str(val), "--pred", str(precise)],
                 ["compare", "--gt", str(subset), "--class", "Bicycle", "--source", f"a={val}", "--no-progress"]):  # fmt: skip
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output


def test_a_folder_inside_an_unfinished_fusion_is_refused_through_a_link_dots_or_its_writer(
    world,
):
    """A split's label folder of a stopped fusion given through a symbolic link to it or with
    ``..`` in its path is refused as the plain path is, naming where the link leads; a fusion
    being written (its lock held) is refused naming its writer: wait for it. Before, all three
    were read without a word."""
    from engine.runlock import exclusive

    fused, _ = _stopped_fusion(world)
    real, val = Path(os.path.realpath(fused)), fused / "labels/val"
    gt, precise = world["data"].parent / "gt", world["data"] / "annotations/val"
    gt.symlink_to(val, target_is_directory=True)
    dotted, taxonomy = f"{val}/../val", ["--taxonomy", str(fused / "taxonomy.json")]
    readers = {
        "evaluate --gt": (gt, ", through symbolic links,", ["--gt", str(gt), "--pred", str(precise), *taxonomy]),
        "evaluate --pred": (dotted, "", ["--gt", str(precise), "--pred", dotted, *taxonomy]),
    }  # fmt: skip
    _refused_inside(real, readers)
    from engine.evaluate import EvaluateConfig, evaluate

    with exclusive(fused, "engine fuse"), pytest.raises(ValueError) as e:
        evaluate(EvaluateConfig(gt=val, pred=precise, progress=False))
    assert str(e.value).startswith(
        f"{val}: it lies in the fused dataset {fused}: its fusion did not finish (fuse.json: "
        "status running): engine fuse (pid "
    )
    assert str(e.value).endswith(
        "is writing it now; engine evaluate would read a dataset fused part way: wait for it to "
        "finish, then run engine evaluate again"
    )


def test_a_folder_of_a_finished_fusion_being_fused_again_is_refused_naming_its_writer(world):
    """A split's label folder of a fused dataset whose ``fuse.json`` says complete, while an
    ``engine fuse`` into it again holds its lock (planning, removing orphan labels, before it
    writes ``running``), given by itself as evaluate's ``--gt`` or through a symbolic link as
    ``--pred``, is refused naming the writer, as the dataset given as one is (its lock); before,
    both were scored without a word (exit 0): the folder check read ``fuse.json``'s status
    only, and the lock check of ``--pred`` asked the folders above the link, not above its
    target. Its writer gone, the folder is read."""
    from engine.evaluate import EvaluateConfig, evaluate
    from engine.runlock import exclusive

    fuse(cfg(world))
    fused, precise = world["out"], world["data"] / "annotations/val"
    val, link = fused / "labels/val", world["data"].parent / "pred"
    link.symlink_to(val, target_is_directory=True)
    writing = "is writing it now; engine evaluate would read a dataset fused part way: wait for"
    with exclusive(fused, "engine fuse"):
        for given, via, kw in ((val, "", {"gt": val, "pred": precise}),
                               (link, ", through symbolic links,", {"gt": precise, "pred": link})):  # fmt: skip
            with pytest.raises(ValueError) as e:
                evaluate(EvaluateConfig(**kw, progress=False))
            said = str(e.value)
            real = Path(os.path.realpath(fused))
            assert said.startswith(
                f"{given}: it lies{via} in the fused dataset {fused if not via else real}: "
                "engine fuse (pid "
            ), said
            assert said.endswith(f"{writing} it to finish, then run engine evaluate again"), said
    assert evaluate(EvaluateConfig(gt=val, pred=precise, progress=False)).stems == sorted(STEMS)


def test_info_on_a_folder_of_a_fused_dataset_names_it_and_its_state(world):
    """engine info F/labels/val (or F/sources/val) names the fused dataset it lies in and its
    state: finished (its fuse.json status), stopped (with the fuse command that finishes it)
    or written now by an engine fuse into it again; before, "a folder inside F, a fused
    dataset (engine fuse)" whatever the fusion's state, its labels maybe part fused."""
    from typer.testing import CliRunner

    from cli import app
    from engine.runlock import exclusive

    fused, _ = _stopped_fusion(world)
    val = fused / "labels/val"

    def info(folder: Path) -> str:
        res = CliRunner().invoke(app, ["info", str(folder), "--no-progress"])
        assert res.exit_code == 2, res.output
        return " ".join(res.output.split())

    assert info(val).endswith(
        f"; it lies in the fused dataset {fused}: {STOPPED_FUSION}: {FINISH_FUSION}"
    )
    record = json.loads((fused / "fuse.json").read_text())
    (fused / "fuse.json").write_text(json.dumps({**record, "status": "complete"}))
    for folder in (val, fused / "sources/val"):
        assert info(folder).endswith(
            f"; it lies in the fused dataset {fused}, finished (fuse.json: status complete): is "
            f"the dataset root {fused}?"
        )
    with exclusive(fused, "engine fuse"):
        said = info(val)
    assert re.search(
        rf"; it lies in the fused dataset {re.escape(str(fused))}: engine fuse \(pid \d+ on "
        r"[^)]*\) is writing it now: wait for it to finish$",
        said,
    ), said


def test_info_on_a_folder_of_a_fused_dataset_given_relative_names_its_state(world, monkeypatch):
    """As given absolute: ``engine info fused/labels/val`` from the dataset's parent folder was
    told "a folder inside fused, a fused dataset (engine fuse)" without its state, the fused
    dataset taken for an engine output the folder lay in."""
    from typer.testing import CliRunner

    from cli import app

    fused, _ = _stopped_fusion(world)
    monkeypatch.chdir(fused.parent)
    res = CliRunner().invoke(app, ["info", f"{fused.name}/labels/val", "--no-progress"])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()).endswith(
        f"; it lies in the fused dataset {fused}: {STOPPED_FUSION}: {FINISH_FUSION}"
    )


def test_a_split_the_labeler_failed_on_throughout_is_refused_with_its_failures(world, tmp_path):
    """A split without pseudo labels because the labeler failed on every image of it (the
    manifest says so; labels/val is made with the first label file) is refused with those
    failures, as a split it had begun is (:func:`_check_stems`); before, it was blamed on an
    engine label stopped before it ("finish it" was no help: the run had ended). A split added
    to the dataset after the run finished is told so too (the test above)."""
    from engine.fusion.testing import labeler_run_json

    doc = labeler_run_json(MASS13K.with_new_class("Bicycle"), "Bicycle", data=str(world["data"]))
    train = {"train": {"a": bike_map(0), "b": bike_map(1)}}
    run = write_pseudo_run(tmp_path / "run", "Bicycle", train, run_json=doc)
    failures = [
        {"split": "val", "stem": stem, "status": "failed", "error": f"ValueError: {stem}.jpg: bad"}
        for stem in STEMS
    ]
    (run / "manifest.jsonl").write_text("".join(json.dumps(f) + "\n" for f in failures))
    with pytest.raises(ValueError) as e:
        fuse(cfg(world, pseudo=(run,)))
    assert str(e.value) == (
        f"{run}: no pseudo labels of split 'val', which it was to label ({run}/run.json): "
        "the labeling run failed on 2 of them, a: ValueError: a.jpg: bad; mend them and run "
        "engine label again, or take them out of the dataset, or fuse the others alone: "
        "--split train"
    )
    assert not world["out"].exists()
