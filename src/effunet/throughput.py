"""This machine's throughput, measured now: a few training steps and inference batches of a model at a
run's image and batch size, the per-image scoring cost of evaluation on constructed images, the time a
job takes to start (imports), and the device the figures are for. Used by `effunet.estimate`.

Training is measured as the train job runs it (`effunet.training.loop.build_compiled`, then
`train_on_batch` on random arrays); the first calls, which trace the graph, are timed apart.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from effunet.run import Settings

STEPS = 3  # timed training steps (after one untimed step that traces the graph)
INFERENCE_BATCH = 8  # effunet.predict.Predictor's batch


@dataclass(frozen=True)
class Measured:
    """Seconds of one training step, one validation batch and one inference image (steady state),
    the first (tracing) calls' extra seconds, and the model's build and compile time."""

    step_s: float
    val_batch_s: float
    inference_image_s: float
    trace_s: float
    build_s: float
    measuring_s: float  # how long measuring took


def cpu_description(cpuinfo: str | None = None) -> str:
    """The CPU's model name, its count of logical CPUs and its vector flags (avx2, avx512f, amx)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            import platform

            return platform.processor() or platform.machine() or "unknown CPU"
    fields = {}
    count = 0
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            count += 1
        fields.setdefault(key, value.strip())
    flags = set(fields.get("flags", "").split())
    shown = [name for name in ("avx2", "avx512f", "amx_tile") if name in flags]
    vectors = ", ".join(name.replace("amx_tile", "amx") for name in shown) or "no avx2/avx512/amx"
    return f"CPU {fields.get('model name', 'unknown')} ({count} logical CPUs; {vectors})"


def gpu_names() -> list[str]:
    """The GPUs nvidia-smi lists by name (none without a driver)."""
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listed.splitlines() if line.strip()]


def device_description(device_setting: str = "auto") -> tuple[str, str]:
    """("cpu" or "gpu", a description) of what a job of this config runs on here: the GPU where one is
    seen and train.device is not cpu, else the CPU."""
    gpus = [] if device_setting == "cpu" else gpu_names()
    if gpus:
        return "gpu", f"GPU {gpus[0]}" + (f" (x{len(gpus)} on this machine)" if len(gpus) > 1 else "")
    return "cpu", cpu_description()


def startup_seconds() -> float:
    """Seconds a new Python process takes to import the training and evaluation code (every job pays it)."""
    code = "import effunet.training.loop, effunet.evaluate"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def measure_model(
    model_name: str, image_size, settings: dict, threads: int | None = None, steps: int = STEPS
) -> Measured:
    """Time `steps` training steps (after an untimed one), validation batches and inference batches
    of `model_name` at `image_size` (height, width) with the run's `settings` (a resolved train block,
    `effunet.config.train_settings`, with its `model_options`)."""
    begin = time.perf_counter()
    import keras

    from effunet.models import runtime
    from effunet.training import instances, loop

    runtime.limit_threads(threads)
    # random weights time the same and need no download
    run_settings = dataclasses.replace(Settings.from_params(settings), encoder_weights="none")
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if loop.use_mixed_precision(run_settings.mixed_precision) else "float32"
    )
    batch = run_settings.batch_size
    height, width = image_size
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, height, width, 3)).astype(np.float32)
    channels = instances.output_channels(run_settings.instances)
    masks = (rng.uniform(size=(batch, height, width, channels)) > 0.5).astype(np.float32)
    start = time.perf_counter()
    model = loop.build_compiled(model_name, (height, width, 3), run_settings)
    build = time.perf_counter() - start
    first_step = _timed(lambda: model.train_on_batch(images, masks))
    step = min(_timed(lambda: model.train_on_batch(images, masks)) for _ in range(steps))
    first_val = _timed(lambda: model.test_on_batch(images, masks))
    val = min(_timed(lambda: model.test_on_batch(images, masks)) for _ in range(steps))
    inference_batch = (
        images[:INFERENCE_BATCH] if batch >= INFERENCE_BATCH else np.resize(images, (INFERENCE_BATCH, height, width, 3))
    )
    predict = runtime.make_predict_fn(model)
    first_predict = _timed(lambda: np.asarray(predict(inference_batch)))
    inference = min(_timed(lambda: np.asarray(predict(inference_batch))) for _ in range(steps))
    keras.backend.clear_session()
    trace = max(0.0, first_step - step) + max(0.0, first_val - val) + max(0.0, first_predict - inference)
    return Measured(step, val, inference / INFERENCE_BATCH, trace, build, time.perf_counter() - begin)


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure_scoring(
    native_size,
    training_size,
    instances: bool,
    region: bool,
    count: int = 2,
    nuclei: int = 44,
    radius=(6, 18),
    threads: int | None = None,
) -> float:
    """Seconds evaluation spends on one image besides inference (`effunet.evaluate`: its training loss,
    then `score_cases`: pixel scores at native and training size, AUCs, and for formats with instances
    the touching-nuclei split and the instance APs), timed on `count` constructed images at
    `native_size`: `nuclei` synthetic nuclei (semi-axes drawn from `radius`) and a blurred, noisy
    prediction of them. The defaults are real DSB2018's: 44 nuclei an image, 525 pixels a nucleus.
    Scored on `threads` threads as the evaluate job scores (at least one image a thread)."""
    from scipy import ndimage

    from effunet import evaluate
    from effunet.data import synthetic
    from effunet.predict import resize_probability

    rng = np.random.default_rng(0)
    size = tuple(training_size)
    cases = []
    count = max(count, threads or 1)
    for index in range(count):
        labels = synthetic._nucleus_labels(rng, tuple(native_size), count=nuclei, radius=tuple(radius))
        truth = labels > 0
        blurred = ndimage.gaussian_filter(truth.astype(np.float32), 2.0) + rng.normal(0, 0.1, truth.shape)
        native = np.clip(blurred, 0, 1).astype(np.float32)
        small = resize_probability(truth.astype(np.float32), size) > 0.5
        cases.append(
            evaluate.Case(
                f"c{index}",
                "test",
                np.zeros((*size, 3), np.uint8),
                small,
                np.ones(size, bool) if region else None,
                truth,
                np.ones(truth.shape, bool) if region else None,
                labels if instances else None,
                None,
                probability=resize_probability(native, size),
            )
        )
    evaluate.image_losses("bce", [c.truth for c in cases[:1]], [c.probability for c in cases[:1]])
    evaluate.score_cases(cases[:1], 0.5)  # imports and first calls
    start = time.perf_counter()
    evaluate.image_losses("bce", [c.truth for c in cases], [c.probability for c in cases])
    evaluate.score_cases(cases, 0.5, threads=threads)
    return (time.perf_counter() - start) / count


def sliding_tiles(native_size, training_size) -> int:
    """Tiles `effunet.predict.sliding_window` predicts for one image of `native_size`."""
    from effunet.predict import tile_starts

    return math.prod(len(tile_starts(max(n, t), t)) for n, t in zip(native_size, training_size))


class Measurer:
    """What `effunet.estimate` measures on this machine, with the config's threads per job (`threads.train`:
    the training and the evaluate jobs' threads)."""

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def model(self, model: str, size, settings: dict):
        return measure_model(model, size, settings, threads=self.threads)

    def tiles(self, native, size) -> int:
        return sliding_tiles(native, size)

    def scoring(self, config: dict, dataset: str, native, size) -> float:
        """Scoring on constructed images like the data set's: the synthetic generator's nuclei for a
        synthetic source, real DSB2018's otherwise (`measure_scoring`'s defaults)."""
        from effunet.data import formats

        can = formats.capabilities(config, dataset)
        settings = config["datasets"][dataset]
        options = (settings.get("synthetic") or {}) if settings["source"] == "synthetic" else {}
        shape = {}
        if "nuclei" in options and "nucleus_radius" in options:
            shape = {"nuclei": round(sum(options["nuclei"]) / 2), "radius": tuple(options["nucleus_radius"])}
        return measure_scoring(native, size, instances=can.instances, region=can.region, threads=self.threads, **shape)

    def startup(self) -> float:
        return startup_seconds()
