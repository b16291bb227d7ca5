"""Keras backends: the same models, pipeline, training and predict on tensorflow, jax and torch.

Tests marked `backend` run on whatever KERAS_BACKEND is (`.ci/run` runs them on jax too); the
cross-backend test saves a model on one backend and loads it on another, each in its own process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from effunet.data import archives, dsb2018, synthetic
from effunet.layout import PreparedData

HERE = Path(__file__).parent
INSTALLED = [b for b in ("tensorflow", "jax", "torch") if importlib.util.find_spec(b)]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("prepared")
    archive = synthetic.write_dsb2018_zip(work / "dsb.zip", n_images=10, seed=3)
    archives.extract(archive, work / "raw")
    dsb2018.merge_masks(work / "raw", work / "labels")
    dsb2018.resize(
        work / "raw",
        work / "labels",
        work / "p/images",
        work / "p/masks",
        work / "p/manifest.csv",
        (32, 32),
        test_fraction=0.2,
        val_fraction=0.25,
        seed=0,
    )
    return work / "p"


def batches_of(pipeline) -> list[tuple[np.ndarray, np.ndarray]]:
    if hasattr(pipeline, "as_numpy_iterator"):
        return list(pipeline.as_numpy_iterator())
    return [pipeline[i] for i in range(len(pipeline))]


@pytest.mark.backend
def test_numpy_batches_are_a_pure_function_of_seed_and_epoch(prepared):
    from effunet.training import dataset

    images, masks = dataset.load_split(PreparedData.in_folder(prepared), "train")
    one = batches_of(dataset.make_dataset(images, masks, 3, seed=2, epoch=5, augment=True, pipeline="numpy"))
    again = batches_of(dataset.make_dataset(images, masks, 3, seed=2, epoch=5, augment=True, pipeline="numpy"))
    other = batches_of(dataset.make_dataset(images, masks, 3, seed=2, epoch=6, augment=True, pipeline="numpy"))
    assert [len(x) for x, _ in one] == [3] * (len(images) // 3) + [len(images) % 3] * bool(len(images) % 3)
    for (x1, y1), (x2, y2) in zip(one, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(one, other))
    x, y = one[0]
    assert x.dtype == np.float32 and x.max() > 1.5 and set(np.unique(y)) <= {0.0, 1.0}


@pytest.mark.backend
def test_images_decode_the_same_without_tensorflow(prepared):
    """Pillow (other backends) and tf.data (TensorFlow) give the same arrays."""
    from effunet.training import dataset

    paths = [(str(p), str(prepared / "masks" / p.name)) for p in sorted((prepared / "images").glob("*.png"))]
    pil = [np.stack(part) for part in dataset._decode_pil(paths)]
    if "tensorflow" not in INSTALLED:
        pytest.skip("TensorFlow not installed")
    tf_decoded = [np.stack(part) for part in dataset._decode_tf(paths)]
    for a, b in zip(pil, tf_decoded):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif("tensorflow" not in INSTALLED, reason="TensorFlow not installed")
def test_numpy_pipeline_gives_the_tf_data_batches(prepared):
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.data feeds the TensorFlow backend only")
    from effunet.training import dataset

    images, masks = dataset.load_split(PreparedData.in_folder(prepared), "train")
    for augment in (False, True):
        kwargs = dict(seed=4, epoch=2, augment=augment)
        reference = batches_of(dataset.make_dataset(images, masks, 3, pipeline="numpy", **kwargs))
        tf_batches = batches_of(dataset.make_dataset(images, masks, 3, pipeline="tf.data", **kwargs))
        assert len(reference) == len(tf_batches)
        for (x1, y1), (x2, y2) in zip(reference, tf_batches):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)


@pytest.mark.backend
def test_layer_flops_count_convolutions_like_the_profiler():
    import keras

    from effunet.models import flops, runtime

    inputs = keras.Input((16, 24, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = keras.layers.Conv2D(4, 1, strides=2)(x)
    x = keras.layers.Conv2DTranspose(2, 2, strides=2)(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    h, w = 16, 24
    expected = (
        2 * 3 * 3 * 3 * 8 * h * w
        + 8 * h * w  # conv + bias
        + 2 * 3 * 3 * 8 * h * w  # depthwise, no bias
        + 2 * 8 * 4 * (h // 2) * (w // 2)
        + 4 * (h // 2) * (w // 2)  # strided 1x1 conv
        + 2 * 2 * 2 * 4 * 2 * (h // 2) * (w // 2)
        + 2 * h * w  # transposed conv: each input pixel
        + 2 * 2 * 1 * h * w
        + h * w
    )  # dense on every pixel
    assert flops.layer_flops(model) == expected
    assert flops.layer_flops(model, (32, 48, 3)) == 4 * expected
    if runtime.backend() == "tensorflow":  # the profiler adds nothing for a model of convolutions only
        assert flops.profiler_flops(model) == expected
    assert flops.count_flops(model) == runtime.count_flops(model) == expected  # the running backend's count


@pytest.mark.backend
def test_training_loop_and_predict_on_this_backend(prepared, tmp_path):
    import keras

    from effunet.predict import predict_files
    from effunet.training import loop

    settings = loop.Settings(
        max_epochs=2, patience=5, batch_size=4, encoder_weights="none", model_options={"base_filters": 4}, augment=True
    )
    outputs = loop.Outputs(tmp_path / "model.keras", tmp_path / "history.csv", tmp_path / "run.json", tmp_path / "ckpt")
    summary = loop.train(PreparedData.in_folder(prepared), "unet", 0, settings, outputs, threads=1)
    assert summary["epochs_trained"] == 2 and summary["flops"] > 0
    history = json.loads(outputs.run.read_text())
    assert history["best_epoch"] in (1, 2)
    model = keras.models.load_model(outputs.model)
    assert model.count_params() == summary["parameters"]
    written = predict_files(outputs.model, prepared / "images", tmp_path / "masks").written
    assert len(written) == len(list((prepared / "images").glob("*.png")))


def run_worker(backend: str, *args) -> str:
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, str(HERE / "backend_worker.py"), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])["backend"]


PAIRS = [
    (a, b)
    for a, b in [("tensorflow", "jax"), ("jax", "tensorflow"), ("tensorflow", "torch")]
    if a in INSTALLED and b in INSTALLED
]


# Every pair with unet, and effunet-b0 (its custom layers; 2 min on 2 cores) on the first pair. The
# pairs with jax (1.5 min each on 2 cores) run in .ci/run's jax pass (`KERAS_BACKEND=jax pytest -m
# backend`) rather than in the README's test command, which keeps that under 30 minutes.
IN_JAX_PASS = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow",
    reason="runs in .ci/run's jax pass (KERAS_BACKEND=jax pytest -m backend), keeping the suite under 30 min",
)
CASES = [
    pytest.param(a, b, "unet", marks=[pytest.mark.backend, IN_JAX_PASS] if "jax" in (a, b) else []) for a, b in PAIRS
] + [
    pytest.param(
        *PAIRS[0],
        "effunet-b0",
        marks=[pytest.mark.slow, pytest.mark.backend, IN_JAX_PASS],
        id=f"{PAIRS[0][0]}-{PAIRS[0][1]}-effunet-b0",
    )
][: 1 if PAIRS else 0]


@pytest.mark.parametrize("saved_on,loaded_on,model", CASES)
def test_a_model_saved_on_one_backend_predicts_the_same_on_another(saved_on, loaded_on, model, tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", images)
    assert run_worker(saved_on, "save", model, tmp_path / "m.keras", tmp_path / "x.npy", tmp_path / "a.npy") == saved_on
    assert run_worker(loaded_on, "load", tmp_path / "m.keras", tmp_path / "x.npy", tmp_path / "b.npy") == loaded_on
    saved, loaded = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert saved.shape == loaded.shape == (3, 32, 32, 1)
    assert saved.std() > 1e-3  # not a constant map that would match anything
    np.testing.assert_allclose(loaded, saved, atol=1e-4)
