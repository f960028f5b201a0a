"""Datasets of images with dense label maps: the MaSS13K layout or any layout a spec describes.

A dataset is read lazily: constructing one lists file names only, and images and labels are
decoded one at a time. Order is deterministic (sorted by stem).

MaSS13K layout::

    ROOT/images/{train,val,test}/*.jpg
    ROOT/annotations/{train,val,test}/*.png      (matched to images by file stem)

Other layouts are described by a YAML or JSON spec (``dataset.yaml`` in the root, or a file
passed instead of the root)::

    images: images_pad/{split}        # folder template, relative to the spec's folder
    labels: annotations/{split}       # optional; null for an unlabelled image set
    taxonomy: taxonomy.json           # optional; MaSS13K's 7 classes by default
    splits: [train, val, test]        # optional; by default every folder that exists
    image_suffix: _leftImg8bit.png    # optional: names end so, the rest is the stem
    label_suffix: _gtFine_labelTrainIds.png   # optional; default .png
    recursive: true                   # optional: sub-folders too (Cityscapes' cities)
    split_list: ImageSets/Segmentation/{split}.txt   # optional: a split is its listed stems

``images`` may also name each split's folder (``{train: images_pad/train, test: images/test}``).
The authors' release keeps some splits' images in ``images_pad/`` or ``images_copy/`` instead
of ``images/`` (its configs read ``images_pad/{train,val}`` and ``images/test``): a root
without a spec reads a split from there when ``images/<split>`` is missing
(:func:`release_images`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from annotations.fileio import (
    FUSE_RECORD,
    UNREADABLE,
    did_you_mean,
    file_bytes,
    first_line,
    fused_source,
    output_kind,
    read_json,
    read_yaml,
    record_root,
    spec_file,
    split_key,
    unexpanded,
)
from annotations.labelmap import PIL_ERRORS, from_pillow, read_label
from annotations.subset import Subset
from annotations.taxonomy import MASS13K, Taxonomy, class_folder
from engine.text import counted, few

# what engine synth writes while it has not finished (engine.synth.writer.UNFINISHED)
SYNTH_UNFINISHED = "synth.partial.json"
SYNTH_RECORD = "synth.json"  # a finished synth's record (engine.synth.writer.RECORD)

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
# Where the MaSS13K release (xiechenxi99/MaSS13K@1afadb9, configs/_base_/datasets/mass13k.py)
# keeps images besides images/: its train and val loaders read images_pad/<split>, its
# MaSSFormer config's test loader images_copy/val. Tried in this order.
RELEASE_IMAGE_FOLDERS = ("images_pad", "images_copy")
_SPEC_KEYS = {
    "images",
    "labels",
    "taxonomy",
    "splits",
    "image_exts",
    "image_suffix",
    "label_suffix",
    "recursive",
    "split_list",
}

# 4K photos are far below Pillow's decompression-bomb limit, but 64 MP inputs are not. Pillow
# refuses an image of over twice this (600 MP: DecompressionBombError, named with its file by
# every reader, PIL_ERRORS) and only warns between the two, in a line naming no file, once per
# image: that warning is not shown (the image is read, as any other).
Image.MAX_IMAGE_PIXELS = 300_000_000
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# A photo's damaged EXIF block (a camera's or editor's, common in the wild) made Pillow print
# "TiffImagePlugin.py:982: UserWarning: Corrupt EXIF data. ..." and the line of its source,
# naming no file, in every command that read one. Pillow reads what it can of the block and
# every command takes the orientation it finds, the same one: nothing to act on. Set once
# here, not around each read: ``warnings.catch_warnings`` is not safe in the labeler's decoding
# threads.
warnings.filterwarnings(
    "ignore", r"(Corrupt EXIF data|Metadata Warning)", UserWarning, r"PIL\.TiffImagePlugin"
)

# A palette PNG or GIF with a transparent colour ("tRNS" bytes, as an editor's export or a
# screenshot tool writes it) made Pillow's convert("RGB") in load_image warn "Palette images
# with Transparency expressed in bytes should be converted to RGBA images", naming no file; under
# ``python -W error`` the warning was an exception and the command stopped with Pillow's
# traceback. A photo's RGB drops the transparency, as it drops an RGBA photo's alpha: nothing
# to act on.
warnings.filterwarnings(
    "ignore", "Palette images with Transparency expressed in bytes", UserWarning, r"PIL\.Image"
)


def relative_ref(path: Path, folder: Path) -> str:
    """``path`` as a file in ``folder`` names it (a spec's entry): relative to it, with ``/``
    (a spec written on Windows reads anywhere); absolute on another drive (Windows), and where
    the relative path leads elsewhere: ``..`` out of a folder reached through a symbolic link
    goes up from the link's target (``runs -> /scratch/runs``: a fused dataset in
    ``runs/fused/b`` wrote ``images: ../../../data/images/{split}``, read as
    ``/scratch/data/images/...``, and every command on it said "no image split folders found")."""
    path = path.absolute()
    try:
        rel = os.path.relpath(path, folder.absolute())
    except ValueError:  # another drive on Windows
        return str(path)
    if os.path.realpath(folder.absolute() / rel) != os.path.realpath(path):
        return str(path)
    return Path(rel).as_posix()


def tidy_path(path: Path) -> Path:
    """``path`` with ``.`` and ``DIR/..`` folded away when that names the same folder: a fused
    dataset's images (``images: ../../../data/images/{split}``) are then named in messages as
    ``data/images/train/x.jpg``, not ``runs/fused/bicycle/../../../data/images/train/x.jpg``.
    Kept as given where folding would change its meaning (a symlinked folder before ``..``).
    A path that does not exist (a split asked for that the dataset lacks) is its folder's tidy
    path and its name: ``data/images/nope``, not ``runs/fused/../data/images/nope``."""
    tidy = Path(os.path.normpath(path))
    if ".." not in path.parts or tidy == path:
        return tidy  # without "..", normpath only drops "." and doubled separators
    try:
        return tidy if os.path.samefile(tidy, path) else path
    except OSError:
        if path.name in ("", ".", ".."):
            return path
        parent = tidy_path(path.parent)
        return path if parent == path.parent else parent / path.name


def _unfinished(what: str, holder: str | None, stopped: str, command: str) -> tuple[str, str, bool]:
    """An output a command has not finished, as readers and ``engine info`` say it: what is
    unfinished and what to do, as two phrases, and whether it stopped. ``holder`` (the process
    writing it now, :func:`engine.runlock.writer`) follows ``what``: wait for it; without one,
    ``stopped`` says it: the same ``command`` finishes it."""
    if holder:
        return f"{what}{holder} is writing it now", "wait for it to finish", False
    return stopped, f"run the same {command} command again to finish it (it resumes)", True


@dataclass(frozen=True)
class FusionState:
    """A dataset's fusion as its ``fuse.json`` and lock said it when read
    (:meth:`DatasetSpec.fusion_state`)."""

    record: dict | None  # fuse.json; None for another dataset, or one unreadable
    writer: str | None  # the process writing it now (its lock is held; asked where fuse.json is)

    @property
    def unfinished(self) -> tuple[str, str, bool] | None:
        """A fusion ``fuse.json`` says did not finish (``running``): stopped, or running now,
        which its lock tells apart, as :func:`_unfinished` says it; None for any other."""
        if (self.record or {}).get("status") != "running":
            return None
        state = f"its fusion did not finish ({FUSE_RECORD}: status running)"
        stopped = f"{state} and no process writes it now (stopped)"
        return _unfinished(f"{state}: ", self.writer, stopped, "engine fuse")

    @property
    def in_progress(self) -> tuple[str, str, bool] | None:
        """:attr:`unfinished`, or, where ``fuse.json`` says the fusion finished, an ``engine
        fuse`` into the dataset again that holds its lock (planning, removing orphan labels,
        before it writes ``running``): what a reader of one of its folders given by itself is
        told (:func:`check_folder_finished`), as the dataset given as one is refused by its
        lock. Before, such a folder was read while the fusion wrote it."""
        if self.unfinished or not self.writer:
            return self.unfinished
        return _unfinished("", self.writer, "", "engine fuse")

    @property
    def hint(self) -> str:
        """``"; ..."`` for the end of a "no label" error about a fused dataset whose fusion
        did not finish (:attr:`unfinished`) or failed some images (``incomplete``): its labels
        are missing for that reason, and the same ``engine fuse`` command writes them; ``""``
        for any other dataset."""
        if stopped := self.unfinished:
            return f"; {stopped[0]}: {stopped[1]}"
        if (self.record or {}).get("status") == "incomplete":
            return (
                f"; fusion failed on some images ({FUSE_RECORD} lists them, with why): mend "
                "those files and run the same engine fuse command again"
            )
        return ""


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
        state it read, for the caller's next question of it (:func:`check_fused_finished`)."""
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


def _unquoted_split(path: Path, error: str = "") -> str:
    """The hint for a YAML value that starts with ``{split}`` unquoted, which YAML reads as a
    mapping (``images: {split}`` is ``{'split': None}``; ``{split}/photos`` does not parse).
    Comment lines are skipped and a value's `` # comment`` left out; where ``error`` (YAML's
    message) names a line, only that line is read: a parse error elsewhere gets no hint."""
    if path.suffix == ".json":
        return ""
    at = re.findall(r"\bat line (\d+), column \d+", error)[-1:]  # YAML's, after the path
    with contextlib.suppress(OSError, UnicodeError):
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("#") or (at and number != int(at[0])):
                continue
            key, sep, value = line.partition(":")
            value = re.split(r"\s#", value, maxsplit=1)[0].strip()  # YAML: " #" starts a comment
            if sep and value.startswith("{split}"):
                key = key.strip()
                return f"; quote the value: {key}: '{value}' (unquoted, YAML reads {{...}} as a mapping)"
    return ""


def synth_unfinished(folder: Path, where: str = "") -> tuple[str, str, bool] | None:
    """:meth:`DatasetSpec.unfinished_synth`'s answer for the one folder ``folder``, each phrase
    of what is unfinished led by ``where``; None where no ``synth.partial.json`` is."""
    from engine.runlock import writer

    if not (folder / SYNTH_UNFINISHED).is_file():
        return None
    holder = writer(folder)
    if not holder and not (folder / SYNTH_UNFINISHED).is_file():
        return None  # synth finished since: unlinks it under its lock, then frees the lock
        # (before, said "stopped")
    stopped = (
        f"{where}its engine synth stopped before its last scene ({SYNTH_UNFINISHED}) "
        "and no process writes it now"
    )
    return _unfinished(where, holder, stopped, "engine synth")


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
    (:func:`check_fused_finished`'s), not read again."""
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
    unfinished: tuple[str, str, bool] | None  # :func:`_unfinished`'s answer; None: finished
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


def check_fused_finished(folder: str | os.PathLike, command: str) -> FusionState | None:
    """Refuse a fused dataset given to be scored (``engine compare --source``, ``engine report
    --fused``) whose fusion did not finish (:meth:`DatasetSpec.check_not_stopped`): before,
    both scored the dataset ``engine info`` calls unfinished (exit 1) and ``engine train``
    refuses. Another dataset is not asked; then the folder is given to
    :func:`check_folder_finished` (``F/labels/val`` of a fusion stopped, a folder in a synth
    dataset), with the fusion's state read here, not read again. Returns that state (None
    for a folder that is no fused dataset), which :func:`fused_as_corrections` takes rather
    than reading ``fuse.json`` again."""
    fusion = None
    if (Path(folder) / FUSE_RECORD).is_file():
        try:
            spec = load_spec(folder)
        except (OSError, ValueError):  # no dataset to ask: its label maps are read as given
            spec = None
        if spec is not None:
            fusion = spec.check_not_stopped(command)
    check_folder_finished(folder, command, fusion)
    return fusion


def load_spec(path: str | os.PathLike) -> DatasetSpec:
    """A dataset spec from a root folder (MaSS13K layout unless it holds ``dataset.yaml``) or a spec file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(not_found(path, "dataset root"))
    if path.is_dir():
        found = spec_file(path)
        if found is None:
            return DatasetSpec(root=path, split_images=release_images(path))
        return _read_spec_file(found)
    return _read_spec_file(path)


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


def not_found(path: Path, what: str = "") -> str:
    """``"PATH: WHAT not found"`` for a path that is not there, with what to do: a ``~`` the
    shell left as typed, else a near miss of its name in its folder (:func:`_near_miss`)."""
    said = f"{path}: {what} not found" if what else f"{path}: not found"
    return f"{said}; {unexpanded(path)}" if path.parts[:1] == ("~",) else said + _near_miss(path)


def _near_miss(path: Path) -> str:
    """``"; did you mean PARENT/NAME?"`` for a path not found whose folder holds a near miss of
    its name (``runs/label/bicyle`` for ``runs/label/bicycle``), else ``""``."""
    import difflib
    import itertools

    try:
        names = [p.name for p in itertools.islice(path.parent.iterdir(), 10_000)]
    except OSError:  # its folder is not there either
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return f"; did you mean {path.parent / close[0]}?" if close else ""


# keys of other tools' dataset configs (mmsegmentation's), and what a spec writes instead
_CONVERT = "convert the label maps first (docs/foundation.md, 'Other datasets')"
_OTHER_TOOLS = {
    "img_suffix": "write image_suffix",
    "seg_map_suffix": "write label_suffix",
    "img_dir": "write images (a folder template such as images/{split})",
    "ann_dir": "write labels (a folder template such as annotations/{split})",
    "ann_file": "write split_list (a file template such as ImageSets/Segmentation/{split}.txt)",
    "data_root": "paths are relative to the spec's folder: put dataset.yaml in the root",
    "reduce_zero_label": "label maps are read as they are (0 is a class, 255 ignore): list "
    f"value 0 as a class of the taxonomy, or {_CONVERT}",
    "ignore_index": f"255 is ignore in every label map: {_CONVERT}",
    "label_map": f"label maps hold the taxonomy's ids: {_CONVERT}",
}
_EXAMPLES = {
    "image_suffix": "_leftImg8bit.png",
    "label_suffix": "_gtFine_labelTrainIds.png",
    "split_list": "ImageSets/Segmentation/{split}.txt",
}


# files written for people, never a dataset spec: named, not parsed as YAML
_TEXT_FOR_PEOPLE = {
    ".md": "a Markdown",
    ".markdown": "a Markdown",
    ".html": "an HTML",
    ".htm": "an HTML",
}


def _read_spec_file(path: Path) -> DatasetSpec:
    if path.suffix.lower() in IMAGE_EXTS:  # an image or label map: read as YAML, "not UTF-8"
        root, meant = path.parent.parent.parent, ""  # ROOT/images/<split>/x.jpg
        with contextlib.suppress(ValueError, OSError):  # a root with a spec of its own
            meant = (
                f": give its dataset's root, {root}" if load_spec(root).available_splits() else ""
            )
        raise ValueError(f"{path}: an image file, not a dataset's root or spec{meant}")
    if path.suffix.lower() in (".pt", ".pth"):
        raise ValueError(
            f"{path}: a checkpoint (for engine predict and engine train --init), not a dataset's "
            "root or spec"
        )
    if path.suffix.lower() in _TEXT_FOR_PEOPLE:  # an engine compare --markdown table, a page:
        # before, read as YAML ("cannot parse YAML (expected a comment ...)")
        raise ValueError(
            f"{path}: {_TEXT_FOR_PEOPLE[path.suffix.lower()]} file, not a dataset's root or "
            "spec (a YAML or JSON file)"
        )
    read = read_json if path.suffix == ".json" else read_yaml
    try:
        data = read(path, "dataset spec")
    except ValueError as e:  # `images: {split}/photos`: YAML's flow mapping, cut short
        raise ValueError(f"{e}{_unquoted_split(path, str(e))}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a dataset spec must be a mapping with keys {sorted(_SPEC_KEYS)}")
    unknown = set(data) - _SPEC_KEYS
    for key in sorted(unknown & set(_OTHER_TOOLS)):  # an mmsegmentation config's names
        raise ValueError(f"{path}: {key!r} is not a dataset spec key: {_OTHER_TOOLS[key]}")
    if unknown:
        hint = did_you_mean(unknown, _SPEC_KEYS)
        raise ValueError(
            f"{path}: unknown keys {sorted(unknown)}{hint}; allowed: {sorted(_SPEC_KEYS)}"
        )
    root = path.parent
    # a spec written on Windows (`images: images\{split}`): its backslashes are separators, as
    # everywhere else a user names an image; before, no folder 'images\train' was found
    data = {k: _posix(v) for k, v in data.items()}
    images = data.get("images", "images/{split}")
    labels = data.get("labels", "annotations/{split}")
    split_images: tuple[tuple[str, str], ...] = ()
    if isinstance(images, dict):  # each split's folder: {train: images_pad/train, ...}
        if not images or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in images.items()
        ):
            raise ValueError(
                f"{path}: 'images' must be a folder template such as 'images/{{split}}' or a "
                f"mapping of splits to folders such as {{train: images_pad/train}}, got {images!r}"
                + _unquoted_split(path)
            )
        split_images = tuple(images.items())
        images = "images/{split}"
        data.setdefault("splits", [s for s, _ in split_images])
    for key, value, nullable in (("images", images, False), ("labels", labels, True)):
        if not (isinstance(value, str) and value) and not (nullable and value is None):
            raise ValueError(
                f"{path}: '{key}' must be a folder template such as '{key}/{{split}}'"
                f"{' or null' if nullable else ''}, got {value!r}" + _unquoted_split(path)
            )
    taxonomy, taxonomy_file = MASS13K, None
    if data.get("taxonomy"):
        taxonomy_file = root / str(data["taxonomy"])
        taxonomy = Taxonomy.load(taxonomy_file)
    splits = data.get("splits")
    if splits is not None and not (
        isinstance(splits, list) and splits and all(isinstance(v, str) for v in splits)
    ):
        raise ValueError(
            f"{path}: 'splits' must be a list of names such as [train, val], got {splits!r}"
        )
    exts = data.get("image_exts", list(IMAGE_EXTS))
    if not (isinstance(exts, list) and exts and all(isinstance(e, str) for e in exts)):
        raise ValueError(f"{path}: 'image_exts' must be a list such as [.jpg, .png], got {exts!r}")
    suffixes = {}
    for key in ("image_suffix", "label_suffix", "split_list"):
        value = data.get(key)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise ValueError(
                f"{path}: '{key}' must be text such as '{_EXAMPLES[key]}', got {value!r}"
            )
        suffixes[key] = value
    if suffixes["image_suffix"] is not None and "image_exts" in data:
        raise ValueError(
            f"{path}: give image_suffix or image_exts, not both (image_suffix names the end of "
            "every image's name, its extension too)"
        )
    if suffixes["label_suffix"] is not None and not suffixes["label_suffix"].lower().endswith(
        ".png"
    ):
        raise ValueError(
            f"{path}: 'label_suffix' must end in .png (label maps are read from PNG files), got "
            f"{suffixes['label_suffix']!r}"
        )
    recursive = data.get("recursive", False)
    if not isinstance(recursive, bool):
        raise ValueError(f"{path}: 'recursive' must be true or false, got {recursive!r}")
    return DatasetSpec(
        root=root,
        image_suffix=suffixes["image_suffix"],
        label_suffix=suffixes["label_suffix"],
        recursive=recursive,
        split_list=suffixes["split_list"],
        images=images,
        labels=labels,
        taxonomy=taxonomy,
        taxonomy_file=taxonomy_file,
        splits=None if splits is None else tuple(splits),
        image_exts=tuple(e.lower() if e.startswith(".") else f".{e}".lower() for e in exts),
        split_images=split_images,
    )


def read_split_list(
    path: Path, spec: DatasetSpec, available: dict[str, Path] | None = None
) -> list[str]:
    """The stems a split list names, one a line, in its order, each once (Pascal VOC's
    ``ImageSets/Segmentation/train.txt``; a line may also be a path, ``JPEGImages/a.jpg
    SegmentationClass/a.png`` as DeepLab's lists are: its first word's file name, without the
    image suffix, is the stem).

    A line names its image as a user writes it, the first reading that is one of the split's
    ``available`` images (``stem -> path``) winning: the whole line (``my photo``, a name with
    spaces), the line as a shell reads it (``"my photo"``, ``'it'\\''s'``, ``my\\ photo``), or its
    first word, a backslash a folder separator (``JPEGImages\\a.jpg``). Before the forty-ninth
    round only the first word was read: ``my photo`` listed ``my``, and the split was refused
    for an image ``my`` it does not hold. A line naming no image: its first word where the
    line is DeepLab's two paths, else the whole line (or as the shell reads it)."""
    from annotations.fileio import read_text

    def stem_in(text: str, windows: bool) -> str:
        name = (text.replace("\\", "/") if windows else text).rsplit("/", 1)[-1]
        return spec.image_stem(name) or name  # a bare stem (VOC's lines) as it is

    stems: dict[str, None] = {}
    for line in read_text(path, "split list").splitlines():
        line, words = line.strip(), line.split()
        if not words or words[0].startswith("#"):
            continue
        shell = _shell_words(line)
        deeplab = len(words) == 2 and words[1].lower().endswith(".png")  # image, then label
        # DeepLab's two paths name the image first: read before the whole line, whose last
        # part is the label's file (``images/a.png labels/a_mask.png`` listed a_mask where
        # the split holds an image of that name)
        paths = deeplab and ("/" in words[1] or "\\" in words[1])  # the label in a folder
        readings = [words[0], line, *shell[:1]] if paths else [line, *shell[:1]]
        found = next(
            (
                stem
                for text in readings
                for stem in (stem_in(text, False), stem_in(text, True))
                if available is not None and stem in available
            ),
            None,
        )
        if found is None:  # no image: as the old reading, else as the line reads
            first = stem_in(words[0], True)
            if (
                available is None
                or first in available
                or deeplab
                or (len(words) == 1 and not shell)
            ):
                found = first
            else:
                found = stem_in(shell[0] if len(shell) == 1 else line, False)
        stems[found] = None
    if not stems:
        raise ValueError(f"{path}: the split list names no image")
    return list(stems)


def _shell_words(line: str) -> list[str]:
    """``line`` split as a POSIX shell does (quotes, backslash escapes), where it has quotes or
    a backslash before a space; ``[]`` otherwise or where it does not parse (an unclosed
    quote: ``it's``, read as it is)."""
    import shlex

    if not any(c in line for c in "'\"") and "\\ " not in line:
        return []
    try:
        return shlex.split(line)
    except ValueError:
        return []


@dataclass(frozen=True)
class Sample:
    """One image of a split, with its label file when the dataset has labels."""

    stem: str
    image_path: Path
    label_path: Path | None


@dataclass(frozen=True)
class Problem:
    """Something wrong with one sample of a dataset, as found by :meth:`SegDataset.check`."""

    stem: str  # the sample's file stem
    message: str  # one line, starting with the offending file's path

    def __str__(self) -> str:
        return self.message


def listed_file(path: Path, exts: tuple[str, ...]) -> bool:
    """Whether ``path``, an entry of a folder of images or labels, is one of its files: not
    hidden (the ``._a.jpg`` a macOS copy puts beside each image), with a suffix of ``exts`` in
    any case, and a file or a symbolic link whose target is gone, listed so that its image
    fails naming the link (left out, the image vanished, or its label was reported as having
    no image)."""
    if path.name.startswith(".") or path.suffix.lower() not in exts:
        return False
    return path.is_file() or (path.is_symlink() and not path.exists())


def _missing_file(path: Path) -> FileNotFoundError:
    """The error for an image file ``path`` that is not there: a broken link says where it
    points."""
    if path.is_symlink():
        return FileNotFoundError(f"{path}: broken symbolic link (to {os.readlink(path)})")
    return FileNotFoundError(f"{path}: image file not found")


def _folders_named(folder: Path, stems: list[str], exts: tuple[str, ...]) -> str:
    """``"; FOLDER/a.jpg is a folder, not a file"`` for the end of a "no image" / "no label"
    error when folders of those stems with a suffix the dataset reads are there (a folder is no
    file, so it is not listed, and the error said only that the file was missing); else ``""``."""
    if not folder.is_dir():  # a label folder a stopped fusion has not written yet
        return ""
    wanted = set(stems)
    found = sorted(
        p.name
        for p in folder.iterdir()
        if p.stem in wanted and p.suffix.lower() in exts and p.is_dir()
    )
    if not found:
        return ""
    one = len(found) == 1
    return (
        f"; {folder / found[0] if one else folder} "
        + ("is a folder" if one else f"holds folders named {few(found, 3, total=True)}")
        + (", not a file" if one else ", not files")
    )


def _case_twins(folder: Path, stems: list[str], unpaired: dict[str, Path]) -> str:
    """``"; FOLDER holds IMG_1.png, ...: names that differ from theirs in case only"`` for the
    end of a "no label" / "no image" error when files of the other folder left ``unpaired``
    (``stem -> path``) differ from ``stems`` only in case (a dataset made where file names
    ignore case, on macOS or Windows: images and labels are paired by their exact stem);
    else ``""``."""
    lower = {s.lower() for s in stems}
    found = sorted(p.name for s, p in unpaired.items() if s.lower() in lower)
    if not found:
        return ""
    return (
        f"; {folder} holds {few(found, 3, total=True)}: names that differ from theirs in case "
        "only (images and labels are paired by their exact names)"
    )


def _other_suffixes(
    folder: Path, stems: list[str], exts: tuple[str, ...], labels: bool = False
) -> str:
    """``"; FOLDER holds a.webp, b.tif: ..."`` for the end of a "no image for N labels" error
    (``labels``: "no label for N images") when files of those stems are there with suffixes
    the dataset does not read; else ``""``."""
    if not folder.is_dir():
        return ""
    wanted = set(stems)
    found = sorted(
        p.name
        for p in folder.iterdir()
        if p.stem in wanted and not p.name.startswith(".") and p.suffix.lower() not in exts
    )
    if not found:
        return ""
    if labels:  # label maps are PNGs: no spec key reads another suffix
        return (
            f"; {folder} holds {few(found, 3, total=True)}: label maps are read from .png "
            "files only (save them as PNGs)"
        )
    return (
        f"; {folder} holds {few(found, 3, total=True)}, whose suffix the dataset does not read "
        f"({' '.join(exts)}): list it in image_exts of a dataset spec (docs/foundation.md)"
    )


def _walk(folder: Path) -> list[Path]:
    """Every entry under ``folder`` and its sub-folders, hidden ones (``.git``) left out, sorted.
    Symbolic links to folders are followed (a city's folder linked from elsewhere), but one to a
    folder that holds it (``city/up -> ..``), or to a folder the walk came through (two links,
    ``a/x -> ../b`` and ``b/y -> ../a``), is refused naming it: followed, the walk went round
    the loop until the path was too long (40 links), and the error listed the same images 40
    deep (``several files share a stem: city/up/city/a.jpg, ...``)."""
    found = []
    for top, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for d in dirs:
            if os.path.islink(link := os.path.join(top, d)) and (back := _leads_back(link, folder)):
                what = (
                    "a folder that holds it"
                    if back == top
                    else f"a folder it is reached through ({back})"
                )
                raise ValueError(
                    f"{link}: a symbolic link to {os.readlink(link)}, {what}: the sub-folders "
                    "would be read round in a loop; remove the link"
                )
        found += [Path(top) / n for n in names]
    return sorted(found)


def _leads_back(link: str, root: Path) -> str | None:
    """The folder on the walk from ``root`` to the symbolic link ``link`` (its own folder first,
    then up to ``root``) that the folder ``link`` leads to is, or holds; None where there is
    none: a loop, followed."""
    target = os.path.realpath(link)
    parts = Path(link).parent.relative_to(root).parts
    for n in range(len(parts), -1, -1):
        if _holds(target, os.path.realpath(here := os.path.join(root, *parts[:n]))):
            return here
    return None


def _holds(outer: str, inner: str) -> bool:
    """Whether the folder ``outer`` is ``inner`` or holds it (both real paths); not where they
    are on different drives (Windows: ``os.path.commonpath`` raised ValueError)."""
    try:
        return os.path.commonpath([outer, inner]) == outer
    except ValueError:
        return False


def _posix(value: object) -> object:
    """A spec's value with a backslash read as a folder separator: a string, or the strings of
    a mapping (each split's folder); anything else as it is (checked where it is read)."""
    if isinstance(value, str):
        return value.replace("\\", "/")
    if isinstance(value, dict):
        return {k: v.replace("\\", "/") if isinstance(v, str) else v for k, v in value.items()}
    return value


def _stem_in(name: str, exts: tuple[str, ...], suffix: str | None) -> str | None:
    """The stem of the file name ``name`` as a spec reads it: without ``suffix`` where it ends
    so (case-insensitive: Cityscapes' ``a_leftImg8bit.png`` is ``a``), else without one of
    ``exts``; None when the name is neither."""
    if suffix is not None:
        if len(name) > len(suffix) and name.lower().endswith(suffix.lower()):
            return name[: -len(suffix)]
        return None
    return Path(name).stem if Path(name).suffix.lower() in exts else None


def _list_files(
    folder: Path, exts: tuple[str, ...], suffix: str | None = None, recursive: bool = False
) -> dict[str, Path]:
    """``stem -> path`` of the files of ``folder`` with a suffix of ``exts`` (the stem: the name
    without it), or whose names end with ``suffix`` (the stem: the name without ``suffix``)."""
    files: dict[str, Path] = {}
    dupes: list[str] = []
    for p in _walk(folder) if recursive else sorted(folder.iterdir()):
        stem = _stem_in(p.name, exts, suffix)
        if stem is None or not listed_file(p, exts if suffix is None else (p.suffix.lower(),)):
            continue
        if stem in files:
            dupes.append(str(p.relative_to(folder)) if recursive else p.name)
        files[stem] = p
    if dupes:
        raise ValueError(f"{folder}: several files share a stem: {', '.join(dupes[:5])}")
    return files


def label_dir_found(label_dir: Path | None) -> bool:
    """Whether a split's label folder is there (or the dataset has none to find)."""
    return label_dir is None or label_dir.is_dir()


@dataclass
class SegDataset:
    """The samples of one split, listed eagerly (names only) and decoded lazily."""

    spec: DatasetSpec
    split: str
    require_labels: bool = True  # False: images without labels are allowed (label_path None)
    # True: images without labels and labels without images do not raise; they are left out of
    # ``samples`` and reported by :meth:`check` (what ``engine info`` uses to list every problem).
    lenient: bool = False
    samples: list[Sample] = field(init=False)
    pairing_problems: list[Problem] = field(init=False)  # unpaired files found (lenient only)

    def __post_init__(self) -> None:
        image_dir = self.spec.image_dir(self.split)
        if not image_dir.is_dir():
            # No split at all: the root's error (it names the root given, not a joined path
            # such as ROOT/images/images/train, and the root meant when it is one level off).
            have = self.spec.require_splits()
            raise FileNotFoundError(
                f"{image_dir}: split {self.split!r} not found; available splits: " + ", ".join(have)
            )
        images = self.spec.list_images(image_dir)
        if not images and (deeper := self._in_subfolders(image_dir, self.spec.list_images)):
            # Cityscapes' leftImg8bit/train/<city>/: an empty split, and no word said
            raise FileNotFoundError(f"{image_dir}: no image in the folder, but its {deeper}")
        listed = self.spec.split_list_file(self.split)
        if listed is not None:  # Pascal VOC: the split is the stems its list names
            stems = read_split_list(listed, self.spec, images)
            missing = [s for s in stems if s not in images]
            if missing:
                raise FileNotFoundError(
                    f"{listed}: no image in {image_dir} for {counted(len(missing), 'stem')} "
                    f"it lists: {few(missing, 5, total=True)}"
                )
            images = {s: images[s] for s in stems}
        label_dir = self.spec.label_dir(self.split)
        labels: dict[str, Path] = {}
        problems: list[Problem] = []
        # a fusion stopped before this split: its images have no label yet, as those of a
        # split it stopped in (engine info lists them, exit 1, rather than an error, exit 2)
        stopped = self.lenient and not label_dir_found(label_dir) and self.spec.unfinished_fusion()
        if label_dir is not None and (self.require_labels or label_dir.is_dir()):
            if not label_dir.is_dir() and not stopped:
                raise FileNotFoundError(
                    f"{label_dir}: label folder for split {self.split!r} not found"
                    + self.spec.unfinished_fusion()
                )
            labels = {} if stopped else self.spec.list_labels(label_dir)
            if listed is not None:  # labels of other splits' images are no strays
                labels = {s: p for s, p in labels.items() if s in images}
            unlabelled = sorted(set(images) - set(labels))
            no_label = unlabelled if self.require_labels else []
            no_image = sorted(set(labels) - set(images))
            if no_label:
                problems.append(
                    Problem(
                        no_label[0],
                        f"{image_dir}: no label in {label_dir} for "
                        f"{counted(len(no_label), 'image')}: {few(no_label, 5, total=True)}"
                        + _folders_named(label_dir, no_label, (".png",))
                        + _case_twins(label_dir, no_label, {s: labels[s] for s in no_image})
                        + _other_suffixes(label_dir, no_label, (".png",), labels=True)
                        + (
                            f"; {label_dir}'s {deeper}"
                            if not labels
                            and (deeper := self._in_subfolders(label_dir, self.spec.list_labels))
                            else ""
                        )
                        + self.spec.unfinished_fusion(),
                    )
                )
            if no_image:
                problems.append(
                    Problem(
                        no_image[0],
                        f"{label_dir}: no image in {image_dir} for "
                        f"{counted(len(no_image), 'label')}: {few(no_image, 5, total=True)}"
                        + _folders_named(image_dir, no_image, self.spec.image_exts)
                        + _case_twins(image_dir, no_image, {s: images[s] for s in unlabelled})
                        + _other_suffixes(image_dir, no_image, self.spec.image_exts),
                    )
                )
        if problems and not self.lenient:
            raise ValueError(problems[0].message)
        self.pairing_problems = problems
        need_label = self.require_labels and label_dir is not None  # lenient: unpaired left out
        stems = sorted(s for s in images if s in labels or not need_label)
        self.samples = [Sample(s, images[s], labels.get(s)) for s in stems]

    def _in_subfolders(self, folder: Path, listing: Callable[[Path], dict[str, Path]]) -> str:
        """``"sub-folders hold some (a/, b/): add recursive: true ..."`` when ``folder``'s
        sub-folders hold files ``listing`` finds and the spec does not read them, else ``""``."""
        if self.spec.recursive or not folder.is_dir():
            return ""
        subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        held = [p.name + "/" for p in subs[:50] if listing(p)]
        if not held:
            return ""
        return (
            f"sub-folders hold some ({few(held, 3, total=True)}): add recursive: "
            "true to the dataset spec (docs/foundation.md)"
        )

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    @property
    def taxonomy(self) -> Taxonomy:
        return self.spec.taxonomy

    def load_image(self, sample: Sample) -> np.ndarray:
        return load_image(sample.image_path)

    def load_label(self, sample: Sample, image_size: tuple[int, int] | None = None) -> np.ndarray:
        """The sample's label map, validated against the taxonomy and, if given, the image's (W, H)."""
        return read_sample_label(sample, self.spec.taxonomy, image_size)

    def load_pair(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """``(image HWC uint8 RGB, label HW uint8)``, checked to be the same size."""
        image = self.load_image(sample)
        return image, self.load_label(sample, (image.shape[1], image.shape[0]))

    def check(
        self,
        decode: bool = True,
        progress: Callable[[], object] | None = None,
    ) -> list[Problem]:
        """Every problem of the split, not only the first: unpaired files (when ``lenient``),
        unreadable or truncated images, unreadable labels, bad label values, size mismatches.

        Args:
            decode: decode every image (finds truncated data); False reads headers only (fast).
            progress: optional callable invoked once per sample (for progress bars).
        """
        problems: list[Problem] = list(self.pairing_problems)
        for sample in self.samples:
            problems += check_sample(sample, self.spec.taxonomy, decode)[0]
            if progress is not None:
                progress()
        return problems


def new_class_truth(root: Path, class_name: str, split: str) -> Path:
    """A dataset's new-class truth folder ``ROOT/new_classes/<class>/<split>`` (binary masks,
    as engine synth writes them): the folder spelled as the class, else lower-cased (synth's),
    else any folder naming the same class (:func:`annotations.taxonomy.class_key`: ``Car/``
    for ``car``); the lower-cased path when there is none."""
    base = root / "new_classes"
    return base / class_folder(base, class_name) / split


def read_sample_label(
    sample: Sample, taxonomy: Taxonomy, size: tuple[int, int] | None = None
) -> np.ndarray:
    """``sample``'s label map, validated against ``taxonomy`` and, if given, the image's
    ``size`` (W, H)."""
    if sample.label_path is None:
        raise ValueError(f"{sample.image_path}: this sample has no label file")
    label = read_label(sample.label_path, taxonomy)
    if size is not None and (label.shape[1], label.shape[0]) != tuple(size):
        raise ValueError(
            size_mismatch(sample.label_path, label.shape, sample.image_path, size, short=True)
        )
    return label


def size_mismatch(
    label_path: Path,
    shape: tuple[int, int],
    image_path: Path,
    size: tuple[int, int],
    short: bool = False,
) -> str:
    """The error of a label map of ``shape`` (H, W) whose image is ``size`` (W, H) after its
    EXIF orientation, naming the image by its file name when ``short``. A label of the image's
    size as stored, which its EXIF orientation turns, is said to be one: a tool that ignores
    EXIF draws labels on the stored pixels, and "its image is 4032x3024" alone contradicts
    what the file's header shows (3024x4032). The header is read only for such a label."""
    h, w = shape
    msg = (
        f"{label_path}: label is {w}x{h} but its image "
        f"{image_path.name if short else image_path} is {size[0]}x{size[1]}"
    )
    if (w, h) != (size[1], size[0]) or w == h:
        return msg
    return msg + turned_hint(exif_orientation(image_path), (w, h), "label maps")


def exif_orientation(path: Path) -> int:
    """The EXIF orientation of the image at ``path`` (1, upright, when it has none or cannot be
    read): 5 to 8 turn it a quarter, swapping its width and height."""
    try:
        with Image.open(path) as img:
            return _orientation(img)
    except (OSError, SyntaxError, ValueError, TypeError, Image.DecompressionBombError):
        return 1


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation of an opened image, as ``ImageOps.exif_transpose`` takes it: 1
    without one, or when the tag is none of 1 to 8 (which it leaves as it is). One reading
    for every command: the sizes :func:`_oriented_size` gives are those :func:`load_image`
    decodes."""
    value = img.getexif().get(0x0112, 1)
    try:  # a dict lookup, as exif_transpose's: 6, 6.0 and the rational 6/1 are 6; "6" is none
        turn = _ORIENTATIONS.get(value, 1)
    except TypeError:  # unhashable
        return 1
    return 1 if turn != 1 and _from_xmp(img) else turn


def _from_xmp(img: Image.Image) -> bool:
    """Whether the orientation Pillow found is not an EXIF one (a JPEG's or WebP's EXIF block, a
    PNG's eXIf chunk, a TIFF's own tag) but its XMP packet's ``tiff:Orientation`` or ImageMagick's
    ``Raw profile type exif`` PNG text: Pillow turns such a photo, but OpenCV (the release's
    ``LoadImageFromFile``) and a browser (Label Studio draws the file as it does) show it as
    stored, so the engine turned it alone, and its labels and exported annotations were in
    another frame. A TIFF's is taken wherever it is (its own tag or XMP's, tag 700): Pillow's
    TIFF reader turns the pixels itself as it decodes them."""
    if hasattr(img, "tag_v2"):
        return False
    raw = img.info.get("exif")
    if raw is None:
        return True
    exif = Image.Exif()
    exif.load(raw)
    return 0x0112 not in exif


_ORIENTATIONS = {k: k for k in range(1, 9)}


def turned_hint(turn: int, stored: tuple[int, int], what: str) -> str:
    """The end of a size error for ``what`` (label maps, masks) of the ``stored`` (W, H) size
    of an image whose EXIF orientation ``turn`` swaps it; ``""`` for another orientation."""
    if turn not in (5, 6, 7, 8):
        return ""
    return (
        f" (its EXIF orientation {turn} turns the {stored[0]}x{stored[1]} pixels it stores): "
        f"{what} follow the image as displayed, as every engine command reads it, and this one "
        "fits the pixels as stored (drawn with a tool that ignores EXIF?)"
    )


# What a fused dataset's source map says of each pixel (engine fuse writes them, training reads
# them): its value, and its name for reports.
SOURCE_PRECISE = 0  # the fused pixel is the precise label (255s of the precise label included)
SOURCE_PSEUDO = 1  # the fused pixel is a new class, taken from its pseudo label
SOURCE_IGNORED = 2  # fusion set the pixel to 255 (uncertain pseudo pixel, tie between classes)
SOURCE_NAMES = ("precise", "pseudo", "ignored by fusion")  # by value


def source_dir(spec: DatasetSpec, split: str) -> Path:
    """Where a fused dataset keeps ``split``'s source maps: ``<root>/sources/<split>``."""
    return spec.root / "sources" / split


def read_source_map(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """The source map at ``path`` (0 precise, 1 pseudo, 2 ignored by fusion), checked against
    its label's ``shape`` (H, W); ``ValueError`` / ``FileNotFoundError`` naming the file (a
    missing one as a source map: it read "label file not found")."""
    try:
        source = read_label(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: source map not found") from None
    if source.shape != tuple(shape):
        raise ValueError(
            f"{path}: source map is {source.shape[1]}x{source.shape[0]}, "
            f"label is {shape[1]}x{shape[0]}"
        )
    if source.size and int(source.max()) >= len(SOURCE_NAMES):
        raise ValueError(f"{path}: source values must be 0, 1 or 2, found {int(source.max())}")
    return source


def check_carried_sources(data: SegDataset, sources: Path) -> None:
    """Refuse a fused dataset whose source maps mark the pixels of a class fused before as
    precise: a class fused onto a fused dataset (``fuse.json`` fused Car, the taxonomy also
    holds Bicycle) by an engine from before fusion carried the input's source maps over wrote
    Bicycle's pseudo and ignored pixels as precise (0), and training took its pseudo labels for
    precise ones. Fusion writes a new class's pixels as pseudo, so one such pixel is the old
    fusion's mark; the first image holding those classes decides (a few reads), and a dataset
    fused in one call, or without a record, reads none. ``ValueError`` naming the file."""
    record = data.spec.fuse_record() or {}  # none, or not one to read: nothing says how
    try:
        fused = {p.get("class") for p in record["inputs"]["pseudo"] if isinstance(p, dict)}
    except (KeyError, TypeError):  # JSON values; .get only on dicts (no AttributeError)
        return
    before = [c for c in data.taxonomy if c.parent is not None and c.name not in fused]
    if not fused or not before:
        return
    ids = [c.id for c in before]
    for sample in data.samples:
        path = sources / f"{sample.stem}.png"
        try:
            label = read_sample_label(sample, data.taxonomy)
            source = read_source_map(path, label.shape)
        except UNREADABLE:
            continue  # training names the file when it gets there
        held = np.isin(label, ids)
        if not held.any():
            continue
        if (source[held] == SOURCE_PRECISE).any():
            names = ", ".join(c.name for c in before)
            raise ValueError(
                f"{path}: {names} pixels are marked precise: {data.spec.root} was fused onto a "
                f"fused dataset ({record['inputs'].get('data')}) by an engine from before "
                f"fusion carried its source maps over, so training would take the pseudo "
                f"labels of {names} for precise ones; run the same engine fuse command again "
                "(it fuses every image anew), and train again what was trained on it"
            )
        return


def check_sample(
    sample: Sample, taxonomy: Taxonomy, decode: bool = True
) -> tuple[list[Problem], tuple[int, int] | None, np.ndarray | None]:
    """One sample's problems (image, then label: the label is checked even when its image is
    broken) and what could be read: ``(problems, (W, H) or None, label or None)``. A function
    of the sample and the taxonomy alone, so that worker processes can run it."""
    problems: list[Problem] = []
    size: tuple[int, int] | None = None
    label: np.ndarray | None = None
    try:
        size = decoded_size(sample.image_path) if decode else image_size(sample.image_path)
    except UNREADABLE as e:
        problems.append(Problem(sample.stem, first_line(e)))
    if sample.label_path is not None:
        try:
            label = read_sample_label(sample, taxonomy, size)
        except UNREADABLE as e:
            problems.append(Problem(sample.stem, first_line(e)))
    return problems, size, label


@contextlib.contextmanager
def _decoded(path: str | os.PathLike) -> Iterator[Image.Image]:
    """The image at ``path`` with all of its data decoded: a truncated file raises.

    Raises ``FileNotFoundError``, or ``ValueError`` naming the file when it is unreadable or
    truncated (also for a decoding error inside the ``with`` block)."""
    path = Path(path)
    if not path.is_file():
        raise _missing_file(path)
    if path.stat().st_size == 0:  # PIL would say "cannot identify image file"
        raise ValueError(f"{path}: the file is empty (expected an image)")
    try:
        with Image.open(path) as img:
            img.load()  # raises on truncated data
            yield img
    except PIL_ERRORS as e:
        if not from_pillow(e, path):
            raise
        raise ValueError(f"{path}: cannot decode image ({e})") from None


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    """``(W, H)`` of an opened image after its EXIF orientation. Pillow's TIFF reader turns a
    TIFF by its orientation itself (its size at opening is already the turned one, its pixels
    turned when loaded): swapped again, such a TIFF's header size was the stored one, and
    ``engine fuse`` refused its label as drawn on the stored pixels, which ``engine info``
    (decoding it) accepted."""
    w, h = img.size
    if _orientation(img) not in (5, 6, 7, 8) or _turned_by_pillow(img):
        return (w, h)
    return (h, w)


def _turned_by_pillow(img: Image.Image) -> bool:
    """Whether Pillow gives an opened image's size already turned by its orientation: a TIFF
    whose width and height tags are its size swapped (Pillow 13's TIFF reader; earlier ones
    gave the stored size, as for every other format)."""
    tags = getattr(img, "tag_v2", None)
    if tags is None:
        return False
    return (tags.get(256), tags.get(257)) == img.size[::-1] != img.size


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file into ``(H, W, 3) uint8`` RGB with its EXIF orientation applied.

    Raises ``ValueError`` naming the file when it is unreadable or truncated.
    """
    with _decoded(path) as img:
        # exif_transpose and convert("RGB") each return a copy when they have nothing to do
        # (72 MB of copies of a 4032x3024 photo, 0.2-0.3 s): called only when they do something
        if _orientation(img) in _TRANSPOSED:
            img = ImageOps.exif_transpose(img)
        if img.mode.startswith("I"):  # 16-bit greyscale ("I;16"; "I" from some PNGs): keep the
            return _grey16_to_rgb8(np.asarray(img))  # high byte, as Pillow does for 48-bit RGB
        return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


_TRANSPOSED = (2, 3, 4, 5, 6, 7, 8)  # EXIF orientations that ImageOps.exif_transpose turns


def _grey16_to_rgb8(grey: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8`` from a 16-bit greyscale array: its high byte. Pillow's own
    ``convert("RGB")`` clips such values at 255, which turns a 16-bit photo almost white. A
    32-bit ("I") array whose values all fit in 8 bits is taken as it is."""
    grey = grey.astype(np.int64)
    if grey.max(initial=0) > 255:
        grey = grey >> 8
    g8 = np.clip(grey, 0, 255).astype(np.uint8)
    return np.repeat(g8[..., None], 3, axis=2)


def decoded_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(W, H)`` of an image after EXIF orientation, found by decoding all of its data (so a
    truncated file raises, as in :func:`load_image`) without converting or copying the pixels.

    Raises ``ValueError`` naming the file when it is unreadable or truncated.
    """
    with _decoded(path) as img:
        return _oriented_size(img)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(W, H)`` of an image after EXIF orientation, read from the header without decoding."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return _oriented_size(img)
    except PIL_ERRORS as e:
        if not path.is_file():  # checked only here: this runs once per image
            raise _missing_file(path) from None
        if path.stat().st_size == 0:  # as _decoded says it (PIL: "cannot identify image file")
            raise ValueError(f"{path}: the file is empty (expected an image)") from None
        raise ValueError(f"{path}: cannot read image header ({e})") from None


def label_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(W, H)`` of a label map or mask PNG from its header, as stored: label maps are read
    without any EXIF orientation (:func:`~annotations.labelmap.read_label`), so one that holds
    its photo's EXIF block (an editor that copies it) is of its stored size, not turned as
    :func:`image_size` turns an image. ``ValueError`` naming the file when it cannot be read."""
    try:
        with Image.open(path) as img:
            return img.size
    except PIL_ERRORS as e:
        raise ValueError(f"{path}: cannot read label header ({first_line(e)})") from None


def open_split(
    data: str | os.PathLike, split: str, require_labels: bool = True, lenient: bool = False
) -> SegDataset:
    """Shortcut: the ``split`` of the dataset at ``data`` (root folder or spec file)."""
    return SegDataset(load_spec(data), split, require_labels=require_labels, lenient=lenient)


def edited_masks_line(sub: Subset, edited: list[str], used: str) -> str:
    """The one warning line for masks of ``sub`` edited after the import (other pixel counts
    than ``subset.json`` records: :func:`annotations.subset.edited_since_import`), ``used``
    (fused, scored) as they are now; ``engine info SUBSET`` calls them problems. Said by
    ``engine fuse --corrections``; before the fiftieth round ``engine report`` and ``engine
    compare`` scored such masks without a word."""
    return (
        f"{sub.root}: {counted(len(edited), 'mask')} edited after the import (other pixel counts "
        f"than subset.json records: {few(edited, total=True)}): {used} as "
        f"{'it is' if len(edited) == 1 else 'they are'} now"
    )


def replaced_subset_photos(
    sub: Subset, images: dict[str, Path] | None = None, folder: Path | None = None
) -> str | None:
    """A warning when photos of an annotated subset are not the files its masks were drawn on:
    their file (``images``: stem -> path in ``folder``; by default the subset's split of
    ``sub.data_root``) is now another size than ``subset.json``'s ``image_bytes`` records (a
    photo replaced under the same name). Scored against such masks, a model or pseudo labels of
    the new photo count the old photo's objects (before, silently). None when none changed, or
    nothing can be compared (a subset imported before the sizes were recorded, or its dataset
    not found from here)."""
    was = sub.info.get("image_bytes")
    if not isinstance(was, dict):
        return None
    if images is None:
        root = sub.data_root
        if root is None or not root.is_dir():
            return None
        try:
            data = SegDataset(load_spec(root), sub.split, require_labels=False, lenient=True)
        except (OSError, ValueError):
            return None  # the dataset's own problem: engine info on it names it
        images = {s.stem: s.image_path for s in data.samples}
        folder = data.spec.image_dir(sub.split)
    changed = [
        stem
        for stem in sub.stems
        if isinstance(was.get(stem), int)
        and (now := file_bytes(images.get(stem))) is not None
        and now != was[stem]
    ]
    if not changed:
        return None
    return (
        f"{folder}: {counted(len(changed), 'photo')} of the annotated subset {sub.root} changed "
        f"since its masks were imported ({few(changed)}: another file size): the masks may not "
        "fit them; annotate them again"
    )


# fusions followed back through the datasets each was fused from (a class added one after
# another makes a chain; a record naming itself would loop)
FUSION_CHAIN_LIMIT = 16


def fused_as_corrections(
    spec: DatasetSpec, subset: Path, fusion: FusionState | None = None
) -> Path | None:
    """The ``fuse.json`` that fused the subset at ``subset`` as corrections into the dataset
    ``spec`` (``engine fuse --corrections``; the fusion chain followed back through the
    dataset each was fused from, Car fused onto Bicycle's dataset, found as
    :func:`annotations.fileio.fused_source` finds it: beside the fused one where the two moved
    or were copied together), matched by the subset's resolved path or its ``subset.json``'s
    hash (a subset moved since). None when none did, or nothing is recorded. ``fusion``:
    ``spec``'s fusion state, read already (:func:`check_fused_finished`'s)."""
    try:
        digest = hashlib.sha256((subset / "subset.json").read_bytes()).hexdigest()
    except OSError:
        digest = None
    here, record = spec.root, (fusion.record if fusion is not None else spec.fuse_record())
    for _ in range(FUSION_CHAIN_LIMIT):
        inputs = (record or {}).get("inputs")
        if not isinstance(inputs, dict):
            return None
        for c in inputs.get("corrections") or ():
            if not isinstance(c, dict):
                continue
            at = c.get("path_resolved")
            if (digest is not None and c.get("subset_json_sha256") == digest) or (
                isinstance(at, str) and Path(at).resolve() == subset.resolve()
            ):
                return Path(here) / FUSE_RECORD
        # the dataset it was fused from, where it is now: before the forty-sixth round the
        # absolute path recorded, so a project moved (mv) lost the chain there and a copy
        # followed the original's
        if (found := fused_source(record, here)) is None:
            return None
        here = found
        record = DatasetSpec(root=here).fuse_record()
    return None
