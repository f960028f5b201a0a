"""User errors the command line reports, one site each that no other test reached (the error
catalogue of the forty-eighth round): each is one line starting ``error:``, names the option or
file and the problem, and ends the command with exit code 2 (docs/foundation.md, "Exit
codes"), with no traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dataset and the malformed spec and config files the cases name."""
    root = tmp_path_factory.mktemp("errors")
    res = runner.invoke(
        app,
        ["synth", "--out", str(root / "ds"), "--train", "1", "--val", "1", "--test", "1",
         "--size", "64x64", "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    texts = {
        "list.yaml": "- bicycle\n",
        "int.yaml": "bicycle: 3\n",
        "cfg_list.yaml": "[1, 2]\n",
        "cfg_iters.yaml": "iters: 0\n",
        "cfg_accum.yaml": "accum_steps: 0\n",
        "cfg_warmup.yaml": "iters: 10\nwarmup_iters: 50\n",
        "cfg_lr_ratio.yaml": "min_lr_ratio: 2\n",
        "cfg_seed.yaml": "seed: 99999999999\n",
        "cfg_processes.yaml": "processes: -1\n",
        "spec_list.yaml": "- images\n",
        "spec_splits.yaml": "splits: train\n",
        "spec_exts.yaml": "image_exts: .jpg\n",
        "spec_both.yaml": "image_suffix: _x.jpg\nimage_exts: [.jpg]\n",
        "spec_label.yaml": "label_suffix: .jpg\n",
        "spec_images.yaml": "images: 3\n",
        "spec_split_list.yaml": "images: ds/images/{split}\nsplit_list: '{split}.txt'\nsplits: [val]\n",
        "val.txt": "",
        "spec_brace.yaml": "images: {split}/photos\n",
        "spec_brace_map.yaml": "labels: {split}\n",
    }
    for name, text in texts.items():
        (root / name).write_text(text)
    for folder in ("run1/pred", "run2/pred", "png"):
        (root / folder).mkdir(parents=True)
    (root / "coco.json").write_text('{"images": [], "annotations": [], "categories": []}')
    (root / "synth_train_0000.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # YOLO
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "png/synth_train_0000.png")
    return root


LABEL = ["label", "--class", "bicycle", "--no-progress"]
TRAIN = ["train", "--no-progress"]
IMPORT = ["annotate", "import", "--class", "bicycle", "--data", "{root}/ds", "--out", "{root}/out"]
PREDICT = ["predict", "--checkpoint", "{root}/none.pt", "--no-progress"]
CASES = [
    # engine label: options parsed by the command
    (LABEL + ["--uncertain", "0.3"], "--uncertain must look like 0.15,0.25 (lo,hi), got '0.3'"),
    (LABEL + ["--uncertain", "0.3,0.2"], "--uncertain is the band lo,hi with lo <= hi"),
    (LABEL + ["--uncertain", "0.3,1.5"], "--uncertain values must be in 0..1, got '0.3,1.5'"),
    (LABEL + ["--tiles", "0x2"], "--tiles must be at least 1x1, got '0x2'"),
    (LABEL + ["--tiles", "abc"], "--tiles must look like 2x2 (rows x columns), got 'abc'"),
    # 10^10 windows an image were looped over (2**63x1: never ended), after the models loaded
    (LABEL + ["--tiles", "100000x100000"], "--tiles must be at most 64x64, got '100000x100000'"),
    (LABEL + ["--tiles", "9223372036854775808x1"], "--tiles must be at most 64x64, got '922"),
    (LABEL + ["--shard", "4/4"], "--shard must satisfy 0 <= index < count, got '4/4'"),
    (LABEL + ["--shard", "x"], "--shard must look like 0/4 (index / count), got 'x'"),
    (LABEL + ["--precision", "fp8"], "(--precision), got 'fp8'"),
    (LABEL + ["--min-area", "-1"], "min_area must be >= 0 (--min-area), got -1"),
    (LABEL + ["--model", "m"], "--model is the SAM 3 checkpoint of --backend sam3"),
    (LABEL + ["--model-revision", "r"], "--model-revision is for --backend sam3"),
    (LABEL + ["--backend", "sam3", "--detector", "d"], "--backend sam3 takes its checkpoint with"),
    (LABEL + ["--backend", "sam3", "--detector-revision", "r"], "(sam3: --model-revision)"),
    (LABEL + ["--backend", "simulated", "--detector", "d"], "--backend simulated runs no detector"),
    (
        LABEL + ["--backend", "simulated", "--backend-option", "foo"],
        "--backend-option must look like KEY=VALUE, got 'foo'",
    ),
    (  # read as YAML's null: "seed must be a whole number, got None"
        LABEL + ["--backend", "simulated", "--backend-option", "seed= "],
        "--backend-option 'seed= ': no value after '='",
    ),
    (LABEL + ["--spec", "{root}/list.yaml"], "list.yaml: expected a mapping of class name"),
    (LABEL + ["--spec", "{root}/int.yaml"], "int.yaml: class 'bicycle' must map to settings"),
    # engine synth
    (["synth", "--train", "0", "--val", "0", "--test", "0"], "--train + --val + --test is 0"),
    # numpy's "Maximum allowed dimension exceeded", naming no option
    (
        ["synth", "--size", "9223372036854775808x64"],
        "--size must be at most 1000000 pixels a side (the largest PNG written), got '922",
    ),
    (PREDICT + ["--size", "64x1000001"], "--size must be at most 1000000 pixels a side"),
    # engine train: its --config file, named
    (TRAIN + ["--config", "{root}/cfg_list.yaml"], "cfg_list.yaml: a training config must be a"),
    (TRAIN + ["--config", "{root}/cfg_iters.yaml"], "cfg_iters.yaml: iters must be >= 1, got 0"),
    (TRAIN + ["--config", "{root}/cfg_accum.yaml"], "accum_steps must be >= 1, got 0"),
    (TRAIN + ["--config", "{root}/cfg_warmup.yaml"], "warmup_iters must be in 0..iters-1, got 50"),
    (TRAIN + ["--config", "{root}/cfg_lr_ratio.yaml"], "min_lr_ratio must be in 0..1, got 2"),
    (TRAIN + ["--config", "{root}/cfg_seed.yaml"], "seed must be <= 4294967295"),
    (TRAIN + ["--config", "{root}/cfg_processes.yaml"], "processes must be >= 0 (0: one per CPU"),
    (TRAIN + ["--pseudo-form", "flat"], "--pseudo-form: {root}/ds has no new class"),
    # engine predict
    (PREDICT + ["--size", "foo"], "--size must be auto, original or WxH like 512x384, got 'foo'"),
    (PREDICT + ["--scales", "1,x"], "--scales must be comma-separated numbers like 0.75,1,1.25"),
    (PREDICT + ["--scales", "1,-1"], "--scales must be positive numbers, got '1,-1'"),
    # a scale of 1e3 failed in OpenCV's allocator (a traceback), 1e308 as an OverflowError
    (PREDICT + ["--scales", "1,1e3"], "--scales must be at most 4 (the size times 4 on each side)"),
    (PREDICT + ["--scales", "1e308"], "--scales must be at most 4 (the size times 4 on each side)"),
    # engine info, engine compare: what goes to stdout
    (["info", "{root}/ds", "--plot", "-"], "--plot -: the chart is a PNG image"),
    (
        [
            "compare",
            "--class",
            "bicycle",
            "--gt",
            "{root}/ds",
            "--source",
            "a={root}/ds",
            "--json",
            "-",
            "--markdown",
            "-",
        ],
        "--json - and --markdown -: one of them can go to stdout; give a file",
    ),  # fmt: skip
    (
        [
            "compare",
            "--class",
            "bicycle",
            "--gt",
            "{root}/ds",
            "--split",
            "val",
            "--source",
            "{root}/run1/pred",
            "--source",
            "{root}/run2/pred",
        ],
        "--source names must be unique, got pred twice (a bare DIR is named after its folder); "
        "name each with --source NAME=DIR",
    ),  # fmt: skip
    (  # typed names, the same as the folders': no hint to type them
        [
            "compare",
            "--class",
            "bicycle",
            "--gt",
            "{root}/ds",
            "--split",
            "val",
            "--source",
            "pred={root}/run1/pred",
            "--source",
            "pred={root}/run2/pred",
        ],
        "--source names must be unique, got pred twice; give each source its own name",
    ),  # fmt: skip
    (
        [
            "evaluate",
            "--gt",
            "{root}/ds",
            "--pred",
            "{root}/ds",
            "--split",
            "val",
            "--device",
            "cpu",
            "--workers",
            "2",
        ],
        "--device cpu and --workers 2 do not combine: the torch path counts in one process; "
        "give --workers 1, or leave out --device",
    ),  # fmt: skip
    # a dataset spec file (engine info reads it as every command does)
    (["info", "{root}/spec_list.yaml"], "spec_list.yaml: a dataset spec must be a mapping with"),
    (["info", "{root}/spec_splits.yaml"], "'splits' must be a list of names such as [train, val]"),
    (["info", "{root}/spec_exts.yaml"], "'image_exts' must be a list such as [.jpg, .png]"),
    (["info", "{root}/spec_both.yaml"], "spec_both.yaml: give image_suffix or image_exts, not"),
    (["info", "{root}/spec_label.yaml"], "'label_suffix' must end in .png (label maps are read"),
    (["info", "{root}/spec_images.yaml"], "'images' must be a folder template such as"),
    (["info", "{root}/spec_split_list.yaml"], "val.txt: the split list names no image"),
    (  # YAML reads an unquoted {split} as a mapping: the error says to quote it
        ["info", "{root}/spec_brace.yaml"],
        "cannot parse YAML (expected <block end>, but found '<scalar>' at line 1, column 16); "
        "quote the value: images: '{split}/photos' (unquoted, YAML reads {...} as a mapping)",
    ),
    (
        ["info", "{root}/spec_brace_map.yaml"],
        "got {'split': None}; quote the value: labels: '{split}' (unquoted, YAML reads",
    ),
    # engine annotate export / import / pick
    (
        [
            "annotate",
            "export",
            "{root}/ds",
            "--out",
            "{root}/out",
            "--format",
            "labelme",
            "--mask-format",
            "polygon",
        ],
        "--mask-format is COCO's segmentation; LabelMe files are always polygons",
    ),  # fmt: skip
    (
        [
            "annotate",
            "export",
            "{root}/ds",
            "--out",
            "{root}/out",
            "--format",
            "coco",
            "--simplify",
            "2",
        ],
        "--simplify is a polygon tolerance in pixels (>= 0, under 1e+30) for LabelMe files or COCO's "
        "--mask-format polygon; got 2.0 with coco (rle)",
    ),  # fmt: skip
    (IMPORT + ["{root}/coco.json", "{root}/synth_train_0000.txt"], "of different formats (coco: "),
    (IMPORT + ["{root}/png", "--png-binary", "--png-value", "3"], "exclude each other; give one"),
    (IMPORT + ["{root}/png", "--png-value", "255"], "1..254 (0 is background, 255 unannotated)"),
    (IMPORT + ["{root}/png", "--format", "segmask"], "png: no labelmap.txt here; give the folder"),
    (
        IMPORT + ["{root}/png", "{root}/run1", "--format", "segmask"],
        "--format segmask takes one export folder",
    ),
    (["annotate", "pick", "{root}/ds", "--out", "{root}/png"], "is a folder; --out names the list"),
]


def _data_and_out(args: list[str], root: Path) -> list[str]:
    """--data and --out where the command takes them (info and compare name theirs)."""
    extra = {
        "label": ["--data", "{root}/ds", "--out", "{root}/out"],
        "synth": ["--out", "{root}/out"],
        "train": ["--data", "{root}/ds", "--out", "{root}/out"],
        "predict": ["--data", "{root}/ds", "--out", "{root}/out"],
    }.get(args[0], [])
    return [a.replace("{root}", str(root)) for a in args + extra]


@pytest.mark.parametrize(
    ("args", "expected"), CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CASES]
)
def test_a_user_error_is_one_line_naming_it_with_exit_code_2(args, expected, files: Path):
    res = runner.invoke(app, _data_and_out(args, files))
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert expected.replace("{root}", str(files)) in lines[0]
    assert not (files / "out").exists()  # refused before anything was written


def test_a_pseudo_run_given_twice_is_named_once(files: Path):
    """``--pseudo RUN --pseudo RUN/`` (a shell line pasted twice): before, "RUN/run.json and
    RUN/run.json: two pseudo runs for class 'bicycle'", as if they were two runs."""
    run = files / "run"
    args = ["label", "--data", str(files / "ds"), "--class", "bicycle", "--backend", "simulated",
            "--split", "val", "--out", str(run), "--no-progress"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(
        app,
        ["fuse", "--data", str(files / "ds"), "--pseudo", str(run), "--pseudo", f"{run}/",
         "--split", "val", "--out", str(files / "out"), "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert res.output.strip() == f"error: {run}: given twice (--pseudo); give each run once"
    assert not (files / "out").exists()


def test_the_largest_size_is_the_largest_png_opencv_writes():
    """--size's bound is libpng's: a label map of that side is written, one pixel more is not."""
    import cv2

    from annotations.numbers import MAX_IMAGE_SIDE
    from engine.cli.common import parse_size

    assert parse_size(f"{MAX_IMAGE_SIDE}x1") == (1_000_000, 1)
    assert cv2.imencode(".png", np.zeros((1, MAX_IMAGE_SIDE), np.uint8))[0] is True
    assert cv2.imencode(".png", np.zeros((MAX_IMAGE_SIDE + 1, 1), np.uint8))[0] is False


def test_the_largest_size_bounds_the_configs_too_and_is_worded_per_option(tmp_path):
    """--size's bound held on the command line only: TrainConfig(val_size=(2**63, 64)) (a
    config file's val_size) and SynthConfig(size=(2_000_000, 64)) were taken, to fail in numpy
    later. --macs writes nothing, so "the largest PNG written" is --size's reason alone."""
    from engine.cli.common import SizeFormError, parse_size
    from engine.synth import SynthConfig
    from trainer.cli import parse_predict_size
    from trainer.config import TrainConfig

    with pytest.raises(ValueError) as e:
        TrainConfig(val_size=(2**63, 64))
    assert str(e.value) == (
        "val_size must be WxH with both sides 1 to 1,000,000 pixels, got 9223372036854775808x64"
    )
    with pytest.raises(ValueError, match=r"^val_size must be WxH .*, got 64x0$"):
        TrainConfig(val_size=(64, 0))
    assert TrainConfig(val_size=(1_000_000, 1)).val_size == (1_000_000, 1)
    with pytest.raises(ValueError) as e:
        SynthConfig(out=tmp_path, size=(2_000_000, 64))
    assert str(e.value) == "image size must be at most 1,000,000 px a side (--size), got 2000000x64"
    with pytest.raises(ValueError) as e:
        parse_size("64x2000000", "--macs")
    assert str(e.value) == (
        "--macs must be at most 1000000 pixels a side (the largest side of a PNG image), got "
        "'64x2000000'"
    )
    # predict's --size: a WxH out of range said as it is, no WxH at all as predict's words
    with pytest.raises(ValueError) as e:
        parse_predict_size("0x5")
    assert str(e.value) == "--size must be positive, got '0x5'"
    with pytest.raises(SizeFormError):
        parse_size("5")
    with pytest.raises(ValueError) as e:
        parse_predict_size("5")
    assert str(e.value) == "--size must be auto, original or WxH like 512x384, got '5'"
