"""Write a synthetic dataset to disk in the MaSS13K layout.

Layout under ``ROOT``::

    images/<split>/<stem>.jpg                            RGB, Pillow JPEG at a fixed quality
    annotations/<split>/<stem>.png                       7-class ids 0..6, (H, W) uint8
    new_classes/<name>/<split>/<stem>.png                1 = the class, 0 = not
    new_class_instances/<name>/<split>/<stem>.png        uint16 instance ids, 0 = none, 1..N
    synth.json                                           config, generator version, counts,
                                                         code versions (git commit, packages)
    synth.partial.json                                   while a run is unfinished: its config

Every file is written atomically, and the bytes depend only on the configuration. A run
resumes: the scenes already on disk from a run with the same size, seed, JPEG quality and
generator version are kept (their counts are read back), and only the missing ones are drawn.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from annotations.fileio import atomic_write_bytes, atomic_write_json, read_json
from annotations.labelmap import imread_unchanged, write_label
from annotations.taxonomy import MASS13K
from engine.datasets import SYNTH_RECORD, SYNTH_UNFINISHED
from engine.progress import track
from engine.runinfo import versions
from engine.runlock import holds_lock
from engine.synth.config import (
    GENERATOR_VERSION,
    NEW_CLASSES,
    SCENE_KEYS,
    SPLITS,
    SynthConfig,
    differences,
)
from engine.synth.scene import render_scene
from engine.text import counted


def stem_of(split: str, index: int) -> str:
    """File stem of image ``index`` of ``split``: ``synth_train_0000``."""
    return f"synth_{split}_{index:04d}"


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an ``(H, W, 3) uint8`` RGB image (Pillow, fixed settings: deterministic)."""
    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def encode_png16(array: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W) uint16`` array (instance ids)."""
    if array.dtype != np.uint16 or array.ndim != 2:
        raise ValueError(f"expected (H, W) uint16, got {array.shape} {array.dtype}")
    ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError(f"PNG encoding failed for array {array.shape}")
    return buf.tobytes()


def _folders(root: Path, split: str) -> list[Path]:
    dirs = [root / "images" / split, root / "annotations" / split]
    for name in NEW_CLASSES:
        dirs += [root / "new_classes" / name / split, root / "new_class_instances" / name / split]
    return dirs


def _remove_stale(root: Path, keep: set[str]) -> set[str]:
    """Delete generator files (``synth_*``) of an earlier, larger run that this run did not
    write; returns the stems of the scenes removed."""
    removed = set()
    for split in SPLITS:
        for folder in _folders(root, split):
            if folder.is_dir():
                for p in sorted(folder.glob("synth_*")):
                    if p.is_file() and p.stem not in keep:
                        p.unlink()
                        removed.add(p.stem)
    return removed


RECORD = SYNTH_RECORD  # a finished run: config, generator version, counts
UNFINISHED = SYNTH_UNFINISHED  # a run under way or interrupted: its config (synth.partial.json)


def recorded(root: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """``(path, record)`` of what the generator files under ``root`` were drawn with: an
    unfinished run's ``synth.partial.json``, else ``synth.json``; None when neither exists.
    A record that is not a JSON object is an error naming the file."""
    for name in (UNFINISHED, RECORD):
        path = Path(root) / name
        if path.is_file():
            record = read_json(path, name)
            if not isinstance(record, dict):
                raise ValueError(f"{path}: not a generator record (expected a JSON object)")
            return path, record
    return None


def _drawn_otherwise(root: Path, cfg: SynthConfig) -> str | None:
    """None when the scenes under ``root`` were drawn as ``cfg`` would draw them (same
    generator version, size, seed and JPEG quality), so that a file already there can be kept;
    else how they were drawn: "size 128x96, not 256x192", "by an unknown run"."""
    try:
        found = recorded(root)
    except ValueError:  # unreadable: drawn by an unknown run
        found = None
    config = found[1].get("config") if found else None
    if not isinstance(config, dict):
        return "by an unknown run"
    if found[1].get("version") != GENERATOR_VERSION:
        return f"generator version {found[1].get('version')}, not {GENERATOR_VERSION}"
    return "; ".join(differences(config, cfg, SCENE_KEYS)) or None


def _paths(root: Path, split: str, stem: str) -> dict[str, Path]:
    """The files of one scene: ``image``, ``label`` and per new class ``mask/<name>`` and
    ``instances/<name>``."""
    paths = {
        "image": root / "images" / split / f"{stem}.jpg",
        "label": root / "annotations" / split / f"{stem}.png",
    }
    for name in NEW_CLASSES:
        paths[f"mask/{name}"] = root / "new_classes" / name / split / f"{stem}.png"
        paths[f"instances/{name}"] = root / "new_class_instances" / name / split / f"{stem}.png"
    return paths


def _kept_instances(paths: dict[str, Path], size: tuple[int, int]) -> dict[str, np.ndarray] | None:
    """The instance maps of a scene already on disk, or None when a file is missing or its
    instance map is not an ``(H, W) uint16`` PNG of ``size``: the scene is drawn again."""
    if not all(p.is_file() for p in paths.values()):
        return None
    instances = {}
    for name in NEW_CLASSES:
        inst = imread_unchanged(paths[f"instances/{name}"])  # any --out name (not cv2.imread)
        if inst is None or inst.dtype != np.uint16 or inst.shape != (size[1], size[0]):
            return None
        instances[name] = inst
    return instances


def _write_scene(paths: dict[str, Path], cfg: SynthConfig, split: str, index: int):
    """Draw scene ``index`` of ``split`` and write its files; returns its instance maps."""
    scene = render_scene(cfg.seed, split, index, cfg.size)
    atomic_write_bytes(paths["image"], encode_jpeg(scene.image, cfg.jpeg_quality))
    write_label(paths["label"], scene.label)
    for name in NEW_CLASSES:
        inst = scene.instances[name]
        write_label(paths[f"mask/{name}"], (inst > 0).astype(np.uint8))
        atomic_write_bytes(paths[f"instances/{name}"], encode_png16(inst))
    return scene.instances


@holds_lock("engine synth", lambda c: c.out, own=(RECORD, UNFINISHED))
def generate(
    cfg: SynthConfig,
    progress: bool = True,
    kept: list[str] | None = None,
    replaced: list[str] | None = None,
) -> Path:
    """Render and write the dataset ``cfg`` describes; returns its root ``cfg.out``.
    ``kept``, when given, receives the stems of the scenes kept from an earlier run;
    ``replaced``, one line for each kind of earlier scene this run replaced or removed
    (label runs and fused datasets made from them no longer match the folder).

    Resumable: scenes already written by a run with the same size, seed and JPEG quality are
    kept, and the missing ones are drawn. Over a folder drawn with other settings (or by an
    unknown run) every generator file is drawn anew. Generator files this configuration does
    not produce (an earlier, larger run's) are removed, so the folder always matches
    ``synth.json``; ``synth.partial.json`` marks a run that has not finished.
    """
    # holds_lock's check_output_folder refused a file, another engine output (a dataset drawn
    # into a label run would mix with it) and another dataset's root
    root = Path(cfg.out)
    jobs = [(split, i) for split, n in cfg.counts().items() for i in range(n)]
    stats: dict[str, dict[str, Any]] = {
        split: {
            "images": n,
            **{name: {"images_with": 0, "instances": 0, "pixels": 0} for name in NEW_CLASSES},
        }
        for split, n in cfg.counts().items()
    }
    otherwise = _drawn_otherwise(root, cfg)
    keep = otherwise is None
    notes = replaced if replaced is not None else []
    wanted = {stem_of(split, i) for split, i in jobs}
    beyond: set[str] = set()  # earlier scenes this run's counts do not reach: removed
    if not keep:
        # the finished record becomes the unfinished mark before a scene goes: a rerun with
        # other settings killed while removing the earlier scenes left synth.json, and engine
        # info read a finished dataset (exit 0) missing some; it still says what the scenes
        # left were drawn with (a rerun with those settings keeps them)
        if (root / RECORD).is_file():
            os.replace(root / RECORD, root / UNFINISHED)
        gone = _remove_stale(root, set())  # drawn otherwise: nothing there may be kept
        if redrawn := gone & wanted:
            notes.append(
                f"{counted(len(redrawn), 'earlier scene')} drawn otherwise ({otherwise}) replaced"
            )
        beyond = gone - wanted
    record = {
        "generator": "engine.synth",
        "version": GENERATOR_VERSION,
        "config": cfg.to_dict(),
        "new_classes": list(NEW_CLASSES),
        "taxonomy": MASS13K.to_dict(),
        # numpy draws the scenes, OpenCV and Pillow encode them: their versions and the
        # commit decide the bytes a rerun from this record gives
        "versions": versions(),
    }
    # first the unfinished mark, then the finished record goes: a run stopped at any point
    # leaves a record of what its files were drawn with
    atomic_write_json(root / UNFINISHED, record)
    (root / RECORD).unlink(missing_ok=True)
    for split, i in track(jobs, "synth", unit="img", enabled=progress):
        paths = _paths(root, split, stem_of(split, i))
        instances = _kept_instances(paths, cfg.size) if keep else None
        if instances is None:
            instances = _write_scene(paths, cfg, split, i)
        elif kept is not None:
            kept.append(stem_of(split, i))
        for name in NEW_CLASSES:
            inst = instances[name]
            n_inst = int(inst.max())
            s = stats[split][name]
            s["images_with"] += int(n_inst > 0)
            s["instances"] += n_inst
            s["pixels"] += int((inst > 0).sum())
    beyond |= _remove_stale(root, wanted)
    if beyond:
        notes.append(f"{counted(len(beyond), 'earlier scene')} beyond this run's counts removed")
    atomic_write_json(root / RECORD, {**record, "splits": stats})
    (root / UNFINISHED).unlink()
    return root
