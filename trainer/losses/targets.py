"""Training targets built from a label map: per-class masks, boundary weights, edge map.

Semantic masks are used as instances (Mask2Former's semantic recipe): every class present in a
label map gives one binary target mask. Pixels labelled 255, or marked 2 ("fusion set this to
ignore") in the source map, contribute to no loss term.

Pixel weights (label decoupling, DESIGN section 4):

* ``W = |avgpool5(G) - G|`` per target mask ``G`` (a 5x5 box filter, stride 1), averaged over the
  labelled pixels of the window only: neither the crop's frame nor a 255 band is a boundary (the
  class beyond them is unknown). ``W`` is 0 inside and outside a region and grows toward its
  boundary (0.2, 0.4 | 0.4, 0.2 across a straight edge).
* precise weighting: ``1 + boundary_gain * W`` (boundary emphasis);
* the discount: ``max(0, 1 - pseudo_scale * W)`` (trust the interior, not the boundary);
* ``pseudo_form`` (:class:`DecouplingConfig`) says where the discount applies:

  - ``origin`` (default): by where an edge comes from. Near an edge the pseudo labels drew (a
    pseudo-labelled class against its parent, or against another pseudo-labelled class) every
    mask is discounted, on both sides; every other edge, including a new class against a
    non-parent class (copied from the precise labels by fusion's parent constraint), keeps the
    precise weighting on both sides. ``drawn_rule`` says what "near" is: ``window`` (default)
    within 2 px of both classes, ``contact`` within 2 px of both sides of a place where they touch
    (:func:`drawn_edges`).
  - ``reversed``: every pseudo pixel (source 1) is discounted, every precise one emphasised (the
    parent side of a drawn edge gets ``1 + 5 W``, the new-class side of a copied edge ``1 - W``).
  - ``flat``: pseudo pixels weigh 1, precise ones ``1 + 5 W``.
  - ``precise``: no decoupling (every pixel ``1 + 5 W``).
* ignored pixels: 0.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from annotations.labelmap import IGNORE  # the label maps' "unknown" value
from annotations.numbers import check_numbers, class_ids
from engine.datasets import SOURCE_IGNORED, SOURCE_PSEUDO

PSEUDO_FORMS = ("origin", "reversed", "flat", "precise")
DRAWN_RULES = ("window", "contact")  # which edges ``origin`` takes as drawn (drawn_edges)


@dataclass
class DecouplingConfig:
    """How pseudo-labelled pixels and classes are weighted (label decoupling)."""

    boundary_gain: float = 5.0  # precise weighting is 1 + boundary_gain * W
    pseudo_form: str = "origin"  # origin | reversed | flat | precise (module docstring)
    pseudo_scale: float = 1.0  # strength of the boundary discount: max(0, 1 - pseudo_scale * W)
    drawn_rule: str = "window"  # origin's drawn edges: window (nearness) | contact (drawn_edges)
    pseudo_class_weight: float = 1.0  # every loss term of a pseudo-labelled class is scaled by this
    pseudo_classes: list[int] | None = field(
        default=None
    )  # ids; None: classes with a parent in the taxonomy

    def __post_init__(self) -> None:
        check_numbers(self)  # a Python caller's nan or inf (a file's is refused as it is read)
        if self.pseudo_form not in PSEUDO_FORMS:
            raise ValueError(
                f"pseudo_form must be one of {', '.join(PSEUDO_FORMS)}, got {self.pseudo_form!r}"
            )
        if self.drawn_rule not in DRAWN_RULES:
            raise ValueError(
                f"drawn_rule must be one of {', '.join(DRAWN_RULES)}, got {self.drawn_rule!r}"
            )
        if self.pseudo_class_weight < 0 or self.pseudo_scale < 0 or self.boundary_gain < 0:
            raise ValueError("boundary_gain, pseudo_scale and pseudo_class_weight must be >= 0")
        if self.pseudo_classes is not None:  # a caller's [nan] was taken (no class weighted)
            self.pseudo_classes = class_ids(self.pseudo_classes, "pseudo_classes")


def boundary_weight(masks: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``W = |avgpool5(G) - G|``.

    Args:
        masks: ``(N, H, W)`` float in {0, 1}.
        valid: ``(H, W)`` bool, the labelled pixels. The box filter averages over these only and
            ``W`` is 0 elsewhere, so a pixel beside a 255 band is no boundary. None: every pixel
            counts as labelled (a 255 band then looks like a boundary of every class beside it).
    Returns:
        ``(N, H, W)`` float in [0, 1); 0 away from every boundary.
    """
    if masks.numel() == 0:
        return masks.clone()
    count = _window_count(*masks.shape[-2:], masks.dtype, masks.device)

    def box(x: torch.Tensor) -> torch.Tensor:
        return _box_sum(x) / count  # avg_pool2d(5, stride 1, padding 2, count_include_pad=False)

    if valid is None:
        return (box(masks) - masks).abs()
    v = valid.to(masks.dtype)[None]
    # the ratio of two box means over the same window = mean of G over the window's valid pixels
    pooled = box(masks * v) / box(v).clamp_min(1e-6)
    return (pooled - masks).abs() * v


REACH = 2  # W's window is (2 * REACH + 1) pixels square


def _window_reduce(
    x: torch.Tensor, op: Callable[[Any, Any], Any], reach: int = REACH
) -> torch.Tensor:
    """``op`` (``+`` or ``|``) over each pixel's window, ``2 reach + 1`` pixels square (5x5 by
    default), of ``(N, H, W)`` ``x``, the frame padded with zeros: two 1-D passes of shifted
    slices."""
    h, w = x.shape[-2:]
    p = F.pad(x, (reach, reach, reach, reach))
    rows = functools.reduce(op, (p[..., i : i + w] for i in range(2 * reach + 1)))
    return functools.reduce(op, (rows[..., i : i + h, :] for i in range(2 * reach + 1)))


def _box_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``(N, H, W)`` ``x`` over each pixel's 5x5 window, clipped at the frame.

    On 0/1 masks every partial sum is a small integer, exact in float32 whatever the order, so
    ``_box_sum(x) / _window_count(...)`` equals ``F.avg_pool2d(x, 5, 1, 2,
    count_include_pad=False)`` bit for bit (tested). That pooling kernel was half of building an
    image's targets on CPU; these shifted adds make :func:`build_targets` 2.9x faster at a
    256 px crop (docs/rounds.md, thirteenth round).
    """
    return _window_reduce(x, operator.add)


def _window_count(h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(H, W)`` number of pixels of each 5x5 window inside the ``H x W`` frame."""

    def inside(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device)
        return (torch.clamp(i + REACH, max=n - 1) - torch.clamp(i - REACH, min=0) + 1).to(dtype)

    return inside(h)[:, None] * inside(w)[None, :]


def _near(x: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` bool: a non-zero of the non-negative ``x`` lies within the 5x5 window
    (``max_pool2d(x, 5, 1, 2) > 0``, exactly)."""
    return _window_reduce(x > 0, operator.or_)


def drawn_edges(
    masks: torch.Tensor,
    present: torch.Tensor,
    source: torch.Tensor,
    pseudo_classes: Iterable[int],
    parents: Mapping[int, Iterable[int]] | None = None,
    rule: str = "window",
) -> torch.Tensor:
    """Where the pseudo labels drew an edge: pixels within 2 pixels (the reach of ``W``) of both a
    pseudo pixel (source 1) of a pseudo-labelled class and a pixel of one of its parents or of
    another pseudo-labelled class.

    ``rule`` ``window`` takes every such pixel (nearness: a strip of a third class up to 3 px wide
    between a new class and its parent is discounted too). ``contact`` takes only the pixels within
    2 px of both sides of a contact: a pseudo pixel of the new class and a parent (or other new
    class) pixel that touch as 8-neighbours, or through one ignored pixel between them (an
    unlabelled pixel of ``masks``: 255 or source 2), so an edge seen across a 1 px ignored band
    is still drawn, as under ``window``. The ``contact`` band is a subset of the ``window`` one.

    Args:
        masks: ``(N, H, W)`` float {0, 1} target masks of classes ``present`` ``(N,)``.
        source: ``(H, W)`` integer source map (0 precise, 1 pseudo, 2 ignore).
        pseudo_classes: ids of the pseudo-labelled classes.
        parents: class id -> its parent ids. A pseudo class missing here counts every other class
            as its parent (all its edges are then taken as drawn by the pseudo labels).
        rule: ``window`` or ``contact`` (:data:`DRAWN_RULES`, ``DecouplingConfig.drawn_rule``).
    Returns:
        ``(H, W)`` bool.
    """
    if rule not in DRAWN_RULES:  # a caller's typo would else draw by window
        raise ValueError(f"rule must be one of {', '.join(DRAWN_RULES)}, got {rule!r}")
    band = torch.zeros(source.shape, dtype=torch.bool, device=source.device)
    ids = [int(c) for c in present]
    pseudo = set(int(c) for c in pseudo_classes)
    if not pseudo.intersection(ids):
        return band
    parents = parents or {}
    pairs: list[tuple[int, list[int]]] = []  # (pseudo row, the rows its drawn edges meet)
    for i, c in enumerate(ids):
        if c not in pseudo:
            continue
        allowed = parents.get(c)
        allowed = None if allowed is None else set(int(p) for p in allowed)
        other = [
            j
            for j, d in enumerate(ids)
            if d != c and (allowed is None or d in allowed or d in pseudo)
        ]
        if other:
            pairs.append((i, other))
    if not pairs:
        return band

    def near(rows: list[int], weight: torch.Tensor | None = None) -> dict[int, torch.Tensor]:
        """Row -> within 2 px of that mask (times ``weight``): dilated only where needed."""
        m = masks[rows] if weight is None else masks[rows] * weight
        return dict(zip(rows, _near(m), strict=True))

    if rule == "contact":
        return _contact_band(masks, source, pairs)
    from_pseudo = (source == SOURCE_PSEUDO)[None].to(masks.dtype)
    near_pseudo = near([i for i, _ in pairs], from_pseudo)
    near_other = near(sorted({j for _, other in pairs for j in other}))
    for i, other in pairs:
        band |= near_pseudo[i] & torch.stack([near_other[j] for j in other]).any(0)
    return band


def _contact_band(
    masks: torch.Tensor, source: torch.Tensor, pairs: list[tuple[int, list[int]]]
) -> torch.Tensor:
    """:func:`drawn_edges` by the ``contact`` rule, ``pairs`` its (pseudo row, other rows)."""
    ignored = ~masks.bool().any(0)  # no present class: 255 or source 2

    def touching(x: torch.Tensor) -> torch.Tensor:
        """Pixels that are 8-neighbours of ``(H, W)`` bool ``x``, or of an ignored one that is."""
        t = _window_reduce(x[None], operator.or_, 1)[0]
        return t | _window_reduce((t & ignored)[None], operator.or_, 1)[0]

    from_pseudo = source == SOURCE_PSEUDO
    band = torch.zeros(source.shape, dtype=torch.bool, device=source.device)
    for i, other in pairs:
        drew = masks[i].bool() & from_pseudo
        met = masks[other].bool().any(0)
        sides = torch.stack([drew & touching(met), met & touching(drew)])
        band |= _near(sides).all(0)  # within 2 px of both sides of a contact
    return band


def pixel_weights(
    w: torch.Tensor,
    source: torch.Tensor,
    valid: torch.Tensor,
    cfg: DecouplingConfig,
    drawn: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pixel BCE weight of each target mask.

    Args:
        w: ``(N, H, W)`` boundary weights from :func:`boundary_weight`.
        source: ``(H, W)`` integer source map (0 precise, 1 pseudo, 2 ignore).
        valid: ``(H, W)`` bool, False where the label is 255 or the source is 2.
        drawn: ``(H, W)`` bool, :func:`drawn_edges` (the ``origin`` form only; None: no edge
            was drawn by pseudo labels).
    Returns:
        ``(N, H, W)`` float >= 0, zero where not ``valid``.
    """
    precise = 1.0 + cfg.boundary_gain * w
    discount = (1.0 - cfg.pseudo_scale * w).clamp_min(0.0)
    if cfg.pseudo_form == "origin":
        where = drawn if drawn is not None else torch.zeros_like(valid)
        out = torch.where(where[None], discount, precise)
    else:
        if cfg.pseudo_form == "reversed":
            pseudo = discount
        elif cfg.pseudo_form == "flat":
            pseudo = torch.ones_like(w)
        else:
            pseudo = precise
        out = torch.where((source == SOURCE_PSEUDO)[None], pseudo, precise)
    return out * valid[None].to(out.dtype)


def edge_target(label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2-pixel edge map of a label map, and where it is defined.

    A pixel is an edge pixel when one of its 4-neighbours (left, right, up, down) holds another
    class id. Both sides of a boundary are marked, so every boundary between two classes is a
    band 2 pixels wide. The image frame is not an edge. Pixels labelled 255, and pixels with a
    255 4-neighbour (where the boundary is unknown), are undefined.

    Args:
        label: ``(H, W)`` integer class ids, 255 = ignore.
    Returns:
        ``(edge (H, W) float in {0, 1}, defined (H, W) bool)``.
    """
    lab = label.long()
    ign = lab == IGNORE
    edge = torch.zeros_like(ign)
    near_ign = ign.clone()
    # horizontal neighbours
    a, b = lab[:, :-1], lab[:, 1:]
    diff = (a != b) & (a != IGNORE) & (b != IGNORE)
    edge[:, :-1] |= diff
    edge[:, 1:] |= diff
    near_ign[:, :-1] |= ign[:, 1:]
    near_ign[:, 1:] |= ign[:, :-1]
    # vertical neighbours
    a, b = lab[:-1, :], lab[1:, :]
    diff = (a != b) & (a != IGNORE) & (b != IGNORE)
    edge[:-1, :] |= diff
    edge[1:, :] |= diff
    near_ign[:-1, :] |= ign[1:, :]
    near_ign[1:, :] |= ign[:-1, :]
    return edge.float(), ~near_ign


@dataclass
class ImageTargets:
    """The targets of one image, all on the label's device at the label's resolution."""

    labels: torch.Tensor  # (N,) int64 class id of each target mask (sorted ascending)
    masks: torch.Tensor  # (N, H, W) float {0, 1}
    weights: torch.Tensor  # (N, H, W) float per-pixel BCE weight (0 where ignored)
    boundary: torch.Tensor  # (N, H, W) float W = |avgpool5(G) - G|, used to bias point sampling
    valid: torch.Tensor  # (H, W) bool pixels that count (not 255, not source 2)
    class_weight: torch.Tensor  # (N,) float whole-class weight (pseudo_class_weight or 1)
    edge: torch.Tensor  # (H, W) float 2-pixel edge map
    edge_valid: torch.Tensor  # (H, W) bool where the edge target is defined


def build_targets(
    label: torch.Tensor,
    source: torch.Tensor | None,
    num_classes: int,
    cfg: DecouplingConfig,
    pseudo_classes: set[int] | frozenset[int] = frozenset(),
    parents: Mapping[int, Iterable[int]] | None = None,
) -> ImageTargets:
    """Targets of one image from its ``(H, W)`` label map (ids, 255 = ignore) and optional
    ``(H, W)`` source map (0 precise, 1 pseudo, 2 fusion-ignore; None: all precise).
    ``parents`` maps a pseudo-labelled class to its parent ids (the ``origin`` form's drawn
    edges, :func:`drawn_edges`)."""
    if source is None:
        source = torch.zeros_like(label)
    label = label.long().clone()
    label[source == SOURCE_IGNORED] = IGNORE
    valid = label != IGNORE
    # the ids present, ascending (torch.unique's answer, without its sort of every pixel)
    present = torch.bincount(label[valid], minlength=1).nonzero()[:, 0]
    if bool((present >= num_classes).any()):
        raise ValueError(f"label ids {present.tolist()} exceed the model's {num_classes} classes")
    masks = (label[None] == present[:, None, None]).float()
    w = boundary_weight(masks, valid)
    drawn = None
    if cfg.pseudo_form == "origin" and len(present):
        drawn = drawn_edges(masks, present, source, pseudo_classes, parents, cfg.drawn_rule)
    weights = pixel_weights(w, source, valid, cfg, drawn)
    cw = torch.tensor(
        [cfg.pseudo_class_weight if int(c) in pseudo_classes else 1.0 for c in present],
        dtype=torch.float32,
        device=label.device,
    )
    edge, edge_valid = edge_target(label)
    return ImageTargets(present, masks, weights, w, valid, cw, edge, edge_valid)
