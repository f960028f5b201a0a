"""The labeling backend protocol and its registry.

The runner (:mod:`labeler.run`) owns everything around a backend: listing and sharding images,
resume, decoding threads, the writer queue, the manifest, progress and the summary. A backend
only turns a batch of decoded images into instances::

    class MyBackend:
        name = "my-backend"

        def __init__(self, config: LabelConfig, class_id: int) -> None: ...
        def identity(self) -> dict: ...      # cheap, JSON-able: hashed into the config hash
        def load(self) -> dict: ...           # load models once; info recorded in run.json
        def label(self, batch: list[LoadedImage]) -> list[BackendOutput]: ...

    register_backend("my-backend", MyBackend)

A backend may also define ``prepare(item: LoadedImage) -> None``: it runs in the loader threads
right after decoding (CPU only, thread-safe) and stores model inputs in ``item.prepared`` (e.g.
resized, normalised tensors), so the model thread only batches and runs the models. An
exception in ``prepare`` fails that image.

``label`` returns one :class:`BackendOutput` per input image, in order. When it raises for a
batch, the runner retries the batch's images one at a time, so only the images that fail on
their own are recorded as failed (each with its own reason), and goes on.
The runner merges each output into the semantic label with
:func:`labeler.merge.instances_to_semantic` (so every backend shares the merge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from annotations.instances import Instances
from labeler.crops import CroppedInstances


@dataclass
class LoadedImage:
    """One decoded image of the dataset, with where it comes from."""

    split: str  # dataset split, e.g. "train"
    stem: str  # file stem, the image's key in every output folder
    path: Path  # the image file
    image: np.ndarray  # (H, W, 3) uint8 RGB, EXIF orientation applied
    prepared: dict[str, Any] = field(default_factory=dict)  # filled by the backend's prepare()


@dataclass
class BackendOutput:
    """What a backend found in one image."""

    # kept instances; class_ids = the run's new class id. Either full-resolution Instances (masks
    # (N, H, W)) with ``probs``, or CroppedInstances (masks and probabilities inside their
    # windows; ``probs`` unused), which keeps a 4K image with many instances small.
    instances: Instances | CroppedInstances
    probs: np.ndarray | None = None  # (N, H, W) float16/32 mask probability 0..1; None: certain
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage for this image


@runtime_checkable
class LabelBackend(Protocol):
    """A labeler. A backend may set ``uses_torch = False`` (the simulated one): whether it
    computes with torch decides whether run.json's environment records torch's kernel set,
    threads and GPUs; without the attribute it does."""

    name: str

    def identity(self) -> dict[str, Any]: ...

    def load(self) -> dict[str, Any]: ...

    def label(self, batch: list[LoadedImage]) -> list[BackendOutput]: ...


BackendFactory = Callable[..., LabelBackend]  # (config: LabelConfig, class_id: int) -> backend
BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> BackendFactory:
    """Register ``factory(config, class_id)`` under ``name`` (replacing an earlier one)."""
    BACKENDS[name] = factory
    return factory


# Backends imported on first use (heavy modules stay unloaded until asked for): name ->
# "module:attribute". A new backend adds one line here or calls register_backend at import.
LAZY_BACKENDS: dict[str, str] = {
    "grounded-sam": "labeler.grounded_sam:GroundedSamBackend",
    "sam3": "labeler.sam3:Sam3Backend",  # SAM 3: text prompt -> every instance's mask
    # SIMULATED pseudo labels from a dataset's true masks (engine synth), for demos; no model.
    "simulated": "labeler.simulated:SimulatedBackend",
}


# What run.json records as detector / segmenter of the backends that load neither (engine label
# writes these; a library caller leaving the defaults records the defaults)
NOT_USED = {"simulated": "none (simulated backend)", "sam3": "none (sam3 backend: see model)"}


def refuse_unread(config: Any, backend: str, names: tuple[str, ...]) -> None:
    """``ValueError`` naming the ``LabelConfig`` settings among ``names`` that are set though
    ``backend`` reads none of them: recorded in ``run.json`` and its config hash, a changed one
    relabelled every image for nothing. ``engine label`` refuses them as options before (its
    own words); this holds a library caller to the same."""
    default = {  # a setting left at its default is not "set": detector's is a hub id
        f.name: f.default_factory() if f.default is MISSING else f.default
        for f in (fields(config) if is_dataclass(config) else ())
        if f.default is not MISSING or f.default_factory is not MISSING
    }
    unset = ({}, "", None, NOT_USED.get(backend))
    unread = [
        f"{name}={value!r}"
        for name in names
        if (value := getattr(config, name)) not in unset and value != default.get(name)
    ]
    if unread:
        raise ValueError(
            f"LabelConfig {', '.join(unread)}: backend {backend} reads none of "
            f"{'them' if len(unread) > 1 else 'it'}; leave {'them' if len(unread) > 1 else 'it'} out"
        )


def _resolve(name: str) -> None:
    if name not in BACKENDS and name in LAZY_BACKENDS:
        import importlib

        module, attr = LAZY_BACKENDS[name].split(":")
        register_backend(name, getattr(importlib.import_module(module), attr))


def create_backend(name: str, config: Any, class_id: int) -> LabelBackend:
    """The backend registered as ``name``; an unknown name lists the registered ones."""
    _resolve(name)
    if name not in BACKENDS:
        raise ValueError(
            f"unknown labeling backend {name!r}; registered: {', '.join(sorted(set(BACKENDS) | set(LAZY_BACKENDS)))}"
        )
    return BACKENDS[name](config, class_id)
