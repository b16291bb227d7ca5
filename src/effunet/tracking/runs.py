"""`RunTracker`: one MLflow run driven by explicit run id, and `disabled`."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Mapping

from effunet.tracking.retry import _retry, _short, _StoreUnavailable
from effunet.tracking.store import (
    _client,
    _get_or_create_experiment,
    _is_http,
    _sqlite_path,
    _store_lock,
    prepare_store,
)
from effunet.tracking.tags import _fit, _text, flatten

log = logging.getLogger("effunet.tracking")


STATUSES = ("FINISHED", "FAILED", "KILLED")

# MLflow's limits (mlflow.utils.validation); a batch larger than these is rejected.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000


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
