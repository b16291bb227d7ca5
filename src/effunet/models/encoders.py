"""Pretrained-able encoders: which Keras backbone, which layers give the skip features, preprocessing.

Every encoder is a `keras.applications` no-top backbone cut into a multi-output `keras.Model`
named ``"encoder"`` whose outputs are the feature maps at strides 2, 4, 8, 16 and 32 (finest
first). The skip features are the output of the *last block at each resolution*:

| encoder          | stride 2              | 4                  | 8                  | 16                 | 32                  |
|------------------|-----------------------|--------------------|--------------------|--------------------|---------------------|
| efficientnet-b0  | block1a_project_bn 16 | block2b_add 24     | block3b_add 40     | block5c_add 112    | block7a_project_bn 320 |
| resnet50         | conv1_relu 64         | conv2_block3_out 256 | conv3_block4_out 512 | conv4_block6_out 1024 | conv5_block3_out 2048 |

For the other EfficientNets the same stages (1, 2, 3, 5, 7) are used; the block letters grow with
depth (B7: ``block1d_add`` ... ``block7d_add``). With ``head=True`` the EfficientNet stride-32
feature is ``top_activation`` (the 1x1 head conv, 1280 channels for B0) instead, so the encoder
holds every weight of the Keras no-top backbone.

Input contract: float images in 0..255, RGB, channels-last. Each encoder normalises inside the
graph: Keras' EfficientNet has its own rescaling and normalisation layers, set here to
(x/255 - ImageNet mean) / ImageNet std for every weights option; ResNet50 gets `CaffePreprocess`
(RGB->BGR, ImageNet mean subtraction), exactly `keras.applications.resnet50.preprocess_input`.

Encoder weights (`encoder_weights`):

- ``None`` / ``"none"``: random initialisation;
- ``"imagenet"``: the no-top file Keras downloads (`EncoderSpec.weights_file` from
  `EncoderSpec.weights_url`, md5-checked), cached under ``$KERAS_HOME/models`` (default
  ``~/.keras/models``); offline without it: EffunetError saying what to fetch and where to put it;
- a path: a weights file of the *no-top backbone*, either the file Keras downloads (legacy
  ``.h5``, e.g. ``efficientnetb0_notop.h5``; copy it from an online machine's ``~/.keras/models``)
  or a Keras 3 ``.weights.h5`` written by ``keras.applications.EfficientNetB0(include_top=False,
  weights=None).save_weights(...)`` or `build_backbone(...).save_weights(...)`.
  Keras' ImageNet EfficientNet files store the std where the normalisation variance belongs
  (Keras compensates with an extra layer); loading such a file squares it back.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from effunet.errors import EffunetError

log = logging.getLogger(__name__)

ENCODER_NAME = "encoder"

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

_EFFNET_URL = "https://storage.googleapis.com/keras-applications/"
_RESNET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# md5 of the no-top files, as in keras.applications (checked by keras.utils.get_file).
_NOTOP_MD5 = {
    "efficientnet-b0": "50bc09e76180e00e4465e1a485ddc09d",
    "efficientnet-b1": "74c4e6b3e1f6a1eea24c589628592432",
    "efficientnet-b2": "111f8e2ac8aa800a7a99e3239f7bfb39",
    "efficientnet-b3": "af6d107764bb5b1abb91932881670226",
    "efficientnet-b4": "ebc24e6d6c33eaebbd558eafbeedf1ba",
    "efficientnet-b5": "38879255a25d3c92d5e44e04ae6cec6f",
    "efficientnet-b6": "9ecce42647a20130c1f39a5d4cb75743",
    "efficientnet-b7": "cbcfe4450ddf6f3ad90b1b398090fe4a",
    "resnet50": "4d473c1dd8becc155b73f8504c6f6626",
}


@keras.saving.register_keras_serializable(package="effunet")
class CaffePreprocess(keras.layers.Layer):
    """RGB 0..255 -> BGR minus the ImageNet mean: `keras.applications.resnet50.preprocess_input`.

    Computed in float32 whatever the global dtype policy (bfloat16 would round the centred values).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mean_bgr = CAFFE_MEAN_BGR

    def call(self, inputs):
        mean = keras.ops.convert_to_tensor(self.mean_bgr, dtype=inputs.dtype)
        return keras.ops.flip(inputs, axis=-1) - mean

    def compute_output_shape(self, input_shape):
        return input_shape


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one encoder: the Keras application and its weights file."""

    name: str
    application: str  # attribute of keras.applications
    weights_file: str  # the no-top file Keras downloads
    weights_url: str

    @property
    def is_efficientnet(self) -> bool:
        return self.name.startswith("efficientnet")


def _efficientnet_spec(variant: str) -> EncoderSpec:
    file_name = f"efficientnet{variant}_notop.h5"
    return EncoderSpec(
        name=f"efficientnet-{variant}",
        application=f"EfficientNet{variant.upper()}",
        weights_file=file_name,
        weights_url=_EFFNET_URL + file_name,
    )


_RESNET50_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
ENCODERS: dict[str, EncoderSpec] = {
    "resnet50": EncoderSpec("resnet50", "ResNet50", _RESNET50_FILE, _RESNET_URL + _RESNET50_FILE),
    **{f"efficientnet-b{i}": _efficientnet_spec(f"b{i}") for i in range(8)},
}

_RESNET50_FEATURES = (
    "conv1_relu",
    "conv2_block3_out",
    "conv3_block4_out",
    "conv4_block6_out",
    "conv5_block3_out",
)
_EFFICIENTNET_STAGES = (1, 2, 3, 5, 7)  # the last stage at strides 2, 4, 8, 16, 32


def grid_offset(encoder: str) -> float:
    """Where each stride-2 step of `encoder` centres output i on its input grid: at 2i + offset.

    EfficientNet pads its stride-2 convolutions like TensorFlow's "same" on even sizes (nothing
    above and left, one row and column below and right; `imagenet_utils.correct_pad`), so a 3x3 or
    5x5 window centres output i on input 2i + 1 (checked in tests/test_alignment.py). ResNet50 is
    left at 0.5, the plain half-pixel upsampling: by its layers (symmetric padding, 1x1 stride-2
    convolutions) its grid sits at 2i, but that was not measured here (its 3x3 max pool defeats the
    constant-input check), so resnet50-unet keeps the decoder the study used.
    """
    return 1.0 if _spec(encoder).is_efficientnet else 0.5


def feature_layer_names(backbone: keras.Model, encoder: str, head: bool = False) -> list[str]:
    """Names of the backbone layers whose outputs are the features at strides 2..32."""
    if encoder == "resnet50":
        return list(_RESNET50_FEATURES)
    names = [layer.name for layer in backbone.layers]
    features = []
    for stage in _EFFICIENTNET_STAGES:
        block_outputs = [
            n for n in names if n.startswith(f"block{stage}") and n.endswith(("_add", "_project_bn"))
        ]
        features.append(block_outputs[-1])
    if head:
        features[-1] = "top_activation"
    return features


def build_backbone(encoder: str, input_shape: tuple, weights=None) -> keras.Model:
    """The Keras no-top backbone for `encoder`, with `weights` (None, "imagenet" or a path) loaded."""
    spec = _spec(encoder)
    constructor = getattr(keras.applications, spec.application)
    backbone = constructor(include_top=False, weights=None, input_shape=input_shape)
    if spec.is_efficientnet:
        _set_imagenet_normalization(backbone)
    path = resolve_weights(encoder, weights)
    if path is not None:
        load_backbone_weights(backbone, path)
    return backbone


def build_encoder(encoder: str, input_shape: tuple, weights=None, head: bool = False) -> keras.Model:
    """A multi-output `keras.Model` named "encoder": features at strides 2, 4, 8, 16, 32."""
    backbone = build_backbone(encoder, input_shape, weights)
    names = feature_layer_names(backbone, encoder, head)
    outputs = [backbone.get_layer(name).output for name in names]
    return keras.Model(backbone.inputs, outputs, name=ENCODER_NAME)


def preprocessing_layer(encoder: str) -> keras.layers.Layer | None:
    """The in-graph preprocessing to put before the encoder (None: the backbone has its own)."""
    return CaffePreprocess(name="caffe_preprocess") if encoder == "resnet50" else None


def weights_cache_dir() -> Path:
    """Where Keras caches downloaded weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def normalise_weights(weights) -> str | None:
    """The one reading of `encoder_weights`: None for random initialisation (None or "none", any
    case), "imagenet" (any case), or the path given, as a string."""
    if weights is None:
        return None
    text = str(weights).strip()
    if text.lower() in ("none", "imagenet"):
        return None if text.lower() == "none" else "imagenet"
    return text


def resolve_weights(encoder: str, weights) -> Path | None:
    """The weights file for `weights` (None/"none", "imagenet" or a path); None for random init."""
    weights = normalise_weights(weights)
    if weights is None:
        return None
    if weights == "imagenet":
        return _fetch_imagenet(_spec(encoder))
    path = Path(weights).expanduser()
    if not path.is_file():
        raise EffunetError(
            f"encoder_weights: {str(weights)!r} is neither 'none', 'imagenet' nor an existing file"
        )
    return path


def load_backbone_weights(backbone: keras.Model, path: Path) -> None:
    """Load a no-top backbone weights file (Keras' legacy .h5 or a Keras 3 .weights.h5)."""
    try:
        backbone.load_weights(str(path))
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError for foreign files
        raise EffunetError(
            f"encoder_weights: {path} is not a weights file of the no-top {backbone.name} backbone "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if _normalization_layer(backbone) is not None:
        _undo_keras_variance_quirk(backbone)


def _spec(encoder: str) -> EncoderSpec:
    try:
        return ENCODERS[encoder]
    except KeyError:
        raise EffunetError(f"unknown encoder {encoder!r}; known: {', '.join(ENCODERS)}") from None


def _fetch_imagenet(spec: EncoderSpec) -> Path:
    cache = weights_cache_dir()
    try:
        return Path(
            keras.utils.get_file(
                spec.weights_file,
                spec.weights_url,
                cache_dir=str(cache.parent),
                cache_subdir=cache.name,
                file_hash=_NOTOP_MD5.get(spec.name),
            )
        )
    except Exception as exc:  # urllib errors surface as bare Exception from keras
        raise EffunetError(
            f"encoder_weights='imagenet': could not download {spec.weights_file} for {spec.name} "
            f"({exc}). On a machine with network, fetch {spec.weights_url} (or run "
            f"`python -c \"import keras; keras.applications.{spec.application}(include_top=False)\"`) "
            f"and copy the file to {cache / spec.weights_file}, or pass its path as encoder_weights."
        ) from exc


def _normalization_layer(backbone: keras.Model) -> keras.layers.Layer | None:
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Normalization)]
    return norms[0] if norms else None


def _set_imagenet_normalization(backbone: keras.Model) -> None:
    """Make EfficientNet's input normalisation (x/255 - mean) / std with the ImageNet statistics."""
    layer = _normalization_layer(backbone)
    mean, variance, count = layer.get_weights()
    variance = np.square(IMAGENET_STD_RGB).astype(variance.dtype)
    layer.set_weights([np.array(IMAGENET_MEAN_RGB, mean.dtype), variance, count])
    layer.finalize_state()  # the layer normalises with constants made from its variables


def _undo_keras_variance_quirk(backbone: keras.Model) -> None:
    """Keras' ImageNet EfficientNet files store std as the variance (and add a Rescaling layer to
    compensate, keras-team/keras#49930); square it so the plain graph normalises identically."""
    layer = _normalization_layer(backbone)
    mean, variance, count = layer.get_weights()
    if np.allclose(variance, IMAGENET_STD_RGB, atol=1e-6):
        layer.set_weights([mean, np.square(variance).astype(variance.dtype), count])
    layer.finalize_state()
