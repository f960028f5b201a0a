"""The small option parsers and checks the commands share: ``--size``, ``--scales``,
``--workers``, one ``--split``, and ``-`` for stdout (``--json -``, ``--plot -``); ``split_names``
(:mod:`engine.text`'s) is imported from here too.
"""

from __future__ import annotations

from typing import Any

from engine.text import MAX_TTA_SCALE, split_names


class SizeFormError(ValueError):
    """:func:`parse_size`'s text that is no ``WxH`` at all (a size out of range is a plain
    ValueError): ``engine predict --size`` takes words too and says so for this one only."""


# why a side is bounded, per option: --size writes images and label maps; the others write none
_SIZE_BOUND = {"--size": "the largest PNG written"}


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """``"WxH"`` -> ``(W, H)``, each 1..:data:`annotations.numbers.MAX_IMAGE_SIDE`; a clear error otherwise
    (:class:`SizeFormError` where the text is no ``WxH``)."""
    from annotations.numbers import MAX_IMAGE_SIDE  # here: annotations loads OpenCV, --help not

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SizeFormError(
            f"{option} must look like 512x384 (width x height), got {text!r}"
        ) from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{option} must be positive, got {text!r}")
    if max(w, h) > MAX_IMAGE_SIDE:
        why = _SIZE_BOUND.get(option, "the largest side of a PNG image")
        raise ValueError(
            f"{option} must be at most {MAX_IMAGE_SIDE} pixels a side ({why}), got {text!r}"
        )
    return w, h


def _in_process(workers: int) -> int:
    """``--workers``' callback: the library's reading of it (0 and 1: in this process),
    imported when a command runs, not for ``engine --help`` (engine.parallel imports cv2)."""
    from engine.parallel import in_process_workers

    return in_process_workers(workers)


def workers_option(what: str = "Worker processes") -> Any:
    """``--workers`` of a command that works in processes (fuse, evaluate, compare, info): 1,
    the default, runs in this process, and 0 means the same, as ``engine train --workers 0``
    loads in the training process."""
    import typer

    return typer.Option(
        1, "--workers", min=0, callback=_in_process, help=f"{what}; 0 or 1: in this process."
    )


def one_split(
    values: list[str] | None, default: str | None, command: str, todo: str, why: str = ""
) -> str | None:
    """The one split of a command that takes one: ``--split val``, as the commands taking
    several spell theirs (repeatable, comma-separated), but more than one name is refused:
    ``"--split val,test: COMMAND takes one split (WHY): TODO"`` (before, a second ``--split``
    silently replaced the first and ``val,test`` was looked for as a split of that name)."""
    names = tuple(dict.fromkeys(split_names(values) or (default,)))
    if len(names) > 1:
        held = f" ({why})" if why else ""
        raise ValueError(f"--split {','.join(names)}: {command} takes one split{held}: {todo}")
    return names[0]


MAX_SCALE = MAX_TTA_SCALE  # engine.text's, which trainer.inference checks too


def parse_scales(text: str, option: str = "--scales") -> tuple[float, ...]:
    """``"0.75,1,1.25"`` -> ``(0.75, 1.0, 1.25)``; a clear error otherwise, also for a scale
    above :data:`MAX_SCALE` (``1e3`` failed in OpenCV's allocator, ``1e308`` in ``int()``)."""
    try:
        scales = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"{option} must be comma-separated numbers like 0.75,1,1.25, got {text!r}"
        ) from None
    if not scales or any(not 0 < s < float("inf") for s in scales):
        raise ValueError(f"{option} must be positive numbers, got {text!r}")
    if max(scales) > MAX_SCALE:
        raise ValueError(
            f"{option} must be at most {MAX_SCALE:g} (the size times {MAX_SCALE:g} on each side), "
            f"got {text!r}"
        )
    return scales


def is_stdout(path: object) -> bool:
    """``--json -`` (or ``--markdown -``): the output goes to stdout alone (tables and notes to
    stderr), for a script to read; before, a file named ``-`` was written in the working
    directory."""
    return path is not None and str(path) == "-"


def refuse_plot_to_stdout(plot: object) -> None:
    """``--plot -``: a chart is a PNG, not for the terminal (it wrote a file named ``-``)."""
    if is_stdout(plot):
        raise ValueError("--plot -: the chart is a PNG image, not for the terminal; give its file")
