"""``engine compare``'s configuration: :class:`CompareConfig` and the ``NAME=DIR`` sources it
takes, parsed and checked for repeated names."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.evaluate import RESIZE_MODES
from engine.metrics import BF1_MODES
from engine.parallel import in_process_workers
from engine.text import joined

INPUT_MODES = ("auto", "binary", "labels")


@dataclass(frozen=True)
class CompareConfig:
    """What ``engine compare`` scores and how."""

    class_name: str  # the class: a name in the taxonomy (case-insensitive) or an integer id
    gt: Path  # folder of annotated ground truth (binary masks or full label maps; 255 = ignore),
    # an annotated subset, or a dataset's root or spec (with ``split``)
    sources: tuple[tuple[str, Path], ...]  # (display name, folder) per prediction set, in order
    taxonomy: Path | None = None  # taxonomy JSON naming the class for every folder; None: each
    # folder's recorded one (predict.json, a fused dataset's taxonomy.json), else MaSS13K
    input: str = "auto"  # "binary", "labels", or "auto": a file holding only 0/1/255 is binary
    bf1_mode: str = "dataset"  # Boundary F1 aggregation: "dataset" or "image"
    resize_pred: str | None = None  # None: a size mismatch is an error; "nearest": resize preds
    workers: int = 1  # worker processes
    json_out: Path | None = None  # JSON report
    markdown_out: Path | None = None  # Markdown table
    plot_out: Path | None = None  # bar chart PNG (needs matplotlib)
    progress: bool = True  # progress bars on stderr
    # the split of the dataset given as ``gt`` (its root or spec) to score, as engine evaluate
    # --split; None: ``gt`` is a subset (which names its split) or a folder of label maps
    split: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "workers", in_process_workers(self.workers))  # 0: as 1
        if not self.sources:
            raise ValueError("give at least one --source NAME=DIR")
        repeated = _repeated_names(n for n, _ in self.sources)
        if repeated:  # the caller named each: parse_sources hints bare DIRs
            raise ValueError(f"--source names must be unique, got {repeated}; give each source "
                             "its own name")  # fmt: skip
        if self.input not in INPUT_MODES:
            raise ValueError(f"input must be one of {INPUT_MODES}, got {self.input!r}")
        if self.bf1_mode not in BF1_MODES:
            raise ValueError(f"bf1_mode must be one of {BF1_MODES}, got {self.bf1_mode!r}")
        if self.resize_pred is not None and self.resize_pred not in RESIZE_MODES:
            raise ValueError(f"resize_pred must be one of {RESIZE_MODES} or None")


def parse_source(text: str) -> tuple[str, Path]:
    """``"NAME=DIR"`` -> ``(NAME, Path(DIR))``; a bare ``DIR`` is named after the folder."""
    if "=" in text:
        name, _, folder = text.rpartition("=")
        name = name.strip()
        if not name or not folder:
            raise ValueError(f"--source must look like 'NAME=DIR', got {text!r}")
        return name, Path(folder)
    return Path(text).name, Path(text)


def parse_sources(texts: Sequence[str]) -> tuple[tuple[str, Path], ...]:
    """:func:`parse_source` of each text; a name given more than once is an error whose hint
    tells a bare ``DIR`` (named after its folder: ``run1/pred`` and ``run2/pred`` are both
    ``pred``) from a typed ``NAME=DIR`` (``pred=run1/pred`` twice names ``pred`` twice)."""
    sources = tuple(parse_source(t) for t in texts)
    repeated = _repeated_names(n for n, _ in sources)
    if repeated:
        names = [n for n, _ in sources]
        bare = any(
            "=" not in t and names.count(n) > 1 for t, (n, _) in zip(texts, sources, strict=True)
        )
        hint = (
            " (a bare DIR is named after its folder); name each with --source NAME=DIR"
            if bare
            else "; give each source its own name"
        )
        raise ValueError(f"--source names must be unique, got {repeated}{hint}")
    return sources


def _repeated_names(names: Iterable[str]) -> str:
    """``"A 3 times and B twice"`` for the names given more than once ('' for none)."""
    counts = Counter(names)
    said = [
        f"{n} {'twice' if k == 2 else f'{k} times'}" for n, k in sorted(counts.items()) if k > 1
    ]
    return joined(said) if said else ""
