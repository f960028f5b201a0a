"""Write a synthetic dataset to disk in the MaSS13K layout.

Layout under ``ROOT``::

    images/<split>/<stem>.jpg                            RGB, Pillow JPEG at a fixed quality
    annotations/<split>/<stem>.png                       7-class ids 0..6, (H, W) uint8
    new_classes/<name>/<split>/<stem>.png                1 = the class, 0 = not
    new_class_instances/<name>/<split>/<stem>.png        uint16 instance ids, 0 = none, 1..N
    synth.json                                           config, generator version, counts

Every file is written atomically, and the bytes depend only on the configuration.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from annotations.fileio import atomic_write_bytes, atomic_write_json
from annotations.labelmap import write_label
from annotations.taxonomy import MASS13K
from engine.progress import track
from engine.synth.config import GENERATOR_VERSION, NEW_CLASSES, SPLITS, SynthConfig
from engine.synth.scene import render_scene


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


def _remove_stale(root: Path, keep: set[str]) -> None:
    """Delete generator files (``synth_*``) of an earlier, larger run that this run did not write."""
    for split in SPLITS:
        for folder in _folders(root, split):
            if folder.is_dir():
                for p in sorted(folder.glob("synth_*")):
                    if p.is_file() and p.stem not in keep:
                        p.unlink()


def generate(cfg: SynthConfig, progress: bool = True) -> Path:
    """Render and write the dataset ``cfg`` describes; returns its root ``cfg.out``.

    Existing files of the same names are overwritten; generator files of an earlier run that
    this configuration does not produce are removed, so the folder always matches ``synth.json``.
    """
    root = Path(cfg.out)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root}: output exists and is not a folder")
    jobs = [(split, i) for split, n in cfg.counts().items() for i in range(n)]
    stats: dict[str, dict[str, Any]] = {
        split: {
            "images": n,
            **{name: {"images_with": 0, "instances": 0, "pixels": 0} for name in NEW_CLASSES},
        }
        for split, n in cfg.counts().items()
    }
    width, height = cfg.size
    for split, i in track(jobs, "synth", unit="img", enabled=progress):
        scene = render_scene(cfg.seed, split, i, (width, height))
        stem = stem_of(split, i)
        atomic_write_bytes(
            root / "images" / split / f"{stem}.jpg", encode_jpeg(scene.image, cfg.jpeg_quality)
        )
        write_label(root / "annotations" / split / f"{stem}.png", scene.label)
        for name in NEW_CLASSES:
            inst = scene.instances[name]
            mask = (inst > 0).astype(np.uint8)
            write_label(root / "new_classes" / name / split / f"{stem}.png", mask)
            atomic_write_bytes(
                root / "new_class_instances" / name / split / f"{stem}.png", encode_png16(inst)
            )
            n_inst = int(inst.max())
            s = stats[split][name]
            s["images_with"] += int(n_inst > 0)
            s["instances"] += n_inst
            s["pixels"] += int(mask.sum())
    _remove_stale(root, {stem_of(split, i) for split, i in jobs})
    atomic_write_json(
        root / "synth.json",
        {
            "generator": "engine.synth",
            "version": GENERATOR_VERSION,
            "config": cfg.to_dict(),
            "new_classes": list(NEW_CLASSES),
            "taxonomy": MASS13K.to_dict(),
            "splits": stats,
        },
    )
    return root
