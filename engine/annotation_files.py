"""What annotation files hold, for ``engine info``: a COCO file, LabelMe files, Label Studio's
JSON, a CVAT "Segmentation mask" export or an ``engine annotate export`` folder, each with the
``engine annotate import`` line that turns it into a subset (:func:`annotation_files`)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shlex
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotations.cvat import CVAT_XML, is_cvat_xml, parse_cvat_xml
from annotations.fileio import is_dataset_root, read_json, read_text
from annotations.interchange import (
    IGNORE_NAMES,
    LABELMAP,
    SEGMENTATION_DIR,
    coco_to_masks,
    export_record,
    exported_from,
    is_labelme,
    labelmap_codes,
    labelme_size,
    labelme_to_mask,
    read_color_codes,
    read_labelmap,
    record_part,
    stem_without_split,
)
from annotations.labelrun import LabelRun
from annotations.labelstudio import (
    annotations_of,
    is_labelstudio,
    labelstudio_tasks,
    region_labels,
    submitted_annotation,
)
from annotations.subset import read_subset
from annotations.yolo import NAME_FILES, find_class_names, looks_like_yolo, yolo_label_folders
from engine.text import counted


@dataclass
class AnnotationFiles:
    """What a COCO file, a LabelMe file or folder, or an ``engine annotate export`` folder
    holds, for ``engine info`` (:func:`annotation_files`)."""

    path: Path  # the file or folder
    format: str  # "coco", "cvat", "labelme", "labelstudio", "segmask" or "yolo"
    files: int  # annotation files (1 for COCO and Label Studio)
    images: int  # images listed (COCO), annotated (LabelMe: one per file), tasks (Label Studio)
    empty_images: int  # images without any annotation
    by_label: dict[str, int]  # category / label -> annotations (COCO), shapes, regions
    kinds: dict[str, int]  # "polygon", "RLE", "rectangle", ... -> count
    export: dict | None = None  # the exporter's record, when the files still carry it
    waiting: int = 0  # Label Studio: tasks without a submitted annotation (pre-annotated only)
    archive: Path | None = None  # the zip download the files are in (``path`` names the member)
    # what import would refuse in them (COCO, LabelMe: _coco_problems, _labelme_problems);
    # None: not read
    problems: list[str] | None = None

    def import_commands(self) -> list[str]:
        """The ``engine annotate import`` lines that turn these files into subsets: one per
        class they annotate (a subset holds one class)."""
        record = self.export or {}
        config = record_part(record, "config")
        classes = _classes(list(self.by_label))
        data = config.get("data")
        where = None if self.archive else self.path  # a zip's members: nothing beside them
        try:
            if not data and record.get("run"):
                run = LabelRun.open(exported_from(record, "run", where))
                data = run.data_root
            elif not data and record.get("subset"):
                subset = exported_from(record, "subset", where)
                data = read_subset(subset).data_root
        except (OSError, ValueError, TypeError):  # TypeError: a record edited by hand
            data = None
        split = record.get("split", "test")
        source = self.archive or self.path  # import reads a zip download as it is
        quote = shlex.quote
        return [
            f"engine annotate import {quote(str(source))} --format {self.format} "
            f"--class {quote(c)} --data {quote(str(data)) if data else 'DATASET'} "
            f"--split {quote(str(split))} --out SUBSET"
            for c in classes or ["CLASS"]
        ]


def annotation_files(path: str | os.PathLike) -> list[AnnotationFiles] | None:
    """What annotation files ``path`` holds: a COCO, LabelMe or Label Studio ``.json`` file, a
    folder of LabelMe files or of COCO / Label Studio files, an export folder (``coco.json``,
    ``labelme/``, ``labelstudio/``), a CVAT segmentation-mask export, or a ``.zip`` download of
    any of them; None when it is none of these. A file that is not valid JSON is a ``ValueError`` naming it."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        return _archive_files(path)
    if path.is_file() and path.suffix.lower() == ".xml":
        return [_cvat_file(path)] if is_cvat_xml(path) else None
    if path.is_file():
        if path.suffix.lower() != ".json":
            return None
        found = _annotation_file(path, read_json(path, "annotation file"))
        return [found] if found else None
    if folders := yolo_label_folders(path):  # a YOLO download: data.yaml, labels/<subset>/
        return [_yolo_files(f, _suffixed_txt(f)) for f in folders]  # (images/<subset>/ too)
    if not path.is_dir() or is_dataset_root(path):  # a dataset: not read here
        return None
    if (path / LABELMAP).is_file() and (path / SEGMENTATION_DIR).is_dir():
        return [_segmentation_masks_files(path)]
    if (path / CVAT_XML).is_file() and is_cvat_xml(path / CVAT_XML):  # CVAT for images
        return [_cvat_file(path / CVAT_XML)]
    out = []
    if (path / "coco.json").is_file():
        out += annotation_files(path / "coco.json") or []
    if (path / "labelstudio" / "tasks.json").is_file():
        out += annotation_files(path / "labelstudio" / "tasks.json") or []
    for folder in (path / "labelme", path):
        files = [f for f in sorted(folder.glob("*.json")) if f.name != "coco.json"]
        if folder.is_dir() and files and is_labelme(read_json(files[0], "annotation file")):
            read = ((f, read_json(f, "annotation file")) for f in files)  # one at a time
            docs = ((f, d) for f, d in read if is_labelme(d))
            out.append(_labelme_files(folder, docs, len(files)))
            break
    if not out:  # a folder of COCO or Label Studio files (a tool's download: annotations/)
        for f in sorted(path.glob("*.json")):
            found = _annotation_file(f, read_json(f, "annotation file"))
            out += [found] if found else []
    labels = _suffixed_txt(path)
    if not out and labels and looks_like_yolo(labels[0]):  # YOLO labels, a file per image
        out.append(_yolo_files(path, labels))
    return out or None


def _suffixed_txt(folder: Path) -> list[Path]:
    """A folder's label files (``.txt``, the class names file left aside)."""
    return [f for f in sorted(folder.glob("*.txt")) if f.name not in NAME_FILES]


def _archive_files(archive: Path) -> list[AnnotationFiles]:
    """The annotation files in an annotation tool's zip download, read from a temporary copy
    as import reads it, each named ``ARCHIVE!MEMBER``; an archive of none is an error."""
    from engine.annotate import archive_named, archive_root, unpacking_folder, unzip

    with unpacking_folder("engine-info-", archive) as tmp:
        folder = unzip(archive, tmp)
        names = {str(folder): str(archive)}  # the copy is gone once this returns
        found = [
            dataclasses.replace(
                item,
                path=Path(f"{archive}!{item.path.relative_to(folder).as_posix()}"),
                archive=archive,
                problems=None
                if item.problems is None
                else [archive_named(p, names) for p in item.problems],
            )
            for item in annotation_files(archive_root(folder)) or []
        ]
    if not found:
        raise ValueError(
            f"{archive}: no annotation files in this archive (COCO, LabelMe or Label Studio "
            "JSON, CVAT XML or segmentation masks, YOLO labels)"
        )
    return found


def _yolo_files(folder: Path, files: list[Path]) -> AnnotationFiles:
    """YOLO label files: objects per class (named by the dataset's data.yaml when there is
    one) and kind (polygon, box)."""
    try:
        names = find_class_names(folder)[1]
    except (FileNotFoundError, ValueError):
        names = []  # import says what is missing
    by_label: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    empty = 0
    for f in files:
        try:  # as import reads it (a byte-order mark, UTF-16)
            text = read_text(f, "label file")
        except ValueError:
            text = ""  # not text: import names it
        lines = [line.split() for line in text.splitlines() if line.strip()]
        empty += not lines
        for values in lines:
            index = values[0]
            name = names[int(index)] if index.isdigit() and int(index) < len(names) else None
            by_label[name or f"class {index}"] += 1
            kinds["box" if len(values) == 5 else "polygon"] += 1
    return AnnotationFiles(
        path=folder,
        format="yolo",
        files=len(files),
        images=len(files),
        empty_images=empty,
        by_label=dict(by_label),
        kinds=dict(kinds),
    )


def _cvat_file(path: Path) -> AnnotationFiles:
    """CVAT's "CVAT for images 1.1" XML: its images, and their shapes per label and kind."""
    by_label: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    images = empty = 0
    for image in parse_cvat_xml(path).iter("image"):
        images += 1
        shapes = list(image)
        empty += not shapes
        by_label.update(shape.get("label", "") for shape in shapes)
        kinds.update(shape.tag for shape in shapes)
    return AnnotationFiles(
        path=path,
        format="cvat",
        files=1,
        images=images,
        empty_images=empty,
        by_label=dict(by_label),
        kinds=dict(kinds),
    )


def _segmentation_masks_files(root: Path) -> AnnotationFiles:
    """A CVAT "Segmentation mask" export: the images each label's colour appears in."""
    colors = read_labelmap(root / LABELMAP)
    names = labelmap_codes(colors)
    files = sorted((root / SEGMENTATION_DIR).glob("*.png"))
    by_label: Counter[str] = Counter()
    empty = unknown = 0
    for f in files:
        codes = np.unique(read_color_codes(f)).tolist()
        found = {names[c] for c in codes if c in names} - {"background"}
        by_label.update(found)
        empty += not found
        unknown += any(c not in names for c in codes)
    kinds = {"PNG masks": len(files)}
    problems = []
    if unknown:  # import refuses them, naming the colour
        kinds["with colours not in the label map"] = unknown
        problems.append(
            f"{root / SEGMENTATION_DIR}: {counted(unknown, 'mask')} with colours not in the label "
            f"map ({LABELMAP})"
        )
    # each class an import line is offered for, in the label map's order (by_label's is a set's)
    for name in _classes([n for n in colors if n in by_label]):
        try:  # two labels of one colour, one of them this class: import refuses the label map
            read_labelmap(root / LABELMAP, name)
        except ValueError as e:
            problems.append(str(e))
    return AnnotationFiles(
        path=root,
        format="segmask",
        files=len(files),
        images=len(files),
        empty_images=empty,
        by_label=dict(by_label),
        kinds=kinds,
        problems=list(dict.fromkeys(problems)),
    )


def _annotation_file(path: Path, doc: object) -> AnnotationFiles | None:
    if is_labelme(doc):
        return _labelme_files(path, [(path, doc)])
    if is_labelstudio(doc):
        return _labelstudio_file(path, doc)
    if not isinstance(doc, dict):
        return None
    if not isinstance(doc.get("images"), list) or not isinstance(doc.get("annotations"), list):
        return None
    names = {c.get("id"): str(c.get("name")) for c in doc.get("categories") or []}
    by_label: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    annotated = set()
    for ann in doc["annotations"]:
        by_label[names.get(ann.get("category_id"), f"id {ann.get('category_id')}")] += 1
        seg = ann.get("segmentation")
        kinds["RLE" if isinstance(seg, dict) else "polygons" if seg else "none"] += 1
        annotated.add(ann.get("image_id"))
    ids = {img.get("id") for img in doc["images"]}
    info = doc.get("info")
    return AnnotationFiles(
        path=path,
        format="coco",
        files=1,
        images=len(ids),
        empty_images=len(ids - annotated),
        by_label=dict(by_label),
        kinds=dict(kinds),
        export=export_record(info),
        problems=_coco_problems(path, doc, list(names.values())),
    )


CHECK_LIMIT = 2_000  # LabelMe files: folders of more are described, and import checks them


def _classes(labels: list[str]) -> list[str]:
    """The classes among ``labels`` (unannotated's names left out), each once, in order."""
    found = [n for n in labels if n.strip().casefold() not in IGNORE_NAMES]
    return list(dict.fromkeys(found))


def _coco_problems(path: Path, doc: dict, labels: list[str]) -> list[str] | None:
    """What ``engine annotate import`` would refuse in a COCO file, read by its own reader per
    class at the sizes the file lists (no dataset at hand: an image's size against the
    dataset's, and whether it is in the split, are import's to check), its masks not painted.
    None when not read: an image without a size (Label Studio's COCO leaves them out)."""
    sizes = {}
    exported = export_record(doc.get("info")) is not None  # a backslash: part of the name
    for img in doc["images"]:
        try:
            stem = stem_without_split(str(img["file_name"]), exported)
            sizes[stem] = (int(img["height"]), int(img["width"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            return None  # no size, or a malformed entry: import names it against the dataset
    problems = []
    for name in _classes(labels) or ["(no class)"]:
        try:
            coco_to_masks(path, name, sizes, doc, lambda _: None, paint=False)
        except ValueError as e:
            problems.append(str(e))
    return list(dict.fromkeys(problems))


def _shared_record(records: list[dict | None]) -> dict | None:
    """The exporter's record when every file carries the same one (one export), else None."""
    return records[0] if records and records[0] and all(r == records[0] for r in records) else None


def _labelme_files(
    path: Path, docs: Iterable[tuple[Path, dict]], listed: int = 1
) -> AnnotationFiles:
    """LabelMe files described one at a time, none kept: LabelMe saves each image's pixels in
    its file (``imageData``, megabytes for a 4K photo), and holding a folder's documents made
    ``engine info`` need memory for all of them (400 files of 1 MB: 470 MB, now 110 MB).
    Checked as read when the folder lists (``listed`` JSON files) no more than
    :data:`CHECK_LIMIT`; else only at the end, read again, if other JSON files among them left
    no more LabelMe files than that: checking the first 2,000 of a larger folder was undone
    at its end (2,100 4K files: 97 s of CPU, now 0.7 s)."""
    by_label: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    files = empty = 0
    record, shared = None, True  # the first file's record; whether every file's equals it
    problems: list[str] = []
    seen: dict[str, Path] = {}  # stem -> the file annotating it, for import's twice check
    later: list[Path] = []  # the files to check once their count is known
    for f, doc in docs:
        files += 1
        empty += not doc.get("shapes")
        for shape in doc.get("shapes") or []:
            by_label[str(shape.get("label"))] += 1
            kinds[str(shape.get("shape_type") or "polygon")] += 1
        if files == 1:
            record = export_record(doc)
        else:
            shared = shared and export_record(doc) == record
        if listed <= CHECK_LIMIT:  # folders of more are described only, as import checks them
            problems += _labelme_problems(f, doc, seen)
        elif files <= CHECK_LIMIT:
            later.append(f)
    if files <= CHECK_LIMIT:  # listed more JSON files than LabelMe ones
        for f in later:
            problems += _labelme_problems(f, read_json(f, "annotation file"), seen)
    return AnnotationFiles(
        path=path,
        format="labelme",
        files=files,
        images=files,
        empty_images=empty,
        by_label=dict(by_label),
        kinds=dict(kinds),
        export=record if record and shared else None,
        problems=list(dict.fromkeys(problems)) if files <= CHECK_LIMIT else None,
    )


def _labelme_problems(f: Path, doc: dict, seen: dict[str, Path]) -> list[str]:
    """What ``engine annotate import`` would refuse in a LabelMe file, read by its own reader
    at the size the file gives (its shapes, its size, an image annotated in two files: ``seen``
    holds the files read before it, by stem)."""
    try:
        hw = labelme_size(doc, f) or _shapes_extent(doc)
    except ValueError as e:
        return [str(e)]
    problems = []
    stem = stem_without_split(str(doc.get("imagePath") or f.name), export_record(doc) is not None)
    if stem in seen:
        problems.append(f"{f}: image {stem!r} is annotated twice (also in {seen[stem]})")
    seen[stem] = f
    labels = [str(s.get("label")) for s in doc.get("shapes") or [] if isinstance(s, dict)]
    for name in _classes(labels) or ["(no class)"]:  # each class's shapes, as import draws
        try:
            labelme_to_mask(f, name, {stem: hw}, doc)
        except ValueError as e:
            problems.append(str(e))
    return problems


def _shapes_extent(doc: dict) -> tuple[int, int]:
    """``(H, W)`` holding every point of a LabelMe file's shapes: the size its shapes are drawn
    at when the file gives none (import takes the dataset image's). Before, 1x1: a ``mask``
    shape larger than 2x2 was reported as "over twice the image's 1x1", which import reads."""
    h = w = 1
    for shape in doc.get("shapes") or []:
        points = shape.get("points") if isinstance(shape, dict) else None
        for point in points if isinstance(points, list) else ():
            with contextlib.suppress(TypeError, ValueError, OverflowError, IndexError):
                x, y = float(point[0]), float(point[1])
                w, h = max(w, math.ceil(x) + 1), max(h, math.ceil(y) + 1)
    return h, w


def _labelstudio_file(path: Path, tasks: list[dict]) -> AnnotationFiles:
    """Label Studio's tasks: the regions of the annotation import would read (the submitted
    one), or of the pre-annotation where none is submitted yet (an export, or a project's
    untouched tasks), counted as waiting."""
    tasks = labelstudio_tasks(tasks)  # JSON-MIN's rows as the tasks they flatten
    by_label: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    waiting = empty = 0
    for task in tasks:
        try:
            annotation = submitted_annotation(task, str(path))
        except ValueError:  # several: import says which; here the first is counted
            listed = annotations_of(task)  # not a list (edited): counted as none, import says why
            listed = listed if isinstance(listed, list) else []
            annotation = next((a for a in listed if isinstance(a, dict)), None)
        if annotation is None:
            waiting += 1
            predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
            annotation = predictions[0] if predictions else {}
        regions = [region_labels(r) for r in annotation.get("result") or [] if isinstance(r, dict)]
        empty += not any(kind for kind, _ in regions)
        for kind, labels in regions:
            if kind is not None:
                by_label.update(str(label) for label in labels or ["(no label)"])
                kinds[kind] += 1
    records = [export_record(t.get("data")) for t in tasks]
    return AnnotationFiles(
        path=path,
        format="labelstudio",
        files=1,
        images=len(tasks),
        empty_images=empty,
        by_label=dict(by_label),
        kinds=dict(kinds),
        export=_shared_record(records),
        waiting=waiting,
    )
