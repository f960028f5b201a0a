import pytest

from engine.text import counted


def test_counted_agrees_with_the_number():
    assert counted(0, "image") == "0 images"
    assert counted(1, "image") == "1 image"
    assert counted(2, "pseudo label") == "2 pseudo labels"
    assert counted(1, "class", "classes") == "1 class"
    assert counted(3, "class", "classes") == "3 classes"


def test_counted_separates_thousands_as_tables_do(tmp_path):
    """``engine info`` printed a LabelMe file's labels as ``car │ 21000 shapes`` next to
    ``shapes │ polygon 21,000``: one style for every count."""
    import json

    from typer.testing import CliRunner

    from cli import app

    assert counted(21000, "shape") == "21,000 shapes"
    assert counted(1234567, "image") == "1,234,567 images"
    shapes = [{"label": "car", "points": [[1, 1], [5, 1], [5, 5]], "shape_type": "polygon"}]
    doc = {"shapes": shapes * 1500, "imagePath": "a.jpg", "imageHeight": 48, "imageWidth": 64}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    res = CliRunner().invoke(app, ["info", str(tmp_path / "a.json")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "│ car │ 1,500 shapes │" in text and "│ shapes │ polygon 1,500 │" in text


def test_joined() -> None:
    from engine.text import joined

    assert joined(["Bicycle"]) == "Bicycle"
    assert joined(["Bicycle", "Car"]) == "Bicycle and Car"
    assert joined({"Bicycle": 1, "Car": 2, "Pole": 3}) == "Bicycle, Car and Pole"


def test_few() -> None:
    """The first few names (a path by its file name); with ``total`` how many in all, as the
    dataset and fusion errors name unpaired files."""
    from pathlib import Path

    from engine.text import few

    assert few(["a", "b"]) == "a, b"
    assert few([Path("x/a.png"), Path("x/b.png"), Path("c.png"), Path("d.png")]) == (
        "a.png, b.png, c.png, ..."
    )
    assert few(["a", "b", "c", "d"], 3, total=True) == "a, b, c, ... (4 in all)"
    assert few(["a", "b", "c"], 3, total=True) == "a, b, c"


def test_markdown_names_render_as_typed():
    # a class or source name with Markdown's signs rendered as something else (before only '|'
    # was escaped): 'Bi<b>x' as 'Bix', '*x*' in italics, a backtick opening code
    markdown_it = pytest.importorskip("markdown_it")
    from html import unescape

    from engine.text import md_cell, md_code, md_text

    name = 'Bi<b>x & "co" | *x* _y_ [z](w) `v` \\ a_b'
    for md in (md_text(name), md_cell(name)):
        html = markdown_it.MarkdownIt("commonmark").render(md).strip()
        assert unescape(html.removeprefix("<p>").removesuffix("</p>")) == name
    table = f"| name | IoU |\n|---|---|\n| {md_cell(name)} | 1 |\n"
    cells = markdown_it.MarkdownIt("commonmark").enable("table").render(table).count("<td>")
    assert cells == 2
    assert md_text("synth_test_0001") == "synth_test_0001"  # inside a word: no emphasis
    assert md_text("a\nb") == "a b"  # a line break would end a table row
    for path in ("runs/sub", "sub `1`", "a``b"):
        html = markdown_it.MarkdownIt("commonmark").render(md_code(path))
        assert unescape(html.split("<code>")[1].split("</code>")[0]) == path


def test_markdown_strikethrough_and_spaced_paths_render_as_typed():
    # GitHub renders report.md with strikethrough: a name 'a ~~b~~' showed 'b' struck out; a
    # path with a space at both ends lost them in its code span (CommonMark strips one each)
    markdown_it = pytest.importorskip("markdown_it")
    from html import unescape

    from engine.text import md_cell, md_code

    md = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    for name in ("a ~~b~~", "x~1~y"):
        html = md.render(f"| h |\n|---|\n| {md_cell(name)} |\n")
        assert "<s>" not in html and unescape(html.split("<td>")[1].split("</td>")[0]) == name
    for path in (" a ", " `b` ", "   "):
        html = md.render(md_code(path))
        assert unescape(html.split("<code>")[1].split("</code>")[0]) == path
