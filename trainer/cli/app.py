"""The model's commands' typer app, which :mod:`trainer.cli.train`, :mod:`trainer.cli.predict`
and :mod:`trainer.cli.models` add their commands to."""

from __future__ import annotations

import typer

app = typer.Typer()
