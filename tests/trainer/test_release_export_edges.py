"""The way back to the release (trainer.release_export): the refusals that the round trips of
test_release_export.py do not reach: a key with no release name, an --out holding another
file, a source that is no checkpoint at all, and which fields make another preset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.trainer.test_release_export import _engine_checkpoint
from trainer.release_export import check_export_out, export_massformer, export_release_state


def test_a_key_with_no_release_name_is_named() -> None:
    state = {"backbone.stem.0.weight": torch.zeros(2), "head.extra.weight": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"^last\.pt: 1 keys have no release name: head\.extra"):
        export_release_state(state, "last.pt")


def test_an_out_holding_another_file_is_refused(tmp_path: Path) -> None:
    """The authors' own file (its meta has no exported_from), a training checkpoint, a text file:
    each refused, untouched; an earlier export is replaced (a rerun); a folder is named so."""
    src = tmp_path / "last.pt"
    files = {
        "release.pth": {"state_dict": {"x": torch.zeros(1)}, "meta": {"mmseg_version": "1.2.2"}},
        "train.pt": {"format": 1, "step": 3, "model": {}},
    }
    for name, held in files.items():
        torch.save(held, tmp_path / name)
    (tmp_path / "notes.pth").write_text("notes\n")
    for name in (*files, "notes.pth"):
        out = tmp_path / name
        before = out.read_bytes()
        with pytest.raises(ValueError, match=f"{name}: exists .not a file engine convert-massf"):
            check_export_out(src, out)
        assert out.read_bytes() == before
    torch.save({"state_dict": {}, "meta": {"exported_from": {"path": "x"}}}, tmp_path / "old.pth")
    check_export_out(src, tmp_path / "old.pth")
    # a folder: the file meant is named (it read "exists (not a file ... wrote)")
    with pytest.raises(ValueError, match=r": a folder; give the file to write, e\.g\. --out .*"):
        check_export_out(src, tmp_path)


def test_a_source_that_is_no_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "notes.pt"
    src.write_text("notes\n")
    with pytest.raises(ValueError, match=r"notes\.pt: not a readable checkpoint"):
        export_massformer(src, tmp_path / "r.pth")
    assert not (tmp_path / "r.pth").exists()


def test_another_preset_names_the_fields_that_differ(tmp_path: Path) -> None:
    src = _engine_checkpoint(tmp_path / "tiny.pt", "tiny")
    with pytest.raises(ValueError, match=r"not the massformer_r50 preset \(backbone 'tiny_resnet'"):
        export_massformer(src, tmp_path / "r.pth")
