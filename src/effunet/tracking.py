"""MLflow tracking for training jobs: store set-up, run lifecycle, retries.

Training must never fail because of tracking. Everything here goes through `MlflowClient` with
explicit run ids (no global active run), so it is safe in any process, and every MLflow call is
wrapped in a retry with backoff; a store that stays unreachable switches the tracker off with a
warning and training carries on.

API
---
``prepare_store(tracking_uri, experiment, *, strict=True) -> experiment_id | None``
    Called once by the workflow's set-up rule, before any training job starts: creates the
    SQLite schema and the experiment (idempotent; serialised by a lock file next to the database,
    so even concurrent calls are safe). For SQLite the experiment's artifact location is
    ``<db folder>/mlartifacts/<experiment>``; with an ``http(s)://`` server the server's artifact
    store is used. Raises `EffunetError` naming the URI if the store cannot be set up; with
    ``strict=False`` warns and returns None instead.

``relocate_store(tracking_uri) -> int``
    For a SQLite store that was moved (copied or renamed with its ``mlartifacts/`` folder):
    points its experiments' and runs' artifact locations at ``<db folder>/mlartifacts/...``
    again, so MLflow opens the artifacts at the new place; returns how many locations changed.
    MLflow stores artifact locations as absolute paths, so `prepare_store` calls this at every
    workflow start; after moving a results folder by hand, run
    ``python -m effunet.tracking relocate sqlite:///new/place/mlflow.db`` before ``mlflow ui``.

``log_files(tracking_uri, experiment, run_json, paths, artifact_path)``
    Adds files to the run named by a training job's ``run.json`` (plots, evaluation files);
    a no-op when the run was not tracked.

``run_name(dataset, model, seed) -> "<dataset>/<model>/seed<seed>"``

``default_tags(dataset, model, seed, rule=None) -> dict``
    dataset, model, seed, git_commit (also as mlflow.source.git.commit; "unknown" outside a
    repository), host, snakemake_rule when given, slurm_job_id when ``SLURM_JOB_ID`` is set.

``RunTracker.open(tracking_uri, experiment, run_name, *, run_id=None, tags=None) -> RunTracker``
    Starts a run, or with ``run_id`` (kept by the training code in its checkpoint) reopens that
    run and sets it RUNNING again, so a restarted job continues the same run; params already
    logged are not logged again. An unknown ``run_id`` starts a new run with a warning. If the
    store cannot be reached, returns a disabled tracker within seconds and logs why at WARNING
    (logger ``effunet.tracking``: "MLflow tracking skipped: ..."). Never raises for store
    problems. A missing SQLite database is created (under the lock) with a warning.

``RunTracker``: ``enabled``, ``run_id``, ``log_params(dict)`` (nested dicts flattened with dots,
values as text, at most 6000 characters), ``log_metrics(dict, step)`` (one batch, step = epoch),
``log_artifact(path, artifact_path=None)`` (file or folder), ``set_tags(dict)``,
``finish(status="FINISHED"|"FAILED"|"KILLED")``. Also a context manager that finishes FINISHED,
or FAILED (KILLED on Ctrl-C) when the block raises, and lets the exception through. After
`finish`, or on a disabled tracker, every call is a no-op.

``disabled(reason) -> RunTracker``
    A tracker that does nothing (tracking switched off, tests).

Retries and timeouts
--------------------
Each MLflow call is retried up to `ATTEMPTS` times, sleeping `BACKOFF_S` seconds doubled each
time with +-50 % jitter (0.2, 0.4, ... 3.2 s), on transient errors only: SQLite "database is
locked" / SQLAlchemy ``OperationalError`` (MLflow reports them as TEMPORARILY_UNAVAILABLE),
connection errors and timeouts, and MLflow INTERNAL_ERROR / rate limiting. Other errors (an invalid
value) skip that one call with a warning. A transient error that outlasts the retries disables
the tracker.

MLflow's own HTTP layer would retry 7 times with 120 s timeouts (minutes against a dead server),
so during each call this module sets, in ``os.environ``, for that call only and then restores::

    MLFLOW_HTTP_REQUEST_MAX_RETRIES=0        (our retry loop above does the retrying)
    MLFLOW_HTTP_REQUEST_TIMEOUT=15           (seconds per connect/read)

A value the user exported wins for ordinary calls. The first call of `RunTracker.open`, the
reachability probe, always uses 0 retries, a 5 s timeout and 2 attempts, so an unreachable
server costs a few seconds at most (about 10 s for a host that drops packets).

SQLite notes: MLflow already sets ``PRAGMA busy_timeout = 20000`` per session; our retries cover
the remaining SQLITE_BUSY cases. Create the store with `prepare_store` before jobs start: MLflow
creating the schema from several processes at once is what breaks. Keep the database on a local
or cluster file system that supports POSIX locks; for many nodes use an ``mlflow server``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from effunet.errors import EffunetError

try:  # POSIX only; without it prepare_store is not serialised across processes.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("effunet.tracking")

DEFAULT_TRACKING_URI = "sqlite:///results/mlflow.db"
ATTEMPTS = 6
BACKOFF_S = 0.2
PROBE_ATTEMPTS = 2
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
PROBE_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
STATUSES = ("FINISHED", "FAILED", "KILLED")

# MLflow's limits (mlflow.utils.validation); a batch larger than these is rejected.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000

_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", "REQUEST_LIMIT_EXCEEDED"}
T = TypeVar("T")


class _StoreUnavailable(Exception):
    """A transient store error that outlasted the retries."""


def run_name(dataset: str, model: str, seed: int | str) -> str:
    """The run name: ``<dataset>/<model>/seed<seed>``."""
    return f"{dataset}/{model}/seed{seed}"


# --- retries -------------------------------------------------------------------------------------


def _is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: locked database, connection trouble, server overload."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error).lower()
        if "database is locked" in text or "database table is locked" in text:
            return True
        if type(error).__name__ == "OperationalError":  # sqlite3 or SQLAlchemy
            return True
        if isinstance(error, (ConnectionError, TimeoutError)):
            return True
        module = type(error).__module__ or ""
        if module.startswith(("requests", "urllib3")):
            return True
        if getattr(error, "error_code", None) in _TRANSIENT_CODES:
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def _mlflow_http_env(settings: Mapping[str, str], force: bool) -> Iterator[None]:
    """Set MLflow's HTTP retry/timeout variables for one call; `force` overrides the user's."""
    saved = {key: os.environ.get(key) for key in settings}
    for key, value in settings.items():
        if force or saved[key] is None:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _retry(
    what: str,
    call: Callable[..., T],
    *args: Any,
    attempts: int = ATTEMPTS,
    probe: bool = False,
    **kwargs: Any,
) -> T:
    """Run an MLflow call, retrying transient errors with exponential backoff and jitter.

    Raises `_StoreUnavailable` when a transient error outlasts `attempts`; other errors as is.
    """
    settings = PROBE_HTTP_ENV if probe else HTTP_ENV
    for attempt in range(1, attempts + 1):
        try:
            with _mlflow_http_env(settings, force=probe):
                return call(*args, **kwargs)
        except Exception as error:
            if not _is_transient(error):
                raise
            if attempt == attempts:
                raise _StoreUnavailable(f"{what} failed after {attempts} attempts: {_short(error)}") from error
            delay = BACKOFF_S * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            log.warning("%s failed (attempt %d/%d: %s); retrying in %.1f s", what, attempt, attempts,
                        _short(error), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


_REASONS = (  # what MLflow's long messages boil down to
    ("connection refused", "connection refused"),
    ("timeout", "timed out"),
    ("timed out", "timed out"),
    ("name or service not known", "unknown host"),
    ("temporary failure in name resolution", "unknown host"),
    ("database is locked", "database is locked"),
)


def _short(error: BaseException) -> str:
    """One line: a plain reason where one is recognised, then MLflow's message, cut at 300 characters."""
    text = " ".join(str(error).split())
    lower = text.lower()
    reason = next((plain for marker, plain in _REASONS if marker in lower), None)
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{reason}: {text}" if reason and not text.startswith(reason) else text


# --- store set-up --------------------------------------------------------------------------------


def _sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working folder), else None."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    rest = tracking_uri[len("sqlite:"):]
    if not rest.startswith("///") or rest[3:] in ("", ":memory:"):
        raise EffunetError(f"mlflow.tracking_uri {tracking_uri!r}: use sqlite:///<path to a .db file>")
    return Path(rest[3:].split("?", 1)[0])


def _is_http(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


@contextlib.contextmanager
def _store_lock(db: Path | None) -> Iterator[None]:
    """Serialise store creation across processes (SQLite only; a server serialises itself)."""
    if db is None or fcntl is None:
        yield
        return
    with open(db.parent / f".{db.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _get_or_create_experiment(client, tracking_uri: str, experiment: str, probe: bool = False) -> str:
    found = _retry(f"looking up experiment {experiment!r} in {tracking_uri}", client.get_experiment_by_name,
                   experiment, attempts=PROBE_ATTEMPTS if probe else ATTEMPTS, probe=probe)
    if found is not None:
        if found.lifecycle_stage != "active":
            raise EffunetError(
                f"MLflow experiment {experiment!r} in {tracking_uri} is deleted; restore it "
                f"(mlflow experiments restore) or choose another mlflow.experiment")
        return found.experiment_id
    db = _sqlite_path(tracking_uri)
    location = (db.resolve().parent / "mlartifacts" / experiment).as_uri() if db else None
    try:
        return _retry(f"creating experiment {experiment!r} in {tracking_uri}", client.create_experiment,
                      experiment, artifact_location=location)
    except Exception as error:
        # Another process may have created it between our look-up and our create.
        found = _retry(f"looking up experiment {experiment!r}", client.get_experiment_by_name, experiment)
        if found is None:
            raise
        log.debug("experiment %r was created concurrently (%s)", experiment, _short(error))
        return found.experiment_id


def prepare_store(tracking_uri: str, experiment: str, *, strict: bool = True) -> str | None:
    """Create the tracking store's schema and `experiment` once; return the experiment id.

    Idempotent. For SQLite, creates the database's folder, and the experiment's artifact location
    is ``<db folder>/mlartifacts/<experiment>``. Raises `EffunetError` naming the URI on failure;
    with ``strict=False`` logs a warning and returns None instead (a tracking server that is down
    then does not stop the workflow: training jobs run with tracking disabled).
    """
    db = _sqlite_path(tracking_uri)  # a malformed URI is a config error even when not strict
    try:
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        with _store_lock(db):
            client = _client(tracking_uri)
            experiment_id = _get_or_create_experiment(client, tracking_uri, experiment)
    except Exception as error:
        failure = error if isinstance(error, EffunetError) else EffunetError(
            f"cannot set up the MLflow store {tracking_uri} (experiment {experiment!r}): {_short(error)}")
        if strict:
            raise failure from error
        log.warning("MLflow tracking will be skipped: %s", failure)
        return None
    log.info("MLflow store %s ready: experiment %r has id %s", tracking_uri, experiment, experiment_id)
    if db is not None:
        try:
            relocate_store(tracking_uri)
        except Exception as error:  # a store we cannot rewrite still works where it was made
            log.warning("could not check the artifact locations of %s: %s", tracking_uri, _short(error))
    return experiment_id


def relocate_store(tracking_uri: str) -> int:
    """Point a moved SQLite store's artifact locations at ``<db folder>/mlartifacts/``.

    Only locations of the form ``file://<old folder>/mlartifacts/...`` (what `prepare_store`
    creates) whose old folder is not the database's folder are rewritten, in one transaction;
    anything else (a server's store, a location the user chose) is left alone.
    """
    import sqlite3
    import urllib.parse

    db = _sqlite_path(tracking_uri)
    if db is None:
        raise EffunetError(f"relocate_store: {tracking_uri} is not a sqlite:/// store")
    if not db.is_file():
        raise EffunetError(f"relocate_store: no MLflow database at {db}")
    here = (db.resolve().parent / "mlartifacts").as_uri()
    marker = "/mlartifacts/"

    def moved(uri: str | None) -> str | None:
        if not uri or not uri.startswith("file://") or marker not in uri:
            return None
        prefix, rest = uri.split(marker, 1)
        new = f"{here}/{rest}"
        return new if urllib.parse.unquote(new) != urllib.parse.unquote(uri) else None

    changed = 0
    with _store_lock(db), contextlib.closing(sqlite3.connect(db, timeout=30)) as connection, connection:
        for table, key, column in (("experiments", "experiment_id", "artifact_location"),
                                   ("runs", "run_uuid", "artifact_uri")):
            for row_id, uri in connection.execute(f"SELECT {key}, {column} FROM {table}").fetchall():
                new = moved(uri)
                if new is not None:
                    connection.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (new, row_id))
                    changed += 1
    if changed:
        log.info("MLflow store %s was moved: %d artifact locations now point to %s", tracking_uri, changed, here)
    return changed


def log_files(tracking_uri: str | None, experiment: str, run_json: str | os.PathLike,
              paths: list[str | os.PathLike], artifact_path: str | None = None) -> None:
    """Add `paths` to the MLflow run of a training job's ``run.json``; skipped if it was not tracked."""
    import json

    run_id = json.loads(Path(run_json).read_text()).get("run_id")
    if not tracking_uri or not run_id:
        log.info("the training run was not tracked: %s not logged to MLflow", ", ".join(map(str, paths)))
        return
    with RunTracker.open(tracking_uri, experiment, "files", run_id=run_id) as tracker:
        for path in paths:
            tracker.log_artifact(path, artifact_path)


# --- tags ----------------------------------------------------------------------------------------


def git_commit(*folders: str | os.PathLike) -> str:
    """``git rev-parse HEAD`` of the first folder (default: cwd, then this package) in a repo."""
    for folder in folders or (os.getcwd(), Path(__file__).resolve().parent):
        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                                 text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            continue
        commit = out.stdout.strip()
        if commit:
            return commit
    return "unknown"


def default_tags(dataset: str, model: str, seed: int | str, rule: str | None = None) -> dict[str, str]:
    """Tags every training run carries: data set, model, seed, git commit, host, rule, Slurm job."""
    commit = git_commit()
    tags = {
        "dataset": str(dataset),
        "model": str(model),
        "seed": str(seed),
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
        "host": socket.gethostname(),
    }
    if rule:
        tags["snakemake_rule"] = str(rule)
    if os.environ.get("SLURM_JOB_ID"):
        tags["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return tags


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts become dotted keys; values become strings (MLflow stores params as text)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = _text(value)
    return flat


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return value if isinstance(value, str) else str(value)


def _fit(kind: str, key: str, value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    log.warning("%s %r is %d characters; MLflow keeps %d, truncated", kind, key, len(value), limit)
    return value[:limit]


# --- runs ----------------------------------------------------------------------------------------


class RunTracker:
    """One MLflow run, driven by explicit run id; every method is a no-op once disabled."""

    def __init__(self, client=None, run_id: str | None = None, tracking_uri: str | None = None,
                 params: Mapping[str, str] | None = None):
        self._client = client
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self._params: dict[str, str] = dict(params or {})
        self.enabled = client is not None and run_id is not None

    def __repr__(self) -> str:
        state = f"run {self.run_id} in {self.tracking_uri}" if self.enabled else "disabled"
        return f"RunTracker({state})"

    @classmethod
    def open(cls, tracking_uri: str, experiment: str, run_name: str, *, run_id: str | None = None,
             tags: Mapping[str, Any] | None = None) -> "RunTracker":
        """Start run `run_name` in `experiment`, or reopen `run_id`; disabled if the store fails."""
        try:
            db = _sqlite_path(tracking_uri)
            if db is not None and not db.exists():
                log.warning("MLflow store %s does not exist yet; creating it (call prepare_store "
                            "before starting parallel jobs)", tracking_uri)
                prepare_store(tracking_uri, experiment)
            elif db is not None:
                with _store_lock(db):  # waits while another process is still creating the store
                    pass
            client = _client(tracking_uri)
            experiment_id = _get_or_create_experiment(client, tracking_uri, experiment,
                                                      probe=_is_http(tracking_uri))
            params: dict[str, str] = {}
            run = _reopen(client, run_id, experiment_id) if run_id else None
            if run is None:
                run = _retry(f"creating run {run_name!r}", client.create_run, experiment_id,
                             run_name=run_name)
                log.info("MLflow run %s (%s) started in %s, experiment %r", run.info.run_id, run_name,
                         tracking_uri, experiment)
            else:
                params = dict(run.data.params)
        except Exception as error:
            log.warning("MLflow tracking skipped: cannot use the store %s (%s); training continues "
                        "without tracking", tracking_uri, _short(error))
            return disabled(f"store {tracking_uri} unavailable")
        tracker = cls(client, run.info.run_id, tracking_uri, params)
        if tags:
            tracker.set_tags(tags)
        return tracker

    # -- logging

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (nested) params once; on a resumed run, skip equal values and warn about changed ones."""
        if not self.enabled:
            return
        from mlflow.entities import Param

        new = []
        for key, value in flatten(params).items():
            key, value = key[:MAX_KEY], _fit("param", key, value, MAX_PARAM_VALUE)
            if key in self._params:
                if self._params[key] != value:
                    log.warning("param %r was logged as %r; MLflow cannot change it, %r not logged",
                                key, self._params[key], value)
                continue
            new.append(Param(key, value))
        for start in range(0, len(new), PARAMS_PER_BATCH):
            chunk = new[start:start + PARAMS_PER_BATCH]
            if self._call("logging params", self._client.log_batch, self.run_id, params=chunk):
                self._params.update((p.key, p.value) for p in chunk)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log one epoch's metrics in a batch, with ``step = epoch``."""
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = []
        for key, value in metrics.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                log.warning("metric %r = %r is not a number; not logged", key, value)
                continue
            batch.append(Metric(key[:MAX_KEY], value, now, int(step)))
        for start in range(0, len(batch), METRICS_PER_BATCH):
            self._call(f"logging metrics of step {step}", self._client.log_batch, self.run_id,
                       metrics=batch[start:start + METRICS_PER_BATCH])

    def logged_steps(self, key: str) -> set[int] | None:
        """The steps at which metric `key` is logged already; None if the store cannot say."""
        if not self.enabled:
            return set()
        try:
            history = _retry(f"reading metric {key!r}", self._client.get_metric_history, self.run_id, key)
        except Exception as error:
            log.warning("MLflow: cannot read metric %r of run %s (%s)", key, self.run_id, _short(error))
            return None
        return {metric.step for metric in history}

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import RunTag

        items = [RunTag(str(k)[:MAX_KEY], _fit("tag", str(k), _text(v), MAX_TAG_VALUE))
                 for k, v in tags.items() if v is not None]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self._call("setting tags", self._client.log_batch, self.run_id,
                       tags=items[start:start + PARAMS_PER_BATCH])

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy/upload a file (or folder) to the run's artifacts; a missing file only warns."""
        if not self.enabled:
            return
        if not os.path.exists(path):
            log.warning("artifact %s does not exist; not logged", path)
            return
        call = self._client.log_artifacts if os.path.isdir(path) else self._client.log_artifact
        self._call(f"logging artifact {path}", call, self.run_id, os.fspath(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        """End the run with FINISHED, FAILED or KILLED; the tracker is disabled afterwards."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        if not self.enabled:
            return
        if self._call(f"ending run as {status}", self._client.set_terminated, self.run_id, status):
            log.info("MLflow run %s ended: %s", self.run_id, status)
        self.enabled = False

    def __enter__(self) -> "RunTracker":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.finish("FINISHED")
        else:
            self.finish("KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")

    # -- plumbing

    def _call(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Run one MLflow call; True if it worked. Never raises: store trouble disables tracking."""
        try:
            _retry(f"MLflow {what} (run {self.run_id})", call, *args, **kwargs)
            return True
        except _StoreUnavailable as error:
            log.warning("MLflow tracking disabled for the rest of this job: %s", error)
        except Exception as error:
            from mlflow.exceptions import MlflowException

            if isinstance(error, MlflowException):
                log.warning("MLflow %s failed, skipped: %s", what, _short(error))
                return False
            log.warning("MLflow tracking disabled for the rest of this job: %s failed: %r", what, error)
        self.enabled = False
        return False


def _reopen(client, run_id: str, experiment_id: str):
    """The run `run_id` set RUNNING again, or None (with a warning) if it cannot be continued."""
    from mlflow.exceptions import MlflowException

    try:
        run = _retry(f"looking up run {run_id}", client.get_run, run_id)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        log.warning("MLflow run %s from the checkpoint is not in the store; starting a new run", run_id)
        return None
    if run.info.experiment_id != experiment_id or run.info.lifecycle_stage != "active":
        log.warning("MLflow run %s from the checkpoint belongs to experiment %s (%s), not %s; "
                    "starting a new run", run_id, run.info.experiment_id, run.info.lifecycle_stage,
                    experiment_id)
        return None
    _retry(f"reopening run {run_id}", client.update_run, run_id, status="RUNNING")
    log.info("MLflow run %s (%s) reopened (was %s)", run_id, run.info.run_name, run.info.status)
    return run


def disabled(reason: str = "tracking switched off") -> RunTracker:
    """A tracker whose every call does nothing."""
    log.debug("MLflow tracking disabled: %s", reason)
    return RunTracker()


if __name__ == "__main__":  # python -m effunet.tracking relocate sqlite:///path/to/mlflow.db
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(sys.argv) != 3 or sys.argv[1] != "relocate":
        sys.exit("usage: python -m effunet.tracking relocate sqlite:///path/to/mlflow.db")
    print(f"{relocate_store(sys.argv[2])} artifact locations updated")
