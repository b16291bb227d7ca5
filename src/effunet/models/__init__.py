"""Model zoo: U-Net, ResNet50 U-Net and Eff-UNet B0-B7 (Keras 3), one `build` entry point."""

from effunet.models.registry import MODEL_NAMES, build
from effunet.models.runtime import jit_compile_default, make_predict_fn

__all__ = ["MODEL_NAMES", "build", "jit_compile_default", "make_predict_fn"]
