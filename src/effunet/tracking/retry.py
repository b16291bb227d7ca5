"""Every MLflow call's retries: `with_retries` runs one call, retrying transient errors (a locked
SQLite database, connection trouble, server overload) with exponential backoff and jitter under
MLflow HTTP settings of its own (`HTTP_ENV`, `PROBE_HTTP_ENV`); `StoreUnavailable` says a transient
error outlasted the retries; `short` boils an error down to one line. See the package docstring."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from typing import Any, Callable, Iterator, Mapping, TypeVar

log = logging.getLogger("effunet.tracking")


ATTEMPTS = 6
BACKOFF_S = 0.2
PROBE_ATTEMPTS = 2
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
PROBE_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", "REQUEST_LIMIT_EXCEEDED"}
T = TypeVar("T")


class StoreUnavailable(Exception):
    """A transient store error that outlasted the retries."""


def _is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: locked database, connection trouble, server overload."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error).lower()
        if "database is locked" in text or "database table is locked" in text:
            return True
        if type(error).__name__ == "OperationalError":  # sqlite3 or SQLAlchemy
            return True
        if isinstance(error, (ConnectionError, TimeoutError)):
            return True
        module = type(error).__module__ or ""
        if module.startswith(("requests", "urllib3")):
            return True
        if getattr(error, "error_code", None) in _TRANSIENT_CODES:
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def _mlflow_http_env(settings: Mapping[str, str], force: bool) -> Iterator[None]:
    """Set MLflow's HTTP retry/timeout variables for one call; `force` overrides the user's."""
    saved = {key: os.environ.get(key) for key in settings}
    for key, value in settings.items():
        if force or saved[key] is None:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def with_retries(
    what: str,
    call: Callable[..., T],
    *args: Any,
    attempts: int = ATTEMPTS,
    probe: bool = False,
    **kwargs: Any,
) -> T:
    """Run an MLflow call, retrying transient errors with exponential backoff and jitter.

    Raises `StoreUnavailable` when a transient error outlasts `attempts`; other errors as is.
    """
    settings = PROBE_HTTP_ENV if probe else HTTP_ENV
    for attempt in range(1, attempts + 1):
        try:
            with _mlflow_http_env(settings, force=probe):
                return call(*args, **kwargs)
        except Exception as error:
            if not _is_transient(error):
                raise
            if attempt == attempts:
                raise StoreUnavailable(f"{what} failed after {attempts} attempts: {short(error)}") from error
            delay = BACKOFF_S * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            log.warning(
                "%s failed (attempt %d/%d: %s); retrying in %.1f s", what, attempt, attempts, short(error), delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


_REASONS = (  # what MLflow's long messages boil down to
    ("connection refused", "connection refused"),
    ("timeout", "timed out"),
    ("timed out", "timed out"),
    ("name or service not known", "unknown host"),
    ("temporary failure in name resolution", "unknown host"),
    ("database is locked", "database is locked"),
)


def short(error: BaseException) -> str:
    """One line: a plain reason where one is recognised, then MLflow's message, cut at 300 characters."""
    text = " ".join(str(error).split())
    lower = text.lower()
    reason = next((plain for marker, plain in _REASONS if marker in lower), None)
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{reason}: {text}" if reason and not text.startswith(reason) else text
