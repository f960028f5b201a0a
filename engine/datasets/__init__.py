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

One module a part, lowest first:

- ``state``: what ``engine synth`` and ``engine fuse`` leave in a dataset, and its state;
- ``listing``: a split's files listed and matched by stem, near misses named, paths as
  records write them;
- ``images``: images and label maps decoded and measured (Pillow's limits, EXIF orientation);
- ``layout``: :class:`DatasetSpec` (where a split's images and labels are) and the check of an
  unfinished dataset above a folder (:func:`check_folder_finished`);
- ``spec``: :func:`load_spec`, a spec file read and its mistakes named, split lists;
- ``samples``: :class:`SegDataset`, a split read lazily, and :func:`check_sample`;
- ``subsets``: an annotated subset checked against its dataset (masks edited, photos replaced);
- ``fused``: a fused dataset's source maps, its fusion checked, the subset it fused as
  corrections.
"""

from annotations.fileio import split_key  # engine.info reads it from here
from engine.datasets.fused import (
    FUSION_CHAIN_LIMIT,
    SOURCE_IGNORED,
    SOURCE_NAMES,
    SOURCE_PRECISE,
    SOURCE_PSEUDO,
    check_carried_sources,
    check_fused_finished,
    fused_as_corrections,
    read_source_map,
    source_dir,
)
from engine.datasets.images import (
    decoded_size,
    exif_orientation,
    image_size,
    label_size,
    load_image,
    size_mismatch,
    turned_hint,
)
from engine.datasets.layout import (
    RELEASE_IMAGE_FOLDERS,
    DatasetAbove,
    DatasetSpec,
    check_folder_finished,
    datasets_above,
    release_images,
)
from engine.datasets.listing import (
    IMAGE_EXTS,
    _walk,
    label_dir_found,
    listed_file,
    relative_ref,
    tidy_path,
)
from engine.datasets.samples import (
    Problem,
    Sample,
    SegDataset,
    check_sample,
    new_class_truth,
    open_split,
    read_sample_label,
)
from engine.datasets.spec import _SPEC_KEYS, load_spec, not_found, read_split_list
from engine.datasets.state import SYNTH_RECORD, SYNTH_UNFINISHED, FusionState, synth_unfinished
from engine.datasets.subsets import edited_masks_line, replaced_subset_photos

__all__ = [
    "DatasetAbove",
    "DatasetSpec",
    "FUSION_CHAIN_LIMIT",
    "FusionState",
    "IMAGE_EXTS",
    "Problem",
    "RELEASE_IMAGE_FOLDERS",
    "SOURCE_IGNORED",
    "SOURCE_NAMES",
    "SOURCE_PRECISE",
    "SOURCE_PSEUDO",
    "SYNTH_RECORD",
    "SYNTH_UNFINISHED",
    "Sample",
    "SegDataset",
    "_SPEC_KEYS",
    "_walk",
    "check_carried_sources",
    "check_folder_finished",
    "check_fused_finished",
    "check_sample",
    "datasets_above",
    "decoded_size",
    "edited_masks_line",
    "exif_orientation",
    "fused_as_corrections",
    "image_size",
    "label_dir_found",
    "label_size",
    "listed_file",
    "load_image",
    "load_spec",
    "new_class_truth",
    "not_found",
    "open_split",
    "read_sample_label",
    "read_source_map",
    "read_split_list",
    "relative_ref",
    "release_images",
    "replaced_subset_photos",
    "size_mismatch",
    "source_dir",
    "split_key",
    "synth_unfinished",
    "tidy_path",
    "turned_hint",
]
