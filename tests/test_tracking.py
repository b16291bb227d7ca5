"""MLflow tracking: store set-up, run round trip, resume, retries, concurrency, dead and live servers."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
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
    monkeypatch.setattr(tracking.retry, "BACKOFF_S", 0.001)  # read where _retry lives


def runs_of(uri: str, experiment: str = EXPERIMENT):
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id], max_results=1000)


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))



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
    assert len(calls) == tracking.ATTEMPTS  # no further calls once disabled
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
