"""engine train under torchrun across machines: each machine has its own local ranks
(LOCAL_RANK, LOCAL_WORLD_SIZE), its own /dev/shm, and maybe its own disk for --out. Two gloo
ranks on this machine stand in for two machines of one rank each (GROUP_RANK 0 and 1)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile

import pytest


def _rank(rank: int, store: str, env: dict[str, str], job, args, results) -> None:
    """One rank of a two-rank gloo group: ``job(rank, *args)``'s value, or its error, put in
    ``results`` as ``(rank, ok, value)``."""
    import torch.distributed as dist

    os.environ.update({k: v.format(rank=rank) for k, v in env.items()})
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        results.put((rank, True, job(rank, *args)))
    except Exception as e:  # noqa: BLE001 - the test compares every rank's error
        results.put((rank, False, f"{type(e).__name__}: {e}"))
    finally:
        dist.destroy_process_group()


def _two_ranks(tmp_path, env: dict[str, str], job, *args) -> dict[int, tuple[bool, object]]:
    """``job`` on two ranks (``{rank}`` in ``env``'s values is each one's rank)."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    store = tempfile.mkdtemp(dir=tmp_path) + "/store"  # a fresh one each call: gloo's FileStore
    procs = [ctx.Process(target=_rank, args=(r, store, env, job, args, results)) for r in (0, 1)]
    for p in procs:
        p.start()
    got = dict((r, (ok, v)) for r, ok, v in (results.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(timeout=60)
    return got


# two machines of one rank each, as torchrun --nnodes 2 --nproc-per-node 1 sets them
TWO_NODES = {"WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "{rank}"}


def _check_folders(rank: int, cases: list[tuple[str, bool]]) -> list[str | None]:
    """check_run_folder_shared on each ``(root, resume)``, in one group: each error, or None."""
    from pathlib import Path

    from trainer.train import check_run_folder_shared

    said = []
    for root, resume in cases:
        try:
            check_run_folder_shared(Path(root) / f"node{rank}" / "last.pt", resume, 2)
            said.append(None)
        except FileExistsError as e:
            said.append(f"FileExistsError: {e}")
        except FileNotFoundError as e:
            said.append(f"FileNotFoundError: {e}")
    return said


def _runs(tmp_path, name: str, **sizes: int) -> str:
    """A folder holding ``node<i>/last.pt`` of each size given: each machine's own disk."""
    for node, size in sizes.items():
        (tmp_path / name / node).mkdir(parents=True)
        (tmp_path / name / node / "last.pt").write_bytes(b"x" * size)
    return str(tmp_path / name)


def test_a_run_folder_on_each_machines_own_disk(tmp_path):
    """--out on each machine's own disk. A resume where node 1 has no checkpoint is one line on
    every rank (before, node 1 said `checkpoint not found` and rank 0 `Connection closed by
    peer`, gloo's); a copy of the run folder on each machine resumes, another checkpoint there
    does not. A fresh run follows rank 0's folder, the only one written: a stale last.pt on
    another machine's disk does not stop it, one in rank 0's stops every rank alike."""
    only0 = _runs(tmp_path, "only0", node0=10)
    copied = _runs(tmp_path, "copied", node0=10, node1=10)
    other = _runs(tmp_path, "other", node0=10, node1=12)
    stale = _runs(tmp_path, "stale", node1=3)
    cases = [(only0, True), (copied, True), (other, True), (stale, False), (only0, False)]
    got = _two_ranks(tmp_path, TWO_NODES, _check_folders, cases)
    host = socket.gethostname()
    for rank in (0, 1):
        ok, (missing, same, changed, fresh, exists) = got[rank]
        assert ok
        last = f"{only0}/node{rank}/last.pt"
        assert missing.startswith(f"FileNotFoundError: {last}: rank 1 on node 1 ({host}) ")
        assert "does not see it" in missing
        assert "--out must be on a filesystem they all share" in missing
        assert same is None
        assert "rank 1 on node 1" in changed
        assert "sees another one (12 bytes, rank 0's 10)" in changed
        assert fresh is None
        assert (
            exists
            == f"FileExistsError: {last}: a run already exists here; pass --resume or another --out"
        )


def _shm(rank: int, short_on: str) -> list[str]:
    import trainer.train as train

    def shortfall(batch, crop, workers, processes=1):
        short = os.environ.get("GROUP_RANK", "0") == short_on
        return f"/dev/shm short ({processes} on this machine)" if short else None

    train.shm_shortfall = shortfall
    return train.node_shm_shortfalls(2, 256, 1, 2)


def test_each_machines_dev_shm_is_checked_and_rank_0_warns(tmp_path):
    """Before, rank 0 checked its own machine's /dev/shm only: a second machine with Docker's
    64 MB failed at its first batch without a warning."""
    got = _two_ranks(tmp_path, TWO_NODES, _shm, "1")
    line = f"node 1 ({socket.gethostname()}): /dev/shm short (1 on this machine)"
    assert got == {0: (True, [line]), 1: (True, [line])}
    # one machine (--processes, torchrun --nnodes 1): its local rank 0 only, worded as before
    one = {"WORLD_SIZE": "2", "LOCAL_RANK": "{rank}", "LOCAL_WORLD_SIZE": "2"}
    got = _two_ranks(tmp_path, one, _shm, "0")
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
