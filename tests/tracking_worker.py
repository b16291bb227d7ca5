"""A stand-in training job for tests/test_tracking.py: logs one run the way the training loop will.

`run_job` is the target of the test's worker processes; by hand:

    python tests/tracking_worker.py URI EXPERIMENT INDEX WORKDIR [--epochs N] [--go FILE] [--hold FILE]

A job writes WORKDIR/ready-INDEX, waits for the `go` file (so all jobs hit the store together),
opens a run, logs params, `epochs` epochs of metrics (value = expected_value(index, epoch, key)),
one artifact, finishes, and writes its run id to WORKDIR/run-INDEX.txt. Its log goes to
WORKDIR/job-INDEX.log. Exit code 3: tracking was disabled at open; 4: disabled mid-run. With
`hold`, the job writes its run id to that file after the epochs and waits (up to 120 s) inside the
run, to be signalled.
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


def run_job(uri: str, experiment: str, index: int, workdir: Path, epochs: int = 20,
            go: Path | None = None, hold: Path | None = None) -> None:
    workdir = Path(workdir)
    logging.basicConfig(level=logging.INFO, filename=workdir / f"job-{index}.log", force=True,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    (workdir / f"ready-{index}").touch()
    deadline = time.monotonic() + 120
    while go is not None and not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.01)

    history = workdir / f"history-{index}.csv"
    history.write_text("epoch," + ",".join(METRICS) + "\n")
    tags = tracking.default_tags("synthetic", f"model{index}", index, rule="train")
    name = tracking.run_name("synthetic", f"model{index}", index)
    with tracking.RunTracker.open(uri, experiment, name, tags=tags) as tracker:
        if not tracker.enabled:
            sys.exit(3)
        tracker.log_params({"index": index, "train": {"batch_size": 4, "lr": 0.001}})
        for epoch in range(epochs):
            values = {key: expected_value(index, epoch, key) for key in METRICS}
            tracker.log_metrics(values, step=epoch)
            with history.open("a") as out:
                out.write(f"{epoch}," + ",".join(str(values[k]) for k in METRICS) + "\n")
        if hold is not None:
            Path(hold).write_text(tracker.run_id)
            time.sleep(120)
        tracker.log_artifact(history)
        if not tracker.enabled:  # the store failed mid-run
            sys.exit(4)
    (workdir / f"run-{index}.txt").write_text(tracker.run_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("experiment")
    parser.add_argument("index", type=int)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--go", type=Path)
    parser.add_argument("--hold", type=Path)
    args = parser.parse_args(argv)
    run_job(args.uri, args.experiment, args.index, args.workdir, args.epochs, args.go, args.hold)


if __name__ == "__main__":
    main()
