"""The SAM 3 backend: every instance of each text prompt, segmented directly (no box stage).

SAM 3 (Meta, "Segment Anything with Concepts", arXiv 2511.16719; ``Sam3Model`` in transformers
5.x) takes an image and a noun phrase and returns up to 200 instances with boxes, 288x288 mask
logits, a per-query detection logit and one presence logit per image. Its instance score is
``sigmoid(detection) x sigmoid(presence)`` (transformers' ``post_process_instance_segmentation``);
``box_threshold`` of the class spec is the threshold on that score (``text_threshold`` is not
used).

Cost structure used here:

* each prompt's (and negative's) text embedding is computed once per run
  (``get_text_features``), and the whole output object is passed back with its attention mask;
* vision features are computed once per crop (``get_vision_features``), in batches of
  ``batch_size`` crops, and reused for every prompt;
* masks are upsampled only inside the window where they can matter (:func:`probs_in_windows`,
  with :mod:`labeler.sam_post`'s window rule), with the values full-frame bilinear resizing
  gives there.

SAM 3 resizes every input to 1008x1008 without keeping the aspect ratio. The whole image is run
as the model defines it; ``--tiles RxC`` adds R x C *square* crops (:func:`square_windows`), so
tile content reaches the model unsquashed and small objects at 2-3x the scale.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.progress import no_hf_progress_bars
from labeler.backends import BackendOutput, LoadedImage, refuse_unread
from labeler.config import LabelConfig
from labeler.crops import CroppedInstances
from labeler.dedup import DedupRules, MaskCrop, dedup_instances
from labeler.merge import Detections, merge_tile_boxes, needs_tiles
from labeler.models import (
    LoadedModel,
    _check_local,
    _from_pretrained,
    _load_config,
    autocast,
    check_docstrings_kept,
    check_input_size,
    check_model_folder,
    check_prompt_vocabulary,
    preprocess,
    resolve_device,
    resolve_dtype,
    spend_readonly_warning,
)
from labeler.sam_post import LOGIT_FLOOR, active_window, finite_logits, resize_window

DEFAULT_SAM3 = "facebook/sam3"
SAM3_TYPES = ("sam3", "sam3_video")  # config model_type values Sam3Model loads
TEXT_TOKENS = 32  # text tokens SAM 3 reads (its text encoder's max_position_embeddings)
MASK_THRESHOLD = 0.5  # mask = upsampled probability > this (transformers' default)
PROB_FLOOR = 1 / (1 + math.exp(-LOGIT_FLOOR))  # probabilities at or below: stored as 0
GATED_HELP = (
    "SAM 3 checkpoints are gated on the Hugging Face hub under the SAM License: accept it on the "
    "model page (https://huggingface.co/facebook/sam3), then log in once (`hf auth login`, formerly "
    "`huggingface-cli login`) so the download is authorised, or pass a local directory saved with "
    "save_pretrained (--model DIR)."
)


def square_windows(
    height: int, width: int, rows: int, cols: int, overlap: float
) -> list[tuple[int, int, int, int]]:
    """Square crops ``(x0, y0, x1, y1)`` for a model that squashes its input to a square.

    The side is the larger of the tile height and width that ``rows x cols`` tiles with
    ``overlap`` would have (so the requested overlap is the least there is), capped at the
    image's short side. ``rows`` and ``cols`` windows are spread evenly from edge to edge; when
    the cap makes them too few to keep ``overlap`` along the long side, that axis gets more.
    ``1 x 1`` gives no windows (the whole image is always run).
    """
    if not needs_tiles(rows, cols, overlap):
        return []
    side = max(height / (rows - (rows - 1) * overlap), width / (cols - (cols - 1) * overlap))
    side = int(round(min(side, height, width)))

    def starts(size: int, n: int) -> list[int]:
        if size <= side:
            return [0]
        n = max(n, math.ceil((size - side) / (side * (1 - overlap)) - 1e-9) + 1)
        return [int(round(k * (size - side) / (n - 1))) for k in range(n)]

    return [(x, y, x + side, y + side) for y in starts(height, rows) for x in starts(width, cols)]


def load_sam3(
    source: str, revision: str | None = None, device: str = "cpu", local_only: bool = False
) -> LoadedModel:
    """``Sam3Model`` + ``Sam3Processor`` from a hub id or a local directory; a missing or gated
    checkpoint raises one FileNotFoundError line that says how to get it."""
    check_docstrings_kept()
    from transformers import Sam3Model, Sam3Processor

    try:
        _check_local("model", source, revision)
        config = _load_config("model", source, revision, local_only)
        if config.model_type not in SAM3_TYPES:
            raise ValueError(
                f"{source}: --backend sam3 needs a SAM 3 checkpoint (model_type sam3), got "
                f"model_type {config.model_type!r}"
            )
        model = _from_pretrained("model", Sam3Model, source, revision, local_only)
        processor = _from_pretrained(
            "model", Sam3Processor, source, revision, local_only, processor=True
        )
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e} {GATED_HELP}") from None
    check_input_size(source, processor, model.config.vision_config.image_size)
    return LoadedModel.ready(model, processor, source, config, device, revision)


@dataclass
class Candidate:
    """One SAM 3 instance of one prompt in one crop, in full-image pixels."""

    xyxy: np.ndarray  # (4,) float32 box, XYXY pixels of the full image
    score: float  # detection x presence, 0..1
    prompt: int  # index into the backend's prompt list (positives, then negatives)
    mask: MaskCrop  # the mask, tight in its window (full-image pixels)
    low_res: np.ndarray  # (h, w) float32 mask probability at the model's mask resolution
    window: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the crop the mask covers


def scores_of(pred_logits: Any, presence_logits: Any | None) -> Any:
    """``(B, Q)`` instance scores: ``sigmoid(pred_logits) x sigmoid(presence_logits)``, the rule
    of transformers' ``Sam3ImageProcessor.post_process_instance_segmentation``."""
    scores = pred_logits.float().sigmoid()
    if presence_logits is not None:
        scores = scores * presence_logits.float().sigmoid()
    return scores


def probs_in_windows(
    probs: Any,
    out_size: tuple[int, int],
    offset: tuple[int, int] = (0, 0),
    floor: float = PROB_FLOOR,
) -> list[tuple[MaskCrop, np.ndarray | None] | None]:
    """SAM 3 mask probabilities -> per query ``(mask, float16 probability)`` at ``out_size``,
    each inside its own window, as transformers' ``post_process_instance_segmentation`` computes
    them (bilinear resize of the *probabilities*, mask = probability > 0.5) but only where the
    probability exceeds ``floor``: :data:`PROB_FLOOR` (the rule of :mod:`labeler.sam_post`:
    outside, it rounds to confidence 0), or ``MASK_THRESHOLD`` for the tight mask alone.

    Args:
        probs: ``(n, h, w)`` float tensor, sigmoid of the mask logits (288x288 for SAM 3).
        out_size: ``(H, W)`` pixels of the crop the masks cover.
        offset: ``(x, y)`` of the crop's top-left corner in the full image.

    Returns:
        Per query the :class:`MaskCrop` in full-image pixels and its probability window (None
        when ``floor >= MASK_THRESHOLD``: the mask alone), or None when the probability never
        exceeds the floor or the mask is empty.
    """
    in_size = (int(probs.shape[1]), int(probs.shape[2]))
    active = probs > floor
    out: list[tuple[MaskCrop, np.ndarray | None] | None] = []
    for k in range(len(probs)):
        win = active_window(active[k], in_size, out_size)
        p = None if win is None else resize_window(probs[k : k + 1], out_size, win)[0]
        keep = None if p is None else p > floor
        if keep is None or not bool((p > MASK_THRESHOLD).any()):
            out.append(None)
            continue
        rows, cols = keep.any(dim=1).nonzero(), keep.any(dim=0).nonzero()
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        p = p[r0:r1, c0:c1]
        y0, x0 = win[0] + r0 + offset[1], win[2] + c0 + offset[0]
        mask = (p > MASK_THRESHOLD).cpu().numpy()
        # the mask-only pass (floor = MASK_THRESHOLD) does not pay for a probability copy
        prob = None if floor >= MASK_THRESHOLD else p.clamp(0, 1).half().cpu().numpy()
        out.append((MaskCrop(y0, x0, mask), prob))
    return out


class Sam3Backend:
    """SAM 3 through transformers: text prompts -> instance masks, whole image plus square tiles."""

    name = "sam3"

    def __init__(self, config: LabelConfig, class_id: int) -> None:
        unread = ("extra", "detector", "segmenter", "detector_revision", "segmenter_revision")
        refuse_unread(config, self.name, unread)
        self.config = config
        self.class_id = class_id
        self.prompts = config.cls.all_prompts
        self.negative = config.cls.negative_flags()
        self.sam3: LoadedModel | None = None

    @property
    def source(self) -> str:
        return self.config.model or DEFAULT_SAM3

    def identity(self) -> dict[str, Any]:
        c = self.config
        dtype = resolve_dtype(c.precision, resolve_device(c.device))
        return {
            "model": self.source,
            "model_revision": c.model_revision,
            # autocast changes outputs: fp32 and bf16 runs must not resume each other
            "autocast": None if dtype is None else str(dtype).replace("torch.", ""),
        }

    def load(self) -> dict[str, Any]:
        c = self.config
        device = resolve_device(c.device)
        if c.model:  # as typed: ./models/sam3, missing, was asked of the hub as models/sam3
            try:
                check_model_folder("model", c.typed("model"), "--model")
            except FileNotFoundError as e:
                raise FileNotFoundError(f"{e} {GATED_HELP}") from None
        # loaded (and recorded) as the config spells it: run.json named one folder two ways
        with no_hf_progress_bars():
            loaded = load_sam3(self.source, c.model_revision, device, c.local_files_only)
        self.setup(loaded, device)
        return {
            "model": self.sam3.info(),
            "device": self.device,
            "autocast": None if self.dtype is None else str(self.dtype).replace("torch.", ""),
            "image_size": self.image_size,
        }

    def setup(self, sam3: LoadedModel, device: str) -> None:
        """Use a loaded model (``load`` calls this; benchmarks pass their own); embeds every
        prompt once."""
        import torch

        spend_readonly_warning()  # no filter left in the caller's process
        self.sam3, self.device = sam3, device
        self.dtype = resolve_dtype(self.config.precision, device)
        self.image_size = int(sam3.model.config.vision_config.image_size)
        tok = sam3.processor.tokenizer
        check_prompt_vocabulary(sam3.source, tok, self.prompts)
        # The processor pads text to 32 tokens; the mask must travel with the embedding. Not
        # truncated: a longer prompt's length is its own, refused (it was cut without a word).
        encs = {
            p: tok([p], padding="max_length", max_length=TEXT_TOKENS, return_tensors="pt")
            for p in self.prompts
        }
        lengths = {p: int(e["input_ids"].shape[1]) for p, e in encs.items()}
        if long := {p: n for p, n in lengths.items() if n > TEXT_TOKENS}:
            raise ValueError(
                f"{sam3.source}: prompts {list(long)} make {'/'.join(map(str, long.values()))} "
                f"text tokens, SAM 3 reads at most {TEXT_TOKENS}: give shorter prompts"
            )
        self.text: list[tuple[Any, Any]] = []
        for enc in encs.values():
            ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
            with torch.inference_mode(), autocast(device, self.dtype):
                feats = sam3.model.get_text_features(input_ids=ids, attention_mask=mask)
            self.text.append((feats, mask))

    # -- pre-processing (loader threads) ---------------------------------------------------------
    def windows(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """The whole image, then the square tiles: ``(x0, y0, x1, y1)``."""
        c = self.config
        return [(0, 0, width, height), *square_windows(height, width, *c.tiles, c.tile_overlap)]

    def _inputs(self, image: np.ndarray) -> list[tuple[tuple[int, int, int, int], Any]]:
        proc = self.sam3.processor.image_processor
        out = []
        for win in self.windows(*image.shape[:2]):
            crop = image[win[1] : win[3], win[0] : win[2]]
            out.append((win, preprocess(proc, crop)["pixel_values"][0]))
        return out

    def prepare(self, item: LoadedImage) -> None:
        """Resize and normalise every crop in a loader thread (the model thread only batches)."""
        item.prepared["sam3"] = self._inputs(item.image)

    # -- model -----------------------------------------------------------------------------------
    def _text_for(self, p: int, n: int) -> tuple[Any, Any]:
        """Prompt ``p``'s embedding output object and attention mask repeated for ``n`` crops."""
        feats, mask = self.text[p]
        rep = copy.copy(feats)  # the model reads .pooler_output (the projected token features)
        rep.pooler_output = feats.pooler_output.expand(n, -1, -1)
        return rep, mask.expand(n, -1)

    def detect(
        self, images: list[np.ndarray], prepared: list[dict] | None = None
    ) -> list[list[Candidate]]:
        """Candidates per image over all crops and prompts, above the class's score threshold."""
        import torch

        c = self.config
        crops = []
        for i, img in enumerate(images):
            inputs = prepared[i].get("sam3") if prepared else None
            for j, (win, pv) in enumerate(inputs or self._inputs(img)):
                crops.append((i, j, win, pv))
        # (crop of the image, prompt) -> candidates: collected in a fixed order below, so that
        # ties in the dedup do not depend on which crops shared a batch
        parts: list[dict[tuple[int, int], list[Candidate]]] = [{} for _ in images]
        model = self.sam3.model
        for start in range(0, len(crops), c.batch_size):
            chunk = crops[start : start + c.batch_size]
            pv = torch.stack([x[3] for x in chunk]).to(self.device)
            with torch.inference_mode(), autocast(self.device, self.dtype):
                vision = model.get_vision_features(pixel_values=pv)
            for p in range(len(self.prompts)):
                text, mask = self._text_for(p, len(chunk))
                with torch.inference_mode(), autocast(self.device, self.dtype):
                    out = model(vision_embeds=vision, text_embeds=text, attention_mask=mask)
                scores = scores_of(out.pred_logits, out.presence_logits).cpu().numpy()
                boxes = out.pred_boxes.float().clamp(0, 1).cpu().numpy()  # xyxy, 0..1 of the crop
                for k, (i, j, win, _) in enumerate(chunk):
                    parts[i][j, p] = self._candidates(
                        win, p, scores[k], boxes[k], out.pred_masks[k]
                    )
        return [[c for key in sorted(part) for c in part[key]] for part in parts]

    def _candidates(
        self, win: tuple[int, int, int, int], prompt: int, scores, boxes, mask_logits
    ) -> list[Candidate]:
        thr, k = self.config.cls.box_threshold, self.config.max_boxes or len(scores)
        order = np.argsort(-scores, kind="stable")[:k]  # max_boxes per crop and prompt
        order = order[scores[order] > thr]
        if len(order) == 0:
            return []
        cw, ch = win[2] - win[0], win[3] - win[1]
        # Tight masks only (for the dedup); the probabilities of the kept ones come later, so
        # a candidate holds its mask's pixels and a 288x288 float32 map, never a large window.
        low = finite_logits(mask_logits[order]).sigmoid()  # NaN: no object, not a NaN map
        ups = probs_in_windows(low, (ch, cw), (win[0], win[1]), MASK_THRESHOLD)
        low = low.cpu().numpy()
        out = []
        for j, (q, up) in enumerate(zip(order, ups, strict=True)):
            if up is None:
                continue
            xyxy = boxes[q] * np.array([cw, ch, cw, ch], np.float32)
            xyxy += np.array([win[0], win[1], win[0], win[1]], np.float32)
            if not np.isfinite(xyxy).all():  # the box head gave NaN: the mask's bounds instead
                m = up[0]  # (the instances file cannot hold NaN: the image failed)
                xyxy = np.array([m.x0, m.y0, m.x1, m.y1], np.float32)
            # Rounded as the instances file stores it: batching crops moves scores by an ulp
            # (1 vs 3 crops per call: up to 3e-8), which must not reorder the dedup.
            score = round(float(scores[q]), 5)
            out.append(Candidate(xyxy, score, prompt, up[0], low[j], win))
        return out

    # -- merge -----------------------------------------------------------------------------------
    def _drop_cut_tile_objects(
        self, height: int, width: int, cands: list[Candidate]
    ) -> list[Candidate]:
        """Tile candidates that are the object of a whole-image candidate, by SAM 3's boxes
        (:func:`labeler.merge.merge_tile_boxes`, the rule Grounded-SAM uses): the whole-image
        instance wins whatever the scores, since a cut tile mask often scores higher."""
        whole_win = (0, 0, width, height)
        if all(x.window == whole_win for x in cands):
            return cands

        def dets(idx: list[int]) -> Detections:
            # prompt_idx carries the candidate's index through the merge
            return Detections(
                np.array([cands[k].xyxy for k in idx], np.float32).reshape(-1, 4),
                np.array([cands[k].score for k in idx], np.float32),
                np.array(idx, np.int64),
                self.negative[[cands[k].prompt for k in idx]],
            )

        groups: dict[tuple[int, int, int, int], list[int]] = {}
        for k, x in enumerate(cands):
            groups.setdefault(x.window, []).append(k)
        whole = dets(groups.pop(whole_win, []))
        tiles = [(win, dets(idx)) for win, idx in groups.items()]
        kept = merge_tile_boxes(whole, tiles, (height, width), self.config.box_nms_iou)
        return [cands[k] for k in sorted(kept.prompt_idx.tolist())]

    def instances(self, height: int, width: int, cands: list[Candidate]) -> CroppedInstances:
        """Candidates of one image (all crops and prompts) -> kept instances, masks inside their
        windows: tile candidates of whole-image objects dropped (:meth:`_drop_cut_tile_objects`),
        then the labeler's mask dedup (:func:`labeler.dedup.dedup_instances`: negatives,
        duplicates across prompts and tiles, ``min_area``), then ``max_instances``."""
        import torch

        c = self.config
        cands = self._drop_cut_tile_objects(height, width, cands)
        rules = DedupRules(iou=c.mask_nms_iou, min_area=max(c.cls.min_area, 1))
        scores = np.array([x.score for x in cands], np.float32)
        neg = self.negative[np.array([x.prompt for x in cands], np.int64)]
        keep = dedup_instances([x.mask for x in cands], scores, neg, rules)
        if c.cls.max_instances > 0:
            keep = keep[: c.cls.max_instances]
        kept = [cands[k] for k in keep]
        masks, probs = [], []
        for x in kept:  # the probability window of each kept instance (the same mask values)
            x0, y0, x1, y1 = x.window
            low = torch.from_numpy(x.low_res)[None]
            ((mask, prob),) = probs_in_windows(low, (y1 - y0, x1 - x0), (x0, y0))
            masks.append(mask)
            probs.append(prob)
        return CroppedInstances(
            (height, width),
            np.array([x.xyxy for x in kept], np.float32).reshape(-1, 4),
            scores[keep],
            # SAM 3 has no mask-quality head: mask_score = mean probability inside the mask.
            np.array(
                [p[m.mask].astype(np.float32).mean() for m, p in zip(masks, probs, strict=True)],
                np.float32,
            ),
            np.full(len(kept), self.class_id),
            [self.prompts[x.prompt] for x in kept],
            masks,
            probs,
        )

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        import torch

        with torch.inference_mode():
            if self.sam3 is None:
                raise RuntimeError("Sam3Backend.label called before load()")
            t0 = time.perf_counter()
            found = self.detect([b.image for b in batch], [b.prepared for b in batch])
            t1 = time.perf_counter()
            n = len(batch)
            outputs = []
            for b, cands in zip(batch, found, strict=True):
                inst = self.instances(*b.image.shape[:2], cands)
                outputs.append(BackendOutput(inst, None, {"detect": (t1 - t0) / n}))
            t2 = time.perf_counter()
            for o in outputs:
                o.timings["segment"] = (t2 - t1) / n  # mask dedup (negatives, duplicates)
            return outputs
