"""Whether the Hugging Face hub is to be asked: whether a source is a path or a hub id, the
offline switches, one cached probe of the hub's reachability, the hub held offline around
local-only loads, and the commit a hub id's files came from."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path

from labeler.config import PATH_STARTS

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
