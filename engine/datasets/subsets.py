"""An annotated subset checked against its dataset when it is scored or fused: masks edited
after the import, photos replaced since (:func:`replaced_subset_photos`).
"""

from __future__ import annotations

from pathlib import Path

from annotations.fileio import file_bytes
from annotations.subset import Subset
from engine.datasets.samples import SegDataset
from engine.datasets.spec import load_spec
from engine.text import counted, few


def edited_masks_line(sub: Subset, edited: list[str], used: str) -> str:
    """The one warning line for masks of ``sub`` edited after the import (other pixel counts
    than ``subset.json`` records: :func:`annotations.subset.edited_since_import`), ``used``
    (fused, scored) as they are now; ``engine info SUBSET`` calls them problems. Said by
    ``engine fuse --corrections``; before the fiftieth round ``engine report`` and ``engine
    compare`` scored such masks without a word."""
    return (
        f"{sub.root}: {counted(len(edited), 'mask')} edited after the import (other pixel counts "
        f"than subset.json records: {few(edited, total=True)}): {used} as "
        f"{'it is' if len(edited) == 1 else 'they are'} now"
    )


def replaced_subset_photos(
    sub: Subset, images: dict[str, Path] | None = None, folder: Path | None = None
) -> str | None:
    """A warning when photos of an annotated subset are not the files its masks were drawn on:
    their file (``images``: stem -> path in ``folder``; by default the subset's split of
    ``sub.data_root``) is now another size than ``subset.json``'s ``image_bytes`` records (a
    photo replaced under the same name). Scored against such masks, a model or pseudo labels of
    the new photo count the old photo's objects (before, silently). None when none changed, or
    nothing can be compared (a subset imported before the sizes were recorded, or its dataset
    not found from here)."""
    was = sub.info.get("image_bytes")
    if not isinstance(was, dict):
        return None
    if images is None:
        root = sub.data_root
        if root is None or not root.is_dir():
            return None
        try:
            data = SegDataset(load_spec(root), sub.split, require_labels=False, lenient=True)
        except (OSError, ValueError):
            return None  # the dataset's own problem: engine info on it names it
        images = {s.stem: s.image_path for s in data.samples}
        folder = data.spec.image_dir(sub.split)
    changed = [
        stem
        for stem in sub.stems
        if isinstance(was.get(stem), int)
        and (now := file_bytes(images.get(stem))) is not None
        and now != was[stem]
    ]
    if not changed:
        return None
    return (
        f"{folder}: {counted(len(changed), 'photo')} of the annotated subset {sub.root} changed "
        f"since its masks were imported ({few(changed)}: another file size): the masks may not "
        "fit them; annotate them again"
    )
