"""Pixel and instance metrics, pure NumPy/SciPy, in layers: counts -> per-image dict -> summary.

Pixel metrics start from a confusion table (`confusion` -> `Counts`); `scores` turns one table into
the named ratios. A per-image value is `scores(confusion(...))` of that image; a pooled value is
`scores` of the sum of the images' tables (every scored pixel of the set counts once). `summarize`
builds the summary dict with per-image values, their mean and std, and the pooled values.

Conventions, the same everywhere (no function returns NaN):

- A ratio whose denominator is zero is 1.0 ("nothing to get wrong"): IoU and Dice of an image where
  truth and prediction are both empty, sensitivity with no true positives in the truth, precision
  with no predicted positives, specificity with no true negatives. These match scikit-learn with
  `zero_division=1.0`.
- MCC is 0.0 when any row or column of the table is empty (constant truth or prediction), as in
  scikit-learn's `matthews_corrcoef`; so an empty image predicted empty has MCC 0 but IoU 1.
- ROC-AUC is None when the scored truth has a single class; PR-AUC is None when it has no
  positives. `summarize` averages a metric over the images where it is not None and reports how
  many those are.
- Scoring zero pixels (a region that selects nothing) or summarizing zero images is an EffunetError.

Instance metric (DSB2018): `instance_ap` compares a predicted label image with the true one at the
IoU thresholds 0.5, 0.55, ..., 0.95. `label_components` and `split_touching` turn a binary mask into
labels, the latter splitting touching nuclei by a distance-transform watershed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from effunet.errors import EffunetError

DSB_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
_FLOOD_STEP = 0.5  # pixels of distance per flooding level in split_touching
SPLIT_SCALE = 4  # evaluation splits touching nuclei on a grid 4x the training size (transfer_labels)


# --- pixel metrics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """Confusion table of one image or a set; add tables to pool them (`sum(tables, Counts())`)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Counts) -> Counts:
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def n(self) -> int:
        """Number of pixels scored."""
        return self.tp + self.fp + self.fn + self.tn


def confusion(truth, predicted, region=None) -> Counts:
    """Confusion table of two binary arrays (bool or 0/1) of equal shape.

    `region`, a binary array of the same shape (e.g. DRIVE's field of view), restricts scoring to its
    true pixels. Raises EffunetError on a shape mismatch or non-binary values.
    """
    truth, predicted = _pair(truth, predicted, "truth", "predicted")
    if region is not None:
        region = _binary(region, "region")
        _same_shape(truth, region, "truth", "region")
        truth, predicted = truth[region], predicted[region]
    n = truth.size
    tp = int(np.count_nonzero(truth & predicted))
    positives, predicted_positives = int(np.count_nonzero(truth)), int(np.count_nonzero(predicted))
    fp, fn = predicted_positives - tp, positives - tp
    return Counts(tp=tp, fp=fp, fn=fn, tn=n - tp - fp - fn)


def scores(counts: Counts) -> dict[str, float | int]:
    """Pixel metrics of one confusion table; 0/0 ratios are 1.0, MCC of a degenerate table is 0.0.

    Keys: accuracy, iou (Jaccard), dice (F1), sensitivity (recall), specificity, precision, mcc, and
    pixels (the number of pixels scored, an int). Raises EffunetError if no pixel was scored.
    """
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    if counts.n <= 0:
        raise EffunetError("no pixels were scored (empty image or a region that selects nothing)")
    return {
        "accuracy": (tp + tn) / counts.n,
        "iou": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "mcc": _mcc(tp, fp, fn, tn),
        "pixels": counts.n,
    }


def roc_auc(truth, probability, region=None) -> float | None:
    """Exact area under the ROC curve; tied scores count one half, as in sklearn's roc_auc_score.

    None when the scored truth holds a single class (the area is undefined there).
    """
    positive, negative = _sorted_scores(*_scored(truth, probability, region))
    if positive.size == 0 or negative.size == 0:
        return None
    below = np.searchsorted(negative, positive, side="left").sum(dtype=np.float64)
    not_above = np.searchsorted(negative, positive, side="right").sum(dtype=np.float64)
    return float((below + not_above) / 2 / (positive.size * float(negative.size)))


def pr_auc(truth, probability, region=None) -> float | None:
    """Area under the precision-recall curve as average precision, as scikit-learn defines it.

    AP = sum over distinct score thresholds (descending) of (R_k - R_{k-1}) * P_k, ties grouped,
    no interpolation (sklearn's `average_precision_score`). None when the truth has no positives.
    """
    positive, negative = _sorted_scores(*_scored(truth, probability, region))
    if positive.size == 0:
        return None
    starts = np.flatnonzero(np.r_[True, positive[1:] != positive[:-1]])
    values, ties = positive[starts], np.diff(np.r_[starts, positive.size])
    tp = positive.size - starts  # positives scoring >= each distinct positive value
    fp = negative.size - np.searchsorted(negative, values, side="left")
    return float(np.dot(ties, tp / (tp + fp)) / positive.size)


class PooledAuc:
    """Exact ROC-AUC and PR-AUC over every scored pixel of a set, accumulated image by image.

    Each image is reduced, per class, to its distinct scores and how many pixels have each (one
    sort per class and image); the pieces are merged (counts of equal scores summed) whenever the
    unmerged ones outgrow the merged tables, and once more when an area is asked for. Both areas
    are then those of the concatenated pixels, as scikit-learn's `roc_auc_score` and
    `average_precision_score` compute them (ties count one half in the ROC area and form one
    threshold in AP; the ROC numerator is summed exactly in integers). Memory: 16 bytes per distinct
    score and class (at most the pixel count, far less for saturated or quantised outputs), at most
    about twice the merged tables plus one image; no array of all the set's pixels is kept.
    Probabilities must lie in [0, 1].
    """

    def __init__(self):
        self._positive, self._negative = _ScoreTable(), _ScoreTable()

    def add(self, truth, probability, region=None) -> None:
        truth, probability = _scored(truth, probability, region)
        if probability.size and (probability.min() < 0 or probability.max() > 1):
            raise EffunetError("probability values must lie in [0, 1] for pooled AUCs")
        self._positive.add(probability[truth])
        self._negative.add(probability[~truth])

    @property
    def pixels(self) -> int:
        return self._positive.total + self._negative.total

    def roc_auc(self) -> float | None:
        (pv, pc), (nv, nc) = self._positive.table(), self._negative.table()
        n_pos, n_neg = int(pc.sum()), int(nc.sum())
        if n_pos == 0 or n_neg == 0:
            return None
        cumulative = np.r_[0, np.cumsum(nc)]
        below = cumulative[np.searchsorted(nv, pv, side="left")]
        not_above = cumulative[np.searchsorted(nv, pv, side="right")]
        numerator = int(np.dot(pc, below + not_above))  # 2 * #(+ above -) + #(ties), in int64
        return float(numerator / (2 * n_pos * n_neg))

    def pr_auc(self) -> float | None:
        (pv, pc), (nv, nc) = self._positive.table(), self._negative.table()
        n_pos, n_neg = int(pc.sum()), int(nc.sum())
        if n_pos == 0:
            return None
        tp = n_pos - (np.cumsum(pc) - pc)  # positives scoring >= each distinct positive score
        fp = n_neg - np.r_[0, np.cumsum(nc)][np.searchsorted(nv, pv, side="left")]
        return float(np.dot(pc, tp / (tp + fp)) / n_pos)


class _ScoreTable:
    """Distinct scores (ascending, float64) of one class with the number of pixels at each."""

    _MIN_MERGE = 1 << 16

    def __init__(self):
        self.values, self.counts = np.zeros(0, np.float64), np.zeros(0, np.int64)
        self.total = 0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, scores: np.ndarray) -> None:
        if scores.size == 0:
            return
        ordered = np.sort(scores)
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self._pending.append((ordered[starts].astype(np.float64), np.diff(np.r_[starts, ordered.size])))
        self._pending_size += starts.size
        self.total += int(ordered.size)
        if self._pending_size > max(self.values.size, self._MIN_MERGE):
            self._merge()

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        self._merge()
        return self.values, self.counts

    def _merge(self) -> None:
        if not self._pending:
            return
        values = np.concatenate([self.values, *(v for v, _ in self._pending)])
        counts = np.concatenate([self.counts, *(c for _, c in self._pending)])
        order = np.argsort(values, kind="stable")  # timsort: merges the sorted runs
        values, counts = values[order], counts[order]
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        self.values, self.counts = values[starts], np.add.reduceat(counts, starts)
        self._pending, self._pending_size = [], 0


def summarize(per_image: list[dict], pooled_counts: Counts, extra_pooled: dict | None = None) -> dict:
    """Summary of a set: per-image values, their mean and std, and pooled values.

    Returns {"images": n, "per_image_mean": {...}, "per_image_std": {...}, "per_image_count": {...},
    "pooled": scores(pooled_counts) | extra_pooled, "per_image": per_image}. A key is a metric when
    its value is a number or None in every row (other keys, like an image id, are carried along);
    mean and (population, ddof=0) std skip None values, per_image_count says how many images each
    mean covers, and a metric that is None on every image has mean and std None. Raises
    EffunetError for zero images, ValueError for NaN values or rows with different keys.
    """
    if not per_image:
        raise EffunetError("nothing to summarize: the evaluation covered zero images")
    keys = list(per_image[0])
    if any(list(row) != keys for row in per_image):
        raise ValueError("per-image dicts must all have the same keys in the same order")
    mean, std, count = {}, {}, {}
    for key in keys:
        values = [row[key] for row in per_image]
        if not all(v is None or _is_number(v) for v in values):
            continue
        present = np.array([v for v in values if v is not None], dtype=np.float64)
        if np.isnan(present).any():
            raise ValueError(f"per-image values of {key!r} contain NaN; undefined values must be None")
        mean[key] = float(present.mean()) if present.size else None
        std[key] = float(present.std()) if present.size else None
        count[key] = int(present.size)
    return {
        "images": len(per_image),
        "per_image_mean": mean,
        "per_image_std": std,
        "per_image_count": count,
        "pooled": {**scores(pooled_counts), **(extra_pooled or {})},
        "per_image": [dict(row) for row in per_image],
    }


# --- instance metrics ----------------------------------------------------------------------------


def label_components(binary) -> np.ndarray:
    """Connected components of a binary mask with full connectivity (8-connectivity in 2-D).

    Returns int32 labels 1..n, 0 for background.
    """
    labels, _ = ndimage.label(_binary(binary, "binary"), structure=_full(binary))
    return labels.astype(np.int32, copy=False)


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


def transfer_labels(labels, mask) -> np.ndarray:
    """Labels computed on another grid of the same field of view, carried onto binary `mask`.

    Each pixel of `mask` takes the label of the `labels` pixel its centre falls in; mask pixels
    that land on background there take the label of the nearest labelled pixel; finally each
    connected component of `mask` (full connectivity) is cut by the labels it received, so objects
    never join pieces the mask keeps apart and every component keeps at least one object. Used to
    split touching nuclei at one scale for every image: split on the training-size prediction
    upsampled by SPLIT_SCALE, then carry the labels to the native-size mask. Returns int32 labels
    1..n on `mask`, 0 elsewhere.
    """
    labels = np.asarray(labels)
    mask = _binary(mask, "mask")
    if labels.ndim != mask.ndim:
        raise EffunetError(f"labels have {labels.ndim} dimensions, the mask {mask.ndim}")
    index = tuple(
        np.minimum(((np.arange(n) + 0.5) * m / n).astype(np.intp), m - 1).reshape(
            [-1 if axis == k else 1 for k in range(mask.ndim)])
        for axis, (n, m) in enumerate(zip(mask.shape, labels.shape, strict=True)))
    carried = np.where(mask, labels[index], 0).astype(np.int64)
    if not carried.any():
        return label_components(mask)
    missing = mask & (carried == 0)
    if missing.any():
        nearest = ndimage.distance_transform_edt(carried == 0, return_distances=False, return_indices=True)
        carried[missing] = carried[tuple(i[missing] for i in nearest)]
    components = label_components(mask).astype(np.int64)
    key = components * (int(carried.max()) + 1) + carried
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


def _binary(array, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        return array
    if array.dtype.kind not in "uif" or np.any((array != 0) & (array != 1)):
        found = np.unique(array)[:6].tolist() if array.dtype.kind in "uif" else str(array.dtype)
        raise EffunetError(f"{name} must be binary (bool or 0/1), found {found}")
    return array.astype(bool)


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise EffunetError(f"shape mismatch: {name_a} has shape {a.shape}, {name_b} has shape {b.shape}")


def _pair(truth, predicted, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    truth, predicted = _binary(truth, name_a), _binary(predicted, name_b)
    _same_shape(truth, predicted, name_a, name_b)
    return truth, predicted


def _scored(truth, probability, region) -> tuple[np.ndarray, np.ndarray]:
    """Flat truth (bool) and probability of the scored pixels."""
    truth, probability = _binary(truth, "truth"), np.asarray(probability)
    _same_shape(truth, probability, "truth", "probability")
    if probability.dtype.kind not in "uif" or not np.isfinite(probability).all():
        raise EffunetError("probability must be a finite numeric array")
    if region is None:
        return truth.ravel(), probability.ravel()
    region = _binary(region, "region")
    _same_shape(truth, region, "truth", "region")
    return truth[region], probability[region]


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 1.0


def _mcc(tp: int, fp: int, fn: int, tn: int) -> float:
    denominator = float(tp + fp) * float(tp + fn) * float(tn + fp) * float(tn + fn)
    return float(tp * tn - fp * fn) / math.sqrt(denominator) if denominator else 0.0


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _sorted_scores(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the positive and of the negative pixels, each sorted ascending."""
    return np.sort(score[truth]), np.sort(score[~truth])


def _full(array) -> np.ndarray:
    return np.ones((3,) * np.ndim(array), dtype=bool)


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
