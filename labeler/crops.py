"""Instances whose masks and probabilities live inside their windows, from SAM to the writer.

A 4032x3024 image with 100 full-resolution instances holds 100 x 36.6 MB (bool mask + float16
probability); the same instances cropped to their objects hold a few MB. The writer merges,
encodes (COCO RLE) and measures them window by window, with results identical to the
full-resolution path (:func:`labeler.merge.instances_to_semantic`, ``Instances.to_json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from annotations.instances import Instances, instances_json
from annotations.labelmap import IGNORE
from annotations.rle import crop_to_rle
from labeler.dedup import MaskCrop


@dataclass
class CroppedInstances:
    """Instances of one image, each mask (and probability map) inside its window.

    Attributes:
        image_size: ``(H, W)`` of the image.
        xyxy: ``(N, 4) float32`` boxes, XYXY in image pixels.
        scores: ``(N,) float32`` detector scores in 0..1.
        mask_scores: ``(N,) float32`` segmenter quality scores in 0..1.
        class_ids: ``(N,) int64``.
        prompts: ``N`` strings.
        masks: ``N`` :class:`MaskCrop` (bool masks in image pixels).
        probs: None (masks are certain), or ``N`` ``(h, w)`` float16/float32 probability maps in
            0..1 on the same windows as ``masks``; 0 outside the window.
    """

    image_size: tuple[int, int]
    xyxy: np.ndarray
    scores: np.ndarray
    mask_scores: np.ndarray
    class_ids: np.ndarray
    prompts: list[str]
    masks: list[MaskCrop]
    probs: list[np.ndarray] | None = None
    refined: np.ndarray | None = None  # (N,) bool: mask replaced by --refine; None: not run
    _areas: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.masks)
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        self.xyxy = np.asarray(self.xyxy, np.float32).reshape(n, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.mask_scores = np.asarray(self.mask_scores, np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, np.int64).reshape(-1)
        self.prompts = list(self.prompts)
        for name in ("scores", "mask_scores", "class_ids", "prompts"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} must hold {n} items to match masks")
        if self.probs is not None and len(self.probs) != n:  # before probs[k] is read
            raise ValueError(f"probs must hold {n} maps to match masks")
        h, w = self.image_size
        for k, m in enumerate(self.masks):
            if m.y0 < 0 or m.x0 < 0 or m.y1 > h or m.x1 > w:
                raise ValueError(f"mask {k} window exceeds the {w}x{h} image")
            if self.probs is not None and self.probs[k].shape != m.mask.shape:
                raise ValueError(f"probs[{k}] is {self.probs[k].shape}, mask {m.mask.shape}")
        if self.refined is not None:
            self.refined = np.asarray(self.refined, bool).reshape(-1)
            if len(self.refined) != n:
                raise ValueError(f"refined must hold {n} flags to match masks")

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: Any) -> CroppedInstances:
        """Select instances with an index array, boolean mask or slice, as ``Instances[index]``."""
        idx = np.atleast_1d(np.arange(len(self))[index]).tolist()
        return CroppedInstances(
            self.image_size,
            self.xyxy[idx],
            self.scores[idx],
            self.mask_scores[idx],
            self.class_ids[idx],
            [self.prompts[i] for i in idx],
            [self.masks[i] for i in idx],
            None if self.probs is None else [self.probs[i] for i in idx],
            None if self.refined is None else self.refined[idx],
        )

    @property
    def areas(self) -> np.ndarray:
        if self._areas is None:
            self._areas = np.array([m.area for m in self.masks], np.int64)
        return self._areas

    @property
    def nbytes(self) -> int:
        """Bytes held by masks and probabilities (what the writer queue is bounded by)."""
        n = sum(m.mask.nbytes for m in self.masks)
        return n + (sum(p.nbytes for p in self.probs) if self.probs is not None else 0)

    @classmethod
    def from_instances(cls, inst: Instances, probs: np.ndarray | None = None) -> CroppedInstances:
        """Crop full-resolution instances: each window is the bounding box of the mask and of
        the non-zero probabilities (so nothing that reaches the outputs is cut off)."""
        h, w = inst.image_size
        if probs is not None and np.shape(probs) != inst.masks.shape:
            raise ValueError(f"probs must be {inst.masks.shape} like masks, got {np.shape(probs)}")
        masks, crops = [], []
        for i in range(len(inst)):
            support = inst.masks[i] if probs is None else inst.masks[i] | (probs[i] > 0)
            win = MaskCrop.from_full(support)
            y0, y1, x0, x1 = win.y0, win.y1, win.x0, win.x1
            masks.append(MaskCrop(y0, x0, inst.masks[i, y0:y1, x0:x1].copy()))
            if probs is not None:
                crops.append(np.array(probs[i, y0:y1, x0:x1]))
        return cls(
            (h, w),
            inst.xyxy,
            inst.scores,
            inst.mask_scores,
            inst.class_ids,
            inst.prompts,
            masks,
            crops if probs is not None else None,
            inst.refined,
        )

    def to_instances(self) -> Instances:
        """Full-resolution :class:`Instances` (small images and tests only)."""
        h, w = self.image_size
        full = np.zeros((len(self), h, w), bool)
        for k, m in enumerate(self.masks):
            full[k, m.y0 : m.y1, m.x0 : m.x1] = m.mask
        return Instances(
            self.xyxy, full, self.scores, self.mask_scores, self.class_ids, self.prompts,
            self.refined,
        )  # fmt: skip

    def to_json(self, **header: Any) -> dict:
        """The same dict as :meth:`Instances.to_json` of the full-resolution instances."""
        h, w = self.image_size
        segs = (crop_to_rle(m.mask, m.y0, m.x0, h, w) for m in self.masks)
        return instances_json(self, segs, **header)


def semantic_from_crops(
    inst: CroppedInstances, uncertain: tuple[float, float] = (0.15, 0.25)
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`labeler.merge.instances_to_semantic` window by window (bit-identical results).

    Returns ``label (H, W) uint8`` (1 = union of masks, 0 elsewhere, 255 = confidence in
    ``[lo, hi)``) and ``confidence (H, W) uint8`` (per-pixel max of score x probability, x 255).
    """
    h, w = inst.image_size
    lo, hi = uncertain
    label = np.zeros((h, w), np.uint8)
    conf = np.zeros((h, w), np.float32)  # calloc'd: pages outside the windows are never touched
    for i, m in enumerate(inst.masks):
        ys, xs = slice(m.y0, m.y1), slice(m.x0, m.x1)
        p = m.mask if inst.probs is None else inst.probs[i]
        # score x probability in float32, as the full-resolution path: one pass, no copy of p
        np.maximum(conf[ys, xs], np.multiply(p, inst.scores[i], dtype=np.float32), out=conf[ys, xs])
        np.bitwise_or(label[ys, xs], m.mask, out=label[ys, xs])  # label is 0 or 1 so far
    out = np.zeros((h, w), np.uint8)
    if lo < hi and lo <= 0:  # confidence 0 (outside every window) is in the band: whole image
        label[(conf >= lo) & (conf < hi)] = IGNORE
        return label, np.round(np.clip(conf, 0, 1) * 255).astype(np.uint8)
    # Outside every window the confidence is 0: label stays 0, confidence 0. Finish the union of
    # the windows once, overlaps included (tiles and prompts find one object several times).
    for ys, xs in union_rectangles([(m.y0, m.y1, m.x0, m.x1) for m in inst.masks]):
        c = conf[ys, xs]
        if lo < hi:
            label[ys, xs][(c >= lo) & (c < hi)] = IGNORE
        out[ys, xs] = np.round(np.clip(c, 0, 1) * 255)  # whole numbers 0..255: exact as uint8
    return label, out


def union_rectangles(windows: list[tuple[int, int, int, int]]) -> list[tuple[slice, slice]]:
    """Disjoint ``(rows, columns)`` rectangles that cover exactly the union of ``windows``
    ``(y0, y1, x0, x1)``: between consecutive window edges in y, the merged x-spans of the
    windows spanning those rows."""
    edges = sorted({y for y0, y1, _, _ in windows for y in (y0, y1)})
    out = []
    for ya, yb in pairwise(edges):
        spans = sorted((x0, x1) for y0, y1, x0, x1 in windows if y0 <= ya and yb <= y1 and x0 < x1)
        merged: list[list[int]] = []
        for x0, x1 in spans:
            if merged and x0 <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], x1)
            else:
                merged.append([x0, x1])
        out += [(slice(ya, yb), slice(x0, x1)) for x0, x1 in merged]
    return out
