"""Pure post-processing of Grounded-SAM outputs: thresholds, negative prompts, box and mask NMS,
tiling, and the instance-to-semantic merge. numpy in, numpy out; no model code.

Every labeling backend (Grounded-SAM, the simulated one) ends in :func:`instances_to_semantic`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotations.labelmap import IGNORE


@dataclass
class Detections:
    """Boxes of one image before segmentation.

    Attributes:
        xyxy: ``(N, 4) float32`` boxes, XYXY in pixels of the full image.
        scores: ``(N,) float32`` box scores in 0..1 (max token probability, as Grounding DINO).
        prompt_idx: ``(N,) int64`` index of the best-matching prompt in the prompt list.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    prompt_idx: np.ndarray

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.prompt_idx = np.asarray(self.prompt_idx, np.int64).reshape(-1)
        n = len(self.xyxy)
        if self.scores.shape != (n,) or self.prompt_idx.shape != (n,):
            raise ValueError(
                f"Detections: xyxy has {n} boxes but scores {self.scores.shape} and "
                f"prompt_idx {self.prompt_idx.shape}"
            )

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> Detections:
        idx = np.atleast_1d(np.arange(len(self))[index])
        return Detections(self.xyxy[idx], self.scores[idx], self.prompt_idx[idx])

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.prompt_idx for p in parts]),
        )


def select_queries(
    token_probs: np.ndarray,
    boxes: np.ndarray,
    prompt_tokens: list[np.ndarray],
    box_threshold: float,
    text_threshold: float,
) -> Detections:
    """Grounding DINO's threshold rule, with each box assigned its best-matching prompt.

    Args:
        token_probs: ``(Q, T) float`` sigmoid of the text logits per query and token, 0..1.
        boxes: ``(Q, 4) float`` XYXY in pixels.
        prompt_tokens: for each prompt, the token positions (into ``T``) it spans.
        box_threshold: a query is kept when its best token probability is ``> box_threshold``
            (transformers' ``threshold=``).
        text_threshold: ... and its best prompt's best token probability is ``> text_threshold``.

    The box score is the max over all tokens (as transformers' post-processing); the prompt is
    the one holding the highest token probability. Phrases are never parsed into classes.
    """
    token_probs = np.asarray(token_probs, np.float32)
    if token_probs.ndim != 2 or len(boxes) != len(token_probs):
        raise ValueError(
            f"token_probs must be (Q, T) and boxes (Q, 4), got {token_probs.shape} and {np.shape(boxes)}"
        )
    if not prompt_tokens or len(token_probs) == 0:
        return Detections.empty()
    scores = token_probs.max(axis=1) if token_probs.shape[1] else np.zeros(len(token_probs))
    per_prompt = np.stack(
        [
            token_probs[:, idx].max(axis=1) if len(idx) else np.zeros(len(token_probs))
            for idx in prompt_tokens
        ],
        axis=1,
    )
    best = per_prompt.argmax(axis=1)
    best_score = per_prompt[np.arange(len(best)), best]
    keep = (scores > box_threshold) & (best_score > text_threshold)
    return Detections(np.asarray(boxes)[keep], scores[keep], best[keep])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of XYXY boxes ``a (N, 4)`` and ``b (M, 4)``; 0 where both are empty."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _greedy_nms(iou: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    suppressed = np.zeros(len(order), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= iou[i] > threshold
    return np.array(keep, np.int64)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy box NMS, highest score first (ties: lower index first)."""
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    return _greedy_nms(box_iou(xyxy, xyxy), scores, iou_threshold)


def mask_iou(masks: np.ndarray) -> np.ndarray:
    """``(N, N)`` IoU of ``(N, H, W) bool`` masks; pairs whose bounding boxes are disjoint cost
    nothing (4K masks are compared only on their overlap)."""
    masks = np.asarray(masks, bool)
    n = len(masks)
    out = np.zeros((n, n), np.float64)
    if n == 0:
        return out
    areas = masks.sum(axis=(1, 2)).astype(np.float64)
    rows = masks.any(axis=2)
    cols = masks.any(axis=1)
    bbox = []
    for i in range(n):
        ys, xs = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        bbox.append((ys[0], ys[-1] + 1, xs[0], xs[-1] + 1) if len(ys) else None)
    for i in range(n):
        out[i, i] = 1.0 if areas[i] > 0 else 0.0
        for j in range(i + 1, n):
            bi, bj = bbox[i], bbox[j]
            if bi is None or bj is None:
                continue
            y0, y1 = max(bi[0], bj[0]), min(bi[1], bj[1])
            x0, x1 = max(bi[2], bj[2]), min(bi[3], bj[3])
            if y0 >= y1 or x0 >= x1:
                continue
            inter = np.count_nonzero(masks[i, y0:y1, x0:x1] & masks[j, y0:y1, x0:x1])
            union = areas[i] + areas[j] - inter
            out[i, j] = out[j, i] = inter / union if union else 0.0
    return out


def mask_nms(masks: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy mask NMS (deduplicates the masks of synonym prompts)."""
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    return _greedy_nms(mask_iou(masks), scores, iou_threshold)


def tile_windows(
    height: int, width: int, rows: int, cols: int, overlap: float
) -> list[tuple[int, int, int, int]]:
    """``rows x cols`` windows ``(x0, y0, x1, y1)`` covering the image, neighbours overlapping by
    ``overlap`` (fraction of a tile). ``1 x 1`` gives no tiles (the whole image is always run)."""
    if rows < 1 or cols < 1:
        raise ValueError(f"tiles must be at least 1x1, got {rows}x{cols}")
    if not 0 <= overlap < 1:
        raise ValueError(f"tile overlap must be in [0, 1), got {overlap}")
    if rows == 1 and cols == 1:
        return []

    def spans(size: int, n: int) -> list[tuple[int, int]]:
        if n == 1:
            return [(0, size)]
        tile = size / (n - (n - 1) * overlap)
        step = tile * (1 - overlap)
        out = []
        for k in range(n):
            a = int(round(k * step))
            b = size if k == n - 1 else min(size, int(round(k * step + tile)))
            out.append((a, b))
        return out

    return [(x0, y0, x1, y1) for (y0, y1) in spans(height, rows) for (x0, x1) in spans(width, cols)]


def shift_detections(det: Detections, window: tuple[int, int, int, int]) -> Detections:
    """Detections of a crop ``window (x0, y0, x1, y1)`` moved to full-image pixels, clipped to it."""
    x0, y0, x1, y1 = window
    xyxy = det.xyxy + np.array([x0, y0, x0, y0], np.float32)
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], x0, x1)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], y0, y1)
    return Detections(xyxy, det.scores, det.prompt_idx)


def merge_detections(
    parts: list[Detections], negative: np.ndarray, iou_threshold: float
) -> Detections:
    """Whole-image and tile detections -> one set: class-agnostic box NMS over all of them (a
    negative-prompt box also suppresses positive duplicates of itself), then boxes whose best
    prompt is negative are dropped. ``negative``: ``(P,) bool`` per prompt."""
    det = Detections.concat(parts)
    if len(det) == 0:
        return det
    det = det[nms(det.xyxy, det.scores, iou_threshold)]
    negative = np.asarray(negative, bool)
    return det[~negative[det.prompt_idx]]


def filter_instances(
    masks: np.ndarray,
    scores: np.ndarray,
    min_area: int,
    max_instances: int,
    mask_nms_iou: float,
) -> np.ndarray:
    """Indices of instances to keep, best score first: area ``>= min_area`` pixels, then mask NMS,
    then at most ``max_instances`` (0 = no limit)."""
    masks = np.asarray(masks, bool)
    scores = np.asarray(scores, np.float32)
    idx = np.flatnonzero(masks.sum(axis=(1, 2)) >= max(min_area, 1))
    if len(idx) == 0:
        return np.zeros(0, np.int64)
    idx = idx[mask_nms(masks[idx], scores[idx], mask_nms_iou)]
    return idx[:max_instances] if max_instances > 0 else idx


def instances_to_semantic(
    masks: np.ndarray,
    scores: np.ndarray,
    probs: np.ndarray | None = None,
    uncertain: tuple[float, float] = (0.15, 0.25),
) -> tuple[np.ndarray, np.ndarray]:
    """Merge the kept instances of one class into a binary pseudo-label with confidence.

    Args:
        masks: ``(N, H, W) bool`` kept instance masks.
        scores: ``(N,) float`` instance scores in 0..1.
        probs: ``(N, H, W) float`` mask probabilities in 0..1 (sigmoid of SAM logits), or None
            to take the masks as certain (probability 1 inside, 0 outside).
        uncertain: ``(lo, hi)``: pixels with ``lo <= confidence < hi`` become 255; ``lo >= hi``
            disables the band.

    Returns:
        ``label (H, W) uint8``: 1 = union of the masks, 0 elsewhere, 255 = uncertain band;
        ``confidence (H, W) uint8``: per-pixel max of score x probability, scaled to 0..255.
    """
    masks = np.asarray(masks, bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got {masks.shape}")
    n, h, w = masks.shape
    scores = np.asarray(scores, np.float32).reshape(-1)
    if scores.shape != (n,):
        raise ValueError(f"scores must be ({n},), got {scores.shape}")
    if probs is not None and np.shape(probs) != masks.shape:
        raise ValueError(f"probs must be {masks.shape} like masks, got {np.shape(probs)}")
    label = np.zeros((h, w), np.uint8)
    conf = np.zeros((h, w), np.float32)
    for i in range(n):
        p = masks[i].astype(np.float32) if probs is None else np.asarray(probs[i], np.float32)
        np.maximum(conf, scores[i] * p, out=conf)
        label[masks[i]] = 1
    lo, hi = uncertain
    if lo < hi:
        label[(conf >= lo) & (conf < hi)] = IGNORE
    return label, np.round(np.clip(conf, 0, 1) * 255).astype(np.uint8)
