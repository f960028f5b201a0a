"""Review gallery: overlays, page content, and a real headless-Chromium render."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from annotations.labelmap import write_label
from annotations.subset import write_subset
from engine.review import PSEUDO_COLOR, ReviewConfig, build_review, overlay
from tests.loop_helpers import disk, make_dataset, make_run, run_killed

H, W = 150, 200


# -- overlay -----------------------------------------------------------------------------------
def test_overlay_thumbnail_size_for_4k():
    img = np.zeros((3024, 4032, 3), np.uint8)
    assert overlay(img, None, PSEUDO_COLOR).shape == (384, 512, 3)
    assert overlay(np.zeros((4032, 3024, 3), np.uint8), None, PSEUDO_COLOR).shape == (512, 384, 3)
    assert overlay(np.zeros((100, 80, 3), np.uint8), None, PSEUDO_COLOR).shape == (
        100,
        80,
        3,
    )  # no upscale


@pytest.mark.parametrize(
    "fill,expect_tinted,expect_magenta",
    [
        (0, False, False),
        (1, True, False),
        (255, False, True),
    ],  # class absent, all class, all ignore
)
def test_overlay_tints(fill, expect_tinted, expect_magenta):
    img = np.full((64, 64, 3), 100, np.uint8)
    out = overlay(img, np.full((64, 64), fill, np.uint8), (255, 0, 0), 32).astype(int)
    assert (out[8, 8, 0] > 150 and out[8, 8, 2] < 100) == expect_tinted
    assert (out[8, 8, 2] > 150) == expect_magenta
    if fill == 0:
        assert np.array_equal(out, np.full((32, 32, 3), 100))


def test_overlay_thin_structure_stays_visible():
    img = np.zeros((400, 400, 3), np.uint8)
    m = np.zeros((400, 400), np.uint8)
    m[:, 200] = 1  # a one-pixel spoke, shrunk 4x
    out = overlay(img, m, (255, 0, 0), 100)
    assert out[:, 50, 0].min() > 0


def test_overlay_of_a_4k_photo_outlines_every_one_pixel_spoke():
    """A 4032x3024 photo's thumbnail is 7.875 times smaller: the outline came from a
    nearest-neighbour sample of the mask, which kept a one-pixel spoke or lost it by where it
    fell (three spokes of eight shown); now every thumbnail pixel holding a class pixel is
    outlined, in the class's colour, at the spoke's place."""
    img = np.full((3024, 4032, 3), 128, np.uint8)
    m = np.zeros((3024, 4032), np.uint8)
    spokes = [1000 + 71 * k for k in range(8)]  # every phase of a thumbnail pixel
    for x in spokes:
        m[500:2500, x] = 1
    out = overlay(img, m, (255, 0, 0), 512)
    assert out.shape == (384, 512, 3)
    for x in spokes:
        column = x * 512 // 4032
        assert (out[190, column] == (255, 0, 0)).all(), (x, out[190, column - 1 : column + 2])
    assert (out[190, spokes[0] * 512 // 4032 - 2] == 128).all()  # beside it, the photo


def test_overlay_size_mismatch():
    with pytest.raises(ValueError, match="mask is 10x10 but the image is 20x20"):
        overlay(np.zeros((20, 20, 3), np.uint8), np.zeros((10, 10), np.uint8), PSEUDO_COLOR)


def test_overlay_enlarged_to_a_size_shows_label_pixels_as_blocks():
    """``size`` enlarges pixel by pixel (a report's detail row): a one-pixel spoke is a 3 px
    band at 3x, no blur, and the image keeps its pixels too."""
    img = np.zeros((10, 12, 3), np.uint8)
    img[:, 6:] = 200
    m = np.zeros((10, 12), np.uint8)
    m[:, 3] = 1
    out = overlay(img, m, (255, 0, 0), size=(36, 30)).astype(int)
    assert out.shape == (30, 36, 3)
    tinted = out[15, :, 0] > out[15, :, 1]
    assert np.flatnonzero(tinted).tolist() == [9, 10, 11]
    assert set(out[15, 18:, 1].tolist()) == {200}  # the bright half, untouched and unblurred


def test_detail_window_finds_the_densest_outlines():
    """The window holds the most outline pixels of the class: a wheel of thin spokes beats a
    larger solid blob, whose outline is shorter; it keeps the image's aspect and stays inside."""
    from engine.outputs import detail_window

    h, w = 300, 400
    m = np.zeros((h, w), np.uint8)
    m[40:200, 20:180] = 1  # a big solid blob: 640 outline pixels
    for k in range(12):  # spokes around (240, 340): 12 lines, both sides outline
        t = np.linspace(0, 40, 80)
        a = k * np.pi / 12
        m[(240 + t * np.sin(a)).astype(int) % h, (340 + t * np.cos(a)).astype(int) % w] = 1
    x0, y0, x1, y1 = detail_window(m, 100)
    assert (x1 - x0, y1 - y0) == (100, 75)
    assert x0 >= 0 and x1 <= w and y0 >= 0 and y1 <= h
    assert x0 <= 340 < x1 and y0 <= 240 < y1  # on the wheel, not on the blob
    assert detail_window(np.zeros((h, w), np.uint8), 100) is None
    assert detail_window(m, 1000) == (0, 0, w, h)  # never wider than the image
    m[:] = 255  # unannotated everywhere: no class outline
    assert detail_window(m, 100) is None


# -- page --------------------------------------------------------------------------------------
@pytest.fixture()
def gallery(tmp_path):
    data = tmp_path / "data"
    make_dataset(data, "test", n=3, size=(H, W), grey=True)
    per_image = {
        "img000": [disk(H, W, 75, 60, 40)],
        "img001": [disk(H, W, 30, 30, 8), disk(H, W, 100, 150, 30)],
        "img002": [],
    }
    run = tmp_path / "run"
    make_run(run, data, per_image, (H, W), confidences={"img000": 240, "img001": 60})
    pred = tmp_path / "pred"
    lab = np.zeros((H, W), np.uint8)
    lab[:, :50] = 7
    lab[:, 50:] = 4
    write_label(pred / "test" / "img000.png", lab)
    gt = tmp_path / "subset"
    write_label(gt / "masks" / "img001.png", disk(H, W, 100, 150, 30).astype(np.uint8))
    res = build_review(ReviewConfig(str(run), pred=str(pred), pred_class_id=7, gt=str(gt)))
    return res


def test_page_sorted_lowest_confidence_first(gallery):
    text = gallery.index.read_text()
    stems = re.findall(r'data-stem="(\w+)"', text)
    assert stems == ["img001", "img000", "img002"]  # 60/255, 240/255, nothing labelled
    assert gallery.images == 3 and gallery.with_pred == 1 and gallery.with_gt == 1
    assert "simulated labeler" in text and "2 instances (0 tiny)" in text
    assert "http" not in text  # no external asset
    for src in re.findall(r'src="([^"]+)"', text):
        thumb = gallery.index.parent / src
        assert thumb.is_file()
        with Image.open(thumb) as img:
            assert max(img.size) == W  # small source: not upscaled
    # the gallery's record: its settings, counts and environment, as every command writes one
    record = json.loads((gallery.index.parent / "review.json").read_text())
    assert record["images"] == 3 and record["with_annotation"] == 1 and record["failed"] == []
    assert record["config"]["pred_class_id"] == 7 and "packages" in record["environment"]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_sorting_by_confidence_either_way_keeps_unreadable_first_and_unlabelled_last(gallery):
    """The page's buttons re-sort by confidence. An image with nothing labelled (no confidence)
    and a card that could not be read, which the page shows first, both carried
    ``data-conf="2"``: "confidence ↓" put the unlabelled image before every confidence, and
    either button moved the unreadable card to the end, away from where the page has it. Now
    the unreadable stay first and the unlabelled last, both ways (the page's own script, run
    in node on the page's cards)."""
    run = gallery.index.parent.parent
    (run / "confidence" / "test" / "img000.png").write_bytes(b"not a png")  # its card fails
    res = build_review(ReviewConfig(str(run), progress=False))
    text = res.index.read_text()
    cards = [
        dict(re.findall(r'data-(\w+)="([^"]*)"', attrs))
        for attrs in re.findall(r'<div class="card"([^>]*)>', text)
    ]
    assert [c["stem"] for c in cards] == ["img000", "img001", "img002"]
    script = re.search(r"<script>(.*?)</script>", text, re.S).group(1)
    harness = (
        "const out=[];const box={children:CARDS.map(d=>({dataset:d})),"
        "appendChild(c){out.push(c.dataset.stem)}};"
        "const document={getElementById:()=>box};const window={addEventListener(){}};"
        + script
        + ";for(const dir of [1,-1]){out.length=0;sortCards('conf',dir);console.log(out.join())}"
    )
    node = subprocess.run(
        ["node", "-e", harness.replace("CARDS", json.dumps(cards))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert node.returncode == 0, node.stderr
    assert node.stdout.split() == ["img000,img001,img002", "img000,img001,img002"]


def test_pred_with_many_ids_needs_class_id(tmp_path, gallery):
    run = gallery.index.parent.parent
    with pytest.raises(ValueError, match="--pred-class-id"):
        build_review(ReviewConfig(str(run), out=str(tmp_path / "g"), pred=str(tmp_path / "pred")))


def test_pred_class_id_without_pred_is_refused(tmp_path, gallery):
    run = gallery.index.parent.parent
    with pytest.raises(ValueError, match="give --pred too"):
        build_review(ReviewConfig(str(run), out=str(tmp_path / "g"), pred_class_id=7))


def test_a_pred_folder_without_the_class_id_given_is_said(tmp_path, gallery, caplog):
    """``--pred-class-id`` is one id for every ``--pred`` folder: a folder of 0/1 maps given 7
    drew its panels empty and scored IoU 0.00 without a word. Now a warning names the folder
    and the ids its maps hold; a folder that holds the id, or nothing but 0 (a model that found
    nothing there), says nothing."""
    run = gallery.index.parent.parent
    binary, empty = tmp_path / "binary", tmp_path / "empty"
    lab = np.zeros((H, W), np.uint8)
    lab[:, :50], lab[0, 0] = 1, 255
    write_label(binary / "test" / "img000.png", lab)
    write_label(empty / "test" / "img000.png", np.zeros((H, W), np.uint8))
    pred = [str(tmp_path / "pred"), str(binary), str(empty)]
    tail = "is the new class another id there? Its panels show none of it and score IoU 0.00"
    for out, class_id, folder, held in (
        ("g", 7, binary, "id 1"),
        ("h", 4, binary, "id 1"),
        ("i", 1, tmp_path / "pred", "ids 4, 7"),
    ):
        caplog.clear()
        with caplog.at_level("WARNING"):
            cfg = ReviewConfig(str(run), out=str(tmp_path / out), pred=pred, pred_class_id=class_id)
            build_review(cfg)
        said = [r.getMessage() for r in caplog.records if "--pred-class-id" in r.getMessage()]
        want = f"{folder}: no prediction map shown holds --pred-class-id {class_id}, but they hold"
        assert said == [f"{want} {held}: {tail}"], class_id


def test_a_gt_or_pred_folder_not_found_is_refused(tmp_path, gallery):
    """A mistyped --gt or --pred folder is named, before any card is drawn: not a gallery
    without the annotation's or prediction's panels."""
    run = gallery.index.parent.parent
    for opt in ("gt", "pred"):
        missing = tmp_path / f"no-{opt}"
        with pytest.raises(FileNotFoundError) as e:
            build_review(ReviewConfig(str(run), out=str(tmp_path / "g"), **{opt: str(missing)}))
        assert str(e.value) == f"{missing}: folder given with --{opt} not found"
    assert not (tmp_path / "g").exists()


def test_missing_images_is_clear(tmp_path, gallery):
    run = gallery.index.parent.parent
    empty = tmp_path / "elsewhere"
    (empty / "images" / "test").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="pass the dataset root with --data"):
        build_review(ReviewConfig(str(run), out=str(tmp_path / "g"), data=str(empty)))


def test_0_255_masks_as_gt_are_refused(tmp_path, gallery):
    """A plain folder of 0/255 masks would be read as "no class, all unannotated" and every
    card's scores would measure nothing."""
    run = gallery.index.parent.parent
    gt = tmp_path / "g255"
    write_label(gt / "img001.png", disk(H, W, 100, 150, 30).astype(np.uint8) * 255)
    with pytest.raises(ValueError, match="are these 0/255 masks"):
        build_review(ReviewConfig(str(run), out=str(tmp_path / "g"), gt=str(gt)))
    write_label(gt / "img000.png", disk(H, W, 75, 60, 40).astype(np.uint8))  # one marks it
    assert build_review(ReviewConfig(str(run), out=str(tmp_path / "g"), gt=str(gt))).with_gt == 2


def test_a_run_labelled_from_another_folder_finds_its_dataset_or_says_what_to_do(
    tmp_path, gallery, monkeypatch
):
    """run.json keeps the dataset root as typed and as it resolved when labelling: review
    from another working directory finds it; when it is gone too, the error names run.json
    and --data."""
    import json

    run = gallery.index.parent.parent
    doc = json.loads((run / "run.json").read_text())
    doc["config"]["data"], doc["data_resolved"] = "data", str(tmp_path / "data")
    (run / "run.json").write_text(json.dumps(doc))
    monkeypatch.chdir(run)  # no ./data here
    assert build_review(ReviewConfig(str(run), out=str(tmp_path / "g"))).images == 3
    doc["data_resolved"] = str(tmp_path / "moved")
    (run / "run.json").write_text(json.dumps(doc))
    with pytest.raises(FileNotFoundError, match=r"run\.json: its dataset root data is not found "
                       r"from here, nor beside the run where it was; pass the dataset root "
                       r"with --data"):  # fmt: skip
        build_review(ReviewConfig(str(run), out=str(tmp_path / "g2")))


def test_a_run_moved_with_its_dataset_finds_it_beside_itself(tmp_path, monkeypatch):
    """A project folder (dataset and runs) renamed, or copied to another machine, with the run
    labelled from a working directory beside both (``--data "../d s'1 é" --out ../runs/...``):
    the path as typed and the absolute one are both gone, the dataset is where it was beside
    the run. Before, review (and export, info) said it was not found and asked for --data."""
    from engine.info import label_run_stats, render_label_run

    project = tmp_path / "project"
    make_dataset(project / "d s'1 é", n=2, size=(H, W))
    run = project / "runs" / "label 中"
    make_run(run, project / "d s'1 é", {"img000": [disk(H, W, 75, 60, 40)], "img001": []}, (H, W))
    doc = json.loads((run / "run.json").read_text())
    doc["config"]["data"], doc["config"]["out"] = "../d s'1 é/", "../runs/label 中"
    doc["data_resolved"] = str(project / "d s'1 é")
    (run / "run.json").write_text(json.dumps(doc))
    moved = tmp_path / "mounted é" / "elsewhere"
    moved.parent.mkdir()
    project.rename(moved)
    monkeypatch.chdir(tmp_path)  # where "../d s'1 é/" is not the dataset's place
    here = "mounted é/elsewhere/runs/label 中"
    res = build_review(ReviewConfig(here, out=str(tmp_path / "g")))
    assert res.images == 2
    stats = label_run_stats(here)
    assert stats.data_root is not None and stats.data_root.resolve() == moved / "d s'1 é"
    assert stats.splits["test"].pending is not None  # found: counted (no manifest), not "?"
    shutil.rmtree(moved / "d s'1 é")  # gone: info says why "not yet" is "?"
    lines = [x for x in render_label_run(label_run_stats(here)) if isinstance(x, str)]
    assert lines[-1] == (
        "not yet: unknown, its dataset ../d s'1 é (run.json) is not found from here, nor beside "
        "the run where it was: the same engine label command with --data at its new place "
        "records it"
    )


@pytest.mark.parametrize("typed", ["relative", "absolute"])
def test_a_copy_of_a_project_reads_its_own_dataset_while_the_original_exists(
    tmp_path, monkeypatch, typed
):
    """A project copied (``cp -r``, ``cp -a``) to experiment, one image replaced in the copy, the
    original kept: the copy's run and fused dataset read the original's dataset, whose absolute
    path (``data_resolved``, fuse.json's ``inputs.data``; the path as typed too when absolute)
    still existed. Review showed the original's image, ``engine info`` suggested
    ``engine fuse --data <the original's dataset>``. Now an output no longer where it was
    recorded reads the dataset beside it; the original reads its own as before."""
    from annotations.fileio import fused_source
    from engine.info import label_run_stats

    project = tmp_path / "project"
    make_dataset(project / "data", n=2, size=(H, W))
    run = project / "runs" / "label" / "bicycle"
    make_run(run, project / "data", {"img000": [disk(H, W, 75, 60, 40)], "img001": []}, (H, W))
    at = f"{project}/" if typed == "absolute" else ""
    doc = json.loads((run / "run.json").read_text())
    doc["config"]["data"], doc["config"]["out"] = f"{at}data", f"{at}runs/label/bicycle"
    doc["data_resolved"] = str(project / "data")
    (run / "run.json").write_text(json.dumps(doc))
    fused = {"config": {"data": f"{at}data", "out": f"{at}runs/fused/bicycle"},
             "inputs": {"data": str(project / "data")}}  # fmt: skip
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    (copy / "data" / "images" / "test" / "img001.jpg").write_bytes(b"not a jpeg")  # replaced
    monkeypatch.chdir(tmp_path)  # neither project's root: "data" names nothing here
    for where, failed in ((copy, ["test/img001"]), (project, [])):
        here = where / "runs" / "label" / "bicycle"
        res = build_review(ReviewConfig(str(here), out=str(where / "g")))
        assert [f.split(":")[0] for f in res.failed] == failed, res.failed
        stats = label_run_stats(here)
        assert stats.data_root is not None and stats.data_root.resolve() == where / "data"
        # engine info's dataset row and its "next: engine fuse --data ..." name this one
        found = fused_source(fused, where / "runs" / "fused" / "bicycle")
        assert found is not None and found.resolve() == where / "data"


def test_cli_review(gallery):
    from typer.testing import CliRunner

    from cli import app

    run = gallery.index.parent.parent
    res = CliRunner().invoke(app, ["review", str(run), "--out", str(run / "r2"), "--limit", "2"])
    assert res.exit_code == 0, res.output
    assert "img/s" in res.output  # its progress bar
    # cut by --limit: said on the terminal as on the page; before, "review of 2 images" alone
    assert "review of 2 of 3 images (--limit 2) (0 with prediction" in res.output, res.output
    res = CliRunner().invoke(app, ["review", str(run), "--out", str(run / "r2"), "--limit", "0"])
    assert res.exit_code == 0 and "review of 3 images (0 with prediction" in res.output
    quiet = ["review", str(run), "--out", str(run / "r2"), "--limit", "2", "--no-progress"]
    res = CliRunner().invoke(app, quiet)
    assert res.exit_code == 0 and "img/s" not in res.output
    other = run.parent / "other"  # predictions of no reviewed image: said, not silent
    write_label(other / "zzz.png", np.zeros((H, W), np.uint8))
    res = CliRunner().invoke(app, [*quiet, "--pred", str(other), "--pred-class-id", "1"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and f"note: no reviewed image has a file in --pred {other}" in text
    res = CliRunner().invoke(app, [*quiet, "--split", "val"])
    assert res.exit_code == 2 and "no labelled images to review in split 'val'" in res.output
    assert "(splits: test)" in " ".join(res.output.split())  # as text, not a Python list
    pred = str(run.parent / "pred")  # --pred repeats: a panel per folder
    args = ["review", str(run), "--out", str(run / "r3"), "--pred", pred, "--pred", pred]
    res = CliRunner().invoke(app, [*args, "--pred-class-id", "7"])
    assert res.exit_code == 0, res.output
    assert "(1 with prediction, 0 with annotation)" in res.output
    assert (run / "r3" / "thumbs" / "test__img000_pred2.jpg").is_file()


# -- real browser ------------------------------------------------------------------------------
def _browser() -> tuple[str | None, str]:
    """A working Chromium/Chrome binary, or None and why not."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            try:
                v = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as e:
                return None, f"{path} does not run ({e})"
            if v.returncode != 0:
                return None, f"{path} --version failed (a snap stub without snapd?)"
            return path, ""
    return None, "no Chromium/Chrome on PATH (install Debian's `chromium` to run this test)"


def _chromium(browser, tmp_path, *args):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


def test_each_card_shows_its_densest_outlines_enlarged(tmp_path, gallery):
    """Below an image's panels, the same panels of the window where the annotation's outlines
    are densest (else the pseudo label's), a quarter of the image's width: 4x here, a 4K
    photo's own pixels at the default 512 px thumbnails; boxed in white above. An image
    without the class has none; ``detail=False`` draws none."""
    out = gallery.index.parent
    text = gallery.index.read_text()
    details = re.findall(r'<img src="(thumbs/[^"]+_detail\.jpg)" alt="([^"]+)"', text)
    assert [rel for rel, _ in details] == [
        "thumbs/test__img001_pseudo_detail.jpg",
        "thumbs/test__img001_gt_detail.jpg",
        "thumbs/test__img000_pseudo_detail.jpg",
        "thumbs/test__img000_pred_detail.jpg",
    ]
    assert details[0][1] == "pseudo label: the white box at 4x"
    for rel, _ in details:  # the thumbnail's size, a quarter of the image enlarged
        with Image.open(out / rel) as img:
            assert img.size == (W, H)
    assert '<div class="break"></div>' in text  # the details on a row of their own
    run = out.parent
    plain = build_review(
        ReviewConfig(
            str(run), out=str(tmp_path / "plain"), gt=str(tmp_path / "subset"), detail=False
        )
    )
    assert "_detail.jpg" not in plain.index.read_text()
    assert not list((tmp_path / "plain" / "thumbs").glob("*_detail.jpg"))
    boxed, unboxed = (
        np.asarray(Image.open(d / "thumbs" / "test__img001_gt.jpg")).astype(int)
        for d in (out, tmp_path / "plain")
    )
    ys, xs = np.nonzero(np.abs(boxed - unboxed).max(axis=2) > 60)  # the white box's outline
    size = np.array([xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
    assert np.abs(size - [W // 4, round(W // 4 * H / W)]).max() <= 1  # JPEG's ringing: 1 px


def test_page_renders_in_headless_chromium(tmp_path, gallery):
    browser, why = _browser()
    if browser is None:
        pytest.skip(why)
    url = gallery.index.resolve().as_uri()
    dom = _chromium(browser, tmp_path, "--dump-dom", url).stdout
    m = re.search(r'data-images-loaded="(\d+)" data-images-total="(\d+)"', dom)
    assert m, "the page's load script did not run"
    # 3 pseudo + 1 prediction + 1 annotation, and the details of the 2 images with the class
    assert int(m.group(1)) == int(m.group(2)) == 5 + 4
    shot = tmp_path / "shot.png"
    _chromium(browser, tmp_path, "--window-size=1000,800", f"--screenshot={shot}", url)
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert rgb.std() > 20  # not blank
    # the images are grey; yellow (pseudo label) tint only appears where overlays rendered
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    assert PSEUDO_COLOR[2] == 0
    tint = (r - b > 80) & (g - b > 50)
    assert tint.sum() > 2000


def test_pred_class_id_from_predict_json(tmp_path, gallery):
    import json

    from annotations.taxonomy import MASS13K

    run = gallery.index.parent.parent
    tax = MASS13K.with_new_class("Bicycle")
    (tmp_path / "pred" / "test" / "predict.json").write_text(
        json.dumps({"config": {"scales": [1], "flip": False}, "taxonomy": tax.to_dict()})
    )
    res = build_review(
        ReviewConfig(str(run), out=str(tmp_path / "g2"), pred=str(tmp_path / "pred" / "test"))
    )
    assert res.with_pred == 1


def test_pred_of_a_model_without_the_class_is_refused(tmp_path, gallery):
    """A 7-class model's predictions (the demo's predict/test_start) have no Bicycle: their
    Human (1) must not be drawn as Bicycle on a map holding only 0 and 1, and the error says
    which taxonomy lacks the class instead of asking for an id that does not exist."""
    import json

    from annotations.taxonomy import MASS13K

    run = gallery.index.parent.parent
    start = tmp_path / "start"
    lab = np.zeros((H, W), np.uint8)
    lab[:, :50] = 1  # Human, in a 7-class model's map
    write_label(start / "img000.png", lab)
    (start / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": MASS13K.to_dict()}))
    with pytest.raises(ValueError, match=r"predict.json: Others, .*has no class 'Bicycle'"):
        build_review(ReviewConfig(str(run), out=str(tmp_path / "g3"), pred=str(start)))
    assert not (tmp_path / "g3").exists()


def test_pred_of_a_fused_dataset_s_split_reads_its_taxonomy(tmp_path, gallery):
    """A fused dataset's ``labels/test`` as --pred (Car 7, Bicycle 8): its ``taxonomy.json``
    two folders above the files gives Bicycle's id, as engine compare and report find it.
    Before, only the folder and its parent were looked at, and the error asked for
    --pred-class-id."""
    from annotations.taxonomy import MASS13K

    run = gallery.index.parent.parent
    fused = tmp_path / "fused"
    MASS13K.with_new_class("Car").with_new_class("Bicycle").save(fused / "taxonomy.json")
    lab = np.zeros((H, W), np.uint8)
    lab[:, :50] = 7
    lab[:, 50:] = 8
    write_label(fused / "labels" / "test" / "img000.png", lab)
    cfg = ReviewConfig(str(run), out=str(tmp_path / "g4"), pred=str(fused / "labels" / "test"))
    assert build_review(cfg).with_pred == 1


# -- several predictions, scores against the annotation ---------------------------------------
def _predict_json(folder, **config):
    import json

    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"scales": [1], "flip": False, "guided_filter": False} | config
    (folder / "predict.json").write_text(json.dumps({"config": cfg}))


def test_several_predictions_are_panels_named_by_their_inference(tmp_path, gallery):
    run = gallery.index.parent.parent
    plain, refined = tmp_path / "p" / "test", tmp_path / "p" / "test_gf"
    _predict_json(plain)
    _predict_json(refined, guided_filter=True, gf_guide="rgb", gf_eps=1e-4)
    write_label(plain / "img001.png", disk(H, W, 100, 150, 25).astype(np.uint8))
    write_label(refined / "img001.png", disk(H, W, 100, 150, 29).astype(np.uint8))
    write_label(refined / "img000.png", np.zeros((H, W), np.uint8))
    gt = str(tmp_path / "subset")
    res = build_review(
        ReviewConfig(str(run), out=str(tmp_path / "g"), pred=[plain, refined], gt=gt)
    )
    assert res.with_pred == 2  # images with at least one prediction
    text = res.index.read_text()
    assert "<figcaption>prediction<br>" in text  # img001 is annotated: scored
    assert "<figcaption>prediction + guided filter<br>" in text
    assert "<figcaption>prediction + guided filter</figcaption>" in text  # img000: no annotation
    for thumb in ("test__img001_pred.jpg", "test__img001_pred2.jpg", "test__img000_pred2.jpg"):
        assert (tmp_path / "g" / "thumbs" / thumb).is_file()
    assert not (tmp_path / "g" / "thumbs" / "test__img000_pred.jpg").exists()


def test_same_inference_twice_is_told_apart_by_folder(tmp_path, gallery):
    run = gallery.index.parent.parent
    a, b = tmp_path / "model_a", tmp_path / "model_b"
    for d in (a, b):
        write_label(d / "img001.png", disk(H, W, 100, 150, 25).astype(np.uint8))
    text = build_review(ReviewConfig(str(run), out=str(tmp_path / "g"), pred=[str(a), str(b)]))
    html_text = text.index.read_text()
    assert "prediction (model_a)" in html_text and "prediction (model_b)" in html_text


def test_annotated_images_are_scored_per_panel(gallery):
    """img001: pseudo label = disks r30 + r8, annotation = the r30 disk alone; IoU counted here
    by hand, the boundary scores are the report's functions on this one pair."""
    from engine.metrics import binary_class_scores

    text = gallery.index.read_text()
    gt = disk(H, W, 100, 150, 30).astype(np.uint8)
    pseudo = (disk(H, W, 30, 30, 8) | disk(H, W, 100, 150, 30)).astype(np.uint8)
    iou = 100 * (gt & pseudo).sum() / (gt | pseudo).sum()
    ref = binary_class_scores(pseudo, gt)
    assert abs(ref.iou - iou) < 1e-9
    want = f"IoU {iou:.2f} &middot; BIoU {ref.biou:.2f} &middot; BF1 {ref.bf1:.4f}"
    card = re.search(r'<div class="card"[^>]*data-stem="img001">.*?</div></div>', text).group(0)
    assert f'<figcaption>pseudo label<br><span class="score">{want}</span>' in card
    assert f'data-iou="{iou:.4f}"' in card
    # img000 has a prediction but no annotation: unscored, sorted after every scored image
    card0 = re.search(r'<div class="card"[^>]*data-stem="img000">.*?</div></div>', text).group(0)
    assert 'data-iou="101.0000"' in card0 and "score" not in card0.split("</p>", 1)[1]
    assert "sortCards('iou',1)" in text and "against the annotation" in text


def test_unannotated_gallery_has_no_score_sort(tmp_path, gallery):
    run = gallery.index.parent.parent
    text = build_review(ReviewConfig(str(run), out=str(tmp_path / "g"))).index.read_text()
    assert "sortCards('iou'" not in text and 'class="score"' not in text


def test_prediction_of_another_size_than_its_annotation_is_named(tmp_path, gallery):
    run = gallery.index.parent.parent
    bad = tmp_path / "bad"
    write_label(bad / "img001.png", np.zeros((H // 2, W // 2), np.uint8))
    gt = tmp_path / "subset"
    res = build_review(ReviewConfig(str(run), out=str(tmp_path / "g"), pred=str(bad), gt=str(gt)))
    assert len(res.failed) == 1
    assert re.fullmatch(r"test/img001: .*bad/img001\.png: is 100x75 but .*", res.failed[0])


def test_an_unreadable_image_is_a_card_that_says_so_not_a_failed_gallery(tmp_path, gallery):
    from typer.testing import CliRunner

    from cli import app

    run = gallery.index.parent.parent
    image = tmp_path / "data" / "images" / "test" / "img000.jpg"
    image.write_bytes(image.read_bytes()[:400])
    res = build_review(ReviewConfig(str(run), out=str(tmp_path / "g")))
    assert res.images == 3 and len(res.failed) == 1
    assert res.failed[0].startswith(f"test/img000: {image}: cannot decode image")
    text = res.index.read_text()
    card = re.search(r'<div class="card"[^>]*data-stem="img000">.*?</div></div>', text).group(0)
    assert "could not be shown: " in card and "<img" not in card
    other = re.search(r'<div class="card"[^>]*data-stem="img001">.*?</div></div>', text).group(0)
    assert "<img" in other  # its neighbours are shown
    out = CliRunner().invoke(
        app, ["review", str(run), "--out", str(tmp_path / "g2"), "--no-progress"]
    )
    assert out.exit_code == 1
    lines = " ".join(out.output.split())
    assert (
        "review of 3 images" in lines
        and "1 image could not be shown (each card says why):" in lines
    )
    assert f"test/img000: {image}: cannot decode image" in lines
    # the failures on stderr, as every command lists them: `engine review ... > out.txt` hid them
    assert "could not be shown" in out.stderr and "cannot decode" not in out.stdout


def test_a_subset_of_another_class_is_refused(tmp_path, gallery):
    """A Car subset as --gt of a Bicycle run would score every panel against the wrong class."""
    run = gallery.index.parent.parent
    masks = {"img001": disk(H, W, 100, 150, 30).astype(np.uint8)}
    car = write_subset(tmp_path / "car", "Car", "test", masks, {"img001": "hand"})
    with pytest.raises(ValueError, match=r"this subset annotates Car; .*run.json holds Bicycle"):
        build_review(ReviewConfig(str(run), out=str(tmp_path / "g"), gt=str(car.root)))
    assert not (tmp_path / "g").exists()


def test_a_confidence_map_of_another_size_is_its_cards_problem(tmp_path, gallery):
    """It was an IndexError out of image_stats (which pick uses too): now a ValueError naming
    the file and both sizes, and in the gallery that image's card."""
    from annotations.labelrun import LabelRun
    from engine.annotate import image_stats

    run = gallery.index.parent.parent
    conf = run / "confidence" / "test" / "img000.png"
    write_label(conf, np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=rf"{conf}: confidence map is 10x10 but its pseudo label "
                       r".*img000\.png is 200x150"):  # fmt: skip
        image_stats(LabelRun.open(run), "test")
    res = build_review(ReviewConfig(str(run), out=str(tmp_path / "g")))
    assert res.images == 3 and len(res.failed) == 1
    assert res.failed[0].startswith(f"test/img000: {conf}: confidence map is 10x10")
    stems = re.findall(r'data-stem="(\w+)"', res.index.read_text())
    assert stems == ["img000", "img001", "img002"]  # first: --limit never hides it


def test_a_bad_pseudo_label_or_a_missing_image_fails_its_card_only(tmp_path, gallery):
    """A truncated pseudo label, and a labelled image gone from the dataset (its precise label
    left behind: a pairing problem of the dataset, which review does not read), stopped the
    whole gallery with exit 2; now each is its own card's problem and the command counts them."""
    from typer.testing import CliRunner

    from cli import app

    run = gallery.index.parent.parent
    label = run / "labels" / "test" / "img001.png"
    label.write_bytes(label.read_bytes()[:60])
    (tmp_path / "data" / "images" / "test" / "img002.jpg").unlink()
    res = build_review(ReviewConfig(str(run), out=str(tmp_path / "g")))
    assert res.images == 3 and sorted(res.failed) == [
        f"test/img001: {label}: cannot read label image (image file is truncated)",
        f"test/img002: {tmp_path / 'data/images/test'}: no image img002.* for this pseudo label",
    ]
    text = res.index.read_text()
    card = re.search(r'<div class="card"[^>]*data-stem="img002">.*?</div></div>', text).group(0)
    assert "could not be shown" in card and "<a href" not in card  # no original to link
    assert '<img src="thumbs/test__img000_pseudo.jpg"' in text  # the rest is built
    out = CliRunner().invoke(app, ["review", str(run), "--out", str(tmp_path / "g2")])
    assert out.exit_code == 1 and "2 images could not be shown" in out.output


def test_a_run_where_every_image_failed_says_so(tmp_path, gallery):
    """Before, "not a label run (...); it is a label run": the run has run.json and a manifest
    but no labels/ folder yet."""
    run = gallery.index.parent.parent
    for sub in ("labels", "instances", "confidence", "review"):
        shutil.rmtree(run / sub)
    rec = {"split": "test", "stem": "img000", "status": "failed", "error": "x: cannot decode"}
    (run / "manifest.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(ValueError) as e:
        build_review(ReviewConfig(str(run)))
    assert str(e.value) == f"{run}: no labelled image yet: 1 image failed (see engine info {run})"
    # with --split, only that split's failures count: test's are not val's
    with pytest.raises(ValueError) as e:
        build_review(ReviewConfig(str(run), split="val"))
    assert str(e.value) == f"{run}: no labelled images to review in split 'val' (splits: none)"
    with pytest.raises(ValueError) as e:
        build_review(ReviewConfig(str(run), split="val,test"))
    assert str(e.value) == (
        f"{run}: no labelled image yet in splits 'val', 'test': 1 image failed "
        f"(see engine info {run})"
    )
    assert not (run / "review").exists()


def test_a_fused_dataset_is_named_as_one(tmp_path):
    """Before, without --data: "fused/run.json: no image found for 1 labelled stem ...; pass
    the dataset root with --data", naming a file that does not exist."""
    fused = tmp_path / "fused"
    write_label(fused / "labels" / "test" / "a.png", np.zeros((4, 4), np.uint8))
    (fused / "fuse.json").write_text("{}")
    with pytest.raises(ValueError, match=rf"{fused} is a fused dataset \(engine fuse\), not a "
                       "label run"):  # fmt: skip
        build_review(ReviewConfig(str(fused), out=str(tmp_path / "g")))


def test_an_image_link_out_of_a_folder_reached_through_a_symlink_is_absolute(tmp_path):
    """A gallery in ``runs/x/g`` with ``runs -> ../scratch/runs`` and its images in ``data``: a
    browser resolves ``..`` in a link against the page's URL, which is the path as typed
    (``xdg-open``) or the real one (a browser or file manager that resolves links): the
    relative ``../../../data/a.jpg`` holds for the first only. Where the two readings differ the
    link is the image's absolute ``file:`` URL, which holds for both; a relative one where they
    agree."""
    from engine.review import _image_url

    (tmp_path / "scratch" / "runs" / "x" / "g").mkdir(parents=True)
    (tmp_path / "p" / "data").mkdir(parents=True)
    (tmp_path / "p" / "runs").symlink_to("../scratch/runs")
    image, gallery = tmp_path / "p" / "data" / "a b.jpg", tmp_path / "p" / "runs" / "x" / "g"
    image.write_bytes(b"")
    (tmp_path / "p" / "runs" / "x" / "c.jpg").write_bytes(b"")
    assert _image_url(image, gallery) == f"file://{tmp_path.as_posix()}/p/data/a%20b.jpg"
    assert _image_url(gallery.parent / "c.jpg", gallery) == "../c.jpg"


def _odd_names_run(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    names = ["bike #3", "x?y", "50% off"]
    for split in ("val", "test"):
        for stem in names:
            (data / "images" / split).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (W, H)).save(data / "images" / split / f"{stem}.jpg")
        make_run(run, data, {stem: [disk(H, W, 75, 60, 40)] for stem in names}, (H, W), split)
    return run


def test_odd_file_names_are_percent_encoded(tmp_path):
    """An image named ``bike #3.jpg`` or ``x?y.jpg`` did not load from the page: ``#`` and
    ``?`` ended the path."""
    from urllib.parse import unquote

    run = _odd_names_run(tmp_path)
    text = build_review(ReviewConfig(str(run), progress=False)).index.read_text()
    assert 'src="thumbs/val__bike%20%233_pseudo.jpg"' in text
    assert 'href="../../data/images/test/x%3Fy.jpg"' in text
    urls = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert len(urls) == 6 * 3  # each card: the original, its panel and the panel's detail
    for url in urls:
        assert (run / "review" / unquote(url)).is_file(), url


def test_a_file_name_that_is_not_utf8_is_shown_and_linked(tmp_path):
    """A dataset copied from a latin-1 system holds ``caf\\xe9.jpg``: percent-encoding its
    name raised UnicodeEncodeError ("surrogates not allowed"), then so did writing the page,
    and ``engine review`` stopped with exit code 2, no gallery. Its links hold its bytes
    (``caf%E9``), its captions the escape the JSON records show (``caf\\udce9``)."""
    from urllib.parse import unquote

    data, run, stem = tmp_path / "data", tmp_path / "run", os.fsdecode(b"caf\xe9")
    (data / "images" / "test").mkdir(parents=True)
    Image.new("RGB", (W, H)).save(data / "images" / "test" / f"{stem}.jpg")
    make_run(run, data, {stem: [disk(H, W, 75, 60, 40)]}, (H, W), "test")
    page = build_review(ReviewConfig(str(run), progress=False)).index.read_bytes()
    text = page.decode("utf-8")  # UTF-8 still
    assert 'href="../../data/images/test/caf%E9.jpg"' in text and "test/caf\\udce9" in text
    for url in re.findall(r'(?:src|href)="([^"]+)"', text):
        assert (run / "review" / unquote(url, errors="surrogateescape")).is_file(), url


def test_several_splits_are_given_as_label_and_fuse_take_them(tmp_path):
    """``--split val,test`` was refused (no split 'val,test'); label and fuse accept it."""
    from typer.testing import CliRunner

    from cli import app

    run = _odd_names_run(tmp_path)
    res = CliRunner().invoke(app, ["review", str(run), "--split", "val,test", "--no-progress"])
    assert res.exit_code == 0 and "review of 6 images" in res.output, res.output
    res = CliRunner().invoke(app, ["review", str(run), "--split", "val", "--split", "test"])
    assert res.exit_code == 0 and "review of 6 images" in res.output, res.output
    assert build_review(ReviewConfig(str(run), split=["test"])).images == 3
    assert build_review(ReviewConfig(str(run), split="test,val")).images == 6


def test_an_out_that_is_another_output_or_a_file_is_refused_before_drawing(
    tmp_path, gallery, monkeypatch
):
    """review --out accepted a label run, a prediction folder or a dataset's root (its
    index.html and thumbnails mixed in), and an --out under a file was refused only after every
    image was drawn; refused first now, as every command refuses them."""
    import engine.review as review

    run = gallery.index.parent.parent
    drawn = []
    monkeypatch.setattr(review.gallery, "load_image", lambda *a, **k: drawn.append(a) or 1 / 0)
    (tmp_path / "f").write_text("x")
    for out, said in (
        (run, "it is a label run (engine label); engine review needs a folder of its own"),
        (tmp_path / "data", "it is a dataset's root"),
        (tmp_path / "f", "output exists and is not a folder"),
    ):
        with pytest.raises((ValueError, NotADirectoryError), match=re.escape(said)):
            build_review(ReviewConfig(str(run), out=str(out)))
    assert drawn == [] and not (run / "index.html").exists()
    monkeypatch.undo()
    # its own gallery folder is rebuilt as before
    assert build_review(ReviewConfig(str(run))).index == gallery.index


def test_gt_that_is_no_annotation_of_the_class_is_refused(tmp_path, gallery):
    """review --gt RUN read the run's own pseudo labels as the annotation (every card scored
    IoU 100), and --gt a fused dataset's, a prediction folder's or a dataset's label maps read
    every class's ids as a 0/1/255 mask (the scores of whatever class id 1 is), with exit code
    0 and a gallery that looked right. Each is refused in one line naming what it is, before
    anything is drawn; a subset or a plain folder of masks is read as before (the fixture)."""
    from typer.testing import CliRunner

    from cli import app

    run = gallery.index.parent.parent
    fused = tmp_path / "fused"
    write_label(fused / "labels" / "test" / "img000.png", np.ones((H, W), np.uint8))
    (fused / "fuse.json").write_text("{}")
    data = tmp_path / "data"
    refused = {
        run: "it is a label run (engine label), not annotated ground truth",
        run / "labels" / "test": f"it is a folder inside {run}, a label run (engine label), not",
        fused: "it is a fused dataset (engine fuse), not annotated ground truth",
        data: "it is a dataset's root, whose label maps hold every class's id, not masks of",
        data / "annotations" / "test": f"it is a folder of the dataset {data}, whose label maps",
    }
    for gt, said in refused.items():
        out = tmp_path / "r"
        res = CliRunner().invoke(app, ["review", str(run), "--out", str(out), "--gt", str(gt)])
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and text.startswith(f"error: {gt}: {said}"), res.output
        assert text.endswith("or a folder of 0/1/255 masks of Bicycle") or "--png-value" in text
        assert len(res.output.strip().splitlines()) <= 3 and not out.exists()


def test_a_full_disk_stops_the_gallery_at_its_first_thumbnail(tmp_path, gallery, monkeypatch):
    """A thumbnail the disk has no room for was its card's problem: every card after it failed
    the same way, one by one, before index.html did too. The first one stops the gallery, with
    the disk's error naming the file (the command line: one line, exit 74)."""
    import errno

    import engine.review.gallery

    calls = []

    def full(path, data):
        calls.append(path)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(engine.review.gallery, "atomic_write_bytes", full)
    run = gallery.index.parent.parent
    with pytest.raises(OSError) as e:
        build_review(ReviewConfig(str(run), out=str(tmp_path / "g")))
    assert e.value.errno == errno.ENOSPC and len(calls) == 1


def test_a_rerun_failing_at_its_first_thumbnail_leaves_the_earlier_gallery_finished(
    gallery, monkeypatch
):
    """``engine review`` run again over a finished gallery, the disk full at its first
    thumbnail: its review.json stayed set aside, and engine info said the gallery did not
    finish (exit 1) of a folder holding the earlier gallery unchanged. Nothing new written: the
    earlier review.json is back, and info reads the finished gallery (exit 0)."""
    import errno

    import engine.review.gallery

    out = gallery.index.parent
    record = (out / "review.json").read_bytes()

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(engine.review.gallery, "atomic_write_bytes", full)
    with pytest.raises(OSError):
        build_review(ReviewConfig(str(out.parent), out=str(out)))
    assert (out / "review.json").read_bytes() == record
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".lock"]
    code, text = _info(out)
    assert code == 0 and "not finished" not in text


def _info(folder) -> tuple[int, str]:
    from typer.testing import CliRunner

    from cli import app

    res = CliRunner().invoke(app, ["info", str(folder)], env={"COLUMNS": "400"})
    return res.exit_code, " ".join(res.output.split())


def test_engine_info_tells_a_gallery_being_drawn_from_one_stopped(tmp_path):
    """A review folder holding thumbnails and no ``review.json`` yet (the page and its record
    come last) was shown by ``engine info`` as "no image split folders found", as of a wrong
    folder (exit 2). The gallery holds its folder's lock while it draws: info says it is being
    drawn (exit 0), or that it stopped and which command finishes it (exit 1)."""
    from engine.runlock import exclusive

    out = tmp_path / "g"
    with exclusive(out, "engine review"):
        (out / "thumbs").mkdir()
        (out / "thumbs" / "test__a_pseudo.jpg").write_bytes(b"jpeg")
        code, text = _info(out)
        assert code == 0 and "engine review (pid " in text
        assert "is drawing this review gallery now (1 thumbnail so far)" in text
    code, text = _info(out)
    assert code == 1 and "no image split folders" not in text
    assert f"{out}: a review gallery not finished: engine review (pid " in text
    assert text.endswith(
        "stopped before writing its page (1 thumbnail drawn, no review.json) and no process "
        "writes it now: run the same engine review command again"
    )


KILLED_AFTER = """
import os, signal, sys
import engine.review as review
real, calls = review.gallery.atomic_write_bytes, []
def write(*args, **kwargs):
    real(*args, **kwargs)
    calls.append(1)
    if len(calls) == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
review.gallery.atomic_write_bytes = write
from cli import app
app(sys.argv[2:])
"""


@pytest.mark.slow
def test_a_review_killed_after_its_first_thumbnails_is_told_and_drawn_again(tmp_path, gallery):
    """``kill -9`` of ``engine review`` after its second thumbnail: ``engine info`` names the
    stopped review and the command that finishes it (it said "no image split folders found"),
    and that command draws the gallery whole."""
    run, out = gallery.index.parent.parent, tmp_path / "g"
    args = ["review", str(run), "--out", str(out), "--no-progress"]
    run_killed(KILLED_AFTER, "2", *args)
    assert len(list((out / "thumbs").glob("*.jpg"))) == 2 and not (out / "review.json").exists()
    code, text = _info(out)
    assert code == 1 and "engine review (pid " in text and "2 thumbnails drawn" in text
    assert text.endswith("run the same engine review command again")
    from typer.testing import CliRunner

    from cli import app

    assert CliRunner().invoke(app, args).exit_code == 0
    assert json.loads((out / "review.json").read_text())["images"] == 3


@pytest.mark.slow
def test_a_rerun_killed_among_its_thumbnails_is_not_read_as_the_earlier_gallery(tmp_path, gallery):
    """``engine review`` run again over a finished gallery and killed after its second new
    thumbnail: the earlier review.json stayed beside them and engine info read a finished
    gallery (exit 0), a mix of two runs. The earlier record is set aside before the first
    thumbnail: info says the gallery did not finish (exit 1); the rerun finishes it."""
    run, out = gallery.index.parent.parent, tmp_path / "g"
    args = ["review", str(run), "--out", str(out), "--no-progress"]
    from typer.testing import CliRunner

    from cli import app

    assert CliRunner().invoke(app, args).exit_code == 0
    run_killed(KILLED_AFTER, "2", *args)
    code, text = _info(out)
    assert code == 1 and "engine review (pid " in text and "not finished" in text
    assert CliRunner().invoke(app, args).exit_code == 0
    assert json.loads((out / "review.json").read_text())["images"] == 3
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".lock"]


def test_the_page_s_embedded_settings_are_json_whatever_the_run_s_path(tmp_path):
    # the settings in <script type=application/json> are read as JSON (script text is not
    # HTML-unescaped): before, they were HTML-escaped ('{&quot;run&quot;: ...}', no JSON at all);
    # a path holding '</script>' must not end the element either
    data = tmp_path / "data"
    make_dataset(data, "test", n=1, size=(H, W))
    run = tmp_path / "a</script><b>" / "run \"1\" & 'x'"
    make_run(run, data, {"img000": [disk(H, W, 75, 60, 40)]}, (H, W))
    res = build_review(ReviewConfig(str(run), progress=False))

    class Scripts(HTMLParser):
        def __init__(self):
            super().__init__()
            self.scripts = []

        def handle_starttag(self, tag, attrs):
            self.scripts.append("") if tag == "script" else None

        def handle_data(self, text):
            if self.lasttag == "script" and self.scripts:
                self.scripts[-1] += text

    page = Scripts()
    page.feed(res.index.read_text(encoding="utf-8"))
    assert len(page.scripts) == 2  # the settings and the sort script, nothing cut out of them
    cfg = json.loads(page.scripts[0])
    assert cfg["run"] == str(run)


def test_an_image_with_a_long_name_is_shown(tmp_path):
    # a 245-byte stem is a legal image name (249 bytes with .jpg), but its thumbnail's name
    # adds the split and the panel ('test__' ... '_pseudo_detail.jpg'): 'File name too long',
    # the card could not be shown. Such a thumbnail is named by a cut stem and a hash instead
    data = tmp_path / "data"
    make_dataset(data, "test", n=2, size=(H, W))
    long = "é" * 100 + "x" * 45  # 245 bytes
    for folder, ext in (("images", ".jpg"), ("annotations", ".png")):
        (data / folder / "test" / f"img001{ext}").rename(data / folder / "test" / f"{long}{ext}")
    masks = {"img000": [disk(H, W, 75, 60, 40)], long: [disk(H, W, 75, 60, 40)]}
    run = tmp_path / "run"
    make_run(run, data, masks, (H, W))
    res = build_review(ReviewConfig(str(run), progress=False))
    assert res.failed == [] and res.images == 2
    names = sorted(p.name for p in (res.index.parent / "thumbs").iterdir())
    assert "test__img000_pseudo.jpg" in names  # a short stem's thumbnails named as before
    assert len(names) == 4 and all(len(n.encode()) <= 255 for n in names)
    assert f'data-stem="{long}"' in res.index.read_text(encoding="utf-8")


def test_engine_info_describes_a_finished_gallery(tmp_path, gallery):
    """``engine info`` on a finished gallery said "no image split folders found; ... is a review
    gallery (engine review), not a dataset" with exit code 2, as of a wrong folder: it shows
    what the gallery holds and the page to open (exit 0), each image it could not draw (exit
    1), and the same given its ``review.json`` or ``index.html``, or the folder of galleries."""

    def info(path):
        code, text = _info(path)
        return code, " ".join(re.sub("[│┌┐└┘─┬┴]", " ", text).split())

    out = gallery.index.parent
    code, text = info(out)
    assert code == 0 and "no image split folders" not in text
    assert text.startswith(f"Review gallery {out} ")
    assert "class Bicycle (simulated pseudo labels)" in text
    assert "images 3 (1 with a prediction, 1 with an annotation, scored)" in text
    assert (
        f"predictions {tmp_path / 'pred'}" in text and f"annotations {tmp_path / 'subset'}" in text
    )
    assert text.endswith(f"open: {out / 'index.html'}")
    from engine.runlock import exclusive

    with exclusive(out, "engine review"):  # drawn again over it: said
        assert "now engine review (pid " in info(out)[1]
        assert "is drawing it again (this is the earlier gallery)" in info(out)[1]
    for name in ("review.json", "index.html"):
        assert info(out / name) == (code, text)
    run = gallery.index.parent.parent
    image = tmp_path / "data" / "images" / "test" / "img000.jpg"
    image.write_bytes(image.read_bytes()[:400])
    res = build_review(ReviewConfig(str(run), out=str(tmp_path / "galleries" / "g")))
    code, text = info(res.index.parent)
    assert code == 1 and f"not drawn test/img000: {image}: cannot decode image" in text
    assert info(tmp_path / "galleries") == (code, text)  # a folder of galleries: each


def test_a_rerun_removes_the_earlier_thumbnails_its_page_does_not_show(gallery):
    """A rerun into the same gallery with a smaller --limit, --no-detail, no --pred or --gt, or
    after the run lost an image, left the earlier thumbnails of the cards and panels it no
    longer draws in thumbs/ (stale files the page did not show: at 13,000 images a --limit 0
    gallery drawn again with the default 300 kept 12,700 cards' thumbnails). Now it removes the
    files named as its thumbnails that it did not write; no other file is touched."""
    run, out = gallery.index.parent.parent, gallery.index.parent
    thumbs = out / "thumbs"
    before = {p.name for p in thumbs.iterdir()}
    assert {
        "test__img000_pred.jpg",
        "test__img001_gt.jpg",
        "test__img001_pseudo_detail.jpg",
    } <= before
    (thumbs / "holiday.jpg").write_bytes(b"a user's photo")  # not named as a thumbnail
    (thumbs / "notes_gt.txt").write_text("mine")

    def shown() -> set[str]:
        text = gallery.index.read_text()
        return {os.path.basename(u) for u in re.findall(r'src="thumbs/([^"]+)"', text)}

    build_review(ReviewConfig(str(run), limit=1, detail=False, progress=False))
    assert shown() == {"test__img001_pseudo.jpg"}
    assert {p.name for p in thumbs.iterdir()} == shown() | {"holiday.jpg", "notes_gt.txt"}
    build_review(ReviewConfig(str(run), limit=0, progress=False))  # drawn again: all three
    assert "test__img000_pseudo.jpg" in shown()
    for folder, ext in (("labels", ".png"), ("confidence", ".png"), ("instances", ".json")):
        (run / folder / "test" / f"img000{ext}").unlink(missing_ok=True)  # the run lost img000
    build_review(ReviewConfig(str(run), limit=0, progress=False))
    assert not any(p.name.startswith("test__img000") for p in thumbs.iterdir())
    assert {p.name for p in thumbs.iterdir()} == shown() | {"holiday.jpg", "notes_gt.txt"}


def test_engine_info_says_how_many_images_a_gallery_cut_by_limit_left_out(tmp_path, gallery):
    """A gallery drawn with ``--limit 2`` of a run that labelled 3 images: its page said "2 of 3
    images (--limit 2)", engine info "images 2" alone (review.json held no total). Now
    review.json records ``labelled`` and info says "2 of 3"; a review.json written before has
    no total and reads as before."""
    run = gallery.index.parent.parent
    out = tmp_path / "g"
    build_review(ReviewConfig(str(run), out=str(out), limit=2))
    record = json.loads((out / "review.json").read_text())
    assert (record["images"], record["labelled"]) == (2, 3)
    code, text = _info(out)
    text = " ".join(re.sub("[│┌┐└┘─┬┴]", " ", text).split())
    assert code == 0 and "images 2 of 3, --limit 2 (0 with a prediction" in text, text
    del record["labelled"]  # an older gallery's record
    (out / "review.json").write_text(json.dumps(record))
    code, text = _info(out)
    text = " ".join(re.sub("[│┌┐└┘─┬┴]", " ", text).split())
    assert code == 0 and "images 2 (0 with a prediction" in text, text
    code, text = _info(gallery.index.parent)  # not cut: no "of"
    assert "images │ 3 (1 with a prediction" in text, text


@pytest.mark.parametrize(
    "setting, said",
    [
        ({"thumb": 0}, "thumb must be >= 64 (px, the long side), got 0"),
        ({"limit": -1}, "limit must be >= 0 (0: every image), got -1"),
        ({"quality": 101}, "quality must be in 1..100 (JPEG), got 101"),
    ],
)
def test_a_library_review_config_is_held_to_the_clis_bounds(tmp_path, setting, said):
    """``--thumb`` (64 px at least) and ``--limit`` (0 at least) were the CLI's checks only:
    ``ReviewConfig(thumb=0)``, ``limit=-1`` or ``quality=101`` wrote a gallery of them."""
    with pytest.raises(ValueError) as err:
        ReviewConfig(str(tmp_path / "run"), **setting)
    assert str(err.value) == said


def test_a_library_review_config_takes_the_clis_bounds_and_defaults(tmp_path):
    """The bounds themselves are taken (``--thumb 64``, ``--limit 0``, quality 1 and 100), and a
    library caller's ``ReviewConfig(run)`` draws the gallery ``engine review RUN`` draws: the
    command's defaults are the config's."""
    import inspect

    from engine.cli.review import review

    for setting in ({"thumb": 64}, {"limit": 0}, {"quality": 1}, {"quality": 100}):
        cfg = ReviewConfig(str(tmp_path / "run"), **setting)
        assert all(getattr(cfg, k) == v for k, v in setting.items()), setting
    params = inspect.signature(review).parameters
    default = ReviewConfig(str(tmp_path / "run"))
    for name in ("out", "data", "pred_class_id", "gt", "thumb", "limit", "detail", "progress"):
        assert params[name].default.default == getattr(default, name), name


def test_unreadable_images_past_the_limit_are_counted_and_long_lists_cut(
    tmp_path, gallery, monkeypatch
):
    """With more unreadable pseudo labels than --limit (2,000 of a 3,000-image run, --limit
    300), the gallery kept 300 "could not be shown" cards and said "300 images could not be
    shown": the 1,700 others, known before drawing, were not counted anywhere; and the command
    printed one line per failure, as engine info GALLERY printed a table row each (1,200 lines
    for 300). Now every one is counted and listed in review.json, the page says how many have no
    card, and the terminal shows the first few, then "... and N more (see FILE)"."""
    from typer.testing import CliRunner

    import engine.text
    from cli import app

    run = gallery.index.parent.parent
    for stem in ("img000", "img001", "img002"):
        (run / "labels" / "test" / f"{stem}.png").write_bytes(b"x")
    out = tmp_path / "g"
    res = build_review(ReviewConfig(str(run), out=str(out), limit=1))
    assert res.images == 1 and len(res.failed) == 3 and res.past_limit == 2
    record = json.loads((out / "review.json").read_text())
    assert len(record["failed"]) == 3 and record["failed_past_limit"] == 2
    text = res.index.read_text()
    assert "1 of 3 images (--limit 1)" in text
    assert "2 more images could not be shown and have no card here" in text
    monkeypatch.setattr(engine.text, "LINES_SHOWN", 1)
    cli = CliRunner().invoke(app, ["review", str(run), "--out", str(out), "--limit", "1"])
    said = " ".join(cli.output.split())
    assert cli.exit_code == 1
    assert "3 images could not be shown (each card says why; 2 past --limit have no card)" in said
    assert "test/img000:" in said and "test/img001:" not in said
    assert f"... and 2 more (see {out / 'review.json'})" in said
    code, info = _info(out)
    info = " ".join(re.sub("[│┌┐└┘─┬┴]", " ", info).split())
    assert code == 1 and "test/img002" in info and "test/img001" in info  # 5 shown there
    (out / "review.json").write_text(json.dumps(record | {"failed": record["failed"] * 3}))
    info = " ".join(re.sub("[│┌┐└┘─┬┴]", " ", _info(out)[1]).split())
    assert "not drawn ... and 4 more (see review.json)" in info


def test_a_run_read_from_another_folder_with_a_data_of_its_own_reads_the_runs_dataset(
    tmp_path, monkeypatch
):
    """A run labelled with ``--data data`` in its project (run.json's environment.cwd), read
    from another folder that holds a ``data`` of its own: ``engine info`` counts, and review
    draws, the project's dataset. Before, the ``data`` here came first: info counted its five
    images as not yet labelled, and review drew its photos under the run's masks."""
    from engine.info import label_run_stats

    proj = tmp_path / "proj"
    make_dataset(proj / "data", n=2, size=(H, W))
    make_dataset(tmp_path / "elsewhere" / "data", n=5, size=(H, W), seed=3)  # a decoy
    run = proj / "runs" / "label"
    make_run(run, proj / "data", {"img000": [disk(H, W, 75, 60, 40)], "img001": []}, (H, W))
    doc = json.loads((run / "run.json").read_text())
    doc["config"]["data"], doc["config"]["out"] = "data", "runs/label"
    doc["data_resolved"], doc["environment"] = str(proj / "data"), {"cwd": str(proj)}
    (run / "run.json").write_text(json.dumps(doc))
    monkeypatch.chdir(tmp_path / "elsewhere")
    stats = label_run_stats("../proj/runs/label")
    assert stats.data_root == proj / "data"
    assert stats.splits["test"].pending == 2  # the project's two, none labelled (no manifest)


def test_gt_of_own_masks_kept_in_the_label_run_folder_is_read(tmp_path, gallery):
    """A user's own masks kept in the run's folder (``RUN/car_manual``) were refused as "a
    folder inside RUN, a label run", as engine compare refused them until round 50. Only the
    run itself, its ``labels`` and ``labels/<split>`` are its pseudo labels (as compare reads
    them); any other folder in it is read as the user's 0/1/255 masks: img001's, the fixture's
    annotation, scores as it does there."""
    run = gallery.index.parent.parent
    manual = run / "car_manual"
    write_label(manual / "img001.png", disk(H, W, 100, 150, 30).astype(np.uint8))
    res = build_review(ReviewConfig(str(run), out=str(tmp_path / "g"), gt=str(manual)))
    assert res.images == 3 and res.with_gt == 1
    scores = [re.findall(r"IoU [0-9][^<]*", g.index.read_text()) for g in (res, gallery)]
    assert scores[0] == scores[1] and len(scores[0]) == 1
    with pytest.raises(ValueError, match="it is a folder inside .*, a label run"):
        build_review(ReviewConfig(str(run), out=str(tmp_path / "h"), gt=str(run / "labels")))


@pytest.mark.parametrize("inside", ["confidence", "confidence/test", "instances", "instances/test"])
def test_gt_of_the_label_runs_confidence_or_instances_is_refused(tmp_path, gallery, inside):
    """``review --gt RUN/confidence`` (or its split, or ``RUN/instances``) was read as ground
    truth after RUN/car_manual was let through: the confidence maps (uint8 0..255) scored as
    masks. Every folder engine label writes (RUN_FOLDERS) is refused as the run's labels are."""
    run = gallery.index.parent.parent
    gt = run / inside
    with pytest.raises(ValueError) as e:
        build_review(ReviewConfig(str(run), out=str(tmp_path / "g"), gt=str(gt)))
    assert str(e.value) == (
        f"{gt}: it is a folder inside {run}, a label run (engine label), not annotated ground "
        "truth; give --gt an annotated subset (engine annotate import) or a folder of 0/1/255 "
        "masks of Bicycle"
    )
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("out", ["new", "empty"])
def test_a_full_disk_at_the_first_thumbnail_leaves_no_folder_of_its_own(
    tmp_path, gallery, monkeypatch, out
):
    """The disk full at the first thumbnail: a new --out was left holding its .lock and an
    empty thumbs/ (an empty one given, the same two); now it is gone, or empty again."""
    import errno

    import annotations.fileio

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(annotations.fileio.atomic, "atomic_file", full)
    run = gallery.index.parent.parent
    (tmp_path / "empty").mkdir()
    given = tmp_path / "new" / "g" if out == "new" else tmp_path / "empty"
    with pytest.raises(OSError) as e:
        build_review(ReviewConfig(str(run), out=str(given)))
    assert e.value.errno == errno.ENOSPC and e.value.filename.endswith(".jpg")
    assert not (tmp_path / "new").exists() and list((tmp_path / "empty").iterdir()) == []


def test_an_image_inside_the_gallery_s_folder_is_linked_relative_through_a_link(tmp_path):
    """A gallery whose folder is a link (g -> a/b/real) and an image inside it given by its
    real path: its link was the absolute file: URL (``../a/b/real/imgs/x.jpg`` from g leads
    elsewhere), which breaks once the gallery is served over HTTP (python -m http.server);
    ``imgs/x.jpg`` leads to it from either path of the folder. An image outside the folder
    keeps its file: URL where the relative path would lead elsewhere."""
    from engine.review import _image_url

    real = tmp_path / "a" / "b" / "real"
    (real / "imgs").mkdir(parents=True)
    (tmp_path / "g").symlink_to("a/b/real")
    inside, outside = real / "imgs" / "x.jpg", tmp_path / "a" / "y.jpg"
    inside.write_bytes(b"")
    outside.write_bytes(b"")
    assert _image_url(inside, tmp_path / "g") == "imgs/x.jpg"
    assert _image_url(tmp_path / "g" / "imgs" / "x.jpg", real) == "imgs/x.jpg"
    assert _image_url(outside, tmp_path / "g") == html.escape(outside.as_uri())
    assert _image_url(outside, real) == "../../y.jpg"
