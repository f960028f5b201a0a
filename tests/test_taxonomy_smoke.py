from annotations import MASS13K


def test_mass13k_has_seven_classes():
    assert MASS13K.names == ["Others", "Human", "Building", "Vegetation", "Ground", "Sky", "Water"]
    t = MASS13K.with_new_class("Bicycle")
    assert t.id_of("bicycle") == 7 and t.get("Bicycle").parent == 0
