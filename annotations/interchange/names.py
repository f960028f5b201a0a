"""Which dataset image an annotation file's image name means: the split's image sizes
(:class:`SplitSizes`) and the size check (:func:`check_size`), and a name as tools rewrite it
(an upload prefix, Roboflow's suffix, a URL, a Windows path) to its dataset stem
(:func:`split_stem`, :func:`name_stem`, :func:`dataset_stem`)."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from urllib.parse import parse_qs, unquote, urlparse


class SplitSizes(dict):
    """``stem -> (H, W)`` of a dataset split's images, knowing the split's name and, asked only
    when an annotation names an image the split lacks, which other split holds it
    (``elsewhere``), so that the error says which ``--split`` the image belongs to."""

    def __init__(
        self,
        sizes: dict[str, tuple[int, int]],
        split: str,
        elsewhere: Callable[[str], str | None] | None = None,
        turned: Callable[[str, tuple[int, int]], str] | None = None,
    ) -> None:
        super().__init__(sizes)
        self.split = split
        # an image file's own stem -> the dataset's, where a spec's image_suffix cuts more
        # (Cityscapes' a_leftImg8bit.png is a): the name an annotation tool knows it by
        self.named: dict[str, str] = {}
        self.elsewhere = elsewhere or (lambda stem: None)
        # asked only for an annotation of an image's size turned a quarter: the end of the
        # error when the image's EXIF orientation turns it so, else ""
        self.turned = turned or (lambda stem, hw: "")
        self.composed: dict[str, str] | None = None  # NFC -> stem, made when first asked


def unescaped(text: str) -> str:
    """A name as text files write it (:func:`annotations.fileio.atomic_write_text`) read back:
    ``caf\\udce9`` (a line of a pick list or an export's ``images.txt``) is ``caf\\xe9`` again.
    Only ``\\udc80`` to ``\\udcff``, the surrogates of undecodable bytes, are read back; any
    other backslash is left as it is."""
    if "\\udc" not in text:
        return text
    return re.sub(r"\\udc([89a-fA-F][0-9a-fA-F])", lambda m: chr(0xDC00 + int(m[1], 16)), text)


def composed_stems(sizes: dict[str, tuple[int, int]]) -> dict[str, str]:
    """``NFC form -> stem`` of the split's stems that only one stem composes to (a split that
    holds both spellings of a name has no one image for it)."""
    found = getattr(sizes, "composed", None)
    if found is None:
        seen: dict[str, list[str]] = {}
        for stem in sizes:
            seen.setdefault(unicodedata.normalize("NFC", stem), []).append(stem)
        found = {nfc: stems[0] for nfc, stems in seen.items() if len(stems) == 1}
        if isinstance(sizes, SplitSizes):
            sizes.composed = found
    return found


def _in_split(name: str, sizes: dict[str, tuple[int, int]]) -> str | None:
    """The split's stem spelled ``name``, or composed alike (Unicode NFC): ``vélo`` as a tool
    writes it (é) for a file stored as macOS names it (e + U+0301), and the other way round."""
    if name in sizes:
        return name
    if name.isascii():
        return None
    return composed_stems(sizes).get(unicodedata.normalize("NFC", name))


def check_size(
    path: str | os.PathLike, stem: str, hw: tuple[int, int], sizes: dict[str, tuple[int, int]]
) -> None:
    """``ValueError`` starting ``path`` (a file, or a place in it: "tasks.json: task 7") unless
    the image ``stem`` is in the split at size ``hw``."""
    if stem not in sizes:
        split = getattr(sizes, "split", None)  # a plain dict: the split is not named
        other = sizes.elsewhere(stem) if isinstance(sizes, SplitSizes) else None
        raise ValueError(
            f"{path}: image {stem!r} is not in "
            + (f"split {split!r}" if split else "the dataset split")
            + f" ({len(sizes)} image{'' if len(sizes) == 1 else 's'})"
            + (f"; it is in split {other!r}: give --split {other}" if other else "")
        )
    want = sizes[stem]
    if tuple(hw) != tuple(want):
        turned = tuple(hw) == tuple(want)[::-1] and isinstance(sizes, SplitSizes)
        raise ValueError(
            f"{path}: image {stem!r} is {hw[1]}x{hw[0]} in the annotation but "
            f"{want[1]}x{want[0]} in the dataset"
            + (sizes.turned(stem, (hw[1], hw[0])) if turned else "")
        )


# Label Studio stores an uploaded image as uuid4()[:8] + "-" + its name, and writes that name
# into its exports (data_import/models.py, upload_name_generator)
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")


# Roboflow renames every image it exports: its name with "." as "_", then ".rf." and a 32-digit
# hash (2056.jpg -> 2056_jpg.rf.68cb444f62494b5756c4708d119a66da.jpg)
_ROBOFLOW_NAME = re.compile(r"^(.+)\.rf\.[0-9a-f]{32}$")
_IMAGE_SUFFIX = re.compile(r"_(jpe?g|png|bmp|tiff?|webp)$", re.IGNORECASE)


def dataset_stem(stem: str, sizes: dict[str, tuple[int, int]]) -> str:
    """The dataset's stem for an annotation's image: ``stem`` itself, or, when only that is in
    the split, the name an annotation tool renamed it from: without Label Studio's upload prefix
    (``8f3a2b1c-img000`` -> ``img000``), or Roboflow's export name (``img000_jpg.rf.<hash>`` ->
    ``img000``; a converted ``IMG_1_jpeg_jpg.rf.<hash>`` -> ``IMG_1``), each spelled as in the
    split or composed alike (Unicode NFC: a tool on Linux or Windows writes ``vélo`` with one
    é where macOS stored the file as e + U+0301, and an import said ``image 'vélo' is not in
    split 'test'``; the subset keeps the dataset's spelling). Each is tried as it
    stands, then percent-decoded: a URL without a scheme (``export --image-url /static/``, an
    upload) encodes ``img 001`` as ``img%20001``, and a file may be named ``x%20y`` itself."""
    for name in dict.fromkeys((stem, unquote(stem, errors="surrogateescape"))):
        if (found := _renamed_stem(name, sizes)) is not None:
            return found
    return stem


def _renamed_stem(stem: str, sizes: dict[str, tuple[int, int]]) -> str | None:
    """:func:`dataset_stem` of one spelling of the stem; None: no image of the split."""
    named = getattr(sizes, "named", {})

    def known(name: str) -> str | None:
        if (found := _in_split(name, sizes)) is not None:  # composed alike too (NFC)
            return found
        return named.get(name)

    if (found := known(stem)) is not None:
        return found
    if (m := _UPLOAD_PREFIX.match(stem)) and (found := known(m.group(1))) is not None:
        return found
    if m := _ROBOFLOW_NAME.match(stem):
        name = m.group(1)
        while known(name) is None and _IMAGE_SUFFIX.search(name):
            name = _IMAGE_SUFFIX.sub("", name)
        return known(name)
    return None


_LOCAL_FILES = re.compile(r"[^?#]*local-files/?\?")  # Label Studio's local-files storage URL


def image_path(name: str) -> str:
    """The file path in an image reference that may be a URL, as Label Studio writes them into
    its JSON and COCO exports: a local-files storage's ``?d=`` path, else the URL's path
    (``s3://bucket/img000.jpg``, ``https://host/img000.jpg?signature``), percent-decoded. A
    plain path (no ``://``, not local-files storage's ``/data/local-files/?d=``) is itself, a
    Windows one included, and so is a file name with ``?``, ``#`` or ``%`` in it
    (``a #1?x%20y.jpg``: before, read as a URL whose path was ``a ``). A byte that is not
    UTF-8 (``caf%E9.jpg``, as ``annotate export`` writes a latin-1 name) is the file name's own
    byte (a surrogate, as Python reads ``caf\\xe9.jpg``): it was read as U+FFFD, and the
    import said ``image 'caf\ufffd' is not in split``."""
    if "://" not in name and not _LOCAL_FILES.match(name):
        return name
    parsed = urlparse(name)
    d = parse_qs(parsed.query, errors="surrogateescape").get("d")
    return d[0] if d else unquote(parsed.path or name, errors="surrogateescape")


def stem_of(file_name: str) -> str:
    """Stem of an image path or URL (:func:`image_path`) written with / or \\ separators."""
    return PurePath(image_path(file_name).replace("\\", "/")).stem


def split_stem(file_name: str, sizes: dict[str, tuple[int, int]]) -> str:
    """:func:`dataset_stem` of an annotation's image path or URL: read with / separators first,
    a backslash part of the name (``a\\b.jpg``, legal on Linux, as ``annotate export`` writes
    it), when that names an image of the split; else with \\ separators too (a Windows path).
    Before, an exported ``a\\b.jpg`` came back as image ``b``, not in the split."""
    return dataset_stem(name_stem(file_name, sizes), sizes)


def literal_stem(file_name: str) -> str:
    """Stem of an image path or URL read with / separators only: a backslash is part of the
    name (``a\\b.jpg``, as ``annotate export`` writes a Linux file named so)."""
    return PurePosixPath(image_path(file_name)).stem


_RELATIVE_PART = re.compile(r"(?:^|[\\/])\.{1,2}\\")  # a .\ or ..\ component


def windows_path(file_name: str) -> bool:
    r"""Whether an image path (:func:`image_path`) reads as a Windows path, whose backslashes
    are separators whatever else the file says: a ``.\`` or ``..\`` component (LabelMe on
    Windows saves ``imagePath`` relative to the file, ``..\..\data\images\test\x.jpg``, in
    a file it re-saves with the engine's export record kept), a drive (``C:\``, ``C:x.jpg``)
    or a UNC prefix (``\\server\share\``, ``\\?\``)."""
    path = image_path(file_name)
    if "\\" not in path:
        return False  # read alike either way
    return bool(
        _RELATIVE_PART.search(path) or PureWindowsPath(path).drive or path.startswith("\\\\")
    )


def name_stem(file_name: str, sizes: dict[str, tuple[int, int]]) -> str:
    """The image's stem as the annotation spells it (:func:`split_stem` before the dataset's
    renames): :func:`literal_stem` when that names an image of the split and the name is no
    :func:`windows_path`, else :func:`stem_of` (a Windows path)."""
    if windows_path(file_name):
        return stem_of(file_name)
    literal = literal_stem(file_name)
    return literal if dataset_stem(literal, sizes) in sizes else stem_of(file_name)


def stem_without_split(file_name: str, exported: bool) -> str:
    """:func:`name_stem` where no split is at hand (``engine info`` on annotation files, saying
    what import would refuse): a backslash is part of the name in the engine's own export
    (``exported``: it carries an export record, and wrote each image's file name as it is:
    ``a\\b.jpg`` of a Linux file named so), else a Windows path's separator, as import reads
    it against any split without an image named ``C:\\a\\x``. Before, info read every
    backslash as part of a name, and two tool paths of one base name (``C:\\a\\x.jpg``,
    ``C:\\b\\x.jpg``), which import refuses as one image listed twice, were no problem. A
    :func:`windows_path` is one in an export too (:func:`name_stem`, as import reads it): an
    export re-saved by LabelMe on Windows keeps the record, with ``..\\`` paths in it."""
    return name_stem(file_name, {literal_stem(file_name): (0, 0)} if exported else {})
