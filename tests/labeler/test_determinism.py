"""Labels do not depend on batch size, batch mates, workers, writers, shards or resume point
(issue 11, case 4), over a mix of portrait and landscape images with the tiny real models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeler.config import ClassSpec, LabelConfig
from labeler.run import run_labeling

SIZES = [(64, 40), (40, 64), (72, 48), (40, 64), (64, 40), (56, 36)]  # (W, H): mixed shapes
# (no square image: the tiny detector's GroupNorm needs > 1 value at its 1-cell last level)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from labeler.testing import save_tiny_detector, save_tiny_segmenter

    root = tmp_path_factory.mktemp("det_models")
    return {"det": save_tiny_detector(root / "det"), "sam": save_tiny_segmenter(root / "sam")}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(4)
    for split, stems in (("train", range(4)), ("val", range(4, 6))):
        d = root / "images" / split
        d.mkdir(parents=True)
        for i in stems:
            w, h = SIZES[i]
            img = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
            img[h // 4 : h // 2, w // 4 : w // 2] = (230, 30, 30)
            Image.fromarray(img).save(d / f"img{i}.png")
    return root


def _cfg(models, data, out, **kw) -> LabelConfig:
    cls = ClassSpec(
        "Bicycle", prompts=("bicycle", "bike"), negatives=("motorcycle",),
        box_threshold=0.05, text_threshold=0.05,
    )  # fmt: skip
    base = dict(data=str(data), cls=cls, out=str(out), detector=str(models["det"]),
                segmenter=str(models["sam"]), device="cpu", progress=False, tiles=(2, 2))  # fmt: skip
    return LabelConfig(**{**base, **kw})


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for sub in ("labels", "confidence", "instances")
        for p in sorted((out / sub).rglob("*"))
        if p.is_file()
    }


def test_detect_does_not_depend_on_batch_mates(models, mixed):
    """The issue's case: detect([landscape]) vs detect([landscape, portrait]) moved a score by
    0.046 when crops of different shapes were zero-padded into one batch."""
    from labeler.grounded_sam import GroundedSamBackend
    from labeler.models import load_detector, load_segmenter

    backend = GroundedSamBackend(_cfg(models, mixed, "unused", batch_size=8), class_id=7)
    backend.setup(load_detector(str(models["det"])), load_segmenter(str(models["sam"])), "cpu")
    land = np.asarray(Image.open(mixed / "images" / "train" / "img0.png"))
    port = np.asarray(Image.open(mixed / "images" / "train" / "img1.png"))
    alone = backend.detect([land])[0]
    mixed_batch = backend.detect([land, port])[0]
    assert len(alone) > 0
    np.testing.assert_array_equal(alone.scores, mixed_batch.scores)
    np.testing.assert_array_equal(alone.xyxy, mixed_batch.xyxy)


def test_labels_identical_across_batching_shards_and_resume(models, mixed, tmp_path):
    ref = run_labeling(_cfg(models, mixed, tmp_path / "ref", batch_size=1, workers=1, writers=1))
    assert ref.labelled == 6 and not ref.failed
    expect = _files(tmp_path / "ref")
    assert len(expect) == 18 and any(b"segmentation" in v for k, v in expect.items() if "json" in k)

    run_labeling(_cfg(models, mixed, tmp_path / "b3", batch_size=3, workers=2, writers=3))
    assert _files(tmp_path / "b3") == expect
    for i in range(2):  # shards into one run directory
        run_labeling(_cfg(models, mixed, tmp_path / "sh", batch_size=4, shard=(i, 2)))
    assert _files(tmp_path / "sh") == expect
    # resume from a partial run (shard 1/3 done), with another batch size
    run_labeling(_cfg(models, mixed, tmp_path / "res", batch_size=2, shard=(1, 3)))
    s = run_labeling(_cfg(models, mixed, tmp_path / "res", batch_size=5))
    assert (s.skipped, s.labelled) == (2, 4)
    assert _files(tmp_path / "res") == expect
