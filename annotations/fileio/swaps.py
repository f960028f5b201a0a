"""Several entries of a folder replaced together: their new versions written into a hidden
staging folder (:func:`staged`), then renamed in (:func:`swap_in`) after a record of the swap
that lets the next run finish one a kill cut half way (:func:`finish_swaps`,
:func:`unfinished_swap`)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from annotations.fileio.atomic import atomic_write_json
from annotations.fileio.errors import naming


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
