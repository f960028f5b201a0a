"""Convert the authors' MaSSFormer checkpoint (mmsegmentation) into an engine checkpoint.

The release (xiechenxi99/MaSS13K at 1afadb9) saves ``{"state_dict": {...}, "meta": {...}}``
(plus, for a training checkpoint, optimizer and logger state that is ignored here). Its 660
state-dict entries map one to one onto ``massformer_r50`` (docs/model.md lists the modules):
every key goes through :data:`KEY_RULES` (first matching pattern wins), every shape is checked,
and nothing is written unless every key of both sides is accounted for.

    from trainer.convert import convert_massformer
    result = convert_massformer("iter_80000.pth", "massformer_r50_mass13k.pt")
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from annotations.taxonomy import MASS13K, Taxonomy
from engine.runinfo import file_sha256, versions
from trainer.checkpoint import check_finite, checkpoint_dict, save_checkpoint, torch_defaults
from trainer.release_file import first_keys, read_release_checkpoint

_P = r"decode_head\.pixel_decoder\.pixel_decoder\."  # the release's pixel decoder (name doubled)
_L = r"decode_head\.transformer_decoder\.layers\.(\d+)\."


@dataclass(frozen=True)
class Renumbered:
    """A rule's key whose group ``group`` is an index numbered otherwise on the other side:
    ``base - i`` (``flip``) or ``i + base``; ``template``'s other ``\\N`` are the groups as
    they are (a string rule's). Called with the key's match, as a rule's callable; its inverse
    (:meth:`inverse`) numbers back, so :mod:`trainer.release_export` derives it."""

    template: str
    group: int
    base: int
    flip: bool = False

    def index(self, i: int) -> int:
        """The other side's number of index ``i``."""
        return self.base - i if self.flip else i + self.base

    def __call__(self, m: re.Match) -> str:
        number = str(self.index(int(m[self.group])))
        return m.expand(self.template.replace(f"\\{self.group}", number))

    def inverse(self, template: str) -> Renumbered:
        """The rule numbering back, to the other side's ``template``."""
        return Renumbered(template, self.group, self.base if self.flip else -self.base, self.flip)


# a renumbered index is a Renumbered, never another callable: trainer.release_export derives
# every rule's inverse, which a function does not give
_Rule = tuple[str, str | Renumbered]


def _deform(release: str, ours: str) -> list[_Rule]:
    """Rules for one release ``DeformLayer`` at ``release`` -> our ``DeformBlock`` at ``ours``."""
    return [
        (release + r"dcn_offset\.(weight|bias)", ours + r".dcn.offset.\1"),  # offset+mask conv
        (release + r"dcn\.weight", ours + ".dcn.weight"),  # the modulated deformable conv
        (release + r"dcn_bn\.(.+)", ours + r".bn.\1"),
        (release + r"up_sample\.weight", ours + ".up.weight"),  # 4x4 stride-2 deconv
        (release + r"up_bn\.(.+)", ours + r".up_bn.\1"),
    ]


# (release key regex, our key): the regex must match the whole release key.
KEY_RULES: list[_Rule] = [
    # backbone: mmseg ResNet-50 v1b has torchvision's names; our stem holds conv1 and bn1
    (r"backbone\.conv1\.weight", "backbone.stem.0.weight"),
    (r"backbone\.bn1\.(.+)", r"backbone.stem.1.\1"),
    (r"backbone\.(layer[1-4]\..+)", r"backbone.\1"),
    # pixel decoder (HR_Pixel_Decoder)
    (_P + r"in_projections\.([0-3])\.(conv|bn)\.(.+)", r"pixel_decoder.proj.\1.\2.\3"),
    (_P + r"conv_avg\.(conv|bn)\.(.+)", r"pixel_decoder.context.\1.\2"),
    # SEB[0..3] re-weight the 1/32, 1/16, 1/8, 1/4 maps: our se[i] is level i (1/4 first)
    (
        _P + r"SEB\.([0-3])\.mlp\.0\.mlp\.0\.weight",
        Renumbered(r"pixel_decoder.se.\1.reduce.weight", 1, 3, True),
    ),
    (
        _P + r"SEB\.([0-3])\.mlp\.0\.mlp\.1\.(.+)",
        Renumbered(r"pixel_decoder.se.\1.bn.\2", 1, 3, True),
    ),
    (
        _P + r"SEB\.([0-3])\.mlp\.0\.mlp\.3\.weight",
        Renumbered(r"pixel_decoder.se.\1.expand.weight", 1, 3, True),
    ),
    *_deform(_P + r"CST\.dcn1\.", "pixel_decoder.cst.dcn_in"),
    *_deform(_P + r"CST\.dcn2\.", "pixel_decoder.cst.dcn_out"),
    # mmcv MultiheadAttention wraps nn.MultiheadAttention as .attn
    (
        _P + r"CST\.cross_self_attn\.(cross_attn|self_attn)\.attn\.(.+)",
        r"pixel_decoder.cst.attn.\1.\2",
    ),
    # mmcv FFN: layers.0.0 = first Linear, layers.1 = second Linear (ours: layers.0, layers.2)
    (
        _P + r"CST\.cross_self_attn\.(ffn[12])\.layers\.0\.0\.(weight|bias)",
        r"pixel_decoder.cst.attn.\1.layers.0.\2",
    ),
    (
        _P + r"CST\.cross_self_attn\.(ffn[12])\.layers\.1\.(weight|bias)",
        r"pixel_decoder.cst.attn.\1.layers.2.\2",
    ),
    *[
        rule
        for j in range(4)
        for rule in _deform(_P + rf"RFB\.deformaspp\.{j}\.", f"pixel_decoder.rfb.branches.{j}")
    ],
    (_P + r"RFB\.conv1\.(weight|bias)", r"pixel_decoder.rfb.fuse.\1"),
    (_P + r"RFB\.bn\.(.+)", r"pixel_decoder.rfb.fuse_bn.\1"),
    (_P + r"RFB\.upconv\.(weight|bias)", r"pixel_decoder.rfb.up_conv.\1"),
    (_P + r"RFB\.bn2\.(.+)", r"pixel_decoder.rfb.up_bn.\1"),
    (_P + r"LSE\.cbn1\.(conv|bn)\.(.+)", r"pixel_decoder.lse.conv_branch.\1.\2"),
    *_deform(_P + r"LSE\.dcn3\.", "pixel_decoder.lse.dcn_branch"),
    (_P + r"LSE\.conv1\.(weight|bias)", r"pixel_decoder.lse.gate_conv.\1"),
    (_P + r"LSE\.conv2\.(weight|bias)", r"pixel_decoder.lse.gate_dcn.\1"),
    (_P + r"LSE\.cbn2\.(conv|bn)\.(.+)", r"pixel_decoder.lse.fuse.\1.\2"),
    (_P + r"edge_conv\.0\.(conv|bn)\.(.+)", r"pixel_decoder.edge_head.0.\1.\2"),
    (_P + r"edge_conv\.1\.(weight|bias)", r"pixel_decoder.edge_head.1.\1"),
    (_P + r"edge_rec\.conv1\.(weight|bias)", r"pixel_decoder.edge_refine.reduce.\1"),
    (_P + r"edge_rec\.conv2\.(weight|bias)", r"pixel_decoder.edge_refine.expand.\1"),
    (_P + r"edge_rec\.norm\.(.+)", r"pixel_decoder.edge_refine.bn.\1"),
    *_deform(_P + r"edge_rec\.dcn\.", "pixel_decoder.edge_refine.dcn"),
    # out[0] makes D1 (mask features); out[1..3] the memories of D4, D3, D2
    (_P + r"out\.0\.(conv|bn)\.(.+)", r"pixel_decoder.mask_proj.\1.\2"),
    (
        _P + r"out\.([1-3])\.(conv|bn)\.(.+)",
        Renumbered(r"pixel_decoder.memory_proj.\1.\2.\3", 1, -1),
    ),
    # transformer decoder (mmdet Mask2FormerTransformerDecoder) and heads
    (_L + r"(cross_attn|self_attn)\.attn\.(.+)", r"decoder.layers.\1.\2.\3"),
    (_L + r"ffn\.layers\.0\.0\.(weight|bias)", r"decoder.layers.\1.ffn.0.\2"),
    (_L + r"ffn\.layers\.1\.(weight|bias)", r"decoder.layers.\1.ffn.2.\2"),
    (_L + r"norms\.([0-2])\.(weight|bias)", Renumbered(r"decoder.layers.\1.norm\2.\3", 2, 1)),
    (r"decode_head\.transformer_decoder\.post_norm\.(weight|bias)", r"decoder.post_norm.\1"),
    (r"decode_head\.(query_embed|query_feat|level_embed)\.weight", r"decoder.\1.weight"),
    (r"decode_head\.cls_embed\.(weight|bias)", r"decoder.class_embed.\1"),
    (r"decode_head\.mask_embed\.([024])\.(weight|bias)", r"decoder.mask_embed.\1.\2"),
]
_COMPILED = [(re.compile(p), r) for p, r in KEY_RULES]


def map_release_key(key: str) -> str | None:
    """Our state-dict key for the release's ``key``, or ``None`` when no rule matches."""
    for pattern, repl in _COMPILED:
        m = pattern.fullmatch(key)
        if m:
            return repl(m) if callable(repl) else m.expand(repl)
    return None


def convert_release_state(
    release: dict[str, torch.Tensor], target: dict[str, torch.Tensor], where: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Map the release's state dict onto ``target`` (our model's state dict: names, shapes).

    Returns a dict with exactly ``target``'s keys, each tensor converted to the target's dtype.
    Raises ``ValueError`` (naming the first few keys, prefixed by ``where``) for release keys
    no rule maps or that map outside the model (unknown), model keys the release lacks
    (missing), and shape mismatches.
    """
    out: dict[str, torch.Tensor] = {}
    unknown, mismatched, seen = [], [], set()
    for key, value in release.items():
        ours = map_release_key(key)
        if ours is None or ours not in target:
            unknown.append(key)
            continue
        seen.add(ours)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(target[ours].shape):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            mismatched.append(f"{key} {shape} vs {ours} {tuple(target[ours].shape)}")
            continue
        out[ours] = value.to(target[ours].dtype)
    missing = [k for k in target if k not in seen]
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} unknown keys: {first_keys(unknown)}")
    if missing:
        problems.append(f"{len(missing)} missing keys: {first_keys(missing)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {first_keys(mismatched)}")
    if problems:
        raise ValueError(
            f"{where}: not a MaSSFormer-R50 release checkpoint ({'; '.join(problems)})"
        )
    return out


@dataclass
class ConvertResult:
    """What :func:`convert_massformer` wrote."""

    out: Path  # the engine checkpoint written
    num_tensors: int  # state-dict entries converted (660 for the release)
    num_parameters: int  # elements of the model's parameters (37,578,176 at K = 7)
    num_classes: int  # K, read from the class head
    classes: list[str]  # the taxonomy written into the checkpoint


def held_checkpoint(path: Path) -> object:
    """What an existing ``--out`` holds, read without running code (``weights_only``, mapped,
    not loaded), to tell an earlier output of the command from a file it must not replace;
    None where it is not a readable torch file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - unreadable: not an earlier output either
        return None


def check_convert_out(src: Path, out: Path) -> None:
    """Refuse an ``out`` that is a folder, or an existing file other than an earlier conversion.

    ``--out`` was replaced whatever it held: a training run's ``last.pt`` (the trained model
    lost) or the release file itself when given as both. An earlier conversion (it carries
    ``converted_from``) is still replaced, so the command can be run again."""
    if out.is_dir():
        raise ValueError(
            f"{out}: a folder; give the checkpoint file to write, e.g. "
            f"--out {out / 'massformer_r50_mass13k.pt'}"
        )
    if not out.exists():
        return
    if out.resolve() == src.resolve():
        what = "the checkpoint being converted"
    else:
        held = held_checkpoint(out)
        if isinstance(held, dict) and "converted_from" in held:
            return
        if isinstance(held, dict) and "model" in held:
            step = held.get("step")
            what = "a training checkpoint" + (f" at step {step}" if step else "")
        else:
            what = "not a checkpoint engine convert-massformer wrote"
    raise ValueError(
        f"{out}: exists ({what}); converting would replace it: give another --out, or delete "
        "it first"
    )


@torch_defaults()  # float32 whatever default dtype a caller set: a float64 one wrote float64
def convert_massformer(
    src: str | os.PathLike, out: str | os.PathLike, taxonomy: Taxonomy | None = None
) -> ConvertResult:
    """Convert the release's MaSSFormer-R50 checkpoint ``src`` into an engine checkpoint ``out``
    (``massformer_r50``, loadable by ``engine predict`` and ``engine train --init``).

    Args:
        src: the mmseg checkpoint (``.pth``).
        out: where to write ours (atomically: nothing is written on any error).
        taxonomy: the classes of the checkpoint's class head; default MaSS13K (7 classes),
            which the class head must then have (8 outputs with no-object).

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: not a torch file / truncated; no state dict; unknown, missing or
            mis-shaped keys; a class count that does not fit the taxonomy.
    """
    from trainer.models import build_model, preset_config

    src, out = Path(src), Path(out)
    check_convert_out(src, out)
    state, meta = read_release_checkpoint(src)
    check_finite(state, src)
    head = state.get("decode_head.cls_embed.weight")
    if not isinstance(head, torch.Tensor) or head.ndim != 2:
        raise ValueError(f"{src}: no class head decode_head.cls_embed.weight (not MaSSFormer?)")
    k = head.shape[0] - 1
    taxonomy = taxonomy or MASS13K
    if taxonomy.num_classes != k:
        raise ValueError(
            f"{src}: the class head has {k} classes (+ no-object), the taxonomy "
            f"{taxonomy.num_classes} ({taxonomy.listed()})"
        )
    config = preset_config("massformer_r50", num_classes=k)
    with torch.device("meta"):
        target = build_model(config).state_dict()
    converted = convert_release_state(state, target, where=str(src))
    save_checkpoint(
        out,
        checkpoint_dict(
            0,
            converted,
            dataclasses.asdict(config),
            taxonomy.to_dict(),
            converted_from={
                "path": str(src),
                # which release file: the path as typed named none once read elsewhere, and
                # the release's meta does not tell one file from another (forty-second round)
                "path_resolved": str(src.resolve()),
                "bytes": src.stat().st_size,
                "sha256": file_sha256(src),
                "meta": _plain(meta, left_out := []),
                # the meta's keys not kept (dotted: "dataset_meta.hooks"), so that a missing
                # one reads as left out, not as absent from the release (fifty-sixth round)
                "meta_left_out": left_out,
                "versions": versions(),  # no time: a reconversion writes the same bytes
            },
        ),
    )
    params = sum(
        v.numel()
        for key, v in converted.items()
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    return ConvertResult(out, len(converted), params, k, list(taxonomy.names))


def _plain(meta: dict, left_out: list[str] | None = None, where: str = "") -> dict:
    """The JSON-like part of the release's ``meta`` (versions, dataset classes and palette), so
    that the written checkpoint stays loadable with ``weights_only=True``: ``None``, scalars
    (numpy's too), dicts and (nested) lists or tuples of these, and numpy arrays of at most
    :data:`MAX_ARRAY_ELEMENTS` such elements (a palette saved as ``np.ndarray``), as lists;
    anything else is left out, its dotted key (``dataset_meta.hooks``) appended to
    ``left_out``."""
    keep: dict = {}
    for key, value in meta.items():
        if isinstance(value, dict):
            keep[str(key)] = _plain(value, left_out, f"{where}{key}.")
        else:
            plain = _plain_value(value)
            if plain is not _LEFT_OUT:
                keep[str(key)] = plain
            elif left_out is not None:
                left_out.append(f"{where}{key}")
    return keep


_SCALARS = (bool, int, float, str)
_LEFT_OUT = object()
# the largest numpy array a release's meta keeps, as a list (a 256-colour palette is 768
# elements): a bigger one (a stored mask, an embedding) is data, not meta, and is left out
MAX_ARRAY_ELEMENTS = 4096


def _plain_value(value: object) -> object:
    """``value`` as builtins (``None``, a scalar, a dict or a list of these, nested), else
    ``_LEFT_OUT``. A numpy array of at most :data:`MAX_ARRAY_ELEMENTS` is a list (before, a palette held as one was left out, and so
    was a list of dicts)."""
    if value is None or isinstance(value, _SCALARS):
        return _scalar(value)
    if isinstance(value, dict):
        return _plain(value)
    if isinstance(value, np.generic) and isinstance(value.item(), _SCALARS):
        return _scalar(value.item())  # np.int64 is no int, np.bool_ no bool (fifty-sixth round)
    if isinstance(value, np.ndarray) and value.size <= MAX_ARRAY_ELEMENTS:
        value = value.tolist()  # builtins (numpy's scalars' .item()), nested; 0-d: the scalar
        if not isinstance(value, list):
            return _plain_value(value)
    if isinstance(value, (list, tuple)):
        items = [_plain_value(v) for v in value]
        if all(v is not _LEFT_OUT for v in items):
            return items
    return _LEFT_OUT


def _scalar(value: object) -> object:
    """The builtin value of a scalar: subclasses (``torch.__version__`` is a ``TorchVersion``,
    numpy's ``float64``/``str_``) would make the checkpoint unloadable with ``weights_only``."""
    for kind in _SCALARS:
        if isinstance(value, kind):
            return kind(value)
    return value
