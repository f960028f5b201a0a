"""``bench/gpu_session.sh``, the one prepared call of a session lent a GPU: it must run the first
time, so its steps are checked here on the CPU (``GPU_SESSION_CPU=1``) and its offline install
of carried wheels with a wheel the machine's Python cannot take."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_session.sh"


def test_a_carried_wheel_of_another_python_does_not_end_the_call(tmp_path):
    """The H200 call carried one cp312 wheel in .whl/; a machine with another Python (or a .whl/
    holding wheels for several) made ``pip install .whl/*.whl`` fail and the script exit 3
    before env.txt: a whole device call lost. pip now picks among the carried wheels, offline,
    only when the package is missing, and a failed install is a line in env.txt."""
    (tmp_path / "bench").symlink_to(ROOT / "bench")
    wheels = tmp_path / ".whl"
    wheels.mkdir()
    (wheels / "pycocotools-2.0.11-cp399-cp399-manylinux_2_17_x86_64.whl").write_bytes(b"not a zip")
    out = tmp_path / "out"
    res = subprocess.run(
        ["bash", str(SCRIPT), str(out), "nothing"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert (out / "env.txt").is_file()
    assert "== done" in (out / "run.log").read_text()


@pytest.mark.slow
def test_steps_run_on_the_cpu_and_return_at_most_8_files(tmp_path):
    """``GPU_SESSION_CPU=1``: the CPU model and one part of bench/gpu.py at toy sizes, through
    the command lines the script builds; logs.tgz holds this call's part only."""
    out = tmp_path / "out"
    env = {**os.environ, "GPU_SESSION_CPU": "1", "TMPDIR": str(tmp_path)}
    res = subprocess.run(
        ["bash", str(SCRIPT), str(out), "model,metrics,trace"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    log = (out / "run.log").read_text()
    assert log.count("rc=0") == 2, log  # model, gpu.py
    assert "needs a CUDA GPU" in log  # trace: refused on the CPU, with its reason
    names = {p.name for p in out.iterdir()}
    assert {"env.txt", "run.log", "model.json", "gpu.json", "gpu.md", "logs.tgz"} <= names
    assert len(names) <= 8
    with tarfile.open(out / "logs.tgz") as tar:
        files = sorted(m.name for m in tar.getmembers() if m.isfile())
    assert files == ["logs/metrics.log", "parts/metrics.json"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("gpu-figures")]
