"""``engine demo-pretrain``: the demo's stand-in for the released 7-class MaSSFormer.

The paper's joint training starts from the authors' MaSSFormer trained on MaSS13K's 7 classes,
and so does this engine's recipe (docs/trainer.md, ``--init``). The demo cannot download that
checkpoint, and a Swin/ResNet model of that size would not train on a CPU in minutes anyway.
So ``engine demo`` starts, by default, from a checkpoint made the same way at the demo's
scale: the ``tiny`` MaSSFormer trained on synthetic scenes with **the 7 MaSS13K classes only**
(bicycles and cars are Others there, as in MaSS13K's own labels). Its scenes are rendered with
a seed of their own (:data:`PRETRAIN_SEED`), training split only, so the demo's annotated test
images are never among them, and no new-class label is ever read.

The checkpoint ships with the package (:data:`BUILTIN`); :func:`pretrain` rebuilds it from
scratch with the same recipe (``engine demo-pretrain``, about 90 minutes on 2 CPU cores; equal
in its last bits only on the CPU and code it was built with: the twenty-first round's
deformable conv sums in another order) and records how it was made in the checkpoint itself
(``provenance``) and in its run folder.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.demo import BUILTIN, DEMO_CROP, DemoConfig, demo_train_config

__all__ = ["BUILTIN", "PRETRAIN_SEED", "PretrainConfig", "pretrain", "pretrain_train_config"]

PRETRAIN_SEED = 1000  # scenes of the stand-in's training set (the demo's default seeds are 0, 1)
KEEP = ("format", "step", "model", "model_config", "taxonomy", "config")
# in --out, exported last: engine info tells a run stopped before it by its absence
CHECKPOINT_NAME = "demo_tiny_mass7.pt"


@dataclass(frozen=True)
class PretrainConfig:
    """How the demo's 7-class stand-in is trained; the defaults made :data:`BUILTIN`."""

    out: Path = Path("demo_pretrain")  # data/, train/ and the exported checkpoint
    images: int = 1000  # synthetic training scenes (7-class labels)
    size: tuple[int, int] = (512, 384)  # scene size (W, H), the demo's
    seed: int = PRETRAIN_SEED  # seeds the scenes and the training
    iters: int = 8000  # training steps (the demo's recipe otherwise: batch 4, crop 256)
    batch_size: int = 4
    lr: float = 3e-3  # AdamW base learning rate (the demo's)
    backbone_norm: str = "frozen"  # backbone BatchNorms: frozen (identities from scratch) | batch
    processes: int = 0  # training processes on a CPU; 0: one per core
    threads: int = 0  # torch threads per process; 0: sized to the cores
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if min(self.images, self.iters, self.batch_size) < 1:
            raise ValueError("images, iters and batch size must be >= 1")
        if min(self.seed, self.processes, self.threads) < 0:  # the CLI's bounds (min=0)
            raise ValueError("seed, processes and threads must be >= 0")

    @property
    def checkpoint(self) -> Path:
        """The exported checkpoint: what ``engine demo --init`` takes."""
        return self.out / CHECKPOINT_NAME


def pretrain_train_config(cfg: PretrainConfig) -> Any:
    """The demo's training recipe (:func:`engine.demo.demo_train_config`) on the 7-class
    scenes: no new class, so no class-aware crops and no pseudo pixels."""
    demo = DemoConfig(
        size=cfg.size,
        crop=DEMO_CROP,  # at any scene size (DemoConfig's default fits the crop to small ones)
        iters=cfg.iters,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        class_crop_prob=0.0,
        processes=cfg.processes,
        threads=cfg.threads,
        seed=cfg.seed,
        device=cfg.device,
        progress=cfg.progress,
        init="none",
    )
    train_cfg = demo_train_config(demo, cfg.out / "data", cfg.out / "train")
    return dataclasses.replace(
        train_cfg,
        val_split=None,
        checkpoint_every=max(50, cfg.iters // 20),
        backbone_norm=cfg.backbone_norm,
    )


def pretrain(cfg: PretrainConfig) -> Path:
    """Render the scenes, train, export; returns :attr:`PretrainConfig.checkpoint`.

    Resumable: the scenes are rendered once, and an interrupted training continues from its
    last checkpoint when the same command runs again."""
    # here, not at the top: annotations loads OpenCV, and `engine --help` imports this module
    # (before, the fifty-seventh round's import at the top loaded cv2 for every command's help)
    from annotations.fileio import check_not_a_file
    from engine.synth import SynthConfig, generate
    from trainer.train import train

    train_cfg = pretrain_train_config(cfg)  # checks the recipe (lr, backbone norm) first
    check_not_a_file(cfg.out)  # before, "OUT/data: Not a directory"
    data, last = cfg.out / "data", cfg.out / "train" / "last.pt"
    synth = SynthConfig(out=data, train=cfg.images, val=0, test=0, size=cfg.size, seed=cfg.seed)
    if not _rendered(data, synth):
        if last.exists():  # resuming on other scenes would mix two datasets in one run
            raise FileExistsError(
                f"{last}: a run on other scenes (images, size or seed differ) is here; "
                "use another --out"
            )
        generate(synth, progress=cfg.progress)
    train_cfg = dataclasses.replace(train_cfg, resume=last.exists())
    train(train_cfg)
    return export_checkpoint(last, cfg.checkpoint, cfg)


def _rendered(data: Path, synth: Any) -> bool:
    """Whether ``data`` already holds exactly these scenes (a finished ``synth.json`` matches)."""
    from engine.synth import differences, recorded
    from engine.synth.writer import RECORD

    try:
        found = recorded(data)
    except ValueError:
        return False
    return (
        found is not None
        and found[0].name == RECORD  # not an unfinished run's record
        and not differences(found[1].get("config") or {}, synth)
    )


def export_checkpoint(last: Path, dst: Path, cfg: PretrainConfig) -> Path:
    """The weights a fine-tuning run needs, without optimizer and RNG state (a third of the
    size), plus ``provenance``: what made them (scenes, steps, and the versions and commit the
    training started with, those of every resume, and those of the export)."""
    from annotations.fileio import read_jsonl
    from engine.runinfo import environment
    from trainer.checkpoint import load_checkpoint, save_checkpoint

    run = last.parent
    now = environment()
    try:  # what the training ran with, written when it started (trainer.train)
        started = json.loads((run / "environment.json").read_text())
    except (OSError, ValueError):
        started = now
    resumes = read_jsonl(run / "resumes.jsonl")
    ckpt = load_checkpoint(last)
    names = [c["name"] for c in ckpt["taxonomy"]["classes"]]
    out = {k: ckpt[k] for k in KEEP if k in ckpt}
    out["provenance"] = {
        "what": "demo stand-in for the released 7-class MaSSFormer (engine demo-pretrain)",
        "scenes": {
            "seed": cfg.seed,
            "split": "train",
            "images": cfg.images,
            "size": list(cfg.size),
        },
        "classes": names,
        "steps": int(ckpt["step"]),
        "environment": started,
        "resumes": resumes,
        "exported": {k: now.get(k) for k in ("time", "git_commit", "argv")},
    }
    return save_checkpoint(dst, out)
