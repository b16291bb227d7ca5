"""The modern recipe's pieces: augmentation, native-resolution crops, the learning-rate schedule,
sliding-window inference, and the settings that switch them on (all off by default)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from effunet import predict
from conftest import prepare_synthetic_dsb2018
from effunet.layout import PreparedData
from effunet.training import augment

ROOT = Path(__file__).parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> PreparedData:
    """Synthetic DSB2018 at 32x32 with native labels (native images are 64..128 px a side)."""
    folder = prepare_synthetic_dsb2018(
        tmp_path_factory.mktemp("prepared"), n_images=8, seed=7, test_fraction=0.25, val_fraction=0.25
    )
    return PreparedData.in_folder(folder, "dsb2018")


def batches_of(pipeline) -> list[tuple[np.ndarray, np.ndarray]]:
    if hasattr(pipeline, "as_numpy_iterator"):
        return list(pipeline.as_numpy_iterator())
    return [pipeline[i] for i in range(len(pipeline))]


def plain_draws(**changes) -> dict:
    draws = {
        "flip_rows": False,
        "flip_cols": False,
        "turns": 0,
        "scale": 1.0,
        "crop_y": 0.0,
        "crop_x": 0.0,
        "invert": False,
        "grey": False,
        "hue": 0.0,
        "gamma": 1.0,
        "contrast": 1.0,
        "brightness": 0.0,
    }
    return {**draws, **changes}


# --- augmentation and crops ------------------------------------------------------------------------


def test_augment_levels_keep_false_and_true_meaning_what_they_did():
    assert [augment.level(v) for v in (False, True, "none", "flips", "strong")] == [
        "none",
        "flips",
        "none",
        "flips",
        "strong",
    ]
    with pytest.raises(Exception, match="train.augment"):
        augment.level("heavy")


def test_draws_are_a_pure_function_of_seed_and_epoch_and_flips_are_todays():
    from effunet.training import dataset

    one, again = augment.Draws.of(50, 3, 7, "strong"), augment.Draws.of(50, 3, 7, "strong")
    other = augment.Draws.of(50, 3, 8, "strong")
    for name, values in one.__dict__.items():
        np.testing.assert_array_equal(values, again.__dict__[name])
    assert not np.array_equal(one.scale, other.scale) and not np.array_equal(one.crop_y, other.crop_y)
    _, (rows, cols, turns) = dataset.epoch_plan(50, 3, 7, augment=True)  # the study's flips/rotations
    for level in ("flips", "strong"):
        draws = augment.Draws.of(50, 3, 7, level)
        np.testing.assert_array_equal(draws.flip_rows, rows)
        np.testing.assert_array_equal(draws.flip_cols, cols)
        np.testing.assert_array_equal(draws.turns, turns)
    none = augment.Draws.of(50, 3, 7, "none")
    assert not none.flip_rows.any() and not none.turns.any() and (none.scale == 1).all()
    np.testing.assert_array_equal(none.crop_x, one.crop_x)  # the crops do not depend on the level
    assert 0.75 <= one.scale.min() and one.scale.max() <= 1.33 and one.invert.any() and not one.invert.all()


def test_unzoomed_crops_are_exact_windows_and_small_images_are_reflected():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50, 70, 4)).astype(np.uint8)
    crop = augment.resample(image, (32, 32), 1.0, 0.5, 1.0)
    top, left = augment.window_origin(50, 32, 0.5), augment.window_origin(70, 32, 1.0)
    assert (top, left) == (9.0, 38.0)
    np.testing.assert_array_equal(crop, image[9:41, 38:70])
    small = image[:20, :25]
    padded = np.pad(small, ((12, 12), (7, 7), (0, 0)), mode="reflect")
    assert (augment.window_origin(20, 32, 0.5), augment.window_origin(25, 32, 0.5)) == (-6.0, -3.0)  # centred
    np.testing.assert_array_equal(augment.resample(small, (32, 32), 1.0, 0.5, 0.5), padded[6:38, 4:36])
    np.testing.assert_array_equal(augment.reflect_index(np.arange(-3, 8), 4), [3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1])


def test_zoom_samples_a_linear_image_exactly():
    """Bilinear sampling reproduces a linear function: the zoomed window's values are known."""
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    image = (2 * y + x)[..., None]
    scale, size = 2.0, (16, 16)  # an 8x8 window, 16x16 out
    out = augment.resample(image, size, scale, 0.25, 0.75)[..., 0]
    top, left = augment.window_origin(64, 8, 0.25), augment.window_origin(64, 8, 0.75)
    coordinate = (np.arange(16) + 0.5) / scale - 0.5
    expected = 2 * (top + coordinate)[:, None] + (left + coordinate)[None, :]
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_intensity_changes_have_known_answers():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(augment.intensity(image, plain_draws(invert=True)), 255 - image, atol=1e-4)
    grey = augment.intensity(image, plain_draws(grey=True))
    np.testing.assert_allclose(grey, np.repeat(image.mean(-1, keepdims=True), 3, -1), atol=1e-3)
    # a third of a turn about the grey axis moves red to green; greys stay
    np.testing.assert_allclose(augment.hue_matrix(1 / 3) @ [1, 0, 0], [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(augment.intensity(grey, plain_draws(hue=0.07)), grey, atol=1e-3)
    np.testing.assert_allclose(augment.intensity(image, plain_draws(gamma=2.0)), 255 * (image / 255) ** 2, rtol=1e-5)
    contrast = augment.intensity(np.full((4, 4, 3), [100, 120, 140], np.float32), plain_draws(contrast=1.2))
    np.testing.assert_allclose(contrast[0, 0], [96, 120, 144], atol=1e-3)
    np.testing.assert_allclose(augment.intensity(image * 0 + 100, plain_draws(brightness=0.1)), 125.5, atol=1e-4)
    assert augment.intensity(image, plain_draws(brightness=1.0)).max() == 255  # clipped


def test_strong_samples_move_image_and_mask_together():
    """An image that carries its mask in every channel: after any geometric draw the pair still agree."""
    rng = np.random.default_rng(2)
    mask = (rng.random((40, 56, 1)) < 0.4).astype(np.uint8) * 255
    image = np.repeat(mask, 3, -1)
    sampler = augment.EpochSampler([image] * 12, [mask] * 12, (32, 32), seed=5, epoch=1, augment="strong", crop=True)
    for position in range(12):
        geometric = {
            **sampler.draws.at(position),
            **{
                k: v
                for k, v in plain_draws().items()
                if k in ("invert", "grey", "hue", "gamma", "contrast", "brightness")
            },
        }
        x, y = augment.sample(image, mask, (32, 32), geometric, "flips", True)
        np.testing.assert_allclose(x[..., 0] / 255, y[..., 0], atol=1e-5)
        strong_x, strong_y = sampler(position)
        np.testing.assert_array_equal(strong_y, y)  # intensity changes leave the target alone
        assert x.shape == (32, 32, 3) and 0 <= y.min() and y.max() <= 1


@pytest.mark.backend
@pytest.mark.parametrize(
    "options",
    [
        dict(augment="strong"),
        dict(augment="flips", native=True),
        dict(augment="strong", native=True),
        dict(augment=False, native=True),
    ],
)
def test_both_pipelines_give_the_same_reproducible_batches(prepared, options):
    import keras

    from effunet.training import dataset

    if options.pop("native", False):
        images, masks = dataset.load_native_split(prepared, "train")
        crop = (32, 32)
        images[0], masks[0] = images[0][:20, :27], masks[0][:20, :27]  # smaller than a crop: reflected
    else:
        images, masks = dataset.load_split(prepared, "train")
        crop = None
    kwargs = dict(seed=4, epoch=2, crop_size=crop, **options)
    reference = batches_of(dataset.make_dataset(images, masks, 3, pipeline="numpy", **kwargs))
    again = batches_of(dataset.make_dataset(images, masks, 3, pipeline="numpy", **kwargs))
    later = batches_of(dataset.make_dataset(images, masks, 3, pipeline="numpy", **{**kwargs, "epoch": 3}))
    assert sum(len(x) for x, _ in reference) == len(images)
    for (x1, y1), (x2, y2) in zip(reference, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(reference, later))
    if keras.backend.backend() == "tensorflow":
        tf_batches = batches_of(dataset.make_dataset(images, masks, 3, pipeline="tf.data", **kwargs))
        assert len(tf_batches) == len(reference)
        for (x1, y1), (x2, y2) in zip(reference, tf_batches):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)


def test_native_split_is_the_originals_with_their_label_foreground(prepared):
    from effunet.data import images as image_files
    from effunet.data.manifest import read_manifest
    from effunet.training import dataset

    images, masks = dataset.load_native_split(prepared, "val")
    table = read_manifest(prepared.manifest)
    rows = table[table["split"] == "val"]
    assert [i.shape[:2] for i in images] == list(zip(rows["height"], rows["width"]))
    first = rows.iloc[0]
    np.testing.assert_array_equal(images[0], image_files.read_rgb(first["image"]))
    np.testing.assert_array_equal(masks[0][..., 0] > 0, image_files.read_labels(prepared.label(first["id"])) > 0)
    no_labels = PreparedData(prepared.manifest, prepared.images, prepared.masks, format="dsb2018")
    with pytest.raises(Exception, match="no instance labels"):
        dataset.load_native_split(no_labels, "val")


# --- loss with soft targets ----------------------------------------------------------------------


def test_bce_dice_with_soft_targets_matches_a_numpy_reference():
    from effunet.training import losses

    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 1, (2, 8, 8, 1)).astype(np.float32)  # area fractions
    predicted = rng.uniform(0.05, 0.95, (2, 8, 8, 1)).astype(np.float32)
    bce = -np.mean(truth * np.log(predicted) + (1 - truth) * np.log(1 - predicted))
    dice = 1 - (2 * np.sum(truth * predicted) + 1) / (truth.sum() + predicted.sum() + 1)
    value = float(losses.make_loss("bce+dice")(truth, predicted))
    assert value == pytest.approx(bce + dice, rel=1e-4)


# --- learning-rate schedule ----------------------------------------------------------------------


@pytest.mark.backend
def test_schedule_known_values():
    from effunet.training import schedules

    assert schedules.learning_rate("constant", 0.01, 10, 5) == 0.01  # the study: a plain number
    cosine = schedules.learning_rate("cosine", 0.01, epochs=10, steps_per_epoch=5, warmup_epochs=2)
    rate = lambda step: float(cosine(step))  # noqa: E731
    assert rate(0) == pytest.approx(0.01 / 10) and rate(4) == pytest.approx(0.005)
    assert rate(9) == pytest.approx(0.01)  # last warm-up step
    assert rate(10) == pytest.approx(0.01)  # decay starts at the full rate
    assert rate(30) == pytest.approx(0.005)  # halfway through the 40 decay steps
    assert rate(20) == pytest.approx(0.005 * (1 + math.cos(math.pi / 4)))
    assert rate(50) == pytest.approx(0.0, abs=1e-9) and rate(80) == pytest.approx(0.0, abs=1e-9)
    warm = schedules.learning_rate("constant", 0.01, epochs=10, steps_per_epoch=5, warmup_epochs=1)
    assert [float(warm(s)) for s in (0, 4, 5, 49)] == pytest.approx([0.002, 0.01, 0.01, 0.01])
    with pytest.raises(Exception, match="train.lr_schedule"):
        schedules.learning_rate("step", 0.01, 10, 5)


@pytest.mark.backend
def test_schedule_and_step_survive_a_checkpoint(tmp_path):
    """A checkpoint's model.keras restores the schedule and the step, so the rate continues."""
    import keras

    from effunet.training import loop

    settings = loop.Settings(
        encoder_weights="none", lr_schedule="cosine", warmup_epochs=1, max_epochs=4, model_options={"base_filters": 2}
    )
    model = loop.build_compiled("unet", (32, 32, 3), settings, steps_per_epoch=3)
    x = np.zeros((2, 32, 32, 3), np.float32)
    model.fit(x, np.zeros((2, 32, 32, 1), np.float32), batch_size=1, epochs=2, verbose=0)  # 4 steps
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=True)
    expected = 0.5 * 1e-3 * (1 + math.cos(math.pi * 1 / 9))  # step 4: 1 of 9 decay steps done
    for rate in (model.optimizer.learning_rate, loaded.optimizer.learning_rate):
        assert float(keras.ops.convert_to_numpy(rate)) == pytest.approx(expected, rel=1e-5)


# --- sliding-window inference --------------------------------------------------------------------


@pytest.mark.parametrize("length,tile", [(32, 32), (33, 32), (100, 32), (128, 32), (45, 16)])
def test_tiles_cover_every_pixel_from_edge_to_edge(length, tile):
    starts = predict.tile_starts(length, tile)
    assert starts[0] == 0 and starts[-1] == length - tile
    assert all(0 < b - a <= tile // 2 for a, b in zip(starts, starts[1:]))
    covered = np.zeros(length, int)
    for start in starts:
        covered[start : start + tile] += 1
    assert covered.min() >= 1


@pytest.mark.parametrize("shape", [(32, 32), (70, 45), (96, 128), (20, 10), (1, 40)])
def test_blended_tiles_of_an_identity_model_give_back_the_input(shape):
    rng = np.random.default_rng(4)
    image = rng.uniform(0, 1, (*shape, 3)).astype(np.float32)
    calls = []

    def identity(batch):
        calls.append(batch.shape)
        assert batch.shape[1:] == (32, 32, 3)
        return batch[..., 0]

    result = predict.sliding_window(image, (32, 32), identity, batch_size=4)
    assert result.shape == shape
    np.testing.assert_allclose(result, image[..., 0], rtol=1e-6, atol=1e-7)
    constant = predict.sliding_window(image, (32, 32), lambda b: np.full(b.shape[:3], 0.25, np.float32))
    np.testing.assert_allclose(constant, 0.25, rtol=1e-6)


def test_sliding_window_evaluation_reports_its_progress(tmp_path, monkeypatch, caplog):
    """Sliding windows over every native image take minutes (28 for DSB2018's 670 images on two cores):
    the job log says how far it is."""
    import logging

    from effunet import evaluate

    source = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(source)
    small, native = np.zeros((8, 8), bool), np.zeros((40, 50), bool)
    cases = [
        evaluate.Case(
            f"i{k}", "test", np.zeros((8, 8, 3), np.uint8), small, None, native, None, None, None, source=str(source)
        )
        for k in range(3)
    ]

    class Constant:
        def native(self, rgb):
            return np.full(rgb.shape[:2], 0.25, np.float32)

        def natives(self, rgbs):
            return map(self.native, rgbs)

    monkeypatch.setattr(evaluate, "PROGRESS_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="effunet"):
        evaluate.predict_native(Constant(), cases)
    assert [r.getMessage() for r in caplog.records if "sliding" in r.getMessage()] == [
        f"sliding-window inference: {k} of 3 images" for k in range(3)
    ]
    assert all(case.probability.shape == (8, 8) for case in cases)


def test_window_weights_peak_in_the_middle_and_stay_positive():
    weight = predict.tile_window((8, 6))
    assert weight.min() > 0 and weight[0, 0] == 0.25 and weight[3, 2] == weight.max() == 3.5 * 2.5
    np.testing.assert_array_equal(weight, weight[::-1, ::-1])


def first_channel_model(path: Path) -> Path:
    """A 32x32 model whose probability is the red channel / 255 (known answer for any tiling)."""
    import keras

    layer = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer=keras.initializers.Constant(0.0))
    model = keras.Sequential([keras.Input((32, 32, 3)), layer])
    layer.kernel.assign(np.array([1 / 255, 0, 0], np.float32).reshape(1, 1, 3, 1))
    model.save(path)
    return path


@pytest.mark.backend
def test_predict_follows_the_runs_inference_mode(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model = first_channel_model(run / "model.keras")
    rng = np.random.default_rng(5)
    picture = rng.integers(0, 256, (50, 77, 3)).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "noise.png")
    assert predict.inference_mode(model) == "resize"  # no run.json: the study's mode
    resized = predict.Predictor(model).native(picture)
    assert np.abs(resized - picture[..., 0] / 255).max() > 0.1  # resizing noise loses it
    (run / "run.json").write_text(json.dumps({"settings": {"inference": "sliding"}}))
    assert predict.inference_mode(model) == "sliding"
    result = predict.predict_files(model, tmp_path / "noise.png", tmp_path / "out", save_probabilities=True)
    assert len(result.written) == 1
    saved = np.asarray(Image.open(tmp_path / "out/noise_prob.png"), np.float64) / 65535
    np.testing.assert_allclose(saved, picture[..., 0] / 255, atol=1 / 65535)
    (run / "run.json").write_text(json.dumps({"settings": {"inference": "resize"}}))
    from effunet import cli

    status = cli.main(
        [
            "predict",
            str(model),
            str(tmp_path / "noise.png"),
            str(tmp_path / "cli"),
            "--probabilities",
            "--inference",
            "sliding",
            "--quiet",
        ]
    )  # the option overrides the run's mode
    saved = np.asarray(Image.open(tmp_path / "cli/noise_prob.png"), np.float64) / 65535
    assert status == 0
    np.testing.assert_allclose(saved, picture[..., 0] / 255, atol=1 / 65535)
    (run / "run.json").write_text(json.dumps({"settings": {"inference": "tiles"}}))
    with pytest.raises(Exception, match="unknown inference mode"):
        predict.inference_mode(model)


def test_evaluate_scores_a_sliding_run_at_native_resolution(prepared, tmp_path):
    """Originals that show their own truth in red: the red-channel model is exact with sliding
    windows (native Dice 1) and not with the study's resize-and-back."""
    from effunet import evaluate
    from effunet.data import images as image_files
    from effunet.data.manifest import read_manifest

    work = tmp_path / "data"
    table = read_manifest(prepared.manifest)
    for row in table.itertuples():  # copies of the originals whose red channel is the truth
        truth = image_files.read_labels(prepared.label(row.id)) > 0
        path = work / f"{row.id}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.repeat((truth * 255).astype(np.uint8)[..., None], 3, -1)).save(path)
        table.loc[table["id"] == row.id, "image"] = str(path)
    table.to_csv(tmp_path / "manifest.csv", index=False)
    data = PreparedData(
        tmp_path / "manifest.csv", prepared.images, prepared.masks, labels=prepared.labels, format="dsb2018"
    )
    model = first_channel_model(tmp_path / "model.keras")
    scores = {}
    for mode in ("resize", "sliding"):
        (tmp_path / "run.json").write_text(json.dumps({"loss": "bce", "settings": {"inference": mode}}))
        out = tmp_path / mode
        result = evaluate.evaluate(
            model,
            data,
            out / "metrics.json",
            out / "per_image.csv",
            out / "examples.npz",
            run_json=tmp_path / "run.json",
        )
        assert result["inference"] == mode and result["inference_images_per_s"] > 0
        scores[mode] = result["splits"]["test"]["native"]["pooled"]["dice"]
    assert scores["sliding"] == pytest.approx(1.0) and scores["resize"] < 0.99


# --- settings ------------------------------------------------------------------------------------


def test_new_settings_validate_and_default_to_the_study(tmp_path):
    from effunet import config, run

    base = {"datasets": {"dsb2018": {"source": "synthetic"}}}
    study = config.validate(json.loads(json.dumps(base)), SCHEMA)
    assert config.train_settings(study, "dsb2018") == {
        k: v for k, v in study["train"].items() if k not in run.PLACEMENT_KEYS and k not in run.ADDED_AFTER_STUDY
    }
    assert set(run.ADDED_AFTER_STUDY) <= set(study["train"])
    assert all(study["train"][k] == v for k, v in {k: run.DEFAULTS[k] for k in run.ADDED_AFTER_STUDY}.items())
    modern = {
        **base,
        "train": {
            "augment": "strong",
            "lr_schedule": "cosine",
            "warmup_epochs": 2,
            "input": "native_crops",
            "inference": "sliding",
            "loss": "bce+dice",
        },
    }
    settings = config.train_settings(config.validate(json.loads(json.dumps(modern)), SCHEMA), "dsb2018")
    assert {k: settings[k] for k in modern["train"]} == modern["train"]
    for key, value in (("augment", "heavy"), ("lr_schedule", "step"), ("input", "tiles"), ("inference", "x")):
        with pytest.raises(Exception, match=f"train.{key}"):
            config.validate({**base, "train": {key: value}}, SCHEMA)


@pytest.mark.slow
def test_modern_training_records_its_settings_and_follows_the_schedule(prepared, tmp_path):
    """Native crops, strong augmentation and a cosine schedule: trains, writes run.json's settings,
    and the per-epoch learning rate is the schedule's value after that epoch's steps."""
    from effunet.training import loop, schedules

    settings = loop.Settings(
        max_epochs=2,
        batch_size=2,
        encoder_weights="none",
        augment="strong",
        input="native_crops",
        inference="sliding",
        lr_schedule="cosine",
        warmup_epochs=1,
        loss="bce+dice",
        model_options={"base_filters": 2},
    )
    outputs = loop.Outputs(
        tmp_path / "model.keras", tmp_path / "history.csv", tmp_path / "run.json", tmp_path / "checkpoint"
    )
    summary = loop.train(prepared, "unet", 0, settings, outputs)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["settings"]["inference"] == "sliding" and run["settings"]["input"] == "native_crops"
    assert summary["epochs_trained"] == 2
    import pandas as pd

    learning_rates = pd.read_csv(tmp_path / "history.csv")["learning_rate"].tolist()
    train_images = 4  # 8 images, a quarter each for validation and test
    steps = -(-train_images // 2)
    schedule = schedules.learning_rate("cosine", 1e-3, 2, steps, 1)
    assert learning_rates == pytest.approx([float(schedule(steps)), float(schedule(2 * steps))])
    assert predict.inference_mode(tmp_path / "model.keras") == "sliding"


@pytest.mark.slow
def test_a_modern_run_stopped_after_a_checkpoint_resumes_to_the_same_history(prepared, tmp_path, monkeypatch):
    """Strong augmentation, native crops and a warm-up/cosine schedule resume exactly: a job stopped
    right after epoch 1's checkpoint, then rerun, ends with an uninterrupted job's history."""
    import pandas as pd

    from effunet.training import checkpoint, loop

    settings = loop.Settings(
        max_epochs=2,
        batch_size=2,
        encoder_weights="none",
        augment="strong",
        input="native_crops",
        lr_schedule="cosine",
        warmup_epochs=1,
        model_options={"base_filters": 2},
    )

    def outputs(name):
        return loop.Outputs(*(tmp_path / name / f for f in ("model.keras", "history.csv", "run.json", "checkpoint")))

    loop.train(prepared, "unet", 1, settings, outputs("straight"))
    save = checkpoint.save

    def save_then_stop(checkpoint_dir, model, best_weights, state):
        save(checkpoint_dir, model, best_weights, state)
        raise KeyboardInterrupt("stopped after the checkpoint")

    monkeypatch.setattr(checkpoint, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        loop.train(prepared, "unet", 1, settings, outputs("stopped"))
    monkeypatch.setattr(checkpoint, "save", save)
    summary = loop.train(prepared, "unet", 1, settings, outputs("stopped"))
    assert summary["resumed_after_epochs"] == [1]
    straight, resumed = (
        pd.read_csv(tmp_path / n / "history.csv").drop(columns="seconds") for n in ("straight", "stopped")
    )
    pd.testing.assert_frame_equal(straight, resumed, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_the_workflow_trains_on_native_crops_and_evaluates_with_sliding_windows(tmp_path):
    """A modern recipe through Snakemake: train gets the original images and labels, run.json
    records the settings, and evaluation uses the sliding window."""
    from test_workflow import TINY, snakemake, write_config

    values = json.loads(json.dumps(TINY))
    values["mlflow"]["experiment"] = "modern"
    values["recipes"] = {
        "modern": dict(
            augment="strong",
            input="native_crops",
            inference="sliding",
            lr_schedule="cosine",
            warmup_epochs=1,
            loss="bce+dice",
        )
    }
    done = snakemake(tmp_path, "--cores", "1", "--configfile", str(write_config(tmp_path / "modern.yaml", values)))
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "results/modern/dsb2018/unet/modern/seed0"
    settings = json.loads((run / "run.json").read_text())["settings"]
    assert {key: settings[key] for key in ("augment", "input", "inference", "lr_schedule")} == {
        "augment": "strong",
        "input": "native_crops",
        "inference": "sliding",
        "lr_schedule": "cosine",
    }
    assert json.loads((run / "eval/metrics.json").read_text())["inference"] == "sliding"
    assert "native resolution" in (tmp_path / "logs/modern/train/dsb2018/unet/modern/seed0.log").read_text()


def test_sliding_runs_split_touching_nuclei_on_their_native_probability():
    """The split grid (4x the training size) is fed from the native probability when there is one:
    two touching discs at native size are split even where the training-size map is empty."""
    from effunet.evaluate import split_nuclei

    y, x = np.mgrid[0:200, 0:300]
    pair = ((y - 100) ** 2 + (x - 128) ** 2 <= 30**2) | ((y - 100) ** 2 + (x - 180) ** 2 <= 30**2)
    single = (y - 100) ** 2 + (x - 150) ** 2 <= 40**2
    empty = np.zeros((32, 32), np.float32)
    for native, objects in ((pair, 2), (single, 1)):
        labels = split_nuclei(empty, native, 0.5, native=native.astype(np.float32))
        assert labels.max() == objects and np.array_equal(labels > 0, native)
