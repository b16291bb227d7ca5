"""Reading a run's history.csv and run.json, and the epochs the curves mark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from effunet.errors import EffunetError
from effunet.plots._common import PathLike
from effunet.run import REQUIRED, RunRecord

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")  # what the curves need
RUN_KEYS = REQUIRED  # what every run.json holds


def read_history(path: PathLike) -> pd.DataFrame:
    """Read a run's `history.csv`; raise EffunetError naming the file if it is missing, empty or malformed."""
    path = Path(path)
    try:
        history = pd.read_csv(path)
    except FileNotFoundError:
        raise EffunetError(f"{path}: history file not found") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise EffunetError(f"{path}: not a readable history CSV ({exc})") from None
    missing = [column for column in HISTORY_COLUMNS if column not in history.columns]
    if missing:
        raise EffunetError(f"{path}: history lacks column(s) {', '.join(missing)}")
    if history.empty:
        raise EffunetError(f"{path}: history has no epochs")
    for column in HISTORY_COLUMNS:
        if not pd.api.types.is_numeric_dtype(history[column]):
            raise EffunetError(f"{path}: history column {column!r} is not numeric")
    epochs = history["epoch"]
    if epochs.isna().any() or not epochs.is_monotonic_increasing or not epochs.is_unique:
        raise EffunetError(f"{path}: history epochs are not increasing one row per epoch")
    return history


def read_run(path: PathLike) -> RunRecord:
    """A run's `run.json` (`effunet.run.RunRecord.read`: an error naming the file if it is missing or lacks keys)."""
    return RunRecord.read(path, require=REQUIRED)


def curve_markers(history: pd.DataFrame, run: dict, source: str = "run.json") -> dict:
    """The epochs the learning curves mark.

    Returns {"best_epoch": the epoch whose weights were kept, "early_stop_epoch": the last epoch if
    early stopping ended training, else None}. Raises EffunetError (naming `source`) when the run
    summary does not describe this history (best epoch not in it, different epoch count).
    """
    epochs = [int(e) for e in history["epoch"]]
    best = run["best_epoch"]
    if not isinstance(best, (int, np.integer)) or int(best) not in epochs:
        raise EffunetError(f"{source}: best_epoch {best!r} is not an epoch of the history "
                           f"({epochs[0]}..{epochs[-1]})")
    if run["epochs_trained"] != len(epochs):
        raise EffunetError(f"{source}: epochs_trained {run['epochs_trained']!r} but the history has "
                           f"{len(epochs)} epochs (files from different runs?)")
    if run["stop_reason"] not in ("early_stopping", "max_epochs"):
        raise EffunetError(f"{source}: unknown stop_reason {run['stop_reason']!r}")
    return {"best_epoch": int(best),
            "early_stop_epoch": epochs[-1] if run["stop_reason"] == "early_stopping" else None}
