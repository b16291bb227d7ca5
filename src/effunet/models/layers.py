"""Custom layers, registered so that `keras.models.load_model(path, safe_mode=True)` works."""

from __future__ import annotations

import keras

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
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
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
