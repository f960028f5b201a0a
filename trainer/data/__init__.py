"""Training data: samples of a MaSS13K-layout or fused dataset, augmented, in a seeded stream.

A fused dataset (``engine fuse``) is a folder with ``dataset.yaml`` + ``taxonomy.json`` and a
source map per image at ``<root>/sources/<split>/<stem>.png`` (0 precise, 1 pseudo, 2 set to
ignore by fusion). A dataset whose taxonomy has new classes must have them (or be trained with
``all_precise``); a plain MaSS13K-layout dataset needs none: every pixel counts as precise.

Augmentation (DESIGN section 4, mmsegmentation order): random short-side resize, random crop with
a maximum one-class share (optionally centred on a new class's pixel), horizontal flip,
photometric distortion.

Determinism: :class:`StreamSampler` yields ``(index, (seed, epoch, position))`` keys; every random
draw of a sample's augmentation comes from ``numpy.random.default_rng(key)``. A sample therefore
depends only on the seed and its position in the stream, not on workers or prefetching, and a
resumed run restarts the stream at the exact position it stopped at.
"""

from __future__ import annotations

import functools
import math
import os
import random
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from annotations.fileio import UNREADABLE, first_line, read_jsonl
from annotations.labelmap import IGNORE
from annotations.numbers import MAX_IMAGE_SIDE, check_numbers, class_ids, is_whole
from engine.datasets import (
    DatasetSpec,
    SegDataset,
    check_carried_sources,
    load_spec,
    read_source_map,
    source_dir,
)
from engine.runinfo import SHM_ADVICE

# Unreadable samples in a row (in index order, from the one drawn) before training stops: one
# bad file is skipped, a split that cannot be read at all is an error.
SKIP_LIMIT = 8

# Batches each loader worker prepares ahead (torch's default, passed explicitly so that
# :func:`shm_shortfall` estimates what the loader really keeps in ``/dev/shm``).
PREFETCH_FACTOR = 2


@dataclass
class AugmentConfig:
    """Training augmentation (defaults: the published recipe at a 1024 crop)."""

    crop: int = 1024  # square crop side in pixels
    short_side_range: tuple[int, int] | None = (
        None  # random short side; None: (1.5, 6) x crop = 1536..6144 at 1024
    )
    max_long_side: int | None = None  # cap on the resized long side; None: 8 x crop = 8192 at 1024
    cat_max_ratio: float = 0.75  # a crop is retried while one class covers more than this share
    crop_tries: int = 10  # retries for the class-share rule (the last try is kept)
    # probability that a crop is centred on a random pixel of a new class (one of the focus
    # classes present, each equally likely) instead of placed uniformly; rare classes then fill
    # enough of the crops to be learnt (bicycles are 2-3% of the demo's pixels)
    class_crop_prob: float = 0.5
    focus_classes: list[int] | None = None  # ids; None: the taxonomy's new classes (with a parent)
    flip: float = 0.5  # probability of a horizontal flip
    photometric: bool = True  # brightness / contrast / saturation / hue jitter (mmseg's)

    def __post_init__(self) -> None:
        check_numbers(self)  # a Python caller's nan or inf (a file's is refused as it is read)
        if self.short_side_range is not None:
            # as TrainConfig.val_size: a caller's (100.7, 200.9) was taken as (100, 200), and
            # (nan, 200) said Python's "cannot convert float NaN to integer"
            sides = list(self.short_side_range)
            if not (
                len(sides) == 2
                and all(is_whole(v) for v in sides)
                and 0 < sides[0] <= sides[1] <= MAX_IMAGE_SIDE
            ):
                raise ValueError(
                    f"short_side_range must be two whole numbers of pixels, 0 < lo <= hi <= "
                    f"{MAX_IMAGE_SIDE:,}, got {sides!r:.80}"
                )
            self.short_side_range = tuple(int(v) for v in sides)  # type: ignore[assignment]
        if self.focus_classes is not None:
            self.focus_classes = class_ids(self.focus_classes, "focus_classes")
        if self.crop < 8:
            raise ValueError(f"crop must be >= 8 pixels, got {self.crop}")
        if not 0.0 <= self.class_crop_prob <= 1.0:
            raise ValueError(f"class_crop_prob must be in 0..1, got {self.class_crop_prob}")

    def short_range(self) -> tuple[int, int]:
        if self.short_side_range is not None:
            return self.short_side_range
        return (self.crop * 3 // 2, self.crop * 6)

    def long_cap(self) -> int:
        return self.max_long_side if self.max_long_side is not None else self.crop * 8


def random_resize(
    image: np.ndarray,
    label: np.ndarray,
    source: np.ndarray,
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize so the short side is uniform in ``cfg.short_range()`` (long side capped).

    ``image`` (H, W, 3) uint8 resized bilinearly; ``label`` and ``source`` (H, W) uint8 nearest.
    """
    h, w = label.shape
    lo, hi = cfg.short_range()
    scale = rng.uniform(lo, hi) / min(h, w)
    scale = min(scale, cfg.long_cap() / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return image, label, source
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    source = cv2.resize(source, size, interpolation=cv2.INTER_NEAREST)
    return image, label, source


def crop_box(
    label: np.ndarray,
    crop: int,
    rng: np.random.Generator,
    cat_max_ratio: float = 0.75,
    tries: int = 10,
    focus: tuple[int, ...] = (),
    focus_prob: float = 0.0,
) -> tuple[int, int]:
    """Top-left ``(y, x)`` of a ``crop``-square crop of an ``(H, W)`` label (H, W >= crop) in which
    no class covers more than ``cat_max_ratio`` of the labelled pixels, if one is found within
    ``tries`` draws (mmseg's rule: at least two classes and max share < ratio); else the last draw.

    With probability ``focus_prob`` (one draw per call, only when ``focus`` ids are given and one
    of them is in the label), every draw centres the crop on a random pixel of a focus class
    (the class picked uniformly among those present, then the pixel), shifted to stay inside
    the label; the class-share rule applies as before."""
    h, w = label.shape
    pixels: list[np.ndarray] = []  # flat indices of each focus class present, ascending ids
    if focus and focus_prob > 0 and rng.random() < focus_prob:
        for c in sorted(set(focus)):
            idx = np.flatnonzero(label == c)  # one pass over the label per focus class
            if idx.size:
                pixels.append(idx)
    y = x = 0
    for _ in range(max(1, tries)):
        if pixels:
            idx = pixels[int(rng.integers(len(pixels)))]
            i = int(idx[int(rng.integers(len(idx)))])
            y = min(max(i // w - crop // 2, 0), h - crop)
            x = min(max(i % w - crop // 2, 0), w - crop)
        else:
            y = int(rng.integers(0, h - crop + 1))
            x = int(rng.integers(0, w - crop + 1))
        if cat_max_ratio >= 1.0:
            break
        counts = np.bincount(label[y : y + crop, x : x + crop].ravel(), minlength=256)[:IGNORE]
        counts = counts[counts > 0]
        if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
            break
    return y, x


def photometric_distortion(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mmseg's PhotoMetricDistortion on ``(H, W, 3) uint8`` RGB: each step with probability 0.5:
    brightness +-32, contrast x[0.5, 1.5] (before or after the HSV steps), saturation
    x[0.5, 1.5], hue +-18 (OpenCV's 0..180 hue scale)."""
    img = image.astype(np.float32)

    def contrast(x: np.ndarray) -> np.ndarray:
        return x * rng.uniform(0.5, 1.5) if rng.random() < 0.5 else x

    if rng.random() < 0.5:
        img = img + rng.uniform(-32, 32)
    contrast_first = rng.random() < 0.5
    if contrast_first:
        img = contrast(img)
    hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    if rng.random() < 0.5:
        hsv[..., 1] = hsv[..., 1] * rng.uniform(0.5, 1.5)
    if rng.random() < 0.5:
        hsv[..., 0] = (hsv[..., 0] + rng.integers(-18, 19)) % 180
    img = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    if not contrast_first:
        img = contrast(img)
    return np.clip(img, 0, 255).astype(np.uint8)


def augment(
    image: np.ndarray,
    label: np.ndarray,
    source: np.ndarray,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    focus: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize, pad (image 0, label 255), crop, flip, distort.

    Args: ``image (H, W, 3) uint8 RGB``, ``label (H, W) uint8`` ids/255, ``source (H, W) uint8``;
    ``focus``: class ids a crop is centred on with probability ``cfg.class_crop_prob``.
    Returns the three arrays at ``crop x crop``.
    """
    image, label, source = random_resize(image, label, source, cfg, rng)
    h, w = label.shape
    ph, pw = max(0, cfg.crop - h), max(0, cfg.crop - w)
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        label = np.pad(label, ((0, ph), (0, pw)), constant_values=IGNORE)
        source = np.pad(source, ((0, ph), (0, pw)))
    y, x = crop_box(
        label, cfg.crop, rng, cfg.cat_max_ratio, cfg.crop_tries, focus, cfg.class_crop_prob
    )
    sl = (slice(y, y + cfg.crop), slice(x, x + cfg.crop))
    image, label, source = image[sl], label[sl], source[sl]
    if rng.random() < cfg.flip:
        image, label, source = image[:, ::-1], label[:, ::-1], source[:, ::-1]
    if cfg.photometric:
        image = photometric_distortion(image, rng)
    return np.ascontiguousarray(image), np.ascontiguousarray(label), np.ascontiguousarray(source)


class TrainSet(Dataset):
    """Augmented samples of one split. Keys are ``(index, seed_key)`` from :class:`StreamSampler`;
    items are dicts of ``image (3, S, S) uint8 RGB``, ``label (S, S) uint8`` (ids, 255 ignore)
    and ``source (S, S) uint8``: every augmentation ends in uint8, so a batch crosses from a
    loader worker (through ``/dev/shm``) and to the device in 5 bytes a pixel, not the 28 of a
    float32 image and two int64 maps; :func:`to_device` converts it exactly there."""

    def __init__(
        self,
        data: str | Path | DatasetSpec | SegDataset,
        split: str,
        cfg: AugmentConfig,
        all_precise: bool = False,
        given: str | None = None,
    ) -> None:
        """``all_precise``: read no source maps, every pixel counts as precise. Without it, a
        dataset whose taxonomy has new classes (a parent set) must have ``sources/<split>/``
        (``ValueError`` naming the folder): its pseudo pixels would silently train as precise.
        ``given``: the dataset as the user gave it (``--data``), which the errors' ``engine
        info`` hint names: a spec file may lie outside its root, where engine info finds no
        dataset; by default ``data`` as a path, else its root."""
        if isinstance(data, SegDataset):
            self.data = data
        else:
            spec = data if isinstance(data, DatasetSpec) else load_spec(data)
            self.data = SegDataset(spec, split)
        if given is None:
            given = str(data) if isinstance(data, (str, Path)) else str(self.data.spec.root)
        self.given = given
        self.data.spec.require_labels("training")
        self.cfg = cfg
        self.sources = source_dir(self.data.spec, split)
        self.has_sources = not all_precise and self.sources.is_dir()
        new = [c for c in self.data.taxonomy if c.parent is not None]
        if new and not all_precise and not self.has_sources:
            raise ValueError(
                f"{self.sources}: no source maps, but the taxonomy has new classes "
                f"({', '.join(c.name for c in new)}); fuse with `engine fuse`, or pass "
                "--all-precise (all_precise: true) to train every pixel as precise"
            )
        if self.has_sources:  # an older engine's fusion onto a fused dataset: refused
            check_carried_sources(self.data, self.sources)
        focus = cfg.focus_classes if cfg.focus_classes is not None else [c.id for c in new]
        self.focus: tuple[int, ...] = tuple(int(c) for c in focus)
        k = self.data.taxonomy.num_classes
        if unknown := [c for c in self.focus if not 0 <= c < k]:  # no crop would centre there
            raise ValueError(
                f"augment.focus_classes: {', '.join(map(str, unknown))} is no class id of "
                f"{self.data.spec.root} (0..{k - 1}: {self.data.taxonomy.listed()})"
            )
        if len(self.data) == 0:
            raise ValueError(f"{self.data.spec.image_dir(split)}: split {split!r} has no images")

    def __len__(self) -> int:
        return len(self.data)

    @property
    def taxonomy(self):
        return self.data.taxonomy

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Un-augmented ``(image, label, source)`` of sample ``index``."""
        sample = self.data[index]
        image, label = self.data.load_pair(sample)
        if self.has_sources:
            try:
                source = read_source_map(self.sources / f"{sample.stem}.png", label.shape)
            except FileNotFoundError as e:  # engine fuse killed between a label and its map
                hint = self.data.spec.unfinished_fusion()  # how engine info says to go on
                raise FileNotFoundError(first_line(e) + hint) from None
        else:
            source = np.zeros_like(label)
        return image, label, source

    def __getitem__(self, key: tuple[int, tuple[int, ...]]) -> dict[str, torch.Tensor | str]:
        """The augmented sample ``index`` of ``key``. A sample that cannot be read is replaced
        by the next readable one in index order, augmented with the same draws, so the stream
        stays deterministic and one bad file does not stop a run; ``"skipped"`` holds the
        problems met, one line each (``""`` when none), for the training loop to report.

        Raises:
            ValueError: :data:`SKIP_LIMIT` samples in a row cannot be read (the first named).
        """
        index, seed_key = key
        rng = np.random.default_rng(list(seed_key))
        problems: list[str] = []
        n = len(self.data)
        for i in range(index, index + min(n, SKIP_LIMIT)):
            try:
                loaded = self.load(i % n)
                break
            except UNREADABLE as e:
                problems.append(first_line(e))
        else:
            more = (
                f"; and the next {len(problems) - 1} images of split {self.data.split!r} cannot "
                f"be read either: `engine info {shlex.quote(str(self.given))}` lists every problem"
            )
            raise ValueError(problems[0] + (more if len(problems) > 1 else ""))
        image, label, source = augment(*loaded, self.cfg, rng, self.focus)
        return {
            "image": torch.from_numpy(image).permute(2, 0, 1).contiguous(),
            "label": torch.from_numpy(label),
            "source": torch.from_numpy(source),
            "skipped": "\n".join(problems),
        }


def to_device(
    batch: dict[str, torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A collated batch's ``(images (B, 3, S, S) float32 0..255, labels (B, S, S) int64, sources
    (B, S, S) int64)`` on ``device``: copied as uint8 (from pinned memory, without blocking, on a
    GPU), converted there. Exact: every uint8 value is a float32 and an int64, so the model and
    the loss get the same numbers as from batches collated in those dtypes."""
    images = batch["image"].to(device, non_blocking=True).float()
    labels = batch["label"].to(device, non_blocking=True).long()
    sources = batch["source"].to(device, non_blocking=True).long()
    return images, labels, sources


def rare_new_classes(dataset: TrainSet) -> list[str]:
    """Warnings for the new classes a fused dataset's training split holds in no image, or in one:
    the model cannot learn such a class, and its scores will mean nothing (before, training went
    on without a word). Read from the fusion's ``manifest.jsonl`` (each image's claimed pixels),
    nothing decoded; a class is judged only when every training image has a record of it (a
    dataset without a manifest, or a class carried from an earlier fusion, is not checked)."""
    data = dataset.data
    new = [c.name for c in data.taxonomy if c.parent is not None]
    manifest = data.spec.root / "manifest.jsonl"
    if not new or not manifest.is_file():
        return []
    latest = {}
    for rec in read_jsonl(manifest):  # a hand-edited line that is JSON but no object: skipped
        if isinstance(rec, dict) and rec.get("split") == data.split and rec.get("status") == "ok":
            classes = rec.get("classes")
            latest[rec.get("stem")] = {  # class -> its claimed pixels
                name: n
                for name, entry in (classes.items() if isinstance(classes, dict) else ())
                if isinstance(entry, dict)
                and (n := _count(entry.get("claimed_pixels", 0))) is not None
            }
    stems = [s.stem for s in data.samples]
    out = []
    for name in new:
        if not all(name in latest.get(stem, {}) for stem in stems):
            continue
        holding = [st for st in stems if latest[st][name] > 0]
        if len(holding) > 1:
            continue
        where = f"only 1 ({holding[0]})" if holding else "none"
        out.append(
            f"{data.spec.label_dir(data.split)}: {name} has pixels in {where} of the "
            f"{len(stems):,} training images of split {data.split!r} ({manifest.name}): the "
            + (
                "model can hardly learn it"
                if holding
                else "model cannot learn it, and its scores will mean nothing"
            )
        )
    return out


def _count(value: object) -> int | None:
    """A manifest's pixel count as an int; None for anything else (a hand-edited file)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return None


class StreamSampler(Sampler):
    """An endless, seeded stream of ``(index, (seed, epoch, position))`` keys for one rank.

    Epoch ``e`` is a permutation drawn from ``(seed, e)``; rank ``r`` of ``world`` takes every
    ``world``-th element from ``r`` (the list is padded by wrapping, as DistributedSampler does),
    so ranks see disjoint shards. ``start`` skips that many keys of this rank's stream (resume).
    """

    def __init__(
        self, n: int, seed: int = 0, rank: int = 0, world: int = 1, start: int = 0
    ) -> None:
        if n < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.n, self.seed, self.rank, self.world, self.start = n, seed, rank, world, start
        self.per_rank = math.ceil(n / world)

    def epoch_indices(self, epoch: int) -> list[int]:
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n).tolist()
        total = self.per_rank * self.world
        perm = (perm * math.ceil(total / self.n))[:total]
        return perm[self.rank :: self.world]

    def __iter__(self) -> Iterator[tuple[int, tuple[int, int, int]]]:
        pos = self.start
        while True:
            epoch, offset = divmod(pos, self.per_rank)
            indices = self.epoch_indices(epoch)
            for i in range(offset, self.per_rank):
                yield indices[i], (self.seed, epoch, self.rank * self.per_rank + i)
            pos = (epoch + 1) * self.per_rank


def seed_worker(worker_id: int, parent: int | None = None) -> None:
    """DataLoader ``worker_init_fn``: seed Python, NumPy and torch per worker from torch's seed.
    With ``parent`` (the pid of the process that made the loader, :func:`make_loader`), the
    worker ends once that process is gone (:func:`engine.parallel.exit_with_parent`; under
    ``forkserver`` its parent is the fork server): a worker a rank spawns (seconds of imports)
    as the rank is killed (its peer failed: the parent ends the others with SIGKILL) recorded
    its new parent, init, as its loader's, and torch's watchdog never ended it: it kept the
    command's output open, and a caller reading that waited for ever (crash-injection sweep
    of ``--processes 2 --workers 1``).
    A worker keeps torch's SIGTERM handling (its parent's SIGTERM ends it quietly, anyone
    else's kills it): one that ignored SIGTERM outlived its parent's exit, which ends it with
    SIGTERM, and the exit hung. A scheduler's SIGTERM to the whole process group so ends the
    workers mid-step; ``engine train`` says so (:mod:`engine.stopping`). SIGHUP, which a
    dropped ssh session sends to the whole process group, is ignored: ``engine train`` stops
    at the step's end and saves it, then ends its workers (a parent gone otherwise: torch's
    watchdog ends them within seconds). Before, they died of it mid-step, and the run of
    ``--processes 2 --workers 1`` stopped with no checkpoint saved."""
    from engine import stopping

    stopping.ignore_hangups()
    if parent is not None:
        from engine.parallel import exit_with_parent

        exit_with_parent(parent)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(
    dataset: TrainSet,
    batch_size: int,
    seed: int,
    num_workers: int = 0,
    rank: int = 0,
    world: int = 1,
    start: int = 0,
    pin_memory: bool | None = None,
) -> DataLoader:
    """An endless DataLoader over ``dataset`` starting ``start`` samples into this rank's stream.
    ``pin_memory``: page-locked batches for a copy to the GPU (None: when CUDA is available);
    CPU training passes False, so its processes do not start CUDA on a GPU machine."""
    sampler = StreamSampler(len(dataset), seed, rank, world, start)
    if num_workers > 0:  # the workers' queues use it: started here, so SIGHUP leaves it running
        from engine import stopping

        stopping.start_resource_tracker()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=functools.partial(seed_worker, parent=os.getpid()),
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
        prefetch_factor=PREFETCH_FACTOR if num_workers > 0 else None,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=True,
    )


def shm_shortfall(
    batch_size: int, crop: int, num_workers: int, processes: int = 1, shm: str = "/dev/shm"
) -> str | None:
    """A warning when the loader workers' batches will not fit in the free space of ``shm``
    (Docker's default is 64 MB): with too little, training failed only at its first batch,
    out of shared memory. The estimate: ``processes`` ranks x ``num_workers`` x
    :data:`PREFETCH_FACTOR` batches of ``batch_size`` crops of 5 bytes a pixel (uint8 image,
    label and source map); generous (torch may free a batch before the next is made), so a
    warning, not an error. None with no workers, or without ``shm`` (not Linux)."""
    if num_workers <= 0:
        return None
    try:
        free = shutil.disk_usage(shm).free
    except OSError:  # no /dev/shm: macOS, Windows
        return None
    need = processes * num_workers * PREFETCH_FACTOR * batch_size * crop * crop * 5
    if need <= free:
        return None
    workers = f"{num_workers} loader worker{'s' if num_workers != 1 else ''}"
    ranks = f" x {processes} processes" if processes > 1 else ""
    return (
        f"{shm}: {free / 1e6:,.0f} MB free, but {workers}{ranks} may keep about "
        f"{need / 1e6:,.0f} MB of batches there ({PREFETCH_FACTOR} ahead each, {batch_size} "
        f"crops of {crop} px, 5 bytes a pixel): training may fail at its first batch, out of "
        "shared memory (exit code 71); " + SHM_ADVICE.format(mounted="")
    )
