"""Two engine commands at once on one folder, as real processes: the first paused while it
writes (a hook in a ``python -c`` wrapper), the second run meanwhile. A second writer is
refused in one line naming the first; a reader of what the first writes waits for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from tests.loop_helpers import disk, make_dataset, make_run

H, W = 48, 64

# the command in argv[4:], paused at its first call of MODULE.NAME until the file RELEASE exists
PAUSED = """
import importlib, sys, time
from pathlib import Path
module, name, release = sys.argv[1:4]
owner = importlib.import_module(module)
real = getattr(owner, name)
def paused(*args, **kwargs):
    print("writing", flush=True)
    while not Path(release).exists():
        time.sleep(0.02)
    return real(*args, **kwargs)
setattr(owner, name, paused)
from cli import app
app(sys.argv[4:])
"""


class Paused:
    """``engine ARGS`` in another process, paused in ``hook`` (``module:name``) until
    :meth:`finish`."""

    def __init__(self, tmp_path: Path, hook: str, args: list[str]) -> None:
        root = Path(__file__).resolve().parents[2]
        self.release = tmp_path / "release"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PAUSED, *hook.split(":"), str(self.release), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "400"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "writing", line + self.proc.stderr.read()

    def finish(self) -> tuple[int, str]:
        self.release.touch()
        out, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, out + err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture()
def world(tmp_path: Path) -> dict[str, Path]:
    data, run = tmp_path / "data", tmp_path / "run"
    make_dataset(data, "test", n=3, size=(H, W))
    per_image = {"img000": [disk(H, W, 24, 16, 12)], "img001": [disk(H, W, 20, 48, 8)]}
    make_run(run, data, {**per_image, "img002": []}, (H, W))
    return {"data": data, "run": run, "labels": run / "labels" / "test"}


def _text(res) -> str:  # noqa: ANN001
    return " ".join(res.output.split())


def _import(world: dict[str, Path], out: Path) -> list[str]:
    return [
        "annotate", "import", str(world["labels"]), "--format", "png", "--png-binary",
        "--class", "Bicycle", "--data", str(world["data"]), "--out", str(out), "--no-progress",
    ]  # fmt: skip


def test_a_subset_being_imported_is_neither_imported_into_nor_read(world, tmp_path) -> None:
    """A second ``engine annotate import`` into the subset a first one writes removed the
    first's staging folder (as an interrupted import's) and wrote its own subset: the first
    then wrote a subset.json naming masks that were gone. It is refused now, naming the first;
    ``annotate export``, ``report``, ``compare``, ``review``, ``train --val-subset`` and
    ``fuse --corrections`` of the subset wait for it (they read new masks that subset.json did not name yet, or no subset)."""
    sub = tmp_path / "sub"
    first = Paused(tmp_path, "annotations.subset:atomic_write_bytes", _import(world, sub))
    try:
        res = CliRunner().invoke(app, _import(world, sub))
        assert res.exit_code == 2, res.output
        assert _text(res).startswith(
            f"error: {sub}: in use by engine annotate import (pid {first.proc.pid} on "
        )
        readers = {
            "engine annotate export": ["annotate", "export", str(sub), "--out", str(tmp_path / "e")],
            "engine report": ["report", "--subset", str(sub), "--out", str(tmp_path / "r"),
                              "--pseudo", str(world["run"])],
            "engine compare": ["compare", "--gt", str(sub), "--class", "Bicycle",
                               "--source", f"pseudo={world['run']}"],
            "engine review": ["review", str(world["run"]), "--gt", str(sub),
                              "--out", str(tmp_path / "v")],
            "engine train": ["train", "--data", str(world["data"]), "--val-subset", str(sub),
                             "--preset", "tiny", "--device", "cpu", "--out", str(tmp_path / "t")],
            "engine fuse": ["fuse", "--data", str(world["data"]), "--pseudo", str(world["run"]),
                            "--corrections", str(sub), "--out", str(tmp_path / "f")],
        }  # fmt: skip
        for command, args in readers.items():
            res = CliRunner().invoke(app, [*args, "--no-progress"])
            assert res.exit_code == 2, (command, res.output)
            assert (
                f"{sub}: engine annotate import (pid {first.proc.pid} on " in _text(res)
                and f"is writing it now; {command} would read its annotated masks half written"
                in _text(res)
            ), res.output
        assert not any((tmp_path / f).exists() for f in "ervtf")
        code, output = first.finish()
    finally:
        first.kill()
    assert code == 0, output
    listed = json.loads((sub / "subset.json").read_text())["stems"]
    assert listed == ["img000", "img001", "img002"]
    assert sorted(p.stem for p in (sub / "masks").iterdir()) == listed
    assert sorted(p.name for p in sub.iterdir()) == [".lock", "masks", "subset.json"]


def test_a_second_export_into_a_folder_being_exported_to_is_refused(world, tmp_path) -> None:
    """Two ``engine annotate export`` into one folder: the second (with ``--force``, as a
    retry would be) saw no earlier export yet, removed the first's staging folder and wrote
    its own, and the first failed or swapped in a part. Refused now, naming the first."""
    out = tmp_path / "export"
    args = ["annotate", "export", str(world["run"]), "--out", str(out), "--no-progress"]
    first = Paused(tmp_path, "engine.annotate.export:atomic_write_json", args)
    try:
        res = CliRunner().invoke(app, [*args, "--force"])
        assert res.exit_code == 2, res.output
        assert _text(res).startswith(
            f"error: {out}: in use by engine annotate export (pid {first.proc.pid} on "
        )
        code, output = first.finish()
    finally:
        first.kill()
    assert code == 0, output
    assert "exported 2 instances of 3 images" in output
    coco = json.loads((out / "coco.json").read_text())
    assert len(coco["images"]) == 3 and len(list((out / "labelme").iterdir())) == 3
    assert not [p for p in out.iterdir() if p.name.startswith(".export.")]


def test_a_second_report_into_a_folder_being_reported_to_is_refused(world, tmp_path) -> None:
    """Two ``engine report`` into one ``--out``: both wrote overlays and report.json there, and
    each removed the chart and overlays the other's report.json listed as an earlier report's.
    The second is refused now, naming the first."""
    sub = tmp_path / "sub"
    assert CliRunner().invoke(app, _import(world, sub)).exit_code == 0
    out = tmp_path / "report"
    args = ["report", "--subset", str(sub), "--pseudo", str(world["run"]), "--out", str(out),
            "--no-chart", "--no-progress"]  # fmt: skip
    first = Paused(tmp_path, "engine.report.build:atomic_write_json", args)
    try:
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, res.output
        assert _text(res).startswith(
            f"error: {out}: in use by engine report (pid {first.proc.pid} on "
        )
        code, output = first.finish()
    finally:
        first.kill()
    assert code == 0, output
    report = json.loads((out / "report.json").read_text())
    assert [r["kind"] for r in report["table4"]] == ["pseudo labels"]
    assert np.isclose(report["table4"][0]["iou"], 100.0)


@pytest.mark.slow  # torch imported twice, 15 s
def test_a_resume_of_a_run_still_starting_is_refused_naming_it(tmp_path) -> None:
    """``engine train --resume --out RUN`` (a requeued job) while the first copy of the run
    still starts, before it records anything: it was told "--data is required ... (no
    RUN/config.json: is --out the run?)", as of a wrong folder. It is refused as a second
    ``engine train`` into RUN is, naming the first."""
    data, run = tmp_path / "data", tmp_path / "run"
    make_dataset(data, "train", n=2, size=(H, W))
    args = ["train", "--data", str(data), "--preset", "tiny", "--iters", "1", "--batch-size",
            "2", "--val-split", "none", "--device", "cpu", "--out", str(run), "--no-progress"]  # fmt: skip
    first = Paused(tmp_path, "trainer.train.run:_start", args)
    try:
        for again in (["train", "--resume", "--out", str(run)], [*args, "--resume"], args):
            res = CliRunner().invoke(app, again)
            assert res.exit_code == 2, res.output
            assert _text(res).startswith(
                f"error: {run}: in use by engine train (pid {first.proc.pid} on "
            ), res.output
    finally:
        first.kill()


def test_an_import_waits_for_the_export_replacing_its_files(world, tmp_path) -> None:
    """``engine annotate import EXPORT/coco.json`` while ``engine annotate export --force``
    replaces that export read the old files, or the new ones half swapped in (its labelme/
    folder set aside), without a word. It waits for the export now, naming it."""
    out = tmp_path / "export"
    args = ["annotate", "export", str(world["run"]), "--out", str(out), "--no-progress"]
    assert CliRunner().invoke(app, args).exit_code == 0
    first = Paused(tmp_path, "engine.annotate.export:atomic_write_json", [*args, "--force"])
    try:
        for source in (out / "coco.json", out / "labelme"):
            res = CliRunner().invoke(
                app, ["annotate", "import", str(source), "--class", "Bicycle", "--data",
                      str(world["data"]), "--out", str(tmp_path / "sub"), "--no-progress"],
            )  # fmt: skip
            assert res.exit_code == 2, res.output
            assert f"{out}: engine annotate export (pid {first.proc.pid} on " in _text(res)
            assert "engine annotate import would read its annotations half written" in _text(res)
        code, output = first.finish()
    finally:
        first.kill()
    assert code == 0, output
    assert not (tmp_path / "sub").exists()
