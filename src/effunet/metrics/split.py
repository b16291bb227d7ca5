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
    padded = np.zeros(tuple(side + 2 for side in mask.shape), np.int32)  # a margin of background
    components = padded[(slice(1, -1),) * mask.ndim]
    ndimage.label(mask, structure=structure, output=components)
    flood = _Flood(padded.shape)
    used = 0
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        outer = tuple(slice(s.start, s.stop + 2) for s in box)  # the box and a margin, in padded coordinates
        own = padded[outer] == index  # the margin makes the box edge background
        local = ndimage.distance_transform_edt(own)
        markers, heights = _h_maxima_markers(local, own, 2 * min_distance + 1, h, structure)
        if markers is None:
            flood.whole(outer, own, used + 1)
            used += 1
            continue
        flood.add(outer, own, markers, heights, local, used)
        used += heights.size
    labels = flood.run()[(slice(1, -1),) * mask.ndim]
    return np.ascontiguousarray(labels)


class _Flood:
    """The flood of several components at once, on the padded image's flat index."""

    def __init__(self, shape):
        self.shape = shape
        self.labels = np.zeros(shape, np.int32)
        strides = np.cumprod((1, *shape[::-1]))[:-1][::-1]
        steps = [s for s in itertools.product((-1, 0, 1), repeat=len(shape)) if any(s)]
        self.offsets = np.array([np.dot(step, strides) for step in steps], np.intp)[:, None]
        self.centres, self.heights, self.origins = (
            [np.zeros((1, len(shape)))],
            [np.zeros(1)],
            [np.zeros((1, len(shape)), np.intp)],
        )
        self.waiting, self.entry = [np.zeros(0, np.intp)], [np.zeros(0, np.intp)]  # unlabelled pixels, levels

    def whole(self, outer, own, label) -> None:
        """A component that is one object: `label` everywhere on it, nothing to flood."""
        self.labels[outer][own] = label
        self.centres.append(self.centres[0])
        self.heights.append(self.heights[0])
        self.origins.append(self.origins[0])

    def add(self, outer, own, markers, heights, distance, used) -> None:
        """A component to flood: its box `outer`, its pixels `own`, its markers 1..k of `heights` and
        its distance. The markers' centres are `ndimage.center_of_mass(own, markers, 1..k)`, summed
        the same way (by `np.bincount`, in raster order)."""
        at = np.flatnonzero(markers)
        ids = markers.ravel()[at]
        count = np.bincount(ids)[1:]
        where = np.unravel_index(at, markers.shape)
        centres = [np.bincount(ids, weights=c.astype(np.float64))[1:] / count for c in where]
        self.centres.append(np.stack(centres, axis=1))
        self.heights.append(heights)
        start = [s.start for s in outer]
        self.origins.append(np.tile(start, (heights.size, 1)))
        levels = np.array([*np.arange(heights.max() - _FLOOD_STEP, 0.0, -_FLOOD_STEP), 0.0])
        rest = own & (markers == 0)
        self.labels[outer][markers > 0] = markers[markers > 0] + used
        where = np.nonzero(rest)
        self.waiting.append(np.ravel_multi_index(tuple(c + s for c, s in zip(where, start)), self.shape))
        self.entry.append(np.searchsorted(-levels, -distance[where], side="left"))

    def run(self) -> np.ndarray:
        centres, heights = np.concatenate(self.centres), np.concatenate(self.heights)
        origins, waiting, entry = np.concatenate(self.origins), np.concatenate(self.waiting), np.concatenate(self.entry)
        if not waiting.size:
            return self.labels
        order = np.argsort(entry.astype(np.int16) if entry.max() < 2**15 else entry, kind="stable")  # radix sort
        waiting, stages = waiting[order], entry[order]
        bounds = np.searchsorted(stages, np.arange(int(stages[-1]) + 2))
        labels, offsets = self.labels.ravel(), self.offsets
        free = np.zeros(labels.size, bool)  # flooded at this level or above, not labelled yet
        stamp = np.empty(labels.size, np.intp)  # read only where just written
        for start, stop in itertools.pairwise(bounds):
            new = waiting[start:stop]  # newly allowed; those left from earlier levels reach no label
            free[new] = True
            new = new[labels[offsets + new].max(axis=0) > 0]  # from then on, every pixel reached touches a label
            while new.size:
                near = offsets + new
                around = labels[near]
                high = around.max(axis=0)
                low = (around.view(np.uint32) - np.uint32(1)).min(axis=0).view(np.int32) + 1  # 0 comes last
                split = high != low  # reached by two labels: the deeper one takes it
                if split.any():
                    high[split] = _deeper(new[split], high[split], low[split], self.shape, centres, heights, origins)
                labels[new] = high
                free[new] = False
                reach = near.ravel()
                reach = reach[free[reach]]
                index = np.arange(reach.size)
                stamp[reach] = index  # one of each index's positions is kept
                new = reach[stamp[reach] == index]
        return self.labels


def _deeper(flat, a, b, shape, centres, heights, origins) -> np.ndarray:
    """Per pixel, whichever of labels a and b it lies deeper inside (a where they agree), in the
    coordinates of the labels' component box, as the per-component flood computes it."""
    points = (np.stack(np.unravel_index(flat, shape), axis=1) - origins[a]).astype(np.float64)
    ab = np.stack([a, b])
    gap = points - centres[ab]
    depth = heights[ab] - np.linalg.norm(gap, axis=2)
    return np.where((a == b) | (depth[0] >= depth[1]), a, b)


def _h_maxima_markers(distance, own, window, h, structure):
    """Markers 1..k and their heights: local-maximum plateaus of height T whose region
    {distance > T - h} holds nothing higher than T; plateaus sharing such a region become one
    marker. (None, None) where there is only one marker.

    A plateau is flat (its pixels are each other's maxima) and connected, so it lies in one region
    of its level: the peak pixels are looked up one by one. The levels {distance > T - h} of every
    height T (lowest first) are labelled at once, stacked along a new axis and not connected across
    it, so their regions are numbered as labelling one level after another would number them."""
    window_max = distance
    for axis in range(distance.ndim):  # ndimage.maximum_filter(distance, size=window), one axis at a time
        window_max = ndimage.maximum_filter1d(window_max, window, axis=axis)
    at = np.flatnonzero(own & (distance == window_max))
    if at.size == 1:
        return None, None
    tops = distance.ravel()[at]
    if (tops == tops[0]).all():
        heights, level = tops[:1], np.zeros(at.size, np.intp)
    else:
        heights, level = np.unique(tops, return_inverse=True)
    across = heights.reshape(-1, *(1,) * distance.ndim)
    stacked = np.zeros((3, *structure.shape), bool)
    stacked[1] = structure
    crop = ndimage.find_objects((distance > heights[0] - h).view(np.uint8))[0]  # holds every level
    part = distance[crop]
    inside = np.unravel_index(at, distance.shape)
    inside = np.ravel_multi_index(tuple(c - s.start for c, s in zip(inside, crop, strict=True)), part.shape)
    regions, count = ndimage.label(part > across - h, structure=stacked)
    value = regions.reshape(heights.size, -1)[level, inside]
    chosen = np.zeros(count + 1, bool)
    chosen[value] = True
    chosen[regions[part > across]] = False  # regions holding something higher than their level
    chosen[0] = False
    rank = np.cumsum(chosen)  # same region -> same marker, numbered in the order of the regions
    if rank[-1] == 1:
        return None, None
    value = np.where(chosen[value], rank[value], 0)
    markers = np.zeros(distance.shape, np.int32)
    markers.ravel()[at] = value
    marker_heights = np.zeros(rank[-1])
    marker_heights[value[value > 0] - 1] = tops[value > 0]
    return markers, marker_heights
