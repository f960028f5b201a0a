"""Small helpers shared by the benchmarks (kept free of library imports, so that a benchmark
whose library code is mid-change does not take the others down with it)."""

from __future__ import annotations

import atexit
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np


def scratch(prefix: str, dir: str | None = None) -> Path:
    """A new folder in ``dir`` (by default the system temp folder), removed when this process
    exits (also on an error or Ctrl-C): a benchmark's images, models and outputs do not pile
    up in /tmp."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def write_images(img_dir: Path, n: int, w: int, h: int, seed: int = 0) -> list[Path]:
    """``n`` synthetic ``w x h`` JPEGs in ``img_dir`` (created); smooth noise compresses like a
    photo, not like white noise. Returns their paths, sorted."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    img_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.integers(0, 255, (max(1, h // 16), max(1, w // 16), 3), dtype=np.uint8)
        Image.fromarray(small).resize((w, h), Image.BILINEAR).save(
            img_dir / f"img{i:03d}.jpg", quality=92
        )
    return sorted(img_dir.glob("*.jpg"))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
