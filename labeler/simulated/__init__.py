"""The "simulated" labeling backend: pseudo labels made from TRUE masks, with Grounded-SAM's
documented failure modes, for demos and ablations without detector weights or a GPU.

Nothing here runs a model. Every output of this backend says ``backend: "simulated"``.

Failure modes (DESIGN.md section 1 and 6; rates are options of :class:`SimulationConfig`):

* **small instances missed**: an instance of ``area`` pixels is dropped with probability
  ``miss_max / (1 + (area / (miss_area * H * W)) ** 2)``: half of ``miss_max`` at
  ``miss_area`` of the image, rising towards ``miss_max`` as the instance shrinks (Grounding
  DINO sees a 3840x2160 photo at 750x1333 px, HxW: its 800 px short side capped by 1333);
* **thin interior structure filled**: each instance is closed with a disk of radius
  ``fill_radius`` x the instance's box diagonal, then its holes are filled (SAM turns a wheel
  with spokes into a solid disk, hiding the ground seen through it);
* **boundaries shifted**: the outline moves in or out by a smooth random offset of up to
  ``boundary_shift`` pixels (per instance a constant bias plus low-frequency wobble);
* **false positives**: with probability ``false_positive_rate`` per image, one connected
  region of *other* Others objects (a car labelled bicycle, a bin, a sign), or a random blob
  when there is none, is added as an instance with a low score.

Randomness is drawn per image from ``(seed, split, stem)``, so the result of an image does not
depend on batching, sharding or resuming.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from annotations.fileio import FUSE_RECORD
from annotations.instances import Instances
from annotations.labelmap import imread_unchanged, read_label
from annotations.numbers import check_numbers
from annotations.taxonomy import class_folder
from labeler.crops import CroppedInstances
from labeler.dedup import MaskCrop

BACKEND_NAME = "simulated"


@dataclass(frozen=True)
class SimulationConfig:
    """Error rates of the simulated labeler (all options of ``--backend simulated``)."""

    seed: int = 0  # base seed; each image draws from (seed, split, stem)
    miss_area: float = 0.002  # area (fraction of the image) at which half of miss_max is missed
    miss_max: float = 0.9  # miss probability of a vanishingly small instance, 0..1
    fill_radius: float = 0.06  # closing disk radius, fraction of the instance's box diagonal; 0 off
    fill_holes: bool = True  # fill enclosed holes (wheel interiors) after closing
    boundary_shift: float = 2.0  # largest boundary displacement in pixels; 0 off
    false_positive_rate: float = 0.3  # probability of one false-positive region per image, 0..1
    min_area: int = 4  # instances smaller than this (pixels) after the errors are dropped

    def __post_init__(self) -> None:
        # `miss_area=.nan` passed the checks below unsaid; by value, not the field's type
        # string: a caller's seed=nan or min_area=inf (int fields) passed too
        check_numbers(self, "simulated labeler: ")
        # fill_radius is a share of the box diagonal: 1e3 padded each box by 1000 diagonals,
        # and the run was killed for memory; 2**63 failed every image
        for name in ("miss_max", "false_positive_rate", "fill_radius"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"simulated labeler: {name} must be in [0, 1], got {v}")
        # seed -1 failed every image in numpy's generator; min_area -1 was read as 1
        for name in ("miss_area", "boundary_shift", "seed", "min_area"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"simulated labeler: {name} must be >= 0, got {getattr(self, name)}"
                )

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "simulated backend options"
    ) -> SimulationConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{source}: unknown options {sorted(unknown)}; known: {sorted(known)}")
        data = dict(data)
        for f in (f for f in dataclasses.fields(cls) if f.name in data):
            # `miss_max=abc` was a TypeError traceback in the run, `fill_holes=maybe` True
            v, kind = data[f.name], str(f.type)
            number = isinstance(v, int | float) and not isinstance(v, bool)
            if kind == "bool" and not isinstance(v, bool):
                raise ValueError(f"{source}: {f.name} must be true or false, got {v!r}")
            if kind == "int" and not (number and float(v).is_integer()):
                raise ValueError(f"{source}: {f.name} must be a whole number, got {v!r}")
            if kind == "float" and not number:
                raise ValueError(f"{source}: {f.name} must be a number, got {v!r}")
            data[f.name] = int(v) if kind == "int" else v
        return cls(**data)


def image_rng(seed: int, split: str, stem: str) -> np.random.Generator:
    """The generator of one image: independent of processing order."""
    return np.random.default_rng(
        [seed, zlib.crc32(f"{split}/{stem}".encode("utf-8", "surrogateescape"))]
    )


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Low-frequency noise in [-1, 1] with features about ``cell`` pixels wide."""
    gh, gw = max(2, int(np.ceil(h / cell)) + 1), max(2, int(np.ceil(w / cell)) + 1)
    coarse = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Positive inside (distance to the outside), negative outside, in pixels."""
    m = mask.astype(np.uint8)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, 5)
    cap = float(sum(mask.shape))  # an image without outside (or inside) pixels: no overflow
    return np.where(mask, np.minimum(inside, cap) - 0.5, 0.5 - np.minimum(outside, cap)).astype(
        np.float32
    )


def _bbox(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """Slices of the mask's bounding box grown by ``pad`` pixels, clipped to the image."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (
        slice(max(0, int(rows[0]) - pad), min(h, int(rows[-1]) + pad + 1)),
        slice(max(0, int(cols[0]) - pad), min(w, int(cols[-1]) + pad + 1)),
    )


def _fill(mask: np.ndarray, radius: float, holes: bool) -> np.ndarray:
    """Close with a disk of ``radius`` pixels, then fill holes: thin interiors become solid.

    The closing runs on the instance's box (grown by the radius, zero beyond the frame) with two
    Euclidean distance transforms, so its cost does not grow with the radius.
    """
    if not mask.any():
        return mask
    out = mask.copy()
    r = float(radius)
    if r >= 1:
        pad = int(np.ceil(r)) + 2
        ys, xs = _bbox(mask, 0)
        crop = np.pad(mask[ys, xs].astype(np.uint8), pad)
        dilated = cv2.distanceTransform(1 - crop, cv2.DIST_L2, 5) <= r
        closed = cv2.distanceTransform(dilated.astype(np.uint8), cv2.DIST_L2, 5) > r
        out[ys, xs] |= closed[pad:-pad, pad:-pad]
    if holes:
        ys, xs = _bbox(out, 1)
        out[ys, xs] = ndimage.binary_fill_holes(out[ys, xs])
    return out | mask


def _box_diag(mask: np.ndarray) -> float:
    ys, xs = _bbox(mask, 0)
    return float(np.hypot(xs.stop - xs.start, ys.stop - ys.start))


def simulate_labels(
    instance_ids: np.ndarray,
    others: np.ndarray | None = None,
    config: SimulationConfig | None = None,
    rng: np.random.Generator | None = None,
    class_id: int = 1,
    prompt: str = "simulated",
) -> tuple[Instances, np.ndarray]:
    """Simulated Grounded-SAM output for one image.

    Args:
        instance_ids: ``(H, W)`` integer array of true instances of the class: 0 = none,
            1..N = instance ids (e.g. ``new_class_instances/<name>/<split>/<stem>.png``).
        others: ``(H, W) bool`` pixels of other "Others" objects where a false positive may
            land (e.g. 7-class label == 0 and not the class); None: random blobs only.
        config: error rates; defaults when None.
        rng: the image's generator (see :func:`image_rng`); ``default_rng(config.seed)`` when None.
        class_id: class id written into the instances.
        prompt: the "prompt" recorded per instance.

    Returns:
        ``(instances, probs)``: kept instances (masks ``(N, H, W) bool``, boxes XYXY, detector
        scores, mask scores) and ``(N, H, W) float32`` per-pixel probabilities in 0..1 (a soft
        edge around each mask, a sigmoid of the distance to it at scale 0.75 px).
        :func:`simulate_cropped` gives the same instances inside their windows, as the labeling
        runner writes them.
    """
    (h, w), windows, scores, mask_scores = _simulate(instance_ids, others, config, rng)
    n = len(windows)
    if not n:
        return Instances.empty(h, w), np.zeros((0, h, w), np.float32)
    stack = np.zeros((n, h, w), bool)
    probs = np.zeros((n, h, w), np.float32)
    for k, (ys, xs, crop) in enumerate(windows):
        stack[k, ys, xs] = crop
        probs[k, ys, xs] = _soft_window(crop)
    inst = Instances(
        xyxy=np.array([_box(*window) for window in windows], np.float32),
        masks=stack,
        scores=scores,
        mask_scores=mask_scores,
        class_ids=np.full(n, class_id, np.int64),
        prompts=[prompt] * n,
    )
    return inst, probs


def simulate_cropped(
    instance_ids: np.ndarray,
    others: np.ndarray | None = None,
    config: SimulationConfig | None = None,
    rng: np.random.Generator | None = None,
    class_id: int = 1,
    prompt: str = "simulated",
) -> CroppedInstances:
    """:func:`simulate_labels`' instances and probabilities inside their windows (the mask's
    box grown by the soft edge's margin), what ``CroppedInstances.from_instances`` makes of
    them, without a full-size map per instance: at 4032x3024 each held 60 MB (mask and
    probabilities), so an image with 20 cars took 1.2 GB. Same arguments."""
    (h, w), windows, scores, mask_scores = _simulate(instance_ids, others, config, rng)
    masks, probs = [], []
    for ys, xs, crop in windows:
        # the window from_instances takes is the tight box of the mask and of p > 0: all of it
        # (the sigmoid is at least 4e-18 in float32 there, 0 only beyond the window)
        masks.append(MaskCrop(ys.start, xs.start, crop))
        probs.append(_soft_window(crop))
    n = len(windows)
    return CroppedInstances(
        (h, w),
        np.array([_box(*window) for window in windows], np.float32),
        scores,
        mask_scores,
        np.full(n, class_id, np.int64),
        [prompt] * n,
        masks,
        probs,
    )


SOFT_MARGIN = 32  # pixels around a mask's box where its soft edge is computed (_soft_window)


def _simulate(
    instance_ids: np.ndarray,
    others: np.ndarray | None,
    config: SimulationConfig | None,
    rng: np.random.Generator | None,
) -> tuple[tuple[int, int], list[tuple[slice, slice, np.ndarray]], np.ndarray, np.ndarray]:
    """The kept instances of :func:`simulate_labels`, each as ``(ys, xs, mask[ys, xs])`` on its
    box grown by :data:`SOFT_MARGIN` (zero beyond it), with detector and mask scores: one
    full-size mask at a time."""
    cfg = config or SimulationConfig()
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    ids = np.asarray(instance_ids)
    if ids.ndim != 2:
        raise ValueError(f"instance_ids must be (H, W), got {ids.shape}")
    h, w = ids.shape
    if others is not None and np.shape(others) != (h, w):
        raise ValueError(f"others must be {(h, w)} like instance_ids, got {np.shape(others)}")
    min_area = max(cfg.min_area, 1)

    def window(m: np.ndarray) -> tuple[slice, slice, np.ndarray] | None:
        if m.sum() < min_area:
            return None  # dropped below
        ys, xs = _bbox(m, SOFT_MARGIN)
        return ys, xs, m[ys, xs].copy()

    windows: list[tuple[slice, slice, np.ndarray] | None] = []
    scores: list[float] = []
    true_any = ids > 0
    for value in np.unique(ids[true_any]) if true_any.any() else []:
        m = ids == value
        area = int(m.sum())
        p_miss = cfg.miss_max / (1.0 + (area / max(cfg.miss_area * h * w, 1e-9)) ** 2)
        if rng.random() < p_miss:
            continue
        if cfg.fill_radius > 0 or cfg.fill_holes:
            m = _fill(m, cfg.fill_radius * _box_diag(m), cfg.fill_holes)
        m = _shift(m, rng, cfg.boundary_shift)
        windows.append(window(m))
        size_term = min(1.0, area / max(cfg.miss_area * h * w * 20, 1.0))
        scores.append(float(np.clip(0.4 + 0.45 * size_term + rng.normal(0, 0.05), 0.36, 0.98)))
    if rng.random() < cfg.false_positive_rate:
        fp = _false_positive(rng, h, w, others if others is None else others & ~true_any)
        if fp is not None:
            windows.append(window(_shift(fp, rng, cfg.boundary_shift)))
            scores.append(float(rng.uniform(0.36, 0.5)))
            del fp
    keep = [i for i, win in enumerate(windows) if win is not None]
    if not keep:  # no mask scores drawn: as before, the generator stops here
        return (h, w), [], np.zeros(0, np.float32), np.zeros(0, np.float32)
    mask_scores = rng.uniform(0.85, 0.98, len(keep)).astype(np.float32)
    kept = [windows[i] for i in keep]
    return (h, w), kept, np.array([scores[i] for i in keep], np.float32), mask_scores  # type: ignore[return-value]


def _box(ys: slice, xs: slice, crop: np.ndarray) -> list[int]:
    """XYXY of the mask ``crop`` placed at ``(ys.start, xs.start)``: its tight box."""
    rows, cols = _bbox(crop, 0)
    return [
        xs.start + cols.start,
        ys.start + rows.start,
        xs.start + cols.stop,
        ys.start + rows.stop,
    ]


def _soft_window(crop: np.ndarray, softness: float = 0.75) -> np.ndarray:
    """``float32`` probability on a mask's window (its box grown by :data:`SOFT_MARGIN`):
    sigmoid of the signed distance to the outline (0 beyond the window, where it is below 1e-18)."""
    sd = _signed_distance(crop)
    return (1.0 / (1.0 + np.exp(-np.clip(sd / softness, -40, 40)))).astype(np.float32, copy=False)


def _shift(mask: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Move the outline by a smooth offset within [-amount, amount] pixels."""
    if amount <= 0 or not mask.any():
        return mask
    ys, xs = _bbox(mask, int(np.ceil(amount)) + 2)
    y0, y1, x0, x1 = ys.start, ys.stop, xs.start, xs.stop
    crop = mask[y0:y1, x0:x1]
    bias = rng.uniform(-0.5, 0.5)
    wobble = _smooth_noise(rng, *crop.shape, cell=max(8.0, 4 * amount))
    offset = amount * np.clip(bias + 0.6 * wobble, -1, 1)
    moved = _signed_distance(crop) + offset > 0
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = moved
    return out


def _false_positive(
    rng: np.random.Generator, h: int, w: int, others: np.ndarray | None
) -> np.ndarray | None:
    """One region of another Others object, or a random elliptical blob."""
    if others is not None and others.any():
        comp, n = ndimage.label(others)
        # pixel counts of the components 1..n (summing a full-size map of ones took a float64
        # copy of the image besides: 290 MB at 4032x3024)
        sizes = np.bincount(comp.ravel(), minlength=n + 1)[1:]
        # objects, not the whole background: between 0.05% and 10% of the image
        ok = np.flatnonzero((sizes >= 5e-4 * h * w) & (sizes <= 0.1 * h * w))
        if ok.size:
            return comp == int(rng.choice(ok)) + 1
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.1, 0.9) * w
    ry, rx = rng.uniform(0.02, 0.08) * h, rng.uniform(0.02, 0.08) * w
    blob = np.zeros((h, w), np.uint8)
    axes = (max(1, round(rx)), max(1, round(ry)))
    cv2.ellipse(blob, (round(cx), round(cy)), axes, 0, 0, 360, 1, thickness=-1)
    return blob.astype(bool)


# -- truth files of a dataset ------------------------------------------------------------------
def read_instance_ids(path: str | os.PathLike) -> np.ndarray:
    """``(H, W) int32`` instance ids from a uint16 (or uint8) PNG; 0 = none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: true instance map not found")
    arr = imread_unchanged(path)  # any file name (cv2.imread crashed on one not UTF-8)
    if arr is None or arr.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel instance-id PNG")
    return arr.astype(np.int32)


def truth_paths(root: Path, class_name: str, split: str, stem: str) -> tuple[Path, Path]:
    """``(instance ids, binary mask)`` truth paths of a class, trying the name, then lower case,
    then any folder naming the same class (``Traffic light/`` for ``traffic light``, as
    ``engine report`` finds the truth it scores: :func:`annotations.taxonomy.class_folder`)."""
    for name in dict.fromkeys((class_name, class_name.lower())):
        inst = root / "new_class_instances" / name / split / f"{stem}.png"
        sem = root / "new_classes" / name / split / f"{stem}.png"
        if inst.is_file() or sem.is_file():
            return inst, sem
    inst_base, sem_base = root / "new_class_instances", root / "new_classes"
    return (
        inst_base / class_folder(inst_base, class_name) / split / f"{stem}.png",
        sem_base / class_folder(sem_base, class_name) / split / f"{stem}.png",
    )


def load_truth(root: Path, class_name: str, split: str, stem: str) -> np.ndarray:
    """True instance ids of one image: the instance map, or connected components of the
    binary truth mask when there is no instance map."""
    inst, sem = truth_paths(root, class_name, split, stem)
    if inst.is_file():
        return read_instance_ids(inst)
    if sem.is_file():
        comp, _ = ndimage.label(read_label(sem) == 1, structure=np.ones((3, 3)))
        return comp.astype(np.int32)
    raise FileNotFoundError(
        f"{inst}: the simulated labeler needs the true masks of {class_name!r} "
        f"(new_class_instances/ or new_classes/ in the dataset, as `engine synth` writes)"
    )


# -- the backend the labeling runner drives ----------------------------------------------------
class SimulatedBackend:
    """``engine label --backend simulated``: no model; true masks of the dataset plus simulated
    Grounded-SAM errors. Options come from ``LabelConfig.extra`` (keys of
    :class:`SimulationConfig`); they are hashed into the run's configuration like any setting.
    """

    name = BACKEND_NAME
    uses_torch = False  # run.json records no torch facts (LabelBackend)

    def __init__(self, config: Any, class_id: int) -> None:
        from engine.datasets import load_spec
        from labeler.backends import refuse_unread

        # what only a model reads (engine label refuses them as options)
        models = ("detector", "segmenter", "detector_revision", "segmenter_revision", "model")
        refuse_unread(config, BACKEND_NAME, (*models, "model_revision"))
        self.config = config
        self.class_id = int(class_id)
        self.class_name = config.cls.name
        self.sim = SimulationConfig.from_dict(dict(config.extra or {}))
        self.spec = load_spec(config.data)
        self.root = self.spec.root
        self.taxonomy = self.spec.taxonomy
        self._listed: dict[Path, dict[str, Path]] = {}  # label folders listed by _label_files

    def identity(self) -> dict[str, Any]:
        return {"backend": BACKEND_NAME, "simulation": dataclasses.asdict(self.sim)}

    def load(self) -> dict[str, Any]:
        """The run's record of what labelled; ``FileNotFoundError`` up front when the dataset
        has no truth of the class at all (else every image would fail alone, saying so)."""
        # the folders truth_paths reads: 'Straßenbahn/' for --class STRASSENBAHN, and 'Vélo/'
        # as macOS writes it (e + U+0301) for --class Vélo, were refused here as no truth
        if not any(
            (base / class_folder(base, self.class_name)).is_dir()
            for base in (self.root / "new_class_instances", self.root / "new_classes")
        ):
            fused = (self.root / FUSE_RECORD).is_file()
            raise FileNotFoundError(
                f"{self.root}: the simulated labeler needs the true masks of "
                f"{self.class_name!r} (new_class_instances/<class>/ or new_classes/<class>/, as "
                "engine synth writes), and this dataset has none"
                + ("; it is a fused dataset: label its source dataset" if fused else "")
            )
        return {
            "backend": BACKEND_NAME,
            "note": "SIMULATED pseudo labels: made from the dataset's true masks with simulated "
            "Grounded-SAM errors; no detector or segmenter was run",
            "simulation": dataclasses.asdict(self.sim),
            "truth": str(self.root / "new_class_instances"),
        }

    def _label_files(self, folder: Path) -> dict[str, Path]:
        """``stem -> path`` of the label PNGs in ``folder``, whatever the case of their suffix
        (``a.PNG``, which the dataset lists and the labeler took for no label, so that its false
        positives were not kept to the parent class), listed once per folder."""
        if folder not in self._listed:  # as the dataset lists them (a spec's label_suffix)
            self._listed[folder] = self.spec.list_labels(folder) if folder.is_dir() else {}
        return self._listed[folder]

    def _others(self, split: str, stem: str, shape: tuple[int, int]) -> np.ndarray | None:
        """Pixels of the parent class (Others) in the dataset's label, when there is one, where
        the false positives land: read where the dataset's spec puts labels (a hard-coded
        ``annotations/`` missed a spec's own folder), a colour-coded one through the taxonomy's
        palette (it failed the image). A single-channel label is read as before, unchecked:
        only its parent pixels are used, so the simulated errors and the images they fail are
        those of the documented rates."""
        from PIL import Image

        from annotations.labelmap import PIL_ERRORS, read_label

        folder = self.spec.label_dir(split)
        path = None if folder is None else folder / f"{stem}{self.spec.label_suffix or '.png'}"
        if path is not None and not path.is_file():  # a.PNG: datasets list any case
            path = self._label_files(folder).get(stem)
        if path is None:
            return None
        try:  # the header says which: one decode (trying unchecked first decoded an RGB twice)
            with Image.open(path) as img:
                colour = img.mode in ("RGB", "RGBA")
        except PIL_ERRORS:  # a decompression bomb too: not an OSError
            colour = False  # unreadable: read_label names the file and the problem
        label = read_label(path, self.taxonomy if colour else None)
        if label.shape != shape:
            return None
        parent = (
            self.taxonomy.id_of(self.config.cls.parent)
            if self.config.cls.parent in self.taxonomy
            else 0
        )
        return label == parent

    def _class_rules(
        self, inst: Instances | CroppedInstances, probs: np.ndarray | None = None
    ) -> tuple[Instances | CroppedInstances, np.ndarray | None]:
        """The class spec's ``min_area`` and ``max_instances`` (``--min-area``,
        ``--max-instances``), as the model backends apply them after deduplication: smaller
        instances dropped, then the best-scored ones kept. The defaults (0, 100) keep every
        simulated instance, so the documented error rates stand."""
        cls = self.config.cls
        keep = np.flatnonzero(inst.areas >= max(cls.min_area, 1))
        if 0 < cls.max_instances < keep.size:
            best = np.argsort(-inst.scores[keep], kind="stable")[: cls.max_instances]
            keep = np.sort(keep[best])
        if keep.size == len(inst):
            return inst, probs
        return inst[keep], None if probs is None else probs[keep]  # cropped: probs inside

    def label(self, batch: list[Any]) -> list[Any]:
        import time

        from labeler.backends import BackendOutput

        outputs = []
        for item in batch:
            t0 = time.perf_counter()
            ids = load_truth(self.root, self.class_name, item.split, item.stem)
            h, w = item.image.shape[:2]
            if ids.shape != (h, w):
                raise ValueError(
                    f"{truth_paths(self.root, self.class_name, item.split, item.stem)[0]}: true "
                    f"mask is {ids.shape[1]}x{ids.shape[0]} but the image is {w}x{h}"
                )
            # the instances inside their windows, as the writer takes them (same files):
            # neither full-size masks and probabilities per instance (60 MB each at 4032x3024)
            # nor a batch of them waiting in the writers' queue
            inst = simulate_cropped(
                ids,
                others=self._others(item.split, item.stem, (h, w)),
                config=self.sim,
                rng=image_rng(self.sim.seed, item.split, item.stem),
                class_id=self.class_id,
                prompt=f"{BACKEND_NAME}:{self.class_name.lower()}",
            )
            inst, _ = self._class_rules(inst)
            outputs.append(
                BackendOutput(instances=inst, timings={"simulate": time.perf_counter() - t0})
            )
        return outputs
