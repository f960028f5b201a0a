"""Archives given to an import (a CVAT or Label Studio download): unpacked to a temporary folder,
after checks of what they hold (methods zipfile reads, their unpacked size, names leaving the
folder), and the folder in them that holds the annotations (:func:`archive_root`).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from annotations.fileio import first_line, is_disk_error, naming
from annotations.interchange import LABELMAP
from engine.annotate.sources import archive_named, source_not_found
from engine.runinfo import too_many_open_files

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
