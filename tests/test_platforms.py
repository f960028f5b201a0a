"""Windows and macOS facts, simulated on Linux: no ``fcntl``, a locale encoding that is not
UTF-8 (cp1252 on Windows), the engine's code naming its text encoding (docs/foundation.md,
"Windows and macOS")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_fcntl(monkeypatch):
    """``import fcntl`` fails, as on Windows."""
    monkeypatch.setitem(sys.modules, "fcntl", None)


def test_the_engines_code_names_the_encoding_of_every_text_file() -> None:
    """open(), read_text() and write_text() without ``encoding=`` use the locale's (cp1252 on
    Windows): ruff's PLW1514, enabled in pyproject.toml, finds none in the engine's code."""
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    res = subprocess.run(
        [ruff, "check", "--preview", "--select", "PLW1514", "--output-format", "concise",
         "engine", "labeler", "trainer", "annotations", "cli.py"],
        cwd=ROOT, capture_output=True, text=True, encoding="utf-8",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout


def test_the_engine_asks_whether_flock_exists_in_one_place() -> None:
    """``annotations.fileio.fcntl_module`` is the one way the engine asks for ``fcntl`` (None on
    Windows); before, eight places imported it each their own way (``import fcntl  # noqa:
    F401 - only whether it exists``, one of them catching OSError with it), so a change to how
    "no flock" is told (a platform, a test's stand-in) had eight places to reach."""
    import ast

    found = []
    files = [ROOT / "cli.py"]
    for d in ("engine", "labeler", "trainer", "annotations"):
        files += sorted((ROOT / d).rglob("*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if "fcntl" in names or (isinstance(node, ast.ImportFrom) and node.module == "fcntl"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert [f.split(":")[0] for f in found] == ["annotations/fileio/atomic.py"], found


def test_a_demo_rerun_keeps_the_earlier_calls_under_a_locale_that_is_not_utf8(tmp_path) -> None:
    """summary.json is UTF-8; read in the locale's encoding (Windows: cp1252; here ASCII) a
    folder named démo_out made it unreadable, and a rerun lost every earlier call's times."""
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"calls": [{"out": "démo_out"}]}, ensure_ascii=False),
                       encoding="utf-8")  # fmt: skip
    code = (
        "import sys; from pathlib import Path; from engine.demo import _earlier_calls; "
        "print(len(_earlier_calls(Path(sys.argv[1]))))"
    )
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code, str(summary)], cwd=ROOT, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "1"


def test_a_command_without_fcntl_gets_its_output_folder_made(tmp_path, no_fcntl) -> None:
    """Without flock (Windows) a command runs unlocked, but :func:`exclusive` still makes its
    folder as it says (it yielded a folder that did not exist: a write into it failed), and
    removes the folders it made when nothing was written there."""
    from engine.runlock import LOCK_NAME, exclusive, writer

    with exclusive(tmp_path / "runs" / "label" / "car", "engine label") as folder:
        assert folder.is_dir()
        (folder / "run.json").write_text("{}", encoding="utf-8")
        assert writer(folder) is None  # no lock to find
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]  # no lock file either
    assert not (folder / LOCK_NAME).exists()
    with pytest.raises(ValueError, match="bad"), exclusive(tmp_path / "new" / "run", "x"):
        raise ValueError("bad input")
    assert not (tmp_path / "new").exists()
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    with exclusive(tmp_path / "afile", "engine predict") as folder:
        assert folder.is_file()  # the command's own check names it


def test_a_log_is_appended_to_without_fcntl(tmp_path, no_fcntl) -> None:
    from annotations.fileio import append_line, read_jsonl

    log = tmp_path / "m.jsonl"
    log.write_bytes(b'{"a": 1}\n{"a": 2')  # a torn last line
    append_line(log, '{"a": 3}')
    assert read_jsonl(log) == [{"a": 1}, {"a": 3}]


def test_a_single_file_s_leftover_temporaries_stay_without_fcntl(tmp_path, no_fcntl) -> None:
    """No lock tells a killed write's temporary file from a live one's: the next write of the
    file (``compare --json``) leaves them, and writes go on unlocked."""
    from annotations.fileio import atomic_write_bytes, dead_temporaries, remove_dead_temporaries

    left = tmp_path / ".c.json.abcd1234.tmp"
    left.write_bytes(b"half")
    out = tmp_path / "c.json"
    atomic_write_bytes(out, b"{}")
    assert remove_dead_temporaries(out) == 0 and not dead_temporaries(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [left.name, "c.json"]


def test_a_default_out_windows_cannot_make_is_refused_naming_the_class(monkeypatch) -> None:
    """``--class 'Car: sedan'`` (or ``Aux``) without ``--out``: runs/label/car: sedan is no
    folder name on Windows (``:`` names an NTFS stream; ``aux`` is a device). Refused there in
    one line naming the folder, the class and the way out; elsewhere it is made as before."""
    import engine.fusion.run as fusion_run
    import engine.fusion.run.plan as fusion_plan
    from labeler.config import ClassSpec, LabelConfig, default_out_dir

    def out_dir(name: str, out: str = "") -> Path:
        return LabelConfig(data="d", cls=ClassSpec(name, (name.lower(),)), out=out).out_dir

    assert out_dir("Car: sedan") == Path("runs/label/car: sedan")  # Linux, macOS
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(ValueError) as e:
        out_dir("Car: sedan")
    assert str(e.value) == (
        "runs/label/car: sedan: Windows makes no folder of that name (it holds :), the default "
        "--out for --class 'Car: sedan': give --out"
    )
    with pytest.raises(ValueError, match=r"runs/label/aux: .*\(aux is a device name there\)"):
        out_dir("Aux")
    assert out_dir("Bike/Rack") == Path("runs/label/bike_rack")
    assert out_dir("Console") == Path("runs/label/console")
    # the default named in another message (a run of another class at the --out given) is no
    # folder to make: named as it is, not refused
    assert default_out_dir("Car: sedan") == Path("runs/label/car: sedan")
    assert out_dir("Car: sedan", out="runs/sedan") == Path("runs/sedan")

    class Run:
        def __init__(self, path):
            self.class_name = Path(path).name

    monkeypatch.setattr(fusion_plan, "open_pseudo_run", Run)  # where default_out_dir calls it
    with pytest.raises(ValueError, match=r"the classes Car\?, Nul: give --out"):
        fusion_run.default_out_dir(["runs/label/Car?", "runs/label/Nul"])
    assert fusion_run.default_out_dir(["x/Car"]) == Path("runs/fused/car")


def test_a_file_another_program_holds_open_on_windows_is_named_in_one_line(tmp_path, monkeypatch):
    """Windows refuses to rename onto a file another program holds open (an image viewer, Excel):
    ``PermissionError`` naming the hidden temporary file and the destination. The error names
    the destination alone, the temporary file is gone and the old file is as it was."""
    import annotations.fileio as fileio

    dest = tmp_path / "report.json"
    dest.write_text("old", encoding="utf-8")

    def refused(src, dst):
        raise PermissionError(13, "Access is denied", os.fspath(src), None, os.fspath(dst))

    monkeypatch.setattr(fileio.atomic.os, "replace", refused)
    with pytest.raises(PermissionError) as e:
        fileio.atomic_write_text(dest, "new")
    assert str(e.value) == f"[Errno 13] Access is denied: '{dest}'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    assert dest.read_text(encoding="utf-8") == "old"


def test_a_review_of_images_on_another_drive_links_them_by_file_url(tmp_path, monkeypatch):
    """On Windows ``os.path.relpath`` from the gallery (C:) to images on D: raises ValueError
    ("path is on mount 'D:', start on mount 'C:'"): ``engine review`` failed with it. The card
    now links the image by its ``file:`` URL."""
    import engine.review as review
    from tests.engine.test_review import _odd_names_run

    run = _odd_names_run(tmp_path)
    relpath = os.path.relpath

    def ntpath_relpath(path, start=os.curdir):
        if "images" in Path(path).parts:  # the dataset's images: on D:
            raise ValueError("path is on mount 'D:', start on mount 'C:'")
        return relpath(path, start)

    monkeypatch.setattr(review.page.os.path, "relpath", ntpath_relpath)
    text = review.build_review(review.ReviewConfig(str(run), progress=False)).index.read_text(
        encoding="utf-8"
    )
    image = (tmp_path / "data" / "images" / "test" / "x?y.jpg").as_uri()
    assert f'href="{image}"' in text and "x%3Fy.jpg" in image


def test_convert_sam_without_fcntl_never_opens_its_folder(tmp_path, no_fcntl, monkeypatch):
    """Windows refuses ``os.open`` of a folder (PermissionError): without flock the conversion's
    lock opens nothing and goes on unlocked, as its docstring says; with flock refused (NFS:
    locks on files opened for writing only) it says so in a warning."""
    import os

    from labeler.sam_convert import _converting

    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    with _converting(tmp_path / "out"):
        assert (tmp_path / "out").is_dir()
    assert opened == [] and not (tmp_path / "out").exists()  # made, left empty: removed again


def test_convert_sam_where_flock_is_refused_warns(tmp_path, monkeypatch, caplog):
    import errno
    import fcntl

    from labeler.sam_convert import _converting

    def refused(*_: object) -> None:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(fcntl, "flock", refused)
    with _converting(tmp_path / "out"):
        pass
    assert f"{tmp_path / 'out'}: cannot lock it (Bad file descriptor); converting without" in (
        caplog.text
    )
