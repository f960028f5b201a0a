"""The demo's settings (:class:`DemoConfig`), what it returns (:class:`DemoResult`), and the names
its tables and summary share: the built-in start checkpoint (:data:`BUILTIN`), the rows' kinds
(:data:`MODEL`, :data:`REFINED`, :data:`START`) and the simulated labeler's notice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.text import SOURCES

# The demo's start checkpoint: a 7-class stand-in for the released model (engine/pretrain.py)
BUILTIN = Path(__file__).resolve().parent.parent / "assets" / "demo_tiny_mass7.pt"

SIMULATED_NOTE = (
    "SIMULATED labeler: pseudo labels are made from the synthetic ground truth with "
    "Grounded-SAM's failure modes; no detector or segmenter ran"
)


MODEL = SOURCES[-1]  # the report's kind of the model's row
REFINED = f"{MODEL} + guided filter"  # its row with --guided-filter (not the release's inference)
DEMO_CROP = 256  # the training crop side, where the scenes (resized up to 5/4) are that large
START = "start checkpoint"  # the model joint training started from, scored on the base classes
BASE_NOTE = (
    "mean IoU / BIoU / BF1 on the test images' precise labels, the new classes counted as their "
    "parent class, as those labels have them"
)


@dataclass(frozen=True)
class DemoConfig:
    """Settings of one demo run; the defaults finish in minutes on a 2-core CPU."""

    out: Path = Path("demo_out")  # everything is written under this folder
    classes: tuple[str, ...] = ("Bicycle", "Car")  # new classes (synthetic truth exists for these)
    size: tuple[int, int] = (512, 384)  # synthetic image size (W, H)
    train: int = 24  # synthetic training images
    val: int = 2  # synthetic validation images
    test: int = 8  # synthetic test images: the annotated subset
    seed: int = 0  # seeds the scenes, the simulated labeler and training
    iters: int = 1000  # training steps of the tiny model (about 11 min on 2 cores)
    batch_size: int = 4  # images per training step
    # training crop side in pixels; None: DEMO_CROP, or the training images' long side (the
    # scenes resized up to 5/4 of size) where smaller: set in __post_init__, so library and CLI
    # agree (before, DemoConfig(size=(128, 96)) kept 256 and was refused as larger than them)
    crop: int | None = None
    lr: float = (
        3e-3  # AdamW learning rate (the published 3e-4 / clip 0.01 suit batch 16, 80k steps)
    )
    grad_clip: float = 1.0  # gradient-norm clip for this short run
    num_points: int = 2048  # points sampled per mask (12,544 is for 1024 crops)
    pseudo_form: str = "origin"  # label decoupling: origin | reversed | flat | precise
    class_crop_prob: float = 0.5  # share of crops centred on a new-class pixel
    init: str = "builtin"  # start from: builtin (the 7-class stand-in release) | none | PATH
    processes: int = 0  # training processes splitting each batch (CPU); 0: one per CPU core
    threads: int = (
        0  # torch CPU threads per training process and for prediction; 0: sized to the cores
    )
    detector: str = ""  # Grounding DINO id or directory: real labeling instead of simulated
    segmenter: str = ""  # SAM / SAM-HQ id, directory or .pth: real labeling instead of simulated
    device: str = "auto"  # auto | cpu | cuda
    guided_filter: bool = False  # also predict with the guided filter: one more row per class
    progress: bool = True  # progress bars on stderr

    def __post_init__(self) -> None:
        if bool(self.detector) != bool(self.segmenter):
            raise ValueError("give both --detector and --segmenter for real labeling, or neither")
        if not self.classes:
            raise ValueError("the demo needs at least one new class")
        if min(self.train, self.test, self.iters, self.batch_size) < 1:
            raise ValueError("train, test, iters and batch size must be >= 1")
        if min(self.val, self.seed, self.processes, self.threads) < 0:
            # the CLI's own bounds: a library caller's processes=-1 ran one per core unsaid
            raise ValueError("val, seed, processes and threads must be >= 0")
        if not self.init:
            raise ValueError("--init is empty: give builtin, none or a checkpoint path")
        if len(self.size) != 2 or min(self.size) < 1:
            shown = "x".join(map(str, self.size))
            raise ValueError(f"--size {shown}: give a width and a height, both >= 1")
        if self.crop is None:
            object.__setattr__(self, "crop", min(DEMO_CROP, self.resized_to()[1]))

    def check_crop(self) -> None:
        """Refuse a crop larger than every training image: all padding past the image (a
        10000 crop of 128x96 scenes was killed for memory), and one smaller than the model's
        32 px a side (the CLI's ``--crop`` bound; a library caller's ``crop=16`` drew, labelled
        and fused the scenes before training refused it). In :func:`~engine.demo.run.run_demo`, not
        here: ``engine demo-pretrain`` keeps the demo's crop at any scene size."""
        from trainer.train import check_crop

        check_crop(self.crop)
        short, longest = self.resized_to()
        if self.crop > longest:
            size = "x".join(map(str, self.size))
            raise ValueError(
                f"--crop {self.crop} is larger than the demo's training images ({size}, resized "
                f"to a short side of at most {short} px, a long side of at most {longest} px): give "
                f"--crop {longest} or less, or a larger --size"
            )

    def resized_to(self) -> tuple[int, int]:
        """The largest short and long side training resizes the scenes to
        (``short_side_range`` of :func:`~engine.demo.training.demo_train_config`)."""
        short = min(self.size) * 5 // 4
        return short, max(self.size) * short // min(self.size)

    @property
    def simulated(self) -> bool:
        return not self.detector

    @property
    def init_checkpoint(self) -> Path | None:
        """The checkpoint training starts from (None: from scratch)."""
        if self.init == "none":
            return None
        if self.init == "builtin":
            return BUILTIN
        return Path(self.init)


@dataclass
class DemoResult:
    """Where the demo wrote its outputs, and the final numbers."""

    out: Path
    paths: dict[str, Path] = field(default_factory=dict)  # stage -> folder or file
    reports: dict[str, dict] = field(default_factory=dict)  # class -> report.json content
    refined: dict[str, dict] = field(default_factory=dict)  # class -> the guided filter's report
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time
    start: dict[str, Any] | None = None  # the checkpoint training started from (None: scratch)
    # model -> its scores of the base classes on the test split's precise labels (base_scores)
    base_classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_seconds: float = 0.0  # this call, first check to summary (resumed stages: this call's)
    effect: dict[str, Any] = field(default_factory=dict)  # summary.json's (effect), once written

    def rows(self, name: str) -> list[dict]:
        """``name``'s Table-4 rows: the report's, then the model with the guided filter (when
        the demo ran it) as ``REFINED``, its deltas against the pseudo labels as the others'."""
        rows = list(self.reports[name]["table4"])
        if name in self.refined:
            model = next(r for r in self.refined[name]["table4"] if r["kind"] == MODEL)
            rows.append({**model, "source": REFINED, "kind": REFINED})
        return rows
