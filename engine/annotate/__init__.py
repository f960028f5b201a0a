"""Annotated test subsets: export pseudo labels for correction, import corrections, pick images.

The file formats live in :mod:`annotations.interchange` and :mod:`annotations.subset`; this
module ties them to a label run and a dataset (image paths and sizes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import logging
import math
import os
import shutil
import tempfile
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy import ndimage

from annotations.cvat import CVAT_XML, cvat_xml_to_masks, is_cvat_xml
from annotations.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_expanded,
    file_bytes,
    finish_swaps,
    first_line,
    is_disk_error,
    naming,
    output_kind,
    read_json,
    read_text,
    staged,
    swap_in,
)
from annotations.instances import InstanceWindows, MaskWindow
from annotations.interchange import (
    EXPORT_KEY,
    EXPORT_PARTS,
    IGNORE_NAMES,
    LABELMAP,
    MASK_FORMATS,
    POLYGON_KEY,
    SEGMENTATION_DIR,
    CocoBuilder,
    ExportImage,
    ImageMask,
    SplitSizes,
    coco_to_masks,
    composed_stems,
    exported_from,
    is_labelme,
    label_role,
    labelme_to_mask,
    literal_stem,
    png_to_mask,
    read_labelmap,
    segmentation_mask_to_mask,
    stem_of,
    to_labelme,
    unescaped,
    windows_path,
)
from annotations.labelmap import IGNORE, EncodedLabel
from annotations.labelrun import LabelRun
from annotations.labelstudio import (
    image_url,
    is_labelstudio,
    label_config,
    labelstudio_to_masks,
    to_labelstudio,
)
from annotations.polygons import COCO, LABELME, MAX_SIMPLIFY
from annotations.subset import (
    ImageStats,
    Pick,
    Subset,
    changed_stems,
    check_pick,
    held_stems,
    pick_images,
    read_subset,
    replaced_stems,
    write_subset,
)
from annotations.taxonomy import check_class_name
from annotations.yolo import (
    NAME_FILES,
    find_class_names,
    looks_like_yolo,
    yolo_label_folders,
    yolo_to_mask,
)
from engine.datasets import (
    SegDataset,
    check_folder_finished,
    exif_orientation,
    image_size,
    listed_file,
    load_spec,
    relative_ref,
    turned_hint,
)
from engine.metrics.bootstrap import MATCH_IOU, all_match
from engine.parallel import BadItems, map_every_item
from engine.progress import make_progress, track
from engine.runinfo import environment, kept_warnings, too_many_open_files, warnings_entry
from engine.runlock import (
    check_not_being_written,
    check_not_in_output,
    check_output_folder,
    exclusive,
    folders_removed_on_failure,
    writer,
)
from engine.text import LINE_BREAK, LINE_BREAK_FOLDER, LINE_BREAK_TARGET, counted, few, split_names

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


# -- export ------------------------------------------------------------------------------------
@dataclass
class ExportConfig:
    run: str  # label run directory
    out: str  # output folder: coco.json, labelme/<stem>.json, labelstudio/ go here
    split: str | None = None  # split to export; None: a subset's own, else test
    stems: list[str] | None = None  # images to export; None: every image of the split
    data: str | None = None  # dataset root for image paths; None: the one run.json names
    formats: tuple[str, ...] = ("coco", "labelme")  # which files to write (EXPORT_FORMATS)
    mask_format: str = "rle"  # COCO segmentation: "rle" (exact) or "polygon"
    simplify: float = 0.0  # polygon simplification tolerance in pixels (0 = exact outline)
    image_url: str | None = None  # labelstudio: the images' URL prefix (None: local files)
    force: bool = False  # replace an earlier export in ``out`` (corrections saved there go)
    progress: bool = True  # progress bar on stderr


@dataclass
class ExportResult:
    coco: Path | None  # the COCO file, when written
    labelme: list[Path]  # the LabelMe files
    images: int  # images exported
    instances: int  # instances exported
    image_list: Path | None = None  # images.txt: the exported images' paths, to upload
    labelstudio: Path | None = None  # Label Studio's tasks, when written (config.xml beside)
    # pixels inside the instances' holes that the polygons written come back filled with
    # (LabelMe, COCO polygons: no hole syntax), and the exported masks' class pixels (pseudo
    # labels, or a subset's annotations exported to correct them again), both
    # counted over the images exported; 0 / 0 where no polygon is written
    hole_pixels: int = 0
    class_pixels: int = 0
    images_with_holes: int = 0
    # a subset's: pixels inside the holes of its unannotated regions, which their polygons
    # bring back unannotated (255 wins over the class), and of them the class's
    unannotated_pixels: int = 0
    class_pixels_lost: int = 0


def export_annotations(cfg: ExportConfig) -> ExportResult:
    """Write a run's instances of the chosen images (or an annotated subset's masks, for another
    pass of corrections) as COCO and/or LabelMe files."""
    cfg = dataclasses.replace(  # --format coco,labelme as --split takes lists
        cfg,
        formats=tuple(f.lower() for f in split_names(list(cfg.formats)) or ()),
        mask_format=cfg.mask_format.lower(),
    )
    _check_export_options(cfg)
    kind = output_kind(cfg.run)
    # a subset being imported (its masks swapped in before its subset.json names them, or not
    # one written yet) or a run being labelled: read now, part of it passed for the whole
    subset = (kind is not None and kind[0] == "subset.json") or "annotate import" in (
        writer(cfg.run) or ""
    )
    what = "its annotated masks" if subset else "its pseudo labels"
    check_not_being_written(cfg.run, "engine annotate export", what)
    if kind is not None and kind[0] == "subset.json":
        return _write_export(cfg, *_subset_items(cfg))
    return _write_export(cfg, *_run_items(cfg))


def _check_export_options(cfg: ExportConfig) -> None:
    unknown = set(cfg.formats) - set(EXPORT_FORMATS)
    if unknown:
        raise ValueError(
            f"unknown export formats {sorted(unknown)}; choose from {', '.join(EXPORT_FORMATS)}"
        )
    if cfg.image_url is not None and "labelstudio" not in cfg.formats:
        raise ValueError(
            "--image-url is where Label Studio loads images: give --format labelstudio"
        )
    if cfg.mask_format not in MASK_FORMATS:
        raise ValueError(f"--mask-format must be one of {', '.join(MASK_FORMATS)}")
    if cfg.mask_format != "rle" and "coco" not in cfg.formats:
        raise ValueError("--mask-format is COCO's segmentation; LabelMe files are always polygons")
    polygons = "labelme" in cfg.formats or ("coco" in cfg.formats and cfg.mask_format == "polygon")
    # nan was written into the records and failed as "not JSON compliant"; inf and 1e308
    # failed in OpenCV with a traceback
    if not 0 <= cfg.simplify < MAX_SIMPLIFY or (cfg.simplify > 0 and not polygons):
        raise ValueError(
            f"--simplify is a polygon tolerance in pixels (>= 0, under {MAX_SIMPLIFY:g}) for "
            "LabelMe files or COCO's "
            f"--mask-format polygon; got {cfg.simplify} with {' + '.join(cfg.formats)}"
            + (f" ({cfg.mask_format})" if "coco" in cfg.formats else "")
        )


def _chosen(cfg: ExportConfig, available: list[str], source: Path, what: str) -> list[str]:
    """The stems to export: ``cfg.stems`` (file names or paths read as their stems, each once;
    a list from ``ls`` or an earlier export's images.txt) or every available one."""
    known = set(available)  # a 13K-line list against 13K stems: a lookup, not a scan, per try
    composed = composed_stems(dict.fromkeys(known))  # 'vélo' typed for a file named e + U+0301
    given = [s for line in cfg.stems or [] if (s := _stem_named(line, known, composed)) is not None]
    stems = list(dict.fromkeys(given)) if given else available
    missing = [s for s in stems if s not in known]
    if missing:
        raise ValueError(f"{source}: images not in {what}: {missing[:5]}")
    check_one_line_names(stems, source)
    return stems


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


def _stem_named(
    line: str, available: set[str] | list[str], composed: dict[str, str] | None = None
) -> str | None:
    """The stem an image list's line names: the line itself, a file name or path read as its
    stem, else the same before a ``#`` comment (the last ``#`` first). A stem or folder may
    hold a ``#`` (``#3 front.jpg``, ``data #1/images/...``): the whole line is tried first. None:
    a comment line (starting with ``#``) that names no image. ``composed``
    (:func:`composed_stems` of ``available``): a stem typed composed otherwise (Unicode NFC:
    ``vélo`` from a keyboard, the file named e + U+0301 on macOS) names the image too. A
    backslash is part of a name that names an image so (``a\\b.jpg``, legal on Linux, as an
    export's images.txt writes it), else a Windows path's separator, as import reads a name
    (:func:`annotations.interchange.name_stem`); before, always a separator: ``a\\b.jpg``
    named ``b``, and export refused its own images.txt."""
    line = unescaped(line)  # caf\udce9: a name that is not UTF-8, as pick lists write it
    cuts = [i for i, c in enumerate(line) if c == "#"]
    for text in [line, *(line[:i].strip() for i in reversed(cuts))]:
        literal = () if windows_path(text) else (literal_stem(text),)  # a\b.jpg: a\b
        for stem in (text, *literal, stem_of(text)) if text else ():
            if stem in available:
                return stem
            if composed and (found := composed.get(unicodedata.normalize("NFC", stem))):
                return found
    if line.startswith("#"):
        return None
    return stem_of(line.split("#")[0].strip())


@dataclass
class Items:
    """What an export writes: its images, read one at a time, and where they came from."""

    read: Iterator[tuple[ExportImage, Path | None]]  # each image and its path, in order
    count: int  # how many ``read`` yields
    source: dict  # the run's or subset's folder, for the exporter's record
    description: str  # COCO's info description
    image_root: Path | None  # the split's image folder (COCO file names are relative to it)
    split: str


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


def _run_items(cfg: ExportConfig) -> tuple[str, Items]:
    """A label run's class and instances."""
    run = LabelRun.open(cfg.run)
    check_not_being_written(run.root, "engine annotate export", "its pseudo labels")
    split = cfg.split or "test"
    available = run.stems(split)
    if not available:
        raise _no_labelled(run, split)
    stems = _chosen(cfg, available, run.root, f"the run's {split!r} split")
    images = dataset_images(cfg.data, run, split, "engine annotate export")
    if not cfg.stems:  # the whole split asked for: a run stopped half way holds part of it
        warn_not_labelled(run, split, available, images, "export")
    check_one_line_paths(stems, images, run.root)  # before the export's first file
    image_root = _split_image_dir(cfg.data, run, split) if images else None

    def items() -> Iterator[tuple[ExportImage, Path | None]]:
        for stem in stems:
            inst, header = run.instance_windows(split, stem)  # each inside its box
            img = images.get(stem)
            if img is None and header.get("image"):
                p = Path(str(header["image"]))
                img = p if p.is_absolute() else None
            yield ExportImage(stem, coco_file_name(img, image_root, stem), inst), img
            del inst  # not held while the next image is read

    source = {"run": str(run.root), "run_resolved": str(run.root.resolve())}
    desc = f"{run.backend} pseudo labels of {run.class_name} from {run.root}"
    return run.class_name, Items(items(), len(stems), source, desc, image_root, split)


def _subset_items(cfg: ExportConfig) -> tuple[str, Items]:
    """An annotated subset's masks, one instance per image, its unannotated pixels as the
    ``unannotated`` category: a second pass of corrections imports back the same way."""
    sub = read_subset(cfg.run)
    if cfg.split not in (None, sub.split):
        raise ValueError(f"{sub.root}: the subset annotates split {sub.split!r}, not {cfg.split!r}")
    stems = _chosen(cfg, list(sub.stems), sub.root, "the subset")
    data = cfg.data or sub.data_root
    if data is None:
        raise ValueError(f"{sub.root}: the subset records no dataset; pass its root with --data")
    images = dataset_images(str(data), None, sub.split, "engine annotate export")
    check_one_line_paths(stems, images, sub.root)  # before the export's first file
    spec_dir = load_spec(data).image_dir(sub.split)

    def items() -> Iterator[tuple[ExportImage, Path | None]]:
        for stem in stems:
            mask = sub.mask(stem)
            window = MaskWindow.from_full(mask == 1)
            inst = InstanceWindows(mask.shape, np.ones(1, np.int64), (window,))
            inst = inst[: int(window.mask.size > 0)]  # none where the class has no pixel
            img = images.get(stem)
            name = coco_file_name(img, spec_dir, stem)
            yield ExportImage(stem, name, inst, unannotated=mask == IGNORE), img
            del mask, inst  # not held while the next image is read

    source = {"subset": str(sub.root), "subset_resolved": str(sub.root.resolve())}
    desc = f"annotated subset of {sub.class_name} from {sub.root}"
    return sub.class_name, Items(items(), len(stems), source, desc, spec_dir, sub.split)


def _write_export(cfg: ExportConfig, class_name: str, items: Items) -> ExportResult:
    """Write the export one image at a time (one image's masks, inside their boxes, in memory)
    into a hidden folder in ``cfg.out``, then swap it in for an earlier export's files: an
    image that cannot be read leaves the folder as it was."""
    out = Path(cfg.out)
    check_output_folder(out, (), "an export")  # beside a run's files they would mix
    # two exports into one folder: the second removed the first's staging folder as an
    # interrupted one's, and the first's files were lost or mixed with the second's
    with exclusive(out, "engine annotate export", own=EXPORT_FILES):
        return _write_export_locked(cfg, class_name, items, out)


def _write_export_locked(
    cfg: ExportConfig, class_name: str, items: Items, out: Path
) -> ExportResult:
    """:func:`_write_export` once this process holds ``out``'s lock."""
    finish_swaps(out, ".export.")  # an export killed while swapping its files in is whole
    earlier = earlier_export(out)
    if earlier and not cfg.force:
        raise FileExistsError(
            f"{out}: holds an earlier export ({', '.join(earlier)}); annotation tools save "
            "corrections into its files: export to another folder, or replace it with --force"
        )
    env = environment(torch_used=False)
    record = {  # what import compares the corrections with (unchanged_export)
        "image_root": str(items.image_root.resolve()) if items.image_root else None,
        **items.source,
        "split": items.split,
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("force", "progress")},
    }  # COCO's info carries the environment too; a file per image or task, not
    # nor the chosen images' list: a copy in each of N files or tasks made the export grow as
    # N squared (2,000 images: 230 MB where 20 MB hold the masks); COCO's info keeps it
    per_image = {**record, "config": {k: v for k, v in record["config"].items() if k != "stems"}}
    # the folder its relative paths (run, data) were typed from: read from there, not from
    # where the file is imported (record_cwd), as COCO's whole environment says
    per_image["environment"] = {"cwd": env.get("cwd")}
    result = ExportResult(None, [], 0, 0)
    coco = CocoBuilder(class_name, cfg.mask_format, cfg.simplify)
    tasks: list[dict] = []
    found: list[str] = []
    polygons = polygon_files(cfg)
    with staged(out, ".export.") as staging:
        for item, img in track(items.read, "export", items.count, enabled=cfg.progress):
            result.images += 1
            result.instances += len(item.instances)
            if polygons:
                filled, pixels, hidden, lost = hole_pixels(item.instances, item.unannotated)
                result.hole_pixels += filled
                result.class_pixels += pixels
                result.images_with_holes += filled > 0
                result.unannotated_pixels += hidden
                result.class_pixels_lost += lost
            if "coco" in cfg.formats:
                coco.add(item)
            if "labelme" in cfg.formats:
                path = Path("labelme") / f"{item.stem}.json"
                rel = (  # the image, seen from where the file will be
                    labelme_image_path(img, (out / path).parent) if img else f"{item.stem}.jpg"
                )
                doc = to_labelme(item, class_name, rel, cfg.simplify)
                doc[EXPORT_KEY] = {**per_image, POLYGON_KEY: LABELME}
                atomic_write_json(staging / path, doc)
                result.labelme.append(out / path)
            if "labelstudio" in cfg.formats:
                url = image_url(img, item.file_name, cfg.image_url)
                tasks += to_labelstudio(
                    [(item.instances, item.unannotated, url)],
                    class_name,
                    per_image,
                    items.description,
                )
            if img is not None:
                found.append(str(img.resolve()))
            del item  # its masks go before the next image is read
        if "coco" in cfg.formats:
            info = {  # COCO's own info fields, and ours
                "contributor": "engine annotate export",
                "date_created": env["time"],
                EXPORT_KEY: {**record, "environment": env, POLYGON_KEY: COCO},
            }
            doc = coco.result(items.description, info)
            atomic_write_json(staging / COCO_FILE, doc, indent=None)
            result.coco = out / COCO_FILE
        if "labelstudio" in cfg.formats:
            atomic_write_json(staging / "labelstudio" / "tasks.json", tasks, indent=None)
            atomic_write_text(staging / "labelstudio" / "config.xml", label_config(class_name))
            result.labelstudio = out / "labelstudio" / "tasks.json"
        if found:  # what an annotation tool's task needs uploaded: one absolute path a line
            # a name that is not UTF-8 escaped (caf\udce9) by atomic_write_text: it raised
            # UnicodeEncodeError after the other files were made, and nothing was exported
            atomic_write_text(staging / IMAGE_LIST, "".join(f"{p}\n" for p in found))
            result.image_list = out / IMAGE_LIST
        swap_in(staging, EXPORT_FILES)
    if result.hole_pixels or result.unannotated_pixels:
        _warn_holes_filled(out, polygons, result)
    return result


def polygon_files(cfg: ExportConfig) -> list[str]:
    """The files of an export that hold polygons, which carry no holes."""
    files = ["labelme/"] if "labelme" in cfg.formats else []
    if "coco" in cfg.formats and cfg.mask_format == "polygon":
        files.insert(0, f"{COCO_FILE} (--mask-format polygon)")
    return files


def hole_pixels(
    instances: InstanceWindows, unannotated: np.ndarray | None = None
) -> tuple[int, int, int, int]:
    """What one image's polygons bring back that its masks do not hold: the pixels that come
    back the class (the instances' holes, filled per instance, where no other instance covers
    them and no unannotated region does), its exported masks' class pixels, the pixels that
    come back unannotated (the holes of a subset's ``unannotated`` regions, filled per
    8-connected part as each is one polygon), and of those the class's. An import paints
    the unannotated regions over the class: a subset's class pixels ringed by 255 came
    back 255, and the warning said IoU 100 where the import scored 0; a class ring around a
    255 disc comes back exact, and the warning counted the disc as the class's. Each instance is read
    and filled within its box: no full-size mask but their union (and a subset's regions)."""
    union = np.zeros(instances.image_size, bool) if len(instances) else None
    crops = []
    for window in instances.windows:
        y0, x0, y1, x1 = window.box
        crops.append((np.s_[y0:y1, x0:x1], crop := window.crop()))
        union[y0:y1, x0:x1] |= crop
    hidden = _filled_parts(unannotated) if unannotated is not None else None
    if union is None:
        return 0, 0, int(np.count_nonzero(hidden)) if hidden is not None else 0, 0
    filled = union.copy()
    for box, crop in crops:
        if crop.size:
            filled[box] |= ndimage.binary_fill_holes(crop)
    pixels = int(np.count_nonzero(union))
    if hidden is None:
        return int(np.count_nonzero(filled)) - pixels, pixels, 0, 0
    lost = int(np.count_nonzero(union & hidden))
    return (  # the unannotated pixels themselves come back unannotated, painted over the class
        int(np.count_nonzero(filled & ~union & ~hidden & ~unannotated)),
        pixels,
        int(np.count_nonzero(hidden)),
        lost,
    )


def _filled_parts(region: np.ndarray) -> np.ndarray:
    """The pixels a region's polygons hold but the region does not: each 8-connected part's
    holes (a polygon per part, its outer outline), not those parts only enclose together."""
    parts, n = ndimage.label(region, structure=np.ones((3, 3), bool))
    added = np.zeros(region.shape, bool)
    for i, box in enumerate(ndimage.find_objects(parts), 1):
        if box is not None:
            part = parts[box] == i
            added[box] |= ndimage.binary_fill_holes(part) & ~region[box]
    return added


def _warn_holes_filled(out: Path, files: list[str], result: ExportResult) -> None:
    """Say what polygons lose before anyone corrects them: a bicycle's wheels (the gaps
    between the spokes) come back as discs, and a subset imported from them scores the class
    against discs; a subset's unannotated ring takes what it encloses, the class included.
    Before the forty-seventh round only docs/annotate.md said so."""
    union = result.class_pixels + result.hole_pixels
    iou = 100 * (result.class_pixels - result.class_pixels_lost) / union if union else 100.0
    said = []
    if result.hole_pixels:
        said.append(
            f"{counted(result.hole_pixels, 'pixel')} inside the instances of "
            f"{counted(result.images_with_holes, 'image')} (the gaps of a wheel, a ring's "
            "middle) come back as the class unless erased"
        )
    if result.unannotated_pixels:
        said.append(
            f"{counted(result.unannotated_pixels, 'pixel')} inside the unannotated regions "
            f"({result.class_pixels_lost:,} of them the class's) come back unannotated"
        )
    log.warning(
        "%s: the polygons of %s carry no holes: %s (imported unchanged: IoU %.1f against the "
        "masks exported); COCO's RLE masks (the default, for CVAT) and --format labelstudio "
        "(brush) keep the holes",
        out,
        " and ".join(files),
        ", and ".join(said),
        iou,
    )


def labelme_image_path(image: Path, folder: Path) -> str:
    """A LabelMe file's ``imagePath`` for ``image``, the file being in ``folder``: relative to it,
    with ``/``; absolute where there is no relative path (another drive, on Windows:
    ``os.path.relpath`` raised "path is on mount 'D:', start on mount 'C:'" and the export
    failed with it). LabelMe joins it to the file's folder, which keeps an absolute path."""
    return Path(relative_ref(image, folder)).as_posix()


def earlier_export(out: Path) -> list[str]:
    """The files of an earlier export in ``out``, as a message lists them."""
    found = []
    for name in EXPORT_FILES:
        path = out / name
        if path.is_dir():
            found.append(f"{name}/ ({counted(sum(1 for _ in path.iterdir()), 'file')})")
        elif path.exists():
            found.append(name)
    return found


def _split_image_dir(data: str | None, run: LabelRun, split: str) -> Path | None:
    root = Path(data) if data else run.data_root
    return load_spec(root).image_dir(split) if root is not None else None


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


# -- import ------------------------------------------------------------------------------------
@dataclass
class ImportConfig:
    format: str  # IMPORT_FORMATS or "auto" (told by the files)
    sources: list[str]  # files, folders (every file of the format inside) or .zip downloads
    class_name: str  # the class the annotations mark
    data: str  # dataset root: images must exist there (sizes are checked)
    out: str  # subset directory to write
    split: str = "test"  # dataset split of the annotated images
    png_binary: bool = False  # png: any non-zero value is the class (0/255 masks)
    # write over a subset of another class or split in ``out``, or change or remove masks of
    # the subset of the same class and split (corrections)
    replace: bool = False
    png_value: int | None = None  # png: the class's value in index masks (255 = unannotated)
    progress: bool = True  # progress bars on stderr


def _suffixed(folder: Path, ext: str) -> list[Path]:
    """The files of ``folder`` ending in ``ext`` in any case (``.PNG``, as cameras and Windows
    tools write), hidden ones left out, sorted: as a dataset lists its files
    (:func:`engine.datasets.listed_file`)."""
    return sorted(q for q in folder.iterdir() if listed_file(q, (ext,)))


def source_not_found(path: str | os.PathLike, format_given: bool = False) -> FileNotFoundError:
    """The error of an annotation source that does not exist; where its text is a format's name
    (``engine annotate import coco c.json``, the format typed as a source), it says how to name
    the format: before, "coco: annotation source not found" named no ``--format``. With a
    ``--format`` given (``format_given``), it says the name was read as a source: "use --format
    coco" contradicted ``--format yolo coco c.json``."""
    text = str(path)
    fmt = text.lower()
    if fmt not in IMPORT_FORMATS:
        hint = ""
    elif format_given:
        hint = f" ({text!r} is read as a source, not as the format: --format names that)"
    else:
        hint = f" (to name the format, use --format {fmt})"
    return FileNotFoundError(f"{text}: annotation source not found{hint}")


def _expand(sources: list[str], ext: str) -> list[Path]:
    files: list[Path] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            found = _suffixed(p, ext)
            if not found:
                raise FileNotFoundError(f"{p}: no {ext} files in this folder")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise source_not_found(p, format_given=True)  # auto: detect_format said it first
    if not files:
        raise ValueError("no annotation files given")
    return files


def archive_named(text: str, names: dict[str, str]) -> str:
    """``text`` (a message) with the temporary copies of zip downloads named as ``ARCHIVE!``
    (``names``: copy folder -> archive): the copy is gone by the time the message is read."""
    for folder, archive in names.items():
        if text.startswith(f"{folder}: "):  # the download itself, not a folder inside it
            text = text.replace(" in this folder", " in this archive")
        text = text.replace(folder + os.sep, f"{archive}!").replace(folder, archive)
    return text


def import_annotations(cfg: ImportConfig) -> Subset:
    """Turn corrected annotations (or PNG masks) into an annotated subset directory.

    Importing again into the same folder replaces the subset when it is of the same class and
    split and keeps its masks (the same again, or more images); one that would change or remove
    a mask (corrections), and a folder holding another class's subset, are refused unless
    ``cfg.replace`` (:func:`annotations.subset.write_subset`). A ``.zip`` source (an annotation
    tool's download) is read from a temporary copy of its contents; ``subset.json`` names its
    files as ``ARCHIVE!MEMBER``. The warnings the import printed are kept in ``subset.json``'s
    ``warnings`` (``engine info SUBSET`` lists them)."""
    if not cfg.class_name.strip() or cfg.class_name.strip().casefold() in IGNORE_NAMES:
        raise ValueError(
            f"--class {cfg.class_name!r}: give the class the files annotate ('unannotated' and "
            "'ignore' name the regions left unannotated)"
        )
    # the names engine label refuses, by the same rule (a subset of '7' or 'Car\nX' could be
    # scored against no run); spaces around the class dropped, as engine label drops them
    name = check_class_name(cfg.class_name)
    check_expanded(cfg.out, "engine annotate import")
    check_not_in_output(Path(cfg.out), "engine annotate import")
    cfg = dataclasses.replace(cfg, format=cfg.format.lower(), class_name=name)  # --format COCO
    for source in cfg.sources:  # an export replacing these files (EXPORT/labelme/ too)
        here = Path(source) if Path(source).is_dir() else Path(source).parent
        for folder in dict.fromkeys((here, here.parent)):  # before the lock: a source may lie
            # in --out (a subset's corrected export), whose lock this import then holds
            check_not_being_written(folder, "engine annotate import", "its annotations")
    # two imports into one subset: the second removed the first's staging folder as an
    # interrupted one's, and the first wrote a subset.json naming masks that were not there
    with (
        exclusive(cfg.out, "engine annotate import", own=("subset.json",)),
        kept_warnings() as said,
    ):
        return _import_sources(cfg, said)


def _import_sources(cfg: ImportConfig, said: list[str]) -> Subset:
    """:func:`import_annotations` once this process holds ``cfg.out``'s lock: the archives
    among the sources unpacked, then :func:`_import`; ``said``: the warnings so far, growing."""
    archives = [s for s in cfg.sources if s.lower().endswith(".zip")]
    if not archives:
        return _import(dataclasses.replace(cfg, sources=read_sources(cfg.sources)), {}, said)
    with unpacking_folder("engine-import-", Path(archives[0])) as tmp:
        sources, names = [], {}
        for k, source in enumerate(cfg.sources):
            if source in archives:
                folder = unzip(Path(source), tmp / str(k))
                names[str(folder)] = source
                source = str(archive_root(folder))
            sources += read_sources([source])
        try:
            return _import(dataclasses.replace(cfg, sources=sources), names, said)
        except (ValueError, FileNotFoundError) as e:  # name the archive, not its copy
            named = functools.partial(archive_named, names=names)
            if isinstance(e, BadItems):
                raise BadItems(named(e.headline), [named(p) for p in e.problems]) from None
            raise type(e)(named(str(e))) from None


def read_sources(sources: list[str]) -> list[str]:
    """The sources as import reads them: a YOLO dataset's root (``data.yaml`` beside
    ``labels/``, as CVAT, Ultralytics and Roboflow download one) as its label folders
    (:func:`annotations.yolo.yolo_label_folders`), any other source as it is."""
    return [str(f) for s in sources for f in yolo_label_folders(Path(s)) or [s]]


# An archive may unpack to this many times its size, plus this many bytes: annotation files
# compress 5 to 20 times (JSON, XML; PNG masks not at all), a zip bomb about 1000 times.
UNZIP_RATIO, UNZIP_SLACK = 100, 1 << 30


@contextlib.contextmanager
def unpacking_folder(prefix: str, archive: Path) -> Iterator[Path]:
    """A new temporary folder (its name starting ``prefix``) to unpack ``archive`` in, removed
    after. A full TMPDIR that cannot make it is the line of one that cannot take the files:
    before, it named the folder never made ("/tmp/engine-import-k3v9: No space left on
    device"), which the user then could not find."""
    try:
        made = tempfile.TemporaryDirectory(prefix=prefix)
    except OSError as e:
        if is_disk_error(e):
            raise _unpack_refused(e, archive, None) from None
        raise
    with made as tmp:
        yield Path(tmp)


def unzip(archive: Path, into: Path) -> Path:
    """``archive`` unpacked into the new folder ``into``. zipfile writes no member outside it
    (it drops absolute and ``..`` parts of names), writes symlink members as the files they are
    stored as, and no member longer than the size it declares (a longer one fails its CRC): the
    declared sizes are checked before anything is written, and a name given twice, whose second
    copy would replace the first unsaid, is refused."""
    try:
        with _Archive(open(archive, "rb", buffering=0)) as f, zipfile.ZipFile(f) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            if not members:
                raise ValueError(f"{archive}: the archive is empty (no annotation files in it)")
            _check_readable(archive, members)
            _check_unpacked_size(archive, sum(m.file_size for m in members), into)
            written: dict[str, str] = {}
            for m in members:
                path = z.extract(m, into)
                if path in written:
                    first, name = written[path], m.filename
                    what = (
                        f"{first!r} twice"
                        if first == name
                        else f"{first!r} and {name!r}, one file once unpacked"
                    )
                    raise ValueError(
                        f"{archive}: holds {what}: which copy is meant is not known; not read"
                    )
                written[path] = m.filename
    except FileNotFoundError:
        raise source_not_found(archive) from None
    except (zipfile.BadZipFile, OSError) as e:  # its member named in the zip, not the copy
        if too_many_open_files(e):
            raise  # ulimit -n: the command line's line of it, exit code 71 (not "cannot read")
        if is_disk_error(e):
            raise _unpack_refused(e, archive, into) from None
        why = archive_named(first_line(e), {str(into): str(archive)})
        raise ValueError(f"{archive}: cannot read the archive ({why})") from None
    return into


class _Archive(io.BufferedReader):
    """A zip archive opened for zipfile, whose read errors name it: a read of a failing disk or
    a stale NFS handle ("[Errno 5] Input/output error", naming no file, as a write to a full
    TMPDIR is) was blamed on the temporary folder it is unpacked into."""

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except OSError as e:
            if e.filename is None:
                e.filename = os.fspath(self.raw.name)
            raise


def _unpack_refused(e: OSError, archive: Path, into: Path | None) -> OSError:
    """The disk error ``e`` of unpacking ``archive`` into the temporary folder ``into`` (None:
    making it failed), as the one line and exit code 74 of every full disk: naming the
    temporary folder's disk (``TMPDIR``), gone when the line is read; a file elsewhere (the
    archive, whose reads name it) named as it is. Before, "ARCHIVE: cannot read the archive
    (ARCHIVE!x.json: No space left on device)", exit code 2, which blamed the download on a
    full or over-quota /tmp."""
    name = e.filename
    if isinstance(name, str) and into is not None and not Path(name).is_relative_to(into):
        return naming(e, name)
    why = e.strerror or os.strerror(e.errno)
    return OSError(
        e.errno,
        f"{why} while unpacking {archive} into it (or set TMPDIR to a folder on another disk)",
        tempfile.gettempdir(),
    )


# What zipfile decompresses: stored, deflate, bzip2, lzma (not Windows' deflate64, method 9)
_ZIP_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}


def _check_readable(archive: Path, members: list[zipfile.ZipInfo]) -> None:
    """``ValueError`` naming ``archive`` and a member zipfile cannot unpack: an encrypted one
    (zipfile's RuntimeError named neither), or one compressed by a method it lacks
    (its NotImplementedError, "That compression method is not supported", named nothing)."""
    for m in members:
        if m.flag_bits & 0x1:
            raise ValueError(
                f"{archive}: {m.filename!r} is encrypted; download the export without a "
                "password, or unpack it and give the folder"
            )
        if m.compress_type not in _ZIP_METHODS:
            raise ValueError(
                f"{archive}: {m.filename!r} is compressed by method {m.compress_type}, which "
                f"Python's zipfile cannot unpack (it reads {', '.join(_ZIP_METHODS.values())}; "
                "9 is deflate64); unpack it with another tool and give the folder"
            )


def _check_unpacked_size(archive: Path, size: int, into: Path) -> None:
    """``ValueError`` when ``archive``'s members, ``size`` bytes in all, are far more than an
    annotation download holds, or more than the disk of ``into`` has free."""
    packed = archive.stat().st_size
    if size > UNZIP_RATIO * packed + UNZIP_SLACK:
        raise ValueError(
            f"{archive}: its files would unpack to {size / 1e9:.1f} GB from {packed / 1e6:.1f} MB "
            f"(over {UNZIP_RATIO} times its size: a zip bomb or a damaged archive); not unpacked"
        )
    into.mkdir(parents=True, exist_ok=True)
    try:
        usage = shutil.disk_usage(into)
    except OSError:  # a file system that gives no figures: the unpack's writes tell
        return
    free = usage.free
    # a total of 0 is no figure either: a FUSE mount without statfs reports 0 blocks (libfuse's
    # default), and every archive was refused, "has 0.0 GB free", on a disk with room
    if usage.total and size > free:
        raise ValueError(
            f"{archive}: its files would unpack to {size / 1e9:.1f} GB, but the disk of "
            f"{tempfile.gettempdir()} has {free / 1e9:.1f} GB free; set TMPDIR to a folder on "
            "a larger disk"
        )


def archive_root(folder: Path) -> Path:
    """Where the annotations are in an unpacked download: CVAT's COCO export keeps its JSON in
    ``annotations/``; one folder wrapping everything is stepped into."""
    inner = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(inner) == 1 and inner[0].is_dir():
        folder = inner[0]
    annotations = folder / "annotations"
    if (
        annotations.is_dir()
        and not (folder / LABELMAP).is_file()
        and any(annotations.glob("*.json"))
    ):
        return annotations
    return folder


def _import(cfg: ImportConfig, archives: dict[str, str], said: list[str]) -> Subset:
    """:func:`import_annotations` of plain files; ``archives``: unpacked folder -> archive, to
    name the sources as the user gave them; ``said``: the warnings logged so far (growing), kept
    in ``subset.json``."""
    parsed: dict[Path, object] = {}  # the JSON that telling the format read, not read again
    if cfg.format == "auto":
        cfg = dataclasses.replace(cfg, format=detect_format(cfg.sources, parsed))
        log.info("annotation format: %s", cfg.format)
    if cfg.format not in IMPORT_FORMATS:
        choices = ", ".join((*IMPORT_FORMATS, "auto"))
        raise ValueError(f"unknown format {cfg.format!r}; choose from {choices}")
    _check_png_options(cfg)
    if cfg.format == "png":  # label maps: a folder of a synth or fused dataset, maybe unfinished
        for source in cfg.sources:
            check_folder_finished(source, "engine annotate import")
    if cfg.format == "coco":
        _check_one_copy(cfg.sources)
    images = dataset_images(cfg.data, None, cfg.split, "engine annotate import")
    sizes = SplitSizes(
        {},
        cfg.split,
        other_splits(cfg.data, cfg.split),
        lambda stem, wh: turned_hint(exif_orientation(images[stem]), wh, "annotations"),
    )
    for stem, path in images.items():
        w, h = image_size(path)
        sizes[stem] = (h, w)
        if path.stem != stem:  # a spec's image_suffix: the tool names the file
            sizes.named[path.stem] = stem
    found: list[Imported] = []
    if cfg.format in ("cvat", "coco", "labelstudio"):  # files of many images each
        with make_progress(enabled=cfg.progress) as bar:  # images counted as they are read
            task = bar.add_task("read annotations", total=None)

            def each(m: ImageMask) -> Imported:
                kept = Imported.of(m)
                bar.advance(task)
                return kept

            if cfg.format == "cvat":  # CVAT for images 1.1: one XML of many images
                for f in _expand(cfg.sources, ".xml"):
                    found.extend(cvat_xml_to_masks(f, cfg.class_name, sizes, each))
            else:
                read_file = coco_to_masks if cfg.format == "coco" else labelstudio_to_masks
                for f in _expand(cfg.sources, ".json"):
                    found.extend(read_file(f, cfg.class_name, sizes, parsed.pop(f, None), each))
    else:  # one file per image: every bad file is named in one error, and nothing is written
        if cfg.format == "segmask":
            files, read = _segmentation_masks(cfg.sources, cfg.class_name, sizes)
        elif cfg.format == "yolo":
            files, read = _yolo_labels(cfg.sources, cfg.class_name, sizes)
        elif cfg.format == "labelme":
            files = _expand(cfg.sources, ".json")
            read = partial(labelme_to_mask, class_name=cfg.class_name, sizes=sizes)
        else:
            files = _expand(cfg.sources, ".png")
            read = partial(png_to_mask, sizes=sizes, binary=cfg.png_binary, value=cfg.png_value)
        found = map_every_item(
            partial(_imported, read),
            files,
            1,
            "read annotations",
            cfg.progress,
            "annotation files",
            "so nothing was imported",
        )
    others = left_out(
        found,
        cfg.class_name,
        f"give --png-value the value of {cfg.class_name!r} in the masks"
        if cfg.png_value is not None
        else "",
    )
    first: dict[str, Imported] = {}  # stem -> the import that annotates it
    for m in found:
        if (seen := first.get(m.stem)) is not None:  # in one file (two Label Studio tasks) or two
            also = "in this file" if m.source == seen.source else f"(also in {seen.source})"
            if m.place and seen.place and m.source == seen.source:
                also += f" ({seen.place}; {m.place})"  # of 500 tasks, the two to merge
            raise ValueError(f"{m.source}: image {m.stem!r} is annotated twice {also}")
        first[m.stem] = m
    masks: dict[str, EncodedLabel] = {stem: m.label for stem, m in first.items()}
    sources: dict[str, str] = {stem: m.source for stem, m in first.items()}
    exports = unchanged_exports(found, cfg.format, archives) if cfg.format in EXPORT_FORMATS else []
    extra = {
        "import_format": cfg.format,
        **_png_options(cfg),
        "data": str(cfg.data),
        "data_resolved": str(Path(cfg.data).resolve()),  # readable from another folder
        "out": str(cfg.out),  # typed with --data: the dataset found beside it when both moved
        # the photos the masks were drawn on, by file size: one replaced since is warned about
        # wherever the subset is scored (engine.datasets.replaced_subset_photos)
        "image_bytes": {stem: file_bytes(images[stem]) for stem in sorted(masks)},
        "environment": environment(torch_used=False),
    }
    if others:
        extra["other_labels"] = others
    if exports:
        extra["unchanged_exports"] = exports
    for folder, archive in archives.items():  # a temporary copy: named by its archive
        sources = {
            stem: f"{archive}!{Path(src).relative_to(folder).as_posix()}"
            if Path(src).is_relative_to(folder)
            else src
            for stem, src in sources.items()
        }
    class_name = spelled_as_files(found, cfg.class_name)
    # said before the write, so that subset.json is written once with it (before the
    # forty-fifth round's second round it was written again after); refusals come first
    dropped = replaced_stems(cfg.out, class_name, cfg.split, masks, cfg.replace)
    if not cfg.replace:
        _refuse_losing_masks(cfg.out, class_name, cfg.split, masks)
    if dropped:  # a second batch imported alone with --force replaces the first
        log.warning(
            "%s: %s of the subset %s not in these files, so %s removed: %s; to keep %s, "
            "import the files of every batch in one call",
            cfg.out,
            counted(len(dropped), "image"),
            *(("is", "its mask was") if len(dropped) == 1 else ("are", "their masks were")),
            few(dropped),
            "it" if len(dropped) == 1 else "them",
        )
    extra.update(warnings_entry(said))  # what the import printed, kept (engine info shows it)
    each = partial(track, description="write masks", total=len(masks), enabled=cfg.progress)
    return write_subset(
        cfg.out, class_name, cfg.split, masks, sources, extra, cfg.replace, each
    )  # fmt: skip


def _refuse_losing_masks(
    out: str,
    class_name: str,
    split: str,
    masks: dict[str, EncodedLabel],
) -> None:
    """Refuse an import that would change or remove masks of the subset of the same class and
    split that ``out`` holds (corrections, lost): importing an uncorrected export over a
    corrected subset replaced the corrections without a word before the fiftieth round. The
    same masks again, masks of more images, masks where the subset's are missing or unreadable,
    or a subset whose subset.json this engine cannot read, are written without ``--force``."""
    held = held_stems(out, class_name, split)
    changed = changed_stems(out, masks, held)
    dropped = tuple(sorted(set(held) - set(masks)))
    if not changed and not dropped:
        return
    lost, ways = [], ["replace them on purpose with --force"]
    if changed:
        lost.append(f"change {counted(len(changed), 'mask')} ({few(list(changed), total=True)})")
        ways.insert(0, "import into another folder")
    if dropped:  # a second batch imported alone: another folder is a second subset of the class
        lost.append(
            f"remove {counted(len(dropped), 'mask')} of images not in these files "
            f"({few(list(dropped), total=True)})"
        )
        ways.insert(0, "give the files of every batch in one call")
    raise FileExistsError(
        f"{out}: this import would {' and '.join(lost)} of the annotated subset of "
        f"{class_name} (split {split}, {counted(len(held), 'image')}); "
        f"{', '.join(ways[:-1])}, or {ways[-1]}"
    )


@dataclass(frozen=True)
class Imported:
    """One image's annotation as an import holds it until every file is read and checked: its
    mask as the PNG bytes the subset writes (tens of KB where the array of a 4032x3024 image is
    12 MB), and what the checks need of it."""

    stem: str
    label: EncodedLabel  # 1 = the class, 0 = not, 255 = unannotated
    source: str  # the file the annotation was read from
    others: dict[str, int]  # annotations of other labels on it, left out: label -> count
    export: dict | None  # the exporter's record its file carried, if any
    has_class: bool  # any pixel of the class
    spelled: str | None = None  # the class's name as the file spells it, if it names it
    place: str | None = None  # where in the file (a Label Studio task), if the image is not all

    @classmethod
    def of(cls, m: ImageMask) -> Imported:
        label = EncodedLabel.of(m.mask)
        has_class = bool(label.histogram[1])
        return cls(m.stem, label, m.source, m.others, m.export, has_class, m.spelled, m.place)


def spelled_as_files(found: list[Imported], class_name: str) -> str:
    """The class's name as the annotation files spell it (``Bicycle`` for ``--class BICYCLE``
    on a COCO category ``Bicycle``, the spelling of the label run it was exported from), when
    they spell it one way; else ``class_name`` as given (PNG masks name no class). What is
    written keeps the spelling recorded first, as a run does for later commands; before, the
    subset took ``--class``'s and its report was titled ``BICYCLE``."""
    spellings = {m.spelled.strip() for m in found if m.spelled is not None}
    return spellings.pop() if len(spellings) == 1 else class_name


def _check_one_copy(sources: list[str]) -> None:
    """An export folder given whole holds the same masks twice, ``coco.json`` and ``labelme/``;
    LabelMe and X-AnyLabeling save corrections into the latter, CVAT's are a new COCO file.
    Reading ``coco.json`` for the folder imported the uncorrected masks of a LabelMe pass."""
    for source in map(Path, sources):
        labelme = source / "labelme"
        if (source / COCO_FILE).is_file() and labelme.is_dir() and _suffixed(labelme, ".json"):
            raise ValueError(
                f"{source}: an export holding its masks twice (coco.json, labelme/): give the "
                f"files the corrections were saved in: {source / COCO_FILE} or "
                f"{source / 'labelme'}"
            )


def _imported(read: Callable[[Path], ImageMask], path: Path) -> Imported:
    return Imported.of(read(path))


def _png_options(cfg: ImportConfig) -> dict[str, dict]:
    """How PNG masks were read, for subset.json: ``--png-value 2`` and ``--png-binary`` make
    other masks of the same files, so a subset that does not say which cannot be imported
    again as it was (``import_options``; nothing for the other formats, which take neither)."""
    if cfg.format != "png":
        return {}
    return {"import_options": {"png_binary": cfg.png_binary, "png_value": cfg.png_value}}


def _check_png_options(cfg: ImportConfig) -> None:
    """--png-binary and --png-value shape PNG masks only, and one of them at a time."""
    given = [
        name
        for name, on in (
            ("--png-binary", cfg.png_binary),
            ("--png-value", cfg.png_value is not None),
        )
        if on
    ]
    if given and cfg.format != "png":
        verb = "read" if len(given) > 1 else "reads"
        raise ValueError(f"{' and '.join(given)} {verb} PNG masks; the sources are {cfg.format}")
    if len(given) == 2:
        raise ValueError(
            "--png-binary (any non-zero value is the class) and --png-value (one value is) "
            "exclude each other; give one"
        )
    if cfg.png_value is not None and not 1 <= cfg.png_value <= 254:
        raise ValueError(
            f"--png-value is the class's value in index masks, 1..254 (0 is background, 255 "
            f"unannotated), not {cfg.png_value}"
        )


def detect_format(sources: list[str], parsed: dict[Path, object] | None = None) -> str:
    """The format of annotation files, told by what they are: a CVAT "Segmentation mask" export
    (``labelmap.txt`` + ``SegmentationClass/``), a COCO file (an object with ``images`` and
    ``annotations``), LabelMe files (objects with ``shapes``), Label Studio's JSON export (a
    list of tasks with ``data``), CVAT's XML (``annotations.xml``), PNG masks, YOLO labels
    (``.txt``). A folder is told by
    its files (an export folder by its ``coco.json``); sources of different formats, or a
    folder of none, are an error saying to give ``--format``. ``parsed``, when given, keeps the
    JSON documents read on the way (path -> document), for the import not to parse them again
    (a Label Studio export with brush masks can be hundreds of megabytes)."""
    found: dict[str, list[str]] = {}
    for source in sources:
        found.setdefault(_format_of(Path(source), parsed), []).append(source)
    if len(found) == 1 and None not in found:
        return next(iter(found))
    if None in found:
        raise ValueError(
            f"{found[None][0]}: not COCO, LabelMe, Label Studio JSON, CVAT XML, YOLO labels, PNG "
            "masks or a CVAT segmentation-mask export "
            f"that the format could be told from; give --format ({', '.join(IMPORT_FORMATS)})"
        )
    listed = "; ".join(f"{fmt}: {', '.join(paths)}" for fmt, paths in sorted(found.items()))
    raise ValueError(f"the sources are of different formats ({listed}); import one at a time")


def _format_of(path: Path, parsed: dict[Path, object] | None = None) -> str | None:
    if not path.exists():
        raise source_not_found(path)
    if path.is_dir():
        if (path / LABELMAP).is_file() or path.name == SEGMENTATION_DIR:
            return "segmask"
        if (path / "coco.json").is_file():
            return "coco"
        if (path / CVAT_XML).is_file():
            return "cvat"
        # told by the first JSON file of a known format: one stray file (a tool's settings) is
        # named by the import, which reads every file, instead of hiding the folder's format
        for f in _suffixed(path, ".json"):
            if fmt := _format_of(f, parsed):
                return fmt
        if _suffixed(path, ".png"):
            return "png"
        first = next((f for f in _suffixed(path, ".txt") if f.name not in NAME_FILES), None)
        return "yolo" if first is not None and looks_like_yolo(first) else None
    suffix = path.suffix.lower()
    if suffix == ".png":
        return "png"
    if suffix == ".xml" and is_cvat_xml(path):
        return "cvat"
    if suffix == ".txt" and looks_like_yolo(path):
        return "yolo"
    if suffix == ".json" and path.is_file():
        doc = read_json(path, "annotation file")
        if parsed is not None:
            parsed[path] = doc
        if is_labelme(doc):
            return "labelme"
        if is_labelstudio(doc):
            return "labelstudio"
        if isinstance(doc, dict) and isinstance(doc.get("images"), list):
            return "coco"
    return None


def _segmentation_masks(
    sources: list[str], class_name: str, sizes: dict[str, tuple[int, int]]
) -> tuple[list[Path], Callable[[Path], ImageMask]]:
    """The PNGs of a CVAT "Segmentation mask" export (its folder: ``labelmap.txt`` and
    ``SegmentationClass/``) and their reader; one export per import."""
    if len(sources) != 1:
        raise ValueError(
            "--format segmask takes one export folder (labelmap.txt, SegmentationClass/)"
        )
    root = Path(sources[0])
    if root.name == SEGMENTATION_DIR:  # the PNG folder given: its export is the parent
        root = root.parent
    if not (root / LABELMAP).is_file():
        raise FileNotFoundError(
            f"{root}: no {LABELMAP} here; give the folder of CVAT's 'Segmentation mask' export "
            f"(it holds {LABELMAP} and {SEGMENTATION_DIR}/)"
        )
    colors = read_labelmap(root / LABELMAP, class_name)
    if not any(label_role(name, class_name) == 1 for name in colors):
        raise ValueError(
            f"{root / LABELMAP}: no label named {class_name!r} (labels: {', '.join(colors)})"
        )
    files = _expand([str(root / SEGMENTATION_DIR)], ".png")
    return files, partial(
        segmentation_mask_to_mask, class_name=class_name, colors=colors, sizes=sizes
    )


def _yolo_labels(
    sources: list[str], class_name: str, sizes: dict[str, tuple[int, int]]
) -> tuple[list[Path], Callable[[Path], ImageMask]]:
    """The label files of YOLO segmentation labels (``<stem>.txt``, the class names file left
    aside) and their reader, with the class names of the dataset they belong to."""
    files = [f for f in _expand(sources, ".txt") if f.name not in NAME_FILES]
    other = next((f for f in files if f.suffix.lower() != ".txt"), None)
    if other is not None:  # a file given by name: its class names were looked for beside it
        raise ValueError(
            f"{other}: not YOLO labels (a <image stem>.txt file per image); without --format "
            "the format is told by the files"
        )
    if not files:
        raise FileNotFoundError(f"{sources[0]}: no YOLO label files (<image stem>.txt) here")
    names_file, names = find_class_names(files[0].parent)
    if not any(label_role(name, class_name) == 1 for name in names):
        raise ValueError(
            f"{names_file}: no class named {class_name!r} (classes: {', '.join(names) or 'none'})"
        )
    log.info("YOLO class names from %s", names_file)
    return files, partial(yolo_to_mask, class_name=class_name, names=names, sizes=sizes)


def left_out(found: list[Imported], class_name: str, hint: str = "") -> dict[str, int]:
    """The annotations of other categories in the imported files (``label -> count``), said in
    one warning: a file that annotates several classes gives one subset per class. When the
    files hold other labels and not one shape of the class, the class is likely named otherwise
    there, and that is an error listing the labels."""
    counts: Counter[str] = Counter()
    for m in found:
        counts.update(m.others)
    if not counts:
        return {}
    listed = ", ".join(f"{label!r} ({n:,})" for label, n in counts.most_common())
    if not any(m.has_class for m in found):
        raise ValueError(
            f"{found[0].source}: no annotation of {class_name!r} in "
            f"{counted(len({m.source for m in found}), 'file')}, only of {listed}; "
            + (hint or "give --class the name the files use (matched case-insensitively)")
        )
    log.warning(
        "left out the annotations of other classes than %s (a subset holds one class): %s",
        class_name,
        listed,
    )
    return dict(counts.most_common())


def unchanged_exports(
    found: list[Imported], fmt: str, archives: dict[str, str] | None = None
) -> list[str]:
    """The runs whose ``engine annotate export`` was imported exactly as exported
    (:func:`unchanged_export`), from the records the files carried: per COCO or Label Studio
    file (whose tasks all carry one export's record), or once for a set of LabelMe files that
    all carry the same export's record. ``archives`` (unpacked folder -> zip download) names
    files read from a zip as ``ARCHIVE!MEMBER`` in the warning, not their deleted copies."""
    if fmt in ("coco", "labelstudio"):  # a file of many images, one export's (or tasks of several)
        files: dict[str, list[Imported]] = {}
        for m in found:
            files.setdefault(m.source, []).append(m)
        groups = [
            (
                f,
                ms[0].export if all(m.export == ms[0].export for m in ms) else None,
                {m.stem: m.label for m in ms},
            )
            for f, ms in files.items()
        ]
    else:  # LabelMe: one file per image, all from one export, compared as one folder
        records = [m.export for m in found]
        if not records or None in records or any(r != records[0] for r in records):
            return []  # a file saved by a tool that dropped our record, or several exports
        folder = str(Path(min(m.source for m in found)).parent)
        groups = [(folder, records[0], {m.stem: m.label for m in found})]
    runs = []
    for f, rec, masks in groups:
        named = archive_named(f, archives or {})
        where = f if named == f else None  # a zip's members: nothing beside their temporary copy
        if rec and (run := unchanged_export(named, masks, rec, where)):
            runs.append(run)
    return runs


def unchanged_export(
    path: str | os.PathLike,
    masks: dict[str, EncodedLabel],
    record: dict,
    where: str | os.PathLike | None,
) -> str | None:
    """The run, when the COCO file ``path`` (or a folder of LabelMe files) whose exporter's
    ``record`` it carried is an ``engine annotate export`` imported exactly as exported
    (``masks``: its images' imported masks): every mask equals the pseudo label of the run it
    was exported from (IoU >= 99.5 where either holds the class, the run's uncertain band left
    out). Logs a warning then, since such a subset scores the pseudo labels at 100: the
    corrections were saved elsewhere, or not made. None when the record names no run (a
    subset's export) or the run cannot be read from here. ``where``: the file or folder read
    (None for a zip download's member, which ``path`` names as ``ARCHIVE!MEMBER``), the run
    looked for beside it where the two were copied together (:func:`exported_from`)."""
    try:
        run = LabelRun.open(exported_from(record, "run", where))
        # polygons carry no holes: such an export comes back with its labels' holes filled
        polygons = record.get(POLYGON_KEY) == LABELME or (
            POLYGON_KEY in record and record["config"]["mask_format"] == "polygon"
        )
        ious = []
        for stem, encoded in masks.items():
            label, mask = run.label(str(record["split"]), stem), encoded.decode()
            iou = _iou(label, mask)
            if polygons and not iou >= MATCH_IOU:
                iou = _iou(_holes_filled(label), mask)
            ious.append(iou)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # not our export, or its run is gone: nothing to compare with
    if not all_match(ious):
        return None
    log.warning(
        "%s: the masks imported from it equal the pseudo labels they were exported from (%s) on "
        "%s: were the corrections saved to this file? A subset of uncorrected pseudo labels "
        "scores them at 100",
        path,
        run.root,
        f"all {len(masks):,} images" if len(masks) > 1 else "its one image",
    )
    return str(run.root)


def _holes_filled(label: np.ndarray) -> np.ndarray:
    """A pseudo label with the holes of its class filled, as its polygons bring it back: the
    pixels ``ndimage.binary_fill_holes(label == 1)`` fills (4-connected background that does
    not reach the image's edge), found inside the box of the class (a pixel outside it reaches
    the edge) by OpenCV's flood fill from a frame around the box. ``binary_fill_holes`` took
    0.6-0.8 s an image at 3840x2160, empty or not, most of a COCO polygon or LabelMe import's
    time (before the forty-eighth round); the flood fill takes 0.03 s, the same pixels."""
    import cv2

    cls = label == 1
    rows, cols = np.flatnonzero(cls.any(axis=1)), np.flatnonzero(cls.any(axis=0))
    out = label.copy()
    if not rows.size:
        return out
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    framed = np.zeros((cls[box].shape[0] + 2, cls[box].shape[1] + 2), np.uint8)
    framed[1:-1, 1:-1] = cls[box]
    cv2.floodFill(framed, None, (0, 0), 2, flags=4)  # the background that reaches the frame
    out[box][(framed[1:-1, 1:-1] == 0) & (label[box] == 0)] = 1
    return out


def _iou(label: np.ndarray, mask: np.ndarray) -> float:
    """IoU x100 of the class (1) in a pseudo label and an imported mask, their uncertain or
    unannotated pixels (255) left out; NaN where neither holds it. ``ValueError`` on sizes that
    differ (then the mask is no export of that label)."""
    if label.shape != mask.shape:
        raise ValueError("sizes differ")
    known = (label != IGNORE) & (mask != IGNORE)
    a, b = (label == 1) & known, (mask == 1) & known
    union = int((a | b).sum())
    return 100 * int((a & b).sum()) / union if union else math.nan


# -- pick --------------------------------------------------------------------------------------
@dataclass
class PickConfig:
    run: str  # label run directory
    n: int = 50  # images to choose
    split: str = "test"  # split of the run to choose from
    seed: int = 0  # random share's seed
    low_confidence: float = 0.4  # fraction of n: lowest mean confidence first
    many_or_tiny: float = 0.3  # fraction of n: most instances (tiny ones count double)
    tiny_fraction: float = 1e-3  # an instance smaller than this fraction of the image is tiny
    out: str | None = (
        None  # list file to write (.txt, plus a .json twin); None: RUN/pick-<split>.txt
    )
    progress: bool = True  # progress bar on stderr

    def __post_init__(self) -> None:
        # the CLI's bounds (-n, --seed): n=0 wrote an empty pick list over RUN/pick-<split>.txt,
        # and seed=-1 failed in NumPy with "expected non-negative integer", naming no setting
        if self.n < 1:
            raise ValueError(f"n must be >= 1 (images to choose), got {self.n}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def image_stats(
    run: LabelRun, split: str, tiny_fraction: float = 1e-3, progress: bool = False
) -> list[ImageStats]:
    """Per-image confidence and instance counts of a run's split; the first unreadable file
    raises (:func:`image_stat`)."""
    stems = run.stems(split)
    return [
        image_stat(run, split, stem, tiny_fraction)
        for stem in track(stems, "read pseudo labels", enabled=progress)
    ]


def image_stat(run: LabelRun, split: str, stem: str, tiny_fraction: float = 1e-3) -> ImageStats:
    """One image's confidence and instance counts. ValueError naming the file when its pseudo
    label, confidence map or instances cannot be read, or the confidence map is not the
    label's size (indexing one by the other would fail or mean nothing)."""
    n = tiny = 0
    inst_scores: list[float] = []
    if run.instances_path(split, stem).is_file():
        inst = run.instance_summary(split, stem)  # scores and areas: no mask decoded
        h, w = inst.image_size
        n = len(inst)
        tiny = int((inst.areas < tiny_fraction * h * w).sum())
        inst_scores = inst.scores.tolist()
    conf = math.nan
    conf_map = run.confidence(split, stem)
    if conf_map is not None and run.label_path(split, stem).is_file():
        label = run.label(split, stem)
        if conf_map.shape != label.shape:
            raise ValueError(
                f"{run.confidence_path(split, stem)}: confidence map is "
                f"{conf_map.shape[1]}x{conf_map.shape[0]} but its pseudo label "
                f"{run.label_path(split, stem)} is {label.shape[1]}x{label.shape[0]}"
            )
        fg = label == 1
        if fg.any():
            conf = float(conf_map[fg].mean()) / 255.0
    source = "map" if not math.isnan(conf) else ""
    if math.isnan(conf) and inst_scores:
        conf, source = float(np.mean(inst_scores)), "instances"
    return ImageStats(stem, conf, n, tiny, source)


def _as_written(text: str) -> bytes:
    """The bytes :func:`annotations.fileio.atomic_write_text` writes of ``text``."""
    return text.encode("utf-8", "backslashreplace")


def pick_for_annotation(cfg: PickConfig) -> tuple[list[Pick], Path]:
    """Choose images of a run to annotate; writes the stems (one per line) and a JSON twin."""
    check_pick(cfg.n, cfg.low_confidence, cfg.many_or_tiny)  # before reading a large split
    if cfg.out is not None:
        _check_list_path(Path(cfg.out))
    run = LabelRun.open(cfg.run)
    # first: a fused dataset (labels/ too, no run.json) was refused after its list was written
    class_name, backend = run.class_name, run.backend
    check_not_being_written(run.root, "engine annotate pick", "its pseudo labels")
    stats = image_stats(run, cfg.split, cfg.tiny_fraction, cfg.progress)
    if not stats:
        raise _no_labelled(run, cfg.split)
    with contextlib.suppress(ValueError, OSError):  # a dataset moved on: picked all the same
        listed = dataset_images(None, run, cfg.split, "engine annotate pick")
        stats = _still_in_dataset(run, cfg.split, stats, listed)
        warn_not_labelled(run, cfg.split, [s.stem for s in stats], listed, "pick")
    if not stats:  # every labelled image removed from the dataset since
        raise ValueError(
            f"{run.root}: every image labelled in split {cfg.split!r} was removed from the "
            "dataset since (the warning above names them): nothing left to pick"
        )
    stand_ins = [s.stem for s in stats if s.confidence_from == "instances"]
    if stand_ins:  # another scale than the maps': said, not ranked with them without a word
        log.warning(
            "%s: %s of split %r %s no confidence map (%s); the instances' mean score stands "
            "in for the mean confidence when ranking",
            run.root,
            counted(len(stand_ins), "image"),
            cfg.split,
            "has" if len(stand_ins) == 1 else "have",
            few(stand_ins),
        )
    picks = pick_images(stats, cfg.n, cfg.seed, cfg.low_confidence, cfg.many_or_tiny)
    check_one_line_names([p.stem for p in picks], run.root)  # before the list is written
    out = Path(cfg.out) if cfg.out else run.root / f"pick-{cfg.split}.txt"
    # a name that is not UTF-8 (caf\xe9) escaped by atomic_write_text, caf\udce9, which export
    # --images reads back (composed_stems); it raised UnicodeEncodeError and no list was written
    # an earlier pick's record goes before the new list is written: one killed between the two
    # left the earlier record beside the new list, read as its (engine info's count, the split
    # export --images took); now a list without a record until its own is written. A list
    # refused (a full disk) puts the earlier record back, the earlier list left as it was:
    # before, that list lost its record
    record = out.with_suffix(".json")
    try:
        earlier = record.read_bytes()
    except OSError:  # none, or not to be read: not put back
        earlier = None
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # the list's write says
        os.unlink(record)  # a file on the way, "is a file, not a folder"
    listed = "".join(f"{p.stem}\n" for p in picks)
    try:
        with folders_removed_on_failure(out):  # a full disk: no new, empty folder left behind
            atomic_write_text(out, listed)
    except BaseException:
        # not where the new list is in all the same (a Ctrl-C just after its rename)
        with contextlib.suppress(OSError):  # the list's error is the one said
            if earlier is not None and out.read_bytes() != _as_written(listed):
                atomic_write_bytes(record, earlier)
        raise
    by_stem = {s.stem: s for s in stats}
    with folders_removed_on_failure(record):  # and the temporaries of its killed writes
        atomic_write_json(
            record,
            {
                # out as written (None stood for the default, RUN/pick-<split>.txt), and which run:
                # its folder resolved and run.json's digest, as fuse.json records its runs
                "config": {k: v for k, v in asdict(cfg).items() if k != "progress"}
                | {"out": str(out)},
                "run_resolved": str(run.root.resolve()),
                "run_json_sha256": run.info.sha256,
                "class_name": class_name,
                "backend": backend,
                "picks": [
                    {
                        "stem": p.stem,
                        "reason": p.reason,
                        "confidence": None
                        if math.isnan(by_stem[p.stem].confidence)
                        else round(by_stem[p.stem].confidence, 4),
                        "confidence_from": by_stem[p.stem].confidence_from or None,
                        "num_instances": by_stem[p.stem].num_instances,
                        "num_tiny": by_stem[p.stem].num_tiny,
                    }
                    for p in picks
                ],
                "environment": environment(torch_used=False),
            },
        )
    return picks, out


def _still_in_dataset(
    run: LabelRun, split: str, stats: list[ImageStats], listed: dict[str, Path]
) -> list[ImageStats]:
    """``stats`` without the images no longer in the run's dataset (``listed``: its split's
    images now; removed since they were labelled), after a warning naming them: an annotator
    cannot annotate a photo that is gone, and the export of the pick listed it in its COCO file
    but not in ``images.txt``. Before, they were picked as the others."""
    gone = sorted(s.stem for s in stats if s.stem not in listed)
    if not gone:
        return stats
    log.warning(
        "%s: %s of split %r labelled here no longer in the dataset (removed since labelled), "
        "not picked: %s",
        run.root,
        counted(len(gone), "image"),
        split,
        few(gone, total=True),
    )
    return [s for s in stats if s.stem in listed]


def _check_list_path(out: Path) -> None:
    """``pick --out`` names the list file; its record is written beside it as ``.json``."""
    if out.is_dir():
        raise ValueError(f"{out}: is a folder; --out names the list file (e.g. {out / 'pick.txt'})")
    if out.suffix.lower() == ".json":
        raise ValueError(
            f"{out}: the list is a text file and its record is written beside it as .json, "
            f"which would be this file: give a list name such as {out.with_suffix('.txt')}"
        )


def read_stem_list(path: str | os.PathLike) -> list[str]:
    """Lines of a list file (one image per line; blank lines skipped). A ``#`` is left in: it
    may be part of a stem or folder (``#3 front``, ``data #1/``), and the export reads it as a
    comment only where the whole line names no image (``_stem_named``); a list of comments
    alone is empty."""
    path = Path(path)
    # UTF-8 with Notepad's byte-order mark or UTF-16 (PowerShell's `ls -Name > list.txt`): read;
    # another encoding refused naming the line (before, a Python codec error)
    return stem_lines(read_text(path, "image list"), path)


def stem_lines(text: str, path: str | os.PathLike) -> list[str]:
    """:func:`read_stem_list` of ``text``, read from ``path`` (named in its error)."""
    stems = [ln.strip() for ln in text.splitlines()]
    stems = [s for s in stems if s]
    if all(s.startswith("#") for s in stems):
        raise ValueError(f"{path}: the image list is empty")
    return stems


def list_split(path: str | os.PathLike) -> str | None:
    """The split an image list was picked from: ``config.split`` of the ``.json`` twin that
    ``engine annotate pick`` writes beside it; None for a list without one (written by hand)."""
    twin = Path(path).with_suffix(".json")
    if not twin.is_file():
        return None
    try:
        split = (read_json(twin, "pick record").get("config") or {}).get("split")
    except (ValueError, AttributeError):
        return None  # not a pick record: the list alone decides nothing
    return split if isinstance(split, str) and split else None


def export_split(split: str | None, images: str | None) -> str | None:
    """The split to export: ``split`` when given, else the one an ``--images`` list was picked
    from (:func:`list_split`), else None (a subset's own split, or test). A given split other
    than the list's is an error."""
    picked = list_split(images) if images else None
    if split is not None and picked is not None and split != picked:
        raise ValueError(
            f"{images}: the images were picked from split {picked!r} "
            f"({Path(images).with_suffix('.json').name}), not {split!r}; drop --split or give "
            f"--split {picked}"
        )
    return split or picked


__all__ = [
    "ExportConfig",
    "ExportResult",
    "ImportConfig",
    "PickConfig",
    "export_annotations",
    "export_split",
    "image_stats",
    "import_annotations",
    "pick_for_annotation",
    "read_stem_list",
    "stem_lines",
]
