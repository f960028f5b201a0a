"""The comparison report in the shape of the paper's Table 4: Markdown + JSON + PNG.

For one new class, on its annotated test subset, the class's own IoU, Boundary IoU and
Boundary F1 (:class:`engine.metrics.ClassScorer`: the class vs everything else; subset pixels 255 are
unannotated) of:

* "pseudo labels": the label run's ``labels/<split>/<stem>.png`` (labeler output);
* "fused labels": the fusion output for the same images, where it has them;
* "joint-trained model": the model's predictions.

with deltas against the pseudo labels; then the model's per-class table on the test split
(MaSS13K classes plus the new class, like the paper's Tables 2-3), a bar chart and a few
overlay images. Every score comes from :mod:`engine.metrics`; ``report.json`` holds every
number printed in ``report.md`` (rounded the same way).

Files: ``OUT/report.md``, ``OUT/report.json``, ``OUT/chart.png``, ``OUT/overlays/<stem>.jpg``.

The package's modules, lowest first (each imports only those below it):
:mod:`~engine.report.config` (:class:`ReportConfig`, :class:`ReportResult`),
:mod:`~engine.report.scoring` (the sources read and scored: :func:`score_class`,
:func:`per_class_table`), :mod:`~engine.report.inputs` (the dataset read, the warnings and
checks of the inputs), :mod:`~engine.report.markdown` (``report.md``),
:mod:`~engine.report.figures` (``chart.png`` and the overlays) and
:mod:`~engine.report.build` (:func:`build_report`, which writes them all).
"""

from engine.report.build import (
    EARLIER,
    build_report,
)
from engine.report.config import (
    ReportConfig,
    ReportResult,
    round_score,
)
from engine.report.figures import (
    _caption_size,
    _grid,
    _tile,
    plot_chart,
)
from engine.report.inputs import (
    _data_root,
    _fused_source,
    _split_data,
    check_data_sizes,
    match_warnings,
    other_data_warnings,
    training_image_warnings,
)
from engine.report.markdown import (
    interval_lines,
    render_markdown,
)
from engine.report.scoring import (
    check_data_classes,
    delta_interval,
    held_elsewhere,
    per_class_table,
    score_class,
    scores_on,
    source_dirs,
    source_taxonomies,
    unscored_warnings,
)

__all__ = [
    "EARLIER",
    "ReportConfig",
    "ReportResult",
    "_caption_size",
    "_data_root",
    "_fused_source",
    "_grid",
    "_split_data",
    "_tile",
    "build_report",
    "check_data_classes",
    "check_data_sizes",
    "delta_interval",
    "held_elsewhere",
    "interval_lines",
    "match_warnings",
    "other_data_warnings",
    "per_class_table",
    "plot_chart",
    "render_markdown",
    "round_score",
    "score_class",
    "scores_on",
    "source_dirs",
    "source_taxonomies",
    "training_image_warnings",
    "unscored_warnings",
]
