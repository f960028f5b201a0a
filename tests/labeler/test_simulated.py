"""The simulated labeler: pure simulation of Grounded-SAM's failure modes from true masks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage

from labeler.simulated import (
    SimulationConfig,
    image_rng,
    load_truth,
    simulate_cropped,
    simulate_labels,
)
from tests.loop_helpers import disk

H, W = 120, 160
EXACT = SimulationConfig(
    miss_max=0, fill_radius=0, fill_holes=False, boundary_shift=0, false_positive_rate=0
)


def _wheel(cy=60, cx=80, r=30):
    ring = disk(H, W, cy, cx, r) & ~disk(H, W, cy, cx, r - 3)
    spokes = np.zeros((H, W), bool)
    for a in np.linspace(0, np.pi, 4, endpoint=False):
        t = np.linspace(-r, r, 200)
        ys, xs = np.round(cy + t * np.sin(a)).astype(int), np.round(cx + t * np.cos(a)).astype(int)
        spokes[ys, xs] = True
    return ring | spokes


def test_class_absent_gives_empty():
    inst, probs = simulate_labels(np.zeros((H, W), np.int32), config=EXACT)
    assert len(inst) == 0 and inst.masks.shape == (0, H, W) and probs.shape == (0, H, W)


def test_whole_image_instance_is_kept_exactly_without_errors():
    inst, probs = simulate_labels(np.ones((H, W), np.int32), config=EXACT)
    assert len(inst) == 1 and inst.masks[0].all()
    assert probs.min() > 0.5


def test_no_errors_reproduces_truth():
    ids = np.zeros((H, W), np.int32)
    ids[disk(H, W, 40, 40, 20)] = 1
    ids[disk(H, W, 80, 120, 15)] = 2
    inst, probs = simulate_labels(ids, config=EXACT, class_id=7)
    assert len(inst) == 2 and inst.class_ids.tolist() == [7, 7]
    assert np.array_equal(inst.masks.any(0), ids > 0)
    assert np.array_equal(probs > 0.5, inst.masks)
    assert inst.xyxy[0].tolist() == [20, 20, 61, 61]


def test_small_instances_are_missed_more_often():
    cfg = SimulationConfig(
        miss_area=0.005, miss_max=0.9, fill_radius=0, boundary_shift=0, false_positive_rate=0
    )
    kept = {}
    for r in (2, 5, 12):  # areas ~13, ~80, ~450 px; miss_area * H * W = 96 px
        ids = disk(H, W, 60, 80, r).astype(np.int32)
        kept[r] = np.mean(
            [
                len(simulate_labels(ids, config=cfg, rng=np.random.default_rng(s))[0])
                for s in range(120)
            ]
        )
    assert kept[2] < 0.2 < kept[5] < kept[12]
    assert kept[12] > 0.85


def test_thin_interior_structure_is_filled():
    wheel = _wheel()
    cfg = SimulationConfig(miss_max=0, boundary_shift=0, false_positive_rate=0)
    inst, _ = simulate_labels(wheel.astype(np.int32), config=cfg)
    solid = disk(H, W, 60, 80, 30)
    assert wheel.sum() < 0.5 * solid.sum()
    assert (inst.masks[0] == solid).mean() > 0.99  # spokes and the gaps between them: solid
    off = SimulationConfig(
        miss_max=0, fill_radius=0, fill_holes=False, boundary_shift=0, false_positive_rate=0
    )
    assert np.array_equal(simulate_labels(wheel.astype(np.int32), config=off)[0].masks[0], wheel)


def test_boundary_shift_stays_within_band():
    truth = disk(H, W, 60, 80, 35)
    cfg = SimulationConfig(miss_max=0, fill_radius=0, boundary_shift=3, false_positive_rate=0)
    changed = 0
    for s in range(5):
        inst, _ = simulate_labels(truth.astype(np.int32), config=cfg, rng=np.random.default_rng(s))
        diff = inst.masks[0] ^ truth
        dist = np.where(
            truth, ndimage.distance_transform_edt(truth), ndimage.distance_transform_edt(~truth)
        )
        assert dist[diff].max(initial=0) <= 3 + 1
        changed += diff.sum()
    assert changed > 50


def test_false_positive_lands_on_other_objects():
    ids = np.zeros((H, W), np.int32)
    ids[disk(H, W, 30, 30, 15)] = 1
    car = np.zeros((H, W), bool)
    car[80:100, 100:150] = True
    others = car | (ids > 0)  # the class itself is also Others in the 7-class label
    cfg = SimulationConfig(miss_max=0, fill_radius=0, boundary_shift=0, false_positive_rate=1)
    inst, _ = simulate_labels(ids, others=others, config=cfg)
    assert len(inst) == 2
    assert np.array_equal(inst.masks[1], car)
    assert inst.scores[1] < 0.5 <= inst.scores[0] or inst.scores[1] < inst.scores[0]
    blob_only, _ = simulate_labels(np.zeros((H, W), np.int32), config=cfg)
    assert len(blob_only) == 1 and 0 < blob_only.masks[0].sum() < 0.05 * H * W


def test_seeded_per_image():
    ids = _wheel().astype(np.int32)
    a, pa = simulate_labels(ids, rng=image_rng(3, "test", "x"))
    b, pb = simulate_labels(ids, rng=image_rng(3, "test", "x"))
    c, _ = simulate_labels(ids, rng=image_rng(3, "test", "y"))
    assert np.array_equal(a.masks, b.masks) and np.array_equal(pa, pb)
    assert len(c) != len(a) or not np.array_equal(a.masks, c.masks)


def test_bad_options_and_shapes():
    with pytest.raises(ValueError, match="miss_max must be in"):
        SimulationConfig(miss_max=2)
    with pytest.raises(ValueError, match="unknown options"):
        SimulationConfig.from_dict({"seeed": 1})
    with pytest.raises(ValueError, match="instance_ids must be"):
        simulate_labels(np.zeros(5))


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        # `--backend-option miss_area=.nan` (YAML's nan): nothing was ever missed, unsaid
        ("miss_area", ".nan", "miss_area must be a finite number, got nan"),
        ("boundary_shift", ".inf", "boundary_shift must be a finite number, got inf"),
        ("fill_radius", "-.inf", "fill_radius must be a finite number, got -inf"),
        # 1e3 diagonals of padding per box: the run was killed for memory
        ("fill_radius", "1e3", "fill_radius must be in [0, 1], got 1000.0"),
        ("fill_radius", "1.5", "fill_radius must be in [0, 1], got 1.5"),
        # every image failed in numpy's generator ("expected non-negative integer")
        ("seed", "-1", "seed must be >= 0, got -1"),
        ("min_area", "-1", "min_area must be >= 0, got -1"),  # was read as 1
    ],
)
def test_backend_options_out_of_range(option, value, message):
    from annotations.fileio import yaml_scalar

    with pytest.raises(ValueError) as e:
        SimulationConfig.from_dict({option: yaml_scalar(value)})
    assert str(e.value) == f"simulated labeler: {message}"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [  # a Python caller's nan or inf in an int field passed every check (nan < 0 is False)
        ("seed", math.nan, "seed must be a finite number, got nan"),
        ("min_area", math.inf, "min_area must be a finite number, got inf"),
        ("min_area", 2.5, "min_area must be a whole number, got 2.5"),  # as a file's is
        ("miss_max", math.nan, "miss_max must be a finite number, got nan"),
    ],
)
def test_a_caller_s_number_that_is_not_finite_or_whole_is_refused(option, value, message):
    with pytest.raises(ValueError) as e:
        SimulationConfig(**{option: value})
    assert str(e.value) == f"simulated labeler: {message}"
    assert SimulationConfig(seed=3.0, min_area=4.0).min_area == 4  # whole: taken, as before


def test_backend_options_at_their_bounds():
    cfg = SimulationConfig.from_dict(
        {"fill_radius": 1, "seed": 0, "min_area": 0, "miss_area": 0.0, "boundary_shift": 0}
    )
    assert (cfg.fill_radius, cfg.seed, cfg.min_area, cfg.miss_area) == (1, 0, 0, 0.0)
    assert SimulationConfig(fill_radius=0.0, seed=2**63).seed == 2**63  # numpy takes any size


def test_load_truth(tmp_path):
    import cv2

    from annotations.labelmap import write_label

    ids = np.zeros((H, W), np.uint16)
    ids[:10, :10] = 1
    ids[50:60, 50:60] = 300
    p = tmp_path / "new_class_instances" / "bicycle" / "test" / "a.png"
    p.parent.mkdir(parents=True)
    cv2.imwrite(str(p), ids)
    assert load_truth(tmp_path, "Bicycle", "test", "a").max() == 300
    write_label(tmp_path / "new_classes" / "car" / "test" / "a.png", (ids > 0).astype(np.uint8))
    comp = load_truth(tmp_path, "Car", "test", "a")
    assert comp.max() == 2
    with pytest.raises(FileNotFoundError, match="needs the true masks of 'Bus'"):
        load_truth(tmp_path, "Bus", "test", "a")
    # truth kept under another spelling of the class (engine report scores it from there): the
    # labeler read only the name as typed and lower-cased, and refused the class
    write_label(
        tmp_path / "new_classes" / "Traffic light" / "test" / "a.png", (ids > 0).astype(np.uint8)
    )
    assert load_truth(tmp_path, "traffic light", "test", "a").max() == 2
    assert load_truth(tmp_path, "TRAFFIC LIGHT", "test", "a").max() == 2


def test_class_spec_min_area_and_max_instances_apply_as_in_the_model_backends():
    """--min-area and --max-instances filter the simulated instances too (before, they were
    recorded in run.json and ignored); the defaults keep every one."""
    from types import SimpleNamespace

    from labeler.config import ClassSpec
    from labeler.simulated import SimulatedBackend

    ids = np.zeros((H, W), np.int32)
    for value, (cy, cx, r) in enumerate(((20, 20, 4), (60, 60, 12), (60, 120, 25)), start=1):
        ids[disk(H, W, cy, cx, r)] = value
    inst, probs = simulate_labels(ids, config=EXACT)
    areas = inst.areas.tolist()
    assert len(inst) == 3 and areas[0] < 100 < areas[1] < 500 < areas[2]
    backend = SimulatedBackend.__new__(SimulatedBackend)  # the rules read only the class spec

    def rules(**spec):
        backend.config = SimpleNamespace(cls=ClassSpec(name="Bicycle", **spec))
        return backend._class_rules(inst, probs)

    kept, kept_probs = rules()  # defaults: min_area 0, max_instances 100
    assert kept is inst and kept_probs is probs
    kept, kept_probs = rules(min_area=100)
    assert kept.areas.tolist() == areas[1:] and np.array_equal(kept_probs, probs[1:])
    best = int(np.argmax(inst.scores))
    kept, _ = rules(max_instances=1)
    assert len(kept) == 1 and kept.scores[0] == inst.scores[best]
    kept, _ = rules(min_area=500, max_instances=2)
    assert kept.areas.tolist() == areas[2:]
    # the backend's cropped instances: the same instances kept, in their windows
    from labeler.crops import CroppedInstances

    cropped = simulate_cropped(ids, config=EXACT)
    for spec in (
        {},
        {"min_area": 100},
        {"max_instances": 1},
        {"min_area": 500, "max_instances": 2},
    ):
        backend.config = SimpleNamespace(cls=ClassSpec(name="Bicycle", **spec))
        got, none = backend._class_rules(cropped)
        want = CroppedInstances.from_instances(*backend._class_rules(inst, probs))
        assert none is None and got.to_json(image="a") == want.to_json(image="a")
        assert all(np.array_equal(a, b) for a, b in zip(got.probs, want.probs, strict=True))


# -- through the labeling runner and `engine label` --------------------------------------------
def _engine(*args: str):
    """Run ``engine`` in a subprocess: the runner's decode threads then never live in the test
    process, whose later tests fork metric workers."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**__import__("os").environ, "PYTHONPATH": str(root), "COLUMNS": "200"}
    res = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=300,
    )
    res.output = res.stdout + res.stderr
    return res


def test_engine_label_backend_simulated(tmp_path):
    import json

    from annotations.instances import read_instances
    from annotations.labelrun import LabelRun

    # synth in a subprocess as well: generating in-process and then forking metric workers in
    # the same pytest process hung (tests/test_evaluate.py); see docs/loop.md
    root = tmp_path / "synth"
    made = _engine("synth", "--out", str(root), "--train", "0", "--val", "0", "--test", "3",
                   "--size", "192x144", "--no-progress")  # fmt: skip
    assert made.returncode == 0, made.output
    out = tmp_path / "run"
    args = [
        "--class",
        "Bicycle",
        "--data",
        str(root),
        "--out",
        str(out),
        "--backend",
        "simulated",
        "--backend-option",
        "seed=3",
        "--backend-option",
        "false_positive_rate=0",
        "--no-progress",
    ]
    res = _engine("label", *args)
    assert res.returncode == 0, res.output
    assert "SIMULATED" in res.output
    run = LabelRun.open(out)
    assert run.backend == "simulated" and run.class_name == "Bicycle"
    meta = json.loads((out / "run.json").read_text())
    assert meta["backend"]["identity"]["simulation"]["seed"] == 3
    assert "SIMULATED" in meta["backend"]["models"]["note"]
    assert meta["config"]["detector"] == meta["config"]["segmenter"] == "none (simulated backend)"
    stems = run.stems("test")
    assert len(stems) == 3
    for stem in stems:
        inst, header = read_instances(out / "instances" / "test" / f"{stem}.json")
        assert header["backend"] == "simulated"
        assert all(p == "simulated:bicycle" for p in inst.prompts)
        ids = load_truth(root, "Bicycle", "test", stem)
        boxes = np.zeros(ids.shape, bool)  # true instances' boxes grown by the shift (2 px) + 1
        for v in np.unique(ids[ids > 0]):
            ys, xs = np.nonzero(ids == v)
            boxes[max(0, ys.min() - 3) : ys.max() + 4, max(0, xs.min() - 3) : xs.max() + 4] = True
        label = run.label("test", stem)
        assert not (label[~boxes] == 1).any()  # no false positive was asked for
    res = _engine("label", *args)  # resume: nothing left to do
    assert res.returncode == 0 and "already done (skipped)" in res.output
    assert "warning" not in res.output
    # other settings relabel every image, as documented, and say so first
    res = _engine("label", *args, "--min-area", "5")
    text = " ".join(res.output.split())
    assert res.returncode == 0 and "labelled now │ 3" in text
    assert f"warning: {out}: 3 images labelled with other settings (cls.min_area 0 -> 5)" in text
    # kept in run.json, and engine info RUN shows it: a run under nohup, its console gone,
    # said nothing of it before the forty-fourth round
    (kept,) = json.loads((out / "run.json").read_text())["warnings"]
    assert kept.startswith(f"{out}: 3 images labelled with other settings (cls.min_area 0 -> 5)")
    info = " ".join(_engine("info", str(out)).output.split())
    assert f"warning (engine label): {out}: 3 images labelled with other settings" in info

    # another class is another run: refused, naming the class the folder holds, and nothing
    # of the Bicycle run is touched
    def files() -> dict:  # but the lock file, which names the last process that held it
        return {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}

    before = files()
    other = _engine("label", *[("Car" if a == "Bicycle" else a) for a in args])
    assert other.returncode == 2, other.output
    assert " ".join(other.output.split()) == (
        f"error: {out}: a label run of Bicycle; labeling Car here would replace its labels "
        "(read as Bicycle by what was made from them): give another --out (by default "
        "runs/label/car), or --force to replace the run"
    )
    assert files() == before
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import check_same_class

    car = LabelConfig(data=str(root), cls=ClassSpec("Car"), out=str(out))
    with pytest.raises(ValueError, match="a label run of Bicycle; labeling Car here"):
        check_same_class(out, car)
    check_same_class(out, LabelConfig(data=str(root), cls=ClassSpec("bicycle"), out=str(out)))
    check_same_class(out, dataclasses.replace(car, force=True))  # --force: replace the run
    bad = _engine("label", *args[:-3], "--backend-option", "seeed=1", "--no-progress", "--force")
    assert bad.returncode == 2 and "unknown options ['seeed']" in bad.output
    # detector settings mean nothing to it: refused rather than recorded in run.json unused
    bad = _engine("label", *args, "--box-threshold", "0.5", "--detector", "x")
    assert bad.returncode == 2
    assert "error: --detector, --box-threshold: --backend simulated runs no" in bad.output


def test_a_run_reruns_from_its_run_json_alone_to_the_same_bytes(tmp_path):
    """What a colleague with only the run folder does: run.json's config.cls as the class spec
    file, the backend options it records as given (config.extra), the dataset it names: the
    same labels, confidence and instances, byte for byte, and the same settings hash. Before,
    run.json's class spec was refused as a spec file ("unknown keys ['name']")."""
    import json

    import yaml

    root = tmp_path / "synth"
    made = _engine("synth", "--out", str(root), "--train", "0", "--val", "0", "--test", "2",
                   "--size", "128x96", "--seed", "2", "--no-progress")  # fmt: skip
    assert made.returncode == 0, made.output
    first = tmp_path / "first"
    res = _engine("label", "--class", "Bicycle", "--data", str(root), "--out", str(first),
                  "--backend", "simulated", "--backend-option", "seed=4", "--min-area", "5",
                  "--no-progress")  # fmt: skip
    assert res.returncode == 0, res.output
    record = json.loads((first / "run.json").read_text())
    cls = record["config"]["cls"]
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({cls["name"]: cls}))
    options = [  # the options given (config.extra): the hash is of those, not of the defaults
        arg
        for k, v in record["config"]["extra"].items()
        for arg in ("--backend-option", f"{k}={v}")
    ]
    again = tmp_path / "again"
    res = _engine("label", "--class", cls["name"], "--data", record["data_resolved"],
                  "--out", str(again), "--backend", record["config"]["backend"], "--spec",
                  str(tmp_path / "spec.yaml"), *options, "--no-progress")  # fmt: skip
    assert res.returncode == 0, res.output
    assert json.loads((again / "run.json").read_text())["config_hash"] == record["config_hash"]
    for kind in ("labels", "confidence", "instances"):
        files = sorted((first / kind).rglob("*.*"))
        assert files and all(
            (again / f.relative_to(first)).read_bytes() == f.read_bytes() for f in files
        ), kind


def test_a_default_option_spelled_out_resumes_the_run_without_labelling_again(tmp_path):
    """``--backend-option seed=0`` (a default) on a run made without it, and the reverse: the
    same settings, so the rerun resumes under the recorded spelling, nothing labelled again.
    Before, the options were hashed as typed and every image was labelled again ("labelled
    with older settings"); a value that differs still relabels."""
    import json

    root = tmp_path / "synth"
    made = _engine("synth", "--out", str(root), "--train", "0", "--val", "0", "--test", "2",
                   "--size", "128x96", "--no-progress")  # fmt: skip
    assert made.returncode == 0, made.output
    for first, again in (([], ["seed=0", "miss_max=0.9"]), (["seed=0"], [])):
        run = tmp_path / f"run{len(first)}"
        label = ["label", "--class", "Bicycle", "--data", str(root), "--out", str(run),
                 "--backend", "simulated", "--no-progress"]  # fmt: skip
        res = _engine(*label, *(a for o in first for a in ("--backend-option", o)))
        assert res.returncode == 0, res.output
        record = (run / "run.json").read_bytes()
        manifest = (run / "manifest.jsonl").read_bytes()
        res = _engine(*label, *(a for o in again for a in ("--backend-option", o)))
        assert res.returncode == 0, res.output
        assert (run / "manifest.jsonl").read_bytes() == manifest, res.output  # none relabelled
        assert (run / "run.json").read_bytes() == record
    res = _engine(*label, "--backend-option", "seed=1")  # another seed: other labels
    assert res.returncode == 0, res.output
    lines = (run / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["status"] == "ok"


def test_truth_in_a_folder_spelled_otherwise_is_found_up_front(tmp_path):
    """The up-front check looked for the folder as typed and lower-cased only, where each image
    finds its truth by class_key: --class STRASSENBAHN on new_classes/Straßenbahn/, and --class
    Vélo on a folder copied from macOS (e + U+0301), were refused as datasets without truth."""
    import unicodedata

    from annotations.labelmap import write_label
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import run_labeling
    from tests.loop_helpers import make_dataset

    make_dataset(tmp_path / "data", "test", n=1, size=(8, 8))
    for folder, typed in (
        ("Straßenbahn", "STRASSENBAHN"),
        (unicodedata.normalize("NFD", "Vélo"), "Vélo"),
    ):
        write_label(
            tmp_path / f"data/new_classes/{folder}/test/img000.png", np.ones((8, 8), np.uint8)
        )
        cfg = LabelConfig(data=str(tmp_path / "data"), cls=ClassSpec(typed),
                          out=str(tmp_path / folder), backend="simulated", progress=False)  # fmt: skip
        run_labeling(cfg)
        assert (tmp_path / folder / "labels/test/img000.png").is_file()


def test_a_simulated_run_records_no_torch_facts_though_torch_is_loaded(tmp_path):
    """run.json took torch's kernel set, threads and GPUs whenever torch happened to be
    imported (a notebook, the demo after training): the SIMULATED labeler computes nothing
    with torch, and the same run from a fresh ``engine label`` recorded none."""
    import json

    import torch  # noqa: F401  (loaded, as in a notebook)

    from annotations.labelmap import write_label
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import run_labeling
    from tests.loop_helpers import make_dataset

    make_dataset(tmp_path / "data", "test", n=1, size=(8, 8))
    write_label(tmp_path / "data/new_classes/Car/test/img000.png", np.ones((8, 8), np.uint8))
    cfg = LabelConfig(data=str(tmp_path / "data"), cls=ClassSpec("Car"), out=str(tmp_path / "run"),
                      backend="simulated", progress=False)  # fmt: skip
    run_labeling(cfg)
    env = json.loads((tmp_path / "run" / "run.json").read_text())["environment"]
    assert "packages" in env and "cpu_capability" not in env and "torch_threads" not in env


def test_a_dataset_without_the_class_truth_is_refused_up_front(tmp_path):
    """Without any true masks of the class the simulated labeler stops before the first image
    (it used to fail every image alone, each saying the same)."""
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import run_labeling
    from tests.loop_helpers import make_dataset

    make_dataset(tmp_path / "data", "test", n=2)
    cfg = LabelConfig(data=str(tmp_path / "data"), cls=ClassSpec("Car"), out=str(tmp_path / "run"),
                      backend="simulated", progress=False)  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"needs the true masks of 'Car' .* has none$"):
        run_labeling(cfg)


def test_the_parent_class_is_read_where_the_spec_puts_labels_and_in_colour(tmp_path):
    """The simulated labeler read the parent class (Others) from a hard-coded annotations/
    folder without the taxonomy: a dataset whose spec puts labels elsewhere lost the parent
    constraint without a word, and a colour-coded label failed its image."""
    from PIL import Image

    from annotations.labelmap import label_to_rgb
    from annotations.taxonomy import MASS13K
    from labeler.config import ClassSpec, LabelConfig
    from labeler.simulated import SimulatedBackend

    data = tmp_path / "data"
    (data / "images" / "test").mkdir(parents=True)
    (data / "gt" / "test").mkdir(parents=True)
    (data / "dataset.yaml").write_text("images: images/{split}\nlabels: gt/{split}\n")
    label = np.zeros((6, 8), np.uint8)
    label[:, 4:] = 3
    Image.fromarray(label_to_rgb(label, MASS13K)).save(data / "gt" / "test" / "a.png")
    cfg = LabelConfig(data=str(data), cls=ClassSpec("Bicycle"), out=str(tmp_path / "run"),
                      backend="simulated")  # fmt: skip
    backend = SimulatedBackend(cfg, 7)
    np.testing.assert_array_equal(backend._others("test", "a", (6, 8)), label == 0)
    # a single-channel label is read unchecked, as before: a value no class has (200) is no
    # reason to fail the image, whose parent pixels are all the labeler uses
    label[0, 0] = 200
    Image.fromarray(label).save(data / "gt" / "test" / "a.png")
    np.testing.assert_array_equal(backend._others("test", "a", (6, 8)), label == 0)


def test_the_parent_class_is_read_from_a_label_with_an_uppercase_suffix(tmp_path):
    """A dataset lists ``a.PNG`` as ``a``'s label (suffixes in any case), but the simulated
    labeler looked only for ``a.png``: it found none and put its false positives anywhere,
    so a dataset of ``.PNG`` labels gave other pseudo labels than the same one of ``.png``."""
    from PIL import Image

    from labeler.config import ClassSpec, LabelConfig
    from labeler.simulated import SimulatedBackend

    data = tmp_path / "data"
    (data / "annotations" / "test").mkdir(parents=True)
    label = np.zeros((6, 8), np.uint8)
    label[:, 4:] = 3
    Image.fromarray(label).save(data / "annotations" / "test" / "a.PNG")
    cfg = LabelConfig(data=str(data), cls=ClassSpec("Bicycle"), out=str(tmp_path / "run"),
                      backend="simulated")  # fmt: skip
    backend = SimulatedBackend(cfg, 7)
    np.testing.assert_array_equal(backend._others("test", "a", (6, 8)), label == 0)
    assert backend._others("test", "b", (6, 8)) is None  # no label: as before


def test_a_parent_label_pillow_refuses_is_named_as_its_file(tmp_path):
    """A label whose header declares a decompression bomb (Pillow's DecompressionBombError, no
    OSError) escaped the simulated labeler's header check as Pillow's bare "Image size ...
    exceeds limit" naming no file; now read_label names it, as every other reader does."""
    from labeler.config import ClassSpec, LabelConfig
    from labeler.simulated import SimulatedBackend
    from tests.engine.test_datasets import _png

    data = tmp_path / "data"
    (data / "annotations" / "test").mkdir(parents=True)
    path = _png(data / "annotations" / "test" / "a.png", 100_000, 100_000)
    cfg = LabelConfig(data=str(data), cls=ClassSpec("Bicycle"), out=str(tmp_path / "run"),
                      backend="simulated")  # fmt: skip
    with pytest.raises(ValueError) as e:
        SimulatedBackend(cfg, 7)._others("test", "a", (6, 8))
    assert str(e.value).startswith(f"{path}: cannot ") and "decompression bomb" in str(e.value)


def test_working_memory_at_4k_is_not_several_full_size_copies():
    """At 4032x3024 the simulation held, besides what it returns, a float64 copy of the image
    for the false positive's component sizes (a map of ones summed per component) and every
    probability map twice (a list stacked, then copied by ``astype``): 329 MB above its 305 MB
    result with four wheels and a false positive. Now about 90 MB."""
    import tracemalloc

    import cv2

    h, w = 3024, 4032
    ids = np.zeros((h, w), np.int32)
    for k in range(4):
        cv2.circle(ids, (500 + 900 * k, 1800), 300, k + 1, 20)
    others = np.zeros((h, w), bool)
    others[200:600, 200:900] = others[2500:2900, 3000:3600] = True
    cfg = SimulationConfig(miss_max=0, false_positive_rate=1)
    tracemalloc.start()
    try:
        inst, probs = simulate_labels(ids, others=others, config=cfg, rng=image_rng(0, "t", "a"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(inst) == 5 and probs.dtype == np.float32
    held = inst.masks.nbytes + probs.nbytes
    assert peak - held < 160e6, f"{(peak - held) / 1e6:.0f} MB above the result"
    # the runner's form holds no full-size map per instance: 12 wheels as little as 5
    for k in range(4, 12):
        cv2.circle(ids, (300 + 450 * (k - 4), 700), 150, k + 1, 12)
    tracemalloc.start()
    try:
        cropped = simulate_cropped(ids, others=others, config=cfg, rng=image_rng(0, "t", "a"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(cropped) == 13
    assert peak < 300e6, f"{peak / 1e6:.0f} MB for 13 instances (full size: 60 MB each)"


@pytest.mark.parametrize("seed", range(6))
def test_cropped_instances_are_those_the_writer_made_of_the_full_size_ones(seed):
    """simulate_cropped gives what CroppedInstances.from_instances made of simulate_labels'
    output (the writer's step before): the same windows, masks, probabilities, boxes and
    scores, so the files written are the same bytes."""
    from labeler.crops import CroppedInstances

    ids = np.zeros((H, W), np.int32)
    ids[_wheel()] = 1
    ids[disk(H, W, 20, 140, 12)] = 2
    ids[disk(H, W, 110, 5, 9)] = 3  # cut by the frame
    others = np.zeros((H, W), bool)
    others[90:118, 100:158] = True
    cfg = SimulationConfig(false_positive_rate=0.7, miss_max=0.5)
    args = dict(others=others, config=cfg, class_id=7, prompt="p")
    inst, probs = simulate_labels(ids, rng=image_rng(seed, "test", "a"), **args)
    want = CroppedInstances.from_instances(inst, probs)
    got = simulate_cropped(ids, rng=image_rng(seed, "test", "a"), **args)
    assert len(got) == len(want)
    for name in ("xyxy", "scores", "mask_scores", "class_ids"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert got.prompts == want.prompts
    for a, b, pa, pb in zip(got.masks, want.masks, got.probs, want.probs, strict=True):
        assert (a.y0, a.x0) == (b.y0, b.x0) and np.array_equal(a.mask, b.mask)
        assert pa.dtype == pb.dtype and np.array_equal(pa, pb)
    assert got.to_json(image="a") == want.to_json(image="a")


def test_the_backend_hands_the_writers_cropped_instances(tmp_path):
    """The backend handed the writers full-size masks and probabilities (5 bytes a pixel per
    instance), which waited in their queue for a whole batch: about 1 GB for four 4K images of
    four instances. It crops them as the writer did (same files), to the instances' windows."""
    import cv2

    from labeler.backends import LoadedImage
    from labeler.config import ClassSpec, LabelConfig
    from labeler.crops import CroppedInstances
    from labeler.run import output_nbytes
    from labeler.simulated import SimulatedBackend

    h, w = 480, 640
    data = tmp_path / "data"
    for sub in ("images/test", "annotations/test", "new_class_instances/bicycle/test"):
        (data / sub).mkdir(parents=True)
    ids = np.zeros((h, w), np.uint16)
    ids[disk(h, w, 100, 100, 30)] = 1
    ids[disk(h, w, 300, 500, 40)] = 2
    cv2.imwrite(str(data / "new_class_instances/bicycle/test/a.png"), ids)
    cv2.imwrite(str(data / "annotations/test/a.png"), np.where(ids > 0, 0, 4).astype(np.uint8))
    image = np.zeros((h, w, 3), np.uint8)
    cv2.imwrite(str(data / "images/test/a.jpg"), image)
    cfg = LabelConfig(data=str(data), cls=ClassSpec("Bicycle"), out=str(tmp_path / "run"),
                      backend="simulated", extra={"miss_max": 0})  # fmt: skip
    backend = SimulatedBackend(cfg, 7)
    (out,) = backend.label([LoadedImage("test", "a", data / "images/test/a.jpg", image)])
    assert isinstance(out.instances, CroppedInstances) and len(out.instances) >= 2
    assert output_nbytes(out) < 0.2 * len(out.instances) * h * w * 5


def _label_run_digest(run) -> str:
    """sha256 of a label run's outputs as data: every PNG's decoded pixels (independent of the
    PNG encoder's version) and every instance file's JSON, with their paths."""
    import hashlib
    import json

    from PIL import Image

    h = hashlib.sha256()
    for p in sorted(run.rglob("*")):
        rel = p.relative_to(run).as_posix()
        if not p.is_file() or rel.split("/")[0] not in ("labels", "confidence", "instances"):
            continue
        h.update(rel.encode())
        if p.suffix == ".png":
            a = np.asarray(Image.open(p))
            h.update(f"{a.shape}{a.dtype}".encode() + a.tobytes())
        else:
            h.update(json.dumps(json.loads(p.read_text()), sort_keys=True).encode())
    return h.hexdigest()


def test_the_simulated_labels_are_those_of_the_documented_labeler(tmp_path):
    """The simulated labeler's outputs, pinned: the digests were taken with the code of d98416d
    (before the forty-first round kept each instance in its window) on the same synthetic data.
    The labeler's documented error rates are part of the demo's contract; the tests that compare
    ``simulate_cropped`` with ``simulate_labels`` cannot see a change both share."""
    data = tmp_path / "d"
    made = _engine("synth", "--out", str(data), "--train", "3", "--val", "0", "--test", "3",
                   "--size", "256x192", "--no-progress")  # fmt: skip
    assert made.returncode == 0, made.output
    runs = {
        # every image draws a false positive; a class spec's --min-area and --max-instances;
        # the defaults
        "a": (["--class", "Bicycle", "--backend-option", "false_positive_rate=1"],
              "83573a4106121a4864e5fc896d12f95c115da1d157eeb09054e50e92706028d6"),
        "b": (["--class", "Car", "--min-area", "300", "--max-instances", "1"],
              "f585191d8bae049dffd907622c703a7024d4d5cac304adbdad3afe532e316218"),
        "c": (["--class", "Bicycle"],
              "39d53938de321e254dc38942f2ae1eacc7b4a92333549d45c955d88c14c4784c"),
    }  # fmt: skip
    for name, (args, want) in runs.items():
        out = tmp_path / name
        res = _engine("label", *args, "--data", str(data), "--out", str(out),
                      "--backend", "simulated", "--no-progress")  # fmt: skip
        assert res.returncode == 0, res.output
        assert _label_run_digest(out) == want, name


def test_the_parent_class_is_read_from_a_label_named_by_the_spec(tmp_path):
    """A spec's label_suffix and recursive (Cityscapes: gtFine/test/<city>/a_gtFine_labelTrainIds
    .png): the labeler looked only for labels/test/a.png, found none and put its false
    positives anywhere, outside the parent class."""
    from PIL import Image

    from labeler.config import ClassSpec, LabelConfig
    from labeler.simulated import SimulatedBackend

    data = tmp_path / "data"
    (data / "gt" / "test" / "city").mkdir(parents=True)
    (data / "dataset.yaml").write_text(
        "images: img/{split}\nlabels: gt/{split}\nlabel_suffix: _gtFine_labelTrainIds.png\n"
        "recursive: true\n"
    )
    label = np.zeros((6, 8), np.uint8)
    label[:, 4:] = 3
    Image.fromarray(label).save(data / "gt" / "test" / "city" / "a_gtFine_labelTrainIds.png")
    Image.fromarray(label * 0 + 3).save(data / "gt" / "test" / "city" / "a_gtFine_labelIds.png")
    cfg = LabelConfig(data=str(data), cls=ClassSpec("Bicycle"), out=str(tmp_path / "run"),
                      backend="simulated")  # fmt: skip
    backend = SimulatedBackend(cfg, 7)
    np.testing.assert_array_equal(backend._others("test", "a", (6, 8)), label == 0)


def test_a_resumed_label_run_keeps_the_warnings_of_the_calls_before():
    """run.json written again by a call that keeps the run's labels (the same settings) keeps
    the earlier calls' warnings with their time; one that labels everything again (other
    settings, --force) does not: none of their labels is left."""
    from engine.info import said_by
    from engine.runinfo import warnings_entry
    from labeler.run import _same_run

    first = {"config_hash": "h", "environment": {"time": "t0"}, "warnings": ["RUN: said"]}
    kept = warnings_entry(["RUN: again"], _same_run(first, "h"))
    assert kept["earlier_warnings"] == [{"time": "t0", "warnings": ["RUN: said"]}]
    assert said_by(kept, "engine label") == [
        "warning (engine label, call of t0): RUN: said",
        "warning (engine label): RUN: again",
    ]
    assert _same_run(first, "other") is None and _same_run(None, "h") is None


def test_an_image_name_that_is_not_utf8_is_labelled(tmp_path):
    """A dataset copied from a latin-1 system holds ``caf\\xe9.jpg`` (read with a surrogate for
    the byte). The simulated labeler read its true instance map with ``cv2.imread(str)``, which
    crashed the process (a segmentation fault, no message: ``engine label`` exit code -11,
    nothing written after it), and then seeded the image's errors from the name's UTF-8, which
    failed it (``UnicodeEncodeError: ... surrogates not allowed``)."""
    import os

    root = tmp_path / "synth"
    made = _engine("synth", "--out", str(root), "--train", "0", "--val", "0", "--test", "2",
                   "--size", "96x64", "--no-progress")  # fmt: skip
    assert made.returncode == 0, made.output
    for path in sorted(root.rglob("synth_test_0001.*")):
        os.rename(
            path, os.path.join(os.fsencode(path.parent), b"caf\xe9" + os.fsencode(path.suffix))
        )
    out = tmp_path / "run"
    res = _engine("label", "--class", "Bicycle", "--data", str(root), "--out", str(out),
                  "--backend", "simulated", "--no-progress")  # fmt: skip
    assert res.returncode == 0, res.output
    assert os.path.isfile(os.path.join(os.fsencode(out / "labels" / "test"), b"caf\xe9.png"))


def test_the_failure_draws_of_every_utf8_name_are_those_before_the_forty_sixth_round(tmp_path):
    """The documented failure rates stand for Grounded-SAM's: the change that let a name that is
    not UTF-8 through (its seed from the name's own bytes, the truth map decoded from bytes)
    must leave every other image's draws and truth pixels as they were: the seed of a UTF-8 name
    is the CRC of the same bytes, and the truth map the pixels ``cv2.imread`` read."""
    import zlib

    import cv2
    from PIL import Image

    from labeler.simulated import image_rng, read_instance_ids

    for split, stem in (("train", "synth_train_0001"), ("test", "vélo_自行车"), ("val", "a b")):
        before = np.random.default_rng([3, zlib.crc32(f"{split}/{stem}".encode())])
        assert np.array_equal(image_rng(3, split, stem).random(8), before.random(8))
    ids = np.zeros((40, 48), np.uint16)
    ids[5:20, 6:30], ids[22:35, 10:40] = 1, 300  # uint16 ids above 255
    Image.fromarray(ids).save(tmp_path / "m.png")
    read = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED)
    assert read.dtype == np.uint16 and np.array_equal(read_instance_ids(tmp_path / "m.png"), read)
