"""What ``engine info`` reads from every output's records and how it words them, shared by
the modules that describe each kind of output: a record's object (:func:`record_object`), the
warnings its calls printed (:func:`said_by`), the code and command that made it
(:func:`made_with`, :func:`ran_as`), and what kind of output a folder is (:func:`_kind`).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from annotations.fileio import output_kind
from engine.text import counted


def record_object(record: dict, key: str, path: str | os.PathLike, name: str = "") -> dict:
    """``record[key]`` where the engine writes an object (a run's ``config``): {} where it is
    absent or null; where a hand edit left another type (a list, a string), one line naming
    the file and the key (``name``: its dotted path, ``config.cls``). Before, an AttributeError
    traceback."""
    part = record.get(key)
    if part is None:
        return {}
    if not isinstance(part, dict):
        raise ValueError(f"{path}: {name or key!r} is not an object, got {part!r:.40}")
    return part


def add_made_with(table, env: object) -> None:
    """The ``code`` row of an output's table (:func:`made_with`) and, where the output was
    made by the ``engine`` command, a ``command`` row: the command line and the folder it ran
    in, what a user coming back to a run started under nohup or a scheduler has no console
    left to read (a library call's ``sys.argv`` is its script's: no row)."""
    table.add_row("code", made_with(env))
    if line := ran_as(env):
        table.add_row("command", line)


def ran_as(env: object) -> str | None:
    """``engine train --data d ... (in /work)``, from a recorded ``environment()``'s ``argv``
    and ``cwd``, when ``argv`` is the ``engine`` command's (``engine``, ``python -m cli``);
    None otherwise."""
    argv = env.get("argv") if isinstance(env, dict) else None
    if not isinstance(argv, list) or len(argv) < 2 or not all(isinstance(a, str) for a in argv):
        return None
    if Path(argv[0]).name not in ("engine", "engine.exe", "cli.py"):
        return None
    cwd = env.get("cwd")
    return f"engine {shlex.join(argv[1:])}" + (f" (in {cwd})" if isinstance(cwd, str) else "")


def made_with(env: object) -> str:
    """The code and machine an output was made with, from its recorded ``environment()``: what
    a rerun needs to give the same bytes (the git commit; the versions of Python, torch and
    numpy; on CPU torch's kernel set and thread count, which change a model's digits; a DDP
    run's ranks and machines)."""
    if not isinstance(env, dict) or not env:
        return "not recorded"
    packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
    parts = [f"commit {env['git_commit']}" if env.get("git_commit") else "commit not recorded"]
    if not env.get("git_commit") and packages.get("mass-engine"):  # an installed copy: no git
        parts = [f"mass-engine {packages['mass-engine']} (no git commit)"]
    versions = [f"Python {env['python']}"] if env.get("python") else []
    versions += [f"{name} {packages[name]}" for name in ("torch", "numpy") if packages.get(name)]
    if versions:
        parts.append(", ".join(versions))
    if env.get("cpu_capability"):
        threads = env.get("torch_threads")
        parts.append(
            f"{env['cpu_capability']} kernels"
            + (f", {counted(threads, 'torch thread')}" if isinstance(threads, int) else "")
        )
    ranks = env.get("distributed")  # a DDP run: each rank's share of a batch sums in its order
    if isinstance(ranks, dict) and isinstance(ranks.get("world_size"), int):
        launcher = {"processes": "--processes"}.get(ranks.get("launcher"), ranks.get("launcher"))
        nodes = ranks.get("nodes")
        machines = f" on {counted(nodes, 'machine')}" if isinstance(nodes, int) else ""
        parts.append(f"{counted(ranks['world_size'], 'rank')} ({launcher}){machines}")
    return "; ".join(parts)


def latest(record: Any) -> list[str]:
    """The warnings the latest call that wrote ``record`` printed (its ``warnings``)."""
    return (
        [str(w) for w in (record or {}).get("warnings") or []] if isinstance(record, dict) else []
    )


def said_by(
    record: Any, command: str, form: str = "warning ({command}{when}): {message}"
) -> list[str]:
    """The warnings a record keeps, one line each, as ``engine info`` shows them: those of the
    earlier calls (``earlier_warnings``, :func:`engine.runinfo.kept_calls`), oldest first,
    marked with their call's time (``warning (engine fuse, call of 2026-12-06T06:30:00+00:00):
    ...``), then the latest call's (``warning (engine fuse): ...``)."""
    from engine.runinfo import kept_calls

    if not isinstance(record, dict):
        return []
    lines = []
    for call in kept_calls(record):
        when = f"call of {call.get('time') or 'an unknown time'}"
        when = f", {when}" if command else f"({when}) "
        lines += [form.format(command=command, when=when, message=w) for w in call["warnings"]]
    return lines + [form.format(command=command, when="", message=w) for w in latest(record)]


def _kind(folder: str | os.PathLike) -> tuple[str, str] | None:
    """:func:`output_kind`, or a training run before its first logged step
    (:func:`_train_started`): what every place of engine info asks of a folder. Before, two of
    five asked for the second: a folder listing and an unfinished demo's table left such a run
    out, and an edited record of one named no file."""
    return output_kind(folder) or _train_started(folder)


def _train_started(folder: str | os.PathLike) -> tuple[str, str] | None:
    """A training run killed (or still starting) before its first logged step: engine train
    writes ``config.yaml`` and ``config.json`` (its config, hash and classes) first, and
    ``metrics.jsonl`` at the first step it logs. Before, "no image split folders found", as of
    a wrong folder. None for anything else (a model folder's config.json has no config.yaml)."""
    from annotations.fileio import read_json

    folder = Path(folder)
    if not (folder / "config.yaml").is_file() or not (folder / "config.json").is_file():
        return None
    try:
        record = read_json(folder / "config.json", "training config")
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        return None
    return "config.yaml", "a training run (engine train)"
