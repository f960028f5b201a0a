"""End-to-end labeling runs: tiny random Grounding DINO / SAM / SAM-HQ loaded with
``from_pretrained(local_dir)``, and a deterministic fake backend for resume, shards, interruption."""

from __future__ import annotations

import dataclasses
import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from annotations.fileio import read_jsonl
from annotations.instances import Instances, read_instances
from annotations.labelmap import read_label
from cli import app
from labeler.backends import BACKENDS, BackendOutput, LoadedImage, create_backend, register_backend
from labeler.config import ClassSpec, LabelConfig
from labeler.run import run_labeling

runner = CliRunner()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    from labeler.testing import save_tiny_detector, save_tiny_segmenter

    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "det": save_tiny_detector(root / "det"),
        "sam": save_tiny_segmenter(root / "sam", "sam"),
        "sam_hq": save_tiny_segmenter(root / "sam_hq", "sam_hq"),
        "sam2": save_tiny_segmenter(root / "sam2", "sam2"),
        "sam2_video": save_tiny_segmenter(root / "sam2_video", "sam2_video"),
    }


def _write_dataset(
    root: Path, counts: dict[str, int], size=(48, 40), corrupt: bool = False
) -> Path:
    """Images with a red square (the 'object') at a per-image place; optional corrupt file."""
    w, h = size
    for split, n in counts.items():
        d = root / "images" / split
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = np.full((h, w, 3), 40, np.uint8)
            img[5 + i : 15 + i, 8 + 2 * i : 20 + 2 * i] = (250, 10, 10)
            Image.fromarray(img).save(d / f"{split}{i:02d}.png")
    if corrupt:
        (root / "images" / next(iter(counts)) / "broken.jpg").write_bytes(
            b"\xff\xd8 not really a jpeg"
        )
    return root


@pytest.fixture()
def dataset(tmp_path) -> Path:
    return _write_dataset(tmp_path / "data", {"train": 3, "val": 2})


def _label_args(data, out, models, *extra):
    return [
        "label", "--class", "Bicycle", "--data", str(data), "--out", str(out),
        "--detector", str(models["det"]), "--segmenter", str(models["sam"]),
        "--prompt", "bicycle", "--prompt", "bike", "--negative", "motorcycle",
        "--box-threshold", "0.05", "--text-threshold", "0.05", "--batch-size", "2",
        "--device", "cpu", "--no-progress", *extra,
    ]  # fmt: skip


def test_cli_run_outputs_resume_and_relabel(tiny_models, dataset, tmp_path):
    out = tmp_path / "run"
    cap = ("--max-boxes", "3", "--writers", "3", "--writer-queue-mb", "64")
    res = runner.invoke(app, _label_args(dataset, out, tiny_models, "--tiles", "2x2", *cap))
    assert res.exit_code == 0, res.output
    # the models' loading is its own row: the throughput is the rate a longer run keeps up
    assert "of which loading models" in res.output and "throughput (after loading)" in res.output
    manifest = read_jsonl(out / "manifest.jsonl")
    assert sorted((r["split"], r["stem"]) for r in manifest) == [
        ("train", "train00"), ("train", "train01"), ("train", "train02"), ("val", "val00"), ("val", "val01"),
    ]  # fmt: skip
    run = json.loads((out / "run.json").read_text())
    assert run["taxonomy"]["classes"][7]["name"] == "Bicycle" and run["class_id"] == 7
    assert run["backend"]["models"]["detector"]["class"] == "GroundingDinoForObjectDetection"
    assert run["backend"]["models"]["segmenter"]["class"] == "SamModel"
    assert run["config"]["cls"]["negatives"] == ["motorcycle"]
    assert run["data_resolved"] == str(Path(run["config"]["data"]).resolve())
    assert run["config"]["max_boxes"] == 3 and run["config"]["writers"] == 3
    assert run["config"]["writer_queue_mb"] == 64
    assert all(r["instances"] <= 3 for r in manifest)  # at most 3 boxes reached SAM
    assert "packages" in run["environment"] and "cpu_capability" in run["environment"]
    for rec in manifest:
        assert rec["status"] == "ok" and rec["config_hash"] == run["config_hash"]
        assert set(rec["timings"]) == {"decode", "detect", "segment", "merge", "write"}
        label = read_label(out / "labels" / rec["split"] / f"{rec['stem']}.png")
        conf = np.array(Image.open(out / "confidence" / rec["split"] / f"{rec['stem']}.png"))
        inst, header = read_instances(out / "instances" / rec["split"] / f"{rec['stem']}.json")
        assert label.shape == conf.shape == (40, 48) and conf.dtype == np.uint8
        assert set(np.unique(label)) <= {0, 1, 255}
        assert len(inst) == rec["instances"] and header["class_name"] == "Bicycle"
        assert header["split"] == rec["split"] and header["image"] == rec["stem"]
        assert all(c == 7 for c in inst.class_ids) and set(inst.prompts) <= {"bicycle", "bike"}
        union = inst.masks.any(axis=0) if len(inst) else np.zeros((40, 48), bool)
        assert np.all(label[union] != 0) and np.all(label[~union] != 1)
    # engine info names the models that labelled, as the run recorded them
    res = runner.invoke(app, ["info", str(out)], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    det, seg = (run["backend"]["models"][k]["source"] for k in ("detector", "segmenter"))
    assert f"detector {det}; segmenter {seg}" in res.output
    # same command again: no work at all
    res = runner.invoke(app, _label_args(dataset, out, tiny_models, "--tiles", "2x2", *cap))
    assert res.exit_code == 0 and len(read_jsonl(out / "manifest.jsonl")) == 5
    # a changed threshold re-labels everything
    res = runner.invoke(
        app, _label_args(dataset, out, tiny_models, "--tiles", "2x2", *cap, "--min-area", "3")
    )
    assert res.exit_code == 0 and len(read_jsonl(out / "manifest.jsonl")) == 10


def test_cli_empty_detection_and_corrupt_image(tiny_models, tmp_path):
    data = _write_dataset(tmp_path / "data", {"train": 2}, corrupt=True)
    out = tmp_path / "run"
    args = _label_args(data, out, tiny_models, "--segmenter", str(tiny_models["sam_hq"]))
    args[args.index("--box-threshold") + 1] = "0.9"  # nothing passes: empty detections
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output  # some images failed
    assert "broken" in res.output
    recs = {r["stem"]: r for r in read_jsonl(out / "manifest.jsonl")}
    assert recs["broken"]["status"] == "failed" and "cannot decode" in recs["broken"]["error"]
    for stem in ("train00", "train01"):
        assert recs[stem]["status"] == "ok" and recs[stem]["instances"] == 0
        assert not read_label(out / "labels" / "train" / f"{stem}.png").any()
        assert len(read_instances(out / "instances" / "train" / f"{stem}.json")[0]) == 0
    # a rerun retries only the failure
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and len(read_jsonl(out / "manifest.jsonl")) == 4


def _thin_images(root: Path) -> dict[str, tuple[int, int]]:
    """Images 1, 3 and 4 pixels tall: the heights transformers takes for a channel axis."""
    d = root / "images" / "train"
    d.mkdir(parents=True)
    shapes = {"h1": (1, 50), "h3": (3, 50), "h4": (4, 60)}
    for stem, (h, w) in shapes.items():
        Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(d / f"{stem}.png")
    return shapes


def test_images_a_few_pixels_tall_are_labelled_at_their_own_size(tiny_models, tmp_path):
    """Every processor call says the array is (H, W, 3): an image 3 pixels tall was resized as
    if it were (3, H, W), its detector input transposed, its SAM sizes swapped (then failed)."""
    shapes = _thin_images(tmp_path / "data")
    out = tmp_path / "run"
    args = _label_args(tmp_path / "data", out, tiny_models, "--refine", str(tiny_models["sam"]))
    args[args.index("--box-threshold") + 1] = "0"  # boxes on every image: SAM and refinement run
    args[args.index("--text-threshold") + 1] = "0"
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = {r["stem"]: r for r in read_jsonl(out / "manifest.jsonl")}
    for stem, shape in shapes.items():
        assert recs[stem]["status"] == "ok" and recs[stem]["instances"] > 0, recs[stem]
        assert read_label(out / "labels" / "train" / f"{stem}.png").shape == shape


@pytest.mark.slow  # 7 s: models loaded, SAM run on each image
def test_images_too_thin_for_a_models_resize_fail_alone_with_one_line(tiny_models, tmp_path):
    """An image the tiny detector (longest_edge 96: a long side under 192 times the short one)
    or SAM (longest_edge 64: at most 128 times) would resize to 0 px across fails with one line
    naming it, its size and the limit, and the run's last line offers no retry that would fail
    again; before, transformers' "Size must contain 'height' and 'width' keys ... height=0" and
    "run the same command again to retry exactly those". A tile thinner than its image (200x1
    of a 200x2 image) is left out: the image is labelled."""
    d = tmp_path / "data" / "images" / "train"
    d.mkdir(parents=True)
    shapes = [(1, 128), (1, 129), (1, 192), (192, 1), (200, 2)]
    for h, w in shapes:
        Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(d / f"i{h}x{w}.png")
    out = tmp_path / "run"
    args = _label_args(tmp_path / "data", out, tiny_models, "--tiles", "1x2", "--max-boxes", "1")
    args[args.index("--box-threshold") + 1] = "0"  # a box on every image: SAM runs on each
    args[args.index("--text-threshold") + 1] = "0"
    res = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output
    recs = {r["stem"]: r for r in read_jsonl(out / "manifest.jsonl")}
    assert {s for s, r in recs.items() if r["status"] == "ok"} == {"i1x128", "i200x2"}
    assert read_label(out / "labels" / "train" / "i200x2.png").shape == (200, 2)

    def line(stem: str, model: str, to: str, edge: int, limit: str) -> str:
        h, w = stem[1:].split("x")
        return (
            f"{d / stem}.png is {h}x{w} px (HxW), too thin to label: the {model}'s processor "
            f"(longest_edge {edge}) resizes it to {to} px; it reads an image whose long side is "
            f"{limit} its short side"
        )

    detector = partial(line, model="detector", edge=96, limit="under 192 times")
    segmenter = partial(line, model="segmenter", edge=64, limit="at most 128 times")
    failed = {s: (r["error"], r["retry"]) for s, r in recs.items() if r["status"] == "failed"}
    assert failed == {  # one message form, either model's; running again fails them again
        "i1x129": (segmenter("i1x129", to="0x64"), False),
        "i1x192": (detector("i1x192", to="0x96"), False),
        "i192x1": (detector("i192x1", to="96x0"), False),
    }
    assert "retry" not in res.output and "Size must contain" not in res.output
    assert res.output.rstrip().endswith(
        "3 images cannot be labelled by this backend (too thin to label: a model would resize "
        "them to 0 px across); running again fails them again"
    )


def test_an_image_larger_than_the_pad_of_a_segmenter_that_does_not_resize_is_not_retried(
    tiny_models, tmp_path
):
    """A SAM processor with do_resize false pads every image to its pad size (64x64 px for the
    tiny SAM): an image larger fails on every run. It fails alone with one line naming it, its
    size and the pad size, recorded with retry false, and neither the run's closing line nor
    engine info's offers a retry; before, transformers' "Padding dimensions are negative",
    recorded as retryable: "run the same command again to retry exactly those"."""
    from engine.info import label_run_stats, render_label_run
    from labeler.testing import copy_without_resize

    sam = copy_without_resize(tiny_models["sam"], tmp_path / "sam")
    d = tmp_path / "data" / "images" / "train"
    d.mkdir(parents=True)
    for h, w in ((40, 48), (96, 60)):
        Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(d / f"i{h}x{w}.png")
    out = tmp_path / "run"
    args = _label_args(tmp_path / "data", out, {**tiny_models, "sam": sam}, "--max-boxes", "1")
    args[args.index("--box-threshold") + 1] = "0"  # a box on every image: SAM runs on each
    args[args.index("--text-threshold") + 1] = "0"
    res = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output
    recs = {r["stem"]: r for r in read_jsonl(out / "manifest.jsonl")}
    assert recs["i40x48"]["status"] == "ok"
    big = recs["i96x60"]
    assert (big["status"], big["retry"], big["cannot"]) == ("failed", False, "over_pad")
    assert big["error"] == (
        f"{d / 'i96x60'}.png is 96x60 px (HxW), larger than the pad size: the segmenter's "
        "processor pads every image to 64x64 px and does not resize (do_resize false); it reads "
        "an image at most 64x64 px"
    )
    closing = (
        "1 image cannot be labelled by this backend (larger than the pad size of a segmenter "
        "whose processor does not resize: do_resize false); running again fails it again"
    )
    assert "retry" not in res.output and "Padding dimensions" not in res.output
    assert res.output.rstrip().endswith(closing)
    said = render_label_run(label_run_stats(out))
    assert said[-1].endswith(closing) and "retry" not in said[-1], said


@pytest.mark.parametrize(
    "detector, expect",
    [
        ("{tmp}/nowhere", "detector weights not found: looked in the local path"),
        ("some-org/not-a-model", "the hub was not contacted (HF_HUB_OFFLINE is set)"),
    ],
)
def test_missing_weights_is_one_clear_line(
    tiny_models, dataset, tmp_path, monkeypatch, detector, expect
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)  # else both are named
    args = _label_args(
        dataset, tmp_path / "run", tiny_models, "--detector", detector.format(tmp=tmp_path)
    )
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    text = " ".join(res.output.split())  # rich wraps the line at the terminal width
    assert expect in text and "HF_HOME" in text and "Traceback" not in text
    # a local path gets advice about the path, a hub id about downloading it
    assert ("hf download" in text) == detector.startswith("some-org")


@pytest.mark.parametrize("option", ["--detector", "--segmenter", "--refine"])
def test_a_missing_relative_model_folder_is_named_as_a_folder(
    dataset, tmp_path, monkeypatch, option
):
    """docs/labeler.md's ``--detector ./models/gdino`` with no such folder: recorded as
    ``models/gdino`` (one spelling per folder), it was asked of the hub as a hub id, and the
    error said ``hf download models/gdino``. Now the missing folder is named, the hub not asked."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("labeler.models.weights.hub_unreachable", lambda: pytest.fail("hub asked"))
    extra = ["--backend", "simulated"] if option == "--refine" else []
    args = ["label", "--class", "Car", "--data", str(dataset), option, "./models/m", *extra]
    res = runner.invoke(app, args)
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "./models/m: " in text and f"looked in the local path {tmp_path}/models/m" in text
    assert "hf download" not in text and f"({option} DIR)" in text and "Traceback" not in text
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "key, backend",
    [("detector", "grounded-sam"), ("segmenter", "grounded-sam"), ("refine", "simulated"),
     ("model", "sam3")],
)  # fmt: skip
def test_a_library_callers_missing_relative_model_folder_is_named_as_a_folder(
    dataset, tmp_path, monkeypatch, key, backend
):
    """``LabelConfig(detector="./models/gdino")`` from Python: normalised to ``models/gdino``
    (a hub id's shape), it was asked of the hub and the error said ``hf download
    models/gdino``; engine label checked the folder as typed, the library did not."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("labeler.models.weights.hub_unreachable", lambda: pytest.fail("hub asked"))
    cfg = LabelConfig(data=str(dataset), cls=ClassSpec("Car"), backend=backend, progress=False)
    cfg = dataclasses.replace(cfg, **{key: "./models/m"})  # a replace() keeps the spelling
    assert getattr(cfg, key) == "models/m" and "typed_paths" not in cfg.to_dict()
    with pytest.raises(FileNotFoundError) as e:
        run_labeling(dataclasses.replace(cfg, batch_size=2))
    assert str(e.value).startswith("./models/m: ") and "hf download" not in str(e.value)
    assert f"looked in the local path {tmp_path}/models/m (no such " in str(e.value)
    assert not (tmp_path / "runs").exists()
    assert cfg.typed(key) == "./models/m"  # another value given: its spelling goes with it
    assert dataclasses.replace(cfg, **{key: "org/m2"}).typed_paths == ()


def test_prepared_inputs_match_the_processor_batch(tiny_models):
    """Per-image pre-processing in loader threads, stacked as ``detect`` stacks one shape's
    crops, == the processor's own batch of those images (no padding: one shape per batch)."""
    import torch
    from transformers import AutoProcessor

    ip = AutoProcessor.from_pretrained(tiny_models["det"]).image_processor
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 255, (40, 48, 3), dtype=np.uint8) for _ in range(3)]
    ref = ip(images=imgs, return_tensors="pt")
    one = [ip(images=im, return_tensors="pt") for im in imgs]
    pv = torch.stack([x["pixel_values"][0] for x in one])
    pm = torch.stack([x["pixel_mask"][0] for x in one])
    assert torch.equal(pm, ref["pixel_mask"]) and torch.allclose(pv, ref["pixel_values"])


def test_detector_selection_matches_transformers_post_processing(tiny_models):
    """Our best-prompt selection keeps exactly the boxes of transformers' threshold= API."""
    import torch
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    from labeler.grounded_sam import prompt_text, prompt_token_positions
    from labeler.merge import select_queries

    proc = AutoProcessor.from_pretrained(tiny_models["det"])
    model = AutoModelForZeroShotObjectDetection.from_pretrained(tiny_models["det"]).eval()
    text, spans = prompt_text(("bicycle", "bike"))
    assert text == "bicycle. bike."
    img = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    inputs = proc(images=[img], text=[text], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    ref = proc.post_process_grounded_object_detection(
        outputs, inputs["input_ids"], threshold=0.3, text_threshold=0.0, target_sizes=[(40, 48)]
    )[0]
    offsets = proc.tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    tokens = prompt_token_positions(offsets, spans)
    assert [t.tolist() for t in tokens] == [[1], [3]]
    t = inputs["input_ids"].shape[1]
    probs = torch.sigmoid(outputs.logits)[0, :, :t].numpy()
    cx, cy, w, h = outputs.pred_boxes[0].numpy().T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) * [48, 40, 48, 40]
    ours = select_queries(probs, boxes, tokens, 0.3, -1.0)
    np.testing.assert_allclose(np.sort(ours.scores), np.sort(ref["scores"].numpy()), rtol=1e-5)
    np.testing.assert_allclose(
        ours.xyxy[np.argsort(ours.scores)],
        ref["boxes"].numpy()[np.argsort(ref["scores"].numpy())],
        atol=1e-3,
    )


# -- deterministic fake backend ---------------------------------------------------------------------
class RedBackend:
    """One instance per image: the red pixels, score 0.8, probability 0.9 inside."""

    name = "red-test"
    calls = 0
    interrupt_on: int | None = None

    def __init__(self, config, class_id):
        self.class_id = class_id

    def identity(self):
        return {"kind": "red"}

    def load(self):
        return {"model": "none"}

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        RedBackend.calls += 1
        if RedBackend.interrupt_on == RedBackend.calls:
            raise KeyboardInterrupt
        outs = []
        for item in batch:
            assert item.image.ndim == 3 and item.split in ("train", "val")
            m = (item.image[..., 0] > 200) & (item.image[..., 1] < 50)
            ys, xs = np.nonzero(m)
            inst = Instances(
                xyxy=[[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], masks=m[None], scores=[0.8],
                mask_scores=[0.9], class_ids=[self.class_id], prompts=["red"],
            )  # fmt: skip
            outs.append(BackendOutput(inst, (m * 0.9)[None].astype(np.float32), {"detect": 0.0}))
        return outs


@pytest.fixture()
def red_backend():
    register_backend("red-test", RedBackend)
    RedBackend.calls, RedBackend.interrupt_on = 0, None
    yield RedBackend
    BACKENDS.pop("red-test", None)


def _cfg(data, out, **kw) -> LabelConfig:
    return LabelConfig(
        data=str(data), cls=ClassSpec("Bicycle"), out=str(out), backend="red-test",
        batch_size=2, progress=False, **kw,
    )  # fmt: skip


def test_fake_backend_values(red_backend, dataset, tmp_path):
    s = run_labeling(_cfg(dataset, tmp_path / "run", uncertain=(0.5, 0.7)))
    assert s.labelled == 5 and s.instances == 5 and not s.failed and s.without_instances == 0
    label = read_label(tmp_path / "run" / "labels" / "val" / "val01.png")
    conf = np.array(Image.open(tmp_path / "run" / "confidence" / "val" / "val01.png"))
    expect = np.zeros((40, 48), np.uint8)
    expect[6:16, 10:22] = 1
    np.testing.assert_array_equal(label, expect)
    assert set(np.unique(conf)) == {0, round(0.72 * 255)}
    s = run_labeling(_cfg(dataset, tmp_path / "run2", uncertain=(0.7, 0.75)))
    label = read_label(tmp_path / "run2" / "labels" / "val" / "val01.png")
    assert set(np.unique(label)) == {0, 255}  # 0.72 lies in the uncertain band


def test_waits_of_the_labeling_thread_are_measured(red_backend, dataset, tmp_path, monkeypatch):
    import labeler.run as run_module

    write = run_module.write_outputs

    def slow_write(*args, **kwargs):
        time.sleep(0.1)
        return write(*args, **kwargs)

    monkeypatch.setattr(run_module.writers, "write_outputs", slow_write)
    # one writer, a 1 MB queue, 0.1 s per output written
    s = run_labeling(_cfg(dataset, tmp_path / "run", writers=1, writer_queue_mb=1))
    assert s.labelled == 5
    assert s.stage_seconds["wait for decode"] >= 0
    assert s.stage_seconds["wait for writers"] < 0.2  # a 1 MB queue holds these small outputs
    monkeypatch.setattr(run_module.writers, "output_nbytes", lambda result: 2**21)  # 2 MB each
    s = run_labeling(_cfg(dataset, tmp_path / "run2", writers=1, writer_queue_mb=1))
    assert s.stage_seconds["wait for writers"] >= 0.25  # 4 of 5 waited for the one before


def test_every_measured_second_is_a_difference_of_the_clock(
    red_backend, dataset, tmp_path, monkeypatch
):
    """On a stopped clock each stage, wait and the wall time measure exactly 0 s (a sum of the
    clock's readings, or a wait that starts counting above 0, would not)."""
    import types

    import labeler.run as run_module

    for module in (run_module.runner, run_module.writers):  # the loop's clock and the writers'
        monkeypatch.setattr(module, "time", types.SimpleNamespace(perf_counter=lambda: 1000.0))
    s = run_labeling(_cfg(dataset, tmp_path / "run"))
    assert s.labelled == 5 and s.wall_seconds == 0.0 and s.load_seconds == 0.0
    stages = ("decode", "detect", "merge", "write", "wait for decode", "wait for writers")
    assert s.stage_seconds == dict.fromkeys(stages, 0.0)


@pytest.mark.parametrize("code", ["ENOSPC", "EFBIG", "EACCES"])
def test_a_full_disk_stops_the_run_and_keeps_what_was_written(
    red_backend, dataset, tmp_path, monkeypatch, code
):
    """No image is to blame for a full disk: the run stops with the OSError itself (the command
    line prints it in one line, exit 74) instead of failing every image after it; the images
    written before stay done, and a rerun labels only the rest. A file size limit (``ulimit
    -f``: EFBIG) likewise: before, it failed every image after it one by one, then the
    manifest's own append ended the run with a traceback. An output folder the user may not
    write (EACCES) too: it failed every image of the split one by one."""
    import errno

    import labeler.run as run_module

    write, calls = run_module.write_outputs, []

    def full_after_two(out, split, stem, *args, **kwargs):
        calls.append(stem)
        if len(calls) > 2:
            raise OSError(getattr(errno, code), "refused", str(out / f"{stem}.png"))
        return write(out, split, stem, *args, **kwargs)

    monkeypatch.setattr(run_module.writers, "write_outputs", full_after_two)
    with pytest.raises(OSError) as e:
        run_labeling(_cfg(dataset, tmp_path / "run", writers=1))
    assert e.value.errno == getattr(errno, code)
    monkeypatch.setattr(run_module.writers, "write_outputs", write)
    s = run_labeling(_cfg(dataset, tmp_path / "run"))
    assert (s.skipped, s.labelled) == (2, 3) and not s.failed


def test_a_failed_run_leaves_no_writer_threads_behind(red_backend, dataset, tmp_path, monkeypatch):
    """Called from Python, a run that raised (here a full disk) left its writer threads waiting
    in the process, a pair per failed call, and able to write into the run folder after the call
    had let its lock go. They now stop before the call raises."""
    import errno
    import threading

    import labeler.run as run_module

    def writers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("label-writer")]

    def full(out, split, stem, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / f"{stem}.png"))

    monkeypatch.setattr(run_module.writers, "write_outputs", full)
    for k in range(2):
        with pytest.raises(OSError):
            run_labeling(_cfg(dataset, tmp_path / f"run{k}", writers=2))
        assert writers() == []


def test_a_failed_run_leaves_no_decoding_threads_behind(red_backend, dataset, tmp_path):
    """A run that raised while images were still being decoded returned with its decoding
    threads at work (their pool shut down without waiting): reading and preparing images after
    the call had ended. They now finish before the call raises."""
    import threading

    decoding, release = threading.Event(), threading.Event()

    class StopsAtFirstBatch(red_backend):
        def prepare(self, img):
            if img.stem not in ("train00", "train01"):  # the first batch's two: at once
                decoding.set()
                assert release.wait(5)

        def label(self, batch):
            assert decoding.wait(5)  # a third image is being decoded
            threading.Timer(0.5, release.set).start()  # and is until after this
            raise MemoryError

    register_backend("stops-test", StopsAtFirstBatch)
    try:
        with pytest.raises(MemoryError):
            run_labeling(dataclasses.replace(_cfg(dataset, tmp_path / "run"), backend="stops-test"))
        assert [t.name for t in threading.enumerate() if t.name.startswith("label-decode")] == []
        assert release.is_set()
    finally:
        release.set()
        BACKENDS.pop("stops-test", None)


def test_a_second_ctrl_c_while_decoding_stops_still_closes_the_writers(
    red_backend, dataset, tmp_path, monkeypatch
):
    """A Ctrl-C, then another while the call waits for the decoding threads to stop: the second
    left the ``finally`` before the writers were closed, and they went on writing after the
    call had raised, into the folder whose lock it had let go."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import labeler.run

    class Interrupted(ThreadPoolExecutor):
        def shutdown(self, wait=True, *, cancel_futures=False):
            super().shutdown(wait=True, cancel_futures=cancel_futures)
            raise KeyboardInterrupt  # as a second Ctrl-C during the wait

    class CtrlC(red_backend):
        def label(self, batch):
            raise KeyboardInterrupt  # the first Ctrl-C, mid-run

    monkeypatch.setattr(labeler.run.runner, "ThreadPoolExecutor", Interrupted)
    register_backend("ctrl-c-test", CtrlC)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_labeling(
                dataclasses.replace(_cfg(dataset, tmp_path / "run"), backend="ctrl-c-test")
            )
    finally:
        BACKENDS.pop("ctrl-c-test", None)
    assert [t.name for t in threading.enumerate() if t.name.startswith("label-")] == []


def test_shards_union_equals_single_run(red_backend, dataset, tmp_path):
    run_labeling(_cfg(dataset, tmp_path / "single"))
    a = run_labeling(_cfg(dataset, tmp_path / "sharded", shard=(0, 2)))
    b = run_labeling(_cfg(dataset, tmp_path / "sharded", shard=(1, 2)))
    assert (a.labelled, b.labelled) == (3, 2)
    single = sorted(
        p.relative_to(tmp_path / "single") for p in (tmp_path / "single").rglob("*.png")
    )
    sharded = sorted(
        p.relative_to(tmp_path / "sharded") for p in (tmp_path / "sharded").rglob("*.png")
    )
    assert single == sharded and len(single) == 10
    for rel in single:
        assert (tmp_path / "single" / rel).read_bytes() == (tmp_path / "sharded" / rel).read_bytes()


def test_torchrun_env_shards(red_backend, dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    s = run_labeling(_cfg(dataset, tmp_path / "run"))
    assert s.shard == (1, 2) and s.labelled == 2


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"RANK": "1"}, "RANK=1 and WORLD_SIZE=1 (unset)"),
        ({"RANK": "3", "WORLD_SIZE": "1"}, "RANK=3 and WORLD_SIZE=1"),
        ({"WORLD_SIZE": "4"}, "RANK (unset) and WORLD_SIZE=4"),
    ],
)
def test_a_rank_without_a_world_is_refused_as_train_refuses_it(
    red_backend, dataset, tmp_path, env, said
):
    """``RANK=1`` exported by hand without ``WORLD_SIZE`` (or a world of one), or ``WORLD_SIZE=4``
    without ``RANK`` (engine train failed in torch's rendezvous): before, engine
    label read the shard only from both with a world of several, so it labelled every image as
    one process without a word, where engine train refuses it. Now the same line (one shared
    check, engine.devices.rank_and_world), exit 2, before the run folder is made."""
    out = tmp_path / "run"
    args = ["label", "--class", "Bicycle", "--data", str(dataset), "--out", str(out)]
    env = {"RANK": None, "WORLD_SIZE": None, "LOCAL_RANK": None, "LOCAL_WORLD_SIZE": None, **env}
    res = runner.invoke(app, [*args, "--backend", "red-test", "--no-progress"], env=env)
    assert res.exit_code == 2, res.output
    why = (
        "a world of several processes needs each one's rank; set both (torchrun does) or neither"
        if "(unset) and" in said
        else "the rank must be below the world size"
    )
    assert " ".join(res.output.split()) == f"error: environment variables {said}: {why}"
    assert not out.exists()


def test_interrupt_keeps_finished_images_and_resumes(red_backend, dataset, tmp_path):
    out = tmp_path / "run"
    red_backend.interrupt_on = 2
    s = run_labeling(_cfg(dataset, out))
    assert s.interrupted and s.labelled == 2
    recs = read_jsonl(out / "manifest.jsonl")
    assert len(recs) == 2
    for r in recs:  # every logged image has complete, readable files
        assert read_label(out / "labels" / r["split"] / f"{r['stem']}.png").shape == (40, 48)
    assert not list(out.rglob("*.tmp"))
    red_backend.interrupt_on = None
    s = run_labeling(_cfg(dataset, out))
    assert (s.skipped, s.labelled) == (2, 3)
    s = run_labeling(_cfg(dataset, out, force=True))
    assert (s.skipped, s.labelled) == (0, 5)


def test_a_run_relabelled_again_and_again_keeps_its_manifest_small(red_backend, dataset, tmp_path):
    """Each relabelling with other settings appends a line per image: a run relabelled 30 times
    over months held 30 lines an image, and every engine label, info and fuse read them all
    (13,000 images: 108 MB, a resume with nothing to do 7 s and 1.1 GB instead of 2 s). A call
    that is the folder's only writer compacts it to the latest lines; a shard leaves it while
    another shard runs."""
    from annotations.labelrun import latest_records
    from engine.info import label_run_stats
    from engine.runlock import LOCK_NAME, exclusive

    out = tmp_path / "run"
    for call in range(6):
        run_labeling(_cfg(dataset, out, uncertain=(0.5, 0.6 + 0.1 * (call % 2))))
        latest = latest_records(out)
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 10  # compacted to 5 when it held 25 (over 4 times 5), then 5 more
    assert latest_records(out) == latest
    assert label_run_stats(out).splits["train"].labelled == 3
    s = run_labeling(_cfg(dataset, out, uncertain=(0.5, 0.7)))  # nothing to do
    assert s.skipped == 5 and len((out / "manifest.jsonl").read_text().splitlines()) == 10
    (out / "manifest.jsonl").write_text("\n".join(lines[:5] * 4 + lines) + "\n")  # and older
    with exclusive(out, "engine label", f"{LOCK_NAME}-shard1of2"):  # the other shard runs
        run_labeling(_cfg(dataset, out, uncertain=(0.5, 0.7), shard=(0, 2)))
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 30  # so this one leaves it
    run_labeling(_cfg(dataset, out, uncertain=(0.5, 0.7), shard=(0, 2)))  # alone: compacts it
    assert (out / "manifest.jsonl").read_text().splitlines() == lines[5:]


def test_a_run_without_shard_and_a_shard_of_one_run_refuse_each_other(
    red_backend, dataset, tmp_path
):
    """Shards of one run label it side by side, each under its own lock file; an engine label
    without --shard into it took .lock and went on while a shard held its own (and a shard went
    on beside a run without --shard, or beside a shard of another count): two processes labelled
    the same images into one manifest. Refused now in one line naming the live writer, leaving
    the folder as it was."""
    from engine.runlock import LOCK_NAME, FolderInUse, exclusive

    out = tmp_path / "run"
    with exclusive(out, "engine label", f"{LOCK_NAME}-shard1of2"):  # shard 1/2 runs
        for shard in (None, (0, 3)):
            with pytest.raises(FolderInUse) as e:
                run_labeling(_cfg(dataset, out, shard=shard))
            message = str(e.value)
            assert message.startswith(f"{out}: in use by engine label (pid ")
            assert message.count(" as shard 1/2; ") == 1 and "\n" not in message
            assert sorted(p.name for p in out.iterdir()) == [f"{LOCK_NAME}-shard1of2"]
        assert run_labeling(_cfg(dataset, out, shard=(0, 2))).labelled == 3  # its other shard
    with (
        exclusive(out, "engine label"),  # a run without --shard
        pytest.raises(FolderInUse, match=r"in use by engine label \(pid \d+ .*\); two"),
    ):
        run_labeling(_cfg(dataset, out, shard=(1, 2)))
    assert len(read_jsonl(out / "manifest.jsonl")) == 3  # the refused shard wrote nothing
    assert run_labeling(_cfg(dataset, out, shard=(1, 2))).labelled == 2  # alone: it runs


def test_manifest_lines_that_name_no_image_are_about_none(red_backend, dataset, tmp_path):
    """A manifest line without a split and stem as text (a note, a line edited by hand) made
    engine info and the resume stop with a TypeError (sorting None or 5 with text)."""
    from engine.info import label_run_stats

    out = tmp_path / "run"
    run_labeling(_cfg(dataset, out))
    with open(out / "manifest.jsonl", "a") as f:
        f.write('{"note": "relabelled after review"}\n[1]\n{"split": "train", "stem": 5}\n')
    assert label_run_stats(out).splits["train"].labelled == 3
    assert run_labeling(_cfg(dataset, out)).skipped == 5


def test_a_prompt_in_another_script_is_warned_of(red_backend, dataset, tmp_path, caplog):
    """``--class 自行车`` prompted the detector with ``自行车`` (the default prompt, the class
    name), which Grounding DINO's English text encoder finds little with: the whole dataset was
    labelled from it without a word. A warning names the prompt and what to give; an English
    --prompt beside the name is not warned of, nor is the simulated backend."""
    import logging

    caplog.set_level(logging.WARNING)
    run_labeling(dataclasses.replace(_cfg(dataset, tmp_path / "a"), cls=ClassSpec("自行车")))
    assert "prompt '自行车' has no Latin letter" in caplog.text
    assert (
        "give English prompts (--prompt bicycle: the class keeps its name '自行车')" in caplog.text
    )
    caplog.clear()
    cls = ClassSpec("自行车", prompts=("bicycle",))
    run_labeling(dataclasses.replace(_cfg(dataset, tmp_path / "b"), cls=cls))
    assert "Latin" not in caplog.text


def test_a_band_from_zero_is_warned_of(red_backend, dataset, tmp_path, caplog):
    """``--uncertain 0,0.2`` holds confidence 0: every pixel away from all masks became 255 and
    an image without instances all 255, without a word. A warning names the option and what it
    does, kept in run.json; a band above 0 and no band (0,0) are not warned of."""
    import logging

    caplog.set_level(logging.WARNING)
    out = tmp_path / "a"
    run_labeling(_cfg(dataset, out, uncertain=(0.0, 0.2)))
    said = (
        f"{out}: --uncertain 0,0.2 starts at 0: every pixel away from all masks (confidence 0) "
        "becomes 255 (ignored), and an image without instances all 255"
    )
    assert said in caplog.text
    assert any(said in w for w in json.loads((out / "run.json").read_text())["warnings"])
    caplog.clear()
    run_labeling(_cfg(dataset, tmp_path / "b", uncertain=(0.0, 0.0)))
    run_labeling(_cfg(dataset, tmp_path / "c", uncertain=(0.05, 0.2)))
    assert "--uncertain" not in caplog.text


def test_a_rerun_writes_a_deleted_run_json_again(red_backend, dataset, tmp_path, caplog):
    """run.json deleted after every image was labelled: the rerun had nothing to label and
    returned without writing it, so fuse, info and review no longer knew the folder."""
    from annotations.labelrun import read_run_info

    out = tmp_path / "run"
    run_labeling(_cfg(dataset, out))
    labels = {p: p.read_bytes() for p in (out / "labels").rglob("*.png")}
    (out / "run.json").unlink()
    s = run_labeling(_cfg(dataset, out))
    assert (s.skipped, s.labelled) == (5, 0) and "run.json is missing; written" in caplog.text
    assert read_run_info(out / "run.json").class_name == "Bicycle"
    assert {p: p.read_bytes() for p in (out / "labels").rglob("*.png")} == labels
    caplog.clear()
    assert run_labeling(_cfg(dataset, out)).skipped == 5 and "missing" not in caplog.text


def test_a_rerun_on_the_moved_dataset_records_where_it_is_now(
    red_backend, dataset, tmp_path, monkeypatch
):
    """A rerun with nothing left to label, given the dataset at its new path: run.json kept
    the old one, where fuse, review and info then looked for the dataset."""
    import json
    import shutil

    out = tmp_path / "run"
    run_labeling(_cfg(dataset, out))
    before = json.loads((out / "run.json").read_text())
    moved = tmp_path / "moved"
    shutil.move(dataset, moved)
    assert run_labeling(_cfg(moved, out)).skipped == 5
    after = json.loads((out / "run.json").read_text())
    assert after["data_resolved"] == str(moved.resolve()) and after["config"]["data"] == str(moved)
    assert {**after, "data_resolved": None, "config": None} == {
        **before,
        "data_resolved": None,
        "config": None,
    }
    # moved again and given relative to another folder than the labelling call's (whose cwd the
    # record's environment keeps): written resolved, so that config.data names it from anywhere
    again = tmp_path / "elsewhere" / "data"
    again.parent.mkdir()
    shutil.move(moved, again)
    monkeypatch.chdir(again.parent)
    assert run_labeling(_cfg("data", out)).skipped == 5
    after = json.loads((out / "run.json").read_text())
    assert after["config"]["data"] == after["data_resolved"] == str(again.resolve())


def test_a_rerun_keeps_an_older_run_json_without_data_resolved(red_backend, dataset, tmp_path):
    """run.json from before data_resolved was recorded: a rerun with nothing to label on the
    same dataset rewrote it (data_resolved added), which changed its hash, and the next fuse
    fused every image again as "fused with other settings or inputs"."""
    import json

    out = tmp_path / "run"
    run_labeling(_cfg(dataset, out))
    record = json.loads((out / "run.json").read_text())
    del record["data_resolved"]  # as engines before it wrote run.json
    (out / "run.json").write_text(json.dumps(record))
    before = (out / "run.json").read_bytes()
    assert run_labeling(_cfg(dataset, out)).skipped == 5
    assert (out / "run.json").read_bytes() == before


def test_force_with_another_class_replaces_the_run_in_every_split(
    red_backend, dataset, tmp_path, caplog
):
    """--force --class Car on a Bicycle run replaces the run: Bicycle's labels of the splits not
    labelled now go too (they stayed, and fusion read them as Car); a sharded run cannot."""
    out = tmp_path / "run"
    run_labeling(_cfg(dataset, out))
    car = dataclasses.replace(_cfg(dataset, out, splits=("val",), force=True), cls=ClassSpec("Car"))
    with pytest.raises(ValueError, match="a sharded run cannot do"):
        run_labeling(dataclasses.replace(car, shard=(0, 2)))
    assert len(list((out / "labels" / "train").glob("*.png"))) == 3  # refused: nothing gone
    s = run_labeling(car)
    assert s.labelled == 2
    assert (
        f"{out}: the label run of Bicycle is replaced by one of Car (--force): its 5 label maps"
        in caplog.text
    )
    assert not (out / "labels" / "train").exists() and not (out / "instances" / "train").exists()
    assert {(r["split"], r["stem"]) for r in read_jsonl(out / "manifest.jsonl")} == {
        ("val", "val00"),
        ("val", "val01"),
    }
    assert {read_instances(p)[1]["class_name"] for p in out.glob("instances/*/*.json")} == {"Car"}


def test_an_unreadable_run_json_is_an_error_unless_force(red_backend, dataset, tmp_path, caplog):
    """With run.json broken the run's settings are unknown: the images are not taken as done
    (it said "skipped 5" and left run.json broken for info, review and fuse); --force labels
    them again and rewrites it."""
    from annotations.labelrun import read_run_info

    out = tmp_path / "run"
    run_labeling(_cfg(dataset, out))
    (out / "run.json").write_text('{"bad json')
    with pytest.raises(ValueError) as err:
        run_labeling(_cfg(dataset, out))
    assert str(err.value) == (
        f"{out / 'run.json'}: not valid JSON (Unterminated string starting at line 1); the "
        "run's class and settings are unknown, so none of its images can count as done: give "
        "--force to label every image again (and rewrite run.json), or another --out"
    )
    assert (out / "run.json").read_text() == '{"bad json'
    s = run_labeling(_cfg(dataset, out, force=True))
    assert (s.skipped, s.labelled) == (
        0,
        5,
    ) and "--force: every image is labelled again" in caplog.text
    assert read_run_info(out / "run.json").class_name == "Bicycle"


def test_the_settings_warning_names_only_settings_that_change_labels(
    red_backend, dataset, tmp_path
):
    """The split choice is not in the settings hash: the warning does not list it as changed
    (it said "splits [] -> ['val']")."""
    from labeler.run import _changed_settings

    out = tmp_path / "run"
    run_labeling(_cfg(dataset, out))
    now = _cfg(dataset, out, splits=("val",), workers=1)
    now = dataclasses.replace(now, cls=ClassSpec("Bicycle", min_area=5))
    recorded = json.loads((out / "run.json").read_text())
    assert _changed_settings(recorded, now) == "cls.min_area 0 -> 5"
    assert _changed_settings(None, now) == "settings unknown"
    # an option left unset reads "none", not an empty word ("refine  -> models/sam-hq")
    refined = dataclasses.replace(_cfg(dataset, out), refine="models/sam-hq")
    assert _changed_settings(recorded, refined) == "refine none -> models/sam-hq"


def test_the_class_name_in_another_case_is_the_same_run(red_backend, dataset, tmp_path, caplog):
    """--class bicycle on a Bicycle run: the same class for the class check, so the same
    settings too; it re-labelled every image under "cls.name Bicycle -> bicycle"."""
    from annotations.labelrun import read_run_info

    out = tmp_path / "run"
    run_labeling(_cfg(dataset, out))
    lower = dataclasses.replace(_cfg(dataset, out), cls=ClassSpec("bicycle"))
    s = run_labeling(lower)
    assert (s.skipped, s.labelled) == (5, 0) and "other settings" not in caplog.text
    s = run_labeling(dataclasses.replace(lower, force=True))
    assert s.labelled == 5 and read_run_info(out / "run.json").class_name == "Bicycle"


def test_the_class_name_compares_case_folded(red_backend, dataset, tmp_path):
    """The taxonomy, fuse and import compare names case-folded (``Straße`` is ``STRASSE``); the
    class check lower-cased them (``straße`` is not ``strasse``), so --class STRASSE on the
    Straße run was refused as another class's run, which the taxonomy took for the same. (Its
    default prompt, the lower-cased name, is another text, ``strasse``: the images are
    labelled again under it, as for any changed prompt.)"""
    from annotations.labelrun import read_run_info

    out = tmp_path / "run"
    run_labeling(dataclasses.replace(_cfg(dataset, out), cls=ClassSpec("Straße")))
    same = ClassSpec("STRASSE", prompts=("straße",))
    s = run_labeling(dataclasses.replace(_cfg(dataset, out), cls=same))
    assert (s.skipped, s.labelled) == (5, 0)
    s = run_labeling(dataclasses.replace(_cfg(dataset, out), cls=ClassSpec("STRASSE")))
    assert s.labelled == 5 and read_run_info(out / "run.json").class_name == "Straße"


def test_a_run_recording_an_unnormalised_model_path_resumes(red_backend, dataset, tmp_path, caplog):
    """Runs made before model paths were normalised record --detector ./m/gdino/ as typed (and
    hashed it so): after the upgrade the same command relabelled every image under "detector
    ./m/gdino/ -> m/gdino". The run's own spelling is kept, so its images stay done, the ones
    left are labelled under its hash and fuse vouches for all of them."""
    from annotations.labelrun import latest_records, read_run_info

    out = tmp_path / "run"
    old = _cfg(dataset, out, splits=("val",))
    object.__setattr__(old, "detector", "./m/gdino/")  # as an older version recorded it
    run_labeling(old)
    s = run_labeling(_cfg(dataset, out, detector="./m/gdino/"))
    assert (s.skipped, s.labelled) == (2, 3) and "other settings" not in caplog.text
    chash = read_run_info(out / "run.json").record["config_hash"]
    assert {r["config_hash"] for r in latest_records(out).values()} == {chash}
    assert run_labeling(_cfg(dataset, out, detector="m/gdino")).skipped == 5  # any spelling


def test_backend_batch_failure_is_recorded(red_backend, dataset, tmp_path, monkeypatch):
    def boom(self, batch):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(RedBackend, "label", boom)
    s = run_labeling(_cfg(dataset, tmp_path / "run"))
    assert len(s.failed) == 5 and "out of memory" in s.failed[0][2]


def test_a_data_folder_too_deep_names_the_dataset_root(tmp_path):
    from labeler.cli_support import build_label_config
    from labeler.run import plan_items

    root = _write_dataset(tmp_path / "data", {"train": 2})
    for deep in (root / "images", root / "images" / "train"):
        cfg = build_label_config(class_name="Car", data=str(deep), backend="simulated")
        with pytest.raises(FileNotFoundError) as e:
            plan_items(cfg)
        assert str(e.value) == (
            f"{deep}: no image split folders found (expected images/{{split}}, e.g. "
            f"images/train); is the dataset root {root}?"
        )


def test_a_dataset_of_255_classes_has_no_id_left_for_the_class(tmp_path):
    """The error named neither the dataset nor why: 'class id must be in 0..254, got 255'."""
    from annotations.taxonomy import MASS13K, ClassInfo, Taxonomy
    from labeler.cli_support import build_label_config
    from labeler.run import plan_items

    root = _write_dataset(tmp_path / "data", {"train": 1})
    extra = tuple(ClassInfo(i, f"Extra {i}", (i, 0, 0)) for i in range(7, 255))
    Taxonomy(MASS13K.classes + extra).save(root / "taxonomy.json")
    (root / "dataset.yaml").write_text(
        "images: images/{split}\nlabels: annotations/{split}\ntaxonomy: taxonomy.json\n"
    )
    cfg = build_label_config(class_name="Car", data=str(root), backend="simulated")
    with pytest.raises(ValueError) as e:
        plan_items(cfg)
    assert str(e.value) == (
        f"dataset {root}: no class id left for new class 'Car': the taxonomy has 255 classes "
        "(ids 0..254), the most uint8 label maps hold (255 is ignore)"
    )


def test_a_dataset_without_others_says_where_to_give_the_parent(tmp_path):
    """The default parent, Others, missing from a dataset's own taxonomy: the error was
    'unknown class 'Others'' and every class name, with no word on where to set the parent."""
    from annotations.taxonomy import ClassInfo, Taxonomy
    from labeler.cli_support import build_label_config

    root = _write_dataset(tmp_path / "data", {"train": 1})
    Taxonomy((ClassInfo(0, "Background", (0, 0, 0)), ClassInfo(1, "Road", (1, 1, 1)))).save(
        root / "taxonomy.json"
    )
    (root / "dataset.yaml").write_text(
        "images: images/{split}\nlabels: annotations/{split}\ntaxonomy: taxonomy.json\n"
    )
    with pytest.raises(ValueError) as e:
        build_label_config(class_name="Car", data=str(root), backend="simulated")
    assert str(e.value) == (
        f"dataset {root}: class 'Car': its parent is 'Others' by default, which is not a class "
        "of the dataset (Background, Road); give the parent in a --spec file (Car: {parent: "
        "CLASS})"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text("Car:\n  parent: Road\n")
    cfg = build_label_config(class_name="Car", data=str(root), backend="simulated", spec=str(spec))
    assert cfg.cls.parent == "Road"


def test_unknown_backend_lists_registered():
    with pytest.raises(ValueError, match="registered: .*grounded-sam"):
        create_backend("nope", None, 7)


@pytest.mark.parametrize("refine", [False, True])
@pytest.mark.parametrize("enabled", [True, False])
def test_loading_models_leaves_transformers_progress_bars_as_they_were(
    tiny_models, enabled, refine, capfd
):
    """A notebook's own ``from_pretrained`` after a label run showed no download or loading
    bar: the backend turned transformers' bars off for the process's life. And none is drawn
    while the models load: ``engine label --refine`` printed transformers' "Loading weights"
    bar for the --refine model in the middle of its own output."""
    from transformers.utils import logging as hf_logging

    from labeler.grounded_sam import GroundedSamBackend
    from labeler.refine import RefinedBackend

    cfg = LabelConfig(
        data="unused", cls=ClassSpec("Bicycle"), detector=str(tiny_models["det"]),
        segmenter=str(tiny_models["sam"]), device="cpu", progress=False,
        refine=str(tiny_models["sam_hq"]) if refine else "",
    )  # fmt: skip
    capfd.readouterr()
    before = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        backend = GroundedSamBackend(cfg, class_id=7)
        (RefinedBackend(backend, cfg) if refine else backend).load()
        assert hf_logging.is_progress_bar_enabled() is enabled
    finally:
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "%|" not in out + err


def test_an_unprepared_image_too_thin_is_refused_by_its_name(tiny_models):
    """``label`` on a batch not prepared in a loader thread (a library caller's) makes the
    detector inputs itself: an image too thin for the tiny detector's resize (longest_edge 96:
    a long side under 192 times the short one) is refused naming its file; it said "the
    image"."""
    from labeler.grounded_sam import GroundedSamBackend
    from labeler.models import ImageTooThin

    cfg = LabelConfig(
        data="unused", cls=ClassSpec("Bicycle"), detector=str(tiny_models["det"]),
        segmenter=str(tiny_models["sam"]), device="cpu", progress=False,
    )  # fmt: skip
    backend = GroundedSamBackend(cfg, class_id=7)
    backend.load()
    img = LoadedImage("train", "x", Path("d/x.png"), np.zeros((1, 192, 3), np.uint8))
    with pytest.raises(ImageTooThin) as e:
        backend.label([img])
    assert str(e.value) == (
        "d/x.png is 1x192 px (HxW), too thin to label: the detector's processor (longest_edge "
        "96) resizes it to 0x96 px; it reads an image whose long side is under 192 times its "
        "short side"
    )


@pytest.mark.parametrize("kind", ["sam", "sam_hq", "sam2", "sam2_video"])
def test_ragged_boxes_and_boxless_images_skip_sam(tiny_models, kind, monkeypatch):
    """Injected detections: 2 boxes, none, 1 box in one batch; only 2 images reach the encoder."""
    from labeler.grounded_sam import GroundedSamBackend
    from labeler.merge import Detections

    cfg = LabelConfig(
        data="unused", cls=ClassSpec("Bicycle", prompts=("bicycle", "bike")), detector=str(tiny_models["det"]),
        segmenter=str(tiny_models[kind]), batch_size=3, device="cpu", progress=False,
    )  # fmt: skip
    backend = GroundedSamBackend(cfg, class_id=7)
    info = backend.load()
    assert info["segmenter"]["model_type"] == kind
    dets = [
        Detections([[2, 2, 20, 20], [10, 5, 40, 30]], [0.9, 0.6], [0, 1]),
        Detections.empty(),
        Detections([[0, 0, 47, 39]], [0.5], [1]),
    ]
    monkeypatch.setattr(backend, "detect", lambda images, prepared=None: dets)
    seen = []
    encoder = backend.segmenter.model.get_image_embeddings
    monkeypatch.setattr(
        backend.segmenter.model,
        "get_image_embeddings",
        lambda px: seen.append(len(px)) or encoder(px),
    )
    rng = np.random.default_rng(0)
    batch = [
        LoadedImage(
            "train", f"s{i}", Path(f"s{i}.png"), rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
        )
        for i in range(3)
    ]
    made = []
    sam_inputs = backend._sam_inputs
    monkeypatch.setattr(backend, "_sam_inputs", lambda im: made.append(im.shape) or sam_inputs(im))
    decoded = []  # each decoder call's batch of image embeddings (every level, HQ's too)
    forward = backend.segmenter.model.forward

    def decoder(*args, **kw):
        emb = kw["image_embeddings"]
        levels = [
            *(emb if isinstance(emb, list) else [emb]),
            *kw.get("intermediate_embeddings", []),
        ]
        decoded.append(({len(e) for e in levels}, "intermediate_embeddings" in kw))
        return forward(*args, **kw)

    monkeypatch.setattr(backend.segmenter.model, "forward", decoder)
    segs = []
    segment = backend.segment
    monkeypatch.setattr(backend, "segment", lambda im, d: segs.append(segment(im, d)) or segs[-1])
    for item in batch:
        backend.prepare(item)
    assert "sam" not in batch[1].prepared  # nothing is made for SAM before boxes are known
    outs = backend.label(batch)
    assert seen == [2]  # the boxless image never reached SAM
    assert len(made) == 2  # nor its pre-processing (issue 11, case 6)
    # one decoder call per image, on that image's embeddings alone (SAM-HQ: its early ones too)
    assert decoded == [({1}, kind == "sam_hq")] * 2
    (per_image,) = segs
    masks, lows, scores, post = zip(*per_image, strict=True)
    assert masks[1] == [] and lows[1] is None and post[1] is None  # no boxes: no masks, no logits
    assert [s.shape for s in scores] == [(2,), (0,), (1,)]  # one mask score per box
    assert [s.dtype for s in scores] == [np.float32] * 3
    assert len(outs[1].instances) == 0
    for o, n in zip(outs, (2, 0, 1), strict=True):
        inst = o.instances  # masks and probabilities inside their windows
        assert len(inst) <= n and inst.to_instances().masks.shape[1:] == (40, 48)
        for m, p in zip(inst.masks, inst.probs, strict=True):
            assert p.shape == m.mask.shape and p.dtype == np.float16
            # logits > 0; probabilities are their fp16 sigmoid
            assert np.all(p[m.mask] >= 0.5) and np.all(p[~m.mask] <= 0.5)
        assert set(inst.prompts) <= {"bicycle", "bike"}
        assert np.all((inst.mask_scores >= 0) & (inst.mask_scores <= 1))


def test_cli_on_synthetic_dataset(tiny_models, tmp_path):
    from engine.synth import SynthConfig, generate

    data = generate(
        SynthConfig(out=tmp_path / "synth", train=2, val=1, test=1, size=(128, 96), seed=0),
        progress=False,
    )
    out = tmp_path / "run"
    args = _label_args(
        data, out, tiny_models, "--split", "train,val", "--segmenter", str(tiny_models["sam2"])
    )
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = read_jsonl(out / "manifest.jsonl")
    assert sorted(r["split"] for r in recs) == ["train", "train", "val"]
    for r in recs:
        assert (r["height"], r["width"]) == (96, 128)
        assert read_label(out / "labels" / r["split"] / f"{r['stem']}.png").shape == (96, 128)
    assert not (out / "labels" / "test").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["backend"]["models"]["segmenter"]["class"] == "Sam2Model"


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_killed_process_leaves_consistent_run(tiny_models, tmp_path, sig):
    """Kill a real `engine label` process mid-run: logged images are complete, rerun finishes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    data = _write_dataset(tmp_path / "data", {"train": 12})
    out = tmp_path / "run"
    args = _label_args(data, out, tiny_models)
    args[args.index("--batch-size") + 1] = "1"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # SIGINT as Ctrl-C delivers it: a shell without job control starts background commands with
    # SIGINT ignored, and a child inherits that (pytest run as `pytest -m slow &` saw the run
    # finish untouched)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *args], cwd=root, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and len(read_jsonl(out / "manifest.jsonl")) < 2:
        time.sleep(0.05)
    proc.send_signal(getattr(signal, sig))
    rc = proc.wait(60)
    recs = read_jsonl(out / "manifest.jsonl")
    assert 2 <= len(recs) < 12, "the run finished before it could be killed"
    if sig == "SIGINT":
        assert rc == 130
    for r in recs:
        assert r["status"] == "ok"
        assert read_label(out / "labels" / "train" / f"{r['stem']}.png").shape == (40, 48)
        read_instances(out / "instances" / "train" / f"{r['stem']}.json")
    for png in out.rglob("*.png"):  # no torn PNG anywhere, logged or not
        assert np.array(Image.open(png)).shape == (40, 48)
    res = subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=root, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    final = read_jsonl(out / "manifest.jsonl")
    assert len({r["stem"] for r in final}) == 12
    assert len(final) == 12  # nothing logged twice: the rerun did only the missing images


@pytest.mark.gpu
def test_cuda_autocast_run(tiny_models, dataset, tmp_path):
    out = tmp_path / "run"
    args = _label_args(dataset, out, tiny_models, "--tiles", "2x2")
    args[args.index("--device") + 1] = "cuda"
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["backend"]["models"]["autocast"] in ("bfloat16", "float16")
    assert all(r["status"] == "ok" for r in read_jsonl(out / "manifest.jsonl"))


def test_labelling_a_fused_dataset_of_the_class_says_to_label_its_source(tmp_path):
    """``engine label --class Bicycle --data FUSED`` said only "class 'Bicycle' is already in
    the taxonomy": a fused dataset holds the class's fused pseudo labels; the source is to be
    labelled. A plain dataset whose taxonomy has the class says what it said."""
    from annotations.taxonomy import MASS13K
    from labeler.run import plan_items
    from tests.loop_helpers import make_dataset

    data = tmp_path / "fused"
    make_dataset(data, n=1)
    MASS13K.with_new_class("Bicycle").save(data / "taxonomy.json")
    (data / "dataset.yaml").write_text("taxonomy: taxonomy.json\n")
    with pytest.raises(ValueError) as e:
        plan_items(_cfg(data, tmp_path / "run"))
    assert str(e.value) == (
        f"dataset {data}: class 'Bicycle' is already in the taxonomy (as 'Bicycle')"
    )
    (data / "fuse.json").write_text("{}")
    with pytest.raises(ValueError) as e:
        plan_items(_cfg(data, tmp_path / "run"))
    assert str(e.value).endswith(
        "; it is a fused dataset (engine fuse), which holds the class's fused pseudo labels: "
        f"label the dataset it was fused from (engine info {data} names it)"
    )
