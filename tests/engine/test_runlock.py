"""engine.runlock: one process writes a run folder at a time; a killed holder leaves no lock."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.runlock import LOCK_NAME, FolderInUse, exclusive

HOLD = (
    "import sys\n"
    "from engine.runlock import exclusive\n"
    "with exclusive(sys.argv[1], 'engine train', sys.argv[2]):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"  # until killed, or its test's process gone (not 60 s: a slow test)
)


@contextlib.contextmanager
def _hold(folder: Path, name: str = LOCK_NAME) -> Iterator[subprocess.Popen]:
    """A process holding ``folder``'s lock file ``name`` while the block runs, then killed
    (SIGKILL, as a crash would: no cleanup runs)."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        _killed(proc)


def _killed(*procs: subprocess.Popen) -> None:
    """``procs`` killed (SIGKILL, as a crash would: no cleanup runs) and reaped, their pipes
    closed (else ResourceWarnings, python -X dev)."""
    for proc in procs:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _linked_copy(original: Path, copy: Path, *names: str) -> None:
    """``copy`` made, holding hard links to ``original``'s ``names`` (``cp -al``, an ``rsync
    --link-dest`` snapshot)."""
    copy.mkdir()
    for name in names:
        os.link(original / name, copy / name)


def test_a_second_process_is_refused_until_the_first_is_killed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with _hold(run) as holder:
        with pytest.raises(FolderInUse) as e, exclusive(run, "engine train"):
            pass
        message = str(e.value)
        assert message.startswith(f"{run}: in use by engine train (pid {holder.pid} on ")
        assert "\n" not in message and "give another output folder" in message
        with exclusive(run, "engine label", ".lock-shard1of2"):  # another lock file: free
            pass
    with exclusive(run, "engine train") as folder:  # the OS released it with the process
        assert folder == run and "engine train" in (run / LOCK_NAME).read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_copy_sharing_the_lock_file_by_a_hard_link_is_not_held_by_the_original(tmp_path):
    """A run folder copied with ``cp -al`` (an ``rsync --link-dest`` snapshot) shared its lock
    file with the original: a run in the original held the copy too (a run there was refused,
    'in use'), and each run wrote its record into the other's lock file. A run now parts them."""
    original, copy = tmp_path / "run", tmp_path / "copy"
    with exclusive(original, "engine train"):
        (original / "last.pt").write_bytes(b"x")  # something in it: the lock file is kept
    _linked_copy(original, copy, LOCK_NAME)
    before = (original / LOCK_NAME).read_bytes()
    with exclusive(copy, "engine fuse"):
        with exclusive(original, "engine label"):  # not held by the copy's run
            pass
        with pytest.raises(FolderInUse), exclusive(copy, "engine fuse"):  # its own lock: held
            pass
    assert "engine label" in (original / LOCK_NAME).read_text() != before.decode()
    assert "engine fuse" in (copy / LOCK_NAME).read_text()
    assert os.stat(copy / LOCK_NAME).st_nlink == 1
    assert sorted(p.name for p in copy.iterdir()) == [LOCK_NAME]


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_copy_made_while_the_original_runs_is_neither_held_by_it_nor_holds_it(tmp_path):
    """``cp -al`` of a run folder while its run goes on (a snapshot of a training run): the
    copy's lock file is the live run's, held. Before, the copy was taken as written by that
    run: a command there was refused ("in use by engine train ...") and a reader of it
    (``writer``: engine info, evaluate) waited for a run of another folder, until it ended. The
    lock record names the folder locked, so the copy is told apart and gets its own lock file;
    the original stays held."""
    from engine.runlock import writer

    original, copy = tmp_path / "run", tmp_path / "copy"
    with _hold(original) as holder:
        (original / "last.pt").write_bytes(b"x")
        _linked_copy(original, copy, LOCK_NAME, "last.pt")
        assert writer(copy) is None
        assert (writer(original) or "").startswith(f"engine train (pid {holder.pid} ")
        with exclusive(copy, "engine fuse"):
            assert os.stat(copy / LOCK_NAME).st_nlink == 1  # its own now
            assert (writer(copy) or "").startswith("engine fuse")
            in_use = pytest.raises(FolderInUse, match=f"pid {holder.pid} ")
            with in_use, exclusive(original, "engine label"):  # the original's run holds it
                pass
        assert "engine fuse" in (copy / LOCK_NAME).read_text()
        assert "engine train" in (original / LOCK_NAME).read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_run_refused_in_a_hard_linked_copy_keeps_the_copys_lock_record(tmp_path):
    """A run that fails before changing a ``cp -al`` copy of a finished run puts back the
    record it found, as in any folder (engine.runlock.exclusive), in the copy's own lock file.
    Before, the record was read from the copy's new, empty lock file (made by _own_lock before
    the read): the refusal left the copy's .lock empty, the finished run's record lost."""
    original, copy = tmp_path / "run", tmp_path / "copy"
    with exclusive(original, "engine train"):
        (original / "last.pt").write_bytes(b"x")
    record = (original / LOCK_NAME).read_bytes()
    _linked_copy(original, copy, "last.pt", LOCK_NAME)
    with pytest.raises(ValueError), exclusive(copy, "engine fuse"):
        raise ValueError("bad input")
    assert (copy / LOCK_NAME).read_bytes() == record
    assert os.stat(copy / LOCK_NAME).st_nlink == 1  # parted from the original's all the same
    assert (original / LOCK_NAME).read_bytes() == record


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_run_refused_in_a_copy_made_while_the_original_runs_keeps_the_copys_lock_record(
    tmp_path,
):
    """As above, the copy made while the original's run goes on (its lock file held by that
    run): the record is read before the copy's own lock file is made, from the held file, and
    a refusal puts it back whole, every byte of it."""
    original, copy = tmp_path / "run", tmp_path / "copy"
    with _hold(original):
        (original / "last.pt").write_bytes(b"x")
        record = (original / LOCK_NAME).read_bytes()
        _linked_copy(original, copy, LOCK_NAME, "last.pt")
        with pytest.raises(ValueError), exclusive(copy, "engine fuse"):
            raise ValueError("bad input")
        assert (copy / LOCK_NAME).read_bytes() == record
        assert os.stat(copy / LOCK_NAME).st_nlink == 1  # parted from the original's


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
@pytest.mark.parametrize("fails", ["replace", "open"])
def test_a_hard_linked_lock_file_that_cannot_be_replaced_is_kept_and_locked(
    tmp_path, monkeypatch, fails
):
    """Where the copy's own lock file cannot be made or take the name (engine.runlock._own_lock),
    the run goes on holding the shared file, as before, and no new file is left."""
    original, copy = tmp_path / "run", tmp_path / "copy"
    with exclusive(original, "engine train"):
        (original / "last.pt").write_bytes(b"x")
    _linked_copy(original, copy, LOCK_NAME)
    real = getattr(os, fails)

    def refuse(src, *args, **kwargs):
        if str(src).endswith(".new"):
            raise OSError(13, "Permission denied")
        return real(src, *args, **kwargs)

    monkeypatch.setattr(os, fails, refuse)
    with exclusive(copy, "engine fuse"):
        assert sorted(p.name for p in copy.iterdir()) == [LOCK_NAME]
        with pytest.raises(FolderInUse), exclusive(original, "engine label"):  # shared: held
            pass
        (copy / "a.png").write_bytes(b"x")
    assert os.stat(copy / LOCK_NAME).st_nlink == 2
    assert '"command": "engine fuse"' in (original / LOCK_NAME).read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_run_refused_in_a_symlinked_copy_keeps_the_lock_record(tmp_path):
    """A run that fails before changing a ``cp -rs`` copy of a finished run leaves its ``.lock``
    holding the finished run's record, as a ``cp -al`` copy and a ``cp -r`` copy do (and as in
    any folder). Before the fifty-third round the link became an empty file of the copy's own
    (``own_file(keep=False)``) and the refusal put back that nothing: the record was lost."""
    original, copy = tmp_path / "run", tmp_path / "copy"
    with exclusive(original, "engine train"):
        (original / "last.pt").write_bytes(b"x")
    record = (original / LOCK_NAME).read_bytes()
    copy.mkdir()
    (copy / "last.pt").symlink_to(original / "last.pt")
    (copy / LOCK_NAME).symlink_to(original / LOCK_NAME)
    with pytest.raises(ValueError), exclusive(copy, "engine fuse"):
        raise ValueError("bad input")
    assert not (copy / LOCK_NAME).is_symlink()  # parted from the original's all the same
    assert (copy / LOCK_NAME).read_bytes() == record
    assert (original / LOCK_NAME).read_bytes() == record
    assert sorted(p.name for p in copy.iterdir()) == [LOCK_NAME, "last.pt"]


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_copy_whose_lock_file_is_a_symlink_is_not_held_by_the_original(tmp_path):
    """A run folder copied as a tree of links (``cp -rs``) has a ``.lock`` that is a symbolic
    link to the original's: a run in the copy held the original (a run there was refused, 'in
    use') and wrote its record into the original's lock file. The copy's run now makes a lock
    file of its own in place of the link."""
    original, copy = tmp_path / "run", tmp_path / "copy"
    with exclusive(original, "engine train"):
        (original / "last.pt").write_bytes(b"x")  # something in it: the lock file is kept
    copy.mkdir()
    (copy / LOCK_NAME).symlink_to(original / LOCK_NAME)
    before = (original / LOCK_NAME).read_bytes()
    with exclusive(copy, "engine fuse"):
        assert (original / LOCK_NAME).read_bytes() == before  # nothing written through
        with exclusive(original, "engine label"):  # not held by the copy's run
            pass
    assert "engine fuse" in (copy / LOCK_NAME).read_text()
    assert not (copy / LOCK_NAME).is_symlink()
    assert sorted(p.name for p in copy.iterdir()) == [LOCK_NAME]


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_copy_whose_lock_file_is_a_symlink_runs_while_the_original_runs(tmp_path):
    """The link was replaced only once its file was locked: while a run in the original held
    its lock, a run in the copy (``cp -rs``) was refused, naming the original's process. The
    link now becomes the copy's own file first."""
    original, copy = tmp_path / "run", tmp_path / "copy"
    with exclusive(original, "engine train"):
        (original / "last.pt").write_bytes(b"x")
    copy.mkdir()
    (copy / LOCK_NAME).symlink_to(original / LOCK_NAME)
    with exclusive(original, "engine label"):
        held = (original / LOCK_NAME).read_bytes()
        with exclusive(copy, "engine fuse"):
            assert '"command": "engine fuse"' in (copy / LOCK_NAME).read_text()
            with pytest.raises(FolderInUse), exclusive(copy, "engine fuse"):  # its own: held
                pass
        assert (original / LOCK_NAME).read_bytes() == held
    assert not (copy / LOCK_NAME).is_symlink()
    assert sorted(p.name for p in copy.iterdir()) == [LOCK_NAME]
    assert sorted(p.name for p in original.iterdir()) == [LOCK_NAME, "last.pt"]


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_lock_file_linked_to_nothing_becomes_the_folders_own(tmp_path):
    """A copy (``cp -rs``) whose original was moved away: its ``.lock`` links to nothing. Opened
    through the link, it made a lock file in the original's folder where that folder was still
    there, and otherwise failed ('copy/.lock: No such file or directory', exit 2)."""
    old = tmp_path / "old"
    old.mkdir()
    for copy, target in (
        (tmp_path / "c1", old / LOCK_NAME),
        (tmp_path / "c2", tmp_path / "gone" / LOCK_NAME),
    ):
        copy.mkdir()
        (copy / LOCK_NAME).symlink_to(target)
        with exclusive(copy, "engine fuse"):
            (copy / "x").write_text("x")
        assert not (copy / LOCK_NAME).is_symlink()
        assert '"command": "engine fuse"' in (copy / LOCK_NAME).read_text()
        assert sorted(p.name for p in copy.iterdir()) == [LOCK_NAME, "x"]
    assert list(old.iterdir()) == [] and not (tmp_path / "gone").exists()


def test_a_lock_file_replaced_between_open_and_lock_is_not_taken(tmp_path, monkeypatch):
    """A run that opened the shared lock file just before another run of the same folder
    replaced it by the folder's own (``_own_lock``), then locked the old file, which nobody
    holds any more: two runs in one folder. It now locks the file the name points to, and is
    refused there."""
    original, copy = tmp_path / "run", tmp_path / "copy"
    with exclusive(original, "engine train"):
        (original / "last.pt").write_bytes(b"x")
    _linked_copy(original, copy, LOCK_NAME)
    real_open, late = os.open, [True]

    def opened_before_the_swap(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if Path(path) == copy / LOCK_NAME and late:
            late.clear()
            return real_open(original / LOCK_NAME, *args, **kwargs)  # the shared file
        return real_open(path, *args, **kwargs)

    with exclusive(copy, "engine fuse"):  # parts the copy's lock from the original's
        monkeypatch.setattr(os, "open", opened_before_the_swap)
        with pytest.raises(FolderInUse), exclusive(copy, "engine label"):
            pass
        assert not late  # the stale file was opened first


def test_a_refused_run_whose_lock_file_was_removed_meanwhile_removes_the_one_it_made(
    tmp_path, monkeypatch
):
    """Two runs refused at once in an empty folder: B opened the lock file A made, A removed it
    (refused: the folder stays empty) before B locked it, and B made a new one. B took that for
    a file made by the run before and put back that run's record, none: an empty ``.lock``
    stayed in the empty folder."""
    import fcntl

    folder = tmp_path / "out"
    folder.mkdir()
    a = exclusive(folder, "engine fuse")
    a.__enter__()
    real, calls = fcntl.flock, []

    def flock(fd, op):  # noqa: ANN001, ANN202
        if not stat.S_ISDIR(os.fstat(fd).st_mode):  # a lock file's, not the folder's own
            calls.append(op)
        if len(calls) == 1:  # B's first lock: A is refused and ends meanwhile
            a.__exit__(ValueError, ValueError("A: bad input"), None)
        return real(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    with pytest.raises(ValueError, match="B"), exclusive(folder, "engine fuse"):
        raise ValueError("B: bad input")
    # the removed file, then the new one (the folder's brief lock, before the temporaries'
    # removal, is not counted)
    assert calls == [fcntl.LOCK_EX | fcntl.LOCK_NB] * 2
    assert list(folder.iterdir()) == []


def _run_then_wait(running) -> None:  # noqa: ANN001
    running.set()
    signal.pause()


def test_a_child_forked_while_the_lock_is_held_does_not_keep_it(tmp_path: Path) -> None:
    """A process forked inside the run (a DataLoader worker, which lives until its loader is
    collected) must not pin the folder's lock after the run ends: a second demo in the same
    process found its folder "in use by engine demo" now and then."""
    import multiprocessing as mp

    fork = mp.get_context("fork")
    running = fork.Event()
    with exclusive(tmp_path, "engine train"):
        child = fork.Process(target=_run_then_wait, args=(running,))
        child.start()
        assert running.wait(10)
    try:
        with exclusive(tmp_path, "engine train"):  # the run is over: free, child or not
            pass
    finally:
        child.kill()
        child.join()


_RUN_COMMANDS = [  # every command that writes a run folder, DATA and CKPT filled in per test
    ["synth"],
    ["label", "--class", "Bicycle", "--data", "DATA", "--backend", "simulated"],
    ["fuse", "--data", "DATA", "--pseudo", "DATA"],
    ["predict", "--checkpoint", "CKPT", "--images", "DATA"],
    ["demo"],
    ["train", "--data", "DATA"],
]


def _filled(command: list[str], tmp_path: Path) -> list[str]:
    """``command`` with DATA and CKPT filled in: ``tmp_path/data`` and ``tmp_path/m.pt``."""
    inputs = {"DATA": str(tmp_path / "data"), "CKPT": str(tmp_path / "m.pt")}
    return [inputs.get(a, a) for a in command]


@pytest.mark.parametrize("command", _RUN_COMMANDS)
def test_an_output_that_is_a_file_is_one_line_naming_it(tmp_path: Path, command) -> None:
    """--out naming a file: one line, the same for every command (the demo said
    "OUT/data: Not a directory", others "File exists"), and the file is left as it was."""
    out = tmp_path / "taken.txt"
    out.write_text("mine")
    (tmp_path / "data").mkdir()
    _assert_refused_as_a_file(out, _filled(command, tmp_path))


def _assert_refused_as_a_file(out: Path, args: list[str]) -> None:
    """``engine ARGS --out OUT``, ``out`` a file holding ``mine``: exit 2, the one line naming
    it, and the file left as it was."""
    from cli import app

    res = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert res.output.strip() == f"error: {out}: output exists and is not a folder", res.output
    assert out.read_text() == "mine"


_OTHER_OUTPUTS = {  # a folder as each command leaves it: its record, a file of its own
    "label run": ("run.json", "labels/test/a.png"),
    "fused dataset": ("fuse.json", "dataset.yaml"),
    "training run": ("metrics.jsonl", "last.pt"),
    "predictions": ("predict.json", "a.png"),
    "dataset": (None, "images/test/a.jpg"),
    "dataset spec": (None, "dataset.yaml"),
}
_OWN = {"label": "label run", "fuse": "fused dataset", "train": "training run",
        "predict": "predictions", "synth": None, "demo": None}  # fmt: skip


def test_an_annotated_subset_or_a_pretrain_folder_that_is_a_file_is_the_same_line(tmp_path):
    """The line of test_an_output_that_is_a_file_is_one_line_naming_it from the commands that
    hold no run folder's lock too: before, ``annotate import`` said "OUT: not a folder (the
    subset directory to write)" and ``demo-pretrain`` "OUT/data: Not a directory"
    (docs/loop.md: "in one line for every command")."""
    import numpy as np

    from annotations.labelmap import write_label
    from tests.loop_helpers import make_dataset

    out = tmp_path / "taken.txt"
    out.write_text("mine")
    data = tmp_path / "data"
    make_dataset(data, n=1, size=(48, 64))
    write_label(tmp_path / "masks" / "img000.png", np.zeros((48, 64), np.uint8))
    for args in (
        ["annotate", "import", str(tmp_path / "masks"), "--format", "png", "--class", "Bicycle",
         "--data", str(data), "--no-progress"],
        ["demo-pretrain", "--no-progress"],
    ):  # fmt: skip
        _assert_refused_as_a_file(out, args)


def test_an_output_that_is_a_broken_symbolic_link_is_one_line_naming_where_it_leads(tmp_path):
    """``--out`` a symbolic link to a folder that is not there (moved, its disk not mounted):
    check_not_a_file let it pass (``exists()`` follows the link), and the command stopped at its
    first mkdir with "OUT: File exists", which names neither the link nor where it leads. One
    line now, from a run folder's command and from annotate import alike; nothing created."""
    import numpy as np

    from annotations.labelmap import write_label
    from cli import app
    from tests.loop_helpers import make_dataset

    out = tmp_path / "out"
    out.symlink_to(tmp_path / "unmounted" / "runs")
    data = tmp_path / "data"
    make_dataset(data, n=1, size=(48, 64))
    write_label(tmp_path / "masks" / "img000.png", np.zeros((48, 64), np.uint8))
    for args in (
        ["synth", "--train", "1", "--val", "0", "--test", "0", "--size", "96x64", "--no-progress"],
        ["annotate", "import", str(tmp_path / "masks"), "--format", "png", "--class", "Bicycle",
         "--data", str(data), "--no-progress"],
    ):  # fmt: skip
        res = CliRunner().invoke(app, [*args, "--out", str(out)])
        assert res.exit_code == 2, res.output
        assert res.output.strip() == (
            f"error: {out}: output is a symbolic link to {tmp_path / 'unmounted' / 'runs'}, "
            "which is not there: create that folder or give another --out"
        ), res.output
    assert out.is_symlink() and not (tmp_path / "unmounted").exists()


@pytest.mark.parametrize("other", sorted(_OTHER_OUTPUTS))
@pytest.mark.parametrize("command", _RUN_COMMANDS)
def test_another_engine_output_or_a_dataset_is_refused_as_out(tmp_path, command, other):
    """A fusion into a label run wrote its label maps over the pseudo labels; a label run into
    a fused dataset, its pseudo labels over the fused ones; a fusion into a dataset root, a
    dataset.yaml that hid the dataset's own images. Every command that writes a run folder
    refuses another engine output or a dataset as --out, in one line naming what it is, and
    leaves it as it was; its own kind of folder it resumes or replaces as before."""
    from cli import app

    if _OWN[command[0]] == other:
        return  # its own kind: resumed (each command's tests)
    out = tmp_path / "out"
    for name in _OTHER_OUTPUTS[other]:
        if name:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text("{}")
    files = sorted(out.rglob("*"))
    (tmp_path / "data").mkdir()
    args = _filled(command, tmp_path)
    res = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    what = "a dataset's root" if other.startswith("dataset") else f"{_kind(other)}"
    assert " ".join(res.output.split()) == (
        f"error: {out}: it is {what}; engine {command[0]} needs a folder of its own: give "
        "another --out"
    ), res.output
    assert sorted(out.rglob("*")) == files


def test_a_datasets_images_or_split_folder_is_refused_as_out(tmp_path):
    """engine synth --out D/images wrote a dataset there: D gained splits named images and
    annotations. A dataset's images/ or annotations/ folder, or a split folder in one (there or
    not yet), is refused as --out by every command that writes a run folder; a folder deeper
    in (D/images/test/pred) is not."""
    from cli import app
    from engine.runlock import check_output_folder

    data = tmp_path / "data"
    (data / "images" / "test").mkdir(parents=True)
    (data / "images" / "test" / "a.jpg").write_text("x")
    files = sorted(tmp_path.rglob("*"))
    for out, what in (
        (data / "images", f"the images/ folder of the dataset {data}, whose folders are its"),
        (data / "annotations" / "test", f"a split folder of the dataset {data} (annotations/"),
    ):
        res = CliRunner().invoke(app, ["synth", "--out", str(out)])
        assert res.exit_code == 2, res.output
        assert f"error: {out}: it is {what}" in " ".join(res.output.split()), res.output
        with pytest.raises(ValueError, match="engine x needs a folder of its own"):
            check_output_folder(out, (), "engine x")
    assert sorted(tmp_path.rglob("*")) == files
    check_output_folder(data / "images" / "test" / "pred", (), "engine x")  # deeper: allowed
    check_output_folder(data / "runs", (), "engine x")  # beside the splits: allowed


def test_an_out_linked_to_a_datasets_or_an_outputs_split_folder_is_refused(tmp_path):
    """engine fuse --out runs/t, a symbolic link to the dataset's images/test, wrote a fused
    dataset in among the test images (the check read the path as typed only). An --out whose
    links lead to a dataset's images/ folder or a split folder (there or not yet), or to an
    output's split folder, is refused naming the place, nothing written; a link to a folder of
    its own is not."""
    from cli import app
    from engine.runlock import check_output_folder

    data = tmp_path / "data"
    (data / "images" / "test").mkdir(parents=True)
    (data / "images" / "test" / "a.jpg").write_text("x")
    run = tmp_path / "run"
    (run / "labels" / "test").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    links = tmp_path / "links"
    links.mkdir()
    (links / "t").symlink_to("../data/images/test")
    (links / "i").symlink_to(data / "images")
    (links / "l").symlink_to(run / "labels")
    (links / "mine").symlink_to(tmp_path / "mine")
    files = sorted(tmp_path.rglob("*"))
    via = "it is, through symbolic links,"
    for out, what in (
        (links / "t", f"{via} a split folder of the dataset {data} (images/test), whose files"),
        (links / "i", f"{via} the images/ folder of the dataset {data}, whose folders are"),
        (links / "i" / "val", f"{via} a split folder of the dataset {data} (images/val), whose"),
        (links / "l" / "x", f"{via} a split folder (labels/x) of {run}, a label run (engine"),
    ):
        res = CliRunner().invoke(app, ["synth", "--out", str(out), "--train", "1"])
        assert res.exit_code == 2, res.output
        assert " ".join(res.output.split()).startswith(f"error: {out}: {what}"), res.output
    assert sorted(tmp_path.rglob("*")) == files
    # a link to a folder of its own (one not there yet is refused, as no mkdir makes it:
    # test_an_output_that_is_a_broken_symbolic_link_is_one_line_naming_where_it_leads)
    (tmp_path / "mine").mkdir()
    check_output_folder(links / "mine", (), "engine x")
    check_output_folder(links / "t" / "pred", (), "engine x")  # deeper in a split: allowed


def test_an_out_with_dot_dot_and_no_link_is_refused_as_reached_directly(tmp_path):
    """``--out data/images/test/..`` has no symbolic link on the way, but the path as given kept
    its '..' (``absolute()`` does not fold it) and only the folded one matched: the message said
    the folder was reached "through symbolic links"."""
    from cli import app

    data = tmp_path / "data"
    (data / "images" / "test").mkdir(parents=True)
    (data / "images" / "test" / "a.jpg").write_text("x")
    run = tmp_path / "run"
    (run / "labels" / "test").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    files = sorted(tmp_path.rglob("*"))
    for out, what in (
        (data / "images/test/..", f"the images/ folder of the dataset {data}, whose folders are"),
        (data / "images/test/x/..", f"a split folder of the dataset {data} (images/test), whose"),
        (run / "labels/test/..", f"the labels/ folder of {run}, a label run (engine label), whose"),
        (run / "labels/test/x/..", f"a split folder (labels/test) of {run}, a label run (engine"),
    ):
        res = CliRunner().invoke(app, ["synth", "--out", str(out), "--train", "1"])
        assert res.exit_code == 2, res.output
        assert " ".join(res.output.split()).startswith(f"error: {out}: it is {what}"), res.output
    assert sorted(tmp_path.rglob("*")) == files


def test_an_outputs_split_folders_are_refused_as_out(tmp_path):
    """engine fuse --out RUN/labels wrote a fused dataset into a label run's labels/ folder:
    engine info then listed the run's splits "labels" and "sources". A label run's labels/,
    confidence/ or instances/ folder, a fused dataset's labels/ or sources/, a subset's masks/,
    or a split folder in one, is refused as --out (annotate import too); another folder in the
    run (RUN/review, the review's default) is not."""
    from cli import app
    from engine.runlock import check_output_folder

    run = tmp_path / "runs" / "l 中"
    (run / "labels" / "test").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (tmp_path / "fused" / "sources").mkdir(parents=True)
    (tmp_path / "fused" / "fuse.json").write_text("{}")
    files = sorted(tmp_path.rglob("*"))
    for out, what in (
        (run / "labels", f"the labels/ folder of {run}, a label run (engine label), whose folders"),
        (run / "confidence" / "val", "a split folder (confidence/val) of "),
        (tmp_path / "fused" / "sources" / "x", "a split folder (sources/x) of "),
    ):
        res = CliRunner().invoke(app, ["synth", "--out", str(out)])
        assert res.exit_code == 2, res.output
        assert f"error: {out}: it is {what}" in " ".join(res.output.split()), res.output
        with pytest.raises(ValueError, match="engine x needs a folder of its own"):
            check_output_folder(out, (), "engine x")
    res = CliRunner().invoke(
        app, ["annotate", "import", "f", "--class", "Bicycle", "--data", "d", "--out",
              str(run / "labels" / "new")],
    )  # fmt: skip
    assert res.exit_code == 2 and "a split folder (labels/new) of " in res.output, res.output
    assert sorted(tmp_path.rglob("*")) == files
    check_output_folder(run / "review", (), "engine x")  # elsewhere in the run: allowed
    check_output_folder(run / "labels" / "test" / "x", (), "engine x")  # deeper: allowed


def test_a_label_run_s_split_folders_are_its_run_folders(tmp_path, monkeypatch):
    """The folders refused in a label run are :data:`annotations.labelrun.RUN_FOLDERS`, the
    ones engine label writes and clear_outputs removes, not a copy of their names: a folder
    added there is refused as --out too."""
    import annotations.labelrun
    from engine.runlock import check_output_folder

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    monkeypatch.setattr(annotations.labelrun, "RUN_FOLDERS", ("labels", "scores"))
    with pytest.raises(ValueError, match="it is the scores/ folder of "):
        check_output_folder(run / "scores", (), "engine x")
    check_output_folder(run / "confidence", (), "engine x")  # no run folder of this one


_HOLDERS = [  # command line, --out (review, export and import read their inputs first)
    *([*c, "--out"] for c in _RUN_COMMANDS),
    ["report", "--subset", "DATA", "--out"],
]


@pytest.mark.parametrize("command", _HOLDERS)
def test_a_folder_that_holds_engine_outputs_is_refused_as_out(tmp_path, command):
    """engine label --class Car --out runs/label (for runs/label/car) wrote the run's labels/,
    instances/ and run.json beside runs/label/bicycle, and engine info runs/label then showed
    that run instead of listing the runs; the same for every command that writes a folder of
    its own. A folder that holds engine outputs is refused in one line naming them, as it was;
    a new folder in it is allowed, and so is a folder that holds other folders."""
    from cli import app
    from engine.runlock import check_output_folder

    runs = tmp_path / "runs"
    for name, record in (("bicycle", "run.json"), ("car", "run.json"), ("pred", "predict.json")):
        (runs / name).mkdir(parents=True)
        (runs / name / record).write_text("{}")
    (runs / "notes").mkdir()
    (tmp_path / "data").mkdir()
    files = {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}
    args = _filled(command, tmp_path)
    res = CliRunner().invoke(app, [*args, str(runs)])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        f"error: {runs}: it holds engine outputs (bicycle: a label run (engine label), car: a "
        f"label run (engine label), pred: a folder of predictions (engine predict)); engine {command[0]} "
        "needs a folder of its own: give another --out, e.g. a new folder in it"
    ), res.output
    assert {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")} == files
    check_output_folder(runs / "new", (), "engine x")  # a new folder in it: allowed
    check_output_folder(runs / "notes", (), "engine x")
    check_output_folder(tmp_path, (), "engine x")  # outputs two levels down: not looked for


def _kind(other: str) -> str:
    return {
        "label run": "a label run (engine label)",
        "fused dataset": "a fused dataset (engine fuse)",
        "training run": "a training run (engine train)",
        "predictions": "a folder of predictions (engine predict)",
    }[other]


def test_a_folder_the_run_created_and_left_empty_is_removed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad input"), exclusive(tmp_path / "new", "engine fuse"):
        raise ValueError("bad input")  # refused before writing anything
    assert not (tmp_path / "new").exists()
    (tmp_path / "runs" / "other").mkdir(parents=True)
    with pytest.raises(ValueError, match="bad"), exclusive(tmp_path / "runs/label/a b", "x"):
        raise ValueError("bad input")  # the parents made for it go too, up to one that was
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["other"]
    with exclusive(tmp_path / "kept", "engine fuse"):
        (tmp_path / "kept" / "out.png").write_bytes(b"x")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [LOCK_NAME, "out.png"]
    (tmp_path / "afile").write_text("x")  # a file as the folder: the command's own check
    with exclusive(tmp_path / "afile", "engine predict") as folder:
        assert folder.is_file()


def test_commands_refuse_a_folder_in_use_with_one_line(tmp_path: Path) -> None:
    from cli import app

    out = tmp_path / "pred"
    with _hold(out) as holder:
        res = CliRunner().invoke(
            app, ["predict", "--checkpoint", str(tmp_path / "m.pt"), "--images", str(tmp_path),
                  "--out", str(out), "--no-progress"],
        )  # fmt: skip
        text = " ".join(res.output.split())
        assert (
            res.exit_code == 2 and f"error: {out}: in use by engine train (pid {holder.pid}" in text
        )
        res = CliRunner().invoke(app, ["synth", "--out", str(out), "--no-progress"])
        assert res.exit_code == 2 and "in use by" in res.output


def test_writer_names_the_process_writing_a_folder_and_none_once_it_is_killed(tmp_path: Path):
    from engine.runlock import writer

    run = tmp_path / "run"
    assert writer(run) is None  # no folder
    with _hold(run, ".lock-shard0of2") as holder:  # a shard of a label run
        assert writer(run).startswith(f"engine train (pid {holder.pid} on ")
        with exclusive(run, "engine label", ".lock-shard1of2"):  # the probe took no lock
            pass
    assert writer(run) is None  # killed: nobody writes it, though its lock file stays


def test_a_folder_being_written_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """``check_not_in_use`` (``engine train --resume`` before it reads the run's records)
    refuses a folder another process holds, in exclusive's words; none once it is killed.
    Before, only a slow test (tests/engine/test_concurrent_writers.py) reached it."""
    from engine.runlock import check_not_in_use

    run = tmp_path / "run"
    check_not_in_use(run)  # no folder: nothing to refuse
    with _hold(run) as holder:
        with pytest.raises(FolderInUse) as e:
            check_not_in_use(run)
        assert str(e.value).startswith(f"{run}: in use by engine train (pid {holder.pid} on ")
    check_not_in_use(run)  # killed: free


def test_an_output_starting_with_a_tilde_the_shell_left_is_refused(tmp_path: Path, monkeypatch):
    """``--out=~/runs`` or ``--out "~/runs"``: the shell expands ~ only at the start of a word,
    so the command got a literal ~. Before, it made a folder named ~ in the working directory
    (which a later ``rm -rf ~`` meant for it would take as the home folder); an input path
    starting with one says the same when it is not found."""
    from typer.testing import CliRunner

    from cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for args in (["synth", "--out=~/data"], ["info", "~/data"]):
        res = CliRunner().invoke(app, [*args, "--no-progress"] if args[0] == "synth" else args)
        assert res.exit_code == 2, res.output
        said = " ".join(res.output.split())
        assert said.endswith(
            "the shell expands ~ only at the start of a word, not in quotes nor after --opt=: "
            f"give {tmp_path / 'home' / 'data'}"
        ), said
    assert said.startswith("error: ~/data: not found;")  # engine info's: any kind it takes
    assert list(tmp_path.iterdir()) == []  # no folder named ~
    for args in (  # file outputs and the subset folder, refused before their inputs are read
        ["evaluate", "--pred", "p", "--gt", "g", "--json=~/e.json"],
        ["compare", "--class", "Bicycle", "--gt", "g", "--source", "a=p", "--markdown", "~/m"],
        ["info", "d", "--plot=~/s.png"],
        ["annotate", "import", "f", "--class", "Bicycle", "--data", "d", "--out=~/subset"],
    ):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2 and "would make a folder named ~ here" in res.output, args
    assert list(tmp_path.iterdir()) == []


def test_a_library_callers_output_starting_with_a_tilde_is_refused_too(tmp_path, monkeypatch):
    """Python expands no ~: ``evaluate(EvaluateConfig(..., json_out=Path("~/r.json")))`` wrote
    ``./~/r.json``, making the folder named ~ that the CLI refuses (its check only)."""
    from engine.compare import CompareConfig, compare
    from engine.evaluate import EvaluateConfig, evaluate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    calls = [
        lambda: evaluate(EvaluateConfig(Path("p"), Path("g"), json_out=Path("~/e.json"))),
        lambda: compare(
            CompareConfig("Bicycle", Path("g"), (("a", Path("p")),), plot_out=Path("~/c.png"))
        ),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="would make a folder named ~ here"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_a_library_callers_report_file_named_dash_is_refused(tmp_path, monkeypatch):
    """``--json -`` is stdout on the command line, but ``EvaluateConfig(json_out="-")`` (or a
    compare's) wrote a file named ``-`` in the working directory: refused, saying what to do."""
    from engine.compare import CompareConfig, compare
    from engine.evaluate import EvaluateConfig, evaluate

    monkeypatch.chdir(tmp_path)
    calls = [
        lambda: evaluate(EvaluateConfig(Path("p"), Path("g"), json_out=Path("-"))),
        lambda: compare(CompareConfig("Bicycle", Path("g"), (("a", Path("p")),), json_out="-")),
        lambda: compare(
            CompareConfig("Bicycle", Path("g"), (("a", Path("p")),), markdown_out=Path("-"))
        ),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="^-: engine .* writes stdout for '-' on the command"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_a_disk_too_full_for_the_holders_record_still_runs_and_locks(tmp_path, monkeypatch):
    """The lock file's record (who holds it) is a few bytes the disk may have no room for: that
    stopped every command on a full disk with "error: [Errno 28] No space left on device",
    naming no file, even one with nothing to write (a finished label run run again). The lock
    is taken all the same; a second run is told "another process" holds the folder."""
    import errno

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with (
        exclusive(tmp_path / "run", "engine label"),
        pytest.raises(FolderInUse, match="in use by another process"),
        exclusive(tmp_path / "run", "engine label"),
    ):
        pass


def test_a_rerun_removes_the_temporary_files_killed_runs_left(tmp_path: Path) -> None:
    """A run killed while writing a file leaves its atomic write's ``.NAME.*.tmp``, and no rerun
    removed them: a big run killed and resumed again and again piled them up. A run holding
    the lock of a folder it wrote before (one of its records there) removes them, in the
    folder and its subfolders, and nothing else: not another run's subfolder (its own lock
    file), not other names, not in a folder that is no output of the command, and not while a
    shard of a label run writes the folder too (its temporaries are live)."""
    run = tmp_path / "run"
    stale = [run / ".run.json.abcd1234.tmp", run / "labels/train/.a.png.x_9yz0ab.tmp"]
    kept = [
        run / ".x.tmp",
        run / "notes.tmp",
        run / "labels/train/a.png",
        run / "demo_stage/.b.png.abcd1234.tmp",
    ]
    for path in [*stale, *kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (run / "demo_stage" / LOCK_NAME).write_text("")
    with exclusive(run, "engine label", own=("run.json",)):  # no run.json: not its output
        pass
    assert all(p.exists() for p in [*stale, *kept])
    (run / "run.json").write_text("{}")
    with _hold(run, ".lock-shard1of2"):
        with exclusive(run, "engine label", own=("run.json",)):  # a shard writes it now
            pass
        assert all(p.exists() for p in [*stale, *kept])
    with exclusive(run, "engine label", own=("run.json",)):
        pass
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_run_leaves_the_temporary_file_of_a_live_write_in_its_folder(tmp_path: Path) -> None:
    """``engine compare --json RUN/c.json`` (no run lock) writing as a run of RUN starts: the
    run removed its temporary file under it as a killed run's, and the write failed. A writer
    holds a lock on its temporary file: the run leaves a held one, and removes the others."""
    from annotations.fileio import atomic_file

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    dead = run / ".a.png.abcd1234.tmp"
    dead.write_bytes(b"x")
    with atomic_file(run / "c.json") as f:
        f.write(b"scores")
        with exclusive(run, "engine label", own=("run.json",)):
            pass
        assert not dead.exists() and len(list(run.glob(".c.json.*.tmp"))) == 1
    assert (run / "c.json").read_bytes() == b"scores"


def test_a_rerun_removes_the_temporary_files_of_a_run_killed_before_its_first_file(
    tmp_path: Path,
) -> None:
    """``engine synth`` killed while writing its first file (``synth.partial.json``, kill
    point 1 of the crash-injection round's sweep) left ``.synth.partial.json.*.tmp`` beside
    its lock file and no record: the rerun, finding none of its records, kept the temporary
    file in the finished dataset for good. A folder holding nothing but hidden entries was
    written by no run whole: its temporaries are removed; not while a shard writes it."""
    out = tmp_path / "data"
    stale = out / ".synth.partial.json.abcd1234.tmp"
    out.mkdir()
    (out / LOCK_NAME).write_text("")
    with _hold(out, ".lock-shard1of2"):
        stale.write_bytes(b"{")  # after the shard took its lock (it would have removed it)
        with exclusive(out, "engine synth", own=("synth.json", "synth.partial.json")):
            pass
        assert stale.exists()
    with exclusive(out, "engine synth", own=("synth.json", "synth.partial.json")):
        pass
    assert not stale.exists()


def test_a_folder_holding_a_hidden_folder_is_not_taken_for_a_killed_runs(
    tmp_path: Path,
) -> None:
    """A folder holding nothing but hidden entries is taken for one a run was killed in before
    its first file (its temporaries removed, in it and its subfolders): not where one of them
    is a folder (a new git repository's ``.git``, a ``.venv``, given as ``--out``), which no
    run killed that early made: before, the walk went into the user's folders and removed
    every file there named as a temporary file (another tool's, maybe being written now)."""
    out = tmp_path / "project"
    users = [out / ".git" / ".COMMIT_EDITMSG.abcd1234.tmp", out / ".venv" / ".x.py.k2_9ab01.tmp"]
    for path in users:
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    with exclusive(out, "engine synth", own=("synth.json", "synth.partial.json")):
        pass
    assert all(p.exists() for p in users)


def test_a_rerun_leaves_the_hidden_folders_of_an_output_under_version_control(
    tmp_path: Path,
) -> None:
    """A synth dataset that is itself a git or DVC repository holds its record and ``.git``,
    ``.dvc``, ``.venv``: the rerun's cleanup walked into them (slow on a big ``.git``) and
    removed a file there named like a temporary file (another tool's, maybe being written).
    Its own temporaries go, in the folder, a plain subfolder and a staging folder of its own."""
    from engine.runlock import temporaries

    out = tmp_path / "data"
    users = [
        out / ".git" / "objects" / ".pack.idx.abcd1234.tmp",
        out / ".dvc" / "tmp" / ".lock.json.x_9yz0ab.tmp",
        out / ".venv" / ".x.py.k2_9ab01.tmp",
    ]
    stale = [
        out / ".synth.json.abcd1234.tmp",
        out / "images" / "train" / ".a.png.abcd1234.tmp",
        out / ".export.new-ab_cd123" / ".coco.json.abcd1234.tmp",
    ]
    for path in [*users, *stale]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (out / "synth.json").write_text("{}")
    assert temporaries(out) == sorted(stale)
    with exclusive(out, "engine synth", own=("synth.json", "synth.partial.json")):
        pass
    assert all(p.exists() for p in users) and not any(p.exists() for p in stale)


def test_a_folder_that_cannot_be_listed_is_still_locked(tmp_path: Path, monkeypatch) -> None:
    """A drop-box ``--out`` (``chmod 333``: files go in, the folder cannot be listed, as root's
    can; simulated) is locked and run in, as before the crash-injection round: whether it holds
    nothing but hidden files is unknown there, and its temporaries are kept. Before, the run
    stopped at the lock with ``PermissionError`` of a listing it never needed."""
    out, real_scandir = tmp_path / "dropbox", os.scandir
    out.mkdir()
    stale = out / ".synth.partial.json.abcd1234.tmp"
    stale.write_bytes(b"{")

    def unreadable(path=".") -> object:  # noqa: ANN001
        if Path(path) == out:
            raise PermissionError(13, os.strerror(13), str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", unreadable)
    with exclusive(out, "engine synth", own=("synth.json", "synth.partial.json")):
        (out / "synth.json").write_text("{}")
    assert stale.exists()


def _run_with_a_killed_runs_temporary(tmp_path: Path) -> tuple[Path, Path]:
    """A label run's folder (its run.json) holding the temporary file of a write that a killed
    run left: (the folder, that file)."""
    run = tmp_path / "run"
    stale = run / "labels/train/.a.png.x_9yz0ab.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    (run / "run.json").write_text("{}")
    return run, stale


def test_a_shard_alone_removes_the_temporary_files_and_not_while_another_runs(
    tmp_path: Path,
) -> None:
    """A sharded label run whose killed shard was rerun to the end kept that shard's temporary
    files (only a run without --shard removed them), and engine info's note stayed. A shard
    removes them while no other shard (nor a run beside them) holds a lock file of the folder;
    while one does, they may be its live ones, and stay."""
    run, stale = _run_with_a_killed_runs_temporary(tmp_path)
    for other in (".lock-shard0of2", LOCK_NAME):
        with _hold(run, other):
            with exclusive(run, "engine label", ".lock-shard1of2", own=("run.json",)):
                pass
            assert stale.exists(), other
    with exclusive(run, "engine label", ".lock-shard1of2", own=("run.json",)):
        pass
    assert not stale.exists()


def test_removing_temporaries_says_how_many_it_removed(tmp_path: Path) -> None:
    """``remove_temporaries`` returns how many files it removed (the count its log line
    gives): none while another shard's lock file is held, the killed run's one alone."""
    from engine.runlock import remove_temporaries

    run, stale = _run_with_a_killed_runs_temporary(tmp_path)
    with _hold(run, ".lock-shard0of2"):
        assert remove_temporaries(run, ".lock-shard1of2") == 0 and stale.exists()
    assert remove_temporaries(run, ".lock-shard1of2") == 1 and not stale.exists()


@pytest.mark.parametrize(
    "name, words",
    [
        (".lock-shard1of2", " as shard 1/2"),
        (".lock-shard12of16", " as shard 12/16"),
        (LOCK_NAME, ""),
        (".lock-shardxof2", ""),
        (".lock-shard1", ""),
    ],
)
def test_a_shards_lock_file_is_named_as_its_shard_by_the_public_helper(name, words) -> None:
    """``engine info`` names a shard's last writer as ``check_alone`` names a live one: through
    runlock's public ``as_shard`` (before, info imported the private ``_as_shard``)."""
    from engine.runlock import as_shard

    assert as_shard(name) == words


def test_a_shard_starting_as_another_removes_temporaries_keeps_the_new_shards_files(
    tmp_path: Path, monkeypatch
) -> None:
    """Two shards of a label run starting at one instant: shard 0 found no other shard's lock
    held and walked the folder for killed runs' temporaries; shard 1 took its lock meanwhile
    and began writing (its run.json's ``.run.json.*.tmp``), which shard 0's walk listed and
    removed: shard 1's write failed. A shard now passes a brief lock on the folder once it
    holds its own, which the removal holds: shard 1 writes once shard 0 has removed. Forced
    here: shard 1 starts (a thread, its own lock file) once shard 0 has checked, before it
    walks."""
    import threading
    import time

    from engine import runlock
    from engine.runlock import leftovers

    run, stale = _run_with_a_killed_runs_temporary(tmp_path)
    live = run / ".run.json.live0001.tmp"
    wrote = threading.Event()

    def shard1() -> None:
        with exclusive(run, "engine label", ".lock-shard1of2", own=("run.json",)):
            live.write_bytes(b"{}")  # its first write going on
            wrote.set()
            time.sleep(0.5)  # still writing while shard 0 goes on

    real, other = leftovers.temporaries, threading.Thread(target=shard1)

    def walked_once_shard1_started(folder):  # noqa: ANN001, ANN202
        if not other.is_alive():
            other.start()
            deadline = time.monotonic() + 10
            while not runlock._held_by(run / ".lock-shard1of2") and time.monotonic() < deadline:
                time.sleep(0.01)
            wrote.wait(1)  # shard 1 writing at once before the fix; waits for the walk after
        return real(folder)

    monkeypatch.setattr(leftovers, "temporaries", walked_once_shard1_started)
    with exclusive(run, "engine label", ".lock-shard0of2", own=("run.json",)):
        pass
    other.join()
    assert wrote.is_set() and live.exists() and not stale.exists()


def test_a_folder_another_program_keeps_locked_is_waited_for_a_while_not_for_ever(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    """The killed runs' temporaries are removed under a brief lock on the folder itself, which
    an engine run holds for the walk alone. Another program may hold it for longer: util-linux
    ``flock runs/x engine label --out runs/x`` locks the folder around the command itself.
    Before, the run waited for it with no timeout: the command waited for the lock its own
    wrapper held, for ever, and said nothing. It now waits a while (``FOLDER_LOCK_WAIT_S``),
    says so, and goes on without it, as where the file system takes no locks."""
    import fcntl
    import threading

    from annotations import fileio

    monkeypatch.setattr(fileio.appends, "FOLDER_LOCK_WAIT_S", 0.3, raising=False)
    run, stale = _run_with_a_killed_runs_temporary(tmp_path)
    wrapper = os.open(run, os.O_RDONLY)  # as flock(1) holds it around the command
    fcntl.flock(wrapper, fcntl.LOCK_EX)
    ran = threading.Event()

    def command() -> None:
        with exclusive(run, "engine label", own=("run.json",)):
            ran.set()

    started = threading.Thread(target=command, daemon=True)
    try:
        started.start()
        started.join(10)
        held_on = started.is_alive()
    finally:
        os.close(wrapper)  # a command still waiting (before the fix) goes on and ends
        started.join(10)
    assert not held_on and ran.is_set(), "the run waited for the folder's lock for ever"
    assert not stale.exists()  # alone in the folder: its killed runs' temporaries removed
    assert f"{run}: another process holds a lock on the folder itself" in caplog.text


def _spawned_holder(locks: list) -> None:
    """A process spawned to write a run (as ``engine train --processes``' ranks are): holds
    the locks passed to it, then starts a command the way ``os.system`` does (no descriptor
    closed), which exits 3 if it got a passed lock's descriptor."""
    from engine.runlock import hold_passed

    hold_passed(locks)
    probe = (
        "import os, sys\n"
        "def lock(fd):\n"
        "    try:\n"
        "        return os.readlink(f'/proc/self/fd/{fd}').endswith('/.lock')\n"
        "    except OSError:\n"
        "        return False\n"
        f"sys.exit(3 if any(lock(fd) for fd in {locks!r}) else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], close_fds=False, check=False)
    sys.exit(done.returncode)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads descriptors from /proc")
def test_a_spawned_writer_s_passed_locks_are_not_inherited_by_the_commands_it_runs(
    tmp_path: Path,
) -> None:
    """A rank holds the run folder's lock its parent passed it (``passed_locks``) until it
    ends, and no longer: the descriptor is not inherited by a command it starts, as the
    parent's own lock is not (``os.open``'s). Before, it came inheritable (multiprocessing
    passes descriptors so), and a command started without closing them (``os.system``) kept
    the folder locked after the run ended, for as long as it ran."""
    import multiprocessing

    from engine.runlock import passed_locks

    with exclusive(tmp_path / "run", "engine train"):
        rank = multiprocessing.get_context("spawn").Process(
            target=_spawned_holder, args=(passed_locks(),)
        )
        rank.start()
        try:
            rank.join(120)
        finally:
            if rank.is_alive():  # none left behind
                rank.kill()
                rank.join()
    assert rank.exitcode == 0, rank.exitcode


SPAWNING_HOLDER = (  # a run whose spawned writer holds its lock too, as engine train's ranks
    "import multiprocessing, os, sys, time\n"
    "from engine.runlock import exclusive, hold_passed, passed_locks\n"
    "def rank(locks, holding):\n"
    "    hold_passed(locks)\n"
    "    holding.send(True)\n"
    "    time.sleep(120)\n"  # ended by its test (no watchdog: the kill below is its parent's)
    "if __name__ == '__main__':\n"
    "    spawn = multiprocessing.get_context('spawn')\n"
    "    told, holding = spawn.Pipe(duplex=False)\n"  # no semaphore left to a killed parent
    "    with exclusive(sys.argv[1], 'engine train'):\n"
    "        p = spawn.Process(target=rank, args=(passed_locks(), holding))\n"
    "        p.start()\n"
    "        assert told.poll(120) and told.recv()\n"
    "        print(p.pid, flush=True)\n"
    "        sys.stdin.read()\n"
)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="tells a process gone from /proc")
def test_a_rerun_refused_by_a_rank_of_a_killed_run_is_not_told_the_dead_run_holds_it(
    tmp_path: Path,
) -> None:
    """After ``engine train --processes 2``'s parent is killed (SIGKILL), its ranks hold the run
    folder's lock until their watchdog ends them (``passed_locks``), and write no lock record:
    a rerun in that time was refused "in use by engine train (pid P ...)", P the dead parent.
    It is told a process that run spawned holds it, and ends within seconds; engine info's
    writer says the same."""
    from engine.runlock import writer

    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "spawning_holder.py"
    script.write_text(SPAWNING_HOLDER)
    run = tmp_path / "run"
    parent = subprocess.Popen(
        [sys.executable, str(script), str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    rank = None
    try:
        assert parent.stdout is not None
        rank = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        with pytest.raises(FolderInUse) as e, exclusive(run, "engine train"):
            pass
        said = (
            f"{run}: in use by process {rank}, spawned by engine train (pid {parent.pid} on "
            f"{socket.gethostname()}, since "
        )
        assert str(e.value).startswith(said), str(e.value)
        assert (
            ") to write it (ranks of engine train --processes: that run has ended, and its "
            "ranks end within seconds of it); two runs writing one folder" in str(e.value)
        )
        assert writer(run) == str(e.value).split("in use by ")[1].split("; two runs")[0]
    finally:
        if rank is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rank, signal.SIGKILL)
        _killed(parent)
    for _ in range(100):  # the rank gone (reaped by init), the folder is free
        if writer(run) is None:
            break
        time.sleep(0.1)
    with exclusive(run, "engine train"):
        pass


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds holders in /proc")
def test_the_processes_holding_a_lock_are_found_by_their_fd_links_not_a_stat_of_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_open_here`` (naming the ranks that hold a killed run's lock) stat'ed every open file
    of every process it may read: a socket, a pipe, a file on another mount, each one, and an
    ``os.stat`` of a file on a hung NFS mount blocks (the rerun's refusal would hang with it).
    It reads each descriptor's link (``/proc/PID/fd/N``, which touches no file system) and
    stats only those naming the lock file."""
    from engine.runlock import _open_here

    lock, other = tmp_path / ".lock", tmp_path / "other.txt"
    lock.write_text("")
    other.write_text("")
    holds = (
        "import fcntl, sys; a, b = open(sys.argv[1]), open(sys.argv[2]); "
        "fcntl.flock(b, fcntl.LOCK_EX); print(1, flush=True); input()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", holds, str(other), str(lock)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    fd = os.open(lock, os.O_RDONLY)
    try:
        assert child.stdout is not None and child.stdout.readline() == "1\n"
        stat, statted = os.stat, []

        def spy(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            statted.append(str(path))
            return stat(path, *args, **kwargs)

        with monkeypatch.context() as m:
            m.setattr(os, "stat", spy)
            found = _open_here(fd)
        assert found == [child.pid]
        looked = [p for p in statted if p.startswith("/proc/")]
        assert len(looked) == 1 and looked[0].startswith(f"/proc/{child.pid}/fd/"), looked
    finally:
        os.close(fd)
        _killed(child)


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="finds holders in /proc")
def test_a_process_with_the_lock_file_open_but_not_its_lock_is_not_named_a_holder(
    tmp_path: Path,
) -> None:
    """Another command probing the folder (``engine info``, a second rerun) has the lock file
    open for an instant without holding the lock: ``_open_here`` named it among the killed
    run's ranks. Only a descriptor whose lock ``/proc/PID/fdinfo/N`` shows holds it."""
    from engine.runlock import _open_here

    lock = tmp_path / ".lock"
    lock.write_text("")
    opens = "import fcntl, sys; f = open(sys.argv[1]); print(1, flush=True); input()"
    locks = opens.replace("; print", "; fcntl.flock(f, fcntl.LOCK_EX); print")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(lock)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for code in (opens, locks)
    ]
    fd = os.open(lock, os.O_RDONLY)
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "1\n"
        assert _open_here(fd) == [children[1].pid]
    finally:
        os.close(fd)
        _killed(*children)


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="finds holders in /proc")
def test_finding_a_holder_in_proc_leaves_no_listing_of_its_descriptors_open(
    tmp_path: Path,
) -> None:
    """``_open_here`` stopped reading a holder's ``/proc/PID/fd`` at the lock's descriptor and
    left that listing open: a descriptor held until the iterator was collected, and a
    ResourceWarning (python -X dev) for each holder found."""
    import gc
    import warnings

    from engine.runlock import _open_here

    lock = tmp_path / ".lock"
    lock.write_text("")
    locks = "import fcntl, sys; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); print(1)"
    child = subprocess.Popen(
        [sys.executable, "-c", f"{locks}; sys.stdout.flush(); input()", str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    fd = os.open(lock, os.O_RDONLY)
    try:
        assert child.stdout is not None and child.stdout.readline() == "1\n"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            assert _open_here(fd) == [child.pid]
            gc.collect()
        assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught
    finally:
        os.close(fd)
        _killed(child)


NAMESPACED_HOLDER = (  # a run in a pid namespace of its own (a container), seen from outside
    "import os, sys\n"
    "from engine.runlock import exclusive\n"
    "with exclusive(sys.argv[1], 'engine train'):\n"
    "    print(os.getpid(), flush=True)\n"
    "    sys.stdin.read()\n"
)


def test_a_live_run_of_another_pid_namespace_is_not_told_an_ended_run_s_ranks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run in a container that shares the host's name (``docker --network host``) writes its
    pid as its namespace numbers it; on the host that number may be free, and the host's
    ``/proc`` shows the container's processes, the run's own among them. A rerun on the host
    was told "in use by process P, spawned by engine train (pid 1 ...) ...: that run has
    ended", of a run going on. The process that is the record's pid inside its namespace
    (``NSpid``) is the run itself: the record's words are kept."""
    import engine.parallel
    from engine.runlock import writer

    root = Path(__file__).resolve().parents[2]
    run = tmp_path / "run"
    command = ["unshare", "--pid", "--kill-child", sys.executable, "-c", NAMESPACED_HOLDER]
    try:
        holder = subprocess.Popen(
            [*command, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            stderr=subprocess.DEVNULL, cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        )  # fmt: skip
    except OSError:
        pytest.skip("no unshare here")
    try:
        assert holder.stdout is not None and holder.stdin is not None
        pid = holder.stdout.readline().strip()
        if not pid:
            pytest.skip("unshare --pid is not permitted here")
        monkeypatch.setattr(engine.parallel, "process_gone", lambda p: p == int(pid))
        with pytest.raises(FolderInUse) as e, exclusive(run, "engine train"):
            pass
        said = f"{run}: in use by engine train (pid {pid} on {socket.gethostname()}, since "
        assert str(e.value).startswith(said), str(e.value)
        assert writer(run) == str(e.value).split("in use by ")[1].split("; two runs")[0]
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        try:
            holder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_failed_run_that_wrote_a_file_or_beside_a_shard_keeps_new_empty_folders(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "data.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="late"), exclusive(out, "engine train"):
        (out / "last.pt").write_bytes(b"ckpt")  # the run changed the folder
        (out / "notes").mkdir()  # the user's, made in another shell meanwhile
        raise ValueError("late failure")
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "data.bin", "last.pt", "notes"]
    label = tmp_path / "label"
    label.mkdir()
    with exclusive(label, "engine label", ".lock-shard1of2"):  # shard 1 runs beside shard 0
        with pytest.raises(RuntimeError), exclusive(label, "engine label", ".lock-shard0of2"):
            (label / "labels" / "Car" / "val").mkdir(parents=True)  # shard 1's, file not yet in
            raise RuntimeError("shard 0 fails")
        assert (label / "labels" / "Car" / "val").is_dir()


def test_a_failed_run_removes_only_the_new_empty_folders_it_made(tmp_path: Path) -> None:
    out = tmp_path / "review"
    (out / "before" / "inner").mkdir(parents=True)  # the user's empty folders, there before
    with pytest.raises(OSError, match="full"), exclusive(out, "engine review"):
        (out / "thumbs" / "a" / "b").mkdir(parents=True)  # made for files never written
        raise OSError(28, "No space left on device (full)")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["before", "before/inner"]
    out = tmp_path / "report"
    out.mkdir()
    with pytest.raises(OSError, match="full"), exclusive(out, "engine report"):
        (out / "overlays").mkdir()
        (out / "overlays" / "a.png").write_bytes(b"x")  # the run's work: everything stays
        (out / "empty").mkdir()
        raise OSError(28, "No space left on device (full)")
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "empty", "overlays"]
    out = tmp_path / "stopped"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt), exclusive(out, "engine review"):
        (out / "thumbs").mkdir()  # Ctrl-C (SIGTERM alike) removes nothing
        raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "thumbs"]
    out = tmp_path / "label"
    out.mkdir()
    with (
        exclusive(out, "engine label", ".lock-shard1of2"),  # held by shard 1 throughout
        pytest.raises(ValueError),
        exclusive(out, "engine label", ".lock-shard0of2"),
    ):
        (out / "labels").mkdir()  # shard 1's, its first file about to go in
        raise ValueError("shard 0 fails")
    assert sorted(p.name for p in out.iterdir()) == [".lock-shard0of2", ".lock-shard1of2", "labels"]


def test_without_flock_a_failed_run_keeps_its_empty_folders(tmp_path: Path, monkeypatch) -> None:
    """Where fcntl does not exist (Windows) the failure clean-up is not done: nothing tells
    whether another run makes those folders (docs/foundation.md, "Windows and macOS"). A run
    that made nothing in its new folder still removes it."""
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl raises ImportError
    with pytest.raises(OSError, match="full"), exclusive(tmp_path / "new", "engine review"):
        (tmp_path / "new" / "thumbs").mkdir()
        raise OSError(28, "No space left on device (full)")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "new",
        "new/thumbs",
    ]
    with pytest.raises(ValueError), exclusive(tmp_path / "refused", "engine review"):
        raise ValueError("bad input")
    assert not (tmp_path / "refused").exists()


def test_a_run_where_locks_are_refused_leaves_no_lock_file(tmp_path: Path, monkeypatch, caplog):
    """Where flock fails (ENOLCK) the run goes on unlocked, with a warning, and removes the lock
    file it made: it holds no record and locks nothing (before, an empty .lock stayed beside the
    run's outputs, and alone in the folders made for a run that wrote nothing, which stayed too:
    as of a run stopped before its first file). A lock file there before is kept."""
    from tests.loop_helpers import no_locks

    no_locks(monkeypatch)
    run = tmp_path / "runs" / "car"
    with exclusive(run, "engine label") as folder:
        (folder / "run.json").write_text("{}")
    assert "cannot lock it" in caplog.text
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]
    with exclusive(tmp_path / "new" / "empty", "engine label"):  # wrote nothing: no folder left
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    with pytest.raises(ValueError), exclusive(tmp_path / "failed", "engine label"):
        raise ValueError("refused its input")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    (run / LOCK_NAME).write_text('{"command": "engine label"}')  # a locked run's record: kept
    with exclusive(run, "engine label"):
        pass
    assert (run / LOCK_NAME).read_text() == '{"command": "engine label"}'


def _refuse_new_files_in(folder: Path, monkeypatch) -> None:
    """Simulate ``folder`` without write permission, as root too (who bypasses it): creating
    a file in it fails with EACCES, as ``open(2)`` fails for any other user."""
    real_open = os.open

    def refused(path, flags, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if Path(path).parent == folder and flags & os.O_CREAT and not os.path.lexists(path):
            raise PermissionError(13, os.strerror(13), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)


def _assert_refused_naming(out: Path, args: list[str], kept: list[str]) -> None:
    """``engine ARGS --out OUT`` into a folder it may not write: exit 2, one line naming
    ``out``, and ``out`` holding the names ``kept`` only (its mode restored after)."""
    from cli import app

    try:
        res = CliRunner().invoke(app, [*args, "--out", str(out)])
    finally:
        out.chmod(0o755)
    assert res.exit_code == 2, res.output
    assert res.output.strip() == f"error: {out}: Permission denied", res.output
    assert sorted(p.name for p in out.iterdir()) == kept


@pytest.mark.parametrize("command", _RUN_COMMANDS)
@pytest.mark.parametrize("simulated", [True, False])
def test_an_out_without_write_permission_is_one_line_naming_it(
    tmp_path: Path, command, simulated, monkeypatch
) -> None:
    """An existing ``--out`` the user cannot write into: one line naming the folder, as for one
    that cannot be made, and the folder left as it was. Before, ``error: OUT/.lock: Permission
    denied``, a hidden file the user never named."""
    if not simulated and os.geteuid() == 0:
        pytest.skip("root writes into any folder: simulated by the other case")
    out = tmp_path / "shared"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (tmp_path / "data").mkdir()
    args = _filled(command, tmp_path)
    if simulated:
        _refuse_new_files_in(out, monkeypatch)
    else:
        out.chmod(0o555)
    _assert_refused_naming(out, args, ["notes.txt"])


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_lock_file_there_that_refuses_the_run_is_named_not_its_folder(tmp_path, monkeypatch):
    """A ``.lock`` left by another user's run (0644, theirs): opening it fails with EACCES,
    as root's open does not. The folder takes new files: the file refused is named, not the
    folder (a folder the user may write into, said not to be)."""
    out = tmp_path / "run"
    with exclusive(out, "engine train"):
        (out / "last.pt").write_bytes(b"x")  # something in it: the lock file is kept
    lock, real_open = out / LOCK_NAME, os.open

    def theirs(path, flags, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if Path(path) == lock and flags & os.O_RDWR:
            raise PermissionError(13, os.strerror(13), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", theirs)
    with pytest.raises(PermissionError) as e, exclusive(out, "engine train"):
        pass
    assert e.value.filename == str(lock)
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "last.pt"]


def test_a_one_file_commands_other_failures_are_raised_as_they_are(tmp_path):
    """Only a new file refused by a folder there is told as that folder: any other failure of
    the block goes on as raised, a ``ValueError`` (no file name to read) and a refusal whose
    folder cannot be seen (a folder above it not searchable) named as the file."""
    from engine.runlock import folders_removed_on_failure

    file = tmp_path / "closed" / "inner" / "scores.json"
    with pytest.raises(ValueError, match="bad"), folders_removed_on_failure(file):
        raise ValueError("bad")
    with pytest.raises(PermissionError) as e, folders_removed_on_failure(file):
        raise PermissionError(13, os.strerror(13), str(file))
    assert e.value.filename == str(file)
    assert list(tmp_path.iterdir()) == []


def test_where_there_is_no_flock_no_folder_has_a_writer(tmp_path, monkeypatch):
    """Windows has no ``fcntl``: no lock is held, so none is found (``engine info`` says no
    process writes a folder), a folder holding a lock file from a run elsewhere too; and no
    lock tells that no other process writes it (``others_writing``: a label run's manifest and
    a fusion's records are compacted only where it does)."""
    from engine.runlock import others_writing, writer, writers

    (tmp_path / LOCK_NAME).write_text("engine label (pid 1 on elsewhere)")
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl: ImportError
    assert writers(tmp_path) == {} and writer(tmp_path) is None
    assert others_writing(tmp_path) is True


_SINGLE_FILE_NAMES = {"pick": "list.txt", "evaluate": "f.json", "info": "f.png"}  # OUT's name


def _single_file_inputs(tmp_path: Path) -> dict[str, list[str]]:
    """The commands writing one file, each with inputs of its own (OUT: the file)."""
    import numpy as np

    from annotations.labelmap import write_label
    from tests.loop_helpers import disk, make_dataset, make_run

    data, run = tmp_path / "data", tmp_path / "run"
    make_dataset(data, n=2, size=(48, 64))
    make_run(run, data, {"img000": [disk(48, 64, 20, 30, 8)], "img001": []}, (48, 64))
    for folder in ("pred", "gt"):
        for i in range(2):
            write_label(tmp_path / folder / f"img{i:03d}.png", np.full((48, 64), i, np.uint8))
    scores = ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]
    return {
        "pick": ["annotate", "pick", str(run), "-n", "1", "--no-progress", "--out", "OUT"],
        "evaluate": ["evaluate", *scores, "--num-classes", "3", "--json", "OUT"],
        "info": ["info", str(data), "--no-progress", "--plot", "OUT"],
    }


@pytest.mark.parametrize("command", list(_SINGLE_FILE_NAMES))
def test_a_file_in_a_folder_without_write_permission_is_one_line_naming_the_folder(
    tmp_path: Path, command, monkeypatch
) -> None:
    """``--json F`` (``--plot F``, ``annotate pick --out F``) in a folder the user cannot
    write into names the folder, as a run folder's ``--out`` does; nothing is left. Before,
    ``pick`` said ``--out F: the folder cannot be created: FOLDER takes no new folders`` of a
    file in a folder that was there, the others named the file. Simulated (root writes into any
    folder): the file's temporary file cannot be created there."""
    from cli import app

    args = _single_file_inputs(tmp_path)[command]
    out = tmp_path / "shared"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _refuse_new_files_in(out, monkeypatch)
    target = out / _SINGLE_FILE_NAMES[command]
    res = CliRunner().invoke(app, [str(target) if a == "OUT" else a for a in args])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1] == f"error: {out}: Permission denied", res.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def _refuse_writes_in(folder: Path, monkeypatch) -> None:
    """Simulate, as root too, ``folder`` without write permission beside a file of it the user
    cannot write either (another user's ``.lock``): any open of a file in it for writing fails
    with EACCES, and ``os.access`` says the folder takes no new file."""
    real_open, real_access = os.open, os.access

    def refused(path, flags, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if Path(path).parent == folder and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise PermissionError(13, os.strerror(13), str(path))
        return real_open(path, flags, *args, **kwargs)

    def access(path, mode, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if Path(path) == folder and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("command", _RUN_COMMANDS)
@pytest.mark.parametrize("simulated", [True, False])
def test_another_users_run_folder_as_out_is_one_line_naming_it(
    tmp_path: Path, command, simulated, monkeypatch
) -> None:
    """An ``--out`` of another user's earlier run (its ``.lock`` there, theirs): one line naming
    the folder, as for one without an earlier run's lock. Before, ``error: OUT/.lock:
    Permission denied``: the lock file there was taken for the file refused."""
    if not simulated and os.geteuid() == 0:
        pytest.skip("root writes into any folder: simulated by the other case")
    out = tmp_path / "shared"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / LOCK_NAME).write_text('{"command": "engine label"}')
    (tmp_path / "data").mkdir()
    args = _filled(command, tmp_path)
    if simulated:
        _refuse_writes_in(out, monkeypatch)
    else:
        (out / LOCK_NAME).chmod(0o444)
        out.chmod(0o555)
    _assert_refused_naming(out, args, [LOCK_NAME, "notes.txt"])


@pytest.mark.parametrize("command", list(_SINGLE_FILE_NAMES))
def test_a_file_there_in_a_folder_without_write_permission_is_one_line_naming_the_folder(
    tmp_path: Path, command, monkeypatch
) -> None:
    """A rerun's ``--json F`` (``--plot F``, ``annotate pick --out F``), F there from the first
    run, in a folder the user cannot write into any more names the folder, as a new F does: the
    write replaces F by a new file made beside it. Before, ``error: F: Permission denied`` of a
    file the user may write."""
    from cli import app

    args = _single_file_inputs(tmp_path)[command]
    out = tmp_path / "shared"
    out.mkdir()
    target = out / _SINGLE_FILE_NAMES[command]
    target.write_text("first run's")
    _refuse_writes_in(out, monkeypatch)
    res = CliRunner().invoke(app, [str(target) if a == "OUT" else a for a in args])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1] == f"error: {out}: Permission denied", res.output
    assert target.read_text() == "first run's"
    assert sorted(p.name for p in out.iterdir()) == [target.name]


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_two_runs_parting_a_hard_linked_copys_lock_at_once_do_not_both_go_on(tmp_path, monkeypatch):
    """Two runs started at once in a ``cp -al`` copy (a command started twice, a requeued
    job): the first holds the shared lock file and is making the copy's own; the second finds
    the shared file held, its record naming the original (the original's finished run), takes
    it for the original's run and makes the copy's own lock file too. Before, the first then
    replaced the second's lock file by its own: both went on writing the copy. The name is
    checked and replaced under a lock on the folder, so the first finds it parted and is
    refused."""
    from engine.runlock import lock

    original, copy = tmp_path / "run", tmp_path / "copy"
    with exclusive(original, "engine train"):
        (original / "last.pt").write_bytes(b"x")  # something in it: the lock file is kept
    _linked_copy(original, copy, LOCK_NAME, "last.pt")
    own_lock, second = lock._own_lock, contextlib.ExitStack()

    def racing(fd: int, path: Path) -> int | None:
        monkeypatch.setattr(lock, "_own_lock", own_lock)
        second.enter_context(exclusive(copy, "engine fuse"))  # while the first holds the file
        return own_lock(fd, path)

    monkeypatch.setattr(lock, "_own_lock", racing)
    with second:
        with (
            pytest.raises(FolderInUse, match="in use by engine fuse"),
            exclusive(copy, "engine label"),
        ):
            pass
        assert "engine fuse" in (copy / LOCK_NAME).read_text()
    assert "engine train" in (original / LOCK_NAME).read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_folder_whose_lock_a_snapshot_shares_stays_held_for_a_run_seen_on_another_device(
    tmp_path,
):
    """A run folder on a network file system, an ``rsync --link-dest`` snapshot of it on the same
    one (its ``.lock`` shared by a hard link), and its run requeued on another node while the
    first goes on: each client numbers the mount's device its own way (NFS), so the record's
    ``folder`` names the same inode on another device. Before, the folder was taken for another
    one (the record's device differed): the second run made its own lock file and went on
    beside the first, and ``writer`` named no run. A hard link lies on one file system, so the
    inode alone tells a copy from the folder."""
    import json

    from engine.runlock import writer

    run, snapshot = tmp_path / "run", tmp_path / "snapshot"
    with exclusive(run, "engine train"):
        lock = run / LOCK_NAME
        record = json.loads(lock.read_text())
        record["folder"][0] += 1  # as the node running it numbers the device
        fd = os.open(lock, os.O_WRONLY)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        finally:
            os.close(fd)
        (run / "last.pt").write_bytes(b"x")
        _linked_copy(run, snapshot, LOCK_NAME, "last.pt")
        assert (writer(run) or "").startswith("engine train")
        with pytest.raises(FolderInUse, match="in use by engine train"), exclusive(run, "x"):
            pass
        with exclusive(snapshot, "engine fuse"):  # the snapshot is another folder: its own
            pass


def test_telling_whether_a_run_wrote_nothing_closes_the_folders_listing(tmp_path: Path) -> None:
    """``wrote_nothing`` stops at the first visible entry: its listing of the folder, left open
    there, was a ``ResourceWarning: unclosed scandir iterator`` under ``python -X dev`` (engine
    info on a dataset root holding a temporary file printed it)."""
    import warnings

    from engine.runlock import wrote_nothing

    (tmp_path / ".lock").write_text("")
    (tmp_path / "a.png").write_bytes(b"png")
    (tmp_path / "b.png").write_bytes(b"png")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert wrote_nothing(tmp_path) is False
        (tmp_path / "a.png").unlink()
        (tmp_path / "b.png").unlink()
        assert wrote_nothing(tmp_path) is True
    assert [str(w.message) for w in said] == []


@pytest.mark.parametrize("how", ["error", "ctrl-c"])
def test_a_record_set_aside_comes_back_when_the_rerun_fails_before_writing(tmp_path, how):
    """``record_set_aside`` (report.json, review.json while a rerun writes): a rerun that failed
    before writing anything new (a full disk at its first file) left the finished output's
    record aside, and engine info said the output did not finish. Nothing changed: the record
    is back, with its bytes; the temporary file of the failed write is no change."""
    from engine.runlock import record_set_aside

    out = tmp_path / "rep"
    (out / "overlays").mkdir(parents=True)
    (out / "overlays" / "a.jpg").write_bytes(b"jpeg")
    (out / "report.json").write_text('{"files": {}}')
    error = OSError(28, "No space left on device") if how == "error" else KeyboardInterrupt()
    with (
        pytest.raises(type(error)),
        exclusive(out, "engine report"),
        record_set_aside(out, "report.json"),
    ):
        assert not (out / "report.json").exists()
        assert (out / ".report.json.earlier").read_text() == '{"files": {}}'
        (out / "overlays" / ".b.jpg.x1y2z3w4.tmp").write_bytes(b"")  # removed by a real write
        raise error
    assert (out / "report.json").read_text() == '{"files": {}}'
    assert not (out / ".report.json.earlier").exists()


def test_a_record_set_aside_stays_aside_once_a_file_changed_and_goes_once_the_new_one_is_in(
    tmp_path,
):
    """A rerun that failed (or was stopped) after replacing a file keeps the record aside: the
    folder is no longer the earlier run's, and engine info says it did not finish. One that
    found it aside already (a killed rerun's) leaves it there when it fails having written
    nothing: its folder holds the killed run's files. The new record in, the set-aside one goes."""
    from engine.runlock import record_set_aside

    out = tmp_path / "rep"
    (out / "overlays").mkdir(parents=True)
    (out / "overlays" / "a.jpg").write_bytes(b"jpeg")
    (out / "report.json").write_text("{}")
    with pytest.raises(OSError), record_set_aside(out, "report.json"):
        (out / "overlays" / "a.jpg").write_bytes(b"another jpeg")
        raise OSError(28, "No space left on device")
    assert not (out / "report.json").exists() and (out / ".report.json.earlier").is_file()
    with pytest.raises(OSError), record_set_aside(out, "report.json"):
        raise OSError(28, "No space left on device")
    assert not (out / "report.json").exists() and (out / ".report.json.earlier").is_file()
    with record_set_aside(out, "report.json"):
        (out / "report.json").write_text('{"new": 1}')
    assert sorted(p.name for p in out.iterdir()) == ["overlays", "report.json"]


def test_a_record_set_aside_stays_aside_when_a_file_was_replaced_within_one_timestamp_tick(
    tmp_path,
):
    """``record_set_aside`` told a changed file by its size and modification time: on a file
    system whose times are coarse (FAT: 2 s, some NFS: 1 s, ext4's clock tick), a thumbnail
    replaced by one of the same size in the same tick read as unchanged, and a rerun failing
    then put the earlier record back over a folder holding the new thumbnail (engine info: a
    finished gallery, a mix of two runs). The engine's writes replace the file (a new one):
    that counts as a change whatever its time."""
    from annotations.fileio import atomic_write_bytes
    from engine.runlock import record_set_aside

    out = tmp_path / "gallery"
    (out / "thumbs").mkdir(parents=True)
    thumb = out / "thumbs" / "a.jpg"
    thumb.write_bytes(b"jpeg one")
    (out / "review.json").write_text("{}")
    was = thumb.stat()
    with pytest.raises(OSError), record_set_aside(out, "review.json"):
        atomic_write_bytes(thumb, b"jpeg two")  # the same size
        os.utime(thumb, ns=(was.st_atime_ns, was.st_mtime_ns))  # the same coarse time
        raise OSError(28, "No space left on device")
    assert thumb.read_bytes() == b"jpeg two"
    assert not (out / "review.json").exists() and (out / ".review.json.earlier").is_file()


def test_a_record_set_aside_stopped_while_it_lists_the_folder_leaves_the_record_in_place(
    tmp_path, monkeypatch
):
    """Ctrl-C while ``record_set_aside`` listed a large folder (a gallery's thousands of
    thumbnails, a slow network share) before the rerun wrote anything: the record was moved
    aside before the listing, outside the block that puts it back, and engine info said a
    finished gallery did not finish (exit 1). Nothing changed: the record stays where it was."""
    import engine.runlock as runlock

    out = tmp_path / "gallery"
    (out / "thumbs").mkdir(parents=True)
    (out / "thumbs" / "a.jpg").write_bytes(b"jpeg")
    (out / "review.json").write_text("{}")

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runlock.records, "_files", stopped)
    with pytest.raises(KeyboardInterrupt), runlock.record_set_aside(out, "review.json"):
        pass
    assert (out / "review.json").read_text() == "{}"
    assert not (out / ".review.json.earlier").exists()
