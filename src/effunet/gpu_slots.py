"""GPU slots: the lock files through which the jobs on a host share its GPUs (`effunet.devices`).

Each GPU has `jobs_per_gpu` slots, each a lock file in the host's slot folder (`slot_folder`:
``<temp dir>/effunet-gpu-slots/<host>/``, or ``$EFFUNET_GPU_SLOTS/<host>/``; inside a SLURM job
``.../slurm-<job id>/``). A job locks free slot numbers first with ``fcntl.flock`` (`lease`,
`try_lease`), so jobs spread evenly over the GPUs; the kernel releases a lock when its process ends.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import tempfile
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from effunet.errors import EffunetError

log = logging.getLogger(__name__)
SLOTS_VARIABLE = "EFFUNET_GPU_SLOTS"  # the slot folder's root, in place of <temp dir>/effunet-gpu-slots


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


def keep(placement: Placement) -> Placement:
    _held.append(placement)
    return placement


def shared_folder(folder: Path) -> Path:
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


def lease(device, gpus, jobs_per_gpu, gpus_per_job, folder: Path, poll_seconds, timeout) -> Placement:
    shared_folder(folder)
    start, waiting_logged = time.monotonic(), False
    while True:
        placement = try_lease(device, gpus, jobs_per_gpu, gpus_per_job, folder)
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


def open_slot(path: Path) -> tuple[int, bool]:
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


def try_lease(device, gpus, jobs_per_gpu, gpus_per_job, folder: Path) -> Placement | None:
    """Lock slot 0 of each GPU first, then slot 1, ...: the least-used GPUs go first."""
    placement = Placement(device, [], how=f"slot lease in {folder}")
    for slot in range(jobs_per_gpu):
        for gpu in gpus:
            if gpu in placement.gpus:
                continue
            path = folder / f"gpu{gpu.replace('/', '_')}.slot{slot}.lock"
            fd, writable = open_slot(path)
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
