"""Probability maps across grids: the bilinear resize between the training size and an image's own
(`resize_probability`), and sliding-window inference at native size (`sliding_window` for one image,
`sliding_windows` for many, their tiles predicted together in full batches)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
from PIL import Image

TILE_OVERLAP = 0.5  # sliding window: each tile overlaps its neighbours by half a tile


def resize_probability(probability: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float probability map to (height, width)."""
    height, width = size
    if probability.shape == (height, width):
        return probability
    resized = Image.fromarray(probability.astype(np.float32), mode="F").resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(resized), 0.0, 1.0)


def tile_starts(length: int, tile: int, overlap: float = TILE_OVERLAP) -> list[int]:
    """Start positions of tiles of `tile` pixels covering 0..length-1 (length >= tile), the first at 0
    and the last flush with the end, evenly spaced at most tile x (1 - overlap) apart."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1 - overlap)))
    count = math.ceil((length - tile) / stride) + 1
    return sorted({int(round(i * (length - tile) / (count - 1))) for i in range(count)})


def tile_window(size: tuple[int, int]) -> np.ndarray:
    """The blending weight of a tile: a separable ramp, highest at the centre and positive at the
    edges (so every covered pixel has weight), (i + 1/2) from the nearer edge along each axis."""
    ramps = [np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5) for n in size]
    return np.outer(*ramps).astype(np.float64)


def sliding_window(
    image: np.ndarray, tile: tuple[int, int], predict, batch_size: int = 8, overlap: float = TILE_OVERLAP
) -> np.ndarray:
    """(H, W) probabilities of an (H, W, C) image, predicted tile by tile at the `tile` size.

    `predict` maps a batch of tiles (N, th, tw, C) to (N, th, tw). Tiles overlap by `overlap` and are
    blended by `tile_window` weights, normalised by their sum; an image smaller than a tile is padded
    by reflection first and the padding cut off the result.
    """
    return next(sliding_windows([image], tile, predict, batch_size, overlap))


class _Blend:
    """One image's tiles and the weighted sums they are blended into."""

    def __init__(self, image: np.ndarray, tile: tuple[int, int], overlap: float):
        self.height, self.width = image.shape[:2]
        th, tw = tile
        pad_h, pad_w = max(0, th - self.height), max(0, tw - self.width)
        if pad_h or pad_w:
            whole = self.height > 1 and self.width > 1 and pad_h < self.height and pad_w < self.width
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect" if whole else "symmetric")
        self.image, self.tile = image, tile
        rows, cols = tile_starts(image.shape[0], th, overlap), tile_starts(image.shape[1], tw, overlap)
        self.corners = [(y, x) for y in rows for x in cols]
        self.total = np.zeros(image.shape[:2], np.float64)
        self.norm = np.zeros(image.shape[:2], np.float64)
        self.left = len(self.corners)

    def crop(self, corner: tuple[int, int]) -> np.ndarray:
        y, x = corner
        return self.image[y : y + self.tile[0], x : x + self.tile[1]]

    def add(self, corner: tuple[int, int], probability: np.ndarray, weight: np.ndarray) -> None:
        y, x = corner
        self.total[y : y + self.tile[0], x : x + self.tile[1]] += weight * probability
        self.norm[y : y + self.tile[0], x : x + self.tile[1]] += weight
        self.left -= 1

    def result(self) -> np.ndarray:
        return (self.total / self.norm)[: self.height, : self.width].astype(np.float32)


def sliding_windows(
    images: Iterable[np.ndarray], tile: tuple[int, int], predict, batch_size: int = 8, overlap: float = TILE_OVERLAP
) -> Iterator[np.ndarray]:
    """`sliding_window` of each of `images`, yielded in order, their tiles predicted `batch_size` at a
    time across image boundaries (the last tiles of one image share a batch with the first of the
    next). Each image's tiles are blended in the same order as `sliding_window`'s; images are read
    from `images` only as their tiles are needed."""
    weight = tile_window(tile)
    source = iter(images)
    open_images: list[_Blend] = []  # read, not yet yielded, in order
    queue: list[tuple[_Blend, tuple[int, int]]] = []  # tiles to predict, in order
    exhausted = False
    while True:
        while not exhausted and len(queue) < batch_size:
            image = next(source, None)
            if image is None:
                exhausted = True
                break
            blend = _Blend(image, tile, overlap)
            open_images.append(blend)
            queue += [(blend, corner) for corner in blend.corners]
        if not queue:
            return
        chunk, queue = queue[:batch_size], queue[batch_size:]
        batch = np.stack([blend.crop(corner) for blend, corner in chunk]).astype(np.float32)
        for (blend, corner), probability in zip(chunk, np.asarray(predict(batch))):
            blend.add(corner, probability, weight)
        while open_images and open_images[0].left == 0:
            yield open_images.pop(0).result()
