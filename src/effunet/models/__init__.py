"""Model zoo: U-Net, ResNet50 U-Net and Eff-UNet B0-B7 (Keras 3), one `build` entry point.

    from effunet.models import build
    model = build("effunet-b0", (128, 128, 3), encoder_weights="imagenet")

Every model takes float32 RGB images in 0..255, channels-last (N, H, W, 3), H and W multiples of
32, normalises them inside the graph as its encoder expects, and returns (N, H, W, 1)
probabilities (sigmoid); `build(..., channels=2)` adds a second output channel (nucleus
boundaries, `train.instances: boundary`). `build` returns an uncompiled `keras.Model`.
"""

from effunet.models.decoder import DEFAULT_DECODER_WIDTHS
from effunet.models.encoders import ENCODERS, build_backbone
from effunet.models.flops import count_flops, model_complexity
from effunet.models.freeze import EncoderWarmup, find_encoder, get_encoder, set_encoder_trainable
from effunet.models.layers import FusedBatchNormalization
from effunet.models.registry import MODEL_NAMES, SIZE_MULTIPLE, build
from effunet.models.runtime import jit_compile_default, make_predict_fn

__all__ = [
    "DEFAULT_DECODER_WIDTHS",
    "ENCODERS",
    "MODEL_NAMES",
    "SIZE_MULTIPLE",
    "EncoderWarmup",
    "FusedBatchNormalization",
    "build",
    "build_backbone",
    "count_flops",
    "find_encoder",
    "get_encoder",
    "jit_compile_default",
    "make_predict_fn",
    "model_complexity",
    "set_encoder_trainable",
]
