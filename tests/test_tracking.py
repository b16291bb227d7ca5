"""MLflow tracking: store set-up, run round trip, resume, retries, concurrency, dead and live servers."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

from effunet import tracking
from effunet.errors import EffunetError
from effunet.tracking.names import metric_key

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import conftest  # noqa: E402
import tracking_worker  # noqa: E402

EXPERIMENT = "effunet-test"


@pytest.fixture(scope="session")
def default_store(tmp_path_factory) -> tuple[Path, str, str]:
    """prepare_store run twice on the default URI in a fresh folder: (folder, first id, second id).

    Made once per session: creating MLflow's schema takes seconds; tests copy the database.
    """
    folder = tmp_path_factory.mktemp("default-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        first = tracking.prepare_store(tracking.DEFAULT_TRACKING_URI, "effunet")
        second = tracking.prepare_store(tracking.DEFAULT_TRACKING_URI, "effunet")
    return folder, first, second


@pytest.fixture
def store(tmp_path, default_store) -> str:
    """A prepared SQLite store at <tmp>/results/mlflow.db with experiment EXPERIMENT."""
    (tmp_path / "results").mkdir()
    shutil.copy(default_store[0] / "results" / "mlflow.db", tmp_path / "results" / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/results/mlflow.db"
    tracking.prepare_store(uri, EXPERIMENT)
    return uri


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(tracking.retry, "BACKOFF_S", 0.001)  # read where with_retries lives


def runs_of(uri: str, experiment: str = EXPERIMENT):
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id], max_results=1000)


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    """The history of the metric the code names `key` (logged as `names.metric_key(key)`, e.g. train/loss)."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, metric_key(key)))



# --- store set-up ------------------------------------------------------------------------------


def test_prepare_store_is_idempotent_and_puts_artifacts_next_to_the_db(default_store, monkeypatch):
    folder, first, second = default_store
    monkeypatch.chdir(folder)
    assert first == second == tracking.prepare_store(tracking.DEFAULT_TRACKING_URI, "effunet")
    assert (folder / "results" / "mlflow.db").is_file()
    client = MlflowClient(tracking.DEFAULT_TRACKING_URI)
    experiments = [e for e in client.search_experiments() if e.name == "effunet"]
    assert len(experiments) == 1 and experiments[0].experiment_id == first
    assert experiments[0].artifact_location == (folder / "results" / "mlartifacts" / "effunet").as_uri()


def test_prepare_store_error_names_the_uri(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    uri = f"sqlite:///{tmp_path}/a-file/mlflow.db"
    with pytest.raises(EffunetError, match="a-file/mlflow.db"):
        tracking.prepare_store(uri, EXPERIMENT)
    with pytest.raises(EffunetError, match="sqlite:///<path"):
        tracking.prepare_store("sqlite://", EXPERIMENT)


# --- run round trip ----------------------------------------------------------------------------


def test_flatten_dots_nested_keys_and_stringifies():
    flat = tracking.flatten({"train": {"lr": 0.001, "sizes": [128, 128], "aug": {"flip": True}}, "x": None})
    assert flat == {"train.lr": "0.001", "train.sizes": "[128, 128]", "train.aug.flip": "True", "x": "None"}


def test_run_logs_params_tags_metrics_and_artifacts(store, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    tags = tracking.default_tags("dsb2018", "effunet-b0", 1, rule="train", recipe="modern")
    name = tracking.run_name("dsb2018", "effunet-b0", 1, recipe="modern")
    (tmp_path / "history.csv").write_text("epoch,loss\n0,0.5\n")
    (tmp_path / "model.keras").write_bytes(b"weights")

    with tracking.RunTracker.open(store, EXPERIMENT, name, tags=tags) as tracker:
        assert tracker.enabled
        tracker.log_params({"train": {"batch_size": 16, "optimizer": "adam"}, "note": "x" * 7000})
        for epoch in range(3):
            tracker.log_metrics({"loss": 1.0 / (epoch + 1), "val_dice": 0.1 * epoch}, step=epoch)
        tracker.log_artifact(tmp_path / "history.csv")
        tracker.log_artifact(tmp_path / "model.keras")
        (tmp_path / "plots").mkdir()
        (tmp_path / "plots" / "curve.png").write_bytes(b"png")
        tracker.log_artifact(tmp_path / "plots", "plots")

    client, runs = runs_of(store)
    assert [r.info.run_id for r in runs] == [tracker.run_id]
    run = runs[0]
    assert run.info.run_name == "dsb2018/effunet-b0/modern/seed1" and run.info.status == "FINISHED"
    assert run.data.tags["recipe"] == "modern" and run.data.tags["model"] == "effunet-b0"
    assert run.data.params["train.batch_size"] == "16"
    assert run.data.params["train.optimizer"] == "adam"
    assert run.data.params["note"] == "x" * 6000
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert run.data.tags["git_commit"] == commit != ""
    assert run.data.tags["slurm_job_id"] == "4242"
    assert run.data.tags["host"] == socket.gethostname()
    assert run.data.tags["snakemake_rule"] == "train"
    assert (run.data.tags["dataset"], run.data.tags["model"], run.data.tags["seed"]) == ("dsb2018", "effunet-b0", "1")
    assert history(client, tracker.run_id, "loss") == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert [s for s, _ in history(client, tracker.run_id, "val_dice")] == [0, 1, 2]
    assert set(run.data.metrics) == {"train/loss", "val/dice"}  # grouped: the UI's chart sections
    assert sorted(a.path for a in client.list_artifacts(tracker.run_id)) == ["history.csv", "model.keras", "plots"]
    assert [a.path for a in client.list_artifacts(tracker.run_id, "plots")] == ["plots/curve.png"]
    stored = tmp_path / "results" / "mlartifacts" / EXPERIMENT / tracker.run_id / "artifacts" / "model.keras"
    assert stored.read_bytes() == b"weights"
    assert not (Path.cwd() / "mlruns").exists()


def test_default_tags_without_slurm_or_git(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH: the commit is unknown
    tags = tracking.default_tags("drive", "unet", 0)
    assert tags["git_commit"] == "unknown"
    assert "slurm_job_id" not in tags and "snakemake_rule" not in tags
    assert tags["seed"] == "0"


def test_failed_block_marks_the_run_failed(store):
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.RunTracker.open(store, EXPERIMENT, "drive/unet/seed0") as tracker:
            tracker.log_metrics({"loss": 1.0}, step=0)
            raise RuntimeError("boom")
    _, runs = runs_of(store)
    assert [r.info.status for r in runs] == ["FAILED"]


# --- resume ------------------------------------------------------------------------------------


def test_reopening_by_run_id_continues_the_same_run(store, caplog):
    params = {"train": {"batch_size": 16, "learning_rate": 0.001}}
    first = tracking.RunTracker.open(store, EXPERIMENT, "drive/unet/seed0")
    first.log_params(params)
    for epoch in range(5):
        first.log_metrics({"loss": float(epoch)}, step=epoch)
    del first  # killed: never finished, the run stays RUNNING
    client, runs = runs_of(store)
    assert [r.info.status for r in runs] == ["RUNNING"]
    run_id = runs[0].info.run_id

    with caplog.at_level(logging.INFO, logger="effunet.tracking"):
        second = tracking.RunTracker.open(store, EXPERIMENT, "drive/unet/seed0", run_id=run_id)
        assert second.run_id == run_id
        assert client.get_run(run_id).info.status == "RUNNING"
        second.log_params({"train": {"batch_size": 16, "learning_rate": 0.01}})  # one value changed
        for epoch in range(5, 10):
            second.log_metrics({"loss": float(epoch)}, step=epoch)
        second.finish()
    assert not second.enabled

    client, runs = runs_of(store)
    assert [r.info.run_id for r in runs] == [run_id]
    assert runs[0].info.status == "FINISHED"
    assert history(client, run_id, "loss") == [(e, float(e)) for e in range(10)]
    assert runs[0].data.params["train.learning_rate"] == "0.001"
    assert any("train.learning_rate" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_unknown_run_id_starts_a_new_run_with_a_warning(store, caplog):
    with caplog.at_level(logging.WARNING, logger="effunet.tracking"):
        tracker = tracking.RunTracker.open(store, EXPERIMENT, "drive/unet/seed0", run_id="0" * 32)
    assert tracker.enabled and tracker.run_id != "0" * 32
    tracker.finish()
    _, runs = runs_of(store)
    assert [r.info.run_id for r in runs] == [tracker.run_id]
    assert any("0" * 32 in r.getMessage() and "new run" in r.getMessage() for r in caplog.records)


# --- one run per run identity -----------------------------------------------------------------

JOB = {"checkpoint_dir": "/results/dsb2018/unet/study/seed0/checkpoint"}
NAME = "dsb2018/unet/study/seed0"


def attempt(store: str, identity: str = "a", job: dict = JOB, run_id: str | None = None) -> tracking.RunTracker:
    return tracking.RunTracker.open(store, EXPERIMENT, NAME, run_id=run_id, job_tags=job,
                                    attempt_tags={"run_identity": identity}, tags={"model": "unet"})


def test_an_attempt_that_died_before_its_first_checkpoint_is_continued_by_the_next(store, caplog):
    """The run id is saved with the first checkpoint; an attempt killed before it leaves a RUNNING run with
    params and no metrics, which the next attempt (no run id) finds by its tags and continues."""
    first = attempt(store)
    first.log_params({"max_epochs": 3, "parameters": 1234})
    del first  # SIGKILL: never finished
    with caplog.at_level(logging.INFO, logger="effunet.tracking"):
        second = attempt(store)
        second.log_params({"max_epochs": 3, "parameters": 1234})  # equal: not logged twice, no warning
        for epoch in (1, 2, 3):
            second.log_metrics({"val_loss": 1.0 / epoch}, step=epoch)
        second.finish()
    client, runs = runs_of(store)
    assert len(runs) == 1 and runs[0].info.run_id == second.run_id and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["run_identity"] == "a" and runs[0].data.tags["checkpoint_dir"] == JOB["checkpoint_dir"]
    assert history(client, second.run_id, "val_loss") == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert any("earlier attempt" in r.getMessage() and "continued" in r.getMessage() for r in caplog.records)
    assert not any(r.levelno >= logging.WARNING and "param" in r.getMessage() for r in caplog.records)

    # a killed (SIGTERM: KILLED) or failed attempt without metrics is continued the same way
    third = attempt(store, identity="b")
    third.finish("KILLED")
    fourth = attempt(store, identity="b")
    assert fourth.run_id == third.run_id and client.get_run(third.run_id).info.status == "RUNNING"
    fourth.finish()


def test_earlier_attempts_that_cannot_be_continued_are_ended_killed_and_others_left_alone(store, caplog):
    other_settings = attempt(store, identity="old")  # killed before its checkpoint; then the config changed
    with_epochs = attempt(store, identity="a")  # killed after logging epochs, and its checkpoint is gone
    with_epochs.log_metrics({"val_loss": 0.5}, step=1)
    finished = attempt(store, identity="a")  # a run that ended well is never reopened nor changed
    assert finished.run_id not in (other_settings.run_id, with_epochs.run_id)
    finished.finish()
    other_job = attempt(store, identity="a", job={"checkpoint_dir": "/elsewhere/checkpoint"})  # another job's run
    client = MlflowClient(store)
    assert client.get_run(other_settings.run_id).info.status == "KILLED"  # ended when `finished` opened
    assert client.get_run(with_epochs.run_id).info.status == "KILLED"
    with caplog.at_level(logging.WARNING, logger="effunet.tracking"):
        new = attempt(store, identity="a")
    assert new.run_id not in {other_settings.run_id, with_epochs.run_id, finished.run_id, other_job.run_id}
    new.finish()
    statuses = {r.info.run_id: r.info.status for r in runs_of(store)[1]}
    assert statuses == {other_settings.run_id: "KILLED", with_epochs.run_id: "KILLED", finished.run_id: "FINISHED",
                        other_job.run_id: "RUNNING", new.run_id: "FINISHED"}


def test_orphans_are_ended_with_the_reason_in_the_log(store, caplog):
    orphan = attempt(store, identity="old")
    with caplog.at_level(logging.WARNING, logger="effunet.tracking"):
        new = attempt(store, identity="new")
    assert new.run_id != orphan.run_id
    assert MlflowClient(store).get_run(orphan.run_id).info.status == "KILLED"
    assert any(orphan.run_id in r.getMessage() and "other settings" in r.getMessage() and "KILLED" in r.getMessage()
               for r in caplog.records)
    # a resumed attempt (run id from the checkpoint) ends the job's other RUNNING runs too
    stray = attempt(store, identity="other")
    again = attempt(store, identity="new", run_id=new.run_id)
    assert again.run_id == new.run_id and MlflowClient(store).get_run(stray.run_id).info.status == "KILLED"


def test_sigterm_ends_the_run_killed(store, tmp_path):
    hold = tmp_path / "hold"
    job = subprocess.Popen([sys.executable, str(HERE / "tracking_worker.py"), store, EXPERIMENT, "7", str(tmp_path),
                            "--epochs", "2", "--hold", str(hold)])
    deadline = time.monotonic() + 120
    while not (hold.exists() and hold.read_text()):
        assert job.poll() is None and time.monotonic() < deadline, (tmp_path / "job-7.log").read_text()
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=60) == 128 + signal.SIGTERM
    client = MlflowClient(store)
    assert client.get_run(hold.read_text()).info.status == "KILLED"
    assert "terminated (SIGTERM)" in (tmp_path / "job-7.log").read_text()
    assert [s for s, _ in history(client, hold.read_text(), "loss")] == [0, 1]


def test_sigint_ends_the_run_killed_and_the_handler_is_restored(store):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with tracking.RunTracker.open(store, EXPERIMENT, NAME) as tracker:
            assert signal.getsignal(signal.SIGTERM) is not before
            raise KeyboardInterrupt
    assert signal.getsignal(signal.SIGTERM) is before
    assert MlflowClient(store).get_run(tracker.run_id).info.status == "KILLED"


def test_a_run_whose_store_came_back_is_closed_with_its_status(store, fast_retries, caplog):
    """A store unreachable past the retries switches tracking off; if it answers again by the end of the job,
    the run is ended with the job's status (tagged tracking_incomplete) instead of staying RUNNING."""
    for status, back in (("FINISHED", True), ("FAILED", True), ("FINISHED", False)):
        tracker = tracking.RunTracker.open(store, EXPERIMENT, NAME)
        real = {name: getattr(tracker._client, name) for name in ("log_batch", "set_terminated")}

        def down(*args, **kwargs):
            raise MlflowException("connection refused", error_code=TEMPORARILY_UNAVAILABLE)

        tracker._client.log_batch = tracker._client.set_terminated = down
        tracker.log_metrics({"loss": 1.0}, step=1)
        assert not tracker.enabled
        tracker.log_metrics({"loss": 0.5}, step=2)  # skipped while down
        if back:
            for name, call in real.items():
                setattr(tracker._client, name, call)
        with caplog.at_level(logging.WARNING, logger="effunet.tracking"):
            tracker.finish(status)
        run = MlflowClient(store).get_run(tracker.run_id)
        if back:
            assert run.info.status == status and "connection refused" in run.data.tags["tracking_incomplete"]
        else:
            assert run.info.status == "RUNNING"
            assert any("stays RUNNING" in r.getMessage() for r in caplog.records)
        tracker.finish(status)  # once only


# --- evaluations ---------------------------------------------------------------------------------


def evaluation_result(threshold: float, dice: float) -> dict:
    pooled = {"dice": dice, "iou": dice / 2, "accuracy": 0.9, "roc_auc": 0.95, "pr_auc": 0.8}
    return {"threshold": {"value": threshold, "chosen_on": "fixed"}, "inference_images_per_s": 10.0,
            "loss": {"test": 0.3}, "splits": {"test": {"native": {"pooled": pooled,
                                                                  "per_image_mean": {"dice": dice - 0.01}}}}}


def test_each_evaluation_is_a_step_of_its_own_with_its_settings(store, tmp_path):
    """Re-evaluating with another threshold: the shown threshold is the one that made the shown scores,
    each evaluation keeps its own step, and no metric has two values at one step."""
    from effunet.evaluate import log_to_training_run

    with tracking.RunTracker.open(store, EXPERIMENT, NAME) as training:
        training.log_metrics({"val_loss": 0.4}, step=2)
    (tmp_path / "run.json").write_text(json.dumps({"run_id": training.run_id, "epochs_trained": 2}))
    (tmp_path / "metrics.json").write_text("{}")
    for threshold, dice in ((0.5, 0.70), (0.3, 0.75), (0.3, 0.75)):
        log_to_training_run(evaluation_result(threshold, dice), tmp_path / "run.json", tmp_path / "metrics.json",
                            store, EXPERIMENT)
    client = MlflowClient(store)
    run = client.get_run(training.run_id)
    assert run.info.status == "FINISHED"
    assert history(client, training.run_id, "test_dice") == [(1, 0.70), (2, 0.75), (3, 0.75)]
    assert history(client, training.run_id, "eval.threshold") == [(1, 0.5), (2, 0.3), (3, 0.3)]
    assert run.data.metrics["test/dice"] == 0.75 and run.data.metrics["eval/threshold"] == 0.3  # the newest
    assert run.data.tags["eval.threshold"] == "0.3" and run.data.tags["eval.step"] == "3"
    assert run.data.tags["eval.threshold_chosen_on"] == "fixed" and "eval.threshold" not in run.data.params
    for key in run.data.metrics:
        steps = [m.step for m in client.get_metric_history(training.run_id, key)]
        assert len(steps) == len(set(steps)), key
    assert [a.path for a in client.list_artifacts(training.run_id, "eval")] == ["eval/metrics.json"]


def test_a_run_with_the_old_threshold_param_says_which_setting_holds(store, tmp_path, caplog):
    """Runs evaluated by earlier versions have a param eval.threshold (immutable) and test metrics at step
    epochs_trained: a re-evaluation goes one step after them and the log says the tag holds."""
    with tracking.RunTracker.open(store, EXPERIMENT, NAME) as training:
        training.log_params({"eval.threshold": 0.5})
        training.log_metrics({"test_dice": 0.7}, step=5)
    (tmp_path / "run.json").write_text(json.dumps({"run_id": training.run_id, "epochs_trained": 5}))
    (tmp_path / "metrics.json").write_text("{}")
    from effunet.evaluate import log_to_training_run

    with caplog.at_level(logging.WARNING, logger="effunet.tracking"):
        log_to_training_run(evaluation_result(0.3, 0.8), tmp_path / "run.json", tmp_path / "metrics.json", store,
                            EXPERIMENT)
    client = MlflowClient(store)
    assert history(client, training.run_id, "test_dice") == [(5, 0.7), (6, 0.8)]
    assert client.get_run(training.run_id).data.tags["eval.threshold"] == "0.3"
    assert any("eval.threshold" in r.getMessage() and "tag" in r.getMessage() for r in caplog.records)


# --- retries and failures ----------------------------------------------------------------------


def test_locked_database_is_retried_without_losing_data(store, fast_retries, caplog):
    tracker = tracking.RunTracker.open(store, EXPERIMENT, "drive/unet/seed0")
    real = tracker._client.log_batch
    failures = {"left": 3}

    def flaky(*args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise MlflowException("(sqlite3.OperationalError) database is locked",
                                  error_code=TEMPORARILY_UNAVAILABLE)
        return real(*args, **kwargs)

    tracker._client.log_batch = flaky
    with caplog.at_level(logging.WARNING, logger="effunet.tracking"):
        tracker.log_metrics({"loss": 0.25, "dice": 0.75}, step=7)
    assert tracker.enabled and failures["left"] == 0
    tracker.finish()
    client, _ = runs_of(store)
    assert history(client, tracker.run_id, "loss") == [(7, 0.25)]
    assert history(client, tracker.run_id, "dice") == [(7, 0.75)]
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 3


def test_store_failing_mid_run_disables_the_tracker(store, fast_retries, caplog, tmp_path):
    tracker = tracking.RunTracker.open(store, EXPERIMENT, "drive/unet/seed0")
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise MlflowException("(sqlite3.OperationalError) disk I/O error", error_code=TEMPORARILY_UNAVAILABLE)

    tracker._client.log_batch = broken
    tracker._client.log_artifact = broken
    tracker._client.set_terminated = broken
    with caplog.at_level(logging.WARNING, logger="effunet.tracking"):
        tracker.log_metrics({"loss": 1.0}, step=0)
        assert not tracker.enabled
        assert len(calls) == tracking.ATTEMPTS
        tracker.log_metrics({"loss": 0.5}, step=1)
        tracker.log_params({"a": 1})
        tracker.log_artifact(__file__)
        tracker.finish("FAILED")
    # no further calls once disabled, except a short try at the end to end the run (the store may be back)
    assert len(calls) == tracking.ATTEMPTS + tracking.PROBE_ATTEMPTS
    assert any("tracking disabled" in r.getMessage() for r in caplog.records)


def test_unreachable_server_gives_a_disabled_tracker_quickly(tmp_path, caplog):
    uri = f"http://127.0.0.1:{conftest.free_port()}"  # nothing listens there
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="effunet.tracking"):
        tracker = tracking.RunTracker.open(uri, EXPERIMENT, "drive/unet/seed0",
                                           tags=tracking.default_tags("drive", "unet", 0))
    assert time.monotonic() - start < 15
    assert not tracker.enabled and tracker.run_id is None
    assert any("tracking skipped" in r.getMessage() and uri in r.getMessage()
               and "connection refused" in r.getMessage() for r in caplog.records)
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # restored after the call

    start = time.monotonic()
    with tracker:
        tracker.log_params({"a": {"b": 1}})
        tracker.log_metrics({"loss": 1.0}, step=0)
        tracker.set_tags({"x": "y"})
        tracker.log_artifact(tmp_path / "missing.csv")
    tracker.finish("FAILED")
    assert time.monotonic() - start < 1


def test_silent_server_is_bounded_by_the_request_timeout(monkeypatch, caplog):
    """A server that accepts connections but never answers: MLflow's own 120 s timeout must not apply."""
    monkeypatch.setitem(tracking.PROBE_HTTP_ENV, "MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")  # the probe overrides even this
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshake; nobody ever reads or writes
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="effunet.tracking"):
            tracker = tracking.RunTracker.open(uri, EXPERIMENT, "drive/unet/seed0")
        elapsed = time.monotonic() - start
    assert not tracker.enabled
    assert 1 <= elapsed < 1 * tracking.PROBE_ATTEMPTS + 5
    assert any("tracking skipped" in r.getMessage() and "timed out" in r.getMessage()
               for r in caplog.records)
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "120"


def test_prepare_store_not_strict_only_warns(fast_retries, caplog):
    uri = f"http://127.0.0.1:{conftest.free_port()}"
    with pytest.raises(EffunetError, match=uri):
        tracking.prepare_store(uri, EXPERIMENT)
    with caplog.at_level(logging.WARNING, logger="effunet.tracking"):
        assert tracking.prepare_store(uri, EXPERIMENT, strict=False) is None
    assert any("skipped" in r.getMessage() and uri in r.getMessage() for r in caplog.records)


def test_disabled_tracker_lets_errors_through():
    tracker = tracking.disabled()
    assert not tracker.enabled and tracker.run_id is None
    with pytest.raises(KeyError):
        with tracker:
            tracker.log_metrics({"loss": 1.0}, step=0)
            raise KeyError("from training")
    with pytest.raises(ValueError, match="status"):
        tracker.finish("DONE")


# --- concurrency -------------------------------------------------------------------------------


def test_six_concurrent_jobs_on_one_sqlite_store(store, tmp_path):
    """Six processes log full runs at once; every run and every metric value must be in the store.

    The processes come from a forkserver that imported MLflow once (fresh processes, no store or
    connection inherited) so the test costs one MLflow import rather than six.
    """
    workers, epochs = 6, 20
    go = tmp_path / "go"
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["mlflow", "mlflow.store.tracking.sqlalchemy_store", "tracking_worker"])
    procs = [context.Process(target=tracking_worker.run_job, args=(store, EXPERIMENT, i, tmp_path, epochs, go))
             for i in range(workers)]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < workers and time.monotonic() < deadline:
        time.sleep(0.02)
    go.touch()  # all start logging at once
    for i, proc in enumerate(procs):
        proc.join(timeout=180)
        log_text = (tmp_path / f"job-{i}.log").read_text() if (tmp_path / f"job-{i}.log").exists() else ""
        assert proc.exitcode == 0, f"job {i} exit code {proc.exitcode}:\n{log_text[-3000:]}"

    client, runs = runs_of(store)
    assert len(runs) == workers
    assert {r.info.status for r in runs} == {"FINISHED"}
    by_name = {r.info.run_name: r for r in runs}
    for i in range(workers):
        run = by_name[tracking.run_name("synthetic", f"model{i}", i)]
        assert run.info.run_id == (tmp_path / f"run-{i}.txt").read_text()
        assert run.data.params["train.batch_size"] == "4"
        for key in tracking_worker.METRICS:
            expected = [(e, pytest.approx(tracking_worker.expected_value(i, e, key))) for e in range(epochs)]
            assert history(client, run.info.run_id, key) == expected
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [f"history-{i}.csv"]


# --- a real tracking server --------------------------------------------------------------------


@pytest.fixture
def mlflow_server(tmp_path, default_store):
    shutil.copy(default_store[0] / "results" / "mlflow.db", tmp_path / "db.sqlite")  # skips migrations
    with conftest.mlflow_server(tmp_path, f"sqlite:///{tmp_path}/db.sqlite") as url:
        yield url


@pytest.mark.slow
def test_run_round_trips_through_an_mlflow_server(mlflow_server, tmp_path):
    experiment_id = tracking.prepare_store(mlflow_server, EXPERIMENT)
    assert tracking.prepare_store(mlflow_server, EXPERIMENT) == experiment_id
    (tmp_path / "history.csv").write_text("epoch,loss\n0,0.5\n1,0.25\n")
    with tracking.RunTracker.open(mlflow_server, EXPERIMENT, "drive/unet/seed0",
                                  tags=tracking.default_tags("drive", "unet", 0)) as tracker:
        assert tracker.enabled
        tracker.log_params({"train": {"batch_size": 2}})
        for epoch in range(3):
            tracker.log_metrics({"loss": 0.5 ** epoch}, step=epoch)
        tracker.log_artifact(tmp_path / "history.csv")
    run_id = tracker.run_id

    # resume through the server too
    with tracking.RunTracker.open(mlflow_server, EXPERIMENT, "drive/unet/seed0", run_id=run_id) as again:
        assert again.run_id == run_id
        again.log_metrics({"loss": 0.125}, step=3)

    client, runs = runs_of(mlflow_server)
    assert [r.info.run_id for r in runs] == [run_id] and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["train.batch_size"] == "2"
    assert history(client, run_id, "loss") == [(0, 1.0), (1, 0.5), (2, 0.25), (3, 0.125)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["history.csv"]
    served = list((tmp_path / "served-artifacts").rglob("history.csv"))
    assert len(served) == 1 and served[0].read_text().startswith("epoch,loss")


def test_a_moved_store_opens_its_artifacts_after_relocation(tmp_path):
    """MLflow keeps absolute artifact paths; relocation (run by prepare_store at every workflow start,
    or by hand with python -m effunet.tracking relocate) points them at the store's new folder."""
    import mlflow.artifacts

    first = tmp_path / "a" / "results"
    uri = f"sqlite:///{first}/mlflow.db"
    tracking.prepare_store(uri, EXPERIMENT)
    (tmp_path / "history.csv").write_text("epoch,loss\n1,0.5\n")
    with tracking.RunTracker.open(uri, EXPERIMENT, "dsb2018/unet/seed0") as tracker:
        tracker.log_artifact(tmp_path / "history.csv")
    moved = tmp_path / "b" / "moved results"  # a space, to check the URI quoting
    moved.parent.mkdir()
    shutil.move(first, moved)
    new_uri = f"sqlite:///{moved}/mlflow.db"

    def read_back() -> str:
        return Path(mlflow.artifacts.download_artifacts(run_id=tracker.run_id, artifact_path="history.csv",
                                                        tracking_uri=new_uri, dst_path=tmp_path / "dl")).read_text()

    with pytest.raises((OSError, MlflowException)):  # the problem being solved: MLflow looks in the old folder
        read_back()
    done = subprocess.run([sys.executable, "-m", "effunet.tracking", "relocate", new_uri], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 artifact locations updated" in done.stdout  # the experiment and its run
    assert read_back() == "epoch,loss\n1,0.5\n"
    assert tracking.relocate_store(new_uri) == 0  # idempotent; prepare_store runs it at every start

    shutil.move(moved, tmp_path / "again")
    again = f"sqlite:///{tmp_path / 'again'}/mlflow.db"
    tracking.prepare_store(again, EXPERIMENT)
    client = MlflowClient(again)
    assert client.get_run(tracker.run_id).info.artifact_uri.startswith((tmp_path / "again").as_uri())
    assert [a.path for a in client.list_artifacts(tracker.run_id)] == ["history.csv"]


def test_log_files_adds_files_to_the_run_of_a_run_json(store, tmp_path, caplog):
    with tracking.RunTracker.open(store, EXPERIMENT, "dsb2018/unet/seed0") as tracker:
        tracker.log_metrics({"loss": 0.5}, step=1)
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"run_id": tracker.run_id, "epochs": 1}))
    (tmp_path / "curve.png").write_bytes(b"png")
    (tmp_path / "metrics.json").write_text("{}")
    tracking.log_files(store, EXPERIMENT, run_json, [tmp_path / "curve.png", tmp_path / "metrics.json"], "eval")
    client = MlflowClient(store)
    assert [a.path for a in client.list_artifacts(tracker.run_id, "eval")] == ["eval/curve.png", "eval/metrics.json"]
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"  # reopened for the files, then ended again
    assert len(client.search_runs([run.info.experiment_id])) == 1  # no run of its own

    untracked = tmp_path / "untracked.json"
    untracked.write_text(json.dumps({"run_id": None, "epochs": 1}))
    with caplog.at_level(logging.INFO, logger="effunet.tracking"):
        tracking.log_files(store, EXPERIMENT, untracked, [tmp_path / "curve.png"])
        tracking.log_files(None, EXPERIMENT, run_json, [tmp_path / "curve.png"])
    assert caplog.text.count("the training run was not tracked") == 2
    assert [a.path for a in client.list_artifacts(tracker.run_id)] == ["eval"]

    with pytest.raises(EffunetError, match="missing.json"):
        tracking.log_files(store, EXPERIMENT, tmp_path / "missing.json", [tmp_path / "curve.png"])


TRACKING = ROOT / "src" / "effunet" / "tracking"
LAYERS = ["retry", "names", "tags", "view", "store", "attempts", "inputs", "session", "runs", "artifacts", "ui"]
"""The package's modules in the order of the package docstring's layout: each imports only those before it."""


def tracking_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for each ``effunet.tracking`` module and name a file imports (inside functions too);
    ``from effunet.tracking import x`` gives (x, "")."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "effunet.tracking":
            found += [(alias.name, "") for alias in node.names if (TRACKING / f"{alias.name}.py").is_file()]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("effunet.tracking."):
            found += [(node.module.rsplit(".", 1)[1], alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name.rsplit(".", 1)[1], "") for alias in node.names
                      if alias.name.startswith("effunet.tracking.")]
    return found


def test_the_tracking_modules_are_layered_without_circles_private_names_or_long_files():
    modules = {path.stem for path in TRACKING.glob("*.py")} - {"__init__", "__main__"}
    assert modules == set(LAYERS), "a tracking module is missing from LAYERS (and the package docstring)"
    for path in sorted(TRACKING.glob("*.py")):
        assert len(path.read_text().splitlines()) <= 300, f"{path.name} is over 300 lines (issue 21)"
        for module, name in tracking_imports(path):
            assert not name.startswith("_"), f"{path.name} imports the private {module}.{name}"
            if path.stem in LAYERS:
                assert LAYERS.index(module) < LAYERS.index(path.stem), f"{path.name} imports {module}, a later layer"
    assert ("runs", "RunTracker") in tracking_imports(TRACKING / "artifacts.py")  # the reader sees imports
    assert ("inputs", "") in tracking_imports(TRACKING / "runs.py")  # `from effunet.tracking import inputs`
