"""``bench/inference_stages.py`` on the CPU with the tiny preset: every stage is timed and has
a peak (resident memory), the model's stages nest inside the whole call, and an unknown mode
is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "inference_stages.py"


def run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--preset", "tiny", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_stages_of_both_modes(tmp_path):
    out = tmp_path / "stages.json"
    res = run("--image", "160x120", "--test-size", "128x96", "--json", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [r["mode"] for r in report["runs"]] == ["efficient", "full"]
    for r in report["runs"]:
        st = {k.strip(): v["seconds"] for k, v in r["stages"].items()}
        assert all(v > 0 for v in st.values()), st
        assert st["backbone"] + st["pixel decoder"] + st["query decoder"] <= st["model forward"]
        host = st["host: resize, copy in, post-processing"]
        assert st["model forward"] + host == pytest.approx(st["whole call"])
        mb = {k.strip(): v["peak_mb"] for k, v in r["stages"].items()}
        assert mb["host: resize, copy in, post-processing"] is None  # a difference, no peak
        # CPU memory is resident memory (Linux); a nested stage's peak is within its parent's
        assert mb["backbone"] is not None and mb["lse"] is not None
        assert mb["backbone"] <= mb["model forward"] <= mb["whole call"]
        assert mb["lse"] <= mb["pixel decoder"] <= mb["model forward"]
    assert "lse" in res.stdout and "efficient" in res.stdout


def refused(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The script's ``main()`` in this process (the run() subprocess spent its 4 s importing
    torch for a refusal): ``(exit code, stderr)``. A refusal that is not argparse's usage exit
    (a traceback in the subprocess) is an exception other than SystemExit here: it fails."""
    from bench import inference_stages

    argv = [str(SCRIPT), "--device", "cpu", "--preset", "tiny", *args]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        inference_stages.main()
    return exited.value.code, capsys.readouterr().err


def test_unknown_mode_is_refused(monkeypatch, capsys):
    code, err = refused(monkeypatch, capsys, "--modes", "efficient,fast")
    assert code != 0 and "--modes: unknown fast" in err


def test_a_malformed_size_is_one_usage_line(monkeypatch, capsys):
    code, err = refused(monkeypatch, capsys, "--image", "4032by3024")
    assert code == 2 and "Traceback" not in err
    assert "argument --image: '4032by3024': expected WxH, e.g. 4032x3024" in err


def test_channels_last_weights_run_and_are_recorded(tmp_path):
    out = tmp_path / "stages.json"
    res = run("--image", "160x120", "--test-size", "128x96", "--modes", "efficient",
              "--channels-last", "--json", str(out))  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["channels_last"] is True and "channels-last weights" in res.stdout
    assert [r["mode"] for r in report["runs"]] == ["efficient"]
