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
    a no-op when the run was not tracked. A missing or malformed ``run.json`` raises `EffunetError`
    naming it.

``run_name(dataset, model, seed, recipe="study") -> "<dataset>/<model>/<recipe>/seed<seed>"``

``default_tags(dataset, model, seed, rule=None, recipe="study") -> dict``
    dataset, model, seed, git_commit (also as mlflow.source.git.commit; "unknown" outside a
    repository), host, snakemake_rule when given, slurm_job_id when ``SLURM_JOB_ID`` is set.

``RunTracker.open(tracking_uri, experiment, run_name, *, run_id=None, tags=None, job_tags=None,
attempt_tags=None) -> RunTracker``
    Starts a run, or with ``run_id`` (kept by the training code in its checkpoint) reopens that
    run and sets it RUNNING again, so a restarted job continues the same run; params already
    logged are not logged again. An unknown ``run_id`` starts a new run with a warning. If the
    store cannot be reached, returns a disabled tracker within seconds and logs why at WARNING
    (logger ``effunet.tracking``: "MLflow tracking skipped: ..."). Never raises for store
    problems. A missing SQLite database is created (under the lock) with a warning.
    One run per run identity, also when an attempt dies before its first checkpoint (so before
    the run id is saved anywhere): the training job passes ``job_tags`` (``checkpoint_dir``, the
    job's checkpoint folder) and ``attempt_tags`` (``run_identity``, the fingerprint of what the
    checkpoint would be made with), set on the run at creation. Without a usable ``run_id``, the
    newest run of ``run_name`` with the same job and attempt tags that is not FINISHED and has no
    metrics is reopened ("... of an earlier attempt ... is continued" in the log); every other
    run of that name and job still RUNNING is ended KILLED, with a warning saying why.

``RunTracker``: ``enabled``, ``run_id``, ``log_params(dict)`` (nested dicts flattened with dots,
values as text, at most 6000 characters), ``log_metrics(dict, step)`` (one batch, step = epoch),
``log_evaluation(metrics, settings, prefix="eval") -> step`` (one evaluation of the model: the
metrics at a new step, 1 + the last step any of them has, so a re-evaluation never gives a metric
two values at one step; the settings as tags ``eval.<key>`` plus ``eval.step``, which always
describe the newest evaluation, numeric ones also as metrics ``eval.<key>`` at that step),
``log_artifact(path, artifact_path=None)`` (file or folder), ``set_tags(dict)``,
``finish(status="FINISHED"|"FAILED"|"KILLED")``. Also a context manager that finishes FINISHED,
or FAILED when the block raises (KILLED on Ctrl-C, and on SIGTERM: while the block runs in the
main thread, SIGTERM raises `Terminated`, a ``SystemExit`` with code 143), and lets the exception
through. After `finish`, or on a disabled tracker, every call is a no-op. A tracker that gave
the store up mid-job (a transient error that outlasted the retries, e.g. a tracking server that
died) still tries, at `finish`, to end the run with its status (a short probe: a server that came
back gets the run closed, tagged ``tracking_incomplete`` with the reason).

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

Metric keys are grouped by prefix (`names.metric_key`: ``train/loss``, ``val/loss``,
``time/epoch_seconds``, ``test/dice``, ``eval/threshold``); callers pass the names of history.csv and
metrics.json. The training outcome (`names.SUMMARY`) passed to ``log_metrics`` becomes params.
``RunTracker.log_manifest``/``log_dataset`` record the data set as the run's input;
``RunTracker.log_model_reference`` shows the model in the run's "Logged models" by reference (an
MLflow external model; no copy). `prepare_store` also tags the experiment for the UI's runs view
(`view.ensure_runs_view`); ``effunet ui`` (`ui.serve`) opens it.

Layout (each module imports only those before it; no import circle):

- `retry`: `with_retries` (retries, HTTP settings), `StoreUnavailable`, `short`;
- `names`: metric keys (`metric_key`, `SUMMARY`, the headline metric);
- `tags`: run names, default tags, flattened params, MLflow's limits, metric batches;
- `view`: the runs table's shared view (`ensure_runs_view`, `VIEW_KEY`);
- `store`: where the store is and getting it ready (`prepare_store`, `relocate_store`, `store_lock`);
- `attempts`: which run a job opens (`open_run`: reopened, continued or new; orphans ended);
- `inputs`: the data set and the model recorded by reference;
- `session`: a run's lifecycle (`RunSession`: calls that never raise, `finish`, `Terminated`);
- `runs`: `RunTracker` (a `RunSession` with the logging methods) and `disabled`;
- `artifacts`: `log_files`, files added to a training run named by its ``run.json``;
- `ui`: ``effunet ui``.

This package re-exports the public names of retry, store, tags, session, runs and artifacts.
"""

from effunet.tracking.retry import (
    ATTEMPTS,
    BACKOFF_S,
    HTTP_ENV,
    PROBE_ATTEMPTS,
    PROBE_HTTP_ENV,
)
from effunet.tracking.artifacts import log_files
from effunet.tracking.runs import RunTracker, disabled
from effunet.tracking.session import STATUSES, Terminated
from effunet.tracking.store import DEFAULT_TRACKING_URI, prepare_store, relocate_store
from effunet.tracking.tags import (
    MAX_KEY,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    METRICS_PER_BATCH,
    PARAMS_PER_BATCH,
    default_tags,
    flatten,
    git_commit,
    run_name,
)

__all__ = [
    "ATTEMPTS",
    "BACKOFF_S",
    "DEFAULT_TRACKING_URI",
    "HTTP_ENV",
    "MAX_KEY",
    "MAX_PARAM_VALUE",
    "MAX_TAG_VALUE",
    "METRICS_PER_BATCH",
    "PARAMS_PER_BATCH",
    "PROBE_ATTEMPTS",
    "PROBE_HTTP_ENV",
    "STATUSES",
    "RunTracker",
    "Terminated",
    "default_tags",
    "disabled",
    "flatten",
    "git_commit",
    "log_files",
    "prepare_store",
    "relocate_store",
    "run_name",
]
