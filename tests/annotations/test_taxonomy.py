"""Taxonomy: the MaSS13K base classes, new classes, lookups, JSON round trips, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotations.taxonomy import MASS13K, ClassInfo, Taxonomy

RELEASE_PALETTE = [(0, 0, 0), (255, 0, 0), (64, 34, 64), (0, 255, 0), (93, 64, 0), (0, 0, 255),
                   (0, 255, 255)]  # fmt: skip


def test_mass13k_ids_names_palette():
    assert MASS13K.ids == list(range(7))
    assert MASS13K.names == ["Others", "Human", "Building", "Vegetation", "Ground", "Sky", "Water"]
    assert [c.color for c in MASS13K] == RELEASE_PALETTE
    assert all(c.parent is None for c in MASS13K)
    lut = MASS13K.palette()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert [tuple(v) for v in lut[:7].tolist()] == RELEASE_PALETTE
    assert tuple(lut[255]) == (255, 255, 255) and tuple(lut[7]) == (255, 255, 255)
    assert Taxonomy.mass13k() is MASS13K


def test_with_new_class_takes_next_id_parent_and_a_free_colour():
    t = MASS13K.with_new_class("Bicycle")
    assert t.num_classes == 8 and MASS13K.num_classes == 7  # the original is unchanged
    bike = t.get("bicycle")
    assert (bike.id, bike.name, bike.parent) == (7, "Bicycle", 0)
    assert bike.color not in RELEASE_PALETTE
    t2 = t.with_new_class("Car", parent="others").with_new_class("Bench", parent=2)
    assert t2.id_of("car") == 8 and t2.get("Bench").parent == 2
    assert len({c.color for c in t2}) == t2.num_classes  # all colours distinct
    assert [c.name for c in t2.children(0)] == ["Bicycle", "Car"]
    assert t.with_new_class("Car", color=(1, 2, 3)).get("car").color == (1, 2, 3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: MASS13K.with_new_class("sky"), "already in the taxonomy"),
        (lambda: MASS13K.with_new_class(" Human "), "already in the taxonomy"),
        (lambda: MASS13K.with_new_class("Bike", parent="Road"), "known classes: Others, Human"),
        (lambda: MASS13K.with_new_class("Bike", parent=9), "not in this taxonomy"),
        (lambda: MASS13K.with_new_class("Bike", color=(0, 0, 300)), "color must be 3 values"),
    ],
)
def test_with_new_class_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_lookup_is_case_insensitive_and_unknown_lists_known():
    assert MASS13K.id_of("VEGETATION") == 3 and MASS13K.get("sKy").id == 5
    assert "water" in MASS13K and "car" not in MASS13K and 3 not in MASS13K
    with pytest.raises(ValueError) as e:
        MASS13K.get("Road")
    msg = str(e.value)
    assert "'Road'" in msg and all(n in msg for n in MASS13K.names)
    with pytest.raises(ValueError, match="ids 0..6"):
        MASS13K[7]


def test_json_round_trip(tmp_path):
    t = MASS13K.with_new_class("Bicycle").with_new_class("Car", parent="Others")
    path = t.save(tmp_path / "sub" / "taxonomy.json")
    assert Taxonomy.load(path) == t
    data = json.loads(path.read_text())
    assert data["classes"][7] == {"id": 7, "name": "Bicycle", "color": list(t[7].color),
                                  "parent": 0}  # fmt: skip
    assert Taxonomy.from_dict(t.to_dict()) == t


def _bad(**change):
    d = MASS13K.to_dict()
    d["classes"][1].update(change)
    return d


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected an object with a 'classes' list"),
        ({"classes": "x"}, "expected an object with a 'classes' list"),
        ({**MASS13K.to_dict(), "version": 2}, r"unknown keys \['version'\]"),
        (_bad(colour=[1, 2, 3]), r"classes\[1\] has unknown keys \['colour'\]"),
        ({"classes": [{"id": 0, "name": "A"}]}, r"lacks \['color'\]"),
        ({"classes": ["A"]}, r"classes\[0\] must be an object"),
        (_bad(id=3), "class ids must be 0..6 in order"),
        (_bad(name="others"), "appears twice"),
        (_bad(name="  "), "non-empty name"),
        (_bad(color=[1, 2]), "color must be 3 values"),
        (_bad(color="red"), r"classes\[1\]"),
        (_bad(parent=1), "parent id 1 is not another class"),
        (_bad(parent=12), "parent id 12 is not another class"),
        ({"classes": []}, "at least one class"),
    ],
)
def test_invalid_taxonomies(data, message):
    with pytest.raises(ValueError, match=message):
        Taxonomy.from_dict(data, source="t.json")


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json: taxonomy file not found"):
        Taxonomy.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        Taxonomy.load(bad)
    bad.write_text(json.dumps({"classes": [{"id": 0, "name": "A", "color": [0, 0, 0], "x": 1}]}))
    with pytest.raises(ValueError, match=r"bad.json: classes\[0\] has unknown keys"):
        Taxonomy.load(bad)


def test_class_info_validation():
    with pytest.raises(ValueError, match="0..254"):
        ClassInfo(255, "X", (0, 0, 0))
    assert ClassInfo(3, "X", (1.0, 2, 3)).color == (1, 2, 3)


def test_a_full_taxonomy_refuses_a_new_class_saying_why() -> None:
    t = Taxonomy(tuple(ClassInfo(i, f"C{i}", (i, 0, 0)) for i in range(254)))
    assert t.with_new_class("Bicycle", parent=0)[254].name == "Bicycle"  # id 254: the last
    with pytest.raises(ValueError) as e:
        t.with_new_class("Bicycle", parent=0).with_new_class("Car", parent=0)
    assert str(e.value) == (
        "no class id left for new class 'Car': the taxonomy has 255 classes (ids 0..254), "
        "the most uint8 label maps hold (255 is ignore)"
    )  # before: "class id must be in 0..254, got 255 for 'Car'"


def test_an_unknown_name_lists_20_classes_of_a_large_taxonomy() -> None:
    """The error listed all 254 names of a large taxonomy: a 4 KB line."""
    t = Taxonomy(tuple(ClassInfo(i, f"C{i}", (i, 0, 0)) for i in range(254)))
    with pytest.raises(ValueError) as e:
        t.get("Others")
    names = ", ".join(f"C{i}" for i in range(20))
    assert str(e.value) == f"unknown class 'Others'; known classes: {names}, ... (254 in all)"
    assert MASS13K.listed() == ", ".join(MASS13K.names)  # 20 or fewer: all of them


def test_ancestors_and_base_of() -> None:
    t = MASS13K.with_new_class("Bicycle").with_new_class("Spoke", parent="Bicycle")
    assert t.ancestors(0) == [] and t.base_of(0).name == "Others"
    assert t.ancestors(7) == [0] and t.base_of(7).name == "Others"
    assert t.ancestors(8) == [7, 0] and t.base_of(8).name == "Others"


def test_a_name_with_a_decomposed_accent_is_the_same_class():
    """``Vélo`` typed (é, NFC) and ``Vélo`` as macOS file names and some tools write it (e and a
    combining accent, NFD) look the same and were two classes: a COCO category of the one was
    'no category named' the other, the error listing a name that looked like the one given."""
    import unicodedata

    from annotations.interchange import label_role

    typed, decomposed = "Vélo", unicodedata.normalize("NFD", "Vélo")
    assert typed != decomposed
    tax = MASS13K.with_new_class(typed)
    assert decomposed in tax and tax.id_of(decomposed.upper()) == 7
    assert label_role(decomposed, typed) == 1 and label_role(typed.upper(), decomposed) == 1
    with pytest.raises(ValueError, match="already in the taxonomy"):
        MASS13K.with_new_class(typed).with_new_class(decomposed)


def test_the_releases_class_names_are_named_for_what_they_are_here():
    """The release calls 0, 1 and 3 background, person and tree (its mmseg/datasets/mass13k.py);
    typed so, the error says which class they are here (not read as aliases)."""
    for theirs, ours in (("background", "Others"), ("Person", "Human"), ("tree", "Vegetation")):
        with pytest.raises(ValueError) as e:
            MASS13K.get(theirs)
        assert str(e.value).endswith(f"; the MaSS13K release's {theirs!r} is {ours} here")
    with pytest.raises(ValueError) as e:  # another name: no hint
        MASS13K.get("Vehicles")
    assert str(e.value).endswith("Sky, Water")
    assert MASS13K.release_hint("sky") == ""  # the same name in both: never unknown


def test_a_name_of_digits_is_one_int_reads_as_a_number():
    """``--class ²`` was refused as "a name made of digits" (``str.isdigit``) while ``engine
    compare --class ²`` failed with ``invalid literal for int()``: int reads decimal digits of
    any script (``٣`` is 3, as compare takes it), not superscripts. One predicate for both."""
    from annotations.taxonomy import MASS13K, check_class_name
    from engine.compare import class_by_name

    assert check_class_name("²") == "²"
    with pytest.raises(ValueError, match="reads a number as a class id"):
        check_class_name("٣")
    assert class_by_name("²", MASS13K, "t") == "²"
    assert class_by_name("٣", MASS13K, "t") == MASS13K[3].name
