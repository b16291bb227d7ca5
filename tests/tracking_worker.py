"""A stand-in training job for tests/test_tracking.py: logs one run the way the training loop will.

    python tests/tracking_worker.py URI EXPERIMENT INDEX WORKDIR [--epochs N] [--go FILE]

Writes WORKDIR/ready-INDEX, waits for the --go file (so all workers hit the store together), then
opens a run, logs params, N epochs of metrics (value = expected_value(index, epoch, key)), one
artifact, finishes, and prints the run id as its last stdout line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from effunet import tracking

METRICS = ("loss", "val_loss", "dice", "val_dice", "iou")


def expected_value(index: int, epoch: int, key: str) -> float:
    return index * 1000 + epoch + METRICS.index(key) / 10


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("experiment")
    parser.add_argument("index", type=int)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--go", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")

    (args.workdir / f"ready-{args.index}").touch()
    deadline = time.monotonic() + 120
    while args.go and not args.go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)

    history = args.workdir / f"history-{args.index}.csv"
    history.write_text("epoch," + ",".join(METRICS) + "\n")
    tags = tracking.default_tags("synthetic", f"model{args.index}", args.index, rule="train")
    name = tracking.run_name("synthetic", f"model{args.index}", args.index)
    with tracking.RunTracker.open(args.uri, args.experiment, name, tags=tags) as tracker:
        if not tracker.enabled:
            sys.exit(3)
        tracker.log_params({"index": args.index, "train": {"batch_size": 4, "lr": 0.001}})
        for epoch in range(args.epochs):
            values = {key: expected_value(args.index, epoch, key) for key in METRICS}
            tracker.log_metrics(values, step=epoch)
            with history.open("a") as out:
                out.write(f"{epoch}," + ",".join(str(values[k]) for k in METRICS) + "\n")
        tracker.log_artifact(history)
        if not tracker.enabled:  # the store failed mid-run
            sys.exit(4)
    print(tracker.run_id)


if __name__ == "__main__":
    main()
