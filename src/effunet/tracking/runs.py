"""What a training or evaluation job logs to its MLflow run: `RunTracker.open` opens the run
(`attempts.open_run`: a new one, the checkpoint's, or an earlier attempt's), and its methods log
params, per-epoch metrics, evaluations (each at a step of its own), tags, artifacts, and the data set
and model by reference (`inputs`); the run's lifecycle (calls that never raise, `finish`, SIGTERM)
is `session.RunSession`'s. `disabled` is a tracker that does nothing."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

from effunet.tracking import inputs
from effunet.tracking.attempts import open_run
from effunet.tracking.names import SUMMARY, metric_key
from effunet.tracking.retry import short, with_retries
from effunet.tracking.session import RunSession
from effunet.tracking.tags import (
    MAX_KEY,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    METRICS_PER_BATCH,
    PARAMS_PER_BATCH,
    as_text,
    fit,
    flatten,
    metric_batch,
)

log = logging.getLogger("effunet.tracking")


class RunTracker(RunSession):
    """One MLflow run (a `session.RunSession`) and what is logged to it: params, per-epoch metrics,
    evaluations, tags, artifacts, the data set and the model (by reference); every method is a
    no-op once disabled."""

    @classmethod
    def open(
        cls,
        tracking_uri: str,
        experiment: str,
        run_name: str,
        *,
        run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        job_tags: Mapping[str, str] | None = None,
        attempt_tags: Mapping[str, str] | None = None,
    ) -> "RunTracker":
        """Start run `run_name` in `experiment`, or reopen `run_id`; disabled if the store fails.

        `job_tags` name the job that makes the run (training: its checkpoint folder), `attempt_tags`
        what an earlier attempt must share to be continued (training: the run identity's
        fingerprint); both are set on the run when it is created. Without a usable `run_id`, the
        newest run of this name with the same job and attempt tags that was not FINISHED and logged
        no metrics (an attempt that died before its first checkpoint) is reopened. Any other run of
        this name and job still RUNNING has no process left to end it: it is ended KILLED.
        """
        try:
            client, run = open_run(tracking_uri, experiment, run_name, run_id, job_tags, attempt_tags)
        except Exception as error:
            log.warning(
                "MLflow tracking skipped: cannot use the store %s (%s); training continues without tracking",
                tracking_uri,
                short(error),
            )
            return disabled(f"store {tracking_uri} unavailable")
        tracker = cls(client, run.info.run_id, tracking_uri, dict(run.data.params))
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
            key, value = key[:MAX_KEY], fit("param", key, value, MAX_PARAM_VALUE)
            if key in self._params:
                if self._params[key] != value:
                    log.warning(
                        "param %r was logged as %r; MLflow cannot change it, %r not logged",
                        key,
                        self._params[key],
                        value,
                    )
                continue
            new.append(Param(key, value))
        for start in range(0, len(new), PARAMS_PER_BATCH):
            chunk = new[start : start + PARAMS_PER_BATCH]
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
        batch = metric_batch({key: value for key, value in metrics.items() if key not in SUMMARY}, step)
        for start in range(0, len(batch), METRICS_PER_BATCH):
            self._call(
                f"logging metrics of step {step}",
                self._client.log_batch,
                self.run_id,
                metrics=batch[start : start + METRICS_PER_BATCH],
            )

    def log_evaluation(
        self, metrics: Mapping[str, float], settings: Mapping[str, Any], prefix: str = "eval"
    ) -> int | None:
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
        numeric = {
            f"{prefix}/{key}": value
            for key, value in settings.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        steps: set[int] = set()
        for key in (*metrics, *numeric):
            logged = self.logged_steps(key)
            if logged is None:
                log.warning(
                    "MLflow: the evaluation is not logged to run %s (its earlier steps cannot be read)", self.run_id
                )
                return None
            steps |= logged
        step = max(steps, default=0) + 1
        for key in (f"{prefix}.{k}" for k in settings):
            if key in self._params:
                log.warning(
                    "run %s has the param %r = %r from an earlier effunet version; MLflow cannot change "
                    "params: the evaluation at step %d is described by the tag %r",
                    self.run_id,
                    key,
                    self._params[key],
                    step,
                    key,
                )
        from mlflow.entities import RunTag

        tags = [
            RunTag(f"{prefix}.{key}"[:MAX_KEY], fit("tag", key, as_text(value), MAX_TAG_VALUE))
            for key, value in {**settings, "step": step}.items()
        ]
        batch = metric_batch({**metrics, **numeric}, step)
        if self._call(
            f"logging evaluation {step}",
            self._client.log_batch,
            self.run_id,
            metrics=batch[:METRICS_PER_BATCH],
            tags=tags,
        ):
            for start in range(METRICS_PER_BATCH, len(batch), METRICS_PER_BATCH):
                self._call(
                    f"logging evaluation {step}",
                    self._client.log_batch,
                    self.run_id,
                    metrics=batch[start : start + METRICS_PER_BATCH],
                )
            log.info(
                "MLflow run %s: evaluation logged at step %d (%s)",
                self.run_id,
                step,
                ", ".join(f"{key} {as_text(value)}" for key, value in settings.items()),
            )
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
            history = with_retries(f"reading metric {key!r}", self._client.get_metric_history, self.run_id, key)
        except Exception as error:
            log.warning("MLflow: cannot read metric %r of run %s (%s)", key, self.run_id, short(error))
            return None
        return {metric.step for metric in history}

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import RunTag

        items = [
            RunTag(str(k)[:MAX_KEY], fit("tag", str(k), as_text(v), MAX_TAG_VALUE))
            for k, v in tags.items()
            if v is not None
        ]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self._call(
                "setting tags", self._client.log_batch, self.run_id, tags=items[start : start + PARAMS_PER_BATCH]
            )

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
        manifest = Path(manifest)
        summary = inputs.manifest_summary(manifest)
        if summary is None:
            return
        digest, profile = summary
        if name is None:
            run = self._call_value(f"reading run {self.run_id}", self._client.get_run, self.run_id)
            name = (run.data.tags.get("dataset") if run is not None else None) or manifest.parent.name
        self.log_dataset(name, manifest.parent, digest, profile=profile)

    def log_dataset(
        self,
        name: str,
        source: str | os.PathLike,
        digest: str,
        profile: Mapping[str, Any] | None = None,
        context: str = "training",
    ) -> None:
        """Record the data set the run was trained on as its input (the UI's Dataset column and the
        run's Datasets), by reference: `source` is the prepared data's folder or file (a path or a
        URI), `digest` identifies its content (at most 36 characters are kept). Logging the same
        data set again is a no-op (MLflow keeps one input per name and digest)."""
        if not self.enabled:
            return
        entry = inputs.dataset_input(name, source, digest, profile, context)
        self._call(f"logging data set {name}", self._client.log_inputs, self.run_id, datasets=[entry])

    def log_model_reference(
        self, model_path: str | os.PathLike, name: str | None = None, *, params: Mapping[str, Any] | None = None
    ) -> str | None:
        """Show the trained model in the run's "Logged models" (and the runs table's Models column)
        without a second copy (`inputs.log_model_reference`: an MLflow external model holding the
        path as given); once per run and file. `name`: ``<model>-<dataset>-<recipe>-seed<seed>`` from
        the run's tags by default. Returns the model id (None if not logged)."""
        if not self.enabled:
            return None
        model_file = os.fspath(model_path)
        step = max((int(float(self._params.get("epochs_trained", 0))), 0))
        try:
            return inputs.log_model_reference(self._client, self.run_id, model_file, name, params or {}, step)
        except Exception as error:  # the model stays findable by the run's model_file tag
            log.warning("MLflow: the model %s is not linked to run %s (%s)", model_file, self.run_id, short(error))
            return None


def disabled(reason: str = "tracking switched off") -> RunTracker:
    """A tracker whose every call does nothing."""
    log.debug("MLflow tracking disabled: %s", reason)
    return RunTracker()
