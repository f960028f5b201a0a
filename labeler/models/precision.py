"""Device and precision: the device a name resolves to, the autocast dtype a precision means on
it, SAM's positional encodings kept in fp32 under autocast, and torch's read-only-array
warning spent once before labeling."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any


def spend_readonly_warning() -> None:
    """Spend torch's once-per-process warning "The given NumPy array is not writable" here,
    ignored, rather than at the first image (decoded images are read-only arrays the
    processors only read). The real backends' ``setup`` call it in the main thread, before the
    loader threads start. Before the forty-eighth round they installed a filter for the
    process, which stayed in a notebook's ``warnings.filters`` after the run; scoping it to
    each processor call instead is unsafe: ``warnings.catch_warnings`` saves and restores the
    process's filter list, and four loader threads doing so left the filter behind and dropped
    a filter the caller added meanwhile, in 3 of 3 runs (docs/labeler.md)."""
    import numpy as np
    import torch

    with warnings.catch_warnings():  # one thread: nothing else labels yet
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        torch.from_numpy(np.frombuffer(b"\0", np.uint8))


def resolve_device(device: str) -> str:
    """:func:`engine.devices.resolve_device` (kept here: the backends and tests patch it)."""
    from engine.devices import resolve_device as resolved

    return resolved(device)


def resolve_dtype(precision: str, device: str):
    """The autocast dtype, or None for plain fp32."""
    import torch

    if precision == "fp32" or (precision == "auto" and not device.startswith("cuda")):
        return None
    if precision == "auto":
        from engine.devices import native_bf16

        # emulated bf16 on a T4 or V100 (compute capability 7.x) is slower than fp32
        return torch.bfloat16 if native_bf16(device) else torch.float16
    if not device.startswith("cuda"):
        raise ValueError(f"--precision {precision} needs a CUDA device (got {device})")
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def autocast_name(precision: str, device: str) -> str | None:
    """The autocast dtype :func:`resolve_dtype` gives, as a name ("bfloat16", "float16") or None
    for fp32; torch is imported only when the answer depends on the machine (precision and
    device both auto-resolved), so a resumed run with nothing to do stays fast."""
    if precision == "fp32" or (precision == "auto" and device == "cpu"):
        return None
    if precision in ("fp16", "bf16"):
        return {"fp16": "float16", "bf16": "bfloat16"}[precision]
    dtype = resolve_dtype(precision, resolve_device(device))
    return None if dtype is None else str(dtype).replace("torch.", "")


def autocast(device: str, dtype) -> contextlib.AbstractContextManager:
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def keep_prompt_encoder_fp32(model: Any) -> None:
    """Run SAM / SAM-HQ's positional encodings (the prompt encoder's Fourier features of box
    corners, and the image-wide ones) in fp32 even under autocast, as the original SAM does:
    in bf16 the phase ``2 pi (2 x - 1) @ G`` loses up to 0.17 rad. The model's weights stay fp32
    (autocast only casts inputs of matmuls), so disabling autocast there is enough."""
    import torch

    targets = [
        getattr(model, "prompt_encoder", None),
        getattr(model, "shared_image_embedding", None),
    ]
    for module in targets:
        if module is None or getattr(module, "_mass_fp32", False):
            continue
        forward = module.forward

        def fp32_forward(*args, _forward=forward, **kwargs):
            with torch.autocast("cuda", enabled=False), torch.autocast("cpu", enabled=False):
                args = tuple(
                    a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args
                )
                kwargs = {
                    k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
                    for k, v in kwargs.items()
                }
                return _forward(*args, **kwargs)

        module.forward = fp32_forward
        module._mass_fp32 = True
