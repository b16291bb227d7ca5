"""Training's loss per channel (`ChannelLoss`) and pooled pixel metrics (IoU, Dice), serialisable in .keras
files; the losses themselves (bce, dice, bce+dice: `make_loss`) are `effunet.losses`, re-exported here."""

from __future__ import annotations

import keras
from keras import ops

from effunet.losses import SMOOTH, BceDiceLoss, SoftDiceLoss, make_loss

__all__ = [
    "SMOOTH",
    "BceDiceLoss",
    "ChannelLoss",
    "PooledDice",
    "PooledIoU",
    "SoftDiceLoss",
    "TargetAccuracy",
    "make_loss",
    "make_metrics",
    "target_accuracy",
]


class _PixelCounts(keras.metrics.Metric):
    """True/false positives and false negatives at threshold 0.5, summed over every pixel of the epoch."""

    def __init__(self, name, threshold=0.5, **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = threshold
        self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.fp = self.add_variable(shape=(), initializer="zeros", name="fp")
        self.fn = self.add_variable(shape=(), initializer="zeros", name="fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = y_true[..., :1], y_pred[..., :1]  # the foreground (train.instances adds a channel)
        truth = ops.cast(y_true > 0.5, "float32")
        predicted = ops.cast(y_pred > self.threshold, "float32")
        self.tp.assign_add(ops.sum(truth * predicted))
        self.fp.assign_add(ops.sum((1.0 - truth) * predicted))
        self.fn.assign_add(ops.sum(truth * (1.0 - predicted)))

    def reset_state(self):
        for variable in (self.tp, self.fp, self.fn):
            variable.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="effunet")
class PooledIoU(_PixelCounts):
    """Foreground IoU = TP / (TP + FP + FN); 1 when both truth and prediction are empty."""

    def __init__(self, name="iou", **kwargs):
        super().__init__(name=name, **kwargs)

    def result(self):
        union = self.tp + self.fp + self.fn
        return ops.where(union > 0, self.tp / ops.maximum(union, 1.0), 1.0)


@keras.saving.register_keras_serializable(package="effunet")
class PooledDice(_PixelCounts):
    """Dice = 2 TP / (2 TP + FP + FN); 1 when both truth and prediction are empty."""

    def __init__(self, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)

    def result(self):
        denominator = 2.0 * self.tp + self.fp + self.fn
        return ops.where(denominator > 0, 2.0 * self.tp / ops.maximum(denominator, 1.0), 1.0)


def target_accuracy(y_true, y_pred, threshold=0.5):
    """Per-pixel agreement of targets thresholded at 0.5 (soft area-fraction targets included)
    with predictions thresholded at `threshold`; Keras' binary_accuracy compares y_true as is.
    The foreground channel only (`train.instances: boundary` adds a boundary channel)."""
    y_true, y_pred = y_true[..., :1], y_pred[..., :1]
    agree = ops.equal(ops.cast(y_true, "float32") > 0.5, ops.cast(y_pred, "float32") > threshold)
    return ops.mean(ops.cast(agree, "float32"), axis=-1)


@keras.saving.register_keras_serializable(package="effunet")
class TargetAccuracy(keras.metrics.BinaryAccuracy):
    """`keras.metrics.BinaryAccuracy` with the targets thresholded at 0.5 too (`target_accuracy`)."""

    def __init__(self, name="accuracy", dtype=None, threshold=0.5):
        super().__init__(name=name, dtype=dtype, threshold=threshold)
        self._fn = target_accuracy


def make_metrics() -> list[keras.metrics.Metric]:
    """Pixel accuracy (the study's metric), IoU and Dice, all at threshold 0.5, with targets
    (hard 0/1 or soft area fractions) thresholded at 0.5; of the foreground (first) channel."""
    return [TargetAccuracy(), PooledIoU(), PooledDice()]


@keras.saving.register_keras_serializable(package="effunet")
class ChannelLoss(keras.losses.Loss):
    """`loss` (a `train.loss` name) on the foreground channel plus `boundary_weight` times the same
    loss on the boundary channel (`train.instances: boundary`, see `effunet.training.instances`)."""

    def __init__(self, loss="bce", boundary_weight=1.0, name="channel_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.loss, self.boundary_weight = loss, float(boundary_weight)
        self.foreground, self.boundary = make_loss(loss), make_loss(loss)

    def call(self, y_true, y_pred):
        return self.foreground(y_true[..., :1], y_pred[..., :1]) + self.boundary_weight * self.boundary(
            y_true[..., 1:2], y_pred[..., 1:2]
        )

    def get_config(self):
        return {**super().get_config(), "loss": self.loss, "boundary_weight": self.boundary_weight}
