"""What ``engine synth`` and ``engine fuse`` leave in a dataset they write, and what it says of
the dataset's state: unfinished (stopped, or being written) or finished (:class:`FusionState`,
:func:`synth_unfinished`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from annotations.fileio import FUSE_RECORD

# what engine synth writes while it has not finished (engine.synth.writer.UNFINISHED)
SYNTH_UNFINISHED = "synth.partial.json"
SYNTH_RECORD = "synth.json"  # a finished synth's record (engine.synth.writer.RECORD)


def _unfinished(what: str, holder: str | None, stopped: str, command: str) -> tuple[str, str, bool]:
    """An output a command has not finished, as readers and ``engine info`` say it: what is
    unfinished and what to do, as two phrases, and whether it stopped. ``holder`` (the process
    writing it now, :func:`engine.runlock.writer`) follows ``what``: wait for it; without one,
    ``stopped`` says it: the same ``command`` finishes it."""
    if holder:
        return f"{what}{holder} is writing it now", "wait for it to finish", False
    return stopped, f"run the same {command} command again to finish it (it resumes)", True


@dataclass(frozen=True)
class FusionState:
    """A dataset's fusion as its ``fuse.json`` and lock said it when read
    (:meth:`~engine.datasets.layout.DatasetSpec.fusion_state`)."""

    record: dict | None  # fuse.json; None for another dataset, or one unreadable
    writer: str | None  # the process writing it now (its lock is held; asked where fuse.json is)

    @property
    def unfinished(self) -> tuple[str, str, bool] | None:
        """A fusion ``fuse.json`` says did not finish (``running``): stopped, or running now,
        which its lock tells apart, as :func:`_unfinished` says it; None for any other."""
        if (self.record or {}).get("status") != "running":
            return None
        state = f"its fusion did not finish ({FUSE_RECORD}: status running)"
        stopped = f"{state} and no process writes it now (stopped)"
        return _unfinished(f"{state}: ", self.writer, stopped, "engine fuse")

    @property
    def in_progress(self) -> tuple[str, str, bool] | None:
        """:attr:`unfinished`, or, where ``fuse.json`` says the fusion finished, an ``engine
        fuse`` into the dataset again that holds its lock (planning, removing orphan labels,
        before it writes ``running``): what a reader of one of its folders given by itself is
        told (:func:`~engine.datasets.layout.check_folder_finished`), as the dataset given as one is
        refused by its lock. Before, such a folder was read while the fusion wrote it."""
        if self.unfinished or not self.writer:
            return self.unfinished
        return _unfinished("", self.writer, "", "engine fuse")

    @property
    def hint(self) -> str:
        """``"; ..."`` for the end of a "no label" error about a fused dataset whose fusion
        did not finish (:attr:`unfinished`) or failed some images (``incomplete``): its labels
        are missing for that reason, and the same ``engine fuse`` command writes them; ``""``
        for any other dataset."""
        if stopped := self.unfinished:
            return f"; {stopped[0]}: {stopped[1]}"
        if (self.record or {}).get("status") == "incomplete":
            return (
                f"; fusion failed on some images ({FUSE_RECORD} lists them, with why): mend "
                "those files and run the same engine fuse command again"
            )
        return ""


def synth_unfinished(folder: Path, where: str = "") -> tuple[str, str, bool] | None:
    """:meth:`~engine.datasets.layout.DatasetSpec.unfinished_synth`'s answer for the one folder
    ``folder``, each phrase of what is unfinished led by ``where``; None where no
    ``synth.partial.json`` is."""
    from engine.runlock import writer

    if not (folder / SYNTH_UNFINISHED).is_file():
        return None
    holder = writer(folder)
    if not holder and not (folder / SYNTH_UNFINISHED).is_file():
        return None  # synth finished since: unlinks it under its lock, then frees the lock
        # (before, said "stopped")
    stopped = (
        f"{where}its engine synth stopped before its last scene ({SYNTH_UNFINISHED}) "
        "and no process writes it now"
    )
    return _unfinished(where, holder, stopped, "engine synth")
