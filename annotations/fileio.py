"""Atomic file writes: a reader never sees a half-written file.

Every output of the engine (label maps, confidence maps, JSON records, checkpoints) goes through
these helpers. The data is written to a temporary file in the destination folder, flushed and
fsync'ed, then renamed over the destination with ``os.replace``, which is atomic on POSIX and
Windows when both paths are on one file system. A process killed at any moment leaves either the
old file or the new one, plus at worst a stray ``.tmp`` file that later runs ignore.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner only (0600); outputs get the usual permissions
# (0666 less the umask) instead, as open() would give them. Read once: os.umask is process-wide.
_FILE_MODE = 0o666 & ~_read_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # KeyboardInterrupt included: never leave the temp file behind on our own failure.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON atomically. NaN and infinity are refused (they are not JSON)."""
    text = json.dumps(obj, indent=indent, allow_nan=False, sort_keys=False)
    return atomic_write_text(path, text + "\n")


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log such as ``manifest.jsonl`` and fsync it.

    A single ``write`` of a short line in append mode is not torn by a kill on POSIX local file
    systems in practice; readers of such logs still skip a last line that does not parse.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "\n" in line:
        raise ValueError("append_line takes one line without newlines")
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines log, skipping a torn last line left by a killed writer."""
    path = Path(path)
    if not path.exists():
        return []
    records: list[dict] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break  # torn final line from an interrupted append
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({e.msg})") from None
    return records
