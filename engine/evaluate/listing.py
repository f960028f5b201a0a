"""A folder of label maps listed: its ``<stem>.png`` files by stem, and one clear error for a
folder that holds none (saying where an engine output keeps its maps) or holds an annotated
subset's masks."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from annotations.fileio import FUSE_RECORD, not_this_output, output_kind
from annotations.subset import subset_at

LABEL_EXTS = (".png",)


# Engine outputs whose PNG files are charts, not label maps: read as label maps, a training
# run's curves.png was "1 prediction(s) missing for ground truth in runs/train: curves.png"
NO_LABEL_MAPS = {
    "metrics.jsonl": " (its curves.png is a chart)",
    "report.json": "",
    "review.json": "",
}


def list_labels(
    folder: Path, what: str, where_else: Callable[[Path], str] | None = None
) -> dict[str, Path]:
    """``{stem: path}`` of the label PNGs in ``folder``; where it holds none, the error ends
    with ``where_else(folder)`` when that says where they are, else with what is inside."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: {what} folder not found")
    if (kind := output_kind(folder)) is not None and kind[0] in NO_LABEL_MAPS:
        raise ValueError(
            f"{folder}: it is {kind[1]}, not a folder of {what} label maps" + NO_LABEL_MAPS[kind[0]]
        )
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in LABEL_EXTS and not p.name.startswith("."):
            if p.stem in files:
                raise ValueError(f"{folder}: two files share the stem {p.stem!r}")
            files[p.stem] = p
    if not files:
        raise ValueError(
            f"{folder}: no {what} PNG files found (expected <stem>.png)"
            + (
                (where_else and where_else(folder))
                or not_this_output(folder, "a folder of label maps", "predict.json")
                + _labels_inside(folder)
            )
        )
    return files


def _labels_inside(folder: Path) -> str:
    """Where the label maps of an engine output given as a folder of label maps are, for the
    end of the error: a label run's or fused dataset's ``labels/<split>``; for an annotated
    subset, the command that scores it."""
    kind = output_kind(folder)
    if kind is None:  # a folder of prediction folders (demo_out/predict) or a dataset's root
        inside = [
            d
            for base in (folder, folder / "annotations")
            if base.is_dir()
            for d in sorted(base.iterdir())
            if d.is_dir() and any(d.glob("*.png")) and not _charts(d)
        ]
        if not inside:
            return ""
        shown = ", ".join(str(d) for d in inside[:4]) + (" ..." if len(inside) > 4 else "")
        return f" (folders of label maps inside: {shown}; give one)"
    if kind[0] == "subset.json":
        gt = shlex.quote(str(folder))
        return f" (score its class with engine compare --gt {gt} or engine report --subset)"
    labels = folder / "labels"
    splits = sorted(d.name for d in labels.iterdir() if d.is_dir()) if labels.is_dir() else []
    if kind[0] in ("run.json", FUSE_RECORD) and splits:
        return f" (its label maps are in {labels}/ by split: {', '.join(splits)})"
    return ""


def _charts(folder: Path) -> bool:
    """Whether ``folder`` is an engine output whose PNGs are no label maps (a training run)."""
    kind = output_kind(folder)
    return kind is not None and kind[0] in NO_LABEL_MAPS


def check_not_subset_masks(folder: Path, what: str) -> None:
    """``ValueError`` for an annotated subset's ``masks/`` folder given as label maps: its 0/1
    masks would be read as class ids (0 = Others, 1 = Human) and scored as such, as the subset
    folder itself is refused (:func:`list_labels`)."""
    folder = Path(folder)
    subset = subset_at(folder) if folder.name == "masks" else None
    if subset is None:
        return
    raise ValueError(
        f"{folder}: the masks of an annotated subset (engine annotate import: 1 = "
        f"{subset.class_name}, 0 = anything else), not a folder of {what} label maps (score its "
        f"class with engine compare --gt {shlex.quote(str(folder.parent))} or engine report --subset)"
    )
