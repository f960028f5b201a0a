"""The simulated labeler's options: its backend name and :class:`SimulationConfig`, the error
rates and sizes ``--backend-option`` sets (see the package's overview)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from annotations.numbers import check_numbers

BACKEND_NAME = "simulated"


@dataclass(frozen=True)
class SimulationConfig:
    """Error rates of the simulated labeler (all options of ``--backend simulated``)."""

    seed: int = 0  # base seed; each image draws from (seed, split, stem)
    miss_area: float = 0.002  # area (fraction of the image) at which half of miss_max is missed
    miss_max: float = 0.9  # miss probability of a vanishingly small instance, 0..1
    fill_radius: float = 0.06  # closing disk radius, fraction of the instance's box diagonal; 0 off
    fill_holes: bool = True  # fill enclosed holes (wheel interiors) after closing
    boundary_shift: float = 2.0  # largest boundary displacement in pixels; 0 off
    false_positive_rate: float = 0.3  # probability of one false-positive region per image, 0..1
    min_area: int = 4  # instances smaller than this (pixels) after the errors are dropped

    def __post_init__(self) -> None:
        # `miss_area=.nan` passed the checks below unsaid; by value, not the field's type
        # string: a caller's seed=nan or min_area=inf (int fields) passed too
        check_numbers(self, "simulated labeler: ")
        # fill_radius is a share of the box diagonal: 1e3 padded each box by 1000 diagonals,
        # and the run was killed for memory; 2**63 failed every image
        for name in ("miss_max", "false_positive_rate", "fill_radius"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"simulated labeler: {name} must be in [0, 1], got {v}")
        # seed -1 failed every image in numpy's generator; min_area -1 was read as 1
        for name in ("miss_area", "boundary_shift", "seed", "min_area"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"simulated labeler: {name} must be >= 0, got {getattr(self, name)}"
                )

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "simulated backend options"
    ) -> SimulationConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{source}: unknown options {sorted(unknown)}; known: {sorted(known)}")
        data = dict(data)
        for f in (f for f in dataclasses.fields(cls) if f.name in data):
            # `miss_max=abc` was a TypeError traceback in the run, `fill_holes=maybe` True
            v, kind = data[f.name], str(f.type)
            number = isinstance(v, int | float) and not isinstance(v, bool)
            if kind == "bool" and not isinstance(v, bool):
                raise ValueError(f"{source}: {f.name} must be true or false, got {v!r}")
            if kind == "int" and not (number and float(v).is_integer()):
                raise ValueError(f"{source}: {f.name} must be a whole number, got {v!r}")
            if kind == "float" and not number:
                raise ValueError(f"{source}: {f.name} must be a number, got {v!r}")
            data[f.name] = int(v) if kind == "int" else v
        return cls(**data)
