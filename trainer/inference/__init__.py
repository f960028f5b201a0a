"""Whole-image MaSSFormer inference: one uint8 RGB image in, one uint8 label map out.

Two modes:

* ``"full"`` reproduces the release's inference step for step (mmseg ``Resize(scale=(4096,
  3072), keep_ratio=True)`` with cv2 bilinear on uint8; ImageNet normalisation; zero padding
  of the normalised image; one whole-image fp32 forward; the Q final masks of the *padded*
  image bilinearly resized to the *unpadded* resized size; softmax without no-object x
  sigmoid, summed over queries; the padding cropped again (the release's quirk: with padding,
  the maps are stretched then cropped); bilinear resize to the original size; argmax). Its
  memory grows with Q x H' x W' (5 GB at 4096x3072).
* ``"efficient"`` (default): the per-class map is formed at mask resolution (H'/2) of the
  unpadded image, and only the K class channels are upsampled to the original size, one class
  at a time with a running argmax (bf16 autocast on CUDA). It differs from ``"full"`` in where
  the mask sigmoid sits relative to the upsampling and, with padding, in the crop (efficient
  crops the padding exactly). Labels differ along class boundaries only (docs/model.md).

Optional in the efficient mode: :class:`GuidedFilter`, an edge-aware refinement of each class
map guided by the colour image (He et al., "Guided Image Filtering", TPAMI 2013; computed at a
reduced resolution as in He & Sun, "Fast Guided Filter", 2015), so that label boundaries follow
the image's edges rather than the bilinear ramps of the H'/2 maps. Not part of the release's
inference; off by default (docs/trainer.md, ``engine predict``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engine.text import MAX_TTA_SCALE
from trainer.models.layers import release_kernels
from trainer.models.massformer import MIN_SIDE, MaSSFormer, semantic_inference

MODES = ("efficient", "full")
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


def check_sliding_window(sliding_window: bool, mode: str) -> None:
    """``ValueError`` for a sliding window outside the efficient mode."""
    if sliding_window and mode != "efficient":
        raise ValueError("--sliding-window needs --mode efficient, not full")


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


def resized_shape(height: int, width: int, size: tuple[int, int] | None) -> tuple[int, int]:
    """``(h, w)`` after resizing keeping the aspect ratio into ``size`` = ``(long, short)``
    as mmseg's ``Resize(scale=size, keep_ratio=True)`` (mmcv ``rescale_size``): the scale is
    the smaller of long/max(h, w) and short/min(h, w), so a landscape or portrait image both
    fit 4096x3072 (or 3072x4096); sides are rounded half up (``int(x * scale + 0.5)``).
    ``None`` keeps the size."""
    if size is None:
        return height, width
    long_side, short_side = max(size), min(size)
    scale = min(long_side / max(height, width), short_side / min(height, width))
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def smallest_size(w: int, h: int) -> tuple[int, int]:
    """The smallest ``(W, H)`` inference size the model takes for a ``w x h`` image: the one that
    brings its short side to :data:`MIN_SIDE` px, its aspect kept (a refused image names it;
    ``engine train`` suggests it as ``--val-size`` for images under :data:`MIN_SIDE` px)."""
    long_side = math.ceil(max(w, h) * MIN_SIDE / min(w, h))
    return (long_side, MIN_SIDE) if w >= h else (MIN_SIDE, long_side)


def size_refusal(
    width: int, height: int, size: tuple[int, int] | None, option: str | None = None
) -> str | None:
    """Why a ``width x height`` image cannot be predicted at ``size`` (the model needs
    :data:`MIN_SIDE` px a side after resizing); None: it can be. ``option`` names the size in
    the words the user gave it (``engine predict``: ``--size original``, ``--size auto (the
    checkpoint's validation size: 64x32)``) and the fix as ``--size WxH``; None names them as
    :func:`predict_label`'s argument (``size=None``). The one check of both: before, each had
    its own, worded apart ("resized to 64x13 for size=(64, 32)", "... at --size 64x32"); at
    ``size=None`` nothing is resized ("resized to 5x7 for size=None" before the 53rd round)."""
    nh, nw = resized_shape(height, width, size)
    if min(nh, nw) >= MIN_SIDE:
        return None
    named = option or f"size={size}"
    done = f"at {named}" if (nh, nw) == (height, width) else f"resized to {nw}x{nh} at {named}"
    w, h = smallest_size(width, height)
    fix = f"--size {w}x{h} or larger (at" if option else f"a larger size ({w}x{h} or more at"
    return (
        f"image {width}x{height} {done}: the model needs at least {MIN_SIDE} px per side; "
        f"use {fix} its aspect)"
    )


def own_or_smallest_size(w: int, h: int) -> tuple[int, int]:
    """``(w, h)`` where the model takes images of that size, else :func:`smallest_size`: the
    validation size ``engine train`` suggests for images of ``w x h``."""
    return (w, h) if min(w, h) >= MIN_SIDE else smallest_size(w, h)


@torch.inference_mode()
def predict_scores(
    model: MaSSFormer,
    images: torch.Tensor,
    sliding_window: bool = False,
    tile: int = 2048,
    overlap: int = 512,
    amp: bool = True,
) -> torch.Tensor:
    """Per-class scores at mask resolution: ``(B, 3, h, w)`` float RGB 0..255 on the model's
    device -> ``(B, K, ceil(h/2), ceil(w/2))`` float32 (softmax x sigmoid summed over queries).

    ``sliding_window`` runs ``tile x tile`` crops (``overlap`` pixels shared, both even) and
    averages the score maps where crops overlap; memory is then bounded by the tile size.
    bf16 autocast is used on CUDA when ``amp``, where the GPU computes in bf16
    (:func:`engine.devices.bf16_autocast`: fp32 on a T4 or V100, whose bf16 is emulated).
    """
    from engine.devices import bf16_autocast

    device = images.device
    use_amp = bf16_autocast(amp, device)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(x, aux=False)
        return semantic_inference(out["pred_logits"], out["pred_masks"])

    b, _, h, w = images.shape
    if not sliding_window or (h <= tile and w <= tile):
        return run(images)
    if tile % 2 or overlap % 2 or not 0 <= overlap < tile or tile < 32:
        raise ValueError(
            f"sliding window needs even tile >= 32 > even overlap >= 0, got {tile}, {overlap}"
        )
    k = model.config.num_classes
    h2, w2 = -(-h // 2), -(-w // 2)
    acc = torch.zeros(b, k, h2, w2, device=device)
    count = torch.zeros(1, 1, h2, w2, device=device)
    for y0, y1 in _spans(h, tile, tile - overlap):
        for x0, x1 in _spans(w, tile, tile - overlap):
            crop = images[..., y0:y1, x0:x1]
            s = run(crop)
            ys, xs = slice(y0 // 2, y0 // 2 + s.shape[-2]), slice(x0 // 2, x0 // 2 + s.shape[-1])
            acc[..., ys, xs] += s
            count[..., ys, xs] += 1
    return acc.div_(count)


def _spans(length: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` rows (or columns) of the tiles covering ``[0, length)``: even
    starts (the H/2 mask grid of a tile is the image's), ``tile`` long, the last one ending at
    the end. Where ``length - tile`` is odd, the last tile starts one row later and is one row
    short; a 32 px tile, the model's smallest side (:data:`MIN_SIDE`), starts one row earlier
    and is one row long instead (before, the library's 32 px tile failed there: "images must be
    at least 32x32, got 32x31"). Rounding the start down without lengthening the tile would
    leave the last row out."""
    if length <= tile:
        return [(0, length)]
    stops = {start: start + tile for start in range(0, length - tile, stride)}
    last = length - tile
    if last % 2 == 0:
        stops[last] = length
    elif tile - 1 >= MIN_SIDE:
        stops[last + 1] = length
    else:  # over a tile that started there already (a stride of 2)
        stops[last - 1] = length
    return sorted(stops.items())


def autocast_dtype(amp: bool, device_type: str, mode: str) -> str | None:
    """The autocast :func:`predict_label` runs under: ``"bfloat16"`` on CUDA with ``amp`` in
    the efficient mode; None on a CPU and in the full mode, which runs in fp32 whatever ``amp``
    says (``predict.json`` records it: before, a full-mode run on a GPU said bfloat16)."""
    return "bfloat16" if amp and device_type == "cuda" and mode == "efficient" else None


def predict_label(
    model: MaSSFormer,
    image: np.ndarray,
    size: tuple[int, int] | None = (4096, 3072),
    mode: str = "efficient",
    sliding_window: bool = False,
    device: str | torch.device | None = None,
    amp: bool = True,
    tile: int = 2048,
    overlap: int = 512,
    scales: tuple[float, ...] = (1.0,),
    flip: bool = False,
    guided_filter: GuidedFilter | None = None,
) -> np.ndarray:
    """Label one image at its original size.

    Args:
        model: a MaSSFormer (put in eval mode for the call, restored afterwards).
        image: ``(H, W, 3)`` uint8 RGB.
        size: ``(long, short)`` test resolution, e.g. ``(4096, 3072)``; aspect ratio kept
            (see :func:`resized_shape`); ``None`` runs at the original size.
        mode: ``"efficient"`` (class maps at mask resolution, K channels upsampled) or
            ``"full"`` (the release's inference exactly, fp32; see the module docstring).
        sliding_window: tile the resized image (``tile`` px crops, ``overlap`` px shared);
            efficient mode only.
        device: where to run; ``None`` = the model's device (the model is moved otherwise).
        amp: bf16 autocast on CUDA in efficient mode (ignored on CPU and in full mode).
        scales, flip: test-time augmentation (mmseg's multi-scale and flip test), efficient
            mode only: the resized image is run again at each scale (relative to ``size``) and,
            with ``flip``, mirrored left-right; the score maps are brought back to the
            unaugmented mask resolution and averaged before the argmax (:func:`tta_scores`;
            on an odd width the flipped runs' are mirrored at the output's resolution).
            The defaults, ``(1.0,)`` and no flip, are the release's single-scale inference.
        guided_filter: refine each upsampled class map with the image as guide before the
            argmax (:class:`GuidedFilter`), efficient mode only; None: the release's maps.

    Returns ``(H, W)`` uint8 class ids 0..K-1.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if mode not in MODES:
        raise ValueError(f"unknown inference mode {mode!r}; known: {', '.join(MODES)}")
    check_sliding_window(sliding_window, mode)
    scales = check_tta(scales, flip, mode)
    check_guided_filter(guided_filter, mode)
    if model.config.num_classes > 255:
        raise ValueError(
            f"uint8 labels hold at most 255 classes, model has {model.config.num_classes}"
        )
    dev = next(model.parameters()).device
    if device is not None and not _is_on(dev, torch.device(device)):
        model.to(device)  # once: moving (or setting eval mode) walks every module, ~10 ms
        dev = next(model.parameters()).device
    height, width = image.shape[:2]
    if refusal := size_refusal(width, height, size):
        raise ValueError(refusal)
    nh, nw = resized_shape(height, width, size)
    original = image
    was_training = model.training
    switch = any(m.training for m in model.modules())  # not when already in eval mode
    if switch:
        model.eval()
    try:
        with torch.inference_mode():
            if (nh, nw) != (height, width):
                # uint8 bilinear on the host, as mmseg's Resize (cv2) does: a 64 MP input never
                # becomes a 770 MB float tensor or crosses to the GPU at full size.
                image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
            if mode == "full":
                return _full(model, _to_tensor(image, dev), (height, width))
            scores, mirrored = tta_scores(
                model, image, scales, flip, dev, sliding_window, tile, overlap, amp
            )
            guide, cells = None, (nh / 2, nw / 2)
            if guided_filter is not None:
                guide = guided_filter.image_guide(original, cells, scores.device)
            return upsample_argmax(scores, (height, width), guide, cells, mirrored)
    finally:
        if switch:
            model.train(was_training)


def _is_on(dev: torch.device, want: torch.device) -> bool:
    """Whether a model on ``dev`` is on ``want`` (``cuda`` without an index: any GPU's)."""
    return dev.type == want.type and (want.index is None or want.index == dev.index)


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float 0..255 on ``device``."""
    # torch refuses read-only arrays (decoded images are); copy only then.
    host = np.require(image, requirements=["C_CONTIGUOUS", "WRITEABLE"])
    return torch.from_numpy(host).to(device).permute(2, 0, 1)[None].float()


def check_tta(scales: tuple[float, ...] | list[float], flip: bool, mode: str) -> tuple[float, ...]:
    """The test-time scales as a tuple of positive floats; ``ValueError`` for any other scale,
    or for augmentation (a scale other than 1, or flip) outside the efficient mode."""
    out = tuple(float(s) for s in scales)
    if not out or any(not (s > 0 and np.isfinite(s)) for s in out):
        raise ValueError(f"test-time scales must be positive numbers, got {list(scales)}")
    if max(out) > MAX_TTA_SCALE:
        raise ValueError(f"test-time scales must be at most {MAX_TTA_SCALE:g}, got {list(scales)}")
    if (flip or out != (1.0,)) and mode != "efficient":
        raise ValueError(
            "test-time augmentation (a scale other than 1, or flip) needs mode 'efficient', "
            "not 'full'"
        )
    return out


@torch.inference_mode()  # sums in place into predict_scores' inference tensors
def tta_scores(
    model: MaSSFormer,
    image: np.ndarray,
    scales: tuple[float, ...],
    flip: bool,
    device: torch.device,
    sliding_window: bool = False,
    tile: int = 2048,
    overlap: int = 512,
    amp: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean per-class scores over scales x (flip): ``(H, W, 3)`` uint8 RGB (already at the
    test size) -> ``(scores, mirrored)``, each ``(1, K, ceil(H/2), ceil(W/2))`` or None, as
    mmseg's aug test averages them. With ``(1.0,)`` and no flip this is one
    :func:`predict_scores` run, the release's inference, and ``mirrored`` is None.

    Each scale resizes the uint8 image with cv2 bilinear (as mmseg's ``Resize``, sides rounded
    half up, at least 32 px); every map is resized bilinearly to the unaugmented mask
    resolution before the mean, as the image each spans (:func:`upsample_cells`: an odd side's
    half-padded cell is not stretched over, before the fifty-sixth round it was). A flipped
    run's scores are mirrored back where their grid mirrors the image's: on an even width they
    are flipped on the grid (as ever), on an odd width at a scale of an even ``W`` after the
    resize. On an odd ``W`` no grid of ceil(W/2) cells is the mirror of another (the
    half-padded cell changes sides): the flipped runs' share of the mean is ``mirrored``, in
    the mirrored frame, and :func:`upsample_argmax` mirrors it at the output's resolution, as
    mmseg mirrors the logits at the image's size; an image and its mirror image then get
    mirrored labels. Before the fifty-seventh round an odd width's flipped grid was mirrored
    back on the grid and averaged half a cell off the unflipped one."""
    h, w = image.shape[:2]
    out_hw = (-(-h // 2), -(-w // 2))
    total = apart = None  # apart: the flipped runs' sum on an odd width, in the mirrored frame
    runs = 0
    for scale in scales:
        sh, sw = max(32, int(h * scale + 0.5)), max(32, int(w * scale + 0.5))
        scaled = image if (sh, sw) == (h, w) else cv2.resize(image, (sw, sh), cv2.INTER_LINEAR)
        x = _to_tensor(scaled, device)
        for mirrored in (False, True) if flip else (False,):
            s = predict_scores(
                model, x.flip(-1) if mirrored else x, sliding_window, tile, overlap, amp
            )
            back = mirrored and w % 2 == 0  # flipped back here; on an odd w, at the output
            if back and sw % 2 == 0:  # an even grid mirrors the image: the same bytes as ever
                s = s.flip(-1)
            if (sh, sw) != (h, w):  # the image spans sh / 2 cells of s, h / 2 of out_hw
                s = upsample_cells(s, out_hw, (sh / 2, sw / 2), (h / 2, w / 2))
            if back and sw % 2:  # resized in the mirrored frame: out_hw's w / 2 cells mirror
                s = s.flip(-1)
            if mirrored and not back:
                apart = s if apart is None else apart.add_(s)
            else:
                total = s if total is None else total.add_(s)  # in place: the same sums
            runs += 1
    assert total is not None
    if runs == 1:
        return total, None
    return total.div_(runs), None if apart is None else apart.div_(runs)


def upsample_argmax(
    scores: torch.Tensor,
    out_hw: tuple[int, int],
    guide: ImageGuide | None = None,
    cells: tuple[float, float] | None = None,
    mirrored: torch.Tensor | None = None,
) -> np.ndarray:
    """``(1, K, h, w)`` -> ``(H, W)`` uint8 argmax of the bilinear upsampled scores (or of the
    scores guided-filtered with ``guide``), one class at a time (peak memory a few H x W float
    maps, not K); ties go to the lower id like argmax. ``cells``: how many cells of the score
    grid the image spans (:func:`upsample_cells`; None: all of them), for the plain resize
    and the guided filter's alike. ``mirrored``: scores of the mirrored image to add, the same
    shape (:func:`tta_scores`' flipped runs on an odd width), upsampled as the image's and
    mirrored at the output's resolution.

    The ids are set with ``masked_fill_`` through one reused bool mask: indexing with the mask
    (``best_id[better] = k``) made an int64 index of every pixel that changed class, up to
    16 bytes a pixel (201 MB for a 4096x3072 output), more than the float maps themselves."""
    best = best_id = better = None
    for k in range(scores.shape[1]):
        other = None if mirrored is None else mirrored[:, k : k + 1]
        if guide is None:
            up = upsample_cells(scores[:, k : k + 1], out_hw, cells)[0, 0]
            if other is not None:  # the same sums for the image and its mirror image
                up.add_(upsample_cells(other, out_hw, cells)[0, 0].flip(-1))
        else:
            up = guide.filter(scores[:, k : k + 1], cells, other)[0, 0]
        if best is None:
            best, best_id = up, torch.zeros(out_hw, dtype=torch.uint8, device=up.device)
            better = torch.empty(out_hw, dtype=torch.bool, device=up.device)
        else:
            torch.gt(up, best, out=better)
            best_id.masked_fill_(better, k)
            torch.maximum(best, up, out=best)
        del up
    return best_id.cpu().numpy()


def upsample_cells(
    x: torch.Tensor,
    out_hw: tuple[int, int],
    cells: tuple[float, float] | None = None,
    spans: tuple[float, float] | None = None,
    antialias: bool = False,
) -> torch.Tensor:
    """Bilinear resize of ``(N, C, h, w)`` mask-resolution maps to ``out_hw``, where the image
    spans ``cells`` = ``(h' / 2, w' / 2)`` of the grid (``h' x w'`` the resized image; None: the
    whole grid) and ``spans`` pixels of the output (None: all of them; the test-time scales'
    unaugmented grid: ``h / 2`` of ``ceil(h / 2)``). On an odd side the last cell is half
    padding (the model's masks are ``ceil(h' / 2)``): resizing the whole grid onto the image
    stretched it by half a cell, and boundaries moved toward the far edge by up to one resized
    pixel (before the fifty-sixth round). Even sides take the same call as ever (the same
    bytes); an odd one maps output pixel ``y`` to grid coordinate ``(y + 0.5) * cells / spans
    - 0.5``. ``antialias``: as ``F.interpolate``'s (the guided filter shrinks the maps)."""
    h, w = x.shape[-2:]
    spans = out_hw if spans is None else spans
    if cells is None or (tuple(cells) == (h, w) and tuple(spans) == tuple(out_hw)):
        return F.interpolate(
            x, size=out_hw, mode="bilinear", align_corners=False, antialias=antialias
        )
    factors = []
    for out, span, cell, n in zip(out_hw, spans, cells, (h, w), strict=True):
        f = span / cell
        # 88399a9d's factors, the same bytes: its F.interpolate(scale_factor=) sized the output
        # floor(n * f), which n * (out / n) may round below out
        while span == out and math.floor(n * f) < out:
            f = math.nextafter(f, math.inf)
        factors.append(f)
    # aten's op takes the output size and the scales both (F.interpolate takes one): rows past
    # the grid's last centre repeat it, as bilinear does at the border
    op = torch.ops.aten._upsample_bilinear2d_aa if antialias else torch.ops.aten.upsample_bilinear2d
    return op(x, list(out_hw), False, *factors)


def _full(model: MaSSFormer, x: torch.Tensor, out_hw: tuple[int, int]) -> np.ndarray:
    """The release's inference (mmseg ``EncoderDecoder`` whole mode, ``MaSSFormerHead.predict``,
    ``postprocess_result``) on the resized image ``x`` (1, 3, h, w) float 0..255, in fp32.

    The model normalises and zero-pads to its size divisibility (256: the release pads to 32
    and needs multiples of 256 anyway, so for every size the release runs, the padding is the
    same)."""
    h, w = x.shape[-2:]
    d = model.size_divisibility
    pad_h, pad_w = -h % d, -w % d
    if h <= pad_h or w <= pad_w:  # the release's crop of its padding would leave no pixels
        raise ValueError(
            f"--mode full cannot run at {w}x{h}: the release's procedure pads to a multiple of "
            f"{d} and crops the padding from the stretched masks, which leaves nothing at this "
            f"size; use a size above {d // 2} px per side or --mode efficient"
        )
    with release_kernels():  # the release's DCN and attention kernels: bit-exact fp32
        out = model(x, aux=False, crop=False)  # final masks of the padded image (1, Q, Hp/2, Wp/2)
    masks = F.interpolate(
        out["pred_masks"].float(), size=(h, w), mode="bilinear", align_corners=False
    )
    scores = semantic_inference(out["pred_logits"].float(), masks)  # (1, K, h, w)
    scores = scores[..., : h - pad_h, : w - pad_w]  # the padding cropped again, as released
    scores = F.interpolate(scores, size=out_hw, mode="bilinear", align_corners=False)
    return scores.argmax(1)[0].to(torch.uint8).cpu().numpy()


def labels_from_predictions(
    pred_logits: torch.Tensor, pred_masks: torch.Tensor, out_hw: tuple[int, int], mode: str
) -> np.ndarray:
    """``(1, Q, K+1)`` class logits and ``(1, Q, h, w)`` mask logits -> ``(H, W)`` uint8 ids.

    ``"efficient"``: per-class scores at ``(h, w)``, then the K class maps upsampled (bilinear)
    one at a time with a running argmax. ``"full"``: the Q mask logits upsampled to ``(H, W)``
    in fp32, sigmoid, combined, argmax (the release's combination, without its resize steps).
    """
    if mode == "efficient":
        return upsample_argmax(semantic_inference(pred_logits, pred_masks), out_hw)
    if mode != "full":
        raise ValueError(f"unknown inference mode {mode!r}; known: {', '.join(MODES)}")
    masks = F.interpolate(pred_masks.float(), size=out_hw, mode="bilinear", align_corners=False)
    scores = semantic_inference(pred_logits.float(), masks)
    return scores.argmax(1)[0].to(torch.uint8).cpu().numpy()
