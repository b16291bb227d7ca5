"""Input pipeline from the prepared PNGs: decoded once, reshuffled per epoch from (seed, epoch).

The order and the augmentation of every epoch are pure functions of (seed, epoch), drawn with NumPy
(`epoch_plan`), so a resumed job sees exactly the batches an uninterrupted one would have seen (no
iterator state to checkpoint) and every Keras backend sees the same batches. On TensorFlow the
batches come from tf.data (parallel, prefetched); on jax and torch from `EpochBatches`, a
`keras.utils.PyDataset` in NumPy that needs no TensorFlow.
"""

from __future__ import annotations

import logging
import os

import keras
import numpy as np

from effunet.data import images as image_files
from effunet.data.manifest import read_manifest
from effunet.errors import EffunetError
from effunet.layout import PreparedData

log = logging.getLogger(__name__)


def _decode_tf(paths: list[tuple[str, str]]):
    import tensorflow as tf

    def decode(path, channels):
        return tf.io.decode_png(tf.io.read_file(path), channels=channels)

    decoded = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda pair: (decode(pair[0], 3), decode(pair[1], 1)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return zip(*decoded.as_numpy_iterator())


def _decode_pil(paths: list[tuple[str, str]]):
    def mask(path):
        return np.asarray(image_files.open_gray(path).convert("L"))[..., None]

    return zip(*((image_files.read_rgb(image), mask(mask_path)) for image, mask_path in paths))


def load_split(prepared: PreparedData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, 3) and masks (N, H, W, 1), uint8, of one split, decoded once (tf.data on
    TensorFlow, Pillow on the other backends: the same arrays)."""
    table = read_manifest(prepared.manifest)
    ids = table.loc[table["split"] == split, "id"].tolist()
    if not ids:
        raise EffunetError(f"{prepared.manifest} has no images in the {split!r} split")
    paths = [(str(prepared.image(i)), str(prepared.mask(i))) for i in ids]
    for image_path, mask_path in paths:
        for path in (image_path, mask_path):
            if not os.path.exists(path):
                raise EffunetError(f"prepared file missing: {path} (listed in the manifest)")
    decode = _decode_tf if keras.backend.backend() == "tensorflow" else _decode_pil
    images, masks = decode(paths)
    images, masks = np.stack(images), np.stack(masks)
    if images.shape[1:3] != masks.shape[1:3] or len({i.shape for i in images}) > 1:
        raise EffunetError(f"prepared images and masks in {prepared.images} and {prepared.masks} differ in size; "
                          "rerun the data steps")
    log.info("loaded %d %s images of %dx%d from %s", len(ids), split, images.shape[1], images.shape[2],
             prepared.images)
    return images, masks


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def epoch_plan(n: int, seed: int, epoch: int, shuffle: bool = True, augment: bool = False):
    """The order of an epoch's n images and, per position, (flip rows, flip columns, quarter turns)."""
    rng = np.random.default_rng(epoch_seed(seed, epoch))
    order = rng.permutation(n) if shuffle else np.arange(n)
    if not augment:
        return order, None
    draws = np.random.default_rng([epoch_seed(seed, epoch), 1])
    flips = draws.random((n, 2)) < 0.5
    turns = draws.integers(0, 4, n).astype(np.int32)
    return order, (flips[:, 0], flips[:, 1], turns)


def augment_numpy(image: np.ndarray, mask: np.ndarray, flip_rows, flip_cols, turns):
    """Flips and counter-clockwise quarter turns (square images only), the same for image and mask."""
    if flip_rows:
        image, mask = image[::-1], mask[::-1]
    if flip_cols:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if image.shape[0] == image.shape[1]:
        image, mask = np.rot90(image, turns), np.rot90(mask, turns)
    return image, mask


def as_model_input(images: np.ndarray, masks: np.ndarray):
    """The models' input contract: float32 RGB in 0..255; targets float32 in [0, 1] (value / 255:
    0 or 1 for hard targets, the area fraction for soft ones)."""
    return images.astype(np.float32), masks.astype(np.float32) / np.float32(255.0)


class EpochBatches(keras.utils.PyDataset):
    """The batches of one epoch in NumPy: the same batches as the tf.data pipeline, any backend."""

    def __init__(self, images, masks, batch_size, *, seed=0, epoch=0, shuffle=True, augment=False):
        super().__init__()
        self.images, self.masks, self.batch_size = images, masks, batch_size
        self.order, self.plan = epoch_plan(len(images), seed, epoch, shuffle, augment)

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, index: int):
        positions = range(index * self.batch_size, min((index + 1) * self.batch_size, len(self.order)))
        pairs = [(self.images[self.order[p]], self.masks[self.order[p]]) for p in positions]
        if self.plan is not None:
            pairs = [augment_numpy(image, mask, *(part[p] for part in self.plan))
                     for (image, mask), p in zip(pairs, positions)]
        return as_model_input(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))


def _augment_tf(image, mask, flip_rows, flip_cols, turns):
    import tensorflow as tf

    stacked = tf.concat([image, tf.cast(mask, image.dtype)], axis=-1)
    stacked = tf.cond(flip_rows, lambda: tf.reverse(stacked, [0]), lambda: stacked)
    stacked = tf.cond(flip_cols, lambda: tf.reverse(stacked, [1]), lambda: stacked)
    if image.shape[0] == image.shape[1]:  # quarter turns keep the shape only for square images
        stacked = tf.image.rot90(stacked, turns)
    return stacked[..., :3], stacked[..., 3:]


def _as_model_input_tf(image, mask):
    import tensorflow as tf

    return tf.cast(image, tf.float32), tf.cast(mask, tf.float32) / 255.0


def make_dataset(images: np.ndarray, masks: np.ndarray, batch_size: int, *, seed: int = 0,
                 epoch: int = 0, shuffle: bool = True, augment: bool = False, pipeline: str | None = None):
    """The batches of one epoch: a seeded permutation, optional augmentation, batching.

    `pipeline`: "tf.data" (default on TensorFlow: parallel map, prefetch) or "numpy" (`EpochBatches`,
    default on the other backends); both give the same batches.
    """
    pipeline = pipeline or ("tf.data" if keras.backend.backend() == "tensorflow" else "numpy")
    if pipeline == "numpy":
        return EpochBatches(images, masks, batch_size, seed=seed, epoch=epoch, shuffle=shuffle, augment=augment)
    import tensorflow as tf

    order, plan = epoch_plan(len(images), seed, epoch, shuffle, augment)
    dataset = tf.data.Dataset.from_tensor_slices((images[order], masks[order]))
    if plan is not None:
        dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.from_tensor_slices(plan)).map(
            lambda pair, draws: _augment_tf(*pair, *draws), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.map(_as_model_input_tf, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
