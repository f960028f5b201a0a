"""``engine predict``: label every image of a folder (or of a dataset's split) with a trained
checkpoint.

Output folder::

    <stem>.png          (H, W) uint8 label map at the image's original size
    color/<stem>.png    colour preview blended over the image (with ``color=True``)
    predict.json        the resolved config, checkpoint step, taxonomy and environment, and
                        the images that failed (``failed``: image and reason); ``status``
                        is ``running`` until every image was tried (then ``finished``),
                        ``image_count`` how many images the run labels, ``image_bytes``
                        each image's file size by stem, ``warnings`` what the latest call
                        printed (absent when none)

The inference size defaults to ``"auto"``: the size the checkpoint's training validated at
(``engine train --val-size``, in the checkpoint's ``config``), else the release's 4096x3072 (a
converted release checkpoint records no training). A model trained on small images is then
not run on them upsampled to 4K; predict.json records the size used and where it came from.

Images whose label PNG already exists are skipped (resumable), unless ``overwrite`` or the
image's file is no longer the size ``predict.json`` records (``image_bytes``: replaced under the
same name since, :func:`changed_images`); resuming
with other settings than the folder's predict.json records (checkpoint, size, inference mode,
test-time augmentation, guided filter) is refused before anything is written, so one folder
never mixes label maps made two ways; ``overwrite`` with other settings replaces the earlier
label maps, and is refused where some would stay (:func:`replaced_files`). ``out`` must be a folder of predictions (or new): the
images' own folder and a folder of PNG files without ``predict.json`` are refused
(:func:`check_out`). One bad
image (unreadable, smaller than the model's 32 px minimum, out of memory) fails alone: it is
listed in :attr:`PredictResult.failed` with a one-line reason and its neighbours are labelled.

The package's modules, from the entry point down: ``run`` (:func:`predict_dir`: the lock,
the model, the record, the images labelled), ``record`` (``predict.json`` and what a rerun
compares with it), ``inputs`` (the images to label, the output folder checked) and
``config`` (:class:`PredictConfig`, :class:`PredictResult`, the ``auto`` size).
"""

from trainer.predict.config import AUTO, RELEASE_SIZE, PredictConfig, PredictResult, inference_size
from trainer.predict.inputs import (
    check_not_image_folder,
    check_out,
    check_stems,
    given_folders,
    input_images,
    list_images,
    other_files,
    stem_of,
)
from trainer.predict.record import (
    changed_images,
    check_same_split,
    differences,
    earlier_failures,
    image_sizes,
    left_out_note,
    recorded_sizes,
    replaced_files,
    resume_refused,
    trained_on,
)
from trainer.predict.run import predict_dir, size_refusal

__all__ = [
    "AUTO",
    "PredictConfig",
    "PredictResult",
    "RELEASE_SIZE",
    "changed_images",
    "check_not_image_folder",
    "check_out",
    "check_same_split",
    "check_stems",
    "differences",
    "earlier_failures",
    "given_folders",
    "image_sizes",
    "inference_size",
    "input_images",
    "left_out_note",
    "list_images",
    "other_files",
    "predict_dir",
    "recorded_sizes",
    "replaced_files",
    "resume_refused",
    "size_refusal",
    "stem_of",
    "trained_on",
]
