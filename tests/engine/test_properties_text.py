"""Property-based tests of the Markdown helpers of engine/text.py: any name put through
``md_cell`` renders as typed in a table cell (CommonMark with GitHub's tables and
strikethrough, through markdown-it-py, which rich brings), and ``md_code`` as one code span.

Deterministic (``derandomize``); ``HYPOTHESIS_PROFILE=thorough`` runs more examples
(tests/conftest.py)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.text import md_cell, md_code, md_link

markdown_it = pytest.importorskip("markdown_it")

MD = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
# names with every sign Markdown reads, letters, digits and spaces, in runs as Markdown pairs them
SIGNS = list("ab1 _*`[]()<>&|\\#!~=-+.:;'\"/{}^$%") + ["~~", "**", "__", "``", "](", "&amp;", "<b>"]
NAMES = st.lists(st.sampled_from(SIGNS), min_size=1, max_size=8).map("".join)


def _cell(markdown: str):
    tokens = MD.parse(f"| h |\n|---|\n| {markdown} |\n")
    cells = [t for t in tokens if t.type == "inline" and t.map and t.map[0] == 2]
    assert len(cells) == 1, tokens
    return cells[0].children or []


@given(NAMES)
@example("~~a~~")  # what the thorough profile shrank a failure to (struck out before the fix)
def test_a_cell_renders_as_typed(name) -> None:
    children = _cell(md_cell(name))
    assert [t.type for t in children if t.type != "text"] == []
    assert "".join(t.content for t in children) == name.strip()


@given(NAMES)
@example(" a ")  # shown as "a" before the fix
def test_inline_code_holds_the_path(name) -> None:
    tokens = MD.parse(md_code(name))
    children = tokens[1].children if len(tokens) > 1 else []
    spans = [t for t in children if t.type == "code_inline"]
    assert len(spans) == 1 and len(children) == 1, children
    assert spans[0].content == name


PATHS = st.lists(
    st.sampled_from(["a", "é", " ", "#", "?", "%", "%20", "(", ")", "<", ">", "[", "]", "/", "\\",
                     "&", "'", '"', "`", "~", ".", "_", "*"]),
    min_size=1, max_size=8,
).map("".join)  # fmt: skip


@given(PATHS)
def test_a_link_leads_to_the_file(path) -> None:
    """``md_link``: the destination a Markdown reader follows is the file's relative path
    (``\\`` read as ``/``)."""
    from urllib.parse import unquote

    tokens = MD.parse(f"[x]({md_link(path)})")
    links = [t for t in tokens[1].children if t.type == "link_open"]
    assert len(links) == 1, tokens[1].children
    assert unquote(links[0].attrs["href"]) == path.replace("\\", "/")
