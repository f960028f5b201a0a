"""``engine demo``: the whole loop on built-in synthetic data, on a CPU, in minutes.

synth -> label -> annotated subset -> fuse -> train -> predict -> report::

    OUT/data/                     synthetic MaSS-style dataset (engine synth)
    OUT/label/<class>/            pseudo-label runs (SIMULATED labeler unless models are given)
    OUT/review/<class>/           HTML review gallery of the pseudo labels
    OUT/annotated/<class>/        the annotated test subset (here: the synthetic truth, imported
                                  through `engine annotate import --format png`)
    OUT/fused/                    joint-training labels (engine fuse)
    OUT/train/                    MaSSFormer `tiny` trained jointly on the fused labels
    OUT/predict/test/             the model's predictions on the test split
    OUT/predict/test_start/       the start checkpoint's, to score what joint training kept of
                                  the base classes (summary: ``base_classes``)
    OUT/report/<class>/           Table-4 report per new class (report.md / .json / chart.png)
    OUT/report/summary.md|json    every class side by side
    OUT/predict/test_gf/, OUT/report_gf/<class>/
                                  with ``guided_filter``: the predictions refined by the guided
                                  filter (not the release's inference) and their reports; the
                                  summary adds their model row to each class

By default the labeler is the **simulated** backend: pseudo labels made from the synthetic truth
with Grounded-SAM's documented failure modes (missed small objects, filled wheels, shifted
boundaries, false positives), because no detector weights can be assumed on a fresh machine.
With ``detector`` and ``segmenter`` set, the real Grounded-SAM backend labels instead.
Each stage is resumable, so an interrupted demo continues where it stopped; a folder whose
scenes were made with other settings (size, counts, seed), fused for other classes, labelled
by the other labeler or trained with other options is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.runlock import earlier_name, holds_lock
from engine.text import METRICS, SOURCES, counted, joined, score_cells

# Nothing heavy at import time: the CLI reads DemoConfig's defaults when `engine` starts.
if TYPE_CHECKING:
    from engine.synth import SynthConfig

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
        and fused the scenes before training refused it). In :func:`run_demo`, not here:
        ``engine demo-pretrain`` keeps the demo's crop at any scene size."""
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
        (``short_side_range`` of :func:`demo_train_config`)."""
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


# What marks a demo's folder: annotations.fileio.DEMO_RECORDS (not imported here: that package
# loads OpenCV, and `engine --help` reads DemoConfig's defaults)
OWN_RECORDS = ("report/summary.json", "data/synth.json")


# the earlier summary set aside while a rerun rewrites the stages it sums up: one killed
# midway left it, and engine info read a finished demo (exit 0) beside a report not finished
@holds_lock("engine demo", lambda c: c.out, own=OWN_RECORDS, aside=OWN_RECORDS[0])
def run_demo(
    cfg: DemoConfig,
    log: Callable[[str], None] = lambda _: None,
    note: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    """Run every stage; ``log`` receives one line per stage and ``note`` the simulated
    labeler's notice once the input checks have passed (the CLI prints both)."""
    began = time.perf_counter()
    from annotations.taxonomy import MASS13K, Taxonomy
    from engine.annotate import ImportConfig, import_annotations
    from engine.fusion import FuseConfig, fuse
    from engine.outputs import matplotlib_for
    from engine.report import ReportConfig, build_report
    from engine.review import ReviewConfig, build_review
    from engine.synth import SynthConfig, generate
    from labeler.backends import NOT_USED
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import run_labeling
    from trainer.losses.targets import PSEUDO_FORMS
    from trainer.predict import PredictConfig, predict_dir
    from trainer.train import micro_batch, train

    give = "give --class Bicycle and/or --class Car"
    for name in cfg.classes:  # fail before any work on a class the synthetic data lacks
        if name in MASS13K:
            raise ValueError(f"--class {name!r}: already one of the MaSS13K classes; {give}")
        if name.lower() not in ("bicycle", "car"):
            raise ValueError(
                f"--class {name!r}: the demo's synthetic data has Bicycle and Car truth only; "
                f"{give}"
            )
    counts = Counter(c.lower() for c in cfg.classes)
    twice = sorted({n for n in cfg.classes if counts[n.lower()] > 1})
    if twice:  # else it labels both, then fusion finds two runs for one class
        raise ValueError(f"--class given twice for one class: {', '.join(twice)}; give it once")
    if cfg.pseudo_form not in PSEUDO_FORMS:  # else named by the trainer's key, pseudo_form
        raise ValueError(f"--pseudo-form {cfg.pseudo_form}: not one of {', '.join(PSEUDO_FORMS)}")

    out = Path(cfg.out)
    synth_cfg = SynthConfig(  # a size too small for the scenes, before the crop it sizes
        out=out / "data", train=cfg.train, val=cfg.val, test=cfg.test, size=cfg.size, seed=cfg.seed
    )
    cfg.check_crop()  # and a crop larger than the training images
    start = start_checkpoint(cfg)  # an unreadable start checkpoint fails before any work
    check_same_data(synth_cfg)  # and a folder holding another demo's scenes
    check_same_classes(out / "fused", cfg.classes)  # and one fused for other classes
    check_same_labeler(out / "label", cfg)  # and one labelled by the other labeler
    fused, train_out = out / "fused", out / "train"
    train_cfg = demo_train_config(cfg, fused, train_out)
    check_same_training(train_cfg)  # and one trained with other options
    check_batch(cfg, train_cfg, micro_batch)  # and a batch the processes cannot split
    # and an install without matplotlib (pip install mass-engine, no plot extra): it failed at
    # the last stage, the report's chart, after all the others, naming --no-chart, not the demo's
    matplotlib_for("engine demo (its reports' charts)")
    result = DemoResult(out=out, start=start)
    if cfg.simulated:
        note(SIMULATED_NOTE)

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        log(f"[{len(result.seconds) + 1}] {name}")
        start = time.perf_counter()
        try:
            return fn()
        finally:  # a stage cut short by Ctrl-C or a failure is timed too
            result.seconds[name] = round(time.perf_counter() - start, 2)

    try:
        data = stage(
            "synth: synthetic MaSS-style dataset",
            lambda: generate(synth_cfg, progress=cfg.progress),
        )
        result.paths["data"] = data

        backend = "simulated" if cfg.simulated else "grounded-sam"
        label_dirs: list[Path] = []
        for name in cfg.classes:
            label_cfg = LabelConfig(
                data=str(data),
                cls=ClassSpec(name=name),
                out=str(out / "label" / name.lower()),
                backend=backend,
                # as engine label records them: a simulated run names no detector (before,
                # the default ids, so `engine label` on the demo's folder relabelled it all)
                detector=cfg.detector or NOT_USED.get(backend) or LabelConfig.detector,
                segmenter=cfg.segmenter or NOT_USED.get(backend) or LabelConfig.segmenter,
                device=cfg.device,
                progress=cfg.progress,
                extra={"seed": cfg.seed} if cfg.simulated else {},
            )
            what = "SIMULATED labeler" if cfg.simulated else "Grounded-SAM"
            summary = stage(f"label {name} ({what})", lambda c=label_cfg: run_labeling(c))
            if summary.interrupted:  # the run kept what it finished and returned: stop here too
                raise KeyboardInterrupt
            if summary.failed:
                raise RuntimeError(
                    f"{label_cfg.out_dir}: {counted(summary.failed, 'image')} failed to label"
                )
            label_dirs.append(label_cfg.out_dir)
            result.paths[f"label/{name}"] = label_cfg.out_dir
            subset = stage(
                f"annotated {name} test subset (synthetic truth as the manual annotation)",
                lambda n=name: import_annotations(
                    ImportConfig(
                        format="png",
                        sources=[str(data / "new_classes" / n.lower() / "test")],
                        class_name=n,
                        data=str(data),
                        out=str(out / "annotated" / n.lower()),
                        split="test",
                        progress=cfg.progress,
                    )
                ),
            )
            result.paths[f"annotated/{name}"] = subset.root

        fusion = stage(
            "fuse pseudo labels with the precise labels",
            lambda: fuse(
                FuseConfig(data=data, pseudo=tuple(label_dirs), out=fused, progress=cfg.progress)
            ),
        )
        if fusion.failed:  # the rest is fused and kept; training needs every image
            raise RuntimeError(
                f"{fused}: {counted(len(fusion.failed), 'image')} failed to fuse "
                f"(first: {fusion.failed[0][2]})"
            )
        result.paths["fused"] = fused

        stage(
            f"train MaSSFormer tiny jointly on fused labels ({cfg.iters} steps, {_origin(start)})",
            lambda: train(train_cfg),
        )
        result.paths["train"] = train_out

        def predict(
            dest: Path, guided_filter: bool = False, checkpoint: Path | None = None
        ) -> None:
            predicted = _with_threads(demo_threads(cfg), predict_dir)(
                PredictConfig(
                    checkpoint=str(checkpoint or train_out / "last.pt"),
                    images=str(data / "images" / "test"),
                    out=str(dest),
                    size=None,
                    device=cfg.device,
                    guided_filter=guided_filter,
                    progress=cfg.progress,
                )
            )
            if predicted.failed:  # the report would score a partial test split
                raise RuntimeError(
                    f"{dest}: {counted(len(predicted.failed), 'image')} failed to predict "
                    f"({predicted.failed[0][1]})"
                )

        pred = out / "predict" / "test"
        stage("predict the test split", lambda: predict(pred))
        result.paths["predict"] = pred
        pred_gf = out / "predict" / "test_gf"
        if cfg.guided_filter:
            stage(
                "predict the test split with the guided filter (not the release's inference)",
                lambda: predict(pred_gf, guided_filter=True),
            )
            result.paths["predict (guided filter)"] = pred_gf
        base_models = {MODEL: pred}  # what joint training kept of the base classes
        if cfg.guided_filter:
            base_models[REFINED] = pred_gf
        if cfg.init_checkpoint is not None:
            pred_start = out / "predict" / "test_start"
            stage(
                "predict the test split with the start checkpoint (to score what joint training kept)",
                lambda: predict(pred_start, checkpoint=cfg.init_checkpoint),
            )
            result.paths["predict (start)"] = pred_start
            base_models = {START: pred_start, **base_models}
        result.base_classes = stage(
            f"score the base classes on the precise labels ({joined(cfg.classes)} as parent)",
            lambda: base_scores(base_models, data / "annotations" / "test"),
        )

        def report(name: str, label_dir: Path, predictions: Path, dest: Path) -> Any:
            return build_report(
                ReportConfig(
                    subset=str(out / "annotated" / name.lower()),
                    out=str(dest),
                    pseudo=str(label_dir),
                    fused=str(fused),
                    pred=str(predictions),
                    data=str(data),
                    taxonomy=str(fused / "taxonomy.json"),
                    class_name=name,
                    progress=cfg.progress,
                )
            )

        fused_taxonomy = Taxonomy.load(fused / "taxonomy.json")
        for name, label_dir in zip(cfg.classes, label_dirs, strict=True):
            review = stage(
                f"review gallery: {name} pseudo label / prediction / annotation",
                lambda n=name, d=label_dir: build_review(
                    ReviewConfig(
                        run=str(d),
                        out=str(out / "review" / n.lower()),
                        data=str(data),
                        pred=[str(pred), str(pred_gf)] if cfg.guided_filter else str(pred),
                        pred_class_id=fused_taxonomy.id_of(n),
                        gt=str(out / "annotated" / n.lower()),
                        progress=cfg.progress,
                    )
                ),
            )
            result.paths[f"review/{name}"] = review.index
            made = stage(
                f"report {name}",
                lambda n=name, d=label_dir: report(n, d, pred, out / "report" / n.lower()),
            )
            result.reports[name] = made.data
            result.paths[f"report/{name}"] = made.markdown
            if cfg.guided_filter:
                made = stage(
                    f"report {name} with the guided filter",
                    lambda n=name, d=label_dir: report(
                        n, d, pred_gf, out / "report_gf" / n.lower()
                    ),
                )
                result.refined[name] = made.data
                result.paths[f"report/{name} (guided filter)"] = made.markdown

        result.wall_seconds = round(time.perf_counter() - began, 2)
        summary = write_summary(cfg, result)
        result.paths["summary"] = summary
        return result
    except BaseException as e:  # Ctrl-C or a failure: this call's time is kept all the same
        result.wall_seconds = round(time.perf_counter() - began, 2)
        record_unfinished_call(out, result, e)
        raise


def base_scores(models: dict[str, Path], gt: Path) -> dict[str, dict[str, Any]]:
    """Each model's scores of the base classes on ``gt``, the precise labels, where a bicycle is
    Others: ``engine evaluate`` with the new classes scored as their parents (its fold). Means
    (``iou``, ``biou``, ``bf1``) and per-class ``classes`` rows."""
    from engine.evaluate import EvaluateConfig, evaluate

    scores = {}
    for name, pred in models.items():
        report = evaluate(EvaluateConfig(pred=pred, gt=gt, progress=False))
        r = report.result
        scores[name] = {
            "iou": r.miou,
            "biou": r.mbiou,
            "bf1": r.mbf1,
            "folded": report.folded,
            "classes": r.to_json(report.taxonomy.names)["classes"],
        }
    return scores


def scores_table(classes: dict[str, list[dict]], title: str, simulated: bool) -> Any:
    """The rich table of every new class's Table-4 rows (:meth:`DemoResult.rows`, or
    ``summary.json``'s ``classes``), as the demo prints it and ``engine info`` shows it again."""
    from rich.table import Table

    table = Table(title=title + (" (SIMULATED labeler)" if simulated else ""))
    for col in ("new class", "source", "IoU", "BIoU", "BF1"):
        table.add_column(col, justify="left" if col in ("new class", "source") else "right")
    for name, rows in classes.items():
        for row in rows:
            table.add_row(name, str(row.get("source")), *score_cells(row))
    return table


def base_line(base_classes: dict[str, dict[str, Any]]) -> str:
    """:func:`base_scores` in one line: ``base classes (mean IoU / BIoU / BF1 on the precise
    labels): start checkpoint 84.81 / 32.75 / 0.8177, joint-trained model ...``."""
    scored = [f"{n} {' / '.join(score_cells(s))}" for n, s in base_classes.items()]
    return "base classes (mean IoU / BIoU / BF1 on the precise labels): " + ", ".join(scored)


def check_same_data(synth: SynthConfig) -> None:
    """Refuse to resume a demo folder whose scenes were made with other settings
    (``synth.json``, or an interrupted run's ``synth.partial.json``): rendering new scenes over
    them would leave the old scenes' pseudo labels, fused labels and model beside the new
    images."""
    from engine.synth import differences, recorded

    found = recorded(synth.out)
    if found is None:
        return
    path, record = found
    differ = differences(record.get("config") or {}, synth)
    if differ:
        raise ValueError(
            f"{path}: this demo folder was made with other data settings ({'; '.join(differ)}); "
            "rerun with those or give a new --out"
        )


def check_same_classes(fused: Path, classes: Sequence[str]) -> None:
    """Refuse to resume a demo folder whose fused dataset holds other new classes (or the same
    in another order, which gives them other ids): its model and reports are of those classes,
    and fusion would refuse to replace them halfway through the demo."""
    from engine.fusion.run import fused_classes

    held = fused_classes(fused)
    if held is not None and [c.lower() for c in held] != [c.lower() for c in classes]:
        flags = " ".join(f"--class {c}" for c in held)
        raise ValueError(
            f"{fused / 'taxonomy.json'}: this demo folder was made for {' + '.join(held)}, not "
            f"{' + '.join(classes)}; rerun with {flags} or give a new --out"
        )


def check_same_labeler(label: Path, cfg: DemoConfig) -> None:
    """Refuse to resume a demo folder whose pseudo labels were made by the other labeler
    (SIMULATED, or Grounded-SAM with ``--detector``/``--segmenter``; each class's ``run.json``):
    the label stage would label every image again in place, after which the fused labels,
    model and reports made from the old ones no longer match them."""
    from annotations.labelrun import read_run_info

    want = "simulated" if cfg.simulated else "grounded-sam"
    for name in cfg.classes:
        path = label / name.lower() / "run.json"
        try:
            info = read_run_info(path) if path.is_file() else None
        except (OSError, ValueError):
            continue  # the labeler names what is wrong with its run
        if info is None or info.backend in (want, "unknown"):
            continue
        was, config = info.backend, info.record.get("config") or {}
        if was == "simulated":
            made, rerun = "the SIMULATED labeler", "without --detector and --segmenter"
        else:
            models = f"--detector {config.get('detector')} --segmenter {config.get('segmenter')}"
            made, rerun = f"{was} ({models})", f"with {models}"
        now = (
            "the SIMULATED labeler"
            if cfg.simulated
            else f"{want} (--detector {cfg.detector} --segmenter {cfg.segmenter})"
        )
        raise ValueError(
            f"{path}: this demo folder's pseudo labels were made by "
            f"{made}, not {now}; rerun {rerun} or give a new --out"
        )


# The demo's options that its training run records (train/config.json), by the trainer's key
TRAINING_OPTIONS = (
    ("--iters", "iters"),
    ("--batch-size", "batch_size"),
    ("--crop", "augment.crop"),
    ("--class-crop-prob", "augment.class_crop_prob"),
    ("--pseudo-form", "loss.decoupling.pseudo_form"),
    ("--init", "init"),
)


def check_same_training(train_cfg: Any) -> None:
    """Refuse to resume a demo folder whose model was trained with other options, before any
    stage runs, naming the demo's options: the trainer refused only after the stages before
    it, naming settings the demo derives (``warmup_iters`` for ``--iters``,
    ``freeze_bn_stats`` for ``--init``). Nothing is checked without a checkpoint to resume
    (``train_cfg.resume``); what this does not cover (two start checkpoints, which the trainer
    compares by their bytes where the built-in one moved with the install) is left to the
    trainer's own check."""
    out = Path(train_cfg.out)
    if not train_cfg.resume:
        return
    from annotations.fileio import read_json
    from trainer.config import plain

    try:
        recorded = read_json(out / "config.json", "config.json")["config"]
        now = plain(train_cfg.to_dict())
    except (OSError, ValueError, KeyError, TypeError):
        return  # the trainer names what is wrong with the run

    def at(config: Any, key: str) -> Any:
        for part in key.split("."):
            config = config.get(part) if isinstance(config, dict) else None
        return config

    def shown(option: str, value: Any) -> str:
        if option != "--init":
            return str(value)
        if value is None:
            return "none"
        return "builtin" if Path(value).resolve() == BUILTIN.resolve() else str(value)

    differ = []
    for option, key in TRAINING_OPTIONS:
        was, given = at(recorded, key), at(now, key)
        if option == "--init" and was is not None and given is not None:
            continue  # a start checkpoint both: the trainer knows one moved with its install
        if was != given:
            differ.append(f"{option} {shown(option, was)}, not {shown(option, given)}")
    if differ:
        raise ValueError(
            f"{out / 'config.json'}: this demo folder's model was trained with other options "
            f"({'; '.join(differ)}); rerun with those or give a new --out"
        )


def check_batch(cfg: DemoConfig, train_cfg: Any, micro_batch: Callable[..., int]) -> None:
    """Refuse a ``--batch-size`` the training processes cannot split into 2 images each at
    least (``trainer.train.micro_batch``), naming the demo's options: the trainer's own line
    named ``accum_steps`` and ranks, which the demo has no option for."""
    n = train_cfg.processes
    try:
        micro_batch(train_cfg, n)
    except ValueError:
        pass
    else:
        return
    over = f"--processes {n}" if cfg.processes else counted(n, "training process", "processes")
    if cfg.batch_size % n:
        raise ValueError(
            f"--batch-size {cfg.batch_size} cannot be split evenly over {over}: give a multiple "
            f"of {n} from {2 * n} up (--batch-size {2 * n}), or other --processes"
        ) from None
    raise ValueError(
        f"--batch-size {cfg.batch_size} over {over} is {cfg.batch_size // n} image per "
        "process; MaSSFormer needs 2 at least (its pixel decoder has BatchNorms on globally "
        f"pooled features): give --batch-size {2 * n} or more"
    ) from None


def call_seconds(call: dict[str, Any]) -> float:
    """A recorded call's ``wall_seconds``; 0 where it is not a finite number (a null, a string,
    true: an edited ``summary.json`` or ``unfinished_calls.jsonl``), whose time is lost, not
    the summary: ``format_duration(None)`` failed the demo at its very end. A negative time
    is 0 too (shown "-1 min 55 s" before), and so is an integer too large for a float (it
    failed the summary with an OverflowError)."""
    value = _finite(call.get("wall_seconds"))
    return 0.0 if value is None else max(value, 0.0)


def format_duration(seconds: float) -> str:
    """``"8 min 49 s"`` (``"42 s"`` under a minute), rounded to the second."""
    total = round(seconds)
    minutes, secs = divmod(total, 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def start_checkpoint(cfg: DemoConfig) -> dict[str, Any] | None:
    """What the demo's training starts from: None (from scratch) or ``{"name", "path",
    "classes", "provenance"}`` of the checkpoint, read now so that a missing or foreign file is
    one clear error before any stage runs."""
    path = cfg.init_checkpoint
    if path is None:
        return None
    from trainer.checkpoint import load_checkpoint

    if cfg.init == "builtin" and not path.is_file():
        raise FileNotFoundError(
            f"{path}: the built-in start checkpoint is missing from this install; reinstall, "
            "rebuild it with `engine demo-pretrain`, or pass --init none"
        )
    ckpt = load_checkpoint(path)
    _check_tiny(path, ckpt["model_config"])
    return {
        "name": "the built-in 7-class stand-in" if cfg.init == "builtin" else str(path),
        "path": str(path),
        "classes": [c["name"] for c in ckpt["taxonomy"]["classes"]],
        "provenance": ckpt.get("provenance"),
    }


def _origin(start: dict[str, Any] | None) -> str:
    """Where training starts, for the log and the summary."""
    return "from scratch" if start is None else f"from {start['name']}"


def _check_tiny(path: Path, model_config: dict[str, Any]) -> None:
    """The demo trains the ``tiny`` preset: a checkpoint of another architecture would load only
    in part, so it is refused, naming the first field that differs. The backbone's norm type is
    not compared: both kinds have the same tensors, and the fine-tune keeps the start's norms."""
    from trainer.models import ModelConfig, preset_config

    tiny = dataclasses.asdict(preset_config("tiny"))
    theirs = dataclasses.asdict(ModelConfig.from_dict(model_config))
    for key, want in tiny.items():
        if key not in ("num_classes", "backbone_norm") and theirs[key] != want:
            raise ValueError(
                f"{path}: not a tiny MaSSFormer ({key} {theirs[key]!r}, tiny has {want!r}); "
                "the demo trains the tiny preset"
            )


def demo_threads(cfg: DemoConfig) -> int:
    """Torch CPU threads of the demo's prediction: ``cfg.threads`` or cores - 1 (torch's OpenMP
    threads collapse when a core is taken by anything else: docs/trainer.md, CPU threads)."""
    from trainer.config import cpu_cores

    return cfg.threads if cfg.threads > 0 else max(1, cpu_cores() - 1)


def demo_processes(cfg: DemoConfig) -> int:
    """Training processes: ``cfg.processes``, or on a CPU one per core (each with one thread and
    its own share of the batch: 1.9x the steps per second of one process on 2 cores,
    docs/trainer.md), as many as the batch allows (2 images each at least)."""
    from trainer.spawn import resolve_processes
    from trainer.train import resolve_device

    if cfg.processes > 0:
        return cfg.processes
    n = resolve_processes(0, resolve_device(cfg.device).type)
    return max(1, min(n, cfg.batch_size // 2))


def demo_train_config(cfg: DemoConfig, fused: Path, train_out: Path) -> Any:
    """The demo's :class:`trainer.config.TrainConfig`: the ``tiny`` MaSSFormer on the fused
    labels, with the schedule, crop and sampling sized for a 2-core CPU."""
    from trainer.config import TrainConfig
    from trainer.data import AugmentConfig
    from trainer.losses import DecouplingConfig, LossConfig

    processes = demo_processes(cfg)
    return TrainConfig(
        data=str(fused),
        out=str(train_out),
        preset="tiny",
        backbone_weights="none",
        init=None if cfg.init_checkpoint is None else str(cfg.init_checkpoint),
        # from a trained start, keep its BatchNorm statistics rather than re-estimate them from
        # the 2 images each of the 2 processes sees (docs/rounds.md, fifth round)
        freeze_bn_stats=cfg.init_checkpoint is not None,
        iters=cfg.iters,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        grad_clip=cfg.grad_clip,
        loss=LossConfig(
            num_points=cfg.num_points, decoupling=DecouplingConfig(pseudo_form=cfg.pseudo_form)
        ),
        warmup_iters=min(50, cfg.iters - 1),
        val_split="val" if cfg.val else None,
        val_every=0,
        val_size=cfg.size,
        checkpoint_every=max(50, cfg.iters // 10),
        keep_every=0,
        device=cfg.device,
        seed=cfg.seed,
        # one process: a loader worker on the second core; several: each loads its own share
        # (about 10 ms a sample, against 0.3 s of compute)
        processes=processes,
        num_workers=1 if processes == 1 else 0,
        threads=cfg.threads if processes > 1 else demo_threads(cfg),
        augment=AugmentConfig(
            crop=cfg.crop,
            short_side_range=(min(cfg.size) * 3 // 4, cfg.resized_to()[0]),
            class_crop_prob=cfg.class_crop_prob,
        ),
        progress=cfg.progress,
        resume=(train_out / "last.pt").exists(),
    )


def demo_resolved(cfg: DemoConfig) -> dict[str, Any]:
    """What the demo's machine-sized settings came to (``--device auto``, ``--processes 0``,
    ``--threads 0``): another machine sizes them otherwise, and another count of processes or
    threads sums in another order (docs/trainer.md), so a rerun elsewhere needs them given."""
    from trainer.config import resolve_threads
    from trainer.spawn import rank_threads
    from trainer.train import resolve_device

    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    train = demo_train_config(cfg, out / "fused", out / "train")
    if train.processes > 1:
        threads = rank_threads(train.threads, train.num_workers, train.processes)
    else:
        threads = resolve_threads(train.threads, train.num_workers, device.type)
    return {
        "device": str(device),
        "processes": train.processes,
        "train_threads": threads,  # per training process; None: torch's own (a GPU)
        "predict_threads": demo_threads(cfg),
    }


def _with_threads(threads: int, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run with torch's CPU thread count set to ``threads`` (restored afterwards)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return run


UNFINISHED_CALLS = "unfinished_calls.jsonl"  # report/: calls that ended before the summary


def record_unfinished_call(out: Path, result: DemoResult, error: BaseException) -> None:
    """Keep the time of a call that ended before its summary (Ctrl-C, a failed stage) in
    ``report/unfinished_calls.jsonl``, for the call that finishes the folder to count it in
    ``summary.json``'s ``calls``: before, a resumed demo's calls left the interrupted ones out."""
    from annotations.fileio import append_line, first_line

    ended = (
        "interrupted" if isinstance(error, KeyboardInterrupt) else f"failed: {first_line(error)}"
    )
    record = {"wall_seconds": result.wall_seconds, "seconds": result.seconds, "ended": ended}
    with contextlib.suppress(OSError):  # a full disk: the error being raised is the one shown
        append_line(out / "report" / UNFINISHED_CALLS, json.dumps(record))


def _earlier_calls(path: Path) -> list[dict[str, Any]]:
    """The calls an earlier ``summary.json`` of the folder recorded (its ``calls``, or, written
    before they were kept, its own wall time), then those that ended before a summary since
    (:func:`record_unfinished_call`); none when there are none readable."""
    from annotations.fileio import read_json, read_jsonl

    calls: list[dict[str, Any]] = []
    try:
        data = read_json(path, "demo summary")  # UTF-8, not the locale's (Windows: cp1252)
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("calls"), list):
        calls = [c for c in data["calls"] if isinstance(c, dict)]
    elif isinstance(data, dict) and isinstance(data.get("wall_seconds"), int | float):
        calls = [{"wall_seconds": data["wall_seconds"], "seconds": data.get("seconds", {})}]
    with contextlib.suppress(ValueError):  # a damaged record costs its times, not the summary
        calls += [c for c in read_jsonl(path.parent / UNFINISHED_CALLS) if isinstance(c, dict)]
    return calls


# What the demo is built to show (its issue's test): the joint-trained model beats its pseudo
# labels and reaches this share of the fused labels' IoU, in this many seconds at most
FUSED_SHARE, WALL_LIMIT = 0.85, 15 * 60
EFFECT_TITLE = "What the demo is built to show"


def _finite(score: Any) -> float | None:
    """A row's score as a number, or None where it is undefined: None ("n/a"), or a NaN or
    infinity a hand-edited ``summary.json`` holds (``json`` reads ``NaN``), or an integer too
    large for a float (``math.isfinite`` raised OverflowError on it)."""
    if not isinstance(score, int | float) or isinstance(score, bool):
        return None
    try:
        return float(score) if math.isfinite(score) else None
    except OverflowError:
        return None


def fused_share(iou: float, whole: float) -> tuple[float, bool]:
    """The model's IoU as a share of the fused labels' ``whole``, cut (not rounded) to 4 digits,
    and whether it reaches ``FUSED_SHARE``, worked out on the two scores as decimals (exact):
    67.50 of 79.44 (0.849698) is 0.8496, a "no"; 8.61 of 10.13 (0.849951) is 0.8499, a "no"
    (rounded, it was recorded 0.85 and answered "yes": 85% asked, not reached); 68 of 80 is
    0.85, a "yes". Cut, a share shown "85.00%" has reached 85% and one under it has not."""
    exact = Fraction(str(iou)) / Fraction(str(whole))
    return math.floor(exact * 10_000) / 10_000, exact >= Fraction(str(FUSED_SHARE))


def effect(classes: dict[str, list[dict]], calls: list[dict]) -> dict[str, Any]:
    """``summary.json``'s ``effect``: per new class, whether the joint-trained model beats its
    pseudo labels on each score and reaches ``FUSED_SHARE`` of the fused labels' IoU, and
    whether the demo (``calls``: every call into its folder) took under ``WALL_LIMIT`` seconds.
    Read from the rows as printed (rounded), so a reader of the table finds the same answers;
    the share is compared exactly (:func:`fused_share`) and recorded cut, not rounded, to 4
    digits, so the share shown and the answer agree; a score that is undefined (None, shown
    "n/a") answers None. A class whose table lacks one of the three rows (fused labels of
    the training split only hold none of the annotated images: the report leaves their row out)
    is not compared: ``not_compared`` names the rows it lacks (before the fifty-first round it
    was left out unsaid)."""
    checks: dict[str, Any] = {}
    missing: dict[str, list[str]] = {}  # a class not compared: the rows its table lacks
    for name, rows in classes.items():
        kind = {row.get("kind"): row for row in rows}
        pseudo, fused, model = (kind.get(k) for k in SOURCES)
        if pseudo is None or fused is None or model is None:
            missing[name] = [k for k in SOURCES if k not in kind]
            continue
        beats = {
            k: None if model.get(k) is None or pseudo.get(k) is None else model[k] > pseudo[k]
            for k, _, _ in METRICS
        }
        iou, whole = _finite(model.get("iou")), _finite(fused.get("iou"))
        share, reaches = fused_share(iou, whole) if iou is not None and whole else (None, None)
        checks[name] = {
            "beats_pseudo": beats,
            "iou_of_fused": share,
            "reaches_fused_share": reaches,
        }
    wall = sum(call_seconds(c) for c in calls if isinstance(c, dict))
    # only where a class was not compared: a whole demo's summary.json is as it was
    compared = {"not_compared": missing} if missing else {}
    return {
        "fused_share": FUSED_SHARE,
        "classes": checks,
        **compared,
        "wall_limit_seconds": WALL_LIMIT,
        "under_wall_limit": wall < WALL_LIMIT,
    }


def effect_lines(found: dict[str, Any]) -> list[str]:
    """:func:`effect` for ``summary.md``: one line per class and one for the time."""
    yes = {True: "yes", False: "no", None: "n/a"}
    lines = []
    for name, c in found["classes"].items():
        beats = ", ".join(f"{title} {yes[c['beats_pseudo'][k]]}" for k, title, _ in METRICS)
        share = "-" if c["iou_of_fused"] is None else f"{100 * c['iou_of_fused']:.2f}%"
        lines.append(
            f"- {name}: the model beats the pseudo labels on {beats}; its IoU is {share} of the "
            f"fused labels' ({100 * found['fused_share']:.0f}% asked): "
            f"{yes[c['reaches_fused_share']]}"
        )
    for name, rows in (found.get("not_compared") or {}).items():
        lines.append(f"- {name}: not compared (its table has no {' and no '.join(rows)} row)")
    lines.append(
        f"- under {found['wall_limit_seconds'] // 60} minutes: {yes[found['under_wall_limit']]}"
    )
    return lines


def write_summary(cfg: DemoConfig, result: DemoResult) -> Path:
    """``report/summary.md`` and ``summary.json``: every class's Table-4 rows side by side."""
    from annotations.fileio import atomic_write_json, atomic_write_text
    from engine.report import interval_lines
    from engine.runinfo import environment

    out = result.out / "report"
    lines = ["# MaSS data engine demo: new classes on synthetic MaSS-style scenes", ""]
    if cfg.simulated:
        lines += [f"> {SIMULATED_NOTE}.", ""]
    lines += ["| new class | source | IoU | BIoU | BF1 |", "|---|---|---|---|---|"]
    for name in result.reports:
        for row in result.rows(name):
            lines.append(f"| {name} | {row['source']} | {' | '.join(score_cells(row))} |")
    lines.append("")
    # how sure each delta is, over the few annotated images: every row's, the guided filter's
    # too (before the fifty-first round summary.json held its interval and summary.md did not)
    for name in result.reports:
        lines += [f"{name}: {line}" for line in interval_lines(result.rows(name))]
    if result.base_classes:
        lead = "What joint training kept of" if START in result.base_classes else "The model on"
        lines += ["", f"{lead} the base classes: {BASE_NOTE}:", ""]
        lines += ["| model | mIoU | mBIoU | mBF1 |", "|---|---|---|---|"]
        for name, scores in result.base_classes.items():
            lines.append(f"| {name} | {' | '.join(score_cells(scores))} |")
    lines += [
        "",
        f"Model: MaSSFormer tiny, {cfg.iters} steps of joint training {_origin(result.start)}.",
        "",
    ]
    if result.refined:
        lines += [
            f"Rows '{REFINED}': the same model's predictions refined along the image's colour "
            "edges (`engine predict --guided-filter`), beyond the release's single-scale "
            f"inference; their reports are in {result.out / 'report_gf'}.",
            "",
        ]
    record = out / "summary.json"  # set aside while the demo runs (run_demo)
    calls = [
        *_earlier_calls(record if record.is_file() else out / earlier_name(record.name)),
        {"wall_seconds": result.wall_seconds, "seconds": result.seconds},
    ]
    earlier = ""
    if len(calls) > 1:  # a resumed demo: its first call's time is kept, not overwritten
        times = ", ".join(
            format_duration(call_seconds(c))
            + (
                f" ({c['ended'].split(':')[0]})"
                if c.get("ended") and isinstance(c["ended"], str)
                else ""
            )
            for c in calls
        )
        earlier = f" This folder's {len(calls)} calls took {times}."
    classes = {name: result.rows(name) for name in result.reports}
    shown = result.effect = effect(classes, calls)
    lines += [f"{EFFECT_TITLE} (`summary.json`'s `effect`):", ""]
    lines += [*effect_lines(shown), ""]
    lines += [
        f"Wall time: {format_duration(result.wall_seconds)} ({result.wall_seconds} s, this call)."
        f"{earlier} Stage times (s): " + ", ".join(f"{k}: {v}" for k, v in result.seconds.items()),
    ]
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    atomic_write_json(
        out / "summary.json",
        {
            "simulated_labeler": cfg.simulated,
            "note": SIMULATED_NOTE if cfg.simulated else "Grounded-SAM labeler",
            "config": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in dataclasses.asdict(cfg).items()
            },
            "resolved": demo_resolved(cfg),  # what auto and 0 came to on this machine
            "start_checkpoint": result.start,
            "classes": classes,
            "effect": shown,
            "base_classes": result.base_classes,
            "seconds": result.seconds,
            "wall_seconds": result.wall_seconds,
            "calls": calls,  # every call into this folder, first to last (resumes add one)
            "paths": {k: str(v) for k, v in result.paths.items()},
            "environment": environment(torch_used=True),  # it trains and predicts with torch
        },
    )
    (out / UNFINISHED_CALLS).unlink(missing_ok=True)  # counted in summary.json's calls now
    return out / "summary.md"
