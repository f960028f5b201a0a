"""What ``engine info GALLERY`` says of a review gallery (``engine review``'s output): the
finished gallery from its ``review.json``, or a gallery not finished.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.info.records import add_made_with
from engine.info.unfinished import _unfinished_drawn
from engine.runlock import writer
from engine.text import first_lines


def render_review(root: str | os.PathLike) -> tuple[list, int]:
    """Rich renderables for ``engine info GALLERY``: what a finished review gallery (its
    ``review.json``, written last with ``index.html``) shows: the class, the label run, the
    images with a prediction and with an annotation, the predictions beside the pseudo labels,
    the page to open, and each image it could not draw (its problems: a card saying why)."""
    from rich.table import Table

    from annotations.fileio import read_json

    root = Path(root)
    data = read_json(root / "review.json", "review gallery")
    if not isinstance(data, dict):
        raise ValueError(f"{root / 'review.json'}: not an engine review gallery (not an object)")
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    failed = [str(f) for f in data.get("failed") or []]
    head = Table(title=f"Review gallery {root}", show_header=False)
    head.add_column("what")
    head.add_column("value", overflow="fold")
    head.add_row("class", f"{data.get('class_name')} ({data.get('backend')} pseudo labels)")
    head.add_row("label run", str(data.get("run")))
    head.add_row("split", str(config.get("split") or "every split the run labelled"))
    images = int(data.get("images") or 0)
    # of how many the run labelled, where --limit cut (review.json's labelled: before the
    # fifty-sixth round it held none, and "images 2" hid the cut the page said)
    labelled = data.get("labelled")
    cut = (
        f" of {labelled:,}, --limit {config.get('limit')}"
        if isinstance(labelled, int) and labelled > images
        else ""
    )
    head.add_row(
        "images",
        f"{images:,}{cut} ({int(data.get('with_prediction') or 0):,} with a "
        f"prediction, {int(data.get('with_annotation') or 0):,} with an annotation, scored)",
    )
    for pred in config.get("pred") or []:
        head.add_row("predictions", str(pred))
    if config.get("gt"):
        head.add_row("annotations", str(config["gt"]))
    add_made_with(head, data.get("environment"))
    for f in first_lines(failed, "review.json", shown=5):  # each a card saying why
        head.add_row("not drawn", f)
    if holder := writer(root):  # engine review into it again: its page is replaced at the end
        head.add_row("now", f"{holder} is drawing it again (this is the earlier gallery)")
    return [head, f"open: {root / 'index.html'}"], len(failed)


def _unfinished_review(folder: Path) -> tuple[str, int] | None:
    """What ``engine info`` says of a review gallery's folder without its ``review.json``
    (written last, with ``index.html``): thumbnails in ``thumbs/`` and nothing else but hidden
    files (:func:`_unfinished_drawn`). Before, "no image split folders found", as of a wrong
    folder."""
    return _unfinished_drawn(
        folder, "engine review", ("thumbs", "index.html"), "thumbnail", "drawing",
        "this review gallery", "a review gallery not finished: {who} stopped before writing its "
        "page ({drawn} drawn, no review.json)",
    )  # fmt: skip
