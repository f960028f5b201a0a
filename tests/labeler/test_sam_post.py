"""Window post-processing equals transformers' full-resolution post_process_masks (issue 11, 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labeler.sam_post import (
    LOGIT_FLOOR,
    finite_logits,
    finite_scores,
    masks_in_windows,
    resize_window,
)


def _blobs(n: int, size: int, seed: int) -> torch.Tensor:
    """Low-resolution logits: a positive blob per box in a very negative background."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = []
    for k in range(n):
        cy, cx = torch.randint(0, size, (2,), generator=g).tolist()
        r = 2 + k % 5
        d = ((yy - cy) ** 2 + (xx - cx) ** 2).float().sqrt()
        out.append(12.0 - 6.0 * d / r + torch.randn(size, size, generator=g) * 0.3)
    out.append(torch.full((size, size), -20.0))  # a box whose mask is empty everywhere
    return torch.stack(out)


def test_resize_window_matches_interpolate():
    x = torch.randn(2, 7, 9)
    ref = torch.nn.functional.interpolate(x[:, None], (31, 20), mode="bilinear")[:, 0]
    got = resize_window(x, (31, 20), (3, 29, 0, 17))
    torch.testing.assert_close(got, ref[:, 3:29, 0:17], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "original, reshaped, pad, low_size",
    [
        ((97, 130), (48, 64), (64, 64), 16),  # SAM: landscape, padded input
        ((150, 61), (64, 26), (64, 64), 16),  # SAM: portrait
        ((97, 130), None, None, 16),  # SAM 2: straight to the original size
        # the released models' sizes (256x256 logits, 1024 px input): an image below 1024 px
        # is upscaled by the processor, so its masks are downscaled from the resized size,
        # which the tiny sizes above (images larger than the input) never do; a thin image
        ((300, 200), (1024, 683), (1024, 1024), 256),
        ((200, 300), (683, 1024), (1024, 1024), 256),
        ((3, 6000), (1, 1024), (1024, 1024), 256),
        ((300, 200), None, None, 256),
    ],
)
def test_windows_equal_full_resolution(original, reshaped, pad, low_size):
    from transformers import Sam2ImageProcessor, SamImageProcessor

    low = _blobs(6, low_size, seed=original[0])
    if reshaped is None:
        proc = Sam2ImageProcessor(size={"height": low_size * 4, "width": low_size * 4})
        full = proc.post_process_masks(low[None, :, None], [original], binarize=False)[0][:, 0]
    else:
        proc = SamImageProcessor(pad_size={"height": pad[0], "width": pad[1]})
        assert proc._get_preprocess_shape(original, pad[0]) == reshaped  # the processor's own
        full = proc.post_process_masks(low[None, :, None], [original], [reshaped], binarize=False)[
            0
        ][:, 0]
    crops = masks_in_windows(low, original, reshaped, pad)
    assert len(crops) == len(low)
    for k, (mask, prob) in enumerate(crops):
        f = full[k]
        outside = torch.ones_like(f, dtype=torch.bool)
        outside[mask.y0 : mask.y1, mask.x0 : mask.x1] = False
        assert torch.all(f[outside] <= LOGIT_FLOOR + 1e-4)
        np.testing.assert_array_equal(mask.to_full(*original), (f > 0).numpy())
        win = f[mask.y0 : mask.y1, mask.x0 : mask.x1]
        np.testing.assert_allclose(prob, torch.sigmoid(win).numpy(), atol=1e-3)
    assert crops[-1][0].mask.shape == (0, 0)  # the empty box: no window at all


def test_non_finite_logits_and_scores_read_as_documented():
    # NaN: no object (-1e4); +inf: certain (1e4); -inf: -1e4; finite values untouched
    x = torch.tensor([float("nan"), float("inf"), float("-inf"), 3.0])
    assert finite_logits(x).tolist() == [-1e4, 1e4, -1e4, 3.0]
    # scores: NaN -> 0, clamped into 0..1
    s = torch.tensor([float("nan"), -0.5, 1.5, 0.25])
    assert finite_scores(s).tolist() == [0.0, 0.0, 1.0, 0.25]


def test_window_keeps_the_first_active_row_at_a_large_upsampling():
    # 4x4 logits, rows and columns 1-2 active over a background just below the floor (-9),
    # upsampled 16x: the full bilinear map is the reference for the mask and for the window of
    # the probabilities (every pixel above LOGIT_FLOOR)
    low = torch.full((1, 4, 4), -9.0)
    low[0, 1:3, 1:3] = 10.0
    full = F.interpolate(low[:, None], (64, 64), mode="bilinear", align_corners=False)[0, 0]
    ((crop, prob),) = masks_in_windows(low, (64, 64))
    np.testing.assert_array_equal(crop.to_full(64, 64), (full > 0).numpy())
    rows = (full > LOGIT_FLOOR).any(1).nonzero()[:, 0]
    assert crop.y0 == int(rows[0]) and prob.shape[0] == int(rows[-1]) - int(rows[0]) + 1
    cols = (full > LOGIT_FLOOR).any(0).nonzero()[:, 0]
    assert crop.x0 == int(cols[0]) and prob.shape[1] == int(cols[-1]) - int(cols[0]) + 1
    # at scale 1 the window has no slack: it starts at the first active row and column
    ((crop, prob),) = masks_in_windows(low, (4, 4))
    assert (crop.y0, crop.x0, prob.shape) == (1, 1, (2, 2)) and crop.mask.all()


def test_a_zero_logit_is_background_and_floor_zero_gives_no_probabilities():
    # at scale 1 the logits are read as they are: 0 exactly is not foreground (transformers'
    # `logits > mask_threshold` with threshold 0), and at floor 0 (the dedup's masks alone) no box
    # carries a probability map, the empty one neither
    low = torch.full((2, 4, 4), -20.0)
    low[0, 1:3, 1:3] = 5.0
    low[0, 1, 1] = 0.0
    ((crop, prob), _) = masks_in_windows(low, (4, 4))
    assert (crop.y0, crop.x0) == (1, 1) and crop.mask.tolist() == [[False, True], [True, True]]
    assert prob.dtype == np.float16 and prob[0, 0] == 0.5
    got = masks_in_windows(low, (4, 4), floor=0.0)
    assert [p for _, p in got] == [None, None]
    tight, empty = got[0][0], got[1][0]
    assert (tight.y0, tight.x0, tight.mask.tolist()) == (1, 1, crop.mask.tolist())
    assert empty.mask.shape == (0, 0)


def test_sam_post_processing_needs_the_pad_size():
    with pytest.raises(ValueError, match="needs pad_size with reshaped_size"):
        masks_in_windows(torch.zeros(1, 4, 4), (8, 8), reshaped_size=(4, 4))
