"""``engine train --processes N``: local DDP ranks on CPU, started from inside the process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli import app
from engine.synth import SynthConfig, generate
from tests.trainer._train_stub import SMALL_RUN_YAML
from trainer.allocator import glibc_mallopt
from trainer.config import TrainConfig


class _EndedRank:
    """A rank process of ``torch.multiprocessing`` that has ended with ``exitcode``, for
    ``start_processes`` stubs."""

    def __init__(self, pid: int, exitcode: int) -> None:
        self.pid, self.exitcode = pid, exitcode

    def is_alive(self) -> bool:
        return False

    def join(self, timeout=None) -> None:
        pass

    def close(self) -> None:
        pass


def _ranks_sending(monkeypatch, *messages, ranks=None, seen=None, joined=None):
    """``torch.multiprocessing.start_processes`` stubbed: ranks that put ``messages`` on the
    parent's queue and have ended (``ranks``: the rank stubs; ``seen``: a list that gets the
    config the ranks were given; ``joined``: called as the parent's wait for them ends)."""
    import torch.multiprocessing as mp

    class Ranks:
        processes = ranks if ranks is not None else [_EndedRank(101, 0), _EndedRank(102, 0)]

        def join(self, timeout=None) -> bool:
            if joined is not None:
                joined()
            return True

    def start(fn, args, nprocs, join, start_method):
        if seen is not None:
            seen.append(args[1])
        for message in messages:
            args[4].put(message)  # the messages queue
        return Ranks()

    monkeypatch.setattr(mp, "start_processes", start)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return generate(
        SynthConfig(out=root, train=4, val=2, test=2, size=(128, 96), seed=0), progress=False
    )


def _train(synth, run, cfg, *extra: str):
    args = ["train", "--data", str(synth), "--preset", "tiny", "--config", str(cfg)]
    args += ["--out", str(run), "--batch-size", "4", "--device", "cpu", "--workers", "0"]
    args += ["--val-every", "0", "--processes", "2", "--no-progress", *extra]
    return CliRunner().invoke(app, args)


def test_two_processes_train_report_once_and_resume(synth, tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(SMALL_RUN_YAML)
    run = tmp_path / "run"
    res = _train(synth, run, cfg, "--iters", "2")
    assert res.exit_code == 0, res.output
    assert res.output.count("trained 2 steps") == 1  # the parent reports rank 0's result
    assert res.output.count("val: mIoU") == 1  # validation sharded over ranks, gathered on 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2]  # only rank 0 writes
    from trainer.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run / "last.pt")
    assert len(ckpt["rng_ranks"]) == 2 and ckpt["config"]["processes"] == 2
    # the ranks keep freed memory for the next step (trainer/allocator.py), recorded
    environment = json.loads((run / "environment.json").read_text())
    if glibc_mallopt() is not None:
        assert "MALLOC_MMAP_THRESHOLD_" in environment["env"]
    # the layout it trained on, to reproduce it (before: rank 0's host only)
    layout = environment["distributed"]
    assert (layout["launcher"], layout["backend"], layout["world_size"]) == ("processes", "gloo", 2)
    assert layout["nodes"] == 1 and layout["hosts"][0]["ranks"] == [0, 1]

    # an error raised inside a rank reaches the user as the usual one-line error
    again = _train(synth, run, cfg, "--iters", "3")
    assert again.exit_code == 2
    assert "a run already exists here; pass --resume" in " ".join(again.output.split())
    assert "Traceback" not in again.output

    res = _train(synth, run, cfg, "--iters", "3", "--resume")
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3]


def test_rank_threads_share_the_cores(monkeypatch):
    from trainer import spawn

    monkeypatch.setattr(spawn, "cpu_cores", lambda: 8)
    assert spawn.rank_threads(0, 0, 2) == 4
    assert spawn.rank_threads(0, 1, 2) == 3  # each rank's loader worker takes a core
    assert spawn.rank_threads(0, 4, 4) == 1  # never below one
    assert spawn.rank_threads(3, 0, 2) == 3  # an explicit count wins
    assert spawn.rank_threads(1, 0, 2) == 1  # one thread asked for is one, not the share
    assert spawn.resolve_processes(0, "cpu") == 8
    assert spawn.resolve_processes(0, "cuda") == 1  # GPUs: torchrun, one process each
    assert spawn.resolve_processes(2, "cpu") == 2
    assert spawn.resolve_processes(1, "cpu") == 1  # --processes 1: one, not one per core


def test_a_rank_sends_its_init_report_and_error_and_only_rank_0_its_result(monkeypatch):
    """What each rank puts on the parent's queue (:func:`trainer.spawn._rank_main`, run here in
    this process): every rank its init report and its error, rank 0 alone its result, and the
    torchrun variables of its rank set first. A rank other than 0 sending the result (or rank 0
    not sending it) was seen only by the two real-rank tests, which the mutation pass of the
    fifty-sixth round skips for time."""

    from engine import stopping
    from trainer import spawn
    from trainer.ranks import RUN_LOCKED_BY_PARENT

    monkeypatch.setattr(stopping, "install", lambda: None)  # this is pytest's process
    monkeypatch.setattr(spawn, "exit_with_parent", lambda parent: None)
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                 "MASTER_PORT", RUN_LOCKED_BY_PARENT):  # fmt: skip
        monkeypatch.setenv(name, "")  # restored after the test

    def target(cfg, on_init):
        on_init(f"report of rank {os.environ['RANK']}")
        if cfg == "fails":
            raise ValueError("images/train/im7.png: image file is truncated")
        return f"result of rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}"

    sent = {}
    for rank, cfg in ((0, "trains"), (1, "trains"), (1, "fails")):
        messages = []
        queue = type("Queue", (), {"put": staticmethod(messages.append)})
        spawn._rank_main(rank, target, cfg, 2, 29500, queue, os.getpid())
        sent[rank, cfg] = messages
        assert (os.environ["LOCAL_RANK"], os.environ["MASTER_PORT"]) == (str(rank), "29500")
        assert os.environ[RUN_LOCKED_BY_PARENT] == "1"
    assert sent[0, "trains"] == [("init", "report of rank 0"), ("result", "result of rank 0 of 2")]
    assert sent[1, "trains"] == [("init", "report of rank 1")]
    (init, error) = sent[1, "fails"]
    assert init == ("init", "report of rank 1") and error[0] == "error"
    assert str(error[1]) == "images/train/im7.png: image file is truncated"


def test_train_processes_refuses_one_process_before_starting_any(monkeypatch):
    """One process is train()'s, not a one-rank DDP group spawned beside the caller: refused
    at once, no rank started (nothing tested it before the fifty-sixth round's mutation pass)."""
    import torch.multiprocessing as mp

    from trainer.spawn import train_processes

    def start(*args, **kwargs):
        raise AssertionError("ranks started")

    monkeypatch.setattr(mp, "start_processes", start)
    cfg = TrainConfig(data="unused", device="cpu", processes=1)
    for processes in (0, 1):
        with pytest.raises(ValueError, match=r"^train_processes needs at least 2 processes; "):
            train_processes(lambda c: None, cfg, processes)


def test_the_parent_passes_the_init_report_on_and_raises_the_first_error(monkeypatch):
    """What the parent makes of the ranks' messages: the init report to ``on_init`` (none
    given: dropped), rank 0's result returned, and of several ranks' errors the first raised."""
    from trainer.spawn import train_processes

    cfg = TrainConfig(data="unused", device="cpu", processes=2)
    _ranks_sending(monkeypatch, ("init", "report"), ("result", "finished run"))
    assert train_processes(lambda c: None, cfg, 2) == "finished run"
    reports = []
    assert train_processes(lambda c: None, cfg, 2, on_init=reports.append) == "finished run"
    assert reports == ["report"]
    _ranks_sending(
        monkeypatch, ("init", "report"), ("error", ValueError("first")), ("error", OSError("next"))
    )
    with pytest.raises(ValueError, match="^first$"):
        train_processes(lambda c: None, cfg, 2)


def test_processes_must_not_be_negative():
    with pytest.raises(ValueError, match="processes must be >= 0"):
        TrainConfig(processes=-1)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie nobody reaped counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _holds(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has the file ``path`` open (one of its descriptors leads there)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False  # gone
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
    return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_ranks_exit_when_their_parent_is_killed(tmp_path):
    """SIGKILL (or SIGTERM) on the parent cannot stop its ranks; they must not train on as
    orphans. torch's spawn sends them SIGINT when their parent dies, but a command started in
    the background by a script (`cmd &`, no job control) ignores SIGINT, and so do its ranks:
    an `engine demo-pretrain` run that way and killed left its 2 ranks training for 40 min.

    Until they exit (within a second) they hold the run folder's lock with their parent: a
    rerun started meanwhile is refused (in use) rather than writing beside an orphan rank.
    Before, the ranks did not hold it (spawned, they got none of the parent's descriptors), and
    the rerun went on at once."""
    from engine.runlock import LOCK_NAME, FolderInUse, exclusive

    script = (
        "from engine.runlock import exclusive\n"
        "from tests.trainer._train_stub import sleeping_rank\n"
        "from trainer.config import TrainConfig\n"
        "from trainer.spawn import train_processes\n"
        f"with exclusive({str(tmp_path)!r}, 'engine train'):\n"
        f"    train_processes(sleeping_rank, TrainConfig(out={str(tmp_path)!r}, processes=2), 2)\n"
    )
    root = Path(__file__).resolve().parents[2]
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731 - as `&` does
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=root, preexec_fn=ignore_sigint)
    lock = tmp_path / LOCK_NAME
    try:
        # three processes importing torch: a minute was not enough on a loaded 2-core machine
        pids, deadline = [], time.monotonic() + 180
        while len(pids) < 2 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
            pids = [int(p.read_text()) for p in tmp_path.glob("rank*.pid") if p.read_text()]
        assert len(pids) == 2, "the ranks did not start"
        assert all(_running(pid) for pid in pids)
        assert all(_holds(pid, lock) for pid in pids)  # the parent's lock, passed on
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # a rerun: refused while a rank holds the lock
        try:
            with exclusive(tmp_path, "engine train"):
                assert not any(_holds(pid, lock) for pid in pids)
                break
        except FolderInUse:
            time.sleep(0.05)
    else:
        pytest.fail("the run folder stayed locked after the ranks' parent was killed")
    deadline = time.monotonic() + 15
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_running(pid) for pid in pids)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_a_loader_worker_started_as_its_rank_is_killed_exits(tmp_path):
    """A rank's DataLoader worker (spawned: seconds of imports) still starting when the rank
    was killed (its peer failed, so the parent ended it with SIGKILL) took init for the parent
    torch's watchdog checks, and ran on for ever: it kept ``engine train``'s output open, and a
    script reading that output waited for ever (crash-injection sweep, 5 minutes, then killed
    by hand). Its ``worker_init_fn`` now ends it once the process that made its loader is gone.
    Here that process is SIGKILLed before its (forked) worker's start."""
    pid_file = tmp_path / "worker.pid"
    script = (
        "import os, signal, time\n"
        "from trainer.data import make_loader\n"
        "init = make_loader(list(range(8)), 2, seed=0, num_workers=1, pin_memory=False)"
        ".worker_init_fn\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.close(w)\n"
        "    os.read(r, 1)  # the loader's process gone\n"
        "    init(0)\n"
        "    time.sleep(120)\n"
        "    os._exit(0)\n"
        f"open({str(pid_file)!r}, 'w').write(str(pid))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = Path(__file__).resolve().parents[2]
    killed = subprocess.run([sys.executable, "-c", script], cwd=root, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 15
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = _running(pid)
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the worker outlived the process that made its loader"


def test_cpu_ranks_on_a_gpu_machine_use_gloo_and_leave_cuda_alone(monkeypatch, tmp_path):
    """On a machine with a GPU, `--processes 2 --device cpu` initialised NCCL (chosen by
    whether CUDA exists, not by the run's device), which cannot reduce CPU tensors: the H200
    run's spawn test failed. The backend, the loader's pinned memory and the saved CUDA
    generators now follow the device the run trains on."""
    import torch.distributed as dist

    from tests.trainer._train_stub import write_dataset
    from trainer import train as train_mod
    from trainer.checkpoint import rng_state, set_rng_state
    from trainer.data import AugmentConfig, TrainSet, make_loader

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda b: calls.append(("backend", b)))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert train_mod._distributed("cpu") == (1, 2, 1)
    assert calls == [("backend", "gloo")]
    calls.clear()
    assert train_mod._distributed("cuda") == (1, 2, 1)
    assert calls == [("set_device", 1), ("backend", "nccl")]

    data = TrainSet(write_dataset(tmp_path), "train", AugmentConfig(crop=16))
    assert not make_loader(data, 2, seed=0, pin_memory=False).pin_memory
    assert make_loader(data, 2, seed=0).pin_memory  # the default: when CUDA is available
    monkeypatch.setattr(
        torch.cuda, "get_rng_state_all", lambda: [torch.zeros(4, dtype=torch.uint8)]
    )
    assert "cuda" not in rng_state(cuda=False) and "cuda" in rng_state(cuda=True)
    restored: list[object] = []
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    set_rng_state(rng_state(cuda=True), cuda=False)  # a CPU run resumed from a GPU run's
    assert restored == []
    set_rng_state(rng_state(cuda=True))
    assert len(restored) == 1


def test_a_sigterm_after_the_ranks_finished_keeps_their_result(monkeypatch):
    """A SIGTERM that comes once every rank has returned (during the last wait) left nothing to
    stop, yet it was raised when the wait ended: the finished run's result was dropped and the
    command said "interrupted (SIGTERM)"."""
    import torch.multiprocessing as mp

    from engine import stopping
    from trainer.spawn import train_processes

    for key in ("received", "pending", "deferring"):
        monkeypatch.setattr(stopping._State, key, getattr(stopping._State, key))
    monkeypatch.setattr(stopping._State, "deferring", 0)

    class Ranks:
        processes = [_EndedRank(101, 0), _EndedRank(102, 0)]

        def join(self, timeout=None) -> bool:
            stopping._State.received = stopping._State.pending = True  # as the handler does
            return True

    def start(fn, args, nprocs, join, start_method):
        args[4].put(("result", "finished run"))  # the messages queue: rank 0's result
        return Ranks()

    monkeypatch.setattr(mp, "start_processes", start)
    cfg = TrainConfig(data="unused", device="cpu", processes=2)
    assert train_processes(lambda c: None, cfg, 2) == "finished run"


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_a_rank_killed_is_named_though_its_peers_error_came_first(monkeypatch):
    """A rank the kernel's out-of-memory killer (or ``kill -9``) ends: its peer fails at once
    in gloo on the closed connection and that error could reach the parent first, so the
    command said "error: [.../gloo/transport/tcp/pair.cc:561] Connection closed by peer ..."
    (exit code 2, a bad input), naming neither the rank nor memory, about half the time. The
    rank killed is the error (exit code 71 at the command line)."""
    import torch.multiprocessing as mp

    from engine.parallel import WorkerDied
    from trainer.spawn import train_processes

    class Ranks:
        processes = [_EndedRank(101, -signal.SIGKILL), _EndedRank(102, 1)]

        def join(self, timeout=None) -> bool:
            return True

    def start(fn, args, nprocs, join, start_method):
        closed = "[pair.cc:561] Connection closed by peer [127.0.0.1]:29088. This is typically"
        args[4].put(("error", RuntimeError(closed)))  # rank 1's, through the messages queue
        return Ranks()

    monkeypatch.setattr(mp, "start_processes", start)
    cfg = TrainConfig(data="unused", device="cpu", processes=2)
    with pytest.raises(
        WorkerDied, match=r"^training process 0 \(pid 101\) died: killed by SIGKILL"
    ):
        train_processes(lambda c: None, cfg, 2)


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_sigterm_to_one_rank_is_the_parents_sigterm(monkeypatch, name, code):
    """A scheduler's SIGTERM to one rank (not the parent): every rank stops at the same step,
    checkpointed, and the parent raises their stop; it said `interrupted: ...` and exited with
    130, Ctrl-C's, as it had not been signalled itself. Now `interrupted (SIGTERM)`, 143. A
    SIGHUP there is named as the rank names it (before, the parent said SIGTERM and 143)."""
    import torch.multiprocessing as mp

    from engine import stopping
    from trainer.spawn import train_processes

    for key in ("received", "pending", "deferring", "signal_name"):
        monkeypatch.setattr(stopping._State, key, getattr(stopping._State, key))
    monkeypatch.setattr(stopping._State, "received", False)
    monkeypatch.setattr(stopping._State, "signal_name", "SIGTERM")

    class Ranks:  # stopped by themselves at the step's end, checkpointed
        processes = [_EndedRank(101, 0), _EndedRank(101, 0)]

        def join(self, timeout=None) -> bool:
            return True

    def start(fn, args, nprocs, join, start_method):
        stopping._State.received, stopping._State.signal_name = True, name  # rank 1's process
        args[4].put(("error", stopping.Terminated(3, "run/last.pt")))  # pickled, as a rank's
        stopping._State.received, stopping._State.signal_name = False, "SIGTERM"  # the parent's
        return Ranks()

    monkeypatch.setattr(mp, "start_processes", start)
    cfg = TrainConfig(data="unused", device="cpu", processes=2)
    with pytest.raises(stopping.Terminated) as stop:
        train_processes(lambda c: None, cfg, 2)
    assert stop.value.step == 3
    assert stopping.received()  # the command line's line and exit code: the rank's signal's
    assert stopping.received_signal() == (name, code)


def test_a_failed_call_closes_its_pipes(monkeypatch):
    """Each call left the messages queue's two pipe ends and every rank's sentinel open, 6
    descriptors a call that a long-lived caller (a notebook retrying) kept until its next call."""
    import torch.multiprocessing as mp

    from trainer.spawn import train_processes

    closed = []

    class Rank:
        pid, exitcode = 101, 1

        def is_alive(self) -> bool:
            return False

        def join(self, timeout=None) -> None:
            pass

        def close(self) -> None:
            closed.append(self)

    class Ranks:
        processes = [Rank(), Rank()]

        def join(self, timeout=None) -> bool:
            return True

    queues = []

    def start(fn, args, nprocs, join, start_method):
        queues.append(args[4])
        args[4].put(("error", ValueError("bad input")))
        return Ranks()

    monkeypatch.setattr(mp, "start_processes", start)
    with pytest.raises(ValueError, match="bad input"):
        train_processes(lambda c: None, TrainConfig(data="unused", device="cpu", processes=2), 2)
    assert len(closed) == 2
    assert queues[0]._reader.closed and queues[0]._writer.closed


@pytest.mark.parametrize("resume", [False, True])
def test_a_folder_refused_before_any_rank_starts(synth, tmp_path, monkeypatch, resume):
    """A folder that holds a run (or, resumed, no checkpoint) was refused by the ranks: 10-20 s
    of starting two processes for a line one process gives at once. Refused now before they
    start, with the same line."""
    import torch.multiprocessing as mp

    def start(*args, **kwargs):
        raise AssertionError("ranks started")

    monkeypatch.setattr(mp, "start_processes", start)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(SMALL_RUN_YAML)
    run = tmp_path / "run"
    run.mkdir()
    if not resume:
        (run / "last.pt").write_bytes(b"a run's checkpoint")
    res = _train(synth, run, cfg, "--iters", "2", *(["--resume"] if resume else []))
    assert res.exit_code == 2, res.output
    said = " ".join(res.output.split())
    last = run / "last.pt"
    if resume:
        assert f"{last}: checkpoint not found" in said
    else:
        assert f"{last}: a run already exists here; pass --resume or another --out" in said


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": ""}, "environment variable WORLD_SIZE='': not a whole number"),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "one"},
            "environment variable LOCAL_RANK='one': not",
        ),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "-1"},
            "environment variable LOCAL_RANK='-1': must be",
        ),
        ({"WORLD_SIZE": "-2"}, "environment variable WORLD_SIZE='-2': must be >= 1"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "environment variables RANK=2 and WORLD_SIZE=2: the"),
        # a rank without a world: before, it trained alone as a rank that owns no run
        ({"RANK": "1"}, "environment variables RANK=1 and WORLD_SIZE=1 (unset): the rank must"),
        ({"RANK": "3", "WORLD_SIZE": "1"}, "environment variables RANK=3 and WORLD_SIZE=1: the"),
        # a world without a rank: before, torch's rendezvous ("environment variable RANK
        # expected"), where engine label labelled every image as one process
        (
            {"WORLD_SIZE": "4"},
            "environment variables RANK (unset) and WORLD_SIZE=4: a world of "
            "several processes needs each one's rank; set both (torchrun does) or neither",
        ),
        # read before the group starts, as docs/trainer.md says (before: after init)
        (
            {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_WORLD_SIZE": "x"},
            "environment variable LOCAL_WORLD_SIZE='x'",
        ),
    ],
)
def test_torchrun_variables_set_by_hand_are_one_line_naming_them(monkeypatch, env, message):
    """RANK, WORLD_SIZE and LOCAL_RANK as a user may export them by hand: before, int()'s
    "invalid literal for int() with base 10: ''" (naming no variable), a negative local rank
    passed to set_device, and a rank at the world size waited in init_process_group."""
    import torch.distributed as dist

    from trainer import train as train_mod

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda b: pytest.fail("the group started"))
    with pytest.raises(ValueError) as e:
        train_mod._distributed("cpu")
    assert str(e.value).startswith(message)


@pytest.mark.parametrize(
    ("signal_name", "parent_stopped"),
    [("SIGHUP", True), ("SIGTERM", True), ("SIGTERM", False), ("SIGKILL", True)],
    ids=["SIGHUP", "SIGTERM", "SIGTERM-parent-not-stopped", "SIGKILL-parent-stopped"],
)
def test_ranks_the_hang_up_ends_before_their_handlers_are_the_stop(
    monkeypatch, signal_name, parent_stopped
):
    """``engine train --processes 2`` hung up at its start: the SIGHUP to the process group
    ended a rank not yet handling it (or the SIGTERM the parent then passes on did), and the
    parent said `training process 0 (pid 101) died: killed by SIGHUP; free memory or pass
    fewer --processes` with exit code 71. It is the parent's own stop: `interrupted (SIGHUP)`
    and 129. A rank a signal killed while the parent received none (a user's `kill PID`) still
    died: exit 71, as before; so did one killed by SIGKILL (the OOM killer) while the parent
    was stopped. Signals by name, resolved here: Windows has no SIGHUP nor SIGKILL (naming
    them in the decorator failed the whole module's collection there)."""
    if not hasattr(signal, "SIGHUP") or not hasattr(signal, signal_name):
        pytest.skip(f"no {signal_name} here (Windows)")
    rank_signal = getattr(signal, signal_name)
    import torch.multiprocessing as mp

    from engine import stopping
    from engine.parallel import OOM_KILLER, WorkerDied
    from trainer.spawn import train_processes

    for key in ("received", "pending", "deferring", "signal_name"):
        monkeypatch.setattr(stopping._State, key, getattr(stopping._State, key))
    monkeypatch.setattr(stopping._State, "received", False)

    class Ranks:
        processes = [_EndedRank(101, -rank_signal), _EndedRank(102, -signal.SIGTERM)]

        def join(self, timeout=None) -> bool:
            name = signal.Signals(rank_signal).name
            raise mp.ProcessExitedException(
                f"process 0 terminated with {name}", 0, 101, -rank_signal, name
            )

    def start(fn, args, nprocs, join, start_method):
        if parent_stopped:
            stopping._State.received, stopping._State.signal_name = True, "SIGHUP"  # the parent's
        return Ranks()

    monkeypatch.setattr(mp, "start_processes", start)
    cfg = TrainConfig(data="unused", device="cpu", processes=2)
    if not parent_stopped or signal_name == "SIGKILL":
        with pytest.raises(WorkerDied) as died:
            train_processes(lambda c: None, cfg, 2)
        said = f"training process 0 (pid 101) died: killed by {signal_name}"
        assert str(died.value) == said + ("" if signal_name == "SIGTERM" else OOM_KILLER)
        return
    with pytest.raises(stopping.Terminated) as stop:
        train_processes(lambda c: None, cfg, 2)
    assert (stop.value.step, stop.value.code) == (None, 129)
    assert stopping.received_signal() == ("SIGHUP", 129)


@pytest.mark.parametrize(("workers", "ranks_workers", "threads"), [(-1, 0, 4), (1, 1, 3)])
def test_ranks_get_no_loader_workers_by_default_and_the_cores_left(
    monkeypatch, workers, ranks_workers, threads
):
    """`--workers` left at -1 ("auto": min(4, cores - 1) in one process) is 0 in each rank, whose
    torch threads then share all the cores (docs/trainer.md: one thread each on the 2-core
    default); a count given is each rank's, its cores taken from the threads' share. Nothing
    tested what the ranks were given before the fifty-seventh round's mutation pass."""
    from trainer import spawn

    monkeypatch.setattr(spawn, "cpu_cores", lambda: 8)
    seen = []
    _ranks_sending(monkeypatch, ("result", "finished run"), seen=seen)
    cfg = TrainConfig(data="unused", device="cpu", processes=2, num_workers=workers)
    assert spawn.train_processes(lambda c: None, cfg, 2) == "finished run"
    (ranks,) = seen
    assert (ranks.num_workers, ranks.threads, ranks.processes) == (ranks_workers, threads, 2)


def test_ranks_that_end_without_a_result_are_an_error_or_the_stop_that_came(monkeypatch):
    """Ranks that all exited without an error and without rank 0's result: a RuntimeError, not
    None returned as a finished run. A SIGTERM that came during that last wait is the stop the
    command reports (`interrupted (SIGTERM)`), not forgotten as one a finished run discards."""
    from engine import stopping
    from trainer.spawn import train_processes

    for key in ("received", "pending", "deferring"):
        monkeypatch.setattr(stopping._State, key, getattr(stopping._State, key))
    monkeypatch.setattr(stopping._State, "deferring", 0)
    cfg = TrainConfig(data="unused", device="cpu", processes=2)
    _ranks_sending(monkeypatch)
    with pytest.raises(RuntimeError, match="^training processes ended without a result$"):
        train_processes(lambda c: None, cfg, 2)

    def signalled():
        stopping._State.received = stopping._State.pending = True  # as the handler does

    _ranks_sending(monkeypatch, joined=signalled)
    with pytest.raises(stopping.Terminated):
        train_processes(lambda c: None, cfg, 2)


def test_ranks_stopped_together_get_5_seconds_to_exit_and_others_none(monkeypatch):
    """After a stop (the ranks save their step and exit by themselves) each rank is waited for
    up to 5 s in all before it is killed; after any other end, not at all (a rank left waiting
    on a dead peer's collective is killed at once)."""
    from engine import stopping
    from trainer.spawn import train_processes

    for key in ("received", "pending", "deferring", "signal_name"):
        monkeypatch.setattr(stopping._State, key, getattr(stopping._State, key))

    class TimedRank(_EndedRank):
        def join(self, timeout=None) -> None:
            waits.append(timeout)

    cfg = TrainConfig(data="unused", device="cpu", processes=2)
    for error, longest in ((stopping.Terminated(3, "run/last.pt"), 5.0), (ValueError("bad"), 0.0)):
        waits = []
        ranks = [TimedRank(101, 0), TimedRank(102, 0)]
        _ranks_sending(monkeypatch, ("error", error), ranks=ranks)
        with pytest.raises(type(error)):
            train_processes(lambda c: None, cfg, 2)
        first, second, *closing = waits
        assert longest - 1.0 < first <= longest and second <= first and closing == [None, None]
        if not longest:
            assert first == second == 0.0


def test_a_rank_exits_once_its_parent_is_gone(monkeypatch):
    """The watchdog of each rank (`engine.parallel.exit_with_parent`, started by
    `_rank_main`): looks at once and then once a second, and ends the process with exit code 1
    as soon as its parent is another process AND the one it was started by has ended, not
    before (a forkserver child's parent is the fork server while its starter lives on). Only
    the slow real-process test (`test_ranks_exit_when_their_parent_is_killed`) saw it before."""
    from engine import parallel

    class Exited(Exception):
        pass

    def exit_(code):
        exits.append(code)
        raise Exited

    class Thread:  # the watchdog run here, in this thread
        def __init__(self, target, name, daemon):
            assert daemon  # a daemon: it never keeps the rank's process alive
            self.target = target

        def start(self) -> None:
            with pytest.raises(Exited):
                self.target()

    exits, naps, asked = [], [], []
    parents = iter([42, 7, 7, 1])  # its parent, then a fork server's pid, then init's
    gone = iter([False, False, True])

    def gone_(pid):
        asked.append(pid)
        return next(gone)

    monkeypatch.setattr(parallel.os, "getppid", lambda: next(parents))
    monkeypatch.setattr(parallel.os, "_exit", exit_)
    monkeypatch.setattr(parallel.time, "sleep", naps.append)
    monkeypatch.setattr(parallel.threading, "Thread", Thread)
    monkeypatch.setattr(parallel, "process_gone", gone_)
    parallel.exit_with_parent(42)
    assert exits == [1] and naps == [1.0, 1.0, 1.0] and asked == [42, 42, 42]


def test_the_rendezvous_port_is_a_free_one_the_kernel_picked():
    import socket

    from trainer.spawn import _free_port

    port = _free_port()
    assert type(port) is int and 1024 <= port <= 65535  # not a privileged port, nor 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))  # free again once the probe closed
