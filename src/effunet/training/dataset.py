"""Input pipeline from the prepared PNGs: decoded once, reshuffled per epoch from (seed, epoch).

The order and the augmentation of every epoch are pure functions of (seed, epoch), drawn with NumPy
(`epoch_plan`; `training.augment` for the strong augmentation and native-resolution crops), so a resumed job sees exactly the batches an uninterrupted one would have seen (no
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
from effunet.data import formats
from effunet.data.manifest import read_manifest
from effunet.errors import EffunetError
from effunet.layout import PreparedData
from effunet.training import augment as augmentation

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


# What to do about a prepared file that is missing or damaged (Snakemake sees the folder as complete).
REPREPARE = ("remake the prepared data: snakemake --forcerun prepare prepare_with_region (with your usual "
             "options), or delete the prepared folder")


def _unreadable(paths: list[tuple[str, str]], error: Exception) -> str:
    """The first prepared file that does not decode, named, with what to run; the decoder's own words else."""
    for pair in paths:
        for path in pair:
            try:
                image_files.open_image(path)
            except EffunetError as reason:
                return f"prepared file {path} cannot be read ({reason}); {REPREPARE}"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"the prepared images of {len(paths)} samples could not be decoded ({first}); {REPREPARE}"


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
                raise EffunetError(f"prepared file missing: {path} (listed in {prepared.manifest}); {REPREPARE}")
    decode = _decode_tf if keras.backend.backend() == "tensorflow" else _decode_pil
    try:
        images, masks = decode(paths)
    except EffunetError as error:
        raise EffunetError(f"{error}; {REPREPARE}") from error
    except Exception as error:  # TensorFlow's decoder names no file: find the one that fails
        raise EffunetError(_unreadable(paths, error)) from error
    images, masks = np.stack(images), np.stack(masks)
    if images.shape[1:3] != masks.shape[1:3] or len({i.shape for i in images}) > 1:
        raise EffunetError(f"prepared images and masks in {prepared.images} and {prepared.masks} differ in size; "
                          "rerun the data steps")
    log.info("loaded %d %s images of %dx%d from %s", len(ids), split, images.shape[1], images.shape[2],
             prepared.images)
    return images, masks


epoch_seed = augmentation.epoch_seed


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
    return augmentation.flip_and_turn(image, mask, flip_rows, flip_cols, turns)


def as_model_input(images: np.ndarray, masks: np.ndarray):
    """The models' input contract: float32 RGB in 0..255; targets float32 in [0, 1] (value / 255:
    0 or 1 for hard targets, the area fraction for soft ones)."""
    return images.astype(np.float32), masks.astype(np.float32) / np.float32(255.0)


class EpochBatches(keras.utils.PyDataset):
    """The batches of one epoch in NumPy: the same batches as the tf.data pipeline, any backend."""

    def __init__(self, images, masks, batch_size, *, seed=0, epoch=0, shuffle=True, augment=False, count=None):
        super().__init__()
        self.images, self.masks, self.batch_size = images, masks, batch_size
        self.order, self.plan = epoch_plan(len(images), seed, epoch, shuffle, augment)
        self.count = len(self.order) if count is None else count  # the first `count` of the epoch's order

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)

    def __getitem__(self, index: int):
        positions = range(index * self.batch_size, min((index + 1) * self.batch_size, self.count))
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


def make_dataset(images, masks, batch_size: int, *, seed: int = 0, epoch: int = 0, shuffle: bool = True,
                 augment: bool | str = False, pipeline: str | None = None, crop_size: tuple[int, int] | None = None,
                 multiple_of: int = 1):
    """The batches of one epoch: a seeded permutation, optional augmentation, batching.

    `multiple_of` (the replicas of data-parallel training, with `batch_size` a multiple of it): the
    last ``len(images) % multiple_of`` samples of the epoch's order are left out, so every batch
    splits evenly over the replicas.

    `augment`: false/"none", true/"flips" or "strong" (`training.augment`); `crop_size`: draw crops
    of that size from `images` (a list of native-size images) instead of taking the images whole.
    `pipeline`: "tf.data" (default on TensorFlow: parallel map, prefetch) or "numpy" (`EpochBatches`,
    default on the other backends); both give the same batches.
    """
    pipeline = pipeline or ("tf.data" if keras.backend.backend() == "tensorflow" else "numpy")
    level = augmentation.level(augment)
    count = len(images) - len(images) % multiple_of
    if level == "strong" or crop_size is not None:
        size = tuple(crop_size or images[0].shape[:2])
        sampler = augmentation.EpochSampler(images, masks, size, seed=seed, epoch=epoch, shuffle=shuffle,
                                            augment=level, crop=crop_size is not None)
        if pipeline == "numpy":
            return SampledBatches(sampler, batch_size, count)
        return _sampled_tf(sampler, batch_size, count)
    if pipeline == "numpy":
        return EpochBatches(images, masks, batch_size, seed=seed, epoch=epoch, shuffle=shuffle,
                            augment=level == "flips", count=count)
    import tensorflow as tf

    order, plan = epoch_plan(len(images), seed, epoch, shuffle, level == "flips")
    dataset = tf.data.Dataset.from_tensor_slices((images[order], masks[order]))
    if plan is not None:
        dataset = tf.data.Dataset.zip(dataset, tf.data.Dataset.from_tensor_slices(plan)).map(
            lambda pair, draws: _augment_tf(*pair, *draws), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.map(_as_model_input_tf, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if count < len(images):
        dataset = dataset.take(count)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class SampledBatches(keras.utils.PyDataset):
    """The batches of an `augment.EpochSampler` in NumPy (strong augmentation, native crops)."""

    def __init__(self, sampler: augmentation.EpochSampler, batch_size: int, count: int | None = None):
        super().__init__()
        self.sampler, self.batch_size = sampler, batch_size
        self.count = len(sampler) if count is None else count  # the first `count` samples of the epoch

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)

    def __getitem__(self, index: int):
        pairs = [self.sampler(p) for p in range(index * self.batch_size,
                                                min((index + 1) * self.batch_size, self.count))]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _sampled_tf(sampler: augmentation.EpochSampler, batch_size: int, count: int | None = None):
    """The same samples through tf.data: each is `sampler(position)`, run in NumPy (tf.numpy_function)."""
    import tensorflow as tf

    height, width = sampler.size
    channels = sampler.masks[0].shape[-1]  # 2 with a boundary target (train.instances: boundary)

    def draw(position):
        image, mask = tf.numpy_function(sampler, [position], (tf.float32, tf.float32), stateful=False)
        return tf.ensure_shape(image, (height, width, 3)), tf.ensure_shape(mask, (height, width, channels))

    dataset = tf.data.Dataset.range(len(sampler) if count is None else count).map(draw, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_native_split(prepared: PreparedData, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images (H, W, 3) and masks (H, W, 1), uint8 0/255, of one split at native resolution, each
    its own size: the originals the manifest lists (`image`), with the native truth the data set's
    format reads (`effunet.data.formats.native`: instance labels > 0, or the original annotation)."""
    table = read_manifest(prepared.manifest)
    rows = list(table.loc[table["split"] == split].itertuples())
    if not rows:
        raise EffunetError(f"{prepared.manifest} has no images in the {split!r} split")
    if "image" not in table.columns:
        raise EffunetError(f"{prepared.manifest} does not list native-resolution images (the `image` column "
                           "that train.input native_crops reads); rerun the data steps")
    images, masks = [], []
    for row in rows:
        rgb = image_files.read_rgb(row.image)
        truth = formats.native(prepared, row).truth
        if truth.shape != rgb.shape[:2]:
            raise EffunetError(f"the native mask of {row.id} is {truth.shape} but its image {row.image} is "
                               f"{rgb.shape[:2]}; rerun the data steps")
        images.append(rgb)
        masks.append((truth.astype(np.uint8) * 255)[..., None])
    log.info("loaded %d %s images at native resolution", len(images), split)
    return images, masks
