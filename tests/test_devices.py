"""GPU placement before the framework starts: slot leases between real processes on simulated GPUs."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from effunet import devices
from effunet.errors import ConfigError, EffunetError

# A job as the train script runs it: take a slot, report what it got, hold it until told to stop.
JOB = """
import json, os, sys, time
from effunet import devices
placement = devices.place_job("auto", jobs_per_gpu=int(sys.argv[2]), slot_dir=sys.argv[1], poll_seconds=0.05)
print(json.dumps({"pid": os.getpid(), "visible": os.environ["CUDA_VISIBLE_DEVICES"],
                  "growth": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH")}), flush=True)
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
"""


def start_job(tmp_path: Path, jobs_per_gpu: int, visible: str = "0,1") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["CUDA_VISIBLE_DEVICES"] = visible  # the simulated machine: two GPUs
    return subprocess.Popen(
        [sys.executable, "-c", JOB, str(tmp_path / "slots"), str(jobs_per_gpu), str(tmp_path / "stop")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def first_line(job: subprocess.Popen, timeout: float = 60) -> dict:
    """The job's report (blocks until it has a slot)."""
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(job.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        raise TimeoutError("the job got no slot")
    return json.loads(job.stdout.readline())


def test_four_jobs_on_two_gpus_share_them_evenly_and_a_killed_job_frees_its_slot(tmp_path):
    jobs = [start_job(tmp_path, jobs_per_gpu=2) for _ in range(4)]
    try:
        reports = [first_line(job) for job in jobs]
        assert collections.Counter(r["visible"] for r in reports) == {"0": 2, "1": 2}
        assert all(r["growth"] == "true" for r in reports)  # jobs that share a GPU allocate as they go
        waiting = start_job(tmp_path, jobs_per_gpu=2)  # a fifth job: every slot is taken
        with pytest.raises(TimeoutError):
            first_line(waiting, timeout=1.5)
        victim = next(job for job, r in zip(jobs, reports) if r["visible"] == "1")
        os.kill(victim.pid, signal.SIGKILL)  # killed, not ended: the kernel drops its lock
        assert first_line(waiting)["visible"] == "1"
        jobs.append(waiting)
    finally:
        (tmp_path / "stop").touch()
        for job in jobs:
            job.wait(timeout=30)


def test_one_job_per_gpu_by_default_and_only_the_gpus_listed(tmp_path):
    listed = {"CUDA_VISIBLE_DEVICES": "2,3"}  # e.g. set by the user for the whole run
    env = dict(listed)
    first = devices.place_job("auto", slot_dir=tmp_path, env=env)
    second = devices.place_job("auto", slot_dir=tmp_path, env=dict(listed))
    with pytest.raises(EffunetError, match="no free GPU slot"):
        devices.place_job("auto", slot_dir=tmp_path, env=dict(listed), timeout=0.2, poll_seconds=0.05)
    assert (first.gpus, second.gpus, env["CUDA_VISIBLE_DEVICES"]) == (["2"], ["3"], "2")
    assert "TF_FORCE_GPU_ALLOW_GROWTH" not in env  # a job alone on its GPU keeps TF's default
    first.release()
    assert devices.place_job("auto", slot_dir=tmp_path, env=dict(listed), timeout=5).gpus == ["2"]


def test_gpus_come_from_the_driver_when_nothing_is_listed(tmp_path):
    env: dict[str, str] = {}
    placement = devices.place_job("gpu", slot_dir=tmp_path, env=env, probe=lambda: ["0", "1", "2"])
    assert placement.gpus == ["0"] and env["CUDA_VISIBLE_DEVICES"] == "0"


def test_several_gpus_only_when_asked_for(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2"}
    placement = devices.place_job("auto", gpus_per_job=2, slot_dir=tmp_path, env=env)
    assert sorted(placement.gpus) == ["0", "1"] and env["CUDA_VISIBLE_DEVICES"] == "0,1"
    with pytest.raises(ConfigError, match="gpus_per_job"):
        devices.place_job("auto", gpus_per_job=4, slot_dir=tmp_path, env={"CUDA_VISIBLE_DEVICES": "0,1,2"})


def test_a_slurm_allocation_is_kept_as_slurm_gave_it(tmp_path):
    env = {"SLURM_JOB_ID": "42", "CUDA_VISIBLE_DEVICES": "0"}  # SLURM numbers a job's GPUs from 0
    for _ in range(3):  # two jobs on one node both see "0": no lock may make them wait
        assert devices.place_job("gpu", slot_dir=tmp_path, env=env).gpus == ["0"]
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and not any(tmp_path.iterdir())


def test_gpu_without_a_gpu_fails_at_start_and_auto_falls_back(tmp_path, caplog):
    with pytest.raises(EffunetError, match="train.device is 'gpu' but no GPU is visible"):
        devices.place_job("gpu", slot_dir=tmp_path, env={}, probe=lambda: [])
    with pytest.raises(EffunetError, match="no GPU is visible"):
        devices.place_job("gpu", slot_dir=tmp_path, env={"CUDA_VISIBLE_DEVICES": "-1"})
    assert devices.place_job("auto", slot_dir=tmp_path, env={}, probe=lambda: []).gpus == []
    assert "training on the CPU" in caplog.text
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert devices.place_job("cpu", slot_dir=tmp_path, env=env).gpus == [] and env["CUDA_VISIBLE_DEVICES"] == ""
    with pytest.raises(ConfigError, match="train.device"):
        devices.place_job("tpu", env={})


def test_backend_choice_and_errors(monkeypatch):
    import keras

    with monkeypatch.context() as before_keras:  # as in a fresh job: Keras not imported yet
        before_keras.delitem(sys.modules, "keras")
        env = {"KERAS_BACKEND": "jax"}
        assert devices.select_backend(None, env) == "jax"  # the environment's choice stays
        assert devices.select_backend("torch", env) == "torch" and env["KERAS_BACKEND"] == "torch"
        assert devices.select_backend(None, {}) == "tensorflow"

    running = keras.backend.backend()
    assert devices.select_backend(running, env) == running and env["KERAS_BACKEND"] == running
    other = "torch" if running != "torch" else "jax"
    with pytest.raises(EffunetError, match="before Keras is imported"):
        devices.select_backend(other, {})
    with pytest.raises(ConfigError, match="train.backend"):
        devices.select_backend("theano", {})


def test_training_on_gpu_fails_when_tensorflow_sees_none(monkeypatch):
    """The new user's case: the driver lists a GPU, TensorFlow (without '.[gpu]') sees none."""
    from effunet.models import runtime

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(runtime, "gpus", lambda: [])
    with pytest.raises(EffunetError, match=r"given GPU\(s\) 0") as error:
        runtime.require_device("gpu")
    if runtime.backend() == "tensorflow":
        assert ".[gpu]" in str(error.value)
    assert runtime.require_device("auto") == []


def test_placement_keys_are_not_training_settings():
    from effunet import config as config_module

    root = Path(__file__).resolve().parents[1]
    config = config_module.validate(
        {"datasets": {"dsb2018": {}}, "train": {"device": "gpu", "jobs_per_gpu": 2}},
        root / "workflow/schemas/config.schema.yaml",
    )
    assert config["train"]["backend"] is None and config["train"]["gpus_per_job"] == 1
    settings = config_module.train_settings(config, "dsb2018")
    assert not set(settings) & set(config_module.PLACEMENT_KEYS)
    with pytest.raises(ConfigError, match="jobs_per_gpu"):
        config_module.validate(
            {"datasets": {"dsb2018": {}}, "train": {"jobs_per_gpu": 0}}, root / "workflow/schemas/config.schema.yaml"
        )


def test_lock_file_names_the_holder(tmp_path):
    placement = devices.place_job("auto", slot_dir=tmp_path, env={"CUDA_VISIBLE_DEVICES": "0"})
    assert placement.slots[0].read_text().split()[0] == str(os.getpid())


def test_a_job_is_placed_from_the_validated_config(monkeypatch):
    """What the train and evaluate scripts call first, with the config's defaults."""
    from effunet import config as config_module

    root = Path(__file__).resolve().parents[1]
    config = config_module.validate({"datasets": {"dsb2018": {}}}, root / "workflow/schemas/config.schema.yaml")
    import keras

    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())  # restored after the test
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # this machine: no GPU
    assert devices.prepare_job(config["train"], holds_gpu=True).gpus == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    evaluation = devices.prepare_job(config["train"], holds_gpu=False)
    assert evaluation.device == "cpu" and os.environ["CUDA_VISIBLE_DEVICES"] == ""
