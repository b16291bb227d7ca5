"""Training samples of one epoch as pure functions of (seed, epoch, position), in NumPy.

Two settings shape a training sample (config keys train.augment and train.input):

- ``augment``: ``none`` (or ``false``, the study), ``flips`` (or ``true``: random row/column flips
  and quarter turns of square images), or ``strong``: the flips and quarter turns, a random scale
  (zoom in or out, `SCALE_RANGE`) with a random crop, and intensity and colour changes (inversion and
  grey with probabilities `INVERT_P` and `GREY_P`, so brightfield and fluorescence images look alike;
  a hue rotation about the grey axis, gamma, contrast and brightness, ranges below).
- ``input``: ``resize`` (the prepared images at the training size, the study) or ``native_crops``:
  crops at the training size from the images at native resolution; an image smaller than the crop
  is padded by reflection (also where a zoomed-out window reaches past an image's edge).

Every random draw of an epoch comes from generators seeded by (seed, epoch) alone (`Draws.of`), one
value per position of the epoch's order, so a resumed job sees the batches an uninterrupted one
would have. With ``strong`` or ``native_crops`` both input pipelines (tf.data and the NumPy
`PyDataset`) take their samples from the same `EpochSampler` (`training.dataset`), so they cannot
drift apart; ``flips`` alone keeps the study's two implementations, which draw the same flips and
turns (`Draws.of` and `dataset.epoch_plan` use the same stream) and are tested to agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from effunet.errors import ConfigError

LEVELS = ("none", "flips", "strong")
INPUTS = ("resize", "native_crops")
SCALE_RANGE = (0.75, 1.33)  # zoom factor (>1 zooms in), drawn log-uniformly
INVERT_P, GREY_P = 0.3, 0.2
HUE_RANGE = 0.08  # +- turns of the colour wheel
GAMMA_RANGE = (0.7, 1.4)  # drawn log-uniformly
CONTRAST_RANGE = (0.75, 1.25)
BRIGHTNESS_RANGE = 0.1  # +- fraction of 255


def level(setting) -> str:
    """The augmentation level of config key train.augment (false/true stay what they always meant)."""
    if setting is False or setting is None:
        return "none"
    if setting is True:
        return "flips"
    if setting in LEVELS:
        return setting
    raise ConfigError(f"config key train.augment: {setting!r} is not one of false, true, {', '.join(LEVELS)}")


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


@dataclass(frozen=True)
class Draws:
    """Per position of an epoch: the geometric, crop and intensity parameters (arrays of length n)."""

    flip_rows: np.ndarray
    flip_cols: np.ndarray
    turns: np.ndarray
    scale: np.ndarray  # zoom factor, 1 = none
    crop_y: np.ndarray  # where the crop window lies, 0..1 of the free range
    crop_x: np.ndarray
    invert: np.ndarray
    grey: np.ndarray
    hue: np.ndarray  # turns
    gamma: np.ndarray
    contrast: np.ndarray
    brightness: np.ndarray  # fraction of 255

    @classmethod
    def of(cls, n: int, seed: int, epoch: int, augment: str) -> Draws:
        """The draws of one epoch; each level's draws come from their own stream, so the flips of
        ``flips`` and ``strong`` are the same and the crops do not depend on the level."""
        base = epoch_seed(seed, epoch)
        none, ones, zeros = np.zeros(n, bool), np.ones(n), np.zeros(n)
        geometric = np.random.default_rng([base, 1])
        flips = geometric.random((n, 2)) < 0.5
        turns = geometric.integers(0, 4, n).astype(np.int32)
        if augment == "none":
            flips, turns = np.zeros((n, 2), bool), np.zeros(n, np.int32)
        crops = np.random.default_rng([base, 3]).random((n, 2))
        if augment != "strong":
            return cls(
                flips[:, 0], flips[:, 1], turns, ones, crops[:, 0], crops[:, 1], none, none, zeros, ones, ones, zeros
            )
        extra = np.random.default_rng([base, 2])
        scale = np.exp(extra.uniform(*np.log(SCALE_RANGE), n))
        invert, grey = extra.random(n) < INVERT_P, extra.random(n) < GREY_P
        hue = extra.uniform(-HUE_RANGE, HUE_RANGE, n)
        gamma = np.exp(extra.uniform(*np.log(GAMMA_RANGE), n))
        contrast = extra.uniform(*CONTRAST_RANGE, n)
        brightness = extra.uniform(-BRIGHTNESS_RANGE, BRIGHTNESS_RANGE, n)
        return cls(
            flips[:, 0],
            flips[:, 1],
            turns,
            scale,
            crops[:, 0],
            crops[:, 1],
            invert,
            grey,
            hue,
            gamma,
            contrast,
            brightness,
        )

    def at(self, position: int) -> dict:
        return {name: value[position] for name, value in self.__dict__.items()}


def reflect_index(index: np.ndarray, n: int) -> np.ndarray:
    """Indices reflected into 0..n-1 without repeating the edge (NumPy's pad mode 'reflect')."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.mod(index, period)
    return np.where(index > n - 1, period - index, index)


def _axis(start: float, window: float, out: int, n: int):
    """Source indices and weights of bilinear sampling of `out` pixels from [start, start + window)."""
    position = start + (np.arange(out) + 0.5) * (window / out) - 0.5
    low = np.floor(position)
    weight = (position - low).astype(np.float32)
    low = low.astype(np.int64)
    return reflect_index(low, n), reflect_index(low + 1, n), weight


def window_origin(n: int, window: float, u: float) -> float:
    """Where a window of `window` pixels starts in an axis of `n`: u = 0..1 of the free range
    (negative start for a window larger than the image, whose outside is reflected), whole pixels."""
    low, high = min(0.0, n - window), max(0.0, n - window)
    return float(np.floor(low + u * (high - low) + 0.5))


def resample(array: np.ndarray, size: tuple[int, int], scale: float, u_y: float, u_x: float) -> np.ndarray:
    """A window of size/scale pixels of `array` (H, W, C) at (u_y, u_x), resampled bilinearly to `size`.

    With scale 1 this is an exact crop (reflected where it reaches past the edges)."""
    height, width = size
    window_h, window_w = height / scale, width / scale
    y0, y1, wy = _axis(window_origin(array.shape[0], window_h, u_y), window_h, height, array.shape[0])
    x0, x1, wx = _axis(window_origin(array.shape[1], window_w, u_x), window_w, width, array.shape[1])
    data = array.astype(np.float32)
    if scale == 1:  # whole-pixel windows: the weights are all 0
        return data[y0][:, x0]
    wy, wx = wy[:, None, None], wx[None, :, None]
    top = data[y0][:, x0] * (1 - wx) + data[y0][:, x1] * wx
    bottom = data[y1][:, x0] * (1 - wx) + data[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def hue_matrix(turns: float) -> np.ndarray:
    """The RGB rotation by `turns` of a full turn about the grey axis (greys are unchanged)."""
    angle = 2 * np.pi * turns
    k = np.full(3, 1 / np.sqrt(3))
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return (np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * np.outer(k, k)).astype(np.float32)


def intensity(image: np.ndarray, draws: dict) -> np.ndarray:
    """Inversion, grey, hue, gamma, contrast (about the image mean) and brightness of a float RGB
    image in 0..255, in that order, clipped to 0..255."""
    x = image.astype(np.float32)
    if draws["invert"]:
        x = 255.0 - x
    if draws["grey"]:
        x = np.repeat(x.mean(axis=-1, keepdims=True), 3, axis=-1)
    if draws["hue"]:
        x = np.clip(x @ hue_matrix(draws["hue"]).T, 0.0, 255.0)
    if draws["gamma"] != 1:
        x = 255.0 * (x / 255.0) ** np.float32(draws["gamma"])
    if draws["contrast"] != 1:
        mean = x.mean()
        x = mean + np.float32(draws["contrast"]) * (x - mean)
    x = x + np.float32(255.0 * draws["brightness"])
    return np.clip(x, 0.0, 255.0).astype(np.float32)


def flip_and_turn(image: np.ndarray, mask: np.ndarray, flip_rows, flip_cols, turns):
    """Flips and counter-clockwise quarter turns (square images only), the same for image and mask."""
    if flip_rows:
        image, mask = image[::-1], mask[::-1]
    if flip_cols:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if image.shape[0] == image.shape[1]:
        image, mask = np.rot90(image, turns), np.rot90(mask, turns)
    return image, mask


def sample(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int], draws: dict, augment: str, crop: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One training sample as the model takes it: float32 RGB 0..255 (size, 3) and target 0..1 (size, 1).

    `image` uint8 (H, W, 3), `mask` uint8 0..255 (H, W, 1); `crop` draws a window at the training
    `size` (input native_crops); `augment` ``strong`` zooms that window (images at the training size
    too) and changes intensities. The mask is resampled like the image (bilinear: soft at a zoomed edge).
    """
    if crop or draws["scale"] != 1:
        stacked = np.concatenate([image, mask], axis=-1)
        stacked = resample(stacked, size, draws["scale"], draws["crop_y"], draws["crop_x"])
        image, mask = stacked[..., :3], stacked[..., 3:]
    image, mask = flip_and_turn(image, mask, draws["flip_rows"], draws["flip_cols"], draws["turns"])
    if augment == "strong":
        image = intensity(image, draws)
    return (
        np.ascontiguousarray(image, dtype=np.float32),
        np.clip(np.ascontiguousarray(mask, dtype=np.float32) / np.float32(255.0), 0.0, 1.0),
    )


class EpochSampler:
    """The samples of one epoch: position p is image order[p], drawn with the epoch's p-th draws."""

    def __init__(self, images, masks, size, *, seed=0, epoch=0, shuffle=True, augment="none", crop=False):
        self.images, self.masks, self.size = images, masks, tuple(int(s) for s in size)
        self.augment, self.crop = level(augment), crop
        n = len(images)
        rng = np.random.default_rng(epoch_seed(seed, epoch))
        self.order = rng.permutation(n) if shuffle else np.arange(n)
        self.draws = Draws.of(n, seed, epoch, self.augment)

    def __len__(self) -> int:
        return len(self.order)

    def __call__(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        index = self.order[int(position)]
        return sample(
            self.images[index], self.masks[index], self.size, self.draws.at(int(position)), self.augment, self.crop
        )
