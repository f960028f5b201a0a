"""engine.parallel: process pools of every command that maps work over images."""

from __future__ import annotations

from engine.parallel import map_in_order
from engine.runinfo import kept_warnings


def test_a_workers_warnings_are_said_and_kept_by_the_caller(tmp_path, monkeypatch):
    """A warning logged in a worker process of evaluate, compare, info or annotate import is
    printed and kept in the command's record like the main process's (as fuse's workers'):
    before, a spawned worker printed it bare and the record left it out."""
    (tmp_path / "warning_job.py").write_text(
        "import logging\n"
        "def job(n):\n"
        "    logging.getLogger('engine.evaluate').warning('image %d: said in a worker', n)\n"
        "    return n * n\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers import it from there
    import warning_job

    with kept_warnings() as said:
        results = list(map_in_order(warning_job.job, [1, 2, 3], 2, "test", progress=False))
    assert results == [1, 4, 9]
    assert said == [f"image {n}: said in a worker" for n in (1, 2, 3)]
