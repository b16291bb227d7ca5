"""Decoder upsampling aligned with the encoder's stride-2 grids (issue 11 item 4, the edge artefact).

EfficientNet's stride-2 convolutions pad only below and to the right (TensorFlow "same" on even
sizes), so coarse feature i sits over input 2i + 1 at each level. Keras' bilinear upsampling assumes 2i + 0.5, which moves every decoded feature map by half a pixel per
level (15.5 px for EfficientNet's stride-32 features). The regression test gives a model controlled
weights (every kernel a positive constant: a symmetric blur; squeeze-excite off; batch norm the
identity) and checks that the receptive field of an output pixel is centred on that pixel.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from effunet.models import build
from effunet.models.layers import AlignedUpSampling2D


def ramp(n=4):
    return np.arange(n, dtype=np.float32).reshape(1, n, 1, 1) * np.ones((1, 1, 2, 1), np.float32)


@pytest.mark.parametrize("offset, expected", [
    (1.0, [0, 0, 0.5, 1, 1.5, 2, 2.5, 3]),  # coarse i at fine 2i + 1: fine j reads (j - 1) / 2
    (0.0, [0, 0.5, 1, 1.5, 2, 2.5, 3, 3]),  # coarse i at fine 2i: fine j reads j / 2
    (0.5, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]),  # half-pixel centres
])
def test_aligned_upsampling_reads_the_coarse_map_where_the_encoder_put_it(offset, expected):
    out = np.asarray(AlignedUpSampling2D(offset)(ramp()))
    assert out.shape == (1, 8, 4, 1)
    np.testing.assert_allclose(out[0, :, 0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(out[0, :, 0, 0], out[0, :, 3, 0])  # constant along the other axis


def test_half_pixel_offset_is_keras_bilinear_upsampling():
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype(np.float32)
    ours = np.asarray(AlignedUpSampling2D(0.5)(x))
    keras_bilinear = np.asarray(keras.layers.UpSampling2D(2, interpolation="bilinear")(x))
    np.testing.assert_allclose(ours, keras_bilinear, atol=1e-5)


def controlled(model: keras.Model) -> keras.Model:
    """Every convolution a positive constant kernel (a symmetric box blur) without bias, squeeze-excite
    convolutions zero (a constant gate), batch norm the identity, the head tiny (no saturation)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            fan = weights[0].shape[0] * weights[0].shape[1]
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            fan = weights[0].shape[-1]
        elif isinstance(layer, keras.layers.Conv2D):
            fan = int(np.prod(weights[0].shape[:-1]))
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([np.ones_like(weights[0]), np.zeros_like(weights[1]), np.zeros_like(weights[2]),
                               np.ones_like(weights[3]) - layer.epsilon])
            continue
        else:
            continue
        value = 0.0 if "_se_" in layer.name else (1e-4 if layer.name == "mask" else 1.0) / fan
        layer.set_weights([np.full_like(weights[0], value)] + [np.zeros_like(w) for w in weights[1:]])
    return model


def receptive_field_centre(model: keras.Model, size: int, pixel: int) -> np.ndarray:
    """Centre of mass of |d output[pixel, pixel] / d input| on a constant image, minus the pixel."""
    x = tf.constant(np.full((1, size, size, 3), 128.0, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = model(x, training=False)[0, pixel, pixel, 0]
    weight = tf.reduce_sum(tf.abs(tape.gradient(out, x)[0]), axis=-1).numpy().astype(np.float64)
    rows, cols = np.mgrid[:size, :size]
    assert weight.sum() > 0
    return np.array([(rows * weight).sum(), (cols * weight).sum()]) / weight.sum() - pixel


@pytest.mark.parametrize("name", ["effunet-b0"])
def test_output_pixels_look_at_their_own_place_in_the_input(name):
    keras.utils.set_random_seed(0)
    for pixel in (32, 31):
        aligned = receptive_field_centre(controlled(build(name, (64, 64, 3))), 64, pixel)
        np.testing.assert_allclose(aligned, 0.0, atol=0.05)
    unaligned = receptive_field_centre(controlled(build(name, (64, 64, 3), align_upsampling=False)), 64, 32)
    assert np.abs(unaligned).min() > 0.3  # the former decoder looks off to one side (the check bites)


def test_aligned_decoder_takes_any_multiple_of_32():
    model = build("effunet-b0", (None, None, 3), decoder_widths=(8, 8, 8, 8, 8))
    assert model(np.zeros((1, 64, 96, 3), np.float32)).shape == (1, 64, 96, 1)
    assert model(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 32, 32, 1)
