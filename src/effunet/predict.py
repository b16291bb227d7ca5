"""Apply a trained model to images of any size: resize to the training size, predict, resize back.

Evaluation and the `effunet predict` command share this, so both follow the same protocol.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from effunet.data import images
from effunet.errors import EffunetError


class Predictor:
    """A trained model and its compiled inference function."""

    def __init__(self, model_path: str | os.PathLike, batch_size: int = 8):
        import keras

        import effunet.models  # registers the custom layers
        import effunet.training.losses  # noqa: F401 (registers losses and metrics kept in the file)

        if not Path(model_path).is_file():
            raise EffunetError(f"model file not found: {model_path}")
        try:
            self.model = keras.models.load_model(model_path, compile=False, safe_mode=True)
        except Exception as error:
            raise EffunetError(f"cannot load model {model_path}: {error}") from error
        self.size = tuple(self.model.input_shape[1:3])
        self.batch_size = batch_size
        self._predict = effunet.models.make_predict_fn(self.model)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(N, h, w) probabilities for uint8 RGB images (N, h, w, 3) already at the training size."""
        out = [np.asarray(self._predict(batch[i:i + self.batch_size].astype(np.float32)))[..., 0]
               for i in range(0, len(batch), self.batch_size)]
        return np.concatenate(out)

    def native(self, rgb: np.ndarray) -> np.ndarray:
        """Probabilities at the image's own size for one uint8 RGB image of any size."""
        small = images.resize_rgb(rgb, self.size)
        return resize_probability(self.probabilities(small[None])[0], rgb.shape[:2])

    def images_per_second(self, batch: np.ndarray, repeats: int = 3) -> float:
        """Inference throughput on `batch` (training size), after a warm-up call."""
        self.probabilities(batch[: self.batch_size])
        start = time.perf_counter()
        for _ in range(repeats):
            self.probabilities(batch)
        return repeats * len(batch) / (time.perf_counter() - start)


def resize_probability(probability: np.ndarray, size: images.Size) -> np.ndarray:
    """Bilinear resize of a float probability map to (height, width)."""
    height, width = size
    if probability.shape == (height, width):
        return probability
    resized = Image.fromarray(probability.astype(np.float32), mode="F").resize((width, height),
                                                                             Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized), 0.0, 1.0)


IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif")


def predict_files(model_path: str | os.PathLike, source: str | os.PathLike, out_dir: str | os.PathLike,
                  threshold: float = 0.5, save_probabilities: bool = False) -> list[Path]:
    """Masks (0/255 PNG, native size) for an image file or every image in a folder."""
    source, out_dir = Path(source), Path(out_dir)
    if source.is_dir():
        files = images.list_files(source, IMAGE_SUFFIXES)
        if not files:
            raise EffunetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
    elif source.is_file():
        files = [source]
    else:
        raise EffunetError(f"input not found: {source}")
    predictor = Predictor(model_path)
    written = []
    for path in files:
        probability = predictor.native(images.read_rgb(path))
        mask_path = out_dir / f"{path.stem}_mask.png"
        images.write_png(mask_path, probability > threshold)
        written.append(mask_path)
        if save_probabilities:
            images.write_png(out_dir / f"{path.stem}_prob.png", np.rint(probability * 65535).astype(np.uint16))
    return written
