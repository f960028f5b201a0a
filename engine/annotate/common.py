"""What the ``engine annotate`` subcommands share: the formats and an export's file names, a
split's images, the checks of one-line image names, the warning of a run not labelled to the end.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from annotations.interchange import EXPORT_PARTS
from annotations.labelrun import LabelRun
from engine.datasets import SegDataset, load_spec
from engine.text import LINE_BREAK, LINE_BREAK_FOLDER, LINE_BREAK_TARGET, counted

log = logging.getLogger(__name__)

IMPORT_FORMATS = ("coco", "cvat", "labelme", "labelstudio", "png", "segmask", "yolo")
EXPORT_FORMATS = ("coco", "labelme", "labelstudio")
COCO_FILE, IMAGE_LIST = "coco.json", "images.txt"
EXPORT_FILES = (COCO_FILE, *EXPORT_PARTS, IMAGE_LIST)  # what an export folder holds


def dataset_images(
    data: str | os.PathLike | None, run: LabelRun | None, split: str, command: str
) -> dict[str, Path]:
    """``stem -> image path`` of the split, from ``data`` or the run's recorded dataset. Listed
    leniently: a precise label without its image is the dataset's problem (``engine info``
    names it), not that of an export, import or gallery, which read the images only. A dataset
    ``engine synth`` draws now or stopped half way is refused, naming ``command``
    (:meth:`DatasetSpec.check_finished`): before, its scenes so far passed for the split."""
    root = Path(data) if data else (run.data_root if run is not None else None)
    if root is None:
        return {}
    if not data and not root.is_dir():  # recorded by the run: say so, and what to do
        raise FileNotFoundError(
            f"{run.run_json}: its dataset root {root} is not found from here, nor beside the "
            "run where it was; pass the dataset root with --data"
        )
    spec = load_spec(root)
    spec.check_not_stopped(command)
    ds = SegDataset(spec, split, require_labels=False, lenient=True)
    return {s.stem: s.image_path for s in ds.samples}


def other_splits(data: str | os.PathLike, split: str) -> Callable[[str], str | None]:
    """``stem -> the other split that holds it`` (or None) for the dataset's images outside
    ``split``: where an annotated image of the wrong split belongs. The other splits' file names
    are listed on the first question only, since only an error asks."""

    @functools.cache
    def found() -> dict[str, str]:
        spec = load_spec(data)
        stems: dict[str, str] = {}
        for other in spec.available_splits():
            if other != split:
                # lenient: another split's own problem (a stray label) must not hide the hint
                ds = SegDataset(spec, other, require_labels=False, lenient=True)
                stems.update((s.stem, other) for s in ds.samples if s.stem not in stems)
        return stems

    return lambda stem: found().get(stem)


def check_one_line_names(stems: list[str], source: Path) -> None:
    """Refuse an image whose name holds a line break (legal on Linux): the one-name-per-line
    lists (pick's list, an export's ``images.txt``) would write it as two lines, which read
    back as two images that are not there."""
    broken = [s for s in stems if "\n" in s or "\r" in s]
    if broken:
        more = f" ({len(broken) - 1} more such)" if len(broken) > 1 else ""
        raise ValueError(f"{source}: image {broken[0]!r}{more}: {LINE_BREAK}")


def check_one_line_paths(stems: list[str], images: dict[str, Path], source: Path) -> None:
    """Refuse an image whose path, as an export's ``images.txt`` writes it (resolved), holds a
    line break in a folder's name, or in the name of the file the image links to (legal on
    Linux; one in the image's own name is :func:`check_one_line_names`'): the line would read
    back as two paths not there. Before, a link whose target's name held it was blamed on the
    target's folder ("rename the folder", of a folder without one)."""
    for stem in stems:
        if stem not in images:
            continue
        path = images[stem].resolve()
        if any(c in path.name for c in "\r\n"):
            raise ValueError(
                f"{source}: image {stem!r} links to {str(path)!r}: {LINE_BREAK_TARGET}"
            )
        if any(c in str(path) for c in "\r\n"):
            raise ValueError(
                f"{source}: image {stem!r} is in {str(path.parent)!r}: {LINE_BREAK_FOLDER}"
            )


def _no_labelled(run: LabelRun, split: str) -> ValueError:
    """The error of a run with no labelled image in ``split``, naming the splits it has."""
    return ValueError(f"{run.root}: no labelled images in split {split!r} {splits_said(run)}")


def splits_said(run: LabelRun) -> str:
    """``(splits: val, test)``, the splits a run has, as its no-labelled-image errors end."""
    return f"(splits: {', '.join(run.splits()) or 'none'})"


def warn_not_labelled(
    run: LabelRun, split: str, labelled: list[str], listed: Iterable[str], what: str
) -> None:
    """Say that ``what`` (an export, a pick, a review) covers only the ``labelled`` images of a
    split whose run stopped before the others of the dataset's ``listed`` ones: without a word
    the part passed for the split."""
    pending = sorted(set(listed) - set(labelled))
    if pending:
        log.warning(
            "%s: %s of split %r not labelled (yet): the %s has the %s labelled; engine label "
            "with the same settings finishes the run",
            run.root,
            counted(len(pending), "image"),
            split,
            what,
            counted(len(labelled), "image"),
        )


def coco_file_name(image: Path | None, image_root: Path | None, stem: str) -> str:
    """A COCO ``file_name``: the image's path in its split's image folder, as COCO datasets
    write it and as CVAT matches it to a task's frames (a frame's name must end with it; a path
    with ``..`` or the dataset's folders never matches). The image's name when it is elsewhere,
    ``STEM.jpg`` when it is not found."""
    if image is None:
        return f"{stem}.jpg"
    if image_root is not None:
        try:
            return image.relative_to(image_root).as_posix()
        except ValueError:
            pass
    return image.name
