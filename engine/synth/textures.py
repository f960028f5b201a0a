"""Procedural textures: fractal noise and the colour fields objects are painted with.

Every function draws its randomness from the ``rng`` it is given, so a scene is a pure function
of its seed. Textures are ``(h, w, 3) float32`` RGB in roughly 0..255 (clipped at the end).
"""

from __future__ import annotations

import cv2
import numpy as np


def noise(rng: np.random.Generator, h: int, w: int, scale: float, octaves: int = 3) -> np.ndarray:
    """``(h, w) float32`` fractal value noise, about zero mean and unit spread.

    ``scale`` is the feature size of the coarsest octave in pixels; each further octave halves it
    and its amplitude. Coarse random grids are upsampled with bicubic interpolation (fast at 4K).
    """
    h, w = max(int(h), 1), max(int(w), 1)
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        s = max(scale / (2**o), 1.0)
        gh, gw = int(np.ceil(h / s)) + 2, int(np.ceil(w / s)) + 2
        grid = rng.standard_normal((gh, gw), dtype=np.float32)
        if s > 1.0:
            size = (int(np.ceil(gw * s)), int(np.ceil(gh * s)))
            grid = cv2.resize(grid, size, interpolation=cv2.INTER_CUBIC)
        out += amp * grid[:h, :w]
        total += amp
        amp *= 0.5
    return out / np.float32(total)


def noise1d(rng: np.random.Generator, n: int, scale: float, octaves: int = 3) -> np.ndarray:
    """``(n,) float32`` fractal noise along a line (shore lines, skylines, hedge tops)."""
    return noise(rng, 1, n, scale, octaves)[0]


def jitter_color(rng: np.random.Generator, rgb: tuple[int, int, int], amount: float = 12.0):
    """``rgb`` moved by a random offset per channel; ``(3,) float32``."""
    return np.clip(np.asarray(rgb, np.float32) + rng.normal(0.0, amount, 3), 0, 255).astype(
        np.float32
    )


def textured(
    rng: np.random.Generator,
    h: int,
    w: int,
    base: np.ndarray | tuple[int, int, int],
    amp: float = 18.0,
    scale: float = 8.0,
    grain: float = 4.0,
    chroma: float = 6.0,
) -> np.ndarray:
    """A surface of colour ``base`` with luminance noise (``amp`` at feature size ``scale``),
    per-pixel ``grain`` and slow colour drift ``chroma``: ``(h, w, 3) float32``."""
    base = np.asarray(base, np.float32)
    lum = noise(rng, h, w, scale, 3) * amp
    if grain > 0:
        lum += rng.standard_normal((h, w), dtype=np.float32) * grain
    tex = base[None, None, :] + lum[..., None]
    if chroma > 0:
        drift = noise(rng, h, w, max(scale * 4, 4.0), 1)[..., None]
        tex += drift * rng.normal(0.0, chroma, 3).astype(np.float32)
    return tex


def vertical_shading(h: int, top: float, bottom: float) -> np.ndarray:
    """``(h, 1, 1) float32`` multiplicative light falloff from ``top`` to ``bottom``."""
    return np.linspace(top, bottom, max(h, 1), dtype=np.float32)[:, None, None]


def horizontal_shading(w: int, left: float, right: float) -> np.ndarray:
    """``(1, w, 1) float32`` multiplicative light falloff from ``left`` to ``right``."""
    return np.linspace(left, right, max(w, 1), dtype=np.float32)[None, :, None]
