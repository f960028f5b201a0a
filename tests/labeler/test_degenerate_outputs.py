"""Degenerate model outputs, as real checkpoints give them on real photos now and then (an fp16
decoder overflowing to inf, a NaN box or quality score): each image still gets valid label,
confidence and instance files, or fails alone with a reason that says what was wrong.

The tiny random models of :mod:`labeler.testing` and :mod:`labeler.testing_sam3` run for real;
their outputs are overwritten after the forward pass (``Overwritten``) to force each case.
(No detection at all, more boxes than ``--max-boxes``, tiny images: ``test_run.py``,
``test_sam3.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from annotations.instances import read_instances
from annotations.labelmap import read_label
from labeler.backends import BACKENDS, BackendOutput, LoadedImage, register_backend
from labeler.config import ClassSpec, LabelConfig
from labeler.crops import CroppedInstances
from labeler.dedup import MaskCrop
from labeler.models import load_segmenter
from labeler.refine import Refiner
from labeler.run import run_labeling, write_outputs
from labeler.sam_post import LOGIT_FLOOR, masks_in_windows

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from labeler.testing import save_tiny_detector, save_tiny_segmenter
    from labeler.testing_sam3 import save_tiny_sam3

    root = tmp_path_factory.mktemp("degenerate_models")
    return {
        "det": save_tiny_detector(root / "det"),
        "sam": save_tiny_segmenter(root / "sam", "sam"),
        "sam3": save_tiny_sam3(root / "sam3"),
    }


class Overwritten:
    """A model whose forward output is passed through ``fix`` (every other attribute is the
    model's own: ``get_image_embeddings``, ``config``, ...)."""

    def __init__(self, model, fix) -> None:
        self.model, self.fix = model, fix

    def __call__(self, *a, **k):
        return self.fix(self.model(*a, **k))

    def __getattr__(self, name):
        return getattr(self.model, name)


def overwrite(**values):
    """``fix`` that sets each named output tensor to a value (or applies a function to a copy)."""

    def fix(out):
        for name, v in values.items():
            t = getattr(out, name).clone()
            if callable(v):
                v(t)
            else:
                t[:] = v
            setattr(out, name, t)
        return out

    return fix


def _image(h: int = 40, w: int = 48) -> LoadedImage:
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return LoadedImage("train", "x", Path("x.png"), img)


def _written(out: Path, result: BackendOutput, stem: str = "x"):
    """Write one output as the runner does and read the three files back (strict JSON)."""
    write_outputs(out, "train", stem, result, (0.15, 0.25), {"class_id": 7})
    text = (out / "instances" / "train" / f"{stem}.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the instances file"))
    label = read_label(out / "labels" / "train" / f"{stem}.png")
    conf = read_label(out / "confidence" / "train" / f"{stem}.png")
    inst, _ = read_instances(out / "instances" / "train" / f"{stem}.json")
    return label, conf, inst


# -- SAM's logits ----------------------------------------------------------------------------------
def test_infinite_and_nan_logits_resample_to_finite_masks():
    """+inf is certain, -inf and NaN are no object. Bilinear weights of 0 made ``inf * 0 = NaN``
    pixels: an all-inf mask had holes, and NaN probabilities reached the confidence map."""
    low = torch.full((4, 16, 16), -20.0)
    low[0] = INF  # an fp16 decoder that overflowed: the whole image
    low[1] = NAN  # nothing usable
    low[2, 4:12, 4:12] = 6.0
    low[2, 8, 8] = NAN  # one NaN inside an object
    low[3, 4:12, 4:12] = INF  # an object whose logits overflowed
    out = masks_in_windows(low, (40, 48), (40, 48), (48, 48))
    (m0, p0), (m1, p1), (m2, p2), (m3, p3) = out
    assert m0.mask.shape == (40, 48) and m0.mask.all() and (p0 == 1).all()
    assert m1.mask.size == 0 and p1.size == 0
    for m, p in ((m2, p2), (m3, p3)):
        assert np.isfinite(p).all() and m.area > 0 and np.all(p[m.mask] > 0.5)
    assert m3.area >= m2.area  # no hole where the object was certain


# -- Grounded-SAM ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grounded_sam(models):
    from labeler.grounded_sam import GroundedSamBackend

    spec = ClassSpec(
        "Bicycle", prompts=("bicycle", "bike"), negatives=("motorcycle",),
        box_threshold=0.05, text_threshold=0.05,
    )  # fmt: skip
    cfg = LabelConfig(
        data="unused", cls=spec, detector=str(models["det"]), segmenter=str(models["sam"]),
        device="cpu", progress=False, tiles=(2, 2),
    )  # fmt: skip
    backend = GroundedSamBackend(cfg, class_id=7)
    backend.load()
    return backend


def _label(backend, det_fix=None, sam_fix=None, image=None) -> BackendOutput:
    det, sam = backend.detector.model, backend.segmenter.model
    backend.detector.model = Overwritten(det, det_fix or (lambda o: o))
    backend.segmenter.model = Overwritten(sam, sam_fix or (lambda o: o))
    try:
        item = image or _image()
        backend.prepare(item)
        return backend.label([item])[0]
    finally:
        backend.detector.model, backend.segmenter.model = det, sam


def test_grounded_sam_nan_quality_score_is_written_as_0(grounded_sam, tmp_path):
    """SAM's IoU head gave NaN: ``clamp(0, 1)`` kept it and the image failed with 'Out of range
    float values are not JSON compliant'."""
    res = _label(grounded_sam, sam_fix=overwrite(iou_scores=NAN, pred_masks=5.0))
    assert len(res.instances) == 1  # every box's mask is the whole image: one instance
    label, conf, inst = _written(tmp_path, res)
    assert inst.mask_scores.tolist() == [0.0] and (label == 1).all()
    assert (conf == round(255 * float(inst.scores[0]) / (1 + np.exp(-5.0)))).all()


def test_grounded_sam_overflowed_masks_cover_the_image(grounded_sam, tmp_path):
    """+inf logits (fp16 overflow) are a certain mask over the whole image, with no NaN holes."""
    res = _label(grounded_sam, sam_fix=overwrite(pred_masks=INF))
    label, conf, inst = _written(tmp_path, res)
    assert len(inst) == 1 and (label == 1).all() and inst.masks.all()


@pytest.mark.parametrize(
    "det, expect",
    [
        ({"logits": NAN}, 0),  # NaN scores: no box passes any threshold
        ({"logits": -INF}, 0),
        ({"logits": 5.0, "pred_boxes": NAN}, 0),  # NaN boxes: SAM gives NaN, read as no mask
        ({"logits": 5.0, "pred_boxes": torch.tensor([0.5, 0.5, 0.0, 0.0])}, None),  # 0x0 boxes
        ({"logits": 5.0, "pred_boxes": torch.tensor([1.5, 1.5, 0.2, 0.2])}, None),  # outside
        ({"logits": 5.0, "pred_boxes": torch.tensor([0.5, 0.5, INF, INF])}, None),
    ],
)
def test_grounded_sam_degenerate_detections(grounded_sam, tmp_path, det, expect):
    res = _label(grounded_sam, det_fix=overwrite(**det))
    label, conf, inst = _written(tmp_path, res)
    if expect is not None:
        assert len(inst) == expect
    assert np.isfinite(inst.xyxy).all() and set(np.unique(label)) <= {0, 1, 255}
    assert ((inst.xyxy >= 0) & (inst.xyxy <= [48, 40, 48, 40])).all()  # clipped to the image
    if not len(inst):
        assert not label.any() and not conf.any()


# -- SAM 3 -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sam3(models):
    from labeler.sam3 import Sam3Backend

    spec = ClassSpec("Bicycle", prompts=("bicycle",), box_threshold=0.0)
    cfg = LabelConfig(
        data="unused", cls=spec, backend="sam3", model=str(models["sam3"]), device="cpu",
        progress=False, tiles=(2, 2),
    )  # fmt: skip
    backend = Sam3Backend(cfg, class_id=7)
    backend.load()
    return backend


def _label3(backend, fix, image=None) -> BackendOutput:
    model = backend.sam3.model
    backend.sam3.model = Overwritten(model, fix)
    try:
        item = image or _image(70, 96)
        backend.prepare(item)
        return backend.label([item])[0]
    finally:
        backend.sam3.model = model


def test_sam3_nan_boxes_take_the_masks_bounds(sam3, tmp_path):
    """SAM 3's box head is not its mask head: a NaN box beside a valid mask made the image fail
    ('Out of range float values are not JSON compliant'). The box is the mask's bounds."""
    res = _label3(sam3, overwrite(pred_boxes=NAN))
    inst = res.instances
    assert len(inst) > 0
    for box, m in zip(inst.xyxy, inst.masks, strict=True):
        tight = MaskCrop.from_full(m.to_full(70, 96))  # the mask's pixels, not its window
        assert box.tolist() == [tight.x0, tight.y0, tight.x1, tight.y1]
    _written(tmp_path, res)


def test_sam3_nan_in_a_mask_is_no_object_there(sam3, tmp_path):
    """A NaN mask logit made NaN probabilities, written as an arbitrary confidence."""

    def one_nan(t):
        t[:] = 5.0
        t[..., 3, 3] = NAN

    res = _label3(sam3, overwrite(pred_masks=one_nan))
    assert len(res.instances) == 1 and all(np.isfinite(p).all() for p in res.instances.probs)
    label, conf, inst = _written(tmp_path, res)
    assert 0 < (label == 1).sum() < label.size and np.isfinite(inst.mask_scores).all()


# -- refinement ------------------------------------------------------------------------------------
def test_refiner_nan_quality_score_and_overflowed_mask(models):
    seg = load_segmenter(str(models["sam"]))
    seg.model = Overwritten(seg.model, overwrite(iou_scores=NAN, pred_masks=INF))
    refiner = Refiner(seg, "cpu")
    img = _image(70, 96).image
    [(prob, iou)] = list(refiner.segment_crops([img[10:50, 20:60]], [np.array([5, 5, 30, 30])]))
    assert iou == 0.0 and (prob == 1).all()


# -- any backend: one image fails alone, saying why ------------------------------------------------
class NanBackend:
    """One instance per image, none for ``train02``; image ``train01``'s score is NaN."""

    name = "nan-test"

    def __init__(self, config, class_id) -> None:
        self.class_id = class_id

    def identity(self) -> dict:
        return {}

    def load(self) -> dict:
        return {}

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        out = []
        for b in batch:
            h, w = b.image.shape[:2]
            mask = MaskCrop(2, 3, np.ones((5, 6), bool))
            score = NAN if b.stem == "train01" else 0.9
            inst = CroppedInstances(
                (h, w), [[3, 2, 9, 7]], [score], [1.0], [self.class_id], ["bicycle"], [mask]
            )
            out.append(BackendOutput(inst[:0] if b.stem == "train02" else inst, None, {}))
        return out


def _label_three_images(tmp_path, backend):
    """``run_labeling`` of three training images with ``backend`` registered for the call."""
    from tests.labeler.test_run import _write_dataset

    data = _write_dataset(tmp_path / "data", {"train": 3})
    register_backend(backend.name, backend)
    try:
        cfg = LabelConfig(
            data=str(data), cls=ClassSpec("Bicycle"), out=str(tmp_path / "run"),
            backend=backend.name, batch_size=3, progress=False,
        )  # fmt: skip
        return run_labeling(cfg)
    finally:
        BACKENDS.pop(backend.name, None)


def test_a_nan_score_fails_its_image_alone_naming_the_value(tmp_path):
    s = _label_three_images(tmp_path, NanBackend)
    assert s.labelled == 2 and s.instances == 1 and s.without_instances == 1
    [(split, stem, error)] = s.failed
    assert stem == "train01"
    assert (
        "train01.png: backend nan-test gave instance 0 of 1 a non-finite value in scores (nan)"
        in error
    )


class InfBoxBackend(NanBackend):
    """Two instances per image; on ``train01`` the second one's bottom edge is infinite."""

    name = "inf-box-test"

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        out = []
        for b in batch:
            y1 = INF if b.stem == "train01" else 14
            masks = [MaskCrop(2, 3, np.ones((5, 6), bool)), MaskCrop(10, 12, np.ones((4, 4), bool))]
            inst = CroppedInstances(
                b.image.shape[:2], [[3, 2, 9, 7], [12, 10, 16, y1]], [0.9, 0.8], [1.0, 1.0],
                [self.class_id] * 2, ["bicycle"] * 2, masks,
            )  # fmt: skip
            out.append(BackendOutput(inst, None, {}))
        return out


def test_a_non_finite_box_edge_names_its_instance_not_its_coordinate(tmp_path):
    """The check reduces each instance's row: the second instance's fourth value is instance 1,
    not element 7 of the flattened boxes (which would index past them)."""
    s = _label_three_images(tmp_path, InfBoxBackend)
    assert s.labelled == 2 and s.instances == 4
    [(split, stem, error)] = s.failed
    assert (split, stem) == ("train", "train01")
    assert error.endswith(
        "train01.png: backend inf-box-test gave instance 1 of 2 a non-finite value in xyxy "
        "([12. 10. 16. inf])"
    )


class ShortBackend(NanBackend):
    """Returns one result fewer than the images it was given."""

    name = "short-test"

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        return super().label(batch)[:-1]


def test_a_backend_returning_too_few_results_fails_each_image_saying_how_many(tmp_path):
    """The batch of 3 got 2 results: each image is tried alone, and alone gets none."""
    s = _label_three_images(tmp_path, ShortBackend)
    assert s.labelled == 0
    error = "RuntimeError: backend short-test returned 0 results for 1 image"
    assert sorted(s.failed) == [("train", f"train{k:02d}", error) for k in range(3)]


def test_grounded_sam_makes_probabilities_for_kept_instances_only(grounded_sam, monkeypatch):
    """Every box's mask covers the image (SAM on a photo given boxes of one wall, or random
    weights): one instance is kept, and only its probability window is made. Before, each box's
    float16 probability was held until the dedup: 100 such boxes on an 8K photo held 10 GB."""
    import labeler.grounded_sam as gs

    made = []  # probability maps made

    def counted(low, *a, floor=LOGIT_FLOOR, **k):
        out = masks_in_windows(low, *a, floor=floor, **k)
        made.extend(p for _, p in out if p is not None)
        return out

    monkeypatch.setattr(gs, "masks_in_windows", counted)
    res = _label(grounded_sam, det_fix=overwrite(logits=5.0), sam_fix=overwrite(pred_masks=5.0))
    assert len(res.instances) == 1 and res.instances.masks[0].mask.all()
    assert len(made) == 1
