"""Loading Grounding DINO and SAM / SAM-HQ through transformers, with one clear error when the
weights are missing (never a transformers traceback), and device / precision resolution."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from annotations.fileio import first_line
from engine.text import counted
from labeler.config import PATH_STARTS, check_docstrings_kept

log = logging.getLogger(__name__)

# How long the one hub check may wait for a TCP connection (name resolution comes first and has
# the system resolver's own timeout).
HUB_PROBE_TIMEOUT_S = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
# How long hub_unreachable's answer holds before the hub is asked again: the loads of one
# command ask once; a long-lived process (a notebook, a service) sees the network come back.
HUB_RECHECK_S = 60.0
# hub_unreachable's last answer: (time.monotonic(), (endpoint, proxy variables), reason or None)
_HUB_VERDICT: tuple[float, tuple[str, tuple[str, ...]], str | None] | None = None

# model_type values of checkpoints the segmenter accepts. SAM 2 / 2.1 hub repos
# (facebook/sam2.1-hiera-large, ...) say "sam2_video"; transformers maps that type to Sam2Model
# for mask generation (AutoModelForMaskGeneration), ignoring the video-memory weights.
SEGMENTER_TYPES = ("sam", "sam_hq", "sam2", "sam2_video")
DETECTOR_TYPES = ("grounding-dino", "mm-grounding-dino")


def preprocess(processor: Any, image: Any) -> Any:
    """``processor(images=image)`` as PyTorch tensors for one ``(H, W, 3)`` RGB array.

    The channel axis is given, not guessed: transformers guesses it from the shape and takes an
    image 1, 3 or 4 pixels tall for channels-first, so such an image (or crop) was resized
    transposed (its boxes and sizes silently wrong) or failed."""
    return processor(images=image, return_tensors="pt", input_data_format="channels_last")


# In every message of :class:`ImageTooThin` and the closing line counting them.
TOO_THIN = "too thin to label"
OVER_PAD = "larger than the pad size"  # :class:`ImageOverPad`'s

# why each kind of :class:`CannotLabel` (the manifest's ``cannot``) fails on every run, in the
# closing line counting them
CANNOT = {
    "too_thin": f"{TOO_THIN}: a model would resize {{them}} to 0 px across",
    "over_pad": f"{OVER_PAD} of a segmenter whose processor does not resize: do_resize false",
    "refine_over_pad": f"an instance's crop {OVER_PAD} of a --refine segmenter whose processor "
    "does not resize: do_resize false",
}


class CannotLabel(ValueError):
    """An image the backend fails on every run: ``engine label`` records it with ``retry``
    false (and its ``cannot``: the class's ``kind``, a key of :data:`CANNOT`) and offers no
    retry for it (:func:`failure_advice`)."""

    kind = ""


class ImageTooThin(CannotLabel):
    """An image a model's processor would resize to 0 pixels across."""

    kind = "too_thin"


class ImageOverPad(CannotLabel):
    """An image larger than the pad size of a SAM processor that does not resize: transformers
    fails it with "Padding dimensions are negative", on every run."""

    kind = "over_pad"


class CropOverPad(CannotLabel):
    """An image with an instance whose ``--refine`` crop (labeler/refine.py's ``crop_window``)
    is larger than the pad size of a SAM processor that does not resize: the backend gives the
    same boxes, hence the same crops, on every run."""

    kind = "refine_over_pad"


def failure_advice(
    failed: int, not_retryable: int, cannot: dict[str, int] | None = None
) -> list[str]:
    """The closing lines on a label run's failed images (``engine label``'s summary, ``engine
    info RUN_DIR``): ``failed`` images whose last try failed, of which ``not_retryable`` fail on
    every run (:class:`CannotLabel`; ``retry`` false in the manifest), ``cannot`` of them by
    kind (:data:`CANNOT`; those not counted there are too thin: a manifest from before the
    fifty-fourth round records no kind, and knew no other): a retry is offered for the others
    only, and a line per kind says why running again fails them again."""
    lines = []
    if failed > not_retryable:
        n = counted(failed - not_retryable, "image")
        lines.append(f"{n} failed; run the same command again to retry exactly those")
    others = {k: n for k, n in (cannot or {}).items() if k != "too_thin"}
    kinds = {"too_thin": not_retryable - sum(others.values()), **others}
    for kind, n in kinds.items():
        if n > 0:
            them = "them" if n > 1 else "it"
            lines.append(
                f"{counted(n, 'image')} cannot be labelled by this backend "
                f"({CANNOT.get(kind, kind).format(them=them)}); running again fails {them} again"
            )
    return lines


def resized_size(processor: Any, height: int, width: int) -> tuple[int, int, int, str] | None:
    """``(height, width, longest_edge, limit)``: the size an image processor resizes an image of
    ``height x width`` to, with its rounding: Grounding DINO's ``shortest_edge``/``longest_edge``
    resize (transformers' ``get_size_with_aspect_ratio``), SAM's and SAM-HQ's ``longest_edge``
    (``int(side * scale + 0.5)`` as ``SamImageProcessor._get_preprocess_shape``). ``limit`` says
    which shapes keep a pixel across. ``None`` for a processor resizing every image to one fixed size (SAM 2, SAM 3)
    or none (``do_resize`` false: it keeps every image's size, a 1x3000 image too).
    """
    from transformers.image_transforms import get_size_with_aspect_ratio

    if not getattr(processor, "do_resize", True):  # before, such an image was refused as too thin
        return None

    size = processor.size
    edge = size.get if isinstance(size, dict) else partial(getattr, size)
    shortest, longest = edge("shortest_edge", None), edge("longest_edge", None)
    if shortest and longest:
        oh, ow = get_size_with_aspect_ratio((height, width), shortest, longest)
        return oh, ow, longest, f"under {2 * longest} times"
    if longest:
        scale = longest * 1.0 / max(height, width)
        oh, ow = int(height * scale + 0.5), int(width * scale + 0.5)
        return oh, ow, longest, f"at most {2 * longest} times"
    return None


def refuse_too_thin(processor: Any, shape: tuple[int, ...], name: str, model: str) -> None:
    """Raise :class:`ImageTooThin` (one line naming ``name``, its size and the limit) when
    ``processor`` would resize an image of ``shape`` (H, W, ...) to 0 pixels across: transformers
    then fails with "Size must contain 'height' and 'width' keys ... SizeDict(height=0, ...)"."""
    h, w = int(shape[0]), int(shape[1])
    got = resized_size(processor, h, w)
    if got is not None and min(got[:2]) < 1:
        raise ImageTooThin(
            f"{name} is {h}x{w} px (HxW), {TOO_THIN}: the {model}'s processor (longest_edge "
            f"{got[2]}) resizes it to {got[0]}x{got[1]} px; it reads an image whose long side is "
            f"{got[3]} its short side"
        )


def refuse_over_pad(processor: Any, shape: tuple[int, ...], name: str, crop: bool = False) -> None:
    """Raise :class:`ImageOverPad` (one line naming ``name``, its size and the pad size) when a
    SAM ``processor`` that does not resize (``do_resize`` false) would pad an image of ``shape``
    (H, W, ...) to a smaller size: transformers then fails it with "Padding dimensions are
    negative", recorded before the fifty-fourth round as an error a rerun retries (and fails
    again the same way). ``crop``: ``shape`` is a ``--refine`` crop's, ``name`` says whose
    (:class:`CropOverPad`; retried until the fifty-fifth round)."""
    pad = getattr(processor, "pad_size", None)
    if getattr(processor, "do_resize", True) or not getattr(processor, "do_pad", True) or not pad:
        return
    h, w = int(shape[0]), int(shape[1])
    ph, pw = int(pad["height"]), int(pad["width"])
    if h > ph or w > pw:
        error, model, what, a = (
            (CropOverPad, "--refine segmenter", "crop", "a")
            if crop
            else (ImageOverPad, "segmenter", "image", "an")
        )
        raise error(
            f"{name} is {h}x{w} px (HxW), {OVER_PAD}: the {model}'s processor pads every "
            f"{what} to {ph}x{pw} px and does not resize (do_resize false); it reads {a} "
            f"{what} at most {ph}x{pw} px"
        )


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


@dataclass
class LoadedModel:
    """A model with its processor and where it came from."""

    model: Any  # the torch module, eval mode, on its device
    processor: Any  # the transformers processor saved with it
    source: str  # hub id, local directory or .pth file as given
    model_type: str  # config.model_type, e.g. "grounding-dino", "sam", "sam_hq"
    revision: str | None  # resolved hub commit when known

    @classmethod
    def ready(
        cls,
        model: Any,
        processor: Any,
        source: str,
        config: Any,
        device: Any,
        revision: str | None = None,
    ) -> LoadedModel:
        """``model`` moved to ``device`` in eval mode, with its type from its ``config`` and, for
        a hub id, the commit its files came from (``revision`` as asked: a branch, tag or
        commit)."""
        return cls(
            model.to(device).eval(),
            processor,
            source,
            config.model_type,
            hub_commit(source, revision),
        )

    def info(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "class": type(self.model).__name__,
            "model_type": self.model_type,
            "revision": self.revision,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
# what keeps the hub offline where the variables no longer say so: huggingface_hub reads them
# once, as it is imported (``constants.HF_HUB_OFFLINE``), and a notebook may have unset them since
IMPORTED_OFFLINE = "huggingface_hub was imported with HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set"


def offline_reasons() -> tuple[str, ...]:
    """Why huggingface_hub does not contact the hub; empty where it does. Where the variables
    put it offline as it reads them (``HF_HUB_OFFLINE``, else where that is unset or empty
    ``TRANSFORMERS_OFFLINE``; 1, true, yes or on; ``HF_HUB_OFFLINE=0`` wins), every one of them
    that is set and true: both must go for the hub to be asked (before, with both set, the advice
    named ``HF_HUB_OFFLINE`` only, and a run without it was still offline). Else, where the hub
    was imported offline (its ``constants.HF_HUB_OFFLINE``, read once at its import, which its
    downloads obey), :data:`IMPORTED_OFFLINE` (before, the labeler read the variables only: in a
    notebook that unset them it probed the hub and asked huggingface_hub for files it would not
    download, and a miss said "looked in ... the hub")."""
    from huggingface_hub import constants

    def true(name: str) -> bool:
        return os.environ.get(name, "").upper() in constants.ENV_VARS_TRUE_VALUES

    read = "HF_HUB_OFFLINE" if os.environ.get("HF_HUB_OFFLINE") else "TRANSFORMERS_OFFLINE"
    if true(read):
        return tuple(name for name in OFFLINE_VARIABLES if true(name))
    return (IMPORTED_OFFLINE,) if constants.HF_HUB_OFFLINE is True else ()


def offline() -> bool:
    return bool(offline_reasons())


def hub_variables(reasons: tuple[str, ...]) -> tuple[str, ...]:
    """The variables a run must be without to ask the hub: those set (``reasons``), both where
    the hub was imported offline, ``HF_HUB_OFFLINE`` where nothing is offline."""
    if not reasons:
        return ("HF_HUB_OFFLINE",)
    return OFFLINE_VARIABLES if reasons == (IMPORTED_OFFLINE,) else reasons


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached from this machine, or None if it can.

    One TCP connection to the endpoint, made once per :data:`HUB_RECHECK_S` seconds at most.
    Without it, a machine with no internet and without ``HF_HUB_OFFLINE`` waits on
    huggingface_hub's retries (5 tries, 23 s of back-off) for every file a load asks about,
    cached or not: transformers' processors ask for a dozen optional ones (chat templates, audio
    tokenizer configs), so loading two cached models took 8 minutes here before this check.
    When the hub cannot be reached the loaders read the cache only, as with ``HF_HUB_OFFLINE=1``,
    and a warning says so (again only once the hub was reached in between). Not checked behind a
    proxy (the connection would go through it), and assumed reachable then.

    The answer is kept for :data:`HUB_RECHECK_S` (one command's loads ask once), not for the
    process's life: before the forty-seventh round a notebook or service that found the hub
    unreachable once (a network not up yet) read the cache only until it restarted, and a model
    not in the cache was "not found: the hub could not be reached" with the network back.
    A proxy variable or ``HF_ENDPOINT`` set since is a new question, asked at once."""
    global _HUB_VERDICT
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    key = (constants.ENDPOINT, tuple(os.environ.get(v) or "" for v in PROXY_VARIABLES))
    now = time.monotonic()
    before = _HUB_VERDICT
    if before is not None and before[1] == key and now - before[0] < HUB_RECHECK_S:
        return before[2]
    reason = None
    if not any(key[1]):
        url = urlsplit(constants.ENDPOINT)
        host = url.hostname or ""
        port = url.port or (80 if url.scheme == "http" else 443)
        try:
            socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S).close()
        except OSError as e:
            reason = f"{host}: {e.strerror or type(e).__name__}"
            if before is None or before[2] is None:  # said once while it stays unreachable
                log.warning(
                    "%s cannot be reached (%s): models are read from the Hugging Face cache "
                    "only (HF_HUB_OFFLINE=1 skips this check)",
                    host,
                    reason,
                )
    _HUB_VERDICT = (now, key, reason)
    return reason


def _forget_hub() -> None:
    """Ask the hub again at the next :func:`hub_unreachable` (tests; a caller that knows the
    network changed)."""
    global _HUB_VERDICT
    _HUB_VERDICT = None


hub_unreachable.cache_clear = _forget_hub  # type: ignore[attr-defined]  # as functools.cache's


def _local_only(source: str, local_only: bool) -> bool:
    """``local_files_only`` for a load: asked for, ``HF_HUB_OFFLINE``, or a hub id while the hub
    cannot be reached (a local path never needs the hub, so it is not checked for one)."""
    if local_only or offline():
        return True
    return not looks_like_path(source) and hub_unreachable() is not None


_HUB = threading.Condition()  # hub_offline's loads, by whether they read local files only
_hub_loads = {True: 0, False: 0}
_hub_before: list[bool] = []  # constants.HF_HUB_OFFLINE as the first local load found it


@contextlib.contextmanager
def hub_offline(local: bool):
    """Keep huggingface_hub offline for a load that reads local files only (``local``), its
    ``constants.HF_HUB_OFFLINE`` set as ``HF_HUB_OFFLINE=1`` sets it, and restored after: the
    hub's ``build_hf_headers`` (run for every file, ``local_files_only`` or not) asks the hub for
    its agent registry (``/api/agent-harnesses``, 3 s) once per process unless offline, so a
    cache-only load still connected (before the fifty-sixth round; huggingface_hub 2.4).
    The flag is the process's: loads in threads set it with the first local one and restore it
    with the last, and a load that may download (not ``local``) waits while local ones run, and
    they for it. Before, two local loads ending in turn left the hub offline for good, and a
    download beside a local load was refused as offline. Not to be nested the other way round
    in one thread (it would wait for itself)."""
    with _HUB:
        _HUB.wait_for(lambda: not _hub_loads[not local])
        if local and not _hub_loads[True]:
            from huggingface_hub import constants

            _hub_before[:] = [constants.HF_HUB_OFFLINE]
            constants.HF_HUB_OFFLINE = True
        _hub_loads[local] += 1
    try:
        yield
    finally:
        with _HUB:
            _hub_loads[local] -= 1
            if local and not _hub_loads[True]:
                from huggingface_hub import constants

                constants.HF_HUB_OFFLINE = _hub_before.pop()
            _HUB.notify_all()


def hub_commit(source: str, revision: str | None = None) -> str | None:
    """The commit of the cached snapshot a hub id's files were read from (``revision`` resolved
    through the cache's refs), or None for a local path or a snapshot not in the cache.

    transformers 5 no longer keeps ``config._commit_hash``, so the run record asks the cache."""
    if looks_like_path(source):
        return None
    from huggingface_hub import try_to_load_from_cache
    from transformers.utils.hub import extract_commit_hash

    path = try_to_load_from_cache(source, "config.json", revision=revision)
    return extract_commit_hash(path, None) if isinstance(path, str) else None


def looks_like_path(source: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else (or anything that exists) is a path."""
    return (
        Path(source).expanduser().exists()
        or source.startswith(PATH_STARTS)
        or source.count("/") > 1
        or "\\" in source
    )


def missing_weights(
    role: str,
    source: str,
    revision: str | None,
    reason: str,
    local_only: bool = False,
    option: str | None = None,
) -> FileNotFoundError:
    """The one-line error for weights that could not be loaded; ``local_only`` as the load was
    asked (the config's ``local_files_only``), so the hub is not probed to explain a miss that
    never asked it. ``option``: the option that gave ``source`` (default ``--<role>``; the
    segmenter of ``--refine`` is given there, and ``--segmenter`` is refused beside
    ``--backend simulated`` or ``sam3``)."""
    from huggingface_hub import constants

    option = option or f"--{role}"

    if looks_like_path(source):  # a path: advice about the path, not about downloading it
        where = f"the local path {Path(source).expanduser().resolve()}"
        fix = (
            "Fix: pass a directory saved with save_pretrained, config.json and the weights in "
            f"it ({option} DIR), or a hub id, which is read from the Hugging Face cache "
            "(HF_HOME) or downloaded."
        )
    else:
        cache = constants.HF_HUB_CACHE
        rev = f" (revision {revision})" if revision else ""
        if (reasons := offline_reasons()) == (IMPORTED_OFFLINE,):
            hub = f"the hub was not contacted ({IMPORTED_OFFLINE})"
        elif reasons:
            said = " and ".join(reasons) + (" are set" if len(reasons) > 1 else " is set")
            hub = f"the hub was not contacted ({said})"
        elif local_only:
            hub = "the hub was not contacted (local_files_only is set)"
        elif (why := hub_unreachable()) is not None:
            hub = f"the hub could not be reached ({why})"
        else:
            hub = "the hub"
        where = f"the Hugging Face cache {cache}{rev} and {hub}"
        fix = (
            f"Fix: download them once with internet access (`hf download {source}` or any run "
            f"without {', '.join(hub_variables(reasons))} and local_files_only), or set HF_HOME "
            f"to a cache that holds them, or pass a local directory saved with save_pretrained ({option} DIR)."
        )
        if not (offline() or local_only):
            fix += " On a machine without internet, HF_HUB_OFFLINE=1 skips the hub."
    return FileNotFoundError(
        f"{source}: {role} weights not found: looked in {where} ({reason}). {fix}"
    )


def check_model_folder(role: str, source: str, option: str) -> None:
    """A model folder written as a path (``./models/gdino``, ``/models/sam``, ``~/sam``) that
    is not there, named as one before any model loads: its normalised spelling
    (``models/gdino``) reads as a hub id, which the hub was asked for."""
    if source.startswith(PATH_STARTS) and not Path(source).expanduser().exists():
        raise missing_weights(role, source, None, "no such file or folder", option=option)


def _reason(e: BaseException) -> str:
    return first_line(e)[:160]


def _check_local(role: str, source: str, revision: str | None, option: str | None = None) -> None:
    if looks_like_path(source):
        p = Path(source).expanduser()
        if not p.exists():
            raise missing_weights(role, source, revision, "no such directory", option=option)
        if not (p / "config.json").is_file():
            raise missing_weights(role, source, revision, "no config.json in it", option=option)
        try:
            str(p.absolute()).encode("utf-8")
        except UnicodeEncodeError:  # caf\xe9 from a latin-1 system, read with a surrogate
            # safetensors and tokenizers open UTF-8 paths only: it was "cannot read the weights
            # (Path ... is not valid UTF-8); the download may be incomplete: delete it", of
            # weights that were whole
            shown = str(p.absolute()).encode("utf-8", "backslashreplace").decode("utf-8")
            raise ValueError(
                f"{shown}: the {role}'s path is not UTF-8, and its weights are read by libraries "
                "that open UTF-8 paths only (safetensors, tokenizers): rename the folder, or "
                f"give a symbolic link to it of a UTF-8 name ({option or '--' + role} LINK)"
            ) from None


def _load_config(
    role: str, source: str, revision: str | None, local_only: bool, option: str | None = None
):
    from transformers import AutoConfig

    _check_local(role, source, revision, option)
    try:
        local = _local_only(source, local_only)
        with hub_offline(local):
            return AutoConfig.from_pretrained(source, revision=revision, local_files_only=local)
    except Exception as e:  # noqa: BLE001 - hub, network and cache errors all mean "not found"
        raise missing_weights(role, source, revision, _reason(e), local_only, option) from None


def _from_pretrained(
    role: str,
    loader: Any,
    source: str,
    revision: str | None,
    local_only: bool,
    option: str | None = None,
    processor: bool = False,
    **kw,
):
    """``loader.from_pretrained(source)``, its failures one line each; ``processor``: the
    loader reads the processor files, after the weights loaded from the same folder."""
    try:
        local = _local_only(source, local_only)
        with hub_offline(local):
            return loader.from_pretrained(source, revision=revision, local_files_only=local, **kw)
    except Exception as e:
        if processor and looks_like_path(source) and isinstance(e, (OSError, ValueError)):
            import transformers

            raise ValueError(
                f"{source}: cannot read the {role}'s processor files ({_reason(e)}): "
                "processor_config.json or preprocessor_config.json is missing there or names "
                f"a class transformers {transformers.__version__} does not know; restore the "
                "files saved with the model"
            ) from None
        if _unreadable_weights(e):
            where = _broken_weights(source, revision) or source
            raise ValueError(
                f"{where}: cannot read the {role} weights ({_reason(e)}); the download may be "
                "incomplete: delete it and download again"
            ) from None
        if isinstance(e, (OSError, ValueError)):
            raise missing_weights(role, source, revision, _reason(e), local_only, option) from None
        if isinstance(e, (TypeError, KeyError, AttributeError, IndexError)):  # files of other types
            import transformers

            raise ValueError(
                f"{source}: cannot read the {role}'s files ({type(e).__name__}: {_reason(e)}): "
                "a config, processor or tokenizer file there is damaged, of another model, or "
                f"of another transformers version than this one ({transformers.__version__}); "
                "delete it and download again"
            ) from None
        raise


def _unreadable_weights(e: BaseException) -> bool:
    """Whether ``e`` says a weights file is there but cannot be read (cut short by a broken
    download or a full disk): safetensors' header or data is incomplete, or torch's zip
    archive of a ``.bin`` is."""
    text = str(e)
    return type(e).__name__ == "SafetensorError" or any(
        clue in text
        for clue in ("PytorchStreamReader", "central directory", "Unable to load weights")
    )


def _broken_weights(source: str, revision: str | None) -> str | None:
    """The weights file of ``source`` (a local directory, or a hub id's cached snapshot) that
    safetensors cannot open, or the only weights file there; None when none is found."""
    if looks_like_path(source):
        folder = Path(source).expanduser()
        files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "model.safetensors", revision=revision)
        files = [Path(cached)] if isinstance(cached, str) else []
    broken = []
    for f in files:
        if f.suffix != ".safetensors":
            continue
        try:
            from safetensors import safe_open

            with safe_open(str(f), framework="pt"):
                pass
        except Exception:  # noqa: BLE001 - any failure to open is the file to name
            broken.append(f)
    found = broken or files
    return str(found[0]) if len(found) == 1 else None


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


def check_prompt_vocabulary(source: str, tokenizer: Any, prompts: tuple[str, ...]) -> None:
    """Refuse prompts the model's tokenizer knows no word of (every token its unknown token),
    and warn of a prompt word it reads as the unknown token.

    A checkpoint folder copied without its tokenizer files (``vocab.txt``, ``tokenizer.json``)
    still loads: transformers then builds an empty tokenizer that turns every word into the
    unknown token, and the run labels with a text the model never saw, with no error. A whole
    tokenizer (the released Grounding DINO's: bert-base-uncased, 30522 tokens) reads a word
    holding a character outside its vocabulary (``bike🚲``: an emoji, a symbol) whole as
    [UNK]: the prompt is then refused, or the model looks for the prompt's other words alone."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return

    def unknown_word(text: str) -> bool:
        got = tokenizer(text, add_special_tokens=False)["input_ids"]
        # a prompt of no token at all is the callers' error to name ("gives no tokens")
        return bool(got) and set(got) <= {unk}

    unknown = [p for p in prompts if unknown_word(p)]
    if unknown and len(tokenizer) <= len(set(tokenizer.all_special_ids)):  # files missing
        raise ValueError(
            f"{source}: the tokenizer knows no word of prompts {unknown} (every token is "
            f"{tokenizer.unk_token}, it holds {len(tokenizer)} tokens); the tokenizer files "
            "(tokenizer.json, tokenizer_config.json, its vocabulary) are missing from the "
            "checkpoint folder or are not its own: copy them from where the model came from, "
            "or reword the prompt"
        )
    if unknown:
        raise ValueError(
            f"{source}: the tokenizer ({len(tokenizer)} tokens) reads every word of prompts "
            f"{unknown} as {tokenizer.unk_token} (a word holding a character outside its "
            "vocabulary, an emoji or a symbol, is read whole as that), so the model would look "
            "for nothing: reword the prompt"
        )
    # words as the tokenizer splits them (BERT: at spaces and punctuation, 'traffic-light🚦'),
    # each as typed (a byte-level pre-tokenizer, CLIP's, rewrites the text it splits)
    pre = getattr(getattr(tokenizer, "backend_tokenizer", None), "pre_tokenizer", None)
    split = (lambda p: [p[a:b] for _, (a, b) in pre.pre_tokenize_str(p)]) if pre else str.split
    misread = partial(_misread_word, tokenizer, unk)
    words = {p: [named for w in split(p) if (named := misread(w))] for p in prompts}
    if partly := {p: w for p, w in words.items() if w}:
        cjk = any(part for w in partly.values() for _, part in w)  # some word read partly
        log.warning(
            "%s: the tokenizer reads %s as %s (a word holding a character outside its "
            "vocabulary, an emoji or a symbol, is read whole as that%s): the model looks for "
            "the rest of the prompt alone; reword it",
            source,
            "; ".join(f"{', '.join(n for n, _ in w)} of prompt {p!r}" for p, w in partly.items()),
            tokenizer.unk_token,
            "; a Chinese, Japanese or Korean character on its own" if cjk else "",
        )


def _misread_word(tokenizer: Any, unk: int, word: str) -> tuple[str, bool] | None:
    """``word`` named as far as ``tokenizer`` reads it as its unknown token ``unk``, and whether
    only partly: the word (quoted) where it is read whole as that; where only some of its
    tokens are (BERT reads each Chinese, Japanese or Korean character on its own: ``自行車`` of
    a vocabulary without ``車``), those characters and the word, ``'車' of '自行車'``; None
    where no token is. Before the fifty-sixth round a word read partly so was not named."""
    got = tokenizer(word, add_special_tokens=False)["input_ids"]
    if unk not in got:
        return None
    if set(got) <= {unk}:
        return repr(word), False
    chars = dict.fromkeys(
        c for c in word if tokenizer(c, add_special_tokens=False)["input_ids"] == [unk]
    )
    return f"{', '.join(map(repr, chars)) or 'part'} of {word!r}", True


def check_phrase_separators(
    source: str, model: Any, input_ids: list[int], prompt_tokens: list[Any]
) -> None:
    """Refuse a tokenizer whose ids for [CLS], "." and [SEP] are not the ones the detector
    separates prompts by.

    Grounding DINO keeps each prompt's attention to itself and restarts its positions at each
    separator, found by token id: its ``special_tokens`` (transformers' ``SPECIAL_TOKENS``,
    bert-base-uncased's [CLS] 101, [SEP] 102, "." 1012 and "?" 1029: the released checkpoints
    ship that tokenizer). A tokenizer of another vocabulary gives none of them, and the model
    read the prompts as one text, every token attending to itself alone at position 0, without
    an error. ``input_ids``: the detector's text, tokenized;
    ``prompt_tokens``: each prompt's token positions there, each followed by its "."."""
    special = getattr(getattr(model, "model", None), "special_tokens", None)
    if special is None:
        return
    special = sorted(int(t) for t in special.tolist())
    found = [i for i, t in enumerate(input_ids) if t in special]
    wanted = [0, *(int(max(t)) + 1 for t in prompt_tokens), len(input_ids) - 1]
    if found != wanted:
        cls, dot, sep = (input_ids[i] for i in (0, wanted[1], -1))
        raise ValueError(
            f"{source}: its tokenizer gives [CLS], '.' and [SEP] the ids {cls}, {dot}, {sep}, and "
            f"the model separates prompts by the ids {', '.join(map(str, special))} "
            "(bert-base-uncased's [CLS], [SEP], '.' and '?'), so it would not read the prompts "
            "apart; the tokenizer files (tokenizer.json, vocab.txt) are another model's: restore "
            "those saved with the model"
        )


def load_detector(
    source: str, revision: str | None = None, device: str = "cpu", local_only: bool = False
) -> LoadedModel:
    """Grounding DINO (or MM-Grounding-DINO / LLMDet) from a hub id or local directory."""
    check_docstrings_kept()
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    config = _load_config("detector", source, revision, local_only)
    if config.model_type not in DETECTOR_TYPES:
        raise ValueError(
            f"{source}: detector must be a Grounding DINO checkpoint (model_type one of "
            f"{', '.join(DETECTOR_TYPES)}), got model_type {config.model_type!r}"
        )
    model = _from_pretrained(
        "detector", AutoModelForZeroShotObjectDetection, source, revision, local_only
    )
    processor = _from_pretrained(
        "detector", AutoProcessor, source, revision, local_only, processor=True
    )
    if not hasattr(processor, "image_processor"):  # AutoProcessor fell back to one part
        import transformers

        raise ValueError(
            f"{source}: its processor files load as a {type(processor).__name__} alone, not "
            "Grounding DINO's processor (image processor and tokenizer): the processor_class "
            "or image_processor_type in preprocessor_config.json or processor_config.json is "
            f"not a name transformers {transformers.__version__} knows for it "
            "(GroundingDinoProcessor, GroundingDinoImageProcessor); restore the files saved "
            "with the model"
        )
    return LoadedModel.ready(model, processor, source, config, device, revision)


def load_segmenter(
    source: str,
    revision: str | None = None,
    device: str = "cpu",
    local_only: bool = False,
    option: str = "--segmenter",
) -> LoadedModel:
    """SAM, SAM-HQ or SAM 2, chosen from the checkpoint's ``model_type``; a ``.pth`` file is an original
    segment-anything checkpoint, converted in memory (see :mod:`labeler.sam_convert`).
    ``option``: the one that gave ``source``, which a weights-not-found error tells to give."""
    check_docstrings_kept()
    if source.endswith(".pth"):
        from labeler.sam_convert import load_sam_pth

        model, processor = load_sam_pth(source)
        return LoadedModel(model.to(device).eval(), processor, source, "sam", None)
    from transformers import AutoProcessor, Sam2Model, SamHQModel, SamModel

    config = _load_config("segmenter", source, revision, local_only, option)
    classes = {"sam": SamModel, "sam_hq": SamHQModel, "sam2": Sam2Model, "sam2_video": Sam2Model}
    if config.model_type not in classes:
        raise ValueError(
            f"{source}: segmenter must be a SAM, SAM-HQ or SAM 2 image checkpoint (model_type "
            f"{', '.join(SEGMENTER_TYPES)}), got model_type {config.model_type!r}"
        )
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    if config.model_type == "sam2_video":  # its "sam2_video into Sam2Model" note is expected
        hf_logging.set_verbosity_error()
    try:
        model = _from_pretrained(
            "segmenter", classes[config.model_type], source, revision, local_only, option
        )
    finally:
        hf_logging.set_verbosity(level)
    processor = _from_pretrained(
        "segmenter", AutoProcessor, source, revision, local_only, option, processor=True
    )
    check_input_size(source, processor, model.config.prompt_encoder_config.image_size)
    return LoadedModel.ready(model, processor, source, config, device, revision)


def check_input_size(source: str, processor: Any, side: int) -> None:
    """Refuse a model whose processor makes inputs of another size than the ``side`` x
    ``side`` px its model reads (its config's ``image_size``).

    The backends scale each box to the processor's frame (its resized size, from its own output,
    never an assumed 1024) and SAM's prompt encoder reads the box in its config's
    ``image_size`` frame: a folder whose processor settings are another model's (``size``,
    ``pad_size``, ``do_resize``) would put every box elsewhere. SAM's encoder refused each image
    ("Input image size (32*32) doesn't match model (64*64)"), SAM 2 failed in its mask decoder
    ("view size is not compatible"), SAM 3 in its detector ("The size of tensor a (4) must
    match the size of tensor b (16)"); here it is one line at load. SAM's processor pads every
    image to its square, with ``do_resize`` false too: that one passes. The probe is a 6x8 px
    image: not square, so that a SAM processor that does not pad (``do_pad`` false) is refused
    too."""
    import numpy as np

    side = int(side)
    pixels = preprocess(processor.image_processor, np.zeros((6, 8, 3), np.uint8))["pixel_values"]
    h, w = (int(v) for v in pixels.shape[-2:])
    if (h, w) != (side, side):
        raise ValueError(
            f"{source}: its processor makes {h}x{w} px inputs and its model reads {side}x{side} "
            "px (a 6x8 px image through the processor; the model's config.json image_size): "
            "the processor's settings (size, pad_size, do_resize, do_pad in "
            "processor_config.json or preprocessor_config.json) are not this model's; restore "
            "the files saved with it"
        )
