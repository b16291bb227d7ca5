"""`RunTracker`: one MLflow run driven by explicit run id, and `disabled`."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from effunet.tracking.retry import PROBE_ATTEMPTS, _retry, _short, _StoreUnavailable
from effunet.tracking.store import (
    _client,
    _get_or_create_experiment,
    _is_http,
    _sqlite_path,
    _store_lock,
    prepare_store,
)
from effunet.tracking.names import SUMMARY, metric_key
from effunet.tracking.tags import _fit, _text, flatten

log = logging.getLogger("effunet.tracking")


STATUSES = ("FINISHED", "FAILED", "KILLED")

# MLflow's limits (mlflow.utils.validation); a batch larger than these is rejected.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
UNFINISHED = ("RUNNING", "SCHEDULED", "FAILED", "KILLED")  # an attempt of these may be continued


class Terminated(SystemExit):
    """Raised in the main thread by SIGTERM while a tracker is open (`with tracker:`), so the run ends
    KILLED; uncaught, the process exits with 128 + the signal number, as a shell reports it."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


class RunTracker:
    """One MLflow run, driven by explicit run id; every method is a no-op once disabled."""

    def __init__(self, client=None, run_id: str | None = None, tracking_uri: str | None = None,
                 params: Mapping[str, str] | None = None):
        self._client = client
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self._params: dict[str, str] = dict(params or {})
        self.enabled = client is not None and run_id is not None
        self._lost: str | None = None  # why the store was given up mid-run: `finish` tries to close it
        self._handler: Any = None  # the SIGTERM handler `__enter__` replaced

    def __repr__(self) -> str:
        state = f"run {self.run_id} in {self.tracking_uri}" if self.enabled else "disabled"
        return f"RunTracker({state})"

    @classmethod
    def open(cls, tracking_uri: str, experiment: str, run_name: str, *, run_id: str | None = None,
             tags: Mapping[str, Any] | None = None, job_tags: Mapping[str, str] | None = None,
             attempt_tags: Mapping[str, str] | None = None) -> "RunTracker":
        """Start run `run_name` in `experiment`, or reopen `run_id`; disabled if the store fails.

        `job_tags` name the job that makes the run (training: its checkpoint folder), `attempt_tags`
        what an earlier attempt must share to be continued (training: the run identity's
        fingerprint); both are set on the run when it is created. Without a usable `run_id`, the
        newest run of this name with the same job and attempt tags that was not FINISHED and logged
        no metrics (an attempt that died before its first checkpoint) is reopened. Any other run of
        this name and job still RUNNING has no process left to end it: it is ended KILLED.
        """
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
            earlier = _earlier_attempts(client, experiment_id, run_name, job_tags) if job_tags else []
            if run is None:
                run = _continuable(earlier, attempt_tags or {})
                if run is not None:
                    _retry(f"reopening run {run.info.run_id}", client.update_run, run.info.run_id, status="RUNNING")
                    log.warning("MLflow run %s (%s) of an earlier attempt that ended before its first checkpoint "
                                "(%s, no metrics) is continued", run.info.run_id, run_name, run.info.status)
            _end_orphans(client, earlier, attempt_tags or {}, keep=run.info.run_id if run is not None else None)
            if run is None:
                start_tags = {**(job_tags or {}), **(attempt_tags or {})}
                run = _retry(f"creating run {run_name!r}", client.create_run, experiment_id,
                             run_name=run_name, tags=start_tags)
                log.info("MLflow run %s (%s) started in %s, experiment %r", run.info.run_id, run_name,
                         tracking_uri, experiment)
            else:
                params = dict(run.data.params)
        except Exception as error:
            log.warning("MLflow tracking skipped: cannot use the store %s (%s); training continues "
                        "without tracking", tracking_uri, _short(error))
            return disabled(f"store {tracking_uri} unavailable")
        tracker = cls(client, run.info.run_id, tracking_uri, params)
        if tags or job_tags or attempt_tags:
            tracker.set_tags({**(tags or {}), **(job_tags or {}), **(attempt_tags or {})})
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
        """Log one epoch's metrics in a batch, with ``step = epoch``, under their grouped keys
        (`names.metric_key`: ``loss`` as ``train/loss``, ``val_loss`` as ``val/loss``); the training
        outcome (`names.SUMMARY`: ``best_epoch``, ``epochs_trained``, timing) goes to params instead."""
        if not self.enabled:
            return
        summary = {key: value for key, value in metrics.items() if key in SUMMARY}
        if summary:
            self.log_params(summary)
        batch = _metrics({key: value for key, value in metrics.items() if key not in SUMMARY}, step)
        for start in range(0, len(batch), METRICS_PER_BATCH):
            self._call(f"logging metrics of step {step}", self._client.log_batch, self.run_id,
                       metrics=batch[start:start + METRICS_PER_BATCH])

    def log_evaluation(self, metrics: Mapping[str, float], settings: Mapping[str, Any],
                       prefix: str = "eval") -> int | None:
        """Log one evaluation of the run's model; returns its step (None if not logged).

        The n-th evaluation is logged at a step of its own, one after the last step of any of its
        metrics (1 for the first), so a re-evaluation adds a point to each metric instead of a second
        value at the same step, and the value MLflow shows (that of the last step) is the newest.
        The settings that produced it are tags ``<prefix>.<key>`` (tags can change: they always
        describe the newest evaluation), with ``<prefix>.step``, the step of the metrics they
        produced; numeric settings are also metrics ``<prefix>/<key>`` at that step, so each
        point's setting is in the history. Metrics (``test_dice``, logged as ``test/dice``:
        `names.metric_key`) and tags go in one batch.
        """
        if not self.enabled:
            return None
        numeric = {f"{prefix}/{key}": value for key, value in settings.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}
        steps: set[int] = set()
        for key in (*metrics, *numeric):
            logged = self.logged_steps(key)
            if logged is None:
                log.warning("MLflow: the evaluation is not logged to run %s (its earlier steps cannot be read)",
                            self.run_id)
                return None
            steps |= logged
        step = max(steps, default=0) + 1
        for key in (f"{prefix}.{k}" for k in settings):
            if key in self._params:
                log.warning("run %s has the param %r = %r from an earlier effunet version; MLflow cannot change "
                            "params: the evaluation at step %d is described by the tag %r", self.run_id, key,
                            self._params[key], step, key)
        from mlflow.entities import RunTag

        tags = [RunTag(f"{prefix}.{key}"[:MAX_KEY], _fit("tag", key, _text(value), MAX_TAG_VALUE))
                for key, value in {**settings, "step": step}.items()]
        batch = _metrics({**metrics, **numeric}, step)
        if self._call(f"logging evaluation {step}", self._client.log_batch, self.run_id,
                      metrics=batch[:METRICS_PER_BATCH], tags=tags):
            for start in range(METRICS_PER_BATCH, len(batch), METRICS_PER_BATCH):
                self._call(f"logging evaluation {step}", self._client.log_batch, self.run_id,
                           metrics=batch[start:start + METRICS_PER_BATCH])
            log.info("MLflow run %s: evaluation logged at step %d (%s)", self.run_id, step,
                     ", ".join(f"{key} {_text(value)}" for key, value in settings.items()))
            return step
        return None

    def logged_steps(self, key: str) -> set[int] | None:
        """The steps at which metric `key` (named as `log_metrics` takes it) is logged already; None if
        the store cannot say. For a `names.SUMMARY` key, a param: ``{its value}`` once logged
        (``epochs_trained``: the step the training outcome belongs to)."""
        if not self.enabled:
            return set()
        if key in SUMMARY:
            try:
                return {int(float(self._params[key]))} if key in self._params else set()
            except ValueError:
                return set()
        key = metric_key(key)
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

    def log_manifest(self, manifest: str | os.PathLike, name: str | None = None) -> None:
        """`log_dataset` for a prepared data set: its folder as the source, the SHA-256 of its
        ``manifest.csv`` as the digest, the images per split as the profile; `name`: the run's
        ``dataset`` tag by default."""
        if not self.enabled:
            return
        import csv
        import hashlib

        manifest = Path(manifest)
        try:
            content = manifest.read_bytes()
        except OSError as error:
            log.warning("MLflow: data set %s not logged (%s)", manifest, error)
            return
        splits: dict[str, int] = {}
        for row in csv.DictReader(content.decode(errors="replace").splitlines()):
            splits[row.get("split") or "all"] = splits.get(row.get("split") or "all", 0) + 1
        if name is None:
            run = self._call_value(f"reading run {self.run_id}", self._client.get_run, self.run_id)
            name = (run.data.tags.get("dataset") if run is not None else None) or manifest.parent.name
        self.log_dataset(name, manifest.parent, hashlib.sha256(content).hexdigest()[:36],
                         profile={"images": sum(splits.values()), **{f"{k}_images": v for k, v in splits.items()}})

    def log_dataset(self, name: str, source: str | os.PathLike, digest: str,
                    profile: Mapping[str, Any] | None = None, context: str = "training") -> None:
        """Record the data set the run was trained on as its input (the UI's Dataset column and the
        run's Datasets), by reference: `source` is the prepared data's folder or file (a path or a
        URI), `digest` identifies its content (at most 36 characters are kept). Logging the same
        data set again is a no-op (MLflow keeps one input per name and digest)."""
        if not self.enabled:
            return
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        uri = source if "://" in str(source) else Path(source).resolve().as_uri()
        dataset = Dataset(name=name, digest=str(digest)[:36], source_type="local",
                          source=json.dumps({"uri": str(uri)}),
                          profile=json.dumps(dict(profile)) if profile else None)
        entry = DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])
        self._call(f"logging data set {name}", self._client.log_inputs, self.run_id, datasets=[entry])

    def log_model_reference(self, model_path: str | os.PathLike, name: str | None = None, *,
                            params: Mapping[str, Any] | None = None) -> str | None:
        """Show the trained model in the run's "Logged models" (and the runs table's Models column)
        without a second copy: an MLflow *external* model (``mlflow.model.isExternal``) with the run as
        its source, tagged ``model_file`` (the path as given: the workflow's, relative to its folder)
        and holding only an ``MLmodel`` and ``model_file.json`` (that path), the link to the file.
        MLflow cannot serve a file outside its artifact store (it refuses symbolic links that leave
        it), so the weights are not downloadable from the UI: they stay once, in the results folder.
        Once per run and file: a model with the same ``model_file`` is reused. `name`:
        ``<model>-<dataset>-<recipe>-seed<seed>`` from the run's tags by default. Returns the model
        id (None if not logged)."""
        if not self.enabled:
            return None
        model_file = os.fspath(model_path)
        try:
            return self._log_model_reference(model_file, name, params or {})
        except Exception as error:  # the model stays findable by the run's model_file tag
            log.warning("MLflow: the model %s is not linked to run %s (%s)", model_file, self.run_id, _short(error))
            return None

    def _log_model_reference(self, model_file: str, name: str | None, params: Mapping[str, Any]) -> str:
        import json
        import tempfile

        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models.model import MLMODEL_FILE_NAME
        from mlflow.models.utils import get_external_mlflow_model_spec
        from mlflow.utils.mlflow_tags import MLFLOW_MODEL_IS_EXTERNAL

        client = self._client
        run = _retry(f"reading run {self.run_id}", client.get_run, self.run_id)
        experiment_id = run.info.experiment_id
        if name is None:
            tags = run.data.tags
            name = "-".join(str(tags.get(key, "")) for key in ("model", "dataset", "recipe")) + f"-seed{tags.get('seed', '')}"
        found = _retry("looking up the run's models", client.search_logged_models, [experiment_id],
                       filter_string=f"source_run_id = '{self.run_id}'", max_results=100)
        for model in found:
            if model.tags.get("model_file") == model_file and model.status == LoggedModelStatus.READY:
                return model.model_id
        model = _retry(f"creating the model of run {self.run_id}", client.create_logged_model, experiment_id,
                       name=name, source_run_id=self.run_id, model_type="keras",
                       tags={MLFLOW_MODEL_IS_EXTERNAL: "true", "model_file": model_file},
                       params={key: _text(value) for key, value in params.items()})
        with tempfile.TemporaryDirectory() as folder:
            get_external_mlflow_model_spec(model).save(os.path.join(folder, MLMODEL_FILE_NAME))
            Path(folder, "model_file.json").write_text(json.dumps({"model_file": model_file}, indent=2) + "\n")
            _retry("logging the model's description", client.log_model_artifacts, model.model_id, folder)
        _retry("finalising the model", client.finalize_logged_model, model.model_id, LoggedModelStatus.READY)
        step = max((int(float(self._params.get("epochs_trained", 0))), 0))
        _retry("linking the model to its run", client.log_outputs, self.run_id,
               [LoggedModelOutput(model.model_id, step)])
        log.info("MLflow run %s: model %s (%s) logged by reference", self.run_id, model.model_id, model_file)
        return model.model_id

    def finish(self, status: str = "FINISHED") -> None:
        """End the run with FINISHED, FAILED or KILLED; the tracker is disabled afterwards.

        If the store was given up during the job (unreachable after the retries) and is back now,
        the run is still ended with `status`, and tagged ``tracking_incomplete`` with the reason."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        if self._lost is not None and self._client is not None and self.run_id is not None:
            self._close_lost_run(status)
            return
        if not self.enabled:
            return
        if self._call(f"ending run as {status}", self._client.set_terminated, self.run_id, status):
            log.info("MLflow run %s ended: %s", self.run_id, status)
        self.enabled = False

    def __enter__(self) -> "RunTracker":
        """While the block runs (main thread, tracker enabled), SIGTERM raises `Terminated`."""
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._handler = signal.signal(signal.SIGTERM, _terminate)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._handler is not None:
            signal.signal(signal.SIGTERM, self._handler)  # a second SIGTERM acts as it did before
            self._handler = None
        if kind is None:
            self.finish("FINISHED")
        elif issubclass(kind, (KeyboardInterrupt, Terminated)):
            if self.enabled or self._lost is not None:
                log.warning("%s: MLflow run %s ends as KILLED",
                            "terminated (SIGTERM)" if issubclass(kind, Terminated) else "interrupted", self.run_id)
            self.finish("KILLED")
        else:
            self.finish("FAILED")

    # -- plumbing

    def _call(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Run one MLflow call; True if it worked. Never raises: store trouble disables tracking."""
        try:
            _retry(f"MLflow {what} (run {self.run_id})", call, *args, **kwargs)
            return True
        except _StoreUnavailable as error:
            log.warning("MLflow tracking disabled for the rest of this job: %s", error)
            self._lost = str(error)
        except Exception as error:
            from mlflow.exceptions import MlflowException

            if isinstance(error, MlflowException):
                log.warning("MLflow %s failed, skipped: %s", what, _short(error))
                return False
            log.warning("MLflow tracking disabled for the rest of this job: %s failed: %r", what, error)
            self._lost = f"{what} failed: {error!r}"
        self.enabled = False
        return False

    def _call_value(self, what: str, call: Callable[..., Any], *args: Any) -> Any:
        """A read through `_retry`; None (with a warning) if it fails. Does not disable the tracker."""
        try:
            return _retry(f"MLflow {what}", call, *args)
        except Exception as error:
            log.warning("MLflow %s failed: %s", what, _short(error))
            return None

    def _close_lost_run(self, status: str) -> None:
        """End a run whose store was given up mid-job, if the store answers again (a short probe)."""
        from mlflow.entities import RunTag

        reason, self._lost, self.enabled = self._lost, None, False
        note = _fit("tag", "tracking_incomplete", f"the store was unreachable during the job ({reason}); "
                    "what the job logged after that is missing", MAX_TAG_VALUE)
        try:
            _retry(f"MLflow ending run {self.run_id} as {status}", self._client.log_batch, self.run_id,
                   tags=[RunTag("tracking_incomplete", note)], attempts=PROBE_ATTEMPTS, probe=True)
            _retry(f"MLflow ending run {self.run_id} as {status}", self._client.set_terminated, self.run_id,
                   status, attempts=PROBE_ATTEMPTS, probe=True)
        except Exception as error:
            log.warning("MLflow run %s stays RUNNING: the store is still unreachable (%s)", self.run_id,
                        _short(error))
            return
        log.info("MLflow run %s ended: %s (the store is back; the run is tagged tracking_incomplete)",
                 self.run_id, status)


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


def _earlier_attempts(client, experiment_id: str, run_name: str, job_tags: Mapping[str, str]) -> list:
    """Active runs named `run_name` carrying `job_tags`, newest first."""
    from mlflow.entities import ViewType

    quoted = "'" not in run_name
    where = f"attributes.run_name = '{run_name}'" if quoted else ""
    runs, token = [], None
    while True:
        page = _retry(f"looking up earlier runs of {run_name!r}", client.search_runs, [experiment_id],
                      filter_string=where, run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                      order_by=["attributes.start_time DESC"], page_token=token)
        runs += [run for run in page if run.info.run_name == run_name
                 and all(run.data.tags.get(key) == value for key, value in job_tags.items())]
        token = page.token
        if not token:
            return runs


def _continuable(earlier: list, attempt_tags: Mapping[str, str]):
    """The newest earlier attempt with the same attempt tags that did not finish and logged no metrics."""
    for run in earlier:
        if (run.info.status in UNFINISHED and not run.data.metrics
                and all(run.data.tags.get(key) == value for key, value in attempt_tags.items())):
            return run
    return None


def _end_orphans(client, earlier: list, attempt_tags: Mapping[str, str], keep: str | None) -> None:
    """End as KILLED the earlier attempts still RUNNING (their processes died): only this job could end them."""
    for run in earlier:
        if run.info.run_id == keep or run.info.status != "RUNNING":
            continue
        if any(run.data.tags.get(key) != value for key, value in attempt_tags.items()):
            why = "made with other settings"
        elif run.data.metrics:
            why = "with epochs logged that no checkpoint holds"
        else:
            why = "superseded"
        _retry(f"ending orphan run {run.info.run_id}", client.set_terminated, run.info.run_id, "KILLED")
        log.warning("MLflow run %s (%s) was left RUNNING by an earlier attempt of this job that died (%s): "
                    "ended as KILLED", run.info.run_id, run.info.run_name, why)


def _metrics(metrics: Mapping[str, Any], step: int) -> list:
    """MLflow `Metric`s at `step` (now) under their grouped keys (`names.metric_key`); values that are
    not numbers are left out with a warning."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = []
    for key, value in metrics.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            log.warning("metric %r = %r is not a number; not logged", key, value)
            continue
        batch.append(Metric(metric_key(key)[:MAX_KEY], value, now, int(step)))
    return batch


def _terminate(signum, frame) -> None:
    raise Terminated(signum)


def disabled(reason: str = "tracking switched off") -> RunTracker:
    """A tracker whose every call does nothing."""
    log.debug("MLflow tracking disabled: %s", reason)
    return RunTracker()
