"""``bench/fusion_content.py`` (docs/fusion.md, Speed) still runs: it times engine.fusion.run's
``input_content`` and ``fuse_job`` by name, and a copy of a fused dataset fused again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_content_hash_benchmark_runs_and_the_copy_is_skipped(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench/fusion_content.py"), "--images", "3"]
        + ["--size", "64x48", "--repeat", "1", "--noisy-confidence"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert "input_content" in out.stdout and "reading alone" in out.stdout
    assert "the copy, fused again: 3 skipped" in out.stdout
