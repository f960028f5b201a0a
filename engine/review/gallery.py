"""``engine review`` itself: every image's panels drawn as thumbnails (kept where unchanged,
the others removed), then the page and its record written."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np

from annotations.fileio import (
    NAME_MAX,
    UNREADABLE,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    cut_to_bytes,
    first_line,
    is_disk_error,
)
from annotations.labelmap import read_label
from annotations.labelrun import LabelRun
from annotations.subset import ImageStats, check_subset_class, read_subset
from engine.annotate import image_stat, warn_not_labelled
from engine.datasets import check_folder_finished, load_image
from engine.outputs import (
    GT_COLOR,
    PRED_COLOR,
    PSEUDO_COLOR,
    check_size,
    detail_overlays,
    find_png,
    jpeg_bytes,
    overlay,
    prediction_settings,
    prediction_title,
    taxonomy_record,
)
from engine.review.config import ReviewConfig, ReviewResult, split_list
from engine.review.inputs import (
    MissingClassIdError,
    Panel,
    _binary_mask,
    _image_scores,
    _nothing_labelled,
    _pred_dirs,
    _split_images,
    check_annotation_folder,
    warn_class_id_absent,
    warn_not_reached,
)
from engine.review.page import _card, _image_url, _page
from engine.runinfo import environment
from engine.text import counted

log = logging.getLogger(__name__)

# a thumbnail's name (_thumb_key, _panels, _details): <split>__<stem>_<panel>[_detail].jpg
THUMB_NAME = re.compile(r".+__.+_(?:pseudo|pred\d*|gt)(?:_detail)?\.jpg", re.S)


def build_review(cfg: ReviewConfig) -> ReviewResult:
    """Write the gallery; returns where it is and what it shows."""
    from engine.progress import track
    from engine.runlock import (
        check_not_being_written,
        check_output_folder,
        exclusive,
        record_set_aside,
    )

    run = LabelRun.open(cfg.run)
    check_not_being_written(run.root, "engine review", "its pseudo labels")
    if cfg.gt:  # a subset being imported: its new masks before its subset.json names them
        check_not_being_written(cfg.gt, "engine review", "its annotated masks")
    class_name = run.class_name  # first: a fused dataset or other output is named as such
    out = Path(cfg.out) if cfg.out else run.root / "review"
    check_output_folder(out, ("review.json",), "engine review")  # before any image is drawn
    chosen = split_list(cfg.split)
    splits = chosen or run.splits()
    if not splits or not any(run.stems(s) for s in splits):
        raise ValueError(_nothing_labelled(run, splits, bool(chosen)))
    if not chosen:  # killed after train, before val: drawn as train alone, said
        warn_not_reached(cfg.data, run, splits)
    rows = []  # (split, stats, image path or None, problem or None)
    for split in splits:
        images, image_dir = _split_images(cfg.data, run, split)
        # a run stopped half way (killed: no process at it) is drawn as far as it got, said
        warn_not_labelled(run, split, run.stems(split), images, "review")
        for stem in run.stems(split):
            problem = None
            try:  # an unreadable pseudo label or confidence map: its card says so
                st = image_stat(run, split, stem)
            except UNREADABLE as e:
                st, problem = ImageStats(stem, math.nan, 0, 0), first_line(e)
            if stem not in images and problem is None:
                problem = f"{image_dir}: no image {stem}.* for this pseudo label"
            rows.append((split, st, images.get(stem), problem))
    if not any(path for _, _, path, _ in rows):
        where = cfg.data or run.data_root
        raise FileNotFoundError(
            f"{where or run.root / 'run.json'}: no image found for "
            f"{counted(len(rows), 'labelled stem')} "
            f"(e.g. {rows[0][0]}/{rows[0][1].stem}); pass the dataset root with --data"
        )
    # lowest confidence first; cards whose files could not be read before all (so that the
    # limit never hides them)
    rows.sort(key=lambda r: (r[3] is None, math.isnan(r[1].confidence), r[1].confidence, r[1].stem))
    labelled = len(rows)
    past_limit = []  # known unreadable but past the limit: no card, yet counted and listed
    if cfg.limit > 0:
        past_limit = [f"{sp}/{st.stem}: {p}" for sp, st, _, p in rows[cfg.limit :] if p is not None]
        rows = rows[: cfg.limit]
    gt_dir = Path(cfg.gt) if cfg.gt else None
    pred_dirs = _pred_dirs(cfg.pred)
    if cfg.pred_class_id is not None and not pred_dirs:
        raise ValueError("--pred-class-id is the new class's id in --pred; give --pred too")
    for d, opt in ((gt_dir, "--gt"), *((d, "--pred") for d in pred_dirs)):
        if d is not None and not d.is_dir():
            raise FileNotFoundError(f"{d}: folder given with {opt} not found")
    backend = run.backend
    if gt_dir is not None and (gt_dir / "subset.json").is_file():  # another class's masks
        check_subset_class(read_subset(gt_dir), class_name, f"{run.root}/run.json")
    elif gt_dir is not None:  # a plain folder of masks: 0/255 ones would score nothing
        from engine.compare import check_not_0_255

        check_annotation_folder(gt_dir, class_name)
        # after it: a fused dataset's label maps are no ground truth, its fusion finished or
        # not (told "finish the fusion", the rerun was refused for that); before any is read
        check_folder_finished(gt_dir, "engine review")  # D/new_classes/bicycle/test, D stopped
        check_not_0_255(gt_dir)
    preds = []  # (caption, folder, the class's id in it)
    for d in pred_dirs:  # D/annotations/test of a stopped synth, F/labels/val of a fusion
        check_folder_finished(d, "engine review")  # before any is read, as evaluate --pred
        class_id = cfg.pred_class_id
        found = taxonomy_record(d, d.parent) if class_id is None else None
        if found is not None and class_name not in found[0]:  # a model without the class
            raise ValueError(
                f"{d}: predictions of a model without {class_name}: their taxonomy "
                f"({found[1]}: {found[0].listed()}) has no class {class_name!r}; give "
                f"predictions of a model trained with it, or --pred-class-id to read an id as it"
            )
        if found is not None:
            class_id = found[0].id_of(class_name)
        preds.append((prediction_title(prediction_settings(d)), d, class_id))
    captions = [c for c, _, _ in preds]
    preds = [(f"{c} ({d.name})" if captions.count(c) > 1 else c, d, i) for c, d, i in preds]
    # the ids each --pred folder's maps hold, until one holds --pred-class-id (one id given for
    # every folder: a 0/1 folder given 7 drew nothing and scored 0.00 without a word)
    seen: dict[Path, set[int]] = {d: set() for _, d, _ in preds if cfg.pred_class_id is not None}
    # held while it draws: a second review into OUT stops at once, and engine info tells a
    # gallery being drawn (no review.json yet) from one stopped
    # The earlier gallery's record set aside before its thumbnails are drawn over
    # (record_set_aside): a rerun killed among them is not read as a finished gallery, a mix
    # of two runs; put back if this one fails before drawing any
    with (
        exclusive(out, "engine review", own=("review.json", "thumbs")),
        record_set_aside(out, "review.json"),
    ):
        cards, n_pred, n_gt, failed = [], 0, 0, []
        written: set[str] = set()  # the thumbnails drawn (paths in OUT), for the end to keep
        for split, st, img_path, problem in track(rows, "review", unit="img", enabled=cfg.progress):
            original = None if img_path is None else _image_url(img_path, out)
            first = problem is not None  # sorted before all: its place when the page re-sorts
            if problem is None:
                try:  # one unreadable file makes its own card say so, not the gallery fail
                    panels, details, with_pred, with_gt = _panels(
                        cfg, run, out, preds, gt_dir, split, st.stem, img_path, seen
                    )
                except MissingClassIdError:
                    raise
                except UNREADABLE as e:
                    if is_disk_error(e):
                        raise  # the disk fails every card after it: the command says so, once
                    problem = first_line(e)
            if problem is not None:
                failed.append(f"{split}/{st.stem}: {problem}")
                cards.append(_card(split, st, [], [], original, problem, first=first))
                continue
            n_gt += with_gt
            n_pred += with_pred
            written.update(rel for _, rel, _, _ in panels + details)
            scores = []
            if run.instances_path(split, st.stem).is_file():
                inst = run.instance_summary(split, st.stem)
                scores = [round(float(s), 3) for s in inst.scores]
            cards.append(_card(split, st, scores, panels, original, details=details))
        for d, ids in seen.items():
            warn_class_id_absent(d, cfg.pred_class_id, ids)  # type: ignore[arg-type]
        settings = asdict(cfg) | {"split": chosen or None, "pred": [str(d) for d in pred_dirs]}
        page = _page(
            class_name,
            backend,
            str(run.root),
            cards,
            settings,
            scored=n_gt > 0,
            cut=(labelled, len(past_limit)) if labelled > len(cards) else None,
        )
        failed += past_limit
        # a name that is not UTF-8 (caf\xe9.jpg) shown escaped, caf\udce9.jpg, as in the JSON
        # records (atomic_write_text; its links hold its bytes: _url)
        index = atomic_write_text(out / "index.html", page)
        atomic_write_json(
            out / "review.json",
            {
                "config": settings,
                "run": str(run.root),
                "class_name": class_name,
                "backend": backend,
                "images": len(cards),
                "labelled": labelled,  # of the splits shown: more than images where --limit cut
                "with_prediction": n_pred,
                "with_annotation": n_gt,
                "failed": failed,
                "failed_past_limit": len(past_limit),
                "environment": environment(torch_used=False),
            },
        )
        _remove_unshown_thumbnails(out, written)
    return ReviewResult(index, len(cards), n_pred, n_gt, failed, len(past_limit), labelled)


def _panels(
    cfg: ReviewConfig,
    run: LabelRun,
    out: Path,
    preds: list[tuple[str, Path, int | None]],
    gt_dir: Path | None,
    split: str,
    stem: str,
    img_path: Path,
    seen: dict[Path, set[int]] | None = None,
) -> tuple[list[Panel], list[Panel], bool, bool]:
    """One image's panels (pseudo label, each prediction found, the annotation last) and its
    detail panels (:func:`_details`), their thumbnails written; whether a prediction and an
    annotation were found; ``seen``: the ids each prediction folder's maps held
    (:func:`_binary_mask`). Raises on an unreadable file."""
    image = load_image(img_path)
    key = _thumb_key(split, stem)
    gt_path = find_png(gt_dir, split, stem) if gt_dir is not None else None
    gt = read_label(gt_path) if gt_path is not None else None
    if gt is not None:
        check_size(gt_path, gt, image.shape[:2], f"its image {img_path}")
    seen = seen or {}
    maps = [("pseudo label", "pseudo", run.label_path(split, stem), 1, PSEUDO_COLOR, None)]
    for i, (caption, d, class_id) in enumerate(preds):
        if p := find_png(d, split, stem):
            name = "pred" if i == 0 else f"pred{i + 1}"
            maps.append((caption, name, p, class_id, PRED_COLOR, seen.get(d)))
    panels: list[Panel] = []
    layers = []  # (mask, colour) of each panel, for its detail
    for caption, name, path, class_id, color, ids in maps:
        mask = _binary_mask(path, class_id, ids)
        check_size(path, mask, image.shape[:2], f"its image {img_path}")
        thumb = overlay(image, mask, color, cfg.thumb)
        scores = _image_scores(mask, gt) if gt is not None else None
        panels.append((caption, f"thumbs/{key}_{name}.jpg", thumb, scores))
        layers.append((mask, color))
    if gt is not None:
        thumb = overlay(image, gt, GT_COLOR, cfg.thumb)
        panels.append(("annotation", f"thumbs/{key}_gt.jpg", thumb, None))
        layers.append((gt, GT_COLOR))
    details = _details(image, panels, layers, gt) if cfg.detail else []
    for _, rel, thumb, _ in panels + details:
        atomic_write_bytes(out / rel, jpeg_bytes(thumb, cfg.quality))
    return panels, details, len(maps) > 1, gt is not None


def _remove_unshown_thumbnails(out: Path, written: set[str]) -> None:
    """Remove the files in ``out/thumbs`` named as thumbnails (:data:`THUMB_NAME`) that this
    gallery did not draw: an earlier gallery's of cards or panels the page no longer shows (a
    smaller ``--limit``, ``--no-detail``, no ``--pred`` or ``--gt``, an image the run lost).
    Before, they stayed there, thousands after a ``--limit 0`` gallery was drawn again with the
    default 300. No other file is touched; one that cannot be removed is a warning."""
    try:
        entries = list(os.scandir(out / "thumbs"))
    except OSError:  # none drawn: no folder
        return
    for entry in entries:
        if f"thumbs/{entry.name}" in written or not THUMB_NAME.fullmatch(entry.name):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("%s: cannot remove this earlier thumbnail (%s)", entry.path, e.strerror)


def _thumb_key(split: str, stem: str) -> str:
    """The start of an image's thumbnail names, ``<split>__<stem>``; where that leaves too few
    of a file name's 255 bytes for a panel's ``_pred2_detail.jpg``, the stem cut and a hash of
    the whole key (a 245-byte stem, a legal image name, failed its card: File name too long)."""
    key = f"{split}__{stem}"
    room = NAME_MAX - 40  # the longest panel suffix, with room to spare
    if len(os.fsencode(key)) <= room:
        return key
    digest = hashlib.sha1(os.fsencode(key)).hexdigest()[:12]
    return f"{cut_to_bytes(key, room - 13)}~{digest}"


def _details(
    image: np.ndarray,
    panels: list[Panel],
    layers: list[tuple[np.ndarray, tuple[int, int, int]]],
    gt: np.ndarray | None,
) -> list[Panel]:
    """The panels again, of the window where the annotation's outlines are densest (else the
    pseudo label's): :func:`engine.outputs.detail_overlays`; each beside its panel's file."""
    thumbs = [thumb for _, _, thumb, _ in panels]
    detail = detail_overlays(image, gt if gt is not None else layers[0][0], layers, thumbs)
    if detail is None:
        return []
    enlarged, zoom = detail
    return [
        (
            f"{caption}: the white box at {zoom:.2g}x",
            rel.removesuffix(".jpg") + "_detail.jpg",
            t,
            None,
        )
        for (caption, rel, _, _), t in zip(panels, enlarged, strict=True)
    ]
