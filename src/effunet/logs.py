"""Job logging: every workflow script writes readable progress and its errors to its Snakemake log."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from effunet.errors import EffunetError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(log_path: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Log to `log_path` (and stderr); send stray stderr output (library warnings) to the log too."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        handlers = [logging.FileHandler(log_path, mode="w")]
        sys.stderr = open(log_path, "a", buffering=1)
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)


def keep_across_attempts(record: str | os.PathLike) -> logging.Handler:
    """Keep a job's log lines across attempts of the job.

    Snakemake deletes a job's log when it starts the job again, so a resumable job also appends its
    lines to `record` (kept next to its checkpoint), and a new attempt first copies the lines of the
    earlier ones from `record` into its own log. Returns the handler to remove when the job is done.
    """
    root, record = logging.getLogger(), Path(record)
    for stale in [h for h in root.handlers if getattr(h, "keeps_attempts", False)]:
        stop_keeping(stale)  # left by an earlier attempt in this process (it failed)
    earlier = record.read_text() if record.exists() else ""
    for handler in root.handlers:
        if earlier and isinstance(handler, logging.FileHandler):
            handler.stream.write(earlier)
            handler.flush()
    mirror = logging.FileHandler(record, mode="a")
    mirror.setFormatter(logging.Formatter(FORMAT))
    mirror.keeps_attempts = True
    root.addHandler(mirror)
    return mirror


def stop_keeping(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
    handler.close()


def run_logged(log_path: str | os.PathLike | None, main: Callable[[Any], Any], smk: Any) -> None:
    """Run `main(smk)` with logging configured; a user error becomes one clear line and exit code 1."""
    configure(log_path)
    try:
        main(smk)
    except EffunetError as error:
        logging.getLogger("effunet").error("%s", error)
        print(f"effunet error: {error}", file=sys.__stderr__)
        sys.exit(1)
    except Exception:
        logging.getLogger("effunet").exception("unexpected failure")
        raise
