"""The nucleus boundary target (`train.instances: boundary`), below both training, which learns it as
a second output channel (`effunet.training.instances`), and the protocol ceiling, which decodes it
(`effunet.reference`). How the band is made, and why, is in `effunet.training.instances`."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from effunet.data import images
from effunet.errors import EffunetError

BOUNDARY_WIDTH = 1.0  # training-size pixels


def boundary_map(labels: np.ndarray, radius: tuple[int, int]) -> np.ndarray:
    """The band around every edge of an instance label image (bool, same size).

    A pixel is marked if another value (background or another nucleus) lies within `radius` (rows,
    columns) pixels of it (Chebyshev distance per axis; outside the image counts as the nearest
    edge pixel, so the image edge is no border). The band lies on both sides of each nucleus'
    outline, so it covers the contact line between touching nuclei and fills the gap between nuclei
    closer than two radii.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "ui":
        raise EffunetError(f"instance labels must be a 2-D integer image, got {labels.dtype} {labels.shape}")
    window = tuple(2 * int(r) + 1 for r in radius)
    highest = ndimage.maximum_filter(labels, size=window, mode="nearest")
    lowest = ndimage.minimum_filter(labels, size=window, mode="nearest")
    return highest != lowest


def boundary_target(labels: np.ndarray, size: images.Size, width: float = BOUNDARY_WIDTH) -> np.ndarray:
    """The boundary target (uint8, 0..255 = area fraction) at training `size` from native `labels`.

    `boundary_map` at native size with a radius of `width` training pixels per axis (rounded, at
    least one native pixel), then the soft area resize to `size`.
    """
    labels = np.asarray(labels)
    radius = tuple(max(1, round(width * native / small)) for native, small in zip(labels.shape, size))
    return images.resize_target(boundary_map(labels, radius), tuple(size), "soft")
