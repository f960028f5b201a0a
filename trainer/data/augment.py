"""A training sample's augmentation (DESIGN section 4, mmsegmentation order): random
short-side resize, random crop with a maximum one-class share (optionally centred on a
new class's pixel), horizontal flip, photometric distortion; its settings
(:class:`AugmentConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from annotations.labelmap import IGNORE
from annotations.numbers import MAX_IMAGE_SIDE, check_numbers, class_ids, is_whole


@dataclass
class AugmentConfig:
    """Training augmentation (defaults: the published recipe at a 1024 crop)."""

    crop: int = 1024  # square crop side in pixels
    short_side_range: tuple[int, int] | None = (
        None  # random short side; None: (1.5, 6) x crop = 1536..6144 at 1024
    )
    max_long_side: int | None = None  # cap on the resized long side; None: 8 x crop = 8192 at 1024
    cat_max_ratio: float = 0.75  # a crop is retried while one class covers more than this share
    crop_tries: int = 10  # retries for the class-share rule (the last try is kept)
    # probability that a crop is centred on a random pixel of a new class (one of the focus
    # classes present, each equally likely) instead of placed uniformly; rare classes then fill
    # enough of the crops to be learnt (bicycles are 2-3% of the demo's pixels)
    class_crop_prob: float = 0.5
    focus_classes: list[int] | None = None  # ids; None: the taxonomy's new classes (with a parent)
    flip: float = 0.5  # probability of a horizontal flip
    photometric: bool = True  # brightness / contrast / saturation / hue jitter (mmseg's)

    def __post_init__(self) -> None:
        check_numbers(self)  # a Python caller's nan or inf (a file's is refused as it is read)
        if self.short_side_range is not None:
            # as TrainConfig.val_size: a caller's (100.7, 200.9) was taken as (100, 200), and
            # (nan, 200) said Python's "cannot convert float NaN to integer"
            sides = list(self.short_side_range)
            if not (
                len(sides) == 2
                and all(is_whole(v) for v in sides)
                and 0 < sides[0] <= sides[1] <= MAX_IMAGE_SIDE
            ):
                raise ValueError(
                    f"short_side_range must be two whole numbers of pixels, 0 < lo <= hi <= "
                    f"{MAX_IMAGE_SIDE:,}, got {sides!r:.80}"
                )
            self.short_side_range = tuple(int(v) for v in sides)  # type: ignore[assignment]
        if self.focus_classes is not None:
            self.focus_classes = class_ids(self.focus_classes, "focus_classes")
        if self.crop < 8:
            raise ValueError(f"crop must be >= 8 pixels, got {self.crop}")
        if not 0.0 <= self.class_crop_prob <= 1.0:
            raise ValueError(f"class_crop_prob must be in 0..1, got {self.class_crop_prob}")

    def short_range(self) -> tuple[int, int]:
        if self.short_side_range is not None:
            return self.short_side_range
        return (self.crop * 3 // 2, self.crop * 6)

    def long_cap(self) -> int:
        return self.max_long_side if self.max_long_side is not None else self.crop * 8


def random_resize(
    image: np.ndarray,
    label: np.ndarray,
    source: np.ndarray,
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize so the short side is uniform in ``cfg.short_range()`` (long side capped).

    ``image`` (H, W, 3) uint8 resized bilinearly; ``label`` and ``source`` (H, W) uint8 nearest.
    """
    h, w = label.shape
    lo, hi = cfg.short_range()
    scale = rng.uniform(lo, hi) / min(h, w)
    scale = min(scale, cfg.long_cap() / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return image, label, source
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    source = cv2.resize(source, size, interpolation=cv2.INTER_NEAREST)
    return image, label, source


def crop_box(
    label: np.ndarray,
    crop: int,
    rng: np.random.Generator,
    cat_max_ratio: float = 0.75,
    tries: int = 10,
    focus: tuple[int, ...] = (),
    focus_prob: float = 0.0,
) -> tuple[int, int]:
    """Top-left ``(y, x)`` of a ``crop``-square crop of an ``(H, W)`` label (H, W >= crop) in which
    no class covers more than ``cat_max_ratio`` of the labelled pixels, if one is found within
    ``tries`` draws (mmseg's rule: at least two classes and max share < ratio); else the last draw.

    With probability ``focus_prob`` (one draw per call, only when ``focus`` ids are given and one
    of them is in the label), every draw centres the crop on a random pixel of a focus class
    (the class picked uniformly among those present, then the pixel), shifted to stay inside
    the label; the class-share rule applies as before."""
    h, w = label.shape
    pixels: list[np.ndarray] = []  # flat indices of each focus class present, ascending ids
    if focus and focus_prob > 0 and rng.random() < focus_prob:
        for c in sorted(set(focus)):
            idx = np.flatnonzero(label == c)  # one pass over the label per focus class
            if idx.size:
                pixels.append(idx)
    y = x = 0
    for _ in range(max(1, tries)):
        if pixels:
            idx = pixels[int(rng.integers(len(pixels)))]
            i = int(idx[int(rng.integers(len(idx)))])
            y = min(max(i // w - crop // 2, 0), h - crop)
            x = min(max(i % w - crop // 2, 0), w - crop)
        else:
            y = int(rng.integers(0, h - crop + 1))
            x = int(rng.integers(0, w - crop + 1))
        if cat_max_ratio >= 1.0:
            break
        counts = np.bincount(label[y : y + crop, x : x + crop].ravel(), minlength=256)[:IGNORE]
        counts = counts[counts > 0]
        if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
            break
    return y, x


def photometric_distortion(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mmseg's PhotoMetricDistortion on ``(H, W, 3) uint8`` RGB: each step with probability 0.5:
    brightness +-32, contrast x[0.5, 1.5] (before or after the HSV steps), saturation
    x[0.5, 1.5], hue +-18 (OpenCV's 0..180 hue scale)."""
    img = image.astype(np.float32)

    def contrast(x: np.ndarray) -> np.ndarray:
        return x * rng.uniform(0.5, 1.5) if rng.random() < 0.5 else x

    if rng.random() < 0.5:
        img = img + rng.uniform(-32, 32)
    contrast_first = rng.random() < 0.5
    if contrast_first:
        img = contrast(img)
    hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    if rng.random() < 0.5:
        hsv[..., 1] = hsv[..., 1] * rng.uniform(0.5, 1.5)
    if rng.random() < 0.5:
        hsv[..., 0] = (hsv[..., 0] + rng.integers(-18, 19)) % 180
    img = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    if not contrast_first:
        img = contrast(img)
    return np.clip(img, 0, 255).astype(np.uint8)


def augment(
    image: np.ndarray,
    label: np.ndarray,
    source: np.ndarray,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    focus: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize, pad (image 0, label 255), crop, flip, distort.

    Args: ``image (H, W, 3) uint8 RGB``, ``label (H, W) uint8`` ids/255, ``source (H, W) uint8``;
    ``focus``: class ids a crop is centred on with probability ``cfg.class_crop_prob``.
    Returns the three arrays at ``crop x crop``.
    """
    image, label, source = random_resize(image, label, source, cfg, rng)
    h, w = label.shape
    ph, pw = max(0, cfg.crop - h), max(0, cfg.crop - w)
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        label = np.pad(label, ((0, ph), (0, pw)), constant_values=IGNORE)
        source = np.pad(source, ((0, ph), (0, pw)))
    y, x = crop_box(
        label, cfg.crop, rng, cfg.cat_max_ratio, cfg.crop_tries, focus, cfg.class_crop_prob
    )
    sl = (slice(y, y + cfg.crop), slice(x, x + cfg.crop))
    image, label, source = image[sl], label[sl], source[sl]
    if rng.random() < cfg.flip:
        image, label, source = image[:, ::-1], label[:, ::-1], source[:, ::-1]
    if cfg.photometric:
        image = photometric_distortion(image, rng)
    return np.ascontiguousarray(image), np.ascontiguousarray(label), np.ascontiguousarray(source)
