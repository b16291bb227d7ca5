"""Run names, default tags and flattened params, cut to MLflow's limits."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from pathlib import Path
from typing import Any, Mapping

from effunet.run import STUDY_RECIPE, RunId

log = logging.getLogger("effunet.tracking")


def run_name(dataset: str, model: str, seed: int | str, recipe: str = STUDY_RECIPE) -> str:
    """The run name: `effunet.run.RunId.name`."""
    return RunId(dataset, model, seed, recipe).name


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


def default_tags(dataset: str, model: str, seed: int | str, rule: str | None = None,
                 recipe: str = STUDY_RECIPE) -> dict[str, str]:
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
