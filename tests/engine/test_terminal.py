"""Output outside a wide UTF-8 terminal: ASCII-only streams, log files, pipes."""

from __future__ import annotations

import io
from pathlib import Path

from typer.testing import CliRunner

from cli import app
from tests.engine.test_evaluate import _compare_data
from tests.engine.test_table4 import TABLE4


def test_table4_on_an_ascii_stream_says_d_for_delta():
    """rich draws ASCII boxes on a stream that is not UTF-8, but wrote "ΔIoU" as it is:
    UnicodeEncodeError under PYTHONIOENCODING=ascii."""
    from engine.progress import SafeConsole
    from engine.table4 import Table4

    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    console = SafeConsole(file=stream, width=120)
    console.print(Table4("Bicycle \u2192 r\u00e9sum\u00e9", TABLE4, marks=True))
    stream.flush()
    text = stream.buffer.getvalue().decode("ascii")
    assert "dIoU" in text and "dBF1" in text and "+33.66*" in text
    assert "Bicycle -> r?sum?" in text  # other characters one for one: columns stay aligned
    widths = {len(line) for line in text.splitlines()[1:] if line}
    assert len(widths) == 1


def test_compare_and_its_markdown_on_an_ascii_stdout(tmp_path: Path):
    """engine compare under PYTHONIOENCODING=ascii: before, "error: 'ascii' codec can't encode
    character '\\u0394'" and exit 2 after the scores were computed; ``--markdown -`` gives the
    UTF-8 bytes ``--markdown FILE`` holds."""
    gt_dir, a_dir, b_dir, tax, *_ = _compare_data(tmp_path)
    args = ["compare", "--class", "Bicycle", "--gt", str(gt_dir), "--taxonomy", str(tax),
            "--source", f"pseudo={a_dir}", "--source", f"mod\u00e8le={b_dir}", "--no-progress"]  # fmt: skip
    ascii_runner = CliRunner(charset="ascii")
    res = ascii_runner.invoke(app, args, env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    assert "dIoU" in res.stdout and "mod?le" in res.stdout and "d of mod?le vs pseudo" in res.stdout
    md = tmp_path / "c.md"
    assert CliRunner().invoke(app, [*args, "--markdown", str(md)]).exit_code == 0
    res = ascii_runner.invoke(app, [*args, "--markdown", "-"])
    assert res.exit_code == 0, res.output
    assert res.stdout_bytes == md.read_bytes()
