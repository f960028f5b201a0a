"""The fusion rules for one image: precise label map + new-class pseudo labels -> fused label map.

Pure numpy, no file access. Every rule of the fusion lives here, so it can be tested on small
hand-made arrays:

1. **Coverage drop** (optional, ``min_coverage``): an instance whose mask lies mostly outside its
   class's parent pixels (with the parent constraint off too) is a wrong detection; its pixels
   (those no kept instance of the same class covers) are removed from the pseudo label before
   anything else.
2. **Parent constraint** (default on): a new class claims only pixels whose precise label is one
   of its parent classes. Everything else keeps its precise label.
3. **Uncertain pixels** (255 in a pseudo label) on parent pixels become 255 (``"ignore"``) or
   keep the parent label (``"keep-parent"``).
4. **Overlaps** between new classes: the higher priority (if a priority list is given), then the
   higher per-pixel confidence wins; a tie, or two or more classes uncertain with none certain,
   becomes 255.
5. Precise 255 pixels are never changed; with the parent constraint on, neither are precise
   pixels of non-parent classes.
6. **Corrections** (``PseudoLabel.corrected``, a human-corrected mask of an annotated subset):
   where it says 1 or 0 it replaces the class's pseudo label (after the coverage drop) before
   rules 2-4. A corrected 1 is a certain claim that beats every pseudo claim of its priority
   band (another class's correction ties with it) and its pixel's source is 0 (human-checked); a
   corrected 0 is not the class there (the pixel keeps its precise label unless another class
   claims it); 255 (unannotated) leaves the pseudo label as it is. The parent constraint holds
   for corrections too: a corrected 1 on a precise non-parent pixel keeps the precise label
   (counted in ``corrected_rejected``; ``parent_constraint=False`` lets the human win).

The source map says where each fused pixel came from: 0 = precise label, 1 = a pseudo label,
2 = set to ignore (255) by fusion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from annotations.instances import Instances, InstanceWindows, MaskWindow
from annotations.labelmap import IGNORE, byte_histogram
from annotations.rle import RunWindow
from engine.datasets import SOURCE_IGNORED, SOURCE_PRECISE, SOURCE_PSEUDO

UNCERTAIN_MODES = ("ignore", "keep-parent")


def check_uncertain_and_coverage(uncertain: str, min_coverage: float | None) -> None:
    """``ValueError`` for an ``uncertain`` mode not in :data:`UNCERTAIN_MODES` or a
    ``min_coverage`` outside 0..1 (:class:`FusionRules` and ``engine fuse``'s config)."""
    if uncertain not in UNCERTAIN_MODES:
        raise ValueError(
            f"uncertain must be one of {', '.join(UNCERTAIN_MODES)}, got {uncertain!r}"
        )
    if min_coverage is not None and not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in 0..1, got {min_coverage}")


@dataclass(frozen=True)
class PseudoLabel:
    """One new class's pseudo label for one image.

    Attributes:
        class_id: the class's id in the fused taxonomy (>= the number of precise classes).
        label: ``(H, W) uint8``: 0 = not the class, 1 = the class, 255 = uncertain.
        confidence: ``(H, W) uint8`` per-pixel confidence 0..255 (used to settle overlaps).
        instances: the instances the label was merged from, or None when not needed (coverage
            drop off). Only instances of this class are passed. ``engine fuse`` passes them as
            :class:`~annotations.instances.InstanceWindows` (each mask inside its window);
            :class:`~annotations.instances.Instances` (full-size masks) give the same result.
    """

    class_id: int
    label: np.ndarray
    confidence: np.ndarray
    instances: Instances | InstanceWindows | None = None
    # a human-corrected mask (an annotated subset's, ``(H, W) uint8``): 1 = the class, 0 = not,
    # 255 = unannotated (the pseudo label stands); None: no correction of this class here
    corrected: np.ndarray | None = None


@dataclass(frozen=True)
class FusionRules:
    """How pseudo labels are fused into the precise label map."""

    # new class id -> precise class ids it may claim (its parents); every new class needs an entry
    parents: Mapping[int, tuple[int, ...]]
    # False: a new class may claim any precise pixel except 255s (overwrites other classes)
    parent_constraint: bool = True
    # uncertain pseudo pixels on parent pixels: "ignore" -> 255, "keep-parent" -> unchanged
    uncertain: str = "ignore"
    # drop an instance whose share of (non-255) mask pixels on parent pixels is below this; None: off
    min_coverage: float | None = None
    # new class ids in priority order: an earlier class wins an overlap whatever the confidence;
    # classes not listed rank after the listed ones and settle overlaps by confidence
    priority: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_uncertain_and_coverage(self.uncertain, self.min_coverage)
        if len(set(self.priority)) != len(self.priority):
            raise ValueError(f"priority lists a class twice: {list(self.priority)}")


@dataclass
class ClassStats:
    """Pixel and instance counts of one new class, for one image or summed over many."""

    images: int = 0  # images fused
    images_with_none: int = 0  # images where the class claims no pixel after fusion
    images_without_pseudo: int = 0  # images whose raw pseudo label has no pixel of the class
    pseudo_pixels: int = 0  # pixels labelled 1 in the raw pseudo label
    claimed_pixels: int = 0  # pixels the fused label gives to the class
    rejected_pixels: int = 0  # pseudo pixels on precise non-parent classes (parent constraint)
    dropped_pixels: int = 0  # pseudo pixels removed with instances dropped by coverage
    uncertain_ignored: int = 0  # uncertain pseudo pixels on parent pixels that fusion set to 255
    overlap_lost: int = 0  # certain pseudo pixels won by another new class or tied (-> 255)
    instances: int = 0  # instances read (only counted when coverage drop is on)
    instances_dropped: int = 0  # instances dropped by coverage
    # with corrections only (CORRECTION_FIELDS: left out of records of fusions without them)
    corrected_images: int = 0  # images a corrected mask of the class covers
    corrected_pixels: int = 0  # pixels a corrected mask decides (1 or 0, not 255)
    corrected_claimed: int = 0  # corrected 1 pixels the fused label gives to the class
    corrected_rejected: int = 0  # corrected 1 pixels on precise non-parent pixels (kept precise)

    def __add__(self, other: ClassStats) -> ClassStats:
        return ClassStats(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    @property
    def rejected_share(self) -> float | None:
        """Rejected pixels as a share of the raw pseudo mask; None when the mask is empty."""
        return self.rejected_pixels / self.pseudo_pixels if self.pseudo_pixels else None

    def to_dict(self, corrections: bool = True) -> dict:
        return {**self.counts(corrections), "rejected_share": self.rejected_share}

    def counts(self, corrections: bool = True) -> dict[str, int]:
        """The counts by name; without ``corrections``, those of :data:`CORRECTION_FIELDS` left
        out (a fusion without ``--corrections`` records what it recorded before them)."""
        d = asdict(self)
        return d if corrections else {k: v for k, v in d.items() if k not in CORRECTION_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping) -> ClassStats:
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})


CORRECTION_FIELDS = (
    "corrected_images",
    "corrected_pixels",
    "corrected_claimed",
    "corrected_rejected",
)


@dataclass
class FusedImage:
    """The result of fusing one image."""

    label: np.ndarray  # (H, W) uint8: precise ids, new ids, 255 = ignore
    source: np.ndarray  # (H, W) uint8: 0 precise, 1 pseudo, 2 ignored by fusion
    stats: dict[int, ClassStats] = field(default_factory=dict)  # per new class id
    # (H, W) bool: pixels a corrected mask gave to its class (source 0); None: no correction
    corrected: np.ndarray | None = None


def allowed_pixels(precise: np.ndarray, parents: Sequence[int], constrained: bool) -> np.ndarray:
    """``(H, W) bool``: pixels a new class may claim: its parents' pixels, or (unconstrained)
    every pixel that is not 255 in the precise label."""
    if not constrained:
        return precise != IGNORE
    return _allowed_lut(parents)[precise]


def _allowed_lut(parents: Sequence[int]) -> np.ndarray:
    """``(256,) bool``: the precise ids a new class may claim with the parent constraint on
    (:func:`allowed_pixels`): its parents'. The coverage drop measures on these, the
    constraint on or off (:func:`_drop_instances`)."""
    lut = np.zeros(256, bool)
    lut[list(parents)] = True
    lut[IGNORE] = False
    return lut


def instance_coverage(masks: np.ndarray, allowed: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Share of each instance's known pixels that lie on its class's parents.

    Args:
        masks: ``(N, H, W) bool`` instance masks.
        allowed: ``(H, W) bool`` its class's parents' pixels.
        known: ``(H, W) bool`` pixels whose precise label is not 255; the rest count neither way.

    Returns:
        ``(N,) float64`` in 0..1; 1.0 for an instance with no known pixel (nothing argues against it).

    Fusion computes the same shares window by window (:func:`window_coverage`).
    """
    cov = np.ones(masks.shape[0], np.float64)
    allowed_flat, known_flat = allowed.ravel(), known.ravel()
    for i, mask in enumerate(masks):
        # Gather through the mask's pixel indices: far cheaper than full-size ANDs at 4K.
        idx = np.flatnonzero(mask)
        total = np.count_nonzero(known_flat[idx])
        if total:
            cov[i] = np.count_nonzero(allowed_flat[idx]) / total
    return cov


def window_coverage(
    windows: Sequence[MaskWindow | RunWindow], precise: np.ndarray, lut: np.ndarray
) -> np.ndarray:
    """:func:`instance_coverage` of masks given inside their windows (``box``, ``crop()``:
    :class:`~annotations.instances.InstanceWindows`): ``lut`` ``(256,) bool`` says which
    precise ids are the class's parents (255 counts neither way). Reads only each window's precise
    pixels, and holds one window at a time."""
    cov = np.ones(len(windows), np.float64)
    for i, win in enumerate(windows):
        y0, x0, y1, x1 = win.box
        pre = precise[y0:y1, x0:x1][win.crop()]
        total = np.count_nonzero(pre != IGNORE)
        if total:
            cov[i] = np.count_nonzero(lut[pre]) / total
    return cov


def _check_pseudo(p: PseudoLabel, shape: tuple[int, int], num_precise: int) -> None:
    for name in ("label", "confidence"):
        arr = getattr(p, name)
        if arr.dtype != np.uint8 or arr.shape != shape:
            raise ValueError(
                f"class {p.class_id}: pseudo {name} must be {shape} uint8 like the precise "
                f"label, got {arr.shape} {arr.dtype}"
            )
    if p.class_id < num_precise:
        raise ValueError(f"class {p.class_id}: a new class id must be >= {num_precise}")
    if p.corrected is not None and (p.corrected.dtype != np.uint8 or p.corrected.shape != shape):
        raise ValueError(
            f"class {p.class_id}: corrected mask must be {shape} uint8 like the precise label, "
            f"got {p.corrected.shape} {p.corrected.dtype}"
        )
    if p.instances is not None and p.instances.image_size != shape:
        raise ValueError(
            f"class {p.class_id}: instance masks are {p.instances.image_size}, label is {shape}"
        )


def _drop_instances(
    precise: np.ndarray, p: PseudoLabel, rules: FusionRules, st: ClassStats
) -> np.ndarray:
    """``p.label`` without the pixels of instances below ``rules.min_coverage`` (those no kept
    instance covers), counting what was dropped into ``st``. Unchanged when coverage is off.

    Works window by window, each mask painted inside its window when needed (twice at most):
    memory is one window, a copy of the label and a map of the kept instances, where full-size
    masks took 12 MB an instance at 4032x3024 (about 2.3 GB for 100 of them)."""
    if rules.min_coverage is None or p.instances is None:
        return p.label
    inst = p.instances
    if isinstance(inst, Instances):
        inst = InstanceWindows.from_instances(inst)
    # the share on the parents' pixels, the constraint on or off: off, every known pixel may be
    # claimed, and a share of those would be 1 for every instance (nothing ever dropped)
    lut = _allowed_lut(rules.parents[p.class_id])
    cov = window_coverage(inst.windows, precise, lut)
    drop = cov < rules.min_coverage
    st.instances = len(inst)
    st.instances_dropped = int(drop.sum())
    if not drop.any():
        return p.label
    boxes = np.array([win.box for win in inst.windows], np.int64).reshape(-1, 4)
    # the kept instances whose windows meet a dropped one's cover some of its pixels
    meets = np.zeros(len(inst), bool)
    for y0, x0, y1, x1 in boxes[drop]:
        meets |= (boxes[:, 0] < y1) & (boxes[:, 2] > y0) & (boxes[:, 1] < x1) & (boxes[:, 3] > x0)
    kept = np.zeros(precise.shape, bool)
    for i in np.flatnonzero(meets & ~drop):
        y0, x0, y1, x1 = boxes[i]
        kept[y0:y1, x0:x1] |= inst.windows[i].crop()
    label = p.label.copy()
    for i in np.flatnonzero(drop):
        y0, x0, y1, x1 = boxes[i]
        removed = inst.windows[i].crop() & ~kept[y0:y1, x0:x1]
        # counted before it is cleared, so a pixel two dropped instances share counts once
        region = label[y0:y1, x0:x1]
        st.dropped_pixels += int(np.count_nonzero(removed & (region == 1)))
        region[removed] = 0
    return label


def fuse_image(
    precise: np.ndarray,
    pseudos: Sequence[PseudoLabel],
    rules: FusionRules,
    num_precise: int = 7,
) -> FusedImage:
    """Fuse one image's precise label with the pseudo labels of its new classes.

    Args:
        precise: ``(H, W) uint8`` precise label map (ids < ``num_precise``, 255 = ignore).
        pseudos: one :class:`PseudoLabel` per new class, each ``(H, W)``.
        rules: the fusion rules; ``rules.parents`` must name every class in ``pseudos``.
        num_precise: number of precise classes; new class ids are at least this.

    Returns:
        The fused label (``(H, W) uint8``), its source map (``(H, W) uint8`` in 0..2) and
        per-class counts.
    """
    if precise.ndim != 2 or precise.dtype != np.uint8:
        raise ValueError(f"precise label must be (H, W) uint8, got {precise.shape} {precise.dtype}")
    shape = precise.shape
    ids = [p.class_id for p in pseudos]
    if len(set(ids)) != len(ids):
        raise ValueError(f"two pseudo labels for the same class id: {ids}")
    missing = [c for c in ids if c not in rules.parents]
    if missing:
        raise ValueError(f"rules.parents has no entry for classes {missing}")
    label = precise.copy()
    source = np.zeros(shape, np.uint8)
    stats = {c: ClassStats(images=1) for c in ids}
    if not pseudos:
        return FusedImage(label, source, stats)

    for p in pseudos:
        _check_pseudo(p, shape, num_precise)
    labels = [_drop_instances(precise, p, rules, stats[p.class_id]) for p in pseudos]
    # a corrected mask's 1s and 0s replace the pseudo label (255: it stands); the raw one is
    # still counted (pseudo pixels, rejected share: the labeler's quality)
    claims = [
        lab if p.corrected is None else np.where(p.corrected != IGNORE, p.corrected, lab)
        for p, lab in zip(pseudos, labels, strict=True)
    ]

    # Work on the pixels some pseudo label touches (a few % of a photo), gathered into 1-D
    # arrays: every rule is per pixel, and precise pixels elsewhere stay as they are.
    touched = np.zeros(shape, bool)
    for lab in labels:
        touched |= lab != 0
    for p, claim in zip(pseudos, claims, strict=True):
        if p.corrected is not None:
            touched |= claim != 0
    idx = np.flatnonzero(touched)
    pre = precise.ravel()[idx]
    known = pre != IGNORE
    rank = {c: i for i, c in enumerate(rules.priority)}
    num_ranks = len(rules.priority)
    # Running maximum over classes of key = priority band * 257 + confidence (-1: no certain
    # claim; a corrected 1 counts as confidence 256, above every pseudo pixel of its band), the
    # index of the class holding it and how many classes hold it (> 1: a tie).
    best = np.full(idx.size, -1, np.int32)
    winner = np.zeros(idx.size, np.uint8)
    n_best = np.zeros(idx.size, np.uint8)
    n_uncertain = np.zeros(idx.size, np.uint8)
    certain, uncertain, human = [], [], []
    for k, (p, full, claim) in enumerate(zip(pseudos, labels, claims, strict=True)):
        st = stats[p.class_id]
        lab = full.ravel()[idx]
        values = np.bincount(lab, minlength=256)
        st.pseudo_pixels = int(values[1]) + st.dropped_pixels
        st.images_without_pseudo = int(st.pseudo_pixels == 0)
        values[[0, 1, IGNORE]] = 0
        if values.any():
            raise ValueError(
                f"class {p.class_id}: pseudo label values must be 0, 1 or 255, "
                f"found {np.flatnonzero(values)[:5].tolist()}"
            )
        allowed = allowed_pixels(pre, rules.parents[p.class_id], rules.parent_constraint)
        st.rejected_pixels = int(np.count_nonzero((lab == 1) & known & ~allowed))
        conf = p.confidence.ravel()[idx].astype(np.int32)
        if p.corrected is not None:
            corr = p.corrected.ravel()[idx]
            counts = byte_histogram(p.corrected)
            st.corrected_images = 1
            st.corrected_pixels = int(counts[0] + counts[1])
            counts[[0, 1, IGNORE]] = 0
            if counts.any():
                raise ValueError(
                    f"class {p.class_id}: corrected mask values must be 0, 1 or 255, "
                    f"found {np.flatnonzero(counts)[:5].tolist()}"
                )
            st.corrected_rejected = int(np.count_nonzero((corr == 1) & known & ~allowed))
            lab = claim.ravel()[idx]
            conf = np.where(corr == 1, 256, conf)
            human.append(corr == 1)
        else:
            human.append(None)
        is_one = lab == 1
        mine = is_one & allowed
        certain.append(mine)
        band = num_ranks - rank.get(p.class_id, num_ranks)
        key = np.where(mine, conf + band * 257, -1)
        better = key > best
        winner[better] = k
        n_best[better] = 1
        n_best[(key == best) & mine] += 1
        np.maximum(best, key, out=best)
        unc = (lab == IGNORE) & allowed
        uncertain.append(unc)
        n_uncertain += unc

    any_certain = best >= 0
    won = any_certain & (n_best == 1)
    tied = any_certain & (n_best > 1)
    # No certain claim: two or more uncertain classes always give 255; one gives 255 in "ignore".
    min_unc = 1 if rules.uncertain == "ignore" else 2
    unc_ignored = ~any_certain & (n_uncertain >= min_unc)

    flat_label, flat_source = label.reshape(-1), source.reshape(-1)
    flat_label[idx[won]] = np.array(ids, np.uint8)[winner[won]]
    flat_source[idx[won]] = SOURCE_PSEUDO
    to_ignore = idx[tied | unc_ignored]
    flat_label[to_ignore] = IGNORE
    flat_source[to_ignore] = SOURCE_IGNORED

    corrected = None
    for k, c in enumerate(ids):
        st = stats[c]
        mine = won & (winner == k)
        st.claimed_pixels = int(np.count_nonzero(mine))
        st.images_with_none = int(st.claimed_pixels == 0)
        st.overlap_lost = int(np.count_nonzero(certain[k] & ~mine))
        st.uncertain_ignored = int(np.count_nonzero(uncertain[k] & unc_ignored))
        if human[k] is not None:  # the human-checked pixels the class won: precise (source 0)
            checked = mine & human[k]
            st.corrected_claimed = int(np.count_nonzero(checked))
            flat_source[idx[checked]] = SOURCE_PRECISE
            if corrected is None:
                corrected = np.zeros(shape, bool)
            corrected.reshape(-1)[idx[checked]] = True
    return FusedImage(label, source, stats, corrected)
