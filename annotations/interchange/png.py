"""Masks as PNG images: one binary or label PNG per image (:func:`png_to_mask`), and CVAT's
"Segmentation mask" export (Pascal VOC layout: ``labelmap.txt`` and colour-coded PNGs,
:func:`segmentation_mask_to_mask`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from annotations.fileio import first_line, read_text
from annotations.interchange.names import _in_split, check_size, dataset_stem
from annotations.interchange.records import ImageMask, label_role
from annotations.labelmap import LOSSY_FORMATS, PIL_ERRORS, from_pillow


def png_to_mask(
    path: str | os.PathLike,
    sizes: dict[str, tuple[int, int]],
    binary: bool = False,
    value: int | None = None,
) -> ImageMask:
    """Read a PNG mask named after its image's stem.

    By default values must be 0, 1 or 255 (the subset's own format). ``binary=True``: any
    non-zero value is the class (for 0/255 masks from other tools; no unannotated pixels).
    ``value``: an index mask of many classes (Pascal VOC's ``SegmentationClass``, a palette
    PNG read as its indices): ``value`` is the class, 255 stays unannotated (VOC's void), any
    other value is 0, and the other non-zero values are counted as other labels
    (``value 7``: one per image).
    """
    path = Path(path)
    stem = _in_split(path.stem, sizes) or path.stem  # composed as the image is named (NFC/NFD)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: mask file not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty (expected a PNG mask)")
    try:
        with Image.open(path) as img:
            if img.format in LOSSY_FORMATS:  # binary mode took its ringing for the class
                raise ValueError(
                    f"{path}: holds {img.format} data, not PNG: its lossy compression changes "
                    "mask values along every edge (save masks as PNG)"
                )
            check_size(path, stem, (img.height, img.width), sizes)  # before decoding it
            if img.mode in ("L", "P", "1"):
                arr = np.asarray(img).astype(np.uint8, copy=False)  # "1": bool, as 0 and 1
            elif img.mode.startswith("I"):  # 16 or 32 bits: the values themselves (Pillow's
                arr = np.asarray(img)  # convert("RGB") clipped them at 255, "unannotated")
            else:  # a grey mask saved as RGB(A): one channel's values
                rgb = np.asarray(img.convert("RGB"))
                if (rgb[..., 1:] != rgb[..., :1]).any():  # read as grey: values never written
                    raise ValueError(
                        f"{path}: a colour mask (its channels differ); give one-channel PNGs, "
                        "or a CVAT segmentation-mask export with --format segmask"
                    )
                arr = rgb[..., 0]
    except PIL_ERRORS as e:
        if not from_pillow(e, path):
            raise
        raise ValueError(f"{path}: cannot read PNG ({e})") from None
    if binary:
        return ImageMask(stem, (arr > 0).astype(np.uint8), str(path))
    if value is not None:
        mask = np.where(arr == value, np.uint8(1), np.where(arr == 255, np.uint8(255), np.uint8(0)))
        others = {f"value {v}": 1 for v in np.unique(arr).tolist() if v not in (0, value, 255)}
        return ImageMask(stem, mask, str(path), others)
    bad = np.setdiff1d(np.unique(arr), [0, 1, 255])
    if bad.size:
        raise ValueError(
            f"{path}: mask values must be 0, 1 or 255 (unannotated), found {bad[:5].tolist()}; "
            "for class-index masks give the class's value (--png-value N: other values become "
            "0), for masks whose every non-zero value is the class pass binary mode (--png-binary)"
        )
    if (arr == 255).any() and not (arr == 1).any():
        raise ValueError(
            f"{path}: mask has 255 but no 1 pixels, which looks like a 0/255 binary mask; "
            "pass binary mode (--png-binary) if 255 means the class"
        )
    return ImageMask(stem, arr.astype(np.uint8), str(path))


LABELMAP = "labelmap.txt"  # label:r,g,b:parts:actions per line, as CVAT's Datumaro writes it
SEGMENTATION_DIR = "SegmentationClass"  # one colour-coded PNG per image


def read_labelmap(
    path: str | os.PathLike, class_name: str | None = None
) -> dict[str, tuple[int, int, int]]:
    """``label -> (r, g, b)`` of a CVAT / Pascal VOC ``labelmap.txt`` (``#`` lines skipped).
    Two labels of one colour are a ``ValueError`` where importing ``class_name`` gives them
    different roles (:func:`label_role`: one of them the class or ``unannotated``), whose
    pixels cannot be told apart; two other labels (``road`` and ``sidewalk``) both become 0,
    as before the forty-eighth round, when such a label map was refused whatever the class.
    No ``class_name`` (a description of the files): none is refused."""
    path = Path(path)
    colors: dict[str, tuple[int, int, int]] = {}
    for n, line in enumerate(read_text(path, "label map").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # the label is all before the first field that is a colour: a label with ':' in it
        # (`a:b:250,50,83::`, as Datumaro writes it, unescaped) keeps its ':'
        fields = line.split(":")
        at = next((i for i in range(1, len(fields)) if _rgb(fields[i]) is not None), None)
        if at is None:
            raise ValueError(f"{path}: line {n} is not 'label:r,g,b:...' ({line.strip()[:60]!r})")
        label, rgb = ":".join(fields[:at]).strip(), _rgb(fields[at])
        same = next(
            (
                other
                for other, c in colors.items()
                if c == rgb
                and other != label
                and class_name is not None
                and label_role(other, class_name) != label_role(label, class_name)
            ),
            None,
        )
        if same is not None:  # one label's pixels were read as the other's
            raise ValueError(
                f"{path}: {same!r} and {label!r} have one colour, {rgb}, so their pixels cannot "
                "be told apart; give each label its own colour in CVAT and export again"
            )
        colors[label] = rgb  # type: ignore[assignment]
    if not colors:
        raise ValueError(f"{path}: no labels in the label map")
    return colors


def _rgb(text: str) -> tuple[int, int, int] | None:
    """``(r, g, b)`` of a label map's colour field ``r,g,b``, else None."""
    try:
        rgb = tuple(int(v) for v in text.split(","))
    except ValueError:
        return None
    return rgb if len(rgb) == 3 and all(0 <= v <= 255 for v in rgb) else None  # type: ignore[return-value]


def labelmap_codes(colors: dict[str, tuple[int, int, int]]) -> dict[int, str]:
    """``0xRRGGBB -> label`` of a label map (:func:`read_labelmap`)."""
    return {(r << 16) | (g << 8) | b: name for name, (r, g, b) in colors.items()}


def read_color_codes(path: str | os.PathLike) -> np.ndarray:
    """A colour-coded PNG as ``(H, W) int32`` codes ``0xRRGGBB`` (:func:`labelmap_codes`);
    ``ValueError`` naming the file when it cannot be read."""
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB")).astype(np.int32)
    except PIL_ERRORS as e:
        raise ValueError(f"{path}: cannot read PNG ({first_line(e)})") from None
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def segmentation_mask_to_mask(
    path: str | os.PathLike,
    class_name: str,
    colors: dict[str, tuple[int, int, int]],
    sizes: dict[str, tuple[int, int]],
) -> ImageMask:
    """One colour-coded PNG of a CVAT "Segmentation mask" export: the class's colour -> 1, the
    unannotated label's -> 255, every other label's (the background included) -> 0. A colour the
    label map lacks is an error naming the file and the colour."""
    path = Path(path)
    code = read_color_codes(path)
    stem = dataset_stem(path.stem, sizes)
    check_size(path, stem, code.shape, sizes)
    values, inverse = np.unique(code, return_inverse=True)
    by_code = labelmap_codes(colors)
    table = np.zeros(len(values), np.uint8)
    others: dict[str, int] = {}
    spelled = next((name for name in colors if label_role(name, class_name) == 1), None)
    for i, v in enumerate(values.tolist()):
        name = by_code.get(v)
        if name is None:
            color = ((v >> 16) & 255, (v >> 8) & 255, v & 255)
            raise ValueError(f"{path}: colour {color} is not in the label map ({LABELMAP})")
        role = label_role(name, class_name)
        table[i] = role or 0
        if role is None and name.strip().casefold() != "background":
            others[name] = 1
    out = table[inverse.reshape(code.shape)]
    return ImageMask(stem, out, str(path), others, spelled=spelled)
