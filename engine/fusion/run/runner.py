"""The run behind ``engine fuse`` (:func:`fuse`): plan, skip what is done, fuse the rest in this
process or in a pool of worker processes, record each image in the manifest and write
``fuse.json`` with the report.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from annotations.fileio import (
    FUSE_RECORD,
    append_line,
    append_lines,
    atomic_write_json,
    atomic_write_text,
    compact_manifest,
)
from annotations.labelrun import latest_records
from engine.fusion.rules import ClassStats
from engine.fusion.run.classes import check_same_classes
from engine.fusion.run.config import FuseConfig, FusePlan, FuseResult, Job
from engine.fusion.run.image import _init_worker, fuse_job
from engine.fusion.run.plan import plan_fusion
from engine.fusion.run.records import (
    _dataset_yaml,
    _earlier_record,
    _fuse_json,
    _json_line,
    _same_record,
)
from engine.fusion.run.resume import _done, _warn_fused_again, earlier_splits, remove_orphans
from engine.parallel import dead_worker, process_pool
from engine.progress import make_progress
from engine.runinfo import kept_warnings, say_again, warned_call, warnings_entry
from engine.runlock import holds_lock, others_writing

log = logging.getLogger(__name__)


@holds_lock("engine fuse", lambda c: c.out, own=(FUSE_RECORD,))
def fuse(config: FuseConfig) -> FuseResult:
    """Fuse the pseudo labels of ``config.pseudo`` into the precise labels of ``config.data``.

    Checks every input first (errors name the files), then fuses each image of the chosen
    splits, skipping those already done with the same settings and inputs, with
    ``config.workers`` processes. Returns per-class counts summed over all images.
    The warnings this call printed are kept in ``fuse.json`` (``warnings``): a fusion run under
    nohup or a scheduler says from its folder alone what it warned about (``engine info OUT``).
    """
    with kept_warnings() as said:
        return _fuse(config, said)


def _fuse(config: FuseConfig, said: list[str]) -> FuseResult:
    t0 = time.perf_counter()
    plan = plan_fusion(config)
    out = config.out
    check_same_classes(out, plan, config.force)
    earlier = None if config.force else _earlier_record(out, plan)  # before this call writes
    remove_orphans(out, plan)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.jsonl"
    if not others_writing(out):  # compacted under the folder's lock (no other writer)
        compact_manifest(manifest)
    latest = latest_records(out)  # each image's latest line; a line naming none is about none
    todo, refreshed = [], []
    for j in plan.jobs:
        rec = latest.get((j.split, j.stem))
        done = None if config.force else _done(rec, plan, j, out)
        if done is None:
            todo.append(j)
        elif done != rec:
            refreshed.append(done)
    if not config.force:
        _warn_fused_again(latest, plan, out, todo)
    kept_splits = earlier_splits(latest, plan, out)
    if todo:  # with nothing to fuse, nothing is half done at any moment
        # first the unfinished mark, then taxonomy.json and dataset.yaml: a fusion killed
        # between them left a folder of neither kind (engine info: "no image split folders
        # found"), whose rerun kept the killed write's temporary file for good
        atomic_write_json(
            out / FUSE_RECORD, _fuse_json(plan, config, "running", warnings_entry(said, earlier))
        )
    plan.taxonomy.save(out / "taxonomy.json")
    refreshed += [  # an earlier split's records, as fused by an engine of before the hash
        {**rec, "config_hash": plan.config_hash}
        for (split, _), rec in latest.items()
        if split in kept_splits
        and rec.get("status") == "ok"
        and rec.get("config_hash") != plan.config_hash
    ]
    for rec in refreshed:  # so that the next call skips them at one stat per file
        latest[(rec["split"], rec["stem"])] = rec
    # in one write and one fsync: after a copy (cp -r) every image's line is refreshed
    append_lines(manifest, [_json_line(rec) for rec in refreshed])
    atomic_write_text(out / "dataset.yaml", _dataset_yaml(plan, out, kept_splits))

    def record(rec: dict) -> None:
        latest[(rec["split"], rec["stem"])] = rec
        append_line(manifest, _json_line(rec))

    with make_progress("img", enabled=config.progress) as progress:
        task = progress.add_task("fuse", total=len(plan.jobs), completed=len(plan.jobs) - len(todo))
        if config.workers <= 1 or len(todo) <= 1:
            _init_worker(plan, out)
            for job in todo:
                record(fuse_job(job))
                progress.advance(task)
        else:
            _run_pool(
                plan,
                out,
                todo,
                min(config.workers, len(todo)),  # a process per image at most: none idle
                lambda r: (record(r), progress.advance(task)),
            )

    report = {r.class_name: ClassStats() for r in plan.runs}
    failed: list[tuple[str, str, str]] = []
    for job in plan.jobs:
        rec = latest[(job.split, job.stem)]
        if rec.get("status") != "ok":
            failed.append((job.split, job.stem, str(rec.get("error"))))
            continue
        for name, counts in rec["classes"].items():
            report[name] = report[name] + ClassStats.from_dict(counts)
    warn_corrections_rejected(report, plan)
    result = FuseResult(
        out=out,
        taxonomy=plan.taxonomy,
        splits=plan.splits,
        images=len(plan.jobs),
        fused=len(todo) - len(failed),  # a failed image is never done: always in todo
        skipped=len(plan.jobs) - len(todo),
        report=report,
        seconds=time.perf_counter() - t0,
        config_hash=plan.config_hash,
        failed=failed,
        corrected=bool(plan.corrections),
    )
    extra = {
        "images": {
            "total": result.images,
            "fused": result.fused,
            "skipped": result.skipped,
            "failed": len(failed),
        },
        "seconds": round(result.seconds, 3),
        "report": {name: s.to_dict(bool(plan.corrections)) for name, s in report.items()},
        **(
            {"failed": [{"split": a, "stem": b, "error": c} for a, b, c in failed]}
            if failed
            else {}
        ),
        **warnings_entry(said, earlier),
    }
    status = "incomplete" if failed else "complete"
    final = _fuse_json(plan, config, status, extra)
    if todo or not _same_record(out / FUSE_RECORD, final):
        atomic_write_json(out / FUSE_RECORD, final)
    return result


def warn_corrections_rejected(report: dict[str, ClassStats], plan: FusePlan) -> None:
    """A warning naming the corrected pixels of a class that the parent constraint kept precise
    (a corrected mask's 1s on a precise class that is not the class's parent): the precise
    labels win there, as over pseudo labels; ``--no-parent-constraint`` lets the human win."""
    named: set[str] = set()
    for c in plan.corrections:  # once a class, its count summed over its subsets
        st = report.get(c.class_name)
        if st is None or not st.corrected_rejected or c.class_name in named:
            continue
        named.add(c.class_name)
        log.warning(
            "%s: %s pixels its masks mark %s lie on precise classes that are not its parents "
            "(%s) and keep their precise labels (the parent constraint); to let the "
            "corrections win there: --no-parent-constraint (or --parent with those classes)",
            c.path,
            f"{st.corrected_rejected:,}",
            c.class_name,
            ", ".join(plan.settings()["parents"][c.class_name]),
        )


def _run_pool(plan: FusePlan, out: Path, todo: list[Job], workers: int, done) -> None:
    """Fuse ``todo`` in ``workers`` processes, at most 2 jobs in flight per worker; the first
    error cancels the rest and is raised here. A worker's warnings come back with its record and
    are logged here (:func:`engine.runinfo.warned_call`), so fuse.json keeps them too."""
    with process_pool(workers, initializer=_init_worker, initargs=(plan, out)) as pool:
        pending: set[Future] = set()
        it = iter(todo)
        try:
            while True:
                while len(pending) < 2 * workers:
                    job = next(it, None)
                    if job is None:
                        break
                    pending.add(pool.submit(warned_call, fuse_job, job))
                if not pending:
                    return
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    try:
                        rec, said = f.result()
                    except BrokenProcessPool as e:  # a worker killed (out of memory?), crashed
                        raise dead_worker(pool) from e
                    say_again(said, log)  # printed here and kept in fuse.json
                    done(rec)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
