"""Containers and clusters: a read-only or unset $HOME, a UID with no passwd entry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DRAW = """
import io
from engine.outputs import matplotlib_for, subplots
matplotlib_for("a test chart")
fig, ax = subplots()
ax.plot([0, 1])
fig.savefig(io.BytesIO(), format="png")
"""


@pytest.mark.parametrize("home", ["file", "unset"])
def test_a_chart_without_a_writable_home_says_nothing_of_matplotlib(tmp_path, home):
    """Docker's non-root users, a read-only root file system, a SLURM job without $HOME: every
    chart-drawing command (train's curves.png, report, compare --plot, info --plot) printed
    matplotlib's "mkdir -p failed ... Matplotlib created a temporary cache directory ..." log
    lines before its own output. Its temporary folder is still used, and removed at exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "MPL"))}
    env["PYTHONPATH"] = str(ROOT)
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    if home == "file":  # a home matplotlib cannot make its folders in (root ignores read-only)
        (tmp_path / "home").write_text("")
        env["HOME"] = str(tmp_path / "home")
    else:
        env.pop("HOME", None)
        env["XDG_CONFIG_HOME"] = env["XDG_CACHE_HOME"] = str(tmp_path / "home")
        (tmp_path / "home").write_text("")
    res = subprocess.run(
        [sys.executable, "-c", DRAW], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert list((tmp_path / "tmp").iterdir()) == []  # matplotlib's temporary folder is gone
