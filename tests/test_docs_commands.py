"""The README and docs stay true to the command line: every ``engine ...`` line of their shell
blocks (and every inline ``engine ...`` span that names a command) uses commands and options
that exist. Placeholders (DATA, RUN, ...) are not checked; option names are."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import typer

from cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _shell_lines(text: str) -> list[str]:
    """Commands of the fenced shell blocks, continuation lines joined, comments dropped."""
    out = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S):
        current = ""
        for raw in block.splitlines():
            line = "" if raw.lstrip().startswith("#") else raw.split(" #")[0].rstrip()
            if line.strip().startswith("[") and not current and out:  # a synopsis goes on
                current = out.pop()
            current = f"{current} {line.strip()}".strip()
            if current.endswith("\\"):
                current = current[:-1]
                continue
            if current:
                out.append(current)
            current = ""
    return out


def _problem(line: str, inline: bool) -> str | None:
    # a command line starts with it (or runs it under torchrun / python -m cli)
    match = re.match(r"^(?:engine|\S*(?:torchrun|python)\b.*?-m cli)\s+(.*)$", line)
    if not match:
        return None
    try:
        tokens = shlex.split(match.group(1))
    except ValueError:
        return None
    # a synopsis' optional and alternative options: [--png-binary | --png-value 2],
    # [--progress/--no-progress] are options like the others
    tokens = [
        part.strip("[]")
        for token in tokens
        for part in (re.split(r"[|/]", token) if token.lstrip("[").startswith("-") else [token])
    ]
    command = typer.main.get_command(app)
    words: list[str] = []
    while tokens and isinstance(command, typer.core.TyperGroup) and tokens[0] in command.commands:
        words.append(tokens[0])
        command = command.commands[tokens.pop(0)]
    if isinstance(command, typer.core.TyperGroup):  # not a command: prose, or a group's help
        if inline or not tokens or tokens[0].startswith("-"):
            return None
        return f"unknown command {' '.join([*words, tokens[0]])!r}"
    known = {"--help"}
    for param in command.params:
        known.update(param.opts, getattr(param, "secondary_opts", []))
    unknown = [
        t.split("=")[0]
        for t in tokens
        if (t.startswith("--") or re.fullmatch(r"-[a-zA-Z]", t)) and t.split("=")[0] not in known
    ]
    return f"engine {' '.join(words)}: no option {unknown}" if unknown else None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_commands_exist(doc):
    text = doc.read_text()
    lines = [(line, False) for line in _shell_lines(text)]
    lines += [(span, True) for span in re.findall(r"`(engine [^`]+)`", text)]
    problems = [f"{p}: {line[:120]}" for line, inline in lines if (p := _problem(line, inline))]
    assert problems == [], "\n".join(problems)


def test_the_check_finds_a_wrong_option_and_command():
    assert (
        _problem("engine train --data x --bogus 3", False) == "engine train: no option ['--bogus']"
    )
    assert _problem("engine traine --data x", False) == "unknown command 'traine'"
    assert _problem("torchrun --nproc-per-node 4 -m cli label --class Bicycle", False) is None
    assert _problem("engine annotate import a.json --format coco --class B", False) is None
    assert (
        _problem("engine train --data x [--bogus N]", False)
        == "engine train: no option ['--bogus']"
    )
    assert _problem("engine train [--progress/--no-progress] [--resum | --init X]", False) == (
        "engine train: no option ['--resum']"
    )
    synopsis = _shell_lines("```\nengine fuse --data ROOT\n[--out DIR] [--bogus]\n```")
    assert synopsis == ["engine fuse --data ROOT [--out DIR] [--bogus]"]


def test_the_readme_s_commands_are_read():
    """The parser reads the README's shell blocks, or the check above would pass on nothing."""
    lines = _shell_lines((ROOT / "README.md").read_text())
    commands = [line for line in lines if line.startswith("engine ")]
    assert len(commands) >= 10 and "engine demo" in commands


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_reach_a_file_and_heading(doc):
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            problems.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md":
            headings = re.findall(r"(?m)^#+ (.+)$", file.read_text())
            if anchor not in {_slug(h) for h in headings}:
                problems.append(f"{target}: no such heading")
    assert problems == [], "\n".join(problems)


def test_slug_is_github_s():
    assert _slug(
        "Thirty-first round: the demo rerun, a resume that builds its checkpoint's network"
    ) == ("thirty-first-round-the-demo-rerun-a-resume-that-builds-its-checkpoints-network")
    assert _slug("`engine predict`") == "engine-predict"


_ORDINAL = (
    r"(?:(?:twenty|thirty|forty|fifty|sixty)-)?(?:first|second|third|fourth|fifth|sixth|"
    r"seventh|eighth|ninth|tenth|eleventh|twelfth|(?:thir|four|fif|six|seven|eigh|nine)teenth|"
    r"twentieth|thirtieth|fortieth|fiftieth|sixtieth)"
)
_GAP = r"[\s#]+"  # spaces, line breaks and comment marks between the words
_ROUND_REF = re.compile(
    rf"docs/(\w+\.md)(?:'s)?[,;:]?[\s#(]*(?:the{_GAP})?"
    rf"({_ORDINAL}(?:(?:,{_GAP}|,?{_GAP}and{_GAP}){_ORDINAL})*){_GAP}rounds?\b",
    re.I,
)
# Rounds whose heading does not start with the ordinal or hold it as "(Nth round": the first
# round of docs/rounds.md was headed by its subject before rounds were counted.
_ROUND_HEADING_EXCEPTIONS = {("rounds.md", "first"): "Ablation on the demo's data"}


def _round_references(files: list[Path] | None = None) -> list[tuple[str, str, str]]:
    """Every "docs/PAGE.md, Nth round" in the sources, tests, benchmarks and docs: (where, page,
    ordinal); "docs/PAGE.md (the Nth round)", "docs/PAGE.md, Nth and Mth rounds" and lists
    "Nth, Mth and Kth rounds" too, comment marks and line breaks between any two words."""
    if files is None:
        files = [ROOT / "cli.py", *DOCS]
        for folder in ("annotations", "bench", "engine", "labeler", "tests", "trainer"):
            files += sorted((ROOT / folder).rglob("*.py"))
    found = []
    for file in files:
        for m in _ROUND_REF.finditer(file.read_text(encoding="utf-8")):
            for ordinal in re.findall(_ORDINAL, m[2], re.I):
                where = file.relative_to(ROOT).as_posix() if file.is_relative_to(ROOT) else file
                found.append((str(where), m[1], ordinal.lower()))
    return found


def _round_problems(refs: list[tuple[str, str, str]], docs: Path = ROOT / "docs") -> list[str]:
    """The references whose page has no heading of their round: one starting "Nth round" or
    holding "(Nth round", or the page's listed exception."""
    problems = []
    for where, page, ordinal in refs:
        headings = re.findall(r"(?m)^#+ (.+)$", (docs / page).read_text())
        word = re.compile(rf"(?:^|\(){ordinal} round\b", re.I)
        exception = _ROUND_HEADING_EXCEPTIONS.get((page, ordinal))
        if not any(word.search(h) or (exception and h.startswith(exception)) for h in headings):
            problems.append(f"{where}: docs/{page} has no heading of the {ordinal} round")
    return problems


def test_round_references_name_the_page_whose_heading_holds_the_round():
    """A comment or page that cites "docs/PAGE.md, Nth round" sends its reader to a
    section headed by that round on that page: the rounds' notebook moved to docs/rounds.md,
    and a citation left naming the page it came from leads nowhere."""
    refs = _round_references()
    assert len(refs) >= 15 and any(w.startswith("trainer/") for w, _, _ in refs)  # comments read
    assert _round_problems(refs) == [], "\n".join(_round_problems(refs))


def test_the_round_reference_check_reads_every_form(tmp_path):
    """The forms the check once missed: a line break or comment mark between the ordinal and
    "round", "(the tenth round)", lists of rounds; and a heading holding the ordinal elsewhere
    than at its start ("... after a second round of fixes") is not the second round's."""
    src = tmp_path / "a.py"
    src.write_text(
        "# docs/trainer.md, fifth\n# round\n"
        "x = 1  # docs/rounds.md (the tenth round)\n"
        "# see docs/rounds.md, ninth, tenth and eleventh rounds\n"
        "# docs/model.md, twenty-sixth and twenty-seventh\n#   rounds\n"
        "# docs/rounds.md's Second round\n"
    )
    refs = [(page, ordinal) for _, page, ordinal in _round_references([src])]
    assert refs == [
        ("trainer.md", "fifth"),
        ("rounds.md", "tenth"),
        ("rounds.md", "ninth"),
        ("rounds.md", "tenth"),
        ("rounds.md", "eleventh"),
        ("model.md", "twenty-sixth"),
        ("model.md", "twenty-seventh"),
        ("rounds.md", "second"),
    ]
    assert _round_problems([("x", "trainer.md", "fifth"), ("y", "rounds.md", "tenth")]) == [
        "x: docs/trainer.md has no heading of the fifth round"
    ]
    # "Thirty-ninth round: the demo rerun after a second round of fixes" holds "second round"
    # but is not its heading; "(second round: speed, ...)" is; the first round is an exception
    (tmp_path / "page.md").write_text(
        "### Thirty-ninth round: the demo rerun after a second round of fixes\n"
    )
    assert _round_problems([("z", "page.md", "second")], tmp_path) == [
        "z: docs/page.md has no heading of the second round"
    ]
    assert _round_problems([("a", "rounds.md", "second"), ("b", "rounds.md", "first")]) == []
    assert _round_problems([("c", "model.md", "twenty-sixth")]) == []


_SECTION_REF = re.compile(r"(?:docs/)?((?:\w+)\.md)(?:'s)?,? (?:section )?\"([^\"]+)\"")


def _section_references(files: list[Path]) -> list[tuple[str, str, str]]:
    """Every "PAGE.md, "Section"" (a section named by its title, not linked) in ``files``:
    (where, page, title); the title may run over a line break and a comment mark."""
    found = []
    for file in files:
        text = re.sub(r"\s*\n\s*(?:#\s*)?", " ", file.read_text(encoding="utf-8"))
        for m in _SECTION_REF.finditer(text):
            found.append((file.name, m[1], m[2]))
    return found


def _section_problems(refs: list[tuple[str, str, str]], docs: Path = ROOT / "docs") -> list[str]:
    """The references whose page has no heading, bold title (``**What a save costs.**``, a
    list item's ``6. **Merge to semantic**``) or paragraph (``Options: ...``) starting with
    their title, case aside. A paragraph's first line only: before, any line of running text
    did, and a renamed heading's old title passed where a wrapped line began with it."""
    problems = []
    for where, page, title in refs:
        file = ROOT / page if page == "README.md" else docs / page
        if not file.exists():  # DESIGN.md, STYLE.md: outside the repository
            continue
        text = file.read_text()
        lines = text.splitlines()
        titles = re.findall(r"(?m)^#+ (.+)$", text)
        titles += [  # a paragraph's first line: after a blank line or a heading
            line
            for i, line in enumerate(lines)
            if line[:1].strip() and (i == 0 or not lines[i - 1].strip() or lines[i - 1][0] == "#")
        ]
        titles += re.findall(r"(?m)^(?:\d+\.|[-*]) \*\*(.+?)\*\*", text)
        titles = [re.sub(r"[`*]", "", t).strip().lower() for t in titles]
        if not any(t.startswith(title.strip().lower()) for t in titles):
            problems.append(f'{where}: docs/{page} has no section "{title}"')
    return problems


def test_sections_named_by_their_title_are_on_their_page():
    """A page, docstring or comment that sends its reader to "docs/PAGE.md, "Section"" names a
    heading or a bold paragraph title of that page (the links' check above does not read these
    titles: test_filesystems.py named "Network, FUSE and other file systems", a heading since
    renamed "... and container file systems")."""
    files = [ROOT / "cli.py", *DOCS]
    for folder in ("annotations", "bench", "engine", "labeler", "tests", "trainer"):
        files += sorted((ROOT / folder).rglob("*.py"))
    refs = _section_references(files)
    assert len(refs) >= 40 and ("README.md", "foundation.md", "Containers and clusters") in refs
    assert _section_problems(refs) == [], "\n".join(_section_problems(refs))


def test_the_section_check_reads_a_title_over_a_line_break(tmp_path):
    md = ".md"  # not written out: this file's own text is read too
    (tmp_path / "a.py").write_text(f'# see docs/trainer{md}, "What a\n# save costs"; x{md}, "y"\n')
    refs = _section_references([tmp_path / "a.py"])
    assert refs == [("a.py", "trainer.md", "What a save costs"), ("a.py", "x.md", "y")]
    (tmp_path / "p.md").write_text(
        "# Top\n## Output outside a terminal: logs\n\n**Title.** text\n\n6. **Merge** it\n"
    )
    refs = [("w", "p.md", t) for t in ("Output outside a terminal", "title", "Merge", "Logs")]
    assert _section_problems(refs, tmp_path) == ['w: docs/p.md has no section "Logs"']


def test_the_section_check_takes_a_paragraphs_first_line_not_a_wrapped_one(tmp_path):
    """A title found only where running text wraps onto a line beginning with it (a heading
    renamed, its old words still in a sentence) is no section: before, every line that began
    without a space counted, and such a stale reference passed."""
    (tmp_path / "p.md").write_text(
        "# Top\nOptions: the first paragraph\nNetwork, FUSE and other file systems are\n"
        "read as any other.\n\nCaches. A second paragraph\n"
    )
    refs = [("w", "p.md", t) for t in ("Options", "Caches", "Network, FUSE and other")]
    assert _section_problems(refs, tmp_path) == [
        'w: docs/p.md has no section "Network, FUSE and other"'
    ]


def test_the_loop_page_s_python_example_takes_pathlib_paths(tmp_path):
    """docs/loop.md's "From Python" steps with ``Path`` folders, as docs/foundation.md's synth
    example passes them: each record (run.json, the gallery, report.json) is written, with the
    paths as text. Before, each step failed with ``PosixPath is not JSON serializable``, the
    label run after its models had loaded."""
    from engine.annotate import ImportConfig, import_annotations
    from engine.report import ReportConfig, build_report
    from engine.review import ReviewConfig, build_review
    from engine.synth import SynthConfig, generate
    from labeler.config import ClassSpec, LabelConfig
    from labeler.run import run_labeling

    root = generate(
        SynthConfig(out=tmp_path / "data", train=0, val=0, test=2, size=(96, 64)), progress=False
    )
    run_dir, subset_dir = tmp_path / "run", tmp_path / "subset"
    cfg = LabelConfig(
        data=root, cls=ClassSpec("Bicycle"), out=run_dir, backend="simulated", progress=False
    )
    run_labeling(cfg)
    truth = [f"{root}/new_classes/bicycle/test"]
    import_annotations(
        ImportConfig("png", truth, "Bicycle", root, subset_dir, split="test", progress=False)
    )
    build_review(ReviewConfig(run_dir, gt=subset_dir, progress=False))
    res = build_report(
        ReportConfig(subset_dir, tmp_path / "report", pseudo=run_dir, data=root, chart=False)
    )
    assert json.loads((run_dir / "run.json").read_text())["config"]["data"] == str(root)
    assert (run_dir / "review" / "index.html").is_file()
    assert res.data["table4"][0]["iou"] is not None


def _pins() -> dict[str, str]:
    """pyproject.toml's version pins, ``{"transformers": ">=5.13,<6", ...}``."""
    text = (ROOT / "pyproject.toml").read_text()
    return {
        m[1].lower(): m[2] for m in re.finditer(r'"([A-Za-z][\w-]*)((?:[<>=!~]=?[^",]+,?)+)"', text)
    }


def _stated_pins(text: str) -> list[tuple[str, str]]:
    """The pins a page states as current: prose ``torch >= 2.6, < 2.16`` and ``transformers
    range: `>=5.13,<6` (pyproject)``."""
    found = [
        (m[1], f">={m[2]}" + (f",<{m[3]}" if m[3] else ""))
        for m in re.finditer(r"\b([a-z][\w-]*) >= ([\d.]+)(?:, < ([\d.]+))?", text)
    ]
    found += re.findall(r"\b([a-z][\w-]*) range: `([^`]+)` \(pyproject", text)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_stated_version_ranges_are_pyproject_s(doc):
    pins = _pins()
    wrong = [
        f"{name} {spec}: pyproject.toml has {pins[name]}"
        for name, spec in _stated_pins(doc.read_text())
        if name in pins and not (pins[name] == spec or pins[name].startswith(spec + ","))
    ]
    assert wrong == [], "\n".join(wrong)


def test_stated_pins_are_read():
    assert _pins()["transformers"].startswith(">=")
    assert ("torch", ">=2.6,<2.16") in _stated_pins((ROOT / "README.md").read_text())
    assert _stated_pins("transformers range: `>=5.0,<6` (pyproject)") == [
        ("transformers", ">=5.0,<6")
    ]


def _python_names(text: str) -> set[str]:
    """Backticked dotted names of the project's packages (``engine.metrics.ClassScorer``,
    ``labeler.run.check_same_class(...)``); file names such as ``annotations.xml`` are not."""
    names = re.findall(
        r"`((?:engine|labeler|trainer|annotations)(?:\.[A-Za-z_]\w*)+)(?:\(|`)", text
    )
    return {n for n in names if n.rsplit(".", 1)[1] not in {"xml", "json", "py", "txt", "yaml"}}


def _resolves(name: str) -> bool:
    import importlib

    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_python_functions_and_modules_exist(doc):
    """A page that names ``engine.text.Table4`` sends a reader to a module that has no such
    class (it lives in ``engine.table4``): every dotted name of the packages must resolve."""
    missing = sorted(n for n in _python_names(doc.read_text()) if not _resolves(n))
    assert missing == [], missing


def test_the_name_check_reads_names():
    names = _python_names("`engine.text.Table4` and `labeler.run.check_same_class(x)`, `a.xml`")
    assert names == {"engine.text.Table4", "labeler.run.check_same_class"}
    assert not _resolves("engine.text.Table4") and _resolves("engine.table4.Table4")


# what --checkpoint and --init take besides a checkpoint file: placeholders of one, keywords
CHECKPOINT_WORDS = {"CKPT", "DST", "FILE", "PATH", "builtin", "none"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_checkpoints_are_given_as_files(doc):
    """``engine predict --checkpoint`` and ``engine train --init`` take a checkpoint file and
    refuse a run folder (``RUN: a folder, not a checkpoint; its last checkpoint is
    RUN/last.pt``): docs/loop.md said ``engine predict --checkpoint RUN``, a command that fails."""
    given = re.findall(r"(--checkpoint|--init)[ =]+([^\s`\]]+)", doc.read_text())
    folders = [
        f"{option} {value}"
        for option, value in given
        if value not in CHECKPOINT_WORDS and not value.endswith((".pt", ".pth"))
    ]
    assert folders == [], folders


def _label_args(line: str) -> list[str] | None:
    """The options of an ``engine label`` line (or one run under torchrun), ``--shard i/n``
    left out, as sorted ``--opt value`` phrases; None for another command."""
    match = re.match(r"^(?:engine|\S*torchrun\b.*?-m cli)\s+label\s+(.*)$", line)
    if not match:
        return None
    tokens, phrases = shlex.split(match.group(1)), []
    for token in tokens:
        if token.startswith("-") or not phrases:
            phrases.append(token)
        else:
            phrases[-1] += f" {token}"
    return sorted(p for p in phrases if not p.startswith("--shard"))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_torchrun_label_lines_repeat_the_run_s_options(doc):
    """A torchrun line that labels a run shown just before it continues that run: with any
    option left out, copied as written it labels every image again with other settings (the
    README's workflow dropped step 1's prompts, negative and tiles)."""
    problems = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", doc.read_text(), re.S):
        before: list[str] | None = None
        for line in _shell_lines(f"```\n{block}```"):
            args = _label_args(line)
            if args is None:
                continue
            if "torchrun" in line.split()[0] and before is not None and args != before:
                problems.append(f"{line[:100]}: options {args}, the run before has {before}")
            before = args
    assert problems == [], "\n".join(problems)


def test_label_args_read_a_torchrun_line():
    assert _label_args("torchrun --nproc-per-node 4 -m cli label --class Car --data D") == [
        "--class Car",
        "--data D",
    ]
    assert _label_args("engine label --class Car --data D --shard 0/2") == [
        "--class Car",
        "--data D",
    ]
    assert _label_args("engine fuse --data D") is None


# the options of the commands that name an input (a folder or file an earlier step writes)
INPUT_OPTIONS = {"--data", "--pseudo", "--subset", "--fused", "--pred", "--gt", "--checkpoint"}
INPUT_OPTIONS |= {"--init", "--images", "--corrections", "--config", "--source"}


def _inputs(line: str) -> list[str]:
    """The paths an ``engine`` line reads: its positional arguments and input options' values
    (``--source NAME=PATH``'s PATH)."""
    match = re.match(r"^engine\s+(.*)$", line)
    if not match:
        return []
    tokens = [t.strip("[]") for t in shlex.split(match.group(1))]  # a synopsis' [--opt X]
    command = typer.main.get_command(app)
    while tokens and isinstance(command, typer.core.TyperGroup) and tokens[0] in command.commands:
        command = command.commands[tokens.pop(0)]
    flags = {o for p in command.params if getattr(p, "is_flag", False) for o in p.opts}
    found, option = [], None
    for token in tokens:
        if option is None and token.startswith("-"):
            option = None if token in flags or "=" in token else token
            continue
        if option is None or option in INPUT_OPTIONS:
            found.append(token.split("=", 1)[-1] if option == "--source" else token)
        option = None
    return found


def _written_before(path: str, text: str) -> bool:
    """``path``, or a folder above it, is named in ``text`` (a command's --out, a mkdir, a
    ``# -> runs/fused/bicycle`` comment)."""
    parts = path.split("/")
    return any(  # a top folder alone counts when named alone: runs/label/x makes no runs/train
        re.search(
            rf"(?<![\w./+-]){re.escape('/'.join(parts[:i]))}(?![\w.+{'/' if i == 1 else ''}-])",
            text,
        )
        for i in range(len(parts), 0, -1)
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_a_recipe_s_steps_read_what_its_earlier_steps_write(doc):
    """A block that starts with ``engine synth`` is a recipe run as it stands: each path a step
    reads is named before it (written by an earlier step). docs/fusion.md's "Adding classes"
    imported ``ann/bicycle`` and ``ann/car``, folders no step made: copied as written, the
    recipe stopped there (``error: ann/bicycle: annotation source not found``)."""
    problems = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", doc.read_text(), re.S):
        flat = re.sub(r"\\\n\s*", " ", block)
        lines = _shell_lines(f"```\n{block}```")
        if not lines or not lines[0].startswith("engine synth"):
            continue
        for line in lines:
            before = flat[: flat.find(line.split(" #")[0][:60])]
            problems += [
                f"{path}: read by {line[:70]}, written by no step before it"
                for path in _inputs(line)
                if not re.match(r"[/$~.]|.*[A-Z]{2,}|.*\.\.\.", path)
                and not _written_before(path, before)
            ]
    assert problems == [], "\n".join(problems)


def test_the_recipe_check_reads_inputs_and_finds_an_unwritten_folder():
    assert _inputs('engine compare --class B --gt s --source "a=p/x" --plot c.png') == ["s", "p/x"]
    assert _inputs("engine annotate import ann/b --format png --data d --out o") == ["ann/b", "d"]
    assert _inputs("engine review runs/label/b --limit 0") == ["runs/label/b"]
    assert _written_before("runs/train/b/last.pt", "engine train --out runs/train/b\n")
    assert not _written_before("ann/bicycle", "engine annotate pick runs/label/bicycle\n")
    assert not _written_before("runs/fused/b", "engine label --out runs/label/b\n")
    assert _written_before("data/new_classes/b", "engine synth --out data\n")
