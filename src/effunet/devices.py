"""Which GPU a job uses, decided before TensorFlow, JAX or torch start: one GPU slot per job.

Snakemake counts the `gpu` resource but assigns no device, so without help every job on a
multi-GPU workstation sees (and TensorFlow fills the memory of) every GPU. `place_job` runs in the
job's process before the framework is imported and sets ``CUDA_VISIBLE_DEVICES`` to the job's own
GPU(s):

- The GPUs to share out are the ones ``CUDA_VISIBLE_DEVICES`` lists when it is set (by the user, or
  by SLURM), else the ones ``nvidia-smi -L`` lists.
- Inside a SLURM allocation (``SLURM_JOB_ID`` set and SLURM has set ``CUDA_VISIBLE_DEVICES``) the
  job keeps the GPUs SLURM gave it: they are its own already.
- Elsewhere each GPU has `jobs_per_gpu` slots, each a lock file under
  ``.snakemake/gpu-slots/<host>/``; a job takes `gpus_per_job` slots on as many different GPUs
  with ``fcntl.flock``, free slot numbers first so jobs spread evenly over the GPUs. The kernel
  releases a lock when its process ends, however it ends (a killed job frees its slot). A job
  that finds every slot taken waits for one.
- With `jobs_per_gpu` > 1 the frameworks allocate GPU memory as they need it
  (``TF_FORCE_GPU_ALLOW_GROWTH``, ``XLA_PYTHON_CLIENT_PREALLOCATE=false``) so the jobs fit side by side.

`device` is the config key ``train.device``: ``auto`` (a GPU if there is one, else the CPU with a
warning), ``gpu`` (no visible GPU fails the job at start) or ``cpu`` (GPUs hidden).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from effunet.errors import ConfigError, EffunetError

log = logging.getLogger(__name__)

DEVICES = ("auto", "gpu", "cpu")
BACKENDS = ("tensorflow", "jax", "torch")
SLOT_DIR = Path(".snakemake") / "gpu-slots"
GPU_INSTALL_HINT = (
    "install TensorFlow's CUDA libraries with `pip install -e '.[gpu]'` and check with "
    "`python -c \"import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))\"`"
)


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


def probe_gpus() -> list[str]:
    """Indices of the GPUs the NVIDIA driver lists (``nvidia-smi -L``); none without the driver."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


def in_slurm_allocation(env: MutableMapping[str, str] = os.environ) -> bool:
    """True inside a SLURM job that SLURM gave GPUs to (it sets CUDA_VISIBLE_DEVICES itself)."""
    return bool(env.get("SLURM_JOB_ID")) and env.get("CUDA_VISIBLE_DEVICES") is not None


@dataclass
class Placement:
    """Where a job runs: its GPUs (``CUDA_VISIBLE_DEVICES`` entries; empty: the CPU) and held slots."""

    device: str
    gpus: list[str]
    slots: list[Path] = field(default_factory=list)
    how: str = ""
    _handles: list = field(default_factory=list, repr=False)

    def release(self) -> None:
        """Give the slots back (ending the process does the same)."""
        for handle in self._handles:
            handle.close()
        self._handles.clear()

    def __enter__(self) -> Placement:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


_held: list[Placement] = []  # keeps the lock files of this process open until it ends


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ConfigError(f"config key train.device: {device!r} is not one of {', '.join(DEVICES)}")
    return device


def place_job(
    device: str = "auto",
    *,
    jobs_per_gpu: int = 1,
    gpus_per_job: int = 1,
    slot_dir: str | os.PathLike = SLOT_DIR,
    env: MutableMapping[str, str] = os.environ,
    probe: Callable[[], list[str]] = probe_gpus,
    poll_seconds: float = 1.0,
    timeout: float | None = None,
) -> Placement:
    """Choose this job's GPU(s) and set ``CUDA_VISIBLE_DEVICES`` in `env`; call before any framework.

    Returns the `Placement`; its slot locks stay held until `release()` or the end of the process.
    """
    check_device(device)
    if jobs_per_gpu < 1 or gpus_per_job < 1:
        raise ConfigError("config keys train.jobs_per_gpu and train.gpus_per_job must be at least 1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        return _keep(Placement("cpu", [], how="GPUs hidden (train.device: cpu)"))
    listed = listed_gpus(env)
    gpus = listed if listed is not None else probe()
    if not gpus:
        where = (
            f"CUDA_VISIBLE_DEVICES is {env.get('CUDA_VISIBLE_DEVICES')!r}"
            if listed is not None
            else "nvidia-smi lists none"
        )
        if device == "gpu":
            raise EffunetError(
                f"config key train.device is 'gpu' but no GPU is visible ({where}); run on a "
                "GPU machine, or set train.device: auto to train on the CPU"
            )
        log.warning("no GPU visible (%s): training on the CPU", where)
        return _keep(Placement(device, [], how=where))
    if jobs_per_gpu > 1:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if in_slurm_allocation(env):
        placement = Placement(device, gpus, how=f"SLURM job {env['SLURM_JOB_ID']}'s GPUs")
    else:
        if gpus_per_job > len(gpus):
            raise ConfigError(
                f"config key train.gpus_per_job is {gpus_per_job} but this machine has "
                f"{len(gpus)} GPU(s) ({', '.join(gpus)})"
            )
        placement = _lease(
            device, gpus, jobs_per_gpu, gpus_per_job, Path(slot_dir) / socket.gethostname(), poll_seconds, timeout
        )
        env["CUDA_VISIBLE_DEVICES"] = ",".join(placement.gpus)
    log.info("GPU(s) %s (%s)", ",".join(placement.gpus), placement.how)
    return _keep(placement)


def _keep(placement: Placement) -> Placement:
    _held.append(placement)
    return placement


def _lease(device, gpus, jobs_per_gpu, gpus_per_job, folder: Path, poll_seconds, timeout) -> Placement:
    folder.mkdir(parents=True, exist_ok=True)
    start, waiting_logged = time.monotonic(), False
    while True:
        placement = _try_lease(device, gpus, jobs_per_gpu, gpus_per_job, folder)
        if placement is not None:
            return placement
        if timeout is not None and time.monotonic() - start > timeout:
            raise EffunetError(f"no free GPU slot in {folder} after {timeout:.0f} s")
        if not waiting_logged:
            log.warning(
                "all %d GPU slots in %s are taken (%d GPUs x train.jobs_per_gpu %d): waiting for one; "
                "--resources gpu= should not exceed GPUs x jobs_per_gpu",
                len(gpus) * jobs_per_gpu,
                folder,
                len(gpus),
                jobs_per_gpu,
            )
            waiting_logged = True
        time.sleep(poll_seconds)


def _try_lease(device, gpus, jobs_per_gpu, gpus_per_job, folder: Path) -> Placement | None:
    """Lock slot 0 of each GPU first, then slot 1, ...: the least-used GPUs go first."""
    placement = Placement(device, [], how=f"slot lease in {folder}")
    for slot in range(jobs_per_gpu):
        for gpu in gpus:
            if gpu in placement.gpus:
                continue
            path = folder / f"gpu{gpu.replace('/', '_')}.slot{slot}.lock"
            handle = open(path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} {socket.gethostname()}\n")
            handle.flush()
            placement.gpus.append(gpu)
            placement.slots.append(path)
            placement._handles.append(handle)
            if len(placement.gpus) == gpus_per_job:
                return placement
    placement.release()
    return None


def select_backend(backend: str | None, env: MutableMapping[str, str] = os.environ) -> str:
    """Set ``KERAS_BACKEND`` from the config key ``train.backend`` before Keras is imported.

    None keeps ``KERAS_BACKEND`` (default tensorflow). Returns the backend the job will use.
    """
    import sys

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
