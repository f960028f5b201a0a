"""Dataset statistics for ``engine info``: counts, image sizes, class pixel shares, problems.

One pass over each split: every image is decoded (or its header read) and every label read and
validated through :func:`engine.datasets.check_sample`, which reports all problems, while the
same pass counts pixels per class (the paper's Fig. 2). A fused dataset's source maps are read
as training reads them (present, the label's size, values 0/1/2) and counted per source. With
``workers`` > 1 the samples are checked in that many processes
(:func:`engine.parallel.map_in_order`; a worker sends back its sample's problems, size and
pixel counts, not the label), in order, so the report is the same.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import (
    UNREADABLE,
    file_bytes,
    first_line,
    fused_input,
    fused_source,
    is_dataset_root,
    output_kind,
    try_lock,
)
from annotations.fileio import spec_file as find_spec_file
from annotations.labelmap import IGNORE, byte_histogram, read_label
from annotations.taxonomy import Taxonomy
from engine.datasets import (
    SOURCE_NAMES,
    DatasetSpec,
    Problem,
    Sample,
    SegDataset,
    check_sample,
    load_spec,
    read_source_map,
    replaced_subset_photos,
    source_dir,
    split_key,
)
from engine.parallel import map_in_order
from engine.runinfo import saved_step
from engine.runlock import (
    earlier_name,
    folders_removed_on_failure,
    lockless,
    writer,
    writers,
    wrote_nothing,
)
from engine.text import LINE_BREAK, counted, few, first_lines


@dataclass
class SplitStats:
    """What one split holds."""

    split: str  # split name
    images: int  # images listed (paired with a label when the dataset has labels)
    labelled: int  # images whose label was read without error
    sizes: dict[tuple[int, int], int] = field(default_factory=dict)  # (W, H) -> image count
    class_pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (C,) int64
    ignore_pixels: int = 0  # pixels labelled 255
    # new-class truth found under ROOT/new_classes/<name>/<split>/ (synthetic data or a manually
    # annotated subset): name -> (images with a mask, pixels marked 1)
    new_classes: dict[str, tuple[int, int]] = field(default_factory=dict)
    # a fused dataset's source maps (sources/<split>/): pixels precise, pseudo and ignored by
    # fusion (engine.datasets.SOURCE_NAMES); None: the dataset has none for this split
    source_pixels: np.ndarray | None = None
    problems: list[Problem] = field(default_factory=list)  # everything check() found

    @property
    def class_shares(self) -> np.ndarray:
        """``(C,) float64`` share of each class among non-ignored labelled pixels; 0 if none."""
        total = int(self.class_pixels.sum())
        return self.class_pixels / total if total else np.zeros(len(self.class_pixels))


@dataclass
class DatasetStats:
    """Statistics of a dataset's splits, in the dataset's split order."""

    root: Path  # the dataset root (the spec's folder)
    taxonomy: Taxonomy  # classes of the label maps
    has_labels: bool  # False for an image-only spec (labels: null)
    splits: list[SplitStats]
    spec_file: Path | None = None  # the spec file given (several may share one folder)
    fused: dict | None = None  # a fused dataset's fuse.json: what it was fused from
    # split -> folder, for splits read from the release's images_pad/ or images_copy/
    # (engine.datasets.release_images): said under the heading
    release_images: dict[str, str] = field(default_factory=dict)
    # a dataset engine synth has not finished: DatasetSpec.unfinished_synth (before, "No
    # problems found." and exit 0 for the scenes drawn so far)
    unfinished: tuple[str, str, bool] | None = None
    # problems of labels and source maps a live engine fuse has not written yet: shown under
    # the unfinished line, not counted (before, "3 problems found" and exit 1 while it wrote)
    being_written: list[Problem] = field(default_factory=list)

    @property
    def fused_line(self) -> str | None:
        """``"a fused dataset (engine fuse): the labels of DATA with Bicycle from RUN"``; None
        for another dataset."""
        if self.fused is None:
            return None
        inputs = self.fused.get("inputs") if isinstance(self.fused.get("inputs"), dict) else {}
        runs = [r for r in inputs.get("pseudo") or [] if isinstance(r, dict)]

        def now(path: Any) -> Any:  # where each input is found from here (copied, moved)
            return fused_input(self.fused, self.root, path) or path

        added = ", ".join(f"{r.get('class')} from {now(r.get('path'))}" for r in runs)
        added = added or "?"
        line = f"a fused dataset (engine fuse): the labels of {self.fused_from} with {added}"
        subsets = [c for c in inputs.get("corrections") or [] if isinstance(c, dict)]
        return line + "".join(  # --corrections: the human masks it trains on, and where
            f"; {c.get('class')} corrected by {now(c.get('path'))} "
            f"({counted(int(c.get('images') or 0), 'image')} of {c.get('split')})"
            for c in subsets
        )

    @property
    def fused_from(self) -> str:
        """The dataset a fused one was fused from, as :func:`recorded_root` finds it from here
        (typed, absolute, or where it was beside the fused dataset: the two moved or copied
        together); said not found when it is nowhere. Before, the absolute path ``fuse.json``
        records, as it was: a moved project's line named a folder that no longer existed, and a
        copy's the original's dataset, not the one the copy reads its images from."""
        found = fused_source(self.fused, self.root)
        if found is None:
            return "?"
        if found.exists():  # absolute: a path typed relative to another folder names nothing
            return str(found.resolve())
        inputs = (self.fused or {}).get("inputs")
        resolved = inputs.get("data") if isinstance(inputs, dict) else None
        return f"{resolved or found} (not found there: moved?)"

    @property
    def problems(self) -> list[Problem]:
        return [p for s in self.splits for p in s.problems]


def _check(
    sample: Sample, taxonomy: Taxonomy, decode: bool, sources: Path | None, hint: str = ""
) -> tuple:
    """:func:`engine.datasets.check_sample`, with the label's pixel counts per value (256)
    instead of the label: what a worker sends back. With ``sources`` (a fused dataset's source
    folder of the split) the sample's source map is checked as training reads it, and its
    pixels counted per source; ``hint`` ends the problem of a missing one (its fusion did not
    finish: :meth:`DatasetSpec.unfinished_fusion`; a fusion killed between an image's label
    and its source map left the label alone)."""
    problems, size, label = check_sample(sample, taxonomy, decode)
    counts = None if label is None else byte_histogram(label)
    source_counts = None
    if sources is not None and label is not None:
        try:
            source = read_source_map(sources / f"{sample.stem}.png", label.shape)
            source_counts = np.bincount(source.ravel(), minlength=len(SOURCE_NAMES))
        except UNREADABLE as e:
            missing = isinstance(e, FileNotFoundError)
            problems.append(Problem(sample.stem, first_line(e) + (hint if missing else "")))
    return problems, size, counts, source_counts


def _source_folder(
    spec: DatasetSpec, ds: SegDataset, hint: str
) -> tuple[Path | None, list[Problem]]:
    """The split's source folder to check (None: nothing to check), and the problem of a
    fused dataset without one: training refuses it (docs/trainer.md), or, its fusion stopped
    before writing it (``hint``: :attr:`engine.datasets.FusionState.hint`), the same fuse
    command writes it."""
    folder = source_dir(spec, ds.split)
    if folder.is_dir() and spec.labels is not None:
        return folder, []
    new = [c.name for c in spec.taxonomy if c.parent is not None]
    if not new or spec.labels is None or not len(ds):
        return None, []
    if hint:  # killed before this split's first source map
        return None, [Problem("", f"{folder}: source map folder not found{hint}")]
    return None, [
        Problem(
            "",
            f"{folder}: no source maps, but the taxonomy has new classes ({', '.join(new)}); "
            "training refuses this split unless every pixel is to train as precise "
            "(--all-precise)",
        )
    ]


def _run(job: tuple) -> tuple:
    check, sample = job
    return check(sample)


def dataset_stats(
    data: str | os.PathLike,
    splits: list[str] | None = None,
    decode: bool = True,
    progress: bool = True,
    workers: int = 1,
) -> DatasetStats:
    """Count images, sizes and class pixels of ``splits`` (all by default) of the dataset at
    ``data`` (root folder or spec file), and collect every problem found on the way, checking
    the samples in ``workers`` processes.

    Raises:
        FileNotFoundError: the root or a requested split does not exist (lists the splits), or
            the dataset has no split at all (names the layout expected).
        ValueError: the dataset's spec is invalid.
    """
    spec = load_spec(data)
    names = list(splits) if splits else spec.require_splits()
    datasets = [SegDataset(spec, s, require_labels=spec.labels is not None, lenient=True)
                for s in names]  # fmt: skip
    jobs = [(i, sample) for i, ds in enumerate(datasets) for sample in ds.samples]
    n = spec.taxonomy.num_classes
    out = [SplitStats(ds.split, len(ds), 0, class_pixels=np.zeros(n, np.int64)) for ds in datasets]
    sizes: list[Counter[tuple[int, int]]] = [Counter() for _ in datasets]
    for ds, stats in zip(datasets, out, strict=True):
        stats.problems = list(ds.pairing_problems)
        # legal on Linux, but annotate pick's list and an export's images.txt wrote it as two
        # lines (read back as two images not there), and info said "No problems found."
        stats.problems += [
            Problem(s.stem, f"{str(s.image_path)!r}: {LINE_BREAK}")
            for s in ds.samples
            if "\n" in s.stem or "\r" in s.stem
        ]
    fusion = spec.fusion_state()  # read once: the lines below say one state
    hint = fusion.hint
    folders = []
    for ds, stats in zip(datasets, out, strict=True):
        folder, problems = _source_folder(spec, ds, hint)
        folders.append(folder)
        stats.problems += problems
        if folder is not None:
            stats.source_pixels = np.zeros(len(SOURCE_NAMES), np.int64)
    # a fusion under way (fuse.json running, or complete and fused again): what it has not
    # written yet is no problem, and the dataset is not said finished
    live = fusion.writer
    checks = [
        functools.partial(
            _check, taxonomy=spec.taxonomy, decode=decode, sources=folders[i], hint=hint
        )
        for i in range(len(datasets))
    ]
    checked = map_in_order(_run, [(checks[i], s) for i, s in jobs], workers, "checking", progress)
    for (i, _), (problems, size, counts, source_counts) in zip(jobs, checked, strict=True):
        stats = out[i]
        stats.problems += problems
        if size is not None:
            sizes[i][size] += 1
        if counts is not None:
            stats.class_pixels += counts[:n]
            stats.ignore_pixels += int(counts[IGNORE])
            stats.labelled += 1
        if source_counts is not None and stats.source_pixels is not None:
            stats.source_pixels += source_counts
    for ds, stats, found in zip(datasets, out, sizes, strict=True):
        stats.sizes = dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))
        stats.new_classes = _new_class_pixels(spec.root, ds)
        if line := _binary_masks(stats, spec.label_dir(ds.split), spec.taxonomy):
            stats.problems.append(Problem("", line))
    label_only = spec.label_only_splits() if not splits else {}
    for split, line in label_only.items():  # every split: one of labels alone too (exit 1)
        out.append(SplitStats(split, 0, 0, class_pixels=np.zeros(n, np.int64)))
        out[-1].problems.append(Problem("", line))
    if label_only:
        order = list(spec.splits or ())
        out.sort(
            key=lambda s: (order.index(s.split), "") if s.split in order else split_key(s.split)
        )
    given = Path(data)
    spec_file = given if given.is_file() else None
    release = {} if given.is_file() or find_spec_file(spec.root) else dict(spec.split_images)
    being_written, writing = [], None
    if live:
        writing = (f"{live} is writing it now", "wait for it to finish", False)
    elif (stopped := fusion.unfinished) and not any(
        p.message.endswith(hint) for stats in out for p in stats.problems
    ):  # killed after its last label, before fuse.json said done: no label is missing, yet
        # training refuses it (DatasetSpec.check_finished); before, "No problems found." and
        # "next: engine train"
        writing = stopped
    if live and hint:  # the problems that end with the live fusion's hint, said as it was then
        for stats in out:
            being_written += [p for p in stats.problems if p.message.endswith(hint)]
            stats.problems = [p for p in stats.problems if not p.message.endswith(hint)]
    return DatasetStats(
        spec.root,
        spec.taxonomy,
        spec.labels is not None,
        out,
        spec_file,
        fusion.record,
        {s.split: release[s.split] for s in out if s.split in release},
        spec.unfinished_synth() or writing,
        being_written,
    )


def _binary_masks(stats: SplitStats, folder: Path | None, taxonomy: Taxonomy) -> str | None:
    """The problem of a split whose label maps hold nothing but 0 and 255: foreground masks
    saved as 0/255, as many tools write them, where 255 is ignore: training would see class 0
    alone (``docs/foundation.md``, "Your own"). None for any other split."""
    px = stats.class_pixels
    if taxonomy.num_classes < 2 or not stats.ignore_pixels or not px[0] or px[1:].any():
        return None
    where = folder if folder is not None else f"split {stats.split!r}"
    return (
        f"{where}: every label map holds only 0 and 255, as foreground masks saved 0/255 do; "
        f"255 is ignore here, so training sees {taxonomy[0].name} alone: save each mask's "
        f"class as its id ({taxonomy[1].name} is 1; taxonomy in the dataset's taxonomy.json)"
    )


def _new_class_pixels(root: Path, ds: SegDataset) -> dict[str, tuple[int, int]]:
    """Per new-class truth folder ``ROOT/new_classes/<name>/<split>``: masks found and pixels
    marked 1 among the split's samples (unreadable masks are skipped: they are not the
    dataset's labels)."""
    found: dict[str, tuple[int, int]] = {}
    base = root / "new_classes"
    if not base.is_dir():
        return found
    for folder in sorted(p for p in base.iterdir() if (p / ds.split).is_dir()):
        images = pixels = 0
        for sample in ds.samples:
            path = folder / ds.split / f"{sample.stem}.png"
            if path.is_file():
                try:
                    pixels += int((read_label(path) == 1).sum())
                    images += 1
                except ValueError:
                    continue
        found[folder.name] = (images, pixels)
    return found


def render_stats(stats: DatasetStats) -> list:
    """Rich renderables for ``engine info``: a split table, a class-share table, the problems."""
    from rich.table import Table
    from rich.text import Text

    splits = Table(title="Images per split", title_justify="left")
    splits.add_column("split", overflow="fold")  # names in CJK have no space to wrap at
    splits.add_column("images", justify="right")
    if stats.has_labels:
        splits.add_column("labelled", justify="right")
    splits.add_column("image sizes (W x H: count)")
    for s in stats.splits:
        sizes = ", ".join(f"{w}x{h}: {c}" for (w, h), c in s.sizes.items()) or "-"
        row = [s.split, str(s.images)] + ([str(s.labelled)] if stats.has_labels else []) + [sizes]
        splits.add_row(*row)
    out: list = [Text(f"Dataset {stats.spec_file or stats.root}", style="bold")]
    if stats.fused_line:
        out.append(Text(stats.fused_line))
        # what its engine fuse calls printed (fuse.json keeps it: a nohup console is gone)
        out += [Text(line) for line in said_by(stats.fused, "engine fuse")]
    if stats.release_images:
        read = ", ".join(f"{s} from {f}" for s, f in stats.release_images.items())
        missing = ", ".join(f"images/{s}" for s in stats.release_images)
        out.append(Text(f"images of {read} (the MaSS13K release's folders; no {missing} here)"))
    out.append(splits)

    if stats.has_labels:
        shares = Table(title="Pixel share per class (% of labelled pixels)", title_justify="left")
        shares.add_column("id", justify="right")
        shares.add_column("class", overflow="fold")
        for s in stats.splits:
            shares.add_column(s.split, justify="right")
        table = [s.class_shares * 100 for s in stats.splits]
        for c in stats.taxonomy.classes:
            shares.add_row(str(c.id), c.name, *(f"{t[c.id]:.2f}" for t in table))
        ignored = []
        for s in stats.splits:
            total = int(s.class_pixels.sum()) + s.ignore_pixels
            ignored.append(f"{100 * s.ignore_pixels / total:.2f}" if total else "-")
        shares.add_row("255", Text("ignore (% of all pixels)", style="dim"), *ignored)
        names = sorted({n for s in stats.splits for n in s.new_classes})
        for name in names:  # truth of new classes, carved out of their parent class
            cells = []
            for s in stats.splits:
                total = int(s.class_pixels.sum())
                _, px = s.new_classes.get(name, (0, 0))
                cells.append(f"{100 * px / total:.2f}" if total and name in s.new_classes else "-")
            shares.add_row("new", Text(f"{name} (new-class truth)", style="italic"), *cells)
        out.append(shares)
    if any(s.source_pixels is not None for s in stats.splits):
        sources = Table(
            title="Pixel sources (fused dataset's source maps; % of pixels)", title_justify="left"
        )
        sources.add_column("source")
        for s in stats.splits:
            sources.add_column(s.split, justify="right")
        for value, name in enumerate(SOURCE_NAMES):
            cells = []
            for s in stats.splits:
                total = 0 if s.source_pixels is None else int(s.source_pixels.sum())
                share = 100 * s.source_pixels[value] / total if total else None
                cells.append("-" if share is None else f"{share:.2f}")
            sources.add_row(name, *cells)
        out.append(sources)

    problems = stats.problems
    if stats.unfinished:
        state, remedy, stopped = stats.unfinished
        out.append(Text(f"unfinished: {state}: {remedy}", style="bold red" if stopped else ""))
        out.extend(Text(f"  {p.message}") for p in stats.being_written)
    if problems:
        out.append(Text(f"{counted(len(problems), 'problem')} found:", style="bold red"))
        out.extend(Text(f"  {p.message}") for p in problems)
    elif not stats.unfinished:
        out.append(Text("No problems found.", style="green"))
        if stats.fused_line:  # what the loop runs next on it
            out.append(
                Text(
                    f"next: engine train --data {shlex.quote(str(stats.root))} --out RUN (jointly)"
                )
            )
    return out


def _wrapped_title(title: str) -> str:
    """``title`` in lines of at most 110 characters (what a 7-inch chart's title holds at 9
    points), broken after a ``/`` or a space where there is one: a dataset's long path was
    one line cut at both of the chart's edges, its name and the title's start lost."""
    lines, width = [], 110
    while len(title) > width:
        cut = max(title.rfind("/", 0, width) + 1, title.rfind(" ", 0, width) + 1) or width
        lines.append(title[:cut].rstrip())
        title = title[cut:]
    return "\n".join([*lines, title])


def plot_shares(stats: DatasetStats, path: str | os.PathLike) -> Path:
    """Each class's share of the labelled pixels per split as a bar chart PNG (the paper's
    Fig. 2), on a log scale, so the thin classes (a few tenths of a percent) are readable beside
    Ground and Sky; new-class truth (``ROOT/new_classes``) is drawn with its parent's split
    colours, hatched. Needs matplotlib."""
    from engine.outputs import figure_text, matplotlib_for, save_figure, subplots

    mpl = matplotlib_for("engine info --plot")
    if not stats.has_labels:
        raise ValueError(f"{stats.root}: the dataset has no label maps: no class shares to plot")
    rows = [(c.name, [s.class_shares[c.id] * 100 for s in stats.splits], False)
            for c in stats.taxonomy.classes]  # fmt: skip
    for name in sorted({n for s in stats.splits for n in s.new_classes}):
        shares = []
        for s in stats.splits:
            total = int(s.class_pixels.sum())
            shares.append(100 * s.new_classes.get(name, (0, 0))[1] / total if total else 0.0)
        rows.append((f"{name} (truth)", shares, True))
    fig, ax = subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    height = 0.8 / max(1, len(stats.splits))
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = {}  # split -> a bar of its colour, for the legend
    for j, s in enumerate(stats.splits):
        for i, (_, shares, hatched) in enumerate(rows):
            if shares[j] > 0:
                bars = ax.barh(i + (j - (len(stats.splits) - 1) / 2) * height, shares[j], height,
                               color=colors[j % len(colors)], hatch="//" if hatched else None)  # fmt: skip
                handles.setdefault(s.split, bars)
    ax.set_yticks(range(len(rows)), [figure_text(name) for name, _, _ in rows], parse_math=False)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("% of labelled pixels (log scale)")
    ax.set_title(
        _wrapped_title(figure_text(f"Pixel share per class: {stats.root}")),
        fontsize=9,
        parse_math=False,
    )
    # the splits as typed: given as labels, one starting with '_' is kept (a bar's own label
    # would be dropped), and no '$' is read as mathtext ('t$^$x' failed the chart)
    legend = ax.legend(list(handles.values()), [figure_text(s) for s in handles], fontsize=8)
    for text in legend.get_texts():
        text.set_parse_math(False)
    fig.tight_layout()
    with folders_removed_on_failure(path):  # a full disk: no new, empty folder left behind
        return save_figure(fig, path, dpi=120)


# -- a label run -------------------------------------------------------------------------------
@dataclass
class RunSplit:
    """One split of a label run, from the manifest's latest record of each image."""

    labelled: int = 0  # ok with the run's current settings
    stale: int = 0  # ok with other settings: relabelled by the next run with these
    failed: int = 0  # whose latest attempt failed: retried by the next run
    pending: int | None = None  # dataset images with no record yet; None: dataset not found
    missing: int = 0  # recorded as labelled with these settings, but a file of theirs is gone
    instances: int = 0  # instances of the labelled images
    without: int = 0  # labelled images without an instance


@dataclass
class LabelRunStats:
    """What ``engine info RUN`` shows for a label run (``engine label``'s output)."""

    root: Path
    class_name: str
    class_id: int
    parent: str
    backend: str
    models: dict  # run.json backend.models: what labelled (ids, revisions, or the simulation)
    settings: dict  # the class spec's thresholds and the run's label-changing settings
    config_hash: str
    data_root: Path | None
    splits: dict[str, RunSplit]
    seconds: dict[str, float]  # mean seconds per labelled image, by stage
    failures: list[tuple[str, str, str]]  # (split, stem, reason) of images whose last try failed
    # problems of the run's dataset that do not stop showing the run (a label without its
    # image: engine info DATASET lists every problem)
    notes: list[str] = field(default_factory=list)
    # split/stem of the images labelled whose file is now another size (a photo replaced)
    changed: list[str] = field(default_factory=list)
    environment: dict = field(default_factory=dict)  # run.json's: the code that labelled
    shard: str = ""  # "i/n" when run.json's last command labelled one shard (--shard i/n)
    # of failures, those whose record says running again fails them again (retry false: an
    # image too thin to label; a record without the field, of an older run, is retried)
    not_retryable: int = 0
    # of those, by the kind its record names (cannot: labeler.models.CANNOT's keys; a record
    # without it, from before the fifty-fourth round, is of an image too thin: not counted here)
    cannot: dict[str, int] = field(default_factory=dict)
    # such a run's shards, "i/n" -> its images not labelled with the run's settings (0: the
    # shard finished); {} when unsharded or its dataset is not found
    shards: dict[str, int] = field(default_factory=dict)
    # and of those, its failed images that running again tries again (not retry false)
    shard_failures: dict[str, int] = field(default_factory=dict)
    # what run.json's calls printed, as shown (:func:`said_by`)
    warnings: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return sum(s.failed for s in self.splits.values())


def record_object(record: dict, key: str, path: str | os.PathLike, name: str = "") -> dict:
    """``record[key]`` where the engine writes an object (a run's ``config``): {} where it is
    absent or null; where a hand edit left another type (a list, a string), one line naming
    the file and the key (``name``: its dotted path, ``config.cls``). Before, an AttributeError
    traceback."""
    part = record.get(key)
    if part is None:
        return {}
    if not isinstance(part, dict):
        raise ValueError(f"{path}: {name or key!r} is not an object, got {part!r:.40}")
    return part


def label_run_stats(root: str | os.PathLike, splits: list[str] | None = None) -> LabelRunStats:
    """A label run's class, models, settings and per-split progress: images labelled with its
    current settings, with older ones (the next run relabels them), failed, and, when its
    dataset is found, not labelled yet (an interrupted or sharded run)."""
    from annotations.labelrun import LabelRun, changed_images, done_keys, latest_records

    run = LabelRun.open(root)
    info = run.info  # run.json: a clear error when it is missing or not the labeler's
    doc = info.record
    path = run.root / "run.json"
    config = record_object(doc, "config", path)
    chash = str(doc.get("config_hash", ""))
    latest = latest_records(run.root)
    spec = None
    if info.data_root is not None and info.data_root.exists():
        spec = _spec_or_none(info.data_root)
    # the splits the run is to label (its --split, else every split of its dataset), those it
    # labelled: a split where nothing is labelled yet shows as not yet
    configured = config.get("splits")
    configured = [str(s) for s in configured] if isinstance(configured, list) else []
    if not configured and spec is not None:
        configured = spec.available_splits()
    found = {s for s, _ in latest if isinstance(s, str)} | set(run.splits()) | set(configured)
    names = splits or sorted(found, key=split_key)
    per = {s: RunSplit() for s in names}
    seconds: Counter = Counter()
    failures = []
    not_retryable, cannot = 0, Counter()
    retried: set[tuple[str, str]] = set()  # failed, and tried again by the next engine label
    skipped = done_keys(run.root, chash, latest)  # what engine label skips as done
    for (split, stem), rec in sorted(latest.items()):
        if split not in per:
            continue
        row = per[split]
        if rec.get("status") != "ok":
            row.failed += 1
            failures.append((split, stem, str(rec.get("error"))))
            if rec.get("retry") is not False:
                retried.add((split, stem))
            else:
                not_retryable += 1
                if isinstance(rec.get("cannot"), str):
                    cannot[rec["cannot"]] += 1
        elif rec.get("config_hash") != chash:
            row.stale += 1
        elif (split, stem) not in skipped:  # engine label labels it again: not yet, as it counts
            row.missing += 1
        else:
            row.labelled += 1
            row.instances += int(rec.get("instances") or 0)
            row.without += not rec.get("instances")
            seconds.update(rec.get("timings") or {})
    notes = []  # the dataset's pairing problems: the run is shown all the same
    changed: list[str] = []  # labelled images replaced since (engine label labels them again)
    listed: dict[str, list[str]] = {}  # each split's stems, in the order engine label plans
    for split, row in per.items():
        if spec is not None and spec.image_dir(split).is_dir():
            try:
                ds = SegDataset(spec, split, require_labels=False, lenient=True)
            except UNREADABLE as e:  # a folder that cannot be listed, stems shared: "?"
                notes.append(first_line(e))
                continue
            listed[split] = [smp.stem for smp in ds.samples]
            notes += [p.message for p in ds.pairing_problems]
            stems = {s.stem for s in ds.samples}
            paths = {(split, smp.stem): smp.image_path for smp in ds.samples}
            done = {k for k in paths if (latest.get(k) or {}).get("status") == "ok"}
            sizes = {k: n for k in done if (n := file_bytes(paths[k])) is not None}
            hit = changed_images(latest, done, sizes)
            changed += [f"{sp}/{stem}" for sp, stem in paths if (sp, stem) in hit]
            row.pending = len(stems - {st for sp, st in latest if sp == split}) + row.missing
    cls = record_object(config, "cls", path, "config.cls")
    backend = doc.get("backend")  # older records: the backend's name alone
    models = (
        record_object(backend, "models", path, "backend.models")
        if isinstance(backend, dict)
        else {}
    )
    simulation = models.get("simulation") if info.backend == "simulated" else None
    settings = {
        "simulation": (
            ", ".join(f"{k} {v}" for k, v in simulation.items())
            if isinstance(simulation, dict)
            else None
        ),
        "prompts": None if simulation else cls.get("prompts"),
        "negatives": cls.get("negatives"),
        "box_threshold": None if simulation else cls.get("box_threshold"),
        "text_threshold": None if simulation else cls.get("text_threshold"),
        "tiles": None if simulation else "x".join(str(v) for v in config.get("tiles") or []),
        "uncertain": config.get("uncertain"),
        "max_boxes": None if simulation else config.get("max_boxes"),
        "min_area": cls.get("min_area") or None,
        "max_instances": cls.get("max_instances"),
        "refine": config.get("refine") or None,
    }
    done = sum(r.labelled for r in per.values())
    dealt = _shards(config.get("shard"), configured, listed, spec)
    return LabelRunStats(
        root=run.root,
        class_name=info.class_name,
        class_id=info.class_id,
        parent=info.parent_name,
        backend=info.backend,
        models=models,
        settings={k: v for k, v in settings.items() if v not in (None, [], "")},
        config_hash=chash,
        data_root=info.data_root,
        splits=per,
        seconds={k: v / done for k, v in seconds.items()} if done else {},
        failures=failures,
        not_retryable=not_retryable,
        cannot=dict(cannot),
        notes=notes,
        changed=changed,
        environment=doc.get("environment") if isinstance(doc.get("environment"), dict) else {},
        shard=_shard(config.get("shard")),
        shards={k: sum(key not in skipped for key in part) for k, part in dealt.items()},
        shard_failures={k: sum(key in retried for key in part) for k, part in dealt.items()},
        warnings=said_by(doc, "engine label"),
    )


def _shards(
    recorded: object,
    configured: list[str],
    listed: dict[str, list[str]],
    spec: DatasetSpec | None,
) -> dict[str, list[tuple[str, str]]]:
    """Per shard of a run labelled with ``--shard i/n`` (run.json's ``config.shard``), its
    images: engine label's plan (``labeler.run.plan_items``: the run's splits in order, each
    split's images in order) dealt out as it deals it, every n-th image from the i-th; {} when
    unsharded or the plan is unknown. The caller counts those it skips
    (:func:`annotations.labelrun.done_keys`: labelled with the run's settings, their files
    there; in the forty-eighth round one whose files were deleted counted as done here, its
    shard "finished"), and its failed ones. Before the forty-eighth round engine info named
    the last command's shard only, not which shards had finished."""
    if not _shard(recorded) or spec is None or recorded[1] < 2:
        return {}
    plan = []
    for split in configured:
        if split not in listed:
            if not spec.image_dir(split).is_dir():
                return {}  # engine label would refuse it: no plan to deal out
            try:
                ds = SegDataset(spec, split, require_labels=False, lenient=True)
            except UNREADABLE:
                return {}
            listed[split] = [smp.stem for smp in ds.samples]
        plan += [(split, stem) for stem in listed[split]]
    n = int(recorded[1])
    return {f"{i}/{n}": plan[i::n] for i in range(n)}


def _shard(recorded: object) -> str:
    """run.json's ``config.shard`` (``[0, 2]``) as ``--shard`` takes it (``0/2``); "" for none,
    and for anything but two whole numbers ``0 <= i < n`` (a hand edit: ``["1", "2"]`` made
    engine info stop with a TypeError, where before the forty-eighth round it showed the run)."""
    if (
        isinstance(recorded, list)
        and len(recorded) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in recorded)
        and 0 <= recorded[0] < recorded[1]
    ):
        return "/".join(map(str, recorded))
    return ""


def _spec_or_none(root: Path) -> DatasetSpec | None:
    try:
        return load_spec(root)
    except (OSError, ValueError):
        return None


def _models_line(backend: str, models: dict) -> str:
    """The models that labelled, as ``id @ revision`` (or the simulation's note)."""
    if backend == "simulated":
        return "none: SIMULATED from the dataset's true masks"
    parts = []
    for role, m in models.items():
        if isinstance(m, dict) and m.get("source"):
            rev = f" @ {m['revision']}" if m.get("revision") else ""
            parts.append(f"{role} {m['source']}{rev}")
    return "; ".join(parts) or "not recorded"


def add_made_with(table, env: object) -> None:
    """The ``code`` row of an output's table (:func:`made_with`) and, where the output was
    made by the ``engine`` command, a ``command`` row: the command line and the folder it ran
    in, what a user coming back to a run started under nohup or a scheduler has no console
    left to read (a library call's ``sys.argv`` is its script's: no row)."""
    table.add_row("code", made_with(env))
    if line := ran_as(env):
        table.add_row("command", line)


def ran_as(env: object) -> str | None:
    """``engine train --data d ... (in /work)``, from a recorded ``environment()``'s ``argv``
    and ``cwd``, when ``argv`` is the ``engine`` command's (``engine``, ``python -m cli``);
    None otherwise."""
    argv = env.get("argv") if isinstance(env, dict) else None
    if not isinstance(argv, list) or len(argv) < 2 or not all(isinstance(a, str) for a in argv):
        return None
    if Path(argv[0]).name not in ("engine", "engine.exe", "cli.py"):
        return None
    cwd = env.get("cwd")
    return f"engine {shlex.join(argv[1:])}" + (f" (in {cwd})" if isinstance(cwd, str) else "")


def made_with(env: object) -> str:
    """The code and machine an output was made with, from its recorded ``environment()``: what
    a rerun needs to give the same bytes (the git commit; the versions of Python, torch and
    numpy; on CPU torch's kernel set and thread count, which change a model's digits; a DDP
    run's ranks and machines)."""
    if not isinstance(env, dict) or not env:
        return "not recorded"
    packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
    parts = [f"commit {env['git_commit']}" if env.get("git_commit") else "commit not recorded"]
    if not env.get("git_commit") and packages.get("mass-engine"):  # an installed copy: no git
        parts = [f"mass-engine {packages['mass-engine']} (no git commit)"]
    versions = [f"Python {env['python']}"] if env.get("python") else []
    versions += [f"{name} {packages[name]}" for name in ("torch", "numpy") if packages.get(name)]
    if versions:
        parts.append(", ".join(versions))
    if env.get("cpu_capability"):
        threads = env.get("torch_threads")
        parts.append(
            f"{env['cpu_capability']} kernels"
            + (f", {counted(threads, 'torch thread')}" if isinstance(threads, int) else "")
        )
    ranks = env.get("distributed")  # a DDP run: each rank's share of a batch sums in its order
    if isinstance(ranks, dict) and isinstance(ranks.get("world_size"), int):
        launcher = {"processes": "--processes"}.get(ranks.get("launcher"), ranks.get("launcher"))
        nodes = ranks.get("nodes")
        machines = f" on {counted(nodes, 'machine')}" if isinstance(nodes, int) else ""
        parts.append(f"{counted(ranks['world_size'], 'rank')} ({launcher}){machines}")
    return "; ".join(parts)


# which of a label run's files hold what (docs/labeler.md, "Outputs"): the confidence map is
# its own file, which the instances (binary masks, rounded scores) cannot rebuild; before, info
# named none, and a user who kept instances/ alone lost the confidence for good
LABEL_RUN_FILES = (
    "labels/SPLIT/STEM.png: the pseudo label (0 not the class, 1 the class, 255 uncertain); "
    "confidence/SPLIT/STEM.png: each pixel's confidence (0..255), which the instances cannot "
    "rebuild; instances/SPLIT/STEM.json: each instance's box, scores, prompt and binary mask; "
    "manifest.jsonl: each image's attempts; run.json: the settings and models"
)


def render_label_run(
    stats: LabelRunStats, failures_shown: int = 5, live: dict[str, str] | None = None
) -> list:
    """Rich renderables for :func:`label_run_stats`: the run, per-split progress, failures.
    ``live``: the engine label processes writing the run now by their lock files
    (:func:`engine.runlock.writers`), where the caller asked already; else asked here."""
    from rich.table import Table

    head = Table(title=f"Label run {stats.root}", show_header=False)
    head.add_column("what")
    head.add_column("value", overflow="fold")
    head.add_row("class", f"{stats.class_name} (id {stats.class_id}, carved out of {stats.parent})")
    head.add_row("backend", stats.backend)
    head.add_row("models", _models_line(stats.backend, stats.models))
    for key, value in stats.settings.items():
        head.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    head.add_row("settings hash", stats.config_hash)
    head.add_row("dataset", str(stats.data_root) if stats.data_root else "not recorded")
    head.add_row("files", LABEL_RUN_FILES)
    add_made_with(head, stats.environment)
    for stage, sec in stats.seconds.items():
        head.add_row(f"{stage} (per image)", f"{sec:.3f} s")
    table = Table(title="Images per split (each image's latest attempt)")
    for col in ("split", "labelled", "other settings", "failed", "not yet", "instances", "none"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, r in stats.splits.items():
        table.add_row(
            split,
            f"{r.labelled:,}",
            f"{r.stale:,}",
            f"{r.failed:,}",
            "?" if r.pending is None else f"{r.pending:,}",
            f"{r.instances:,}",
            f"{r.without:,}",
        )
    out: list = [head, table]
    if live is None:  # an engine label into the run now (a shard's too), by its lock
        live = writers(stats.root)
    holder = ", ".join(live.values()) or None
    if stats.failures:
        from labeler.models import failure_advice  # engine label's closing lines too

        lines = [f"{counted(len(stats.failures), 'image')} failed:"]
        lines += [f"  {s}/{st}: {why}" for s, st, why in stats.failures[:failures_shown]]
        if len(stats.failures) > failures_shown:
            lines.append(f"  and {len(stats.failures) - failures_shown} more (manifest.jsonl)")
        if holder is None:
            lines += failure_advice(len(stats.failures), stats.not_retryable, stats.cannot)
        else:  # the same command now is refused (its lock is held): before, advised all the same
            lines += failure_advice(stats.not_retryable, stats.not_retryable, stats.cannot)
            lines += _live_failures(stats, live)
        out.append("\n".join(lines))
    stale = sum(r.stale for r in stats.splits.values())
    if stale:
        out.append(
            f"{counted(stale, 'image')} labelled with other settings: the next engine label with "
            "these settings labels them again"
        )
    if any(r.pending or r.missing for r in stats.splits.values()):
        out.append(
            f"images not labelled yet: {holder} is labelling them now"
            if holder
            else _shards_left(stats.shards, {k: r.pending for k, r in stats.splits.items()})
            if stats.shards
            # a shard's command again labels its own images only: every one done already
            else f"images not labelled yet: run engine label again without --shard (run.json: "
            f"--shard {stats.shard}), or once per shard, to finish (it resumes)"
            if stats.shard
            else "images not labelled yet: run engine label again to finish (it resumes)"
        )
    rows = stats.splits.values()
    labelled = rows and all(r.pending == 0 and not r.failed and not r.stale for r in rows)
    if labelled and holder:  # an engine label into it again (other settings, --force) before
        # it rewrote run.json: before, "next: engine review ..." as of a finished run
        out.append(
            f"unfinished: {holder} is writing it now: wait for it to finish (it may label these "
            "images again, or more)"
        )
    elif labelled:
        out.append(  # every image labelled with these settings: what the loop does next
            f"next: engine review {shlex.quote(str(stats.root))} (look at them), engine fuse --data "
            f"{shlex.quote(str(stats.data_root))} --pseudo {shlex.quote(str(stats.root))} --out FUSED "
            "(joint-training labels)"
        )
    if stats.data_root is not None and not stats.data_root.exists():  # "?" under not yet
        out.append(
            f"not yet: unknown, its dataset {stats.data_root} (run.json) is not found from here, "
            "nor beside the run where it was: the same engine label command with --data at its "
            "new place records it"
        )
    if stats.changed:  # the labeler's resume check, seen before it runs
        out.append(
            f"note: {counted(len(stats.changed), 'image')} changed since labelled "
            f"({few(stats.changed)}: another file size; a photo replaced?): their pseudo labels "
            "are the old photos'; the same engine label command labels them again"
        )
    out += [
        f"note: its dataset: {note} (engine info {shlex.quote(str(stats.data_root))} lists its problems)"
        for note in stats.notes
    ]
    # what the calls that wrote run.json printed: kept for a run under nohup or a scheduler
    return out + stats.warnings


def _live_failures(stats: LabelRunStats, live: dict[str, str]) -> list[str]:
    """The closing lines on a label run's failed images while engine label writes it (``live``:
    lock file -> process, :func:`engine.runlock.writers`), in place of "run the same command
    again to retry": that command is refused while it runs. Where only shards of the sharded
    run that run.json records hold locks, the failed images of the shards not running are told
    apart (run.json's plan dealt out as engine label deals it, :func:`_shards`): their own
    ``--shard`` retries them now, as shards of one run label it side by side."""
    from labeler.run import shard_lock

    wait = f"unfinished: {', '.join(live.values())} is writing it now: wait for it to finish"
    running = {k for k in stats.shard_failures if shard_lock(k) in live}
    if not running or len(running) < len(live):  # another lock (unsharded, other n): unknown
        them = "these images" if len(stats.failures) > 1 else "this image"
        return [f"{wait} (it may try {them} again)"]
    own = sum(stats.shard_failures[k] for k in running)
    others = {k: n for k, n in stats.shard_failures.items() if n and k not in running}
    whose = "its shard's" if len(running) == 1 else "the running shards'"
    lines = [
        f"{wait} (it may try {counted(own, 'image')} of these again: {whose})" if own else wait
    ]
    if others:
        said = ", ".join(f"shard {k}: {counted(n, 'image')}" for k, n in others.items())
        again = " and ".join(f"--shard {k}" for k in others)
        lines.append(
            f"failed in shards not running now ({said}): run engine label again with {again} "
            "to retry them (it resumes)"
        )
    return lines


def _shards_left(shards: dict[str, int], pending: dict[str, int | None]) -> str:
    """Which shards of a sharded label run finished and which have images left, and the
    commands that finish it. Every shard finished, the images left are in splits outside the
    sharded command's ``--split`` (``pending``: each split's images not labelled yet), which
    the line names: before, it read "run engine label again with , or once without
    --shard"."""
    done = [k for k, left in shards.items() if not left]
    left = {k: n for k, n in shards.items() if n}
    said = [f"shard {k}: {counted(n, 'image')} left" for k, n in left.items()]
    if done:
        said.insert(0, f"{'shards' if len(done) > 1 else 'shard'} {', '.join(done)} finished")
    if not left:
        splits = {k: n for k, n in pending.items() if n}
        said += [f"{k}: {counted(n, 'image')} left" for k, n in splits.items()]
        again = " ".join(f"--split {shlex.quote(k)}" for k in splits)
        return (
            f"images not labelled yet: {'; '.join(said)}: run engine label again with {again} "
            "(no --shard), to finish (it resumes)"
        )
    again = " and ".join(f"--shard {k}" for k in left)
    return (
        f"images not labelled yet: {'; '.join(said)}: run engine label again with {again}, or "
        "once without --shard, to finish (it resumes)"
    )


# -- a training run ----------------------------------------------------------------------------
@dataclass
class TrainRunStats:
    """What ``engine info RUN`` shows for a training run (``engine train``'s output)."""

    root: Path
    config: dict  # the resolved training config (config.json)
    step: int  # the last logged step
    last: dict  # that step's log line (loss, lr, it/s)
    val: dict | None  # the last validation line: its step and scores
    resumes: int  # times the run was resumed
    checkpoints: list[str]  # checkpoint files in the folder
    environment: dict = field(default_factory=dict)  # environment.json: the code it started with
    taxonomy: dict | None = None  # the classes it learns by id (config.json); None: not recorded
    warnings: list[str] = field(default_factory=list)  # what it printed (metrics.jsonl events)
    skipped: list[str] = field(default_factory=list)  # images it could not read (skipped.jsonl)
    non_finite: dict | None = None  # the step whose loss blew up, when that stopped the last call
    saved: int | None = None  # last.pt's step (engine.runinfo.saved_step); None: not known

    @property
    def finished(self) -> bool:
        """Whether the run trained all its steps into ``last.pt`` and, validating, logged the
        last one's validation, as a ``--resume`` decides (``trainer.train._finished``). Before
        the fifty-first round the last logged step alone decided: a run killed after logging its
        last step, before last.pt was written (or during the last validation), read as finished,
        exit 0, where its --resume goes on."""
        return self.step >= self.iters and self.pending is None

    @property
    def pending(self) -> str | None:
        """What a run that logged its last step has still to do: ``"checkpoint"`` (last.pt
        holds an earlier step, :func:`engine.runinfo.saved_step`; not known: taken as written)
        or ``"validation"`` (none logged at that step); None where nothing."""
        if self.saved is not None and self.saved < self.step:
            return "checkpoint"
        validates = bool(self.config.get("val_split") or self.config.get("val_subsets"))
        if validates and (self.val is None or self.val.get("step") != self.step):
            return "validation"
        return None

    @property
    def logged(self) -> bool:
        """Whether the run logged a step or a validation (metrics.jsonl): killed before its
        first, it holds its config files only."""
        return bool(self.last) or self.val is not None or self.step > 0

    @property
    def iters(self) -> int:
        """The run's planned iterations (``config.iters``); a hand edit that left no number
        there is one line naming the file (before, a TypeError traceback)."""
        value = self.config.get("iters")
        try:
            return int(value or 0)
        except (TypeError, ValueError):
            path = self.root / "config.json"
            raise ValueError(f"{path}: 'config.iters' is not a number, got {value!r:.40}") from None


def train_run_stats(root: str | os.PathLike) -> TrainRunStats:
    """A training run's settings and where it stands: last logged step of its iterations, loss,
    speed, the last validation and the checkpoints, from its config.json and metrics.jsonl."""
    from annotations.fileio import read_json, read_jsonl

    root = Path(root)
    path = root / "config.json"
    record = read_json(path, "training config")
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not an engine training config (not an object)")
    config = record_object(record, "config", path)
    lines = read_jsonl(root / "metrics.jsonl")
    steps = [r for r in lines if "loss" in r]
    vals = [r for r in lines if "val" in r]
    # a resume cuts the log back to its checkpoint, so a non-finite event left in it stopped
    # the last call (trainer.train: the event is written, then NonFiniteLossError)
    blown = [r for r in lines if r.get("event") == "non_finite"]
    skipped = read_jsonl(root / "skipped.jsonl")  # [] where there is none
    return TrainRunStats(
        root=root,
        config=config,
        # events (a warning, the step whose loss blew up) are no step the run completed
        step=max((int(r.get("step", 0)) for r in lines if "event" not in r), default=0),
        last=steps[-1] if steps else {},
        val={"step": vals[-1].get("step"), **vals[-1]["val"]} if vals else None,
        resumes=len(read_jsonl(root / "resumes.jsonl"))
        if (root / "resumes.jsonl").is_file()
        else 0,
        checkpoints=sorted(p.name for p in root.glob("*.pt")),
        environment=_environment(root / "environment.json"),
        taxonomy=record.get("taxonomy") if isinstance(record.get("taxonomy"), dict) else None,
        warnings=[
            f"step {r.get('step')}: {r.get('message')}"
            for r in lines
            if r.get("event") == "warning"
        ],
        skipped=[
            f"step {r.get('step')}, {r.get('during')}: {r.get('problem')}"
            for r in skipped
            if isinstance(r, dict)
        ],
        non_finite=blown[-1] if blown else None,
        saved=saved_step(root),
    )


def _classes_line(taxonomy: dict | None) -> str:
    """The classes a training run learns, by id, the new ones with their parents (``0 Others,
    ..., 7 Bicycle (new, of Others)``): which id is which in a model of classes added one after
    another. The first 20, then how many in all."""
    if taxonomy is None:
        return "not recorded (a run before the forty-third round: its checkpoints hold them)"
    try:
        tax = Taxonomy.from_dict(taxonomy, source="config.json: taxonomy")
    except ValueError as e:
        return first_line(e)
    names = [
        f"{c.id} {c.name}" + ("" if c.parent is None else f" (new, of {tax[c.parent].name})")
        for c in tax
    ]
    return few(names, 20, total=True)


def _environment(path: Path) -> dict:
    """A run's ``environment.json``, or ``{}`` where it is missing or unreadable: the run is
    shown all the same."""
    from annotations.fileio import read_json

    try:
        env = read_json(path, "environment record")
    except (OSError, ValueError):
        return {}
    return env if isinstance(env, dict) else {}


def _start_again(root: Path) -> str:
    """``engine train --config RUN/config.yaml`` with the run's folder and the paths its config
    holds as typed (relative to where it started) as they are found from here, as ``--resume``
    finds them (:func:`annotations.fileio.recorded_root`): before, the bare ``--config`` from
    another working directory failed (``runs/fused/bicycle: dataset root not found``) or
    trained into another folder (its ``out``). Read from the folder the run recorded it started
    in (:func:`engine.runinfo.config_cwd`), they are absolute: before the forty-ninth round a
    ``data`` of the folder the command was shown in was named, and trained on."""
    from annotations.fileio import read_yaml, recorded_root
    from engine.runinfo import config_cwd

    config = root / "config.yaml"
    words = ["engine", "train", "--config", str(config), "--out", str(root)]
    try:
        typed = read_yaml(config, "config.yaml")
    except (OSError, ValueError):
        typed = None
    if not isinstance(typed, dict):  # an error of its own, which the command says
        return shlex.join(words)
    beside = (typed.get("out"), root)
    cwd = config_cwd(root)  # typed from there: data there, not a "data" here

    def found(value: Any) -> str | None:  # a path as found from here, where config's is not it
        if not isinstance(value, str) or not value or value[0] == "~":
            return None  # config.yaml holds it as it is (a "~" quoted would reach no home)
        path = str(recorded_root(value, None, beside, cwd))
        # an absolute path (a resume records the root it found so) is given only where the
        # run's project was copied or moved: before, the copy's command trained on the original's
        same = os.path.isabs(value) and os.path.normpath(path) == os.path.normpath(value)
        return None if same else path  # (a trailing / as typed is the same folder)

    for key, option in (("data", "--data"), ("init", "--init")):
        if (path := found(typed.get(key))) is not None:
            words += [option, path]
    weights = typed.get("backbone_weights")
    if weights not in ("auto", "torchvision", "none") and (path := found(weights)) is not None:
        words += ["--backbone-weights", path]
    subsets = typed.get("val_subsets")
    if isinstance(subsets, list) and any(found(v) is not None for v in subsets):
        for v in subsets:  # --val-subset given replaces the config's list: all of them
            words += ["--val-subset", found(v) or str(v)]
    return shlex.join(words)


def render_train_run(stats: TrainRunStats, live: dict[str, str] | None = None) -> list:
    """Rich renderables for :func:`train_run_stats`. ``live``: the processes writing the run
    now by their lock files (:func:`engine.runlock.writers`), where the caller asked already;
    else asked here."""
    from rich.table import Table

    from engine.text import score_cells

    c = stats.config
    head = Table(title=f"Training run {stats.root}", show_header=False)
    head.add_column("what")
    head.add_column("value", overflow="fold")
    iters = stats.iters
    # a run at its last step too: an engine train --resume --iters MORE builds its data and
    # model before it rewrites config.json (before, "finished" and "next: engine predict")
    holder = ", ".join((writers(stats.root) if live is None else live).values()) or None
    resume = f"engine train --out {shlex.quote(str(stats.root))} --resume"
    blown = stats.non_finite
    # the way on: --resume from last.pt (the run's folder: a bare --resume continues
    # runs/train/run, the default --out); with none, killed (or blown up) before the first
    # checkpoint, --resume fails ("checkpoint not found") and the run starts again: from its
    # recorded config.yaml, or without one from the command that started it (a fresh run in
    # the folder starts its logs anew)
    if "last.pt" in stats.checkpoints:
        way_on = f"{resume} continues it"
        # from last.pt's step, which a kill -9 leaves behind the last logged one (the steps
        # since are trained again): before the fiftieth round only the logged step was named
        if stats.saved is not None and stats.saved != stats.step:
            way_on += f" from step {stats.saved:,} (last.pt's)"
    elif (stats.root / "config.yaml").is_file():
        way_on = f"{_start_again(stats.root)} starts it again"
    else:
        way_on = (
            "run the command that started it again (no last.pt to --resume from; its "
            f"settings: {stats.root / 'config.json'})"
        )
    first = "" if "last.pt" in stats.checkpoints else " before its first checkpoint"
    # last.pt known to hold the last logged step (its saved_step.json): its --resume validates
    # only; not known (a run before the fiftieth round, a copy), it may train steps again, and
    # the generic line stands (the fifty-first round said "validates it" there too)
    if stats.step >= iters and stats.pending == "validation" and stats.saved == stats.step:
        first, way_on = " during its last validation", f"{resume} validates it"
    if _train_command(stats.root) == "engine demo-pretrain":  # engine train exports nothing
        way_on = "run the same engine demo-pretrain command again (it goes on, then exports)"
    state = (
        f"running now: {holder}"
        if holder
        else "finished"
        if stats.finished
        # the loss became NaN/inf: the same resume meets the same step again
        else f"failed: non-finite loss at step {blown.get('step')} ("
        + ", ".join(f"{n}={v}" for n, v in list((blown.get("terms") or {}).items())[:6])
        + f"); lower the learning rate or check the data, then {way_on}"
        if blown
        else f"stopped{first}: {way_on}"
    )
    started = "" if stats.logged else "started, no step logged; "
    head.add_row("step", f"{stats.step:,} of {iters:,} ({started}{state})")
    if stats.finished and not holder and not (stats.root / "curves.png").is_file():
        # its last.pt and log written, then killed (or out of disk) as it drew the figure: the
        # run is finished (exit 0), but before the fifty-sixth round nothing said the figure
        # was missing nor that its --resume draws it (trainer.train._draw_missing_curves)
        head.add_row(
            "curves",
            "no curves.png (stopped as the run's end drew it, or no matplotlib then): "
            f"{resume} draws it",
        )
    head.add_row("data", str(c.get("data")))
    head.add_row("model", f"{c.get('preset')}" + (f", from {c['init']}" if c.get("init") else ""))
    head.add_row("classes", _classes_line(stats.taxonomy))
    aug = record_object(c, "augment", stats.root / "config.json", "config.augment")
    loss = record_object(c, "loss", stats.root / "config.json", "config.loss")
    dec = record_object(loss, "decoupling", stats.root / "config.json", "config.loss.decoupling")
    # the decoupling's settings where they are not the defaults (a run before a key existed
    # trained with its default): before, a flat or contact run read as a default one; and
    # all_precise (no pixel weighed as pseudo), which read as a joint run's recipe before
    shown = [("pseudo form", "pseudo_form", "origin"), ("drawn rule", "drawn_rule", "window")]
    head.add_row(
        "recipe",
        f"batch {c.get('batch_size')}, crop {aug.get('crop')}, lr {c.get('lr')}, "
        f"class crops {aug.get('class_crop_prob')}"
        + (f", seed {c['seed']}" if c.get("seed") is not None else "")
        + (", all precise" if c.get("all_precise") is True else "")
        + "".join(
            f", {label} {dec[key]}"
            for label, key, default in shown
            if dec.get(key, default) != default
        ),
    )
    if stats.last:
        speed = f", {stats.last['it_s']:.2f} it/s" if stats.last.get("it_s") else ""
        head.add_row("last loss", f"{stats.last['loss']:.4f} (step {stats.last['step']}{speed})")
    head.add_row("resumed", counted(stats.resumes, "time") if stats.resumes else "never")
    head.add_row("checkpoints", ", ".join(stats.checkpoints) or "none")
    add_made_with(head, stats.environment)
    # what the run printed, kept in its folder: a nohup or scheduler run's console is gone
    for line in first_lines(stats.skipped, stats.root / "skipped.jsonl", shown=5):
        head.add_row("skipped", line)
    for line in first_lines(stats.warnings, stats.root / "metrics.jsonl", shown=5):
        head.add_row("warning", line)
    out: list = [head]
    if stats.val:
        v = stats.val
        images = counted(int(v.get("images") or 0), "image")
        table = Table(title=f"Last validation (step {v.get('step')}, {images})")
        for col in ("class", "IoU", "BIoU", "BF1", "against"):
            table.add_column(col, justify="left" if col in ("class", "against") else "right")
        for cls in v.get("classes") or []:
            table.add_row(cls["name"], *score_cells(cls), cls.get("vs", "labels"))
        for sub in v.get("subsets") or []:
            against = f"annotated subset ({sub.get('images')} images)"
            table.add_row(sub["class"], *score_cells(sub), against)
        mean = {"iou": v.get("mIoU"), "biou": v.get("mBIoU"), "bf1": v.get("mBF1")}
        table.add_row("mean", *score_cells(mean), "")
        out.append(table)
    if stats.finished and "last.pt" in stats.checkpoints and not holder:
        out.append(
            f"next: engine predict --checkpoint {shlex.quote(str(stats.root / 'last.pt'))} --data DATA "
            "--split test "
            "--out PRED (then engine report or compare against an annotated subset)"
        )
    return out


# -- an annotated subset, a folder of predictions ------------------------------------------------
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


def render_predictions(root: str | os.PathLike, meta: dict, live: dict[str, str]) -> list:
    """Rich renderables for ``engine info PRED``: which model and inference made a folder of
    predictions (its ``predict.json``, read as ``meta``) and how many label maps it holds;
    ``live``: the processes writing it now, by their lock files (:func:`engine.runlock.
    writers`)."""
    from rich.table import Table

    from engine.outputs import prediction_settings

    root = Path(root)
    settings = prediction_settings(root, meta) if meta else {}
    config = meta.get("config") or {}
    maps = sum(1 for p in root.rglob("*.png") if p.parent.name != "color")
    head = Table(title=f"Predictions {root}", show_header=False)
    head.add_column("what")
    head.add_column("value", overflow="fold")
    step = meta.get("checkpoint_step")
    weights = meta.get("weights_sha256")
    head.add_row(
        "checkpoint",
        f"{config.get('checkpoint')}"
        + (f" (step {step:,}" if isinstance(step, int) else " (")
        + (f", weights {weights})" if weights else ")"),
    )
    trained = record_object(meta, "trained_on", root / "predict.json")
    if trained:
        head.add_row("trained on", f"split {trained.get('split')} of {trained.get('data')}")
    size = config.get("size")
    head.add_row(
        "size",
        ("each image's own" if size is None else "x".join(map(str, _listed(size))))
        + (f" ({meta['size_source']})" if meta.get("size_source") else ""),
    )
    device = meta.get("device_used")  # what --device auto came to (not in older records)
    autocast = f" with {meta['autocast']} autocast" if meta.get("autocast") else ""
    head.add_row("mode", str(config.get("mode")) + (f", on {device}{autocast}" if device else ""))
    refinements = settings.get("refinements") or []
    head.add_row("inference", ", ".join(refinements) or "the release's: whole image, one scale")
    taxonomy = record_object(meta, "taxonomy", root / "predict.json")
    classes = [c.get("name") for c in _listed(taxonomy.get("classes")) if isinstance(c, dict)]
    head.add_row("classes", ", ".join(map(str, classes)) or "not recorded")
    add_made_with(head, meta.get("environment"))
    holder = ", ".join(live.values())  # still labelling: the count is of the maps so far
    count = meta.get("image_count")  # how many the run labels (not in older records)
    of = f" of {count:,}" if isinstance(count, int) else ""
    if holder:
        state = f" so far: {holder} is writing them now"
    elif meta.get("status") == "running":  # killed, Ctrl-C or SIGTERM before the last image
        state = (
            ": engine predict stopped before labelling every image (no process writes it): "
            "run the same engine predict command again to finish (it resumes)"
        )
    else:
        state = ""
    head.add_row("label maps", f"{maps:,}{of}{state}")
    failed = [f"{f.get('image')}: {f.get('reason')}" for f in failed_images(meta)]
    for f in first_lines(failed, "predict.json", shown=5):  # engine predict's record of them
        head.add_row("failed", f)
    # what its calls printed: kept for a run under nohup or a scheduler
    said = said_by(meta, "", "{when}{message}")  # earlier calls' first, marked with their time
    for w in first_lines(said, "predict.json", shown=5 if len(said) == len(latest(meta)) else 10):
        head.add_row("warning", w)
    return [head]


def latest(record: Any) -> list[str]:
    """The warnings the latest call that wrote ``record`` printed (its ``warnings``)."""
    return (
        [str(w) for w in (record or {}).get("warnings") or []] if isinstance(record, dict) else []
    )


def said_by(
    record: Any, command: str, form: str = "warning ({command}{when}): {message}"
) -> list[str]:
    """The warnings a record keeps, one line each, as ``engine info`` shows them: those of the
    earlier calls (``earlier_warnings``, :func:`engine.runinfo.kept_calls`), oldest first,
    marked with their call's time (``warning (engine fuse, call of 2026-12-06T06:30:00+00:00):
    ...``), then the latest call's (``warning (engine fuse): ...``)."""
    from engine.runinfo import kept_calls

    if not isinstance(record, dict):
        return []
    lines = []
    for call in kept_calls(record):
        when = f"call of {call.get('time') or 'an unknown time'}"
        when = f", {when}" if command else f"({when}) "
        lines += [form.format(command=command, when=when, message=w) for w in call["warnings"]]
    return lines + [form.format(command=command, when="", message=w) for w in latest(record)]


def failed_images(meta: dict) -> list[dict]:
    """The images ``predict.json`` (``meta``) records as failed, each ``{image, reason}``."""
    return [f for f in _listed(meta.get("failed")) if isinstance(f, dict)]


def _listed(value: Any) -> list:
    """A record's list (a predict.json's ``failed``, ``size``), or [] where it is none or a
    hand edit left another type there (an AttributeError or TypeError before)."""
    return value if isinstance(value, list) else []


def render_review(root: str | os.PathLike) -> tuple[list, int]:
    """Rich renderables for ``engine info GALLERY``: what a finished review gallery (its
    ``review.json``, written last with ``index.html``) shows: the class, the label run, the
    images with a prediction and with an annotation, the predictions beside the pseudo labels,
    the page to open, and each image it could not draw (its problems: a card saying why)."""
    from rich.table import Table

    from annotations.fileio import read_json

    root = Path(root)
    data = read_json(root / "review.json", "review gallery")
    if not isinstance(data, dict):
        raise ValueError(f"{root / 'review.json'}: not an engine review gallery (not an object)")
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    failed = [str(f) for f in data.get("failed") or []]
    head = Table(title=f"Review gallery {root}", show_header=False)
    head.add_column("what")
    head.add_column("value", overflow="fold")
    head.add_row("class", f"{data.get('class_name')} ({data.get('backend')} pseudo labels)")
    head.add_row("label run", str(data.get("run")))
    head.add_row("split", str(config.get("split") or "every split the run labelled"))
    images = int(data.get("images") or 0)
    # of how many the run labelled, where --limit cut (review.json's labelled: before the
    # fifty-sixth round it held none, and "images 2" hid the cut the page said)
    labelled = data.get("labelled")
    cut = (
        f" of {labelled:,}, --limit {config.get('limit')}"
        if isinstance(labelled, int) and labelled > images
        else ""
    )
    head.add_row(
        "images",
        f"{images:,}{cut} ({int(data.get('with_prediction') or 0):,} with a "
        f"prediction, {int(data.get('with_annotation') or 0):,} with an annotation, scored)",
    )
    for pred in config.get("pred") or []:
        head.add_row("predictions", str(pred))
    if config.get("gt"):
        head.add_row("annotations", str(config["gt"]))
    add_made_with(head, data.get("environment"))
    for f in first_lines(failed, "review.json", shown=5):  # each a card saying why
        head.add_row("not drawn", f)
    if holder := writer(root):  # engine review into it again: its page is replaced at the end
        head.add_row("now", f"{holder} is drawing it again (this is the earlier gallery)")
    return [head, f"open: {root / 'index.html'}"], len(failed)


def render_report(root: str | os.PathLike) -> list:
    """Rich renderables for ``engine info REPORT``: the Table 4 of an ``engine report`` folder
    (its ``report.json``): each source's scores, its deltas against the pseudo labels with
    their 95% intervals (``*``: the interval excludes 0), the warnings, and the files."""
    from annotations.fileio import read_json
    from engine.table4 import Table4

    root = Path(root)
    data = read_json(root / "report.json", "report")
    if not isinstance(data, dict) or not isinstance(data.get("table4"), list):
        raise ValueError(f"{root / 'report.json'}: not an engine report (no 'table4' list)")
    table = Table4.of_report({"title": str(root), **data}, marks=True)
    out: list = [
        f"{data.get('class_name')}: annotated subset {data.get('subset')} "
        f"({counted(int(data.get('subset_images') or 0), 'image')}, split {data.get('split')})",
        table,
        "Δ: against the pseudo labels; *: its 95% interval over the images excludes 0",
    ]
    refinements = (data.get("prediction") or {}).get("refinements")
    if refinements:
        out.append(f"predictions refined at inference: {', '.join(refinements)}")
    out += [f"warning: {w}" for w in data.get("warnings") or []]
    out.append(f"report: {root / 'report.md'}")
    if holder := writer(root):  # engine report into it again: its files are replaced at the end
        out.append(f"now: {holder} is writing it again (this is the earlier report)")
    return out


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


def render_scores(path: str | os.PathLike) -> list | None:
    """Rich renderables for ``engine info`` on what ``engine compare --json`` or ``engine
    evaluate --json`` wrote: the comparison's Table 4 (deltas against its first source, ``*``
    where their 95% interval excludes 0) and its warnings, or the per-class scores with their
    means, and what was scored against what; None for any other file (a dataset spec, say).
    Before, such a file was read as a dataset spec ("unknown keys ['class', 'sources', ...]")."""

    from annotations.fileio import read_json
    from engine.table4 import Table4, class_scores_table

    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        data = read_json(path, "scores")
    except ValueError:
        return None  # not JSON: read as a spec, which says why
    if not isinstance(data, dict):
        return None
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    sources = data.get("sources")
    if isinstance(sources, list) and all(isinstance(s, dict) for s in sources) and sources:
        rows = [{**row, "source": row.get("name")} for row in sources]
        title = (f"{data.get('class')}: {counted(int(data.get('images') or 0), 'annotated image')} "
                 f"(engine compare, {path})")  # fmt: skip
        out: list = [
            Table4(title, rows, marks=True),
            f"Δ: against {rows[0]['source']}; *: its 95% interval over the images excludes 0",
            f"ground truth: {config.get('gt')}",
        ]
        out += [f"{row.get('source')}: {row.get('folder')}" for row in rows]
        out += [f"warning: {w}" for w in data.get("warnings") or []]
        return out + scored_maps_changed(
            [(row.get("folder"), row.get("maps_sha256")) for row in rows], data.get("stems"), data
        )
    classes = data.get("classes")
    if isinstance(classes, list) and "mIoU" in data:
        table = class_scores_table(
            f"Scores (engine evaluate, {path}): {counted(int(data.get('images') or 0), 'image')}, "
            f"BF1 aggregated per {data.get('bf1_mode')}",
            data,
        )
        return [
            table,
            f"predictions: {config.get('pred')}",
            f"ground truth: {config.get('gt')}"
            + (f", split {config['split']}" if config.get("split") else ""),
            f"classes: {data.get('taxonomy_source')}",
            *scored_maps_changed(
                [(config.get("pred"), data.get("maps_sha256"))], data.get("stems"), data
            ),
        ]
    return None


def stopped_compare(path: str | os.PathLike) -> str | None:
    """What ``engine info`` says of an ``engine compare --json`` record that is not there while
    the earlier one is set aside beside it (:func:`engine.outputs.earlier_record`): a rerun
    stopped before writing it (or running: no lock tells), its ``--markdown`` and ``--plot``
    perhaps written already (exit 1). None where the record is there or none was set aside (not found, as any path)."""
    from engine.outputs import earlier_record

    aside = earlier_record(path)
    if os.path.lexists(path) or not aside.is_file():
        return None
    return (
        f"{path}: a comparison not finished: engine compare was run again and has not written "
        f"this record (the earlier one is kept as {aside.name}; its --markdown and --plot files "
        "may be the new run's): unless it runs now, run the same engine compare command again"
    )


def scored_maps_changed(
    folders: list[tuple[Any, Any]], stems: Any, record: Any = None
) -> list[str]:
    """``warning: ...`` for each folder of label maps a scores record (``engine evaluate`` or
    ``compare --json``) scored whose maps are not those now (their ``maps_sha256``, recorded
    since the forty-sixth round): the scores no longer describe them; score them again. A
    folder typed relative is read from the folder the scoring command ran in (the ``record``'s
    ``environment.cwd``): before the forty-ninth round, from here, and a ``pred`` of the
    folder ``engine info`` was run in was said to have changed (or a real change went
    unsaid)."""
    from annotations.fileio import record_cwd, typed_from
    from engine.evaluate import maps_changed

    cwd = record_cwd(record)
    return [
        f"warning: {why}: these scores describe the maps as they were; score them again"
        for folder, digest in folders
        if (why := maps_changed(typed_from(cwd, folder), stems, digest))
    ]


DEMO_SUMMARY = Path("report") / "summary.json"  # what engine demo writes last, in its folder


def render_demo(root: str | os.PathLike) -> list:
    """Rich renderables for ``engine info DEMO_OUT``: the demo's Table 4 for every new class,
    what joint training kept of the base classes, its wall time, and where each stage wrote
    (each of which ``engine info`` describes), from its ``report/summary.json``."""
    from rich.table import Table

    from annotations.fileio import read_json
    from engine.demo import (
        EFFECT_TITLE,
        base_line,
        call_seconds,
        effect,
        effect_lines,
        format_duration,
        scores_table,
    )

    root = Path(root)
    data = read_json(root / DEMO_SUMMARY, "demo summary")
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
        raise ValueError(f"{root / DEMO_SUMMARY}: not an engine demo summary (no 'classes')")
    # what a hand edit left of another type is passed over, as a row that is not an object
    classes = {
        n: [r for r in rows if isinstance(r, dict)]
        for n, rows in data["classes"].items()
        if isinstance(rows, list)
    }
    out: list = [scores_table(classes, f"Demo {root}", bool(data.get("simulated_labeler")))]
    base = record_object(data, "base_classes", root / DEMO_SUMMARY)
    if base := {n: s for n, s in base.items() if isinstance(s, dict)}:
        out.append(base_line(base))
    calls = data.get("calls") if isinstance(data.get("calls"), list) else []
    calls = [c for c in calls if isinstance(c, dict)]
    if not calls and isinstance(data.get("wall_seconds"), int | float):  # before calls were kept
        calls = [{"wall_seconds": data["wall_seconds"]}]
    # what the demo is built to show, worked out from the rows as summary.json's `effect` was
    # (so also for a summary written before it was kept)
    out += [f"{EFFECT_TITLE}:", *effect_lines(effect(classes, calls))]
    took = ", ".join(format_duration(call_seconds(c)) for c in calls)
    if took:
        out.append(f"wall time: {took}" + (f" ({len(calls)} calls)" if len(calls) > 1 else ""))
    paths = Table(title="Where each stage wrote (engine info describes each)", show_header=False)
    paths.add_column("stage")
    paths.add_column("path", overflow="fold")
    config, paths_made = (record_object(data, k, root / DEMO_SUMMARY) for k in ("config", "paths"))
    recorded = Path(str(config.get("out") or root))
    for stage, path in paths_made.items():
        with contextlib.suppress(ValueError):  # as the folder is now, wherever it ran
            path = root / Path(str(path)).relative_to(recorded)
        paths.add_row(stage, str(path))
    now = writer(root)  # engine demo into it again: summary.json is rewritten at its end
    said = f"now: {now} is running it again (this is the earlier demo's summary)"
    return [*out, paths, *([said] if now else [])]


def render_unfinished_demo(root: str | os.PathLike, live: dict[str, str]) -> list:
    """``engine info`` on a demo folder without its summary yet (stopped, or still running):
    what each stage has written so far, and how to finish it; ``live``: the processes writing
    it now, by their lock files (:func:`engine.runlock.writers`)."""
    from rich.table import Table

    root = Path(root)
    table = Table(title=f"Demo {root}: not finished (no {DEMO_SUMMARY})", show_header=False)
    table.add_column("folder")
    table.add_column("what")
    table.add_row("data", "the synthetic dataset (engine synth)")
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        if kind := _kind(folder):
            table.add_row(str(folder.relative_to(root)), kind[1])
    if holder := ", ".join(live.values()):
        return [table, f"running now: {holder}"]
    return [table, f"engine demo --out {shlex.quote(str(root))} (with the same options) resumes it"]


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


def output_folder(path: str | os.PathLike) -> Path:
    """The engine output or dataset a file given to ``engine info`` belongs to: the folder of a
    record its command writes (``run.json``, ``predict.json``, ``report.json``, ``fuse.json``,
    ``synth.json``, ``metrics.jsonl``, ...), of any other file in an engine output (a training
    run's ``last.pt``, ``config.yaml`` or ``environment.json``, a gallery's ``index.html``, a
    report's ``report.md``, a label run's ``manifest.jsonl``, a predicted label map), or the
    demo folder of its ``report/summary.json``; ``path`` itself otherwise (a dataset spec, a
    dataset's ``dataset.yaml`` included). Such files were read as dataset specs ("unknown keys
    ...", "cannot parse YAML", "not UTF-8 text")."""
    from annotations.fileio import OUTPUT_RECORDS, SPEC_NAMES

    path = Path(path)
    if not path.is_file():
        return path
    records = {r for r, _ in OUTPUT_RECORDS} | {"synth.json", "synth.partial.json"}
    if path.name in records:
        return path.parent
    if path.name not in SPEC_NAMES and _kind(path.parent) is not None and not _own_reading(path):
        return path.parent
    demo = path.parent.parent
    if path.parent.name == DEMO_SUMMARY.parent.name and (demo / DEMO_SUMMARY).is_file():
        return demo  # report/summary.json, summary.md: the demo's
    return path


def _own_reading(path: Path) -> bool:
    """Whether the file ``path`` in an engine output is read as itself: scores written there
    (``engine evaluate --json RUN/eval.json``) or a dataset spec of its own (a second spec
    beside a fused dataset's ``dataset.yaml``), not as the output around it."""
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        return False
    if path.suffix.lower() == ".json" and render_scores(path) is not None:
        return True
    from engine.datasets import load_spec

    try:
        load_spec(path)
    except (ValueError, OSError):
        return False
    return True


def _outputs_within(folder: Path, splits: list[str] | None) -> list[tuple[str, list, int]]:
    """:func:`describe_output` of each subfolder of ``folder`` that is an engine output it
    describes (the demo's ``label/`` and ``report/``, a ``runs/predict/`` of prediction
    folders), by name; none for a dataset (its split folders are no outputs)."""
    if not folder.is_dir() or is_dataset_root(folder):  # a spec may put images anywhere
        return []
    # not a hidden one: a write's staging folder (an import killed mid-swap left its
    # subset.json there, shown before as the subset, its masks "missing")
    subs = sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and _kind(p) is not None
    )
    return [d for p in subs if (d := describe_output(p, splits)) is not None]


def _kind(folder: str | os.PathLike) -> tuple[str, str] | None:
    """:func:`output_kind`, or a training run before its first logged step
    (:func:`_train_started`): what every place of engine info asks of a folder. Before, two of
    five asked for the second: a folder listing and an unfinished demo's table left such a run
    out, and an edited record of one named no file."""
    return output_kind(folder) or _train_started(folder)


def _train_started(folder: str | os.PathLike) -> tuple[str, str] | None:
    """A training run killed (or still starting) before its first logged step: engine train
    writes ``config.yaml`` and ``config.json`` (its config, hash and classes) first, and
    ``metrics.jsonl`` at the first step it logs. Before, "no image split folders found", as of
    a wrong folder. None for anything else (a model folder's config.json has no config.yaml)."""
    from annotations.fileio import read_json

    folder = Path(folder)
    if not (folder / "config.yaml").is_file() or not (folder / "config.json").is_file():
        return None
    try:
        record = read_json(folder / "config.json", "training config")
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        return None
    return "config.yaml", "a training run (engine train)"


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


def _half_swapped_conversion(folder: Path) -> str | None:
    """The same line for a SAM conversion (``engine convert-sam``,
    :func:`labeler.sam_convert.convert_sam_checkpoint`) killed while putting its model's files
    in: the next conversion refuses a folder that holds anything but its staging folders ("not
    empty"), and writes one that holds only them (before, "once the folder is removed" there
    too)."""
    from labeler.sam_convert import STAGING

    held = folder.is_dir() and any(not p.name.startswith(STAGING) for p in folder.iterdir())
    return _half_swapped(
        folder,
        STAGING,
        "a conversion (engine convert-sam)",
        "engine convert-sam into {folder}"
        + (", once the folder is removed," if held else "")
        + " writes the whole model",
        "earlier conversion",
    )


def _converted_sam(folder: Path) -> str | None:
    """What ``engine info`` says of a folder ``engine convert-sam`` wrote whole (its record
    ``convert-sam.json`` with the model's files), and of its staging folder left by one killed
    as it removed it, the conversion done; None for any other folder. Before, "no image split
    folders found" (exit 2), as of a wrong folder, also after a finished conversion."""
    from annotations.fileio import read_json
    from labeler.sam_convert import CONVERT_RECORD, STAGING

    if not all((folder / n).is_file() for n in (CONVERT_RECORD, "config.json")):
        return None
    try:
        record = read_json(folder / CONVERT_RECORD, "conversion record")
    except ValueError:
        return None
    source = record.get("source") if isinstance(record, dict) else None
    left = sorted(p.name for p in folder.glob(STAGING + "*") if p.is_dir())
    note = f" ({left[0]}/, left by the conversion killed as it finished: delete it)" if left else ""
    return (
        f"{folder}: a SAM model engine convert-sam converted"
        + (f" from {source}" if isinstance(source, str) else "")
        + f": give it to engine label as --segmenter {folder}{note}"
    )


def _staged_conversion(folder: Path) -> tuple[str, int] | None:
    """A folder holding nothing but a SAM conversion's staging folders, none with a swap record:
    ``engine convert-sam`` writing its model there now (its lock on the folder itself held,
    :func:`labeler.sam_convert._converting`: problems 0), or killed before it put a file in (1:
    the same command writes the whole model, removing them). Before, "no image split folders
    found" (exit 2), as of a wrong folder."""
    from labeler.sam_convert import STAGING

    entries = list(folder.iterdir()) if folder.is_dir() else []
    if not entries or any(not (p.name.startswith(STAGING) and p.is_dir()) for p in entries):
        return None
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not to be opened (Windows, a folder): cannot tell
        fd = None
    if fd is not None:
        try:  # no locks here (Windows, ENOLCK): told as stopped, as below
            if try_lock(fd) is False:
                return f"{folder}: engine convert-sam is writing a model into it now", 0
        finally:
            os.close(fd)  # the probe's lock with it
    return (
        f"{folder}: a conversion (engine convert-sam) stopped before it put its model's files "
        f"in (only its staging folder is here): engine convert-sam into {folder} writes the whole "
        "model",
        1,
    )


def _half_swapped(folder: Path, prefix: str, what: str, then: str, earlier: str) -> str | None:
    """A line on a write of ``what`` killed during its :func:`annotations.fileio.swap_in` into
    ``folder`` (its staging folders ``prefix*``; no process writes the folder now), with
    ``then``: the command whose next run finishes the swap, and ``earlier``: what the entries it
    takes out are of (the old write's, which the new one lacks: "labelme/ of the earlier
    export"). A swap record the next write refuses (edited by hand, in a folder of another
    user's) is the line that write stops with; before the fifty-first round's mend it was
    passed over, as no record, and a subset folder was "no image split folders found"."""
    from annotations.fileio import first_line, unfinished_swap

    if not folder.is_dir() or writer(folder) is not None:  # a write at it now: live staging
        return None
    for staging in sorted(folder.glob(prefix + "*")):
        try:
            swap = unfinished_swap(staging)
        except (OSError, ValueError) as e:  # what the next write into the folder stops with
            return first_line(e)
        if swap is None or not any(swap):
            continue
        pending, stale = swap  # the new files still hidden; the old write's, which it removes

        def names(entries: list[str], where: Path) -> str:
            return ", ".join(n + ("/" if (where / n).is_dir() else "") for n in entries)

        said = [f"{names(pending, staging)} still in {staging.name}/"] if pending else []
        if stale:  # before the forty-eighth round's mend: said "still in" the staging folder
            said.append(f"{names(stale, folder)} of the {earlier}, which it removes")
        return (
            f"{folder}: {what} was interrupted while putting its files in: "
            f"{'; '.join(said)}; the next " + then.format(folder=folder)
        )
    return None


def _nothing_written_yet(folder: Path) -> tuple[str, int] | None:
    """What ``engine info`` says of a folder that holds nothing but hidden files (its lock, a
    staged copy) and a lock record (:func:`engine.runlock.last_writer`), or a lock file that
    holds none: a run killed or stopped before it wrote anything (problems 1: run it again),
    or one that has not yet (0). Before, it said "no image split folders found", as of a
    wrong folder."""
    from engine.runlock import LOCK_NAME, as_shard, last_writer

    # hidden folders too (a staged write's leftover): not wrote_nothing, whose narrower test keeps
    # the temporaries' removal out of a user's hidden folders (.git, .venv)
    if not folder.is_dir() or any(not p.name.startswith(".") for p in folder.iterdir()):
        return None
    # a sharded label run's shards hold a lock file each (.lock-shard0of2): before, a folder
    # holding only theirs (shards starting, or all killed before their first file) said "no
    # image split folders found", exit 2
    locks = sorted(p.name for p in folder.glob(f"{LOCK_NAME}*") if p.is_file())
    records = [f"{who}{as_shard(name)}" for name in locks if (who := last_writer(folder, name))]
    if not (last := ", ".join(records)):
        if not locks:
            return None
        if lockless(folder):  # a run there goes on unlocked, its lock file empty (ENOLCK): before,
            # one in progress was told "killed as it took the folder"
            return (
                f"{folder}: a run that could not lock it (its lock file holds no record) is "
                f"writing it now or stopped before it wrote anything here, {_no_locks_tail()}",
                1,
            )
        # killed between making its lock file and writing its record there (or on a disk too
        # full for the record): an empty .lock; before, "no image split folders found", exit 2
        last = "a run (its lock file holds no record: killed as it took the folder)"
    if (now := writer(folder)) is not None:
        return f"{folder}: {now} is writing it now and has written nothing here yet", 0
    return (
        f"{folder}: {last} stopped before it wrote anything here (no process writes it now): "
        "run that command again",
        1,
    )


def _begun(folder: Path) -> tuple[str, int] | None:
    """What ``engine info`` says of a dataset ``engine synth`` or ``engine fuse`` was stopped
    (or is) writing before a split of it could be read (``synth.partial.json`` or ``fuse.json``
    running, and no split folder yet, a first image without its label, or no ``dataset.yaml``
    yet): unfinished, resumable (problems 1), or being written now (0). Before, "no image split
    folders found" or "label folder for split 'train' not found", exit 2, as of a wrong folder.
    None where it is not one, or reads as a dataset (whose table says it is unfinished)."""
    from engine.datasets import datasets_above

    above = (a.unfinished for a in datasets_above(folder) if a.where == "" and a.unfinished)
    if (unfinished := next(above, None)) is None:
        return None
    try:
        spec = load_spec(folder)
        for split in spec.require_splits():
            SegDataset(spec, split, require_labels=spec.labels is not None, lenient=True)
    except (OSError, ValueError):
        state, remedy, halted = unfinished
        line = f"unfinished: {folder}: {state}, before a split of it could be read: {remedy}"
        return line, int(halted)
    return None


def leftover_note(folder: str | os.PathLike) -> str | None:
    """A line on the temporary files of atomic writes that runs killed while writing left in
    ``folder`` (:func:`engine.runlock.temporaries`), for ``engine info`` to end with; None when
    there are none, or while a process writes the folder (its own are live). Harmless, and
    removed by the next run of the command that writes the folder: not a problem (exit code
    unchanged). Of a single file given (``engine compare --json`` record), what its killed
    writes left beside it (:func:`_left_beside`)."""
    from engine.runlock import temporaries

    folder = Path(folder)
    if folder.is_file():
        return _left_beside(folder)
    if not folder.is_dir() or writer(folder) is not None:
        return None
    found = temporaries(folder)
    if not found:
        return None
    size = sum(p.stat().st_size for p in found if p.is_file())
    from annotations.fileio import folder_is

    kind = folder_is(folder)
    written = (
        kind not in (None, "a dataset's root")
        or any((folder / r).is_file() for r in ("synth.json", "synth.partial.json"))
        or wrote_nothing(folder)  # a run killed writing its first file: its rerun removes them
        # a report or gallery killed before its record (its lock file names it): its rerun
        # removes them; before, "no engine command writes this folder: delete them"
        or any(_left_by(folder, command) for command in ("engine report", "engine review"))
        # its export's (OUT/.demo_tiny_mass7.pt.*.tmp): the same command's save removes it
        or _pretrain_folder(folder)
    )  # a plain dataset's root: no engine command writes it, nor removes them
    after = (
        f"the next run of the command that writes {folder} removes them"
        if written
        else "no engine command writes this folder: delete them"
    )
    if kind == "a label run (engine label)":  # not while another shard runs: may be live
        after += " (a shard's run too, once no other shard of it runs)"
    return (
        f"note: {counted(len(found), 'temporary file')} ({size / 1e6:.1f} MB) left by runs killed "
        f"while writing, e.g. {found[0]}: {after}"
    )


def _left_beside(path: Path) -> str | None:
    """:func:`leftover_note` of the single file ``path``, which no run lock guards (an ``engine
    compare --json`` or ``evaluate --json`` record): the temporary files its writes killed
    mid-write left (no process holds their lock: :func:`annotations.fileio.dead_temporaries`)
    and the earlier compare record a rerun killed as it finished left set aside, its new record
    in (:func:`engine.outputs.earlier_record`; no single step puts one in and removes the
    other). The command that wrote ``path``, run again, removes them; before the fifty-eighth
    round nothing said they were there, nor which were left (the temporaries stayed for ever)."""
    from annotations.fileio import dead_temporaries
    from engine.outputs import earlier_record

    left = dead_temporaries(path)
    if (aside := earlier_record(path)).is_file():  # path is there: its rerun put it in
        left.insert(0, aside)
    if not left:
        return None
    return (
        f"note: {counted(len(left), 'file')} beside it left by writes killed as they wrote it, "
        f"e.g. {left[0].name}: the command that wrote {path.name}, run again, removes them"
    )


def _left_by(folder: Path, command: str) -> str | None:
    """The run of ``command`` whose lock file ``folder`` holds, as its record names it
    (``engine report (pid 12 on host, since ...)``; ``command`` where the record is empty:
    killed as it took the folder), for a folder a run of it stopped in; None where ``folder``
    holds no lock file or another command's record. Such a run always holds its folder's lock
    file: before the fifty-sixth round's review, a folder of the user's holding a ``chart.png``
    or a ``thumbs/`` was told a report or review gallery not finished, of a command never run
    there (exit 1)."""
    from engine.runlock import LOCK_NAME, last_writer

    if not (folder / LOCK_NAME).is_file():
        return None
    if (who := last_writer(folder)) is None:
        return command
    return who if who.startswith(f"{command} ") else None


def _unexported_pretrain(folder: Path) -> tuple[str, int] | None:
    """What ``engine info`` adds for ``engine demo-pretrain``'s folder (its training in
    ``train/``, started by that command: ``environment.json``) without the checkpoint it exports
    last: the same command goes on (and exports). Before, a run killed after its last step, its
    checkpoint not yet exported, read as a finished training run (exit 0, "next: engine
    predict"), and one killed mid-training was told to start ``engine train`` again, which
    exports nothing. None where the checkpoint is there, or for another command's folder."""
    from engine.pretrain import CHECKPOINT_NAME
    from engine.runlock import writers

    checkpoint = folder / CHECKPOINT_NAME
    if checkpoint.exists() or not _pretrain_folder(folder):
        return None
    if writers(folder / "train"):
        return f"{folder}: engine demo-pretrain is training now; it exports {checkpoint} last", 0
    if lockless(folder / "train"):  # a run there goes on unlocked: not told stopped
        doing = f"engine demo-pretrain is training it (its checkpoint {checkpoint} not exported)"
        return _cannot_tell(folder, doing, "engine demo-pretrain")
    return (
        f"{folder}: engine demo-pretrain not finished: its checkpoint {checkpoint} not exported "
        "yet; run the same engine demo-pretrain command again (it goes on from train/last.pt "
        "where there is one, then exports)",
        1,
    )


def _pretrain_folder(folder: Path) -> bool:
    """Whether ``folder`` is ``engine demo-pretrain``'s ``--out``: its training in ``train/``,
    started by that command (:func:`_train_command`)."""
    return _train_command(folder / "train") == "engine demo-pretrain"


def _train_command(run: Path) -> str:
    """The command that started the training run ``run`` and goes on with it: ``engine
    demo-pretrain`` where its ``environment.json``'s argv says so, else ``engine train``."""
    argv = _environment(run / "environment.json").get("argv")
    pretrain = isinstance(argv, list) and argv[1:2] == ["demo-pretrain"]
    return "engine demo-pretrain" if pretrain else "engine train"


def _unfinished_review(folder: Path) -> tuple[str, int] | None:
    """What ``engine info`` says of a review gallery's folder without its ``review.json``
    (written last, with ``index.html``): thumbnails in ``thumbs/`` and nothing else but hidden
    files (:func:`_unfinished_drawn`). Before, "no image split folders found", as of a wrong
    folder."""
    return _unfinished_drawn(
        folder, "engine review", ("thumbs", "index.html"), "thumbnail", "drawing",
        "this review gallery", "a review gallery not finished: {who} stopped before writing its "
        "page ({drawn} drawn, no review.json)",
    )  # fmt: skip


def _unfinished_report(folder: Path) -> tuple[str, int] | None:
    """What ``engine info`` says of a report's folder without its ``report.json`` (written
    after ``chart.png``, the overlays and ``report.md``): those and nothing else but hidden
    files (:func:`_unfinished_drawn`). Before, "no image split folders found" (exit 2), as of a
    wrong folder."""
    return _unfinished_drawn(
        folder, "engine report", ("chart.png", "overlays", "report.md"), "overlay", "writing",
        "this report", "a report not finished: {who} stopped before writing report.json "
        "({drawn} drawn)",
    )  # fmt: skip


def _unfinished_drawn(
    folder: Path, command: str, parts: tuple[str, ...], image: str, verb: str, this: str,
    stopped: str,
) -> tuple[str, int] | None:  # fmt: skip
    """What ``engine info`` says of the folder of ``command`` (``engine report``) without its
    record (``report.json``, written last): begun (one of ``parts`` but the last, the page
    written just before the record; the images of the last of those, ``{image}s`` drawn so
    far) and nothing else but hidden files. Written now (its lock held: problems 0) or stopped
    (problems 1: the same command writes it again; ``stopped`` with ``{who}`` and
    ``{drawn}``). None without the command's lock file (:func:`_left_by`): a user's
    ``thumbs/``, a ``compare --plot figs/chart.png``."""
    record = f"{command.split()[-1]}.json"
    if (folder / record).exists() or not any((folder / p).exists() for p in parts[:-1]):
        return None
    if any(p.name not in parts and not p.name.startswith(".") for p in folder.iterdir()):
        return None
    if (who := _left_by(folder, command)) is None:
        return None
    drawn = counted(sum(1 for _ in (folder / parts[-2]).glob("*.jpg")), image)
    if (now := writer(folder)) is not None:
        return f"{folder}: {now} is {verb} {this} now ({drawn} so far)", 0
    if lockless(folder):
        return _cannot_tell(folder, f"{who} is {verb} it ({drawn} so far)", command)
    return (
        f"{folder}: {stopped.format(who=who, drawn=drawn)} and no process writes it now: run "
        f"the same {command} command again",
        1,
    )


def _cannot_tell(folder: Path, doing: str, command: str) -> tuple[str, int]:
    """What ``engine info`` says of a gallery or report ``doing`` (``engine report is writing it
    (2 overlays so far)``) in a folder whose file system takes no locks (ENOLCK,
    :func:`engine.runlock.lockless`): its run goes on unlocked, its lock file empty, and one
    going on is not told from one stopped (problems 1). Before, one in progress was told
    stopped, "no process writes it now"."""
    return f"{folder}: not finished: {doing} now, or was stopped, {_no_locks_tail(command)}", 1


def _no_locks_tail(command: str | None = None) -> str:
    """How every ``engine info`` line on an output of a file system that takes no locks
    (ENOLCK) ends: that it cannot tell a run going on from one stopped, and when to run
    ``command`` (``engine report``; "that command" where no record names it) again. Before,
    runs, shards and galleries each ended in words of their own."""
    again = f"the same {command} command" if command else "that command"
    return (
        "which engine info cannot tell on a file system without locks: once no engine command "
        f"runs on it, run {again} again"
    )


def _unlocked(folder: str | os.PathLike, stopped: bool, command: str) -> list[str]:
    """The line ``engine info`` adds to an output of ``command`` (``engine label``) it tells
    stopped (``stopped``: no process holds its lock) on a file system that takes no locks
    (ENOLCK, :func:`engine.runlock.lockless`), where a run goes on unlocked and no lock tells
    it from one stopped: unfinished either way (exit 1), and run again only once none runs.
    Before, a label or training run going on there was told stopped, "run engine label
    again", a second run beside the first."""
    if not stopped or not lockless(folder):
        return []
    return [f"note: {folder}: a run is writing it now or was stopped, {_no_locks_tail(command)}"]


def describe_output(
    path: str | os.PathLike, splits: list[str] | None = None
) -> tuple[str, list, int] | None:
    """``(what it is, renderables, problems)`` for an engine output that ``engine info``
    describes instead of a dataset: a label run (``problems``: its failed images), a training
    run, an annotated subset, a folder of predictions, annotation files (COCO, LabelMe, an
    export folder); None for anything else (a dataset, a fused one included). A record whose
    values are of other types than its command writes (edited by hand: a count that is a list,
    a score that is a string) is one line naming it, not a traceback."""
    try:
        return _describe_output(path, splits)
    except (KeyError, TypeError, AttributeError, IndexError, OverflowError) as e:
        kind = _kind(path)
        again = "; run the command that wrote it again" if kind else ""
        raise ValueError(
            f"{records_read(path, kind)}: holds a value of an unexpected type or lacks one "
            f"({type(e).__name__}: {e}), edited by hand?{again}"
        ) from None


# records read beside the one that names an output (a label run's manifest beside run.json)
_READ_BESIDE = {
    "run.json": "manifest.jsonl",
    "metrics.jsonl": "config.json",
    "config.yaml": "config.json",  # a training run before its first logged step
}


def records_read(path: str | os.PathLike, kind: tuple[str, str] | None) -> str:
    """The file (or files) ``engine info`` read to describe ``path`` (``kind``: its
    :func:`output_kind`), for an error about their values: the record that names the output
    and the one read beside it, a demo's summary, or ``path`` itself (a scores record)."""
    folder = Path(path)
    if kind is None:
        return str(folder / DEMO_SUMMARY if (folder / DEMO_SUMMARY).is_file() else folder)
    beside = _READ_BESIDE.get(kind[0])
    return f"{folder / kind[0]}" + (f" or {beside} beside it" if beside else "")


def _describe_output(
    path: str | os.PathLike, splits: list[str] | None
) -> tuple[str, list, int] | None:
    kind = _kind(path)  # the record its command wrote, and what
    if kind is None:  # the folder is
        from engine.annotation_files import annotation_files

        folder = Path(path)
        if (scores := render_scores(folder)) is not None:
            return "scores (engine compare or evaluate --json)", scores, 0
        if (picked := render_pick_list(folder)) is not None:
            return "a pick list (engine annotate pick)", picked, 0
        if (folder / DEMO_SUMMARY).is_file() and not is_dataset_root(folder):
            return "a demo folder (engine demo)", render_demo(folder), 0
        # its scenes, or its summary set aside by a rerun (one stopped in its synth stage has
        # data/synth.partial.json: before, read as a folder of engine outputs, exit 0)
        marks = ("data/synth.json", f"report/{earlier_name('summary.json')}")
        if any((folder / m).is_file() for m in marks) and (folder / "label").is_dir():
            live = writers(folder)  # running now: 0; its lock probed once
            rendered = render_unfinished_demo(folder, live)
            rendered += _unlocked(folder, not live, "engine demo")
            return "a demo folder (engine demo)", rendered, not live
        if outputs := _outputs_within(folder, splits):  # runs/predict/, the demo's label/
            renderables = [r for _, rs, _ in outputs for r in [*rs, ""]][:-1]
            problems = sum(n for _, _, n in outputs)
            if (unexported := _unexported_pretrain(folder)) is not None:
                renderables, problems = [*renderables, "", unexported[0]], problems + unexported[1]
            return "a folder of engine outputs", renderables, problems

        if half := _half_swapped_subset(folder):  # masks/ in, its subset.json not yet
            return "an annotated subset not finished", [half], 1
        if unfinished := _unfinished_review(folder):
            return "a review gallery not finished", [unfinished[0]], unfinished[1]
        if unfinished := _unfinished_report(folder):
            return "a report not finished", [unfinished[0]], unfinished[1]
        if unfinished := _nothing_written_yet(folder):
            # a first export killed before its first file was in holds its lock's record too:
            # "stopped before it wrote anything here: run that command again" before, which
            # finished the swap and then refused the export as an earlier one (--force)
            if half := _half_swapped_export(folder) or _half_swapped_conversion(folder):
                return "a write not finished", [half], 1
            return "a run's folder it wrote nothing in yet", [unfinished[0]], unfinished[1]
        if begun := _begun(folder):
            return "a dataset engine synth or fuse has only begun", [begun[0]], begun[1]
        files = annotation_files(path)  # an export to correct, or corrected files
        if files:
            where = folder if folder.is_dir() else folder.parent
            half = _half_swapped_export(where)
            problems = sum(len(f.problems or []) for f in files) + (half is not None)
            rendered = render_annotation_files(files, half)
            if now := writer(where):  # an export --force into it: replaced at its end
                rendered.append(f"now: {now} is writing it again (these are the earlier files)")
            return "annotation files", rendered, problems
        # a conversion killed while putting its files in (or its swap record damaged), which
        # holds no lock file: before, "no image split folders found", exit 2, as of a wrong folder
        if half := _half_swapped_export(folder) or _half_swapped_conversion(folder):
            return "a write not finished", [half], 1
        if staged := _staged_conversion(folder):
            return "a write not finished", [staged[0]], staged[1]
        if converted := _converted_sam(folder):
            return "a SAM model (engine convert-sam)", [converted], 0
        if (listed := render_image_list(folder)) is not None:  # a pick list without its record
            return "a list of image names", listed, 0
        return None
    record, what = kind
    if record == "config.yaml":  # a training run before its first logged step
        train = train_run_stats(path)
        live = writers(path)  # its lock probed once: the lines and the exit status agree
        rendered = render_train_run(train, live) + _unlocked(path, not live, _train_command(path))
        return what, rendered, not live
    if record == "subset.json":
        # new masks/ beside the old subset.json, or none yet: not checked against it (each
        # "missing", or a corrected one "edited after the import? import ... again", before)
        half = _half_swapped_subset(Path(path))
        rendered, problems = render_subset(path, masks=half is None)
        if half:
            return what, [*rendered, half], problems + 1
        return what, rendered, problems
    if record == "predict.json":
        from engine.outputs import prediction_record

        meta = prediction_record(Path(path)) or {}  # read once: the table and the problems
        # a predict stopped before its last image is a problem (exit 1), as a stopped fusion's
        live = writers(path)  # its lock probed once: the lines and the exit status agree
        stopped = meta.get("status") == "running" and not live
        rendered = render_predictions(path, meta, live) + _unlocked(path, stopped, "engine predict")
        return what, rendered, len(failed_images(meta)) + stopped
    # stopped before its last image or step, no process at it now: unfinished and resumable
    # (exit 1), as a stopped predict, fusion or review; before, exit 0 as if finished
    if record == "run.json":
        stats = label_run_stats(path, splits)
        live = writers(path)  # its lock probed once: the lines and the exit status agree
        rendered = render_label_run(stats, live=live)
        if live:  # its failed images may be tried again now: not yet said
            return what, rendered, 0  # (before, exit 1 and "run again", refused)
        stopped = any(r.pending or r.missing for r in stats.splits.values())
        return what, rendered + _unlocked(path, stopped, "engine label"), stats.problems + stopped
    if record == "metrics.jsonl":
        train = train_run_stats(path)
        live = writers(path)  # its lock probed once: the lines and the exit status agree
        stopped = not train.finished and not live
        rendered = render_train_run(train, live) + _unlocked(path, stopped, _train_command(path))
        return what, rendered, stopped
    if record == "report.json":
        return what, render_report(path), 0
    if record == "review.json":
        return what, *render_review(path)
    if begun := _begun(Path(path)):  # a fusion killed before its dataset.yaml was in
        return what, [begun[0]], begun[1]
    return None  # a fused dataset is a dataset
