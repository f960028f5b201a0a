"""Dataset statistics for ``engine info``: counts, image sizes, class pixel shares, problems.

One pass over each split: every image is decoded (or its header read) and every label read and
validated through :func:`engine.datasets.check_sample`, which reports all problems, while the
same pass counts pixels per class (the paper's Fig. 2). A fused dataset's source maps are read
as training reads them (present, the label's size, values 0/1/2) and counted per source. With
``workers`` > 1 the samples are checked in that many processes
(:func:`engine.parallel.map_in_order`; a worker sends back its sample's problems, size and
pixel counts, not the label), in order, so the report is the same. :func:`plot_shares` draws
the shares (``engine info --plot``).
"""

from __future__ import annotations

import functools
import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import UNREADABLE, first_line, fused_input, fused_source
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
    source_dir,
    split_key,
)
from engine.info.records import said_by
from engine.parallel import map_in_order
from engine.runlock import folders_removed_on_failure
from engine.text import LINE_BREAK, counted


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
