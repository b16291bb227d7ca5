"""Job logging: every workflow script writes readable progress and its errors to its Snakemake log."""

from __future__ import annotations

import logging
import os
import sys
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
