"""The engine's own hints stay true to its command line: an error, a warning or a ``next:`` line
that tells the user a command to run or an option to give names a command and options that
exist (``engine fuse --data X --pseudo RUN``), and a value the option takes. A hint that names a
renamed option, or a value the option refuses, sends the user into a second error.

The static checks read every string of the source (f-strings with their values as ``{}``); the
others build the hint and parse the command it suggests with click, as the shell would."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import typer

from cli import app

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "cli.py"] + sorted(
    p
    for area in ("engine", "labeler", "trainer", "annotations")
    for p in (ROOT / area).rglob("*.py")
)
# options in the source that are no ``engine`` option: git's (engine.runinfo), a matplotlib
# line style (trainer.curves), the placeholder of "after --opt=", click's own --help
FOREIGN = {"--porcelain", "--untracked-files", "--s", "--opt", "--help"}
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _command(words: list[str]):
    """The click command of ``engine WORDS...`` and the words it took; None for no command."""
    command, taken = typer.main.get_command(app), 0
    while taken < len(words) and hasattr(command, "commands") and words[taken] in command.commands:
        command, taken = command.commands[words[taken]], taken + 1
    return (None, 0) if hasattr(command, "commands") else (command, taken)


def _options(command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *getattr(p, "secondary_opts", []))}


def _all_options() -> set[str]:
    found: set[str] = set()

    def walk(command) -> None:
        if hasattr(command, "commands"):
            for sub in command.commands.values():
                walk(sub)
        else:
            found.update(_options(command))

    walk(typer.main.get_command(app))
    return found


def _messages(path: Path) -> list[tuple[int, str, ast.AST]]:
    """``(line, text, node)`` of every string of the module but docstrings: an f-string's text
    with ``{}`` for each value."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))  # a docstring (or a bare string statement)
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            out.append((node.lineno, text, node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value, node))
    return out


MESSAGES = [(p.relative_to(ROOT), *m) for p in SOURCES for m in _messages(p)]


def _engine_phrases(text: str) -> list[tuple[list[str], list[str]]]:
    """``(command words, options)`` of each ``engine CMD ... --opt`` phrase of ``text``: the
    options up to the phrase's end (a bracket, ';', ': ', a line end or the next ``engine``)."""
    found = []
    for part in re.split(r"\bengine ", text)[1:]:
        phrase = re.split(r"[()\n;`]|: ", part)[0]
        words = re.findall(r"^[a-z][a-z-]*(?: [a-z][a-z-]*)?", phrase)
        found.append((words[0].split() if words else [], OPTION.findall(phrase)))
    return found


def test_every_option_a_message_names_exists():
    known = _all_options() | FOREIGN
    unknown = [
        f"{path}:{line}: {option} ({text[:80]!r})"
        for path, line, text, _ in MESSAGES
        for option in OPTION.findall(text)
        if option not in known and not option.endswith("-")  # "--gf-{}" spells --gf-radius ...
    ]
    assert unknown == [], "\n".join(unknown)


def test_the_options_of_an_engine_command_in_a_message_are_that_command_s():
    """``engine compare --gt X``: --gt is an option of compare, not of another command."""
    wrong = []
    for path, line, text, _ in MESSAGES:
        for words, options in _engine_phrases(text):
            command, taken = _command(words)
            if command is None or not options:
                continue
            bad = sorted(set(options) - _options(command) - {"--help"})
            if bad:
                wrong.append(f"{path}:{line}: engine {' '.join(words[:taken])}: no {bad}")
    assert wrong == [], "\n".join(wrong)


def test_the_phrase_reader_reads_commands_and_options():
    assert _engine_phrases("engine predict and engine train --init") == [
        (["predict", "and"], []),
        (["train"], ["--init"]),
    ]
    assert _engine_phrases("(score it with engine compare --gt {} or engine report --subset)") == [
        (["compare"], ["--gt"]),
        (["report"], ["--subset"]),
    ]
    assert _engine_phrases("run engine annotate import --format png --png-value ID)") == [
        (["annotate", "import"], ["--format", "--png-value"])
    ]


def _parses(args: list[str]) -> bool:
    """Whether ``engine ARGS`` parses: the command and options exist and the values are of
    the options' types and choices (what click checks before the command runs)."""
    command, taken = _command(args)
    assert command is not None, args
    try:
        command.make_context(f"engine {' '.join(args[:taken])}", args[taken:])
    except (typer.Exit, SystemExit):
        return False
    return True


def test_the_click_parse_refuses_what_the_shell_would():
    assert _parses(["train", "--iters", "80000", "--val-size", "39x32"])
    assert not _parses(["train", "--iters", "80,000"])
    assert not _parses(["evaluate", "--pred", "P", "--gt", "G", "--resize-pred", "bilinear"])


def _grouped_option_values(node: ast.AST) -> list[str]:
    """The options an f-string follows with a value formatted with thousands separators
    (``--iters {n:,}``): a number the option refuses as typed (``80,000``)."""
    if not isinstance(node, ast.JoinedStr):
        return []
    found, before = [], ""
    for value in node.values:
        if isinstance(value, ast.Constant):
            before = str(value.value)
            continue
        spec = value.format_spec
        text = "".join(v.value for v in getattr(spec, "values", []) if isinstance(v, ast.Constant))
        option = re.search(r"(--[a-z][a-z0-9-]*)[ =]$", before)
        if option and "," in text:
            found.append(option.group(1))
        before = ""
    return found


def test_no_message_gives_an_option_a_number_with_thousands_separators():
    """``give --iters 80,000 (its plan)``, pasted, is refused: ``Invalid value for '--iters'``
    (a resume whose --iters left nothing to train said so)."""
    wrong = [
        f"{path}:{line}: {option} ({text[:80]!r})"
        for path, line, text, node in MESSAGES
        for option in _grouped_option_values(node)
    ]
    assert wrong == [], "\n".join(wrong)


def test_a_resume_that_trains_nothing_suggests_iters_the_command_takes(tmp_path):
    """The refused resume of a run planned for 80,000 steps said ``give --iters 80,000``."""
    from trainer.config import TrainConfig
    from trainer.train import _check_resume_iters

    ckpt = {"step": 40000, "scheduler": {"iters": 80000}}
    for ckpt_step, iters in ((40000, 30000), (80000, 70000)):
        ckpt["step"] = ckpt_step
        with pytest.raises(ValueError) as e:
            _check_resume_iters(ckpt, TrainConfig(data="d", iters=iters), tmp_path / "last.pt")
        given = re.findall(r"give --iters (?:above )?(\S+)", str(e.value))
        assert given and _parses(["train", "--iters", given[0]]), str(e.value)
        assert f"--iters {iters} leaves" in str(e.value)


def test_engine_info_s_resume_hint_names_the_run(tmp_path, monkeypatch):
    """``engine info RUN`` of a stopped training run said ``engine train --resume continues
    it``: a bare --resume continues the default --out (runs/train/run), not RUN, and there
    answered "--data is required ... (no runs/train/run/config.json: is --out the run?)"."""
    import json

    from engine.info import render_train_run, train_run_stats

    run = tmp_path / "my run"
    run.mkdir()
    config = {"preset": "tiny", "data": "d", "iters": 100, "augment": {}}
    (run / "config.json").write_text(json.dumps({"config": config}))
    (run / "metrics.jsonl").write_text('{"step": 40, "loss": 1.5}\n')
    (run / "last.pt").write_bytes(b"")
    head = render_train_run(train_run_stats(run))[0]
    step = next(iter(head.columns[1].cells))
    hint = re.search(r"stopped: (engine .*) continues it", step).group(1)
    args = shlex.split(hint)[1:]
    assert _parses(args) and args[args.index("--out") + 1] == str(run), hint


def _engine(args: list[str], monkeypatch) -> str:
    """``engine ARGS`` in this process, with ``sys.argv`` as the shell gives it (run.json and
    the other records keep it); its output, asserting it succeeded."""
    from typer.testing import CliRunner

    monkeypatch.setattr("sys.argv", ["/bin/engine", *args])
    res = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    return res.output


def test_fuse_s_label_them_first_command_labels_the_images_missing(tmp_path, monkeypatch):
    """A run labelled as ``--shard 0/2`` lacks shard 1's images; fusing it said ``label them
    first: engine label ... --shard 0/2 --split train``, which labels shard 0's again (all done:
    skipped), and the fusion refused the same images again."""
    from engine.fusion import FuseConfig, fuse
    from engine.synth import SynthConfig, generate

    data = generate(
        SynthConfig(out=tmp_path / "data", train=2, val=0, test=0, size=(96, 64)), progress=False
    )
    run = tmp_path / "run"
    label = ["label", "--data", str(data), "--class", "Bicycle", "--backend", "simulated"]
    _engine([*label, "--out", str(run), "--split", "train", "--shard", "0/2"], monkeypatch)
    config = FuseConfig(data=data, pseudo=(run,), out=tmp_path / "fused", splits=("train",))
    with pytest.raises(ValueError, match="label them first: ") as e:
        fuse(config)
    hint = re.search(r"label them first: (engine .*)\)$", str(e.value)).group(1)
    args = shlex.split(hint)[1:]
    assert _parses(args), hint
    _engine(args, monkeypatch)
    assert fuse(config).fused == 2
