"""What a run was trained on and what it made, as MLflow records them by reference (no copy): the
prepared data set as the run's input (`manifest_summary`, `dataset_input`) and the trained model as
an MLflow *external* logged model linked to the run (`log_model_reference`). `runs.RunTracker`'s
``log_manifest``, ``log_dataset`` and ``log_model_reference`` call these."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from effunet.tracking.retry import with_retries
from effunet.tracking.tags import as_text

log = logging.getLogger("effunet.tracking")


def manifest_summary(manifest: Path) -> tuple[str, dict[str, int]] | None:
    """A prepared data set's digest (the SHA-256 of its ``manifest.csv``, 36 hex digits) and profile
    (``images``, and ``<split>_images`` per split; rows without a split count as ``all``); None, with a
    warning, if the manifest cannot be read."""
    try:
        content = manifest.read_bytes()
    except OSError as error:
        log.warning("MLflow: data set %s not logged (%s)", manifest, error)
        return None
    splits: dict[str, int] = {}
    for row in csv.DictReader(content.decode(errors="replace").splitlines()):
        splits[row.get("split") or "all"] = splits.get(row.get("split") or "all", 0) + 1
    profile = {"images": sum(splits.values()), **{f"{k}_images": v for k, v in splits.items()}}
    return hashlib.sha256(content).hexdigest()[:36], profile


def dataset_input(name: str, source: str | os.PathLike, digest: str, profile: Mapping[str, Any] | None, context: str):
    """The MLflow `DatasetInput` of a data set at `source` (a path, made absolute, or a URI), with
    `digest` cut to MLflow's 36 characters and the input tag ``mlflow.data.context``."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    uri = source if "://" in str(source) else Path(source).resolve().as_uri()
    dataset = Dataset(
        name=name,
        digest=str(digest)[:36],
        source_type="local",
        source=json.dumps({"uri": str(uri)}),
        profile=json.dumps(dict(profile)) if profile else None,
    )
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])


def log_model_reference(
    client, run_id: str, model_file: str, name: str | None, params: Mapping[str, Any], step: int
) -> str:
    """Link `model_file` to run `run_id` as an MLflow *external* logged model
    (``mlflow.model.isExternal``), the run's output at `step`, and return its id. The model has the
    run as its source, is tagged ``model_file`` (the path as given: the workflow's, relative to its
    folder) and holds only an ``MLmodel`` and ``model_file.json`` (that path), the link to the file.
    MLflow cannot serve a file outside its artifact store (it refuses symbolic links that leave it),
    so the weights are not downloadable from the UI: they stay once, in the results folder. A READY
    model of this run with the same ``model_file`` is reused. Raises on store trouble."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models.model import MLMODEL_FILE_NAME
    from mlflow.models.utils import get_external_mlflow_model_spec
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_IS_EXTERNAL

    run = with_retries(f"reading run {run_id}", client.get_run, run_id)
    experiment_id = run.info.experiment_id
    if name is None:
        tags = run.data.tags
        name = (
            "-".join(str(tags.get(key, "")) for key in ("model", "dataset", "recipe")) + f"-seed{tags.get('seed', '')}"
        )
    found = with_retries(
        "looking up the run's models",
        client.search_logged_models,
        [experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
        max_results=100,
    )
    for model in found:
        if model.tags.get("model_file") == model_file and model.status == LoggedModelStatus.READY:
            return model.model_id
    model = with_retries(
        f"creating the model of run {run_id}",
        client.create_logged_model,
        experiment_id,
        name=name,
        source_run_id=run_id,
        model_type="keras",
        tags={MLFLOW_MODEL_IS_EXTERNAL: "true", "model_file": model_file},
        params={key: as_text(value) for key, value in params.items()},
    )
    with tempfile.TemporaryDirectory() as folder:
        get_external_mlflow_model_spec(model).save(os.path.join(folder, MLMODEL_FILE_NAME))
        Path(folder, "model_file.json").write_text(json.dumps({"model_file": model_file}, indent=2) + "\n")
        with_retries("logging the model's description", client.log_model_artifacts, model.model_id, folder)
    with_retries("finalising the model", client.finalize_logged_model, model.model_id, LoggedModelStatus.READY)
    with_retries("linking the model to its run", client.log_outputs, run_id, [LoggedModelOutput(model.model_id, step)])
    log.info("MLflow run %s: model %s (%s) logged by reference", run_id, model.model_id, model_file)
    return model.model_id
