"""engine evaluate / engine compare and the binary class scorer."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import engine.evaluate as ev
from annotations.labelmap import read_label, write_label
from annotations.taxonomy import MASS13K
from cli import app
from engine.compare import CompareConfig, compare, parse_source, parse_sources
from engine.evaluate import EvaluateConfig, evaluate
from engine.metrics import (
    ClassScorer,
    SegEvaluator,
    binary_class_scores,
    is_binary_mask,
    to_binary,
)

runner = CliRunner()


def _maps(seed: int, n: int, h: int = 24, w: int = 32, k: int = 7):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, k, (h // 4, w // 4)).astype(np.uint8)
        gt = np.kron(small, np.ones((4, 4), np.uint8))
        pred = gt.copy()
        flip = rng.random((h, w)) < 0.1
        pred[flip] = rng.integers(0, k, flip.sum())
        gt[:2, :3] = 255
        out.append((pred, gt))
    return out


def _write(tmp: Path, pairs, names=None) -> tuple[Path, Path]:
    (tmp / "pred").mkdir()
    (tmp / "gt").mkdir()
    for i, (pred, gt) in enumerate(pairs):
        stem = names[i] if names else f"img{i:02d}"
        write_label(tmp / "pred" / f"{stem}.png", pred)
        write_label(tmp / "gt" / f"{stem}.png", gt)
    return tmp / "pred", tmp / "gt"


# -- binary scorer ------------------------------------------------------------------------------


def test_to_binary_and_detection() -> None:
    lab = np.array([[0, 3, 255], [3, 1, 2]], np.uint8)
    np.testing.assert_array_equal(to_binary(lab, 3, keep_ignore=True), [[0, 1, 255], [1, 0, 0]])
    np.testing.assert_array_equal(to_binary(lab, 3, keep_ignore=False), [[0, 1, 0], [1, 0, 0]])
    assert not is_binary_mask(lab)
    assert is_binary_mask(np.array([[0, 1, 255]], np.uint8))
    assert is_binary_mask(np.zeros((0, 0), np.uint8))


@pytest.mark.parametrize("c", range(7))
def test_binary_scores_equal_the_class_row_of_the_full_evaluation(c: int) -> None:
    # one class vs the rest gives that class's own IoU / BIoU / BF1 of the multi-class scoring
    pairs = _maps(c, 3)
    ev = SegEvaluator(7)
    sc = ClassScorer(class_id=c)
    scb = ClassScorer(class_id=1)  # the same data as binary masks
    for pred, gt in pairs:
        ev.update(pred, gt)
        sc.update(pred, gt)
        scb.update(to_binary(pred, c, False), to_binary(gt, c, True))
    full = ev.compute()
    for s in (sc.compute(), scb.compute()):
        assert s.images == 3
        for key in ("iou", "biou", "bf1"):
            a, b = getattr(s, key), getattr(full, key)[c]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b), key
        assert s.counts["bf1_gt_boundary"] == full.counts.bf1_gt_boundary[c]


def test_binary_mask_check_counts_no_values(monkeypatch):
    """engine compare asked of every prediction map whether it is binary (0/1/255) by counting
    all 256 values of it (0.06-0.12 s a 4K map); a table lookup and a max answer the same."""
    import annotations.labelmap as labelmap
    import engine.metrics.binary as binary

    def counted(a):
        pytest.fail("values counted")

    monkeypatch.setattr(labelmap, "byte_histogram", counted)
    monkeypatch.setattr(binary, "byte_histogram", counted, raising=False)
    base = np.zeros((30, 40), np.uint8)
    base[::3] = 1
    base[:, ::7] = 255
    assert is_binary_mask(base) and is_binary_mask(base[::2, 1::3])  # a strided view too
    for v in range(256):
        lab = base.copy()
        lab[-1, -1] = v
        assert is_binary_mask(lab) == (v in (0, 1, 255))


def test_binary_scores_mixed_inputs_and_absent_class() -> None:
    gt = np.zeros((10, 10), np.uint8)
    gt[2:6, 2:6] = 7  # full label map with the class as id 7
    gt[9, :] = 255
    pred = np.zeros((10, 10), np.uint8)
    pred[2:6, 2:7] = 1  # binary prediction
    pred[0, 0] = 255  # uncertain: not the class
    s = binary_class_scores(pred, gt, class_id=7, pred_class_id=1)
    assert s.iou == pytest.approx(16 / 20 * 100)  # I = 16, U = 20
    empty = binary_class_scores(np.zeros_like(gt), np.zeros_like(gt))
    assert math.isnan(empty.iou) and math.isnan(empty.biou) and math.isnan(empty.bf1)
    allign = binary_class_scores(pred, np.full_like(gt, 255), pred_class_id=1)
    assert math.isnan(allign.iou) and math.isnan(allign.bf1) and allign.biou == 0.0


def test_binary_scores_unannotated_area_counts_for_biou_only() -> None:
    # docs/metrics.md and docs/loop.md's Table 4: ground-truth 255 (unannotated) is left out of
    # IoU and zeroed for BF1, but Boundary IoU has no ignore masking (DESIGN.md section 5), so a
    # predicted square inside the unannotated area widens the band union: 36 / 72.
    gt = np.zeros((64, 64), np.uint8)
    gt[10:20, 10:20] = 1
    gt[30:50, 30:50] = 255
    pred = (gt == 1).astype(np.uint8)
    pred[35:45, 35:45] = 1
    s = binary_class_scores(pred, gt)
    assert (s.iou, s.bf1, s.biou) == (100.0, 1.0, 50.0)
    assert (s.counts["biou_intersection"], s.counts["biou_union"]) == (36, 72)


# -- engine evaluate ----------------------------------------------------------------------------


def test_evaluate_matches_in_memory_evaluator_and_workers(tmp_path: Path) -> None:
    pairs = _maps(1, 4)
    pred_dir, gt_dir = _write(tmp_path, pairs)
    ev = SegEvaluator(7)
    for pred, gt in pairs:
        ev.update(pred, gt)
    want = ev.compute().to_json(MASS13K.names)
    for workers in (1, 2):
        out = tmp_path / f"r{workers}.json"
        rep = evaluate(
            EvaluateConfig(pred_dir, gt_dir, workers=workers, json_out=out, progress=False)
        )
        got = json.loads(out.read_text())
        assert got["counts"] == want["counts"]
        assert got["mIoU"] == pytest.approx(want["mIoU"])
        assert got["classes"] == want["classes"]
        assert got["images"] == 4 and rep.stems == ["img00", "img01", "img02", "img03"]
        assert "environment" in got and got["config"]["workers"] == workers


def test_evaluate_cli_table_and_json(tmp_path: Path) -> None:
    pred_dir, gt_dir = _write(tmp_path, _maps(2, 2, k=3))
    out = tmp_path / "r.json"
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--pred",
            str(pred_dir),
            "--gt",
            str(gt_dir),
            "--num-classes",
            "3",
            "--json",
            str(out),
            "--bf1-mode",
            "image",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "BIoU" in res.output and "mean" in res.output
    j = json.loads(out.read_text())
    assert [c["id"] for c in j["classes"]] == [0, 1, 2]
    assert set(j["counts"]) == {
        "iou_intersection",
        "iou_union",
        "biou_intersection",
        "biou_union",
        "bf1_pred_boundary",
        "bf1_pred_matched",
        "bf1_gt_boundary",
        "bf1_gt_matched",
    }
    assert j["bf1_mode"] == "image"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p, g: (p / "img01.png").unlink(), "prediction(s) missing"),
        (  # renamed: both sides named (only the missing one was)
            lambda p, g: (p / "img01.png").rename(p / "img01_pred.png"),
            "img01.png; 1 prediction(s) there have no ground truth: img01_pred.png",
        ),
        (
            lambda p, g: write_label(p / "zzz.png", np.zeros((4, 4), np.uint8)),
            "have no ground truth",
        ),
        (
            lambda p, g: write_label(p / "img00.png", np.zeros((12, 16), np.uint8)),
            "differs from the ground truth",
        ),
        (
            lambda p, g: write_label(p / "img00.png", np.full((24, 32), 9, np.uint8)),
            "not class ids",
        ),
        (
            lambda p, g: write_label(g / "img01.png", np.full((24, 32), 7, np.uint8)),
            "not class ids",
        ),
    ],
)
def test_evaluate_errors_name_the_files(tmp_path: Path, mutate, message: str) -> None:
    pred_dir, gt_dir = _write(tmp_path, _maps(3, 2))
    mutate(pred_dir, gt_dir)
    res = runner.invoke(
        app, ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--no-progress"]
    )
    text = " ".join(res.output.split())
    assert res.exit_code == 2
    assert message in text and str(tmp_path) in text


def test_evaluate_reads_the_taxonomy_recorded_beside_predictions_or_ground_truth(tmp_path):
    """Joint-trained predictions hold the new class (id 7): their taxonomy comes from
    engine predict's predict.json, or a fused dataset's taxonomy.json above its labels, rather
    than an error that id 7 is not a MaSS13K class."""
    pairs = [(p, g) for p, g in _maps(4, 2, k=8)]
    pred_dir, gt_dir = _write(tmp_path, pairs)
    eight = MASS13K.with_new_class("Bicycle")
    res = runner.invoke(app, ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir)])
    assert res.exit_code == 2 and "not class ids" in res.output  # nothing recorded: MaSS13K
    (pred_dir / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": eight.to_dict()}))
    out = tmp_path / "r.json"
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--no-progress"]
    res = runner.invoke(app, [*args, "--json", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Bicycle" in res.output and f"classes: {pred_dir / 'predict.json'}" in res.output
    j = json.loads(out.read_text())
    assert [c["name"] for c in j["classes"]][-1] == "Bicycle"
    assert j["taxonomy_source"] == str(pred_dir / "predict.json")
    (pred_dir / "predict.json").unlink()
    fused = tmp_path / "fused"  # fused/taxonomy.json, labels in fused/labels/test
    (fused / "labels").mkdir(parents=True)
    gt_dir.rename(fused / "labels" / "test")
    eight.save(fused / "taxonomy.json")
    rep = evaluate(EvaluateConfig(pred_dir, fused / "labels" / "test", progress=False))
    assert rep.taxonomy.names == eight.names
    assert rep.taxonomy_source == str(fused / "taxonomy.json")
    given = evaluate(
        EvaluateConfig(pred_dir, fused / "labels" / "test", num_classes=9, progress=False)
    )  # what the user gives wins
    assert given.taxonomy.num_classes == 9 and given.taxonomy_source == "--num-classes 9"


def test_evaluate_maps_the_ground_truth_s_recorded_ids_by_class_name(tmp_path: Path) -> None:
    """A model's predictions (Bicycle 7, Car 8 in predict.json) against a fused dataset that
    put Car at 7 and Bicycle at 8 (its taxonomy.json): the ground truth's ids are mapped onto
    the predictions' by name, so a Car pixel is scored as Car; before, the predictions'
    taxonomy was applied to both and Car pixels counted as Bicycle. Taxonomies of which
    neither holds the other are refused, naming both files."""
    bc = MASS13K.with_new_class("Bicycle").with_new_class("Car")
    cb = MASS13K.with_new_class("Car").with_new_class("Bicycle")
    pairs = _maps(5, 2, k=9)
    swap = np.arange(256, dtype=np.uint8)
    swap[[7, 8]] = [8, 7]
    pred_dir, gt_dir = _write(tmp_path, [(p, swap[g]) for p, g in pairs])  # gt in cb's ids
    (pred_dir / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": bc.to_dict()}))
    fused = tmp_path / "fused"
    (fused / "labels").mkdir(parents=True)
    gt_dir = gt_dir.rename(fused / "labels" / "test")
    cb.save(fused / "taxonomy.json")
    rep = evaluate(EvaluateConfig(pred_dir, gt_dir, progress=False, json_out=tmp_path / "r.json"))
    assert rep.taxonomy.names == bc.names
    np.testing.assert_array_equal(rep.result.counts.as_array(), _scores(pairs, 9).counts.as_array())
    j = json.loads((tmp_path / "r.json").read_text())
    assert j["mapped_by_name"] == {
        "side": "ground truth",
        "taxonomy_source": str(fused / "taxonomy.json"),
        "ids": {"Car": [7, 8], "Bicycle": [8, 7]},
    }
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--no-progress"]
    res = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert "mapped by name: Car 7 -> 8, Bicycle 8 -> 7" in res.output
    # the 7-class start's predictions: scored in the ground truth's classes
    (pred_dir / "predict.json").write_text(
        json.dumps({"config": {}, "taxonomy": MASS13K.to_dict()})
    )
    for f in pred_dir.glob("*.png"):
        write_label(f, np.minimum(read_label(f), 6))
    rep = evaluate(EvaluateConfig(pred_dir, gt_dir, progress=False))
    assert rep.taxonomy.names == cb.names and rep.by_name.side == "predictions"
    assert not rep.by_name.moved and rep.result.iou[7] == 0
    # classes of which neither taxonomy holds the other
    pole = MASS13K.with_new_class("Bicycle").with_new_class("Pole", parent="Ground")
    (pred_dir / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": pole.to_dict()}))
    res = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert res.exit_code == 2
    assert f"{pred_dir / 'predict.json'} and {fused / 'taxonomy.json'}:" in res.output
    assert "has Pole, the ground truth's Car" in res.output and "--taxonomy" in res.output
    res = runner.invoke(app, [*args, "--taxonomy", str(fused / "taxonomy.json")])
    assert res.exit_code == 0, res.output  # what the user gives wins


def test_evaluate_reads_the_taxonomy_of_a_fused_dataset_s_labels_given_as_predictions(
    tmp_path: Path,
) -> None:
    """Two fused datasets of three new classes in other orders (Bicycle, Car, Traffic light
    against Traffic light, Car, Bicycle), one's ``labels/<split>`` scored against the other's:
    the predictions' ``taxonomy.json`` is two folders above their files, as the ground truth's
    is. Before, only the ground truth's was found and applied to both, so Bicycle and Traffic
    light were scored as each other without a word (IoU 0 on identical labels)."""
    bct = MASS13K.with_new_class("Bicycle").with_new_class("Car").with_new_class("Traffic light")
    tcb = MASS13K.with_new_class("Traffic light").with_new_class("Car").with_new_class("Bicycle")
    swap = np.arange(256, dtype=np.uint8)
    swap[[7, 9]] = [9, 7]
    maps = [g for _, g in _maps(6, 2, k=10)]
    dirs = []
    for name, tax, lut in (("bct", bct, np.arange(256, dtype=np.uint8)), ("tcb", tcb, swap)):
        (tmp_path / name / "labels" / "train").mkdir(parents=True)
        tax.save(tmp_path / name / "taxonomy.json")
        for i, m in enumerate(maps):
            write_label(tmp_path / name / "labels" / "train" / f"img{i}.png", lut[m])
        dirs.append(tmp_path / name / "labels" / "train")
    rep = evaluate(EvaluateConfig(dirs[0], dirs[1], progress=False))
    assert rep.taxonomy.names == bct.names
    assert rep.by_name.moved == {"Traffic light": (7, 9), "Bicycle": (9, 7)}
    assert rep.result.iou[7] == rep.result.iou[9] == 100.0


def test_evaluate_refuses_an_annotated_subset_s_masks(tmp_path: Path) -> None:
    """A subset's masks/ folder holds 0/1 masks of its class: scored as label maps they read
    as Others and Human (before, with "the ground truth marks no pixel of Bicycle"). Refused
    as the subset folder itself is, pointing to compare and report; nothing is written."""
    from annotations.subset import write_subset

    pred_dir, _ = _write(tmp_path, _maps(2, 2))
    masks = {f"img{i:02d}": np.eye(24, 32, dtype=np.uint8) for i in range(2)}
    sub = write_subset(tmp_path / "sub", "Bicycle", "test", masks, {})
    out = tmp_path / "r.json"
    for pred, gt in ((pred_dir, sub.root / "masks"), (sub.root / "masks", pred_dir)):
        args = ["evaluate", "--pred", str(pred), "--gt", str(gt), "--json", str(out)]
        res = runner.invoke(app, [*args, "--no-progress"], env={"COLUMNS": "300"})
        assert res.exit_code == 2, res.output
        assert f"{sub.root / 'masks'}: the masks of an annotated subset" in res.output
        assert "1 = Bicycle" in res.output and f"engine compare --gt {sub.root}" in res.output
    assert not out.exists()


def _joint_predictions(tmp: Path, gt_has_bicycle: bool = False) -> tuple[Path, Path, object]:
    """A jointly trained model's predictions (MaSS13K + Bicycle, carved out of Others, in
    predict.json) against 7-class precise labels, where a bicycle is Others: half of each
    image's Others pixels are predicted Bicycle."""
    eight = MASS13K.with_new_class("Bicycle")
    pairs = []
    for pred, gt in _maps(7, 3):
        others = (pred == 0) & (np.arange(pred.shape[1]) < pred.shape[1] // 2)
        pred[others] = 7
        if gt_has_bicycle:
            gt[others & (gt == 0)] = 7
        pairs.append((pred, gt))
    pred_dir, gt_dir = _write(tmp, pairs)
    (pred_dir / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": eight.to_dict()}))
    return pred_dir, gt_dir, eight


def _scores(pairs, k: int):
    ev = SegEvaluator(k)
    for pred, gt in pairs:
        ev.update(pred, gt)
    return ev.compute()


def _read_pairs(pred_dir: Path, gt_dir: Path):
    return [(read_label(p), read_label(gt_dir / p.name)) for p in sorted(pred_dir.glob("*.png"))]


def test_evaluate_scores_new_classes_as_parents_against_base_class_labels(tmp_path: Path) -> None:
    """A joint model scored on the precise 7-class labels (the usual check that joint training
    kept the base classes): its Bicycle pixels are Others there. Scored apart, Others would
    lose every bicycle pixel and Bicycle would read 0; folded, the scores are those of the
    predictions with Bicycle written as Others."""
    pred_dir, gt_dir, eight = _joint_predictions(tmp_path)
    pairs = _read_pairs(pred_dir, gt_dir)
    folded = _scores([(np.where(p == 7, 0, p).astype(np.uint8), g) for p, g in pairs], 7)
    apart = _scores(pairs, 8)
    assert apart.iou[0] < folded.iou[0] - 10 and apart.iou[7] == 0  # what folding mends
    out = tmp_path / "r.json"
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--no-progress"]
    res = runner.invoke(app, [*args, "--json", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Bicycle scored as Others (the ground truth marks no pixel of Bicycle;" in res.output
    j = json.loads(out.read_text())
    assert [c["name"] for c in j["classes"]] == MASS13K.names
    assert j["folded"] == {"Bicycle": "Others"} and "no pixel of Bicycle" in j["fold_why"]
    assert j["counts"] == folded.to_json(MASS13K.names)["counts"]
    assert j["mIoU"] == pytest.approx(folded.miou)
    two = evaluate(EvaluateConfig(pred_dir, gt_dir, workers=2, progress=False))  # in processes
    assert two.folded == {"Bicycle": "Others"}
    np.testing.assert_array_equal(two.result.counts.as_array(), folded.counts.as_array())
    # asked not to: the 8 classes, as before
    rep = evaluate(EvaluateConfig(pred_dir, gt_dir, fold_new_classes=False, progress=False))
    assert rep.taxonomy.names == eight.names and rep.folded is None
    np.testing.assert_array_equal(rep.result.counts.as_array(), apart.counts.as_array())
    res = runner.invoke(app, [*args, "--no-fold-new-classes"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "scored as" not in res.output


def test_evaluate_scores_new_classes_apart_where_the_ground_truth_has_them(tmp_path) -> None:
    """Ground truth that marks the new class (a fused dataset's labels) is scored with it; so
    is ground truth without a single bicycle pixel whose recorded taxonomy has Bicycle (a set
    that happens to hold none), where the predicted bicycles are errors."""
    pred_dir, gt_dir, eight = _joint_predictions(tmp_path, gt_has_bicycle=True)
    rep = evaluate(EvaluateConfig(pred_dir, gt_dir, progress=False))
    assert rep.taxonomy.names == eight.names and rep.folded is None
    np.testing.assert_array_equal(
        rep.result.counts.as_array(), _scores(_read_pairs(pred_dir, gt_dir), 8).counts.as_array()
    )
    # asked to: both maps folded, Bicycle of the ground truth as Others too
    both = evaluate(EvaluateConfig(pred_dir, gt_dir, fold_new_classes=True, progress=False))
    assert both.folded == {"Bicycle": "Others"} and both.fold_why == "--fold-new-classes"
    lut = np.where(np.arange(256) == 7, 0, np.arange(256)).astype(np.uint8)
    want = _scores([(lut[p], lut[g]) for p, g in _read_pairs(pred_dir, gt_dir)], 7)
    np.testing.assert_array_equal(both.result.counts.as_array(), want.counts.as_array())

    other = tmp_path / "other"
    other.mkdir()
    pred_dir, gt_dir, eight = _joint_predictions(other)
    fused = other / "fused"  # fused/taxonomy.json with Bicycle, labels in fused/labels/test
    (fused / "labels").mkdir(parents=True)
    gt_dir.rename(fused / "labels" / "test")
    eight.save(fused / "taxonomy.json")
    rep = evaluate(EvaluateConfig(pred_dir, fused / "labels" / "test", progress=False))
    assert rep.taxonomy.names == eight.names and rep.folded is None


def test_fold_of_a_taxonomy() -> None:
    from annotations.taxonomy import ClassInfo, Taxonomy
    from engine.evaluate import Fold, describe_fold

    assert Fold.of(MASS13K) is None  # no new class
    nine = MASS13K.with_new_class("Bicycle").with_new_class("Pole", parent="Ground")
    fold = Fold.of(nine.with_new_class("Spoke", parent="Bicycle"))  # carved out of a new class
    assert fold is not None and fold.base.names == MASS13K.names
    assert fold.folded == {"Bicycle": "Others", "Pole": "Ground", "Spoke": "Others"}
    assert fold.lut[[0, 6, 7, 8, 9, 255]].tolist() == [0, 6, 0, 4, 0, 255]
    assert describe_fold(fold.folded) == (
        "scored as their parents: Bicycle as Others, Pole as Ground, Spoke as Others"
    )
    assert describe_fold({"Bicycle": "Others", "Car": "Others"}) == (
        "Bicycle and Car scored as Others"
    )
    after = Taxonomy((*nine.classes, ClassInfo(9, "Extra", (1, 2, 3))))  # a base class after
    assert Fold.of(after) is None


def test_evaluate_fold_new_classes_without_any_is_an_error(tmp_path: Path) -> None:
    pred_dir, gt_dir = _write(tmp_path, _maps(8, 1))
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--fold-new-classes"]
    res = runner.invoke(app, [*args, "--no-progress"], env={"COLUMNS": "200"})
    assert res.exit_code == 2
    assert "no new class to score as its parent (--fold-new-classes)" in res.output


def test_evaluate_torch_device_cpu_same_counts(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pred_dir, gt_dir = _write(tmp_path, _maps(6, 2))
    a = evaluate(EvaluateConfig(pred_dir, gt_dir, progress=False)).result
    b = evaluate(EvaluateConfig(pred_dir, gt_dir, device="cpu", progress=False)).result
    np.testing.assert_array_equal(a.counts.as_array(), b.counts.as_array())
    joint = tmp_path / "joint"  # and with the new classes scored as their parents
    joint.mkdir()
    pred_dir, gt_dir, _ = _joint_predictions(joint)
    a = evaluate(EvaluateConfig(pred_dir, gt_dir, progress=False))
    b = evaluate(EvaluateConfig(pred_dir, gt_dir, device="cpu", progress=False))
    assert a.folded == b.folded == {"Bicycle": "Others"}
    np.testing.assert_array_equal(a.result.counts.as_array(), b.result.counts.as_array())


def test_evaluate_resize_pred_nearest(tmp_path: Path) -> None:
    pairs = _maps(4, 1)
    pred_dir, gt_dir = _write(tmp_path, pairs)
    pred = pairs[0][0]
    write_label(pred_dir / "img00.png", pred[::2, ::2].copy())
    cfg = EvaluateConfig(pred_dir, gt_dir, resize_pred="nearest", progress=False)
    r = evaluate(cfg).result
    up = np.repeat(np.repeat(pred[::2, ::2], 2, axis=0), 2, axis=1)
    want = SegEvaluator(7).update(up, pairs[0][1]).compute()
    np.testing.assert_array_equal(r.counts.as_array(), want.counts.as_array())


def test_a_prediction_turned_a_quarter_is_not_told_to_be_resized(tmp_path: Path) -> None:
    """A prediction of the ground truth's size with width and height swapped (a predictor
    that read an EXIF-turned image's stored pixels) was told "pass --resize-pred nearest to
    resize", which would stretch it into a map of other pixels."""
    pairs = _maps(4, 1)
    pred_dir, gt_dir = _write(tmp_path, pairs)
    write_label(pred_dir / "img00.png", np.ascontiguousarray(pairs[0][0].T))
    with pytest.raises(ValueError) as e:
        evaluate(EvaluateConfig(pred_dir, gt_dir, progress=False))
    h, w = pairs[0][1].shape
    assert str(e.value).endswith(
        f"{pred_dir / 'img00.png'}: size {h}x{w} differs from the ground truth's {w}x{h} (the "
        f"file of the same name in {gt_dir}); its width and height swapped: a map turned a "
        "quarter (of an image whose EXIF orientation its predictor ignored?), which resizing "
        "would not turn back"
    )


# -- engine compare -----------------------------------------------------------------------------


def _compare_data(tmp: Path):
    rng = np.random.default_rng(9)
    gt_dir, a_dir, b_dir = tmp / "manual", tmp / "pseudo", tmp / "model"
    for d in (gt_dir, a_dir, b_dir):
        d.mkdir()
    gts, preds_a, preds_b = [], [], []
    for i in range(3):
        gt = rng.integers(0, 7, (30, 40)).astype(np.uint8)
        gt[5:20, 10 + i : 25] = 7  # the new class, id 7 in the full maps
        gt[0, :] = 255
        a = (gt == 7).astype(np.uint8)
        a[5:20, 25:28] = 1  # pseudo labels fill too much; binary masks with 255 = uncertain
        a[29, 0] = 255
        b = gt.copy()
        b[b == 255] = 0
        b[5, 10:25] = 4  # the model misses one row
        write_label(gt_dir / f"s{i}.png", gt)
        write_label(a_dir / f"s{i}.png", a)
        write_label(b_dir / f"s{i}.png", b)
        gts.append(gt)
        preds_a.append(a)
        preds_b.append(b)
    tax = MASS13K.with_new_class("Bicycle")
    tax_path = tax.save(tmp / "taxonomy.json")
    return gt_dir, a_dir, b_dir, tax_path, gts, preds_a, preds_b


def test_compare_counts_a_joint_model_s_new_classes_as_their_parent(tmp_path: Path) -> None:
    """Others of a joint model against the precise 7-class labels: its Bicycle pixels are
    Others there, as engine evaluate scores them; against a fused dataset's labels, whose
    taxonomy has Bicycle, they are not."""
    pred_dir, gt_dir, eight = _joint_predictions(tmp_path)
    rep = compare(CompareConfig("Others", gt_dir, (("joint", pred_dir),), progress=False))
    want = ClassScorer(0)
    for p, g in _read_pairs(pred_dir, gt_dir):
        want.update(np.where(p == 7, 0, p).astype(np.uint8), g)
    assert rep.rows[0].folded == ["Bicycle"] and rep.rows[0].to_json()["folded"] == ["Bicycle"]
    assert rep.rows[0].scores.counts == want.compute().counts
    res = runner.invoke(
        app,
        ["compare", "--class", "Others", "--gt", str(gt_dir), "--source", f"joint={pred_dir}"],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0 and "joint: Bicycle counted as Others" in res.output
    eight.save(tmp_path / "taxonomy.json")  # the ground truth's classes have Bicycle: as is
    rep = compare(CompareConfig("Others", gt_dir, (("joint", pred_dir),), progress=False))
    apart = ClassScorer(0)
    for p, g in _read_pairs(pred_dir, gt_dir):
        apart.update(p, g)
    assert rep.rows[0].folded == [] and rep.rows[0].scores.counts == apart.compute().counts
    assert apart.compute().iou < want.compute().iou


def test_children_outside_the_ground_truth_s_classes() -> None:
    from engine.compare import children_outside

    bicycle = MASS13K.with_new_class("Bicycle")
    t = bicycle.with_new_class("Spoke", parent="Bicycle").with_new_class("Pole", parent="Ground")
    assert children_outside(t, 0, MASS13K) == [7, 8]  # Others: Bicycle, and Spoke through it
    assert children_outside(t, 7, bicycle) == [8]  # Bicycle: its Spoke, unknown to the truth
    assert children_outside(t, 7, t) == [] and children_outside(t, None, MASS13K) == []
    assert children_outside(t, 4, MASS13K) == [9]


def test_compare_library_and_deltas(tmp_path: Path) -> None:
    gt_dir, a_dir, b_dir, tax, gts, pa, pb = _compare_data(tmp_path)
    cfg = CompareConfig(
        "bicycle", gt_dir, (("pseudo", a_dir), ("model", b_dir)), taxonomy=tax, progress=False
    )
    rep = compare(cfg)
    assert rep.class_name == "Bicycle" and rep.class_id == 7 and rep.images == 3
    want_a = ClassScorer(7, pred_class_id=1)
    want_b = ClassScorer(7)
    for g, a, b in zip(gts, pa, pb, strict=True):
        want_a.update(a, g)
        want_b.update(b, g)
    for row, want in zip(rep.rows, (want_a.compute(), want_b.compute()), strict=True):
        assert row.scores.counts == want.counts
        assert row.scores.iou == pytest.approx(want.iou)
    assert rep.rows[0].delta == {"iou": 0.0, "biou": 0.0, "bf1": 0.0}
    assert rep.rows[1].delta["iou"] == pytest.approx(
        rep.rows[1].scores.iou - rep.rows[0].scores.iou
    )
    rep2 = compare(
        CompareConfig(
            "7",
            gt_dir,
            (("pseudo", a_dir), ("model", b_dir)),
            taxonomy=tax,
            workers=2,
            progress=False,
        )
    )
    assert [r.scores.counts for r in rep2.rows] == [r.scores.counts for r in rep.rows]
    md = rep.to_markdown()
    assert "| model |" in md and ("(+" in md or "(-" in md)
    # deltas are against the first source: its own row has none
    assert md.splitlines()[4].startswith("| pseudo | ") and "(" not in md.splitlines()[4]
    # a '|' in a source's name started another column and shifted its scores
    rep.rows[1].name = "model|v2"
    row = rep.to_markdown().splitlines()[5]
    assert row.startswith("| model\\|v2 | ") and row.replace("\\|", "").count("|") == 5
    # the heading, the rows and the lines under them write names as typed when rendered:
    # '<s>' was a strikethrough tag and '*a*' italics in the interval and warning lines
    markdown_it = pytest.importorskip("markdown_it")
    from html import unescape

    rep.rows[0].name, rep.class_name = "p<s>eudo *a*", "B<i>ke"
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(rep.to_markdown())
    assert "<s>" not in html and "<em>" not in html and "<i>" not in html
    assert "B<i>ke" in unescape(html) and "vs p<s>eudo *a*, 95%" in unescape(html)
    rep.rows[0].matches_truth = True  # its warning names it so too
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(rep.to_markdown())
    assert "<s>" not in html and "source 'p<s>eudo *a*' equals" in unescape(html)


def test_compare_undefined_scores_read_as_the_report_prints_them(tmp_path: Path) -> None:
    # neither the annotation nor the source has the class: its scores are undefined (NaN in the
    # scores, null in the JSON) and every table says "n/a", as engine report's do
    gt_dir, src = tmp_path / "manual", tmp_path / "pseudo"
    gt_dir.mkdir(), src.mkdir()
    label = np.zeros((24, 32), np.uint8)
    label[:, 16:] = 3
    write_label(gt_dir / "a.png", label)
    write_label(src / "a.png", label)
    tax = MASS13K.with_new_class("Bicycle").save(tmp_path / "taxonomy.json")
    md = tmp_path / "c.md"
    res = runner.invoke(
        app,
        ["compare", "--class", "Bicycle", "--gt", str(gt_dir), "--taxonomy", str(tax),
         "--source", f"pseudo={src}", "--source", f"again={src}",
         "--markdown", str(md), "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert md.read_text().startswith("**Bicycle** (1 annotated image)\n")
    assert "| pseudo | n/a | n/a | n/a |\n| again | n/a | n/a | n/a |" in md.read_text()
    assert "Bicycle: 1 annotated image " in res.output
    assert res.output.count("n/a") == 9  # 3 scores a row and the second row's 3 deltas


def test_compare_cli_outputs(tmp_path: Path) -> None:
    gt_dir, a_dir, b_dir, tax, *_ = _compare_data(tmp_path)
    js, md, png = tmp_path / "c.json", tmp_path / "c.md", tmp_path / "c.png"
    res = runner.invoke(
        app,
        [
            "compare",
            "--class",
            "Bicycle",
            "--gt",
            str(gt_dir),
            "--taxonomy",
            str(tax),
            "--source",
            f"Grounded-SAM pseudo labels={a_dir}",
            "--source",
            f"Joint-trained model={b_dir}",
            "--json",
            str(js),
            "--markdown",
            str(md),
            "--plot",
            str(png),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Grounded-SAM" in res.output and "ΔBIoU" in res.output
    j = json.loads(js.read_text())
    assert [s["name"] for s in j["sources"]] == [
        "Grounded-SAM pseudo labels",
        "Joint-trained model",
    ]
    assert set(j["sources"][1]) >= {"iou", "biou", "bf1", "delta", "counts"}
    assert md.read_text().startswith("**Bicycle**")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_compare_rerun_killed_among_its_files_leaves_no_record_of_another_run(tmp_path):
    """``kill -9`` of ``engine compare --json --markdown --plot`` run again over a finished
    comparison (its sources in another order), as it put its chart in (crash-injection sweep,
    kill points 2 and 3): its new record was in beside the earlier run's chart (and Markdown),
    and engine info read the record as the comparison, exit 0. The record comes last and the
    earlier one is set aside (kept) first: info says the comparison did not finish and what
    finishes it (exit 1), and the same command then writes what an uninterrupted one does."""
    from tests.loop_helpers import KILLED_AT, run_killed

    gt_dir, a_dir, b_dir, tax, *_ = _compare_data(tmp_path)
    js, md, png = tmp_path / "c.json", tmp_path / "c.md", tmp_path / "c.png"
    args = ["compare", "--class", "Bicycle", "--gt", str(gt_dir), "--taxonomy", str(tax),
            "--plot", str(png), "--no-progress"]  # fmt: skip
    ab, ba = (
        [f"--source=a={a_dir}", f"--source=b={b_dir}"],
        [f"--source=b={b_dir}", f"--source=a={a_dir}"],
    )
    whole = tmp_path / "whole"
    whole.mkdir()
    outs = ["--json", str(whole / "c.json"), "--markdown", str(whole / "c.md")]
    assert runner.invoke(app, [*args, *ba, *outs]).exit_code == 0
    outs = ["--json", str(js), "--markdown", str(md)]
    assert runner.invoke(app, [*args, *ab, *outs]).exit_code == 0
    run_killed(KILLED_AT, "c.png", *args, *ba, *outs)
    res = runner.invoke(app, ["info", str(js)], env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output
    assert " ".join(res.output.split()) == (
        f"{js}: a comparison not finished: engine compare was run again and has not written "
        "this record (the earlier one is kept as .c.json.earlier; its --markdown and --plot "
        "files may be the new run's): unless it runs now, run the same engine compare command "
        "again"
    )
    earlier = json.loads((tmp_path / ".c.json.earlier").read_text())
    assert [s["name"] for s in earlier["sources"]] == ["a", "b"]  # nothing written is lost
    assert runner.invoke(app, [*args, *ba, *outs]).exit_code == 0
    assert md.read_bytes() == (whole / "c.md").read_bytes()
    got, want = json.loads(js.read_text()), json.loads((whole / "c.json").read_text())
    assert got["sources"] == want["sources"] and [s["name"] for s in got["sources"]] == ["b", "a"]
    assert not (tmp_path / ".c.json.earlier").exists()  # removed once the new record is in
    assert runner.invoke(app, ["info", str(js)]).exit_code == 0
    # the chart's temporary file the kill left is removed by the next write of the chart
    # (before the fifty-eighth round it stayed for ever: no run lock guards these files)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".c.")]


def test_a_compare_rerun_killed_as_it_finished_names_the_earlier_record_it_left(tmp_path):
    """``kill -9`` of a compare rerun once its new record was in, before it removed the earlier
    one it had set aside: ``.c.json.earlier`` stayed beside the finished record until the next
    compare into that path, and nothing said so (no single step puts one in and removes the
    other). ``engine info c.json`` reads the new record (exit 0) and ends with a note naming it
    and what removes it; the same command run again removes it."""
    from tests.loop_helpers import KILLED_UNLINKING, run_killed

    gt_dir, a_dir, b_dir, tax, *_ = _compare_data(tmp_path)
    js, aside = tmp_path / "c.json", tmp_path / ".c.json.earlier"
    args = ["compare", "--class", "Bicycle", "--gt", str(gt_dir), "--taxonomy", str(tax),
            f"--source=a={a_dir}", "--json", str(js), "--markdown", str(tmp_path / "c.md"),
            "--no-progress"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    run_killed(KILLED_UNLINKING, ".c.json.earlier", "1", *args)
    assert js.is_file() and aside.is_file()
    res = runner.invoke(app, ["info", str(js)], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    assert " ".join(res.output.split()).endswith(
        "note: 1 file beside it left by writes killed as they wrote it, e.g. .c.json.earlier: "
        "the command that wrote c.json, run again, removes them"
    )
    assert runner.invoke(app, args).exit_code == 0 and not aside.exists()
    assert "note:" not in runner.invoke(app, ["info", str(js)]).output


def test_a_compare_rerun_failing_before_its_files_puts_the_earlier_record_back(
    tmp_path, monkeypatch
):
    """``engine compare --json --markdown`` (``--plot``) run again over a finished comparison,
    failing before it changed either file (the disk full at its Markdown; no matplotlib for its
    chart): the earlier record stayed set aside, and ``engine info`` said the comparison did not
    finish (exit 1) of files all of the earlier run. Now it is put back (info reads it, exit 0),
    as a report's or review's is (one set-aside, ``engine.runlock.record_set_aside``, watching
    the two files). A rerun that changed the Markdown, then failed, leaves it aside."""
    import errno

    import annotations.fileio
    import engine.compare.scoring

    gt_dir, a_dir, b_dir, tax, *_ = _compare_data(tmp_path)
    js, md = tmp_path / "out" / "c.json", tmp_path / "c.md"
    ab, ba = (("a", a_dir), ("b", b_dir)), (("b", b_dir), ("a", a_dir))
    cfg = CompareConfig("Bicycle", gt_dir, ab, taxonomy=tax, json_out=js, markdown_out=md,
                        progress=False)  # fmt: skip
    compare(cfg)
    earlier = js.read_bytes()

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    def no_matplotlib(report, path):
        raise RuntimeError("--plot needs matplotlib")

    with monkeypatch.context() as m:
        m.setattr(annotations.fileio.atomic, "atomic_file", full)
        with pytest.raises(OSError, match="No space left"):
            compare(replace(cfg, sources=ba))
    monkeypatch.setattr(engine.compare.scoring, "write_plot", no_matplotlib)
    with pytest.raises(RuntimeError, match="matplotlib"):  # the Markdown as it was: unchanged
        compare(replace(cfg, plot_out=tmp_path / "c.png"))
    assert js.read_bytes() == earlier and sorted(os.listdir(js.parent)) == ["c.json"]
    assert runner.invoke(app, ["info", str(js)]).exit_code == 0
    with pytest.raises(RuntimeError, match="matplotlib"):  # the Markdown of b, a: changed
        compare(replace(cfg, sources=ba, plot_out=tmp_path / "c.png"))
    assert sorted(os.listdir(js.parent)) == [".c.json.earlier"]
    assert runner.invoke(app, ["info", str(js)]).exit_code == 1


def test_a_killed_evaluate_json_s_temporary_file_is_removed_by_the_next_one(tmp_path):
    """``kill -9`` of ``engine evaluate --json F`` as it put F in left ``.F.*.tmp`` beside it,
    which no rerun removed (no run lock guards F, and nothing told a killed write's temporary
    from a live one's); the next ``--json F`` removes it."""
    from tests.loop_helpers import KILLED_AT, run_killed

    pred, gt = _write(tmp_path, _maps(1, 2))
    out = tmp_path / "scores" / "s.json"
    args = ["evaluate", "--pred", str(pred), "--gt", str(gt), "--json", str(out), "--no-progress"]
    run_killed(KILLED_AT, "s.json", *args)
    assert [p.name.startswith(".s.json.") for p in out.parent.iterdir()] == [True]
    assert runner.invoke(app, args).exit_code == 0
    assert [p.name for p in out.parent.iterdir()] == ["s.json"]


def test_a_folder_of_label_map_folders_names_them(tmp_path: Path) -> None:
    """--pred demo_out/predict (its test/ and test_start/ inside) or --gt a dataset's root said
    only "no PNG files found": the error names the folders of label maps inside."""
    pred, gt = _write(tmp_path, _maps(1, 1))
    (tmp_path / "root" / "annotations").mkdir(parents=True)
    gt.rename(tmp_path / "root" / "annotations" / "test")
    with pytest.raises(ValueError) as e:
        evaluate(EvaluateConfig(tmp_path, pred, progress=False))
    assert str(e.value).endswith(f"(folders of label maps inside: {pred}; give one)")
    with pytest.raises(ValueError) as e:
        evaluate(EvaluateConfig(pred, tmp_path / "root", progress=False))
    shown = tmp_path / "root" / "annotations" / "test"
    assert str(e.value).endswith(f"(folders of label maps inside: {shown}; give one)")


def test_two_maps_of_one_stem_are_refused_naming_the_folder(tmp_path: Path) -> None:
    """x.png and x.PNG (a tool's suffix in capitals beside a copy) are both read as stem x: one
    would be scored and the other silently dropped, which of them by the listing's order."""
    pred, gt = _write(tmp_path, _maps(1, 2))
    (pred / "img00.PNG").write_bytes((pred / "img01.png").read_bytes())
    if len(list(pred.iterdir())) < 3:
        pytest.skip("a case-insensitive file system: img00.png and img00.PNG are one file")
    with pytest.raises(ValueError) as e:
        evaluate(EvaluateConfig(pred, gt, progress=False))
    assert str(e.value) == f"{pred}: two files share the stem 'img00'"


def test_five_missing_maps_are_all_named_and_a_sixth_is_counted(tmp_path: Path) -> None:
    """The pairing error names the first five missing maps, then says how many more: five
    are named with nothing after them ("and 0 more" is no count)."""
    pred, gt = _write(tmp_path, _maps(1, 7))
    for i in range(1, 6):
        (pred / f"img{i:02d}.png").unlink()
    five = ", ".join(f"img{i:02d}.png" for i in range(1, 6))
    with pytest.raises(ValueError) as e:
        evaluate(EvaluateConfig(pred, gt, progress=False))
    assert str(e.value) == f"{pred}: 5 prediction(s) missing for ground truth in {gt}: {five}"
    (pred / "img06.png").unlink()
    with pytest.raises(ValueError) as e:
        evaluate(EvaluateConfig(pred, gt, progress=False))
    assert str(e.value).endswith(f": {five} and 1 more")


def test_an_annotated_subset_as_either_folder_is_told_how_its_class_is_scored(tmp_path):
    """An annotated subset's folder holds masks/ and subset.json, no label maps: the error
    says which commands score its class, as --pred and as --gt."""
    from annotations.subset import write_subset

    pred, gt = _write(tmp_path, _maps(1, 1))
    mask = (read_label(gt / "img00.png") == 1).astype(np.uint8)
    sub = write_subset(tmp_path / "subset", "Bicycle", "test", {"img00": mask}, {"img00": "h"})
    hint = f"(score its class with engine compare --gt {sub.root} or engine report --subset)"
    for cfg in (EvaluateConfig(sub.root, gt, progress=False),
                EvaluateConfig(pred, sub.root, progress=False)):  # fmt: skip
        with pytest.raises(ValueError) as e:
            evaluate(cfg)
        assert str(e.value).startswith(f"{sub.root}: no ") and str(e.value).endswith(hint)


def test_json_dash_writes_the_json_alone_to_stdout(tmp_path: Path, monkeypatch) -> None:
    """`--json -` wrote a file named "-" in the working directory; a script reading stdout
    found the table there. Now the JSON is stdout's only content, the table on stderr."""
    monkeypatch.chdir(tmp_path)
    pred_dir, gt_dir = _write(tmp_path, _maps(2, 2, k=3))
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--num-classes", "3"]
    res = runner.invoke(app, [*args, "--json", "-", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["images"] == 2 and "mean" in res.stderr
    (tmp_path / "c").mkdir()
    gt_dir, a_dir, b_dir, tax, *_ = _compare_data(tmp_path / "c")
    res = runner.invoke(app, ["compare", "--class", "Bicycle", "--gt", str(gt_dir), "--taxonomy",
                              str(tax), "--source", f"a={a_dir}", "--source", f"b={b_dir}",
                              "--json", "-", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert [s["name"] for s in json.loads(res.stdout)["sources"]] == ["a", "b"]
    assert "ΔBIoU" in res.stderr and "wrote" not in res.stderr
    assert not (tmp_path / "-").exists()
    # --markdown - likewise (the table alone on stdout); --plot - is refused: a PNG
    base = ["compare", "--class", "Bicycle", "--gt", str(gt_dir), "--taxonomy", str(tax),
            "--source", f"a={a_dir}", "--source", f"b={b_dir}", "--no-progress"]  # fmt: skip
    res = runner.invoke(app, [*base, "--markdown", "-"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("**Bicycle**") and "| a |" in res.stdout and "ΔBIoU" in res.stderr
    for extra, said in ((["--plot", "-"], "--plot -: the chart is a PNG image"),
                        (["--json", "-", "--markdown", "-"], "one of them can go to stdout")):  # fmt: skip
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 2 and said in res.stderr, res.output
    assert not (tmp_path / "-").exists()


def test_compare_errors(tmp_path: Path) -> None:
    gt_dir, a_dir, b_dir, tax, *_ = _compare_data(tmp_path)
    # full label maps, but the class is not in the default taxonomy (none recorded near them)
    Path(tax).unlink()
    res = runner.invoke(
        app,
        [
            "compare",
            "--class",
            "Bicycle",
            "--gt",
            str(gt_dir),
            "--source",
            f"m={b_dir}",
            "--no-progress",
        ],
    )
    assert res.exit_code == 2 and "its taxonomy (MaSS13K" in res.output
    assert "Sky, Water) has no class 'Bicycle'; pass --taxonomy with the class" in res.output
    with pytest.raises(ValueError, match="unique"):
        CompareConfig("Bicycle", gt_dir, (("a", a_dir), ("a", b_dir)))
    (b_dir / "s0.png").write_bytes(b"")  # every unreadable file of a source, in one error
    (b_dir / "s2.png").write_bytes(b"GIF89a")
    tax = MASS13K.with_new_class("Bicycle").save(tmp_path / "t.json")
    with pytest.raises(ValueError, match=r"^2 of 3 pairs cannot be read") as e:
        compare(CompareConfig("Bicycle", gt_dir, (("m", b_dir),), taxonomy=tax, progress=False))
    assert str(b_dir / "s0.png") in str(e.value) and str(b_dir / "s2.png") in str(e.value)
    (a_dir / "run.json").write_text("{}")  # a label run without a subset to name its split
    with pytest.raises(ValueError, match="a label run; give its labels/<split> folder"):
        compare(CompareConfig("Bicycle", gt_dir, (("a", a_dir),), progress=False))
    assert parse_source("x=y=/d") == ("x=y", Path("/d"))
    with pytest.raises(ValueError, match="NAME=DIR"):
        parse_source("=/d")


def test_compare_resizes_a_smaller_prediction_only_when_told(tmp_path: Path) -> None:
    """A prediction at half the annotation's size (a model run at a lower --size, saved as it
    came): refused naming both files and both sizes, or scored upsampled by nearest neighbour
    with --resize-pred nearest, as engine evaluate does."""
    gt_dir, _, b_dir, tax, gts, _, preds_b = _compare_data(tmp_path)
    half = tmp_path / "half"
    half.mkdir()
    for i, b in enumerate(preds_b):
        write_label(half / f"s{i}.png", b[::2, ::2].copy())
    sources = (("m", b_dir), ("half", half))
    with pytest.raises(ValueError, match=r"half/s0\.png: size 20x15 differs from the ground truth"):
        compare(CompareConfig("Bicycle", gt_dir, sources, taxonomy=tax, progress=False))
    cfg = CompareConfig("Bicycle", gt_dir, sources, taxonomy=tax, resize_pred="nearest",
                        progress=False)  # fmt: skip
    got = compare(cfg).rows[1].scores
    up = [np.repeat(np.repeat(b[::2, ::2], 2, axis=0), 2, axis=1) for b in preds_b]
    want = _scores(list(zip(up, gts, strict=True)), 8)
    assert got.iou == pytest.approx(want.iou[7]) and got.biou == pytest.approx(want.biou[7])
    with pytest.raises(ValueError, match="resize_pred must be one of"):
        CompareConfig("Bicycle", gt_dir, sources, resize_pred="bilinear")


def test_compare_reads_each_folder_s_recorded_taxonomy(tmp_path: Path) -> None:
    """Without --taxonomy each folder's class id comes from what it records: a prediction
    folder's predict.json (Bicycle at 7) and a fused dataset with Car before Bicycle (8)."""
    gt_dir, a_dir, b_dir, tax, *_ = _compare_data(tmp_path)
    given = compare(CompareConfig("Bicycle", gt_dir, (("m", b_dir),), taxonomy=tax, progress=False))
    Path(tax).unlink()
    eight = MASS13K.with_new_class("Bicycle")
    pred = tmp_path / "runs" / "predict"
    pred.parent.mkdir()
    b_dir.rename(pred)
    (pred / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": eight.to_dict()}))
    nine = MASS13K.with_new_class("Car").with_new_class("Bicycle")  # Bicycle at 8
    fused = tmp_path / "fused"
    (fused / "labels").mkdir(parents=True)
    gt9 = fused / "labels" / "test"
    gt9.mkdir()
    for f in sorted(gt_dir.glob("*.png")):
        label = read_label(f)
        write_label(gt9 / f.name, np.where(label == 7, 8, label).astype(np.uint8))
    nine.save(fused / "taxonomy.json")
    rep = compare(CompareConfig("Bicycle", gt9, (("m", pred), ("p", a_dir)), progress=False))
    assert rep.rows[0].scores.counts == given.rows[0].scores.counts  # the same scores
    assert (rep.rows[0].class_id, rep.rows[0].taxonomy_source) == (7, str(pred / "predict.json"))
    assert rep.rows[1].taxonomy_source == "MaSS13K (default)"  # binary masks need none
    assert rep.class_id is None  # 8 in the ground truth, 7 in the predictions
    j = rep.to_json()
    assert j["sources"][0]["class_id"] == 7 and j["class_id"] is None
    with pytest.raises(ValueError, match=r"not in the taxonomy of source 'p' \(MaSS13K"):
        compare(CompareConfig("Bicycle", gt9, (("p", a_dir),), input="labels", progress=False))


def test_a_prediction_holding_only_others_and_human_is_a_label_map(tmp_path: Path) -> None:
    """--input auto read each file alone: a model's prediction holding only classes 0 and 1
    (Others and Human) was taken for a binary mask, its Human pixels scored as Bicycle. A
    folder whose taxonomy an engine output records holds full label maps only."""
    eight = MASS13K.with_new_class("Bicycle")
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    truth = np.zeros((20, 30), np.uint8)
    truth[5:10, 5:10] = 1  # the annotated bicycle (a binary subset mask)
    model = np.zeros((20, 30), np.uint8)
    model[5:10, 5:10] = 1  # Human where the bicycle is: no Bicycle predicted
    write_label(gt / "a.png", truth)
    write_label(pred / "a.png", model)
    (pred / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": eight.to_dict()}))
    rep = compare(CompareConfig("Bicycle", gt, (("model", pred),), progress=False))
    assert rep.rows[0].scores.iou == 0.0  # nothing of the class predicted (it read 100)
    # a subset's masks stay binary where a taxonomy is recorded above them (a subset imported
    # into a fused dataset's folder): the class is their 1, not the taxonomy's 7
    from annotations.subset import write_subset

    fused = tmp_path / "fused"
    fused.mkdir()
    eight.save(fused / "taxonomy.json")
    write_subset(fused / "bicycle", "Bicycle", "test", {"a": truth}, {})
    right = tmp_path / "right"
    write_label(right / "a.png", np.where(truth == 1, 7, 0).astype(np.uint8))
    (right / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": eight.to_dict()}))
    rep = compare(CompareConfig("Bicycle", fused / "bicycle", (("m", right),), progress=False))
    assert rep.rows[0].scores.iou == 100.0


def test_compare_resolves_a_class_id_in_the_ground_truth_s_taxonomy(tmp_path: Path) -> None:
    """--class 8 against a fused dataset with Car at 7 and Bicycle at 8 is Bicycle, which each
    source then finds in its own taxonomy (the predictions' Bicycle at 7, Car at 8). Before, the
    id was taken as it was in every folder, so the predictions' Car was scored as Bicycle and
    the line under the table named Bicycle at 8 in the predictions. An annotated subset takes
    an id too (MaSS13K and its class, as engine report reads it); it was refused."""
    from annotations.subset import write_subset

    gt_dir, _, b_dir, tax, gts, _, _ = _compare_data(tmp_path)
    given = compare(CompareConfig("Bicycle", gt_dir, (("m", b_dir),), taxonomy=tax, progress=False))
    bc = MASS13K.with_new_class("Bicycle").with_new_class("Car")
    cb = MASS13K.with_new_class("Car").with_new_class("Bicycle")
    (b_dir / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": bc.to_dict()}))
    fused = tmp_path / "fused"
    gt9 = fused / "labels" / "test"
    gt9.mkdir(parents=True)
    for f in sorted(b_dir.glob("*.png")):  # a car in the bottom rows of both
        pred = read_label(f)
        pred[25:] = 8
        write_label(f, pred)
        gt = read_label(gt_dir / f.name)
        gt = np.where(gt == 7, 8, gt).astype(np.uint8)
        gt[25:] = 7
        write_label(gt9 / f.name, gt)
    cb.save(fused / "taxonomy.json")
    rep = compare(CompareConfig("8", gt9, (("m", b_dir),), progress=False))
    assert rep.class_name == "Bicycle" and rep.rows[0].class_id == 7
    assert rep.rows[0].scores.counts == given.rows[0].scores.counts
    res = runner.invoke(
        app, ["compare", "--class", "8", "--gt", str(gt9), "--source", f"m={b_dir}"],
        env={"COLUMNS": "300"},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"m: Bicycle = 7 from {b_dir / 'predict.json'}" in res.output
    with pytest.raises(ValueError, match=r"--class 9: no class has that id .*fused"):
        compare(CompareConfig("9", gt9, (("m", b_dir),), progress=False))
    masks = {f"s{i}": (g == 7).astype(np.uint8) for i, g in enumerate(gts)}
    sub = write_subset(tmp_path / "sub", "Bicycle", "test", masks, {})
    rep = compare(CompareConfig("7", sub.root, (("m", b_dir),), progress=False))
    assert rep.class_name == "Bicycle" and rep.rows[0].class_id == 7
    with pytest.raises(ValueError, match="this subset annotates Bicycle, not Others"):
        compare(CompareConfig("0", sub.root, (("m", b_dir),), progress=False))


def test_compare_input_modes(tmp_path: Path) -> None:
    gt_dir, a_dir, b_dir, tax, *_ = _compare_data(tmp_path)
    # the model's full label maps are not binary masks
    with pytest.raises(ValueError, match="expected a binary mask"):
        compare(
            CompareConfig(
                "Bicycle", gt_dir, (("m", b_dir),), taxonomy=tax, input="binary", progress=False
            )
        )
    # "labels" reads the pseudo labels' 1s as class id 1 (Human), not Bicycle: nothing matches
    rep = compare(
        CompareConfig(
            "Bicycle", gt_dir, (("p", a_dir),), taxonomy=tax, input="labels", progress=False
        )
    )
    assert rep.rows[0].scores.counts["iou_intersection"] == 0
    auto = compare(CompareConfig("Bicycle", gt_dir, (("p", a_dir),), taxonomy=tax, progress=False))
    assert auto.rows[0].scores.counts["iou_intersection"] > 0


@pytest.mark.parametrize("workers", [1, 2])
def test_evaluate_names_every_unreadable_file_in_one_error(tmp_path: Path, workers: int) -> None:
    pred_dir, gt_dir = _write(tmp_path, _maps(4, 5))
    (pred_dir / "img01.png").write_bytes(b"not a png")
    data = (pred_dir / "img03.png").read_bytes()
    (pred_dir / "img03.png").write_bytes(data[: len(data) // 2])  # truncated
    write_label(gt_dir / "img04.png", np.full((24, 32), 9, np.uint8))  # not class ids
    out = tmp_path / "scores.json"
    cfg = EvaluateConfig(pred_dir, gt_dir, workers=workers, json_out=out, progress=False)
    with pytest.raises(ValueError) as e:
        evaluate(cfg)
    message = str(e.value)
    assert message.startswith("3 of 5 pairs cannot be read, so none were scored: ")
    for bad in (pred_dir / "img01.png", pred_dir / "img03.png", gt_dir / "img04.png"):
        assert str(bad) in message
    assert "\n" not in message and not out.exists()
    write_label(gt_dir / "img02.png", np.full((24, 32), 9, np.uint8))  # a fourth: not shown
    assert "and 1 more" in str(pytest.raises(ValueError, evaluate, cfg).value)
    res = runner.invoke(
        app, ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--no-progress"]
    )
    lines = res.output.strip().splitlines()  # the command line names all four, one a line
    assert (
        res.exit_code == 2
        and lines[0] == "error: 4 of 5 pairs cannot be read, so none were scored:"
    )
    bad = [
        pred_dir / "img01.png",
        gt_dir / "img02.png",
        pred_dir / "img03.png",
        gt_dir / "img04.png",
    ]
    assert [line.split(": ")[0] for line in lines[1:]] == [f"  {p}" for p in bad]
    write_label(gt_dir / "img02.png", _maps(4, 5)[2][1])
    (pred_dir / "img01.png").unlink()
    (gt_dir / "img01.png").unlink()
    res = runner.invoke(
        app, ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--no-progress"]
    )
    assert res.exit_code == 2 and "2 of 4 pairs cannot be read" in res.output
    for stem in ("img03", "img04"):
        (pred_dir / f"{stem}.png").unlink()
        (gt_dir / f"{stem}.png").unlink()
    write_label(pred_dir / "img00.png", np.full((24, 32), 9, np.uint8))
    with pytest.raises(ValueError) as e:  # one bad file: its own message, as before
        evaluate(cfg)
    assert str(e.value).startswith(f"{pred_dir / 'img00.png'}: ")


def test_size_mismatches_of_one_size_are_one_line(tmp_path: Path) -> None:
    """Five predictions at half the ground truth's size: one line on the command line, as docs
    say of more than three files failing for one reason. Each message named its own ground
    truth file, so every reason differed and there were five lines. The line still says where
    the ground truth is; files whose message quotes their own path fold the same way."""
    from engine.cli.common import grouped

    pairs = _maps(6, 6)
    pred_dir, gt_dir = _write(tmp_path, pairs)
    for i, (pred, _) in enumerate(pairs[:5]):
        write_label(pred_dir / f"img{i:02d}.png", pred[::2, ::2])
    res = runner.invoke(
        app,
        ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--no-progress"],
        env={"COLUMNS": "400"},
    )
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert lines[0] == "error: 5 of 6 pairs cannot be read, so none were scored:"
    assert lines[1:] == [
        f"  {pred_dir / 'img00.png'} and 4 more files: size 16x12 differs from the ground "
        f"truth's 32x24 (the file of the same name in {gt_dir}); pass --resize-pred nearest to "
        "resize"
    ]
    own = [f"/p/{i}.png: cannot read label image (cannot identify '/p/{i}.png')" for i in range(4)]
    assert grouped([*own, "/p/x.png: other"]) == [
        "/p/0.png and 3 more files: cannot read label image (cannot identify '/p/0.png')",
        "/p/x.png: other",
    ]


def test_map_every_item_counts_what_it_does_not_show() -> None:
    from engine.parallel import map_every_item

    def check(i: int) -> int:
        if i % 2:
            raise ValueError(f"item{i}: odd")
        return i

    assert map_every_item(check, [0, 2, 4], 1, "x", False) == [0, 2, 4]
    with pytest.raises(ValueError, match=r"^item1: odd$"):
        map_every_item(check, [0, 1, 2], 1, "x", False)
    with pytest.raises(
        ValueError,
        match=r"^4 of 8 things .*item1: odd; item3: odd; item5: odd; "
        r"and 1 more$",
    ) as e:
        map_every_item(check, list(range(8)), 1, "x", False, what="things")
    # the message shows three; the error holds every problem, for the command line to list
    assert e.value.problems == ["item1: odd", "item3: odd", "item5: odd", "item7: odd"]
    assert e.value.headline == "4 of 8 things cannot be read, so none were scored"
    with pytest.raises(ZeroDivisionError):  # a bug is not bad input: it stops everything
        map_every_item(lambda i: 1 // i, [1, 0], 1, "x", False)


def test_compare_refuses_0_255_masks_as_ground_truth(tmp_path: Path) -> None:
    """Binary masks saved as 0/255 read as "no class, all unannotated": every score would be
    measured on nothing. Refused with what to do; ground truth without the class and without
    255 (the class absent everywhere) still scores."""
    gt_dir, pred = tmp_path / "gt", tmp_path / "pred"
    for k in range(2):
        mask = np.zeros((20, 30), np.uint8)
        mask[5:15, 5 + k : 20] = 1
        write_label(pred / f"s{k}.png", mask)
        write_label(gt_dir / f"s{k}.png", mask * 255)
    with pytest.raises(ValueError) as e:
        compare(CompareConfig("Bicycle", gt_dir, (("p", pred),), progress=False))
    assert str(e.value) == (
        f"{gt_dir}: no ground-truth file marks the class (1), and s0.png holds 255, which reads "
        "as unannotated: are these 0/255 masks? Import them as an annotated subset (engine "
        "annotate import --format png --png-binary) and give that as --gt"
    )
    for k in range(2):
        write_label(gt_dir / f"s{k}.png", np.zeros((20, 30), np.uint8))
    rep = compare(CompareConfig("Bicycle", gt_dir, (("p", pred),), progress=False))
    assert rep.rows[0].scores.iou == 0.0  # predicted where the class is absent: nothing right


def test_compare_checks_for_0_255_masks_only_where_the_class_is_absent(tmp_path: Path) -> None:
    """Full label maps marking the class (id 2) with ignored (255) pixels but no Human (1) are
    no 0/255 masks: scored, the source equal to them at IoU 100."""
    gt_dir = tmp_path / "gt"
    for k in range(2):
        label = np.zeros((20, 30), np.uint8)
        label[5:15, 5 + k : 20] = 2
        label[:2] = 255
        write_label(gt_dir / f"s{k}.png", label)
    rep = compare(CompareConfig("2", gt_dir, (("same", gt_dir),), progress=False))
    assert rep.rows[0].scores.iou == 100.0


def test_num_classes_and_taxonomy_are_named_as_options(tmp_path: Path) -> None:
    """The refusal of both names the options a user typed, not the config's fields."""
    with pytest.raises(ValueError, match="^--num-classes and --taxonomy do not combine"):
        EvaluateConfig(tmp_path, tmp_path, num_classes=9, taxonomy=tmp_path / "t.json")


@pytest.mark.parametrize("n", [0, -1, 256])
def test_a_number_of_classes_outside_1_to_255_is_refused(tmp_path: Path, n: int) -> None:
    """A library caller's num_classes is checked as the CLI's --num-classes is (min=1,
    max=255): 0 classes score nothing, and 256 would make 255 a class, not the ignore value."""
    with pytest.raises(ValueError, match=f"^num_classes must be in 1..255, got {n}$"):
        EvaluateConfig(tmp_path, tmp_path, num_classes=n)
    assert EvaluateConfig(tmp_path, tmp_path, num_classes=255).num_classes == 255


def test_evaluate_and_compare_refuse_predictions_engine_predict_is_still_writing(tmp_path):
    """All the ground truth's images predicted is no sign of a finished folder: engine predict
    replacing its maps (other settings, --overwrite) leaves old and new ones side by side, and
    they were scored as one model's."""
    import os

    from engine.runlock import exclusive

    pred_dir, gt_dir = _write(tmp_path, _maps(2, 2))
    with exclusive(pred_dir, "engine predict"):
        res = runner.invoke(app, ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir)])
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and text.startswith(
            f"error: {pred_dir}: engine predict (pid {os.getpid()} on "
        )
        assert "engine evaluate would read its label maps half written: wait for it" in text
        res = runner.invoke(
            app, ["compare", "--class", "Others", "--gt", str(gt_dir), "--source", f"m={pred_dir}"]
        )
        assert res.exit_code == 2 and "engine compare would read its label maps" in res.output
    assert evaluate(EvaluateConfig(pred_dir, gt_dir, progress=False)).stems == ["img00", "img01"]
    # a label run's split folder, as compare asks for: the run's lock is one level up
    run = tmp_path / "run"
    (run / "labels").mkdir(parents=True)
    pred_dir.rename(run / "labels" / "test")
    (run / "run.json").write_text("{}")
    with exclusive(run, "engine label"):
        res = runner.invoke(
            app,
            [
                "compare",
                "--class",
                "Others",
                "--gt",
                str(gt_dir),
                "--source",
                f"m={run}/labels/test",
            ],
        )
        assert res.exit_code == 2 and f"error: {run}/labels/test: engine label (pid" in " ".join(
            res.output.split()
        )


def test_evaluate_refuses_ground_truth_a_live_command_is_still_writing(tmp_path):
    """A folder of label maps given as --gt by itself, while engine predict (or engine label,
    the run's lock one level up) writes it: refused as --pred is, naming the folder and the
    writer; before, its maps were scored as ground truth, old and new side by side, without a
    word (--pred and compare's --gt were asked, evaluate's --gt not). Free, it is scored."""
    import os
    import shutil

    from engine.runlock import exclusive

    pred_dir, gt_dir = _write(tmp_path, _maps(2, 2))
    run = tmp_path / "run"
    (run / "labels").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    shutil.copytree(gt_dir, run / "labels" / "test")
    for given, holder, command in ((gt_dir, gt_dir, "engine predict"),
                                   (run / "labels" / "test", run, "engine label")):  # fmt: skip
        with exclusive(holder, command):
            res = runner.invoke(app, ["evaluate", "--pred", str(pred_dir), "--gt", str(given)])
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and text.startswith(
            f"error: {given}: {command} (pid {os.getpid()} on "
        ), text
        assert text.endswith(
            "engine evaluate would read its label maps half written: wait for it to finish, then "
            "run engine evaluate again"
        ), text
        assert evaluate(EvaluateConfig(pred_dir, given, progress=False)).stems == ["img00", "img01"]


@pytest.mark.parametrize(
    ("record", "what", "note"),
    [
        ("metrics.jsonl", "a training run (engine train)", " (its curves.png is a chart)"),
        ("report.json", "a report (engine report)", ""),
    ],
)
@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_a_training_run_or_report_is_no_folder_of_label_maps(tmp_path, record, what, note, command):
    """evaluate / compare --gt runs/train read the run's curves.png as a ground-truth label map
    ("1 prediction(s) missing for ground truth in runs/train: curves.png"), and a demo's folder
    was told to give its train/ as a folder of label maps; a report's chart.png the same. Such
    an output is named for what it is, as a label run or subset is."""
    pred, wrong = tmp_path / "pred", tmp_path / "wrong"
    write_label(pred / "a.png", np.zeros((4, 4), np.uint8))
    write_label(wrong / "curves.png", np.zeros((4, 4), np.uint8))
    (wrong / record).write_text("{}")
    args = {
        "evaluate": ["evaluate", "--pred", str(pred), "--gt", str(wrong)],
        "compare": ["compare", "--class", "Bicycle", "--source", f"m={pred}", "--gt", str(wrong)],
    }[command]
    res = CliRunner().invoke(app, [*args, "--no-progress"])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        f"error: {wrong}: it is {what}, not a folder of ground-truth label maps{note}"
    )
    if command == "evaluate":  # nor is it predictions
        res = CliRunner().invoke(app, ["evaluate", "--pred", str(wrong), "--gt", str(pred)])
        assert res.exit_code == 2 and f"it is {what}, not a folder of prediction" in res.output
    res = CliRunner().invoke(app, [*args[:-1], str(tmp_path), "--no-progress"])
    assert res.exit_code == 2 and "folders of label maps inside: " + str(pred) + ";" in " ".join(
        res.output.split()
    ), res.output  # the folder above: pred/ offered, not the run


def test_evaluate_and_info_of_its_json_print_one_table(tmp_path: Path) -> None:
    """``engine evaluate`` and ``engine info`` on its ``--json`` file each built the per-class
    table; a score undefined (a class in neither side) was ``-`` in one and ``n/a`` in the
    other. Now one table: the same rows, ``n/a`` in both."""
    pairs = [(np.where(p == 2, 0, p), np.where(g == 2, 0, g)) for p, g in _maps(3, 2, k=3)]
    pred_dir, gt_dir = _write(tmp_path, pairs)
    out = tmp_path / "e.json"
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--num-classes", "3"]
    res = runner.invoke(app, [*args, "--json", str(out), "--no-progress"], terminal_width=200)
    assert res.exit_code == 0, res.output
    shown = runner.invoke(app, ["info", str(out)], terminal_width=200)
    assert shown.exit_code == 0, shown.output

    def rows(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("│")]

    assert rows(res.stdout) == rows(shown.stdout)
    (row2,) = [line for line in rows(res.stdout) if line.split("│")[1].strip() == "2"]
    assert [c.strip() for c in row2.split("│")[3:6]] == ["n/a", "n/a", "n/a"]


def _scored_records(tmp_path: Path) -> tuple[list, Path, Path, Path]:
    """Two predicted maps scored by ``engine evaluate --json`` (``e.json``) and ``engine compare
    --json`` (``c.json``): ``(pairs, prediction folder, evaluate record, compare record)``."""
    pairs = _maps(3, 2, k=3)
    pred_dir, gt_dir = _write(tmp_path, pairs)
    ev, cmp = tmp_path / "e.json", tmp_path / "c.json"
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--num-classes", "3"]
    assert runner.invoke(app, [*args, "--json", str(ev), "--no-progress"]).exit_code == 0
    args = ["compare", "--class", "Human", "--gt", str(gt_dir), "--source", f"a={pred_dir}"]
    assert runner.invoke(app, [*args, "--json", str(cmp), "--no-progress"]).exit_code == 0
    return pairs, pred_dir, ev, cmp


def test_info_of_a_scores_record_says_when_the_maps_scored_changed_since(tmp_path: Path) -> None:
    """``engine evaluate --json`` and ``engine compare --json`` recorded no digest of the maps
    they scored: ``engine info`` of the record showed its scores though the predictions had been
    written over since. Each record now holds ``maps_sha256`` and info warns when they differ."""
    pairs, pred_dir, ev, cmp = _scored_records(tmp_path)
    assert len(json.loads(ev.read_text())["maps_sha256"]) == 16
    assert json.loads(cmp.read_text())["sources"][0]["maps_sha256"]

    def warned(record: Path) -> list[str]:
        res = runner.invoke(app, ["info", str(record)], terminal_width=300)
        assert res.exit_code == 0, res.output
        return [line for line in res.output.splitlines() if "score them again" in line]

    assert warned(ev) == [] and warned(cmp) == []
    write_label(pred_dir / "img00.png", pairs[1][0])  # another model's map written over it
    why = f"{pred_dir}: the label maps scored changed since (their bytes differ)"
    end = ": these scores describe the maps as they were; score them again"
    assert warned(ev) == warned(cmp) == [f"warning: {why}{end}"]
    (pred_dir / "img01.png").unlink()
    why = f"{pred_dir}: 1 of the 2 maps scored is gone (img01)"
    assert warned(ev) == warned(cmp) == [f"warning: {why}{end}"]


def test_maps_of_a_gone_folder_are_said_unreadable_unless_named_from_elsewhere(
    tmp_path: Path, monkeypatch
) -> None:
    """A record's folder, named relative to where the command ran, cannot be checked from
    another folder (None: nothing said); named absolutely and gone, its maps cannot be read."""
    from engine.evaluate import maps_changed

    monkeypatch.chdir(tmp_path)
    assert maps_changed("pred", ["img00"], "0" * 16) is None
    why = maps_changed(str(tmp_path / "pred"), ["img00"], "0" * 16)
    assert why is not None and why.startswith(
        f"{tmp_path / 'pred'}: the label maps scored cannot be read now ("
    )


def test_info_of_a_scores_record_written_before_digests_shows_it_without_warning(
    tmp_path: Path,
) -> None:
    """Records of the release before the forty-sixth round, as it wrote them: evaluate's with
    ``stems`` and no ``maps_sha256``, compare's with neither and no ``split`` in its config.
    engine info shows their scores, warns of nothing it cannot know (not "changed since", even
    with the maps written over), and compare without --split records the config (and hash) of
    that release, so the two releases' records of one comparison have one config_hash."""
    pairs, pred_dir, ev, cmp = _scored_records(tmp_path)
    old_config = {"bf1_mode", "class_name", "gt", "input", "json_out", "markdown_out"}
    old_config |= {"plot_out", "progress", "resize_pred", "sources", "taxonomy", "workers"}
    data = json.loads(cmp.read_text())
    assert set(data["config"]) == old_config  # f7f8d3f's keys: no "split" without --split
    del data["stems"]
    for row in data["sources"]:
        del row["maps_sha256"]
    cmp.write_text(json.dumps(data))
    data = json.loads(ev.read_text())
    del data["maps_sha256"]
    ev.write_text(json.dumps(data))
    write_label(pred_dir / "img00.png", pairs[1][0])  # written over: no digest to tell
    for record in (ev, cmp):
        res = runner.invoke(app, ["info", str(record)], terminal_width=300)
        assert res.exit_code == 0, res.output
        assert "warning" not in res.output and str(pred_dir) in res.output


def test_evaluate_scores_a_class_the_ground_truth_s_taxonomy_lacks_as_its_parent(
    tmp_path: Path,
) -> None:
    """Classes added one after another: the 9-class model (Bicycle 7, Car 8) scored against the
    8-class fused dataset it came after (Bicycle 7; its cars are Others, the class not yet
    added). Car is scored as Others, in the ground truth's classes, and Bicycle apart; before,
    the model's classes were scored, so every car it found counted against Others (Car's row
    empty) without a word. --no-fold-new-classes scores Car apart, as before."""
    bc = MASS13K.with_new_class("Bicycle").with_new_class("Car")
    eight = MASS13K.with_new_class("Bicycle")
    pairs = _maps(7, 3, k=9)
    to_others = np.arange(256, dtype=np.uint8)
    to_others[8] = 0
    pred_dir, gt_dir = _write(tmp_path, [(p, to_others[g]) for p, g in pairs])
    (pred_dir / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": bc.to_dict()}))
    fused = tmp_path / "fused"
    (fused / "labels").mkdir(parents=True)
    gt_dir = gt_dir.rename(fused / "labels" / "test")
    eight.save(fused / "taxonomy.json")
    rep = evaluate(EvaluateConfig(pred_dir, gt_dir, progress=False, json_out=tmp_path / "r.json"))
    assert rep.taxonomy.names == eight.names
    want = _scores([(to_others[p], to_others[g]) for p, g in pairs], 8)
    np.testing.assert_array_equal(rep.result.counts.as_array(), want.counts.as_array())
    assert rep.folded == {"Car": "Others"} and rep.result.iou[7] > 50
    j = json.loads((tmp_path / "r.json").read_text())
    assert j["folded"] == {"Car": "Others"} and "taxonomy.json" in j["fold_why"]
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--no-progress"]
    res = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert "Car scored as Others (not among the ground truth's classes, " in res.output
    apart = evaluate(
        EvaluateConfig(pred_dir, gt_dir, progress=False, fold_new_classes=False)
    )  # the model's classes, the ground truth mapped onto them, as before
    assert apart.taxonomy.names == bc.names and not apart.folded
    # against a ground truth recording the 7 base classes, --fold-new-classes asks for what is
    # done anyway (Bicycle and Car as Others): the same scores, not "no new class to score as
    # its parent" (its own taxonomy has none)
    MASS13K.save(fused / "taxonomy.json")
    to_others[7] = 0
    for i, (_, g) in enumerate(pairs):
        write_label(gt_dir / f"img{i:02d}.png", to_others[g])
    default = evaluate(EvaluateConfig(pred_dir, gt_dir, progress=False))
    asked = evaluate(EvaluateConfig(pred_dir, gt_dir, progress=False, fold_new_classes=True))
    assert asked.folded == default.folded == {"Bicycle": "Others", "Car": "Others"}
    np.testing.assert_array_equal(asked.result.counts.as_array(), default.result.counts.as_array())


def test_compare_refuses_a_model_made_before_the_class_was_added(tmp_path: Path) -> None:
    """Classes added one after another: the 8-class model (Bicycle) given to engine compare
    --class Car beside the 9-class one. Its predict.json has no Car: refused before any source
    is scored, saying it was made before Car was added; before, each file failed with advice to
    pass --taxonomy, which would read the recorded ids as another taxonomy's."""
    gt_dir, a_dir, b_dir, *_ = _compare_data(tmp_path)
    MASS13K.with_new_class("Car").save(gt_dir / "taxonomy.json")  # Car at 7 in the truth
    eight = MASS13K.with_new_class("Bicycle")
    (b_dir / "predict.json").write_text(json.dumps({"config": {}, "taxonomy": eight.to_dict()}))
    args = ["compare", "--class", "Car", "--gt", str(gt_dir), "--no-progress"]
    res = runner.invoke(app, [*args, "--source", f"old={b_dir}"], env={"COLUMNS": "300"})
    assert res.exit_code == 2, res.output
    assert "source 'old': its taxonomy (" in res.output
    assert "has no class 'Car': it was made before Car was added" in res.output
    assert "pass --taxonomy" not in res.output


def test_a_prediction_named_composed_otherwise_pairs_with_its_truth(tmp_path):
    """Predictions of ``vélo`` named with one é (NFC: a tool on Linux or Windows) beside truth
    stored as macOS names it (e + U+0301, NFD) were "1 prediction(s) missing ... vélo.png; 1
    prediction(s) there have no ground truth: vélo.png"; the review showed the image without
    its prediction. They pair now (evaluate, compare, report, review); two predictions that
    compose alike are left to the error."""
    import unicodedata

    from engine.evaluate import pair_files
    from engine.outputs import find_png

    nfc, nfd = unicodedata.normalize("NFC", "vélo"), unicodedata.normalize("NFD", "vélo")
    label = np.zeros((4, 5), np.uint8)
    for path in (f"gt/{nfd}.png", "gt/a.png", f"pred/{nfc}.png", "pred/a.png"):
        write_label(tmp_path / path, label)
    pairs = pair_files(tmp_path / "pred", tmp_path / "gt")
    assert [(s, p.name) for s, p, _ in pairs] == [("a", "a.png"), (nfd, f"{nfc}.png")]
    assert find_png(tmp_path / "pred", "test", nfd) == tmp_path / f"pred/{nfc}.png"
    assert find_png(tmp_path / "gt", "test", nfc) == tmp_path / f"gt/{nfd}.png"
    res = evaluate(EvaluateConfig(str(tmp_path / "pred"), str(tmp_path / "gt"), progress=False))
    assert res.stems == ["a", nfd]


# -- a dataset's split as the ground truth -----------------------------------------------------


def _cityscapes_like(root: Path, pairs) -> Path:
    """leftImg8bit/val/<city>/<stem>_leftImg8bit.png and gtFine/val/<city>/<stem>_gtFine_
    labelTrainIds.png (beside the labelIds, which are not read), a 7-class taxonomy kept in
    meta/, and the predictions engine predict --data ROOT --split val writes: PRED/<stem>.png."""
    for i, (pred, gt) in enumerate(pairs):
        city = ("aachen", "bonn")[i % 2]
        stem = f"{city}_{i:06d}"
        write_label(root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png", gt * 0)
        write_label(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelTrainIds.png", gt)
        write_label(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png", gt * 0 + 40)
        write_label(root / "pred" / f"{stem}.png", pred)
    write_label(root / "leftImg8bit" / "train" / "x" / "x_1_leftImg8bit.png", pairs[0][1])
    write_label(root / "gtFine" / "train" / "x" / "x_1_gtFine_labelTrainIds.png", pairs[0][1])
    (root / "meta").mkdir()
    MASS13K.save(root / "meta" / "classes.json")
    (root / "dataset.yaml").write_text(
        "images: leftImg8bit/{split}\nlabels: gtFine/{split}\nimage_suffix: _leftImg8bit.png\n"
        "label_suffix: _gtFine_labelTrainIds.png\nrecursive: true\ntaxonomy: meta/classes.json\n"
    )
    return root / "pred"


def test_evaluate_scores_a_dataset_s_split_where_its_spec_finds_the_label_maps(tmp_path):
    """--gt DATA --split val: the split's own label maps (Cityscapes' city folders and suffixed
    names) with the dataset's classes, each paired with the prediction engine predict named by
    its image's stem; the same scores as a flat copy of the maps. Before, --gt took a flat
    folder of <stem>.png only ("no such option: --split"), so such a dataset was copied first."""
    pairs = _maps(5, 4)
    root = tmp_path / "cityscapes"
    pred = _cityscapes_like(root, pairs)
    flat = tmp_path / "flat"
    for path in sorted((root / "gtFine" / "val").glob("*/*_labelTrainIds.png")):
        write_label(flat / path.name.replace("_gtFine_labelTrainIds", ""), read_label(path))
    copy = evaluate(EvaluateConfig(pred, flat, progress=False)).to_json()
    out = tmp_path / "e.json"
    for gt in (root, root / "dataset.yaml"):
        res = runner.invoke(app, ["evaluate", "--pred", str(pred), "--gt", str(gt), "--split",
                                  "val", "--json", str(out), "--no-progress"])  # fmt: skip
        assert res.exit_code == 0, res.output
        assert f"ground truth: {root}, split val ({root / 'gtFine' / 'val'})" in res.output
        data = json.loads(out.read_text())
        assert data["counts"] == copy["counts"] and data["mIoU"] == copy["mIoU"]
        assert data["stems"] == copy["stems"] == [f"{('aachen', 'bonn')[i % 2]}_{i:06d}"
                                                  for i in (0, 2, 1, 3)]  # fmt: skip
        assert data["dataset"] == {
            "root": str(root), "split": "val", "labels": str(root / "gtFine" / "val")
        }  # fmt: skip
        assert data["config"]["split"] == "val" and data["config"]["gt"] == str(gt)
        assert data["taxonomy_source"] == str(root / "meta" / "classes.json")
        res = runner.invoke(app, ["info", str(out)], env={"COLUMNS": "300"})
        assert f"ground truth: {gt}, split val" in res.output, res.output
    # a prediction of another size: its ground truth named by its folder (its name is another)
    write_label(pred / "aachen_000000.png", pairs[0][0][:12])
    with pytest.raises(ValueError, match=rf"differs from the ground truth's 32x24 \(its map in "
                       rf"{root / 'gtFine' / 'val' / 'aachen'}\); pass --resize-pred"):  # fmt: skip
        evaluate(EvaluateConfig(pred, root, split="val", progress=False))
    # predictions named after the image files (engine predict --images of the city folders)
    for p in sorted(pred.iterdir()):
        p.rename(pred / f"{p.stem}_leftImg8bit.png")
    with pytest.raises(ValueError) as e:
        evaluate(EvaluateConfig(pred, root, split="val", progress=False))
    assert str(e.value).endswith(
        f"; {pred}'s maps are named after the image files (aachen_000000_leftImg8bit.png), as "
        f"engine predict --images names them: predict with --data {root} --split val, which "
        "names them as the dataset names its images (aachen_000000.png)"
    )
    # a folder as --gt: the record as before (no split in its config, so the same hash)
    assert copy["dataset"] is None
    evaluate(EvaluateConfig(flat, flat, progress=False, json_out=out))
    assert "split" not in json.loads(out.read_text())["config"]


def test_a_missing_map_of_a_suffixed_dataset_gets_no_image_name_hint(tmp_path: Path) -> None:
    """A dataset whose spec cuts an image_suffix, with one prediction missing and the others
    named as engine predict --data names them: the error names the missing map and nothing
    else (the hint about maps named after the image files is for such maps only)."""
    root = tmp_path / "cityscapes"
    pred = _cityscapes_like(root, _maps(5, 4))
    (pred / "bonn_000001.png").unlink()
    with pytest.raises(ValueError) as e:
        evaluate(EvaluateConfig(pred, root, split="val", progress=False))
    assert str(e.value) == (
        f"{pred}: 1 prediction(s) missing for ground truth in {root} (split val): bonn_000001.png"
    )


def test_evaluate_of_a_mass13k_root_equals_its_split_folder(tmp_path: Path) -> None:
    """A root of the MaSS13K layout (no spec) and a split: the same scores as --gt
    ROOT/annotations/<split>, which still works as it did."""
    pred, gt = _write(tmp_path, _maps(6, 3))
    root = tmp_path / "data"
    (root / "annotations").mkdir(parents=True)
    gt.rename(root / "annotations" / "test")
    (root / "images" / "test").mkdir(parents=True)
    for p in sorted((root / "annotations" / "test").iterdir()):
        write_label(root / "images" / "test" / p.name, read_label(p) * 0)
    folder = evaluate(EvaluateConfig(pred, root / "annotations" / "test", progress=False))
    loads = []
    with pytest.MonkeyPatch.context() as mp:  # the root's spec is read once: telling it a
        # dataset (engine.evaluate.dataset_spec) loads the spec the split is read with
        mp.setattr(ev.truth, "load_spec", lambda p, f=ev.truth.load_spec: loads.append(p) or f(p))
        split = evaluate(EvaluateConfig(pred, root, split="test", progress=False))
    assert loads == [root]
    assert ev.dataset_spec(root / "annotations" / "test") is None
    assert ev.dataset_spec(tmp_path / "missing") is None
    a, b = folder.to_json(), split.to_json()
    assert b.pop("dataset") == {
        "root": str(root), "split": "test", "labels": str(root / "annotations" / "test")
    }  # fmt: skip
    assert a.pop("dataset") is None and a == b


def test_compare_of_a_dataset_split_equals_its_split_folder(tmp_path: Path) -> None:
    """engine evaluate took --gt DATASET --split S; engine compare had no --split ("No such
    option") and refused the dataset's root, so the same ground truth was given two ways. Now
    the same scores as --gt ROOT/annotations/<split>; without --split the record is as before."""
    pred, gt = _write(tmp_path, _maps(6, 3))
    root = tmp_path / "data"
    (root / "annotations").mkdir(parents=True)
    gt.rename(root / "annotations" / "test")
    (root / "images" / "test").mkdir(parents=True)
    for p in sorted((root / "annotations" / "test").iterdir()):
        write_label(root / "images" / "test" / p.name, read_label(p) * 0)
    folder = compare(
        CompareConfig("Human", root / "annotations/test", (("a", pred),), progress=False)
    )
    split = compare(CompareConfig("Human", root, (("a", pred),), progress=False, split="test"))
    assert folder.rows[0].scores.counts == split.rows[0].scores.counts
    assert folder.images == split.images == 3
    assert "split" not in folder.to_json(CompareConfig("Human", root, (("a", pred),)))["config"]
    args = ["compare", "--class", "Human", "--gt", str(root), "--source", f"a={pred}"]
    res = runner.invoke(app, [*args, "--split", "test", "--no-progress"], terminal_width=200)
    assert res.exit_code == 0 and "Human: 3 annotated images" in res.output, res.output
    res = runner.invoke(app, [*args, "--split", "val", "--no-progress"], terminal_width=200)
    assert res.exit_code == 2 and "split 'val' not found; available splits: test" in res.output
    res = runner.invoke(app, [*args, "--no-progress"], terminal_width=200)
    assert res.exit_code == 2, res.output  # the root without --split: name the option, as evaluate
    assert "a dataset, not a folder of label maps: give --split, one of test" in res.output


def test_evaluate_gt_and_split_misgiven_are_one_line(tmp_path: Path) -> None:
    """A dataset without --split says which splits it has; --split with a folder of label maps
    is refused (it was no option); a dataset's label folder that does not pair as a flat folder
    (Cityscapes' gtFine/val, its maps in city folders; COCO-Stuff's two maps an image) says how
    to score the dataset; a split it lacks names those it has."""
    root = tmp_path / "cityscapes"
    pred = _cityscapes_like(root, _maps(7, 2))
    flat, _ = _write(tmp_path, _maps(7, 1))

    def error(*args: str) -> str:
        res = runner.invoke(app, ["evaluate", "--pred", str(pred), *args, "--no-progress"])
        assert res.exit_code == 2, res.output
        return " ".join(res.output.split())

    assert error("--gt", str(root)) == (
        f"error: {root}: a dataset, not a folder of label maps: give --split, one of train, val"
    )
    assert error("--gt", str(flat), "--split", "val") == (
        f"error: {flat}: a folder of label maps, not a dataset: --split picks a split of a "
        "dataset given as --gt (its root or spec); leave --split out"
    )
    assert error("--gt", str(root / "gtFine" / "val")) == (
        f"error: {root / 'gtFine' / 'val'}: no ground-truth PNG files found (expected <stem>.png)"
        f"; it holds the label maps of the dataset {root}, whose spec names them: give --gt "
        f"{root} --split val"
    )
    assert error("--gt", str(tmp_path), "--split", "val") == (
        f"error: {tmp_path}: no dataset spec and no images/<split>, not a dataset: --split picks "
        "a split of a dataset given as --gt (its root or spec); leave --split out for a folder "
        "of label maps"
    )
    assert error("--gt", str(root), "--split", "test") == (
        f"error: {root / 'leftImg8bit' / 'test'}: split 'test' not found; available splits: "
        "train, val"
    )
    (root / "gtFine" / "train" / "x" / "x_1_gtFine_labelTrainIds.png").rename(
        root / "gtFine" / "train" / "x_1.png"
    )
    (root / "gtFine" / "train" / "x").rmdir()
    said = error("--gt", str(root / "gtFine" / "train"))
    assert (
        f"1 prediction(s) missing for ground truth in {root / 'gtFine' / 'train'}: x_1.png" in said
    )
    assert said.endswith(
        f"; it holds the label maps of the dataset {root}, whose spec names them: give --gt {root} "
        "--split train"
    )


def test_json_dash_and_json_file_record_the_same_torch_facts(tmp_path: Path) -> None:
    """`--device auto --json -` on a machine without CUDA recorded torch's kernels and threads
    (the command line's "auto" was taken for torch), while `--json FILE` of the same run
    recorded none: the counts were computed with numpy/OpenCV. Both now record what counted."""
    from engine.evaluate import count_device

    pred_dir, gt_dir = _write(tmp_path, _maps(2, 2, k=3))
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--num-classes", "3",
            "--device", "auto", "--no-progress"]  # fmt: skip
    res = runner.invoke(app, [*args, "--json", "-"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)["environment"]
    res = runner.invoke(app, [*args, "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    written = json.loads((tmp_path / "e.json").read_text())["environment"]
    used = count_device("auto") is not None  # CUDA here: torch counted
    for env in (shown, written):
        assert ("cpu_capability" in env, "torch_threads" in env) == (used, used)


@pytest.mark.parametrize(
    "sources, said",
    [  # bare DIRs are named after their folders: the hint says so
        (["run1/pred", "run2/pred"], "got pred twice (a bare DIR is named after its folder); "
         "name each with --source NAME=DIR"),
        (["a/pred", "b/pred", "c/pred"], "got pred 3 times (a bare DIR is named after"),
        # NAME=DIR already: no hint to use it
        (["A=x", "A=y"], "got A twice; give each source its own name"),
        (["A=x", "A=y", "A=z", "B=u", "B=v"], "got A 3 times and B twice; give each source"),
        # a typed name that is also the folder's: typed all the same, no NAME=DIR hint
        (["pred=run1/pred", "pred=run2/pred"], "got pred twice; give each source its own name"),
        (["pred=run1/pred", "run2/pred"], "got pred twice (a bare DIR is named after its"),
        (["pred=run1/pred", "run2/pred", "x=y"], "got pred twice (a bare DIR is named after"),
        (["a=run1/pred", "run2/pred", "a=z"], "got a twice; give each source its own name"),
    ],
)  # fmt: skip
def test_duplicate_source_names_are_counted_and_hinted_as_given(sources, said) -> None:
    """Three copies of a name were "twice", and ``--source A=x --source A=y`` was told to name
    each with ``--source NAME=DIR``, which it had; so was ``--source pred=run1/pred --source
    pred=run2/pred``, whose typed name happens to be the folder's."""
    with pytest.raises(ValueError) as e:
        parse_sources(sources)
    assert str(e.value).startswith(f"--source names must be unique, {said}"), str(e.value)


def test_sources_of_their_own_names_are_read_as_typed() -> None:
    """No name twice: no error (the count of repeated names was joined from none, IndexError)."""
    assert parse_sources(["a=x", "y/pred"]) == (
        ("a", Path("x")),
        ("pred", Path("y/pred")),
    )


def test_duplicate_source_names_given_to_the_library_are_the_callers() -> None:
    """A library caller names every source: ("pred", run1/pred) twice is not a bare DIR."""
    with pytest.raises(ValueError) as e:
        CompareConfig("Bicycle", Path("gt"), (("pred", Path("r1/pred")), ("pred", Path("r2/pred"))))
    assert (
        str(e.value)
        == "--source names must be unique, got pred twice; give each source its own name"
    )


def test_compare_refuses_a_label_run_or_subset_of_another_class(tmp_path: Path) -> None:
    """A label run's masks are its own class's (run.json), whatever --class says: runs/label/
    bicycle given as a source of --class Car was scored as Car without a word (report refuses
    it). Refused now before any source is scored, naming the record and what it holds; the
    run of the class compared scores as its folder does."""
    import shutil

    from annotations.subset import write_subset

    gt_dir, a_dir, *_ = _compare_data(tmp_path)
    run = tmp_path / "runs" / "car"
    shutil.copytree(a_dir, run / "labels" / "test")
    record = {"config": {"cls": {"name": "Car"}}, "class_id": 7}
    record["taxonomy"] = MASS13K.with_new_class("Car").to_dict()
    (run / "run.json").write_text(json.dumps(record))
    args = ["compare", "--class", "Bicycle", "--gt", str(gt_dir), "--no-progress"]
    res = runner.invoke(app, [*args, "--source", f"p={run}/labels/test"], env={"COLUMNS": "300"})
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        f"error: source 'p': {run / 'run.json'} holds Car, not Bicycle: its masks are Car's; "
        "give the Bicycle ones, or --class Car"
    )
    masks = {f"s{i}": read_label(a_dir / f"s{i}.png") for i in range(3)}
    sub = write_subset(tmp_path / "sub", "Car", "test", masks, {})
    with pytest.raises(ValueError, match=r"^source 's': .*subset.json holds Car, not Bicycle"):
        compare(CompareConfig("Bicycle", gt_dir, (("s", sub.root / "masks"),), progress=False))
    with pytest.raises(ValueError, match=r"^--gt: .*run.json holds Car, not Bicycle"):
        compare(CompareConfig("Bicycle", run / "labels" / "test", (("a", a_dir),), progress=False))
    record["config"]["cls"]["name"] = "Bicycle"  # the run of the class compared: scored
    record["taxonomy"] = MASS13K.with_new_class("Bicycle").to_dict()
    (run / "run.json").write_text(json.dumps(record))
    sources = (("p", run / "labels" / "test"),)
    (row,) = compare(CompareConfig("Bicycle", gt_dir, sources, progress=False)).rows
    # 630 true pixels (15 rows x 15, 14, 13 columns), each found, plus 3 columns x 15 rows x 3
    assert row.scores.iou == pytest.approx(100 * 630 / (630 + 135))


def _run_with_folders(tmp: Path) -> tuple[Path, Path, Path]:
    """A label run of Bicycle (run.json, labels/test), a model's predictions written into it
    (RUN/pred, predict.json of Bicycle and Car) and a folder of Car masks: Car (id 8) on 36
    pixels predicted, on 42 in the truth (one column more)."""
    two = MASS13K.with_new_class("Bicycle").with_new_class("Car")
    run, truth = tmp / "runs" / "label" / "bicycle", tmp / "manual_car"
    record = {"config": {"cls": {"name": "Bicycle"}}, "class_id": 7}
    record["taxonomy"] = MASS13K.with_new_class("Bicycle").to_dict()
    car, full = np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8)
    car[2:8, 2:9] = 1
    full[2:8, 2:8], full[10:15, 10:15] = 8, 7
    write_label(truth / "s0.png", car)
    write_label(run / "labels" / "test" / "s0.png", (full == 7).astype(np.uint8))
    write_label(run / "pred" / "s0.png", full)
    (run / "run.json").write_text(json.dumps(record))
    (run / "pred" / "predict.json").write_text(json.dumps({"taxonomy": two.to_dict()}))
    return run, run / "pred", truth


def test_compare_reads_folders_in_a_label_run_that_are_not_its_labels(tmp_path: Path) -> None:
    """Only a run's labels (and a subset's masks) are its class's: predictions written to
    RUN/pred (engine predict --out allows it) and the user's own Car masks kept in RUN/car_manual
    were refused as Bicycle's ("run.json holds Bicycle, not Car"), the run found above them."""
    import shutil

    run, pred, truth = _run_with_folders(tmp_path)
    (row,) = compare(CompareConfig("Car", truth, (("m", pred),), progress=False)).rows
    assert row.scores.iou == pytest.approx(100 * 36 / 42)
    mine = run / "car_manual"
    shutil.copytree(truth, mine)
    (row,) = compare(CompareConfig("Car", mine, (("m", pred),), progress=False)).rows  # as --gt
    assert row.scores.iou == pytest.approx(100 * 36 / 42)
    (row,) = compare(CompareConfig("Car", truth, (("x", mine),), progress=False)).rows
    assert row.scores.iou == 100.0
    with pytest.raises(ValueError, match=r"^source 'l': .*run.json holds Bicycle, not Car"):
        compare(CompareConfig("Car", truth, (("l", run / "labels"),), progress=False))


@pytest.mark.parametrize("inside", ["confidence/test", "confidence", "instances/test"])
@pytest.mark.parametrize("role", ["--gt", "source"])
def test_compare_refuses_a_label_runs_confidence_or_instances(tmp_path, inside, role) -> None:
    """``RUN/confidence/test`` as a source or --gt: its confidence maps (0..255, here a run's 1
    everywhere) were scored as the class's masks (with another --class too, once the class check
    read only a run's labels), RUN/instances as "no prediction PNG files". Refused, naming the
    run's labels, before anything is scored."""
    run, _, truth = _run_with_folders(tmp_path)
    write_label(run / "confidence" / "test" / "s0.png", np.ones((20, 20), np.uint8))
    (run / "instances" / "test").mkdir(parents=True)
    folder = run / inside
    gt, sources = (folder, (("m", truth),)) if role == "--gt" else (truth, (("m", folder),))
    what = "--gt" if role == "--gt" else "source 'm'"
    with pytest.raises(ValueError) as e:
        compare(CompareConfig("Car", gt, sources, progress=False))
    assert str(e.value) == (
        f"{what}: {folder} is in the {inside.split('/')[0]} folder of the label run {run}, not "
        f"masks of a class; give its labels ({run / 'labels'}/<split>)"
    )


def test_predictions_in_a_label_run_are_full_label_maps(tmp_path: Path) -> None:
    """A prediction in RUN/pred holding only Others and Human (0 and 1) was read as a binary
    mask (the run above taken for its record), its Human pixels scored as Bicycle: 100 for a
    model that predicts no bicycle. Its predict.json is nearer: full label maps."""
    run, pred, _ = _run_with_folders(tmp_path)
    bike = (read_label(run / "labels" / "test" / "s0.png") == 1).astype(np.uint8)
    write_label(pred / "s0.png", bike)  # Human (1) where the run's bicycle is
    sources = (("m", pred),)
    rep = compare(CompareConfig("Bicycle", run / "labels" / "test", sources, progress=False))
    assert rep.rows[0].scores.iou == 0.0


def test_compare_scores_the_masks_a_subset_lists(tmp_path: Path, caplog) -> None:
    """A mask put in a subset's masks/ by hand (subset.json does not list it) was scored with
    the rest, silently: 100 pixels of it missed gave IoU 72/172 over 3 images, where report and
    fuse read the 2 listed. Now the listed ones, and the line engine fuse says."""
    import logging

    from annotations.subset import write_subset

    src, square, extra = tmp_path / "src", np.zeros((20, 20), np.uint8), np.zeros((20, 20))
    square[2:8, 2:8], extra[10:20, 10:20] = 1, 1
    for stem in ("s0", "s1", "extra"):
        write_label(
            src / f"{stem}.png", np.zeros((20, 20), np.uint8) if stem == "extra" else square
        )
    sub = write_subset(tmp_path / "sub", "Bicycle", "test", {"s0": square, "s1": square}, {})
    write_label(sub.root / "masks" / "extra.png", extra.astype(np.uint8))
    with caplog.at_level(logging.WARNING, logger="engine.compare"):
        rep = compare(CompareConfig("Bicycle", sub.root, (("p", src),), progress=False))
    assert (rep.images, rep.stems, rep.rows[0].scores.iou) == (2, ["s0", "s1"], 100.0)
    assert caplog.messages[0] == (
        f"{sub.root / 'masks'}: 1 mask that subset.json does not list, which no command reads "
        "(extra): import them to add them"
    )


def test_a_subset_mask_of_other_values_is_refused_with_the_pairs(tmp_path: Path) -> None:
    """A subset mask holding 7 (with a --taxonomy that has Bicycle at 7) was scored as a full
    label map, then refused after the whole source with "mask of 's0': values must be 0, 1 or
    255, found [7]", naming no file. Refused now as engine report refuses it, naming the mask,
    with the other pairs' problems in the one error."""
    from annotations.subset import write_subset
    from engine.parallel import BadItems

    src, square = tmp_path / "src", np.zeros((20, 20), np.uint8)
    square[2:8, 2:8] = 1
    sub = write_subset(tmp_path / "sub", "Bicycle", "test", {"s0": square, "s1": square}, {})
    write_label(src / "s0.png", square)
    (src / "s1.png").write_bytes(b"not a png")
    seven = square.copy()
    seven[0, 0] = 7
    write_label(sub.mask_path("s0"), seven)
    tax = MASS13K.with_new_class("Bicycle").save(tmp_path / "tax.json")
    cfg = CompareConfig("Bicycle", sub.root, (("p", src),), progress=False, taxonomy=tax)
    with pytest.raises(BadItems) as e:
        compare(cfg)
    assert e.value.headline == "2 of 2 pairs cannot be read, so none were scored"
    assert e.value.problems[0] == f"{sub.mask_path('s0')}: values must be 0, 1 or 255, found [7]"
    assert e.value.problems[1].startswith(f"{src / 's1.png'}: ")
