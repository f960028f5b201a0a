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


def _reference_coefficients(
    guide: np.ndarray, p: np.ndarray, r: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """He et al.'s definition, window by window: in each window w_k (clipped at the border) fit
    p ~ a_k . I + b_k by ridge regression on the guide's C channels; return the window means of
    a (H, W, C) and b (H, W) over the windows that hold each pixel."""
    h, w, c = guide.shape

    def win(y: int, x: int) -> tuple[slice, slice]:
        return slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1)

    a, b = np.zeros((h, w, c)), np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            i, q = guide[win(y, x)].reshape(-1, c), p[win(y, x)].reshape(-1)
            cov = np.cov(i, rowvar=False, bias=True).reshape(c, c)
            cov_ip = (i * q[:, None]).mean(0) - i.mean(0) * q.mean()
            a[y, x] = np.linalg.solve(cov + eps * np.eye(c), cov_ip)
            b[y, x] = q.mean() - a[y, x] @ i.mean(0)
    mean_a, mean_b = np.zeros_like(a), np.zeros_like(b)
    for y in range(h):
        for x in range(w):
            mean_a[y, x] = a[win(y, x)].reshape(-1, c).mean(0)
            mean_b[y, x] = b[win(y, x)].mean()
    return mean_a, mean_b


def _reference(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """The exact guided filter: each pixel's averaged fit applied to its own guide value."""
    guide = guide[..., None] if guide.ndim == 2 else guide
    mean_a, mean_b = _reference_coefficients(guide, p, r, eps)
    return (mean_a * guide).sum(-1) + mean_b


def _grey(image: np.ndarray) -> np.ndarray:
    return np.round(image.astype(np.float64) @ [0.299, 0.587, 0.114]) / 255.0  # cv2's weights


@pytest.mark.parametrize(("r", "eps"), [(1, 1e-4), (2, 1e-3), (3, 1e-2)])
def test_grey_guided_filter_is_he_et_al_window_by_window(r: int, eps: float) -> None:
    rng = np.random.default_rng(r)
    image = rng.integers(0, 256, (11, 14, 3), dtype=np.uint8)
    p = rng.random((11, 14)).astype(np.float64)
    want = _reference(_grey(image), p, r, eps)
    got = ImageGuide(image, r, eps, CPU).filter(torch.from_numpy(p).float()[None, None])
    np.testing.assert_allclose(got[0, 0].numpy(), want, atol=2e-4)


@pytest.mark.parametrize(("r", "eps"), [(1, 1e-3), (2, 1e-4), (3, 1e-2)])
def test_colour_guided_filter_is_he_et_al_window_by_window(r: int, eps: float) -> None:
    """The colour guide: a is a colour vector, one 3x3 ridge system per window."""
    rng = np.random.default_rng(10 + r)
    image = rng.integers(0, 256, (10, 13, 3), dtype=np.uint8)
    p = rng.random((10, 13)).astype(np.float64)
    want = _reference(image / 255.0, p, r, eps)
    guide = ImageGuide(image, r, eps, CPU, colour=True)
    got = guide.filter(torch.from_numpy(p).float()[None, None])
    np.testing.assert_allclose(got[0, 0].numpy(), want, atol=5e-4)


def test_on_a_grey_image_the_colour_filter_is_the_grey_one_with_a_third_of_eps() -> None:
    """R = G = B: cov(I) is singular but for eps, the worst case of the 3x3 solve. The colour
    fit then reduces to the grey one, with a = cov(g, p) / (var(g) + eps / 3) on each channel."""
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (12, 15), dtype=np.uint8)
    image = np.repeat(grey[..., None], 3, axis=2)
    p = torch.rand(1, 1, 12, 15, generator=torch.Generator().manual_seed(2))
    for eps in (1e-4, 1e-2):
        got = ImageGuide(image, 2, eps, CPU, colour=True).filter(p)
        want = ImageGuide(image, 2, eps / 3, CPU).filter(p)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("colour", [True, False])
def test_fast_filter_fits_at_the_reduced_size_and_applies_at_the_full_one(colour: bool) -> None:
    """subsample s: the exact fits on the guide and the scores shrunk to ceil(H/s) x ceil(W/s)
    (antialiased bilinear), radius round(r / s); their window means upsampled (bilinear) and
    applied to the full-resolution guide. Scores may come at any size (mask resolution)."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (22, 27, 3), dtype=np.uint8)
    p = torch.rand(1, 1, 11, 14, generator=torch.Generator().manual_seed(1))  # a mask-size map
    r, s, eps = 4, 2, 1e-3
    full = image / 255.0 if colour else _grey(image)[..., None]
    full_t = torch.from_numpy(full).float().permute(2, 0, 1)[None]
    small = lambda x: torch.nn.functional.interpolate(  # noqa: E731
        x, size=(11, 14), mode="bilinear", align_corners=False, antialias=True
    )
    guide_small = small(full_t)[0].permute(1, 2, 0).double().numpy()
    mean_a, mean_b = _reference_coefficients(guide_small, p[0, 0].double().numpy(), r // s, eps)
    up = lambda x: torch.nn.functional.interpolate(  # noqa: E731
        torch.from_numpy(x).float(), size=(22, 27), mode="bilinear", align_corners=False
    )
    want = (up(mean_a.transpose(2, 0, 1)[None]) * full_t).sum(1) + up(mean_b[None, None])[0]
    got = ImageGuide(image, r, eps, CPU, colour=colour, subsample=s).filter(p)
    assert got.shape == (1, 1, 22, 27)
    torch.testing.assert_close(got[0], want, atol=5e-4, rtol=0)


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


def test_a_colour_edge_of_one_grey_level_moves_the_boundary_only_with_the_colour_guide() -> None:
    """Red beside green of the same grey level: invisible to the grey guide, which then blurs
    (the boundary stays off the edge), while the colour guide puts it on the edge."""
    image = np.zeros((8, 24, 3), np.uint8)
    image[:, :10] = (200, 60, 0)
    green = round((0.299 * 200 + 0.587 * 60) / 0.587)
    image[:, 10:] = (0, green, 0)
    assert len(np.unique(_grey(image))) == 1
    x = torch.arange(24).float()
    s1 = torch.sigmoid((x - 10.5) / 2).expand(8, 24)[None, None]
    s0 = 1 - s1
    assert _boundary(s1, s0) == 11  # a pixel off the edge
    for colour, want in ((True, 10), (False, 11)):
        guide = ImageGuide(image, 2, 1e-4, CPU, colour=colour)
        assert _boundary(guide.filter(s1), guide.filter(s0)) == want


@pytest.mark.parametrize("colour", [True, False])
def test_on_a_flat_image_the_filter_is_a_double_box_mean(colour: bool) -> None:
    p = torch.rand(1, 1, 9, 13, generator=torch.Generator().manual_seed(0))
    flat = np.full((9, 13, 3), 90, np.uint8)
    got = ImageGuide(flat, 2, 1e-4, CPU, colour=colour).filter(p)
    torch.testing.assert_close(got, box_mean(box_mean(p, 2), 2))


def test_settings() -> None:
    assert GuidedFilter().resolve((384, 512), (192, 256)) == (16, 4)  # predicted at own size
    assert GuidedFilter().resolve((3072, 4096), (384, 512)) == (64, 16)  # a 4K image at 1024
    assert GuidedFilter(radius=3, subsample=1).resolve((384, 512), (192, 256)) == (3, 1)
    guide = GuidedFilter().image_guide(np.zeros((384, 512, 3), np.uint8), (192, 256), CPU)
    assert (guide.radius, guide.work_hw, guide.full.shape[1]) == (4, (96, 128), 3)
    guide = GuidedFilter(radius=5, guide="grey", subsample=3).image_guide(
        np.zeros((100, 200, 3), np.uint8), (50, 100), CPU
    )
    assert (guide.radius, guide.work_hw, guide.full.shape[1]) == (2, (34, 67), 1)
    for name in ("radius", "subsample"):
        for value in (-1, 1.5, True):
            with pytest.raises(ValueError, match=f"{name} must be an integer >= 0"):
                GuidedFilter(**{name: value})
    with pytest.raises(ValueError, match="guide must be one of rgb, grey"):
        GuidedFilter(guide="lab")
    for eps in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps must be a positive number"):
            GuidedFilter(eps=eps)


def test_predict_label_with_the_filter() -> None:
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=4)
    image = np.random.default_rng(0).integers(0, 256, (48, 70, 3), dtype=np.uint8)
    for gf in (GuidedFilter(), GuidedFilter(radius=2, guide="grey", subsample=1)):
        label = predict_label(model, image, size=None, guided_filter=gf)
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
    assert (config["gf_eps"], config["gf_guide"], config["gf_subsample"]) == (1e-4, "rgb", 0)
    exact = ["--guided-filter", "--gf-guide", "grey", "--gf-subsample", "1", "--overwrite"]
    res = CliRunner().invoke(app, [*args, *common, *exact])
    assert res.exit_code == 0, res.output
    config = json.loads((out / "predict.json").read_text())["config"]
    assert (config["gf_guide"], config["gf_subsample"]) == ("grey", 1)
    bad = tmp_path / "bad"
    res = CliRunner().invoke(
        app, [*args[:-1], str(bad), *common, "--guided-filter", "--gf-eps", "0"]
    )
    assert res.exit_code != 0 and "eps must be a positive number" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not bad.exists()
    for option in (["--gf-radius", "4"], ["--gf-guide", "grey"], ["--gf-subsample", "1"]):
        res = CliRunner().invoke(app, [*args[:-1], str(bad), *common, *option])
        assert res.exit_code != 0, res.output
        line = f"{' '.join(option)} only sets the guided filter, which is off: add --guided-filter"
        assert line in res.output and len(res.output.strip().splitlines()) == 1
        assert not bad.exists()
    res = CliRunner().invoke(
        app, [*args[:-1], str(bad), *common, "--gf-radius", "4", "--gf-eps", "0.01"]
    )
    assert "--gf-radius 4, --gf-eps 0.01 only set the guided filter" in res.output
    res = CliRunner().invoke(
        app, [*args[:-1], str(bad), *common, "--guided-filter", "--gf-guide", "lab"]
    )
    assert res.exit_code != 0 and "guide must be one of rgb, grey" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not bad.exists()
