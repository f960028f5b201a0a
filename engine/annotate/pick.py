"""``engine annotate pick``: the images of a label run to annotate first, written as an image
list beside its ``.json`` record; reading such lists back (:func:`read_stem_list`,
:func:`export_split`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from annotations.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_expanded,
    read_json,
    read_text,
)
from annotations.labelrun import LabelRun
from annotations.subset import ImageStats, Pick, check_pick, pick_images
from engine.annotate.common import (
    _no_labelled,
    check_one_line_names,
    dataset_images,
    warn_not_labelled,
)
from engine.progress import track
from engine.runinfo import environment
from engine.runlock import (
    check_not_being_written,
    check_not_in_dataset,
    check_not_in_output,
    folders_removed_on_failure,
)
from engine.text import counted, few

log = logging.getLogger(__name__)


@dataclass
class PickConfig:
    run: str  # label run directory
    n: int = 50  # images to choose
    split: str = "test"  # split of the run to choose from
    seed: int = 0  # random share's seed
    low_confidence: float = 0.4  # fraction of n: lowest mean confidence first
    many_or_tiny: float = 0.3  # fraction of n: most instances (tiny ones count double)
    tiny_fraction: float = 1e-3  # an instance smaller than this fraction of the image is tiny
    out: str | None = (
        None  # list file to write (.txt, plus a .json twin); None: RUN/pick-<split>.txt
    )
    progress: bool = True  # progress bar on stderr

    def __post_init__(self) -> None:
        # the CLI's bounds (-n, --seed): n=0 wrote an empty pick list over RUN/pick-<split>.txt,
        # and seed=-1 failed in NumPy with "expected non-negative integer", naming no setting
        if self.n < 1:
            raise ValueError(f"n must be >= 1 (images to choose), got {self.n}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def image_stats(
    run: LabelRun, split: str, tiny_fraction: float = 1e-3, progress: bool = False
) -> list[ImageStats]:
    """Per-image confidence and instance counts of a run's split; the first unreadable file
    raises (:func:`image_stat`)."""
    stems = run.stems(split)
    return [
        image_stat(run, split, stem, tiny_fraction)
        for stem in track(stems, "read pseudo labels", enabled=progress)
    ]


def image_stat(run: LabelRun, split: str, stem: str, tiny_fraction: float = 1e-3) -> ImageStats:
    """One image's confidence and instance counts. ValueError naming the file when its pseudo
    label, confidence map or instances cannot be read, or the confidence map is not the
    label's size (indexing one by the other would fail or mean nothing)."""
    n = tiny = 0
    inst_scores: list[float] = []
    if run.instances_path(split, stem).is_file():
        inst = run.instance_summary(split, stem)  # scores and areas: no mask decoded
        h, w = inst.image_size
        n = len(inst)
        tiny = int((inst.areas < tiny_fraction * h * w).sum())
        inst_scores = inst.scores.tolist()
    conf = math.nan
    conf_map = run.confidence(split, stem)
    if conf_map is not None and run.label_path(split, stem).is_file():
        label = run.label(split, stem)
        if conf_map.shape != label.shape:
            raise ValueError(
                f"{run.confidence_path(split, stem)}: confidence map is "
                f"{conf_map.shape[1]}x{conf_map.shape[0]} but its pseudo label "
                f"{run.label_path(split, stem)} is {label.shape[1]}x{label.shape[0]}"
            )
        fg = label == 1
        if fg.any():
            conf = float(conf_map[fg].mean()) / 255.0
    source = "map" if not math.isnan(conf) else ""
    if math.isnan(conf) and inst_scores:
        conf, source = float(np.mean(inst_scores)), "instances"
    return ImageStats(stem, conf, n, tiny, source)


def _as_written(text: str) -> bytes:
    """The bytes :func:`annotations.fileio.atomic_write_text` writes of ``text``."""
    return text.encode("utf-8", "backslashreplace")


def pick_for_annotation(cfg: PickConfig) -> tuple[list[Pick], Path]:
    """Choose images of a run to annotate; writes the stems (one per line) and a JSON twin."""
    check_pick(cfg.n, cfg.low_confidence, cfg.many_or_tiny)  # before reading a large split
    if cfg.out is not None:
        _check_list_path(Path(cfg.out))
    run = LabelRun.open(cfg.run)
    # first: a fused dataset (labels/ too, no run.json) was refused after its list was written
    class_name, backend = run.class_name, run.backend
    check_not_being_written(run.root, "engine annotate pick", "its pseudo labels")
    stats = image_stats(run, cfg.split, cfg.tiny_fraction, cfg.progress)
    if not stats:
        raise _no_labelled(run, cfg.split)
    with contextlib.suppress(ValueError, OSError):  # a dataset moved on: picked all the same
        listed = dataset_images(None, run, cfg.split, "engine annotate pick")
        stats = _still_in_dataset(run, cfg.split, stats, listed)
        warn_not_labelled(run, cfg.split, [s.stem for s in stats], listed, "pick")
    if not stats:  # every labelled image removed from the dataset since
        raise ValueError(
            f"{run.root}: every image labelled in split {cfg.split!r} was removed from the "
            "dataset since (the warning above names them): nothing left to pick"
        )
    stand_ins = [s.stem for s in stats if s.confidence_from == "instances"]
    if stand_ins:  # another scale than the maps': said, not ranked with them without a word
        log.warning(
            "%s: %s of split %r %s no confidence map (%s); the instances' mean score stands "
            "in for the mean confidence when ranking",
            run.root,
            counted(len(stand_ins), "image"),
            cfg.split,
            "has" if len(stand_ins) == 1 else "have",
            few(stand_ins),
        )
    picks = pick_images(stats, cfg.n, cfg.seed, cfg.low_confidence, cfg.many_or_tiny)
    check_one_line_names([p.stem for p in picks], run.root)  # before the list is written
    out = Path(cfg.out) if cfg.out else run.root / f"pick-{cfg.split}.txt"
    # a name that is not UTF-8 (caf\xe9) escaped by atomic_write_text, caf\udce9, which export
    # --images reads back (composed_stems); it raised UnicodeEncodeError and no list was written
    # an earlier pick's record goes before the new list is written: one killed between the two
    # left the earlier record beside the new list, read as its (engine info's count, the split
    # export --images took); now a list without a record until its own is written. A list
    # refused (a full disk) puts the earlier record back, the earlier list left as it was:
    # before, that list lost its record
    record = out.with_suffix(".json")
    try:
        earlier = record.read_bytes()
    except OSError:  # none, or not to be read: not put back
        earlier = None
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # the list's write says
        os.unlink(record)  # a file on the way, "is a file, not a folder"
    listed = "".join(f"{p.stem}\n" for p in picks)
    try:
        with folders_removed_on_failure(out):  # a full disk: no new, empty folder left behind
            atomic_write_text(out, listed)
    except BaseException:
        # not where the new list is in all the same (a Ctrl-C just after its rename)
        with contextlib.suppress(OSError):  # the list's error is the one said
            if earlier is not None and out.read_bytes() != _as_written(listed):
                atomic_write_bytes(record, earlier)
        raise
    by_stem = {s.stem: s for s in stats}
    with folders_removed_on_failure(record):  # and the temporaries of its killed writes
        atomic_write_json(
            record,
            {
                # out as written (None stood for the default, RUN/pick-<split>.txt), and which run:
                # its folder resolved and run.json's digest, as fuse.json records its runs
                "config": {k: v for k, v in asdict(cfg).items() if k != "progress"}
                | {"out": str(out)},
                "run_resolved": str(run.root.resolve()),
                "run_json_sha256": run.info.sha256,
                "class_name": class_name,
                "backend": backend,
                "picks": [
                    {
                        "stem": p.stem,
                        "reason": p.reason,
                        "confidence": None
                        if math.isnan(by_stem[p.stem].confidence)
                        else round(by_stem[p.stem].confidence, 4),
                        "confidence_from": by_stem[p.stem].confidence_from or None,
                        "num_instances": by_stem[p.stem].num_instances,
                        "num_tiny": by_stem[p.stem].num_tiny,
                    }
                    for p in picks
                ],
                "environment": environment(torch_used=False),
            },
        )
    return picks, out


def _still_in_dataset(
    run: LabelRun, split: str, stats: list[ImageStats], listed: dict[str, Path]
) -> list[ImageStats]:
    """``stats`` without the images no longer in the run's dataset (``listed``: its split's
    images now; removed since they were labelled), after a warning naming them: an annotator
    cannot annotate a photo that is gone, and the export of the pick listed it in its COCO file
    but not in ``images.txt``. Before, they were picked as the others."""
    gone = sorted(s.stem for s in stats if s.stem not in listed)
    if not gone:
        return stats
    log.warning(
        "%s: %s of split %r labelled here no longer in the dataset (removed since labelled), "
        "not picked: %s",
        run.root,
        counted(len(gone), "image"),
        split,
        few(gone, total=True),
    )
    return [s for s in stats if s.stem in listed]


def _check_list_path(out: Path) -> None:
    """``pick --out`` names the list file; its record is written beside it as ``.json``. Its
    folder is checked as every command's output folder is, before a pseudo label is read: not
    under a file, not a dataset's ``images/`` or ``annotations/`` folder nor a split folder in
    one, not a label run's ``labels/`` (or another output's split folders) nor a split folder
    in one (:func:`engine.runlock.check_output_folder`'s checks but the folder's own: a list
    goes beside other files, as the default ``RUN/pick-<split>.txt`` does). Before, the whole
    split's pseudo labels were read first, and a list in a split folder was written there."""
    check_expanded(out, "engine annotate pick")
    on_the_way = next((p for p in out.parents if p.exists()), None)
    if on_the_way is not None and not on_the_way.is_dir():  # as the list's write says it
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(on_the_way))
    check_not_in_dataset(out.parent, "engine annotate pick")
    check_not_in_output(out.parent, "engine annotate pick")
    if out.is_dir():
        raise ValueError(f"{out}: is a folder; --out names the list file (e.g. {out / 'pick.txt'})")
    if out.suffix.lower() == ".json":
        raise ValueError(
            f"{out}: the list is a text file and its record is written beside it as .json, "
            f"which would be this file: give a list name such as {out.with_suffix('.txt')}"
        )


def read_stem_list(path: str | os.PathLike) -> list[str]:
    """Lines of a list file (one image per line; blank lines skipped). A ``#`` is left in: it
    may be part of a stem or folder (``#3 front``, ``data #1/``), and the export reads it as a
    comment only where the whole line names no image (``_stem_named``); a list of comments
    alone is empty."""
    path = Path(path)
    # UTF-8 with Notepad's byte-order mark or UTF-16 (PowerShell's `ls -Name > list.txt`): read;
    # another encoding refused naming the line (before, a Python codec error)
    return stem_lines(read_text(path, "image list"), path)


def stem_lines(text: str, path: str | os.PathLike) -> list[str]:
    """:func:`read_stem_list` of ``text``, read from ``path`` (named in its error)."""
    stems = [ln.strip() for ln in text.splitlines()]
    stems = [s for s in stems if s]
    if all(s.startswith("#") for s in stems):
        raise ValueError(f"{path}: the image list is empty")
    return stems


def list_split(path: str | os.PathLike) -> str | None:
    """The split an image list was picked from: ``config.split`` of the ``.json`` twin that
    ``engine annotate pick`` writes beside it; None for a list without one (written by hand)."""
    twin = Path(path).with_suffix(".json")
    if not twin.is_file():
        return None
    try:
        split = (read_json(twin, "pick record").get("config") or {}).get("split")
    except (ValueError, AttributeError):
        return None  # not a pick record: the list alone decides nothing
    return split if isinstance(split, str) and split else None


def export_split(split: str | None, images: str | None) -> str | None:
    """The split to export: ``split`` when given, else the one an ``--images`` list was picked
    from (:func:`list_split`), else None (a subset's own split, or test). A given split other
    than the list's is an error."""
    picked = list_split(images) if images else None
    if split is not None and picked is not None and split != picked:
        raise ValueError(
            f"{images}: the images were picked from split {picked!r} "
            f"({Path(images).with_suffix('.json').name}), not {split!r}; drop --split or give "
            f"--split {picked}"
        )
    return split or picked
