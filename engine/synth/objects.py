"""Countable objects: bicycles, cars, humans, trees and other "Others" objects.

Each ``draw_*`` function paints one object standing on the ground at base point ``(x, yb)`` onto
a :class:`~engine.synth.canvas.Canvas`, drawing its parts into a local mask (its bounding box)
with OpenCV and painting them with procedural textures. Sizes are in pixels; line widths scale
with the object, so thin parts (spokes, hair strands, frames) stay 1-2 px on small objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.synth.canvas import Canvas
from engine.synth.config import HUMAN, OTHERS, VEGETATION
from engine.synth.textures import jitter_color, noise, textured, vertical_shading

CAR_COLORS = ((200, 30, 30), (30, 60, 160), (230, 230, 230), (40, 40, 45), (150, 150, 155),
              (20, 110, 60), (220, 180, 30), (110, 20, 30))  # fmt: skip
FRAME_COLORS = ((200, 20, 20), (20, 20, 20), (30, 90, 200), (230, 230, 230), (20, 140, 60),
                (240, 140, 20), (120, 120, 130))  # fmt: skip
SKIN = ((235, 200, 170), (200, 150, 110), (150, 100, 70), (90, 60, 40))
HAIR = ((30, 20, 15), (80, 50, 25), (200, 170, 100), (120, 40, 20), (60, 60, 60))


@dataclass(frozen=True)
class Wheel:
    """A bicycle wheel: centre and outer radius of the tyre, in image pixels."""

    cx: float
    cy: float
    r: float


class _Local:
    """A local drawing box: integer origin ``(x0, y0)`` and size, with a point mapper."""

    def __init__(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.x0, self.y0 = int(np.floor(x0)) - 2, int(np.floor(y0)) - 2
        self.w = max(int(np.ceil(x1)) + 2 - self.x0, 1)
        self.h = max(int(np.ceil(y1)) + 2 - self.y0, 1)

    def mask(self) -> np.ndarray:
        return np.zeros((self.h, self.w), np.uint8)

    def pt(self, x: float, y: float) -> tuple[int, int]:
        return int(round(x - self.x0)), int(round(y - self.y0))


def _t(v: float) -> int:
    """A line thickness: at least one pixel."""
    return max(1, int(round(v)))


def _tex(rng: np.random.Generator, box: _Local, color, amp: float = 10.0, scale: float = 4.0):
    """A texture function for :meth:`Canvas.paint` (evaluated over the part's own extent)."""
    base = jitter_color(rng, color, 10.0)
    return lambda h, w: textured(rng, h, w, base, amp=amp, scale=scale, chroma=3.0)


# --- bicycle ---------------------------------------------------------------------------------


def draw_bicycle(
    canvas: Canvas, rng: np.random.Generator, x: float, yb: float, r: float, facing: int
) -> list[Wheel]:
    """A side-view bicycle whose rear wheel touches the ground at ``(x, yb)``; wheel radius ``r``.

    Two thin tyres with spokes and a thin frame: everything behind shows through the wheels and
    between the spokes. Returns its two wheels.
    """
    f = 1 if facing >= 0 else -1
    cy = yb - r

    def p(u: float, v: float) -> tuple[float, float]:
        return x + f * u * r, cy - v * r

    xs = [p(u, 0)[0] for u in (-1.05, 4.05)]
    box = _Local(min(xs), cy - 2.0 * r, max(xs), yb + 1)
    obj = canvas.new_object("bicycle")
    tyre_t, frame_t, spoke_t = _t(0.1 * r), _t(0.07 * r), _t(0.012 * r)
    wheels = [Wheel(*p(0, 0), r), Wheel(*p(3.0, 0), r)]

    tyres, spokes, frame, saddle = box.mask(), box.mask(), box.mask(), box.mask()
    n_spokes = 16 if r >= 14 else 8 if r >= 6 else 4 if r >= 4 else 0
    phase = rng.uniform(0, np.pi)
    for w in wheels:
        c = box.pt(w.cx, w.cy)
        rr = max(w.r - tyre_t / 2.0, 1.0)
        cv2.circle(tyres, c, int(round(rr)), 1, tyre_t, cv2.LINE_8)
        for k in range(n_spokes):
            a = phase + np.pi * k / max(n_spokes / 2, 1)
            end = box.pt(w.cx + np.cos(a) * (rr - 1), w.cy + np.sin(a) * (rr - 1))
            cv2.line(spokes, c, end, 1, spoke_t, cv2.LINE_8)
        cv2.circle(spokes, c, max(1, int(round(0.07 * r))), 1, -1)

    pts = {
        "R": (0.0, 0.0), "F": (3.0, 0.0), "B": (1.15, -0.2), "S": (0.85, 1.55),
        "H": (2.45, 1.45), "Hb": (2.6, 1.0), "post": (0.8, 1.8), "bar": (2.4, 1.75),
        "grip": (2.15, 1.8),
    }  # fmt: skip
    tubes = [("B", "R"), ("S", "R"), ("B", "S"), ("S", "H"), ("B", "Hb"), ("Hb", "H"),
             ("Hb", "F")]  # fmt: skip
    for a, b in tubes:
        cv2.line(frame, box.pt(*p(*pts[a])), box.pt(*p(*pts[b])), 1, frame_t, cv2.LINE_8)
    cv2.line(saddle, box.pt(*p(*pts["S"])), box.pt(*p(*pts["post"])), 1, _t(0.05 * r))
    cv2.line(saddle, box.pt(*p(0.55, 1.85)), box.pt(*p(1.05, 1.85)), 1, _t(0.12 * r))
    cv2.line(saddle, box.pt(*p(*pts["H"])), box.pt(*p(*pts["bar"])), 1, _t(0.05 * r))
    cv2.line(saddle, box.pt(*p(*pts["bar"])), box.pt(*p(*pts["grip"])), 1, _t(0.07 * r))
    crank = rng.uniform(0, 2 * np.pi)
    bx, by = p(*pts["B"])
    for s in (1, -1):
        ex, ey = bx + s * np.cos(crank) * 0.35 * r, by + s * np.sin(crank) * 0.35 * r
        cv2.line(saddle, box.pt(bx, by), box.pt(ex, ey), 1, _t(0.04 * r))
        cv2.line(saddle, box.pt(ex - 0.1 * r, ey), box.pt(ex + 0.1 * r, ey), 1, _t(0.05 * r))
    cv2.circle(saddle, box.pt(bx, by), _t(0.18 * r), 1, _t(0.04 * r))

    frame_color = FRAME_COLORS[int(rng.integers(len(FRAME_COLORS)))]
    canvas.paint(tyres, _tex(rng, box, (28, 28, 30), 6), OTHERS, box.x0, box.y0, obj)
    canvas.paint(spokes, _tex(rng, box, (175, 175, 180), 12), OTHERS, box.x0, box.y0, obj)
    canvas.paint(frame, _tex(rng, box, frame_color, 14), OTHERS, box.x0, box.y0, obj)
    canvas.paint(saddle, _tex(rng, box, (35, 30, 30), 8), OTHERS, box.x0, box.y0, obj)
    return wheels


# --- car -------------------------------------------------------------------------------------


def draw_car(
    canvas: Canvas, rng: np.random.Generator, x: float, yb: float, length: float, facing: int
) -> None:
    """A car standing on the ground line ``yb``, centred on ``x``, ``length`` pixels long.

    ``facing`` 0 draws a front/rear view (``length`` is then the width), +-1 a side view.
    """
    color = CAR_COLORS[int(rng.integers(len(CAR_COLORS)))]
    L = length
    obj = canvas.new_object("car")
    if facing == 0:
        box = _Local(x - 0.55 * L, yb - 0.85 * L, x + 0.55 * L, yb + 1)
        body, glass, dark = box.mask(), box.mask(), box.mask()
        top = yb - 0.12 * L
        hb = 0.42 * L
        cv2.rectangle(body, box.pt(x - 0.5 * L, top - hb), box.pt(x + 0.5 * L, top), 1, -1)
        cabin = [(x - 0.42 * L, top - hb), (x - 0.32 * L, top - hb - 0.3 * L),
                 (x + 0.32 * L, top - hb - 0.3 * L), (x + 0.42 * L, top - hb)]  # fmt: skip
        cv2.fillPoly(body, [np.array([box.pt(*q) for q in cabin], np.int32)], 1)
        win = [(x - 0.36 * L, top - hb - 0.02 * L), (x - 0.29 * L, top - hb - 0.26 * L),
               (x + 0.29 * L, top - hb - 0.26 * L), (x + 0.36 * L, top - hb - 0.02 * L)]  # fmt: skip
        cv2.fillPoly(glass, [np.array([box.pt(*q) for q in win], np.int32)], 1)
        for s in (-1, 1):
            cv2.rectangle(dark, box.pt(x + s * 0.45 * L, top - 0.02 * L),
                          box.pt(x + s * 0.3 * L, yb), 1, -1)  # fmt: skip
            cv2.rectangle(glass, box.pt(x + s * 0.42 * L, top - 0.3 * L),
                          box.pt(x + s * 0.3 * L, top - 0.22 * L), 1, -1)  # fmt: skip
        cv2.rectangle(dark, box.pt(x - 0.2 * L, top - 0.2 * L), box.pt(x + 0.2 * L, top - 0.1 * L),
                      1, -1)  # fmt: skip
        shadow_w, shadow_x = 0.6 * L, x
    else:
        f = 1 if facing > 0 else -1
        x0 = x - 0.5 * L
        wr = 0.13 * L
        box = _Local(x0 - 2, yb - 0.6 * L, x0 + L + 2, yb + 1)
        body, glass, dark = box.mask(), box.mask(), box.mask()

        def q(u: float, v: float) -> tuple[int, int]:  # u along the car from its rear, v up
            return box.pt(x + f * (u - 0.5) * L, yb - v * L)

        hull = [(0.0, 0.1), (0.0, 0.3), (0.05, 0.33), (0.25, 0.34), (0.35, 0.52), (0.68, 0.52),
                (0.82, 0.35), (0.97, 0.31), (1.0, 0.25), (1.0, 0.1), (0.96, 0.07), (0.04, 0.07)]  # fmt: skip
        cv2.fillPoly(body, [np.array([q(*h) for h in hull], np.int32)], 1)
        windows = [(0.28, 0.35), (0.37, 0.49), (0.66, 0.49), (0.78, 0.35)]
        cv2.fillPoly(glass, [np.array([q(*h) for h in windows], np.int32)], 1)
        cv2.line(body, q(0.52, 0.35), q(0.52, 0.5), 1, _t(0.015 * L))  # B pillar
        for u in (0.2, 0.8):
            cx, cy = q(u, wr / L)
            cv2.circle(dark, (cx, cy), int(round(wr)), 1, -1)
        for u, v in ((0.97, 0.27), (0.02, 0.27)):
            cv2.circle(glass, q(u, v), _t(0.02 * L), 1, -1)
        shadow_w, shadow_x = 0.55 * L, x
    # Soft shadow on the ground under the car (image only).
    sh = _Local(shadow_x - shadow_w, yb - 0.06 * L, shadow_x + shadow_w, yb + 0.06 * L)
    shadow = sh.mask().astype(np.float32)
    cv2.ellipse(shadow, sh.pt(shadow_x, yb), (int(shadow_w), max(1, int(0.04 * L))), 0, 0, 360,
                1.0, -1)  # fmt: skip
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(0.03 * L, 0.8))
    canvas.shade(shadow, 0.45, sh.x0, sh.y0)

    body_color = jitter_color(rng, color, 8)

    def paint(h: int, w: int) -> np.ndarray:  # lit from above
        tex = textured(rng, h, w, body_color, amp=8, scale=6, grain=2)
        return tex * vertical_shading(h, 1.15, 0.75)

    def glass_tex(h: int, w: int) -> np.ndarray:  # smooth reflections
        return textured(rng, h, w, (45, 55, 70), amp=18, scale=w / 3 + 1)

    canvas.paint(body, paint, OTHERS, box.x0, box.y0, obj)
    canvas.paint(glass, glass_tex, OTHERS, box.x0, box.y0, obj)
    canvas.paint(dark, _tex(rng, box, (25, 25, 28), 6), OTHERS, box.x0, box.y0, obj)


# --- human -----------------------------------------------------------------------------------


def draw_human(
    canvas: Canvas, rng: np.random.Generator, x: float, yb: float, height: float
) -> None:
    """A standing person ``height`` pixels tall, feet at ``(x, yb)``, with thin hair strands."""
    hh = height
    hr = 0.065 * hh
    box = _Local(x - 0.35 * hh, yb - hh - 0.25 * hh, x + 0.35 * hh, yb + 1)
    obj = canvas.new_object("human")
    skin, clothes, legs, hair = box.mask(), box.mask(), box.mask(), box.mask()
    head = (x, yb - hh + hr)
    cv2.circle(skin, box.pt(*head), _t(hr), 1, -1)
    neck_y = head[1] + hr
    hip_y = yb - 0.47 * hh
    torso = [(x - 0.11 * hh, neck_y + 0.03 * hh), (x + 0.11 * hh, neck_y + 0.03 * hh),
             (x + 0.09 * hh, hip_y), (x - 0.09 * hh, hip_y)]  # fmt: skip
    cv2.fillPoly(clothes, [np.array([box.pt(*q) for q in torso], np.int32)], 1)
    cv2.line(skin, box.pt(x, head[1]), box.pt(x, neck_y + 0.04 * hh), 1, _t(0.04 * hh))
    stride = rng.uniform(-0.1, 0.1) * hh
    for s in (-1, 1):
        shoulder = (x + s * 0.1 * hh, neck_y + 0.05 * hh)
        hand = (x + s * rng.uniform(0.13, 0.22) * hh, yb - rng.uniform(0.45, 0.6) * hh)
        cv2.line(clothes, box.pt(*shoulder), box.pt(*hand), 1, _t(0.05 * hh))
        cv2.circle(skin, box.pt(*hand), _t(0.025 * hh), 1, -1)
        foot = (x + s * 0.06 * hh + (stride if s > 0 else -stride * 0.3), yb - 0.02 * hh)
        cv2.line(legs, box.pt(x + s * 0.05 * hh, hip_y), box.pt(*foot), 1, _t(0.065 * hh))
        cv2.line(legs, box.pt(*foot), box.pt(foot[0] + s * 0.04 * hh, yb), 1, _t(0.035 * hh))
    # Hair: a cap on the head plus thin wavy strands, 1 px wide on small people.
    cv2.ellipse(hair, box.pt(*head), (_t(hr * 1.05), _t(hr * 1.05)), 0, 180, 360, 1, -1)
    strand_t = _t(hh / 350)
    long_hair = rng.random() < 0.5
    for _ in range(int(rng.integers(14, 30))):
        a = rng.uniform(np.pi * 1.05, np.pi * 1.95)
        px, py = head[0] + np.cos(a) * hr, head[1] + np.sin(a) * hr
        direction = a + rng.normal(0, 0.5)
        length = hr * (rng.uniform(1.2, 2.6) if long_hair else rng.uniform(0.3, 1.0))
        pts = [(px, py)]
        for _k in range(5):
            if long_hair:  # long strands fall down the sides of the head
                direction += 0.35 * (np.pi / 2 - direction) + rng.normal(0, 0.25)
            else:
                direction += rng.normal(0, 0.35)
            px, py = px + np.cos(direction) * length / 5, py + np.sin(direction) * length / 5
            pts.append((px, py))
        cv2.polylines(hair, [np.array([box.pt(*q) for q in pts], np.int32)], False, 1, strand_t)
    clothes_color = jitter_color(rng, tuple(rng.integers(30, 230, 3)), 0)
    canvas.paint(legs, _tex(rng, box, tuple(rng.integers(20, 120, 3)), 12), HUMAN, box.x0,
                 box.y0, obj)  # fmt: skip
    canvas.paint(clothes, _tex(rng, box, clothes_color, 16, 3), HUMAN, box.x0, box.y0, obj)
    canvas.paint(skin, _tex(rng, box, SKIN[int(rng.integers(len(SKIN)))], 6), HUMAN, box.x0,
                 box.y0, obj)  # fmt: skip
    canvas.paint(hair, _tex(rng, box, HAIR[int(rng.integers(len(HAIR)))], 10, 1.5), HUMAN,
                 box.x0, box.y0, obj)  # fmt: skip


# --- vegetation ------------------------------------------------------------------------------


def leafy_mask(
    rng: np.random.Generator, h: int, w: int, fill: float = 0.0, unit: float = 1.0
) -> np.ndarray:
    """``(h, w) bool`` blob filling an ellipse in the box, with irregular fine-grained edges:
    coarse lobes plus leaf-sized noise (``unit`` px per pixel of a 384-px-high image), so
    leaves, gaps and stray specks appear at the rim."""
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    d = np.sqrt(xx * xx + yy * yy)
    v = 1.0 - d + 0.22 * noise(rng, h, w, max(h, w) / 4, 2)
    v += 0.2 * noise(rng, h, w, 1.5 * unit, 2)
    return v > 0.22 - fill


def foliage_texture(rng: np.random.Generator, h: int, w: int, unit: float = 1.0) -> np.ndarray:
    """Leaves: green with dark gaps and light clumps at a few-pixel scale, lit from above."""
    base = jitter_color(rng, (55, 110, 45), 14)
    tex = textured(rng, h, w, base, amp=30, scale=3 * unit, grain=10, chroma=10)
    return tex * vertical_shading(h, 1.2, 0.75)


def draw_tree(
    canvas: Canvas, rng: np.random.Generator, x: float, yb: float, height: float, unit: float = 1.0
) -> None:
    """A tree (trunk and leafy crown, both Vegetation) ``height`` tall, standing at ``(x, yb)``;
    ``unit``: leaf size scale (image height / 384)."""
    cw = height * rng.uniform(0.45, 0.8)
    ch = height * rng.uniform(0.5, 0.7)
    box = _Local(x - cw / 2, yb - height, x + cw / 2, yb + 1)
    trunk = box.mask()
    cv2.line(trunk, box.pt(x, yb), box.pt(x, yb - height + ch * 0.5), 1, _t(0.05 * height))
    crown = np.zeros((box.h, box.w), bool)
    top = box.pt(x - cw / 2, yb - height)
    leafy = leafy_mask(rng, int(ch), int(cw), unit=unit)
    crown[top[1] : top[1] + leafy.shape[0], top[0] : top[0] + leafy.shape[1]] = leafy[
        : box.h - top[1], : box.w - top[0]
    ]
    canvas.paint(trunk, _tex(rng, box, (85, 60, 40), 14, 2), VEGETATION, box.x0, box.y0)
    canvas.paint(crown, lambda h, w: foliage_texture(rng, h, w, unit), VEGETATION, box.x0, box.y0)


# --- other "Others" objects ------------------------------------------------------------------


def draw_other(canvas: Canvas, rng: np.random.Generator, x: float, yb: float, size: float) -> None:
    """A street object labelled Others: sign post, bin, bench, fence or bollards."""
    kind = ("sign", "bin", "bench", "fence", "bollards")[int(rng.integers(5))]
    s = size
    box = _Local(x - 1.2 * s, yb - 1.6 * s, x + 1.2 * s, yb + 1)
    obj = canvas.new_object(kind)
    a, b = box.mask(), box.mask()
    if kind == "sign":
        cv2.line(a, box.pt(x, yb), box.pt(x, yb - 1.3 * s), 1, _t(0.04 * s))
        if rng.random() < 0.5:
            cv2.circle(b, box.pt(x, yb - 1.35 * s), _t(0.22 * s), 1, -1)
        else:
            cv2.rectangle(b, box.pt(x - 0.3 * s, yb - 1.55 * s), box.pt(x + 0.3 * s, yb - 1.2 * s),
                          1, -1)  # fmt: skip
        colors = ((120, 120, 125), (200, 30, 30) if rng.random() < 0.5 else (30, 80, 200))
    elif kind == "bin":
        cv2.rectangle(a, box.pt(x - 0.25 * s, yb - 0.6 * s), box.pt(x + 0.25 * s, yb), 1, -1)
        cv2.rectangle(b, box.pt(x - 0.28 * s, yb - 0.68 * s), box.pt(x + 0.28 * s, yb - 0.6 * s),
                      1, -1)  # fmt: skip
        colors = ((40, 90, 50), (30, 30, 30))
    elif kind == "bench":
        cv2.rectangle(a, box.pt(x - 0.8 * s, yb - 0.45 * s), box.pt(x + 0.8 * s, yb - 0.38 * s),
                      1, -1)  # fmt: skip
        cv2.rectangle(a, box.pt(x - 0.8 * s, yb - 0.8 * s), box.pt(x + 0.8 * s, yb - 0.65 * s),
                      1, -1)  # fmt: skip
        for u in (-0.7, 0.7):
            cv2.line(b, box.pt(x + u * s, yb), box.pt(x + u * s, yb - 0.8 * s), 1, _t(0.05 * s))
        colors = ((140, 95, 55), (50, 50, 55))
    elif kind == "fence":
        for y in (0.25, 0.7):
            cv2.line(a, box.pt(x - 1.1 * s, yb - y * s), box.pt(x + 1.1 * s, yb - y * s), 1,
                     _t(0.04 * s))  # fmt: skip
        for u in np.linspace(-1.1, 1.1, 9):
            cv2.line(b, box.pt(x + u * s, yb), box.pt(x + u * s, yb - 0.9 * s), 1, _t(0.035 * s))
        colors = ((170, 170, 175), (150, 150, 155))
    else:
        for u in (-0.8, 0.0, 0.8):
            cv2.rectangle(a, box.pt(x + u * s - 0.07 * s, yb - 0.5 * s),
                          box.pt(x + u * s + 0.07 * s, yb), 1, -1)  # fmt: skip
            cv2.rectangle(b, box.pt(x + u * s - 0.07 * s, yb - 0.42 * s),
                          box.pt(x + u * s + 0.07 * s, yb - 0.36 * s), 1, -1)  # fmt: skip
        colors = ((90, 90, 95), (230, 230, 230))
    canvas.paint(a, _tex(rng, box, colors[0], 12), OTHERS, box.x0, box.y0, obj)
    canvas.paint(b, _tex(rng, box, colors[1], 12), OTHERS, box.x0, box.y0, obj)
