"""Instance metrics (DSB2018): labelling, the boundary watershed, carrying labels across grids, average
precision (splitting touching nuclei by the distance map is `effunet.metrics.split`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from effunet.errors import EffunetError
from effunet.metrics._common import _binary, _full, _same_shape

DSB_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
SPLIT_SCALE = 4  # evaluation splits touching nuclei on a grid 4x the training size (transfer_labels)
WATERSHED_LEVELS = 32  # flooding levels of watershed_instances over the boundary probability in [0, 1]


def label_components(binary) -> np.ndarray:
    """Connected components of a binary mask with full connectivity (8-connectivity in 2-D).

    Returns int32 labels 1..n, 0 for background.
    """
    labels, _ = ndimage.label(_binary(binary, "binary"), structure=_full(binary))
    return labels.astype(np.int32, copy=False)


def watershed_instances(foreground, boundary, threshold: float = 0.5, boundary_threshold: float = 0.5,
                        levels: int = WATERSHED_LEVELS) -> np.ndarray:
    """Instances from a foreground and a boundary probability map by a marker-controlled watershed.

    The mask is ``foreground > threshold``; the markers are the connected components (full
    connectivity) of ``mask & (boundary < boundary_threshold)``, the nucleus cores the boundary
    channel leaves. A connected component of the mask with at most one marker is one object (so a
    nucleus too small to keep a core is not lost). The others are flooded from their markers over
    the boundary probability: at each of `levels` equal steps up from 0 to 1, every marker grows
    geodesically (one pixel per step, full connectivity, inside its component) into the unlabelled
    pixels whose boundary probability is at most the level, until none is left; so two markers meet
    on the ridge of the boundary map, where a model trained with `train.instances: boundary` puts
    the line between touching nuclei, and halfway between them where the map is flat. A pixel two
    markers reach in the same step goes to the larger label. Returns int32 labels 1..n, 0 for
    background; every mask pixel is labelled.
    """
    foreground, boundary = np.asarray(foreground, dtype=np.float64), np.asarray(boundary, dtype=np.float64)
    _same_shape(foreground, boundary, "foreground", "boundary")
    if levels < 1:
        raise ValueError(f"need levels >= 1, got {levels}")
    mask = foreground > threshold
    structure = _full(mask)
    markers, _ = ndimage.label(mask & (boundary < boundary_threshold), structure=structure)
    components, _ = ndimage.label(mask, structure=structure)
    labels = np.zeros(mask.shape, dtype=np.int32)
    used = 0
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        own = components[box] == index
        seeds = np.where(own, markers[box], 0)
        ids = np.unique(seeds[seeds > 0])
        if ids.size <= 1:
            labels[box][own] = used + 1
            used += 1
            continue
        lookup = np.zeros(int(ids.max()) + 1, dtype=np.int32)
        lookup[ids] = np.arange(1, ids.size + 1)
        local = _flood_up(lookup[seeds], boundary[box], own, structure, levels)
        labels[box][own] = local[own] + used
        used += ids.size
    return labels


def transfer_labels(labels, mask, components=None) -> np.ndarray:
    """Labels computed on another grid of the same field of view, carried onto binary `mask`.

    Each pixel of `mask` takes the label of the `labels` pixel its centre falls in; mask pixels
    that land on background there take the label of the nearest labelled pixel; finally each
    connected component of `mask` (full connectivity) is cut by the labels it received, so objects
    never join pieces the mask keeps apart and every component keeps at least one object. Used to
    split touching nuclei at one scale for every image: split on the training-size prediction
    upsampled by SPLIT_SCALE, then carry the labels to the native-size mask. Returns int32 labels
    1..n on `mask`, 0 elsewhere. `components`: `label_components(mask)`, where the caller has them.
    """
    labels = np.asarray(labels)
    mask = _binary(mask, "mask")
    if labels.ndim != mask.ndim:
        raise EffunetError(f"labels have {labels.ndim} dimensions, the mask {mask.ndim}")
    index = tuple(
        np.minimum(((np.arange(n) + 0.5) * m / n).astype(np.intp), m - 1).reshape(
            [-1 if axis == k else 1 for k in range(mask.ndim)])
        for axis, (n, m) in enumerate(zip(mask.shape, labels.shape, strict=True)))
    if components is None:
        components = label_components(mask)
    elif np.shape(components) != mask.shape:
        raise EffunetError(f"components have shape {np.shape(components)}, the mask {mask.shape}")
    carried = np.where(mask, labels[index], 0).astype(np.int64)
    if not carried.any():
        return np.array(components, dtype=np.int32)
    missing = mask & (carried == 0)
    if missing.any():
        nearest = ndimage.distance_transform_edt(carried == 0, return_distances=False, return_indices=True)
        carried[missing] = carried[tuple(i[missing] for i in nearest)]
    key = np.asarray(components, dtype=np.int64) * (int(carried.max()) + 1) + carried
    out = np.zeros(mask.shape, dtype=np.int32)
    out[mask] = np.unique(key[mask], return_inverse=True)[1].ravel() + 1
    return out


def instance_precisions(true_labels, predicted_labels, thresholds=DSB_THRESHOLDS) -> np.ndarray:
    """DSB2018 precision TP(t) / (TP(t) + FP(t) + FN(t)) at each IoU threshold t.

    Objects are the nonzero labels of each image (they need not be consecutive). A predicted and a
    true object match when their IoU > t; for t >= 0.5 (required) such matches are one-to-one. Both
    images without objects: 1.0 at every threshold; exactly one without objects: 0.0.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.size == 0 or thresholds.min() < 0.5 or thresholds.max() >= 1:
        raise ValueError(f"IoU thresholds must lie in [0.5, 1), got {thresholds.tolist()}")
    ious, n_true, n_predicted = _pair_ious(true_labels, predicted_labels)
    if n_true == 0 and n_predicted == 0:
        return np.ones(thresholds.size)
    tp = (ious[None, :] > thresholds[:, None]).sum(axis=1)
    return tp / (n_true + n_predicted - tp)


def instance_ap(true_labels, predicted_labels, thresholds=DSB_THRESHOLDS) -> float:
    """DSB2018 competition score of one image: `instance_precisions` averaged over the thresholds."""
    return float(instance_precisions(true_labels, predicted_labels, thresholds).mean())


# --- helpers -------------------------------------------------------------------------------------


def _flood_up(labels, elevation, own, structure, levels: int) -> np.ndarray:
    """Watershed by flooding up `elevation` (in [0, 1]) from the labelled markers, inside `own`."""
    for level in [*np.linspace(0.0, 1.0, levels + 1)[1:-1], np.inf]:
        allowed = own & (elevation <= level)
        while True:
            grown = ndimage.grey_dilation(labels, footprint=structure)
            new = allowed & (labels == 0) & (grown > 0)
            if not new.any():
                break
            labels[new] = grown[new]
    return labels


def _pair_ious(true_labels, predicted_labels) -> tuple[np.ndarray, int, int]:
    """IoU of every overlapping (true, predicted) object pair, and the number of objects of each."""
    truth, predicted = _labels(true_labels, "true_labels"), _labels(predicted_labels, "predicted_labels")
    _same_shape(truth, predicted, "true_labels", "predicted_labels")
    truth, predicted = truth.ravel(), predicted.ravel()
    true_area, predicted_area = np.bincount(truth), np.bincount(predicted)
    n_true = int(np.count_nonzero(true_area[1:]))
    n_predicted = int(np.count_nonzero(predicted_area[1:]))
    both = (truth > 0) & (predicted > 0)
    width = np.int64(predicted_area.size)
    pairs, intersection = np.unique(truth[both] * width + predicted[both], return_counts=True)
    union = true_area[pairs // width] + predicted_area[pairs % width] - intersection
    return intersection / union, n_true, n_predicted


def _labels(array, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind not in "ui" or (array.size and array.min() < 0):
        raise EffunetError(f"{name} must be a non-negative integer label image, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)
