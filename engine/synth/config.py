"""Configuration of the synthetic MaSS-style scene generator."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from annotations.numbers import MAX_IMAGE_SIDE

# Bump when the rendering changes, so a dataset records which generator drew it.
GENERATOR_VERSION = "1"

SPLITS = ("train", "val", "test")

# New classes whose ground truth the generator writes, lower-case, in a fixed order.
NEW_CLASSES = ("bicycle", "car")

# MaSS13K ids (see annotations.taxonomy.MASS13K).
OTHERS, HUMAN, BUILDING, VEGETATION, GROUND, SKY, WATER = range(7)

MIN_SIZE = 64  # smallest width or height the scene layout still fits into

# The settings that decide a file's bytes; the counts only decide which files there are
# (scene ``i`` of a split is the same whatever the counts: engine.synth.scene.scene_rng).
SCENE_KEYS = ("size", "seed", "jpeg_quality")


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`engine.synth.generate` writes."""

    out: Path  # dataset root to write (MaSS13K layout); created if missing
    train: int = 8  # number of training images
    val: int = 2  # number of validation images
    test: int = 4  # number of test images
    size: tuple[int, int] = (512, 384)  # image (width, height) in pixels
    seed: int = 0  # same seed, same bytes
    jpeg_quality: int = 92  # Pillow JPEG quality of the images

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        for name in SPLITS:
            n = getattr(self, name)
            if not isinstance(n, int) or n < 0:
                raise ValueError(f"SynthConfig.{name} must be an integer >= 0, got {n!r}")
        if self.train + self.val + self.test == 0:
            raise ValueError(
                "--train + --val + --test is 0: nothing to generate; give at least one image"
            )
        if len(self.size) != 2 or min(self.size) < MIN_SIZE:
            shown = "x".join(map(str, self.size))
            raise ValueError(
                f"image size must be WxH with both sides >= {MIN_SIZE} px (--size), got {shown}"
            )
        if max(self.size) > MAX_IMAGE_SIDE:  # as --size's bound, for library callers too
            raise ValueError(
                f"image size must be at most {MAX_IMAGE_SIDE:,} px a side (--size), got "
                + "x".join(map(str, self.size))
            )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"SynthConfig.seed must be an integer >= 0, got {self.seed!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"SynthConfig.jpeg_quality must be in 1..100, got {self.jpeg_quality}")

    def counts(self) -> dict[str, int]:
        """Images per split, in train/val/test order."""
        return {s: getattr(self, s) for s in SPLITS}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        d["size"] = list(self.size)
        return d


def differences(
    recorded: dict[str, Any], cfg: SynthConfig, keys: tuple[str, ...] = ()
) -> list[str]:
    """How ``cfg`` differs from a recorded ``config`` (``synth.json``'s), over ``keys`` (default:
    every setting but ``out``), one phrase each: ``"size 128x96, not 160x120"``, or
    ``"jpeg_quality not recorded, now 92"`` for a setting an older record lacks."""
    new = cfg.to_dict()

    def shown(key: str, value: Any) -> str:
        return (
            "x".join(map(str, value)) if key == "size" and isinstance(value, list) else str(value)
        )

    return [
        (
            f"{key} {shown(key, recorded[key])}, not {shown(key, value)}"
            if key in recorded
            else f"{key} not recorded, now {shown(key, value)}"
        )
        for key, value in new.items()
        if (key in keys if keys else key != "out")
        and (key not in recorded or recorded[key] != value)
    ]
