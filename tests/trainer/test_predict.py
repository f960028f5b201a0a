"""engine predict's checks of its output folder without a model (trainer/predict/): which
folder a run may add to, which files an --overwrite replaces. The runs themselves:
tests/trainer/test_inference.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.predict import PredictConfig, check_same_split, replaced_files


def _maps(out: Path, *names: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"png")
    return out


def _record(data: str | None = None, split: str | None = None, images: str | None = None):  # noqa: ANN202
    return {"config": {"data": data, "split": split, "images": images}}


def test_a_folder_of_one_split_refuses_another_split_of_data_only(tmp_path) -> None:
    out = _maps(tmp_path / "pred", "a.png")
    val = PredictConfig("m.pt", None, str(out), data="D", split="val")
    with pytest.raises(ValueError) as e:
        check_same_split(_record("D", "test"), val, out)
    assert str(e.value) == (
        f"{out / 'predict.json'}: the 1 label map here is of split 'test' of D, not 'val': a "
        "folder holds one split's predictions; give split 'val' its own --out (or --split test "
        "to resume this one)"
    )
    check_same_split(_record("D", "val"), val, out)  # the same split: a resume
    check_same_split(None, val, out)  # no record
    check_same_split(_record("D", None), val, out)  # a record naming no split
    check_same_split(_record(None, None, "imgs"), val, out)  # maps of a folder of images
    check_same_split(_record("D", "test"), val, _maps(tmp_path / "empty"))  # no map to mix
    # --images into a folder of a split's maps: no split to hold (the settings decide)
    images = PredictConfig("m.pt", "imgs", str(out), data=None, split="test")
    check_same_split(_record("D", "val"), images, out)


def test_overwrite_replaces_the_maps_of_the_images_it_labels_and_refuses_others(tmp_path):
    out = _maps(tmp_path / "pred", "a.png", "b.png", "color/a.png")
    images = [tmp_path / "i" / "a.jpg", tmp_path / "i" / "b.jpg"]
    got = replaced_files(out, images, ["size original, not 64x48"])
    assert sorted(p.relative_to(out).as_posix() for p in got) == ["a.png", "b.png", "color/a.png"]
    _maps(out, "color/c.png")
    with pytest.raises(ValueError) as e:
        replaced_files(out, images[:1], ["size original, not 64x48"])
    assert str(e.value) == (
        f"{out / 'predict.json'}: the label maps here were made with other settings (size "
        "original, not 64x48), and 2 files (b.png, color/c.png) are of images this run does not "
        "label, which --overwrite would leave beside its own under its record: give a new --out, "
        "or delete the folder (or those files) first"
    )


def test_the_files_left_out_are_the_visible_files_that_are_not_images(tmp_path) -> None:
    from trainer.predict import list_images

    folder = _maps(tmp_path / "i", "a.png", "b.JPG", "notes.txt", "c.tif", "._a.jpg", ".DS_Store")
    (folder / "sub").mkdir()
    files, others = list_images(folder)
    assert [p.name for p in files] == ["a.png", "b.JPG"]
    assert [p.name for p in others] == ["c.tif", "notes.txt"]  # no folder, no hidden file
    assert list_images(folder / "a.png") == ([folder / "a.png"], [])


def test_the_checkpoints_difference_is_named_first_and_a_record_without_cwd_is_read_here():
    """The checkpoint (its step, its weights) leads the list of differences; a record of a
    relative checkpoint path that names no working directory (an older engine's) is read from
    this one."""
    import json
    from dataclasses import asdict

    from trainer.predict import differences

    cfg = PredictConfig("m.pt", "imgs", "out", size=(64, 48))
    same = json.loads(json.dumps(asdict(cfg)))  # as predict.json holds it
    old = {**same, "size": None}
    meta = {"config": old, "checkpoint_step": 5, "weights_sha256": "a"}
    assert differences(meta, cfg, 5, "b") == [
        "checkpoint weights a, not b: the same file and step, trained again",
        "size original, not 64x48",
    ]
    assert differences(meta, cfg, 4, "a") == [
        "checkpoint step 5, not 4",
        "size original, not 64x48",
    ]
    assert differences({"config": same, "checkpoint_step": 5}, cfg, 5, "b") == []


def test_only_a_labelled_image_of_another_size_than_recorded_is_predicted_again(tmp_path):
    from trainer.predict import changed_images

    out = _maps(tmp_path / "pred", "a.png", "b.png", "color/b.png", "e.png")
    meta = {"image_bytes": {"a": 10, "b": 20, "c": 30, "e": 5}}
    # a: the same size; b: another; c: another, but no map; d: not recorded; e: unreadable now
    sizes = {"a": 10, "b": 21, "c": 31, "d": 5, "e": None}
    assert changed_images(meta, out, sizes) == [out / "b.png", out / "color" / "b.png"]
    assert changed_images(None, out, sizes) == []  # an older engine's folder: trusted


def test_a_resume_keeps_what_the_earlier_call_warned_about_and_overwrite_does_not(tmp_path):
    import json
    from dataclasses import replace

    from PIL import Image

    from annotations.taxonomy import MASS13K
    from tests.model_helpers import save_model
    from trainer.models import create_model
    from trainer.predict import predict_dir

    ckpt = save_model(tmp_path / "m.pt", create_model("tiny", len(MASS13K)), MASS13K, step=1)
    images = _maps(tmp_path / "images", "notes.txt")
    Image.new("RGB", (48, 40)).save(images / "a.png")
    out = tmp_path / "pred"
    cfg = PredictConfig(str(ckpt), str(images), str(out), (64, 48), progress=False)

    def record() -> dict:
        return json.loads((out / "predict.json").read_text())

    predict_dir(cfg)
    said = [f"left out 1 file of {images} that is not .jpg/.jpeg/.png: notes.txt"]
    assert record()["warnings"] == said
    (images / "notes.txt").unlink()
    Image.new("RGB", (48, 40)).save(images / "b.png")
    predict_dir(cfg)  # a resume: a's map stays, and what its call said
    assert not (out / "color").exists()  # no previews asked for, none made of a's map
    assert "warnings" not in record()
    assert [c["warnings"] for c in record()["earlier_warnings"]] == [said]
    predict_dir(replace(cfg, overwrite=True))  # every map made again: nothing earlier stays
    assert "earlier_warnings" not in record()


def test_no_images_and_no_data_is_one_line_saying_how_to_give_them(tmp_path) -> None:
    from trainer.predict import predict_dir

    with pytest.raises(ValueError) as e:
        predict_dir(PredictConfig("m.pt", None, str(tmp_path / "out")))
    assert str(e.value) == (
        "give the images to label as --images FOLDER, or as --data ROOT with --split SPLIT"
    )
    assert not (tmp_path / "out").exists()
