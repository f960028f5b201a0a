"""An option of one name means and takes the same thing in every command: what a user learnt in
one command (``--split val,test``, ``--device auto``, ``--no-...``) works in the next, or is
refused with a line saying what that command takes and why."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer.main
from typer.testing import CliRunner

import cli

runner = CliRunner()


def _options(name: str) -> list[tuple[str, object]]:
    """(command path, option) for every command's option ``name``, sub-commands included."""
    found: list[tuple[str, object]] = []

    def walk(cmd: object, path: str) -> None:
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {sub_name}".strip())
        for p in getattr(cmd, "params", []):
            if name in getattr(p, "opts", []):
                found.append((path, p))

    walk(typer.main.get_command(cli.app), "")
    return found


def test_every_split_option_is_repeatable_and_takes_commas():
    """engine label --split val --split test labelled test only (the second replaced the first)
    where info, review and fuse took both; predict and annotate did the same silently."""
    options = _options("--split")
    assert len(options) >= 8
    for command, option in options:
        assert option.multiple, f"engine {command} --split is not repeatable"


@pytest.mark.parametrize("split", [["--split", "val,test"], ["--split", "val", "--split", "test"]])
@pytest.mark.parametrize(
    "command",
    ["predict", "annotate pick", "annotate import", "annotate export", "evaluate", "compare"],
)
def test_a_command_taking_one_split_says_so_for_two(tmp_path: Path, command: str, split):
    """engine predict --split val,test said "split 'val,test' not found"; --split val --split
    test predicted test alone, without a word."""
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")
    args = {
        "predict": ["predict", "--checkpoint", str(ckpt), "--data", str(tmp_path)],
        "annotate pick": ["annotate", "pick", str(tmp_path)],
        "annotate import": ["annotate", "import", str(ckpt), "--class", "Car", "--data",
                            str(tmp_path)],
        "annotate export": ["annotate", "export", str(tmp_path)],
        "evaluate": ["evaluate", "--pred", str(tmp_path), "--gt", str(tmp_path)],
        "compare": ["compare", "--class", "Car", "--gt", str(tmp_path), "--source",
                    f"a={tmp_path}"],
    }[command]  # fmt: skip
    scores = command in ("evaluate", "compare")
    out = ["--json", str(tmp_path / "out" / "x.json")] if scores else ["--out"]
    if not scores:
        out.append(str(tmp_path / "out"))
    res = runner.invoke(cli.app, [*args, *out, *split])
    assert res.exit_code == 2, res.output
    why = {  # one sentence's shape (engine.cli.common.one_split), each command's reason
        "predict": " (--out holds one split's <stem>.png maps): run it once per split, each with "
        "its own --out",
        "annotate pick": ": run it once per split",
        "annotate import": " (a subset holds one split's masks): import each into its own --out",
        "annotate export": " (an export holds one split's images): export each into its own --out",
        "evaluate": " (--pred holds one split's <stem>.png maps): run it once per split",
        "compare": ": run it once per split",
    }[command]
    said = f"error: --split val,test: engine {command} takes one split{why}"
    assert " ".join(res.output.split()) == said
    assert not (tmp_path / "out").exists()


def test_label_takes_both_of_two_split_options(monkeypatch):
    import labeler.cli_support

    seen = {}

    def build(**kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(labeler.cli_support, "build_label_config", build)
    args = ["label", "--class", "Car", "--data", "d", "--split", "val", "--split", "test,train"]
    res = runner.invoke(cli.app, args)
    assert res.exit_code == 2, res.output
    assert seen["split"] == "val,test,train"


def test_every_device_option_takes_the_same_spellings():
    """engine demo said auto | cpu | cuda, engine evaluate named none; label, train and
    predict take auto | cpu | cuda | cuda:N, and so do they."""
    options = _options("--device")
    assert {c for c, _ in options} >= {"label", "train", "predict", "evaluate", "demo"}
    for command, option in options:
        named = set(re.findall(r"[a-z]+(?::N)?", option.help))
        assert named >= {"auto", "cpu", "cuda", "cuda:N"}, f"engine {command} --device"


@pytest.fixture
def pair(tmp_path: Path) -> list[str]:
    for side in ("pred", "gt"):
        (tmp_path / side).mkdir()
        cv2.imwrite(str(tmp_path / side / "a.png"), np.eye(8, dtype=np.uint8))
    return ["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
            "--num-classes", "2", "--no-progress"]  # fmt: skip


@pytest.mark.parametrize(
    "device, said",
    [
        ("auto", None),
        ("cpu", None),
        ("gpu", "--device 'gpu' is not a device; use auto, cpu, cuda or cuda:N"),
        ("cuda", "--device cuda: CUDA is not available on this machine"),
    ],
)
def test_evaluate_takes_the_devices_the_other_commands_take(pair, monkeypatch, device, said):
    """engine evaluate --device auto (label, train and predict's default) failed with torch's
    list of twenty device types; cuda without one with torch's driver message."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = runner.invoke(cli.app, [*pair, "--device", device])
    if said is None:
        assert res.exit_code == 0, res.output
        assert "100.00" in res.output
    else:
        assert res.exit_code == 2, res.output
        assert said in res.output


def test_every_boolean_pair_has_its_no_spelling():
    """engine info --no-decode was refused (--decode/--headers-only), where every other pair
    of flags is --X/--no-X."""
    for name in ("--decode", "--progress", "--chart", "--detail"):
        for command, option in _options(name):
            if option.secondary_opts:
                assert f"--no-{name[2:]}" in option.secondary_opts, f"engine {command} {name}"


def test_workers_0_means_in_this_process_wherever_workers_are_processes(monkeypatch, tmp_path):
    """engine train --workers 0 loads in the training process; engine fuse, evaluate, compare
    and info refused 0 (``Input should be greater than or equal to 1``), though their 1 is
    that same "in this process". Label's --workers are threads, 1 or more (no 0 to mean)."""
    import engine.info

    options = dict(_options("--workers"))
    assert {"fuse", "evaluate", "compare", "info", "train", "label"} <= set(options)
    for command in ("fuse", "evaluate", "compare", "info"):
        assert options[command].min == 0, command
        assert "0 or 1: in this process" in options[command].help, command
    seen = []
    monkeypatch.setattr(engine.info, "dataset_stats", lambda *a, **k: seen.append(k["workers"]))
    runner.invoke(cli.app, ["info", str(tmp_path), "--workers", "0"])  # one there
    assert seen == [1]  # 0 is run as 1, so what fuse.json and evaluate's --json record is one


def test_force_redoes_or_replaces_in_every_command_that_can():
    """engine label, fuse and annotate export take --force (redo what is done, replace what
    --out holds); predict called the same --overwrite and annotate import --replace, so a
    user's --force there was "No such option". The old names keep working."""
    force = dict(_options("--force"))
    assert {"label", "fuse", "annotate export", "predict", "annotate import"} <= set(force)
    assert force["predict"].name == "overwrite" and "--overwrite" in force["predict"].opts
    assert force["annotate import"].name == "replace"
    assert "--replace" in force["annotate import"].opts


def test_info_no_decode_reads_headers_only(tmp_path: Path, monkeypatch):
    import engine.info

    seen = {}

    def stats(data, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(engine.info, "dataset_stats", stats)
    monkeypatch.setattr(engine.info, "describe_output", lambda data, splits: None)
    res = runner.invoke(cli.app, ["info", str(tmp_path), "--no-decode"])
    assert res.exit_code == 2, res.output
    assert seen["decode"] is False


@pytest.fixture(scope="module")
def small_synth(tmp_path_factory) -> Path:
    from engine.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("synth")
    return generate(SynthConfig(out=root, train=2, val=1, test=1, size=(128, 96)), progress=False)


def _device_commands(data: Path, out: Path) -> dict[str, list[str]]:
    ckpt = data / "model.pt"  # never read: the device is checked first
    return {
        "label": ["label", "--class", "Car", "--data", str(data), "--out", str(out)],
        "train": ["train", "--data", str(data), "--out", str(out), "--preset", "tiny",
                  "--iters", "1"],
        "predict": ["predict", "--checkpoint", str(ckpt), "--images",
                    str(data / "images" / "test"), "--out", str(out)],
        "evaluate": ["evaluate", "--pred", str(data / "labels" / "val"), "--gt",
                     str(data / "labels" / "val"), "--json", str(out / "x.json")],
        "demo": ["demo", "--out", str(out)],
    }  # fmt: skip


@pytest.mark.parametrize("command", ["label", "train", "predict", "evaluate", "demo"])
@pytest.mark.parametrize(
    "device, said",
    [
        ("cuda:3", "--device cuda:3: this machine has 1 visible GPU (cuda:0)"),
        ("mps", "--device mps: the engine runs on the CPU or CUDA GPUs, not on mps; use auto, "
                "cpu, cuda or cuda:N"),
        ("xpu", "--device xpu: the engine runs on the CPU or CUDA GPUs, not on xpu;"),
    ],
)  # fmt: skip
def test_every_command_refuses_a_device_it_cannot_use_before_any_file(
    small_synth, tmp_path, monkeypatch, command, device, said
):
    """On a one-GPU machine --device cuda:3 got as far as torch's driver error (label, train,
    demo: the demo's folder already written) or was never checked (predict, evaluate); Apple's
    --device mps was refused by label and evaluate and taken by train, predict and demo, which
    failed in torch (xpu: a traceback). Now one rule and one line, before anything is written."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    out = tmp_path / "out"
    res = runner.invoke(cli.app, [*_device_commands(small_synth, out)[command], "--device", device])
    assert res.exit_code == 2, res.output
    assert said in " ".join(res.output.split())
    assert "Traceback" not in res.output and not out.exists()


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_a_torchrun_local_rank_beyond_the_gpus_is_one_line_before_any_file(
    small_synth, tmp_path, monkeypatch, device
):
    """torchrun --nproc-per-node 4 on a 2-GPU machine: local ranks 2 and 3 train on cuda:2 and
    cuda:3, and ended in the driver's "invalid device ordinal" traceback; now one line."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for key, value in dict(LOCAL_RANK="3", LOCAL_WORLD_SIZE="4", RANK="3", WORLD_SIZE="4").items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out"
    res = runner.invoke(cli.app, [*_device_commands(small_synth, out)["train"], "--device", device])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        f"error: --device {device}: this process is local rank 3 of 4 (torchrun), but this "
        "machine has 2 visible GPUs (cuda:0 to cuda:1); start at most 2 per machine "
        "(torchrun --nproc-per-node 2)"
    )
    assert not out.exists()
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank with a GPU of its own: taken
    from engine.devices import check_device

    assert check_device("cuda") == "cuda"


def test_cuda_hidden_by_cuda_visible_devices_says_so(monkeypatch):
    """CUDA_VISIBLE_DEVICES="" with --device cuda: the line names the variable that hid it."""
    import torch

    from engine.devices import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(RuntimeError) as err:
        check_device("cuda")
    assert str(err.value) == (
        "--device cuda: CUDA is not available on this machine (CUDA_VISIBLE_DEVICES is '')"
    )


@pytest.mark.parametrize("cuda", [True, False])
def test_auto_is_resolved_in_one_place_for_every_command(monkeypatch, cuda):
    """``--device auto`` comes to the same device in label, train (and predict, demo, which use
    train's), and evaluate (one process): engine.devices.resolve_device decides it for all."""
    import torch

    from engine.devices import resolve_device
    from engine.evaluate import count_device
    from labeler.models import resolve_device as label_device
    from trainer.train import resolve_device as train_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    want = "cuda" if cuda else "cpu"
    assert resolve_device("auto") == label_device("auto") == want
    assert train_device("auto") == torch.device("cuda:0" if cuda else "cpu")
    assert train_device("auto", local_rank=1) == torch.device("cuda:1" if cuda else "cpu")
    assert count_device("auto") == (want if cuda else None)  # no GPU: numpy/OpenCV counts
    assert count_device("auto", workers=2) is None and count_device(None) is None
    assert resolve_device("cpu") == count_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"^c.yaml: device 'nope' is not a device"):
        resolve_device("nope", given="c.yaml: device")


@pytest.fixture
def disk_full(monkeypatch):
    """Every atomic write fails at its first byte, as on a full disk (its folders made first)."""
    import contextlib
    import errno

    import annotations.fileio

    @contextlib.contextmanager
    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
        yield

    monkeypatch.setattr(annotations.fileio.atomic, "atomic_file", full)


@pytest.mark.parametrize("option", ["evaluate --json", "compare --json", "compare --markdown"])
def test_a_single_file_output_on_a_full_disk_leaves_no_new_folder(
    tmp_path: Path, pair, disk_full, option
):
    """--json new/deep/r.json on a full disk failed, and left new/deep/, empty, behind."""
    gt, pred = str(tmp_path / "gt"), str(tmp_path / "pred")
    command, flag = option.split()
    target = tmp_path / "new" / "deep" / "r.out"
    args = pair if command == "evaluate" else ["compare", "--class", "x", "--gt", gt, "--source",
                                               f"a={pred}", "--no-progress"]  # fmt: skip
    res = runner.invoke(cli.app, [*args, flag, str(target)])
    assert res.exit_code == 74, res.output
    assert res.output.splitlines()[-1] == (
        f"error: {target}: No space left on device; make room and run the same command again"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt", "pred"]


def test_a_failed_write_keeps_a_folder_that_was_there_or_holds_a_file(tmp_path: Path):
    from engine.runlock import folders_removed_on_failure

    (tmp_path / "old").mkdir()
    with pytest.raises(OSError), folders_removed_on_failure(tmp_path / "old/new/a/f.json"):
        (tmp_path / "old/new/a").mkdir(parents=True)
        (tmp_path / "old/new/kept.txt").write_text("x")
        raise OSError("full")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "old", "old/new", "old/new/kept.txt"
    ]  # fmt: skip
