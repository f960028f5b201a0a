"""The authors' MaSSFormer checkpoint file (mmsegmentation's format): read safely, and told
from an engine checkpoint. Apart from :mod:`trainer.convert`, which converts it, so that
:func:`trainer.checkpoint.load_checkpoint` (every loader of engine checkpoints) names such a
file with the command converting it, instead of listing the keys an engine checkpoint has."""

from __future__ import annotations

import os
import pickle
import shlex
import typing
from pathlib import Path

import torch

from annotations.fileio import UNREADABLE, unreadable_torch_file


def first_keys(items: list[str], n: int = 3) -> str:
    """The first ``n`` of ``items``, "(+N more)" for the rest."""
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


class _Stub:
    """Stands in for any class of a foreign library (mmengine's logger state, ...) while
    unpickling: it absorbs the constructor and state and runs no code."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args = args

    def __setstate__(self, state: object) -> None:
        self.state = state


class _DataOnlyUnpickler(pickle.Unpickler):
    """Resolves only what ``torch.load(weights_only=True)`` allows (tensors, storages, dtypes,
    plain containers) and numpy's array rebuilders; every other global becomes
    :class:`_Stub`. Used when ``weights_only`` refuses an mmengine training checkpoint (its
    ``message_hub`` holds mmengine objects), so no foreign code ever runs."""

    _NUMPY = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        allowed = _torch_safe_globals().get(f"{module}.{name}")
        if allowed is not None:
            return allowed
        if (module, name) in self._NUMPY or module == "numpy.dtypes":
            return super().find_class(module, name)
        return _Stub


def _torch_safe_globals() -> dict[str, object]:
    """torch's own ``weights_only`` allowlist ("module.name" -> object)."""
    from torch import _weights_only_unpickler

    return _weights_only_unpickler._get_allowed_globals()


def _data_only_load(file: typing.BinaryIO, **kwargs: typing.Any) -> object:
    """``pickle.load`` with :class:`_DataOnlyUnpickler`."""
    return _DataOnlyUnpickler(file, **kwargs).load()


class _DataOnlyPickle:
    """A ``pickle_module`` for ``torch.load`` with :class:`_DataOnlyUnpickler`. Both of its
    readers: torch's legacy (non-zip) format reads its header records with ``load``, which was
    ``pickle.load`` itself, and a plain pickle handed over as a checkpoint ran its code there
    (``os.system``, from every loader of engine checkpoints, which asks this module whether a
    file it cannot read is the release's)."""

    Unpickler = _DataOnlyUnpickler
    load = staticmethod(_data_only_load)


def read_release_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, meta)`` of an mmseg checkpoint (``state_dict`` + ``meta``; a bare state
    dict is accepted too). ``FileNotFoundError`` if absent; ``ValueError`` (one line) if it is
    not a readable torch file (truncated, another format) or holds no state dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" not in str(e):
            raise unreadable_torch_file(path, e, "PyTorch checkpoint") from None
        try:  # a full mmengine training checkpoint: foreign classes become stubs
            ckpt = torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=_DataOnlyPickle
            )
        except Exception as e2:  # noqa: BLE001 - any reader error is "not readable"
            raise unreadable_torch_file(path, e2, "PyTorch checkpoint") from None
    except Exception as e:  # zip/EOF/runtime errors of a truncated or foreign file
        raise unreadable_torch_file(path, e, "PyTorch checkpoint") from None
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        state, meta = ckpt["state_dict"], ckpt.get("meta") or {}
    elif (
        isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values())
    ):
        state, meta = ckpt, {}
    else:
        raise ValueError(
            f"{path}: no mmseg state dict (expected a dict with 'state_dict' and 'meta', "
            f"found {type(ckpt).__name__} with keys {first_keys([str(k) for k in ckpt] if isinstance(ckpt, dict) else [])})"
        )
    return state, meta if isinstance(meta, dict) else {}


def is_release_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds an mmseg (release) state dict: ``backbone.*`` / ``decode_head.*``
    keys, even in a training checkpoint holding mmengine objects; False for anything else,
    readable or not."""
    try:
        state, _ = read_release_checkpoint(path)
    except UNREADABLE:
        return False
    return any(k.startswith(("backbone.", "decode_head.")) for k in state)


def unconverted_release(path: str | os.PathLike) -> ValueError:
    """The error for a release checkpoint given where an engine checkpoint is read."""
    return ValueError(
        f"{path}: an mmseg checkpoint (the release's format); convert it first: "
        f"engine convert-massformer {shlex.quote(str(path))} --out FILE.pt"
    )
