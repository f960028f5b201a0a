"""``engine evaluate``, ``engine compare`` and ``engine report``: the scores."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from engine.cli.common import (
    is_stdout,
    one_split,
    refuse_plot_to_stdout,
    stderr,
    stdout,
    workers_option,
    write_stdout,
)
from engine.text import counted, joined

app = typer.Typer()


class _BF1Mode(str, Enum):
    dataset = "dataset"
    image = "image"


class _Resize(str, Enum):
    nearest = "nearest"


class _Input(str, Enum):
    auto = "auto"
    binary = "binary"
    labels = "labels"


def _print_json(data: dict) -> None:
    """``--json -``: the JSON that ``--json FILE`` writes (:func:`annotations.fileio.json_text`)."""
    from annotations.fileio import json_text

    write_stdout(json_text(data) + "\n")


@app.command("evaluate")
def evaluate_cmd(
    pred: Path = typer.Option(..., "--pred", help="Folder of predicted label PNGs (<stem>.png)."),
    gt: Path = typer.Option(
        ...,
        "--gt",
        help="Folder of ground-truth label PNGs (255 = ignore), or a dataset's root or spec "
        "(with --split: its own label maps and classes).",
    ),
    split: list[str] | None = typer.Option(
        None,
        "--split",
        help="The split of the dataset given as --gt to score (as engine predict --data --split).",
    ),
    num_classes: int | None = typer.Option(
        None, "--num-classes", min=1, max=255, help="Classes 0..N-1 (instead of a taxonomy)."
    ),
    taxonomy: Path | None = typer.Option(
        None,
        "--taxonomy",
        help="Taxonomy JSON (default: the one recorded beside --pred or --gt by engine predict "
        "or engine fuse, else MaSS13K's 7 classes).",
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write the report as JSON here ('-': to stdout, the table to stderr)."
    ),
    bf1_mode: _BF1Mode = typer.Option(
        _BF1Mode.dataset,
        "--bf1-mode",
        help="Boundary F1 aggregation: counts summed over the set, or mean of per-image scores.",
    ),
    workers: int = workers_option(),
    resize_pred: _Resize | None = typer.Option(
        None,
        "--resize-pred",
        help="Resize predictions of another size to the GT's (nearest neighbour); otherwise a size mismatch is an error.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
    device: str | None = typer.Option(
        None,
        "--device",
        help="auto | cpu | cuda | cuda:N: compute the counts with torch there (auto: CUDA when "
        "there is one, else numpy); identical counts. Default: numpy/OpenCV on the CPU.",
    ),
    fold_new_classes: bool | None = typer.Option(
        None,
        "--fold-new-classes/--no-fold-new-classes",
        help="Score new classes (Bicycle) as their parents (Others), in both maps. Default: "
        "when the ground truth marks none of them (precise labels of the base classes).",
        show_default=False,
    ),
) -> None:
    """Score predicted label maps against ground truth: per-class IoU, Boundary IoU, Boundary F1."""
    from engine.evaluate import EvaluateConfig, describe_fold, evaluate
    from engine.table4 import class_scores_table

    to_stdout = is_stdout(json_out)
    out = stderr if to_stdout else stdout
    why = "--pred holds one split's <stem>.png maps"
    cfg = EvaluateConfig(
        pred=pred,
        gt=gt,
        split=one_split(split, None, "engine evaluate", "run it once per split", why),
        num_classes=num_classes,
        taxonomy=taxonomy,
        bf1_mode=bf1_mode.value,
        workers=workers,
        resize_pred=resize_pred.value if resize_pred else None,
        json_out=None if to_stdout else json_out,
        progress=progress,
        device=device,
        fold_new_classes=fold_new_classes,
    )
    report = evaluate(cfg)
    r = report.result
    title = f"{counted(r.images, 'image')}, BF1 aggregated per "
    scores = report.to_json()
    out.print(class_scores_table(title + ("image" if r.bf1_mode == "image" else "dataset"), scores))
    if report.dataset is not None:
        d = report.dataset
        out.print(f"ground truth: {d['root']}, split {d['split']} ({d['labels']})", soft_wrap=True)
    out.print(f"classes: {report.taxonomy_source}", soft_wrap=True)
    if report.by_name is not None and report.by_name.moved:
        out.print(report.by_name.describe(), soft_wrap=True)
    if report.folded:
        off = "" if fold_new_classes else "; --no-fold-new-classes scores them apart"
        out.print(f"{describe_fold(report.folded)} ({report.fold_why}{off})", soft_wrap=True)
    if to_stdout:
        _print_json(report.to_json(cfg))
    elif json_out is not None:
        stderr.print(f"wrote {json_out}")


@app.command("compare")
def compare_cmd(
    class_name: str = typer.Option(
        ...,
        "--class",
        help="The class to score: a name, or an id in the ground truth's taxonomy, found by "
        "name in each folder's (binary masks need none).",
    ),
    gt: Path = typer.Option(
        ...,
        "--gt",
        help="Annotated subset (engine annotate import), or a folder of annotated ground truth "
        "(binary 0/1/255 masks or full label maps), or a dataset's root or spec (with --split).",
    ),
    split: list[str] | None = typer.Option(
        None,
        "--split",
        help="The split of the dataset given as --gt to score (as engine evaluate --split); a "
        "subset names its own.",
    ),
    source: list[str] = typer.Option(
        ...,
        "--source",
        help="'NAME=DIR' of a prediction set; repeat; deltas are against the first. With a "
        "subset as --gt, DIR may be a label run or hold the subset's split.",
    ),
    taxonomy: Path | None = typer.Option(
        None,
        "--taxonomy",
        help="Taxonomy JSON naming the class in every folder (default: each folder's own, "
        "recorded by engine predict or engine fuse, else MaSS13K).",
    ),
    input_mode: _Input = typer.Option(
        _Input.auto,
        "--input",
        help="How to read files: auto (a folder of predictions or fused labels: label maps; "
        "else a file holding only 0/1/255: a binary mask), binary, or labels.",
    ),
    json_out: Path | None = typer.Option(
        None,
        "--json",
        help="Write the comparison as JSON here ('-': to stdout, the table to stderr).",
    ),
    markdown_out: Path | None = typer.Option(
        None, "--markdown", help="Write a Markdown table here ('-': to stdout)."
    ),
    plot_out: Path | None = typer.Option(
        None, "--plot", help="Write a bar chart PNG here (needs matplotlib)."
    ),
    bf1_mode: _BF1Mode = typer.Option(
        _BF1Mode.dataset, "--bf1-mode", help="Boundary F1 aggregation."
    ),
    workers: int = workers_option(),
    resize_pred: _Resize | None = typer.Option(
        None, "--resize-pred", help="Resize predictions of another size (nearest neighbour)."
    ),
    progress: bool = typer.Option(
        True, "--progress/--no-progress", help="Progress bars on stderr."
    ),
) -> None:
    """Score one class (vs the rest) for several prediction sets side by side (paper Table 4)."""
    from engine.compare import CompareConfig, compare, parse_sources
    from engine.outputs import DEFAULT_TAXONOMY
    from engine.table4 import Table4

    refuse_plot_to_stdout(plot_out)
    json_to_stdout, markdown_to_stdout = is_stdout(json_out), is_stdout(markdown_out)
    if json_to_stdout and markdown_to_stdout:
        raise ValueError("--json - and --markdown -: one of them can go to stdout; give a file")
    to_stdout = json_to_stdout or markdown_to_stdout
    out = stderr if to_stdout else stdout
    cfg = CompareConfig(
        class_name=class_name,
        gt=gt,
        sources=parse_sources(source),
        taxonomy=taxonomy,
        input=input_mode.value,
        bf1_mode=bf1_mode.value,
        resize_pred=resize_pred.value if resize_pred else None,
        workers=workers,
        json_out=None if json_to_stdout else json_out,
        markdown_out=None if markdown_to_stdout else markdown_out,
        plot_out=plot_out,
        progress=progress,
        split=one_split(split, None, "engine compare", "run it once per split"),
    )
    report = compare(cfg)
    rows = [{"source": row.name, **row.scores.to_json(), "delta": row.delta} for row in report.rows]
    title = f"{report.class_name}: {counted(report.images, 'annotated image')}"
    out.print(Table4(title, rows))  # deltas against the first source
    for line in report.interval_lines():
        out.print(line, highlight=False, soft_wrap=True)
    for row in report.rows:  # ids read from what a folder records: say where
        if (
            taxonomy is None
            and row.class_id is not None
            and row.taxonomy_source != DEFAULT_TAXONOMY
        ):
            where = f"{report.class_name} = {row.class_id} from {row.taxonomy_source}"
            out.print(f"{row.name}: {where}", soft_wrap=True)
        if row.folded:  # a joint model's Bicycle is Others in precise labels of the base classes
            out.print(
                f"{row.name}: {joined(row.folded)} counted as {report.class_name} (the ground "
                "truth's classes do not have them)",
                soft_wrap=True,
            )
    if markdown_to_stdout:
        write_stdout(report.to_markdown())
    elif to_stdout:
        _print_json(report.to_json(cfg))
    for path in (cfg.json_out, cfg.markdown_out, plot_out):
        if path is not None:
            stderr.print(f"wrote {path}")


@app.command("report")
def report(
    subset: str = typer.Option(..., help="Annotated subset directory (the ground truth)."),
    out: str = typer.Option(..., help="Report folder (report.md, report.json, chart.png)."),
    pseudo: str | None = typer.Option(None, help="Label run directory (pseudo labels)."),
    fused: str | None = typer.Option(None, help="Fused labels directory."),
    pred: str | None = typer.Option(
        None, help="Model predictions: DIR/<stem>.png or DIR/<split>/<stem>.png."
    ),
    data: str | None = typer.Option(
        None,
        help="Dataset root: overlays and the per-class table (default: the one subset.json "
        "or --pseudo's run.json records).",
    ),
    taxonomy: str | None = typer.Option(None, help="taxonomy.json of the fused / predicted ids."),
    class_name: str | None = typer.Option(
        None,
        "--class",
        help="New class: a check that the subset annotates it (default: the subset's).",
    ),
    overlays: int = typer.Option(4, min=0, help="Overlay images to write."),
    chart: bool = typer.Option(True, help="Draw chart.png (needs matplotlib)."),
    progress: bool = typer.Option(
        True, "--progress/--no-progress", help="Progress bars on stderr."
    ),
) -> None:
    """Table-4 report: pseudo labels vs fused labels vs joint-trained model on the annotated subset."""
    from engine.report import ReportConfig, build_report
    from engine.table4 import Table4

    res = build_report(
        ReportConfig(
            subset,
            out,
            pseudo,
            fused,
            pred,
            data,
            taxonomy,
            class_name,
            overlays=overlays,
            chart=chart,
            progress=progress,
        )
    )
    stdout.print(Table4.of_report(res.data))
    from engine.report import interval_lines

    for line in interval_lines(res.data["table4"]):
        stdout.print(line, highlight=False, soft_wrap=True)
    stdout.print(f"report: {res.markdown} (+ report.json{', chart.png' if res.chart else ''})")
