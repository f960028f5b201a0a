"""The engine CLI's foundation commands (synth, info) and its fast, torch-free start."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _synth(out: Path, *extra: str):
    return runner.invoke(
        app,
        ["synth", "--out", str(out), "--train", "2", "--val", "1", "--test", "1",
         "--size", "128x96", "--seed", "3", "--no-progress", *extra],
    )  # fmt: skip


def test_synth_then_info(tmp_path: Path):
    res = _synth(tmp_path / "d")
    assert res.exit_code == 0, res.output
    assert f"wrote 4 images (2 train, 1 val, 1 test) at 128x96 to {tmp_path / 'd'}" in res.output
    img = Image.open(tmp_path / "d/images/train/synth_train_0000.jpg")
    assert img.size == (128, 96)
    res = runner.invoke(app, ["info", str(tmp_path / "d"), "--no-progress"])
    assert res.exit_code == 0, res.output
    for text in ("train", "val", "test", "128x96: 2", "Others", "Water", "No problems found.",
                 "bicycle (new-class truth)", "car (new-class truth)"):  # fmt: skip
        assert text in res.output
    res = runner.invoke(app, ["info", str(tmp_path / "d"), "--split", "val", "--no-progress"])
    assert res.exit_code == 0 and "128x96: 1" in res.output and "train" not in res.output


def test_info_exit_1_and_lists_problems(tmp_path: Path):
    assert _synth(tmp_path / "d").exit_code == 0
    bad = tmp_path / "d/annotations/train/synth_train_0001.png"
    Image.fromarray(np.full((96, 128), 42, np.uint8)).save(bad)
    (tmp_path / "d/images/test/synth_test_0000.jpg").write_bytes(b"junk")
    res = runner.invoke(app, ["info", str(tmp_path / "d"), "--no-progress"])
    assert res.exit_code == 1, res.output
    assert "2 problems found" in res.output and "label values 42" in res.output
    assert "synth_test_0000.jpg" in res.output
    args = ["info", str(tmp_path / "d"), "--no-progress", "--workers", "2"]
    assert runner.invoke(app, args).output == res.output  # the same report from 2 processes


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path):
    for args in (
        ["info", str(tmp_path / "missing")],
        ["info", str(tmp_path), "--no-progress"],  # no splits
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), res.output
        assert "Traceback" not in res.output
    assert _synth(tmp_path / "d").exit_code == 0
    res = runner.invoke(app, ["info", str(tmp_path / "d"), "--split", "nope"])
    assert res.exit_code == 2
    assert res.output.strip() == (
        f"error: {tmp_path / 'd/images/nope'}: split 'nope' not found; available splits: "
        "train, val, test"
    )
    (tmp_path / "f").write_text("x")
    res = _synth(tmp_path / "f")
    assert res.exit_code == 2 and res.output.strip().startswith("error: ")
    res = _synth(tmp_path / "e", "--size", "12x12")
    assert res.exit_code == 2 and "size must be" in res.output
    res = _synth(tmp_path / "e", "--size", "big")
    assert res.exit_code == 2 and "512x384" in res.output  # typer usage error names the format


def test_an_out_folder_that_cannot_be_created_is_one_line_naming_the_option(tmp_path: Path):
    """``engine demo --out /proc/x`` said ``/proc/x: No such file or directory``: the kernel's
    word for a folder that takes no new ones, read as a missing input."""
    (tmp_path / "f").write_text("x")
    res = _synth(tmp_path / "f/sub")
    assert res.exit_code == 2, res.output
    assert res.output.strip() == (
        f"error: --out {tmp_path / 'f/sub'}: the folder cannot be created: {tmp_path / 'f'} is "
        "a file"
    )
    if not Path("/proc/self").is_dir():
        return
    for args in (["demo", "--out", "/proc/x"], ["synth", "--out", "/proc/x/y"]):
        res = runner.invoke(app, args, env={"COLUMNS": "300"})
        assert res.exit_code == 2, res.output
        assert res.output.strip() == (
            f"error: --out {args[-1]}: the folder cannot be created: /proc takes no new "
            "folders (No such file or directory)"
        )


@pytest.mark.parametrize(
    "args, line",
    [
        (["train", "--data", "d", "--crop", "16"], "error: Invalid value for '--crop': Input "
         "should be greater than or equal to 32; see engine train --help"),
        # a size given for the square crop said only "Input should be a valid integer"
        (["train", "--data", "d", "--crop", "512x384"], "error: --crop 512x384: training crops "
         "are square: give one number, the side in pixels (e.g. --crop 512); see engine train "
         "--help"),
        (["train", "--data", "d", "--crop=384X512"], "error: --crop 384X512: training crops "
         "are square: give one number, the side in pixels (e.g. --crop 512); see engine train "
         "--help"),
        (["evaluate", "--pred", "p"], "error: Missing option '--gt'; see engine evaluate --help"),
        (["trian"], "error: No such command 'trian'. Did you mean 'train'? See engine --help"),
        (["--bogus"], "error: No such option: --bogus; see engine --help"),
        (["annotate", "nope"], "error: No such command 'nope'; see engine annotate --help"),
        (["train", "--workers", "-1"], "error: Invalid value for '--workers': Input should be "
         "greater than or equal to 0; see engine train --help"),
        # a class id no label map holds: accepted, every prediction panel drawn empty
        (["review", "run", "--pred-class-id", "-1"], "error: Invalid value for "
         "'--pred-class-id': Input should be greater than or equal to 0; see engine review --help"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_as_every_other_error(args, line):
    """Typer drew a usage error (a value out of range, a missing or unknown option or
    command) in a box under the usage; every other error of the command line is one line."""
    res = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert res.exit_code == 2 and res.output.strip() == line, res.output


def test_no_arguments_still_show_the_help():
    for args in ([], ["annotate"]):
        res = runner.invoke(app, args)
        assert "Usage: engine" in res.output and "error" not in res.output, res.output


def test_ctrl_c_is_one_line_and_exit_130(tmp_path: Path, monkeypatch):
    """Typer would end an interrupted command silently with 130; the engine says so, and how to
    resume where a rerun resumes."""
    import engine.synth

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.synth, "generate", interrupted)
    res = _synth(tmp_path / "d")
    assert res.exit_code == 130
    assert res.output == "interrupted: run the same command again to resume\n"
    from cli import RESUMABLE, WORKFLOW

    assert RESUMABLE.issubset(name for _, names in WORKFLOW for name in names)


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (
            MemoryError("Unable to allocate 112. GiB for an array"),
            "Unable to allocate 112. GiB for an array",
        ),
        (
            RuntimeError(
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes"
            ),
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes",
        ),
        (
            type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory."),
            "CUDA out of memory.",
        ),
        (  # cv2.resize to a side 1000 times larger (`engine predict --scales 1e3`: a traceback)
            cv2.error(
                "OpenCV(4.12.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate "
                "150994944000000 bytes in function 'OutOfMemoryError'\n"
            ),
            "OpenCV(4.12.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate "
            "150994944000000 bytes in function 'OutOfMemoryError'",
        ),
    ],
)
def test_out_of_memory_is_one_line_and_exit_71(tmp_path: Path, monkeypatch, error, shown):
    """numpy's MemoryError (`engine synth --size 100000x100000`), torch's CPU allocator and
    CUDA's OutOfMemoryError: the machine's limit, said in one line with what to do and exit code
    71 (before: a numpy traceback, or exit code 2 "bad input" for torch's)."""
    import engine.cli.common.limits
    import engine.synth

    def too_big(*args, **kwargs):
        raise error

    monkeypatch.setattr(engine.synth, "generate", too_big)
    # no limit of the shell's (a cluster job's ulimit -v would add its own words to the line);
    # patched where out_of_memory_line calls it
    monkeypatch.setattr(engine.cli.common.limits, "memory_limits", lambda: [])
    res = _synth(tmp_path / "d")
    assert res.exit_code == 71, res.output
    assert " ".join(res.output.split()) == (
        f"error: out of memory: {shown}; free memory and run the same command again to resume, "
        "or ask for less (smaller images, --size, --batch-size or --crop)"
    )


@pytest.mark.parametrize(
    ("error", "shown", "less"),
    [
        (
            MemoryError("Unable to allocate 112. GiB for an array"),
            "Unable to allocate 112. GiB for an array",
            True,
        ),
        (  # torch's library under `ulimit -v 2000000`: a traceback before
            ImportError("libtorch_cpu.so: failed to map segment from shared object"),
            "libtorch_cpu.so: failed to map segment from shared object",
            False,
        ),
    ],
)
def test_out_of_memory_under_ulimit_v_names_the_limit(tmp_path, monkeypatch, error, shown, less):
    """Under an address-space limit (``ulimit -v``, a cluster's h_vmem) the line names it, as
    what to raise; before, "free memory" (the machine may have plenty), and a library that could
    not be mapped was a traceback."""
    import resource

    import engine.synth

    def too_big(*args, **kwargs):
        raise error

    limits = {resource.RLIMIT_AS: (3 * 2**30, resource.RLIM_INFINITY)}
    real = resource.getrlimit
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits.get(which) or real(which))
    monkeypatch.setattr(engine.synth, "generate", too_big)
    res = _synth(tmp_path / "d")
    assert res.exit_code == 71, res.output
    assert " ".join(res.output.split()) == (
        f"error: out of memory: {shown}"
        + "; the address-space limit (ulimit -v) is 3.0 GiB: raise it and run the same command "
        + "again to resume"
        + ", or ask for less (smaller images, --size, --batch-size or --crop)" * less
    )


def _limits_and_use(monkeypatch, limits: dict[str, int], used: dict[str, int] | None = None):
    """``resource.getrlimit`` giving these soft limits (bytes by name: RLIMIT_AS, RLIMIT_DATA)
    and, where given, /proc/self/status's VmSize and VmData as ``used``."""
    import engine.cli.common.limits

    limits = {getattr(resource, k): (v, resource.RLIM_INFINITY) for k, v in limits.items()}
    real = resource.getrlimit
    monkeypatch.setattr(
        resource, "getrlimit", lambda which: limits.get(which) or (resource.RLIM_INFINITY,) * 2
    )
    assert real(resource.RLIMIT_AS)  # the real one still answers
    if used is not None:
        monkeypatch.setattr(  # where limit_hit calls it
            engine.cli.common.limits, "memory_in_use", lambda: dict(used), raising=False
        )


def _synth_fails_with(tmp_path, monkeypatch, error) -> str:
    import engine.synth

    def too_big(*args, **kwargs):
        raise error

    monkeypatch.setattr(engine.synth, "generate", too_big)
    res = _synth(tmp_path / "d")
    assert res.exit_code == 71, res.output
    return " ".join(res.output.split())


LESS = ", or ask for less (smaller images, --size, --batch-size or --crop)"


@pytest.mark.parametrize(
    ("error", "used", "fix"),
    [
        (  # `ulimit -v 524288000` (500 GiB): the kernel's overcommit refused 112 GiB, not the limit
            MemoryError("Unable to allocate 112. GiB for an array with shape (100000, 100000, 3)"),
            {"VmSize": 2**30, "VmData": 2**29},
            "free memory (or raise the address-space limit, ulimit -v: 500.0 GiB) and run the "
            "same command again to resume" + LESS,
        ),
        (  # 4.5 MiB on top of 500 GiB less 2 MiB mapped: over the limit
            RuntimeError(
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate 4718592 bytes"
            ),
            {"VmSize": 500 * 2**30 - 2**21, "VmData": 2**29},
            "the address-space limit (ulimit -v) is 500.0 GiB: raise it and run the same command "
            "again to resume" + LESS,
        ),
        (  # the same request with 1 GiB mapped: not the limit
            RuntimeError(
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate 4718592 bytes"
            ),
            {"VmSize": 2**30, "VmData": 2**29},
            "free memory (or raise the address-space limit, ulimit -v: 500.0 GiB) and run the "
            "same command again to resume" + LESS,
        ),
        (  # no size said: named beside "free memory", not as the cause
            MemoryError("std::bad_alloc"),
            {"VmSize": 499 * 2**30, "VmData": 2**29},
            "free memory (or raise the address-space limit, ulimit -v: 500.0 GiB) and run the "
            "same command again to resume" + LESS,
        ),
        (  # a GPU's memory: no ulimit's (before: "the address-space limit ... raise it")
            type("OutOfMemoryError", (RuntimeError,), {})(
                "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of "
                "79.19 GiB of which 3.1 GiB is free."
            ),
            {"VmSize": 499 * 2**30 + 2**20, "VmData": 2**29},
            "free memory and run the same command again to resume" + LESS,
        ),
    ],
)
def test_out_of_memory_names_ulimit_v_as_the_cause_only_where_it_was_hit(
    tmp_path, monkeypatch, error, used, fix
):
    """An address-space limit set but not reached is not what failed: before, any ``ulimit -v``
    was named as the one to raise (500 GiB of it, for 112 GiB the machine did not have), a CUDA
    out of memory too."""
    _limits_and_use(monkeypatch, {"RLIMIT_AS": 500 * 2**30}, used)
    text = _synth_fails_with(tmp_path, monkeypatch, error)
    assert text == f"error: out of memory: {' '.join(str(error).split())}; {fix}"


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (  # torch under `ulimit -d 300000`: a traceback before, exit code 1
            ImportError("/x/torch/_C.so: failed to map segment from shared object"),
            "the data-segment limit (ulimit -d) is 0.3 GiB: raise it and run the same command "
            "again to resume",
        ),
        (
            MemoryError("Unable to allocate 1.00 GiB for an array with shape (2**30,)"),
            "the data-segment limit (ulimit -d) is 0.3 GiB: raise it and run the same command "
            "again to resume" + LESS,
        ),
        (
            MemoryError("Unable to allocate 1.00 KiB for an array with shape (1024,)"),
            "free memory (or raise the data-segment limit, ulimit -d: 0.3 GiB) and run the same "
            "command again to resume" + LESS,
        ),
    ],
)
def test_out_of_memory_under_ulimit_d_names_it(tmp_path, monkeypatch, error, fix):
    """``ulimit -d`` (the data segment, counted since Linux 4.7) fails a library's loading and an
    allocation as ``ulimit -v`` does; the smaller of the two is named."""
    _limits_and_use(
        monkeypatch,
        {"RLIMIT_AS": 8 * 2**30, "RLIMIT_DATA": 300000 * 1024},
        {"VmSize": 2**30, "VmData": 2**28},
    )
    text = _synth_fails_with(tmp_path, monkeypatch, error)
    assert text == f"error: out of memory: {str(error)}; {fix}"


def test_torch_not_loading_under_ulimit_d_is_one_line_and_exit_71(tmp_path: Path):
    """A real ``engine train`` under ``ulimit -d 300000``: torch's library cannot be mapped, and
    what the line needed then (``resource``, multiprocessing's library) could not be loaded
    either; before, an ImportError traceback and exit code 1."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (300000 * 1024, resource.RLIM_INFINITY))

    args = ["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--iters", "1"]
    res = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=limit,
    )  # fmt: skip
    if res.returncode == 2:
        pytest.skip(f"torch loads under ulimit -d 300000 here: {res.stderr.strip()}")
    assert res.returncode == 71, res.stderr
    assert res.stderr.startswith("error: out of memory: "), res.stderr
    assert " ".join(res.stderr.split()).endswith(
        "failed to map segment from shared object; the data-segment limit (ulimit -d) is 0.3 GiB: "
        "raise it and run the same command again"
    ), res.stderr


def test_memory_in_use_reads_this_process(monkeypatch):
    """VmSize and VmData of /proc/self/status, in bytes: a private writable mapping of 64 MiB
    adds 64 MiB to both. (Not a numpy array: in the whole suite malloc served it from memory an
    earlier test had freed, which the process keeps (trainer.allocator), and VmSize stayed.)"""
    import mmap

    from engine.cli.common import memory_in_use

    before = memory_in_use()
    if not before:
        pytest.skip("no /proc/self/status here")
    with mmap.mmap(-1, 64 * 2**20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS):
        after = memory_in_use()
    # within 4 MiB: another thread of the process (a test's leftover) may map or unmap meanwhile
    assert abs(after["VmSize"] - before["VmSize"] - 64 * 2**20) < 4 * 2**20
    assert abs(after["VmData"] - before["VmData"] - 64 * 2**20) < 4 * 2**20


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.EMFILE, "Too many open files"),
        OSError(errno.EMFILE, "Too many open files", "/tmp/pymp-x"),
        RuntimeError(
            "Too many open files. Communication with the workers is no longer possible. Please "
            "increase the limit using `ulimit -n` in the shell or change the sharing strategy by "
            "calling `torch.multiprocessing.set_sharing_strategy('file_system')` at the beginning "
            "of your code"
        ),
    ],
)
def test_too_many_open_files_is_one_line_naming_the_limit(tmp_path: Path, monkeypatch, error):
    """``ulimit -n`` reached (many --workers under a small limit: a cluster's, macOS's 256):
    before, a traceback (exit 1), or torch's advice to change the code (exit 2, "bad input")."""
    import engine.synth

    def too_many(*args, **kwargs):
        raise error

    monkeypatch.setattr(engine.synth, "generate", too_many)
    res = _synth(tmp_path / "d")
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert res.exit_code == 71, res.output
    assert " ".join(res.output.split()) == (
        f"error: too many open files (ulimit -n: {limit:,}); raise the limit (ulimit -n 4096; "
        "docker run --ulimit nofile=4096) or pass fewer --workers"
    )


def test_a_loader_worker_killed_by_a_bus_error_names_dev_shm(tmp_path: Path, monkeypatch):
    """An overcommitted /dev/shm kills a DataLoader worker with SIGBUS, which torch reports in
    the training process (the other case, a full /dev/shm: tests/trainer/test_train_cli.py)."""
    import engine.synth

    def bus_error(*args, **kwargs):
        raise RuntimeError(
            "DataLoader worker (pid(s) 12) is killed by signal: Bus error. It is possible that "
            "dataloader's workers are out of shared memory. Please try to raise your shared "
            "memory limit."
        )

    monkeypatch.setattr(engine.synth, "generate", bus_error)
    res = _synth(tmp_path / "d")
    text = " ".join(res.output.split())
    assert res.exit_code == 71 and len(res.output.splitlines()) == 1, res.output
    assert text.startswith("error: out of shared memory: DataLoader worker (pid(s) 12) is killed")
    assert text.endswith(  # training's warning gives the same advice (engine.runinfo.SHM_ADVICE)
        "by default): give it more (docker run --shm-size 8g; Kubernetes: an emptyDir of medium "
        "Memory mounted at /dev/shm), or pass --workers 0 to load in the training process"
    )


@pytest.mark.parametrize(
    "raised, said",
    [
        (
            "worker process 12 died: killed by SIGKILL (most likely the kernel's out-of-memory "
            "killer; dmesg names it)",
            "error: worker process 12 died: killed by SIGKILL (most likely the kernel's "
            "out-of-memory killer; dmesg names it); free memory or pass fewer --workers, then run "
            "the same command again to resume",
        ),
        (
            "DataLoader worker (pid 12) is killed by signal: Killed. ",
            "error: DataLoader worker (pid 12) is killed by signal: Killed (most likely the "
            "kernel's out-of-memory killer; dmesg names it); free memory or pass fewer --workers, "
            "then run the same command again to resume",
        ),
        (
            "DataLoader worker (pid 12) exited unexpectedly with exit code 1. Details are lost due "
            "to multiprocessing. Rerunning with num_workers=0 may give better error trace.",
            "error: DataLoader worker (pid 12) exited unexpectedly with exit code 1; free memory "
            "or pass fewer --workers, then run the same command again to resume",
        ),
    ],
)
def test_a_worker_process_killed_is_named_with_what_to_do(
    tmp_path: Path, monkeypatch, raised: str, said: str
):
    """A worker process (a pool's, a DataLoader's) the kernel's out-of-memory killer or
    ``kill -9`` ended: one line naming it, how it died and what to do, exit code 71. Before,
    exit code 2 (a bad input) with "A process in the process pool was terminated abruptly
    while the future was running or pending." or torch's line."""
    import engine.synth
    from engine.parallel import WorkerDied

    def killed(*args, **kwargs):
        raise (WorkerDied if raised.startswith("worker") else RuntimeError)(raised)

    monkeypatch.setattr(engine.synth, "generate", killed)
    res = _synth(tmp_path / "d")
    assert res.exit_code == 71 and len(res.output.splitlines()) == 1, res.output
    assert " ".join(res.output.split()) == said


def test_a_runtime_error_that_is_not_memory_is_still_bad_input(tmp_path: Path, monkeypatch):
    import engine.synth

    def wrong_order(*args, **kwargs):
        raise RuntimeError("fuse the dataset first")

    monkeypatch.setattr(engine.synth, "generate", wrong_order)
    res = _synth(tmp_path / "d")
    assert res.exit_code == 2 and res.output == "error: fuse the dataset first\n"


@pytest.mark.parametrize("error", [RecursionError, NotImplementedError])
def test_a_fault_of_the_code_keeps_its_traceback(tmp_path: Path, monkeypatch, error):
    """RecursionError and NotImplementedError are RuntimeErrors, which the library raises for a
    wrong call order; they were shown as bad input (``error: maximum recursion depth
    exceeded``, exit code 2), hiding a bug behind a line that blamed the input."""
    import engine.synth

    def broken(*args, **kwargs):
        raise error("maximum recursion depth exceeded")

    monkeypatch.setattr(engine.synth, "generate", broken)
    res = _synth(tmp_path / "d")
    assert res.exit_code == 1 and isinstance(res.exception, error), res.output


def test_a_yaml_file_nested_too_deeply_is_one_line_naming_it(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("iters: " + "[" * 600 + "]" * 600 + "\n")
    res = CliRunner().invoke(app, ["train", "--config", str(config), "--data", str(tmp_path)])
    assert res.exit_code == 2 and len(res.output.splitlines()) == 1, res.output
    assert f"{config}: cannot parse YAML (nested too deeply" in " ".join(res.output.split())


def test_a_full_disk_is_one_line_and_exit_74(tmp_path: Path, monkeypatch):
    """Out of space (or quota, or a read-only file system): one line naming the file and how to
    go on, exit code 74; any other operating-system error is still a traceback (a bug)."""
    import errno

    import engine.synth

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "d/x.png"))

    monkeypatch.setattr(engine.synth, "generate", full)
    res = _synth(tmp_path / "d")
    assert res.exit_code == 74
    assert " ".join(res.output.split()) == (
        f"error: {tmp_path / 'd/x.png'}: No space left on device; make room and run the same "
        "command again to resume"
    )

    # over the file size limit (Python ignores SIGXFSZ: `ulimit -f` makes writes fail with
    # EFBIG) was a traceback; a read-only file system was told to "make room"
    for code, reason, remedy in [
        (errno.EFBIG, "File too large", "raise the file size limit (ulimit -f)"),
        (errno.EROFS, "Read-only file system", "make the file system writable"),
    ]:

        def refused(*args, code=code, reason=reason, **kwargs):
            raise OSError(code, reason, str(tmp_path / "d/x.png"))

        monkeypatch.setattr(engine.synth, "generate", refused)
        res = _synth(tmp_path / "d")
        assert res.exit_code == 74, res.output
        assert " ".join(res.output.split()) == (
            f"error: {tmp_path / 'd/x.png'}: {reason}; {remedy} and run the same command "
            "again to resume"
        )

    # a command that does not resume still says what to do (it said the error alone)
    import engine.evaluate

    def refused_json(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "e.json"))

    monkeypatch.setattr(engine.evaluate, "evaluate", refused_json)
    (tmp_path / "p").mkdir()
    res = CliRunner().invoke(app, ["evaluate", "--pred", str(tmp_path / "p"), "--gt", "x"])
    assert res.exit_code == 74, res.output
    assert " ".join(res.output.split()) == (
        f"error: {tmp_path / 'e.json'}: Read-only file system; make the file system writable "
        "and run the same command again"
    )

    def other(*args, **kwargs):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(engine.synth, "generate", other)
    res = _synth(tmp_path / "d")
    assert res.exit_code == 1 and isinstance(res.exception, OSError)


def test_a_read_only_current_folder_says_to_give_out_for_the_default_out(tmp_path, monkeypatch):
    """A read-only working folder (a mount, a container's /): the default --out under runs/
    failed with "make the file system writable" as the only fix (exit 74), or, where the folder
    lacks write permission, "Permission denied" alone (exit 2); giving --out elsewhere is the
    other. A --out the user gave is named by the error, without it."""
    import labeler.run
    import trainer.train

    assert _synth(tmp_path / "d").exit_code == 0
    monkeypatch.chdir(tmp_path)
    label = ["label", "--class", "Car", "--data", str(tmp_path / "d"), "--backend", "simulated"]
    for code, reason in [
        (errno.EROFS, "Read-only file system"),
        (errno.EACCES, "Permission denied"),
    ]:
        error = PermissionError if code == errno.EACCES else OSError

        def refused(cfg, *args, code=code, reason=reason, error=error, **kwargs):
            raise error(code, reason, str(cfg.out or "runs/label/car"))

        monkeypatch.setattr(labeler.run, "run_labeling", refused)
        monkeypatch.setattr(trainer.train, "train", refused)
        train = ["train", "--data", str(tmp_path / "d"), "--preset", "tiny", "--iters", "1"]
        for args, out in [(label, "runs/label/car"), (train, "runs/train/run")]:
            res = runner.invoke(app, args)
            text = " ".join(res.output.split())
            assert res.exit_code == (74 if code == errno.EROFS else 2), res.output
            assert text.startswith(f"error: {out}: {reason};") and text.endswith(
                ", or give --out in a folder you can write to"
                if code == errno.EROFS
                else f"{reason}; give --out in a folder you can write to"
            ), text
            res = runner.invoke(app, [*args, "--out", "mine"])  # given: the user's own folder
            if code == errno.EROFS:
                assert res.output.startswith("error: mine: ") and "--out" not in res.output
            else:  # named as the option it was given as (since the forty-sixth round), no hint
                assert " ".join(res.output.split()) == (
                    f"error: --out mine: the folder cannot be created: {tmp_path} takes no new "
                    f"folders ({reason})"
                )


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into a read-only folder"
)
def test_label_in_a_read_only_folder_says_to_give_out(tmp_path, monkeypatch):
    """The same, for real: a working folder without write permission."""
    assert _synth(tmp_path / "d").exit_code == 0
    here = tmp_path / "ro"
    here.mkdir()
    here.chmod(0o555)
    monkeypatch.chdir(here)
    try:
        args = ["label", "--class", "Car", "--data", str(tmp_path / "d"), "--backend", "simulated"]
        res = runner.invoke(app, [*args, "--no-progress"])
        assert res.exit_code == 2, res.output
        assert " ".join(res.output.split()).endswith("; give --out in a folder you can write to")
        assert not (here / "runs").exists()
    finally:
        here.chmod(0o755)


def test_a_class_name_too_long_for_a_folder_is_one_line_and_exit_2(tmp_path: Path, monkeypatch):
    """--class with 300 letters: the default --out runs/label/<name> is past the file system's
    255 bytes a name, which was a traceback (OSError: File name too long); a --out as long, too.
    No file is written."""
    assert _synth(tmp_path / "d").exit_code == 0
    monkeypatch.chdir(tmp_path)
    name = "x" * 300
    for args in (
        ["label", "--class", name, "--data", "d", "--backend", "simulated", "--no-progress"],
        ["fuse", "--data", "d", "--pseudo", "d", "--out", f"o/{name}", "--no-progress"],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert " ".join(res.output.split()).endswith(f"/{name}: File name too long"), res.output
        assert res.output.startswith("error: ")
    assert not [p for p in (*tmp_path.glob("runs/**/*"), *tmp_path.glob("o/**/*")) if p.is_file()]


def test_an_image_stem_too_long_for_instances_json_is_refused_before_labelling(tmp_path: Path):
    """An image x*251 + '.jpg' (255 bytes, legal) got its label and confidence maps written,
    then failed at instances/<split>/<stem>.json (256 bytes: File name too long), and again at
    every rerun that "retries exactly those". Now one line naming the image, exit 2, nothing
    written; a 250-byte stem (a .json of 255 bytes) is labelled."""
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import plan_items

    assert _synth(tmp_path / "d").exit_code == 0
    for p in (tmp_path / "d").rglob("synth_test_0000.*"):  # image, labels, new-class truth
        p.rename(p.with_name("x" * 251 + p.suffix))
    image = tmp_path / "d" / "images" / "test" / ("x" * 251 + ".jpg")
    args = ["label", "--class", "Bicycle", "--data", str(tmp_path / "d"), "--backend",
            "simulated", "--out", str(tmp_path / "run"), "--split", "test", "--no-progress"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        f"error: {image}: its stem is 251 bytes, too long for the label run's <stem>.json (a "
        "file name is at most 255 bytes): rename the image to a stem of at most 250 bytes"
    )
    assert not (tmp_path / "run").exists()
    for p in (tmp_path / "d").rglob("x" * 251 + ".*"):
        p.rename(p.with_name("x" * 250 + p.suffix))
    cfg = LabelConfig(data=str(tmp_path / "d"), cls=ClassSpec("Bicycle"), splits=("test",))
    assert [smp.stem for _, smp in plan_items(cfg)[0]] == ["x" * 250]


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "interrupted (SIGTERM)")],
)
def test_ctrl_c_stops_a_real_engine_process_and_the_rerun_resumes(
    tmp_path: Path, sig: str, code: int, said: str
):
    """SIGINT to a running ``engine synth`` (Ctrl-C): exit 130 and one line; the scenes written
    are kept and the same command finishes the job. SIGTERM (a scheduler's stop, ``timeout``,
    ``docker stop``) likewise, with 143 (before, the process died at once: no word, and the
    file being written left as a temporary file)."""
    import os
    import signal

    out = tmp_path / "d"
    args = [sys.executable, "-m", "cli", "synth", "--out", str(out), "--train", "400",
            "--val", "0", "--test", "0", "--size", "64x64", "--no-progress"]  # fmt: skip
    # SIGINT as Ctrl-C delivers it: a suite started in the background by a script (`cmd &`, no
    # job control) ignores SIGINT, and the child would inherit that and run to its end
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    first = out / "images" / "train" / "synth_train_0000.jpg"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err.decode()
    assert err.decode() == f"{said}: run the same command again to resume\n"
    assert (out / "synth.partial.json").is_file() and not (out / "synth.json").exists()
    assert 1 <= len(os.listdir(out / "images" / "train")) < 400
    last = out / "new_class_instances" / "car" / "train"  # the folder of a scene's last file
    # written files only: a temp file the interrupt cut short (".name.XXXX.tmp") is not a scene
    kept = len([f for f in os.listdir(last) if not f.startswith(".")]) if last.is_dir() else 0
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    if kept:  # the scenes written whole are kept, the one cut short is drawn again
        assert f"({kept} kept from an earlier run)" in " ".join(done.stdout.split())
    assert len(os.listdir(out / "images" / "train")) == 400 and (out / "synth.json").is_file()


def on_a_terminal_hung_up(
    args: list[str],
    ready,  # noqa: ANN001
    timeout: float = 120.0,
    stderr=None,  # noqa: ANN001
    group: bool = False,
) -> tuple[int, bytes]:
    """Run ``engine ARGS`` on a pseudo-terminal that is its controlling terminal, as in an ssh
    session, and drop the session once ``ready()`` holds: closing the terminal's master side
    hangs it up (every write to it fails with EIO) and the kernel sends the process SIGHUP;
    with ``group``, SIGHUP to its whole process group then, as the shell of the session sends
    its jobs. ``stderr``: a file for stderr instead of the terminal. The exit code (negative:
    the signal that killed it) and what the terminal showed."""
    import select

    master, slave = os.openpty()
    name = os.ttyname(slave)

    def take_the_terminal() -> None:  # after setsid (start_new_session): the session's own
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # a session without nohup, however pytest ran
        os.close(os.open(name, os.O_RDWR))

    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *args], cwd=ROOT, stdin=slave, stdout=slave,
        stderr=slave if stderr is None else stderr, start_new_session=True,
        preexec_fn=take_the_terminal,
    )  # fmt: skip
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not ready() and time.monotonic() < deadline:
            if select.select([master], [], [], 0.02)[0]:  # read, or a bar fills the terminal
                shown += os.read(master, 65536)
    finally:
        os.close(master)
        if group and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGHUP)  # its own group (start_new_session)
    return proc.wait(timeout=timeout), shown


def test_a_dropped_terminal_stops_a_real_engine_process_resumably_with_129(tmp_path: Path):
    """An ssh session dropped (or a terminal window closed) without ``nohup``: the terminal
    hangs up and the process gets SIGHUP. Python's default killed it at once, as SIGTERM's did
    before it was handled (no clean stop: ``engine train`` lost every step since its last
    checkpoint). Now a SIGHUP is a SIGTERM's clean stop, with exit code 129. ``engine label``
    writes its summary table to stdout after its loop stopped, and its line to stderr: both go
    nowhere, the hung-up terminal's streams pointed at the null device (writing the summary to
    the terminal failed the stop with EIO: exit code 74). The labels written are kept and no
    temporary file is left (a rerun labels the rest, as after Ctrl-C)."""
    res = runner.invoke(
        app,
        ["synth", "--out", str(tmp_path / "d"), "--train", "60", "--val", "0", "--test", "0",
         "--size", "64x64", "--seed", "3", "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = tmp_path / "lab"
    args = ["label", "--class", "Car", "--data", str(tmp_path / "d"), "--out", str(out),
            "--backend", "simulated", "--no-progress"]  # fmt: skip

    def labelled() -> list[Path]:
        return list(out.rglob("*.png")) if out.is_dir() else []

    code, shown = on_a_terminal_hung_up(args, lambda: bool(labelled()))
    assert code == 129, shown[-500:].decode(errors="replace")
    assert not [p.name for p in out.rglob("*") if p.name.endswith(".tmp")]
    kept = len(labelled())
    assert 1 <= kept < 2 * 60  # a label and a confidence map per image, some written


def test_a_sighup_is_stopped_as_a_sigterm_and_one_nohup_ignores_stays_ignored(monkeypatch):
    """The command line's SIGHUP: recorded within a training step as a SIGTERM is (the step
    then saved), said as ``interrupted (SIGHUP)`` with exit code 129. Under ``nohup`` (SIGHUP
    ignored) the process keeps running: its handling is left as it was."""
    from engine import stopping
    from engine.cli.common import interrupted

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for name in ("received", "pending", "signal_name"):  # put back after the test
        value = getattr(stopping._State, name, None)
        monkeypatch.setattr(stopping._State, name, value, raising=False)
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup engine ...
        stopping.install()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        stopping.install()
        assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL  # else the kill ends pytest
        with pytest.raises(stopping.Terminated) as e, stopping.deferred():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.01)  # the handler runs in this thread between bytecodes
            assert stopping.requested()  # the step goes on to its end
        assert interrupted() == ("interrupted (SIGHUP)", 129)
        assert (str(e.value), e.value.code) == ("SIGHUP", 129)  # its message said SIGTERM
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def test_a_stop_passed_on_names_the_signal_of_its_exit_code():
    """A rank's stop passed to its parent (pickled) or another rank: its message named
    SIGTERM for a SIGHUP's 129 too; it names the signal its code is of."""
    import pickle

    from engine.stopping import Terminated

    for code, name in ((129, "SIGHUP"), (143, "SIGTERM")):
        stop = pickle.loads(pickle.dumps(Terminated(7, "step_7.pt", code)))
        assert (str(stop), stop.code, stop.step, stop.checkpoint) == (name, code, 7, "step_7.pt")


def test_a_sighup_after_a_sigterm_still_silences_the_hung_up_terminal(monkeypatch):
    """A SIGTERM began the clean stop, then the terminal hung up: the SIGHUP points the gone
    streams at the null device all the same (before, it returned first, as a second signal does,
    and ``engine label``'s summary, written to the hung-up terminal, ended it with exit code 74
    instead of 143); the stop stays the SIGTERM's (line and exit code)."""
    from engine import stopping

    for name in ("received", "pending", "signal_name", "deferring"):  # put back after the test
        monkeypatch.setattr(stopping._State, name, getattr(stopping._State, name))
    silenced: list[str] = []
    monkeypatch.setattr(stopping, "silence_gone_streams", lambda: silenced.append("streams"))
    stopping._State.received, stopping._State.signal_name = True, "SIGTERM"  # a SIGTERM came
    stopping._on_sigterm(signal.SIGHUP, None)  # returns: the stop under way is not cut short
    assert silenced == ["streams"]
    assert stopping.received_signal() == ("SIGTERM", 143)
    stopping._on_sigterm(signal.SIGTERM, None)  # a second SIGTERM: nothing at all
    assert silenced == ["streams"]


def test_a_write_to_the_terminal_that_hung_up_is_its_sighup_s_stop(monkeypatch):
    """The terminal hung up while a command wrote to it (``engine label``'s summary as the ssh
    session dropped): the write fails with EIO before the kernel's SIGHUP reaches its handler.
    It ended with exit code 74 and "stdout (/dev/pts/3): Input/output error", as a failing disk
    would; now it is the SIGHUP's stop: ``interrupted (SIGHUP)`` (with how to resume) and 129.
    An EIO where no stream's reader is gone (a failing disk) stays the disk's line and 74."""
    import typer

    import cli
    from engine import stopping

    for name in ("received", "pending", "signal_name", "deferring"):  # put back after the test
        monkeypatch.setattr(stopping._State, name, getattr(stopping._State, name))
    stopping._State.received, stopping._State.signal_name = False, "SIGTERM"
    said: list[str] = []
    monkeypatch.setattr(cli.stderr, "print", lambda text, **_: said.append(str(text)))

    def summary() -> None:  # what a command's last write to its hung-up terminal raises
        raise OSError(errno.EIO, "Input/output error", "stdout (/dev/pts/3)")

    def exit_code() -> int:
        with pytest.raises(typer.Exit) as stop:
            cli.guard(summary, resumable=True)()
        return stop.value.exit_code

    monkeypatch.setattr(stopping, "silence_gone_streams", lambda: [])  # a disk's EIO
    assert (exit_code(), stopping.received()) == (74, False)
    assert said.pop().startswith("error: stdout (/dev/pts/3): Input/output error; ")
    monkeypatch.setattr(stopping, "silence_gone_streams", lambda: [1])  # the terminal gone
    assert (exit_code(), said) == (
        129,
        ["interrupted (SIGHUP): run the same command again to resume"],
    )
    assert stopping.received_signal() == ("SIGHUP", 129)
    said.clear()
    stopping._State.signal_name = "SIGTERM"  # a SIGTERM's stop under way: it stays the SIGTERM's
    assert (exit_code(), said) == (
        143,
        ["interrupted (SIGTERM): run the same command again to resume"],
    )


def test_import_cli_does_not_import_heavy_modules():
    code = (
        "import sys, cli; heavy = [m for m in ('torch', 'transformers', 'torchvision', 'cv2', "
        "'engine.synth', 'scipy') if m in sys.modules]; print(','.join(heavy))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"imported at startup: {res.stdout.strip()}"


def test_help_is_fast():
    """``engine --help`` must answer well under 2 s. Measured as the child's CPU time, which a
    loaded CI machine does not inflate the way it inflates wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "cli", "--help"], cwd=ROOT, capture_output=True,
                         text=True)  # fmt: skip
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert res.returncode == 0 and "synth" in res.stdout and "info" in res.stdout
    assert cpu < 1.0, f"engine --help used {cpu:.2f} s of CPU"
    assert wall < 10.0, f"engine --help took {wall:.2f} s"
    assert "Usage: engine " in res.stdout  # as `python -m cli` too (it said cli.py)


def test_log_records_are_warning_lines_on_the_console(monkeypatch, capsys):
    """The engine's log records (the labeler's "hub cannot be reached") print as ``warning: ...``
    lines on the progress bars' console, installed once however often ``main`` runs."""
    import logging

    import cli
    from engine.cli.common import LOGGED_PACKAGES, ConsoleLogHandler

    def fake_app(**_: object) -> None:
        logging.getLogger("labeler.models").warning("huggingface.co cannot be reached (%s)", "x")
        logging.getLogger("trainer.train").info("not shown at the default level")

    monkeypatch.setattr(cli, "app", fake_app)
    # what main installs for the process, put back for the tests after this one
    from rich.console import Console

    monkeypatch.setattr(Console, "on_broken_pipe", Console.on_broken_pipe)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        cli.main()
        cli.main()
        err = capsys.readouterr().err
        assert err.splitlines() == ["warning: huggingface.co cannot be reached (x)"] * 2
        for name in LOGGED_PACKAGES:
            handlers = logging.getLogger(name).handlers
            assert sum(isinstance(h, ConsoleLogHandler) for h in handlers) == 1
    finally:
        signal.signal(signal.SIGTERM, sigterm)
        for name in LOGGED_PACKAGES:
            logger = logging.getLogger(name)
            logger.handlers = [h for h in logger.handlers if not isinstance(h, ConsoleLogHandler)]
            logger.setLevel(logging.NOTSET)


def test_problems_of_one_reason_are_one_line_on_the_command_line():
    """A folder of predictions from a model without the class fails every file for one reason:
    one line naming the first file and the count, not one per file; few or different problems
    keep a line each."""
    from engine.cli.common import error_text
    from engine.parallel import BadItems

    same = [f"pred/img{i:03d}.png: its taxonomy has no class 'Bicycle'" for i in range(500)]
    other = ["pred/x.png: cannot decode image (truncated)", "no path here"]
    text = error_text(BadItems("502 of 502 pairs cannot be read", same + other)).plain
    assert text.splitlines() == [
        "error: 502 of 502 pairs cannot be read:",
        "  pred/img000.png and 499 more files: its taxonomy has no class 'Bicycle'",
        "  pred/x.png: cannot decode image (truncated)",
        "  no path here",
    ]
    three = error_text(BadItems("3 of 3 pairs cannot be read", same[:3])).plain
    assert three.splitlines()[1:] == [f"  {p}" for p in same[:3]]


def test_version_names_the_installed_distribution():
    """``engine --version``: a released tool's first question; there was none ("No such
    option"), and an installed copy has no git checkout for a record's commit."""
    from importlib import metadata

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0, res.output
    try:
        assert res.output == f"mass-engine {metadata.version('mass-engine')}\n"
    except metadata.PackageNotFoundError:
        assert res.output == "mass-engine (not installed: run from a source tree)\n"


@pytest.mark.parametrize(
    "args", [["info", "{ds}", "--no-progress"], ["--help"], ["info", "--help"], ["--version"]]
)
def test_a_reader_that_closes_the_pipe_early_ends_the_command_quietly_with_141(
    tmp_path: Path, args: list[str]
):
    """``engine info DATA | head -1``: exit code 141, as git's and coreutils' (the shell's code
    for a process SIGPIPE ended), and nothing on stderr. Before, click's and rich's exit code 1,
    which ``engine info`` says for problems found: a script under ``set -o pipefail`` read a
    broken pipe as a dataset with problems."""
    if args[1:2] == ["{ds}"]:
        assert _synth(tmp_path / "d").exit_code == 0
    args = [a.replace("{ds}", str(tmp_path / "d")) for a in args]
    proc = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    proc.stdout.close()  # the reader gone before the command writes its first line
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err.decode()) == (141, "")


def test_a_broken_pipe_that_is_not_stdout_stays_an_error():
    """An EPIPE of a socket (torch.distributed's store, gloo) or a worker's pipe, with stdout
    still read, is not taken for ``| head``: the command does not end quietly on it. SIGPIPE
    stays ignored, as Python sets it (SIG_DFL would kill a training process on a socket's)."""
    import signal

    from engine.cli.common import broken_pipe

    assert not broken_pipe(BrokenPipeError(errno.EPIPE, "Broken pipe"))
    assert not broken_pipe(OSError(errno.ENOSPC, "No space left on device"))
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN


def test_a_broken_pipe_and_a_hang_up_ask_one_question_of_an_error(monkeypatch):
    """``broken_pipe`` (EPIPE) and ``hung_up`` (EIO) are one test, :func:`engine.stopping.
    stream_gone`: the error's errno, then whether stdout's or stderr's reader is gone (the
    streams then pointed at the null device); each asks for its own errno only."""
    from engine import stopping
    from engine.cli.common import broken_pipe

    silenced: list[int] = []
    monkeypatch.setattr(stopping, "silence_gone_streams", lambda: silenced or [])
    pipe, eio = BrokenPipeError(errno.EPIPE, "Broken pipe"), OSError(errno.EIO, "I/O error")
    assert [stopping.stream_gone(e, errno.EPIPE) for e in (pipe, eio, ValueError())] == [
        False, False, False
    ]  # fmt: skip
    assert not broken_pipe(pipe)  # stdout still read: a socket's
    silenced.append(1)  # stdout's reader gone
    assert [stopping.stream_gone(e, errno.EPIPE) for e in (pipe, eio, ValueError())] == [
        True, False, False
    ]  # fmt: skip
    assert (broken_pipe(pipe), broken_pipe(eio)) == (True, False)


def test_a_broken_pipe_of_a_socket_is_no_quiet_exit_1(monkeypatch):
    """A command whose socket or worker pipe breaks, its output still read: click ended it with
    exit code 1 and nothing said (``engine info``'s "problems found"); it is an error with its
    traceback, as any error the engine does not expect."""
    from typer.testing import CliRunner

    import trainer.models.summary
    from cli import app

    def broken(**_: object) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(trainer.models.summary, "summarize_presets", broken)
    res = CliRunner().invoke(app, ["models"])
    assert res.exit_code == 1 and isinstance(res.exception, RuntimeError), res.exception
    assert "broken pipe, not the command's output" in str(res.exception)
