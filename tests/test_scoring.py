"""Evaluation on threads, with batched inference and nothing computed twice, gives metrics.json and
per_image.csv value for value as the single-threaded scoring it replaced (tests/evaluate_reference.py,
verbatim from commit 0183cc0, with the level-by-level flood of split_touching): on a synthetic
DSB2018 run with a one-channel and a boundary (two-channel) model, a fixed and a validation-chosen
threshold, resize and sliding-window inference, on one and on two threads."""

from __future__ import annotations

import io
import json
import time

import evaluate_reference as reference
import keras
import numpy as np
import pandas as pd
import pytest
from conftest import prepare_synthetic_dsb2018

from effunet import evaluate, scoring, sliding
from effunet.layout import PreparedData
from effunet.predict import Predictor
from effunet.threads import in_order


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> PreparedData:
    """Synthetic DSB2018 at 32x32: 10 images of 256-360 px, 3 of them validation, 3 test."""
    folder = prepare_synthetic_dsb2018(
        tmp_path_factory.mktemp("scoring"), n_images=10, seed=3, test_fraction=0.3, val_fraction=0.3
    )
    return PreparedData.in_folder(folder, "dsb2018")


def brightness_model(path, channels: int):
    """A small fixed model whose probabilities follow the image's local brightness (so they separate
    the synthetic nuclei imperfectly, with every value from 0 to 1), channel 2 the opposite."""
    rng = np.random.default_rng(channels)
    kernel = rng.normal(0, 0.3, (3, 3, 3, channels)) / 255
    kernel[1, 1, :, 0] += 4 / 255
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(channels, 3, padding="same")])
    model.layers[0].kernel.assign(kernel.astype(np.float32))
    model.layers[0].bias.assign(np.full(channels, -1.5, np.float32))
    out = keras.Sequential([model, keras.layers.Activation("sigmoid")])
    out.save(path)
    return path


def reference_outputs(model, prepared, threshold, inference):
    """metrics.json's scored values and per_image.csv's text as the code of commit 0183cc0 computed them."""
    predictor = Predictor(model, inference=inference)
    cases = evaluate.load_cases(prepared)
    if inference == "sliding":
        reference.predict_native(predictor, cases)
    else:
        for case, outputs in zip(cases, predictor.outputs(np.stack([c.image for c in cases]))):
            case.probability = outputs[..., 0]
            case.boundary = outputs[..., 1] if outputs.shape[-1] > 1 else None
    targets = evaluate.training_targets(prepared, cases)
    for case, loss in zip(cases, scoring.image_losses("bce", targets, [c.probability for c in cases])):
        case.loss = loss
    value, source = reference.choose_threshold(cases, threshold)
    rows, summaries = reference.score_cases(cases, value)
    text = io.StringIO()
    pd.DataFrame(rows).to_csv(text, index=False)
    return {"threshold": {"value": value, "chosen_on": source}, "splits": summaries}, text.getvalue()


@pytest.mark.backend
@pytest.mark.parametrize(
    "channels, threshold, inference, threads",
    [(1, 0.5, "resize", 2), (2, "val", "resize", 2), (2, 0.5, "resize", 1), (1, "val", "sliding", 2)],
)
def test_evaluation_equals_the_reference_implementation(prepared, tmp_path, channels, threshold, inference, threads):
    model = brightness_model(tmp_path / "model.keras", channels)
    (tmp_path / "run.json").write_text(json.dumps({"settings": {"inference": inference}}))
    out = {name: tmp_path / name for name in ("metrics.json", "per_image.csv", "examples.npz")}
    evaluate.evaluate(
        model, prepared, *out.values(), threshold=threshold, run_json=tmp_path / "run.json", threads=threads
    )
    written = json.loads(out["metrics.json"].read_text())
    expected, per_image = reference_outputs(model, prepared, threshold, inference)
    assert out["per_image.csv"].read_text() == per_image
    assert json.dumps(written["splits"]) == json.dumps(json.loads(json.dumps(expected["splits"], default=float)))
    assert written["threshold"] == expected["threshold"]
    rows = pd.read_csv(out["per_image.csv"])
    assert rows["dice"].between(0.05, 0.99).mean() > 0.5  # the probabilities score neither 0 nor 1
    if channels == 2:
        assert "instance_ap_watershed" in rows and rows["predicted_objects_watershed"].max() > 0
    if threshold == "val":
        assert written["threshold"]["chosen_on"] == "validation"


def quantised_cases(seed: int) -> list[scoring.Case]:
    """Validation images whose probabilities sit exactly on float32 values of the threshold grid."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(3):
        shape = tuple(rng.integers(5, 40, 2))
        truth = rng.random(shape) < rng.uniform(0.1, 0.6)
        probability = np.clip((truth * rng.integers(2, 8) + rng.integers(0, 14, shape)) * 0.05, 0, 1)
        region = rng.random(shape) < 0.9 if index else None
        small = np.zeros((4, 4), bool)
        cases.append(
            scoring.Case(
                f"q{index}",
                "val",
                None,
                small,
                None,
                truth,
                region,
                None,
                None,
                np.zeros((4, 4), np.float32),
                native_probability=probability.astype(np.float32),
            )
        )
    return cases


@pytest.mark.parametrize("seed", range(20))
def test_the_chosen_threshold_equals_the_reference_on_ties(seed):
    new, old = quantised_cases(seed), quantised_cases(seed)
    assert scoring.choose_threshold(new, "val", threads=2) == reference.choose_threshold(old, "val")


def test_sliding_windows_batch_tiles_across_images_and_blend_each_as_alone():
    """Tiles of several images share batches; each image equals its own `sliding_window`, exactly."""
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, shape + (3,)).astype(np.uint8) for shape in [(40, 57), (20, 9), (33, 32)]]
    sizes = []

    def predict(batch):
        sizes.append(len(batch))
        return batch[..., 0] / 255 * 0.5 + batch[..., 1].mean(axis=(1, 2), keepdims=True) / 1000

    together = list(sliding.sliding_windows(iter(pictures), (16, 16), predict, batch_size=8))
    shared = list(sizes)
    alone = [sliding.sliding_window(p, (16, 16), predict, batch_size=8) for p in pictures]
    assert len(together) == 3 and shared[:-1] == [8] * (len(shared) - 1)
    assert len(shared) < len(sizes) - len(shared)  # fewer calls than one image at a time
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(5))
def test_grid_counts_equal_the_confusion_tables_of_every_threshold(seed):
    """The validation tables at every grid value, from one sort, equal the reference's
    `confusion(truth, probability > t, region)` (float32 probabilities against float64 thresholds,
    values on the grid included)."""
    for case in quantised_cases(seed):
        tables = scoring._grid_counts(case)
        for t, row in zip(reference.THRESHOLD_GRID, tables):
            counts = reference.metrics.confusion(case.native_truth, case.native_probability > t, case.native_region)
            assert tuple(row) == (counts.tp, counts.fp, counts.fn, counts.tn)


def test_the_loss_and_inference_come_from_the_run_record(tmp_path):
    """evaluate and predict read run.json through `effunet.run.RunRecord`: the recorded settings, a
    record older than `settings` by its top-level loss, the defaults without one, and an error naming
    the file for a broken one."""
    from effunet.errors import EffunetError
    from effunet.predict import inference_mode

    record = tmp_path / "run.json"
    record.write_text(json.dumps({"settings": {"loss": "bce+dice", "inference": "sliding"}}))
    assert evaluate.training_loss_name(record) == "bce+dice"
    assert inference_mode(tmp_path / "model.keras") == "sliding"  # the record beside the model
    record.write_text(json.dumps({"loss": "dice"}))
    assert evaluate.training_loss_name(record) == "dice" and inference_mode(tmp_path / "m.keras", record) == "resize"
    assert evaluate.training_loss_name(None) == "bce" and inference_mode(tmp_path / "none" / "m.keras") == "resize"
    record.write_text("{not json")
    for read in (evaluate.training_loss_name, lambda path: inference_mode(tmp_path / "m.keras", path)):
        with pytest.raises(EffunetError, match="run.json"):
            read(record)


def test_transfer_labels_with_the_masks_components_equals_without():
    from effunet import metrics

    rng = np.random.default_rng(1)
    mask = rng.random((40, 50)) < 0.45
    labels = metrics.split_touching(rng.random((80, 100)) < 0.5)
    components = metrics.label_components(mask)
    np.testing.assert_array_equal(
        metrics.transfer_labels(labels, mask, components=components), metrics.transfer_labels(labels, mask)
    )
    empty = np.zeros((80, 100), np.int32)  # nothing carried: the components themselves
    np.testing.assert_array_equal(metrics.transfer_labels(empty, mask, components=components), components)


def test_threads_keep_the_order_and_stop_at_the_first_error():
    started = []

    def work(item):
        started.append(item)
        time.sleep(0.005)
        if item == 3:
            raise ValueError("image 3")
        return item * 2

    assert list(in_order(work, list(range(3)), threads=2)) == [0, 2, 4]
    started.clear()
    with pytest.raises(ValueError, match="image 3"):
        list(in_order(work, list(range(400)), threads=2))
    assert len(started) < 400  # the rest were cancelled


def test_threads_stop_when_the_caller_stops():
    started = []

    def work(item):
        started.append(item)
        time.sleep(0.005)
        return item

    with pytest.raises(KeyError):
        for value in in_order(work, list(range(400)), threads=2):
            if value == 3:
                raise KeyError(value)  # e.g. a summary that fails on the rows so far
    assert len(started) < 400


def test_evaluation_runs_the_model_on_the_jobs_threads(prepared, tmp_path, monkeypatch):
    """The job's threads bound TensorFlow's pools too (not the machine's cores, which parallel jobs share)."""
    from effunet.models import runtime

    seen = []
    monkeypatch.setattr(runtime, "limit_threads", seen.append)
    model = brightness_model(tmp_path / "model.keras", 1)
    evaluate.evaluate(model, prepared, *(tmp_path / name for name in ("m.json", "p.csv", "e.npz")), threads=3)
    assert seen == [3]
