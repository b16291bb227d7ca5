"""A run's lifecycle on the store, whatever is logged to it: `RunSession` holds the MLflow client and
run id, makes each MLflow call through `retry.with_retries` without ever raising (store trouble
disables it, and a store given up mid-job is probed again at the end: `close_lost_run`),
and ends the run FINISHED, FAILED or KILLED (`finish`; as a context manager also on an exception,
Ctrl-C or SIGTERM, which raises `Terminated` while the block runs). `runs.RunTracker` is a
`RunSession` with the logging methods."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Callable, Mapping, Self

from effunet.tracking.retry import PROBE_ATTEMPTS, StoreUnavailable, short, with_retries
from effunet.tracking.tags import MAX_TAG_VALUE, fit

log = logging.getLogger("effunet.tracking")


STATUSES = ("FINISHED", "FAILED", "KILLED")


class Terminated(SystemExit):
    """Raised in the main thread by SIGTERM while a tracker is open (`with tracker:`), so the run ends
    KILLED; uncaught, the process exits with 128 + the signal number, as a shell reports it."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


class RunSession:
    """One MLflow run, driven by explicit run id; disabled (every call a no-op) without a client and
    run id, after `finish`, or once the store is given up."""

    def __init__(
        self,
        client=None,
        run_id: str | None = None,
        tracking_uri: str | None = None,
        params: Mapping[str, str] | None = None,
    ):
        self._client = client
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self._params: dict[str, str] = dict(params or {})
        self.enabled = client is not None and run_id is not None
        self._lost: str | None = None  # why the store was given up mid-run: `finish` tries to close it
        self._handler: Any = None  # the SIGTERM handler `__enter__` replaced

    def __repr__(self) -> str:
        state = f"run {self.run_id} in {self.tracking_uri}" if self.enabled else "disabled"
        return f"{type(self).__name__}({state})"

    def finish(self, status: str = "FINISHED") -> None:
        """End the run with FINISHED, FAILED or KILLED; the tracker is disabled afterwards.

        If the store was given up during the job (unreachable after the retries) and is back now,
        the run is still ended with `status`, and tagged ``tracking_incomplete`` with the reason."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        if self._lost is not None and self._client is not None and self.run_id is not None:
            reason, self._lost, self.enabled = self._lost, None, False
            close_lost_run(self._client, self.run_id, status, reason)
            return
        if not self.enabled:
            return
        if self._call(f"ending run as {status}", self._client.set_terminated, self.run_id, status):
            log.info("MLflow run %s ended: %s", self.run_id, status)
        self.enabled = False

    def __enter__(self) -> Self:
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
                log.warning(
                    "%s: MLflow run %s ends as KILLED",
                    "terminated (SIGTERM)" if issubclass(kind, Terminated) else "interrupted",
                    self.run_id,
                )
            self.finish("KILLED")
        else:
            self.finish("FAILED")

    # -- plumbing

    def _call(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Run one MLflow call; True if it worked. Never raises: store trouble disables tracking."""
        try:
            with_retries(f"MLflow {what} (run {self.run_id})", call, *args, **kwargs)
            return True
        except StoreUnavailable as error:
            log.warning("MLflow tracking disabled for the rest of this job: %s", error)
            self._lost = str(error)
        except Exception as error:
            from mlflow.exceptions import MlflowException

            if isinstance(error, MlflowException):
                log.warning("MLflow %s failed, skipped: %s", what, short(error))
                return False
            log.warning("MLflow tracking disabled for the rest of this job: %s failed: %r", what, error)
            self._lost = f"{what} failed: {error!r}"
        self.enabled = False
        return False

    def _call_value(self, what: str, call: Callable[..., Any], *args: Any) -> Any:
        """A read through `with_retries`; None (with a warning) if it fails. Does not disable the tracker."""
        try:
            return with_retries(f"MLflow {what}", call, *args)
        except Exception as error:
            log.warning("MLflow %s failed: %s", what, short(error))
            return None


def _terminate(signum, frame) -> None:
    raise Terminated(signum)


def close_lost_run(client, run_id: str, status: str, reason: str) -> bool:
    """End run `run_id` with `status`, tagged ``tracking_incomplete`` with `reason`, after its store was
    given up mid-job, if the store answers again (a short probe); False (with a warning) if not."""
    from mlflow.entities import RunTag

    note = fit(
        "tag",
        "tracking_incomplete",
        f"the store was unreachable during the job ({reason}); what the job logged after that is missing",
        MAX_TAG_VALUE,
    )
    try:
        with_retries(
            f"MLflow ending run {run_id} as {status}",
            client.log_batch,
            run_id,
            tags=[RunTag("tracking_incomplete", note)],
            attempts=PROBE_ATTEMPTS,
            probe=True,
        )
        with_retries(
            f"MLflow ending run {run_id} as {status}",
            client.set_terminated,
            run_id,
            status,
            attempts=PROBE_ATTEMPTS,
            probe=True,
        )
    except Exception as error:
        log.warning("MLflow run %s stays RUNNING: the store is still unreachable (%s)", run_id, short(error))
        return False
    log.info("MLflow run %s ended: %s (the store is back; the run is tagged tracking_incomplete)", run_id, status)
    return True
