"""What the report says of its inputs, and refuses: the dataset it reads images and labels from
(``--data``, or the one the subset records), a source that equals the annotated masks
(:func:`match_warnings`), images the model was trained on, data other than the subset's, and
images of other sizes (:func:`check_data_sizes`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from annotations.fileio import (
    FUSE_RECORD,
    fused_source,
    read_json,
)
from annotations.labelrun import LabelRun
from annotations.subset import Subset
from engine.datasets import (
    DatasetSpec,
    FusionState,
    SegDataset,
    fused_as_corrections,
    load_spec,
)
from engine.metrics.bootstrap import (
    measures_nothing,
)
from engine.report.config import ReportConfig

log = logging.getLogger(__name__)


def match_warnings(rows: list[dict], subset: str | Path, fused_by: Path | None = None) -> list[str]:
    """One line per source that agrees with the annotated subset on every image
    (:func:`engine.metrics.bootstrap.matches_truth`): its row measures nothing, and the line says
    the likely cause (``fused_by``: the ``fuse.json`` of the fused labels that fused this subset
    as corrections, :func:`engine.datasets.fused_as_corrections`)."""
    lines = []
    for row in rows:
        if not row.get("matches_annotation"):
            continue
        if row["kind"] == "fused labels" and fused_by is not None:
            cause = (
                f"they were fused with this subset as corrections ({fused_by}: engine fuse "
                "--corrections), so they are its masks; score fusion on a subset it was not "
                "given (a test split)"
            )
        elif row["kind"] == "pseudo labels":
            cause = (
                "were the pseudo labels exported by engine annotate export imported without "
                "being corrected?"
            )
        else:
            cause = "is that folder the annotations themselves?"
        lines.append(
            f"{subset}: the annotated masks equal the {row['kind']} "
            + measures_nothing(row["images"], "their", cause)
        )
    return lines


def _fused_by(cfg: ReportConfig, subset: Subset, fusion: FusionState | None = None) -> Path | None:
    """The ``fuse.json`` of ``--fused`` (its folder, or its ``labels/``) that fused ``subset``
    as corrections; None when it did not, or there is none. ``fusion``: the state of the fused
    dataset ``--fused`` is, read already (:func:`engine.datasets.check_fused_finished`)."""
    if not cfg.fused:
        return None
    root = Path(cfg.fused)
    if root.name == "labels":  # its labels/: the state read was of that folder
        root, fusion = root.parent, None
    return fused_as_corrections(DatasetSpec(root=root), Path(subset.root), fusion)


def training_image_warnings(prediction: dict | None, subset: Subset) -> list[str]:
    """A line when the annotated images are of the split the predicting model was trained on
    (``predict.json``'s ``trained_on``): its row then scores images it learnt."""
    trained = (prediction or {}).get("trained_on") or {}
    if trained.get("split") != subset.split:
        return []
    return [
        f"{subset.root}: the annotated images are of split {subset.split!r}, the split the "
        f"model was trained on (on {trained.get('data')}): the prediction row scores images it "
        "learnt (their pseudo labels), not new ones; annotate images of a held-out split"
    ]


def _split_data(data: Path | None, split: str, labels: bool) -> SegDataset | None:
    """The split of the dataset the report reads its photos (and, with ``--pred``, labels)
    from; None without one. A dataset ``engine synth`` draws now or stopped half way is
    refused (:meth:`DatasetSpec.check_finished`); before, its scenes so far passed for it."""
    if not data:
        return None
    spec = load_spec(data)
    spec.check_not_stopped("engine report")
    return SegDataset(spec, split, require_labels=labels)


def _data_root(
    cfg: ReportConfig, subset: Subset, run: LabelRun | None
) -> tuple[str | None, str | None]:
    """The dataset root (images for the overlays, labels for the per-class table) and where it
    came from: ``--data``, else the root the subset was imported against or the label run
    ``run`` labelled, where that folder still exists; ``(None, None)`` without one."""
    if cfg.data:
        return _precise_root(cfg.data, "--data")
    recorded = [(subset.data_root, f"{subset.root / 'subset.json'}")]
    if run is not None:
        recorded.append((run.data_root, f"{Path(cfg.pseudo) / 'run.json'}"))
    for root, source in recorded:
        if root and Path(root).is_dir():
            return _precise_root(str(root), source)
    return None, None


def _fused_source(root: str | os.PathLike) -> Path | None | bool:
    """For a fused dataset (``engine fuse``'s output), the source dataset its record names
    (None when it names none); False for any other folder."""
    record = Path(root) / FUSE_RECORD
    if not record.is_file():
        return False
    try:
        doc = read_json(record, FUSE_RECORD)
    except ValueError:
        doc = None
    return fused_source(doc, root)


def _precise_root(root: str, source: str) -> tuple[str, str]:
    """``(root, source)``, or for a fused dataset (``engine fuse``'s output) its source dataset:
    the fused labels hold pseudo labels, which the per-class table would score the model
    against as if they were true. ``FileNotFoundError`` when the source cannot be found."""
    original = _fused_source(root)
    if original is False:
        return root, source
    if original is None or not original.is_dir():
        raise FileNotFoundError(
            f"{root}: a fused dataset (engine fuse), whose labels hold pseudo labels, and its "
            f"source dataset ({original or 'not recorded'}) is not found from here; give the "
            "source dataset as --data"
        )
    log.warning(
        "%s is a fused dataset: its labels hold pseudo labels, so the report reads images and "
        "precise labels from its source dataset %s",
        root,
        original,
    )
    return str(original), f"{Path(root) / FUSE_RECORD}: the source of the fused dataset ({source})"


def other_data_warnings(cfg: ReportConfig, subset: Subset, root: str | None) -> list[str]:
    """A line when ``--data`` (read from ``root``, a fused dataset's source already put in its
    place) is another folder than the dataset the subset records (``engine annotate import
    --data``, as typed and as resolved) where that still exists: its labels and images would be
    read for the subset's stems, which another dataset of the same layout also has. Paths are
    compared resolved; a copy of the dataset elsewhere is warned about too."""
    if not cfg.data or root is None:
        return []
    recorded = subset.data_root
    if recorded is None or not recorded.is_dir():
        return []
    same = {recorded.resolve()}
    source = _fused_source(recorded)  # recorded at import as a fused dataset: its source
    if isinstance(source, Path):
        same.add(source.resolve())
    if Path(root).resolve() in same:
        return []
    return [
        f"{subset.root / 'subset.json'}: the subset was annotated on the images of {recorded}, "
        f"but --data is {cfg.data}: the per-class table and the overlays read that dataset's "
        "labels and images for the annotated images; unless it is a copy of the same dataset, "
        "leave --data out or give the recorded one"
    ]


def check_data_sizes(subset: Subset, ds: SegDataset, data_source: str | None) -> None:
    """``ValueError`` before any scoring when an image or label of the dataset the report
    reads (``ds``: the subset's split) is not the size of the annotated mask of the same stem:
    the dataset is not the one the subset was annotated on (a ``--data`` of another resolution
    with the same stems). The error names the dataset's file, not the prediction or the mask
    that the scoring would have blamed. Sizes come from the files' headers; a file that cannot
    be read is left to the step that reads it."""
    from engine.datasets import image_size, label_size

    for sample in ds.samples:
        if sample.stem not in subset.stems:
            continue
        try:
            want = label_size(subset.mask_path(sample.stem))
        except ValueError:
            continue
        # a label map is of its stored size, an image of its displayed one (EXIF orientation):
        # a label PNG holding its photo's EXIF block was turned here, and refused
        for path, size_of in ((sample.image_path, image_size), (sample.label_path, label_size)):
            if path is None:
                continue
            try:
                size = size_of(path)
            except ValueError:
                continue
            if size != want:
                raise ValueError(
                    f"{path}: is {size[0]}x{size[1]} but the annotated mask "
                    f"{subset.mask_path(sample.stem)} is {want[0]}x{want[1]}: is the dataset "
                    f"({data_source}) the one the subset was annotated on?"
                )
