"""One synthetic MaSS-style scene: stuff (sky, buildings, vegetation, ground, water) and objects.

:func:`render_scene` is a pure function of ``(seed, split, index, size)``: it seeds its own
generator from those, so images can be rendered in any order (or in parallel) with the same bytes.
Objects are placed in perspective (smaller near the horizon) and painted far to near, so nearer
objects occlude farther ones and the labels stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from engine.synth.canvas import Canvas
from engine.synth.config import BUILDING, GROUND, NEW_CLASSES, SKY, SPLITS, VEGETATION, WATER
from engine.synth.objects import (
    Wheel,
    draw_bicycle,
    draw_car,
    draw_human,
    draw_other,
    draw_tree,
    foliage_texture,
    leafy_mask,
)
from engine.synth.textures import (
    horizontal_shading,
    jitter_color,
    noise,
    noise1d,
    textured,
    vertical_shading,
)

WALL_COLORS = ((190, 170, 140), (150, 150, 150), (160, 80, 60), (220, 210, 190), (110, 110, 120),
               (200, 190, 160), (120, 90, 70))  # fmt: skip
GROUND_COLORS = {"asphalt": (95, 95, 100), "dirt": (135, 110, 80), "paving": (160, 150, 140)}


@dataclass
class Scene:
    """A rendered scene.

    Attributes:
        image: ``(H, W, 3) uint8`` RGB.
        label: ``(H, W) uint8`` MaSS13K ids 0..6 (bicycles and cars are Others, 0).
        instances: per new class name, ``(H, W) uint16`` instance ids (0 none, 1..N).
        wheels: every bicycle wheel drawn (centre and radius in pixels), hidden or not.
    """

    image: np.ndarray
    label: np.ndarray
    instances: dict[str, np.ndarray] = field(default_factory=dict)
    wheels: list[Wheel] = field(default_factory=list)


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: independent of every other image's."""
    return np.random.default_rng([seed, SPLITS.index(split) if split in SPLITS else 99, index])


def render_scene(seed: int, split: str, index: int, size: tuple[int, int] = (512, 384)) -> Scene:
    """Render image ``index`` of ``split`` at ``size`` ``(W, H)``, seeded by ``seed``."""
    rng = scene_rng(seed, split, index)
    width, height = int(size[0]), int(size[1])
    canvas = Canvas(width, height)
    horizon = int(height * rng.uniform(0.32, 0.55))
    unit = max(1.0, min(width, height) / 384)  # texture grain scale: leaves, bricks, gravel
    _sky(canvas, rng, horizon)
    _buildings(canvas, rng, horizon, unit)
    if rng.random() < 0.6:
        _treeline(canvas, rng, horizon, unit)
    _ground(canvas, rng, horizon, unit)
    shore = horizon
    if rng.random() < 0.45:
        shore = _water(canvas, rng, horizon)
    if rng.random() < 0.4:
        _grass(canvas, rng, shore, unit)
    wheels = _objects(canvas, rng, horizon, shore, unit)
    image = _finish(canvas, rng)
    instances = {name: canvas.instance_map(name) for name in NEW_CLASSES}
    return Scene(image=image, label=canvas.label, instances=instances, wheels=wheels)


# --- stuff -----------------------------------------------------------------------------------


def _sky(canvas: Canvas, rng: np.random.Generator, horizon: int) -> None:
    h, w = canvas.height, canvas.width
    overcast = rng.random() < 0.25
    top = jitter_color(rng, (150, 155, 165) if overcast else (55, 105, 195), 10)
    low = jitter_color(rng, (200, 200, 205) if overcast else (175, 205, 235), 8)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = top * (1 - t) + low * t + np.zeros((1, w, 1), np.float32)
    clouds = np.clip(noise(rng, h, w, w / 5, 4) * 1.6 - rng.uniform(0.0, 0.8), 0, 1)[..., None]
    sky = sky * (1 - clouds * 0.8) + np.float32(240) * clouds * 0.8
    sky += rng.standard_normal((h, w, 1), dtype=np.float32) * 1.5
    canvas.paint(np.ones((h, w), bool), sky, SKY)


def _buildings(canvas: Canvas, rng: np.random.Generator, horizon: int, unit: float) -> None:
    w = canvas.width
    x = float(rng.uniform(-0.1, 0.2) * w)
    while x < w:
        bw = rng.uniform(0.08, 0.3) * w
        if rng.random() < 0.25:  # a gap: sky between buildings
            x += bw * 0.6
            continue
        bh = rng.uniform(0.15, 0.95) * horizon
        _building(canvas, rng, int(x), int(horizon - bh), int(bw), int(bh) + 2, unit)
        x += bw + rng.uniform(0, 0.05) * w


def _building(
    canvas: Canvas, rng: np.random.Generator, x0: int, y0: int, bw: int, bh: int, unit: float
) -> None:
    """A facade with a roof, shaded side edge, cornice and a grid of framed windows."""
    if bw < 4 or bh < 4:
        return
    roof_h = int(bw * rng.uniform(0.15, 0.35)) if rng.random() < 0.35 else 0
    top = y0 - roof_h
    mask = np.zeros((bh + roof_h, bw), np.uint8)
    mask[roof_h:] = 1
    if roof_h:
        cv2.fillPoly(mask, [np.array([[0, roof_h], [bw // 2, 0], [bw - 1, roof_h]], np.int32)], 1)
    wall = jitter_color(rng, WALL_COLORS[int(rng.integers(len(WALL_COLORS)))], 12)
    tex = textured(rng, mask.shape[0], bw, wall, amp=8, scale=3 * unit, grain=3)
    if rng.random() < 0.4:  # brick courses
        course = max(2, bh // 60)
        tex[(np.arange(mask.shape[0]) % (course * 2)) == 0] *= 0.85
    lit_left = rng.random() < 0.5
    tex *= horizontal_shading(bw, 1.08 if lit_left else 0.9, 0.9 if lit_left else 1.08)
    edge = max(1, bw // 25)  # darker vertical edge: the building's side in shadow
    tex[:, -edge:] *= 0.7
    tex[:, :edge] *= 0.85
    tex[roof_h : roof_h + max(1, bh // 40)] *= 1.2  # cornice
    if roof_h:
        roof = textured(
            rng, roof_h, bw, jitter_color(rng, (120, 60, 50), 15), amp=10, scale=2 * unit
        )
        tex[:roof_h] = roof
    # Windows: glass with a sky reflection and a light frame, on a grid.
    ncols = int(rng.integers(2, 7))
    nrows = max(1, int(bh / max(bw / ncols, 4) * rng.uniform(0.7, 1.1)))
    cw, rh = bw / ncols, bh / (nrows + 0.5)
    ww, wh = cw * rng.uniform(0.4, 0.65), rh * rng.uniform(0.4, 0.6)
    glass = jitter_color(rng, (70, 90, 115), 15)
    frame = wall * 1.25
    for i in range(nrows):
        for j in range(ncols):
            wx0, wy0 = int(j * cw + (cw - ww) / 2), int(roof_h + rh * 0.5 + i * rh)
            wx1, wy1 = int(wx0 + ww), int(wy0 + wh)
            if wx1 - wx0 < 2 or wy1 - wy0 < 2 or wy1 >= mask.shape[0]:
                continue
            tex[wy0 - 1 : wy1 + 1, max(wx0 - 1, 0) : wx1 + 1] = frame
            shine = np.linspace(1.25, 0.8, wy1 - wy0, dtype=np.float32)[:, None, None]
            tex[wy0:wy1, wx0:wx1] = glass * shine * rng.uniform(0.8, 1.2)
    canvas.paint(mask, tex, BUILDING, x0, top)


def _treeline(canvas: Canvas, rng: np.random.Generator, horizon: int, unit: float) -> None:
    """A band of trees or hedges along the horizon with a ragged, fine-grained top edge."""
    w = canvas.width
    band = int(canvas.height * rng.uniform(0.05, 0.2))
    top = 1.0 - np.clip(0.55 + 0.45 * noise1d(rng, w, w / 8, 4), 0, 1)  # 0 = tallest
    yy = np.linspace(0, 1, band, dtype=np.float32)[:, None]
    v = yy - top[None, :] + 0.12 * noise(rng, band, w, 1.5 * unit, 2)
    mask = v > 0
    canvas.paint(mask, foliage_texture(rng, band, w, unit), VEGETATION, 0, horizon - band + 1)


def _ground(canvas: Canvas, rng: np.random.Generator, horizon: int, unit: float) -> None:
    h, w = canvas.height - horizon, canvas.width
    kind = ("asphalt", "dirt", "paving")[int(rng.integers(3))]
    base = jitter_color(rng, GROUND_COLORS[kind], 10)
    tex = textured(rng, h, w, base, amp=12, scale=6 * unit, grain=7, chroma=2)
    depth = np.linspace(0.02, 1, h, dtype=np.float32)  # perspective: rows nearer the camera
    if kind == "paving":  # tile joints converging to a vanishing point
        rows = np.sqrt(depth) * 24 % 1.0 < 0.08
        vx = rng.uniform(0.3, 0.7) * w
        xs = (np.arange(w)[None, :] - vx) / (depth[:, None] * w) * 12
        joints = rows[:, None] | (np.abs(xs - np.round(xs)) < 0.06)
        tex[joints] *= 0.75
    elif kind == "asphalt" and rng.random() < 0.7:  # a dashed lane marking
        vx = rng.uniform(0.3, 0.7) * w
        xc = vx + (rng.uniform(-0.4, 0.4) * w) * depth
        half = np.maximum(depth * w * 0.006, 0.6)
        dash = (np.sqrt(depth) * 10 % 1.0) < 0.55
        cols = np.abs(np.arange(w)[None, :] - xc[:, None]) < half[:, None]
        tex[cols & dash[:, None]] = np.float32(225)
    tex *= vertical_shading(h, 0.9, 1.08)
    canvas.paint(np.ones((h, w), bool), tex, GROUND, 0, horizon)


def _water(canvas: Canvas, rng: np.random.Generator, horizon: int) -> int:
    """A lake or sea from the horizon down to a wavy shore; returns the lowest shore row."""
    h, w = canvas.height, canvas.width
    depth = int((h - horizon) * rng.uniform(0.15, 0.4))
    shore = depth + (noise1d(rng, w, w / 6, 3) * depth * 0.25)
    shore = np.clip(shore, 2, h - horizon - 1)
    hh = int(shore.max()) + 1
    mask = np.arange(hh)[:, None] < shore[None, :]
    base = jitter_color(rng, (40, 90, 120), 15)
    rows = np.arange(hh, dtype=np.float32)[:, None]
    ripples = np.sin(rows * (6.0 / max(1.0, hh / 20)) + 3 * noise(rng, hh, w, w / 20, 2))
    tex = textured(rng, hh, w, base, amp=10, scale=w / 30 + 1, grain=3)
    tex *= (1 + 0.12 * ripples)[..., None]
    tex *= vertical_shading(hh, 1.3, 0.9)  # sky reflection near the horizon
    canvas.paint(mask, tex, WATER, 0, horizon)
    return horizon + hh


def _grass(canvas: Canvas, rng: np.random.Generator, shore: int, unit: float) -> None:
    """A lawn patch on the ground: Vegetation with fine ragged edges."""
    h, w = canvas.height, canvas.width
    ph = int((h - shore) * rng.uniform(0.2, 0.5))
    pw = int(w * rng.uniform(0.25, 0.6))
    if ph < 4 or pw < 4:
        return
    x0 = int(rng.uniform(-0.1, 0.9) * w)
    y0 = int(rng.uniform(shore, h - ph * 0.5))
    base = jitter_color(rng, (80, 140, 55), 15)
    tex = textured(rng, ph, pw, base, amp=22, scale=1.5 * unit, grain=12)
    canvas.paint(leafy_mask(rng, ph, pw, fill=0.15, unit=unit), tex, VEGETATION, x0, y0)


# --- objects ---------------------------------------------------------------------------------


def _objects(
    canvas: Canvas, rng: np.random.Generator, horizon: int, shore: int, unit: float
) -> list[Wheel]:
    """Place trees, people, cars, bicycles and other objects on the ground, far to near."""
    h, w = canvas.height, canvas.width
    lo = shore + max(2, int(0.02 * h)) if shore > horizon else horizon + max(2, int(0.02 * h))
    span = max(h - lo, 1)
    counts = {
        "tree": int(rng.integers(0, 4)),
        "human": int(rng.integers(0, 4)),
        "car": int(rng.choice([0, 1, 1, 2, 2, 3])),
        "bicycle": int(rng.choice([0, 1, 1, 2, 2, 3, 3, 4])),
        "other": int(rng.integers(1, 5)),
    }
    placements: list[tuple[float, int, str, float]] = []
    for kind, n in counts.items():  # dict order is insertion order: fixed
        for _ in range(n):
            near = rng.uniform(0.0, 0.6 if kind == "tree" else 1.0) ** 1.2  # more far (small) ones
            yb = lo + near * span
            placements.append((yb, len(placements), kind, float(rng.uniform(-0.05, 1.05) * w)))
    placements.sort()
    wheels: list[Wheel] = []
    for yb, _, kind, x in placements:
        p = (yb - horizon) / max(h - horizon, 1)  # 0 at the horizon, 1 at the bottom edge
        k = rng.uniform(0.75, 1.3)
        if kind == "bicycle":
            r = h * (0.012 + 0.085 * p) * k
            facing = 1 if rng.random() < 0.5 else -1
            wheels += draw_bicycle(canvas, rng, x - facing * 1.5 * r, yb, r, facing)
        elif kind == "car":
            facing = int(rng.choice([-1, 1, 1, 0]))  # 0: front or rear view
            draw_car(canvas, rng, x, yb, h * (0.05 + 0.55 * p) * k, facing)
        elif kind == "human":
            draw_human(canvas, rng, x, yb, h * (0.06 + 0.5 * p) * k)
        elif kind == "tree":
            draw_tree(canvas, rng, x, yb, h * (0.25 + 0.9 * p) * k, unit)
        else:
            draw_other(canvas, rng, x, yb, h * (0.04 + 0.25 * p) * k)
    return wheels


def _finish(canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    """Camera effects on the image only: uneven light, slight lens blur, sensor noise."""
    h, w = canvas.height, canvas.width
    light = 1.0 + 0.12 * noise(rng, h, w, max(h, w) / 2, 2)
    img = canvas.image * light[..., None]
    sigma = 0.5 * max(1.0, min(h, w) / 768)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    img += rng.standard_normal((h, w, 3), dtype=np.float32) * 2.5
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
