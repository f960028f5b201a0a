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


def test_a_bar_in_a_log_file_writes_a_plain_line_now_and_then(monkeypatch):
    """Where stderr is not an interactive terminal (a SLURM or nohup log, a pipe, TERM=dumb),
    rich draws a bar once, when it stops: the log of a day-long engine train said nothing of its
    progress until the end. Now a plain line (N/M, rate, ETA, the extra fields; no bar, no
    escape codes) every LOG_EVERY_S seconds, and the bar once at the end as before."""
    import engine.progress as progress

    stream = io.StringIO()
    monkeypatch.setattr(progress, "stderr_console", progress.SafeConsole(file=stream, width=80))
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0, raising=False)
    assert list(progress.track(range(4), "label Bicycle")) == [0, 1, 2, 3]
    lines = stream.getvalue().splitlines()
    assert [line.split()[:3] for line in lines[:3]] == [
        ["label", "Bicycle", f"{n}/4"] for n in (1, 2, 3)
    ]
    assert all("img/s" in line and "ETA" in line for line in lines[:3])
    assert len(lines) == 4 and "4/4" in lines[3]  # the finished bar, drawn once
    assert "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()
    assert "\u280b" not in stream.getvalue()  # no spinner frame where nothing spins

    stream.seek(0), stream.truncate()
    monkeypatch.setattr(progress, "LOG_EVERY_S", 3600.0)  # a short run: the bar alone, as before
    with progress.make_progress("it", "{task.fields[info]}") as bar:
        task = bar.add_task("train", total=3, info="loss -")
        for step in range(3):
            bar.update(task, completed=step + 1, info=f"loss {step:.4f}")
    assert len(stream.getvalue().splitlines()) == 1 and "loss 2.0000" in stream.getvalue()


def test_table4_in_a_narrow_terminal_folds_a_source_s_name_instead_of_cutting_it():
    """At 60 columns the source column is narrower than "(simulated)" and "joint-trained": they
    read "(simula…" and "joint-t…", which named neither."""
    import re

    from engine.table4 import Table4
    from tests.engine.test_table4 import render

    narrow = render(Table4("Bicycle", TABLE4, marks=True), 60)
    assert "\u2026" not in "\n".join(narrow)
    sources = "".join(re.split(r"\s{2,}", line.strip())[0] for line in narrow[3:])
    assert sources == "pseudolabels(simulated)fusedlabelsjoint-trainedmodel"


def test_a_file_name_that_is_not_utf8_on_a_utf8_stream():
    """A latin-1 file name (``caf\\xe9.jpg``) is read with a surrogate for its byte: on a strict
    UTF-8 stdout (Python's choice under LANG=en_US.UTF-8) ``engine info`` listing it stopped with
    "error: 'utf-8' codec can't encode character '\\udce9' ... surrogates not allowed", exit 2.
    A stream that takes surrogates (LANG=C.UTF-8) still gets the file's own bytes."""
    from engine.progress import SafeConsole

    name = b"caf\xe9.jpg".decode("utf-8", "surrogateescape")
    cases = (
        ("strict", b"caf?.jpg"),
        ("surrogateescape", b"caf\xe9.jpg"),
        ("backslashreplace", b"caf?.jpg"),
    )
    for errors, want in cases:
        stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors=errors)
        SafeConsole(file=stream, width=80).print(f"no label for {name}")
        stream.flush()
        assert want in stream.buffer.getvalue()
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="backslashreplace")  # stderr
    SafeConsole(file=stream, width=80).print("d\u0394 \u2026")  # as under PYTHONIOENCODING=ascii
    stream.flush()
    assert stream.buffer.getvalue() == b"dd .\n"  # not "\\u0394 \\u2026"


def test_label_summary_names_its_run_whole_in_a_narrow_terminal(tmp_path: Path):
    """The summary table's title, the run's path, was folded into the table's width: at
    COLUMNS=40 ".../runs/lab" and "el (shard 0/1)" on two lines."""
    from engine.synth import SynthConfig, generate

    data = generate(SynthConfig(out=tmp_path / "d", train=0, val=0, test=1, size=(64, 64)), False)
    out = tmp_path / "runs" / "a label run whose path is wider than the terminal"
    args = ["label", "--class", "Bicycle", "--data", str(data), "--out", str(out),
            "--backend", "simulated", "--no-progress"]  # fmt: skip
    res = CliRunner().invoke(app, args, env={"COLUMNS": "40"})
    assert res.exit_code == 0, res.output
    assert f"label run {out} (shard 0/1)" in res.stdout


def test_a_full_stdout_is_named_as_the_file_that_refused(tmp_path: Path):
    """``engine info DATA > FILE`` on a full disk, or ``--json -`` into a full pipe, ended with
    ``error: [Errno 28] No space left on device`` and exit 74: no file named, as if one of the
    command's outputs had failed. Now the line says it was stdout, and what it went to."""
    import os
    import subprocess
    import sys

    import pytest

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    gt_dir, a_dir, b_dir, tax, *_ = _compare_data(tmp_path)
    compare = ["compare", "--class", "Bicycle", "--gt", str(gt_dir), "--taxonomy", str(tax),
               "--source", f"pseudo={a_dir}", "--source", f"b={b_dir}", "--no-progress"]  # fmt: skip
    from tests.loop_helpers import make_dataset

    make_dataset(tmp_path / "data", "test", n=1, size=(8, 8))
    root = Path(__file__).resolve().parents[2]
    for args in (["info", str(tmp_path / "data")], [*compare, "--json", "-"]):
        with open("/dev/full", "w") as full:
            res = subprocess.run(
                [sys.executable, "-m", "cli", *args],
                cwd=root, stdout=full, stderr=subprocess.PIPE, text=True, check=False,
            )  # fmt: skip
        assert res.returncode == 74, res.stderr
        assert res.stderr.splitlines()[-1] == (
            "error: stdout (/dev/full): No space left on device; make room and run the same "
            "command again"
        ), args


def test_a_stderr_that_refuses_writes_leaves_the_work_its_results_and_exit_code(
    tmp_path, monkeypatch
):
    """``engine ... 2> log`` on a full disk (here ``2>/dev/full``): a refused progress bar,
    note or error line ended the command with a traceback that could not be shown, exit code
    1: ``engine synth`` stopped before its result line (0 due), a bad ``--size`` was 1 (2
    due). Now stderr's lines go unsaid and the command runs as it would: stdout and exit code
    as with a stderr that takes them; the rich stderr console drops each refused line.
    The bad ``--size`` runs in this process (the console's stream refusing), the good one in a
    process of its own on ``/dev/full`` (its progress line refused by the descriptor, and
    Python's flush of stderr at exit)."""
    import os
    import subprocess
    import sys

    import pytest

    from engine.progress import SafeConsole, stderr_console

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    console = SafeConsole(file=Full(), stderr=True)
    console.print("warning: a note")  # not raised
    console.print("warning: another")  # tried again (the disk may have room now): not raised
    assert not console.quiet
    out = tmp_path / "d"
    synth = ["synth", "--out", str(out), "--train", "1", "--val", "0", "--test", "0"]
    monkeypatch.setattr(stderr_console, "quiet", False)  # restored after
    monkeypatch.setattr(stderr_console, "_file", Full())
    res = CliRunner().invoke(app, [*synth, "--size", "32x32"])
    assert (res.exit_code, res.stdout, stderr_console.quiet) == (2, "", False)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    monkeypatch.undo()
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    root = Path(__file__).resolve().parents[2]
    with open("/dev/full", "w") as full:
        res = subprocess.run(
            [sys.executable, "-m", "cli", *synth, "--size", "64x64"], cwd=root,
            stdout=subprocess.PIPE, stderr=full, text=True, check=False,
        )  # fmt: skip
    said = f"wrote 1 image (1 train, 0 val, 0 test) at 64x64 to {out}\n"
    assert (res.returncode, res.stdout.split("  new-class")[0]) == (0, said)
    assert (out / "synth.json").is_file()


def test_stderr_refusing_one_write_still_shows_the_error_line_after_it():
    """A stderr that refused one write for a moment (a non-blocking pipe full: EAGAIN; a full
    disk that an atomic write's temporary file filled a moment: ENOSPC) takes the lines after
    it: the command's final ``error: ...`` line arrives. Before, any refusal but a broken pipe
    kept the shared console quiet for good, and that line went unsaid. Only a stream that is
    gone (a terminal hung up: EIO; a closed descriptor: EBADF) is not written to again."""
    import errno
    import os

    from engine.progress import SafeConsole

    class Once(io.StringIO):
        def __init__(self, code: int) -> None:
            super().__init__()
            self.code, self.refused = code, 0

        def write(self, text: str) -> int:
            if not self.refused:
                self.refused += 1
                raise OSError(self.code, os.strerror(self.code))
            return super().write(text)

    for code, quiet, shown in (
        (errno.EAGAIN, False, "error: data/x.png: cannot read the image\n"),
        (errno.ENOSPC, False, "error: data/x.png: cannot read the image\n"),
        (errno.EIO, True, ""),
        (errno.EBADF, True, ""),
    ):
        stream = Once(code)
        console = SafeConsole(file=stream, stderr=True)
        console.print("checking 10/300")  # refused, not raised
        console.print("error: data/x.png: cannot read the image")
        assert (stream.refused, console.quiet, stream.getvalue()) == (1, quiet, shown), code


def test_a_stream_error_that_names_its_file_is_kept():
    """A write that failed on a file of its own (a disk error naming it) is not renamed."""
    from engine.progress import SafeConsole

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    import pytest

    with pytest.raises(OSError, match=r"^\[Errno 28\] No space left on device: 'stdout'$"):
        SafeConsole(file=Full()).print("scores")
    named = OSError(28, "No space left on device", "runs/x/a.png")
    from engine.progress import stream_error

    assert stream_error(named, Full(), "stdout") is named


def test_markdown_naming_a_file_that_is_not_utf8_on_stdout_is_the_file_s_bytes(
    tmp_path, monkeypatch
):
    """``compare --markdown -`` whose warnings name a folder copied from a latin-1 system
    (``caf\\xe9``): on a strict UTF-8 stdout (PYTHONIOENCODING=utf-8) it stopped with "'utf-8'
    codec can't encode character '\\udce9' ... surrogates not allowed", exit 2, after the
    scoring; under LANG=C.UTF-8 it wrote the raw byte, which ``--markdown FILE`` does not hold.
    Both now write the file's bytes: the name escaped, ``caf\\udce9``, UTF-8 still."""
    import sys

    from annotations.fileio import atomic_write_text
    from engine.cli.common import write_stdout

    text = "> **Warning**: " + b"/data/caf\xe9/labels".decode("utf-8", "surrogateescape") + "\n"
    want = atomic_write_text(tmp_path / "c.md", text).read_bytes()
    assert want == b"> **Warning**: /data/caf\\udce9/labels\n"
    for errors in ("strict", "surrogateescape"):
        stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors=errors)
        monkeypatch.setattr(sys, "stdout", stream)
        write_stdout(text)
        assert stream.buffer.getvalue() == want, errors
