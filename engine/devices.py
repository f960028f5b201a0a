"""``--device`` as every command takes it, and what a CUDA device can compute in.

One rule for label, train, predict, evaluate and demo: ``auto`` (CUDA when there is one, else the
CPU), ``cpu``, ``cuda`` or ``cuda:N`` with N below the number of visible GPUs. Anything else
(Apple's ``mps``, ``xpu``, ``meta``) is refused with one line before any file is written: the
engine runs and is tested on CPUs and NVIDIA GPUs only (docs/gpu.md, "Other accelerators").
"""

from __future__ import annotations

import os
import re

SPELLINGS = "auto, cpu, cuda or cuda:N"


def check_device(name: str, given: str = "--device") -> str:
    """``name`` as given (``auto`` kept) when it is a device of this machine, else one line:
    ValueError for a spelling the engine does not take, RuntimeError for a CUDA device the
    machine lacks. ``given``: how errors name the setting (``--device``, ``c.yaml: device``)."""
    if name in ("auto", "cpu"):
        return name
    import torch

    if not re.fullmatch(r"cuda(:\d+)?", name):
        try:
            kind = torch.device(name).type
        except RuntimeError:
            raise ValueError(f"{given} {name!r} is not a device; use {SPELLINGS}") from None
        raise ValueError(
            f"{given} {name}: the engine runs on the CPU or CUDA GPUs, not on {kind}; "
            f"use {SPELLINGS}"
        )

    if not torch.cuda.is_available():
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = "" if hidden is None else f" (CUDA_VISIBLE_DEVICES is {hidden!r})"
        raise RuntimeError(f"{given} {name}: CUDA is not available on this machine{why}")
    index = int(name.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        have = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        gpus = "GPU" if count == 1 else "GPUs"
        raise RuntimeError(f"{given} {name}: this machine has {count} visible {gpus} ({have})")
    return name

