"""The losses a model is trained with (`train.loss`: bce, dice, bce+dice), serialisable in .keras files.

Below both training (`effunet.training.losses` adds the per-channel loss and the pooled metrics) and
evaluation (`effunet.scoring.image_losses` scores every image with the run's loss), so that
evaluation needs nothing from `effunet.training`.
"""

from __future__ import annotations

import keras
from keras import ops

from effunet.errors import ConfigError

SMOOTH = 1.0


@keras.saving.register_keras_serializable(package="effunet")
class SoftDiceLoss(keras.losses.Loss):
    """1 - soft Dice over the whole batch (pooled), so empty images do not dominate."""

    def __init__(self, name="dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        overlap = ops.sum(y_true * y_pred)
        dice = (2.0 * overlap + SMOOTH) / (ops.sum(y_true) + ops.sum(y_pred) + SMOOTH)
        return ops.broadcast_to(1.0 - dice, ops.shape(y_true)[:1])


@keras.saving.register_keras_serializable(package="effunet")
class BceDiceLoss(keras.losses.Loss):
    """Binary cross-entropy plus soft Dice, equally weighted."""

    def __init__(self, name="bce_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.bce = keras.losses.BinaryCrossentropy()
        self.dice = SoftDiceLoss()

    def call(self, y_true, y_pred):
        return self.bce(y_true, y_pred) + self.dice(y_true, y_pred)


def make_loss(name: str) -> keras.losses.Loss:
    if name == "bce":
        return keras.losses.BinaryCrossentropy(name="bce")
    if name == "dice":
        return SoftDiceLoss()
    if name == "bce+dice":
        return BceDiceLoss()
    raise ConfigError(f"config key train.loss: unknown loss {name!r} (bce, dice, bce+dice)")
