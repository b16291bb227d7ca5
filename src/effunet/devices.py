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
- Each GPU has `jobs_per_gpu` slots, each a lock file in the host's slot folder (`slot_folder`:
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
(GPUs hidden). Once the backend has started, `effunet.models.runtime.require_device` checks that it
can use the GPUs the job was given.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from effunet.errors import ConfigError, EffunetError

log = logging.getLogger(__name__)

DEVICES = ("auto", "gpu", "cpu")
BACKENDS = ("tensorflow", "jax", "torch")
SLOTS_VARIABLE = "EFFUNET_GPU_SLOTS"  # the slot folder's root, in place of <temp dir>/effunet-gpu-slots
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


def slot_folder(root: str | os.PathLike | None = None, env: MutableMapping[str, str] = os.environ) -> Path:
    """This host's GPU slot folder: ``<root>/<host>/`` (``.../slurm-<job id>/`` inside a SLURM job).

    `root` defaults to ``$EFFUNET_GPU_SLOTS``, else ``<temp dir>/effunet-gpu-slots`` (the system's
    temporary folder, ``$TMPDIR`` or /tmp): one folder per host whatever the working folder.
    """
    if root is None:
        root = env.get(SLOTS_VARIABLE) or Path(tempfile.gettempdir()) / "effunet-gpu-slots"
    folder = Path(root) / socket.gethostname()
    if env.get("SLURM_JOB_ID"):
        folder = folder / f"slurm-{env['SLURM_JOB_ID']}"
    return folder


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
            os.close(handle)
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
        return _keep(Placement("cpu", [], how="GPUs hidden (train.device: cpu)"))
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
        return _keep(Placement(device, [], how=where))
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
    folder = slot_folder(slot_dir, env)
    if cpu_when_taken:
        placement = _try_lease(device, gpus, jobs_per_gpu, gpus_per_job, _shared_folder(folder))
        if placement is None:
            log.warning("every GPU slot in %s is taken: running on the CPU", folder)
            env["CUDA_VISIBLE_DEVICES"] = ""
            return _keep(Placement(device, [], how=f"every GPU slot in {folder} taken"))
    else:
        placement = _lease(device, gpus, jobs_per_gpu, gpus_per_job, folder, poll_seconds, timeout)
    if in_slurm_allocation(env):
        placement.how += f" (SLURM job {env['SLURM_JOB_ID']}'s GPUs {','.join(gpus)})"
    env["CUDA_VISIBLE_DEVICES"] = ",".join(placement.gpus)
    log.info("GPU(s) %s (%s)", ",".join(placement.gpus), placement.how)
    return _keep(placement)


def _keep(placement: Placement) -> Placement:
    _held.append(placement)
    return placement


def _shared_folder(folder: Path) -> Path:
    """Make `folder` and its parents, those made here writable by every user (sticky, like /tmp):
    the jobs of other users on the host take their slots in the same folder."""
    missing = []
    path = folder
    while not path.exists():
        missing.append(path)
        path = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    for path in missing:
        try:
            path.chmod(0o1777)
        except OSError:
            pass
    return folder


def _lease(device, gpus, jobs_per_gpu, gpus_per_job, folder: Path, poll_seconds, timeout) -> Placement:
    _shared_folder(folder)
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


def _open_slot(path: Path) -> tuple[int, bool]:
    """A descriptor of the slot's lock file, and whether it is writable (another user's may not be)."""
    while True:
        try:
            return os.open(path, os.O_RDWR), True
        except FileNotFoundError:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue  # another job made it first
            try:
                os.fchmod(fd, 0o666)  # whatever the umask: every user's jobs lock the same file
            except OSError:
                pass
            return fd, True
        except PermissionError:
            return os.open(path, os.O_RDONLY), False  # flock needs no write access


def _try_lease(device, gpus, jobs_per_gpu, gpus_per_job, folder: Path) -> Placement | None:
    """Lock slot 0 of each GPU first, then slot 1, ...: the least-used GPUs go first."""
    placement = Placement(device, [], how=f"slot lease in {folder}")
    for slot in range(jobs_per_gpu):
        for gpu in gpus:
            if gpu in placement.gpus:
                continue
            path = folder / f"gpu{gpu.replace('/', '_')}.slot{slot}.lock"
            fd, writable = _open_slot(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if writable:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
            placement.gpus.append(gpu)
            placement.slots.append(path)
            placement._handles.append(fd)
            if len(placement.gpus) == gpus_per_job:
                return placement
    placement.release()
    return None


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
