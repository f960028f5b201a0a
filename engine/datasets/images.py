"""Images and label maps decoded and measured: Pillow's limits and warnings set once, EXIF and
XMP orientation, RGB of any mode (:func:`load_image`), sizes without decoding
(:func:`image_size`), and the hint for a label map that fits the photo turned.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from annotations.fileio import first_line
from annotations.labelmap import PIL_ERRORS, from_pillow

# 4K photos are far below Pillow's decompression-bomb limit, but 64 MP inputs are not. Pillow
# refuses an image of over twice this (600 MP: DecompressionBombError, named with its file by
# every reader, PIL_ERRORS) and only warns between the two, in a line naming no file, once per
# image: that warning is not shown (the image is read, as any other).
Image.MAX_IMAGE_PIXELS = 300_000_000
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# A photo's damaged EXIF block (a camera's or editor's, common in the wild) made Pillow print
# "TiffImagePlugin.py:982: UserWarning: Corrupt EXIF data. ..." and the line of its source,
# naming no file, in every command that read one. Pillow reads what it can of the block and
# every command takes the orientation it finds, the same one: nothing to act on. Set once
# here, not around each read: ``warnings.catch_warnings`` is not safe in the labeler's decoding
# threads.
warnings.filterwarnings(
    "ignore", r"(Corrupt EXIF data|Metadata Warning)", UserWarning, r"PIL\.TiffImagePlugin"
)

# A palette PNG or GIF with a transparent colour ("tRNS" bytes, as an editor's export or a
# screenshot tool writes it) made Pillow's convert("RGB") in load_image warn "Palette images
# with Transparency expressed in bytes should be converted to RGBA images", naming no file; under
# ``python -W error`` the warning was an exception and the command stopped with Pillow's
# traceback. A photo's RGB drops the transparency, as it drops an RGBA photo's alpha: nothing
# to act on.
warnings.filterwarnings(
    "ignore", "Palette images with Transparency expressed in bytes", UserWarning, r"PIL\.Image"
)


def _missing_file(path: Path) -> FileNotFoundError:
    """The error for an image file ``path`` that is not there: a broken link says where it
    points."""
    if path.is_symlink():
        return FileNotFoundError(f"{path}: broken symbolic link (to {os.readlink(path)})")
    return FileNotFoundError(f"{path}: image file not found")


def size_mismatch(
    label_path: Path,
    shape: tuple[int, int],
    image_path: Path,
    size: tuple[int, int],
    short: bool = False,
) -> str:
    """The error of a label map of ``shape`` (H, W) whose image is ``size`` (W, H) after its
    EXIF orientation, naming the image by its file name when ``short``. A label of the image's
    size as stored, which its EXIF orientation turns, is said to be one: a tool that ignores
    EXIF draws labels on the stored pixels, and "its image is 4032x3024" alone contradicts
    what the file's header shows (3024x4032). The header is read only for such a label."""
    h, w = shape
    msg = (
        f"{label_path}: label is {w}x{h} but its image "
        f"{image_path.name if short else image_path} is {size[0]}x{size[1]}"
    )
    if (w, h) != (size[1], size[0]) or w == h:
        return msg
    return msg + turned_hint(exif_orientation(image_path), (w, h), "label maps")


def exif_orientation(path: Path) -> int:
    """The EXIF orientation of the image at ``path`` (1, upright, when it has none or cannot be
    read): 5 to 8 turn it a quarter, swapping its width and height."""
    try:
        with Image.open(path) as img:
            return _orientation(img)
    except (OSError, SyntaxError, ValueError, TypeError, Image.DecompressionBombError):
        return 1


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation of an opened image, as ``ImageOps.exif_transpose`` takes it: 1
    without one, or when the tag is none of 1 to 8 (which it leaves as it is). One reading
    for every command: the sizes :func:`_oriented_size` gives are those :func:`load_image`
    decodes."""
    value = img.getexif().get(0x0112, 1)
    try:  # a dict lookup, as exif_transpose's: 6, 6.0 and the rational 6/1 are 6; "6" is none
        turn = _ORIENTATIONS.get(value, 1)
    except TypeError:  # unhashable
        return 1
    return 1 if turn != 1 and _from_xmp(img) else turn


def _from_xmp(img: Image.Image) -> bool:
    """Whether the orientation Pillow found is not an EXIF one (a JPEG's or WebP's EXIF block, a
    PNG's eXIf chunk, a TIFF's own tag) but its XMP packet's ``tiff:Orientation`` or ImageMagick's
    ``Raw profile type exif`` PNG text: Pillow turns such a photo, but OpenCV (the release's
    ``LoadImageFromFile``) and a browser (Label Studio draws the file as it does) show it as
    stored, so the engine turned it alone, and its labels and exported annotations were in
    another frame. A TIFF's is taken wherever it is (its own tag or XMP's, tag 700): Pillow's
    TIFF reader turns the pixels itself as it decodes them."""
    if hasattr(img, "tag_v2"):
        return False
    raw = img.info.get("exif")
    if raw is None:
        return True
    exif = Image.Exif()
    exif.load(raw)
    return 0x0112 not in exif


_ORIENTATIONS = {k: k for k in range(1, 9)}


def turned_hint(turn: int, stored: tuple[int, int], what: str) -> str:
    """The end of a size error for ``what`` (label maps, masks) of the ``stored`` (W, H) size
    of an image whose EXIF orientation ``turn`` swaps it; ``""`` for another orientation."""
    if turn not in (5, 6, 7, 8):
        return ""
    return (
        f" (its EXIF orientation {turn} turns the {stored[0]}x{stored[1]} pixels it stores): "
        f"{what} follow the image as displayed, as every engine command reads it, and this one "
        "fits the pixels as stored (drawn with a tool that ignores EXIF?)"
    )


@contextlib.contextmanager
def _decoded(path: str | os.PathLike) -> Iterator[Image.Image]:
    """The image at ``path`` with all of its data decoded: a truncated file raises.

    Raises ``FileNotFoundError``, or ``ValueError`` naming the file when it is unreadable or
    truncated (also for a decoding error inside the ``with`` block)."""
    path = Path(path)
    if not path.is_file():
        raise _missing_file(path)
    if path.stat().st_size == 0:  # PIL would say "cannot identify image file"
        raise ValueError(f"{path}: the file is empty (expected an image)")
    try:
        with Image.open(path) as img:
            img.load()  # raises on truncated data
            yield img
    except PIL_ERRORS as e:
        if not from_pillow(e, path):
            raise
        raise ValueError(f"{path}: cannot decode image ({e})") from None


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    """``(W, H)`` of an opened image after its EXIF orientation. Pillow's TIFF reader turns a
    TIFF by its orientation itself (its size at opening is already the turned one, its pixels
    turned when loaded): swapped again, such a TIFF's header size was the stored one, and
    ``engine fuse`` refused its label as drawn on the stored pixels, which ``engine info``
    (decoding it) accepted."""
    w, h = img.size
    if _orientation(img) not in (5, 6, 7, 8) or _turned_by_pillow(img):
        return (w, h)
    return (h, w)


def _turned_by_pillow(img: Image.Image) -> bool:
    """Whether Pillow gives an opened image's size already turned by its orientation: a TIFF
    whose width and height tags are its size swapped (Pillow 13's TIFF reader; earlier ones
    gave the stored size, as for every other format)."""
    tags = getattr(img, "tag_v2", None)
    if tags is None:
        return False
    return (tags.get(256), tags.get(257)) == img.size[::-1] != img.size


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file into ``(H, W, 3) uint8`` RGB with its EXIF orientation applied.

    Raises ``ValueError`` naming the file when it is unreadable or truncated.
    """
    with _decoded(path) as img:
        # exif_transpose and convert("RGB") each return a copy when they have nothing to do
        # (72 MB of copies of a 4032x3024 photo, 0.2-0.3 s): called only when they do something
        if _orientation(img) in _TRANSPOSED:
            img = ImageOps.exif_transpose(img)
        if img.mode.startswith("I"):  # 16-bit greyscale ("I;16"; "I" from some PNGs): keep the
            return _grey16_to_rgb8(np.asarray(img))  # high byte, as Pillow does for 48-bit RGB
        return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


_TRANSPOSED = (2, 3, 4, 5, 6, 7, 8)  # EXIF orientations that ImageOps.exif_transpose turns


def _grey16_to_rgb8(grey: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8`` from a 16-bit greyscale array: its high byte. Pillow's own
    ``convert("RGB")`` clips such values at 255, which turns a 16-bit photo almost white. A
    32-bit ("I") array whose values all fit in 8 bits is taken as it is."""
    grey = grey.astype(np.int64)
    if grey.max(initial=0) > 255:
        grey = grey >> 8
    g8 = np.clip(grey, 0, 255).astype(np.uint8)
    return np.repeat(g8[..., None], 3, axis=2)


def decoded_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(W, H)`` of an image after EXIF orientation, found by decoding all of its data (so a
    truncated file raises, as in :func:`load_image`) without converting or copying the pixels.

    Raises ``ValueError`` naming the file when it is unreadable or truncated.
    """
    with _decoded(path) as img:
        return _oriented_size(img)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(W, H)`` of an image after EXIF orientation, read from the header without decoding."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return _oriented_size(img)
    except PIL_ERRORS as e:
        if not path.is_file():  # checked only here: this runs once per image
            raise _missing_file(path) from None
        if path.stat().st_size == 0:  # as _decoded says it (PIL: "cannot identify image file")
            raise ValueError(f"{path}: the file is empty (expected an image)") from None
        raise ValueError(f"{path}: cannot read image header ({e})") from None


def label_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(W, H)`` of a label map or mask PNG from its header, as stored: label maps are read
    without any EXIF orientation (:func:`~annotations.labelmap.read_label`), so one that holds
    its photo's EXIF block (an editor that copies it) is of its stored size, not turned as
    :func:`image_size` turns an image. ``ValueError`` naming the file when it cannot be read."""
    try:
        with Image.open(path) as img:
            return img.size
    except PIL_ERRORS as e:
        raise ValueError(f"{path}: cannot read label header ({first_line(e)})") from None
