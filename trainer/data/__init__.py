"""Training data: samples of a MaSS13K-layout or fused dataset, augmented, in a seeded stream.

A fused dataset (``engine fuse``) is a folder with ``dataset.yaml`` + ``taxonomy.json`` and a
source map per image at ``<root>/sources/<split>/<stem>.png`` (0 precise, 1 pseudo, 2 set to
ignore by fusion). A dataset whose taxonomy has new classes must have them (or be trained with
``all_precise``); a plain MaSS13K-layout dataset needs none: every pixel counts as precise.

Augmentation (DESIGN section 4, mmsegmentation order): random short-side resize, random crop with
a maximum one-class share (optionally centred on a new class's pixel), horizontal flip,
photometric distortion.

Determinism: :class:`StreamSampler` yields ``(index, (seed, epoch, position))`` keys; every random
draw of a sample's augmentation comes from ``numpy.random.default_rng(key)``. A sample therefore
depends only on the seed and its position in the stream, not on workers or prefetching, and a
resumed run restarts the stream at the exact position it stopped at.

The package's modules: ``augment`` (a sample's augmentation and its settings),
``dataset`` (:class:`TrainSet`: the split's samples read and augmented) and ``loader`` (the
seeded stream and its DataLoader).
"""

from trainer.data.augment import (
    AugmentConfig,
    augment,
    crop_box,
    photometric_distortion,
    random_resize,
)
from trainer.data.dataset import SKIP_LIMIT, TrainSet, rare_new_classes, to_device
from trainer.data.loader import (
    PREFETCH_FACTOR,
    StreamSampler,
    make_loader,
    seed_worker,
    shm_shortfall,
)

__all__ = [
    "AugmentConfig",
    "PREFETCH_FACTOR",
    "SKIP_LIMIT",
    "StreamSampler",
    "TrainSet",
    "augment",
    "crop_box",
    "make_loader",
    "photometric_distortion",
    "random_resize",
    "rare_new_classes",
    "seed_worker",
    "shm_shortfall",
    "to_device",
]
