"""An import's sources: the files and folders given, found (or the near miss named), expanded,
and the format each holds (:func:`detect_format`).
"""

from __future__ import annotations

import os
from pathlib import Path

from annotations.cvat import CVAT_XML, is_cvat_xml
from annotations.fileio import read_json
from annotations.interchange import LABELMAP, SEGMENTATION_DIR, is_labelme
from annotations.labelstudio import is_labelstudio
from annotations.yolo import NAME_FILES, looks_like_yolo, yolo_label_folders
from engine.annotate.common import IMPORT_FORMATS
from engine.datasets import listed_file


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


def read_sources(sources: list[str]) -> list[str]:
    """The sources as import reads them: a YOLO dataset's root (``data.yaml`` beside
    ``labels/``, as CVAT, Ultralytics and Roboflow download one) as its label folders
    (:func:`annotations.yolo.yolo_label_folders`), any other source as it is."""
    return [str(f) for s in sources for f in yolo_label_folders(Path(s)) or [s]]


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
