"""Training checkpoints: written atomically, loadable without any network or backbone download.

A checkpoint is a dict saved with ``torch.save``::

    format      1
    step        optimizer steps completed
    model       state dict of the (unwrapped) model
    optimizer   AdamW state dict
    scheduler   {"name": "cosine", "step", "iters", "warmup_iters", "min_lr_ratio"}
    rng         python / numpy / torch / cuda generator states at the end of ``step``
    config      the resolved TrainConfig as a plain dict
    model_config  the ModelConfig as a plain dict (rebuilds the architecture)
    taxonomy    Taxonomy.to_dict() of the training data

Everything is plain Python, numbers and tensors, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from annotations.fileio import (
    atomic_file,
    not_this_output,
    output_kind,
    remove_dead_temporaries,
    unreadable_torch_file,
)
from engine.runinfo import TRAIN_RUN_RECORDS
from trainer.finite import check_finite
from trainer.release_file import is_release_checkpoint, unconverted_release

FORMAT = 1
REQUIRED = ("format", "step", "model", "model_config", "taxonomy")


def checkpoint_dict(
    step: int,
    model: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    taxonomy: dict[str, Any],
    /,
    **extra: Any,
) -> dict[str, Any]:
    """The :data:`REQUIRED` entries of a checkpoint (``format`` filled in) plus ``extra`` (the
    optimizer, scheduler and generator states of training, a conversion's provenance): the one
    place a writer spells them, so ``engine train``, ``convert-massformer`` and the tests write
    the same layout."""
    core = {
        "format": FORMAT,
        "step": step,
        "model": model,
        "model_config": model_config,
        "taxonomy": taxonomy,
    }
    clash = core.keys() & extra.keys()
    if clash:
        raise ValueError(f"checkpoint_dict: {', '.join(sorted(clash))} given twice")
    return {**core, **extra}


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace`` onto ``path``:
    a crash mid-write never leaves a truncated checkpoint. The file gets the permissions of
    every other output (``atomic_file``: those ``open()`` gives), not owner-only ones: a
    checkpoint on a shared machine is read by the others who predict with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a killed save's temporary file, as big as the checkpoint (convert-massformer's)
    remove_dead_temporaries(path)
    with atomic_file(path) as f:
        writer = _WriteErrors(f)
        try:
            torch.save(state, writer)
        except RuntimeError:
            if writer.error is not None:  # the disk's error, which atomic_file names the path in
                raise writer.error from None
            raise
    return path


class _WriteErrors:
    """A binary file that keeps the error of a failed ``write``: ``torch.save`` swallows it and
    raises its zip writer's "[enforce fail at inline_container.cc] unexpected pos 6607040 vs
    6606928" instead, so a full disk read as a bug and named no file (before the forty-first
    round: ``engine train`` into an 18 MB file system)."""

    def __init__(self, f: Any) -> None:
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors for missing or foreign
    files, an mmseg (release) checkpoint named as such with the command converting it, whoever
    reads it (train --init and --resume, predict, the demo's start checkpoint). A training
    run's folder, or one of its records (``saved_step.json``: :data:`TRAIN_RUN_RECORDS`), names
    its ``last.pt``; any other file there (a 0-byte ``step_*.pt``) is read, and refused, as a
    checkpoint."""
    path = Path(path)
    if path.is_dir():  # a run folder given for its checkpoint: name the file meant
        last = path / "last.pt"
        raise IsADirectoryError(
            f"{path}: a folder, not a checkpoint"
            + (
                f"; its last checkpoint is {last}"
                if last.is_file()
                else not_this_output(path, "a training run") or " (no last.pt in it)"
            )
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    last = path.parent / "last.pt"
    if path.name in TRAIN_RUN_RECORDS and last.is_file() and _training_run(path.parent):
        # a training run's record (saved_step.json beside last.pt, metrics.jsonl): before,
        # "not a PyTorch file", naming not the file meant
        raise ValueError(
            f"{path}: not a checkpoint, a file of the training run {path.parent}; its last "
            f"checkpoint is {last}"
        )
    try:
        ckpt = _read_checkpoint(path, map_location)
    except ValueError:
        if is_release_checkpoint(path):  # the authors' file, unconverted: say how to convert it
            raise unconverted_release(path) from None
        raise
    check_finite(ckpt["model"], path)
    return ckpt


def _training_run(folder: Path) -> bool:
    """Whether ``folder`` is a training run (engine train's): its metrics.jsonl
    (:func:`annotations.fileio.output_kind`), or, before its first logged step, its config.yaml
    and config.json."""
    kind = output_kind(folder)
    if kind is not None:
        return kind[0] == "metrics.jsonl"
    return all((folder / name).is_file() for name in ("config.yaml", "config.json"))


def _read_checkpoint(path: Path, map_location: str | torch.device) -> dict:
    """:func:`load_checkpoint` of a file that is there."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle / zip errors of many kinds
        raise unreadable_torch_file(path, e) from None
    missing = [k for k in REQUIRED if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path}: not an engine training checkpoint (missing {missing})")
    if ckpt["format"] != FORMAT:
        raise ValueError(f"{path}: checkpoint format {ckpt['format']}, expected {FORMAT}")
    return ckpt


def rng_state(cuda: bool | None = None) -> dict[str, Any]:
    """Every generator a training step draws from (numpy's as plain lists: weights_only-safe).
    ``cuda``: include the CUDA generators (None: when CUDA is available); a CPU run on a GPU
    machine leaves them out rather than start CUDA in each of its processes."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, key.tolist(), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() if cuda is None else cuda:
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], cuda: bool = True) -> None:
    """Restore what :func:`rng_state` captured; the CUDA generators only with ``cuda`` (a CPU
    run resumed from a GPU run's checkpoint does not start CUDA)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"].cpu())
    if cuda and "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


class _ProcessSetting:
    """A process-wide setting (torch's default dtype, the random generators) that blocks in
    several threads change: the first block to enter saves the caller's value and the last to
    leave puts it back. Before, each block saved what it found and put that back, so two that
    overlapped in two threads (A enters, B enters, A leaves, B leaves) left the value the first
    had set for good and ran the rest of the second under the caller's. A block nested in
    another of the same thread puts back what it found, as before."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0  # blocks entered and not left, all threads
        self.caller: Any = None  # the value the first of them found
        self.depth = threading.local()  # this thread's blocks

    @contextlib.contextmanager
    def block(self, save: Any, restore: Any, apply: Any = None) -> Iterator[None]:
        with self.lock:
            found = save()
            if self.inside == 0:
                self.caller = found
            self.inside += 1
            self.depth.n = getattr(self.depth, "n", 0) + 1
            if apply is not None:
                apply()
        try:
            yield
        finally:
            with self.lock:
                self.inside -= 1
                self.depth.n -= 1
                if self.inside == 0:
                    restore(self.caller)
                    self.caller = None
                elif self.depth.n > 0:  # nested in this thread's own block
                    restore(found)


_DEFAULT_DTYPE = _ProcessSetting()
_RNG = _ProcessSetting()


@contextlib.contextmanager
def torch_defaults(training: bool = False) -> Iterator[None]:
    """The two torch settings the engine's networks compute under, whatever the calling program
    set, restored when the block ends: float32 as the default dtype (a notebook's
    ``torch.set_default_dtype(torch.float64)`` built float64 networks: ``train`` stopped in its
    loss with "Index put requires the source and destination dtypes match", ``predict_dir``
    computed in float64, slower than the command line and not its arithmetic) and, for
    ``training``, grad mode on (``torch.set_grad_enabled(False)``, ``torch.no_grad()`` or
    ``torch.inference_mode()`` around ``train`` stopped its first step with "element 0 of
    tensors does not require grad"). No other torch setting is changed (deterministic
    algorithms, matmul precision, anomaly detection stay the caller's). Grad mode is the
    thread's; the default dtype is the process's: while such a call runs, the caller's other
    threads see float32 too (nothing changes where it is float32 already), and where calls
    overlap in several threads the last to return puts the caller's back
    (:class:`_ProcessSetting`)."""

    def float32() -> None:
        torch.set_default_dtype(torch.float32)

    with _DEFAULT_DTYPE.block(torch.get_default_dtype, torch.set_default_dtype, float32):
        if not training:
            yield
            return
        with torch.inference_mode(False), torch.enable_grad():
            yield


@contextlib.contextmanager
def caller_rng() -> Iterator[None]:
    """The calling program's random generators (Python's, NumPy's, torch's CPU one and the CUDA
    ones where CUDA was already started) as they were, once the block ends: training seeds them
    from its config and draws from them, prediction draws from torch's while it builds the
    network. Called from Python, ``train`` and ``predict_dir`` leave the caller's random stream
    where it was (before, every ``train`` call reset it to ``cfg.seed``). The generators are the
    process's: calls overlapping in several threads draw from the same ones (their runs are not
    reproducible), and the last to return puts the caller's back (:class:`_ProcessSetting`)."""

    def save() -> tuple[dict[str, Any], bool]:
        cuda = torch.cuda.is_initialized()  # not started here: a CPU run stays off the GPU
        return rng_state(cuda), cuda

    def restore(saved: tuple[dict[str, Any], bool]) -> None:
        set_rng_state(*saved)

    with _RNG.block(save, restore):
        yield


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """A short SHA-256 of a model's weights (names, dtypes, shapes and bytes, in name order):
    which weights made a prediction, whatever else the checkpoint holds (optimizer state,
    step). A checkpoint retrained to the same path and step has another digest."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:16]


def model_config_of(ckpt: dict, source: str) -> Any:
    """The checkpoint's ``ModelConfig``, a value out of range or of another type one line
    naming ``source`` (``ModelConfig``'s own message names the field, not the file)."""
    from trainer.models import ModelConfig

    try:
        return ModelConfig.from_dict(dict(ckpt["model_config"]))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: model_config: {e}") from None


def load_weights(model: torch.nn.Module, state: Any, source: str) -> None:
    """``model.load_state_dict(state)``, a mismatch (a tensor missing, renamed or of another
    shape than the checkpoint's model config builds) one line naming ``source`` and the first
    tensors; torch's message starts with a line that names neither."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:  # a state that is no dict: TypeError
        detail = "; ".join(line.strip() for line in str(e).splitlines()[1:3] if line.strip())
        raise ValueError(
            f"{source}: its weights do not fit the model its model_config builds"
            + (f" ({detail[:300]})" if detail else f" ({e})")
        ) from None


def model_from_checkpoint(
    ckpt: str | os.PathLike | dict, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Any, dict]:
    """``(model in eval mode on device, Taxonomy, checkpoint dict)``: the architecture is rebuilt
    from the stored model config (no backbone weights are downloaded) and the weights loaded."""
    from annotations.taxonomy import Taxonomy
    from trainer.models import build_model

    source = "checkpoint"  # a file's errors name it (before: "checkpoint taxonomy: ..." alone)
    if not isinstance(ckpt, dict):
        source = str(ckpt)
        ckpt = load_checkpoint(ckpt)
    else:  # a file's were checked as it loaded
        check_finite(ckpt["model"], source)
    model = build_model(model_config_of(ckpt, source))
    load_weights(model, ckpt["model"], source)
    taxonomy = Taxonomy.from_dict(ckpt["taxonomy"], source=f"{source}: taxonomy")
    return model.to(device).eval(), taxonomy, ckpt
