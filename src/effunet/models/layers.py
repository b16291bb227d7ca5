"""Custom layers, registered so that `keras.models.load_model(path, safe_mode=True)` works."""

from __future__ import annotations

import keras

from effunet.errors import EffunetError

_FUSED_MIN_EPSILON = 1.001e-5  # TF clamps smaller epsilons in fused_batch_norm


@keras.saving.register_keras_serializable(package="effunet")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TF's fused kernel (FusedBatchNormV3).

    Keras 3 computes batch norm as separate moments and arithmetic ops; on the TensorFlow backend
    one fused op is faster to train (one op and one gradient op per layer) and lets grappler fuse
    Conv2D + batch norm (+ ReLU) at inference. Same weights, config and semantics (the moving
    variance is updated with the biased batch variance, as Keras does); other backends, masks,
    renorm, non-channels-last axes and tiny epsilons fall back to the Keras implementation.
    """

    def call(self, inputs, training=None, mask=None):
        if not self._can_fuse(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = inputs if inputs.dtype in (tf.float16, tf.bfloat16, tf.float32) else tf.cast(inputs, tf.float32)
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
            )
            count = tf.cast(tf.size(x) // channels, tf.float32)
            variance = variance * (count - 1.0) / tf.maximum(count, 1.0)  # fused returns the unbiased one
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x,
                gamma,
                beta,
                mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32),
                epsilon=self.epsilon,
                data_format="NHWC",
                is_training=False,
            )
        return tf.cast(y, self.compute_dtype)

    def _can_fuse(self, inputs, mask) -> bool:
        axis = self.axis if isinstance(self.axis, int) else None
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and len(inputs.shape) == 4
            and axis in (-1, 3)
            and self.epsilon >= _FUSED_MIN_EPSILON
        )


def fuse_batch_norms(model: keras.Model) -> int:
    """Turn every plain Keras BatchNormalization in `model` (nested models too) into a
    `FusedBatchNormalization`, in place, keeping its weights and config; returns how many.

    The subclass adds no state, so switching the class of the existing layers (rather than
    cloning the backbone) keeps Keras' weight loading, layer names and graph untouched.
    """
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer) is keras.layers.BatchNormalization:
            layer.__class__ = FusedBatchNormalization
            count += 1
    return count


def set_batch_norm_momentum(model: keras.Model, momentum: float | None) -> keras.Model:
    """Set the moving-statistics momentum of every batch norm in `model` (nested models too), in
    place; None keeps each layer's own (Keras' 0.99). Returns the model."""
    if momentum is None:
        return model
    if not 0.0 < float(momentum) < 1.0:
        raise EffunetError(f"batch_norm_momentum must lie strictly between 0 and 1, got {momentum!r}")
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
    return model


@keras.saving.register_keras_serializable(package="effunet")
class AlignedUpSampling2D(keras.layers.Layer):
    """Bilinear x2 upsampling that puts each coarse feature where the encoder computed it.

    `grid_offset` a says where the encoder's stride-2 step centres coarse feature i on the finer
    grid: at 2i + a. Output pixel j then interpolates the coarse map at (j - a) / 2, clamped at
    the edges. a = 0.5 (a 2x2 pool) is exactly `UpSampling2D(2, interpolation="bilinear")`
    (half-pixel centres); a = 1 is TensorFlow's "same"-padded stride-2 convolution on an even size
    (EfficientNet: padding only below and to the right); a = 0 a symmetric-padded stride-2
    convolution (ResNet50). With the wrong a, each decoder step shifts the coarse features by
    (a - 0.5) of its own pixels, and the shifts add up over the levels (docs/edge-artefact.md).
    """

    interpolation = "bilinear"

    def __init__(self, grid_offset: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(grid_offset) <= 1.0:
            raise ValueError(f"grid_offset must lie in [0, 1], got {grid_offset}")
        self.grid_offset = float(grid_offset)

    def call(self, inputs):
        if keras.backend.backend() == "tensorflow" and self.grid_offset in (0.0, 0.5, 1.0):
            return self._resize_op(inputs)
        return self._double(self._double(inputs, 1), 2)

    def _resize_op(self, x):
        """TensorFlow's ResizeBilinear kernel (and its gradient kernel) for the offsets it has: a = 0
        is its legacy mode (fine j reads j / 2, clamped at the edge), a = 0.5 its half-pixel mode,
        and a = 1 the legacy mode on the map turned around (fine j reads (j - 1) / 2). The same
        interpolation as `_double` up to float round-off, and several times faster to train than its
        slices, concatenations and their gradients (benchmarks/profiles.md)."""
        import tensorflow as tf

        flip = self.grid_offset == 1.0
        images = tf.reverse(x, [1, 2]) if flip else x
        static = tuple(x.shape[1:3])
        size = [2 * n for n in static] if None not in static else tf.shape(x)[1:3] * 2
        half_pixel = self.grid_offset == 0.5
        y = tf.raw_ops.ResizeBilinear(images=images, size=size, align_corners=False, half_pixel_centers=half_pixel)
        y = tf.reverse(y, [1, 2]) if flip else y
        return tf.cast(y, x.dtype)  # the kernel computes and returns float32

    def _double(self, x, axis: int):
        ops = keras.ops
        a = self.grid_offset
        n = ops.shape(x)[axis]
        first, last = _take(x, 0, 1, axis), _take(x, n - 1, n, axis)
        previous = ops.concatenate([first, _take(x, 0, n - 1, axis)], axis=axis)
        following = ops.concatenate([_take(x, 1, n, axis), last], axis=axis)
        even = (a / 2) * previous + (1 - a / 2) * x  # coarse position k - a/2
        odd = (0.5 + a / 2) * x + (0.5 - a / 2) * following  # coarse position k + (1 - a)/2
        pair = ops.stack([even, odd], axis=axis + 1)
        shape = list(ops.shape(x))
        shape[axis] = shape[axis] * 2
        return ops.reshape(pair, [-1 if s is None else s for s in shape])

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for axis in (1, 2):
            shape[axis] = None if shape[axis] is None else shape[axis] * 2
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "grid_offset": self.grid_offset}


def _take(x, start, stop, axis: int):
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, stop)
    return x[tuple(index)]
