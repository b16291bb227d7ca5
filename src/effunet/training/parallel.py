"""Data-parallel training: the batch a job trains with over several devices (replicas)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras

from effunet.errors import EffunetError

log = logging.getLogger("effunet.training.loop")


@dataclass
class Parallel:
    """Data-parallel training over `replicas` devices (placement.distribution_scope): training batches of
    `batch_size` (the config's rounded down to a multiple of `replicas`; each epoch leaves out the last
    images of its shuffled order that would split unevenly) and validation on `validator`, a one-device
    copy of the model given its weights (the replicas' batch-norm statistics averaged first), so the
    validation loss and metrics are what one device gives for every image."""

    replicas: int = 1
    batch_size: int | None = None
    validator: keras.Model | None = None


def replica_batch_size(batch_size: int, replicas: int) -> int:
    """The training batch: `batch_size` rounded down to a multiple of `replicas` (at least one each)."""
    return max(replicas, batch_size - batch_size % replicas)


def plan(settings, replicas: int, train_images: int) -> Parallel:
    if replicas == 1:
        return Parallel(batch_size=settings.batch_size)
    if train_images < replicas:
        raise EffunetError(
            f"{train_images} training image(s) cannot be split over {replicas} devices; "
            "give the job fewer GPUs (train.gpus_per_job)"
        )
    batch = replica_batch_size(settings.batch_size, replicas)
    if batch != settings.batch_size:
        log.info(
            "train.batch_size %d is not a multiple of the %d replicas: training batches of %d (%d per replica)",
            settings.batch_size,
            replicas,
            batch,
            batch // replicas,
        )
    if train_images % replicas:
        log.info(
            "each epoch leaves out the last %d of its %d shuffled training images, so every batch splits "
            "evenly over the %d replicas",
            train_images % replicas,
            train_images,
            replicas,
        )
    return Parallel(replicas, batch)
