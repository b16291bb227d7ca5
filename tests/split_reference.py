"""The level-by-level flood of `split_touching` as it was before the frontier flood (commit 0183cc0,
src/effunet/metrics/instance.py), kept verbatim as the reference the new one must equal label for
label (tests/test_split.py, and tests/evaluate_reference.py for evaluation as it was)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from effunet.metrics._common import _binary, _full

_FLOOD_STEP = 0.5


def split_touching(binary, min_distance: int = 3, h: float = 1.0) -> np.ndarray:
    """Labels of a binary mask with touching nuclei split by a distance-transform watershed.

    Per connected component (full connectivity): the Euclidean distance to the nearest pixel outside
    the component; markers are its local maxima within a (2 * min_distance + 1)-wide window that
    are also h-maxima, i.e. one must descend by at least `h` pixels of distance from the peak to
    reach a higher point (peaks joined above that level form one marker). The component is then
    flooded from its markers down the distance map in steps of 0.5 px, each label growing
    geodesically inside the component, so cuts fall on the necks between nuclei.
    (`scipy.ndimage.watershed_ift` is not used: its path cost is the largest step |f(p) - f(q)|
    between neighbours, which on a distance map is about 1 everywhere, so it ignores the necks.)
    Every component keeps at least one object; returns int32 labels 1..n, 0 for background.
    """
    if min_distance < 1 or h <= 0:
        raise ValueError(f"need min_distance >= 1 and h > 0, got {min_distance} and {h}")
    mask = _binary(binary, "binary")
    structure = _full(mask)
    components, _ = ndimage.label(mask, structure=structure)
    labels = np.zeros(mask.shape, dtype=np.int32)
    inner = (slice(1, -1),) * mask.ndim
    used = 0
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        own = np.pad(components[box] == index, 1)  # the margin makes the box edge background
        distance = ndimage.distance_transform_edt(own)
        local = _split_component(distance, own, min_distance, h, structure)[inner]
        own = own[inner]
        labels[box][own] = local[own] + used
        used += int(local[own].max())
    return labels


def _split_component(distance, own, min_distance, h, structure) -> np.ndarray:
    """Labels 1..k inside one component's bounding box (meaningful on `own` only)."""
    markers = _h_maxima_markers(distance, own, min_distance, h, structure)
    if markers.max() == 1:
        return own.astype(np.int32)
    return _flood(markers, distance, own, structure)


def _flood(labels, distance, own, structure) -> np.ndarray:
    """Watershed of the inverted distance by flooding: going down the distance in steps of
    _FLOOD_STEP, each label grows geodesically into the unlabeled pixels at or above the level. A
    pixel reached by two labels at once goes to the one whose marker it lies deeper inside
    (largest marker height minus Euclidean distance to the marker's centre), which keeps the cut
    on the neck instead of drifting toward the lower label."""
    ids = np.arange(1, labels.max() + 1)
    centres = np.array(ndimage.center_of_mass(own, labels, ids)).reshape(-1, labels.ndim)
    heights = np.asarray(ndimage.maximum(distance, labels, ids))
    levels = np.arange(distance.max() - _FLOOD_STEP, 0.0, -_FLOOD_STEP)
    for level in [*levels, 0.0]:
        allowed = own & (distance >= level)
        while True:
            high = ndimage.grey_dilation(labels, footprint=structure)
            new = allowed & (labels == 0) & (high > 0)
            if not new.any():
                break
            low = ndimage.grey_erosion(np.where(labels > 0, labels, ids.size + 1), footprint=structure)
            labels[new] = _deeper(np.nonzero(new), high[new], low[new], centres, heights)
    return labels


def _deeper(points, a, b, centres, heights) -> np.ndarray:
    """Per point, whichever of labels a and b it lies deeper inside (a where they agree)."""
    points = np.stack(points, axis=1).astype(np.float64)

    def depth(label):
        return heights[label - 1] - np.linalg.norm(points - centres[label - 1], axis=1)

    return np.where((a == b) | (depth(a) >= depth(b)), a, b)


def _h_maxima_markers(distance, own, min_distance, h, structure) -> np.ndarray:
    """Markers 1..k: local-maximum plateaus of height T whose region {distance > T - h} holds
    nothing higher than T; plateaus sharing such a region become one marker."""
    window = 2 * min_distance + 1
    peaks = own & (distance == ndimage.maximum_filter(distance, size=window))
    plateaus, n = ndimage.label(peaks, structure=structure)
    ids = np.arange(1, n + 1)
    heights = np.asarray(ndimage.maximum(distance, plateaus, ids))
    markers = np.zeros(distance.shape, dtype=np.int32)
    used = 0
    for height in np.unique(heights):
        level, n_level = ndimage.label(distance > height - h, structure=structure)
        level_top = np.asarray(ndimage.maximum(distance, level, np.arange(1, n_level + 1)))
        chosen = ids[heights == height]
        region = np.asarray(ndimage.maximum(level, plateaus, chosen)).astype(np.intp)
        for plateau, reg in zip(chosen, region, strict=True):
            if level_top[reg - 1] <= height:
                markers[plateaus == plateau] = used + reg  # same region -> same marker id
        used += n_level
    lookup = np.zeros(markers.max() + 1, dtype=np.int32)
    present = np.unique(markers[markers > 0])
    lookup[present] = np.arange(1, present.size + 1)
    return lookup[markers]
