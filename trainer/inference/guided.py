"""The guided filter (:class:`GuidedFilter`): an edge-aware refinement of each class map,
guided by the colour image at a reduced resolution (:class:`ImageGuide`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from trainer.inference.resize import _to_tensor, upsample_cells

GUIDES = ("rgb", "grey")  # the guided filter's guides: the colour image, its grey level


@dataclass(frozen=True)
class GuidedFilter:
    """Guided filtering of the class scores with the image as guide (He et al. 2013), computed
    at a reduced resolution and applied at the output's (He & Sun, "Fast Guided Filter", 2015).

    In every ``(2 r + 1)``-pixel square window the scores are fitted as a linear function of the
    guide's colour ``I`` (RGB in 0..1, or its grey level): ``p ~ a . I + b`` by ridge regression,
    ``a = (cov(I) + eps U)^-1 cov(I, p)``; each pixel takes the mean of the fits of the windows
    that hold it. Where the image is flat this is a box blur; across an edge of colour the
    scores step with the edge. Windows are clipped at the image border (means over the pixels
    inside). With ``subsample`` s > 1 the fits are made on the guide and the scores resized to
    1/s of the output size (antialiased bilinear) with radius ``round(r / s)``, and the window
    means of ``a`` and ``b`` are upsampled (bilinear) and applied to the full-resolution guide:
    the cost of the windows falls by s^2, while the output still follows the image's edges
    pixel by pixel. ``subsample=1`` is the exact filter at the output resolution.
    """

    radius: int = 0  # window radius in output pixels; 0: 8 x the upsampling factor from the
    # class maps (the H'/2 cells the resized image spans) to the output: 16 when predicting at
    # the image's own size. The model's boundary errors reach several mask cells (docs/trainer.md)
    eps: float = 1e-4  # ridge regulariser of cov(I), guide values in 0..1: colour differences
    # well above sqrt(eps) (1%) steer the scores
    guide: str = "rgb"  # "rgb": the colour image (He et al.'s colour guided filter); "grey"
    subsample: int = 0  # fits at 1/subsample of the output size; 0: 2 x the upsampling factor
    # (4 at the image's own size); 1: the exact filter at the output resolution.
    # The defaults were chosen on the demo's training and validation images (precise classes),
    # never on its test images (docs/rounds.md, twelfth round)

    def __post_init__(self) -> None:
        for name in ("radius", "subsample"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"guided filter {name} must be an integer >= 0, got {value!r}")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"guided filter eps must be a positive number, got {self.eps!r}")
        if self.guide not in GUIDES:
            raise ValueError(
                f"guided filter guide must be one of {', '.join(GUIDES)}, got {self.guide!r}"
            )

    def resolve(self, out_hw: tuple[int, int], cells: tuple[float, float]) -> tuple[int, int]:
        """``(radius, subsample)`` with 0 resolved from the upsampling factor from the class
        maps' ``cells`` (the ``h' / 2 x w' / 2`` cells the resized image spans) to ``out_hw``
        (rounded, at least 1). Not the ``ceil(h' / 2)`` grid: on an odd side its half-padded
        cell lowered the factor (a 31 px image predicted at 41 px: 31 / 21 = 1.48 -> 1, not
        31 / 20.5 = 1.51 -> 2), before the fifty-seventh round."""
        factor = max(1, int(max(out_hw[0] / cells[0], out_hw[1] / cells[1]) + 0.5))
        return self.radius or 8 * factor, self.subsample or 2 * factor

    def image_guide(
        self, image: np.ndarray, cells: tuple[float, float], device: torch.device
    ) -> ImageGuide:
        """The guide for ``image`` (H, W, 3) uint8 RGB and class maps over which the resized
        image spans ``cells`` (:meth:`resolve`)."""
        radius, subsample = self.resolve(image.shape[:2], cells)
        return ImageGuide(image, radius, self.eps, device, self.guide == "rgb", subsample)


def check_guided_filter(guided: GuidedFilter | None, mode: str) -> None:
    """``ValueError`` for a guided filter outside the efficient mode."""
    if guided is not None and mode != "efficient":
        raise ValueError("the guided filter needs mode 'efficient', not 'full'")


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the ``(2 radius + 1)``-square window around each pixel of ``(N, C, H, W)``,
    the window clipped at the border (only pixels inside are counted). Rows, then columns: the
    clipped count is a product too, and the cost grows with the radius, not its square (3.5x
    faster than one square pooling at radius 8 on a 4096x3072 map, level at radius 2)."""
    k = 2 * radius + 1
    rows = F.avg_pool2d(x, (1, k), stride=1, padding=(0, radius), count_include_pad=False)
    return F.avg_pool2d(rows, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)


def _resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize, antialiased when shrinking; the same size is returned as is."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    shrink = hw[0] < x.shape[-2] or hw[1] < x.shape[-1]
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=shrink)


class ImageGuide:
    """The image as a guide (:class:`GuidedFilter`): its window statistics at the working
    resolution, computed once per image and shared by every class map.

    ``colour``: the RGB image (3 channels; ``a`` is a colour vector, the 3x3 systems solved
    per window); otherwise its grey level (cv2's weights). ``subsample``: the working resolution
    is the output's divided by it (rounded up), the radius ``max(1, round(radius /
    subsample))`` there; 1 is the exact filter."""

    def __init__(
        self,
        image: np.ndarray,
        radius: int,
        eps: float,
        device: torch.device,
        colour: bool = False,
        subsample: int = 1,
    ) -> None:
        if colour:
            self.full = _to_tensor(image, device) / 255.0  # (1, C, H, W)
        else:
            grey = torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)).to(device)
            self.full = grey[None, None].float() / 255.0
        h, w = image.shape[:2]
        self.out_hw = (h, w)
        self.work_hw = (-(-h // subsample), -(-w // subsample))
        self.radius = radius if subsample == 1 else max(1, int(radius / subsample + 0.5))
        self.guide = guide = _resize(self.full, self.work_hw)
        self.mean = box_mean(guide, self.radius)
        c = guide.shape[1]
        # cov(I) + eps U, inverted once: (C, C, h, w), symmetric
        cov = torch.empty(c, c, *self.work_hw, device=device)
        for i in range(c):
            for j in range(i, c):
                cij = box_mean(guide[:, i : i + 1] * guide[:, j : j + 1], self.radius)
                cij = cij - self.mean[:, i : i + 1] * self.mean[:, j : j + 1]
                cov[i, j] = cov[j, i] = cij[0, 0] + (eps if i == j else 0.0)
        if c == 1:
            self.inverse = 1.0 / cov
        else:
            self.inverse = torch.linalg.inv(cov.permute(2, 3, 0, 1)).permute(2, 3, 0, 1)

    def filter(
        self,
        p: torch.Tensor,
        cells: tuple[float, float] | None = None,
        mirrored: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(1, 1, h, w)`` scores at any resolution (resized to the working one; ``cells``:
        how many cells of the grid the image spans, :func:`upsample_cells`; None: all of them)
        -> the guided-filtered scores at the output resolution ``(1, 1, H, W)``, float32.
        ``mirrored``: scores of the mirrored image (the same shape) added to ``p``, mirrored
        at the working resolution, whose grid spans the image exactly."""
        p = self._working(p, cells)
        if mirrored is not None:
            p = p + self._working(mirrored, cells).flip(-1)  # not in place: p may be the input
        r = self.radius
        mean_p = box_mean(p, r)
        cov_ip = box_mean(self.guide * p, r) - self.mean * mean_p  # (1, C, h, w)
        a = (self.inverse * cov_ip).sum(1)[None]  # row i: sum_j inverse[i, j] cov_ip[j]
        b = mean_p - (a * self.mean).sum(1, keepdim=True)
        # in place (the same values): one full-size C-channel map alive, not two, and no
        # full-size sum beside the result
        out = _resize(box_mean(a, r), self.out_hw).mul_(self.full).sum(1, keepdim=True)
        return out.add_(_resize(box_mean(b, r), self.out_hw))

    def _working(self, p: torch.Tensor, cells: tuple[float, float] | None) -> torch.Tensor:
        """``p`` resized to the working resolution as the image it spans (:meth:`filter`)."""
        if cells is None or tuple(cells) == tuple(p.shape[-2:]):  # even sides: as before
            return _resize(p.float(), self.work_hw)
        shrink = self.work_hw[0] < p.shape[-2] or self.work_hw[1] < p.shape[-1]
        return upsample_cells(p.float(), self.work_hw, cells, antialias=shrink)
