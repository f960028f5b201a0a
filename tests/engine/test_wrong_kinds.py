"""Every reading command given the wrong kind of engine output (or a file in one) where it
wants another: one ``error:`` line naming the path, exit code 2, no traceback, nothing written.
Cheap: each output is its record and a file or two (the commands stop before reading more)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from annotations.labelmap import write_label

_OUTPUTS = {  # kind: its files (a .png a label map)
    "label run": ("run.json", "labels/test/a.png", "instances/test/a.json"),
    "fused dataset": ("fuse.json", "labels/test/a.png", "sources/test/a.png"),
    "training run": ("metrics.jsonl", "curves.png", "last.pt"),
    "predictions": ("predict.json", "a.png"),
    "report": ("report.json", "chart.png", "report.md"),
    "review gallery": ("review.json", "index.html"),
    "annotated subset": ("subset.json", "masks/a.png"),
    "dataset": ("images/test/a.jpg", "annotations/test/a.png"),
}
_INSIDE = {  # a file or folder inside one, given instead of it
    "run.json": "label run/run.json",
    "labels/": "label run/labels",
    "masks/": "annotated subset/masks",
    "last.pt": "training run/last.pt",
}
_SLOTS = {  # command line with X for the path, and the kinds it takes
    "review RUN": (["review", "X", "--out", "OUT"], {"label run"}),
    "annotate pick RUN": (["annotate", "pick", "X", "--out", "OUT.txt"], {"label run"}),
    "annotate export RUN": (
        ["annotate", "export", "X", "--out", "OUT"],
        {"label run", "annotated subset"},
    ),
    "report --subset": (["report", "--subset", "X", "--out", "OUT"], {"annotated subset"}),
    # a folder of label maps: predictions are that too (read as ground truth on purpose)
    "evaluate --gt": (["evaluate", "--pred", "P", "--gt", "X"], {"predictions"}),
    "compare --gt": (
        ["compare", "--class", "Bicycle", "--source", "m=P", "--gt", "X"],
        {"predictions", "annotated subset", "masks/"},
    ),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for kind, files in _OUTPUTS.items():
        for name in files:
            path = root / kind / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith(".png"):
                write_label(path, np.zeros((4, 4), np.uint8))
            else:
                path.write_text("{}")
    write_label(root / "P" / "a.png", np.zeros((4, 4), np.uint8))
    return root


def _tree(root: Path) -> dict:
    return {p: p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("kind", [*_OUTPUTS, *_INSIDE])
@pytest.mark.parametrize("slot", list(_SLOTS))
def test_the_wrong_kind_is_one_line_naming_it(project, tmp_path, slot, kind):
    from cli import app

    args, right = _SLOTS[slot]
    if kind in right:
        return
    given = project / _INSIDE.get(kind, kind)
    before = _tree(project)
    out = tmp_path / "out"
    line = [
        str(given) if a == "X" else str(project / "P") if a == "P" else a.replace("OUT", str(out))
        for a in args
    ]
    res = CliRunner().invoke(app, [*line, "--no-progress"])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    named = str(given.parent) if kind in _INSIDE else str(given)  # or the output it lies in
    assert text.startswith("error: ") and named in text, res.output
    assert "Traceback" not in res.output and text.count("error: ") == 1, res.output
    assert _tree(project) == before and not list(tmp_path.iterdir())
