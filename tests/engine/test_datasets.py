"""Datasets: the MaSS13K layout, spec files, every error, check(), EXIF, order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from annotations.labelmap import write_label
from annotations.taxonomy import MASS13K
from engine.datasets import (
    DatasetSpec,
    SegDataset,
    image_size,
    load_image,
    load_spec,
    open_split,
)
from tests.loop_helpers import turned_round

W, H = 12, 8


def _image(path: Path, w: int = W, h: int = H, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)
    return path


def _label(path: Path, w: int = W, h: int = H, value: int = 3) -> Path:
    return write_label(path, np.full((h, w), value, np.uint8))


def _mass(root: Path, split: str, stems: list[str], labels: list[str] | None = None) -> Path:
    for s in stems:
        _image(root / "images" / split / f"{s}.jpg")
    for s in stems if labels is None else labels:
        _label(root / "annotations" / split / f"{s}.png")
    return root


def test_mass13k_layout_lazy_sorted_pairs(tmp_path: Path):
    root = _mass(tmp_path, "train", ["c", "a", "b"])
    _image(root / "images/train/d.png")  # other image suffixes count too
    _label(root / "annotations/train/d.png")
    (root / "images/train/notes.txt").write_text("x")  # ignored
    (root / "images/train/.e.jpg.tmp").write_text("x")  # a temp file of a killed writer
    ds = open_split(root, "train")
    assert [s.stem for s in ds] == ["a", "b", "c", "d"] and len(ds) == 4
    assert ds[0].image_path == root / "images/train/a.jpg"
    assert ds[0].label_path == root / "annotations/train/a.png"
    image, label = ds.load_pair(ds[0])
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert label.shape == (H, W) and (label == 3).all()
    assert ds.taxonomy is MASS13K and ds.check() == []


def test_order_does_not_depend_on_creation_order(tmp_path: Path):
    a = _mass(tmp_path / "a", "val", ["x1", "x10", "x2"])
    b = _mass(tmp_path / "b", "val", ["x2", "x1", "x10"])
    assert [s.stem for s in open_split(a, "val")] == [s.stem for s in open_split(b, "val")]


def test_missing_root(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"nowhere: dataset root not found"):
        open_split(tmp_path / "nowhere", "train")


def test_missing_split_lists_available(tmp_path: Path):
    root = _mass(tmp_path, "val", ["a"])
    _mass(root, "train", ["a"])
    _mass(root, "extra", ["a"])
    assert load_spec(root).available_splits() == ["train", "val", "extra"]
    with pytest.raises(FileNotFoundError) as e:
        open_split(root, "test")
    assert str(e.value).startswith(str(root / "images/test"))
    assert "split 'test' not found; available splits: train, val, extra" in str(e.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as e:
        open_split(empty, "train")
    assert str(e.value).startswith(f"{empty}: no image split folders found (expected images/")


def test_a_root_one_or_two_levels_too_deep_names_the_dataset_root(tmp_path: Path):
    root = _mass(tmp_path / "d", "train", ["a"])
    for deep in (root / "images", root / "images" / "train"):
        with pytest.raises(FileNotFoundError) as e:
            open_split(deep, "train")
        assert str(e.value) == (  # the folder given, not a joined DEEP/images/train
            f"{deep}: no image split folders found (expected images/{{split}}, "
            f"e.g. images/train); is the dataset root {root}?"
        )
    with pytest.raises(FileNotFoundError) as e:  # the root meant, where val is missing too
        open_split(root / "images", "val")
    assert str(e.value).endswith(f"is the dataset root {root}?")
    with pytest.raises(FileNotFoundError) as e:  # nothing above: the root below is named
        open_split(tmp_path, "train")
    assert str(e.value).endswith(
        f"(expected images/{{split}}, e.g. images/train); is the dataset root {root}?"
    )
    with pytest.raises(FileNotFoundError) as e:  # nothing above or below: no guess
        (tmp_path / "other" / "sub").mkdir(parents=True)
        open_split(tmp_path / "other", "train")
    assert str(e.value).endswith("(expected images/{split}, e.g. images/train)")


def _release(root: Path) -> Path:
    """The MaSS13K release's folders as its configs read them (xiechenxi99/MaSS13K@1afadb9,
    configs/_base_/datasets/mass13k.py: data_root data/mass13k/msem, images_pad/{train,val},
    images/test; the MaSSFormer config's test loader images_copy/val), images/ holding test
    only."""
    for folder, split, stem in (
        ("images_pad", "train", "t1"),
        ("images_pad", "train", "t2"),
        ("images_pad", "val", "v1"),
        ("images_copy", "val", "v1"),
        ("images", "test", "s1"),
    ):
        _image(root / folder / split / f"{stem}.jpg", value=len(folder))
        _label(root / "annotations" / split / f"{stem}.png")
    return root


def test_the_release_layout_reads_images_pad_where_images_has_no_split(tmp_path: Path):
    root = _release(tmp_path / "data" / "mass13k" / "msem")
    spec = load_spec(root)
    assert spec.available_splits() == ["train", "val", "test"]  # before: test alone
    assert spec.image_dir("train") == root / "images_pad/train"
    assert spec.image_dir("val") == root / "images_pad/val"  # the val loader's, not images_copy
    assert spec.image_dir("test") == root / "images/test"
    ds = open_split(root, "train")
    assert [s.image_path for s in ds] == [
        root / "images_pad/train/t1.jpg",
        root / "images_pad/train/t2.jpg",
    ]
    assert ds.load_pair(ds[0])[1].shape == (H, W) and not ds.check()
    (root / "images_pad" / "val").rename(root / "images_pad" / "gone")  # val: images_copy then
    assert load_spec(root).image_dir("val") == root / "images_copy/val"
    _image(root / "images" / "train" / "t1.jpg")  # images/<split> exists: it is read, as before
    assert load_spec(root).image_dir("train") == root / "images/train"


def test_a_release_root_given_one_level_too_high_or_deep_is_named(tmp_path: Path):
    root = _release(tmp_path / "mass13k" / "msem")
    for folder in (root / "images").iterdir():  # a download with images_pad/ only
        for f in folder.iterdir():
            f.rename(root / "images_pad" / "train" / f.name)
        folder.rmdir()
    (root / "images").rmdir()
    for wrong in (root.parent, root / "images_pad", root / "images_pad" / "train"):
        with pytest.raises(FileNotFoundError) as e:
            open_split(wrong, "train")
        assert str(e.value).endswith(f"; is the dataset root {root}?"), wrong


def test_a_folder_holding_four_dataset_roots_names_the_first_three(tmp_path: Path, monkeypatch):
    top = tmp_path / "top"
    for name in "abcd":
        _mass(top / name, "train", ["s"])
    turned_round(monkeypatch)  # listed d, c, b, a: the hint sorts what it found
    with pytest.raises(FileNotFoundError) as e:
        open_split(top, "train")
    assert str(e.value) == (
        f"{top}: no image split folders found (expected images/{{split}}, e.g. images/train); "
        f"is the dataset root {top / 'a'} or {top / 'b'} or {top / 'c'}?"
    )


def test_a_spec_with_its_own_image_folders_is_not_pointed_at_a_release_above_it(tmp_path: Path):
    """A dataset.yaml naming its own image folders (labels as the default): a folder above it
    holding the release's images_pad/ is no root of that layout, so no hint names it."""
    _image(tmp_path / "up" / "images_pad" / "train" / "x.jpg")
    root = tmp_path / "up" / "ds"
    root.mkdir()
    (root / "dataset.yaml").write_text("images: pics/{split}\n")
    with pytest.raises(FileNotFoundError) as e:
        open_split(root, "train")
    assert str(e.value) == (
        f"{root}: no image split folders found (expected pics/{{split}}, e.g. pics/train)"
    )


def test_a_spec_names_each_splits_image_folder(tmp_path: Path):
    root = _release(tmp_path)
    (root / "dataset.yaml").write_text(
        "images: {train: images_pad/train, val: images_copy/val, test: images/test}\n"
    )
    spec = load_spec(root)
    assert spec.available_splits() == ["train", "val", "test"]
    assert spec.image_dir("val") == root / "images_copy/val"
    assert [s.stem for s in open_split(root, "train")] == ["t1", "t2"]
    (root / "dataset.yaml").write_text("images: {train: images_pad/train}\n")  # only those named
    assert load_spec(root).available_splits() == ["train"]
    (root / "dataset.yaml").write_text("images: {train: 3}\n")
    with pytest.raises(ValueError, match="mapping of splits to folders"):
        load_spec(root)


def test_missing_label_folder(tmp_path: Path):
    _image(tmp_path / "images/train/a.jpg")
    with pytest.raises(FileNotFoundError, match="annotations/train: label folder for split"):
        open_split(tmp_path, "train")
    assert open_split(tmp_path, "train", require_labels=False)[0].label_path is None


def test_images_without_labels_count_and_first_names(tmp_path: Path):
    stems = [f"img{i}" for i in range(7)]
    root = _mass(tmp_path, "train", stems, labels=["img3"])
    with pytest.raises(ValueError) as e:
        open_split(root, "train")
    msg = str(e.value)
    assert msg.startswith(str(root / "images/train"))
    assert "no label in" in msg and "for 6 images: " in msg
    assert "img0, img1, img2, img4, img5, ... (6 in all)" in msg
    ds = open_split(root, "train", require_labels=False)
    assert len(ds) == 7 and ds[3].label_path is not None and ds[0].label_path is None


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (
            "running",
            "its fusion did not finish (fuse.json: status running) and no process "
            "writes it now (stopped): run the same engine fuse command again to finish it",
        ),
        ("incomplete", "fusion failed on some images (fuse.json lists them, with why)"),
        ("complete", None),
    ],
)
def test_a_fused_dataset_missing_labels_says_its_fusion_is_unfinished(tmp_path, status, says):
    """A fusion stopped by Ctrl-C, or one that failed some images, leaves labels missing:
    training and engine info said only "no label for N images" (or "label folder for split
    'val' not found"), not why nor what writes them."""
    src = _mass(tmp_path / "data", "train", ["a", "b"])
    _image(src / "images/val/c.jpg")
    fused = tmp_path / "fused"
    _label(fused / "labels/train/a.png")
    (fused / "dataset.yaml").write_text("images: ../data/images/{split}\nlabels: labels/{split}\n")
    (fused / "fuse.json").write_text(json.dumps({"status": status}))
    for split, error in (("train", "for 1 image: b"), ("val", "label folder for split 'val'")):
        with pytest.raises((ValueError, FileNotFoundError)) as e:
            open_split(fused, split)
        assert error in str(e.value)
        assert (says in str(e.value)) if says else str(e.value).endswith(("b", "not found"))


def test_a_fused_dataset_being_fused_is_told_from_a_stopped_one(tmp_path):
    """Its missing labels said "unless it is running now, run the same engine fuse command
    again" whether a fusion ran or had been killed: the folder's lock tells which, and the
    error says which (a killed fusion holds no lock: run it again; a live one: wait)."""
    from engine.runlock import exclusive

    _mass(tmp_path / "data", "train", ["a", "b"])
    fused = tmp_path / "fused"
    _label(fused / "labels/train/a.png")
    (fused / "dataset.yaml").write_text("images: ../data/images/{split}\nlabels: labels/{split}\n")
    (fused / "fuse.json").write_text(json.dumps({"status": "running"}))
    with exclusive(fused, "engine fuse"), pytest.raises(ValueError) as e:
        open_split(fused, "train")
    assert "(fuse.json: status running): engine fuse (pid " in str(e.value)
    assert str(e.value).endswith("is writing it now: wait for it to finish")
    with pytest.raises(ValueError) as e:  # the lock released, as a kill releases it
        open_split(fused, "train")
    assert str(e.value).endswith("run the same engine fuse command again to finish it (it resumes)")


def test_labels_without_images_count_and_first_names(tmp_path: Path):
    root = _mass(tmp_path, "train", ["a"], labels=["a", "ghost1", "ghost2"])
    with pytest.raises(ValueError) as e:
        open_split(root, "train")
    msg = str(e.value)
    assert msg.startswith(str(root / "annotations/train"))
    assert "no image in" in msg and "for 2 labels: " in msg and msg.endswith("ghost1, ghost2")


def test_a_broken_link_or_an_unread_suffix_is_named_not_a_missing_image(tmp_path: Path):
    """An image that is a symbolic link to a moved file, and one of a suffix the dataset does
    not read (a .webp): both were left out of the listing, so their labels were reported as
    having "no image" while the folder showed one of that name."""
    root = _mass(tmp_path, "train", ["a", "b"])
    (root / "images/train/b.jpg").unlink()
    (root / "images/train/b.jpg").symlink_to(tmp_path / "gone.jpg")
    ds = open_split(root, "train")
    assert [s.stem for s in ds] == ["a", "b"]
    assert [p.message for p in ds.check()] == [
        f"{root / 'images/train/b.jpg'}: broken symbolic link (to {tmp_path / 'gone.jpg'})"
    ]
    _label(root / "annotations/train/w.png")
    _image(root / "images/train/w.webp")
    with pytest.raises(ValueError) as e:
        open_split(root, "train")
    assert str(e.value).endswith(
        f"for 1 label: w; {root / 'images/train'} holds w.webp, whose suffix the dataset does "
        "not read (.jpg .jpeg .png): list it in image_exts of a dataset spec (docs/foundation.md)"
    )


def test_a_folder_named_as_an_image_or_a_label_is_said_to_be_one(tmp_path: Path):
    """A folder named ``a.jpg`` among the images (or ``b.png`` among the labels) is no file, so
    it is not listed: its label was said to have an image "whose suffix the dataset does not
    read (.jpg .jpeg .png)", a .jpg, and its image just to have no label."""
    root = _mass(tmp_path, "train", ["a", "b", "c"])
    (root / "images/train/a.jpg").unlink()
    (root / "images/train/a.jpg").mkdir()
    with pytest.raises(ValueError) as e:
        open_split(root, "train")
    assert str(e.value) == (
        f"{root / 'annotations/train'}: no image in {root / 'images/train'} for 1 label: a; "
        f"{root / 'images/train/a.jpg'} is a folder, not a file"
    )
    (root / "images/train/a.jpg").rmdir()
    _image(root / "images/train/a.jpg")
    for stem in ("b", "c"):
        (root / f"annotations/train/{stem}.png").unlink()
        (root / f"annotations/train/{stem}.png").mkdir()
    with pytest.raises(ValueError) as e:
        open_split(root, "train")
    assert str(e.value) == (
        f"{root / 'images/train'}: no label in {root / 'annotations/train'} for 2 images: b, c; "
        f"{root / 'annotations/train'} holds folders named b.png, c.png, not files"
    )


def test_an_empty_image_says_so_from_its_header_too(tmp_path: Path):
    """``image_size`` (what engine fuse, annotate and info --headers-only read) said "cannot
    identify image file" of a zero-byte image, where decoding it says the file is empty."""
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError) as e:
        image_size(tmp_path / "empty.jpg")
    assert str(e.value) == f"{tmp_path / 'empty.jpg'}: the file is empty (expected an image)"


def test_an_image_and_label_named_apart_in_case_only_are_said_to_be(tmp_path: Path):
    """``IMG_1.JPG`` and ``img_1.png`` (a dataset made where names ignore case) were reported
    as an image without label and a label without image, with nothing tying the two."""
    root = _mass(tmp_path, "train", ["a", "b"], labels=["a", "img_1"])
    (root / "images/train/b.jpg").rename(root / "images/train/IMG_1.JPG")
    with pytest.raises(ValueError) as e:
        open_split(root, "train")
    assert str(e.value) == (
        f"{root / 'images/train'}: no label in {root / 'annotations/train'} for 1 image: IMG_1; "
        f"{root / 'annotations/train'} holds img_1.png: names that differ from theirs in case "
        "only (images and labels are paired by their exact names)"
    )
    with pytest.raises(ValueError) as e:  # a labeler's listing: labels not needed
        SegDataset(load_spec(root), "train", require_labels=False)
    assert str(e.value).endswith(
        f"for 1 label: img_1; {root / 'images/train'} holds IMG_1.JPG: names that differ from "
        "theirs in case only (images and labels are paired by their exact names)"
    )


def test_a_label_map_of_another_suffix_is_named_for_its_image_without_label(tmp_path: Path):
    """Label maps saved as .tif (or .bmp, .jpg) beside the images' labels: "no label for 1
    image: a" alone, while the folder showed a.tif."""
    root = _mass(tmp_path, "train", ["a", "b"], labels=["b"])
    Image.fromarray(np.full((H, W), 3, np.uint8)).save(root / "annotations/train/a.tif")
    with pytest.raises(ValueError) as e:
        open_split(root, "train")
    assert str(e.value) == (
        f"{root / 'images/train'}: no label in {root / 'annotations/train'} for 1 image: a; "
        f"{root / 'annotations/train'} holds a.tif: label maps are read from .png files only "
        "(save them as PNGs)"
    )


def test_duplicate_stems(tmp_path: Path):
    root = _mass(tmp_path, "train", ["a"])
    _image(root / "images/train/a.png")
    with pytest.raises(ValueError, match="several files share a stem: a.png"):
        open_split(root, "train")


def test_size_mismatch_names_file_and_both_sizes(tmp_path: Path):
    root = _mass(tmp_path, "train", ["a"], labels=[])
    _label(root / "annotations/train/a.png", w=W + 1, h=H)
    ds = open_split(root, "train")
    with pytest.raises(ValueError) as e:
        ds.load_pair(ds[0])
    msg = str(e.value)
    assert msg.startswith(str(root / "annotations/train/a.png"))
    assert f"label is {W + 1}x{H}" in msg and f"a.jpg is {W}x{H}" in msg
    assert [p.message for p in ds.check(decode=False)] == [msg]


def test_truncated_and_unreadable_images(tmp_path: Path):
    root = _mass(tmp_path, "train", ["good", "trunc", "junk"])
    big = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(big).save(root / "images/train/trunc.jpg")
    data = (root / "images/train/trunc.jpg").read_bytes()
    (root / "images/train/trunc.jpg").write_bytes(data[: len(data) // 2])
    (root / "images/train/junk.jpg").write_bytes(b"not an image")
    ds = open_split(root, "train")  # listing is lazy: nothing decoded yet
    with pytest.raises(ValueError, match=r"trunc.jpg: cannot decode image \(image file is trunc"):
        ds.load_image(ds[2])
    with pytest.raises(ValueError, match="junk.jpg: cannot decode image"):
        load_image(root / "images/train/junk.jpg")
    (root / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.jpg: the file is empty \(expected an image\)"):
        load_image(root / "empty.jpg")
    with pytest.raises(FileNotFoundError, match="nope.jpg: image file not found"):
        load_image(root / "nope.jpg")


def test_check_reports_every_problem(tmp_path: Path):
    root = _mass(tmp_path, "train", ["a", "b", "c", "d", "e"], labels=["a", "b", "c", "d", "x"])
    (root / "images/train/a.jpg").write_bytes(b"junk")  # unreadable image
    (root / "images/train/b.jpg").write_bytes(b"junk too")  # a second one
    _label(root / "annotations/train/c.png", w=3, h=3)  # size mismatch
    _label(root / "annotations/train/d.png", value=9)  # value outside the taxonomy
    (root / "annotations/train/a.png").write_bytes(b"broken label")  # its image is broken too
    with pytest.raises(ValueError):
        open_split(root, "train")  # strict: the first pairing problem raises
    ds = open_split(root, "train", lenient=True)
    assert [s.stem for s in ds] == ["a", "b", "c", "d"]
    seen = []
    problems = ds.check(progress=lambda: seen.append(1))
    text = [p.message for p in problems]
    assert len(seen) == 4
    assert len(text) == 7, text
    assert text[0].endswith("for 1 image: e")
    assert text[1].endswith("for 1 label: x")
    assert text[2].startswith(str(root / "images/train/a.jpg"))
    assert text[3].startswith(str(root / "annotations/train/a.png"))
    assert text[4].startswith(str(root / "images/train/b.jpg"))
    assert "label is 3x3" in text[5] and "label values 9" in text[6]
    assert [p.stem for p in problems[2:]] == ["a", "a", "b", "c", "d"]


def _exif_jpeg(path: Path, orientation: int) -> Path:
    """A 12x8 stored image whose EXIF says to rotate it; its left half is dark."""
    arr = np.full((H, W, 3), 220, np.uint8)
    arr[:, : W // 2] = 20
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, exif=exif.tobytes(), quality=95)
    return path


def test_exif_orientation_is_respected(tmp_path: Path):
    path = _exif_jpeg(tmp_path / "images/train/a.jpg", orientation=6)  # rotate 90 cw to view
    img = load_image(path)
    assert img.shape == (W, H, 3) and image_size(path) == (H, W)
    assert img[0].mean() < 80 and img[-1].mean() > 160  # the dark left half is now on top
    _label(tmp_path / "annotations/train/a.png", w=H, h=W)  # labels follow the displayed image
    ds = open_split(tmp_path, "train")
    assert ds.load_pair(ds[0])[1].shape == (W, H) and ds.check() == []
    assert image_size(_exif_jpeg(tmp_path / "b.jpg", orientation=1)) == (W, H)


def test_a_label_of_the_stored_size_of_a_turned_image_says_so(tmp_path: Path):
    """A label drawn on an EXIF-turned image's stored pixels (a tool that ignores EXIF) was
    told "label is 8x12 but its image a.jpg is 12x8", while the file's header says 8x12 too:
    the error now names the orientation. A label merely transposed, of an image without one,
    and one of another size keep the plain message."""
    _exif_jpeg(tmp_path / "images/train/a.jpg", orientation=8)  # stored 12x8, displayed 8x12
    _label(tmp_path / "annotations/train/a.png", w=W, h=H)  # the stored size
    _image(tmp_path / "images/train/b.jpg", w=H, h=W)  # 8x12, no EXIF
    _label(tmp_path / "annotations/train/b.png", w=W, h=H)
    _exif_jpeg(tmp_path / "images/train/c.jpg", orientation=6)
    _label(tmp_path / "annotations/train/c.png", w=W + 1, h=H)
    ds = open_split(tmp_path, "train")
    a, b, c = (str(p) for p in ds.check())
    assert a == (
        f"{tmp_path / 'annotations/train/a.png'}: label is {W}x{H} but its image a.jpg is "
        f"{H}x{W} (its EXIF orientation 8 turns the {W}x{H} pixels it stores): label maps "
        "follow the image as displayed, as every engine command reads it, and this one fits "
        "the pixels as stored (drawn with a tool that ignores EXIF?)"
    )
    assert b.endswith(f"label is {W}x{H} but its image b.jpg is {H}x{W}")
    assert c.endswith(f"label is {W + 1}x{H} but its image c.jpg is {H}x{W}")
    with pytest.raises(ValueError, match="EXIF orientation 8"):
        ds.load_label(ds[0], image_size(ds[0].image_path))


@pytest.mark.parametrize("orientation", [6, 8])
def test_a_turned_tiff_has_its_displayed_size_in_every_reader(tmp_path: Path, orientation):
    """Pillow's TIFF reader turns a TIFF by its orientation tag itself: its size at opening is
    already the displayed one. image_size (the header: engine fuse, train, annotate import,
    report) turned it again, so a dataset with image_exts [.tif] and a label of the displayed
    size passed engine info (which decodes) and failed engine fuse, "label is 8x12 but its
    image a.tif is 12x8 (its EXIF orientation 6 turns ...)". OpenCV (the release's reader)
    decodes it at the displayed size too."""
    import cv2

    from engine.datasets import check_sample, decoded_size

    arr = np.full((H, W, 3), 220, np.uint8)
    arr[:, : W // 2] = 20  # dark left half
    path = tmp_path / "images/train/a.tif"
    path.parent.mkdir(parents=True)
    Image.fromarray(arr).save(path, tiffinfo={0x0112: orientation}, compression="tiff_lzw")
    img = load_image(path)
    assert img.shape == (W, H, 3) and img[0 if orientation == 6 else -1].mean() < 80
    assert image_size(path) == decoded_size(path) == (H, W)
    assert cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR).shape == (W, H, 3)
    _label(tmp_path / "annotations/train/a.png", w=H, h=W)  # the displayed size
    (tmp_path / "dataset.yaml").write_text("image_exts: [.tif]\n")
    ds = open_split(tmp_path, "train")
    assert check_sample(ds[0], ds.taxonomy, decode=False)[0] == []
    assert check_sample(ds[0], ds.taxonomy)[0] == [] and ds.check() == []


def test_an_orientation_in_xmp_alone_is_not_applied_as_opencv_and_browsers_do(tmp_path: Path):
    """Pillow takes a photo's orientation from its XMP packet (``tiff:Orientation``) when its
    EXIF has none; OpenCV (the release's LoadImageFromFile) and browsers (Label Studio) read
    EXIF alone. The engine turned such a JPEG alone: its labels and exported annotations
    were in another frame than the release's and Label Studio's. An EXIF
    orientation is still applied, with or without the XMP one."""
    import cv2

    from engine.datasets import decoded_size, exif_orientation

    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        b'22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
        b'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    )
    arr = np.full((H, W, 3), 220, np.uint8)
    arr[:, : W // 2] = 20
    for fmt in ("JPEG", "WEBP"):
        path = tmp_path / f"xmp.{fmt.lower()}"
        Image.fromarray(arr).save(path, fmt, xmp=xmp)
        with Image.open(path) as img:
            assert img.getexif().get(0x0112) == 6  # as Pillow reads it
        assert cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR).shape == (H, W, 3)
        assert load_image(path).shape == (H, W, 3), fmt
        assert image_size(path) == decoded_size(path) == (W, H) and exif_orientation(path) == 1
    both = tmp_path / "both.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(both, exif=exif.tobytes(), xmp=xmp)
    assert load_image(both).shape == (W, H, 3) and image_size(both) == (H, W)
    # ImageMagick's PNG text chunk "Raw profile type exif": Pillow reads an orientation from it,
    # OpenCV and browsers do not (a PNG's EXIF is its eXIf chunk, still applied)
    from PIL import PngImagePlugin

    raw = exif.tobytes()
    text = PngImagePlugin.PngInfo()
    text.add_text("Raw profile type exif", f"\nexif\n{len(raw):8d}\n{raw.hex()}")
    Image.fromarray(arr).save(magick := tmp_path / "magick.png", pnginfo=text)
    with Image.open(magick) as img:
        assert img.getexif().get(0x0112) == 6  # as Pillow reads it
    assert cv2.imdecode(np.fromfile(magick, np.uint8), cv2.IMREAD_COLOR).shape == (H, W, 3)
    assert load_image(magick).shape == (H, W, 3) and image_size(magick) == (W, H)
    Image.fromarray(arr).save(exif_png := tmp_path / "exif.png", exif=raw)
    assert load_image(exif_png).shape == (W, H, 3) and image_size(exif_png) == (H, W)


def test_a_damaged_exif_block_prints_no_pillow_warning(tmp_path: Path):
    """A photo whose EXIF block is cut short (as some cameras and editors write it) made every
    command print Pillow's "TiffImagePlugin.py:982: UserWarning: Corrupt EXIF data" and its
    source line, naming no file. The image reads as Pillow reads it (here: no orientation)."""
    path = tmp_path / "a.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.full((H, W, 3), 100, np.uint8)).save(path, exif=exif.tobytes()[:14])
    code = (
        "import sys; from engine.datasets import load_image, image_size, decoded_size; "
        "p = sys.argv[1]; print(load_image(p).shape, image_size(p), decoded_size(p))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],  # this checkout's engine
    )
    assert res.stderr == "" and res.stdout.strip() == f"({H}, {W}, 3) ({W}, {H}) ({W}, {H})"


@pytest.mark.parametrize("flags", [(), ("-W", "error")])
def test_a_palette_image_with_transparency_reads_without_pillow_s_warning(tmp_path, flags):
    """A palette PNG with a transparent colour made load_image print Pillow's "Palette images
    with Transparency expressed in bytes should be converted to RGBA images", naming no file;
    under ``python -W error`` it stopped the command (engine predict) with Pillow's traceback.
    It reads as its colours, the transparency dropped as an RGBA photo's alpha is."""
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    img = Image.fromarray(rgb).convert("P")
    img.save(path := tmp_path / "p.png", transparency=bytes(4))
    code = (
        "import sys, numpy as np; from engine.datasets import load_image; "
        "a = load_image(sys.argv[1]); print(a.shape, a.dtype, int(a.sum()))"
    )
    res = subprocess.run(
        [sys.executable, *flags, "-c", code, str(path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],  # this checkout's engine
    )
    colours = np.asarray(img.convert("RGBA"))[..., :3]
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.strip() == f"({H}, {W}, 3) uint8 {int(colours.sum())}"


def test_image_modes_decode_to_rgb8_without_clipping(tmp_path: Path):
    """Greyscale, palette, alpha and CMYK images become RGB; a 16-bit greyscale PNG keeps its
    tones (its high byte) where Pillow's convert("RGB") clipped it to almost white."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (H, W), dtype=np.uint8)
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 16-bit PNG
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode.startswith("I")
    np.testing.assert_array_equal(load_image(tmp_path / "g16.png"), np.stack([grey] * 3, axis=2))
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png"), rgb)
    Image.fromarray(grey).save(tmp_path / "g8.png")
    np.testing.assert_array_equal(load_image(tmp_path / "g8.png"), np.stack([grey] * 3, axis=2))
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    for name in ("p.png", "cmyk.jpg"):
        img = load_image(tmp_path / name)
        assert img.shape == (H, W, 3) and img.dtype == np.uint8


def test_yaml_spec_with_other_folders_and_taxonomy(tmp_path: Path):
    root = tmp_path
    for split in ("train", "test"):
        _image(root / f"images_pad/{split}/a.jpg")
        _label(root / f"labels/fused/{split}/a.png", value=7)
    _image(root / "images/train/ignored.jpg")  # the default folder is not used
    MASS13K.with_new_class("Bicycle").save(root / "taxonomy.json")
    (root / "dataset.yaml").write_text(
        "images: images_pad/{split}\nlabels: labels/fused/{split}\ntaxonomy: taxonomy.json\n"
        "splits: [test, train, val]\nimage_exts: [jpg]\n"
    )
    spec = load_spec(root)
    assert spec.available_splits() == ["test", "train"]
    assert spec.taxonomy.names[-1] == "Bicycle" and spec.image_exts == (".jpg",)
    ds = open_split(root, "train")
    assert [s.image_path for s in ds] == [root / "images_pad/train/a.jpg"]
    assert (ds.load_pair(ds[0])[1] == 7).all() and ds.check() == []
    # the same spec passed as a file, JSON flavour, from anywhere
    spec_json = root / "other.json"
    spec_json.write_text(json.dumps({"images": "images_pad/{split}", "labels": None}))
    ds = open_split(spec_json, "test")
    assert ds[0].label_path is None and ds.check() == []


def test_a_spec_written_on_windows_reads_its_backslashes_as_separators(tmp_path: Path):
    """``images: images_pad\\{split}`` in Notepad (a BOM, CRLF): before, no split folder was
    found (``expected images_pad\\{split}, e.g. images_pad\\train``)."""
    _image(tmp_path / "images_pad/train/a.jpg")
    _label(tmp_path / "labels/fused/train/a.png", value=7)
    MASS13K.with_new_class("Bicycle").save(tmp_path / "meta/taxonomy.json")
    text = "images: images_pad\\{split}\r\nlabels: 'labels\\fused\\{split}'\r\ntaxonomy: meta\\taxonomy.json"
    (tmp_path / "dataset.yaml").write_bytes(text.encode("utf-8-sig"))
    spec = load_spec(tmp_path)
    assert spec.available_splits() == ["train"] and spec.taxonomy.names[-1] == "Bicycle"
    ds = open_split(tmp_path, "train")
    assert (ds.load_pair(ds[0])[1] == 7).all() and ds.check() == []
    # each split's folder named (the release's images_pad/ beside images/): the same
    text += "\r\nimages: {train: images_pad\\train}"
    text = text.replace("images: images_pad\\{split}\r\n", "")
    (tmp_path / "dataset.yaml").write_bytes(text.encode("utf-8-sig"))
    assert load_spec(tmp_path).available_splits() == ["train"]
    assert open_split(tmp_path, "train").check() == []


def test_a_spec_pointing_up_names_its_files_without_dotdot(tmp_path: Path):
    # a fused dataset's spec reaches the original images through "..": the samples (and so
    # every message about them) name the images' real folder
    _mass(tmp_path / "data", "train", ["a"])
    fused = tmp_path / "runs/fused/bicycle"
    _label(fused / "labels/train/a.png")
    (fused / "dataset.yaml").write_text(
        "images: ../../../data/images/{split}\nlabels: ./labels/{split}\n"
    )
    ds = open_split(fused, "train")
    assert ds[0].image_path == tmp_path / "data/images/train/a.jpg"
    assert ds[0].label_path == fused / "labels/train/a.png"
    # through a symlinked run folder ".." means the link target's parent, which holds
    # another dataset here: the path is kept as given, so it names the files really read
    target = tmp_path / "x/y/z/bicycle"
    target.parent.mkdir(parents=True)
    fused.rename(target)
    fused.symlink_to(target)
    _mass(tmp_path / "x/data", "train", ["a"])
    ds = open_split(fused, "train")
    assert ds[0].image_path == fused / "../../../data/images/train/a.jpg"
    assert ds[0].image_path.samefile(tmp_path / "x/data/images/train/a.jpg")


def test_a_split_missing_from_a_spec_pointing_up_is_named_without_dotdot(tmp_path: Path):
    """``engine info FUSED --split nope`` named ``runs/fused/bicycle/../../../data/images/nope``:
    the missing folder is named where it would be, with the splits there are."""
    _mass(tmp_path / "data", "train", ["a"])
    fused = tmp_path / "runs/fused/bicycle"
    _label(fused / "labels/train/a.png")
    (fused / "dataset.yaml").write_text(
        "images: ../../../data/images/{split}\nlabels: labels/{split}\n"
    )
    with pytest.raises(FileNotFoundError) as e:
        open_split(fused, "nope")
    assert str(e.value) == (
        f"{tmp_path / 'data/images/nope'}: split 'nope' not found; available splits: train"
    )


def test_spec_without_split_template(tmp_path: Path):
    _image(tmp_path / "photos/a.jpg")
    (tmp_path / "dataset.yml").write_text("images: photos\nlabels: null\n")
    spec = load_spec(tmp_path)
    assert spec.available_splits() == ["all"] and len(open_split(tmp_path, "all")) == 1
    assert spec.require_splits() == ["all"]
    (tmp_path / "photos/a.jpg").unlink()
    (tmp_path / "photos").rmdir()
    with pytest.raises(FileNotFoundError) as e:  # the template has no {split}: no example
        spec.require_splits()
    assert str(e.value) == f"{tmp_path}: no image split folders found (expected photos)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "images: a/{split}\nlables: b\n",
            r"unknown keys \['lables'\] \(did you mean 'labels'\?\); allowed: \[",
        ),
        ("- a\n- b\n", "must be a mapping"),
        ("images: [\n", r"dataset.yaml: cannot parse YAML \(expected .* at line 2, column 1\)"),
        ("images: 3\n", "'images' must be a folder template"),
        ("labels: ''\n", "'labels' must be a folder template .* or null"),
        ("splits: train\n", "'splits' must be a list of names"),
        ("image_exts: jpg\n", "'image_exts' must be a list"),
        ("image_exts: 3\n", "'image_exts' must be a list"),
        ("taxonomy: missing.json\n", "missing.json: taxonomy file not found"),
    ],
)
def test_spec_errors_name_the_file(tmp_path: Path, text, message):
    (tmp_path / "dataset.yaml").write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as e:
        load_spec(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_binary_spec_file_is_a_clear_error(tmp_path: Path):
    (tmp_path / "dataset.yaml").write_bytes(b"\xff\xfe\x00binary")  # UTF-16's mark, then no UTF-16
    with pytest.raises(ValueError, match=r"dataset.yaml: not UTF-8 text \(it starts with a UTF-16"):
        load_spec(tmp_path)


def test_spec_defaults_are_mass13k():
    spec = DatasetSpec(root=Path("/r"))
    assert spec.image_dir("val") == Path("/r/images/val")
    assert spec.label_dir("val") == Path("/r/annotations/val")
    assert DatasetSpec(root=Path("/r"), labels=None).label_dir("val") is None


def test_sample_without_label_refuses_load_label(tmp_path: Path):
    _image(tmp_path / "images/train/a.jpg")
    ds = SegDataset(load_spec(tmp_path), "train", require_labels=False)
    with pytest.raises(ValueError, match="a.jpg: this sample has no label file"):
        ds.load_label(ds[0])


def test_an_upright_rgb_photo_is_decoded_without_copies(tmp_path: Path, monkeypatch):
    """load_image ran ImageOps.exif_transpose and convert("RGB") on every image; each returns a
    copy when it has nothing to do: two 36 MB copies of a 4032x3024 photo, 0.2-0.3 s of a 0.6 s
    load (engine review, report, predict, the labelers' decoding). The pixels are the same."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "plain.png")
    _exif_jpeg(tmp_path / "upright.jpg", orientation=1)
    _exif_jpeg(tmp_path / "rotated.jpg", orientation=6)

    def before(path):  # load_image as it was
        with Image.open(path) as img:
            img.load()
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))

    copies = []
    real = Image.Image.copy
    monkeypatch.setattr(Image.Image, "copy", lambda self: copies.append(1) or real(self))
    for name in ("plain.png", "upright.jpg"):
        copies.clear()
        img = load_image(tmp_path / name)
        assert copies == [], name
        np.testing.assert_array_equal(img, before(tmp_path / name))
    np.testing.assert_array_equal(load_image(tmp_path / "plain.png"), rgb)
    rotated = load_image(tmp_path / "rotated.jpg")
    assert rotated.shape == (W, H, 3)
    np.testing.assert_array_equal(rotated, before(tmp_path / "rotated.jpg"))


@pytest.mark.parametrize(("value", "tag_type"), [("rational", 5), (6.0, 12), (6, 3)])
def test_an_orientation_stored_as_a_rational_or_double_turns_the_photo_as_pillow_does(
    tmp_path, value, tag_type
):
    """EXIF allows the orientation as another number type: Pillow's exif_transpose looks it up
    in a dict, so 6/1 and 6.0 are 6 and turn the photo. The engine's one reading of it had taken
    only ints (a label drawn on the turned photo then failed as a size mismatch)."""
    from PIL import Image, TiffImagePlugin

    from engine.datasets import exif_orientation, image_size, load_image

    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    ifd[0x0112] = TiffImagePlugin.IFDRational(6, 1) if value == "rational" else value
    ifd.tagtype[0x0112] = tag_type
    exif = b"Exif\x00\x00II\x2a\x00\x08\x00\x00\x00" + ifd.tobytes(8)
    path = tmp_path / "a.jpg"
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(path, "JPEG", exif=exif)
    assert load_image(path).shape == (40, 20, 3)
    assert tuple(image_size(path)) == (20, 40)
    assert exif_orientation(path) == 6


def _png(path: Path, w: int, h: int, *, text_mb: int = 0) -> Path:
    """A PNG whose header says ``w`` x ``h`` (only its first rows are stored: a bomb's header
    is what Pillow checks), with a zTXt chunk of ``text_mb`` MB of text in a few KB."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = zlib.compress(b"\0" * (1 + w) * min(h, 4))
    text = chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * (text_mb << 20), 9))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + (text if text_mb else b"")
        + chunk(b"IDAT", rows)
        + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("kind", ["bomb", "text"])
def test_an_image_pillow_refuses_is_one_line_naming_it_in_every_reader(tmp_path, kind):
    """A PNG declaring 100000x100000 pixels (Pillow's DecompressionBombError, no OSError) and
    one whose text chunk decompresses past Pillow's 1 MB limit (a ValueError) from a download:
    every reader of images, label maps and masks names the file; before, the first was a
    traceback from a PNG mask import, the second a problem naming no file in engine info."""
    from annotations.interchange import png_to_mask, read_color_codes
    from annotations.labelmap import read_label
    from engine.datasets import decoded_size, image_size, load_image

    path = (
        _png(tmp_path / "x.png", 100_000, 100_000)
        if kind == "bomb"
        else _png(tmp_path / "x.png", 8, 8, text_mb=2)
    )
    why = "decompression bomb" if kind == "bomb" else "MAX_TEXT_CHUNK"
    readers = [
        load_image,
        decoded_size,
        image_size,
        read_label,
        read_color_codes,
        lambda p: png_to_mask(p, {"x": (8, 8)}),
    ]
    for read in readers:
        with pytest.raises(ValueError) as e:
            read(path)
        assert str(e.value).startswith(f"{path}: cannot ") and why in str(e.value), e.value
        assert "\n" not in str(e.value)


def test_a_legitimately_large_photo_is_read_and_a_mask_of_the_wrong_size_is_not_decoded(
    tmp_path, monkeypatch
):
    """Pillow's own limit is raised to 300 MP for every command (engine.datasets): a 64 MP
    photo, over Pillow's default 89 MP warning no, reads; a PNG mask whose header says another
    size than its image is refused before its pixels are decoded (a 20000x20000 mask took
    2.9 s and 400 MB to be told it was the wrong size)."""
    from annotations.interchange import png_to_mask

    assert Image.MAX_IMAGE_PIXELS == 300_000_000
    assert image_size(_png(tmp_path / "big.png", 9248, 6936)) == (9248, 6936)  # 64 MP
    big = _png(tmp_path / "img001.png", 20_000, 20_000)
    monkeypatch.setattr(np, "asarray", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(ValueError, match="is 20000x20000 in the annotation but 8x8"):
        png_to_mask(big, {"img001": (8, 8)})


@pytest.mark.parametrize(
    "text, hint",
    [
        ("labels: x\nimages: {split}/photos   # the photos\n", "images: '{split}/photos'"),
        ("images: {split}   # the photos\n", "images: '{split}'"),  # parsed: {'split': None}
        ("# images: {split}/x was the old layout\nfoo: [1, 2\n", None),  # a comment
        ("images: '{split}/x'\nlabels: {split}\nfoo: [1, 2\n", None),  # not the line at fault
    ],
)
def test_the_quote_hint_reads_past_yaml_comments(tmp_path: Path, text: str, hint: str | None):
    """The "quote the value" hint took a trailing comment into the value it said to write
    (`images: '{split}/photos   # the photos'`), and was given for a commented-out line and
    for a file whose error was on another line."""
    f = tmp_path / "dataset.yaml"
    f.write_text(text)
    with pytest.raises(ValueError) as e:
        load_spec(f)
    if hint is None:
        assert "quote the value" not in str(e.value)
    else:
        assert str(e.value).endswith(
            f"; quote the value: {hint} (unquoted, YAML reads {{...}} as a mapping)"
        )


@pytest.mark.parametrize(
    "fused, reads",
    [(["Bicycle", "Car"], 0), (["Car"], 1)],
    ids=["fused_in_one_call", "car_fused_onto_bicycle"],
)
def test_carried_sources_are_read_only_where_a_class_was_fused_before(
    tmp_path, monkeypatch, fused, reads
):
    """check_carried_sources (training's check of a class fused onto a fused dataset) reads no
    label of a dataset whose fuse.json fused every new class in one call: there is no class
    fused before to check (13K label reads at every training start otherwise); with Car fused
    onto Bicycle it reads the first image, which holds Bicycle, and stops there."""
    import engine.datasets.fused as datasets

    root = _mass(tmp_path, "train", ["a", "b"])
    MASS13K.with_new_class("Bicycle").with_new_class("Car").save(root / "taxonomy.json")
    (root / "dataset.yaml").write_text("taxonomy: taxonomy.json\n")
    inputs = {"pseudo": [{"class": c} for c in fused]}
    (root / "fuse.json").write_text(json.dumps({"status": "complete", "inputs": inputs}))
    for s in "ab":
        _label(root / "annotations/train" / f"{s}.png", value=7)  # Bicycle everywhere
        _label(root / "sources/train" / f"{s}.png", value=1)  # pseudo: as fusion writes it
    read = []
    real = datasets.read_sample_label
    monkeypatch.setattr(
        datasets, "read_sample_label", lambda s, t: read.append(s.stem) or real(s, t)
    )
    datasets.check_carried_sources(open_split(root, "train"), root / "sources/train")
    assert read == ["a"][:reads]


def test_a_synth_that_finishes_between_the_two_looks_is_no_unfinished_synth(
    tmp_path: Path, monkeypatch
):
    """synth.partial.json found, then engine synth finishes (unlinks it under its lock, frees
    the lock) before the lock is asked: nothing is unfinished; before, a reader was refused as
    of a synth "stopped before its last scene" that had just finished."""
    import engine.runlock
    from engine.datasets import SYNTH_UNFINISHED, DatasetSpec

    (tmp_path / "images/train").mkdir(parents=True)
    partial = tmp_path / SYNTH_UNFINISHED
    partial.write_text("{}")

    def finished(folder):  # the synth's last scene and its unlink, between the two looks
        partial.unlink(missing_ok=True)

    monkeypatch.setattr(engine.runlock, "writer", finished)
    assert DatasetSpec(tmp_path).unfinished_synth() is None
    DatasetSpec(tmp_path).check_finished("engine label")  # not refused
