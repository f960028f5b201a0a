"""The bookkeeping around the models grows with the images, never faster (MaSS13K: 13,000 a run).

Measured in the fifty-fifth round (docs/labeler.md, "Cost per image at MaSS13K's count"): engine
label, its resume, engine fuse, its resume and engine info cost the same per image at 1,000 and
4,000 images. What would make them super-linear is a record read, rewritten or a folder listed
per image (a resume that rereads the manifest for each image, a run record rewritten after each
one): these count them, at two dataset sizes, rather than timing anything. The same for engine
annotate export and import, engine review and engine report (measured in the same round,
docs/annotate.md), and cProfile's call counts for a COCO file's reader, which compared each
image with every one before it."""

from __future__ import annotations

import os
import threading
from collections import Counter
from functools import partial
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
            (fileio.reads, "read_bytes", "record reads"),
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
        read = partial(coco_to_masks, tmp_path / "coco.json", "Bicycle", sizes, doc=doc)
        calls[n] = _calls(lambda read=read, found=found: found.extend(read()))
        assert len(found) == n and all(m.mask.sum() == 12 for m in found)
    assert_linear(calls[100], calls[200], 2)


def _run_annotate_review_report(root: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Io:
    from engine.annotate import ExportConfig, ImportConfig, export_annotations, import_annotations
    from engine.report import ReportConfig, build_report
    from engine.review import ReviewConfig, build_review
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import run_labeling

    run, exp = tmp / "run", tmp / "export"
    run_labeling(LabelConfig(data=str(root), cls=ClassSpec("Bicycle"), out=str(run),
                             backend="simulated", progress=False))  # fmt: skip
    subsets = {fmt: tmp / f"subset-{fmt}" for fmt in ("coco", "labelme", "png")}
    sources = {
        "coco": [str(exp / "coco.json")],
        "labelme": [str(exp / "labelme")],
        "png": [str(root / "new_classes" / "bicycle" / "test")],
    }
    io = Io(monkeypatch, {root, run, exp, tmp / "review", tmp / "report", *subsets.values()})
    imports = {
        fmt: ImportConfig(fmt, sources[fmt], "Bicycle", str(root), str(out), progress=False)
        for fmt, out in subsets.items()
    }
    export = ExportConfig(str(run), str(exp), split="test",
                          formats=("coco", "labelme", "labelstudio"), progress=False)  # fmt: skip
    review = ReviewConfig(str(run), str(tmp / "review"), gt=str(subsets["png"]), limit=0,
                          detail=False, progress=False)  # fmt: skip
    report = ReportConfig(str(subsets["png"]), str(tmp / "report"), pseudo=str(run),
                          chart=False, overlays=2, progress=False)  # fmt: skip
    phases = [
        ("export", partial(export_annotations, export)),
        *((f"import {fmt}", partial(import_annotations, c)) for fmt, c in imports.items()),
        ("review", partial(build_review, review)),
        ("report", partial(build_report, report)),
    ]
    for phase, call in phases:
        io.phase = phase
        call()
    monkeypatch.undo()
    return io


ANNOTATE_PHASES = ("export", "import coco", "import labelme", "import png", "review", "report")


def test_annotate_review_and_report_read_no_record_per_image(datasets, tmp_path, monkeypatch):
    """engine annotate export and import (COCO, LabelMe, PNG masks), engine review and engine
    report, measured linear at MaSS13K's count in the fifty-fifth round (docs/annotate.md):
    twice the images, the same records read and folders listed, and the files written into
    place grow by a fixed number per image (export: a LabelMe file; import: a mask; review:
    two thumbnails, the pseudo label's and the annotation's; report: none, its overlays
    capped)."""
    _run_annotate_review_report(datasets[SIZES[0]], tmp_path / "first", monkeypatch)
    small, large = (
        _run_annotate_review_report(datasets[n], tmp_path / f"n{n}", monkeypatch) for n in SIZES
    )
    extra = SIZES[1] - SIZES[0]
    per_image = {"export": 1, "import coco": 1, "import labelme": 1, "import png": 1, "review": 2}
    for phase in ANNOTATE_PHASES:
        a, b = small.of(phase), large.of(phase)
        assert b.get("record reads", 0) == a.get("record reads", 0), phase
        assert b.get("listings", 0) == a.get("listings", 0), phase
        assert b.get("renames", 0) - a.get("renames", 0) == per_image.get(phase, 0) * extra, phase
    assert small.of("import coco").get("record reads", 0) > 0  # coco.json, read once
