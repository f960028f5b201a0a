"""Crop-zoom refinement (``--refine SEGMENTER``): re-segment every instance at full resolution.

A 4032x3024 photo reaches SAM 3 as 1008x1008 with 288x288 masks, and SAM v1 / SAM-HQ as a
1024-px image with 256x256 masks: one mask pixel covers 10-14 source pixels, so spokes and thin
frames cannot survive. Here each kept instance's box prompts a SAM / SAM-HQ / SAM 2 segmenter
again on a crop of the full-resolution image around that box, so a small or thin object fills up
to the segmenter's whole input.

Rules (documented in docs/labeler.md):

* **Crop**: a square centred on the box, side ``max(box w, box h) x (1 + 2 x REFINE_MARGIN)``
  (the box plus 25 % of its larger side on every side), at least ``MIN_CROP`` pixels, shifted to
  lie inside the image and clipped to it when the image is smaller. Square because SAM 2
  squashes its input to a square (SAM v1 pads and loses nothing).
* **Batching**: crops of all instances of all images in a batch go through the image encoder
  ``batch_size`` at a time, and each chunk through the mask decoder in one call (one box per
  crop); each chunk's masks replace the coarse ones before the next chunk runs, so memory is
  bounded by the chunk, not by the instance count.
* **Replacement**: the refined mask replaces the coarse one inside the crop (outside it the
  coarse mask stays), unless the refined mask is empty or overlaps the coarse mask inside the
  crop with IoU below ``MIN_AGREEMENT`` (then the segmenter found something else and the coarse
  mask is kept). Each instance records which was kept (``refined`` in the instances file), its
  ``mask_score`` becomes the segmenter's IoU prediction when refined, and the confidence map is
  ``score x probability`` of the kept mask.
* **Memory**: masks and probabilities stay inside their windows (:class:`CroppedInstances`);
  a refined instance's window grows to cover its crop, never to the whole image.
* **Dedup again** (:func:`dedup_again`): the refined masks go through the backend's mask dedup
  once more (its ``mask_nms_iou`` and ``min_area``, in the backend's order): two instances
  refined into one object, or a mask refined below ``min_area``, are dropped as step 5 drops
  them. Before the fifty-sixth round the instances file could hold both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from engine.progress import no_hf_progress_bars
from labeler.backends import BackendOutput, LabelBackend, LoadedImage
from labeler.config import LabelConfig
from labeler.crops import CroppedInstances
from labeler.dedup import DedupRules, MaskCrop, dedup_instances
from labeler.models import (
    LoadedModel,
    autocast,
    keep_prompt_encoder_fp32,
    load_segmenter,
    preprocess,
    refuse_over_pad,
    refuse_too_thin,
    resolve_device,
    resolve_dtype,
)
from labeler.sam_post import finite_logits, finite_scores

REFINE_MARGIN = 0.25  # crop = box grown by this fraction of its larger side, on every side
MIN_CROP = 32  # pixels: the smallest crop side (tiny boxes still get some context)
MIN_AGREEMENT = 0.1  # refined vs coarse mask IoU inside the crop below this: keep the coarse one


def crop_window(
    box: np.ndarray, height: int, width: int, margin: float = REFINE_MARGIN
) -> tuple[int, int, int, int]:
    """The square crop ``(x0, y0, x1, y1)`` (int pixels) around an XYXY ``box`` (see the module
    doc), inside an image of ``height x width``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    side = int(np.ceil(max(side, MIN_CROP)))

    def span(lo: float, hi: float, size: int) -> tuple[int, int]:
        s = min(side, size)
        a = int(round((lo + hi) / 2 - s / 2))
        a = min(max(a, 0), size - s)
        return a, a + s

    cx0, cx1 = span(x0, x1, width)
    cy0, cy1 = span(y0, y1, height)
    return cx0, cy0, cx1, cy1


class Refiner:
    """Re-segments instances on crops with a SAM / SAM-HQ / SAM 2 segmenter (module doc)."""

    def __init__(
        self, segmenter: LoadedModel, device: str, dtype: Any = None, chunk: int = 4
    ) -> None:
        self.segmenter, self.device, self.dtype, self.chunk = segmenter, device, dtype, chunk

    def _inputs(self, crop: np.ndarray, box: np.ndarray) -> tuple[Any, Any, Any, np.ndarray]:
        """``(pixel_values (3, S, S), original (h, w), resized (h, w), box in resized pixels)``."""
        import torch

        x = preprocess(self.segmenter.processor, crop)
        pv = x["pixel_values"][0]
        resized = x.get("reshaped_input_sizes")
        resized = resized[0] if resized is not None else torch.tensor(pv.shape[-2:])
        oh, ow = (int(v) for v in x["original_sizes"][0])
        rh, rw = (int(v) for v in resized)
        scale = np.array([rw / ow, rh / oh, rw / ow, rh / oh], np.float32)
        return pv, x["original_sizes"][0], resized, np.asarray(box, np.float32) * scale

    def segment_crops(
        self, crops: list[np.ndarray], boxes: list[np.ndarray]
    ) -> Iterator[tuple[np.ndarray, float]]:
        """Per crop ``(probability (h, w) float32 at the crop's resolution, predicted IoU)`` for
        one XYXY box in crop pixels each; ``chunk`` crops per encoder and decoder call, yielded
        chunk by chunk (only one chunk's probabilities exist at a time)."""
        import torch

        model, proc = self.segmenter.model, self.segmenter.processor
        kind = self.segmenter.model_type
        for start in range(0, len(crops), self.chunk):
            ins = [
                self._inputs(c, b)
                for c, b in zip(
                    crops[start : start + self.chunk],
                    boxes[start : start + self.chunk],
                    strict=True,
                )
            ]
            pixels = torch.stack([x[0] for x in ins]).to(self.device)
            bx = torch.as_tensor(np.stack([x[3] for x in ins]))[:, None].to(self.device)
            with torch.inference_mode(), autocast(self.device, self.dtype):
                emb = model.get_image_embeddings(pixels)
                kw: dict[str, Any] = {"image_embeddings": emb}
                if kind == "sam_hq":
                    kw = {"image_embeddings": emb[0], "intermediate_embeddings": emb[1]}
                res = model(input_boxes=bx, multimask_output=False, **kw)
            orig = torch.stack([x[1] for x in ins])
            sam2 = kind in ("sam2", "sam2_video")  # SAM 2 / 2.1 hub repos say sam2_video
            post = (orig,) if sam2 else (orig, torch.stack([x[2] for x in ins]))
            logits = proc.post_process_masks(finite_logits(res.pred_masks), *post, binarize=False)
            ious = finite_scores(res.iou_scores.reshape(len(ins), -1)[:, 0]).cpu().numpy()
            for j, lg in enumerate(logits):
                yield torch.sigmoid(lg.reshape(lg.shape[-2:])).cpu().numpy(), float(ious[j])

    def refine(
        self,
        images: list[np.ndarray],
        outputs: list[BackendOutput],
        names: list[str] | None = None,
    ) -> list[BackendOutput]:
        """Refine every instance of every output (module doc). Returns new outputs whose
        instances are :class:`CroppedInstances` (masks inside their windows) with ``refined``.
        A crop its processor would resize to 0 px across, or larger than the pad size of one
        that does not resize, raises :class:`~labeler.models.ImageTooThin` or
        :class:`~labeler.models.CropOverPad` naming its image (``names``, else its index)."""
        proc = getattr(self.segmenter, "processor", None)
        proc = getattr(proc, "image_processor", proc)  # SamProcessor's: pad size, do_resize
        cropped = [
            o.instances
            if isinstance(o.instances, CroppedInstances)
            else CroppedInstances.from_instances(o.instances, o.probs)
            for o in outputs
        ]
        jobs, crops, boxes = [], [], []  # jobs: (image index, instance index, crop window)
        for i, (img, inst) in enumerate(zip(images, cropped, strict=True)):
            h, w = img.shape[:2]
            for k, box in enumerate(inst.xyxy):
                win = crop_window(box, h, w)
                if proc is not None:  # a segmenter (tests stand in for segment_crops)
                    image = names[i] if names is not None else f"image {i}"
                    name = f"{image}: the crop of instance {k}"
                    crop = (win[3] - win[1], win[2] - win[0])
                    refuse_too_thin(proc, crop, name, "--refine segmenter")  # 1 px x 200
                    refuse_over_pad(proc, crop, name, crop=True)
                jobs.append((i, k, win))
                crops.append(img[win[1] : win[3], win[0] : win[2]])
                boxes.append(np.clip(box - np.array(win[:2] * 2, np.float32), 0, None))
        # current (mask, probability) of every instance; refined ones replaced as chunks arrive
        state = [
            [
                (m, m.mask.astype(np.float16) if inst.probs is None else inst.probs[k])
                for k, m in enumerate(inst.masks)
            ]
            for inst in cropped
        ]
        mscores = [inst.mask_scores.copy() for inst in cropped]
        refined = [np.zeros(len(inst), bool) for inst in cropped]
        for (i, k, win), (prob, iou) in zip(jobs, self.segment_crops(crops, boxes), strict=True):
            mask, p, kept = _replace(*state[i][k], win, prob)
            state[i][k] = (mask, p)
            if kept:
                refined[i][k], mscores[i][k] = True, iou
        new = []
        for i, (o, inst) in enumerate(zip(outputs, cropped, strict=True)):
            out = CroppedInstances(
                inst.image_size, inst.xyxy, inst.scores, mscores[i], inst.class_ids, inst.prompts,
                [m for m, _ in state[i]], [p for _, p in state[i]], refined[i],
            )  # fmt: skip
            new.append(BackendOutput(out, None, dict(o.timings)))
        return new


def _replace(
    coarse: MaskCrop, coarse_prob: np.ndarray, win: tuple[int, int, int, int], prob
) -> tuple[MaskCrop, np.ndarray, bool]:
    """The instance's mask and probability on the union of its window and the crop ``win``, the
    refined ones pasted inside ``win`` when the replacement rule accepts them (module doc)."""
    x0, y0, x1, y1 = win
    if coarse.mask.size:  # an empty mask has a 0x0 window at (0, 0): not part of the union
        x0, y0 = min(coarse.x0, x0), min(coarse.y0, y0)
        x1, y1 = max(coarse.x1, x1), max(coarse.y1, y1)
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    full_prob = np.zeros((y1 - y0, x1 - x0), np.float16)
    ys, xs = slice(coarse.y0 - y0, coarse.y1 - y0), slice(coarse.x0 - x0, coarse.x1 - x0)
    mask[ys, xs], full_prob[ys, xs] = coarse.mask, coarse_prob
    cy, cx = slice(win[1] - y0, win[3] - y0), slice(win[0] - x0, win[2] - x0)
    new = prob > 0.5
    old = mask[cy, cx]
    union = np.count_nonzero(new | old)
    agree = np.count_nonzero(new & old) / union if union else 0.0
    if not new.any() or agree < MIN_AGREEMENT:
        return coarse, coarse_prob, False
    mask[cy, cx], full_prob[cy, cx] = new, prob
    return MaskCrop(y0, x0, mask), full_prob, True


class RefinedBackend:
    """Any backend followed by crop-zoom refinement; its name stays the inner backend's."""

    def __init__(self, inner: LabelBackend, config: LabelConfig) -> None:
        self.inner, self.config = inner, config
        self.name = inner.name
        self.uses_torch = True  # the refiner's segmenter, whatever the inner backend
        self.refiner: Refiner | None = None

    def identity(self) -> dict[str, Any]:
        return {
            **self.inner.identity(),
            "refine": self.config.refine,
            "refine_rules": {
                "margin": REFINE_MARGIN,
                "min_crop": MIN_CROP,
                "min_agreement": MIN_AGREEMENT,
                "dedup_again": True,  # since the fifty-sixth round: a run before re-labels
            },
        }

    def load(self) -> dict[str, Any]:
        info = self.inner.load()
        c = self.config
        device = resolve_device(c.device)
        with no_hf_progress_bars():  # as the inner backend's models: our own bar is the only one
            seg = load_segmenter(c.refine, None, device, c.local_files_only, option="--refine")
        self.setup(seg, device)
        return {**info, "refine": seg.info()}

    def setup(self, segmenter: LoadedModel, device: str) -> None:
        """Use a loaded segmenter (``load`` calls this; benchmarks pass their own)."""
        dtype = resolve_dtype(self.config.precision, device)
        if dtype is not None and segmenter.model_type in ("sam", "sam_hq"):
            keep_prompt_encoder_fp32(segmenter.model)  # as grounded-sam: box phases in fp32
        self.refiner = Refiner(segmenter, device, dtype, self.config.batch_size)

    def prepare(self, item: LoadedImage) -> None:
        prepare = getattr(self.inner, "prepare", None)
        if prepare is not None:
            prepare(item)

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]:
        import torch

        if self.refiner is None:
            raise RuntimeError("RefinedBackend.label called before load()")
        outputs = self.inner.label(batch)
        t0 = time.perf_counter()
        with torch.inference_mode():
            outputs = self.refiner.refine(
                [b.image for b in batch], outputs, [str(b.path) for b in batch]
            )
        c = self.config  # the backends' step 5 rules (grounded_sam, sam3)
        rules = DedupRules(iou=c.mask_nms_iou, min_area=max(c.cls.min_area, 1))
        outputs = [dedup_again(o, rules) for o in outputs]
        dt = (time.perf_counter() - t0) / max(len(batch), 1)
        for o in outputs:
            o.timings["refine"] = dt
        return outputs


def dedup_again(output: BackendOutput, rules: DedupRules) -> BackendOutput:
    """``output`` (refined :class:`CroppedInstances`, in the backend's dedup order: best prompt
    score first) without the instances the mask dedup drops now that their masks changed: a
    duplicate of an earlier one, or a mask under ``rules.min_area``. The order stands in for the
    prompt scores (not kept past the backend's dedup); there are no negatives left. The same
    object when nothing is dropped."""
    inst = output.instances
    n = len(inst)
    rank = (n - np.arange(n)) / max(n, 1)  # strictly decreasing: the dedup visits them in order
    keep = dedup_instances(inst.masks, rank, None, rules)
    if len(keep) == n:
        return output
    return BackendOutput(inst[keep], output.probs, output.timings)


def with_refinement(backend: LabelBackend, config: LabelConfig) -> LabelBackend:
    """``backend`` wrapped in :class:`RefinedBackend` when ``config.refine`` is set (once)."""
    if not config.refine or isinstance(backend, RefinedBackend):
        return backend
    return RefinedBackend(backend, config)
