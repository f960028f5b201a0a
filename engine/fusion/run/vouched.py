"""Pseudo labels their run does not vouch for (:func:`check_vouched`): labelled with other
settings or of another class than its ``run.json`` says, or of a photo replaced since
(:func:`changed_photos`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from annotations.fileio import file_bytes
from annotations.labelrun import changed_images, latest_records
from annotations.taxonomy import class_key
from engine.fusion.pseudo import PseudoRun, labelled_class, relabel_command, unvouched_images
from engine.fusion.run.config import Job
from engine.text import counted, few

log = logging.getLogger(__name__)


def check_vouched(runs: Iterable[PseudoRun], jobs: list[Job]) -> tuple[tuple[str, ...], ...]:
    """Each run's images that its manifest does not vouch for with its ``run.json``'s settings
    (:func:`engine.fusion.pseudo.unvouched_images`). Pseudo labels of another class (a run
    relabelled as Car with ``--split val`` kept Bicycle's train) are a ``ValueError`` naming
    them; labels made with other settings are fused, after a warning with the count and the
    command that labels them again, and ``fuse.json`` lists them (``unvouched``)."""
    found: list[tuple[str, ...]] = []
    keys = [(j.split, j.stem) for j in jobs]
    sizes: dict[tuple[str, str], int] | None = None  # the images' bytes now, for every run
    for run in runs:
        latest = latest_records(run.path) if (run.path / "manifest.jsonl").is_file() else {}
        stale = unvouched_images(run, keys, latest)
        if latest:
            if sizes is None:
                sizes = {
                    (j.split, j.stem): n
                    for j in jobs
                    if (n := file_bytes(j.image_path)) is not None
                }
            found += changed_photos(run, jobs, latest, sizes, stale)
        if not stale:
            continue
        splits = list(dict.fromkeys(split for split, _ in stale))
        for split, stem in stale:
            held = labelled_class(run, split, stem)
            if held is not None and class_key(held) != class_key(run.class_name):
                raise ValueError(
                    f"{run.instances_path(split, stem)}: pseudo labels of {held}, but "
                    f"{run.run_json} says the run labels {run.class_name} "
                    f"({counted(len(stale), 'image')} not labelled with its settings, in "
                    f"{', '.join(splits)}): label them again first: "
                    f"{relabel_command(run, splits)}"
                )
        per_split = ", ".join(f"{split} {sum(s == split for s, _ in stale)}" for split in splits)
        log.warning(
            "%s: %s (%s) not labelled with the settings its run.json records (other settings, "
            "a failed attempt or no manifest record) are fused as they are, listed in fuse.json; "
            "to label them again first: %s",
            run.path,
            counted(len(stale), "image"),
            per_split,
            relabel_command(run, splits),
        )
        found += [(str(run.path), split, stem, why) for (split, stem), why in stale.items()]
    return tuple(found)


def changed_photos(
    run: PseudoRun,
    jobs: list[Job],
    latest: dict[tuple[str, str], dict],
    sizes: dict[tuple[str, str], int],
    stale: Iterable[tuple[str, str]],
) -> list[tuple[str, ...]]:
    """The images of ``jobs`` (not ``stale``) whose file is another size than when ``run``
    labelled them (its manifest's ``image_bytes``, ``latest``; ``sizes``: bytes now: a photo
    replaced or downloaded again under the same name, :func:`changed_images`), as
    ``check_vouched`` lists them, after a warning with the command that labels them again
    (``engine label`` resumed labels exactly these). Before, the old photo's pseudo labels were
    fused without a word, and ``fuse.json`` vouched for them."""
    done = {k for k, rec in latest.items() if rec.get("status") == "ok"} - set(stale)
    hit = changed_images(latest, done, sizes)
    changed = [j for j in jobs if (j.split, j.stem) in hit]
    if not changed:
        return []
    splits = list(dict.fromkeys(j.split for j in changed))
    log.warning(
        "%s: %s changed since labelled (%s: another file size; a photo replaced?): their pseudo "
        "labels are the old photos' and are fused as they are, listed in fuse.json; to label "
        "them again first: %s",
        run.path,
        counted(len(changed), "image"),
        few([f"{j.split}/{j.stem}" for j in changed]),
        relabel_command(run, splits),
    )
    why = "its image changed since labelled (another file size)"
    return [(str(run.path), j.split, j.stem, why) for j in changed]
