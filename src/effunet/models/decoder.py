"""The U-Net decoder shared by every model: upsample by 2, concatenate the skip, conv blocks."""

from __future__ import annotations

import keras
from keras import layers

from effunet.models.layers import AlignedUpSampling2D, FusedBatchNormalization

# Widths of the five decoder steps (strides 16, 8, 4, 2, 1), as segmentation_models_pytorch's Unet.
DEFAULT_DECODER_WIDTHS = (256, 128, 64, 32, 16)
UPSAMPLING = ("bilinear", "nearest", "transpose")


def conv_block(x, width: int, name: str, convs: int = 2):
    """`convs` x (3x3 conv without bias -> batch norm -> ReLU)."""
    for i in range(1, convs + 1):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = FusedBatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def upsample(x, width: int, mode: str, name: str, grid_offset: float = 0.5):
    """Double the resolution: bilinear/nearest resize, or a learned 2x2 transposed conv (`width`).

    Bilinear upsampling puts coarse feature i at 2i + `grid_offset` of the finer grid, where the
    encoder's stride-2 step centred it (`AlignedUpSampling2D`; 0.5 is Keras' half-pixel resize).
    """
    if mode == "transpose":
        return layers.Conv2DTranspose(width, 2, strides=2, name=f"{name}_upconv")(x)
    if mode == "bilinear" and grid_offset != 0.5:
        return AlignedUpSampling2D(grid_offset, name=f"{name}_up")(x)
    return layers.UpSampling2D(2, interpolation=mode, name=f"{name}_up")(x)


def unet_decoder(bottleneck, skips, widths, upsampling: str = "bilinear", prefix: str = "decoder",
                 grid_offset: float = 0.5):
    """Decode from `bottleneck` through `skips` (coarsest first); one step per width.

    Step i upsamples by 2 (`upsample`, with the encoder's `grid_offset`), concatenates ``skips[i]`` when there is one (the steps past the last
    skip only upsample), and applies `conv_block` with ``widths[i]`` filters.
    """
    x = bottleneck
    for i, width in enumerate(widths):
        name = f"{prefix}{i}"
        x = upsample(x, width, upsampling, name, grid_offset)
        if i < len(skips):
            x = layers.Concatenate(name=f"{name}_concat")([x, skips[i]])
        x = conv_block(x, width, name)
    return x


def segmentation_head(x, channels: int = 1):
    """1x1 conv to `channels` sigmoid outputs (1: the mask; 2: mask and nucleus boundary, see
    `effunet.training.instances`), kept in float32 under mixed precision."""
    return layers.Conv2D(channels, 1, activation="sigmoid", dtype="float32", name="mask")(x)


def model_from_features(inputs, bottleneck, skips, widths, upsampling: str, name: str,
                        grid_offset: float = 0.5, channels: int = 1) -> keras.Model:
    """Assemble decoder and head (`channels` outputs) onto encoder features into a `keras.Model`."""
    x = unet_decoder(bottleneck, skips, widths, upsampling, grid_offset=grid_offset)
    return keras.Model(inputs, segmentation_head(x, channels), name=name)
