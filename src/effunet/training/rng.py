"""Random state as a pure function of (seed, epoch), so a resumed job draws what an uninterrupted one does.

Keras layers that draw random numbers (Dropout, EfficientNet's stochastic depth) keep their state in
`SeedGenerator` variables that `model.save` does not store. Instead of saving them, every epoch starts
by setting them, and the global Python/NumPy/TensorFlow/Keras generators, from (seed, epoch) alone.
"""

from __future__ import annotations

import random

import keras
import numpy as np

SEED_STATE = "seed_generator_state"  # the variable name of every keras.random.SeedGenerator


def derived_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 31-bit seed for one random stream of one epoch; differs between streams and epochs."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0]) & 0x7FFFFFFF


def seed_states(model: keras.Model) -> list:
    """The model's SeedGenerator state variables, nested models included, in a fixed order."""
    seen, states = set(), []
    for variable in model.variables:
        if variable.name == SEED_STATE and id(variable) not in seen:
            seen.add(id(variable))
            states.append(variable)
    return states


def reseed_epoch(model: keras.Model, seed: int, epoch: int) -> None:
    """Set every random generator the epoch will use from (seed, epoch).

    Python's and NumPy's global generators and the model's SeedGenerators; not TensorFlow's global
    seed (`keras.utils.set_random_seed` sets it too): a new global seed makes TensorFlow trace the
    training step again, every epoch (seconds per epoch for effunet-b0 on a CPU). No op of the
    training step draws from TensorFlow's global seed; the exact-resume tests would show it.
    """
    random.seed(derived_seed(seed, epoch))
    np.random.seed(derived_seed(seed, epoch))
    for index, state in enumerate(seed_states(model), start=1):
        state.assign(np.array([derived_seed(seed, epoch, index), 0], dtype=keras.backend.standardize_dtype(state.dtype)))
