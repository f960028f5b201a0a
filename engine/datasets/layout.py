"""Where a dataset's images and labels are (:class:`DatasetSpec`: the MaSS13K layout, the
release's ``images_pad/``, or any layout a spec describes), and whether a folder given lies in
a dataset ``engine synth`` or ``engine fuse`` has not finished (:func:`check_folder_finished`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from annotations.fileio import (
    FUSE_RECORD,
    output_kind,
    read_json,
    record_root,
    spec_file,
    split_key,
)
from annotations.taxonomy import MASS13K, Taxonomy
from engine.datasets.listing import IMAGE_EXTS, _list_files, _stem_in, relative_ref, tidy_path
from engine.datasets.state import SYNTH_RECORD, SYNTH_UNFINISHED, FusionState, synth_unfinished
from engine.text import counted

# Where the MaSS13K release (xiechenxi99/MaSS13K@1afadb9, configs/_base_/datasets/mass13k.py)
# keeps images besides images/: its train and val loaders read images_pad/<split>, its
# MaSSFormer config's test loader images_copy/val. Tried in this order.
RELEASE_IMAGE_FOLDERS = ("images_pad", "images_copy")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's images and labels live."""

    root: Path  # folder the templates are relative to
    images: str = "images/{split}"  # image folder template; {split} is replaced by the split name
    labels: str | None = "annotations/{split}"  # label folder template; None: images only
    taxonomy: Taxonomy = MASS13K  # classes of the label maps
    splits: tuple[str, ...] | None = None  # None: every split folder that exists
    image_exts: tuple[str, ...] = IMAGE_EXTS  # image file suffixes, lower case
    # (split, folder relative to root) read instead of the template for that split: a spec's
    # images mapping, or the release's images_pad/<split> (:func:`release_images`)
    split_images: tuple[tuple[str, str], ...] = ()
    # the end of every image's / label's file name, cut off to give its stem (Cityscapes:
    # "_leftImg8bit.png", "_gtFine_labelTrainIds.png"); None: image_exts, and ".png" for labels
    image_suffix: str | None = None
    label_suffix: str | None = None
    recursive: bool = False  # images and labels also in sub-folders (Cityscapes' cities)
    split_list: str | None = None  # file template listing each split's stems (Pascal VOC)
    taxonomy_file: Path | None = None  # the spec's taxonomy file; None: MaSS13K's by default

    def image_dir(self, split: str) -> Path:
        folder = dict(self.split_images).get(split)
        if folder is not None:
            return tidy_path(self.root / folder)
        return tidy_path(self.root / self.images.format(split=split))

    def label_dir(self, split: str) -> Path | None:
        if self.labels is None:
            return None
        return tidy_path(self.root / self.labels.format(split=split))

    def require_labels(self, what: str) -> None:
        """``ValueError`` naming the root when the spec has no labels (``labels: null``) and
        ``what`` (fusion, training) needs them."""
        if self.labels is None:
            raise ValueError(
                f"{self.root}: the dataset has no label maps (its spec sets labels: null); "
                f"{what} needs them"
            )

    def split_list_file(self, split: str) -> Path | None:
        """The file listing ``split``'s stems, when the spec names one (``split_list``)."""
        if self.split_list is None:
            return None
        return tidy_path(self.root / self.split_list.format(split=split))

    def image_stem(self, name: str) -> str | None:
        """The stem of an image file called ``name`` (its label map is ``<stem>.png`` in every
        output), as a split lists it: without ``image_suffix``, else its extension; None when
        the name is no image of this dataset's."""
        return _stem_in(name, self.image_exts, self.image_suffix)

    def list_images(self, folder: Path) -> dict[str, Path]:
        """``stem -> path`` of the images in ``folder`` (its sub-folders too when ``recursive``)."""
        return _list_files(folder, self.image_exts, self.image_suffix, self.recursive)

    def list_labels(self, folder: Path) -> dict[str, Path]:
        """``stem -> path`` of the label maps in ``folder``, as :meth:`list_images`."""
        return _list_files(folder, (".png",), self.label_suffix, self.recursive)

    def available_splits(self) -> list[str]:
        """Splits whose image folder exists, in the spec's order or train/val/test first."""
        if self.splits is not None:
            return [
                s
                for s in self.splits
                if self.image_dir(s).is_dir()
                and (self.split_list is None or self.split_list_file(s).is_file())
            ]
        if self.split_list is not None:
            return self._listed_splits()
        mapped = {s for s, _ in self.split_images if self.image_dir(s).is_dir()}
        if "{split}" not in self.images:
            found = mapped | ({"all"} if self.image_dir("all").is_dir() else set())
            return sorted(found, key=split_key)
        parent = self.root / self.images.split("{split}")[0]
        found = mapped | {
            p.name
            for p in (parent.iterdir() if parent.is_dir() else ())
            if p.is_dir() and not p.name.startswith(".") and self.image_dir(p.name).is_dir()
        }
        return sorted(found, key=split_key)

    def label_only_splits(self) -> dict[str, str]:
        """Splits with label maps but no image folder (an archive of the download not
        extracted yet), each with the problem's line; :meth:`available_splits` leaves them
        out, so ``engine info`` of every split found them clean."""
        if self.labels is None or "{split}" not in self.labels:
            return {}
        names = self.splits
        if names is None:
            parent = self.root / self.labels.split("{split}")[0]
            with contextlib.suppress(OSError):  # no label folder: no such split
                names = tuple(p.name for p in parent.iterdir() if not p.name.startswith("."))
        found = {}
        have = set(self.available_splits())
        for split in sorted(set(names or ()) - have, key=split_key):
            labels = self.label_dir(split)
            # not a folder, unreadable, or two maps of one stem: no label maps said here
            with contextlib.suppress(OSError, ValueError):
                n = len(self.list_labels(labels))  # a Cityscapes' city folders (recursive) too
                if n:
                    looked = [self.image_dir(split)]
                    if self.images == DatasetSpec.images and not dict(self.split_images).get(split):
                        looked += [self.root / f / split for f in RELEASE_IMAGE_FOLDERS]
                    where = [str(f) for f in looked]
                    folders = " or ".join(
                        [", ".join(where[:-1]), where[-1]] if len(where) > 1 else where
                    )
                    found[split] = (
                        f"{labels}: {counted(n, 'label map')} but no images for split {split!r} "
                        f"(no {folders})"
                    )
        return found

    def images_entry(self, relative_to: Path | None = None) -> str | dict[str, str]:
        """The ``images:`` entry that reads these images from ``relative_to`` (absolute paths
        when None): the folder template, or a mapping of each split to its folder when some
        split's images are elsewhere (:attr:`split_images`)."""

        def ref(path: Path) -> str:
            if relative_to is None:
                return os.path.abspath(path)
            return relative_ref(path, relative_to)

        if not self.split_images:
            return ref(self.root / self.images)
        return {s: ref(self.image_dir(s)) for s in self.available_splits()}

    def _listed_splits(self) -> list[str]:
        """The splits a ``split_list`` template names files of (``{split}.txt``: train, val)."""
        if "{split}" not in self.split_list:
            found = self.split_list_file("all").is_file() and self.image_dir("all").is_dir()
            return ["all"] if found else []
        folder, _, name = self.split_list.rpartition("/")
        head, _, tail = name.partition("{split}")
        parent = self.root / folder
        if not parent.is_dir():
            return []
        found = sorted(
            p.name[len(head) : len(p.name) - len(tail)]
            for p in parent.iterdir()
            if p.is_file()
            and len(p.name) > len(head) + len(tail)
            and p.name.startswith(head)
            and p.name.endswith(tail)
            and not p.name.startswith(".")
        )
        return sorted((s for s in found if self.image_dir(s).is_dir()), key=split_key)

    def require_splits(self) -> list[str]:
        """:meth:`available_splits`, or FileNotFoundError naming the root, the layout expected
        and, when the root is one or two folders too deep, the root meant."""
        splits = self.available_splits()
        if not splits:
            example = (
                f", e.g. {self.images.format(split='train')}" if "{split}" in self.images else ""
            )
            raise FileNotFoundError(
                f"{self.root}: no image split folders found (expected {self.images}{example})"
                + self.root_hint()
            )
        return splits

    def root_hint(self) -> str:
        """``"; is the dataset root ROOT?"`` for the end of a "no split here" error when a
        folder one or two levels above ``root`` has split folders: the root a user meant when
        pointing at ``ROOT/images`` or ``ROOT/images/train``; else ``""``. A fused dataset's
        images are its source's (``images: ../../data/images/{split}``, relative to it), so
        moving one of the two loses them: its hint names the source fusion recorded instead.
        A folder in a synth or fused dataset (``F/labels/val``, ``D/new_classes/bicycle/val``:
        :func:`datasets_above`) is told the dataset it lies in and its state: finished,
        written now or stopped (before, ``engine info F/labels/val`` named a fused dataset
        without its state, and a synth dataset's folder three down not at all)."""
        if (self.root / FUSE_RECORD).is_file():
            return self._fused_hint()
        above = next(datasets_above(self.root), None)
        if above and above.where and not self._in_output(above.root):
            if stopped := above.unfinished:
                return f"; {above.where}: {stopped[0]}: {stopped[1]}"
            return f"; {above.where}, finished ({above.record}): is the dataset root {above.root}?"
        for up in (self.root.parent, self.root.parent.parent):
            if up != self.root and self._at(up).available_splits():
                return f"; is the dataset root {up}?"
        if below := self._roots_below():  # one level too high: the release's data/mass13k
            return f"; is the dataset root {' or '.join(str(p) for p in below)}?"
        # an output of the engine given where a dataset is expected: say what it is
        kind = output_kind(self.root)
        if kind is None:
            for up in (self.root.parent, self.root.parent.parent):  # its labels/, masks/
                if up != self.root and (within := output_kind(up)) is not None:
                    return f"; {self.root} is a folder inside {up}, {within[1]}"
            if self.root.is_dir() and not any(self.root.iterdir()):
                return "; the folder is empty"
            return ""
        record, what = kind
        try:
            info = read_json(self.root / record, record)
            config = info.get("config") or {}
            data = info.get("data") or config.get("data")
            # typed in the folder the command ran in: named as found from here, as other hints
            # (before the fiftieth round "its dataset: data", from another folder no dataset)
            out = info.get("out") or config.get("out")
            # and where it resolved then, as read_run_info and Subset.data_root read it
            resolved = info.get("data_resolved") or config.get("data_resolved")
            data = record_root(info, data, resolved, (out, self.root)) if data else None
        except (ValueError, AttributeError, TypeError):
            data = None  # a record without a dataset (or not JSON: metrics.jsonl)
        return f"; {self.root} is {what}, not a dataset" + (
            f" (its dataset: {data})" if data else ""
        )

    def _in_output(self, top: Path) -> bool:
        """Whether the root, or a folder above it below ``top`` (the dataset it lies in), is
        an engine output (a label run kept in the dataset's folder): named as that, nearer.
        Compared where each leads (``top`` is absolute, maybe through links: :func:`engine.
        runlock.places`): before, a root given relative (``F/labels/val``) never met ``top``
        and ``F`` itself, a fused dataset, was taken for the output it lay in."""
        end = os.path.realpath(top)
        for up in (self.root, *self.root.parents[:2]):
            if os.path.realpath(up) == end:
                return False
            if output_kind(up) is not None:
                return True
        return False

    def _at(self, root: Path) -> DatasetSpec:
        """This spec at another root, with the release's image folders found there when it
        reads the MaSS13K layout (:func:`release_images`)."""
        if self.images != DatasetSpec.images or self.labels != DatasetSpec.labels:
            return replace(self, root=root)
        return replace(self, root=root, split_images=release_images(root))

    def _roots_below(self) -> list[Path]:
        """The folders in ``root`` (the first 1,000 entries, at most three named) that are
        dataset roots of this layout: a root given one level too high (``data/mass13k`` for
        the release's ``data/mass13k/msem``)."""
        import itertools

        try:
            entries = sorted(itertools.islice(self.root.iterdir(), 1_000))
        except OSError:
            return []
        found = [
            p
            for p in entries
            if p.is_dir() and not p.name.startswith(".") and self._at(p).available_splits()
        ]
        return found[:3]

    def fusion_state(self) -> FusionState:
        """What ``fuse.json`` and the root's lock say of this dataset's fusion, each read once:
        one source for the "no label" hint (:meth:`unfinished_fusion`), the readers' refusal
        (:meth:`check_not_stopped`) and ``engine info``. The lock is probed only where there is
        a record (:func:`engine.runlock.writer`): one that says complete too, as an ``engine
        fuse`` into the dataset again holds the lock while it plans, and throughout when nothing
        is left to fuse, before it writes ``running`` (before, engine info said such a dataset
        "No problems found." while it was written)."""
        record = self.fuse_record()
        if record is None:
            return FusionState(record, None)
        from engine.runlock import writer

        return FusionState(record, writer(self.root))

    def unfinished_fusion(self) -> str:
        """:attr:`FusionState.hint` of this dataset: ``"; ..."`` for the end of a "no label"
        error about a fused dataset whose fusion did not finish; ``""`` for any other."""
        return self.fusion_state().hint

    def unfinished_synth(self) -> tuple[str, str, bool] | None:
        """A dataset ``engine synth`` has not finished (its ``synth.partial.json``): what is
        unfinished and what to do, as two phrases, and whether it stopped (no process writes it
        now, which its lock tells: :func:`engine.runlock.writer`); None for any other. Each
        folder the spec reads is asked (:meth:`_read_folders`), and one other than the root is
        named: a fused dataset reads its source's images (``images: ../data/images/{split}``),
        as a ``dataset.yaml`` view over a synth folder does; before, only the root was."""
        for folder in self._read_folders():
            where = "" if folder == self.root else f"{folder} (read by this dataset): "
            if stopped := synth_unfinished(folder, where):
                return stopped
        return None

    def _read_folders(self) -> list[Path]:
        """The root, then each split's image and label folder and the two folders above them
        (a dataset's root in the usual layout, ``ROOT/images/<split>``), each folder once."""
        splits: list[str] = list(self.splits or ())
        if not splits:
            with contextlib.suppress(OSError, ValueError):  # unreadable: the root alone
                splits = self.available_splits()
        found, seen = [self.root], {self.root.resolve()}
        dirs = [d for s in splits for d in (self.image_dir(s), self.label_dir(s)) if d]
        for folder in (f for d in dirs for f in (d, d.parent, d.parent.parent)):
            if (key := folder.resolve()) not in seen:
                seen.add(key)
                found.append(folder)
        return found

    def check_finished(self, command: str) -> None:
        """Refuse, in one line naming the folder, a dataset that a process writes now
        (:func:`engine.runlock.check_not_being_written`: ``engine synth``, ``engine fuse``) or
        that ``engine synth`` or ``engine fuse`` stopped half way (:meth:`check_not_stopped`):
        read now, its scenes so far passed for the dataset (``engine label`` labelled them,
        exit 0, and ``engine info`` said "No problems found.")."""
        from engine.runlock import check_not_being_written

        check_not_being_written(self.root, command, "the dataset")
        self.check_not_stopped(command)

    def check_not_stopped(self, command: str) -> FusionState:
        """:meth:`check_finished`'s refusal of a dataset ``engine synth`` draws now or stopped
        half way (:meth:`unfinished_synth`), or whose fusion did not finish
        (:attr:`FusionState.unfinished`), without the lock check of the root: for a reader that
        may hold the folder's lock itself (``engine annotate import`` into a subset there), and
        for ``engine report``/``engine compare`` given a fused dataset. Returns the fusion's
        state it read, for the caller's next question of it
        (:func:`~engine.datasets.fused.check_fused_finished`)."""
        if stopped := self.unfinished_synth():
            raise ValueError(
                f"{self.root}: {stopped[0]}; {command} would read part of the dataset: "
                f"{stopped[1]}, then run {command} again"
            )
        # a fusion killed (or writing now) before fuse.json said done: killed part way, its
        # labels may be part this fusion's, part an earlier one's of other settings; killed
        # after the last label, its counts and report are unwritten; the same fuse command
        # finishes it (at once in the second case)
        fusion = self.fusion_state()
        if stopped := fusion.unfinished:
            remedy, then = stopped[1], command
            if command == "engine fuse":  # a fusion of it: which fuse command is which
                # (before, "run the same engine fuse command again ..., then run engine fuse
                # again", as if one command)
                remedy = remedy.replace(
                    "the same engine fuse command", "the engine fuse command that wrote it"
                )
                then = "this one"
            raise ValueError(
                f"{self.root}: {stopped[0]}; {command} would read a dataset fused part way: "
                f"{remedy}, then run {then} again"
            )
        return fusion

    def fuse_record(self) -> dict | None:
        """The fused dataset's ``fuse.json``; None for another dataset, or one unreadable or
        not a JSON object (the hints that read it then say what is known without it)."""
        if not (self.root / FUSE_RECORD).is_file():
            return None
        try:
            record = read_json(self.root / FUSE_RECORD, "fusion record")
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _fused_hint(self) -> str:
        """``root_hint`` of a fused dataset: where its ``images:`` entry is, and the dataset it
        was fused from (``fuse.json``)."""
        found = spec_file(self.root)
        inputs = (self.fuse_record() or {}).get("inputs")
        inputs = inputs if isinstance(inputs, dict) else {}  # not the fusion's: say what is known
        source, images = inputs.get("data"), inputs.get("images")
        entry = f"the images: entry of {found.name}" if found else "its images entry"
        return (
            "; it is a fused dataset (engine fuse)"
            + (f" of {source} (its {FUSE_RECORD})" if source else "")
            + f", whose images it reads through {entry}, relative to this folder; if either was "
            + "moved, set that entry to "
            + (_flow(images) if images else "that dataset's image folders")
        )


def _flow(entry: object) -> str:
    """An ``images:`` entry as one line of YAML: the template, or ``{train: A, test: B}``."""
    if isinstance(entry, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in entry.items()) + "}"
    return str(entry)


def check_folder_finished(
    folder: str | os.PathLike, command: str, fusion: FusionState | None = None
) -> None:
    """Refuse, in one line naming the dataset, a folder given by itself that lies in a dataset
    ``engine synth`` draws now or stopped half way (``engine evaluate --gt D/annotations/test``,
    ``engine compare --gt D/new_classes/bicycle/test``, ``engine predict --images
    D/images/test``), or in a fused dataset whose fusion did not finish (``fuse.json`` says
    running: ``engine evaluate --gt F/labels/val``, ``engine compare --source a=F/labels/val``)
    or that an ``engine fuse`` into it again holds (:attr:`FusionState.in_progress`), as
    :meth:`DatasetSpec.check_finished` refuses the dataset given as one: before, the part
    drawn or fused was read without a word (a fused dataset's folders until a review of the
    fifty-fourth round). The folder (or file) and the three folders above it are asked, the
    deepest a synth dataset writes being three down, as given and as its symbolic links lead
    (:func:`engine.runlock.places`; before, only the folders above the path as typed were: a
    link to ``D/annotations/test``, or ``D/images/test/../test``, was read unchecked).
    ``fusion``: the state of the fused dataset ``folder`` is, read already
    (:func:`~engine.datasets.fused.check_fused_finished`'s), not read again."""
    for above in datasets_above(folder, fusion):
        if (stopped := above.unfinished) is None:
            continue
        part = "part of the dataset" if above.what == "dataset" else "a dataset fused part way"
        where = f"{above.where}: " if above.where else ""
        raise ValueError(
            f"{folder}: {where}{stopped[0]}; {command} would read {part}: "
            f"{stopped[1]}, then run {command} again"
        )


@dataclass(frozen=True)
class DatasetAbove:
    """A synth or fused dataset a folder given by itself is, or lies in (:func:`datasets_above`)."""

    root: Path
    what: str  # "dataset" (engine synth's) or "fused dataset"
    where: str  # "it lies in the dataset ROOT" (through links: said so), "" for ROOT itself
    # :func:`~engine.datasets.state._unfinished`'s answer; None: finished
    unfinished: tuple[str, str, bool] | None
    record: str  # the record that says it: "synth.json", "fuse.json: status complete"


def datasets_above(
    folder: str | os.PathLike, fusion: FusionState | None = None
) -> Iterator[DatasetAbove]:
    """Each dataset ``engine synth`` or ``engine fuse`` wrote (its ``synth.json`` or
    ``synth.partial.json``, its ``fuse.json``) that ``folder`` (or a file) is or lies in,
    nearest first: the folder and the three folders above it, the deepest a synth dataset
    writes being three down, as given and as its symbolic links lead
    (:func:`engine.runlock.places`). :func:`check_folder_finished` refuses an unfinished one;
    ``engine info`` names the first, with its state. ``fusion``: ``folder``'s own fusion
    state, read already, taken for the folder in each place (before, its ``fuse.json`` was
    read again; given through a link, again where the link leads)."""
    from engine.runlock import places

    for here, via in places(Path(folder)):
        for root in (here, *here.parents[:3]):
            if stopped := synth_unfinished(root):
                what, record = "dataset", SYNTH_UNFINISHED
            elif (root / SYNTH_RECORD).is_file():
                what, record = "dataset", SYNTH_RECORD
            elif (
                state := fusion
                if fusion is not None and root == here
                else DatasetSpec(root=root).fusion_state()
            ).record is not None:
                # in_progress: an engine fuse into a finished one again is its writer too
                what, stopped = "fused dataset", state.in_progress
                record = f"{FUSE_RECORD}: status {state.record.get('status')}"
            else:
                continue
            if root != here:
                where = f"it lies{via} in the {what} {root}"
            else:  # the dataset itself, or its folder (or file) given through a link
                where = f"it is{via} the {what} {root}" if via else ""
            yield DatasetAbove(root, what, where, stopped, record)


def release_images(root: Path) -> tuple[tuple[str, str], ...]:
    """``(split, folder)`` for each split whose images the MaSS13K release keeps in
    ``images_pad/<split>`` or ``images_copy/<split>`` (:data:`RELEASE_IMAGE_FOLDERS`, first
    found) while ``images/<split>`` is missing: the release's train and val images, as its
    configs read them. Before, such a root showed its test split alone, without a word."""
    found: dict[str, str] = {}
    for folder in RELEASE_IMAGE_FOLDERS:
        with contextlib.suppress(OSError):  # no such folder, or unreadable: nothing there
            for p in (root / folder).iterdir():
                if (
                    p.is_dir()
                    and not p.name.startswith(".")
                    and not (root / "images" / p.name).is_dir()
                ):
                    found.setdefault(p.name, f"{folder}/{p.name}")
    return tuple(sorted(found.items(), key=lambda item: split_key(item[0])))
