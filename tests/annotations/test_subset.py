"""annotations.subset called directly: the checks on what is written and read (the commands
that use it are tested in tests/engine/test_annotate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from annotations.subset import read_subset, write_subset


@pytest.mark.parametrize(
    ("mask", "got"),
    [
        (np.zeros((2, 3, 3), np.uint8), r"\(2, 3, 3\) uint8"),  # an RGB image: encode_png takes it
        (np.zeros((2, 3), np.int64), r"\(2, 3\) int64"),
    ],
)
def test_a_mask_that_is_not_h_w_uint8_is_refused_and_nothing_written(tmp_path, mask, got):
    """DESIGN.md's subset mask is ``(H, W) uint8``: an ``(H, W, 3)`` uint8 array, which the PNG
    encoder would write as a colour image, is refused as one of another dtype is, and no
    folder is left (a mutant that refused only a wrong shape *and* dtype passed every test)."""
    with pytest.raises(ValueError, match=rf"^mask of 'img0' must be \(H, W\) uint8, got {got}$"):
        write_subset(tmp_path / "sub", "Bicycle", "test", {"img0": mask}, {})
    assert not (tmp_path / "sub").exists()


def test_a_folder_without_subset_json_is_named_with_the_question_whether_it_is_one(tmp_path):
    """An empty folder, or one not there: the manifest is not found, and the line asks whether
    the folder is an annotated subset at all (a mutant that dropped the question passed)."""
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "empty", tmp_path / "nothere"):
        with pytest.raises(FileNotFoundError) as e:
            read_subset(root)
        assert str(e.value) == (
            f"{root / 'subset.json'}: subset manifest not found (is {root} an annotated subset?)"
        )


def test_a_share_of_0_is_a_share_and_below_0_is_refused():
    """``--low-confidence 0`` (or ``--many-or-tiny 0``) asks for no image of that group: the
    shares must be >= 0 and sum to <= 1, so 0 is taken (a mutant that refused 0 passed every
    test) and -0.1 is refused."""
    from annotations.subset import ImageStats, check_pick, pick_images

    check_pick(4, 0.0, 0.0)
    check_pick(4, 0.0, 1.0)
    check_pick(4, 1.0, 0.0)
    stats = [
        ImageStats(f"img{i}", confidence=0.1 * i, num_instances=i, num_tiny=0) for i in range(6)
    ]
    picks = pick_images(stats, 4, low_confidence=0.0, many_or_tiny=0.5)
    assert [p.reason for p in picks] == ["many-or-tiny", "many-or-tiny", "random", "random"]
    assert [p.stem for p in picks[:2]] == ["img5", "img4"]
    for low, many in ((-0.1, 0.5), (0.5, -0.1)):
        with pytest.raises(ValueError, match=r"must be >= 0 and sum to <= 1"):
            check_pick(4, low, many)


def test_one_instance_and_no_tiny_one_is_not_many_or_tiny():
    """The many-or-tiny group is the images with more than one instance or a tiny one: of
    images with 0, 1 and 2 instances (none tiny) only the last is in it, and its short group
    leaves the other places to the random share (a mutant that counted one instance as many
    passed every test); one tiny instance is enough."""
    from annotations.subset import ImageStats, pick_images

    stats = [ImageStats(f"img{i}", confidence=0.5, num_instances=i, num_tiny=0) for i in range(3)]
    picks = pick_images(stats, 3, low_confidence=0.0, many_or_tiny=1.0)
    assert {p.stem: p.reason for p in picks}["img2"] == "many-or-tiny"
    assert sorted(p.reason for p in picks) == ["many-or-tiny", "random", "random"]
    tiny = [ImageStats("a", 0.5, 1, 1), ImageStats("b", 0.5, 1, 0)]
    assert [
        (p.stem, p.reason) for p in pick_images(tiny, 1, low_confidence=0.0, many_or_tiny=1.0)
    ] == [("a", "many-or-tiny")]


def test_tiny_instances_weigh_twice_an_instance_in_the_many_or_tiny_order():
    """The group is taken in the order of instances + 2 x tiny ones, most first: 2 instances,
    both tiny (6), come before 3 that are not (3) (a mutant that subtracted the tiny ones
    passed every test)."""
    from annotations.subset import ImageStats, pick_images

    stats = [ImageStats("three", 0.5, 3, 0), ImageStats("two-tiny", 0.5, 2, 2)]
    assert [
        (p.stem, p.reason) for p in pick_images(stats, 1, low_confidence=0.0, many_or_tiny=1.0)
    ] == [("two-tiny", "many-or-tiny")]
