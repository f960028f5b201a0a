"""Export an engine ``massformer_r50`` checkpoint to the authors' checkpoint format (the way
back to xiechenxi99/MaSS13K at 1afadb9, mmsegmentation 1.x): the reverse of
:mod:`trainer.convert`.

The file holds ``{"state_dict": {...660 release keys...}, "meta": {...}}`` with plain values
only (``torch.load(weights_only=True)`` reads it, as mmengine's ``load_checkpoint`` does with
plain ``torch.load``); ``meta["dataset_meta"]`` has the taxonomy's ``classes`` and ``palette``
as mmseg 1.x saves them (``CLASSES``/``PALETTE`` too, the mmseg 0.x names its ``init_model``
falls back to). Every key is the inverse of :data:`trainer.convert.KEY_RULES`, checked both
ways, so ``convert -> export`` gives the release's tensors back exactly.

    from trainer.release_export import export_massformer
    result = export_massformer("runs/train/run/last.pt", "massformer_r50_engine.pth")
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.runinfo import file_sha256, versions
from trainer.checkpoint import save_checkpoint
from trainer.convert import KEY_RULES, Renumbered, held_checkpoint, map_release_key
from trainer.release_file import first_keys

PRESET = "massformer_r50"


def _invert(pattern: str, ours: str | Renumbered) -> tuple[re.Pattern, str | Renumbered]:
    """``(our regex, release template)`` of one rule: the release pattern's groups are plain
    (no nesting), each ``\\N`` of our template stands for group N, in the pattern's order, and
    the literal parts of the pattern are escaped dots only. A renumbered index (:class:`trainer.
    convert.Renumbered`, one digit) is numbered back."""
    if not isinstance(ours, str | Renumbered):  # a function has no inverse to derive
        raise TypeError(f"{pattern}: give a renumbered rule as a Renumbered, not a function")
    template = ours.template if isinstance(ours, Renumbered) else ours
    groups = re.findall(r"\([^()]*\)", pattern)
    if isinstance(ours, Renumbered):  # the numbers of a one-digit index, on our side
        one = groups[ours.group - 1]
        groups[ours.group - 1] = (
            "(" + "|".join(str(ours.index(i)) for i in range(10) if re.fullmatch(one, str(i))) + ")"
        )
    regex = "".join(
        groups[int(part[1:]) - 1] if re.fullmatch(r"\\\d", part) else re.escape(part)
        for part in re.split(r"(\\\d)", template)
        if part
    )
    count = iter(range(1, len(groups) + 1))
    release = re.sub(
        r"\([^()]*\)",
        lambda _: f"\\{next(count)}",
        pattern,
    ).replace("\\.", ".")
    return re.compile(regex), ours.inverse(release) if isinstance(ours, Renumbered) else release


_INVERSE = [_invert(p, r) for p, r in KEY_RULES]  # every rule's inverse


def release_key(ours: str) -> str | None:
    """The release's state-dict key for our ``ours``, or ``None`` when no rule matches: the
    inverse of :func:`trainer.convert.map_release_key`."""
    for pattern, repl in _INVERSE:
        m = pattern.fullmatch(ours)
        if m:
            return repl(m) if callable(repl) else m.expand(repl)
    return None


def export_release_state(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """Our ``massformer_r50`` state dict under the release's keys (floating tensors float32, the
    release's dtype; the BatchNorm counters int64). ``ValueError`` naming keys that do not map
    back (each must also convert to itself again)."""
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, value in state.items():
        theirs = release_key(key)
        if theirs is None or map_release_key(theirs) != key or theirs in out:
            unmapped.append(key)
            continue
        out[theirs] = value.float() if value.is_floating_point() else value
    if unmapped:
        raise ValueError(
            f"{where}: {len(unmapped)} keys have no release name: {first_keys(unmapped)}"
        )
    return out


@dataclass
class ExportResult:
    """What :func:`export_massformer` wrote."""

    out: Path  # the release-format file written
    num_tensors: int  # state-dict entries (660)
    classes: list[str]  # the taxonomy, in id order: dataset_meta["classes"]
    palette: list[list[int]]  # their RGB colours: dataset_meta["palette"]

    @property
    def num_classes(self) -> int:
        """K: the release config's ``num_classes``."""
        return len(self.classes)


def release_config_lines(classes: list[str], palette: list[list[int]]) -> list[str]:
    """What a user changes in the release's configs for a model of these classes (docs/model.md
    "Back to the release")."""
    return [
        f"num_classes = {len(classes)}  (configs/massformer/massformer_r50_8xb2-90k_mass13k-"
        "1024x1024.py; the class head and loss_cls.class_weight follow it)",
        f"metainfo=dict(classes={tuple(classes)!r}, palette={palette!r})  (each dataloader's "
        "dataset, with type='BaseSegDataset' when the classes are not the release's 7)",
    ]


def check_export_out(src: Path, out: Path) -> None:
    """Refuse an ``out`` that is a folder, the checkpoint itself, or an existing file other than
    an earlier export (its ``meta`` has ``exported_from``), as :func:`trainer.convert.
    check_convert_out` does the other way."""
    if out.is_dir():
        raise ValueError(
            f"{out}: a folder; give the file to write, e.g. --out {out / 'massformer_r50.pth'}"
        )
    if not out.exists():
        return
    if out.resolve() != src.resolve():
        held = held_checkpoint(out)
        meta = held.get("meta") if isinstance(held, dict) else None
        if isinstance(meta, dict) and "exported_from" in meta:
            return
    raise ValueError(
        f"{out}: exists (not a file engine convert-massformer --to-release wrote); exporting "
        "would replace it: give another --out, or delete it first"
    )


def export_massformer(src: str | os.PathLike, out: str | os.PathLike) -> ExportResult:
    """Write the engine checkpoint ``src`` (preset ``massformer_r50``, any K) in the release's
    format to ``out`` (atomically; nothing is written on any error).

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: not an engine checkpoint (a release file is named as such); another preset
            (the release has MaSSFormer-R50 only); keys that do not map back.
    """
    from annotations.taxonomy import Taxonomy
    from trainer.checkpoint import load_checkpoint
    from trainer.models import ModelConfig, preset_config
    from trainer.release_file import is_release_checkpoint

    src, out = Path(src), Path(out)
    check_export_out(src, out)
    try:
        ckpt = load_checkpoint(src)
    except ValueError:  # a release file is read again only here, to say so
        if is_release_checkpoint(src):
            raise ValueError(
                f"{src}: already in the release's (mmseg) format; --to-release takes an engine "
                "checkpoint (engine train's last.pt, or engine convert-massformer's output)"
            ) from None
        raise
    config = ModelConfig.from_dict(dict(ckpt["model_config"]))
    # the release's architecture at this K; the backbone's norm kind leaves the keys alone
    want = preset_config(PRESET, num_classes=config.num_classes, backbone_norm=config.backbone_norm)
    if config != want:
        differ = [
            f"{f.name} {getattr(config, f.name)!r}"
            for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(want, f.name)
        ]
        raise ValueError(
            f"{src}: not the {PRESET} preset ({first_keys(differ)}); the release has "
            "MaSSFormer-R50 only"
        )
    taxonomy = Taxonomy.from_dict(ckpt["taxonomy"], source=f"{src} taxonomy")
    state = export_release_state(ckpt["model"], str(src))
    classes = list(taxonomy.names)
    palette = [list(c.color) for c in taxonomy]
    meta = {
        # as mmengine's Runner saves it (mmseg 1.x init_model reads this first) ...
        "dataset_meta": {
            "classes": tuple(classes),
            "palette": palette,
            "label_map": None,
            "reduce_zero_label": False,
        },
        # ... and as mmseg 0.x did (init_model's fallback)
        "CLASSES": tuple(classes),
        "PALETTE": palette,
        "iter": int(ckpt["step"]),
        "exported_from": {
            "path": str(src),
            "path_resolved": str(src.resolve()),
            "sha256": file_sha256(src),
            "step": int(ckpt["step"]),
            "versions": versions(),
        },
    }
    # atomic, a shared file's permissions, and a full disk named as the disk's error
    save_checkpoint(out, {"state_dict": state, "meta": meta})
    return ExportResult(out, len(state), classes, palette)
