"""Configuration of a labeling run: the class to label (prompts, thresholds) and the run settings.

A YAML class spec file holds settings for several classes::

    Bicycle:
      prompts: [bicycle, bike]
      negatives: [motorcycle]
      box_threshold: 0.3
      text_threshold: 0.25
      min_area: 64
      max_instances: 50
      parent: Others
    Car:
      prompts: [car]

A label run's ``run.json`` ``config.cls`` can be pasted under its name as it is: its ``name``
key is the entry's own and is accepted.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import check_windows_name, did_you_mean, read_yaml
from annotations.taxonomy import check_class_name, class_key

DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-base"
DEFAULT_SEGMENTER = "facebook/sam-vit-huge"
DEFAULT_BACKEND = "grounded-sam"


@dataclass(frozen=True)
class ClassSpec:
    """The new class and how to find it."""

    name: str  # class name added to the taxonomy (e.g. "Bicycle")
    prompts: tuple[str, ...] = ()  # text prompts (synonyms); empty: the lower-cased class name
    negatives: tuple[str, ...] = ()  # prompts whose boxes are dropped (e.g. "motorcycle")
    box_threshold: float = 0.35  # keep a box when its best token probability is above this
    text_threshold: float = 0.25  # ... and its best prompt's token probability is above this
    min_area: int = 0  # drop instance masks smaller than this many pixels
    max_instances: int = 100  # keep at most this many instances per image (best first); 0: all
    parent: str = "Others"  # taxonomy class the new class is carved out of

    def __post_init__(self) -> None:
        # the taxonomy strips the name it adds; run.json's config.cls.name must be the same
        # text, or every reader of the finished run refuses it (--class " Car" from a script)
        object.__setattr__(self, "name", check_class_name(self.name))
        # the default prompt: the name lower-cased, without Grounding DINO's phrase separators
        # ('St. Bernard' prompts 'st bernard'; the name with its '.' was refused, and with
        # --backend simulated, which takes no --prompt, such a class could not be labelled)
        default = " ".join(re.sub(r"[.?]", " ", self.name.lower()).split())
        prompts = tuple(p.strip() for p in self.prompts if p.strip()) or (default,)
        if not prompts[0]:
            raise ValueError(f"class {self.name!r}: its name leaves no prompt: give --prompt")
        negatives = tuple(p.strip() for p in self.negatives if p.strip())
        object.__setattr__(self, "prompts", prompts)
        object.__setattr__(self, "negatives", negatives)
        clash = {p.lower() for p in prompts} & {n.lower() for n in negatives}
        if clash:
            raise ValueError(f"class {self.name!r}: {sorted(clash)} are both prompt and negative")
        for p in prompts + negatives:
            # Grounding DINO's phrase delimiters: '.' and '?' (transformers' SPECIAL_TOKENS
            # beside [CLS] and [SEP]); inside a prompt they split it into two phrases
            if mark := next((c for c in ".?" if c in p), None):
                raise ValueError(
                    f"class {self.name!r}: prompt {p!r} contains {mark!r}, which Grounding DINO "
                    "uses to separate prompts"
                )
        for key in ("box_threshold", "text_threshold"):
            v = getattr(self, key)
            if not 0 <= v < 1:
                raise ValueError(f"class {self.name!r}: {key} must be in [0, 1), got {v}")
        for key in ("min_area", "max_instances"):  # which one and its value (the command
            if (v := getattr(self, key)) < 0:  # line names its option: a spec file has none)
                raise ValueError(f"class {self.name!r}: {key} must be >= 0, got {v}")

    @property
    def all_prompts(self) -> tuple[str, ...]:
        """Positive prompts then negatives: the text sent to the detector, in this order."""
        return self.prompts + self.negatives

    def negative_flags(self) -> np.ndarray:
        """``(len(all_prompts),) bool``: True where :attr:`all_prompts` holds a negative."""
        return np.array([False] * len(self.prompts) + [True] * len(self.negatives), bool)


_CLASS_KEYS = {f.name for f in dataclasses.fields(ClassSpec)} - {"name"}


def load_class_spec(path: str | os.PathLike, name: str, **overrides: Any) -> ClassSpec:
    """The entry for class ``name`` (case-insensitive) in a YAML class spec file; ``overrides``
    that are not None (command-line options) win over the file."""
    path = Path(path)
    data = read_yaml(path, "class spec file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of class name -> settings")
    entries = {class_key(k): (str(k), v) for k, v in data.items()}
    if class_key(name) not in entries:
        raise ValueError(
            f"{path}: no class {name!r}; classes in the file: {', '.join(map(str, data))}"
        )
    key, entry = entries[class_key(name)]
    entry = entry or {}
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: class {key!r} must map to settings, got {type(entry).__name__}")
    if "name" in entry:  # run.json's config.cls pasted as it is: its name is the entry's
        if class_key(entry["name"]) != class_key(key):
            raise ValueError(
                f"{path}: class {key!r} has name {entry['name']!r}; give the class's own name "
                "or leave name out (the entry's key names the class)"
            )
        entry = {k: v for k, v in entry.items() if k != "name"}
    unknown = set(entry) - _CLASS_KEYS
    if unknown:
        raise ValueError(
            f"{path}: class {key!r} has unknown keys {sorted(unknown)}"
            f"{did_you_mean(unknown, _CLASS_KEYS)}; allowed: {sorted(_CLASS_KEYS)}"
        )
    for k, v in entry.items():
        _check_type(path, key, k, v)
    merged = dict(entry)
    merged.update({k: v for k, v in overrides.items() if v is not None and v != ()})
    for k in ("prompts", "negatives"):
        if isinstance(merged.get(k), str):
            merged[k] = [merged[k]]
        if k in merged:
            merged[k] = tuple(str(p) for p in merged[k])
    try:
        return ClassSpec(name=key, **merged)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None


def _check_type(path: Path, cls: str, key: str, value: Any) -> None:
    """A ``ValueError`` naming the file, the class and the key when a spec value has the wrong
    type (``box_threshold: "0.3"``, quoted, was a ``'<=' not supported`` deep in the check)."""
    if key in ("box_threshold", "text_threshold"):
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif key in ("min_area", "max_instances"):
        ok, want = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif key == "parent":
        ok, want = isinstance(value, str), "a class name"
    else:  # prompts, negatives
        ok = isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(p, (str, int, float)) for p in value)
        )
        want = "a prompt or a list of prompts"
    if not ok:
        raise ValueError(f"{path}: class {cls!r}: {key} must be {want}, got {value!r}")


# the model folders a run names: recorded normalised (``posixpath.normpath``), one spelling each
MODEL_PATHS = ("detector", "segmenter", "model", "refine")
PATH_STARTS = (".", "/", "~")  # a model source that begins so is a path, never a hub id


@dataclass(frozen=True)
class LabelConfig:
    """One labeling run over a dataset."""

    data: str  # dataset root or spec file (engine.datasets)
    cls: ClassSpec  # the class to label
    out: str = ""  # run directory; "" -> runs/label/<class lower-case>
    splits: tuple[str, ...] = ()  # splits to label; empty: every split the dataset has
    backend: str = DEFAULT_BACKEND  # labeling backend name (labeler.backends registry)
    detector: str = DEFAULT_DETECTOR  # Grounding DINO hub id or local directory
    detector_revision: str | None = None  # hub revision (branch, tag or commit) of the detector
    segmenter: str = DEFAULT_SEGMENTER  # SAM / SAM-HQ hub id, local directory, or SAM .pth file
    segmenter_revision: str | None = None  # hub revision of the segmenter
    tiles: tuple[int, int] = (1, 1)  # detection tiles rows x cols in addition to the whole image
    tile_overlap: float = 0.2  # overlap of neighbouring tiles, fraction of a tile
    box_nms_iou: float = 0.5  # a tile box with this box IoU to a whole-image box is its object
    mask_nms_iou: float = 0.7  # mask dedup: drop an instance with this mask IoU to a kept one
    max_boxes: int = 100  # boxes per image that reach SAM, best box score first; 0: all
    uncertain: tuple[float, float] = (0.15, 0.25)  # confidence band [lo, hi) that becomes 255
    batch_size: int = 4  # images per detector / image-encoder batch
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16/fp16 autocast on CUDA, fp32 on CPU) | fp32 | fp16 | bf16
    workers: int = 2  # image decoding threads
    writers: int = 2  # output writing threads (merge, RLE, PNG encoding)
    writer_queue_mb: int = 1024  # outputs waiting for the writers, at most this many MB
    shard: tuple[int, int] | None = (
        None  # (i, n): this process labels images i, i+n, ...; None: from RANK/WORLD_SIZE
    )
    force: bool = False  # relabel images already done with the same configuration
    progress: bool = True  # draw a progress bar on stderr
    local_files_only: bool = False  # never contact the hub (also implied by HF_HUB_OFFLINE)
    model: str = ""  # sam3 backend: SAM 3 hub id or local directory; "" -> facebook/sam3
    model_revision: str | None = None  # hub revision of --model
    refine: str = ""  # SAM / SAM-HQ / SAM 2 re-segmenting each instance on a crop; "" = off
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific options (hashed)
    # model folders typed as paths that their normalised spelling no longer reads as one
    # ("./models/gdino" -> "models/gdino", a hub id's shape): (normalised, as typed), so that
    # run_labeling names a missing one as a folder, as engine label does, instead of asking
    # the hub for "models/gdino" (not recorded, not hashed)
    typed_paths: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        # in order, once each: a split given twice would label its images twice
        object.__setattr__(self, "splits", tuple(dict.fromkeys(self.splits)))
        # one spelling per folder: m/gdino, ./m/gdino and m/gdino/ (tab completion) hash alike,
        # so a rerun does not relabel every image; hub ids ("org/name") are left as they are
        typed = dict(self.typed_paths)  # a replace()'s, of the config it was made from
        for key in MODEL_PATHS:
            value = getattr(self, key)
            if "/" in value:  # posixpath: never turns a hub id's "/" into another separator
                normal = posixpath.normpath(value)
                if value.startswith(PATH_STARTS) and not normal.startswith(PATH_STARTS):
                    typed[normal] = value
                object.__setattr__(self, key, normal)
        kept = {getattr(self, key) for key in MODEL_PATHS}
        object.__setattr__(
            self, "typed_paths", tuple((k, v) for k, v in typed.items() if k in kept)
        )
        if self.batch_size < 1 or self.workers < 1 or self.writers < 1:
            raise ValueError("batch size, workers and writers must be >= 1")
        if self.max_boxes < 0 or self.writer_queue_mb < 1:
            raise ValueError("max_boxes must be >= 0 and writer_queue_mb >= 1")
        if self.tiles[0] < 1 or self.tiles[1] < 1:
            raise ValueError(f"tiles must be at least 1x1, got {self.tiles}")
        if max(self.tiles) > MAX_TILES:
            raise ValueError(
                f"tiles must be at most {MAX_TILES} a side (--tiles), got {self.tiles}"
            )
        if not 0 <= self.tile_overlap < 1:
            raise ValueError(f"tile overlap must be in [0, 1), got {self.tile_overlap}")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(
                f"precision must be auto, fp32, fp16 or bf16 (--precision), got {self.precision!r}"
            )
        shard = self.shard  # (i, n); a library caller's (1,) or (0, 2, 1) named as given
        if shard is not None and not (
            isinstance(shard, tuple | list)
            and len(shard) == 2
            and all(isinstance(v, int) for v in shard)
            and 0 <= shard[0] < shard[1]
        ):
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")

    @property
    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        return check_windows_name(default_out_dir(self.cls.name), f"--class {self.cls.name!r}")

    def result_fields(self) -> dict[str, Any]:
        """The settings that change the labels: hashed for resume (batch size, device, workers,
        writers, shard and paths do not re-label; precision enters through the backend's
        identity, as the autocast dtype it resolves to)."""
        return {
            "class": dataclasses.asdict(self.cls),
            "backend": self.backend,
            "detector": self.detector,
            "detector_revision": self.detector_revision,
            "segmenter": self.segmenter,
            "segmenter_revision": self.segmenter_revision,
            "tiles": list(self.tiles),
            "tile_overlap": self.tile_overlap,
            "box_nms_iou": self.box_nms_iou,
            "mask_nms_iou": self.mask_nms_iou,
            "max_boxes": self.max_boxes,
            "uncertain": list(self.uncertain),
            "extra": self.extra,
            # only when set, so runs from before these options keep their hash (and resume)
            **{
                k: getattr(self, k)
                for k in ("model", "model_revision", "refine")
                if getattr(self, k)
            },
        }

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out_dir)
        del d["typed_paths"]  # how this call spelled them, not a setting
        return d

    def typed(self, key: str) -> str:
        """Model path ``key`` (:data:`MODEL_PATHS`) as it was typed where normalising it made it
        read as a hub id (``./models/gdino``), else as it is."""
        value = getattr(self, key)
        return dict(self.typed_paths).get(value, value)

    def spelled_as(self, recorded: dict[str, Any]) -> LabelConfig:
        """This config with each model path (:data:`MODEL_PATHS`) spelled as ``recorded`` (a
        run.json's ``config``) spells the same folder: runs made before the paths were
        normalised recorded and hashed ``./m/gdino/`` as typed, so the normalised ``m/gdino``
        would label every image of such a run again. A path that normalises to another, or is
        already spelled alike, is left as it is. Backend options (``extra``, hashed as given)
        that mean the same settings are spelled as recorded too: a default spelled out
        (``--backend-option seed=0``) or left out no longer labels every image again."""
        old = {
            key: was
            for key in MODEL_PATHS
            if isinstance(was := recorded.get(key), str)
            and was != getattr(self, key)
            and "/" in was
            and posixpath.normpath(was) == getattr(self, key)
        }
        extra = recorded.get("extra")
        if (
            isinstance(extra, dict)
            and extra != self.extra
            and recorded.get("backend") == self.backend
            and _same_backend_options(self.backend, extra, self.extra)
        ):
            old["extra"] = extra
        if not old:
            return self
        respelled = dataclasses.replace(self)
        for key, was in old.items():  # past __post_init__, which would normalise them again
            object.__setattr__(respelled, key, was)
        return respelled


def _same_backend_options(backend: str, recorded: dict[str, Any], given: dict[str, Any]) -> bool:
    """Whether two ``--backend-option`` sets mean the same settings: the simulated labeler's
    with every default filled in (``seed=0`` spelled out or left out); the model backends take
    none, so only equal sets are the same."""
    if backend != "simulated":
        return False
    from labeler.simulated import SimulationConfig

    try:
        return SimulationConfig.from_dict(recorded) == SimulationConfig.from_dict(given)
    except (TypeError, ValueError):  # unknown keys or bad values: the run itself says so
        return False


def default_out_dir(class_name: str) -> Path:
    """``runs/label/<class lower-case>``, path separators in the name as ``_``: ``Bike/Rack``
    is one folder, ``bike_rack``, not ``rack`` inside ``bike``."""
    return Path("runs/label") / re.sub(r"[/\\]", "_", class_name.lower())


MAX_TILES = 64
"""The most tiles along a side: a 4096-pixel side cut into 64-pixel tiles, each upscaled 12x to
the detector's 800-pixel input, 4,096 detector runs an image. More is a typo: ``100000x100000``
looped rows x columns (10^10) windows an image, ``2**63x1`` never ended."""


def parse_grid(text: str, option: str = "--tiles") -> tuple[int, int]:
    """``"2x3"`` -> ``(2, 3)`` (rows x columns), each 1..:data:`MAX_TILES`."""
    try:
        r, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{option} must look like 2x2 (rows x columns), got {text!r}") from None
    if r < 1 or c < 1:
        raise ValueError(f"{option} must be at least 1x1, got {text!r}")
    if max(r, c) > MAX_TILES:
        raise ValueError(f"{option} must be at most {MAX_TILES}x{MAX_TILES}, got {text!r}")
    return r, c


def parse_shard(text: str) -> tuple[int, int]:
    """``"0/4"`` -> ``(0, 4)``."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like 0/4 (index / count), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard must satisfy 0 <= index < count, got {text!r}")
    return i, n


def shard_from_env(env: dict[str, str] | None = None) -> tuple[int, int] | None:
    """``(RANK, WORLD_SIZE)`` under torchrun, else None. Both are checked as engine train
    checks them (:func:`engine.devices.rank_and_world`), also when one is unset: before,
    ``RANK=1`` alone, or ``WORLD_SIZE=4`` alone, labelled every image as one process, without
    a word."""
    from engine.devices import rank_and_world

    env = dict(os.environ) if env is None else env
    rank, world = rank_and_world(env)  # LabelConfig said "--shard must satisfy ...", not given
    return (rank, world) if world > 1 else None


def check_docstrings_kept() -> None:
    """Refuse in one line to load a transformers model under ``python -OO``
    (``PYTHONOPTIMIZE=2``): transformers 5 builds each model's documentation from its
    docstrings as the model's module is imported (``auto_docstring``) and raises where ``-OO``
    stripped them. Before, ``engine label`` printed pages of "[ERROR] ... not documented" lines
    and then "detector weights not found" of weights that were there. Here, not in
    :mod:`labeler.models`, for :mod:`labeler.sam_convert` too, which that module imports."""
    if sys.flags.optimize >= 2:
        raise RuntimeError(
            "the labeler's models cannot be loaded under python -OO (PYTHONOPTIMIZE=2): "
            "transformers reads their docstrings, which -OO strips; run without -OO (unset "
            "PYTHONOPTIMIZE, or set it to 1)"
        )
