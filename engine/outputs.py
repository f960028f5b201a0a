"""What the review gallery and the report share: colours, overlay thumbnails, JPEG bytes,
finding label PNGs and the taxonomy that other commands wrote next to them, and how a folder of
predictions was made."""

from __future__ import annotations

import functools
import io
import os
import unicodedata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotations.fileio import atomic_write_bytes, read_json
from annotations.taxonomy import Taxonomy

PSEUDO_COLOR = (255, 200, 0)  # RGB tint of pseudo labels
PRED_COLOR = (0, 160, 255)  # RGB tint of model predictions
GT_COLOR = (0, 220, 90)  # RGB tint of manual annotations
UNCERTAIN_COLOR = (255, 0, 255)  # RGB tint of 255 (uncertain / unannotated) pixels
FUSED_COLOR = (200, 120, 255)  # RGB tint of fused labels
# each source's colour in the report's overlays and in its chart's bars (before, the chart had
# its own: fused labels grey and the model another blue than the overlays' purple and blue)
SOURCE_COLORS = {
    "annotation": GT_COLOR,
    "pseudo labels": PSEUDO_COLOR,
    "fused labels": FUSED_COLOR,
    "joint-trained model": PRED_COLOR,
}


def overlay(
    image: np.ndarray,
    mask: np.ndarray | None,
    color: tuple[int, int, int],
    long_side: int = 512,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Thumbnail of ``image`` with ``mask`` tinted on it.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        mask: ``(H, W) uint8``: 1 = the class (tinted ``color``), 255 = uncertain (tinted
            magenta), anything else untouched. ``None`` gives the bare image.
        long_side: the thumbnail's longer side; never upscaled.
        size: instead, the thumbnail's ``(width, height)``; enlarged pixel by pixel (nearest
            neighbour), so that label pixels show as the blocks they are.
    Returns:
        ``(h, w, 3) uint8`` RGB thumbnail; the class outline is drawn in ``color`` around every
        thumbnail pixel that holds a class pixel, so parts thinner than a thumbnail pixel show.
    """
    h, w = image.shape[:2]
    if mask is not None and mask.shape != (h, w):
        raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {w}x{h}")
    if size is None:
        scale = min(1.0, long_side / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if size[0] <= w else cv2.INTER_NEAREST
    small = cv2.resize(image, size, interpolation=interp).astype(np.float32)
    if mask is None:
        return small.astype(np.uint8)
    for value, tint in ((1, color), (255, UNCERTAIN_COLOR)):
        cover = cv2.resize((mask == value).astype(np.float32), size, interpolation=interp)
        if value == 1:
            class_cover = cover
        a = (0.55 * cover)[..., None]
        small = small * (1 - a) + np.asarray(tint, np.float32) * a
    out = small.clip(0, 255).astype(np.uint8)
    # the outline of every thumbnail pixel that holds any class pixel: a one-pixel spoke of a
    # 4032-wide photo is an eighth of a thumbnail pixel, which a nearest-neighbour sample of
    # the mask (before) kept or lost by where it fell, so thin parts came and went
    edge = (class_cover > 0).astype(np.uint8)
    contours, _ = cv2.findContours(edge, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 1)
    return out


def detail_window(mask: np.ndarray, width: int) -> tuple[int, int, int, int] | None:
    """The window ``(x0, y0, x1, y1)`` of ``width`` pixels (at most the image's, with its aspect
    ratio) that holds the most outline pixels of the class (1) in ``mask``: where thin parts
    and boundaries are densest, as Boundary IoU and F1 see them. None without such a pixel."""
    h, w = mask.shape
    ww = max(1, min(w, int(width)))
    wh = max(1, min(h, round(ww * h / w)))
    inside = (mask == 1).astype(np.uint8)
    edge = inside - cv2.erode(inside, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    if not edge.any():
        return None
    s = cv2.integral(edge)  # (h + 1, w + 1): s[y, x] = edge pixels above and left of (x, y)
    sums = s[wh:, ww:] - s[:-wh, ww:] - s[wh:, :-ww] + s[:-wh, :-ww]  # window at (y0, x0)
    y0, x0 = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(x0), int(y0), int(x0) + ww, int(y0) + wh


def detail_overlays(
    image: np.ndarray,
    reference: np.ndarray,
    layers: list[tuple[np.ndarray, tuple[int, int, int]]],
    thumbs: list[np.ndarray],
) -> tuple[list[np.ndarray], float] | None:
    """Each ``(mask, colour)`` of ``layers`` overlaid again on the window where ``reference``'s
    class outlines are densest (:func:`detail_window`), at the size of the whole-image
    ``thumbs`` (one per layer; the window is boxed in white on them, in place), and how many
    thumbnail pixels an image pixel became. The window is a quarter of the image's width or the
    thumbnail's, whichever is less: a 4032x3024 photo shows its own pixels. None where
    ``reference`` has no class pixel."""
    th, tw = thumbs[0].shape[:2]
    window = detail_window(reference, min(image.shape[1] // 4, tw))
    if window is None:
        return None
    x0, y0, x1, y1 = window
    f = tw / image.shape[1]
    for thumb in thumbs:
        corners = (round(x0 * f), round(y0 * f)), (round(x1 * f) - 1, round(y1 * f) - 1)
        cv2.rectangle(thumb, *corners, (255, 255, 255), 1)
    crop = image[y0:y1, x0:x1]
    tiles = [overlay(crop, mask[y0:y1, x0:x1], color, size=(tw, th)) for mask, color in layers]
    return tiles, tw / (x1 - x0)


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def png_folders(folder: Path, split: str) -> tuple[Path, ...]:
    """Where a split's label PNGs may lie under ``folder``, in the order they are looked for:
    ``folder/split`` (predictions), ``folder/labels/split`` (a label run or fused dataset),
    ``folder/masks`` (an annotated subset), ``folder`` itself."""
    return (folder / split, folder / "labels" / split, folder / "masks", folder)


def find_png(folder: Path, split: str, stem: str) -> Path | None:
    """``<stem>.png`` in the first of :func:`png_folders` that has it, the stem spelled as
    given, else composed (Unicode NFC) or decomposed (NFD): predictions of ``vélo`` named with
    one é by a tool on Linux for an image stored e + U+0301, as macOS names it, were taken for
    none (the review showed the image without its prediction)."""
    names = dict.fromkeys(
        (stem, *(unicodedata.normalize(f, stem) for f in ("NFC", "NFD") if not stem.isascii()))
    )
    for d in png_folders(folder, split):
        for name in names:
            if (d / f"{name}.png").is_file():
                return d / f"{name}.png"
    return None


# taxonomy_record's answer where no folder records one and the caller falls back to MaSS13K
DEFAULT_TAXONOMY = "MaSS13K (default)"


def subset_taxonomy(class_name: str) -> tuple[Taxonomy, str]:
    """The taxonomy an annotated subset's scores read ids in where no folder records one:
    MaSS13K and the subset's class (its folder records none), and how the errors name it."""
    from annotations.taxonomy import MASS13K

    return MASS13K.with_new_class(class_name), "MaSS13K and the subset's class"


def taxonomy_record(*folders: str | os.PathLike | None) -> tuple[Taxonomy, Path] | None:
    """The taxonomy the first of ``folders`` (None entries skipped) records, with the file it
    was read from: ``taxonomy.json`` in the folder or its parent (a fused dataset), or the
    ``taxonomy`` of ``predict.json`` (engine predict); None when none records one."""
    for folder in folders:
        if not folder:
            continue
        for base in (Path(folder), Path(folder).parent):
            if (base / "taxonomy.json").is_file():
                return Taxonomy.load(base / "taxonomy.json"), base / "taxonomy.json"
            meta = base / "predict.json"
            if meta.is_file():
                data = read_json(meta, "prediction record")
                if isinstance(data, dict) and isinstance(data.get("taxonomy"), dict):
                    return Taxonomy.from_dict(data["taxonomy"], source=str(meta)), meta
    return None


def check_size(
    path: Path, arr: np.ndarray, shape: tuple[int, int], against: str, why: str = ""
) -> None:
    """A map of another size than ``shape`` (H, W) is an error naming ``path`` and both sizes;
    ``against`` names what it must match ("the annotation", "its image a.jpg"), ``why`` is
    added in parentheses."""
    if arr.shape != shape:
        raise ValueError(
            f"{path}: is {arr.shape[1]}x{arr.shape[0]} but {against} is {shape[1]}x{shape[0]}"
            + (f" ({why})" if why else "")
        )


# engine predict's settings that change the label maps (predict.json's config keys)
LABEL_SETTINGS = ("size", "mode", "sliding_window", "scales", "flip", "guided_filter")
LABEL_SETTINGS += ("gf_radius", "gf_eps", "gf_guide", "gf_subsample")


def prediction_record(pred: str | os.PathLike) -> dict[str, Any] | None:
    """``pred``'s ``predict.json`` (written by ``engine predict``), its ``config`` checked; None
    without the file (predictions made elsewhere)."""
    path = Path(pred) / "predict.json"
    try:
        meta = read_json(path, "predict.json")
    except FileNotFoundError:
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{path}: no 'config' object; not written by engine predict")
    return meta


def unfinished_prediction(pred: str | os.PathLike) -> str:
    """``"; ..."`` for the end of an error about label maps missing from ``pred`` (or from the
    split folder ``pred`` is in) whose ``predict.json`` says its ``engine predict`` stopped
    before it tried every image (``status`` running: killed, Ctrl-C, SIGTERM); ``""`` for any
    other folder. Before, the error named the missing maps only, as if predict had skipped them."""
    for folder in (Path(pred), Path(pred).parent):
        try:
            meta = prediction_record(folder)
        except (OSError, ValueError):
            return ""  # an unreadable record: the error says what is known without it
        if meta is not None:
            if meta.get("status") != "running":
                return ""
            return (
                f"; its engine predict stopped before labelling every image ({folder / 'predict.json'}"
                ": status running): run the same engine predict command again to finish (it "
                "resumes)"
            )
    return ""


# what predict.json records beside its config: how --size auto chose the size, which step and
# weights predicted, what the model was trained on, and the device and autocast it ran with
RECORDED = (
    "size_source",
    "checkpoint_step",
    "weights_sha256",
    "trained_on",
    "device_used",
    "autocast",
)


def prediction_settings(
    pred: str | os.PathLike | None, meta: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """How ``engine predict`` made the predictions in ``pred`` (its ``predict.json``: checkpoint
    and inference settings), with ``"refinements"``, what departs from the release's
    whole-image, single-scale inference (sliding window, test-time scales, flip, the guided
    filter), and ``"release_inference"``: none of them. None without the file (predictions made
    elsewhere). ``meta``: the record, already read."""
    if meta is None:
        meta = prediction_record(pred) if pred else None
    if meta is None:
        return None
    config = meta["config"]
    settings = {k: config[k] for k in ("checkpoint", *LABEL_SETTINGS) if k in config}
    for key in RECORDED:  # older files lack some
        if key in meta:
            settings[key] = meta[key]
    refinements = []
    if config.get("sliding_window"):  # tiles' score maps averaged: not the whole-image pass
        refinements.append("sliding window")
    scales = config.get("scales", [1])  # a hand edit's number: not a list of scales, not shown
    if isinstance(scales, list | tuple) and list(scales) != [1]:
        refinements.append(f"test-time scales {config['scales']}")
    if config.get("flip"):
        refinements.append("flip")
    if config.get("guided_filter"):
        # predict.json files of the first version (a grey guide, exact) lack guide and subsample
        guide, subsample = config.get("gf_guide", "grey"), config.get("gf_subsample", 1)
        radius = config.get("gf_radius") or "auto"
        refinements.append(
            f"guided filter ({guide} guide, radius {radius}, eps {config.get('gf_eps')}, "
            f"subsample {subsample or 'auto'})"
        )
    settings["refinements"] = refinements
    settings["release_inference"] = not refinements
    return settings


def prediction_title(settings: dict[str, Any] | None) -> str:
    """A short name for predictions made with ``settings`` (:func:`prediction_settings`):
    "prediction", or "prediction + guided filter" and the like for refined inference."""
    refinements = (settings or {}).get("refinements") or []
    if not refinements:
        return "prediction"
    return "prediction + " + ", ".join(r.split(" (")[0] for r in refinements)


def matplotlib_for(needed_by: str, hint: str = "") -> Any:
    """``matplotlib``; ``RuntimeError`` naming what needs it when matplotlib (the ``plot`` extra)
    is not installed.

    Where its config and cache folders cannot be made (a read-only or unset ``$HOME``, a UID
    with no passwd entry: containers and clusters), matplotlib uses a temporary folder, removed
    at exit, as before, but without its two log lines on every chart-drawing command, which
    read as errors before the command's own output (set ``MPLCONFIGDIR`` to keep its font
    cache between runs)."""
    import logging
    import sys

    first = "matplotlib" not in sys.modules
    logger = logging.getLogger("matplotlib")
    level = logger.level
    if first:
        logger.setLevel(logging.ERROR)
    try:
        import matplotlib

        if first:
            matplotlib.get_cachedir()  # its other folder, decided (and cached) now, quietly
    except ImportError:
        raise RuntimeError(
            f"{needed_by} needs matplotlib, which is not installed: "
            f"pip install 'mass-engine[plot]'{hint}"
        ) from None
    finally:
        logger.setLevel(level)
    return matplotlib


def subplots(*args: Any, figsize: tuple[float, float] | None = None, **kwargs: Any) -> Any:
    """``(figure, axes)`` like ``pyplot.subplots``, on a figure pyplot does not know of: the
    caller's backend, open figures and notebook output are left as they were. (Before, charts
    went through pyplot after ``matplotlib.use("Agg")``, which switched a notebook's backend away
    from inline and closed its open figures.)"""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


@functools.cache
def _font_chars(path: str) -> frozenset[int]:
    """The code points a font file has glyphs for (none for a file FreeType cannot read)."""
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


def figure_text(text: str) -> str:
    """``text`` (a class, split or source name) as a chart can draw it: each character that no
    font of matplotlib's default chain has a glyph for (a CJK name with DejaVu Sans, the only
    font matplotlib ships, or an emoji) written as its code point, ``<U+81EA>``. Before, such
    a name was drawn as boxes (``自行车`` three alike), with a ``Glyph ... missing from font``
    warning per character; a user whose matplotlib lists a font that has them (``font.family:
    DejaVu Sans, Noto Sans CJK JP`` in matplotlibrc) gets the name itself."""
    if text.isascii():
        return text
    from matplotlib import font_manager
    from matplotlib.font_manager import FontProperties

    prop = FontProperties()
    find = getattr(font_manager.fontManager, "_find_fonts_by_props", None)  # the fallback chain
    fonts = find(prop) if find else [font_manager.findfont(prop)]
    have = frozenset().union(*(_font_chars(os.fspath(f)) for f in fonts))
    text = unicodedata.normalize("NFC", text)  # e + U+0301 as the font's one glyph of é
    return "".join(c if ord(c) in have else f"<U+{ord(c):04X}>" for c in text)


def earlier_record(path: str | os.PathLike) -> Path:
    """Where ``engine compare`` keeps the earlier ``--json`` record ``path`` while it writes its
    ``--markdown`` and ``--plot`` again (``.cmp.json.earlier`` beside ``cmp.json``): a rerun
    killed among them leaves no record beside files of another run, and ``engine info`` on the
    record says so. The name is :func:`engine.runlock.earlier_name`'s, as a report's or a
    review's earlier record is named while they rerun."""
    from engine.runlock import earlier_name

    path = Path(path)
    return path.with_name(earlier_name(path.name))


def save_figure(fig: Any, path: str | os.PathLike, dpi: int) -> Path:
    """``fig`` (from :func:`subplots`) as a PNG written atomically to ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())
