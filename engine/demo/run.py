"""``engine demo``'s stages, in order (:func:`run_demo`): synth, label, annotated subset, fuse,
train, predict, review and report, under the demo folder's lock.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.demo.checks import (
    _origin,
    check_batch,
    check_same_classes,
    check_same_data,
    check_same_labeler,
    check_same_training,
    start_checkpoint,
)
from engine.demo.config import MODEL, REFINED, SIMULATED_NOTE, START, DemoConfig, DemoResult
from engine.demo.summary import base_scores, record_unfinished_call, write_summary
from engine.demo.training import _with_threads, demo_threads, demo_train_config
from engine.runlock import holds_lock
from engine.text import counted, joined

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
