"""``engine review``: a static HTML gallery of a label run."""

from __future__ import annotations

import typer

from engine.cli.common import EXIT_SOME_FAILED, stderr, stdout
from engine.text import counted, first_lines

app = typer.Typer()


@app.command("review")
def review(
    run: str = typer.Argument(..., help="Label run directory."),
    out: str | None = typer.Option(None, help="Gallery folder (default RUN/review)."),
    split: list[str] | None = typer.Option(
        None, help="Splits to show, e.g. val,test (repeatable; default: all of the run's)."
    ),
    data: str | None = typer.Option(None, help="Dataset root (default: the one run.json names)."),
    pred: list[str] | None = typer.Option(
        None,
        help="Model predictions: DIR/<stem>.png or DIR/<split>/<stem>.png (repeatable: a panel "
        "per folder, named "
        "from its predict.json, e.g. 'prediction + guided filter').",
    ),
    pred_class_id: int | None = typer.Option(
        None,
        min=0,  # -1, no class id of a label map, drew every prediction panel empty
        help="Class id of the new class in --pred (default: from the taxonomy beside it).",
    ),
    gt: str | None = typer.Option(
        None,
        help="Annotated subset dir or folder of 0/1/255 masks: annotated images show each "
        "panel's IoU / BIoU / BF1 against it.",
    ),
    thumb: int = typer.Option(512, min=64, help="Thumbnail long side in pixels."),
    limit: int = typer.Option(
        300, min=0, help="Most images shown, lowest confidence first; 0 = all."
    ),
    detail: bool = typer.Option(
        True,
        "--detail/--no-detail",
        help="A second row per image: the same panels of the window where the outlines are "
        "densest, at the image's own pixels on 4K photos.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Static HTML gallery of pseudo labels on images (no server; open index.html), beside
    model predictions and annotations; annotated images are scored."""
    from engine.review import ReviewConfig, build_review

    cfg = ReviewConfig(
        run,
        out,
        split,  # names parsed once, by ReviewConfig's reader (engine.review.split_list)
        data,
        pred or None,
        pred_class_id,
        gt,
        thumb,
        limit,
        progress=progress,
        detail=detail,
    )
    res = build_review(cfg)
    shown = counted(res.images, "image")
    if res.labelled > res.images:  # cut by --limit: said as the page says it
        shown = f"{res.images:,} of {counted(res.labelled, 'image')} (--limit {limit})"
    stdout.print(
        f"review of {shown} ({res.with_pred} with prediction, "
        f"{res.with_gt} with annotation): {res.index}"
    )
    if res.failed:  # on stderr, as every command lists what it could not do
        stderr.print(
            f"{counted(len(res.failed), 'image')} could not be shown (each card says why"
            + (f"; {res.past_limit:,} past --limit have no card" if res.past_limit else "")
            + "):",
            highlight=False,
        )
        for line in first_lines(res.failed, res.index.parent / "review.json"):
            stderr.print(f"  {line}", highlight=False, soft_wrap=True)
    for given, found, what in ((pred, res.with_pred, "--pred"), (gt, res.with_gt, "--gt")):
        if given and not found:  # most likely another split's or dataset's files
            shown = ", ".join(given) if isinstance(given, list) else given
            stderr.print(
                f"note: no reviewed image has a file in {what} {shown}; another split's?",
                soft_wrap=True,
            )
    if res.failed:
        raise typer.Exit(EXIT_SOME_FAILED)
