"""Apply a trained model to images of any size: resize to the training size, predict, resize back
(inference ``resize``, the study), or predict overlapping tiles at the training size over the image
at native resolution and blend them (inference ``sliding``, `sliding_window`). The resize and the tiling
are `effunet.sliding`'s; `effunet predict`'s files (`predict_files`) are made here.

The mode is the run's config key train.inference, read from the run.json beside the model (written
by training), so evaluation and the `effunet predict` command share it and follow the same protocol.
"""

from __future__ import annotations

import logging
import os
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from effunet.data import images
from effunet.errors import EffunetError
from effunet.layout import Layout
from effunet.prediction_files import (
    IMAGE_SUFFIXES,
    input_files,
    output_names,
    output_paths,
    output_stems,
    refuse_existing,
)
from effunet.run import RunRecord, Settings
from effunet.sliding import TILE_OVERLAP, resize_probability, sliding_window, sliding_windows, tile_starts, tile_window

__all__ = [  # with the resize and the tiling, which live in effunet.sliding
    "HDF5_MAGIC",
    "IMAGE_SUFFIXES",
    "INFERENCE_MODES",
    "TILE_OVERLAP",
    "Predictions",
    "Predictor",
    "check_model_file",
    "describe_model",
    "eta",
    "inference_mode",
    "input_files",
    "output_names",
    "output_paths",
    "output_stems",
    "predict_files",
    "refuse_existing",
    "resize_probability",
    "sliding_window",
    "sliding_windows",
    "tile_starts",
    "tile_window",
]

log = logging.getLogger(__name__)


INFERENCE_MODES = ("resize", "sliding")
# Pixels per inference batch: 32 images of 128x128 (at least 8 images). On a 2-core AVX-512 EPYC,
# effunet-b0 predicted 85 images/s in batches of 8 and 100 in batches of 32, resnet50-unet 34.5 and
# 37.3, unet 9.0 either way, with the same probabilities to the bit (docs/evaluation.md, Speed).
BATCH_PIXELS = 32 * 128 * 128


def inference_batch(size: tuple[int, int]) -> int:
    """Images per inference batch at the model's input `size`: BATCH_PIXELS' worth, at least 8 (8
    where the model takes any size)."""
    if None in size:
        return 8
    return max(8, BATCH_PIXELS // (int(size[0]) * int(size[1])))


def inference_mode(model_path: str | os.PathLike, run_json: str | os.PathLike | None = None) -> str:
    """The run's train.inference: from `run_json`, or the run.json beside the model (`RunRecord`); resize
    (the default) without one."""
    record = RunRecord.read(run_json) if run_json is not None else RunRecord.beside(model_path)
    mode = (record.settings if record is not None else Settings()).inference
    if mode not in INFERENCE_MODES:
        where = record.path if record is not None else model_path
        raise EffunetError(f"{where}: unknown inference mode {mode!r} ({', '.join(INFERENCE_MODES)})")
    return mode


class Predictor:
    """A trained model, its compiled inference function and its inference mode."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        batch_size: int | None = None,
        inference: str | None = None,
        device: str | None = None,
    ):
        """`batch_size`: images (or sliding-window tiles) per model call (None: `inference_batch`).
        `inference`: resize or sliding; None reads the run's mode (`inference_mode`). `device` (auto,
        gpu, cpu; None: no check): fail when the backend cannot use the GPU(s) the process was given
        (`effunet.devices.prepare_predict` leases them before Keras starts)."""
        check_model_file(model_path)
        self.inference = inference or inference_mode(model_path)
        if self.inference not in INFERENCE_MODES:
            raise EffunetError(f"unknown inference mode {self.inference!r} ({', '.join(INFERENCE_MODES)})")
        import keras

        import effunet.models  # registers the custom layers (losses are not needed: compile=False)
        import effunet.placement

        if device is not None:
            effunet.placement.require_device(device, cpu_hint="run with --device cpu to predict on the CPU")

        try:
            self.model = keras.models.load_model(model_path, compile=False, safe_mode=True)
        except Exception as error:
            raise EffunetError(f"cannot load model {model_path}: {error}") from error
        self.size = tuple(self.model.input_shape[1:3])
        self.batch_size = batch_size or inference_batch(self.size)
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
        if self.inference == "sliding":
            return sliding_window(rgb, self.size, self.probabilities, self.batch_size)
        small = images.resize_rgb(rgb, self.size)
        return resize_probability(self.probabilities(small[None])[0], rgb.shape[:2])

    def natives(self, rgbs) -> Iterator[np.ndarray]:
        """`native` of each uint8 RGB image of `rgbs` (an iterable, read as needed), in order: sliding
        windows batch the tiles of consecutive images together (`sliding_windows`)."""
        if self.inference != "sliding":
            yield from map(self.native, rgbs)
            return
        yield from sliding_windows(rgbs, self.size, self.probabilities, self.batch_size)

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
            f"{path} is not a Keras model file (.keras, as training writes to {Layout.run_pattern().model.as_posix()})"
        )


HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class Predictions:
    """What `predict_files` did: masks written, and the images that failed with the reason."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0  # predicting the images (after the model was read)

    @property
    def images_per_second(self) -> float:
        done = len(self.written) + len(self.failed)
        return done / self.seconds if self.seconds > 0 else float("nan")


def describe_model(model_path: str | os.PathLike, predictor: "Predictor") -> str:
    """One line naming a read model: its run (model, data set, recipe, seed from the run folder
    results/<experiment>/<dataset>/<model>/<recipe>/seed<seed>, where the model is in one), the
    training size and the inference mode."""
    path = Path(model_path)
    parts = path.resolve().parent.parts
    run = ""
    if len(parts) >= 4 and parts[-1].startswith("seed") and path.with_name("run.json").is_file():
        dataset, model, recipe, seed = parts[-4:]
        run = f"{model} trained on {dataset} ({recipe}, {seed}), "
    height, width = predictor.size
    return f"model {path}: {run}training size {height}x{width}, inference {predictor.inference}"


def eta(seconds: list[float], remaining: int) -> float | None:
    """Seconds left for `remaining` images from the per-image times so far: the mean of the images after
    the first (which includes tracing the model), None while only the first is done."""
    steady = seconds[1:]
    return sum(steady) / len(steady) * remaining if steady else None


def predict_files(
    model_path: str | os.PathLike,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    threshold: float = 0.5,
    save_probabilities: bool = False,
    inference: str | None = None,
    overwrite: bool = False,
    device: str | None = None,
) -> Predictions:
    """Masks (0/255 PNG, native size) for an image file or every image in a folder.

    `inference` (resize or sliding) overrides the run's mode (the run.json beside the model). A mask
    or probability file that already exists in `out_dir` (from an earlier call) is refused, naming the
    first one, before the model is loaded, unless `overwrite` is set. `device`: see `Predictor`.

    An image that cannot be read or segmented is reported in `failed`, and the others go on; each
    mask is written atomically, so the ones written are complete. Progress goes to the log (logger
    ``effunet.predict``, INFO): a line before the model is read, one naming it once read
    (`describe_model`), one per image with its own time and, from the second image on, the time
    left (`eta`); `Predictions.seconds` and ``images_per_second`` give the closing line.
    """
    source, out_dir = Path(source), Path(out_dir)
    files = input_files(source)
    stems = output_stems(files)
    if not overwrite:
        refuse_existing(output_paths(stems, out_dir, save_probabilities))
    log.info("reading model %s (starting TensorFlow) ...", model_path)
    started = time.monotonic()
    predictor = Predictor(model_path, inference=inference, device=device)
    log.info("%s (read in %.1f s)", describe_model(model_path, predictor), time.monotonic() - started)
    result = Predictions()
    start = time.monotonic()
    times: list[float] = []
    for number, path in enumerate(files, 1):
        began = time.monotonic()
        try:
            probability = predictor.native(images.read_rgb(path))
            mask_path, prob_path = output_names(stems[path], out_dir)
            images.write_png(mask_path, probability > threshold)
            if save_probabilities:
                images.write_png(prob_path, np.rint(probability * 65535).astype(np.uint16))
        except EffunetError as error:
            result.failed.append((path, str(error)))
            log.warning("[%d/%d] %s failed: %s", number, len(files), path.name, error)
            continue
        finally:
            times.append(time.monotonic() - began)
        result.written.append(mask_path)
        left = eta(times, len(files) - number)
        log.info(
            "[%d/%d] %s -> %s (%.2f s%s)",
            number,
            len(files),
            path.name,
            mask_path.name,
            times[-1],
            "" if number == len(files) else (", about %.0f s left" % left if left is not None else ""),
        )
    result.seconds = time.monotonic() - start
    return result
