"""The engine's own hints stay true to its command line: an error, a warning or a ``next:`` line
that tells the user a command to run or an option to give names a command and options that
exist (``engine fuse --data X --pseudo RUN``), and a value the option takes. A hint that names a
renamed option, or a value the option refuses, sends the user into a second error.

The static checks read every string of the source (f-strings with their values as ``{}``); the
others build the hint and parse the command it suggests with click, as the shell would."""

from __future__ import annotations

import ast
import json
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
# line style (trainer.curves), the placeholder of "after --opt=", click's own --help, docker
# run's (the /dev/shm and open-file limit errors: engine.cli.common.process_limit)
FOREIGN = {"--porcelain", "--untracked-files", "--error-unmatch", "--s", "--opt", "--help"}
FOREIGN |= {"--shm-size", "--ulimit", "--nproc-per-node"}  # docker run's, torchrun's
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
            found.update(_options(command))  # a group's own: engine --version
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


# -- "Reproduce it": the commands the JSON records hold ------------------------------------------
# Each record's ``config`` is the command that made it (the docs' "Reproduce it" paragraphs):
# its keys are the options' names (``pred_class_id`` is --pred-class-id) but for the renames
# here, its positional arguments, and the settings a library caller has only.
RECORDS = {
    # record: (command, renamed keys, positional keys, library-only keys)
    "synth.json": ("synth", {}, (), {"jpeg_quality"}),
    "fuse.json": ("fuse", {"splits": "--split", "parents": "--parent"}, (), set()),
    "review.json": ("review", {}, ("run",), {"quality"}),
    "pick-test.json": ("annotate pick", {"n": "-n"}, ("run",), {"tiny_fraction"}),
    "export": ("annotate export", {"stems": "--stem", "formats": "--format"}, ("run",), set()),
    "report.json": ("report", {"class_name": "--class"}, (), {"title"}),
    "evaluate.json": ("evaluate", {"json_out": "--json"}, (), set()),
    "compare.json": (
        "compare",
        {
            "class_name": "--class",
            "sources": "--source",
            "json_out": "--json",
            "markdown_out": "--markdown",
            "plot_out": "--plot",
        },
        (),
        set(),
    ),  # fmt: skip
    "predict.json": ("predict", {}, (), {"amp"}),
    # the README: lr, grad_clip and num_points are DemoConfig's only
    "summary.json": ("demo", {"classes": "--class"}, (), {"lr", "grad_clip", "num_points"}),
}


# recorded nulls that an option spells out (else null is the option left out)
NONE_IS = {("predict.json", "size"): "original"}


def _value(key: str, value) -> str:
    """A recorded value as the command line spells it: ``[W, H]`` sizes ``WxH``, scales and
    other lists comma-separated, a compare source ``NAME=DIR``."""
    if isinstance(value, (list, tuple)):
        if key == "size":
            return "x".join(map(str, value))
        if key == "sources":
            return "=".join(map(str, value))
        return ",".join(map(str, value))
    return str(value)


def _recorded_command(record: str, config: dict) -> tuple[list[str], list[str]]:
    """``(engine ARGS, keys that name no option)`` of a record's ``config``."""
    words, renamed, positional, library = RECORDS[record]
    command, _ = _command(words.split())
    params = {o: p for p in command.params for o in (*p.opts, *getattr(p, "secondary_opts", []))}
    args, unknown = [*words.split(), *(str(config[k]) for k in positional)], []
    for key, value in config.items():
        option = renamed.get(key, "--" + key.replace("_", "-"))
        if value is None and (record, key) in NONE_IS:
            value = NONE_IS[record, key]
        if key in positional or key in library or value is None:
            continue
        param = params.get(option)
        if param is None:
            unknown.append(key)
        elif getattr(param, "is_flag", False):
            on, off = param.opts[0], (param.secondary_opts or [None])[0]
            args += [on] if value else [off] if off else []
        elif getattr(param, "multiple", False) and isinstance(value, (list, tuple)):
            for item in value:
                args += [option, _value(key, item)]
        else:
            args += [option, _value(key, value)]
    return args, unknown


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, dict]:
    """The ``config`` of each record of :data:`RECORDS`, each output made by its command on a
    few synthetic 96x64 scenes (predictions by a tiny model, untrained)."""
    from tests.model_helpers import save_model
    from trainer.models.registry import create_model

    d = tmp_path_factory.mktemp("records")
    data, run, subset = d / "data", d / "run", d / "subset"
    with pytest.MonkeyPatch.context() as mp:
        engine = lambda *args: _engine([str(a) for a in args], mp)  # noqa: E731
        engine("synth", "--out", data, "--train", 1, "--val", 0, "--test", 2, "--size", "96x64")
        engine(
            "label", "--data", data, "--class", "Bicycle", "--backend", "simulated", "--out", run
        )
        engine("fuse", "--data", data, "--pseudo", run, "--out", d / "fused", "--priority",
               "Bicycle", "--split", "train,test", "--parent", "Others", "--uncertain",
               "keep-parent", "--min-coverage", 0.1, "--no-parent-constraint")  # fmt: skip
        truth = data / "new_classes/bicycle/test"
        engine("annotate", "import", truth, "--format", "png", "--class", "Bicycle", "--data",
               data, "--split", "test", "--out", subset, "--png-value", 1)  # fmt: skip
        engine("review", run, "--out", d / "review", "--thumb", 64, "--pred", d / "fused/labels/test",
               "--pred-class-id", 7, "--gt", subset, "--split", "test", "--limit", 5,
               "--no-detail")  # fmt: skip
        engine("annotate", "pick", run, "-n", 1, "--split", "test", "--seed", 3)
        engine("annotate", "export", run, "--out", d / "export", "--split", "test", "--format",
               "coco,labelstudio", "--mask-format", "polygon", "--simplify", 0.5, "--image-url",
               "/data/", "--stem", "synth_test_0001")  # fmt: skip
        engine("report", "--subset", subset, "--pseudo", run, "--fused", d / "fused", "--out",
               d / "report", "--no-chart", "--class", "Bicycle", "--overlays", 1)  # fmt: skip
        engine("evaluate", "--pred", d / "fused/labels/test", "--gt", data / "annotations/test",
               "--json", d / "evaluate.json", "--resize-pred", "nearest", "--bf1-mode", "image",
               "--fold-new-classes", "--taxonomy", d / "fused/taxonomy.json")  # fmt: skip
        engine("compare", "--class", "Bicycle", "--gt", subset, "--source", f"pseudo={run}",
               "--source", f"fused={d / 'fused/labels/test'}", "--json", d / "compare.json",
               "--input", "auto", "--bf1-mode", "image")  # fmt: skip
        ckpt = save_model(d / "tiny.pt", create_model("tiny", num_classes=7))
        engine("predict", "--checkpoint", ckpt, "--data", data, "--split", "test", "--size",
               "original", "--scales", "1,1.25", "--out", d / "pred", "--device", "cpu",
               "--flip", "--guided-filter", "--gf-guide", "grey", "--gf-radius", 2,
               "--sliding-window")  # fmt: skip
    read = lambda path: json.loads(path.read_text())  # noqa: E731
    return {
        "synth.json": read(data / "synth.json")["config"],
        "fuse.json": read(d / "fused/fuse.json")["config"],
        "review.json": read(d / "review/review.json")["config"],
        "pick-test.json": read(run / "pick-test.json")["config"],
        "export": read(d / "export/coco.json")["info"]["mass_engine_export"]["config"],
        "report.json": read(d / "report/report.json")["config"],
        "evaluate.json": read(d / "evaluate.json")["config"],
        "compare.json": read(d / "compare.json")["config"],
        "predict.json": read(d / "pred/predict.json")["config"],
        "subset.json": read(subset / "subset.json"),
    }


@pytest.mark.parametrize("record", sorted(set(RECORDS) - {"summary.json"}))
def test_a_record_s_config_is_a_command_the_engine_takes(records, record):
    args, unknown = _recorded_command(record, records[record])
    assert unknown == [], f"{record}: config keys that name no option: {unknown}"
    assert _parses(args), f"{record}: engine {shlex.join(args)}"


def _elsewhere(path: str) -> str:
    """``path`` beside itself, named ``-again``: ``a/pick-test.txt`` -> ``a/pick-test-again.txt``."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-again{p.suffix}"))


@pytest.mark.parametrize("record", sorted(set(RECORDS) - {"summary.json"}))
def test_a_record_s_command_runs_again(records, record, monkeypatch):
    """The recorded command, its outputs moved to new paths, runs: the values the record holds
    pass the command's own checks too (sizes, scales, choices), not only click's."""
    config = dict(records[record])
    for key in ("out", "json_out"):
        if config.get(key):
            config[key] = _elsewhere(config[key])
    args, _ = _recorded_command(record, config)
    _engine(args, monkeypatch)


def test_a_subset_s_record_is_the_import_command(records, monkeypatch):
    """docs/annotate.md: ``engine annotate import SOURCES --format FORMAT --class CLASS --data
    DATA --split SPLIT --out NEW`` with subset.json's values and its import options."""
    info = records["subset.json"]
    options = info["import_options"]
    args = ["annotate", "import", *sorted(set(info["sources"].values()))]
    args += ["--format", info["import_format"], "--class", info["class_name"]]
    args += ["--data", info["data"], "--split", info["split"], "--out", _elsewhere(info["out"])]
    args += ["--png-binary"] if options.get("png_binary") else []
    args += ["--png-value", str(options["png_value"])] if options.get("png_value") else []
    assert _parses(args), shlex.join(args)
    _engine(args, monkeypatch)


def test_the_demo_summary_s_config_is_the_demo_s_command():
    """summary.json's ``config`` (README "Reproduce it"), as :func:`engine.demo.run_demo` writes
    it, with ``resolved``'s device, processes and threads: options of engine demo (without
    running the demo; its summary holds ``dataclasses.asdict`` of its config)."""
    import dataclasses

    from engine.demo import DemoConfig

    cfg = DemoConfig(classes=("Car",), size=(160, 120), crop=96, init="none", guided_filter=True)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
    config.update(device="cpu", processes=2, threads=1)  # resolved
    config = {k: None if v == "" else v for k, v in config.items()}  # no detector: left out
    args, unknown = _recorded_command("summary.json", config)
    assert unknown == [], f"summary.json: config keys that name no option: {unknown}"
    assert _parses(args), shlex.join(args)


def test_engine_info_s_next_line_of_a_run_on_a_spec_file_fuses_it(tmp_path, monkeypatch):
    """A run labelled with ``--data SPEC`` (a spec file, not a root) showed ``?`` under "not
    yet" and no ``next:`` line: engine info opened its dataset only where it was a folder."""
    from engine.info import label_run_stats, render_label_run
    from engine.synth import SynthConfig, generate

    data = generate(
        SynthConfig(out=tmp_path / "data", train=1, val=0, test=1, size=(96, 64)), progress=False
    )
    spec = data / "mine.yaml"
    spec.write_text("images: images/{split}\nlabels: annotations/{split}\n")
    run = tmp_path / "run"
    _engine(["label", "--data", str(spec), "--class", "Bicycle", "--backend", "simulated",
             "--out", str(run)], monkeypatch)  # fmt: skip
    stats = label_run_stats(run)
    assert [s.pending for s in stats.splits.values()] == [0, 0]
    lines = [str(line) for line in render_label_run(stats)]
    fuse = re.search(r"next: .*, (engine fuse .*) \(joint", lines[-1]).group(1)
    args = shlex.split(fuse.replace("FUSED", str(tmp_path / "fused")))[1:]
    assert args[args.index("--data") + 1] == str(spec)
    _engine(args, monkeypatch)


def test_training_s_unreadable_images_hint_opens_the_spec_file_given(tmp_path):
    """Training on ``--data SPEC`` (a spec file outside its root) stopped at images it cannot
    read with ``engine info ROOT lists every problem``; there engine info found no dataset
    (``no image split folders found``): the spec file is what it opens."""
    from typer.testing import CliRunner

    from engine.synth import SynthConfig, generate
    from trainer.config import AugmentConfig, config_from
    from trainer.data import TrainSet
    from trainer.train import train

    data = generate(
        SynthConfig(out=tmp_path / "data", train=2, val=0, test=0, size=(96, 64)), progress=False
    )
    for image in (data / "images/train").iterdir():
        image.write_bytes(b"not a jpeg")
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs/mine.yaml"
    spec.write_text("images: ../data/images/{split}\nlabels: ../data/annotations/{split}\n")
    with pytest.raises(ValueError, match="lists every problem") as e:
        TrainSet(str(spec), "train", AugmentConfig(crop=32))[0, (0,)]
    assert f"`engine info {spec}`" in str(e.value)
    cfg = config_from(
        {}, "config", data=str(spec), preset="tiny", out=str(tmp_path / "run"), iters=1,
        batch_size=2, device="cpu", backbone_weights="none", val_split="", num_workers=0,
        processes=1, progress=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match="lists every problem") as e:
        train(cfg)
    hint = re.search(r"`(engine info [^`]+)`", str(e.value)).group(1)
    assert hint == f"engine info {spec}"
    res = CliRunner().invoke(app, shlex.split(hint)[1:] + ["--headers-only"])
    assert "problem" in res.output and "no image split folders" not in res.output, res.output


def _config_keys() -> set[str]:
    """Every key of a training config.yaml, dotted below the top (``augment.crop``)."""
    from trainer.config import TrainConfig

    keys: set[str] = set()

    def walk(config: dict, prefix: str) -> None:
        for key, value in config.items():
            keys.add(prefix + key)
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")

    walk(TrainConfig(data="d").to_dict(), "")
    return keys


def test_the_training_config_keys_messages_name_exist():
    """``set it in augment.crop``, ``(all_precise: true)``, the demo's options by the trainer's
    keys: a key a config file refuses (strict keys) is no hint."""
    from engine.demo import TRAINING_OPTIONS

    keys, (demo, _) = _config_keys(), _command(["demo"])
    # dotted keys (augment.crop), and "(key: value)" as a config file spells it
    pattern = re.compile(r"\b(?:augment|loss)(?:\.[a-z_]+)+|(?<=\()[a-z]+_[a-z_]+(?=: )")
    named = [
        (f"{path}:{line}", m.group(0))
        for path, line, text, _ in MESSAGES
        if str(path).startswith("trainer")
        for m in pattern.finditer(text)
    ]
    assert len(named) >= 3
    wrong = [f"{where}: {key}" for where, key in named if key not in keys]
    wrong += [f"engine.demo: {o} {k}" for o, k in TRAINING_OPTIONS if k not in keys]
    wrong += [f"engine.demo: {o}" for o, _ in TRAINING_OPTIONS if o not in _options(demo)]
    assert wrong == [], wrong


def test_the_spec_keys_messages_name_exist():
    """``add recursive: true to the dataset spec``, ``a --spec file (Bicycle: {parent: CLASS})``:
    keys the dataset spec and the class spec file take (both refuse unknown keys)."""
    from engine.datasets import _SPEC_KEYS
    from labeler.config import _CLASS_KEYS

    found = {"dataset": [], "class": []}
    for path, line, text, _ in MESSAGES:
        if "dataset spec" in text or "spec sets" in text:
            keys = re.findall(r"\b(?:add|sets) ([a-z_]+): ", text)
            found["dataset"] += [(path, line, k) for k in keys]
        if "--spec file" in text:
            found["class"] += [(path, line, k) for k in re.findall(r"\{([a-z_]+): ", text)]
    assert found["dataset"] and found["class"]
    wrong = [f"{p}:{n}: {k}" for p, n, k in found["dataset"] if k not in _SPEC_KEYS]
    wrong += [f"{p}:{n}: {k}" for p, n, k in found["class"] if k not in _CLASS_KEYS]
    assert wrong == [], wrong


def test_a_refine_segmenter_not_found_names_refine(tmp_path, monkeypatch):
    """``--backend simulated --refine DIR`` with no such DIR said ``pass a directory ...
    (--segmenter DIR)``; given, --segmenter is refused beside the simulated backend (``runs no
    detector or segmenter``). The error names the option that gave the segmenter."""
    from typer.testing import CliRunner

    from engine.synth import SynthConfig, generate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = generate(
        SynthConfig(out=tmp_path / "data", train=0, val=0, test=1, size=(96, 64)), progress=False
    )
    base = ["label", "--data", str(data), "--class", "Bicycle", "--backend", "simulated"]
    args = [*base, "--refine", str(tmp_path / "sam"), "--out", str(tmp_path / "run")]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    hint = re.search(r"\((--[a-z-]+) DIR\)", res.output)
    assert res.exit_code == 2 and hint, res.output
    again = [*base, hint.group(1), str(tmp_path / "sam2"), "--out", str(tmp_path / "run2")]
    res = CliRunner().invoke(app, again, env={"COLUMNS": "300"})
    assert "weights not found" in res.output, res.output  # the option taken, the path looked at


def test_the_demo_s_batch_size_hint_is_a_batch_the_processes_split():
    """``give --batch-size N`` (a batch the training processes cannot split): the N given
    passes the same check, for 1 to 6 processes."""
    from engine.demo import DemoConfig, check_batch, demo_train_config
    from trainer.train import micro_batch

    def check(batch: int, processes: int) -> None:
        cfg = DemoConfig(batch_size=batch, processes=processes, threads=1)
        check_batch(cfg, demo_train_config(cfg, Path("fused"), Path("train")), micro_batch)

    refused = 0
    for processes in range(1, 7):
        for batch in range(1, 13):
            try:
                check(batch, processes)
            except ValueError as e:
                refused += 1
                given = re.findall(r"--batch-size (\d+)", str(e))[-1]
                assert _parses(["demo", "--batch-size", given]), str(e)
                check(int(given), processes)
    assert refused > 6


@pytest.mark.parametrize("size", [(96, 64), (40, 24), (20, 300)])
def test_the_val_size_hints_are_sizes_validation_takes(tmp_path, size):
    """``--val-size WxH resizes ... give a larger --val-size (--val-size AxB: ...)`` and the
    upscale warning's ``pass --val-size AxB``: AxB parses as --val-size and passes the check."""
    from PIL import Image

    from engine.cli.common import parse_size
    from engine.datasets import SegDataset, load_spec
    from trainer.train import check_val_size, validation_upscale

    w, h = size
    root = tmp_path / "data"
    for folder in ("images/val", "annotations/val"):
        (root / folder).mkdir(parents=True)
    Image.new("RGB", (w, h)).save(root / "images/val/a.jpg")
    Image.new("L", (w, h)).save(root / "annotations/val/a.png")
    data = SegDataset(load_spec(root), "val")
    hints = []
    with pytest.raises(ValueError) as e:
        check_val_size(data, (8, 8))
    hints.append(str(e.value))
    hints.append(validation_upscale(data, (4096, 3072)) or "")
    for hint in hints:
        given = re.findall(r"--val-size (\d+x\d+)", hint)[-1]
        assert _parses(["train", "--val-size", given]), hint
        check_val_size(data, parse_size(given, "--val-size"))


def test_engine_info_on_a_shard_s_run_says_to_label_without_the_shard(tmp_path, monkeypatch):
    """A run labelled as ``--shard 0/2`` lacks shard 1's images; engine info said ``run engine
    label again to finish (it resumes)``, and the same command again labels nothing (shard 0's
    images are done). It says to run it without --shard, which labels the rest."""
    from engine.info import label_run_stats, render_label_run
    from engine.synth import SynthConfig, generate

    data = generate(
        SynthConfig(out=tmp_path / "data", train=2, val=0, test=0, size=(96, 64)), progress=False
    )
    run = tmp_path / "run"
    label = ["label", "--data", str(data), "--class", "Bicycle", "--backend", "simulated"]
    _engine([*label, "--out", str(run), "--shard", "0/2"], monkeypatch)
    line = str(render_label_run(label_run_stats(run))[-1])
    assert "with --shard 1/2, or once without --shard, to finish" in line, line
    _engine([*label, "--out", str(run)], monkeypatch)
    assert [s.pending for s in label_run_stats(run).splits.values()] == [0]


def test_engine_info_on_a_sharded_run_names_the_shards_that_finished(tmp_path, monkeypatch):
    """Shards 0/3 and 2/3 of a run labelled, 1/3 not: engine info said only "without --shard
    (run.json: --shard 2/3), or once per shard", not which shards had finished; the one left
    is named, with its images, and its command labels exactly the rest."""
    from engine.info import label_run_stats, render_label_run
    from engine.synth import SynthConfig, generate

    data = generate(
        SynthConfig(out=tmp_path / "data", train=4, val=3, test=0, size=(96, 64)), progress=False
    )
    run = tmp_path / "run"
    label = ["label", "--data", str(data), "--class", "Bicycle", "--backend", "simulated"]
    for shard in ("0/3", "2/3"):
        _engine([*label, "--out", str(run), "--shard", shard], monkeypatch)
    stats = label_run_stats(run)
    assert stats.shards == {"0/3": 0, "1/3": 2, "2/3": 0}  # 7 images: 3, 2 and 2 of them
    line = str(render_label_run(stats)[-1])
    assert (
        "images not labelled yet: shards 0/3, 2/3 finished; shard 1/3: 2 images left: run "
        "engine label again with --shard 1/3, or once without --shard, to finish" in line
    ), line
    _engine([*label, "--out", str(run), "--shard", "1/3"], monkeypatch)
    stats = label_run_stats(run)
    assert [s.pending for s in stats.splits.values()] == [0, 0]
    assert stats.shards == {"0/3": 0, "1/3": 0, "2/3": 0}


def test_a_shard_whose_label_files_were_deleted_is_not_finished(tmp_path, monkeypatch):
    """Both shards labelled, then one image's label file deleted: engine label --shard labels
    it again (its files are gone), but engine info counted it done by its manifest record
    alone and said nothing was left. The shard that holds it has an image left now."""
    from engine.info import label_run_stats
    from engine.synth import SynthConfig, generate

    data = generate(
        SynthConfig(out=tmp_path / "data", train=3, val=0, test=0, size=(96, 64)), progress=False
    )
    run = tmp_path / "run"
    label = ["label", "--data", str(data), "--class", "Bicycle", "--backend", "simulated",
             "--out", str(run)]  # fmt: skip
    for shard in ("0/2", "1/2"):
        _engine([*label, "--shard", shard], monkeypatch)
    assert label_run_stats(run).shards == {"0/2": 0, "1/2": 0}
    second = sorted((run / "labels/train").iterdir())[1]  # the plan's second image: shard 1/2
    second.unlink()
    stats = label_run_stats(run)
    assert stats.shards == {"0/2": 0, "1/2": 1}
    # the table and the lines count it as engine label does: not labelled yet (before, the
    # manifest's record alone made it labelled there, with no line and "next: engine review")
    row = stats.splits["train"]
    assert (row.labelled, row.missing, row.pending) == (2, 1, 1)
    from engine.info import render_label_run

    text = " ".join(" ".join(map(str, render_label_run(stats))).split())
    assert "shard 1/2: 1 image left: run engine label again with --shard 1/2" in text
    assert "next: engine review" not in text
    _engine([*label, "--shard", "1/2"], monkeypatch)
    assert second.is_file() and label_run_stats(run).shards == {"0/2": 0, "1/2": 0}


def test_a_label_run_whose_label_file_was_deleted_is_not_done(tmp_path, monkeypatch):
    """An unsharded run with one label file deleted: engine label labels the image again, but
    engine info counted it labelled by its manifest record, exit 0 and "next: engine review"."""
    from typer.testing import CliRunner

    from engine.synth import SynthConfig, generate

    data = generate(
        SynthConfig(out=tmp_path / "data", train=2, val=0, test=0, size=(96, 64)), progress=False
    )
    run = tmp_path / "run"
    _engine(["label", "--data", str(data), "--class", "Bicycle", "--backend", "simulated",
             "--out", str(run)], monkeypatch)  # fmt: skip
    sorted((run / "labels/train").iterdir())[0].unlink()
    res = CliRunner().invoke(app, ["info", str(run)], env={"COLUMNS": "300"})
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "images not labelled yet: run engine label again to finish (it resumes)" in text
    assert "next: engine review" not in text


@pytest.mark.parametrize("shard", [["1", "2"], [2, 2], [-1, 2], [True, 2], [0, 2.0], [1]])
def test_a_hand_edited_shard_record_is_no_shard(tmp_path, monkeypatch, shard):
    """run.json's ``config.shard`` edited to ``["1", "2"]``: engine info stopped with a
    TypeError-based error where before the forty-eighth round it showed the run. Anything but
    two whole numbers 0 <= i < n is no shard information."""
    import json

    from engine.info import label_run_stats, render_label_run
    from engine.synth import SynthConfig, generate

    data = generate(
        SynthConfig(out=tmp_path / "data", train=3, val=0, test=0, size=(96, 64)), progress=False
    )
    run = tmp_path / "run"
    _engine(["label", "--data", str(data), "--class", "Bicycle", "--backend", "simulated",
             "--out", str(run), "--shard", "0/2"], monkeypatch)  # fmt: skip
    doc = json.loads((run / "run.json").read_text())
    doc["config"]["shard"] = shard
    (run / "run.json").write_text(json.dumps(doc))
    stats = label_run_stats(run)
    assert (stats.shard, stats.shards) == ("", {})
    line = str(render_label_run(stats)[-1])
    assert line == "images not labelled yet: run engine label again to finish (it resumes)"


def test_engine_info_names_the_split_left_when_every_shard_finished(tmp_path, monkeypatch):
    """``--split train``, then ``--split val`` in two shards, then an image added to train:
    every shard of val finished, and engine info said "run engine label again with , or once
    without --shard". It names the split with images left, and its command labels them."""
    import shutil

    from engine.info import label_run_stats, render_label_run
    from engine.synth import SynthConfig, generate

    data = generate(
        SynthConfig(out=tmp_path / "data", train=4, val=3, test=0, size=(96, 64)), progress=False
    )
    run = tmp_path / "run"
    label = ["label", "--data", str(data), "--class", "Bicycle", "--backend", "simulated",
             "--out", str(run)]  # fmt: skip
    _engine([*label, "--split", "train"], monkeypatch)
    for shard in ("0/2", "1/2"):
        _engine([*label, "--split", "val", "--shard", shard], monkeypatch)
    stem = sorted((data / "images/train").iterdir())[0].stem
    for path in list(data.rglob(f"{stem}.*")):  # its image and masks (the simulation's truth)
        shutil.copy(path, path.with_name("zz_added" + path.suffix))
    stats = label_run_stats(run)
    assert stats.shards == {"0/2": 0, "1/2": 0}
    line = str(render_label_run(stats)[-1])
    said = re.search(r"images not labelled yet: (.*): run engine label again with (.*) \(no", line)
    assert said and said.group(1) == "shards 0/2, 1/2 finished; train: 1 image left", line
    _engine([*label, *shlex.split(said.group(2))], monkeypatch)
    assert [s.pending for s in label_run_stats(run).splits.values()] == [0, 0]


def test_next_lines_quote_paths_with_spaces_as_the_shell_needs(tmp_path, monkeypatch):
    """``engine info``'s ``next:`` lines (and the other hints that name a folder in a command)
    put paths in as they were: ``next: engine train --data /data/my fused --out RUN`` runs
    ``engine train --data /data/my`` with a stray argument ``fused``. Quoted as the shell reads
    them, each command's path is the folder, whole."""
    from engine.info import label_run_stats, render_label_run, render_train_run, train_run_stats
    from engine.synth import SynthConfig, generate
    from trainer.release_file import unconverted_release

    data = generate(
        SynthConfig(out=tmp_path / "my data", train=1, val=0, test=0, size=(96, 64)),
        progress=False,
    )
    run = tmp_path / "my run"
    _engine(["label", "--data", str(data), "--class", "Bicycle", "--backend", "simulated",
             "--out", str(run)], monkeypatch)  # fmt: skip
    line = str(render_label_run(label_run_stats(run))[-1])
    review = shlex.split(re.search(r"next: (engine review .*) \(look", line).group(1))
    assert review[2:] == [str(run)], line
    fuse = shlex.split(re.search(r", (engine fuse .*) \(joint", line).group(1))
    fused = tmp_path / "my fused"
    args = [str(fused) if a == "FUSED" else a for a in fuse[1:]]
    assert args[args.index("--data") + 1] == str(data)
    assert args[args.index("--pseudo") + 1] == str(run)
    _engine(args, monkeypatch)

    said = _engine(["info", str(fused)], monkeypatch)
    train = shlex.split(re.search(r"next: (engine train .*) \(jointly", said).group(1))
    assert train[train.index("--data") + 1] == str(fused) and _parses(train[1:])

    trained = tmp_path / "my train"
    trained.mkdir()
    config = {"preset": "tiny", "data": "d", "iters": 40, "augment": {}}
    (trained / "config.json").write_text(json.dumps({"config": config}))
    (trained / "metrics.jsonl").write_text('{"step": 40, "loss": 1.5}\n')
    (trained / "last.pt").write_bytes(b"")
    line = str(render_train_run(train_run_stats(trained))[-1])
    predict = shlex.split(re.search(r"next: (engine predict .*) \(then", line).group(1))
    assert predict[predict.index("--checkpoint") + 1] == str(trained / "last.pt")

    convert = re.search(r"(engine convert-massformer .*)", str(unconverted_release(run / "a.pth")))
    assert shlex.split(convert.group(1))[2] == str(run / "a.pth")
