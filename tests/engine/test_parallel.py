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


def test_workers_of_a_command_that_stops_on_sighup_ignore_it(monkeypatch):
    """A dropped ssh session's SIGHUP goes to the whole process group. A pool worker of the
    command line (which stops cleanly on SIGHUP) and a DataLoader worker ignore it, so they
    finish their job for the clean stop instead of dying mid-job (before: the pool broke, exit
    71; ``engine train --processes 2 --workers 1`` lost its steps); a library caller's pool
    workers keep the default, to die with their caller (nothing else would end them)."""
    from engine import parallel, stopping
    from trainer.data import seed_worker

    saved = signal.getsignal(signal.SIGHUP)
    try:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # a library caller
        with parallel.process_pool(1) as pool:  # no worker starts before a job is given
            assert pool._initargs == (False, None, ())
        signal.signal(signal.SIGHUP, stopping._on_sigterm)  # the command line's (install)
        with parallel.process_pool(2, initializer=print, initargs=("x",)) as pool:
            assert pool._initargs == (True, print, ("x",))
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        started: list[str] = []
        parallel._start_worker(False, started.append, ("plan",))  # a pool worker's start
        assert (started, signal.getsignal(signal.SIGHUP)) == (["plan"], signal.SIG_DFL)
        parallel._start_worker(True, started.append, ("plan",))
        assert (started, signal.getsignal(signal.SIGHUP)) == (["plan"] * 2, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        seed_worker(0)  # a DataLoader worker's start
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, saved)


def test_the_resource_tracker_starts_with_sighup_blocked():
    """multiprocessing's resource tracker, started before a command's first worker, has SIGHUP
    blocked (it unblocks only the SIGINT and SIGTERM it ignores): a dropped ssh session's
    SIGHUP to the process group leaves it running. Before, it died, and the next process to
    use it printed "resource_tracker: process died unexpectedly" and KeyError tracebacks."""
    import subprocess
    import sys

    if not Path("/proc/self/status").is_file():
        pytest.skip("no /proc here")
    code = (
        "import multiprocessing.resource_tracker as r, signal; from engine import stopping; "
        "stopping.start_resource_tracker(); pid = r._resource_tracker._pid; "
        "blocked = [l for l in open(f'/proc/{pid}/status') if l.startswith('SigBlk')][0]; "
        "print(int(blocked.split()[1], 16) & 1, signal.SIGHUP in signal.pthread_sigmask("
        "signal.SIG_BLOCK, set()))"
    )
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert (res.returncode, res.stdout, res.stderr) == (0, "1 False\n", "")


def test_how_a_process_ended_also_when_it_has_not_or_by_an_unknown_signal():
    """``how_it_ended``: a process not ended yet (exit code None) is "ended" (asked after it
    was seen to end), a clean exit is its code, 0 included, and a signal without a name its
    number."""
    from engine.parallel import how_it_ended

    assert how_it_ended(None) == "ended"
    assert how_it_ended(0) == "exited with code 0"
    assert how_it_ended(-200) == "killed by signal 200"
    assert "out-of-memory" not in how_it_ended(-signal.SIGTERM)


def test_the_first_process_killed_is_the_first_ended_by_anything_but_sigterm():
    """first_killed: the first process that ended (exit code not None) by anything but the
    SIGTERM the others are sent; with ``signals_only``, by a signal only (a rank's own exit
    code is its error, sent back)."""
    from types import SimpleNamespace as P

    from engine.parallel import first_killed

    term, kill = -signal.SIGTERM, -signal.SIGKILL
    running, stopped, failed, killed = (
        P(exitcode=None),
        P(exitcode=term),
        P(exitcode=1),
        P(exitcode=kill),
    )
    assert first_killed([running, stopped, failed, killed]) is failed
    assert first_killed([running, stopped, failed, killed], signals_only=True) is killed
    assert first_killed([stopped, P(exitcode=0)], signals_only=True) is None
    assert first_killed([running, stopped]) is None


def test_process_gone_for_a_live_a_zombie_and_a_reaped_process():
    """A process is gone once it ended: a zombie no one reaped yet is gone too (a container's
    init may never reap one), and so is a pid no process has; this one is not."""
    import os
    import subprocess
    import sys
    import time

    from engine.parallel import process_gone

    assert process_gone(os.getpid()) is False
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while not process_gone(child.pid):  # a zombie until waited for
        assert time.monotonic() < deadline, "a child that ended is not gone"
        time.sleep(0.05)
    assert child.poll() == 0  # reaped only now: it was a zombie when found gone
    assert process_gone(child.pid) is True  # no such process any more


def test_jobs_run_here_with_one_worker_or_one_job_and_in_workers_otherwise(tmp_path, monkeypatch):
    """``map_in_order``: one worker, or a single job, runs in this process (no pool to
    start); two workers over several jobs run them in spawned processes, results in order."""
    import os

    pids = _job_module(tmp_path, monkeypatch, "pid_job", "import os\ndef job(x):\n"
                       "    return x, os.getpid()\n")  # fmt: skip
    here = os.getpid()
    assert list(map_in_order(pids.job, [1, 2, 3], 1, "t", False)) == [(1, here), (2, here),
                                                                      (3, here)]  # fmt: skip
    assert list(map_in_order(pids.job, [7], 4, "t", False)) == [(7, here)]
    out = list(map_in_order(pids.job, [1, 2, 3], 2, "t", False))
    assert [x for x, _ in out] == [1, 2, 3] and here not in {p for _, p in out}


def test_bad_items_say_how_many_more_only_past_the_shown():
    from engine.parallel import BadItems

    assert str(BadItems("2 of 5 pairs cannot be read", ["a", "b", "c"])) == (
        "2 of 5 pairs cannot be read: a; b; c"
    )
    e = BadItems("h", ["a", "b", "c", "d"], shown=2)
    assert str(e) == "h: a; b; and 2 more" and e.problems == ["a", "b", "c", "d"]


def test_process_gone_where_proc_cannot_tell_asks_with_signal_0(monkeypatch):
    """Where ``/proc`` cannot be read (another system, a ``hidepid`` mount), a signal 0 tells:
    no such process is gone, one that exists is not, another user's (not allowed) is alive."""
    import os

    from engine import parallel

    def unreadable(path, mode="r"):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(parallel, "open", unreadable, raising=False)
    answers = {1: ProcessLookupError(), 2: PermissionError(), 3: None}

    def kill(pid, sig):
        assert sig == 0
        if answers[pid] is not None:
            raise answers[pid]

    monkeypatch.setattr(parallel.os, "kill", kill)
    assert [parallel.process_gone(p) for p in (1, 2, 3)] == [True, False, False]
    monkeypatch.undo()
    assert parallel.process_gone(os.getpid()) is False


class _Ending:
    """A pool's process whose exit code the kernel gives only after ``later`` looks."""

    def __init__(self, pid: int, code: int | None, later: int = 0) -> None:
        self.pid, self._code, self._later = pid, code, later

    @property
    def exitcode(self) -> int | None:
        if self._later:
            self._later -= 1
            return None
        return self._code


def test_a_dead_worker_is_the_one_killed_waited_for_not_the_others_stopped():
    """dead_worker names the worker that died by anything but the SIGTERM the broken pool
    sends the others, waiting the moment the kernel takes to give its exit code; with none
    killed, the first that ended; with none ended, a worker process."""
    from types import SimpleNamespace

    from engine.parallel import dead_worker

    def pool(*processes):
        return SimpleNamespace(_processes={p.pid: p for p in processes})

    term, kill = -signal.SIGTERM, -signal.SIGKILL
    said = str(dead_worker(pool(_Ending(11, term), _Ending(12, kill, later=3))))
    assert said.startswith("worker process 12 died: killed by SIGKILL (most likely")
    assert str(dead_worker(pool(_Ending(11, None), _Ending(13, term)))) == (
        "worker process 13 died: killed by SIGTERM"
    )
    assert str(dead_worker(SimpleNamespace(_processes=None))) == "a worker process died"
