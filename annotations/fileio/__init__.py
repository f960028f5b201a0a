"""File I/O every area shares: atomic writes, and reads whose errors are one line naming the file.

Writes. Every output of the engine (label maps, confidence maps, JSON records, checkpoints) goes through
these helpers. The data is written to a temporary file in the destination folder, flushed and
fsync'ed, then renamed over the destination with ``os.replace``, which is atomic on POSIX and
Windows when both paths are on one file system (where the file system has no ``fsync``, a
FUSE mount, the write goes on without it: :func:`sync`). The temporary file is created as
``open()`` creates one (:func:`_new_temporary`): an output has the permissions of any new file
in its folder (0666 less the umask, or the folder's default ACL's).
A process killed at any moment leaves either the
old file or the new one, plus at worst a stray ``.NAME.*.tmp`` file (:func:`is_temporary`) that
later runs ignore, and the next run of its command removes (:func:`engine.runlock.exclusive`). A file that
holds the bytes already is not written again (its times stay). A write the
disk refuses (full, read-only, no permission) raises its ``OSError`` naming the destination:
neither Python's bare "[Errno 28] No space left on device" of a failed ``write`` nor the hidden
temporary file.

Reads. :func:`read_text`, :func:`read_json` and :func:`read_yaml` read UTF-8 with or without a
byte-order mark and UTF-16 with one (:func:`_decode`), and turn a missing file, a folder,
other bytes and a parse error into ``FileNotFoundError`` / ``ValueError`` whose
message starts with the path, so a command can print it as its one-line error; :func:`first_line`
is that line for any exception.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import json
import logging
import os
import pickle
import re
import secrets
import shutil
import stat
import sys
import tempfile
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def staged(root: Path, prefix: str) -> Iterator[Path]:
    """A hidden folder in ``root`` (created) to write new versions of some of its entries into,
    then :func:`swap_in` them; removed on leaving, as is an interrupted earlier one's
    (``prefix*``). An error before the swap leaves ``root`` as it was: a ``root`` this call
    created is removed again, so a failed first write leaves no empty folder behind. A file the
    disk refuses is named where it was to be (``root/masks/x.png``), not in the hidden folder."""
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    finish_swaps(root, prefix)
    for leftover in root.glob(prefix + "*"):
        if leftover.is_dir() and not leftover.is_symlink():  # not a file of the user's
            shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix + "new-", dir=root))
    try:
        yield staging
    except BaseException as e:
        if created:  # it holds nothing but the unfinished copy
            shutil.rmtree(root, ignore_errors=True)
        if isinstance(e, OSError) and isinstance(e.filename, str):
            inside = Path(e.filename)
            if inside.is_relative_to(staging):  # the file as it is to be, not the hidden copy
                raise naming(e, root / inside.relative_to(staging)) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def swap_in(staging: Path, names: tuple[str, ...]) -> None:
    """Replace the entries ``names`` of the folder holding ``staging`` (:func:`staged`) by
    ``staging``'s: each old one is set aside into ``staging`` (removed with it; removed at once
    where the file system will not move it, :func:`_set_aside`), then the new one renamed in; a
    name ``staging`` lacks is removed."""
    root, old = staging.parent, staging / ".replaced"
    # what a swap killed half way (SIGKILL, the OOM killer, power lost) is finished with
    new = [name for name in names if (staging / name).exists()]
    atomic_write_json(staging / SWAP_RECORD, {"in": new, "out": sorted(set(names) - set(new))})
    old.mkdir()
    for name in names:
        if (root / name).exists():
            _set_aside(root / name, old / name)
        if (staging / name).exists():
            os.replace(staging / name, root / name)


SWAP_RECORD = ".swap.json"  # in the staging folder: the names swap_in puts in and takes out


def finish_swaps(root: Path, prefix: str) -> None:
    """Finish the swaps of :func:`staged` folders ``root/prefix*`` whose process was killed
    during :func:`swap_in`; what ``root`` holds is then whole (the old entries or the new)."""
    for staging in root.glob(prefix + "*"):
        if _finish_swap(staging):  # what is left in it is the old entries set aside
            shutil.rmtree(staging, ignore_errors=True)


def unfinished_swap(staging: Path) -> tuple[list[str], list[str]] | None:
    """The entries a :func:`swap_in` killed half way had still to put into the folder holding
    ``staging`` (still in ``staging``) and to take out of it (the old write's, which the new
    one lacks), which :func:`finish_swaps` would; None where ``staging`` holds no swap record
    (killed before its swap, no staging folder, or a file of that name). A record the next
    write refuses raises what that write raises (:func:`_swap_record`): damaged, a ValueError;
    in another user's folder, a PermissionError. Before the fifty-first round's mend both were
    None, as if there were no record, so ``engine info`` saw no problem where the next import
    or export stopped."""
    todo = _swap_record(staging)
    if todo is None:
        return None
    pending = [n for n in todo["in"] if (staging / n).exists()]
    return pending, [n for n in todo["out"] if (staging.parent / n).exists()]


def _swap_record(staging: Path) -> dict[str, list[str]] | None:
    """The ``"in"`` and ``"out"`` lists of the :data:`SWAP_RECORD` in the :func:`staged`
    folder ``staging``; None where it has none (killed before its swap). Anything but a folder
    is no staging folder (a user's file ``ROOT/.masks.txt``: in the fifty-first round it
    stopped every write into ``ROOT`` with NotADirectoryError). A record edited by hand is a
    ValueError, which entries are new not being known; a folder of another user's write
    (``mkdtemp`` makes it theirs alone) is a PermissionError naming it: it may hold a swap
    killed half way, which this user can neither finish nor remove (before the fifty-first
    round it was passed over without a word, and left there). Each is one line saying what to
    do, the same for the next write (:func:`finish_swaps`) and ``engine info``."""
    record, root = staging / SWAP_RECORD, staging.parent
    if staging.is_symlink() or not staging.is_dir():
        return None
    try:
        text = record.read_bytes()
    except FileNotFoundError:
        return None
    except PermissionError as e:
        raise PermissionError(
            e.errno,
            f"cannot read it ({e.strerror}): a write of another user into {root} left it, "
            "perhaps killed while putting its files in; ask them (or root) to run their command "
            f"again or to remove {staging.name}/, then run again",
            str(staging),
        ) from None
    todo = _swap_names(text)
    if todo is None:  # by hand: which entries are new is not known, so nothing is touched
        raise ValueError(
            f"{record}: not the record of a swap (a JSON object of two lists of entry names, "
            f'"in" and "out"); an earlier write into {root} was killed while putting its files '
            f"in: move what {staging.name}/ holds into {root} by hand, or remove "
            f"{staging.name}/ to keep {root} as it is, then run again"
        )
    return todo


def _finish_swap(staging: Path) -> bool:
    """Finish the swap of a process killed during :func:`swap_in` (its record in ``staging``,
    :func:`_swap_record`, whose errors it raises): the entries it had not renamed in yet are,
    the old ones they replace set aside. Before the forty-seventh round the next call removed
    ``staging`` with them, so an export killed between its renames was left a ``coco.json``
    without its ``labelme/``, which the same command then refused as an earlier export. A
    staging folder without the record was killed before its swap: nothing of it is in
    ``root``, and it goes."""
    todo = _swap_record(staging)
    if todo is None:
        return False
    root, old = staging.parent, staging / ".replaced"
    old.mkdir(exist_ok=True)
    for name in todo["in"]:
        if (staging / name).exists():  # not renamed in yet; root's entry (if any) is the old one
            if (root / name).exists():
                _set_aside(root / name, old / name)
            os.replace(staging / name, root / name)
    for name in todo["out"]:
        if (root / name).exists():
            _set_aside(root / name, old / name)
    return True


def _swap_names(text: bytes) -> dict[str, list[str]] | None:
    """The ``"in"`` and ``"out"`` lists of a :data:`SWAP_RECORD`'s text; None where it is not
    one (edited by hand: not JSON, a key missing, not a list of plain entry names)."""
    try:
        todo = json.loads(text)
    except ValueError:  # UnicodeDecodeError too
        return None
    if not isinstance(todo, dict) or not all(
        isinstance(names, list)
        and all(
            isinstance(n, str) and n not in ("", ".", "..") and not {"/", "\\"} & set(n)
            for n in names
        )
        for names in (todo.get("in"), todo.get("out"))
    ):
        return None
    return todo


def _set_aside(path: Path, to: Path) -> None:
    """Move ``path`` to ``to`` (both in one folder's staging), or remove ``path`` where the file
    system renames no such folder: overlayfs (a container's root, a folder its image holds)
    refuses to rename a folder of a lower layer (EXDEV, unless mounted with ``redirect_dir``).
    Either way the old entry is gone once the new one is in (``staged`` removes the set-aside
    copy); before, the swap stopped with a traceback halfway, the new ``coco.json`` beside the
    old ``labelme/`` of an ``engine annotate export --force``."""
    try:
        os.replace(path, to)
    except OSError as e:
        if e.errno != errno.EXDEV or not path.is_dir() or path.is_symlink():
            raise
        shutil.rmtree(path)


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
    ``path`` that it may remove it (:func:`remove_dead_temporaries`)."""
    path = Path(path)
    tmp = held = None
    try:  # created inside: a Ctrl-C just after it must not leave the temp file either
        fd, tmp = _new_temporary(path)
        with os.fdopen(fd, "wb") as f:
            # its lock on a second descriptor, kept past the close (which reports a network file
            # system's deferred write errors) until the rename; none on Windows, which renames
            # no open file (and has no flock). Made once f owns fd: a dup refused (EMFILE) left
            # fd open for the life of the process
            held = os.dup(fd) if _fcntl() is not None else None
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
    + ``.tmp`` (:func:`is_temporary`), opened for writing: its descriptor and name. Created with
    mode 0666, as ``open()`` creates a file, so the system gives it what any new file there
    gets: 0666 less the umask, or what the folder's default ACL grants (a shared folder's
    ``setfacl -d -m g::rw,o::-``), which no umask gives. ``mkstemp`` creates files 0600; before
    the fifty-fourth round each output was then set to 0666 less the umask (:func:`set_mode`),
    so under such an ACL a folder kept from others got outputs every user could read (0644
    where ``open()`` gives 0660), and in a team's folder outputs without the group write its
    ACL gives (0644 for 0664). Locked as its writer's (:func:`_locked_as_writers`)."""
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
    free, which :func:`remove_dead_temporaries` reads as a temporary file no one will finish.
    False where such a removal took the file between its creation and this lock (it holds the
    lock, or has removed the file: ``name`` is no longer ``fd``'s file, :func:`same_file`; not
    the link count, which NFS keeps at 1 for an open file it removes, renamed ``.nfsXXXX``):
    the writer makes another. True where there are no locks (Windows, a file system refusing
    them, ENOLCK): the file is written unlocked, and no removal takes it."""
    if (taken := try_lock(fd, exclusive=True)) is None:
        return True
    return taken and same_file(fd, name)


def try_lock(fd: int, exclusive: bool = False) -> bool | None:
    """Take an ``flock`` on the file or folder open at ``fd`` without waiting, shared or
    ``exclusive``, held until ``fd`` closes: True where taken, False where another process
    holds it, None where there are no locks to take (Windows: no ``fcntl``; a file system
    refusing them: ENOLCK). The probe of the temporary files' writers' locks here and of the
    run locks' files and folders (:func:`engine.runlock.lockless`, ``engine info``)."""
    if (fcntl := _fcntl()) is None:
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _fcntl() -> Any:
    """The ``fcntl`` module (``flock``), or None where it does not exist (Windows)."""
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


# What Windows refuses in a file or folder name (its naming rules; NTFS itself takes more):
# one of these characters (":" also names an NTFS stream), or a device name, bare or with a
# suffix (``con``, ``aux.png``, ``com1``)
WINDOWS_CHARS = '<>:"|?*'
WINDOWS_DEVICES = re.compile(
    r"(con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3])", re.I
)


def windows_refuses(name: str) -> str | None:
    """Why Windows cannot make a file or folder named ``name`` (:data:`WINDOWS_CHARS`, a
    device name), or None where it can."""
    if found := sorted(set(name) & set(WINDOWS_CHARS)):
        return f"it holds {' '.join(found)}"
    if WINDOWS_DEVICES.fullmatch(name.split(".")[0].rstrip(" ")):
        return f"{name.split('.')[0].rstrip(' ')} is a device name there"
    return None


def check_windows_name(path: Path, origin: str) -> Path:
    """``path``, a folder the engine named after user input (``origin``: ``--class 'Car:
    sedan'``), or on Windows, where it cannot be made, ``ValueError`` naming it: before, the
    command failed later with Windows' own words for it ("The filename, directory name, or
    volume label syntax is incorrect"), or a name with ``:`` went to an NTFS stream."""
    if sys.platform == "win32" and (why := windows_refuses(path.name)):
        raise ValueError(
            f"{path}: Windows makes no folder of that name ({why}), the default --out for "
            f"{origin}: give --out"
        )
    return path


TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(TMP_SUFFIX), re.S)  # a stem with \n too


def is_temporary(name: str) -> bool:
    """Whether the file name ``name`` is one of :func:`atomic_file`'s temporary files."""
    return TEMPORARY.fullmatch(name) is not None


def remove_dead_temporaries(path: str | os.PathLike) -> int:
    """Remove the temporary files of ``path`` (``.NAME.*.tmp`` beside it, :func:`is_temporary`)
    that writes killed while writing it left: those whose lock no process holds
    (:func:`_locked_as_writers`); a live write's is left to it. For the outputs of one file that
    no run lock guards (``engine compare --json``, ``--markdown``, ``--plot``, ``evaluate
    --json``, ``info --plot``, ``annotate pick``'s list): before, each ``kill -9`` during such a
    write left one beside the output for ever, as nothing told a killed writer's from a live
    one's. Where there are no locks (Windows, ENOLCK) none is removed, as before. One that
    cannot be removed (another user's in a sticky folder: EPERM) stays, and the write goes on:
    before, the refusal failed the write, naming the temporary file. Returns how many."""
    removed = 0
    for tmp in _temporaries_of(Path(path)):
        try:
            removed += remove_if_dead(tmp)
        except OSError as e:  # left, as before the fifty-eighth round; engine info names it
            log.debug("%s: cannot remove this killed write's temporary file (%s)", tmp, e.strerror)
    return removed


def dead_temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporary files of ``path`` beside it that :func:`remove_dead_temporaries` would
    remove now (no process holds their lock), for ``engine info`` to name; sorted."""
    return sorted(Path(tmp) for tmp in _temporaries_of(Path(path)) if _lock_free(tmp))


def _temporaries_of(path: Path) -> list[str]:
    """The temporary files of ``path`` beside it (``.NAME.`` + 8 characters + ``.tmp``: not
    another file's, ``.NAME.bak.*.tmp``); none where there are no locks to tell a killed
    write's from a live one's (Windows, where no probe could be made), or no folder to list."""
    if _fcntl() is None:
        return []
    own = re.compile(re.escape(_temp_prefix(path)) + r"[a-z0-9_]{8}" + re.escape(TMP_SUFFIX), re.S)
    try:
        with os.scandir(path.parent) as entries:
            return [e.path for e in entries if own.fullmatch(e.name)]
    except OSError:  # no folder yet, or one that cannot be listed: nothing known
        return []


# how a temporary file is opened to probe its lock: not through a link, nor blocked on a FIFO
_PROBE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def _lock_free(tmp: str) -> bool:
    """Whether the regular file ``tmp`` is there and no process holds its lock (a probe taken
    and dropped at once, as :func:`remove_if_dead` takes it); False where that is not known."""
    try:
        fd = os.open(tmp, _PROBE)
    except OSError:
        return False
    try:
        return _probe(fd) is True
    finally:
        os.close(fd)


def _probe(fd: int) -> bool | None:
    """Take a shared ``flock`` on the temporary file open at ``fd`` (held until ``fd`` closes):
    True where no process holds its lock, False where one does (its writer lives), None where
    that is not known (not a regular file, no locks here: ENOLCK)."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return None
    return try_lock(fd)


def remove_if_dead(tmp: str | os.PathLike, unknown: bool = False) -> bool:
    """Remove the temporary file ``tmp`` unless a process holds its lock (its writer lives:
    :func:`_locked_as_writers`); whether it did. The probe's shared lock is held through the
    removal: a writer that made the file just now and locks it after finds it gone, or held,
    and makes another. ``unknown``: whether to remove one whose lock cannot be probed (not
    readable, a link or not a file, a file system refusing locks), as a run holding its
    folder's lock did before the fifty-eighth round (:func:`engine.runlock.remove_temporaries`);
    a single file's next write leaves it (:func:`remove_dead_temporaries`)."""
    if _fcntl() is None:  # Windows: no lock to probe
        return unknown and _removed(tmp)
    try:
        fd = os.open(tmp, _PROBE)
    except FileNotFoundError:  # gone meanwhile (renamed into place)
        return False
    except OSError:  # a link, not readable
        return unknown and _removed(tmp)
    try:
        if (free := _probe(fd)) is None:  # not a file, or no locks here (ENOLCK)
            return unknown and _removed(tmp)
        # not where it was renamed into place before it was locked: the output now
        return free and same_file(fd, tmp) and _removed(tmp)
    finally:
        os.close(fd)  # releases the probe's lock


def _removed(path: str | os.PathLike) -> bool:
    """Remove ``path``; whether it was there to remove."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


STAGING = re.compile(r"\..+\.new-[a-z0-9_]{8}", re.S)  # mkdtemp(prefix=PREFIX + "new-")


def is_staging(name: str) -> bool:
    """Whether the folder name ``name`` is one of :func:`staged`'s hidden staging folders."""
    return STAGING.fullmatch(name) is not None


def _is_temporary(name: Any, path: Path) -> bool:
    """Whether ``name`` is one of :func:`atomic_file`'s temporary files for ``path``."""
    name = os.path.basename(os.fspath(name)) if isinstance(name, (str, os.PathLike)) else ""
    return name.startswith(_temp_prefix(path)) and name.endswith(TMP_SUFFIX)


def naming(e: OSError, path: str | os.PathLike) -> OSError:
    """``e``'s errno (and so its type: ``PermissionError`` for EACCES) naming ``path``: a full
    disk's ``write`` names no file ("[Errno 28] No space left on device"), and a refused
    temporary file (:func:`_new_temporary`) names that hidden file, where the one line of the
    command line is to name the file it writes."""
    if e.errno is None:
        return e
    return OSError(e.errno, e.strerror or os.strerror(e.errno), os.fspath(path))


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


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log such as ``manifest.jsonl`` and fsync it (:func:`append_lines`)."""
    append_lines(path, [line])


def append_lines(path: str | os.PathLike, lines: list[str]) -> None:
    """Append lines to a log such as ``manifest.jsonl`` in one write and fsync them once: a
    fused dataset copied with its inputs (``cp -r``) has every image's record refreshed, one
    fsync each took longer than checking the images' bytes.

    A single ``write`` of a short line in append mode is not torn by a kill on POSIX local file
    systems in practice, but a crash or a network file system can leave a last line without its
    newline. Readers skip such a torn last line (:func:`read_jsonl`); here it is cut off before
    the next line goes in, which would otherwise be glued to it and make a middle line that no
    reader can skip (a long write torn leaves its whole lines and one torn last line). The log
    is locked (``flock``) meanwhile, so processes sharing it (label
    shards) never cut each other's lines.

    A log with other hard links (a project copied with ``cp -al``, an ``rsync --link-dest``
    snapshot), or that is a symbolic link to a file (a project copied as a tree of links with
    ``cp -rs`` or ``lndir``), is first replaced by a copy of its own, as every other output is
    replaced by a rename: appending in place wrote the copy's lines into the original's log too.
    """
    if any("\n" in line for line in lines):
        raise ValueError("append_lines takes one line per item, without newlines")
    if not lines:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if os.path.islink(path) and not os.path.exists(path):
            own_file(path)  # a link to nothing: opened, it made the file in another folder
        for _ in range(8):  # reopened when another writer replaced the file meanwhile
            with open(path, "a+b") as f, _locked(f):  # a+: read the end; writes still append
                if not _is_own(f, path):
                    continue
                _cut_torn_line(f)
                f.write("".join(line + "\n" for line in lines).encode("utf-8"))
                f.flush()
                sync(f.fileno())
                return
        raise OSError(errno.EBUSY, "replaced by another process while appending", str(path))
    except OSError as e:  # a full disk's write names no file
        if e.filename is None:
            raise naming(e, path) from None
        raise


def own_file(path: Path, keep: bool = True) -> None:
    """Replace the symbolic link ``path`` (a project copied as a tree of links, ``cp -rs``) by a
    file of its folder's own: a copy of the file it leads to with ``keep``, else (or where it
    leads nowhere: the original was moved or removed) an empty one. Opened as it was, a link
    that led nowhere made the file in the original's folder, or failed with "No such file or
    directory" once that folder was gone. Done under a lock on the folder and checked again
    there, so processes doing it at once make one file, not one each. Nothing to do where
    ``path`` is no link (any more)."""
    if not os.path.islink(path):
        return
    with folder_locked(path.parent):
        if not os.path.islink(path):
            return  # another process made it its file meanwhile
        with atomic_file(path) as f:
            if keep:
                with contextlib.suppress(FileNotFoundError), open(path, "rb") as linked:
                    shutil.copyfileobj(linked, f)


# how long folder_locked waits for another process's lock on the folder: an engine run holds it
# for a check or a walk (under a second); longer is another program's (flock(1) on the folder)
FOLDER_LOCK_WAIT_S = 10.0


@contextlib.contextmanager
def folder_locked(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` itself while the block runs; none where there are no
    locks (Windows, some network file systems), as for the logs (:func:`_locked`). For a
    check-then-replace of a file there that another process may do at once (:func:`own_file`,
    :func:`engine.runlock.exclusive` parting a lock file shared by hard links), and for the
    walk removing killed runs' temporaries there, which every run passes once it holds its lock
    (:func:`engine.runlock.exclusive`: a shard starting meanwhile waits for it). Another
    process holding it past :data:`FOLDER_LOCK_WAIT_S` is another program's, not a brief hold
    of an engine run's (util-linux ``flock runs/x engine label --out runs/x`` holds it around
    the command itself): said, and the block runs without it, as where there are no locks.
    Before, it was waited for with no timeout, and such a command waited for its own wrapper
    for ever, saying nothing."""
    fd = None
    try:
        import fcntl  # noqa: F401 - only whether it exists (Windows: no flock)

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        pass
    try:
        if fd is not None:
            _lock_a_while(fd, folder)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _lock_a_while(fd: int, folder: Path) -> None:
    """:func:`folder_locked`'s ``flock`` on ``fd`` (``folder``), waited for up to
    :data:`FOLDER_LOCK_WAIT_S`; not taken where the file system refuses it."""
    import fcntl

    deadline = time.monotonic() + FOLDER_LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        except OSError:  # no locks there: ENOLCK; EBADF on NFS, whose exclusive flock needs a
            return  # file open for writing, which a folder cannot be
    log.warning(
        "%s: another process holds a lock on the folder itself (past %g s, longer than an "
        "engine run holds it: flock(1) on the folder?); going on without it",
        folder,
        FOLDER_LOCK_WAIT_S,
    )


def same_file(fd: int, path: str | os.PathLike) -> bool:
    """Whether the open file ``fd`` is still the file at ``path`` (not replaced by a rename
    since it was opened, nor removed)."""
    try:
        now, held = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev)


def _is_own(f: Any, path: Path) -> bool:
    """Whether the open, locked log ``f`` is still the file at ``path`` and has no other hard
    link, nor is reached by a symbolic link. One with other links, or a link, is replaced by a
    copy (False: open it again); so is one that
    another writer replaced while this one waited for the lock."""
    if not same_file(f.fileno(), path):
        return False
    st = os.fstat(f.fileno())
    linked = os.path.islink(path)  # a tree of links (cp -rs, lndir): the log is the original's
    if (st.st_nlink <= 1 and not linked) or not stat.S_ISREG(st.st_mode) or os.name == "nt":
        return True  # Windows: an open file cannot be renamed onto (and links are rare there)
    f.seek(0)
    with atomic_file(path) as copy:  # under the old file's lock: no line lost meanwhile
        shutil.copyfileobj(f, copy)
    return False


@contextlib.contextmanager
def _locked(f: Any) -> Any:
    """An exclusive ``flock`` on the open file ``f`` while the block runs (none on Windows)."""
    try:
        import fcntl
    except ImportError:  # Windows: logs are written by one process there
        yield
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    except OSError:  # a file system without locks (some FUSE mounts): append unlocked, as before
        yield
        return
    try:
        yield
    finally:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _cut_torn_line(f: Any) -> None:
    """Truncate the binary file ``f`` (opened ``a+b``) after its last newline when it does not
    end with one (looked for 64 KiB at a time from the end)."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return
    f.seek(end - 1)
    if f.read(1) == b"\n":
        return
    while end > 0:
        start = max(0, end - (1 << 16))
        f.seek(start)
        at = f.read(end - start).rfind(b"\n")
        if at >= 0:
            f.truncate(start + at + 1)
            return
        end = start
    f.truncate(0)  # one torn line and nothing before it


# A manifest is compacted once it holds this many times as many lines as it needs
COMPACT_FACTOR = 4


def compact_manifest(path: str | os.PathLike, factor: int = COMPACT_FACTOR) -> int:
    """Rewrite a ``manifest.jsonl`` with the lines its readers use, once it holds more than
    ``factor`` times as many; returns how many lines went (0: left as it is).

    A label run's or a fusion's manifest gets a line per image each time the image is done again
    (relabelled with other settings, retried, fused again, its stamps refreshed after a copy),
    and every reader reads it whole. Kept, in their order, byte for byte: each image's
    (``split``, ``stem``) latest line and its latest ``ok`` line, and every line that names no
    image; what every reader takes from the file (the latest line per image; the latest ``ok``
    one) is unchanged, and an engine of before reads the kept lines as it read them. A manifest
    with a line that is not JSON before its last is left alone (the readers name that line).

    The caller holds the folder's lock, which no other writer of the manifest holds beside it
    (a label run's shards append to one manifest under their own locks: compact only when no
    other is running). The rewrite also holds the manifest's own lock (:func:`append_line`'s),
    and an append waiting for it goes to the new file (:func:`_is_own`)."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, "rb") as f, _locked(f):
        if not _is_own(f, path):  # replaced meanwhile, or another copy's: leave it to the next
            return 0
        f.seek(0)
        lines = [line + b"\n" for line in f.read().split(b"\n")]
        lines.pop()  # b"\n" after the last newline; or a torn last line, cut by the next append
        latest: dict[tuple[str, str], int] = {}
        keep = set()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:  # not JSON, not UTF-8: the readers say which line
                return 0
            if not isinstance(rec, dict) or "split" not in rec or "stem" not in rec:
                keep.add(i)
                continue
            key = json.dumps([rec["split"], rec["stem"]])  # as the readers key it, hashable
            latest[key, "latest"] = i
            if rec.get("status") == "ok":
                latest[key, "ok"] = i
        keep |= set(latest.values())
        if len(lines) <= factor * max(len(keep), 1):
            return 0
        try:
            with atomic_file(path) as new:
                new.writelines(lines[i] for i in sorted(keep))
        except OSError as e:  # a full disk: a call with nothing to write must still not fail
            if not is_disk_error(e):
                raise
            return 0  # the file as it was (the rewrite is atomic); a later call compacts it
        return len(lines) - len(keep)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines log, skipping a torn last line left by a killed writer."""
    path = Path(path)
    try:
        data = read_bytes(path, "log")
    except FileNotFoundError:
        return []  # no log yet
    records: list[dict] = []
    lines = _decode(data, path).splitlines()
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


# What reading one item's file raises when the file is bad (undecodable or truncated data,
# values that are no class id, a size mismatch: a ValueError naming it) or gone or unreadable
# (an OSError). Commands that go on past one bad item (training, fusion, the review gallery)
# catch these, and nothing else: any other exception is a bug and stops them.
UNREADABLE = (ValueError, OSError)

# Operating-system errors of the machine rather than of the input or the code: out of space,
# over quota, over the file size limit (``ulimit -f``, a FAT32 disk's 4 GB), a read-only file
# system, a failing disk or a lost network file system. No item is to blame, so a run stops on
# them (what it finished is whole: every write is atomic) and the command line says so in one
# line naming the file (exit code 74).
DISK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EIO", "ESTALE")
    if hasattr(errno, name)
)


def file_bytes(path: str | os.PathLike | None) -> int | None:
    """The size of the file ``path`` in bytes; None when there is none or it cannot be read.
    What ``engine label``, ``predict`` and ``train --resume`` compare to tell a file replaced
    under the same name: the size, not the modification time, so that a dataset copied or moved
    elsewhere is the same; one ``stat``, nothing read."""
    if path is None:
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def is_disk_error(error: BaseException | None) -> bool:
    """Whether ``error`` is the machine's disk refusing a write (:data:`DISK_ERRNOS`: full, over
    quota, size-limited, read-only): every write after it fails the same way, so a command
    stops at it rather than failing its remaining items one by one."""
    return isinstance(error, OSError) and error.errno in DISK_ERRNOS


# The record each engine command writes into its output folder, and what the folder then is:
# how an error says what a folder given in the wrong place is.
FUSE_RECORD = "fuse.json"  # what marks a fused dataset, read by training, labeling and scoring
OUTPUT_RECORDS = (
    ("run.json", "a label run (engine label)"),
    ("subset.json", "an annotated subset (engine annotate import)"),
    ("predict.json", "a folder of predictions (engine predict)"),
    (FUSE_RECORD, "a fused dataset (engine fuse)"),
    ("report.json", "a report (engine report)"),
    ("review.json", "a review gallery (engine review)"),
    ("metrics.jsonl", "a training run (engine train)"),
)


def split_key(split: str) -> tuple[int, str]:
    """Sort key of split names, the folders of datasets and of every engine output: train, val,
    test first, then the others by name."""
    return ({"train": 0, "val": 1, "test": 2}.get(split, 3), split)


SPEC_NAMES = ("dataset.yaml", "dataset.yml", "dataset.json")  # a dataset spec's file names


def is_dataset_root(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a dataset's root: it holds ``images/<split>/`` folders or a dataset
    spec (:data:`SPEC_NAMES`). An annotation tool's download may hold an ``images/`` folder of
    files, or an empty one (Label Studio's COCO export): that is no dataset."""
    path = Path(path)
    images = path / "images"
    if images.is_dir() and any(p.is_dir() for p in images.iterdir()):
        return True
    return spec_file(path) is not None


def spec_file(root: str | os.PathLike) -> Path | None:
    """The dataset spec file in the folder ``root`` (the first of :data:`SPEC_NAMES` there), or
    None: a dataset of the MaSS13K layout."""
    return next((Path(root) / n for n in SPEC_NAMES if (Path(root) / n).is_file()), None)


def outputs_around(folder: str | os.PathLike) -> list[tuple[Path, str]]:
    """``(folder, record)`` of the engine outputs that ``folder`` is or lies in, itself and up to
    two levels above (a run's ``labels/<split>``), nearest first (:func:`output_kind`)."""
    folder = Path(folder)
    found = ((f, output_kind(f)) for f in (folder, folder.parent, folder.parent.parent))
    return [(f, kind[0]) for f, kind in found if kind is not None]


def output_kind(folder: str | os.PathLike) -> tuple[str, str] | None:
    """``(record, description)`` of the engine output ``folder`` is, by the record its command
    writes there (:data:`OUTPUT_RECORDS`); None for anything else."""
    folder = Path(folder)
    return next(((r, what) for r, what in OUTPUT_RECORDS if (folder / r).is_file()), None)


# What marks a demo folder (engine demo), finished or stopped after its scenes were labelled;
# engine info reads them so too (engine/info.py).
DEMO_RECORDS = ("report/summary.json", "data/synth.json")
# its summary as a rerun sets it aside while its stages run (engine.runlock.set_aside_as: not
# imported here, engine's base is above this package)
DEMO_SUMMARY_ASIDE = "report/.summary.json.earlier"


def is_demo_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a demo's folder (``engine demo --out``): its summary, or its scenes
    or its summary set aside by a rerun (:data:`DEMO_SUMMARY_ASIDE`), and label runs (a demo
    stopped before its summary). Before, a rerun stopped in its synth stage (its scenes' record
    then ``synth.partial.json``) left a folder that other commands called "a folder of engine
    outputs" (``give another --out, e.g. a new folder in it``)."""
    path = Path(path)
    summary, scenes = (path / r for r in DEMO_RECORDS)
    begun = scenes.is_file() or (path / DEMO_SUMMARY_ASIDE).is_file()
    return summary.is_file() or (begun and (path / "label").is_dir())


def folder_is(path: str | os.PathLike) -> str | None:
    """What ``path`` is, for an error refusing it: the engine output it is
    (:func:`output_kind`'s description), a demo's folder, ``"a dataset's root"``, or None."""
    kind = output_kind(path)
    if kind:
        return kind[1]
    if is_demo_folder(path):  # engine report --out DEMO_OUT: engine info showed the report
        return "a demo folder (engine demo)"
    return "a dataset's root" if is_dataset_root(path) else None


def outputs_inside(path: str | os.PathLike) -> str | None:
    """What the engine outputs right inside the folder ``path`` are (``"bicycle: a label run
    (engine label), car: ..."``, three named at most), for an error refusing ``path`` as a
    command's own folder: a ``runs/label/`` of label runs, given as ``--out``, took the new run's
    files beside them (and ``engine info runs/label`` then showed that run, not theirs); None
    when there is none, or ``path`` is an engine output or a dataset's root itself."""
    path = Path(path)
    if not path.is_dir() or folder_is(path) is not None:
        return None
    with os.scandir(path) as entries:
        subs = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    found = [(name, kind[1]) for name in subs if (kind := output_kind(path / name)) is not None]
    if not found:
        return None
    more = f", and {len(found) - 3} more" if len(found) > 3 else ""
    return ", ".join(f"{name}: {what}" for name, what in found[:3]) + more


def in_the_output(path: str | os.PathLike, record: str) -> str:
    """``"; it is a file in RUN, a label run (engine label): give RUN"`` for the end of an
    error about ``path`` given where the engine output that writes ``record`` is wanted, when
    it is a file or folder inside such an output (its ``run.json``, its ``labels/``), up to two
    levels down; ``"; it is a file, not a folder"`` for another file; ``""`` otherwise. Before,
    a run's own ``run.json`` was "label run directory not found"."""
    path = Path(path)
    found = [f for f, r in outputs_around(path) if r == record and f != path]
    if found:
        kind = "a file" if path.is_file() else "a folder"
        return f"; it is {kind} in {found[0]}, {output_kind(found[0])[1]}: give {found[0]}"  # type: ignore[index]
    return "; it is a file, not a folder" if path.is_file() else ""


def not_this_output(folder: str | os.PathLike, wanted: str, record: str | None = None) -> str:
    """``"; FOLDER is a label run (engine label), not WANTED"`` for the end of an error about a
    folder that is another engine output than the one expected (whose ``record`` it would hold);
    ``""`` when it is no engine output or the expected one."""
    kind = output_kind(folder)
    if kind is None or kind[0] == record:
        return ""
    return f"; {folder} is {kind[1]}, not {wanted}"


def recorded_root(
    given: Any, resolved: Any = None, beside: Any = None, cwd: Any = None
) -> Path | None:
    """A dataset root an output recorded, for reading it from here: ``given`` (as it was
    typed, so relative to the working directory) when that is here (a folder, or a spec file),
    else ``resolved`` (the absolute path it had when it was recorded) when that is, else, with
    ``beside`` = ``(out, folder)`` (the output's own path as the same command line typed it,
    and where the output is now), the place the root had beside the output, seen from where
    the output is now (:func:`moved_with`), when that is, else ``given`` as it is, for an error
    to name; None when nothing was recorded. Before ``beside``, a dataset moved or mounted elsewhere together
    with its runs (a project folder renamed, copied to another machine) was not found, nor one
    typed relative to a working directory that is gone.

    An output that is no longer where it was recorded (the place the root had beside it is not
    the absolute path recorded: ``resolved``, else ``given`` when typed absolute) moved or was
    copied with its dataset, and the dataset beside it, where there is one, comes first. Before,
    in a project copied with ``cp -r`` or ``cp -a`` while the original still existed, the
    copy's outputs read the original's dataset (its absolute path still existed): ``engine info``
    suggested fusing it, and review and report read its images, not the copy's.

    ``cwd``: the folder the recording command ran in (its ``environment``'s ``cwd``), from which
    a relative ``given`` (and ``beside``'s ``out``) was typed: they are read from there, not from
    here, and the root found is absolute (or beside the output moved). Before, a training run's
    ``data`` typed ``data`` and resumed from another folder that held a ``data`` of its own
    trained on that one."""
    there = isinstance(cwd, str) and os.path.isabs(cwd)
    given = typed_from(cwd, given)
    # the output typed from there too, whether or not ``given`` was: a resume records the root
    # it found absolute beside an ``out`` typed relative, and a project copied or moved after it
    # must still find the root beside the run, not the original's (or none)
    if there and beside is not None and isinstance(beside[0], str | os.PathLike) and str(beside[0]):
        beside = (os.path.join(cwd, beside[0]), beside[1])
    given = Path(given) if isinstance(given, str) and given else None
    resolved = Path(resolved) if isinstance(resolved, str) and resolved else None
    moved = moved_with(given, *beside) if beside is not None and given is not None else None
    recorded = resolved or (given if given is not None and given.is_absolute() else None)
    # the output is not where it was recorded when the root's place beside it is another
    if (
        moved is not None
        and recorded is not None
        and moved.exists()
        and _real(moved) != _real(recorded)
    ):
        typed_here = given is not None and given.exists() and _real(given) == _real(moved)
        return given if typed_here else moved  # as typed, where that names it from here
    for root in (given, resolved, moved):
        if root is not None and root.exists():  # a folder, or a dataset's spec file
            return root
    return given or resolved


def typed_from(cwd: Any, path: Any) -> Any:
    """``path`` as a command that ran in ``cwd`` (an absolute folder, else ignored) typed it:
    joined to ``cwd`` where it is text typed relative (not ``~``, which no shell expanded
    there), else as it is."""
    if not (isinstance(cwd, str) and os.path.isabs(cwd)):
        return path
    relative = isinstance(path, str) and path and not os.path.isabs(path) and path[0] != "~"
    return os.path.join(cwd, path) if relative else path


def _real(path: Path) -> str:
    """``path`` with its symbolic links followed, for telling two names of one folder (a project
    reached through a symlinked folder) from two folders."""
    return os.path.normcase(os.path.realpath(path))


def fused_source(record: Any, root: Any) -> Path | None:
    """The dataset a fused dataset at ``root`` was fused from, as its record (``fuse.json``'s
    document) names it and :func:`recorded_root` finds it from here: typed, absolute, or where
    it was beside the fused dataset (the two moved or copied together); None when it names
    none."""
    doc = record if isinstance(record, dict) else {}
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    inputs = doc.get("inputs") if isinstance(doc.get("inputs"), dict) else {}
    return record_root(doc, config.get("data"), inputs.get("data"), (config.get("out"), root))


def record_root(record: Any, given: Any, resolved: Any = None, beside: Any = None) -> Path | None:
    """:func:`recorded_root` of a path that ``record`` holds, read from the folder its command
    ran in (:func:`record_cwd`); as typed where that names the same from here (run in that
    folder, as the command was), or where it is found nowhere (for an error to name, as
    before). Before, ``engine info``, ``review`` and ``report`` run from another folder that
    held a ``data`` of its own read that one, not the project's."""
    found = recorded_root(given, resolved, beside, record_cwd(record))
    if not isinstance(given, str) or not given or os.path.isabs(given) or found is None:
        return found
    if not found.exists() or (Path(given).exists() and _real(Path(given)) == _real(found)):
        return Path(given)
    return found


def record_cwd(record: Any) -> str | None:
    """The folder the command that wrote ``record`` (a ``run.json``, ``fuse.json``,
    ``subset.json``, an export's record) ran in, its ``environment``'s ``cwd``, from which the
    paths it holds as typed were typed: :func:`recorded_root` reads them from there. None for
    a record without one (written before it was recorded, or by hand): read from here, as
    before."""
    env = record.get("environment") if isinstance(record, dict) else None
    cwd = env.get("cwd") if isinstance(env, dict) else None
    return cwd if isinstance(cwd, str) and os.path.isabs(cwd) else None


def unexpanded(path: Path) -> str:
    """What to say of a path that starts with a ``~`` the shell left as it is."""
    return (
        "the shell expands ~ only at the start of a word, not in quotes nor after --opt=: "
        f"give {path.expanduser()}"
    )


def check_expanded(path: str | os.PathLike | None, command: str) -> None:
    """Refuse an output ``path`` that starts with a ``~`` the shell left as it is
    (``--out=~/runs``, or quoted) while no folder named ~ is here: the command would make one
    in the working directory (and a later ``rm -rf ~`` meant for it takes the home folder)."""
    if path is not None and Path(path).parts[:1] == ("~",) and not Path("~").exists():
        raise ValueError(
            f"{path}: {command} would make a folder named ~ here; {unexpanded(Path(path))}"
        )


def check_not_a_file(folder: str | os.PathLike) -> None:
    """An output folder (``--out``) that exists as a file is refused in one line naming it, the
    same for every command (``engine.runlock.check_output_folder``, an annotated subset's,
    ``engine demo-pretrain``'s), before anything is written; so is a symbolic link to a folder
    that is not there (moved, its disk not mounted), naming where it leads: before, the first
    mkdir's "OUT: File exists"."""
    path = Path(folder)
    if path.is_symlink() and not path.exists():
        raise NotADirectoryError(
            f"{folder}: output is a symbolic link to {os.readlink(path)}, which is not there: "
            "create that folder or give another --out"
        )
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{folder}: output exists and is not a folder")


def check_report_file(path: str | os.PathLike | None, command: str) -> None:
    """:func:`check_expanded` for a report file a library caller names, and ``-``: the command
    line's ``--json -`` is stdout, but a config's ``json_out="-"`` wrote a file named ``-`` in
    the working directory, where no one looks for it."""
    check_expanded(path, command)
    if path is not None and str(path) == "-":
        raise ValueError(
            f"-: {command} writes stdout for '-' on the command line only (--json, --markdown); "
            "from Python, give a file path or use the returned report"
        )


def fused_input(record: Any, root: Any, path: Any) -> Path | None:
    """A label run or subset a fused dataset at ``root`` was fused from, as its record
    (``fuse.json``'s document) names it (``path``: its ``inputs``' path, as typed), where
    :func:`recorded_root` finds it from here: as typed, else where it was beside the fused
    dataset (the two moved or copied together), that first when the fused dataset is not where
    it was fused. The command's working directory (``environment.cwd``) relates a path typed
    absolute to an ``--out`` typed relative, or the other way round. ``path`` as recorded where
    it is nowhere (for a line to name); None for no path."""
    if not isinstance(path, str) or not path:
        return None
    config = record.get("config") if isinstance(record, dict) else None
    out = config.get("out") if isinstance(config, dict) else None
    found = record_root(record, path, None, (out, root))  # both read from where it ran
    return found if found is not None and found.exists() else Path(path)


def typed_together(path: str, record: Any) -> tuple[str, Any]:
    """``path`` and the ``--out`` of the run whose record (a ``run.json``-like document with
    ``config.out`` and ``environment.cwd``) names it, as one command line would type them, for
    :func:`moved_with`: where one is absolute and the other relative, both joined to the
    command's working directory."""
    doc = record if isinstance(record, dict) else {}
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    env = doc.get("environment") if isinstance(doc.get("environment"), dict) else {}
    out, cwd = config.get("out"), env.get("cwd")
    if isinstance(out, str) and isinstance(cwd, str) and os.path.isabs(path) != os.path.isabs(out):
        return os.path.join(cwd, path), os.path.join(cwd, out)
    return path, out


def moved_with(path: Any, out: Any, folder: Any) -> Path | None:
    """Where ``path`` is now if it kept its place beside an output that recorded it with its
    own path ``out`` (both as one command line typed them, both relative to its working
    directory or both absolute) and is now at ``folder``: ``../data`` of a run typed as
    ``runs/x`` is ``folder/../../data``, normalised (relative where ``folder`` is, so that a
    resume records the two as one command line again). None when the two cannot be related
    (one relative and one absolute, another drive)."""
    if not (isinstance(out, str | os.PathLike) and str(out) and folder is not None):
        return None
    path, out = Path(path), Path(out)
    if path.is_absolute() != out.is_absolute():
        return None
    try:
        return Path(os.path.normpath(Path(folder) / os.path.relpath(path, out)))
    except ValueError:  # another drive on Windows
        return None


def did_you_mean(unknown: Any, known: Any) -> str:
    """`` (did you mean 'iters'?)`` for the first of the ``unknown`` keys of a settings file that
    is a near miss of one of the ``known`` ones (a typo, ``-`` for ``_``), else ``""``: the hint
    an ``unknown keys`` error puts before its list of every allowed key, where ``itres`` had to
    be looked for among forty."""
    import difflib

    names = {str(k).replace("-", "_").lower(): str(k) for k in unknown}
    for typed in sorted(names):
        close = difflib.get_close_matches(typed, [str(k) for k in known], n=1, cutoff=0.75)
        if close:
            return f" (did you mean {close[0]!r}?)"
    return ""


def first_line(e: BaseException) -> str:
    """The first non-blank line of ``e``'s message, or its type name when the message is blank:
    the one line a command prints for an error (torch, PIL and YAML messages span several).
    An operating-system error reads as ``PATH: reason`` ("/dev/null/x: Not a directory"), the
    project's own style, rather than Python's ``[Errno 20] Not a directory: '/dev/null/x'``."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    if (inner := _worker_error(e)) is not None:
        return inner
    for line in str(e).splitlines():
        if line.strip():
            return line.strip()
    return type(e).__name__


def _worker_error(e: BaseException) -> str | None:
    """The original message of an exception re-raised by a torch DataLoader worker, whose own
    first line only says where it was caught ("Caught ValueError in DataLoader worker process
    0.") and whose last lines are the original traceback's ``ValueError: PATH: problem``."""
    text = str(e)
    head = f"Caught {type(e).__name__} in "
    if not text.startswith(head) or "\nOriginal Traceback" not in text:
        return None
    prefix = f"{type(e).__name__}: "
    for line in reversed(text.splitlines()):
        if line.startswith(prefix) and line[len(prefix) :].strip():
            return line[len(prefix) :].strip()
    return None


def type_and_first_line(e: BaseException) -> str:
    """``"ValueError: first line"``, or the type name alone when the message is blank: a failure
    recorded where the exception's type is not otherwise known (a manifest, a checkpoint error)."""
    line = first_line(e)
    return line if not str(e).strip() else f"{type(e).__name__}: {line}"


def torch_magic(path: Path) -> bool:
    """Whether ``path`` starts like something ``torch.load`` reads: a zip archive (``PK``, what
    ``torch.save`` writes) or a pickle (protocol opcode ``0x80``); True if it cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return True
    return head == b"PK" or head[:1] == b"\x80"


def unreadable_torch_file(path: Path, e: BaseException, what: str = "checkpoint") -> ValueError:
    """One line for a file ``torch.load`` cannot read, saying what is wrong with it rather than
    repeating torch's multi-line internals (a truncated zip, a text file, a foreign pickle)."""
    text = str(e).strip()
    if "central directory" in text or isinstance(e, EOFError) or "unexpected EOF" in text:
        why = "truncated or corrupted (its zip archive is incomplete)"
    elif not torch_magic(path) or (
        isinstance(e, (KeyError, pickle.UnpicklingError)) and "weights_only" not in text
    ):
        why = "not a PyTorch file (neither a torch zip archive nor a pickle)"
    elif "Weights only load failed" in text:  # torch's 6-line advice to load it unsafely
        found = re.search(r"GLOBAL (\S+)", text)  # posix.system; or a bare pickle's opcode
        why = (
            "it holds Python objects besides tensors and plain data"
            + (f" ({found.group(1)})" if found else "")
            + ", which could run code and are not loaded"
        )
    else:
        why = type_and_first_line(e)[:200]
    return ValueError(f"{path}: not a readable {what}: {why}")


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of ``path``; ``what`` names the file in the errors ("taxonomy file").

    Raises:
        FileNotFoundError: ``"{path}: {what} not found"``.
        ValueError: ``path`` is a folder, cannot be read, or is not UTF-8 text.
    """
    return _decode(read_bytes(path, what), path)


def read_bytes(path: str | os.PathLike, what: str = "file") -> bytes:
    """The bytes of ``path``, with :func:`read_text`'s errors for a missing or unreadable file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not the {what}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        return path.read_bytes()
    except OSError as e:
        raise ValueError(
            f"{path}: cannot read the {what} ({e.strerror or first_line(e)})"
        ) from None


def _decode(data: bytes, path: str | os.PathLike) -> str:
    """The text of a file's ``data``: UTF-8, with or without the byte-order mark Notepad and
    Excel's "CSV UTF-8" write (before, a JSON file with one was "not valid JSON", and the first
    line of a names file or label map kept it: ``\ufeffperson``, a class no file named), or
    UTF-16 with its byte-order mark (what Windows PowerShell's ``>`` and ``Out-File`` write).
    Anything else is refused naming the line of the first byte that is not UTF-8 (a Latin-1
    ``é``) and what to do; before, only its offset was said."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ValueError(
                f"{path}: not UTF-8 text (it starts with a UTF-16 byte-order mark but is not "
                "UTF-16 text either)"
            ) from None
    elif len(data) >= 2 and (data[0] == 0) != (data[1] == 0):  # "a\0b\0": UTF-16 without a mark
        raise ValueError(f"{path}: UTF-16 text without a byte-order mark: save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        text = b"\0" not in data[:4096]  # a text file in another encoding, not a binary one
        raise ValueError(
            f"{path}: not UTF-8 text (invalid byte at offset {e.start}) on line {line}"
            + (": save it as UTF-8 (it looks like Latin-1 or Windows-1252)" if text else "")
        ) from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """The parsed JSON of ``path``, with :func:`read_text`'s errors and a one-line parse error."""
    return parse_json(read_bytes(path, what), path)


def parse_json(data: str | bytes, path: str | os.PathLike) -> Any:
    """Parse the JSON ``data`` read from ``path`` (named in the errors): for a caller that needs
    the bytes too (to hash them, say)."""
    text = _decode(data, path) if isinstance(data, bytes) else data
    if not text.strip():
        raise ValueError(f"{path}: the file is empty (expected JSON)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        # e.msg may end in "at" ("Unterminated string starting at"): one "at" before the line
        msg = e.msg.removesuffix(" at")
        raise ValueError(f"{path}: not valid JSON ({msg} at line {e.lineno})") from None
    except RecursionError:  # "[[[[...": Python's parser recurses per level
        raise ValueError(
            f"{path}: not valid JSON for this reader (nested too deeply: over "
            f"{sys.getrecursionlimit()} levels)"
        ) from None
    except ValueError as e:  # Python's limit on an integer's digits (its advice is no user's)
        why = f"a number of over {sys.get_int_max_str_digits()} digits"
        if "integer string conversion" not in str(e):
            raise
        raise ValueError(f"{path}: not valid JSON for this reader ({why})") from None


# Blanks ending a line with a tab among them, as an editor leaves them (`iters: 5<TAB>`): YAML
# allows them, PyYAML refused the file ("found character '\t' that cannot start any token")
_TRAILING_TABS = re.compile(r"[ \t]*\t[ \t]*(?=\r?$)", re.MULTILINE)


def read_yaml(path: str | os.PathLike, what: str = "YAML file") -> Any:
    """The parsed YAML of ``path`` (``yaml.safe_load``: None for an empty file), with
    :func:`read_text`'s errors and a one-line parse error."""
    return parse_yaml(read_text(path, what), path)


def parse_yaml(text: str, path: str | os.PathLike) -> Any:
    """:func:`read_yaml` of ``text``, read from ``path`` (named in the parse error): for a
    caller that reads the text as something else too (``engine info`` on a ``.txt`` that is a
    dataset spec or a list of image names), once."""
    text = _TRAILING_TABS.sub("", text)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: cannot parse YAML ({_yaml_problem(e)})") from None
    except RecursionError:  # "[[[[...": PyYAML's composer recurses per level, as json's parser
        raise ValueError(
            f"{path}: cannot parse YAML (nested too deeply for this reader: PyYAML recurses a few "
            "times per level, under Python's limit of about 1000)"
        ) from None


# YAML 1.1's other booleans: words to read_yaml (YAML 1.2), still booleans where a value is a
# switch (a training config's `amp: yes`, `--backend-option fill_holes=no`)
YAML11_BOOLS = {"yes": True, "on": True, "no": False, "off": False}


def yaml_scalar(text: str) -> Any:
    """A command-line ``KEY=VALUE``'s value read as :func:`read_yaml` reads a value
    (``1e-1`` a number, ``010`` ten), with :data:`YAML11_BOOLS` booleans."""
    try:
        value = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except RecursionError:  # "[[[[...": a parse error to the caller, as a malformed value
        raise yaml.YAMLError("nested too deeply for this reader") from None
    return YAML11_BOOLS.get(value.lower(), value) if isinstance(value, str) else value


# Values a YAML file may hold once its aliases are expanded: a config, spec or names file holds
# thousands; a "billion laughs" file of nine nested aliases, 300 bytes, holds 10^9, which
# PyYAML builds as shared lists but an error's repr of them or a JSON record writes out whole.
YAML_MAX_VALUES = 1_000_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing a key given twice in one mapping: PyYAML keeps the
    last silently, so of ``iters: 5`` and, further down, ``iters: 6`` one was dropped unsaid.
    It also refuses aliases expanding to over :data:`YAML_MAX_VALUES` values, or into
    themselves, before anything is built (``engine info spec.yaml`` hung in the repr of one)."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expanded_size(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base": keys it overrides
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, typing.Hashable):  # the loader's own error follows
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (also at line {seen[key]})",
                    key_node.start_mark,
                )  # fmt: skip
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# YAML 1.2's plain scalars rather than 1.1's, in every file a user writes (a class spec, a
# training config, a dataset spec, a YOLO data.yaml): PyYAML reads 1.1, where `no`, `on`, `off`
# and `yes` are booleans (a prompt list `[bike, on]` read as 'bike', 'True'; a class `No:` as
# False), `010` is octal 8 (`seed: 010`) and `1:30` base 60, while `1e-3` (no dot) is a string.
# Here `true` and `false` alone are booleans, integers are decimal (`0x`, `0o`, `0b` as written)
# with `_` allowed, and a number with an exponent is a float.
_YAML_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_YAML_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|[-+]?0x[0-9a-fA-F_]+|[-+]?0o[0-7_]+|[-+]?0b[01_]+)$")
_YAML_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_YAML_NUMBERS = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML_NUMBERS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _rx, _first in (
    ("tag:yaml.org,2002:bool", _YAML_BOOL, "tTfF"),
    ("tag:yaml.org,2002:int", _YAML_INT, "-+0123456789"),
    ("tag:yaml.org,2002:float", _YAML_FLOAT, "-+0123456789."),
):
    _UniqueKeyLoader.add_implicit_resolver(_tag, _rx, list(_first))


def _yaml_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """An integer as YAML 1.2 reads it: ``010`` is 10 (1.1's constructor: octal 8)."""
    text = str(loader.construct_scalar(node)).replace("_", "")
    prefixed = text.lstrip("+-")[:2].lower() in ("0x", "0o", "0b")
    return int(text, 0 if prefixed else 10)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _yaml_int)


def _check_expanded_size(root: yaml.Node) -> None:
    """``yaml.YAMLError`` when the document under ``root`` holds over :data:`YAML_MAX_VALUES`
    values with its aliases expanded, or an alias inside the value it names. Each node is
    visited once (aliases are shared nodes), so the check takes the file's size in time."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            children = _yaml_children(node)
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > YAML_MAX_VALUES:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"its aliases expand to over {YAML_MAX_VALUES:,} values (a 'billion laughs' "
                    "file?)",
                    node.start_mark,
                )  # fmt: skip
            continue
        if id(node) in sizes:
            if sizes[id(node)] < 0:  # entered, not finished: the node holds itself
                raise yaml.constructor.ConstructorError(
                    None, None, "an alias refers to a value that holds it", node.start_mark
                )
            continue
        sizes[id(node)] = -1
        stack.append((node, True))
        stack.extend((c, False) for c in _yaml_children(node))


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _yaml_problem(e: yaml.YAMLError) -> str:
    """What is wrong and where (``expected ',' or ']' ... at line 2, column 1``): the first line
    of a YAML error is its context ("while parsing a flow sequence"), not the problem."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        # a tab indenting a line or before a value, as an editor set to tabs writes it
        tab = "; YAML takes spaces there, not a tab" if "'\\t'" in e.problem else ""
        return f"{e.problem}{where}{tab}"
    return first_line(e)
