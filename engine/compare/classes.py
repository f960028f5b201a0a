"""Which class is compared, and where: the ground truth's kind (not a 0/255 mask), the class
looked up by name in each taxonomy, a source's folder for a split, and the class a subset, a
label run or a fused dataset holds checked against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annotations.labelmap import read_label
from annotations.labelrun import read_run_info, run_folder_of
from annotations.subset import read_subset
from annotations.taxonomy import MASS13K, Taxonomy, class_key
from engine.compare.config import CompareConfig
from engine.compare.inputs import _folder_mode, binary_output, resolve_class
from engine.datasets import DatasetSpec
from engine.evaluate import Truth, ground_truth, split_required
from engine.outputs import DEFAULT_TAXONOMY, png_folders, subset_taxonomy, taxonomy_record


def check_not_0_255(gt: Path) -> None:
    """``ValueError`` when a folder of binary ground truth without a single class pixel holds
    255: masks saved as 0/255 (a common export), whose 255 would be read as "unannotated", so
    every score would be measured on nothing. One pass, which stops at the first file that
    marks the class (1)."""
    with_255 = None
    for path in sorted(gt.glob("*.png")):
        label = read_label(path)
        if (label == 1).any():
            return
        if with_255 is None and (label == 255).any():
            with_255 = path
    if with_255 is not None:
        raise ValueError(
            f"{gt}: no ground-truth file marks the class (1), and {with_255.name} holds 255, "
            "which reads as unannotated: are these 0/255 masks? Import them as an annotated "
            "subset (engine annotate import --format png --png-binary) and give that as --gt"
        )


def class_by_name(
    given: str, taxonomy: Taxonomy, source: str, subset_class: str | None = None
) -> str:
    """The name of the class compared. An id (``--class 7``) is resolved once, in the ground
    truth's taxonomy (``taxonomy``, read from ``source``; for an annotated subset, whose folder
    records none, MaSS13K and its class, as ``engine report`` reads it); every folder then
    finds that name in its own taxonomy, since a fused dataset may hold the class at another
    id than the model's predictions."""
    text = given.strip()
    if not text.isdecimal():  # '٣' (Arabic-Indic) is 3 as int reads it; '²' is a name, not a number
        return text
    if subset_class is not None and source == DEFAULT_TAXONOMY and subset_class not in taxonomy:
        taxonomy, source = subset_taxonomy(subset_class)
    if int(text) >= len(taxonomy):
        raise ValueError(
            f"--class {text}: no class has that id in the ground truth's taxonomy ({source}: "
            f"{taxonomy.listed()}); give the class by name"
        )
    return taxonomy[int(text)].name


def source_folder(folder: Path, split: str | None) -> Path:
    """The folder of a source's PNGs: ``folder`` itself, or with the subset's ``split`` known,
    the first of :func:`engine.outputs.png_folders` holding PNGs (as the report finds them)."""
    folder = Path(folder)
    if split is None:
        if (folder / "run.json").is_file():  # its PNGs are under labels/<split>: which one?
            raise ValueError(
                f"{folder}: a label run; give its labels/<split> folder, or an annotated "
                "subset (engine annotate import) as --gt, which names the split"
            )
        return folder
    return next((d for d in png_folders(folder, split) if any(d.glob("*.png"))), folder)


def folder_classes(cfg: CompareConfig, *folders: Path) -> tuple[Taxonomy, str]:
    """The taxonomy of a folder's label maps and where it came from: ``cfg.taxonomy`` when
    given, else the first recorded at ``folders`` (:func:`engine.outputs.taxonomy_record`:
    engine predict's predict.json, a fused dataset's taxonomy.json), else MaSS13K."""
    if cfg.taxonomy is not None:
        return Taxonomy.load(cfg.taxonomy), str(cfg.taxonomy)
    found = taxonomy_record(*folders)
    return (found[0], str(found[1])) if found else (MASS13K, DEFAULT_TAXONOMY)


def _lacks(class_name: str, taxonomy: Taxonomy, source: str) -> str:
    """What a file's error says when its taxonomy has no such class."""
    return f"its taxonomy ({source}: {taxonomy.listed()}) has no class {class_name!r}"


def _class_in(
    cfg: CompareConfig, class_name: str, taxonomy: Taxonomy, source: str, what: str
) -> int | None:
    """The id of ``class_name`` in ``taxonomy`` (None: binary masks only), refused for full
    label maps."""
    _, class_id = resolve_class(class_name, taxonomy)
    if class_id is None and cfg.input == "labels":
        raise ValueError(
            f"class {class_name!r} is not in the taxonomy of {what} ({source}: "
            f"{taxonomy.listed()}); pass --taxonomy with it"
        )
    return class_id


def _check_recorded_class(
    cfg: CompareConfig, named: str, name: str, given: Path, split: str | None
) -> None:
    """Refuse a source whose recorded taxonomy (a model's ``predict.json``, a fused dataset's
    ``taxonomy.json``) lacks the class: made before the class was added (the 8-class model's
    predictions, for Car), its maps hold none of it. Before, each file failed alone with
    advice to pass --taxonomy, which would misnumber the recorded classes."""
    folder = source_folder(given, split)
    tax, tax_source = folder_classes(cfg, Path(given), folder, folder.parent)
    recorded = cfg.taxonomy is None and tax_source != DEFAULT_TAXONOMY
    if (
        recorded
        and resolve_class(named, tax)[1] is None
        and _folder_mode(cfg, tax_source, folder) == "labels"
    ):
        raise ValueError(
            f"source {name!r}: {_lacks(named, tax, tax_source)}: it was made before "
            f"{named} was added, so it predicts none; leave it out of --source, or compare a "
            "class it has"
        )


def check_held_class(named: str, what: str, folder: Path) -> None:
    """Refuse a folder of binary masks that an engine output records as another class's: a
    label run's (``run.json``) or an annotated subset's (``subset.json``), the nearest one the
    folder is or lies in. Its 1s are that class, whatever ``--class`` says; before, a label run
    of Bicycle given as a source of ``--class Car`` was scored as Car without a word. A
    folder of a run's confidence maps or instances (``RUN/confidence/test``) is no masks at all:
    refused, where its 0..255 values were scored as a class."""
    inside = run_folder_of(folder)
    if inside is not None and inside[1] not in ("", "labels"):
        root, name = inside
        raise ValueError(
            f"{what}: {folder} is in the {name} folder of the label run {root}, not masks of a "
            f"class; give its labels ({root / 'labels'}/<split>)"
        )
    if (found := binary_output(folder)) is None:
        return
    root, record = found
    run = record == "run.json"
    held = read_run_info(root / record).class_name if run else read_subset(root).class_name
    if class_key(held) != class_key(named):
        raise ValueError(
            f"{what}: {root / record} holds {held}, not {named}: its masks are {held}'s; "
            f"give the {named} ones, or --class {held}"
        )


def dataset_split(cfg: CompareConfig, subset: Any, spec: DatasetSpec | None) -> Truth | None:
    """The label maps of ``cfg.split`` of the dataset ``cfg.gt`` (its root or spec), read as
    ``engine evaluate --gt DATASET --split S`` reads them; None without ``--split``. A subset's
    own split may be given (the same); another is refused, as is ``--split`` for a folder, and a
    dataset without it (evaluate's line: give --split, naming its splits). ``spec``: ``cfg.gt``'s
    :func:`engine.evaluate.dataset_spec`, loaded once by the caller."""
    if cfg.split is None:
        if subset is None and spec is not None:
            raise split_required(Path(cfg.gt), spec)  # a dataset, not a folder of label maps
        return None
    if subset is not None:
        if cfg.split != subset.split:
            raise ValueError(
                f"--split {cfg.split}: {cfg.gt} is an annotated subset of split {subset.split}; "
                "leave --split out (the subset names its split)"
            )
        return None
    return ground_truth(Path(cfg.gt), cfg.split, "engine compare", spec)
