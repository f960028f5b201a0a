"""The report's pictures: the bar chart of the three scores (:func:`plot_chart`, ``chart.png``) and
the overlay grids of a few images (``overlays/<stem>.jpg``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from annotations.fileio import (
    UNREADABLE,
    atomic_write_bytes,
    first_line,
)
from annotations.labelmap import IGNORE, read_label
from annotations.subset import Subset
from engine.metrics import to_binary
from engine.outputs import (
    SOURCE_COLORS,
    detail_overlays,
    figure_text,
    find_png,
    jpeg_bytes,
    matplotlib_for,
    overlay,
    save_figure,
    subplots,
)
from engine.report.config import ReportConfig
from engine.text import (
    METRICS,
    SOURCES,
)

log = logging.getLogger(__name__)


def plot_chart(rows: list[dict], path: Path, class_name: str) -> Path:
    """Grouped bars: one panel per metric, one bar per source."""
    matplotlib_for("the report's chart", " (or turn the chart off with --no-chart)")
    fig, axes = subplots(1, 3, figsize=(10, 3.4))
    colors = {kind: "#{:02x}{:02x}{:02x}".format(*rgb) for kind, rgb in SOURCE_COLORS.items()}
    for ax, (key, title, _) in zip(axes, METRICS, strict=True):
        vals = [r[key] if r[key] is not None else 0 for r in rows]
        ax.bar(range(len(rows)), vals, color=[colors[r["kind"]] for r in rows])
        ax.set_xticks(
            range(len(rows)),
            [r["source"].replace(" ", "\n", 1) for r in rows],
            fontsize=8,
            parse_math=False,
        )
        ax.set_title(title)
        for i, v in enumerate(vals):
            ax.text(
                i,
                v,
                f"{v:.2f}" if key != "bf1" else f"{v:.3f}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_ylim(0, (100 if key != "bf1" else 1) * 1.08)
    # parse_math off: a class named with two '$' (x$^$y) was mathtext, which failed the command
    fig.suptitle(f"{figure_text(class_name)}: annotated subset", parse_math=False)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def _overlays(
    cfg: ReportConfig,
    subset: Subset,
    dirs: dict[str, tuple[Path, int]],
    class_pixels: dict[str, int],
    images: dict[str, Path],
    out: Path,
) -> tuple[list[Path], list[str], int]:
    """Side-by-side overlays of the subset images with the most class pixels (``images``:
    stem -> image path of the split). Their maps are read again here: holding every image's
    maps from the scoring would cost 4 bytes a pixel per image (33 MB at 4K) for the few drawn."""
    if cfg.overlays <= 0 or not images:
        return [], [], 0
    split = subset.split

    from engine.datasets import load_image

    ranked = sorted(class_pixels, key=lambda s: (-class_pixels[s], s))
    written, panels, details = [], [], 0
    for stem in ranked:
        if len(written) == cfg.overlays:
            break
        if stem not in images:
            continue
        try:
            image = load_image(images[stem])
        except UNREADABLE as e:  # scored without it: only its picture is lost
            log.warning("%s; no overlay for it, the next image is drawn", first_line(e))
            continue
        maps = {"annotation": subset.mask(stem)}
        for name, (d, class_id) in dirs.items():
            p = find_png(d, split, stem)
            if p is not None:  # fused labels may lack a test image; the others were checked
                maps[name] = to_binary(read_label(p), class_id, keep_ignore=True)
        panels = [n for n in ("annotation", *SOURCES) if n in maps]
        thumbs = [overlay(image, maps[n], SOURCE_COLORS[n], 384) for n in panels]
        # a panel with 255 pixels (unannotated, uncertain, ignored) says what its magenta is;
        # before, nothing in the report did
        captions = [f"{n}; magenta: 255" if (maps[n] == IGNORE).any() else n for n in panels]
        rows = [list(zip(thumbs, captions, strict=True))]
        layers = [(maps[n], SOURCE_COLORS[n]) for n in panels]
        detail = detail_overlays(image, maps["annotation"], layers, thumbs)
        if detail is not None:  # the densest outlines enlarged, boxed in the row above
            enlarged, zoom = detail
            captions = [f"{zoom:.2g}x the image's pixels"] + [""] * (len(panels) - 1)
            rows.append(list(zip(enlarged, captions, strict=True)))
            details += 1
        row = _grid(rows)
        written.append(atomic_write_bytes(out / "overlays" / f"{stem}.jpg", jpeg_bytes(row, 88)))
    return written, panels, details


def _caption_size(caption: str) -> tuple[int, int]:
    """The black box a caption is written in: ``(width, height)`` in pixels."""
    import cv2

    (tw, th), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    return tw + 10, th + 12


def _tile(t: np.ndarray, caption: str) -> np.ndarray:
    """An overlay thumbnail with its caption in its top-left corner (none when empty)."""
    import cv2

    t = t.copy()
    if caption:
        bw, bh = _caption_size(caption)
        th = bh - 12
        t[:bh, :bw] = 0  # the box's bw x bh pixels (cv2.rectangle draws its corner inclusive)
        cv2.putText(
            t, caption, (5, th + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA
        )
    return t


def _grid(rows: list[list[tuple[np.ndarray, str]]]) -> np.ndarray:
    """Rows of ``(thumbnail, caption)`` as one picture, 4 white pixels apart. Each caption is
    written in its thumbnail's top-left corner where every caption fits there (its box no wider
    than the thumbnail, no taller than a third of it); else each goes in a band above its
    thumbnail, and each column is as wide as its widest caption or thumbnail (white beside it),
    so that the panels of a very wide or tall photo (a 384x19 or 19x384 thumbnail) are named:
    before, the box covered a 384x19 thumbnail and "annotation" read "an" on a 19-px one."""
    boxes = {c: _caption_size(c) for row in rows for _, c in row if c}
    if all(
        boxes[c][0] <= t.shape[1] and 3 * boxes[c][1] <= t.shape[0]
        for row in rows
        for t, c in row
        if c
    ):
        rows_drawn = [_row([_tile(t, c) for t, c in row]) for row in rows]
    else:
        band = max(h for _, h in boxes.values())
        widths = [
            max(max(t.shape[1], boxes[c][0] if c else 0) for t, c in column)
            for column in zip(*rows, strict=True)
        ]
        rows_drawn = []
        for row in rows:
            cells = []
            for (t, c), width in zip(row, widths, strict=True):
                cell = np.full((band + t.shape[0], width, 3), 255, np.uint8)
                cell[band:, : t.shape[1]] = t
                cells.append(_tile(cell, c))
            rows_drawn.append(_row(cells))
    return np.concatenate(
        [np.pad(r, ((0, 4), (0, 0), (0, 0)), constant_values=255) for r in rows_drawn]
    )[:-4]


def _row(tiles: list[np.ndarray]) -> np.ndarray:
    """Thumbnails side by side, 4 white pixels apart."""
    return np.concatenate(
        [np.pad(t, ((0, 0), (0, 4), (0, 0)), constant_values=255) for t in tiles], axis=1
    )
