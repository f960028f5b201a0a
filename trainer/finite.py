"""Whether a state dict's weights are finite: checked where weights come from a file
(checkpoints, ``--init``, converted releases, ``--backbone-weights``). Its own module, which
imports nothing of the project but :mod:`engine.text` (which imports none of it), so
:mod:`trainer.models` can use it without an import cycle through :mod:`trainer.checkpoint`."""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from engine.text import counted


def check_finite(state: Any, source: str | os.PathLike, kind: str = "model tensor") -> None:
    """A ``ValueError`` (one line naming ``source`` and the first tensor) if a floating tensor
    of the model state ``state`` holds NaN or Inf (a file edited or written by another program:
    ``engine train`` stops at a non-finite loss before its optimizer step, so its own
    checkpoints are finite). Before the forty-eighth round
    ``engine predict`` wrote a meaningless map per image from it, and ``engine train --resume``
    or ``--init`` ran until the first non-finite loss. About 1% of the time ``torch.load``
    takes (docs/trainer.md). ``kind`` names the tensor in the error (``--backbone-weights``'
    files: ``backbone tensor``)."""
    if not isinstance(state, dict):  # load_weights names a state that is no dict
        return
    bad = [
        key
        for key, t in state.items()
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not _finite(t)
    ]
    if bad:
        t = state[bad[0]]
        what = " and ".join(
            name
            for name, found in (("NaN", torch.isnan(t).any()), ("Inf", torch.isinf(t).any()))
            if found
        )
        more = f" (and {counted(len(bad) - 1, 'more tensor')})" if len(bad) > 1 else ""
        raise ValueError(
            f"{source}: {kind} {bad[0]} holds {what} values{more}; weights that are not "
            "finite predict nothing meaningful and train to a non-finite loss"
        )


def _finite(t: torch.Tensor) -> bool:
    """Whether every value of ``t`` is finite: its sum is finite unless a value is NaN or Inf
    or the sum overflowed (then the values are looked at one by one). The sum reads the
    tensor once and allocates nothing: ``torch.isfinite(t).all()`` took 5-12x as long (the
    forty-eighth round's timing, docs/trainer.md "Non-finite weights")."""
    return math.isfinite(t.sum()) or bool(torch.isfinite(t).all())
