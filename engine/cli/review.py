"""``engine review``: a static HTML gallery of a label run."""

from __future__ import annotations

import typer

from engine.cli.common import stdout
from engine.text import counted

app = typer.Typer()


@app.command("review")
def review(
    run: str = typer.Argument(..., help="Label run directory."),
    out: str | None = typer.Option(None, help="Gallery folder (default RUN/review)."),
    split: str | None = typer.Option(None, help="Split to show (default: all of the run's)."),
    data: str | None = typer.Option(None, help="Dataset root (default: the one run.json names)."),
    pred: str | None = typer.Option(None, help="Model predictions: DIR/[split/]<stem>.png."),
    pred_class_id: int | None = typer.Option(None, help="Class id of the new class in --pred."),
    gt: str | None = typer.Option(None, help="Annotated subset dir or folder of 0/1/255 masks."),
    thumb: int = typer.Option(512, min=64, help="Thumbnail long side in pixels."),
    limit: int = typer.Option(
        300, min=0, help="Most images shown, lowest confidence first; 0 = all."
    ),
) -> None:
    """Static HTML gallery of pseudo labels on images (no server; open index.html)."""
    from engine.review import ReviewConfig, build_review

    res = build_review(ReviewConfig(run, out, split, data, pred, pred_class_id, gt, thumb, limit))
    stdout.print(
        f"review of {counted(res.images, 'image')} ({res.with_pred} with prediction, "
        f"{res.with_gt} with annotation): {res.index}"
    )
