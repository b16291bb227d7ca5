"""Training: pipeline determinism, losses and metrics, early stopping, outputs, kill-and-resume."""

import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from effunet.data import archives, dsb2018, synthetic
from effunet.layout import PreparedData
from effunet.tracking.names import metric_key

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("prepared")
    archive = synthetic.write_dsb2018_zip(work / "dsb.zip", n_images=12, seed=5)
    archives.extract(archive, work / "raw")
    dsb2018.merge_masks(work / "raw", work / "labels")
    dsb2018.resize(work / "raw", work / "labels", work / "p/images", work / "p/masks", work / "p/manifest.csv",
                   (32, 32), test_fraction=0.17, val_fraction=0.2, seed=0)
    return work / "p"


@pytest.fixture(scope="module")
def prepared64(prepared) -> Path:
    """The same images prepared at 64x64: the manifest (native sizes) is the same file."""
    work = prepared.parent
    dsb2018.resize(work / "raw", work / "labels", work / "p64/images", work / "p64/masks", work / "p64/manifest.csv",
                   (64, 64), test_fraction=0.17, val_fraction=0.2, seed=0)
    return work / "p64"


def test_epochs_are_seeded_permutations_and_augmentation_is_paired(prepared):
    from effunet.training import dataset

    images, masks = dataset.load_split(PreparedData.in_folder(prepared), "train")
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3) and masks.shape[1:] == (32, 32, 1)

    def first_batch(**kwargs):
        x, y = next(iter(dataset.make_dataset(images, masks, len(images), **kwargs)))
        return x.numpy(), y.numpy()

    x1, y1 = first_batch(seed=1, epoch=4)
    x2, _ = first_batch(seed=1, epoch=4)
    x3, _ = first_batch(seed=1, epoch=5)
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(x1, x3)
    assert x1.dtype == np.float32 and x1.max() > 1.5  # the 0..255 input contract
    assert set(np.unique(y1)) <= {0.0, 1.0}
    assert sorted(map(bytes, x1.astype(np.uint8))) == sorted(map(bytes, images.astype(np.uint8)))
    xa, ya = first_batch(seed=1, epoch=4, augment=True)
    # every augmented pair is the same flip/rotation of some original image and of its mask
    for image, mask in zip(xa.astype(np.uint8), ya):
        candidates = [(np.rot90(f(o), k), np.rot90(f(m), k)) for o, m in zip(images, masks > 127)
                      for f in (lambda a: a, np.flipud, np.fliplr, lambda a: a[::-1, ::-1]) for k in range(4)]
        assert any(np.array_equal(image, ci) and np.array_equal(mask.astype(bool), cm) for ci, cm in candidates)


@pytest.mark.backend
def test_pooled_metrics_and_losses_known_answers():
    import keras

    from effunet.training import losses

    truth = np.zeros((1, 4, 4, 1), np.float32)
    truth[0, :2, :2] = 1  # 4 foreground pixels
    pred = np.zeros((1, 4, 4, 1), np.float32)
    pred[0, :2, :1] = 0.9  # 2 true positives
    pred[0, 3, 3] = 0.8  # 1 false positive
    iou, dice = losses.PooledIoU(), losses.PooledDice()
    iou.update_state(truth, pred)
    dice.update_state(truth, pred)
    assert float(iou.result()) == pytest.approx(2 / 5)  # TP / (TP + FP + FN) = 2 / (2 + 1 + 2)
    assert float(dice.result()) == pytest.approx(4 / 7)  # 2TP / (2TP + FP + FN)
    empty_iou = losses.PooledIoU()
    empty_iou.update_state(np.zeros_like(truth), np.zeros_like(pred))
    assert float(empty_iou.result()) == 1.0
    soft = 1 - (2 * (0.9 * 2) + 1) / (4 + (0.9 * 2 + 0.8) + 1)
    assert float(losses.make_loss("dice")(truth, pred)) == pytest.approx(soft, rel=1e-5)
    bce = float(keras.losses.BinaryCrossentropy()(truth, pred))
    assert float(losses.make_loss("bce+dice")(truth, pred)) == pytest.approx(bce + soft, rel=1e-5)


@pytest.mark.backend
def test_early_stopping_counts_patience_and_ignores_nan():
    from effunet.training.loop import EarlyStopping

    stopper = EarlyStopping(patience=2)
    assert stopper.update(1, 0.5) and not stopper.update(2, float("nan")) and not stopper.should_stop
    assert not stopper.update(3, 0.6) and stopper.should_stop and stopper.best_epoch == 1


def run_worker(prepared: Path, out: Path, epochs: int, uri: str = "", model: str = "unet",
               kill: str = "", checkpoint_every_s: float = 0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "train_worker.py"), str(prepared), str(out), str(epochs), uri,
                             model, kill, str(checkpoint_every_s)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def evaluation(model_path: Path, prepared: Path) -> tuple[np.ndarray, dict]:
    """Probabilities for every prepared image, and loss and metrics on each split."""
    import keras

    from effunet import models  # noqa: F401 (registers the custom layers the saved model uses)
    from effunet.training import dataset, losses

    model = keras.models.load_model(model_path, compile=False)  # saved for inference: no optimizer
    model.compile(loss=losses.make_loss("bce"), metrics=losses.make_metrics())
    splits = {split: dataset.load_split(PreparedData.in_folder(prepared), split) for split in ("train", "val", "test")}
    probabilities = np.concatenate([model.predict(images.astype(np.float32), verbose=0)
                                    for images, _ in splits.values()])
    scores = {split: model.evaluate(dataset.make_dataset(*arrays, 4, shuffle=False), verbose=0, return_dict=True)
              for split, arrays in splits.items()}
    return probabilities, scores


@pytest.mark.slow
# every model: unet (plain layers), effunet-b0 (dropout, stochastic depth, batch norm) and resnet50-unet
@pytest.mark.parametrize("model", ["unet", "effunet-b0", "resnet50-unet"])
def test_killed_job_resumes_to_the_same_result_and_the_same_mlflow_run(prepared, tmp_path, model):
    """Killed between epochs 1 and 2 (checkpoint published, MLflow not yet told), then mid-epoch 2: the
    result equals an uninterrupted run's, and MLflow has every epoch exactly once."""
    from mlflow.tracking import MlflowClient

    from effunet import tracking

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.prepare_store(uri, "resume-test")
    epochs = 2
    straight = run_worker(prepared, tmp_path / "straight", epochs, model=model)
    logs = []
    for kill in ("after-checkpoint:1", "mid-epoch:2"):
        attempt = run_worker(prepared, tmp_path / "killed", epochs, uri, model, kill)
        logs.append(attempt.communicate(timeout=3000)[0])
        assert attempt.returncode == -signal.SIGKILL, logs[-1][-3000:]
        assert not (tmp_path / "killed/run.json").exists()
    assert "logging epoch 1 to MLflow" in logs[1]  # the first attempt died before it could
    assert (tmp_path / "killed/checkpoint/latest").read_text() == "epoch-0001"
    resumed = run_worker(prepared, tmp_path / "killed", epochs, uri, model)
    resumed_log, _ = resumed.communicate(timeout=3000)
    straight_log, _ = straight.communicate(timeout=3000)
    assert resumed.returncode == 0 and straight.returncode == 0, resumed_log[-2000:] + straight_log[-2000:]
    assert "resuming from" in resumed_log and "to MLflow (the earlier" not in resumed_log

    summary = json.loads((tmp_path / "killed/run.json").read_text())
    assert summary["epochs_trained"] == epochs and summary["resumed_after_epochs"] == [1]  # the second attempt died before it checkpointed
    a = pd.read_csv(tmp_path / "straight/history.csv").drop(columns="seconds")
    b = pd.read_csv(tmp_path / "killed/history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b, rtol=1e-6, atol=1e-7)  # same epochs, same metrics on CPU
    assert not (tmp_path / "killed/checkpoint").exists()
    (p_straight, s_straight), (p_killed, s_killed) = (evaluation(tmp_path / run / "model.keras", prepared)
                                                      for run in ("straight", "killed"))
    np.testing.assert_allclose(p_killed, p_straight, rtol=1e-6, atol=1e-7)
    for split, scores in s_straight.items():
        assert s_killed[split] == pytest.approx(scores, rel=1e-6, abs=1e-7), split

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("resume-test").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == summary["run_id"]
    assert runs[0].info.status == "FINISHED" and runs[0].info.run_name == f"dsb2018/{model}/study/seed3"
    for key in ("loss", "val_loss", "val_dice"):
        logged = sorted((m.step, m.value) for m in client.get_metric_history(summary["run_id"], metric_key(key)))
        assert logged == [(row.epoch, pytest.approx(getattr(row, key), rel=1e-6)) for row in b.itertuples()]
    artifacts = {f.path for f in client.list_artifacts(summary["run_id"])}
    assert {"history.csv", "run.json"} <= artifacts and "model.keras" not in artifacts  # one copy on disk
    assert runs[0].data.tags["model_file"] == str(tmp_path / "killed/model.keras")


@pytest.mark.slow
def test_attempts_killed_before_the_first_checkpoint_leave_one_mlflow_run(prepared, tmp_path):
    """SIGKILL in epoch 2 before any checkpoint (epoch 1 trained, neither saved nor logged), then SIGTERM in
    epoch 2 again, then a full run: one MLflow run of that name, FINISHED, every epoch logged once."""
    from mlflow.tracking import MlflowClient

    from effunet import tracking

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.prepare_store(uri, "resume-test")
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("resume-test").experiment_id
    epochs, never = 3, 10**6  # checkpoint_every_s: only after the last epoch
    statuses = []
    for kill, code in (("mid-epoch:2", -signal.SIGKILL), ("mid-epoch:2:TERM", 128 + signal.SIGTERM)):
        attempt = run_worker(prepared, tmp_path / "out", epochs, uri, kill=kill, checkpoint_every_s=never)
        log = attempt.communicate(timeout=1200)[0]
        assert attempt.returncode == code, log[-3000:]
        assert "epoch 1/3" in log and not (tmp_path / "out/checkpoint/latest").exists()
        statuses.append([r.info.status for r in client.search_runs([experiment])])
    assert statuses == [["RUNNING"], ["KILLED"]]  # the second attempt continued the first's run, ended by SIGTERM
    assert "earlier attempt" in log and "terminated (SIGTERM)" in log
    done = run_worker(prepared, tmp_path / "out", epochs, uri, checkpoint_every_s=never)
    log = done.communicate(timeout=1200)[0]
    assert done.returncode == 0, log[-3000:]
    assert "earlier attempt" in log and "resuming from" not in log

    summary = json.loads((tmp_path / "out/run.json").read_text())
    runs = client.search_runs([experiment])
    assert [(r.info.run_id, r.info.run_name, r.info.status) for r in runs] == [
        (summary["run_id"], "dsb2018/unet/study/seed3", "FINISHED")]
    rows = pd.read_csv(tmp_path / "out/history.csv")
    for key in ("loss", "val_loss", "val_dice"):
        logged = sorted((m.step, m.value) for m in client.get_metric_history(summary["run_id"], metric_key(key)))
        assert logged == [(row.epoch, pytest.approx(getattr(row, key), rel=1e-6)) for row in rows.itertuples()]
    assert [row.epoch for row in rows.itertuples()] == [1, 2, 3]
    assert runs[0].data.params["max_epochs"] == "3"


@pytest.mark.slow
def test_outputs_early_stopping_and_best_weights(prepared, tmp_path):
    import zipfile

    import h5py
    import keras

    from effunet.training import loop, losses

    settings = loop.Settings(max_epochs=30, patience=2, batch_size=4, learning_rate=0.3, optimizer="sgd",
                             encoder_weights="none", model_options={"base_filters": 4})
    outputs = loop.Outputs(tmp_path / "model.keras", tmp_path / "history.csv", tmp_path / "run.json",
                           tmp_path / "ckpt")
    summary = loop.train(PreparedData.in_folder(prepared), "unet", 0, settings, outputs, threads=1)
    history = pd.read_csv(outputs.history)
    expected = ["epoch", "loss", "accuracy", "iou", "dice", "val_loss", "val_accuracy", "val_iou", "val_dice",
                "learning_rate", "seconds"]
    assert list(history.columns) == expected
    assert summary == json.loads(outputs.run.read_text())
    assert summary["stop_reason"] == "early_stopping" and len(history) < 30
    assert summary["best_epoch"] == int(history.loc[history.val_loss.idxmin(), "epoch"])
    assert len(history) == summary["best_epoch"] + 2  # patience 2
    assert summary["first_epoch_seconds"] == history.seconds[0] and summary["loss"] == "bce"
    assert summary["seconds_per_epoch"] == history.seconds[1:].median()
    # The resolved settings travel with the run for the steps after training (evaluation reads them here).
    assert summary["settings"] == json.loads(json.dumps(dataclasses.asdict(settings))) and summary["recipe"] == "study"
    from effunet.training import dataset

    with zipfile.ZipFile(outputs.model) as saved, saved.open("model.weights.h5") as weights_file, \
            h5py.File(weights_file) as weights:
        groups = set(weights)
        config = json.loads(saved.read("config.json"))
    assert "optimizer" not in groups and "layers" in groups  # weights and architecture, no Adam/SGD state
    assert not config.get("compile_config")  # no optimizer, loss or metrics to restore
    model = keras.models.load_model(outputs.model, compile=False)
    model.compile(loss=losses.make_loss(settings.loss), metrics=losses.make_metrics())
    val = model.evaluate(dataset.make_dataset(*dataset.load_split(PreparedData.in_folder(prepared), "val"), 4, shuffle=False),
                         verbose=0, return_dict=True)
    assert val["loss"] == pytest.approx(history.val_loss.min(), rel=1e-4)  # the best weights were kept


@pytest.mark.slow
def test_unreachable_tracking_server_still_trains_and_says_so(prepared, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    worker = run_worker(prepared, tmp_path / "out", 1, f"http://127.0.0.1:{port}")
    log, _ = worker.communicate(timeout=600)
    assert worker.returncode == 0, log[-2000:]
    assert "tracking skipped" in log
    summary = json.loads((tmp_path / "out/run.json").read_text())
    assert summary["run_id"] is None and summary["epochs_trained"] == 1
    assert (tmp_path / "out/model.keras").exists() and (tmp_path / "out/history.csv").exists()


@pytest.mark.slow
def test_frozen_encoder_epochs_leave_the_encoder_untouched(prepared, tmp_path):
    import keras

    from effunet import models
    from effunet.training import loop

    settings = loop.Settings(max_epochs=1, batch_size=4, encoder_weights="none", freeze_encoder_epochs=1)
    outputs = loop.Outputs(tmp_path / "m.keras", tmp_path / "h.csv", tmp_path / "r.json", tmp_path / "c")
    summary = loop.train(PreparedData.in_folder(prepared), "effunet-b0", 7, settings, outputs)
    assert summary["flops"] > 0
    trained = keras.models.load_model(outputs.model)
    keras.utils.set_random_seed(7)
    initial = models.build("effunet-b0", (32, 32, 3))
    for before, after in zip(models.get_encoder(initial).weights, models.get_encoder(trained).weights):
        np.testing.assert_array_equal(before.numpy(), after.numpy(), err_msg=before.path)
    decoder_changed = [not np.array_equal(b.numpy(), a.numpy()) for b, a in zip(initial.weights, trained.weights)
                       if "encoder" not in b.path]
    assert any(decoder_changed)


def test_checkpoint_differences_name_what_changed():
    from effunet.training import checkpoint

    made = {"model": "unet", "code": "a", "input_shape": [32, 32, 3], "train.batch_size": 4}
    assert checkpoint.differences(made, {**made, "code": "b", "input_shape": [64, 64, 3]}) == ["code", "input_shape"]
    assert checkpoint.differences(made, made) == []
    assert checkpoint.fingerprint(made) != checkpoint.fingerprint({**made, "code": "b"})
    assert checkpoint.differences(None, made) == ["identity (checkpoint from an older version)"]


@pytest.mark.slow
def test_a_checkpoint_of_other_code_or_image_size_starts_afresh_and_says_why(prepared, prepared64, tmp_path,
                                                                             monkeypatch, caplog):
    import logging

    from effunet.training import checkpoint, loop

    assert (prepared / "manifest.csv").read_bytes() == (prepared64 / "manifest.csv").read_bytes()
    settings = loop.Settings(max_epochs=2, batch_size=4, encoder_weights="none", model_options={"base_filters": 4})
    outputs = loop.Outputs(tmp_path / "m.keras", tmp_path / "h.csv", tmp_path / "r.json", tmp_path / "ckpt")
    save = checkpoint.save

    def save_then_fail(*args):
        save(*args)
        raise RuntimeError("killed after the checkpoint")

    monkeypatch.setattr(checkpoint, "save", save_then_fail)

    def attempt(data: Path, code: str) -> str:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="effunet"), pytest.raises(RuntimeError, match="killed"):
            loop.train(PreparedData.in_folder(data), "unet", 0, settings, outputs, code_version=code)
        return caplog.text

    attempt(prepared, "code-a")
    assert "resuming from" in attempt(prepared, "code-a")  # the control: same identity, resumed
    assert "was made with another code; starting over" in attempt(prepared, "code-b")
    assert "resuming from" not in caplog.text
    assert "was made with another data, input_shape; starting over" in attempt(prepared64, "code-b")
    assert "resuming from" not in caplog.text
    monkeypatch.setattr(checkpoint, "save", save)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="effunet"):
        summary = loop.train(PreparedData.in_folder(prepared64), "unet", 0, settings, outputs, code_version="code-b")
    assert summary["resumed_after_epochs"] == [1] and summary["epochs_trained"] == 2
    attempts = (caplog.text.count("training unet, seed 0"), caplog.text.count("resuming from"))
    assert attempts == (1, 1)



def test_reseeding_an_epoch_leaves_tensorflow_global_seed_alone():
    """A new TensorFlow global seed makes TensorFlow re-instantiate and re-optimise the traced
    training step at the next fit (about 5 extra CPU seconds per epoch for the demo's effunet-b0,
    0.9 s -> 6-7 s); reseeding for exact resume sets everything else."""
    import keras
    import tensorflow as tf

    from effunet.training import rng

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5)])
    tf.random.set_seed(1234)
    rng.reseed_epoch(model, seed=0, epoch=3)
    assert tf.compat.v1.random.get_seed(None)[0] == 1234
    first = (np.random.random(), [np.asarray(v).tolist() for v in rng.seed_states(model)])
    rng.reseed_epoch(model, seed=0, epoch=3)
    assert (np.random.random(), [np.asarray(v).tolist() for v in rng.seed_states(model)]) == first
    rng.reseed_epoch(model, seed=0, epoch=4)
    assert np.asarray(rng.seed_states(model)[0]).tolist() != first[1][0]


def test_the_training_step_is_traced_once(prepared):
    """Optimizer variables made inside the first traced step make TensorFlow trace it twice (the
    whole graph again: 20-25 CPU seconds of every effunet-b0 job); later epochs trace nothing."""
    import keras

    from effunet.training import dataset, loop

    if keras.backend.backend() != "tensorflow":
        pytest.skip("tracing is TensorFlow's")
    settings = loop.Settings(batch_size=4, encoder_weights="none", model_options={"base_filters": 4})
    model = loop.build_compiled("unet", (32, 32, 3), settings)
    data = tuple(dataset.load_split(PreparedData.in_folder(prepared), split) for split in ("train", "val"))
    traces = []  # the Python body of train_step runs only while TensorFlow traces it
    train_step = model.train_step
    model.train_step = lambda batch: (traces.append(1), train_step(batch))[1]
    for epoch in (1, 2):
        loop._epoch(model, data, settings, seed=0, epoch=epoch)
    assert len(traces) == 1


@pytest.mark.slow
def test_checkpoints_every_epoch_or_at_most_every_n_seconds(prepared, tmp_path, monkeypatch):
    """train.checkpoint_every_s: 0 checkpoints (and logs to MLflow) after every epoch; a long
    interval only after the last one, with every epoch still logged once, in order. The best weights
    are kept in memory and written only into checkpoints, whose copy reads back as the final model's."""
    from mlflow.tracking import MlflowClient

    from effunet import tracking
    from effunet.training import checkpoint, loop

    import keras

    saved, best_saved = [], {}
    save = checkpoint.save

    def save_and_record(folder, model, best, state):
        saved.append(state["epoch"])
        published = save(folder, model, best, state)
        best_saved[state["epoch"]] = checkpoint.load_best(published)  # read back as a resumed job would
        return published

    monkeypatch.setattr(checkpoint, "save", save_and_record)

    def no_weight_files(*args, **kwargs):
        raise AssertionError("an improving epoch wrote its weights to disk")

    monkeypatch.setattr(keras.Model, "save_weights", no_weight_files)  # best weights stay in memory
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.prepare_store(uri, "interval-test")
    settings = loop.Settings(max_epochs=3, batch_size=4, encoder_weights="none", model_options={"base_filters": 4})
    histories = {}
    for every, expected in ((0.0, [1, 2, 3]), (1e9, [3])):
        saved.clear()
        out = tmp_path / f"every{every:g}"
        summary = loop.train(PreparedData.in_folder(prepared), "unet", 0, settings,
                             loop.Outputs(out / "model.keras", out / "history.csv", out / "run.json", out / "ckpt"),
                             tracking_info=loop.Tracking(uri, "interval-test", "dsb2018"), threads=1,
                             checkpoint_every_s=every)
        assert saved == expected, every
        final = keras.models.load_model(out / "model.keras", compile=False).get_weights()
        assert len(best_saved[3]) == len(final)  # the last checkpoint holds the best weights: the final model's
        for kept, written in zip(best_saved[3], final):
            np.testing.assert_array_equal(kept, written)
        logged = [m.step for m in MlflowClient(uri).get_metric_history(summary["run_id"], "val/loss")]
        assert logged == [1, 2, 3]
        histories[every] = pd.read_csv(out / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(histories[0.0], histories[1e9])  # the interval changes no result
