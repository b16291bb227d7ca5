"""Where the tracking store is and getting it ready: `DEFAULT_TRACKING_URI`, `sqlite_path` (a
``sqlite:///`` URI's database file), `is_http`, `store_lock` (the lock that serialises creating a SQLite
store across processes), `mlflow_client`, `get_or_create_experiment`, `prepare_store` (schema, experiment and
runs view once before jobs start) and `relocate_store` (a moved SQLite store's artifact locations)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

from effunet.errors import EffunetError
from effunet.tracking.retry import ATTEMPTS, PROBE_ATTEMPTS, short, with_retries
from effunet.tracking.view import ensure_runs_view

try:  # POSIX only; without it prepare_store is not serialised across processes.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("effunet.tracking")


DEFAULT_TRACKING_URI = "sqlite:///results/mlflow.db"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working folder), else None."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    rest = tracking_uri[len("sqlite:") :]
    if not rest.startswith("///") or rest[3:] in ("", ":memory:"):
        raise EffunetError(f"mlflow.tracking_uri {tracking_uri!r}: use sqlite:///<path to a .db file>")
    return Path(rest[3:].split("?", 1)[0])


def is_http(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


@contextlib.contextmanager
def store_lock(db: Path | None) -> Iterator[None]:
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


def mlflow_client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def get_or_create_experiment(client, tracking_uri: str, experiment: str, probe: bool = False) -> str:
    found = with_retries(
        f"looking up experiment {experiment!r} in {tracking_uri}",
        client.get_experiment_by_name,
        experiment,
        attempts=PROBE_ATTEMPTS if probe else ATTEMPTS,
        probe=probe,
    )
    if found is not None:
        if found.lifecycle_stage != "active":
            raise EffunetError(
                f"MLflow experiment {experiment!r} in {tracking_uri} is deleted; restore it "
                f"(mlflow experiments restore) or choose another mlflow.experiment"
            )
        return found.experiment_id
    db = sqlite_path(tracking_uri)
    location = (db.resolve().parent / "mlartifacts" / experiment).as_uri() if db else None
    try:
        return with_retries(
            f"creating experiment {experiment!r} in {tracking_uri}",
            client.create_experiment,
            experiment,
            artifact_location=location,
        )
    except Exception as error:
        # Another process may have created it between our look-up and our create.
        found = with_retries(f"looking up experiment {experiment!r}", client.get_experiment_by_name, experiment)
        if found is None:
            raise
        log.debug("experiment %r was created concurrently (%s)", experiment, short(error))
        return found.experiment_id


def prepare_store(tracking_uri: str, experiment: str, *, strict: bool = True) -> str | None:
    """Create the tracking store's schema and `experiment` once; return the experiment id.

    Idempotent. For SQLite, creates the database's folder, and the experiment's artifact location
    is ``<db folder>/mlartifacts/<experiment>``. Raises `EffunetError` naming the URI on failure;
    with ``strict=False`` logs a warning and returns None instead (a tracking server that is down
    then does not stop the workflow: training jobs run with tracking disabled).
    """
    db = sqlite_path(tracking_uri)  # a malformed URI is a config error even when not strict
    try:
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        with store_lock(db):
            client = mlflow_client(tracking_uri)
            experiment_id = get_or_create_experiment(client, tracking_uri, experiment)
    except Exception as error:
        failure = (
            error
            if isinstance(error, EffunetError)
            else EffunetError(
                f"cannot set up the MLflow store {tracking_uri} (experiment {experiment!r}): {short(error)}"
            )
        )
        if strict:
            raise failure from error
        log.warning("MLflow tracking will be skipped: %s", failure)
        return None
    log.info("MLflow store %s ready: experiment %r has id %s", tracking_uri, experiment, experiment_id)
    try:
        ensure_runs_view(client, experiment_id)
    except Exception as error:  # the UI's default view is a convenience
        log.warning("could not set the runs table's view of experiment %r: %s", experiment, short(error))
    if db is not None:
        try:
            relocate_store(tracking_uri)
        except Exception as error:  # a store we cannot rewrite still works where it was made
            log.warning("could not check the artifact locations of %s: %s", tracking_uri, short(error))
    return experiment_id


def relocate_store(tracking_uri: str) -> int:
    """Point a moved SQLite store's artifact locations at ``<db folder>/mlartifacts/``.

    Only locations (of experiments, runs and logged models) of the form
    ``file://<old folder>/mlartifacts/...`` (what `prepare_store` creates) whose old folder is not
    the database's folder are rewritten, in one transaction;
    anything else (a server's store, a location the user chose) is left alone.
    """
    import sqlite3
    import urllib.parse

    db = sqlite_path(tracking_uri)
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
    with store_lock(db), contextlib.closing(sqlite3.connect(db, timeout=30)) as connection, connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, key, column in (
            ("experiments", "experiment_id", "artifact_location"),
            ("runs", "run_uuid", "artifact_uri"),
            ("logged_models", "model_id", "artifact_location"),
        ):
            if table not in tables:
                continue
            for row_id, uri in connection.execute(f"SELECT {key}, {column} FROM {table}").fetchall():
                new = moved(uri)
                if new is not None:
                    connection.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (new, row_id))
                    changed += 1
    if changed:
        log.info("MLflow store %s was moved: %d artifact locations now point to %s", tracking_uri, changed, here)
    return changed
