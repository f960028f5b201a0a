"""Loading Grounding DINO and SAM / SAM-HQ through transformers, with one clear error when the
weights are missing (never a transformers traceback), and device / precision resolution.

One module per part, each using only those listed before it:

- :mod:`~labeler.models.sizes`: the processor call, the image sizes a model cannot take
  (:class:`CannotLabel` and its kinds) and the advice on them, a processor checked against
  its model's input size;
- :mod:`~labeler.models.hub`: sources as paths or hub ids, the offline switches, the hub's
  reachability, the hub held offline around local-only loads, a hub id's commit;
- :mod:`~labeler.models.weights`: a model's files found and read, one clear error when they
  are missing or unreadable;
- :mod:`~labeler.models.precision`: device, autocast dtype, SAM's fp32 positional encodings;
- :mod:`~labeler.models.prompts`: prompts checked against a detector's tokenizer;
- :mod:`~labeler.models.loading`: :class:`LoadedModel`, :func:`load_detector`,
  :func:`load_segmenter`.

Every name callers import from ``labeler.models`` is imported here from its module.
"""

from __future__ import annotations

from labeler.config import check_docstrings_kept
from labeler.models.hub import (
    HUB_PROBE_TIMEOUT_S,
    HUB_RECHECK_S,
    IMPORTED_OFFLINE,
    OFFLINE_VARIABLES,
    PROXY_VARIABLES,
    hub_commit,
    hub_offline,
    hub_unreachable,
    hub_variables,
    looks_like_path,
    offline,
    offline_reasons,
)
from labeler.models.loading import (
    DETECTOR_TYPES,
    SEGMENTER_TYPES,
    LoadedModel,
    load_detector,
    load_segmenter,
)
from labeler.models.precision import (
    autocast,
    autocast_name,
    keep_prompt_encoder_fp32,
    resolve_device,
    resolve_dtype,
    spend_readonly_warning,
)
from labeler.models.prompts import check_phrase_separators, check_prompt_vocabulary
from labeler.models.sizes import (
    CANNOT,
    OVER_PAD,
    TOO_THIN,
    CannotLabel,
    CropOverPad,
    ImageOverPad,
    ImageTooThin,
    check_input_size,
    failure_advice,
    preprocess,
    refuse_over_pad,
    refuse_too_thin,
    resized_size,
)
from labeler.models.weights import (
    _broken_weights,
    _check_local,
    _from_pretrained,
    _load_config,
    check_model_folder,
    missing_weights,
)

__all__ = [
    "autocast",
    "autocast_name",
    "_broken_weights",
    "CANNOT",
    "CannotLabel",
    "check_docstrings_kept",
    "check_input_size",
    "_check_local",
    "check_model_folder",
    "check_phrase_separators",
    "check_prompt_vocabulary",
    "CropOverPad",
    "DETECTOR_TYPES",
    "failure_advice",
    "_from_pretrained",
    "hub_commit",
    "hub_offline",
    "HUB_PROBE_TIMEOUT_S",
    "HUB_RECHECK_S",
    "hub_unreachable",
    "hub_variables",
    "ImageOverPad",
    "ImageTooThin",
    "IMPORTED_OFFLINE",
    "keep_prompt_encoder_fp32",
    "_load_config",
    "load_detector",
    "load_segmenter",
    "LoadedModel",
    "looks_like_path",
    "missing_weights",
    "offline",
    "offline_reasons",
    "OFFLINE_VARIABLES",
    "OVER_PAD",
    "preprocess",
    "PROXY_VARIABLES",
    "refuse_over_pad",
    "refuse_too_thin",
    "resized_size",
    "resolve_device",
    "resolve_dtype",
    "SEGMENTER_TYPES",
    "spend_readonly_warning",
    "TOO_THIN",
]
