"""The frontier flood of `metrics.split_touching` equals the level-by-level flood it replaced
(tests/split_reference.py, verbatim from commit 0183cc0) label for label: on constructed cases
(touching discs, ties, plateaus, single pixels, empty masks, objects on the image edge, 3-D) and,
with EFFUNET_DSB2018_ZIP, on real BBBC038 masks at the scale evaluation splits them."""

from __future__ import annotations

import io
import os
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import split_reference
from effunet import metrics

DSB_ZIP = os.environ.get("EFFUNET_DSB2018_ZIP")


def disc(shape, centre, radius):
    y, x = np.ogrid[: shape[0], : shape[1]]
    return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2


def assert_same(mask, **options):
    new, old = metrics.split_touching(mask, **options), split_reference.split_touching(mask, **options)
    assert new.dtype == old.dtype == np.int32 and new.shape == old.shape
    np.testing.assert_array_equal(new, old)
    return new


def square_pair(gap_rows: int):
    """Two squares of equal size joined by a bar: a plateau and a symmetric neck (exact ties)."""
    mask = np.zeros((30, 50), bool)
    mask[5:25, 5:25] = mask[5:25, 27:47] = True
    mask[15 - gap_rows : 15 + gap_rows, 25:27] = True
    return mask


CONSTRUCTED = {
    "touching discs": disc((60, 80), (30, 25), 10) | disc((60, 80), (30, 43), 10),
    "unequal discs": disc((60, 80), (30, 20), 12) | disc((60, 80), (30, 38), 7),
    "three in a row": disc((40, 90), (20, 15), 9) | disc((40, 90), (20, 32), 9) | disc((40, 90), (20, 49), 9),
    "symmetric pair with plateaus": square_pair(3),
    "thin neck": square_pair(1),
    "ring of four (ties at the centre)": disc((50, 50), (17, 17), 9)
    | disc((50, 50), (17, 33), 9)
    | disc((50, 50), (33, 17), 9)
    | disc((50, 50), (33, 33), 9),
    "cut by the image edge": disc((40, 40), (0, 10), 9) | disc((40, 40), (0, 25), 9) | disc((40, 40), (39, 39), 12),
    "whole image": np.ones((7, 9), bool),
    "one row": np.ones((1, 12), bool),
    "single pixels": np.eye(6, dtype=bool)[::-1] | np.eye(6, dtype=bool),
    "one pixel": np.ones((1, 1), bool),
    "empty": np.zeros((5, 5), bool),
    "isolated single pixels": np.kron(np.eye(4, dtype=bool) | np.eye(4, dtype=bool)[::-1], [[1, 0], [0, 0]]) > 0,
    "all ones, with plateaus": np.ones((24, 40), bool),
    "a hole, touching every edge": ~disc((30, 30), (15, 15), 6),
    "disc inside a ring (one's box holds the other)": (disc((50, 50), (25, 25), 20) & ~disc((50, 50), (25, 25), 14))
    | disc((50, 50), (25, 22), 7)
    | disc((50, 50), (25, 30), 6),
}


@pytest.mark.parametrize("name", CONSTRUCTED)
def test_split_touching_equals_the_level_by_level_flood_on_constructed_cases(name):
    labels = assert_same(CONSTRUCTED[name])
    assert np.array_equal(labels > 0, CONSTRUCTED[name])


def test_the_constructed_cases_split_what_they_should():
    """The cases above exercise the flood (several markers meeting), not only whole components."""
    assert assert_same(CONSTRUCTED["touching discs"]).max() == 2
    assert assert_same(CONSTRUCTED["three in a row"]).max() == 3
    assert assert_same(CONSTRUCTED["ring of four (ties at the centre)"]).max() == 4
    assert assert_same(CONSTRUCTED["empty"]).max() == 0


def test_split_touching_equals_the_level_by_level_flood_on_random_masks():
    """Random blobs of discs (many necks and tied depths) and noise (single pixels, plateaus, lines),
    with other parameters too, in 2-D and 3-D."""
    rng = np.random.default_rng(7)
    for _ in range(60):
        shape = tuple(int(n) for n in rng.integers(5, 60, 2))
        mask = np.zeros(shape, bool)
        for _ in range(int(rng.integers(1, 7))):
            mask |= disc(shape, rng.integers(-4, max(shape) + 4, 2), rng.uniform(1, 12))
        assert_same(mask)
        assert_same(mask, min_distance=int(rng.integers(1, 5)), h=float(rng.choice([0.5, 1.0, 2.5])))
    for _ in range(30):
        assert_same(rng.random(tuple(int(n) for n in rng.integers(1, 30, 2))) > rng.uniform(0.2, 0.8))
    for _ in range(5):
        assert_same(rng.random((7, 8, 9)) > 0.4)


def test_split_touching_equals_the_level_by_level_flood_with_other_parameters_and_in_1d():
    """A large h (levels below zero take in the background of a component's box), a wide window,
    the smallest window, and 1-D masks."""
    for name in (
        "touching discs",
        "three in a row",
        "ring of four (ties at the centre)",
        "symmetric pair with plateaus",
    ):
        for options in ({"h": 6.0}, {"h": 0.25}, {"min_distance": 1}, {"min_distance": 8, "h": 0.5}):
            assert_same(CONSTRUCTED[name], **options)
    line = np.array([1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1], bool)
    assert assert_same(line).max() == 4
    assert_same(np.r_[np.ones(9, bool), [True, False] * 3, np.ones(15, bool)], min_distance=1, h=0.5)


def test_split_touching_still_checks_its_parameters():
    with pytest.raises(ValueError, match="min_distance"):
        metrics.split_touching(np.ones((3, 3), bool), min_distance=0)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(
    not DSB_ZIP or not Path(DSB_ZIP).is_file(), reason="set EFFUNET_DSB2018_ZIP to the real stage1_train.zip to run"
)
def test_split_touching_equals_the_level_by_level_flood_on_real_masks():
    """The union of the true nuclei of 25 BBBC038 images, at native size and at the 512 x 512 grid
    evaluation splits on (a 128 x 128 model's SPLIT_SCALE), both floods label for label."""
    from effunet.data import images
    from effunet.predict import resize_probability

    masks = defaultdict(list)
    with zipfile.ZipFile(DSB_ZIP) as archive:
        for name in archive.namelist():
            parts = name.split("/")
            if len(parts) == 3 and parts[1] == "masks" and parts[2].endswith(".png"):
                masks[parts[0]].append(name)
        for image_id in sorted(masks)[::27][:25]:
            union = None
            for name in masks[image_id]:
                nucleus = np.array(Image.open(io.BytesIO(archive.read(name)))) > 0
                union = nucleus if union is None else union | nucleus
            assert_same(union)
            small = images.resize_mask(union, (128, 128)).astype(np.float32) / 255
            assert_same(resize_probability(small, (512, 512)) > 0.5)
