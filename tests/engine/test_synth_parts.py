"""The synthetic scenes' parts, one at a time (engine.synth's canvas, scene layout, objects and
writer): the documented contracts tests/engine/test_synth.py's whole-dataset invariants do not
pin (docs/foundation.md "engine synth")."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("at", [(9, 0), (0, 9), (-5, 0), (0, -5), (8, 8)], ids=str)
def test_a_stroke_wholly_off_the_canvas_paints_and_shades_nothing(at):
    """Parts outside the canvas are dropped (Canvas.paint's contract), so a stroke wholly
    outside it changes nothing, also one overlapping the canvas in one direction only
    (objects are placed up to 5% past either side: engine.synth.scene._objects)."""
    from engine.synth.canvas import Canvas

    canvas = Canvas(8, 8)
    before = canvas.image.copy(), canvas.label.copy(), canvas.owner.copy()
    obj = canvas.new_object("bicycle")
    canvas.paint(np.ones((4, 4), bool), (200.0, 10.0, 10.0), 3, *at, obj=obj)
    canvas.shade(np.ones((4, 4), np.float32), 0.5, *at)
    for a, b in zip(before, (canvas.image, canvas.label, canvas.owner), strict=True):
        np.testing.assert_array_equal(a, b)
    assert canvas.instance_map("bicycle").max() == 0  # an object no pixel shows: no id


def test_a_stroke_partly_off_the_canvas_paints_its_visible_part_only():
    """The mask's top-left corner at (x0, y0): its pixels inside the canvas are painted with
    the label, the owner and the colour, exactly those (a 4x4 stroke at (-2, 5) on 8x8 covers
    columns 0-1 and rows 5-7)."""
    from engine.synth.canvas import Canvas

    canvas = Canvas(8, 8)
    obj = canvas.new_object("car")
    mask = np.ones((4, 4), bool)
    mask[0, 3] = False  # canvas row 5, column 1: a hole of the visible part, left unpainted
    mask[1, 0] = False  # column -2: off the canvas
    canvas.paint(mask, (200.0, 10.0, 10.0), 3, -2, 5, obj=obj)
    want = np.zeros((8, 8), bool)
    want[5:8, 0:2] = mask[0:3, 2:4]
    np.testing.assert_array_equal(canvas.label == 3, want)
    np.testing.assert_array_equal(canvas.owner == obj, want)
    np.testing.assert_array_equal(canvas.image[..., 0] == 200, want)
    np.testing.assert_array_equal(canvas.instance_map("car"), want.astype(np.uint16))
    canvas.shade(np.full((4, 4), 1.0, np.float32), 0.5, -2, 5)
    np.testing.assert_array_equal(canvas.image[..., 0] == 100, want)  # darkened where it lies


def test_shade_darkens_the_image_by_its_soft_weight_and_keeps_the_labels():
    """A cast shadow (Canvas.shade): the image times ``1 - weight * (1 - factor)``, ``factor``
    the darkest multiplier (weight 1), nothing where the weight is 0; labels and owners stay."""
    from engine.synth.canvas import Canvas

    canvas = Canvas(4, 2)
    canvas.paint(np.ones((2, 4), bool), (100.0, 100.0, 100.0), 4)
    label, owner = canvas.label.copy(), canvas.owner.copy()
    weight = np.array([[0.0, 0.5, 1.0, 1.0]], np.float32)
    canvas.shade(weight, 0.4, 0, 1)  # the bottom row only
    np.testing.assert_allclose(canvas.image[0], 100.0)
    np.testing.assert_allclose(canvas.image[1, :, 0], [100.0, 70.0, 40.0, 40.0], rtol=1e-6)
    np.testing.assert_array_equal(canvas.label, label)
    np.testing.assert_array_equal(canvas.owner, owner)


def _placed(monkeypatch, scenes: int, size=(128, 96)) -> list[dict]:
    """Render ``scenes`` scenes of the train split, recording per scene its horizon, its lowest
    shore row (the horizon where there is no water) and every object drawn, in drawing order,
    as ``(kind, base row)``."""
    import engine.synth.scene as scene

    record: list[dict] = []

    def ground(canvas, rng, horizon, unit, _f=scene._ground):
        record[-1].update(horizon=horizon, shore=horizon)
        return _f(canvas, rng, horizon, unit)

    def water(canvas, rng, horizon, _f=scene._water):
        record[-1]["shore"] = _f(canvas, rng, horizon)
        return record[-1]["shore"]

    monkeypatch.setattr(scene, "_ground", ground)
    monkeypatch.setattr(scene, "_water", water)
    for kind in ("bicycle", "car", "human", "tree", "other"):

        def draw(canvas, rng, x, yb, *args, _kind=kind, _f=getattr(scene, f"draw_{kind}")):
            record[-1]["objects"].append((_kind, yb))
            return _f(canvas, rng, x, yb, *args)

        monkeypatch.setattr(scene, f"draw_{kind}", draw)
    for i in range(scenes):
        record.append({"objects": []})
        scene.render_scene(0, "train", i, size)
    return record


def test_objects_per_scene_are_the_documented_counts(monkeypatch):
    """docs/foundation.md: per image 0-4 bicycles, 0-3 cars, 0-3 people, 0-3 trees and 1-4
    other objects are drawn (some may be hidden by nearer ones); over 40 scenes each count
    reaches both ends of its range."""
    seen: dict[str, set[int]] = {k: set() for k in ("bicycle", "car", "human", "tree", "other")}
    for s in _placed(monkeypatch, 40):
        kinds = [k for k, _ in s["objects"]]
        for kind, counts in seen.items():
            counts.add(kinds.count(kind))
    ranges = {kind: (min(c), max(c)) for kind, c in seen.items()}
    assert ranges == {"bicycle": (0, 4), "car": (0, 3), "human": (0, 3), "tree": (0, 3),
                      "other": (1, 4)}  # fmt: skip


def test_objects_stand_on_the_ground_below_the_shore_and_are_drawn_far_to_near(monkeypatch):
    """Objects stand on the ground (below the horizon, and below a lake's shore where there
    is one), and are painted far to near: their base rows never go up in drawing order."""
    h = 96
    record = _placed(monkeypatch, 24, (128, h))
    assert any(s["shore"] > s["horizon"] for s in record)  # water in some scenes
    for s in record:
        rows = [yb for _, yb in s["objects"]]
        assert rows == sorted(rows), s
        assert all(s["shore"] < yb <= h for yb in rows), s


@pytest.mark.parametrize(("scale", "octaves"), [(8.0, 3), (2.0, 3), (20.0, 4), (0.5, 1)])
def test_noise_is_about_zero_mean_and_unit_spread(scale, octaves):
    """textures.noise: ``(h, w) float32``, about zero mean and unit spread whatever its
    octaves (their amplitudes are normalised by their sum), so callers' amplitudes are in
    pixel values."""
    from engine.synth.textures import noise

    n = noise(np.random.default_rng(0), 96, 128, scale, octaves)
    assert n.shape == (96, 128) and n.dtype == np.float32
    assert abs(float(n.mean())) < 0.2
    assert 0.3 < float(n.std()) < 1.2


def test_shadings_fall_off_from_one_end_to_the_other():
    """vertical_shading ``(h, 1, 1)`` from ``top`` to ``bottom``, horizontal_shading ``(1, w, 1)``
    from ``left`` to ``right``, linearly; one row or column is the first end."""
    from engine.synth.textures import horizontal_shading, vertical_shading

    v, hz = vertical_shading(5, 1.2, 0.8), horizontal_shading(3, 0.9, 1.1)
    assert v.shape == (5, 1, 1) and hz.shape == (1, 3, 1)
    np.testing.assert_allclose(v.ravel(), [1.2, 1.1, 1.0, 0.9, 0.8], rtol=1e-6)
    np.testing.assert_allclose(hz.ravel(), [0.9, 1.0, 1.1], rtol=1e-6)
    assert vertical_shading(1, 1.2, 0.8).ravel().tolist() == pytest.approx([1.2])
    assert horizontal_shading(0, 0.9, 1.1).shape == (1, 1, 1)


def test_instance_maps_are_16_bit_pngs_and_other_arrays_are_refused():
    """new_class_instances/ holds ``(H, W) uint16`` PNGs: ids past 255 survive the round trip;
    an 8-bit or a 3-D array is refused, naming what it got."""
    import cv2

    from engine.synth.writer import encode_png16

    ids = np.array([[0, 1], [256, 65535]], np.uint16)
    back = cv2.imdecode(np.frombuffer(encode_png16(ids), np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.tolist() == ids.tolist()
    for bad, said in ((ids.astype(np.uint8), r"\(2, 2\) uint8"),
                      (np.zeros((2, 2, 1), np.uint16), r"\(2, 2, 1\) uint16")):  # fmt: skip
        with pytest.raises(ValueError, match=rf"^expected \(H, W\) uint16, got {said}$"):
            encode_png16(bad)


def test_the_record_read_is_the_unfinished_one_first_and_must_be_an_object(tmp_path):
    import json

    from engine.synth import recorded

    assert recorded(tmp_path) is None
    (tmp_path / "synth.json").write_text(json.dumps({"config": {"seed": 1}}))
    assert recorded(tmp_path) == (tmp_path / "synth.json", {"config": {"seed": 1}})
    (tmp_path / "synth.partial.json").write_text(json.dumps({"config": {"seed": 2}}))
    assert recorded(tmp_path)[1] == {"config": {"seed": 2}}  # a run under way or stopped
    (tmp_path / "synth.partial.json").write_text("[1, 2]")
    with pytest.raises(ValueError) as e:
        recorded(tmp_path)
    assert str(e.value) == (
        f"{tmp_path / 'synth.partial.json'}: not a generator record (expected a JSON object)"
    )


def test_scenes_of_another_generator_version_or_size_on_disk_are_drawn_again(tmp_path, monkeypatch):
    """A scene is kept only when drawn by this generator version (synth.json's ``version``)
    with the same settings, and only when its instance maps read back as ``(H, W) uint16`` of
    the configured size; otherwise it is drawn again and the run says why."""
    import json

    import engine.synth.writer as writer
    from engine.synth import GENERATOR_VERSION, SynthConfig, generate

    drawn: list[tuple[str, int]] = []

    def render(seed, split, index, size, _f=writer.render_scene):
        drawn.append((split, index))
        return _f(seed, split, index, size)

    monkeypatch.setattr(writer, "render_scene", render)
    out = tmp_path / "d"
    cfg = SynthConfig(out=out, train=2, val=0, test=0, size=(96, 64))
    generate(cfg, progress=False)
    record = json.loads((out / "synth.json").read_text())
    (out / "synth.json").write_text(json.dumps({**record, "version": "0"}))
    drawn.clear()
    replaced: list[str] = []
    generate(cfg, progress=False, replaced=replaced)
    assert drawn == [("train", 0), ("train", 1)]
    assert replaced == [
        f"2 earlier scenes drawn otherwise (generator version 0, not {GENERATOR_VERSION}) replaced"
    ]
    car = out / "new_class_instances" / "car" / "train"
    cv2 = pytest.importorskip("cv2")
    cv2.imwrite(str(car / "synth_train_0000.png"), np.zeros((64, 80), np.uint16))  # other size
    cv2.imwrite(str(car / "synth_train_0001.png"), np.zeros((64, 96), np.uint8))  # 8-bit
    drawn.clear()
    kept: list[str] = []
    generate(cfg, progress=False, kept=kept)
    assert drawn == [("train", 0), ("train", 1)] and kept == []
    drawn.clear()
    generate(cfg, progress=False, kept=kept)  # all there now: both kept, none drawn
    assert drawn == [] and kept == ["synth_train_0000", "synth_train_0001"]


def test_synth_json_counts_the_images_instances_and_pixels_of_each_new_class(tmp_path):
    """synth.json, per split and new class: the images containing it (instance map not all
    0), its instances and its pixels, as the written maps hold them (docs/foundation.md)."""
    import json

    from PIL import Image

    from engine.synth import NEW_CLASSES, SynthConfig, generate

    out = generate(SynthConfig(out=tmp_path / "d", train=6, val=0, test=1, size=(96, 64)),
                   progress=False)  # fmt: skip
    splits = json.loads((out / "synth.json").read_text())["splits"]
    for split in ("train", "test"):
        for name in NEW_CLASSES:
            maps = [np.array(Image.open(p))
                    for p in sorted((out / "new_class_instances" / name / split).iterdir())]  # fmt: skip
            assert splits[split][name] == {
                "images_with": sum(int(m.max() > 0) for m in maps),
                "instances": sum(int(m.max()) for m in maps),
                "pixels": sum(int((m > 0).sum()) for m in maps),
            }
    with_car = splits["train"]["car"]["images_with"]
    assert 0 < with_car < 6 or 0 < splits["train"]["bicycle"]["images_with"] < 6  # told apart


def test_a_bicycle_has_two_tyre_rings_and_a_car_stands_on_the_ground_at_its_size():
    """objects: a bicycle's wheels are tyres, rings of its pixels round each returned wheel
    (what is behind shows inside them); a car, side view or front/rear view, stands on its
    ground line and is about as wide as ``length`` (docs/foundation.md's table)."""
    from engine.synth.canvas import Canvas
    from engine.synth.objects import draw_bicycle, draw_car

    canvas = Canvas(400, 200)
    wheels = draw_bicycle(canvas, np.random.default_rng(0), 100.0, 150.0, 30.0, 1)
    bike = canvas.instance_map("bicycle") > 0
    angles = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    assert len(wheels) == 2
    for w in wheels:
        assert w.cy == pytest.approx(150.0 - 30.0) and w.r == 30.0  # touching the ground
        rows = np.round(w.cy + np.sin(angles) * (w.r - 1.5)).astype(int)
        cols = np.round(w.cx + np.cos(angles) * (w.r - 1.5)).astype(int)
        assert bike[rows, cols].mean() > 0.9  # the tyre
        inside = np.hypot(*np.mgrid[:200, :400][::-1] - np.array([w.cx, w.cy])[:, None, None])
        assert not bike[inside < 0.8 * w.r].all()  # seen through
    for facing in (1, -1, 0):
        canvas = Canvas(400, 200)
        draw_car(canvas, np.random.default_rng(1), 200.0, 150.0, 100.0, facing)
        rows, cols = np.nonzero(canvas.instance_map("car"))
        assert 149 <= rows.max() <= 151, facing  # on the ground line
        assert rows.max() - rows.min() > 40 and cols.max() - cols.min() > 80, facing
