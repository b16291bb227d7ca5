"""Model names -> builders. Every builder shares one signature and returns an uncompiled model.

    builder(inputs, *, encoder_weights, decoder_widths, name, **options) -> keras.Model

`inputs` is the `keras.Input` made by `build`: float32 RGB images in 0..255, channels-last.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

import keras

from effunet.errors import EffunetError
from effunet.models import encoders
from effunet.models.decoder import DEFAULT_DECODER_WIDTHS, UPSAMPLING, model_from_features
from effunet.models.layers import fuse_batch_norms, set_batch_norm_momentum
from effunet.models.unet import DEPTH, build_unet

SIZE_MULTIPLE = 32  # every model downsamples 5 times (the U-Net 4 times; one rule for all)
INPUT_NAME = "image"


def build_encoder_unet(
    inputs,
    *,
    encoder,
    encoder_weights=None,
    decoder_widths=None,
    name="encoder_unet",
    encoder_head=False,
    upsampling="bilinear",
    align_upsampling=True,
    batch_norm_momentum=None,
    channels=1,
) -> keras.Model:
    """A Keras backbone (strides 2..32) with the U-Net decoder: 5 steps of upsample x2, concat the
    encoder feature of the same resolution, two conv blocks; then a 1x1 sigmoid head (`channels`
    outputs).

    `encoder_head=True` decodes from EfficientNet's 1x1 head conv (``top_activation``) instead of
    the last block; `upsampling` is "bilinear" (Eff-UNet, default), "nearest" or "transpose".
    `align_upsampling=True` makes bilinear upsampling put each coarse feature where the encoder's
    stride-2 steps centred it (`encoders.grid_offset`: EfficientNet only); False is Keras'
    half-pixel upsampling, which puts EfficientNet's stride-32 features 15.5 px up and left of
    where they were computed (docs/edge-artefact.md). `batch_norm_momentum` (None: Keras' 0.99) is set on every batch norm.
    """
    if upsampling not in UPSAMPLING:
        raise EffunetError(f"upsampling must be one of {', '.join(UPSAMPLING)}, got {upsampling!r}")
    encoder_model = encoders.build_encoder(encoder, tuple(inputs.shape[1:]), encoder_weights, encoder_head)
    fuse_batch_norms(encoder_model)
    preprocess = encoders.preprocessing_layer(encoder)
    features = encoder_model(preprocess(inputs) if preprocess else inputs)
    widths = decoder_widths or DEFAULT_DECODER_WIDTHS
    offset = encoders.grid_offset(encoder) if align_upsampling else 0.5
    model = model_from_features(inputs, features[-1], features[-2::-1], widths, upsampling, name, offset, channels)
    return set_batch_norm_momentum(model, batch_norm_momentum)



_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "unet": build_unet,
    "resnet50-unet": partial(build_encoder_unet, encoder="resnet50"),
    **{f"effunet-b{i}": partial(build_encoder_unet, encoder=f"efficientnet-b{i}") for i in range(8)},
}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)
_DECODER_STEPS = {name: DEPTH if name == "unet" else 5 for name in MODEL_NAMES}


def build(name: str, input_shape=(128, 128, 3), *, encoder_weights=None, decoder_widths=None, channels: int = 1,
          **options):
    """Build the uncompiled model `name` (one of MODEL_NAMES) for RGB 0..255 images.

    input_shape: (height, width, 3), each side a multiple of 32 (or None for any such size).
    encoder_weights: None/"none" (random), "imagenet" (Keras download and cache) or a path to
        the no-top backbone's weights file (see `effunet.models.encoders`).
    decoder_widths: filters of the decoder steps, coarsest first; default (256, 128, 64, 32, 16)
        for the encoder U-Nets, base_filters * (8, 4, 2, 1) for the U-Net.
    channels: sigmoid outputs (1: the mask; 2: mask and nucleus boundary, `train.instances`).
    options: builder-specific keywords (all: batch_norm_momentum; unet: base_filters; others: encoder_head, upsampling,
        align_upsampling, batch_norm_momentum).
    """
    builder = _builder(name)
    shape = check_input_shape(input_shape)
    widths = check_decoder_widths(name, decoder_widths)
    _check_options(name, builder, options)
    if not isinstance(channels, int) or channels < 1:
        raise EffunetError(f"channels must be a positive integer, got {channels!r}")
    inputs = keras.Input(shape, name=INPUT_NAME)
    return builder(
        inputs, encoder_weights=encoders.normalise_weights(encoder_weights), decoder_widths=widths, name=name.replace("-", "_"),
        channels=channels, **options
    )


def check_input_shape(input_shape) -> tuple:
    """(H, W, 3) with H and W multiples of 32 (or None); else EffunetError naming the shape."""
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[2] != 3:
        raise EffunetError(f"input_shape must be (height, width, 3) RGB, got {shape}")
    for side in shape[:2]:
        if side is not None and (int(side) <= 0 or int(side) % SIZE_MULTIPLE):
            raise EffunetError(
                f"input_shape {shape}: height and width must be positive multiples of {SIZE_MULTIPLE} "
                f"(the encoders downsample 5 times); resize or pad the images, e.g. to "
                f"{_round_up(shape[0])}x{_round_up(shape[1])}"
            )
    return shape


def check_decoder_widths(name: str, widths) -> tuple[int, ...] | None:
    if widths is None:
        return None
    widths = tuple(widths)
    steps = _DECODER_STEPS[name]
    if len(widths) != steps or not all(isinstance(w, int) and w > 0 for w in widths):
        raise EffunetError(f"decoder_widths for {name} must be {steps} positive integers, got {widths}")
    return widths


def _builder(name: str) -> Callable[..., keras.Model]:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise EffunetError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}") from None


def option_names(name: str) -> set[str]:
    """The options a config may set for model `name` (its builder's keywords, decoder_widths included)."""
    fixed = {"inputs", "encoder", "encoder_weights", "name", "channels"}  # channels: from train.instances
    return set(inspect.signature(_builder(name)).parameters) - fixed


def decoder_steps(name: str) -> int:
    return _DECODER_STEPS[name]


def _check_options(name: str, builder, options: dict) -> None:
    allowed = option_names(name) - {"decoder_widths"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise EffunetError(f"unknown option(s) {unknown} for model {name}; it accepts {sorted(allowed)}")


def _round_up(side) -> int | None:
    return None if side is None else -(-int(side) // SIZE_MULTIPLE) * SIZE_MULTIPLE
