"""What a run is called and what it carries, cut to MLflow's limits: `run_name`, `default_tags`,
`git_commit`, `flatten` (nested params as dotted keys), `as_text`, `fit` (a value cut to a limit with a
warning), `metric_batch` (numbers as MLflow metrics under their grouped keys), and MLflow's limits
(`MAX_PARAM_VALUE`, `MAX_TAG_VALUE`, `MAX_KEY`, `PARAMS_PER_BATCH`, `METRICS_PER_BATCH`)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping

from effunet.run import STUDY_RECIPE, RunId
from effunet.tracking.names import metric_key

log = logging.getLogger("effunet.tracking")

# MLflow's limits (mlflow.utils.validation); a batch larger than these is rejected.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000


def run_name(dataset: str, model: str, seed: int | str, recipe: str = STUDY_RECIPE) -> str:
    """The run name: `effunet.run.RunId.name`."""
    return RunId(dataset, model, seed, recipe).name


def git_commit(*folders: str | os.PathLike) -> str:
    """``git rev-parse HEAD`` of the first folder (default: cwd, then this package) in a repo."""
    for folder in folders or (os.getcwd(), Path(__file__).resolve().parent):
        try:
            out = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            continue
        commit = out.stdout.strip()
        if commit:
            return commit
    return "unknown"


def default_tags(
    dataset: str, model: str, seed: int | str, rule: str | None = None, recipe: str = STUDY_RECIPE
) -> dict[str, str]:
    """Tags every training run carries: data set, model, recipe, seed, git commit, host, rule, Slurm job."""
    commit = git_commit()
    tags = {
        "dataset": str(dataset),
        "model": str(model),
        "recipe": str(recipe),
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
            flat[name] = as_text(value)
    return flat


def as_text(value: Any) -> str:
    """A param or tag value as MLflow shows it: text as is, lists as ``[a, b]``, others by `str`."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(as_text(v) for v in value) + "]"
    return value if isinstance(value, str) else str(value)


def fit(kind: str, key: str, value: str, limit: int) -> str:
    """`value` cut to `limit` characters, with a warning naming the `kind` (param, tag) and `key`."""
    if len(value) <= limit:
        return value
    log.warning("%s %r is %d characters; MLflow keeps %d, truncated", kind, key, len(value), limit)
    return value[:limit]


def metric_batch(metrics: Mapping[str, Any], step: int) -> list:
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
