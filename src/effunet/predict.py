"""Apply a trained model to images of any size: resize to the training size, predict, resize back
(inference ``resize``, the study), or predict overlapping tiles at the training size over the image
at native resolution and blend them (inference ``sliding``, `sliding_window`).

The mode is the run's config key train.inference, read from the run.json beside the model (written
by training), so evaluation and the `effunet predict` command share it and follow the same protocol.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from effunet.data import images
from effunet.errors import EffunetError
from effunet.layout import Layout

log = logging.getLogger(__name__)


INFERENCE_MODES = ("resize", "sliding")
TILE_OVERLAP = 0.5  # sliding window: each tile overlaps its neighbours by half a tile


def run_settings(run_json: str | os.PathLike | None) -> dict:
    """The training settings a run recorded in its run.json (`settings`; empty for older runs or none)."""
    if run_json is None:
        return {}
    try:
        return json.loads(Path(run_json).read_text()).get("settings") or {}
    except (OSError, ValueError) as error:
        raise EffunetError(f"cannot read the training settings in {run_json}: {error}") from error


def inference_mode(model_path: str | os.PathLike, run_json: str | os.PathLike | None = None) -> str:
    """The run's train.inference: from `run_json`, or the run.json beside the model; resize without one."""
    if run_json is None:
        beside = Path(model_path).with_name("run.json")
        run_json = beside if beside.is_file() else None
    mode = run_settings(run_json).get("inference", "resize")
    if mode not in INFERENCE_MODES:
        raise EffunetError(f"{run_json}: unknown inference mode {mode!r} ({', '.join(INFERENCE_MODES)})")
    return mode


def tile_starts(length: int, tile: int, overlap: float = TILE_OVERLAP) -> list[int]:
    """Start positions of tiles of `tile` pixels covering 0..length-1 (length >= tile), the first at 0
    and the last flush with the end, evenly spaced at most tile x (1 - overlap) apart."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1 - overlap)))
    count = math.ceil((length - tile) / stride) + 1
    return sorted({int(round(i * (length - tile) / (count - 1))) for i in range(count)})


def tile_window(size: tuple[int, int]) -> np.ndarray:
    """The blending weight of a tile: a separable ramp, highest at the centre and positive at the
    edges (so every covered pixel has weight), (i + 1/2) from the nearer edge along each axis."""
    ramps = [np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5) for n in size]
    return np.outer(*ramps).astype(np.float64)


def sliding_window(
    image: np.ndarray, tile: tuple[int, int], predict, batch_size: int = 8, overlap: float = TILE_OVERLAP
) -> np.ndarray:
    """(H, W) probabilities of an (H, W, C) image, predicted tile by tile at the `tile` size.

    `predict` maps a batch of tiles (N, th, tw, C) to (N, th, tw). Tiles overlap by `overlap` and are
    blended by `tile_window` weights, normalised by their sum; an image smaller than a tile is padded
    by reflection first and the padding cut off the result.
    """
    height, width = image.shape[:2]
    th, tw = tile
    pad_h, pad_w = max(0, th - height), max(0, tw - width)
    if pad_h or pad_w:
        mode = "reflect" if height > 1 and width > 1 and pad_h < height and pad_w < width else "symmetric"
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)
    rows, cols = tile_starts(image.shape[0], th, overlap), tile_starts(image.shape[1], tw, overlap)
    corners = [(y, x) for y in rows for x in cols]
    weight = tile_window(tile)
    total = np.zeros(image.shape[:2], np.float64)
    norm = np.zeros(image.shape[:2], np.float64)
    for first in range(0, len(corners), batch_size):
        chunk = corners[first : first + batch_size]
        batch = np.stack([image[y : y + th, x : x + tw] for y, x in chunk]).astype(np.float32)
        for (y, x), probability in zip(chunk, np.asarray(predict(batch))):
            total[y : y + th, x : x + tw] += weight * probability
            norm[y : y + th, x : x + tw] += weight
    return (total / norm)[:height, :width].astype(np.float32)


class Predictor:
    """A trained model, its compiled inference function and its inference mode."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        batch_size: int = 8,
        inference: str | None = None,
        device: str | None = None,
    ):
        """`inference`: resize or sliding; None reads the run's mode (`inference_mode`). `device` (auto,
        gpu, cpu; None: no check): fail when the backend cannot use the GPU(s) the process was given
        (`effunet.devices.prepare_predict` leases them before Keras starts)."""
        check_model_file(model_path)
        self.inference = inference or inference_mode(model_path)
        if self.inference not in INFERENCE_MODES:
            raise EffunetError(f"unknown inference mode {self.inference!r} ({', '.join(INFERENCE_MODES)})")
        import keras

        import effunet.models  # registers the custom layers (losses are not needed: compile=False)

        if device is not None:
            effunet.models.runtime.require_device(device, cpu_hint="run with --device cpu to predict on the CPU")

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
        if self.inference == "sliding":
            return sliding_window(rgb, self.size, self.probabilities, self.batch_size)
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
            f"{path} is not a Keras model file (.keras, as training writes to {Layout.run_pattern().model.as_posix()})"
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


def output_names(stem: str, out_dir: Path) -> tuple[Path, Path]:
    """The mask and the probability file of an input with output stem `stem`."""
    return out_dir / f"{stem}_mask.png", out_dir / f"{stem}_prob.png"


def output_paths(stems: dict[Path, str], out_dir: Path, save_probabilities: bool) -> list[Path]:
    """Every file a call writes, in input order: each mask, then its probability file if asked for."""
    return [name for stem in stems.values() for name in output_names(stem, out_dir)[: 2 if save_probabilities else 1]]


def refuse_existing(paths: list[Path]) -> None:
    """An EffunetError naming the first of `paths` that exists (an earlier call's output)."""
    existing = [path for path in paths if path.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise EffunetError(
            f"{existing[0]} already exists{more}; nothing was predicted. Give another output folder, "
            "or --overwrite to replace them"
        )


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
