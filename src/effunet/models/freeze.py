"""Freezing the pretrained encoder while the decoder warms up."""

from __future__ import annotations

import logging

import keras

from effunet.errors import EffunetError
from effunet.models.encoders import ENCODER_NAME

log = logging.getLogger(__name__)


def find_encoder(model: keras.Model) -> keras.Model | None:
    """The nested backbone model named "encoder", or None for models without one (unet)."""
    return next((layer for layer in model.layers if layer.name == ENCODER_NAME), None)


def get_encoder(model: keras.Model) -> keras.Model:
    """The nested backbone model named "encoder" (EffunetError for models without one: unet)."""
    encoder = find_encoder(model)
    if encoder is None:
        raise EffunetError(f"model {model.name!r} has no pretrained encoder to freeze")
    return encoder


def set_encoder_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze (False) or unfreeze (True) the encoder; a frozen encoder's batch norms use their
    moving statistics. A compiled model must rebuild its train function afterwards (the
    `EncoderWarmup` callback does); `model.compile` again does it too."""
    get_encoder(model).trainable = trainable


class EncoderWarmup(keras.callbacks.Callback):
    """Train with a frozen encoder for the first `freeze_epochs` epochs, then unfreeze it.

    The optimizer is built for all weights before freezing, so unfreezing needs no recompile and
    the decoder's optimizer state carries over. With ``freeze_epochs=0`` it does nothing.
    """

    def __init__(self, freeze_epochs: int):
        super().__init__()
        if freeze_epochs < 0:
            raise EffunetError(f"freeze_epochs must be >= 0, got {freeze_epochs}")
        self.freeze_epochs = freeze_epochs

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if self.freeze_epochs and not optimizer.built:
            encoder = get_encoder(self.model)
            was_trainable, encoder.trainable = encoder.trainable, True
            optimizer.build(self.model.trainable_variables)
            encoder.trainable = was_trainable

    def on_epoch_begin(self, epoch, logs=None):
        if self.freeze_epochs:  # by epoch number, so a resumed fit (initial_epoch) is right too
            self._set(epoch >= self.freeze_epochs)

    def _set(self, trainable: bool) -> None:
        if get_encoder(self.model).trainable == trainable:
            return
        set_encoder_trainable(self.model, trainable)
        self.model.make_train_function(force=True)
        log.info("encoder %s", "unfrozen" if trainable else f"frozen until epoch {self.freeze_epochs}")
