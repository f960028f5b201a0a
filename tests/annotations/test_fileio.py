"""The shared readers: every failure is one line that starts with the file's path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from annotations.fileio import (
    atomic_copy,
    atomic_file,
    atomic_write_bytes,
    first_line,
    parse_json,
    read_bytes,
    read_json,
    read_jsonl,
    read_text,
    read_yaml,
    type_and_first_line,
)
from annotations.labelrun import read_run_info
from annotations.subset import read_subset
from annotations.taxonomy import Taxonomy
from engine.datasets import load_spec
from labeler.config import load_class_spec
from tests.loop_helpers import damaged_swap_line
from trainer.config import load_config

NOT_UTF8 = b"\xf2\x80 images: x\n"


def test_first_line_skips_blank_lines_and_falls_back_to_the_type():
    assert first_line(ValueError("\n  \n  what went wrong \nmore detail")) == "what went wrong"
    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line(KeyError()) == "KeyError"
    assert type_and_first_line(OSError("disk full\nerrno 28")) == "OSError: disk full"
    assert type_and_first_line(RuntimeError(" \n")) == "RuntimeError"


def test_read_jsonl_names_a_file_that_is_not_text(tmp_path):
    (tmp_path / "m.jsonl").write_bytes(NOT_UTF8)
    with pytest.raises(ValueError, match=r"m\.jsonl: not UTF-8 text"):
        read_jsonl(tmp_path / "m.jsonl")
    assert read_jsonl(tmp_path / "none.jsonl") == []


def test_read_jsonl_skips_a_torn_last_line_only(tmp_path):
    log = tmp_path / "m.jsonl"
    log.write_text('{"a": 1}\n\n{"a": 2}\n{"a": ')  # a killed writer's half line
    assert read_jsonl(log) == [{"a": 1}, {"a": 2}]
    log.write_text('{"a": 1}\n{"a": \n{"a": 2}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl: line 2 is not valid JSON"):
        read_jsonl(log)
    with pytest.raises(ValueError, match="is a folder"):
        read_jsonl(tmp_path)


def test_a_line_appended_to_a_hard_linked_log_leaves_the_other_copy_alone(tmp_path):
    """A project copied with ``cp -al`` (or an ``rsync --link-dest`` snapshot) shares its files
    by hard links. Every output is replaced by a rename, but the logs were appended in place: a
    label, fusion or training run resumed in the copy wrote its lines into the original's
    ``manifest.jsonl`` and ``metrics.jsonl`` too (the original label run then held records of
    other settings). The log is now made the copy's own file before the first line goes in."""
    import os

    from annotations.fileio import append_line

    original, copy = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    append_line(original, '{"a": 1}')
    os.link(original, copy)
    append_line(copy, '{"a": 2}')
    append_line(copy, '{"a": 3}')
    assert original.read_text() == '{"a": 1}\n'
    assert copy.read_text() == '{"a": 1}\n{"a": 2}\n{"a": 3}\n'
    assert os.stat(copy).st_nlink == os.stat(original).st_nlink == 1


def test_a_line_appended_to_a_symlinked_log_leaves_the_linked_file_alone(tmp_path):
    """A run copied as a tree of links (``cp -rs``, ``lndir``) has a ``manifest.jsonl`` that is
    a symbolic link to the original's: ``engine label --force`` in the copy appended its six
    records to the original's manifest through the link (and a torn last line there would have
    been cut). The log is now a file of the copy's own before the first line goes in."""
    import os

    from annotations.fileio import append_line

    original, copy = tmp_path / "a.jsonl", tmp_path / "copy" / "a.jsonl"
    append_line(original, '{"a": 1}')
    copy.parent.mkdir()
    copy.symlink_to(original)
    append_line(copy, '{"a": 2}')
    append_line(copy, '{"a": 3}')
    assert original.read_text() == '{"a": 1}\n'
    assert copy.read_text() == '{"a": 1}\n{"a": 2}\n{"a": 3}\n'
    assert not copy.is_symlink() and os.stat(copy).st_nlink == 1
    assert sorted(p.name for p in copy.parent.iterdir()) == ["a.jsonl"]  # no temporary left


def test_a_line_appended_to_a_log_linked_to_nothing_makes_the_folders_own(tmp_path):
    """A copy (``cp -rs``) whose original was moved away has logs that link to nothing:
    appending through the link made the log in the original's folder where it was still there,
    and failed ('No such file or directory') where it was not. The log is now the copy's file."""
    from annotations.fileio import append_line

    old = tmp_path / "old"
    old.mkdir()
    for copy, target in (
        (tmp_path / "c1", old / "m.jsonl"),
        (tmp_path / "c2", tmp_path / "gone" / "m.jsonl"),
    ):
        copy.mkdir()
        (copy / "m.jsonl").symlink_to(target)
        append_line(copy / "m.jsonl", '{"a": 1}')
        append_line(copy / "m.jsonl", '{"a": 2}')
        assert not (copy / "m.jsonl").is_symlink()
        assert (copy / "m.jsonl").read_text() == '{"a": 1}\n{"a": 2}\n'
        assert sorted(p.name for p in copy.iterdir()) == ["m.jsonl"]  # no temporary left
    assert list(old.iterdir()) == [] and not (tmp_path / "gone").exists()


def test_an_output_linked_to_a_file_of_the_same_bytes_becomes_a_file_of_its_own(tmp_path):
    """A copy's output (``cp -rs``) that links to the original's file holding the same bytes was
    left a link ('already written'): the copy's output then changed with every rewrite of the
    original's. It is now written as a file of its own; a file of its own that holds them is
    still left untouched."""
    import os

    from annotations.fileio import atomic_write_bytes

    original, copy = tmp_path / "a.json", tmp_path / "copy" / "a.json"
    original.write_bytes(b"{}")
    copy.parent.mkdir()
    copy.symlink_to(original)
    atomic_write_bytes(copy, b"{}")
    assert not copy.is_symlink() and copy.read_bytes() == b"{}"
    original.write_bytes(b"[]")
    assert copy.read_bytes() == b"{}"
    ino = os.stat(copy).st_ino
    atomic_write_bytes(copy, b"{}")
    assert os.stat(copy).st_ino == ino  # its own file with those bytes: not rewritten
    assert sorted(p.name for p in copy.parent.iterdir()) == ["a.json"]


def test_a_line_appended_after_a_torn_one_is_not_glued_to_it(tmp_path):
    """A killed writer's half line used to get the next line glued to it: a broken middle line
    that made every later read of the log fail (a label run's manifest: the run could no longer
    resume). append_line cuts the half line off first."""
    from annotations.fileio import append_line

    log = tmp_path / "m.jsonl"
    append_line(log, '{"a": 1}')
    with open(log, "a") as f:
        f.write('{"split": "train", "stem": "x')  # killed mid-write
    append_line(log, '{"a": 2}')
    append_line(log, '{"a": 3}')
    assert log.read_text() == '{"a": 1}\n{"a": 2}\n{"a": 3}\n'
    assert read_jsonl(log) == [{"a": 1}, {"a": 2}, {"a": 3}]
    log.write_text('{"only a torn line')
    append_line(log, '{"a": 4}')
    assert log.read_text() == '{"a": 4}\n'
    long = "x" * 100_000  # a torn line longer than the block read backwards
    log.write_text('{"a": 5}\n' + long)
    append_line(log, '{"a": 6}')
    assert read_jsonl(log) == [{"a": 5}, {"a": 6}]


def test_a_manifest_is_compacted_to_the_lines_its_readers_use(tmp_path):
    """A manifest gets a line per image each time the image is done again; relabelled or fused
    again for months, it held 30 lines an image that every reader parsed (13,000 images: 110 MB,
    ~1 GB of memory, seconds for every engine info, resume and fuse). Compacted, it keeps each
    image's latest line and latest ok line, and the lines that name no image, byte for byte."""
    import json

    from annotations.fileio import append_line, compact_manifest
    from annotations.labelrun import latest_records

    log = tmp_path / "manifest.jsonl"
    for call in range(6):
        for stem in ("a", "b", "c"):
            status = "failed" if (stem, call) == ("b", 5) else "ok"
            append_line(
                log, json.dumps({"split": "train", "stem": stem, "status": status, "n": call})
            )
    append_line(log, json.dumps({"split": "val", "stem": "a", "status": "failed", "n": 0}))
    append_line(log, json.dumps({"note": "names no image"}))
    before = log.read_text().splitlines()
    latest = latest_records(tmp_path)
    assert compact_manifest(log, factor=10) == 0 and log.read_text().splitlines() == before
    assert compact_manifest(log, factor=3) == 20 - 6
    after = log.read_text().splitlines()
    assert latest_records(tmp_path) == latest  # what every reader takes: the latest line
    assert after == [line for line in before if line in after]  # in order, byte for byte
    assert [json.loads(line).get("n") for line in after] == [4, 5, 5, 5, 0, None]  # b: latest ok
    append_line(log, json.dumps({"split": "train", "stem": "d", "status": "ok"}))
    assert read_jsonl(log)[-1]["stem"] == "d"
    log.write_text(log.read_text().replace('"n": 4', '"n": ', 1))  # a broken middle line
    assert compact_manifest(log, factor=1) == 0  # left for the readers to name


def test_a_manifest_not_compacted_on_a_full_disk_is_left_as_it_was(tmp_path, monkeypatch):
    """Compaction is a rewrite: on a full disk it failed a call that had nothing to write
    (a fuse or label resume with nothing to do), which wrote nothing before."""
    import errno
    import os

    from annotations.fileio import compact_manifest

    log = tmp_path / "manifest.jsonl"
    log.write_text('{"split": "train", "stem": "a", "status": "ok"}\n' * 10)
    before = log.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert compact_manifest(log) == 0
    assert log.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [log.name]


def test_append_line_goes_on_where_the_file_system_has_no_locks(tmp_path, monkeypatch):
    import fcntl

    from annotations.fileio import append_line

    def no_locks(fd, op):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    append_line(tmp_path / "m.jsonl", '{"a": 1}')
    assert read_jsonl(tmp_path / "m.jsonl") == [{"a": 1}]


def test_processes_appending_to_one_log_lose_no_line(tmp_path):
    """Label shards share one manifest: appends from several processes at once (the lock that
    guards the torn-line cut included) keep every line whole."""
    import subprocess
    import sys

    log = tmp_path / "m.jsonl"
    code = (
        "import sys\nfrom annotations.fileio import append_line\nk = int(sys.argv[2])\n"
        "for i in range(200):\n"
        '    append_line(sys.argv[1], \'{"k": %d, "i": %d, "pad": "%s"}\' % (k, i, \'y\' * 50))\n'
    )
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(log), str(k)], cwd=root) for k in range(3)
    ]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    lines = read_jsonl(log)
    assert len(lines) == 600 and sorted((r["k"], r["i"]) for r in lines) == [
        (k, i) for k in range(3) for i in range(200)
    ]


def test_read_text_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.json: taxonomy file not found$"):
        read_text(tmp_path / "nope.json", "taxonomy file")
    with pytest.raises(ValueError, match=rf"^{tmp_path}: is a folder, not the config file$"):
        read_text(tmp_path, "config file")
    (tmp_path / "bin.yaml").write_bytes(NOT_UTF8)
    with pytest.raises(ValueError, match=r"bin\.yaml: not UTF-8 text \(invalid byte at offset 0\)"):
        read_text(tmp_path / "bin.yaml")
    (tmp_path / "ok.txt").write_text("héllo\n", encoding="utf-8")
    assert read_text(tmp_path / "ok.txt") == "héllo\n"
    assert read_bytes(tmp_path / "ok.txt") == "héllo\n".encode()


def test_read_json(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"a": [1, 2]}')
    assert read_json(p) == {"a": [1, 2]}
    p.write_text("  \n")
    with pytest.raises(ValueError, match=r"a\.json: the file is empty \(expected JSON\)"):
        read_json(p)
    p.write_text('{"a": 1,\n "b": }')
    with pytest.raises(ValueError, match=r"a\.json: not valid JSON \(Expecting value at line 2\)"):
        read_json(p)
    with pytest.raises(ValueError, match=r"a\.json: not UTF-8 text"):
        parse_json(NOT_UTF8, p)
    assert parse_json(b"[1]", p) == [1]


def test_a_yaml_billion_laughs_is_refused_before_it_is_built(tmp_path):
    """Nine nested aliases (300 bytes) expand to 10^9 values: PyYAML builds them as shared
    lists, but a dataset spec's error message wrote their repr and ``engine info spec.yaml``
    hung (3 GB after 60 s). Refused as read, naming the file; merge keys and a few aliases
    still read, and an alias inside its own value is refused."""
    levels = ['&a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    levels += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    p = tmp_path / "spec.yaml"
    p.write_text("images: images/{split}\nsplits: [" + ", ".join(levels) + "]\n")
    with pytest.raises(ValueError) as e:
        read_yaml(p)
    assert str(e.value).startswith(
        f"{p}: cannot parse YAML (its aliases expand to over 1,000,000 values"
    )
    with pytest.raises(ValueError, match=r"its aliases expand to over 1,000,000 values"):
        load_spec(p)
    p.write_text("splits: &s [test, *s]\n")
    with pytest.raises(ValueError, match=r"an alias refers to a value that holds it at line 1"):
        read_yaml(p)
    p.write_text("base: &b {lr: 1, x: [1, 2]}\nother:\n  <<: *b\n  y: *b\n")
    assert read_yaml(p) == {
        "base": {"lr": 1, "x": [1, 2]},
        "other": {"lr": 1, "x": [1, 2], "y": {"lr": 1, "x": [1, 2]}},
    }


def test_read_yaml_says_what_and_where_in_one_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("a: 1\n")
    assert read_yaml(p) == {"a": 1}
    p.write_text("")
    assert read_yaml(p) is None
    p.write_text("a: 1\n b: 2\n")
    with pytest.raises(ValueError) as e:
        read_yaml(p)
    message = str(e.value)
    assert (
        message
        == f"{p}: cannot parse YAML (mapping values are not allowed here at line 2, column 3)"
    )
    # the raw error's first line is its context, which says nothing of the problem
    with pytest.raises(yaml.YAMLError) as raw:
        yaml.safe_load("images: [\n")
    assert "expected" not in first_line(raw.value)
    p.write_text("images: [\n")
    with pytest.raises(ValueError, match=r"c\.yaml: cannot parse YAML \(expected .* at line 2"):
        read_yaml(p)


@pytest.mark.parametrize(
    "reader",
    [
        pytest.param(lambda p: Taxonomy.load(p), id="taxonomy"),
        pytest.param(lambda p: load_config(p), id="training config"),
        pytest.param(lambda p: load_class_spec(p, "Bicycle"), id="class spec"),
        pytest.param(lambda p: load_spec(p), id="dataset spec"),
    ],
)
def test_readers_name_the_file_for_bytes_that_are_not_text(tmp_path, reader):
    """A binary file passed where a config is expected: one line naming it, not a codec error."""
    p = tmp_path / "spec.yaml"
    p.write_bytes(NOT_UTF8)
    with pytest.raises(ValueError, match=rf"^{p}: not UTF-8 text"):
        reader(p)


def test_run_and_subset_records_name_the_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_bytes(NOT_UTF8)
    with pytest.raises(ValueError, match=r"run\.json: not UTF-8 text"):
        read_run_info(run / "run.json")
    (tmp_path / "subset.json").write_text("{")
    with pytest.raises(ValueError, match=r"subset\.json: not valid JSON"):
        read_subset(tmp_path)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"class_name": None}, "class_name must be a non-empty string, got None"),
        ({"split": ["test"]}, r"split must be a non-empty string, got \['test'\]"),
        ({"stems": "img0"}, "stems must be a list of image stems"),
        ({"stems": 5}, "expected keys class_name, split and stems"),
        (  # another version's subset was read as this one's
            {"format": "mass-engine/subset/v2"},
            "format 'mass-engine/subset/v2', which this engine does not read",
        ),
    ],
)
def test_a_subset_manifest_of_the_wrong_shape_is_named(tmp_path, fields, message):
    """Before, a null class name read as the class 'None' and a list as the split "['test']"."""
    import json

    record = {"class_name": "Bicycle", "split": "test", "stems": [], **fields}
    (tmp_path / "subset.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'subset.json'}: {message}"):
        read_subset(tmp_path)


def test_an_os_error_reads_as_path_and_reason(tmp_path):
    """A command's one line for an OS error names the path first, as the project's own do."""
    from annotations.fileio import first_line

    with pytest.raises(OSError) as e:
        (tmp_path / "file").write_text("x")
        (tmp_path / "file" / "sub").mkdir()
    assert first_line(e.value) == f"{tmp_path / 'file' / 'sub'}: Not a directory"
    assert first_line(ValueError("a\nb")) == "a"  # others: their first line, as before


def test_recorded_root_prefers_the_root_as_typed_then_as_resolved(tmp_path, monkeypatch):
    from annotations.fileio import recorded_root

    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    assert recorded_root("data", "/gone") == Path("data")  # as typed, found from here
    monkeypatch.chdir("/")
    assert recorded_root("data", str(tmp_path / "data")) == tmp_path / "data"
    assert recorded_root("data", "/gone") == Path("data")  # neither: as typed, for the error
    assert recorded_root(None, str(tmp_path / "data")) == tmp_path / "data"
    assert recorded_root(None, None) is None and recorded_root("", 3) is None


def test_recorded_root_finds_a_root_moved_together_with_its_output(tmp_path, monkeypatch):
    """Both paths typed on one command line (relative to a working directory that may be gone,
    or both absolute) keep their place to each other when a project folder is moved: the root
    is found beside the output where it is now."""
    from annotations.fileio import moved_with, recorded_root

    (tmp_path / "new" / "data é").mkdir(parents=True)
    (tmp_path / "new" / "runs" / "x").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    beside = ("../old/runs/x/", "new/runs/x")
    assert recorded_root("../old/data é", "/gone/data", beside) == Path("new/data é")
    spec = tmp_path / "new" / "data é" / "dataset.yaml"
    spec.write_text("images: images/{split}\n")  # a spec file is a root too
    assert recorded_root("../old/data é/dataset.yaml", None, beside) == Path(
        "new/data é/dataset.yaml"
    )
    assert recorded_root("/old/data é", None, ("/old/runs/x", "new/runs/x")) == Path("new/data é")
    # one relative and one absolute cannot be related; nothing found: as typed, for the error
    assert moved_with("/old/data é", "runs/x", "new/runs/x") is None
    assert recorded_root("data é", None, ("/old/runs/x", "new/runs/x")) == Path("data é")
    assert recorded_root("../gone", None, beside) == Path("../gone")


def test_recorded_root_of_a_copied_output_is_the_copys_while_the_original_exists(
    tmp_path, monkeypatch
):
    """An output copied with its dataset (``cp -r proj copy``, the original kept) is no longer
    where it was recorded: the dataset beside it comes before the recorded absolute path (and a
    typed absolute one, as a training run's config.json holds), which name the original's.
    Before, the copy read the original's dataset. An output where it was recorded, or reached
    through a symlinked folder, reads as before."""
    from annotations.fileio import recorded_root

    for project in ("proj", "copy"):
        (tmp_path / project / "data").mkdir(parents=True)
        (tmp_path / project / "runs" / "x").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "proj")
    monkeypatch.chdir(tmp_path)
    data, typed = tmp_path / "proj" / "data", str(tmp_path / "proj" / "data")
    beside = ("runs/x", "copy/runs/x")  # typed in proj, the output now in copy
    assert recorded_root("data", typed, beside) == Path("copy/data")
    absolute = (str(tmp_path / "proj" / "runs" / "x"), "copy/runs/x")
    assert recorded_root(typed, typed, absolute) == Path("copy/data")
    assert recorded_root(typed, None, absolute) == Path("copy/data")  # train --resume
    monkeypatch.chdir(tmp_path / "copy")  # as typed, where it names the copy's from here
    assert recorded_root("data", typed, ("runs/x", "runs/x")) == Path("data")
    monkeypatch.chdir(tmp_path)
    assert recorded_root("data", typed, ("runs/x", "proj/runs/x")) == data  # not moved
    assert recorded_root(typed, typed, (absolute[0], "link/runs/x")) == data  # a symlink
    (tmp_path / "copy" / "data").rmdir()  # none beside the copy: the recorded one, as before
    assert recorded_root("data", typed, beside) == data


def test_a_folder_given_in_the_wrong_place_is_named_for_what_it_is(tmp_path):
    """An engine output given where another is expected: the error says what it is (by the
    record its command writes), instead of only what is missing."""
    from annotations.fileio import not_this_output, output_kind
    from annotations.labelrun import LabelRun
    from engine.evaluate import list_labels

    subset, run, fused = tmp_path / "subset", tmp_path / "run", tmp_path / "fused"
    for folder, record in ((subset, "subset.json"), (run, "run.json"), (fused, "fuse.json")):
        folder.mkdir()
        (folder / record).write_text("{}")
    (fused / "labels").mkdir()
    assert output_kind(subset) == ("subset.json", "an annotated subset (engine annotate import)")
    assert output_kind(tmp_path) is None and not_this_output(tmp_path, "x") == ""
    assert not_this_output(run, "a label run", "run.json") == ""  # the expected kind
    with pytest.raises(FileNotFoundError) as e:
        read_subset(run)
    assert str(e.value) == (
        f"{run / 'subset.json'}: subset manifest not found; {run} is a label run "
        "(engine label), not an annotated subset"
    )
    with pytest.raises(
        FileNotFoundError, match=rf"; {subset} is an annotated subset .*, not a label run$"
    ):
        read_run_info(subset / "run.json")
    with pytest.raises(ValueError, match=r"not a label run .*; it is an annotated subset"):
        LabelRun.open(subset)
    (tmp_path / "data" / "images" / "test").mkdir(parents=True)  # review DATA, export DATA
    with pytest.raises(ValueError, match=r"not a label run .*; it is a dataset's root$"):
        LabelRun.open(tmp_path / "data")
    with pytest.raises(
        ValueError, match=rf"; {fused} is a fused dataset \(engine fuse\), not a label run$"
    ):
        _ = LabelRun.open(fused).class_name
    with pytest.raises(ValueError, match=rf"; {run} is a label run \(engine label\), not a folder"):
        list_labels(run, "ground-truth")
    # and where the label maps are, or which command scores an annotated subset
    (run / "labels" / "val").mkdir(parents=True)
    (run / "labels" / "test").mkdir()
    with pytest.raises(
        ValueError, match=rf"\(its label maps are in {run}/labels/ by split: test, val\)$"
    ):
        list_labels(run, "prediction")
    with pytest.raises(
        ValueError, match=rf"\(score its class with engine compare --gt {subset} or"
    ):
        list_labels(subset, "ground-truth")
    with pytest.raises(
        FileNotFoundError, match=rf"; {run} is a label run \(engine label\), not a dataset"
    ):
        load_spec(run).require_splits()


def test_an_atomic_write_to_a_folder_or_under_a_file_names_that_path(tmp_path):
    """``--json DIR`` named the hidden temporary file beside DIR ("/tmp/.x.abc.tmp: Is a
    directory"); ``--json FILE/x.json`` said only "FILE: File exists". Both now name the path
    the user gave and what it is, and leave nothing behind."""
    from annotations.fileio import atomic_write_text, first_line

    with pytest.raises(IsADirectoryError) as e:
        atomic_write_text(tmp_path, "x")
    assert first_line(e.value) == f"{tmp_path}: is a folder; give a file name"
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(NotADirectoryError) as e:
        atomic_write_text(tmp_path / "afile" / "sub" / "x.json", "x")
    assert first_line(e.value) == f"{tmp_path / 'afile'}: is a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_read_yaml_refuses_a_key_given_twice(tmp_path):
    """PyYAML keeps the last of two equal keys silently: a config's ``iters: 5`` further down
    overridden by ``iters: 6`` (or the reverse) was a setting dropped unsaid."""
    f = tmp_path / "c.yaml"
    f.write_text("iters: 5\nlr: 1.0e-3\naugment: {crop: 64}\niters: 6\n")
    with pytest.raises(ValueError) as e:
        read_yaml(f)
    assert str(e.value) == (
        f"{f}: cannot parse YAML (key 'iters' given twice (also at line 1) at line 4, column 1)"
    )
    f.write_text("augment: {crop: 64, crop: 32}\n")
    with pytest.raises(ValueError, match="key 'crop' given twice"):
        read_yaml(f)
    f.write_text("base: &b {crop: 64, flip: 0.5}\naugment:\n  <<: *b\n  crop: 32\n")  # a merge
    assert read_yaml(f)["augment"] == {"crop": 32, "flip": 0.5}


def test_a_write_the_disk_refuses_names_the_file_written(tmp_path, monkeypatch):
    """A full disk fails ``write`` or ``fsync`` with no file name: the command line said only
    "error: [Errno 28] No space left on device" (engine label into a full tmpfs); a folder
    without write permission failed ``mkstemp``, naming the hidden temporary file. Both now name
    the file being written, keep the error's type and errno, and leave nothing behind: the old
    file stays, whole."""
    import errno
    import os

    from annotations.fileio import append_line, atomic_write_text, first_line

    (tmp_path / "x.json").write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as e:
        atomic_write_text(tmp_path / "x.json", "new")
    assert e.value.errno == errno.ENOSPC
    assert first_line(e.value) == f"{tmp_path / 'x.json'}: No space left on device"
    with pytest.raises(OSError) as e:
        append_line(tmp_path / "log.jsonl", "{}")
    assert first_line(e.value) == f"{tmp_path / 'log.jsonl'}: No space left on device"
    monkeypatch.undo()

    real_open = os.open

    def refused(name, *args, **kwargs):  # the hidden temporary file cannot be created
        if os.path.basename(name).startswith(".x.json."):
            raise PermissionError(errno.EACCES, "Permission denied", name)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(PermissionError) as e:
        atomic_write_text(tmp_path / "x.json", "new")
    assert first_line(e.value) == f"{tmp_path / 'x.json'}: Permission denied"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl", "x.json"]
    assert (tmp_path / "x.json").read_text() == "old"


@pytest.mark.parametrize("sendfile", ["kernel", "unsupported", "absent"])
def test_an_atomic_copy_holds_the_source_s_bytes(tmp_path, monkeypatch, sendfile):
    """Copied by the kernel (``os.sendfile``), by Python where the kernel cannot copy between
    the two files (EINVAL before a byte) or has no such call: the same bytes, the permissions
    of every output, no temporary file."""
    import errno
    import os

    from tests.file_modes import file_mode

    data = os.urandom(3 << 20) + b"end"  # more than copyfileobj's 1 MiB buffer
    src = tmp_path / "last.pt"
    src.write_bytes(data)
    if sendfile == "unsupported":

        def refuses(*args):
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(os, "sendfile", refuses)
    elif sendfile == "absent":
        monkeypatch.delattr(os, "sendfile")
    assert atomic_copy(src, tmp_path / "step_0000002.pt") == tmp_path / "step_0000002.pt"
    assert (tmp_path / "step_0000002.pt").read_bytes() == data == src.read_bytes()
    assert (tmp_path / "step_0000002.pt").stat().st_mode & 0o777 == file_mode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_0000002.pt"]


@pytest.mark.parametrize("change", ["grows", "shrinks"])
def test_an_atomic_copy_of_a_file_changed_while_copied_holds_its_bytes_at_the_end(
    tmp_path, monkeypatch, change
):
    """The source grown or cut short after the kernel sent its first MiB (its size was read
    before): the copy holds the file's bytes as they are at the end, the rest read by Python
    after the kernel's last send (a send of nothing, where the file ended sooner, ends the
    kernel's part rather than asking it again and again)."""
    import os

    src, dst = tmp_path / "last.pt", tmp_path / "copy.pt"
    src.write_bytes(os.urandom(3 << 20))
    sendfile, sent = os.sendfile, []

    def changing(out_fd, in_fd, offset, count):
        assert len(sent) < 10, "sent nothing again and again"
        sent.append(sendfile(out_fd, in_fd, offset, min(count, 1 << 20)))
        if len(sent) == 1 and change == "grows":
            with open(src, "ab") as f:
                f.write(os.urandom((2 << 20) + 7))
        elif len(sent) == 1:
            os.truncate(src, (1 << 20) + 5)
        return sent[-1]

    monkeypatch.setattr(os, "sendfile", changing)
    atomic_copy(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    assert sent == ([1 << 20] * 3 if change == "grows" else [1 << 20, 5, 0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.pt", "last.pt"]


@pytest.mark.parametrize("fails_after", [0, 1 << 20])
def test_an_atomic_copy_the_disk_refuses_leaves_every_file_as_it_was(
    tmp_path, monkeypatch, fails_after
):
    """A full disk at the first byte or part way: the copy's error names it, the file it was to
    replace keeps its old bytes, the source its own, and no temporary file is left."""
    import errno
    import os

    src, dst = tmp_path / "last.pt", tmp_path / "step_0000002.pt"
    src.write_bytes(b"n" * (3 << 20))
    dst.write_bytes(b"old")
    sendfile = os.sendfile

    def full(out_fd, in_fd, offset, count):
        if offset >= fails_after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return sendfile(out_fd, in_fd, offset, min(count, fails_after - offset))

    monkeypatch.setattr(os, "sendfile", full)
    with pytest.raises(OSError) as e:
        atomic_copy(src, dst)
    assert e.value.errno == errno.ENOSPC
    assert first_line(e.value) == f"{dst}: No space left on device"
    assert dst.read_bytes() == b"old" and src.read_bytes() == b"n" * (3 << 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_0000002.pt"]


def test_a_write_with_every_temporary_name_taken_is_refused_naming_the_file(tmp_path, monkeypatch):
    """Every temporary name tried already there (a folder full of a killed writer's leftovers,
    or names drawn alike): the write stops with one error naming the file, rather than a
    ``TypeError`` of a name never made; the file keeps its bytes."""
    import errno
    import secrets
    import tempfile

    from annotations.fileio import atomic_write_text

    monkeypatch.setattr(tempfile, "TMP_MAX", 3)
    monkeypatch.setattr(secrets, "token_hex", lambda n: "0" * 2 * n)
    (tmp_path / "x.json").write_text("old")
    (tmp_path / ".x.json.00000000.tmp").write_text("left")
    with pytest.raises(FileExistsError) as e:
        atomic_write_text(tmp_path / "x.json", "new")
    assert e.value.errno == errno.EEXIST and e.value.filename == str(tmp_path / "x.json")
    assert (tmp_path / "x.json").read_text() == "old"


def test_new_file_mode_is_what_open_gives_and_set_mode_gives_the_mode_asked(tmp_path):
    """:func:`new_file_mode` is the mode ``open()`` gives a new file in the folder (0666 less
    the umask where no default ACL says otherwise), seen on a file it removes; ``set_mode``
    gives a file the mode it is asked, 0666 less the umask too."""
    import os
    import stat

    from annotations.fileio import new_file_mode, set_mode
    from tests.file_modes import file_mode

    before = os.umask(0o027)
    try:
        assert new_file_mode(tmp_path) == 0o640
        assert list(tmp_path.iterdir()) == []
        path = tmp_path / "model.safetensors"
        path.write_bytes(b"w")
        fd = os.open(path, os.O_RDONLY)
        try:
            set_mode(fd, 0o604)
            assert stat.S_IMODE(path.stat().st_mode) == 0o604
            set_mode(fd, file_mode())
            assert stat.S_IMODE(path.stat().st_mode) == file_mode() == 0o640
        finally:
            os.close(fd)
    finally:
        os.umask(before)


def test_a_staged_write_the_disk_refuses_names_the_file_where_it_was_to_be(tmp_path):
    """``engine annotate import`` and ``export`` write a new version into a hidden folder, then
    swap it in: a full disk named the hidden copy ("SUBSET/.masks.new-9stlm7w1/masks/x.png: No
    space left on device"). It names ``SUBSET/masks/x.png`` now; the old version stays."""
    import errno

    from annotations.fileio import first_line, staged

    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "x.png").write_bytes(b"old")
    with pytest.raises(OSError) as e, staged(tmp_path, ".masks.") as staging:
        raise OSError(errno.ENOSPC, "No space left on device", str(staging / "masks" / "x.png"))
    assert e.value.errno == errno.ENOSPC
    assert first_line(e.value) == f"{tmp_path / 'masks' / 'x.png'}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks"]
    assert (tmp_path / "masks" / "x.png").read_bytes() == b"old"


def test_an_output_that_is_a_device_is_written_into_not_replaced(tmp_path):
    """``--json /dev/stdout`` (or ``/dev/null``): the atomic write renamed its temporary file
    onto the path, replacing the device by a regular file (as root, for every process of the
    machine). A device or pipe is written into; the link to it stays as it was."""
    import os
    import stat

    from annotations.fileio import atomic_write_text

    link = tmp_path / "out.json"
    link.symlink_to(os.devnull)
    atomic_write_text(link, "{}\n")
    assert link.is_symlink() and stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_file_that_holds_the_bytes_already_is_not_rewritten(tmp_path):
    """An atomic write of the bytes a file holds already leaves it as it is (its inode and times
    kept, no temporary file): a rerun with nothing to do rewrote its records, failing on a full
    disk. Other bytes, of the same size or not, replace it."""
    import os

    from annotations.fileio import atomic_write_bytes

    path = tmp_path / "x.json"
    atomic_write_bytes(path, b"same")
    before = os.stat(path)
    atomic_write_bytes(path, b"same")
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    atomic_write_bytes(path, b"diff")
    assert path.read_bytes() == b"diff" and os.stat(path).st_ino != before.st_ino
    atomic_write_bytes(path, b"longer")
    assert path.read_bytes() == b"longer" and sorted(os.listdir(tmp_path)) == ["x.json"]


@pytest.mark.parametrize("name", ["x" * 251 + ".png", "日本" * 41 + "abcde.png"])
def test_a_file_name_the_file_system_takes_is_written_whatever_its_length(tmp_path, name):
    # a 255-byte name is legal, but the hidden temporary file beside it was named '.NAME.' plus
    # 12 more bytes: a label run failed its image ('File name too long') for a 245-byte stem
    from annotations.fileio import is_temporary

    path = tmp_path / name
    assert len(name.encode()) == 255
    atomic_write_bytes(path, b"data")
    assert path.read_bytes() == b"data" and [p.name for p in tmp_path.iterdir()] == [name]
    with pytest.raises(OSError, match="File name too long"):
        atomic_write_bytes(tmp_path / ("y" + name), b"data")  # too long itself: named as it is
    assert [p.name for p in tmp_path.iterdir()] == [name]
    with atomic_file(path) as f:  # a process killed now leaves a temporary file found as one
        f.write(b"new")
        temps = [p.name for p in tmp_path.iterdir() if p.name != name]
        assert len(temps) == 1 and is_temporary(temps[0]) and len(temps[0].encode()) <= 255
    assert path.read_bytes() == b"new"


def test_a_temporary_file_of_a_name_with_a_newline_is_one():
    """Image stems may hold any character but '/': a run killed while writing ``a\\nb.png`` left
    a temporary file no rerun removed and engine info did not count (the pattern's '.' stopped
    at the newline)."""
    from annotations.fileio import is_temporary

    assert is_temporary(".a\nb.png.pw4p35rf.tmp") and is_temporary(".ab.png.abcdefgh.tmp")
    assert not is_temporary("a\nb.png") and not is_temporary(".a\nb.png.tmp")


# ``python -c KILLED_WRITING PATH``: killed (SIGKILL) while it writes PATH, its temporary file
# half written beside it
KILLED_WRITING = """
import os, signal, sys
from annotations.fileio import atomic_file
with atomic_file(sys.argv[1]) as f:
    f.write(b"half")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_killed_write_s_temporary_file_is_removed_by_the_next_write_of_its_file_not_a_live_one(
    tmp_path,
):
    """``kill -9`` while writing a file no run lock guards (``compare --json``) left its
    ``.NAME.*.tmp`` beside it for ever: nothing told a killed writer's from a live one's. A
    writer holds a lock on its temporary file until it is in place; the next write of the file
    removes the temporaries whose lock is free, not a live write's (held), nor another file's."""
    from annotations.fileio import dead_temporaries, is_temporary, remove_dead_temporaries
    from tests.loop_helpers import run_killed

    path = tmp_path / "c.json"
    atomic_write_bytes(path, b"earlier")
    run_killed(KILLED_WRITING, str(path))
    run_killed(KILLED_WRITING, str(tmp_path / "c.json.bak"))  # another file's: not c.json's
    dead = [p for p in tmp_path.iterdir() if p.name.startswith(".c.json.")]
    assert len(dead) == 2 and all(is_temporary(p.name) for p in dead)
    (tmp_path / ".c.json.abcdefgh.tmp").mkdir()  # not a file: left
    with atomic_file(path) as f:  # a live write of c.json: its temporary is held
        f.write(b"new")
        assert dead_temporaries(path) == [p for p in dead if ".bak." not in p.name]
        assert remove_dead_temporaries(path) == 1  # the killed write's only
        live = {p.name for p in tmp_path.iterdir()} - {"c.json", ".c.json.abcdefgh.tmp"}
        assert len(live) == 2 and all(n.startswith(".c.json.") for n in live)
        assert [p for p in dead if p.exists()] == [p for p in dead if ".bak." in p.name]
    assert path.read_bytes() == b"new"  # the live write went on
    assert remove_dead_temporaries(path) == 0 and remove_dead_temporaries(tmp_path / "x/y") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["c.json", ".c.json.abcdefgh.tmp", *(p.name for p in dead if ".bak." in p.name)]
    )


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_temporary_file_taken_for_a_killed_write_s_before_its_lock_is_made_again(
    tmp_path, monkeypatch
):
    """A removal that finds a writer's temporary file between its creation and its lock
    (free: taken for a killed write's) removes it; the writer makes another and writes on."""
    import annotations.fileio as fileio

    real, taken = fileio.atomic._locked_as_writers, []

    def raced(fd, name):
        if not taken:  # a removal between the file's creation and its lock
            (made,) = tmp_path.glob(".c.json.*.tmp")  # not /proc/self/fd: Linux's only
            taken.append(made)
            assert fileio.remove_if_dead(taken[0])
        return real(fd, name)

    monkeypatch.setattr(fileio.atomic, "_locked_as_writers", raced)
    atomic_write_bytes(tmp_path / "c.json", b"data")
    assert (tmp_path / "c.json").read_bytes() == b"data"
    assert len(taken) == 1 and [p.name for p in tmp_path.iterdir()] == ["c.json"]


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_temporary_file_taken_on_nfs_before_its_lock_is_made_again(tmp_path, monkeypatch):
    """NFS removes no file a process holds open: the removal's unlink renames it
    ``.nfsXXXX`` (a "silly rename"), which goes when its last descriptor closes, the writer's
    too, so the writer's file keeps one link. A writer that made its temporary file as a
    removal took it read the link count (1) as its own file still there, wrote into the
    renamed one, and failed at the rename (No such file or directory). The writer sees its
    name gone and makes another."""
    import annotations.fileio as fileio

    real, taken = fileio.atomic._locked_as_writers, []
    silly = tmp_path / ".nfs000000000000000100000001"

    def raced(*args):
        if not taken:  # a removal between the file's creation and its lock, on NFS
            (made,) = tmp_path.glob(".c.json.*.tmp")
            taken.append(made)
            with monkeypatch.context() as m:
                m.setattr(
                    fileio.temporaries, "_removed", lambda path: os.rename(path, silly) or True
                )
                assert fileio.remove_if_dead(made)
        return real(*args)

    monkeypatch.setattr(fileio.atomic, "_locked_as_writers", raced)
    atomic_write_bytes(tmp_path / "c.json", b"data")
    assert (tmp_path / "c.json").read_bytes() == b"data" and silly.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == [silly.name, "c.json"]


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_temporary_files_stay_where_the_file_system_takes_no_lock(tmp_path, monkeypatch):
    """ENOLCK (NFS without a lock daemon): writes go on unlocked, and no temporary file is
    removed, as nothing tells a killed write's from a live one's (as before)."""
    from annotations.fileio import remove_dead_temporaries
    from tests.loop_helpers import no_locks

    no_locks(monkeypatch)
    (tmp_path / ".c.json.abcdefgh.tmp").write_bytes(b"half")
    atomic_write_bytes(tmp_path / "c.json", b"data")
    assert remove_dead_temporaries(tmp_path / "c.json") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.json.abcdefgh.tmp", "c.json"]


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_killed_write_s_temporary_file_that_cannot_be_removed_fails_no_write(
    tmp_path, monkeypatch
):
    """Another user's killed write's temporary file in a sticky folder (``/tmp``, a team's
    drop folder: only its owner may remove it): the next ``compare --json`` of the file failed
    with ``Operation not permitted`` naming the temporary file, before writing anything. It
    stays, and the file is written."""
    import errno

    import annotations.fileio as fileio
    from engine.runlock import folders_removed_on_failure

    theirs = tmp_path / ".c.json.abcd1234.tmp"
    theirs.write_bytes(b"half")
    real = os.unlink

    def sticky(path, *args, **kwargs):
        if os.fspath(path) == str(theirs):
            raise PermissionError(errno.EPERM, "Operation not permitted", os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fileio.temporaries.os, "unlink", sticky)
    with folders_removed_on_failure(tmp_path / "c.json"):
        atomic_write_bytes(tmp_path / "c.json", b"{}")
    assert fileio.remove_dead_temporaries(tmp_path / "c.json") == 0
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [theirs.name, "c.json"]


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_write_whose_lock_descriptor_is_refused_leaves_no_descriptor_open(tmp_path, monkeypatch):
    """The writer's lock is kept on a second descriptor (``dup``); one refused (EMFILE: too many
    open files) failed the write, naming it, but left the temporary file's descriptor open
    for the life of the process: each such write one fewer for the next."""
    import errno

    import annotations.fileio as fileio

    real, made = fileio.atomic._new_temporary, []

    def recorded(path):
        made.append(real(path))
        return made[-1]

    def refused(fd):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(fileio.atomic, "_new_temporary", recorded)
    monkeypatch.setattr(fileio.atomic.os, "dup", refused)
    with pytest.raises(OSError, match="Too many open files.*c.json"):
        atomic_write_bytes(tmp_path / "c.json", b"data")
    monkeypatch.undo()
    ((fd, name),) = made
    with pytest.raises(OSError) as closed:
        os.fstat(fd)
    assert closed.value.errno == errno.EBADF and not os.path.exists(name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_ctrl_c_while_a_temporary_file_is_locked_leaves_neither_it_nor_its_descriptor(
    tmp_path, monkeypatch
):
    """Ctrl-C between a temporary file's creation and its writer's lock (``atomic_file``'s
    "a Ctrl-C just after it must not leave the temp file either"): before, the file stayed
    beside the output and its descriptor open."""
    import errno

    import annotations.fileio as fileio

    opened = []

    def interrupted(fd, name):
        opened.append(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.atomic, "_locked_as_writers", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "c.json", b"data")
    monkeypatch.undo()
    with pytest.raises(OSError) as closed:
        os.fstat(opened[0])
    assert closed.value.errno == errno.EBADF and list(tmp_path.iterdir()) == []


def test_a_file_or_folder_inside_a_run_or_subset_names_the_folder_to_give(tmp_path):
    """engine review / annotate pick / export given a run's run.json (or its pick list) said
    "label run directory not found", of a file that is there, and given the run's labels/ only
    "not a label run"; engine report --subset SUBSET/subset.json looked for
    SUBSET/subset.json/subset.json and --subset SUBSET/masks asked whether masks/ was a subset.
    Each names the output it lies in, to give instead."""
    from typer.testing import CliRunner

    from cli import app

    run, subset = tmp_path / "run", tmp_path / "subset"
    (run / "labels" / "test").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "pick-test.txt").write_text("a\n")
    (subset / "masks").mkdir(parents=True)
    (subset / "subset.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("x")
    cases = [
        (["review", "X"], run / "run.json", f"not a label run's folder; it is a file in {run}"),
        (["annotate", "pick", "X"], run / "pick-test.txt", f"it is a file in {run}, a label run"),
        (["review", "X"], run / "labels" / "test", f"; it is a folder in {run}, a label run"),
        (["annotate", "export", "X", "--out", "o"], run / "labels", f"it is a folder in {run}"),
        (["review", "X"], tmp_path / "notes.txt", "not a label run's folder; it is a file, not"),
        (["report", "--out", "o", "--subset", "X"], subset / "subset.json", f"file in {subset}"),
        (["report", "--out", "o", "--subset", "X"], subset / "masks", f"a folder in {subset}, an"),
    ]
    for args, given, said in cases:
        res = CliRunner().invoke(app, [str(given) if a == "X" else a for a in args])
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and text.startswith(f"error: {given}: "), res.output
        assert said in text, res.output
        if "file in" in said or "folder in" in said:
            owner = subset if "subset" in said or given.parent.name == "subset" else run
            assert text.endswith(f": give {owner}"), res.output


# A taxonomy, a names file, a CVAT label map, a class spec, a training config, a pick list:
# each as Windows tools write it (CRLF), read for what it says.
_WINDOWS_FILES = [
    pytest.param(
        "taxonomy.json",
        '{"classes": [{"id": 0, "name": "Sky", "color": [70, 130, 180]}]}',
        lambda p: [c.name for c in Taxonomy.load(p).classes],
        ["Sky"],
        id="taxonomy",
    ),
    pytest.param(
        "classes.txt",
        "person\r\ncar\r\n",
        lambda p: __import__("annotations.yolo").yolo.read_class_names(p),
        ["person", "car"],
        id="yolo names",
    ),
    pytest.param(
        "labelmap.txt",
        "# label:color_rgb:parts:actions\r\nBicycle:250,50,83::\r\n",
        lambda p: __import__("annotations.interchange").interchange.read_labelmap(p),
        {"Bicycle": (250, 50, 83)},
        id="cvat label map",
    ),
    pytest.param(
        "spec.yaml",
        "Bicycle:\r\n  prompts: [bike]\r\n",
        lambda p: load_class_spec(p, "Bicycle").prompts,
        ("bike",),
        id="class spec",
    ),
    pytest.param("train.yaml", "iters: 5\r\n", lambda p: load_config(p).iters, 5, id="config"),
    pytest.param(
        "pick.txt",
        "img001\r\nimg002\r\n",
        lambda p: __import__("engine.annotate").annotate.read_stem_list(p),
        ["img001", "img002"],
        id="image list",
    ),
]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])  # Notepad; PowerShell's `>`
@pytest.mark.parametrize(("name", "text", "read", "want"), _WINDOWS_FILES)
def test_text_files_with_a_byte_order_mark_read_as_written(
    tmp_path, encoding, name, text, read, want
):
    """A UTF-8 byte-order mark was kept in the first line (``\\ufeffperson``, a class no file
    names; a label map's first line refused) or made JSON invalid; UTF-16 was "not UTF-8 text"
    (a pick list: a Python codec error)."""
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    assert read(p) == want


@pytest.mark.parametrize(("name", "text", "read", "want"), _WINDOWS_FILES)
def test_text_files_in_latin_1_are_refused_naming_the_line(tmp_path, name, text, read, want):
    p = tmp_path / name
    p.write_bytes(("# caf\u00e9\n" + text).encode("latin-1"))
    with pytest.raises(ValueError) as e:
        read(p)
    assert str(e.value) == (
        f"{p}: not UTF-8 text (invalid byte at offset 5) on line 1: save it as UTF-8 "
        "(it looks like Latin-1 or Windows-1252)"
    )


def test_utf16_without_a_byte_order_mark_is_refused_as_such(tmp_path):
    p = tmp_path / "classes.txt"
    p.write_bytes("person\n".encode("utf-16-le"))  # decoded as UTF-8: "p\0e\0r\0..."
    with pytest.raises(
        ValueError, match=r"classes\.txt: UTF-16 text without a byte-order mark: save it as UTF-8$"
    ):
        read_text(p)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("prompts: [bike, on, off]", {"prompts": ["bike", "on", "off"]}),  # 1.1: True, False
        ("No: {prompts: [no entry sign]}", {"No": {"prompts": ["no entry sign"]}}),  # 1.1: False
        ("names: {0: person, 1: no}", {"names": {0: "person", 1: "no"}}),  # 1.1: False
        ("amp: true\nflip: False", {"amp": True, "flip": False}),
        ("seed: 010", {"seed": 10}),  # 1.1: octal 8
        ("crop: 0512", {"crop": 512}),  # 1.1: octal 330
        ("iters: 80_000\nmask: 0x1f", {"iters": 80_000, "mask": 31}),
        ("lr: 1e-3\nbox_threshold: 3e-1", {"lr": 0.001, "box_threshold": 0.3}),  # 1.1: strings
        ("lr: 1.0e-5\nw: .5", {"lr": 1e-5, "w": 0.5}),
        ("time: 1:30", {"time": "1:30"}),  # 1.1: 90 (base 60)
    ],
)
def test_yaml_plain_scalars_read_as_yaml_1_2(tmp_path, text, want):
    """PyYAML reads YAML 1.1: a prompt ``on`` was the prompt 'True', a class ``No`` the key
    False (``no class 'No'; classes in the file: False``), ``seed: 010`` 8, ``3e-1`` a string
    (a class spec's ``box_threshold must be a number, got '3e-1'``)."""
    p = tmp_path / "c.yaml"
    p.write_text(text + "\n")
    assert read_yaml(p) == want


def test_yaml_trailing_tabs_are_read_and_a_tab_elsewhere_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("iters: 5\t\r\nsplits: [train, val] \t\n")  # PyYAML: "found character '\t'"
    assert read_yaml(p) == {"iters": 5, "splits": ["train", "val"]}
    p.write_text("Bicycle:\n\tprompts: [bike]\n")
    with pytest.raises(ValueError) as e:
        read_yaml(p)
    assert str(e.value) == (
        f"{p}: cannot parse YAML (found character '\\t' that cannot start any token at line 2, "
        "column 1; YAML takes spaces there, not a tab)"
    )


def test_yaml_1_1_booleans_still_set_a_training_configs_switch(tmp_path):
    p = tmp_path / "train.yaml"
    p.write_text("amp: yes\nall_precise: off\nlr: 1e-4\n")
    cfg = load_config(p)
    assert (cfg.amp, cfg.all_precise, cfg.lr) == (True, False, 1e-4)


def test_a_class_spec_reads_yaml_1_1_surprises_as_written(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_text(
        "No:\n  prompts: [no entry sign]\nBicycle:\n  prompts: [bike, on]\n  box_threshold: 3e-1\n"
    )
    assert load_class_spec(p, "No").prompts == ("no entry sign",)
    spec = load_class_spec(p, "Bicycle")
    assert (spec.prompts, spec.box_threshold) == (("bike", "on"), 0.3)


def test_json_and_the_train_config_hold_names_as_typed(tmp_path: Path):
    """JSON records held a CJK class or path as ``\\u81ea\\u884c\\u8f66`` and a training run's
    config.yaml (the file a user copies and passes back with --config) ``"\\u81EA..."``: written
    as typed now (UTF-8), read back the same. An undecodable byte of a file name (a lone
    surrogate from ``os.fsdecode``) has no UTF-8 and stays escaped, as before."""
    import json

    from annotations.fileio import atomic_write_json
    from annotations.taxonomy import MASS13K
    from trainer.config import TrainConfig
    from trainer.train import _write_run_files

    odd = b"caf\xe9".decode("utf-8", "surrogateescape")
    doc = {"class": "自行车", "root": "/data/Straße/велосипед", "file": odd}
    text = atomic_write_json(tmp_path / "a.json", doc).read_text(encoding="utf-8")
    assert '"class": "自行车"' in text and '"file": "caf\\udce9"' in text
    assert json.loads(text) == doc
    cfg = TrainConfig(data="runs/fused/自行车", out=str(tmp_path))
    _write_run_files(tmp_path, cfg, 0, MASS13K.with_new_class("自行车"))
    text = (tmp_path / "config.yaml").read_text(encoding="utf-8")
    assert (
        "data: runs/fused/自行车\n" in text and yaml.safe_load(text)["data"] == "runs/fused/自行车"
    )
    assert '"name": "自行车"' in (tmp_path / "config.json").read_text(encoding="utf-8")


def test_lines_appended_together_cut_a_torn_line_and_go_in_whole(tmp_path):
    """append_lines (engine fuse's refreshed records after a copy) writes its lines at one
    fsync, after cutting a killed writer's half line as append_line does; none is no write."""
    from annotations.fileio import append_lines

    log = tmp_path / "m.jsonl"
    append_lines(log, [])
    assert not log.exists()
    log.write_text('{"a": 1}\n{"half')
    append_lines(log, ['{"a": 2}', '{"a": 3}'])
    assert read_jsonl(log) == [{"a": 1}, {"a": 2}, {"a": 3}]
    with pytest.raises(ValueError, match="without newlines"):
        append_lines(log, ['{"a": 4}', '{"a":\n5}'])
    assert read_jsonl(log) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_a_command_line_yaml_value_nested_too_deeply_is_a_parse_error():
    """``--backend-option k=[[[[...`` gave Python's RecursionError, not the option's message."""
    from labeler.cli_support import parse_backend_options

    with pytest.raises(ValueError, match=r"--backend-option .*: cannot parse the value"):
        parse_backend_options(["miss_max=" + "[" * 600])


def test_a_labelme_shape_labelled_by_a_class_id_is_another_class_not_a_missing_label():
    """A converter writes class ids as labels (``"label": 0``): that is a label, another
    class's here, counted and left out. ``str(label or "")`` read 0 as no label and refused the
    file ("shape 0 has no label")."""
    from annotations.interchange import labelme_to_mask

    doc = {
        "shapes": [{"label": 0, "points": [[1, 1], [5, 1], [5, 5]], "shape_type": "polygon"}],
        "imagePath": "a.jpg",
        "imageHeight": 8,
        "imageWidth": 8,
    }
    mask = labelme_to_mask("a.json", "Bicycle", {"a": (8, 8)}, doc)
    assert mask.others == {"0": 1}
    assert not (mask.mask == 1).any()


@pytest.mark.parametrize("label", [[], {}, False])
def test_a_labelme_label_that_is_no_text_nor_number_is_named(label):
    """``[]``, ``{}``, ``False`` are no label a tool writes: they were refused as missing, and
    reading numbers as labels (``0``, a class id) must not make them classes named "[]"."""
    from annotations.interchange import labelme_to_mask

    doc = {
        "shapes": [{"label": label, "points": [[1, 1], [5, 1], [5, 5]], "shape_type": "polygon"}],
        "imagePath": "a.jpg",
        "imageHeight": 8,
        "imageWidth": 8,
    }
    kind = type(label).__name__
    with pytest.raises(ValueError, match=rf"^a\.json: shape 0: label must be text, got {kind} "):
        labelme_to_mask("a.json", "Bicycle", {"a": (8, 8)}, doc)


def test_a_records_relative_paths_are_read_from_the_folder_its_command_ran_in(
    tmp_path, monkeypatch
):
    """fuse.json's ``data``, a subset's, an export's run: typed relative to the folder the
    command ran in (``environment.cwd``), they are read from there, not from the folder the
    reader runs in. Before, ``engine info``/``report``/``review`` run from another folder that
    held a ``data`` of its own read that one (``data`` here is found first). A copied project
    reads the copy's, a moved one is still found, and a record without a cwd reads as before."""
    import shutil

    from annotations.fileio import fused_input, fused_source, record_cwd
    from annotations.interchange import exported_from
    from annotations.subset import Subset

    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    for folder in (proj / "data", proj / "runs" / "fused" / "x", elsewhere / "data"):
        folder.mkdir(parents=True)  # elsewhere/data: a decoy of the same name
    fuse = {
        "config": {"data": "data", "out": "runs/fused/x"},
        "inputs": {"data": str(proj / "data")},
        "environment": {"cwd": str(proj)},
    }
    typed = {
        **fuse["config"],
        "data_resolved": str(proj / "data"),
        "environment": fuse["environment"],
    }
    subset = Subset(proj / "runs" / "fused" / "x", "Bicycle", "test", (), typed)
    export = {"run": "data", "config": {"out": "runs/fused/x"}, "environment": fuse["environment"]}
    monkeypatch.chdir(elsewhere)
    x = "../proj/runs/fused/x"
    assert fused_source(fuse, x) == proj / "data"  # not the decoy
    assert fused_input(fuse, x, "data") == proj / "data"  # a run fused, typed relative
    assert subset.data_root == proj / "data"
    assert exported_from(export, "run", x) == proj / "data"
    assert record_cwd(fuse) == str(proj)
    assert [record_cwd(r) for r in ({}, [], {"environment": {"cwd": "rel"}})] == [None] * 3
    # without a cwd (a record of before): from here first, as before
    old = {k: v for k, v in fuse.items() if k != "environment"}
    assert fused_source(old, x) == Path("data")
    shutil.copytree(proj, tmp_path / "copy")  # cp -r, the original kept: the copy's own
    assert fused_source(fuse, "../copy/runs/fused/x") == Path("../copy/data")
    monkeypatch.chdir(tmp_path / "copy")  # in the copy: its own, as typed
    assert fused_source(fuse, "runs/fused/x") == Path("data")
    monkeypatch.chdir(proj)  # where it ran: as typed (what info and fuse's lines print)
    assert fused_source(fuse, "runs/fused/x") == Path("data")
    monkeypatch.chdir(elsewhere)
    shutil.rmtree(tmp_path / "copy")
    proj.rename(tmp_path / "moved")  # moved: found beside the fused dataset where it is now
    assert fused_source(fuse, "../moved/runs/fused/x") == Path("../moved/data")


@pytest.mark.parametrize(
    "record",
    [b'{"out": []}', b'{"in": 3, "out": []}', b"not json", b'{"in": ["../x"], "out": []}', b"[1]"],
)
def test_a_swap_record_damaged_by_hand_is_one_line_and_nothing_is_moved_or_removed(
    tmp_path, record
):
    """A ``.swap.json`` edited by hand (a key missing, a number for a list, not JSON, a name
    outside the folder) was a bare KeyError / TypeError traceback, or, not JSON, taken for a
    write killed before its swap: its staging folder went, with the new files not yet in."""
    from annotations.fileio import SWAP_RECORD, finish_swaps, staged

    (tmp_path / "coco.json").write_text("old")
    staging = tmp_path / ".export.new-x"
    staging.mkdir()
    (staging / "coco.json").write_text("new")
    (staging / SWAP_RECORD).write_bytes(record)
    said = damaged_swap_line(staging)
    for finish in (lambda: finish_swaps(tmp_path, ".export."), staged(tmp_path, ".export.")):
        with pytest.raises(ValueError) as e:  # staged: before the write into a new staging
            finish.__enter__() if hasattr(finish, "__enter__") else finish()
        assert str(e.value) == said
        assert (tmp_path / "coco.json").read_text() == "old"
        assert (staging / "coco.json").read_text() == "new"
        assert sorted(p.name for p in tmp_path.iterdir()) == [".export.new-x", "coco.json"]
    # engine info says it, as a problem (exit 1): before, the record was taken for none, and an
    # annotated subset's folder was "no image split folders found" (exit 2)
    from typer.testing import CliRunner

    from cli import app

    sub = tmp_path / "sub"
    (sub / ".masks.new-x" / "masks").mkdir(parents=True)
    (sub / ".masks.new-x" / SWAP_RECORD).write_bytes(record)
    res = CliRunner().invoke(app, ["info", str(sub)], env={"COLUMNS": "2000"})
    assert (res.exit_code, res.output.splitlines()[-1]) == (
        1,
        damaged_swap_line(sub / ".masks.new-x"),
    ), res.output


def test_a_file_named_like_a_staging_folder_is_no_staging_folder_and_is_kept(tmp_path):
    """A user's file ``ROOT/.masks.txt`` (the staging prefix ``.masks.``) stopped every import
    into ``ROOT`` with NotADirectoryError (exit 2) in the fifty-first round; it is no staging
    folder: passed over, and kept. A link of that name to a folder is not followed."""
    from annotations.fileio import SWAP_RECORD, finish_swaps, staged

    (tmp_path / ".masks.txt").write_text("a user's file")
    linked = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    linked.mkdir()
    (linked / "masks").mkdir()
    (linked / SWAP_RECORD).write_text('{"in": ["masks"], "out": []}')
    (tmp_path / ".masks.link").symlink_to(linked)
    finish_swaps(tmp_path, ".masks.")
    with staged(tmp_path, ".masks.") as staging:
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            ".masks.link",
            staging.name,
            ".masks.txt",
        ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".masks.link", ".masks.txt"]
    assert (tmp_path / ".masks.txt").read_text() == "a user's file"
    assert sorted(p.name for p in linked.iterdir()) == [SWAP_RECORD, "masks"]


def test_a_staging_folder_of_another_user_is_named_in_one_line_not_passed_over(
    tmp_path, monkeypatch
):
    """``mkdtemp`` makes a staging folder its owner's alone (0700): another user's, left by a
    write killed in a shared folder, may hold a swap half done that this user can neither read,
    finish nor remove. Before the fifty-first round it was passed over without a word (and left);
    in it, a bare ``[Errno 13] Permission denied: '.../.swap.json'``. Tests run as root, who reads
    any folder: the refusal is the read's."""
    from annotations.fileio import SWAP_RECORD, finish_swaps, staged

    staging = tmp_path / ".export.new-x"
    staging.mkdir()
    (staging / "coco.json").write_text("new")
    (staging / SWAP_RECORD).write_text('{"in": ["coco.json"], "out": []}')
    read_bytes = Path.read_bytes

    def refused(self):
        if self.name == SWAP_RECORD:
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", refused)
    for finish in (lambda: finish_swaps(tmp_path, ".export."), staged(tmp_path, ".export.")):
        with pytest.raises(PermissionError) as e:
            finish.__enter__() if hasattr(finish, "__enter__") else finish()
        assert first_line(e.value) == (
            f"{staging}: cannot read it (Permission denied): a write of another user into "
            f"{tmp_path} left it, perhaps killed while putting its files in; ask them (or root) "
            "to run their command again or to remove .export.new-x/, then run again"
        )
        assert sorted(p.name for p in tmp_path.iterdir()) == [".export.new-x"]
        assert sorted(p.name for p in staging.iterdir()) == [SWAP_RECORD, "coco.json"]


@pytest.mark.skipif(sys.platform == "win32", reason="flock, symbolic links")
def test_own_file_waits_for_the_folders_lock_and_leaves_it_free(tmp_path):
    """own_file replaces a link under an flock on its folder (two processes at once make one
    file), copies what the link leads to with keep, and frees the folder's lock when done: a
    second call in the same folder does not wait for the first's."""
    import fcntl
    import os
    import threading

    from annotations.fileio import own_file

    (tmp_path / "original").write_bytes(b"record")
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / name).symlink_to(tmp_path / "original")
    held = os.open(folder, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # another process making the folder's file
    first = threading.Thread(target=own_file, args=(folder / "a",), daemon=True)
    try:
        first.start()
        first.join(0.3)
        assert first.is_alive() and (folder / "a").is_symlink()  # waits for the folder's lock
    finally:
        os.close(held)  # a failed assert must not leave the thread blocked for the session
    first.join(10)
    assert not first.is_alive()
    assert not (folder / "a").is_symlink() and (folder / "a").read_bytes() == b"record"
    second = threading.Thread(target=own_file, args=(folder / "b",), kwargs={"keep": False})
    second.daemon = True
    second.start()
    second.join(10)
    assert not second.is_alive()  # the first call's lock is gone with it
    assert not (folder / "b").is_symlink() and (folder / "b").read_bytes() == b""
    assert (tmp_path / "original").read_bytes() == b"record"
    assert sorted(p.name for p in folder.iterdir()) == ["a", "b"]
