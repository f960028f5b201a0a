"""engine.parallel: process pools of every command that maps work over images."""

from __future__ import annotations

import importlib
import signal
from pathlib import Path
from types import ModuleType

import pytest

from engine.parallel import map_in_order
from engine.runinfo import kept_warnings


def _job_module(tmp_path: Path, monkeypatch, name: str, source: str) -> ModuleType:
    """A module ``name`` of ``source`` in ``tmp_path``, importable by spawned workers too."""
    (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers import it from there
    return importlib.import_module(name)


def test_a_workers_warnings_are_said_and_kept_by_the_caller(tmp_path, monkeypatch):
    """A warning logged in a worker process of evaluate, compare, info or annotate import is
    printed and kept in the command's record like the main process's (as fuse's workers'):
    before, a spawned worker printed it bare and the record left it out."""
    warning_job = _job_module(
        tmp_path,
        monkeypatch,
        "warning_job",
        "import logging\n"
        "def job(n):\n"
        "    logging.getLogger('engine.evaluate').warning('image %d: said in a worker', n)\n"
        "    return n * n\n",
    )

    with kept_warnings() as said:
        results = list(map_in_order(warning_job.job, [1, 2, 3], 2, "test", progress=False))
    assert results == [1, 4, 9]
    assert said == [f"image {n}: said in a worker" for n in (1, 2, 3)]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_a_worker_killed_is_named_with_how_it_died(tmp_path, monkeypatch):
    """A worker of evaluate, compare, info or annotate that the kernel's out-of-memory killer
    (or ``kill -9``) ends: the error names the process and its SIGKILL, and the command line
    says what to do (exit code 71). Before, ``BrokenProcessPool``'s "A process in the process
    pool was terminated abruptly ..." came out as a bad input, exit code 2."""
    from engine.parallel import WorkerDied

    killed_job = _job_module(
        tmp_path,
        monkeypatch,
        "killed_job",
        "import os, signal\n"
        "def job(n):\n"
        "    if n == 2:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return n\n",
    )

    with pytest.raises(WorkerDied) as e:
        list(map_in_order(killed_job.job, [1, 2, 3], 2, "test", progress=False))
    assert str(e.value).startswith("worker process ")
    assert str(e.value).endswith(
        f"died: killed by {signal.SIGKILL.name} (most likely the kernel's out-of-memory "
        "killer; dmesg names it)"
    )


def test_how_a_process_ended_in_words():
    from engine.parallel import how_it_ended

    assert how_it_ended(-11) == "killed by SIGSEGV"
    assert how_it_ended(1) == "exited with code 1"
    assert how_it_ended(-9).startswith("killed by SIGKILL (most likely the kernel's out-of-mem")


def test_library_configs_take_workers_0_as_the_command_line_does(tmp_path: Path):
    """``--workers 0`` is "in this process" on the command line (recorded as 1); the library's
    configs and calls refused it (``workers must be >= 1``). Now 0 is 1 there too, and below
    0 is refused naming what 0 means."""
    from engine.compare import CompareConfig
    from engine.evaluate import EvaluateConfig
    from engine.fusion.run import FuseConfig

    made = [
        EvaluateConfig(tmp_path, tmp_path, workers=0),
        CompareConfig("Others", tmp_path, (("a", tmp_path),), workers=0),
        FuseConfig(data=tmp_path, pseudo=(tmp_path,), out=tmp_path / "o", workers=0),
    ]
    assert [c.workers for c in made] == [1, 1, 1]  # what the command line records for 0
    assert list(map_in_order(abs, [-1, -2], 0, "x", False)) == [1, 2]
    for make in (
        lambda: EvaluateConfig(tmp_path, tmp_path, workers=-1),
        lambda: FuseConfig(data=tmp_path, pseudo=(tmp_path,), out=tmp_path, workers=-1),
        lambda: list(map_in_order(abs, [1], -1, "x", False)),
    ):
        with pytest.raises(ValueError, match=r"workers must be >= 0 \(0 or 1: in this process\)"):
            make()
