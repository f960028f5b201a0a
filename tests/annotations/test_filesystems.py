"""Outputs on file systems that lack a POSIX call the engine uses (docs/foundation.md, "Network,
FUSE and container file systems"): each is simulated by making the call fail as such a mount
does."""

from __future__ import annotations

import errno
import os
import stat

import pytest
from typer.testing import CliRunner

SYNTH = ["--train", "1", "--val", "0", "--test", "1", "--size", "96x64", "--no-progress"]


def _fails(code: int):
    def call(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return call


@pytest.mark.parametrize("code", [errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS])
def test_outputs_are_written_where_the_file_system_has_no_fsync(tmp_path, monkeypatch, code):
    """sshfs without its fsync extension, s3fs, davfs: fsync fails with EINVAL, EOPNOTSUPP or
    ENOSYS. Every write failed with a traceback; the rename alone keeps them atomic."""
    from cli import app

    monkeypatch.setattr(os, "fsync", _fails(code))
    out = tmp_path / "data"
    res = CliRunner().invoke(app, ["synth", "--out", str(out), *SYNTH])
    assert res.exit_code == 0, res.output
    assert "wrote 2 images" in res.output
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_a_failing_fsync_of_a_full_or_failing_disk_still_stops_the_write(tmp_path, monkeypatch):
    from annotations.fileio import append_line, atomic_write_text

    monkeypatch.setattr(os, "fsync", _fails(errno.EIO))
    with pytest.raises(OSError, match="Input/output error") as e:
        atomic_write_text(tmp_path / "a.json", "{}")
    assert e.value.filename == str(tmp_path / "a.json")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(os, "fsync", _fails(errno.ENOSPC))
    with pytest.raises(OSError, match="No space left"):
        append_line(tmp_path / "m.jsonl", "{}")


def test_a_log_is_appended_to_where_the_file_system_has_no_fsync(tmp_path, monkeypatch):
    from annotations.fileio import append_line, read_jsonl

    monkeypatch.setattr(os, "fsync", _fails(errno.EINVAL))
    append_line(tmp_path / "m.jsonl", '{"a": 1}')
    assert read_jsonl(tmp_path / "m.jsonl") == [{"a": 1}]


def test_outputs_are_written_where_the_file_system_refuses_chmod(tmp_path, monkeypatch):
    """FAT and exFAT, SMB without Unix extensions, s3fs refuse chmod (EPERM) and give files the
    mount's mode: every output failed with ``error: PATH: Operation not permitted`` (exit 2)."""
    from cli import app

    monkeypatch.setattr(os, "fchmod", _fails(errno.EPERM))
    out = tmp_path / "data"
    res = CliRunner().invoke(app, ["synth", "--out", str(out), *SYNTH])
    assert res.exit_code == 0, res.output
    assert "wrote 2 images" in res.output


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS])
def test_a_mode_set_where_the_file_system_refuses_chmod_is_the_mounts(tmp_path, monkeypatch, code):
    """Since the fifty-fourth round the engine's own outputs are created with their mode and
    never chmod'ed (the test above passes without any chmod); :func:`set_mode`, which gives
    another library's files theirs (``convert-sam``'s ``model.safetensors``), still meets a
    mount that refuses it: the file keeps the mount's mode. A failing disk still raises."""
    from annotations.fileio import set_mode

    path = tmp_path / "model.safetensors"
    path.write_bytes(b"x")
    before = path.stat().st_mode
    fd = os.open(path, os.O_RDONLY)
    try:
        monkeypatch.setattr(os, "fchmod", _fails(code))
        set_mode(fd, 0o600)
        monkeypatch.setattr(os, "fchmod", _fails(errno.EIO))
        with pytest.raises(OSError, match="Input/output error"):
            set_mode(fd, 0o600)
    finally:
        os.close(fd)
    assert path.stat().st_mode == before


def test_outputs_get_the_usual_permissions_where_chmod_works(tmp_path):
    from annotations.fileio import atomic_write_text
    from tests.file_modes import file_mode

    path = atomic_write_text(tmp_path / "a.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == file_mode()


def test_a_umask_set_between_two_commands_holds_for_the_second_ones_files(tmp_path):
    """A notebook or pipeline that sets its umask between two commands (0077: the next outputs
    private) got the first command's umask for every later file, as it was read once: 0644
    files inside the 0700 folders of the second one."""
    from cli import app

    before = os.umask(0o022)
    try:
        res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "a"), *SYNTH])
        assert res.exit_code == 0, res.output
        os.umask(0o077)
        res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "b"), *SYNTH])
        assert res.exit_code == 0, res.output
    finally:
        os.umask(before)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert modes == {0o600}, sorted(map(oct, modes))
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "a").rglob("*") if p.is_file()}
    assert modes == {0o644}, sorted(map(oct, modes))


def _default_acl(folder, owner: int, group: int, other: int) -> None:
    """Give ``folder`` a default ACL (``setfacl -d -m u::OWNER,g::GROUP,o::OTHER``) through the
    kernel's own attribute (no setfacl needed); skips where the file system keeps no ACLs."""
    import struct

    undefined = 0xFFFFFFFF  # ACL_UNDEFINED_ID; tags: ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER
    entries = [(0x01, owner), (0x04, group), (0x20, other)]
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, undefined) for t, p in entries)
    if not hasattr(os, "setxattr"):
        pytest.skip("no extended attributes here (POSIX ACLs are Linux's)")
    try:
        os.setxattr(folder, "system.posix_acl_default", acl)
    except OSError as e:
        pytest.skip(f"the file system keeps no ACLs ({e.strerror})")


@pytest.mark.parametrize(
    ("umask", "acl", "mode"),
    [
        (0o022, (6, 6, 0), 0o660),  # a folder kept from others: no output readable by them
        (0o022, (6, 6, 4), 0o664),  # a team's folder: its group may write what a run wrote
        (0o077, (6, 6, 4), 0o664),  # the ACL, not the umask, as for open()
    ],
)
def test_outputs_get_what_a_folders_default_acl_gives_a_new_file(tmp_path, umask, acl, mode):
    """A shared folder with a default ACL gives a new file its ACL's permissions, not 0666 less
    the umask. Every output was set to the umask's (0644) where ``open()`` gives 0660 or 0664:
    readable by every user of the machine in a folder kept from them, without the group write
    a team's folder gives. As root too (a mode, not an access check)."""
    from cli import app

    _default_acl(tmp_path, *acl)
    before = os.umask(umask)
    try:
        open(tmp_path / "plain.txt", "w").close()
        res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "data"), *SYNTH])
        assert res.exit_code == 0, res.output
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == mode
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert len(files) >= 4  # the images, their label maps, synth.json (and the lock)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in files}
    assert modes == {mode}, sorted(map(oct, modes))


def test_a_folder_overlayfs_will_not_rename_is_replaced_all_the_same(tmp_path, monkeypatch):
    """overlayfs (a container's root) renames no folder of its image's layer (EXDEV): the
    swap of an ``engine annotate export --force`` stopped with a traceback halfway, the new
    coco.json beside the old labelme/."""
    from annotations.fileio import staged, swap_in

    root = tmp_path / "export"
    (root / "labelme").mkdir(parents=True)
    (root / "labelme" / "old.json").write_text("old")
    (root / "coco.json").write_text("old")
    replace = os.replace

    def overlay_replace(src, dst):
        if os.path.isdir(src) and ".export.new-" not in os.fspath(src):  # the image's folder
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), os.fspath(src), None, dst)
        replace(src, dst)

    monkeypatch.setattr(os, "replace", overlay_replace)
    with staged(root, ".export.") as staging:
        (staging / "labelme").mkdir()
        (staging / "labelme" / "new.json").write_text("new")
        (staging / "coco.json").write_text("new")
        swap_in(staging, ("coco.json", "labelme"))
    assert sorted(p.name for p in root.iterdir()) == ["coco.json", "labelme"]
    assert [p.name for p in (root / "labelme").iterdir()] == ["new.json"]
    assert (root / "coco.json").read_text() == "new"


def test_a_file_rename_refused_across_devices_is_still_an_error(tmp_path, monkeypatch):
    from annotations.fileio import staged, swap_in

    root = tmp_path / "export"
    root.mkdir()
    (root / "coco.json").write_text("old")

    def refuse(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), os.fspath(src), None, dst)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="cross-device"), staged(root, ".export.") as staging:
        (staging / "coco.json").write_text("new")
        swap_in(staging, ("coco.json",))
    assert (root / "coco.json").read_text() == "old"


def test_a_stale_nfs_handle_is_not_sent_to_check_the_disk(tmp_path, monkeypatch):
    """NFS fails a file removed or replaced by another client with ESTALE: the line said "check
    the disk", of a disk that was fine."""
    from cli import app

    monkeypatch.setattr(os, "fsync", _fails(errno.ESTALE))
    out = tmp_path / "data"
    res = CliRunner().invoke(app, ["synth", "--out", str(out), *SYNTH])
    assert res.exit_code == 74, res.output
    line = res.output.strip()
    assert line.startswith(f"error: {out}") and "Stale file handle" in line, line
    assert "no other machine removed or replaced it" in line and "check the disk" not in line
    assert len(line.splitlines()) == 1


@pytest.mark.parametrize("statfs", ["zero", "refused"])
def test_an_archive_is_unpacked_where_the_file_system_gives_no_free_space(
    tmp_path, monkeypatch, statfs
):
    """A FUSE mount without statfs reports 0 blocks (libfuse's default), or the call fails:
    every archive was refused ("has 0.0 GB free") or the import stopped with a traceback."""
    import shutil
    import zipfile

    import engine.annotate

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("annotations/instances.json", "{}")

    def disk_usage(path):
        if statfs == "refused":
            raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
        return shutil._ntuple_diskusage(0, 0, 0)

    monkeypatch.setattr(engine.annotate.archives.shutil, "disk_usage", disk_usage)
    into = engine.annotate.unzip(archive, tmp_path / "u")
    assert (tmp_path / "u" / "annotations" / "instances.json").is_file(), into
