"""Which GPU a job uses, decided before TensorFlow, JAX or torch start: one GPU slot per job.

Snakemake counts the `gpu` resource but assigns no device, so without help every job on a
multi-GPU machine sees (and TensorFlow fills the memory of) every GPU. `place_job` runs in the
job's process before the framework is imported and always sets ``CUDA_VISIBLE_DEVICES``: to the
job's own GPU(s), or to nothing when the job runs on the CPU.

- The GPUs to share out are the ones ``CUDA_VISIBLE_DEVICES`` lists when it is set (by the user, or
  by SLURM in an allocation), else the ones the driver lists (`probe_gpus`: ``nvidia-smi -L``, else
  ``/proc/driver/nvidia/gpus``, else, where a driver device node exists, the Keras backend's own
  device list, asked in a subprocess so the job's framework has not started yet). GPUs found this
  way are numbered in PCI bus order (``CUDA_DEVICE_ORDER=PCI_BUS_ID``), as nvidia-smi numbers them.
- Each GPU has `jobs_per_gpu` slots, each a lock file in the host's slot folder (`effunet.gpu_slots.slot_folder`:
  ``<temp dir>/effunet-gpu-slots/<host>/``, or ``$EFFUNET_GPU_SLOTS/<host>/``), shared by every
  workflow and ``effunet predict`` on the host whatever their working folder. A job takes
  `gpus_per_job` slots on as many different GPUs with ``fcntl.flock``, free slot numbers first so
  jobs spread evenly over the GPUs. The kernel releases a lock when its process ends, however it
  ends (a killed job frees its slot). A job that finds every slot taken waits for one.
- Inside a SLURM job (``SLURM_JOB_ID`` set) the slots are those of the job's own allocation
  (``<host>/slurm-<job id>/``): the jobs of an interactive allocation with four GPUs lease them one
  each like a workstation's, and two allocations on one node (each numbering its GPUs from 0) never
  wait for each other.
- With `jobs_per_gpu` > 1 (or `grow_memory`) the frameworks allocate GPU memory as they need it
  (``TF_FORCE_GPU_ALLOW_GROWTH``, ``XLA_PYTHON_CLIENT_PREALLOCATE=false``) so the jobs fit side by side.

`device` is the config key ``train.device`` (``effunet predict --device``): ``auto`` (a GPU if there
is one, else the CPU with a warning), ``gpu`` (no visible GPU fails the job at start) or ``cpu``
(GPUs hidden). Once the backend has started, `effunet.placement.require_device` checks that it
can use the GPUs the job was given.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path

from effunet import gpu_slots
from effunet.errors import ConfigError, EffunetError
from effunet.gpu_slots import SLOTS_VARIABLE, Placement, slot_folder  # noqa: F401 (devices' names for them)

log = logging.getLogger(__name__)

DEVICES = ("auto", "gpu", "cpu")
BACKENDS = ("tensorflow", "jax", "torch")
PROC_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU (its PCI address) while the driver is loaded
DRIVER_NODES = (Path("/dev/nvidiactl"), Path("/dev/dxg"))  # the NVIDIA driver (Linux, WSL2)
GPU_INSTALL_HINT = (
    "install TensorFlow's CUDA libraries with `pip install -e '.[gpu]'` and check with "
    "`python -c \"import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))\"`"
)
BACKEND_INSTALL_HINTS = {
    "tensorflow": GPU_INSTALL_HINT,
    "jax": "install JAX's CUDA build (`pip install -U 'jax[cuda12]'`)",
    "torch": "install a CUDA build of PyTorch (https://pytorch.org/get-started/locally/)",
}
# How each backend counts the GPUs it can use, in a subprocess (`backend_gpus`).
BACKEND_PROBES = {
    "tensorflow": "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))",
    "jax": "import jax\ntry:\n    print(len(jax.devices('gpu')))\nexcept RuntimeError:\n    print(0)",
    "torch": "import torch; print(torch.cuda.device_count())",
}


def listed_gpus(env: MutableMapping[str, str] = os.environ) -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs); None when it is not set."""
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    # CUDA stops at the first invalid entry; "-1" is the common way to hide every GPU.
    valid = []
    for entry in entries:
        if entry.startswith("-"):
            break
        valid.append(entry)
    return valid


def nvidia_smi_gpus() -> list[str]:
    """Indices of the GPUs ``nvidia-smi -L`` lists; none without it."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


def proc_gpus(folder: Path | None = None) -> list[str]:
    """Indices of the GPUs the loaded NVIDIA driver lists in ``/proc/driver/nvidia/gpus`` (PCI order)."""
    folder = PROC_GPUS if folder is None else folder
    try:
        return [str(i) for i, _ in enumerate(sorted(entry for entry in folder.iterdir() if entry.is_dir()))]
    except OSError:
        return []


def driver_gpus() -> list[str]:
    """Indices of the GPUs the NVIDIA driver lists: nvidia-smi's, else /proc's."""
    return nvidia_smi_gpus() or proc_gpus()


def backend_gpus(backend: str | None = None, timeout: float = 180) -> list[str]:
    """Indices of the GPUs the Keras backend can use, counted in a subprocess (the caller's own
    framework must not start before ``CUDA_VISIBLE_DEVICES`` is set); none when it fails."""
    backend = backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
    env = {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        out = subprocess.run(
            [sys.executable, "-c", BACKEND_PROBES[backend]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            env=env,
        ).stdout
        return [str(i) for i in range(int(out.split()[-1]))]
    except (KeyError, OSError, subprocess.SubprocessError, ValueError, IndexError):
        return []


def probe_gpus() -> list[str]:
    """Indices of this machine's GPUs: the driver's list (`driver_gpus`), else, where a driver
    device node exists, the Keras backend's (`backend_gpus`); none on a machine without a GPU."""
    gpus = driver_gpus()
    if not gpus and any(node.exists() for node in DRIVER_NODES):
        gpus = backend_gpus()
    return gpus


def in_slurm_allocation(env: MutableMapping[str, str] = os.environ) -> bool:
    """True inside a SLURM job that SLURM gave GPUs to (it sets CUDA_VISIBLE_DEVICES itself)."""
    return bool(env.get("SLURM_JOB_ID")) and env.get("CUDA_VISIBLE_DEVICES") is not None


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ConfigError(f"config key train.device: {device!r} is not one of {', '.join(DEVICES)}")
    return device


def place_job(
    device: str = "auto",
    *,
    jobs_per_gpu: int = 1,
    gpus_per_job: int = 1,
    slot_dir: str | os.PathLike | None = None,
    env: MutableMapping[str, str] = os.environ,
    probe: Callable[[], list[str]] = probe_gpus,
    poll_seconds: float = 1.0,
    timeout: float | None = None,
    grow_memory: bool = False,
    cpu_when_taken: bool = False,
) -> Placement:
    """Choose this job's GPU(s) and set ``CUDA_VISIBLE_DEVICES`` in `env`; call before any framework.

    `slot_dir` is the slot folder's root (`slot_folder`). `cpu_when_taken`: with every slot taken, run on
    the CPU (``CUDA_VISIBLE_DEVICES`` empty) instead of waiting. Returns the `Placement`; its slot
    locks stay held until `release()` or the end of the process.
    """
    check_device(device)
    if jobs_per_gpu < 1 or gpus_per_job < 1:
        raise ConfigError("config keys train.jobs_per_gpu and train.gpus_per_job must be at least 1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        return gpu_slots.keep(Placement("cpu", [], how="GPUs hidden (train.device: cpu)"))
    listed = listed_gpus(env)
    gpus = listed if listed is not None else probe()
    if not gpus:
        where = (
            f"CUDA_VISIBLE_DEVICES is {env.get('CUDA_VISIBLE_DEVICES')!r}"
            if listed is not None
            else "no GPU found by nvidia-smi, /proc/driver/nvidia/gpus or the backend"
        )
        if device == "gpu":
            raise EffunetError(
                f"config key train.device is 'gpu' but no GPU is visible ({where}); run on a "
                "GPU machine, or set train.device: auto to train on the CPU"
            )
        log.warning("no GPU visible (%s): training on the CPU", where)
        env.setdefault("CUDA_VISIBLE_DEVICES", "")  # a GPU that nothing found is not used unleased
        return gpu_slots.keep(Placement(device, [], how=where))
    if listed is None:
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # the driver's numbering, not CUDA's fastest-first
    if gpus_per_job > len(gpus):
        raise ConfigError(
            f"config key train.gpus_per_job is {gpus_per_job} but this machine has {len(gpus)} GPU(s) "
            f"({', '.join(gpus)})"
        )
    if jobs_per_gpu > 1 or grow_memory:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    folder = gpu_slots.slot_folder(slot_dir, env)
    if cpu_when_taken:
        placement = gpu_slots.try_lease(device, gpus, jobs_per_gpu, gpus_per_job, gpu_slots.shared_folder(folder))
        if placement is None:
            log.warning("every GPU slot in %s is taken: running on the CPU", folder)
            env["CUDA_VISIBLE_DEVICES"] = ""
            return gpu_slots.keep(Placement(device, [], how=f"every GPU slot in {folder} taken"))
    else:
        placement = gpu_slots.lease(device, gpus, jobs_per_gpu, gpus_per_job, folder, poll_seconds, timeout)
    if in_slurm_allocation(env):
        placement.how += f" (SLURM job {env['SLURM_JOB_ID']}'s GPUs {','.join(gpus)})"
    env["CUDA_VISIBLE_DEVICES"] = ",".join(placement.gpus)
    log.info("GPU(s) %s (%s)", ",".join(placement.gpus), placement.how)
    return gpu_slots.keep(placement)


def select_backend(backend: str | None, env: MutableMapping[str, str] = os.environ) -> str:
    """Set ``KERAS_BACKEND`` from the config key ``train.backend`` before Keras is imported.

    None keeps ``KERAS_BACKEND`` (default tensorflow). Returns the backend the job will use.
    """
    chosen = backend or env.get("KERAS_BACKEND") or "tensorflow"
    if chosen not in BACKENDS:
        key = "config key train.backend" if backend else "KERAS_BACKEND"
        raise ConfigError(f"{key}: {chosen!r} is not one of {', '.join(BACKENDS)}")
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != chosen:
        raise EffunetError(
            f"Keras already runs on {sys.modules['keras'].backend.backend()}; the backend "
            f"{chosen!r} must be chosen before Keras is imported"
        )
    env["KERAS_BACKEND"] = chosen
    return chosen


def prepare_job(train_config: dict, holds_gpu: bool = True) -> Placement:
    """Backend and GPU(s) of a workflow job from the config's train block, before Keras starts.

    A job that holds the `gpu` resource (train) gets its slot(s); one that does not (evaluate) runs
    on the CPU, so it never takes memory on a GPU a training job uses.
    """
    select_backend(train_config.get("backend"))
    if not holds_gpu:
        return place_job("cpu")
    return place_job(
        train_config.get("device", "auto"),
        jobs_per_gpu=train_config.get("jobs_per_gpu", 1),
        gpus_per_job=train_config.get("gpus_per_job", 1),
    )


def prepare_predict(device: str = "auto") -> Placement:
    """The GPU of ``effunet predict``, before Keras starts: one slot like a training job's, memory
    allocated as needed; with ``auto`` and every slot taken (training runs) it predicts on the CPU
    rather than wait, with ``gpu`` it waits for a slot."""
    return place_job(device, grow_memory=True, cpu_when_taken=device == "auto")
