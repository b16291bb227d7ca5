import numpy as np
import pytest
from PIL import Image

from effunet.data import images
from effunet.errors import EffunetError


def save(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 17
    rgb = images.read_rgb(save(tmp_path / "a.png", rgba))
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == 200).all() and (rgb[..., 1:] == 0).all()


def test_grayscale_expands_to_three_equal_channels(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    rgb = images.read_rgb(save(tmp_path / "g.png", gray))
    assert rgb.shape == (4, 5, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], gray)


def test_16_bit_is_scaled_to_8_bit(tmp_path):
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    rgb = images.read_rgb(save(tmp_path / "16.png", values))
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 255, 128])


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_png_error_names_the_file(tmp_path, damage):
    path = save(tmp_path / "bad.png", np.full((64, 64, 3), 7, np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x89PNG\r\n\x1a\n" + b"x" * 50)
    with pytest.raises(EffunetError, match="bad.png"):
        images.read_rgb(path)
    with pytest.raises(EffunetError, match="bad.png"):
        images.read_mask(path)


def test_missing_file_error_names_it(tmp_path):
    with pytest.raises(EffunetError, match="nothere.png"):
        images.read_rgb(tmp_path / "nothere.png")


def test_mask_from_palette_gif_is_binary(tmp_path):
    mask = np.zeros((6, 6), np.uint8)
    mask[2:4, 1:5] = 255
    path = tmp_path / "m.gif"
    Image.fromarray(mask, mode="L").save(path)
    np.testing.assert_array_equal(images.read_mask(path), mask > 0)


def test_resize_mask_stays_binary_and_keeps_area():
    mask = np.zeros((584, 565), bool)
    mask[100:300, 50:400] = True
    small = images.resize_mask(mask, (128, 128))
    assert small.shape == (128, 128)
    assert set(np.unique(small)) == {0, 255}
    expected_fraction = mask.mean()
    assert abs((small > 0).mean() - expected_fraction) < 0.01


def test_resize_rgb_is_smooth_not_nearest():
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    rgb = np.repeat(checker[..., None], 3, axis=-1)
    small = images.resize_rgb(rgb, (16, 16))
    assert small.shape == (16, 16, 3)
    assert np.abs(small.astype(int) - 127).max() <= 2  # averaged, not picked


def test_uint16_labels_round_trip(tmp_path):
    labels = np.array([[0, 1, 300], [65535, 2, 0]], dtype=np.uint16)
    images.write_png(tmp_path / "l.png", labels)
    np.testing.assert_array_equal(images.read_labels(tmp_path / "l.png"), labels)
    assert list(tmp_path.iterdir()) == [tmp_path / "l.png"]  # no temporary left behind
