"""What ``engine info RUN`` says of a label run (``engine label``'s output): its class,
models and settings, each split's images labelled, failed and not labelled yet, its shards, and
the way on.
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from annotations.fileio import UNREADABLE, file_bytes, first_line
from engine.datasets import DatasetSpec, SegDataset, load_spec, split_key
from engine.info.records import add_made_with, record_object, said_by
from engine.runlock import writers
from engine.text import counted, few


@dataclass
class RunSplit:
    """One split of a label run, from the manifest's latest record of each image."""

    labelled: int = 0  # ok with the run's current settings
    stale: int = 0  # ok with other settings: relabelled by the next run with these
    failed: int = 0  # whose latest attempt failed: retried by the next run
    pending: int | None = None  # dataset images with no record yet; None: dataset not found
    missing: int = 0  # recorded as labelled with these settings, but a file of theirs is gone
    instances: int = 0  # instances of the labelled images
    without: int = 0  # labelled images without an instance


@dataclass
class LabelRunStats:
    """What ``engine info RUN`` shows for a label run (``engine label``'s output)."""

    root: Path
    class_name: str
    class_id: int
    parent: str
    backend: str
    models: dict  # run.json backend.models: what labelled (ids, revisions, or the simulation)
    settings: dict  # the class spec's thresholds and the run's label-changing settings
    config_hash: str
    data_root: Path | None
    splits: dict[str, RunSplit]
    seconds: dict[str, float]  # mean seconds per labelled image, by stage
    failures: list[tuple[str, str, str]]  # (split, stem, reason) of images whose last try failed
    # problems of the run's dataset that do not stop showing the run (a label without its
    # image: engine info DATASET lists every problem)
    notes: list[str] = field(default_factory=list)
    # split/stem of the images labelled whose file is now another size (a photo replaced)
    changed: list[str] = field(default_factory=list)
    environment: dict = field(default_factory=dict)  # run.json's: the code that labelled
    shard: str = ""  # "i/n" when run.json's last command labelled one shard (--shard i/n)
    # of failures, those whose record says running again fails them again (retry false: an
    # image too thin to label; a record without the field, of an older run, is retried)
    not_retryable: int = 0
    # of those, by the kind its record names (cannot: labeler.models.CANNOT's keys; a record
    # without it, from before the fifty-fourth round, is of an image too thin: not counted here)
    cannot: dict[str, int] = field(default_factory=dict)
    # such a run's shards, "i/n" -> its images not labelled with the run's settings (0: the
    # shard finished); {} when unsharded or its dataset is not found
    shards: dict[str, int] = field(default_factory=dict)
    # and of those, its failed images that running again tries again (not retry false)
    shard_failures: dict[str, int] = field(default_factory=dict)
    # what run.json's calls printed, as shown (:func:`said_by`)
    warnings: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return sum(s.failed for s in self.splits.values())


def label_run_stats(root: str | os.PathLike, splits: list[str] | None = None) -> LabelRunStats:
    """A label run's class, models, settings and per-split progress: images labelled with its
    current settings, with older ones (the next run relabels them), failed, and, when its
    dataset is found, not labelled yet (an interrupted or sharded run)."""
    from annotations.labelrun import LabelRun, changed_images, done_keys, latest_records

    run = LabelRun.open(root)
    info = run.info  # run.json: a clear error when it is missing or not the labeler's
    doc = info.record
    path = run.root / "run.json"
    config = record_object(doc, "config", path)
    chash = str(doc.get("config_hash", ""))
    latest = latest_records(run.root)
    spec = None
    if info.data_root is not None and info.data_root.exists():
        spec = _spec_or_none(info.data_root)
    # the splits the run is to label (its --split, else every split of its dataset), those it
    # labelled: a split where nothing is labelled yet shows as not yet
    configured = config.get("splits")
    configured = [str(s) for s in configured] if isinstance(configured, list) else []
    if not configured and spec is not None:
        configured = spec.available_splits()
    found = {s for s, _ in latest if isinstance(s, str)} | set(run.splits()) | set(configured)
    names = splits or sorted(found, key=split_key)
    per = {s: RunSplit() for s in names}
    seconds: Counter = Counter()
    failures = []
    not_retryable, cannot = 0, Counter()
    retried: set[tuple[str, str]] = set()  # failed, and tried again by the next engine label
    skipped = done_keys(run.root, chash, latest)  # what engine label skips as done
    for (split, stem), rec in sorted(latest.items()):
        if split not in per:
            continue
        row = per[split]
        if rec.get("status") != "ok":
            row.failed += 1
            failures.append((split, stem, str(rec.get("error"))))
            if rec.get("retry") is not False:
                retried.add((split, stem))
            else:
                not_retryable += 1
                if isinstance(rec.get("cannot"), str):
                    cannot[rec["cannot"]] += 1
        elif rec.get("config_hash") != chash:
            row.stale += 1
        elif (split, stem) not in skipped:  # engine label labels it again: not yet, as it counts
            row.missing += 1
        else:
            row.labelled += 1
            row.instances += int(rec.get("instances") or 0)
            row.without += not rec.get("instances")
            seconds.update(rec.get("timings") or {})
    notes = []  # the dataset's pairing problems: the run is shown all the same
    changed: list[str] = []  # labelled images replaced since (engine label labels them again)
    listed: dict[str, list[str]] = {}  # each split's stems, in the order engine label plans
    for split, row in per.items():
        if spec is not None and spec.image_dir(split).is_dir():
            try:
                ds = SegDataset(spec, split, require_labels=False, lenient=True)
            except UNREADABLE as e:  # a folder that cannot be listed, stems shared: "?"
                notes.append(first_line(e))
                continue
            listed[split] = [smp.stem for smp in ds.samples]
            notes += [p.message for p in ds.pairing_problems]
            stems = {s.stem for s in ds.samples}
            paths = {(split, smp.stem): smp.image_path for smp in ds.samples}
            done = {k for k in paths if (latest.get(k) or {}).get("status") == "ok"}
            sizes = {k: n for k in done if (n := file_bytes(paths[k])) is not None}
            hit = changed_images(latest, done, sizes)
            changed += [f"{sp}/{stem}" for sp, stem in paths if (sp, stem) in hit]
            row.pending = len(stems - {st for sp, st in latest if sp == split}) + row.missing
    cls = record_object(config, "cls", path, "config.cls")
    backend = doc.get("backend")  # older records: the backend's name alone
    models = (
        record_object(backend, "models", path, "backend.models")
        if isinstance(backend, dict)
        else {}
    )
    simulation = models.get("simulation") if info.backend == "simulated" else None
    settings = {
        "simulation": (
            ", ".join(f"{k} {v}" for k, v in simulation.items())
            if isinstance(simulation, dict)
            else None
        ),
        "prompts": None if simulation else cls.get("prompts"),
        "negatives": cls.get("negatives"),
        "box_threshold": None if simulation else cls.get("box_threshold"),
        "text_threshold": None if simulation else cls.get("text_threshold"),
        "tiles": None if simulation else "x".join(str(v) for v in config.get("tiles") or []),
        "uncertain": config.get("uncertain"),
        "max_boxes": None if simulation else config.get("max_boxes"),
        "min_area": cls.get("min_area") or None,
        "max_instances": cls.get("max_instances"),
        "refine": config.get("refine") or None,
    }
    done = sum(r.labelled for r in per.values())
    dealt = _shards(config.get("shard"), configured, listed, spec)
    return LabelRunStats(
        root=run.root,
        class_name=info.class_name,
        class_id=info.class_id,
        parent=info.parent_name,
        backend=info.backend,
        models=models,
        settings={k: v for k, v in settings.items() if v not in (None, [], "")},
        config_hash=chash,
        data_root=info.data_root,
        splits=per,
        seconds={k: v / done for k, v in seconds.items()} if done else {},
        failures=failures,
        not_retryable=not_retryable,
        cannot=dict(cannot),
        notes=notes,
        changed=changed,
        environment=doc.get("environment") if isinstance(doc.get("environment"), dict) else {},
        shard=_shard(config.get("shard")),
        shards={k: sum(key not in skipped for key in part) for k, part in dealt.items()},
        shard_failures={k: sum(key in retried for key in part) for k, part in dealt.items()},
        warnings=said_by(doc, "engine label"),
    )


def _shards(
    recorded: object,
    configured: list[str],
    listed: dict[str, list[str]],
    spec: DatasetSpec | None,
) -> dict[str, list[tuple[str, str]]]:
    """Per shard of a run labelled with ``--shard i/n`` (run.json's ``config.shard``), its
    images: engine label's plan (``labeler.run.plan_items``: the run's splits in order, each
    split's images in order) dealt out as it deals it, every n-th image from the i-th; {} when
    unsharded or the plan is unknown. The caller counts those it skips
    (:func:`annotations.labelrun.done_keys`: labelled with the run's settings, their files
    there; in the forty-eighth round one whose files were deleted counted as done here, its
    shard "finished"), and its failed ones. Before the forty-eighth round engine info named
    the last command's shard only, not which shards had finished."""
    if not _shard(recorded) or spec is None or recorded[1] < 2:
        return {}
    plan = []
    for split in configured:
        if split not in listed:
            if not spec.image_dir(split).is_dir():
                return {}  # engine label would refuse it: no plan to deal out
            try:
                ds = SegDataset(spec, split, require_labels=False, lenient=True)
            except UNREADABLE:
                return {}
            listed[split] = [smp.stem for smp in ds.samples]
        plan += [(split, stem) for stem in listed[split]]
    n = int(recorded[1])
    return {f"{i}/{n}": plan[i::n] for i in range(n)}


def _shard(recorded: object) -> str:
    """run.json's ``config.shard`` (``[0, 2]``) as ``--shard`` takes it (``0/2``); "" for none,
    and for anything but two whole numbers ``0 <= i < n`` (a hand edit: ``["1", "2"]`` made
    engine info stop with a TypeError, where before the forty-eighth round it showed the run)."""
    if (
        isinstance(recorded, list)
        and len(recorded) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in recorded)
        and 0 <= recorded[0] < recorded[1]
    ):
        return "/".join(map(str, recorded))
    return ""


def _spec_or_none(root: Path) -> DatasetSpec | None:
    try:
        return load_spec(root)
    except (OSError, ValueError):
        return None


def _models_line(backend: str, models: dict) -> str:
    """The models that labelled, as ``id @ revision`` (or the simulation's note)."""
    if backend == "simulated":
        return "none: SIMULATED from the dataset's true masks"
    parts = []
    for role, m in models.items():
        if isinstance(m, dict) and m.get("source"):
            rev = f" @ {m['revision']}" if m.get("revision") else ""
            parts.append(f"{role} {m['source']}{rev}")
    return "; ".join(parts) or "not recorded"


# which of a label run's files hold what (docs/labeler.md, "Outputs"): the confidence map is
# its own file, which the instances (binary masks, rounded scores) cannot rebuild; before, info
# named none, and a user who kept instances/ alone lost the confidence for good
LABEL_RUN_FILES = (
    "labels/SPLIT/STEM.png: the pseudo label (0 not the class, 1 the class, 255 uncertain); "
    "confidence/SPLIT/STEM.png: each pixel's confidence (0..255), which the instances cannot "
    "rebuild; instances/SPLIT/STEM.json: each instance's box, scores, prompt and binary mask; "
    "manifest.jsonl: each image's attempts; run.json: the settings and models"
)


def render_label_run(
    stats: LabelRunStats, failures_shown: int = 5, live: dict[str, str] | None = None
) -> list:
    """Rich renderables for :func:`label_run_stats`: the run, per-split progress, failures.
    ``live``: the engine label processes writing the run now by their lock files
    (:func:`engine.runlock.writers`), where the caller asked already; else asked here."""
    from rich.table import Table

    head = Table(title=f"Label run {stats.root}", show_header=False)
    head.add_column("what")
    head.add_column("value", overflow="fold")
    head.add_row("class", f"{stats.class_name} (id {stats.class_id}, carved out of {stats.parent})")
    head.add_row("backend", stats.backend)
    head.add_row("models", _models_line(stats.backend, stats.models))
    for key, value in stats.settings.items():
        head.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    head.add_row("settings hash", stats.config_hash)
    head.add_row("dataset", str(stats.data_root) if stats.data_root else "not recorded")
    head.add_row("files", LABEL_RUN_FILES)
    add_made_with(head, stats.environment)
    for stage, sec in stats.seconds.items():
        head.add_row(f"{stage} (per image)", f"{sec:.3f} s")
    table = Table(title="Images per split (each image's latest attempt)")
    for col in ("split", "labelled", "other settings", "failed", "not yet", "instances", "none"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, r in stats.splits.items():
        table.add_row(
            split,
            f"{r.labelled:,}",
            f"{r.stale:,}",
            f"{r.failed:,}",
            "?" if r.pending is None else f"{r.pending:,}",
            f"{r.instances:,}",
            f"{r.without:,}",
        )
    out: list = [head, table]
    if live is None:  # an engine label into the run now (a shard's too), by its lock
        live = writers(stats.root)
    holder = ", ".join(live.values()) or None
    if stats.failures:
        from labeler.models import failure_advice  # engine label's closing lines too

        lines = [f"{counted(len(stats.failures), 'image')} failed:"]
        lines += [f"  {s}/{st}: {why}" for s, st, why in stats.failures[:failures_shown]]
        if len(stats.failures) > failures_shown:
            lines.append(f"  and {len(stats.failures) - failures_shown} more (manifest.jsonl)")
        if holder is None:
            lines += failure_advice(len(stats.failures), stats.not_retryable, stats.cannot)
        else:  # the same command now is refused (its lock is held): before, advised all the same
            lines += failure_advice(stats.not_retryable, stats.not_retryable, stats.cannot)
            lines += _live_failures(stats, live)
        out.append("\n".join(lines))
    stale = sum(r.stale for r in stats.splits.values())
    if stale:
        out.append(
            f"{counted(stale, 'image')} labelled with other settings: the next engine label with "
            "these settings labels them again"
        )
    if any(r.pending or r.missing for r in stats.splits.values()):
        out.append(
            f"images not labelled yet: {holder} is labelling them now"
            if holder
            else _shards_left(stats.shards, {k: r.pending for k, r in stats.splits.items()})
            if stats.shards
            # a shard's command again labels its own images only: every one done already
            else f"images not labelled yet: run engine label again without --shard (run.json: "
            f"--shard {stats.shard}), or once per shard, to finish (it resumes)"
            if stats.shard
            else "images not labelled yet: run engine label again to finish (it resumes)"
        )
    rows = stats.splits.values()
    labelled = rows and all(r.pending == 0 and not r.failed and not r.stale for r in rows)
    if labelled and holder:  # an engine label into it again (other settings, --force) before
        # it rewrote run.json: before, "next: engine review ..." as of a finished run
        out.append(
            f"unfinished: {holder} is writing it now: wait for it to finish (it may label these "
            "images again, or more)"
        )
    elif labelled:
        out.append(  # every image labelled with these settings: what the loop does next
            f"next: engine review {shlex.quote(str(stats.root))} (look at them), engine fuse --data "
            f"{shlex.quote(str(stats.data_root))} --pseudo {shlex.quote(str(stats.root))} --out FUSED "
            "(joint-training labels)"
        )
    if stats.data_root is not None and not stats.data_root.exists():  # "?" under not yet
        out.append(
            f"not yet: unknown, its dataset {stats.data_root} (run.json) is not found from here, "
            "nor beside the run where it was: the same engine label command with --data at its "
            "new place records it"
        )
    if stats.changed:  # the labeler's resume check, seen before it runs
        out.append(
            f"note: {counted(len(stats.changed), 'image')} changed since labelled "
            f"({few(stats.changed)}: another file size; a photo replaced?): their pseudo labels "
            "are the old photos'; the same engine label command labels them again"
        )
    out += [
        f"note: its dataset: {note} (engine info {shlex.quote(str(stats.data_root))} lists its problems)"
        for note in stats.notes
    ]
    # what the calls that wrote run.json printed: kept for a run under nohup or a scheduler
    return out + stats.warnings


def _live_failures(stats: LabelRunStats, live: dict[str, str]) -> list[str]:
    """The closing lines on a label run's failed images while engine label writes it (``live``:
    lock file -> process, :func:`engine.runlock.writers`), in place of "run the same command
    again to retry": that command is refused while it runs. Where only shards of the sharded
    run that run.json records hold locks, the failed images of the shards not running are told
    apart (run.json's plan dealt out as engine label deals it, :func:`_shards`): their own
    ``--shard`` retries them now, as shards of one run label it side by side."""
    from labeler.run import shard_lock

    wait = f"unfinished: {', '.join(live.values())} is writing it now: wait for it to finish"
    running = {k for k in stats.shard_failures if shard_lock(k) in live}
    if not running or len(running) < len(live):  # another lock (unsharded, other n): unknown
        them = "these images" if len(stats.failures) > 1 else "this image"
        return [f"{wait} (it may try {them} again)"]
    own = sum(stats.shard_failures[k] for k in running)
    others = {k: n for k, n in stats.shard_failures.items() if n and k not in running}
    whose = "its shard's" if len(running) == 1 else "the running shards'"
    lines = [
        f"{wait} (it may try {counted(own, 'image')} of these again: {whose})" if own else wait
    ]
    if others:
        said = ", ".join(f"shard {k}: {counted(n, 'image')}" for k, n in others.items())
        again = " and ".join(f"--shard {k}" for k in others)
        lines.append(
            f"failed in shards not running now ({said}): run engine label again with {again} "
            "to retry them (it resumes)"
        )
    return lines


def _shards_left(shards: dict[str, int], pending: dict[str, int | None]) -> str:
    """Which shards of a sharded label run finished and which have images left, and the
    commands that finish it. Every shard finished, the images left are in splits outside the
    sharded command's ``--split`` (``pending``: each split's images not labelled yet), which
    the line names: before, it read "run engine label again with , or once without
    --shard"."""
    done = [k for k, left in shards.items() if not left]
    left = {k: n for k, n in shards.items() if n}
    said = [f"shard {k}: {counted(n, 'image')} left" for k, n in left.items()]
    if done:
        said.insert(0, f"{'shards' if len(done) > 1 else 'shard'} {', '.join(done)} finished")
    if not left:
        splits = {k: n for k, n in pending.items() if n}
        said += [f"{k}: {counted(n, 'image')} left" for k, n in splits.items()]
        again = " ".join(f"--split {shlex.quote(k)}" for k in splits)
        return (
            f"images not labelled yet: {'; '.join(said)}: run engine label again with {again} "
            "(no --shard), to finish (it resumes)"
        )
    again = " and ".join(f"--shard {k}" for k in left)
    return (
        f"images not labelled yet: {'; '.join(said)}: run engine label again with {again}, or "
        "once without --shard, to finish (it resumes)"
    )
