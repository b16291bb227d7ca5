"""GPU placement before the framework starts: slot leases between real processes on simulated GPUs."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from effunet import devices
from effunet.errors import ConfigError, EffunetError

ROOT = Path(__file__).resolve().parents[1]

# A job as the train script runs it: take a slot, report what it got, hold it until told to stop. The
# slot folder is the default one (the host's, under the temp dir or EFFUNET_GPU_SLOTS), as in a real job.
JOB = """
import json, os, sys, time
from effunet import devices
placement = devices.place_job("auto", jobs_per_gpu=int(sys.argv[1]), poll_seconds=0.05)
print(json.dumps({"pid": os.getpid(), "visible": os.environ["CUDA_VISIBLE_DEVICES"],
                  "growth": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH")}), flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
"""


def start_job(
    tmp_path: Path, jobs_per_gpu: int = 1, visible: str | None = "0,1", cwd: Path | None = None, **extra: str
) -> subprocess.Popen:
    """A job on a simulated machine: two GPUs (CUDA_VISIBLE_DEVICES), slots under tmp_path/slots."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "CUDA_VISIBLE_DEVICES"}
    env.update({devices.SLOTS_VARIABLE: str(tmp_path / "slots"), "PYTHONPATH": str(ROOT / "src"), **extra})
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return subprocess.Popen(
        [sys.executable, "-c", JOB, str(jobs_per_gpu), str(tmp_path / "stop")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
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
        stop_all(tmp_path, jobs)


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


def stop_all(tmp_path: Path, jobs: list[subprocess.Popen]) -> None:
    (tmp_path / "stop").touch()
    for job in jobs:
        job.wait(timeout=30)


def test_an_interactive_slurm_allocation_is_leased_like_a_workstation(tmp_path):
    """Issue 24: SLURM_JOB_ID and CUDA_VISIBLE_DEVICES=0,1,2,3, local executor: one job per GPU, not
    every job on all four; another allocation on the node (numbering its own GPU 0) never waits."""
    allocation = {"SLURM_JOB_ID": "42", "visible": "0,1,2,3"}
    jobs = [start_job(tmp_path, **allocation) for _ in range(4)]
    try:
        assert sorted(first_line(job)["visible"] for job in jobs) == ["0", "1", "2", "3"]
        jobs.append(start_job(tmp_path, **allocation))  # a fifth job of the allocation waits for a GPU
        with pytest.raises(TimeoutError):
            first_line(jobs[-1], timeout=1.5)
        jobs.append(start_job(tmp_path, SLURM_JOB_ID="43", visible="0"))
        assert first_line(jobs[-1])["visible"] == "0"
    finally:
        stop_all(tmp_path, jobs)
    host = tmp_path / "slots" / socket.gethostname()
    assert sorted(p.name for p in host.iterdir()) == ["slurm-42", "slurm-43"]


def test_two_workflows_in_different_folders_share_the_hosts_slots(tmp_path):
    """The slot folder is the host's (the system temp dir), not the working folder's."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    temp = {"TMPDIR": str(tmp_path / "tmp"), devices.SLOTS_VARIABLE: ""}  # the default folder, in a private temp dir
    (tmp_path / "tmp").mkdir()
    first = start_job(tmp_path, visible="0", cwd=tmp_path / "a", **temp)
    jobs = [first]
    try:
        assert first_line(first)["visible"] == "0"
        jobs.append(start_job(tmp_path, visible="0", cwd=tmp_path / "b", **temp))
        with pytest.raises(TimeoutError):
            first_line(jobs[-1], timeout=1.5)
        os.kill(first.pid, signal.SIGKILL)
        assert first_line(jobs[-1])["visible"] == "0"
    finally:
        stop_all(tmp_path, jobs)
    assert (tmp_path / "tmp" / "effunet-gpu-slots" / socket.gethostname() / "gpu0.slot0.lock").exists()
    assert not any((tmp_path / name / ".snakemake").exists() for name in ("a", "b"))


def test_the_slot_folder_is_the_hosts_and_every_users(tmp_path, monkeypatch):
    monkeypatch.delenv(devices.SLOTS_VARIABLE, raising=False)
    host = socket.gethostname()
    assert devices.slot_folder(env={}) == Path(tempfile.gettempdir()) / "effunet-gpu-slots" / host
    assert devices.slot_folder(env={devices.SLOTS_VARIABLE: str(tmp_path)}) == tmp_path / host
    assert devices.slot_folder(tmp_path, env={"SLURM_JOB_ID": "7"}) == tmp_path / host / "slurm-7"
    placement = devices.place_job("auto", slot_dir=tmp_path / "root", env={"CUDA_VISIBLE_DEVICES": "0"})
    for path in (tmp_path / "root", tmp_path / "root" / host):  # other users' jobs make their files here
        assert path.stat().st_mode & 0o1777 == 0o1777
    assert placement.slots[0].stat().st_mode & 0o666 == 0o666


def fake_nvidia_smi(folder: Path, gpus: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    lines = "".join(f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i:08d})\\n" for i in range(gpus))
    script.write_text(f"#!/bin/sh\nprintf '{lines}'\n")
    script.chmod(0o755)
    return folder


def test_gpus_are_found_with_or_without_nvidia_smi_and_visible_devices_is_always_set(tmp_path, monkeypatch, caplog):
    """Issue 24: without nvidia-smi on the PATH the driver's /proc listing, else the backend's list;
    no GPU at all: CUDA_VISIBLE_DEVICES set empty, so nothing uses a GPU unleased."""
    proc = tmp_path / "proc"
    proc.mkdir()
    monkeypatch.setattr(devices, "PROC_GPUS", proc)
    monkeypatch.setattr(devices, "DRIVER_NODES", ())
    monkeypatch.setenv("PATH", str(fake_nvidia_smi(tmp_path / "bin", 3)))
    env: dict[str, str] = {}
    assert devices.place_job("auto", slot_dir=tmp_path / "s1", env=env).gpus == ["0"]
    assert env == {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert devices.probe_gpus() == ["0", "1", "2"]

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi
    for bus in ("0000:41:00.0", "0000:01:00.0"):
        (proc / bus).mkdir()
    env = {}
    assert devices.place_job("gpu", slot_dir=tmp_path / "s2", gpus_per_job=2, env=env).gpus == ["0", "1"]
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"

    for bus in proc.iterdir():
        bus.rmdir()
    env = {}
    assert devices.place_job("auto", slot_dir=tmp_path / "s3", env=env).gpus == []
    assert env == {"CUDA_VISIBLE_DEVICES": ""} and "training on the CPU" in caplog.text

    node = tmp_path / "nvidiactl"  # a driver without /proc listing (e.g. WSL2): the backend is asked
    node.touch()
    monkeypatch.setattr(devices, "DRIVER_NODES", (node,))
    monkeypatch.setattr(devices, "backend_gpus", lambda backend=None: ["0", "1"])
    env = {}
    assert devices.place_job("auto", slot_dir=tmp_path / "s4", env=env).gpus == ["0"]
    assert env["CUDA_VISIBLE_DEVICES"] == "0"


def test_the_backend_probe_counts_the_gpus_jax_sees():
    out = subprocess.run(
        [sys.executable, "-c", devices.BACKEND_PROBES["jax"]],
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"},
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.split()[-1] == "0", out.stderr[-2000:]
    assert devices.backend_gpus("no-such-backend") == []


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
    """The new user's case: the driver lists a GPU, TensorFlow (without '.[gpu]') sees none: with
    device auto as with gpu, the job fails at start naming the install and train.device: cpu."""
    from effunet import placement
    from effunet.models import runtime

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(runtime, "gpus", lambda: [])
    for device in ("gpu", "auto"):
        with pytest.raises(EffunetError, match=r"given GPU\(s\) 0") as error:
            placement.require_device(device)
        assert "train.device: cpu" in str(error.value)
        if runtime.backend() == "tensorflow":
            assert "pip install -e '.[gpu]'" in str(error.value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU at all: auto trains on the CPU
    assert placement.require_device("auto") == [] and placement.require_device("cpu") == []
    with pytest.raises(EffunetError, match="sees no GPU"):
        placement.require_device("gpu")


def predict_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`effunet predict` on a simulated two-GPU machine (slots under tmp_path/slots)."""
    from PIL import Image

    model, image = tmp_path / "model.keras", tmp_path / "a.png"
    if not model.exists():
        import zipfile

        zipfile.ZipFile(model, "w").close()  # a model file to the first check; loading it fails
        Image.new("RGB", (8, 8)).save(image)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    environ.update(
        {
            "CUDA_VISIBLE_DEVICES": "0,1",
            devices.SLOTS_VARIABLE: str(tmp_path / "slots"),
            "PYTHONPATH": str(ROOT / "src"),
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "effunet.cli", "predict", str(model), str(image), str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )


def test_predict_takes_a_gpu_slot_and_its_device_option(tmp_path):
    """Issue 24: predict leases a GPU like a training job (here GPU 1, GPU 0's slot being held), fails
    at start when the backend cannot use it, runs on the CPU when every slot is taken (auto)."""
    held = devices.place_job("auto", slot_dir=tmp_path / "slots", env={"CUDA_VISIBLE_DEVICES": "0"})
    try:
        leased = predict_cli(tmp_path, KERAS_BACKEND="tensorflow")
        assert leased.returncode == 2, leased.stderr[-2000:]
        assert "GPU(s) 1 (slot lease" in leased.stderr  # memory grows as needed beside a training job
        assert "given GPU(s) 1 but tensorflow cannot use them" in leased.stderr
        assert "pip install -e '.[gpu]'" in leased.stderr and "--device cpu" in leased.stderr
        slot = held.slots[0].with_name("gpu1.slot0.lock")
        assert slot.read_text().split()[0] not in ("", str(os.getpid()))  # predict's own lock

        second = devices.place_job("auto", slot_dir=tmp_path / "slots", env={"CUDA_VISIBLE_DEVICES": "1"})
        busy = predict_cli(tmp_path, "--device", "auto", KERAS_BACKEND="jax")  # every slot taken
        second.release()
        assert busy.returncode == 2 and "every GPU slot" in busy.stderr and "running on the CPU" in busy.stderr
        assert "cannot load model" in busy.stderr, busy.stderr[-2000:]
    finally:
        held.release()
    no_gpu = predict_cli(tmp_path, "--device", "gpu", CUDA_VISIBLE_DEVICES="")
    assert no_gpu.returncode == 2 and "no GPU is visible" in no_gpu.stderr
    assert predict_cli(tmp_path, "--device", "tpu").returncode == 2  # argparse: not a choice


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


def test_the_backend_is_in_a_runs_settings_except_at_its_default(monkeypatch):
    """Issue 24 item 3: switching train.backend reruns the runs it changes (the train rule's params),
    tensorflow (or null without KERAS_BACKEND) leaves the settings of runs made before as they were."""

    from effunet import config as config_module
    from effunet.training.loop import Settings

    schema = ROOT / "workflow/schemas/config.schema.yaml"

    def settings(backend):
        block = {"datasets": {"dsb2018": {}}, "train": {"backend": backend}}
        return config_module.train_settings(config_module.validate(block, schema), "dsb2018")

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    default = settings(None)
    assert "backend" not in default and settings("tensorflow") == default
    assert settings("jax") == {**default, "backend": "jax"} and settings("torch")["backend"] == "torch"
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # what the jobs will run on when train.backend is null
    assert settings(None)["backend"] == "jax" and "backend" not in settings("tensorflow")
    built = Settings.from_params({**settings("jax"), "model_options": {}})  # what the train script builds
    assert built.batch_size == default["batch_size"] and not hasattr(built, "backend")
