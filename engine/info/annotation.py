"""What ``engine info`` says of ``engine annotate``'s files: a pick list and a list of
image names (what an export takes), exported or corrected annotation files (COCO, LabelMe, ...)
and an export killed while putting them in, and an annotated subset (``subset.json``, its masks)
and an import killed while writing one.
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from pathlib import Path

from engine.datasets import replaced_subset_photos
from engine.info.records import add_made_with
from engine.info.unfinished import _half_swapped
from engine.runlock import writer
from engine.text import counted, first_lines


def render_subset(root: str | os.PathLike, masks: bool = True) -> tuple[list, int]:
    """Rich renderables for ``engine info SUBSET`` and the number of problems: what an annotated
    subset holds, from its ``subset.json`` (class, split, images, the class's and unannotated
    pixels, where the annotations came from, and a warning when they were imported as
    exported), and what is wrong with its masks, every one read (:func:`subset_problems`), but
    not with ``masks`` False: a write killed in its swap holds another import's."""
    from rich.table import Table
    from rich.text import Text

    from annotations.subset import read_subset, subset_problems

    sub = read_subset(root, require_masks=False)  # missing masks: listed below
    counts = sub.info.get("counts") or {}

    def total(key: str) -> int:  # a count edited into a string or a list counts 0 (not a crash)
        whole = [c.get(key, 0) for c in counts.values()]
        return sum(n for n in whole if isinstance(n, int))

    pixels = sum(
        c.get("height", 0) * c.get("width", 0)
        for c in counts.values()
        if isinstance(c.get("height", 0), int) and isinstance(c.get("width", 0), int)
    )
    cls = total("class_pixels")
    unknown = total("unannotated_pixels")
    with_class = sum(1 for c in counts.values() if c.get("class_pixels"))
    head = Table(title=f"Annotated subset {sub.root}", show_header=False)
    head.add_column("what")
    head.add_column("value", overflow="fold")
    head.add_row("class", sub.class_name)
    head.add_row("split", sub.split)
    head.add_row("images", f"{len(sub.stems):,} ({with_class:,} with {sub.class_name})")
    if pixels:
        head.add_row(f"{sub.class_name} pixels", f"{cls:,} ({100 * cls / pixels:.2f}%)")
        head.add_row("unannotated pixels", f"{unknown:,} ({100 * unknown / pixels:.2f}%)")
    sources = sorted(set((sub.info.get("sources") or {}).values()))
    if len(sources) > 3:  # one file per image (LabelMe, PNG): their folders
        folders = Counter(str(Path(src).parent) for src in sources)
        shown = [f"{d}/ ({counted(n, 'file')})" for d, n in sorted(folders.items())]
    else:
        shown = sources
    head.add_row("annotations from", ", ".join(shown) or "not recorded")
    read_as = sub.info.get("import_format", "?")
    options = sub.info.get("import_options") or {}
    if options.get("png_value") is not None:
        read_as += f", --png-value {options['png_value']}"
    elif options.get("png_binary"):
        read_as += ", --png-binary"
    head.add_row("imported", f"{sub.info.get('created', '?')} ({read_as})")
    head.add_row("dataset", str(sub.data_root or "not recorded"))
    add_made_with(head, sub.info.get("environment"))
    if holder := writer(sub.root):  # its subset.json and masks are replaced at the end
        head.add_row("now", f"{holder} is importing into it again (this is the earlier subset)")
    out: list = [head]
    # what the import printed, kept (a batch imported alone replaced the earlier batch's masks)
    kept = [str(w) for w in sub.info.get("warnings") or []]
    for warning in first_lines(kept, sub.root / "subset.json", shown=5):
        out.append(Text(f"warning (engine annotate import): {warning}"))
    for run in [] if kept else sub.info.get("unchanged_exports") or []:  # said above
        out.append(
            f"warning: imported exactly as exported from {run}: these masks are the pseudo "
            "labels, not corrections"
        )
    problems = subset_problems(sub) if masks else []
    if replaced := replaced_subset_photos(sub):
        problems.append(replaced)
    if problems:
        out.append(Text(f"{counted(len(problems), 'problem')} found:", style="bold red"))
        out.extend(Text(f"  {p}") for p in problems)
    return out, len(problems)


def render_pick_list(path: str | os.PathLike) -> list | None:
    """Rich renderables for ``engine info`` on a list ``engine annotate pick`` wrote (its
    ``.txt``, or the ``.json`` record beside it): the images, split and label run it was picked
    from, why each group was picked, and the export that takes it; None for any other file.
    Before, such a list was read as a dataset spec ("a dataset spec must be a mapping")."""
    from annotations.fileio import read_json

    path = Path(path)
    if path.suffix.lower() not in (".txt", ".json") or not path.is_file():
        return None
    twin = path.with_suffix(".json")
    try:
        record = read_json(twin, "pick record") if twin.is_file() else None
    except ValueError:
        return None  # not JSON: read as a spec, which says why
    if not isinstance(record, dict) or not isinstance(record.get("picks"), list):
        return None
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    picks = [p for p in record["picks"] if isinstance(p, dict)]
    listed = path.with_suffix(".txt") if path.suffix.lower() == ".json" else path
    reasons = Counter(str(p.get("reason")) for p in picks)
    run = config.get("run") or record.get("run_resolved") or "RUN"
    cls = record.get("class_name")
    lines = [
        f"{listed}: a pick list (engine annotate pick): {counted(len(picks), 'image')} of split "
        f"{config.get('split')!r} of label run {run}"
        + (f" ({cls})" if cls else "")
        + (", " + ", ".join(f"{n} {r}" for r, n in reasons.most_common()) if reasons else ""),
        f"next: engine annotate export {shlex.quote(str(run))} --images "
        f"{shlex.quote(str(listed))} --out OUT (docs/annotate.md)",
    ]
    return lines


def render_image_list(path: str | os.PathLike) -> list | None:
    """Rich renderables for ``engine info`` on a ``.txt`` list of image names without the pick
    record :func:`render_pick_list` reads (a pick list copied alone, one written by hand): how
    many images it names and the export that takes it (``--images``); None for any other file,
    and for a ``.txt`` that YAML reads as a mapping (a dataset spec, read as one). Before the
    fifty-sixth round such a list was read as a dataset spec ("a dataset spec must be a
    mapping")."""
    from annotations.fileio import parse_yaml, read_text
    from engine.annotate import stem_lines

    path = Path(path)
    if path.suffix.lower() != ".txt" or not path.is_file():
        return None
    try:  # read once, as YAML and as a list (before, twice: a list written meanwhile read two ways)
        text = read_text(path, "image list")
    except ValueError:
        return None  # not text: read as a spec, which says why
    try:
        if isinstance(parse_yaml(text, path), dict):
            return None
    except ValueError:
        pass  # "a.jpg: b": YAML's error; a list of names all the same
    try:
        names = [n for n in stem_lines(text, path) if not n.startswith("#")]
    except ValueError:
        return None  # empty: read as a spec, which says why
    twin = path.with_suffix(".json").name
    return [
        f"{path}: a list of {counted(len(names), 'image name')} (no pick record {twin} beside "
        "it): the images engine annotate export exports",
        f"next: engine annotate export RUN --images {shlex.quote(str(path))} --out OUT "
        "(RUN: the label run or annotated subset; docs/annotate.md)",
    ]


def render_annotation_files(items: list, unfinished: str | None = None) -> list:
    """Rich renderables for ``engine info`` on annotation files (``engine.annotate.
    annotation_files``): per COCO file or LabelMe folder, its images, what each label holds, the
    shapes, where the files were exported from, and the import line that makes them a subset;
    ``unfinished``: the line on an export killed while putting these files in
    (:func:`_half_swapped_export`), a problem of each table, said last. Before, each table said
    "problems: none" above it."""
    from rich.table import Table

    from annotations.interchange import record_part
    from annotations.polygons import COCO

    out: list = []
    said: set[str] = set()
    for item in items:
        name = {
            COCO: "COCO file",
            "segmask": "CVAT segmentation masks",
            "labelstudio": "Label Studio tasks",
            "cvat": "CVAT XML",
            "yolo": "YOLO labels",
        }.get(item.format, "LabelMe files")
        head = Table(title=f"{name} {item.path}", show_header=False)
        head.add_column("what")
        head.add_column("value", overflow="fold")
        if item.format not in (COCO, "labelstudio", "cvat"):
            head.add_row("files", f"{item.files:,}")
        head.add_row("images", f"{item.images:,} ({item.empty_images:,} without any annotation)")
        if item.waiting:
            head.add_row(
                "not annotated yet",
                f"{counted(item.waiting, 'task')} without a submitted annotation (import leaves "
                "them out; their pre-annotations are counted here)",
            )
        unit = {
            COCO: "annotation",
            "segmask": "image",
            "labelstudio": "region",
            "yolo": "object",
        }.get(item.format, "shape")  # LabelMe's and CVAT XML's: shapes
        for label, n in sorted(item.by_label.items()):
            head.add_row(f"  {label}", counted(n, unit))
        head.add_row("shapes", ", ".join(f"{k} {n:,}" for k, n in sorted(item.kinds.items())))
        record = item.export
        if record:
            config = record_part(record, "config")
            made = record_part(record, "environment").get("time")
            head.add_row(
                "exported from",
                f"{record.get('run') or 'annotated subset ' + str(record.get('subset'))} "
                f"(split {record.get('split')}"
                + (
                    f", {config['mask_format']} masks"
                    if item.format == COCO and config.get("mask_format")
                    else ""
                )
                + (f", {made}" if made else "")
                + ")",
            )
        elif item.format not in ("segmask", "cvat", "yolo"):
            head.add_row("exported from", "not recorded (an annotation tool's file)")
        if item.problems is not None:  # read as import reads them (COCO, LabelMe)
            head.add_row(
                "problems",
                "none (read as import reads them; import also checks each image against the "
                "dataset)"
                if not item.problems and unfinished is None
                else counted(len(item.problems) + (unfinished is not None), "problem")
                + (" that import would refuse:" if unfinished is None else ":"),
            )
            for problem in item.problems:
                head.add_row("", problem)
            if unfinished is not None:
                head.add_row("", "an export interrupted while putting its files in (below)")
        out.append(head)
        lines = [line for line in item.import_commands() if line not in said]
        said.update(lines)  # files of one zip download share its line: said once
        out.extend(f"import: {line}" for line in lines)
    return out if unfinished is None else [*out, unfinished]


def _half_swapped_export(folder: Path) -> str | None:
    """A line on an export killed between the renames that put its files in (no process
    writes the folder now): some of them are the new export's, the rest still in its hidden
    staging folder, which the next ``engine annotate export`` into the folder puts in before
    anything else. Before the forty-eighth round engine info listed such a folder's files
    (a coco.json without its labelme/) as a whole export, without a problem."""
    return _half_swapped(
        folder,
        ".export.",
        "an export",
        "engine annotate export into {folder} finishes it first (then refuses to replace it "
        "without --force)",
        "earlier export",
    )


def _half_swapped_subset(folder: Path) -> str | None:
    """The same line for an annotated subset whose write (``engine annotate import``,
    :func:`annotations.subset.write_subset`) was killed between the renames of its ``masks/``
    and ``subset.json``: new masks beside the old manifest, or masks without one. Before the
    forty-eighth round engine info showed the old manifest's subset over the new masks without
    a word, or, with no manifest yet, the hidden staging folder's as the subset, its masks
    "missing"."""
    return _half_swapped(
        folder,
        ".masks.",
        "an annotated subset's write (engine annotate import)",
        "engine annotate import --out {folder} finishes it first (then writes its own subset "
        "over it: of the same class and split, else with --replace)",
        "earlier subset",
    )
