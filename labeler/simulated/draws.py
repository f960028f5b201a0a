"""The simulated Grounded-SAM errors of one image, drawn from its own generator
(:func:`image_rng`): small instances missed, thin structure filled, boundaries shifted, false
positives added (the package's overview gives the rates), as full-size arrays or crops."""

from __future__ import annotations

import zlib

import cv2
import numpy as np
from scipy import ndimage

from annotations.instances import Instances
from labeler.crops import CroppedInstances
from labeler.dedup import MaskCrop
from labeler.simulated.options import SimulationConfig


def image_rng(seed: int, split: str, stem: str) -> np.random.Generator:
    """The generator of one image: independent of processing order."""
    return np.random.default_rng(
        [seed, zlib.crc32(f"{split}/{stem}".encode("utf-8", "surrogateescape"))]
    )


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Low-frequency noise in [-1, 1] with features about ``cell`` pixels wide."""
    gh, gw = max(2, int(np.ceil(h / cell)) + 1), max(2, int(np.ceil(w / cell)) + 1)
    coarse = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Positive inside (distance to the outside), negative outside, in pixels."""
    m = mask.astype(np.uint8)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, 5)
    cap = float(sum(mask.shape))  # an image without outside (or inside) pixels: no overflow
    return np.where(mask, np.minimum(inside, cap) - 0.5, 0.5 - np.minimum(outside, cap)).astype(
        np.float32
    )


def _bbox(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """Slices of the mask's bounding box grown by ``pad`` pixels, clipped to the image."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (
        slice(max(0, int(rows[0]) - pad), min(h, int(rows[-1]) + pad + 1)),
        slice(max(0, int(cols[0]) - pad), min(w, int(cols[-1]) + pad + 1)),
    )


def _fill(mask: np.ndarray, radius: float, holes: bool) -> np.ndarray:
    """Close with a disk of ``radius`` pixels, then fill holes: thin interiors become solid.

    The closing runs on the instance's box (grown by the radius, zero beyond the frame) with two
    Euclidean distance transforms, so its cost does not grow with the radius.
    """
    if not mask.any():
        return mask
    out = mask.copy()
    r = float(radius)
    if r >= 1:
        pad = int(np.ceil(r)) + 2
        ys, xs = _bbox(mask, 0)
        crop = np.pad(mask[ys, xs].astype(np.uint8), pad)
        dilated = cv2.distanceTransform(1 - crop, cv2.DIST_L2, 5) <= r
        closed = cv2.distanceTransform(dilated.astype(np.uint8), cv2.DIST_L2, 5) > r
        out[ys, xs] |= closed[pad:-pad, pad:-pad]
    if holes:
        ys, xs = _bbox(out, 1)
        out[ys, xs] = ndimage.binary_fill_holes(out[ys, xs])
    return out | mask


def _box_diag(mask: np.ndarray) -> float:
    ys, xs = _bbox(mask, 0)
    return float(np.hypot(xs.stop - xs.start, ys.stop - ys.start))


def simulate_labels(
    instance_ids: np.ndarray,
    others: np.ndarray | None = None,
    config: SimulationConfig | None = None,
    rng: np.random.Generator | None = None,
    class_id: int = 1,
    prompt: str = "simulated",
) -> tuple[Instances, np.ndarray]:
    """Simulated Grounded-SAM output for one image.

    Args:
        instance_ids: ``(H, W)`` integer array of true instances of the class: 0 = none,
            1..N = instance ids (e.g. ``new_class_instances/<name>/<split>/<stem>.png``).
        others: ``(H, W) bool`` pixels of other "Others" objects where a false positive may
            land (e.g. 7-class label == 0 and not the class); None: random blobs only.
        config: error rates; defaults when None.
        rng: the image's generator (see :func:`image_rng`); ``default_rng(config.seed)`` when None.
        class_id: class id written into the instances.
        prompt: the "prompt" recorded per instance.

    Returns:
        ``(instances, probs)``: kept instances (masks ``(N, H, W) bool``, boxes XYXY, detector
        scores, mask scores) and ``(N, H, W) float32`` per-pixel probabilities in 0..1 (a soft
        edge around each mask, a sigmoid of the distance to it at scale 0.75 px).
        :func:`simulate_cropped` gives the same instances inside their windows, as the labeling
        runner writes them.
    """
    (h, w), windows, scores, mask_scores = _simulate(instance_ids, others, config, rng)
    n = len(windows)
    if not n:
        return Instances.empty(h, w), np.zeros((0, h, w), np.float32)
    stack = np.zeros((n, h, w), bool)
    probs = np.zeros((n, h, w), np.float32)
    for k, (ys, xs, crop) in enumerate(windows):
        stack[k, ys, xs] = crop
        probs[k, ys, xs] = _soft_window(crop)
    inst = Instances(
        xyxy=np.array([_box(*window) for window in windows], np.float32),
        masks=stack,
        scores=scores,
        mask_scores=mask_scores,
        class_ids=np.full(n, class_id, np.int64),
        prompts=[prompt] * n,
    )
    return inst, probs


def simulate_cropped(
    instance_ids: np.ndarray,
    others: np.ndarray | None = None,
    config: SimulationConfig | None = None,
    rng: np.random.Generator | None = None,
    class_id: int = 1,
    prompt: str = "simulated",
) -> CroppedInstances:
    """:func:`simulate_labels`' instances and probabilities inside their windows (the mask's
    box grown by the soft edge's margin), what ``CroppedInstances.from_instances`` makes of
    them, without a full-size map per instance: at 4032x3024 each held 60 MB (mask and
    probabilities), so an image with 20 cars took 1.2 GB. Same arguments."""
    (h, w), windows, scores, mask_scores = _simulate(instance_ids, others, config, rng)
    masks, probs = [], []
    for ys, xs, crop in windows:
        # the window from_instances takes is the tight box of the mask and of p > 0: all of it
        # (the sigmoid is at least 4e-18 in float32 there, 0 only beyond the window)
        masks.append(MaskCrop(ys.start, xs.start, crop))
        probs.append(_soft_window(crop))
    n = len(windows)
    return CroppedInstances(
        (h, w),
        np.array([_box(*window) for window in windows], np.float32),
        scores,
        mask_scores,
        np.full(n, class_id, np.int64),
        [prompt] * n,
        masks,
        probs,
    )


SOFT_MARGIN = 32  # pixels around a mask's box where its soft edge is computed (_soft_window)


def _simulate(
    instance_ids: np.ndarray,
    others: np.ndarray | None,
    config: SimulationConfig | None,
    rng: np.random.Generator | None,
) -> tuple[tuple[int, int], list[tuple[slice, slice, np.ndarray]], np.ndarray, np.ndarray]:
    """The kept instances of :func:`simulate_labels`, each as ``(ys, xs, mask[ys, xs])`` on its
    box grown by :data:`SOFT_MARGIN` (zero beyond it), with detector and mask scores: one
    full-size mask at a time."""
    cfg = config or SimulationConfig()
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    ids = np.asarray(instance_ids)
    if ids.ndim != 2:
        raise ValueError(f"instance_ids must be (H, W), got {ids.shape}")
    h, w = ids.shape
    if others is not None and np.shape(others) != (h, w):
        raise ValueError(f"others must be {(h, w)} like instance_ids, got {np.shape(others)}")
    min_area = max(cfg.min_area, 1)

    def window(m: np.ndarray) -> tuple[slice, slice, np.ndarray] | None:
        if m.sum() < min_area:
            return None  # dropped below
        ys, xs = _bbox(m, SOFT_MARGIN)
        return ys, xs, m[ys, xs].copy()

    windows: list[tuple[slice, slice, np.ndarray] | None] = []
    scores: list[float] = []
    true_any = ids > 0
    for value in np.unique(ids[true_any]) if true_any.any() else []:
        m = ids == value
        area = int(m.sum())
        p_miss = cfg.miss_max / (1.0 + (area / max(cfg.miss_area * h * w, 1e-9)) ** 2)
        if rng.random() < p_miss:
            continue
        if cfg.fill_radius > 0 or cfg.fill_holes:
            m = _fill(m, cfg.fill_radius * _box_diag(m), cfg.fill_holes)
        m = _shift(m, rng, cfg.boundary_shift)
        windows.append(window(m))
        size_term = min(1.0, area / max(cfg.miss_area * h * w * 20, 1.0))
        scores.append(float(np.clip(0.4 + 0.45 * size_term + rng.normal(0, 0.05), 0.36, 0.98)))
    if rng.random() < cfg.false_positive_rate:
        fp = _false_positive(rng, h, w, others if others is None else others & ~true_any)
        if fp is not None:
            windows.append(window(_shift(fp, rng, cfg.boundary_shift)))
            scores.append(float(rng.uniform(0.36, 0.5)))
            del fp
    keep = [i for i, win in enumerate(windows) if win is not None]
    if not keep:  # no mask scores drawn: as before, the generator stops here
        return (h, w), [], np.zeros(0, np.float32), np.zeros(0, np.float32)
    mask_scores = rng.uniform(0.85, 0.98, len(keep)).astype(np.float32)
    kept = [windows[i] for i in keep]
    return (h, w), kept, np.array([scores[i] for i in keep], np.float32), mask_scores  # type: ignore[return-value]


def _box(ys: slice, xs: slice, crop: np.ndarray) -> list[int]:
    """XYXY of the mask ``crop`` placed at ``(ys.start, xs.start)``: its tight box."""
    rows, cols = _bbox(crop, 0)
    return [
        xs.start + cols.start,
        ys.start + rows.start,
        xs.start + cols.stop,
        ys.start + rows.stop,
    ]


def _soft_window(crop: np.ndarray, softness: float = 0.75) -> np.ndarray:
    """``float32`` probability on a mask's window (its box grown by :data:`SOFT_MARGIN`):
    sigmoid of the signed distance to the outline (0 beyond the window, where it is below 1e-18)."""
    sd = _signed_distance(crop)
    return (1.0 / (1.0 + np.exp(-np.clip(sd / softness, -40, 40)))).astype(np.float32, copy=False)


def _shift(mask: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Move the outline by a smooth offset within [-amount, amount] pixels."""
    if amount <= 0 or not mask.any():
        return mask
    ys, xs = _bbox(mask, int(np.ceil(amount)) + 2)
    y0, y1, x0, x1 = ys.start, ys.stop, xs.start, xs.stop
    crop = mask[y0:y1, x0:x1]
    bias = rng.uniform(-0.5, 0.5)
    wobble = _smooth_noise(rng, *crop.shape, cell=max(8.0, 4 * amount))
    offset = amount * np.clip(bias + 0.6 * wobble, -1, 1)
    moved = _signed_distance(crop) + offset > 0
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = moved
    return out


def _false_positive(
    rng: np.random.Generator, h: int, w: int, others: np.ndarray | None
) -> np.ndarray | None:
    """One region of another Others object, or a random elliptical blob."""
    if others is not None and others.any():
        comp, n = ndimage.label(others)
        # pixel counts of the components 1..n (summing a full-size map of ones took a float64
        # copy of the image besides: 290 MB at 4032x3024)
        sizes = np.bincount(comp.ravel(), minlength=n + 1)[1:]
        # objects, not the whole background: between 0.05% and 10% of the image
        ok = np.flatnonzero((sizes >= 5e-4 * h * w) & (sizes <= 0.1 * h * w))
        if ok.size:
            return comp == int(rng.choice(ok)) + 1
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.1, 0.9) * w
    ry, rx = rng.uniform(0.02, 0.08) * h, rng.uniform(0.02, 0.08) * w
    blob = np.zeros((h, w), np.uint8)
    axes = (max(1, round(rx)), max(1, round(ry)))
    cv2.ellipse(blob, (round(cx), round(cy)), axes, 0, 0, 360, 1, thickness=-1)
    return blob.astype(bool)
