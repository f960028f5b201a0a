"""No two modules of the project import each other, directly or around a loop, and no module
imports one of a layer above its own (README, "Layout"). Imports inside functions count: they
hide a cycle or a reach upwards, they do not remove it."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("annotations", "labeler", "trainer", "engine")


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


# The fields holding statements: an import is a statement, so the walk for them leaves out
# the expressions, most of a module's nodes (a quarter of the graph's time, parsing the rest)
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(tree: ast.Module) -> Iterator[ast.AST]:
    """Every statement of ``tree``, in functions, classes, branches and handlers at any depth
    (and the handlers and match cases that hold them)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        for field in _BODIES:
            stack.extend(getattr(node, field, ()))


@functools.cache  # the project's is read once for the tests here
def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """``{module: modules of the project it imports}``, from the source, at any depth."""
    files = [p for p in [root / "cli.py"] if p.exists()]
    files += [p for pkg in packages for p in (root / pkg).rglob("*.py")]
    modules = {_module_name(p, root): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _statements(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                # ``from . import x``, ``from ..y import x``: from the module's own package up
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                module = ".".join(p for p in (base, node.module) if p)
                targets = [module] + [f"{module}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                # the deepest project module the import names (a package's __init__ counts)
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):  # a package's own parent
                    deps.add(t)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


# The layers, lowest first: a module imports its own layer's and those below, never above.
# annotations: files and numbers as users have them; engine's base: what the pipeline's stages
# share (datasets, devices, progress, run records, folder locks, metrics); labeler and trainer:
# the two stages, beside each other (neither imports the other); engine's commands: what joins
# the stages (fusion, evaluation, reports, the demo); the CLI: every command's options and help.
LAYERS = ("annotations", "engine's base", "stages", "engine's commands", "CLI")
# module or package -> (layer, group): the longest name that is the module or a package above
# it decides; within a layer a module imports only its own group (labeler none of trainer).
# A new module of engine/ is in its base until listed with the commands.
PLACES = {
    "annotations": ("annotations", "annotations"),
    "engine": ("engine's base", "engine"),
    "labeler": ("stages", "labeler"),
    "trainer": ("stages", "trainer"),
    **{
        f"engine.{m}": ("engine's commands", "engine")
        for m in (
            "annotate",
            "annotation_files",
            "compare",
            "demo",
            "evaluate",
            "fusion",
            "info",
            "pretrain",
            "report",
            "review",
            "synth",
            "table4",
        )
    },
    **{
        m: ("CLI", "cli")
        for m in ("cli", "engine.cli", "labeler.cli", "labeler.cli_support", "trainer.cli")
    },
}


def place(module: str) -> tuple[str, str]:
    """``(layer, group)`` of a module of the project, by :data:`PLACES`."""
    name = module
    while name not in PLACES:
        if "." not in name:
            raise KeyError(f"{module} is in no layer: add it to PLACES")
        name = name.rpartition(".")[0]
    return PLACES[name]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``"A (its layer) imports B (B's layer)"`` for each import of a higher layer, or of another
    group of the same layer, sorted."""
    found = []
    for module, deps in sorted(graph.items()):
        layer, group = place(module)
        for dep in sorted(deps):
            dep_layer, dep_group = place(dep)
            rank, dep_rank = LAYERS.index(layer), LAYERS.index(dep_layer)
            if dep_rank > rank or (dep_rank == rank and dep_group != group):
                found.append(f"{module} ({layer}) imports {dep} ({dep_layer})")
    return found


def test_no_module_imports_a_layer_above_its_own():
    assert layer_violations(import_graph()) == []


def test_the_layer_check_finds_an_import_upwards():
    graph = {
        "annotations.interchange": {"annotations.rle", "engine.text"},
        "engine.text": set(),
        "engine.runinfo": {"trainer.allocator"},
        "engine.report": {"engine.text", "annotations.rle"},
        "annotations.rle": set(),
        "labeler.run": {"engine.text", "trainer.config", "labeler.cli_support"},
        "labeler.cli_support": {"engine.cli.common", "labeler.run"},
        "engine.cli.common": {"engine.report"},
        "trainer.allocator": set(),
        "trainer.config": {"engine.report"},
    }
    assert layer_violations(graph) == [
        "annotations.interchange (annotations) imports engine.text (engine's base)",
        "engine.runinfo (engine's base) imports trainer.allocator (stages)",
        "labeler.run (stages) imports labeler.cli_support (CLI)",
        "labeler.run (stages) imports trainer.config (stages)",
        "trainer.config (stages) imports engine.report (engine's commands)",
    ]


def test_the_import_graph_reads_relative_imports(tmp_path):
    files = {
        "engine/__init__.py": "",
        "engine/text.py": "",
        "engine/fusion/__init__.py": "from .run import fuse\n",
        "engine/fusion/rules.py": "",
        "engine/fusion/run.py": "from . import rules\n\ndef f():\n    from ..text import counted\n",
        "engine/a.py": "",
        "engine/b.py": "",
        "engine/c.py": "",
        "engine/d.py": "",
        "engine/e.py": "",
        # an import deep in statements: a handler, else, finally, a match case, a method
        "engine/deep.py": (
            "try:\n    pass\nexcept ImportError:\n    import engine.a\nelse:\n"
            "    from engine import b\nfinally:\n    pass\n"
            "match 1:\n    case 1:\n        with x:\n            from engine.c import y\n"
            "class K:\n    def m(self):\n        while 1:\n            if 0:\n"
            "                pass\n            else:\n                import engine.d\n"
            "try:\n    pass\nfinally:\n    import engine.e\n"
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert import_graph(tmp_path, ("engine",)) == {
        "engine": set(),
        "engine.text": set(),
        "engine.fusion": {"engine.fusion.run"},
        "engine.fusion.rules": set(),
        "engine.fusion.run": {"engine.fusion.rules", "engine.text"},
        **{f"engine.{m}": set() for m in "abcde"},
        "engine.deep": {f"engine.{m}" for m in "abcde"},
    }


def test_the_readme_names_the_layers_as_places_does():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    para = text[text.index("Layers, lowest first") :].split("\n\n")[0]
    named = re.findall(r"`([a-z_0-9/]+?)(?:\.py|/)`", para)
    for module, (layer, _) in PLACES.items():
        if "." not in module:
            continue
        path, last = module.replace(".", "/"), module.rpartition(".")[2]
        assert path in named or last in named, f"README's layers leave out {module} ({layer})"
    commands = sorted(
        m.rpartition(".")[2] for m, p in PLACES.items() if p[0] == "engine's commands"
    )
    start, end = para.index("engine's commands ("), para.index("what joins the stages")
    assert sorted(re.findall(r"`([a-z_0-9]+)(?:\.py|/)`", para[start:end])) == commands


def test_the_project_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
