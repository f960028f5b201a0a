"""One rank of a DDP run stops (an error only it meets, a SIGTERM only it gets): what the other
ranks say and do, and the layout the run's records keep (trainer/ranks.py). In one process, with
torch.distributed's calls stood in for; tests/trainer/test_spawn.py and test_multinode.py run
real gloo ranks."""

from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.distributed as dist
from typer.testing import CliRunner

from cli import app
from engine import stopping
from tests.trainer._train_stub import StubModel, write_dataset
from trainer import ranks
from trainer.train import train

GLOO = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed "
    "by peer [127.0.0.1]:12207. This is typically caused by a remote worker crashing. GLHF!"
)


class Store:
    """The process group's key-value store (torchrun's agent holds it, or rank 0)."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    def set(self, key: str, value: bytes) -> None:
        self.keys[key] = value

    def check(self, keys: list[str]) -> bool:
        return all(k in self.keys for k in keys)

    def get(self, key: str) -> bytes:
        return self.keys[key]


@pytest.fixture
def group(monkeypatch):
    """A two-rank group, this process rank 0 (``group["rank"]`` changes it); its store."""
    store, me = Store(), {"rank": 0}
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(dist, "get_rank", lambda group=None: me["rank"])
    monkeypatch.setattr(dist.distributed_c10d, "_get_default_store", lambda: store)
    for key in ("received", "pending", "deferring", "signal_name"):
        monkeypatch.setattr(stopping._State, key, getattr(stopping._State, key))
    monkeypatch.setattr(stopping._State, "received", False)
    monkeypatch.setattr(stopping._State, "signal_name", "SIGTERM")
    return me


def _on_rank_1(group, error: BaseException) -> None:
    """Rank 1 stops with ``error``: what it leaves in the store before its process exits."""
    group["rank"] = 1
    ranks.tell_others(error)
    group["rank"] = 0


def _rank_0(synth, tmp_path, monkeypatch):
    """``engine train`` as rank 0 of 2 under torchrun, its collective ended by rank 1's stop."""
    import trainer.train.run

    def collective_ended(*args, **kwargs):
        raise dist.DistBackendError(GLOO)

    monkeypatch.setattr(trainer.train.run, "_train", collective_ended)
    for key, value in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", LOCAL_WORLD_SIZE="2").items():
        monkeypatch.setenv(key, value)
    args = ["train", "--data", str(synth), "--out", str(tmp_path / "run"), "--no-progress"]
    return CliRunner().invoke(app, [*args, "--device", "cpu", "--workers", "0"])


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), splits=("train", "val"))


def test_rank_0_names_the_rank_that_stopped_and_its_error(synth, tmp_path, monkeypatch, group):
    """An image only rank 1 reads: rank 0's terminal (the one watched; on several machines the
    only one) said gloo's `Connection closed by peer ... GLHF!`, naming neither the rank nor
    the image; now rank 1's own line, led by its rank and machine, and its exit code."""
    _on_rank_1(group, ValueError("images/train/im7.png: image file is truncated"))
    res = _rank_0(synth, tmp_path, monkeypatch)
    said = " ".join(res.output.split())
    host = socket.gethostname()
    assert said == f"error: rank 1 of 2 on {host}: images/train/im7.png: image file is truncated"
    assert res.exit_code == 2


def test_a_rank_out_of_memory_is_an_out_of_memory_exit_on_rank_0(
    synth, tmp_path, monkeypatch, group
):
    """A GPU of one rank out of memory: rank 0 exits as a single process out of memory does
    (71, with its advice), not with 2 and gloo's line."""
    monkeypatch.setenv("GROUP_RANK", "1")
    _on_rank_1(group, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    monkeypatch.setenv("GROUP_RANK", "0")
    res = _rank_0(synth, tmp_path, monkeypatch)
    said = " ".join(res.output.split())
    host = socket.gethostname()
    assert said.startswith(
        f"error: rank 1 of 2 on node 1 ({host}): out of memory: CUDA out of memory. Tried"
    )
    assert res.exit_code == 71


def test_a_rank_killed_without_a_word_is_said_so(group, monkeypatch):
    """SIGKILL, or the kernel's OOM killer: nothing in the store; rank 0 says another rank
    stopped and where to look, its type (and exit code) gloo's."""
    from engine.cli.common import error_text

    error = ranks.peers_error(dist.DistBackendError(GLOO), wait=0.0)
    assert isinstance(error, dist.DistBackendError) and error.args == (GLOO,)
    said = error_text(error).plain
    assert said.startswith("error: rank 0 of 2: another rank stopped without a word (killed? ")
    assert "its own output or its machine's log says why: [" in said
    # rank 0's own errors, and errors of one process, are raised as they are
    own = ValueError("x")
    assert ranks.peers_error(own) is own and not hasattr(own, "rank_lead")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    assert ranks.peers_error(dist.DistBackendError(GLOO)).args == (GLOO,)


def test_a_collective_a_peer_ended_is_told_from_a_ranks_own_error(group, monkeypatch):
    """gloo ends a collective whose peer is gone with a DistBackendError, or on its older paths
    with a RuntimeError naming gloo, `by peer` or a broken pipe: each is another rank's stop,
    whose error rank 0 raises in its place. Any other error is the rank's own, told to the
    others, except in a group of one (nobody to tell). Only DistBackendError was tested before
    the fifty-sixth round's mutation pass."""
    assert ranks.collective_failed(dist.DistBackendError(GLOO))
    for text in (GLOO, "[gloo] timed out", "Connection reset by peer", "Broken pipe"):
        assert ranks.collective_failed(RuntimeError(text)), text
    assert not ranks.collective_failed(RuntimeError("CUDA error: device-side assert triggered"))
    assert not ranks.collective_failed(ValueError("images/by peer.png: image file is truncated"))
    _on_rank_1(group, ValueError("images/train/im7.png: image file is truncated"))
    error = ranks.peers_error(RuntimeError(GLOO), wait=0.0)
    assert str(error) == "images/train/im7.png: image file is truncated"
    assert error.rank_lead == f"rank 1 of 2 on {socket.gethostname()}: "
    store = dist.distributed_c10d._get_default_store()
    store.keys.clear()
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 1)
    ranks.tell_others(ValueError("x"))
    assert store.keys == {}


def test_a_ranks_error_that_reaches_the_store_during_the_wait_is_raised(group, monkeypatch):
    """The stopped rank writes its error before its process exits, which may be after the
    collective of the others ended: rank 0 waits up to ``wait`` seconds for it, rather than
    saying at once that a rank stopped without a word."""
    store = dist.distributed_c10d._get_default_store()
    check, calls = store.check, []

    def written_late(keys):
        calls.append(1)
        if len(calls) == 3:  # rank 1 is still writing its error at the first two looks
            _on_rank_1(group, ValueError("images/train/im7.png: image file is truncated"))
        return check(keys)

    monkeypatch.setattr(store, "check", written_late)
    error = ranks.peers_error(dist.DistBackendError(GLOO), wait=30.0)
    assert str(error) == "images/train/im7.png: image file is truncated"
    assert error.rank_lead == f"rank 1 of 2 on {socket.gethostname()}: "


def test_torchruns_sigterm_does_not_cut_short_the_wait_for_a_ranks_error(group, monkeypatch):
    """Torchrun sends SIGTERM to the ranks left once one exits: one during rank 0's wait for the
    stopped rank's error raised Terminated there, and the line said `interrupted (SIGTERM)`."""
    import os
    import signal

    before = signal.signal(signal.SIGTERM, stopping._on_sigterm)  # as the command line's
    store = dist.distributed_c10d._get_default_store()
    check = store.check

    def torchrun_stops_the_rest(keys):
        os.kill(os.getpid(), signal.SIGTERM)
        return check(keys)

    monkeypatch.setattr(store, "check", torchrun_stops_the_rest)
    try:
        error = ranks.peers_error(dist.DistBackendError(GLOO), wait=0.2)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert "another rank stopped without a word" in getattr(error, "rank_lead", "")
    assert stopping.received() and not stopping.requested()


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_sigterm_to_one_rank_during_a_validation_stops_the_others_as_sigterm(group, name, code):
    """A SIGTERM that cuts rank 1's validation short: rank 0, left in the gather, stops as
    SIGTERM (143, `--resume` from the last checkpoint), not with gloo's line and 2. A SIGHUP
    there is named as rank 1 names it: before, rank 0 said SIGTERM and 143 where it said SIGHUP
    and 129 (the error in the store carried no signal)."""
    stopping._State.received, stopping._State.signal_name = True, name  # rank 1's process
    _on_rank_1(group, stopping.Terminated())
    stopping._State.received, stopping._State.signal_name = False, "SIGTERM"  # rank 0's
    error = ranks.peers_error(dist.DistBackendError(GLOO), wait=0.0)
    assert isinstance(error, stopping.Terminated) and error.step is None
    assert stopping.received() and stopping.received_signal() == (name, code)


@pytest.mark.parametrize(("code", "said"), [(143, ("SIGTERM", 143)), (129, ("SIGHUP", 129))])
def test_a_sigterm_that_reached_another_rank_is_this_ranks_sigterm(
    tmp_path, monkeypatch, code, said
):
    """Under torchrun a scheduler may signal one rank only. The step's all-reduce stops every
    rank at that step, checkpointed; the ranks it did not reach said `interrupted: ...` and
    exited with 130, Ctrl-C's, where the signalled one said `interrupted (SIGTERM)` (143). A
    SIGHUP there (its terminal gone) is named as that rank names it: before the fifty-second
    round the others said `interrupted (SIGTERM)` and 143 where it said SIGHUP and 129."""
    import trainer.train.loop

    for key in ("received", "pending", "deferring", "signal_name"):
        monkeypatch.setattr(stopping._State, key, getattr(stopping._State, key))
    checks = trainer.train._step_checks
    steps = []

    def peer_stops_at_step_2(value, stop, world):
        steps.append(1)
        finite, _ = checks(value, stop, world)
        return finite, code if len(steps) == 2 else 0  # the all-reduce's: another rank's stop

    monkeypatch.setattr(trainer.train.loop, "_step_checks", peer_stops_at_step_2)
    root = write_dataset(tmp_path / "data")
    cfg = trainer.train.TrainConfig(
        data=str(root), out=str(tmp_path / "run"), device="cpu", iters=6, batch_size=2,
        val_split="", num_workers=0, progress=False, checkpoint_every=1000,
        augment={"crop": 24, "short_side_range": [24, 40]},
    )  # fmt: skip
    torch.manual_seed(0)
    with pytest.raises(stopping.Terminated) as stop:
        train(cfg, model=StubModel(7))
    assert stop.value.step == 2
    assert stopping.received() and stopping.received_signal() == said


def test_the_stop_a_rank_passes_on_is_its_signal_s_code(monkeypatch):
    """What a rank puts into the step's all-reduce: 0 with no stop waiting, else its exit code;
    a rank that got a signal itself keeps its name whatever another passes on."""
    import trainer.train

    for key in ("received", "pending", "signal_name"):
        monkeypatch.setattr(stopping._State, key, getattr(stopping._State, key))
    stopping._State.received, stopping._State.pending = False, False
    assert stopping.requested_code() == 0
    stopping._State.received, stopping._State.pending = True, True
    stopping._State.signal_name = "SIGHUP"
    assert stopping.requested_code() == 129
    value = torch.tensor([1.0, 2.0])
    assert trainer.train._step_checks(value, 129, 1) == (True, 129)
    assert trainer.train._step_checks(value, 0, 1) == (True, 0)

    def all_reduce(tensor, op):  # the other rank's: finite, a SIGHUP waits there
        peer = torch.tensor([1.0, -129.0] if op == dist.ReduceOp.MIN else [129.0])
        tensor.copy_(torch.minimum(tensor, peer) if op == dist.ReduceOp.MIN else peer.max(tensor))

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    assert trainer.train._step_checks(value, 0, 2) == (True, 129)
    assert trainer.train._step_checks(value, 143, 2) == (True, 143)  # a SIGTERM's over it
    stopping._State.pending = False
    assert trainer.train._agree_to_stop(2, torch.device("cpu")) == 129
    stopping.passed_on(143)  # received already: its own SIGHUP stays
    assert stopping.received_signal() == ("SIGHUP", 129)
    stopping._State.received, stopping._State.signal_name = False, "SIGTERM"
    stopping.passed_on(129)
    assert stopping.received_signal() == ("SIGHUP", 129)


def test_the_layout_is_recorded(group, monkeypatch):
    """environment.json recorded rank 0's host only: not the world size, the machines or their
    ranks, so a result could not be reproduced on the same layout."""

    def gather(out, mine):
        out[:] = [("0", "gpu-a"), ("0", "gpu-a"), ("1", "gpu-b"), ("1", "gpu-b")]

    monkeypatch.setattr(dist, "all_gather_object", gather)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.delenv("MASS_ENGINE_RUN_LOCKED_BY_PARENT", raising=False)
    assert ranks.layout(4) == {
        "launcher": "torchrun",
        "backend": "nccl",
        "world_size": 4,
        "nodes": 2,
        "local_world_size": 2,
        "hosts": [
            {"node": 0, "host": "gpu-a", "ranks": [0, 1]},
            {"node": 1, "host": "gpu-b", "ranks": [2, 3]},
        ],
    }
    assert ranks.layout(1) is None
    monkeypatch.delenv("LOCAL_WORLD_SIZE")  # a launcher that does not say: unknown, not 1
    assert ranks.layout(4)["local_world_size"] is None


def test_one_process_records_no_layout(tmp_path):
    """A single-process run's environment.json keeps its fields, and gets no new one."""
    root = write_dataset(tmp_path / "data")
    cfg_kw = dict(
        data=str(root), out=str(tmp_path / "run"), device="cpu", iters=1, batch_size=2,
        val_split="", num_workers=0, progress=False,
        augment={"crop": 24, "short_side_range": [24, 40]},
    )  # fmt: skip
    from trainer.config import TrainConfig

    torch.manual_seed(0)
    train(TrainConfig(**cfg_kw), model=StubModel(7))
    assert "distributed" not in json.loads((tmp_path / "run" / "environment.json").read_text())


# Loaded by every process of a torchrun launch (PYTHONPATH): rank $FAIL_RANK fails its second
# step, with an error ($FAIL_HOW=error) or a SIGTERM to itself alone (sigterm).
INJECT = """
import os
if os.environ.get("RANK") == os.environ.get("FAIL_RANK"):
    import signal
    import trainer.train.loop as t
    step, calls = t._forward_backward, []
    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2 and os.environ["FAIL_HOW"] == "error":
            raise ValueError("images/train/im1.png: injected on one rank")
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(*args, **kwargs)
    t._forward_backward = failing
"""


def _torchrun(tmp_path, run, *extra: str, **env: str):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.trainer._train_stub import SMALL_RUN_YAML

    (tmp_path / "inject").mkdir(exist_ok=True)
    (tmp_path / "inject" / "sitecustomize.py").write_text(INJECT)
    (tmp_path / "train.yaml").write_text(SMALL_RUN_YAML)
    data = tmp_path / "data"
    if not data.exists():
        write_dataset(data, n=4, size=(128, 96), splits=("train",))
    repo = str(Path(__file__).resolve().parents[2])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "cli", "train", "--data", str(data), "--preset", "tiny", "--out", str(run)]
    cmd += ["--config", str(tmp_path / "train.yaml"), "--batch-size", "4", "--device", "cpu"]
    cmd += ["--workers", "0", "--val-split", "none", "--no-progress", *extra]
    path = os.pathsep.join([str(tmp_path / "inject"), repo, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path, **env)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=repo)


@pytest.mark.slow
def test_torchrun_an_error_on_one_rank_is_named_on_rank_0(tmp_path):
    """Two torchrun ranks, an error on rank 1 only: rank 0 says it, naming rank 1; before,
    gloo's `Connection closed by peer ... GLHF!`."""
    res = _torchrun(tmp_path, tmp_path / "run", "--iters", "4", FAIL_RANK="1", FAIL_HOW="error")
    assert res.returncode != 0
    lines = [x for x in res.stderr.splitlines() if x.startswith("error: ")]
    host = socket.gethostname()
    assert (
        f"error: rank 1 of 2 on node 0 ({host}): images/train/im1.png: injected on one rank"
        in lines
    )
    assert "Connection closed by peer" not in res.stderr


@pytest.mark.slow
def test_torchrun_a_sigterm_to_one_rank_stops_every_rank_as_sigterm_resumable(tmp_path):
    """A scheduler's SIGTERM to rank 1 alone: both ranks stop at the same step, checkpointed,
    each says `interrupted (SIGTERM)` and exits with 143 (rank 0 said `interrupted:` and exited
    with 130, Ctrl-C's); the resume goes on from that step."""
    import re

    run = tmp_path / "run"
    res = _torchrun(tmp_path, run, "--iters", "4", FAIL_RANK="1", FAIL_HOW="sigterm")
    said = f"interrupted (SIGTERM): add --resume to continue from {run}/last.pt (step 2)"
    assert res.stderr.count(said) == 2, res.stderr[-3000:]
    assert "interrupted: " not in res.stderr
    # every rank ends by the SIGTERM: 143, or -15 where torchrun's SIGTERM to the ranks left
    # (sent once one exits) reaches one in interpreter shutdown, when CPython has restored the
    # default handler (one such run in the fiftieth round's slow suite); never Ctrl-C's 130
    codes = set(re.findall(r"exitcode\s*: (-?\d+)", res.stderr))
    assert "143" in codes and codes <= {"143", "-15"}, codes
    res = _torchrun(tmp_path, run, "--iters", "3", "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3]
    resumed = json.loads((run / "resumes.jsonl").read_text().splitlines()[-1])
    assert resumed["environment"]["distributed"]["launcher"] == "torchrun"


def test_a_peers_error_keeps_what_the_command_line_reads_in_it():
    """Rank 0 raises another rank's error led by the rank and machine: the lead is kept beside
    the message, not written into it, so a killed loader worker or a full /dev/shm on that rank
    is still told from its words (a rewritten message made it a traceback, exit 1)."""
    from engine.cli.common import process_limit

    killed = RuntimeError("DataLoader worker (pid 12) is killed by signal: Killed. ")
    named = ranks._named(killed, "rank 1 of 2 on node 1 (gpu-b): ")
    assert named.args == ("DataLoader worker (pid 12) is killed by signal: Killed. ",)
    assert process_limit(named, "add --resume").plain == (
        "error: rank 1 of 2 on node 1 (gpu-b): DataLoader worker (pid 12) is killed by signal: "
        "Killed (most likely the kernel's out-of-memory killer; dmesg names it); free memory or "
        "pass fewer --workers, then add --resume"
    )


class _TwoArguments(Exception):
    """An exception whose ``__init__`` takes its own arguments: pickled, it cannot be unpickled
    (``args`` holds the one message, not the two)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")


def test_a_ranks_error_that_pickles_but_does_not_unpickle_is_said_as_its_text(group):
    """Rank 1's error of a library's own exception class: rank 0 could not unpickle it and said
    `another rank stopped without a word`; now its type and text, led by rank 1."""
    _on_rank_1(group, _TwoArguments("images/train/im7.png", "image file is truncated"))
    error = ranks.peers_error(dist.DistBackendError(GLOO), wait=0.0)
    assert isinstance(error, RuntimeError)
    assert str(error) == "_TwoArguments: images/train/im7.png: image file is truncated"
    assert error.rank_lead == f"rank 1 of 2 on {socket.gethostname()}: "
