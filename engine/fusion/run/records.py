"""The fused dataset's records: ``dataset.yaml`` (the fused labels over the original images),
``fuse.json`` (settings, inputs, environment, report; rewritten only when what it says of the
dataset changed) and the manifest's lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from annotations.fileio import json_text, read_json
from engine.datasets import DatasetSpec, relative_ref
from engine.fusion.run.config import FUSE_FORMAT, FuseConfig, FusePlan
from engine.runinfo import environment


def _dataset_yaml(plan: FusePlan, out: Path, earlier: Iterable[str] = ()) -> str:
    """The fused dataset's spec: this call's splits and ``earlier`` ones
    (:func:`~engine.fusion.run.resume.earlier_splits`) in the source dataset's order."""
    spec = plan.spec
    order = {s: i for i, s in enumerate(spec.available_splits())}
    splits = sorted({*plan.splits, *earlier}, key=lambda s: (order.get(s, len(order)), s))
    images = spec.images_entry(relative_to=out)
    if isinstance(images, dict):  # each split's folder (the release's images_pad/train)
        images = {s: images[s] for s in splits if s in images}
    doc = {
        "images": images,
        "labels": "labels/{split}",
        "taxonomy": "taxonomy.json",
        "splits": splits,
        "image_exts": list(spec.image_exts),
    }
    # the source's own ways of naming its images; the fused labels are <stem>.png in labels/
    if spec.image_suffix is not None:
        del doc["image_exts"]
        doc["image_suffix"] = spec.image_suffix
    if spec.recursive:
        doc["recursive"] = True
    if spec.split_list is not None:
        doc["split_list"] = relative_ref(spec.root / spec.split_list, out)
    return (
        "# Written by `engine fuse`: the fused labels over the original images.\n"
        + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)  # paths as typed, no \\u
    )


def _fuse_json(plan: FusePlan, config: FuseConfig, status: str, extra: dict) -> dict[str, Any]:
    return {
        "format": FUSE_FORMAT,
        "status": status,
        "config": config.to_dict(),
        "config_hash": plan.config_hash,
        "settings": plan.settings(),
        "inputs": {
            # normalised: "cwd/../data" stops resolving once cwd is gone
            "data": os.path.abspath(config.data),
            "images": plan.spec.images_entry(),
            "pseudo": [r.to_dict() for r in plan.runs],
            **(
                {"corrections": [c.to_dict() for c in plan.corrections]} if plan.corrections else {}
            ),
        },
        "taxonomy": plan.taxonomy.to_dict(),
        "splits": {s: sum(j.split == s for j in plan.jobs) for s in plan.splits},
        **(
            {
                "unvouched": [
                    {"run": r, "split": a, "stem": b, "why": why} for r, a, b, why in plan.unvouched
                ]
            }
            if plan.unvouched
            else {}
        ),
        "environment": environment(torch_used=False),
        **extra,
    }


# What a fusion's record says of the call that wrote it rather than of the fused dataset
ABOUT_THE_CALL = ("environment", "images", "seconds")


def _earlier_record(out: Path, plan: FusePlan) -> dict | None:
    """``out``'s fuse.json when the images it records fused are still this dataset's (the same
    settings: an incremental fusion, another split), for its warnings to be kept beside this
    call's (:func:`engine.runinfo.warnings_entry`); None for a new or replaced dataset."""
    old = DatasetSpec(root=out).fuse_record()
    return old if old is not None and plan.same_settings(old) else None


def _same_record(path: Path, record: dict) -> bool:
    """Whether the record at ``path`` says what ``record`` says of the fused dataset (they
    differ at most in :data:`ABOUT_THE_CALL`): a rerun that fused nothing keeps it as it is,
    the record of the call that fused its images. It rewrote it, so on a full disk a rerun with
    nothing to do failed."""
    try:
        old = read_json(path, "fusion record")
    except (ValueError, OSError):
        return False
    new = json.loads(json_text(record))  # as it reads back: tuples as lists, paths as text
    return isinstance(old, dict) and all(
        old.get(k) == new.get(k) for k in {*old, *new} if k not in ABOUT_THE_CALL
    )


def _json_line(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":"), sort_keys=False)
