"""Pure post-processing of Grounding DINO outputs before SAM: thresholds and prompt assignment
(with the negative margin), tiling, tile-box merging and the box cap; and the full-resolution
instance-to-semantic merge. numpy in, numpy out; no model code.

Instances are deduplicated by mask after SAM (:mod:`labeler.dedup`), never by box NMS across
prompts; the writer merges cropped instances with :func:`labeler.crops.semantic_from_crops`,
which equals :func:`instances_to_semantic` on full-resolution arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotations.labelmap import IGNORE
from labeler.dedup import MARGIN_SLACK


@dataclass
class Detections:
    """Boxes of one image before segmentation.

    Attributes:
        xyxy: ``(N, 4) float32`` boxes, XYXY in pixels of the full image.
        scores: ``(N,) float32`` box scores in 0..1 (max token probability, as Grounding DINO).
        prompt_idx: ``(N,) int64`` index of the box's prompt in the prompt list (positive
            prompts then negatives, as :attr:`~labeler.config.ClassSpec.all_prompts`).
        negative: ``(N,) bool``: the box belongs to a negative prompt (default all False).
        prompt_scores: ``(N,) float32`` probability of the box's prompt (its best token); the
            score that :func:`labeler.dedup.dedup_instances` compares (default ``scores``).
    """

    xyxy: np.ndarray
    scores: np.ndarray
    prompt_idx: np.ndarray
    negative: np.ndarray | None = None
    prompt_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.prompt_idx = np.asarray(self.prompt_idx, np.int64).reshape(-1)
        n = len(self.xyxy)
        neg = np.zeros(n, bool) if self.negative is None else self.negative
        self.negative = np.asarray(neg, bool).reshape(-1)
        ps = self.scores if self.prompt_scores is None else self.prompt_scores
        self.prompt_scores = np.asarray(ps, np.float32).reshape(-1)
        for name in ("scores", "prompt_idx", "negative", "prompt_scores"):
            if getattr(self, name).shape != (n,):
                raise ValueError(
                    f"Detections: xyxy has {n} boxes but {name} has shape "
                    f"{getattr(self, name).shape}"
                )

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> Detections:
        idx = np.atleast_1d(np.arange(len(self))[index])
        return Detections(
            self.xyxy[idx],
            self.scores[idx],
            self.prompt_idx[idx],
            self.negative[idx],
            self.prompt_scores[idx],
        )

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        return cls(
            *(
                np.concatenate([getattr(p, k) for p in parts])
                for k in ("xyxy", "scores", "prompt_idx", "negative", "prompt_scores")
            )
        )


NEGATIVE_MARGIN = 0.1  # a negative prompt must beat the best positive one by this much


def select_queries(
    token_probs: np.ndarray,
    boxes: np.ndarray,
    prompt_tokens: list[np.ndarray],
    box_threshold: float,
    text_threshold: float,
    negative: np.ndarray | None = None,
    negative_margin: float = NEGATIVE_MARGIN,
) -> Detections:
    """Grounding DINO's threshold rule, with each box assigned a prompt.

    Args:
        token_probs: ``(Q, T) float`` sigmoid of the text logits per query and token, 0..1.
        boxes: ``(Q, 4) float`` XYXY in pixels.
        prompt_tokens: for each prompt, the token positions (into ``T``) it spans.
        box_threshold: a query is kept when its best token probability is ``> box_threshold``
            (transformers' ``threshold=``).
        text_threshold: ... and its prompt's best token probability is ``> text_threshold``.
        negative: ``(P,) bool`` per prompt, True for negative prompts; None: all positive.
        negative_margin: a query goes to its best negative prompt only when that prompt's
            probability beats the best positive prompt's by at least this (or the positive one
            is not above ``text_threshold``); otherwise to its best positive prompt. Plain argmax
            dropped a true bicycle at bike 0.48 vs motorcycle 0.50.

    The box score is the max over all tokens (as transformers' post-processing). Phrases are
    never parsed into classes.
    """
    token_probs = np.asarray(token_probs, np.float32)
    if token_probs.ndim != 2 or len(boxes) != len(token_probs):
        raise ValueError(
            f"token_probs must be (Q, T) and boxes (Q, 4), got {token_probs.shape} and {np.shape(boxes)}"
        )
    if not prompt_tokens or len(token_probs) == 0:
        return Detections.empty()
    q = len(token_probs)
    scores = token_probs.max(axis=1) if token_probs.shape[1] else np.zeros(q, np.float32)
    per_prompt = np.stack(
        [  # float32 for a prompt of no token too (float64 zeros made every comparison float64)
            token_probs[:, idx].max(axis=1) if len(idx) else np.zeros(q, np.float32)
            for idx in prompt_tokens
        ],
        axis=1,
    )
    neg = np.zeros(len(prompt_tokens), bool) if negative is None else np.asarray(negative, bool)
    if neg.shape != (len(prompt_tokens),):
        raise ValueError(f"negative must be ({len(prompt_tokens)},), got {neg.shape}")

    def best(cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not cols.any():  # float32 as the probabilities: the thresholds compare alike
            return np.zeros(q, np.int64), np.full(q, -np.inf, np.float32)
        sub = np.where(cols[None, :], per_prompt, -np.inf)
        idx = sub.argmax(axis=1)
        return idx, sub[np.arange(q), idx]

    pos_idx, pos_score = best(~neg)
    neg_idx, neg_score = best(neg)
    is_neg = (neg_score >= pos_score + negative_margin - MARGIN_SLACK) | (
        (pos_score <= text_threshold) & (neg_score > text_threshold)
    )
    prompt = np.where(is_neg, neg_idx, pos_idx)
    prompt_score = np.where(is_neg, neg_score, pos_score)
    keep = (scores > box_threshold) & (prompt_score > text_threshold)
    return Detections(
        np.asarray(boxes)[keep], scores[keep], prompt[keep], is_neg[keep], prompt_score[keep]
    )


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


def needs_tiles(rows: int, cols: int, overlap: float) -> bool:
    """Whether a ``rows x cols`` tiling adds windows to the whole image (not ``1 x 1``);
    ``ValueError`` for fewer than one tile per axis or an overlap outside [0, 1)."""
    if rows < 1 or cols < 1:
        raise ValueError(f"tiles must be at least 1x1, got {rows}x{cols}")
    if not 0 <= overlap < 1:
        raise ValueError(f"tile overlap must be in [0, 1), got {overlap}")
    return not (rows == 1 and cols == 1)


def tile_windows(
    height: int, width: int, rows: int, cols: int, overlap: float
) -> list[tuple[int, int, int, int]]:
    """``rows x cols`` windows ``(x0, y0, x1, y1)`` covering the image, neighbours overlapping by
    ``overlap`` (fraction of a tile). ``1 x 1`` gives no tiles (the whole image is always run).
    Tiles under a pixel wide or tall (more tiles than an axis has pixels: ``--tiles 3x3`` on a
    1-pixel strip) are left out; they made empty crops that failed the image with 'float
    division by zero'."""
    if not needs_tiles(rows, cols, overlap):
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

    return [
        (x0, y0, x1, y1)
        for (y0, y1) in spans(height, rows)
        for (x0, x1) in spans(width, cols)
        if y1 > y0 and x1 > x0
    ]


def shift_detections(det: Detections, window: tuple[int, int, int, int]) -> Detections:
    """Detections of a crop ``window (x0, y0, x1, y1)`` moved to full-image pixels, clipped to it."""
    x0, y0, x1, y1 = window
    xyxy = det.xyxy + np.array([x0, y0, x0, y0], np.float32)
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], x0, x1)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], y0, y1)
    return Detections(xyxy, det.scores, det.prompt_idx, det.negative, det.prompt_scores)


TILE_COVER = 0.8  # share of a cut tile box inside a whole-image box that makes them one object


def merge_tile_boxes(
    whole: Detections,
    tiles: list[tuple[tuple[int, int, int, int], Detections]],
    image_size: tuple[int, int],
    iou_threshold: float = 0.5,
    cover: float = TILE_COVER,
    edge_tolerance: float = 1.0,
) -> Detections:
    """Whole-image boxes, then the tile boxes that are not the object of a whole-image box.

    Args:
        whole: detections of the whole image, XYXY in image pixels.
        tiles: ``(window (x0, y0, x1, y1), detections)`` per tile, boxes already in image pixels
            and clipped to the window (:func:`shift_detections`).
        image_size: ``(H, W)`` of the image; window edges on the image border are not cuts.
        iou_threshold: a tile box with box IoU ``>=`` this against a whole-image box of the same
            role (positive / negative) is that box's object.
        cover: a tile box that touches an interior edge of its window (it was cut there), whose
            whole-image counterpart reaches past that edge, and which lies inside that box for
            at least this share of its own area (intersection over the tile box) is that
            box's object too.
        edge_tolerance: pixels within which a box side counts as touching a window edge.

    A matched tile box is dropped whatever its score: the whole-image box wins (an object looks
    larger in a tile, so its cut box often scores higher, and SAM would segment only the cut
    part). No box NMS runs between whole-image boxes or across prompts: duplicates are removed
    by mask after SAM (:func:`labeler.dedup.dedup_instances`).
    """
    h, w = image_size
    kept = [whole]
    for window, det in tiles:
        if len(det) == 0:
            continue
        if len(whole) == 0:
            kept.append(det)
            continue
        iou = box_iou(det.xyxy, whole.xyxy)
        a, b = det.xyxy.astype(np.float64), whole.xyxy.astype(np.float64)
        inter_w = np.clip(
            np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]),
            0,
            None,
        )
        inter_h = np.clip(
            np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]),
            0,
            None,
        )
        area = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
        inside = inter_w * inter_h / np.maximum(area, 1e-12)[:, None]
        x0, y0, x1, y1 = window
        tol = edge_tolerance
        # (tile box touches this interior edge) & (the whole box reaches past it), per side
        cut = (
            ((x0 > 0) & (a[:, None, 0] <= x0 + tol) & (b[None, :, 0] < x0 - tol))
            | ((y0 > 0) & (a[:, None, 1] <= y0 + tol) & (b[None, :, 1] < y0 - tol))
            | ((x1 < w) & (a[:, None, 2] >= x1 - tol) & (b[None, :, 2] > x1 + tol))
            | ((y1 < h) & (a[:, None, 3] >= y1 - tol) & (b[None, :, 3] > y1 + tol))
        )
        same_role = det.negative[:, None] == whole.negative[None, :]
        match = same_role & ((iou >= iou_threshold) | (cut & (inside >= cover)))
        kept.append(det[~match.any(axis=1)])
    return Detections.concat(kept)


def top_boxes(det: Detections, k: int) -> Detections:
    """The ``k`` boxes with the highest box score, best first (ties: lower index first);
    ``k = 0`` keeps all (in score order)."""
    order = np.argsort(-det.scores, kind="stable")
    return det[order[:k] if k > 0 else order]


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
