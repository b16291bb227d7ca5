"""Evaluation end to end on known answers, the threshold protocol, the predict command, the table."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from effunet import cli, compare, evaluate, metrics
from effunet.data import archives, drive, dsb2018, images, synthetic
from effunet.errors import EffunetError
from effunet.layout import PreparedData, RunId


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
    result = evaluate.evaluate(model, PreparedData.in_folder(prepared), kind, threshold=threshold, **out)
    assert json.loads(out["metrics_path"].read_text())["threshold"]["value"] == result["threshold"]["value"]
    return result, pd.read_csv(out["per_image_path"], dtype={"id": str})


def native_truths(prepared, split):
    table = pd.read_csv(prepared / "manifest.csv", dtype={"id": str})
    return [images.read_labels(prepared / "labels" / f"{i}.png") > 0 for i in table.loc[table.split == split, "id"]]


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
    assert cli.main(["predict", str(model), str(folder), str(tmp_path / "out")]) == 1  # see test_predict.py
    assert "c.png" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path / "missing.keras"), str(folder), str(tmp_path / "o")]) == 2
    assert "model file not found" in capsys.readouterr().err


def write_run(root, dataset, model, seed, dice_by_image, epochs):
    """A run's files in a folder whose name says nothing: its identity travels with the paths."""
    run_dir = root / f"run{len(list(root.glob('run*')))}"
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({
        "epochs_trained": epochs, "best_epoch": epochs - 2, "wall_seconds": 10.0 * epochs,
        "seconds_per_epoch": 10.0, "parameters": 1000, "flops": 2e9}))
    pooled = {name: float(np.mean(dice_by_image)) for name in compare.QUALITY}
    splits = {s: {"native": {"pooled": pooled, "per_image_mean": {"dice": pooled["dice"]}}}
              for s in ("train", "val", "test")}
    (run_dir / "eval/metrics.json").write_text(json.dumps({
        "splits": splits, "inference_images_per_s": 50.0, "threshold": {"value": 0.5}}))
    pd.DataFrame({"id": [f"i{k}" for k in range(len(dice_by_image))], "split": "test", "resolution": "native",
                  "dice": dice_by_image}).to_csv(run_dir / "eval/per_image.csv", index=False)
    return compare.RunResult(RunId(dataset, model, seed), run_dir / "run.json", run_dir / "eval/metrics.json",
                             run_dir / "eval/per_image.csv")


def test_aggregate_table_and_paired_comparison(tmp_path):
    base = np.linspace(0.5, 0.8, 12)
    runs = [write_run(tmp_path, "dsb2018", "resnet50-unet", s, base + 0.01 * s, 69) for s in (0, 1)]
    runs += [write_run(tmp_path, "dsb2018", "effunet-b0", s, base + 0.1 + 0.01 * s, 36 + s) for s in (0, 1)]
    out = {name: tmp_path / f"out.{name}" for name in ("csv", "md", "html", "paired")}
    table = compare.aggregate(runs, out["csv"], out["md"], out["html"], out["paired"])
    assert list(table[["dataset", "model", "seeds"]].itertuples(index=False, name=None)) == [
        ("dsb2018", "resnet50-unet", 2), ("dsb2018", "effunet-b0", 2)]
    for column in ("dice_mean", "dice_std", "epochs_trained_mean", "seconds_per_epoch_mean", "parameters_mean",
                   "flops_mean", "inference_images_per_s_mean", "train_dice_mean", "wall_seconds_std"):
        assert column in table.columns
    effunet = table.set_index("model").loc["effunet-b0"]
    assert effunet["epochs_trained_mean"] == 36.5 and effunet["epochs_trained_std"] == pytest.approx(np.std([36, 37], ddof=1))
    assert effunet["dice_mean"] == pytest.approx(base.mean() + 0.105)
    paired = pd.read_csv(out["paired"])
    row = paired.iloc[0]
    assert (row.model, row.baseline, row.images) == ("effunet-b0", "resnet50-unet", 12)
    assert row.dice_difference == pytest.approx(0.1) and row.ci95_low == pytest.approx(0.1)
    assert row.wilcoxon_p < 0.001 and row.verdict == "effunet-b0 better"
    assert "| dsb2018   | effunet-b0" in out["md"].read_text() and "<table" in out["html"].read_text()


def test_aggregate_with_no_runs_is_an_error(tmp_path):
    with pytest.raises(EffunetError, match="no training runs"):
        compare.comparison_table([])
