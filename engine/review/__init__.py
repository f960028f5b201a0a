"""Review gallery of a label run: one static ``index.html`` plus a ``thumbs/`` folder.

The page needs no server and no external asset (it opens from ``file://``): overlays of the
pseudo labels on the images, sorted by confidence (lowest first; buttons re-sort), with per-image
instance counts and scores, and, where given, the model's predictions (one folder or several,
such as the release's inference and the guided filter's) and the manual annotation side by side.
Where an image is annotated, every panel is scored against the annotation (that image's IoU,
Boundary IoU and Boundary F1, :func:`engine.metrics.binary_class_scores`, the functions the
report sums over a subset) and a button sorts by the pseudo label's IoU, worst first.
Thumbnails are JPEGs with the long side at ``thumb`` pixels (512 by default: a 4032x3024 photo
becomes 512x384, about 30-60 kB), downscaled with area averaging so that thin structures stay
visible as partial tint.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import logging
import math
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from annotations.fileio import (
    NAME_MAX,
    UNREADABLE,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    cut_to_bytes,
    first_line,
    is_dataset_root,
    is_disk_error,
    output_kind,
    outputs_around,
)
from annotations.labelmap import read_label
from annotations.labelrun import LabelRun, latest_records, run_folder_of
from annotations.subset import ImageStats, check_subset_class, read_subset
from engine.annotate import dataset_images, image_stat, splits_said, warn_not_labelled
from engine.datasets import SegDataset, check_folder_finished, load_image, load_spec, relative_ref
from engine.metrics import binary_class_scores
from engine.outputs import (
    GT_COLOR,
    PRED_COLOR,
    PSEUDO_COLOR,
    UNCERTAIN_COLOR,
    check_size,
    detail_overlays,
    find_png,
    jpeg_bytes,
    overlay,
    prediction_settings,
    prediction_title,
    taxonomy_record,
)
from engine.runinfo import environment
from engine.text import METRICS, counted, format_score, split_names

log = logging.getLogger(__name__)


@dataclass
class ReviewConfig:
    run: str  # label run directory
    out: str | None = None  # gallery folder; None: RUN/review
    # splits to show (a name, a comma-separated list, or a list); None: every split of the run
    split: str | Sequence[str] | None = None
    data: str | None = None  # dataset root; None: the one run.json names
    # model predictions: <pred>/[<split>/]<stem>.png label maps; one folder or several, a
    # panel each, named from the folder's predict.json ("prediction + guided filter")
    pred: str | Sequence[str] | None = None
    pred_class_id: int | None = None  # the class's id in the predictions; None: from the
    # taxonomy next to each folder (taxonomy.json / predict.json), else they must be binary 0/1
    gt: str | None = None  # annotated subset dir (masks/<stem>.png) or a folder of 0/1/255 masks
    thumb: int = 512  # thumbnail long side in pixels
    limit: int = 300  # show at most this many images, lowest confidence first; 0: all
    quality: int = 85  # JPEG quality of thumbnails
    progress: bool = True  # progress bar on stderr
    detail: bool = True  # a second row: the same panels of the window with the densest outlines

    def __post_init__(self) -> None:
        # the CLI's bounds (--thumb, --limit) and JPEG's: a library caller's thumb=0 (1x1 px
        # thumbnails), limit=-1 or quality=101 (an OpenCV warning per thumbnail) went through
        if self.thumb < 64:
            raise ValueError(f"thumb must be >= 64 (px, the long side), got {self.thumb}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0 (0: every image), got {self.limit}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in 1..100 (JPEG), got {self.quality}")


@dataclass
class ReviewResult:
    index: Path  # the gallery's index.html
    images: int  # images shown
    with_pred: int  # of which with a model prediction
    with_gt: int  # of which with a manual annotation (and so scored)
    # images whose files could not be read, as "split/stem: problem"; each is a card that says so
    # but the last ``past_limit``, known unreadable before drawing and past --limit: no card
    failed: list[str] = field(default_factory=list)
    past_limit: int = 0
    labelled: int = 0  # images of the splits shown the run labelled; more than images: --limit cut


# A panel of a card: its caption, thumbnail path (relative to the gallery), thumbnail, and its
# scores against the image's annotation (None where the image has none)
Panel = tuple[str, str, np.ndarray, dict[str, float | None] | None]

NO_SCORE = 101.0  # the IoU sort key of images without an annotation or a score: after all others
# a thumbnail's name (_thumb_key, _panels, _details): <split>__<stem>_<panel>[_detail].jpg
THUMB_NAME = re.compile(r".+__.+_(?:pseudo|pred\d*|gt)(?:_detail)?\.jpg", re.S)


class MissingClassIdError(ValueError):
    """Predictions with several class ids and no ``--pred-class-id``: the command's usage, not
    one image's file, so it stops the gallery."""


def _binary_mask(path: Path, class_id: int | None) -> np.ndarray:
    """The label map at ``path`` as 1 = ``class_id``, 255 = 255, 0 = the rest; ``None``: a
    map that must already be binary (0/1/255)."""
    label = read_label(path)
    if class_id is None:
        extra = np.setdiff1d(np.unique(label), [0, 1, 255])
        if extra.size:
            raise MissingClassIdError(
                f"{path}: prediction has class ids {extra[:5].tolist()} besides 0/1; "
                "say which id is the new class (--pred-class-id)"
            )
        return label
    return np.where(label == 255, 255, (label == class_id).astype(np.uint8)).astype(np.uint8)


def _pred_dirs(pred: str | Sequence[str] | None) -> list[Path]:
    if pred is None:
        return []
    return [Path(pred)] if isinstance(pred, str | os.PathLike) else [Path(d) for d in pred]


def _image_scores(mask: np.ndarray, gt: np.ndarray) -> dict[str, float | None]:
    """IoU and BIoU (x100) and BF1 of the class (1) in ``mask`` against ``gt`` (0/1/255), both
    of the image's size; None where a score is undefined (no class pixel in either)."""
    res = binary_class_scores(mask, gt)
    return {key: None if math.isnan(v := getattr(res, key)) else v for key, _, _ in METRICS}


def split_list(split: str | Sequence[str] | None) -> list[str]:
    """``--split``'s names: ``"val,test"``, ``["val", "test"]`` or ``"val"``; [] for None."""
    texts = [split] if isinstance(split, str) else list(split or [])
    return list(dict.fromkeys(split_names(texts) or ()))


def _nothing_labelled(run: LabelRun, splits: list[str], chosen: bool) -> str:
    """The error of a run with no pseudo label in ``splits`` (``chosen`` with ``--split``,
    else the run's own): how many images failed there (every one, when the run has none at
    all), pointing at ``engine info RUN``, which lists why; else the run's splits."""
    latest = latest_records(run.root)
    failed = sum(
        1
        for (s, _), rec in latest.items()
        if rec.get("status") != "ok" and (not chosen or s in splits)
    )
    which = ""
    if chosen:
        which = f" in split{'s' if len(splits) > 1 else ''} {', '.join(map(repr, splits))}"
    if failed:
        return (
            f"{run.root}: no labelled image yet{which}: {counted(failed, 'image')} failed "
            f"(see engine info {shlex.quote(str(run.root))})"
        )
    return f"{run.root}: no labelled images to review{which} {splits_said(run)}"


def warn_not_reached(data: str | None, run: LabelRun, splits: Sequence[str]) -> None:
    """Warn of the splits of the dataset the run was to label (run.json's ``config.splits``,
    else every split of the dataset it labelled), holding images, that it has no labels of
    (``splits``: those it has): a run killed after train, before val, was reviewed as train
    alone without a word, while :func:`warn_not_labelled` said a split it had begun. ``engine
    fuse`` refuses such a split by the same rule (:func:`engine.fusion.run.was_to_label`;
    before, restated here without its "this dataset": a review given ``--data`` another
    dataset warned of that one's splits)."""
    from engine.fusion.pseudo import open_pseudo_run
    from engine.fusion.run import was_to_label

    root = Path(data) if data else run.data_root
    if root is None or not run.run_json.is_file():
        return
    try:
        spec, pseudo = load_spec(root), open_pseudo_run(run.root)
        told = list(pseudo.splits) or spec.available_splits()
        to_label = [s for s in told if was_to_label(pseudo, s, root, spec)]
    except (OSError, ValueError):  # the dataset unreadable: the splits' own errors say it
        return
    left = []
    for split in (s for s in to_label if s not in splits):
        with contextlib.suppress(OSError, ValueError):  # no such split: nothing to label
            if SegDataset(spec, split, require_labels=False, lenient=True).samples:
                left.append(split)
    if left:
        log.warning(
            "%s: %s not labelled (yet), which it was to label: the review has %s alone; engine "
            "label with the same settings finishes the run",
            run.root,
            f"split {left[0]!r}" if len(left) == 1 else f"splits {', '.join(left)}",
            f"split {splits[0]!r}" if len(splits) == 1 else f"splits {', '.join(splits)}",
        )


def _split_images(
    data: str | None, run: LabelRun, split: str
) -> tuple[dict[str, Path], Path | None]:
    """``stem -> image path`` of the split (:func:`engine.annotate.dataset_images`, which
    leaves a label without its image to ``engine info``) and the split's image folder (None:
    no dataset known)."""
    images = dataset_images(data, run, split, "engine review")
    root = Path(data) if data else run.data_root
    return images, None if root is None else load_spec(root).image_dir(split)


def check_annotation_folder(gt: Path, class_name: str) -> None:
    """Refuse as ``--gt`` a folder that holds no annotation of one class: an engine output other
    than an annotated subset, or a folder in one (a label run's ``labels/``), and a dataset's
    root or its ``annotations/`` folder. Each was read as 0/1/255 masks of the class: a label
    run's own pseudo labels scored 100 against themselves, and the label maps of a fused dataset
    or a dataset (every class's id) scored whatever class id 1 is, in a gallery that looked
    right. Only the nearest output counts, and in a label run only the folders engine label
    writes (:data:`annotations.labelrun.RUN_FOLDERS`: its labels, confidence maps and
    instances): a user's own masks kept in ``RUN/car_manual`` were refused as "a folder inside
    RUN, a label run", and its confidence maps must not be scored as masks."""
    fix = (
        "give --gt an annotated subset (engine annotate import) or a folder of 0/1/255 masks "
        f"of {class_name}"
    )
    around = outputs_around(gt)
    if around and around[0][1] == "run.json" and run_folder_of(gt) is None:
        return  # a user's own masks kept in a run's folder (RUN/car_manual): not its outputs
    if around and around[0][1] != "subset.json":
        folder = around[0][0]
        what = output_kind(folder)[1]  # type: ignore[index]  # found by it
        inside = "" if folder == gt else f"a folder inside {folder}, "
        raise ValueError(f"{gt}: it is {inside}{what}, not annotated ground truth; {fix}")
    if around:  # a subset's folder, or one in it
        return
    for root in (gt, gt.parent, gt.parent.parent):
        if (root == gt or gt.relative_to(root).parts[0] == "annotations") and is_dataset_root(root):
            held = "a dataset's root" if root == gt else f"a folder of the dataset {root}"
            raise ValueError(
                f"{gt}: it is {held}, whose label maps hold every class's id, not masks of "
                f"{class_name}; {fix} (engine annotate import --format png --png-value ID)"
            )


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
                        cfg, run, out, preds, gt_dir, split, st.stem, img_path
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
) -> tuple[list[Panel], list[Panel], bool, bool]:
    """One image's panels (pseudo label, each prediction found, the annotation last) and its
    detail panels (:func:`_details`), their thumbnails written; whether a prediction and an
    annotation were found. Raises on an unreadable file."""
    image = load_image(img_path)
    key = _thumb_key(split, stem)
    gt_path = find_png(gt_dir, split, stem) if gt_dir is not None else None
    gt = read_label(gt_path) if gt_path is not None else None
    if gt is not None:
        check_size(gt_path, gt, image.shape[:2], f"its image {img_path}")
    maps = [("pseudo label", "pseudo", run.label_path(split, stem), 1, PSEUDO_COLOR)]
    for i, (caption, d, class_id) in enumerate(preds):
        if p := find_png(d, split, stem):
            name = "pred" if i == 0 else f"pred{i + 1}"
            maps.append((caption, name, p, class_id, PRED_COLOR))
    panels: list[Panel] = []
    layers = []  # (mask, colour) of each panel, for its detail
    for caption, name, path, class_id, color in maps:
        mask = _binary_mask(path, class_id)
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


def _score_text(scores: dict[str, float | None]) -> str:
    """``IoU 41.20 · BIoU 20.31 · BF1 0.5530`` ("n/a" where undefined), as the report prints."""
    return " &middot; ".join(
        f"{title} {format_score(scores[key], nd)}" for key, title, nd in METRICS
    )


def _url(path: str) -> str:
    """A relative file path as an attribute's URL: percent-encoded, so that an image named
    ``bike #3.jpg`` or ``x?y.jpg`` loads (``#`` and ``?`` would end the path) in any browser. A
    name that is not UTF-8 (``caf\\xe9.jpg``) as its own bytes (``caf%E9.jpg``, as ``as_uri``
    does): it raised UnicodeEncodeError, and ``engine review`` wrote no gallery at all."""
    return html.escape(quote(path.replace(os.sep, "/"), errors="surrogateescape"))


def _image_url(path: Path, out: Path) -> str:
    """The link from the gallery in ``out`` to the image ``path``: its path relative to the
    gallery (:func:`_url`), or its ``file:`` URL where there is none (on another drive, on
    Windows: ``os.path.relpath`` raised "path is on mount 'D:', start on mount 'C:'", and the
    whole gallery failed with it), and where ``..`` out of a folder reached through a symbolic
    link reads otherwise from the path as typed than from the real one (:func:`relative_ref`):
    a browser resolves it against the page's URL, which is either (a browser or file manager
    may resolve the links), and only the absolute URL holds for both. An image inside the
    gallery's folder (by its real path) is linked relative, down from the folder, which leads to
    it from either path of the folder: its absolute URL (``../a/b/real/imgs/x.jpg`` from a
    linked ``g``, given the image's real path, leads elsewhere) broke once the gallery was
    served over HTTP (``python -m http.server``), where no ``file:`` link loads."""
    real, real_out = Path(os.path.realpath(path)), Path(os.path.realpath(out))
    if real.is_relative_to(real_out):
        return _url(real.relative_to(real_out).as_posix())
    ref = relative_ref(path, out)
    return html.escape(Path(ref).as_uri()) if Path(ref).is_absolute() else _url(ref)


def _card(
    split,
    st,
    scores,
    panels: list[Panel],
    original: str | None,
    problem: str | None = None,
    details: Sequence[Panel] = (),
    first: bool = False,
) -> str:
    """One image's card; with ``problem``, no panels and the problem in their place. The title
    links to ``original``, the image's URL from the gallery (:func:`_image_url`; None: no image
    found). ``first``: a card sorted before all (its pseudo label, confidence map or image could
    not be read); ``data-group`` keeps it first, and one with nothing labelled last, when the
    page is sorted by confidence either way."""
    conf = "" if math.isnan(st.confidence) else f"{st.confidence:.3f}"
    group = 0 if first else 2 if not conf else 1  # NaN: nothing labelled
    conf_text = conf or "no pixel labelled"
    figs = "".join(
        f'<figure><img src="{_url(rel)}" alt="{html.escape(title)}" loading="eager">'
        f"<figcaption>{html.escape(title)}"
        + (f'<br><span class="score">{_score_text(s)}</span>' if s is not None else "")
        + "</figcaption></figure>"
        for title, rel, _, s in panels
    )
    if details:  # on a row of their own
        figs += '<div class="break"></div>' + "".join(
            f'<figure><img src="{_url(rel)}" alt="{html.escape(title)}" loading="eager">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>"
            for title, rel, _, _ in details
        )
    if problem is not None:
        figs = f'<p class="problem">could not be shown: {html.escape(problem)}</p>'
    score_text = ", ".join(f"{s:.2f}" for s in scores) or "none"
    pseudo = panels[0][3] if panels else None  # the pseudo label's scores, None without one
    iou = pseudo["iou"] if pseudo is not None and pseudo["iou"] is not None else NO_SCORE
    name = f"{html.escape(split)}/{html.escape(st.stem)}"
    title = name if original is None else f'<a href="{original}">{name}</a>'
    return (
        f'<div class="card" data-group="{group}" data-conf="{conf or "2"}" '
        f'data-n="{st.num_instances}" '
        f'data-iou="{iou:.4f}" data-stem="{html.escape(st.stem)}">'
        f"<h3>{title}</h3>"
        f"<p>confidence <b>{conf_text}</b> &middot; {counted(st.num_instances, 'instance')} "
        f"({st.num_tiny} tiny) &middot; instance scores: {score_text}</p>"
        f'<div class="panels">{figs}</div></div>'
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa;color:#222}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0 0 1em;padding:.5em 1em}
.card h3{margin:.2em 0;font-size:1em}.card p{margin:.2em 0 .5em;font-size:.9em}
.panels{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}.break{flex-basis:100%;height:0}
figure img{max-width:512px;width:100%;display:block;border:1px solid #ccc}
figcaption{font-size:.8em;color:#555}.problem{color:#c00}.score{font-variant-numeric:tabular-nums}.badge{background:#c00;color:#fff;padding:0 .4em;border-radius:3px}
button{margin-right:.5em}
"""

_JS = """
function sortCards(key, dir){
  const box=document.getElementById('cards');
  const cards=[...box.children];
  // by confidence, either way: the cards that could not be read first, as the page has them,
  // and those with nothing labelled (no confidence) last
  const group=c=>key==='conf'?parseInt(c.dataset.group||'1'):0;
  cards.sort((a,b)=>group(a)-group(b)
                    ||dir*(parseFloat(a.dataset[key])-parseFloat(b.dataset[key]))
                    ||a.dataset.stem.localeCompare(b.dataset.stem));
  cards.forEach(c=>box.appendChild(c));
}
window.addEventListener('load',()=>{
  const imgs=[...document.images];
  const ok=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;
  document.body.dataset.imagesLoaded=ok;
  document.body.dataset.imagesTotal=imgs.length;
});
"""


def _script_json(doc: dict) -> str:
    """``doc`` as JSON to embed in a ``<script>``, whose text is read as is (not HTML-unescaped):
    ``<``, ``>`` and ``&`` written as JSON escapes, so a path holding ``</script>`` cannot end
    the element and ``JSON.parse`` of the element's text gives ``doc`` back."""
    text = json.dumps(doc, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _page(
    class_name: str,
    backend: str,
    run_root: str,
    cards: list[str],
    cfg: dict,
    scored: bool,
    cut: tuple[int, int] | None = None,
) -> str:
    """The gallery's page; ``cut``: (images labelled, of them unreadable without a card) where
    --limit left images out, said under the heading (before, only the cards' count was)."""
    shown, more = counted(len(cards), "image"), ""
    if cut is not None:
        shown = f"{len(cards):,} of {counted(cut[0], 'image')} (--limit {len(cards)})"
        if cut[1]:
            more = (
                f'<p class="problem">{counted(cut[1], "more image")} could not be shown and '
                "have no card here (past --limit): review.json lists them</p>"
            )
    badge = ' <span class="badge">simulated labeler</span>' if backend == "simulated" else ""
    legend = (
        f"tints: pseudo label rgb{PSEUDO_COLOR}, prediction rgb{PRED_COLOR}, "
        f"annotation rgb{GT_COLOR}, uncertain / unannotated rgb{UNCERTAIN_COLOR}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Review: {html.escape(class_name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(class_name)} pseudo labels ({html.escape(backend)}){badge}</h1>"
        f"<p>run {html.escape(run_root)} &middot; {shown}, "
        "lowest confidence first "
        "(confidence = mean over pixels labelled the class, 0..1)</p>"
        f"{more}<p>{html.escape(legend)}</p>"
        + (
            "<p>annotated images: each panel's IoU and Boundary IoU (x100) and Boundary F1 of "
            "this image against the annotation</p>"
            if scored
            else ""
        )
        + "<p><button onclick=\"sortCards('conf',1)\">confidence &uarr;</button>"
        "<button onclick=\"sortCards('conf',-1)\">confidence &darr;</button>"
        "<button onclick=\"sortCards('n',-1)\">most instances</button>"
        + (
            "<button onclick=\"sortCards('iou',1)\">pseudo-label IoU &uarr;</button>"
            if scored
            else ""
        )
        + "</p>"
        f"<div id='cards'>{''.join(cards)}</div>"
        f"<script type='application/json' id='config'>{_script_json(cfg)}</script>"
        f"<script>{_JS}</script></body></html>\n"
    )
