"""What ``engine info DEMO_OUT`` says of an ``engine demo`` folder: its Table 4 per new class
and where each stage wrote, from ``report/summary.json``, or, not finished, what each stage has
written so far.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from pathlib import Path

from engine.info.records import _kind, record_object
from engine.runlock import writer

DEMO_SUMMARY = Path("report") / "summary.json"  # what engine demo writes last, in its folder


def render_demo(root: str | os.PathLike) -> list:
    """Rich renderables for ``engine info DEMO_OUT``: the demo's Table 4 for every new class,
    what joint training kept of the base classes, its wall time, and where each stage wrote
    (each of which ``engine info`` describes), from its ``report/summary.json``."""
    from rich.table import Table

    from annotations.fileio import read_json
    from engine.demo import (
        EFFECT_TITLE,
        base_line,
        call_seconds,
        effect,
        effect_lines,
        format_duration,
        scores_table,
    )

    root = Path(root)
    data = read_json(root / DEMO_SUMMARY, "demo summary")
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
        raise ValueError(f"{root / DEMO_SUMMARY}: not an engine demo summary (no 'classes')")
    # what a hand edit left of another type is passed over, as a row that is not an object
    classes = {
        n: [r for r in rows if isinstance(r, dict)]
        for n, rows in data["classes"].items()
        if isinstance(rows, list)
    }
    out: list = [scores_table(classes, f"Demo {root}", bool(data.get("simulated_labeler")))]
    base = record_object(data, "base_classes", root / DEMO_SUMMARY)
    if base := {n: s for n, s in base.items() if isinstance(s, dict)}:
        out.append(base_line(base))
    calls = data.get("calls") if isinstance(data.get("calls"), list) else []
    calls = [c for c in calls if isinstance(c, dict)]
    if not calls and isinstance(data.get("wall_seconds"), int | float):  # before calls were kept
        calls = [{"wall_seconds": data["wall_seconds"]}]
    # what the demo is built to show, worked out from the rows as summary.json's `effect` was
    # (so also for a summary written before it was kept)
    out += [f"{EFFECT_TITLE}:", *effect_lines(effect(classes, calls))]
    took = ", ".join(format_duration(call_seconds(c)) for c in calls)
    if took:
        out.append(f"wall time: {took}" + (f" ({len(calls)} calls)" if len(calls) > 1 else ""))
    paths = Table(title="Where each stage wrote (engine info describes each)", show_header=False)
    paths.add_column("stage")
    paths.add_column("path", overflow="fold")
    config, paths_made = (record_object(data, k, root / DEMO_SUMMARY) for k in ("config", "paths"))
    recorded = Path(str(config.get("out") or root))
    for stage, path in paths_made.items():
        with contextlib.suppress(ValueError):  # as the folder is now, wherever it ran
            path = root / Path(str(path)).relative_to(recorded)
        paths.add_row(stage, str(path))
    now = writer(root)  # engine demo into it again: summary.json is rewritten at its end
    said = f"now: {now} is running it again (this is the earlier demo's summary)"
    return [*out, paths, *([said] if now else [])]


def render_unfinished_demo(root: str | os.PathLike, live: dict[str, str]) -> list:
    """``engine info`` on a demo folder without its summary yet (stopped, or still running):
    what each stage has written so far, and how to finish it; ``live``: the processes writing
    it now, by their lock files (:func:`engine.runlock.writers`)."""
    from rich.table import Table

    root = Path(root)
    table = Table(title=f"Demo {root}: not finished (no {DEMO_SUMMARY})", show_header=False)
    table.add_column("folder")
    table.add_column("what")
    table.add_row("data", "the synthetic dataset (engine synth)")
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        if kind := _kind(folder):
            table.add_row(str(folder.relative_to(root)), kind[1])
    if holder := ", ".join(live.values()):
        return [table, f"running now: {holder}"]
    return [table, f"engine demo --out {shlex.quote(str(root))} (with the same options) resumes it"]
