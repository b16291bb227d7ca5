"""Pixel metrics: confusion tables (`Counts`), their named ratios, and set summaries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from effunet.errors import EffunetError
from effunet.metrics._common import _binary, _is_number, _mcc, _pair, _ratio, _same_shape


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
