"""Outputs do not depend on the order a file system lists a folder in.

ext4 lists a folder in hash order, XFS, NFS and overlayfs in others, tmpfs newest first: every
place that lists a folder sorts what it found, so the same dataset gives the same label run,
fused dataset, export and annotated subset wherever it is stored. Here the listing is turned
round (``os.listdir``, ``os.scandir``: ``Path.iterdir``, ``Path.glob`` and ``os.walk`` read
through them) and every file written must come out as it does with the listing as it is."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotations.labelrun import LabelRun
from cli import app
from engine.annotate import ExportConfig, ImportConfig, export_annotations, import_annotations
from tests.loop_helpers import make_dataset, make_run, turned_round

# what differs between two calls whatever the order: the time, how long it took, the machine,
# and the stamps of records holding the time (a label run's run.json, in a fused image's inputs)
_ABOUT_THE_CALL = re.compile(r"time|seconds|timings|created|environment|run_json_sha256|inputs")


def _without_the_call(value):
    if isinstance(value, dict):
        return {k: _without_the_call(v) for k, v in value.items() if not _ABOUT_THE_CALL.search(k)}
    if isinstance(value, list):
        return [_without_the_call(v) for v in value]
    return value


def _written(root: Path) -> dict[str, object]:
    """Every file under ``root`` (named ROOT in it): JSON as read back without what tells calls
    apart, the per-image logs (appended to by writer threads as images finish) as sorted lines,
    other files by their bytes."""
    found: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        name = p.relative_to(root).as_posix()
        text = p.read_bytes()
        if p.suffix == ".json":
            found[name] = _without_the_call(json.loads(text.decode().replace(str(root), "ROOT")))
        elif p.suffix == ".jsonl":
            lines = [json.loads(line) for line in text.decode().splitlines()]
            found[name] = sorted(json.dumps(_without_the_call(line)) for line in lines)
        else:  # export/images.txt names the images by their paths
            found[name] = text.replace(str(root).encode(), b"ROOT")
    return found


def _loop(root: Path) -> dict[str, object]:
    """synth -> label (simulated) Bicycle and Car -> fuse -> export -> import, under ``root``."""
    runner = CliRunner()
    data = str(root / "data")
    calls = [
        ["synth", "--out", data, "--train", "3", "--val", "0", "--test", "4", "--size", "96x64"],
        *(
            [
                "label",
                "--class",
                c,
                "--data",
                data,
                "--out",
                str(root / c),
                "--backend",
                "simulated",
            ]
            for c in ("Bicycle", "Car")
        ),
        [
            "fuse",
            "--data",
            data,
            "--pseudo",
            str(root / "Bicycle"),
            "--pseudo",
            str(root / "Car"),
            "--out",
            str(root / "fused"),
        ],  # fmt: skip
        [
            "annotate",
            "export",
            str(root / "Bicycle"),
            "--out",
            str(root / "export"),
            "--format",
            "coco,labelme",
        ],  # fmt: skip
        [
            "annotate",
            "import",
            str(root / "export" / "coco.json"),
            "--class",
            "Bicycle",
            "--data",
            data,
            "--out",
            str(root / "subset"),
        ],  # fmt: skip
    ]
    for args in calls:
        res = runner.invoke(app, [*args, "--no-progress"])
        assert res.exit_code == 0, (args, res.output)
    return _written(root)


def test_a_label_run_lists_and_exports_its_images_by_name(tmp_path, monkeypatch):
    """A label run's splits come train, val, test, then the others by name, and its images in
    the order of their names, whatever the listing's, and so do the images of its export
    (COCO, LabelMe): before a test held it, returning them as a set of names put them in an
    order that changes from one call to the next (the strings' hashes), and every test still
    passed."""
    stems = [f"img{i:03d}" for i in range(8)]
    make_dataset(tmp_path / "data", n=8, size=(16, 16))
    turned_round(monkeypatch)
    run = tmp_path / "run"
    for split in ("b", "extra", "val", "a", "train"):  # labels/SPLIT, instances/SPLIT each
        make_run(run, tmp_path / "data", {"img000": []}, (16, 16), split)
    make_run(run, tmp_path / "data", {s: [] for s in reversed(stems)}, (16, 16))  # test
    assert LabelRun.open(run).splits() == ["train", "val", "test", "a", "b", "extra"]
    assert LabelRun.open(run).stems("test") == stems
    export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "out"), progress=False))
    coco = json.loads((tmp_path / "out" / "coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == [f"{s}.jpg" for s in stems]
    assert [i["id"] for i in coco["images"]] == list(range(1, 9))


def test_an_import_reads_a_folder_s_files_by_name(tmp_path, monkeypatch):
    """The files of a folder of annotations are read in the order of their names, whatever the
    listing's: of two LabelMe files of one image, the second by name is the one refused, the
    first named beside it, on every file system."""
    make_dataset(tmp_path / "data", n=1, size=(16, 16))
    shape = {"label": "Bicycle", "points": [[1, 1], [8, 1], [8, 8]], "shape_type": "polygon"}
    doc = {"shapes": [shape], "imagePath": "img000.jpg", "imageHeight": 16, "imageWidth": 16}
    folder = tmp_path / "labelme"
    folder.mkdir()
    for name in ("a.json", "b.json"):
        (folder / name).write_text(json.dumps(doc))
    turned_round(monkeypatch)
    cfg = ImportConfig("labelme", [str(folder)], "Bicycle", str(tmp_path / "data"),
                       str(tmp_path / "subset"), progress=False)  # fmt: skip
    with pytest.raises(ValueError) as e:
        import_annotations(cfg)
    assert str(e.value) == (
        f"{folder / 'b.json'}: image 'img000' is annotated twice (also in {folder / 'a.json'})"
    )


@pytest.mark.slow
def test_a_folder_listed_in_another_order_gives_the_same_outputs(tmp_path, monkeypatch):
    """The whole loop with every folder listed turned round writes what it writes with the
    listing as it is, byte for byte (the label maps, fused labels, the export's COCO and LabelMe
    files, the subset's masks) and record for record; the export lists its images by name."""
    as_listed = _loop(tmp_path / "a")
    turned_round(monkeypatch)
    assert os.listdir(tmp_path / "a" / "data" / "images" / "test")[0] == "synth_test_0003.jpg"
    turned = _loop(tmp_path / "b")
    assert list(turned) == list(as_listed)
    assert [k for k in as_listed if turned[k] != as_listed[k]] == []
    coco = as_listed["export/coco.json"]
    assert [i["file_name"] for i in coco["images"]] == [f"synth_test_000{i}.jpg" for i in range(4)]
