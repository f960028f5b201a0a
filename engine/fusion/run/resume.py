"""Resuming into a fused dataset's folder: which images are done (the same settings and inputs,
or the same bytes), which splits earlier calls fused stay, the warning for images fused again,
and the maps of images no longer in the dataset removed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from annotations.fileio import append_lines
from engine.fusion.run.config import FusePlan, Job
from engine.fusion.run.image import input_content, input_stamp, output_paths
from engine.fusion.run.records import _json_line
from engine.text import counted, few

log = logging.getLogger(__name__)


REMOVED = "removed"  # a manifest line's status: the image left the dataset, its maps removed


def earlier_splits(latest: dict, plan: FusePlan, out: Path) -> list[str]:
    """Splits fused into ``out`` by earlier calls (``engine fuse --split train``, then ``--split
    val``) that still belong to this dataset: every image's latest record is ok with this
    configuration's hash and its files exist. They stay in ``dataset.yaml`` beside this call's
    splits (:func:`~engine.fusion.run.records._dataset_yaml` orders them); a split fused with other
    settings (or with failed images) is left out, with a warning saying how to bring it back."""
    by_split: dict[str, list[tuple[str, dict]]] = {}
    for (split, stem), rec in latest.items():
        if split not in plan.splits and rec.get("status") != REMOVED:
            by_split.setdefault(split, []).append((stem, rec))
    kept = []
    for split, records in by_split.items():
        if all(
            rec.get("status") == "ok"
            and plan.same_settings(rec)
            and all(p.is_file() for p in output_paths(out, split, stem))
            for stem, rec in records
        ):
            kept.append(split)
        else:
            log.warning(
                "%s: split %r was fused with other settings (or has failed or missing images) "
                "and is left out of dataset.yaml; fuse it again with these settings and --split %s",
                out,
                split,
                split,
            )
    return kept


def _done(record: dict | None, plan: FusePlan, job: Job, out: Path) -> dict | None:
    """The record that says ``job`` is done (the one given, or the same with this call's hash
    and input stamp, when it was fused with settings that hash otherwise now or from inputs
    with other modification times but the same bytes: a copied folder), else None."""
    if record is None or record.get("status") != "ok":
        return None
    if not plan.same_settings(record):
        return None
    if not all(p.is_file() for p in output_paths(out, job.split, job.stem)):
        return None
    stamp = input_stamp(plan, job)
    if record.get("inputs") != stamp and (
        not record.get("content") or record["content"] != input_content(plan, job)
    ):
        return None
    return {**record, "config_hash": plan.config_hash, "inputs": stamp}


def _warn_fused_again(latest: dict, plan: FusePlan, out: Path, todo: list[Job]) -> None:
    """A warning when images fused before with other settings or inputs are fused again (as
    the labeler warns): hours of work on MaSS13K should not be replaced unannounced."""
    again = sum(
        1
        for j in todo
        if (rec := latest.get((j.split, j.stem)))
        and rec.get("status") == "ok"
        and (not plan.same_settings(rec) or rec.get("inputs") != input_stamp(plan, j))
    )
    if again:
        log.warning(
            "%s: %s fused with other settings or inputs will be fused again; give another "
            "--out to keep them",
            out,
            counted(again, "image"),
        )


def remove_orphans(out: Path, plan: FusePlan) -> None:
    """Remove the label and source maps that earlier fusions wrote into ``out`` for images no
    longer in the dataset (in the splits fused now), after a warning naming them: the fused
    dataset pairs every label with an image, and ``engine train`` and ``engine info`` refused
    it for them (``no image in ... for 1 label``). Before, they stayed, and the user had to
    find and delete them by hand."""
    fused = {(j.split, j.stem) for j in plan.jobs}
    orphans = [
        p
        for split in plan.splits
        for kind in ("labels", "sources")
        for p in sorted((out / kind / split).glob("*.png"))
        if (split, p.stem) not in fused and p.is_file()
    ]
    if not orphans:
        return
    names = sorted({f"{p.parent.name}/{p.stem}" for p in orphans})
    log.warning(
        "%s: the label and source maps of %s no longer in the dataset (removed since fused) "
        "are removed: %s",
        out,
        counted(len(names), "image"),
        few(names, total=True),
    )
    for p in orphans:
        p.unlink(missing_ok=True)
    # said in the manifest too: its ok lines for them would otherwise make a later call for
    # another split (--split val) find their files missing and leave this split out of
    # dataset.yaml as "fused with other settings"
    removed = [name.split("/", 1) for name in names]
    append_lines(
        out / "manifest.jsonl",
        [_json_line({"split": split, "stem": stem, "status": REMOVED}) for split, stem in removed],
    )
