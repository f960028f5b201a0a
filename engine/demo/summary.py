"""The demo's scores and summary: the base classes' scores (:func:`base_scores`), the tables the CLI
prints, ``report/summary.md`` and ``summary.json`` (:func:`write_summary`) and the times of the
calls that ended before it (:func:`record_unfinished_call`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

from engine.demo.checks import _origin
from engine.demo.config import BASE_NOTE, REFINED, SIMULATED_NOTE, START, DemoConfig, DemoResult
from engine.demo.goals import EFFECT_TITLE, call_seconds, effect, effect_lines
from engine.demo.training import demo_resolved
from engine.runlock import earlier_name
from engine.text import score_cells


def base_scores(models: dict[str, Path], gt: Path) -> dict[str, dict[str, Any]]:
    """Each model's scores of the base classes on ``gt``, the precise labels, where a bicycle is
    Others: ``engine evaluate`` with the new classes scored as their parents (its fold). Means
    (``iou``, ``biou``, ``bf1``) and per-class ``classes`` rows."""
    from engine.evaluate import EvaluateConfig, evaluate

    scores = {}
    for name, pred in models.items():
        report = evaluate(EvaluateConfig(pred=pred, gt=gt, progress=False))
        r = report.result
        scores[name] = {
            "iou": r.miou,
            "biou": r.mbiou,
            "bf1": r.mbf1,
            "folded": report.folded,
            "classes": r.to_json(report.taxonomy.names)["classes"],
        }
    return scores


def scores_table(classes: dict[str, list[dict]], title: str, simulated: bool) -> Any:
    """The rich table of every new class's Table-4 rows (:meth:`DemoResult.rows`, or
    ``summary.json``'s ``classes``), as the demo prints it and ``engine info`` shows it again."""
    from rich.table import Table

    table = Table(title=title + (" (SIMULATED labeler)" if simulated else ""))
    for col in ("new class", "source", "IoU", "BIoU", "BF1"):
        table.add_column(col, justify="left" if col in ("new class", "source") else "right")
    for name, rows in classes.items():
        for row in rows:
            table.add_row(name, str(row.get("source")), *score_cells(row))
    return table


def base_line(base_classes: dict[str, dict[str, Any]]) -> str:
    """:func:`base_scores` in one line: ``base classes (mean IoU / BIoU / BF1 on the precise
    labels): start checkpoint 84.81 / 32.75 / 0.8177, joint-trained model ...``."""
    scored = [f"{n} {' / '.join(score_cells(s))}" for n, s in base_classes.items()]
    return "base classes (mean IoU / BIoU / BF1 on the precise labels): " + ", ".join(scored)


def format_duration(seconds: float) -> str:
    """``"8 min 49 s"`` (``"42 s"`` under a minute), rounded to the second."""
    total = round(seconds)
    minutes, secs = divmod(total, 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


UNFINISHED_CALLS = "unfinished_calls.jsonl"  # report/: calls that ended before the summary


def record_unfinished_call(out: Path, result: DemoResult, error: BaseException) -> None:
    """Keep the time of a call that ended before its summary (Ctrl-C, a failed stage) in
    ``report/unfinished_calls.jsonl``, for the call that finishes the folder to count it in
    ``summary.json``'s ``calls``: before, a resumed demo's calls left the interrupted ones out."""
    from annotations.fileio import append_line, first_line

    ended = (
        "interrupted" if isinstance(error, KeyboardInterrupt) else f"failed: {first_line(error)}"
    )
    record = {"wall_seconds": result.wall_seconds, "seconds": result.seconds, "ended": ended}
    with contextlib.suppress(OSError):  # a full disk: the error being raised is the one shown
        append_line(out / "report" / UNFINISHED_CALLS, json.dumps(record))


def _earlier_calls(path: Path) -> list[dict[str, Any]]:
    """The calls an earlier ``summary.json`` of the folder recorded (its ``calls``, or, written
    before they were kept, its own wall time), then those that ended before a summary since
    (:func:`record_unfinished_call`); none when there are none readable."""
    from annotations.fileio import read_json, read_jsonl

    calls: list[dict[str, Any]] = []
    try:
        data = read_json(path, "demo summary")  # UTF-8, not the locale's (Windows: cp1252)
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("calls"), list):
        calls = [c for c in data["calls"] if isinstance(c, dict)]
    elif isinstance(data, dict) and isinstance(data.get("wall_seconds"), int | float):
        calls = [{"wall_seconds": data["wall_seconds"], "seconds": data.get("seconds", {})}]
    with contextlib.suppress(ValueError):  # a damaged record costs its times, not the summary
        calls += [c for c in read_jsonl(path.parent / UNFINISHED_CALLS) if isinstance(c, dict)]
    return calls


def write_summary(cfg: DemoConfig, result: DemoResult) -> Path:
    """``report/summary.md`` and ``summary.json``: every class's Table-4 rows side by side."""
    from annotations.fileio import atomic_write_json, atomic_write_text
    from engine.report import interval_lines
    from engine.runinfo import environment

    out = result.out / "report"
    lines = ["# MaSS data engine demo: new classes on synthetic MaSS-style scenes", ""]
    if cfg.simulated:
        lines += [f"> {SIMULATED_NOTE}.", ""]
    lines += ["| new class | source | IoU | BIoU | BF1 |", "|---|---|---|---|---|"]
    for name in result.reports:
        for row in result.rows(name):
            lines.append(f"| {name} | {row['source']} | {' | '.join(score_cells(row))} |")
    lines.append("")
    # how sure each delta is, over the few annotated images: every row's, the guided filter's
    # too (before the fifty-first round summary.json held its interval and summary.md did not)
    for name in result.reports:
        lines += [f"{name}: {line}" for line in interval_lines(result.rows(name))]
    if result.base_classes:
        lead = "What joint training kept of" if START in result.base_classes else "The model on"
        lines += ["", f"{lead} the base classes: {BASE_NOTE}:", ""]
        lines += ["| model | mIoU | mBIoU | mBF1 |", "|---|---|---|---|"]
        for name, scores in result.base_classes.items():
            lines.append(f"| {name} | {' | '.join(score_cells(scores))} |")
    lines += [
        "",
        f"Model: MaSSFormer tiny, {cfg.iters} steps of joint training {_origin(result.start)}.",
        "",
    ]
    if result.refined:
        lines += [
            f"Rows '{REFINED}': the same model's predictions refined along the image's colour "
            "edges (`engine predict --guided-filter`), beyond the release's single-scale "
            f"inference; their reports are in {result.out / 'report_gf'}.",
            "",
        ]
    record = out / "summary.json"  # set aside while the demo runs (run_demo)
    calls = [
        *_earlier_calls(record if record.is_file() else out / earlier_name(record.name)),
        {"wall_seconds": result.wall_seconds, "seconds": result.seconds},
    ]
    earlier = ""
    if len(calls) > 1:  # a resumed demo: its first call's time is kept, not overwritten
        times = ", ".join(
            format_duration(call_seconds(c))
            + (
                f" ({c['ended'].split(':')[0]})"
                if c.get("ended") and isinstance(c["ended"], str)
                else ""
            )
            for c in calls
        )
        earlier = f" This folder's {len(calls)} calls took {times}."
    classes = {name: result.rows(name) for name in result.reports}
    shown = result.effect = effect(classes, calls)
    lines += [f"{EFFECT_TITLE} (`summary.json`'s `effect`):", ""]
    lines += [*effect_lines(shown), ""]
    lines += [
        f"Wall time: {format_duration(result.wall_seconds)} ({result.wall_seconds} s, this call)."
        f"{earlier} Stage times (s): " + ", ".join(f"{k}: {v}" for k, v in result.seconds.items()),
    ]
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    atomic_write_json(
        out / "summary.json",
        {
            "simulated_labeler": cfg.simulated,
            "note": SIMULATED_NOTE if cfg.simulated else "Grounded-SAM labeler",
            "config": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in dataclasses.asdict(cfg).items()
            },
            "resolved": demo_resolved(cfg),  # what auto and 0 came to on this machine
            "start_checkpoint": result.start,
            "classes": classes,
            "effect": shown,
            "base_classes": result.base_classes,
            "seconds": result.seconds,
            "wall_seconds": result.wall_seconds,
            "calls": calls,  # every call into this folder, first to last (resumes add one)
            "paths": {k: str(v) for k, v in result.paths.items()},
            "environment": environment(torch_used=True),  # it trains and predicts with torch
        },
    )
    (out / UNFINISHED_CALLS).unlink(missing_ok=True)  # counted in summary.json's calls now
    return out / "summary.md"
