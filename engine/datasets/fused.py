"""What a fused dataset holds beyond its labels: each pixel's source map (precise, pseudo,
ignored), the fusion's state checked before scoring, and the subset it fused as corrections
(:func:`fused_as_corrections`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from annotations.fileio import FUSE_RECORD, UNREADABLE, fused_source
from annotations.labelmap import read_label
from engine.datasets.layout import DatasetSpec, check_folder_finished
from engine.datasets.samples import SegDataset, read_sample_label
from engine.datasets.spec import load_spec
from engine.datasets.state import FusionState


def check_fused_finished(folder: str | os.PathLike, command: str) -> FusionState | None:
    """Refuse a fused dataset given to be scored (``engine compare --source``, ``engine report
    --fused``) whose fusion did not finish (:meth:`DatasetSpec.check_not_stopped`): before,
    both scored the dataset ``engine info`` calls unfinished (exit 1) and ``engine train``
    refuses. Another dataset is not asked; then the folder is given to
    :func:`check_folder_finished` (``F/labels/val`` of a fusion stopped, a folder in a synth
    dataset), with the fusion's state read here, not read again. Returns that state (None
    for a folder that is no fused dataset), which :func:`fused_as_corrections` takes rather
    than reading ``fuse.json`` again."""
    fusion = None
    if (Path(folder) / FUSE_RECORD).is_file():
        try:
            spec = load_spec(folder)
        except (OSError, ValueError):  # no dataset to ask: its label maps are read as given
            spec = None
        if spec is not None:
            fusion = spec.check_not_stopped(command)
    check_folder_finished(folder, command, fusion)
    return fusion


# What a fused dataset's source map says of each pixel (engine fuse writes them, training reads
# them): its value, and its name for reports.
SOURCE_PRECISE = 0  # the fused pixel is the precise label (255s of the precise label included)
SOURCE_PSEUDO = 1  # the fused pixel is a new class, taken from its pseudo label
SOURCE_IGNORED = 2  # fusion set the pixel to 255 (uncertain pseudo pixel, tie between classes)
SOURCE_NAMES = ("precise", "pseudo", "ignored by fusion")  # by value


def source_dir(spec: DatasetSpec, split: str) -> Path:
    """Where a fused dataset keeps ``split``'s source maps: ``<root>/sources/<split>``."""
    return spec.root / "sources" / split


def read_source_map(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """The source map at ``path`` (0 precise, 1 pseudo, 2 ignored by fusion), checked against
    its label's ``shape`` (H, W); ``ValueError`` / ``FileNotFoundError`` naming the file (a
    missing one as a source map: it read "label file not found")."""
    try:
        source = read_label(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: source map not found") from None
    if source.shape != tuple(shape):
        raise ValueError(
            f"{path}: source map is {source.shape[1]}x{source.shape[0]}, "
            f"label is {shape[1]}x{shape[0]}"
        )
    if source.size and int(source.max()) >= len(SOURCE_NAMES):
        raise ValueError(f"{path}: source values must be 0, 1 or 2, found {int(source.max())}")
    return source


def check_carried_sources(data: SegDataset, sources: Path) -> None:
    """Refuse a fused dataset whose source maps mark the pixels of a class fused before as
    precise: a class fused onto a fused dataset (``fuse.json`` fused Car, the taxonomy also
    holds Bicycle) by an engine from before fusion carried the input's source maps over wrote
    Bicycle's pseudo and ignored pixels as precise (0), and training took its pseudo labels for
    precise ones. Fusion writes a new class's pixels as pseudo, so one such pixel is the old
    fusion's mark; the first image holding those classes decides (a few reads), and a dataset
    fused in one call, or without a record, reads none. ``ValueError`` naming the file."""
    record = data.spec.fuse_record() or {}  # none, or not one to read: nothing says how
    try:
        fused = {p.get("class") for p in record["inputs"]["pseudo"] if isinstance(p, dict)}
    except (KeyError, TypeError):  # JSON values; .get only on dicts (no AttributeError)
        return
    before = [c for c in data.taxonomy if c.parent is not None and c.name not in fused]
    if not fused or not before:
        return
    ids = [c.id for c in before]
    for sample in data.samples:
        path = sources / f"{sample.stem}.png"
        try:
            label = read_sample_label(sample, data.taxonomy)
            source = read_source_map(path, label.shape)
        except UNREADABLE:
            continue  # training names the file when it gets there
        held = np.isin(label, ids)
        if not held.any():
            continue
        if (source[held] == SOURCE_PRECISE).any():
            names = ", ".join(c.name for c in before)
            raise ValueError(
                f"{path}: {names} pixels are marked precise: {data.spec.root} was fused onto a "
                f"fused dataset ({record['inputs'].get('data')}) by an engine from before "
                f"fusion carried its source maps over, so training would take the pseudo "
                f"labels of {names} for precise ones; run the same engine fuse command again "
                "(it fuses every image anew), and train again what was trained on it"
            )
        return


# fusions followed back through the datasets each was fused from (a class added one after
# another makes a chain; a record naming itself would loop)
FUSION_CHAIN_LIMIT = 16


def fused_as_corrections(
    spec: DatasetSpec, subset: Path, fusion: FusionState | None = None
) -> Path | None:
    """The ``fuse.json`` that fused the subset at ``subset`` as corrections into the dataset
    ``spec`` (``engine fuse --corrections``; the fusion chain followed back through the
    dataset each was fused from, Car fused onto Bicycle's dataset, found as
    :func:`annotations.fileio.fused_source` finds it: beside the fused one where the two moved
    or were copied together), matched by the subset's resolved path or its ``subset.json``'s
    hash (a subset moved since). None when none did, or nothing is recorded. ``fusion``:
    ``spec``'s fusion state, read already (:func:`check_fused_finished`'s)."""
    try:
        digest = hashlib.sha256((subset / "subset.json").read_bytes()).hexdigest()
    except OSError:
        digest = None
    here, record = spec.root, (fusion.record if fusion is not None else spec.fuse_record())
    for _ in range(FUSION_CHAIN_LIMIT):
        inputs = (record or {}).get("inputs")
        if not isinstance(inputs, dict):
            return None
        for c in inputs.get("corrections") or ():
            if not isinstance(c, dict):
                continue
            at = c.get("path_resolved")
            if (digest is not None and c.get("subset_json_sha256") == digest) or (
                isinstance(at, str) and Path(at).resolve() == subset.resolve()
            ):
                return Path(here) / FUSE_RECORD
        # the dataset it was fused from, where it is now: before the forty-sixth round the
        # absolute path recorded, so a project moved (mv) lost the chain there and a copy
        # followed the original's
        if (found := fused_source(record, here)) is None:
            return None
        here = found
        record = DatasetSpec(root=here).fuse_record()
    return None
