import io

from engine.text import counted


def test_counted_agrees_with_the_number():
    assert counted(0, "image") == "0 images"
    assert counted(1, "image") == "1 image"
    assert counted(2, "pseudo label") == "2 pseudo labels"
    assert counted(1, "class", "classes") == "1 class"
    assert counted(3, "class", "classes") == "3 classes"


def test_joined() -> None:
    from engine.text import joined

    assert joined(["Bicycle"]) == "Bicycle"
    assert joined(["Bicycle", "Car"]) == "Bicycle and Car"
    assert joined({"Bicycle": 1, "Car": 2, "Pole": 3}) == "Bicycle, Car and Pole"


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
    from engine.text import Table4

    table = Table4("Bicycle", TABLE4, marks=True)
    for width, boxed in ((120, True), (80, False)):
        lines = render(table, width)
        assert any("┃" in line for line in lines) is boxed
        assert max(len(line.rstrip()) for line in lines) <= width
        rows = [line.replace("│", " ") for line in lines if "0." in line]
        assert len(rows) == 3
        assert "pseudo labels (simulated)" in rows[0] and "+0.0000" in rows[0]
        assert "*" not in rows[0]  # the pseudo labels' own delta has no interval
        assert rows[1].split()[-3:] == ["+33.66*", "+59.49*", "+0.5671*"]
        assert rows[2].split()[-3:] == ["+2.46", "+13.63*", "+0.3377*"]  # IoU's spans 0
    narrow = "\n".join(render(table, 60))  # narrower still: the source folds, no number is cut
    for cell in ("36.94", "0.3283", "+33.66*", "+0.5671*", "22.60", "+0.3377*"):
        assert f" {cell}" in narrow
    assert "*" not in "\n".join(render(Table4("Bicycle", TABLE4), 120))  # marks only if asked
