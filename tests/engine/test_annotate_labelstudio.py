"""Correcting pseudo labels in Label Studio: export tasks with brush pre-annotations and their
labeling config, import the project's JSON export back into a subset."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from urllib.parse import quote

import numpy as np
import pytest
from typer.testing import CliRunner

from annotations.labelmap import read_label
from annotations.labelstudio import brush_to_mask, mask_to_brush
from annotations.subset import write_subset
from cli import app
from engine.annotate import ExportConfig, ImportConfig, export_annotations, import_annotations
from tests.loop_helpers import disk, make_dataset, make_run

H, W = 48, 64


@pytest.fixture()
def world(tmp_path):
    data = tmp_path / "data"
    make_dataset(data, "test", n=3, size=(H, W))
    wheel = disk(H, W, 24, 16, 12) & ~disk(H, W, 24, 16, 5)  # a ring: brushes keep its hole
    per_image = {"img000": [wheel, disk(H, W, 20, 48, 8)], "img001": [disk(H, W, 40, 40, 1)]}
    per_image["img002"] = []
    run = tmp_path / "run"
    make_run(run, data, per_image, (H, W), confidences={"img000": 90, "img001": 250})
    truth = {s: np.any(ms, axis=0) if ms else np.zeros((H, W), bool) for s, ms in per_image.items()}
    return data, run, truth


def _annotated(tasks: list[dict]) -> list[dict]:
    """The project's JSON export after each pre-annotation was submitted as it was (Label
    Studio copies a prediction's result into the annotation the annotator submits)."""
    tasks = copy.deepcopy(tasks)
    for k, task in enumerate(tasks, start=1):
        task["id"] = k
        result = copy.deepcopy(task["predictions"][0]["result"])
        task["annotations"] = [{"id": 100 + k, "result": result, "was_cancelled": False}]
    return tasks


def test_export_writes_tasks_whose_brushes_are_the_instances_and_fit_the_config(tmp_path, world):
    data, run, _ = world
    res = export_annotations(
        ExportConfig(run=str(run), out=str(tmp_path / "e"), formats=("labelstudio",))
    )
    assert res.coco is None and res.labelme == []
    tasks = json.loads(res.labelstudio.read_text())
    image = (data / "images" / "test" / "img000.jpg").resolve()
    # local-files storage with document root /: the image's absolute path after ?d=
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=" + quote(str(image).lstrip("/"))
    assert tasks[0]["data"]["mass_engine_export"]["run"] == str(run)
    regions = tasks[0]["predictions"][0]["result"]
    assert [r["value"]["brushlabels"] for r in regions] == [["Bicycle"], ["Bicycle"]]
    wheel = disk(H, W, 24, 16, 12) & ~disk(H, W, 24, 16, 5)
    assert np.array_equal(brush_to_mask(regions[0]["value"]["rle"], H, W), wheel)
    assert tasks[2]["predictions"][0]["result"] == []  # an image without instances
    # every region names a control of the labeling config, and a label of that control
    config = ET.fromstring((res.labelstudio.parent / "config.xml").read_text())
    controls = {c.get("name"): c for c in config if c.get("toName") == "image"}
    assert config.find("Image").get("value") == "$image"
    for r in regions:
        control = controls[r["from_name"]]
        assert control.tag.lower() == r["type"]
        assert r["value"]["brushlabels"][0] in [lab.get("value") for lab in control]
    assert [lab.get("value") for lab in controls["brush"]] == ["Bicycle", "unannotated"]


def test_image_urls_take_a_prefix(tmp_path, world):
    _, run, _ = world
    prefix = "/data/local-files/?d=mass/images/test/"
    res = export_annotations(
        ExportConfig(
            run=str(run), out=str(tmp_path / "e"), formats=("labelstudio",), image_url=prefix
        )
    )
    urls = [t["data"]["image"] for t in json.loads(res.labelstudio.read_text())]
    assert urls == [f"{prefix}img00{i}.jpg" for i in range(3)]
    again = export_annotations(  # the folder's URL without its "/": the same URLs
        ExportConfig(
            run=str(run), out=str(tmp_path / "e2"), formats=("labelstudio",), image_url=prefix[:-1]
        )
    )
    assert [t["data"]["image"] for t in json.loads(again.labelstudio.read_text())] == urls
    with pytest.raises(ValueError, match="--image-url is where Label Studio loads images"):
        export_annotations(ExportConfig(run=str(run), out=str(tmp_path / "x"), image_url=prefix))


def test_a_project_export_imports_pixel_exact_and_unchanged_is_warned(tmp_path, world, caplog):
    data, run, truth = world
    res = export_annotations(
        ExportConfig(run=str(run), out=str(tmp_path / "e"), formats=("labelstudio",))
    )
    project = tmp_path / "project-1-at-2026-12-05.json"
    project.write_text(json.dumps(_annotated(json.loads(res.labelstudio.read_text()))))

    def imported(out):
        caplog.clear()
        with caplog.at_level("WARNING", logger="engine.annotate"):  # told by the file: auto
            sub = import_annotations(
                ImportConfig("auto", [str(project)], "Bicycle", str(data), str(tmp_path / out))
            )
        return sub, [r.getMessage() for r in caplog.records]

    sub, warnings = imported("s1")
    assert sub.info["import_format"] == "labelstudio"
    for stem, m in truth.items():  # brushes are exact: the wheel's hole comes back
        assert np.array_equal(sub.mask(stem), m.astype(np.uint8)), stem
    assert sub.info["unchanged_exports"] == [str(run)]
    assert warnings[0].startswith(f"{project}: the masks imported from it equal the pseudo")
    tasks = json.loads(project.read_text())
    del tasks[0]["annotations"][0]["result"][1]  # the blob was a false positive
    project.write_text(json.dumps(tasks))
    sub, warnings = imported("s2")
    assert warnings == [] and "unchanged_exports" not in sub.info
    assert np.array_equal(sub.mask("img000"), (disk(H, W, 24, 16, 12) & ~disk(H, W, 24, 16, 5)))


def test_a_subset_exports_to_label_studio_and_imports_back_the_same(tmp_path, world):
    data, _, truth = world
    masks = {stem: m.astype(np.uint8) for stem, m in truth.items()}
    masks["img001"][0:6, 50:60] = 255  # an undecided region: an `unannotated` brush
    extra = {"data": str(data), "data_resolved": str(data.resolve())}
    sub = write_subset(tmp_path / "sub", "Bicycle", "test", masks, {}, extra)
    out = tmp_path / "again"
    args = ["annotate", "export", str(sub.root), "--out", str(out), "--format", "labelstudio"]
    res = CliRunner().invoke(
        app, [*args, "--image-url", "http://localhost:8081/test/"], env={"COLUMNS": "300"}
    )
    assert res.exit_code == 0, res.output
    assert f"Label Studio: {out / 'labelstudio' / 'tasks.json'}" in " ".join(res.output.split())
    tasks = json.loads((out / "labelstudio" / "tasks.json").read_text())
    assert tasks[1]["data"]["image"] == "http://localhost:8081/test/img001.jpg"
    labels = [r["value"]["brushlabels"] for r in tasks[1]["predictions"][0]["result"]]
    assert labels == [["Bicycle"], ["unannotated"]]
    project = tmp_path / "project.json"
    project.write_text(json.dumps(_annotated(tasks)))
    back = import_annotations(
        ImportConfig("labelstudio", [str(project)], "Bicycle", str(data), str(tmp_path / "b"))
    )
    for stem, m in masks.items():
        assert np.array_equal(back.mask(stem), m), stem


def test_engine_info_describes_label_studio_tasks(tmp_path, world):
    data, run, _ = world
    out = tmp_path / "e"
    export_annotations(ExportConfig(run=str(run), out=str(out), formats=("coco", "labelstudio")))

    def info(path):
        res = CliRunner().invoke(app, ["info", str(path)], env={"COLUMNS": "300"})
        assert res.exit_code == 0, res.output
        return " ".join(res.output.split())

    text = info(out)  # the export folder: its COCO file and its tasks
    assert f"COCO file {out / 'coco.json'}" in text
    assert f"Label Studio tasks {out / 'labelstudio' / 'tasks.json'}" in text
    assert "not annotated yet │ 3 tasks without a submitted annotation" in text
    tasks = _annotated(json.loads((out / "labelstudio" / "tasks.json").read_text()))
    tasks[2]["annotations"] = []
    for task in tasks:
        del task["data"]["mass_engine_export"]  # as if imported from elsewhere
    tasks[0]["annotations"][0]["result"].append(
        {
            "type": "polygonlabels",
            "value": {"points": [[0, 0], [9, 0], [9, 9]], "polygonlabels": ["Car"]},
            "original_width": W,
            "original_height": H,
        }  # fmt: skip
    )
    (tmp_path / "project.json").write_text(json.dumps(tasks))
    text = info(tmp_path / "project.json")
    assert "images │ 3 (1 without any annotation)" in text
    assert "not annotated yet │ 1 task without" in text
    assert "Bicycle │ 3 regions" in text and "Car │ 1 region" in text
    assert "shapes │ brush 3, polygon 1" in text
    assert "exported from │ not recorded (an annotation tool's file)" in text
    assert "--format labelstudio --class Bicycle --data DATASET" in text
    assert "--format labelstudio --class Car --data DATASET" in text


def test_a_brush_region_drawn_in_label_studio_is_read(tmp_path, world):
    """What an annotator paints (Label Studio's exporter: grey RGBA, alpha = coverage, with an
    antialiased edge) is the class where alpha is non-zero."""
    data, _, _ = world
    stroke = disk(H, W, 10, 10, 6)
    alpha = np.where(stroke, 255, 0).astype(np.uint8)
    alpha[disk(H, W, 10, 10, 7) & ~stroke] = 40  # the stroke's soft edge
    flat = np.repeat(alpha.ravel(), 4)
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    from annotations.labelstudio import encode_rle

    rle = encode_rle(flat[starts], np.diff(np.r_[starts, flat.size]))
    assert rle != mask_to_brush(alpha > 0)  # not how we write it, but the same pixels
    task = {
        "id": 1,
        "data": {"image": "/data/upload/1/8f3a2b1c-img002.jpg"},
        "annotations": [
            {
                "id": 1,
                "result": [
                    {
                        "type": "brushlabels",
                        "original_width": W,
                        "original_height": H,
                        "value": {"format": "rle", "rle": rle, "brushlabels": ["bicycle"]},
                    }
                ],
            }
        ],
    }
    (tmp_path / "p.json").write_text(json.dumps([task]))
    sub = import_annotations(
        ImportConfig(
            "labelstudio", [str(tmp_path / "p.json")], "Bicycle", str(data), str(tmp_path / "s")
        )
    )
    assert sub.stems == ("img002",)
    assert np.array_equal(sub.mask("img002"), disk(H, W, 10, 10, 7).astype(np.uint8))


def test_telling_the_format_parses_a_file_once(tmp_path, world, monkeypatch):
    """A Label Studio export with brush masks can be hundreds of megabytes: the JSON read to
    tell its format is the one imported."""
    import annotations.fileio as fileio

    data, run, _ = world
    res = export_annotations(
        ExportConfig(run=str(run), out=str(tmp_path / "e"), formats=("coco", "labelstudio"))
    )
    project = tmp_path / "project.json"
    project.write_text(json.dumps(_annotated(json.loads(res.labelstudio.read_text()))))
    parsed = []
    parse = fileio.reads.parse_json
    monkeypatch.setattr(
        fileio.reads, "parse_json", lambda data, path: parsed.append(path) or parse(data, path)
    )
    for k, source in enumerate((project, res.coco)):
        parsed.clear()
        import_annotations(
            ImportConfig("auto", [str(source)], "Bicycle", str(data), str(tmp_path / f"s{k}"))
        )
        assert parsed == [source]


def test_engine_info_describes_a_json_min_export(tmp_path):
    """JSON-MIN rows are described as the tasks they flatten (they have no 'data' key)."""
    rows = [
        {"image": "/data/local-files/?d=x/img000.jpg", "id": 1, "annotation_id": 4,
         "polygon": [{"points": [[0, 0], [9, 0], [9, 9]], "polygonlabels": ["Bicycle"],
                      "original_width": W, "original_height": H}]},
        {"image": "/data/local-files/?d=x/img001.jpg", "id": 2, "annotation_id": None},
    ]  # fmt: skip
    (tmp_path / "min.json").write_text(json.dumps(rows))
    res = CliRunner().invoke(app, ["info", str(tmp_path / "min.json")], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "images │ 2 (1 without any annotation)" in text and "Bicycle │ 1 region" in text
    assert "not annotated yet │ 1 task without a submitted annotation" in text


def test_an_image_name_that_is_not_utf8_exports_and_imports_back(tmp_path):
    """A dataset copied from a latin-1 system holds ``caf\\xe9.jpg``. Percent-encoding its URL
    raised UnicodeEncodeError ("surrogates not allowed"): ``annotate export --format
    labelstudio`` stopped with exit code 2, no tasks. Its URL holds the file's bytes
    (``caf%E9.jpg``), which import reads back as that file (before, as ``caf\\ufffd``: "image
    not in split"), with --image-url and without."""
    import os

    data, run, stem = tmp_path / "data", tmp_path / "run", os.fsdecode(b"caf\xe9")
    make_dataset(data, "test", n=1, size=(H, W))
    for folder, ext in (("images", ".jpg"), ("annotations", ".png")):
        os.rename(data / folder / "test" / f"img000{ext}", data / folder / "test" / f"{stem}{ext}")
    mask = disk(H, W, 20, 30, 9)
    make_run(run, data, {stem: [mask]}, (H, W))
    for k, prefix in enumerate((None, "/data/local-files/?d=mass/images/test/")):
        res = export_annotations(
            ExportConfig(run=str(run), out=str(tmp_path / f"e{k}"), formats=("labelstudio",),
                         image_url=prefix)
        )  # fmt: skip
        tasks = json.loads(res.labelstudio.read_text())
        assert tasks[0]["data"]["image"].endswith("/test/caf%E9.jpg")
        project = tmp_path / f"project{k}.json"
        project.write_text(json.dumps(_annotated(tasks)))
        sub = import_annotations(
            ImportConfig(
                "labelstudio", [str(project)], "Bicycle", str(data), str(tmp_path / f"s{k}")
            )
        )
        assert np.array_equal(sub.mask(stem), mask.astype(np.uint8))


def test_a_4k_like_round_trip_holds_no_full_size_mask_per_instance(tmp_path):
    """Export reads each instance inside its box and Label Studio's import paints each brush
    from its runs: before, export decoded and stacked every instance at full size (70 at
    3840x2160: 580 MB) and import decoded 4 H W values per brush and kept each brush's
    full-size mask, so both grew with the instances times the image's size."""
    import tracemalloc

    h, w = 1500, 2000
    data = tmp_path / "data"
    make_dataset(data, "test", n=1, size=(h, w))
    masks = []
    for i in range(30):  # small rings and squares spread over the image, frame ones too
        m = np.zeros((h, w), bool)
        y, x = 40 + 45 * i, 60 * i
        m[y : y + 30, x : x + 30] = True
        m[y + 10 : y + 20, x + 10 : x + 20] = i % 2 == 1  # a hole in every other one
        masks.append(m)
    make_run(tmp_path / "run", data, {"img000": masks}, (h, w))
    del masks
    full = h * w  # bytes of one full-size bool mask
    formats = ("coco", "labelme", "labelstudio")
    cfg = ExportConfig(run=str(tmp_path / "run"), out=str(tmp_path / "e"), formats=formats)
    tracemalloc.start()
    try:
        res = export_annotations(cfg)
        export_peak = tracemalloc.get_traced_memory()[1]
        path = tmp_path / "project.json"
        path.write_text(json.dumps(_annotated(json.loads(res.labelstudio.read_text()))))
        tracemalloc.reset_peak()
        sub = import_annotations(
            ImportConfig("labelstudio", [str(path)], "Bicycle", str(data), str(tmp_path / "s"))
        )
        import_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert export_peak < 4 * full, export_peak / full  # 30 instances: was 30+ masks' worth
    assert import_peak < 8 * full, import_peak / full
    pseudo = read_label(tmp_path / "run" / "labels" / "test" / "img000.png")
    assert np.array_equal(sub.mask("img000"), pseudo)  # the brushes came back as they were
