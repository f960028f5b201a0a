"""Instance results: one validated dataclass that every part takes and returns.

The labeler produces :class:`Instances` per image; fusion, annotation export and the review
gallery read them back from ``instances/<split>/<stem>.json``. Empty means ``(0, H, W)`` masks,
never ``None``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotations.fileio import atomic_write_json, read_json
from annotations.rle import RunWindow, checked_area, mask_to_rle, rle_run_window, rle_to_mask

INSTANCES_FORMAT = "mass-engine/instances/v1"


@dataclass
class Instances:
    """Instances of one image.

    Attributes:
        xyxy: ``(N, 4) float32`` boxes, XYXY in pixels of the full image.
        masks: ``(N, H, W) bool`` instance masks at the full image resolution.
        scores: ``(N,) float32`` detector (box) scores in 0..1.
        mask_scores: ``(N,) float32`` segmenter mask quality scores (SAM IoU prediction) in 0..1.
        class_ids: ``(N,) int64`` class ids in the run's taxonomy.
        prompts: ``N`` strings, the text prompt each box matched best.
        refined: ``(N,) bool`` whether crop-zoom refinement replaced the mask
            (``labeler.refine``), or None when no refinement ran.
    """

    xyxy: np.ndarray
    masks: np.ndarray
    scores: np.ndarray
    mask_scores: np.ndarray
    class_ids: np.ndarray
    prompts: list[str] = field(default_factory=list)
    refined: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32)
        self.masks = np.asarray(self.masks, dtype=bool)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.mask_scores = np.asarray(self.mask_scores, dtype=np.float32)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64)
        self.prompts = list(self.prompts)
        if self.masks.ndim != 3:
            raise ValueError(f"masks must be (N, H, W), got {self.masks.shape}")
        n = self.masks.shape[0]
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must be ({n}, 4) to match masks, got {self.xyxy.shape}")
        for name in ("scores", "mask_scores", "class_ids"):
            got = getattr(self, name).shape
            if got != (n,):
                raise ValueError(f"{name} must be ({n},) to match masks, got {got}")
        if len(self.prompts) != n:
            raise ValueError(
                f"prompts must hold {n} strings to match masks, got {len(self.prompts)}"
            )
        if self.refined is not None:
            self.refined = np.asarray(self.refined, dtype=bool)
            if self.refined.shape != (n,):
                raise ValueError(f"refined must be ({n},) to match masks, got {self.refined.shape}")

    @classmethod
    def empty(cls, height: int, width: int) -> Instances:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            masks=np.zeros((0, height, width), bool),
            scores=np.zeros(0, np.float32),
            mask_scores=np.zeros(0, np.float32),
            class_ids=np.zeros(0, np.int64),
            prompts=[],
        )

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the image the masks cover."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @property
    def areas(self) -> np.ndarray:
        return self.masks.sum(axis=(1, 2), dtype=np.int64)

    def __getitem__(self, index: Any) -> Instances:
        """Select instances with an index array, boolean mask or slice."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        return Instances(
            xyxy=self.xyxy[idx],
            masks=self.masks[idx],
            scores=self.scores[idx],
            mask_scores=self.mask_scores[idx],
            class_ids=self.class_ids[idx],
            prompts=[self.prompts[i] for i in idx.tolist()],
            refined=None if self.refined is None else self.refined[idx],
        )

    @classmethod
    def merge(cls, parts: list[Instances]) -> Instances:
        """Concatenate instance sets of the same image."""
        if not parts:
            raise ValueError("merge needs at least one Instances (use Instances.empty for none)")
        sizes = {p.image_size for p in parts}
        if len(sizes) != 1:
            raise ValueError(f"cannot merge instances of different image sizes: {sorted(sizes)}")
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            masks=np.concatenate([p.masks for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            mask_scores=np.concatenate([p.mask_scores for p in parts]),
            class_ids=np.concatenate([p.class_ids for p in parts]),
            prompts=[s for p in parts for s in p.prompts],
            refined=None
            if any(p.refined is None for p in parts)
            else np.concatenate([p.refined for p in parts]),
        )

    # -- JSON ----------------------------------------------------------------------------------
    def to_json(self, **header: Any) -> dict:
        """A JSON-ready dict: ``header`` fields (image, split, class, backend, ...) plus instances."""
        return instances_json(self, (mask_to_rle(m) for m in self.masks), **header)

    @classmethod
    def from_json(cls, data: dict, source: str = "instances") -> Instances:
        try:
            h, w = int(data["height"]), int(data["width"])
            items = data["instances"]
            if not items:
                return cls.empty(h, w)
            masks = np.stack([rle_to_mask(it["segmentation"]) for it in items])
            if masks.shape[1:] != (h, w):
                raise ValueError(f"masks are {masks.shape[1:]} but the file says {(h, w)}")
            return cls(masks=masks, **_fields(items))
        except (KeyError, TypeError) as e:
            raise ValueError(
                f"{source}: not an instances file (missing or malformed {e})"
            ) from None
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None


def _fields(items: list[dict]) -> dict[str, Any]:
    """The fields of :class:`Instances` but the masks, from an instances file's items."""
    return {
        "xyxy": np.array([it["box_xyxy"] for it in items], np.float32),
        "scores": np.array([it["score"] for it in items], np.float32),
        "mask_scores": np.array([it.get("mask_score", 1.0) for it in items], np.float32),
        "class_ids": np.array([it["class_id"] for it in items], np.int64),
        "prompts": [str(it.get("prompt", "")) for it in items],
        "refined": np.array([bool(it["refined"]) for it in items])
        if all("refined" in it for it in items)
        else None,
    }


@dataclass(frozen=True)
class InstanceSummary:
    """What an instances file says of each instance but its mask: the scores and the areas, as
    :func:`read_instances` would give them (``Instances.scores``, ``Instances.areas``)."""

    image_size: tuple[int, int]
    scores: np.ndarray  # (N,) float32
    areas: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def read_instance_summary(path: str | os.PathLike) -> InstanceSummary:
    """An instances file's :class:`InstanceSummary`, its masks' areas counted from their run
    lengths instead of decoded (a 4032x3024 mask is 12 MB; ``engine annotate pick`` and ``engine
    review`` read every image's file for its scores and areas). The file is checked as
    :func:`read_instances` checks it, with the same errors."""
    hw, checked, inst = _read_checked(path, checked_area)
    areas = np.array(checked, np.int64)
    scores = inst.scores if inst is not None else np.zeros(0, np.float32)
    return InstanceSummary(hw, scores, areas)


def _read_checked(
    path: str | os.PathLike, read_one: Any, header: dict | None = None
) -> tuple[tuple[int, int], list, Any]:
    """An instances file checked as :func:`read_instances` checks it, with the same errors,
    its masks not decoded: ``((h, w), [value of each instance], Instances without masks)``,
    where ``read_one(segmentation) -> (size, value)`` reads one mask's run lengths; the
    instances are None for a file of none. ``header``, where given, receives the file's
    fields but the instances (:func:`read_instances`' header)."""
    path = Path(path)
    data = read_json(path, "instances file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if header is not None:
        header.update((k, v) for k, v in data.items() if k != "instances")
    try:
        h, w = int(data["height"]), int(data["width"])
        items = data["instances"]
        if not items:
            return (h, w), [], None
        checked = [read_one(it["segmentation"]) for it in items]
        sizes = {size for size, _ in checked}
        if len(sizes) > 1:  # np.stack's words, as read_instances says them
            raise ValueError("all input arrays must have the same shape")
        if (size := sizes.pop()) != (h, w):
            raise ValueError(f"masks are {size} but the file says {(h, w)}")
        inst = Instances(masks=np.zeros((len(items), 0, 0), bool), **_fields(items))
        return (h, w), [value for _, value in checked], inst
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: not an instances file (missing or malformed {e})") from None
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


@dataclass(frozen=True)
class MaskWindow:
    """One instance's mask inside its window: ``mask`` ``(h, w) bool`` covers rows
    ``y0:y0+h``, columns ``x0:x0+w`` of the image; pixels outside it are background. Read as
    :class:`annotations.rle.RunWindow` is (``box``, ``crop()``)."""

    y0: int
    x0: int
    mask: np.ndarray

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(y0, x0, y1, x1)``."""
        h, w = self.mask.shape
        return self.y0, self.x0, self.y0 + h, self.x0 + w

    def crop(self) -> np.ndarray:
        return self.mask

    @classmethod
    def from_full(cls, mask: np.ndarray) -> MaskWindow:
        """The tight window of an ``(H, W)`` mask (an empty mask gives a 0x0 window at 0, 0)."""
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows) == 0:
            return cls(0, 0, np.zeros((0, 0), bool))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        return cls(y0, x0, np.asarray(mask[y0:y1, x0:x1], bool).copy())


@dataclass(frozen=True)
class InstanceWindows:
    """Instances of one image as their masks' windows and class ids: what fusion's coverage drop
    needs, without ``(N, H, W)`` masks (100 instances of a 4032x3024 photo are 1.2 GB of them).

    Each of ``windows`` has ``box`` ``(y0, x0, y1, x1)``, the tight window of its mask, and
    ``crop()``, the ``(y1 - y0, x1 - x0) bool`` mask inside it: a :class:`MaskWindow`, or, read
    from a file, an :class:`annotations.rle.RunWindow` that paints it only when asked, so a
    reader holds one window at a time."""

    image_size: tuple[int, int]
    class_ids: np.ndarray  # (N,) int64
    windows: tuple[MaskWindow | RunWindow, ...]
    # (N,) float32 each, as Instances holds them: what an annotation export writes beside masks;
    # None: 1 each, as for a drawn mask (a subset's). Before the forty-eighth round the default
    # was an empty array that meant the same, so scores emptied by mistake became 1 each
    scores: np.ndarray | None = None
    mask_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.windows)
        for name in ("scores", "mask_scores"):
            given = getattr(self, name)
            value = np.ones(n, np.float32) if given is None else np.asarray(given, np.float32)
            if value.shape != (n,):
                raise ValueError(f"{name} must be ({n},) to match the windows, got {value.shape}")
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: Any) -> InstanceWindows:
        """Select instances with an index array, boolean mask or slice."""
        idx = np.atleast_1d(np.arange(len(self))[index]).tolist()
        return InstanceWindows(
            self.image_size,
            self.class_ids[idx],
            tuple(self.windows[i] for i in idx),
            self.scores[idx],
            self.mask_scores[idx],
        )

    @classmethod
    def from_instances(cls, inst: Instances) -> InstanceWindows:
        windows = tuple(map(MaskWindow.from_full, inst.masks))
        return cls(inst.image_size, inst.class_ids, windows, inst.scores, inst.mask_scores)


def read_instance_windows(path: str | os.PathLike) -> InstanceWindows:
    """An instances file's masks as :class:`InstanceWindows`, none decoded at full size: each
    is painted inside its window when asked. The file is checked as :func:`read_instances`
    checks it, with the same errors."""
    return read_windows(path)[0]


def read_windows(path: str | os.PathLike) -> tuple[InstanceWindows, dict]:
    """``(instances, header)`` of an instances file as :func:`read_instances` gives them, the
    masks as :class:`InstanceWindows` (with the scores): an annotation export reads each
    instance inside its box, where the ``(N, H, W)`` masks of 70 instances of a 3840x2160
    photo are 580 MB to decode and stack."""
    header: dict = {}
    read_one = lambda seg: ((win := rle_run_window(seg)).size, win)  # noqa: E731
    hw, windows, inst = _read_checked(path, read_one, header)
    if inst is None:
        return InstanceWindows(hw, np.zeros(0, np.int64), ()), header
    windowed = InstanceWindows(hw, inst.class_ids, tuple(windows), inst.scores, inst.mask_scores)
    return windowed, header


def write_instances(path: str | os.PathLike, instances: Instances, **header: Any) -> Path:
    """Write ``instances`` as JSON atomically; ``header`` adds fields such as image, class, backend."""
    return atomic_write_json(path, instances.to_json(**header), indent=None)


def read_instances(path: str | os.PathLike) -> tuple[Instances, dict]:
    """Read an instances file: ``(instances, header)`` where header holds the non-instance fields."""
    path = Path(path)
    data = read_json(path, "instances file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    header = {k: v for k, v in data.items() if k != "instances"}
    return Instances.from_json(data, source=str(path)), header


def instances_json(inst: Any, segmentations: Iterable[dict], **header: Any) -> dict:
    """The instances file's dict for ``inst`` (an :class:`Instances` or anything with its fields,
    ``image_size`` and ``areas``: the labeler's cropped form), with ``segmentations`` the COCO RLE
    of each mask in order; ``header`` fields come first."""
    h, w = inst.image_size
    areas = inst.areas
    refined = inst.refined
    return {
        "format": INSTANCES_FORMAT,
        **header,
        "height": h,
        "width": w,
        "instances": [
            {
                "box_xyxy": [round(float(v), 2) for v in inst.xyxy[i]],
                "score": round(float(inst.scores[i]), 5),
                "mask_score": round(float(inst.mask_scores[i]), 5),
                "area": int(areas[i]),
                "class_id": int(inst.class_ids[i]),
                "prompt": inst.prompts[i],
                **({} if refined is None else {"refined": bool(refined[i])}),
                "segmentation": seg,
            }
            for i, seg in enumerate(segmentations)
        ],
    }
