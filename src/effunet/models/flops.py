"""Parameters and FLOPs of a model at a given input size, for the comparison table.

On TensorFlow, FLOPs are TensorFlow's profiler count of floating-point operations of one forward
pass (inference mode, batch 1) on the traced graph: a multiply-add counts as 2 FLOPs, so a KxK conv
costs 2*K*K*C_in*C_out*H_out*W_out (+ H*W*C_out for a bias). Element-wise ops the profiler has
statistics for (batch norm, additions, activations) are included; resizes are not. The graph is
not frozen first: the count is the same (checked for unet and effunet-b0) and freezing cost more
than half of the time of a training job's FLOPs count.

Other backends have no such profiler: `layer_flops` counts the convolutions (plain, depthwise,
transposed) and dense layers with the same formula from the layers' shapes, which is the
profiler's count without the element-wise ops (equal for a model of convolutions only).
`count_flops` picks the one for the running backend.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from effunet.models.registry import build


def profiler_flops(model: keras.Model, input_shape=None) -> int:
    """Forward-pass FLOPs of `model` for one image of `input_shape` (default: the model's), TF only."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

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


_COUNTED = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)


def _layer_flops(layer) -> int:
    if not isinstance(layer, _COUNTED):
        return 0
    kernel = tuple(layer.kernel.shape)
    if isinstance(layer, keras.layers.Conv2DTranspose):  # every input pixel meets the whole kernel
        _, height, width, _ = layer.input.shape
        flops = 2 * math.prod(kernel) * height * width
        out_pixels = math.prod(layer.output.shape[1:3])
    elif isinstance(layer, keras.layers.Dense):
        positions = math.prod(layer.output.shape[1:-1])
        flops, out_pixels = 2 * math.prod(kernel) * positions, positions
    else:  # Conv2D (kernel kh, kw, c_in/groups, c_out) and DepthwiseConv2D (kh, kw, c_in, multiplier)
        out_pixels = math.prod(layer.output.shape[1:3])
        flops = 2 * math.prod(kernel) * out_pixels
    bias = getattr(layer, "use_bias", False) and layer.bias is not None
    return int(flops + (layer.output.shape[-1] * out_pixels if bias else 0))


def layer_flops(model: keras.Model, input_shape=None) -> int:
    """FLOPs of the convolutions and dense layers of one forward pass, from the layers' shapes.

    The model's own input shape must be known; another `input_shape` scales the count by the
    ratio of pixels (exact for these fully convolutional models).
    """
    own = tuple(model.input_shape[1:])
    if None in own[:2]:
        raise ValueError(f"{model.name} has no fixed input size; build it with one to count FLOPs")
    total = sum(_layer_flops(layer) for layer in model._flatten_layers(include_self=False, recursive=True))
    if input_shape is not None and tuple(input_shape[:2]) != own[:2]:
        total = total * math.prod(input_shape[:2]) // math.prod(own[:2])
    return int(total)


def count_flops(model: keras.Model, input_shape=None) -> int:
    """Forward-pass FLOPs of one image: TF's profiler on TensorFlow, the convolution count elsewhere."""
    if keras.backend.backend() == "tensorflow":
        return profiler_flops(model, input_shape)
    return layer_flops(model, input_shape)


def model_complexity(name: str, input_shape=(128, 128, 3), **build_kwargs) -> dict:
    """Parameters (total, trainable, encoder) and forward FLOPs of model `name` at `input_shape`."""
    model = build(name, input_shape, **build_kwargs)
    encoder = next((layer for layer in model.layers if layer.name == "encoder"), None)
    return {
        "model": name,
        "input_shape": tuple(input_shape),
        "params": model.count_params(),
        "trainable_params": sum(int(np.prod(w.shape)) for w in model.trainable_weights),
        "encoder_params": encoder.count_params() if encoder is not None else 0,
        "flops": count_flops(model),
    }
