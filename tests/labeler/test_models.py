"""Real-checkpoint facts the tiny test models must reproduce (issue 11, cases 1, 7, 10)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from labeler.models import keep_prompt_encoder_fp32, load_segmenter


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    from labeler.testing import save_tiny_detector, save_tiny_segmenter

    root = tmp_path_factory.mktemp("models11")
    return {
        "det": save_tiny_detector(root / "det"),
        "sam": save_tiny_segmenter(root / "sam", "sam"),
        "sam_hq": save_tiny_segmenter(root / "sam_hq", "sam_hq"),
        "sam2_video": save_tiny_segmenter(root / "sam2_video", "sam2_video"),
    }


def test_case1_sam2_video_checkpoint_loads_as_sam2(tiny):
    """facebook/sam2.1-hiera-* carry model_type "sam2_video"; it loads as Sam2Model with every
    image-model weight of the checkpoint."""
    from transformers import Sam2VideoModel

    assert json.loads((tiny["sam2_video"] / "config.json").read_text())["model_type"] == (
        "sam2_video"
    )
    seg = load_segmenter(str(tiny["sam2_video"]))
    assert type(seg.model).__name__ == "Sam2Model" and seg.model_type == "sam2_video"
    ref = Sam2VideoModel.from_pretrained(tiny["sam2_video"]).state_dict()
    got = seg.model.state_dict()
    assert got and all(torch.equal(v, ref[k]) for k, v in got.items())
    assert hasattr(seg.processor, "image_processor")


def test_case10_tiny_vocabulary_has_berts_separator_ids(tiny):
    """Grounding DINO masks attention per phrase at ids 101, 102, 1012 ("."), 1029: the tiny
    tokenizer must give "." id 1012 so the tests exercise that masking."""
    import inspect

    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor
    from transformers.models.grounding_dino import modeling_grounding_dino as gd

    tok = AutoProcessor.from_pretrained(tiny["det"]).tokenizer
    ids = tok(["bicycle. bike. motorcycle."], return_tensors="pt")["input_ids"]
    assert ids[0, 0] == 101 and ids[0, -1] == 102
    assert (ids[0] == 1012).sum() == 3
    masks_of = gd.generate_masks_with_special_tokens_and_transfer_map
    if "special_tokens" in inspect.signature(masks_of).parameters:  # a model buffer (later 5.x)
        model = AutoModelForZeroShotObjectDetection.from_pretrained(tiny["det"]).model
        special = model.special_tokens
        mask, _ = masks_of(ids, special)
    else:  # a module constant (5.17 and earlier)
        special = torch.tensor(gd.SPECIAL_TOKENS)
        mask, _ = masks_of(ids)
    assert sorted(special.tolist()) == [101, 102, 1012, 1029]
    # "bicycle" (position 1) attends to itself, not to "bike" (position 3): phrases are apart
    assert bool(mask[0, 1, 1]) and not bool(mask[0, 1, 3])


@pytest.mark.parametrize("kind", ["sam", "sam_hq"])
def test_case7_positional_encoding_stays_fp32_under_autocast(tiny, kind):
    """Under bf16 autocast the prompt encoder's Fourier features equal the fp32 ones exactly
    (CPU autocast shows the same bf16 matmul as CUDA)."""
    seg = load_segmenter(str(tiny[kind]))
    model = seg.model
    boxes = torch.tensor([[[3.3, 7.1, 40.2, 51.9], [10.0, 2.5, 60.7, 33.3]]])
    with torch.no_grad():
        ref_sparse, _ = model.prompt_encoder(
            input_points=None, input_labels=None, input_boxes=boxes, input_masks=None
        )
        ref_pos = model.get_image_wide_positional_embeddings()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lossy, _ = model.prompt_encoder(
                input_points=None, input_labels=None, input_boxes=boxes, input_masks=None
            )
        assert not torch.equal(lossy.float(), ref_sparse)  # bf16 loses precision there
        keep_prompt_encoder_fp32(model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            sparse, _ = model.prompt_encoder(
                input_points=None, input_labels=None, input_boxes=boxes, input_masks=None
            )
            pos = model.get_image_wide_positional_embeddings()
    assert sparse.dtype == torch.float32 and torch.equal(sparse, ref_sparse)
    assert torch.equal(pos, ref_pos)


@pytest.mark.parametrize("kind", ["sam", "sam_hq", "sam2_video"])
def test_case7_both_backends_keep_the_encodings_fp32_under_autocast_only(tiny, kind, monkeypatch):
    """Under autocast (a CUDA device: ``resolve_dtype`` not None) grounded-sam's segmenter and
    ``--refine``'s keep SAM / SAM-HQ's positional encodings fp32 (case 7); in fp32 (the CPU)
    nothing is wrapped, nor is SAM 2, which has no such phase."""
    import labeler.grounded_sam as gs
    import labeler.refine as rf
    from labeler.config import ClassSpec, LabelConfig
    from labeler.models import load_detector

    cfg = LabelConfig(
        data="unused", cls=ClassSpec("Bicycle", prompts=("bicycle",)), detector=str(tiny["det"]),
        segmenter=str(tiny[kind]), refine=str(tiny[kind]),
    )  # fmt: skip
    detector = load_detector(str(tiny["det"]))
    for dtype in (None, torch.bfloat16):
        monkeypatch.setattr(gs, "resolve_dtype", lambda *a, d=dtype: d)
        monkeypatch.setattr(rf, "resolve_dtype", lambda *a, d=dtype: d)
        backend = gs.GroundedSamBackend(cfg, class_id=7)
        backend.setup(detector, load_segmenter(str(tiny[kind])), "cpu")
        refined = rf.RefinedBackend(backend, cfg)
        refined.setup(load_segmenter(str(tiny[kind])), "cpu")
        assert backend.dtype is dtype and refined.refiner.dtype is dtype
        expect = dtype is not None and kind != "sam2_video"
        for seg in (backend.segmenter, refined.refiner.segmenter):
            for name in ("prompt_encoder", "shared_image_embedding"):
                module = getattr(seg.model, name, None)
                assert getattr(module, "_mass_fp32", False) is expect, (dtype, name)


def test_grounded_sam_label_before_load_is_a_runtime_error():
    from labeler.config import ClassSpec, LabelConfig
    from labeler.grounded_sam import GroundedSamBackend

    cfg = LabelConfig(data="unused", cls=ClassSpec("Bicycle", prompts=("bicycle",)))
    with pytest.raises(RuntimeError, match=r"GroundedSamBackend.label called before load\(\)"):
        GroundedSamBackend(cfg, class_id=7).label([])


@pytest.mark.gpu
def test_case7_bf16_masks_match_fp32_on_gpu():
    """A ViT-B-sized random SAM on CUDA: mask IoU between fp32 and bf16-autocast runs, with the
    positional encodings in bf16 (before) and kept fp32 (after): after is at least as close."""
    from transformers import SamConfig, SamModel

    from labeler.models import autocast

    torch.manual_seed(0)
    model = SamModel(SamConfig()).eval().cuda()
    pixels = torch.randn(1, 3, 1024, 1024, device="cuda")
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(32, 2, generator=g) * 800
    wh = 50 + torch.rand(32, 2, generator=g) * 170
    boxes = torch.cat([xy, xy + wh], 1)[None].cuda()

    def masks(dtype):
        with torch.no_grad(), autocast("cuda", dtype):
            out = model(pixel_values=pixels, input_boxes=boxes, multimask_output=False)
        return out.pred_masks[0, :, 0].float() > 0

    def iou(a, b):
        return ((a & b).sum((1, 2)).float() / (a | b).sum((1, 2)).clamp(min=1).float()).mean()

    ref = masks(None)
    before = iou(ref, masks(torch.bfloat16))
    keep_prompt_encoder_fp32(model)
    after = iou(ref, masks(torch.bfloat16))
    print(f"mask IoU fp32 vs bf16: positional encodings bf16 {before:.4f}, fp32 {after:.4f}")
    assert float(after) >= float(before) - 1e-3 and float(after) >= 0.8


# -- a machine that cannot reach the hub -----------------------------------------------------------
@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """The hub's host does not resolve, and any HTTP request huggingface_hub makes fails the test
    (its retries would wait 23 s a file); ``HF_HUB_OFFLINE`` is unset and the cache is empty."""
    import socket

    from huggingface_hub import constants

    from labeler import models

    def unresolved(address, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise socket.gaierror(-2, "Name or service not known")

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", *models.PROXY_VARIABLES):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(models.hub.socket, "create_connection", unresolved)
    requests = _requests_recorded(monkeypatch, tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as imported without them (conftest)
    models.hub_unreachable.cache_clear()
    yield Path(constants.HF_HUB_CACHE)
    models.hub_unreachable.cache_clear()
    assert requests == [], "huggingface_hub made an HTTP request"
    assert constants.HF_HUB_OFFLINE is False  # a load's offline is restored after it


def _requests_recorded(monkeypatch, tmp_path) -> list[tuple]:
    """Every HTTP session huggingface_hub asks for, recorded and refused. Its own code catches
    the refusal where it asks for extras (the agent registry of ``build_hf_headers``, read
    before any file, ``local_files_only`` or not), so the list is checked, not the error; that
    registry's answer, kept for the process and a day on disk, is forgotten first."""
    import huggingface_hub.utils._http as hf_http
    from huggingface_hub import constants

    requests: list[tuple] = []

    def no_request(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        requests.append(args)
        raise AssertionError("huggingface_hub made an HTTP request")

    monkeypatch.setattr(hf_http, "get_session", no_request)
    try:  # huggingface_hub 2.4; an older one asks for no registry
        from huggingface_hub.utils import _detect_agent
    except ImportError:
        pass
    else:
        monkeypatch.setattr(_detect_agent, "_registry", None, raising=False)
    monkeypatch.setattr(
        constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agents.json"), raising=False
    )
    return requests


def _cache(hub: Path, repo: str, saved: Path, commit: str = "c" * 40) -> None:
    """``saved`` laid out as the Hugging Face cache holds ``repo`` at ``commit`` on main."""
    import shutil

    entry = hub / ("models--" + repo.replace("/", "--"))
    shutil.copytree(saved, entry / "snapshots" / commit)
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)


def test_cached_hub_ids_load_without_the_hub(tiny, no_hub, caplog):
    """Offline without HF_HUB_OFFLINE: cached weights load at once, from the cache only, and the
    log says why (before: 8 minutes of retries on transformers' optional processor files)."""
    from labeler.models import load_detector

    _cache(no_hub, "some-org/tiny-det", tiny["det"])
    _cache(no_hub, "some-org/tiny-sam", tiny["sam"])
    with caplog.at_level("WARNING", logger="labeler.models"):
        det = load_detector("some-org/tiny-det")
        seg = load_segmenter("some-org/tiny-sam")
    assert det.model_type == "grounding-dino" and seg.model_type == "sam"
    assert det.revision == "c" * 40  # the run record's commit, from the cache's refs/main
    assert load_segmenter("some-org/tiny-sam", revision="c" * 40).revision == "c" * 40
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1  # checked once per process
    assert "huggingface.co cannot be reached" in said[0] and "cache only" in said[0]


def test_uncached_hub_id_without_the_hub_is_one_clear_line(no_hub):
    from labeler.models import load_detector

    with pytest.raises(FileNotFoundError) as e:
        load_detector("some-org/not-cached")
    text = str(e.value)
    assert "\n" not in text and text.startswith("some-org/not-cached: detector weights not found")
    assert "the hub could not be reached (huggingface.co: Name or service not known)" in text
    assert "HF_HUB_OFFLINE=1" in text


def test_a_long_lived_process_sees_the_hub_come_back(no_hub, monkeypatch, caplog):
    """A notebook that found the hub unreachable once (the network not up yet) read the cache
    only until it restarted: the answer was kept for the process's life. It holds for
    HUB_RECHECK_S now (one command's loads ask once), then the hub is asked again."""
    import socket

    from labeler import models

    with caplog.at_level("WARNING", logger="labeler.models"):
        assert models.hub_unreachable() == "huggingface.co: Name or service not known"
        with monkeypatch.context() as m:  # asked again while it stays unreachable: not said again
            m.setattr(models.hub, "HUB_RECHECK_S", 0.0, raising=False)
            assert models.hub_unreachable() == "huggingface.co: Name or service not known"
            assert len(caplog.records) == 1
        asked = []

        def reached(address, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            asked.append(address)
            return socket.socket()  # closed at once by the probe

        monkeypatch.setattr(models.hub.socket, "create_connection", reached)  # the network is back
        assert models.hub_unreachable() is not None and not asked  # within one command: kept
        monkeypatch.setattr(models.hub, "HUB_RECHECK_S", 0.0, raising=False)  # ... and later
        assert models.hub_unreachable() is None and asked == [("huggingface.co", 443)]
    assert len(caplog.records) == 1  # the first answer's warning, not one per question


@pytest.fixture
def hub_not_checked(monkeypatch, tmp_path):
    """``HF_HUB_OFFLINE`` unset, and any connection to check the hub, or HTTP request of
    huggingface_hub, fails the test."""
    from labeler import models

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the hub was checked")

    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as imported without them (conftest)
    monkeypatch.setattr(models.hub.socket, "create_connection", refuse)
    requests = _requests_recorded(monkeypatch, tmp_path)
    models.hub_unreachable.cache_clear()
    yield models
    models.hub_unreachable.cache_clear()
    assert requests == [], "huggingface_hub made an HTTP request"


@pytest.mark.parametrize(
    ("source", "is_path"),
    [
        ("sam-vit-base", False),  # a hub name
        ("IDEA-Research/grounding-dino-tiny", False),  # owner/name: a hub id while no such folder
        ("models/sam", False),
        ("models/sam/v2", True),  # two slashes: no hub id has them
        ("./sam", True),
        ("/opt/sam", True),
        ("~/sam", True),
        ("models\\sam", True),  # a Windows path
    ],
)
def test_looks_like_path_tells_hub_ids_from_paths(source, is_path, tmp_path, monkeypatch):
    from labeler.models import looks_like_path

    monkeypatch.chdir(tmp_path)
    assert looks_like_path(source) is is_path
    (tmp_path / "sam-vit-base").mkdir()  # anything that exists is a path, whatever its spelling
    (tmp_path / "models" / "sam").mkdir(parents=True)
    assert looks_like_path(source) is (is_path or source in ("sam-vit-base", "models/sam"))


def test_local_files_only_never_checks_the_hub(hub_not_checked, monkeypatch, tmp_path):
    """A load told ``local_files_only`` that misses says so, without probing the hub to explain a
    miss that never asked it (nor advising HF_HUB_OFFLINE, which it already has in effect)."""
    from huggingface_hub import constants

    probed, real = [], hub_not_checked.hub_unreachable

    def probe() -> str | None:  # the fixture's refusal alone: swallowed by the loaders' except
        probed.append(True)
        return real()

    probe.cache_clear = real.cache_clear
    # where the loaders call it: labeler.models.weights bound it when imported, so a patch of
    # the package's name reached no load (before, probed stayed empty whatever a load did)
    monkeypatch.setattr(hub_not_checked.weights, "hub_unreachable", probe)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError) as e:
        hub_not_checked.load_detector("some-org/not-cached", local_only=True)
    assert probed == []
    text = str(e.value)
    assert "\n" not in text and text.startswith("some-org/not-cached: detector weights not found")
    assert "the hub was not contacted (local_files_only is set)" in text
    assert "HF_HUB_OFFLINE=1" not in text


@pytest.mark.parametrize(
    ("hf_hub_offline", "transformers_offline", "said"),
    [
        (None, "1", "TRANSFORMERS_OFFLINE"),
        ("", "true", "TRANSFORMERS_OFFLINE"),  # empty: huggingface_hub reads the other one
        ("ON", "0", "HF_HUB_OFFLINE"),
        ("0", "1", None),  # HF_HUB_OFFLINE=0 wins: huggingface_hub asks the hub
    ],
)
def test_transformers_offline_counts_as_the_hub_does(
    hub_not_checked, monkeypatch, tmp_path, hf_hub_offline, transformers_offline, said
):
    """huggingface_hub is offline with ``TRANSFORMERS_OFFLINE=1`` too; before, the labeler read
    only ``HF_HUB_OFFLINE``, probed the hub (here: the fixture's refusal) and, on a machine
    without internet, warned that it could not be reached and advised ``HF_HUB_OFFLINE=1``."""
    from huggingface_hub import constants

    models = hub_not_checked
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    if hf_hub_offline is not None:
        monkeypatch.setenv("HF_HUB_OFFLINE", hf_hub_offline)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", transformers_offline)
    if said is None:
        assert models.offline() is False
        return
    with pytest.raises(FileNotFoundError) as e:
        models.load_detector("some-org/not-cached")
    text = str(e.value)
    assert f"the hub was not contacted ({said} is set)" in text
    assert f"any run without {said} and local_files_only" in text
    assert "HF_HUB_OFFLINE=1" not in text


@pytest.mark.parametrize(
    ("hf_hub_offline", "transformers_offline", "said", "without"),
    [
        (
            "1",
            "1",
            "HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE are set",
            "HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE",
        ),
        ("yes", "0", "HF_HUB_OFFLINE is set", "HF_HUB_OFFLINE"),
        ("", "on", "TRANSFORMERS_OFFLINE is set", "TRANSFORMERS_OFFLINE"),
    ],
)
def test_a_model_not_cached_offline_names_every_variable_that_keeps_the_hub_off(
    hub_not_checked, monkeypatch, tmp_path, hf_hub_offline, transformers_offline, said, without
):
    """With both variables set, a run without only ``HF_HUB_OFFLINE`` (the one named before) is
    still offline: both are named."""
    from huggingface_hub import constants

    models = hub_not_checked
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", hf_hub_offline)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", transformers_offline)
    with pytest.raises(FileNotFoundError) as e:
        models.load_detector("some-org/not-cached")
    text = str(e.value)  # the reason between: transformers' words
    assert text[: text.index(") (") + 1] == (
        f"some-org/not-cached: detector weights not found: looked in the Hugging Face cache "
        f"{tmp_path / 'hub'} and the hub was not contacted ({said})"
    )
    assert text[text.index(". Fix: ") + 2 :] == (
        "Fix: download them once with internet access (`hf download some-org/not-cached` or any run "
        f"without {without} and local_files_only), or set HF_HOME to a cache that holds them, "
        "or pass a local directory saved with save_pretrained (--detector DIR)."
    )


def test_the_hub_imported_offline_is_offline_whatever_the_variables_say_now(
    hub_not_checked, monkeypatch, tmp_path
):
    """huggingface_hub reads the variables once, at its import; a notebook that unset them (or
    set ``HF_HUB_OFFLINE=0``) since still has an offline hub. Before, the labeler read them only:
    it checked the hub (here: the fixture's refusal) and asked huggingface_hub to download."""
    from huggingface_hub import constants

    models = hub_not_checked
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(FileNotFoundError) as e:
        models.load_detector("some-org/not-cached")
    text = str(e.value)  # the reason between: transformers' words
    assert text[: text.index(") (") + 1] == (
        f"some-org/not-cached: detector weights not found: looked in the Hugging Face cache "
        f"{tmp_path / 'hub'} and the hub was not contacted (huggingface_hub was imported with "
        "HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set)"
    )
    assert text[text.index(". Fix: ") + 2 :] == (
        "Fix: download them once with internet access (`hf download some-org/not-cached` or any run without "
        "HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE and local_files_only), or set HF_HOME to a cache "
        "that holds them, or pass a local directory saved with save_pretrained (--detector DIR)."
    )


def test_local_paths_and_proxies_are_not_checked(tiny, hub_not_checked, monkeypatch):
    """A local directory never needs the hub; behind a proxy a direct connection says nothing."""
    models = hub_not_checked
    assert models.load_detector(str(tiny["det"])).model_type == "grounding-dino"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert models.hub_unreachable() is None


def test_a_pinned_revision_is_read_and_recorded(tiny, no_hub, tmp_path):
    """``engine label --detector-revision C``: the pinned snapshot, not refs/main, is loaded, and
    run.json records its commit."""
    import json

    from typer.testing import CliRunner

    from cli import app
    from tests.labeler.test_sam3 import write_dataset

    _cache(no_hub, "some-org/tiny-det", tiny["det"], commit="a" * 40)
    pinned = no_hub / "models--some-org--tiny-det" / "snapshots" / ("b" * 40)
    pinned.mkdir()
    for f in tiny["det"].iterdir():
        (pinned / f.name).write_bytes(f.read_bytes())
    _cache(no_hub, "some-org/tiny-sam", tiny["sam"])
    write_dataset(tmp_path / "data", {"train": 1})
    res = CliRunner().invoke(
        app,
        [
            "label", "--class", "Bicycle", "--data", str(tmp_path / "data"), "--no-progress",
            "--out", str(tmp_path / "run"), "--detector", "some-org/tiny-det",
            "--detector-revision", "b" * 40, "--segmenter", "some-org/tiny-sam",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    models = record["backend"]["models"]
    assert models["detector"]["revision"] == "b" * 40
    assert models["segmenter"]["revision"] == "c" * 40
    assert record["config"]["detector_revision"] == "b" * 40


def test_a_checkpoint_given_in_the_other_role_is_one_line_naming_its_model_type(tiny):
    """A SAM directory as --detector, or Grounding DINO as --segmenter (swapped flags): refused
    before any weight is read, naming the folder and what it holds."""
    from labeler.models import load_detector

    with pytest.raises(ValueError, match=r"sam: detector must be a Grounding DINO .* 'sam'$"):
        load_detector(str(tiny["sam"]))
    with pytest.raises(ValueError, match=r"det: segmenter must be a SAM.* 'grounding-dino'$"):
        load_segmenter(str(tiny["det"]))


def test_a_truncated_weights_file_is_one_line_naming_it(tiny, tmp_path):
    """A download cut short: one line naming the file and what to do, not safetensors' traceback
    ("incomplete metadata"); a ValueError, so the command exits 2."""
    import shutil

    from labeler.models import load_detector

    for role, key, load in (
        ("segmenter", "sam", load_segmenter),
        ("detector", "det", load_detector),
    ):
        folder = shutil.copytree(tiny[key], tmp_path / key)
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        with pytest.raises(ValueError) as err:
            load(str(folder))
        assert str(err.value).startswith(f"{weights}: cannot read the {role} weights (")
        assert str(err.value).endswith(
            "the download may be incomplete: delete it and download again"
        )


def test_device_and_precision_errors_say_what_to_give():
    from labeler.models import resolve_device, resolve_dtype

    assert resolve_device("cpu") == "cpu" and resolve_dtype("auto", "cpu") is None
    with pytest.raises(
        ValueError, match="--device 'tpu' is not a device; use auto, cpu, cuda or cuda:N"
    ):
        resolve_device("tpu")
    with pytest.raises(ValueError, match=r"--precision bf16 needs a CUDA device \(got cpu\)"):
        resolve_dtype("bf16", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="--device cuda:1: CUDA is not available"):
            resolve_device("cuda:1")


def test_a_detector_folder_without_its_tokenizer_files_is_refused(tiny, tmp_path):
    """config.json, weights and processor_config.json copied without the tokenizer files: the
    folder loads (transformers builds an empty BERT tokenizer) and every prompt word became
    [UNK], so the run labelled with a text the model never saw. Now one line before any image."""
    import shutil

    from labeler.config import ClassSpec, LabelConfig
    from labeler.grounded_sam import GroundedSamBackend

    folder = tmp_path / "det"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "processor_config.json"):
        shutil.copy(tiny["det"] / name, folder / name)
    spec = ClassSpec("Bicycle", prompts=("bicycle", "bike"))
    cfg = LabelConfig(
        data="unused", cls=spec, detector=str(folder), segmenter=str(tiny["sam"]), device="cpu"
    )
    with pytest.raises(ValueError, match=r"det: the tokenizer knows no word of prompts \['bicy"):
        GroundedSamBackend(cfg, class_id=7).load()
    whole = LabelConfig(
        data="unused", cls=spec, detector=str(tiny["det"]), segmenter=str(tiny["sam"])
    )
    GroundedSamBackend(whole, class_id=7).load()  # the full folder loads as before


def test_prompts_longer_than_the_detectors_text_are_refused(tiny):
    """More prompt tokens than the detector's max_text_len (256 for the released models, 32
    for the tiny one): transformers cut the text, and every image failed with "The size of
    tensor a (38) must match the size of tensor b (32)". Now one line before any image."""
    from labeler.config import ClassSpec, LabelConfig
    from labeler.grounded_sam import GroundedSamBackend

    words = ("bicycle", "bike", "motorcycle", "car", "person", "thing", "a bike", "a car")
    spec = ClassSpec("Bicycle", prompts=(*words, "a thing", "a person", "bike bike", "car car"))
    cfg = LabelConfig(
        data="unused", cls=spec, detector=str(tiny["det"]), segmenter=str(tiny["sam"])
    )
    GroundedSamBackend(cfg, class_id=7).load()  # 32 tokens: the most it reads
    longer = ClassSpec("Bicycle", prompts=spec.prompts, negatives=("a motorcycle",))
    cfg = LabelConfig(
        data="unused", cls=longer, detector=str(tiny["det"]), segmenter=str(tiny["sam"])
    )
    with pytest.raises(ValueError, match=r"det: the prompts and negatives make 35 text tokens, "):
        GroundedSamBackend(cfg, class_id=7).load()


def test_the_prompts_are_checked_before_the_segmenter_loads(tiny, monkeypatch):
    """The prompts' checks need the detector's tokenizer and config alone: a text too long for
    it is refused before the segmenter (SAM ViT-H: 2.5 GB) is loaded; before, after it."""
    import labeler.grounded_sam as gs
    from labeler.config import ClassSpec, LabelConfig

    loaded = []
    real = gs.load_segmenter
    monkeypatch.setattr(gs, "load_segmenter", lambda *a, **k: loaded.append(a) or real(*a, **k))
    words = ("bicycle", "bike", "motorcycle", "car", "person", "thing", "a bike", "a car")
    prompts = (*words, "a thing", "a person", "bike bike", "car car")
    spec = ClassSpec("Bicycle", prompts=prompts, negatives=("a motorcycle",))  # 35 > 32 tokens
    cfg = LabelConfig(
        data="unused", cls=spec, detector=str(tiny["det"]), segmenter=str(tiny["sam"])
    )
    with pytest.raises(ValueError, match=r"det: the prompts and negatives make 35 text tokens"):
        gs.GroundedSamBackend(cfg, class_id=7).load()
    assert loaded == []
    # prompts it reads: the segmenter loads after them, once, and the text is the one checked
    ok = dataclasses.replace(cfg, cls=ClassSpec("Bicycle", prompts=prompts))
    backend = gs.GroundedSamBackend(ok, class_id=7)
    info = backend.load()
    assert len(loaded) == 1 and info["detector_text"] == backend.text


def test_a_model_folder_whose_name_is_not_utf8_is_named_not_called_broken(tiny, tmp_path):
    """Weights copied under a folder named on a latin-1 system (``m\\xe9``): safetensors opens
    UTF-8 paths only, and the whole weights were said to be "cannot read the detector weights
    (Path ... is not valid UTF-8); the download may be incomplete: delete it and download
    again". One line naming the folder, its cause and the way round it; nothing deleted."""
    import os
    import shutil

    from labeler.models import load_detector

    for role, key, load in (
        ("segmenter", "sam", load_segmenter),
        ("detector", "det", load_detector),
    ):
        folder = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"m\xe9", key.encode()))
        shutil.copytree(tiny[key], folder)
        with pytest.raises(ValueError) as err:
            load(folder)
        said = str(err.value)
        assert said.startswith(f"{tmp_path}/m\\udce9/{key}: the {role}'s path is not UTF-8"), said
        assert said.endswith(f"give a symbolic link to it of a UTF-8 name (--{role} LINK)")
        link = tmp_path / f"link-{key}"
        link.symlink_to(folder)
        assert load(str(link)) is not None  # the way round it the line gives


def test_a_damaged_tokenizer_file_is_one_line_naming_the_folder(tiny, tmp_path):
    """A tokenizer.json whose vocabulary holds a null id (a file damaged or edited by hand):
    the tokenizers library's TypeError traceback ("failed to extract enum PyVocab") named no
    file. One line naming the folder and what to do; a ValueError, so the command exits 2.
    Found by fuzzing."""
    import json
    import shutil

    from labeler.models import load_detector

    folder = shutil.copytree(tiny["det"], tmp_path / "det")
    doc = json.loads((folder / "tokenizer.json").read_text())
    doc["model"]["vocab"][next(iter(doc["model"]["vocab"]))] = None
    (folder / "tokenizer.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError) as err:
        load_detector(str(folder))
    said = str(err.value)
    assert said.startswith(f"{folder}: cannot read the detector's files (TypeError: "), said
    assert "is damaged, of another model, or of another transformers version than " in said
    assert said.endswith("; delete it and download again"), said


@pytest.mark.parametrize(
    "processor, shape, resized",
    [  # Grounding DINO's defaults (800, 1333): a long side under 2666 times the short one
        ("dino", (1, 2665), (1, 2665)),  # round(1333 / 2665) = 1 = its height: kept as is
        ("dino", (1, 2666), (0, 1333)),
        ("dino", (2, 5331), (1, 1333)),
        ("dino", (5332, 2), (1333, 0)),
        ("dino", (700, 1), (1333, 2)),  # round(1333 / 700) = 2
        # SAM's (longest_edge 1024): at most 2048 times
        ("sam", (1, 2048), (1, 1024)),
        ("sam", (1, 2049), (0, 1024)),
        ("sam", (6144, 3), (1024, 1)),
        ("sam", (6145, 3), (1024, 0)),
    ],
)
def test_resized_size_is_the_processors_own(processor, shape, resized):
    """:func:`resized_size` rounds as transformers' processors do: where it says 0 px across,
    the processor fails ("Size must contain 'height' and 'width' keys"), elsewhere it gives that
    size; :func:`refuse_too_thin` refuses exactly those."""
    from transformers import GroundingDinoImageProcessor, SamImageProcessor

    from labeler.models import ImageTooThin, preprocess, refuse_too_thin, resized_size

    proc = GroundingDinoImageProcessor() if processor == "dino" else SamImageProcessor()
    assert resized_size(proc, *shape)[:2] == resized
    image = np.zeros((*shape, 3), np.uint8)
    if min(resized) == 0:
        with pytest.raises(ValueError, match="Size must contain"):
            preprocess(proc, image)
        with pytest.raises(ImageTooThin, match=rf"^x\.png is {shape[0]}x{shape[1]} px \(HxW\)"):
            refuse_too_thin(proc, shape, "x.png", "detector")
        return
    got = preprocess(proc, image)
    if processor == "dino":
        assert tuple(got["pixel_values"].shape[-2:]) == resized
    else:
        assert tuple(got["reshaped_input_sizes"][0].tolist()) == resized
    refuse_too_thin(proc, shape, "x.png", "detector")


def test_a_processor_that_does_not_resize_refuses_no_image_as_too_thin():
    """``do_resize=False`` keeps an image's size: Grounding DINO's processor preprocesses a
    1x3000 image as it is, which :func:`refuse_too_thin` refused ("resizes it to 0x1333 px")
    from the processor's size settings alone."""
    from transformers import GroundingDinoImageProcessor

    from labeler.models import preprocess, refuse_too_thin, resized_size

    proc = GroundingDinoImageProcessor(do_resize=False)
    got = preprocess(proc, np.zeros((1, 3000, 3), np.uint8))
    assert tuple(got["pixel_values"].shape) == (1, 3, 1, 3000)
    assert resized_size(proc, 1, 3000) is None
    refuse_too_thin(proc, (1, 3000, 3), "x.png", "detector")  # no ImageTooThin


@pytest.mark.parametrize(
    "kind, changed, makes",
    [
        ("sam", {"size": {"longest_edge": 32}, "pad_size": {"height": 32, "width": 32}}, "32x32"),
        ("sam2_video", {"size": {"height": 64, "width": 64}}, "64x64"),
        ("sam2_video", {"do_resize": False}, "6x8"),  # SAM 2 keeps the image's own size
        ("sam", {"do_pad": False}, "48x64"),  # SAM's resized 6x8 px probe, not padded square
    ],
)
def test_a_segmenter_whose_processor_is_not_its_models_size_is_refused_at_load(
    tiny, tmp_path, kind, changed, makes
):
    """A checkpoint folder whose processor settings are another size than its model's
    (``size``, ``pad_size``, ``do_resize``, ``do_pad`` in processor_config.json, e.g. copied
    from another model or edited): the boxes are scaled to the processor's frame and the model
    reads them in its own, so the load refuses it in one line naming the folder and both sizes.
    Before, it loaded, and every image with a box failed in SAM's encoder ("Input image size
    (32*32) doesn't match model (64*64)") or, for SAM 2, deep in the mask decoder ("view size
    is not compatible with input tensor's size and stride")."""
    import shutil

    folder = tmp_path / kind
    shutil.copytree(tiny[kind], folder)
    path = folder / "processor_config.json"
    doc = json.loads(path.read_text())
    doc["image_processor"].update(changed)
    path.write_text(json.dumps(doc))
    size = 64 if kind == "sam" else 128
    with pytest.raises(ValueError) as err:
        load_segmenter(str(folder))
    said = str(err.value)
    assert said.startswith(f"{folder}: its processor makes {makes} px inputs and its model "), said
    assert f"reads {size}x{size} px" in said and "\n" not in said, said


def test_a_sam_processor_that_pads_without_resizing_loads(tiny, tmp_path):
    """SAM's processor with ``do_resize`` false still pads every image to the model's square:
    not refused at load (an image up to that size is labelled in its own pixels,
    tests/labeler/test_frames.py)."""
    from labeler.testing import copy_without_resize

    seg = load_segmenter(str(copy_without_resize(tiny["sam"], tmp_path / "sam")))
    assert seg.processor.image_processor.do_resize is False


def test_a_sam2_video_checkpoint_loads_without_transformers_note(tiny, capfd):
    """transformers logs "You are using a model of type `sam2_video` to instantiate a model of
    type `sam2`" for every hub SAM 2.1 checkpoint (expected: the video-memory weights are left
    out); the load silences its logger for that one call only, and leaves the caller's
    verbosity as it was."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    load_segmenter(str(tiny["sam2_video"]))
    assert "to instantiate a model of type" not in capfd.readouterr().err
    assert hf_logging.get_verbosity() == level


@pytest.mark.parametrize(
    ("exists", "reason"), [(False, "no such directory"), (True, "no config.json in it")]
)
def test_a_local_folder_without_a_checkpoint_says_what_is_missing(tmp_path, exists, reason):
    """A folder given as a checkpoint that is not there, or holds no config.json, is one line
    saying which, before transformers is asked (whose reason would be its own words)."""
    from labeler.models import load_detector

    folder = tmp_path / "models" / "sam"
    if exists:
        folder.mkdir(parents=True)
    for role, load in (("segmenter", load_segmenter), ("detector", load_detector)):
        with pytest.raises(FileNotFoundError) as err:
            load(str(folder))
        said = str(err.value)
        assert said.startswith(
            f"{folder}: {role} weights not found: looked in the local path {folder} ({reason}). "
        ), said


def test_from_pretrained_failures_keep_their_first_line_and_unknown_ones_go_through(tmp_path):
    """:func:`labeler.models._from_pretrained`'s one-line errors carry the first line of the
    library's reason, cut at 160 characters; an error of a kind it does not know (here a
    RuntimeError) is raised as it is, never swallowed into a load of nothing."""
    from labeler.models import _from_pretrained

    folder = tmp_path / "sam"
    folder.mkdir()

    def load(error: Exception) -> None:
        class Loader:
            @staticmethod
            def from_pretrained(*args, **kwargs):  # noqa: ANN002, ANN003, ANN205
                raise error

        _from_pretrained("segmenter", Loader, str(folder), None, True)

    with pytest.raises(FileNotFoundError) as err:
        load(OSError(f"{'x' * 200}\nsecond line"))
    assert f"({'x' * 160}). Fix: " in str(err.value) and "second line" not in str(err.value)
    with pytest.raises(ValueError, match=r": cannot read the segmenter's files \(KeyError: 'a'\)"):
        load(KeyError("a"))
    with pytest.raises(RuntimeError, match="^size mismatch$"):
        load(RuntimeError("size mismatch"))


def test_the_broken_weights_file_named_is_the_one_safetensors_cannot_open(tmp_path):
    """A folder of sharded weights, one shard cut short, or a cut ``model.safetensors`` beside a
    ``pytorch_model.bin``: the file named is the cut one (the ``.bin`` is not opened as
    safetensors); with no cut file among several, none is named (the folder is, by the caller)."""
    from safetensors.torch import save_file

    from labeler.models import _broken_weights

    def save(path: Path, cut: bool = False) -> Path:
        save_file({"w": torch.zeros(64)}, str(path))
        if cut:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path

    shards = tmp_path / "shards"
    shards.mkdir()
    save(shards / "model-00001-of-00002.safetensors")
    cut = save(shards / "model-00002-of-00002.safetensors", cut=True)
    assert _broken_weights(str(shards), None) == str(cut)
    save(cut)  # made whole: two files, none broken
    assert _broken_weights(str(shards), None) is None
    beside = tmp_path / "beside"
    beside.mkdir()
    cut = save(beside / "model.safetensors", cut=True)
    torch.save({"w": torch.zeros(4)}, beside / "pytorch_model.bin")
    assert _broken_weights(str(beside), None) == str(cut)


def test_an_image_of_the_pad_size_is_not_over_it():
    """A SAM processor that does not resize pads an image of exactly its pad size (nothing to
    pad) and fails one a pixel taller or wider ("Padding dimensions are negative"):
    :func:`refuse_over_pad` refuses exactly those, and never an image for a processor that
    resizes or does not pad."""
    from transformers import SamImageProcessor

    from labeler.models import CropOverPad, ImageOverPad, preprocess, refuse_over_pad

    pad = {"height": 64, "width": 48}
    proc = SamImageProcessor(do_resize=False, pad_size=pad)
    got = preprocess(proc, np.zeros((64, 48, 3), np.uint8))
    assert tuple(got["pixel_values"].shape[-2:]) == (64, 48)
    refuse_over_pad(proc, (64, 48, 3), "x.png")
    for shape in ((65, 48, 3), (64, 49, 3)):
        with pytest.raises(ValueError, match="Padding dimensions are negative"):
            preprocess(proc, np.zeros(shape, np.uint8))
        with pytest.raises(ImageOverPad, match=rf"^x\.png is {shape[0]}x{shape[1]} px \(HxW\)"):
            refuse_over_pad(proc, shape, "x.png")
    with pytest.raises(CropOverPad, match=r"pads every crop to 64x48 px .* reads a crop at most"):
        refuse_over_pad(proc, (65, 48, 3), "x.png's crop", crop=True)
    refuse_over_pad(SamImageProcessor(pad_size=pad), (2000, 1500, 3), "x.png")  # resizes
    no_pad = SamImageProcessor(do_resize=False, do_pad=False, pad_size=pad)
    refuse_over_pad(no_pad, (2000, 1500, 3), "x.png")


def test_two_loads_in_threads_leave_the_hub_as_it_was_and_an_online_one_online(monkeypatch):
    """``hub_offline`` sets a process-wide flag: two local-only loads in threads, the first
    ending first, left the hub offline for good (the second put back the first's offline, as it
    found it), and a download in a thread beside a local load was refused as offline. Now the
    flag is set by the first local load and restored by the last, and a load that may download
    waits for the local ones to end (and they for it)."""
    import threading

    from huggingface_hub import constants

    from labeler.models import hub_offline

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    seen: dict[str, bool] = {}
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def load(name: str, local: bool, entered: threading.Event, until: threading.Event | None):
        with hub_offline(local):
            entered.set()
            if until is not None:
                until.wait(10)
            seen[name] = constants.HF_HUB_OFFLINE

    a = threading.Thread(target=load, args=("a", True, a_in, b_in), daemon=True)
    b = threading.Thread(target=load, args=("b", True, b_in, a_out), daemon=True)
    a.start()
    assert a_in.wait(10)
    b.start()
    a.join(10)
    a_out.set()
    b.join(10)
    assert seen == {"a": True, "b": True}
    assert constants.HF_HUB_OFFLINE is False  # before: True, the hub offline for the process

    local_in, online_in, release = threading.Event(), threading.Event(), threading.Event()
    local = threading.Thread(target=load, args=("local", True, local_in, release), daemon=True)
    online = threading.Thread(target=load, args=("online", False, online_in, None), daemon=True)
    local.start()
    assert local_in.wait(10)
    online.start()
    assert not online_in.wait(0.2)  # it waits for the local load (before: it ran, offline)
    release.set()
    local.join(10)
    online.join(10)
    assert seen["online"] is False and seen["local"] is True
    assert constants.HF_HUB_OFFLINE is False


def test_the_hub_offline_already_stays_offline_after_a_load_that_failed(monkeypatch):
    """A caller's own offline (``HF_HUB_OFFLINE=1``, or the constant set) is kept, through a
    local-only load and after it, an exception inside the load included."""
    from huggingface_hub import constants

    from labeler.models import hub_offline

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError, match="broken"), hub_offline(True):
        raise OSError("broken")
    assert constants.HF_HUB_OFFLINE is True
    with hub_offline(False):
        assert constants.HF_HUB_OFFLINE is True
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(OSError, match="broken"), hub_offline(True):
        assert constants.HF_HUB_OFFLINE is True
        raise OSError("broken")
    assert constants.HF_HUB_OFFLINE is False
