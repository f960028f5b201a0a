"""The Grounded-SAM backend: Grounding DINO boxes from text prompts, SAM / SAM-HQ / SAM 2 masks
from boxes, deduplicated by mask.

Crops (whole images and tiles) go through Grounding DINO in batches of one padded shape only
(the Swin backbone sees zero padding, so mixing shapes would make labels depend on batch
mates). Tile boxes of a whole-image box's object are dropped, the best ``max_boxes`` boxes of an
image (positive and negative prompts) go to SAM, images without a box never reach it (nor its
pre-processing), and each box's mask is resampled inside its own window
(:mod:`labeler.sam_post`). Instances are then deduplicated by mask (:mod:`labeler.dedup`).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np

from engine.progress import no_hf_progress_bars
from labeler.backends import BackendOutput, LoadedImage, refuse_unread
from labeler.config import LabelConfig
from labeler.crops import CroppedInstances
from labeler.dedup import DedupRules, MaskCrop, dedup_instances
from labeler.merge import (
    Detections,
    merge_tile_boxes,
    select_queries,
    shift_detections,
    tile_windows,
    top_boxes,
)
from labeler.models import (
    LoadedModel,
    autocast,
    autocast_name,
    check_phrase_separators,
    check_prompt_vocabulary,
    keep_prompt_encoder_fp32,
    load_detector,
    load_segmenter,
    preprocess,
    refuse_over_pad,
    refuse_too_thin,
    resized_size,
    resolve_device,
    resolve_dtype,
    spend_readonly_warning,
)
from labeler.sam_post import finite_scores, masks_in_windows

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
        refuse_unread(config, self.name, ("extra", "model", "model_revision"))
        self.config = config
        self.class_id = class_id
        self.prompts = config.cls.all_prompts
        self.negative = config.cls.negative_flags()
        self.detector = None
        self.segmenter = None
        self._text_read_by = None  # the detector whose text read_text checked

    def identity(self) -> dict[str, Any]:
        c = self.config
        return {
            "detector": c.detector,
            "detector_revision": c.detector_revision,
            "segmenter": c.segmenter,
            "segmenter_revision": c.segmenter_revision,
            # autocast changes outputs: fp32 and bf16 runs must not resume each other
            "autocast": autocast_name(c.precision, c.device),
        }

    def load(self) -> dict[str, Any]:
        c = self.config
        device = resolve_device(c.device)
        with no_hf_progress_bars():  # our own progress bar is the only one
            detector = load_detector(c.detector, c.detector_revision, device, c.local_files_only)
            # the prompts' checks need the detector alone: refused before the segmenter (SAM
            # ViT-H: 2.5 GB) loads; before, after it
            self.read_text(detector)
            segmenter = load_segmenter(
                c.segmenter, c.segmenter_revision, device, c.local_files_only
            )
        self.setup(detector, segmenter, device)
        return {
            "detector": self.detector.info(),
            "segmenter": self.segmenter.info(),
            "device": self.device,
            "autocast": None if self.dtype is None else str(self.dtype).replace("torch.", ""),
            "detector_text": self.text,
        }

    def setup(self, detector: LoadedModel, segmenter: LoadedModel, device: str) -> None:
        """Use already loaded models (``load`` calls this; benchmarks pass their own)."""

        spend_readonly_warning()  # no filter left in the caller's process
        self.device = device
        self.dtype = resolve_dtype(self.config.precision, device)
        self.detector, self.segmenter = detector, segmenter
        if self.dtype is not None and segmenter.model_type in ("sam", "sam_hq"):
            keep_prompt_encoder_fp32(segmenter.model)
        if self._text_read_by is not detector:  # load() read it already
            self.read_text(detector)

    def read_text(self, detector: LoadedModel) -> None:
        """The detector's text of the prompts, its tokens and their checks (words the
        tokenizer does not know, phrase separators, the detector's ``max_text_len``): a
        ``ValueError`` naming the detector before any image."""
        self.text, spans = prompt_text(self.prompts)
        tok = detector.processor.tokenizer
        check_prompt_vocabulary(detector.source, tok, self.prompts)
        enc = tok(self.text, return_offsets_mapping=True)
        self.prompt_tokens = prompt_token_positions(enc["offset_mapping"], spans)
        missing = [p for p, t in zip(self.prompts, self.prompt_tokens, strict=True) if len(t) == 0]
        if missing:
            raise ValueError(
                f"{detector.source}: the tokenizer gives no tokens for prompts {missing}"
            )
        self.text_inputs = dict(tok([self.text], return_tensors="pt"))
        ids = self.text_inputs["input_ids"][0].tolist()
        check_phrase_separators(detector.source, detector.model, ids, self.prompt_tokens)
        limit = getattr(detector.model.config, "max_text_len", None)
        length = self.text_inputs["input_ids"].shape[1]
        if limit is not None and length > limit:  # transformers cuts the text, logits mismatch
            raise ValueError(
                f"{detector.source}: the prompts and negatives make {length} text tokens, the "
                f"detector reads at most {limit} (max_text_len): give fewer or shorter prompts"
            )
        self._text_read_by = detector

    # -- pre-processing (loader threads) -------------------------------------------------------------
    def _crops(self, image: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        """The whole image, then the detection tiles: ``(window xyxy, crop)``."""
        h, w = image.shape[:2]
        c = self.config
        wins = [(0, 0, w, h), *tile_windows(h, w, c.tiles[0], c.tiles[1], c.tile_overlap)]
        return [(win, image[win[1] : win[3], win[0] : win[2]]) for win in wins]

    def _det_inputs(
        self, image: np.ndarray, name: str = "the image"
    ) -> list[tuple[tuple[int, int, int, int], Any, Any]]:
        """The detector's inputs of the whole image and its tiles. An image the detector would
        resize to 0 px across is refused (:class:`ImageTooThin`, naming ``name``); a tile thinner
        than its image is left out (the whole image covers it)."""
        proc = self.detector.processor.image_processor
        refuse_too_thin(proc, image.shape, name, "detector")
        out = []
        for win, crop in self._crops(image):
            got = resized_size(proc, *crop.shape[:2])
            if got is not None and min(got[:2]) < 1:
                continue
            x = preprocess(proc, crop)
            out.append((win, x["pixel_values"][0], x["pixel_mask"][0]))
        return out

    def _sam_inputs(self, image: np.ndarray) -> tuple[Any, tuple[int, int], tuple[int, int]]:
        """``(pixel_values (3, S, S), original (h, w), resized (h, w))``. SAM resizes the long
        side to S and pads; SAM 2 resizes to S x S (its resized size is the full input)."""
        x = preprocess(self.segmenter.processor.image_processor, image)
        pv = x["pixel_values"][0]
        resized = x.get("reshaped_input_sizes")
        resized = resized[0].tolist() if resized is not None else list(pv.shape[-2:])
        return pv, tuple(int(v) for v in x["original_sizes"][0]), tuple(int(v) for v in resized)

    def prepare(self, item: LoadedImage) -> None:
        """Resize and normalise the detector crops in a loader thread. SAM's input is made only
        for images with a box, in :meth:`segment`."""
        item.prepared["det"] = self._det_inputs(item.image, str(item.path))

    # -- stages ------------------------------------------------------------------------------------
    def detect(
        self, images: list[np.ndarray], prepared: list[dict] | None = None
    ) -> list[Detections]:
        """Boxes per image: whole image plus tiles through Grounding DINO, batched by padded
        shape, tile boxes of whole-image objects dropped, the best ``max_boxes`` kept."""
        import torch

        c = self.config
        crops = []  # (image index, window, pixel_values, pixel_mask); the whole image first
        for i, img in enumerate(images):
            inputs = prepared[i].get("det") if prepared else None
            for win, pv, pm in inputs or self._det_inputs(img):
                crops.append((i, win, pv, pm))
        # Only crops of one shape share a batch: no crop ever sees another's zero padding.
        groups: dict[tuple[int, ...], list[int]] = {}
        for k, crop in enumerate(crops):
            groups.setdefault(tuple(crop[2].shape), []).append(k)
        found: dict[int, Detections] = {}
        for members in groups.values():
            for start in range(0, len(members), c.batch_size):
                keys = members[start : start + c.batch_size]
                dets = self._detect_chunk([crops[k] for k in keys], torch)
                found.update(zip(keys, dets, strict=True))
        whole: dict[int, Detections] = {}
        tiles: list[list[tuple[tuple[int, int, int, int], Detections]]] = [[] for _ in images]
        for k, (i, win, _, _) in enumerate(crops):
            if i not in whole:
                whole[i] = found[k]  # each image's first crop is the whole image
            else:
                tiles[i].append((win, found[k]))
        return [
            top_boxes(
                merge_tile_boxes(whole[i], tiles[i], images[i].shape[:2], c.box_nms_iou),
                c.max_boxes,
            )
            for i in range(len(images))
        ]

    def _detect_chunk(self, chunk: list[tuple], torch) -> list[Detections]:
        """One Grounding DINO batch of same-shape crops -> detections in image pixels."""
        c = self.config
        pv = torch.stack([x[2] for x in chunk]).to(self.device)
        pm = torch.stack([x[3] for x in chunk]).to(self.device)
        text = {k: v.repeat(len(chunk), 1).to(self.device) for k, v in self.text_inputs.items()}
        with torch.inference_mode(), autocast(self.device, self.dtype):
            out = self.detector.model(pixel_values=pv, pixel_mask=pm, **text)
        t = text["input_ids"].shape[1]
        probs = torch.sigmoid(out.logits.float())[:, :, :t].cpu().numpy()
        boxes = out.pred_boxes.float().cpu().numpy()  # cx, cy, w, h relative to the crop
        dets = []
        for k, (_, win, _, _) in enumerate(chunk):
            cw, ch = win[2] - win[0], win[3] - win[1]
            cx, cy, bw, bh = boxes[k].T
            xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
            xyxy = np.clip(xyxy * np.array([cw, ch, cw, ch], np.float32), 0, [cw, ch, cw, ch])
            det = select_queries(
                probs[k],
                xyxy,
                self.prompt_tokens,
                c.cls.box_threshold,
                c.cls.text_threshold,
                self.negative,
            )
            dets.append(shift_detections(det, win))
        return dets

    def segment(
        self, images: list[np.ndarray], dets: list[Detections]
    ) -> list[tuple[list[MaskCrop], Any, np.ndarray, Any]]:
        """Per image ``(masks, logits, mask_scores (N,) float32, probabilities)``: each box's
        tight mask as a :class:`MaskCrop` in image pixels, its low-resolution logits
        ``(N, h, w)``, and a function of some boxes' logits giving their ``(mask, float16
        probability)`` windows (:func:`labeler.sam_post.masks_in_windows`). Probabilities are
        made for the instances the dedup keeps only: a mask that covers an 8K image is 33 MB,
        its probability 66 MB more, and 100 boxes of such masks held 10 GB.
        Images without boxes never reach SAM (nor its pre-processing)."""
        import torch

        results: list[tuple[list[MaskCrop], Any, np.ndarray, Any]] = [
            ([], None, np.zeros(0, np.float32), None) for _ in images
        ]
        todo = [i for i, d in enumerate(dets) if len(d)]
        model = self.segmenter.model
        hq = self.segmenter.model_type == "sam_hq"
        sam2 = self.segmenter.model_type in ("sam2", "sam2_video")  # multi-level, no padding
        pad = self.segmenter.processor.image_processor.pad_size if not sam2 else None
        pad = (int(pad["height"]), int(pad["width"])) if pad else None
        for start in range(0, len(todo), self.config.batch_size):
            idx = todo[start : start + self.config.batch_size]
            with ThreadPoolExecutor(max_workers=min(len(idx), 4)) as pool:
                sam_in = list(pool.map(self._sam_inputs, [images[i] for i in idx]))
            pixels = torch.stack([x[0] for x in sam_in]).to(self.device)
            with torch.inference_mode(), autocast(self.device, self.dtype):
                emb = model.get_image_embeddings(pixels)
            inter = None
            if hq:
                emb, inter = emb
            for j, i in enumerate(idx):
                (oh, ow), (rh, rw) = sam_in[j][1], sam_in[j][2]
                scale = np.array([rw / ow, rh / oh, rw / ow, rh / oh], np.float32)
                boxes = dets[i].xyxy * scale
                masks, lows, scores = [], [], []
                post = partial(
                    masks_in_windows,
                    original_size=(oh, ow),
                    reshaped_size=None if sam2 else (rh, rw),
                    pad_size=None if sam2 else pad,
                )
                for b0 in range(0, len(boxes), MAX_BOXES_PER_DECODER_CALL):
                    bx = torch.as_tensor(boxes[b0 : b0 + MAX_BOXES_PER_DECODER_CALL])[None]
                    kw: dict[str, Any] = {
                        "image_embeddings": [e[j : j + 1] for e in emb] if sam2 else emb[j : j + 1]
                    }
                    if hq:
                        kw["intermediate_embeddings"] = [t[j : j + 1] for t in inter]
                    with torch.inference_mode(), autocast(self.device, self.dtype):
                        out = model(input_boxes=bx.to(self.device), multimask_output=False, **kw)
                    low = out.pred_masks[0, :, 0]  # (n, 256, 256) logits
                    masks += [m for m, _ in post(low, floor=0.0)]  # tight masks, for the dedup
                    lows.append(low)
                    scores.append(finite_scores(out.iou_scores[0, :, 0]).cpu().numpy())
                results[i] = (masks, torch.cat(lows), np.concatenate(scores), post)
        return results

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        import torch

        # Scoped, not torch.set_grad_enabled(False): grad mode must not leak into the caller.
        with torch.inference_mode():
            return self._label(batch)

    def _label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        if self.detector is None:
            raise RuntimeError("GroundedSamBackend.label called before load()")
        c = self.config
        images = [b.image for b in batch]
        n = len(images)
        t0 = time.perf_counter()
        # an image not prepared in a loader thread (a library caller's batch): its detector
        # inputs made here, refused by its name (detect's own fallback knows no name)
        prepared = [
            b.prepared if b.prepared.get("det") else {"det": self._det_inputs(b.image, str(b.path))}
            for b in batch
        ]
        dets = self.detect(images, prepared)
        t1 = time.perf_counter()
        proc = self.segmenter.processor.image_processor  # SAM 2's fixed size: never too thin
        for b, det in zip(batch, dets, strict=True):
            if len(det):  # only images with a box reach SAM; the run retries a failed batch alone
                refuse_too_thin(proc, b.image.shape, str(b.path), "segmenter")
                refuse_over_pad(proc, b.image.shape, str(b.path))  # do_resize false
        segs = self.segment(images, dets)
        rules = DedupRules(iou=c.mask_nms_iou, min_area=max(c.cls.min_area, 1))
        outputs = []
        for img, det, (masks, lows, mscores, post) in zip(images, dets, segs, strict=True):
            keep = dedup_instances(masks, det.prompt_scores, det.negative, rules)
            if c.cls.max_instances > 0:
                keep = keep[: c.cls.max_instances]
            # the kept masks again, on their probability windows (the same mask pixels)
            kept = post(lows[keep.tolist()]) if len(keep) else []
            inst = CroppedInstances(
                image_size=img.shape[:2],
                xyxy=det.xyxy[keep],
                scores=det.scores[keep],
                mask_scores=mscores[keep],
                class_ids=np.full(len(keep), self.class_id),
                prompts=[self.prompts[int(p)] for p in det.prompt_idx[keep]],
                masks=[m for m, _ in kept],
                probs=[p for _, p in kept],
            )
            outputs.append(BackendOutput(inst, None, {"detect": (t1 - t0) / n}))
        t2 = time.perf_counter()
        for o in outputs:
            o.timings["segment"] = (t2 - t1) / n  # SAM, the mask dedup, probability windows
        return outputs
