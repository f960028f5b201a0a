"""Class taxonomy: ordered classes with ids, names, colours and parent classes.

The MaSS13K base taxonomy has 7 classes (ids 0..6, the release's ids and palette). A new class
(Bicycle, Car, ...) is carved out of a parent class, Others by default, and takes the next id.
"""

from __future__ import annotations

import contextlib
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotations.fileio import atomic_write_json, read_json

IGNORE_ID = 255

# Colours handed to new classes that name none: distinct from the MaSS13K palette and each other.
_NEW_CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 200, 0),
    (255, 0, 255),
    (128, 128, 255),
    (255, 128, 0),
    (0, 128, 128),
    (190, 190, 190),
    (128, 0, 0),
    (0, 0, 128),
    (128, 128, 0),
    (255, 160, 160),
)


# Labels that mark regions left unannotated in annotation files (read as 255, exported beside the
# class): a class cannot be called so (engine label refuses it, engine annotate import too)
IGNORE_NAMES = ("unannotated", "ignore", "__ignore__")


# The names the MaSS13K release gives the classes this taxonomy calls otherwise
# (xiechenxi99/MaSS13K@1afadb9, mmseg/datasets/mass13k.py: background, person, building, tree,
# ground, sky, water): named in the error of an unknown class, not read as aliases.
RELEASE_NAMES = {"background": "Others", "person": "Human", "tree": "Vegetation"}


def class_key(name: str) -> str:
    """The form two spellings of a class name are compared in, by every command: spaces
    around dropped, case folded (``str.casefold``: ``car``, ``Car `` and ``CAR`` are one class,
    ``Straße`` and ``STRASSE`` too), accents composed (Unicode NFC: ``Vélo`` typed and ``Vélo``
    as macOS file names and some tools write it, ``e`` + a combining accent, are one class).
    Nothing else is folded: ``traffic light``, ``traffic_light`` and ``traffic-light`` are three
    classes."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", str(name).strip()).casefold())


def class_folder(base: Path, class_name: str) -> str:
    """The name of ``base``'s folder that holds ``class_name`` (a dataset's ``new_classes/`` or
    ``new_class_instances/``): the folder spelled as the class, else lower-cased (engine synth's),
    else any folder naming the same class (:func:`class_key`: ``Traffic light/`` for ``traffic
    light``); the lower-cased name when there is none."""
    for name in dict.fromkeys((class_name, class_name.lower())):
        if (base / name).is_dir():
            return name
    with contextlib.suppress(OSError):
        for folder in sorted(base.iterdir()):
            if folder.is_dir() and class_key(folder.name) == class_key(class_name):
                return folder.name
    return class_name.lower()


def check_class_name(name: str) -> str:
    """A new class's name as ``--class`` gave it (``engine label``, ``engine annotate import``),
    with the spaces around it dropped, or ``ValueError`` for a name that no later command could
    use: empty, ``.`` and ``..``, a name of the unannotated regions (:data:`IGNORE_NAMES`), one
    with a control character, one of digits only, one with a comma. One rule for every command
    that makes a class: before, ``engine annotate import`` took ``--class 7`` and ``Car\\nX``,
    which ``engine label`` refused, into subsets no run could be scored against."""
    name = str(name).strip()
    if not name:
        raise ValueError("the class needs a non-empty name (--class)")
    if name in (".", ".."):  # engine label's default --out would be runs/label itself
        raise ValueError(f"--class {name!r} is no class name")
    if class_key(name) in IGNORE_NAMES:  # its export could never be imported
        raise ValueError(
            f"--class {name!r} is no class name: annotation files use "
            f"{', '.join(repr(n) for n in IGNORE_NAMES)} for the regions left unannotated"
        )
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise ValueError(  # a newline split every one-line message, folder and Markdown row
            f"--class {name!r}: a class name holds no control character (newline, tab)"
        )
    if name.isdecimal():  # as engine compare --class reads an id: '²' is a name, '٣' is 3
        raise ValueError(
            f"--class {name!r} is no class name: engine compare --class reads a number as a "
            "class id"
        )
    if "," in name:  # a list given as one class: its prompt would find them all
        parts = " then ".join(f"--class {p.strip()!r}" for p in name.split(","))
        raise ValueError(
            f"--class {name!r}: a class name holds no ',' (engine fuse --priority and --parent "
            f"read comma-separated names); one class at a time: {parts}"
        )
    return name


@dataclass(frozen=True)
class ClassInfo:
    """One class of a taxonomy."""

    id: int  # pixel value in label maps, 0..254
    name: str  # display name, unique case-insensitively within a taxonomy
    color: tuple[int, int, int]  # RGB colour for previews and palettes
    parent: int | None = None  # id of the class this one was carved out of; None for base classes

    def __post_init__(self) -> None:
        if not (0 <= self.id < IGNORE_ID):
            raise ValueError(f"class id must be in 0..254, got {self.id} for {self.name!r}")
        if not self.name or not self.name.strip():
            raise ValueError(f"class {self.id} needs a non-empty name")
        if len(self.color) != 3 or not all(0 <= int(c) <= 255 for c in self.color):
            raise ValueError(
                f"class {self.name!r}: color must be 3 values in 0..255, got {self.color}"
            )
        object.__setattr__(self, "color", tuple(int(c) for c in self.color))


@dataclass(frozen=True)
class Taxonomy:
    """Ordered classes; ids are contiguous from 0 so they index count arrays directly."""

    classes: tuple[ClassInfo, ...]
    _by_name: dict[str, ClassInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        classes = tuple(self.classes)
        object.__setattr__(self, "classes", classes)
        if not classes:
            raise ValueError("a taxonomy needs at least one class")
        ids = [c.id for c in classes]
        if ids != list(range(len(classes))):
            raise ValueError(f"class ids must be 0..{len(classes) - 1} in order, got {ids}")
        by_name: dict[str, ClassInfo] = {}
        for c in classes:
            key = class_key(c.name)
            if key in by_name:
                raise ValueError(
                    f"class name {c.name!r} appears twice (names are case-insensitive)"
                )
            by_name[key] = c
            if c.parent is not None and (c.parent == c.id or not 0 <= c.parent < len(classes)):
                raise ValueError(f"class {c.name!r}: parent id {c.parent} is not another class")
        object.__setattr__(self, "_by_name", by_name)

    # -- lookups -------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self):
        return iter(self.classes)

    def __getitem__(self, class_id: int) -> ClassInfo:
        if not (0 <= class_id < len(self.classes)):
            raise ValueError(
                f"class id {class_id} is not in this taxonomy (ids 0..{len(self) - 1})"
            )
        return self.classes[class_id]

    def release_hint(self, name: str) -> str:
        """``"; the MaSS13K release's 'background' is Others here"`` for the end of an unknown
        class's error when ``name`` is the release's name of one of these classes, else ``""``."""
        ours = RELEASE_NAMES.get(class_key(name))
        return f"; the MaSS13K release's {name!r} is {ours} here" if ours in self else ""

    def listed(self, most: int = 20) -> str:
        """The class names comma-separated, for messages: the first ``most`` and ``... (N in
        all)`` beyond them (a 254-class taxonomy made every unknown-name error 4 KB long)."""
        names = self.names
        more = f", ... ({len(names)} in all)" if len(names) > most else ""
        return ", ".join(names[:most]) + more

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and class_key(name) in self._by_name

    def get(self, name: str) -> ClassInfo:
        """The class called ``name`` (case-insensitive); unknown names list the known ones."""
        try:
            return self._by_name[class_key(name)]
        except KeyError:
            raise ValueError(
                f"unknown class {name!r}; known classes: {self.listed()}{self.release_hint(name)}"
            ) from None

    def id_of(self, name: str) -> int:
        return self.get(name).id

    def children(self, class_id: int) -> list[ClassInfo]:
        return [c for c in self.classes if c.parent == class_id]

    def ancestors(self, class_id: int) -> list[int]:
        """The ids ``class_id`` was carved out of, nearest first: its parent, the parent's
        parent, ..., the base class (empty for a base class)."""
        found, c = [], self[class_id]
        while c.parent is not None:
            c = self[c.parent]
            found.append(c.id)
        return found

    def base_of(self, class_id: int) -> ClassInfo:
        """The base class (no parent) that ``class_id`` was carved out of, through any new
        classes between; a base class itself."""
        return self[(self.ancestors(class_id) or [class_id])[-1]]

    def palette(self) -> np.ndarray:
        """``(256, 3) uint8`` RGB lookup table; unused entries and 255 (ignore) are white."""
        lut = np.full((256, 3), 255, dtype=np.uint8)
        for c in self.classes:
            lut[c.id] = c.color
        return lut

    # -- construction --------------------------------------------------------------------------
    def with_new_class(
        self,
        name: str,
        parent: str | int = "Others",
        color: tuple[int, int, int] | None = None,
    ) -> Taxonomy:
        """A new taxonomy with ``name`` appended (next id), carved out of ``parent``."""
        name = name.strip()
        if name in self:
            raise ValueError(
                f"class {name!r} is already in the taxonomy (as {self.get(name).name!r})"
            )
        parent_id = self[parent].id if isinstance(parent, int) else self.id_of(parent)
        if len(self.classes) >= IGNORE_ID:
            raise ValueError(
                f"no class id left for new class {name!r}: the taxonomy has "
                f"{len(self.classes)} classes (ids 0..{IGNORE_ID - 1}), the most uint8 label "
                f"maps hold ({IGNORE_ID} is ignore)"
            )
        if color is None:
            used = {c.color for c in self.classes}
            color = next((c for c in _NEW_CLASS_COLORS if c not in used), None)
            if color is None:
                rng = np.random.default_rng(len(self.classes))
                color = tuple(int(v) for v in rng.integers(0, 256, 3))
        new = ClassInfo(id=len(self.classes), name=name, color=tuple(color), parent=parent_id)
        return Taxonomy(self.classes + (new,))

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "classes": [
                {"id": c.id, "name": c.name, "color": list(c.color), "parent": c.parent}
                for c in self.classes
            ]
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "taxonomy") -> Taxonomy:
        if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
            raise ValueError(f"{source}: expected an object with a 'classes' list")
        unknown = set(data) - {"classes"}
        if unknown:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)}; allowed: ['classes']")
        classes = []
        for i, entry in enumerate(data["classes"]):
            if not isinstance(entry, dict):
                raise ValueError(
                    f"{source}: classes[{i}] must be an object, got {type(entry).__name__}"
                )
            unknown = set(entry) - {"id", "name", "color", "parent"}
            if unknown:
                raise ValueError(f"{source}: classes[{i}] has unknown keys {sorted(unknown)}")
            missing = {"id", "name", "color"} - set(entry)
            if missing:
                raise ValueError(f"{source}: classes[{i}] lacks {sorted(missing)}")
            try:
                classes.append(
                    ClassInfo(
                        id=int(entry["id"]),
                        name=str(entry["name"]),
                        color=tuple(entry["color"]),
                        parent=None if entry.get("parent") is None else int(entry["parent"]),
                    )
                )
            except (TypeError, ValueError) as e:
                raise ValueError(f"{source}: classes[{i}]: {e}") from None
        try:
            return cls(tuple(classes))
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Taxonomy:
        return cls.from_dict(read_json(path, "taxonomy file"), source=str(path))

    @classmethod
    def mass13k(cls) -> Taxonomy:
        return MASS13K


MASS13K = Taxonomy(
    (
        ClassInfo(0, "Others", (0, 0, 0)),
        ClassInfo(1, "Human", (255, 0, 0)),
        ClassInfo(2, "Building", (64, 34, 64)),
        ClassInfo(3, "Vegetation", (0, 255, 0)),
        ClassInfo(4, "Ground", (93, 64, 0)),
        ClassInfo(5, "Sky", (0, 0, 255)),
        ClassInfo(6, "Water", (0, 255, 255)),
    )
)
