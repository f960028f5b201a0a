"""The Grounded-SAM backend: Grounding DINO boxes from text prompts, SAM / SAM-HQ masks from boxes.

Batches of images go through Grounding DINO together (padded, tiles included) and through the
SAM image encoder together; each image's boxes then go through the SAM mask decoder on their
own (ragged counts), and images without a box never reach SAM.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from annotations.instances import Instances
from labeler.backends import BackendOutput, LoadedImage
from labeler.config import LabelConfig
from labeler.merge import (
    Detections,
    filter_instances,
    merge_detections,
    select_queries,
    shift_detections,
    tile_windows,
)
from labeler.models import autocast, load_detector, load_segmenter, resolve_device, resolve_dtype

MAX_BOXES_PER_DECODER_CALL = 64  # bounds decoder memory for images with many boxes


def prompt_text(prompts: tuple[str, ...]) -> tuple[str, list[tuple[int, int]]]:
    """Grounding DINO's text (``"bicycle. bike. motorcycle."``, lower case) and the character
    span ``[start, end)`` of each prompt in it."""
    text, spans = "", []
    for p in prompts:
        p = p.strip().lower()
        spans.append((len(text), len(text) + len(p)))
        text += p + ". "
    return text.strip(), spans


def prompt_token_positions(
    offsets: list[tuple[int, int]], spans: list[tuple[int, int]]
) -> list[np.ndarray]:
    """Token positions of each prompt from a fast tokenizer's ``offset_mapping``."""
    return [
        np.array([t for t, (a, b) in enumerate(offsets) if b > a and a >= s and b <= e], np.int64)
        for s, e in spans
    ]


class GroundedSamBackend:
    """Grounding DINO + SAM / SAM-HQ through transformers (the default backend)."""

    name = "grounded-sam"

    def __init__(self, config: LabelConfig, class_id: int) -> None:
        self.config = config
        self.class_id = class_id
        self.prompts = config.cls.all_prompts
        self.negative = np.array(
            [False] * len(config.cls.prompts) + [True] * len(config.cls.negatives), bool
        )
        self.detector = None
        self.segmenter = None

    def identity(self) -> dict[str, Any]:
        c = self.config
        return {
            "detector": c.detector,
            "detector_revision": c.detector_revision,
            "segmenter": c.segmenter,
            "segmenter_revision": c.segmenter_revision,
        }

    def load(self) -> dict[str, Any]:
        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bar is the only one
        # Decoded images are read-only numpy arrays; the processors only read them.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        c = self.config
        self.device = resolve_device(c.device)
        self.dtype = resolve_dtype(c.precision, self.device)
        self.detector = load_detector(
            c.detector, c.detector_revision, self.device, c.local_files_only
        )
        self.segmenter = load_segmenter(
            c.segmenter, c.segmenter_revision, self.device, c.local_files_only
        )
        self.text, spans = prompt_text(self.prompts)
        enc = self.detector.processor.tokenizer(self.text, return_offsets_mapping=True)
        self.prompt_tokens = prompt_token_positions(enc["offset_mapping"], spans)
        missing = [p for p, t in zip(self.prompts, self.prompt_tokens, strict=True) if len(t) == 0]
        if missing:
            raise ValueError(f"{c.detector}: the tokenizer gives no tokens for prompts {missing}")
        torch.set_grad_enabled(False)
        return {
            "detector": self.detector.info(),
            "segmenter": self.segmenter.info(),
            "device": self.device,
            "autocast": None if self.dtype is None else str(self.dtype).replace("torch.", ""),
            "detector_text": self.text,
        }

    # -- stages ------------------------------------------------------------------------------------
    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """Boxes per image: whole image plus tiles, batched through Grounding DINO, merged by
        box NMS, negatives dropped."""
        import torch

        c = self.config
        crops: list[tuple[int, tuple[int, int, int, int], np.ndarray]] = []
        for i, img in enumerate(images):
            h, w = img.shape[:2]
            crops.append((i, (0, 0, w, h), img))
            for x0, y0, x1, y1 in tile_windows(h, w, c.tiles[0], c.tiles[1], c.tile_overlap):
                crops.append((i, (x0, y0, x1, y1), img[y0:y1, x0:x1]))
        parts: list[list[Detections]] = [[] for _ in images]
        proc, model = self.detector.processor, self.detector.model
        for start in range(0, len(crops), c.batch_size):
            chunk = crops[start : start + c.batch_size]
            inputs = proc(
                images=[x[2] for x in chunk],
                text=[self.text] * len(chunk),
                return_tensors="pt",
                padding=True,
            ).to(self.device)
            with torch.inference_mode(), autocast(self.device, self.dtype):
                out = model(**inputs)
            t = inputs["input_ids"].shape[1]
            probs = torch.sigmoid(out.logits.float())[:, :, :t].cpu().numpy()
            boxes = out.pred_boxes.float().cpu().numpy()  # cx, cy, w, h relative to the crop
            for k, (i, win, crop) in enumerate(chunk):
                ch, cw = crop.shape[:2]
                cx, cy, bw, bh = boxes[k].T
                xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
                xyxy = np.clip(xyxy * np.array([cw, ch, cw, ch], np.float32), 0, [cw, ch, cw, ch])
                det = select_queries(
                    probs[k], xyxy, self.prompt_tokens, c.cls.box_threshold, c.cls.text_threshold
                )
                parts[i].append(shift_detections(det, win))
        return [merge_detections(p, self.negative, c.box_nms_iou) for p in parts]

    def segment(
        self, images: list[np.ndarray], dets: list[Detections]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per image ``(masks (N, H, W) bool, probs (N, H, W) float16, mask_scores (N,))``;
        images without boxes are skipped (empty arrays)."""
        import torch

        results = [
            (
                np.zeros((0, *im.shape[:2]), bool),
                np.zeros((0, *im.shape[:2]), np.float16),
                np.zeros(0, np.float32),
            )
            for im in images
        ]
        todo = [i for i, d in enumerate(dets) if len(d)]
        proc, model = self.segmenter.processor, self.segmenter.model
        hq = self.segmenter.model_type == "sam_hq"
        for start in range(0, len(todo), self.config.batch_size):
            idx = todo[start : start + self.config.batch_size]
            inputs = proc(images=[images[i] for i in idx], return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device)
            with torch.inference_mode(), autocast(self.device, self.dtype):
                emb = model.get_image_embeddings(pixels)
            inter = None
            if hq:
                emb, inter = emb
            for j, i in enumerate(idx):
                oh, ow = (int(v) for v in inputs["original_sizes"][j])
                rh, rw = (int(v) for v in inputs["reshaped_input_sizes"][j])
                scale = np.array([rw / ow, rh / oh, rw / ow, rh / oh], np.float32)
                boxes = dets[i].xyxy * scale
                masks, probs, scores = [], [], []
                for b0 in range(0, len(boxes), MAX_BOXES_PER_DECODER_CALL):
                    bx = torch.as_tensor(boxes[b0 : b0 + MAX_BOXES_PER_DECODER_CALL])[None].to(
                        self.device
                    )
                    kw: dict[str, Any] = {"image_embeddings": emb[j : j + 1]}
                    if hq:
                        kw["intermediate_embeddings"] = [t[j : j + 1] for t in inter]
                    with torch.inference_mode(), autocast(self.device, self.dtype):
                        out = model(input_boxes=bx, multimask_output=False, **kw)
                    logits = proc.post_process_masks(
                        out.pred_masks.float(),
                        inputs["original_sizes"][j : j + 1],
                        inputs["reshaped_input_sizes"][j : j + 1],
                        binarize=False,
                    )[0][:, 0]  # (n, H, W) logits at full resolution
                    masks.append((logits > 0).cpu().numpy())
                    probs.append(torch.sigmoid(logits).half().cpu().numpy())
                    scores.append(out.iou_scores.float()[0, :, 0].clamp(0, 1).cpu().numpy())
                results[i] = (np.concatenate(masks), np.concatenate(probs), np.concatenate(scores))
        return results

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        if self.detector is None:
            raise RuntimeError("GroundedSamBackend.label called before load()")
        images = [b.image for b in batch]
        n = len(images)
        t0 = time.perf_counter()
        dets = self.detect(images)
        t1 = time.perf_counter()
        segs = self.segment(images, dets)
        t2 = time.perf_counter()
        outputs = []
        for img, det, (masks, probs, mscores) in zip(images, dets, segs, strict=True):
            keep = filter_instances(
                masks,
                det.scores,
                self.config.cls.min_area,
                self.config.cls.max_instances,
                self.config.mask_nms_iou,
            )
            h, w = img.shape[:2]
            inst = (
                Instances(
                    xyxy=det.xyxy[keep],
                    masks=masks[keep],
                    scores=det.scores[keep],
                    mask_scores=mscores[keep],
                    class_ids=np.full(len(keep), self.class_id),
                    prompts=[self.prompts[int(p)] for p in det.prompt_idx[keep]],
                )
                if len(keep)
                else Instances.empty(h, w)
            )
            outputs.append(
                BackendOutput(
                    inst,
                    probs[keep] if len(keep) else None,
                    {"detect": (t1 - t0) / n, "segment": (t2 - t1) / n},
                )
            )
        return outputs
