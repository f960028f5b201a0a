"""Training targets built from a label map: per-class masks, boundary weights, edge map.

Semantic masks are used as instances (Mask2Former's semantic recipe): every class present in a
label map gives one binary target mask. Pixels labelled 255, or marked 2 ("fusion set this to
ignore") in the source map, contribute to no loss term.

Pixel weights (label decoupling, DESIGN section 4):

* ``W = |avgpool5(G) - G|`` per target mask ``G`` (a 5x5 box filter, stride 1, zero padding not
  counted, so the crop's frame is not a boundary). ``W`` is 0 inside and outside a region and
  grows toward its boundary (at most 0.6 on a straight edge).
* precise pixels (source 0): ``1 + 5 W`` (boundary emphasis);
* pseudo pixels (source 1): the reversed weight, by default ``max(0, 1 - W)`` (trust the
  interior, discount the boundary). :class:`DecouplingConfig` selects the form.
* ignored pixels: 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

IGNORE = 255
SOURCE_PRECISE, SOURCE_PSEUDO, SOURCE_IGNORE = 0, 1, 2
PSEUDO_FORMS = ("reversed", "flat", "precise")


@dataclass
class DecouplingConfig:
    """How pseudo-labelled pixels and classes are weighted (label decoupling)."""

    boundary_gain: float = 5.0  # precise pixels weigh 1 + boundary_gain * W
    pseudo_form: str = (
        "reversed"  # "reversed": max(0, 1 - pseudo_scale*W); "flat": 1; "precise": 1 + gain*W
    )
    pseudo_scale: float = 1.0  # strength of the boundary discount in the "reversed" form
    pseudo_class_weight: float = 1.0  # every loss term of a pseudo-labelled class is scaled by this
    pseudo_classes: list[int] | None = field(
        default=None
    )  # ids; None: classes with a parent in the taxonomy

    def __post_init__(self) -> None:
        if self.pseudo_form not in PSEUDO_FORMS:
            raise ValueError(
                f"pseudo_form must be one of {', '.join(PSEUDO_FORMS)}, got {self.pseudo_form!r}"
            )
        if self.pseudo_class_weight < 0 or self.pseudo_scale < 0 or self.boundary_gain < 0:
            raise ValueError("boundary_gain, pseudo_scale and pseudo_class_weight must be >= 0")


def boundary_weight(masks: torch.Tensor) -> torch.Tensor:
    """``W = |avgpool5(G) - G|``.

    Args:
        masks: ``(N, H, W)`` float in {0, 1}.
    Returns:
        ``(N, H, W)`` float in [0, 1); 0 away from every boundary.
    """
    if masks.numel() == 0:
        return masks.clone()
    pooled = F.avg_pool2d(masks[:, None], 5, stride=1, padding=2, count_include_pad=False)[:, 0]
    return (pooled - masks).abs()


def pixel_weights(
    w: torch.Tensor, source: torch.Tensor, valid: torch.Tensor, cfg: DecouplingConfig
) -> torch.Tensor:
    """Per-pixel BCE weight of each target mask.

    Args:
        w: ``(N, H, W)`` boundary weights from :func:`boundary_weight`.
        source: ``(H, W)`` integer source map (0 precise, 1 pseudo, 2 ignore).
        valid: ``(H, W)`` bool, False where the label is 255 or the source is 2.
    Returns:
        ``(N, H, W)`` float >= 0, zero where not ``valid``.
    """
    precise = 1.0 + cfg.boundary_gain * w
    if cfg.pseudo_form == "reversed":
        pseudo = (1.0 - cfg.pseudo_scale * w).clamp_min(0.0)
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
) -> ImageTargets:
    """Targets of one image from its ``(H, W)`` label map (ids, 255 = ignore) and optional
    ``(H, W)`` source map (0 precise, 1 pseudo, 2 fusion-ignore; None: all precise)."""
    if source is None:
        source = torch.zeros_like(label)
    label = label.long().clone()
    label[source == SOURCE_IGNORE] = IGNORE
    valid = label != IGNORE
    present = torch.unique(label[valid]) if bool(valid.any()) else label.new_zeros(0)
    if bool((present >= num_classes).any()):
        raise ValueError(f"label ids {present.tolist()} exceed the model's {num_classes} classes")
    masks = (label[None] == present[:, None, None]).float()
    w = boundary_weight(masks)
    weights = pixel_weights(w, source, valid, cfg)
    cw = torch.tensor(
        [cfg.pseudo_class_weight if int(c) in pseudo_classes else 1.0 for c in present],
        dtype=torch.float32,
        device=label.device,
    )
    edge, edge_valid = edge_target(label)
    return ImageTargets(present, masks, weights, w, valid, cw, edge, edge_valid)
