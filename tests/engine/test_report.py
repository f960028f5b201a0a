"""Table-4 report: scores from engine.metrics, Markdown numbers all in the JSON, chart, overlays."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from annotations.labelmap import read_label, write_label
from annotations.subset import write_subset
from engine.metrics import SegEvaluator
from engine.report import ReportConfig, build_report, render_markdown
from tests.engine.metrics_reference import FIELDS, reference_counts
from tests.loop_helpers import disk, make_dataset, make_run, saved_figures

H, W = 60, 80


@pytest.fixture()
def world(tmp_path):
    data = tmp_path / "data"
    make_dataset(data, "test", n=3, size=(H, W), grey=True)
    truth = {
        "img000": [disk(H, W, 30, 25, 12)],
        "img001": [disk(H, W, 20, 60, 8), disk(H, W, 45, 20, 10)],
        "img002": [],  # class absent
    }
    gt = {
        s: (np.any(m, 0) if m else np.zeros((H, W), bool)).astype(np.uint8)
        for s, m in truth.items()
    }
    gt["img001"][:5, :5] = 255  # unannotated corner
    subset = write_subset(tmp_path / "subset", "Bicycle", "test", gt, {s: "hand" for s in gt})
    # pseudo labels: instances grown by 2 px (bloated outlines); the model: exact but misses
    # every instance after the first of an image
    grown = {s: [ndimage.binary_dilation(m, iterations=2) for m in ms] for s, ms in truth.items()}
    make_run(tmp_path / "run", data, grown, (H, W))
    for s in truth:
        lab = read_label(data / "annotations" / "test" / f"{s}.png")
        pred = lab.copy()
        for m in truth[s][:1]:
            pred[m] = 7
        write_label(tmp_path / "pred" / "test" / f"{s}.png", pred)
    return tmp_path, data, subset, gt


def test_report_rows_and_deltas(world):
    tmp, data, subset, gt = world
    res = build_report(
        ReportConfig(
            str(subset.root),
            str(tmp / "rep"),
            pseudo=str(tmp / "run"),
            pred=str(tmp / "pred"),
            data=str(data),
        )
    )
    rows = {r["kind"]: r for r in res.data["table4"]}
    assert list(rows) == ["pseudo labels", "joint-trained model"]  # no fused labels given
    assert rows["pseudo labels"]["source"] == "pseudo labels (simulated)"
    # the same numbers straight from the metrics module
    exact = {}
    for kind, folder, cid in (
        ("pseudo labels", tmp / "run" / "labels" / "test", 1),
        ("joint-trained model", tmp / "pred" / "test", 7),
    ):
        ev = SegEvaluator(2)
        for s in subset.stems:
            lab = read_label(folder / f"{s}.png")
            ev.update(np.where(lab == 255, 255, lab == cid).astype(np.uint8), gt[s])
        r = exact[kind] = ev.compute()
        assert rows[kind]["iou"] == round(r.iou[1], 2)
        assert rows[kind]["biou"] == round(r.biou[1], 2)
        assert rows[kind]["bf1"] == round(r.bf1[1], 4)
    m = rows["joint-trained model"]
    # the difference of the scores, rounded (as engine compare), not of the rounded scores
    for key, nd in (("iou", 2), ("biou", 2), ("bf1", 4)):
        diff = (
            getattr(exact["joint-trained model"], key)[1] - getattr(exact["pseudo labels"], key)[1]
        )
        assert m["delta"][key] == round(diff, nd), key
    assert rows["pseudo labels"]["delta"] == {"iou": 0.0, "biou": 0.0, "bf1": 0.0}
    # how sure each delta is: a paired bootstrap over the images, but 3 form none (each bound
    # would be one image's own delta: engine.metrics.bootstrap.min_images)
    ci = m["delta_interval"]
    assert "delta_interval" not in rows["pseudo labels"] and ci["images"] == 3
    assert [ci[key] for key in ("iou", "biou", "bf1")] == [None, None, None]
    line = "Δ of the joint-trained model vs the pseudo labels, 95% interval over the 3 annotated"
    too_few = (
        " images (paired bootstrap): none: 2 of them have the class in the annotation, the "
        "joint-trained model or the pseudo labels (it takes 4)"
    )
    assert line + too_few in res.markdown.read_text()
    assert res.data["per_class"]["classes"][7]["name"] == "Bicycle"
    assert len(res.data["per_class"]["classes"]) == 8
    assert res.chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(res.overlays) == 3 and all(p.is_file() for p in res.overlays)
    assert res.data["overlay_panels"] == ["annotation", "pseudo labels", "joint-trained model"]
    # below each whole image, the same panels of its densest annotated outlines, enlarged 4x
    # (the window is a quarter of the width; the image has none on img002, without the class)
    assert res.data["overlay_details"] == 2
    # the captions are wider than the 80x60 thumbnails: each goes in a 26-px band above its
    # panel, the columns as wide as their captions (before, "joint-trained model" was cut)
    sizes = {}
    for p in res.overlays:
        with Image.open(p) as img:
            sizes[p.stem] = img.size
    assert sizes == {
        "img000": (424, 2 * (26 + 60) + 4),
        "img001": (459, 2 * (26 + 60) + 4),  # "annotation; magenta: 255": its corner
        "img002": (355, 26 + 60),  # no detail row: its columns as wide as the captions above
    }
    assert "Below, the same panels of the white box, enlarged" in res.markdown.read_text()


def test_markdown_leaves_the_pseudo_labels_own_deltas_blank(world):
    """report.md showed +0.00 deltas on the pseudo labels' row, the row the deltas are taken
    against; the terminal's table leaves them blank, and so does report.md now."""
    tmp, data, subset, _ = world
    res = build_report(ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"),
                                    pred=str(tmp / "pred"), data=str(data), chart=False))  # fmt: skip
    rows = {line.split(" | ")[0][2:]: line for line in res.markdown.read_text().splitlines()
            if line.startswith("| ") and line.endswith(" |")}  # fmt: skip
    assert rows["pseudo labels (simulated)"].endswith(" |  |  |  | 3 |")
    model = res.data["table4"][1]
    assert f"| {model['delta']['iou']:+.2f} |" in rows["joint-trained model"]


def test_a_rerun_with_fewer_files_removes_the_earlier_report_s_others(world):
    """A rerun with --no-chart or fewer --overlays left the earlier chart.png and overlays,
    which report.md no longer shows; files the report never wrote stay."""
    tmp, data, subset, _ = world
    cfg = ReportConfig(str(subset.root), str(tmp / "again"), pseudo=str(tmp / "run"),
                       pred=str(tmp / "pred"), data=str(data), overlays=2)  # fmt: skip
    first = build_report(cfg)
    assert first.chart is not None and len(first.overlays) == 2
    (tmp / "again" / "notes.txt").write_text("mine")
    second = build_report(replace(cfg, chart=False, overlays=1))
    files = sorted(p.relative_to(tmp / "again").as_posix() for p in (tmp / "again").rglob("*.*"))
    kept = second.overlays[0].relative_to(tmp / "again").as_posix()
    assert files == sorted([".lock", kept, "notes.txt", "report.json", "report.md"])


def test_every_markdown_number_is_in_the_json(world):
    tmp, data, subset, _ = world
    res = build_report(
        ReportConfig(
            str(subset.root),
            str(tmp / "rep"),
            pseudo=str(tmp / "run"),
            pred=str(tmp / "pred"),
            data=str(data),
        )
    )
    md = res.markdown.read_text()
    doc = json.loads(res.json.read_text())
    assert md == render_markdown(doc)
    assert "Simulated pseudo labels" in md and "(simulated labeler)" in md

    def numbers(obj):
        if isinstance(obj, dict):
            for v in obj.values():
                yield from numbers(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from numbers(v)
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            yield float(obj)

    known = set(numbers(doc))
    table_lines = [ln for ln in md.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    found = 0
    for ln in table_lines:
        for tok in re.findall(r"[-+]?\d+\.\d+", ln):
            assert float(tok) in known, (tok, ln)
            found += 1
    assert found >= 3 + 6 + 9 * 3  # the pseudo labels' row has no deltas of its own


def test_fused_row_and_missing_prediction(world, tmp_path):
    tmp, data, subset, gt = world
    for s, m in gt.items():
        write_label(
            tmp / "fused" / "labels" / "test" / f"{s}.png", np.where(m == 1, 7, 3).astype(np.uint8)
        )
    res = build_report(
        ReportConfig(
            str(subset.root),
            str(tmp / "rep2"),
            pseudo=str(tmp / "run"),
            fused=str(tmp / "fused"),
            chart=False,
        )
    )
    fused = [r for r in res.data["table4"] if r["kind"] == "fused labels"][0]
    assert fused["iou"] == 100.0 and fused["bf1"] == 1.0
    assert res.chart is None
    # no --data: the images come from the dataset the label run labelled
    assert len(res.overlays) == 3 and res.data["data_source"] == str(tmp / "run" / "run.json")
    (tmp / "pred" / "test" / "img001.png").unlink()
    with pytest.raises(
        FileNotFoundError, match="no joint-trained model for annotated image 'img001'"
    ):
        build_report(ReportConfig(str(subset.root), str(tmp / "rep3"), pred=str(tmp / "pred")))


def _reference_scores(pairs) -> dict[str, float]:
    """IoU, BIoU (x100) and BF1 of the class (1) over ``(pred, gt)`` binary pairs, from the
    counts of tests/engine/metrics_reference.py summed over the images."""
    c = {f: 0 for f in FIELDS}
    for pred, gt in pairs:
        for f, v in reference_counts(pred, gt, 2).items():
            c[f] += int(v[1])
    p = c["bf1_pred_matched"] / c["bf1_pred_boundary"]
    r = c["bf1_gt_matched"] / c["bf1_gt_boundary"]
    return {
        "iou": 100 * c["iou_intersection"] / c["iou_union"],
        "biou": 100 * c["biou_intersection"] / c["biou_union"],
        "bf1": 2 * p * r / (p + r),
    }


def _fused_on_two(world, stems: tuple[str, str]):
    """Pseudo labels that mark the class on img002 (which has none) and fused labels that are
    the annotation on ``stems`` only: the report's fused-labels row (checked to be of those two
    images, IoU 100), the pseudo labels and the annotation, by image."""
    tmp, data, subset, gt = world
    fp = np.zeros((H, W), np.uint8)
    fp[40:55, 50:70] = 1
    write_label(tmp / "run" / "labels" / "test" / "img002.png", fp)
    for s in stems:
        write_label(tmp / "fused" / "labels" / "test" / f"{s}.png",
                    np.where(gt[s] == 1, 7, 3).astype(np.uint8))  # fmt: skip
    cfg = ReportConfig(str(subset.root), str(tmp / "r"), pseudo=str(tmp / "run"),
                       fused=str(tmp / "fused"), chart=False, overlays=0)  # fmt: skip
    fused = {r["kind"]: r for r in build_report(cfg).data["table4"]}["fused labels"]
    assert fused["images"] == 2 and fused["iou"] == 100.0
    pseudo = {s: read_label(tmp / "run" / "labels" / "test" / f"{s}.png") for s in gt}
    return fused, pseudo, gt


def test_a_source_of_fewer_images_is_compared_on_the_images_it_holds(world):
    """Fused labels of 2 of the 3 annotated images: their delta was their score on 2 images
    minus the pseudo labels' on all 3 (unpaired: IoU +41.01 here, against +27.60 paired), while its
    interval and (excludes 0) were of the paired delta on the 2 images. Now the delta is the
    paired one too: the pseudo labels' scores on the images the fused labels hold."""
    fused, pseudo, gt = _fused_on_two(world, ("img000", "img001"))
    on_two = _reference_scores([(pseudo[s], gt[s]) for s in ("img000", "img001")])
    on_all = _reference_scores([(pseudo[s], gt[s]) for s in gt])
    assert on_all["iou"] < on_two["iou"] - 3  # the unpaired delta would be larger
    for key, nd in (("iou", 2), ("biou", 2), ("bf1", 4)):
        truth = {"iou": 100.0, "biou": 100.0, "bf1": 1.0}[key]
        assert fused["delta"][key] == round(truth - on_two[key], nd), key
        assert fused["delta_interval"][key] is None  # 2 images form no interval (min_images)
    assert fused["delta_interval"]["images"] == 2


def test_an_out_that_is_another_output_or_a_dataset_root_is_refused(world):
    """report.json written into a prediction folder or a dataset root made engine info take it
    for a report: such an --out is refused before anything is written, as by the other
    commands; a report's own folder is written again."""
    tmp, data, subset, _ = world
    (tmp / "pred" / "predict.json").write_text(json.dumps({"config": {"split": "test"}}))
    for out, what in ((tmp / "pred", "a folder of predictions"), (data, "a dataset's root"),
                      (subset.root, "an annotated subset")):  # fmt: skip
        before = sorted(out.rglob("*"))
        with pytest.raises(ValueError, match=f"it is {what}[^;]*; engine report needs a folder"):
            build_report(ReportConfig(str(subset.root), str(out), pseudo=str(tmp / "run")))
        assert sorted(out.rglob("*")) == before
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"), chart=False)
    build_report(cfg)
    assert build_report(cfg).json == tmp / "rep" / "report.json"


def test_an_out_holding_a_chart_png_of_its_own_is_refused_all_the_same(world):
    """``chart.png`` and ``overlays/`` count as a report's (its rerun removes a killed write's
    temporary files), not as a report: a dataset root or another output holding a figure of
    that name (``engine compare --plot RUN/chart.png``) is refused as without it. Before, such a
    ``chart.png`` let the report write into a dataset's root (engine info then read a report)
    and replace that figure with its own chart."""
    tmp, data, subset, _ = world
    (tmp / "pred" / "predict.json").write_text(json.dumps({"config": {"split": "test"}}))
    for out, what in ((tmp / "pred", "a folder of predictions"), (data, "a dataset's root")):
        (out / "chart.png").write_bytes(b"the user's figure")
        before = sorted(out.rglob("*"))
        with pytest.raises(ValueError, match=f"it is {what}[^;]*; engine report needs a folder"):
            build_report(ReportConfig(str(subset.root), str(out), pseudo=str(tmp / "run")))
        assert sorted(out.rglob("*")) == before
        assert (out / "chart.png").read_bytes() == b"the user's figure"


def test_predictions_of_more_classes_than_their_taxonomy_name_the_file(world):
    """A prediction holding an id beyond the taxonomy read for it (a 9-class model's PNGs
    copied without predict.json) failed the per-class table with "pred: label values [8] ...",
    naming no file: now the file, and --taxonomy as the way out."""
    tmp, data, subset, _ = world
    lab = read_label(tmp / "pred" / "test" / "img001.png")
    lab[0, 0] = 8
    write_label(tmp / "pred" / "test" / "img001.png", lab)
    path = tmp / "pred" / "test" / "img001.png"
    with pytest.raises(ValueError) as e:
        build_report(ReportConfig(str(subset.root), str(tmp / "r"), pred=str(tmp / "pred"),
                                  data=str(data), chart=False))  # fmt: skip
    assert str(e.value) == (
        f"{path}: label values 8 are not class ids (expected 0..7 or 255 = ignore): "
        f"{tmp / 'pred'} holds more classes than the taxonomy read for it; give its "
        "taxonomy.json as --taxonomy"
    )
    assert not (tmp / "r").exists()


def test_predictions_of_another_split_are_named(world):
    """--pred of another split failed on the first annotated image without saying that the
    folder holds another split's predictions: the error names what it holds."""
    tmp, _, subset, _ = world
    val = tmp / "pval"
    write_label(val / "img_v.png", np.zeros((H, W), np.uint8))
    (val / "predict.json").write_text(json.dumps({"config": {"split": "val"}}))
    with pytest.raises(FileNotFoundError, match=r"'img000' \(test\); it holds predictions of split 'val' \(.*predict.json\), not of the subset's 'test'"):  # fmt: skip
        build_report(ReportConfig(str(subset.root), str(tmp / "r"), pred=str(val)))
    (val / "predict.json").unlink()  # predictions made elsewhere: their own files are named
    with pytest.raises(FileNotFoundError, match=r"it holds 1 other label map \(img_v.png, ...\)"):
        build_report(ReportConfig(str(subset.root), str(tmp / "r"), pred=str(val)))
    (val / "img_v.png").rename(tmp / "img_v.png")
    write_label(val / "labels" / "train" / "img_t.png", np.zeros((H, W), np.uint8))
    with pytest.raises(FileNotFoundError, match="it holds split train, not the subset's 'test'"):
        build_report(ReportConfig(str(subset.root), str(tmp / "r"), pred=str(val)))
    assert not (tmp / "r").exists()


def test_fused_labels_without_the_annotated_images_are_said(world, caplog):
    """Fused labels of the training split only gave no fused row without a word, and as the
    only source an empty table with exit code 0: a warning, and then an error."""
    tmp, data, subset, _ = world
    write_label(tmp / "fused" / "labels" / "train" / "t0.png", np.zeros((H, W), np.uint8))
    res = build_report(ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"),
                                    fused=str(tmp / "fused"), chart=False, overlays=0))  # fmt: skip
    assert [r["kind"] for r in res.data["table4"]] == ["pseudo labels"]
    said = "no fused labels for any of the 3 annotated images (split 'test'); it holds split train"
    assert said in res.data["warnings"][0] and said in caplog.text
    assert said in res.markdown.read_text()
    with pytest.raises(FileNotFoundError, match=re.escape(said) + ".*; nothing to report"):
        build_report(ReportConfig(str(subset.root), str(tmp / "r"), fused=str(tmp / "fused")))
    assert not (tmp / "r").exists()


def test_each_row_reads_its_folder_s_own_taxonomy(world):
    """The predictions record Bicycle at 7 (predict.json), the fused dataset Car at 7 and
    Bicycle at 8 (its taxonomy.json): each row finds the class's id in its own folder's
    taxonomy. Before, the predictions' was applied to the fused labels too, whose row then
    scored their Car pixels as Bicycle."""
    from annotations.taxonomy import MASS13K

    tmp, data, subset, gt = world
    bc = MASS13K.with_new_class("Bicycle").with_new_class("Car")
    cb = MASS13K.with_new_class("Car").with_new_class("Bicycle")
    (tmp / "pred" / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": bc.to_dict()}))
    fused = tmp / "fused"
    for s, m in gt.items():  # Bicycle (8) where annotated, Car (7) in the top rows
        label = np.where(m == 1, 8, 3).astype(np.uint8)
        label[:10] = 7
        write_label(fused / "labels" / "test" / f"{s}.png", label)
    cb.save(fused / "taxonomy.json")
    cfg = ReportConfig(str(subset.root), str(tmp / "r"), fused=str(fused), pred=str(tmp / "pred"))
    res = build_report(replace(cfg, chart=False, overlays=0, data=str(data)))
    rows = {r["kind"]: r for r in res.data["table4"]}
    assert rows["fused labels"]["iou"] == 100.0  # the class never falls in the top rows
    assert rows["fused labels"]["class_id"] == 8
    assert rows["fused labels"]["taxonomy_source"] == str(fused / "taxonomy.json")
    assert rows["joint-trained model"]["class_id"] == 7
    assert rows["joint-trained model"]["taxonomy_source"] == str(tmp / "pred" / "predict.json")
    assert res.data["taxonomy"] == bc.to_dict()  # the per-class table's: the predictions'


def test_dataset_root_comes_from_the_subset_when_not_given(world):
    """engine annotate import records the dataset root in subset.json: without --data the
    report draws its overlays (and the per-class table) from there; a root that has since
    moved gives a report without them rather than an error."""
    tmp, data, subset, gt = world
    masks = {s: read_label(subset.mask_path(s)) for s in subset.stems}
    sub = write_subset(tmp / "sub2", "Bicycle", "test", masks, {}, extra={"data": str(data)})
    res = build_report(
        ReportConfig(str(sub.root), str(tmp / "r"), pred=str(tmp / "pred"), chart=False)
    )
    assert res.data["data_source"] == str(sub.root / "subset.json")
    assert res.overlays and res.data["per_class"] is not None
    gone = write_subset(tmp / "sub3", "Bicycle", "test", masks, {}, extra={"data": str(tmp / "x")})
    res = build_report(
        ReportConfig(str(gone.root), str(tmp / "r2"), pred=str(tmp / "pred"), chart=False)
    )
    assert res.data["data_source"] is None and res.overlays == [] and res.data["per_class"] is None


def test_another_dataset_as_data_is_warned_about_and_another_size_named(world, caplog):
    """--data another dataset than the one subset.json records (same layout and stems): the
    per-class table and overlays would read its labels, so the report warns, on the terminal
    and in report.md / report.json; the recorded dataset spelt otherwise does not. A dataset of
    another size is an error naming its file before any scoring; it blamed the prediction."""
    tmp, data, subset, _ = world
    masks = {s: read_label(subset.mask_path(s)) for s in subset.stems}
    sub = write_subset(tmp / "sub5", "Bicycle", "test", masks, {}, extra={"data": str(data)})
    make_dataset(tmp / "other", "test", n=3, size=(H, W), seed=5)
    cfg = ReportConfig(str(sub.root), str(tmp / "r"), pred=str(tmp / "pred"), chart=False)
    with caplog.at_level("WARNING", logger="engine.report"):
        res = build_report(replace(cfg, data=str(tmp / "other")))
    warning = (
        f"{sub.root / 'subset.json'}: the subset was annotated on the images of {data}, but "
        f"--data is {tmp / 'other'}"
    )
    assert any(r.getMessage().startswith(warning) for r in caplog.records)
    assert res.data["warnings"][0].startswith(warning)
    assert warning in res.markdown.read_text()
    same = build_report(replace(cfg, data=str(data) + "/", out=str(tmp / "r2")))
    assert same.data["warnings"] == []
    make_dataset(tmp / "big", "test", n=3, size=(2 * H, 2 * W))
    big = tmp / "big" / "images" / "test" / "img000.jpg"
    with pytest.raises(ValueError) as e:
        build_report(replace(cfg, data=str(tmp / "big"), out=str(tmp / "r3")))
    assert str(e.value).startswith(
        f"{big}: is {2 * W}x{2 * H} but the annotated mask {sub.mask_path('img000')} is {W}x{H}"
    )
    assert not (tmp / "r3").exists()


def test_a_label_map_holding_its_photos_exif_block_is_of_its_stored_size(world):
    """A label PNG saved with its photo's EXIF block (orientation 6: an editor that copies it)
    is read as stored by every command (label maps are never turned), but the report's size
    check turned its header size: "img000.png: is 60x80 but the annotated mask ... is 80x60:
    is the dataset (--data) the one the subset was annotated on?", before any scoring."""
    tmp, data, subset, _ = world
    path = data / "annotations" / "test" / "img000.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    with Image.open(path) as img:
        img.load()
        img.save(path, exif=exif.tobytes())
    cfg = ReportConfig(str(subset.root), str(tmp / "r"), pred=str(tmp / "pred"), chart=False)
    res = build_report(replace(cfg, data=str(data)))
    assert res.overlays and res.data["per_class"] is not None


def test_a_relative_dataset_root_is_found_from_another_folder(world, monkeypatch):
    """A subset imported with a relative --data, reported from another working directory: the
    root it had when imported (data_resolved) is used."""
    tmp, data, subset, _ = world
    masks = {s: read_label(subset.mask_path(s)) for s in subset.stems}
    extra = {"data": "data", "data_resolved": str(data.resolve())}  # typed in data's parent
    sub = write_subset(tmp / "sub4", "Bicycle", "test", masks, {}, extra=extra)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = build_report(
        ReportConfig(str(sub.root), str(tmp / "r4"), pred=str(tmp / "pred"), chart=False)
    )
    assert res.data["data_source"] == str(sub.root / "subset.json")
    assert res.overlays and res.data["per_class"] is not None


def test_size_mismatch_and_nothing_to_report(world):
    tmp, _, subset, _ = world
    write_label(tmp / "pred" / "test" / "img000.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="is 10x10 but the annotation is 80x60"):
        build_report(
            ReportConfig(str(subset.root), str(tmp / "r"), pred=str(tmp / "pred"), chart=False)
        )
    with pytest.raises(ValueError, match=r"nothing to report: .*fused labels \(--fused\)"):
        build_report(ReportConfig(str(subset.root), str(tmp / "r")))


def test_another_class_than_the_subset_s_is_refused(world):
    """A Car label run, or --class Car, against a Bicycle subset would score one class's masks
    as the other's: refused before anything is written."""
    tmp, data, subset, _ = world
    make_run(tmp / "car", data, {"img000": []}, (H, W), class_name="Car")
    out = tmp / "r"
    for cfg, message in (
        (ReportConfig(str(subset.root), str(out), pseudo=str(tmp / "car")), "run.json holds Car"),
        (ReportConfig(str(subset.root), str(out), pred=str(tmp / "pred"), class_name="Car"),
         "this subset annotates Bicycle, not Car"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            build_report(cfg)
    assert not out.exists()
    cased = ReportConfig(str(subset.root), str(out), pseudo=str(tmp / "run"), class_name="bicycle")
    assert build_report(replace(cased, chart=False)).data["class_name"] == "Bicycle"


def test_predictions_without_the_class_are_named_with_their_taxonomy(world):
    """A 7-class model's predictions: the error names the file the taxonomy was read from."""
    from annotations.taxonomy import MASS13K

    tmp, _, subset, _ = world
    meta = tmp / "pred" / "predict.json"
    meta.write_text(json.dumps({"config": {}, "taxonomy": MASS13K.to_dict()}))
    with pytest.raises(ValueError, match=rf"'Bicycle' is not in the taxonomy of {meta} \(Others"):
        build_report(ReportConfig(str(subset.root), str(tmp / "r"), pred=str(tmp / "pred")))


def test_class_absent_everywhere_is_na():
    doc = {
        "title": "t",
        "class_name": "Car",
        "backend": None,
        "split": "test",
        "subset": "s",
        "subset_images": 1,
        "files": {},
        "table4": [
            {
                "source": "pseudo labels",
                "kind": "pseudo labels",
                "images": 1,
                "iou": None,
                "biou": None,
                "bf1": None,
                "delta": {"iou": None, "biou": None, "bf1": None},
            }
        ],
    }
    md = render_markdown(doc)
    assert "| pseudo labels | n/a | n/a | n/a |  |  |  | 1 |" in md  # no deltas of its own
    assert "Simulated" not in md


def test_cli_report(world):
    from typer.testing import CliRunner

    from cli import app

    tmp, data, subset, _ = world
    res = CliRunner().invoke(
        app,
        [
            "report",
            "--subset",
            str(subset.root),
            "--pseudo",
            str(tmp / "run"),
            "--pred",
            str(tmp / "pred"),
            "--data",
            str(data),
            "--out",
            str(tmp / "rc"),
            "--no-chart",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "joint-trained model" in res.output and (tmp / "rc" / "report.md").is_file()
    # engine info on the report folder, or on the folder of one per class: its Table 4
    rows = json.loads((tmp / "rc" / "report.json").read_text())["table4"]
    for folder, code in ((tmp / "rc", 0), (tmp, 1)):  # tmp's label run: images not labelled
        res = CliRunner().invoke(app, ["info", str(folder)], env={"COLUMNS": "200"})
        assert res.exit_code == code, res.output
        text = " ".join(res.output.split())
        for row in rows:
            assert f"{row['source']} │ {row['iou']:.2f} │ {row['biou']:.2f} │" in text
        assert "Δ: against the pseudo labels" in text and "report.md" in text


def test_report_shows_progress_on_stderr_unless_told_not_to(world, capsys):
    """Scoring a large subset and the per-class table over a whole split takes minutes at 4K:
    both loops draw a progress bar on stderr, and ``progress=False`` (``--no-progress``) draws
    none."""
    tmp, data, subset, _ = world
    for progress in (True, False):
        build_report(
            ReportConfig(
                str(subset.root),
                str(tmp / f"rp{progress}"),
                pseudo=str(tmp / "run"),
                pred=str(tmp / "pred"),
                data=str(data),
                chart=False,
                progress=progress,
            )
        )
        err = capsys.readouterr().err
        if progress:
            assert f"Bicycle: annotated {subset.split} subset" in err
            assert f"per-class scores: {subset.split} split" in err
        else:
            assert err == ""


def test_per_class_table_counts_other_new_classes_as_their_parent(world):
    """A second new class (Car, id 8) has no truth in Bicycle's report: its predicted pixels
    count as Others (its parent), and it gets no row instead of a meaningless IoU of 0."""
    from annotations.taxonomy import MASS13K

    tmp, data, subset, _ = world
    taxonomy = MASS13K.with_new_class("Bicycle").with_new_class("Car")
    taxonomy.save(tmp / "taxonomy.json")
    stem = subset.stems[0]
    pred_path = tmp / "pred" / "test" / f"{stem}.png"
    pred = read_label(pred_path)

    def per_class(folder: str) -> dict:
        cfg = ReportConfig(
            str(subset.root),
            str(tmp / folder),
            pred=str(tmp / "pred"),
            data=str(data),
            taxonomy=str(tmp / "taxonomy.json"),
            chart=False,
        )
        return build_report(cfg).data["per_class"]

    base = per_class("rep0")
    pred[pred == 0] = 8  # the model calls every Others pixel of this image Car
    write_label(pred_path, pred)
    res = per_class("rep1")
    assert [c["name"] for c in res["classes"]][-1] == "Bicycle"
    assert all(c["name"] != "Car" for c in res["classes"])
    assert res["classes"] == base["classes"]  # Car pixels scored exactly as Others were
    assert res["as_parent"] == {"Car": "Others"}  # and report.md says so under the table
    md = (tmp / "rep1" / "report.md").read_text()
    assert "| **mean** |" in md
    assert "\n\nWithout truth here, Car counts as Others, as in the 7-class labels.\n" in md


def test_per_class_table_ignores_unannotated_pixels_of_the_class_s_parent_only(world):
    """The per-class table's truth: the 7-class labels, the subset's class carved in, and its
    unannotated pixels (255) ignored where the labels say the parent (Others), which may be
    the class there; elsewhere the labels' own class stays. The same scores as the metrics
    module's on maps built so; nothing compared the table with them."""
    from annotations.taxonomy import MASS13K

    tmp, data, subset, gt = world
    parent = MASS13K.with_new_class("Bicycle").get("Bicycle").parent
    ev = SegEvaluator(8)
    for s in subset.stems:
        truth = read_label(data / "annotations" / "test" / f"{s}.png")
        ignored = (gt[s] == 255) & (truth == parent)
        if s == "img001":  # its unannotated corner: Others and other classes in the labels
            assert ignored.any() and (truth[gt[s] == 255] != parent).any()
        truth[gt[s] == 1] = 7
        truth[ignored] = 255
        ev.update(read_label(tmp / "pred" / "test" / f"{s}.png"), truth)
    want = ev.compute()
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pred=str(tmp / "pred"),
                       data=str(data), chart=False, overlays=0)  # fmt: skip
    got = build_report(cfg).data["per_class"]
    assert got["images"] == 3
    for c in got["classes"]:
        assert [c["iou"], c["biou"], c["bf1"]] == [
            round(float(want.iou[c["id"]]), 2),
            round(float(want.biou[c["id"]]), 2),
            round(float(want.bf1[c["id"]]), 4),
        ], c["name"]


@pytest.mark.parametrize("folder", ["Bicycle", "BICYCLE"])
def test_per_class_table_finds_the_truth_folder_in_any_case(world, folder):
    """The dataset's ``new_classes`` truth of the images outside the subset was read from the
    lower-cased folder only: ``new_classes/Bicycle/`` (the class as typed, which the simulated
    labeler reads) was not found, and the model's Bicycle pixels there were silently scored as
    Others. Any spelling of the class's folder now scores as the lower-cased one."""
    tmp, data, _, gt = world
    one = write_subset(tmp / "one", "Bicycle", "test", {"img000": gt["img000"]}, {"img000": "h"})
    for s in ("img001", "img002"):
        write_label(
            data / "new_classes" / "bicycle" / "test" / f"{s}.png", (gt[s] == 1).astype(np.uint8)
        )

    def per_class(out: str) -> list:
        cfg = ReportConfig(
            str(one.root), str(tmp / out), pred=str(tmp / "pred"), data=str(data), chart=False
        )
        return build_report(cfg).data["per_class"]["classes"]

    lower = per_class("lower")
    (data / "new_classes" / "bicycle").rename(data / "new_classes" / folder)
    assert per_class("typed") == lower
    (data / "new_classes" / folder).rename(data / "new_classes" / "elsewhere")
    assert per_class("none") != lower  # the truth matters here: without it, other scores


def test_a_pipe_in_a_class_name_stays_in_its_cell(world):
    """report.md's per-class table wrote a class ``a|b`` as ``| a|b | 58.38 | ...``: the row got
    a column more than its header, the scores shifted one cell to the right."""
    from engine.report import render_markdown

    tmp, data, subset, _ = world
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pred=str(tmp / "pred"), data=str(data))
    rec = build_report(dataclasses.replace(cfg, chart=False)).data
    rec["per_class"]["classes"][-1]["name"] = "a|b"
    row = next(ln for ln in render_markdown(rec).splitlines() if ln.startswith("| a"))
    assert row.startswith("| a\\|b | ") and row.replace("\\|", "").count("|") == 5


def test_the_chart_draws_names_as_typed(tmp_path):
    """A class named with two '$' (``x$^$y``) was read as mathtext by matplotlib, which failed
    the report's chart (a ValueError after the tables were written); compare's chart too."""
    from engine.compare import CompareReport, SourceScores, write_plot
    from engine.metrics import ClassScorer
    from engine.report import plot_chart

    rows = [{"kind": "pseudo labels", "source": "pseudo $a$", "iou": 40.0, "biou": 9.0, "bf1": 0.3}]
    assert plot_chart(rows, tmp_path / "c.png", "x$^$y").is_file()
    row = SourceScores("m$^$", str(tmp_path), ClassScorer().compute())
    rep = CompareReport("x$^$y", None, [row], 1)
    assert write_plot(rep, tmp_path / "p.png").is_file()


def test_the_charts_draw_no_boxes_for_names_no_font_has(tmp_path, monkeypatch):
    """A class or source named in a script matplotlib's fonts lack (``自行车`` with DejaVu Sans,
    the only font matplotlib ships; an emoji) was drawn as boxes, three alike, with a ``Glyph
    ... missing from font`` warning per character; each such character is written as its code
    point now, and the characters a font has as they are (``Straße``, ``велосипед``)."""
    import warnings

    import engine.compare.results
    import engine.report.figures
    from engine.compare import CompareReport, SourceScores, write_plot
    from engine.metrics import ClassScorer
    from engine.outputs import figure_text
    from engine.report import plot_chart
    from tests.loop_helpers import saved_figures

    assert figure_text("Straße велосипед") == "Straße велосипед"
    assert figure_text("v\u0065\u0301lo \U0010fffd") == "v\u00e9lo <U+10FFFD>"  # no font has it
    rows = [{"kind": "pseudo labels", "source": "pseudo", "iou": 40.0, "biou": 9.0, "bf1": 0.3}]
    row = SourceScores("модель 🚲", str(tmp_path), ClassScorer().compute())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph 33258 ... missing from font(s) DejaVu Sans."
        figures = saved_figures(monkeypatch, engine.report.figures)
        plot_chart(rows, tmp_path / "c.png", "自行车")
        compared = saved_figures(monkeypatch, engine.compare.results)
        write_plot(CompareReport("自行车", None, [row], 1), tmp_path / "p.png")
    figures += compared
    titles = [f._suptitle.get_text() for f in figures]
    assert titles[0].startswith(figure_text("自行车") + ": ") and "自行车" not in "".join(titles)
    labels = [t.get_text() for t in figures[1].axes[0].get_xticklabels()]
    assert labels == [f"модель {figure_text('🚲')}"]


def test_the_chart_colours_each_source_as_its_overlays_do(tmp_path):
    """Each bar of the report's chart is filled with the colour its source is tinted in the
    overlays beside it (before, the chart had its own: fused labels grey, where the overlays
    tint them purple, and the model another blue)."""
    import cv2

    from engine.report import plot_chart

    overlays = {  # engine.outputs' tints, as the report's overlays draw them
        "pseudo labels": (255, 200, 0),
        "fused labels": (200, 120, 255),
        "joint-trained model": (0, 160, 255),
    }
    rows = [
        {"kind": kind, "source": kind, "iou": 60.0, "biou": 40.0, "bf1": 0.6}
        for kind in ("pseudo labels", "fused labels", "joint-trained model")
    ]
    rgb = cv2.imread(str(plot_chart(rows, tmp_path / "c.png", "Bicycle")))[..., ::-1]
    for kind in ("pseudo labels", "fused labels", "joint-trained model"):
        assert (rgb == overlays[kind]).all(axis=-1).sum() > 1000, kind


def test_the_chart_draws_each_score_as_its_bar_and_value_with_room_above_a_perfect_one(
    tmp_path, monkeypatch
):
    """Each panel of the report's chart: one bar per source as high as its score, an undefined
    score (None: fused labels lacking every annotated image) a bar of 0, each bar's value written
    on it to 2 decimals (BF1 to 3), the source's first space a line break, and the axes from 0 to
    8% above a perfect score (100, or 1 for BF1), so that its value stays inside the frame."""
    import engine.report.figures
    from engine.report import plot_chart

    figures = saved_figures(monkeypatch, engine.report.figures)
    rows = [
        {"kind": "pseudo labels", "source": "pseudo labels", "iou": 60.0, "biou": 40.0, "bf1": 0.6},
        {"kind": "fused labels", "source": "fused labels", "iou": None, "biou": None, "bf1": None},
        {"kind": "joint-trained model", "source": "joint-trained model", "iou": 100.0,
         "biou": 100.0, "bf1": 1.0},
    ]  # fmt: skip
    plot_chart(rows, tmp_path / "c.png", "Bicycle")
    (fig,) = figures
    want = {"IoU": ([60, 0, 100], 100), "BIoU": ([40, 0, 100], 100), "BF1": ([0.6, 0, 1], 1)}
    for ax in fig.axes:
        heights, top = next(v for k, v in want.items() if ax.get_title().startswith(k))
        assert [p.get_height() for p in ax.patches] == pytest.approx(heights), ax.get_title()
        digits = "{:.3f}" if top == 1 else "{:.2f}"
        assert [t.get_text() for t in ax.texts] == [digits.format(v) for v in heights]
        assert [t.get_position()[1] for t in ax.texts] == pytest.approx(heights)
        assert ax.get_ylim() == pytest.approx((0, 1.08 * top))
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == ["pseudo\nlabels", "fused\nlabels", "joint-trained\nmodel"]


def test_overlay_captions_say_what_magenta_is_where_a_panel_has_255(world, monkeypatch):
    """255 pixels (unannotated, uncertain) are tinted magenta in the overlays, and nothing in
    the report said so; a panel that holds them now says it in its caption."""
    import engine.report.figures

    tmp, data, subset, _ = world
    drawn = []
    grid = engine.report.figures._grid
    monkeypatch.setattr(
        engine.report.figures, "_grid", lambda rows: drawn.append(rows) or grid(rows)
    )
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"), chart=False)
    res = build_report(replace(cfg, data=str(data)))
    captions = {
        p.stem: [c for _, c in rows[0]] for p, rows in zip(res.overlays, drawn, strict=True)
    }
    assert captions["img001"] == ["annotation; magenta: 255", "pseudo labels"]  # its corner
    assert captions["img000"] == ["annotation", "pseudo labels"]


@pytest.mark.parametrize("h,w", [(40, 1200), (1200, 40)])
def test_overlays_of_a_very_wide_or_tall_photo_name_every_panel(tmp_path, h, w):
    """A 1200x40 photo's panels are 384x13 thumbnails: the caption's box (22 px tall) covered
    them and was cut at their foot; a 40x1200 photo's are 13 px wide, and "annotation" read
    "an". Such captions go in a band above the thumbnails, each column as wide as its
    caption."""
    import cv2

    data = tmp_path / "data"
    make_dataset(data, "test", n=1, size=(h, w), grey=True)
    gt = np.zeros((h, w), np.uint8)
    gt[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
    subset = write_subset(tmp_path / "subset", "Bicycle", "test", {"img000": gt}, {"img000": "x"})
    make_run(tmp_path / "run", data, {"img000": [gt == 1]}, (h, w))
    cfg = ReportConfig(str(subset.root), str(tmp_path / "rep"), pseudo=str(tmp_path / "run"))
    res = build_report(replace(cfg, data=str(data), chart=False))
    (path,) = res.data["files"]["overlays"]
    picture = cv2.imread(str(tmp_path / "rep" / path))
    (tw, th), _ = cv2.getTextSize("annotation", cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    box = picture[: th + 12, : tw + 10]
    assert box.shape[:2] == (th + 12, tw + 10)  # the whole box is in the picture
    assert box.mean() < 90  # black, with the caption in white
    thumb = (384 * h // w, 384) if w > h else (384, 384 * w // h)
    assert picture.shape[0] >= thumb[0] + th + 12  # the caption does not cover the thumbnail


def test_a_caption_is_written_inside_its_black_box_in_the_thumbnail_s_corner():
    """``_tile``: the caption's box, black to its edges, in the thumbnail's top-left corner and
    nothing else drawn; its text inside it with a margin (not cut at the top, not below it); the
    thumbnail given is left as it was, and an empty caption draws nothing."""
    from engine.report import _caption_size, _tile

    for caption in ("annotation", "pseudo labels; magenta: 255", "2x the image's pixels"):
        bw, bh = _caption_size(caption)
        thumb = np.full((3 * bh, bw + 20, 3), 128, np.uint8)
        drawn = _tile(thumb, caption)
        assert (thumb == 128).all() and drawn.shape == thumb.shape
        assert (drawn[bh:] == 128).all() and (drawn[:, bw:] == 128).all(), caption
        box = drawn[:bh, :bw]  # bw x bh pixels, as _caption_size says (before, one more each way)
        for edge in (box[0], box[-1], box[:, 0], box[:, -1]):
            assert not edge.any(), caption  # black: (0, 0, 0)
        rows, cols = np.nonzero(box.max(axis=-1) > 128)  # the white text
        assert rows.size and rows.min() >= 3 and rows.max() <= bh - 3, caption
        assert cols.min() >= 3 and cols.max() <= bw - 3, caption
    assert (_tile(thumb, "") == thumb).all()


def test_captions_go_in_a_band_only_where_a_thumbnail_cannot_hold_them(tmp_path):
    """``_grid`` writes the captions in the thumbnails where each box fits: as wide as the
    thumbnail at most, as tall as a third of it at most (the bounds included); a thumbnail a
    pixel narrower or shorter puts every caption in a band above its thumbnail, as tall as the
    tallest box, each column as wide as its widest caption or thumbnail (white beside it).
    Panels are 4 white pixels apart."""
    from engine.report import _caption_size, _grid

    bw, bh = _caption_size("annotation")
    other = _caption_size("pseudo labels")
    fits = np.full((3 * bh, bw, 3), 100, np.uint8)
    assert _grid([[(fits, "annotation")]]).shape == (3 * bh, bw + 4, 3)  # in place
    assert _grid([[(fits[:, 1:], "annotation")]]).shape == (bh + 3 * bh, bw + 4, 3)  # a band
    assert _grid([[(fits[1:], "annotation")]]).shape == (bh + 3 * bh - 1, bw + 4, 3)
    for thumb in (fits[:, 1:], fits[1:]):
        band = _grid([[(thumb, "annotation"), (thumb, "pseudo labels")]])  # one photo's
        h, w = thumb.shape[:2]
        assert band.shape == (bh + h, max(bw, w) + 4 + max(other[0], w) + 4, 3)
        # the thumbnail below the band, its first row too (before, the box covered it)
        assert (band[bh : bh + h, :w] == 100).all()
        assert (band[bh:, w:bw] == 255).all() and (band[:bh, bw : bw + 4] == 255).all()
        assert not band[0, :bw].any()  # its caption's box in the band
    two_rows = _grid([[(fits, "annotation")], [(fits, "")]])
    assert two_rows.shape == (2 * 3 * bh + 4, bw + 4, 3)
    assert (two_rows[3 * bh : 3 * bh + 4] == 255).all() and (two_rows[:, bw:] == 255).all()
    assert (two_rows[3 * bh + 4 :, :bw] == 100).all()  # no caption: the thumbnail as it is


def test_compare_chart_has_room_for_a_perfect_scores_value(tmp_path, monkeypatch):
    """compare's chart ended its axes at 100 (1 for BF1): a source that scores 100 wrote its
    value above the axes, over the frame and against the panel's title."""
    import engine.compare.results
    from engine.compare import CompareReport, SourceScores, write_plot
    from engine.metrics import ClassScorer

    figures = saved_figures(monkeypatch, engine.compare.results)
    scorer = ClassScorer()
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 1
    scorer.update(mask, mask)
    rep = CompareReport("Bicycle", None, [SourceScores("same", str(tmp_path), scorer.compute())], 1)
    write_plot(rep, tmp_path / "p.png")
    for ax in figures[0].axes:
        (text,) = ax.texts
        top = ax.get_ylim()[1]
        assert text.xy[1] in (1.0, 100.0) and top >= 1.05 * text.xy[1], (ax.get_title(), top)


def test_compare_names_the_class_as_the_subset_spells_it(world):
    """engine compare --class BICYCLE on a subset of Bicycle titled its table, its JSON's
    ``class`` and its Markdown ``BICYCLE``: the spelling typed, not the one recorded."""
    from engine.compare import CompareConfig, compare

    tmp, _, subset, _ = world
    rep = compare(CompareConfig("BICYCLE", str(subset.root), (("pseudo", tmp / "run"),)))
    assert rep.class_name == "Bicycle" and rep.to_markdown().startswith("**Bicycle**")


def test_report_says_how_the_predictions_were_made(world):
    """The predictions' predict.json travels into report.json; a departure from the release's
    single-scale inference (test-time augmentation, the guided filter) is a note in report.md."""
    tmp, data, subset, _ = world
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pred=str(tmp / "pred"), chart=False)
    res = build_report(cfg)
    assert res.data["prediction"] is None  # predictions made elsewhere: nothing claimed
    meta = tmp / "pred" / "predict.json"
    release = {"checkpoint": "m.pt", "size": None, "mode": "efficient", "scales": [1.0],
               "flip": False, "guided_filter": False, "gf_radius": 0, "gf_eps": 1e-4,
               "gf_guide": "rgb", "gf_subsample": 0}  # fmt: skip
    meta.write_text(json.dumps({"config": release}))
    res = build_report(cfg)
    assert res.data["prediction"]["release_inference"] is True
    assert "refined at inference" not in res.markdown.read_text()
    meta.write_text(json.dumps({"config": {**release, "guided_filter": True, "flip": True}}))
    res = build_report(cfg)
    assert res.data["prediction"]["release_inference"] is False
    md = res.markdown.read_text()
    want = "flip, guided filter (rgb guide, radius auto, eps 0.0001, subsample auto)"
    assert f"refined at inference**: {want}" in md
    from typer.testing import CliRunner

    from cli import app

    shown = CliRunner().invoke(app, ["info", str(tmp / "rep")], env={"COLUMNS": "200"}).output
    assert f"predictions refined at inference: {want}" in shown  # engine info says it too
    assert res.data["prediction"]["gf_guide"] == "rgb"
    meta.write_text(
        json.dumps(
            {
                "config": {**release, "sliding_window": True},
                "size_source": "x",
                "checkpoint_step": 7,
                "weights_sha256": "ab12",
            }  # fmt: skip
        )
    )
    res = build_report(cfg)  # tiles averaged: not the release's whole-image pass either
    assert res.data["prediction"]["sliding_window"] is True
    assert res.data["prediction"]["size_source"] == "x"
    # which weights made them: the step and the digest travel with the settings
    assert res.data["prediction"]["checkpoint_step"] == 7
    assert res.data["prediction"]["weights_sha256"] == "ab12"
    assert res.data["prediction"]["release_inference"] is False
    assert "refined at inference**: sliding window; not the release's whole-image" in (
        res.markdown.read_text()
    )
    first = {k: v for k, v in release.items() if k not in ("gf_guide", "gf_subsample")}
    meta.write_text(json.dumps({"config": {**first, "guided_filter": True, "gf_radius": 2}}))
    md = build_report(cfg).markdown.read_text()  # the first version's filter: grey, exact
    assert "guided filter (grey guide, radius 2, eps 0.0001, subsample 1)" in md
    meta.write_text("{not json")
    with pytest.raises(ValueError, match=r"predict\.json: not valid JSON"):
        build_report(cfg)


def test_a_subset_of_the_model_s_training_split_is_warned_about(world, caplog):
    """predict.json says what the model was trained on; a report on annotated images of that
    split scores images the model learnt, and says so (report.md and the log)."""
    tmp, data, subset, _ = world
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pred=str(tmp / "pred"), chart=False)
    meta = tmp / "pred" / "predict.json"
    release = {"checkpoint": "m.pt", "scales": [1.0]}
    for split, warned in (("train", False), (subset.split, True)):
        trained = {"data": "runs/fused", "split": split}
        meta.write_text(json.dumps({"config": release, "trained_on": trained}))
        caplog.clear()
        with caplog.at_level("WARNING", logger="engine.report"):
            res = build_report(cfg)
        assert res.data["prediction"]["trained_on"] == trained
        found = [w for w in res.data["warnings"] if "the split the model was trained on" in w]
        assert bool(found) == warned and (
            not warned or found[0] in [r.getMessage() for r in caplog.records]
        )
        assert ("the prediction row scores images it learnt" in res.markdown.read_text()) == warned


def test_a_bad_dataset_root_fails_before_the_scoring(world, monkeypatch):
    """--data pointing one folder too deep is reported before the subset is scored (minutes on
    a large 4K subset), not after it."""
    import engine.report.build as report

    tmp, data, subset, _ = world

    def scored(*args, **kwargs):
        raise AssertionError("scored before the dataset root was checked")

    monkeypatch.setattr(report, "score_class", scored)
    with pytest.raises(FileNotFoundError, match="no image split folders found"):
        build_report(
            ReportConfig(
                str(subset.root),
                str(tmp / "bad"),
                pred=str(tmp / "pred"),
                data=str(data / "images"),
            )
        )
    assert not (tmp / "bad").exists()


def test_a_dataset_of_other_classes_than_the_model_s_fails_before_the_scoring(world, monkeypatch):
    """A 20-class dataset as --data of a model of MaSS13K + Bicycle: its class 7 (Extra 7) was
    scored as Bicycle without a word (ids above 7 failed as 'not class ids', after the subset
    was scored)."""
    import engine.report.build as report
    from annotations.taxonomy import MASS13K, ClassInfo, Taxonomy

    tmp, data, subset, _ = world
    extra = tuple(ClassInfo(i, f"Extra {i}", (i, 0, 0)) for i in range(7, 20))
    Taxonomy(MASS13K.classes + extra).save(data / "taxonomy.json")
    (data / "dataset.yaml").write_text(
        "images: images/{split}\nlabels: annotations/{split}\ntaxonomy: taxonomy.json\n"
    )

    def scored(*args, **kwargs):
        raise AssertionError("scored before the dataset's classes were checked")

    monkeypatch.setattr(report, "score_class", scored)
    cfg = ReportConfig(str(subset.root), str(tmp / "r"), pred=str(tmp / "pred"), data=str(data))
    with pytest.raises(ValueError) as e:
        build_report(cfg)
    assert str(e.value) == (
        f"{data}: the dataset's class 7 is 'Extra 7', the predictions' (MaSS13K and the "
        "subset's class) 'Bicycle': the per-class table would score its labels as other classes "
        "(dataset: 20 classes, predictions: 8); give the dataset the model was trained on as "
        "--data, or the predictions' taxonomy.json as --taxonomy"
    )
    assert not (tmp / "r").exists()
    # a dataset of the model's first classes (MaSS13K's) is the usual case: scored
    Taxonomy(MASS13K.classes).save(data / "taxonomy.json")
    monkeypatch.undo()
    assert build_report(replace(cfg, chart=False)).data["per_class"] is not None


def test_a_missing_label_folder_fails_before_the_scoring(world, monkeypatch):
    """The per-class table needs the split's 7-class labels: a dataset without them is reported
    before the subset is scored, naming the folder; without --pred no labels are needed."""
    import shutil

    import engine.report.build as report

    tmp, data, subset, _ = world
    shutil.rmtree(data / "annotations" / "test")
    scored = report.score_class

    def refuse(*args, **kwargs):
        raise AssertionError("scored before the label folder was checked")

    monkeypatch.setattr(report, "score_class", refuse)
    with pytest.raises(FileNotFoundError, match=r"annotations/test: label folder for split"):
        build_report(
            ReportConfig(str(subset.root), str(tmp / "bad"), pred=str(tmp / "pred"), data=str(data))
        )
    assert not (tmp / "bad").exists()
    monkeypatch.setattr(report, "score_class", scored)
    res = build_report(
        ReportConfig(str(subset.root), str(tmp / "ok"), pseudo=str(tmp / "run"), data=str(data))
    )
    assert res.data["per_class"] is None
    assert res.data["files"]["overlays"]  # the images were found without labels
    # a dataset whose spec has no labels at all (labels: null): no per-class table, no error
    (data / "dataset.yaml").write_text("images: images/{split}\nlabels: null\n")
    cfg = ReportConfig(
        str(subset.root), str(tmp / "nolabels"), pred=str(tmp / "pred"), data=str(data)
    )
    res = build_report(cfg)
    assert res.data["per_class"] is None and res.data["table4"][0]["kind"] == "joint-trained model"


def test_per_class_truth_is_found_beside_a_spec_file(world):
    """Images outside the subset take the new class from the dataset's ``new_classes`` truth,
    under the dataset's root: the same table whether --data names the root or its spec file."""
    tmp, data, subset, gt = world
    small = write_subset(tmp / "one", "Bicycle", "test", {"img000": gt["img000"]}, {"img000": "h"})
    for s in ("img001", "img002"):
        write_label(
            data / "new_classes" / "bicycle" / "test" / f"{s}.png", (gt[s] == 1).astype(np.uint8)
        )
    (data / "spec.yaml").write_text("images: images/{split}\nlabels: annotations/{split}\n")

    def per_class(dataset: str, folder: str) -> dict:
        cfg = ReportConfig(
            str(small.root), str(tmp / folder), pred=str(tmp / "pred"), data=dataset, chart=False
        )
        return build_report(cfg).data["per_class"]

    by_root = per_class(str(data), "root")
    by_spec = per_class(str(data / "spec.yaml"), "spec")
    assert by_spec == by_root
    # img001's second bicycle, missed by the model, is truth here (not counted as Others)
    assert by_root["classes"][7]["iou"] < 100.0


def test_report_and_compare_say_a_mask_edited_after_the_import(world, caplog):
    """A subset mask edited by hand after the import (img000's disk erased) is scored as it is
    now; engine fuse --corrections said so, engine report and engine compare scored it without a
    word. They say the same one line now, with two sources once, and nothing for the rest."""
    from engine.compare import CompareConfig, compare

    tmp, data, subset, gt = world
    mask = gt["img000"].copy()
    mask[mask == 1] = 0
    write_label(subset.mask_path("img000"), mask)
    said = (
        f"{subset.root}: 1 mask edited after the import (other pixel counts than subset.json "
        "records: img000): scored as it is now"
    )
    with caplog.at_level("WARNING"):
        build_report(
            ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"), chart=False)
        )
        assert [r.getMessage() for r in caplog.records if "edited" in r.getMessage()] == [said]
        caplog.clear()
        sources = (("p", tmp / "run"), ("q", tmp / "run"))
        compare(CompareConfig("bicycle", subset.root, sources, progress=False))
        assert [r.getMessage() for r in caplog.records if "edited" in r.getMessage()] == [said]


def test_compare_takes_the_subset_and_scores_as_the_report(world):
    """engine compare with an annotated subset as --gt: its masks and split, a label run and a
    prediction folder as sources, images outside the subset left out; the report's numbers."""
    from engine.compare import CompareConfig, compare

    tmp, data, subset, gt = world
    small = write_subset(tmp / "one", "Bicycle", "test", {"img001": gt["img001"]}, {"img001": "h"})
    res = build_report(
        ReportConfig(str(small.root), str(tmp / "rep"), pseudo=str(tmp / "run"), chart=False)
    )
    pseudo = res.data["table4"][0]
    cmp = compare(
        CompareConfig("bicycle", small.root, (("p", tmp / "run"),), progress=False)
    ).to_json()
    (row,) = cmp["sources"]
    assert cmp["images"] == 1 and row["folder"] == str(tmp / "run" / "labels" / "test")
    got = [round(row["iou"], 2), round(row["biou"], 2), round(row["bf1"], 4)]
    assert got == [pseudo["iou"], pseudo["biou"], pseudo["bf1"]]
    # both sources over the whole subset: the report's delta and its interval
    full = build_report(
        ReportConfig(
            str(subset.root), str(tmp / "rep2"), pseudo=str(tmp / "run"), pred=str(tmp / "pred"),
            data=str(data), chart=False,
        )
    ).data["table4"][1]  # fmt: skip
    from annotations.taxonomy import MASS13K

    tax = MASS13K.with_new_class("Bicycle").save(tmp / "taxonomy.json")  # the report's default
    both = compare(
        CompareConfig(
            "bicycle",
            subset.root,
            (("p", tmp / "run"), ("m", tmp / "pred")),
            taxonomy=tax,
            progress=False,
        )
    )
    assert both.rows[0].delta_interval is None
    assert both.rows[1].delta_interval == full["delta_interval"]
    got = [round(both.rows[1].delta[key], nd) for key, nd in (("iou", 2), ("biou", 2), ("bf1", 4))]
    assert got == [full["delta"][key] for key in ("iou", "biou", "bf1")]  # the same rounding
    assert "Δ of m vs p, 95% interval over the 3 annotated images" in both.to_markdown()
    with pytest.raises(
        ValueError, match=r"one/subset\.json: this subset annotates Bicycle, not Car"
    ):
        compare(CompareConfig("Car", small.root, (("p", tmp / "run"),), progress=False))


def test_compare_and_report_give_the_same_delta_interval(tmp_path):
    """Five annotated images, enough to form an interval (engine.metrics.bootstrap.min_images):
    `engine compare` with both sources prints the report's delta interval, bound for bound."""
    from annotations.taxonomy import MASS13K
    from engine.compare import CompareConfig, compare

    data = tmp_path / "data"
    make_dataset(data, "test", n=5, size=(H, W), grey=True)
    truth = {f"img{i:03d}": [disk(H, W, 20 + 5 * i, 25 + 7 * i, 6 + i)] for i in range(5)}
    truth["img004"].append(disk(H, W, 45, 15, 6))  # the model misses this one
    gt = {s: np.any(m, 0).astype(np.uint8) for s, m in truth.items()}
    subset = write_subset(tmp_path / "subset", "Bicycle", "test", gt, {s: "hand" for s in gt})
    grown = {s: [ndimage.binary_dilation(m, iterations=1 + i % 3) for m in ms]
             for i, (s, ms) in enumerate(truth.items())}  # fmt: skip
    make_run(tmp_path / "run", data, grown, (H, W))
    for s in truth:
        pred = read_label(data / "annotations" / "test" / f"{s}.png")
        pred[truth[s][0]] = 7
        write_label(tmp_path / "pred" / "test" / f"{s}.png", pred)
    full = build_report(
        ReportConfig(
            str(subset.root), str(tmp_path / "rep"), pseudo=str(tmp_path / "run"),
            pred=str(tmp_path / "pred"), data=str(data), chart=False,
        )
    ).data["table4"][1]  # fmt: skip
    assert all(full["delta_interval"][key] is not None for key in ("iou", "biou", "bf1"))
    both = compare(
        CompareConfig(
            "bicycle",
            subset.root,
            (("p", tmp_path / "run"), ("m", tmp_path / "pred")),
            taxonomy=MASS13K.with_new_class("Bicycle").save(tmp_path / "taxonomy.json"),
            progress=False,
        )
    )
    assert both.rows[1].delta_interval == full["delta_interval"]
    assert "interval over the 5 annotated images (paired bootstrap): IoU [" in both.to_markdown()
    # docs/loop.md's recipe to draw it again: per-image counts in subset.json's stems order
    from engine.metrics import ClassScorer
    from engine.metrics.bootstrap import class_counts, interval_record

    stems = json.loads((subset.root / "subset.json").read_text())["stems"]
    counts = []
    for folder, class_id in (
        (tmp_path / "run" / "labels" / "test", 1),
        (tmp_path / "pred" / "test", 7),
    ):
        scorer = ClassScorer(1, pred_class_id=class_id)
        for s in stems:
            scorer.update(
                read_label(folder / f"{s}.png"), read_label(subset.root / "masks" / f"{s}.png")
            )
        counts.append(class_counts(scorer.per_image, 1))
    assert interval_record(*counts) == full["delta_interval"]
    reversed_order = interval_record(*(c[:, ::-1] for c in counts))
    assert reversed_order != full["delta_interval"]  # the draw is of positions


def test_a_source_equal_to_the_annotation_is_warned_about(world, caplog):
    """Pseudo labels exported and imported without correction (the subset is the pseudo labels)
    score 100: the report and compare say that row measures nothing, in the JSON, the Markdown
    and a log warning; real annotations raise none."""
    from engine.compare import CompareConfig, compare

    tmp, data, subset, gt = world
    run_labels = tmp / "run" / "labels" / "test"
    copied = {s: read_label(run_labels / f"{s}.png") for s in subset.stems}
    echo = write_subset(tmp / "echo", "Bicycle", "test", copied, {s: "coco.json" for s in copied})
    cfg = ReportConfig(
        str(echo.root), str(tmp / "rep"), pseudo=str(tmp / "run"), pred=str(tmp / "pred"),
        data=str(data), chart=False, overlays=0,
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="engine.report"):
        res = build_report(cfg)
    pseudo, model = res.data["table4"]
    assert pseudo["iou"] == 100.0 and pseudo["matches_annotation"]
    assert not model["matches_annotation"]
    (warning,) = res.data["warnings"]
    assert warning.startswith(f"{echo.root}: the annotated masks equal the pseudo labels on every")
    assert "imported without being corrected" in warning
    assert [r.getMessage() for r in caplog.records] == [warning]
    assert f"> **Warning**: {warning}" in res.markdown.read_text()
    # the real annotation: nothing to warn about
    real = build_report(replace(cfg, subset=str(subset.root), out=str(tmp / "rep2")))
    assert real.data["warnings"] == [] and "Warning" not in real.markdown.read_text()
    # compare, given the subset's masks folder as --gt: a subset, so the split's other
    # predictions are left out, and the source equal to it is named
    rep = compare(
        CompareConfig("Bicycle", echo.root / "masks", (("p", tmp / "run"),), progress=False)
    )
    assert rep.images == 3 and rep.rows[0].matches_truth
    (line,) = rep.warnings()
    assert line.startswith(f"{run_labels}: source 'p' equals the ground truth {echo.root}/masks")
    assert rep.to_json()["warnings"] == [line] and f"> **Warning**: {line}" in rep.to_markdown()
    assert (
        compare(
            CompareConfig("Bicycle", subset.root / "masks", (("p", tmp / "run"),), progress=False)
        ).warnings()
        == []
    )


def test_an_unreadable_image_costs_its_overlay_only(world, caplog):
    """The scores need no image; an image that cannot be decoded loses its overlay (said in a
    warning) and the next image is drawn, instead of the whole report failing."""
    tmp, data, subset, _ = world
    image = data / "images" / "test" / "img001.jpg"
    image.write_bytes(image.read_bytes()[:300])  # truncated
    cfg = ReportConfig(
        str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"), data=str(data),
        chart=False, overlays=2,
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="engine.report"):
        res = build_report(cfg)
    assert [p.name for p in res.overlays] == ["img000.jpg", "img002.jpg"]
    (record,) = caplog.records
    assert record.getMessage().startswith(f"{image}: cannot decode image")
    assert res.data["table4"][0]["images"] == 3


def test_a_fused_dataset_as_data_reads_its_source_datasets_precise_labels(world, caplog):
    """--data given the fused dataset: its labels hold pseudo labels, which the per-class table
    would take for truth; the report reads its source dataset instead (with a warning), and
    says so; a source that cannot be found is a clear error."""
    import json
    import shutil

    from engine.fusion import FuseConfig, fuse

    tmp, data, subset, _ = world
    fuse(FuseConfig(data=data, pseudo=(tmp / "run",), out=tmp / "fused", progress=False))
    cfg = ReportConfig(
        str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"), pred=str(tmp / "pred"),
        data=str(tmp / "fused"), chart=False, overlays=0,
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="engine.report"):
        via_fused = build_report(cfg).data
    assert caplog.records[0].getMessage() == (
        f"{tmp / 'fused'} is a fused dataset: its labels hold pseudo labels, so the report "
        f"reads images and precise labels from its source dataset {data}"
    )
    assert (
        via_fused["data_source"]
        == f"{tmp / 'fused' / 'fuse.json'}: the source of the fused dataset (--data)"
    )
    direct = build_report(replace(cfg, data=str(data), out=str(tmp / "rep2"))).data
    assert via_fused["per_class"] == direct["per_class"]
    record = json.loads((tmp / "fused" / "fuse.json").read_text())
    shutil.move(data, tmp / "moved")
    with pytest.raises(FileNotFoundError, match="its source dataset .* is not found from here"):
        build_report(replace(cfg, out=str(tmp / "rep3")))
    assert record["inputs"]["data"] == str(data.absolute())


def test_a_fused_datasets_source_is_found_from_a_gone_folder_or_moved_with_it(world, monkeypatch):
    """fuse.json's absolute source path was "CWD/../data", which stops resolving once CWD is
    removed; it is normalised now. A fused dataset moved together with its source is found
    beside it (both typed relative to a working directory that is gone)."""
    import os
    import shutil
    from pathlib import Path

    from engine.fusion import FuseConfig, fuse
    from engine.report import _fused_source

    tmp, data, _, _ = world
    (tmp / "cwd").mkdir()
    monkeypatch.chdir(tmp / "cwd")
    rel = Path(os.path.relpath(data, tmp / "cwd"))
    fuse(FuseConfig(data=rel, pseudo=(tmp / "run",), out=Path("../fused é"), progress=False))
    monkeypatch.chdir(tmp)
    shutil.rmtree(tmp / "cwd")
    assert _fused_source(tmp / "fused é") == data  # fuse.json's inputs.data
    project = tmp / "project"
    project.mkdir()
    shutil.move(data, project / data.name)
    shutil.move(tmp / "fused é", project / "fused é")
    found = _fused_source(project / "fused é")
    assert found is not False and found is not None and found.resolve() == project / data.name


def test_a_source_another_process_still_writes_is_refused_before_any_file(world):
    """A label run still labelling, or predictions engine predict still writes (replacing the
    maps of other settings), was scored as if finished."""
    import os

    from engine.runlock import FolderInUse, exclusive

    tmp, data, subset, _ = world
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"),
                       pred=str(tmp / "pred"), data=str(data))  # fmt: skip
    for folder, command in ((tmp / "run", "engine label"), (tmp / "pred", "engine predict")):
        with exclusive(folder, command), pytest.raises(FolderInUse) as e:
            build_report(cfg)
        assert str(e.value).startswith(f"{folder}: {command} (pid {os.getpid()} on ")
        assert "engine report would read its label maps half written" in str(e.value)
    assert not (tmp / "rep").exists()
    assert build_report(cfg).json.is_file()  # finished: reported


def test_report_md_shows_names_as_typed_and_its_image_links_open_their_files(world):
    """A class, subset or image named with Markdown's signs (``*x*``, ``<b>``, ``|``, a
    backtick) or a URL's (``#``, ``?``, ``%``, a space): rendered, report.md showed ``Bi<b>x``
    as ``Bix`` and ``*x*`` in italics, and its overlay links ended at the space or ``#``."""
    markdown_it = pytest.importorskip("markdown_it")
    from html.parser import HTMLParser
    from urllib.parse import unquote

    tmp, data, subset, _ = world
    res = build_report(ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"),
                                    data=str(data), chart=False, overlays=1))  # fmt: skip
    name, odd = 'Bi<b>x & "co" | *x* _y_ `z`', "a #1?x%20y [b] *c*"
    doc = dict(res.data, class_name=name, title=f"{name}: report", subset="sub `1` #2")
    doc["files"] = dict(doc["files"], overlays=[f"overlays/{odd}.jpg"])
    doc["per_class"] = {"split": "test", "images": 1, "mean": {}, "classes": [{"name": name}]}
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(render_markdown(doc))

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.text, self.srcs, self.alts, self.cells = "", [], [], []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "img":
                self.srcs.append(a["src"])
                self.alts.append(a["alt"])
            if tag == "td":
                self.cells.append("")

        def handle_data(self, text):
            self.text += text
            if self.lasttag == "td" and self.cells:
                self.cells[-1] += text

    page = Page()
    page.feed(html)
    assert f"{name}: report" in page.text and f"New class {name}," in page.text
    assert "sub `1` #2" in page.text
    assert name in [c.strip() for c in page.cells]  # the per-class table: one cell, as typed
    assert page.alts == [odd] and [unquote(s) for s in page.srcs] == [f"overlays/{odd}.jpg"]


def test_a_report_without_matplotlib_is_refused_before_the_scoring(world, monkeypatch):
    """``pip install mass-engine`` (no ``plot`` extra) has no matplotlib: the chart failed
    after the scoring (minutes over a subset of 4K photos), all of it lost."""
    import engine.report.build as report_module

    tmp, data, subset, gt = world
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    scored = []
    monkeypatch.setattr(report_module, "score_class", lambda *a: scored.append(a))
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"))
    with pytest.raises(RuntimeError, match=r"chart needs matplotlib.*--no-chart"):
        build_report(cfg)
    assert not scored and not (tmp / "rep").exists()


def test_an_image_name_that_is_not_utf8_is_reported_and_linked(tmp_path):
    """A dataset copied from a latin-1 system holds ``caf\\xe9.jpg``. Its overlay's Markdown
    link was percent-encoded strictly (UnicodeEncodeError: "surrogates not allowed") and
    ``engine report`` stopped with exit code 2 after writing report.json, no report.md. The
    link holds the file's bytes (``caf%E9``), the caption the escape report.json shows
    (``caf\\udce9``); ``engine compare --markdown`` naming a folder so named writes its file too."""
    import os
    from urllib.parse import unquote

    from engine.compare import CompareConfig, compare

    data, stem = tmp_path / "data", os.fsdecode(b"caf\xe9")
    make_dataset(data, "test", n=1, size=(H, W), grey=True)
    for folder, ext in (("images", ".jpg"), ("annotations", ".png")):
        os.rename(data / folder / "test" / f"img000{ext}", data / folder / "test" / f"{stem}{ext}")
    gt = {stem: disk(H, W, 30, 25, 12).astype(np.uint8)}
    subset = write_subset(tmp_path / "subset", "Bicycle", "test", gt, {stem: "hand"})
    run = tmp_path / f"run{stem}"
    make_run(run, data, {stem: [disk(H, W, 30, 25, 12)]}, (H, W))  # compare warns, naming it
    res = build_report(ReportConfig(str(subset.root), str(tmp_path / "rep"), pseudo=str(run)))
    text = res.markdown.read_bytes().decode("utf-8")  # UTF-8 still
    assert "![caf\\udce9](overlays/caf%E9.jpg)" in text
    for url in re.findall(r"\]\(([^)]+)\)", text):
        assert (tmp_path / "rep" / unquote(url, errors="surrogateescape")).is_file(), url
    md = tmp_path / "compare.md"
    compare(CompareConfig("Bicycle", subset.root, (("p", run),), markdown_out=md, progress=False))
    assert "runcaf\\udce9/labels" in md.read_bytes().decode("utf-8")


def test_overlay_takes_no_mask_as_its_signature_says():
    """``overlay(image, None, ...)`` is the bare thumbnail (the review's image without a
    panel); its ``mask`` was annotated ``np.ndarray`` alone, so a type checker flagged the
    documented call."""
    import typing

    from engine.outputs import overlay

    assert type(None) in typing.get_args(typing.get_type_hints(overlay)["mask"])
    image = np.full((4, 6, 3), 9, np.uint8)
    np.testing.assert_array_equal(overlay(image, None, (255, 0, 0), size=(6, 4)), image)


def test_the_record_holds_no_torch_facts_where_torch_is_loaded(world):
    """``engine report`` computes nothing with torch; its report.json recorded torch's kernel
    set and threads where the process had imported torch (a notebook, the demo), and not from a
    fresh ``engine report``: the same report differed by where it was made."""
    import torch  # noqa: F401 - loaded, as in a notebook

    tmp, data, subset, gt = world
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"), data=str(data))
    env = json.loads(build_report(cfg).json.read_text())["environment"]
    assert "cpu_capability" not in env and "torch_threads" not in env and "gpus" not in env


def test_round_score_writes_none_for_an_undefined_score_and_rounds_the_rest():
    """An undefined score (NaN: no pixel of the class anywhere) is None in report.json, as is
    a score that is not there; numbers are rounded to the digits given."""
    from engine.report import round_score

    assert round_score(float("nan"), 2) is None
    assert round_score(np.float64("nan"), 4) is None
    assert round_score(None, 2) is None
    assert round_score(np.float32(12.3456), 2) == 12.35
    assert round_score(0.123456, 4) == 0.1235


def test_the_overlays_are_of_the_images_with_the_most_annotated_class_pixels(world):
    """--overlays N draws the N subset images whose annotation holds the most class pixels:
    img001's two disks (radii 8 and 10) outnumber img000's one of radius 12, and img002 has
    none; by name alone img000 came first."""
    tmp, data, subset, gt = world
    assert [int((gt[s] == 1).sum()) for s in ("img000", "img001", "img002")] == [441, 514, 0]
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"),
                       data=str(data), chart=False, overlays=2)  # fmt: skip
    res = build_report(cfg)
    assert [p.stem for p in res.overlays] == ["img001", "img000"]


def test_each_overlay_panel_tints_its_source_s_class_pixels(world, monkeypatch):
    """Each panel tints the pixels its source gives the class (the model's at its own id 7,
    the pseudo labels' at 1) and marks their 255; nothing checked what the panels held, and a
    map of everything but the class drew as well."""
    import engine.report.figures

    tmp, data, subset, gt = world
    masks = []
    draw = engine.report.figures.overlay
    monkeypatch.setattr(
        engine.report.figures, "overlay", lambda im, m, *a: masks.append(m) or draw(im, m, *a)
    )
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"),
                       pred=str(tmp / "pred"), data=str(data), chart=False, overlays=1)  # fmt: skip
    res = build_report(cfg)
    assert [p.stem for p in res.overlays] == ["img001"]
    pseudo = read_label(tmp / "run" / "labels" / "test" / "img001.png")
    pred = read_label(tmp / "pred" / "test" / "img001.png")
    # the first three: the whole image's panels (the enlarged ones come after)
    annotation, pseudo_panel, pred_panel = masks[:3]
    np.testing.assert_array_equal(annotation, gt["img001"])
    np.testing.assert_array_equal(pseudo_panel, np.where(pseudo == 255, 255, pseudo == 1))
    np.testing.assert_array_equal(pred_panel, np.where(pred == 255, 255, pred == 7))
    assert (pred_panel == 1).any() and (pred_panel == 0).any()


def test_a_source_off_by_a_few_pixels_of_the_class_does_not_equal_the_annotation(world):
    """ "Equal to the annotation" is judged on the class's IoU of each image: pseudo labels
    that the annotation differs from by a 4x4 hole in one disk (16 of its 581 pixels: IoU
    97.25) are scored, not flagged; the background's IoU there (4,203 / 4,219 = 99.62) is
    over 99.5 on every image and says nothing about the class."""
    tmp, data, subset, gt = world
    run_labels = tmp / "run" / "labels" / "test"
    copied = {s: read_label(run_labels / f"{s}.png") for s in subset.stems}
    assert (copied["img000"][26:30, 26:30] == 1).all()
    copied["img000"][26:30, 26:30] = 0
    near = write_subset(tmp / "near", "Bicycle", "test", copied, {s: "coco.json" for s in copied})
    res = build_report(ReportConfig(str(near.root), str(tmp / "rep"), pseudo=str(tmp / "run"),
                                    data=str(data), chart=False, overlays=0))  # fmt: skip
    (pseudo,) = res.data["table4"]
    assert pseudo["matches_annotation"] is False and res.data["warnings"] == []


def test_fused_labels_lacking_the_first_image_are_compared_on_the_images_they_hold(world):
    """Fused labels of img001 and img002, not img000: the pseudo labels' scores the delta is
    taken against are theirs on img001 and img002 (where they mark the class on img002, which
    has none), found by name, not the first two of the pseudo labels' images."""
    fused, pseudo, gt = _fused_on_two(world, ("img001", "img002"))
    on_last_two = _reference_scores([(pseudo[s], gt[s]) for s in ("img001", "img002")])
    on_first_two = _reference_scores([(pseudo[s], gt[s]) for s in ("img000", "img001")])
    assert on_first_two["iou"] > on_last_two["iou"] + 3  # img002's 300 false pixels
    for key, nd in (("iou", 2), ("biou", 2), ("bf1", 4)):
        truth = {"iou": 100.0, "biou": 100.0, "bf1": 1.0}[key]
        assert fused["delta"][key] == round(truth - on_last_two[key], nd), key


def test_each_source_equal_to_the_annotation_is_given_its_own_cause():
    """Fused labels that fused the subset as corrections (``fused_by``) are its masks; without
    that record, and for the model, the folder may be the annotations; the pseudo labels were
    likely exported and imported uncorrected, whether or not fused labels fused the subset."""
    from pathlib import Path

    from engine.report import match_warnings

    def rows(*kinds):
        return [{"kind": k, "matches_annotation": True, "images": 3} for k in kinds]

    end = "on every image (IoU >= 99.5 on each of 3 images), so their row measures nothing: "
    head = "sub: the annotated masks equal the "
    corrections = ("they were fused with this subset as corrections (f/fuse.json: engine fuse "
                   "--corrections), so they are its masks; score fusion on a subset it was not "
                   "given (a test split)")  # fmt: skip
    themselves = "is that folder the annotations themselves?"
    exported = ("were the pseudo labels exported by engine annotate export imported without "
                "being corrected?")  # fmt: skip
    kinds = ("pseudo labels", "fused labels", "joint-trained model")
    assert match_warnings(rows(*kinds), "sub", Path("f/fuse.json")) == [
        head + "pseudo labels " + end + exported,
        head + "fused labels " + end + corrections,
        head + "joint-trained model " + end + themselves,
    ]
    assert match_warnings(rows(*kinds), "sub") == [
        head + "pseudo labels " + end + exported,
        head + "fused labels " + end + themselves,
        head + "joint-trained model " + end + themselves,
    ]
    assert match_warnings([{**rows("fused labels")[0], "matches_annotation": False}], "sub") == []


def test_report_md_holds_the_per_class_heading_and_the_chart(world):
    """report.md's per-class table is under its heading (the split and how many images it
    scored) and the chart is linked beside the table, as report.json lists it."""
    tmp, data, subset, _ = world
    res = build_report(ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"),
                                    pred=str(tmp / "pred"), data=str(data), overlays=0))  # fmt: skip
    lines = res.markdown.read_text().splitlines()
    at = lines.index("## Joint-trained model, per class (test split, 3 images)")
    assert lines[at + 1 : at + 4] == ["", "| class | IoU | BIoU | BF1 |", "|---|---|---|---|"]
    assert res.data["files"]["chart"] == "chart.png" and lines[-1] == "![scores](chart.png)"


@pytest.mark.parametrize("out", ["new", "empty"])
def test_a_full_disk_at_the_first_overlay_leaves_no_folder_of_its_own(world, monkeypatch, out):
    """The disk full at the first overlay: a new --out was left holding its .lock and an empty
    overlays/ (an empty one given, the same two); now it is gone, or empty again."""
    import errno

    import annotations.fileio

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(annotations.fileio.atomic, "atomic_file", full)
    tmp, data, subset, _ = world
    (tmp / "empty").mkdir()
    cfg = ReportConfig(str(subset.root), str(tmp / out / "rep" if out == "new" else tmp / out),
                       pseudo=str(tmp / "run"), data=str(data), chart=False)  # fmt: skip
    with pytest.raises(OSError) as e:
        build_report(cfg)
    assert e.value.errno == errno.ENOSPC and e.value.filename.endswith(".jpg")
    assert not (tmp / "new").exists() and list((tmp / "empty").iterdir()) == []


def test_a_rerun_failing_at_its_first_overlay_leaves_the_earlier_report_finished(
    world, monkeypatch
):
    """``engine report`` run again over a finished report, the disk full at its first overlay:
    its report.json stayed set aside, and engine info said the report did not finish (exit 1)
    of a folder holding the earlier report unchanged. Nothing new written: the earlier
    report.json is back, and info reads the finished report (exit 0)."""
    import errno

    from typer.testing import CliRunner

    import annotations.fileio
    from cli import app

    tmp, data, subset, _ = world
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"),
                       data=str(data), chart=False)  # fmt: skip
    out = build_report(cfg).json.parent
    record = (out / "report.json").read_bytes()

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(annotations.fileio.atomic, "atomic_file", full)
    with pytest.raises(OSError):
        build_report(cfg)
    assert (out / "report.json").read_bytes() == record
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".lock"]
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 0 and "not finished" not in res.output, res.output


def test_report_and_compare_read_a_fused_datasets_records_once(world, monkeypatch):
    """engine report --fused F and engine compare --source F read F's fuse.json once, and
    engine compare --gt F --split S its dataset.yaml once, with the same scores: before,
    fuse.json was read three times by report (the fused dataset's check, the check of the
    datasets it lies in, the corrections it fused) and twice by compare, and compare loaded
    the ground truth's spec twice (its own probe, then ground_truth's)."""
    from collections import Counter
    from pathlib import Path

    from engine.compare import CompareConfig, compare
    from engine.fusion import FuseConfig, fuse

    tmp, data, subset, _ = world
    fused = tmp / "fused"
    fuse(FuseConfig(data=data, pseudo=(tmp / "run",), out=fused, progress=False))
    reads: Counter = Counter()
    read_bytes, read_text = Path.read_bytes, Path.read_text

    def counted(real):
        def read(self, *args, **kwargs):
            if self.parent == fused:
                reads[self.name] += 1
            return real(self, *args, **kwargs)

        return read

    monkeypatch.setattr(Path, "read_bytes", counted(read_bytes))
    monkeypatch.setattr(Path, "read_text", counted(read_text))
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), pseudo=str(tmp / "run"),
                       fused=str(fused), chart=False, overlays=0)  # fmt: skip
    rows = {r["kind"]: r for r in build_report(cfg).data["table4"]}
    assert reads["fuse.json"] == 1, reads
    reads.clear()
    got = compare(CompareConfig("Bicycle", subset.root, (("f", fused),), progress=False))
    assert reads["fuse.json"] == 1, reads
    assert got.rows[0].scores.iou == pytest.approx(rows["fused labels"]["iou"], abs=0.005)
    reads.clear()
    compare(CompareConfig("Bicycle", fused, (("p", tmp / "run"),), split="test", progress=False))
    assert reads["dataset.yaml"] == 1 and reads["fuse.json"] == 1, reads


def test_a_fused_dataset_given_through_a_link_has_its_fuse_json_read_once(world, monkeypatch):
    """engine report --fused LINK and engine compare --source LINK, LINK a symbolic link to the
    fused dataset F, read F's fuse.json once, as given directly: the check of the datasets it
    lies in asks LINK and the folder it leads to, both F, and takes the state the fused
    dataset's own check read. Before, the folder it leads to read fuse.json a second time."""
    from collections import Counter
    from pathlib import Path

    from engine.compare import CompareConfig, compare
    from engine.fusion import FuseConfig, fuse

    tmp, data, subset, _ = world
    fused, link = tmp / "fused", tmp / "link"
    fuse(FuseConfig(data=data, pseudo=(tmp / "run",), out=fused, progress=False))
    link.symlink_to(fused, target_is_directory=True)
    reads: Counter = Counter()
    read_bytes, read_text = Path.read_bytes, Path.read_text

    def counted(real):
        def read(self, *args, **kwargs):
            if self.name == "fuse.json":
                reads[self.parent.resolve()] += 1
            return real(self, *args, **kwargs)

        return read

    monkeypatch.setattr(Path, "read_bytes", counted(read_bytes))
    monkeypatch.setattr(Path, "read_text", counted(read_text))
    cfg = ReportConfig(str(subset.root), str(tmp / "rep"), fused=str(link), chart=False,
                       overlays=0)  # fmt: skip
    build_report(cfg)
    assert reads == {fused.resolve(): 1}, reads
    reads.clear()
    compare(CompareConfig("Bicycle", subset.root, (("f", link),), progress=False))
    assert reads == {fused.resolve(): 1}, reads


@pytest.mark.slow
def test_a_rerun_killed_before_its_report_json_is_not_read_as_the_earlier_report(world):
    """``engine report`` run again over a finished report and killed as it put its new
    ``report.json`` in, its new chart, overlays and report.md written: the earlier report.json
    stayed beside them and engine info read a finished report (exit 0), a mix of two runs. The
    earlier record is set aside before the first new file goes in: info says the report did
    not finish (exit 1), and the rerun finishes it, removing the overlays that only the
    earlier report listed (the killed run's list of them is kept) and the set-aside record."""
    from typer.testing import CliRunner

    from cli import app
    from tests.loop_helpers import KILLED_AT, run_killed

    tmp, data, subset, _ = world
    out = tmp / "rep"
    args = ["report", "--subset", str(subset.root), "--out", str(out), "--pseudo",
            str(tmp / "run"), "--data", str(data), "--no-chart", "--no-progress"]  # fmt: skip
    assert CliRunner().invoke(app, [*args, "--overlays", "2"]).exit_code == 0
    first = json.loads((out / "report.json").read_text())["files"]["overlays"]
    run_killed(KILLED_AT, "report.json", *args, "--overlays", "1")
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert f"{out}: a report not finished: engine report (pid " in text
    assert CliRunner().invoke(app, [*args, "--overlays", "1"]).exit_code == 0
    files = json.loads((out / "report.json").read_text())["files"]["overlays"]
    assert len(first) == 2 and len(files) == 1
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == sorted(
        [".lock", "report.json", "report.md", *files]
    )
    assert CliRunner().invoke(app, ["info", str(out)]).exit_code == 0


@pytest.mark.slow
@pytest.mark.parametrize("at, drawn", [("overlays", 0), ("report.md", 3)])
def test_a_report_killed_before_its_report_json_is_said_unfinished_and_its_rerun_cleans_up(
    world, at, drawn
):
    """``kill -9`` of ``engine report`` as it put its first overlay in (crash-injection sweep,
    kill points 2 and 3), the folder holding ``overlays/`` alone: engine info said "no image
    split folders found" (exit 2), and the rerun, finding no report.json, kept the killed
    write's temporary file. Killed as it put ``report.md`` in (kill point 6), after
    ``report.json``: engine info read a finished report (exit 0) without its report.md.
    ``report.json`` comes last; info says the report did not finish and what finishes it (exit
    1); the rerun leaves no temporary file."""
    from typer.testing import CliRunner

    from cli import app
    from tests.loop_helpers import KILLED_AT, run_killed

    tmp, data, subset, _ = world
    out = tmp / "rep"
    args = ["report", "--subset", str(subset.root), "--out", str(out), "--pseudo",
            str(tmp / "run"), "--data", str(data), "--no-chart", "--no-progress"]  # fmt: skip
    run_killed(KILLED_AT, at, *args)
    assert len(list(out.rglob(".*.tmp"))) == 1
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert f"{out}: a report not finished: engine report (pid " in text
    assert f"stopped before writing report.json ({drawn} overlays drawn) and no process " in text
    assert text.startswith(f"{out}: a report not finished") and "run the same engine report" in text
    # its rerun removes the temporary file (before, "no engine command writes this folder")
    left = next(out.rglob(".*.tmp"))
    assert f"e.g. {left}: the next run of the command that writes {out} removes them" in text
    assert CliRunner().invoke(app, args).exit_code == 0
    assert sorted(out.rglob("*.tmp")) == [] and (out / "report.json").is_file()
