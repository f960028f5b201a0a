"""A package's docstring says which of its modules holds what (the fifty-ninth round split 20
modules into packages): every function, class or constant it credits to a module is defined
there, and where it says each module uses only those listed before it, the imports agree. A
name moved later to another module, or an import that reaches up the list, fails here rather
than leaving a newcomer to look in the wrong file. So does a module's reference (:func:`name`) to
what a sibling module defines, unless it says which (:func:`~engine.runlock.lock.exclusive`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# where the list of modules starts: "One module per part", "The package's modules, lowest first"
LIST_START = re.compile(r"(?:[Oo]ne module|The package's modules|The modules)")
# the packages whose __init__ lists its modules
PACKAGES = sorted(
    p.parent
    for area in ("annotations", "engine", "labeler", "trainer")
    for p in (ROOT / area).glob("*/__init__.py")
    if LIST_START.search(ast.get_docstring(ast.parse(p.read_text("utf-8"))) or "")
    and p.parent != ROOT / "engine" / "cli"  # its modules are its areas, named in words
)
# a module named (``name`` or :mod:`~pkg.name`), or a name credited to the one named before it
MENTION = re.compile(r":(func|class|data|attr|mod|meth|exc):`~?([\w.]+)`|``([\w.]+)``")
# the list's promise about imports: each module imports only those listed before it
ORDERED = re.compile(r"only those (listed before|above|below) it")


def _defined(path: Path) -> tuple[set[str], ast.Module]:
    """The names ``path`` defines at its top level (classes' attributes as ``Class.name``)."""
    tree = ast.parse(path.read_text("utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            for inner in getattr(node, "body", []) if isinstance(node, ast.ClassDef) else []:
                if isinstance(inner, ast.AnnAssign) and isinstance(inner.target, ast.Name):
                    names.add(f"{node.name}.{inner.target.id}")
                elif isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}.{inner.name}")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names, tree


def misdescribed(package: Path) -> list[str]:
    """What ``package``'s docstring says of its modules that is not so, one line each."""
    dotted = ".".join(package.relative_to(package.parents[1]).parts)
    modules = {p.stem: _defined(p) for p in package.glob("*.py") if p.stem != "__init__"}
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text("utf-8"))) or ""
    start = LIST_START.search(doc)
    if start is None:
        return [f"{dotted}: the docstring lists no modules"]
    found, order, current = [], [], None
    for m in MENTION.finditer(doc, start.start()):
        role, name = m.group(1), m.group(2) or m.group(3)
        name = name.removeprefix(dotted + ".")
        if name in modules:
            if role in (None, "mod"):
                current = name
                order.append(name)
            continue  # else the package's attribute named as a module is (:data:`app`)
        if current is None or role == "mod" or name in modules[current][0]:
            continue
        holder = sorted(k for k, (names, _) in modules.items() if name in names)
        if role is None and not holder:
            continue  # a literal that names no part of the package (``--plot``, a file)
        if "." in name and name.split(".")[0] not in modules[current][0]:
            continue  # another package's name (:func:`engine.metrics.pair_counts`)
        found.append(f"{dotted}: {name} is credited to {current}, but is in {holder or 'none'}")
    missing = sorted(set(modules) - set(order))
    if missing:
        found.append(f"{dotted}: the docstring lists no {', '.join(missing)}")
    if ORDERED.search(doc, start.start()):
        for i, name in enumerate(order):
            tree = modules[name][1]
            used = {
                n.module.removeprefix(dotted + ".").split(".")[0]
                for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith(dotted + ".")
            }
            later = sorted(used & set(order[i + 1 :]))
            if later:
                found.append(f"{dotted}: {name} imports {', '.join(later)}, listed after it")
    return found


def test_the_check_finds_a_name_credited_to_the_wrong_module_and_an_import_up_the_list(tmp_path):
    package = tmp_path / "area" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        '"""A package.\n\nOne module per part, each using only those listed before it:\n\n'
        "- :mod:`~area.pkg.low`: :func:`helper`, :class:`Config`;\n"
        '- :mod:`~area.pkg.high`: :func:`run`, the ``--plot`` option.\n"""\n'
    )
    (package / "low.py").write_text("from area.pkg.high import run\n\nclass Config: ...\n")
    (package / "high.py").write_text("def run(): ...\n\ndef helper(): ...\n")
    assert misdescribed(package) == [
        "area.pkg: helper is credited to low, but is in ['high']",
        "area.pkg: low imports high, listed after it",
    ]
    (package / "extra.py").write_text("")
    assert "area.pkg: the docstring lists no extra" in misdescribed(package)


def test_the_split_packages_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in PACKAGES}
    assert {"engine/info", "annotations/fileio", "trainer/train", "labeler/run"} <= names
    assert len(names) >= 19


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_packages_docstring_names_where_each_part_is(package):
    assert misdescribed(package) == []


# a reference in a docstring or comment: :func:`name`, :class:`~pkg.mod.Name`, :meth:`Class.name`
REFERENCE = re.compile(r":(?:func|class|data|attr|meth|exc|obj|const):`~?([\w.]+)`")
# every package of the four areas, the areas included (a split's modules are siblings there)
ALL_PACKAGES = sorted(
    p.parent
    for area in ("annotations", "engine", "labeler", "trainer")
    for p in (ROOT / area).rglob("__init__.py")
)


def _known(tree: ast.Module) -> set[str]:
    """The names a module defines or imports anywhere (a function's own import included)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def unqualified(package: Path) -> list[str]:
    """References in ``package``'s modules to a name its module neither defines nor imports but a
    sibling module defines, one line each: :func:`exclusive` in runlock/holders.py sends a reader
    to look in holders.py for what lock.py holds; :func:`~engine.runlock.lock.exclusive` does not."""
    modules = {p: _defined(p) for p in sorted(package.glob("*.py")) if p.stem != "__init__"}
    found = []
    for path, (_, tree) in modules.items():
        known = _known(tree)
        for lineno, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            for name in REFERENCE.findall(line):
                head = name.split(".")[0]  # Class.attr: the class; a dotted path: its package
                holders = [
                    p.stem for p, (names, _) in modules.items() if p != path and head in names
                ]
                if head and head not in known and holders:
                    where = path.relative_to(package.parent).as_posix()
                    found.append(f"{where}:{lineno}: {name} is in {', '.join(holders)}")
    return found


@pytest.mark.parametrize(
    "text, expected",
    [
        ('"""As :func:`exclusive` holds it."""', ["exclusive"]),  # a sibling's function
        ("x = 1  # :class:`Spec`'s; :meth:`Spec.check`", ["Spec", "Spec.check"]),  # a comment's
        ('"""Up to :data:`LIMIT`."""', []),  # imported here
        ('"""As :func:`held` does."""', []),  # defined here
        ('"""As :func:`~pkg.lock.exclusive`, :func:`.lock.exclusive`."""', []),  # qualified
        ('"""As :func:`missing` does."""', []),  # defined nowhere in the package
    ],
)
def test_the_check_finds_a_reference_to_a_name_in_a_sibling_module(tmp_path, text, expected):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "lock.py").write_text("LIMIT = 1\n\n\ndef exclusive(): ...\n\n\nclass Spec: ...\n")
    (package / "holders.py").write_text(
        f"from pkg.lock import LIMIT\n\n\ndef held(): ...\n{text}\n"
    )
    assert unqualified(package) == [f"pkg/holders.py:5: {name} is in lock" for name in expected]


@pytest.mark.parametrize("package", ALL_PACKAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_reference_to_a_sibling_modules_name_names_its_module(package):
    assert unqualified(package) == []
