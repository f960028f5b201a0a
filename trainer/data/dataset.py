"""The training split as samples (:class:`TrainSet`): an image, its label and source map,
read and augmented by the sample's key, an unreadable one replaced by the next; the
batch put on the device, and the new classes too rare to train on."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from annotations.fileio import UNREADABLE, first_line, read_jsonl
from engine.datasets import (
    DatasetSpec,
    SegDataset,
    check_carried_sources,
    load_spec,
    read_source_map,
    source_dir,
)
from trainer.data.augment import AugmentConfig, augment

# Unreadable samples in a row (in index order, from the one drawn) before training stops: one
# bad file is skipped, a split that cannot be read at all is an error.
SKIP_LIMIT = 8


class TrainSet(Dataset):
    """Augmented samples of one split. Keys are ``(index, seed_key)`` from
    :class:`~trainer.data.loader.StreamSampler`; items are dicts of ``image (3, S, S) uint8 RGB``,
    ``label (S, S) uint8`` (ids, 255 ignore) and ``source (S, S) uint8``: every augmentation ends in
    uint8, so a batch crosses from a loader worker (through ``/dev/shm``) and to the device in 5
    bytes a pixel, not the 28 of a float32 image and two int64 maps; :func:`to_device` converts it
    exactly there."""

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
