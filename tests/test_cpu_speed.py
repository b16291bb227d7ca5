"""Faster CPU training without other numbers (issue 23 item 2): the decoder's aligned upsampling on
TensorFlow's resize kernel equals its interpolation formula (values and gradients, every offset it
serves), and a whole Eff-UNet gives the same outputs and gradients either way."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from effunet.models import build
from effunet.models.layers import AlignedUpSampling2D

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the resize kernel is TensorFlow's")


def formula(layer: AlignedUpSampling2D, x):
    """The layer's own interpolation, written out (the path of the other backends)."""
    return layer._double(layer._double(x, 1), 2)


@pytest.mark.parametrize("offset", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 4, 4, 16), (3, 1, 2, 2)])
def test_resize_kernel_equals_the_interpolation_formula(offset, shape):
    import tensorflow as tf

    layer = AlignedUpSampling2D(offset)
    rng = np.random.default_rng(int(offset * 10) + shape[1])
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    weights = tf.constant(rng.normal(size=(shape[0], 2 * shape[1], 2 * shape[2], shape[3])).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        fast, slow = layer(x), formula(layer, x)
        fast_loss, slow_loss = tf.reduce_sum(fast * weights), tf.reduce_sum(slow * weights)
    np.testing.assert_allclose(fast.numpy(), slow.numpy(), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(fast_loss, x).numpy(), tape.gradient(slow_loss, x).numpy(), atol=1e-5)


def test_the_layer_runs_on_the_resize_kernel_and_keeps_its_dtype():
    import tensorflow as tf

    layer = AlignedUpSampling2D(1.0)
    graph = tf.function(layer).get_concrete_function(tf.TensorSpec((None, 4, 6, 2), tf.float32)).graph
    assert "ResizeBilinear" in {op.type for op in graph.get_operations()}
    assert "StridedSlice" not in {op.type for op in graph.get_operations()}
    half = AlignedUpSampling2D(1.0, dtype="mixed_bfloat16")(tf.ones((1, 4, 6, 2)))  # as under mixed precision
    assert half.dtype == tf.bfloat16 and half.shape == (1, 8, 12, 2)
    assert AlignedUpSampling2D(0.25)(tf.ones((1, 2, 2, 1))).shape == (1, 4, 4, 1)  # other offsets: the formula
    unknown = tf.function(layer).get_concrete_function(tf.TensorSpec((None, None, None, 2), tf.float32))
    assert unknown(tf.ones((1, 3, 5, 2))).shape == (1, 6, 10, 2)


def test_an_effunet_gives_the_same_outputs_and_gradients_on_either_upsampling(monkeypatch):
    import tensorflow as tf

    model = build("effunet-b0", (64, 64, 3))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0, 255, (2, 64, 64, 3)).astype(np.float32))

    def outputs_and_gradients():
        with tf.GradientTape() as tape:
            y = model(x, training=False)  # training=True would add the encoder's random drop-connect
            loss = tf.reduce_mean(y * y)
        return y.numpy(), [g.numpy() for g in tape.gradient(loss, model.trainable_weights)]

    fast, fast_grads = outputs_and_gradients()
    monkeypatch.setattr(AlignedUpSampling2D, "call", formula)
    slow, slow_grads = outputs_and_gradients()
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5 * max(1.0, float(np.abs(b).max())))
