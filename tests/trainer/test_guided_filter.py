"""The guided filter of `engine predict --guided-filter`: its definition, what it does to a
boundary beside an image edge, its settings, and its wiring through predict_label / the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trainer.inference import GuidedFilter, ImageGuide, box_mean, predict_label
from trainer.models import create_model

CPU = torch.device("cpu")


def _reference(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s definition, window by window: in each window w_k (clipped at the border) fit
    p ~ a_k I + b_k by ridge regression; each pixel averages a_k I_i + b_k over the windows that
    hold it."""
    h, w = guide.shape

    def win(y: int, x: int) -> tuple[slice, slice]:
        return slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1)

    a, b = np.zeros_like(guide), np.zeros_like(guide)
    for y in range(h):
        for x in range(w):
            i, q = guide[win(y, x)], p[win(y, x)]
            a[y, x] = ((i * q).mean() - i.mean() * q.mean()) / (i.var() + eps)
            b[y, x] = q.mean() - a[y, x] * i.mean()
    out = np.zeros_like(guide)
    for y in range(h):
        for x in range(w):
            out[y, x] = a[win(y, x)].mean() * guide[y, x] + b[win(y, x)].mean()
    return out


@pytest.mark.parametrize(("r", "eps"), [(1, 1e-4), (2, 1e-3), (3, 1e-2)])
def test_guided_filter_is_he_et_al_window_by_window(r: int, eps: float) -> None:
    rng = np.random.default_rng(r)
    image = rng.integers(0, 256, (11, 14, 3), dtype=np.uint8)
    p = rng.random((11, 14)).astype(np.float64)
    grey = image.astype(np.float64) @ [0.299, 0.587, 0.114]  # cv2's RGB2GRAY weights
    want = _reference(np.round(grey) / 255.0, p, r, eps)
    got = ImageGuide(image, r, eps, CPU).filter(torch.from_numpy(p).float()[None, None])
    np.testing.assert_allclose(got[0, 0].numpy(), want, atol=2e-4)


def _step_image(edge: int, width: int = 24) -> np.ndarray:
    image = np.full((8, width, 3), 51, np.uint8)
    image[:, edge:] = 204
    return image


def _boundary(class1: torch.Tensor, class0: torch.Tensor) -> int:
    """The first column where class 1 wins."""
    return int((class1 > class0)[0, 0, 0].int().argmax())


@pytest.mark.parametrize("crossing", [7.5, 8.5, 10.5, 11.0, 11.5])
def test_a_blurred_boundary_moves_to_the_image_edge(crossing: float) -> None:
    """Two classes whose upsampled scores ramp across an image edge at column 10, their 0.5
    crossing a pixel or two off it: after the filter the label boundary is on the edge or
    closer to it, never farther."""
    x = torch.arange(24).float()
    s1 = torch.sigmoid((x - crossing) / 2).expand(8, 24)[None, None]
    s0 = 1 - s1
    guide = ImageGuide(_step_image(10), 2, 1e-4, CPU)
    before, after = _boundary(s1, s0), _boundary(guide.filter(s1), guide.filter(s0))
    assert abs(after - 10) <= abs(before - 10) and before != 10
    if abs(before - 10) == 1:
        assert after == 10


def test_on_a_flat_image_the_filter_is_a_double_box_mean() -> None:
    p = torch.rand(1, 1, 9, 13, generator=torch.Generator().manual_seed(0))
    flat = np.full((9, 13, 3), 90, np.uint8)
    got = ImageGuide(flat, 2, 1e-4, CPU).filter(p)
    torch.testing.assert_close(got, box_mean(box_mean(p, 2), 2))


def test_settings() -> None:
    assert GuidedFilter().resolve_radius((384, 512), (192, 256)) == 2  # predicted at own size
    assert GuidedFilter().resolve_radius((3072, 4096), (384, 512)) == 8  # a 4K image at 1024
    assert GuidedFilter(radius=3).resolve_radius((384, 512), (192, 256)) == 3
    for bad in ({"radius": -1}, {"radius": 1.5}, {"radius": True}):
        with pytest.raises(ValueError, match="radius must be an integer >= 0"):
            GuidedFilter(**bad)
    for eps in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps must be a positive number"):
            GuidedFilter(eps=eps)


def test_predict_label_with_the_filter() -> None:
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=4)
    image = np.random.default_rng(0).integers(0, 256, (48, 70, 3), dtype=np.uint8)
    label = predict_label(model, image, size=None, guided_filter=GuidedFilter())
    assert label.shape == (48, 70) and label.dtype == np.uint8 and label.max() < 4
    with pytest.raises(ValueError, match="guided filter needs mode 'efficient'"):
        predict_label(model, image, size=None, mode="full", guided_filter=GuidedFilter())


def test_engine_predict_guided_filter(tmp_path) -> None:
    """`engine predict --guided-filter` labels the images and records its settings; a bad eps
    is one line naming the problem, before the model loads."""
    from PIL import Image
    from typer.testing import CliRunner

    from annotations.taxonomy import MASS13K
    from cli import app
    from tests.model_helpers import save_model

    model = create_model("tiny", len(MASS13K))
    ckpt = tmp_path / "m.pt"
    save_model(ckpt, model, MASS13K, step=3)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 56, 3), np.uint8)).save(
        images / "a.png"
    )
    out = tmp_path / "pred"
    args = ["predict", "--checkpoint", str(ckpt), "--images", str(images), "--out", str(out)]
    common = ["--size", "56x40", "--device", "cpu", "--no-progress"]
    res = CliRunner().invoke(app, [*args, *common, "--guided-filter", "--gf-radius", "3"])
    assert res.exit_code == 0, res.output
    assert (out / "a.png").exists()
    config = json.loads((out / "predict.json").read_text())["config"]
    assert config["guided_filter"] is True and config["gf_radius"] == 3
    assert config["gf_eps"] == 1e-4
    bad = tmp_path / "bad"
    res = CliRunner().invoke(
        app, [*args[:-1], str(bad), *common, "--guided-filter", "--gf-eps", "0"]
    )
    assert res.exit_code != 0 and "eps must be a positive number" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not bad.exists()
    res = CliRunner().invoke(app, [*args[:-1], str(bad), *common, "--gf-radius", "4"])
    assert res.exit_code != 0 and "turn it on (--guided-filter)" in res.output
    assert not bad.exists()
