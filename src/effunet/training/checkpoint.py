"""Per-epoch checkpoints that survive SIGKILL: each is a complete folder, published by renaming.

    checkpoint/epoch-0007/model.keras     weights and optimizer state after epoch 7
    checkpoint/epoch-0007/best.weights.npz the best weights so far (early stopping keeps them), in the
                                          order of `model.get_weights()`
    checkpoint/epoch-0007/state.json      epoch, early-stopping state, history, MLflow run id, identity
    checkpoint/latest                     the name of the newest complete folder, replaced atomically
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from effunet.files import write_text_atomic

log = logging.getLogger(__name__)
BEST = "best.weights.npz"


def save(checkpoint_dir: str | os.PathLike, model: keras.Model, best_weights: list[np.ndarray] | None,
         state: dict) -> Path:
    """Publish the model and optimizer state, the best weights so far (held in memory by the training
    loop, so an improving epoch writes nothing) and the loop state as `epoch-NNNN`."""
    checkpoint_dir = Path(checkpoint_dir)
    name = f"epoch-{state['epoch']:04d}"
    staging = checkpoint_dir / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save(staging / "model.keras")
    if best_weights is not None:
        np.savez(staging / BEST, *best_weights)
    (staging / "state.json").write_text(json.dumps(state, indent=1))
    final = checkpoint_dir / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    write_text_atomic(checkpoint_dir / "latest", name)
    for old in checkpoint_dir.glob("epoch-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_best(folder: Path) -> list[np.ndarray] | None:
    """The best weights a checkpoint folder holds (None if no epoch had a finite validation loss)."""
    if not (folder / BEST).exists():
        return None
    with np.load(folder / BEST) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def fingerprint(identity: dict) -> str:
    """A hash of everything a checkpoint was trained with (model, seed, settings, data, shape, code)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def differences(made_with: dict | None, wanted: dict) -> list[str]:
    """The identity components (e.g. `code`, `input_shape`) in which a checkpoint differs."""
    if not isinstance(made_with, dict):
        return ["identity (checkpoint from an older version)"]
    return sorted(key for key in set(made_with) | set(wanted) if made_with.get(key) != wanted.get(key))


def latest(checkpoint_dir: str | os.PathLike, identity: dict) -> tuple[Path, dict] | None:
    """The newest complete checkpoint made with the same identity, or None (the log says why)."""
    pointer = Path(checkpoint_dir) / "latest"
    if not pointer.exists():
        return None
    folder = Path(checkpoint_dir) / pointer.read_text().strip()
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        log.warning("checkpoint %s is unreadable; starting over", folder)
        return None
    if state.get("fingerprint") != fingerprint(identity):
        changed = differences(state.get("identity"), identity)
        log.info("checkpoint %s was made with another %s; starting over", folder, ", ".join(changed) or "fingerprint")
        return None
    return folder, state


def remove(checkpoint_dir: str | os.PathLike) -> None:
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
