"""The classic U-Net (Ronneberger et al. 2015), with batch norm and same-padding convolutions."""

from __future__ import annotations

import logging

import keras
from keras import layers

from effunet.errors import EffunetError
from effunet.models.decoder import conv_block, model_from_features
from effunet.models.encoders import normalise_weights
from effunet.models.layers import set_batch_norm_momentum

log = logging.getLogger(__name__)

DEFAULT_BASE_FILTERS = 64
DEPTH = 4  # levels down and up; the bottleneck sits at stride 16


def default_decoder_widths(base_filters: int = DEFAULT_BASE_FILTERS) -> tuple[int, ...]:
    """The classic decoder: the encoder widths reversed, (512, 256, 128, 64) for 64 base filters."""
    return tuple(base_filters * 2**level for level in reversed(range(DEPTH)))


def build_unet(
    inputs,
    *,
    encoder_weights=None,
    decoder_widths=None,
    name="unet",
    base_filters=DEFAULT_BASE_FILTERS,
    batch_norm_momentum=None,
    channels=1,
) -> keras.Model:
    """U-Net on `inputs` (0..255): DEPTH x (conv block, 2x2 max-pool), bottleneck, DEPTH up-steps.

    A conv block is two 3x3 conv + BN + ReLU. Encoder widths are ``base_filters * (1, 2, 4, 8)``,
    the bottleneck ``16 * base_filters``; each decoder step is a 2x2 transposed conv, the concat
    with the encoder block of the same resolution and a conv block; the head has `channels` outputs.
    The U-Net has no pretrained encoder: `encoder_weights` must be none or "imagenet" (then ignored,
    with a log line). `batch_norm_momentum` (None: Keras' 0.99) is set on every batch norm.
    """
    _check_no_encoder_weights(encoder_weights)
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    skips = []
    for level in range(DEPTH):
        x = conv_block(x, base_filters * 2**level, name=f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = conv_block(x, base_filters * 2**DEPTH, name="bottleneck")
    widths = decoder_widths or default_decoder_widths(base_filters)
    model = model_from_features(inputs, x, skips[::-1], widths, "transpose", name, channels=channels)
    return set_batch_norm_momentum(model, batch_norm_momentum)


def _check_no_encoder_weights(encoder_weights) -> None:
    encoder_weights = normalise_weights(encoder_weights)
    if encoder_weights is None:
        return
    if encoder_weights == "imagenet":
        log.info("unet has no pretrained encoder; encoder_weights='imagenet' ignored")
        return
    raise EffunetError(f"encoder_weights: unet has no pretrained encoder, got the file {encoder_weights!r}")
