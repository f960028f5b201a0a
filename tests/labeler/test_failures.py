"""A bad image fails alone (issue 11, case 8); a run with nothing left to do loads no model
(case 9)."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from annotations.fileio import read_jsonl
from annotations.labelmap import read_label
from cli import app
from labeler.backends import BACKENDS, BackendOutput, register_backend
from labeler.config import ClassSpec, LabelConfig
from labeler.models import ImageTooThin
from labeler.run import _STOP, ByteQueue, run_labeling

runner = CliRunner()
H, W = 40, 48
BAD = {"trunc": "cannot decode image", "rgb": "not in the taxonomy's palette", "small": "true mask"}


def _dataset(root: Path, good: int = 7) -> Path:
    """``good`` images with a true bicycle, plus a truncated JPEG, an RGB label of colours no
    class has (a colour-coded label of the taxonomy's colours is read through its palette) and a
    truth mask of the wrong size."""
    img_dir, ann_dir = root / "images" / "train", root / "annotations" / "train"
    inst_dir = root / "new_class_instances" / "Bicycle" / "train"
    for d in (img_dir, ann_dir, inst_dir):
        d.mkdir(parents=True)
    stems = [f"good{i}" for i in range(good)] + list(BAD)
    for k, stem in enumerate(stems):
        img = np.full((H, W, 3), 60, np.uint8)
        ids = np.zeros((H, W), np.uint16)
        ids[5 + k % 5 : 25 + k % 5, 6:30] = 1
        img[ids > 0] = (200, 40, 40)
        Image.fromarray(np.zeros((H, W), np.uint8)).save(ann_dir / f"{stem}.png")
        Image.fromarray(ids if stem != "small" else ids[:20]).save(inst_dir / f"{stem}.png")
        if stem == "trunc":
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG")
            (img_dir / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        else:
            Image.fromarray(img).save(img_dir / f"{stem}.png")
    Image.fromarray(np.full((H, W, 3), (1, 2, 3), np.uint8)).save(ann_dir / "rgb.png")
    return root


def _args(data: Path, out: Path) -> list[str]:
    return ["label", "--class", "Bicycle", "--data", str(data), "--out", str(out),
            "--backend", "simulated", "--batch-size", "4", "--no-progress"]  # fmt: skip


def test_case8_bad_images_fail_alone_and_rerun_retries_exactly_them(tmp_path):
    data, out = _dataset(tmp_path / "data"), tmp_path / "run"
    shown = [a for a in _args(data, out) if a != "--no-progress"]  # the bar's last line too
    res = runner.invoke(app, shown)
    assert res.exit_code == 1, res.output
    assert "3 images failed" in " ".join(res.output.split())
    recs = {r["stem"]: r for r in read_jsonl(out / "manifest.jsonl")}
    # the bar counts the ok images' instances (8: the simulated draws) and the failed images
    assert sum(r["instances"] for r in recs.values() if r["status"] == "ok") == 8
    assert "10/10" in res.output and "8 inst, 3 failed" in res.output, res.output
    assert "images in shard │ 10 │" in " ".join(res.output.split())
    assert len(recs) == 10
    for stem, rec in recs.items():
        if stem in BAD:
            assert rec["status"] == "failed" and BAD[stem] in rec["error"], rec
            assert "\n" not in rec["error"]
            assert rec["instances"] == 0 and "height" not in rec, rec  # no instances, no size
        else:  # every good image is labelled, whatever batch it shared with a bad one
            assert rec["status"] == "ok", rec
            assert (read_label(out / "labels" / "train" / f"{stem}.png") == 1).any()
    res = runner.invoke(app, _args(data, out))  # the rerun retries exactly the failures
    assert res.exit_code == 1
    again = read_jsonl(out / "manifest.jsonl")[10:]
    assert sorted(r["stem"] for r in again) == sorted(BAD)


class FlakyBackend:
    """Labels every image, but raises for any batch holding the image ``boom``."""

    name = "flaky-test"
    batches: list[list[str]] = []

    def __init__(self, config, class_id):
        self.class_id = class_id

    def identity(self):
        return {"kind": "flaky"}

    def load(self):
        return {}

    def label(self, batch):
        from annotations.instances import Instances

        FlakyBackend.batches.append([b.stem for b in batch])
        if any(b.stem == "boom" for b in batch):
            raise RuntimeError("CUDA error: device-side assert (simulated)\nsecond line")
        return [BackendOutput(Instances.empty(*b.image.shape[:2])) for b in batch]


def test_model_error_on_one_image_fails_only_that_image(tmp_path):
    d = tmp_path / "data" / "images" / "train"
    d.mkdir(parents=True)
    for stem in ("a", "b", "boom", "c", "d"):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(d / f"{stem}.png")
    register_backend("flaky-test", FlakyBackend)
    FlakyBackend.batches = []
    try:
        cfg = LabelConfig(data=str(tmp_path / "data"), cls=ClassSpec("Bicycle"),
                          out=str(tmp_path / "run"), backend="flaky-test", batch_size=3,
                          progress=False)  # fmt: skip
        s = run_labeling(cfg)
    finally:
        BACKENDS.pop("flaky-test", None)
    assert s.labelled == 4 and [f[1] for f in s.failed] == ["boom"]
    assert s.failed[0][2] == "RuntimeError: CUDA error: device-side assert (simulated)"
    assert FlakyBackend.batches[:4] == [["a", "b", "boom"], ["a"], ["b"], ["boom"]]


@pytest.fixture()
def two_images(tmp_path):
    """``(config, image folder)``: images a and b in split train, labelled by the flaky-test
    backend (registered for the test) into ``tmp_path/run``."""
    d = tmp_path / "data" / "images" / "train"
    d.mkdir(parents=True)
    for stem in ("a", "b"):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(d / f"{stem}.png")
    register_backend("flaky-test", FlakyBackend)
    cfg = LabelConfig(data=str(tmp_path / "data"), cls=ClassSpec("Bicycle"),
                      out=str(tmp_path / "run"), backend="flaky-test", progress=False)  # fmt: skip
    yield cfg, d
    BACKENDS.pop("flaky-test", None)


def test_case9_nothing_left_to_do_loads_no_model(two_images, monkeypatch):
    """After a finished run, the same command loads no model and ends in seconds."""
    cfg, _ = two_images
    assert run_labeling(cfg).labelled == 2
    monkeypatch.setattr(FlakyBackend, "load", lambda self: pytest.fail("model loaded"))
    t = time.perf_counter()
    s = run_labeling(cfg)
    assert (s.skipped, s.labelled) == (2, 0) and time.perf_counter() - t < 2


def test_an_image_replaced_since_labelled_is_labelled_again(two_images, tmp_path, caplog):
    """A photo replaced under the same name (another file size) is labelled again on resume,
    after a warning naming it; a copy of the dataset elsewhere is the same dataset. Before, the
    resume skipped it and kept the old photo's labels."""
    cfg, d = two_images
    assert run_labeling(cfg).labelled == 2
    recs = read_jsonl(tmp_path / "run" / "manifest.jsonl")
    assert {r["stem"]: r["image_bytes"] for r in recs} == {
        s: (d / f"{s}.png").stat().st_size for s in ("a", "b")
    }
    Image.fromarray(np.full((H, W, 3), 99, np.uint8)).save(d / "b.png")  # a new photo
    s = run_labeling(cfg)
    assert (s.skipped, s.labelled) == (1, 1)
    assert "1 image changed since labelled (train/b: another file size)" in caplog.text
    caplog.clear()
    (tmp_path / "data").rename(tmp_path / "moved")  # moved: nothing changed
    moved = dataclasses.replace(cfg, data=str(tmp_path / "moved"))
    assert (run_labeling(moved).skipped, caplog.text) == (2, "")


def test_case9_grounded_sam_resume_touches_no_model(tmp_path, monkeypatch):
    """The Grounded-SAM backend's identity (hashed before deciding there is work) neither loads
    a model nor, on CPU, imports torch's CUDA checks: fast when nothing is left. Patched where
    they are called from: the backend's module binds them when it loads, and autocast_name
    calls its own module's (before, patched on labeler.models, which neither calls, so the
    test passed with an identity that asked torch for the device on CPU)."""
    import labeler.grounded_sam as grounded_sam
    import labeler.models.precision as precision
    from labeler.grounded_sam import GroundedSamBackend

    for module, name in [
        *((grounded_sam, n) for n in ("load_detector", "load_segmenter")),
        *((m, n) for m in (grounded_sam, precision) for n in ("resolve_device", "resolve_dtype")),
    ]:
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("touched a model"))
    cfg = LabelConfig(data="unused", cls=ClassSpec("Bicycle"), device="cpu")
    ident = GroundedSamBackend(cfg, 7).identity()
    assert ident["autocast"] is None
    bf16 = LabelConfig(data="unused", cls=ClassSpec("Bicycle"), device="cuda", precision="bf16")
    assert GroundedSamBackend(bf16, 7).identity()["autocast"] == "bfloat16"  # another hash


def test_byte_queue_bounds_bytes_and_takes_one_oversized_item():
    q = ByteQueue(max_bytes=100)
    assert q.put("a", 60, timeout=0) and not q.put("b", 60, timeout=0)  # 120 > 100: waits
    assert q.get() == "a" and q.put("b", 60, timeout=0)
    assert q.get() == "b" and q.put("huge", 500, timeout=0)  # alone in the queue: accepted
    assert q.peak_bytes == 500 and q.get() == "huge"
    q.close()
    assert q.get() is _STOP and q.bytes == 0


def test_byte_queue_bounds_the_count_too():
    q = ByteQueue(max_bytes=100, max_items=2)
    assert q.put("a", 1, timeout=0) and q.put("b", 1, timeout=0)
    assert not q.put("c", 1, timeout=0)  # 2 bytes of 100, but two items wait already
    assert q.get() == "a" and q.put("c", 1, timeout=0)


def test_a_labeler_faster_than_its_writers_keeps_few_outputs_waiting(tmp_path, monkeypatch):
    """On small images the simulated labeler outruns its writers (three fsyncs an image): with
    the queue bounded in bytes alone every computed image waited, and all were written before a
    Ctrl-C let the run exit (30 s at 13K tiny images; docs/foundation.md). The count bound keeps
    the wait to a few outputs per writer."""
    import labeler.run

    real_write, real_put, waiting = labeler.run.write_outputs, ByteQueue.put, []

    def slow_write(*args):
        time.sleep(0.01)
        return real_write(*args)

    def put(self, *args, **kw):
        ok = real_put(self, *args, **kw)
        waiting.append(len(self.items))
        return ok

    monkeypatch.setattr(labeler.run.writers, "write_outputs", slow_write)
    monkeypatch.setattr(ByteQueue, "put", put)
    monkeypatch.setattr(labeler.run.writers, "QUEUED_PER_WRITER", 3, raising=False)
    data = _dataset(tmp_path / "data", good=30)
    cfg = LabelConfig(data=str(data), cls=ClassSpec("Bicycle"), out=str(tmp_path / "run"),
                      backend="simulated", writers=1, progress=False)  # fmt: skip
    assert run_labeling(cfg).labelled == 30
    assert max(waiting) == 3  # was 25 and more: every image computed while one was written


def test_an_image_whose_outputs_cannot_be_written_fails_alone(tmp_path, monkeypatch):
    """One image's merge or file writing failing (a bug, an unwritable name) is that image's
    failure, recorded with its reason; every other image is labelled and a rerun retries it
    alone. A full disk still stops the run (tests/labeler/test_simulated.py)."""
    import labeler.run

    data, out = _dataset(tmp_path / "data", good=4), tmp_path / "run"
    real = labeler.run.write_outputs

    def fragile(out_dir, split, stem, *args):
        if stem == "good2":
            # EPERM: one file made immutable (chattr +i); EACCES, a folder this user may not
            # write, stops the run (every image after it shares it: test_simulated.py)
            raise PermissionError(
                1, "Operation not permitted", str(out_dir / "labels" / f"{stem}.png")
            )
        if stem == "good3":
            raise ValueError("merge failed\nsecond line")
        return real(out_dir, split, stem, *args)

    monkeypatch.setattr(labeler.run.writers, "write_outputs", fragile)
    cfg = LabelConfig(data=str(data), cls=ClassSpec("Bicycle"), out=str(out),
                      backend="simulated", batch_size=2, progress=False)  # fmt: skip
    s = run_labeling(cfg)
    failed = {stem: why for _, stem, why in s.failed}
    assert failed["good3"] == "ValueError: merge failed"
    assert failed["good2"] == (
        f"PermissionError: {out / 'labels' / 'good2.png'}: Operation not permitted"
    )
    assert s.labelled == 2 and sorted(failed) == sorted([*BAD, "good2", "good3"])
    monkeypatch.setattr(labeler.run.writers, "write_outputs", real)
    again = run_labeling(cfg)
    assert again.labelled == 2 and again.skipped == 2  # the two, and the bad images fail again


def test_engine_info_on_a_label_run_shows_progress_per_split(tmp_path):
    """engine info RUN: the run's class and settings, and per split the images labelled with
    its current settings, with older ones, failed and not labelled yet (a sharded or stopped
    run); exit 1 while images have failed."""
    data, out = _dataset(tmp_path / "data"), tmp_path / "run"
    cfg = LabelConfig(data=str(data), cls=ClassSpec("Bicycle"), out=str(out),
                      backend="simulated", progress=False)  # fmt: skip
    run_labeling(cfg)  # 7 good images labelled, the 3 bad ones failed
    half = dataclasses.replace(cfg, cls=ClassSpec("Bicycle", min_area=5), shard=(0, 2))
    run_labeling(half)  # every other image with other settings: run.json now records these
    res = runner.invoke(app, ["info", str(out)])
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "Bicycle (id 7, carved out of Others)" in text and "backend │ simulated" in text
    # shard 0 of the 10 sorted stems: good0 good2 good4 good6 small (which fails again)
    from engine.info import label_run_stats

    stats = label_run_stats(out)
    row = stats.splits["train"]
    assert (row.labelled, row.stale, row.failed, row.pending) == (4, 3, 3, 0)
    assert "│ train │ 4 │ 3 │ 3 │ 0 │" in text
    assert "3 images failed: train/rgb:" in text
    assert "3 images failed; run the same command again to retry exactly those" in text
    assert "3 images labelled with other settings" in text
    (data / "images" / "train" / "late.png").write_bytes(
        (data / "images/train/good0.png").read_bytes()
    )
    assert label_run_stats(out).splits["train"].pending == 1
    res = runner.invoke(app, ["info", str(out), "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 2 and "is a label run" in res.output


class ThinBackend(FlakyBackend):
    """Refuses the image ``det`` in its loader-thread ``prepare`` and ``seg`` in its batch, as
    Grounded-SAM refuses an image too thin for the detector's or the segmenter's resize."""

    name = "thin-test"

    def prepare(self, item):
        if item.stem == "det":
            raise ImageTooThin(f"{item.path} is 1x3000 px (HxW), too thin to label: detector")

    def label(self, batch):
        for b in batch:
            if b.stem == "seg":
                raise ImageTooThin(f"{b.path} is 1x3000 px (HxW), too thin to label: segmenter")
        return super().label(batch)


def test_images_too_thin_are_told_by_their_error_not_by_the_words_in_it(tmp_path, capsys):
    """A failure that fails on every run (:class:`ImageTooThin`) is recorded so where it is
    caught: ``retry`` false in its manifest record, one message form whether the detector (in
    a loader thread) or the segmenter (in the batch) refused it. Before, the closing lines
    matched the words "too thin to label" in the message: an unreadable image whose path held
    them was offered no retry, and the segmenter's refusal read "ImageTooThin: ..."."""
    from labeler.cli_support import print_label_summary

    d = tmp_path / "data" / "images" / "train"
    d.mkdir(parents=True)
    for stem in ("a", "det", "seg"):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(d / f"{stem}.png")
    bad = d / "too thin to label.png"
    bad.write_bytes(b"not an image")
    register_backend("thin-test", ThinBackend)
    try:
        cfg = LabelConfig(data=str(tmp_path / "data"), cls=ClassSpec("Bicycle"),
                          out=str(tmp_path / "run"), backend="thin-test", progress=False)  # fmt: skip
        s = run_labeling(cfg)
    finally:
        BACKENDS.pop("thin-test", None)
    print_label_summary(s)
    err = " ".join(capsys.readouterr().err.split())
    assert err.endswith(
        "1 image failed; run the same command again to retry exactly those 2 images cannot be "
        "labelled by this backend (too thin to label: a model would resize them to 0 px across); "
        "running again fails them again"
    ), err
    recs = {r["stem"]: r for r in read_jsonl(tmp_path / "run" / "manifest.jsonl")}
    failed = {k: (r["error"], r["retry"]) for k, r in recs.items() if r["status"] == "failed"}
    assert failed == {
        "det": (f"{d / 'det.png'} is 1x3000 px (HxW), too thin to label: detector", False),
        "seg": (f"{d / 'seg.png'} is 1x3000 px (HxW), too thin to label: segmenter", False),
        "too thin to label": (
            f"{bad}: cannot decode image (cannot identify image file '{bad}')",
            True,
        ),
    }
    assert (s.labelled, len(s.failed), s.not_retryable) == (1, 3, 2)
