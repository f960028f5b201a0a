"""An annotated subset's photos replaced after the import: every command that scores against
the subset says so (before, a model or pseudo labels of the new photo were scored against the
old photo's masks without a word)."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from annotations.labelmap import write_label
from annotations.subset import read_subset
from annotations.taxonomy import MASS13K
from cli import app
from engine.annotate import ImportConfig, import_annotations
from engine.compare import CompareConfig, compare
from engine.datasets import SegDataset, load_spec, replaced_subset_photos
from engine.report import ReportConfig, build_report
from tests.loop_helpers import make_dataset
from trainer.validate import load_subset, subset_warnings

H, W = 48, 64


def _subset(tmp_path):
    data = tmp_path / "data"
    make_dataset(data, "test", n=3, size=(H, W))
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(3):
        m = np.zeros((H, W), np.uint8)
        m[10 : 20 + i, 10:30] = 1
        write_label(masks / f"img{i:03d}.png", m)
    out = tmp_path / "subset"
    import_annotations(ImportConfig("png", [str(masks)], "Bicycle", str(data), str(out),
                                    progress=False))  # fmt: skip
    return data, out


def test_the_import_records_each_photos_size(tmp_path):
    data, out = _subset(tmp_path)
    info = json.loads((out / "subset.json").read_text())
    photos = data / "images" / "test"
    assert info["image_bytes"] == {
        f"img{i:03d}": (photos / f"img{i:03d}.jpg").stat().st_size for i in range(3)
    }
    assert replaced_subset_photos(read_subset(out)) is None


def test_a_photo_replaced_since_the_import_is_named_wherever_the_subset_is_scored(tmp_path, caplog):
    data, out = _subset(tmp_path)
    photo = data / "images" / "test" / "img001.jpg"
    Image.fromarray(np.full((H, W, 3), 128, np.uint8)).save(photo, quality=70)  # another photo
    said = (
        f"{data / 'images' / 'test'}: 1 photo of the annotated subset {out} changed since its "
        "masks were imported (img001: another file size): the masks may not fit them; "
        "annotate them again"
    )
    assert replaced_subset_photos(read_subset(out)) == said
    res = CliRunner().invoke(app, ["info", str(out)], terminal_width=400)
    assert said in " ".join(res.output.split()), res.output
    # training's validation subsets, resolved against the training data
    spec = dataclasses.replace(load_spec(data), taxonomy=MASS13K.with_new_class("Bicycle"))
    target = load_subset(out, SegDataset(spec, "test"))
    assert said in subset_warnings([target], "train")
    # engine compare against the subset
    pred = tmp_path / "pred"
    for i in range(3):
        write_label(pred / f"img{i:03d}.png", np.zeros((H, W), np.uint8))
    with caplog.at_level(logging.WARNING, logger="engine.compare"):
        compare(CompareConfig("Bicycle", out, (("model", pred),), progress=False))
    assert said in [r.getMessage() for r in caplog.records]
    caplog.clear()  # engine report
    with caplog.at_level(logging.WARNING, logger="engine.report"):
        build_report(ReportConfig(str(out), str(tmp_path / "report"), pred=str(pred),
                                  overlays=0, chart=False, progress=False))  # fmt: skip
    assert said in [r.getMessage() for r in caplog.records]


def test_a_mask_edited_since_the_import_is_named_by_training_as_by_report(tmp_path, caplog):
    """engine train --val-subset scored masks edited after the import without the warning
    engine fuse, report and compare give; now the same line is among training's subset
    warnings (edited_masks_line), and an unedited subset gives none."""
    data, out = _subset(tmp_path)
    spec = dataclasses.replace(load_spec(data), taxonomy=MASS13K.with_new_class("Bicycle"))
    assert subset_warnings([load_subset(out, SegDataset(spec, "test"))], "train") == []
    m = np.zeros((H, W), np.uint8)
    m[10:30, 10:30] = 1  # img002 had rows 10..21 marked
    write_label(out / "masks" / "img002.png", m)
    said = (
        f"{out}: 1 mask edited after the import (other pixel counts than subset.json records: "
        "img002): scored as it is now"
    )
    target = load_subset(out, SegDataset(spec, "test"))
    assert subset_warnings([target], "train") == [said]
    pred = tmp_path / "pred"  # engine report says the same line
    for i in range(3):
        write_label(pred / f"img{i:03d}.png", np.zeros((H, W), np.uint8))
    with caplog.at_level(logging.WARNING, logger="engine.report"):
        build_report(ReportConfig(str(out), str(tmp_path / "report"), pred=str(pred),
                                  overlays=0, chart=False, progress=False))  # fmt: skip
    assert said in [r.getMessage() for r in caplog.records]


def test_edited_masks_are_decoded_only_for_the_warning(tmp_path, monkeypatch):
    """load_subset decoded every mask of the subset on every rank at every start (4.5 s for 100
    4K masks), before the checks that may refuse the run, for a line only the main rank prints.
    Now nothing is decoded when the subset is loaded; subset_warnings (main rank, after the
    checks) decodes each listed mask once, and says the same line."""
    from annotations.subset import Subset

    data, out = _subset(tmp_path)
    m = np.zeros((H, W), np.uint8)
    m[10:30, 10:30] = 1  # img002 had rows 10..21 marked
    write_label(out / "masks" / "img002.png", m)
    decoded = []
    read = Subset.mask_and_histogram
    monkeypatch.setattr(
        Subset, "mask_and_histogram", lambda s, stem: decoded.append(stem) or read(s, stem)
    )
    spec = dataclasses.replace(load_spec(data), taxonomy=MASS13K.with_new_class("Bicycle"))
    target = load_subset(out, SegDataset(spec, "test"))
    assert decoded == []
    assert subset_warnings([target], "train") == [
        f"{out}: 1 mask edited after the import (other pixel counts than subset.json records: "
        "img002): scored as it is now"
    ]
    assert decoded == ["img000", "img001", "img002"]
