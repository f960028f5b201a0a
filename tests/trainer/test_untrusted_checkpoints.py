"""Checkpoints from elsewhere (a colleague's, a download): nothing in them runs, and what is
refused is one line naming the file."""

from __future__ import annotations

import contextlib
import os
import pickle

import pytest
import torch

from trainer.checkpoint import load_checkpoint
from trainer.release_file import is_release_checkpoint, read_release_checkpoint


class _RunsCode:
    """Unpickled, calls ``os.system`` (a crafted file's payload): touches ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's, of a plain pickle
@pytest.mark.parametrize("kind", ["pickle", "torch"])
def test_a_checkpoint_that_would_run_code_is_refused_and_runs_none(tmp_path, kind):
    """A plain pickle given as a checkpoint (torch reads it as its legacy format) ran its code:
    every loader of engine checkpoints asks the release reader whether a file it cannot read
    is the authors', and that reader's fallback took torch's legacy header records with
    ``pickle.load`` itself. ``engine predict --checkpoint evil.pt`` touched the marker."""
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    payload = {"format": 1, "x": _RunsCode(str(marker))}
    if kind == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    with pytest.raises(ValueError) as e:
        load_checkpoint(path)
    assert not marker.exists()
    message = str(e.value)
    assert message.startswith(f"{path}: not a readable checkpoint: it holds Python objects")
    assert "which could run code and are not loaded" in message and "\n" not in message
    if kind == "torch":
        assert "(posix.system)" in message or "(nt.system)" in message
    for read in (read_release_checkpoint, is_release_checkpoint):
        with contextlib.suppress(ValueError):
            read(path)
        assert not marker.exists(), read.__name__
