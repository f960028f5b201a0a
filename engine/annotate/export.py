"""``engine annotate export``: a label run's pseudo labels (or a subset's masks) written as COCO,
LabelMe and Label Studio files for correction.
"""

from __future__ import annotations

import dataclasses
import logging
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from annotations.fileio import (
    atomic_write_json,
    atomic_write_text,
    finish_swaps,
    output_kind,
    staged,
    swap_in,
)
from annotations.instances import InstanceWindows, MaskWindow
from annotations.interchange import (
    EXPORT_KEY,
    MASK_FORMATS,
    POLYGON_KEY,
    CocoBuilder,
    ExportImage,
    composed_stems,
    literal_stem,
    stem_of,
    to_labelme,
    unescaped,
    windows_path,
)
from annotations.labelmap import IGNORE
from annotations.labelrun import LabelRun
from annotations.labelstudio import image_url, label_config, to_labelstudio
from annotations.polygons import COCO, LABELME, MAX_SIMPLIFY
from annotations.subset import read_subset
from engine.annotate.common import (
    COCO_FILE,
    EXPORT_FILES,
    EXPORT_FORMATS,
    IMAGE_LIST,
    _no_labelled,
    check_one_line_names,
    check_one_line_paths,
    coco_file_name,
    dataset_images,
    warn_not_labelled,
)
from engine.datasets import load_spec, relative_ref
from engine.progress import track
from engine.runinfo import environment
from engine.runlock import check_not_being_written, check_output_folder, exclusive, writer
from engine.text import counted, split_names

log = logging.getLogger(__name__)


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
