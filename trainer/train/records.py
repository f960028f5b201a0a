"""The run folder's records as a run writes them: its config and environment files, the
metrics log (steps, warnings, a resume's cut back), skipped images, tensorboard and
curves.png; and the warning about training batches without a labelled pixel."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from annotations.fileio import (
    append_line,
    atomic_write_json,
    atomic_write_text,
    json_text,
    read_jsonl,
)
from annotations.taxonomy import IGNORE_ID, Taxonomy
from engine.runinfo import config_hash, environment
from engine.text import counted
from trainer.config import TrainConfig, plain

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

log = logging.getLogger(__name__)


SKIPPED_LOG = "skipped.jsonl"  # images a run could not read, in its run directory


class SkippedLog:
    """Images this rank could not read (:data:`annotations.fileio.UNREADABLE`), each warned about
    once and recorded in ``<out>/skipped.jsonl`` as ``{"step", "rank", "during", "problem"}``;
    a resumed run does not warn again about those already recorded. Training replaces such an
    image with the next readable one (:meth:`trainer.data.TrainSet.__getitem__`), validation
    leaves it out (:mod:`trainer.validate`)."""

    def __init__(self, out: Path, rank: int) -> None:
        self.path, self.rank = out / SKIPPED_LOG, rank
        self.seen = {str(r.get("problem")) for r in read_jsonl(self.path)}

    def note(self, problems: Iterable[str], step: int, during: str) -> None:
        for problem in problems:
            if not problem or problem in self.seen:
                continue
            self.seen.add(problem)
            log.warning("skipped in %s: %s (listed in %s)", during, problem, self.path)
            record = {"step": step, "rank": self.rank, "during": during, "problem": problem}
            append_line(self.path, json.dumps(record))

    def batches(self, loader: Iterable[dict[str, Any]], step: Callable[[], int]) -> Iterator:
        """``loader``'s batches without their ``"skipped"`` entries, noted at ``step()``."""
        for batch in loader:
            texts = batch.pop("skipped")
            self.note((p for text in texts for p in text.split("\n")), step(), "training")
            yield batch


NO_LABEL_BATCHES = 20  # training batches in a row, from a call's first, that warn when unlabelled


def warn_unlabelled(
    batches: Iterable[dict[str, Any]],
    limit: int,
    where: str,
    warn: Callable[[str], None],
) -> Iterator[dict[str, Any]]:
    """``batches`` as they are, with one warning (through ``warn``) when the first ``limit`` of
    them hold no labelled pixel (every label 255, ignore): a model trained on them learns
    nothing, yet the run went on without a word (a dataset whose labels were all 255 trained to
    the end). The labels are looked at on the CPU, before they go to the device."""
    unlabelled = 0
    for batch in batches:
        if 0 <= unlabelled < limit:
            unlabelled = unlabelled + 1 if not bool((batch["label"] != IGNORE_ID).any()) else -1
            if unlabelled == limit:
                warn(
                    f"{where}: the first {counted(limit, 'training batch', 'training batches')} "
                    "of this run hold no labelled pixel (every label is 255, ignore): the model "
                    "learns nothing from them; check the labels"
                )
        yield batch


class RunWarnings:
    """The warnings a training call prints, each also kept in the run's ``metrics.jsonl`` as
    ``{"step", "event": "warning", "message"}``: a run started under nohup or a scheduler, its
    console gone, still says what it warned about (``engine info RUN``). Before, only the
    unreadable images (``skipped.jsonl``) were kept. Warnings said before the run folder is set
    up (a fresh run's stale logs removed, a resume's log cut back to its checkpoint) wait for
    :meth:`open`. The main process's only: the other ranks say none."""

    def __init__(self, out: Path) -> None:
        self.path = out / "metrics.jsonl"
        self.waiting: list[tuple[int, str]] | None = []

    def warn(self, message: str, step: int) -> None:
        log.warning("%s", message)
        if self.waiting is not None:
            self.waiting.append((step, message))
        else:
            self._keep(step, message)

    def open(self) -> None:
        """The run folder is ready: the waiting warnings are written, later ones at once."""
        waiting, self.waiting = self.waiting or [], None
        for step, message in waiting:
            self._keep(step, message)

    def _keep(self, step: int, message: str) -> None:
        record = {"step": step, "event": "warning", "message": message}  # read by engine info
        # json_text: a folder named on a latin-1 system (caf\xe9) escaped, \udce9; as it was
        # (ensure_ascii=False) it had no UTF-8, and a warning naming it stopped the run, exit 2
        append_line(self.path, json_text(record, indent=None))


def _drop_lines_after(path: Path, step: int) -> None:
    """Rewrite the log ``path`` (atomically) without its lines of steps after ``step``: what a
    run logged after its last checkpoint (stopped by Ctrl-C between two) is trained again by
    the resume and logged again, so keeping it listed those steps twice (curves.png and engine
    info read one line per step). A torn last line goes too; the file is untouched when there
    is nothing to drop."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return
    kept = []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            if i < len(lines) - 1:  # a damaged middle line stays for its reader to report
                kept.append(line)
            continue
        has_step = isinstance(record, dict) and isinstance(record.get("step"), int)
        if has_step and record["step"] > step:
            continue
        kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        atomic_write_text(path, "".join(kept))


def _write_run_files(
    out: Path,
    cfg: TrainConfig,
    start: int,
    taxonomy: Taxonomy,
    ranks: dict[str, Any] | None = None,
) -> None:
    """``config.yaml``, ``config.json``, and ``environment.json`` (a fresh run) or a line of
    ``resumes.jsonl``; under DDP the environment's ``distributed`` is ``ranks``
    (:func:`trainer.ranks.layout`: the launcher, world size and each machine's ranks), which a
    run on another layout does not reproduce (one process's records have none)."""
    data = plain(cfg.to_dict())
    # max_steps_this_run limits this call, not the run: recorded, a run's config.yaml fed back
    # with --config to reproduce it stopped where the first time slice did, without a word
    data["max_steps_this_run"] = 0
    # allow_unicode: a path or class as typed ('runs/fused/自行车'), not "\u81EA\u884C\u8F66",
    # in the file a user copies to edit and pass back with --config
    atomic_write_text(
        out / "config.yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    )
    # the classes the model learns, by id (as its checkpoints hold them): engine info lists them
    # without loading a checkpoint (a model of classes added one after another: which id is which)
    record = {"config": data, "config_hash": config_hash(data), "taxonomy": taxonomy.to_dict()}
    atomic_write_json(out / "config.json", record)
    env = environment()
    if ranks is not None:
        env["distributed"] = ranks
    if start == 0:
        atomic_write_json(out / "environment.json", env)
    else:
        append_line(out / "resumes.jsonl", json.dumps({"step": start, "environment": env}))


def _tensorboard(out: Path, start: int):
    """The run's tensorboard writer, or None without the (optional) tensorboard package. A
    resume from the checkpoint of step ``start`` purges the scalars logged after it (the steps
    a Ctrl-C between two checkpoints left, which the resume trains and logs again), as
    ``_drop_lines_after`` does for metrics.jsonl; before, tensorboard drew those steps twice."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the tensorboard package is optional
        return None
    return SummaryWriter(str(out / "tensorboard"), purge_step=start + 1 if start else None)


def _log_step(
    out: Path,
    writer: Any,
    step: int,
    lr: float,
    loss: float,
    grad_norm: float,
    it_s: float,
    terms: dict[str, float],
) -> None:
    """One step's line of ``metrics.jsonl`` (and tensorboard's scalars, with a writer)."""
    line = {"step": step, "lr": lr, "loss": loss, "grad_norm": grad_norm, "it_s": it_s, **terms}
    append_line(out / "metrics.jsonl", json.dumps(line))
    if writer is not None:
        writer.add_scalar("train/loss", loss, step)
        writer.add_scalar("train/lr", lr, step)


def _draw_missing_curves(out: Path) -> bool:
    """Draw ``out/curves.png`` if it is missing (:func:`_draw_curves`); whether it now is."""
    from trainer.curves import CURVES

    if (out / CURVES).is_file():
        return False
    _draw_curves(out)
    return (out / CURVES).is_file()


def _draw_curves(out: Path) -> None:
    """``out/curves.png`` from ``out/metrics.jsonl`` (:mod:`trainer.curves`); without
    matplotlib (or with a damaged log), a note in the log instead: a figure never stops a
    training run."""
    from trainer.curves import CURVES, plot_curves

    if not (out / "metrics.jsonl").is_file():
        return
    try:
        plot_curves(out / "metrics.jsonl", out / CURVES)
    except (RuntimeError, ValueError) as e:  # no matplotlib; a log line damaged mid-file
        log.info("%s", e)
