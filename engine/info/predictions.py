"""What ``engine info PRED`` says of a folder of predictions (``engine predict``'s
output, its ``predict.json``): the model and inference that made it, its label maps so far, and
the images it could not label.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.info.records import add_made_with, latest, record_object, said_by
from engine.text import first_lines


def render_predictions(root: str | os.PathLike, meta: dict, live: dict[str, str]) -> list:
    """Rich renderables for ``engine info PRED``: which model and inference made a folder of
    predictions (its ``predict.json``, read as ``meta``) and how many label maps it holds;
    ``live``: the processes writing it now, by their lock files (:func:`engine.runlock.
    writers`)."""
    from rich.table import Table

    from engine.outputs import prediction_settings

    root = Path(root)
    settings = prediction_settings(root, meta) if meta else {}
    config = meta.get("config") or {}
    maps = sum(1 for p in root.rglob("*.png") if p.parent.name != "color")
    head = Table(title=f"Predictions {root}", show_header=False)
    head.add_column("what")
    head.add_column("value", overflow="fold")
    step = meta.get("checkpoint_step")
    weights = meta.get("weights_sha256")
    head.add_row(
        "checkpoint",
        f"{config.get('checkpoint')}"
        + (f" (step {step:,}" if isinstance(step, int) else " (")
        + (f", weights {weights})" if weights else ")"),
    )
    trained = record_object(meta, "trained_on", root / "predict.json")
    if trained:
        head.add_row("trained on", f"split {trained.get('split')} of {trained.get('data')}")
    size = config.get("size")
    head.add_row(
        "size",
        ("each image's own" if size is None else "x".join(map(str, _listed(size))))
        + (f" ({meta['size_source']})" if meta.get("size_source") else ""),
    )
    device = meta.get("device_used")  # what --device auto came to (not in older records)
    autocast = f" with {meta['autocast']} autocast" if meta.get("autocast") else ""
    head.add_row("mode", str(config.get("mode")) + (f", on {device}{autocast}" if device else ""))
    refinements = settings.get("refinements") or []
    head.add_row("inference", ", ".join(refinements) or "the release's: whole image, one scale")
    taxonomy = record_object(meta, "taxonomy", root / "predict.json")
    classes = [c.get("name") for c in _listed(taxonomy.get("classes")) if isinstance(c, dict)]
    head.add_row("classes", ", ".join(map(str, classes)) or "not recorded")
    add_made_with(head, meta.get("environment"))
    holder = ", ".join(live.values())  # still labelling: the count is of the maps so far
    count = meta.get("image_count")  # how many the run labels (not in older records)
    of = f" of {count:,}" if isinstance(count, int) else ""
    if holder:
        state = f" so far: {holder} is writing them now"
    elif meta.get("status") == "running":  # killed, Ctrl-C or SIGTERM before the last image
        state = (
            ": engine predict stopped before labelling every image (no process writes it): "
            "run the same engine predict command again to finish (it resumes)"
        )
    else:
        state = ""
    head.add_row("label maps", f"{maps:,}{of}{state}")
    failed = [f"{f.get('image')}: {f.get('reason')}" for f in failed_images(meta)]
    for f in first_lines(failed, "predict.json", shown=5):  # engine predict's record of them
        head.add_row("failed", f)
    # what its calls printed: kept for a run under nohup or a scheduler
    said = said_by(meta, "", "{when}{message}")  # earlier calls' first, marked with their time
    for w in first_lines(said, "predict.json", shown=5 if len(said) == len(latest(meta)) else 10):
        head.add_row("warning", w)
    return [head]


def failed_images(meta: dict) -> list[dict]:
    """The images ``predict.json`` (``meta``) records as failed, each ``{image, reason}``."""
    return [f for f in _listed(meta.get("failed")) if isinstance(f, dict)]


def _listed(value: Any) -> list:
    """A record's list (a predict.json's ``failed``, ``size``), or [] where it is none or a
    hand edit left another type there (an AttributeError or TypeError before)."""
    return value if isinstance(value, list) else []
