"""engine.runinfo: what a run directory records about the machine."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from engine import runinfo
from engine.runinfo import config_hash, cpu_model, environment


def test_environment_records_the_cpu_and_torch_kernel_set():
    env = environment()
    json.dumps(env)  # stored as JSON in every run directory
    assert env["cpu_count"] >= 1
    assert env["cpu"] is None or (isinstance(env["cpu"], str) and env["cpu"])
    assert env["cpu"] == cpu_model()
    # a CPU run's digits depend on the kernels torch dispatches to (docs/trainer.md)
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["torch_threads"] == torch.get_num_threads()


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_environment_records_the_variables_that_change_kernels_threads_or_allocation(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")  # other kernels, other digits
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")  # any glibc malloc tunable
    monkeypatch.setenv("MY_UNRELATED_SECRET", "x")
    env = environment()["env"]
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["MALLOC_ARENA_MAX"] == "2"
    assert "MY_UNRELATED_SECRET" not in env and "PATH" not in env


def test_environment_records_where_relative_paths_start(tmp_path, monkeypatch):
    """Records keep paths as typed (evaluate's ``pred: runs/pred``, pick's ``run``); without the
    working directory they named no folder once read from elsewhere."""
    monkeypatch.chdir(tmp_path)
    assert environment()["cwd"] == str(tmp_path)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_an_installed_copy_inside_another_git_repository_records_no_commit(tmp_path: Path):
    """``pip install`` (not ``-e``) into a venv inside the user's own git repository: site-packages
    is in that repository's tree, untracked; before, its commit (``-dirty``) was recorded."""
    repo = tmp_path / "userproject"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=u@example.com", "-c", "user.name=u"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "notes.txt").write_text("a\n")
    subprocess.run([*git, "add", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the user's project"], check=True)
    (repo / "notes.txt").write_text("b\n")  # the user's tree has changes
    site = repo / ".venv" / "lib" / "site-packages"
    (site / "engine").mkdir(parents=True)
    copy = site / "engine" / "runinfo.py"
    shutil.copy(runinfo.__file__, copy)
    spec = importlib.util.spec_from_file_location("installed_runinfo", copy)
    installed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installed)
    assert installed.git_commit() is None


def test_the_checkout_records_its_commit():
    """From the repository (``pip install -e``, ``python -m cli``) the commit is recorded."""
    if shutil.which("git") is None or not (Path(runinfo.__file__).parents[1] / ".git").exists():
        pytest.skip("not a git checkout")
    commit = runinfo.git_commit()
    assert commit is not None and len(commit.removesuffix("-dirty")) == 40


def test_a_records_earlier_warnings_stay_small_and_are_said_once():
    """Each call that writes over a record keeps the warnings of those before it (resumed
    runs), marked with their time; the latest 10 calls, the first 20 warnings of each: a run
    resumed a thousand times keeps a small record."""
    from engine.runinfo import warnings_entry

    record: dict = {}
    for call in range(12):
        said = [f"call {call}: warning {i}" for i in range(25 if call == 11 else 1)]
        record = {"environment": {"time": f"t{call}"}, **warnings_entry(said, record)}
    last = warnings_entry([], record)
    assert [c["time"] for c in last["earlier_warnings"]] == [f"t{c}" for c in range(2, 12)]
    assert last["earlier_warnings"][-1]["warnings"][-1] == "... and 5 more"
    assert len(last["earlier_warnings"][-1]["warnings"]) == 21 and "warnings" not in last
    # the same warnings said again by the next call: kept once, as the latest call's
    again = warnings_entry(["x"], {"environment": {"time": "t"}, "warnings": ["x"]})
    assert again == {"warnings": ["x"]}
    assert warnings_entry([], None) == {} and warnings_entry(["y"]) == {"warnings": ["y"]}
