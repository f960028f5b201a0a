"""Manually annotated test subsets of a new class, and choosing which images to annotate.

Subset directory::

    SUBSET_DIR/masks/<stem>.png    (H, W) uint8: 1 = the class, 0 = not, 255 = unannotated
    SUBSET_DIR/subset.json         class, split, stems, source files, date, pixel counts

Scoring code reads a subset with :func:`read_subset` and treats 255 as "no ground truth".
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotations.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    check_not_a_file,
    finish_swaps,
    in_the_output,
    not_this_output,
    read_json,
    record_root,
    staged,
    swap_in,
)
from annotations.labelmap import EncodedLabel, byte_histogram, read_label
from annotations.taxonomy import class_key

SUBSET_FORMAT = "mass-engine/subset/v1"


@dataclass(frozen=True)
class Subset:
    """An annotated subset on disk."""

    root: Path  # the subset directory
    class_name: str  # the new class the masks mark
    split: str  # dataset split the images belong to
    stems: tuple[str, ...]  # annotated images, sorted
    info: dict = field(default_factory=dict, compare=False)  # the whole subset.json

    def mask_path(self, stem: str) -> Path:
        return self.root / "masks" / f"{stem}.png"

    @property
    def data_root(self) -> Path | None:
        """The dataset root the subset was imported against (``engine annotate import --data``),
        for reading it from here: as typed, as it resolved then, or where it was beside the
        subset when the two moved together (``out``: the subset's own path as the import typed
        it; a subset imported before the forty-first round has none, and is found the first
        two ways only); None when none is recorded."""
        info = self.info
        beside = (info.get("out"), self.root)
        return record_root(info, info.get("data"), info.get("data_resolved"), beside)

    def mask(self, stem: str) -> np.ndarray:
        """``(H, W) uint8`` mask of one image: 1 / 0 / 255 (unannotated)."""
        return self.mask_and_histogram(stem)[0]

    def mask_and_histogram(self, stem: str) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`mask` and how many pixels hold each value (``histogram[v]``, 256 long), from
        one pass over the mask."""
        if stem not in self.stems:
            raise ValueError(f"{self.root}: image {stem!r} is not in this subset")
        m = read_label(self.mask_path(stem))
        histogram = byte_histogram(m)
        check_mask_values(self.mask_path(stem), histogram)
        return m, histogram


def check_mask_values(path: Path, histogram: np.ndarray) -> None:
    """``ValueError`` naming the subset mask ``path`` whose value ``histogram`` holds values
    other than 0, 1 and 255 (engine report and engine compare refuse it alike)."""
    bad = [v for v in np.flatnonzero(histogram).tolist() if v not in (0, 1, 255)]
    if bad:
        raise ValueError(f"{path}: values must be 0, 1 or 255, found {bad}")


def replaced_stems(
    root: str | os.PathLike,
    class_name: str,
    split: str,
    stems: Iterable[str],
    replace: bool = False,
) -> tuple[str, ...]:
    """The images of the subset at ``root`` that writing ``stems`` there
    (:func:`write_subset`) would remove, sorted; refuses, as the write does, what it must not
    replace: a subset of another class or split (unless ``replace``), or a folder that holds
    files but is no subset. For a caller to say so before the write (engine annotate import)."""
    held = held_stems(root, class_name, split, replace)
    return tuple(sorted(set(held) - set(stems)))


def held_stems(
    root: str | os.PathLike, class_name: str, split: str, replace: bool = False
) -> tuple[str, ...]:
    """The images the subset of ``class_name`` and ``split`` at ``root`` holds: none when
    ``root`` holds no subset, or one whose ``subset.json`` this engine cannot read (another
    ``format``, no list of stems), which :func:`write_subset` replaces; refuses what the write
    refuses (another class or split unless ``replace``, a folder with files but no subset)."""
    return _existing_subset(Path(root), class_name, split, replace, known_format=True)


def changed_stems(
    root: str | os.PathLike, masks: Mapping[str, EncodedLabel], held: Iterable[str]
) -> tuple[str, ...]:
    """The images of ``held`` (the subset at ``root``: :func:`held_stems`) whose mask ``masks``
    holds and differs from the one written there (pixel for pixel), sorted. A mask missing
    there, or one that cannot be read (damaged), loses nothing when written over and is not
    listed. For a caller to refuse replacing corrections without being told to (engine
    annotate import)."""
    masks_dir = Path(root) / "masks"
    changed = []
    for stem in sorted(set(held) & set(masks)):
        path = masks_dir / f"{stem}.png"
        if not path.is_file() or path.read_bytes() == masks[stem].png:
            continue
        try:
            same = np.array_equal(read_label(path), masks[stem].decode())
        except (OSError, ValueError):  # unreadable: writing over it is a repair
            continue
        if not same:
            changed.append(stem)
    return tuple(changed)


def _existing_subset(
    root: Path, class_name: str, split: str, replace: bool, known_format: bool = False
) -> tuple[str, ...]:
    """Refuse to write a subset over what it must not replace: a subset of another class or
    split (unless ``replace``), or a folder that holds files but is no subset. Returns the
    images of the subset of the same class and split that ``root`` holds (else none; none too
    where its ``format`` is not this engine's and ``known_format``)."""
    check_not_a_file(root)  # a file, or a link to a folder not there
    if not root.exists():
        return ()
    finish_swaps(root, ".masks.")  # a write killed while swapping its files in is whole
    manifest = root / "subset.json"
    if not manifest.is_file():
        if any(not p.name.startswith(".") for p in root.iterdir()):
            raise FileExistsError(
                f"{root}: the folder holds files but no subset.json; write the subset to a new "
                "or empty folder"
            )
        return ()
    try:
        old = read_json(manifest, "subset manifest")
        old_class, old_split = str(old["class_name"]), str(old.get("split", "test"))
    except (ValueError, KeyError, TypeError):
        # unreadable: only an explicit replace writes over it (even a class and split named
        # "?", which before read the unbound record: UnboundLocalError)
        old, old_class, old_split = None, "?", "?"
    same = old is not None and (class_key(old_class), old_split) == (class_key(class_name), split)
    if not same and not replace:
        raise FileExistsError(
            f"{root}: already the annotated subset of {old_class} (split {old_split}); one "
            f"folder holds one class's subset: write {class_name}'s (split {split}) to another "
            "folder, or replace this one on purpose (engine annotate import --replace)"
        )
    known = not known_format or (same and old.get("format", SUBSET_FORMAT) == SUBSET_FORMAT)
    stems = old.get("stems") if same and known else None
    return tuple(str(s) for s in stems) if isinstance(stems, list) else ()


def write_subset(
    root: str | os.PathLike,
    class_name: str,
    split: str,
    masks: Mapping[str, np.ndarray | EncodedLabel],
    sources: dict[str, str],
    extra: dict | None = None,
    replace: bool = False,
    each: Callable[[Iterable[str]], Iterable[str]] = iter,
) -> Subset:
    """Write masks (``stem -> (H, W) uint8`` 0/1/255, as arrays or as the PNG bytes they are
    written as) and ``subset.json``; returns the subset.

    A folder that already holds the subset of the same class and split is replaced (a
    re-import of corrected annotations): masks it no longer lists go. A subset of another class
    or split is refused (``FileExistsError``) unless ``replace``, and so is a folder with files
    but no ``subset.json``. The masks are checked and written one at a time to a hidden folder
    beside ``masks/`` and swapped in, then ``subset.json`` is written: an error before the swap
    (a mask that fails its check, a full disk) leaves the old subset as it was, and no folder
    where there was none. ``each`` wraps the loop over the stems (a progress bar).

    Raises ``ValueError`` when there is no mask, or a mask has other values.
    """
    root = Path(root)
    if not masks:
        raise ValueError(f"{root}: no annotated image to write")
    held_stems(root, class_name, split, replace)  # refuses what must not be replaced
    with staged(root, ".masks.") as staging:
        (staging / "masks").mkdir()
        counts = {}
        for stem in each(sorted(masks)):
            label = masks[stem]
            if not isinstance(label, EncodedLabel):  # an array: encoded as write_label does
                m = np.asarray(label)
                if m.ndim != 2 or m.dtype != np.uint8:
                    raise ValueError(
                        f"mask of {stem!r} must be (H, W) uint8, got {m.shape} {m.dtype}"
                    )
                try:
                    label = EncodedLabel.of(m)
                except ValueError as e:  # an empty array
                    raise ValueError(f"mask of {stem!r}: {e}") from None
            counts[stem] = _checked_counts(stem, label.shape, label.histogram)
            atomic_write_bytes(staging / "masks" / f"{stem}.png", label.png)
            del label  # one mask at a time
        stems = sorted(counts)
        info = {
            "format": SUBSET_FORMAT,
            "class_name": class_name,
            "split": split,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "stems": stems,
            "sources": {s: sources.get(s, "") for s in stems},
            "counts": counts,
            **(extra or {}),
        }
        # swapped in with its masks: a process killed between the two renames has the swap
        # finished by the next call (annotations.fileio.finish_swaps); before the forty-seventh
        # round it was written after them, and a first import killed in between left masks/
        # without subset.json, which the same command refused as a folder that is no subset
        atomic_write_json(staging / "subset.json", info)
        swap_in(staging, ("masks", "subset.json"))
    return Subset(root, class_name, split, tuple(stems), info)


def _checked_counts(stem: str, shape: tuple[int, ...], histogram: np.ndarray) -> dict[str, int]:
    """A mask's size and pixel counts, from its value ``histogram``; ``ValueError`` on a mask
    with values other than 0, 1 and 255."""
    bad = [v for v in np.flatnonzero(histogram).tolist() if v not in (0, 1, 255)]
    if bad:
        raise ValueError(f"mask of {stem!r}: values must be 0, 1 or 255, found {bad}")
    return {
        "height": int(shape[0]),
        "width": int(shape[1]),
        "class_pixels": int(histogram[1]),
        "unannotated_pixels": int(histogram[255]),
    }


def read_subset(root: str | os.PathLike, require_masks: bool = True) -> Subset:
    """Open a subset directory written by :func:`write_subset` (or by hand with that layout);
    ``require_masks=False`` opens one whose masks are missing (``engine info`` lists them)."""

    root = Path(root)
    path = root / "subset.json"
    if not path.is_file() and (hint := in_the_output(root, "subset.json")):  # a file in one
        raise FileNotFoundError(f"{root}: not an annotated subset's folder{hint}")
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: subset manifest not found"
            + (
                not_this_output(root, "an annotated subset", "subset.json")
                or f" (is {root} an annotated subset?)"
            )
        )
    info = read_json(path, "subset manifest")
    fmt = info.get("format", SUBSET_FORMAT) if isinstance(info, dict) else SUBSET_FORMAT
    if fmt != SUBSET_FORMAT:  # absent: written by hand with the layout, read as this version
        raise ValueError(
            f"{path}: format {fmt!r}, which this engine does not read (it reads "
            f"{SUBSET_FORMAT!r}): import the annotations again with this version"
        )
    try:
        stems = tuple(sorted(str(s) for s in info["stems"]))
        sub = Subset(root, str(info["class_name"]), str(info.get("split", "test")), stems, info)
    except (KeyError, TypeError):
        raise ValueError(f"{path}: expected keys class_name, split and stems") from None
    for key, value in (("class_name", info["class_name"]), ("split", info.get("split", "test"))):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{path}: {key} must be a non-empty string, got {value!r}")
    if not isinstance(info["stems"], list):
        raise ValueError(f"{path}: stems must be a list of image stems")
    missing = [s for s in stems if not sub.mask_path(s).is_file()] if require_masks else []
    if missing:
        raise FileNotFoundError(
            f"{sub.mask_path(missing[0])}: mask listed in subset.json is missing ({len(missing)} missing)"
        )
    return sub


def subset_problems(sub: Subset) -> list[str]:
    """What is wrong with a subset's masks, one line each, every mask read: missing, not
    readable, values other than 0 / 1 / 255, or a size or pixel counts other than
    ``subset.json`` records (a mask edited or replaced after the import)."""
    problems = []
    counts = sub.info.get("counts") if isinstance(sub.info.get("counts"), dict) else {}
    for stem in sub.stems:
        path = sub.mask_path(stem)
        if not path.is_file():
            problems.append(f"{path}: mask listed in subset.json is missing")
            continue
        try:
            m, histogram = sub.mask_and_histogram(stem)
        except ValueError as e:
            problems.append(str(e))
            continue
        if edited_since_import(sub, stem, m.shape, histogram):
            recorded = counts[stem]
            actual = _checked_counts(stem, m.shape, histogram)
            problems.append(
                f"{path}: differs from what subset.json records (size {m.shape[1]}x"
                f"{m.shape[0]}, {actual['class_pixels']:,} class and "
                f"{actual['unannotated_pixels']:,} unannotated pixels; recorded "
                f"{recorded.get('width')}x{recorded.get('height')}, "
                f"{recorded.get('class_pixels')} and {recorded.get('unannotated_pixels')}): "
                "edited after the import? import the annotations again (with --force)"
            )
    if unlisted := unlisted_masks(sub):
        problems.append(unlisted_line(sub, unlisted))
    return problems


def edited_since_import(
    sub: Subset, stem: str, shape: tuple[int, ...], histogram: np.ndarray
) -> bool:
    """Whether a mask read now (``shape``, value ``histogram``) has another size or other pixel
    counts than ``subset.json`` records for it (False where it records none: a subset written
    by hand)."""
    counts = sub.info.get("counts") if isinstance(sub.info.get("counts"), dict) else {}
    recorded = counts.get(stem)
    if not isinstance(recorded, dict):
        return False
    actual = _checked_counts(stem, shape, histogram)
    return actual != {k: recorded.get(k) for k in actual}


def edited_masks(sub: Subset) -> list[str]:
    """The stems of ``sub``'s masks edited after the import (:func:`edited_since_import`), each
    mask ``subset.json`` counts read once; one missing or unreadable is left to whoever reads it
    next (its own error). For a command that reads the masks later, not now (engine train's
    ``--val-subset``), to say so before it scores them."""
    counts = sub.info.get("counts") if isinstance(sub.info.get("counts"), dict) else {}
    edited = []
    for stem in (s for s in sub.stems if isinstance(counts.get(s), dict)):
        try:
            m, histogram = sub.mask_and_histogram(stem)
        except (OSError, ValueError):
            continue
        if edited_since_import(sub, stem, m.shape, histogram):
            edited.append(stem)
    return edited


def unlisted_masks(sub: Subset) -> list[str]:
    """The stems of PNG files in the subset's ``masks/`` that ``subset.json`` does not list
    (put there by hand after the import): no command reads them."""
    listed = set(sub.stems)
    return sorted(p.stem for p in (sub.root / "masks").glob("*.png") if p.stem not in listed)


def unlisted_line(sub: Subset, unlisted: list[str]) -> str:
    """The one line that names :func:`unlisted_masks`."""
    shown = ", ".join(unlisted[:3]) + (
        f", ... ({len(unlisted)} in all)" if len(unlisted) > 3 else ""
    )
    return (
        f"{sub.root / 'masks'}: {len(unlisted)} mask{'' if len(unlisted) == 1 else 's'} that "
        f"subset.json does not list, which no command reads ({shown}): import them to add them"
    )


def subset_at(path: str | os.PathLike) -> Subset | None:
    """The annotated subset ``path`` is (its folder or its ``masks`` folder), else None."""
    path = Path(path)
    if path.name == "masks" and (path.parent / "subset.json").is_file():
        path = path.parent  # a subset's masks: the subset, whose split and class are known
    return read_subset(path) if (path / "subset.json").is_file() else None


def check_subset_class(subset: Subset, class_name: str, source: str = "") -> None:
    """Refuse to score ``class_name`` (what ``source`` holds, e.g. a label run's run.json)
    against a subset that annotates another class (compared case-insensitively)."""
    if class_key(subset.class_name) != class_key(class_name):
        holds = f"; {source} holds {class_name}" if source else f", not {class_name}"
        raise ValueError(
            f"{subset.root / 'subset.json'}: this subset annotates {subset.class_name}{holds}"
        )


# -- choosing images to annotate ---------------------------------------------------------------
@dataclass(frozen=True)
class ImageStats:
    """What :func:`pick_images` knows about one labelled image."""

    stem: str
    confidence: float  # mean confidence (0..1) over pixels labelled the class; NaN: none labelled
    num_instances: int  # instances the labeler kept
    num_tiny: int  # instances smaller than the tiny-area threshold
    # where ``confidence`` comes from: "map" (the confidence map over the labelled pixels),
    # "instances" (no map: the instances' mean score stands in), "" (neither: NaN)
    confidence_from: str = "map"


@dataclass(frozen=True)
class Pick:
    stem: str
    reason: str  # "low-confidence", "many-or-tiny" or "random"


def check_pick(n: int, low_confidence: float, many_or_tiny: float) -> None:
    """``ValueError`` on a count or shares :func:`pick_images` cannot choose by (NaN included:
    every comparison with it is false)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not (low_confidence >= 0 and many_or_tiny >= 0 and low_confidence + many_or_tiny <= 1):
        raise ValueError(
            "the low-confidence and many-or-tiny shares (--low-confidence, --many-or-tiny) must "
            f"be >= 0 and sum to <= 1 (the rest is random), got {low_confidence} + {many_or_tiny}"
        )


def pick_images(
    stats: list[ImageStats],
    n: int,
    seed: int = 0,
    low_confidence: float = 0.4,
    many_or_tiny: float = 0.3,
) -> list[Pick]:
    """Choose ``n`` images to annotate: a share with the lowest confidence, a share with the most
    (tiny) instances, the rest at random (seeded). No image is chosen twice; a short group
    leaves its places to the random share. Order: by reason, then as chosen.

    ``low_confidence`` and ``many_or_tiny`` are fractions of ``n``; their sum must be <= 1.
    """
    check_pick(n, low_confidence, many_or_tiny)
    n = min(n, len(stats))
    chosen: dict[str, str] = {}
    n_low = int(round(n * low_confidence))
    n_many = min(n - n_low, int(round(n * many_or_tiny)))
    with_conf = [s for s in stats if not np.isnan(s.confidence)]
    for s in sorted(with_conf, key=lambda s: (s.confidence, s.stem))[:n_low]:
        chosen[s.stem] = "low-confidence"
    busy = [s for s in stats if s.stem not in chosen and (s.num_instances > 1 or s.num_tiny > 0)]
    busy.sort(key=lambda s: (-(s.num_instances + 2 * s.num_tiny), s.stem))
    for s in busy[:n_many]:
        chosen[s.stem] = "many-or-tiny"
    rest = sorted(s.stem for s in stats if s.stem not in chosen)
    rng = np.random.default_rng(seed)
    k = n - len(chosen)
    for i in rng.permutation(len(rest))[:k]:
        chosen[rest[int(i)]] = "random"
    return [Pick(stem, reason) for stem, reason in chosen.items()]
