"""``engine fuse``: new-class pseudo labels + precise labels -> joint-training labels."""

from __future__ import annotations

import shlex
from enum import Enum
from pathlib import Path

import typer

from engine.cli.common import EXIT_SOME_FAILED, split_names, stderr, stdout, workers_option
from engine.text import counted, first_lines

app = typer.Typer()


class UncertainMode(str, Enum):
    ignore = "ignore"
    keep_parent = "keep-parent"


@app.command("fuse")
def fuse_command(
    data: Path = typer.Option(
        ..., "--data", help="Dataset root (or spec file) with the precise labels."
    ),
    pseudo: list[Path] = typer.Option(
        ..., "--pseudo", help="Pseudo-label run directory of one new class (repeat for several)."
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        help="Output directory (default runs/fused/<class>[+<class>...], --data's new classes first).",
    ),
    split: list[str] | None = typer.Option(
        None,
        "--split",
        help="Splits to fuse, e.g. train,val (repeatable; default: every split all the runs "
        "labelled).",
    ),
    parent: list[str] | None = typer.Option(
        None,
        "--parent",
        help="Precise classes a new class may claim, e.g. Others,Ground (default: its own parent).",
    ),
    parent_constraint: bool = typer.Option(
        True,
        "--parent-constraint/--no-parent-constraint",
        help="Let new classes claim only their parents' pixels (off: any precise pixel but 255).",
    ),
    uncertain: UncertainMode = typer.Option(
        UncertainMode.ignore, "--uncertain", help="Uncertain pseudo pixels on parent pixels."
    ),
    min_coverage: float | None = typer.Option(
        None,
        "--min-coverage",
        min=0.0,
        max=1.0,
        help="Drop instances with a smaller share of their mask on parent pixels.",
    ),
    priority: list[str] | None = typer.Option(
        None, "--priority", help="New classes in priority order for overlaps, e.g. Car,Bicycle."
    ),
    corrections: list[Path] | None = typer.Option(
        None,
        "--corrections",
        help="Annotated subset (engine annotate import) of a new class whose masks replace its "
        "pseudo labels on their images, as precise labels (repeat for several).",
    ),
    workers: int = workers_option(),
    force: bool = typer.Option(
        False,
        "--force",
        help="Redo images already fused; replace a fused dataset of other classes in --out.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Fuse new-class pseudo labels with the precise labels into joint-training labels."""
    from engine.fusion import FuseConfig, default_out_dir, fuse, report_table

    config = FuseConfig(
        data=data,
        pseudo=tuple(pseudo),
        out=out_dir if out_dir is not None else default_out_dir(pseudo, data=data),
        splits=split_names(split),
        parents=split_names(parent),
        parent_constraint=parent_constraint,
        uncertain=uncertain.value,
        min_coverage=min_coverage,
        priority=split_names(priority) or (),
        workers=workers,
        force=force,
        progress=progress,
        corrections=tuple(corrections or ()),
    )
    result = fuse(config)
    stdout.print(report_table(result))
    stdout.print(
        f"fused {counted(result.fused, 'image')}, skipped {result.skipped} already done, "
        f"in {result.seconds:.1f} s -> {result.out} (open it as a dataset: engine info {shlex.quote(str(result.out))})"
    )
    if result.failed:  # errors: on stderr, as engine label's (not in `> out.txt` alone)
        stderr.print(
            f"{counted(len(result.failed), 'image')} failed (mend the files and run the same "
            "command again: it fuses only what is missing):",
            highlight=False,
        )
        problems = [problem for _, _, problem in result.failed]
        for line in first_lines(problems, result.out / "fuse.json"):
            stderr.print(f"  {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_SOME_FAILED)
