"""Runs one training job in its own process, as the workflow's train script does (used by tests).

    train_worker.py PREPARED OUT MAX_EPOCHS TRACKING_URI [MODEL] [KILL] [CHECKPOINT_EVERY_S]

KILL simulates a SIGKILL at a chosen point: `mid-epoch:N` (after the first batch of epoch N) or
`after-checkpoint:N` (once epoch N's checkpoint is published, before it is logged to MLflow); with a
third part, another signal: `mid-epoch:N:TERM` sends SIGTERM.
"""

import json
import logging
import os
import signal
import sys
from pathlib import Path

import keras

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


def main(prepared_dir: str, out_dir: str, max_epochs: str, tracking_uri: str, model: str = "unet",
         kill: str = "", checkpoint_every_s: str = "0") -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    if kill:
        install_kill(kill)
    out = Path(out_dir)
    settings = loop.Settings(max_epochs=int(max_epochs), patience=50, batch_size=4, encoder_weights="none",
                             model_options=OPTIONS[model])
    summary = loop.train(PreparedData.in_folder(prepared_dir), model, 3, settings,
                         loop.Outputs(out / "model.keras", out / "history.csv", out / "run.json", out / "checkpoint"),
                         loop.Tracking(tracking_uri or None, "resume-test", "dsb2018", "train"), threads=1,
                         checkpoint_every_s=float(checkpoint_every_s))
    print(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:])
