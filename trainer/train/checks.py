"""The checks a run makes of its options and data before it writes anything: the
validation split and size, the crop, the device and the ranks' GPUs, the micro-batch."""

from __future__ import annotations

import torch

from annotations.fileio import FUSE_RECORD, first_line
from engine import devices
from engine.datasets import DatasetSpec, SegDataset, image_size
from engine.devices import env_int
from trainer.config import TrainConfig
from trainer.models.massformer import MIN_SIDE

UPSCALE_WARNING = 2.0  # validation resizing images up by this factor or more is warned about


def validation_split(cfg: TrainConfig, spec: DatasetSpec) -> SegDataset:
    """The labelled split ``cfg.val_split`` of the training data (``spec``, read from
    ``cfg.data``), or ``FileNotFoundError`` that says how to go on: a fused dataset made from
    the training split alone has no val labels (its images are the source dataset's, so only
    the labels are missing)."""
    how = ": give another with --val-split, or --val-split none to train without validation"
    try:
        data = SegDataset(spec, cfg.val_split)
    except FileNotFoundError as e:
        # fusing the split adds its labels where the source has its images, not a split it lacks
        folder = spec.image_dir(cfg.val_split)
        fused = (spec.root / FUSE_RECORD).is_file() and folder.is_dir() and any(folder.iterdir())
        raise FileNotFoundError(
            f"{first_line(e)}; validation needs split {cfg.val_split!r} labelled"
            + (f" (engine fuse --split {cfg.val_split} adds it)" if fused else "")
            + how
        ) from e
    if not data.samples:  # validated on nothing, and the run's scores said only so at the end
        raise ValueError(
            f"{spec.image_dir(cfg.val_split)}: split {cfg.val_split!r} has no images to "
            f"validate on{how}"
        )
    return data


def check_val_size(
    data: SegDataset, size: tuple[int, int] | None, where: str | None = None
) -> None:
    """``ValueError`` naming ``--val-size`` when validating at ``size`` makes the split's
    (first) image smaller than the model's :data:`MIN_SIDE` px a side: checked before the
    first step, where it only failed at the first validation, after the training (its
    ``last.pt`` already written, so ``engine info`` read the run as finished). ``where``: the
    config file the value came from, named with its key instead of the option (before, a
    file's ``val_size: 12x9`` read as if ``--val-size 12x9`` had been typed)."""
    if size is None or not data.samples:
        return
    from trainer.inference import own_or_smallest_size, resized_shape

    path = data.samples[0].image_path
    w, h = image_size(path)
    rh, rw = resized_shape(h, w, size)
    if min(rh, rw) >= MIN_SIDE:
        return
    fit = own_or_smallest_size(w, h)
    what = "their own size" if fit == (w, h) else f"the smallest the model takes at {w}x{h}"
    shrinks = f"the {w}x{h} images of split {data.split!r}"
    if where is not None:
        own = f" ({fit[0]}x{fit[1]}: {what})"
        raise ValueError(
            f"{where}: val_size {size[0]}x{size[1]}: it resizes {shrinks} ({path}) to "
            f"{rw}x{rh}; the model needs at least {MIN_SIDE} px per side: set a larger one{own}"
        )
    own = f" (--val-size {fit[0]}x{fit[1]}: {what})"
    raise ValueError(
        f"{path}: --val-size {size[0]}x{size[1]} resizes {shrinks} to {rw}x{rh}; "
        f"the model needs at least {MIN_SIDE} px per side: give a larger --val-size{own}"
    )


MAX_CROP = 65536  # px a side: a crop's pixels, 4 bytes a channel, already 48 GB of floats


def check_crop(crop: int, where: str | None = None) -> None:
    """``ValueError`` naming ``--crop`` when the training crop is smaller than the model's
    :data:`MIN_SIDE` px a side: checked before any file is written, where the first step failed
    with the model's "images must be at least 32x32" after ``config.yaml`` was written.
    ``where``: the config file the value came from, named with its key instead of the option
    (before, a file's ``augment: {crop: 8}`` read as if ``--crop 8`` had been typed)."""
    if crop < MIN_SIDE:
        given, fix = f"--crop {crop} (augment.crop)", f"give --crop {MIN_SIDE} or more"
        if where is not None:
            given, fix = f"{where}: augment.crop {crop}", f"set it to {MIN_SIDE} or more"
        raise ValueError(f"{given}: the model needs at least {MIN_SIDE} px per side; {fix}")
    if crop > MAX_CROP:  # 1e308 read as a whole number: numpy's OverflowError, a traceback
        shown = f"{crop:.3g}" if crop > 1e9 else f"{crop:g}"
        given, fix = f"--crop {shown} (augment.crop)", f"give --crop {MAX_CROP} or less"
        if where is not None:
            given, fix = f"{where}: augment.crop {shown}", f"set it to {MAX_CROP} or less"
        raise ValueError(f"{given}: at most {MAX_CROP} px per side; {fix}")


def validation_upscale(data: SegDataset, size: tuple[int, int] | None) -> str | None:
    """A one-line warning when validating at ``size`` enlarges the split's (first) image by
    :data:`UPSCALE_WARNING` or more, as the 4096x3072 default does to small images; else None."""
    if size is None or not data.samples:
        return None
    from trainer.inference import own_or_smallest_size, resized_shape

    path = data.samples[0].image_path
    w, h = image_size(path)  # the header only, EXIF orientation applied
    rh, rw = resized_shape(h, w, size)
    if rw < UPSCALE_WARNING * w:
        return None
    fw, fh = own_or_smallest_size(w, h)
    own = "at their own scale" if (fw, fh) == (w, h) else "as near their scale as the model takes"
    return (
        f"{path}: validation resizes the {w}x{h} images of split {data.split!r} to {rw}x{rh} "
        f"({rw / w:.1f}x, --val-size {size[0]}x{size[1]}); pass --val-size {fw}x{fh} to validate "
        f"{own} (engine predict then uses it too)"
    )


def resolve_device(name: str, local_rank: int = 0, where: str | None = None) -> torch.device:
    """``auto`` -> CUDA when available else CPU; under torchrun, CUDA devices are per local rank.
    ``where``: the config file ``name`` came from, named in errors with its key instead of
    ``--device``."""
    given = "--device" if where is None else f"{where}: device"
    # checked there first: before, mps, xpu and meta got as far as torch's errors
    name = devices.resolve_device(name, given)
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


def check_gpu_per_rank(name: str, where: str | None = None) -> None:
    """Training under torchrun with several processes a machine takes ``cuda:LOCAL_RANK``
    (``--device cuda`` or ``auto``): a GPU named by index (``name`` as given) put every rank of
    the machine on that one GPU, which NCCL refuses at the first collective ("Duplicate GPU
    detected"). One ValueError line instead; with one process a machine the index is used as
    given."""
    ranks = env_int("LOCAL_WORLD_SIZE", 1, 1)  # bad text said here, not passed over
    if not name.startswith("cuda:") or ranks < 2:
        return
    given = "--device" if where is None else f"{where}: device"
    raise ValueError(
        f"{given} {name}: this process is one of {ranks} torchrun processes on this machine, "
        f"and each trains on the GPU of its local rank: give {given} cuda (or auto), and "
        f"choose the GPUs with CUDA_VISIBLE_DEVICES"
    )


def micro_batch(cfg: TrainConfig, world: int) -> int:
    """Images per rank and micro-step: ``batch_size / accum_steps / world``; ``ValueError`` when
    that does not divide or is below 2."""
    per_rank = cfg.batch_size // cfg.accum_steps
    if per_rank % world:
        raise ValueError(
            f"batch_size {cfg.batch_size} / accum_steps {cfg.accum_steps} = {per_rank} images per "
            f"micro-step cannot be split over {world} ranks"
        )
    micro = per_rank // world
    if micro < 2:
        raise ValueError(
            f"batch_size {cfg.batch_size} / accum_steps {cfg.accum_steps} / {world} ranks = "
            f"{micro} image per micro-step; MaSSFormer needs at least 2 (the released "
            f"pixel decoder has BatchNorms on globally pooled features)"
        )
    return micro
