"""``--device`` as every command takes it, and what a CUDA device can compute in.

One rule for label, train, predict, evaluate and demo: ``auto`` (CUDA when there is one, else the
CPU), ``cpu``, ``cuda`` or ``cuda:N`` with N below the number of visible GPUs. Anything else
(Apple's ``mps``, ``xpu``, ``meta``) is refused with one line before any file is written: the
engine runs and is tested on CPUs and NVIDIA GPUs only (docs/gpu.md, "Other accelerators").
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

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
        raise RuntimeError(f"{given} {name}: this machine has {_gpus(count)}")
    if name == "cuda":
        check_local_rank(count, f"{given} {name}")
    return name


def env_int(name: str, default: int, least: int = 0, env: Mapping[str, str] | None = None) -> int:
    """The whole number in environment variable ``name`` (torchrun's ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``), ``default`` where it is not set; one ValueError line
    naming the variable where it is empty, not a whole number or below ``least`` (before:
    "invalid literal for int() with base 10: ''", naming nothing)."""
    text = (os.environ if env is None else env).get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(
            f"environment variable {name}={text!r}: not a whole number (torchrun sets it; unset "
            "it to run one process)"
        ) from None
    if value < least:
        raise ValueError(f"environment variable {name}={text!r}: must be >= {least}")
    return value


def rank_and_world(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(RANK, WORLD_SIZE)`` from the environment (0 and 1 where unset); one ValueError line
    naming both where the rank is not below the world size. Every command that reads them
    checks them so (engine train before its run is locked, spawned or written; engine label
    before its shard is chosen): before, ``RANK=1`` alone (or ``RANK=3 WORLD_SIZE=1``) trained
    the whole run as a rank that owns nothing, without the run's lock, and printed nothing,
    and engine label labelled every image as one process. A world of several processes without
    ``RANK`` (``WORLD_SIZE=4`` exported by hand; torchrun and ``--processes`` set both) is
    refused so too: engine label labelled every image as one process without a word, and engine
    train failed in torch's rendezvous ("environment variable RANK expected")."""
    env = os.environ if env is None else env
    world, rank = env_int("WORLD_SIZE", 1, 1, env), env_int("RANK", 0, 0, env)
    if world > 1 and "RANK" not in env:
        raise ValueError(
            f"environment variables RANK (unset) and WORLD_SIZE={world}: a world of several "
            "processes needs each one's rank; set both (torchrun does) or neither"
        )
    if not rank < world:
        unset = "" if "WORLD_SIZE" in env else " (unset)"
        raise ValueError(
            f"environment variables RANK={env['RANK']} and WORLD_SIZE={world}{unset}: "
            "the rank must be below the world size"
        )
    return rank, world


def _gpus(count: int) -> str:
    have = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
    return f"{count} visible {'GPU' if count == 1 else 'GPUs'} ({have})"


def check_local_rank(count: int, what: str) -> None:
    """Under torchrun a rank trains on ``cuda:LOCAL_RANK``: a local rank beyond the ``count``
    visible GPUs (``--nproc-per-node 4`` on 2 GPUs) is one RuntimeError line; before, the
    driver's "invalid device ordinal" traceback. ``what``: the setting, as errors name it."""
    # bad text is one line naming the variable (before: passed over, and cuda:0 taken)
    local = env_int("LOCAL_RANK", 0)
    ranks = env_int("LOCAL_WORLD_SIZE", 0, 1) if "LOCAL_WORLD_SIZE" in os.environ else None
    if local < count:
        return
    of = "" if ranks is None else f" of {ranks}"
    raise RuntimeError(
        f"{what}: this process is local rank {local}{of} (torchrun), but this machine has "
        f"{_gpus(count)}; start at most {count} per machine (torchrun --nproc-per-node {count})"
    )


def resolve_device(name: str, given: str = "--device") -> str:
    """:func:`check_device`, then ``auto`` -> ``cuda`` when this machine has a CUDA GPU, else
    ``cpu``; any other name as given. The one place ``auto`` is decided (engine label, train,
    predict, evaluate and demo all resolve it here); torch is imported only for ``auto``."""
    name = check_device(name, given)
    if name == "auto":
        import torch

        if not torch.cuda.is_available():
            return "cpu"
        check_local_rank(torch.cuda.device_count(), f"{given} auto")  # as cuda's
        return "cuda"
    return name


def native_bf16(device=None) -> bool:
    """Whether CUDA ``device`` (None: the current one) computes in bfloat16 natively: compute
    capability 8.0 or later, or ROCm, as ``torch.cuda.is_bf16_supported(including_emulation=
    False)`` answers. Its default, ``including_emulation=True``, answers True on a T4 or V100
    too: it only checks that a bf16 tensor can be made there, and bf16 arithmetic on those GPUs
    is emulated (slower than float32; cuDNN has no bf16 convolutions below 8.0)."""
    import torch

    if not torch.cuda.is_available():
        return False
    return bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8


def bf16_autocast(amp: bool, device) -> bool:
    """Whether a run with ``amp`` on runs under bf16 autocast on torch ``device``: on a CUDA
    GPU that computes in bf16 natively (:func:`native_bf16`), else in float32. Not fp16 on a T4
    or V100: training in fp16 needs a gradient scaler, and the model was measured in bf16."""
    return amp and device.type == "cuda" and native_bf16(device)
