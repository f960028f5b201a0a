"""Table 4 on the terminal (engine.table4): one renderer, no row folds at 80 columns."""

import io

TABLE4 = [  # a demo report's rows, as report.json holds them
    {"source": "pseudo labels (simulated)", "iou": 36.94, "biou": 8.97, "bf1": 0.3283,
     "delta": {"iou": 0.0, "biou": 0.0, "bf1": 0.0}},
    {"source": "fused labels", "iou": 70.6, "biou": 68.46, "bf1": 0.8954,
     "delta": {"iou": 33.66, "biou": 59.49, "bf1": 0.5671},
     "delta_interval": {"iou": [23.48, 46.52], "biou": [48.75, 73.82], "bf1": [0.47, 0.67]}},
    {"source": "joint-trained model", "iou": 39.4, "biou": 22.6, "bf1": 0.666,
     "delta": {"iou": 2.46, "biou": 13.63, "bf1": 0.3377},
     "delta_interval": {"iou": [-8.28, 13.7], "biou": [5.7, 21.06], "bf1": [0.11, 0.48]}},
]  # fmt: skip


def render(table, width: int) -> list[str]:
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text().splitlines()


def test_table4_keeps_each_row_on_one_line_at_80_columns():
    """Boxed like the engine's other tables where it fits; at 80 columns the borders go, not the
    rows: "pseudo labels (simulated)" used to fold over two lines."""
    from engine.table4 import Table4

    table = Table4("Bicycle", TABLE4, marks=True)
    for width, boxed in ((120, True), (80, False)):
        lines = render(table, width)
        assert any("┃" in line for line in lines) is boxed
        assert max(len(line.rstrip()) for line in lines) <= width
        rows = [line.replace("│", " ") for line in lines if "0." in line]
        assert len(rows) == 3
        # the deltas are against the pseudo labels: their own delta cells are blank
        assert rows[0].split() == ["pseudo", "labels", "(simulated)", "36.94", "8.97", "0.3283"]
        assert rows[1].split()[-3:] == ["+33.66*", "+59.49*", "+0.5671*"]
        assert rows[2].split()[-3:] == ["+2.46", "+13.63*", "+0.3377*"]  # IoU's spans 0
    narrow = "\n".join(render(table, 60))  # narrower still: the source folds, no number is cut
    for cell in ("36.94", "0.3283", "+33.66*", "+0.5671*", "22.60", "+0.3377*"):
        assert f" {cell}" in narrow
    plain = render(Table4("Bicycle", TABLE4, against=None), 120)  # no marks unless asked
    assert "*" not in "\n".join(plain) and "+0.0000" in "\n".join(plain)


def test_a_report_s_table_takes_its_deltas_against_the_pseudo_labels_row():
    from engine.table4 import Table4

    report = {"title": "Bicycle", "table4": [{**r, "kind": r["source"].split(" (")[0]}
                                             for r in TABLE4]}  # fmt: skip
    assert Table4.of_report(report).rows[0][4:] == ["", "", ""]
    assert Table4.of_report(report).title == "Bicycle"  # the report's title heads its table
    assert Table4.of_report({"table4": report["table4"]}).title == ""
    # without pseudo labels (a report of fused labels and a model): no baseline, no deltas
    no_pseudo = {"title": "Bicycle", "table4": [{**r, "delta": {}} for r in report["table4"][1:]]}
    assert [row[4:] for row in Table4.of_report(no_pseudo).rows] == [["n/a"] * 3] * 2


def test_a_cjk_class_name_is_folded_not_cut_in_a_narrow_terminal():
    """CJK has no space to wrap at: at 60 columns the per-class table (evaluate, info) cut
    ``电动自行车和摩托车以及其他两轮车辆`` to ``电动自行车和摩托车以…`` where an English name
    wraps whole; and fuse's report cut the class in its column head. Folded whole now."""
    from pathlib import Path

    from annotations.taxonomy import MASS13K
    from engine.fusion.report import report_table
    from engine.fusion.rules import ClassStats
    from engine.fusion.run import FuseResult
    from engine.table4 import class_scores_table

    name = "电动自行车和摩托车以及其他两轮车辆"
    scores = {"classes": [{"id": 7, "name": name, "iou": 0.5, "biou": 0.25, "bf1": 0.125}]}
    lines = render(class_scores_table("scores", scores), 50)
    cells = [ln.split("│")[2].strip() for ln in lines if ln.startswith("│")]
    assert "…" not in "\n".join(lines) and "".join(cells).startswith(name)
    taxonomy = MASS13K.with_new_class(name).with_new_class("Car")
    report = {name: ClassStats(), "Car": ClassStats()}
    lines = render(report_table(FuseResult(Path("f"), taxonomy, ("train",), 1, 1, 0, report)), 80)
    head = "".join(ln.split("┃")[2].strip() for ln in lines[:6] if ln.startswith("┃"))
    assert "…" not in "\n".join(lines[:6]) and head.startswith(name)
