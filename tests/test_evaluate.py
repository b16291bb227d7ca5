"""Evaluation end to end on known answers, the threshold protocol, the predict command, the table."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from effunet import cli, evaluate, metrics, reference
from effunet.data import archives, drive, dsb2018, images, synthetic
from effunet.errors import EffunetError
from effunet.layout import PreparedData


def constant_model(path, size, probability_logit: float):
    """A model that predicts the same probability everywhere: its scores are known in advance."""
    model = keras.Sequential([keras.Input((*size, 3)), keras.layers.Conv2D(
        1, 1, activation="sigmoid", kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(probability_logit))])
    model.save(path)
    return path


@pytest.fixture(scope="module")
def dsb(tmp_path_factory):
    work = tmp_path_factory.mktemp("dsb")
    archives.extract(synthetic.write_dsb2018_zip(work / "d.zip", n_images=10, seed=2), work / "raw")
    dsb2018.merge_masks(work / "raw", work / "p/labels")
    dsb2018.resize(work / "raw", work / "p/labels", work / "p/images", work / "p/masks", work / "p/manifest.csv",
                   (32, 32), test_fraction=0.3, val_fraction=0.3, seed=0)
    return work / "p"


@pytest.fixture(scope="module")
def drive_prepared(tmp_path_factory):
    work = tmp_path_factory.mktemp("drive")
    archives.extract(synthetic.write_drive_zip(work / "d.zip", n_train=3, n_test=2), work / "raw")
    drive.convert(work / "raw", work / "p/images", work / "p/masks", work / "p/fov", work / "p/manifest.csv",
                  (64, 64), val_count=1, seed=0)
    return work / "p"


def run_evaluation(prepared, kind, model, tmp_path, threshold=0.5):
    out = {"metrics_path": tmp_path / "metrics.json", "per_image_path": tmp_path / "per_image.csv",
           "examples_path": tmp_path / "examples.npz"}
    result = evaluate.evaluate(model, PreparedData.in_folder(prepared, kind), threshold=threshold, **out)
    assert json.loads(out["metrics_path"].read_text())["threshold"]["value"] == result["threshold"]["value"]
    return result, pd.read_csv(out["per_image_path"], dtype={"id": str})


def native_truths(prepared, split):
    table = pd.read_csv(prepared / "manifest.csv", dtype={"id": str})
    return [images.read_labels(prepared / "labels" / f"{i}.png") > 0 for i in table.loc[table.split == split, "id"]]


@pytest.mark.backend
@pytest.mark.parametrize("logit", [-20.0, 20.0])
def test_constant_model_scores_known_answers_on_dsb2018(dsb, tmp_path, logit):
    result, per_image = run_evaluation(dsb, "dsb2018", constant_model(tmp_path / "m.keras", (32, 32), logit),
                                       tmp_path)
    truths = native_truths(dsb, "test")
    foreground = sum(t.sum() for t in truths) / sum(t.size for t in truths)
    pooled = result["splits"]["test"]["native"]["pooled"]
    assert pooled["pixels"] == sum(t.size for t in truths)
    if logit < 0:  # predicts nothing
        assert pooled["accuracy"] == pytest.approx(1 - foreground)
        assert pooled["dice"] == 0 and pooled["sensitivity"] == 0 and pooled["specificity"] == 1
        assert result["splits"]["test"]["native"]["per_image_mean"]["instance_ap"] == 0
    else:  # predicts everything
        assert pooled["accuracy"] == pytest.approx(foreground) and pooled["precision"] == pytest.approx(foreground)
        assert pooled["sensitivity"] == 1 and pooled["specificity"] == 0
        assert pooled["dice"] == pytest.approx(2 * foreground / (1 + foreground))
    native_rows = per_image[(per_image.split == "test") & (per_image.resolution == "native")]
    assert len(native_rows) == len(truths)
    assert set(per_image.split) == {"train", "val", "test"}
    assert set(per_image.resolution) == {"native", "training_size"}
    assert result["inference_images_per_s"] > 0


def test_drive_scores_only_inside_the_fov_and_adds_the_second_observer(drive_prepared, tmp_path):
    result, _ = run_evaluation(drive_prepared, "drive", constant_model(tmp_path / "m.keras", (64, 64), 20.0),
                               tmp_path)
    table = pd.read_csv(drive_prepared / "manifest.csv", dtype=str, keep_default_na=False)
    test = table[table.split == "test"]
    fovs = [images.read_mask(p) for p in test.fov]
    vessels = [images.read_mask(p) for p in test.manual1]
    pooled = result["splits"]["test"]["native"]["pooled"]
    assert pooled["pixels"] == sum(f.sum() for f in fovs) < 2 * 584 * 565
    assert pooled["precision"] == pytest.approx(sum((v & f).sum() for v, f in zip(vessels, fovs)) /
                                                sum(f.sum() for f in fovs))
    second = [images.read_mask(p) for p in test.manual2]
    expected = sum((metrics.confusion(v, s, f) for v, s, f in zip(vessels, second, fovs)), metrics.Counts())
    assert result["second_observer"]["pooled"]["dice"] == pytest.approx(metrics.scores(expected)["dice"])
    assert result["second_observer"]["images"] == 2


def test_threshold_is_chosen_on_validation_never_on_test():
    def case(split, probability):
        truth = np.array([[True, False]])
        return evaluate.Case("x", split, None, truth, None, truth, None, None, None, np.array([probability]))

    cases = [case("val", [0.35, 0.25]), case("test", [0.9, 0.7])]
    value, source = evaluate.choose_threshold(cases, "val")
    assert source == "validation" and 0.25 <= value < 0.35
    assert evaluate.choose_threshold(cases, 0.5) == (0.5, "fixed")
    with pytest.raises(EffunetError, match="validation"):
        evaluate.choose_threshold([cases[1]], "val")


@pytest.mark.backend
def test_predict_command_writes_native_size_masks(tmp_path, capsys):
    model = constant_model(tmp_path / "m.keras", (32, 32), 20.0)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((50, 70, 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((33, 21), np.uint8)).save(folder / "b.tif")
    assert cli.main(["predict", str(model), str(folder), str(tmp_path / "out"), "--probabilities"]) == 0
    mask = Image.open(tmp_path / "out/a_mask.png")
    assert mask.size == (70, 50) and np.asarray(mask).min() == 255
    assert Image.open(tmp_path / "out/b_mask.png").size == (21, 33)
    assert Image.open(tmp_path / "out/b_prob.png").mode.startswith("I")
    (folder / "c.png").write_bytes(b"not a png")
    assert cli.main(["predict", str(model), str(folder), str(tmp_path / "out"), "--overwrite"]) == 1  # test_predict.py
    assert "c.png" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path / "missing.keras"), str(folder), str(tmp_path / "o")]) == 2
    assert "model file not found" in capsys.readouterr().err


def bce(truth_fraction, p):
    """Binary cross-entropy of a constant probability p on a mask with this foreground fraction."""
    return -(truth_fraction * np.log(p) + (1 - truth_fraction) * np.log(1 - p))


def test_loss_is_the_training_loss_per_image_at_the_training_size(dsb, tmp_path):
    logit = 0.7
    p = 1 / (1 + np.exp(-logit))
    (tmp_path / "run.json").write_text(json.dumps({"loss": "bce"}))
    result, per_image = run_evaluation(dsb, "dsb2018", constant_model(tmp_path / "m.keras", (32, 32), logit), tmp_path)
    table = pd.read_csv(dsb / "manifest.csv", dtype={"id": str})
    for split in ("train", "val", "test"):
        masks = [images.read_mask(dsb / "masks" / f"{i}.png") for i in table.loc[table.split == split, "id"]]
        expected = np.mean([bce(m.mean(), p) for m in masks])
        assert result["loss"][split] == pytest.approx(expected, rel=1e-4)
    assert result["loss"]["function"] == "bce"
    rows = per_image[per_image.resolution == "training_size"]
    assert rows["loss"].notna().all() and per_image.loc[per_image.resolution == "native", "loss"].isna().all()
    assert evaluate.tracked_metrics(result)["test_loss"] == pytest.approx(result["loss"]["test"])
    # the run's own loss function is used: soft Dice over all pixels of each image
    (tmp_path / "run.json").write_text(json.dumps({"loss": "dice"}))
    out = {"metrics_path": tmp_path / "d.json", "per_image_path": tmp_path / "d.csv", "examples_path": tmp_path / "d.npz"}
    dice_result = evaluate.evaluate(tmp_path / "m.keras", PreparedData.in_folder(dsb, "dsb2018"),
                                    run_json=tmp_path / "run.json", **out)
    masks = [images.read_mask(dsb / "masks" / f"{i}.png") for i in table.loc[table.split == "test", "id"]]
    expected = np.mean([1 - (2 * p * m.sum() + 1) / (m.sum() + p * m.size + 1) for m in masks])
    assert dice_result["loss"]["function"] == "dice"
    assert dice_result["loss"]["test"] == pytest.approx(expected, rel=1e-4)


def test_protocol_ceiling_is_the_resized_ground_truth_scored_like_a_model(dsb, tmp_path):
    result = reference.reference(PreparedData.in_folder(dsb, "dsb2018"), "dsb2018", tmp_path / "reference.json")
    assert json.loads((tmp_path / "reference.json").read_text())["dataset"] == "dsb2018"
    ceiling = result["protocol_ceiling"]
    cases = [c for c in evaluate.load_cases(PreparedData.in_folder(dsb, "dsb2018")) if c.split == "test"]
    assert ceiling["images"] == len(cases)
    # by hand: truth at 32x32 -> bilinear back to native -> > 0.5 -> Dice against the native truth
    dice = []
    for case in cases:
        back = evaluate.resize_probability(case.truth.astype(np.float32), case.native_truth.shape) > 0.5
        dice.append(metrics.scores(metrics.confusion(case.native_truth, back))["dice"])
    assert ceiling["per_image_mean"]["dice"] == pytest.approx(np.mean(dice))
    assert 0.5 < ceiling["per_image_mean"]["dice"] < 1  # the protocol loses detail at 32x32
    assert 0 < ceiling["per_image_mean"]["instance_ap"] <= 1
    assert result["second_observer"] is None


def test_drive_reference_has_the_second_observer(drive_prepared, tmp_path):
    result = reference.reference(PreparedData.in_folder(drive_prepared, "drive"), "drive",
                                 tmp_path / "reference.json")
    assert result["second_observer"]["images"] == 2
    assert result["protocol_ceiling"]["pooled"]["pixels"] == result["second_observer"]["pooled"]["pixels"]
