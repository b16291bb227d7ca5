"""The training job: resumable epoch loop with early stopping on validation loss, tracked in MLflow.

Outputs (read by downstream steps): the best model (`model.keras`), `history.csv` (one row per epoch)
and `run.json` (MLflow run id, epochs, best epoch, stop reason, wall time, parameter count).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from effunet import logs, models, placement, tracking
from effunet.errors import ConfigError, EffunetError
from effunet.files import remove_paths
from effunet.layout import PreparedData
from effunet.run import STUDY_RECIPE, Settings
from effunet.models import runtime
from effunet.training.outputs import Outputs, epoch_metrics, log_untracked_epochs, track_outcome, write_outputs
from effunet.training.outputs import summary as summary_of
from effunet.training.parallel import Parallel
from effunet.training.parallel import plan as parallel_plan
from effunet.training import checkpoint, dataset, instances, losses, optimizers, rng, schedules

log = logging.getLogger(__name__)
# Adam/AdamW with a fused update: same maths, a fraction of the graph-building time (optimizers.py).
OPTIMIZERS = {"adam": optimizers.Adam, "adamw": optimizers.AdamW,
              "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}


METRICS = ("loss", "accuracy", "iou", "dice")


@dataclass
class Tracking:
    """Where the run is tracked; no URI switches tracking off."""

    uri: str | None = None
    experiment: str = "effunet"
    dataset: str = "unknown"
    rule: str | None = None
    recipe: str = STUDY_RECIPE  # the config's recipe (effunet.config.train_settings): a tag and part of the run name


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
    gpus = placement.accelerated()  # a GPU, or CPU devices standing in for GPUs (placement.cpu_replicas)
    if setting == "on" and not gpus:
        log.warning("mixed_precision is on but no GPU is visible: training in float32 on the CPU")
    return bool(gpus) and setting in ("on", "auto")


def build_compiled(model_name: str, input_shape, settings: Settings, steps_per_epoch: int = 1) -> keras.Model:
    model = models.build(model_name, input_shape, encoder_weights=settings.encoder_weights,
                         channels=instances.output_channels(settings.instances), **settings.model_options)
    if settings.optimizer not in OPTIMIZERS:
        raise ConfigError(f"config key train.optimizer: unknown optimizer {settings.optimizer!r}")
    rate = schedules.learning_rate(settings.lr_schedule, settings.learning_rate, settings.max_epochs,
                                   steps_per_epoch, settings.warmup_epochs)
    model.compile(optimizer=OPTIMIZERS[settings.optimizer](learning_rate=rate),
                  loss=instances.training_loss(settings.loss, settings.instances), metrics=losses.make_metrics(),
                  jit_compile=models.jit_compile_default())
    # Built here, not lazily inside the first traced step: variables created while tracing make
    # TensorFlow trace the step a second time (the whole graph again: ~20 CPU-s for effunet-b0).
    model.optimizer.build(model.trainable_variables)
    return model


def run_identity(model_name: str, seed: int, settings: Settings, prepared: PreparedData, data,
                 code_version: str | None) -> dict:
    """What a checkpoint was trained with; a checkpoint that differs in any entry is not resumed."""
    arrays = hashlib.sha256()
    for array in (*data[0], *data[1]):
        for part in (array if isinstance(array, list) else [array]):  # a list: native images, each its size
            arrays.update(np.ascontiguousarray(part).tobytes())
    return {"model": model_name, "seed": seed, **{f"train.{key}": value for key, value in asdict(settings).items()},
            # another backend's checkpoint is not resumed (tensorflow, the default, left out as before)
            **({} if runtime.backend() == "tensorflow" else {"backend": runtime.backend()}),
            "manifest": hashlib.sha256(Path(prepared.manifest).read_bytes()).hexdigest(),
            "data": arrays.hexdigest(), "input_shape": list(input_shape(data)), "code": code_version}


def input_shape(data) -> tuple[int, int, int]:
    """The model's input (height, width, 3): the training size, that of the images or of the crops."""
    return data[2] if len(data) > 2 else data[0][0].shape[1:]


def load_data(prepared: PreparedData, settings: Settings) -> tuple:
    """(train, val) splits as `dataset.load_split` gives them; for train.input native_crops the
    native-size splits and, third, the crops' shape (the training size of the prepared images)."""
    data = dataset.load_split(prepared, "train"), dataset.load_split(prepared, "val")
    if settings.input == "resize":
        return data
    if settings.input != "native_crops":
        raise ConfigError(f"config key train.input: unknown input {settings.input!r} (resize, native_crops)")
    shape = data[0][0].shape[1:]
    return dataset.load_native_split(prepared, "train"), dataset.load_native_split(prepared, "val"), shape


def _epoch_line(epoch: int, max_epochs: int, row: dict) -> str:
    return (f"epoch {epoch}/{max_epochs}  loss {row['loss']:.4f}  val_loss {row['val_loss']:.4f}  "
            f"accuracy {row['accuracy']:.4f}/{row['val_accuracy']:.4f}  iou {row['iou']:.4f}/{row['val_iou']:.4f}  "
            f"dice {row['dice']:.4f}/{row['val_dice']:.4f}  lr {row['learning_rate']:.2e}  {row['seconds']:.1f} s")


def _fresh_state(settings: Settings, identity: dict) -> dict:
    return {"epoch": 0, "history": [], "run_id": None, "elapsed_s": 0.0, "identity": identity,
            "fingerprint": checkpoint.fingerprint(identity), "resumed_after": [],
            "early_stopping": asdict(EarlyStopping(settings.patience))}


def _model_and_state(model_name, input_shape, settings, identity, checkpoint_dir: Path, steps_per_epoch: int = 1):
    """A fresh compiled model and loop state, or the model, optimizer, loop state and best weights of the
    last checkpoint (best weights: None when fresh)."""
    resumed = checkpoint.latest(checkpoint_dir, identity)
    with placement.distribution_scope():
        if not resumed:
            return (build_compiled(model_name, input_shape, settings, steps_per_epoch),
                    _fresh_state(settings, identity), None)
        folder, state = resumed
        log.info("resuming from %s after epoch %d", folder, state["epoch"])
        model = keras.models.load_model(folder / "model.keras", compile=True)
    state["resumed_after"].append(state["epoch"])
    return model, state, checkpoint.load_best(folder)


def _open_tracker(info: Tracking, model_name: str, seed: int, run_id: str | None, fingerprint: str,
                  checkpoint_dir: Path) -> tracking.RunTracker:
    """The run of the checkpoint's run id or, before the first checkpoint, of an earlier attempt of this job
    with the same identity, found by its tags (`tracking.RunTracker.open`); else a new run."""
    if not info.uri:
        return tracking.disabled("no tracking URI configured")
    tags = tracking.default_tags(info.dataset, model_name, seed, rule=info.rule, recipe=info.recipe)
    name = tracking.run_name(info.dataset, model_name, seed, recipe=info.recipe)
    return tracking.RunTracker.open(info.uri, info.experiment, name, run_id=run_id, tags=tags,
                                    job_tags={"checkpoint_dir": os.fspath(checkpoint_dir.resolve())},
                                    attempt_tags={"run_identity": fingerprint})


def _callbacks(model, settings: Settings) -> list:
    if not settings.freeze_encoder_epochs:
        return []
    if models.find_encoder(model) is None:
        log.info("%s has no pretrained encoder: freeze_encoder_epochs does not apply", model.name)
        return []
    return [models.EncoderWarmup(settings.freeze_encoder_epochs)]


def _epoch(model, data, settings: Settings, seed: int, epoch: int, parallel: Parallel | None = None) -> dict:
    """Train one epoch, validate, and return the history row."""
    start = time.monotonic()
    parallel = parallel or Parallel(batch_size=settings.batch_size)
    rng.reseed_epoch(model, seed, epoch)  # dropout and stochastic depth draw the same after a resume
    (train_images, train_masks), (val_images, val_masks) = data[:2]
    crop = tuple(data[2][:2]) if len(data) > 2 else None  # native_crops: the same validation crops every epoch
    batches = dataset.make_dataset(train_images, train_masks, parallel.batch_size, seed=seed, epoch=epoch,
                                   augment=settings.augment, crop_size=crop, multiple_of=parallel.replicas)
    fit_logs = model.fit(batches, initial_epoch=epoch - 1, epochs=epoch, verbose=0, shuffle=False,
                         callbacks=_callbacks(model, settings)).history
    validator = model
    if parallel.replicas > 1:
        placement.average_replicas(model)  # before validation and the checkpoint: every replica the same
        if parallel.validator is None:
            parallel.validator = placement.single_device_copy(
                model, loss=instances.training_loss(settings.loss, settings.instances), metrics=losses.make_metrics())
        validator = parallel.validator
        validator.set_weights(model.get_weights())
    with placement.single_device():
        val_logs = validator.evaluate(dataset.make_dataset(val_images, val_masks, settings.batch_size, shuffle=False,
                                                           crop_size=crop),
                                      verbose=0, return_dict=True)
    return {"epoch": epoch, **{k: float(fit_logs[k][-1]) for k in METRICS},
            **{f"val_{k}": float(val_logs[k]) for k in METRICS},
            "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
            "seconds": time.monotonic() - start}


def train(prepared: PreparedData, model_name: str, seed: int, settings: Settings, outputs: Outputs,
          tracking_info: Tracking | None = None, threads: int | None = None, code_version: str | None = None,
          device: str = "auto", checkpoint_every_s: float = 0.0) -> dict:
    """Train one data set x model x seed; resume from the checkpoint if an earlier attempt was killed.

    `code_version` (a hash of the code that builds and trains the model) joins the checkpoint identity.
    `device` (config key train.device): "gpu" fails here if the Keras backend sees no GPU, "auto" too
    if the job was given GPU(s) the backend cannot use (placement.require_device).
    `checkpoint_every_s` (train.checkpoint_every_s): 0 checkpoints after every epoch; more, after the
    first epoch that ends that long after the last checkpoint, and after the last epoch. Epochs reach
    MLflow when they are checkpointed, so a resumed job logs each epoch once; an attempt killed before its
    first checkpoint leaves its MLflow run to the next attempt (one run per identity; `_open_tracker`).
    """
    start = time.monotonic()
    runtime.limit_threads(threads)
    placement.require_device(device)
    replicas = placement.replicas()  # before the backend starts (CPU stand-ins split the CPU)
    checkpoint_dir = Path(outputs.checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    attempts_log = logs.keep_across_attempts(checkpoint_dir / "attempts.log")
    log.info("training %s, seed %d (process %d)", model_name, seed, os.getpid())
    for path in remove_paths(outputs.stale):
        log.info("removed %s (made from an earlier model)", path)
    keras.utils.set_random_seed(seed)
    data = load_data(prepared, settings)
    data = instances.add_targets(data, prepared, settings.instances)  # a boundary channel, if asked
    mixed = use_mixed_precision(settings.mixed_precision)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    identity = run_identity(model_name, seed, settings, prepared, data, code_version)
    parallel = parallel_plan(settings, replicas, len(data[0][0]))
    model, state, best_weights = _model_and_state(
        model_name, tuple(input_shape(data)[:2]) + (3,), settings, identity, checkpoint_dir,
        steps_per_epoch=-(-(len(data[0][0]) - len(data[0][0]) % replicas) // parallel.batch_size))
    stopper = EarlyStopping(**state["early_stopping"])
    with _open_tracker(tracking_info or Tracking(), model_name, seed, state["run_id"], state["fingerprint"],
                       checkpoint_dir) as tracker:
        if state["run_id"] is None:
            state["flops"] = runtime.count_flops(model)
            tracker.log_params({"model": model_name, "seed": seed, **asdict(settings),
                                "input_shape": list(input_shape(data)), "parameters": model.count_params(),
                                "flops": state["flops"], "train_images": len(data[0][0]),
                                "val_images": len(data[1][0])})
        state["run_id"] = tracker.run_id
        log_untracked_epochs(tracker, state["history"])
        elapsed_before = state["elapsed_s"]
        unsaved, last_saved = [], time.monotonic()  # epochs since the last checkpoint
        while state["epoch"] < settings.max_epochs and not stopper.should_stop:
            row = _epoch(model, data, settings, seed, state["epoch"] + 1, parallel)
            state["history"].append(row)
            if stopper.update(row["epoch"], row["val_loss"]):
                best_weights = model.get_weights()  # in memory: written with the next checkpoint
            log.info(_epoch_line(row["epoch"], settings.max_epochs, row))
            state.update(epoch=row["epoch"], early_stopping=asdict(stopper),
                         elapsed_s=elapsed_before + time.monotonic() - start)
            unsaved.append(row)
            last = state["epoch"] >= settings.max_epochs or stopper.should_stop
            if last or time.monotonic() - last_saved >= checkpoint_every_s:
                checkpoint.save(checkpoint_dir, model, best_weights, state)
                last_saved = time.monotonic()
                for saved in unsaved:  # after the checkpoint: each epoch logged once
                    tracker.log_metrics(epoch_metrics(saved), step=saved["epoch"])
                unsaved.clear()
        if best_weights is None:
            raise EffunetError(f"{model_name} on {prepared.manifest}: the validation loss was never finite "
                               "(training diverged); try a lower learning rate")
        model.set_weights(best_weights)
        summary = summary_of(model, state, stopper, mixed, elapsed_before + time.monotonic() - start,
                           loss=settings.loss, train_images=len(data[0][0]))
        # The resolved settings, for the steps after training (evaluation reads what it needs here).
        summary.update(recipe=(tracking_info or Tracking()).recipe, settings=asdict(settings))
        summary["instances"] = settings.instances  # evaluation decodes a boundary channel by watershed
        write_outputs(model, state["history"], summary, outputs)
        track_outcome(tracker, summary, outputs)
    logs.stop_keeping(attempts_log)
    checkpoint.remove(checkpoint_dir)
    log.info("done: %d epochs, best epoch %d (val_loss %.4f), stopped by %s, %.1f s", summary["epochs_trained"],
             summary["best_epoch"], summary["best_val_loss"], summary["stop_reason"], summary["wall_seconds"])
    return summary


