"""Label-map PNG I/O: the one format shared by labeler, fusion, trainer and evaluator.

A label map is an ``(H, W) uint8`` array, pixel value = class id, 255 = ignore. On disk it is a
single-channel PNG; palette PNGs are accepted on read (their indices are the ids). Writes are
atomic. RGB colour-coded PNGs convert with :func:`rgb_to_label` given a taxonomy.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from annotations.fileio import atomic_write_bytes
from annotations.taxonomy import IGNORE_ID, Taxonomy

IGNORE = IGNORE_ID

# Image formats a label map must not be read from (read_label): their compression changes
# values, and a map whose classes happen to stay below the taxonomy's count reads without error.
LOSSY_FORMATS = ("JPEG", "MPO")

# What Pillow raises on an image it will not read: OSError (truncated, not an image),
# SyntaxError (some plugins), ValueError (a PNG text chunk decompressing past
# PngImagePlugin.MAX_TEXT_CHUNK, 1 MB) and DecompressionBombError (over twice
# Image.MAX_IMAGE_PIXELS pixels, a size the header declares). Callers name the file.
PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def from_pillow(e: BaseException, path: str | os.PathLike) -> bool:
    """Whether ``e``, one of :data:`PIL_ERRORS` caught around reading ``path``, is Pillow's
    rather than a ``ValueError`` of the reader's own that names the file already."""
    return not (isinstance(e, ValueError) and str(e).startswith(f"{path}:"))


HISTOGRAM_BLOCK = 1 << 22  # pixels per cv2.calcHist call of byte_histogram (float32 counts: exact)


def byte_histogram(values: np.ndarray) -> np.ndarray:
    """``(256,) int64``: how many entries of a uint8 array hold each value, as
    ``np.bincount(values.ravel(), minlength=256)`` gives, counted a block of pixels at a time:
    bincount converts its input to int64, 8 bytes a pixel (97 MB for a 4032x3024 label map,
    more than the map itself 8 times over). ``cv2.calcHist`` counts uint8 as it stands, about
    twice as fast as bincount's blocks; its float32 counts are exact below 2^24 a block. Other
    dtypes go to bincount whole, as before."""
    flat = np.asarray(values).ravel()
    if flat.dtype != np.uint8:
        return np.bincount(flat, minlength=256)
    out = np.zeros(256, np.int64)
    for start in range(0, flat.size, HISTOGRAM_BLOCK):
        block = flat[start : start + HISTOGRAM_BLOCK].reshape(1, -1)
        out += cv2.calcHist([block], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    return out


def imread_unchanged(path: str | os.PathLike) -> np.ndarray | None:
    """``cv2.imread(path, cv2.IMREAD_UNCHANGED)``, decoded from the file's bytes: OpenCV's
    ``imread`` crashed the process (a segmentation fault, no message) on a file name that is
    not UTF-8 (``caf\\xe9.png`` from a latin-1 system, or any non-ASCII name under ``LC_ALL=C``
    with Python's UTF-8 mode off). None where OpenCV cannot decode it (an empty file too)."""
    data = np.frombuffer(Path(path).read_bytes(), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None


def read_label(path: str | os.PathLike, taxonomy: Taxonomy | None = None) -> np.ndarray:
    """Read a label PNG into an ``(H, W) uint8`` array.

    Args:
        path: a single-channel (mode ``L`` or ``1``) or palette (mode ``P``) PNG. An RGB PNG is accepted
            only with ``taxonomy``, whose palette maps colours to ids.
        taxonomy: when given, values must be class ids of it or 255; others raise ``ValueError``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, unsupported mode, or values outside the taxonomy. The
            message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label file not found")
    if path.stat().st_size == 0:  # PIL would say "cannot identify image file"
        raise ValueError(f"{path}: the file is empty (expected a PNG label map)")
    try:
        with Image.open(path) as img:
            if img.format in LOSSY_FORMATS:  # values near an edge changed: 0..6 read as 0..8
                raise ValueError(
                    f"{path}: holds {img.format} data, not PNG: its lossy compression changes "
                    "label values along every edge (save label maps as PNG)"
                )
            img.load()
            mode = img.mode
            if mode in ("L", "P", "1"):  # "1": a bilevel mask PNG reads as 0/1
                label = np.array(img).astype(np.uint8, copy=False)  # a copy already
            elif mode in ("RGB", "RGBA") and taxonomy is not None:
                label = rgb_to_label(np.array(img.convert("RGB")), taxonomy, source=str(path))
            elif mode in ("I", "I;16", "I;16B"):
                arr = np.array(img)
                if arr.size and (arr.min() < 0 or arr.max() > 255):
                    raise ValueError(
                        f"{path}: 16-bit label with values above 255 (max {arr.max()})"
                    )
                label = arr.astype(np.uint8)
            else:
                hint = ""
                if mode.startswith("RGB"):
                    rgb = np.array(img.convert("RGB"))
                    hint = _grey_hint(rgb) or " (pass a taxonomy to convert colour-coded labels)"
                raise ValueError(
                    f"{path}: expected a single-channel or palette PNG, got mode {mode}{hint}"
                )
    except PIL_ERRORS as e:
        if not from_pillow(e, path):
            raise
        raise ValueError(f"{path}: cannot read label image ({e})") from None
    if taxonomy is not None:
        validate_label(label, taxonomy, source=str(path))
    return label


@functools.cache
def _outside(allowed: frozenset[int]) -> np.ndarray:
    """``(256,) uint8`` lookup table: 1 at the values not in ``allowed``."""
    table = np.ones(256, np.uint8)
    table[[v for v in allowed if 0 <= v <= 255]] = 0
    return table


def holds_only(values: np.ndarray, allowed: Iterable[int]) -> bool:
    """True when every entry of ``values`` is one of ``allowed``: for a uint8 array a 256-entry
    table lookup and a max, one pass over it (several times faster than counting every value
    with :func:`byte_histogram`); other dtypes through ``np.isin``."""
    values = np.asarray(values)
    if values.size == 0:
        return True
    if values.dtype != np.uint8:
        return bool(np.isin(values, list(allowed)).all())
    flat = np.ascontiguousarray(values)
    if flat.ndim != 2:
        flat = flat.reshape(1, -1)
    return not cv2.LUT(flat, _outside(frozenset(allowed))).max()


def validate_label(label: np.ndarray, taxonomy: Taxonomy, source: str = "label") -> None:
    """Raise ``ValueError`` naming ``source`` when ``label`` holds values that are not class ids or 255."""
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(
            f"{source}: label map must be (H, W) uint8, got {label.shape} {label.dtype}"
        )
    if holds_only(label, (*range(min(taxonomy.num_classes, IGNORE)), IGNORE)):
        return  # only a map with a bad value is counted, for the values its message names
    counts = byte_histogram(label)
    present = np.flatnonzero(counts)
    bad = [int(v) for v in present if v >= taxonomy.num_classes and v != IGNORE]
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        raise ValueError(
            f"{source}: label values {shown} are not class ids "
            f"(expected 0..{taxonomy.num_classes - 1} or 255 = ignore)"
        )


def encode_png(array: np.ndarray, compression: int = 3) -> bytes:
    """PNG bytes of an ``(H, W)`` uint8 or ``(H, W, 3)`` RGB uint8 array (OpenCV's fast encoder)."""
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] != 3)
    ):
        raise ValueError(f"expected (H, W) or (H, W, 3) uint8, got {array.shape} {array.dtype}")
    if array.size == 0:
        raise ValueError(f"cannot write an empty {array.shape} image as PNG")
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(
        ".png", np.ascontiguousarray(array), [cv2.IMWRITE_PNG_COMPRESSION, compression]
    )
    if not ok:
        raise ValueError(f"PNG encoding failed for array {array.shape}")
    return buf.tobytes()


@dataclass(frozen=True, eq=False)
class EncodedLabel:
    """A label map held as the PNG bytes :func:`write_label` writes for it, with its size and
    value counts. At 4032x3024 a mask is 12 MB as an array and tens of KB so: a step that holds
    many (an import of an annotated subset) holds them so, and writes the bytes as they are."""

    png: bytes
    shape: tuple[int, int]
    histogram: np.ndarray  # (256,) pixels of each value

    @classmethod
    def of(cls, label: np.ndarray) -> EncodedLabel:
        png = encode_png(label)  # checks (H, W) uint8
        return cls(png, label.shape, byte_histogram(label))

    def decode(self) -> np.ndarray:
        """The ``(H, W) uint8`` label map."""
        return cv2.imdecode(np.frombuffer(self.png, np.uint8), cv2.IMREAD_UNCHANGED)


def write_label(path: str | os.PathLike, label: np.ndarray) -> Path:
    """Write an ``(H, W) uint8`` label map as a single-channel PNG, atomically."""
    label = np.asarray(label)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f"{path}: label map must be (H, W) uint8, got {label.shape} {label.dtype}")
    try:
        data = encode_png(label)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return atomic_write_bytes(path, data)


def label_to_rgb(label: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """``(H, W) uint8`` ids -> ``(H, W, 3) uint8`` RGB with the taxonomy's palette (255 white)."""
    return taxonomy.palette()[label]


def _grey_hint(rgb: np.ndarray) -> str:
    """The end of an error about an RGB label map whose three channels are equal everywhere:
    class ids saved as a colour image (an editor's or OpenCV's 3-channel save), not colours."""
    if rgb.size and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return (
            "; its three channels are equal everywhere: class ids saved as an RGB image? "
            "save them as a single-channel (greyscale) PNG"
        )
    return ""


def rgb_to_label(rgb: np.ndarray, taxonomy: Taxonomy, source: str = "image") -> np.ndarray:
    """``(H, W, 3) uint8`` RGB colour-coded label -> ``(H, W) uint8`` ids.

    White (255, 255, 255) maps to 255 (ignore) unless a class has that colour. Colours that are
    no class's raise ``ValueError`` listing a few of them.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"{source}: expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    code = (
        (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    )
    lut: dict[int, int] = {(255 << 16) | (255 << 8) | 255: IGNORE}
    for c in taxonomy.classes:
        r, g, b = c.color
        lut[(r << 16) | (g << 8) | b] = c.id
    keys = np.array(sorted(lut), dtype=np.uint32)
    values = np.array([lut[k] for k in keys.tolist()], dtype=np.uint8)
    idx = np.searchsorted(keys, code).clip(0, len(keys) - 1)
    found = keys[idx] == code
    if not found.all():
        bad = np.unique(code[~found])[:5]
        shown = ", ".join(f"({v >> 16}, {(v >> 8) & 255}, {v & 255})" for v in bad.tolist())
        raise ValueError(
            f"{source}: colours {shown} are not in the taxonomy's palette" + _grey_hint(rgb)
        )
    return values[idx]


def write_color_preview(
    path: str | os.PathLike,
    label: np.ndarray,
    taxonomy: Taxonomy,
    image: np.ndarray | None = None,
    alpha: float = 0.5,
) -> Path:
    """Write a colourised preview PNG of ``label``, blended over ``image`` (HWC uint8 RGB) if given."""
    rgb = label_to_rgb(label, taxonomy)
    if image is not None:
        if image.shape[:2] != label.shape:
            raise ValueError(
                f"{path}: image {image.shape[:2]} and label {label.shape} differ in size"
            )
        rgb = cv2.addWeighted(image, 1.0 - alpha, rgb, alpha, 0.0)
    return atomic_write_bytes(path, encode_png(rgb))
