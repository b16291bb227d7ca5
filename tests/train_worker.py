"""Runs one training job in its own process, as the workflow's train script does (used by tests).

    train_worker.py PREPARED OUT MAX_EPOCHS TRACKING_URI [MODEL] [KILL] [CHECKPOINT_EVERY_S]

KILL simulates a SIGKILL at a chosen point: `mid-epoch:N` (after the first batch of epoch N) or
`after-checkpoint:N` (once epoch N's checkpoint is published, before it is logged to MLflow); with a
third part, another signal: `mid-epoch:N:TERM` sends SIGTERM.

Data-parallel runs (tests/test_replicas.py, with EFFUNET_CPU_REPLICAS): WORKER_BATCH_SIZE and
WORKER_MIXED_PRECISION set those settings; WORKER_AS_ON_GPU=1 makes the runtime believe it has a GPU
(XLA asked for as on GPUs); each checkpoint prints the replicas' largest batch-norm difference
("replica spread"), and the end the saved model's loss and metrics on the validation images,
evaluated on one device by this script ("reference").
"""

import json
import logging
import os
import signal
import sys
from pathlib import Path

import keras
import numpy as np

from effunet.layout import PreparedData
from effunet.training import checkpoint, loop

# tiny variants of each model (the options their builders accept)
OPTIONS = {"unet": {"base_filters": 4}, "effunet-b0": {"decoder_widths": [8, 8, 8, 8, 8]},
           "resnet50-unet": {"decoder_widths": [8, 8, 8, 8, 8]}}


SIGNAL = [signal.SIGKILL]


def die() -> None:
    logging.getLogger("train_worker").info("killing this process (%s)", SIGNAL[0].name)
    os.kill(os.getpid(), SIGNAL[0])


class KillMidEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.kill_epoch, self.epoch = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.kill_epoch and batch == 0:
            die()


def install_kill(spec: str) -> None:
    where, epoch, *sent = spec.split(":")
    epoch = int(epoch)
    SIGNAL[0] = signal.Signals[f"SIG{sent[0]}"] if sent else signal.SIGKILL
    if where == "mid-epoch":
        callbacks = loop._callbacks
        loop._callbacks = lambda model, settings: [*callbacks(model, settings), KillMidEpoch(epoch)]
    elif where == "after-checkpoint":
        save = checkpoint.save

        def save_then_die(checkpoint_dir, model, best_weights, state):
            folder = save(checkpoint_dir, model, best_weights, state)
            if state["epoch"] == epoch:
                die()
            return folder

        checkpoint.save = save_then_die
    else:
        raise ValueError(f"unknown kill point {spec!r}")


def install_replica_report() -> None:
    """Print, at each checkpoint, how far the replicas' copies of the batch-norm statistics differ."""
    save = checkpoint.save

    def report_then_save(checkpoint_dir, model, best_weights, state):
        spread, copies = 0.0, 0
        for variable in model.non_trainable_variables:
            values = getattr(variable.value, "values", None)  # a MirroredVariable's per-replica copies
            if "moving_" in variable.path and values and len(values) > 1:
                copies += 1
                arrays = [np.asarray(value) for value in values]
                spread = max(spread, max(float(np.abs(a - arrays[0]).max()) for a in arrays))
        print("replica spread " + json.dumps({"epoch": state["epoch"], "spread": spread, "variables": copies}))
        return save(checkpoint_dir, model, best_weights, state)

    checkpoint.save = report_then_save


def reference(model_path: Path, prepared_dir: str, batch_size: int) -> dict:
    """The saved model's validation loss and metrics on one device, as a one-GPU job computes them."""
    from effunet.training import dataset, instances, losses

    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(None)
    model = keras.models.load_model(model_path, compile=False)
    model.compile(loss=instances.training_loss("bce", "none"), metrics=losses.make_metrics())
    images, masks = dataset.load_split(PreparedData.in_folder(prepared_dir), "val")
    return model.evaluate(dataset.make_dataset(images, masks, batch_size, shuffle=False), verbose=0, return_dict=True)


def main(prepared_dir: str, out_dir: str, max_epochs: str, tracking_uri: str, model: str = "unet",
         kill: str = "", checkpoint_every_s: str = "0") -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    if kill:
        install_kill(kill)
    parallel = bool(os.environ.get("EFFUNET_CPU_REPLICAS"))
    if parallel:
        install_replica_report()
    if os.environ.get("WORKER_AS_ON_GPU") == "1":
        from effunet.models import runtime

        runtime.has_gpu = lambda: True
    out = Path(out_dir)
    batch_size = int(os.environ.get("WORKER_BATCH_SIZE", "4"))
    settings = loop.Settings(max_epochs=int(max_epochs), patience=50, batch_size=batch_size, encoder_weights="none",
                             model_options=OPTIONS[model],
                             mixed_precision=os.environ.get("WORKER_MIXED_PRECISION", "auto"))
    summary = loop.train(PreparedData.in_folder(prepared_dir), model, 3, settings,
                         loop.Outputs(out / "model.keras", out / "history.csv", out / "run.json", out / "checkpoint"),
                         loop.Tracking(tracking_uri or None, "resume-test", "dsb2018", "train"), threads=1,
                         checkpoint_every_s=float(checkpoint_every_s))
    if parallel:
        print("reference " + json.dumps(reference(out / "model.keras", prepared_dir, batch_size)))
    print(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:])
