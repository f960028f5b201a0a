"""What a call of ``engine predict`` is given and returns (:class:`PredictConfig`,
:class:`PredictResult`), and the inference size ``auto`` comes to for a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUTO = "auto"


RELEASE_SIZE = (4096, 3072)  # the release's test size for MaSS13K's 4K photos


def inference_size(ckpt: dict[str, Any]) -> tuple[tuple[int, int] | None, str]:
    """The size ``size="auto"`` predicts at, and where it comes from: the validation size of
    the training that wrote ``ckpt`` (``config.val_size``; None: the images' own size), else
    :data:`RELEASE_SIZE` (converted release checkpoints and others without a training config)."""
    config = ckpt.get("config")
    if isinstance(config, dict) and "val_size" in config:
        v = config["val_size"]
        return (None if v is None else (int(v[0]), int(v[1]))), "the checkpoint's validation size"
    return RELEASE_SIZE, "the release's test size (the checkpoint records no training)"


@dataclass
class PredictConfig:
    """One prediction run."""

    checkpoint: str  # a checkpoint written by engine train (last.pt / step_*.pt)
    images: str | None  # folder of images (.jpg/.jpeg/.png), not recursive, or one image;
    # None: the images of ``split`` of the dataset ``data``
    out: str  # output folder for label PNGs
    # inference size (long, short) with aspect kept; None: each image's original size; "auto":
    # the size the checkpoint's training validated at, else RELEASE_SIZE (inference_size)
    size: tuple[int, int] | None | str = AUTO
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    mode: str = "efficient"  # "efficient" | "full" (the release's inference exactly)
    sliding_window: bool = False  # tile the resized image (for images too large for memory)
    amp: bool = True  # bf16 autocast on CUDA
    scales: tuple[float, ...] = (1.0,)  # test-time scales relative to size (mmseg aug test)
    flip: bool = False  # also average the left-right mirrored run (test-time augmentation)
    guided_filter: bool = False  # refine the class maps along the image's edges (not released)
    gf_radius: int = 0  # guided filter window radius in output px; 0: 8 x the upsampling factor
    gf_eps: float = 1e-4  # guided filter regulariser (guide values in 0..1)
    gf_guide: str = "rgb"  # guided filter guide: "rgb" (colour image) | "grey"
    gf_subsample: int = 0  # guided filter fits at 1/N of the output size; 0: 2 x the upsampling
    # factor; 1: the exact filter at full resolution
    color: bool = False  # also write colour previews to <out>/color/
    overwrite: bool = False  # redo images whose label already exists
    progress: bool = True  # progress bar on stderr
    data: str | None = None  # dataset root or spec file (fused datasets too), instead of images
    split: str = "test"  # with ``data``: the split whose images are labelled


@dataclass
class PredictResult:
    """What :func:`~trainer.predict.run.predict_dir` did."""

    out: Path  # output folder
    written: list[Path] = field(default_factory=list)  # label PNGs written
    skipped: int = 0  # images whose label already existed
    previews: int = 0  # colour previews added beside label maps that existed (``color``)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (image, one line naming it)
    left_out: list[Path] = field(default_factory=list)  # other files in the images' folder
    seconds: float = 0.0  # wall time of the predictions
    size: tuple[int, int] | None = None  # the inference size used (None: each image's own)
    size_source: str = "given"  # where it came from: "given", or inference_size's reason
