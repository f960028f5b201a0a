"""``engine models``: one line per preset with its parameter count, optional MACs."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from cli import app


def test_models_lists_presets_with_counts() -> None:
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    lines = dict(re.findall(r"^(\S+)\s+([\d.]+)M\s*$", result.output, re.M))
    assert lines["massformer_r50"] == "37.42"
    assert lines["massformer_lite_r18"] == "15.07"
    assert "tiny" in lines


def test_models_macs_at_size() -> None:
    result = CliRunner().invoke(app, ["models", "--macs", "256x256"])
    assert result.exit_code == 0, result.output
    macs = dict(re.findall(r"^(\S+)\s+[\d.]+M\s+([\d.]+) GMACs @ 256x256$", result.output, re.M))
    assert set(macs) == {"massformer_r50", "massformer_lite_r18", "tiny"}
    # r50 is ~2.2 TMACs at 4096x3072 (192x the pixels of 256x256): roughly 11 GMACs here
    assert 8 < float(macs["massformer_r50"]) < 15
    assert float(macs["tiny"]) < float(macs["massformer_lite_r18"]) < float(macs["massformer_r50"])


def test_models_rejects_bad_size() -> None:
    result = CliRunner().invoke(app, ["models", "--macs", "big"])
    assert result.exit_code != 0
    assert "WxH" in result.output or "width x height" in result.output
