"""Reads whose errors are one line naming the file: bytes, text (UTF-8 with or without a
byte-order mark, UTF-16 with one), JSON, JSON lines (a torn last line skipped) and YAML, read
with YAML 1.2's plain scalars, unique keys and a bounded expanded size."""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any

import yaml

from annotations.fileio.errors import first_line

log = logging.getLogger(__name__)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines log, skipping a torn last line left by a killed writer."""
    path = Path(path)
    try:
        data = read_bytes(path, "log")
    except FileNotFoundError:
        return []  # no log yet
    records: list[dict] = []
    lines = _decode(data, path).splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break  # torn final line from an interrupted append
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({e.msg})") from None
    return records


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of ``path``; ``what`` names the file in the errors ("taxonomy file").

    Raises:
        FileNotFoundError: ``"{path}: {what} not found"``.
        ValueError: ``path`` is a folder, cannot be read, or is not UTF-8 text.
    """
    return _decode(read_bytes(path, what), path)


def read_bytes(path: str | os.PathLike, what: str = "file") -> bytes:
    """The bytes of ``path``, with :func:`read_text`'s errors for a missing or unreadable file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not the {what}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        return path.read_bytes()
    except OSError as e:
        raise ValueError(
            f"{path}: cannot read the {what} ({e.strerror or first_line(e)})"
        ) from None


def _decode(data: bytes, path: str | os.PathLike) -> str:
    """The text of a file's ``data``: UTF-8, with or without the byte-order mark Notepad and
    Excel's "CSV UTF-8" write (before, a JSON file with one was "not valid JSON", and the first
    line of a names file or label map kept it: ``\ufeffperson``, a class no file named), or
    UTF-16 with its byte-order mark (what Windows PowerShell's ``>`` and ``Out-File`` write).
    Anything else is refused naming the line of the first byte that is not UTF-8 (a Latin-1
    ``é``) and what to do; before, only its offset was said."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ValueError(
                f"{path}: not UTF-8 text (it starts with a UTF-16 byte-order mark but is not "
                "UTF-16 text either)"
            ) from None
    elif len(data) >= 2 and (data[0] == 0) != (data[1] == 0):  # "a\0b\0": UTF-16 without a mark
        raise ValueError(f"{path}: UTF-16 text without a byte-order mark: save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        text = b"\0" not in data[:4096]  # a text file in another encoding, not a binary one
        raise ValueError(
            f"{path}: not UTF-8 text (invalid byte at offset {e.start}) on line {line}"
            + (": save it as UTF-8 (it looks like Latin-1 or Windows-1252)" if text else "")
        ) from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """The parsed JSON of ``path``, with :func:`read_text`'s errors and a one-line parse error."""
    return parse_json(read_bytes(path, what), path)


def parse_json(data: str | bytes, path: str | os.PathLike) -> Any:
    """Parse the JSON ``data`` read from ``path`` (named in the errors): for a caller that needs
    the bytes too (to hash them, say)."""
    text = _decode(data, path) if isinstance(data, bytes) else data
    if not text.strip():
        raise ValueError(f"{path}: the file is empty (expected JSON)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        # e.msg may end in "at" ("Unterminated string starting at"): one "at" before the line
        msg = e.msg.removesuffix(" at")
        raise ValueError(f"{path}: not valid JSON ({msg} at line {e.lineno})") from None
    except RecursionError:  # "[[[[...": Python's parser recurses per level
        raise ValueError(
            f"{path}: not valid JSON for this reader (nested too deeply: over "
            f"{sys.getrecursionlimit()} levels)"
        ) from None
    except ValueError as e:  # Python's limit on an integer's digits (its advice is no user's)
        why = f"a number of over {sys.get_int_max_str_digits()} digits"
        if "integer string conversion" not in str(e):
            raise
        raise ValueError(f"{path}: not valid JSON for this reader ({why})") from None


# Blanks ending a line with a tab among them, as an editor leaves them (`iters: 5<TAB>`): YAML
# allows them, PyYAML refused the file ("found character '\t' that cannot start any token")
_TRAILING_TABS = re.compile(r"[ \t]*\t[ \t]*(?=\r?$)", re.MULTILINE)


def read_yaml(path: str | os.PathLike, what: str = "YAML file") -> Any:
    """The parsed YAML of ``path`` (``yaml.safe_load``: None for an empty file), with
    :func:`read_text`'s errors and a one-line parse error."""
    return parse_yaml(read_text(path, what), path)


def parse_yaml(text: str, path: str | os.PathLike) -> Any:
    """:func:`read_yaml` of ``text``, read from ``path`` (named in the parse error): for a
    caller that reads the text as something else too (``engine info`` on a ``.txt`` that is a
    dataset spec or a list of image names), once."""
    text = _TRAILING_TABS.sub("", text)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: cannot parse YAML ({_yaml_problem(e)})") from None
    except RecursionError:  # "[[[[...": PyYAML's composer recurses per level, as json's parser
        raise ValueError(
            f"{path}: cannot parse YAML (nested too deeply for this reader: PyYAML recurses a few "
            "times per level, under Python's limit of about 1000)"
        ) from None


# YAML 1.1's other booleans: words to read_yaml (YAML 1.2), still booleans where a value is a
# switch (a training config's `amp: yes`, `--backend-option fill_holes=no`)
YAML11_BOOLS = {"yes": True, "on": True, "no": False, "off": False}


def yaml_scalar(text: str) -> Any:
    """A command-line ``KEY=VALUE``'s value read as :func:`read_yaml` reads a value
    (``1e-1`` a number, ``010`` ten), with :data:`YAML11_BOOLS` booleans."""
    try:
        value = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except RecursionError:  # "[[[[...": a parse error to the caller, as a malformed value
        raise yaml.YAMLError("nested too deeply for this reader") from None
    return YAML11_BOOLS.get(value.lower(), value) if isinstance(value, str) else value


# Values a YAML file may hold once its aliases are expanded: a config, spec or names file holds
# thousands; a "billion laughs" file of nine nested aliases, 300 bytes, holds 10^9, which
# PyYAML builds as shared lists but an error's repr of them or a JSON record writes out whole.
YAML_MAX_VALUES = 1_000_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing a key given twice in one mapping: PyYAML keeps the
    last silently, so of ``iters: 5`` and, further down, ``iters: 6`` one was dropped unsaid.
    It also refuses aliases expanding to over :data:`YAML_MAX_VALUES` values, or into
    themselves, before anything is built (``engine info spec.yaml`` hung in the repr of one)."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expanded_size(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base": keys it overrides
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, typing.Hashable):  # the loader's own error follows
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (also at line {seen[key]})",
                    key_node.start_mark,
                )  # fmt: skip
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# YAML 1.2's plain scalars rather than 1.1's, in every file a user writes (a class spec, a
# training config, a dataset spec, a YOLO data.yaml): PyYAML reads 1.1, where `no`, `on`, `off`
# and `yes` are booleans (a prompt list `[bike, on]` read as 'bike', 'True'; a class `No:` as
# False), `010` is octal 8 (`seed: 010`) and `1:30` base 60, while `1e-3` (no dot) is a string.
# Here `true` and `false` alone are booleans, integers are decimal (`0x`, `0o`, `0b` as written)
# with `_` allowed, and a number with an exponent is a float.
_YAML_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_YAML_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|[-+]?0x[0-9a-fA-F_]+|[-+]?0o[0-7_]+|[-+]?0b[01_]+)$")
_YAML_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_YAML_NUMBERS = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML_NUMBERS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _rx, _first in (
    ("tag:yaml.org,2002:bool", _YAML_BOOL, "tTfF"),
    ("tag:yaml.org,2002:int", _YAML_INT, "-+0123456789"),
    ("tag:yaml.org,2002:float", _YAML_FLOAT, "-+0123456789."),
):
    _UniqueKeyLoader.add_implicit_resolver(_tag, _rx, list(_first))


def _yaml_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """An integer as YAML 1.2 reads it: ``010`` is 10 (1.1's constructor: octal 8)."""
    text = str(loader.construct_scalar(node)).replace("_", "")
    prefixed = text.lstrip("+-")[:2].lower() in ("0x", "0o", "0b")
    return int(text, 0 if prefixed else 10)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _yaml_int)


def _check_expanded_size(root: yaml.Node) -> None:
    """``yaml.YAMLError`` when the document under ``root`` holds over :data:`YAML_MAX_VALUES`
    values with its aliases expanded, or an alias inside the value it names. Each node is
    visited once (aliases are shared nodes), so the check takes the file's size in time."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            children = _yaml_children(node)
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > YAML_MAX_VALUES:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"its aliases expand to over {YAML_MAX_VALUES:,} values (a 'billion laughs' "
                    "file?)",
                    node.start_mark,
                )  # fmt: skip
            continue
        if id(node) in sizes:
            if sizes[id(node)] < 0:  # entered, not finished: the node holds itself
                raise yaml.constructor.ConstructorError(
                    None, None, "an alias refers to a value that holds it", node.start_mark
                )
            continue
        sizes[id(node)] = -1
        stack.append((node, True))
        stack.extend((c, False) for c in _yaml_children(node))


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _yaml_problem(e: yaml.YAMLError) -> str:
    """What is wrong and where (``expected ',' or ']' ... at line 2, column 1``): the first line
    of a YAML error is its context ("while parsing a flow sequence"), not the problem."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        # a tab indenting a line or before a value, as an editor set to tabs writes it
        tab = "; YAML takes spaces there, not a tab" if "'\\t'" in e.problem else ""
        return f"{e.problem}{where}{tab}"
    return first_line(e)
