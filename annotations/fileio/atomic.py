"""Atomic writes (the package's docstring says how one goes): :func:`atomic_file` and the
writes built on it (bytes, text, JSON, a copy), the hidden temporary file each writes first
(its name, mode and lock), and what a file system may refuse (``fsync``, ``chmod``,
``flock``, ``sendfile``)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annotations.fileio.errors import naming

TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders, unless ``path`` holds
    ``data`` already (then it is left untouched; a symbolic link to a file that holds them is
    replaced by a file of its own all the same). Returns the path. A
    ``path`` that is a folder, or under a file, is an OSError naming that path (not the hidden
    temporary file, nor a bare "File exists"); one that is a device or a pipe (``--json
    /dev/stdout``) is written into, as it is."""
    path = Path(path)
    linked = False
    try:  # one stat for what is there: this writes every per-image label map and thumbnail
        st: os.stat_result | None = os.lstat(path)
        linked = stat.S_ISLNK(st.st_mode)
        if linked:  # a device through a link (/dev/stdout) is written into, as it is
            st = os.stat(path)
    except OSError:  # nothing yet (or a file on the way: mkdir below names it)
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a folder on the way should be
        file = next((p for p in path.parents if p.exists()), path.parent)
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(file)) from None
    if st is not None and not stat.S_ISREG(st.st_mode):  # /dev/stdout, /dev/null, a pipe
        _write_through(path, data)
        return path
    if st is not None and st.st_size == len(data) and not linked and _holds(path, data):
        return path  # a link (cp -rs) holds the original's file, whose later rewrites it shows
    with atomic_file(path) as f:
        f.write(data)
    return path


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file ``path`` holds ``data`` already: it is left as it is (its timestamps
    kept, nothing written). A rerun with nothing to do rewrote its records byte for byte
    (``engine fuse``'s taxonomy.json and dataset.yaml), so it failed on a full disk and touched
    the outputs' times; a file of another size is not read (the caller compares sizes)."""
    try:
        return path.read_bytes() == data
    except OSError:  # unreadable (no permission): written as before
        return False


def _write_through(path: Path, data: bytes) -> None:
    """Write ``data`` into the device or pipe ``path`` (nothing to make atomic there): renaming a
    temporary file onto it replaced ``/dev/null`` or ``/dev/stdout`` by a regular file for
    every process of the machine where the engine ran as root (a container), and as anyone
    else failed to create the temporary file in ``/dev``."""
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise naming(e, path) from None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Any]:
    """A binary file to write ``path``'s content into (its folder exists): a temporary file in
    the same folder (:func:`_new_temporary`: the permissions ``open()`` gives a new file there),
    flushed to disk and renamed onto ``path`` when the block ends; removed, ``path`` untouched,
    when the block raises (Ctrl-C included). The temporary file stays locked (``flock``) until
    it is renamed: a process killed meanwhile leaves it unlocked, which tells a later write of
    ``path`` that it may remove it
    (:func:`~annotations.fileio.temporaries.remove_dead_temporaries`)."""
    path = Path(path)
    tmp = held = None
    try:  # created inside: a Ctrl-C just after it must not leave the temp file either
        fd, tmp = _new_temporary(path)
        with os.fdopen(fd, "wb") as f:
            # its lock on a second descriptor, kept past the close (which reports a network file
            # system's deferred write errors) until the rename; none on Windows, which renames
            # no open file (and has no flock). Made once f owns fd: a dup refused (EMFILE) left
            # fd open for the life of the process
            held = os.dup(fd) if fcntl_module() is not None else None
            yield f
            f.flush()
            sync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError) and (e.filename is None or _is_temporary(e.filename, path)):
            raise naming(e, path) from None
        raise
    finally:
        if held is not None:
            os.close(held)  # releases the lock


# How :func:`_new_temporary` opens a file: created, never one already there nor through a link
_NEW_FILE = (
    os.O_RDWR
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)  # Windows: no newline translation
)


def _new_temporary(path: Path) -> tuple[int, str]:
    """A new, empty temporary file for ``path`` in its folder, ``.NAME.`` + 8 random characters
    + ``.tmp`` (:func:`~annotations.fileio.temporaries.is_temporary`), opened for writing: its
    descriptor and name. Created with mode 0666, as ``open()`` creates a file, so the system gives
    it what any new file there gets: 0666 less the umask, or what the folder's default ACL grants (a
    shared folder's ``setfacl -d -m g::rw,o::-``), which no umask gives. ``mkstemp`` creates files
    0600; before the fifty-fourth round each output was then set to 0666 less the umask
    (:func:`set_mode`), so under such an ACL a folder kept from others got outputs every user could
    read (0644 where ``open()`` gives 0660), and in a team's folder outputs without the group write
    its ACL gives (0644 for 0664). Locked as its writer's (:func:`_locked_as_writers`)."""
    prefix = _temp_prefix(path)
    for _ in range(tempfile.TMP_MAX):
        name = os.path.join(path.parent, f"{prefix}{secrets.token_hex(4)}{TMP_SUFFIX}")
        try:
            fd = os.open(name, _NEW_FILE, 0o666)
        except FileExistsError:
            continue
        locked = False
        try:  # a Ctrl-C while it locks leaves neither the file nor fd behind
            locked = _locked_as_writers(fd, name)
        finally:
            if not locked:  # taken for a killed writer's by a removal: another name is made
                os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
        if locked:
            return fd, name
    raise FileExistsError(errno.EEXIST, "no temporary file name left", str(path))


def _locked_as_writers(fd: int, name: str) -> bool:
    """Take an exclusive ``flock`` on the new temporary file ``fd`` (``name``), which its
    writer holds until the file is renamed into place or removed (:func:`atomic_file`): while
    it is held the file is a live write's, and once its process is gone (killed) the lock is
    free, which :func:`~annotations.fileio.temporaries.remove_dead_temporaries` reads as a temporary
    file no one will finish. False where such a removal took the file between its creation and this
    lock (it holds the lock, or has removed the file: ``name`` is no longer ``fd``'s file,
    :func:`same_file`; not the link count, which NFS keeps at 1 for an open file it removes, renamed
    ``.nfsXXXX``): the writer makes another. True where there are no locks (Windows, a file system
    refusing them, ENOLCK): the file is written unlocked, and no removal takes it."""
    if (taken := try_lock(fd, exclusive=True)) is None:
        return True
    return taken and same_file(fd, name)


def try_lock(fd: int, exclusive: bool = False) -> bool | None:
    """Take an ``flock`` on the file or folder open at ``fd`` without waiting, shared or
    ``exclusive``, held until ``fd`` closes: True where taken, False where another process
    holds it, None where there are no locks to take (Windows: no ``fcntl``; a file system
    refusing them: ENOLCK). The probe of the temporary files' writers' locks here and of the
    run locks' files and folders (:func:`engine.runlock.lockless`, ``engine info``)."""
    if (fcntl := fcntl_module()) is None:
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def fcntl_module() -> Any:
    """The ``fcntl`` module (``flock``), or None where it does not exist (Windows): the one way
    the engine asks (before, eight places imported it each their own way)."""
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


# What ``fsync`` fails with on a file system that has no such call, rather than a disk that
# failed to keep the data: EINVAL (the call does not apply to this file), EOPNOTSUPP/ENOTSUP
# and ENOSYS (some FUSE mounts: sshfs without its fsync extension, s3fs, rclone, davfs). A
# full disk (ENOSPC, EDQUOT: NFS reports them at fsync) or a failing one (EIO) is no such case.
def _errnos(*names: str) -> frozenset[int]:
    return frozenset(getattr(errno, name) for name in names if hasattr(errno, name))


NO_FSYNC = _errnos("EINVAL", "EOPNOTSUPP", "ENOTSUP", "ENOSYS")
# What ``chmod`` fails with on a file system that keeps no Unix permissions (:func:`set_mode`)
NO_CHMOD = _errnos("EPERM", "EOPNOTSUPP", "ENOTSUP", "ENOSYS")


def sync(fd: int) -> None:
    """``os.fsync(fd)``, skipped where the file system has no ``fsync`` (:data:`NO_FSYNC`): the
    rename that follows is still atomic, so readers and later runs still see the old file or
    the new one; only a machine crash (not a killed process) may lose the last writes, as on
    any file system without it. Before, every write there failed with a traceback ending in
    ``OSError: [Errno 22] Invalid argument: PATH``."""
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in NO_FSYNC:
            raise


def set_mode(fd: int, mode: int) -> None:
    """Give the file ``fd``, written by another library, ``mode`` (:func:`new_file_mode`),
    where the file system keeps modes. FAT and exFAT (a USB disk), SMB/CIFS without Unix
    extensions and some FUSE mounts (s3fs, gcsfuse) refuse ``chmod`` (EPERM, EOPNOTSUPP,
    ENOSYS) and give every file the mode of their mount options: the file keeps that mode.
    Before, every output there failed with ``error: PATH: Operation not permitted``."""
    if not hasattr(os, "fchmod"):  # Windows
        return
    try:
        os.fchmod(fd, mode)
    except OSError as e:
        if e.errno not in NO_CHMOD:
            raise


def new_file_mode(folder: Path) -> int:
    """The permissions ``open()`` gives a new file in ``folder``: 0666 less the umask, or what
    its default ACL grants. Seen on a temporary file made there and removed (no call tells the
    ACL's); for files another library wrote there with modes of its own (:func:`set_mode`)."""
    fd, name = _new_temporary(folder / "mode")
    try:
        return stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
        os.unlink(name)


# The name of an :func:`atomic_file` temporary file: ``.NAME.`` + 8 random characters (hex)
# + ``.tmp``; what a process killed while writing ``NAME`` leaves (no other engine file is named so).
# NAME is cut to fit a file name's 255 bytes (NAME_MAX of ext4, XFS, APFS, NTFS in UTF-16 aside):
# a file named 244 to 255 bytes could not be written at all (File name too long)
NAME_MAX = 255


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write a copy of the file ``src``'s bytes to ``dst`` (its folder exists) atomically
    (:func:`atomic_file`): a failure part way (a full disk) leaves ``dst`` as it was, ``src``
    untouched and no temporary file, and its ``OSError`` names ``dst``. The kernel copies
    (``os.sendfile``) where it can, without the bytes passing through Python: a kept training
    checkpoint is ``last.pt``'s bytes, copied, not a second ``torch.save`` of the same state
    (docs/trainer.md, "What a save costs"). Returns ``dst``."""
    dst = Path(dst)
    with open(src, "rb") as source, atomic_file(dst) as f:
        _copy_into(source, f)
    return dst


# What ``os.sendfile`` fails with, before it copied a byte, where it cannot copy between these
# two files (an old kernel, macOS's sendfile to sockets only): the bytes are copied by Python
_NO_SENDFILE = _errnos("EINVAL", "ENOSYS", "ENOTSOCK", "EOPNOTSUPP", "ENOTSUP")


def _copy_into(source: Any, f: Any) -> None:
    """Copy the open binary file ``source``, from its start, to the end of the open ``f``."""
    size = os.fstat(source.fileno()).st_size
    done = 0
    if hasattr(os, "sendfile"):
        f.flush()
        try:
            while done < size:
                sent = os.sendfile(f.fileno(), source.fileno(), done, size - done)
                if sent == 0:  # the file shrank meanwhile: what is left is read below
                    break
                done += sent
        except OSError as e:
            if done or e.errno not in _NO_SENDFILE:
                raise
    source.seek(done)
    shutil.copyfileobj(source, f, 1 << 20)


def _temp_prefix(path: Path) -> str:
    """``.NAME.``, NAME cut (at a character, in UTF-8 bytes) so the temporary file's whole name
    fits :data:`NAME_MAX`."""
    return f".{cut_to_bytes(path.name, NAME_MAX - 2 - 8 - len(TMP_SUFFIX.encode()))}."


def cut_to_bytes(name: str, room: int) -> str:
    """``name`` cut at a character so that its UTF-8 bytes fit ``room`` (a file name's part
    within :data:`NAME_MAX`)."""
    while len(os.fsencode(name)) > room:  # a few dozen steps, for long names only
        name = name[:-1]
    return name


def _is_temporary(name: Any, path: Path) -> bool:
    """Whether ``name`` is one of :func:`atomic_file`'s temporary files for ``path``."""
    name = os.path.basename(os.fspath(name)) if isinstance(name, (str, os.PathLike)) else ""
    return name.startswith(_temp_prefix(path)) and name.endswith(TMP_SUFFIX)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically. A lone surrogate, the undecodable byte of a
    file name that is not UTF-8 (``caf\\xe9.jpg``, read with ``os.fsdecode``), has no UTF-8: it
    is written escaped, ``caf\\udce9``, as the JSON records show it (:func:`json_text`). Before,
    it raised UnicodeEncodeError: ``engine report`` and ``compare --markdown`` stopped with exit
    code 2 after the work was done, no ``report.md``."""
    return atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))


def _path_as_text(value: Any) -> str:
    """A path in a record is its text, as the config hashes read it (``default=str``): a
    library caller's ``Path("data")`` writes what the command line's ``"data"`` writes."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_text(obj: Any, indent: int | None = 2) -> str:
    """``obj`` as the JSON every output holds, file or stdout: paths as text, NaN and infinity
    refused (they are not JSON), names as written (UTF-8: ``"自行车"``, where ``\\u81ea\\u884c
    \\u8f66`` was all a user reading run.json, subset.json or report.json saw of a class, a
    dataset path or an image). A lone surrogate, an undecodable byte of a file name
    (``os.fsdecode``), has no UTF-8: it stays escaped (``\\udce9``), as before."""
    text = json.dumps(
        obj,
        indent=indent,
        allow_nan=False,
        sort_keys=False,
        default=_path_as_text,
        ensure_ascii=False,
    )
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON atomically (:func:`json_text`)."""
    return atomic_write_text(path, json_text(obj, indent) + "\n")


def same_file(fd: int, path: str | os.PathLike) -> bool:
    """Whether the open file ``fd`` is still the file at ``path`` (not replaced by a rename
    since it was opened, nor removed)."""
    try:
        now, held = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev)
