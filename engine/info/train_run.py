"""What ``engine info RUN`` says of a training run (``engine train``'s output): its
settings, the step it reached of its iterations, its last loss and validation, its checkpoints,
and the way on (``--resume``, or the command that starts it again); and of ``engine
demo-pretrain``'s folder whose checkpoint is not exported yet.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotations.fileio import first_line
from annotations.taxonomy import Taxonomy
from engine.info.records import add_made_with, record_object
from engine.info.unfinished import _cannot_tell
from engine.runinfo import saved_step
from engine.runlock import lockless, writers
from engine.text import counted, few, first_lines


@dataclass
class TrainRunStats:
    """What ``engine info RUN`` shows for a training run (``engine train``'s output)."""

    root: Path
    config: dict  # the resolved training config (config.json)
    step: int  # the last logged step
    last: dict  # that step's log line (loss, lr, it/s)
    val: dict | None  # the last validation line: its step and scores
    resumes: int  # times the run was resumed
    checkpoints: list[str]  # checkpoint files in the folder
    environment: dict = field(default_factory=dict)  # environment.json: the code it started with
    taxonomy: dict | None = None  # the classes it learns by id (config.json); None: not recorded
    warnings: list[str] = field(default_factory=list)  # what it printed (metrics.jsonl events)
    skipped: list[str] = field(default_factory=list)  # images it could not read (skipped.jsonl)
    non_finite: dict | None = None  # the step whose loss blew up, when that stopped the last call
    saved: int | None = None  # last.pt's step (engine.runinfo.saved_step); None: not known

    @property
    def finished(self) -> bool:
        """Whether the run trained all its steps into ``last.pt`` and, validating, logged the
        last one's validation, as a ``--resume`` decides (``trainer.train._finished``). Before
        the fifty-first round the last logged step alone decided: a run killed after logging its
        last step, before last.pt was written (or during the last validation), read as finished,
        exit 0, where its --resume goes on."""
        return self.step >= self.iters and self.pending is None

    @property
    def pending(self) -> str | None:
        """What a run that logged its last step has still to do: ``"checkpoint"`` (last.pt
        holds an earlier step, :func:`engine.runinfo.saved_step`; not known: taken as written)
        or ``"validation"`` (none logged at that step); None where nothing."""
        if self.saved is not None and self.saved < self.step:
            return "checkpoint"
        validates = bool(self.config.get("val_split") or self.config.get("val_subsets"))
        if validates and (self.val is None or self.val.get("step") != self.step):
            return "validation"
        return None

    @property
    def logged(self) -> bool:
        """Whether the run logged a step or a validation (metrics.jsonl): killed before its
        first, it holds its config files only."""
        return bool(self.last) or self.val is not None or self.step > 0

    @property
    def iters(self) -> int:
        """The run's planned iterations (``config.iters``); a hand edit that left no number
        there is one line naming the file (before, a TypeError traceback)."""
        value = self.config.get("iters")
        try:
            return int(value or 0)
        except (TypeError, ValueError):
            path = self.root / "config.json"
            raise ValueError(f"{path}: 'config.iters' is not a number, got {value!r:.40}") from None


def train_run_stats(root: str | os.PathLike) -> TrainRunStats:
    """A training run's settings and where it stands: last logged step of its iterations, loss,
    speed, the last validation and the checkpoints, from its config.json and metrics.jsonl."""
    from annotations.fileio import read_json, read_jsonl

    root = Path(root)
    path = root / "config.json"
    record = read_json(path, "training config")
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not an engine training config (not an object)")
    config = record_object(record, "config", path)
    lines = read_jsonl(root / "metrics.jsonl")
    steps = [r for r in lines if "loss" in r]
    vals = [r for r in lines if "val" in r]
    # a resume cuts the log back to its checkpoint, so a non-finite event left in it stopped
    # the last call (trainer.train: the event is written, then NonFiniteLossError)
    blown = [r for r in lines if r.get("event") == "non_finite"]
    skipped = read_jsonl(root / "skipped.jsonl")  # [] where there is none
    return TrainRunStats(
        root=root,
        config=config,
        # events (a warning, the step whose loss blew up) are no step the run completed
        step=max((int(r.get("step", 0)) for r in lines if "event" not in r), default=0),
        last=steps[-1] if steps else {},
        val={"step": vals[-1].get("step"), **vals[-1]["val"]} if vals else None,
        resumes=len(read_jsonl(root / "resumes.jsonl"))
        if (root / "resumes.jsonl").is_file()
        else 0,
        checkpoints=sorted(p.name for p in root.glob("*.pt")),
        environment=_environment(root / "environment.json"),
        taxonomy=record.get("taxonomy") if isinstance(record.get("taxonomy"), dict) else None,
        warnings=[
            f"step {r.get('step')}: {r.get('message')}"
            for r in lines
            if r.get("event") == "warning"
        ],
        skipped=[
            f"step {r.get('step')}, {r.get('during')}: {r.get('problem')}"
            for r in skipped
            if isinstance(r, dict)
        ],
        non_finite=blown[-1] if blown else None,
        saved=saved_step(root),
    )


def _classes_line(taxonomy: dict | None) -> str:
    """The classes a training run learns, by id, the new ones with their parents (``0 Others,
    ..., 7 Bicycle (new, of Others)``): which id is which in a model of classes added one after
    another. The first 20, then how many in all."""
    if taxonomy is None:
        return "not recorded (a run before the forty-third round: its checkpoints hold them)"
    try:
        tax = Taxonomy.from_dict(taxonomy, source="config.json: taxonomy")
    except ValueError as e:
        return first_line(e)
    names = [
        f"{c.id} {c.name}" + ("" if c.parent is None else f" (new, of {tax[c.parent].name})")
        for c in tax
    ]
    return few(names, 20, total=True)


def _environment(path: Path) -> dict:
    """A run's ``environment.json``, or ``{}`` where it is missing or unreadable: the run is
    shown all the same."""
    from annotations.fileio import read_json

    try:
        env = read_json(path, "environment record")
    except (OSError, ValueError):
        return {}
    return env if isinstance(env, dict) else {}


def _start_again(root: Path) -> str:
    """``engine train --config RUN/config.yaml`` with the run's folder and the paths its config
    holds as typed (relative to where it started) as they are found from here, as ``--resume``
    finds them (:func:`annotations.fileio.recorded_root`): before, the bare ``--config`` from
    another working directory failed (``runs/fused/bicycle: dataset root not found``) or
    trained into another folder (its ``out``). Read from the folder the run recorded it started
    in (:func:`engine.runinfo.config_cwd`), they are absolute: before the forty-ninth round a
    ``data`` of the folder the command was shown in was named, and trained on."""
    from annotations.fileio import read_yaml, recorded_root
    from engine.runinfo import config_cwd

    config = root / "config.yaml"
    words = ["engine", "train", "--config", str(config), "--out", str(root)]
    try:
        typed = read_yaml(config, "config.yaml")
    except (OSError, ValueError):
        typed = None
    if not isinstance(typed, dict):  # an error of its own, which the command says
        return shlex.join(words)
    beside = (typed.get("out"), root)
    cwd = config_cwd(root)  # typed from there: data there, not a "data" here

    def found(value: Any) -> str | None:  # a path as found from here, where config's is not it
        if not isinstance(value, str) or not value or value[0] == "~":
            return None  # config.yaml holds it as it is (a "~" quoted would reach no home)
        path = str(recorded_root(value, None, beside, cwd))
        # an absolute path (a resume records the root it found so) is given only where the
        # run's project was copied or moved: before, the copy's command trained on the original's
        same = os.path.isabs(value) and os.path.normpath(path) == os.path.normpath(value)
        return None if same else path  # (a trailing / as typed is the same folder)

    for key, option in (("data", "--data"), ("init", "--init")):
        if (path := found(typed.get(key))) is not None:
            words += [option, path]
    weights = typed.get("backbone_weights")
    if weights not in ("auto", "torchvision", "none") and (path := found(weights)) is not None:
        words += ["--backbone-weights", path]
    subsets = typed.get("val_subsets")
    if isinstance(subsets, list) and any(found(v) is not None for v in subsets):
        for v in subsets:  # --val-subset given replaces the config's list: all of them
            words += ["--val-subset", found(v) or str(v)]
    return shlex.join(words)


def render_train_run(stats: TrainRunStats, live: dict[str, str] | None = None) -> list:
    """Rich renderables for :func:`train_run_stats`. ``live``: the processes writing the run
    now by their lock files (:func:`engine.runlock.writers`), where the caller asked already;
    else asked here."""
    from rich.table import Table

    from engine.text import score_cells

    c = stats.config
    head = Table(title=f"Training run {stats.root}", show_header=False)
    head.add_column("what")
    head.add_column("value", overflow="fold")
    iters = stats.iters
    # a run at its last step too: an engine train --resume --iters MORE builds its data and
    # model before it rewrites config.json (before, "finished" and "next: engine predict")
    holder = ", ".join((writers(stats.root) if live is None else live).values()) or None
    resume = f"engine train --out {shlex.quote(str(stats.root))} --resume"
    blown = stats.non_finite
    # the way on: --resume from last.pt (the run's folder: a bare --resume continues
    # runs/train/run, the default --out); with none, killed (or blown up) before the first
    # checkpoint, --resume fails ("checkpoint not found") and the run starts again: from its
    # recorded config.yaml, or without one from the command that started it (a fresh run in
    # the folder starts its logs anew)
    if "last.pt" in stats.checkpoints:
        way_on = f"{resume} continues it"
        # from last.pt's step, which a kill -9 leaves behind the last logged one (the steps
        # since are trained again): before the fiftieth round only the logged step was named
        if stats.saved is not None and stats.saved != stats.step:
            way_on += f" from step {stats.saved:,} (last.pt's)"
    elif (stats.root / "config.yaml").is_file():
        way_on = f"{_start_again(stats.root)} starts it again"
    else:
        way_on = (
            "run the command that started it again (no last.pt to --resume from; its "
            f"settings: {stats.root / 'config.json'})"
        )
    first = "" if "last.pt" in stats.checkpoints else " before its first checkpoint"
    # last.pt known to hold the last logged step (its saved_step.json): its --resume validates
    # only; not known (a run before the fiftieth round, a copy), it may train steps again, and
    # the generic line stands (the fifty-first round said "validates it" there too)
    if stats.step >= iters and stats.pending == "validation" and stats.saved == stats.step:
        first, way_on = " during its last validation", f"{resume} validates it"
    # engine train exports nothing
    if _train_command(stats.root, stats.environment) == "engine demo-pretrain":
        way_on = "run the same engine demo-pretrain command again (it goes on, then exports)"
    state = (
        f"running now: {holder}"
        if holder
        else "finished"
        if stats.finished
        # the loss became NaN/inf: the same resume meets the same step again
        else f"failed: non-finite loss at step {blown.get('step')} ("
        + ", ".join(f"{n}={v}" for n, v in list((blown.get("terms") or {}).items())[:6])
        + f"); lower the learning rate or check the data, then {way_on}"
        if blown
        else f"stopped{first}: {way_on}"
    )
    started = "" if stats.logged else "started, no step logged; "
    head.add_row("step", f"{stats.step:,} of {iters:,} ({started}{state})")
    if stats.finished and not holder and not (stats.root / "curves.png").is_file():
        # its last.pt and log written, then killed (or out of disk) as it drew the figure: the
        # run is finished (exit 0), but before the fifty-sixth round nothing said the figure
        # was missing nor that its --resume draws it (trainer.train._draw_missing_curves)
        head.add_row(
            "curves",
            "no curves.png (stopped as the run's end drew it, or no matplotlib then): "
            f"{resume} draws it",
        )
    head.add_row("data", str(c.get("data")))
    head.add_row("model", f"{c.get('preset')}" + (f", from {c['init']}" if c.get("init") else ""))
    head.add_row("classes", _classes_line(stats.taxonomy))
    aug = record_object(c, "augment", stats.root / "config.json", "config.augment")
    loss = record_object(c, "loss", stats.root / "config.json", "config.loss")
    dec = record_object(loss, "decoupling", stats.root / "config.json", "config.loss.decoupling")
    # the decoupling's settings where they are not the defaults (a run before a key existed
    # trained with its default): before, a flat or contact run read as a default one; and
    # all_precise (no pixel weighed as pseudo), which read as a joint run's recipe before
    shown = [("pseudo form", "pseudo_form", "origin"), ("drawn rule", "drawn_rule", "window")]
    head.add_row(
        "recipe",
        f"batch {c.get('batch_size')}, crop {aug.get('crop')}, lr {c.get('lr')}, "
        f"class crops {aug.get('class_crop_prob')}"
        + (f", seed {c['seed']}" if c.get("seed") is not None else "")
        + (", all precise" if c.get("all_precise") is True else "")
        + "".join(
            f", {label} {dec[key]}"
            for label, key, default in shown
            if dec.get(key, default) != default
        ),
    )
    if stats.last:
        speed = f", {stats.last['it_s']:.2f} it/s" if stats.last.get("it_s") else ""
        head.add_row("last loss", f"{stats.last['loss']:.4f} (step {stats.last['step']}{speed})")
    head.add_row("resumed", counted(stats.resumes, "time") if stats.resumes else "never")
    head.add_row("checkpoints", ", ".join(stats.checkpoints) or "none")
    add_made_with(head, stats.environment)
    # what the run printed, kept in its folder: a nohup or scheduler run's console is gone
    for line in first_lines(stats.skipped, stats.root / "skipped.jsonl", shown=5):
        head.add_row("skipped", line)
    for line in first_lines(stats.warnings, stats.root / "metrics.jsonl", shown=5):
        head.add_row("warning", line)
    out: list = [head]
    if stats.val:
        v = stats.val
        images = counted(int(v.get("images") or 0), "image")
        table = Table(title=f"Last validation (step {v.get('step')}, {images})")
        for col in ("class", "IoU", "BIoU", "BF1", "against"):
            table.add_column(col, justify="left" if col in ("class", "against") else "right")
        for cls in v.get("classes") or []:
            table.add_row(cls["name"], *score_cells(cls), cls.get("vs", "labels"))
        for sub in v.get("subsets") or []:
            against = f"annotated subset ({sub.get('images')} images)"
            table.add_row(sub["class"], *score_cells(sub), against)
        mean = {"iou": v.get("mIoU"), "biou": v.get("mBIoU"), "bf1": v.get("mBF1")}
        table.add_row("mean", *score_cells(mean), "")
        out.append(table)
    if stats.finished and "last.pt" in stats.checkpoints and not holder:
        out.append(
            f"next: engine predict --checkpoint {shlex.quote(str(stats.root / 'last.pt'))} --data DATA "
            "--split test "
            "--out PRED (then engine report or compare against an annotated subset)"
        )
    return out


def _unexported_pretrain(folder: Path) -> tuple[str, int] | None:
    """What ``engine info`` adds for ``engine demo-pretrain``'s folder (its training in
    ``train/``, started by that command: ``environment.json``) without the checkpoint it exports
    last: the same command goes on (and exports). Before, a run killed after its last step, its
    checkpoint not yet exported, read as a finished training run (exit 0, "next: engine
    predict"), and one killed mid-training was told to start ``engine train`` again, which
    exports nothing. None where the checkpoint is there, or for another command's folder."""
    from engine.pretrain import CHECKPOINT_NAME
    from engine.runlock import writers

    checkpoint = folder / CHECKPOINT_NAME
    if checkpoint.exists() or not _pretrain_folder(folder):
        return None
    if writers(folder / "train"):
        return f"{folder}: engine demo-pretrain is training now; it exports {checkpoint} last", 0
    if lockless(folder / "train"):  # a run there goes on unlocked: not told stopped
        doing = f"engine demo-pretrain is training it (its checkpoint {checkpoint} not exported)"
        return _cannot_tell(folder, doing, "engine demo-pretrain")
    return (
        f"{folder}: engine demo-pretrain not finished: its checkpoint {checkpoint} not exported "
        "yet; run the same engine demo-pretrain command again (it goes on from train/last.pt "
        "where there is one, then exports)",
        1,
    )


def _pretrain_folder(folder: Path) -> bool:
    """Whether ``folder`` is ``engine demo-pretrain``'s ``--out``: its training in ``train/``,
    started by that command (:func:`_train_command`)."""
    return _train_command(folder / "train") == "engine demo-pretrain"


def _train_command(run: Path, environment: dict | None = None) -> str:
    """The command that started the training run ``run`` and goes on with it: ``engine
    demo-pretrain`` where its ``environment.json``'s argv says so, else ``engine train``.
    ``environment``: that file as read already (:attr:`TrainRunStats.environment`); before,
    engine info read it three times for one training run."""
    if environment is None:
        environment = _environment(run / "environment.json")
    argv = environment.get("argv")
    pretrain = isinstance(argv, list) and argv[1:2] == ["demo-pretrain"]
    return "engine demo-pretrain" if pretrain else "engine train"
