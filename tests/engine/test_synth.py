"""Invariants of the synthetic MaSS-style scene generator (engine.synth)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.datasets import load_spec, open_split
from engine.synth import NEW_CLASSES, SynthConfig, generate, render_scene, stem_of

SIZE = (256, 192)
CHECKPOINT = Path(__file__).resolve().parents[2] / "engine" / "assets" / "demo_tiny_mass7.pt"


def _files(root: Path) -> dict[str, bytes]:
    """The folder's files, but the run lock (``.lock`` names its last holder and start time:
    two runs a second apart differ there)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "d"
    return generate(SynthConfig(out=out, train=3, val=1, test=2, size=SIZE, seed=0), progress=False)


@pytest.fixture(scope="module")
def scenes():
    """Twelve default-size scenes rendered in memory (no disk), with their wheels."""
    return [render_scene(0, "train", i, (512, 384)) for i in range(12)]


def test_layout_and_names(data: Path):
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        stems = [stem_of(split, i) for i in range(n)]
        assert sorted(p.stem for p in (data / "images" / split).iterdir()) == stems
        assert sorted(p.stem for p in (data / "annotations" / split).iterdir()) == stems
        for name in NEW_CLASSES:
            for kind in ("new_classes", "new_class_instances"):
                folder = data / kind / name / split
                assert sorted(p.name for p in folder.iterdir()) == [f"{s}.png" for s in stems]
    assert stem_of("train", 7) == "synth_train_0007"
    assert all(p.suffix == ".jpg" for p in (data / "images" / "train").iterdir())


def test_synth_json_records_config_and_counts(data: Path):
    meta = json.loads((data / "synth.json").read_text())
    assert meta["config"]["seed"] == 0 and meta["config"]["size"] == list(SIZE)
    assert meta["version"] and meta["new_classes"] == list(NEW_CLASSES)
    assert {s: meta["splits"][s]["images"] for s in ("train", "val", "test")} == {
        "train": 3, "val": 1, "test": 2,
    }  # fmt: skip
    for split in ("train", "val", "test"):
        for name in NEW_CLASSES:
            inst = sum(
                int(np.array(Image.open(p)).max())
                for p in (data / "new_class_instances" / name / split).iterdir()
            )
            assert meta["splits"][split][name]["instances"] == inst


def test_synth_json_records_the_code_and_a_rerun_from_it_gives_the_same_bytes(tmp_path: Path):
    """synth.json records what decides the bytes besides the config: the git commit and the
    package versions (numpy draws, OpenCV and Pillow encode), and no time or host, so a rerun
    fed its config gives the same files, synth.json included. Before, it recorded no version
    of anything: a dataset could not say which code to rerun."""
    first = generate(SynthConfig(out=tmp_path / "a", train=1, val=0, test=1, size=(96, 64),
                                 seed=5), progress=False)  # fmt: skip
    record = json.loads((first / "synth.json").read_text())
    assert set(record["versions"]) == {"python", "git_commit", "packages"}
    assert {"numpy", "pillow", "opencv-python-headless"} <= set(record["versions"]["packages"])
    again = generate(SynthConfig(**{**record["config"], "out": tmp_path / "b"}), progress=False)
    a, b = _files(first), _files(again)
    b["synth.json"] = b["synth.json"].replace(str(again).encode(), str(first).encode())
    assert a == b


def test_dataset_loads_and_checks_clean(data: Path):
    for split in ("train", "val", "test"):
        ds = open_split(data, split)
        assert ds.check() == []
        image, label = ds.load_pair(ds[0])
        assert image.shape == (SIZE[1], SIZE[0], 3) and image.dtype == np.uint8
        assert label.shape == (SIZE[1], SIZE[0])


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, data: Path):
    again = generate(SynthConfig(out=tmp_path / "a", train=3, val=1, test=2, size=SIZE, seed=0),
                     progress=False)  # fmt: skip
    a, b = _files(data), _files(again)
    meta_a, meta_b = json.loads(a.pop("synth.json")), json.loads(b.pop("synth.json"))
    meta_a["config"].pop("out"), meta_b["config"].pop("out")
    assert a == b and meta_a == meta_b
    other = generate(SynthConfig(out=tmp_path / "b", train=3, val=1, test=2, size=SIZE, seed=1),
                     progress=False)  # fmt: skip
    c = _files(other)
    assert all(c[k] != a[k] for k in a if k.startswith("images/"))


def test_labels_are_seven_class_ids_and_new_classes_inside_others(data: Path):
    for split in ("train", "val", "test"):
        for p in sorted((data / "annotations" / split).iterdir()):
            img = Image.open(p)
            assert img.mode == "L"
            label = np.array(img)
            assert set(np.unique(label)) <= set(range(7))
            for name in NEW_CLASSES:
                mask = np.array(Image.open(data / "new_classes" / name / split / p.name))
                inst = np.array(Image.open(data / "new_class_instances" / name / split / p.name))
                assert inst.dtype == np.uint16 and set(np.unique(mask)) <= {0, 1}
                np.testing.assert_array_equal(mask == 1, inst > 0)
                assert (label[mask == 1] == 0).all(), f"{name} pixels outside Others in {p.name}"
                ids = np.unique(inst[inst > 0])
                np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))


def test_scene_is_deterministic_and_independent_of_order():
    a = render_scene(3, "val", 5, (160, 120))
    render_scene(3, "val", 4, (160, 120))
    b = render_scene(3, "val", 5, (160, 120))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert not np.array_equal(a.image, render_scene(3, "test", 5, (160, 120)).image)


def test_every_scene_has_all_stuff_somewhere(scenes):
    present = set()
    for s in scenes:
        present |= set(np.unique(s.label).tolist())
    assert present == set(range(7))


def test_wheels_show_what_is_behind_them(scenes):
    """Inside each visible wheel's circle some pixels are not bicycle; mostly non-Others ones."""
    n_wheels, n_see_stuff = 0, 0
    for s in scenes:
        h, w = s.label.shape
        yy, xx = np.mgrid[:h, :w]
        bike = s.instances["bicycle"] > 0
        for wh in s.wheels:
            if not (wh.r <= wh.cx < w - wh.r and wh.r <= wh.cy < h - wh.r):
                continue
            inside = (xx - wh.cx) ** 2 + (yy - wh.cy) ** 2 < (0.8 * wh.r) ** 2
            if not bike[inside].any():
                continue  # hidden behind a nearer object
            n_wheels += 1
            assert (~bike[inside]).any(), f"wheel at ({wh.cx:.0f}, {wh.cy:.0f}) is filled"
            n_see_stuff += bool((s.label[inside] != 0).any())
    assert n_wheels >= 10
    assert n_see_stuff >= 0.7 * n_wheels


def test_bicycles_frequent_cars_present_and_sizes_vary(scenes):
    with_bike = sum(int(s.instances["bicycle"].max() > 0) for s in scenes)
    with_car = sum(int(s.instances["car"].max() > 0) for s in scenes)
    assert with_bike >= 0.7 * len(scenes) and with_car >= 0.4 * len(scenes)
    # Small: shorter than 6% of the image height (about 23 px at 384); large: over 20%.
    for name in ("bicycle", "car"):
        heights = []
        for s in scenes:
            inst = s.instances[name]
            for i in range(1, int(inst.max()) + 1):
                rows = np.flatnonzero((inst == i).any(axis=1))
                heights.append(rows[-1] - rows[0] + 1)
        h = scenes[0].label.shape[0]
        assert min(heights) < 0.06 * h, f"no small {name}: heights {sorted(heights)}"
        assert max(heights) > 0.2 * h, f"no large {name}: heights {sorted(heights)}"


def test_images_are_textured_not_flat(scenes):
    s = scenes[0]
    for cls in (2, 4, 5):
        pix = s.image[s.label == cls].astype(np.float32)
        if len(pix) > 100:
            assert pix.std(axis=0).mean() > 3.0, f"class {cls} looks flat"


def test_stale_files_of_a_larger_run_are_removed(tmp_path: Path):
    cfg = dict(out=tmp_path / "d", val=0, test=0, size=(96, 64), seed=0)
    generate(SynthConfig(train=3, **cfg), progress=False)
    replaced: list[str] = []
    generate(SynthConfig(train=1, **cfg), progress=False, replaced=replaced)
    assert [p.name for p in (tmp_path / "d/images/train").iterdir()] == ["synth_train_0000.jpg"]
    assert len(list((tmp_path / "d/new_class_instances/car/train").iterdir())) == 1
    assert replaced == ["2 earlier scenes beyond this run's counts removed"]  # said, not silent


def test_the_cli_says_when_earlier_scenes_were_replaced(tmp_path: Path):
    """Label runs and fused datasets made from a folder no longer match it after a run with
    other settings: the command says so on stderr."""
    from typer.testing import CliRunner

    from cli import app

    args = ["synth", "--out", str(tmp_path / "d"), "--train", "2", "--val", "0", "--test", "1"]
    args += ["--no-progress"]
    res = CliRunner().invoke(app, [*args, "--size", "96x64"])
    assert res.exit_code == 0 and "note:" not in res.output
    res = CliRunner().invoke(app, [*args, "--size", "80x64"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0
    assert "note: 3 earlier scenes drawn otherwise (size 96x64, not 80x64) replaced" in text
    res = CliRunner().invoke(app, [*args, "--size", "80x64"])  # resumed: nothing replaced
    assert res.exit_code == 0 and "note:" not in res.output and "3 kept" in res.output
    # fewer scenes drawn otherwise: the redrawn and the removed are told apart (it said all 3
    # were replaced when 1 was drawn anew and 2 removed)
    fewer = ["synth", "--out", str(tmp_path / "d"), "--train", "0", "--val", "0", "--test", "1"]
    res = CliRunner().invoke(app, [*fewer, "--no-progress", "--size", "96x64"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "1 earlier scene drawn otherwise (size 80x64, not 96x64) replaced" in text
    assert "2 earlier scenes beyond this run's counts removed" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train": -1}, "train must be an integer >= 0"),
        (
            {"train": 0, "val": 0, "test": 0},
            r"^--train \+ --val \+ --test is 0: nothing to generate",
        ),
        ({"size": (32, 400)}, "size must be"),
        ({"seed": -3}, "seed must be"),
        ({"jpeg_quality": 0}, "jpeg_quality"),
    ],
)
def test_config_validation(tmp_path: Path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(out=tmp_path, **kwargs)


def test_output_that_is_a_file_is_refused(tmp_path: Path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        generate(SynthConfig(out=f, train=1, val=0, test=0, size=(64, 64)), progress=False)


@pytest.mark.parametrize("size", [(64, 64), (64, 300), (300, 64), (97, 131)])
def test_odd_and_tiny_sizes_render(size):
    for i in range(6):
        s = render_scene(i, "test", i, size)
        assert s.image.shape == (size[1], size[0], 3) and s.label.shape == (size[1], size[0])
        assert s.label.max() <= 6
        for name in NEW_CLASSES:
            assert s.instances[name].shape == s.label.shape
            assert (s.label[s.instances[name] > 0] == 0).all()


def _drawn(monkeypatch, stop_after: int | None = None) -> list[tuple[str, int]]:
    """Record the scenes ``generate`` draws; with ``stop_after``, interrupt it at the next one."""
    import engine.synth.writer as writer

    drawn: list[tuple[str, int]] = []

    def render(seed, split, index, size):
        if stop_after is not None and len(drawn) == stop_after:
            raise RuntimeError("interrupted")
        drawn.append((split, index))
        return render_scene(seed, split, index, size)

    monkeypatch.setattr(writer, "render_scene", render)
    return drawn


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path: Path, monkeypatch):
    """Scenes already written are kept, only the missing ones are drawn, and the folder ends
    byte for byte as one uninterrupted run leaves it (synth.json included)."""
    cfg = dict(train=3, val=1, test=2, size=(96, 64), seed=0)
    whole = generate(SynthConfig(out=tmp_path / "whole", **cfg), progress=False)
    out = tmp_path / "d"
    _drawn(monkeypatch, stop_after=4)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate(SynthConfig(out=out, **cfg), progress=False)
    assert not (out / "synth.json").exists()  # unfinished: no record of a finished run
    assert json.loads((out / "synth.partial.json").read_text())["config"]["seed"] == 0
    drawn = _drawn(monkeypatch)
    generate(SynthConfig(out=out, **cfg), progress=False)
    assert drawn == [("test", 0), ("test", 1)]  # train 0-2 and val 0 were written
    assert not (out / "synth.partial.json").exists()
    files = _files(out)
    files["synth.json"] = files["synth.json"].replace(str(out).encode(), str(whole).encode())
    assert files == _files(whole)
    drawn.clear()
    generate(SynthConfig(out=out, **cfg), progress=False)  # finished: nothing is drawn again
    assert drawn == [] and _files(out)["synth.json"] == (out / "synth.json").read_bytes()


def test_more_images_draw_only_the_new_scenes(tmp_path: Path, monkeypatch):
    out = tmp_path / "d"
    generate(SynthConfig(out=out, train=2, val=0, test=0, size=(96, 64)), progress=False)
    drawn, kept = _drawn(monkeypatch), []
    generate(SynthConfig(out=out, train=3, val=0, test=0, size=(96, 64)), False, kept=kept)
    assert drawn == [("train", 2)] and kept == ["synth_train_0000", "synth_train_0001"]
    record = json.loads((out / "synth.json").read_text())
    assert record["config"]["train"] == 3 and record["splits"]["train"]["images"] == 3
    fresh = generate(SynthConfig(out=tmp_path / "f", train=3, val=0, test=0, size=(96, 64)), False)
    assert record["splits"] == json.loads((fresh / "synth.json").read_text())["splits"]


@pytest.mark.parametrize("change", [{"seed": 1}, {"size": (80, 64)}, {"jpeg_quality": 80}], ids=str)
def test_scenes_drawn_otherwise_are_all_drawn_again(tmp_path: Path, monkeypatch, change):
    """Another seed, size or JPEG quality, even after an interrupted run: nothing is kept."""
    cfg = dict(train=2, val=0, test=1, size=(96, 64), seed=0)
    out = tmp_path / "d"
    _drawn(monkeypatch, stop_after=2)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate(SynthConfig(out=out, **cfg), progress=False)
    drawn = _drawn(monkeypatch)
    generate(SynthConfig(out=out, **{**cfg, **change}), progress=False)
    assert drawn == [("train", 0), ("train", 1), ("test", 0)]
    monkeypatch.undo()
    fresh = generate(SynthConfig(out=tmp_path / "f", **{**cfg, **change}), progress=False)
    files = _files(out)
    files["synth.json"] = files["synth.json"].replace(str(out).encode(), str(fresh).encode())
    assert files == _files(fresh)


@pytest.mark.slow
def test_a_rerun_with_other_settings_killed_removing_the_scenes_is_said_unfinished(tmp_path):
    """``engine synth`` run again with another seed over a finished dataset, killed after
    removing the earlier train scenes: synth.json (the earlier seed's, train 2) stayed, and
    engine info read a finished dataset of no train image (exit 0). The finished record
    becomes the unfinished mark first: info says the dataset did not finish (exit 1), and the
    rerun draws it whole."""
    from typer.testing import CliRunner

    from cli import app
    from tests.loop_helpers import KILLED_UNLINKING, run_killed

    out = tmp_path / "d"
    args = ["synth", "--out", str(out), "--train", "2", "--val", "1", "--test", "1",
            "--size", "80x64", "--no-progress"]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    # a scene is 6 files (image, label, 2 masks, 2 instance maps): killed at the 13th, the
    # train split's all gone, the val and test scenes whole
    run_killed(KILLED_UNLINKING, "synth_", "13", *args, "--seed", "1")
    assert not list((out / "images" / "train").iterdir())
    res = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "400"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "its engine synth stopped before its last scene" in text
    assert CliRunner().invoke(app, [*args, "--seed", "1"]).exit_code == 0
    assert json.loads((out / "synth.json").read_text())["config"]["seed"] == 1
    assert len(list((out / "images" / "train").iterdir())) == 2
    assert CliRunner().invoke(app, ["info", str(out)]).exit_code == 0


def test_a_damaged_scene_or_record_is_drawn_again(tmp_path: Path, monkeypatch):
    out = tmp_path / "d"
    cfg = SynthConfig(out=out, train=2, val=0, test=0, size=(96, 64))
    generate(cfg, progress=False)
    before = _files(out)
    (out / "new_class_instances" / "car" / "train" / "synth_train_0001.png").write_bytes(b"x")
    (out / "annotations" / "train" / "synth_train_0000.png").unlink()
    drawn = _drawn(monkeypatch)
    generate(cfg, progress=False)
    assert drawn == [("train", 0), ("train", 1)] and _files(out) == before
    (out / "synth.json").write_text("{not json")
    drawn.clear()
    generate(cfg, progress=False)  # an unreadable record: its files may be anything
    assert drawn == [("train", 0), ("train", 1)] and _files(out) == before


def test_another_engine_output_is_not_drawn_into(tmp_path: Path):
    """A label run, fused dataset or training run given as --out would get images/ and
    annotations/ mixed into it: refused, naming what it is, before anything is written."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(ValueError) as e:
        generate(SynthConfig(out=run, train=1, val=0, test=0, size=(96, 64)), progress=False)
    assert str(e.value) == (
        f"{run}: it is a label run (engine label); engine synth needs a folder of its own: "
        "give another --out"
    )
    assert sorted(_files(run)) == ["run.json"]
    data = tmp_path / "mine"  # another dataset (no synth.json): its images are not mixed with
    (data / "images" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="it is a dataset's root; engine synth needs a folder"):
        generate(SynthConfig(out=data, train=1, val=0, test=0, size=(96, 64)), progress=False)
    assert sorted(_files(data)) == []


@pytest.mark.parametrize(
    "size, said",
    [
        ("0x0", "error: --size must be positive, got '0x0'"),
        ("abc", "error: --size must look like 512x384 (width x height), got 'abc'"),
        ("63x64", "error: image size must be WxH with both sides >= 64 px (--size), got 63x64"),
    ],
)
def test_a_bad_size_is_one_error_line_as_every_bad_input(tmp_path: Path, size, said):
    """--size 0x0 drew click's usage box, where 63x64 and every other bad input give one
    'error:' line (exit 2 both ways)."""
    from typer.testing import CliRunner

    from cli import app

    res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "d"), "--size", size])
    assert res.exit_code == 2 and res.output.strip() == said, res.output
    assert not (tmp_path / "d").exists()


def test_a_folder_name_that_is_not_utf8_resumes(tmp_path: Path):
    """``engine synth --out`` a folder whose name is not UTF-8 (``syn\\xe9`` made on a latin-1
    system, or any non-ASCII name under LC_ALL=C with Python's UTF-8 mode off): the second run
    read the scenes kept with ``cv2.imread(str)``, which crashed the process (a segmentation
    fault, no message). In a subprocess, so that a crash fails this test alone."""
    import os
    import subprocess
    import sys

    out = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"syn\xe9"))
    code = (
        "import sys; from engine.synth import SynthConfig, generate\n"
        "for _ in range(2): generate(SynthConfig(out=sys.argv[1], train=1, val=0, test=0,"
        " size=(64, 64)), progress=False)"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    res = subprocess.run([sys.executable, "-c", code, out], cwd=root, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr


STOPPED = (
    "its engine synth stopped before its last scene (synth.partial.json) and no process writes "
    "it now"
)
AGAIN = "run the same engine synth command again to finish it (it resumes)"


def _stopped_synth(tmp_path: Path, monkeypatch, stop_after: int = 4) -> Path:
    """A dataset whose engine synth stopped after ``stop_after`` of its 6 scenes."""
    out = tmp_path / "d"
    _drawn(monkeypatch, stop_after=stop_after)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate(SynthConfig(out=out, train=3, val=1, test=2, size=(96, 64)), progress=False)
    return out


def _run_on_a_finished_copy(tmp_path: Path, out: Path) -> Path:
    """A run over ``tmp_path/copy``, a finished copy of the stopped synth ``out`` (so a folder
    of ``out`` given by itself is what a command refuses), its one test scene predicted empty."""
    from tests.loop_helpers import make_run

    data = tmp_path / "copy"
    shutil.copytree(out, data)
    (data / "synth.partial.json").unlink()
    run = tmp_path / "run"
    make_run(run, data, {stem_of("test", 0): []}, (64, 96))
    return run


def _refused(
    tmp_path: Path, out: Path, readers: dict[str, list[str]], also: list[str] = ()
) -> None:
    """Each ``engine COMMAND ARGS`` refuses the stopped dataset ``out`` in one line, exit 2,
    writing nothing (``also``: other folders of ``tmp_path`` there before)."""
    from typer.testing import CliRunner

    from cli import app

    for command, args in readers.items():
        res = CliRunner().invoke(app, [command, *args])
        assert res.exit_code == 2, res.output
        assert " ".join(res.output.split()) == (
            f"error: {out}: {STOPPED}; engine {command} would read part of the dataset: "
            f"{AGAIN}, then run engine {command} again"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["d", *also])


def test_a_dataset_synth_stopped_before_a_split_was_whole_is_said_unfinished(
    tmp_path: Path, monkeypatch
):
    """engine synth killed before its first scene (``synth.partial.json`` alone: 1 of 12 kill
    points at a file commit in the crash-injection round), or after a first image without its
    label map: engine info said "no image split folders found" or "label folder for split
    'train' not found" (exit 2), as of a wrong folder. It says the synth stopped and what
    finishes it (exit 1); a process holding its lock is named (exit 0)."""
    from typer.testing import CliRunner

    from cli import app
    from tests.engine.test_runlock import _hold

    out = _stopped_synth(tmp_path, monkeypatch, stop_after=0)
    assert sorted(p.name for p in out.iterdir()) == [".lock", "synth.partial.json"]
    res = CliRunner().invoke(app, ["info", str(out), "--no-progress"], env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output
    assert f"unfinished: {out}: {STOPPED}, before a split of it could be read: {AGAIN}\n" in (
        res.output
    )
    (out / "images" / "train").mkdir(parents=True)  # a first image, its label not yet written
    Image.new("RGB", (96, 64)).save(out / "images" / "train" / "synth_train_0000.jpg")
    res = CliRunner().invoke(app, ["info", str(out), "--no-progress"], env={"COLUMNS": "400"})
    assert res.exit_code == 1 and f"{STOPPED}, before a split of it could be read" in res.output
    with _hold(out):
        res = CliRunner().invoke(app, ["info", str(out), "--no-progress"])
        assert res.exit_code == 0, res.output
        assert "is writing it now" in " ".join(res.output.split())


def test_a_dataset_synth_stopped_half_way_is_said_by_info_and_refused_by_readers(
    tmp_path: Path, monkeypatch
):
    """engine synth stopped after 4 of 6 scenes (synth.partial.json, no process at it): engine
    info says so (exit 1) and the commands that read a dataset refuse it in one line naming
    what to do, writing nothing; before, info said "No problems found." (exit 0) and engine
    label labelled the 4 scenes as the dataset. While a process holds its lock, info names it
    (exit 0) and a reader is refused as of a folder being written."""
    from typer.testing import CliRunner

    from cli import app
    from tests.engine.test_runlock import _hold

    out = _stopped_synth(tmp_path, monkeypatch)
    res = CliRunner().invoke(app, ["info", str(out), "--no-progress"])
    assert res.exit_code == 1, res.output
    assert f"unfinished: {STOPPED}: {AGAIN}\n" in res.output
    assert "No problems found." not in res.output
    run, fused = str(tmp_path / "run"), str(tmp_path / "fused")
    label = ["--class", "Bicycle", "--backend", "simulated", "--data", str(out), "--out", run]
    readers = {
        "label": label,
        "fuse": ["--data", str(out), "--pseudo", run, "--out", fused],
        "evaluate": ["--gt", str(out), "--split", "train", "--pred", str(tmp_path)],
        # named itself: before, compare's refusal said "engine evaluate would read ..."
        "compare": [
            "--gt",
            str(out),
            "--split",
            "train",
            "--class",
            "Bicycle",
            "--source",
            f"a={tmp_path}",
        ],  # fmt: skip
    }
    _refused(tmp_path, out, readers)
    with _hold(out) as holder:
        res = CliRunner().invoke(app, ["info", str(out), "--no-progress"])
        assert res.exit_code == 0, res.output
        assert f"unfinished: engine train (pid {holder.pid} on " in res.output
        assert "is writing it now: wait for it to finish\n" in res.output
        res = CliRunner().invoke(app, ["label", *label])
        said = " ".join(res.output.split())
        assert res.exit_code == 2 and said.startswith(
            f"error: {out}: engine train (pid {holder.pid} on "
        )
        assert said.endswith(
            "is writing it now; engine label would read the dataset half written: wait for it "
            "to finish, then run engine label again"
        )
        holder.stdout.close()


def test_predict_and_train_refuse_a_dataset_synth_stopped_half_way(tmp_path: Path, monkeypatch):
    """The same refusal from the two commands that load torch (half a second once torch is
    imported, as it is in any run of the suite; not slow)."""
    out = _stopped_synth(tmp_path, monkeypatch)
    run = str(tmp_path / "run")
    readers = {
        "predict": ["--checkpoint", str(CHECKPOINT), "--data", str(out), "--out", run],
        "train": ["--data", str(out), "--out", run],
    }
    _refused(tmp_path, out, readers)


def test_a_folder_inside_a_stopped_synth_given_by_itself_is_refused(tmp_path: Path, monkeypatch):
    """A split's label folder, a new class's masks or a split's images of a dataset engine
    synth stopped half way, given by themselves (evaluate/compare --gt, compare --source,
    predict --images), are refused in one line naming the dataset, writing nothing; before,
    the scenes drawn so far were scored or predicted without a word. A finished dataset's
    folders are read as before."""
    from typer.testing import CliRunner

    from cli import app

    out = _stopped_synth(tmp_path, monkeypatch)
    labels, bicycle = out / "annotations/train", out / "new_classes/bicycle/train"
    other, masks = tmp_path / "other", tmp_path / "masks"
    shutil.copytree(labels, other)
    shutil.copytree(bicycle, masks)
    compare = ["--class", "Bicycle"]
    readers = {
        "evaluate": (labels, ["--gt", str(labels), "--pred", str(other)]),
        "compare": (bicycle, ["--gt", str(bicycle), *compare, "--source", f"a={masks}"]),
        "predict": (
            out / "images/train",
            [
                "--checkpoint",
                str(CHECKPOINT),
                "--images",
                str(out / "images/train"),
                "--out",
                str(tmp_path / "pred"),
            ],
        ),  # fmt: skip
    }
    for command, (folder, args) in readers.items():
        res = CliRunner().invoke(app, [command, *args])
        assert res.exit_code == 2, res.output
        assert " ".join(res.output.split()) == (
            f"error: {folder}: it lies in the dataset {out}: {STOPPED}; engine {command} would "
            f"read part of the dataset: {AGAIN}, then run engine {command} again"
        )
    res = CliRunner().invoke(
        app, ["compare", "--gt", str(masks), *compare, "--source", f"a={bicycle}"]
    )
    assert res.exit_code == 2 and f"error: {bicycle}: it lies in the dataset {out}: " in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "masks", "other"]
    (out / "synth.partial.json").unlink()  # finished (as far as the check goes): read as before
    res = CliRunner().invoke(app, ["evaluate", "--gt", str(labels), "--pred", str(other)])
    assert res.exit_code == 0, res.output


def test_review_gt_and_evaluate_pred_inside_a_stopped_synth_are_refused(
    tmp_path: Path, monkeypatch
):
    """The two callers of the check of folders given by themselves that the test above does not
    reach: ``engine review --gt`` (a new class's masks of a stopped synth) and ``engine evaluate
    --pred``, each refused in one line naming the dataset, before any file is written."""
    from engine.evaluate import EvaluateConfig, evaluate
    from engine.review import ReviewConfig, build_review
    from tests.loop_helpers import make_dataset, make_run

    out = _stopped_synth(tmp_path, monkeypatch)
    labels, bicycle = out / "annotations/train", out / "new_classes/bicycle/train"
    data, run, other = tmp_path / "data", tmp_path / "run", tmp_path / "other"
    make_dataset(data, "test", n=1, size=(32, 32))
    make_run(run, data, {"img000": []}, (32, 32))
    shutil.copytree(labels, other)
    with pytest.raises(ValueError) as e:
        build_review(
            ReviewConfig(run=str(run), gt=str(bicycle), out=str(tmp_path / "r"), progress=False)
        )
    assert str(e.value) == (
        f"{bicycle}: it lies in the dataset {out}: {STOPPED}; engine review would read part of "
        f"the dataset: {AGAIN}, then run engine review again"
    )
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError) as e:
        evaluate(EvaluateConfig(gt=other, pred=labels, progress=False))
    assert str(e.value) == (
        f"{labels}: it lies in the dataset {out}: {STOPPED}; engine evaluate would read part of "
        f"the dataset: {AGAIN}, then run engine evaluate again"
    )


def test_report_pred_inside_a_stopped_synth_is_refused(tmp_path: Path, monkeypatch):
    """``engine report --pred`` (or ``--fused``) given a folder of a stopped synth by itself is
    refused in one line naming the dataset, before any file is written, as evaluate and compare
    refuse it; before, report scored the scenes drawn so far (it asked a fused dataset given as
    itself only)."""
    from annotations.subset import write_subset
    from engine.report import ReportConfig, build_report

    out = _stopped_synth(tmp_path, monkeypatch)
    labels = out / "annotations/train"
    subset = write_subset(tmp_path / "subset", "Bicycle", "train",
                          {"synth_train_0000": np.zeros((64, 96), np.uint8)}, {"synth_train_0000": "hand"})  # fmt: skip
    for given in ({"pred": str(labels)}, {"fused": str(labels)}):
        with pytest.raises(ValueError) as e:
            build_report(
                ReportConfig(str(subset.root), str(tmp_path / "rep"), chart=False, **given)
            )
        assert str(e.value) == (
            f"{labels}: it lies in the dataset {out}: {STOPPED}; engine report would read part "
            f"of the dataset: {AGAIN}, then run engine report again"
        )
    assert not (tmp_path / "rep").exists()


def test_annotate_import_png_of_a_stopped_synths_folder_is_refused(tmp_path: Path, monkeypatch):
    """``engine annotate import --format png`` given a new class's masks of a dataset engine
    synth stopped half way is refused in one line naming the dataset, writing nothing, as
    evaluate and compare refuse the folder; before, the masks drawn so far were imported as a
    hand-annotated subset without a word. A finished dataset's folder is imported."""
    from typer.testing import CliRunner

    from cli import app

    out = _stopped_synth(tmp_path, monkeypatch)
    bicycle, data = out / "new_classes/bicycle/train", tmp_path / "data"
    for part in ("images/train", "annotations/train"):  # the same scenes, a dataset of its own
        shutil.copytree(out / part, data / part)
    args = ["annotate", "import", str(bicycle), "--format", "png", "--png-binary"]
    args += ["--class", "Bicycle", "--split", "train", "--data", str(data), "--no-progress"]
    subset = tmp_path / "subset"
    res = CliRunner().invoke(app, [*args, "--out", str(subset)])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        f"error: {bicycle}: it lies in the dataset {out}: {STOPPED}; engine annotate import "
        f"would read part of the dataset: {AGAIN}, then run engine annotate import again"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "data"]
    (out / "synth.partial.json").unlink()  # finished (as far as the check goes): imported
    res = CliRunner().invoke(app, [*args, "--out", str(subset)])
    assert res.exit_code == 0, res.output
    assert (subset / "subset.json").is_file()


def test_compare_refuses_a_stopped_synth_given_by_its_spec_as_evaluate_does(
    tmp_path: Path, monkeypatch
):
    """``--gt D/dataset.yaml --split train`` of a stopped synth: engine compare names the
    dataset as engine evaluate does (and as it did before this round's check of folders given
    by themselves), the dataset's own refusal. Before, compare asked the spec file as a folder
    given by itself first: "D/dataset.yaml: it lies in the dataset /abs/D: ...", where evaluate
    said "D: ..." of the same input."""
    out = _stopped_synth(tmp_path, monkeypatch)
    (out / "dataset.yaml").write_text("images: images/{split}\nlabels: annotations/{split}\n")
    gt = ["--gt", str(out / "dataset.yaml"), "--split", "train"]
    readers = {
        "evaluate": [*gt, "--pred", str(tmp_path)],
        "compare": [*gt, "--class", "Bicycle", "--source", f"a={tmp_path}"],
    }
    _refused(tmp_path, out, readers)


def test_a_folder_inside_a_stopped_synth_is_refused_through_a_link_or_dots(
    tmp_path: Path, monkeypatch
):
    """A split's folder of a stopped synth given through a symbolic link to it (``gt ->
    d/annotations/train``) or with ``..`` in its path (``d/images/train/../train``) is refused
    as the folder given plainly is, naming where the link leads. Before, only the folders above
    the path as typed were asked: the link's own (``tmp``), and for ``train/../train`` the
    lexical ``train/..``, ``train`` and ``images`` (not ``d``): both read the scenes drawn so far
    without a word."""
    from typer.testing import CliRunner

    from cli import app

    out = _stopped_synth(tmp_path.resolve(), monkeypatch)  # no link above: one place asked
    labels, other, gt = out / "annotations/train", tmp_path / "other", tmp_path / "gt"
    shutil.copytree(labels, other)
    gt.symlink_to(labels, target_is_directory=True)
    dotted = f"{out}/images/train/../train"
    predict = ["--checkpoint", str(CHECKPOINT), "--images", dotted, "--out", str(tmp_path / "p")]
    readers = {
        "evaluate": (gt, ", through symbolic links,", ["--gt", str(gt), "--pred", str(other)]),
        "predict": (dotted, "", predict),
    }
    for command, (folder, via, args) in readers.items():
        res = CliRunner().invoke(app, [command, *args])
        assert res.exit_code == 2, res.output
        assert " ".join(res.output.split()) == (
            f"error: {folder}: it lies{via} in the dataset {out}: {STOPPED}; engine {command} "
            f"would read part of the dataset: {AGAIN}, then run engine {command} again"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "gt", "other"]


def test_review_refuses_annotations_inside_a_stopped_synth_given_by_themselves(
    tmp_path: Path, monkeypatch
):
    """engine review --gt D/new_classes/bicycle/test, D a dataset engine synth stopped half way
    (one of its two test scenes drawn), is refused in the line evaluate, compare and predict
    give, drawing no gallery: f403911a added the refusal to review untested. D/annotations/test
    is refused first as what it is, a dataset's label maps, not masks of the class, stopped or
    finished (finishing the synth would not make it ground truth). Finished, the masks are
    drawn and scored."""
    from typer.testing import CliRunner

    from cli import app

    out = _stopped_synth(tmp_path, monkeypatch, stop_after=5)
    labels, masks = out / "annotations/test", out / "new_classes/bicycle/test"
    assert [p.stem for p in labels.iterdir()] == [p.stem for p in masks.iterdir()]
    run = _run_on_a_finished_copy(tmp_path, out)  # so --gt alone is refused

    def review(gt: Path) -> tuple[int, str]:
        args = ["review", str(run), "--gt", str(gt), "--out", str(tmp_path / "gallery")]
        res = CliRunner().invoke(app, [*args, "--no-progress"])
        return res.exit_code, " ".join(res.output.split())

    assert review(masks) == (
        2,
        f"error: {masks}: it lies in the dataset {out}: {STOPPED}; engine review would read "
        f"part of the dataset: {AGAIN}, then run engine review again",
    )
    code, said = review(labels)
    assert code == 2 and f"it is a folder of the dataset {out}" in said, said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "d", "run"]
    (out / "synth.partial.json").unlink()  # finished (as far as the check goes)
    code, said = review(labels)
    assert code == 2 and f"it is a folder of the dataset {out}" in said, said
    code, said = review(masks)
    assert code == 0 and (tmp_path / "gallery/review.json").is_file(), said


def test_review_pred_inside_a_stopped_synth_is_refused(tmp_path: Path, monkeypatch):
    """engine review --pred D/new_classes/bicycle/test (or D/annotations/test), D a dataset
    engine synth stopped half way, is refused in the line evaluate --pred gives, drawing no
    gallery; before, review asked --gt only and drew the scenes drawn so far as predictions
    (exit 0). Finished, the folder is drawn as predictions as before."""
    from typer.testing import CliRunner

    from cli import app

    out = _stopped_synth(tmp_path, monkeypatch, stop_after=5)
    labels, masks = out / "annotations/test", out / "new_classes/bicycle/test"
    run = _run_on_a_finished_copy(tmp_path, out)  # so --pred alone is refused

    def review(pred: Path) -> tuple[int, str]:
        args = ["review", str(run), "--pred", str(pred), "--pred-class-id", "1"]
        res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "gallery"), "--no-progress"])
        return res.exit_code, " ".join(res.output.split())

    for pred in (masks, labels):
        assert review(pred) == (
            2,
            f"error: {pred}: it lies in the dataset {out}: {STOPPED}; engine review would read "
            f"part of the dataset: {AGAIN}, then run engine review again",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "d", "run"]
    (out / "synth.partial.json").unlink()  # finished (as far as the check goes): drawn
    code, said = review(masks)
    assert code == 0 and (tmp_path / "gallery/review.json").is_file(), said


def test_info_on_a_folder_of_a_synth_dataset_names_it_and_its_state(tmp_path, monkeypatch):
    """engine info D/new_classes/bicycle/train (or D/annotations/train), D a synth dataset,
    names the dataset it lies in and its state: stopped half way, with the command that
    finishes it, or finished (synth.json). Before, the first ended "no image split folders
    found (...)" naming no dataset, the second "is the dataset root D?" whatever its state."""
    from typer.testing import CliRunner

    from cli import app
    from tests.loop_helpers import make_run

    out = _stopped_synth(tmp_path, monkeypatch)
    folders = (out / "new_classes/bicycle/train", out / "annotations/train")

    def info(folder: Path) -> str:
        res = CliRunner().invoke(app, ["info", str(folder), "--no-progress"])
        assert res.exit_code == 2, res.output
        return " ".join(res.output.split())

    for folder in folders:
        assert info(folder).endswith(f"; it lies in the dataset {out}: {STOPPED}: {AGAIN}")
    (out / "synth.partial.json").rename(out / "synth.json")  # finished, as far as info goes
    for folder in folders:
        assert info(folder).endswith(
            f"; it lies in the dataset {out}, finished (synth.json): is the dataset root {out}?"
        )
    # a label run kept in the dataset's folder: its own folder is named as the run's, nearer
    make_run(out / "bike", out, {"synth_train_0000": []}, (64, 96), split="train")
    assert info(out / "bike/labels/train").endswith(
        f"is a folder inside {out / 'bike'}, a label run (engine label)"
    )


def test_a_dataset_reading_the_images_of_a_stopped_synth_is_refused_and_said_by_info(
    tmp_path: Path, monkeypatch
):
    """A dataset.yaml view over a synth folder (a fused dataset reads its source's images the
    same way: images: ../data/images/{split}) is refused while that synth stopped half way, and
    engine info on it names the folder; before, only the spec's own folder was asked, so the
    view passed engine label's check and info said "No problems found." (exit 0)."""
    from typer.testing import CliRunner

    from cli import app

    out = _stopped_synth(tmp_path, monkeypatch)
    view = tmp_path / "view"
    view.mkdir()
    (view / "dataset.yaml").write_text(
        "images: ../d/images/{split}\nlabels: ../d/annotations/{split}\nsplits: [train]\n"
    )
    res = CliRunner().invoke(app, ["info", str(view), "--no-progress"])
    assert res.exit_code == 1, res.output
    assert f"unfinished: {out} (read by this dataset): {STOPPED}: {AGAIN}\n" in res.output
    assert "No problems found." not in res.output
    run = str(tmp_path / "run")
    label = ["--class", "Bicycle", "--backend", "simulated", "--data", str(view), "--out", run]
    res = CliRunner().invoke(app, ["label", *label])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        f"error: {view}: {out} (read by this dataset): {STOPPED}; engine label would read part "
        f"of the dataset: {AGAIN}, then run engine label again"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "view"]
    assert load_spec(view)._read_folders() == [
        view,
        out / "images/train",
        out / "images",
        out,
        out / "annotations/train",
        out / "annotations",
    ]


def test_train_refusing_a_stopped_synth_keeps_the_last_run_s_logs(tmp_path: Path, monkeypatch):
    """engine train --out OUT over a stopped synth is refused before it takes OUT: the logs a
    run that died before its first checkpoint left there are kept, and no .lock is left; before,
    the refusal came after a fresh run unlinked them, leaving OUT holding its .lock alone."""
    out = _stopped_synth(tmp_path, monkeypatch)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    (run / "resumes.jsonl").write_text("{}\n")
    _refused(tmp_path, out, {"train": ["--data", str(out), "--out", str(run)]}, also=["run"])
    assert sorted(p.name for p in run.iterdir()) == ["metrics.jsonl", "resumes.jsonl"]
    assert (run / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_report_and_annotate_refuse_a_dataset_synth_stopped_half_way(tmp_path: Path, monkeypatch):
    """engine report (the split its photos come from) and annotate export/import/pick and review
    (the split's images, :func:`engine.annotate.dataset_images`) refuse a stopped synth in the
    same line, naming themselves; before, they read the scenes drawn so far as the split."""
    from engine.annotate import dataset_images
    from engine.report import _split_data

    out = _stopped_synth(tmp_path, monkeypatch)

    def said(command: str) -> str:
        return (
            f"{out}: {STOPPED}; {command} would read part of the dataset: {AGAIN}, then run "
            f"{command} again"
        )

    with pytest.raises(ValueError) as e:
        _split_data(out, "train", False)
    assert str(e.value) == said("engine report")
    with pytest.raises(ValueError) as e:
        dataset_images(out, None, "train", "engine annotate import")
    assert str(e.value) == said("engine annotate import")
    (out / "synth.partial.json").unlink()  # finished (as far as the check goes): read as before
    stems = [s.stem for s in _split_data(out, "train", False).samples]
    drawn = [stem_of("train", i) for i in range(3)]
    assert stems == list(dataset_images(out, None, "train", "x")) == drawn
