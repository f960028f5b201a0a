"""Label decoupling by edge origin on hand-made label/source maps (issue 13's cases).

Taxonomy of every case: 0 Ground, 1 Others, 2 Bicycle (parent Others), 3 Car (parent Others).
Each map is 6 rows of 10 columns split at column 5, so row 3 reads across the edge: ``W`` is
0.2, 0.4 | 0.4, 0.2 at columns 3, 4 | 5, 6.
"""

from __future__ import annotations

import pytest
import torch

from trainer.losses import DecouplingConfig, boundary_weight, build_targets, pixel_weights
from trainer.losses.points import importance_points, point_sample
from trainer.losses.targets import drawn_edges

GROUND, OTHERS, BICYCLE, CAR = 0, 1, 2, 3
PSEUDO = frozenset({BICYCLE, CAR})
PARENTS = {BICYCLE: (OTHERS,), CAR: (OTHERS,)}
EDGE_COLS = slice(3, 7)


def split_map(left: int, right: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A label map ``left | right`` and its source map (pseudo classes from pseudo labels)."""
    label = torch.full((6, 10), left, dtype=torch.long)
    label[:, 5:] = right
    source = torch.zeros_like(label)
    for c in PSEUDO:
        source[label == c] = 1
    return label, source


def across(
    label: torch.Tensor, source: torch.Tensor, form: str, cls: int, rule: str = "window"
) -> list[float]:
    """Weights of class ``cls``'s target mask at columns 3..6 of row 3."""
    cfg = DecouplingConfig(pseudo_form=form, drawn_rule=rule)
    t = build_targets(label, source, 4, cfg, PSEUDO, PARENTS)
    i = t.labels.tolist().index(cls)
    return [round(v, 4) for v in t.weights[i, 3, EDGE_COLS].tolist()]


# (left, right, form, expected weights at columns 3, 4 | 5, 6 of the mask of `left`)
CASES = [
    # Bicycle against Ground: the edge is the precise labels' (fusion's parent constraint)
    (GROUND, BICYCLE, "reversed", [2.0, 3.0, 0.6, 0.8]),  # before: bicycle side discounted
    (GROUND, BICYCLE, "origin", [2.0, 3.0, 3.0, 2.0]),  # precise on both sides
    (GROUND, BICYCLE, "flat", [2.0, 3.0, 1.0, 1.0]),
    # Bicycle against Others (its parent): the pseudo labels drew this edge
    (OTHERS, BICYCLE, "reversed", [2.0, 3.0, 0.6, 0.8]),  # before: parent side emphasised 5x
    (OTHERS, BICYCLE, "origin", [0.8, 0.6, 0.6, 0.8]),  # discounted on both sides
    (OTHERS, BICYCLE, "flat", [2.0, 3.0, 1.0, 1.0]),
    # Bicycle against Car: both sides are pseudo labels
    (CAR, BICYCLE, "origin", [0.8, 0.6, 0.6, 0.8]),
    # two precise classes: the forms agree
    (GROUND, OTHERS, "origin", [2.0, 3.0, 3.0, 2.0]),
    (GROUND, OTHERS, "reversed", [2.0, 3.0, 3.0, 2.0]),
]


@pytest.mark.parametrize(("left", "right", "form", "expected"), CASES)
def test_weights_across_an_edge_by_origin(left, right, form, expected):
    label, source = split_map(left, right)
    assert across(label, source, form, left) == expected
    # both masks of a two-class map get the same weight at a pixel
    assert across(label, source, form, right) == expected


@pytest.mark.parametrize(("left", "right", "form", "expected"), CASES)
def test_contact_rule_agrees_on_a_straight_edge(left, right, form, expected):
    # where the classes touch along the whole edge, contact and window draw the same band
    label, source = split_map(left, right)
    assert across(label, source, form, left, "contact") == expected
    assert across(label, source, form, right, "contact") == expected


def test_default_form_is_origin():
    assert DecouplingConfig().pseudo_form == "origin"
    assert DecouplingConfig().drawn_rule == "window"  # today's weights, bit for bit
    with pytest.raises(ValueError, match="drawn_rule must be one of window, contact, got 'touch'"):
        DecouplingConfig(drawn_rule="touch")
    label, source = split_map(OTHERS, BICYCLE)
    masks = torch.stack([(label == c).float() for c in (OTHERS, BICYCLE)])
    with pytest.raises(ValueError, match="rule must be one of window, contact, got 'touch'"):
        drawn_edges(masks, torch.tensor([OTHERS, BICYCLE]), source, PSEUDO, PARENTS, "touch")


def rows_3(label: torch.Tensor, rule: str, form: str = "origin") -> list[list[float]]:
    """Row 3 of every target mask's weights (sources: the pseudo classes' pixels are pseudo)."""
    source = torch.zeros_like(label)
    for c in PSEUDO:
        source[label == c] = 1
    t = build_targets(
        label, source, 4, DecouplingConfig(pseudo_form=form, drawn_rule=rule), PSEUDO, PARENTS
    )
    return [[round(v, 4) for v in row] for row in t.weights[:, 3].tolist()]


@pytest.mark.parametrize("strip", [1, 2, 3])
def test_a_strip_between_a_new_class_and_its_parent_is_no_contact(strip):
    # Bicycle | `strip` px of Ground | Others: the window rule discounts the strip (its window
    # holds a Bicycle pseudo pixel and an Others pixel); the two never touch, so under the contact
    # rule no edge is drawn and every mask keeps the precise weighting
    label = torch.full((6, 12), OTHERS, dtype=torch.long)
    label[:, :5] = BICYCLE
    label[:, 5 : 5 + strip] = GROUND
    window = rows_3(label, "window")
    assert min(min(row) for row in window) < 1.0
    assert rows_3(label, "contact") == rows_3(label, "contact", "precise") != window
    if strip == 1:  # the Ground pixel: 0.2 where precise gives 5.0 (docs/trainer.md)
        assert window[0][5] == 0.2 and rows_3(label, "contact")[0][5] == 5.0


@pytest.mark.parametrize("how", ["label 255", "source 2"])
def test_contact_is_seen_through_a_one_pixel_ignored_band(how):
    # Bicycle | 1 px ignored | Others: the edge behind the band is still drawn (as by window);
    # behind a 2 px band neither rule draws it
    for width, drawn in ((1, True), (2, False)):
        label = torch.full((6, 12), OTHERS, dtype=torch.long)
        label[:, :5] = BICYCLE
        source = (label == BICYCLE).long()
        if how == "label 255":
            label[:, 5 : 5 + width] = 255
        else:
            source[:, 5 : 5 + width] = 2
        cfg = DecouplingConfig(drawn_rule="contact")
        t = build_targets(label, source, 4, cfg, PSEUDO, PARENTS)
        window = build_targets(label, source, 4, DecouplingConfig(), PSEUDO, PARENTS)
        assert torch.equal(t.weights, window.weights)
        row = [round(v, 4) for v in t.weights[0, 3].tolist()]
        if drawn:
            assert row[4] == 0.75 and row[6] == 0.75  # W 0.25 each side, discounted
        else:
            assert max(row) == 1.0  # W is 0 beside the band: 1 either way
            assert not bool(
                drawn_edges(t.masks, t.labels, source, PSEUDO, PARENTS, "contact").any()
            )


def test_contact_between_two_new_classes_and_at_a_corner():
    # Bicycle | Car, both pseudo: drawn under contact (tested above across the edge); a Bicycle
    # block meeting an Others block only diagonally (8-neighbours), Ground elsewhere: drawn
    label = torch.full((10, 10), GROUND, dtype=torch.long)
    label[:5, :5] = BICYCLE
    label[5:, 5:] = OTHERS
    source = (label == BICYCLE).long()
    present = torch.tensor([GROUND, OTHERS, BICYCLE])
    masks = (label[None] == present[:, None, None]).float()
    band = drawn_edges(masks, present, source, PSEUDO, PARENTS, "contact")
    assert bool(band[4, 4]) and bool(band[5, 5]) and int(band.sum()) > 0
    assert torch.equal(band, drawn_edges(masks, present, source, PSEUDO, PARENTS, "window"))
    label[4, :5] = GROUND  # the Bicycle block shrunk by 1 px: a Ground pixel between the corners
    label[:5, 4] = GROUND
    source = (label == BICYCLE).long()
    masks = (label[None] == present[:, None, None]).float()
    assert not bool(drawn_edges(masks, present, source, PSEUDO, PARENTS, "contact").any())
    assert bool(drawn_edges(masks, present, source, PSEUDO, PARENTS, "window").any())


def test_contact_band_lies_inside_the_window_band():
    # random blocky maps with 255 specks: contact only ever drops pixels from window's band
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        label = torch.randint(0, 4, (6, 8), generator=gen).repeat_interleave(3, 0)
        label = label.repeat_interleave(3, 1)
        label[torch.rand(label.shape, generator=gen) < 0.03] = 255
        source = ((label == BICYCLE) | (label == CAR)).long()
        present = torch.tensor([c for c in range(4) if bool((label == c).any())])
        masks = (label[None] == present[:, None, None]).float()
        window = drawn_edges(masks, present, source, PSEUDO, PARENTS, "window")
        contact = drawn_edges(masks, present, source, PSEUDO, PARENTS, "contact")
        assert not bool((contact & ~window).any())


def test_origin_without_pseudo_sources_is_all_precise():
    # a fused dataset trained as all precise (no source map): no edge counts as drawn
    label, _ = split_map(OTHERS, BICYCLE)
    assert across(label, torch.zeros_like(label), "origin", OTHERS) == [2.0, 3.0, 3.0, 2.0]


def test_unknown_parents_count_every_edge_as_drawn():
    label, source = split_map(GROUND, BICYCLE)
    masks = torch.stack([(label == c).float() for c in (GROUND, BICYCLE)])
    present = torch.tensor([GROUND, BICYCLE])
    with_parents = drawn_edges(masks, present, source, PSEUDO, PARENTS)
    assert not bool(with_parents.any())
    without = drawn_edges(masks, present, source, PSEUDO, None)
    assert without[3].tolist() == [False] * 3 + [True] * 4 + [False] * 3


def test_an_edge_is_drawn_beside_any_one_of_the_other_classes():
    # class 7 (pseudo) in rows 0-9, columns 5-14 of Others (0); class 4 only in rows 15-19, far
    # from it. Unknown parents: both 0 and 4 count. Row 5 is within 2 px of 7 and of 0 (not of
    # 4) at columns 3-6 and 13-16 only: an edge beside one of the others is drawn
    label = torch.zeros((20, 20), dtype=torch.long)
    label[:10, 5:15] = 7
    label[15:] = 4
    source = (label == 7).long()
    present = torch.tensor([0, 4, 7])
    masks = (label[None] == present[:, None, None]).float()
    drawn = drawn_edges(masks, present, source, {7}, None)
    assert torch.nonzero(drawn[5])[:, 0].tolist() == [3, 4, 5, 6, 13, 14, 15, 16]


def test_a_junction_near_a_drawn_edge_is_discounted():
    # Ground | Bicycle with an Others block in the bicycle's lower rows: the drawn band covers
    # the pixels within 2 px of both Bicycle and Others, nothing else
    label, source = split_map(GROUND, BICYCLE)
    label[4:, 8:] = OTHERS
    source[4:, 8:] = 0
    t = build_targets(label, source, 4, DecouplingConfig(), PSEUDO, PARENTS)
    b = t.labels.tolist().index(BICYCLE)
    assert t.weights[b, 0, 4:7].tolist() == pytest.approx([1 + 5 * 0.4, 1 + 5 * 0.4, 1 + 5 * 0.2])
    assert float(t.weights[b, 5, 7]) < 1.0  # beside the Others block: discounted
    assert float(t.weights[:, 5, 7].max()) <= 1.0  # for every mask


@pytest.mark.parametrize("how", ["label 255", "source 2"])
def test_no_edge_beside_an_ignored_band(how):
    # Others with a 255 block on the right (columns 5..7), precise
    label = torch.full((6, 8), OTHERS, dtype=torch.long)
    source = torch.zeros_like(label)
    if how == "label 255":
        label[:, 5:] = 255
    else:
        source[:, 5:] = 2
    valid = (label != 255) & (source != 2)
    cfg = DecouplingConfig()
    # before: W computed with the ignored pixels as "not Others" (the measured row)
    masked = torch.where(valid, label, torch.full_like(label, 255))
    old_w = boundary_weight((masked == OTHERS).float()[None])
    before = pixel_weights(old_w, source, valid, cfg)[0, 3].tolist()
    assert [round(v, 4) for v in before] == [1.0, 1.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0]
    t = build_targets(label, source, 4, cfg, PSEUDO, PARENTS)
    assert [round(v, 4) for v in t.weights[0, 3].tolist()] == [1.0] * 5 + [0.0] * 3
    assert float(t.boundary.abs().sum()) == 0.0  # no boundary for point sampling either


def test_boundary_weight_ignores_unlabelled_window_pixels():
    g = torch.zeros(1, 6, 10)
    g[0, :, :5] = 1.0
    valid = torch.ones(6, 10, dtype=torch.bool)
    assert torch.equal(boundary_weight(g, valid), boundary_weight(g))
    valid[:, 5] = False  # a one-pixel 255 column between the two regions
    w = boundary_weight(g, valid)[0, 3]
    assert w[5] == 0 and w[:3].abs().sum() == 0
    # the window of column 4 holds columns 2..6: 3 labelled foreground, 1 background
    assert float(w[4]) == pytest.approx(0.25)


def test_no_point_is_sampled_on_an_ignored_pixel():
    torch.manual_seed(0)
    valid = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    valid[0, :, :, :5] = True  # a narrow labelled strip
    valid[1, :, 10:12, 10:30] = True
    w = torch.zeros(2, 1, 32, 32)
    w[0, :, :, 3:5] = 0.4
    logits = torch.randn(2, 1, 16, 16)
    pts = importance_points(logits, w, 500, 3.0, 0.75, 1.0, valid)
    assert pts.shape == (2, 500, 2)
    on_valid = point_sample(valid.float(), pts, mode="nearest")
    assert bool((on_valid == 1).all())
    # a mask with no valid pixel at all falls back to the whole map instead of failing
    pts = importance_points(logits[:1], w[:1], 50, 3.0, 0.75, 1.0, torch.zeros_like(valid[:1]))
    assert pts.shape == (1, 50, 2)


def test_no_edge_is_drawn_without_a_pseudo_class():
    # the band is an all-False (H, W) map, not None, when no pseudo-labelled class is present
    label, source = split_map(GROUND, OTHERS)
    masks = torch.stack([(label == c).float() for c in (GROUND, OTHERS)])
    none = drawn_edges(masks, torch.tensor([GROUND, OTHERS]), source, PSEUDO, PARENTS)
    assert none.shape == (6, 10) and none.dtype == torch.bool and not bool(none.any())


def test_drawn_rule_is_a_config_key(tmp_path):
    from trainer.config import load_config

    ok, bad = tmp_path / "ok.yaml", tmp_path / "bad.yaml"
    ok.write_text("loss:\n  decoupling:\n    drawn_rule: contact\n")
    bad.write_text("loss:\n  decoupling:\n    drawn_rule: touch\n")
    assert load_config(ok).loss.decoupling.drawn_rule == "contact"
    assert load_config().loss.decoupling.drawn_rule == "window"
    with pytest.raises(ValueError, match=r"bad\.yaml.*drawn_rule must be one of window, contact"):
        load_config(bad)


@pytest.mark.parametrize(
    "loss, all_precise, why",
    [
        ({"pseudo_form": "flat"}, False, "; pseudo_form flat discounts none by them"),
        ({"pseudo_form": "origin"}, True, "; with all_precise: true no pixel is a pseudo pixel"),
    ],
)
def test_a_library_caller_meets_the_contact_rule_refusal(tmp_path, loss, all_precise, why):
    """``drawn_rule: contact`` where it would do nothing is refused by :func:`train` itself, in
    the words ``engine train`` gives, before anything is read or written (before, only the CLI
    refused it: ``train(TrainConfig(...))`` trained as ``window``, silently)."""
    from trainer.config import TrainConfig
    from trainer.train import train

    out = tmp_path / "out"
    decoupling = {"drawn_rule": "contact", **loss}
    cfg = TrainConfig(
        data=str(tmp_path / "data"), out=str(out), all_precise=all_precise,
        loss={"decoupling": decoupling},
    )  # fmt: skip
    said = "loss.decoupling.drawn_rule contact picks the edges pseudo_form origin discounts"
    with pytest.raises(ValueError) as e:
        train(cfg)
    assert str(e.value).startswith(said) and why in str(e.value), str(e.value)
    assert not out.exists()
