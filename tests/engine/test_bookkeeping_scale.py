"""The bookkeeping around the models grows with the images, never faster (MaSS13K: 13,000 a run).

Measured in the fifty-fifth round (docs/labeler.md, "Cost per image at MaSS13K's count"): engine
label, its resume, engine fuse, its resume and engine info cost the same per image at 1,000 and
4,000 images. What would make them super-linear is a record read, rewritten or a folder listed
per image (a resume that rereads the manifest for each image, a run record rewritten after each
one): these count them, at two dataset sizes, rather than timing anything."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import pytest

import annotations.fileio as fileio
from engine.synth import SynthConfig, generate

SIZES = (3, 6)  # test images of the two datasets


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[int, Path]:
    base = tmp_path_factory.mktemp("scale")
    return {
        n: generate(
            SynthConfig(out=base / f"d{n}", train=0, val=0, test=n, size=(64, 64)), progress=False
        )
        for n in SIZES
    }


class Io:
    """Counts, per phase, the records read (files read through ``annotations.fileio`` that lie
    directly in a run's, a fused dataset's or the dataset's folder: manifest.jsonl, run.json,
    fuse.json ...), the folders listed and the files renamed into place (atomic writes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, roots: set[Path]) -> None:
        self.roots = {r.resolve() for r in roots}
        self.counts: Counter = Counter()
        self.phase = ""
        self._lock = threading.Lock()  # the labeler's writers run in threads
        for module, name, kind in (
            (fileio, "read_bytes", "record reads"),
            (os, "scandir", "listings"),
            (os, "listdir", "listings"),
            (os, "replace", "renames"),
        ):
            monkeypatch.setattr(module, name, self._counting(getattr(module, name), kind))

    def _counting(self, fn, kind: str):  # noqa: ANN001, ANN202
        def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            path = args[0] if args else "."
            if kind != "record reads" or Path(path).resolve().parent in self.roots:
                with self._lock:
                    self.counts[(self.phase, kind)] += 1
            return fn(*args, **kwargs)

        return counted

    def of(self, phase: str) -> dict[str, int]:
        return {k: v for (p, k), v in self.counts.items() if p == phase}


def _run_all(root: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Io:
    from engine.fusion.run import FuseConfig, fuse
    from engine.info import label_run_stats
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import run_labeling

    run, fused = tmp / "run", tmp / "fused"
    cfg = LabelConfig(data=str(root), cls=ClassSpec("Bicycle"), out=str(run), backend="simulated",
                      progress=False)  # fmt: skip
    fcfg = FuseConfig(data=root, pseudo=(run,), out=fused, progress=False)
    io = Io(monkeypatch, {root, run, fused})
    for phase, call in (
        ("label", lambda: run_labeling(cfg)),
        ("label again", lambda: run_labeling(cfg)),
        ("fuse", lambda: fuse(fcfg)),
        ("fuse again", lambda: fuse(fcfg)),
        ("info", lambda: label_run_stats(run)),
    ):
        io.phase = phase
        call()
    monkeypatch.undo()
    return io


def test_records_and_listings_do_not_grow_with_the_images(datasets, tmp_path, monkeypatch):
    """Twice the images: the same records read and folders listed, by every command, and the
    files written into place grow by the same number per image (3 per labelled image: label,
    confidence, instances; 2 per fused one: labels, sources); a resume with nothing to do
    writes none of them."""
    _run_all(datasets[SIZES[0]], tmp_path / "first", monkeypatch)  # imports list folders once
    small, large = (_run_all(datasets[n], tmp_path / f"n{n}", monkeypatch) for n in SIZES)
    extra = SIZES[1] - SIZES[0]
    for phase in ("label", "label again", "fuse", "fuse again", "info"):
        a, b = small.of(phase), large.of(phase)
        assert b.get("record reads", 0) == a.get("record reads", 0), phase
        assert b.get("listings", 0) == a.get("listings", 0), phase
        per_image = {"label": 3, "fuse": 2}.get(phase, 0)
        assert b.get("renames", 0) - a.get("renames", 0) == per_image * extra, phase
    assert small.of("label").get("record reads", 0) > 0  # the counts see the manifest's reads


def _calls(fn) -> Counter:  # noqa: ANN001
    """How often ``fn()`` calls each Python function (cProfile's call counts, not its times)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(fn)
    return Counter({f"{k[0]}:{k[2]}": v[1] for k, v in pstats.Stats(prof).stats.items()})


def assert_linear(small: Counter, large: Counter, factor: int, slack: int = 8) -> None:
    """No function called more than ``factor`` times as often at ``factor`` times the images
    (a few calls of slack: caches, one-off look-ups). A check per image against everything
    listed so far (``any(m.stem == stem for m in masks)``) is called n(n+1)/2 times: four times
    as often at twice the images."""
    grown = {f: (small[f], n) for f, n in large.items() if n > factor * small[f] + slack}
    assert not grown, f"called more than {factor}x as often at {factor}x the images: {grown}"


def _coco_doc(n: int) -> tuple[dict, dict[str, tuple[int, int]]]:
    images = [{"id": i, "file_name": f"im{i:05d}.jpg", "width": 8, "height": 6} for i in range(n)]
    anns = [
        {"id": i, "image_id": i, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]]}
        for i in range(n)
    ]
    doc = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "Bicycle"}]}
    return doc, {f"im{i:05d}": (6, 8) for i in range(n)}


def test_coco_import_reads_each_image_once(tmp_path):
    """A COCO file of 13,000 images (engine annotate import, engine info): before the fifty-fifth
    round, each image entry was checked against every one read before it (a file listing the
    same image twice is refused), 84 million comparisons; now a set of the stems seen."""
    from annotations.interchange import coco_to_masks

    calls = {}
    for n in (100, 200):
        doc, sizes = _coco_doc(n)
        found = []
        calls[n] = _calls(lambda: found.extend(  # noqa: B023
            coco_to_masks(tmp_path / "coco.json", "Bicycle", sizes, doc=doc)))  # fmt: skip
        assert len(found) == n and all(m.mask.sum() == 12 for m in found)
    assert_linear(calls[100], calls[200], 2)
