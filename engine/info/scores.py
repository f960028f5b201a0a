"""What ``engine info`` says of a scores record (``engine compare --json`` or ``engine
evaluate --json``): its Table 4 or per-class scores, whether the maps it scored changed since,
and a comparison whose rerun stopped before writing its record.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.text import counted


def render_scores(path: str | os.PathLike) -> list | None:
    """Rich renderables for ``engine info`` on what ``engine compare --json`` or ``engine
    evaluate --json`` wrote: the comparison's Table 4 (deltas against its first source, ``*``
    where their 95% interval excludes 0) and its warnings, or the per-class scores with their
    means, and what was scored against what; None for any other file (a dataset spec, say).
    Before, such a file was read as a dataset spec ("unknown keys ['class', 'sources', ...]")."""

    from annotations.fileio import read_json
    from engine.table4 import Table4, class_scores_table

    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        data = read_json(path, "scores")
    except ValueError:
        return None  # not JSON: read as a spec, which says why
    if not isinstance(data, dict):
        return None
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    sources = data.get("sources")
    if isinstance(sources, list) and all(isinstance(s, dict) for s in sources) and sources:
        rows = [{**row, "source": row.get("name")} for row in sources]
        title = (f"{data.get('class')}: {counted(int(data.get('images') or 0), 'annotated image')} "
                 f"(engine compare, {path})")  # fmt: skip
        out: list = [
            Table4(title, rows, marks=True),
            f"Δ: against {rows[0]['source']}; *: its 95% interval over the images excludes 0",
            f"ground truth: {config.get('gt')}",
        ]
        out += [f"{row.get('source')}: {row.get('folder')}" for row in rows]
        out += [f"warning: {w}" for w in data.get("warnings") or []]
        return out + scored_maps_changed(
            [(row.get("folder"), row.get("maps_sha256")) for row in rows], data.get("stems"), data
        )
    classes = data.get("classes")
    if isinstance(classes, list) and "mIoU" in data:
        table = class_scores_table(
            f"Scores (engine evaluate, {path}): {counted(int(data.get('images') or 0), 'image')}, "
            f"BF1 aggregated per {data.get('bf1_mode')}",
            data,
        )
        return [
            table,
            f"predictions: {config.get('pred')}",
            f"ground truth: {config.get('gt')}"
            + (f", split {config['split']}" if config.get("split") else ""),
            f"classes: {data.get('taxonomy_source')}",
            *scored_maps_changed(
                [(config.get("pred"), data.get("maps_sha256"))], data.get("stems"), data
            ),
        ]
    return None


def stopped_compare(path: str | os.PathLike) -> str | None:
    """What ``engine info`` says of an ``engine compare --json`` record that is not there while
    the earlier one is set aside beside it (:func:`engine.outputs.earlier_record`): a rerun
    stopped before writing it (or running: no lock tells), its ``--markdown`` and ``--plot``
    perhaps written already (exit 1). None where the record is there or none was set aside (not found, as any path)."""
    from engine.outputs import earlier_record

    aside = earlier_record(path)
    if os.path.lexists(path) or not aside.is_file():
        return None
    return (
        f"{path}: a comparison not finished: engine compare was run again and has not written "
        f"this record (the earlier one is kept as {aside.name}; its --markdown and --plot files "
        "may be the new run's): unless it runs now, run the same engine compare command again"
    )


def scored_maps_changed(
    folders: list[tuple[Any, Any]], stems: Any, record: Any = None
) -> list[str]:
    """``warning: ...`` for each folder of label maps a scores record (``engine evaluate`` or
    ``compare --json``) scored whose maps are not those now (their ``maps_sha256``, recorded
    since the forty-sixth round): the scores no longer describe them; score them again. A
    folder typed relative is read from the folder the scoring command ran in (the ``record``'s
    ``environment.cwd``): before the forty-ninth round, from here, and a ``pred`` of the
    folder ``engine info`` was run in was said to have changed (or a real change went
    unsaid)."""
    from annotations.fileio import record_cwd, typed_from
    from engine.evaluate import maps_changed

    cwd = record_cwd(record)
    return [
        f"warning: {why}: these scores describe the maps as they were; score them again"
        for folder, digest in folders
        if (why := maps_changed(typed_from(cwd, folder), stems, digest))
    ]
