"""Parameters and FLOPs of a model at a given input size, for the comparison table.

FLOPs are TensorFlow's profiler count of floating-point operations of one forward pass
(inference mode, batch 1) on the traced graph: a multiply-add counts as 2 FLOPs, so a KxK conv
costs 2*K*K*C_in*C_out*H_out*W_out (+ H*W*C_out for a bias). Element-wise ops the profiler has
statistics for (batch norm, additions, activations) are included; resizes are not. The graph is
not frozen first: the count is the same (checked for unet and effunet-b0) and freezing cost more
than half of the time of a training job's FLOPs count.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from tensorflow.python.profiler import model_analyzer, option_builder

from effunet.models.registry import build


def count_flops(model: keras.Model, input_shape=None) -> int:
    """Forward-pass FLOPs of `model` for one image of `input_shape` (default: the model's)."""
    shape = tuple(input_shape or model.input_shape[1:])
    spec = tf.TensorSpec((1, *shape), model.inputs[0].dtype)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    options = option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
    options = options.with_empty_output().build()
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # the v1 profiler API logs a deprecation notice on every call
    try:
        profile = model_analyzer.profile(graph=concrete.graph, options=options)
    finally:
        logger.setLevel(level)
    return int(profile.total_float_ops)


def model_complexity(name: str, input_shape=(128, 128, 3), **build_kwargs) -> dict:
    """Parameters (total, trainable, encoder) and forward FLOPs of model `name` at `input_shape`."""
    model = build(name, input_shape, **build_kwargs)
    encoder = next((layer for layer in model.layers if layer.name == "encoder"), None)
    return {
        "model": name,
        "input_shape": tuple(input_shape),
        "params": model.count_params(),
        "trainable_params": sum(int(tf.size(w)) for w in model.trainable_weights),
        "encoder_params": encoder.count_params() if encoder is not None else 0,
        "flops": count_flops(model),
    }
