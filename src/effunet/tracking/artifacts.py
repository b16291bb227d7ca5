"""Files added to a finished training run: `log_files` logs plots and evaluation files to the MLflow
run named by a training job's ``run.json`` (read with `effunet.run.RunRecord`), through a
`runs.RunTracker` reopened for the purpose; a no-op when the training run was not tracked."""

from __future__ import annotations

import logging
import os

from effunet.run import RunRecord
from effunet.tracking.runs import RunTracker

log = logging.getLogger("effunet.tracking")


def log_files(
    tracking_uri: str | None,
    experiment: str,
    run_json: str | os.PathLike,
    paths: list[str | os.PathLike],
    artifact_path: str | None = None,
) -> None:
    """Add `paths` to the MLflow run of a training job's ``run.json``; skipped if it was not tracked.

    Raises `EffunetError` naming `run_json` if it is missing or not a run summary."""
    run_id = RunRecord.read(run_json).run_id
    if not tracking_uri or not run_id:
        log.info("the training run was not tracked: %s not logged to MLflow", ", ".join(map(str, paths)))
        return
    with RunTracker.open(tracking_uri, experiment, "files", run_id=run_id) as tracker:
        for path in paths:
            tracker.log_artifact(path, artifact_path)
