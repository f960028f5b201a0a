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

The package's modules, lowest first (each imports only those below it): :mod:`~engine.demo.config`
(:class:`DemoConfig`, :class:`DemoResult` and the names they share), :mod:`~engine.demo.training`
(training and prediction sized for the machine: :func:`demo_train_config`),
:mod:`~engine.demo.checks` (what is refused before any stage runs, the start checkpoint),
:mod:`~engine.demo.goals` (what the demo is built to show: :func:`effect`),
:mod:`~engine.demo.summary` (``report/summary.md`` and ``summary.json``: :func:`write_summary`)
and :mod:`~engine.demo.run` (the stages: :func:`run_demo`).
"""

from engine.demo.checks import (
    TRAINING_OPTIONS,
    check_batch,
    check_same_classes,
    check_same_data,
    check_same_labeler,
    check_same_training,
    start_checkpoint,
)
from engine.demo.config import (
    BASE_NOTE,
    BUILTIN,
    DEMO_CROP,
    MODEL,
    REFINED,
    SIMULATED_NOTE,
    START,
    DemoConfig,
    DemoResult,
)
from engine.demo.goals import (
    EFFECT_TITLE,
    FUSED_SHARE,
    WALL_LIMIT,
    call_seconds,
    effect,
    effect_lines,
    fused_share,
)
from engine.demo.run import (
    OWN_RECORDS,
    run_demo,
)
from engine.demo.summary import (
    UNFINISHED_CALLS,
    _earlier_calls,
    base_line,
    base_scores,
    format_duration,
    record_unfinished_call,
    scores_table,
    write_summary,
)
from engine.demo.training import (
    demo_processes,
    demo_resolved,
    demo_threads,
    demo_train_config,
)

__all__ = [
    "BASE_NOTE",
    "BUILTIN",
    "DEMO_CROP",
    "DemoConfig",
    "DemoResult",
    "EFFECT_TITLE",
    "FUSED_SHARE",
    "MODEL",
    "OWN_RECORDS",
    "REFINED",
    "SIMULATED_NOTE",
    "START",
    "TRAINING_OPTIONS",
    "UNFINISHED_CALLS",
    "WALL_LIMIT",
    "_earlier_calls",
    "base_line",
    "base_scores",
    "call_seconds",
    "check_batch",
    "check_same_classes",
    "check_same_data",
    "check_same_labeler",
    "check_same_training",
    "demo_processes",
    "demo_resolved",
    "demo_threads",
    "demo_train_config",
    "effect",
    "effect_lines",
    "format_duration",
    "fused_share",
    "record_unfinished_call",
    "run_demo",
    "scores_table",
    "start_checkpoint",
    "write_summary",
]
