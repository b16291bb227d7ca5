"""Adam and AdamW whose per-variable update is one fused TensorFlow op (ResourceApplyAdam).

Keras 3 builds Adam's update from about twenty small ops per variable; for the encoder models
(hundreds of variables) building that part of the training graph is a large share of a job's
start-up on the CPU. Measured on the shared 2-core machine (CPU seconds of the process): the first
`fit` of effunet-b0 at 64x64 took 74 s with Keras' Adam and 14 s with SGD; the first two epochs at
32x32 took 65 s with Keras' Adam and 45 s with this fused update. `benchmarks/bench_startup.py`
measures the first step of both Adams. TensorFlow's fused kernel computes the same update, with
the same slots (`momentums`, `velocities`) and the same epsilon placement:

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m <- m + (g - m) (1 - beta_1);  v <- v + (g^2 - v) (1 - beta_2);  w <- w - alpha m / (sqrt(v) + eps)

so checkpoints and saved optimizers are interchangeable with Keras' own. Other backends, AMSGrad and
non-float32 variables fall back to Keras' implementation.
"""

from __future__ import annotations

import keras


class _FusedAdamUpdate:
    """Mixin for keras.optimizers.Adam / AdamW: the fused update where it applies."""

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow" or self.amsgrad or variable.dtype != "float32":
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        step = tf.cast(self.iterations + 1, tf.float32)
        beta_1, beta_2 = tf.constant(self.beta_1, tf.float32), tf.constant(self.beta_2, tf.float32)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=m.handle,
            v=v.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, tf.float32),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.constant(self.epsilon, tf.float32),
            grad=tf.cast(gradient, tf.float32),
            use_locking=False,
        )


@keras.saving.register_keras_serializable(package="effunet")
class Adam(_FusedAdamUpdate, keras.optimizers.Adam):
    """keras.optimizers.Adam with the fused update."""


@keras.saving.register_keras_serializable(package="effunet")
class AdamW(_FusedAdamUpdate, keras.optimizers.AdamW):
    """keras.optimizers.AdamW (decoupled weight decay, applied before the update) with the fused update."""
