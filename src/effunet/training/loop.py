"""The training job: resumable epoch loop with early stopping on validation loss, tracked in MLflow.

Outputs (read by downstream steps): the best model (`model.keras`), `history.csv` (one row per epoch)
and `run.json` (MLflow run id, epochs, best epoch, stop reason, wall time, parameter count).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf

from effunet import models, tracking
from effunet.errors import ConfigError, EffunetError
from effunet.files import atomic_path, write_text_atomic
from effunet.training import checkpoint, dataset, losses

log = logging.getLogger(__name__)
OPTIMIZERS = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
              "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}


METRICS = ("loss", "accuracy", "iou", "dice")


@dataclass
class Settings:
    """The config's train block (global block with the data set's overrides applied)."""

    max_epochs: int = 100
    patience: int = 55
    batch_size: int = 16
    loss: str = "bce"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    augment: bool = False
    encoder_weights: str = "imagenet"
    freeze_encoder_epochs: int = 0
    mixed_precision: str = "auto"
    model_options: dict = field(default_factory=dict)


@dataclass
class Tracking:
    uri: str | None = None
    experiment: str = "effunet"
    run_name: str = "run"
    tags: dict = field(default_factory=dict)


@dataclass
class EarlyStopping:
    patience: int
    best_loss: float = float("inf")
    best_epoch: int = 0
    wait: int = 0

    def update(self, epoch: int, val_loss: float) -> bool:
        """Record an epoch; True if it is the best so far."""
        if math.isfinite(val_loss) and val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.wait = val_loss, epoch, 0
            return True
        self.wait += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.wait >= self.patience


def use_mixed_precision(setting: str) -> bool:
    gpus = tf.config.list_physical_devices("GPU")
    if setting == "on" and not gpus:
        log.warning("mixed_precision is on but no GPU is visible: training in float32 on the CPU")
    return bool(gpus) and setting in ("on", "auto")


def distribution_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy across the GPUs a job was given; the default (one device, CPU fallback) else."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        log.info("training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    log.info("training on %s", "the GPU" if gpus else "the CPU (no GPU visible)")
    return tf.distribute.get_strategy()


def _encoder_weights(value: str):
    return None if value in (None, "none") else value


def build_compiled(model_name: str, input_shape, settings: Settings) -> keras.Model:
    model = models.build(model_name, input_shape, encoder_weights=_encoder_weights(settings.encoder_weights),
                         **settings.model_options)
    if settings.optimizer not in OPTIMIZERS:
        raise ConfigError(f"config key train.optimizer: unknown optimizer {settings.optimizer!r}")
    model.compile(optimizer=OPTIMIZERS[settings.optimizer](learning_rate=settings.learning_rate),
                  loss=losses.make_loss(settings.loss), metrics=losses.make_metrics(),
                  jit_compile=models.jit_compile_default())
    return model


def fingerprint(model_name: str, seed: int, settings: Settings, prepared_dir: Path) -> str:
    """Identifies what a checkpoint was trained with; a checkpoint of anything else is not resumed."""
    manifest = (prepared_dir / "manifest.csv").read_bytes()
    identity = json.dumps([model_name, seed, asdict(settings), hashlib.sha256(manifest).hexdigest()],
                          sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()


def _epoch_line(epoch: int, max_epochs: int, row: dict) -> str:
    return (f"epoch {epoch}/{max_epochs}  loss {row['loss']:.4f}  val_loss {row['val_loss']:.4f}  "
            f"accuracy {row['accuracy']:.4f}/{row['val_accuracy']:.4f}  iou {row['iou']:.4f}/{row['val_iou']:.4f}  "
            f"dice {row['dice']:.4f}/{row['val_dice']:.4f}  lr {row['learning_rate']:.2e}  {row['seconds']:.1f} s")


def limit_threads(threads: int | None) -> None:
    """Use the cores the scheduler gave the job; must run before TensorFlow executes anything."""
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))


def train(prepared_dir: str | os.PathLike, model_name: str, seed: int, settings: Settings,
          model_path: str | os.PathLike, history_path: str | os.PathLike, run_path: str | os.PathLike,
          checkpoint_dir: str | os.PathLike, tracking_info: Tracking | None = None,
          threads: int | None = None) -> dict:
    """Train one data set x model x seed; resume from `checkpoint_dir` if an earlier attempt was killed."""
    start = time.monotonic()
    limit_threads(threads)
    prepared_dir, checkpoint_dir = Path(prepared_dir), Path(checkpoint_dir)
    tracking_info = tracking_info or Tracking()
    keras.utils.set_random_seed(seed)
    train_images, train_masks = dataset.load_split(prepared_dir, "train")
    val_images, val_masks = dataset.load_split(prepared_dir, "val")
    input_shape = train_images.shape[1:3] + (3,)
    mixed = use_mixed_precision(settings.mixed_precision)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    identity = fingerprint(model_name, seed, settings, prepared_dir)
    resumed = checkpoint.latest(checkpoint_dir, identity)
    with distribution_strategy().scope():
        if resumed:
            folder, state = resumed
            model = keras.models.load_model(folder / "model.keras", compile=True)
            log.info("resuming from %s after epoch %d", folder, state["epoch"])
        else:
            model = build_compiled(model_name, input_shape, settings)
            state = {"epoch": 0, "history": [], "run_id": None, "elapsed_s": 0.0, "fingerprint": identity,
                     "early_stopping": asdict(EarlyStopping(settings.patience))}
    stopper = EarlyStopping(**state["early_stopping"])
    best_weights = checkpoint_dir / "best.weights.h5"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if resumed and (folder / "best.weights.h5").exists():
        shutil.copy2(folder / "best.weights.h5", best_weights)
    tracker = tracking.RunTracker.open(tracking_info.uri, tracking_info.experiment, tracking_info.run_name,
                                       run_id=state["run_id"], tags=tracking_info.tags)
    state["run_id"] = tracker.run_id
    if not resumed:
        tracker.log_params({"model": model_name, "seed": seed, **asdict(settings),
                            "input_shape": list(input_shape), "parameters": model.count_params(),
                            "train_images": len(train_images), "val_images": len(val_images)})
    history, epoch, elapsed_before = state["history"], state["epoch"], state["elapsed_s"]
    while epoch < settings.max_epochs and not stopper.should_stop:
        epoch += 1
        epoch_start = time.monotonic()
        train_data = dataset.make_dataset(train_images, train_masks, settings.batch_size, seed=seed,
                                          epoch=epoch, augment=settings.augment)
        fit_logs = model.fit(train_data, epochs=1, verbose=0, shuffle=False).history
        val_logs = model.evaluate(dataset.make_dataset(val_images, val_masks, settings.batch_size,
                                                       shuffle=False), verbose=0, return_dict=True)
        row = {"epoch": epoch, **{k: float(fit_logs[k][-1]) for k in METRICS},
               **{f"val_{k}": float(val_logs[k]) for k in METRICS},
               "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
               "seconds": time.monotonic() - epoch_start}
        history.append(row)
        if stopper.update(epoch, row["val_loss"]):
            best_weights.parent.mkdir(parents=True, exist_ok=True)
            model.save_weights(best_weights)
        log.info(_epoch_line(epoch, settings.max_epochs, row))
        tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        state.update(epoch=epoch, early_stopping=asdict(stopper),
                     elapsed_s=elapsed_before + time.monotonic() - start)
        checkpoint.save(checkpoint_dir, model, best_weights, state)
    stop_reason = "early_stopping" if stopper.should_stop else "max_epochs"
    if not best_weights.exists():
        raise EffunetError(f"{model_name} on {prepared_dir}: the validation loss was never finite "
                           "(training diverged); try a lower learning rate")
    model.load_weights(best_weights)
    summary = {"run_id": tracker.run_id, "dataset_dir": str(prepared_dir), "model": model_name, "seed": seed,
               "epochs_trained": len(history), "best_epoch": stopper.best_epoch,
               "best_val_loss": stopper.best_loss, "stop_reason": stop_reason,
               "wall_seconds": elapsed_before + time.monotonic() - start,
               "seconds_per_epoch": sum(r["seconds"] for r in history) / max(len(history), 1),
               "parameters": int(model.count_params()), "mixed_precision": mixed,
               "resumed": bool(resumed)}
    _write_outputs(model, history, summary, Path(model_path), Path(history_path), Path(run_path))
    tracker.log_metrics({"best_epoch": stopper.best_epoch, "best_val_loss": stopper.best_loss,
                         "epochs_trained": len(history), "wall_seconds": summary["wall_seconds"]},
                        step=len(history))
    tracker.set_tags({"stop_reason": stop_reason})
    tracker.log_artifact(history_path)
    tracker.log_artifact(model_path)
    tracker.finish()
    checkpoint.remove(checkpoint_dir)
    log.info("done: %d epochs, best epoch %d (val_loss %.4f), stopped by %s, %.1f s", len(history),
             stopper.best_epoch, stopper.best_loss, stop_reason, summary["wall_seconds"])
    return summary


def _write_outputs(model, history, summary, model_path: Path, history_path: Path, run_path: Path) -> None:
    partial = model_path.with_name(f".{model_path.stem}.partial.keras")
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(partial)
    os.replace(partial, model_path)
    with atomic_path(history_path) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    write_text_atomic(run_path, json.dumps(summary, indent=2) + "\n")
