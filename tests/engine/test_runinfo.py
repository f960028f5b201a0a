"""engine.runinfo: what a run directory records about the machine."""

from __future__ import annotations

import json

import torch

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
