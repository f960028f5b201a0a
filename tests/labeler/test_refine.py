"""Crop-zoom refinement: crop rule, replacement rule, batching across instances and images, and
``--refine`` end to end on the SAM 3 backend and on any other backend."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from annotations.fileio import read_jsonl
from annotations.instances import Instances, read_instances
from cli import app
from labeler.backends import BackendOutput, LoadedImage
from labeler.config import ClassSpec, LabelConfig
from labeler.models import load_segmenter
from labeler.refine import MIN_CROP, RefinedBackend, Refiner, crop_window, with_refinement
from tests.labeler.test_sam3 import label_args, write_dataset

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from labeler.testing import save_tiny_segmenter
    from labeler.testing_sam3 import save_tiny_sam3

    root = tmp_path_factory.mktemp("refine_models")
    return {
        "sam3": save_tiny_sam3(root / "sam3"),
        **{k: save_tiny_segmenter(root / k, k) for k in ("sam", "sam_hq", "sam2", "sam2_video")},
    }


@pytest.mark.parametrize(
    "box, hw, expect",
    [
        ((100, 100, 140, 120), (1000, 1000), (90, 80, 150, 140)),  # 40 px box: side 60, centred
        ((0, 0, 10, 10), (1000, 1000), (0, 0, MIN_CROP, MIN_CROP)),  # tiny box, at the corner
        ((950, 500, 1000, 540), (1000, 1000), (925, 482, 1000, 557)),  # side 75, shifted inside
        ((0, 0, 300, 100), (200, 1000), (0, 0, 450, 200)),  # taller than the image: clipped
    ],
)
def test_crop_window(box, hw, expect):
    assert crop_window(np.array(box, np.float32), *hw) == expect


def _instances(h: int, w: int, boxes: list[tuple[int, int, int, int]]) -> Instances:
    masks = np.zeros((len(boxes), h, w), bool)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        masks[k, y0:y1, x0:x1] = True
    n = len(boxes)
    return Instances(
        np.array(boxes, np.float32).reshape(-1, 4),
        masks,
        np.full(n, 0.8),
        np.full(n, 0.5),
        np.full(n, 7),
        ["bicycle"] * n,
    )


class FakeSegmenter:
    """Stands in for Refiner.segment_crops: a disk in the middle of each crop, or nothing."""

    def __init__(self, empty_from: int = 10**9) -> None:
        self.crops: list[tuple[int, int]] = []
        self.empty_from = empty_from

    def __call__(self, crops, boxes):
        out = []
        for c in crops:
            h, w = c.shape[:2]
            yy, xx = np.mgrid[:h, :w]
            disk = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 4) ** 2).astype(np.float32)
            if len(self.crops) >= self.empty_from:
                disk[:] = 0
            self.crops.append((h, w))
            out.append((disk, 0.77))
        return out


def test_refined_mask_replaces_the_coarse_one_inside_the_crop():
    img = np.zeros((200, 300, 3), np.uint8)
    boxes = [(50, 50, 110, 90), (200, 100, 240, 180), (0, 0, 300, 200)]
    coarse = _instances(200, 300, boxes)
    refiner = Refiner(segmenter=None, device="cpu")  # type: ignore[arg-type]
    fake = FakeSegmenter(empty_from=1)  # only the first crop gets a mask
    refiner.segment_crops = fake
    (out,) = refiner.refine([img], [BackendOutput(coarse, None, {"detect": 1.0})])
    inst = out.instances.to_instances()
    assert inst.refined.tolist() == [True, False, False]  # empty refinement: coarse kept
    x0, y0, x1, y1 = crop_window(np.array(boxes[0], np.float32), 200, 300)
    assert fake.crops[0] == (y1 - y0, x1 - x0)
    inside = np.zeros((200, 300), bool)
    inside[y0:y1, x0:x1] = True
    assert inst.masks[0][inside].sum() < coarse.masks[0][inside].sum()  # disk, not the box
    assert np.array_equal(inst.masks[0][~inside], coarse.masks[0][~inside])
    assert np.array_equal(inst.masks[1:], coarse.masks[1:])
    assert inst.mask_scores.tolist() == pytest.approx([0.77, 0.5, 0.5])
    assert out.timings == {"detect": 1.0}
    # masks and probabilities stay in their windows: the refined one grew to its crop only
    m0, p0 = out.instances.masks[0], out.instances.probs[0]
    assert (m0.y0, m0.x0, m0.y1, m0.x1) == (min(y0, 50), min(x0, 50), max(y1, 90), max(x1, 110))
    assert p0.shape == m0.mask.shape and p0.dtype == np.float16


def test_a_refinement_that_disagrees_keeps_the_coarse_mask():
    img = np.zeros((100, 100, 3), np.uint8)
    coarse = _instances(100, 100, [(10, 10, 20, 20)])  # the disk lands in the crop centre ...
    coarse.masks[0] = False
    coarse.masks[0, 0:3, 0:3] = True  # ... but the coarse mask sits in the corner: IoU 0
    refiner = Refiner(segmenter=None, device="cpu")  # type: ignore[arg-type]
    refiner.segment_crops = FakeSegmenter()
    (out,) = refiner.refine([img], [BackendOutput(coarse, None)])
    assert out.instances.refined.tolist() == [False]
    assert np.array_equal(out.instances.to_instances().masks, coarse.masks)


@pytest.mark.parametrize("kind", ["sam", "sam_hq", "sam2", "sam2_video"])
def test_crops_batched_across_instances_and_images(models, kind, monkeypatch):
    seg = load_segmenter(str(models[kind]))
    calls = []
    encode = seg.model.get_image_embeddings

    def counted(pixels, *a, **k):
        calls.append(pixels.shape[0])
        return encode(pixels, *a, **k)

    monkeypatch.setattr(seg.model, "get_image_embeddings", counted)
    refiner = Refiner(seg, "cpu", chunk=3)
    rng = np.random.default_rng(0)
    imgs = [
        rng.integers(0, 255, (70, 96, 3), np.uint8),
        rng.integers(0, 255, (50, 40, 3), np.uint8),
    ]
    outs = [
        BackendOutput(_instances(70, 96, [(5, 5, 30, 30), (40, 10, 90, 60), (0, 0, 96, 70)]), None),
        BackendOutput(Instances.empty(50, 40)),
        BackendOutput(_instances(70, 96, [(10, 10, 20, 40)]), None),
    ]
    imgs = [imgs[0], imgs[1], imgs[0]]
    import labeler.refine as refine_mod

    seen = []  # encoder calls made when each instance's mask is replaced
    replace = refine_mod._replace

    def recording(*a):
        seen.append(len(calls))
        return replace(*a)

    monkeypatch.setattr(refine_mod, "_replace", recording)
    new = refiner.refine(imgs, outs)
    assert calls == [3, 1]  # 4 instances of 2 images: chunks of 3 crops, not one per instance
    assert seen == [1, 1, 1, 2]  # a chunk's masks are used before the next chunk runs
    assert [len(o.instances) for o in new] == [3, 0, 1]
    assert new[1].instances.refined.shape == (0,)
    for o in (new[0], new[2]):
        inst = o.instances
        assert inst.refined is not None and all(p.dtype == np.float16 for p in inst.probs)
        assert all(p.shape == m.mask.shape for p, m in zip(inst.probs, inst.masks, strict=True))


def test_cli_sam3_with_refine_records_which_mask_was_kept(models, tmp_path):
    data = write_dataset(tmp_path / "data", {"train": 2})
    out = tmp_path / "run"
    args = label_args(data, out, models["sam3"], "--refine", str(models["sam"]))
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["backend"]["name"] == "sam3"
    assert run["backend"]["identity"]["refine"] == str(models["sam"])
    assert run["backend"]["models"]["refine"]["class"] == "SamModel"
    for rec in read_jsonl(out / "manifest.jsonl"):
        assert rec["status"] == "ok" and "refine" in rec["timings"]
        data_ = json.loads((out / "instances" / "train" / f"{rec['stem']}.json").read_text())
        assert data_["instances"] and all("refined" in it for it in data_["instances"])
        inst, _ = read_instances(out / "instances" / "train" / f"{rec['stem']}.json")
        assert inst.refined is not None
    # resume: nothing to do; without --refine the hash differs, so everything is relabelled
    assert runner.invoke(app, args).exit_code == 0
    assert len(read_jsonl(out / "manifest.jsonl")) == 2
    plain = label_args(data, out, models["sam3"])
    assert runner.invoke(app, plain).exit_code == 0
    assert len(read_jsonl(out / "manifest.jsonl")) == 4


class BoxBackend:
    """Any backend: one square instance per image (the refiner does not care who made it)."""

    name = "boxes"

    def identity(self) -> dict:
        return {"boxes": 1}

    def load(self) -> dict:
        return {"loaded": True}

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        return [BackendOutput(_instances(*b.image.shape[:2], [(8, 5, 40, 25)])) for b in batch]


def test_refinement_wraps_any_backend(models, tmp_path):
    from labeler.run import run_labeling

    data = write_dataset(tmp_path / "data", {"train": 2})
    cfg = LabelConfig(
        data=str(data),
        cls=ClassSpec("Bicycle"),
        out=str(tmp_path / "run"),
        refine=str(models["sam2"]),
        device="cpu",
        progress=False,
    )
    wrapped = with_refinement(BoxBackend(), cfg)
    assert isinstance(wrapped, RefinedBackend) and with_refinement(wrapped, cfg) is wrapped
    assert wrapped.identity()["boxes"] == 1 and "refine_rules" in wrapped.identity()
    summary = run_labeling(cfg, backend=BoxBackend())
    assert summary.labelled == 2 and not summary.failed
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["backend"]["name"] == "boxes" and run["backend"]["models"]["loaded"]
    assert run["backend"]["models"]["refine"]["model_type"] == "sam2"
    assert "cpu_capability" in run["environment"]  # refined with torch: its facts recorded


def test_cli_grounded_sam_with_refine(models, tmp_path):
    from labeler.testing import save_tiny_detector

    det = save_tiny_detector(tmp_path / "det")
    data = write_dataset(tmp_path / "data", {"train": 2})
    out = tmp_path / "run"
    args = [
        "label", "--class", "Bicycle", "--data", str(data), "--out", str(out),
        "--detector", str(det), "--segmenter", str(models["sam"]), "--refine", str(models["sam_hq"]),
        "--prompt", "bicycle", "--box-threshold", "0.05", "--text-threshold", "0.05",
        "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["backend"]["name"] == "grounded-sam"
    assert run["backend"]["models"]["refine"]["class"] == "SamHQModel"
    found = 0
    for rec in read_jsonl(out / "manifest.jsonl"):
        inst, _ = read_instances(out / "instances" / "train" / f"{rec['stem']}.json")
        assert rec["status"] == "ok" and "refine" in rec["timings"]
        assert len(inst) == 0 or inst.refined is not None
        found += len(inst)
    assert found > 0


class BigBoxBackend(BoxBackend):
    """One instance per image covering its top-left 40x50 px: a 75x75 px crop where the image
    allows (clipped to a smaller image)."""

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        return [BackendOutput(_instances(*b.image.shape[:2], [(0, 0, 50, 40)])) for b in batch]


def test_a_crop_larger_than_the_pad_of_a_refiner_that_does_not_resize_is_not_retried(
    models, tmp_path, capsys
):
    """A --refine SAM whose processor does not resize (do_resize false) pads every crop to its
    pad size (64x64 px for the tiny SAM): an image whose instance's crop is larger fails on
    every run, as engine label's segmenter over its pad does. It fails alone with one line
    naming it, the crop's size and the pad size, recorded with retry false and its own cannot,
    and neither the closing line nor engine info offers a retry; before, transformers'
    "Padding dimensions are negative", recorded as retryable, failed again on every retry."""
    from PIL import Image

    from engine.info import label_run_stats, render_label_run
    from labeler.cli_support import print_label_summary
    from labeler.run import run_labeling
    from labeler.testing import copy_without_resize

    sam = copy_without_resize(models["sam"], tmp_path / "sam")
    d = tmp_path / "data" / "images" / "train"
    d.mkdir(parents=True)
    for h, w in ((60, 60), (96, 120)):  # crops 60x60 (clipped to the image) and 75x75
        Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(d / f"i{h}x{w}.png")
    out = tmp_path / "run"
    cfg = LabelConfig(
        data=str(tmp_path / "data"), cls=ClassSpec("Bicycle"), out=str(out), refine=str(sam),
        device="cpu", progress=False, batch_size=2,
    )  # fmt: skip
    summary = run_labeling(cfg, backend=BigBoxBackend())
    assert summary.labelled == 1 and summary.not_retryable == 1
    assert summary.cannot == {"refine_over_pad": 1}
    recs = {r["stem"]: r for r in read_jsonl(out / "manifest.jsonl")}
    assert recs["i60x60"]["status"] == "ok"
    big = recs["i96x120"]
    assert (big["status"], big["retry"], big["cannot"]) == ("failed", False, "refine_over_pad")
    assert big["error"] == (
        f"{d / 'i96x120'}.png: the crop of instance 0 is 75x75 px (HxW), larger than the pad "
        "size: the --refine segmenter's processor pads every crop to 64x64 px and does not "
        "resize (do_resize false); it reads a crop at most 64x64 px"
    )
    closing = (
        "1 image cannot be labelled by this backend (an instance's crop larger than the pad "
        "size of a --refine segmenter whose processor does not resize: do_resize false); "
        "running again fails it again"
    )
    said = render_label_run(label_run_stats(out))
    assert said[-1].endswith(closing) and "retry" not in said[-1], said
    print_label_summary(summary)  # engine label's closing lines
    err = " ".join(capsys.readouterr().err.split())
    assert err.endswith(closing) and "retry" not in err and "Padding" not in err, err


class WideBoxBackend(BoxBackend):
    """One instance per image spanning its whole width (a backend that resizes every image to
    one size, SAM 3, labels an image 1 px tall)."""

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        return [
            BackendOutput(_instances(*b.image.shape[:2], [(0, 0, b.image.shape[1], 1)]))
            for b in batch
        ]


def test_a_crop_too_thin_for_the_refiner_is_not_retried(models, tmp_path):
    """An instance's crop that the --refine segmenter's processor resizes to 0 px across (a 1x200
    crop at the tiny SAM's longest_edge 64: 0x64) fails on every run: refused with one line
    naming the image and the crop, retry false, cannot too_thin; before, transformers' "Size
    must contain 'height' and 'width' keys", recorded as retryable."""
    from PIL import Image

    from labeler.run import run_labeling

    d = tmp_path / "data" / "images" / "train"
    d.mkdir(parents=True)
    for h, w in ((1, 200), (40, 48)):
        Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(d / f"i{h}x{w}.png")
    out = tmp_path / "run"
    cfg = LabelConfig(
        data=str(tmp_path / "data"), cls=ClassSpec("Bicycle"), out=str(out),
        refine=str(models["sam"]), device="cpu", progress=False,
    )  # fmt: skip
    summary = run_labeling(cfg, backend=WideBoxBackend())
    assert summary.labelled == 1 and summary.cannot == {"too_thin": 1}
    thin = {r["stem"]: r for r in read_jsonl(out / "manifest.jsonl")}["i1x200"]
    assert (thin["status"], thin["retry"], thin["cannot"]) == ("failed", False, "too_thin")
    assert thin["error"] == (
        f"{d / 'i1x200'}.png: the crop of instance 0 is 1x200 px (HxW), too thin to label: the "
        "--refine segmenter's processor (longest_edge 64) resizes it to 0x64 px; it reads an "
        "image whose long side is at most 128 times its short side"
    )


def test_a_crop_is_checked_against_the_pad_at_its_own_size_off_the_images_corner():
    """The refusals read each crop's own height and width, off the image's corner: a 32x32 crop
    at x 149..181 of the top rows fits a 64x64 pad (its width read as x1 - y0, 181, would refuse
    it), and a 75x75 one at (88, 78) is refused naming 75x75 px."""
    from transformers import SamImageProcessor, SamProcessor

    from labeler.models import CropOverPad

    proc = SamProcessor(SamImageProcessor(do_resize=False, pad_size={"height": 64, "width": 64}))
    segmenter = SimpleNamespace(processor=proc)
    refiner = Refiner(segmenter=segmenter, device="cpu")  # type: ignore[arg-type]
    refiner.segment_crops = FakeSegmenter()
    img = np.zeros((200, 200, 3), np.uint8)
    small = _instances(200, 200, [(160, 5, 170, 15)])
    assert crop_window(small.xyxy[0], 200, 200) == (149, 0, 181, 32)
    (out,) = refiner.refine([img], [BackendOutput(small, None)], ["a.png"])
    assert out.instances.refined.tolist() == [True]
    big = _instances(200, 200, [(100, 90, 150, 140)])
    assert crop_window(big.xyxy[0], 200, 200) == (88, 78, 163, 153)
    with pytest.raises(CropOverPad, match=r"^a.png: the crop of instance 0 is 75x75 px \(HxW\)"):
        refiner.refine([img], [BackendOutput(big, None)], ["a.png"])


def test_refined_backend_label_before_load_is_a_runtime_error():
    cfg = LabelConfig(data="unused", cls=ClassSpec("Bicycle"), refine="sam")
    with pytest.raises(RuntimeError, match=r"RefinedBackend.label called before load\(\)"):
        RefinedBackend(BoxBackend(), cfg).label([])


class TwinBackend(BoxBackend):
    """Two instances the dedup keeps apart (the left and the right half of one box: IoU 0) and a
    third of 1,600 px, as a backend's dedup would hand them on, best prompt score first."""

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        out = []
        for b in batch:
            inst = _instances(*b.image.shape[:2], [(50, 50, 80, 110), (80, 50, 110, 110)])
            inst.xyxy[:] = (50, 50, 110, 110)  # one box: one crop, one refined disk
            third = _instances(*b.image.shape[:2], [(200, 100, 240, 140)])
            out.append(BackendOutput(Instances.merge([inst, third])))
        return out


def test_refined_masks_are_deduplicated_again_and_held_to_min_area(tmp_path):
    """``--refine`` turned both halves of one box into the same disk and the 1,600 px square into
    a 700 px disk: the instances file held two duplicates and a mask under ``--min-area 1000``,
    against step 5's rules that docs/labeler.md says every file holds. Now the refined masks go
    through the same dedup again, in the backend's order (the first of two duplicates kept)."""
    cfg = LabelConfig(data="d", cls=ClassSpec("Bicycle", min_area=1000), refine="r", device="cpu")
    backend = RefinedBackend(TwinBackend(), cfg)
    backend.refiner = Refiner(segmenter=None, device="cpu")  # type: ignore[arg-type]
    backend.refiner.segment_crops = FakeSegmenter()
    img = np.zeros((200, 300, 3), np.uint8)
    (out,) = backend.label([LoadedImage("train", "a", Path("a.png"), img)])
    inst = out.instances
    assert len(inst) == 1 and inst.refined.tolist() == [True]
    assert inst.masks[0].mask.any() and inst.areas.tolist()[0] >= 1000
    assert inst.xyxy.tolist() == [[50, 50, 110, 110]] and "refine" in out.timings
    # without --min-area: the small disk stays, the duplicate goes
    backend.config = LabelConfig(data="d", cls=ClassSpec("Bicycle"), refine="r", device="cpu")
    (out,) = backend.label([LoadedImage("train", "a", Path("a.png"), img)])
    assert len(out.instances) == 2 and out.instances.xyxy[1].tolist() == [200, 100, 240, 140]
