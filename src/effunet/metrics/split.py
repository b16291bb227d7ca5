"""Splitting touching nuclei: a distance-transform watershed, flooded level by level (`split_touching`).

The flood is computed for every component of an image at once, on the frontier only: each step
looks at the pixels next to the ones labelled in the step before, not at the whole image, so its
cost is the number of pixels flooded rather than levels x steps x image size. It reproduces, label
for label, the per-component flood that grows every label over the whole bounding box at each step
(kept as the reference in `tests/split_reference.py` and checked against it on constructed and real
masks): the steps happen in the same order on the same pixels, a pixel reached by two labels in
the same step is settled by the same rule with the same floating-point values (computed in each
component's own box coordinates), and components never touch, so flooding them together changes
nothing.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage

from effunet.metrics._common import _binary, _full

_FLOOD_STEP = 0.5  # pixels of distance per flooding level in split_touching


def split_touching(binary, min_distance: int = 3, h: float = 1.0) -> np.ndarray:
    """Labels of a binary mask with touching nuclei split by a distance-transform watershed.

    Per connected component (full connectivity): the Euclidean distance to the nearest pixel outside
    the component; markers are its local maxima within a (2 * min_distance + 1)-wide window that
    are also h-maxima, i.e. one must descend by at least `h` pixels of distance from the peak to
    reach a higher point (peaks joined above that level form one marker). The component is then
    flooded from its markers down the distance map in steps of 0.5 px (from its own highest distance
    less 0.5, then 0), each label growing geodesically inside the component one pixel (full
    connectivity) per step until no pixel at or above the level is left that a label can reach, so
    cuts fall on the necks between nuclei. A pixel two labels reach in the same step goes to the one
    whose marker it lies deeper inside (the marker's height less the Euclidean distance to the
    marker's centre; the larger label on a tie), which keeps the cut on the neck instead of drifting
    toward the lower label; with three or more, the choice is between the largest and the smallest.
    (`scipy.ndimage.watershed_ift` is not used: its path cost is the largest step |f(p) - f(q)|
    between neighbours, which on a distance map is about 1 everywhere, so it ignores the necks.)
    Every component keeps at least one object; returns int32 labels 1..n, 0 for background.
    """
    if min_distance < 1 or h <= 0:
        raise ValueError(f"need min_distance >= 1 and h > 0, got {min_distance} and {h}")
    mask = _binary(binary, "binary")
    structure = _full(mask)
    components, _ = ndimage.label(mask, structure=structure)
    flood = _Flood(tuple(side + 2 for side in mask.shape))  # the image padded by a margin of background
    used = 0
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        outer = tuple(slice(s.start, s.stop + 2) for s in box)  # the box and a margin, in padded coordinates
        own = np.pad(components[box] == index, 1)  # the margin makes the box edge background
        local = ndimage.distance_transform_edt(own)
        markers = _h_maxima_markers(local, own, min_distance, h, structure)
        count = int(markers.max())
        if count <= 1:
            flood.whole(outer, own, used + 1)
            used += 1
            continue
        flood.add(outer, own, markers, local, used)
        used += count
    labels = flood.run()[(slice(1, -1),) * mask.ndim]
    return np.ascontiguousarray(labels)


class _Flood:
    """The flood of several components at once, on the padded image's flat index."""

    def __init__(self, shape):
        self.shape = shape
        self.labels = np.zeros(shape, np.int32)
        self.entry = np.full(shape, np.iinfo(np.int32).max, np.int32)  # the first level a pixel is flooded at
        strides = np.cumprod((1, *shape[::-1]))[:-1][::-1]
        steps = [s for s in itertools.product((-1, 0, 1), repeat=len(shape)) if any(s)]
        self.offsets = np.array([np.dot(step, strides) for step in steps], np.intp)
        self.centres, self.heights, self.origins = (
            [np.zeros((1, len(shape)))],
            [np.zeros(1)],
            [np.zeros((1, len(shape)), np.intp)],
        )

    def whole(self, outer, own, label) -> None:
        """A component that is one object: `label` everywhere on it, nothing to flood."""
        self.labels[outer][own] = label
        self.centres.append(self.centres[0])
        self.heights.append(self.heights[0])
        self.origins.append(self.origins[0])

    def add(self, outer, own, markers, distance, used) -> None:
        """A component to flood: its box `outer`, its pixels `own`, its markers 1..k and its distance."""
        ids = np.arange(1, int(markers.max()) + 1)
        self.centres.append(np.array(ndimage.center_of_mass(own, markers, ids)).reshape(-1, own.ndim))
        self.heights.append(_maxima(distance, markers, ids.size))
        self.origins.append(np.tile([s.start for s in outer], (ids.size, 1)))
        levels = np.array([*np.arange(distance.max() - _FLOOD_STEP, 0.0, -_FLOOD_STEP), 0.0])
        self.labels[outer][markers > 0] = markers[markers > 0] + used
        self.entry[outer][own] = np.searchsorted(-levels, -distance[own], side="left")

    def run(self) -> np.ndarray:
        centres, heights = np.concatenate(self.centres), np.concatenate(self.heights)
        origins = np.concatenate(self.origins)
        labels, entry = self.labels.ravel(), self.entry.ravel()
        self.stamp = np.zeros(labels.size, np.intp)
        waiting = np.flatnonzero((entry < np.iinfo(np.int32).max) & (labels == 0))
        if not waiting.size:
            return self.labels
        order = np.argsort(entry[waiting], kind="stable")
        waiting, stages = waiting[order], entry[waiting[order]]
        for stage in range(int(stages[-1]) + 1):
            start, stop = np.searchsorted(stages, [stage, stage + 1])
            new = waiting[start:stop]  # newly allowed; those left from earlier levels reach no label
            while new.size:
                around = labels[new[:, None] + self.offsets]
                new, around = new[around.max(axis=1) > 0], around[around.max(axis=1) > 0]
                if not new.size:
                    break
                high = around.max(axis=1)
                low = np.where(around > 0, around, np.iinfo(np.int32).max).min(axis=1)
                split = high != low  # reached by two labels: the deeper one takes it
                if split.any():
                    high[split] = _deeper(new[split], high[split], low[split], self.shape, centres, heights, origins)
                labels[new] = high
                reach = (new[:, None] + self.offsets).ravel()
                reach = reach[(labels[reach] == 0) & (entry[reach] <= stage)]
                self.stamp[reach] = np.arange(reach.size)  # one of each index's positions is kept
                new = reach[self.stamp[reach] == np.arange(reach.size)]
        return self.labels


def _deeper(flat, a, b, shape, centres, heights, origins) -> np.ndarray:
    """Per pixel, whichever of labels a and b it lies deeper inside (a where they agree), in the
    coordinates of the labels' component box, as the per-component flood computes it."""
    points = (np.stack(np.unravel_index(flat, shape), axis=1) - origins[a]).astype(np.float64)

    def depth(label):
        return heights[label] - np.linalg.norm(points - centres[label], axis=1)

    return np.where((a == b) | (depth(a) >= depth(b)), a, b)


def _h_maxima_markers(distance, own, min_distance, h, structure) -> np.ndarray:
    """Markers 1..k: local-maximum plateaus of height T whose region {distance > T - h} holds
    nothing higher than T; plateaus sharing such a region become one marker."""
    window = 2 * min_distance + 1
    peaks = own & (distance == ndimage.maximum_filter(distance, size=window))
    plateaus, n = ndimage.label(peaks, structure=structure)
    ids = np.arange(1, n + 1)
    heights = _maxima(distance, plateaus, n)
    markers = np.zeros(distance.shape, dtype=np.int32)
    used = 0
    for height in np.unique(heights):
        level, n_level = ndimage.label(distance > height - h, structure=structure)
        level_top = _maxima(distance, level, n_level)
        chosen = ids[heights == height]
        region = _maxima(level, plateaus, n)[chosen - 1].astype(np.intp)
        for plateau, reg in zip(chosen, region, strict=True):
            if level_top[reg - 1] <= height:
                markers[plateaus == plateau] = used + reg  # same region -> same marker id
        used += n_level
    lookup = np.zeros(markers.max() + 1, dtype=np.int32)
    present = np.unique(markers[markers > 0])
    lookup[present] = np.arange(1, present.size + 1)
    return lookup[markers]


def _maxima(values, labels, count: int) -> np.ndarray:
    """The largest of `values` on each label 1..count (float64; -inf where a label has no pixel), as
    `ndimage.maximum(values, labels, 1..count)` gives them, without its sort."""
    inside = labels > 0
    top = np.full(count + 1, -np.inf)
    np.maximum.at(top, labels[inside], values[inside])
    return top[1:]
