"""The project as a user installs a release: ``pip install .`` or a wheel, not ``-e``.

Only what ``pyproject.toml`` declares is installed: the four packages, the top-level ``cli``
module and the package data. A file the code opens beside itself that is not declared is
missing from every install but the editable one (docs/foundation.md, "Installing from a wheel").
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml with Python 3.11's tomllib")
ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGES = ("engine", "labeler", "trainer", "annotations")
# the modules that open files found from their own path (Path(__file__), importlib.resources);
# a new one: declare what it opens in [tool.setuptools.package-data] and add it here
OPENS_BESIDE_ITSELF = {"engine/demo/config.py", "engine/runinfo.py"}


def package_files() -> list[str]:
    """Non-Python files inside the packages, as ``engine/assets/x.pt``."""
    return sorted(
        p.relative_to(ROOT).as_posix()
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    )


def declared(path: str) -> bool:
    """Whether ``[tool.setuptools.package-data]`` ships ``path`` (``engine/assets/x.pt``)."""
    data = PYPROJECT["tool"]["setuptools"].get("package-data", {})
    for pkg, globs in data.items():
        prefix = pkg.replace(".", "/") + "/"
        if path.startswith(prefix):
            inner = path[len(prefix) :]
            if any(fnmatch.fnmatch(inner, g) for g in globs):
                return True
    return False


def test_every_file_the_code_opens_beside_itself_is_declared_package_data():
    from engine.demo import BUILTIN

    assert BUILTIN.is_file()
    assert declared(BUILTIN.relative_to(ROOT).as_posix())
    undeclared = [p for p in package_files() if not declared(p)]
    assert not undeclared, f"not shipped by a wheel (pyproject.toml package-data): {undeclared}"
    opening = {
        p.relative_to(ROOT).as_posix()
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if re.search(r"__file__|importlib\.resources", p.read_text(encoding="utf-8"))
    }
    opening |= {"cli.py"} if "__file__" in (ROOT / "cli.py").read_text(encoding="utf-8") else set()
    assert opening == OPENS_BESIDE_ITSELF, (
        "a module finds files from its own path: declare them as package data and list it here"
    )


def test_the_packages_found_are_the_four_and_nothing_else():
    """``tests``, ``bench`` and ``docs`` must not become top-level packages of an install."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include == [f"{p}*" for p in PACKAGES]
    assert PYPROJECT["tool"]["setuptools"]["py-modules"] == ["cli"]
    assert PYPROJECT["project"]["scripts"] == {"engine": "cli:main"}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to list the tracked files")
def test_a_wheel_and_an_sdist_ship_what_an_install_runs_on(tmp_path: Path):
    """Build both from the tracked files (a copy: a build writes build/ and *.egg-info), and a
    wheel again from the unpacked sdist: the same files as the first (about 5 s)."""
    pytest.importorskip("setuptools")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    src = tmp_path / "src"
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)

    def build(where: Path, out: Path, sdist: bool) -> list[Path]:
        kinds = "b.build_wheel(o)" + (", b.build_sdist(o)" if sdist else "")
        code = f"import sys; from setuptools import build_meta as b; o = sys.argv[1]; {kinds}"
        subprocess.run(
            [sys.executable, "-c", code, str(out)], cwd=where, check=True, capture_output=True
        )
        return sorted(out.iterdir())

    made = build(src, tmp_path / "dist", sdist=True)
    wheel = next(p for p in made if p.suffix == ".whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {*PACKAGES, "cli.py"}  # no tests, bench or docs as packages
    assert set(package_files()) - {n for n in names} == set(), "package data missing"
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "engine = cli:main" in zipfile.ZipFile(wheel).read(entry).decode()

    sdist = next(p for p in made if p.name.endswith(".tar.gz"))
    with tarfile.open(sdist) as tar:
        tar.extractall(
            tmp_path / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {})
        )
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    for needed in ("pyproject.toml", "README.md", "cli.py", "engine/assets/demo_tiny_mass7.pt"):
        assert (unpacked / needed).is_file(), f"the sdist lacks {needed}"
    again = build(unpacked, tmp_path / "dist2", sdist=False)
    assert sorted(zipfile.ZipFile(again[0]).namelist()) == sorted(names)
