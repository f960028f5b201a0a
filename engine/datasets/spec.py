"""A dataset spec read (:func:`load_spec`: a root, its ``dataset.yaml``, or a spec file), each
mistake named with its file (other tools' keys, files for people, unquoted splits), and the
split lists a spec may name (:func:`read_split_list`).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from annotations.fileio import did_you_mean, read_json, read_yaml, spec_file, unexpanded
from annotations.taxonomy import MASS13K, Taxonomy
from engine.datasets.layout import DatasetSpec, release_images
from engine.datasets.listing import IMAGE_EXTS

_SPEC_KEYS = {
    "images",
    "labels",
    "taxonomy",
    "splits",
    "image_exts",
    "image_suffix",
    "label_suffix",
    "recursive",
    "split_list",
}


def _unquoted_split(path: Path, error: str = "") -> str:
    """The hint for a YAML value that starts with ``{split}`` unquoted, which YAML reads as a
    mapping (``images: {split}`` is ``{'split': None}``; ``{split}/photos`` does not parse).
    Comment lines are skipped and a value's `` # comment`` left out; where ``error`` (YAML's
    message) names a line, only that line is read: a parse error elsewhere gets no hint."""
    if path.suffix == ".json":
        return ""
    at = re.findall(r"\bat line (\d+), column \d+", error)[-1:]  # YAML's, after the path
    with contextlib.suppress(OSError, UnicodeError):
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("#") or (at and number != int(at[0])):
                continue
            key, sep, value = line.partition(":")
            value = re.split(r"\s#", value, maxsplit=1)[0].strip()  # YAML: " #" starts a comment
            if sep and value.startswith("{split}"):
                key = key.strip()
                return f"; quote the value: {key}: '{value}' (unquoted, YAML reads {{...}} as a mapping)"
    return ""


def load_spec(path: str | os.PathLike) -> DatasetSpec:
    """A dataset spec from a root folder (MaSS13K layout unless it holds ``dataset.yaml``) or a spec file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(not_found(path, "dataset root"))
    if path.is_dir():
        found = spec_file(path)
        if found is None:
            return DatasetSpec(root=path, split_images=release_images(path))
        return _read_spec_file(found)
    return _read_spec_file(path)


def not_found(path: Path, what: str = "") -> str:
    """``"PATH: WHAT not found"`` for a path that is not there, with what to do: a ``~`` the
    shell left as typed, else a near miss of its name in its folder (:func:`_near_miss`)."""
    said = f"{path}: {what} not found" if what else f"{path}: not found"
    return f"{said}; {unexpanded(path)}" if path.parts[:1] == ("~",) else said + _near_miss(path)


def _near_miss(path: Path) -> str:
    """``"; did you mean PARENT/NAME?"`` for a path not found whose folder holds a near miss of
    its name (``runs/label/bicyle`` for ``runs/label/bicycle``), else ``""``."""
    import difflib
    import itertools

    try:
        names = [p.name for p in itertools.islice(path.parent.iterdir(), 10_000)]
    except OSError:  # its folder is not there either
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return f"; did you mean {path.parent / close[0]}?" if close else ""


# keys of other tools' dataset configs (mmsegmentation's), and what a spec writes instead
_CONVERT = "convert the label maps first (docs/foundation.md, 'Other datasets')"
_OTHER_TOOLS = {
    "img_suffix": "write image_suffix",
    "seg_map_suffix": "write label_suffix",
    "img_dir": "write images (a folder template such as images/{split})",
    "ann_dir": "write labels (a folder template such as annotations/{split})",
    "ann_file": "write split_list (a file template such as ImageSets/Segmentation/{split}.txt)",
    "data_root": "paths are relative to the spec's folder: put dataset.yaml in the root",
    "reduce_zero_label": "label maps are read as they are (0 is a class, 255 ignore): list "
    f"value 0 as a class of the taxonomy, or {_CONVERT}",
    "ignore_index": f"255 is ignore in every label map: {_CONVERT}",
    "label_map": f"label maps hold the taxonomy's ids: {_CONVERT}",
}
_EXAMPLES = {
    "image_suffix": "_leftImg8bit.png",
    "label_suffix": "_gtFine_labelTrainIds.png",
    "split_list": "ImageSets/Segmentation/{split}.txt",
}


# files written for people, never a dataset spec: named, not parsed as YAML
_TEXT_FOR_PEOPLE = {
    ".md": "a Markdown",
    ".markdown": "a Markdown",
    ".html": "an HTML",
    ".htm": "an HTML",
}


def _read_spec_file(path: Path) -> DatasetSpec:
    if path.suffix.lower() in IMAGE_EXTS:  # an image or label map: read as YAML, "not UTF-8"
        root, meant = path.parent.parent.parent, ""  # ROOT/images/<split>/x.jpg
        with contextlib.suppress(ValueError, OSError):  # a root with a spec of its own
            meant = (
                f": give its dataset's root, {root}" if load_spec(root).available_splits() else ""
            )
        raise ValueError(f"{path}: an image file, not a dataset's root or spec{meant}")
    if path.suffix.lower() in (".pt", ".pth"):
        raise ValueError(
            f"{path}: a checkpoint (for engine predict and engine train --init), not a dataset's "
            "root or spec"
        )
    if path.suffix.lower() in _TEXT_FOR_PEOPLE:  # an engine compare --markdown table, a page:
        # before, read as YAML ("cannot parse YAML (expected a comment ...)")
        raise ValueError(
            f"{path}: {_TEXT_FOR_PEOPLE[path.suffix.lower()]} file, not a dataset's root or "
            "spec (a YAML or JSON file)"
        )
    read = read_json if path.suffix == ".json" else read_yaml
    try:
        data = read(path, "dataset spec")
    except ValueError as e:  # `images: {split}/photos`: YAML's flow mapping, cut short
        raise ValueError(f"{e}{_unquoted_split(path, str(e))}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a dataset spec must be a mapping with keys {sorted(_SPEC_KEYS)}")
    unknown = set(data) - _SPEC_KEYS
    for key in sorted(unknown & set(_OTHER_TOOLS)):  # an mmsegmentation config's names
        raise ValueError(f"{path}: {key!r} is not a dataset spec key: {_OTHER_TOOLS[key]}")
    if unknown:
        hint = did_you_mean(unknown, _SPEC_KEYS)
        raise ValueError(
            f"{path}: unknown keys {sorted(unknown)}{hint}; allowed: {sorted(_SPEC_KEYS)}"
        )
    root = path.parent
    # a spec written on Windows (`images: images\{split}`): its backslashes are separators, as
    # everywhere else a user names an image; before, no folder 'images\train' was found
    data = {k: _posix(v) for k, v in data.items()}
    images = data.get("images", "images/{split}")
    labels = data.get("labels", "annotations/{split}")
    split_images: tuple[tuple[str, str], ...] = ()
    if isinstance(images, dict):  # each split's folder: {train: images_pad/train, ...}
        if not images or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in images.items()
        ):
            raise ValueError(
                f"{path}: 'images' must be a folder template such as 'images/{{split}}' or a "
                f"mapping of splits to folders such as {{train: images_pad/train}}, got {images!r}"
                + _unquoted_split(path)
            )
        split_images = tuple(images.items())
        images = "images/{split}"
        data.setdefault("splits", [s for s, _ in split_images])
    for key, value, nullable in (("images", images, False), ("labels", labels, True)):
        if not (isinstance(value, str) and value) and not (nullable and value is None):
            raise ValueError(
                f"{path}: '{key}' must be a folder template such as '{key}/{{split}}'"
                f"{' or null' if nullable else ''}, got {value!r}" + _unquoted_split(path)
            )
    taxonomy, taxonomy_file = MASS13K, None
    if data.get("taxonomy"):
        taxonomy_file = root / str(data["taxonomy"])
        taxonomy = Taxonomy.load(taxonomy_file)
    splits = data.get("splits")
    if splits is not None and not (
        isinstance(splits, list) and splits and all(isinstance(v, str) for v in splits)
    ):
        raise ValueError(
            f"{path}: 'splits' must be a list of names such as [train, val], got {splits!r}"
        )
    exts = data.get("image_exts", list(IMAGE_EXTS))
    if not (isinstance(exts, list) and exts and all(isinstance(e, str) for e in exts)):
        raise ValueError(f"{path}: 'image_exts' must be a list such as [.jpg, .png], got {exts!r}")
    suffixes = {}
    for key in ("image_suffix", "label_suffix", "split_list"):
        value = data.get(key)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise ValueError(
                f"{path}: '{key}' must be text such as '{_EXAMPLES[key]}', got {value!r}"
            )
        suffixes[key] = value
    if suffixes["image_suffix"] is not None and "image_exts" in data:
        raise ValueError(
            f"{path}: give image_suffix or image_exts, not both (image_suffix names the end of "
            "every image's name, its extension too)"
        )
    if suffixes["label_suffix"] is not None and not suffixes["label_suffix"].lower().endswith(
        ".png"
    ):
        raise ValueError(
            f"{path}: 'label_suffix' must end in .png (label maps are read from PNG files), got "
            f"{suffixes['label_suffix']!r}"
        )
    recursive = data.get("recursive", False)
    if not isinstance(recursive, bool):
        raise ValueError(f"{path}: 'recursive' must be true or false, got {recursive!r}")
    return DatasetSpec(
        root=root,
        image_suffix=suffixes["image_suffix"],
        label_suffix=suffixes["label_suffix"],
        recursive=recursive,
        split_list=suffixes["split_list"],
        images=images,
        labels=labels,
        taxonomy=taxonomy,
        taxonomy_file=taxonomy_file,
        splits=None if splits is None else tuple(splits),
        image_exts=tuple(e.lower() if e.startswith(".") else f".{e}".lower() for e in exts),
        split_images=split_images,
    )


def read_split_list(
    path: Path, spec: DatasetSpec, available: dict[str, Path] | None = None
) -> list[str]:
    """The stems a split list names, one a line, in its order, each once (Pascal VOC's
    ``ImageSets/Segmentation/train.txt``; a line may also be a path, ``JPEGImages/a.jpg
    SegmentationClass/a.png`` as DeepLab's lists are: its first word's file name, without the
    image suffix, is the stem).

    A line names its image as a user writes it, the first reading that is one of the split's
    ``available`` images (``stem -> path``) winning: the whole line (``my photo``, a name with
    spaces), the line as a shell reads it (``"my photo"``, ``'it'\\''s'``, ``my\\ photo``), or its
    first word, a backslash a folder separator (``JPEGImages\\a.jpg``). Before the forty-ninth
    round only the first word was read: ``my photo`` listed ``my``, and the split was refused
    for an image ``my`` it does not hold. A line naming no image: its first word where the
    line is DeepLab's two paths, else the whole line (or as the shell reads it)."""
    from annotations.fileio import read_text

    def stem_in(text: str, windows: bool) -> str:
        name = (text.replace("\\", "/") if windows else text).rsplit("/", 1)[-1]
        return spec.image_stem(name) or name  # a bare stem (VOC's lines) as it is

    stems: dict[str, None] = {}
    for line in read_text(path, "split list").splitlines():
        line, words = line.strip(), line.split()
        if not words or words[0].startswith("#"):
            continue
        shell = _shell_words(line)
        deeplab = len(words) == 2 and words[1].lower().endswith(".png")  # image, then label
        # DeepLab's two paths name the image first: read before the whole line, whose last
        # part is the label's file (``images/a.png labels/a_mask.png`` listed a_mask where
        # the split holds an image of that name)
        paths = deeplab and ("/" in words[1] or "\\" in words[1])  # the label in a folder
        readings = [words[0], line, *shell[:1]] if paths else [line, *shell[:1]]
        found = next(
            (
                stem
                for text in readings
                for stem in (stem_in(text, False), stem_in(text, True))
                if available is not None and stem in available
            ),
            None,
        )
        if found is None:  # no image: as the old reading, else as the line reads
            first = stem_in(words[0], True)
            if (
                available is None
                or first in available
                or deeplab
                or (len(words) == 1 and not shell)
            ):
                found = first
            else:
                found = stem_in(shell[0] if len(shell) == 1 else line, False)
        stems[found] = None
    if not stems:
        raise ValueError(f"{path}: the split list names no image")
    return list(stems)


def _shell_words(line: str) -> list[str]:
    """``line`` split as a POSIX shell does (quotes, backslash escapes), where it has quotes or
    a backslash before a space; ``[]`` otherwise or where it does not parse (an unclosed
    quote: ``it's``, read as it is)."""
    import shlex

    if not any(c in line for c in "'\"") and "\\ " not in line:
        return []
    try:
        return shlex.split(line)
    except ValueError:
        return []


def _posix(value: object) -> object:
    """A spec's value with a backslash read as a folder separator: a string, or the strings of
    a mapping (each split's folder); anything else as it is (checked where it is read)."""
    if isinstance(value, str):
        return value.replace("\\", "/")
    if isinstance(value, dict):
        return {k: v.replace("\\", "/") if isinstance(v, str) else v for k, v in value.items()}
    return value
