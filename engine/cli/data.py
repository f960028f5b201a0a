"""``engine synth`` and ``engine info``: make a dataset, look at one."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli.common import (
    parse_size,
    refuse_plot_to_stdout,
    split_names,
    stderr,
    stdout,
    workers_option,
)
from engine.text import counted

app = typer.Typer()


@app.command("synth")
def synth_cmd(
    out: Path = typer.Option(..., "--out", help="Dataset root to write (MaSS13K layout)."),
    train: int = typer.Option(8, "--train", min=0, help="Training images."),
    val: int = typer.Option(2, "--val", min=0, help="Validation images."),
    test: int = typer.Option(4, "--test", min=0, help="Test images."),
    size: str = typer.Option("512x384", "--size", help="Image size WxH, e.g. 4032x3024."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed: same seed, same bytes."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Write a synthetic MaSS-style dataset with bicycle and car ground truth.

    Resumable: scenes already written with the same size and seed are kept, the rest drawn."""
    from engine.synth import SynthConfig, generate

    cfg = SynthConfig(out=out, train=train, val=val, test=test, size=parse_size(size), seed=seed)
    kept: list[str] = []
    replaced: list[str] = []
    root = generate(cfg, progress=progress, kept=kept, replaced=replaced)
    n = train + val + test
    earlier = f" ({len(kept)} kept from an earlier run)" if kept else ""
    stdout.print(
        f"wrote {counted(n, 'image')} ({train} train, {val} val, {test} test) "
        f"at {cfg.size[0]}x{cfg.size[1]} to {root}{earlier}",
        soft_wrap=True,
    )
    stdout.print(f"  new-class truth: {root / 'new_classes'} (bicycle, car)", soft_wrap=True)
    for line in replaced:  # label runs or fused datasets made from those scenes no longer match
        stderr.print(
            f"note: {line}: label runs or fused datasets made from {root} before may not match it",
            soft_wrap=True,
        )


@app.command("info")
def info_cmd(
    data: Path = typer.Argument(
        ...,
        help="Dataset root (MaSS13K layout) or spec file; or a label run, training run, "
        "annotated subset, prediction folder, review gallery, report, demo folder (or any file "
        "in one), an evaluate or compare --json record, or annotation files (COCO, LabelMe, "
        "Label Studio, CVAT, YOLO, a zip download).",
    ),
    split: list[str] = typer.Option(
        None, "--split", "-s", help="Splits to show, e.g. val,test (repeatable; default: all)."
    ),
    decode: bool = typer.Option(
        True,
        "--decode/--headers-only",
        " /--no-decode",
        help="Decode every image (finds truncated files); --headers-only (or --no-decode): read "
        "image headers only.",
    ),
    workers: int = workers_option("Worker processes (decoding 4K photos: one per core)"),
    plot: Path | None = typer.Option(
        None, "--plot", help="Also draw the class shares per split as a bar chart PNG (log scale)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Image counts, sizes and class pixel shares per split; every problem found. Given a label
    or training run, where it stands; given an annotated subset, predictions, a review gallery, a
    report or annotation files, what they hold; given an evaluate or compare --json record, its
    scores and whether the maps it scored changed since.

    Exit code 0 when the dataset is clean, 1 when problems (or failed images) were found or an
    output stopped half way (resumable), 2 on bad input.
    """
    from annotations.fileio import check_expanded
    from engine.info import (
        dataset_stats,
        describe_output,
        leftover_note,
        output_folder,
        plot_shares,
        render_stats,
    )

    refuse_plot_to_stdout(plot)
    check_expanded(plot, "engine info --plot")
    if not data.exists():  # any kind it takes, named as given: "dataset root" misled for a run
        from engine.datasets import not_found
        from engine.info import stopped_compare

        if (stopped := stopped_compare(data)) is not None:  # set aside by a rerun killed
            stdout.print(stopped, soft_wrap=True, highlight=False)
            raise typer.Exit(1)
        raise FileNotFoundError(not_found(data))
    data = output_folder(data)  # run.json, last.pt: the folder they belong to
    splits = list(split_names(split) or []) or None  # --split val,test, as label, fuse take it
    described = describe_output(data, splits)
    if described is not None:  # a label or training run, a subset, predictions: not a dataset
        what, renderables, problems = described
        if plot is not None:
            raise ValueError(f"--plot draws a dataset's class shares; {data} is {what}")
        for renderable in [*renderables, *filter(None, [leftover_note(data)])]:
            stdout.print(renderable, soft_wrap=True)
        if problems:
            raise typer.Exit(1)
        return
    if plot is not None:
        from engine.outputs import matplotlib_for

        matplotlib_for("engine info --plot")  # before the pass over the images: matplotlib is there
    stats = dataset_stats(data, splits=splits, decode=decode, progress=progress, workers=workers)
    for renderable in [*render_stats(stats), *filter(None, [leftover_note(stats.root)])]:
        stdout.print(renderable, soft_wrap=True)
    if plot is not None:
        stdout.print(f"class shares: {plot_shares(stats, plot)}", highlight=False, soft_wrap=True)
    if stats.problems or (stats.unfinished and stats.unfinished[2]):  # stopped: resumable
        raise typer.Exit(1)
