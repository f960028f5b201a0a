"""Datasets laid out as the field's well-known ones (Cityscapes, ADE20K, Pascal VOC, COCO-Stuff,
a user's ``photos/`` + ``masks/``), in small replicas, through the loop: ``engine info``,
``label --backend simulated``, ``fuse``, ``train``, ``predict``, ``evaluate``, with the
``dataset.yaml`` docs/foundation.md gives for each."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import app

H, W = 48, 64


def _taxonomy(path: Path, names: list[str], parent_of: dict[int, int] | None = None) -> None:
    classes = [
        {"id": i, "name": n, "color": [(i * 37) % 256, (i * 91) % 256, (i * 53) % 256]}
        for i, n in enumerate(names)
    ]
    path.write_text(json.dumps({"classes": classes}))


def _scene(rng: np.random.Generator, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An image, its label map (ids 0..n_classes-1 in blocks, an ignore band) and the truth of
    the new class (a box inside class 1's pixels)."""
    label = np.zeros((H, W), np.uint8)
    label[: H // 2] = rng.integers(0, n_classes)
    label[H // 2 :] = 1
    mask = np.zeros((H, W), np.uint8)
    mask[H // 2 + 4 : H - 6, 10:30] = 1
    image = (rng.integers(0, 60, (H, W, 3)) + label[..., None] * 9 + mask[..., None] * 80).astype(
        np.uint8
    )
    return image, label, mask


def _write(path: Path, array: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    if palette:  # Pascal VOC's SegmentationClass: indices under a colour palette
        img = img.convert("P")
        img.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, i)])
    img.save(path)


def cityscapes(root: Path) -> tuple[str, str]:
    """leftImg8bit/{split}/{city}/*_leftImg8bit.png, gtFine/{split}/{city}/ with every file
    Cityscapes puts there (labelIds, labelTrainIds from cityscapesscripts, color, instanceIds,
    polygons)."""
    rng = np.random.default_rng(0)
    names = "road sidewalk building wall fence pole light sign vegetation terrain sky person "
    names += "rider car truck bus train motorcycle bicycle"
    _taxonomy(root / "taxonomy.json", names.split())
    for split, cities in (("train", ("aachen", "bremen")), ("val", ("frankfurt",))):
        for city in cities:
            stem = f"{city}_000000_000019"
            image, label, mask = _scene(rng, 19)
            label[:2] = 255  # the ego vehicle's rectification border, ignored in trainIds
            _write(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
            gt = root / "gtFine" / split / city
            _write(gt / f"{stem}_gtFine_labelTrainIds.png", label)
            _write(gt / f"{stem}_gtFine_labelIds.png", np.where(label == 255, 0, label + 7))
            _write(gt / f"{stem}_gtFine_color.png", np.dstack([label] * 3))
            _write(gt / f"{stem}_gtFine_instanceIds.png", label.astype(np.uint16))
            (gt / f"{stem}_gtFine_polygons.json").write_text("{}")
            _write(root / "new_classes" / "Scooter" / split / f"{stem}.png", mask)
    spec = """\
images: leftImg8bit/{split}
labels: gtFine/{split}
image_suffix: _leftImg8bit.png
label_suffix: _gtFine_labelTrainIds.png
recursive: true
taxonomy: taxonomy.json
"""
    return spec, "sidewalk"


def ade20k(root: Path) -> tuple[str, str]:
    """ADEChallengeData2016: images/{training,validation}/ADE_*.jpg, annotations/.../ADE_*.png
    with 0 = other objects and 1..150 the classes."""
    rng = np.random.default_rng(1)
    _taxonomy(root / "taxonomy.json", ["other objects"] + [f"class{i}" for i in range(1, 151)])
    for split, n in (("training", 2), ("validation", 1)):
        for i in range(n):
            stem = f"ADE_{split[:5].replace('valid', 'val')}_{i + 1:08d}"
            image, label, mask = _scene(rng, 151)
            _write(root / "images" / split / f"{stem}.jpg", image)
            _write(root / "annotations" / split / f"{stem}.png", label)
            _write(root / "new_classes" / "Scooter" / split / f"{stem}.png", mask)
    return "taxonomy: taxonomy.json\n", "class1"


def ade20k_reduced(root: Path) -> tuple[str, str]:
    """ADE20K with its maps converted as docs/foundation.md says (mmsegmentation's
    reduce_zero_label: 0 becomes 255, k becomes k-1) into annotations_reduced/."""
    ade20k(root)
    _taxonomy(root / "taxonomy.json", [f"class{i}" for i in range(1, 151)])
    for path in sorted((root / "annotations").glob("*/*.png")):
        a = np.array(Image.open(path))
        reduced = np.where((a == 0) | (a == 255), 255, a - 1).astype("uint8")  # the docs' line
        _write(root / "annotations_reduced" / path.parent.name / path.name, reduced)
    spec = "labels: annotations_reduced/{split}\ntaxonomy: taxonomy.json\n"
    return spec, "class1"  # value 1 of the maps, id 0 now


def voc(root: Path) -> tuple[str, str]:
    """VOC2012: JPEGImages (most without segmentation), SegmentationClass palette PNGs with
    255 along object edges, ImageSets/Segmentation/{train,val,trainval}.txt."""
    rng = np.random.default_rng(2)
    names = "background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable "
    names += "dog horse motorbike person pottedplant sheep sofa train tvmonitor"
    _taxonomy(root / "taxonomy.json", names.split())
    lists: dict[str, list[str]] = {"train": [], "val": []}
    for i, split in enumerate(("train", "train", "val", None, None)):
        stem = f"2007_{i:06d}"
        image, label, mask = _scene(rng, 21)
        label[H // 2 - 1 : H // 2 + 1] = 255  # the void boundary
        _write(root / "JPEGImages" / f"{stem}.jpg", image)
        if split is None:  # detection-only images: no segmentation
            continue
        lists[split].append(stem)
        _write(root / "SegmentationClass" / f"{stem}.png", label, palette=True)
        _write(root / "new_classes" / "Scooter" / split / f"{stem}.png", mask)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    for split, stems in lists.items():
        (sets / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
    (sets / "trainval.txt").write_text("".join(f"{s}\n" for s in lists["train"] + lists["val"]))
    spec = """\
images: JPEGImages
labels: SegmentationClass
split_list: ImageSets/Segmentation/{split}.txt
splits: [train, val]
taxonomy: taxonomy.json
"""
    return spec, "aeroplane"


def coco_stuff(root: Path) -> tuple[str, str]:
    """coco_stuff164k as mmsegmentation converts it: images/{train2017,val2017}/*.jpg,
    annotations/... with the raw maps (0..181, 255) and *_labelTrainIds.png (0..170, 255) side
    by side."""
    rng = np.random.default_rng(3)
    _taxonomy(root / "taxonomy.json", [f"stuff{i}" for i in range(171)])
    for split, n in (("train2017", 2), ("val2017", 1)):
        for i in range(n):
            stem = f"{i + 9:012d}"
            image, label, mask = _scene(rng, 171)
            _write(root / "images" / split / f"{stem}.jpg", image)
            _write(root / "annotations" / split / f"{stem}.png", label + 11)
            _write(root / "annotations" / split / f"{stem}_labelTrainIds.png", label)
            _write(root / "new_classes" / "Scooter" / split / f"{stem}.png", mask)
    spec = "label_suffix: _labelTrainIds.png\ntaxonomy: taxonomy.json\n"
    return spec, "stuff1"


def plain(root: Path) -> tuple[str, str]:
    """A user's own: photos/*.jpg and masks/*_mask.png, no split folders."""
    rng = np.random.default_rng(4)
    _taxonomy(root / "taxonomy.json", ["background", "road", "person"])
    for i in range(3):
        image, label, mask = _scene(rng, 3)
        _write(root / "photos" / f"IMG_{i:04d}.jpg", image)
        _write(root / "masks" / f"IMG_{i:04d}_mask.png", label)
        _write(root / "new_classes" / "Scooter" / "all" / f"IMG_{i:04d}.png", mask)
    spec = "images: photos\nlabels: masks\nlabel_suffix: _mask.png\ntaxonomy: taxonomy.json\n"
    return spec, "road"


LAYOUTS = {
    "cityscapes": (cityscapes, "train", "val"),
    "ade20k": (ade20k, "training", "validation"),
    "ade20k_reduced": (ade20k_reduced, "training", "validation"),
    "voc": (voc, "train", "val"),
    "coco_stuff": (coco_stuff, "train2017", "val2017"),
    "plain": (plain, "all", "all"),
}


def _engine(*args: str) -> str:
    res = CliRunner().invoke(app, [*args, "--no-progress"] if args[0] != "info" else list(args))
    assert res.exit_code == 0, f"{args}: {res.output}"
    return res.output


@pytest.mark.parametrize("layout", LAYOUTS)
def test_loop_on_layout(layout: str, tmp_path: Path):
    """The recipe docs/foundation.md gives for the layout: its dataset.yaml, then the loop."""
    from engine.datasets import load_spec, open_split

    build, train, val = LAYOUTS[layout]
    root = tmp_path / layout
    root.mkdir()
    spec, parent = build(root)
    (root / "dataset.yaml").write_text(spec)
    (tmp_path / "classes.yaml").write_text(f"Scooter:\n  prompts: [scooter]\n  parent: {parent}\n")
    _engine("info", str(root))  # exit code 0: no problem found
    runs = tmp_path / "runs"
    _engine("label", "--class", "Scooter", "--data", str(root), "--backend", "simulated",
            "--spec", str(tmp_path / "classes.yaml"), "--out", str(runs / "label"))  # fmt: skip
    fused = runs / "fused"
    _engine("fuse", "--data", str(root), "--pseudo", str(runs / "label"), "--out", str(fused))
    _engine("info", str(fused))
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"train_split: {train}\n")
    _engine("train", "--data", str(fused), "--preset", "tiny", "--config", str(cfg),
            "--out", str(runs / "train"), "--iters", "2", "--batch-size", "2", "--crop", "32",
            "--device", "cpu", "--workers", "0", "--val-every", "0", "--val-split", val,
            "--val-size", f"{W}x{H}")  # fmt: skip
    _engine("predict", "--checkpoint", str(runs / "train" / "last.pt"), "--data", str(fused),
            "--split", val, "--out", str(runs / "pred"), "--size", f"{W}x{H}", "--device", "cpu")  # fmt: skip
    # scored against the dataset's own label maps of the split, as its spec finds them (before,
    # --gt took a flat folder of <stem>.png only: the fused copy's, or converted copies)
    out = tmp_path / "eval.json"
    _engine("evaluate", "--pred", str(runs / "pred"), "--gt", str(root), "--split", val,
            "--json", str(out))  # fmt: skip
    scores = json.loads(out.read_text())
    assert scores["dataset"] == {
        "root": str(root), "split": val, "labels": str(load_spec(root).label_dir(val))
    }  # fmt: skip
    assert scores["stems"] == [s.stem for s in open_split(root, val)]
    assert scores["taxonomy_source"] == str(root / "taxonomy.json")
    assert scores["folded"] == {"Scooter": parent}  # the model's new class, as in the dataset


def _tiny(path: Path, value: int = 0) -> None:
    _write(path, np.full((4, 6), value, np.uint8))


def test_label_suffix_pairs_cityscapes_names_in_city_folders(tmp_path: Path):
    """Images and labels paired by what is left of their names once the spec's suffixes are
    cut, in sub-folders with ``recursive``; the other files beside the labels (labelIds,
    color, polygons) are not strays. Before, the keys were unknown."""
    from engine.datasets import load_spec, open_split

    for city in ("aachen", "bonn"):
        _tiny(tmp_path / f"left/train/{city}/{city}_1_leftImg8bit.png")
        _tiny(tmp_path / f"gt/train/{city}/{city}_1_gtFine_labelTrainIds.png", 2)
        _tiny(tmp_path / f"gt/train/{city}/{city}_1_gtFine_labelIds.png", 30)
        (tmp_path / f"gt/train/{city}/{city}_1_gtFine_polygons.json").write_text("{}")
    (tmp_path / "dataset.yaml").write_text(
        "images: left/{split}\nlabels: gt/{split}\nimage_suffix: _leftImg8bit.png\n"
        "label_suffix: _gtFine_labelTrainIds.png\nrecursive: true\n"
    )
    assert load_spec(tmp_path).available_splits() == ["train"]
    ds = open_split(tmp_path, "train")
    assert [s.stem for s in ds] == ["aachen_1", "bonn_1"]
    assert ds[1].label_path == tmp_path / "gt/train/bonn/bonn_1_gtFine_labelTrainIds.png"
    assert ds.check() == []
    # a split whose images are not extracted yet (its city folders of labels are): a problem,
    # as for a flat folder (before, its labels in sub-folders were not counted: left out)
    _tiny(tmp_path / "gt/val/bonn/bonn_2_gtFine_labelTrainIds.png", 2)
    (only,) = load_spec(tmp_path).label_only_splits().values()
    assert only.startswith(f"{tmp_path / 'gt/val'}: 1 label map but no images for split 'val'")
    # the same stem in two cities would be one label map in every output: refused
    _tiny(tmp_path / "left/train/bonn/aachen_1_leftImg8bit.png")
    with pytest.raises(ValueError, match=r"several files share a stem: bonn/aachen_1_leftImg8bit"):
        open_split(tmp_path, "train")


def test_a_recursive_splits_linked_city_is_read_and_a_link_loop_is_named(tmp_path: Path):
    """A city folder that is a symbolic link (relative) to a shared store is read as one of its
    own; a link to a folder that holds it (``bonn/up -> ..``) was followed round the loop 40
    deep, and the error listed the same image again and again (``several files share a stem:
    bonn/up/bonn/bonn_1_leftImg8bit.png, ...``). It is one line naming the link now."""
    from cli import app
    from engine.datasets import open_split

    _tiny(tmp_path / "left/train/bonn/bonn_1_leftImg8bit.png")
    _tiny(tmp_path / "gt/train/bonn/bonn_1_gtFine_labelTrainIds.png", 2)
    for kind, name in (("left", "leftImg8bit"), ("gt", "gtFine_labelTrainIds")):
        _tiny(tmp_path / f"store/{kind}/aachen/aachen_1_{name}.png", 2)
        (tmp_path / f"{kind}/train/aachen").symlink_to(f"../../store/{kind}/aachen")
    (tmp_path / "dataset.yaml").write_text(
        "images: left/{split}\nlabels: gt/{split}\nimage_suffix: _leftImg8bit.png\n"
        "label_suffix: _gtFine_labelTrainIds.png\nrecursive: true\n"
    )
    ds = open_split(tmp_path, "train")
    assert [s.stem for s in ds] == ["aachen_1", "bonn_1"]
    assert ds[0].image_path == tmp_path / "left/train/aachen/aachen_1_leftImg8bit.png"
    (tmp_path / "left/train/bonn/up").symlink_to("..")
    res = CliRunner().invoke(app, ["info", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        f"error: {tmp_path / 'left/train/bonn/up'}: a symbolic link to .., a folder that holds "
        "it: the sub-folders would be read round in a loop; remove the link"
    ), res.output
    # a loop of two links, each to a folder the walk came through to the other
    (tmp_path / "left/train/bonn/up").unlink()
    _tiny(tmp_path / "left/train/koeln/koeln_1_leftImg8bit.png")
    (tmp_path / "left/train/bonn/x").symlink_to("../koeln")
    (tmp_path / "left/train/koeln/y").symlink_to("../bonn")
    res = CliRunner().invoke(app, ["info", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        f"error: {tmp_path / 'left/train/bonn/x/y'}: a symbolic link to ../bonn, a folder it is "
        f"reached through ({tmp_path / 'left/train/bonn'}): the sub-folders would be read round "
        "in a loop; remove the link"
    ), res.output


def test_a_linked_folder_on_another_drive_is_walked(tmp_path: Path, monkeypatch):
    """On Windows a link to a folder on another drive (``D:``) made ``os.path.commonpath``
    raise "Paths don't have the same drive" in the loop check: a recursive spec's split with
    such a city could not be read. Other drives are no loop."""
    import ntpath

    from engine.datasets import _walk

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "f.png").write_bytes(b"")
    (tmp_path / "a" / "l").symlink_to("../b")
    drive = {str(tmp_path / "a" / "l"): "D:\\store\\b"}
    with monkeypatch.context() as m:  # undone before pytest reports (it calls realpath)
        m.setattr(os.path, "realpath", lambda p: drive.get(os.fspath(p), "C:\\t\\a"))
        m.setattr(os.path, "commonpath", ntpath.commonpath)
        try:
            found: object = _walk(tmp_path)
        except ValueError as e:
            found = str(e)
    assert found == [tmp_path / "a/l/f.png", tmp_path / "b/f.png"]


def test_split_list_names_each_splits_images(tmp_path: Path):
    """Pascal VOC: one folder of images, most without segmentation, and a list per split.
    Lines may be DeepLab's paths; a listed stem without its image is named with its list."""
    from engine.datasets import load_spec, open_split

    for i in range(4):
        _tiny(tmp_path / f"JPEGImages/{i}.jpg")
    for i in range(3):
        _tiny(tmp_path / f"SegmentationClass/{i}.png", 255)
    sets = tmp_path / "ImageSets/Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("0\n1\n\n")
    (sets / "val.txt").write_text("/JPEGImages/2.jpg /SegmentationClass/2.png\n")
    (tmp_path / "dataset.yaml").write_text(
        "images: JPEGImages\nlabels: SegmentationClass\n"
        "split_list: ImageSets/Segmentation/{split}.txt\n"
    )
    assert load_spec(tmp_path).available_splits() == ["train", "val"]
    assert [s.stem for s in open_split(tmp_path, "train")] == ["0", "1"]
    assert [s.stem for s in open_split(tmp_path, "val")] == ["2"]
    (sets / "val.txt").write_text("2\n7\n")
    with pytest.raises(FileNotFoundError, match=r"val.txt: no image in .*JPEGImages for 1 stem"):
        open_split(tmp_path, "val")
    (sets / "val.txt").write_text("3\n")  # an image without its label: the usual error
    with pytest.raises(ValueError, match=r"no label in .*SegmentationClass for 1 image: 3"):
        open_split(tmp_path, "val")


@pytest.mark.parametrize(
    ("lines", "stems"),
    [  # as a user writes a name with spaces, quotes or backslashes
        ("my photo\nplain\n", ["my photo", "plain"]),
        ('"my photo"\n', ["my photo"]),
        ("'my photo'\n", ["my photo"]),
        ("my\\ photo\n", ["my photo"]),
        ("'it'\\''s'\nit's\n", ["it's"]),
        pytest.param(  # a file name holding a backslash, where there are such names
            "a\\b\n", ["a\\b"], marks=pytest.mark.skipif(os.name == "nt", reason="POSIX names")
        ),
        ("JPEGImages\\plain.jpg SegmentationClass\\plain.png\n", ["plain"]),  # DeepLab's, Windows
        ('"JPEGImages/my photo.jpg" "SegmentationClass/my photo.png"\n', ["my photo"]),
    ],
)
def test_split_list_names_with_spaces_quotes_and_backslashes(tmp_path: Path, lines, stems):
    """``my photo`` in a split list was read as its first word, ``my``: the split was refused
    for an image it does not hold (``no image ... for 1 stem it lists: my``)."""
    from engine.datasets import open_split

    for name in ("my photo", "plain", "it's", *(("a\\b",) if os.name != "nt" else ())):
        _tiny(tmp_path / f"JPEGImages/{name}.jpg")
        _tiny(tmp_path / f"SegmentationClass/{name}.png", 255)
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets/val.txt").write_text(lines)
    (tmp_path / "dataset.yaml").write_text(
        "images: JPEGImages\nlabels: SegmentationClass\nsplit_list: ImageSets/{split}.txt\n"
    )
    assert [s.stem for s in open_split(tmp_path, "val")] == stems


@pytest.mark.parametrize(
    ("lines", "named"),
    [  # a name not there is named as the line reads, not as its first word
        ("my pic\n", "my pic"),
        ('"my pic"\n', "my pic"),
        ("my\\ pic\n", "my pic"),
        ("JPEGImages/gone.jpg SegmentationClass/gone.png\n", "gone"),
        ("gone\n", "gone"),
    ],
)
def test_a_split_list_name_not_there_is_named_as_written(tmp_path: Path, lines, named):
    from engine.datasets import open_split

    _tiny(tmp_path / "JPEGImages/plain.jpg")
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets/val.txt").write_text(lines)
    (tmp_path / "dataset.yaml").write_text(
        "images: JPEGImages\nsplit_list: ImageSets/{split}.txt\n"
    )
    with pytest.raises(FileNotFoundError) as e:
        open_split(tmp_path, "val")
    assert str(e.value).endswith(f"for 1 stem it lists: {named}"), str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seg_map_suffix: _x.png\n", "'seg_map_suffix' is not a dataset spec key: write label_s"),
        ("reduce_zero_label: true\n", "'reduce_zero_label' is not .*list value 0 as a class"),
        ("ignore_index: 0\n", "'ignore_index' is not .*255 is ignore in every label map"),
        ("label_suffix: _x.jpg\n", "'label_suffix' must end in .png"),
        ("image_suffix: ''\n", "'image_suffix' must be text such as '_leftImg8bit.png'"),
        ("image_suffix: .jpg\nimage_exts: [.png]\n", "give image_suffix or image_exts, not b"),
        ("recursive: yes\n", "'recursive' must be true or false, got 'yes'"),
    ],
)
def test_other_tools_keys_and_bad_values_in_one_line(tmp_path: Path, text: str, message: str):
    from engine.datasets import load_spec

    (tmp_path / "dataset.yaml").write_text(text)
    with pytest.raises(ValueError, match=message) as e:
        load_spec(tmp_path)
    assert str(e.value).startswith(str(tmp_path / "dataset.yaml"))


def test_images_in_sub_folders_without_recursive_are_named(tmp_path: Path):
    """Cityscapes' cities without ``recursive: true``: the splits were empty and ``engine
    info`` said "No problems found" (every command then had nothing to do)."""
    from engine.datasets import open_split

    _tiny(tmp_path / "left/train/aachen/a_leftImg8bit.png")
    _tiny(tmp_path / "gt/train/aachen/a_gtFine_labelTrainIds.png")
    spec = "images: left/{split}\nlabels: gt/{split}\nimage_suffix: _leftImg8bit.png\n"
    (tmp_path / "dataset.yaml").write_text(spec + "label_suffix: _gtFine_labelTrainIds.png\n")
    with pytest.raises(FileNotFoundError, match=r"left/train: no image in the folder, but its "
                       r"sub-folders hold some \(aachen/\): add recursive: true"):  # fmt: skip
        open_split(tmp_path, "train", lenient=True)
    (tmp_path / "left/train/aachen/a_leftImg8bit.png").rename(
        tmp_path / "left/train/a_leftImg8bit.png"
    )
    with pytest.raises(ValueError, match=r"gt/train's sub-folders hold some \(aachen/\)"):
        open_split(tmp_path, "train")


def test_cityscapes_annotations_export_and_import_back(tmp_path: Path):
    """An annotation tool names Cityscapes' images by their files (COCO's file_name
    frankfurt/a_leftImg8bit.png): import took a_leftImg8bit for the stem and refused it, 'image
    ... is not in split val', so the loop's annotated subset could not be made."""
    root = tmp_path / "cityscapes"
    root.mkdir()
    spec, parent = cityscapes(root)
    (root / "dataset.yaml").write_text(spec)
    (tmp_path / "classes.yaml").write_text(f"Scooter:\n  parent: {parent}\n")
    run = tmp_path / "label"
    _engine("label", "--class", "Scooter", "--data", str(root), "--backend", "simulated",
            "--spec", str(tmp_path / "classes.yaml"), "--out", str(run), "--split", "val")  # fmt: skip
    _engine("annotate", "export", str(run), "--split", "val", "--format", "coco", "--format",
            "labelme", "--out", str(tmp_path / "export"))  # fmt: skip
    coco = json.loads((tmp_path / "export" / "coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == [
        "frankfurt/frankfurt_000000_000019_leftImg8bit.png"
    ]
    for source in ("coco.json", "labelme"):
        out = tmp_path / f"subset_{source}"
        _engine("annotate", "import", str(tmp_path / "export" / source), "--class", "Scooter",
                "--data", str(root), "--split", "val", "--out", str(out))  # fmt: skip
        assert [p.name for p in (out / "masks").iterdir()] == ["frankfurt_000000_000019.png"]


def test_a_predictions_earlier_failure_is_looked_for_under_the_datasets_stem(tmp_path: Path):
    """predict.json keeps the failures of images a later call does not try again while their
    label map is missing; the map of Cityscapes' ``a_leftImg8bit.png`` is ``a.png``, but the
    check looked for ``a_leftImg8bit.png``, so such a failure was kept after its map was
    written. One rule names both (``DatasetSpec.image_stem``)."""
    from engine.datasets import DatasetSpec
    from trainer.predict import earlier_failures, stem_of

    spec = DatasetSpec(root=tmp_path, image_suffix="_leftImg8bit.png")
    image = tmp_path / "left" / "a_leftImg8bit.png"
    assert stem_of(image, spec) == "a" and stem_of(image, None) == "a_leftImg8bit"
    assert (
        spec.image_stem("x.jpg") is None and DatasetSpec(root=tmp_path).image_stem("x.JPG") == "x"
    )
    meta = {"failed": [{"image": str(image), "reason": "out of memory"}]}
    assert earlier_failures(meta, tmp_path, [], spec) == meta["failed"]
    (tmp_path / "a.png").write_bytes(b"")  # its map, written since
    assert earlier_failures(meta, tmp_path, [], spec) == []


def test_masks_saved_0_and_255_are_a_problem_engine_info_names(tmp_path: Path):
    """Foreground masks saved as 0 and 255 (as many tools write them) read 255 as ignore:
    `engine info` showed the class at 0% and said "No problems found", and training learnt
    the background alone. A split of such maps is one problem naming its folder; a split
    with another class anywhere is not."""
    _taxonomy(tmp_path / "taxonomy.json", ["background", "person"])
    for i in range(2):
        mask = np.zeros((H, W), np.uint8)
        mask[10:30, 5 + i : 40] = 255
        _write(tmp_path / "photos" / f"IMG_{i}.jpg", np.zeros((H, W, 3), np.uint8))
        _write(tmp_path / "masks" / f"IMG_{i}.png", mask)
    (tmp_path / "dataset.yaml").write_text(
        "images: photos\nlabels: masks\ntaxonomy: taxonomy.json\n"
    )
    res = CliRunner().invoke(app, ["info", str(tmp_path)], env={"COLUMNS": "300"})
    assert res.exit_code == 1, res.output
    assert (
        f"{tmp_path / 'masks'}: every label map holds only 0 and 255, as foreground masks saved "
        "0/255 do; 255 is ignore here, so training sees background alone: save each mask's "
        "class as its id (person is 1;"
    ) in res.output
    _write(tmp_path / "masks" / "IMG_1.png", np.ones((H, W), np.uint8))  # a person somewhere
    res = CliRunner().invoke(app, ["info", str(tmp_path)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "No problems found" in res.output, res.output


def test_masks_of_0_and_255_are_no_problem_where_the_taxonomy_has_one_class(tmp_path: Path):
    """With one class, 0 and 255 are all a label map can hold: no foreground mask saved 0/255
    (no class 1 to name). Only the threshold of two classes kept engine info from reporting it
    (and from naming a class 1 that is not there)."""
    _taxonomy(tmp_path / "taxonomy.json", ["background"])
    mask = np.zeros((H, W), np.uint8)
    mask[10:30] = 255
    _write(tmp_path / "photos" / "IMG_0.jpg", np.zeros((H, W, 3), np.uint8))
    _write(tmp_path / "masks" / "IMG_0.png", mask)
    (tmp_path / "dataset.yaml").write_text(
        "images: photos\nlabels: masks\ntaxonomy: taxonomy.json\n"
    )
    res = CliRunner().invoke(app, ["info", str(tmp_path)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "No problems found." in res.output, res.output


def test_a_deeplab_line_names_its_image_not_the_label_file_of_an_image_name(tmp_path: Path):
    """``images/a.png labels/a_mask.png``: the whole line's last part is the label's file, and a
    split holding an image ``a_mask`` too listed that one (the whole line was read first)."""
    from engine.datasets import open_split

    for name in ("a", "a_mask"):
        _tiny(tmp_path / f"images/{name}.png")
        _tiny(tmp_path / f"labels/{name}.png", 255)
    (tmp_path / "lists").mkdir()
    (tmp_path / "dataset.yaml").write_text(
        "images: images\nlabels: labels\nsplit_list: lists/{split}.txt\n"
    )
    for line in ("images/a.png labels/a_mask.png", "a.png labels/a_mask.png"):
        (tmp_path / "lists/val.txt").write_text(line + "\n")
        assert [s.stem for s in open_split(tmp_path, "val")] == ["a"], line


def test_a_split_list_file_with_nothing_in_the_split_s_place_names_no_split(tmp_path: Path):
    """``list_.txt`` beside ``list_train.txt`` (template ``list_{split}.txt``) names no split:
    it is no split ``""`` (whose image folder, JPEGImages itself, would be every split's)."""
    from engine.datasets import load_spec

    _tiny(tmp_path / "JPEGImages/a.jpg")
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets/list_train.txt").write_text("a\n")
    (tmp_path / "ImageSets/list_.txt").write_text("a\n")
    (tmp_path / "dataset.yaml").write_text(
        "images: JPEGImages\nsplit_list: ImageSets/list_{split}.txt\n"
    )
    assert load_spec(tmp_path).available_splits() == ["train"]
