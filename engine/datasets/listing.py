"""A split's files listed: image and label names matched by stem (sub-folders too, links
followed once), the near misses named when a file is missing, and paths as records write them
(:func:`relative_ref`, :func:`tidy_path`).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.text import few

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def relative_ref(path: Path, folder: Path) -> str:
    """``path`` as a file in ``folder`` names it (a spec's entry): relative to it, with ``/``
    (a spec written on Windows reads anywhere); absolute on another drive (Windows), and where
    the relative path leads elsewhere: ``..`` out of a folder reached through a symbolic link
    goes up from the link's target (``runs -> /scratch/runs``: a fused dataset in
    ``runs/fused/b`` wrote ``images: ../../../data/images/{split}``, read as
    ``/scratch/data/images/...``, and every command on it said "no image split folders found")."""
    path = path.absolute()
    try:
        rel = os.path.relpath(path, folder.absolute())
    except ValueError:  # another drive on Windows
        return str(path)
    if os.path.realpath(folder.absolute() / rel) != os.path.realpath(path):
        return str(path)
    return Path(rel).as_posix()


def tidy_path(path: Path) -> Path:
    """``path`` with ``.`` and ``DIR/..`` folded away when that names the same folder: a fused
    dataset's images (``images: ../../../data/images/{split}``) are then named in messages as
    ``data/images/train/x.jpg``, not ``runs/fused/bicycle/../../../data/images/train/x.jpg``.
    Kept as given where folding would change its meaning (a symlinked folder before ``..``).
    A path that does not exist (a split asked for that the dataset lacks) is its folder's tidy
    path and its name: ``data/images/nope``, not ``runs/fused/../data/images/nope``."""
    tidy = Path(os.path.normpath(path))
    if ".." not in path.parts or tidy == path:
        return tidy  # without "..", normpath only drops "." and doubled separators
    try:
        return tidy if os.path.samefile(tidy, path) else path
    except OSError:
        if path.name in ("", ".", ".."):
            return path
        parent = tidy_path(path.parent)
        return path if parent == path.parent else parent / path.name


def listed_file(path: Path, exts: tuple[str, ...]) -> bool:
    """Whether ``path``, an entry of a folder of images or labels, is one of its files: not
    hidden (the ``._a.jpg`` a macOS copy puts beside each image), with a suffix of ``exts`` in
    any case, and a file or a symbolic link whose target is gone, listed so that its image
    fails naming the link (left out, the image vanished, or its label was reported as having
    no image)."""
    if path.name.startswith(".") or path.suffix.lower() not in exts:
        return False
    return path.is_file() or (path.is_symlink() and not path.exists())


def _folders_named(folder: Path, stems: list[str], exts: tuple[str, ...]) -> str:
    """``"; FOLDER/a.jpg is a folder, not a file"`` for the end of a "no image" / "no label"
    error when folders of those stems with a suffix the dataset reads are there (a folder is no
    file, so it is not listed, and the error said only that the file was missing); else ``""``."""
    if not folder.is_dir():  # a label folder a stopped fusion has not written yet
        return ""
    wanted = set(stems)
    found = sorted(
        p.name
        for p in folder.iterdir()
        if p.stem in wanted and p.suffix.lower() in exts and p.is_dir()
    )
    if not found:
        return ""
    one = len(found) == 1
    return (
        f"; {folder / found[0] if one else folder} "
        + ("is a folder" if one else f"holds folders named {few(found, 3, total=True)}")
        + (", not a file" if one else ", not files")
    )


def _case_twins(folder: Path, stems: list[str], unpaired: dict[str, Path]) -> str:
    """``"; FOLDER holds IMG_1.png, ...: names that differ from theirs in case only"`` for the
    end of a "no label" / "no image" error when files of the other folder left ``unpaired``
    (``stem -> path``) differ from ``stems`` only in case (a dataset made where file names
    ignore case, on macOS or Windows: images and labels are paired by their exact stem);
    else ``""``."""
    lower = {s.lower() for s in stems}
    found = sorted(p.name for s, p in unpaired.items() if s.lower() in lower)
    if not found:
        return ""
    return (
        f"; {folder} holds {few(found, 3, total=True)}: names that differ from theirs in case "
        "only (images and labels are paired by their exact names)"
    )


def _other_suffixes(
    folder: Path, stems: list[str], exts: tuple[str, ...], labels: bool = False
) -> str:
    """``"; FOLDER holds a.webp, b.tif: ..."`` for the end of a "no image for N labels" error
    (``labels``: "no label for N images") when files of those stems are there with suffixes
    the dataset does not read; else ``""``."""
    if not folder.is_dir():
        return ""
    wanted = set(stems)
    found = sorted(
        p.name
        for p in folder.iterdir()
        if p.stem in wanted and not p.name.startswith(".") and p.suffix.lower() not in exts
    )
    if not found:
        return ""
    if labels:  # label maps are PNGs: no spec key reads another suffix
        return (
            f"; {folder} holds {few(found, 3, total=True)}: label maps are read from .png "
            "files only (save them as PNGs)"
        )
    return (
        f"; {folder} holds {few(found, 3, total=True)}, whose suffix the dataset does not read "
        f"({' '.join(exts)}): list it in image_exts of a dataset spec (docs/foundation.md)"
    )


def _walk(folder: Path) -> list[Path]:
    """Every entry under ``folder`` and its sub-folders, hidden ones (``.git``) left out, sorted.
    Symbolic links to folders are followed (a city's folder linked from elsewhere), but one to a
    folder that holds it (``city/up -> ..``), or to a folder the walk came through (two links,
    ``a/x -> ../b`` and ``b/y -> ../a``), is refused naming it: followed, the walk went round
    the loop until the path was too long (40 links), and the error listed the same images 40
    deep (``several files share a stem: city/up/city/a.jpg, ...``)."""
    found = []
    for top, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for d in dirs:
            if os.path.islink(link := os.path.join(top, d)) and (back := _leads_back(link, folder)):
                what = (
                    "a folder that holds it"
                    if back == top
                    else f"a folder it is reached through ({back})"
                )
                raise ValueError(
                    f"{link}: a symbolic link to {os.readlink(link)}, {what}: the sub-folders "
                    "would be read round in a loop; remove the link"
                )
        found += [Path(top) / n for n in names]
    return sorted(found)


def _leads_back(link: str, root: Path) -> str | None:
    """The folder on the walk from ``root`` to the symbolic link ``link`` (its own folder first,
    then up to ``root``) that the folder ``link`` leads to is, or holds; None where there is
    none: a loop, followed."""
    target = os.path.realpath(link)
    parts = Path(link).parent.relative_to(root).parts
    for n in range(len(parts), -1, -1):
        if _holds(target, os.path.realpath(here := os.path.join(root, *parts[:n]))):
            return here
    return None


def _holds(outer: str, inner: str) -> bool:
    """Whether the folder ``outer`` is ``inner`` or holds it (both real paths); not where they
    are on different drives (Windows: ``os.path.commonpath`` raised ValueError)."""
    try:
        return os.path.commonpath([outer, inner]) == outer
    except ValueError:
        return False


def _stem_in(name: str, exts: tuple[str, ...], suffix: str | None) -> str | None:
    """The stem of the file name ``name`` as a spec reads it: without ``suffix`` where it ends
    so (case-insensitive: Cityscapes' ``a_leftImg8bit.png`` is ``a``), else without one of
    ``exts``; None when the name is neither."""
    if suffix is not None:
        if len(name) > len(suffix) and name.lower().endswith(suffix.lower()):
            return name[: -len(suffix)]
        return None
    return Path(name).stem if Path(name).suffix.lower() in exts else None


def _list_files(
    folder: Path, exts: tuple[str, ...], suffix: str | None = None, recursive: bool = False
) -> dict[str, Path]:
    """``stem -> path`` of the files of ``folder`` with a suffix of ``exts`` (the stem: the name
    without it), or whose names end with ``suffix`` (the stem: the name without ``suffix``)."""
    files: dict[str, Path] = {}
    dupes: list[str] = []
    for p in _walk(folder) if recursive else sorted(folder.iterdir()):
        stem = _stem_in(p.name, exts, suffix)
        if stem is None or not listed_file(p, exts if suffix is None else (p.suffix.lower(),)):
            continue
        if stem in files:
            dupes.append(str(p.relative_to(folder)) if recursive else p.name)
        files[stem] = p
    if dupes:
        raise ValueError(f"{folder}: several files share a stem: {', '.join(dupes[:5])}")
    return files


def label_dir_found(label_dir: Path | None) -> bool:
    """Whether a split's label folder is there (or the dataset has none to find)."""
    return label_dir is None or label_dir.is_dir()
