"""Hand-built datasets and label runs for the loop tests (annotate, review, report), an
engine command killed at a chosen point (:func:`run_killed`), and a file system without locks
(:func:`no_locks`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from annotations.instances import Instances, write_instances
from annotations.labelmap import write_label
from annotations.taxonomy import MASS13K
from engine.fusion.testing import labeler_run_json


def disk(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def make_instances(masks: list[np.ndarray], scores: list[float] | None = None) -> Instances:
    """Instances from masks, boxes computed from them."""
    if not masks:
        raise ValueError("use Instances.empty")
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    n = len(masks)
    return Instances(
        xyxy=np.array(boxes, np.float32),
        masks=np.stack(masks),
        scores=np.array(scores if scores else [0.9] * n, np.float32),
        mask_scores=np.full(n, 0.8, np.float32),
        class_ids=np.full(n, 7),
        prompts=["bicycle"] * n,
    )


def make_dataset(
    root: Path,
    split: str = "test",
    n: int = 3,
    size: tuple[int, int] = (48, 64),
    seed: int = 0,
    grey: bool = False,
) -> dict[str, np.ndarray]:
    """A MaSS13K-layout dataset with ``n`` random images (H, W = size); returns stem -> image.

    ``grey``: grey gradients instead of colour noise (so that tints are easy to find)."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = {}
    for i in range(n):
        stem = f"img{i:03d}"
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        if grey:
            ramp = np.linspace(60, 190, w, dtype=np.float32)[None, :, None]
            img = np.broadcast_to(ramp, (h, w, 3)).astype(np.uint8)
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "images" / split / f"{stem}.jpg", quality=95)
        label = rng.integers(0, 7, (h, w)).astype(np.uint8)
        write_label(root / "annotations" / split / f"{stem}.png", label)
        out[stem] = img
    return out


def make_run(
    run: Path,
    data_root: Path,
    per_image: dict[str, list[np.ndarray]],
    size: tuple[int, int],
    split: str = "test",
    class_name: str = "Bicycle",
    backend: str = "simulated",
    confidences: dict[str, int] | None = None,
) -> None:
    """A label run: instances, labels (union of instances), confidence maps, run.json."""
    h, w = size
    for stem, masks in per_image.items():
        inst = make_instances(masks) if masks else Instances.empty(h, w)
        write_instances(
            run / "instances" / split / f"{stem}.json",
            inst,
            image=str(data_root / "images" / split / f"{stem}.jpg"),
            split=split,
            class_name=class_name,
            backend=backend,
        )
        label = inst.masks.any(0).astype(np.uint8) if len(inst) else np.zeros((h, w), np.uint8)
        write_label(run / "labels" / split / f"{stem}.png", label)
        conf = np.full((h, w), (confidences or {}).get(stem, 200), np.uint8)
        write_label(run / "confidence" / split / f"{stem}.png", conf)
    taxonomy = MASS13K.with_new_class(class_name)
    doc = labeler_run_json(taxonomy, class_name, backend=backend, data=str(data_root))
    (run / "run.json").write_text(json.dumps(doc))


def saved_figures(monkeypatch, module) -> list:  # noqa: ANN001
    """The matplotlib figures ``module.save_figure`` saves from now on, in order (each saved as
    usual): what a test of a chart looks at."""
    figures: list = []
    save = module.save_figure
    monkeypatch.setattr(
        module, "save_figure", lambda fig, *a, **k: figures.append(fig) or save(fig, *a, **k)
    )
    return figures


def turned_round(monkeypatch) -> None:
    """Every folder listed in the reverse of its sorted order (``os.listdir``, ``os.scandir``:
    ``Path.iterdir``, ``Path.glob`` and ``os.walk`` read through them), whatever order the file
    system keeps (tmpfs lists newest first, ext4 by hash): a test of a sort fails wherever it runs."""
    listdir, scandir = os.listdir, os.scandir

    class Entries:
        def __init__(self, it):
            self.it = it
            self.entries = iter(sorted(it, key=lambda e: e.name, reverse=True))

        def __iter__(self):
            return self.entries

        def __next__(self):
            return next(self.entries)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.it.close()

        def close(self):
            self.it.close()

    monkeypatch.setattr(os, "listdir", lambda p=".": sorted(listdir(p), reverse=True))
    monkeypatch.setattr(os, "scandir", lambda p=".": Entries(scandir(p)))


def no_locks(monkeypatch) -> None:  # noqa: ANN001
    """A file system without locks (NFS without lockd): flock fails with ENOLCK."""
    import errno
    import fcntl

    def refused(*_: object) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", refused)


def damaged_swap_line(staging: Path) -> str:
    """The one line (of ``engine info`` and of the next write) for the staging folder
    ``staging`` whose swap record was damaged by hand."""
    from annotations.fileio import SWAP_RECORD

    root, name = staging.parent, staging.name
    return (
        f"{staging / SWAP_RECORD}: not the record of a swap (a JSON object of two lists of entry "
        f'names, "in" and "out"); an earlier write into {root} was killed while putting its '
        f"files in: move what {name}/ holds into {root} by hand, or remove {name}/ to keep "
        f"{root} as it is, then run again"
    )


# ``python -c KILLED_AT NAME ARGS...``: engine ARGS, killed (SIGKILL) as it renames a file it
# wrote into place whose name, or whose folder's name, is NAME: written, not yet in
KILLED_AT = """
import os, signal, sys
real = os.replace
def replace(src, dst):
    if sys.argv[1] in (os.path.basename(dst), os.path.basename(os.path.dirname(dst))):
        os.kill(os.getpid(), signal.SIGKILL)  # the file written, not yet renamed into place
    real(src, dst)
os.replace = replace
from cli import app
app(sys.argv[2:])
"""


# ``python -c KILLED_UNLINKING PREFIX N ARGS...``: engine ARGS, killed (SIGKILL) as it removes its
# Nth file whose name starts with PREFIX: the N - 1 before it gone, that one not yet
KILLED_UNLINKING = """
import os, signal, sys
real, seen = os.unlink, []
def unlink(path, *args, **kwargs):
    if os.path.basename(os.fspath(path)).startswith(sys.argv[1]):
        seen.append(path)
        if len(seen) == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
    real(path, *args, **kwargs)
os.unlink = unlink
from cli import app
app(sys.argv[3:])
"""


def run_killed(script: str, *argv: str) -> None:
    """``python -c script argv`` in this checkout, which must end killed by SIGKILL (as by
    ``kill -9``) at the point ``script`` chooses (:data:`KILLED_AT`); its stderr where not."""
    killed = subprocess.run(
        [sys.executable, "-c", script, *argv],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr.decode()
