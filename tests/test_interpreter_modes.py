"""The engine under the interpreter's modes users run it in: ``python -O``/``-OO`` (asserts and
docstrings stripped), ``-X dev``, ``-W error``, ``PYTHONHASHSEED``, a locale that is not UTF-8
and a far time zone (docs/foundation.md, "Interpreter modes")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _engine(*args: str, flags: tuple[str, ...] = (), env: dict[str, str] | None = None,
            cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``python FLAGS -m cli ARGS`` on this checkout, 120 columns wide."""
    env = {**os.environ, "COLUMNS": "120", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, *flags, "-m", "cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_the_help_under_python_OO_is_the_help() -> None:
    """``python -OO`` (``PYTHONOPTIMIZE=2``) strips docstrings, which typer builds each command's
    help from: every command's line in ``engine --help`` was blank, and ``engine synth --help``
    said only its options."""
    for args, said in (
        (("--help",), "Write a synthetic MaSS-style dataset"),
        (("synth", "--help"), "Resumable: scenes already written"),
        (("annotate", "pick", "--help"), "Choose images to annotate"),
    ):
        plain, stripped = _engine(*args), _engine(*args, flags=("-OO",))
        assert plain.returncode == stripped.returncode == 0, stripped.stderr
        assert said in plain.stdout and said in stripped.stdout
        assert stripped.stdout == plain.stdout


def test_the_labeler_s_models_under_python_OO_are_refused_in_one_line(tmp_path: Path) -> None:
    """transformers raises as it imports a model's module under ``-OO`` (it reads the stripped
    docstrings): ``engine label`` printed pages of "[ERROR] ... not documented" lines, then
    "detector weights not found" of weights that were there. Each loader now says why first
    (here of folders it never reaches)."""
    code = (
        "import sys; from labeler.models import load_detector, load_segmenter; "
        "from labeler.sam3 import load_sam3\n"
        "for load in (load_detector, load_segmenter, load_sam3):\n"
        "    try: load(sys.argv[1])\n"
        "    except Exception as e: print(f'{type(e).__name__}: {e}')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-OO", "-c", code, str(tmp_path / "model")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    said = res.stdout.splitlines()
    assert res.returncode == 0 and len(said) == 3, res.stdout + res.stderr
    for line in said:
        assert line.startswith("RuntimeError: the labeler's models cannot be loaded under python "
                               "-OO (PYTHONOPTIMIZE=2)"), line  # fmt: skip
