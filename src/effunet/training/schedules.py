"""Learning-rate schedules as functions of the optimizer's step, so a resumed job continues exactly.

The checkpoint restores the optimizer with its iteration count and this schedule (both are saved in
the checkpoint's model.keras), so every step of a resumed job uses the rate an uninterrupted job
would have used.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from effunet.errors import ConfigError

SCHEDULES = ("constant", "cosine")


@keras.saving.register_keras_serializable(package="effunet")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up over `warmup_steps` steps, then constant or cosine decay to 0 at `total_steps`.

    Step s (0-based: the optimizer's iteration count before the update) has the rate
    base x (s + 1) / warmup_steps during warm-up; after it, base (constant) or
    base x (1 + cos(pi t)) / 2 (cosine) with t = (s - warmup_steps) / (total_steps - warmup_steps),
    clipped to 0..1.
    """

    def __init__(self, base: float, total_steps: int, warmup_steps: int = 0, decay: str = "cosine"):
        if decay not in SCHEDULES:
            raise ConfigError(f"config key train.lr_schedule: unknown schedule {decay!r} ({', '.join(SCHEDULES)})")
        self.base, self.total_steps, self.warmup_steps = float(base), int(total_steps), int(warmup_steps)
        self.decay = decay

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warming = self.base * (step + 1.0) / float(max(self.warmup_steps, 1))
        if self.decay == "constant":
            after = ops.full_like(step, self.base)
        else:
            decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
            progress = ops.clip((step - float(self.warmup_steps)) / decay_steps, 0.0, 1.0)
            after = 0.5 * self.base * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < float(self.warmup_steps), warming, after)

    def get_config(self):
        return {
            "base": self.base,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
        }


def learning_rate(setting: str, base: float, epochs: int, steps_per_epoch: int, warmup_epochs: int = 0):
    """The optimizer's learning_rate for config keys train.lr_schedule and train.warmup_epochs: the
    number itself (constant, no warm-up: the study) or a `WarmupSchedule` over epochs x steps."""
    if setting not in SCHEDULES:
        raise ConfigError(f"config key train.lr_schedule: unknown schedule {setting!r} ({', '.join(SCHEDULES)})")
    if setting == "constant" and not warmup_epochs:
        return base
    return WarmupSchedule(base, epochs * steps_per_epoch, warmup_epochs * steps_per_epoch, decay=setting)
