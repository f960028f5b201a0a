"""``engine --help`` as a user reads it: commands grouped in workflow order, no ``<bool>`` noise,
and every command module beside the package that owns its work."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

import cli

runner = CliRunner()


def _help(*args: str) -> str:
    res = runner.invoke(cli.app, [*args, "--help"], env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    return res.output


def test_help_lists_commands_in_workflow_order_under_their_stage():
    text = _help()
    panels = re.findall(r"╭─ ([A-Za-z ]+?) ─", text)
    assert panels == ["Options", "Data", "Pseudo labels", "Annotated subsets", "Fusion", "Model",
                      "Scores", "Demo"]  # fmt: skip
    listed = re.findall(r"^│ ([a-z][a-z-]+) ", text, flags=re.MULTILINE)
    expected = [n for _, names in cli.WORKFLOW for n in names]
    assert listed == [n for n in expected if n in listed]  # workflow order
    for name in ("synth", "info", "label", "convert-sam", "review", "annotate", "fuse", "models",
                 "train", "predict", "evaluate", "compare", "report", "demo"):  # fmt: skip
        assert name in listed


def test_annotate_lists_its_commands_in_the_order_a_user_runs_them():
    """engine annotate --help listed export, import, pick; a subset starts with pick."""
    listed = re.findall(r"^│ ([a-z]+) ", _help("annotate"), flags=re.MULTILINE)
    assert listed == ["pick", "export", "import"]


@pytest.mark.parametrize(
    "args", [(), ("fuse",), ("label",), ("train",), ("demo",), ("annotate",), ("annotate", "pick")]
)
def test_no_bool_metavar_beside_flags(args: tuple[str, ...]):
    text = _help(*args)
    assert "<bool>" not in text
    assert "--help" in text


def test_a_repeatable_option_shows_the_type_of_one_value():
    """``--pseudo <list[Path]>`` read as a list given at once; it is repeated, one run each
    time (``--pseudo A --pseudo B``, as docs/fusion.md says)."""
    for path in _commands():
        assert not re.search(r"--[\w-]+ +<list\[", _help(*path)), path
    assert re.search(r"--pseudo +<Path>", _help("fuse"))


def _commands() -> list[tuple[str, ...]]:
    import typer

    root = typer.main.get_command(cli.app)
    paths = []
    for name, command in root.commands.items():
        subs = getattr(command, "commands", None)
        paths += [(name, sub) for sub in subs] if subs else [(name,)]
    return paths


def _options(path: tuple[str, ...]) -> list[str]:
    import typer

    command = typer.main.get_command(cli.app)
    for name in path:
        command = command.commands[name]
    options = [p for p in command.params if not getattr(p, "hidden", False)]
    return [o for p in options for o in (*p.opts, *p.secondary_opts) if o.startswith("--")]


@pytest.mark.parametrize("columns", ["80", "100"])
def test_every_option_name_reads_in_full_on_a_narrow_terminal(columns: str):
    """typer's options table gives its columns equal shares once the widest do not fit: on an
    80-column terminal (or a pipe) --detector-revision read --detector-revi…, and engine fuse's
    --no-parent-constraint was cut even at 100. There the help falls back to click's plain
    list, where every name and value reads in full."""
    for path in _commands():
        res = runner.invoke(cli.app, [*path, "--help"], env={"COLUMNS": columns, "NO_COLOR": "1"})
        assert res.exit_code == 0, res.output
        assert "\u2026" not in res.output, path
        words = set(re.findall(r"--[a-z0-9-]+", res.output))
        for option in _options(path):
            assert option in words, (path, option)


def test_no_help_text_is_eaten_as_rich_markup():
    """typer renders help as rich markup, which takes ``[word ...]`` for a style tag and drops
    it: engine fuse --help read "Splits to fuse, e.g. train,val ." (its "[default: all the runs
    labelled]" gone) and review's and report's --pred "DIR/<stem>.png" (without "[split/]")."""
    import typer
    from rich.markup import render

    root = typer.main.get_command(cli.app)
    for path in _commands():
        command = root
        for name in path:
            command = command.commands[name]
        texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
        for text in texts:
            assert render(text).plain == text, (path, text)
    res = runner.invoke(cli.app, ["fuse", "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert "e.g. train,val (repeatable; default: every split all the runs labelled)." in res.output


def test_a_wide_terminal_keeps_the_rich_panels():
    assert "╭─ Options" in _help("fuse")  # 120 columns: nothing cut
    assert "╭─ Options" in _help("label")
    for columns in ("80", "120"):  # drawn once either way
        res = runner.invoke(cli.app, ["fuse", "--help"], env={"COLUMNS": columns})
        assert res.output.count("Usage:") == 1


def test_the_measure_never_shows_the_help_twice(monkeypatch):
    """A typer that drew its help without the console it uses since 0.16 has shown it: the
    command must not draw it again; one without that console is left to draw it once."""
    from typer import rich_utils

    from engine.cli.common import rich_help_cuts

    drawn: list[int] = []
    assert rich_help_cuts(lambda: drawn.append(1)) is None and drawn == [1]
    monkeypatch.delattr(rich_utils, "_get_rich_console")
    assert rich_help_cuts(lambda: drawn.append(2)) is False and drawn == [1]


def test_command_list_joins_a_docstring_s_wrapped_lines():
    """typer's rich list keeps single line breaks of a docstring: each command's summary must
    read as one sentence, wrapped only by the table (the review line once broke mid-phrase)."""
    text = _help()
    joined = " ".join(line.strip("│ ") for line in text.splitlines())
    assert "(no server; open index.html), beside model predictions and annotations" in joined
    for info in cli.app.registered_commands:
        assert info.short_help and "\n" not in info.short_help, info.name


def test_a_command_without_a_place_in_the_workflow_is_refused(monkeypatch):
    import typer

    stray = typer.Typer()
    stray.command("frobnicate")(lambda: None)
    monkeypatch.setattr(cli, "_AREAS", (*cli._AREAS, type("M", (), {"app": stray})))
    with pytest.raises(RuntimeError, match="frobnicate"):
        cli.build_app()


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    res = runner.invoke(cli.app, ["info", str(tmp_path / "missing"), "--no-progress"])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "error:" in res.output


def test_top_level_cli_stays_small():
    from pathlib import Path

    assert len(Path(cli.__file__).read_text().splitlines()) < 200
