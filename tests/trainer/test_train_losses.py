"""Hand-made cases for the MaSSFormer losses, the matcher and label decoupling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.losses import (
    DecouplingConfig,
    HungarianMatcher,
    LossConfig,
    SetCriterion,
    boundary_weight,
    build_targets,
    edge_target,
    pixel_weights,
)
from trainer.losses.matcher import pair_bce_cost, pair_dice_cost
from trainer.losses.points import importance_points

LOG2 = math.log(2.0)


def test_boundary_weight_values_on_a_vertical_edge():
    g = torch.zeros(1, 10, 10)
    g[0, :, :5] = 1.0
    w = boundary_weight(g)[0]
    # interior row: 5x5 window share of foreground around each column
    row = w[5]
    expected = torch.tensor([0.0, 0.0, 0.0, 0.2, 0.4, 0.4, 0.2, 0.0, 0.0, 0.0])
    assert torch.allclose(row, expected, atol=1e-6)
    # the frame is not a boundary (padding not counted)
    assert w[0, 0] == 0 and w[9, 9] == 0


@pytest.mark.parametrize("shape", [(0, 6, 6), (2, 6, 6)])
def test_boundary_weight_empty_and_constant(shape):
    g = torch.ones(shape)
    assert boundary_weight(g).shape == shape
    assert float(boundary_weight(g).abs().sum()) == 0.0


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 1, 7), (3, 4, 3), (5, 31, 17), (7, 96, 128)])
@pytest.mark.parametrize("density", [0.03, 0.5, 0.97])
def test_box_filters_equal_the_pooling_kernels_bit_for_bit(shape, density):
    """The separable 5x5 box sum and window reach replace avg_pool2d and max_pool2d in the
    targets for speed; on 0/1 masks they must give the same floats, or training's digits move."""
    from trainer.losses.targets import _box_sum, _near, _window_count

    gen = torch.Generator().manual_seed(shape[-1] * 100 + int(density * 100))
    g = (torch.rand(shape, generator=gen) < density).float()
    pooled = F.avg_pool2d(g[:, None], 5, stride=1, padding=2, count_include_pad=False)[:, 0]
    assert torch.equal(_box_sum(g) / _window_count(*shape[-2:], g.dtype, g.device), pooled)
    weighted = g * (torch.rand(shape, generator=gen) < 0.5)
    grown = F.max_pool2d(weighted[:, None], 5, stride=1, padding=2)[:, 0] > 0
    assert torch.equal(_near(weighted), grown)
    valid = torch.rand(shape[-2:], generator=gen) < 0.8
    v = valid.float()[None]
    box = lambda x: F.avg_pool2d(x[:, None], 5, 1, 2, count_include_pad=False)[:, 0]  # noqa: E731
    before = ((box(g * v) / box(v).clamp_min(1e-6)) - g).abs() * v
    assert torch.equal(boundary_weight(g, valid), before)
    assert torch.equal(boundary_weight(g), (box(g) - g).abs())


def test_build_targets_lists_present_classes_ascending():
    label = torch.tensor([[7, 7, 255, 0], [3, 255, 7, 0]])
    t = build_targets(label, None, 9, DecouplingConfig())
    assert t.labels.tolist() == [0, 3, 7]
    assert t.labels.dtype == torch.int64
    empty = build_targets(torch.full((3, 3), 255), None, 9, DecouplingConfig())
    assert empty.labels.tolist() == [] and empty.masks.shape == (0, 3, 3)


def test_pixel_weights_decoupling_forms():
    w = torch.tensor([[[0.0, 0.4, 0.2]]])  # (1, 1, 3)
    source = torch.tensor([[0, 1, 1]])
    valid = torch.tensor([[True, True, False]])
    cfg = DecouplingConfig(pseudo_form="reversed")  # 1 - W on pseudo pixels
    out = pixel_weights(w, source, valid, cfg)
    assert torch.allclose(out, torch.tensor([[[1.0, 0.6, 0.0]]]))
    precise_everywhere = pixel_weights(w, torch.zeros_like(source), torch.ones_like(valid), cfg)
    assert torch.allclose(precise_everywhere, torch.tensor([[[1.0, 3.0, 2.0]]]))
    flat = pixel_weights(w, source, valid, DecouplingConfig(pseudo_form="flat"))
    assert torch.allclose(flat, torch.tensor([[[1.0, 1.0, 0.0]]]))
    same = pixel_weights(w, source, valid, DecouplingConfig(pseudo_form="precise"))
    assert torch.allclose(same, torch.tensor([[[1.0, 3.0, 0.0]]]))
    strong = pixel_weights(
        w, source, valid, DecouplingConfig(pseudo_form="reversed", pseudo_scale=5.0)
    )
    assert torch.allclose(strong, torch.tensor([[[1.0, 0.0, 0.0]]]))  # clamped at 0
    with pytest.raises(ValueError, match="pseudo_form"):
        DecouplingConfig(pseudo_form="inverse")


def test_edge_target_hand_made():
    label = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 1]])
    edge, defined = edge_target(label)
    assert edge.tolist() == [[0, 1, 1, 0], [1, 1, 1, 0], [1, 1, 0, 0]]
    assert defined.tolist() == [
        [True, True, True, True],
        [True, True, False, True],
        [True, False, False, False],
    ]


def test_edge_target_single_class_and_all_ignore():
    edge, defined = edge_target(torch.full((4, 5), 3))
    assert edge.sum() == 0 and bool(defined.all())
    edge, defined = edge_target(torch.full((4, 5), 255))
    assert edge.sum() == 0 and not bool(defined.any())


def test_build_targets_classes_valid_and_class_weights():
    label = torch.tensor([[0, 0, 2, 2], [0, 255, 2, 2]])
    source = torch.tensor([[0, 0, 1, 1], [2, 0, 1, 1]])
    cfg = DecouplingConfig(pseudo_form="reversed", pseudo_class_weight=0.5)
    t = build_targets(label, source, 3, cfg, pseudo_classes={2})
    assert t.labels.tolist() == [0, 2]  # class 1 absent: no target
    assert t.class_weight.tolist() == [1.0, 0.5]
    assert t.valid.tolist() == [[True, True, True, True], [False, False, True, True]]
    assert t.masks[0].tolist() == [[1, 1, 0, 0], [0, 0, 0, 0]]
    assert float(t.weights[:, ~t.valid].abs().sum()) == 0.0
    # pseudo pixels (class 2 region) use 1 - W <= 1, precise ones 1 + 5W >= 1
    assert float(t.weights[1][source == 1].max()) <= 1.0
    assert float(t.weights[0][(source == 0) & t.valid].min()) >= 1.0


def test_build_targets_all_ignore_and_bad_ids():
    t = build_targets(torch.full((3, 3), 255), None, 4, DecouplingConfig())
    assert t.labels.numel() == 0 and t.masks.shape == (0, 3, 3)
    with pytest.raises(ValueError, match="exceed"):
        build_targets(torch.full((3, 3), 5), None, 4, DecouplingConfig())


def test_pair_costs_known_values():
    logits = torch.tensor([[0.0, 0.0], [10.0, -10.0]])
    targets = torch.tensor([[1.0, 0.0]])
    valid = torch.tensor([True, True])
    bce = pair_bce_cost(logits, targets, valid)
    assert torch.allclose(bce[0, 0], torch.tensor(LOG2))
    assert bce[1, 0] < 1e-3
    dice = pair_dice_cost(logits, targets, valid)
    # p = (0.5, 0.5), t = (1, 0): 1 - (2*0.5 + 1) / (1 + 1 + 1)
    assert torch.allclose(dice[0, 0], torch.tensor(1.0 - 2.0 / 3.0))
    # an ignored point is left out of both costs
    only_first = torch.tensor([True, False])
    assert torch.allclose(pair_bce_cost(logits, targets, only_first)[0, 0], torch.tensor(LOG2))


def test_pair_dice_cost_leaves_ignored_points_out():
    logits = torch.zeros(1, 2)  # p = (0.5, 0.5)
    targets = torch.ones(1, 2)
    # both points: 1 - (2 * (0.5 + 0.5) + 1) / (1 + 2 + 1)
    both = pair_dice_cost(logits, targets, torch.tensor([True, True]))
    assert torch.allclose(both, torch.tensor([[0.25]]))
    # the second point ignored: p = (0.5), t = (1): 1 - (2 * 0.5 + 1) / (0.5 + 1 + 1)
    first = pair_dice_cost(logits, targets, torch.tensor([True, False]))
    assert torch.allclose(first, torch.tensor([[0.2]]))


def test_matcher_defaults_are_the_published_loss_weights():
    # docs/trainer.md: class 2, mask 5, dice 5 (the loss weights), 112 x 112 points
    m = HungarianMatcher()
    assert (m.cost_class, m.cost_mask, m.cost_dice, m.num_points) == (2.0, 5.0, 5.0, 112 * 112)


def test_matcher_assigns_the_obvious_pairs():
    h = w = 8
    masks = torch.zeros(2, h, w)
    masks[0, :, :4] = 1  # target 0: left half, class 1
    masks[1, :, 4:] = 1  # target 1: right half, class 0
    labels = torch.tensor([1, 0])
    mask_logits = torch.full((3, h, w), -8.0)
    mask_logits[2, :, :4] = 8.0  # query 2 predicts the left half
    mask_logits[0, :, 4:] = 8.0  # query 0 predicts the right half
    class_logits = torch.zeros(3, 3)
    class_logits[2, 1] = 5.0
    class_logits[0, 0] = 5.0
    matcher = HungarianMatcher(num_points=256)
    valid = torch.ones(h, w, dtype=torch.bool)
    q, t = matcher.match(class_logits, mask_logits, labels, masks, valid)
    assert dict(zip(q.tolist(), t.tolist(), strict=True)) == {0: 1, 2: 0}
    q, t = matcher.match(class_logits, mask_logits, labels[:0], masks[:0], valid)
    assert q.numel() == 0 and t.numel() == 0


def test_hungarian_class_cost_decides_between_equal_masks():
    # both queries predict the target's mask alike: only -p(class of the target) tells them
    # apart. Query 0 is sure of the no-object class, query 1 of the target's class 1:
    # p_0(1) = e^2 / (1 + e^2 + e^10) ~ 3.3e-4, p_1(1) = e / (1 + e + e^-10) ~ 0.731
    # (a softmax over the queries instead would favour query 0: e^2 > e^1)
    masks = torch.zeros(1, 4, 4)
    masks[0, :2] = 1
    mask_logits = torch.where(masks.bool(), 6.0, -6.0).expand(2, -1, -1)
    class_logits = torch.tensor([[0.0, 2.0, 10.0], [0.0, 1.0, -10.0]])
    valid = torch.ones(4, 4, dtype=torch.bool)
    # the 16 pixel centres, not 12544 random points: float32 sums of that many points came out
    # 7e-6 apart for the two identical rows of the dice term (MKL, AMD EPYC), 2.5e-5 of the gap
    centre = (torch.arange(4) + 0.5) / 4
    coords = torch.cartesian_prod(centre, centre)
    matcher = HungarianMatcher(cost_class=2.0)
    cost = matcher.cost_matrix(class_logits, mask_logits, torch.tensor([1]), masks, valid, coords)
    p0 = math.exp(2) / (1 + math.exp(2) + math.exp(10))
    p1 = math.e / (1 + math.e + math.exp(-10))
    assert math.isclose(float(cost[1, 0] - cost[0, 0]), -2.0 * (p1 - p0), rel_tol=1e-5)
    q, t = matcher.match(class_logits, mask_logits, torch.tensor([1]), masks, valid, coords)
    assert q.tolist() == [1] and t.tolist() == [0]


def test_hungarian_cost_is_the_weighted_sum_of_its_three_terms():
    # one query at logit 0 (p = 0.5 everywhere, class prob 1/2), one target on the top row of a
    # 2 x 2 map, read at the 4 pixel centres: BCE log 2 at every point, dice
    # 1 - (2 * 0.5 * 2 + 1) / (0.5 * 4 + 2 + 1) = 0.4, so 2 * -0.5 + 5 log 2 + 5 * 0.4
    masks = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    coords = torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    cost = HungarianMatcher().cost_matrix(
        torch.zeros(1, 2),
        torch.zeros(1, 2, 2),
        torch.tensor([0]),
        masks,
        torch.ones(2, 2, dtype=torch.bool),
        coords,
    )
    assert torch.allclose(cost, torch.tensor([[-1.0 + 5.0 * LOG2 + 5.0 * 0.4]]))


def _outputs(b, q, k, h, w, value=0.0, layers=6):
    def pred(hh, ww):
        return {
            "pred_logits": torch.full((b, q, k + 1), value, requires_grad=True),
            "pred_masks": torch.full((b, q, hh, ww), value, requires_grad=True),
        }

    out = pred((h + 1) // 2, (w + 1) // 2)
    out["aux_outputs"] = [pred((h + 3) // 4, (w + 3) // 4) for _ in range(layers)]
    out["edge_logits"] = torch.zeros(b, 1, (h + 1) // 2, (w + 1) // 2, requires_grad=True)
    return out


def _constant_dice(points: float = 64.0) -> float:
    """Dice of logits 0 (p = 0.5) against a target of ones at ``points`` sampled points:
    ``1 - (2 sum p t + 1) / (sum p + sum t + 1)``."""
    return 1.0 - (2.0 * 0.5 * points + 1.0) / (0.5 * points + points + 1.0)


def _split_targets(k: int):
    """Targets of a 16 x 16 label split down the middle: class 0 left, class 1 right."""
    label = torch.zeros(16, 16, dtype=torch.long)
    label[:, 8:] = 1
    return build_targets(label, None, k, DecouplingConfig())


def _assert_losses(losses, suffixes, ce: float, mask: float, dice: float, edge: float) -> None:
    """The class, mask and dice terms at each of ``suffixes`` (deep-supervision layers) and
    the edge term equal the values given."""
    for suffix in suffixes:
        assert torch.allclose(losses["loss_ce" + suffix], torch.tensor(ce))
        assert torch.allclose(losses["loss_mask" + suffix], torch.tensor(mask))
        assert torch.allclose(losses["loss_dice" + suffix], torch.tensor(dice))
    assert torch.allclose(losses["loss_edge"], torch.tensor(edge))


def test_criterion_known_values_constant_predictions():
    # one image, one class everywhere: W = 0, weights 1; logits 0 everywhere
    k, q = 2, 3
    label = torch.zeros(16, 16, dtype=torch.long)
    t = build_targets(label, None, k, DecouplingConfig())
    cfg = LossConfig(num_points=64)
    crit = SetCriterion(k, cfg)
    losses = crit(_outputs(1, q, k, 16, 16), [t])
    assert len(losses) == 3 * 7 + 1
    # CE: every query has CE log(K+1); weighted mean is the same
    assert torch.allclose(losses["loss_ce"], torch.tensor(2.0 * math.log(3.0)))
    assert torch.allclose(losses["loss_mask"], torch.tensor(5.0 * LOG2))
    dice = _constant_dice()
    assert torch.allclose(losses["loss_dice"], torch.tensor(5.0 * dice))
    assert torch.allclose(losses["loss_dice_5"], torch.tensor(5.0 * dice))
    assert torch.allclose(losses["loss_edge"], torch.tensor(10.0 * LOG2))


def test_criterion_mask_terms_are_averaged_over_the_batch_s_target_masks():
    # two images, one class everywhere in each: two target masks, each of BCE log 2 and the
    # constant-prediction dice; the terms are their sum divided by 2, CE and edge unchanged
    k, q = 2, 3
    targets = [
        build_targets(torch.full((16, 16), c, dtype=torch.long), None, k, DecouplingConfig())
        for c in (0, 1)
    ]
    losses = SetCriterion(k, LossConfig(num_points=64))(_outputs(2, q, k, 16, 16), targets)
    dice = _constant_dice()
    _assert_losses(
        losses, ("", "_0", "_5"), 2.0 * math.log(3.0), 5.0 * LOG2, 5.0 * dice, 10.0 * LOG2
    )


def test_dice_of_a_two_class_image_near_0_where_right_near_1_where_empty():
    # dice = 1 - (2 sum p t + 1) / (sum p + sum t + 1) over the points: masks whose points are
    # partly outside the target (t = 0 there), predicted right (logits +-10, at half
    # resolution, split where the label is), then predicted empty
    k = 2
    t = _split_targets(k)
    out = _outputs(1, 2, k, 16, 16, layers=0)
    crit = SetCriterion(k, LossConfig(num_points=64))
    with torch.no_grad():
        out["pred_masks"][0, 0].fill_(-10.0)[:, :4] = 10.0
        out["pred_masks"][0, 1].fill_(10.0)[:, :4] = -10.0
    right = float(crit(out, [t])["loss_dice"].detach()) / 5.0
    assert 0.0 <= right < 0.1
    with torch.no_grad():
        out["pred_masks"].fill_(-10.0)
    empty = float(crit(out, [t])["loss_dice"].detach()) / 5.0
    assert 0.95 < empty <= 1.0


def test_num_masks_is_the_mean_over_ranks_and_at_least_1(monkeypatch):
    # under DDP each rank divides by the batch's target masks averaged over the ranks: 2 here
    # and 4 on the other rank of 2 give 3; no target mask anywhere gives 1, not 0
    from trainer.losses import criterion

    def all_reduce(n, *args, **kwargs):  # the other rank's count added in place
        n += other

    monkeypatch.setattr(criterion.dist, "is_available", lambda: True)
    monkeypatch.setattr(criterion.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(criterion.dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(criterion.dist, "all_reduce", all_reduce)
    label = torch.zeros(8, 8, dtype=torch.long)
    label[:, 4:] = 1
    t = build_targets(label, None, 2, DecouplingConfig())
    other = 4.0
    assert criterion._num_masks([t], torch.device("cpu")) == 3.0
    other = 0.0
    empty = build_targets(torch.full((8, 8), 255), None, 2, DecouplingConfig())
    assert criterion._num_masks([empty], torch.device("cpu")) == 1.0


def test_each_term_and_matcher_cost_takes_its_own_weight():
    # the known values above with four different weights: each term scaled by its own, the
    # matcher's costs the same three (the defaults give mask and dice both 5)
    k, q = 2, 3
    t = build_targets(torch.zeros(16, 16, dtype=torch.long), None, k, DecouplingConfig())
    cfg = LossConfig(
        num_points=64, class_weight=0.5, mask_weight=1.0, dice_weight=3.0, edge_weight=2.0
    )
    crit = SetCriterion(k, cfg)
    m = crit.matcher
    assert (m.cost_class, m.cost_mask, m.cost_dice) == (0.5, 1.0, 3.0)
    losses = crit(_outputs(1, q, k, 16, 16, layers=1), [t])
    dice = _constant_dice()
    _assert_losses(losses, ("", "_0"), 0.5 * math.log(3.0), 1.0 * LOG2, 3.0 * dice, 2.0 * LOG2)


def test_edge_loss_is_the_bce_against_the_edge_target():
    # two classes split down the middle, edge logits 2 everywhere: the 2-pixel edge (target 1)
    # costs softplus(-2) a pixel, the rest (target 0) softplus(2)
    k = 2
    t = _split_targets(k)
    out = _outputs(1, 2, k, 16, 16, layers=0)
    with torch.no_grad():
        out["edge_logits"].fill_(2.0)
    edge = float(t.edge.sum())
    assert edge == 32.0
    expected = (edge * math.log1p(math.exp(-2.0)) + (256 - edge) * math.log1p(math.exp(2.0))) / 256
    loss = SetCriterion(k, LossConfig(num_points=16, edge_weight=1.0))(out, [t])["loss_edge"]
    assert math.isclose(float(loss.detach()), expected, rel_tol=1e-6)


def test_edge_logits_are_upsampled_bilinearly_with_pixel_centres_aligned():
    # edge logits [0, 4] upsampled to 4 pixels (align_corners=False): 0, 1, 3, 4, not the corner
    # aligned 0, 4/3, 8/3, 4; one class everywhere, so every pixel's target is 0
    t = build_targets(torch.zeros(2, 4, dtype=torch.long), None, 1, DecouplingConfig())
    edge_logits = torch.tensor([[[[0.0, 4.0]]]])
    expected = sum(math.log1p(math.exp(x)) for x in (0.0, 1.0, 3.0, 4.0)) / 4
    loss = SetCriterion(1, LossConfig()).edge_loss(edge_logits, [t])
    assert math.isclose(float(loss), expected, rel_tol=1e-6)


def test_class_loss_weights_no_object_and_pseudo_class():
    crit = SetCriterion(1, LossConfig())
    logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
    t = build_targets(torch.zeros(4, 4, dtype=torch.long), None, 1, DecouplingConfig())
    matches = [(torch.tensor([0]), torch.tensor([0]))]
    ce0 = math.log(1.0 + math.exp(-2.0))
    expected = (ce0 + 0.1 * LOG2) / 1.1
    assert math.isclose(float(crit.class_loss(logits, matches, [t])), expected, rel_tol=1e-6)
    t.class_weight[:] = 0.5  # a pseudo-labelled class at half weight
    expected = (0.5 * ce0 + 0.1 * LOG2) / 0.6
    assert math.isclose(float(crit.class_loss(logits, matches, [t])), expected, rel_tol=1e-6)


def test_class_loss_reads_each_matched_query_s_own_class_and_weight():
    # two matched queries of different classes and class weights (class 1 pseudo at 0.5), the
    # third unmatched: each query's CE is against its own target's class, weighted by its weight
    crit = SetCriterion(2, LossConfig())
    label = torch.zeros(4, 4, dtype=torch.long)
    label[:, 2:] = 1
    t = build_targets(label, None, 2, DecouplingConfig())
    t.class_weight[1] = 0.5
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    matches = [(torch.tensor([0, 1]), torch.tensor([0, 1]))]
    ce0 = math.log(math.exp(2.0) + 2.0) - 2.0
    ce1 = math.log(math.e + 2.0) - 1.0
    expected = (ce0 + 0.5 * ce1 + 0.1 * math.log(3.0)) / 1.6
    assert math.isclose(float(crit.class_loss(logits, matches, [t])), expected, rel_tol=1e-6)


def test_mask_terms_read_each_matched_mask_s_own_class_and_pixel_weights():
    # query 0 predicts class 0's half right, query 1 predicts nothing for class 1's half (dice
    # near 1, BCE about 5 a point on its half): class 1 at weight 0.5 halves its dice; its
    # pixel weights set to 0 leave it no BCE
    k = 2
    t = _split_targets(k)
    t.class_weight[1] = 0.5
    t.weights[1] = 0.0
    masks = torch.full((1, 2, 8, 8), -10.0)
    masks[0, 0, :, :4] = 10.0
    matches = [(torch.tensor([0, 1]), torch.tensor([0, 1]))]
    bce, dice = SetCriterion(k, LossConfig(num_points=64)).mask_losses(masks, matches, [t], 2.0)
    assert (0.95 * 0.5) / 2.0 < float(dice) < (0.1 + 0.5) / 2.0
    assert float(bce) < 0.2


def test_the_criterion_passes_its_sampling_settings_and_each_mask_s_boundary(monkeypatch):
    from trainer.losses import criterion

    seen = []

    def spy(*args):
        seen.append(args)
        return importance_points(*args)

    monkeypatch.setattr(criterion, "importance_points", spy)
    k = 2
    t = _split_targets(k)
    cfg = LossConfig(num_points=32, oversample=2.0, importance=0.5, boundary_bias=3.0)
    masks = torch.zeros(1, 2, 8, 8)
    matches = [(torch.tensor([0, 1]), torch.tensor([1, 0]))]  # query 0 on class 1
    SetCriterion(k, cfg).mask_losses(masks, matches, [t], 2.0)
    (args,) = seen
    assert args[2:6] == (32, 2.0, 0.5, 3.0)
    assert torch.equal(args[1], t.boundary[[1, 0]][:, None])


def test_deep_supervision_off_leaves_the_intermediate_predictions_out():
    k = 2
    t = build_targets(torch.zeros(8, 8, dtype=torch.long), None, k, DecouplingConfig())
    out = _outputs(1, 2, k, 8, 8)
    cfg = LossConfig(num_points=16, deep_supervision=False)
    assert set(SetCriterion(k, cfg)(out, [t])) == {"loss_ce", "loss_mask", "loss_dice", "loss_edge"}


def test_pseudo_class_weight_scales_mask_terms():
    k = 2
    label = torch.ones(8, 8, dtype=torch.long)
    source = torch.ones(8, 8, dtype=torch.long)
    out = _outputs(1, 2, k, 8, 8)
    full = SetCriterion(k, LossConfig(num_points=32))(
        out, [build_targets(label, source, k, DecouplingConfig(), {1})]
    )
    half = SetCriterion(k, LossConfig(num_points=32))(
        out,
        [build_targets(label, source, k, DecouplingConfig(pseudo_class_weight=0.5), {1})],
    )
    for key in ("loss_mask", "loss_dice", "loss_mask_3"):
        assert torch.allclose(half[key], 0.5 * full[key])


def test_criterion_all_ignore_image_is_finite_and_differentiable():
    k = 3
    t = build_targets(torch.full((8, 8), 255), None, k, DecouplingConfig())
    out = _outputs(1, 4, k, 8, 8)
    losses = SetCriterion(k, LossConfig(num_points=16))(out, [t])
    total = sum(losses.values())
    assert torch.isfinite(total)
    assert float(losses["loss_mask"].detach()) == 0.0
    assert float(losses["loss_edge"].detach()) == 0.0
    total.backward()
    # every prediction in the graph, with a 0 gradient where no target reaches it (DDP waits for
    # a gradient of every parameter)
    for key in ("pred_logits", "pred_masks", "edge_logits"):
        assert out[key].grad is not None
    assert float(out["pred_masks"].grad.abs().sum()) == 0.0
    # no target and no weight on the unmatched queries: a CE of 0, not 0 / 0
    free = LossConfig(num_points=16, no_object_weight=0.0)
    assert float(SetCriterion(k, free)(_outputs(1, 4, k, 8, 8), [t])["loss_ce"].detach()) == 0.0


def test_boundary_weight_raises_bce_on_precise_and_lowers_on_pseudo():
    # two classes split down the middle: BCE with constant logits is log 2 x mean weight
    k = 2
    label = torch.zeros(32, 32, dtype=torch.long)
    label[:, 16:] = 1
    out = _outputs(1, 2, k, 32, 32)
    cfg = LossConfig(num_points=4096, importance=0.0)
    torch.manual_seed(0)
    precise = SetCriterion(k, cfg)(out, [build_targets(label, None, k, DecouplingConfig())])
    torch.manual_seed(0)
    pseudo = SetCriterion(k, cfg)(
        out,
        [build_targets(label, torch.ones_like(label), k, DecouplingConfig(pseudo_form="reversed"))],
    )
    assert float(precise["loss_mask"].detach()) > 5.0 * LOG2 * 1.05
    assert float(pseudo["loss_mask"].detach()) < 5.0 * LOG2 * 0.99


def test_importance_sampling_prefers_boundaries():
    from trainer.losses.points import importance_points, point_sample

    g = torch.zeros(1, 1, 64, 64)
    g[..., :, 32:] = 1.0
    w = boundary_weight(g[:, 0])[:, None]
    confident = torch.full((1, 1, 32, 32), 20.0)  # no uncertainty anywhere: W decides
    torch.manual_seed(0)
    pts = importance_points(confident, w, num_points=200, oversample=3, importance=0.75)
    assert pts.shape == (1, 200, 2)
    on_boundary = point_sample(w, pts, mode="nearest")[0, 0] > 0
    # the band is 4 of 64 columns (6.25%); ~37 of the 600 candidates fall on it, and the
    # importance pick keeps every one of them: about 4x the uniform share
    assert float(on_boundary[:150].float().mean()) > 0.18
    uniform = torch.rand(1, 2000, 2)
    assert float((point_sample(w, uniform, mode="nearest") > 0).float().mean()) < 0.09


def test_valid_indices_rows_short_of_draws_fall_back_alone():
    """A row whose rejection draws land on too few valid entries is redrawn exactly; the rows
    beside it keep their draws."""
    from trainer.losses.points import valid_indices

    flat = torch.zeros(3, 1000, dtype=torch.bool)
    flat[:, :50] = True  # 5%: 56 draws for one index, all of them miss 6% of the time
    flat[1] = True
    m = int(1 / float(torch.tensor(50 / 1000)) * 1.25) + 32  # as valid_indices sizes them
    shorts = 0
    for seed in range(200):
        torch.manual_seed(seed)
        cand = torch.randint(0, 1000, (3, m))
        shorts += int(not flat.gather(1, cand).any(1).all())
        torch.manual_seed(seed)
        idx = valid_indices(flat, 1)
        assert bool(flat.gather(1, idx).all())
        assert int(idx[1, 0]) == int(cand[1][flat[1][cand[1]]][0])  # its first draw
    assert shorts > 3


def test_point_pixels_read_what_nearest_sampling_reads():
    """The mask loss gathers its targets at ``point_pixels``; for the points the sampler draws
    (inside valid pixels, off their borders) that is what nearest ``point_sample`` returns."""
    from trainer.losses.points import importance_points, point_pixels, point_sample

    torch.manual_seed(0)
    h, w = 37, 53  # odd sizes: no power-of-two rounding to hide behind
    values = torch.rand(3, 1, h, w)
    valid = torch.rand(3, 1, h, w) > 0.3
    valid[2] = False  # a mask without a valid pixel samples the whole map
    pts = importance_points(
        torch.randn(3, 1, 19, 27), torch.rand(3, 1, h, w), 500, 3.0, 0.75, valid=valid
    )
    flat = point_pixels(pts, h, w)
    assert flat.shape == (3, 500) and int(flat.min()) >= 0 and int(flat.max()) < h * w
    gathered = values.flatten(1).gather(1, flat)
    assert torch.equal(gathered, point_sample(values, pts, mode="nearest")[:, 0])
    assert bool(valid[:2].flatten(1).gather(1, flat[:2]).all())
    # the map's last row and column are reached, and a point on the far edge stays inside
    edge = point_pixels(torch.tensor([[[0.999, 0.999], [1.0, 1.0], [0.0, 0.0]]]), h, w)
    assert edge.tolist() == [[h * w - 1, h * w - 1, 0]]


def test_valid_indices_uniform_over_valid_entries_with_fallbacks():
    from trainer.losses.points import valid_indices

    torch.manual_seed(0)
    flat = torch.zeros(4, 400, dtype=torch.bool)
    flat[0, [3, 50, 399]] = True  # under 5% valid: the multinomial path
    flat[1] = True
    flat[1, :100] = False  # 75% valid: rejection
    # row 2: nothing valid -> the whole row
    flat[3, ::2] = True  # 50% valid
    idx = valid_indices(flat, 30000)
    assert idx.shape == (4, 30000)
    counts = [torch.bincount(idx[r], minlength=400).float() for r in range(4)]
    assert set(idx[0].unique().tolist()) == {3, 50, 399}
    assert counts[0][[3, 50, 399]].min() > 9000  # 10,000 each expected
    assert counts[1][:100].sum() == 0 and counts[1][100:].min() > 50  # 100 each expected
    assert counts[2].min() > 30  # 75 each expected, every entry drawn
    assert bool(flat[3][idx[3]].all()) and counts[3][::2].std() < 20  # 150 +- 12 each


def test_a_row_under_5_percent_valid_draws_its_whole_batch_by_multinomial():
    """docs (``valid_indices``): every row of a batch where any row is under 5% valid falls back
    to ``torch.multinomial``, the dense rows too: the draws are torch.multinomial's from the same
    seed (the random stream a training run's weights depend on). The same dense rows alone are
    drawn by rejection, another stream. Only the draws' distribution was tested before."""
    from trainer.losses.points import valid_indices

    flat = torch.zeros(3, 400, dtype=torch.bool)
    flat[0, [3, 50, 399]] = True  # 0.75% valid
    flat[1, 100:] = True  # 75%
    flat[2, ::2] = True  # 50%
    for rows, multinomial in ((flat, True), (flat[1:], False)):
        torch.manual_seed(0)
        idx = valid_indices(rows, 64)
        torch.manual_seed(0)
        drawn = torch.multinomial(rows.float(), 64, replacement=True)
        assert torch.equal(idx, drawn) == multinomial


def test_point_sampling_on_maps_over_2_24_pixels():
    """``torch.multinomial`` takes at most 2^24 categories: a mask under 5% valid on a crop over
    4096 (on a GPU: any mask there) stopped the step with "number of categories cannot exceed
    2^24". Such rows draw uniformly among their valid pixels, never elsewhere."""
    from trainer.losses.points import importance_points, point_pixels

    side = 4097  # 4097^2 > 2^24
    valid = torch.zeros(2, 1, side, side, dtype=torch.bool)
    spots = [5, side * 2000 + 17, side * side - 1]
    valid.view(2, -1)[0, spots] = True  # far under 5%: the multinomial path on a CPU too
    # row 1: nothing valid -> the whole map
    torch.manual_seed(0)
    pts = importance_points(
        torch.randn(2, 1, 8, 8), torch.zeros(2, 1, side, side), 300, 3.0, 0.75, valid=valid
    )
    flat = point_pixels(pts, side, side)
    assert set(flat[0].tolist()) == set(spots)
    assert int(flat[1].unique().numel()) > 250  # spread over the whole map


def test_decoupling_config_accepts_zero_and_rejects_each_negative():
    # 0 switches a term off (no boundary gain, no discount, a pseudo class not learnt): allowed;
    # a fraction is allowed; any one negative alone is refused
    DecouplingConfig(boundary_gain=0.0, pseudo_scale=0.0, pseudo_class_weight=0.0)
    DecouplingConfig(boundary_gain=0.5, pseudo_scale=0.5, pseudo_class_weight=0.5)
    for name in ("boundary_gain", "pseudo_scale", "pseudo_class_weight"):
        with pytest.raises(ValueError, match="must be >= 0"):
            DecouplingConfig(**{name: -0.5})


def test_edge_target_compares_each_pixel_with_its_own_neighbour():
    # classes 0 | 1 1 1 | 2 along one axis: the 0/1 boundary marks pixels 0 and 1, the 1/2
    # boundary pixels 3 and 4; pixel 2 is 1 between two 1s, no edge (a comparison against the
    # first row or column instead of the neighbour would mark it)
    line = torch.tensor([0, 1, 1, 1, 2])
    for label in (line[:, None].expand(5, 3), line[None, :].expand(3, 5)):
        edge, defined = edge_target(label)
        expected = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0])
        along = edge[:, 0] if label.shape[0] == 5 else edge[0]
        assert along.tolist() == expected.tolist() and bool(defined.all())


def test_edge_target_undefined_only_beside_an_ignored_pixel_in_the_first_row():
    # one 255 at the top-left corner: it and its two 4-neighbours are undefined, nothing else
    label = torch.zeros(4, 3, dtype=torch.long)
    label[0, 0] = 255
    for lab in (label, label.T):
        edge, defined = edge_target(lab)
        undefined = {(int(y), int(x)) for y, x in (~defined).nonzero()}
        assert undefined == {(0, 0), (0, 1), (1, 0)} and edge.sum() == 0


def test_build_targets_refuses_the_first_id_past_the_classes():
    # 3 classes are ids 0, 1, 2: id 2 is the last one, id 3 is one too many
    cfg = DecouplingConfig()
    assert build_targets(torch.full((4, 4), 2), None, 3, cfg).labels.tolist() == [2]
    with pytest.raises(ValueError, match="exceed the model's 3 classes"):
        build_targets(torch.full((4, 4), 3), None, 3, cfg)


def test_loss_config_bounds():
    # num_points >= 1, oversample >= 1, importance in [0, 1], num_points x oversample at most
    # 1024 x 1024: each edge accepted, just past it refused
    for ok in (
        {"num_points": 1, "oversample": 1.0, "importance": 0.0},
        {"importance": 1.0},
        {"num_points": 1024 * 1024, "oversample": 1.0},
        {"num_points": 512 * 1024, "oversample": 2.0},
    ):
        LossConfig(**ok)
    for bad in (
        {"num_points": 0},
        {"oversample": 0.99},
        {"importance": -0.01},
        {"importance": 1.01},
        {"num_points": 1024 * 1024 + 1, "oversample": 1.0},
        {"num_points": 512 * 1024 + 1, "oversample": 2.0},
    ):
        with pytest.raises(ValueError):
            LossConfig(**bad)


def test_loss_edge_only_with_edge_logits_and_a_positive_weight():
    k = 2
    t = build_targets(torch.zeros(8, 8, dtype=torch.long), None, k, DecouplingConfig())
    out = _outputs(1, 2, k, 8, 8, layers=0)
    assert "loss_edge" not in SetCriterion(k, LossConfig(num_points=16, edge_weight=0.0))(out, [t])
    # logits 0: BCE log 2 at every counted pixel, times the weight
    one = SetCriterion(k, LossConfig(num_points=16, edge_weight=1.0))(out, [t])
    assert torch.allclose(one["loss_edge"], torch.tensor(LOG2))
    del out["edge_logits"]
    assert "loss_edge" not in SetCriterion(k, LossConfig(num_points=16))(out, [t])


def test_an_unannotated_image_loses_nothing_whatever_the_logits():
    # no target and no counted edge pixel: the mask and edge terms are 0 even where the
    # predictions are far from 0
    k = 3
    t = build_targets(torch.full((8, 8), 255), None, k, DecouplingConfig())
    out = _outputs(1, 4, k, 8, 8, value=3.0)
    with torch.no_grad():
        out["edge_logits"].fill_(3.0)
    losses = SetCriterion(k, LossConfig(num_points=16))(out, [t])
    assert float(losses["loss_mask"].detach()) == 0.0
    assert float(losses["loss_dice"].detach()) == 0.0
    assert float(losses["loss_edge"].detach()) == 0.0


def test_the_most_uncertain_logits_are_kept():
    # no boundary: only the uncertainty 1 - |2 sigmoid(logit) - 1| ranks the candidates. Left
    # half at logit 0 (uncertainty 1), right half at +0.3 (top) and -0.3 (bottom), both
    # 1 - |2 sigmoid(0.3) - 1| ~ 0.851: every kept point is on the left half's logit-0 pixels
    from trainer.losses.points import importance_points

    logits = torch.zeros(1, 1, 8, 8)
    logits[..., :4, 4:] = 0.3
    logits[..., 4:, 4:] = -0.3
    torch.manual_seed(0)
    pts = importance_points(logits, torch.zeros(1, 1, 8, 8), 40, 5.0, 1.0)
    assert pts.shape == (1, 40, 2)
    assert bool((pts[0, :, 0] < 0.5).all())


def test_a_uniform_share_of_one_point_is_added():
    # 5 points at importance 0.8: 4 by importance, 1 uniform
    from trainer.losses.points import importance_points

    pts = importance_points(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), 5, 2.0, 0.8)
    assert pts.shape == (2, 5, 2)


def test_a_point_s_x_and_y_jitter_are_drawn_apart():
    # one valid pixel of a 1 x 1 map: x and y are each pixel + jitter, two independent draws
    # in [0.02, 0.98]; 100 points on the diagonal x == y would be one draw used twice
    from trainer.losses.points import importance_points

    one = torch.ones(1, 1, 1, 1, dtype=torch.bool)
    pts = importance_points(
        torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), 100, 1.0, 0.0, 1.0, one
    )
    assert bool(((pts >= 0.02) & (pts <= 0.98)).all())
    assert not bool((pts[..., 0] == pts[..., 1]).all())


def test_a_row_with_one_valid_entry_draws_only_it():
    # 1 of 20 entries valid (5%: the rejection draws) and 1 of 40 (2.5%: torch.multinomial)
    from trainer.losses.points import valid_indices

    for length in (20, 40):
        flat = torch.zeros(2, length, dtype=torch.bool)
        flat[0, 7] = True
        flat[1] = True
        idx = valid_indices(flat, 50)
        assert idx.shape == (2, 50) and bool((idx[0] == 7).all())


def test_valid_indices_off_the_cpu_draw_by_multinomial_without_a_host_sync():
    # off the CPU every row is drawn by torch.multinomial, with no host sync (the rejection
    # path's bool(...) and float(...) would wait on the device each step): a meta tensor holds
    # no data, so any sync raises, and the draws still come back shaped (n, count) there
    from trainer.losses.points import MULTINOMIAL_MAX, valid_indices

    flat = torch.zeros(3, 40, dtype=torch.bool, device="meta")
    idx = valid_indices(flat, 7)
    assert idx.device.type == "meta" and idx.shape == (3, 7) and idx.dtype == torch.int64
    # no row at all, each longer than torch.multinomial takes: no draw, shaped (0, count)
    none = torch.zeros(0, MULTINOMIAL_MAX + 1, dtype=torch.bool, device="meta")
    assert valid_indices(none, 7).shape == (0, 7)


def test_a_row_of_exactly_2_24_entries_is_drawn_by_multinomial():
    # torch.multinomial takes up to 2^24 categories, that many included (a 4096 x 4096 crop):
    # such a row keeps its draws (the same as torch.multinomial's from the same seed), only a
    # longer row is drawn another way
    from trainer.losses.points import MULTINOMIAL_MAX, valid_indices

    flat = torch.zeros(1, MULTINOMIAL_MAX, dtype=torch.bool)
    flat[0, [3, 1 << 23, MULTINOMIAL_MAX - 1]] = True  # under 5% valid: the multinomial path
    torch.manual_seed(0)
    idx = valid_indices(flat, 50)
    torch.manual_seed(0)
    assert torch.equal(idx, torch.multinomial(flat.float(), 50, replacement=True))
