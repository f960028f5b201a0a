"""Finding a model's files: a model folder or hub id checked before loading, whether a load
reads local files only, its config and weights read through transformers, and one clear error
when they are missing or unreadable (never a transformers traceback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annotations.fileio import first_line
from labeler.config import PATH_STARTS
from labeler.models.hub import (
    IMPORTED_OFFLINE,
    hub_offline,
    hub_unreachable,
    hub_variables,
    looks_like_path,
    offline,
    offline_reasons,
)


def _local_only(source: str, local_only: bool) -> bool:
    """``local_files_only`` for a load: asked for, ``HF_HUB_OFFLINE``, or a hub id while the hub
    cannot be reached (a local path never needs the hub, so it is not checked for one)."""
    if local_only or offline():
        return True
    return not looks_like_path(source) and hub_unreachable() is not None


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
