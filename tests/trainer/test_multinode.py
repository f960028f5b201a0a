"""engine train under torchrun across machines: each machine has its own local ranks
(LOCAL_RANK, LOCAL_WORLD_SIZE), its own /dev/shm, and maybe its own disk for --out. Two
ranks, one after the other in this process with ``all_gather_object`` standing in for gloo's,
are two machines of one rank each (GROUP_RANK 0 and 1); the slow test runs two torchruns."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


class _Sent(Exception):
    """What a rank passed to ``all_gather_object``: the first pass stops there."""


def _two_ranks(monkeypatch, envs: list[dict[str, str]], job) -> dict[int, tuple[bool, object]]:
    """``job(rank)`` for each rank in turn, in this process, under ``envs[rank]``: a first pass
    records what each rank sends to ``all_gather_object`` (stopped there), the second gathers
    every rank's, as the collective would; ``(ok, value or error)`` each. One collective a job."""
    import torch.distributed as dist

    sent: dict[int, object] = {}

    def as_rank(rank: int, gather):
        with monkeypatch.context() as m:
            for k, v in envs[rank].items():
                m.setenv(k, v)
            m.setattr(dist, "all_gather_object", gather)
            return job(rank)

    def send(out, obj):
        raise _Sent(obj)

    for rank in range(len(envs)):
        with pytest.raises(_Sent) as stopped:
            as_rank(rank, send)
        sent[rank] = stopped.value.args[0]

    got = {}
    for rank in range(len(envs)):

        def gather(out, obj, rank=rank):
            assert obj == sent[rank] and len(out) == len(envs)
            out[:] = [sent[r] for r in range(len(envs))]

        try:
            got[rank] = (True, as_rank(rank, gather))
        except Exception as e:  # noqa: BLE001 - the test compares every rank's error
            got[rank] = (False, f"{type(e).__name__}: {e}")
    return got


# two machines of one rank each, as torchrun --nnodes 2 --nproc-per-node 1 sets them
TWO_NODES = [
    {"WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": str(rank)}
    for rank in (0, 1)
]


def _check_folders(monkeypatch, root: str, resume: bool) -> dict[int, str | None]:
    """check_run_folder_shared on each machine's ``root/node<rank>/last.pt``: each rank's
    error, or None."""
    from pathlib import Path

    from trainer.train import check_run_folder_shared

    def job(rank: int) -> None:
        check_run_folder_shared(Path(root) / f"node{rank}" / "last.pt", resume, 2)

    got = _two_ranks(monkeypatch, TWO_NODES, job)
    return {rank: None if ok else said for rank, (ok, said) in got.items()}  # type: ignore[misc]


def _runs(tmp_path, name: str, **sizes: int) -> str:
    """A folder holding ``node<i>/last.pt`` of each size given: each machine's own disk."""
    for node, size in sizes.items():
        (tmp_path / name / node).mkdir(parents=True)
        (tmp_path / name / node / "last.pt").write_bytes(b"x" * size)
    return str(tmp_path / name)


def test_a_run_folder_on_each_machines_own_disk(tmp_path, monkeypatch):
    """--out on each machine's own disk. A resume where node 1 has no checkpoint is one line on
    every rank (before, node 1 said `checkpoint not found` and rank 0 `Connection closed by
    peer`, gloo's); a copy of the run folder on each machine resumes, another checkpoint there
    does not. A fresh run follows rank 0's folder, the only one written: a stale last.pt on
    another machine's disk does not stop it, one in rank 0's stops every rank alike."""
    only0 = _runs(tmp_path, "only0", node0=10)
    copied = _runs(tmp_path, "copied", node0=10, node1=10)
    other = _runs(tmp_path, "other", node0=10, node1=12)
    stale = _runs(tmp_path, "stale", node1=3)
    # an older checkpoint of the same run on node 1: the same size, other bytes (another step)
    (tmp_path / "older" / "node0").mkdir(parents=True)
    (tmp_path / "older" / "node1").mkdir(parents=True)
    (tmp_path / "older" / "node0" / "last.pt").write_bytes(b"step 1000")
    (tmp_path / "older" / "node1" / "last.pt").write_bytes(b"step 0500")
    older = _check_folders(monkeypatch, str(tmp_path / "older"), True)
    missing = _check_folders(monkeypatch, only0, True)
    same = _check_folders(monkeypatch, copied, True)
    changed = _check_folders(monkeypatch, other, True)
    fresh = _check_folders(monkeypatch, stale, False)
    exists = _check_folders(monkeypatch, only0, False)
    host = socket.gethostname()
    for rank in (0, 1):
        last = f"{only0}/node{rank}/last.pt"
        assert missing[rank].startswith(f"FileNotFoundError: {last}: rank 1 on node 1 ({host}) ")
        assert "does not see it" in missing[rank]
        assert "--out must be on a filesystem they all share" in missing[rank]
        assert same[rank] is None
        assert "rank 1 on node 1" in changed[rank]
        assert "sees another one (12 bytes, rank 0's 10)" in changed[rank]
        assert "other bytes of the same size: another step?" in older[rank]
        assert fresh[rank] is None
        assert (
            exists[rank]
            == f"FileExistsError: {last}: a run already exists here; pass --resume or another --out"
        )


def _shm(monkeypatch, envs: list[dict[str, str]], short_on: str):
    import trainer.train.distributed as train

    def shortfall(batch, crop, workers, processes=1):
        short = os.environ.get("GROUP_RANK", "0") == short_on
        return f"/dev/shm short ({processes} on this machine)" if short else None

    monkeypatch.setattr(train, "shm_shortfall", shortfall)
    return _two_ranks(
        monkeypatch,
        envs,
        lambda rank: train.node_shm_shortfalls(2, 256, 1, 2, int(os.environ["LOCAL_RANK"])),
    )


def test_each_machines_dev_shm_is_checked_and_rank_0_warns(monkeypatch):
    """Before, rank 0 checked its own machine's /dev/shm only: a second machine with Docker's
    64 MB failed at its first batch without a warning."""
    got = _shm(monkeypatch, TWO_NODES, "1")
    line = f"node 1 ({socket.gethostname()}): /dev/shm short (1 on this machine)"
    assert got == {0: (True, [line]), 1: (True, [line])}
    # one machine (--processes, torchrun --nnodes 1): its local rank 0 only, worded as before
    one = [{"WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2"} for rank in (0, 1)]
    got = _shm(monkeypatch, one, "0")
    assert got[0] == (True, ["/dev/shm short (2 on this machine)"])


@pytest.mark.slow
def test_torchrun_on_two_nodes_with_node_local_run_folders(tmp_path):
    """Two `torchrun --nnodes 2` launches side by side, each --out on its own 'disk': node 0's
    rank writes the whole run, node 1's nothing; the resume is refused in one line on both."""
    from engine.synth import SynthConfig, generate
    from tests.trainer._train_stub import SMALL_RUN_YAML

    synth = generate(
        SynthConfig(out=tmp_path / "synth", train=4, val=2, test=2, size=(128, 96), seed=0),
        progress=False,
    )
    cfg = tmp_path / "small.yaml"
    cfg.write_text(SMALL_RUN_YAML)

    def launch(port: int, *extra: str) -> list[subprocess.CompletedProcess]:
        procs = []
        for node in (0, 1):
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"]
            cmd += ["--node-rank", str(node), "--nproc-per-node", "1", "--master-addr"]
            cmd += ["127.0.0.1", "--master-port", str(port), "-m", "cli", "train"]
            cmd += ["--data", str(synth), "--preset", "tiny", "--config", str(cfg)]
            cmd += ["--out", str(tmp_path / f"disk{node}" / "run"), "--batch-size", "4"]
            cmd += [
                "--device",
                "cpu",
                "--workers",
                "0",
                "--val-every",
                "0",
                "--no-progress",
                *extra,
            ]
            env = dict(os.environ, OMP_NUM_THREADS="1")
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, env=env))  # fmt: skip
        return [subprocess.CompletedProcess(p.args, p.wait(600), *p.communicate()) for p in procs]

    first = launch(29541, "--iters", "2")
    assert [r.returncode for r in first] == [0, 0], first[0].stderr[-2000:]
    assert (tmp_path / "disk0" / "run" / "last.pt").exists()
    assert not (tmp_path / "disk1").exists()
    again = launch(29542, "--iters", "3", "--resume")
    for res in again:
        assert res.returncode != 0
        (line,) = [x for x in res.stderr.splitlines() if x.startswith("error: ")]
        assert "rank 1 on node 1" in line and "does not see it" in line, line
    assert not (tmp_path / "disk1").exists()


def test_a_finished_run_is_finished_on_every_rank_as_rank_0_finds_it(tmp_path, monkeypatch):
    """A finished run resumed from a copy of its folder on each machine: node 1's copy predates
    the last val line that rank 0 alone wrote. Each rank read its own log: rank 0 returned
    `finished` while rank 1 went on to train, waiting in a collective on a rank that was gone."""
    import json
    from pathlib import Path

    from trainer.config import TrainConfig
    from trainer.train import _finished

    for node, lines in (("node0", [{"step": 5, "loss": 1.0}, {"step": 5, "val": {}}]),
                        ("node1", [{"step": 5, "loss": 1.0}])):  # fmt: skip
        (tmp_path / node).mkdir()
        text = "".join(json.dumps(line) + "\n" for line in lines)
        (tmp_path / node / "metrics.jsonl").write_text(text)
    ckpt = {"step": 5, "scheduler": {"iters": 5}}
    cfg = TrainConfig(iters=5)

    def job(rank: int) -> bool:
        return _finished(ckpt, cfg, Path(tmp_path / f"node{rank}"), 2, rank)

    assert _two_ranks(monkeypatch, TWO_NODES, job) == {0: (True, True), 1: (True, True)}
