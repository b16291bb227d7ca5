"""tf.data input pipeline from the prepared PNGs: decoded once, reshuffled per epoch from (seed, epoch).

The order and the augmentation of every epoch are pure functions of (seed, epoch), so a resumed job
sees exactly the batches an uninterrupted one would have seen: no iterator state to checkpoint.
"""

from __future__ import annotations

import logging
import os
import numpy as np
import tensorflow as tf

from effunet.data.manifest import read_manifest
from effunet.errors import EffunetError
from effunet.layout import PreparedData

log = logging.getLogger(__name__)


def _decode_png(path: tf.Tensor, channels: int) -> tf.Tensor:
    return tf.io.decode_png(tf.io.read_file(path), channels=channels)


def load_split(prepared: PreparedData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, 3) and masks (N, H, W, 1), uint8, of one split, decoded once with tf.data."""
    table = read_manifest(prepared.manifest)
    ids = table.loc[table["split"] == split, "id"].tolist()
    if not ids:
        raise EffunetError(f"{prepared.manifest} has no images in the {split!r} split")
    paths = [(str(prepared.image(i)), str(prepared.mask(i))) for i in ids]
    for image_path, mask_path in paths:
        for path in (image_path, mask_path):
            if not os.path.exists(path):
                raise EffunetError(f"prepared file missing: {path} (listed in the manifest)")
    decoded = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda pair: (_decode_png(pair[0], 3), _decode_png(pair[1], 1)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    images, masks = zip(*decoded.as_numpy_iterator())
    images, masks = np.stack(images), np.stack(masks)
    if images.shape[1:3] != masks.shape[1:3] or len({i.shape for i in images}) > 1:
        raise EffunetError(f"prepared images and masks in {prepared.images} and {prepared.masks} differ in size; "
                          "rerun the data steps")
    log.info("loaded %d %s images of %dx%d from %s", len(ids), split, images.shape[1], images.shape[2],
             prepared.images)
    return images, masks


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _augment(image, mask, element_seed):
    """Random flips and 90-degree rotations, identical for image and mask, stateless from the seed."""
    stacked = tf.concat([image, tf.cast(mask, image.dtype)], axis=-1)
    flip = tf.random.stateless_uniform([2], seed=element_seed) < 0.5
    stacked = tf.cond(flip[0], lambda: tf.reverse(stacked, [0]), lambda: stacked)
    stacked = tf.cond(flip[1], lambda: tf.reverse(stacked, [1]), lambda: stacked)
    turns = tf.random.stateless_uniform([], seed=element_seed + 1, maxval=4, dtype=tf.int32)
    if image.shape[0] == image.shape[1]:  # quarter turns keep the shape only for square images
        stacked = tf.image.rot90(stacked, turns)
    return stacked[..., :3], stacked[..., 3:]


def _as_model_input(image, mask):
    """The models' input contract: float32 RGB in 0..255; targets float32 in {0, 1}."""
    return tf.cast(image, tf.float32), tf.cast(mask > 127, tf.float32)


def make_dataset(images: np.ndarray, masks: np.ndarray, batch_size: int, *, seed: int = 0,
                 epoch: int = 0, shuffle: bool = True, augment: bool = False) -> tf.data.Dataset:
    """The batches of one epoch: a seeded permutation, optional augmentation, batching, prefetch."""
    order = np.arange(len(images))
    if shuffle:
        order = np.random.default_rng(epoch_seed(seed, epoch)).permutation(len(images))
    dataset = tf.data.Dataset.from_tensor_slices((images[order], masks[order]))
    if augment:
        base = tf.constant([epoch_seed(seed, epoch) % (2**31), 0], dtype=tf.int64)
        dataset = dataset.enumerate().map(
            lambda index, pair: _augment(pair[0], pair[1], base + tf.stack([0, 2 * index])),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.map(_as_model_input, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
