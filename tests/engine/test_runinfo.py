"""engine.runinfo: what a run directory records about the machine."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
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
    # a CPU run's digits depend on the kernels torch dispatches to (docs/rounds.md, ninth round)
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


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_checkout_with_a_changed_non_ascii_file_records_its_commit_in_an_ascii_locale(tmp_path):
    """``git status`` names a changed file in its bytes where ``core.quotepath`` is off; read in
    the locale's encoding (ASCII under ``LC_ALL=C`` with Python's UTF-8 mode off; cp1252 on
    Windows) they raised UnicodeDecodeError, and every command that writes a record stopped with
    "error: 'ascii' codec can't decode byte 0xc3"."""
    repo = tmp_path / "checkout"
    (repo / "engine").mkdir(parents=True)
    shutil.copy(runinfo.__file__, repo / "engine" / "runinfo.py")
    git = ["git", "-C", str(repo), "-c", "user.email=u@example.com", "-c", "user.name=u"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "config", "core.quotepath", "false"], check=True)
    (repo / "café.txt").write_text("a\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a checkout"], check=True)
    (repo / "café.txt").write_text("b\n")  # changed: git status names it
    code = (
        "import importlib.util, sys; "
        "spec = importlib.util.spec_from_file_location('copy', sys.argv[1]); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "print(m.git_commit())"
    )
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    res = subprocess.run([sys.executable, "-c", code, str(repo / "engine" / "runinfo.py")],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    assert res.stdout.strip() == head.stdout.strip() + "-dirty"


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
    many = [f"w{i}" for i in range(25)]  # more than are kept of an earlier call: still once
    assert warnings_entry(many, {"warnings": many}) == {"warnings": many}
    assert warnings_entry([], None) == {} and warnings_entry(["y"]) == {"warnings": ["y"]}


def _cgroups(monkeypatch, tmp_path, proc: str, files: dict[str, str]) -> None:
    """A fake cgroup mount under ``tmp_path`` and /proc/self/cgroup reading ``proc``."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "proc").write_text(proc)
    monkeypatch.setattr(runinfo, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(runinfo, "PROC_CGROUP", tmp_path / "proc")
    monkeypatch.setattr(runinfo.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)


@pytest.mark.parametrize(
    ("proc", "files", "cores"),
    [
        ("0::/\n", {"cpu.max": "200000 100000\n"}, 2),  # docker run --cpus 2 (v2, a container)
        ("0::/\n", {"cpu.max": "150000 100000\n"}, 1),  # --cpus 1.5: whole cores
        ("0::/\n", {"cpu.max": "50000 100000\n"}, 1),  # never 0
        ("0::/\n", {"cpu.max": "max 100000\n"}, 64),  # no quota: the affinity mask
        ("0::/pod/box\n", {"pod/cpu.max": "400000 100000\n", "pod/box/cpu.max": "max 1"}, 4),
        (
            "4:cpu,cpuacct:/\n0::/\n",  # cgroup v1 (Kubernetes on an older node)
            {"cpu,cpuacct/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
            3,
        ),
        ("4:cpu,cpuacct:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n"}, 64),
        ("", {}, 64),  # no cgroups (not Linux, or none mounted)
    ],
)
def test_cpu_cores_follows_a_containers_cpu_quota(monkeypatch, tmp_path, proc, files, cores):
    """``docker run --cpus 2`` or a Kubernetes CPU limit on a 64-core host: os.cpu_count() and
    the affinity mask say 64; the quota 2. Before, training sized its loader workers (4) and
    torch threads (60) by 64 and ran throttled."""
    _cgroups(monkeypatch, tmp_path, proc, files)
    assert runinfo.cpu_cores() == cores


def test_train_defaults_follow_the_quota(monkeypatch, tmp_path):
    from trainer.config import resolve_threads, resolve_workers

    _cgroups(monkeypatch, tmp_path, "0::/\n", {"cpu.max": "200000 100000\n"})
    assert (resolve_workers(-1), resolve_threads(0, resolve_workers(-1), "cpu")) == (1, 1)


FOLLOW = """
import os, sys
from pathlib import Path
from engine import runinfo
runinfo.CGROUP_ROOT, runinfo.PROC_CGROUP = Path(sys.argv[1]), Path(sys.argv[1]) / "proc"
os.sched_getaffinity = lambda pid: set(range(64))
runinfo.follow_cpu_quota()
import torch
print(os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads())
"""


@pytest.mark.parametrize(
    ("quota", "omp", "shown"),
    [("200000 100000", None, "2 2"), ("max 100000", None, "None"), ("200000 100000", "1", "1 1")],
)
def test_torch_default_threads_follow_the_quota(tmp_path, quota, omp, shown):
    """predict, label and evaluate leave torch's threads at its default, which follows the
    affinity mask, not a container's quota: under a 1-CPU quota torch ran 2 threads on this
    2-core machine, a convolution 2.2x slower than with 1. The CLI sets OMP_NUM_THREADS first
    (not where the user set it, nor without a quota below the mask)."""
    (tmp_path / "proc").write_text("0::/\n")
    (tmp_path / "cpu.max").write_text(quota + "\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    if omp:
        env["OMP_NUM_THREADS"] = omp
    res = subprocess.run(
        [sys.executable, "-c", FOLLOW, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0] == shown.split()[0]
    if shown != "None":
        assert res.stdout.split() == shown.split()


def test_torch_facts_are_recorded_by_what_the_command_uses():
    """Every record took torch's kernel set, threads and GPUs whenever torch happened to be
    loaded: the same ``engine report`` written from a notebook that had imported torch and from
    a fresh ``engine report`` differed (and ``engine info`` named kernels that computed
    nothing). Now the command says whether it used torch."""
    assert "torch" in sys.modules  # as in a notebook that imported it
    assert "cpu_capability" not in environment(torch_used=False)
    assert "torch_threads" not in environment(torch_used=False)
    used = environment(torch_used=True)
    assert used["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "cuda" in used and "gpus" in used


def test_config_cwd_is_the_last_resumes_then_the_starts_and_none_for_a_damaged_record(
    tmp_path: Path,
):
    """The folder a run's relative paths were typed from: the last resume's cwd, else the first
    start's. A damaged resumes.jsonl gave the first start's, though a later resume may have run
    elsewhere: None, as for a run that records none."""
    from engine.runinfo import config_cwd

    (tmp_path / "environment.json").write_text(json.dumps({"cwd": "/start"}))
    assert config_cwd(tmp_path) == "/start"
    lines = [
        {"step": 2, "environment": {"cwd": "/first"}},
        {"step": 4, "environment": {"cwd": "/b"}},
    ]
    (tmp_path / "resumes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert config_cwd(tmp_path) == "/b"
    (tmp_path / "resumes.jsonl").write_text(
        json.dumps(lines[0]) + "\n{not json\n" + json.dumps(lines[1]) + "\n"
    )
    assert config_cwd(tmp_path) is None


def test_versions_and_environment_record_the_python_version():
    """``python`` is the version number alone (``3.11.4``), not the build words after it."""
    import platform

    from engine.runinfo import versions

    assert versions()["python"] == platform.python_version()
    assert environment(torch_used=False)["python"] == platform.python_version()


def test_an_earlier_calls_warnings_are_cut_after_exactly_twenty():
    """20 warnings are kept whole; from 21 on the first 20 and how many more."""
    from engine.runinfo import earlier_calls

    said = [f"w{i}" for i in range(1025)]
    assert earlier_calls({"warnings": said[:20]}) == [{"time": None, "warnings": said[:20]}]
    assert earlier_calls({"environment": {"time": "t"}, "warnings": said[:21]}) == [
        {"time": "t", "warnings": [*said[:20], "... and 1 more"]}
    ]
    assert earlier_calls({"environment": "t", "warnings": said})[0]["warnings"][20:] == [
        "... and 1,005 more"
    ]


def test_earlier_warnings_entries_that_are_no_call_are_left_out():
    """A hand-edited ``earlier_warnings`` list: only dicts whose ``warnings`` is a list count;
    the latest call's own go last."""
    from engine.runinfo import earlier_calls, warnings_entry

    kept = {"time": "t1", "warnings": ["a"]}
    record = {
        "earlier_warnings": ["junk", {"time": "t0", "warnings": "not a list"}, kept],
        "environment": {"time": "t2"},
        "warnings": ["b"],
    }
    assert earlier_calls(record) == [kept, {"time": "t2", "warnings": ["b"]}]
    # the first call's warnings said again now are no repeat of the latest call's: kept
    assert warnings_entry(["a"], record) == {
        "warnings": ["a"],
        "earlier_warnings": [kept, {"time": "t2", "warnings": ["b"]}],
    }


def test_config_cwd_reads_the_last_resume_line_only(tmp_path: Path):
    """Lines before the last one (here no record at all) play no part: the last resume's cwd."""
    from engine.runinfo import config_cwd

    (tmp_path / "environment.json").write_text(json.dumps({"cwd": "/start"}))
    lines = ["junk", 7, {"step": 4, "environment": {"cwd": "/b"}}]
    (tmp_path / "resumes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert config_cwd(tmp_path) == "/b"
    lines[-1] = {"step": 4}  # the last resume records no environment: the start's
    (tmp_path / "resumes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert config_cwd(tmp_path) == "/start"
