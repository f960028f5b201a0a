"""Malformed annotation-tool files, reached as a user reaches them (the error catalogue of the
forty-eighth round): a real ``engine annotate export`` of a simulated label run, edited the way
a person or another tool version breaks it, then ``engine annotate import``. Each error is one
line starting ``error:`` that names the file (and the image, annotation or shape) and what is
wrong, exit code 2, and the subset imported before into the same folder is left as it was.
Only messages no other test pinned are here."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-image test split, a simulated label run, its COCO/LabelMe/Label Studio export and a
    subset imported from the export (the one every failed import must leave alone)."""
    root = tmp_path_factory.mktemp("import_errors")
    for args in (
        ["synth", "--out", f"{root}/ds", "--train", "1", "--val", "1", "--test", "3",
         "--size", "128x96"],
        ["label", "--data", f"{root}/ds", "--class", "bicycle", "--backend", "simulated",
         "--split", "test", "--out", f"{root}/run"],
        ["annotate", "export", f"{root}/run", "--split", "test", "--format",
         "coco,labelme,labelstudio", "--out", f"{root}/exp"],
        ["annotate", "import", f"{root}/exp/coco.json", "--class", "bicycle", "--data",
         f"{root}/ds", "--out", f"{root}/subset"],
    ):  # fmt: skip
        res = runner.invoke(app, [*args, "--no-progress"])
        assert res.exit_code == 0, res.output
    return root


def _tree(folder: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != ".lock":
            digest.update(f.relative_to(folder).as_posix().encode() + f.read_bytes())
    return digest.hexdigest()


def _coco(edit: Callable[[dict], object]) -> Callable[[Path, Path], Path]:
    def make(world: Path, case: Path) -> Path:
        doc = json.loads((world / "exp/coco.json").read_text())
        edit(doc)
        (case / "coco.json").write_text(json.dumps(doc))
        return case / "coco.json"

    return make


def _labelme(edit: Callable[[dict], object]) -> Callable[[Path, Path], Path]:
    def make(world: Path, case: Path) -> Path:
        shutil.copytree(world / "exp/labelme", case / "labelme")
        path = case / "labelme/synth_test_0001.json"
        doc = json.loads(path.read_text())
        edit(doc["shapes"][0])
        path.write_text(json.dumps(doc))
        return case / "labelme"

    return make


def _labelstudio(edit: Callable[[list], object]) -> Callable[[Path, Path], Path]:
    """The exported tasks with their pre-annotations submitted as annotations, then edited."""

    def make(world: Path, case: Path) -> Path:
        tasks = json.loads((world / "exp/labelstudio/tasks.json").read_text())
        for k, task in enumerate(tasks):
            task["annotations"] = [{"id": 100 + k, "result": task.pop("predictions")[0]["result"]}]
        edit(tasks)
        (case / "tasks.json").write_text(json.dumps(tasks))
        return case / "tasks.json"

    return make


def _file(name: str, data: bytes | str) -> Callable[[Path, Path], Path]:
    def make(world: Path, case: Path) -> Path:
        (case / Path(name).parent).mkdir(parents=True, exist_ok=True)
        path = case / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
        return path.parent if name.startswith("masks/") else case / name.split("/")[0]

    return make


def _first_ann(doc: dict) -> dict:
    return doc["annotations"][0]


def _unannotated_box(doc: dict, bbox: object) -> None:
    doc["categories"].append({"id": 2, "name": "unannotated"})
    doc["annotations"].append({"id": 99, "image_id": 2, "category_id": 2, "bbox": bbox})


def _region(tasks: list) -> dict:
    return tasks[1]["annotations"][0]["result"][0]


def _png(array: np.ndarray, cut: int | None = None) -> bytes:
    import io

    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()[:cut]


ZEROS = np.zeros((96, 128), np.uint8)
CVAT = (
    '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>\n'
    '<image id="1" name="synth_test_0001.jpg" {size}>{shape}</image>\n</annotations>\n'
)
POLYGON = '<polygon label="bicycle" points="10,10;40,12;30,40"></polygon>'
CASES = [
    # COCO (coco.json as engine annotate export wrote it)
    ("coco", _coco(lambda d: d.pop("images")), "coco.json: not a COCO file (expected an object with an 'images' list)"),
    ("coco", _coco(lambda d: _first_ann(d).update(category_id=7)), "coco.json: annotation 1 has unknown category_id 7"),
    ("coco", _coco(lambda d: _first_ann(d).update(segmentation="poly")), "annotation 1: segmentation must be an RLE object or a list of polygons"),
    ("coco", _coco(lambda d: _first_ann(d)["segmentation"].update(size=[96, 127])), "annotation 1: RLE size [96, 127] differs from the image's [96, 128]"),
    ("coco", _coco(lambda d: _first_ann(d)["segmentation"].update(counts=3.5)), "annotation 1: RLE counts must be a string or a list of ints, got 3.5"),
    ("coco", _coco(lambda d: _first_ann(d).update(segmentation={"size": [96, 128], "counts": "ééé"})), "annotation 1: RLE counts string holds 'é' at 0; a compressed COCO RLE holds only the characters '0' to 'o'"),
    # 'T39cl;' is runs 100, 9, 12179: with 'T' moved by 128 it was read as before by the window
    # reader and refused by the importer as "'ascii' codec can't encode character '\xd4' ..."
    ("coco", _coco(lambda d: _first_ann(d).update(segmentation={"size": [96, 128], "counts": "Ô39cl;"})), "annotation 1: RLE counts string holds 'Ô' at 0; a compressed COCO RLE holds only the characters '0' to 'o'"),
    # int() cut 100.5 and 9.5 to 100 and 9, which sum to 96*128 with 12179: imported, a wrong mask
    ("coco", _coco(lambda d: _first_ann(d).update(segmentation={"size": [96, 128], "counts": [100.5, 9.5, 12179]})), "coco.json: annotation 1: RLE counts hold a run length that is not a whole number, 100.5 (count 1 of 3)"),
    ("coco", _coco(lambda d: _first_ann(d).update(segmentation=[[1, 2, 30, "x", 5, 6]])), "annotation 1: a polygon must be a flat list of numbers"),
    ("coco", _coco(lambda d: _first_ann(d).update(segmentation=[[1, 2, 30, 40, 5]])), "annotation 1: a polygon must be a flat list of an even number of coordinates, got 5"),
    ("coco", _coco(lambda d: _unannotated_box(d, [1, 2])), "annotation 99: neither a segmentation nor a bbox [x, y, width, height]"),
    ("coco", _coco(lambda d: _unannotated_box(d, [1, 2, "a", 4])), "annotation 99: bbox must be 4 numbers, got [1, 2, 'a', 4]"),
    (
        "coco",
        _coco(lambda d: d["info"]["mass_engine_export"].update(polygon_convention="centre")),
        "coco.json: mass_engine_export.polygon_convention is 'centre', not 'coco' or 'labelme': was the file edited?",
    ),
    # LabelMe (labelme/<stem>.json as exported)
    ("labelme", _labelme(lambda s: s.update(points="1,2")), "synth_test_0001.json: shape 0: points must be a list of [x, y] number pairs"),
    ("labelme", _labelme(lambda s: s.update(shape_type="circle", points=[[1, 2], [3, 4], [5, 6]])), "shape 0: a circle needs 2 points, got 3"),
    ("labelme", _labelme(lambda s: s.update(shape_type="mask", points=[[1, 2], [3, 4]])), "shape 0: a mask shape needs 2 points and base64 'mask' data"),
    (
        "labelme",
        _labelme(lambda s: s.update(shape_type="spline")),
        "shape 0: unsupported shape_type 'spline' (polygon, rotation, oriented_rectangle, quadrilateral, rectangle, circle, mask)",
    ),
    # labelme's line strip outlines no area (was "unsupported shape_type 'linestrip'", which it is not)
    ("labelme", _labelme(lambda s: s.update(shape_type="linestrip")), "synth_test_0001.json: shape 0 (bicycle): a 'linestrip' shape has no area: draw the object as a polygon or mask"),
    # a shape without a label was counted as a label '' and left out, the object dropped
    ("labelme", _labelme(lambda s: s.pop("label")), "synth_test_0001.json: shape 0 has no label (LabelMe gives every shape one): give it the class's label or 'unannotated'"),
    ("labelme", _labelme(lambda s: s.update(label=None)), "synth_test_0001.json: shape 0 has no label"),
    # Label Studio (tasks.json with the pre-annotations submitted)
    ("labelstudio", _labelstudio(lambda t: t[1]["annotations"][0].update(result="x")), "tasks.json: task 1: annotation 101: 'result' is not a list"),
    ("labelstudio", _labelstudio(lambda t: t[1]["annotations"][0]["result"].append(5)), "tasks.json: task 1: annotation 101: a result that is not an object, got 5"),
    ("labelstudio", _labelstudio(lambda t: _region(t).update(original_width="w")), "tasks.json: task 1: annotation 101: region r0: original_width 'w', not a number"),
    # int() read 128.7 as 128, the dataset's width: imported silently (COCO's sizes refused it)
    ("labelstudio", _labelstudio(lambda t: _region(t).update(original_width=128.7)), "tasks.json: task 1: annotation 101: region r0: original_width 128.7, not a whole number of pixels"),
    # a project of 500 tasks: the task and annotation to open in Label Studio, not only the image
    ("labelstudio", _labelstudio(lambda t: _region(t).update(original_width=127)), "tasks.json: task 1: annotation 101: image 'synth_test_0001' is 127x96 in the annotation but 128x96 in the dataset"),
    (
        "labelstudio",
        _labelstudio(lambda t: t[2]["data"].update(image=t[2]["data"]["image"].replace("0002", "0099"))),
        "tasks.json: task 2: annotation 102: image 'synth_test_0099' is not in split 'test' (3 images)",
    ),
    (
        "labelstudio",
        _labelstudio(lambda t: t[2].update(data=copy.deepcopy(t[1]["data"]))),
        "tasks.json: image 'synth_test_0001' is annotated twice in this file (task 1: annotation 101; task 2: annotation 102)",
    ),
    (
        "labelstudio",
        _labelstudio(lambda t: t[1]["annotations"].append(copy.deepcopy(t[1]["annotations"][0]) | {"id": 7})),
        "2 submitted annotations (ids 101, 7); mark the one to import as ground truth in Label Studio, or delete the others",
    ),
    (
        "labelstudio",
        _labelstudio(lambda t: _region(t).update(type="rectanglelabels", value={"x": 1, "y": 2, "width": "w", "height": 4, "rectanglelabels": ["unannotated"]})),
        "task 1: annotation 101: rectangle region r0: needs numbers x, y, width, height (percent)",
    ),
    # CVAT for images 1.1
    ("cvat", _file("annotations.xml", CVAT.format(size='width="12a" height="96"', shape=POLYGON)), "annotations.xml: image 'synth_test_0001.jpg' has width '12a', not a number"),
    (
        "cvat",
        _file("annotations.xml", CVAT.format(size='width="128" height="96"', shape='<circle label="bicycle" cx="3"></circle>')),
        "image 'synth_test_0001.jpg': circle 0 (bicycle): unknown shape <circle>, not one that CVAT for images 1.1 writes",
    ),
    # a shape without a label was counted as a label '' and left out: beside one of the class,
    # imported without the object (a warning of "other classes"); alone, "only of '' (1)"
    (
        "cvat",
        _file("annotations.xml", CVAT.format(size='width="128" height="96"', shape=POLYGON + '<polygon points="50,10;80,12;70,40"></polygon>')),
        "annotations.xml: image 'synth_test_0001.jpg': polygon 1 has no label (CVAT writes one on every shape): give it the class's label or 'unannotated'",
    ),
    (
        "cvat",
        _file("annotations.xml", CVAT.format(size='width="128" height="96"', shape='<box label=" " xtl="1" ytl="2" xbr="30" ybr="40"></box>')),
        "image 'synth_test_0001.jpg': box 0 has no label (CVAT writes one on every shape)",
    ),
    # PNG masks, YOLO's data.yaml
    ("png", _file("masks/synth_test_0001.png", b""), "synth_test_0001.png: the file is empty (expected a PNG mask)"),
    ("png", _file("masks/synth_test_0001.png", _png(ZEROS, 60)), "synth_test_0001.png: cannot read PNG (image file is truncated)"),
    (
        "png",
        _file("masks/synth_test_0001.png", _png(np.where(np.arange(96)[:, None] < 5, 255, ZEROS).astype(np.uint8))),
        "synth_test_0001.png: mask has 255 but no 1 pixels, which looks like a 0/255 binary mask; pass binary mode (--png-binary)",
    ),
]  # fmt: skip


def _yolo(world: Path, case: Path) -> Path:
    (case / "data.yaml").write_text("names: {a: bicycle}\n")
    (case / "labels").mkdir()
    (case / "labels/synth_test_0001.txt").write_text("0 0.1 0.1 0.5 0.1 0.3 0.5\n")
    return case / "labels"


CASES.append(("yolo", _yolo, "data.yaml: 'names' keys must be class indices"))


@pytest.mark.parametrize(
    ("fmt", "make", "expected"), CASES, ids=[f"{f}-{e[-40:]}" for f, _, e in CASES]
)
def test_a_malformed_file_is_one_line_naming_it_and_leaves_the_subset(
    fmt, make, expected, world: Path, tmp_path: Path
):
    before = _tree(world / "subset")
    source = make(world, tmp_path)
    res = runner.invoke(
        app,
        ["annotate", "import", str(source), "--format", fmt, "--class", "bicycle", "--data",
         str(world / "ds"), "--out", str(world / "subset"), "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path}"), res.output
    assert expected in lines[0], lines[0]
    assert _tree(world / "subset") == before  # nothing imported before lost or half-written


def test_two_coco_images_of_one_id_are_refused(world: Path, tmp_path: Path):
    """A COCO file giving a second image the id of another (a merge of two exports by hand):
    the first was dropped without a word, and its annotations were painted onto the second, a
    subset of 2 images with the wrong masks. Annotations name images by id: which one they
    mark is not known."""

    def same_id(doc: dict) -> None:
        doc["images"][2]["id"] = doc["images"][1]["id"]
        doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != 3]

    before = _tree(world / "subset")
    source = _coco(same_id)(world, tmp_path)
    res = runner.invoke(
        app,
        ["annotate", "import", str(source), "--class", "bicycle", "--data", str(world / "ds"),
         "--out", str(world / "subset"), "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert res.output.strip() == (
        f"error: {source}: image id 2 is given to 'synth_test_0001' and 'synth_test_0002': "
        "annotations name their image by id; give each image its own"
    )
    assert _tree(world / "subset") == before


@pytest.mark.parametrize("first", [True, False], ids=["car first", "bicycle first"])
def test_two_coco_categories_of_one_id_are_refused(first: bool, world: Path, tmp_path: Path):
    """Category id 1 given to both 'car' and 'bicycle': with car listed first every annotation
    of id 1 was imported as bicycle without a word; with bicycle first the error said the file
    had no category named 'bicycle' (categories: 'car'), which it has."""
    car = {"id": 1, "name": "car"}
    source = _coco(lambda d: d["categories"].insert(0 if first else 1, car))(world, tmp_path)
    res = runner.invoke(
        app,
        ["annotate", "import", str(source), "--class", "bicycle", "--data", str(world / "ds"),
         "--out", str(tmp_path / "subset"), "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    names = "'car' and 'bicycle'" if first else "'bicycle' and 'car'"
    assert res.output.strip() == (
        f"error: {source}: category id 1 is given to {names}: annotations name their category "
        "by id; give each category its own"
    )
    assert not (tmp_path / "subset").exists()


def test_two_other_categories_of_one_id_or_colour_are_imported_as_other(
    world: Path, tmp_path: Path
):
    """Two categories of one id, or two labels of one colour, neither of them the class nor
    ``unannotated``: both are 0 whichever wins, and the import was right before the
    forty-eighth round; that round's refusal stopped a Bicycle import over road and sidewalk."""
    road, sidewalk = {"id": 5, "name": "road"}, {"id": 5, "name": "sidewalk"}
    source = _coco(lambda d: d["categories"].extend([road, sidewalk]))(world, tmp_path)
    args = ["--class", "bicycle", "--data", str(world / "ds"), "--no-progress"]
    res = runner.invoke(
        app, ["annotate", "import", str(source), *args, "--out", str(tmp_path / "a")]
    )
    assert res.exit_code == 0, res.output
    want = _tree(world / "subset/masks")
    assert _tree(tmp_path / "a/masks") == want
    segmask = tmp_path / "segmask"
    (segmask / "SegmentationClass").mkdir(parents=True)
    (segmask / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\nroad:0,128,0::\n"
        "sidewalk:0,128,0::\nBicycle:255,0,0::\n"
    )
    for f in sorted((world / "subset/masks").iterdir()):
        mask = np.asarray(Image.open(f))
        rgb = np.zeros((*mask.shape, 3), np.uint8)
        rgb[mask == 0] = (0, 128, 0)
        rgb[mask == 1] = (255, 0, 0)
        Image.fromarray(rgb).save(segmask / "SegmentationClass" / f.name)
    res = runner.invoke(
        app, ["annotate", "import", str(segmask), "--format", "segmask", *args, "--out",
              str(tmp_path / "b")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert _tree(tmp_path / "b/masks") == want


@pytest.mark.parametrize("car_first", [True, False], ids=["car first", "bicycle first"])
def test_two_labels_of_one_colour_in_a_segmentation_mask_export_are_refused(
    car_first: bool, world: Path, tmp_path: Path
):
    """CVAT lets two labels have one colour, and its 'Segmentation mask' export then paints
    both alike: with car listed first its pixels were imported as bicycle without a word; with
    bicycle first the error said the files held only car."""
    lines = ["car:255,0,0::", "bicycle:255,0,0::"]
    (tmp_path / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
        + "\n".join(lines if car_first else lines[::-1])
        + "\n"
    )
    (tmp_path / "SegmentationClass").mkdir()
    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[:10] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "SegmentationClass/synth_test_0001.png")
    res = runner.invoke(
        app,
        ["annotate", "import", str(tmp_path), "--format", "segmask", "--class", "bicycle",
         "--data", str(world / "ds"), "--out", str(tmp_path / "subset"), "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    names = "'car' and 'bicycle'" if car_first else "'bicycle' and 'car'"
    assert res.output.strip() == (
        f"error: {tmp_path / 'labelmap.txt'}: {names} have one colour, (255, 0, 0), so their "
        "pixels cannot be told apart; give each label its own colour in CVAT and export again"
    )
    assert not (tmp_path / "subset").exists()


def test_engine_info_names_the_labels_of_one_colour_import_would_refuse(tmp_path: Path):
    """The forty-eighth round's refusal of two labels of one colour flagged them in ``engine
    info`` too (its label map was read the same way); once import refused them only where their
    roles differ, info read the map with no class, listed the later label alone (car's pixels
    counted as Bicycle's) and offered import lines that fail, with no problem and exit code 0."""
    (tmp_path / "labelmap.txt").write_text(
        "background:0,0,0::\ncar:255,0,0::\nBicycle:255,0,0::\nroad:0,128,0::\n"
        "sidewalk:0,128,0::\nunannotated:0,0,128::\n"
    )
    (tmp_path / "SegmentationClass").mkdir()
    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[:10], rgb[50:] = (255, 0, 0), (0, 128, 0)
    Image.fromarray(rgb).save(tmp_path / "SegmentationClass/synth_test_0001.png")
    res = runner.invoke(app, ["info", str(tmp_path)], env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output  # 1 as for a COCO file's problems
    rows = [" ".join(r.strip("│ ").split()) for r in res.output.splitlines() if "│" in r]
    same = "so their pixels cannot be told apart; give each label its own colour in CVAT and export again"
    assert rows[-3:] == [
        "problems │ 2 problems that import would refuse:",
        f"{tmp_path / 'labelmap.txt'}: 'car' and 'Bicycle' have one colour, (255, 0, 0), {same}",
        f"{tmp_path / 'labelmap.txt'}: 'road' and 'sidewalk' have one colour, (0, 128, 0), {same}",
    ]
    # Bicycle's colour its own: its import line is good; sidewalk's (the later of road and
    # sidewalk, the label info counts their pixels under) is refused, road being 0 for it
    (tmp_path / "labelmap.txt").write_text(
        "background:0,0,0::\nBicycle:255,0,0::\nroad:0,128,0::\nsidewalk:0,128,0::\n"
    )
    res = runner.invoke(app, ["info", str(tmp_path)], env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output
    rows = [" ".join(r.strip("│ ").split()) for r in res.output.splitlines() if "│" in r]
    assert rows[-2:] == [
        "problems │ 1 problem that import would refuse:",
        f"{tmp_path / 'labelmap.txt'}: 'road' and 'sidewalk' have one colour, (0, 128, 0), {same}",
    ]
    rgb[0, 0] = (1, 2, 3)  # a colour the label map lacks: import names it; info counted it only
    Image.fromarray(rgb).save(tmp_path / "SegmentationClass/synth_test_0001.png")
    res = runner.invoke(app, ["info", str(tmp_path)], env={"COLUMNS": "400"})
    rows = [" ".join(r.strip("│ ").split()) for r in res.output.splitlines() if "│" in r]
    assert rows[-3:-1] == [
        "problems │ 2 problems that import would refuse:",
        f"{tmp_path / 'SegmentationClass'}: 1 mask with colours not in the label map (labelmap.txt)",
    ]
