"""What image sizes the models can take: the processor call with its channel axis given, the
labeling failures that running again does not fix (:class:`CannotLabel`: too thin, larger than
the pad size) and the closing advice on them, and the check that a processor's inputs are its
model's size."""

from __future__ import annotations

from functools import partial
from typing import Any

from engine.text import counted


def preprocess(processor: Any, image: Any) -> Any:
    """``processor(images=image)`` as PyTorch tensors for one ``(H, W, 3)`` RGB array.

    The channel axis is given, not guessed: transformers guesses it from the shape and takes an
    image 1, 3 or 4 pixels tall for channels-first, so such an image (or crop) was resized
    transposed (its boxes and sizes silently wrong) or failed."""
    return processor(images=image, return_tensors="pt", input_data_format="channels_last")


# In every message of :class:`ImageTooThin` and the closing line counting them.
TOO_THIN = "too thin to label"

OVER_PAD = "larger than the pad size"  # :class:`ImageOverPad`'s


# why each kind of :class:`CannotLabel` (the manifest's ``cannot``) fails on every run, in the
# closing line counting them
CANNOT = {
    "too_thin": f"{TOO_THIN}: a model would resize {{them}} to 0 px across",
    "over_pad": f"{OVER_PAD} of a segmenter whose processor does not resize: do_resize false",
    "refine_over_pad": f"an instance's crop {OVER_PAD} of a --refine segmenter whose processor "
    "does not resize: do_resize false",
}


class CannotLabel(ValueError):
    """An image the backend fails on every run: ``engine label`` records it with ``retry``
    false (and its ``cannot``: the class's ``kind``, a key of :data:`CANNOT`) and offers no
    retry for it (:func:`failure_advice`)."""

    kind = ""


class ImageTooThin(CannotLabel):
    """An image a model's processor would resize to 0 pixels across."""

    kind = "too_thin"


class ImageOverPad(CannotLabel):
    """An image larger than the pad size of a SAM processor that does not resize: transformers
    fails it with "Padding dimensions are negative", on every run."""

    kind = "over_pad"


class CropOverPad(CannotLabel):
    """An image with an instance whose ``--refine`` crop (labeler/refine.py's ``crop_window``)
    is larger than the pad size of a SAM processor that does not resize: the backend gives the
    same boxes, hence the same crops, on every run."""

    kind = "refine_over_pad"


def failure_advice(
    failed: int, not_retryable: int, cannot: dict[str, int] | None = None
) -> list[str]:
    """The closing lines on a label run's failed images (``engine label``'s summary, ``engine
    info RUN_DIR``): ``failed`` images whose last try failed, of which ``not_retryable`` fail on
    every run (:class:`CannotLabel`; ``retry`` false in the manifest), ``cannot`` of them by
    kind (:data:`CANNOT`; those not counted there are too thin: a manifest from before the
    fifty-fourth round records no kind, and knew no other): a retry is offered for the others
    only, and a line per kind says why running again fails them again."""
    lines = []
    if failed > not_retryable:
        n = counted(failed - not_retryable, "image")
        lines.append(f"{n} failed; run the same command again to retry exactly those")
    others = {k: n for k, n in (cannot or {}).items() if k != "too_thin"}
    kinds = {"too_thin": not_retryable - sum(others.values()), **others}
    for kind, n in kinds.items():
        if n > 0:
            them = "them" if n > 1 else "it"
            lines.append(
                f"{counted(n, 'image')} cannot be labelled by this backend "
                f"({CANNOT.get(kind, kind).format(them=them)}); running again fails {them} again"
            )
    return lines


def resized_size(processor: Any, height: int, width: int) -> tuple[int, int, int, str] | None:
    """``(height, width, longest_edge, limit)``: the size an image processor resizes an image of
    ``height x width`` to, with its rounding: Grounding DINO's ``shortest_edge``/``longest_edge``
    resize (transformers' ``get_size_with_aspect_ratio``), SAM's and SAM-HQ's ``longest_edge``
    (``int(side * scale + 0.5)`` as ``SamImageProcessor._get_preprocess_shape``). ``limit`` says
    which shapes keep a pixel across. ``None`` for a processor resizing every image to one fixed size (SAM 2, SAM 3)
    or none (``do_resize`` false: it keeps every image's size, a 1x3000 image too).
    """
    from transformers.image_transforms import get_size_with_aspect_ratio

    if not getattr(processor, "do_resize", True):  # before, such an image was refused as too thin
        return None

    size = processor.size
    edge = size.get if isinstance(size, dict) else partial(getattr, size)
    shortest, longest = edge("shortest_edge", None), edge("longest_edge", None)
    if shortest and longest:
        oh, ow = get_size_with_aspect_ratio((height, width), shortest, longest)
        return oh, ow, longest, f"under {2 * longest} times"
    if longest:
        scale = longest * 1.0 / max(height, width)
        oh, ow = int(height * scale + 0.5), int(width * scale + 0.5)
        return oh, ow, longest, f"at most {2 * longest} times"
    return None


def refuse_too_thin(processor: Any, shape: tuple[int, ...], name: str, model: str) -> None:
    """Raise :class:`ImageTooThin` (one line naming ``name``, its size and the limit) when
    ``processor`` would resize an image of ``shape`` (H, W, ...) to 0 pixels across: transformers
    then fails with "Size must contain 'height' and 'width' keys ... SizeDict(height=0, ...)"."""
    h, w = int(shape[0]), int(shape[1])
    got = resized_size(processor, h, w)
    if got is not None and min(got[:2]) < 1:
        raise ImageTooThin(
            f"{name} is {h}x{w} px (HxW), {TOO_THIN}: the {model}'s processor (longest_edge "
            f"{got[2]}) resizes it to {got[0]}x{got[1]} px; it reads an image whose long side is "
            f"{got[3]} its short side"
        )


def refuse_over_pad(processor: Any, shape: tuple[int, ...], name: str, crop: bool = False) -> None:
    """Raise :class:`ImageOverPad` (one line naming ``name``, its size and the pad size) when a
    SAM ``processor`` that does not resize (``do_resize`` false) would pad an image of ``shape``
    (H, W, ...) to a smaller size: transformers then fails it with "Padding dimensions are
    negative", recorded before the fifty-fourth round as an error a rerun retries (and fails
    again the same way). ``crop``: ``shape`` is a ``--refine`` crop's, ``name`` says whose
    (:class:`CropOverPad`; retried until the fifty-fifth round)."""
    pad = getattr(processor, "pad_size", None)
    if getattr(processor, "do_resize", True) or not getattr(processor, "do_pad", True) or not pad:
        return
    h, w = int(shape[0]), int(shape[1])
    ph, pw = int(pad["height"]), int(pad["width"])
    if h > ph or w > pw:
        error, model, what, a = (
            (CropOverPad, "--refine segmenter", "crop", "a")
            if crop
            else (ImageOverPad, "segmenter", "image", "an")
        )
        raise error(
            f"{name} is {h}x{w} px (HxW), {OVER_PAD}: the {model}'s processor pads every "
            f"{what} to {ph}x{pw} px and does not resize (do_resize false); it reads {a} "
            f"{what} at most {ph}x{pw} px"
        )


def check_input_size(source: str, processor: Any, side: int) -> None:
    """Refuse a model whose processor makes inputs of another size than the ``side`` x
    ``side`` px its model reads (its config's ``image_size``).

    The backends scale each box to the processor's frame (its resized size, from its own output,
    never an assumed 1024) and SAM's prompt encoder reads the box in its config's
    ``image_size`` frame: a folder whose processor settings are another model's (``size``,
    ``pad_size``, ``do_resize``) would put every box elsewhere. SAM's encoder refused each image
    ("Input image size (32*32) doesn't match model (64*64)"), SAM 2 failed in its mask decoder
    ("view size is not compatible"), SAM 3 in its detector ("The size of tensor a (4) must
    match the size of tensor b (16)"); here it is one line at load. SAM's processor pads every
    image to its square, with ``do_resize`` false too: that one passes. The probe is a 6x8 px
    image: not square, so that a SAM processor that does not pad (``do_pad`` false) is refused
    too."""
    import numpy as np

    side = int(side)
    pixels = preprocess(processor.image_processor, np.zeros((6, 8, 3), np.uint8))["pixel_values"]
    h, w = (int(v) for v in pixels.shape[-2:])
    if (h, w) != (side, side):
        raise ValueError(
            f"{source}: its processor makes {h}x{w} px inputs and its model reads {side}x{side} "
            "px (a 6x8 px image through the processor; the model's config.json image_size): "
            "the processor's settings (size, pad_size, do_resize, do_pad in "
            "processor_config.json or preprocessor_config.json) are not this model's; restore "
            "the files saved with it"
        )
