"""The docs' tables and option lists state facts about the code: an option's name and default,
a config key's default, an exit code, a command. Each check here reads one table or list as a
reader sees it and compares it with the code's own source of truth (the click command behind
``engine ...``, the config dataclass, the exit-code constants), so a renamed option or a changed
default fails here instead of drifting silently. docs/trainer.md's "Config keys" table has its
own check (tests/trainer/test_config_table.py); the command lines of the shell blocks have
tests/test_docs_commands.py."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _command(words: str) -> Any:
    """The click command of ``engine WORDS`` (``"annotate pick"``)."""
    command = typer.main.get_command(app)
    for word in words.split():
        command = command.commands[word]
    return command


def _options(words: str) -> dict[str, Any]:
    """``{option: click parameter}`` of ``engine WORDS``, each spelling (``--no-progress``)."""
    return {
        opt: p
        for p in _command(words).params
        if type(p).__name__.endswith("Option")
        for opt in (*p.opts, *p.secondary_opts)
    }


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row (``\\|`` is a pipe inside a cell)."""
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [p.strip().replace("\\|", "|") for p in parts]


def _table(doc: str, header: str) -> list[list[str]]:
    """The body rows of the table of ``doc`` (a path under the repository) whose header row
    starts with ``header``."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    return rows


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_table_reader_reads_a_row():
    assert _cells("| `a` | 1 \\| 2 | x |") == ["`a`", "1 | 2", "x"]
    rows = _table("docs/fusion.md", "| option | default |")
    assert rows[0][0] == "`--data`" and len(rows) >= 10


# ---- docs/fusion.md: the options table of engine fuse


def _same_default(stated: str, param: Any) -> bool:
    """A table's default as a reader takes it: ``required``, ``off`` / ``none`` (a flag that
    is not set, an option left out), a value (``ignore``, ``1``), or prose that says what an
    unset option does (any words, for an option whose default is None)."""
    default = getattr(param.default, "value", param.default)
    if stated.startswith("required"):
        return param.required
    if param.required:
        return False
    if stated in ("off", "none"):
        return default in (None, False, ()) or (param.secondary_opts and default is True)
    if stated == "on":
        return default is True
    value = stated.strip("`")
    if default is None:  # said in words: "every dataset split that all runs labelled"
        return not re.fullmatch(r"[\d.]+", value)
    return yaml.safe_load(value) == default or value == str(default)


def test_the_fuse_table_lists_every_option_with_its_default():
    """docs/fusion.md's table of ``engine fuse``'s options: every option, none stale, each
    with the default the command has."""
    options = _options("fuse")
    rows = _table("docs/fusion.md", "| option | default |")
    named = {opt for row in rows for opt in _ticked(row[0])}
    params = {options[opt].name for opt in named if opt in options}
    assert sorted(named - set(options)) == [], "options the command does not have"
    missing = {p.name for p in options.values()} - params
    assert sorted(missing) == [], "options of engine fuse the table leaves out"
    wrong = [
        f"{row[0]}: {row[1]}, the command's default is {options[_ticked(row[0])[0]].default!r}"
        for row in rows
        if not _same_default(row[1], options[_ticked(row[0])[0]])
    ]
    assert wrong == [], "\n".join(wrong)


def test_same_default_reads_the_table_s_words():
    options = _options("fuse")
    assert _same_default("required, repeatable", options["--pseudo"])
    assert _same_default("off", options["--force"]) and _same_default("1", options["--workers"])
    assert _same_default("`ignore`", options["--uncertain"])
    assert not _same_default("2", options["--workers"])
    assert not _same_default("`keep-parent`", options["--uncertain"])
    assert not _same_default("on", options["--force"])


# ---- docs/loop.md: the simulated labeler's options


def test_the_simulated_labeler_table_is_simulationconfig_s():
    """docs/loop.md's table of ``--backend-option KEY=VALUE``: every key of
    ``SimulationConfig`` (``from_dict`` refuses any other), with its default."""
    from labeler.simulated import SimulationConfig

    defaults = {f.name: f.default for f in dataclasses.fields(SimulationConfig)}
    stated: dict[str, Any] = {}
    for row in _table("docs/loop.md", "| option (`--backend-option KEY=VALUE`) |"):
        keys, values = _ticked(row[0]), [v.strip() for v in row[1].split(",")]
        stated.update({k: yaml.safe_load(v) for k, v in zip(keys, values, strict=True)})
    assert sorted(stated) == sorted(defaults)
    wrong = {k: (v, defaults[k]) for k, v in stated.items() if v != defaults[k]}
    assert wrong == {}, "key: (the table's default, SimulationConfig's)"


# ---- docs/foundation.md: the exit codes


def _exit_constants() -> dict[str, int]:
    from engine import stopping
    from engine.cli import common

    return {
        name: value
        for module in (common, stopping)
        for name, value in vars(module).items()
        if name.startswith("EXIT_") and isinstance(value, int)
    }


def test_the_exit_code_table_is_the_code_s():
    """docs/foundation.md's "Exit codes" table names exactly the codes the commands exit with:
    0 and the ``EXIT_*`` constants (``engine.cli.common``, ``engine.stopping``)."""
    codes = [int(row[0]) for row in _table("docs/foundation.md", "| code | when |")]
    assert sorted(codes) == sorted({0, *_exit_constants().values()})


def test_the_exit_codes_a_page_names_are_the_table_s():
    """A page's own "Exit codes: 0 ...; 1 ...; 2 ..." line names codes of that table only
    (137 and 124 are the shell's and ``timeout``'s, said as such)."""
    known = {0, *_exit_constants().values()}
    wrong = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in re.findall(r"Exit codes: (.*?)(?:\n\n|$)", doc.read_text(), re.S):
            said = {int(n) for n in re.findall(r"(?:^|; |\()(\d+) ", line)}
            wrong += [f"{doc.name}: {n}" for n in sorted(said - known)]
    assert wrong == []


# ---- README.md: the command table


def test_the_readme_s_command_table_lists_every_command():
    """The README's table of commands (command | what it does | docs) has a row for every
    command of ``engine --help``, and no command that is gone."""
    listed = set()
    for row in _table("README.md", "| command | what it does | docs |"):
        (span,) = _ticked(row[0])
        words = span.split()[1:]
        *group, last = words
        listed.update(" ".join([*group, name]) for name in last.split("/"))
    root = typer.main.get_command(app)
    commands = {
        f"{name} {sub}" if hasattr(cmd, "commands") else name
        for name, cmd in root.commands.items()
        for sub in (getattr(cmd, "commands", None) or [""])
    }
    assert sorted(listed) == sorted(commands)


# ---- docs/labeler.md: the options of engine label


def _label_option_list() -> str:
    text = (ROOT / "docs" / "labeler.md").read_text(encoding="utf-8")
    return text.split("\nOptions: ", 1)[1].split("\n\n", 1)[0]


def _label_defaults() -> dict[str, Any]:
    """What each ``engine label`` option comes to when it is not given: the command's default,
    or, where that is unset, ``ClassSpec``'s / ``LabelConfig``'s of the same name."""
    from labeler.config import ClassSpec, LabelConfig
    from labeler.sam3 import DEFAULT_SAM3

    fields = {
        f.name: f.default
        for cls in (LabelConfig, ClassSpec)
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING
    }
    out = {}
    for opt, p in _options("label").items():
        default = p.default
        if default in (None, "") and p.name in fields:
            default = fields[p.name]
        if opt == "--model" and not default:  # the sam3 backend's model
            default = DEFAULT_SAM3
        out[opt] = default
    return out


def test_the_label_option_list_names_every_option_with_its_default():
    """docs/labeler.md's "Options:" paragraph names every option of ``engine label``; one
    written with a value (``--batch-size 4``, ``--uncertain 0.15,0.25``) shows its default."""
    text = _label_option_list()
    spans = re.findall(r"`(--[a-z-]+)(?: ([^`]*))?`", text)
    defaults = _label_defaults()
    named = {opt for opt, _ in spans}
    assert sorted(named - set(defaults)) == [], "options engine label does not have"
    params = {p.name for p in _command("label").params}
    given = {_options("label")[opt].name for opt in named if opt in defaults}
    assert sorted(params - given - {"class_name", "data"}) == [], "options the list leaves out"
    wrong = []
    for opt, value in spans:
        if not re.fullmatch(r"[\d.,]+|[a-z][\w-]*", value) or _options("label")[opt].required:
            continue  # a placeholder (DIR, RxC, i/n), the choices (auto|cpu|...), an example
        default = defaults[opt]
        if value != str(default) and yaml.safe_load(value) != default:
            wrong.append(f"`{opt} {value}`: the default is {default!r}")
    assert wrong == [], "\n".join(wrong)


# ---- engine X --help: the defaults an option's help states where the option's own is unset


def _help_defaults(words: str) -> list[tuple[str, str]]:
    """``(option, value)`` for each default an option's help states in words: ``(default
    0.35)``, ``(default 80,000; ...)``, ``frozen (default, ...)``, ``origin (default)``."""
    found = []
    for p in _command(words).params:
        text = getattr(p, "help", None) or ""
        found += [(p.opts[0], m) for m in re.findall(r"\(default (\d[\d,]*\d|[\w./-]+)[;,)]", text)]
        found += [(p.opts[0], m) for m in re.findall(r"([\w.-]+) \(default[,)]", text)]
    return found


def _config_defaults(words: str) -> dict[str, Any]:
    """What an unset option of ``engine train`` / ``engine label`` comes to: the config
    dataclass's default of the key it sets."""
    if words == "label":
        return _label_defaults()
    from tests.trainer.test_config_table import RENAMED, _keys
    from trainer.config import TrainConfig

    keys = _keys(TrainConfig)
    return {
        opt: keys[RENAMED.get(p.name, p.name)]
        for p in _command(words).params
        for opt in p.opts
        if RENAMED.get(p.name, p.name) in keys
    }


def test_the_defaults_train_s_and_label_s_help_states_are_the_config_s():
    """``engine train``'s options default to None (a config file or the run's own settings
    fill them), so each help states its default in words: ``--iters`` "(default 80,000)" must
    be ``TrainConfig``'s, and ``engine label``'s thresholds ``ClassSpec``'s."""
    wrong = []
    for words in ("train", "label"):
        defaults = _config_defaults(words)
        for opt, value in _help_defaults(words):
            if opt not in defaults or _options(words)[opt].default not in (None, ""):
                continue  # click shows the option's own default itself
            if value.isupper():  # RANK/WORLD_SIZE: where it comes from
                continue
            default = defaults[opt]
            stated = yaml.safe_load(value.replace(",", "") if value[0].isdigit() else value)
            if "x" in value and isinstance(default, list):  # 4096x3072
                stated = [int(v) for v in value.split("x")]
            if stated != default:
                wrong.append(f"engine {words} {opt}: help says {value}, the default is {default!r}")
    assert wrong == [], "\n".join(wrong)


def test_help_defaults_are_read():
    found = dict(_help_defaults("train"))
    assert found["--iters"] == "80,000" and found["--preset"] == "massformer_r50"
    assert found["--backbone-norm"] == "frozen" and found["--val-size"] == "4096x3072"
    assert dict(_help_defaults("label"))["--box-threshold"] == "0.35"


def test_label_s_help_names_the_simulated_labeler_s_keys():
    """``engine label --help`` lists the simulated backend's ``--backend-option`` keys: those
    ``SimulationConfig.from_dict`` takes, no more, no fewer."""
    from labeler.simulated import SimulationConfig

    text = _options("label")["--backend-option"].help
    listed = re.search(r"simulated: ([\w, ]+)\.", text)[1].split(", ")
    assert sorted(listed) == sorted(f.name for f in dataclasses.fields(SimulationConfig))


# ---- docs/labeler.md: the records a label run writes


def _fields_of(cell: str) -> tuple[set[str], set[str]]:
    """The backticked names of a table cell: all of them, and those outside parentheses (the
    record's own keys, not what a key holds)."""
    outside = re.sub(r"\([^()]*\)", "", cell)
    names = {n for n in _ticked(cell) if re.fullmatch(r"[a-z_]+", n)}
    return names, {n for n in _ticked(outside) if re.fullmatch(r"[a-z_]+", n)}


OPTIONAL = {"refined"}  # an instance's, with --refine only


def test_the_label_run_s_records_hold_the_documented_fields(tmp_path):
    """docs/labeler.md's "Outputs" table names the keys of ``run.json``, a ``manifest.jsonl``
    line and an instances file: every key a (simulated) run writes is named, and every key the
    table names outside parentheses is written. Before, the table left out ``run.json``'s
    ``data_resolved`` and the instances file's ``format``, ``height``, ``width`` and the
    instance keys."""
    import json

    from engine.synth import SynthConfig, generate
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import run_labeling

    root = generate(
        SynthConfig(out=tmp_path / "d", train=0, val=0, test=1, size=(96, 64)), progress=False
    )
    run = tmp_path / "run"
    cfg = LabelConfig(data=str(root), cls=ClassSpec("Bicycle"), out=str(run), backend="simulated")
    run_labeling(dataclasses.replace(cfg, progress=False))
    rows = {row[0]: row[1] for row in _table("docs/labeler.md", "| file | content |")}
    (instances,) = (run / "instances" / "test").glob("*.json")
    records = {
        "`run.json`": json.loads((run / "run.json").read_text()),
        "`manifest.jsonl`": json.loads((run / "manifest.jsonl").read_text().splitlines()[0]),
        "`instances/<split>/<stem>.json`": json.loads(instances.read_text()),
    }
    problems = []
    for file, record in records.items():
        named, own = _fields_of(rows[file])
        listed = record.get("instances") if isinstance(record.get("instances"), list) else []
        keys = set(record) | {k for i in listed for k in i}
        problems += [f"{file}: {k} written, not named" for k in sorted(keys - named)]
        problems += [f"{file}: {k} named, not written" for k in sorted(own - keys - OPTIONAL)]
    assert problems == [], "\n".join(problems)


# ---- the library's configs against the commands that build them


def _configs() -> dict[str, type]:
    from engine.annotate import ExportConfig, ImportConfig, PickConfig
    from engine.compare import CompareConfig
    from engine.demo import DemoConfig
    from engine.evaluate import EvaluateConfig
    from engine.fusion.run import FuseConfig
    from engine.pretrain import PretrainConfig
    from engine.report import ReportConfig
    from engine.review import ReviewConfig
    from engine.synth.config import SynthConfig

    return {
        "synth": SynthConfig,
        "review": ReviewConfig,
        "fuse": FuseConfig,
        "evaluate": EvaluateConfig,
        "compare": CompareConfig,
        "report": ReportConfig,
        "demo": DemoConfig,
        "demo-pretrain": PretrainConfig,
        "annotate pick": PickConfig,
        "annotate export": ExportConfig,
        "annotate import": ImportConfig,
    }


def _plain(value: Any) -> Any:
    value = getattr(value, "value", value)  # an Enum choice
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and re.fullmatch(r"\d+x\d+", value):  # a size, 512x384
        return [int(v) for v in value.split("x")]
    return str(value) if isinstance(value, Path) else value


def _one(option: Any) -> Any:
    """An option's default; a repeatable one's single default (``--split test`` of a command
    taking one split, repeatable as every --split is) as that value."""
    default = option.default
    if option.multiple and isinstance(default, list | tuple) and len(default) == 1:
        return default[0]
    return default


def test_each_config_defaults_as_its_command_does():
    """The docs give the commands' defaults, and say the library's configs (``DemoConfig``,
    ``FuseConfig``, ...) are the same settings: a field named as an option has the option's
    default, so ``run_demo(DemoConfig())`` is ``engine demo``."""
    wrong = []
    for words, cls in _configs().items():
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for p in _command(words).params:
            field = fields.get(p.name)
            if field is None or p.required or p.default is None:
                continue
            if field.default is not dataclasses.MISSING:
                default = field.default
            elif field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            else:
                continue
            if _plain(default) != _plain(_one(p)):
                wrong.append(f"{cls.__name__}.{p.name} = {default!r}, {words}'s {p.default!r}")
    assert wrong == [], "\n".join(wrong)


def test_democonfig_s_own_settings_are_those_the_readme_names():
    """The README: "`lr`, `grad_clip`, `num_points` are `DemoConfig`'s only; the rest are the
    options of the same names" (``classes`` is ``--class``, repeatable)."""
    from engine.demo import DemoConfig

    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    stated = re.search(r"\(((?:`\w+`, )*`\w+`) are `DemoConfig`'s only", text)[1]
    own = {f.name for f in dataclasses.fields(DemoConfig)} - {"classes"}
    own -= {p.name for p in _command("demo").params}
    assert sorted(own) == sorted(_ticked(stated))


# ---- prose: "`--limit` (default 300)", "`--input auto` (default)"


def _stated_defaults(text: str) -> list[tuple[str, str]]:
    """``(option, value)`` for each default the prose states of an option."""
    text = " ".join(text.split())
    found = re.findall(r"`(--[a-z][\w-]*)[^`]*` \(default:? `?(\d[\d,.]*\d|[\w./-]+)`?[;,)]", text)
    found += re.findall(r"`(--[a-z][\w-]*) ([\w.,/-]+)` \((?:the )?default\)", text)
    return found


def _defaults_of_option(option: str) -> list[Any]:
    """The defaults ``option`` has in the commands that take it (train's and label's unset
    ones filled from their configs)."""
    root = typer.main.get_command(app)
    words = [
        f"{name} {sub}".strip()
        for name, cmd in root.commands.items()
        for sub in (getattr(cmd, "commands", None) or [""])
    ]
    out = []
    for w in words:
        options = _options(w)
        if option in options:
            default = _one(options[option])
            if w in ("train", "label") and default in (None, ""):
                default = _config_defaults(w).get(option, default)
            out.append(_plain(default))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_defaults_stated_in_prose_are_a_command_s(doc):
    """A sentence's "`--limit` (default 300)" is the default of a command that has the option
    (the sentence names the command around it; any of them will do here)."""
    wrong = []
    for option, value in _stated_defaults(doc.read_text(encoding="utf-8")):
        if value.isupper() or value in ("every", "all"):  # a placeholder, words
            continue
        stated = _plain(yaml.safe_load(value) if value[0].isdigit() else value)
        defaults = _defaults_of_option(option)
        if stated not in defaults and value not in map(str, defaults):
            wrong.append(f"{option} (default {value}): the commands' defaults are {defaults}")
    assert wrong == [], "\n".join(wrong)


def test_stated_defaults_are_read():
    text = "`--limit` (default 300) keeps; `--size WxH` (default `512x384`; at least\n64 px)"
    assert _stated_defaults(text + ", `--input auto` (default) reads") == [
        ("--limit", "300"),
        ("--size", "512x384"),
        ("--input", "auto"),
    ]
    assert 300 in _defaults_of_option("--limit")


# ---- every option the docs name exists


def _bench_options() -> set[str]:
    """The options of the benchmark scripts (``bench/*.py``), which the docs quote too."""
    text = "".join(p.read_text() for p in (ROOT / "bench").glob("*.py"))
    return set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", text))


# other tools' options the docs quote: Chromium's, pip's / venv's, uv's, a scratch script's;
# docker run's and SLURM's (docs/foundation.md's "Containers and clusters", and its errors)
OTHER_TOOLS = {"--dump-dom", "--system-site-packages", "--resolution", "--lib", "--cli"}
OTHER_TOOLS |= {"--shm-size", "--ulimit", "--cpus-per-task"}
OTHER_COMMANDS = r"(pip|python|pytest|torchrun|uv|git|docker|hf|chromium|rsync|cp)\b"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_option_a_page_names_exists(doc):
    """A backticked ``--option`` anywhere in the prose is an option of an ``engine`` command
    (or of a benchmark script the page runs): docs/trainer.md told of predict's ``--amp``,
    which no command has (``PredictConfig.amp`` is the library's only)."""
    root = typer.main.get_command(app)
    known = {"--help"} | _bench_options() | OTHER_TOOLS
    for name, cmd in root.commands.items():
        for sub in getattr(cmd, "commands", {None: None}):
            known.update(_options(f"{name} {sub}" if sub else name))
    unknown = [
        f"{opt}: `{span[:80]}`"
        for span in re.findall(r"`([^`\n]+)`", doc.read_text(encoding="utf-8"))
        if not re.match(OTHER_COMMANDS, span)
        for opt in re.findall(r"(?<![\w-])--[a-z][\w-]*(?=[\s=\]|/]|$)", span)
        if opt not in known
    ]
    assert unknown == [], "\n".join(unknown)


# ---- the choices the docs give an option: `--mode efficient|full`


def _choices() -> dict[str, set[str]]:
    """What each option with a fixed set of values accepts, from the code that checks it."""
    from annotations.interchange import MASK_FORMATS
    from engine.cli.scores import _Input
    from engine.fusion.rules import UNCERTAIN_MODES
    from engine.metrics.evaluator import BF1_MODES
    from labeler.backends import LAZY_BACKENDS
    from trainer.inference import GUIDES, MODES
    from trainer.losses.targets import PSEUDO_FORMS
    from trainer.models.config import BACKBONE_NORMS, MODEL_PRESETS

    return {
        "--mask-format": set(MASK_FORMATS),
        "--input": {m.value for m in _Input},
        "--uncertain": set(UNCERTAIN_MODES),  # fuse's (label's takes lo,hi)
        "--bf1-mode": set(BF1_MODES),
        "--backend": set(LAZY_BACKENDS),
        "--mode": set(MODES),
        "--gf-guide": set(GUIDES),
        "--pseudo-form": set(PSEUDO_FORMS),
        "--preset": set(MODEL_PRESETS),
        "--backbone-norm": set(BACKBONE_NORMS),
        "--precision": {"auto", "fp32", "fp16", "bf16"},  # LabelConfig's check
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_choices_a_page_gives_are_the_code_s(doc):
    """``--pseudo-form origin|reversed|flat|precise``: all the values the code takes, no other
    (placeholders such as ``PATH`` and ``cuda:N`` aside)."""
    choices, wrong = _choices(), []
    for option, alternatives in re.findall(
        r"(--[a-z][\w-]*)[ =]([\w.-]+(?:\|[\w.:-]+)+)", doc.read_text(encoding="utf-8")
    ):
        if option in choices:
            said = set(alternatives.split("|"))
            if said != choices[option]:
                wrong.append(f"{option} {alternatives}: the code takes {sorted(choices[option])}")
    assert wrong == [], "\n".join(wrong)


def test_the_choices_a_help_lists_are_the_code_s():
    """``engine train --help``'s "origin (default) | reversed | flat | precise" likewise."""
    choices, wrong, seen = _choices(), [], 0
    root = typer.main.get_command(app)
    for name, cmd in root.commands.items():
        for sub in getattr(cmd, "commands", {None: None}):
            words = f"{name} {sub}" if sub else name
            for option, p in _options(words).items():
                text = re.sub(r"\([^()]*\)", "", p.help or "").rstrip(". ")
                if option not in choices or option != p.opts[0] or " | " not in text:
                    continue
                seen += 1
                said = {part.split()[-1] for part in text.split(" | ")[:1]}
                said |= {part.split()[0] for part in text.split(" | ")[1:]}
                if said != choices[option]:
                    wrong.append(f"engine {words} {option}: help lists {sorted(said)}")
    assert seen >= 5 and wrong == [], "\n".join(wrong)
