"""Data-parallel training on CPU devices standing in for two GPUs (issue 24 items 1 and 4).

Each backend runs the training entry point (`effunet.training.loop.train`, through tests/train_worker.py)
in its own processes with ``EFFUNET_CPU_REPLICAS=2``: TensorFlow's `MirroredStrategy` over two logical
CPU devices (XLA asked for as on a GPU), jax's `DataParallel` over two host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``). An odd batch size (5: training batches of 4)
with 9 training images (one left out per epoch) and 3 validation images (fewer than a batch, odd):
killed after epoch 1's checkpoint and resumed in float32, and a mixed-precision run. The validation
loss and metrics equal those of the saved model evaluated on one device, and on TensorFlow every
replica holds the same batch-norm statistics at each checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import prepare_synthetic_dsb2018


HERE = Path(__file__).parent
BATCH = 5  # odd: rounded down to 4, two images a replica
METRICS = ("loss", "accuracy", "iou", "dice")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    folder = prepare_synthetic_dsb2018(
        tmp_path_factory.mktemp("replicas"), n_images=13, seed=5, test_fraction=0.1, val_fraction=0.25
    )
    counts = pd.read_csv(folder / "manifest.csv")["split"].value_counts()
    assert (counts["train"], counts["val"]) == (9, 3)  # odd counts; fewer validation images than a batch
    return folder


def run_worker(backend: str, prepared: Path, out: Path, epochs: int, kill: str = "", mixed: str = "off"):
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "CUDA_VISIBLE_DEVICES": "",
        "EFFUNET_CPU_REPLICAS": "2",
        "WORKER_BATCH_SIZE": str(BATCH),
        "WORKER_MIXED_PRECISION": mixed,
        "WORKER_AS_ON_GPU": "1" if backend == "tensorflow" else "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if backend == "jax":
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    result = subprocess.run(
        [sys.executable, str(HERE / "train_worker.py"), str(prepared), str(out), str(epochs), "", "unet", kill],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    return result.returncode, result.stdout


def lines(log: str, prefix: str) -> list[dict]:
    return [json.loads(line[len(prefix) :]) for line in log.splitlines() if line.startswith(prefix)]


def check_validation(out: Path, log: str, rel: float) -> None:
    """The history's validation row of the saved (best) epoch equals the saved model evaluated on one
    device over all validation images."""
    (reference,) = lines(log, "reference ")
    summary = json.loads((out / "run.json").read_text())
    row = pd.read_csv(out / "history.csv").set_index("epoch").loc[summary["best_epoch"]]
    for metric in METRICS:
        assert row[f"val_{metric}"] == pytest.approx(reference[metric], rel=rel, abs=rel), metric


def check_replicas(backend: str, log: str, epochs: list[int]) -> None:
    assert "training on 2 logical CPU devices standing in for GPUs" in log
    assert "training batches of 4 (2 per replica)" in log
    assert "leaves out the last 1 of its 9 shuffled training images" in log
    reports = lines(log, "replica spread ")
    assert [report["epoch"] for report in reports] == epochs
    if backend == "tensorflow":  # per-replica copies (jax's DataParallel keeps one global copy)
        assert all(report["variables"] > 0 and report["spread"] == 0.0 for report in reports), reports


BACKENDS = [
    pytest.param("tensorflow"),
    pytest.param(
        "jax",
        marks=pytest.mark.skipif(
            not __import__("importlib").util.find_spec("jax"), reason="jax not installed (the test extra has it)"
        ),
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_replicas_train_validate_resume_and_save_with_odd_batches(backend, prepared, tmp_path):
    out = tmp_path / "killed"
    code, log = run_worker(backend, prepared, out, 2, kill="after-checkpoint:1")
    assert code == -signal.SIGKILL, log[-3000:]
    check_replicas(backend, log, [1])
    code, log = run_worker(backend, prepared, out, 2)
    assert code == 0, log[-3000:]
    assert "resuming from" in log
    check_replicas(backend, log, [2])
    summary = json.loads((out / "run.json").read_text())
    assert summary["epochs_trained"] == 2 and summary["resumed_after_epochs"] == [1]
    assert not summary["mixed_precision"]
    check_validation(out, log, rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_replicas_train_in_mixed_precision(backend, prepared, tmp_path):
    code, log = run_worker(backend, prepared, tmp_path, 1, mixed="on")
    assert code == 0, log[-3000:]
    check_replicas(backend, log, [1])
    assert json.loads((tmp_path / "run.json").read_text())["mixed_precision"]
    check_validation(tmp_path, log, rel=1e-4)
