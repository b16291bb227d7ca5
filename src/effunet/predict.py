"""Apply a trained model to images of any size: resize to the training size, predict, resize back.

Evaluation and the `effunet predict` command share this, so both follow the same protocol.
"""

from __future__ import annotations

import logging
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from effunet.data import images
from effunet.errors import EffunetError

log = logging.getLogger(__name__)


class Predictor:
    """A trained model and its compiled inference function."""

    def __init__(self, model_path: str | os.PathLike, batch_size: int = 8):
        check_model_file(model_path)
        import keras

        import effunet.models  # registers the custom layers (losses are not needed: compile=False)

        try:
            self.model = keras.models.load_model(model_path, compile=False, safe_mode=True)
        except Exception as error:
            raise EffunetError(f"cannot load model {model_path}: {error}") from error
        self.size = tuple(self.model.input_shape[1:3])
        self.batch_size = batch_size
        self._predict = effunet.models.make_predict_fn(self.model)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(N, h, w) probabilities for uint8 RGB images (N, h, w, 3) already at the training size."""
        return self.outputs(batch)[..., 0]

    def outputs(self, batch: np.ndarray) -> np.ndarray:
        """(N, h, w, C) model outputs: the foreground probability first (C = 2 for models trained
        with `train.instances: boundary`: then the nucleus boundary probability)."""
        out = [
            np.asarray(self._predict(batch[i : i + self.batch_size].astype(np.float32)))
            for i in range(0, len(batch), self.batch_size)
        ]
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


def check_model_file(path: str | os.PathLike) -> None:
    """A readable error for anything that is not a Keras model file, before Keras tries to load it."""
    path = Path(path)
    if not path.exists():
        raise EffunetError(f"model file not found: {path}")
    if not path.is_file():
        raise EffunetError(f"{path} is a folder, not a model file; give the model.keras inside a run's folder")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not (zipfile.is_zipfile(path) or head.startswith(HDF5_MAGIC)):
        raise EffunetError(
            f"{path} is not a Keras model file (.keras, as training writes to "
            "results/<experiment>/<dataset>/<model>/seed<seed>/model.keras)"
        )


HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def resize_probability(probability: np.ndarray, size: images.Size) -> np.ndarray:
    """Bilinear resize of a float probability map to (height, width)."""
    height, width = size
    if probability.shape == (height, width):
        return probability
    resized = Image.fromarray(probability.astype(np.float32), mode="F").resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(resized), 0.0, 1.0)


IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class Predictions:
    """What `predict_files` did: masks written, and the images that failed with the reason."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def output_stems(files: list[Path]) -> dict[Path, str]:
    """Each input's output name stem: its own stem, or stem_suffix where stems collide (img.png and
    img.jpg -> img_png, img_jpg). Names are compared case-insensitively (macOS, Windows)."""
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem.lower(), []).append(path)
    stems = {
        path: (path.stem if len(by_stem[path.stem.lower()]) == 1 else f"{path.stem}_{path.suffix[1:]}")
        for path in files
    }
    taken: dict[str, Path] = {}
    for path, stem in stems.items():
        if stem.lower() in taken:
            raise EffunetError(f"{path} and {taken[stem.lower()]} would both write {stem}_mask.png; rename one of them")
        taken[stem.lower()] = path
    return stems


def input_files(source: Path) -> list[Path]:
    if source.is_dir():
        files = images.list_files(source, IMAGE_SUFFIXES)
        if not files:
            raise EffunetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
        return files
    if source.is_file():
        return [source]
    raise EffunetError(f"input not found: {source}")


def predict_files(
    model_path: str | os.PathLike,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    threshold: float = 0.5,
    save_probabilities: bool = False,
) -> Predictions:
    """Masks (0/255 PNG, native size) for an image file or every image in a folder.

    An image that cannot be read or segmented is reported in `failed`, and the others go on; each
    mask is written atomically, so the ones written are complete. Progress goes to the log.
    """
    source, out_dir = Path(source), Path(out_dir)
    files = input_files(source)
    stems = output_stems(files)
    predictor = Predictor(model_path)
    result = Predictions()
    start = time.monotonic()
    for number, path in enumerate(files, 1):
        try:
            probability = predictor.native(images.read_rgb(path))
            mask_path = out_dir / f"{stems[path]}_mask.png"
            images.write_png(mask_path, probability > threshold)
            if save_probabilities:
                images.write_png(out_dir / f"{stems[path]}_prob.png", np.rint(probability * 65535).astype(np.uint16))
        except EffunetError as error:
            result.failed.append((path, str(error)))
            log.warning("[%d/%d] %s failed: %s", number, len(files), path.name, error)
            continue
        result.written.append(mask_path)
        elapsed = time.monotonic() - start
        log.info(
            "[%d/%d] %s -> %s (%.1f s, about %.0f s left)",
            number,
            len(files),
            path.name,
            mask_path.name,
            elapsed,
            elapsed / number * (len(files) - number),
        )
    return result
