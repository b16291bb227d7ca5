"""`effunet ui`: the MLflow UI of a results folder, opened on the experiment's runs table.

`serve` checks the store (a moved results folder gets its artifact locations relocated, and says
so), tags each experiment for the runs view (`view.ensure_runs_view`), starts MLflow's server on
loopback with one worker and no background job consumers (a few seconds instead of about a
minute on two cores), waits until it answers and prints, for each experiment, the URL that opens
its runs table (`runs_url`) with the headline test metric as a column.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from effunet.errors import EffunetError
from effunet.tracking.store import relocate_store
from effunet.tracking.view import VIEW_KEY, ensure_runs_view

HOST = "127.0.0.1"
PORT = 5000
START_TIMEOUT_S = 180


def runs_url(base_url: str, experiment_id: str) -> str:
    """The address of an experiment's runs table (training runs, not MLflow's GenAI overview), in
    the view that shows the headline test metric (`view.runs_view`)."""
    return (
        f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs"
        f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
    )


def store_uri(results: str | os.PathLike) -> str:
    """The SQLite store of a results folder (``<results>/mlflow.db``), or of the .db file given."""
    path = Path(results)
    db = path if path.suffix == ".db" else path / "mlflow.db"
    if not db.is_file():
        raise EffunetError(
            f"no MLflow store at {db}: give the results folder that holds mlflow.db "
            "(the workflow's mlflow.tracking_uri; default results/)"
        )
    return f"sqlite:///{db.resolve()}"


def experiments(tracking_uri: str) -> list[tuple[str, str, int]]:
    """(id, name, number of runs) of the store's active experiments that have runs, newest run first."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri=tracking_uri)
    found = []
    for experiment in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
        runs = client.search_runs([experiment.experiment_id], max_results=1000, order_by=["attributes.start_time DESC"])
        if runs:
            found.append((runs[0].info.start_time or 0, experiment.experiment_id, experiment.name, len(runs)))
    return [(eid, name, count) for _, eid, name, count in sorted(found, reverse=True)]


def prepare(tracking_uri: str, say: Callable[[str], None] = print) -> list[tuple[str, str, int]]:
    """Relocate a moved store (saying so), set each experiment's runs view; the experiments with runs."""
    from mlflow import MlflowClient

    moved = relocate_store(tracking_uri)
    if moved:
        folder = Path(tracking_uri[len("sqlite:///") :]).parent
        say(f"the results folder was moved: {moved} artifact locations now point to {folder / 'mlartifacts'}")
    found = experiments(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    for experiment_id, _, _ in found:
        ensure_runs_view(client, experiment_id)
    return found


def free_port(host: str = HOST, wanted: int = PORT) -> int:
    """`wanted` if nothing listens there, else a free port the system picks."""
    with socket.socket() as probe:
        try:
            probe.bind((host, wanted))
            return wanted
        except OSError:
            probe.bind((host, 0))
            return probe.getsockname()[1]


def start_server(
    tracking_uri: str, host: str = HOST, port: int = PORT, timeout_s: float = START_TIMEOUT_S, **popen
) -> tuple[subprocess.Popen, str]:
    """Start ``mlflow server`` on `host`:`port` with one worker and without MLflow's job consumers;
    wait until ``/health`` answers. Returns the process and the base URL; raises `EffunetError`
    (with the server's last output where captured) if it exits or does not answer in time."""
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **popen.pop("env", {})}
    process = subprocess.Popen(command, env=env, **popen)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EffunetError(
                f"the MLflow server stopped at start-up (exit code {process.returncode}): {' '.join(command)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return process, url
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    process.terminate()
    raise EffunetError(f"the MLflow server did not answer on {url} within {timeout_s:.0f} s")


def serve(
    results: str | os.PathLike = "results", port: int = PORT, host: str = HOST, say: Callable[[str], None] = print
) -> int:
    """`effunet ui`: prepare the store, start the UI, print each experiment's runs-table URL and
    keep serving until Ctrl-C. Returns the server's exit status (0 after Ctrl-C)."""
    uri = store_uri(results)
    found = prepare(uri, say)
    chosen = free_port(host, port)
    if chosen != port:
        say(f"port {port} is taken; using {chosen}")
    say(f"starting the MLflow UI for {uri} (one worker) ...")
    started = time.monotonic()
    process, url = start_server(uri, host, chosen)
    say(f"MLflow UI ready in {time.monotonic() - started:.0f} s at {url}")
    if not found:
        say(f"no runs yet: {url}")
    for experiment_id, name, count in found:
        say(f"experiment {name!r} ({count} runs): {runs_url(url, experiment_id)}")
    say("open the URL in a browser; Ctrl-C stops the UI")
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        return 0
