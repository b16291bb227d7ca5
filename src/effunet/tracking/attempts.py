"""Which MLflow run a job opens (`open_run`, what `runs.RunTracker.open` calls): the store made
ready (a missing SQLite database created with `store.prepare_store`, else its creation lock waited
for), then the run of its checkpoint (`reopen`), else an earlier attempt of the same job and settings
that died before its first checkpoint (`earlier_attempts`, `continuable`), else a new run; the
earlier attempts still RUNNING that nothing will end are ended KILLED, with the reason in the log
(`end_orphans`)."""

from __future__ import annotations

import logging
from typing import Mapping

from effunet.tracking.retry import with_retries
from effunet.tracking.store import (
    get_or_create_experiment,
    is_http,
    mlflow_client,
    prepare_store,
    sqlite_path,
    store_lock,
)

log = logging.getLogger("effunet.tracking")

UNFINISHED = ("RUNNING", "SCHEDULED", "FAILED", "KILLED")  # an attempt of these may be continued


def open_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    run_id: str | None,
    job_tags: Mapping[str, str] | None,
    attempt_tags: Mapping[str, str] | None,
):
    """The MLflow client and the run a job logs to: `run_id` reopened, else the earlier attempt that
    can be continued, else a new run of `run_name` created with `job_tags` and `attempt_tags` (see
    `runs.RunTracker.open`). Raises on store trouble; the caller disables tracking then."""
    db = sqlite_path(tracking_uri)
    if db is not None and not db.exists():
        log.warning(
            "MLflow store %s does not exist yet; creating it (call prepare_store before starting parallel jobs)",
            tracking_uri,
        )
        prepare_store(tracking_uri, experiment)
    elif db is not None:
        with store_lock(db):  # waits while another process is still creating the store
            pass
    client = mlflow_client(tracking_uri)
    experiment_id = get_or_create_experiment(client, tracking_uri, experiment, probe=is_http(tracking_uri))
    run = reopen(client, run_id, experiment_id) if run_id else None
    earlier = earlier_attempts(client, experiment_id, run_name, job_tags) if job_tags else []
    if run is None:
        run = continuable(earlier, attempt_tags or {})
        if run is not None:
            with_retries(f"reopening run {run.info.run_id}", client.update_run, run.info.run_id, status="RUNNING")
            log.warning(
                "MLflow run %s (%s) of an earlier attempt that ended before its first checkpoint "
                "(%s, no metrics) is continued",
                run.info.run_id,
                run_name,
                run.info.status,
            )
    end_orphans(client, earlier, attempt_tags or {}, keep=run.info.run_id if run is not None else None)
    if run is None:
        start_tags = {**(job_tags or {}), **(attempt_tags or {})}
        run = with_retries(
            f"creating run {run_name!r}", client.create_run, experiment_id, run_name=run_name, tags=start_tags
        )
        log.info("MLflow run %s (%s) started in %s, experiment %r", run.info.run_id, run_name, tracking_uri, experiment)
    return client, run


def reopen(client, run_id: str, experiment_id: str):
    """The run `run_id` set RUNNING again, or None (with a warning) if it cannot be continued."""
    from mlflow.exceptions import MlflowException

    try:
        run = with_retries(f"looking up run {run_id}", client.get_run, run_id)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        log.warning("MLflow run %s from the checkpoint is not in the store; starting a new run", run_id)
        return None
    if run.info.experiment_id != experiment_id or run.info.lifecycle_stage != "active":
        log.warning(
            "MLflow run %s from the checkpoint belongs to experiment %s (%s), not %s; starting a new run",
            run_id,
            run.info.experiment_id,
            run.info.lifecycle_stage,
            experiment_id,
        )
        return None
    with_retries(f"reopening run {run_id}", client.update_run, run_id, status="RUNNING")
    log.info("MLflow run %s (%s) reopened (was %s)", run_id, run.info.run_name, run.info.status)
    return run


def earlier_attempts(client, experiment_id: str, run_name: str, job_tags: Mapping[str, str]) -> list:
    """Active runs named `run_name` carrying `job_tags`, newest first."""
    from mlflow.entities import ViewType

    quoted = "'" not in run_name
    where = f"attributes.run_name = '{run_name}'" if quoted else ""
    runs, token = [], None
    while True:
        page = with_retries(
            f"looking up earlier runs of {run_name!r}",
            client.search_runs,
            [experiment_id],
            filter_string=where,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        runs += [
            run
            for run in page
            if run.info.run_name == run_name and all(run.data.tags.get(key) == value for key, value in job_tags.items())
        ]
        token = page.token
        if not token:
            return runs


def continuable(earlier: list, attempt_tags: Mapping[str, str]):
    """The newest earlier attempt with the same attempt tags that did not finish and logged no metrics."""
    for run in earlier:
        if (
            run.info.status in UNFINISHED
            and not run.data.metrics
            and all(run.data.tags.get(key) == value for key, value in attempt_tags.items())
        ):
            return run
    return None


def end_orphans(client, earlier: list, attempt_tags: Mapping[str, str], keep: str | None) -> None:
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
        with_retries(f"ending orphan run {run.info.run_id}", client.set_terminated, run.info.run_id, "KILLED")
        log.warning(
            "MLflow run %s (%s) was left RUNNING by an earlier attempt of this job that died (%s): ended as KILLED",
            run.info.run_id,
            run.info.run_name,
            why,
        )
