"""Command definitions of the ``engine`` app that belong to the ``engine`` package's areas.

One module per area (data, review, annotate, fusion, scores, demo); the labeler's and the
trainer's commands live in ``labeler/cli.py`` and ``trainer/cli/``. Each module holds a plain
``typer.Typer`` named ``app``; the top-level ``cli.py`` assembles them in workflow order and adds
the shared error handling. Nothing here imports torch, transformers or OpenCV at import time.
"""
