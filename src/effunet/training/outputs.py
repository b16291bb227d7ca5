"""What a finished training job writes and tracks: the model, `history.csv` and `run.json`
(`effunet.run.RunRecord`), and the run's outcome in MLflow."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import pandas as pd

from effunet.files import atomic_path
from effunet.run import RunRecord, epoch_timing
from effunet.tracking.names import SUMMARY

log = logging.getLogger("effunet.training.loop")


@dataclass
class Outputs:
    """Where a training job writes (paths given by the rule)."""

    model: Path
    history: Path
    run: Path
    checkpoint_dir: Path
    stale: tuple = ()  # later steps' outputs made from an earlier model: removed when training starts


def summary(
    model, state: dict, stopper, mixed: bool, wall_seconds: float, loss: str = "bce", train_images: int = 0
) -> dict:
    """The run's record (`run.json`, less the settings the loop adds): outcome, timing, size."""
    history = state["history"]
    return {
        "run_id": state["run_id"],
        "epochs_trained": len(history),
        "best_epoch": stopper.best_epoch,
        "best_val_loss": stopper.best_loss,
        "stop_reason": "early_stopping" if stopper.should_stop else "max_epochs",
        "wall_seconds": wall_seconds,
        **epoch_timing(history, stopper.best_epoch, train_images),
        "loss": loss,
        "train_images": train_images,
        "parameters": int(model.count_params()),
        "flops": state.get("flops"),
        "mixed_precision": mixed,
        "resumed_after_epochs": state["resumed_after"],
    }


def epoch_metrics(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "epoch"}


def log_untracked_epochs(tracker, history: list[dict]) -> None:
    """On resume, log the checkpointed epochs the killed attempt did not get to log (each epoch once)."""
    if not history:
        return
    logged = tracker.logged_steps("val_loss")
    if logged is None:
        return
    for row in history:
        if row["epoch"] not in logged:
            log.info("logging epoch %d to MLflow (the earlier attempt stopped before it did)", row["epoch"])
            tracker.log_metrics(epoch_metrics(row), step=row["epoch"])


def track_outcome(tracker, summary: dict, outputs: Outputs) -> None:
    if summary["epochs_trained"] not in (tracker.logged_steps("epochs_trained") or ()):
        tracker.log_metrics(
            {key: summary[key] for key in SUMMARY},
            step=summary["epochs_trained"],
        )
    tracker.set_tags({"stop_reason": summary["stop_reason"]})
    tracker.log_artifact(outputs.history)
    tracker.log_artifact(outputs.run)
    # One copy of the model on disk: the run references the workflow's file instead of copying it.
    tracker.set_tags({"model_file": os.fspath(outputs.model)})


def inference_model(model: keras.Model) -> keras.Model:
    """The same layers and weights as an uncompiled model: saved, it holds the architecture and
    weights only (no optimizer state, a third of a compiled save with Adam), which is all inference
    needs. Resumable state lives in the checkpoint folder until the job ends."""
    return keras.Model(model.inputs, model.outputs, name=model.name)


def write_outputs(model, history: list[dict], summary: dict, outputs: Outputs) -> None:
    model_path = Path(outputs.model)
    partial = model_path.with_name(f".{model_path.stem}.partial.keras")  # Keras insists on the suffix
    model_path.parent.mkdir(parents=True, exist_ok=True)
    inference_model(model).save(partial)
    os.replace(partial, model_path)
    with atomic_path(outputs.history) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    RunRecord(summary).write(outputs.run)
