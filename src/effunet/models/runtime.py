"""Fast ways to run the models: compiled inference function and compile settings.

Measured on the 2-core CPU (benchmarks/README.md): XLA
(`jit_compile=True`) is several times slower on CPU, eager calls are slow, and `predict` traces on
its first call. `make_predict_fn` returns a traced, graph-compiled inference function; use
`jit_compile_default()` for `model.compile(jit_compile=...)` (Keras' "auto" turns XLA on).
"""

from __future__ import annotations

import keras
import tensorflow as tf


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def jit_compile_default() -> bool:
    """XLA where it pays off (a GPU); off on CPU, where it is ~4x slower for these models."""
    return has_gpu()


def make_predict_fn(model: keras.Model, jit_compile: bool | None = None):
    """A `tf.function` computing ``model(images, training=False)``; traced once per input shape.

    Takes a float32 batch (N, H, W, 3) in 0..255 (NumPy or tensor) and returns a tensor of
    probabilities (N, H, W, 1). `reduce_retracing` makes one trace serve varying batch sizes.
    """
    jit = jit_compile_default() if jit_compile is None else jit_compile

    @tf.function(reduce_retracing=True, jit_compile=jit)
    def predict(images):
        return model(images, training=False)

    return predict
