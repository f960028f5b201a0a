"""``engine annotate import``: corrected annotations read in any import format and written as
the annotated subset of a dataset split (:mod:`annotations.subset`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from annotations.cvat import cvat_xml_to_masks
from annotations.fileio import check_expanded, file_bytes
from annotations.interchange import (
    IGNORE_NAMES,
    LABELMAP,
    SEGMENTATION_DIR,
    ImageMask,
    SplitSizes,
    coco_to_masks,
    label_role,
    labelme_to_mask,
    png_to_mask,
    read_labelmap,
    segmentation_mask_to_mask,
)
from annotations.labelmap import EncodedLabel
from annotations.labelstudio import labelstudio_to_masks
from annotations.subset import Subset, changed_stems, held_stems, replaced_stems, write_subset
from annotations.taxonomy import check_class_name
from annotations.yolo import NAME_FILES, find_class_names, yolo_to_mask
from engine.annotate.archives import archive_root, unpacking_folder, unzip
from engine.annotate.common import (
    COCO_FILE,
    EXPORT_FORMATS,
    IMPORT_FORMATS,
    dataset_images,
    other_splits,
)
from engine.annotate.imported import (
    Imported,
    _imported,
    left_out,
    spelled_as_files,
    unchanged_exports,
)
from engine.annotate.sources import _expand, _suffixed, archive_named, detect_format, read_sources
from engine.datasets import check_folder_finished, exif_orientation, image_size, turned_hint
from engine.parallel import BadItems, map_every_item
from engine.progress import make_progress, track
from engine.runinfo import environment, kept_warnings, warnings_entry
from engine.runlock import check_not_being_written, check_not_in_output, exclusive
from engine.text import counted, few

log = logging.getLogger(__name__)


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
