"""Synthetic MaSS-style scenes: a deterministic generator of small datasets in the MaSS13K layout.

Scenes have sky, ground, buildings with windows, vegetation with fine ragged edges, water,
people with thin hair strands and "Others" objects, among them bicycles (thin wheels with
spokes: the ground shows through) and cars of many sizes. The 7-class labels mark bicycles and
cars as Others (0), as MaSS13K does; their true masks are written separately as new-class truth.

    from engine.synth import SynthConfig, generate
    root = generate(SynthConfig(out=Path("data/synth"), seed=0), progress=False)
"""

from engine.synth.config import GENERATOR_VERSION, NEW_CLASSES, SynthConfig, differences
from engine.synth.scene import Scene, render_scene
from engine.synth.writer import generate, recorded, stem_of

__all__ = [
    "GENERATOR_VERSION",
    "NEW_CLASSES",
    "Scene",
    "SynthConfig",
    "differences",
    "generate",
    "recorded",
    "render_scene",
    "stem_of",
]
