"""The "simulated" labeling backend: pseudo labels made from TRUE masks, with Grounded-SAM's
documented failure modes, for demos and ablations without detector weights or a GPU.

Nothing here runs a model. Every output of this backend says ``backend: "simulated"``.

Failure modes (DESIGN.md section 1 and 6; rates are options of :class:`SimulationConfig`):

* **small instances missed**: an instance of ``area`` pixels is dropped with probability
  ``miss_max / (1 + (area / (miss_area * H * W)) ** 2)``: half of ``miss_max`` at
  ``miss_area`` of the image, rising towards ``miss_max`` as the instance shrinks (Grounding
  DINO sees a 3840x2160 photo at 750x1333 px, HxW: its 800 px short side capped by 1333);
* **thin interior structure filled**: each instance is closed with a disk of radius
  ``fill_radius`` x the instance's box diagonal, then its holes are filled (SAM turns a wheel
  with spokes into a solid disk, hiding the ground seen through it);
* **boundaries shifted**: the outline moves in or out by a smooth random offset of up to
  ``boundary_shift`` pixels (per instance a constant bias plus low-frequency wobble);
* **false positives**: with probability ``false_positive_rate`` per image, one connected
  region of *other* Others objects (a car labelled bicycle, a bin, a sign), or a random blob
  when there is none, is added as an instance with a low score.

Randomness is drawn per image from ``(seed, split, stem)``, so the result of an image does not
depend on batching, sharding or resuming.

One module per part, each using only those listed before it:

- :mod:`~labeler.simulated.options`: :class:`SimulationConfig`, the rates above;
- :mod:`~labeler.simulated.draws`: the errors drawn per image (:func:`image_rng`,
  :func:`simulate_labels`, :func:`simulate_cropped`);
- :mod:`~labeler.simulated.truth`: the dataset's true masks (:func:`load_truth`);
- :mod:`~labeler.simulated.backend`: :class:`SimulatedBackend`, which the labeling runner
  drives.

Every name callers import from ``labeler.simulated`` is imported here from its module.
"""

from __future__ import annotations

from labeler.simulated.backend import SimulatedBackend
from labeler.simulated.draws import SOFT_MARGIN, image_rng, simulate_cropped, simulate_labels
from labeler.simulated.options import BACKEND_NAME, SimulationConfig
from labeler.simulated.truth import load_truth, read_instance_ids, truth_paths

__all__ = [
    "BACKEND_NAME",
    "image_rng",
    "load_truth",
    "read_instance_ids",
    "simulate_cropped",
    "simulate_labels",
    "SimulatedBackend",
    "SimulationConfig",
    "SOFT_MARGIN",
    "truth_paths",
]
