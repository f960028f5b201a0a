"""A split of a dataset read lazily (:class:`SegDataset`: its :class:`Sample` pairs listed, one
image and label decoded at a time) and each pair checked (:func:`check_sample`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotations.fileio import UNREADABLE, first_line
from annotations.labelmap import read_label
from annotations.taxonomy import Taxonomy, class_folder
from engine.datasets.images import decoded_size, image_size, load_image, size_mismatch
from engine.datasets.layout import DatasetSpec
from engine.datasets.listing import _case_twins, _folders_named, _other_suffixes, label_dir_found
from engine.datasets.spec import load_spec, read_split_list
from engine.text import counted, few


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


def open_split(
    data: str | os.PathLike, split: str, require_labels: bool = True, lenient: bool = False
) -> SegDataset:
    """Shortcut: the ``split`` of the dataset at ``data`` (root folder or spec file)."""
    return SegDataset(load_spec(data), split, require_labels=require_labels, lenient=lenient)
