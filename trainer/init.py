"""Start a training run from a trained checkpoint (``engine train --init CKPT``).

The checkpoint is one of ours (``engine train``) or a converted release checkpoint
(``engine convert-massformer``); both carry the model's state dict and the taxonomy it was
trained with. Every tensor whose name and shape match the new model is copied. The class head
(the ``Linear`` producing K + 1 class logits) is rebuilt row by row for the new taxonomy:

* a class the checkpoint knows (same name, case-insensitive) takes its own row, wherever it
  moved to;
* a new class takes the row of its parent (the nearest ancestor the checkpoint knows): Bicycle
  carved out of Others starts as a copy of Others;
* the no-object row stays last;
* a class with neither keeps the model's fresh initialisation (reported).

When one checkpoint row seeds n rows (a parent and its n - 1 new children), each copy's bias is
lowered by log(n): the softmax then gives the parent and its children together exactly the
probability the parent had, and every other class and no-object exactly theirs. The initial
model therefore predicts the checkpoint's map with the children merged into their parent.

Anything else that does not match (a tensor absent from the model, a shape that differs) is
dropped and reported by name, never silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from annotations.taxonomy import Taxonomy
from trainer.checkpoint import check_finite, load_checkpoint

NO_OBJECT = "no-object"


@dataclass
class InitReport:
    """What :func:`init_from_checkpoint` did; ``summary()`` is the user-facing text."""

    source: str  # the checkpoint read
    loaded: list[str] = field(default_factory=list)  # model keys copied unchanged
    grown: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=list
    )  # class-head keys rebuilt row by row: (key, checkpoint shape, model shape)
    dropped: list[tuple[str, str]] = field(
        default_factory=list
    )  # checkpoint keys not used: (key, why)
    not_in_checkpoint: list[str] = field(
        default_factory=list
    )  # model keys the checkpoint lacks (left at their initialisation)
    class_rows: list[tuple[str, str | None, str]] = field(
        default_factory=list
    )  # per model class: (class, checkpoint class seeding its row or None, "same" | "parent" | "new")
    unused_classes: list[str] = field(
        default_factory=list
    )  # checkpoint classes no model class takes its row from (their rows are dropped)
    moved: list[tuple[str, int, int]] = field(
        default_factory=list
    )  # classes the checkpoint knows at another id: (class, checkpoint's id, model's id)
    architecture: list[tuple[str, Any, Any]] = field(
        default_factory=list
    )  # (ModelConfig field, checkpoint's value, model's value) where the networks differ
    presets: tuple[str | None, str | None] = (None, None)  # (checkpoint's, model's) preset name

    @property
    def head_change(self) -> str:
        """How the class head's row count changed: ``grown`` (more classes), ``shrunk``
        (fewer) or ``rebuilt`` (as many, other rows: classes reordered or replaced)."""
        rows = [(old[0], new[0]) for _, old, new in self.grown]
        if any(new < old for old, new in rows):
            return "shrunk"
        if rows and all(new == old for old, new in rows):
            return "rebuilt"
        return "grown"

    def architecture_warning(self, show: int = 4) -> str | None:
        """One line when the checkpoint is another network than the model (another preset):
        most of its tensors then cannot be copied, which the counts alone did not say."""
        if not self.architecture:
            return None
        ours, theirs = (f"a {name} network" if name else "another network" for name in self.presets)
        diffs = [f"{k} {_shown(a)} vs {_shown(b)}" for k, a, b in self.architecture]
        more = f", ... {len(diffs) - show} more" if len(diffs) > show else ""
        hint = f"; --preset {self.presets[0]} would copy them all" if self.presets[0] else ""
        return (
            f"{self.source}: the checkpoint is {ours}, the model {theirs} "
            f"({', '.join(diffs[:show])}{more}): only tensors of the same name and shape are "
            f"copied ({len(self.loaded)} loaded, {len(self.dropped)} dropped){hint}"
        )

    def summary(self, show: int = 5) -> list[str]:
        """A few lines: counts, how each changed class row was seeded, the first ``show``
        dropped and missing keys."""
        change = self.head_change
        lines = [
            f"init from {self.source}: {len(self.loaded)} tensors loaded, "
            f"{len(self.grown)} class-head tensors {change}, {len(self.dropped)} dropped, "
            f"{len(self.not_in_checkpoint)} not in the checkpoint (left at initialisation)"
        ]
        for key, old, new in self.grown:
            lines.append(f"  {change} {key}: {list(old)} -> {list(new)}")
        seeded = [
            f"{name} <- {src} ({how})" if src else f"{name}: new, fresh initialisation"
            for name, src, how in self.class_rows
            if how != "same"
        ]
        if seeded:
            lines.append("  class rows: " + ", ".join(seeded) + f"; {NO_OBJECT} row kept last")
        if self.moved:  # a class fused in another order: the two models' maps number it apart
            lines.append(
                "  class ids moved (own rows kept): "
                + ", ".join(f"{name} {a} -> {b}" for name, a, b in self.moved)
            )
        if self.unused_classes:
            lines.append(
                "  checkpoint classes not in the taxonomy (rows dropped): "
                + ", ".join(self.unused_classes)
            )
        for title, items in (
            ("dropped", [f"{k} ({why})" for k, why in self.dropped]),
            ("not in the checkpoint", self.not_in_checkpoint),
        ):
            if items:
                more = f", ... {len(items) - show} more" if len(items) > show else ""
                lines.append(f"  {title}: " + "; ".join(items[:show]) + more)
        return lines

    def to_dict(self) -> dict:
        """Plain JSON-able record (written into the run directory as ``init.json``)."""
        return {
            "source": self.source,
            "loaded": len(self.loaded),
            "grown": [{"key": k, "from": list(a), "to": list(b)} for k, a, b in self.grown],
            "dropped": [{"key": k, "why": why} for k, why in self.dropped],
            "not_in_checkpoint": self.not_in_checkpoint,
            "class_rows": [{"class": n, "from": s, "how": h} for n, s, h in self.class_rows],
            "unused_classes": self.unused_classes,
            "moved": [{"class": n, "from": a, "to": b} for n, a, b in self.moved],
            "architecture": [
                {"field": k, "checkpoint": a, "model": b} for k, a, b in self.architecture
            ],
        }


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)


# ModelConfig fields that may differ between a checkpoint and the model it starts: the class
# count (the head is rebuilt) and whether the backbone's norms train (the same tensors)
ARCHITECTURE_FREE = ("num_classes", "backbone_norm")


def _architecture(config: Any) -> dict[str, Any]:
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})
    data = json.loads(json.dumps(data))  # tuples -> lists, as a checkpoint stores them
    return {k: v for k, v in data.items() if k not in ARCHITECTURE_FREE}


def _preset_name(config: dict[str, Any]) -> str | None:
    from trainer.models.config import MODEL_PRESETS

    return next((n for n, p in MODEL_PRESETS.items() if _architecture(p) == config), None)


def architecture_differences(
    checkpoint_config: Any, model_config: Any
) -> list[tuple[str, Any, Any]]:
    """``(field, checkpoint's, model's)`` for each ModelConfig field (the class count and
    backbone norm aside) in which the two networks differ; none when either is unknown."""
    if not checkpoint_config or not dataclasses.is_dataclass(model_config):
        return []
    a, b = _architecture(checkpoint_config), _architecture(model_config)
    return [(k, a.get(k), b.get(k)) for k in b if k in a and a[k] != b[k]]


def class_row_sources(src: Taxonomy, dst: Taxonomy) -> list[tuple[int | None, str]]:
    """For each class of ``dst`` (in id order): ``(row of src seeding it, how)``.

    ``how`` is ``"same"`` (the class itself, matched by name), ``"parent"`` (the nearest
    ancestor in ``dst`` that ``src`` knows) or ``"new"`` (row None: no such class or ancestor).
    """
    out: list[tuple[int | None, str]] = []
    for c in dst:
        if c.name in src:
            out.append((src.id_of(c.name), "same"))
            continue
        row: int | None = None
        seen = {c.id}
        parent = c.parent
        while parent is not None and parent not in seen:
            seen.add(parent)
            p = dst[parent]
            if p.name in src:
                row = src.id_of(p.name)
                break
            parent = p.parent
        out.append((row, "parent" if row is not None else "new"))
    return out


def class_head_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the class head: ``weight``/``bias`` of each ``nn.Linear`` named like a
    class embedding (``*cls*`` / ``*class*``) with K + 1 outputs."""
    k1 = model.config.num_classes + 1
    keys = []
    for name, m in model.named_modules():
        leaf = name.rsplit(".", 1)[-1].lower()
        if isinstance(m, nn.Linear) and m.out_features == k1 and ("cls" in leaf or "class" in leaf):
            keys += [f"{name}.weight"] + ([f"{name}.bias"] if m.bias is not None else [])
    if not keys:
        raise RuntimeError(f"{type(model).__name__} has no class head (a Linear with K+1 outputs)")
    return keys


def _grow_rows(
    old: torch.Tensor, sources: list[tuple[int | None, str]], fresh: torch.Tensor, is_bias: bool
) -> torch.Tensor:
    """``(K_src + 1, ...)`` -> ``(K_dst + 1, ...)``: row i from ``old[sources[i]]`` (or ``fresh``),
    no-object from ``old[-1]``; biases of a row copied n times lowered by log(n)."""
    new = fresh.clone()
    uses: dict[int, int] = {}
    for row, _ in sources:
        if row is not None:
            uses[row] = uses.get(row, 0) + 1
    for i, (row, _) in enumerate(sources):
        if row is not None:
            new[i] = old[row]
            if is_bias and uses[row] > 1:
                new[i] -= math.log(uses[row])
    new[-1] = old[-1]
    return new


def init_from_checkpoint(
    model: nn.Module, checkpoint: str | os.PathLike | dict, taxonomy: Taxonomy
) -> InitReport:
    """Copy a checkpoint's weights into ``model`` (built for ``taxonomy``), growing its class
    head; see the module docstring for the rules.

    Args:
        model: a MaSSFormer (anything with ``config.num_classes`` and a class-head Linear).
        checkpoint: path to an engine checkpoint, or the loaded dict (``model``, ``taxonomy``).
        taxonomy: the classes the model is trained for; ``len(taxonomy)`` must equal
            ``model.config.num_classes``.

    Raises:
        FileNotFoundError / ValueError: unreadable checkpoint, or not one of ours (an mmseg
            checkpoint is named as such), or no tensor in common with the model.
    """
    source = "checkpoint" if isinstance(checkpoint, dict) else str(checkpoint)
    if isinstance(checkpoint, dict):
        ckpt = checkpoint
        check_finite(ckpt["model"], source)  # a file's were checked as it loaded
    else:
        ckpt = load_checkpoint(checkpoint)
    if len(taxonomy) != model.config.num_classes:
        raise ValueError(
            f"taxonomy has {len(taxonomy)} classes, the model {model.config.num_classes}"
        )
    src_tax = Taxonomy.from_dict(ckpt["taxonomy"], source=f"{source}: taxonomy")
    sd: dict[str, torch.Tensor] = ckpt["model"]
    target = model.state_dict()
    head = set(class_head_keys(model))
    sources = class_row_sources(src_tax, taxonomy)
    report = InitReport(source=source)
    report.class_rows = [
        (c.name, src_tax[row].name if row is not None else None, how)
        for c, (row, how) in zip(taxonomy, sources, strict=True)
    ]
    report.moved = [
        (c.name, row, c.id)
        for c, (row, how) in zip(taxonomy, sources, strict=True)
        if how == "same" and row != c.id
    ]
    used = {row for row, _ in sources}
    report.unused_classes = [c.name for c in src_tax if c.id not in used]
    report.architecture = architecture_differences(ckpt.get("model_config"), model.config)
    if report.architecture:
        theirs = _architecture(ckpt["model_config"])
        report.presets = (_preset_name(theirs), _preset_name(_architecture(model.config)))
    new_sd = dict(target)
    for key, want in target.items():
        if key not in sd:
            report.not_in_checkpoint.append(key)
            continue
        have = sd[key]
        if key in head and have.shape[0] == len(src_tax) + 1 and have.shape[1:] == want.shape[1:]:
            rows_changed = have.shape != want.shape or any(
                row != i for i, (row, _) in enumerate(sources)
            )
            if rows_changed:
                grown = _grow_rows(have.to(want.dtype), sources, want, key.endswith("bias"))
                new_sd[key] = grown
                report.grown.append((key, tuple(have.shape), tuple(want.shape)))
                continue
        if have.shape != want.shape:
            report.dropped.append(
                (
                    key,
                    f"shape {list(have.shape)} in the checkpoint, {list(want.shape)} in the model",
                )
            )
            continue
        new_sd[key] = have.to(want.dtype)
        report.loaded.append(key)
    report.dropped += [(k, "not in the model") for k in sd if k not in target]
    if not report.loaded and not report.grown:
        raise ValueError(
            f"{source}: no tensor of the checkpoint matches the model (is it another architecture? "
            f"checkpoint model config {ckpt.get('model_config')})"
        )
    model.load_state_dict(new_sd)
    return report
