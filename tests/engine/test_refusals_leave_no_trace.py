"""A command refused before any work leaves the file system as it found it: no new --out folder
(nor the parents made for it), no ``.lock`` in an empty folder given as --out, and a finished
output's files (its lock record too) as they were. Before the fifty-second round a refusal left
an empty ``.lock`` in a folder that was there, and wrote its own record over a finished output's
(engine convert-sam's parent folders: tests/labeler/test_sam_convert.py)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.runlock import LOCK_NAME, exclusive

# Each command with inputs that do not exist: refused (exit 2) after it took the --out's lock.
REFUSED = {
    "label": ["label", "--class", "Car", "--data", "nodata", "--backend", "simulated"],
    "fuse": ["fuse", "--data", "nodata", "--pseudo", "norun"],
    "train": ["train", "--data", "nodata", "--preset", "tiny", "--device", "cpu"],
    "predict": ["predict", "--checkpoint", "no.pt", "--images", "noimages", "--device", "cpu"],
    "report": ["report", "--subset", "nosubset", "--pseudo", "norun", "--no-chart"],
    "annotate import": [
        "annotate",
        "import",
        "no.json",
        "--format",
        "coco",
        "--class",
        "Car",
        "--data",
        "nodata",
    ],  # fmt: skip
    "demo": ["demo", "--class", "Dog"],
}


def _tree(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: its mode, and a file's size and MD5."""
    found = {}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(here, name)
            mode = path.lstat().st_mode
            found[str(path.relative_to(root))] = (
                (oct(mode),)
                if stat.S_ISDIR(mode)
                else (oct(mode), path.stat().st_size, hashlib.md5(path.read_bytes()).hexdigest())
            )
    return found


@pytest.mark.parametrize("command", sorted(REFUSED))
@pytest.mark.parametrize("out", ["new", "empty", "finished", "unlocked"])
def test_a_refused_command_leaves_the_file_system_as_it_found_it(
    tmp_path, monkeypatch, command, out
):
    from cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "notes.txt").write_text("kept\n")  # a folder of the user's that a run wrote
    record = {"command": "engine x", "pid": 1, "host": "h", "started": "2026-12-07 01:00:00 UTC"}
    (finished / LOCK_NAME).write_text(json.dumps(record))
    unlocked = tmp_path / "unlocked"  # one without a lock file (copied without hidden files)
    unlocked.mkdir()
    (unlocked / "notes.txt").write_text("kept\n")
    before = _tree(tmp_path)
    given = {"new": "runs/new", "empty": "empty", "finished": "finished"}.get(out, out)
    res = CliRunner().invoke(app, [*REFUSED[command], "--out", given, "--no-progress"])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: "), res.output
    assert _tree(tmp_path) == before  # runs/ made for runs/new removed with it, no .lock


def test_a_run_failing_after_it_wrote_keeps_its_own_lock_record(tmp_path):
    """A review that failed (a full disk) after its first thumbnail, in a new folder or in one
    with a finished run's record: the folder holds its work, and engine info names the run that
    left it unfinished. Before, the record of the run before was put back (or none, in a new
    folder: engine info's line lost the review's pid, host and time)."""
    from cli import app

    record = {"command": "engine x", "pid": 1, "host": "h", "started": "2026-12-07 01:00:00 UTC"}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / LOCK_NAME).write_text(json.dumps(record))
    for name in ("new", "old"):
        folder = tmp_path / name
        with pytest.raises(OSError), exclusive(folder, "engine review"):
            (folder / "thumbs").mkdir()
            (folder / "thumbs" / "test__a_pseudo.jpg").write_bytes(b"jpeg")
            raise OSError(28, "No space left on device")
        kept = json.loads((folder / LOCK_NAME).read_text())
        assert (kept["command"], kept["pid"]) == ("engine review", os.getpid()), name
    with pytest.raises(OSError), exclusive(tmp_path / "old", "engine review"):
        (tmp_path / "old" / "thumbs" / "test__a_pseudo.jpg").write_bytes(b"jpeg2")  # rewritten
        raise OSError(28, "No space left on device")
    kept = json.loads((tmp_path / "old" / LOCK_NAME).read_text())
    assert (kept["command"], kept["pid"]) == ("engine review", os.getpid())
    res = CliRunner().invoke(app, ["info", str(tmp_path / "new")], env={"COLUMNS": "400"})
    assert f"engine review (pid {os.getpid()} on " in res.output, res.output


def test_a_failed_run_puts_back_the_lock_record_before_it_and_an_empty_folder_stays_empty(tmp_path):
    """The rule in engine.runlock.exclusive: a run that fails in a folder that was there leaves
    the record of the run before it (a finished run's, or a killed one's, which engine info
    names); in an empty folder it removes the lock file it made; a stopped run (Ctrl-C) and a
    run that succeeds leave their own."""
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(ValueError), exclusive(folder, "engine fuse"):
        raise ValueError("bad input")
    assert list(folder.iterdir()) == []
    with exclusive(folder, "engine predict"):
        (folder / "a.png").write_bytes(b"x")
    kept = (folder / LOCK_NAME).read_bytes()
    assert json.loads(kept)["command"] == "engine predict"
    with pytest.raises(OSError), exclusive(folder, "engine label"):
        raise OSError(28, "No space left on device")
    assert (folder / LOCK_NAME).read_bytes() == kept
    with pytest.raises(KeyboardInterrupt), exclusive(folder, "engine label"):
        raise KeyboardInterrupt
    assert json.loads((folder / LOCK_NAME).read_bytes())["command"] == "engine label"
    (folder / "a.png").unlink()  # a folder holding only a killed run's lock record
    (folder / LOCK_NAME).write_bytes(kept)
    with pytest.raises(ValueError), exclusive(folder, "engine fuse"):
        raise ValueError("bad input")
    assert [p.name for p in folder.iterdir()] == [LOCK_NAME]  # not made by this run: kept
    assert (folder / LOCK_NAME).read_bytes() == kept
    (folder / LOCK_NAME).write_bytes(b"")  # a run killed as it took the folder: no record
    with pytest.raises(ValueError), exclusive(folder, "engine fuse"):
        raise ValueError("bad input")
    assert (folder / LOCK_NAME).read_bytes() == b""  # put back as it was: empty
