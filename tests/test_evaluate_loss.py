"""The test loss is the training loss: evaluation scores the targets the model was trained on."""

import json

import numpy as np
import pandas as pd
import pytest

from effunet import evaluate
from effunet.data import archives, drive, dsb2018, images, synthetic
from effunet.layout import PreparedData


def prepared_dsb2018(work, targets):
    archives.extract(synthetic.write_dsb2018_zip(work / "d.zip", n_images=10, seed=3), work / "raw")
    dsb2018.merge_masks(work / "raw", work / "p/labels")
    dsb2018.resize(
        work / "raw",
        work / "p/labels",
        work / "p/images",
        work / "p/masks",
        work / "p/manifest.csv",
        (32, 32),
        test_fraction=0.2,
        val_fraction=0.3,
        seed=0,
        targets=targets,
    )
    return PreparedData.in_folder(work / "p", "dsb2018")


def prepared_drive(work, targets):
    archives.extract(synthetic.write_drive_zip(work / "d.zip", n_train=4, n_test=1), work / "raw")
    drive.convert(
        work / "raw",
        work / "p/images",
        work / "p/masks",
        work / "p/fov",
        work / "p/manifest.csv",
        (64, 64),
        val_count=2,
        seed=0,
        targets=targets,
    )
    return PreparedData.in_folder(work / "p", "drive")


@pytest.mark.parametrize("dataset, targets", [("dsb2018", "hard"), ("drive", "soft")])
def test_best_epoch_val_loss_of_history_is_evaluations_validation_loss(tmp_path, dataset, targets):
    """Train briefly; history.csv's val_loss at the best epoch (the weights kept) equals metrics.json's
    loss.val, for hard (0/1) and soft (area-fraction) targets."""
    from effunet.training import loop

    prepared = (prepared_dsb2018 if dataset == "dsb2018" else prepared_drive)(tmp_path, targets)
    masks = [images.open_gray(prepared.mask(i)) for i in pd.read_csv(prepared.manifest, dtype={"id": str}).id]
    values = np.unique(np.concatenate([np.asarray(m.convert("L")).ravel() for m in masks]))
    assert (set(values) <= {0, 255}) == (targets == "hard")  # soft targets have fractions: the case that broke
    settings = loop.Settings(
        max_epochs=3,
        patience=3,
        batch_size=2,
        learning_rate=0.01,
        encoder_weights="none",
        model_options={"base_filters": 4},
    )
    outputs = loop.Outputs(tmp_path / "model.keras", tmp_path / "history.csv", tmp_path / "run.json", tmp_path / "c")
    summary = loop.train(prepared, "unet", 0, settings, outputs, threads=1)
    history = pd.read_csv(outputs.history).set_index("epoch")
    result = evaluate.evaluate(
        outputs.model,
        prepared,
        metrics_path=tmp_path / "metrics.json",
        per_image_path=tmp_path / "per_image.csv",
        examples_path=tmp_path / "examples.npz",
        run_json=outputs.run,
    )
    assert json.loads(outputs.run.read_text())["loss"] == result["loss"]["function"] == "bce"
    assert result["loss"]["val"] == pytest.approx(history.loc[summary["best_epoch"], "val_loss"], rel=1e-4)
    # the thresholded mask gives another loss on soft targets (the former evaluation), the same on hard
    cases = [c for c in evaluate.load_cases(prepared) if c.split == "val"]
    hard = np.mean(
        evaluate.image_losses("bce", [c.truth for c in cases], [np.full(c.truth.shape, 0.3, np.float32) for c in cases])
    )
    soft = np.mean(
        evaluate.image_losses(
            "bce", evaluate.training_targets(prepared, cases), [np.full(c.truth.shape, 0.3, np.float32) for c in cases]
        )
    )
    assert (abs(hard - soft) < 1e-6) == (targets == "hard")
